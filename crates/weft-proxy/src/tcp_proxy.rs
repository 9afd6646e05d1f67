//! `envoy.filters.network.tcp_proxy`: pick a cluster and host, connect, copy bytes both ways
//! until either side closes or the connection idles out.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use weft_proxy_config::model::{TcpCluster, TcpProxy};
use weft_proxy_lb::RandomSource;

use crate::io::ConnectionAddrs;
use crate::state::ProxyState;
use crate::upstream::cluster::ThreadRng;
use crate::upstream::connect::connect;

/// Proxies one downstream connection according to `config`.
pub async fn run<S>(config: &TcpProxy, downstream: S, addrs: ConnectionAddrs, state: &ProxyState)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let cluster_name = match &config.cluster {
        TcpCluster::Single(name) => name.as_str(),
        TcpCluster::Weighted(list) => pick_weighted(list, ThreadRng.next_random()),
    };
    let Some(cluster) = state.cluster(cluster_name) else {
        tracing::debug!(
            cluster = cluster_name,
            "tcp_proxy: no such cluster; closing"
        );
        return;
    };
    let shared = &cluster.shared;
    if !shared.try_reserve_connection() {
        crate::upstream::stats::inc(&shared.stats.upstream_cx_overflow);
        return;
    }
    let _slot = ConnectionRelease(shared.clone());
    let mut upstream = None;
    let mut tried = Vec::new();
    for _ in 0..config.max_connect_attempts.max(1) {
        let host = match shared.config().discovery {
            weft_proxy_config::model::Discovery::OriginalDst => {
                cluster.original_dst_host(addrs.original_dst)
            }
            _ => match cluster.pick(None, &tried, 1) {
                Ok(h) => h,
                Err(_) => break,
            },
        };
        match connect(host.address, shared).await {
            Ok(s) => {
                upstream = Some(s);
                break;
            }
            Err(e) => {
                tracing::debug!(host = %host.address, error = %e, "tcp_proxy: connect failed");
                tried.push(host);
            }
        }
    }
    let Some(upstream) = upstream else {
        return;
    };
    let _ = copy_with_idle_timeout(downstream, upstream, config.idle_timeout).await;
}

/// Picks a weighted entry with `random`; weights of zero are never picked.
pub fn pick_weighted(list: &[(String, u32)], random: u64) -> &str {
    let total: u64 = list.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return list.first().map_or("", |(n, _)| n.as_str());
    }
    let mut point = random % total;
    for (name, w) in list {
        let w = u64::from(*w);
        if point < w {
            return name;
        }
        point -= w;
    }
    list.last().map_or("", |(n, _)| n.as_str())
}

struct ConnectionRelease(Arc<crate::upstream::ClusterShared>);

impl Drop for ConnectionRelease {
    fn drop(&mut self) {
        self.0.release_connection();
    }
}

/// Copies bytes both ways until both directions finished; with `idle`, gives up after that
/// long without a byte in either direction.
pub async fn copy_with_idle_timeout<A, B>(
    a: A,
    b: B,
    idle: Option<Duration>,
) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut a = Activity {
        inner: a,
        last: last.clone(),
        start,
    };
    let mut b = Activity {
        inner: b,
        last: last.clone(),
        start,
    };
    // Buffers only while bytes are in flight, growing with the transfer (see `pump`).
    let copy = crate::pump::copy_bidirectional(&mut a, &mut b);
    let Some(idle) = idle else {
        return copy.await;
    };
    tokio::pin!(copy);
    let tick = (idle / 4).max(Duration::from_millis(10));
    loop {
        tokio::select! {
            r = &mut copy => return r,
            () = tokio::time::sleep(tick) => {
                let since = start.elapsed().saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
                if since >= idle {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "tcp_proxy idle timeout"));
                }
            }
        }
    }
}

/// Records the time of the last read or write.
struct Activity<S> {
    inner: S,
    last: Arc<AtomicU64>,
    start: Instant,
}

impl<S> Activity<S> {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Activity<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Activity<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.touch();
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_pick_boundaries() {
        let list = vec![
            ("a".to_owned(), 1),
            ("zero".to_owned(), 0),
            ("b".to_owned(), 3),
        ];
        assert_eq!(pick_weighted(&list, 0), "a");
        assert_eq!(pick_weighted(&list, 1), "b");
        assert_eq!(pick_weighted(&list, 3), "b");
        assert_eq!(pick_weighted(&list, 4), "a");
    }

    #[tokio::test]
    async fn idle_timeout_closes_quiet_connections() {
        let (a, _a_peer) = tokio::io::duplex(64);
        let (b, _b_peer) = tokio::io::duplex(64);
        let t = Instant::now();
        let r = copy_with_idle_timeout(a, b, Some(Duration::from_millis(100))).await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn bytes_flow_both_ways() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (a, mut client) = tokio::io::duplex(64);
        let (b, mut server) = tokio::io::duplex(64);
        let task = tokio::spawn(copy_with_idle_timeout(a, b, Some(Duration::from_secs(5))));
        client.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        server.write_all(b"pong").await.unwrap();
        client.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");
        drop(client);
        drop(server);
        let (up, down) = task.await.unwrap().unwrap();
        assert_eq!((up, down), (4, 4));
    }
}
