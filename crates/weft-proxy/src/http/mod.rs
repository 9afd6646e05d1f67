//! The HTTP connection manager: serves HTTP/1.1 and HTTP/2 (prior knowledge, h2c, or ALPN) on a
//! downstream connection and runs each request through routing, filters and the router.

pub mod conn_timers;
pub mod duration;
pub mod filters;
pub mod framing;
pub mod idle;
pub mod local_reply;
pub mod names;
pub mod path;
pub mod request;
pub mod router;
pub mod tunnel;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use weft_proxy_config::model::CodecType;

pub use request::ConnContext;

use crate::coalesce::{self, FlushAfterPoll};
use crate::upstream::stats::inc;
use conn_timers::HeadersClock;

crate::upstream::stats::define_stats!(HttpStats {
    counters: [
        downstream_cx_total,
        downstream_cx_http1_total,
        downstream_cx_http2_total,
        downstream_cx_protocol_error,
        downstream_cx_idle_timeout,
        downstream_rq_header_timeout,
        downstream_rq_total,
        downstream_rq_1xx,
        downstream_rq_2xx,
        downstream_rq_3xx,
        downstream_rq_4xx,
        downstream_rq_5xx,
        downstream_rq_no_route,
        downstream_rq_timeout,
        downstream_rq_idle_timeout,
        downstream_rq_max_duration_reached,
    ],
    gauges: [downstream_cx_active, downstream_rq_active]
});

impl HttpStats {
    /// Counts a response status in its class.
    pub fn record_status(&self, status: u16) {
        let c = match status {
            100..=199 => &self.downstream_rq_1xx,
            200..=299 => &self.downstream_rq_2xx,
            300..=399 => &self.downstream_rq_3xx,
            400..=499 => &self.downstream_rq_4xx,
            _ => &self.downstream_rq_5xx,
        };
        inc(c);
    }
}

/// Serves HTTP on `io` until the client closes, an idle timeout fires, or `drain` flips to true
/// (then in-flight requests finish, HTTP/1.1 closes after the current response and HTTP/2 sends
/// GOAWAY).
pub async fn serve_connection<I>(io: I, cx: Arc<ConnContext>, mut drain: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let hcm = cx.hcm.clone();
    let stats = cx.stats.clone();
    inc(&stats.downstream_cx_total);
    stats.downstream_cx_active.fetch_add(1, Ordering::Relaxed);

    let mut builder = auto::Builder::new(TokioExecutor::new());
    match hcm.codec {
        CodecType::Auto => {}
        CodecType::Http1 => builder = builder.http1_only(),
        CodecType::Http2 => builder = builder.http2_only(),
    }
    let max_header_bytes = usize::try_from(hcm.max_request_headers_kb).unwrap_or(60) * 1024;
    {
        let mut h1 = builder.http1();
        // hyper answers more headers than its limit with a bare 431: it parses up to twice the
        // configured count so that `max_headers_count` is enforced with Envoy's local reply
        // (`request::codec_rejection`).
        let max_headers = usize::try_from(hcm.max_headers_count).unwrap_or(100);
        h1.timer(TokioTimer::new())
            .max_headers(max_headers.saturating_mul(2).max(100))
            .max_buf_size(max_header_bytes.max(8192))
            .keep_alive(true)
            // hyper's header timeout (30 s by default) runs while a keep-alive connection
            // waits for its next request; Envoy's `request_headers_timeout` starts at a
            // request's first byte: `conn_timers::HeadersClock` times it instead.
            .header_read_timeout(None);
    }
    {
        let mut h2 = builder.http2();
        h2.timer(TokioTimer::new())
            .max_concurrent_streams(hcm.http2.max_concurrent_streams)
            .initial_stream_window_size(hcm.http2.initial_stream_window_size)
            .initial_connection_window_size(hcm.http2.initial_connection_window_size)
            .max_header_list_size(u32::try_from(max_header_bytes).unwrap_or(61440))
            // Rapid-reset (CVE-2023-44487) and CONTINUATION-flood protection: hyper/h2 bound
            // pending resets and header block sizes; keep the limits explicit.
            .max_pending_accept_reset_streams(Some(20))
            .max_local_error_reset_streams(Some(1024));
    }
    let service_cx = cx.clone();
    // Boxed: hyper moves the service's future into its stream task (HTTP/2) or connection slot
    // (HTTP/1.1), and the runtime moves it again; each move copies the whole future (several
    // KB, see docs/proxy.md), a box is moved as one pointer.
    let service = service_fn(move |req| Box::pin(request::handle(req, service_cx.clone())));
    // HTTP/2 writes what one poll of the connection produced at once (see `coalesce`).
    let (io, driver) = coalesce::wrap(io, coalesce::Mode::Sniff);
    let reply_cx = cx.clone();
    let limits = conn_timers::HeadersLimits {
        headers: hcm.request_headers_timeout,
        stream_idle: hcm.stream_idle_timeout,
        request: hcm.request_timeout,
        max_duration: duration::connection_manager_limit(hcm.max_stream_duration),
    };
    let io = HeadersClock::new(io, &cx.streams, limits, move |status, text| {
        request::connection_reply(&reply_cx, status, text)
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let conn = FlushAfterPoll::new(conn, driver);
    tokio::pin!(conn);
    let idle = hcm.idle_timeout;
    let result = 'serve: {
        loop {
            tokio::select! {
                r = conn.as_mut() => break 'serve r,
                changed = drain.changed(), if !cx.draining.load(Ordering::Relaxed) => {
                    if changed.is_err() || *drain.borrow() {
                        break;
                    }
                }
                () = idle_for(&cx.streams, idle) => {
                    // Envoy's idle timeout: no stream for `idle_timeout`. A connection that
                    // never received a byte (Envoy made no codec for it) closes at once; any
                    // other drains, as below.
                    inc(&stats.downstream_cx_idle_timeout);
                    if cx.streams.received() {
                        break;
                    }
                    // Nothing to finish: dropping the connection closes it.
                    break 'serve Ok(());
                }
            }
        }
        // Envoy's drain sequence: from now on HTTP/1.1 responses say `connection: close`
        // (clients stop reusing the connection without racing a close); after `drain_timeout`
        // the connection closes gracefully (HTTP/2 gets GOAWAY), finishing requests in flight.
        cx.draining.store(true, Ordering::Relaxed);
        let grace = tokio::time::sleep(hcm.drain_timeout);
        tokio::pin!(grace);
        tokio::select! {
            r = conn.as_mut() => r,
            () = &mut grace => {
                conn.as_mut().future().graceful_shutdown();
                conn.as_mut().await
            }
        }
    };
    if let Some(kind) = cx.streams.headers_timed_out() {
        // The timed-out request counts as a request answered 408, as in Envoy.
        inc(match kind {
            conn_timers::HeadersTimeout::Headers => &stats.downstream_rq_header_timeout,
            conn_timers::HeadersTimeout::StreamIdle => &stats.downstream_rq_idle_timeout,
            conn_timers::HeadersTimeout::Request => &stats.downstream_rq_timeout,
            conn_timers::HeadersTimeout::MaxDuration => &stats.downstream_rq_max_duration_reached,
        });
        inc(&stats.downstream_rq_total);
        stats.record_status(408);
    } else if result.is_err() {
        inc(&stats.downstream_cx_protocol_error);
    }
    stats.downstream_cx_active.fetch_sub(1, Ordering::Relaxed);
}

/// Completes once the connection has had no stream for `idle` (`None`: never).
async fn idle_for(streams: &conn_timers::Streams, idle: Option<std::time::Duration>) {
    match idle {
        Some(idle) => streams.idle(idle).await,
        None => std::future::pending().await,
    }
}
