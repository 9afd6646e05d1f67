use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use weft_test_support::{
    ClientTls, HttpServer, HttpVersion, TestPki, dangerous_client_config_no_verify, https_get,
};

#[tokio::test]
async fn https_with_both_versions_records_sni_and_alpn() {
    let pki = TestPki::new();
    let cert = pki.server_cert(&["api.test", "127.0.0.1"]);
    let server = HttpServer::builder()
        .name("tls")
        .tls(pki.server_config(&cert))
        .start()
        .await;
    assert!(server.url("/").starts_with("https://"));
    let tls = pki.client_tls("api.test", None);
    for (version, alpn) in [
        (HttpVersion::Http1, &b"http/1.1"[..]),
        (HttpVersion::Http2, b"h2"),
    ] {
        let resp = https_get(server.addr(), version, &tls, "api.test", "/", &[])
            .await
            .unwrap();
        assert_eq!(resp.served_by(), Some("tls"));
        let info = server.last_request().unwrap().tls.unwrap();
        assert_eq!(info.sni.as_deref(), Some("api.test"));
        assert_eq!(info.alpn.as_deref(), Some(alpn));
        assert!(info.peer_certificates.is_empty());
    }
    // IP SANs work too; a wrong name does not.
    let by_ip = pki.client_tls("127.0.0.1", None);
    assert!(
        https_get(server.addr(), HttpVersion::Http1, &by_ip, "x", "/", &[])
            .await
            .is_ok()
    );
    let wrong = pki.client_tls("other.test", None);
    assert!(
        https_get(server.addr(), HttpVersion::Http1, &wrong, "x", "/", &[])
            .await
            .is_err()
    );
}

#[tokio::test]
async fn mtls_with_a_spiffe_client_certificate() {
    let pki = TestPki::new();
    let server_cert = pki.server_cert(&["api.test"]);
    let client_cert = pki.client_cert("spiffe://cluster.local/ns/default/sa/foo");
    let server = HttpServer::builder()
        .tls(pki.server_config_mtls(&server_cert))
        .start()
        .await;

    let tls = pki.client_tls("api.test", Some(&client_cert));
    https_get(
        server.addr(),
        HttpVersion::Http2,
        &tls,
        "api.test",
        "/",
        &[],
    )
    .await
    .unwrap();
    let info = server.last_request().unwrap().tls.unwrap();
    assert_eq!(info.peer_certificates[0], client_cert.cert_der);

    let anonymous = pki.client_tls("api.test", None);
    assert!(
        https_get(
            server.addr(),
            HttpVersion::Http2,
            &anonymous,
            "api.test",
            "/",
            &[]
        )
        .await
        .is_err()
    );
}

#[tokio::test]
async fn spiffe_only_server_needs_the_no_verify_client() {
    let pki = TestPki::new();
    let workload = pki.client_cert("spiffe://cluster.local/ns/default/sa/backend");
    let server = HttpServer::builder()
        .tls(pki.server_config(&workload))
        .start()
        .await;
    let standard = pki.client_tls("backend.test", None);
    assert!(
        https_get(server.addr(), HttpVersion::Http1, &standard, "x", "/", &[])
            .await
            .is_err()
    );
    let lax = ClientTls::new(dangerous_client_config_no_verify(None), "backend.test");
    https_get(server.addr(), HttpVersion::Http1, &lax, "x", "/", &[])
        .await
        .unwrap();
}

#[test]
fn pem_files_are_written_for_file_based_configs() {
    let pki = TestPki::new();
    let cert = pki.server_cert(&["a.test"]);
    let from_file = CertificateDer::from_pem_file(&cert.cert_path).unwrap();
    assert_eq!(from_file, cert.cert_der);
    assert!(
        std::fs::read_to_string(&cert.key_path)
            .unwrap()
            .contains("PRIVATE KEY")
    );
    assert_eq!(
        CertificateDer::from_pem_file(pki.ca_path()).unwrap(),
        pki.ca().cert_der
    );
    let dir = pki.dir().to_path_buf();
    drop(pki);
    assert!(!dir.exists(), "the PKI directory is removed on drop");
}
