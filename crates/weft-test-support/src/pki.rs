//! A throwaway PKI: one CA, leaf certificates for servers (DNS/IP names) and SPIFFE workloads
//! (URI SAN only), as PEM files for Envoy-style file-based configs and as rustls configurations
//! for the test servers and clients. Keys are ECDSA P-256 from aws-lc-rs.
//!
//! ```no_run
//! # async fn demo() {
//! use weft_test_support::{HttpServer, TestPki};
//! let pki = TestPki::new();
//! let cert = pki.server_cert(&["backend.test"]);
//! let server = HttpServer::builder().tls(pki.server_config(&cert)).start().await;
//! let tls = pki.client_tls("backend.test", None);
//! # }
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

use crate::io::ClientTls;
use crate::tempdir::TempDir;

/// A CA and the directory its PEM files are written to (removed on drop).
#[derive(Debug)]
pub struct TestPki {
    issuer: Issuer<'static, KeyPair>,
    ca: TestCert,
    dir: TempDir,
    next: AtomicU32,
}

/// A certificate and its key, in memory and as files.
#[derive(Debug)]
pub struct TestCert {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key (PKCS#8), PEM.
    pub key_pem: String,
    /// The certificate, DER.
    pub cert_der: CertificateDer<'static>,
    /// The private key, DER (PKCS#8).
    pub key_der: PrivatePkcs8KeyDer<'static>,
    /// Path of the certificate PEM file.
    pub cert_path: PathBuf,
    /// Path of the key PEM file.
    pub key_path: PathBuf,
}

impl TestCert {
    /// The key as rustls wants it.
    pub fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key_der.clone_key())
    }
}

impl Default for TestPki {
    fn default() -> Self {
        Self::new()
    }
}

impl TestPki {
    /// A fresh CA ("weft test CA"), written to `<dir>/ca.crt` and `<dir>/ca.key`.
    pub fn new() -> Self {
        let dir = TempDir::new("pki");
        let key = KeyPair::generate().expect("generate CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(DnType::CommonName, "weft test CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "weft tests");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-sign CA");
        let ca = write_cert(&dir, "ca", cert.der().clone(), cert.pem(), &key);
        Self {
            issuer: Issuer::new(params, key),
            ca,
            dir,
            next: AtomicU32::new(1),
        }
    }

    /// The CA certificate (`ca_path()` is the trust bundle file for configs).
    pub fn ca(&self) -> &TestCert {
        &self.ca
    }

    /// Path of the CA certificate PEM file.
    pub fn ca_path(&self) -> PathBuf {
        self.ca.cert_path.clone()
    }

    /// The directory holding every file of this PKI.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// A server certificate for `names`: DNS names, or IP addresses (`"127.0.0.1"`) which
    /// become IP SANs. Extended key usage: server and client auth.
    pub fn server_cert(&self, names: &[&str]) -> TestCert {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("server cert params");
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        self.issue("server", params)
    }

    /// A workload certificate whose only name is the URI SAN `spiffe_uri`
    /// (`spiffe://cluster.local/ns/default/sa/foo`), like Istio's. Standard webpki server
    /// verification rejects it as a *server* certificate (no DNS name); as a client certificate
    /// it is fine. Extended key usage: client and server auth.
    pub fn client_cert(&self, spiffe_uri: &str) -> TestCert {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client cert params");
        let uri = rcgen::string::Ia5String::try_from(spiffe_uri)
            .unwrap_or_else(|e| panic!("SPIFFE URI {spiffe_uri:?}: {e}"));
        params.subject_alt_names = vec![SanType::URI(uri)];
        self.issue("client", params)
    }

    fn issue(&self, kind: &str, mut params: CertificateParams) -> TestCert {
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().expect("generate leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign leaf certificate");
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        write_cert(
            &self.dir,
            &format!("{kind}-{n}"),
            cert.der().clone(),
            cert.pem(),
            &key,
        )
    }

    /// Roots holding this CA.
    pub fn root_store(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca.cert_der.clone())
            .expect("add test CA to roots");
        roots
    }

    /// A server configuration presenting `cert` (leaf + CA chain), without client auth.
    pub fn server_config(&self, cert: &TestCert) -> Arc<ServerConfig> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(self.chain(cert), cert.private_key())
            .expect("server certificate and key");
        Arc::new(config)
    }

    /// A server configuration presenting `cert` and requiring a client certificate signed by
    /// this CA (mTLS). The client's chain is recorded in each request's
    /// [`crate::TlsInfo::peer_certificates`].
    pub fn server_config_mtls(&self, cert: &TestCert) -> Arc<ServerConfig> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(self.root_store()), provider())
                .build()
                .expect("client verifier");
        let config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain(cert), cert.private_key())
            .expect("server certificate and key");
        Arc::new(config)
    }

    /// A client configuration trusting this CA, presenting `client_cert` when given (mTLS).
    pub fn client_config(&self, client_cert: Option<&TestCert>) -> Arc<ClientConfig> {
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(self.root_store());
        let config = match client_cert {
            None => builder.with_no_client_auth(),
            Some(cert) => builder
                .with_client_auth_cert(self.chain(cert), cert.private_key())
                .expect("client certificate and key"),
        };
        Arc::new(config)
    }

    /// [`Self::client_config`] with the name to send in SNI and verify, ready for the clients
    /// of this crate.
    pub fn client_tls(&self, server_name: &str, client_cert: Option<&TestCert>) -> ClientTls {
        ClientTls::new(self.client_config(client_cert), server_name)
    }

    fn chain(&self, cert: &TestCert) -> Vec<CertificateDer<'static>> {
        vec![cert.cert_der.clone(), self.ca.cert_der.clone()]
    }
}

/// A client configuration that accepts any server certificate while still checking handshake
/// signatures: for servers presenting SPIFFE-only certificates, which standard webpki
/// verification rejects. Named loudly because it verifies nothing about the server's identity.
pub fn dangerous_client_config_no_verify(
    client_cert: Option<(&TestPki, &TestCert)>,
) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoServerVerification(provider())));
    let config = match client_cert {
        None => builder.with_no_client_auth(),
        Some((pki, cert)) => builder
            .with_client_auth_cert(pki.chain(cert), cert.private_key())
            .expect("client certificate and key"),
    };
    Arc::new(config)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn write_cert(
    dir: &TempDir,
    name: &str,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    key: &KeyPair,
) -> TestCert {
    let key_pem = key.serialize_pem();
    let cert_path = dir.write(format!("{name}.crt"), &cert_pem);
    let key_path = dir.write(format!("{name}.key"), &key_pem);
    TestCert {
        cert_pem,
        key_pem,
        cert_der,
        key_der: PrivatePkcs8KeyDer::from(key.serialize_der()),
        cert_path,
        key_path,
    }
}

#[derive(Debug)]
struct NoServerVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoServerVerification {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
