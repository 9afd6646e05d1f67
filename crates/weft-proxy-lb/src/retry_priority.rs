//! Envoy's `envoy.retry_priorities.previous_priorities` retry priority (Istio's
//! `retryRemoteLocalities`): on retries, the priority levels already attempted are taken out of
//! the priority load, so a retry goes to another level (typically another locality).
//!
//! A port of Envoy's `PreviousPrioritiesRetryPriority` (`determinePriorityLoad`,
//! `adjustForAttemptedPriorities`, `adjustedAvailability`), integer arithmetic included:
//!
//! - Every attempted host's priority is recorded ([`PreviousPriorities::on_host_attempted`], the
//!   first attempt included).
//! - While fewer than `update_frequency` hosts were attempted, a retry uses the balancer's own
//!   load. When the number of attempts is a multiple of `update_frequency`, the priorities of all
//!   attempted hosts are excluded (exclusions accumulate) and the load is redistributed over the
//!   remaining levels by their availability (`min(100, OPF × healthy / hosts)`, likewise for
//!   degraded hosts, without panic handling): each level takes `availability × 100 / total`,
//!   healthy before degraded, and the passes repeat until all 100% are handed out. Between two
//!   updates the last adjusted load is reused.
//! - When the excluded levels leave no availability at all, the exclusions and the attempts are
//!   forgotten and the load is computed again over every level; when even that has none (no
//!   healthy or degraded host anywhere), the balancer's own load is used.
//!
//! Only balancers that draw the priority at random consult it: as in Envoy, RING_HASH and MAGLEV
//! pick the priority from the request hash and ignore retry priorities.

use crate::lb::LoadBalancer;
use crate::priority::PriorityLoad;

/// The per-request state of the `previous_priorities` retry priority. Create one per request
/// (Envoy creates the plugin per retry state), record every attempted host, and pass
/// [`PreviousPriorities::priority_load`] to retries' picks through
/// [`PickContext::with_priority_load`](crate::PickContext::with_priority_load).
#[derive(Debug, Clone)]
pub struct PreviousPriorities {
    update_frequency: usize,
    /// Priorities of the attempted hosts, in order (Envoy's `attempted_hosts_`).
    attempted: Vec<u32>,
    /// Levels taken out of the load (Envoy's `excluded_priorities_`).
    excluded: Vec<bool>,
    /// The load of the last successful update.
    load: Option<PriorityLoad>,
}

impl PreviousPriorities {
    /// A fresh state for one request. `update_frequency` is the configuration's (validated to be
    /// positive; 0 is read as 1).
    pub fn new(update_frequency: u32) -> Self {
        Self {
            update_frequency: usize::try_from(update_frequency.max(1)).unwrap_or(usize::MAX),
            attempted: Vec::new(),
            excluded: Vec::new(),
            load: None,
        }
    }

    /// Records the priority of a host an attempt was sent to.
    pub fn on_host_attempted(&mut self, priority: u32) {
        self.attempted.push(priority);
    }

    /// The priority load a retry's pick on `lb` should use (Envoy's `determinePriorityLoad`).
    /// Call it once per retry pick; it updates the exclusions when the number of attempts is a
    /// multiple of `update_frequency`.
    pub fn priority_load<'s, H>(&'s mut self, lb: &'s LoadBalancer<H>) -> &'s PriorityLoad {
        let original = lb.priority_load();
        let attempts = self.attempted.len();
        if attempts < self.update_frequency {
            return original;
        }
        if attempts.is_multiple_of(self.update_frequency) {
            let (health, degraded) = lb.availability();
            self.exclude_attempted(health.len());
            if !self.adjust(health, degraded) {
                return original;
            }
        }
        self.load.as_ref().unwrap_or(original)
    }

    fn exclude_attempted(&mut self, levels: usize) {
        if self.excluded.len() < levels {
            self.excluded.resize(levels, false);
        }
        for &p in &self.attempted {
            let p = p as usize;
            if p >= self.excluded.len() {
                self.excluded.resize(p + 1, false);
            }
            self.excluded[p] = true;
        }
    }

    /// Envoy's `adjustForAttemptedPriorities`: false when no level has any availability, even
    /// after forgetting the exclusions.
    fn adjust(&mut self, health: &[u32], degraded: &[u32]) -> bool {
        let mut total = self.adjusted_total(health, degraded);
        if total == 0 {
            self.excluded.iter_mut().for_each(|e| *e = false);
            self.attempted.clear();
            total = self.adjusted_total(health, degraded);
        }
        if total == 0 {
            self.load = None;
            return false;
        }
        let keep = |i: usize, v: u32| if self.is_excluded(i) { 0 } else { v };
        let mut load = PriorityLoad {
            healthy: vec![0; health.len()],
            degraded: vec![0; degraded.len()],
        };
        let mut left = 100u32;
        // Every pass hands out at least one percent (some level has availability), so this ends.
        while left != 0 {
            for (i, &h) in health.iter().enumerate() {
                let delta = left.min(keep(i, h) * 100 / total);
                load.healthy[i] += delta;
                left -= delta;
            }
            for (i, &d) in degraded.iter().enumerate() {
                let delta = left.min(keep(i, d) * 100 / total);
                load.degraded[i] += delta;
                left -= delta;
            }
        }
        self.load = Some(load);
        true
    }

    /// Envoy's `adjustedAvailability`: healthy plus degraded availability of the levels not
    /// excluded, capped at 100.
    fn adjusted_total(&self, health: &[u32], degraded: &[u32]) -> u32 {
        let sum: u64 = health
            .iter()
            .zip(degraded)
            .enumerate()
            .filter(|(i, _)| !self.is_excluded(*i))
            .map(|(_, (&h, &d))| u64::from(h) + u64::from(d))
            .sum();
        sum.min(100) as u32
    }

    fn is_excluded(&self, level: usize) -> bool {
        self.excluded.get(level).copied().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests;
