//! Choosing among several server certificates for one client.

use std::sync::Arc;

use rustls::SignatureAlgorithm;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use weft_proxy_config::model::SanType;

use super::TlsError;
use super::verify::{dns_name_match, subject_alt_names};

/// Envoy's selection among a listener's certificates: a certificate whose DNS SANs cover the
/// SNI first, then one with an ECDSA (or Ed25519) key when the client can verify it, then the
/// first certificate the client can verify at all; ties go to configuration order.
#[derive(Debug)]
pub(super) struct CertificateSelector {
    candidates: Vec<Candidate>,
}

#[derive(Debug)]
struct Candidate {
    key: Arc<CertifiedKey>,
    dns_names: Vec<String>,
    not_rsa: bool,
}

impl CertificateSelector {
    pub(super) fn new(keys: Vec<CertifiedKey>) -> Result<Self, TlsError> {
        let candidates = keys
            .into_iter()
            .map(|key| {
                let leaf = key.end_entity_cert()?;
                // Already parsed once by `keys_match`; a failure here is not expected.
                let dns_names = subject_alt_names(leaf)
                    .map_err(|problem| {
                        rustls::Error::General(format!("server certificate: {problem}"))
                    })?
                    .into_iter()
                    .filter(|(san_type, _)| *san_type == SanType::Dns)
                    .map(|(_, name)| name)
                    .collect();
                let not_rsa = key.key.algorithm() != SignatureAlgorithm::RSA;
                Ok(Candidate {
                    key: Arc::new(key),
                    dns_names,
                    not_rsa,
                })
            })
            .collect::<Result<_, rustls::Error>>()?;
        Ok(Self { candidates })
    }
}

impl ResolvesServerCert for CertificateSelector {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let schemes = client_hello.signature_schemes();
        let sni = client_hello.server_name();
        let rank = |c: &Candidate| {
            let sni_match =
                sni.is_some_and(|sni| c.dns_names.iter().any(|d| dns_name_match(sni, d)));
            (sni_match, c.not_rsa)
        };
        let mut best: Option<(&Candidate, (bool, bool))> = None;
        for candidate in &self.candidates {
            if candidate.key.key.choose_scheme(schemes).is_none() {
                continue;
            }
            let r = rank(candidate);
            if best.is_none_or(|(_, best_rank)| r > best_rank) {
                best = Some((candidate, r));
            }
        }
        best.map(|(c, _)| c.key.clone())
    }
}
