//! Test clients that own exactly one connection, so a test knows which connection carried each
//! request (no pool reusing or opening connections behind its back).
//!
//! ```no_run
//! # async fn demo(addr: std::net::SocketAddr) {
//! use weft_test_support::{http1_get, HttpConnection, HttpVersion};
//! let resp = http1_get(addr, "example.com", "/", &[("x-test-status", "503")]).await.unwrap();
//! assert_eq!(resp.status, 503);
//! let mut conn = HttpConnection::connect(addr, HttpVersion::Http1).await.unwrap();
//! for _ in 0..3 {
//!     assert_eq!(conn.get("example.com", "/", &[]).await.unwrap().status, 200);
//! }
//! # }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use crate::grpc::{GrpcReply, GrpcStream, grpc_stream, grpc_unary};
pub use crate::io::ClientTls;
pub use crate::websocket::{WebSocketClient, WsMessage};

use crate::BoxError;
use crate::io::{BoxBody, ChannelBody, connect, full};

/// The request body type of [`HttpConnection::send_streaming`]; build one with
/// [`streaming_body`] or `http_body_util::BodyExt::boxed_unsync`.
pub type RequestBody = BoxBody;

/// A request body the test writes chunk by chunk while the request is in flight (for streaming
/// and full-duplex tests): `(sender, body)`; dropping the sender ends the body.
pub fn streaming_body() -> (BodySender, RequestBody) {
    let (tx, body) = ChannelBody::new(16);
    (BodySender(tx), body.boxed_unsync())
}

/// The writing end of a [`streaming_body`].
#[derive(Debug)]
pub struct BodySender(tokio::sync::mpsc::Sender<Result<hyper::body::Frame<Bytes>, BoxError>>);

impl BodySender {
    /// Sends one chunk.
    pub async fn send(&self, data: impl Into<Bytes>) -> Result<(), BoxError> {
        self.0
            .send(Ok(hyper::body::Frame::data(data.into())))
            .await
            .map_err(|_| "the request body is no longer read".into())
    }

    /// Ends the body with trailers.
    pub async fn finish_with_trailers(self, trailers: HeaderMap) -> Result<(), BoxError> {
        self.0
            .send(Ok(hyper::body::Frame::trailers(trailers)))
            .await
            .map_err(|_| "the request body is no longer read".into())
    }
}

/// Which HTTP version a client connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 (prior knowledge on plain TCP).
    Http2,
}

/// A response read to its end.
#[derive(Clone, Debug)]
pub struct TestResponse {
    /// Status code.
    pub status: StatusCode,
    /// HTTP version of the response.
    pub version: Version,
    /// Headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
    /// Trailers, if any were received.
    pub trailers: Option<HeaderMap>,
}

impl TestResponse {
    /// `x-served-by`: which test server answered.
    pub fn served_by(&self) -> Option<&str> {
        self.header("x-served-by")
    }

    /// The first value of header `name` as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON; panics with the body if it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("response body is not JSON ({e}): {:?}", self.text()))
    }
}

/// One HTTP/1.1 or HTTP/2 client connection. Dropping it closes the connection.
#[derive(Debug)]
pub struct HttpConnection {
    sender: Sender,
    tls: bool,
    closed: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
enum Sender {
    H1(http1::SendRequest<BoxBody>),
    H2(http2::SendRequest<BoxBody>),
}

impl HttpConnection {
    /// Opens a plain-TCP connection to `addr`.
    pub async fn connect(addr: SocketAddr, version: HttpVersion) -> Result<Self, BoxError> {
        Self::open(addr, version, None).await
    }

    /// Opens a TLS connection to `addr`. ALPN is set to the chosen version.
    pub async fn connect_tls(
        addr: SocketAddr,
        version: HttpVersion,
        tls: &ClientTls,
    ) -> Result<Self, BoxError> {
        let alpn: &[u8] = match version {
            HttpVersion::Http1 => b"http/1.1",
            HttpVersion::Http2 => b"h2",
        };
        Self::open(addr, version, Some(&tls.with_alpn(&[alpn]))).await
    }

    async fn open(
        addr: SocketAddr,
        version: HttpVersion,
        tls: Option<&ClientTls>,
    ) -> Result<Self, BoxError> {
        let io = TokioIo::new(connect(addr, tls).await?);
        let (closed_tx, closed) = watch::channel(false);
        let (sender, task) = match version {
            HttpVersion::Http1 => {
                let (sender, conn) = http1::handshake(io).await?;
                let task = tokio::spawn(async move {
                    let _ = conn.with_upgrades().await;
                    let _ = closed_tx.send(true);
                });
                (Sender::H1(sender), task)
            }
            HttpVersion::Http2 => {
                let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await?;
                let task = tokio::spawn(async move {
                    let _ = conn.await;
                    let _ = closed_tx.send(true);
                });
                (Sender::H2(sender), task)
            }
        };
        Ok(Self {
            sender,
            tls: tls.is_some(),
            closed,
            task,
        })
    }

    /// The connection's HTTP version.
    pub fn version(&self) -> HttpVersion {
        match self.sender {
            Sender::H1(_) => HttpVersion::Http1,
            Sender::H2(_) => HttpVersion::Http2,
        }
    }

    /// `GET path` with `Host`/`:authority` `host` and extra headers; reads the whole response.
    pub async fn get(
        &mut self,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<TestResponse, BoxError> {
        let mut req = Request::get(path).body(Bytes::new())?;
        req.headers_mut()
            .insert(header::HOST, HeaderValue::from_str(host)?);
        for (name, value) in headers {
            req.headers_mut().append(
                HeaderName::from_bytes(name.as_bytes())?,
                HeaderValue::from_str(value)?,
            );
        }
        self.send(req).await
    }

    /// Sends a request with a complete body and reads the whole response. The URI may be a
    /// path; the authority then comes from the `Host` header.
    pub async fn send(&mut self, req: Request<Bytes>) -> Result<TestResponse, BoxError> {
        let resp = self.send_streaming(req.map(full)).await?;
        read_response(resp).await
    }

    /// Sends a request with any body and returns the response as soon as its headers arrive.
    /// The request is adapted to the connection's version: HTTP/2 gets an absolute URI built
    /// from `Host`, HTTP/1 an origin-form URI and a `Host` header.
    pub async fn send_streaming(
        &mut self,
        mut req: Request<BoxBody>,
    ) -> Result<Response<Incoming>, BoxError> {
        let host = req
            .uri()
            .authority()
            .map(|a| a.to_string())
            .or_else(|| {
                req.headers()
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "localhost".to_owned());
        let path = req
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.to_string());
        match &mut self.sender {
            Sender::H1(sender) => {
                *req.uri_mut() = path.parse()?;
                *req.version_mut() = Version::HTTP_11;
                req.headers_mut()
                    .insert(header::HOST, HeaderValue::from_str(&host)?);
                sender.ready().await?;
                Ok(sender.send_request(req).await?)
            }
            Sender::H2(sender) => {
                let scheme = if self.tls { "https" } else { "http" };
                *req.uri_mut() = Uri::try_from(format!("{scheme}://{host}{path}"))?;
                *req.version_mut() = Version::HTTP_2;
                req.headers_mut().remove(header::HOST);
                sender.ready().await?;
                Ok(sender.send_request(req).await?)
            }
        }
    }

    /// Whether the connection is closed (by either side).
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Waits up to `timeout` for the peer to close the connection; returns whether it did.
    pub async fn wait_closed(&mut self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.closed.wait_for(|closed| *closed))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

impl Drop for HttpConnection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads a response to its end, trailers included.
pub(crate) async fn read_response(resp: Response<Incoming>) -> Result<TestResponse, BoxError> {
    let (parts, body) = resp.into_parts();
    let collected = body.collect().await?;
    let trailers = collected.trailers().cloned();
    Ok(TestResponse {
        status: parts.status,
        version: parts.version,
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    })
}

/// `GET http://host/path` over a fresh HTTP/1.1 connection to `addr`, closed afterwards.
pub async fn http1_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<TestResponse, BoxError> {
    let mut conn = HttpConnection::connect(addr, HttpVersion::Http1).await?;
    conn.get(host, path, headers).await
}

/// `GET http://host/path` over a fresh HTTP/2 (prior knowledge) connection to `addr`.
pub async fn http2_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<TestResponse, BoxError> {
    let mut conn = HttpConnection::connect(addr, HttpVersion::Http2).await?;
    conn.get(host, path, headers).await
}

/// `GET https://host/path` over a fresh TLS connection to `addr` (SNI and verification from
/// `tls`).
pub async fn https_get(
    addr: SocketAddr,
    version: HttpVersion,
    tls: &ClientTls,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<TestResponse, BoxError> {
    let mut conn = HttpConnection::connect_tls(addr, version, tls).await?;
    conn.get(host, path, headers).await
}
