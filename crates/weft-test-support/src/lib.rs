//! Loopback test servers, certificates and a process harness for weft's integration tests and
//! benchmarks.
//!
//! Every helper is meant to be one short call in a test:
//!
//! - [`addr`]: free ports and distinct loopback addresses (`127.0.x.y`).
//! - [`HttpServer`]: an HTTP/1.1 + HTTP/2 (+ TLS, gRPC, WebSocket) server that reports who
//!   answered (`x-served-by`, a JSON body) and is scripted per request by `x-test-*` headers, or
//!   through its [`HttpServerHandle`] for what headers cannot express (fail the next N requests,
//!   flaky mode, idle keep-alive timeout, max requests per connection).
//! - [`TcpServer`]: echo, "identify" (sends its name, then echoes) and server-first banner
//!   servers.
//! - [`client`]: HTTP/1 and HTTP/2 clients that own exactly one connection, gRPC and WebSocket
//!   clients, and [`load()`], a bounded load loop.
//! - [`TestPki`]: a CA with server and SPIFFE client certificates, as PEM files and rustls
//!   configurations.
//! - [`mock_ads`]: a scripted ADS (xDS) server that records every request, and builders for
//!   the resources xDS tests send.
//! - [`process`]: child processes whose logs are shown when a test fails, and Envoy/weft binary
//!   lookup (and the Python interpreter with `grpcio` for stock gRPC xDS clients).
//!
//! Everything binds loopback only. Servers and loops stop by themselves: dropping a handle shuts
//! the server down, and every loop is bounded by a count and a deadline.

// This crate is scaffolding for tests only: when it cannot do what a test asked (bind a port,
// generate a certificate), the clearest outcome is a loud panic at the call site, so the
// workspace's no-panic lints are relaxed here and only here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod addr;
pub mod client;
mod grpc;
mod http_server;
mod io;
mod load;
pub mod mock_ads;
pub mod pki;
pub mod process;
mod sha1;
mod tcp;
mod tempdir;
mod websocket;

pub use addr::{free_addr, free_addr_on, free_port, loopback_ip, unique_loopback_ip};
pub use client::{
    ClientTls, GrpcReply, GrpcStream, HttpConnection, HttpVersion, TestResponse, WebSocketClient,
    WsMessage, grpc_stream, grpc_unary, http1_get, http2_get, https_get, streaming_body,
};
pub use http_server::{
    HttpServer, HttpServerBuilder, HttpServerHandle, Protocol, RecordedRequest, TlsInfo,
};
pub use load::{LoadConfig, LoadReport, load, load_with};
pub use mock_ads::MockAds;
pub use pki::{TestCert, TestPki, dangerous_client_config_no_verify};
pub use process::{
    ChildProcess, envoy_binary, python_grpc, require_envoy, require_python_grpc, wait_for_http_ok,
    wait_for_port, weft_binary,
};
pub use tcp::{
    TcpMode, TcpServer, TcpServerBuilder, TcpServerHandle, tcp_read_line, tcp_roundtrip,
};
pub use tempdir::TempDir;

/// The error type of the client helpers: tests mostly `unwrap()` it, and failure-path tests only
/// need to know that a request failed and why (as text).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
