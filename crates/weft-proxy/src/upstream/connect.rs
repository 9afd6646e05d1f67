//! Opening upstream connections: TCP with the cluster's connect timeout, then TLS when the
//! cluster originates it.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::cluster::ClusterShared;
use super::stats::inc;
use crate::error::UpstreamError;
use crate::io::ClientStream;

/// Connects to `addr` for `cluster`, counting the attempt in the cluster's stats.
pub async fn connect(
    addr: SocketAddr,
    cluster: &ClusterShared,
) -> Result<ClientStream, UpstreamError> {
    inc(&cluster.stats.upstream_cx_total);
    let connect_timeout = cluster.config().connect_timeout;
    let tcp = match tokio::time::timeout(connect_timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            inc(&cluster.stats.upstream_cx_connect_fail);
            return Err(UpstreamError::ConnectFailure(e.to_string()));
        }
        Err(_) => {
            inc(&cluster.stats.upstream_cx_connect_fail);
            inc(&cluster.stats.upstream_cx_connect_timeout);
            return Err(UpstreamError::ConnectTimeout);
        }
    };
    let _ = tcp.set_nodelay(true);
    let Some(tls) = &cluster.tls else {
        return Ok(ClientStream::Plain(tcp));
    };
    let handshake = tls.connect(addr.ip(), tcp);
    match tokio::time::timeout(connect_timeout, handshake).await {
        Ok(Ok(s)) => Ok(ClientStream::Tls(Box::new(s))),
        Ok(Err(e)) => {
            inc(&cluster.stats.upstream_cx_connect_fail);
            Err(UpstreamError::ConnectFailure(format!("TLS error: {e}")))
        }
        Err(_) => {
            inc(&cluster.stats.upstream_cx_connect_fail);
            inc(&cluster.stats.upstream_cx_connect_timeout);
            Err(UpstreamError::ConnectTimeout)
        }
    }
}
