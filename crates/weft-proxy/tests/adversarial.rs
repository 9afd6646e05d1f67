//! Hostile clients on loopback: request smuggling, malformed and oversized requests, HTTP/2
//! rapid reset and CONTINUATION floods. The proxy answers as Envoy does (or drops the
//! connection), forwards nothing it refused, and keeps serving everyone else.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_proxy::Proxy;
use weft_test_support::{HttpServer, HttpServerHandle, http1_get, http2_get};

async fn start() -> (std::sync::Arc<Proxy>, SocketAddr, HttpServerHandle) {
    let upstream = HttpServer::start("a").await;
    let cfg = single_route_config(vec![cluster("backend", &[upstream.addr()])]);
    let proxy = Proxy::new();
    proxy.apply(cfg).await.expect("config applies");
    let addr = proxy.listener_address("ingress").expect("bound");
    (proxy, addr, upstream)
}

/// Writes `bytes` on a new connection and reads until the proxy closes it (at most 5 s).
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> (String, bool) {
    let mut sock = TcpStream::connect(addr).await.unwrap();
    // The proxy may close before taking everything: that is one of the answers.
    let _ = sock.write_all(bytes).await;
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut got))
        .await
        .is_ok();
    (String::from_utf8_lossy(&got).into_owned(), closed)
}

/// The proxy still serves ordinary requests, both protocols.
async fn still_serves(addr: SocketAddr) {
    assert_eq!(http1_get(addr, "x", "/", &[]).await.unwrap().status, 200);
    assert_eq!(http2_get(addr, "x", "/", &[]).await.unwrap().status, 200);
}

/// Envoy's answer to a request its codec refuses: the status, its reason as a text body, the
/// usual local-reply headers, and the connection closed.
fn assert_envoy_refusal(reply: &str, closed: bool, status: &str, text: &str) {
    assert!(reply.starts_with(&format!("HTTP/1.1 {status}")), "{reply}");
    let lower = reply.to_ascii_lowercase();
    for header in [
        "content-type: text/plain",
        "server: envoy",
        "connection: close",
    ] {
        assert!(lower.contains(header), "{header} in {reply}");
    }
    assert!(reply.ends_with(text), "{text:?} ends {reply:?}");
    assert_eq!(reply.matches("HTTP/1.1").count(), 1, "one answer: {reply}");
    assert!(closed, "the connection is closed");
}

/// CL.TE: a front end going by `Content-Length` and a back end going by `Transfer-Encoding`
/// would disagree on where the request ends. Envoy refuses the request; so does weft, and the
/// smuggled request after it never reaches the upstream.
#[tokio::test]
async fn content_length_with_transfer_encoding_is_refused() {
    let (_proxy, addr, upstream) = start().await;
    for head in [
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n",
    ] {
        let attack = format!("{head}0\r\n\r\nGET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n");
        let (reply, closed) = exchange(addr, attack.as_bytes()).await;
        assert_envoy_refusal(&reply, closed, "400", "Bad Request");
    }
    assert_eq!(upstream.request_count(), 0);
    still_serves(addr).await;
}

#[tokio::test]
async fn a_repeated_content_length_is_refused() {
    let (_proxy, addr, upstream) = start().await;
    for lengths in ["3\r\ncontent-length: 3", "3\r\ncontent-length: 4", "3, 3"] {
        let attack = format!("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {lengths}\r\n\r\nabcd");
        let (reply, closed) = exchange(addr, attack.as_bytes()).await;
        assert_envoy_refusal(&reply, closed, "400", "Bad Request");
    }
    assert_eq!(upstream.request_count(), 0);
    still_serves(addr).await;
}

/// hyper would decode `gzip, chunked` as chunked and forward the body as if it had no other
/// coding; Envoy does not implement transfer codings other than chunked.
#[tokio::test]
async fn transfer_codings_other_than_chunked_are_not_implemented() {
    let (_proxy, addr, upstream) = start().await;
    for coding in ["gzip, chunked", "chunked, gzip"] {
        let attack = format!(
            "POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: {coding}\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
        );
        let (reply, closed) = exchange(addr, attack.as_bytes()).await;
        assert_envoy_refusal(&reply, closed, "501", "Not Implemented");
    }
    assert_eq!(upstream.request_count(), 0);
    still_serves(addr).await;
}

/// Requests hyper's parser rejects get Envoy's answer, not hyper's bare one.
#[tokio::test]
async fn malformed_requests_get_envoys_400() {
    let (_proxy, addr, upstream) = start().await;
    for attack in [
        &b"GET / HTTP/1.1\r\nhost : x\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nhost: x\r\nx-a: a\x00b\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: x\r\nx(a): b\r\n\r\n",
        b"GET /a b HTTP/1.1\r\nhost: x\r\n\r\n",
        b"\x16\x03\x01\x00\x05hello\r\n\r\n",
    ] {
        let (reply, closed) = exchange(addr, attack).await;
        assert_envoy_refusal(&reply, closed, "400", "Bad Request");
    }
    assert_eq!(upstream.request_count(), 0);
    still_serves(addr).await;
}

#[tokio::test]
async fn oversized_heads_get_envoys_431() {
    let (_proxy, addr, upstream) = start().await;
    let long_header = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-a: {}\r\n\r\n",
        "a".repeat(70_000)
    );
    let long_uri = format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70_000));
    for attack in [long_header, long_uri] {
        let (reply, closed) = exchange(addr, attack.as_bytes()).await;
        assert_envoy_refusal(&reply, closed, "431", "Request Header Fields Too Large");
    }
    assert_eq!(upstream.request_count(), 0);
    still_serves(addr).await;
}

/// An HTTP/2 frame: 9-byte header, then `payload`.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
/// HPACK: `:method GET`, `:scheme http`, `:path /` (static table), `:authority x` (literal,
/// not indexed).
const GET_X: &[u8] = &[0x82, 0x86, 0x84, 0x01, 0x01, b'x'];

/// CVE-2023-44487: streams opened and reset at once, as fast as the client can write. The
/// connection is closed after a bounded number of them, few reach the upstream, and the proxy
/// keeps serving.
#[tokio::test]
async fn http2_rapid_reset_is_cut_off() {
    let (_proxy, addr, upstream) = start().await;
    let mut attack = PREFACE.to_vec();
    attack.extend(frame(SETTINGS, 0, 0, &[]));
    for i in 0..5_000u32 {
        let stream = 2 * i + 1;
        attack.extend(frame(HEADERS, END_STREAM | END_HEADERS, stream, GET_X));
        attack.extend(frame(RST_STREAM, 0, stream, &8u32.to_be_bytes()));
    }
    let (_, closed) = exchange(addr, &attack).await;
    assert!(closed, "the connection is closed");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let reached = upstream.request_count();
    assert!(
        reached < 500,
        "{reached} of 5,000 reset streams reached the upstream"
    );
    still_serves(addr).await;
}

/// CVE-2024-27316 and kin: a header block that never ends, CONTINUATION after CONTINUATION.
/// The proxy stops reading it at its header list limit; nothing reaches the upstream.
#[tokio::test]
async fn http2_continuation_flood_is_cut_off() {
    let (_proxy, addr, upstream) = start().await;
    let mut attack = PREFACE.to_vec();
    attack.extend(frame(SETTINGS, 0, 0, &[]));
    attack.extend(frame(HEADERS, END_STREAM, 1, GET_X));
    // `x-a: <1,000 bytes>`, literal without indexing, new name.
    let mut field = vec![0x00, 0x03, b'x', b'-', b'a', 0x7f, 0xe9, 0x06];
    field.extend(std::iter::repeat_n(b'a', 1000));
    for _ in 0..2_000 {
        attack.extend(frame(CONTINUATION, 0, 1, &field));
    }
    let (_, closed) = exchange(addr, &attack).await;
    assert!(closed, "the connection is closed");
    assert_eq!(upstream.request_count(), 0);
    still_serves(addr).await;
}
