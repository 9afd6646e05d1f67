//! gRPC over plain hyper: 5-byte length-prefixed messages, `grpc-status` trailers. The server
//! side echoes every message (unary and bidirectional streaming are the same code); the client
//! side sends raw message bytes, so tests need no protobuf code generation.

use std::net::SocketAddr;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use tokio::sync::{mpsc, watch};

use crate::BoxError;
use crate::client::{HttpConnection, HttpVersion};
use crate::io::{BoxBody, ChannelBody};

/// gRPC status `UNKNOWN`, reported when a response carries no `grpc-status` at all.
const UNKNOWN: u32 = 2;
const INTERNAL: u32 = 13;
/// Larger messages are a test bug, not something to buffer.
const MAX_MESSAGE: usize = 16 << 20;

pub(crate) fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// The echo service: each request message is sent back as soon as it is complete; the status
/// comes last in trailers. With a scripted non-zero status nothing is echoed.
pub(crate) fn respond(
    body: Incoming,
    scripted_status: Option<u32>,
    scripted_message: Option<String>,
    mut shutdown: watch::Receiver<()>,
) -> Response<BoxBody> {
    let (tx, out) = ChannelBody::new(16);
    tokio::spawn(async move {
        let (status, message) = match scripted_status {
            Some(status) if status != 0 => (status, scripted_message),
            _ => {
                let echoed = tokio::select! {
                    r = echo_messages(body, &tx) => r,
                    _ = shutdown.changed() => return,
                };
                match echoed {
                    Ok(()) => (0, scripted_message),
                    Err(e) => (INTERNAL, Some(e.to_string())),
                }
            }
        };
        let _ = tx
            .send(Ok(Frame::trailers(status_trailers(status, message))))
            .await;
    });
    let mut resp = Response::new(out.boxed_unsync());
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    resp
}

async fn echo_messages(
    mut body: Incoming,
    tx: &mpsc::Sender<Result<Frame<Bytes>, BoxError>>,
) -> Result<(), BoxError> {
    let mut decoder = Decoder::default();
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        decoder.push(&data);
        while let Some(message) = decoder.next()? {
            if tx.send(Ok(Frame::data(encode(&message)))).await.is_err() {
                return Ok(());
            }
        }
    }
    decoder.finish()
}

fn status_trailers(status: u32, message: Option<String>) -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(status));
    if let Some(message) = message.and_then(|m| HeaderValue::from_str(&m).ok()) {
        trailers.insert("grpc-message", message);
    }
    trailers
}

/// Frames one uncompressed gRPC message.
pub(crate) fn encode(message: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(5 + message.len());
    buf.put_u8(0);
    buf.put_u32(u32::try_from(message.len()).unwrap_or(u32::MAX));
    buf.put_slice(message);
    buf.freeze()
}

/// Splits a byte stream into gRPC messages (the compression flag is ignored: tests send
/// uncompressed messages).
#[derive(Default)]
struct Decoder {
    buf: BytesMut,
}

impl Decoder {
    fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    fn next(&mut self) -> Result<Option<Bytes>, BoxError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_MESSAGE {
            return Err(format!("gRPC message of {len} bytes is over the test limit").into());
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        self.buf.advance(5);
        Ok(Some(self.buf.split_to(len).freeze()))
    }

    fn finish(&self) -> Result<(), BoxError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "stream ended inside a gRPC message ({} bytes left)",
                self.buf.len()
            )
            .into())
        }
    }
}

/// The outcome of a gRPC call.
#[derive(Clone, Debug)]
pub struct GrpcReply {
    /// HTTP status (200 unless something in between failed the call at the HTTP level).
    pub http_status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// Messages received, in order.
    pub messages: Vec<Bytes>,
    /// `grpc-status` from the trailers, or from the headers of a trailers-only response
    /// (Envoy's local replies); `2` (UNKNOWN) when absent.
    pub grpc_status: u32,
    /// `grpc-message`, if any.
    pub grpc_message: Option<String>,
    /// Trailers as received.
    pub trailers: Option<HeaderMap>,
}

impl GrpcReply {
    /// The first message (empty if none): the answer of a unary call.
    pub fn message(&self) -> Bytes {
        self.messages.first().cloned().unwrap_or_default()
    }

    /// `x-served-by`: which test server answered.
    pub fn served_by(&self) -> Option<&str> {
        self.headers
            .get("x-served-by")
            .and_then(|v| v.to_str().ok())
    }

    fn new(http_status: StatusCode, headers: HeaderMap) -> Self {
        Self {
            http_status,
            headers,
            messages: Vec::new(),
            grpc_status: UNKNOWN,
            grpc_message: None,
            trailers: None,
        }
    }

    fn set_status_from(&mut self, map: &HeaderMap) {
        if let Some(status) = map
            .get("grpc-status")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
        {
            self.grpc_status = status;
            self.grpc_message = map
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
        }
    }
}

/// One unary call: sends `message` to `path` (e.g. `/echo.Echo/Unary`) over a fresh HTTP/2
/// connection to `addr`, with extra request metadata (`x-test-grpc-status`...).
pub async fn grpc_unary(
    addr: SocketAddr,
    path: &str,
    metadata: &[(&str, &str)],
    message: impl Into<Bytes>,
) -> Result<GrpcReply, BoxError> {
    let mut stream = grpc_stream(addr, path, metadata).await?;
    // A server may answer (with an error status) before reading the request; its status is
    // what the test wants, not the failed send.
    let _ = stream.send(message).await;
    stream.finish().await
}

/// Opens a bidirectional-streaming call over a fresh HTTP/2 connection to `addr`.
pub async fn grpc_stream(
    addr: SocketAddr,
    path: &str,
    metadata: &[(&str, &str)],
) -> Result<GrpcStream, BoxError> {
    let mut conn = HttpConnection::connect(addr, HttpVersion::Http2).await?;
    let (tx, body) = ChannelBody::new(16);
    let mut req = Request::post(format!("http://{addr}{path}")).body(body.boxed_unsync())?;
    let headers = req.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert("te", HeaderValue::from_static("trailers"));
    for (name, value) in metadata {
        headers.append(
            http::header::HeaderName::from_bytes(name.as_bytes())?,
            HeaderValue::from_str(value)?,
        );
    }
    let resp = conn.send_streaming(req).await?;
    let (parts, body) = resp.into_parts();
    let mut reply = GrpcReply::new(parts.status, parts.headers);
    let headers = reply.headers.clone();
    reply.set_status_from(&headers);
    Ok(GrpcStream {
        tx: Some(tx),
        body,
        decoder: Decoder::default(),
        reply,
        _conn: conn,
    })
}

/// A bidirectional-streaming gRPC call in progress.
#[derive(Debug)]
pub struct GrpcStream {
    tx: Option<mpsc::Sender<Result<Frame<Bytes>, BoxError>>>,
    body: Incoming,
    decoder: Decoder,
    reply: GrpcReply,
    _conn: HttpConnection,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl GrpcStream {
    /// The response headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.reply.headers
    }

    /// Sends one message.
    pub async fn send(&mut self, message: impl Into<Bytes>) -> Result<(), BoxError> {
        let tx = self.tx.as_ref().ok_or("send after close_send")?;
        tx.send(Ok(Frame::data(encode(&message.into()))))
            .await
            .map_err(|_| "the request stream is closed".into())
    }

    /// Half-closes the request stream (end of client messages).
    pub fn close_send(&mut self) {
        self.tx = None;
    }

    /// The next message, or `None` once the server ended the stream (see [`Self::finish`] for
    /// the status).
    pub async fn recv(&mut self) -> Result<Option<Bytes>, BoxError> {
        loop {
            if let Some(message) = self.decoder.next()? {
                return Ok(Some(message));
            }
            match self.body.frame().await {
                None => return self.decoder.finish().map(|()| None),
                Some(frame) => match frame?.into_data() {
                    Ok(data) => self.decoder.push(&data),
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.reply.set_status_from(&trailers);
                            self.reply.trailers = Some(trailers);
                        }
                    }
                },
            }
        }
    }

    /// Half-closes, reads the remaining messages and returns the whole reply (messages received
    /// through [`Self::recv`] are not repeated).
    pub async fn finish(mut self) -> Result<GrpcReply, BoxError> {
        self.close_send();
        while let Some(message) = self.recv().await? {
            self.reply.messages.push(message);
        }
        Ok(self.reply)
    }
}
