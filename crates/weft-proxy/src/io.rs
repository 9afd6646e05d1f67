//! Connection types shared by listeners and upstream pools: plain TCP or TLS over it, one enum
//! so reads and writes stay statically dispatched.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// An upstream connection.
#[derive(Debug)]
pub enum ClientStream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS originated by the proxy.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl ClientStream {
    /// The negotiated ALPN protocol, if any.
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            Self::Plain(_) => None,
            Self::Tls(t) => t.get_ref().1.alpn_protocol(),
        }
    }
}

macro_rules! delegate_io {
    ($ty:ident { $($variant:ident),+ }) => {
        impl AsyncRead for $ty {
            fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() { $($ty::$variant(s) => Pin::new(s).poll_read(cx, buf),)+ }
            }
        }
        impl AsyncWrite for $ty {
            fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
                match self.get_mut() { $($ty::$variant(s) => Pin::new(s).poll_write(cx, buf),)+ }
            }
            fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
                match self.get_mut() { $($ty::$variant(s) => Pin::new(s).poll_write_vectored(cx, bufs),)+ }
            }
            fn is_write_vectored(&self) -> bool {
                match self { $($ty::$variant(s) => s.is_write_vectored(),)+ }
            }
            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() { $($ty::$variant(s) => Pin::new(s).poll_flush(cx),)+ }
            }
            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                match self.get_mut() { $($ty::$variant(s) => Pin::new(s).poll_shutdown(cx),)+ }
            }
        }
    };
}

delegate_io!(ClientStream { Plain, Tls });

/// A downstream connection whose first bytes were already read by a listener filter (TLS or
/// HTTP inspection): those bytes are replayed before the socket is read again.
#[derive(Debug)]
pub struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    /// Replays `prefix`, then reads from `inner`.
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.has_remaining() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The downstream side after the listener: plain or TLS-terminated, with any inspected bytes
/// replayed.
#[derive(Debug)]
pub enum ServerStream {
    /// Plain TCP.
    Plain(Rewind<TcpStream>),
    /// TLS terminated by the proxy.
    Tls(Box<tokio_rustls::server::TlsStream<Rewind<TcpStream>>>),
}

delegate_io!(ServerStream { Plain, Tls });

/// Addresses of a downstream connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionAddrs {
    /// The peer.
    pub peer: SocketAddr,
    /// The local address the connection arrived on.
    pub local: SocketAddr,
    /// The original destination (differs from `local` under iptables REDIRECT).
    pub original_dst: SocketAddr,
}
