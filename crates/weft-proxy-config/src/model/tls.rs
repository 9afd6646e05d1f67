//! TLS contexts, kept as sources (not loaded bytes) so certificates can rotate live.

use super::DataSource;

/// A certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CertificateSource {
    /// PEM chain, leaf first.
    pub chain: DataSource,
    /// PEM private key.
    pub key: DataSource,
}

/// How a peer certificate is verified (`CertificateValidationContext`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Validation {
    /// PEM CA bundle the peer's chain must lead to.
    pub trusted_ca: DataSource,
    /// The peer must present one SAN matching one of these (empty: any).
    pub san_matchers: Vec<SanMatcher>,
}

/// `SubjectAltNameMatcher`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SanMatcher {
    /// Which SAN type.
    pub san_type: SanType,
    /// How its value must match.
    pub matcher: NameMatcher,
}

/// SAN types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SanType {
    /// DNS name.
    Dns,
    /// URI (SPIFFE IDs).
    Uri,
    /// Email.
    Email,
    /// IP address.
    IpAddress,
}

/// A string matcher for SAN values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum NameMatcher {
    /// Exact.
    Exact(String),
    /// Prefix.
    Prefix(String),
    /// Suffix.
    Suffix(String),
    /// Substring.
    Contains(String),
    /// Anchored RE2 regex, compiled once.
    Regex(Pattern),
}

/// A compiled, anchored regex that compares and hashes by its source text.
#[derive(Debug, Clone)]
pub struct Pattern {
    source: String,
    regex: regex::Regex,
}

impl Pattern {
    /// Compiles `source` as a full-string match with a bounded program size.
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        let regex = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(1 << 20)
            .build()?;
        Ok(Self {
            source: source.to_owned(),
            regex,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `value` matches.
    pub fn is_match(&self, value: &str) -> bool {
        self.regex.is_match(value)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

impl std::hash::Hash for Pattern {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.source.hash(state);
    }
}

impl NameMatcher {
    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Self::Exact(s) => value == s,
            Self::Prefix(s) => value.starts_with(s.as_str()),
            Self::Suffix(s) => value.ends_with(s.as_str()),
            Self::Contains(s) => value.contains(s.as_str()),
            Self::Regex(r) => r.is_match(value),
        }
    }
}

/// TLS protocol versions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsVersion {
    /// Library default.
    #[default]
    Auto,
    /// TLS 1.2.
    Tls12,
    /// TLS 1.3.
    Tls13,
}

/// `DownstreamTlsContext`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DownstreamTls {
    /// Server certificates (the first whose key type the client supports is used).
    pub certificates: Vec<CertificateSource>,
    /// Client certificate verification.
    pub validation: Option<Validation>,
    /// Reject clients without a certificate (`require_client_certificate`).
    pub require_client_certificate: bool,
    /// ALPN protocols offered.
    pub alpn_protocols: Vec<String>,
    /// Lowest TLS version.
    pub min_version: TlsVersion,
    /// Highest TLS version.
    pub max_version: TlsVersion,
}

/// `UpstreamTlsContext`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamTls {
    /// Client certificates.
    pub certificates: Vec<CertificateSource>,
    /// Server certificate verification; `None` means none (Envoy's behaviour without a
    /// validation context).
    pub validation: Option<Validation>,
    /// SNI to send.
    pub sni: Option<String>,
    /// ALPN protocols offered.
    pub alpn_protocols: Vec<String>,
    /// Lowest TLS version.
    pub min_version: TlsVersion,
    /// Highest TLS version.
    pub max_version: TlsVersion,
}
