//! Reading `DataSource`s and parsing their PEM, with errors that name the source.

use std::path::PathBuf;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use weft_proxy_config::model::{
    CertificateSource, DataSource, DownstreamTls, UpstreamTls, Validation,
};

use super::TlsError;

/// The bytes of every data source of one TLS context, read at one moment.
///
/// A configuration is built from these bytes only, and reloads compare them with the bytes read
/// before, so what is compared is exactly what is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedSources {
    /// (chain, key) per certificate, in configuration order.
    pub(super) certificates: Vec<(Loaded, Loaded)>,
    /// The trust bundle of the validation context, if there is one.
    pub(super) trusted_ca: Option<Loaded>,
}

/// One data source's bytes and how to name it in errors.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Loaded {
    pub(super) name: String,
    pub(super) bytes: Vec<u8>,
}

// Key material stays out of logs and panics.
impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("name", &self.name)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl LoadedSources {
    pub(super) fn load_downstream(tls: &DownstreamTls) -> Result<Self, TlsError> {
        Self::load(&tls.certificates, tls.validation.as_ref())
    }

    pub(super) fn load_upstream(tls: &UpstreamTls) -> Result<Self, TlsError> {
        Self::load(&tls.certificates, tls.validation.as_ref())
    }

    fn load(
        certificates: &[CertificateSource],
        validation: Option<&Validation>,
    ) -> Result<Self, TlsError> {
        Ok(Self {
            certificates: certificates
                .iter()
                .map(|c| Ok((read(&c.chain)?, read(&c.key)?)))
                .collect::<Result<_, TlsError>>()?,
            trusted_ca: validation.map(|v| read(&v.trusted_ca)).transpose()?,
        })
    }
}

/// Every file a context reads.
pub(super) fn files<'a>(
    certificates: &'a [CertificateSource],
    validation: Option<&'a Validation>,
) -> Vec<PathBuf> {
    certificates
        .iter()
        .flat_map(|c| [&c.chain, &c.key])
        .chain(validation.map(|v| &v.trusted_ca))
        .filter_map(|source| match source {
            DataSource::File(path) => Some(path.clone()),
            DataSource::Inline(_) | DataSource::Env(_) => None,
        })
        .collect()
}

/// How errors name a data source.
pub(super) fn describe(source: &DataSource) -> String {
    match source {
        DataSource::File(path) => path.display().to_string(),
        DataSource::Inline(_) => "inline data".to_owned(),
        DataSource::Env(var) => format!("environment variable {var}"),
    }
}

fn read(source: &DataSource) -> Result<Loaded, TlsError> {
    let name = describe(source);
    let bytes = match source {
        DataSource::File(path) => std::fs::read(path).map_err(|error| TlsError::Read {
            source_name: name.clone(),
            error,
        })?,
        DataSource::Inline(bytes) => bytes.clone(),
        DataSource::Env(var) => std::env::var(var)
            .map_err(|_| TlsError::EnvNotSet(var.clone()))?
            .into_bytes(),
    };
    Ok(Loaded { name, bytes })
}

impl Loaded {
    /// Every `CERTIFICATE` block, in order; other blocks are skipped.
    pub(super) fn certificates(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        CertificateDer::pem_slice_iter(&self.bytes)
            .collect::<Result<Vec<_>, _>>()
            .or_else(|error| match error {
                pem::Error::NoItemsFound => Ok(Vec::new()),
                error => Err(self.pem_error(error)),
            })
    }

    /// The first private key block (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub(super) fn private_key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        PrivateKeyDer::from_pem_slice(&self.bytes).map_err(|error| match error {
            pem::Error::NoItemsFound => TlsError::NoPrivateKey {
                source_name: self.name.clone(),
            },
            error => self.pem_error(error),
        })
    }

    fn pem_error(&self, error: pem::Error) -> TlsError {
        TlsError::Pem {
            source_name: self.name.clone(),
            error,
        }
    }
}
