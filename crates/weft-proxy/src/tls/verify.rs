//! Envoy's certificate verification on top of rustls: chain to the trust bundle with webpki,
//! then match the leaf's subject alternative names against the SAN matchers.
//!
//! Standard webpki server verification insists on a DNS name or IP address matching the server
//! name, which certificates whose only SAN is a SPIFFE URI never have, and which Envoy does not
//! check anyway. These verifiers check the chain only, then apply the configured matchers.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{
    CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature,
};
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use weft_proxy_config::model::{NameMatcher, SanMatcher, SanType};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The subject alternative names of a DER certificate, as (type, text) pairs. Name types that
/// Envoy cannot match (directory names, other names...) are left out.
pub fn subject_alt_names(der: &[u8]) -> Result<Vec<(SanType, String)>, String> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| e.to_string())?;
    let Some(san) = cert.subject_alternative_name().map_err(|e| e.to_string())? else {
        return Ok(Vec::new());
    };
    Ok(san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some((SanType::Dns, (*dns).to_owned())),
            GeneralName::URI(uri) => Some((SanType::Uri, (*uri).to_owned())),
            GeneralName::RFC822Name(email) => Some((SanType::Email, (*email).to_owned())),
            GeneralName::IPAddress(bytes) => ip_text(bytes).map(|ip| (SanType::IpAddress, ip)),
            _ => None,
        })
        .collect())
}

/// Whether one of `sans` matches one of `matchers` of the same type (Envoy's
/// `match_typed_subject_alt_names`; an empty matcher list matches anything).
pub fn sans_match(sans: &[(SanType, String)], matchers: &[SanMatcher]) -> bool {
    matchers.is_empty()
        || matchers.iter().any(|m| {
            sans.iter()
                .any(|(san_type, value)| *san_type == m.san_type && san_matches(m, value))
        })
}

/// Whether `name` (a host name, e.g. an SNI) is covered by the DNS SAN `san`, which may be a
/// wildcard for exactly one leftmost label. ASCII case-insensitive.
pub fn dns_name_match(name: &str, san: &str) -> bool {
    let name = name.trim_end_matches('.');
    let san = san.trim_end_matches('.');
    if name.eq_ignore_ascii_case(san) {
        return true;
    }
    match (san.strip_prefix("*."), name.split_once('.')) {
        (Some(san_parent), Some((label, name_parent))) => {
            !label.is_empty() && name_parent.eq_ignore_ascii_case(san_parent)
        }
        _ => false,
    }
}

fn san_matches(matcher: &SanMatcher, value: &str) -> bool {
    match (&matcher.matcher, matcher.san_type) {
        // Envoy's DnsStringSanMatcher: an exact DNS matcher honours wildcard certificates.
        (NameMatcher::Exact(expected), SanType::Dns) => dns_name_match(expected, value),
        (m, _) => m.matches(value),
    }
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    let ip = match bytes.len() {
        4 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => return None,
    };
    Some(ip.to_string())
}

/// Applies the SAN matchers to a leaf whose chain has been verified.
fn check_sans(
    end_entity: &CertificateDer<'_>,
    matchers: &[SanMatcher],
) -> Result<(), rustls::Error> {
    if matchers.is_empty() {
        return Ok(());
    }
    let sans = subject_alt_names(end_entity)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    if sans_match(&sans, matchers) {
        Ok(())
    } else {
        Err(rustls::Error::InvalidCertificate(CertificateError::Other(
            OtherError(Arc::new(SanMismatch {
                presented: sans.into_iter().map(|(_, v)| v).collect(),
            })),
        )))
    }
}

/// No SAN of the peer certificate matched a SAN matcher.
pub struct SanMismatch {
    /// The SANs the peer presented.
    pub presented: Vec<String>,
}

impl fmt::Display for SanMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no subject alternative name of the peer certificate matches the SAN matchers \
             (presented: [{}])",
            self.presented.join(", ")
        )
    }
}

// rustls shows `CertificateError::Other` through `Debug`: make that the readable message.
impl fmt::Debug for SanMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for SanMismatch {}

/// Downstream client certificate verification: rustls' webpki client verifier for the chain (it
/// checks no name, so SPIFFE-only certificates pass), then the SAN matchers.
#[derive(Debug)]
pub struct SanClientCertVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    san_matchers: Vec<SanMatcher>,
}

impl SanClientCertVerifier {
    /// Adds SAN matching to `inner`; with no matchers, `inner` is returned as it is.
    pub fn wrap(
        inner: Arc<dyn ClientCertVerifier>,
        san_matchers: Vec<SanMatcher>,
    ) -> Arc<dyn ClientCertVerifier> {
        if san_matchers.is_empty() {
            inner
        } else {
            Arc::new(Self {
                inner,
                san_matchers,
            })
        }
    }
}

impl ClientCertVerifier for SanClientCertVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_sans(end_entity, &self.san_matchers)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Upstream server certificate verification as Envoy does it: the chain must lead to the trust
/// bundle, the host name is **not** checked, then the SAN matchers apply.
#[derive(Debug)]
pub struct TrustBundleServerVerifier {
    roots: Arc<RootCertStore>,
    san_matchers: Vec<SanMatcher>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl TrustBundleServerVerifier {
    /// Verifies against `roots` with `provider`'s signature algorithms.
    pub fn new(
        roots: Arc<RootCertStore>,
        san_matchers: Vec<SanMatcher>,
        provider: &CryptoProvider,
    ) -> Self {
        Self {
            roots,
            san_matchers,
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for TrustBundleServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        check_sans(end_entity, &self.san_matchers)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Verifiers that accept certificates they cannot verify. They exist because Envoy accepts
/// them in the same configurations; weft logs a warning when one is built.
pub mod dangerous {
    use super::*;

    /// Accepts any server certificate (an upstream context without `validation`). Handshake
    /// signatures are still verified, so the server must hold the key of what it presents.
    #[derive(Debug)]
    pub struct AcceptAnyServerCertificate {
        algorithms: WebPkiSupportedAlgorithms,
    }

    impl AcceptAnyServerCertificate {
        /// Checks handshake signatures with `provider`'s algorithms.
        pub fn new(provider: &CryptoProvider) -> Self {
            Self {
                algorithms: provider.signature_verification_algorithms,
            }
        }
    }

    impl ServerCertVerifier for AcceptAnyServerCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    }

    /// Demands a client certificate but does not verify its chain (a downstream context with
    /// `require_client_certificate` and no `validation`). Handshake signatures are verified.
    #[derive(Debug)]
    pub struct AcceptAnyClientCertificate {
        algorithms: WebPkiSupportedAlgorithms,
    }

    impl AcceptAnyClientCertificate {
        /// Checks handshake signatures with `provider`'s algorithms.
        pub fn new(provider: &CryptoProvider) -> Self {
            Self {
                algorithms: provider.signature_verification_algorithms,
            }
        }
    }

    impl ClientCertVerifier for AcceptAnyClientCertificate {
        fn client_auth_mandatory(&self) -> bool {
            true
        }

        fn root_hint_subjects(&self) -> &[DistinguishedName] {
            &[]
        }

        fn verify_client_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _now: UnixTime,
        ) -> Result<ClientCertVerified, rustls::Error> {
            Ok(ClientCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    }
}
