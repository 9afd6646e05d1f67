//! The load balancer: built once per membership or health change, then shared by every worker.

use crate::config::{LbPolicy, SelectionMethod, ValidLbConfig};
use crate::error::Error;
use crate::hashing::{HashTable, NormalizedWeights};
use crate::host::{Endpoints, Host, HostId};
use crate::maglev::Maglev;
use crate::priority::{self, Availability, LevelCounts, PriorityLoad, PriorityState};
use crate::ring_hash::Ring;
use crate::schedule::{DynamicEdf, StaticSchedule};

/// A source of uniformly distributed 64-bit values (Envoy's `Random::RandomGenerator`). Each
/// worker passes its own, so the balancer holds no RNG state. Any `FnMut() -> u64` is one (wrap a
/// `rand` generator as `|| rng.next_u64()`); [`SplitMix64`] is a small seedable one.
pub trait RandomSource {
    /// The next random value.
    fn next_random(&mut self) -> u64;
}

impl<F: FnMut() -> u64> RandomSource for F {
    fn next_random(&mut self) -> u64 {
        self()
    }
}

/// SplitMix64 (Steele, Lea and Flood): a tiny, fast, seedable generator, good enough for load
/// balancing and deterministic in tests. Not for anything security-related.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
}

impl RandomSource for SplitMix64 {
    fn next_random(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Per-host load for LEAST_REQUEST: active requests (Envoy's `rq_active`, plus `rq_pending_active`
/// since `least_request_lb_count_pending_requests`). Any `Fn(HostId) -> u64` is one.
pub trait ActiveRequests {
    /// Requests in flight to `host`.
    fn active_requests(&self, host: HostId) -> u64;
}

impl<F: Fn(HostId) -> u64> ActiveRequests for F {
    fn active_requests(&self, host: HostId) -> u64 {
        self(host)
    }
}

/// What the router knows about one host selection (Envoy's `LoadBalancerContext`).
#[derive(Clone, Copy)]
pub struct PickContext<'a> {
    /// The request hash computed from the route's hash policies, for RING_HASH and MAGLEV. `None`
    /// makes them pick a random point, as Envoy does.
    pub hash: Option<u64>,
    /// Hosts already tried by earlier attempts of this request (the `previous_hosts` retry
    /// predicate). A pick that lands on one of them is redone.
    pub previous_hosts: &'a [HostId],
    /// `host_selection_retry_max_attempts`: how many times a rejected pick is redone (default 1).
    /// When all are rejected the last pick is returned anyway, as in Envoy.
    pub host_selection_retry_max_attempts: u32,
    /// Load per host for LEAST_REQUEST; `None` reads as zero everywhere.
    pub active_requests: Option<&'a dyn ActiveRequests>,
    /// The priority load to pick with instead of the balancer's own (Envoy's
    /// `determinePriorityLoad`, e.g. from [`PreviousPriorities`](crate::PreviousPriorities) on a
    /// retry). Only balancers that draw the priority at random use it; RING_HASH and MAGLEV pick
    /// it from the hash, as in Envoy.
    pub priority_load: Option<&'a PriorityLoad>,
}

impl std::fmt::Debug for PickContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PickContext")
            .field("hash", &self.hash)
            .field("previous_hosts", &self.previous_hosts)
            .field(
                "host_selection_retry_max_attempts",
                &self.host_selection_retry_max_attempts,
            )
            .field("active_requests", &self.active_requests.is_some())
            .field("priority_load", &self.priority_load)
            .finish()
    }
}

impl Default for PickContext<'_> {
    fn default() -> Self {
        Self {
            hash: None,
            previous_hosts: &[],
            host_selection_retry_max_attempts: 1,
            active_requests: None,
            priority_load: None,
        }
    }
}

impl<'a> PickContext<'a> {
    /// An empty context: no hash, no previous hosts, no load information.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the request hash.
    #[must_use]
    pub fn with_hash(mut self, hash: u64) -> Self {
        self.hash = Some(hash);
        self
    }

    /// Sets the hosts to avoid and how many times to redo a pick that hits one.
    #[must_use]
    pub fn with_previous_hosts(mut self, hosts: &'a [HostId], max_attempts: u32) -> Self {
        self.previous_hosts = hosts;
        self.host_selection_retry_max_attempts = max_attempts;
        self
    }

    /// Sets the load source for LEAST_REQUEST.
    #[must_use]
    pub fn with_active_requests(mut self, active: &'a dyn ActiveRequests) -> Self {
        self.active_requests = Some(active);
        self
    }

    /// Picks with this priority load instead of the balancer's.
    #[must_use]
    pub fn with_priority_load(mut self, load: &'a PriorityLoad) -> Self {
        self.priority_load = Some(load);
        self
    }

    fn rejects(&self, host: u32) -> bool {
        self.previous_hosts.contains(&HostId(host))
    }

    fn max_attempts(&self) -> u32 {
        if self.previous_hosts.is_empty() {
            1
        } else {
            self.host_selection_retry_max_attempts.saturating_add(1)
        }
    }

    fn active(&self, host: u32) -> u64 {
        self.active_requests
            .map_or(0, |a| a.active_requests(HostId(host)))
    }
}

/// A chosen host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Picked<'a, H> {
    /// Its index in this balancer (pass it back in [`PickContext::previous_hosts`] on retry).
    pub id: HostId,
    /// The host.
    pub host: &'a Host<H>,
}

/// A load balancer over one cluster's endpoints. Building allocates; [`LoadBalancer::choose`]
/// does not, takes `&self`, and is safe to call from many threads at once.
#[derive(Debug)]
pub struct LoadBalancer<H> {
    hosts: Vec<Host<H>>,
    kind: Kind,
    priority: PriorityState,
    levels: Vec<Level>,
    locality_weighted: bool,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    RoundRobin,
    LeastRequest {
        choice_count: u32,
        bias: f64,
        full_scan: bool,
    },
    Random,
    Hash,
}

/// The hosts one pick draws from (Envoy's `HostsSource`) and how it picks among them.
#[derive(Debug, Default)]
struct Source {
    hosts: Vec<u32>,
    picker: Picker,
}

#[derive(Debug, Default)]
enum Picker {
    /// Index arithmetic only (RANDOM, least-request P2C).
    #[default]
    Plain,
    /// Round robin: one period of the EDF schedule (the identity when weights are equal).
    Schedule(StaticSchedule),
    /// Least request with unequal weights: EDF with load-scaled weights.
    Edf(DynamicEdf),
}

#[derive(Debug, Default)]
struct LocalitySchedule {
    schedule: Option<StaticSchedule>,
    /// Schedule entry → locality index (localities of zero effective weight are left out).
    localities: Vec<u32>,
}

impl LocalitySchedule {
    fn choose(&self) -> Option<usize> {
        let entry = self.schedule.as_ref()?.next()?;
        self.localities.get(entry as usize).map(|&l| l as usize)
    }
}

#[derive(Debug, Default)]
struct Level {
    all: Source,
    healthy: Source,
    degraded: Source,
    healthy_by_locality: Vec<Source>,
    degraded_by_locality: Vec<Source>,
    healthy_localities: LocalitySchedule,
    degraded_localities: LocalitySchedule,
    table: Option<HashTable>,
}

/// A level's hosts split the ways the balancer needs them (indices into `LoadBalancer::hosts`).
struct LevelHosts {
    all: Vec<u32>,
    healthy: Vec<u32>,
    degraded: Vec<u32>,
    /// Per locality: (weight, all, healthy, degraded, excluded count).
    localities: Vec<LocalityHosts>,
}

struct LocalityHosts {
    weight: u32,
    all: Vec<u32>,
    healthy: Vec<u32>,
    degraded: Vec<u32>,
    excluded: u64,
}

impl<H> LoadBalancer<H> {
    /// Builds a balancer. `seed` is Envoy's per-balancer random seed: where round robin and the EDF
    /// schedules start, so that proxies built at the same moment do not pick in lockstep.
    pub fn new(config: &ValidLbConfig, endpoints: Endpoints<H>, seed: u64) -> Result<Self, Error> {
        let cfg = config.config();
        let mut hosts = Vec::new();
        let mut split = Vec::with_capacity(endpoints.priorities.len());
        let mut counts = Vec::with_capacity(endpoints.priorities.len());
        for (p, localities) in endpoints.priorities.into_iter().enumerate() {
            let priority = p as u32;
            let mut level = LevelHosts {
                all: Vec::new(),
                healthy: Vec::new(),
                degraded: Vec::new(),
                localities: Vec::with_capacity(localities.len()),
            };
            let mut c = LevelCounts::default();
            let mut locality_weight_sum = 0u64;
            for locality in localities {
                locality_weight_sum += u64::from(locality.weight);
                let mut lh = LocalityHosts {
                    weight: locality.weight,
                    all: Vec::new(),
                    healthy: Vec::new(),
                    degraded: Vec::new(),
                    excluded: 0,
                };
                for host in locality.hosts {
                    if host.weight == 0 {
                        return Err(Error::ZeroHostWeight {
                            address: host.address,
                            priority,
                        });
                    }
                    let id =
                        u32::try_from(hosts.len()).map_err(|_| Error::TooManyHosts(hosts.len()))?;
                    let w = u64::from(host.weight);
                    c.hosts += 1;
                    c.hosts_weight += w;
                    lh.all.push(id);
                    if host.excluded {
                        c.excluded += 1;
                        c.excluded_weight += w;
                        lh.excluded += 1;
                    } else if host.is_healthy() {
                        c.healthy += 1;
                        c.healthy_weight += w;
                        lh.healthy.push(id);
                    } else if host.is_degraded() {
                        c.degraded += 1;
                        c.degraded_weight += w;
                        lh.degraded.push(id);
                    }
                    hosts.push(host);
                }
                level.all.extend_from_slice(&lh.all);
                level.healthy.extend_from_slice(&lh.healthy);
                level.degraded.extend_from_slice(&lh.degraded);
                level.localities.push(lh);
            }
            if c.hosts_weight > u64::from(u32::MAX) {
                return Err(Error::PriorityWeightOverflow(priority));
            }
            if locality_weight_sum > u64::from(u32::MAX) {
                return Err(Error::LocalityWeightOverflow(priority));
            }
            split.push(level);
            counts.push(c);
        }

        let priority = priority::compute(
            &counts,
            cfg.overprovisioning_factor,
            config.panic_threshold_percent(),
            cfg.weighted_priority_health,
        );
        let kind = match &cfg.policy {
            LbPolicy::RoundRobin => Kind::RoundRobin,
            LbPolicy::Random => Kind::Random,
            LbPolicy::LeastRequest(lr) => Kind::LeastRequest {
                choice_count: lr.choice_count,
                bias: lr.effective_bias(),
                full_scan: lr.selection_method == SelectionMethod::FullScan,
            },
            LbPolicy::RingHash(_) | LbPolicy::Maglev(_) => Kind::Hash,
        };

        let mut lb = Self {
            hosts,
            kind,
            priority,
            levels: Vec::with_capacity(split.len()),
            locality_weighted: cfg.locality_weighted,
        };
        for (p, level_hosts) in split.iter().enumerate() {
            let in_panic = lb.priority.panic.get(p).copied().unwrap_or(false);
            let level = match &cfg.policy {
                LbPolicy::RingHash(ring) => Level {
                    table: Some(HashTable::Ring(Ring::build(
                        &lb.normalized_weights(level_hosts, in_panic),
                        ring.minimum_ring_size,
                        ring.maximum_ring_size,
                    ))),
                    ..Level::default()
                },
                LbPolicy::Maglev(maglev) => Level {
                    table: Some(HashTable::Maglev(Maglev::build(
                        &lb.normalized_weights(level_hosts, in_panic),
                        maglev.table_size,
                    ))),
                    ..Level::default()
                },
                _ => lb.build_level(
                    level_hosts,
                    cfg.overprovisioning_factor,
                    cfg_forces_weighted(config),
                    seed,
                ),
            };
            lb.levels.push(level);
        }
        Ok(lb)
    }

    /// Picks a host, or `None` when the chosen priority has nothing to offer (no hosts, or panic
    /// disabled with no healthy hosts). Never allocates, never blocks except for LEAST_REQUEST with
    /// unequal weights (a short mutex around the EDF queue).
    pub fn choose<R: RandomSource + ?Sized>(
        &self,
        ctx: &PickContext<'_>,
        rng: &mut R,
    ) -> Option<Picked<'_, H>> {
        let id = match self.kind {
            Kind::Hash => self.choose_hashed(ctx, rng),
            _ => {
                let mut last = None;
                for _ in 0..ctx.max_attempts() {
                    let host = self.choose_once(ctx, rng)?;
                    last = Some(host);
                    if !ctx.rejects(host) {
                        break;
                    }
                }
                last
            }
        }?;
        self.hosts.get(id as usize).map(|host| Picked {
            id: HostId(id),
            host,
        })
    }

    /// The host with this id.
    pub fn host(&self, id: HostId) -> Option<&Host<H>> {
        self.hosts.get(id.index())
    }

    /// Every host with its id, in input order.
    pub fn hosts(&self) -> impl ExactSizeIterator<Item = (HostId, &Host<H>)> {
        self.hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (HostId(i as u32), h))
    }

    /// The traffic split across priorities.
    pub fn priority_load(&self) -> &PriorityLoad {
        &self.priority.load
    }

    /// Per-level healthy and degraded availability in percent (Envoy's `per_priority_health_`
    /// and `per_priority_degraded_`), before load distribution and panic.
    pub(crate) fn availability(&self) -> (&[u32], &[u32]) {
        (&self.priority.health, &self.priority.degraded)
    }

    /// Whether `priority` is in panic mode (balancing over all its hosts regardless of health).
    pub fn in_panic(&self, priority: u32) -> bool {
        self.priority
            .panic
            .get(priority as usize)
            .copied()
            .unwrap_or(false)
    }

    /// Number of hosts across all priorities.
    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// Whether there are no hosts at all.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    fn choose_hashed<R: RandomSource + ?Sized>(
        &self,
        ctx: &PickContext<'_>,
        rng: &mut R,
    ) -> Option<u32> {
        let hash = ctx.hash.unwrap_or_else(|| rng.next_random());
        let (p, _) = priority::choose_priority(&self.priority.load, hash);
        let table = self.levels.get(p)?.table.as_ref()?;
        let mut last = None;
        for attempt in 0..ctx.max_attempts() {
            let host = table.choose(hash, attempt)?;
            last = Some(host);
            if !ctx.rejects(host) {
                break;
            }
        }
        last
    }

    fn choose_once<R: RandomSource + ?Sized>(
        &self,
        ctx: &PickContext<'_>,
        rng: &mut R,
    ) -> Option<u32> {
        let random = rng.next_random();
        let load = ctx.priority_load.unwrap_or(&self.priority.load);
        let (p, availability) = priority::choose_priority(load, random);
        let level = self.levels.get(p)?;
        let source = self.source_to_use(level, p, availability);
        let n = source.hosts.len() as u64;
        if n == 0 {
            return None;
        }
        let at = |i: u64| source.hosts.get(i as usize).copied();
        match (&source.picker, self.kind) {
            (Picker::Schedule(schedule), _) => at(u64::from(schedule.next()?)),
            (Picker::Edf(edf), Kind::LeastRequest { bias, .. }) => {
                let index = edf.pick(|i| {
                    at(u64::from(i)).map_or(0.0, |h| self.load_scaled_weight(ctx, h, bias))
                })?;
                at(u64::from(index))
            }
            (_, Kind::Random) => at(random % n),
            (
                _,
                Kind::LeastRequest {
                    choice_count,
                    full_scan,
                    ..
                },
            ) => {
                if full_scan {
                    least_loaded_full_scan(&source.hosts, ctx, rng)
                } else {
                    least_loaded_of_n(&source.hosts, choice_count, ctx, rng)
                }
            }
            // Round robin always has a schedule; hash policies never get here.
            _ => None,
        }
    }

    /// Envoy's `hostSourceToUse`: all hosts in panic, else a locality (when locality weighting is
    /// on and a locality scheduler exists), else the healthy or degraded hosts.
    fn source_to_use<'s>(
        &self,
        level: &'s Level,
        p: usize,
        availability: Availability,
    ) -> &'s Source {
        if self.priority.panic.get(p).copied().unwrap_or(false) {
            return &level.all;
        }
        let (by_locality, schedule, flat) = match availability {
            Availability::Healthy => (
                &level.healthy_by_locality,
                &level.healthy_localities,
                &level.healthy,
            ),
            Availability::Degraded => (
                &level.degraded_by_locality,
                &level.degraded_localities,
                &level.degraded,
            ),
        };
        if self.locality_weighted
            && let Some(source) = schedule.choose().and_then(|l| by_locality.get(l))
        {
            return source;
        }
        flat
    }

    /// `weight / (active + 1)^bias` (Envoy's `LeastRequestLoadBalancer::hostWeight`).
    fn load_scaled_weight(&self, ctx: &PickContext<'_>, host: u32, bias: f64) -> f64 {
        let weight = self
            .hosts
            .get(host as usize)
            .map_or(1.0, |h| f64::from(h.weight));
        let active = ctx.active(host);
        let denominator = if active == u64::MAX {
            active
        } else {
            active + 1
        } as f64;
        if bias == 1.0 {
            weight / denominator
        } else if bias == 0.0 {
            weight
        } else {
            weight / denominator.powf(bias)
        }
    }

    fn build_level(&self, hosts: &LevelHosts, opf: u32, forces_weighted: bool, seed: u64) -> Level {
        let source = |ids: &[u32]| self.build_source(ids, forces_weighted, seed);
        let mut level = Level {
            all: source(&hosts.all),
            healthy: source(&hosts.healthy),
            degraded: source(&hosts.degraded),
            ..Level::default()
        };
        if self.locality_weighted {
            level.healthy_by_locality = hosts
                .localities
                .iter()
                .map(|l| source(&l.healthy))
                .collect();
            level.degraded_by_locality = hosts
                .localities
                .iter()
                .map(|l| source(&l.degraded))
                .collect();
            level.healthy_localities = locality_schedule(
                hosts,
                opf,
                |l| l.healthy.len(),
                hosts.healthy.is_empty(),
                seed,
            );
            level.degraded_localities = locality_schedule(
                hosts,
                opf,
                |l| l.degraded.len(),
                hosts.degraded.is_empty(),
                seed,
            );
        }
        level
    }

    fn build_source(&self, ids: &[u32], forces_weighted: bool, seed: u64) -> Source {
        let weights: Vec<u64> = ids
            .iter()
            .map(|&i| {
                self.hosts
                    .get(i as usize)
                    .map_or(1, |h| u64::from(h.weight))
            })
            .collect();
        let unequal = weights.windows(2).any(|w| w[0] != w[1]);
        let picker = match self.kind {
            Kind::RoundRobin => Picker::Schedule(StaticSchedule::new(&weights, seed)),
            Kind::LeastRequest { .. } if (unequal || forces_weighted) && ids.len() > 1 => {
                let initial: Vec<f64> = weights.iter().map(|&w| w as f64).collect();
                Picker::Edf(DynamicEdf::with_picks(&initial, seed))
            }
            _ => Picker::Plain,
        };
        Source {
            hosts: ids.to_vec(),
            picker,
        }
    }

    /// Envoy's `normalizeWeights` for hash tables: the healthy hosts (all hosts in panic), flat or
    /// spread by raw locality weight. Degraded hosts never enter the table (as in Envoy).
    fn normalized_weights<'s>(
        &'s self,
        hosts: &LevelHosts,
        in_panic: bool,
    ) -> NormalizedWeights<'s> {
        let entry = |&i: &u32| {
            let h = self.hosts.get(i as usize);
            (
                i,
                h.map_or("", |h| h.address.as_str()),
                h.map_or(1, |h| h.weight),
            )
        };
        let mut weights = NormalizedWeights::new();
        let pick = |all: &[u32], healthy: &[u32]| -> Vec<(u32, &'s str, u32)> {
            if in_panic { all } else { healthy }
                .iter()
                .map(entry)
                .collect()
        };
        if self.locality_weighted {
            let sum: u64 = hosts.localities.iter().map(|l| u64::from(l.weight)).sum();
            if sum == 0 {
                return weights;
            }
            for locality in hosts.localities.iter().filter(|l| l.weight != 0) {
                weights.add_hosts(
                    &pick(&locality.all, &locality.healthy),
                    f64::from(locality.weight) / sum as f64,
                );
            }
        } else {
            weights.add_hosts(&pick(&hosts.all, &hosts.healthy), 1.0);
        }
        weights
    }
}

fn cfg_forces_weighted(config: &ValidLbConfig) -> bool {
    matches!(&config.config().policy, LbPolicy::LeastRequest(lr) if lr.active_request_bias.is_some())
}

/// Envoy's `LocalityWrr::rebuildLocalityScheduler`: effective weight = locality weight ×
/// min(1, OPF × eligible / (hosts − excluded)); localities of zero effective weight are skipped;
/// no scheduler when the priority has no eligible host or every effective weight is zero.
fn locality_schedule(
    hosts: &LevelHosts,
    opf: u32,
    eligible: impl Fn(&LocalityHosts) -> usize,
    none_eligible: bool,
    seed: u64,
) -> LocalitySchedule {
    if none_eligible {
        return LocalitySchedule::default();
    }
    let mut localities = Vec::new();
    let mut weights = Vec::new();
    for (i, l) in hosts.localities.iter().enumerate() {
        let weight = effective_locality_weight(
            l.weight,
            eligible(l) as u64,
            l.all.len() as u64 - l.excluded,
            opf,
        );
        if weight > 0 {
            localities.push(i as u32);
            weights.push(weight);
        }
    }
    if weights.is_empty() {
        return LocalitySchedule::default();
    }
    LocalitySchedule {
        schedule: Some(StaticSchedule::new(&weights, seed)),
        localities,
    }
}

/// Precision of effective locality weights: Envoy's double `weight × min(1, opf/100 × ratio)`
/// in units of 1/10000 of a locality weight, so the integer schedule can be exact.
const LOCALITY_WEIGHT_SCALE: u128 = 10_000;

pub(crate) fn effective_locality_weight(
    weight: u32,
    eligible: u64,
    host_count: u64,
    opf: u32,
) -> u64 {
    if host_count == 0 {
        return 0;
    }
    let denominator = 100 * u128::from(host_count);
    let availability = (u128::from(opf) * u128::from(eligible)).min(denominator);
    (u128::from(weight) * availability * LOCALITY_WEIGHT_SCALE / denominator) as u64
}

/// Envoy's `unweightedHostPickNChoices`: sample `choice_count` hosts (with replacement) and keep
/// the first one strictly less loaded than the candidate.
fn least_loaded_of_n<R: RandomSource + ?Sized>(
    hosts: &[u32],
    choice_count: u32,
    ctx: &PickContext<'_>,
    rng: &mut R,
) -> Option<u32> {
    let n = hosts.len() as u64;
    let mut candidate: Option<(u32, u64)> = None;
    for _ in 0..choice_count {
        let host = hosts.get((rng.next_random() % n) as usize).copied()?;
        match candidate {
            None => candidate = Some((host, ctx.active(host))),
            Some((_, best)) => {
                let active = ctx.active(host);
                if active < best {
                    candidate = Some((host, active));
                }
            }
        }
    }
    candidate.map(|(h, _)| h)
}

/// Envoy's `unweightedHostPickFullScan`: the least loaded host, ties broken uniformly by
/// reservoir sampling.
fn least_loaded_full_scan<R: RandomSource + ?Sized>(
    hosts: &[u32],
    ctx: &PickContext<'_>,
    rng: &mut R,
) -> Option<u32> {
    let mut candidate: Option<(u32, u64)> = None;
    let mut tied = 0u64;
    for &host in hosts {
        let active = ctx.active(host);
        match candidate {
            None => {
                candidate = Some((host, active));
                tied = 1;
            }
            Some((_, best)) if active < best => {
                candidate = Some((host, active));
                tied = 1;
            }
            Some((_, best)) if active == best => {
                tied += 1;
                if rng.next_random().is_multiple_of(tied) {
                    candidate = Some((host, active));
                }
            }
            Some(_) => {}
        }
    }
    candidate.map(|(h, _)| h)
}

#[cfg(test)]
mod tests;
