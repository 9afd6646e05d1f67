use weft_test_support::{HttpServer, grpc_stream, grpc_unary};

#[tokio::test]
async fn unary_echo() {
    let server = HttpServer::builder().name("g").http2().start().await;
    let reply = grpc_unary(server.addr(), "/echo.Echo/Unary", &[], "ping")
        .await
        .unwrap();
    assert_eq!(reply.grpc_status, 0);
    assert_eq!(reply.message(), "ping");
    assert_eq!(reply.served_by(), Some("g"));
    assert_eq!(server.last_request().unwrap().path, "/echo.Echo/Unary");
}

#[tokio::test]
async fn scripted_status() {
    let server = HttpServer::start("g").await;
    let reply = grpc_unary(
        server.addr(),
        "/echo.Echo/Unary",
        &[
            ("x-test-grpc-status", "14"),
            ("x-test-grpc-message", "try later"),
        ],
        "ping",
    )
    .await
    .unwrap();
    assert_eq!(reply.grpc_status, 14);
    assert_eq!(reply.grpc_message.as_deref(), Some("try later"));
    assert!(reply.messages.is_empty());
}

#[tokio::test]
async fn bidirectional_streaming_echo() {
    let server = HttpServer::start("g").await;
    let mut stream = grpc_stream(server.addr(), "/echo.Echo/Stream", &[])
        .await
        .unwrap();
    for msg in ["a", "bb", "ccc"] {
        stream.send(msg).await.unwrap();
        // Answered before the next message is sent.
        assert_eq!(stream.recv().await.unwrap().unwrap(), msg);
    }
    let reply = stream.finish().await.unwrap();
    assert_eq!(reply.grpc_status, 0);
}
