//! Envoy's stream idle timeout: the HCM's `stream_idle_timeout` (the route's `idle_timeout`
//! overrides it; zero disables either) limits how long a stream may go without activity in
//! either direction. Activity is a frame of the request body, the upstream's response headers
//! or a frame of the response body. Before the response has started the proxy answers
//! `stream timeout` with 504 when the request was fully received, 408 when it was not (Envoy's
//! `maybeRequestTimeoutCode`); after, the stream is reset.
//!
//! The same tracker holds the stream's max duration (Envoy's `max_stream_duration`, counted
//! from the start of the stream): the connection manager's to begin with, replaced once the
//! route is known (see [`super::duration`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Instant;

use crate::{Body, BoxError};

/// The effective idle timeout of a routed stream: the route's `idle_timeout` when set (zero
/// disables), else the connection manager's `stream_idle_timeout` (`None`: disabled).
pub fn effective(route: Option<Duration>, hcm: Option<Duration>) -> Option<Duration> {
    match route {
        Some(d) if d.is_zero() => None,
        Some(d) => Some(d),
        None => hcm,
    }
}

/// When a stream last saw activity, shared by its body wrappers and the wait for the upstream.
#[derive(Debug)]
pub struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last activity.
    last_ms: AtomicU64,
    /// Whether the downstream request body has ended.
    request_complete: AtomicBool,
    /// Whether reading the downstream request body failed (a malformed chunk, a reset).
    request_failed: AtomicBool,
    /// Milliseconds from `start` to the end of the stream's max duration; `u64::MAX`: none.
    max_duration_ms: AtomicU64,
    /// Keeps the stream counted as active on its connection (connection idle timeout) for as
    /// long as anything tracks its activity.
    _stream: Option<super::conn_timers::StreamGuard>,
}

impl Activity {
    /// A stream whose request body is already complete (`request_complete`) or still arriving.
    pub fn new(request_complete: bool) -> Arc<Self> {
        Self::for_stream(request_complete, None)
    }

    /// As [`Activity::new`], for a stream of a connection: `stream` keeps it active there until
    /// the last holder of the activity (a body wrapper, a tunnel) is done.
    pub fn for_stream(
        request_complete: bool,
        stream: Option<super::conn_timers::StreamGuard>,
    ) -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            request_complete: AtomicBool::new(request_complete),
            request_failed: AtomicBool::new(false),
            max_duration_ms: AtomicU64::new(u64::MAX),
            _stream: stream,
        })
    }

    /// Sets the stream's max duration, counted from its start (`None`: no limit), in place of
    /// any earlier one, as Envoy re-arms its timer once the route is known. A duration already
    /// used up ends the stream at once.
    pub fn set_max_duration(&self, max: Option<Duration>) {
        let ms = max.map_or(u64::MAX, |d| {
            u64::try_from(d.as_millis()).map_or(u64::MAX - 1, |ms| ms.min(u64::MAX - 1))
        });
        self.max_duration_ms.store(ms, Ordering::Relaxed);
    }

    /// When the stream's max duration ends, if it has one.
    pub fn max_duration_deadline(&self) -> Option<Instant> {
        match self.max_duration_ms.load(Ordering::Relaxed) {
            u64::MAX => None,
            ms => self.start.checked_add(Duration::from_millis(ms)),
        }
    }

    /// Records activity now.
    pub fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn deadline(&self, idle: Duration) -> Instant {
        self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)) + idle
    }

    /// Whether the downstream request body has ended (an upgrade's never does).
    pub fn request_complete(&self) -> bool {
        self.request_complete.load(Ordering::Relaxed)
    }

    /// Whether reading the downstream request body failed.
    pub fn request_failed(&self) -> bool {
        self.request_failed.load(Ordering::Relaxed)
    }

    /// Status of the local reply when the timeout fires before the response started.
    pub fn timeout_status(&self) -> u16 {
        if self.request_complete.load(Ordering::Relaxed) {
            504
        } else {
            408
        }
    }

    /// Waits for `fut`, or until the stream has been idle for `idle` (`Err(())`); activity
    /// recorded meanwhile moves the deadline.
    pub fn wait<F: Future>(&self, idle: Duration, fut: F) -> IdleWait<'_, F> {
        IdleWait {
            activity: self,
            idle,
            fut,
            sleep: tokio::time::sleep_until(self.deadline(idle)),
        }
    }

    /// Waits for `fut` under the connection manager's `request_timeout` (`None`: none):
    /// `Err(())` when `timeout` passes (from this activity's start) before the request body has
    /// ended; once it has, `fut` may take as long as it takes.
    pub fn within_request_timeout<F: Future>(
        &self,
        timeout: Option<Duration>,
        fut: F,
    ) -> RequestTimeout<'_, F> {
        RequestTimeout {
            activity: self,
            deadline: timeout.map(|t| self.start + t),
            fut,
            sleep: None,
        }
    }

    /// Waits for `fut` within the stream's max duration (`Err(())` when it ends first). The
    /// limit is read each time `fut` has been polled, so a change `fut` makes (routing sets the
    /// route's) applies at once.
    pub fn within_max_duration<F: Future>(&self, fut: F) -> MaxDuration<'_, F> {
        MaxDuration {
            activity: self,
            fut,
            sleep: None,
        }
    }

    /// Wraps the downstream request body: each frame is activity, its end completes the request.
    pub fn request_body(self: &Arc<Self>, body: Body) -> Body {
        self.tracked(body, Limit::None, true)
    }

    /// Wraps a response body: each frame is activity, and `idle` without one ends the body with
    /// an error (the stream is reset, as Envoy does once the response has started).
    pub fn response_body(self: &Arc<Self>, body: Body, idle: Duration) -> Body {
        self.tracked(body, Limit::Idle(idle), false)
    }

    /// Wraps a response body that must end by `deadline` (`max_stream_duration`): past it, the
    /// body ends with an error and the stream is reset.
    pub fn response_body_until(self: &Arc<Self>, body: Body, deadline: Instant) -> Body {
        self.tracked(body, Limit::Until(deadline), false)
    }

    fn tracked(self: &Arc<Self>, body: Body, limit: Limit, marks_request: bool) -> Body {
        Body::new(Tracked {
            inner: body,
            activity: self.clone(),
            limit,
            sleep: None,
            marks_request,
        })
    }
}

// The waits are futures written out rather than `async fn`s: an `async fn` keeps the future it
// is given twice (the argument, then the local it is moved to), and these wrap the whole
// request, so each layer doubled the task every request allocates (HTTP/2 spawns one per
// stream; HTTP/1.1 moves it into the connection's slot).

pin_project_lite::pin_project! {
    /// [`Activity::wait`].
    #[must_use = "futures do nothing unless polled"]
    pub struct IdleWait<'a, F> {
        activity: &'a Activity,
        idle: Duration,
        #[pin]
        fut: F,
        #[pin]
        sleep: tokio::time::Sleep,
    }
}

impl<F: Future> Future for IdleWait<'_, F> {
    type Output = Result<F::Output, ()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        // The timer stays where it was armed; when it fires, activity since may have moved
        // the deadline on.
        while this.sleep.as_mut().poll(cx).is_ready() {
            let deadline = this.activity.deadline(*this.idle);
            if deadline <= Instant::now() {
                return Poll::Ready(Err(()));
            }
            this.sleep.as_mut().reset(deadline);
        }
        Poll::Pending
    }
}

pin_project_lite::pin_project! {
    /// [`Activity::within_request_timeout`].
    #[must_use = "futures do nothing unless polled"]
    pub struct RequestTimeout<'a, F> {
        activity: &'a Activity,
        // Cleared once it has passed with the request complete.
        deadline: Option<Instant>,
        #[pin]
        fut: F,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F: Future> Future for RequestTimeout<'_, F> {
    type Output = Result<F::Output, ()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        let Some(deadline) = *this.deadline else {
            return Poll::Pending;
        };
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if this.activity.request_complete.load(Ordering::Relaxed) {
            *this.deadline = None;
            *this.sleep = None;
            Poll::Pending
        } else {
            Poll::Ready(Err(()))
        }
    }
}

pin_project_lite::pin_project! {
    /// [`Activity::within_max_duration`].
    #[must_use = "futures do nothing unless polled"]
    pub struct MaxDuration<'a, F> {
        activity: &'a Activity,
        #[pin]
        fut: F,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    }
}

impl<F: Future> Future for MaxDuration<'_, F> {
    type Output = Result<F::Output, ()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        let Some(deadline) = this.activity.max_duration_deadline() else {
            return Poll::Pending;
        };
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            sleep.as_mut().reset(deadline);
        }
        sleep.as_mut().poll(cx).map(|()| Err(()))
    }
}

pin_project_lite::pin_project! {
    /// [`with_timeout`].
    #[project = WithTimeoutProj]
    #[must_use = "futures do nothing unless polled"]
    pub enum WithTimeout<F> {
        /// Under a timeout.
        Timed { #[pin] inner: tokio::time::Timeout<F> },
        /// Without one.
        Untimed { #[pin] inner: F },
    }
}

/// `fut` under `timeout` if there is one: `None` when it fires first. (An `async` block
/// choosing between `tokio::time::timeout(t, fut)` and `fut` holds `fut` twice.)
pub fn with_timeout<F: Future>(timeout: Option<Duration>, fut: F) -> WithTimeout<F> {
    match timeout {
        Some(t) => WithTimeout::Timed {
            inner: tokio::time::timeout(t, fut),
        },
        None => WithTimeout::Untimed { inner: fut },
    }
}

impl<F: Future> Future for WithTimeout<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            WithTimeoutProj::Timed { inner } => inner.poll(cx).map(Result::ok),
            WithTimeoutProj::Untimed { inner } => inner.poll(cx).map(Some),
        }
    }
}

/// What ends a tracked body early.
#[derive(Debug, Clone, Copy)]
enum Limit {
    None,
    /// This long without a frame.
    Idle(Duration),
    /// This instant.
    Until(Instant),
}

pin_project_lite::pin_project! {
    struct Tracked {
        #[pin]
        inner: Body,
        activity: Arc<Activity>,
        limit: Limit,
        sleep: Option<Pin<Box<tokio::time::Sleep>>>,
        marks_request: bool,
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                this.activity.touch();
                if *this.marks_request {
                    match &frame {
                        None => this
                            .activity
                            .request_complete
                            .store(true, Ordering::Relaxed),
                        Some(Err(_)) => this.activity.request_failed.store(true, Ordering::Relaxed),
                        Some(Ok(_)) => {}
                    }
                }
                *this.sleep = None;
                Poll::Ready(frame)
            }
            Poll::Pending => {
                let (deadline, why) = match *this.limit {
                    Limit::None => return Poll::Pending,
                    Limit::Idle(idle) => (this.activity.deadline(idle), "stream idle timeout"),
                    Limit::Until(at) => (at, "stream max duration reached"),
                };
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.deadline() != deadline {
                    sleep.as_mut().reset(deadline);
                }
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(why.into()))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
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
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn the_route_overrides_the_connection_manager_and_zero_disables() {
        let s = Duration::from_secs;
        assert_eq!(effective(None, Some(s(300))), Some(s(300)));
        assert_eq!(effective(Some(s(2)), Some(s(300))), Some(s(2)));
        assert_eq!(effective(Some(s(2)), None), Some(s(2)));
        assert_eq!(effective(Some(Duration::ZERO), Some(s(300))), None);
        assert_eq!(effective(None, None), None);
    }

    #[tokio::test]
    async fn the_waits_hold_their_future_once() {
        // Every request's future passes through these; an `async fn` would hold it twice.
        let big = || std::future::ready([0u8; 4096]);
        let limit = std::mem::size_of_val(&big()) + std::mem::size_of::<tokio::time::Sleep>() + 64;
        let a = Activity::new(true);
        let t = Some(Duration::from_secs(1));
        for (what, size) in [
            (
                "wait",
                std::mem::size_of_val(&a.wait(Duration::from_secs(1), big())),
            ),
            (
                "request timeout",
                std::mem::size_of_val(&a.within_request_timeout(t, big())),
            ),
            (
                "max duration",
                std::mem::size_of_val(&a.within_max_duration(big())),
            ),
            ("timeout", std::mem::size_of_val(&with_timeout(t, big()))),
        ] {
            assert!(size <= limit, "{what}: {size} bytes");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn activity_moves_the_deadline() {
        let a = Activity::new(true);
        let idle = Duration::from_millis(100);
        let a2 = a.clone();
        let waited = a.wait(idle, async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_millis(60)).await;
                a2.touch();
            }
            "done"
        });
        assert_eq!(waited.await, Ok("done"), "never idle for 100 ms");
        let quiet = a.wait(idle, tokio::time::sleep(Duration::from_millis(150)));
        assert_eq!(quiet.await, Err(()));
        assert_eq!(a.timeout_status(), 504);
        assert_eq!(Activity::new(false).timeout_status(), 408);
    }

    #[tokio::test(start_paused = true)]
    async fn the_request_timeout_covers_only_receiving_the_request() {
        let t = Duration::from_millis(100);
        let slow = tokio::time::sleep(Duration::from_millis(300));
        assert_eq!(
            Activity::new(true)
                .within_request_timeout(Some(t), slow)
                .await,
            Ok(())
        );
        let slow = tokio::time::sleep(Duration::from_millis(300));
        assert_eq!(
            Activity::new(false)
                .within_request_timeout(Some(t), slow)
                .await,
            Err(())
        );
        let quick = async { 7 };
        assert_eq!(
            Activity::new(false)
                .within_request_timeout(Some(t), quick)
                .await,
            Ok(7)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_request_body_completes_the_request() {
        let a = Activity::new(false);
        let body = a.request_body(crate::http::local_reply::full(Bytes::from_static(b"x")));
        assert_eq!(body.collect().await.unwrap().to_bytes(), "x");
        assert_eq!(a.timeout_status(), 504);
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_response_body_ends_with_an_error() {
        let a = Activity::new(true);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let stream = http_body_util::StreamBody::new(futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
        }));
        let mut body = a.response_body(Body::new(stream), Duration::from_millis(100));
        tx.send(Ok(Frame::data(Bytes::from_static(b"a"))))
            .await
            .unwrap();
        assert!(body.frame().await.unwrap().is_ok());
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), "stream idle timeout");
        drop(tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_past_the_max_duration_ends_with_an_error() {
        let a = Activity::new(true);
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let stream = http_body_util::StreamBody::new(futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
        }));
        a.set_max_duration(Some(Duration::from_millis(100)));
        let deadline = a.max_duration_deadline().unwrap();
        let mut body = a.response_body_until(Body::new(stream), deadline);
        // Frames keep coming, yet the stream must end by the deadline.
        for _ in 0..3 {
            tx.send(Ok(Frame::data(Bytes::from_static(b"a"))))
                .await
                .unwrap();
            assert!(body.frame().await.unwrap().is_ok());
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        let err = body.frame().await.unwrap().unwrap_err();
        assert_eq!(err.to_string(), "stream max duration reached");
        assert_eq!(
            a.within_max_duration(std::future::pending::<()>()).await,
            Err(())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_max_duration_counts_from_the_start_of_the_stream() {
        let a = Activity::new(true);
        assert_eq!(a.max_duration_deadline(), None);
        let slow = tokio::time::sleep(Duration::from_secs(3600));
        assert_eq!(a.within_max_duration(slow).await, Ok(()), "no limit");
        let b = Activity::new(true);
        tokio::time::sleep(Duration::from_millis(80)).await;
        b.set_max_duration(Some(Duration::from_millis(100)));
        let began = Instant::now();
        let slow = tokio::time::sleep(Duration::from_secs(1));
        assert_eq!(b.within_max_duration(slow).await, Err(()));
        assert_eq!(
            began.elapsed(),
            Duration::from_millis(20),
            "100 ms from the start"
        );
        // A duration already used up ends the wait at once.
        b.set_max_duration(Some(Duration::ZERO));
        assert_eq!(
            b.within_max_duration(std::future::pending::<()>()).await,
            Err(())
        );
        // An absurd duration saturates instead of overflowing.
        b.set_max_duration(Some(Duration::MAX));
        let far = Instant::now() + Duration::from_secs(100 * 365 * 86_400);
        assert!(b.max_duration_deadline().is_none_or(|d| d > far));
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_max_duration_applies_to_a_running_wait() {
        // The connection manager's 60 s, then the route's 50 ms while the request is routed.
        let a = Activity::new(true);
        a.set_max_duration(Some(Duration::from_secs(60)));
        let routed = async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            a.set_max_duration(Some(Duration::from_millis(50)));
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let began = Instant::now();
        assert_eq!(a.within_max_duration(routed).await, Err(()));
        assert_eq!(began.elapsed(), Duration::from_millis(50));
        // The route may lift the limit as well.
        let b = Activity::new(true);
        b.set_max_duration(Some(Duration::from_millis(50)));
        let routed = async {
            b.set_max_duration(None);
            tokio::time::sleep(Duration::from_millis(200)).await;
            7
        };
        assert_eq!(b.within_max_duration(routed).await, Ok(7));
    }
}
