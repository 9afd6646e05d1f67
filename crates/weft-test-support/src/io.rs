//! Shared plumbing: boxed streams (plain or TLS), body types.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::BoxError;

/// A byte stream: plain TCP or TLS over TCP.
pub(crate) trait AsyncStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> AsyncStream for T {}

impl std::fmt::Debug for dyn AsyncStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AsyncStream")
    }
}

/// A boxed [`AsyncStream`]; tokio implements the IO traits for boxes, so this is usable as is.
pub(crate) type BoxIo = Box<dyn AsyncStream>;

/// The body type used by servers and clients here.
pub(crate) type BoxBody = UnsyncBoxBody<Bytes, BoxError>;

pub(crate) fn full(data: impl Into<Bytes>) -> BoxBody {
    http_body_util::Full::new(data.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub(crate) fn empty() -> BoxBody {
    full(Bytes::new())
}

/// A body fed frame by frame from a channel (streaming echo, gRPC).
pub(crate) struct ChannelBody {
    rx: mpsc::Receiver<Result<Frame<Bytes>, BoxError>>,
}

impl ChannelBody {
    pub(crate) fn new(buffer: usize) -> (mpsc::Sender<Result<Frame<Bytes>, BoxError>>, Self) {
        let (tx, rx) = mpsc::channel(buffer);
        (tx, Self { rx })
    }
}

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.rx.poll_recv(cx)
    }
}

/// TLS settings of a test client: the rustls config and the name to send in SNI and verify.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// Client configuration (see [`crate::TestPki::client_config`]).
    pub config: Arc<rustls::ClientConfig>,
    /// SNI and the name verified in the server certificate.
    pub server_name: ServerName<'static>,
}

impl ClientTls {
    /// TLS with `config`, sending and verifying `server_name` (a DNS name or an IP address).
    pub fn new(config: Arc<rustls::ClientConfig>, server_name: &str) -> Self {
        let server_name = ServerName::try_from(server_name.to_owned())
            .unwrap_or_else(|e| panic!("invalid TLS server name {server_name:?}: {e}"));
        Self {
            config,
            server_name,
        }
    }

    /// A copy whose ALPN offers exactly `protocols` (for example `[b"h2"]`).
    pub fn with_alpn(&self, protocols: &[&[u8]]) -> Self {
        let mut config = (*self.config).clone();
        config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
        Self {
            config: Arc::new(config),
            server_name: self.server_name.clone(),
        }
    }
}

/// Connects to `addr`, with TLS when `tls` is given.
pub(crate) async fn connect(
    addr: std::net::SocketAddr,
    tls: Option<&ClientTls>,
) -> Result<BoxIo, BoxError> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = tcp.set_nodelay(true);
    match tls {
        None => Ok(Box::new(tcp)),
        Some(tls) => {
            let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
            let stream = connector
                .connect(tls.server_name.clone(), tcp)
                .await
                .map_err(|e| format!("TLS handshake with {addr}: {e}"))?;
            Ok(Box::new(stream))
        }
    }
}
