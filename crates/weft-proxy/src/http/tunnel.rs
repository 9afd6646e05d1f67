//! The tunnel of an upgraded request (WebSocket and the other `upgrade_configs` types): once the
//! upstream has answered `101`, the downstream and upstream connections are spliced.
//!
//! In Envoy the upgraded request stays a stream of the connection manager and the tunnelled
//! bytes are its body in both directions, so the stream's timers keep running: every read on
//! either side is activity for the stream idle timeout (the route's `idle_timeout`, else the
//! connection manager's `stream_idle_timeout`), and `max_stream_duration` still counts from the
//! start of the stream. When one fires the stream is reset, which closes both connections; it
//! counts in `downstream_rq_idle_timeout` or `downstream_rq_max_duration_reached`.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::HttpStats;
use super::idle::Activity;
use crate::upstream::cluster::Permit;
use crate::upstream::stats::inc;

/// The stream timeouts a tunnel runs under.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// The stream idle timeout (`None`: disabled).
    pub idle: Option<Duration>,
    /// When the stream's maximum duration ends it (`None`: never).
    pub deadline: Option<Instant>,
}

/// How a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The peers closed it (or a connection failed).
    Closed,
    /// Nothing moved in either direction for the stream idle timeout.
    IdleTimeout,
    /// The stream reached its maximum duration.
    MaxDuration,
}

/// Waits for both upgraded connections and splices them under `limits`, holding `permit` (the
/// request's `max_requests` slot) until the tunnel ends. A timeout is counted in `stats`.
pub async fn run(
    downstream: OnUpgrade,
    upstream: OnUpgrade,
    activity: Arc<Activity>,
    limits: Limits,
    stats: Arc<HttpStats>,
    permit: Option<Permit>,
) -> End {
    let _permit = permit;
    let (Ok(d), Ok(u)) = futures_util::future::join(downstream, upstream).await else {
        return End::Closed;
    };
    let end = splice(TokioIo::new(d), TokioIo::new(u), &activity, limits).await;
    match end {
        End::IdleTimeout => inc(&stats.downstream_rq_idle_timeout),
        End::MaxDuration => inc(&stats.downstream_rq_max_duration_reached),
        End::Closed => {}
    }
    end
}

/// Copies both ways between `downstream` and `upstream` until both are done or a limit ends
/// the tunnel; both are dropped (closed) on return.
pub async fn splice<D, U>(downstream: D, upstream: U, activity: &Activity, limits: Limits) -> End
where
    D: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let mut d = Tracked {
        inner: downstream,
        activity,
    };
    let mut u = Tracked {
        inner: upstream,
        activity,
    };
    let copy = tokio::io::copy_bidirectional(&mut d, &mut u);
    let until_idle = async {
        match limits.idle {
            Some(idle) => match activity.wait(idle, copy).await {
                Ok(_) => End::Closed,
                Err(()) => End::IdleTimeout,
            },
            None => {
                let _ = copy.await;
                End::Closed
            }
        }
    };
    match limits.deadline {
        Some(at) => tokio::time::timeout_at(at, until_idle)
            .await
            .unwrap_or(End::MaxDuration),
        None => until_idle.await,
    }
}

/// One side of the tunnel: each read from it is activity of the stream.
struct Tracked<'a, S> {
    inner: S,
    activity: &'a Activity,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<'_, S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled {
            this.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<'_, S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// A tunnel between two peers: (downstream peer, upstream peer, the tunnel's outcome).
    fn tunnel(
        activity: &Arc<Activity>,
        limits: Limits,
    ) -> (DuplexStream, DuplexStream, tokio::task::JoinHandle<End>) {
        let (client, d) = duplex(1024);
        let (u, server) = duplex(1024);
        let activity = activity.clone();
        let end = tokio::spawn(async move { splice(d, u, &activity, limits).await });
        (client, server, end)
    }

    async fn hop(from: &mut DuplexStream, to: &mut DuplexStream, data: &[u8]) {
        from.write_all(data).await.unwrap();
        let mut got = vec![0; data.len()];
        to.read_exact(&mut got).await.unwrap();
        assert_eq!(got, data);
    }

    /// Reads until end of file: the tunnel closed this peer's connection.
    async fn closed(peer: &mut DuplexStream) -> bool {
        let mut rest = Vec::new();
        peer.read_to_end(&mut rest).await.is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn traffic_either_way_keeps_the_tunnel_open_and_silence_closes_both_sides() {
        let activity = Activity::new(false);
        let limits = Limits {
            idle: Some(ms(100)),
            deadline: None,
        };
        let (mut client, mut server, end) = tunnel(&activity, limits);
        for i in 0..6 {
            tokio::time::sleep(ms(60)).await;
            if i % 2 == 0 {
                hop(&mut client, &mut server, b"up").await;
            } else {
                hop(&mut server, &mut client, b"down").await;
            }
        }
        let started = Instant::now();
        assert_eq!(end.await.unwrap(), End::IdleTimeout);
        assert_eq!(started.elapsed(), ms(100));
        assert!(closed(&mut client).await);
        assert!(closed(&mut server).await);
    }

    #[tokio::test(start_paused = true)]
    async fn the_maximum_duration_ends_a_busy_tunnel() {
        let activity = Activity::new(false);
        let started = Instant::now();
        let limits = Limits {
            idle: Some(ms(100)),
            deadline: Some(started + ms(250)),
        };
        let (mut client, mut server, end) = tunnel(&activity, limits);
        let busy = tokio::spawn(async move {
            loop {
                tokio::time::sleep(ms(50)).await;
                if client.write_all(b"x").await.is_err() {
                    return;
                }
            }
        });
        assert_eq!(end.await.unwrap(), End::MaxDuration);
        assert_eq!(started.elapsed(), ms(250));
        assert!(closed(&mut server).await);
        busy.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_tunnel_without_limits_ends_when_its_peers_close_it() {
        let activity = Activity::new(false);
        let (mut client, mut server, end) = tunnel(&activity, Limits::default());
        tokio::time::sleep(Duration::from_secs(3600)).await;
        hop(&mut client, &mut server, b"still here").await;
        client.shutdown().await.unwrap();
        server.shutdown().await.unwrap();
        assert_eq!(end.await.unwrap(), End::Closed);
    }
}
