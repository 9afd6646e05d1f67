//! Real handshakes over loopback TCP, with certificates made by rcgen in each test.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, ProtocolVersion, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use weft_proxy_config::model::{
    CertificateSource, DataSource, DownstreamTls, NameMatcher, SanMatcher, SanType, TlsVersion,
    UpstreamTls, Validation,
};

use super::verify::TrustBundleServerVerifier;
use super::*;

const SPIFFE_FRONTEND: &str = "spiffe://cluster.local/ns/default/sa/frontend";

// ---------------------------------------------------------------------------------------------
// Server certificates and verification of them (upstream side)

#[tokio::test]
async fn server_certificate_trusted_by_client() {
    let ca = Ca::new("mesh ca");
    let leaf = ca.issue(&[San::Dns("foo.internal")], &rcgen::PKCS_ECDSA_P256_SHA256);
    let server = serve(downstream(vec![leaf.source()])).await;

    let client = client(upstream_trusting(&ca, vec![]));
    let tls = connect(&client, server.addr).await.unwrap();
    assert_eq!(peer_leaf(&tls), leaf.der);
}

#[tokio::test]
async fn server_certificate_from_another_ca_is_rejected() {
    let ca = Ca::new("mesh ca");
    let leaf = ca.issue(&[San::Dns("foo.internal")], &rcgen::PKCS_ECDSA_P256_SHA256);
    let server = serve(downstream(vec![leaf.source()])).await;

    let client = client(upstream_trusting(&Ca::new("other ca"), vec![]));
    let err = connect(&client, server.addr).await.unwrap_err();
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
}

#[tokio::test]
async fn upstream_does_not_check_the_host_name_only_san_matchers() {
    let ca = Ca::new("mesh ca");
    let leaf = ca.issue(&[San::Dns("foo.internal")], &rcgen::PKCS_ECDSA_P256_SHA256);
    let server = serve(downstream(vec![leaf.source()])).await;

    // Connected by IP address, with an SNI that is not in the certificate: Envoy accepts.
    let mut tls = upstream_trusting(&ca, vec![]);
    tls.sni = Some("bar".to_owned());
    connect(&client(tls.clone()), server.addr).await.unwrap();

    // A DNS SAN matcher that the certificate satisfies...
    tls.validation = Some(validation(&ca, vec![dns_exact("foo.internal")]));
    connect(&client(tls.clone()), server.addr).await.unwrap();

    // ... and one it does not.
    tls.validation = Some(validation(&ca, vec![dns_exact("baz.internal")]));
    let err = connect(&client(tls), server.addr).await.unwrap_err();
    assert!(
        err.to_string().contains("no subject alternative name"),
        "{err}"
    );
}

#[tokio::test]
async fn exact_dns_matcher_accepts_a_wildcard_certificate() {
    let ca = Ca::new("mesh ca");
    let leaf = ca.issue(
        &[San::Dns("*.svc.internal")],
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let server = serve(downstream(vec![leaf.source()])).await;

    let good = upstream_trusting(&ca, vec![dns_exact("api.svc.internal")]);
    connect(&client(good), server.addr).await.unwrap();
    let too_deep = upstream_trusting(&ca, vec![dns_exact("a.b.svc.internal")]);
    connect(&client(too_deep), server.addr).await.unwrap_err();
}

#[tokio::test]
async fn without_validation_any_server_certificate_is_accepted() {
    let stranger = Ca::new("nobody trusts me");
    let leaf = stranger.issue(&[San::Dns("anything")], &rcgen::PKCS_ECDSA_P256_SHA256);
    let server = serve(downstream(vec![leaf.source()])).await;

    let tls = connect(&client(upstream()), server.addr).await.unwrap();
    assert_eq!(peer_leaf(&tls), leaf.der);
}

#[test]
fn no_sni_configured_means_an_ip_server_name_and_sni_off() {
    let tls = upstream();
    let name = upstream_server_name(&tls, IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
    assert!(matches!(name, ServerName::IpAddress(_)));
    assert!(!client_config(&tls).unwrap().enable_sni);

    let mut tls = upstream();
    tls.sni = Some("api.example.com".to_owned());
    let name = upstream_server_name(&tls, IpAddr::V4(Ipv4Addr::LOCALHOST)).unwrap();
    assert_eq!(name.to_str(), "api.example.com");
    assert!(client_config(&tls).unwrap().enable_sni);

    tls.sni = Some("not a name!".to_owned());
    let err = client_config(&tls).unwrap_err();
    assert!(err.to_string().contains("not a valid server name"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Client certificates (downstream side)

#[tokio::test]
async fn required_client_certificate_missing_fails() {
    let ca = Ca::new("mesh ca");
    let server_leaf = ca.issue(&[San::Dns("server")], &rcgen::PKCS_ECDSA_P256_SHA256);
    let mut tls = downstream(vec![server_leaf.source()]);
    tls.validation = Some(validation(&ca, vec![]));
    tls.require_client_certificate = true;
    let mut server = serve(tls).await;

    connect(&client(upstream_trusting(&ca, vec![])), server.addr)
        .await
        .unwrap_err();
    let outcome = server.outcomes.recv().await.unwrap();
    let err = outcome.unwrap_err();
    assert!(err.contains("peer sent no certificates"), "{err}");
}

#[tokio::test]
async fn spiffe_only_client_certificate_matching_uri_san() {
    let ca = Ca::new("mesh ca");
    let server_leaf = ca.issue(&[San::Dns("server")], &rcgen::PKCS_ECDSA_P256_SHA256);
    let client_leaf = ca.issue(&[San::Uri(SPIFFE_FRONTEND)], &rcgen::PKCS_ECDSA_P256_SHA256);
    let mut tls = downstream(vec![server_leaf.source()]);
    tls.validation = Some(validation(&ca, vec![uri_exact(SPIFFE_FRONTEND)]));
    tls.require_client_certificate = true;
    let mut server = serve(tls).await;

    let mut up = upstream_trusting(&ca, vec![]);
    up.certificates = vec![client_leaf.source()];
    connect(&client(up), server.addr).await.unwrap();
    let accepted = server.outcomes.recv().await.unwrap().unwrap();
    assert_eq!(accepted.client_cert, Some(client_leaf.der));
}

#[tokio::test]
async fn spiffe_client_certificate_with_other_id_fails_the_handshake() {
    let ca = Ca::new("mesh ca");
    let server_leaf = ca.issue(&[San::Dns("server")], &rcgen::PKCS_ECDSA_P256_SHA256);
    let intruder = "spiffe://cluster.local/ns/default/sa/intruder";
    let client_leaf = ca.issue(&[San::Uri(intruder)], &rcgen::PKCS_ECDSA_P256_SHA256);
    let mut tls = downstream(vec![server_leaf.source()]);
    tls.validation = Some(validation(&ca, vec![uri_exact(SPIFFE_FRONTEND)]));
    tls.require_client_certificate = true;
    let mut server = serve(tls).await;

    let mut up = upstream_trusting(&ca, vec![]);
    up.certificates = vec![client_leaf.source()];
    connect(&client(up), server.addr).await.unwrap_err();
    let err = server.outcomes.recv().await.unwrap().unwrap_err();
    assert!(err.contains(intruder), "{err}");
}

#[tokio::test]
async fn optional_client_certificate_is_verified_only_when_presented() {
    let ca = Ca::new("mesh ca");
    let server_leaf = ca.issue(&[San::Dns("server")], &rcgen::PKCS_ECDSA_P256_SHA256);
    let mut tls = downstream(vec![server_leaf.source()]);
    tls.validation = Some(validation(&ca, vec![]));
    tls.require_client_certificate = false;
    let mut server = serve(tls).await;

    // No certificate: allowed.
    connect(&client(upstream_trusting(&ca, vec![])), server.addr)
        .await
        .unwrap();
    assert_eq!(
        server.outcomes.recv().await.unwrap().unwrap().client_cert,
        None
    );

    // A certificate from an untrusted CA: rejected.
    let stranger = Ca::new("stranger").issue(&[San::Uri(SPIFFE_FRONTEND)], &rcgen::PKCS_ED25519);
    let mut up = upstream_trusting(&ca, vec![]);
    up.certificates = vec![stranger.source()];
    connect(&client(up), server.addr).await.unwrap_err();
    assert!(server.outcomes.recv().await.unwrap().is_err());
}

// ---------------------------------------------------------------------------------------------
// Negotiation: ALPN, versions, certificate selection

#[tokio::test]
async fn alpn_only_as_configured() {
    let ca = Ca::new("mesh ca");
    let leaf = ca.issue(&[San::Dns("server")], &rcgen::PKCS_ECDSA_P256_SHA256);
    let offers_both = |ca: &Ca| {
        let mut up = upstream_trusting(ca, vec![]);
        up.alpn_protocols = vec!["h2".to_owned(), "http/1.1".to_owned()];
        client(up)
    };

    // Configured: negotiated.
    let mut with_h2 = downstream(vec![leaf.source()]);
    with_h2.alpn_protocols = vec!["h2".to_owned(), "http/1.1".to_owned()];
    let server = serve(with_h2.clone()).await;
    let tls = connect(&offers_both(&ca), server.addr).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    // Not configured: nothing advertised, even though the client offers h2.
    let server = serve(downstream(vec![leaf.source()])).await;
    let tls = connect(&offers_both(&ca), server.addr).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);

    // No overlap: Envoy goes on without ALPN instead of failing.
    with_h2.alpn_protocols = vec!["h2".to_owned()];
    let server = serve(with_h2).await;
    let mut up = upstream_trusting(&ca, vec![]);
    up.alpn_protocols = vec!["http/1.1".to_owned()];
    let tls = connect(&client(up), server.addr).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), None);
}

#[tokio::test]
async fn tls_version_bounds_are_enforced() {
    let ca = Ca::new("mesh ca");
    let leaf = ca.issue(&[San::Dns("server")], &rcgen::PKCS_ECDSA_P256_SHA256);
    let mut tls13_only = downstream(vec![leaf.source()]);
    tls13_only.min_version = TlsVersion::Tls13;
    let server = serve(tls13_only).await;

    let mut up = upstream_trusting(&ca, vec![]);
    up.max_version = TlsVersion::Tls12;
    connect(&client(up.clone()), server.addr).await.unwrap_err();

    // The default server accepts that TLS 1.2 client.
    let server = serve(downstream(vec![leaf.source()])).await;
    let tls = connect(&client(up), server.addr).await.unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(ProtocolVersion::TLSv1_2)
    );

    let mut inverted = downstream(vec![leaf.source()]);
    inverted.min_version = TlsVersion::Tls13;
    inverted.max_version = TlsVersion::Tls12;
    let err = server_config(&inverted).unwrap_err();
    assert!(err.to_string().contains("above max_version"), "{err}");
}

#[tokio::test]
async fn multiple_certificates_selected_by_client_signature_schemes() {
    let ca = Ca::new("mesh ca");
    let rsa = ca.issue(&[San::Dns("server")], &rcgen::PKCS_RSA_SHA256);
    let ecdsa = ca.issue(&[San::Dns("server")], &rcgen::PKCS_ECDSA_P384_SHA384);
    // RSA listed first: a client that can verify ECDSA still gets the ECDSA one (Envoy).
    let server = serve(downstream(vec![rsa.source(), ecdsa.source()])).await;

    let tls = connect(&client(upstream_trusting(&ca, vec![])), server.addr)
        .await
        .unwrap();
    assert_eq!(peer_leaf(&tls), ecdsa.der);

    let rsa_only = rsa_only_client(&ca);
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let name = ServerName::IpAddress(server.addr.ip().into());
    let mut tls = rsa_only.connect(name, tcp).await.unwrap();
    ping(&mut tls).await.unwrap();
    assert_eq!(peer_leaf(&tls), rsa.der);
}

#[tokio::test]
async fn sni_selects_the_certificate_that_names_it() {
    let ca = Ca::new("mesh ca");
    let a = ca.issue(&[San::Dns("a.example.com")], &rcgen::PKCS_ECDSA_P256_SHA256);
    let b = ca.issue(
        &[San::Dns("*.b.example.com")],
        &rcgen::PKCS_ECDSA_P256_SHA256,
    );
    let server = serve(downstream(vec![a.source(), b.source()])).await;

    let mut up = upstream_trusting(&ca, vec![]);
    up.sni = Some("x.b.example.com".to_owned());
    let tls = connect(&client(up), server.addr).await.unwrap();
    assert_eq!(peer_leaf(&tls), b.der);
    let tls = connect(&client(upstream_trusting(&ca, vec![])), server.addr)
        .await
        .unwrap();
    assert_eq!(peer_leaf(&tls), a.der);
}

// ---------------------------------------------------------------------------------------------
// Errors name the source and the problem

#[test]
fn errors_name_the_file_and_the_problem() {
    let dir = TempDir::new();
    let ca = Ca::new("mesh ca");
    let a = ca.issue(&[San::Dns("a")], &rcgen::PKCS_ECDSA_P256_SHA256);
    let b = ca.issue(&[San::Dns("b")], &rcgen::PKCS_ECDSA_P256_SHA256);

    let mismatched = CertificateSource {
        chain: inline(&a.cert_pem),
        key: inline(&b.key_pem),
    };
    let err = server_config(&downstream(vec![mismatched])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "certificate inline data and private key inline data do not match"
    );

    let key_path = dir.write("key.pem", &a.cert_pem);
    let no_key = CertificateSource {
        chain: inline(&a.cert_pem),
        key: DataSource::File(key_path.clone()),
    };
    let err = server_config(&downstream(vec![no_key])).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: no private key found", key_path.display())
    );

    let ca_path = dir.write("ca.pem", &a.key_pem);
    let mut up = upstream();
    up.validation = Some(Validation {
        trusted_ca: DataSource::File(ca_path.clone()),
        san_matchers: vec![],
    });
    let err = client_config(&up).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("trusted_ca {}: no certificates", ca_path.display())
    );

    let missing = dir.0.join("absent.pem");
    let err = server_config(&downstream(vec![CertificateSource {
        chain: DataSource::File(missing.clone()),
        key: inline(&a.key_pem),
    }]))
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("{}: cannot read", missing.display())),
        "{err}"
    );

    let err = server_config(&downstream(vec![CertificateSource {
        chain: DataSource::Env("WEFT_TLS_TEST_SURELY_UNSET".to_owned()),
        key: inline(&a.key_pem),
    }]))
    .unwrap_err();
    assert!(
        err.to_string().contains("WEFT_TLS_TEST_SURELY_UNSET"),
        "{err}"
    );

    let err = server_config(&downstream(vec![])).unwrap_err();
    assert!(matches!(err, TlsError::NoServerCertificate));

    let mut two = upstream();
    two.certificates = vec![a.source(), b.source()];
    assert!(matches!(
        client_config(&two),
        Err(TlsError::TooManyClientCertificates(2))
    ));
}

#[test]
fn rsa_ecdsa_and_ed25519_keys_load() {
    let ca = Ca::new("mesh ca");
    for alg in [
        &rcgen::PKCS_RSA_SHA256,
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
    ] {
        let leaf = ca.issue(&[San::Dns("server")], alg);
        server_config(&downstream(vec![leaf.source()])).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Rotation

#[tokio::test]
async fn reload_serves_new_certificates_and_keeps_old_connections() {
    let dir = TempDir::new();
    let ca = Ca::new("mesh ca");
    let first = ca.issue(&[San::Dns("server")], &rcgen::PKCS_ECDSA_P256_SHA256);
    let source = dir.write_leaf(&first);
    let handle = Arc::new(ServerTlsHandle::new(downstream(vec![source])).unwrap());
    let server = serve_handle(handle.clone()).await;
    let client = client(upstream_trusting(&ca, vec![]));

    let mut established = connect(&client, server.addr).await.unwrap();
    assert_eq!(peer_leaf(&established), first.der);
    assert!(!handle.reload().unwrap(), "nothing changed yet");

    let second = ca.issue(&[San::Dns("server")], &rcgen::PKCS_ECDSA_P256_SHA256);
    dir.write_leaf(&second);
    assert!(handle.reload().unwrap());
    assert!(!handle.reload().unwrap());
    let fresh = connect(&client, server.addr).await.unwrap();
    assert_eq!(peer_leaf(&fresh), second.der);
    ping(&mut established).await.unwrap();

    // A broken key: the error names the file, the last good configuration keeps serving.
    let key_path = dir.write("key.pem", "not a key");
    let err = handle.reload().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: no private key found", key_path.display())
    );
    let after = connect(&client, server.addr).await.unwrap();
    assert_eq!(peer_leaf(&after), second.der);
}

#[tokio::test]
async fn watcher_follows_a_kubernetes_style_symlink_swap() {
    let dir = TempDir::new();
    let ca = Ca::new("mesh ca");
    let first = ca.issue(&[San::Dns("server")], &rcgen::PKCS_ECDSA_P256_SHA256);
    // The layout of a mounted secret: tls.crt -> ..data/tls.crt, ..data -> ..<timestamp>/
    dir.k8s_generation("..gen1", &first);
    std::os::unix::fs::symlink("..gen1", dir.0.join("..data")).unwrap();
    for name in ["tls.crt", "tls.key"] {
        std::os::unix::fs::symlink(format!("..data/{name}"), dir.0.join(name)).unwrap();
    }
    let model = downstream(vec![CertificateSource {
        chain: DataSource::File(dir.0.join("tls.crt")),
        key: DataSource::File(dir.0.join("tls.key")),
    }]);
    let handle = Arc::new(ServerTlsHandle::new(model).unwrap());
    let _watcher = handle.watch().unwrap();
    let server = serve_handle(handle.clone()).await;
    let before = handle.config();

    let second = ca.issue(&[San::Dns("server")], &rcgen::PKCS_ECDSA_P256_SHA256);
    dir.k8s_generation("..gen2", &second);
    std::os::unix::fs::symlink("..gen2", dir.0.join("..data_tmp")).unwrap();
    std::fs::rename(dir.0.join("..data_tmp"), dir.0.join("..data")).unwrap();

    tokio::time::timeout(Duration::from_secs(10), async {
        while Arc::ptr_eq(&before, &handle.config()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the watcher reloads after the swap");
    let tls = connect(&client(upstream_trusting(&ca, vec![])), server.addr)
        .await
        .unwrap();
    assert_eq!(peer_leaf(&tls), second.der);
}

#[tokio::test]
async fn watcher_ignores_reads_of_the_files() {
    // Reloading reads the files, and inotify reports opens: a watcher that reacted to them
    // re-read its certificates every debounce period, forever, once anything opened them.
    let dir = TempDir::new();
    let ca = Ca::new("mesh ca");
    let source = dir.write_leaf(&ca.issue(&[San::Dns("server")], &rcgen::PKCS_ECDSA_P256_SHA256));
    let handle = Arc::new(ServerTlsHandle::new(downstream(vec![source])).unwrap());
    let _watcher = handle.watch().unwrap();

    for _ in 0..5 {
        for name in ["cert.pem", "key.pem"] {
            std::fs::read(dir.0.join(name)).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(handle.rereads(), 0, "reading the files is not a change");

    // A write is: one re-read (with the new certificate), and it does not feed itself.
    let before = handle.config();
    dir.write_leaf(&ca.issue(&[San::Dns("server")], &rcgen::PKCS_ECDSA_P256_SHA256));
    tokio::time::timeout(Duration::from_secs(10), async {
        while Arc::ptr_eq(&before, &handle.config()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the watcher reloads after a write");
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        handle.rereads(),
        1,
        "one write, one re-read: re-reading fed the watcher"
    );
}

// ---------------------------------------------------------------------------------------------
// Helpers

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

enum San<'a> {
    Dns(&'a str),
    Uri(&'a str),
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    fn issue(&self, sans: &[San<'_>], alg: &'static rcgen::SignatureAlgorithm) -> Leaf {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = sans
            .iter()
            .map(|san| match san {
                San::Dns(name) => rcgen::SanType::DnsName((*name).try_into().unwrap()),
                San::Uri(uri) => rcgen::SanType::URI((*uri).try_into().unwrap()),
            })
            .collect();
        let key = KeyPair::generate_for(alg).unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

impl Leaf {
    fn source(&self) -> CertificateSource {
        CertificateSource {
            chain: inline(&self.cert_pem),
            key: inline(&self.key_pem),
        }
    }
}

fn inline(pem: &str) -> DataSource {
    DataSource::Inline(pem.as_bytes().to_vec())
}

fn validation(ca: &Ca, san_matchers: Vec<SanMatcher>) -> Validation {
    Validation {
        trusted_ca: inline(&ca.pem),
        san_matchers,
    }
}

fn uri_exact(value: &str) -> SanMatcher {
    SanMatcher {
        san_type: SanType::Uri,
        matcher: NameMatcher::Exact(value.to_owned()),
    }
}

fn dns_exact(value: &str) -> SanMatcher {
    SanMatcher {
        san_type: SanType::Dns,
        matcher: NameMatcher::Exact(value.to_owned()),
    }
}

fn downstream(certificates: Vec<CertificateSource>) -> DownstreamTls {
    DownstreamTls {
        certificates,
        validation: None,
        require_client_certificate: false,
        alpn_protocols: vec![],
        min_version: TlsVersion::Auto,
        max_version: TlsVersion::Auto,
    }
}

fn upstream() -> UpstreamTls {
    UpstreamTls {
        certificates: vec![],
        validation: None,
        sni: None,
        alpn_protocols: vec![],
        min_version: TlsVersion::Auto,
        max_version: TlsVersion::Auto,
    }
}

fn upstream_trusting(ca: &Ca, san_matchers: Vec<SanMatcher>) -> UpstreamTls {
    UpstreamTls {
        validation: Some(validation(ca, san_matchers)),
        ..upstream()
    }
}

fn client(tls: UpstreamTls) -> ClientTlsHandle {
    ClientTlsHandle::new(tls).unwrap()
}

/// What the server saw of one handshake.
#[derive(Debug)]
struct Accepted {
    client_cert: Option<CertificateDer<'static>>,
}

struct Server {
    addr: SocketAddr,
    /// One entry per connection: the handshake's outcome (errors as text).
    outcomes: mpsc::UnboundedReceiver<Result<Accepted, String>>,
}

async fn serve(tls: DownstreamTls) -> Server {
    serve_handle(Arc::new(ServerTlsHandle::new(tls).unwrap())).await
}

/// A TLS echo server on loopback; it stops with the test's runtime.
async fn serve_handle(handle: Arc<ServerTlsHandle>) -> Server {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (report, outcomes) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let handle = handle.clone();
            let report = report.clone();
            tokio::spawn(async move {
                let mut tls = match handle.accept(tcp).await {
                    Ok(tls) => tls,
                    Err(err) => {
                        let _ = report.send(Err(err.to_string()));
                        return;
                    }
                };
                let client_cert = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first().cloned());
                let _ = report.send(Ok(Accepted { client_cert }));
                let mut buf = [0u8; 1024];
                loop {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if tls.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    Server { addr, outcomes }
}

type ClientStream = tokio_rustls::client::TlsStream<TcpStream>;

/// Handshake plus one round trip: in TLS 1.3 a rejected client certificate only shows after
/// the client's handshake has finished.
async fn connect(client: &ClientTlsHandle, addr: SocketAddr) -> io::Result<ClientStream> {
    let tcp = TcpStream::connect(addr).await?;
    let mut tls = client.connect(addr.ip(), tcp).await?;
    ping(&mut tls).await?;
    Ok(tls)
}

async fn ping<S>(tls: &mut S) -> io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tls.write_all(b"ping").await?;
    tls.flush().await?;
    let mut buf = [0u8; 4];
    tls.read_exact(&mut buf).await?;
    if &buf == b"ping" {
        Ok(())
    } else {
        Err(io::Error::other("echo mismatch"))
    }
}

fn peer_leaf(tls: &ClientStream) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// A client that advertises RSA signature schemes only.
fn rsa_only_client(ca: &Ca) -> tokio_rustls::TlsConnector {
    #[derive(Debug)]
    struct RsaOnly(TrustBundleServerVerifier);

    impl ServerCertVerifier for RsaOnly {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            intermediates: &[CertificateDer<'_>],
            server_name: &ServerName<'_>,
            ocsp: &[u8],
            now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            self.0
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls12_signature(message, cert, dss)
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.0.verify_tls13_signature(message, cert, dss)
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0
                .supported_verify_schemes()
                .into_iter()
                .filter(|s| format!("{s:?}").starts_with("RSA_"))
                .collect()
        }
    }

    let provider = crypto_provider();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem.as_bytes()).unwrap())
        .unwrap();
    let verifier = TrustBundleServerVerifier::new(Arc::new(roots), vec![], &provider);
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RsaOnly(verifier)))
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "weft-tls-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn write_leaf(&self, leaf: &Leaf) -> CertificateSource {
        CertificateSource {
            chain: DataSource::File(self.write("cert.pem", &leaf.cert_pem)),
            key: DataSource::File(self.write("key.pem", &leaf.key_pem)),
        }
    }

    fn k8s_generation(&self, name: &str, leaf: &Leaf) {
        let generation = self.0.join(name);
        std::fs::create_dir(&generation).unwrap();
        write_file(&generation.join("tls.crt"), &leaf.cert_pem);
        write_file(&generation.join("tls.key"), &leaf.key_pem);
    }
}

fn write_file(path: &Path, contents: &str) {
    std::fs::write(path, contents).unwrap();
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
