//! The weft control plane: watches a configuration directory, turns it into a [`Mesh`], and
//! serves it over ADS to weft proxies, Envoy and proxyless gRPC clients.
//!
//! - [`store`]: keep-last-good configuration (Istio's admission semantics for files).
//! - [`watch`]: file watching with debouncing.
//! - [`monitoring`]: metrics and debug endpoints (`:15014`, like istiod).
//!
//! [`ControlPlane::start`] binds both servers and returns their real addresses, so tests can
//! ask for port 0.

pub mod monitoring;
pub mod store;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use weft_xds::ads::AdsServer;
use weft_xds::{Mesh, MeshOptions};

use crate::store::{ConfigStore, SharedStatus};

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Files and directories holding Istio resources (ServiceEntry and WorkloadEntry are the
    /// registry).
    pub config: Vec<PathBuf>,
    /// Plaintext xDS (Istio: 15010).
    pub xds_address: SocketAddr,
    /// Metrics and debug endpoints (Istio: 15014).
    pub monitoring_address: SocketAddr,
    /// Mesh-wide settings.
    pub mesh: MeshOptions,
    /// Quiet period after a change before reloading.
    pub debounce: Duration,
    /// Longest a burst of changes can delay a reload.
    pub debounce_max: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            config: Vec::new(),
            xds_address: SocketAddr::from(([127, 0, 0, 1], 15010)),
            monitoring_address: SocketAddr::from(([127, 0, 0, 1], 15014)),
            mesh: MeshOptions::default(),
            debounce: Duration::from_millis(100),
            debounce_max: Duration::from_secs(1),
        }
    }
}

/// Starting failed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A port could not be bound.
    #[error("cannot listen on {addr} for {what}: {source} (is another control plane running?)")]
    Bind {
        /// Which server.
        what: &'static str,
        /// Address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The configuration could not be watched.
    #[error("cannot watch {path}: {source}")]
    Watch {
        /// Path.
        path: PathBuf,
        /// Why.
        source: notify::Error,
    },
}

/// A running control plane.
#[derive(Debug)]
pub struct ControlPlane {
    /// Where xDS is served.
    pub xds_address: SocketAddr,
    /// Where metrics and debug endpoints are served.
    pub monitoring_address: SocketAddr,
    /// The ADS server (connections, stats).
    pub ads: AdsServer,
    /// Configuration status.
    pub status: SharedStatus,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    _watcher: notify::RecommendedWatcher,
}

impl ControlPlane {
    /// Loads the configuration, binds both servers and starts watching. Must run inside a
    /// tokio runtime.
    pub async fn start(opts: Options) -> Result<ControlPlane, StartError> {
        let status: SharedStatus = Arc::default();
        let mut store = ConfigStore::default();
        let ads = AdsServer::new(Mesh::default());
        watch::reload(&opts, &mut store, &ads, &status).await;

        let xds = TcpListener::bind(opts.xds_address)
            .await
            .map_err(|source| StartError::Bind {
                what: "xDS",
                addr: opts.xds_address,
                source,
            })?;
        let monitoring = TcpListener::bind(opts.monitoring_address)
            .await
            .map_err(|source| StartError::Bind {
                what: "monitoring",
                addr: opts.monitoring_address,
                source,
            })?;
        let xds_address = xds.local_addr().map_err(|source| StartError::Bind {
            what: "xDS",
            addr: opts.xds_address,
            source,
        })?;
        let monitoring_address = monitoring.local_addr().map_err(|source| StartError::Bind {
            what: "monitoring",
            addr: opts.monitoring_address,
            source,
        })?;

        let (watcher, events) = watch::watch(&opts.config)?;
        let mut tasks = Vec::new();
        {
            let (opts, ads, status) = (opts.clone(), ads.clone(), status.clone());
            tasks.push(tokio::spawn(async move {
                watch::run(opts, store, ads, status, events).await;
            }));
        }
        {
            let service = ads.service();
            tasks.push(tokio::spawn(async move {
                let incoming = tokio_stream_from(xds);
                if let Err(e) = tonic::transport::Server::builder()
                    .http2_keepalive_interval(Some(Duration::from_secs(30)))
                    .add_service(service)
                    .serve_with_incoming(incoming)
                    .await
                {
                    tracing::error!(error = %e, "xDS server stopped");
                }
            }));
        }
        {
            let app = monitoring::router(ads.clone(), status.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(monitoring, app).await {
                    tracing::error!(error = %e, "monitoring server stopped");
                }
            }));
        }
        tracing::info!(%xds_address, %monitoring_address, "control plane serving");
        Ok(ControlPlane {
            xds_address,
            monitoring_address,
            ads,
            status,
            tasks,
            _watcher: watcher,
        })
    }

    /// Stops serving (open streams end; proxies keep their configuration and reconnect).
    pub fn shutdown(self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Accepted connections as the stream tonic serves, with TCP_NODELAY (xDS responses are small
/// and latency-sensitive).
fn tokio_stream_from(
    listener: TcpListener,
) -> impl futures_util::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures_util::stream::unfold(listener, |l| async move {
        let conn = l.accept().await.map(|(s, _)| {
            let _ = s.set_nodelay(true);
            s
        });
        Some((conn, l))
    })
}
