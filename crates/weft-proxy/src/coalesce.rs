//! Write coalescing for HTTP/2 connections: what a connection writes while it is polled goes
//! to the socket in one write when the poll ends.
//!
//! The `h2` crate flushes its codec whenever a DATA frame larger than 256 bytes is queued (it
//! holds at most one such frame before writing), so a connection answering 32 streams of
//! 1 KB made 32 `writev` calls: about one per request, and a third of the proxy's CPU in
//! HTTP/2 and gRPC benchmarks went to the kernel's send path. Envoy writes what a connection
//! produced in one event-loop iteration at once. [`Coalescing`] does the same: in coalescing
//! mode it keeps writes (and the flushes `h2` asks for) in a buffer, and [`FlushAfterPoll`],
//! which drives the connection's future, writes the buffer out each time that future has been
//! polled. Nothing waits longer than the rest of the current poll.
//!
//! HTTP/1.1 is left alone: hyper already buffers a response into one write, and an upgraded
//! connection (WebSocket) leaves the connection future, so its writes must reach the socket
//! when they are flushed. A downstream connection is therefore sniffed: it coalesces only once
//! the client has sent the HTTP/2 connection preface (the client speaks first in both
//! protocols, so the mode is known before the proxy writes).
//!
//! The buffer is bounded: past [`LIMIT`] bytes writes wait until it has been written out, so a
//! slow reader still pushes back on the connection.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker, ready};

use bytes::{Buf, BytesMut};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes kept before writes wait for the buffer to be written out.
pub const LIMIT: usize = 64 * 1024;

/// Capacity an empty buffer keeps between bursts; a larger one is freed.
const KEEP: usize = 16 * 1024;

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// How a [`Coalescing`] stream treats writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Decide from the first bytes read: coalesce after an HTTP/2 preface, else pass through.
    Sniff,
    /// Keep writes until the driving future's poll ends (an HTTP/2 connection).
    Coalesce,
    /// Write and flush straight through.
    PassThrough,
}

#[derive(Debug)]
struct Inner<S> {
    io: S,
    mode: Mode,
    /// Preface bytes matched so far while sniffing.
    sniffed: usize,
    buf: BytesMut,
    /// Bytes were written to the stream since it was last flushed.
    unflushed: bool,
    /// Tasks waiting for the buffer to be written out (see [`Inner::poll_drain`]).
    waiters: Vec<Waker>,
    /// Writing the buffer out failed: later writes fail the same way.
    failed: Option<io::ErrorKind>,
}

impl<S: AsyncWrite + Unpin> Inner<S> {
    /// Writes the buffer out and flushes the stream. While it cannot, `Pending`, and the task is
    /// woken once some task has written everything out: the socket wakes the task that tried
    /// last, and that one wakes the others (a socket keeps one waker, and every task of an
    /// upstream connection may drain). A failure is kept, the buffer dropped, for the
    /// connection's next write to report.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.buf.is_empty() && !self.unflushed {
            return Poll::Ready(Ok(()));
        }
        let Poll::Ready(result) = self.write_out(cx) else {
            if !self.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                self.waiters.push(cx.waker().clone());
            }
            return Poll::Pending;
        };
        if let Err(e) = &result {
            self.failed = Some(e.kind());
            self.buf.clear();
        }
        self.unflushed = false;
        if self.buf.capacity() > KEEP {
            // A burst's buffer is not kept by a connection that may idle for hours.
            self.buf = BytesMut::new();
        }
        for w in self.waiters.drain(..) {
            w.wake();
        }
        Poll::Ready(result)
    }

    fn write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.buf.is_empty() {
            match ready!(Pin::new(&mut self.io).poll_write(cx, &self.buf)) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    self.buf.advance(n);
                    // A TLS stream may keep records until flushed.
                    self.unflushed = true;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Pin::new(&mut self.io).poll_flush(cx)
    }

    /// Room for more bytes: the buffer is written out first once it holds [`LIMIT`].
    fn poll_room(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if let Some(kind) = self.failed {
            return Poll::Ready(Err(kind.into()));
        }
        if self.buf.len() < LIMIT {
            return Poll::Ready(Ok(()));
        }
        self.poll_drain(cx)
    }
}

impl<S> Inner<S> {
    /// Follows the preface through the bytes just read.
    fn sniff(&mut self, read: &[u8]) {
        match follow_preface(&mut self.sniffed, read) {
            Some(true) => self.mode = Mode::Coalesce,
            Some(false) => self.mode = Mode::PassThrough,
            None => {}
        }
    }
}

/// Length of the HTTP/2 client connection preface.
pub(crate) const PREFACE_LEN: usize = PREFACE.len();

/// Follows the HTTP/2 client preface through the bytes just read, `matched` bytes of it having
/// been seen before: `Some(true)` once all of it has been, `Some(false)` when the bytes differ
/// from it, `None` while they may still be it. Not called again once decided.
pub(crate) fn follow_preface(matched: &mut usize, read: &[u8]) -> Option<bool> {
    let want = PREFACE.get(*matched..).unwrap_or_default();
    let n = read.len().min(want.len());
    if read[..n] != want[..n] {
        return Some(false);
    }
    *matched += n;
    (*matched == PREFACE.len()).then_some(true)
}

/// A stream whose writes are coalesced per poll of the future driving it (see the module
/// docs). Made with [`wrap`], which also returns the [`Driver`] for [`FlushAfterPoll`].
#[derive(Debug)]
pub struct Coalescing<S> {
    inner: Arc<Mutex<Inner<S>>>,
}

/// The side of a [`Coalescing`] stream that writes its buffer out.
#[derive(Debug)]
pub struct Driver<S> {
    inner: Arc<Mutex<Inner<S>>>,
}

/// Wraps `io` in `mode`.
pub fn wrap<S>(io: S, mode: Mode) -> (Coalescing<S>, Driver<S>) {
    let inner = Arc::new(Mutex::new(Inner {
        io,
        mode,
        sniffed: 0,
        buf: BytesMut::new(),
        unflushed: false,
        waiters: Vec::new(),
        failed: None,
    }));
    (
        Coalescing {
            inner: inner.clone(),
        },
        Driver { inner },
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalescing<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut inner = self.inner.lock();
        let before = buf.filled().len();
        ready!(Pin::new(&mut inner.io).poll_read(cx, buf))?;
        if inner.mode == Mode::Sniff {
            let read = &buf.filled()[before..];
            if !read.is_empty() {
                inner.sniff(read);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalescing<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut inner = self.inner.lock();
        if inner.mode != Mode::Coalesce {
            return Pin::new(&mut inner.io).poll_write(cx, buf);
        }
        ready!(inner.poll_room(cx))?;
        inner.buf.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut inner = self.inner.lock();
        if inner.mode != Mode::Coalesce {
            return Pin::new(&mut inner.io).poll_write_vectored(cx, bufs);
        }
        ready!(inner.poll_room(cx))?;
        let mut n = 0;
        for b in bufs {
            inner.buf.extend_from_slice(b);
            n += b.len();
        }
        Poll::Ready(Ok(n))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.inner.lock();
        if inner.mode == Mode::Coalesce {
            // Written when the driving poll ends.
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut inner.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut inner = self.inner.lock();
        ready!(inner.poll_drain(cx))?;
        Pin::new(&mut inner.io).poll_shutdown(cx)
    }
}

impl<S> Driver<S> {
    /// An executor for the connection's own tasks (hyper's HTTP/2 client runs the connection
    /// in a task it spawns): each drains the buffer after it is polled.
    pub fn executor(&self) -> DrainingExecutor<S> {
        DrainingExecutor {
            inner: self.inner.clone(),
        }
    }
}

/// Spawns futures on the current tokio runtime, each driven by [`FlushAfterPoll`].
#[derive(Debug)]
pub struct DrainingExecutor<S> {
    inner: Arc<Mutex<Inner<S>>>,
}

impl<S> Clone for DrainingExecutor<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S, F> hyper::rt::Executor<F> for DrainingExecutor<S>
where
    S: AsyncWrite + Unpin + Send + 'static,
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        tokio::spawn(FlushAfterPoll::new(
            future,
            Driver {
                inner: self.inner.clone(),
            },
        ));
    }
}

pin_project_lite::pin_project! {
    /// Drives a future that writes to a [`Coalescing`] stream, writing the stream's buffer out
    /// after every poll; it completes once the buffer is out too.
    pub struct FlushAfterPoll<F: Future, S> {
        #[pin]
        future: F,
        driver: Driver<S>,
        output: Option<F::Output>,
    }
}

impl<F: Future, S> FlushAfterPoll<F, S> {
    /// Drives `future` over the stream `driver` belongs to.
    pub fn new(future: F, driver: Driver<S>) -> Self {
        Self {
            future,
            driver,
            output: None,
        }
    }

    /// The driven future (for graceful shutdown and the like).
    pub fn future(self: Pin<&mut Self>) -> Pin<&mut F> {
        self.project().future
    }
}

impl<F: Future, S: AsyncWrite + Unpin> Future for FlushAfterPoll<F, S> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if this.output.is_none()
            && let Poll::Ready(out) = this.future.poll(cx)
        {
            *this.output = Some(out);
        }
        // A failure is kept for the connection's next write; once the future is done, there
        // is nobody left to tell.
        let drained = this.driver.inner.lock().poll_drain(cx);
        match this.output.take() {
            Some(out) if drained.is_ready() => Poll::Ready(out),
            Some(out) => {
                *this.output = Some(out);
                Poll::Pending
            }
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A socket that records each write it accepts, taking at most `room` bytes until more
    /// room is given.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        flushes: usize,
        room: Option<usize>,
        waker: Option<std::task::Waker>,
        input: Vec<u8>,
    }

    #[derive(Clone, Default)]
    struct Socket(Arc<Mutex<Recorder>>);

    impl AsyncWrite for Socket {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let mut r = self.0.lock();
            let n = r.room.map_or(buf.len(), |room| room.min(buf.len()));
            if n == 0 {
                r.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            if let Some(room) = r.room.as_mut() {
                *room -= n;
            }
            r.writes.push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.0.lock().flushes += 1;
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncRead for Socket {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let mut r = self.0.lock();
            let n = r.input.len().min(buf.remaining());
            buf.put_slice(&r.input[..n]);
            r.input.drain(..n);
            Poll::Ready(Ok(()))
        }
    }

    impl Socket {
        fn written(&self) -> Vec<u8> {
            self.0.lock().writes.concat()
        }
        fn write_count(&self) -> usize {
            self.0.lock().writes.len()
        }
    }

    #[tokio::test]
    async fn writes_made_during_one_poll_reach_the_socket_in_one_write() {
        let socket = Socket::default();
        let (mut io, driver) = wrap(socket.clone(), Mode::Coalesce);
        let probe = socket.clone();
        // A connection that writes ten frames and flushes after each, as h2 does for DATA
        // frames, then finishes.
        let conn = async move {
            for i in 0..10u8 {
                io.write_all(&[i; 100]).await.unwrap();
                io.flush().await.unwrap();
                assert_eq!(probe.write_count(), 0, "nothing is written during the poll");
            }
        };
        FlushAfterPoll::new(conn, driver).await;
        assert_eq!(socket.write_count(), 1);
        let expected: Vec<u8> = (0..10u8).flat_map(|i| [i; 100]).collect();
        assert_eq!(socket.written(), expected);
    }

    #[tokio::test]
    async fn writes_are_held_until_the_driving_poll_ends() {
        let socket = Socket::default();
        let (mut io, driver) = wrap(socket.clone(), Mode::Coalesce);
        let probe = socket.clone();
        let conn = async move {
            io.write_all(b"one").await.unwrap();
            io.flush().await.unwrap();
            // Still inside the first poll: the socket has nothing yet.
            assert_eq!(probe.write_count(), 0);
            tokio::task::yield_now().await;
            // The driver wrote "one" when that poll ended.
            assert_eq!(probe.written(), b"one");
            io.write_all(b"two").await.unwrap();
            io.flush().await.unwrap();
        };
        FlushAfterPoll::new(conn, driver).await;
        assert_eq!(socket.written(), b"onetwo");
        assert_eq!(socket.write_count(), 2);
    }

    #[tokio::test]
    async fn http1_passes_through_and_http2_coalesces_after_sniffing() {
        // An HTTP/1.1 request: every write and flush reaches the socket at once.
        let socket = Socket::default();
        socket.0.lock().input = b"GET / HTTP/1.1\r\nhost: a\r\n\r\n".to_vec();
        let (mut io, _driver) = wrap(socket.clone(), Mode::Sniff);
        let mut buf = [0u8; 64];
        let _ = io.read(&mut buf).await.unwrap();
        assert_eq!(io.inner.lock().mode, Mode::PassThrough);
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(socket.write_count(), 1);
        assert_eq!(socket.0.lock().flushes, 1);

        // The HTTP/2 preface, split across two reads: coalescing from then on.
        let socket = Socket::default();
        socket.0.lock().input = PREFACE.to_vec();
        let (mut io, _driver) = wrap(socket.clone(), Mode::Sniff);
        let mut head = [0u8; 10];
        io.read_exact(&mut head).await.unwrap();
        assert_eq!(io.inner.lock().mode, Mode::Sniff);
        let mut rest = [0u8; 14];
        io.read_exact(&mut rest).await.unwrap();
        assert_eq!(io.inner.lock().mode, Mode::Coalesce);
        io.write_all(b"settings").await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(socket.write_count(), 0);
    }

    #[tokio::test]
    async fn a_full_buffer_pushes_back_and_everything_arrives_in_order() {
        let socket = Socket::default();
        // The socket takes 10 KB at a time, then waits to be given room.
        socket.0.lock().room = Some(10 * 1024);
        let (mut io, driver) = wrap(socket.clone(), Mode::Coalesce);
        let total = 3 * LIMIT + 123;
        let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let conn = tokio::spawn(FlushAfterPoll::new(
            async move {
                for chunk in sent.chunks(1000) {
                    io.write_all(chunk).await.unwrap();
                    io.flush().await.unwrap();
                }
                io.shutdown().await.unwrap();
            },
            driver,
        ));
        // Give room until everything is written.
        for _ in 0..1000 {
            if conn.is_finished() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            let waker = {
                let mut r = socket.0.lock();
                r.room = Some(10 * 1024);
                r.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        }
        conn.await.unwrap();
        assert_eq!(socket.written(), data);
        // Never more than LIMIT plus one write kept: the socket saw bounded writes.
        assert!(socket.0.lock().writes.iter().all(|w| w.len() <= 10 * 1024));
    }

    /// hyper's HTTP/2 client writes from a task of the executor's, not from the future the
    /// pool drives: a write waiting for room is woken by whichever task writes the buffer out.
    #[tokio::test]
    async fn a_write_waiting_for_room_is_woken_by_another_tasks_drain() {
        let socket = Socket::default();
        socket.0.lock().room = Some(0);
        let (mut io, driver) = wrap(socket.clone(), Mode::Coalesce);
        let executor = driver.executor();
        let data = vec![7u8; LIMIT + 10];
        let sent = data.clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        // The writer fills the buffer past the limit, then waits for room.
        hyper::rt::Executor::execute(&executor, async move {
            io.write_all(&sent).await.unwrap();
            io.write_all(b"tail").await.unwrap();
            let _ = done_tx.send(io);
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert_eq!(socket.write_count(), 0);
        // Room appears; another task of the connection drains the buffer after its poll.
        socket.0.lock().room = None;
        hyper::rt::Executor::execute(&executor, async {});
        let io = tokio::time::timeout(std::time::Duration::from_secs(5), done_rx)
            .await
            .expect("the waiting write was woken")
            .unwrap();
        drop(io);
        hyper::rt::Executor::execute(&executor, async {});
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut expected = data;
        expected.extend_from_slice(b"tail");
        assert_eq!(socket.written(), expected);
    }

    /// A task of the connection that is done but whose writes are still buffered finishes
    /// once another task (the one the socket wakes) has written them out.
    #[tokio::test]
    async fn a_finished_task_waiting_for_the_socket_is_woken_by_another_tasks_drain() {
        struct SignalOnDrop(Option<tokio::sync::oneshot::Sender<()>>);
        impl Drop for SignalOnDrop {
            fn drop(&mut self) {
                if let Some(tx) = self.0.take() {
                    let _ = tx.send(());
                }
            }
        }
        let socket = Socket::default();
        socket.0.lock().room = Some(0);
        let (mut io, driver) = wrap(socket.clone(), Mode::Coalesce);
        let executor = driver.executor();
        let (finished_tx, finished_rx) = tokio::sync::oneshot::channel();
        // Task A writes and is done; the socket is full, so it waits for the drain.
        hyper::rt::Executor::execute(&executor, async move {
            io.write_all(b"frames").await.unwrap();
            SignalOnDrop(Some(finished_tx))
        });
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        // Task B tries too and takes the socket's one waker slot.
        hyper::rt::Executor::execute(&executor, async {});
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        // Room appears: the socket wakes B only.
        let waker = {
            let mut r = socket.0.lock();
            r.room = None;
            r.waker.take()
        };
        waker.expect("a drain waits on the socket").wake();
        tokio::time::timeout(std::time::Duration::from_secs(5), finished_rx)
            .await
            .expect("task A finished")
            .unwrap();
        assert_eq!(socket.written(), b"frames");
    }

    #[tokio::test]
    async fn a_large_burst_does_not_keep_its_buffer() {
        let socket = Socket::default();
        let (mut io, driver) = wrap(socket.clone(), Mode::Coalesce);
        let conn = async move {
            io.write_all(&[1u8; 40 * 1024]).await.unwrap();
            io.flush().await.unwrap();
            tokio::task::yield_now().await;
            io
        };
        let io = FlushAfterPoll::new(conn, driver).await;
        assert_eq!(socket.written().len(), 40 * 1024);
        assert!(io.inner.lock().buf.capacity() <= KEEP);
    }

    #[tokio::test]
    async fn shutdown_writes_what_is_buffered_first() {
        let socket = Socket::default();
        let (mut io, _driver) = wrap(socket.clone(), Mode::Coalesce);
        io.write_all(b"goaway").await.unwrap();
        io.flush().await.unwrap();
        assert_eq!(socket.write_count(), 0);
        io.shutdown().await.unwrap();
        assert_eq!(socket.written(), b"goaway");
    }
}
