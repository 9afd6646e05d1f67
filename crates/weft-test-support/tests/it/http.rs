use std::time::Duration;

use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_test_support::{
    HttpConnection, HttpServer, HttpVersion, WebSocketClient, WsMessage, http1_get, http2_get,
    streaming_body, unique_loopback_ip,
};

#[tokio::test]
async fn default_answer_reports_who_answered() {
    let server = HttpServer::start("v1").await;
    let resp = http1_get(
        server.addr(),
        "svc.test",
        "/hello?x=1",
        &[("x-custom", "a")],
    )
    .await
    .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.served_by(), Some("v1"));
    let json = resp.json();
    assert_eq!(json["server"], "v1");
    assert_eq!(json["method"], "GET");
    assert_eq!(json["path"], "/hello?x=1");
    assert_eq!(json["protocol"], "HTTP/1.1");
    assert_eq!(json["headers"]["x-custom"], "a");
    assert_eq!(json["headers"]["host"], "svc.test");

    let recorded = server.last_request().unwrap();
    assert_eq!(recorded.path, "/hello?x=1");
    assert_eq!(recorded.authority.as_deref(), Some("svc.test"));
    assert_eq!(recorded.header("x-custom"), Some("a"));
    assert_eq!(recorded.peer.ip(), server.addr().ip());
    assert_eq!(server.request_count(), 1);
}

#[tokio::test]
async fn http2_answers_and_records_protocol() {
    let server = HttpServer::builder().name("h2").http2().start().await;
    let resp = http2_get(server.addr(), "svc.test", "/", &[])
        .await
        .unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json()["protocol"], "HTTP/2.0");
    let recorded = server.last_request().unwrap();
    assert_eq!(recorded.version, http::Version::HTTP_2);
    assert_eq!(recorded.authority.as_deref(), Some("svc.test"));
    // An HTTP/2-only server refuses HTTP/1.
    assert!(
        http1_get(server.addr(), "svc.test", "/", &[])
            .await
            .is_err()
    );
}

#[tokio::test]
async fn binds_distinct_loopback_addresses() {
    let ip = unique_loopback_ip();
    let server = HttpServer::builder()
        .name("a")
        .bind((ip, 0).into())
        .start()
        .await;
    assert_eq!(server.addr().ip(), ip);
    let resp = http1_get(server.addr(), "x", "/", &[]).await.unwrap();
    assert_eq!(resp.served_by(), Some("a"));
}

#[tokio::test]
async fn scripting_headers_control_the_answer() {
    let server = HttpServer::start("s").await;
    let addr = server.addr();

    let resp = http1_get(addr, "x", "/", &[("x-test-status", "503")])
        .await
        .unwrap();
    assert_eq!(resp.status, 503);
    assert_eq!(resp.served_by(), Some("s"));

    let resp = http1_get(addr, "x", "/", &[("x-test-body-bytes", "1024")])
        .await
        .unwrap();
    assert_eq!(resp.body.len(), 1024);
    assert_eq!(resp.header("content-length"), Some("1024"));

    let started = std::time::Instant::now();
    http1_get(addr, "x", "/", &[("x-test-delay-ms", "200")])
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(200));

    let resp = http1_get(
        addr,
        "x",
        "/",
        &[
            ("x-test-response-header", "a=1"),
            ("x-test-response-header", "b=2"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(resp.header("a"), Some("1"));
    assert_eq!(resp.header("b"), Some("2"));

    let resp = http2_get(addr, "x", "/", &[("x-test-trailer", "grpc-status=14")])
        .await
        .unwrap();
    assert_eq!(resp.trailers.unwrap()["grpc-status"], "14");

    let resp = http1_get(addr, "x", "/", &[("x-test-status", "abc")])
        .await
        .unwrap();
    assert_eq!(resp.status, 400, "a malformed scripting header is reported");
}

#[tokio::test]
async fn close_header_closes_the_connection() {
    let server = HttpServer::start("s").await;
    for version in [HttpVersion::Http1, HttpVersion::Http2] {
        let mut conn = HttpConnection::connect(server.addr(), version)
            .await
            .unwrap();
        let resp = conn
            .get("x", "/", &[("x-test-close", "true")])
            .await
            .unwrap();
        assert_eq!(resp.status, 200);
        assert!(
            conn.wait_closed(Duration::from_secs(2)).await,
            "{version:?}"
        );
    }
}

#[tokio::test]
async fn reset_header_resets_the_tcp_connection() {
    let server = HttpServer::builder().http1().start().await;
    assert!(
        http1_get(server.addr(), "x", "/", &[("x-test-reset", "true")])
            .await
            .is_err()
    );

    // On the wire: RST, not FIN.
    let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\nx-test-reset: true\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let err = tcp.read(&mut buf).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset);
}

#[tokio::test]
async fn stream_reset_on_http2_keeps_the_connection() {
    let server = HttpServer::start("s").await;
    let mut conn = HttpConnection::connect(server.addr(), HttpVersion::Http2)
        .await
        .unwrap();
    assert!(
        conn.get("x", "/", &[("x-test-reset", "stream")])
            .await
            .is_err()
    );
    assert_eq!(conn.get("x", "/", &[]).await.unwrap().status, 200);
}

#[tokio::test]
async fn fail_next_and_flaky_mode() {
    let server = HttpServer::start("s").await;
    server.fail_next(2, 502);
    let mut conn = HttpConnection::connect(server.addr(), HttpVersion::Http1)
        .await
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(conn.get("x", "/", &[]).await.unwrap().status.as_u16());
    }
    assert_eq!(statuses, [502, 502, 200]);

    server.set_flaky(Some(2)); // requests 4, 6 fail
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(conn.get("x", "/", &[]).await.unwrap().status.as_u16());
    }
    assert_eq!(statuses, [503, 200, 503, 200]);
}

#[tokio::test]
async fn keep_alive_timeout_closes_idle_connections_with_fin() {
    let server = HttpServer::builder()
        .keep_alive_timeout(Duration::from_millis(300))
        .start()
        .await;
    let mut conn = HttpConnection::connect(server.addr(), HttpVersion::Http1)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    // A request slower than the timeout: busy connections are not idle.
    conn.get("x", "/", &[("x-test-delay-ms", "400")])
        .await
        .unwrap();
    assert!(!conn.is_closed());
    assert!(conn.wait_closed(Duration::from_secs(3)).await);
    assert!(started.elapsed() >= Duration::from_millis(700));

    // On the wire: a clean FIN (read returns 0), like nginx.
    let mut tcp = TcpStream::connect(server.addr()).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(3), tcp.read_to_end(&mut received))
        .await
        .unwrap()
        .unwrap();
    assert!(n > 0 && received.starts_with(b"HTTP/1.1 200"));

    // HTTP/2 gets GOAWAY, and the setting can change at run time.
    server.set_keep_alive_timeout(Some(Duration::from_millis(100)));
    let mut h2 = HttpConnection::connect(server.addr(), HttpVersion::Http2)
        .await
        .unwrap();
    h2.get("x", "/", &[]).await.unwrap();
    assert!(h2.wait_closed(Duration::from_secs(3)).await);
}

#[tokio::test]
async fn max_requests_per_connection() {
    let server = HttpServer::builder()
        .max_requests_per_connection(2)
        .start()
        .await;
    let mut conn = HttpConnection::connect(server.addr(), HttpVersion::Http1)
        .await
        .unwrap();
    assert_eq!(
        conn.get("x", "/", &[]).await.unwrap().header("connection"),
        None
    );
    let second = conn.get("x", "/", &[]).await.unwrap();
    assert_eq!(second.header("connection"), Some("close"));
    assert!(conn.wait_closed(Duration::from_secs(2)).await);
    let requests = server.requests();
    assert_eq!(requests[1].request_on_connection, 2);
    assert_eq!(requests[0].connection_id, requests[1].connection_id);
}

#[tokio::test]
async fn echo_streams_the_body_back() {
    let server = HttpServer::start("s").await;
    for version in [HttpVersion::Http1, HttpVersion::Http2] {
        let mut conn = HttpConnection::connect(server.addr(), version)
            .await
            .unwrap();
        let (tx, body) = streaming_body();
        let req = http::Request::post("/echo")
            .header("host", "x")
            .body(body)
            .unwrap();
        let resp = conn.send_streaming(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        if version == HttpVersion::Http1 {
            assert_eq!(resp.headers()["transfer-encoding"], "chunked");
        }
        let mut body = resp.into_body();
        // Each chunk comes back before the next is sent: the echo streams.
        for chunk in ["hello", "world"] {
            tx.send(chunk).await.unwrap();
            let frame = body.frame().await.unwrap().unwrap();
            assert_eq!(frame.into_data().unwrap(), chunk);
        }
        drop(tx);
        // HTTP/2 may end the stream with an empty DATA frame: nothing more is echoed.
        let rest = body.collect().await.unwrap().to_bytes();
        assert!(rest.is_empty(), "{version:?}: {rest:?}");
    }
}

#[tokio::test]
async fn websocket_frames_are_echoed() {
    let server = HttpServer::start("ws").await;
    let mut ws = WebSocketClient::connect(server.addr(), "x", "/chat")
        .await
        .unwrap();
    assert_eq!(ws.served_by(), Some("ws"));
    ws.send_text("hi").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), WsMessage::Text("hi".into()));
    let big = vec![7u8; 70_000];
    ws.send_binary(&big).await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), WsMessage::Binary(big.into()));
    ws.ping(b"p").await.unwrap();
    assert_eq!(ws.recv().await.unwrap(), WsMessage::Pong("p".into()));
    ws.close().await.unwrap();
}

#[tokio::test]
async fn dropping_the_handle_stops_the_server() {
    let server = HttpServer::start("s").await;
    let addr = server.addr();
    let mut conn = HttpConnection::connect(addr, HttpVersion::Http1)
        .await
        .unwrap();
    conn.get("x", "/", &[]).await.unwrap();
    server.shutdown().await;
    assert!(
        conn.wait_closed(Duration::from_secs(2)).await,
        "open connections are closed"
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn connection_counters() {
    let server = HttpServer::start("s").await;
    let mut conn = HttpConnection::connect(server.addr(), HttpVersion::Http1)
        .await
        .unwrap();
    conn.get("x", "/", &[]).await.unwrap();
    conn.get("x", "/", &[]).await.unwrap();
    assert_eq!(server.connection_count(), 1);
    assert_eq!(server.open_connections(), 1);
    assert_eq!(server.request_count(), 2);
    drop(conn);
    for _ in 0..100 {
        if server.open_connections() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the closed connection is still counted as open");
}

#[tokio::test]
async fn records_request_bodies_and_http1_only_refuses_http2() {
    let server = HttpServer::builder().name("h1").http1().start().await;
    let mut conn = HttpConnection::connect(server.addr(), HttpVersion::Http1)
        .await
        .unwrap();
    let req = http::Request::post("/submit")
        .header("host", "x")
        .body(bytes::Bytes::from_static(b"payload"))
        .unwrap();
    let resp = conn.send(req).await.unwrap();
    assert_eq!(resp.json()["body_len"], 7);
    let recorded = server.last_request().unwrap();
    assert_eq!(recorded.method, http::Method::POST);
    assert_eq!(recorded.body, "payload");
    assert!(http2_get(server.addr(), "x", "/", &[]).await.is_err());
}
