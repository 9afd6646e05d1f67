use weft_test_support::{TcpServer, TestPki, free_addr, tcp_read_line, tcp_roundtrip};

#[tokio::test]
async fn echo() {
    let server = TcpServer::echo(free_addr()).await;
    let out = tcp_roundtrip(server.addr(), None, b"hello").await.unwrap();
    assert_eq!(out, b"hello");
    assert_eq!(server.connection_count(), 1);
}

#[tokio::test]
async fn identify_sends_its_name_then_echoes() {
    let server = TcpServer::identify("127.0.0.1:0".parse().unwrap(), "db-1").await;
    assert_eq!(tcp_read_line(server.addr()).await.unwrap(), "db-1");
    let out = tcp_roundtrip(server.addr(), None, b"x").await.unwrap();
    assert_eq!(out, b"db-1\nx");
}

#[tokio::test]
async fn banner_is_sent_before_the_client_speaks() {
    let server =
        TcpServer::banner("127.0.0.1:0".parse().unwrap(), b"220 smtp.test ESMTP\r\n").await;
    assert_eq!(
        tcp_read_line(server.addr()).await.unwrap(),
        "220 smtp.test ESMTP"
    );
}

#[tokio::test]
async fn tls_echo() {
    let pki = TestPki::new();
    let cert = pki.server_cert(&["db.test"]);
    let server = TcpServer::builder()
        .tls(pki.server_config(&cert))
        .start()
        .await;
    let tls = pki.client_tls("db.test", None);
    let out = tcp_roundtrip(server.addr(), Some(&tls), b"secret")
        .await
        .unwrap();
    assert_eq!(out, b"secret");
}
