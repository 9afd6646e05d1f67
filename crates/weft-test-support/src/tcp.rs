//! TCP test servers: echo, "identify" (sends its name, then echoes) and a server-first banner
//! server (like SMTP or MySQL, it speaks before the client), which catches protocol sniffing that
//! waits for client bytes forever.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::BoxError;
use crate::io::{BoxIo, ClientTls, connect};

/// What a [`TcpServer`] does with a connection.
#[derive(Clone, Debug)]
pub enum TcpMode {
    /// Echo every byte; close after the client half-closes.
    Echo,
    /// Send `<name>\n` first, then echo.
    Identify,
    /// Send these bytes as soon as the connection is accepted, then echo.
    Banner(Bytes),
}

/// Entry point: [`TcpServer::echo`], [`TcpServer::identify`], [`TcpServer::banner`], or
/// [`TcpServer::builder`].
#[derive(Debug)]
pub struct TcpServer;

impl TcpServer {
    /// A builder: name `"tcp"`, `127.0.0.1:0`, [`TcpMode::Echo`].
    pub fn builder() -> TcpServerBuilder {
        TcpServerBuilder {
            name: "tcp".to_owned(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            mode: TcpMode::Echo,
            tls: None,
        }
    }

    /// An echo server on `addr` (port 0 for a free one).
    pub async fn echo(addr: SocketAddr) -> TcpServerHandle {
        Self::builder().bind(addr).start().await
    }

    /// A server on `addr` that sends `<name>\n`, then echoes.
    pub async fn identify(addr: SocketAddr, name: &str) -> TcpServerHandle {
        Self::builder()
            .bind(addr)
            .name(name)
            .mode(TcpMode::Identify)
            .start()
            .await
    }

    /// A server-first server on `addr`: sends `banner` on accept, then echoes.
    pub async fn banner(addr: SocketAddr, banner: &[u8]) -> TcpServerHandle {
        Self::builder()
            .bind(addr)
            .mode(TcpMode::Banner(Bytes::copy_from_slice(banner)))
            .start()
            .await
    }
}

/// Configures a [`TcpServer`].
#[derive(Debug)]
pub struct TcpServerBuilder {
    name: String,
    addr: SocketAddr,
    mode: TcpMode,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl TcpServerBuilder {
    /// The server's name (sent by [`TcpMode::Identify`]).
    pub fn name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.name);
        self
    }

    /// Listen address (loopback; port 0 for a free one).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// What to do with connections.
    pub fn mode(mut self, mode: TcpMode) -> Self {
        self.mode = mode;
        self
    }

    /// Terminate TLS first (for TLS passthrough / SNI routing tests).
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Binds and starts serving; panics if the address cannot be bound.
    pub async fn start(self) -> TcpServerHandle {
        assert!(
            self.addr.ip().is_loopback(),
            "tests only bind loopback, got {}",
            self.addr
        );
        let listener = TcpListener::bind(self.addr)
            .await
            .unwrap_or_else(|e| panic!("TCP test server {:?}: bind {}: {e}", self.name, self.addr));
        let addr = listener
            .local_addr()
            .expect("local_addr of a bound listener");
        let (shutdown_tx, shutdown_rx) = watch::channel(());
        let connections = Arc::new(AtomicU64::new(0));
        let server = Arc::new(Server {
            name: self.name,
            mode: self.mode,
            tls: self.tls.map(tokio_rustls::TlsAcceptor::from),
        });
        let task = tokio::spawn(accept_loop(
            listener,
            server,
            connections.clone(),
            shutdown_rx,
        ));
        TcpServerHandle {
            addr,
            connections,
            shutdown: Some(shutdown_tx),
            task,
        }
    }
}

/// A running [`TcpServer`]; dropping it stops the server and its connections.
#[derive(Debug)]
pub struct TcpServerHandle {
    addr: SocketAddr,
    connections: Arc<AtomicU64>,
    shutdown: Option<watch::Sender<()>>,
    task: JoinHandle<()>,
}

impl TcpServerHandle {
    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections accepted so far.
    pub fn connection_count(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for TcpServerHandle {
    fn drop(&mut self) {
        self.shutdown.take();
        self.task.abort();
    }
}

struct Server {
    name: String,
    mode: TcpMode,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

async fn accept_loop(
    listener: TcpListener,
    server: Arc<Server>,
    connections: Arc<AtomicU64>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!(name = %server.name, "accept: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        connections.fetch_add(1, Ordering::SeqCst);
        let server = server.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = serve(&server, tcp) => if let Err(e) = r {
                    tracing::debug!(name = %server.name, "connection: {e}");
                },
                _ = shutdown.changed() => {}
            }
        });
    }
}

async fn serve(server: &Server, tcp: TcpStream) -> std::io::Result<()> {
    let _ = tcp.set_nodelay(true);
    let io: BoxIo = match &server.tls {
        None => Box::new(tcp),
        Some(acceptor) => Box::new(
            tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp))
                .await
                .map_err(|_| std::io::Error::other("TLS handshake timed out"))??,
        ),
    };
    let (mut r, mut w) = tokio::io::split(io);
    match &server.mode {
        TcpMode::Echo => {}
        TcpMode::Identify => w.write_all(format!("{}\n", server.name).as_bytes()).await?,
        TcpMode::Banner(banner) => w.write_all(banner).await?,
    }
    w.flush().await?;
    tokio::io::copy(&mut r, &mut w).await?;
    w.shutdown().await
}

/// Connects to `addr` (TLS when `tls` is given), sends `payload`, half-closes and returns
/// everything received until the server closes (bounded by 10 s). Against an echo server the
/// result equals `payload`; against an identify/banner server it is prefixed.
pub async fn tcp_roundtrip(
    addr: SocketAddr,
    tls: Option<&ClientTls>,
    payload: &[u8],
) -> Result<Vec<u8>, BoxError> {
    let exchange = async {
        let mut io = connect(addr, tls).await?;
        io.write_all(payload).await?;
        io.flush().await?;
        // TLS streams send close_notify on shutdown, which ends the server's read side too.
        io.shutdown().await?;
        let mut out = Vec::new();
        io.read_to_end(&mut out).await?;
        Ok::<_, BoxError>(out)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| format!("TCP exchange with {addr} timed out"))?
}

/// Connects to `addr` and reads one line without sending anything first (bounded by 10 s): the
/// name of an identify server, or a banner. This is the server-first check: a proxy that waits
/// for client bytes before connecting upstream makes it time out.
pub async fn tcp_read_line(addr: SocketAddr) -> Result<String, BoxError> {
    let read = async {
        let stream = TcpStream::connect(addr).await?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line).await?;
        Ok::<_, BoxError>(line.trim_end_matches(['\r', '\n']).to_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .map_err(|_| format!("no line from {addr} within 10s"))?
}
