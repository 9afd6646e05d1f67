//! A cluster at run time: its settings, circuit breakers, stats, hosts and load balancer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use weft_proxy_config::model::{self, Cluster, ConfiguredHealth, Discovery, EndpointAddress};
use weft_proxy_lb::{
    Endpoints, Health, Host, LbPolicy, LoadBalancer, Locality, LocalityEndpoints, PickContext,
    PreviousPriorities, RandomSource,
};

use super::pool::HostPool;
use super::stats::{ClusterStats, inc};
use crate::error::{Overflow, UpstreamError};

/// The parts of a cluster every connection and request needs.
#[derive(Debug)]
pub struct ClusterShared {
    /// Settings.
    pub config: Arc<Cluster>,
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
    /// Takes a connection slot if under `max_connections`.
    pub fn try_reserve_connection(&self) -> bool {
        let ok = try_reserve(
            &self.connections,
            self.config.circuit_breakers.max_connections,
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
            self.config.circuit_breakers.max_pending_requests,
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
        if try_reserve(&self.requests, self.config.circuit_breakers.max_requests) {
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
        if try_reserve(&self.retries, self.config.circuit_breakers.max_retries) {
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

/// One upstream host at run time.
#[derive(Debug)]
pub struct HostRuntime {
    /// Address.
    pub address: SocketAddr,
    /// `hostname` from config (for `auto_host_rewrite`).
    pub hostname: String,
    /// Locality.
    pub locality: model::Locality,
    /// Priority.
    pub priority: u32,
    /// Weight.
    pub weight: u32,
    /// Configured health.
    pub configured_health: ConfiguredHealth,
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

impl HostRuntime {
    /// Health as the load balancer sees it.
    pub fn health(&self) -> Health {
        if self.flags.load(Ordering::Relaxed) != 0 {
            return Health::Unhealthy;
        }
        match self.configured_health {
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
        match self.configured_health {
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

/// The hosts of a cluster and the balancer over them; replaced whole on any change.
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
    hosts: ArcSwap<HostSet>,
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
        let shared = Arc::new(ClusterShared {
            config,
            stats: ClusterStats::default(),
            tls,
            connections: AtomicU32::new(0),
            pending: AtomicU32::new(0),
            requests: AtomicU32::new(0),
            retries: AtomicU32::new(0),
        });
        let rt = Arc::new(Self {
            shared,
            hosts: ArcSwap::from_pointee(HostSet {
                hosts: Vec::new(),
                lb: None,
            }),
            original_dst: Mutex::new(HashMap::new()),
            tls_watcher: Mutex::new(None),
        });
        // EDS endpoints arrive in the configuration (the xDS client puts each assignment into
        // its cluster), as IP addresses like a static cluster's.
        if matches!(
            rt.shared.config.discovery,
            Discovery::Static | Discovery::Eds
        ) {
            let static_hosts = rt.static_hosts();
            rt.replace_hosts(static_hosts);
        }
        rt
    }

    /// Keeps `watcher` (certificate rotation) running for the cluster's lifetime.
    pub fn keep(&self, watcher: crate::tls::TlsWatcher) {
        *self.tls_watcher.lock() = Some(watcher);
    }

    /// The cluster's name.
    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    fn static_hosts(&self) -> Vec<HostSpec> {
        hosts_of(&self.shared.config)
    }

    /// An EDS update: `config` is this cluster's configuration with new endpoints (and
    /// nothing else changed). Hosts that stay keep their pools, health and outlier state.
    pub fn update_endpoints(&self, config: &Cluster) {
        self.replace_hosts(hosts_of(config));
    }

    /// Whether `new` differs from this cluster's configuration only in its endpoints, so an
    /// EDS update can be applied in place with [`ClusterRuntime::update_endpoints`].
    pub fn only_endpoints_differ(&self, new: &Cluster) -> bool {
        let old = &*self.shared.config;
        old.discovery == Discovery::Eds
            && new.discovery == Discovery::Eds
            && Cluster {
                localities: Vec::new(),
                ..old.clone()
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
        for loc in &self.shared.config.localities {
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
        let logical = self.shared.config.discovery == Discovery::LogicalDns;
        let mut specs = Vec::new();
        let mut i = 0;
        for loc in &self.shared.config.localities {
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
            self.replace_hosts(specs);
        }
    }

    /// Installs a new host list, keeping the run-time state (pools, health) of hosts that stay.
    fn replace_hosts(&self, specs: Vec<HostSpec>) {
        let old = self.hosts.load();
        let mut by_addr: HashMap<SocketAddr, &Arc<HostRuntime>> =
            old.hosts.iter().map(|h| (h.address, h)).collect();
        let hosts: Vec<Arc<HostRuntime>> = specs
            .into_iter()
            .map(|s| match by_addr.remove(&s.address) {
                Some(h)
                    if h.weight == s.weight
                        && h.priority == s.priority
                        && h.locality == s.locality =>
                {
                    h.clone()
                }
                Some(h) => Arc::new(HostRuntime {
                    pool: h.pool.clone(),
                    flags: AtomicU8::new(h.flags.load(Ordering::Relaxed)),
                    ..s.into_runtime(&self.shared)
                }),
                None => Arc::new(s.into_runtime(&self.shared)),
            })
            .collect();
        inc(&self.shared.stats.membership_change);
        self.install(hosts);
    }

    /// Rebuilds the balancer after a health change (health checks, outlier detection).
    pub fn health_changed(&self) {
        let hosts = self.hosts.load().hosts.clone();
        self.install(hosts);
    }

    fn install(&self, hosts: Vec<Arc<HostRuntime>>) {
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
        let lb = build_lb(&self.shared.config, &hosts);
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
        !matches!(self.shared.config.discovery, Discovery::OriginalDst)
            && matches!(
                self.shared.config.lb.config().policy,
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
                    hostname: String::new(),
                    locality: model::Locality::default(),
                    priority: 0,
                    weight: 1,
                    configured_health: ConfiguredHealth::Healthy,
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
            hostname: ep.hostname.clone(),
            locality: loc.locality.clone(),
            priority: loc.priority,
            weight: ep.weight.max(1),
            health: ep.health,
        }
    }

    fn into_runtime(self, shared: &Arc<ClusterShared>) -> HostRuntime {
        HostRuntime {
            address: self.address,
            hostname: self.hostname,
            locality: self.locality,
            priority: self.priority,
            weight: self.weight,
            configured_health: self.health,
            flags: AtomicU8::new(0),
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
        let key = (h.priority, h.locality.clone());
        let host = Host::new(i, h.address.to_string())
            .with_weight(h.weight)
            .with_health(h.health());
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, list, _)) => list.push(host),
            None => {
                let w = locality_weight(&h.locality, h.priority);
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
}
