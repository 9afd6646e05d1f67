//! Hot-swappable TLS configurations: a handle that rebuilds its rustls configuration from the
//! same model when the files behind it change, and a watcher that triggers it.
//!
//! New handshakes take the configuration current when they start; established connections keep
//! theirs (rustls connections hold their own `Arc` of the configuration).

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use parking_lot::Mutex;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{LazyConfigAcceptor, TlsConnector};
use tracing::{debug, info, warn};
use weft_proxy_config::model::{DownstreamTls, UpstreamTls};

use super::source::{self, LoadedSources};
use super::{TlsError, build_client_config, build_server_config, upstream_server_name};

/// A TLS context of the model that can be (re)built into a rustls configuration.
pub trait TlsModel: Send + Sync + 'static {
    /// The rustls configuration it becomes.
    type Config: fmt::Debug + Send + Sync + 'static;

    /// Reads every data source.
    fn load(&self) -> Result<LoadedSources, TlsError>;

    /// Builds the configuration from bytes read by [`TlsModel::load`].
    fn build(&self, sources: &LoadedSources) -> Result<Self::Config, TlsError>;

    /// The files it reads (what a watcher must watch).
    fn files(&self) -> Vec<PathBuf>;
}

impl TlsModel for DownstreamTls {
    type Config = ServerConfig;

    fn load(&self) -> Result<LoadedSources, TlsError> {
        LoadedSources::load_downstream(self)
    }

    fn build(&self, sources: &LoadedSources) -> Result<ServerConfig, TlsError> {
        build_server_config(self, sources)
    }

    fn files(&self) -> Vec<PathBuf> {
        source::files(&self.certificates, self.validation.as_ref())
    }
}

impl TlsModel for UpstreamTls {
    type Config = ClientConfig;

    fn load(&self) -> Result<LoadedSources, TlsError> {
        LoadedSources::load_upstream(self)
    }

    fn build(&self, sources: &LoadedSources) -> Result<ClientConfig, TlsError> {
        build_client_config(self, sources)
    }

    fn files(&self) -> Vec<PathBuf> {
        source::files(&self.certificates, self.validation.as_ref())
    }
}

/// The current rustls configuration of one TLS context, swapped atomically on reload.
pub struct TlsContextHandle<M: TlsModel> {
    model: M,
    config: ArcSwap<M::Config>,
    // The bytes the current configuration was built from; the lock also serializes reloads.
    loaded: Mutex<LoadedSources>,
    // How many times `reload` re-read the sources.
    reads: AtomicU64,
}

/// A listener's TLS context.
pub type ServerTlsHandle = TlsContextHandle<DownstreamTls>;

/// A cluster's TLS context.
pub type ClientTlsHandle = TlsContextHandle<UpstreamTls>;

impl<M: TlsModel + fmt::Debug> fmt::Debug for TlsContextHandle<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsContextHandle")
            .field("model", &self.model)
            .field("loaded", &*self.loaded.lock())
            .finish_non_exhaustive()
    }
}

impl<M: TlsModel> TlsContextHandle<M> {
    /// Reads the model's data sources and builds the first configuration.
    pub fn new(model: M) -> Result<Self, TlsError> {
        let loaded = model.load()?;
        let config = model.build(&loaded)?;
        Ok(Self {
            model,
            config: ArcSwap::from_pointee(config),
            loaded: Mutex::new(loaded),
            reads: AtomicU64::new(0),
        })
    }

    /// The configuration for the next handshake.
    pub fn config(&self) -> Arc<M::Config> {
        self.config.load_full()
    }

    /// The model this handle builds from.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// Re-reads the data sources; if their contents changed, builds and installs a new
    /// configuration. Returns whether it did. On error the current configuration stays.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let mut loaded = self.loaded.lock();
        self.reads.fetch_add(1, Ordering::Relaxed);
        let fresh = self.model.load()?;
        if fresh == *loaded {
            return Ok(false);
        }
        let config = self.model.build(&fresh)?;
        self.config.store(Arc::new(config));
        *loaded = fresh;
        Ok(true)
    }

    /// How many times [`reload`](Self::reload) has re-read the data sources (the watcher calls
    /// it on each settled burst of changes).
    pub fn rereads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }

    /// Watches the directories of the model's files and reloads on any change in them.
    ///
    /// Directories, not files, are watched: Kubernetes updates a mounted secret by swapping a
    /// `..data` symlink, which a watch on the file itself would not see. A failed reload is
    /// logged (the error names the file) and the previous configuration keeps serving. The
    /// watcher holds the handle weakly and stops when it is dropped. Must be called inside a
    /// Tokio runtime.
    pub fn watch(self: &Arc<Self>) -> Result<TlsWatcher, TlsError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| TlsError::NoRuntime)?;
        // One pending wake-up is enough: the reload reads everything.
        let (waker, wake) = tokio::sync::mpsc::channel::<()>(1);
        let mut watcher = notify::recommended_watcher(move |event: notify::Result<_>| {
            let event: notify::Event = match event {
                Ok(event) => event,
                Err(error) => {
                    warn!(%error, "TLS file watcher error");
                    return;
                }
            };
            // Any change in a watched directory may be a rotation; reload compares contents.
            // Reads are not changes, and reloading reads the files.
            if crate::watch::may_change_contents(&event.kind) {
                let _ = waker.try_send(());
            }
        })
        .map_err(|error| TlsError::Watch {
            path: PathBuf::new(),
            error,
        })?;
        for dir in directories(&self.model.files()) {
            watcher
                .watch(&dir, RecursiveMode::NonRecursive)
                .map_err(|error| TlsError::Watch { path: dir, error })?;
        }
        let task = runtime.spawn(reload_loop(Arc::downgrade(self), wake));
        Ok(TlsWatcher {
            _watcher: watcher,
            task,
        })
    }
}

/// How long a burst of file events (a certificate, then its key; a symlink swap) may take to
/// settle before reloading.
const DEBOUNCE: Duration = Duration::from_millis(100);

async fn reload_loop<M: TlsModel>(
    handle: Weak<TlsContextHandle<M>>,
    mut wake: tokio::sync::mpsc::Receiver<()>,
) {
    loop {
        if wake.recv().await.is_none() {
            return;
        }
        tokio::time::sleep(DEBOUNCE).await;
        // Changes during the pause are covered by the reload below.
        while wake.try_recv().is_ok() {}
        let Some(handle) = handle.upgrade() else {
            return;
        };
        match tokio::task::spawn_blocking(move || handle.reload()).await {
            Ok(Ok(true)) => info!("TLS certificates reloaded"),
            Ok(Ok(false)) => debug!("TLS files touched, contents unchanged"),
            Ok(Err(error)) => {
                warn!(%error, "TLS reload failed; keeping the previous configuration");
            }
            Err(error) => warn!(%error, "TLS reload task failed"),
        }
    }
}

fn directories(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    files
        .iter()
        .map(|file| match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => Path::new(".").to_path_buf(),
        })
        .collect()
}

/// A running file watcher; dropping it stops watching.
#[derive(Debug)]
pub struct TlsWatcher {
    _watcher: notify::RecommendedWatcher,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TlsContextHandle<DownstreamTls> {
    /// Runs the server handshake on `io` with the current configuration.
    ///
    /// When the client offers ALPN protocols and none is configured here, the handshake goes on
    /// without ALPN, as Envoy does; rustls alone would abort it.
    pub async fn accept<IO>(&self, io: IO) -> io::Result<tokio_rustls::server::TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let start = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), io).await?;
        let config = self.config();
        let no_overlap = !config.alpn_protocols.is_empty()
            && start.client_hello().alpn().is_some_and(|mut offered| {
                !offered.any(|p| config.alpn_protocols.iter().any(|ours| ours == p))
            });
        let config = if no_overlap {
            let mut without_alpn = (*config).clone();
            without_alpn.alpn_protocols.clear();
            Arc::new(without_alpn)
        } else {
            config
        };
        start.into_stream(config).await
    }
}

impl TlsContextHandle<UpstreamTls> {
    /// The name rustls gets for `peer` (see [`upstream_server_name`]).
    pub fn server_name(&self, peer: IpAddr) -> Result<ServerName<'static>, TlsError> {
        upstream_server_name(&self.model, peer)
    }

    /// Runs the client handshake with `peer` on `io` with the current configuration.
    pub async fn connect<IO>(
        &self,
        peer: IpAddr,
        io: IO,
    ) -> io::Result<tokio_rustls::client::TlsStream<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let name = self
            .server_name(peer)
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidInput, error))?;
        TlsConnector::from(self.config()).connect(name, io).await
    }
}
