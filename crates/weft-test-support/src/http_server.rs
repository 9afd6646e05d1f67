//! The scripted HTTP test server (see [`HttpServer`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use parking_lot::Mutex;
use rustls_pki_types::CertificateDer;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::BoxError;
use crate::io::{BoxBody, BoxIo, empty, full};
use crate::{grpc, websocket};

/// Which HTTP versions a server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 only (ALPN `http/1.1`).
    Http1,
    /// HTTP/2 only, prior knowledge on plain TCP (ALPN `h2`).
    Http2,
    /// Both: detected from the connection preface (ALPN `h2`, `http/1.1`).
    Auto,
}

/// An HTTP/1.1 + HTTP/2 test server that reports who answered and is scripted per request.
///
/// Default answer: `200` with header `x-served-by: <name>` and a JSON body
/// `{"server", "method", "path", "headers", "body_len", "protocol", "peer", "connection"}`.
///
/// Request headers script the answer, so a test can make an upstream misbehave without new code:
///
/// | header | effect |
/// |---|---|
/// | `x-test-status: 503` | answer with this status |
/// | `x-test-delay-ms: 200` | wait before answering (at most 5 minutes) |
/// | `x-test-body-bytes: 1024` | the body is this many `x` bytes instead of JSON |
/// | `x-test-close: true` | close the connection after the response (`Connection: close` on HTTP/1, `GOAWAY` on HTTP/2) |
/// | `x-test-reset: true` | reset the connection (TCP RST, no response) |
/// | `x-test-reset: stream` | HTTP/2: reset only the stream (`RST_STREAM`); HTTP/1: as `true` |
/// | `x-test-response-header: name=value` | add a response header (repeatable) |
/// | `x-test-trailer: grpc-status=14` | add a response trailer (repeatable; HTTP/1 sends trailers only to clients that sent `TE: trailers`) |
/// | `x-test-grpc-status: 14`, `x-test-grpc-message: ...` | gRPC requests: end with this status instead of echoing |
///
/// Paths and kinds of request:
/// - `/echo` (any method): the request body is streamed back as it arrives (chunked on HTTP/1).
/// - `content-type: application/grpc*`: a gRPC echo (unary and bidirectional streaming): every
///   length-prefixed message is sent back, then trailers `grpc-status: 0`.
/// - `Upgrade: websocket` (HTTP/1): `101 Switching Protocols`, then WebSocket frames are echoed.
///
/// A malformed `x-test-*` header is answered with `400` and the reason, so a typo doesn't pass
/// silently.
///
/// Entry point: `HttpServer::builder()...start().await`, or [`HttpServer::start`].
#[derive(Debug)]
pub struct HttpServer;

impl HttpServer {
    /// A builder for a server named `"server"`, on `127.0.0.1:0`, speaking both HTTP versions.
    pub fn builder() -> HttpServerBuilder {
        HttpServerBuilder {
            name: "server".to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            protocol: Protocol::Auto,
            tls: None,
            behaviour: Behaviour::default(),
        }
    }

    /// Starts a plain HTTP/1.1 + HTTP/2 server named `name` on `127.0.0.1:<free port>`.
    pub async fn start(name: &str) -> HttpServerHandle {
        Self::builder().name(name).start().await
    }
}

/// Configures an [`HttpServer`].
#[derive(Debug)]
pub struct HttpServerBuilder {
    name: String,
    addr: SocketAddr,
    protocol: Protocol,
    tls: Option<Arc<rustls::ServerConfig>>,
    behaviour: Behaviour,
}

impl HttpServerBuilder {
    /// The name reported in `x-served-by` and the JSON body.
    pub fn name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.name);
        self
    }

    /// The address to listen on (port 0 picks a free port; read it back with
    /// [`HttpServerHandle::addr`]). Must be loopback.
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// HTTP/1.1 only.
    pub fn http1(mut self) -> Self {
        self.protocol = Protocol::Http1;
        self
    }

    /// HTTP/2 only.
    pub fn http2(mut self) -> Self {
        self.protocol = Protocol::Http2;
        self
    }

    /// HTTP/1.1 and HTTP/2 (the default).
    pub fn auto(mut self) -> Self {
        self.protocol = Protocol::Auto;
        self
    }

    /// Serve TLS with this configuration (see [`crate::TestPki::server_config`]). Its ALPN list
    /// is replaced to match the protocol.
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Close connections idle for this long, like nginx's `keepalive_timeout`
    /// (also settable later: [`HttpServerHandle::set_keep_alive_timeout`]).
    pub fn keep_alive_timeout(mut self, timeout: Duration) -> Self {
        self.behaviour.keep_alive_timeout = Some(timeout);
        self
    }

    /// Close each connection after this many requests, like nginx's `keepalive_requests`.
    pub fn max_requests_per_connection(mut self, max: u64) -> Self {
        self.behaviour.max_requests_per_connection = Some(max);
        self
    }

    /// Binds and starts serving. Panics if the address cannot be bound.
    pub async fn start(self) -> HttpServerHandle {
        assert!(
            self.addr.ip().is_loopback(),
            "tests only bind loopback, got {}",
            self.addr
        );
        let listener = TcpListener::bind(self.addr).await.unwrap_or_else(|e| {
            panic!("HTTP test server {:?}: bind {}: {e}", self.name, self.addr)
        });
        let addr = listener
            .local_addr()
            .expect("local_addr of a bound listener");
        let acceptor = self.tls.map(|config| {
            let mut config = (*config).clone();
            config.alpn_protocols = match self.protocol {
                Protocol::Http1 => vec![b"http/1.1".to_vec()],
                Protocol::Http2 => vec![b"h2".to_vec()],
                Protocol::Auto => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            };
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        });
        // hyper-util's auto builder ignores `http1_only`/`http2_only` when serving upgrades, so
        // single-version servers use hyper's own builders.
        let builder = match self.protocol {
            Protocol::Http1 => ConnBuilder::Http1(hyper::server::conn::http1::Builder::new()),
            Protocol::Http2 => ConnBuilder::Http2(hyper::server::conn::http2::Builder::new(
                TokioExecutor::new(),
            )),
            Protocol::Auto => ConnBuilder::Auto(auto::Builder::new(TokioExecutor::new())),
        };
        let (shutdown_tx, shutdown_rx) = watch::channel(());
        let shared = Arc::new(Shared {
            name: self.name,
            tls: acceptor.is_some(),
            requests: Mutex::new(VecDeque::new()),
            request_count: AtomicU64::new(0),
            connection_count: AtomicU64::new(0),
            open_connections: AtomicU64::new(0),
            behaviour: Mutex::new(self.behaviour),
            shutdown: shutdown_rx.clone(),
        });
        let task = tokio::spawn(accept_loop(
            listener,
            shared.clone(),
            acceptor,
            Arc::new(builder),
            shutdown_rx,
        ));
        tracing::debug!(name = %shared.name, %addr, "HTTP test server started");
        HttpServerHandle {
            addr,
            shared,
            shutdown: Some(shutdown_tx),
            task: Some(task),
        }
    }
}

/// A running [`HttpServer`]. Dropping it stops the server and every connection it accepted.
#[derive(Debug)]
pub struct HttpServerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<watch::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl HttpServerHandle {
    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's name (its `x-served-by`).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// `http://<addr><path>` (`https` when serving TLS).
    pub fn url(&self, path: &str) -> String {
        let scheme = if self.shared.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// Requests received so far (counted when their headers arrive).
    pub fn request_count(&self) -> u64 {
        self.shared.request_count.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connection_count(&self) -> u64 {
        self.shared.connection_count.load(Ordering::SeqCst)
    }

    /// Connections currently open.
    pub fn open_connections(&self) -> u64 {
        self.shared.open_connections.load(Ordering::SeqCst)
    }

    /// The requests received, oldest first: the last 10,000, so load tests don't grow memory
    /// without bound. Bodies of streamed requests (`/echo`, gRPC, WebSocket) are not recorded.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.requests.lock().iter().cloned().collect()
    }

    /// The most recent request, if any.
    pub fn last_request(&self) -> Option<RecordedRequest> {
        self.shared.requests.lock().back().cloned()
    }

    /// Forgets recorded requests (counters keep counting).
    pub fn clear_requests(&self) {
        self.shared.requests.lock().clear();
    }

    /// Answers the next `n` requests with `status`, whatever their headers say (retry tests).
    pub fn fail_next(&self, n: u32, status: u16) {
        let mut b = self.shared.behaviour.lock();
        b.fail_next = n;
        b.fail_status = StatusCode::from_u16(status).expect("valid status code");
    }

    /// Flaky mode: every `k`-th request (counting from the server's start) gets `503`;
    /// `None` turns it off.
    pub fn set_flaky(&self, every: Option<u64>) {
        self.shared.behaviour.lock().flaky_every = every.filter(|k| *k > 0);
    }

    /// Closes connections that have had no request in flight for `timeout`, the way nginx and
    /// Node do: the server sends FIN (HTTP/2: `GOAWAY`) on an idle keep-alive connection. A
    /// client that reuses the connection at that moment loses the race (Envoy's "503 UC").
    /// Applies to open connections too. `None` (the default) keeps connections open.
    pub fn set_keep_alive_timeout(&self, timeout: Option<Duration>) {
        self.shared.behaviour.lock().keep_alive_timeout = timeout;
    }

    /// Closes each connection after it has served `max` requests (the last response carries
    /// `Connection: close`, or `GOAWAY` on HTTP/2). `None` removes the limit.
    pub fn set_max_requests_per_connection(&self, max: Option<u64>) {
        self.shared.behaviour.lock().max_requests_per_connection = max.filter(|m| *m > 0);
    }

    /// Stops the server and waits until its listener is closed, so the port can be bound again.
    pub async fn shutdown(mut self) {
        self.shutdown.take();
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for HttpServerHandle {
    fn drop(&mut self) {
        // Dropping the sender wakes every connection, upgrade and gRPC task; aborting the accept
        // loop closes the listener right away.
        self.shutdown.take();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// One request as the server saw it.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Method.
    pub method: Method,
    /// Path and query.
    pub path: String,
    /// Authority from the URI (HTTP/2 `:authority`) or the `Host` header.
    pub authority: Option<String>,
    /// Headers as received.
    pub headers: HeaderMap,
    /// The body (empty for streamed requests).
    pub body: Bytes,
    /// `HTTP/1.1` or `HTTP/2.0`.
    pub version: Version,
    /// The client's address (the proxy's, when behind one).
    pub peer: SocketAddr,
    /// Which connection of this server carried it (1 for the first connection accepted).
    pub connection_id: u64,
    /// Which request this was on its connection (1 for the first).
    pub request_on_connection: u64,
    /// TLS details when the server serves TLS.
    pub tls: Option<TlsInfo>,
}

impl RecordedRequest {
    /// The first value of header `name` as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the TLS handshake of a connection negotiated.
#[derive(Clone, Debug)]
pub struct TlsInfo {
    /// The SNI the client sent.
    pub sni: Option<String>,
    /// The negotiated ALPN protocol.
    pub alpn: Option<Vec<u8>>,
    /// The client's certificate chain (mTLS), leaf first; empty without client auth.
    pub peer_certificates: Vec<CertificateDer<'static>>,
}

#[derive(Debug)]
struct Behaviour {
    fail_next: u32,
    fail_status: StatusCode,
    flaky_every: Option<u64>,
    keep_alive_timeout: Option<Duration>,
    max_requests_per_connection: Option<u64>,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            fail_next: 0,
            fail_status: StatusCode::SERVICE_UNAVAILABLE,
            flaky_every: None,
            keep_alive_timeout: None,
            max_requests_per_connection: None,
        }
    }
}

impl Behaviour {
    /// The status programmed on the handle for request number `n`, if any.
    fn forced_status(&mut self, n: u64) -> Option<StatusCode> {
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return Some(self.fail_status);
        }
        match self.flaky_every {
            Some(k) if n.is_multiple_of(k) => Some(StatusCode::SERVICE_UNAVAILABLE),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Shared {
    name: String,
    tls: bool,
    requests: Mutex<VecDeque<RecordedRequest>>,
    request_count: AtomicU64,
    connection_count: AtomicU64,
    open_connections: AtomicU64,
    behaviour: Mutex<Behaviour>,
    shutdown: watch::Receiver<()>,
}

const MAX_RECORDED: usize = 10_000;

impl Shared {
    fn record(&self, request: RecordedRequest) {
        let mut requests = self.requests.lock();
        if requests.len() >= MAX_RECORDED {
            requests.pop_front();
        }
        requests.push_back(request);
    }
}

/// Per-connection state shared between the connection task and the requests it serves.
#[derive(Debug)]
struct ConnState {
    id: u64,
    peer: SocketAddr,
    tls: Option<TlsInfo>,
    requests: AtomicU64,
    in_flight: AtomicUsize,
    idle_since: Mutex<Instant>,
    /// Close gracefully once in-flight requests are done.
    close: Notify,
    /// Reset the TCP connection now.
    reset: Notify,
}

/// Runs a hyper connection to its end while applying graceful close requests, resets, the
/// idle keep-alive timeout and server shutdown. A macro because the three connection types share
/// no trait for `graceful_shutdown`.
macro_rules! drive {
    ($connection:expr, $shared:expr, $conn:expr, $raw:expr) => {{
        let (shared, conn, raw) = (&$shared, &$conn, &$raw);
        let mut shutdown = shared.shutdown.clone();
        let connection = $connection;
        tokio::pin!(connection);
        let mut closing = false;
        loop {
            let keep_alive = shared.behaviour.lock().keep_alive_timeout;
            let now = Instant::now();
            let wake = match keep_alive {
                // Re-read the setting now and then: it can be changed on the handle.
                None => now + Duration::from_millis(100),
                Some(t) if conn.in_flight.load(Ordering::SeqCst) > 0 => now + t,
                Some(t) => *conn.idle_since.lock() + t,
            };
            tokio::select! {
                _ = connection.as_mut() => break,
                _ = conn.close.notified(), if !closing => {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
                _ = conn.reset.notified() => {
                    let _ = socket2::SockRef::from(raw).set_linger(Some(Duration::ZERO));
                    // Leaving drops hyper's stream, then `raw`: the last close sends RST.
                    break;
                }
                _ = tokio::time::sleep_until(wake), if !closing => {
                    let idle = conn.in_flight.load(Ordering::SeqCst) == 0;
                    if let (Some(t), true) = (keep_alive, idle)
                        && Instant::now() >= *conn.idle_since.lock() + t
                    {
                        tracing::debug!(name = %shared.name, peer = %conn.peer, "closing idle keep-alive connection");
                        closing = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
                _ = shutdown.changed() => break,
            }
        }
    }};
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    builder: Arc<ConnBuilder>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(name = %shared.name, "accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let id = shared.connection_count.fetch_add(1, Ordering::SeqCst) + 1;
        tokio::spawn(serve_connection(
            shared.clone(),
            builder.clone(),
            acceptor.clone(),
            tcp,
            peer,
            id,
        ));
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    builder: Arc<ConnBuilder>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    tcp: TcpStream,
    peer: SocketAddr,
    id: u64,
) {
    let mut shutdown = shared.shutdown.clone();
    let _open = OpenConnection::new(shared.clone());
    let _ = tcp.set_nodelay(true);
    // A second handle on the socket lets us set SO_LINGER=0 and close for a real RST, even when
    // the stream itself is buried inside TLS and hyper.
    let Ok((tcp, raw)) = dup(tcp) else { return };

    let (io, tls): (BoxIo, Option<TlsInfo>) = match acceptor {
        None => (Box::new(tcp), None),
        Some(acceptor) => {
            let handshake = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp));
            let stream = tokio::select! {
                r = handshake => match r {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        tracing::debug!(name = %shared.name, %peer, "TLS handshake failed: {e}");
                        return;
                    }
                    Err(_) => return,
                },
                _ = shutdown.changed() => return,
            };
            let conn = stream.get_ref().1;
            let info = TlsInfo {
                sni: conn.server_name().map(str::to_owned),
                alpn: conn.alpn_protocol().map(<[u8]>::to_vec),
                peer_certificates: conn
                    .peer_certificates()
                    .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                    .unwrap_or_default(),
            };
            (Box::new(stream), Some(info))
        }
    };

    let conn = Arc::new(ConnState {
        id,
        peer,
        tls,
        requests: AtomicU64::new(0),
        in_flight: AtomicUsize::new(0),
        idle_since: Mutex::new(Instant::now()),
        close: Notify::new(),
        reset: Notify::new(),
    });
    let service = {
        let shared = shared.clone();
        let conn = conn.clone();
        hyper::service::service_fn(move |req| handle(shared.clone(), conn.clone(), req))
    };
    let io = TokioIo::new(io);
    match &*builder {
        ConnBuilder::Http1(b) => {
            let c = b.serve_connection(io, service).with_upgrades();
            drive!(c, shared, conn, raw);
        }
        ConnBuilder::Http2(b) => {
            let c = b.serve_connection(io, service);
            drive!(c, shared, conn, raw);
        }
        ConnBuilder::Auto(b) => {
            let c = b.serve_connection_with_upgrades(io, service);
            drive!(c, shared, conn, raw);
        }
    }
}

/// How connections are served: hyper's builders for one version, hyper-util's for both.
enum ConnBuilder {
    Http1(hyper::server::conn::http1::Builder),
    Http2(hyper::server::conn::http2::Builder<TokioExecutor>),
    Auto(auto::Builder<TokioExecutor>),
}

fn dup(tcp: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let std = tcp.into_std()?;
    let raw = std.try_clone()?;
    Ok((TcpStream::from_std(std)?, raw))
}

/// How a request is served.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Echo,
    Grpc,
    WebSocket,
}

async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnState>,
    mut req: Request<Incoming>,
) -> Result<Response<GuardedBody>, BoxError> {
    let guard = InFlight::enter(conn.clone());
    let request_on_connection = conn.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let request_no = shared.request_count.fetch_add(1, Ordering::SeqCst) + 1;

    let kind = if is_websocket(&req) {
        Kind::WebSocket
    } else if grpc::is_grpc(req.headers()) {
        Kind::Grpc
    } else if req.uri().path() == "/echo" {
        Kind::Echo
    } else {
        Kind::Plain
    };
    let on_upgrade = (kind == Kind::WebSocket).then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    let (recorded_body, streamed) = if kind == Kind::Plain {
        (body.collect().await?.to_bytes(), None)
    } else {
        (Bytes::new(), Some(body))
    };
    let authority = parts
        .uri
        .authority()
        .map(|a| a.to_string())
        .or_else(|| header_str(&parts.headers, header::HOST.as_str()).map(str::to_owned));
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| "/".to_owned(), |p| p.to_string());
    shared.record(RecordedRequest {
        method: parts.method.clone(),
        path: path.clone(),
        authority,
        headers: parts.headers.clone(),
        body: recorded_body.clone(),
        version: parts.version,
        peer: conn.peer,
        connection_id: conn.id,
        request_on_connection,
        tls: conn.tls.clone(),
    });

    let script = match Script::parse(&parts.headers) {
        Ok(script) => script,
        Err(reason) => {
            let mut resp = Response::new(full(reason));
            *resp.status_mut() = StatusCode::BAD_REQUEST;
            return Ok(finish(&shared, resp, guard));
        }
    };
    match script.reset {
        Some(Reset::Stream) if parts.version == Version::HTTP_2 => {
            return Err("x-test-reset: stream".into());
        }
        Some(_) => {
            conn.reset.notify_one();
            // The connection task drops this request with the connection.
            std::future::pending::<()>().await;
        }
        None => {}
    }
    if let Some(delay) = script.delay {
        tokio::time::sleep(delay).await;
    }

    let forced = shared.behaviour.lock().forced_status(request_no);
    let max_per_conn = shared.behaviour.lock().max_requests_per_connection;
    let close = script.close || max_per_conn.is_some_and(|max| request_on_connection >= max);

    let mut resp = match (forced, kind, streamed, on_upgrade) {
        (None, Kind::WebSocket, _, Some(on_upgrade)) => {
            websocket::accept(&parts.headers, on_upgrade, shared.shutdown.clone())
        }
        (None, Kind::Grpc, Some(body), _) => grpc::respond(
            body,
            script.grpc_status,
            script.grpc_message.clone(),
            shared.shutdown.clone(),
        ),
        (None, Kind::Echo, Some(body), _) => {
            let mut resp = Response::new(body.map_err(BoxError::from).boxed_unsync());
            *resp.status_mut() = script.status.unwrap_or(StatusCode::OK);
            resp
        }
        _ => {
            let status = forced.or(script.status).unwrap_or(StatusCode::OK);
            let body = match script.body_bytes {
                Some(n) => Bytes::from(vec![b'x'; n]),
                None => {
                    let info = json_info(&shared.name, &parts, &path, &recorded_body, &conn);
                    Bytes::from(info.to_string())
                }
            };
            let mut resp = Response::new(full(body));
            *resp.status_mut() = status;
            if script.body_bytes.is_none() {
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            resp
        }
    };
    if !script.trailers.is_empty() {
        let trailers = script.trailers.clone();
        let body = std::mem::replace(resp.body_mut(), empty());
        *resp.body_mut() = body
            .with_trailers(std::future::ready(Some(Ok(trailers))))
            .boxed_unsync();
    }
    for (name, value) in &script.response_headers {
        resp.headers_mut().append(name.clone(), value.clone());
    }
    if close {
        if parts.version != Version::HTTP_2 {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        conn.close.notify_one();
    }
    Ok(finish(&shared, resp, guard))
}

fn finish(shared: &Shared, resp: Response<BoxBody>, guard: InFlight) -> Response<GuardedBody> {
    let mut resp = resp.map(|inner| GuardedBody {
        inner,
        _guard: guard,
    });
    if let Ok(name) = HeaderValue::from_str(&shared.name) {
        resp.headers_mut().insert("x-served-by", name);
    }
    resp
}

fn json_info(
    name: &str,
    parts: &http::request::Parts,
    path: &str,
    body: &Bytes,
    conn: &ConnState,
) -> serde_json::Value {
    let mut headers = serde_json::Map::new();
    for key in parts.headers.keys() {
        let values: Vec<&str> = parts
            .headers
            .get_all(key)
            .iter()
            .map(|v| v.to_str().unwrap_or("<non-utf8>"))
            .collect();
        headers.insert(key.as_str().to_owned(), values.join(",").into());
    }
    serde_json::json!({
        "server": name,
        "method": parts.method.as_str(),
        "path": path,
        "headers": headers,
        "body_len": body.len(),
        "protocol": format!("{:?}", parts.version),
        "peer": conn.peer.to_string(),
        "connection": conn.id,
        "tls": conn.tls.is_some(),
    })
}

fn is_websocket(req: &Request<Incoming>) -> bool {
    req.version() != Version::HTTP_2
        && header_str(req.headers(), "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

enum Reset {
    Connection,
    Stream,
}

/// What the `x-test-*` headers of a request ask for.
#[derive(Default)]
struct Script {
    status: Option<StatusCode>,
    delay: Option<Duration>,
    body_bytes: Option<usize>,
    close: bool,
    reset: Option<Reset>,
    response_headers: Vec<(HeaderName, HeaderValue)>,
    trailers: HeaderMap,
    grpc_status: Option<u32>,
    grpc_message: Option<String>,
}

const MAX_DELAY: Duration = Duration::from_secs(300);
const MAX_BODY_BYTES: usize = 256 << 20;

impl Script {
    fn parse(headers: &HeaderMap) -> Result<Self, String> {
        let mut script = Script::default();
        for (name, value) in headers {
            let name = name.as_str();
            if !name.starts_with("x-test-") {
                continue;
            }
            let value = value
                .to_str()
                .map_err(|_| format!("{name}: value is not text"))?
                .trim();
            let bad = |what: &str| format!("{name}: {value:?} is not {what}");
            match name {
                "x-test-status" => {
                    let code = value.parse::<u16>().map_err(|_| bad("a status code"))?;
                    script.status =
                        Some(StatusCode::from_u16(code).map_err(|_| bad("a status code"))?);
                }
                "x-test-delay-ms" => {
                    let ms = value.parse::<u64>().map_err(|_| bad("milliseconds"))?;
                    script.delay = Some(Duration::from_millis(ms).min(MAX_DELAY));
                }
                "x-test-body-bytes" => {
                    let n = value.parse::<usize>().map_err(|_| bad("a byte count"))?;
                    if n > MAX_BODY_BYTES {
                        return Err(bad("at most 256 MiB"));
                    }
                    script.body_bytes = Some(n);
                }
                "x-test-close" => script.close = parse_bool(value).ok_or_else(|| bad("a bool"))?,
                "x-test-reset" => {
                    script.reset = match value {
                        "stream" => Some(Reset::Stream),
                        _ => parse_bool(value)
                            .ok_or_else(|| bad("a bool or \"stream\""))?
                            .then_some(Reset::Connection),
                    }
                }
                "x-test-response-header" => {
                    script
                        .response_headers
                        .push(parse_pair(value).ok_or_else(|| bad("name=value"))?);
                }
                "x-test-trailer" => {
                    let (k, v) = parse_pair(value).ok_or_else(|| bad("name=value"))?;
                    script.trailers.append(k, v);
                }
                "x-test-grpc-status" => {
                    script.grpc_status = Some(value.parse().map_err(|_| bad("a gRPC status"))?);
                }
                "x-test-grpc-message" => script.grpc_message = Some(value.to_owned()),
                _ => return Err(format!("unknown scripting header {name}")),
            }
        }
        Ok(script)
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

fn parse_pair(value: &str) -> Option<(HeaderName, HeaderValue)> {
    let (name, value) = value.split_once('=')?;
    Some((
        HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
        HeaderValue::from_str(value.trim()).ok()?,
    ))
}

/// Counts a request as in flight until its response body is dropped (fully sent or abandoned).
#[derive(Debug)]
struct InFlight(Arc<ConnState>);

impl InFlight {
    fn enter(conn: Arc<ConnState>) -> Self {
        conn.in_flight.fetch_add(1, Ordering::SeqCst);
        Self(conn)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Update the idle clock before the count reaches zero, so the connection task never sees
        // "idle" with a stale clock.
        *self.0.idle_since.lock() = Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A response body that keeps its request counted as in flight.
struct GuardedBody {
    inner: BoxBody,
    _guard: InFlight,
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Counts a connection as open while alive.
struct OpenConnection(Arc<Shared>);

impl OpenConnection {
    fn new(shared: Arc<Shared>) -> Self {
        shared.open_connections.fetch_add(1, Ordering::SeqCst);
        Self(shared)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::SeqCst);
    }
}
