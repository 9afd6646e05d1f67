//! Per-endpoint connection pools: HTTP/1.1 keep-alive connections and one multiplexed HTTP/2
//! connection, with Envoy's circuit-breaker semantics.
//!
//! HTTP/1.1: a request takes an idle connection, else opens one while the cluster is under
//! `max_connections`, else waits for one to free up while under `max_pending_requests`, else
//! overflows (503 with `x-envoy-overloaded`). A connection returns to the pool when its response
//! body has been read to the end.
//!
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
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::cluster::ClusterShared;
use super::connect::connect;
use super::stats::inc;
use crate::error::{Overflow, UpstreamError};
use crate::{Body, BoxError};

/// How many stale pooled connections a request may skip before it fails.
const MAX_STALE_RETRIES: usize = 4;

/// The pools for one endpoint.
#[derive(Debug)]
pub struct HostPool {
    addr: SocketAddr,
    cluster: Arc<ClusterShared>,
    h1: Mutex<H1State>,
    h2: tokio::sync::Mutex<Option<http2::SendRequest<Body>>>,
}

#[derive(Debug, Default)]
struct H1State {
    idle: Vec<IdleConn>,
    waiters: VecDeque<oneshot::Sender<Grant>>,
}

/// An HTTP/1.1 connection between requests.
#[derive(Debug)]
pub struct IdleConn {
    send: http1::SendRequest<Body>,
    idle_since: Instant,
    requests: u32,
}

/// What a waiting request receives.
#[derive(Debug)]
enum Grant {
    /// A connection freed by another request.
    Conn(IdleConn),
    /// A connection slot: open a new connection.
    Connect,
}

impl HostPool {
    /// A pool for `addr` in `cluster`.
    pub fn new(addr: SocketAddr, cluster: Arc<ClusterShared>) -> Arc<Self> {
        Arc::new(Self {
            addr,
            cluster,
            h1: Mutex::new(H1State::default()),
            h2: tokio::sync::Mutex::new(None),
        })
    }

    /// The endpoint address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Gets a connection for one request: for HTTP/1.1 an idle, new or handed-over connection;
    /// for HTTP/2 the endpoint's shared connection. Failing here leaves the request untouched,
    /// so the caller may retry it elsewhere.
    pub async fn checkout(self: &Arc<Self>, http2: bool) -> Result<Checkout, UpstreamError> {
        if http2 {
            let mut sender = self.http2_sender().await?;
            if sender.ready().await.is_err() {
                *self.h2.lock().await = None;
                sender = self.http2_sender().await?;
            }
            return Ok(Checkout::Http2 {
                pool: self.clone(),
                sender,
            });
        }
        let (conn, reused) = self.checkout_http1().await?;
        Ok(Checkout::Http1 {
            pool: self.clone(),
            conn,
            reused,
        })
    }

    async fn checkout_http1(self: &Arc<Self>) -> Result<(IdleConn, bool), UpstreamError> {
        for _ in 0..=MAX_STALE_RETRIES {
            let (mut conn, reused) = self.acquire_http1().await?;
            if conn.send.ready().await.is_ok() {
                return Ok((conn, reused));
            }
            // Closed while idle: its slot was already released by the connection task.
            inc(&self.cluster.stats.upstream_cx_pool_reuse_retry);
        }
        Err(UpstreamError::ResetBeforeHeaders {
            request_sent: false,
            detail: "pooled connections kept closing".to_owned(),
        })
    }

    /// An idle connection (reused = true), a new one, or one handed over after waiting.
    async fn acquire_http1(self: &Arc<Self>) -> Result<(IdleConn, bool), UpstreamError> {
        let waiter = {
            let mut st = self.h1.lock();
            let idle_timeout = self.cluster.config.idle_timeout;
            while let Some(c) = st.idle.pop() {
                if c.send.is_closed() {
                    continue;
                }
                if c.idle_since.elapsed() >= idle_timeout {
                    inc(&self.cluster.stats.upstream_cx_idle_timeout);
                    continue; // dropping the sender closes the connection
                }
                return Ok((c, true));
            }
            if self.cluster.try_reserve_connection() {
                None
            } else if self.cluster.try_reserve_pending() {
                let (tx, rx) = oneshot::channel();
                st.waiters.push_back(tx);
                Some(rx)
            } else {
                inc(&self.cluster.stats.upstream_rq_pending_overflow);
                return Err(UpstreamError::Overflow(Overflow::PendingRequests));
            }
        };
        match waiter {
            None => Ok((self.open_http1().await?, false)),
            Some(rx) => {
                let _pending = PendingGuard(self.cluster.clone());
                match rx.await {
                    Ok(Grant::Conn(c)) => Ok((c, true)),
                    Ok(Grant::Connect) => Ok((self.open_http1().await?, false)),
                    Err(_) => Err(UpstreamError::ResetBeforeHeaders {
                        request_sent: false,
                        detail: "connection pool shut down".to_owned(),
                    }),
                }
            }
        }
    }

    /// Opens a connection for an already reserved slot.
    async fn open_http1(self: &Arc<Self>) -> Result<IdleConn, UpstreamError> {
        let slot = ConnectionSlot(Some(self.clone()));
        let stream = connect(self.addr, &self.cluster).await?;
        let (send, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| UpstreamError::ConnectFailure(e.to_string()))?;
        tokio::spawn(async move {
            let _slot = slot;
            // `with_upgrades`: a 101 response hands the connection to the upgrade (WebSocket).
            let _ = conn.with_upgrades().await;
        });
        Ok(IdleConn {
            send,
            idle_since: Instant::now(),
            requests: 0,
        })
    }

    fn wrap_http1(self: &Arc<Self>, resp: Response<Incoming>, conn: IdleConn) -> Response<Body> {
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
        let body = PooledBody {
            inner: body,
            release,
        };
        Response::from_parts(parts, Body::new(body))
    }

    /// Gives a connection whose response finished back to the pool (or a waiter).
    fn release(&self, mut conn: IdleConn) {
        if let Some(max) = self.cluster.config.max_requests_per_connection
            && conn.requests >= max
        {
            return;
        }
        if conn.send.is_closed() {
            return;
        }
        conn.idle_since = Instant::now();
        let mut st = self.h1.lock();
        while let Some(w) = st.waiters.pop_front() {
            match w.send(Grant::Conn(conn)) {
                Ok(()) => return,
                Err(Grant::Conn(c)) => conn = c,
                Err(Grant::Connect) => return,
            }
        }
        st.idle.push(conn);
    }

    /// Called when a connection closes: a waiter may now open one in its place.
    fn connection_closed(&self) {
        let mut st = self.h1.lock();
        while let Some(w) = st.waiters.pop_front() {
            if self.cluster.try_reserve_connection() {
                if w.send(Grant::Connect).is_ok() {
                    return;
                }
                self.cluster.release_connection();
            } else {
                st.waiters.push_front(w);
                return;
            }
        }
    }

    /// Closes idle connections that exceeded the idle timeout.
    pub fn sweep(&self) {
        let idle_timeout = self.cluster.config.idle_timeout;
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

    async fn http2_sender(self: &Arc<Self>) -> Result<http2::SendRequest<Body>, UpstreamError> {
        let mut slot = self.h2.lock().await;
        if let Some(s) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(s.clone());
        }
        if !self.cluster.try_reserve_connection() {
            inc(&self.cluster.stats.upstream_cx_overflow);
            return Err(UpstreamError::Overflow(Overflow::Connections));
        }
        let guard = ConnectionSlot(Some(self.clone()));
        let stream = connect(self.addr, &self.cluster).await?;
        let (send, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .keep_alive_interval(None)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| UpstreamError::ConnectFailure(e.to_string()))?;
        tokio::spawn(async move {
            let _slot = guard;
            let _ = conn.await;
        });
        *slot = Some(send.clone());
        Ok(send)
    }
}

/// A connection checked out for one request.
#[derive(Debug)]
pub enum Checkout {
    /// An HTTP/1.1 connection, exclusively ours until the response ends.
    Http1 {
        /// Its pool.
        pool: Arc<HostPool>,
        /// The connection.
        conn: IdleConn,
        /// Whether it served requests before (then a closed-before-send is the keep-alive race).
        reused: bool,
    },
    /// A stream on the shared HTTP/2 connection.
    Http2 {
        /// Its pool.
        pool: Arc<HostPool>,
        /// The connection's sender.
        sender: http2::SendRequest<Body>,
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
            Checkout::Http2 { pool, mut sender } => match sender.try_send_request(req).await {
                Ok(resp) => Ok(resp.map(|b| Body::new(b.map_err(|e| -> BoxError { Box::new(e) })))),
                Err(mut e) => {
                    let request = e.take_message();
                    *pool.h2.lock().await = None;
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
                mut reused,
            } => {
                for _ in 0..=MAX_STALE_RETRIES {
                    conn.requests += 1;
                    match conn.send.try_send_request(req).await {
                        Ok(resp) => return Ok(pool.wrap_http1(resp, conn)),
                        Err(mut e) => match e.take_message() {
                            Some(unsent) if reused => {
                                inc(&pool.cluster.stats.upstream_cx_pool_reuse_retry);
                                req = unsent;
                                match pool.checkout_http1().await {
                                    Ok((c, r)) => {
                                        conn = c;
                                        reused = r;
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

/// Holds one of the cluster's connection slots until the connection task ends.
struct ConnectionSlot(Option<Arc<HostPool>>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Some(pool) = self.0.take() {
            pool.cluster.release_connection();
            inc(&pool.cluster.stats.upstream_cx_destroy);
            pool.connection_closed();
        }
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
    /// An upstream HTTP/1.1 response body that returns its connection to the pool at its end.
    /// Dropped early, the connection is closed instead (its state is unknown).
    struct PooledBody {
        #[pin]
        inner: Incoming,
        release: Option<Release>,
    }

    impl PinnedDrop for PooledBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
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
                if let Some(r) = this.release.as_mut() {
                    r.done();
                }
            }
            Poll::Ready(Some(Err(_))) => {
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
