//! Running listeners: bind, accept, run listener filters, pick the filter chain, terminate TLS
//! and hand the connection to its network filter.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use weft_proxy_config::model::{
    FilterChain, HttpFilter, Listener, ListenerFilter, NetworkFilter, RouterFilter,
};

use super::filter_chain::{ConnectionInfo, select};
use super::inspect::{self, MAX_INSPECT_BYTES, Sniffed};
use crate::http::{ConnContext, HttpStats};
use crate::io::{ConnectionAddrs, Rewind, ServerStream};
use crate::state::ProxyState;

/// A listener's configuration as connections use it, with per-chain run-time parts.
#[derive(Debug)]
pub struct ListenerRuntime {
    /// The listener.
    pub config: Arc<Listener>,
    /// One entry per filter chain, same order as `config.filter_chains`.
    pub chains: Vec<ChainRuntime>,
    /// The default chain's run-time parts.
    pub default_chain: Option<ChainRuntime>,
    /// Flipped to true when this generation is replaced: its connections drain.
    pub drain: watch::Sender<bool>,
}

/// Run-time parts of a filter chain.
#[derive(Debug)]
pub struct ChainRuntime {
    /// The chain.
    pub chain: Arc<FilterChain>,
    /// TLS termination, when the chain has a transport socket; its configuration is swapped
    /// when certificates rotate (new handshakes use the new one).
    pub tls: Option<Arc<crate::tls::ServerTlsHandle>>,
    /// Keeps the certificate watcher alive as long as the chain.
    pub tls_watcher: Option<crate::tls::TlsWatcher>,
    /// HTTP stats (for HTTP chains), shared across generations by stat prefix.
    pub http_stats: Option<Arc<HttpStats>>,
    /// HTTP filter state (for HTTP chains), shared by the chain's connections.
    pub http_filters: Option<Arc<crate::http::filters::HcmFilters>>,
    /// The HTTP chain's route table, read per request: an RDS update swaps it under running
    /// connections (see `Listener::revision`).
    pub routes: Option<Arc<ArcSwap<weft_proxy_config::model::RouteTable>>>,
}

/// Binds a listener's socket: `SO_REUSEADDR`, and `SO_REUSEPORT` so a new generation (or a new
/// process) can bind beside the old one during a reload.
pub fn bind(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(target_os = "linux")]
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false).ok();
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(1024))?;
    TcpListener::from_std(socket.into())
}

/// Accepts connections until `stop` flips, serving each with the listener's *current*
/// generation.
pub async fn accept_loop(
    tcp: TcpListener,
    current: Arc<ArcSwap<ListenerRuntime>>,
    state: Arc<ProxyState>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = tcp.accept() => match accepted {
                Ok((stream, peer)) => {
                    let generation = current.load_full();
                    let state = state.clone();
                    tokio::spawn(async move {
                        handle_connection(stream, peer, generation, state).await;
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return;
                }
            }
        }
    }
}

async fn handle_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    generation: Arc<ListenerRuntime>,
    state: Arc<ProxyState>,
) {
    let _ = stream.set_nodelay(true);
    let local = stream.local_addr().unwrap_or(generation.config.address);
    let cfg = &generation.config;
    let mut original_dst = local;
    if cfg.listener_filters.contains(&ListenerFilter::OriginalDst)
        && let Some(dst) = original_destination(&stream)
    {
        original_dst = dst;
    }
    let addrs = ConnectionAddrs {
        peer,
        local,
        original_dst,
    };
    let mut info = ConnectionInfo {
        destination: Some(original_dst),
        direct_source: Some(peer),
        source: Some(peer),
        ..Default::default()
    };

    // Listener filters that read: buffer the first bytes and replay them later.
    let want_tls = cfg.listener_filters.contains(&ListenerFilter::TlsInspector);
    let want_http = cfg
        .listener_filters
        .contains(&ListenerFilter::HttpInspector);
    let mut buf = BytesMut::new();
    if want_tls || want_http {
        let inspect = inspect_stream(&mut stream, &mut buf, want_tls, want_http, &mut info);
        // A zero listener_filters_timeout disables the timeout, as in Envoy.
        let outcome = if cfg.listener_filters_timeout.is_zero() {
            Ok(inspect.await)
        } else {
            tokio::time::timeout(cfg.listener_filters_timeout, inspect).await
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) if cfg.continue_on_listener_filters_timeout => {}
            Err(_) => return,
        }
    }

    let chains: Vec<Arc<FilterChain>> = generation.chains.iter().map(|c| c.chain.clone()).collect();
    let default = generation.default_chain.as_ref().map(|c| &c.chain);
    let Some(chosen) = select(&chains, default, &info) else {
        tracing::debug!(listener = %cfg.name, %peer, "no filter chain matched; closing");
        return;
    };
    let chain = generation
        .chains
        .iter()
        .chain(generation.default_chain.iter())
        .find(|c| Arc::ptr_eq(&c.chain, chosen));
    let Some(chain) = chain else {
        return;
    };

    let rewind = Rewind::new(buf.freeze(), stream);
    let (io, tls) = match &chain.tls {
        None => (ServerStream::Plain(rewind), false),
        Some(handle) => match handle.accept(rewind).await {
            Ok(s) => (ServerStream::Tls(Box::new(s)), true),
            Err(e) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
        },
    };
    let drain = generation.drain.subscribe();
    match &chain.chain.filter {
        NetworkFilter::Tcp(tcp) => crate::tcp_proxy::run(tcp, io, addrs, &state).await,
        NetworkFilter::Http(hcm) => {
            let router = hcm
                .http_filters
                .iter()
                .find_map(|f| match f {
                    HttpFilter::Router(r) => Some(r.clone()),
                    _ => None,
                })
                .unwrap_or_else(RouterFilter::default);
            let stats = chain.http_stats.clone().unwrap_or_default();
            let filters = chain
                .http_filters
                .clone()
                .unwrap_or_else(|| Arc::new(crate::http::filters::HcmFilters::new(hcm)));
            let routes = chain
                .routes
                .clone()
                .unwrap_or_else(|| Arc::new(ArcSwap::new(hcm.route_config.clone())));
            let cx = Arc::new(ConnContext {
                routes,
                addrs,
                tls,
                state: state.clone(),
                hcm: hcm.clone(),
                router,
                stats,
                filters,
                draining: std::sync::atomic::AtomicBool::new(false),
                server_header: ConnContext::server_header(hcm),
                streams: crate::http::conn_timers::Streams::new(),
            });
            crate::http::serve_connection(io, cx, drain).await;
        }
    }
}

/// Reads until the inspectors can decide (or give up), recording what they learn.
async fn inspect_stream(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    want_tls: bool,
    want_http: bool,
    info: &mut ConnectionInfo,
) -> io::Result<()> {
    let mut tls_done = !want_tls;
    let mut http_done = !want_http;
    loop {
        if !tls_done {
            match inspect::tls_client_hello(buf) {
                Sniffed::NeedMore => {}
                Sniffed::Tls { server_name, alpn } => {
                    info.transport_protocol = Some("tls");
                    info.server_name = server_name;
                    info.application_protocols = alpn;
                    return Ok(());
                }
                _ => {
                    info.transport_protocol = Some("raw_buffer");
                    tls_done = true;
                }
            }
        }
        if tls_done && !http_done {
            match inspect::http_request(buf) {
                Sniffed::NeedMore => {}
                Sniffed::Http(p) => {
                    info.application_protocols = vec![p.to_owned()];
                    http_done = true;
                }
                _ => http_done = true,
            }
        }
        if tls_done && http_done {
            return Ok(());
        }
        if buf.len() >= MAX_INSPECT_BYTES {
            return Ok(());
        }
        let n = stream.read_buf(buf).await?;
        if n == 0 {
            // Closed before the inspectors decided: decide with what we have.
            return Ok(());
        }
    }
}

/// `SO_ORIGINAL_DST` (iptables REDIRECT), when the connection was redirected.
fn original_destination(stream: &TcpStream) -> Option<SocketAddr> {
    let sock = socket2::SockRef::from(stream);
    #[cfg(target_os = "linux")]
    {
        let local = stream.local_addr().ok()?;
        let dst = if local.is_ipv4() {
            sock.original_dst_v4()
        } else {
            sock.original_dst_v6()
        };
        dst.ok().and_then(|a| a.as_socket())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = sock;
        None
    }
}
