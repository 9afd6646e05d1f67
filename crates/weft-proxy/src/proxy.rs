//! The proxy as a whole: applies a configuration (clusters first, then listeners), keeps the
//! last good one when a new one fails, and drains old listeners without dropping connections.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use weft_proxy_config::model::{
    Cluster, Discovery, DnsLookupFamily, FilterChain, Listener, NetworkFilter, ProxyConfig,
};

use crate::http::HttpStats;
use crate::listener::runtime::{ChainRuntime, ListenerRuntime, accept_loop, bind};
use crate::state::{Clusters, ProxyState};
use crate::upstream::ClusterRuntime;

/// Why a configuration could not be applied. The proxy keeps running the previous one.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A listener address could not be bound.
    #[error("listener {name:?}: cannot bind {address}: {source}")]
    Bind {
        /// Listener name.
        name: String,
        /// Address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// A TLS context could not be built (certificate files...).
    #[error("{owner}: {message}")]
    Tls {
        /// The cluster or listener filter chain it belongs to.
        owner: TlsOwner,
        /// What failed.
        message: String,
    },
}

/// What a TLS context belongs to (so that whoever applied the configuration can tell which
/// resource failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsOwner {
    /// A cluster's upstream TLS.
    Cluster(String),
    /// A listener filter chain's downstream TLS.
    FilterChain {
        /// The listener.
        listener: String,
        /// The filter chain.
        chain: String,
    },
}

impl std::fmt::Display for TlsOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsOwner::Cluster(name) => write!(f, "cluster {name:?}"),
            TlsOwner::FilterChain { listener, chain } => {
                write!(f, "listener {listener:?} filter chain {chain:?}")
            }
        }
    }
}

struct ActiveListener {
    address: SocketAddr,
    bound: SocketAddr,
    current: Arc<ArcSwap<ListenerRuntime>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// A running proxy.
pub struct Proxy {
    state: Arc<ProxyState>,
    listeners: Mutex<HashMap<String, ActiveListener>>,
    http_stats: Mutex<HashMap<String, Arc<HttpStats>>>,
    config: ArcSwap<Option<Arc<ProxyConfig>>>,
    stat_sources: Mutex<Vec<StatSource>>,
}

/// Stats kept outside the data plane (the xDS client's), read at scrape time: full Envoy name,
/// value, and whether it is a counter (else a gauge).
pub type StatSource = Arc<dyn Fn() -> Vec<(String, i64, bool)> + Send + Sync>;

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy").finish_non_exhaustive()
    }
}

impl Proxy {
    /// A proxy with no configuration yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Arc::new(ProxyState::default()),
            listeners: Mutex::new(HashMap::new()),
            http_stats: Mutex::new(HashMap::new()),
            config: ArcSwap::from_pointee(None),
            stat_sources: Mutex::new(Vec::new()),
        })
    }

    /// Adds stats that `/stats` and `/stats/prometheus` report along with the proxy's own.
    pub fn add_stat_source(&self, source: StatSource) {
        self.stat_sources.lock().push(source);
    }

    /// The stats of every source added with [`Proxy::add_stat_source`].
    pub fn external_stats(&self) -> Vec<(String, i64, bool)> {
        let sources = self.stat_sources.lock().clone();
        sources.iter().flat_map(|s| s()).collect()
    }

    /// Shared state (clusters), for the admin server.
    pub fn state(&self) -> &Arc<ProxyState> {
        &self.state
    }

    /// The configuration currently applied.
    pub fn config(&self) -> Option<Arc<ProxyConfig>> {
        self.config.load().as_ref().clone()
    }

    /// Where listener `name` is bound (useful when configured with port 0).
    pub fn listener_address(&self, name: &str) -> Option<SocketAddr> {
        self.listeners.lock().get(name).map(|l| l.bound)
    }

    /// Listeners and where they are bound, by name.
    pub fn listeners(&self) -> Vec<(String, SocketAddr)> {
        let mut v: Vec<_> = self
            .listeners
            .lock()
            .iter()
            .map(|(k, l)| (k.clone(), l.bound))
            .collect();
        v.sort();
        v
    }

    /// HTTP connection manager stats by stat prefix.
    pub fn http_stats(&self) -> Vec<(String, Arc<HttpStats>)> {
        let mut v: Vec<_> = self
            .http_stats
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Applies `config`. Clusters are built first (unchanged clusters keep their connections,
    /// health and stats), then listeners: unchanged addresses keep their socket and switch new
    /// connections to the new configuration while old connections drain; removed listeners
    /// stop accepting and drain. On error nothing changes.
    pub async fn apply(self: &Arc<Self>, config: ProxyConfig) -> Result<(), ApplyError> {
        let config = Arc::new(config);
        // Build everything that can fail before touching the running state.
        let old_clusters = self.state.clusters();
        let mut clusters = Vec::new();
        let mut fresh = Vec::new();
        let mut endpoint_updates = Vec::new();
        for c in &config.clusters {
            match old_clusters.get(&c.name) {
                Some(existing) if **existing.shared.config() == **c => {
                    clusters.push(existing.clone())
                }
                // An EDS update: the cluster stays (pools, health, outlier state, stats) and
                // only its hosts change, as in Envoy.
                Some(existing) if existing.only_endpoints_differ(c) => {
                    endpoint_updates.push((existing.clone(), c.clone()));
                    clusters.push(existing.clone());
                }
                _ => {
                    let (tls, watcher) = match &c.tls {
                        None => (None, None),
                        Some(t) => {
                            let (h, w) =
                                crate::tls_glue::client(t).map_err(|message| ApplyError::Tls {
                                    owner: TlsOwner::Cluster(c.name.clone()),
                                    message,
                                })?;
                            (Some(h), w)
                        }
                    };
                    let rt = ClusterRuntime::new(c.clone(), tls);
                    if let Some(w) = watcher {
                        rt.keep(w);
                    }
                    fresh.push(rt.clone());
                    clusters.push(rt);
                }
            }
        }
        // A listener that runs unchanged (the same `Arc`, as the xDS client passes it) or that
        // differs only in its RDS route tables keeps its runtime: nothing of it is rebuilt, so
        // a certificate file it no longer finds cannot fail an update that does not touch it
        // (its running TLS context stays, as in Envoy).
        let mut new_listeners = Vec::new();
        for l in &config.listeners {
            let runtime = if self.runs_as_is(l) {
                None
            } else {
                Some(self.listener_runtime(l)?)
            };
            new_listeners.push((l.clone(), runtime));
        }
        // Bind new addresses before switching anything.
        let mut bound = HashMap::new();
        {
            let active = self.listeners.lock();
            for (l, _) in &new_listeners {
                let reuse = active.get(&l.name).is_some_and(|a| a.address == l.address);
                if !reuse && l.bind_to_port {
                    let tcp =
                        bind(l.address, l.tcp_backlog_size).map_err(|source| ApplyError::Bind {
                            name: l.name.clone(),
                            address: l.address,
                            source,
                        })?;
                    bound.insert(l.name.clone(), tcp);
                }
            }
        }

        // Commit: clusters, then listeners.
        for (runtime, c) in &endpoint_updates {
            runtime.update_endpoints(c);
        }
        for c in &fresh {
            start_cluster_tasks(Arc::downgrade(c)).await;
        }
        self.state.set_clusters(Clusters::new(clusters));
        let mut active = self.listeners.lock();
        let names: Vec<String> = new_listeners.iter().map(|(l, _)| l.name.clone()).collect();
        for (l, runtime) in new_listeners {
            let Some(runtime) = runtime else {
                match active.get(&l.name).map(|a| a.current.load_full()) {
                    // The very same listener configuration: its connections are left alone
                    // rather than drained.
                    Some(current) if Arc::ptr_eq(&current.config, &l) => {}
                    // Same listener apart from its RDS route tables: swap the tables under
                    // the running connections, as Envoy applies RDS updates.
                    Some(current) => swap_routes(&current, &l),
                    None => {}
                }
                continue;
            };
            let runtime = Arc::new(runtime);
            if let Some(existing) = active.get(&l.name).filter(|a| a.address == l.address) {
                let old = existing.current.swap(runtime);
                let _ = old.drain.send(true);
                continue;
            }
            if let Some(old) = active.remove(&l.name) {
                retire(old);
            }
            let Some(tcp) = bound.remove(&l.name) else {
                continue; // bind_to_port: false
            };
            let bound_addr = tcp.local_addr().unwrap_or(l.address);
            let current = Arc::new(ArcSwap::new(runtime));
            let (stop, stop_rx) = watch::channel(false);
            let task = tokio::spawn(accept_loop(
                tcp,
                current.clone(),
                self.state.clone(),
                stop_rx,
            ));
            active.insert(
                l.name.clone(),
                ActiveListener {
                    address: l.address,
                    bound: bound_addr,
                    current,
                    stop,
                    task,
                },
            );
        }
        let removed: Vec<String> = active
            .keys()
            .filter(|k| !names.contains(k))
            .cloned()
            .collect();
        for name in removed {
            if let Some(old) = active.remove(&name) {
                retire(old);
            }
        }
        drop(active);
        self.config.store(Arc::new(Some(config)));
        Ok(())
    }

    /// The running listener `l` can stay as it is: same name and address, and either the very
    /// same configuration (callers such as the xDS client pass the previous `Arc` for a listener
    /// that did not change) or the same one apart from its RDS route tables.
    fn runs_as_is(&self, l: &Arc<Listener>) -> bool {
        let active = self.listeners.lock();
        active
            .get(&l.name)
            .filter(|a| a.address == l.address)
            .is_some_and(|a| {
                let current = a.current.load();
                Arc::ptr_eq(&current.config, l)
                    || (l.revision.is_some() && current.config.revision == l.revision)
            })
    }

    fn listener_runtime(&self, l: &Arc<Listener>) -> Result<ListenerRuntime, ApplyError> {
        let chain = |c: &Arc<FilterChain>| -> Result<ChainRuntime, ApplyError> {
            let (tls, tls_watcher) = match &c.tls {
                None => (None, None),
                Some(t) => {
                    let (h, w) = crate::tls_glue::server(t).map_err(|message| ApplyError::Tls {
                        owner: TlsOwner::FilterChain {
                            listener: l.name.clone(),
                            chain: c.name.clone(),
                        },
                        message,
                    })?;
                    (Some(h), w)
                }
            };
            let http_stats = match &c.filter {
                NetworkFilter::Http(h) => Some(
                    self.http_stats
                        .lock()
                        .entry(h.stat_prefix.clone())
                        .or_default()
                        .clone(),
                ),
                NetworkFilter::Tcp(_) => None,
            };
            let http_filters = match &c.filter {
                NetworkFilter::Http(h) => Some(Arc::new(crate::http::filters::HcmFilters::new(h))),
                NetworkFilter::Tcp(_) => None,
            };
            let routes = match &c.filter {
                NetworkFilter::Http(h) => Some(Arc::new(ArcSwap::new(h.route_config.clone()))),
                NetworkFilter::Tcp(_) => None,
            };
            Ok(ChainRuntime {
                routes,
                chain: c.clone(),
                tls,
                tls_watcher,
                http_stats,
                http_filters,
            })
        };
        let chains = l
            .filter_chains
            .iter()
            .map(chain)
            .collect::<Result<Vec<_>, _>>()?;
        let default_chain = l.default_filter_chain.as_ref().map(chain).transpose()?;
        let (drain, _) = watch::channel(false);
        Ok(ListenerRuntime {
            config: l.clone(),
            chains,
            default_chain,
            drain,
        })
    }

    /// Stops accepting on every listener and asks every connection to drain; waits up to
    /// `grace` for connections to finish.
    pub async fn drain(&self, grace: Duration) {
        let old: Vec<ActiveListener> = self.listeners.lock().drain().map(|(_, v)| v).collect();
        let mut gens = Vec::new();
        for l in old {
            gens.push(l.current.load_full());
            retire(l);
        }
        let deadline = tokio::time::Instant::now() + grace;
        for g in gens {
            while g.drain.receiver_count() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Stores `l`'s route tables into `runtime`'s chains (same structure: same revision).
fn swap_routes(runtime: &ListenerRuntime, l: &Listener) {
    let new_chains = l.filter_chains.iter().chain(l.default_filter_chain.iter());
    let old_chains = runtime.chains.iter().chain(runtime.default_chain.iter());
    for (new, old) in new_chains.zip(old_chains) {
        if let (NetworkFilter::Http(h), Some(routes)) = (&new.filter, &old.routes) {
            routes.store(h.route_config.clone());
        }
    }
}

/// Stops a listener's accept loop and drains its connections.
fn retire(l: ActiveListener) {
    let _ = l.stop.send(true);
    let _ = l.current.load().drain.send(true);
    l.task.abort();
}

/// Starts a new cluster's background work (DNS refresh, active health checks, outlier
/// intervals, idle sweeps); each task ends when the cluster is dropped. DNS clusters are
/// resolved once, and hosts health checked once, before returning, as Envoy warms clusters
/// before using them.
async fn start_cluster_tasks(cluster: Weak<ClusterRuntime>) {
    let Some(c) = cluster.upgrade() else { return };
    let config: Arc<Cluster> = c.shared.config().clone();
    let dns = matches!(
        config.discovery,
        Discovery::StrictDns | Discovery::LogicalDns
    );
    let targets = c.dns_targets();
    if dns {
        let resolved = resolve_all(&targets, config.dns_lookup_family).await;
        c.set_resolved(&resolved);
    }
    // Active health checking; returns once every host has had its first check (warming).
    let health_checker = crate::upstream::health::HealthChecker::start(&c).await;
    if let Some(hc) = &health_checker {
        // EDS updates add hosts to check.
        c.keep_health_checker(hc.clone());
    }
    if dns {
        let weak = cluster.clone();
        let rate = config.dns_refresh_rate;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(rate).await;
                let Some(c) = weak.upgrade() else { return };
                let family = c.shared.config().dns_lookup_family;
                let resolved = resolve_all(&targets, family).await;
                c.set_resolved(&resolved);
                // New hosts fail active health checking until their first check passes.
                if let Some(hc) = &health_checker {
                    hc.sync_hosts(&c);
                }
            }
        });
    }
    if let Some(od) = &config.outlier_detection {
        let weak = cluster.clone();
        let interval = od.interval;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(c) = weak.upgrade() else { return };
                crate::upstream::outlier::interval_tick(&c);
            }
        });
    }
    let weak = cluster;
    let sweep = (config.idle_timeout / 2).max(Duration::from_millis(100));
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(sweep).await;
            let Some(c) = weak.upgrade() else { return };
            c.sweep_idle();
        }
    });
}

async fn resolve_all(targets: &[(String, u16)], family: DnsLookupFamily) -> Vec<Vec<SocketAddr>> {
    let mut out = Vec::with_capacity(targets.len());
    for (host, port) in targets {
        let addrs: Vec<SocketAddr> = match tokio::net::lookup_host((host.as_str(), *port)).await {
            Ok(it) => it.collect(),
            Err(e) => {
                tracing::warn!(host, error = %e, "DNS resolution failed");
                Vec::new()
            }
        };
        out.push(filter_family(addrs, family));
    }
    out
}

fn filter_family(addrs: Vec<SocketAddr>, family: DnsLookupFamily) -> Vec<SocketAddr> {
    let (v4, v6): (Vec<_>, Vec<_>) = addrs.into_iter().partition(SocketAddr::is_ipv4);
    match family {
        DnsLookupFamily::V4Only => v4,
        DnsLookupFamily::V6Only => v6,
        DnsLookupFamily::Auto => {
            if v6.is_empty() {
                v4
            } else {
                v6
            }
        }
        DnsLookupFamily::V4Preferred => {
            if v4.is_empty() {
                v6
            } else {
                v4
            }
        }
        DnsLookupFamily::All => v4.into_iter().chain(v6).collect(),
    }
}
