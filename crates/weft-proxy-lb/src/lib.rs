//! Upstream load balancing for the weft proxy, behaving like Envoy 1.40 for the same cluster
//! configuration. Pure: no IO, no clocks, no global RNG — the caller passes randomness
//! ([`RandomSource`]), request hashes and per-host load ([`ActiveRequests`]) into each pick.
//!
//! # Shape
//!
//! - Validate configuration once: [`LbConfig::validate`] → [`ValidLbConfig`] (ring sizes, Maglev
//!   table primality, panic threshold, overprovisioning factor, `choice_count`).
//! - Build a [`LoadBalancer`] from [`Endpoints`] (hosts grouped by priority and locality) whenever
//!   membership, weights or health change. Building allocates and does all the arithmetic.
//! - Pick with [`LoadBalancer::choose`]`(&self, &PickContext, &mut rng)`: O(1) for round robin,
//!   random and least-request P2C, O(log n) for ring hash and least request with unequal weights,
//!   O(1) for Maglev; no allocation; `&self` with atomic cursors, so one balancer (in an `Arc`) is
//!   shared by all workers.
//!
//! ```
//! use weft_proxy_lb::{Endpoints, Host, LbConfig, LbPolicy, LoadBalancer, PickContext, SplitMix64};
//!
//! let config = LbConfig::new(LbPolicy::RoundRobin).validate()?;
//! let endpoints = Endpoints::new().with_hosts(
//!     0,
//!     vec![Host::new("a", "10.0.0.1:80"), Host::new("b", "10.0.0.2:80").with_weight(3)],
//! );
//! let lb = LoadBalancer::new(&config, endpoints, 0)?;
//! let mut rng = SplitMix64::new(1);
//! let picked = lb.choose(&PickContext::new(), &mut rng);
//! assert!(picked.is_some());
//! # Ok::<(), weft_proxy_lb::Error>(())
//! ```
//!
//! # Semantics (Envoy's, with the arithmetic of `load_balancer_impl.cc`)
//!
//! **Priority load** ("Priority levels", "Degraded endpoints" and "Overprovisioning factor" in
//! Envoy's architecture overview). Each level's health is
//! `min(100, OPF × healthy / (hosts − excluded))` in integer percent (OPF default 140), its
//! degraded availability the same over degraded hosts; with `weighted_priority_health` weights
//! replace counts. The normalized total availability is `min(100, Σ health + Σ degraded)`.
//! Healthy load is handed out first, level by level, `min(left, health × 100 / normalized)`; what
//! is left goes to degraded hosts the same way; rounding leftovers go to the first level with
//! healthy (else degraded) availability. A pick draws `hash % 100 + 1` and walks the cumulative
//! healthy loads, then the degraded ones. Examples (tested): all healthy → 100% P=0; P=0 50%
//! healthy with OPF 1.4 → 70/30; P=0 25%/65% healthy/degraded → 35% healthy, 65% degraded.
//!
//! **Panic** ("Panic threshold"). While normalized total availability is 100 nothing panics.
//! Below that, a level whose healthy + degraded share (by count) is under
//! `healthy_panic_threshold` (default 50%) balances across all its hosts, health ignored
//! (excluded hosts included, as documented under "Excluded endpoints"). When every level panics,
//! load is split by host count. With the threshold at 0 and nothing available, all load goes to
//! P=0 and picks return `None` (Envoy's 503 "no healthy upstream").
//!
//! **Localities** ("Locality weighted load balancing"). With `locality_weighted`, a locality is
//! chosen by EDF over effective weights `weight × min(1, OPF × eligible / (hosts − excluded))`
//! (eligible = healthy, or degraded when the priority was chosen for degraded load); localities
//! of weight 0 get nothing; then a host is picked inside the locality. Panic skips locality
//! selection. RING_HASH and MAGLEV spread each locality's raw weight over its hosts instead (as
//! Envoy does, without the availability adjustment).
//!
//! **Policies.**
//! - `ROUND_ROBIN`: equal weights → `hosts[(seed + k) % n]`; unequal → Envoy's EDF (deadlines
//!   `k / w_i`, FIFO ties), which gives each host exactly `w_i` picks per `Σw` picks.
//! - `LEAST_REQUEST`: equal weights → `choice_count` random samples (with replacement), least
//!   active requests wins, ties keep the first (P2C), or `FULL_SCAN`; unequal weights (or an
//!   explicit `active_request_bias`) → EDF with weight `w / (active + 1)^bias`, recomputed when a
//!   host is picked.
//! - `RANDOM`: `hosts[r % n]` with the same random value that chose the priority; host weights are
//!   ignored, as in Envoy.
//! - `RING_HASH`: ring of `xxHash64("{address}_{i}")` points scaled so the lightest host has an
//!   integral count and the ring has at least `minimum_ring_size` (capped by
//!   `maximum_ring_size`); lookup by binary search. Built per priority from healthy hosts (all
//!   hosts in panic).
//!   Removing a host moves that host's keys, and also (as in Envoy, because the lightest host's
//!   point count is recomputed from `minimum_ring_size`) the survivors' keys that fall on the
//!   survivors' new points; never keys between points that existed before (property-tested).
//! - `MAGLEV`: table of `table_size` (prime, default 65537) slots. Hosts sorted by address take
//!   turns filling their next free preferred slot `(offset + skip × j) mod M`, with
//!   `offset = xxHash64(address, 0) mod M` and `skip = xxHash64(address, 1) mod (M − 1) + 1`; a
//!   host whose normalized weight is a third of the heaviest takes a turn every third round.
//!   Lookup is `table[hash mod M]`.
//! - Hash policies use the request hash from the route's hash policies, or a random value when
//!   there is none (Envoy: "this effectively becomes the random LB"). The same hash chooses the
//!   priority.
//!
//! **Retries.** [`PickContext::previous_hosts`] is Envoy's `previous_hosts` predicate: a pick that
//! lands on an attempted host is redone up to `host_selection_retry_max_attempts` times (default
//! 1), and the last pick is returned even if rejected. RR/LR/RANDOM redo the whole pick; RING_HASH
//! moves `n` points along the ring; MAGLEV XORs the hash with `2^64 − n`.
//! [`PreviousPriorities`] is Envoy's `previous_priorities` retry priority: it computes the
//! priority load a retry picks with ([`PickContext::priority_load`]), leaving out the levels
//! already attempted; RR/LR/RANDOM honour it, RING_HASH and MAGLEV (like Envoy's thread-aware
//! balancers) do not.
//!
//! # Where weft deviates from Envoy, and why
//!
//! 1. **Schedules are precomputed, not stateful.** Envoy keeps a mutable EDF queue and an index per
//!    worker. weft precomputes one period of the EDF sequence (exact rational deadlines instead of
//!    accumulated doubles) and advances an atomic cursor, so one balancer serves all workers
//!    lock-free. The distribution per period is exactly Envoy's; the interleaving can differ where
//!    Envoy's floating-point sums break a tie differently. Periods over 131072 picks are
//!    approximated by scaling weights down (each keeps ≥ 1 slot).
//! 2. **Effective locality weights** are computed to 1/10000 of a locality weight (integers for the
//!    exact schedule), where Envoy uses doubles.
//! 3. **Least request with unequal weights** uses Envoy's floating-point EDF behind a mutex, since
//!    its weights change at every pick; Envoy has one such queue per worker, uncontended. Build one
//!    balancer per worker if contention shows. Its initial weights ignore load (Envoy reads load at
//!    build time; a pure build has none).
//! 4. **Shared cursors.** Envoy's round robin index is per worker; here all workers advance the same
//!    cursor, which makes the cluster-wide sequence exactly round robin.
//! 5. **Not implemented:** zone-aware routing (`zone_aware_lb_config`, needs the local cluster),
//!    slow start, `hash_balance_factor` (bounded loads), `MURMUR_HASH_2` for ring hash (`XX_HASH`,
//!    the default, only), preconnect peeking, and other retry predicates and retry priorities than
//!    `previous_hosts` and `previous_priorities`. The caller supplies host addresses as Envoy prints
//!    them (or hostnames for `use_hostname_for_hashing`).
//! 6. **Documentation vs code.** Some rows of Envoy's tables are approximations: the code gives
//!    37/35/28 for three levels at 25/25/20% healthy (docs: 36/36/28) and 8/92 for 5%/65% (docs:
//!    7/93), because rounding leftovers go to the first level. weft follows the code.
//! 7. **Validation** happens once in [`LbConfig::validate`] and [`LoadBalancer::new`] (zero host
//!    weights and weight sums over `u32::MAX` are rejected, as EDS validation does); picks never
//!    fail on configuration.

#![forbid(unsafe_code)]

mod config;
mod error;
mod hashing;
mod host;
mod lb;
mod maglev;
mod priority;
mod retry_priority;
mod ring_hash;
mod schedule;

pub use config::{
    DEFAULT_CHOICE_COUNT, DEFAULT_HEALTHY_PANIC_THRESHOLD, DEFAULT_MAGLEV_TABLE_SIZE,
    DEFAULT_MAX_RING_SIZE, DEFAULT_MIN_RING_SIZE, DEFAULT_OVERPROVISIONING_FACTOR, LbConfig,
    LbPolicy, LeastRequestConfig, MAX_MAGLEV_TABLE_SIZE, MAX_RING_SIZE_LIMIT, MaglevConfig,
    RingHashConfig, SelectionMethod, ValidLbConfig,
};
pub use error::Error;
pub use host::{Endpoints, Health, Host, HostId, Locality, LocalityEndpoints};
pub use lb::{ActiveRequests, LoadBalancer, PickContext, Picked, RandomSource, SplitMix64};
pub use priority::PriorityLoad;
pub use retry_priority::PreviousPriorities;
