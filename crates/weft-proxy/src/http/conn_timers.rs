//! The connection manager's connection-level timers, with Envoy's semantics:
//!
//! * **`idle_timeout`** (`common_http_protocol_options`, 1 h by default): a downstream
//!   connection on which no stream has been active for that long is closed (HTTP/2 after a
//!   GOAWAY). The period starts when the connection's last stream ends, not when the connection
//!   opened, and other connections' streams do not count ([`Streams::idle`]).
//!   A connection that has received nothing is closed at once; one that has goes through the
//!   drain sequence first (see `serve_connection`), as Envoy's does once it has a codec.
//! * **The header phase** of an HTTP/1.1 request ([`HeadersClock`]): Envoy's stream exists from
//!   a request's first byte, so `request_headers_timeout` (off by default), the stream idle
//!   timeout (5 min by default), `request_timeout` and the max stream duration all run from
//!   there while the headers arrive; the first to pass answers `408` with its own text
//!   (`request header timeout`, `stream timeout`, ...) and `connection: close`, and the
//!   connection closes. A keep-alive connection waiting for its next request is not timed by
//!   them (hyper's own header timeout, which starts when the connection starts waiting, would
//!   close idle keep-alive connections). On HTTP/2 a request's headers arrive as one block of
//!   frames, so none of this applies there.
//!
//! A stream is active from the moment its request headers have been parsed until the proxy is
//! done with it: its [`StreamGuard`] lives in the stream's [`super::idle::Activity`], which the
//! request and response body wrappers and an open tunnel hold. While a request's headers are
//! arriving the connection is not idle either.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::framing::{HeadScan, Verdict};

/// The streams of one downstream connection.
#[derive(Debug)]
pub struct Streams {
    start: Instant,
    /// Streams open now.
    active: AtomicU64,
    /// Streams opened so far.
    opened: AtomicU64,
    /// Milliseconds from `start` to the moment the last stream ended.
    idle_since_ms: AtomicU64,
    /// Which header-phase timer closed the connection: `HeadersTimeout as u8 + 1`, 0: none.
    timed_out: AtomicU8,
    /// A request's headers are arriving (Envoy's stream exists from its first byte).
    arriving: AtomicBool,
    /// Some bytes have arrived on the connection.
    received: AtomicBool,
    /// A request whose head Envoy refuses: its sequence number (the streams opened once it
    /// is) times 8, plus its [`Verdict`] as a number; 0: none.
    refused: AtomicU64,
}

impl Streams {
    /// A connection opening now, with no stream yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Streams {
            start: Instant::now(),
            active: AtomicU64::new(0),
            opened: AtomicU64::new(0),
            idle_since_ms: AtomicU64::new(0),
            timed_out: AtomicU8::new(0),
            arriving: AtomicBool::new(false),
            received: AtomicBool::new(false),
            refused: AtomicU64::new(0),
        })
    }

    /// A stream starts (its request headers have been parsed); it is active until the guard is
    /// dropped.
    pub fn open(self: &Arc<Self>) -> StreamGuard {
        let seq = self.opened.fetch_add(1, Ordering::SeqCst) + 1;
        self.active.fetch_add(1, Ordering::SeqCst);
        self.arriving.store(false, Ordering::SeqCst);
        StreamGuard(self.clone(), seq)
    }

    /// Envoy's answer to the stream, when its request's framing is one Envoy refuses (see
    /// [`super::framing`]).
    pub fn refusal(&self, stream: &StreamGuard) -> Option<(u16, &'static str)> {
        let refused = self.refused.load(Ordering::SeqCst);
        if refused / 8 != stream.1 {
            return None;
        }
        Verdict::from_code(u8::try_from(refused % 8).unwrap_or(0)).reply()
    }

    /// Completes once no stream has been active for `timeout`.
    pub async fn idle(&self, timeout: Duration) {
        loop {
            let busy =
                self.active.load(Ordering::SeqCst) != 0 || self.arriving.load(Ordering::SeqCst);
            let deadline = if !busy {
                let since = Duration::from_millis(self.idle_since_ms.load(Ordering::SeqCst));
                let deadline = self.start + since + timeout;
                if Instant::now() >= deadline {
                    return;
                }
                deadline
            } else {
                // Looked at again when the period could have passed at the earliest.
                Instant::now() + timeout
            };
            tokio::time::sleep_until(deadline).await;
        }
    }

    /// The timer that closed the connection while a request's headers were arriving.
    pub fn headers_timed_out(&self) -> Option<HeadersTimeout> {
        match self.timed_out.load(Ordering::Relaxed) {
            1 => Some(HeadersTimeout::Headers),
            2 => Some(HeadersTimeout::StreamIdle),
            3 => Some(HeadersTimeout::Request),
            4 => Some(HeadersTimeout::MaxDuration),
            _ => None,
        }
    }

    /// Whether any bytes have arrived on the connection.
    pub fn received(&self) -> bool {
        self.received.load(Ordering::Relaxed)
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

/// A stream of a connection, active until dropped (see [`Streams::open`]), with its sequence
/// number on the connection.
#[derive(Debug)]
pub struct StreamGuard(Arc<Streams>, u64);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        // The idle period's start first: whoever sees no active stream sees when it began.
        let now = self.0.elapsed_ms();
        self.0.idle_since_ms.fetch_max(now, Ordering::SeqCst);
        self.0.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A timer that runs while a request's headers arrive, and what fires it: Envoy's stream exists
/// from a request's first byte, so its request headers timeout, stream idle timeout, request
/// timeout and max stream duration all run from there. Each answers `408` with its own text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadersTimeout {
    /// `request_headers_timeout` (`downstream_rq_header_timeout`).
    Headers,
    /// `stream_idle_timeout` (`downstream_rq_idle_timeout`).
    StreamIdle,
    /// `request_timeout` (`downstream_rq_timeout`).
    Request,
    /// `common_http_protocol_options.max_stream_duration` (`downstream_rq_max_duration_reached`).
    MaxDuration,
}

impl HeadersTimeout {
    /// The body of Envoy's `408`.
    pub fn text(self) -> &'static str {
        match self {
            HeadersTimeout::Headers => "request header timeout",
            HeadersTimeout::StreamIdle => "stream timeout",
            HeadersTimeout::Request => "request timeout",
            HeadersTimeout::MaxDuration => "downstream duration timeout",
        }
    }
}

/// The connection manager's limits on the time a request's headers take (`None`: no limit).
#[derive(Debug, Clone, Copy, Default)]
pub struct HeadersLimits {
    /// `request_headers_timeout`.
    pub headers: Option<Duration>,
    /// `stream_idle_timeout`.
    pub stream_idle: Option<Duration>,
    /// `request_timeout`.
    pub request: Option<Duration>,
    /// The connection manager's max stream duration.
    pub max_duration: Option<Duration>,
}

impl HeadersLimits {
    /// The limit that passes first, and which it is.
    fn first(&self) -> Option<(Duration, HeadersTimeout)> {
        [
            (self.headers, HeadersTimeout::Headers),
            (self.stream_idle, HeadersTimeout::StreamIdle),
            (self.request, HeadersTimeout::Request),
            (self.max_duration, HeadersTimeout::MaxDuration),
        ]
        .into_iter()
        .filter_map(|(limit, kind)| Some((limit?, kind)))
        .min_by_key(|(limit, _)| *limit)
    }
}

/// Builds the bytes of a local reply (status, text) the connection writes itself.
pub type ConnReply = Box<dyn Fn(u16, &'static str) -> bytes::Bytes + Send + Sync>;

/// Times the arrival of request headers on a downstream HTTP/1.1 connection: a request begins
/// when bytes arrive while no stream is active, and its headers are in as soon as a stream has
/// been opened since (hyper parsed them). Only when hyper asks for more bytes of unfinished
/// headers is a timer set, for the first of the [`HeadersLimits`] counted from the request's
/// first byte; when it fires, the next read writes the timeout reply (hyper is still parsing
/// the request and cannot answer it) and then fails, which closes the connection. Once the
/// connection has shown the HTTP/2 preface, reads pass straight through. It also tells
/// [`Streams`] when bytes have arrived and while a request's headers are arriving (Envoy's
/// stream is active then).
pub struct HeadersClock<S> {
    io: S,
    streams: Arc<Streams>,
    limit: Option<(Duration, HeadersTimeout)>,
    reply: ConnReply,
    /// A reply of the connection's own and how much of it has been written: once a timer has
    /// fired, or in place of hyper's answer to a request it could not parse.
    replying: Option<(bytes::Bytes, usize)>,
    /// The framing of the arriving request's head (see [`super::framing`]).
    scan: HeadScan,
    /// HTTP/2 preface bytes matched so far (see [`crate::coalesce::follow_preface`]).
    preface: usize,
    /// The first bytes showed whether the connection is HTTP/2.
    sniffed: bool,
    /// A request's headers are arriving.
    arriving: Option<Arriving>,
    sleep: Option<Pin<Box<Sleep>>>,
}

#[derive(Debug, Clone, Copy)]
struct Arriving {
    /// Streams opened when its first byte came.
    opened: u64,
    since: Instant,
    /// The timer is set for it.
    timed: bool,
}

impl<S> HeadersClock<S> {
    /// Wraps a connection's `io`; `reply` builds the answer of a timer that fires.
    pub fn new(
        io: S,
        streams: &Arc<Streams>,
        limits: HeadersLimits,
        reply: impl Fn(u16, &'static str) -> bytes::Bytes + Send + Sync + 'static,
    ) -> Self {
        HeadersClock {
            io,
            streams: streams.clone(),
            limit: limits.first(),
            reply: Box::new(reply),
            replying: None,
            scan: HeadScan::default(),
            preface: 0,
            sniffed: false,
            arriving: None,
            sleep: None,
        }
    }

    fn is_http2(&self) -> bool {
        self.preface == crate::coalesce::PREFACE_LEN
    }

    /// Before a read: notes headers parsed since the request began; whether a timer has fired
    /// (setting it when hyper asks for more of unfinished headers).
    fn poll_fired(&mut self, cx: &mut Context<'_>) -> bool {
        if self.replying.is_some() {
            return true;
        }
        let Some(arriving) = self.arriving.as_mut() else {
            return false;
        };
        if self.streams.opened.load(Ordering::SeqCst) != arriving.opened {
            self.arriving = None;
            self.streams.arriving.store(false, Ordering::SeqCst);
            return false;
        }
        let Some((limit, kind)) = self.limit else {
            return false;
        };
        let deadline = arriving.since + limit;
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if !arriving.timed {
            arriving.timed = true;
            sleep.as_mut().reset(deadline);
        }
        if sleep.as_mut().poll(cx).is_pending() {
            return false;
        }
        self.streams
            .timed_out
            .store(kind as u8 + 1, Ordering::Relaxed);
        self.replying = Some(((self.reply)(408, kind.text()), 0));
        true
    }

    /// After a read of `read`: the first bytes of a request begin it.
    fn on_read(&mut self, read: &[u8]) {
        if read.is_empty() {
            return;
        }
        if !self.streams.received.load(Ordering::Relaxed) {
            self.streams.received.store(true, Ordering::Relaxed);
        }
        if !self.sniffed {
            match crate::coalesce::follow_preface(&mut self.preface, read) {
                Some(true) => {
                    self.sniffed = true;
                    self.arriving = None;
                    self.streams.arriving.store(false, Ordering::SeqCst);
                    return;
                }
                Some(false) => self.sniffed = true,
                None => {}
            }
        }
        if let Some(arriving) = self.arriving {
            // More of the same head (or what follows it).
            self.scan_head(arriving.opened, read);
            return;
        }
        if self.streams.active.load(Ordering::SeqCst) != 0 {
            // A request body, or an open tunnel.
            return;
        }
        let opened = self.streams.opened.load(Ordering::SeqCst);
        self.arriving = Some(Arriving {
            opened,
            since: Instant::now(),
            timed: false,
        });
        self.streams.arriving.store(true, Ordering::SeqCst);
        self.scan = HeadScan::default();
        self.scan_head(opened, read);
    }

    /// Reads the framing headers of the head that began when `opened` streams had been opened;
    /// a refusal is kept for the stream the head becomes.
    fn scan_head(&mut self, opened: u64, read: &[u8]) {
        if self.scan.feed(read) {
            let verdict = self.scan.verdict();
            if verdict != Verdict::Fine {
                self.streams
                    .refused
                    .store((opened + 1) * 8 + verdict as u64, Ordering::SeqCst);
            }
        }
    }

    /// hyper answers a request it cannot parse itself (a bare status, no stream opened): the
    /// status of such an answer starting in `buf`.
    fn hypers_own_answer(&self, buf: &[u8]) -> Option<u16> {
        let arriving = self.arriving?;
        if self.streams.opened.load(Ordering::SeqCst) != arriving.opened {
            return None;
        }
        let status = buf.strip_prefix(b"HTTP/1.1 ")?.get(..3)?;
        std::str::from_utf8(status).ok()?.parse().ok()
    }
}

impl<S: AsyncWrite + Unpin> HeadersClock<S> {
    /// Writes the connection's own reply out.
    fn poll_reply(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some((reply, written)) = &mut self.replying {
            while *written < reply.len() {
                match ready!(Pin::new(&mut self.io).poll_write(cx, &reply[*written..]))? {
                    0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    n => *written += n,
                }
            }
            ready!(Pin::new(&mut self.io).poll_flush(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<S> std::fmt::Debug for HeadersClock<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadersClock")
            .field("limit", &self.limit)
            .field("arriving", &self.arriving)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for HeadersClock<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.is_http2() {
            return Pin::new(&mut this.io).poll_read(cx, buf);
        }
        if this.poll_fired(cx) {
            // The reply out, then the read fails: the connection closes.
            ready!(this.poll_reply(cx))?;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "timed out waiting for the request headers",
            )));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        this.on_read(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> HeadersClock<S> {
    /// In place of hyper's bare answer to a request it could not parse, Envoy's: the status of
    /// what Envoy's codec found (see [`super::framing`]), else hyper's, with its text, the
    /// headers of any local reply and `connection: close`. `Some` once `buf` has been taken as
    /// written.
    fn poll_replace(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Option<Poll<io::Result<usize>>> {
        if self.replying.is_none() {
            let status = self.hypers_own_answer(buf)?;
            // What Envoy's codec checks first (the request line, the framing) decides; a
            // fragment is refused only after the codec.
            let verdict = self.scan.verdict();
            let (status, text) = match verdict.reply() {
                Some(refusal) if verdict != Verdict::Fragment => refusal,
                _ => (
                    status,
                    http::StatusCode::from_u16(status)
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or("Bad Request"),
                ),
            };
            self.replying = Some(((self.reply)(status, text), 0));
        }
        // Everything hyper writes from here on is its answer, replaced.
        Some(self.poll_reply(cx).map_ok(|()| buf.len()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for HeadersClock<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(replaced) = this.poll_replace(cx, buf) {
            return replaced;
        }
        Pin::new(&mut this.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.arriving.is_some() || this.replying.is_some() {
            // Rare (hyper answering a request it could not parse): one buffer at a time.
            let first = bufs
                .iter()
                .find(|b| !b.is_empty())
                .map_or(&[][..], |b| &**b);
            if let Some(replaced) = this.poll_replace(cx, first) {
                return replaced;
            }
        }
        Pin::new(&mut this.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    use super::*;

    /// `elapsed` is `expected`, give or take the timer's millisecond ticks.
    fn about(elapsed: Duration, expected: Duration) -> bool {
        elapsed >= expected && elapsed <= expected + Duration::from_millis(5)
    }

    #[tokio::test(start_paused = true)]
    async fn idle_counts_from_the_end_of_the_last_stream() {
        let streams = Streams::new();
        let timeout = Duration::from_secs(10);
        tokio::time::sleep(Duration::from_secs(4)).await;
        let guard = streams.open();
        // Active streams hold the connection open however long they last.
        let idle = streams.idle(timeout);
        tokio::pin!(idle);
        assert!(
            tokio::time::timeout(Duration::from_secs(30), idle.as_mut())
                .await
                .is_err()
        );
        drop(guard);
        let ended = Instant::now();
        idle.await;
        assert!(about(Instant::now() - ended, timeout));
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_without_streams_is_idle_from_its_start() {
        let streams = Streams::new();
        let start = Instant::now();
        streams.idle(Duration::from_secs(3)).await;
        assert!(about(Instant::now() - start, Duration::from_secs(3)));
    }

    fn reply(status: u16, text: &'static str) -> bytes::Bytes {
        bytes::Bytes::from(format!("HTTP/1.1 {status} x\r\n\r\n{text}"))
    }

    fn headers_limit(secs: u64) -> HeadersLimits {
        HeadersLimits {
            headers: Some(Duration::from_secs(secs)),
            ..HeadersLimits::default()
        }
    }

    async fn read_some(io: &mut (impl AsyncRead + Unpin)) -> io::Result<usize> {
        let mut buf = [0u8; 64];
        io.read(&mut buf).await
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_starts_at_the_first_byte_and_fires_on_the_next_read() {
        let streams = Streams::new();
        let (mut client, server) = duplex(1024);
        let mut clock = HeadersClock::new(server, &streams, headers_limit(1), reply);
        // Waiting for a first request is not timed.
        tokio::time::sleep(Duration::from_secs(5)).await;
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert_eq!(read_some(&mut clock).await.unwrap(), 16);
        let start = Instant::now();
        let err = read_some(&mut clock).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(about(Instant::now() - start, Duration::from_secs(1)));
        assert_eq!(streams.headers_timed_out(), Some(HeadersTimeout::Headers));
        // The client got the reply.
        drop(clock);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, reply(408, HeadersTimeout::Headers.text()));
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_limit_to_pass_answers() {
        let streams = Streams::new();
        let (mut client, server) = duplex(1024);
        let limits = HeadersLimits {
            headers: Some(Duration::from_secs(4)),
            stream_idle: Some(Duration::from_secs(3)),
            request: Some(Duration::from_secs(5)),
            max_duration: None,
        };
        let mut clock = HeadersClock::new(server, &streams, limits, reply);
        client.write_all(b"GET / HT").await.unwrap();
        read_some(&mut clock).await.unwrap();
        // A connection whose request is arriving is not idle.
        let idle = streams.idle(Duration::from_secs(1));
        tokio::pin!(idle);
        assert!(
            tokio::time::timeout(Duration::from_millis(2500), idle.as_mut())
                .await
                .is_err()
        );
        let err = read_some(&mut clock).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(
            streams.headers_timed_out(),
            Some(HeadersTimeout::StreamIdle)
        );
        drop(clock);
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, reply(408, "stream timeout"));
    }

    #[tokio::test(start_paused = true)]
    async fn without_limits_reads_are_not_timed() {
        let streams = Streams::new();
        let (mut client, server) = duplex(1024);
        let mut clock = HeadersClock::new(server, &streams, HeadersLimits::default(), reply);
        client.write_all(b"GET / HT").await.unwrap();
        read_some(&mut clock).await.unwrap();
        assert!(streams.received());
        let more = tokio::spawn(async move { read_some(&mut clock).await });
        tokio::time::sleep(Duration::from_secs(3600)).await;
        client.write_all(b"TP/1.1").await.unwrap();
        assert_eq!(more.await.unwrap().unwrap(), 6);
    }

    #[tokio::test(start_paused = true)]
    async fn parsed_headers_stop_the_timer_and_the_next_request_restarts_it() {
        let streams = Streams::new();
        let (mut client, server) = duplex(1024);
        let mut clock = HeadersClock::new(server, &streams, headers_limit(1), reply);
        client.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        read_some(&mut clock).await.unwrap();
        // The request is served and ends before the connection reads again.
        drop(streams.open());
        // A keep-alive connection waiting past the timeout is not closed.
        let read = tokio::spawn(async move {
            let n = read_some(&mut clock).await;
            (n, clock)
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        client.write_all(b"GET").await.unwrap();
        let (n, mut clock) = read.await.unwrap();
        assert_eq!(n.unwrap(), 3);
        // The second request's headers are timed from their first byte.
        let start = Instant::now();
        let err = read_some(&mut clock).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(about(Instant::now() - start, Duration::from_secs(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn reads_while_a_stream_is_active_are_not_timed() {
        let streams = Streams::new();
        let (mut client, server) = duplex(1024);
        let mut clock = HeadersClock::new(server, &streams, headers_limit(1), reply);
        let stream = streams.open();
        client.write_all(b"body bytes").await.unwrap();
        read_some(&mut clock).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        client.write_all(b"more").await.unwrap();
        assert_eq!(read_some(&mut clock).await.unwrap(), 4);
        drop(stream);
    }

    #[tokio::test(start_paused = true)]
    async fn http2_connections_are_not_timed() {
        let streams = Streams::new();
        let (mut client, server) = duplex(1024);
        let mut clock = HeadersClock::new(server, &streams, headers_limit(1), reply);
        client
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .await
            .unwrap();
        read_some(&mut clock).await.unwrap();
        client.write_all(b"\x00\x00").await.unwrap();
        read_some(&mut clock).await.unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
        client.write_all(b"\x00").await.unwrap();
        assert_eq!(read_some(&mut clock).await.unwrap(), 1);
    }
}
