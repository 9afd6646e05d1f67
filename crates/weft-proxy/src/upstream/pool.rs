//! Per-endpoint connection pools: HTTP/1.1 keep-alive connections and one multiplexed HTTP/2
//! connection, with Envoy's circuit-breaker semantics (its `ConnPoolImplBase`).
//!
//! A request takes a ready connection when there is one: an idle HTTP/1.1 connection, or the
//! endpoint's HTTP/2 connection. Otherwise it becomes *pending* while under
//! `max_pending_requests` (else 503 overflow, `upstream_rq_pending_overflow`), and the pool
//! opens a connection for it while the cluster is under `max_connections` (else
//! `upstream_cx_overflow` counts it and the request waits for a connection to free up; a pool
//! with no connection at all opens one anyway, as Envoy does, so it cannot starve). A request
//! that meets a ready connection — at once or after waiting — is checked against `max_requests`
//! (503 overflow, also counted in `upstream_rq_pending_overflow`); its slot is held until the
//! response ends. So with one connection, one pending request and one request allowed, a second
//! concurrent request waits and is served, and a third overflows.
//!
//! Connections are opened by the pool, not by a request: the first pending request takes
//! whichever connection gets ready first, and a failed connection attempt fails every pending
//! request (`upstream_rq_pending_failure_eject`), as Envoy purges its pending streams.
//!
//! HTTP/1.1 connections return to the pool when their response body has been read to the end.
//! A connection answered `101 Switching Protocols` never returns: it belongs to the upgrade's
//! tunnel, and still holds its `max_connections` slot (and the request its `max_requests` slot,
//! [`UpgradePermit`]) until the tunnel closes, as Envoy counts it until it closes.
//! The keep-alive race ("503 UC"): a server may close an idle connection just as we pick it.
//! hyper hands the request back when it was never written (`try_send_request`), and we retry it
//! on another connection; it never reached the application, so this is always safe. Idle
//! connections are also closed after `idle_timeout`, which weft defaults below common server
//! keep-alive timeouts (see docs/proxy.md).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::cluster::{ClusterShared, Permit};
use super::connect::connect;
use super::stats::inc;
use crate::coalesce::{self, FlushAfterPoll};
use crate::error::{Overflow, UpstreamError};
use crate::io::ClientStream;
use crate::{Body, BoxError};

/// How many stale pooled connections a request may skip before it fails.
const MAX_STALE_RETRIES: usize = 4;

/// At most this many connections are started for one event (Envoy's cap on preconnects).
const MAX_CONNECTS_PER_EVENT: usize = 3;

/// What a pending HTTP/1.1 request receives: a ready connection, or the failure of a
/// connection attempt.
type H1Grant = Result<IdleConn, UpstreamError>;

/// What a request waiting for the HTTP/2 connection receives.
type H2Grant = Result<http2::SendRequest<Body>, UpstreamError>;

/// The pools for one endpoint.
#[derive(Debug)]
pub struct HostPool {
    addr: SocketAddr,
    cluster: Arc<ClusterShared>,
    h1: Mutex<H1State>,
    h2: Mutex<H2State>,
}

#[derive(Debug, Default)]
struct H1State {
    /// Ready connections.
    idle: Vec<IdleConn>,
    /// Pending requests, first come first served.
    waiters: VecDeque<oneshot::Sender<H1Grant>>,
    /// Connections being opened.
    connecting: usize,
    /// Every HTTP/1.1 connection of this pool: connecting, busy or idle.
    open: usize,
}

#[derive(Debug, Default)]
enum H2State {
    /// No connection.
    #[default]
    Idle,
    /// A connection is being opened; these requests are pending on it.
    Connecting(VecDeque<oneshot::Sender<H2Grant>>),
    /// The connection.
    Ready(http2::SendRequest<Body>),
}

/// An HTTP/1.1 connection between requests.
#[derive(Debug)]
pub struct IdleConn {
    send: http1::SendRequest<Body>,
    idle_since: Instant,
    requests: u32,
}

impl HostPool {
    /// A pool for `addr` in `cluster`.
    pub fn new(addr: SocketAddr, cluster: Arc<ClusterShared>) -> Arc<Self> {
        Arc::new(Self {
            addr,
            cluster,
            h1: Mutex::new(H1State::default()),
            h2: Mutex::new(H2State::Idle),
        })
    }

    /// The endpoint address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Gets a connection for one request, with its `max_requests` slot: for HTTP/1.1 an idle
    /// or newly ready connection, for HTTP/2 the endpoint's shared connection. Failing here
    /// leaves the request untouched, so the caller may retry it elsewhere.
    pub async fn checkout(self: &Arc<Self>, http2: bool) -> Result<Checkout, UpstreamError> {
        if http2 {
            return self.checkout_http2().await;
        }
        let (conn, permit) = self.checkout_http1().await?;
        Ok(Checkout::Http1 {
            pool: self.clone(),
            conn,
            permit,
        })
    }

    async fn checkout_http2(self: &Arc<Self>) -> Result<Checkout, UpstreamError> {
        for _ in 0..2 {
            let mut sender = self.acquire_http2().await?;
            if sender.ready().await.is_ok() {
                let permit = self.cluster.try_acquire_request()?;
                return Ok(Checkout::Http2 {
                    pool: self.clone(),
                    sender,
                    permit,
                });
            }
            self.forget_http2();
        }
        Err(UpstreamError::ResetBeforeHeaders {
            request_sent: false,
            detail: "HTTP/2 connection kept closing".to_owned(),
        })
    }

    /// The ready HTTP/2 connection, or one opened (or being opened) while this request waits
    /// as pending.
    async fn acquire_http2(self: &Arc<Self>) -> Result<http2::SendRequest<Body>, UpstreamError> {
        let rx = {
            let mut st = self.h2.lock();
            if let H2State::Ready(s) = &*st
                && !s.is_closed()
            {
                return Ok(s.clone());
            }
            self.reserve_pending()?;
            let (tx, rx) = oneshot::channel();
            match &mut *st {
                H2State::Connecting(waiters) => waiters.push_back(tx),
                _ => {
                    *st = H2State::Connecting(VecDeque::from([tx]));
                    // The pool has no usable connection: over the limit it opens one anyway.
                    self.reserve_connection(true);
                    let pool = self.clone();
                    tokio::spawn(async move { pool.connect_http2().await });
                }
            }
            rx
        };
        let pending = PendingGuard(self.cluster.clone());
        let grant = rx.await;
        drop(pending);
        match grant {
            Ok(granted) => granted,
            Err(_) => Err(pool_gone()),
        }
    }

    /// Drops a shared HTTP/2 connection that turned out closed (not one being opened).
    fn forget_http2(&self) {
        let mut st = self.h2.lock();
        if matches!(&*st, H2State::Ready(_)) {
            *st = H2State::Idle;
        }
    }

    /// Opens the HTTP/2 connection and hands it (or the failure) to every pending request.
    async fn connect_http2(self: Arc<Self>) {
        let slot = ConnectionSlot {
            pool: Some(self.clone()),
            http2: true,
        };
        let opened = async {
            let stream = connect(self.addr, &self.cluster).await?;
            // Requests multiplexed on the connection go out in one write per poll of it.
            // hyper runs the connection in a task of the executor's; that task writes it out.
            let (stream, driver) = coalesce::wrap(stream, coalesce::Mode::Coalesce);
            http2::Builder::new(driver.executor())
                .timer(hyper_util::rt::TokioTimer::new())
                .keep_alive_interval(None)
                .handshake(TokioIo::new(stream))
                .await
                .map(|(send, conn)| {
                    // Boxed here, where its types are concrete: proving the generic driver
                    // `Send` inside the spawned block trips a higher-ranked lifetime check.
                    let conn: Pin<Box<dyn Future<Output = hyper::Result<()>> + Send>> =
                        Box::pin(FlushAfterPoll::new(conn, driver));
                    (send, conn)
                })
                .map_err(|e| UpstreamError::ConnectFailure(e.to_string()))
        }
        .await;
        let (next, grant) = match opened {
            Ok((send, conn)) => {
                tokio::spawn(async move {
                    let _slot = slot;
                    let _ = conn.await;
                });
                (H2State::Ready(send.clone()), Ok(send))
            }
            Err(e) => (H2State::Idle, Err(e)),
        };
        let waiters = match std::mem::replace(&mut *self.h2.lock(), next) {
            H2State::Connecting(waiters) => waiters,
            _ => VecDeque::new(),
        };
        for w in waiters {
            if w.send(grant.clone()).is_ok() && grant.is_err() {
                inc(&self.cluster.stats.upstream_rq_pending_failure_eject);
            }
        }
    }

    async fn checkout_http1(self: &Arc<Self>) -> Result<(IdleConn, Permit), UpstreamError> {
        for _ in 0..=MAX_STALE_RETRIES {
            let (mut conn, permit) = self.acquire_http1().await?;
            if conn.send.ready().await.is_ok() {
                return Ok((conn, permit));
            }
            // Closed while idle: its slot was already released by the connection task.
            drop(permit);
            inc(&self.cluster.stats.upstream_cx_pool_reuse_retry);
        }
        Err(UpstreamError::ResetBeforeHeaders {
            request_sent: false,
            detail: "pooled connections kept closing".to_owned(),
        })
    }

    /// An idle connection, else one handed over after waiting as a pending request; either way
    /// with a `max_requests` slot.
    async fn acquire_http1(self: &Arc<Self>) -> Result<(IdleConn, Permit), UpstreamError> {
        let rx = {
            let mut st = self.h1.lock();
            if let Some(conn) = self.take_idle(&mut st) {
                return match self.cluster.try_acquire_request() {
                    Ok(permit) => Ok((conn, permit)),
                    Err(e) => {
                        // The connection stays ready for the next request.
                        st.idle.push(conn);
                        Err(e)
                    }
                };
            }
            self.reserve_pending()?;
            let (tx, rx) = oneshot::channel();
            st.waiters.push_back(tx);
            self.create_connections(&mut st);
            rx
        };
        let pending = PendingGuard(self.cluster.clone());
        let grant = rx.await;
        drop(pending);
        match grant {
            Ok(Ok(conn)) => match self.cluster.try_acquire_request() {
                Ok(permit) => Ok((conn, permit)),
                Err(e) => {
                    // Like Envoy's attach failing: the connection serves the next one.
                    self.release(conn);
                    Err(e)
                }
            },
            Ok(Err(e)) => Err(e),
            Err(_) => Err(pool_gone()),
        }
    }

    /// The most recently used idle connection that is still usable.
    fn take_idle(&self, st: &mut H1State) -> Option<IdleConn> {
        let idle_timeout = self.cluster.config().idle_timeout;
        while let Some(c) = st.idle.pop() {
            if c.send.is_closed() {
                continue;
            }
            if c.idle_since.elapsed() >= idle_timeout {
                inc(&self.cluster.stats.upstream_cx_idle_timeout);
                continue; // dropping the sender closes the connection
            }
            return Some(c);
        }
        None
    }

    /// Takes a pending-request slot, or counts the overflow.
    fn reserve_pending(&self) -> Result<(), UpstreamError> {
        if self.cluster.try_reserve_pending() {
            Ok(())
        } else {
            inc(&self.cluster.stats.upstream_rq_pending_overflow);
            Err(UpstreamError::Overflow(Overflow::PendingRequests))
        }
    }

    /// Takes a connection slot; over `max_connections` counts `upstream_cx_overflow` and takes
    /// it anyway only when `pool_empty`. Whether a connection may be opened.
    fn reserve_connection(&self, pool_empty: bool) -> bool {
        if self.cluster.try_reserve_connection() {
            return true;
        }
        inc(&self.cluster.stats.upstream_cx_overflow);
        if pool_empty {
            self.cluster.reserve_connection_over_limit();
        }
        pool_empty
    }

    /// Opens connections while pending requests outnumber connections being opened.
    fn create_connections(self: &Arc<Self>, st: &mut H1State) {
        st.waiters.retain(|w| !w.is_closed());
        for _ in 0..MAX_CONNECTS_PER_EVENT {
            if st.waiters.len() <= st.connecting || !self.reserve_connection(st.open == 0) {
                return;
            }
            st.connecting += 1;
            st.open += 1;
            let pool = self.clone();
            tokio::spawn(async move { pool.connect_http1().await });
        }
    }

    /// Opens one HTTP/1.1 connection for the pending requests; a failure fails them all.
    async fn connect_http1(self: Arc<Self>) {
        let slot = Arc::new(ConnectionSlot {
            pool: Some(self.clone()),
            http2: false,
        });
        let opened = async {
            let stream = connect(self.addr, &self.cluster).await?;
            // The transport carries the slot: it is given back when the socket is dropped,
            // whoever owns it by then (the connection task, or an upgrade's tunnel).
            let io = SlottedStream {
                inner: stream,
                _slot: slot.clone(),
            };
            http1::Builder::new()
                .handshake(TokioIo::new(io))
                .await
                .map_err(|e| UpstreamError::ConnectFailure(e.to_string()))
        }
        .await;
        match opened {
            Ok((send, conn)) => {
                drop(slot);
                tokio::spawn(async move {
                    // `with_upgrades`: a 101 response hands the transport, slot included, to
                    // the upgrade; the connection task then ends but the connection lives on.
                    let _ = conn.with_upgrades().await;
                });
                let conn = IdleConn {
                    send,
                    idle_since: Instant::now(),
                    requests: 0,
                };
                let mut st = self.h1.lock();
                st.connecting = st.connecting.saturating_sub(1);
                hand_over(&mut st, conn);
            }
            Err(e) => {
                let waiters = {
                    let mut st = self.h1.lock();
                    st.connecting = st.connecting.saturating_sub(1);
                    std::mem::take(&mut st.waiters)
                };
                for w in waiters {
                    if w.send(Err(e.clone())).is_ok() {
                        inc(&self.cluster.stats.upstream_rq_pending_failure_eject);
                    }
                }
                // Only now: giving the slot back must not open a connection for the requests
                // just failed.
                drop(slot);
            }
        }
    }

    fn wrap_http1(
        self: &Arc<Self>,
        resp: Response<Incoming>,
        conn: IdleConn,
        permit: Permit,
    ) -> Response<Body> {
        let (parts, body) = resp.into_parts();
        // An upgraded connection belongs to the upgrade; a `close` one to nobody.
        let keep = parts.status != http::StatusCode::SWITCHING_PROTOCOLS
            && !parts
                .headers
                .get(http::header::CONNECTION)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        let release = keep.then(|| Release {
            pool: self.clone(),
            conn: Some(conn),
        });
        let mut parts = parts;
        // A 101's request goes on as long as the upgraded connection: its slot goes with the
        // response for the upgrade to hold (Envoy counts the stream until the tunnel closes).
        let permit = if parts.status == http::StatusCode::SWITCHING_PROTOCOLS {
            parts.extensions.insert(UpgradePermit::new(permit));
            None
        } else {
            Some(permit)
        };
        let body = PooledBody {
            inner: body,
            permit,
            release,
        };
        Response::from_parts(parts, Body::new(body))
    }

    /// Gives a connection whose response finished back to the pool (or a pending request).
    fn release(&self, mut conn: IdleConn) {
        if let Some(max) = self.cluster.config().max_requests_per_connection
            && conn.requests >= max
        {
            return;
        }
        if conn.send.is_closed() {
            return;
        }
        conn.idle_since = Instant::now();
        hand_over(&mut self.h1.lock(), conn);
    }

    /// Called when an HTTP/1.1 connection closed: pending requests may now get a new one.
    fn connection_closed(self: &Arc<Self>) {
        let mut st = self.h1.lock();
        st.open = st.open.saturating_sub(1);
        if !st.waiters.is_empty() {
            self.create_connections(&mut st);
        }
    }

    /// Closes idle connections that exceeded the idle timeout.
    pub fn sweep(&self) {
        let idle_timeout = self.cluster.config().idle_timeout;
        let mut st = self.h1.lock();
        let before = st.idle.len();
        st.idle
            .retain(|c| !c.send.is_closed() && c.idle_since.elapsed() < idle_timeout);
        let closed = before - st.idle.len();
        if closed > 0 {
            self.cluster
                .stats
                .upstream_cx_idle_timeout
                .fetch_add(closed as u64, Ordering::Relaxed);
        }
        st.waiters.retain(|w| !w.is_closed());
    }
}

/// Gives `conn` to the first pending request still waiting, else keeps it idle.
fn hand_over(st: &mut H1State, mut conn: IdleConn) {
    while let Some(w) = st.waiters.pop_front() {
        match w.send(Ok(conn)) {
            Ok(()) => return,
            Err(Ok(c)) => conn = c,
            Err(Err(_)) => return,
        }
    }
    st.idle.push(conn);
}

fn pool_gone() -> UpstreamError {
    UpstreamError::ResetBeforeHeaders {
        request_sent: false,
        detail: "connection pool shut down".to_owned(),
    }
}

/// A connection checked out for one request, with the request's `max_requests` slot (held
/// until the response ends).
#[derive(Debug)]
pub enum Checkout {
    /// An HTTP/1.1 connection, exclusively ours until the response ends.
    Http1 {
        /// Its pool.
        pool: Arc<HostPool>,
        /// The connection.
        conn: IdleConn,
        /// The request's slot.
        permit: Permit,
    },
    /// A stream on the shared HTTP/2 connection.
    Http2 {
        /// Its pool.
        pool: Arc<HostPool>,
        /// The connection's sender.
        sender: http2::SendRequest<Body>,
        /// The request's slot.
        permit: Permit,
    },
}

/// A failed send; `request` is handed back when it was never written upstream.
#[derive(Debug)]
pub struct SendError {
    /// What went wrong.
    pub error: UpstreamError,
    /// The request, when it can be retried anywhere without the application having seen it.
    pub request: Option<Request<Body>>,
}

impl Checkout {
    /// Sends `req`. On HTTP/1.1, a reused connection the server closed before the request was
    /// written is replaced transparently (the keep-alive race), up to a few times.
    pub async fn send(self, mut req: Request<Body>) -> Result<Response<Body>, SendError> {
        match self {
            Checkout::Http2 {
                pool,
                mut sender,
                permit,
            } => match sender.try_send_request(req).await {
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    let body = PooledBody {
                        inner: body,
                        permit: Some(permit),
                        release: None,
                    };
                    Ok(Response::from_parts(parts, Body::new(body)))
                }
                Err(mut e) => {
                    let request = e.take_message();
                    if sender.is_closed() {
                        pool.forget_http2();
                    }
                    Err(SendError {
                        error: UpstreamError::ResetBeforeHeaders {
                            request_sent: request.is_none(),
                            detail: e.into_error().to_string(),
                        },
                        request,
                    })
                }
            },
            Checkout::Http1 {
                pool,
                mut conn,
                mut permit,
            } => {
                for _ in 0..=MAX_STALE_RETRIES {
                    let reused = conn.requests > 0;
                    conn.requests += 1;
                    match conn.send.try_send_request(req).await {
                        Ok(resp) => return Ok(pool.wrap_http1(resp, conn, permit)),
                        Err(mut e) => match e.take_message() {
                            Some(unsent) if reused => {
                                inc(&pool.cluster.stats.upstream_cx_pool_reuse_retry);
                                req = unsent;
                                // The replacement takes its own slot.
                                drop(permit);
                                match pool.checkout_http1().await {
                                    Ok((c, p)) => {
                                        conn = c;
                                        permit = p;
                                    }
                                    Err(error) => {
                                        return Err(SendError {
                                            error,
                                            request: Some(req),
                                        });
                                    }
                                }
                            }
                            unsent => {
                                let sent = unsent.is_none();
                                return Err(SendError {
                                    error: UpstreamError::ResetBeforeHeaders {
                                        request_sent: sent,
                                        detail: e.into_error().to_string(),
                                    },
                                    request: unsent,
                                });
                            }
                        },
                    }
                }
                Err(SendError {
                    error: UpstreamError::ResetBeforeHeaders {
                        request_sent: false,
                        detail: "pooled connections kept closing".to_owned(),
                    },
                    request: None,
                })
            }
        }
    }
}

/// The `max_requests` slot of a request answered `101 Switching Protocols`, in the response's
/// extensions: whoever splices the upgraded connections takes it ([`UpgradePermit::take`]) and
/// holds it until the tunnel closes. Left there, it is released with the response.
#[derive(Debug, Clone)]
pub struct UpgradePermit(Arc<std::sync::Mutex<Option<Permit>>>);

impl UpgradePermit {
    fn new(permit: Permit) -> Self {
        UpgradePermit(Arc::new(std::sync::Mutex::new(Some(permit))))
    }

    /// The slot, once.
    pub fn take(&self) -> Option<Permit> {
        self.0.lock().ok().and_then(|mut p| p.take())
    }
}

/// Holds one of the cluster's connection slots until the connection closes: for HTTP/2 and for
/// the connection being opened, until its task ends; for an open HTTP/1.1 connection, as long
/// as its transport ([`SlottedStream`]).
struct ConnectionSlot {
    pool: Option<Arc<HostPool>>,
    http2: bool,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            pool.cluster.release_connection();
            inc(&pool.cluster.stats.upstream_cx_destroy);
            if !self.http2 {
                pool.connection_closed();
            }
        }
    }
}

/// An HTTP/1.1 connection's transport, holding the connection's slot. A connection upgraded
/// by a `101` leaves the pool for good (it never returns to the idle list), but as in Envoy it
/// counts against `max_connections` and as one of the pool's open connections until the tunnel
/// closes it; only then may a pending request open another.
struct SlottedStream {
    inner: ClientStream,
    _slot: Arc<ConnectionSlot>,
}

impl tokio::io::AsyncRead for SlottedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for SlottedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Counts a request as pending while it waits for a connection.
struct PendingGuard(Arc<ClusterShared>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        self.0.release_pending();
    }
}

struct Release {
    pool: Arc<HostPool>,
    conn: Option<IdleConn>,
}

impl Release {
    fn done(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.release(conn);
        }
    }
}

pin_project_lite::pin_project! {
    /// An upstream response body: holds the request's `max_requests` slot until its end and,
    /// on HTTP/1.1, then returns its connection to the pool. Dropped early, the connection is
    /// closed instead (its state is unknown).
    struct PooledBody {
        #[pin]
        inner: Incoming,
        permit: Option<Permit>,
        release: Option<Release>,
    }

    impl PinnedDrop for PooledBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            // The request ends before its connection serves another (Envoy closes the stream,
            // then attaches the next pending one).
            this.permit.take();
            // Bodies known to be empty (204, HEAD, content-length: 0) are never polled to the
            // end; their connection is still reusable.
            if this.inner.is_end_stream()
                && let Some(r) = this.release.as_mut()
            {
                r.done();
            }
        }
    }
}

impl HttpBody for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                this.permit.take();
                if let Some(r) = this.release.as_mut() {
                    r.done();
                }
            }
            Poll::Ready(Some(Err(_))) => {
                this.permit.take();
                this.release.take();
            }
            _ => {}
        }
        polled.map(|o| o.map(|r| r.map_err(|e| -> BoxError { Box::new(e) })))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use http_body_util::BodyExt;
    use weft_proxy_config::model::{Cluster, Thresholds, UpstreamProtocol};
    use weft_test_support::{HttpServer, HttpServerHandle};

    use super::*;
    use crate::http::local_reply::full;

    fn cluster(limits: Thresholds, protocol: UpstreamProtocol) -> Arc<ClusterShared> {
        let config = Cluster {
            circuit_breakers: limits,
            protocol,
            idle_timeout: Duration::from_secs(60),
            ..crate::upstream::test_cluster()
        };
        super::super::ClusterRuntime::new(Arc::new(config), None)
            .shared
            .clone()
    }

    fn limits(connections: u32, pending: u32, requests: u32) -> Thresholds {
        Thresholds {
            max_connections: connections,
            max_pending_requests: pending,
            max_requests: requests,
            max_retries: 3,
        }
    }

    fn stat(c: &ClusterShared, name: &str) -> u64 {
        c.stats
            .counters()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .unwrap()
    }

    fn get(server: &HttpServerHandle, http2: bool, delay_ms: u64) -> Request<Body> {
        let uri = if http2 {
            format!("http://{}/", server.addr())
        } else {
            "/".to_owned()
        };
        let mut req = Request::get(uri)
            .header("x-test-delay-ms", delay_ms.to_string())
            .body(full(""))
            .unwrap();
        if !http2 {
            req.headers_mut()
                .insert(http::header::HOST, "test".parse().unwrap());
        }
        req
    }

    /// One request through the pool to its end: the status, or the checkout's failure.
    async fn request(
        pool: &Arc<HostPool>,
        server: &HttpServerHandle,
        http2: bool,
        delay_ms: u64,
    ) -> Result<u16, UpstreamError> {
        let checkout = pool.checkout(http2).await?;
        let resp = checkout
            .send(get(server, http2, delay_ms))
            .await
            .map_err(|e| e.error)?;
        let status = resp.status().as_u16();
        resp.into_body().collect().await.unwrap();
        Ok(status)
    }

    async fn h1_server() -> HttpServerHandle {
        HttpServer::builder().name("a").http1().start().await
    }

    #[tokio::test]
    async fn a_second_http1_request_waits_pending_and_is_served_when_the_first_ends() {
        let server = h1_server().await;
        let c = cluster(limits(1, 1, 1), UpstreamProtocol::Http1);
        let pool = HostPool::new(server.addr(), c.clone());
        let (a, b) = tokio::join!(request(&pool, &server, false, 200), async {
            // Once the first is on its connection (before, it is pending itself).
            tokio::time::sleep(Duration::from_millis(50)).await;
            request(&pool, &server, false, 0).await
        });
        assert_eq!((a, b), (Ok(200), Ok(200)));
        assert_eq!(stat(&c, "upstream_rq_pending_overflow"), 0);
        assert_eq!(stat(&c, "upstream_rq_pending_total"), 2);
        assert_eq!(stat(&c, "upstream_cx_overflow"), 1);
        assert_eq!(stat(&c, "upstream_cx_total"), 1);
        assert_eq!(stat(&c, "upstream_rq_total"), 2);
        assert_eq!(server.connection_count(), 1);
    }

    #[tokio::test]
    async fn a_third_http1_request_overflows_the_pending_queue() {
        let server = h1_server().await;
        let c = cluster(limits(1, 1, 1), UpstreamProtocol::Http1);
        let pool = HostPool::new(server.addr(), c.clone());
        let (a, b, third) = tokio::join!(
            request(&pool, &server, false, 200),
            async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                request(&pool, &server, false, 0).await
            },
            async {
                // Once the first is on its connection and the second pending.
                tokio::time::sleep(Duration::from_millis(100)).await;
                request(&pool, &server, false, 0).await
            }
        );
        assert_eq!((a, b), (Ok(200), Ok(200)));
        assert_eq!(
            third,
            Err(UpstreamError::Overflow(Overflow::PendingRequests))
        );
        assert_eq!(stat(&c, "upstream_rq_pending_overflow"), 1);
        assert_eq!(stat(&c, "upstream_rq_total"), 2);
    }

    #[tokio::test]
    async fn max_requests_is_checked_when_a_connection_is_ready_not_before() {
        let server = h1_server().await;
        let c = cluster(limits(2, 10, 1), UpstreamProtocol::Http1);
        let pool = HostPool::new(server.addr(), c.clone());
        let first = pool.checkout(false).await.unwrap();
        let resp = first.send(get(&server, false, 0)).await.unwrap();
        // The first response's headers are in but its body is not read: still active.
        assert_eq!(c.stats.upstream_rq_active.load(Ordering::Relaxed), 1);
        // The second waits as pending while a second connection opens, then overflows on it.
        let second = pool.checkout(false).await;
        assert_eq!(
            second.err(),
            Some(UpstreamError::Overflow(Overflow::Requests))
        );
        assert_eq!(stat(&c, "upstream_rq_pending_total"), 2);
        assert_eq!(stat(&c, "upstream_rq_pending_overflow"), 1);
        assert_eq!(stat(&c, "upstream_cx_total"), 2);
        // An idle connection at the limit overflows too, and stays in the pool.
        assert_eq!(
            pool.checkout(false).await.err(),
            Some(UpstreamError::Overflow(Overflow::Requests))
        );
        assert_eq!(pool.h1.lock().idle.len(), 1);
        resp.into_body().collect().await.unwrap();
        assert_eq!(c.stats.upstream_rq_active.load(Ordering::Relaxed), 0);
        assert_eq!(request(&pool, &server, false, 0).await, Ok(200));
        assert_eq!(stat(&c, "upstream_cx_total"), 2);
    }

    #[tokio::test]
    async fn without_a_pending_slot_a_request_cannot_wait_even_for_a_new_connection() {
        let server = h1_server().await;
        let c = cluster(limits(10, 0, 10), UpstreamProtocol::Http1);
        let pool = HostPool::new(server.addr(), c.clone());
        assert_eq!(
            request(&pool, &server, false, 0).await,
            Err(UpstreamError::Overflow(Overflow::PendingRequests))
        );
        assert_eq!(stat(&c, "upstream_cx_total"), 0);
    }

    #[tokio::test]
    async fn an_endpoint_without_connections_opens_one_over_max_connections() {
        let a = h1_server().await;
        let b = h1_server().await;
        let c = cluster(limits(1, 10, 10), UpstreamProtocol::Http1);
        let pool_a = HostPool::new(a.addr(), c.clone());
        let pool_b = HostPool::new(b.addr(), c.clone());
        let (ra, rb) = tokio::join!(request(&pool_a, &a, false, 200), async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            request(&pool_b, &b, false, 0).await
        });
        assert_eq!((ra, rb), (Ok(200), Ok(200)));
        assert_eq!(stat(&c, "upstream_cx_overflow"), 1);
        assert_eq!(b.connection_count(), 1);
    }

    #[tokio::test]
    async fn a_failed_connection_fails_every_pending_request() {
        let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = dead.local_addr().unwrap();
        drop(dead);
        let c = cluster(limits(1, 10, 10), UpstreamProtocol::Http1);
        let pool = HostPool::new(addr, c.clone());
        let (a, b) = tokio::join!(pool.checkout(false), pool.checkout(false));
        assert!(matches!(a.err(), Some(UpstreamError::ConnectFailure(_))));
        assert!(matches!(b.err(), Some(UpstreamError::ConnectFailure(_))));
        assert_eq!(stat(&c, "upstream_rq_pending_failure_eject"), 2);
        assert_eq!(stat(&c, "upstream_cx_total"), 1);
        assert_eq!(
            c.stats.upstream_rq_pending_active.load(Ordering::Relaxed),
            0
        );
        // The slot came back: the next request may try again.
        tokio::task::yield_now().await;
        assert_eq!(c.stats.upstream_cx_active.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn http2_streams_overflow_max_requests_at_once_and_hold_it_until_the_body_ends() {
        let server = HttpServer::builder().name("a").http2().start().await;
        let c = cluster(limits(1, 10, 1), UpstreamProtocol::Http2);
        let pool = HostPool::new(server.addr(), c.clone());
        let resp = pool
            .checkout(true)
            .await
            .unwrap()
            .send(get(&server, true, 0))
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        assert_eq!(
            pool.checkout(true).await.err(),
            Some(UpstreamError::Overflow(Overflow::Requests))
        );
        assert_eq!(stat(&c, "upstream_rq_pending_overflow"), 1);
        resp.into_body().collect().await.unwrap();
        assert_eq!(request(&pool, &server, true, 0).await, Ok(200));
        assert_eq!(server.connection_count(), 1);
    }

    #[tokio::test]
    async fn http2_requests_are_pending_while_the_connection_opens() {
        let server = HttpServer::builder().name("a").http2().start().await;
        let c = cluster(limits(1, 1, 10), UpstreamProtocol::Http2);
        let pool = HostPool::new(server.addr(), c.clone());
        // Both ask before the connection is up: only one may wait for it.
        let (a, b) = tokio::join!(
            request(&pool, &server, true, 0),
            request(&pool, &server, true, 0)
        );
        assert_eq!(a, Ok(200));
        assert_eq!(b, Err(UpstreamError::Overflow(Overflow::PendingRequests)));
        // Once it is up, requests multiplex on it without waiting.
        let (a, b) = tokio::join!(
            request(&pool, &server, true, 100),
            request(&pool, &server, true, 0)
        );
        assert_eq!((a, b), (Ok(200), Ok(200)));
        assert_eq!(stat(&c, "upstream_rq_pending_total"), 1);
        assert_eq!(server.connection_count(), 1);
    }

    #[tokio::test]
    async fn two_http1_requests_at_the_same_moment_overflow_while_the_connection_opens() {
        // The first is pending until its connection is up, so with one pending slot the
        // second has nowhere to wait: Envoy's order of checks, not a weft quirk.
        let server = h1_server().await;
        let c = cluster(limits(1, 1, 1), UpstreamProtocol::Http1);
        let pool = HostPool::new(server.addr(), c.clone());
        let (a, b) = tokio::join!(
            request(&pool, &server, false, 0),
            request(&pool, &server, false, 0)
        );
        assert_eq!(a, Ok(200));
        assert_eq!(b, Err(UpstreamError::Overflow(Overflow::PendingRequests)));
        assert_eq!(stat(&c, "upstream_cx_overflow"), 0);
    }

    #[tokio::test]
    async fn an_upgraded_connection_keeps_its_connection_slot_until_the_tunnel_closes() {
        let server = h1_server().await;
        let c = cluster(limits(1, 10, 10), UpstreamProtocol::Http1);
        let pool = HostPool::new(server.addr(), c.clone());
        let upgrade = Request::get("/chat")
            .header(http::header::HOST, "test")
            .header(http::header::CONNECTION, "upgrade")
            .header(http::header::UPGRADE, "websocket")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-version", "13")
            .body(full(""))
            .unwrap();
        let mut resp = pool.checkout(false).await.unwrap().send(upgrade).await;
        let resp = resp.as_mut().unwrap();
        assert_eq!(resp.status(), http::StatusCode::SWITCHING_PROTOCOLS);
        let tunnel = hyper::upgrade::on(resp).await.unwrap();
        let active = || c.stats.upstream_cx_active.load(Ordering::Relaxed);
        assert_eq!(active(), 1);
        assert_eq!(pool.h1.lock().open, 1);
        assert!(pool.h1.lock().idle.is_empty());
        // At the limit, a request waits for the tunnel's connection to close, then opens one.
        let (served, ()) = tokio::join!(request(&pool, &server, false, 0), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(server.connection_count(), 1, "no second connection yet");
            assert_eq!(stat(&c, "upstream_cx_overflow"), 1);
            drop(tunnel);
        });
        assert_eq!(served, Ok(200));
        assert_eq!(server.connection_count(), 2);
        assert_eq!(stat(&c, "upstream_cx_destroy"), 1);
        // Only the new connection is counted, and it is the only one to reuse.
        assert_eq!(active(), 1);
        assert_eq!(pool.h1.lock().open, 1);
        assert_eq!(pool.h1.lock().idle.len(), 1);
        assert_eq!(request(&pool, &server, false, 0).await, Ok(200));
        assert_eq!(server.connection_count(), 2);
    }

    #[tokio::test]
    async fn an_http2_endpoint_opens_its_connection_even_over_max_connections() {
        let a = HttpServer::builder().name("a").http2().start().await;
        let b = HttpServer::builder().name("b").http2().start().await;
        let c = cluster(limits(1, 10, 10), UpstreamProtocol::Http2);
        let pool_a = HostPool::new(a.addr(), c.clone());
        let pool_b = HostPool::new(b.addr(), c.clone());
        assert_eq!(request(&pool_a, &a, true, 0).await, Ok(200));
        assert_eq!(request(&pool_b, &b, true, 0).await, Ok(200));
        assert_eq!(stat(&c, "upstream_cx_overflow"), 1);
    }
}
