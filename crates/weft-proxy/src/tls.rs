//! TLS for listeners and clusters: weft's typed TLS model ([`DownstreamTls`], [`UpstreamTls`])
//! becomes rustls configurations with Envoy's verification semantics, held in hot-swappable
//! handles so certificates can rotate without a restart.
//!
//! # Envoy semantics, and where weft had to choose
//!
//! * **One crypto provider**: aws-lc-rs ([`crypto_provider`]), passed explicitly to every builder
//!   so no process-wide default is needed.
//! * **Versions**: `Auto` means TLS 1.2 as the minimum and TLS 1.3 as the maximum on both sides
//!   (Envoy's server defaults; rustls has no TLS 1.0/1.1, and weft does not cap upstream at 1.2).
//!   A minimum above the maximum is an error.
//! * **ALPN**: exactly the configured protocols; none configured means weft advertises none (it
//!   never adds `h2` on its own). When a client offers protocols and none overlap, Envoy
//!   (BoringSSL) completes the handshake without ALPN, where plain rustls would abort:
//!   [`ServerTlsHandle::accept`] reproduces Envoy.
//! * **Server certificates**: several are allowed. For each client the resolver prefers a
//!   certificate whose DNS SANs match the SNI, then an ECDSA/Ed25519 certificate when the client
//!   can verify it, then the first certificate the client can verify (Envoy's RSA/ECDSA rule).
//! * **Client certificate verification** (`validation` on a downstream context): the chain must
//!   lead to `trusted_ca` (rustls' webpki client verifier, which checks no name, so SPIFFE-only
//!   certificates pass), then, if `san_matchers` is not empty, one SAN of the leaf must match one
//!   matcher of its type. A mismatch fails the handshake, as in Envoy.
//!   `require_client_certificate: false` verifies a certificate only if one is presented.
//!   `require_client_certificate: true` without `validation` demands a certificate but cannot
//!   verify it (Envoy accepts it); weft does the same through a loudly named dangerous verifier.
//! * **Server certificate verification** (`validation` on an upstream context): the chain must
//!   lead to `trusted_ca`, **without** checking the host name (Envoy checks names only through
//!   SAN matchers), then the SAN matchers. No `validation` means any certificate is accepted
//!   ([`verify::dangerous::AcceptAnyServerCertificate`], with a warning logged once); handshake
//!   signatures are still checked, so the peer must hold the key of the certificate it shows.
//! * **SNI**: Envoy sends none when `sni` is empty. rustls always needs a [`ServerName`]: weft
//!   passes the peer's IP address (rustls sends no SNI for IP addresses) and also turns SNI off
//!   in the configuration, so no name leaks whatever name a caller passes. See
//!   [`upstream_server_name`].
//! * **Only one client certificate**: Envoy supports a single certificate in upstream contexts;
//!   more is an error.
//! * **DNS SAN matching**: an `Exact` matcher accepts a wildcard SAN (`*.example.com` matches
//!   `api.example.com`, one label only), case-insensitively, as Envoy's `dnsNameMatch` does. IP
//!   SANs are matched in their textual form (`10.0.0.1`, `2001:db8::1`).

mod reload;
mod resolve;
mod source;
pub mod verify;

#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Once, OnceLock};

use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, RootCertStore, ServerConfig, SignatureScheme, SupportedProtocolVersion,
};
use rustls_pki_types::ServerName;
use tracing::warn;
use weft_proxy_config::model::{DownstreamTls, TlsVersion, UpstreamTls, Validation};

pub use reload::{ClientTlsHandle, ServerTlsHandle, TlsContextHandle, TlsModel, TlsWatcher};
pub use source::LoadedSources;

use source::Loaded;

/// Why a TLS context could not be built or reloaded. Every message names the data source
/// (file path, `inline data`, or `environment variable NAME`) and the problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("{source_name}: cannot read: {error}")]
    Read {
        /// The data source.
        source_name: String,
        /// The I/O error.
        #[source]
        error: std::io::Error,
    },
    /// An `Env` data source names an unset (or non-UTF-8) variable.
    #[error("environment variable {0} is not set (or not valid UTF-8)")]
    EnvNotSet(String),
    /// A PEM block is malformed.
    #[error("{source_name}: invalid PEM: {error}")]
    Pem {
        /// The data source.
        source_name: String,
        /// The PEM error.
        #[source]
        error: rustls_pki_types::pem::Error,
    },
    /// A certificate chain source holds no certificate.
    #[error("{source_name}: no certificates found")]
    NoCertificates {
        /// The data source.
        source_name: String,
    },
    /// A key source holds no private key (PKCS#8, PKCS#1 or SEC1 PEM).
    #[error("{source_name}: no private key found")]
    NoPrivateKey {
        /// The data source.
        source_name: String,
    },
    /// The key is of a type the crypto provider cannot sign with.
    #[error("{source_name}: unsupported private key: {error}")]
    UnsupportedKey {
        /// The data source.
        source_name: String,
        /// What rustls said.
        #[source]
        error: rustls::Error,
    },
    /// A certificate could not be parsed.
    #[error("{source_name}: invalid certificate: {problem}")]
    InvalidCertificate {
        /// The data source.
        source_name: String,
        /// What is wrong.
        problem: String,
    },
    /// The private key does not belong to the leaf certificate.
    #[error("certificate {chain} and private key {key} do not match")]
    KeyMismatch {
        /// The certificate chain source.
        chain: String,
        /// The key source.
        key: String,
    },
    /// The trust bundle holds no usable CA certificate.
    #[error("trusted_ca {source_name}: no certificates")]
    NoTrustedCa {
        /// The data source.
        source_name: String,
    },
    /// A trust anchor was rejected.
    #[error("trusted_ca {source_name}: {problem}")]
    InvalidTrustedCa {
        /// The data source.
        source_name: String,
        /// What is wrong.
        problem: String,
    },
    /// A downstream context without any certificate.
    #[error("a downstream TLS context needs at least one certificate")]
    NoServerCertificate,
    /// An upstream context with more than one certificate.
    #[error("an upstream TLS context takes at most one client certificate, got {0}")]
    TooManyClientCertificates(usize),
    /// `min_version` is above `max_version`.
    #[error("min_version {min:?} is above max_version {max:?}")]
    VersionRange {
        /// The configured minimum.
        min: TlsVersion,
        /// The configured maximum.
        max: TlsVersion,
    },
    /// The `sni` value is not a valid DNS name or IP address.
    #[error("sni {0:?} is not a valid server name")]
    InvalidSni(String),
    /// rustls refused the configuration.
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
    /// [`TlsContextHandle::watch`] was called outside a Tokio runtime.
    #[error("the TLS file watcher must be started inside a Tokio runtime")]
    NoRuntime,
    /// The file watcher could not start.
    #[error("cannot watch {path}: {error}")]
    Watch {
        /// The directory.
        path: PathBuf,
        /// What notify said.
        #[source]
        error: notify::Error,
    },
}

/// The crypto provider used by every weft TLS configuration: aws-lc-rs.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .clone()
}

/// Reads the data sources of a downstream context and builds its rustls server configuration.
pub fn server_config(tls: &DownstreamTls) -> Result<ServerConfig, TlsError> {
    build_server_config(tls, &LoadedSources::load_downstream(tls)?)
}

/// Reads the data sources of an upstream context and builds its rustls client configuration.
pub fn client_config(tls: &UpstreamTls) -> Result<ClientConfig, TlsError> {
    build_client_config(tls, &LoadedSources::load_upstream(tls)?)
}

/// The name to hand rustls when connecting to `peer`: the configured SNI, or else the peer's IP
/// address, for which rustls sends no SNI (Envoy sends none when `sni` is empty).
pub fn upstream_server_name(
    tls: &UpstreamTls,
    peer: IpAddr,
) -> Result<ServerName<'static>, TlsError> {
    match &tls.sni {
        Some(sni) => {
            ServerName::try_from(sni.clone()).map_err(|_| TlsError::InvalidSni(sni.clone()))
        }
        None => Ok(ServerName::IpAddress(peer.into())),
    }
}

fn build_server_config(
    tls: &DownstreamTls,
    sources: &LoadedSources,
) -> Result<ServerConfig, TlsError> {
    let provider = crypto_provider();
    if sources.certificates.is_empty() {
        return Err(TlsError::NoServerCertificate);
    }
    let keys = sources
        .certificates
        .iter()
        .map(|(chain, key)| certified_key(chain, key, &provider))
        .collect::<Result<Vec<_>, _>>()?;
    let resolver = resolve::CertificateSelector::new(keys)?;

    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(tls.min_version, tls.max_version)?)?;
    let builder = match &tls.validation {
        Some(validation) => {
            let ca = trusted_ca(validation, sources)?;
            let roots = Arc::new(root_store(ca)?);
            let webpki = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let webpki = if tls.require_client_certificate {
                webpki
            } else {
                webpki.allow_unauthenticated()
            };
            let inner = webpki.build().map_err(|error| TlsError::InvalidTrustedCa {
                source_name: ca.name.clone(),
                problem: error.to_string(),
            })?;
            builder.with_client_cert_verifier(verify::SanClientCertVerifier::wrap(
                inner,
                validation.san_matchers.clone(),
            ))
        }
        None if tls.require_client_certificate => {
            warn_once(
                &REQUIRED_UNVERIFIED_WARNING,
                "a downstream TLS context requires client certificates but has no validation \
                 context: any client certificate is accepted (Envoy semantics); set `validation` \
                 to verify them",
            );
            builder.with_client_cert_verifier(Arc::new(
                verify::dangerous::AcceptAnyClientCertificate::new(&provider),
            ))
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = alpn(&tls.alpn_protocols);
    Ok(config)
}

fn build_client_config(
    tls: &UpstreamTls,
    sources: &LoadedSources,
) -> Result<ClientConfig, TlsError> {
    if let Some(sni) = &tls.sni {
        ServerName::try_from(sni.as_str()).map_err(|_| TlsError::InvalidSni(sni.clone()))?;
    }
    let provider = crypto_provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions(tls.min_version, tls.max_version)?)?;
    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = match &tls.validation {
        Some(validation) => Arc::new(verify::TrustBundleServerVerifier::new(
            Arc::new(root_store(trusted_ca(validation, sources)?)?),
            validation.san_matchers.clone(),
            &provider,
        )),
        None => {
            warn_once(
                &ACCEPT_ANY_WARNING,
                "an upstream TLS context has no validation context: server certificates are \
                     not verified (Envoy semantics); set `validation` to verify them",
            );
            Arc::new(verify::dangerous::AcceptAnyServerCertificate::new(
                &provider,
            ))
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match sources.certificates.as_slice() {
        [] => builder.with_no_client_auth(),
        [(chain, key)] => builder.with_client_cert_resolver(Arc::new(SingleClientCertificate(
            Arc::new(certified_key(chain, key, &provider)?),
        ))),
        more => return Err(TlsError::TooManyClientCertificates(more.len())),
    };
    config.alpn_protocols = alpn(&tls.alpn_protocols);
    config.enable_sni = tls.sni.is_some();
    Ok(config)
}

/// Loads a chain and its key, and checks that they belong together.
fn certified_key(
    chain: &Loaded,
    key: &Loaded,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let certs = chain.certificates()?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates {
            source_name: chain.name.clone(),
        });
    }
    let private_key = key.private_key()?;
    let signing_key = provider
        .key_provider
        .load_private_key(private_key)
        .map_err(|error| TlsError::UnsupportedKey {
            source_name: key.name.clone(),
            error,
        })?;
    let certified = CertifiedKey::new(certs, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            chain: chain.name.clone(),
            key: key.name.clone(),
        }),
        Err(error) => Err(TlsError::InvalidCertificate {
            source_name: chain.name.clone(),
            problem: error.to_string(),
        }),
    }
}

/// The loaded trust bundle of `validation`; never silently absent, so a validation context can
/// not turn into "accept anything".
fn trusted_ca<'a>(
    validation: &Validation,
    sources: &'a LoadedSources,
) -> Result<&'a Loaded, TlsError> {
    sources
        .trusted_ca
        .as_ref()
        .ok_or_else(|| TlsError::NoTrustedCa {
            source_name: source::describe(&validation.trusted_ca),
        })
}

fn root_store(ca: &Loaded) -> Result<RootCertStore, TlsError> {
    let certs = ca.certificates()?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|error| TlsError::InvalidTrustedCa {
                source_name: ca.name.clone(),
                problem: error.to_string(),
            })?;
    }
    if roots.is_empty() {
        return Err(TlsError::NoTrustedCa {
            source_name: ca.name.clone(),
        });
    }
    Ok(roots)
}

fn versions(
    min: TlsVersion,
    max: TlsVersion,
) -> Result<&'static [&'static SupportedProtocolVersion], TlsError> {
    static BOTH: [&SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    static TLS12: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    static TLS13: [&SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    let low = matches!(min, TlsVersion::Auto | TlsVersion::Tls12);
    let high = matches!(max, TlsVersion::Auto | TlsVersion::Tls13);
    match (low, high) {
        (true, true) => Ok(&BOTH),
        (true, false) => Ok(&TLS12),
        (false, true) => Ok(&TLS13),
        (false, false) => Err(TlsError::VersionRange { min, max }),
    }
}

fn alpn(protocols: &[String]) -> Vec<Vec<u8>> {
    protocols.iter().map(|p| p.as_bytes().to_vec()).collect()
}

static ACCEPT_ANY_WARNING: Once = Once::new();
static REQUIRED_UNVERIFIED_WARNING: Once = Once::new();

fn warn_once(once: &Once, message: &str) {
    once.call_once(|| warn!("{message}"));
}

/// The one client certificate of an upstream context, offered whenever the server asks and the
/// key can sign with one of the server's schemes.
#[derive(Debug)]
struct SingleClientCertificate(Arc<CertifiedKey>);

impl ResolvesClientCert for SingleClientCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.0.key.choose_scheme(sigschemes).map(|_| self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}
