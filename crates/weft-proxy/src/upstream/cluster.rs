//! A cluster at run time: its settings, circuit breakers, stats, hosts and load balancer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use parking_lot::{Mutex, MutexGuard};
use weft_proxy_config::model::{self, Cluster, ConfiguredHealth, Discovery, EndpointAddress};
use weft_proxy_lb::{
    Endpoints, Health, Host, LbPolicy, LoadBalancer, Locality, LocalityEndpoints, PickContext,
    PreviousPriorities, RandomSource,
};

use super::health::HealthChecker;
use super::pool::HostPool;
use super::stats::{ClusterStats, inc};
use crate::error::{Overflow, UpstreamError};

/// The parts of a cluster every connection and request needs.
#[derive(Debug)]
pub struct ClusterShared {
    /// Settings; see [`ClusterShared::config`].
    config: ArcSwap<Cluster>,
    /// Stats.
    pub stats: ClusterStats,
    /// TLS origination (rotating with its certificate files).
    pub tls: Option<Arc<crate::tls::ClientTlsHandle>>,
    connections: AtomicU32,
    pending: AtomicU32,
    requests: AtomicU32,
    retries: AtomicU32,
}

fn try_reserve(counter: &AtomicU32, max: u32) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok()
}

fn release(counter: &AtomicU32) {
    let _ = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
}

impl ClusterShared {
    /// The cluster's configuration. Everything but the endpoints stays as the cluster was
    /// built; an EDS update applied in place ([`ClusterRuntime::update_endpoints`]) swaps in
    /// the configuration carrying the new endpoints.
    pub fn config(&self) -> arc_swap::Guard<Arc<Cluster>> {
        self.config.load()
    }

    /// Takes a connection slot if under `max_connections`.
    pub fn try_reserve_connection(&self) -> bool {
        let ok = try_reserve(
            &self.connections,
            self.config.load().circuit_breakers.max_connections,
        );
        if ok {
            self.stats
                .upstream_cx_active
                .fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Takes a connection slot even at `max_connections`: Envoy lets a host's pool with no
    /// connection at all open one, so its pending requests cannot starve behind other hosts'.
    pub fn reserve_connection_over_limit(&self) {
        self.connections.fetch_add(1, Ordering::AcqRel);
        self.stats
            .upstream_cx_active
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Gives back a connection slot.
    pub fn release_connection(&self) {
        release(&self.connections);
        self.stats
            .upstream_cx_active
            .fetch_sub(1, Ordering::Relaxed);
    }

    /// Takes a pending-request slot if under `max_pending_requests`.
    pub fn try_reserve_pending(&self) -> bool {
        let ok = try_reserve(
            &self.pending,
            self.config.load().circuit_breakers.max_pending_requests,
        );
        if ok {
            inc(&self.stats.upstream_rq_pending_total);
            self.stats
                .upstream_rq_pending_active
                .fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Gives back a pending-request slot.
    pub fn release_pending(&self) {
        release(&self.pending);
        self.stats
            .upstream_rq_pending_active
            .fetch_sub(1, Ordering::Relaxed);
    }

    /// Admits a request onto a ready connection if under `max_requests` (Envoy checks this
    /// when it attaches a stream, so a request waiting for a connection holds no slot); the
    /// permit releases on drop. Overflows count in `upstream_rq_pending_overflow`, as Envoy's.
    pub fn try_acquire_request(self: &Arc<Self>) -> Result<Permit, UpstreamError> {
        if try_reserve(
            &self.requests,
            self.config.load().circuit_breakers.max_requests,
        ) {
            inc(&self.stats.upstream_rq_total);
            self.stats
                .upstream_rq_active
                .fetch_add(1, Ordering::Relaxed);
            Ok(Permit {
                cluster: self.clone(),
                kind: PermitKind::Request,
            })
        } else {
            inc(&self.stats.upstream_rq_pending_overflow);
            Err(UpstreamError::Overflow(Overflow::Requests))
        }
    }

    /// Admits a retry if under `max_retries`; the permit releases on drop.
    pub fn try_acquire_retry(self: &Arc<Self>) -> Option<Permit> {
        if try_reserve(
            &self.retries,
            self.config.load().circuit_breakers.max_retries,
        ) {
            self.stats
                .upstream_rq_retry_active
                .fetch_add(1, Ordering::Relaxed);
            Some(Permit {
                cluster: self.clone(),
                kind: PermitKind::Retry,
            })
        } else {
            inc(&self.stats.upstream_rq_retry_overflow);
            None
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum PermitKind {
    Request,
    Retry,
}

/// A held circuit-breaker slot (active request or active retry).
#[derive(Debug)]
pub struct Permit {
    cluster: Arc<ClusterShared>,
    kind: PermitKind,
}

impl Drop for Permit {
    fn drop(&mut self) {
        match self.kind {
            PermitKind::Request => {
                release(&self.cluster.requests);
                self.cluster
                    .stats
                    .upstream_rq_active
                    .fetch_sub(1, Ordering::Relaxed);
            }
            PermitKind::Retry => {
                release(&self.cluster.retries);
                self.cluster
                    .stats
                    .upstream_rq_retry_active
                    .fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

/// Health flags set at run time.
pub mod health_flags {
    /// Failed active health checking.
    pub const FAILED_ACTIVE_HC: u8 = 1;
    /// Ejected by outlier detection.
    pub const OUTLIER_EJECTED: u8 = 2;
}

/// One upstream host at run time. An EDS update keeps the host (and its pools, health and
/// outlier state) when its address stays, updating its weight, priority, configured health and
/// hostname in place, as Envoy does; a host whose locality changes, or whose health check
/// address changes in a health checked cluster, is replaced by a new one.
#[derive(Debug)]
pub struct HostRuntime {
    /// Address.
    pub address: SocketAddr,
    /// Locality.
    pub locality: model::Locality,
    /// Where active health checks go: the address, or its IP with the endpoint's
    /// `health_check_config.port_value`.
    health_check_address: SocketAddr,
    /// `hostname` from config (for `auto_host_rewrite`).
    hostname: Mutex<Arc<str>>,
    /// Priority.
    priority: AtomicU32,
    /// Weight.
    weight: AtomicU32,
    /// Configured health (`health_code`).
    configured_health: AtomicU8,
    /// Run-time health flags (`health_flags`).
    pub flags: AtomicU8,
    /// Requests in flight (least-request balancing).
    pub active_requests: AtomicU64,
    /// Connection pools.
    pub pool: Arc<HostPool>,
    /// Outlier-detection bookkeeping.
    pub outlier: Mutex<OutlierState>,
}

/// Outlier-detection counters of one host.
#[derive(Debug, Default, Clone)]
pub struct OutlierState {
    /// Consecutive 5xx responses.
    pub consecutive_5xx: u32,
    /// Consecutive 502/503/504.
    pub consecutive_gateway: u32,
    /// Consecutive locally originated failures.
    pub consecutive_local: u32,
    /// How many times the host has been ejected.
    pub ejections: u32,
    /// When the current ejection ends.
    pub ejected_until: Option<std::time::Instant>,
    /// Requests and successes in the current interval (success-rate detection).
    pub interval_requests: u64,
    /// See `interval_requests`.
    pub interval_successes: u64,
}

fn health_code(health: ConfiguredHealth) -> u8 {
    match health {
        ConfiguredHealth::Healthy => 0,
        ConfiguredHealth::Degraded => 1,
        ConfiguredHealth::Unhealthy => 2,
    }
}

fn health_from_code(code: u8) -> ConfiguredHealth {
    match code {
        0 => ConfiguredHealth::Healthy,
        1 => ConfiguredHealth::Degraded,
        _ => ConfiguredHealth::Unhealthy,
    }
}

impl HostRuntime {
    /// `hostname` from config (for `auto_host_rewrite`).
    pub fn hostname(&self) -> Arc<str> {
        self.hostname.lock().clone()
    }

    /// Priority (0 is highest).
    pub fn priority(&self) -> u32 {
        self.priority.load(Ordering::Relaxed)
    }

    /// Load-balancing weight.
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    /// Health as configured (EDS `health_status`, or static).
    pub fn configured_health(&self) -> ConfiguredHealth {
        health_from_code(self.configured_health.load(Ordering::Relaxed))
    }

    /// Where active health checks of this host go.
    pub fn health_check_address(&self) -> SocketAddr {
        self.health_check_address
    }

    /// Takes the new settings of a host that stays through an update.
    fn update(&self, spec: &HostSpec) {
        self.weight.store(spec.weight, Ordering::Relaxed);
        self.priority.store(spec.priority, Ordering::Relaxed);
        self.configured_health
            .store(health_code(spec.health), Ordering::Relaxed);
        let mut hostname = self.hostname.lock();
        if **hostname != *spec.hostname {
            *hostname = Arc::from(spec.hostname.as_str());
        }
    }

    /// Whether the host stays through an update to `spec` (same address assumed): Envoy
    /// replaces a host whose locality changed, and in a health checked cluster one whose health
    /// check address changed.
    fn stays_as(&self, spec: &HostSpec, health_checked: bool) -> bool {
        self.locality == spec.locality
            && (!health_checked || self.health_check_address == spec.health_check_address)
    }

    /// Health as the load balancer sees it.
    pub fn health(&self) -> Health {
        if self.flags.load(Ordering::Relaxed) != 0 {
            return Health::Unhealthy;
        }
        match self.configured_health() {
            ConfiguredHealth::Healthy => Health::Healthy,
            ConfiguredHealth::Degraded => Health::Degraded,
            ConfiguredHealth::Unhealthy => Health::Unhealthy,
        }
    }

    /// Health flags in Envoy's `/clusters` notation (`healthy`, `/failed_active_hc`...).
    pub fn health_flags_text(&self) -> String {
        let flags = self.flags.load(Ordering::Relaxed);
        let mut out = String::new();
        if flags & health_flags::FAILED_ACTIVE_HC != 0 {
            out.push_str("/failed_active_hc");
        }
        if flags & health_flags::OUTLIER_EJECTED != 0 {
            out.push_str("/failed_outlier_check");
        }
        match self.configured_health() {
            ConfiguredHealth::Unhealthy => out.push_str("/failed_eds_health"),
            ConfiguredHealth::Degraded => out.push_str("/degraded_eds_health"),
            ConfiguredHealth::Healthy => {}
        }
        if out.is_empty() {
            "healthy".to_owned()
        } else {
            out
        }
    }
}

/// The hosts of a cluster and the balancer over them; replaced whole on any change (a host's
/// attributes change in place, but the balancer is rebuilt with them).
#[derive(Debug)]
pub struct HostSet {
    /// Hosts, indexed by the balancer's host ids.
    pub hosts: Vec<Arc<HostRuntime>>,
    lb: Option<LoadBalancer<usize>>,
}

/// A cluster at run time.
#[derive(Debug)]
pub struct ClusterRuntime {
    /// Settings, stats and breakers.
    pub shared: Arc<ClusterShared>,
    /// The configuration's name (which no update changes).
    name: String,
    hosts: ArcSwap<HostSet>,
    /// Held while the configuration or the host set changes, so that concurrent changes (an
    /// EDS update, a health check result, an ejection) each build on the latest of the other.
    writer: Mutex<()>,
    /// Active health checking, once started: hosts an update adds are checked too.
    health_checker: Mutex<Option<HealthChecker>>,
    /// ORIGINAL_DST hosts by destination.
    original_dst: Mutex<HashMap<SocketAddr, Arc<HostRuntime>>>,
    /// Keeps the TLS certificate watcher alive as long as the cluster.
    tls_watcher: Mutex<Option<crate::tls::TlsWatcher>>,
}

impl ClusterRuntime {
    /// Builds a cluster from its config. Static and EDS clusters get their endpoints from it;
    /// DNS clusters start empty and fill in when
    /// [`ClusterRuntime::set_resolved`] is called.
    pub fn new(config: Arc<Cluster>, tls: Option<Arc<crate::tls::ClientTlsHandle>>) -> Arc<Self> {
        let name = config.name.clone();
        let shared = Arc::new(ClusterShared {
            config: ArcSwap::new(config),
            stats: ClusterStats::default(),
            tls,
            connections: AtomicU32::new(0),
            pending: AtomicU32::new(0),
            requests: AtomicU32::new(0),
            retries: AtomicU32::new(0),
        });
        let rt = Arc::new(Self {
            shared,
            name,
            hosts: ArcSwap::from_pointee(HostSet {
                hosts: Vec::new(),
                lb: None,
            }),
            writer: Mutex::new(()),
            health_checker: Mutex::new(None),
            original_dst: Mutex::new(HashMap::new()),
            tls_watcher: Mutex::new(None),
        });
        // EDS endpoints arrive in the configuration (the xDS client puts each assignment into
        // its cluster), as IP addresses like a static cluster's.
        let config = rt.shared.config.load_full();
        if matches!(config.discovery, Discovery::Static | Discovery::Eds) {
            let writer = rt.writer.lock();
            rt.replace_hosts(&writer, &config, hosts_of(&config));
            drop(writer);
        }
        rt
    }

    /// Keeps `watcher` (certificate rotation) running for the cluster's lifetime.
    pub fn keep(&self, watcher: crate::tls::TlsWatcher) {
        *self.tls_watcher.lock() = Some(watcher);
    }

    /// Keeps `checker` (active health checking, started once the cluster exists) so that
    /// hosts an EDS update adds are checked too.
    pub fn keep_health_checker(&self, checker: HealthChecker) {
        *self.health_checker.lock() = Some(checker);
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// An EDS update: `config` is this cluster's configuration with new endpoints (and
    /// nothing else changed; see [`ClusterRuntime::only_endpoints_differ`]). It becomes the
    /// cluster's configuration and the balancer is rebuilt from it (locality weights and
    /// priorities included), as Envoy rebuilds its priority set. Hosts whose address stays keep
    /// their pools, health and outlier state and take their new weight, priority, EDS health
    /// and hostname (see [`HostRuntime`]); new hosts of a health checked cluster take traffic
    /// once they pass their first check.
    pub fn update_endpoints(&self, config: &Arc<Cluster>) {
        {
            let writer = self.writer.lock();
            self.shared.config.store(config.clone());
            self.replace_hosts(&writer, config, hosts_of(config));
        }
        let checker = self.health_checker.lock().clone();
        if let Some(checker) = checker {
            checker.sync_hosts(self);
        }
    }

    /// Whether `new` differs from this cluster's configuration only in its endpoints, so an
    /// EDS update can be applied in place with [`ClusterRuntime::update_endpoints`].
    pub fn only_endpoints_differ(&self, new: &Cluster) -> bool {
        let old = self.shared.config.load();
        old.discovery == Discovery::Eds
            && new.discovery == Discovery::Eds
            && Cluster {
                localities: Vec::new(),
                ..(**old).clone()
            } == Cluster {
                localities: Vec::new(),
                ..new.clone()
            }
    }
}

/// The socket-address endpoints of `config`, as host specs.
fn hosts_of(config: &Cluster) -> Vec<HostSpec> {
    {
        let mut out = Vec::new();
        for loc in &config.localities {
            for ep in &loc.endpoints {
                if let EndpointAddress::Socket(addr) = ep.address {
                    out.push(HostSpec::new(addr, loc, ep));
                }
            }
        }
        out
    }
}

impl ClusterRuntime {
    /// Names a DNS cluster must resolve, with their ports and endpoint settings.
    pub fn dns_targets(&self) -> Vec<(String, u16)> {
        let mut out = Vec::new();
        for loc in &self.shared.config.load().localities {
            for ep in &loc.endpoints {
                if let EndpointAddress::Dns { host, port } = &ep.address {
                    out.push((host.clone(), *port));
                }
            }
        }
        out
    }

    /// Replaces a DNS cluster's hosts with resolved addresses: `resolved[i]` are the addresses
    /// of the i-th DNS endpoint (in config order). LOGICAL_DNS keeps only the first address.
    pub fn set_resolved(&self, resolved: &[Vec<SocketAddr>]) {
        let writer = self.writer.lock();
        let config = self.shared.config.load_full();
        let logical = config.discovery == Discovery::LogicalDns;
        let mut specs = Vec::new();
        let mut i = 0;
        for loc in &config.localities {
            for ep in &loc.endpoints {
                if matches!(ep.address, EndpointAddress::Dns { .. }) {
                    if let Some(addrs) = resolved.get(i) {
                        let take = if logical { 1 } else { addrs.len() };
                        for addr in addrs.iter().take(take) {
                            specs.push(HostSpec::new(*addr, loc, ep));
                        }
                    }
                    i += 1;
                }
            }
        }
        let current: Vec<SocketAddr> = self.hosts.load().hosts.iter().map(|h| h.address).collect();
        let next: Vec<SocketAddr> = specs.iter().map(|s| s.address).collect();
        if current != next {
            self.replace_hosts(&writer, &config, specs);
        }
    }

    /// Installs a new host list built from `config`, keeping the hosts (and so their pools,
    /// health and outlier state) that stay; see [`HostRuntime`]. New hosts of a health checked
    /// cluster fail active health checking until their first check passes.
    fn replace_hosts(&self, writer: &MutexGuard<'_, ()>, config: &Cluster, specs: Vec<HostSpec>) {
        let health_checked = !config.health_checks.is_empty();
        let old = self.hosts.load();
        let mut by_addr: HashMap<SocketAddr, &Arc<HostRuntime>> =
            old.hosts.iter().map(|h| (h.address, h)).collect();
        let hosts: Vec<Arc<HostRuntime>> = specs
            .into_iter()
            .map(|s| match by_addr.remove(&s.address) {
                Some(h) if h.stays_as(&s, health_checked) => {
                    h.update(&s);
                    h.clone()
                }
                _ => Arc::new(s.into_runtime(&self.shared, health_checked)),
            })
            .collect();
        inc(&self.shared.stats.membership_change);
        self.install(writer, config, hosts);
    }

    /// Rebuilds the balancer after a health change (health checks, outlier detection).
    pub fn health_changed(&self) {
        let writer = self.writer.lock();
        let hosts = self.hosts.load().hosts.clone();
        let config = self.shared.config.load();
        self.install(&writer, &config, hosts);
    }

    /// Stores `hosts` with a balancer built from `config`, which must be the cluster's
    /// configuration (the writer lock keeps it so).
    fn install(
        &self,
        _writer: &MutexGuard<'_, ()>,
        config: &Cluster,
        hosts: Vec<Arc<HostRuntime>>,
    ) {
        let stats = &self.shared.stats;
        stats
            .membership_total
            .store(hosts.len() as i64, Ordering::Relaxed);
        let healthy = hosts
            .iter()
            .filter(|h| h.health() == Health::Healthy)
            .count();
        stats
            .membership_healthy
            .store(healthy as i64, Ordering::Relaxed);
        let lb = build_lb(config, &hosts);
        self.hosts.store(Arc::new(HostSet { hosts, lb }));
    }

    /// The current hosts.
    pub fn host_set(&self) -> Arc<HostSet> {
        self.hosts.load_full()
    }

    /// Picks a host for a request. `hash` comes from the route's hash policies; `previous` are
    /// hosts already tried by this request (retry host predicate).
    pub fn pick(
        &self,
        hash: Option<u64>,
        previous: &[Arc<HostRuntime>],
        max_attempts: u32,
    ) -> Result<Arc<HostRuntime>, UpstreamError> {
        self.pick_with_priority(hash, previous, max_attempts, None)
    }

    /// Whether the balancer consults the request hash (RING_HASH, MAGLEV): only then does Envoy
    /// evaluate the route's hash policies, once per pick (which is when a hash policy's cookie
    /// is generated).
    pub fn hashes_requests(&self) -> bool {
        let config = self.shared.config.load();
        !matches!(config.discovery, Discovery::OriginalDst)
            && matches!(
                config.lb.config().policy,
                LbPolicy::RingHash(_) | LbPolicy::Maglev(_)
            )
    }

    /// [`Self::pick`] for a retry with a retry priority: the pick uses the priority load
    /// `priorities` computes for the current hosts (Envoy's `determinePriorityLoad`).
    pub fn pick_with_priority(
        &self,
        hash: Option<u64>,
        previous: &[Arc<HostRuntime>],
        max_attempts: u32,
        priorities: Option<&mut PreviousPriorities>,
    ) -> Result<Arc<HostRuntime>, UpstreamError> {
        let set = self.hosts.load();
        let Some(lb) = set.lb.as_ref() else {
            inc(&self.shared.stats.upstream_cx_none_healthy);
            return Err(UpstreamError::NoHealthyHost);
        };
        let prev_ids: Vec<weft_proxy_lb::HostId> = previous
            .iter()
            .filter_map(|p| set.hosts.iter().position(|h| Arc::ptr_eq(h, p)))
            .filter_map(|i| u32::try_from(i).ok().map(weft_proxy_lb::HostId))
            .collect();
        let active = ActiveCounts(&set.hosts);
        let mut ctx = PickContext::new().with_active_requests(&active);
        if let Some(h) = hash {
            ctx = ctx.with_hash(h);
        }
        if !prev_ids.is_empty() {
            ctx = ctx.with_previous_hosts(&prev_ids, max_attempts);
        }
        if let Some(p) = priorities {
            ctx = ctx.with_priority_load(p.priority_load(lb));
        }
        let mut rng = ThreadRng;
        match lb.choose(&ctx, &mut rng) {
            Some(p) => set
                .hosts
                .get(p.host.id)
                .cloned()
                .ok_or(UpstreamError::NoHealthyHost),
            None => {
                inc(&self.shared.stats.upstream_cx_none_healthy);
                Err(UpstreamError::NoHealthyHost)
            }
        }
    }

    /// ORIGINAL_DST: the host for a connection's original destination, created on first use.
    pub fn original_dst_host(&self, addr: SocketAddr) -> Arc<HostRuntime> {
        let mut map = self.original_dst.lock();
        map.entry(addr)
            .or_insert_with(|| {
                Arc::new(HostRuntime {
                    address: addr,
                    locality: model::Locality::default(),
                    health_check_address: addr,
                    hostname: Mutex::new(Arc::from("")),
                    priority: AtomicU32::new(0),
                    weight: AtomicU32::new(1),
                    configured_health: AtomicU8::new(health_code(ConfiguredHealth::Healthy)),
                    flags: AtomicU8::new(0),
                    active_requests: AtomicU64::new(0),
                    pool: HostPool::new(addr, self.shared.clone()),
                    outlier: Mutex::new(OutlierState::default()),
                })
            })
            .clone()
    }

    /// Closes idle pooled connections past their idle timeout.
    pub fn sweep_idle(&self) {
        for h in &self.hosts.load().hosts {
            h.pool.sweep();
        }
        for h in self.original_dst.lock().values() {
            h.pool.sweep();
        }
    }
}

struct HostSpec {
    address: SocketAddr,
    health_check_address: SocketAddr,
    hostname: String,
    locality: model::Locality,
    priority: u32,
    weight: u32,
    health: ConfiguredHealth,
}

impl HostSpec {
    fn new(address: SocketAddr, loc: &model::LocalityEndpoints, ep: &model::Endpoint) -> Self {
        Self {
            address,
            health_check_address: ep
                .health_check_port
                .map_or(address, |port| SocketAddr::new(address.ip(), port)),
            hostname: ep.hostname.clone(),
            locality: loc.locality.clone(),
            priority: loc.priority,
            weight: ep.weight.max(1),
            health: ep.health,
        }
    }

    /// A new host; in a health checked cluster it fails active health checking until its first
    /// check passes, as Envoy marks hosts it adds.
    fn into_runtime(self, shared: &Arc<ClusterShared>, health_checked: bool) -> HostRuntime {
        let flags = if health_checked {
            health_flags::FAILED_ACTIVE_HC
        } else {
            0
        };
        HostRuntime {
            address: self.address,
            locality: self.locality,
            health_check_address: self.health_check_address,
            hostname: Mutex::new(Arc::from(self.hostname.as_str())),
            priority: AtomicU32::new(self.priority),
            weight: AtomicU32::new(self.weight),
            configured_health: AtomicU8::new(health_code(self.health)),
            flags: AtomicU8::new(flags),
            active_requests: AtomicU64::new(0),
            pool: HostPool::new(self.address, shared.clone()),
            outlier: Mutex::new(OutlierState::default()),
        }
    }
}

fn build_lb(config: &Cluster, hosts: &[Arc<HostRuntime>]) -> Option<LoadBalancer<usize>> {
    if hosts.is_empty() {
        return None;
    }
    // Group by (priority, locality) preserving first-seen order, as Envoy keeps config order.
    // ((priority, locality), hosts, locality weight)
    type Group = ((u32, model::Locality), Vec<Host<usize>>, Option<u32>);
    let mut groups: Vec<Group> = Vec::new();
    let locality_weight = |loc: &model::Locality, prio: u32| {
        config
            .localities
            .iter()
            .find(|l| &l.locality == loc && l.priority == prio)
            .and_then(|l| l.weight)
    };
    for (i, h) in hosts.iter().enumerate() {
        let priority = h.priority();
        let key = (priority, h.locality.clone());
        let host = Host::new(i, h.address.to_string())
            .with_weight(h.weight())
            .with_health(h.health());
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, list, _)) => list.push(host),
            None => {
                let w = locality_weight(&h.locality, priority);
                groups.push((key, vec![host], w));
            }
        }
    }
    let mut endpoints = Endpoints::new();
    for ((prio, loc), list, weight) in groups {
        let mut le = LocalityEndpoints::new(
            Locality {
                region: loc.region,
                zone: loc.zone,
                sub_zone: loc.sub_zone,
            },
            list,
        );
        // Envoy treats an unset locality weight as 0 under locality-weighted balancing.
        le = le.with_weight(weight.unwrap_or(if config.lb.config().locality_weighted {
            0
        } else {
            1
        }));
        endpoints = endpoints.with_locality(prio, le);
    }
    LoadBalancer::new(&config.lb, endpoints, seed()).ok()
}

fn seed() -> u64 {
    let mut r = ThreadRng;
    r.next_random()
}

struct ActiveCounts<'a>(&'a [Arc<HostRuntime>]);

impl weft_proxy_lb::ActiveRequests for ActiveCounts<'_> {
    fn active_requests(&self, host: weft_proxy_lb::HostId) -> u64 {
        self.0
            .get(host.index())
            .map_or(0, |h| h.active_requests.load(Ordering::Relaxed))
    }
}

/// A fast per-thread random source (xorshift64*, seeded from the clock and thread).
#[derive(Debug, Clone, Copy)]
pub struct ThreadRng;

thread_local! {
    static RNG_STATE: std::cell::Cell<u64> = std::cell::Cell::new({
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64);
        let id = format!("{:?}", std::thread::current().id());
        t ^ (id.len() as u64).wrapping_mul(0x2545_F491_4F6C_DD1D) | 1
    });
}

impl RandomSource for ThreadRng {
    fn next_random(&mut self) -> u64 {
        RNG_STATE.with(|s| {
            let mut x = s.get();
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            s.set(x);
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        })
    }
}

/// A random integer in `0..100`, for enforcement percentages.
pub fn random_percent() -> u32 {
    u32::try_from(ThreadRng.next_random() % 100).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use weft_proxy_config::model::Thresholds;

    use super::*;

    fn shared(limits: Thresholds) -> Arc<ClusterShared> {
        let config = Cluster {
            circuit_breakers: limits,
            ..crate::upstream::test_cluster()
        };
        ClusterRuntime::new(Arc::new(config), None).shared.clone()
    }

    fn limits(connections: u32, pending: u32, requests: u32, retries: u32) -> Thresholds {
        Thresholds {
            max_connections: connections,
            max_pending_requests: pending,
            max_requests: requests,
            max_retries: retries,
        }
    }

    fn load(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    #[test]
    fn a_request_permit_counts_the_request_and_overflows_as_pending_overflow() {
        let c = shared(limits(10, 10, 1, 3));
        let permit = c.try_acquire_request().unwrap();
        assert_eq!(load(&c.stats.upstream_rq_total), 1);
        assert_eq!(c.stats.upstream_rq_active.load(Ordering::Relaxed), 1);
        assert_eq!(
            c.try_acquire_request().err(),
            Some(UpstreamError::Overflow(Overflow::Requests))
        );
        // Envoy counts max_requests overflows in upstream_rq_pending_overflow, and an
        // overflowed request is no upstream request.
        assert_eq!(load(&c.stats.upstream_rq_pending_overflow), 1);
        assert_eq!(load(&c.stats.upstream_rq_total), 1);
        drop(permit);
        assert_eq!(c.stats.upstream_rq_active.load(Ordering::Relaxed), 0);
        assert!(c.try_acquire_request().is_ok());
    }

    #[test]
    fn a_connection_over_the_limit_still_holds_a_slot_until_released() {
        let c = shared(limits(1, 10, 10, 3));
        assert!(c.try_reserve_connection());
        assert!(!c.try_reserve_connection());
        c.reserve_connection_over_limit();
        assert_eq!(c.stats.upstream_cx_active.load(Ordering::Relaxed), 2);
        c.release_connection();
        // Still at the limit: one connection is left.
        assert!(!c.try_reserve_connection());
        c.release_connection();
        assert!(c.try_reserve_connection());
    }

    #[test]
    fn pending_and_retry_slots_follow_their_limits() {
        let c = shared(limits(10, 1, 10, 1));
        assert!(c.try_reserve_pending());
        assert!(!c.try_reserve_pending());
        assert_eq!(load(&c.stats.upstream_rq_pending_total), 1);
        c.release_pending();
        assert!(c.try_reserve_pending());
        let retry = c.try_acquire_retry().unwrap();
        assert!(c.try_acquire_retry().is_none());
        assert_eq!(load(&c.stats.upstream_rq_retry_overflow), 1);
        drop(retry);
        assert!(c.try_acquire_retry().is_some());
    }

    // EDS updates applied in place: the new assignment decides the picks, as in Envoy, and
    // hosts that stay keep their state.

    fn eds_cluster(locality_weighted: bool, localities: Vec<model::LocalityEndpoints>) -> Cluster {
        Cluster {
            discovery: Discovery::Eds,
            lb: weft_proxy_lb::LbConfig {
                locality_weighted,
                ..weft_proxy_lb::LbConfig::default()
            }
            .validate()
            .unwrap(),
            localities,
            ..crate::upstream::test_cluster()
        }
    }

    fn zone(
        zone: &str,
        priority: u32,
        weight: Option<u32>,
        endpoints: Vec<model::Endpoint>,
    ) -> model::LocalityEndpoints {
        model::LocalityEndpoints {
            locality: model::Locality {
                zone: zone.into(),
                ..model::Locality::default()
            },
            priority,
            weight,
            endpoints,
        }
    }

    fn ep(port: u16) -> model::Endpoint {
        model::Endpoint {
            address: EndpointAddress::Socket(addr(port)),
            weight: 1,
            health: ConfiguredHealth::Healthy,
            hostname: String::new(),
            health_check_port: None,
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    /// Share of `n` picks that went to each port.
    fn shares(rt: &ClusterRuntime, n: usize) -> HashMap<u16, f64> {
        let mut counts: HashMap<u16, usize> = HashMap::new();
        for _ in 0..n {
            let h = rt.pick(None, &[], 1).unwrap();
            *counts.entry(h.address.port()).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|(port, c)| (port, c as f64 / n as f64))
            .collect()
    }

    fn share(shares: &HashMap<u16, f64>, port: u16) -> f64 {
        shares.get(&port).copied().unwrap_or(0.0)
    }

    fn host(rt: &ClusterRuntime, port: u16) -> Arc<HostRuntime> {
        rt.host_set()
            .hosts
            .iter()
            .find(|h| h.address == addr(port))
            .cloned()
            .unwrap()
    }

    fn update(rt: &ClusterRuntime, config: Cluster) {
        let config = Arc::new(config);
        assert!(rt.only_endpoints_differ(&config));
        rt.update_endpoints(&config);
    }

    #[test]
    fn locality_weights_follow_an_endpoint_update() {
        let rt = ClusterRuntime::new(
            Arc::new(eds_cluster(
                true,
                vec![
                    zone("a", 0, Some(1), vec![ep(1)]),
                    zone("b", 0, Some(3), vec![ep(2)]),
                ],
            )),
            None,
        );
        let before = shares(&rt, 4000);
        assert!((share(&before, 1) - 0.25).abs() < 0.05, "{before:?}");

        let swapped = eds_cluster(
            true,
            vec![
                zone("a", 0, Some(3), vec![ep(1)]),
                zone("b", 0, Some(1), vec![ep(2)]),
            ],
        );
        update(&rt, swapped.clone());
        let after = shares(&rt, 4000);
        assert!((share(&after, 1) - 0.75).abs() < 0.05, "{after:?}");
        // Whoever reads the configuration sees the assignment in force.
        assert_eq!(rt.shared.config().localities, swapped.localities);
    }

    #[test]
    fn a_locality_new_in_an_update_takes_its_weight() {
        let rt = ClusterRuntime::new(
            Arc::new(eds_cluster(true, vec![zone("a", 0, Some(1), vec![ep(1)])])),
            None,
        );
        update(
            &rt,
            eds_cluster(
                true,
                vec![
                    zone("a", 0, Some(1), vec![ep(1)]),
                    zone("b", 0, Some(1), vec![ep(2)]),
                ],
            ),
        );
        let after = shares(&rt, 2000);
        assert!((share(&after, 2) - 0.5).abs() < 0.05, "{after:?}");
    }

    #[test]
    fn an_endpoint_health_change_applies_to_a_host_that_stays() {
        let four = |health_of_1| {
            eds_cluster(
                false,
                vec![zone(
                    "a",
                    0,
                    None,
                    vec![
                        model::Endpoint {
                            health: health_of_1,
                            ..ep(1)
                        },
                        ep(2),
                        ep(3),
                        ep(4),
                    ],
                )],
            )
        };
        let rt = ClusterRuntime::new(Arc::new(four(ConfiguredHealth::Healthy)), None);
        assert!(share(&shares(&rt, 100), 1) > 0.2);
        let before = host(&rt, 1);
        before.outlier.lock().consecutive_5xx = 2;

        // UNHEALTHY, DRAINING and TIMEOUT all arrive as Unhealthy; DEGRADED hosts are used
        // only when the healthy ones are not enough (three of four are, overprovisioned).
        for health in [ConfiguredHealth::Unhealthy, ConfiguredHealth::Degraded] {
            update(&rt, four(health));
            assert_eq!(share(&shares(&rt, 100), 1), 0.0, "{health:?}");
            let h = host(&rt, 1);
            assert_eq!(h.configured_health(), health);
            assert!(Arc::ptr_eq(&h, &before), "the host stays");
            assert_eq!(h.outlier.lock().consecutive_5xx, 2);
        }
        assert_eq!(host(&rt, 1).health_flags_text(), "/degraded_eds_health");
        update(&rt, four(ConfiguredHealth::Healthy));
        assert!(share(&shares(&rt, 100), 1) > 0.2);
        assert_eq!(
            rt.shared.stats.membership_healthy.load(Ordering::Relaxed),
            4
        );
    }

    #[test]
    fn a_host_that_stays_takes_its_new_weight_priority_and_hostname_and_keeps_its_state() {
        let rt = ClusterRuntime::new(
            Arc::new(eds_cluster(
                false,
                vec![zone("a", 0, None, vec![ep(1), ep(2)])],
            )),
            None,
        );
        let before = host(&rt, 1);
        before.outlier.lock().consecutive_5xx = 3;
        before
            .flags
            .fetch_or(health_flags::OUTLIER_EJECTED, Ordering::Relaxed);
        before.active_requests.fetch_add(1, Ordering::Relaxed);

        // Weight 3 and a new hostname.
        update(
            &rt,
            eds_cluster(
                false,
                vec![zone(
                    "a",
                    0,
                    None,
                    vec![
                        model::Endpoint {
                            weight: 3,
                            hostname: "one.example".into(),
                            ..ep(1)
                        },
                        ep(2),
                    ],
                )],
            ),
        );
        let h = host(&rt, 1);
        assert!(Arc::ptr_eq(&h, &before), "the same host, state and all");
        assert_eq!((h.weight(), &*h.hostname()), (3, "one.example"));
        assert_eq!(h.outlier.lock().consecutive_5xx, 3);
        assert_eq!(h.active_requests.load(Ordering::Relaxed), 1);
        assert_eq!(h.health_flags_text(), "/failed_outlier_check");
        h.flags.store(0, Ordering::Relaxed);
        rt.health_changed();
        let split = shares(&rt, 4000);
        assert!((share(&split, 1) - 0.75).abs() < 0.05, "{split:?}");

        // Priority 1: priority 0 keeps the other host, which takes every pick.
        update(
            &rt,
            eds_cluster(
                false,
                vec![
                    zone("a", 0, None, vec![ep(2)]),
                    zone("a", 1, None, vec![ep(1)]),
                ],
            ),
        );
        let h = host(&rt, 1);
        assert!(Arc::ptr_eq(&h, &before));
        assert_eq!((h.priority(), h.weight()), (1, 1));
        assert_eq!(h.outlier.lock().consecutive_5xx, 3);
        assert_eq!(share(&shares(&rt, 100), 2), 1.0);
    }

    #[test]
    fn a_host_moving_to_another_locality_is_a_new_host_there() {
        let rt = ClusterRuntime::new(
            Arc::new(eds_cluster(
                true,
                vec![
                    zone("a", 0, Some(1), vec![ep(1), ep(2)]),
                    zone("b", 0, Some(3), vec![ep(3)]),
                ],
            )),
            None,
        );
        let before = host(&rt, 1);
        before.outlier.lock().consecutive_5xx = 3;
        update(
            &rt,
            eds_cluster(
                true,
                vec![
                    zone("a", 0, Some(1), vec![ep(2)]),
                    zone("b", 0, Some(3), vec![ep(3)]),
                    zone("c", 0, Some(4), vec![ep(1)]),
                ],
            ),
        );
        // Envoy replaces a host whose locality changed: its state starts afresh.
        let h = host(&rt, 1);
        assert!(!Arc::ptr_eq(&h, &before));
        assert_eq!(h.locality.zone, "c");
        assert_eq!(h.outlier.lock().consecutive_5xx, 0);
        let split = shares(&rt, 4000);
        assert!((share(&split, 1) - 0.5).abs() < 0.05, "{split:?}");
    }

    #[test]
    fn a_host_with_a_new_health_check_port_is_a_new_host_under_health_checking() {
        let check = model::HealthCheck {
            timeout: std::time::Duration::from_secs(1),
            interval: std::time::Duration::from_secs(1),
            unhealthy_threshold: 1,
            healthy_threshold: 1,
            kind: model::HealthCheckKind::Tcp {
                send: vec![],
                receive: vec![],
            },
        };
        let with_port = |port| Cluster {
            health_checks: vec![check.clone()],
            ..eds_cluster(
                false,
                vec![zone(
                    "a",
                    0,
                    None,
                    vec![model::Endpoint {
                        health_check_port: port,
                        ..ep(1)
                    }],
                )],
            )
        };
        let rt = ClusterRuntime::new(Arc::new(with_port(None)), None);
        let before = host(&rt, 1);
        update(&rt, with_port(Some(9)));
        let h = host(&rt, 1);
        assert!(!Arc::ptr_eq(&h, &before));
        assert_eq!(h.health_check_address(), addr(9));
        // A new host under active health checking waits for its first check.
        assert_eq!(h.health_flags_text(), "/failed_active_hc");
        // Without health checking the port does not matter.
        let rt = ClusterRuntime::new(
            Arc::new(Cluster {
                health_checks: vec![],
                ..with_port(None)
            }),
            None,
        );
        let before = host(&rt, 1);
        update(
            &rt,
            Cluster {
                health_checks: vec![],
                ..with_port(Some(9))
            },
        );
        assert!(Arc::ptr_eq(&host(&rt, 1), &before));
    }
}
