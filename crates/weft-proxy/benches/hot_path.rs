//! Hot-path micro-benchmarks of the proxy: header handling, path normalization, ClientHello
//! inspection and a full TLS 1.3 handshake with weft's verifiers. Route matching and load
//! balancer picks have their own benches in weft-proxy-route and weft-proxy-lb.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderValue};
use weft_proxy::http::path::normalize;
use weft_proxy::http::router::strip_hop_by_hop;
use weft_proxy::listener::inspect::tls_client_hello;
use weft_proxy_config::model::{
    CertificateSource, DataSource, DownstreamTls, EscapedSlashesAction, NameMatcher, SanMatcher,
    SanType, TlsVersion, UpstreamTls, Validation,
};

fn request_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "reviews.bookinfo.svc.cluster.local:9080"),
        ("user-agent", "curl/8.5.0"),
        ("accept", "*/*"),
        ("connection", "keep-alive, x-hop"),
        ("x-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("x-request-id", "9f1d8d5c-0c53-4b8a-9d3e-5d2f3c4b1a00"),
        ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
        ("content-type", "application/json"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h
}

fn headers(c: &mut Criterion) {
    let base = request_headers();
    c.bench_function("headers/strip_hop_by_hop (10 headers)", |b| {
        b.iter(|| {
            let mut h = base.clone();
            strip_hop_by_hop(&mut h, false);
            black_box(h)
        })
    });
    c.bench_function("path/normalize (dot segments, merge slashes)", |b| {
        b.iter(|| {
            black_box(normalize(
                black_box("/api/v1/../v2//users/./42?expand=true"),
                true,
                true,
                EscapedSlashesAction::KeepUnchanged,
            ))
        })
    });
}

struct Pki {
    _dir: std::path::PathBuf,
    server: DownstreamTls,
    client: UpstreamTls,
}

fn pki() -> Pki {
    let dir = std::env::temp_dir().join(format!("weft-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf = |name: &str, sans: Vec<rcgen::SanType>| {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.subject_alt_names = sans;
        let cert = p.signed_by(&key, &issuer).unwrap();
        let cert_path = dir.join(format!("{name}.pem"));
        let key_path = dir.join(format!("{name}-key.pem"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        CertificateSource {
            chain: DataSource::File(cert_path),
            key: DataSource::File(key_path),
        }
    };
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let spiffe = |id: &str| rcgen::SanType::URI(rcgen::string::Ia5String::try_from(id).unwrap());
    let server_cert = leaf(
        "server",
        vec![spiffe("spiffe://cluster.local/ns/default/sa/server")],
    );
    let client_cert = leaf(
        "client",
        vec![spiffe("spiffe://cluster.local/ns/default/sa/client")],
    );
    let validation = |peer: &str| Validation {
        trusted_ca: DataSource::File(ca_path.clone()),
        san_matchers: vec![SanMatcher {
            san_type: SanType::Uri,
            matcher: NameMatcher::Exact(peer.to_owned()),
        }],
    };
    Pki {
        server: DownstreamTls {
            certificates: vec![server_cert],
            validation: Some(validation("spiffe://cluster.local/ns/default/sa/client")),
            require_client_certificate: true,
            alpn_protocols: vec![],
            min_version: TlsVersion::Auto,
            max_version: TlsVersion::Auto,
        },
        client: UpstreamTls {
            certificates: vec![client_cert],
            validation: Some(validation("spiffe://cluster.local/ns/default/sa/server")),
            sni: Some("server.mesh.local".into()),
            alpn_protocols: vec![],
            min_version: TlsVersion::Auto,
            max_version: TlsVersion::Auto,
        },
        _dir: dir,
    }
}

/// One full mutual-TLS 1.3 handshake in memory (both sides), SPIFFE verification included.
fn handshake(server: &Arc<rustls::ServerConfig>, client: &Arc<rustls::ClientConfig>) {
    let name = rustls_pki_types::ServerName::try_from("server.mesh.local").unwrap();
    let mut c = rustls::ClientConnection::new(client.clone(), name).unwrap();
    let mut s = rustls::ServerConnection::new(server.clone()).unwrap();
    let mut buf = Vec::with_capacity(8192);
    while c.is_handshaking() || s.is_handshaking() {
        buf.clear();
        c.write_tls(&mut buf).unwrap();
        if !buf.is_empty() {
            s.read_tls(&mut buf.as_slice()).unwrap();
            s.process_new_packets().unwrap();
        }
        buf.clear();
        s.write_tls(&mut buf).unwrap();
        if !buf.is_empty() {
            c.read_tls(&mut buf.as_slice()).unwrap();
            c.process_new_packets().unwrap();
        }
    }
}

fn tls(c: &mut Criterion) {
    let pki = pki();
    let server = Arc::new(weft_proxy::tls::server_config(&pki.server).unwrap());
    let client = Arc::new(weft_proxy::tls::client_config(&pki.client).unwrap());
    c.bench_function("tls/mTLS 1.3 handshake, SPIFFE verification (P-256)", |b| {
        b.iter(|| handshake(&server, &client))
    });
    let name = rustls_pki_types::ServerName::try_from("server.mesh.local").unwrap();
    let mut conn = rustls::ClientConnection::new(client.clone(), name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    c.bench_function("tls_inspector/parse ClientHello", |b| {
        b.iter(|| black_box(tls_client_hello(black_box(&hello))))
    });
}

criterion_group!(benches, headers, tls);
criterion_main!(benches);
