//! Priority load and panic: how 100% of traffic is split across priority levels, and which
//! levels ignore health. A port of Envoy's `LoadBalancerBase::recalculatePerPriorityState`,
//! `recalculatePerPriorityPanic`, `recalculateLoadInTotalPanic`, `isHostSetInPanic` and
//! `choosePriority` (integer arithmetic included, so rounding matches).

/// What one priority level contributes to the calculation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct LevelCounts {
    /// Every host, excluded ones included (`hosts().size()`).
    pub hosts: u64,
    pub excluded: u64,
    pub healthy: u64,
    pub degraded: u64,
    /// The same four as sums of `load_balancing_weight`.
    pub hosts_weight: u64,
    pub excluded_weight: u64,
    pub healthy_weight: u64,
    pub degraded_weight: u64,
}

/// The split of traffic across priorities, in integer percent: `healthy[p]` is the share sent to
/// the healthy hosts of priority `p`, `degraded[p]` to its degraded hosts. They sum to 100.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PriorityLoad {
    /// Percent of traffic to each priority's healthy hosts.
    pub healthy: Vec<u32>,
    /// Percent of traffic to each priority's degraded hosts.
    pub degraded: Vec<u32>,
}

/// Which kind of host a priority was chosen for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Availability {
    Healthy,
    Degraded,
}

/// The result of the calculation: loads, per-priority panic flags, and the per-level
/// availability the loads were distributed from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct PriorityState {
    pub load: PriorityLoad,
    pub panic: Vec<bool>,
    /// Envoy's `per_priority_health_`: `min(100, OPF × healthy / (hosts − excluded))` per level.
    pub health: Vec<u32>,
    /// Envoy's `per_priority_degraded_`: the same over degraded hosts.
    pub degraded: Vec<u32>,
}

/// Computes priority load and panic for all levels at once (Envoy recomputes the same thing level
/// by level on updates).
pub(crate) fn compute(
    levels: &[LevelCounts],
    overprovisioning_factor: u32,
    panic_threshold_percent: u32,
    weighted_priority_health: bool,
) -> PriorityState {
    let n = levels.len().max(1);
    let mut load = PriorityLoad {
        healthy: vec![0; n],
        degraded: vec![0; n],
    };
    let mut health = vec![0u32; n];
    let mut degraded = vec![0u32; n];
    let opf = u64::from(overprovisioning_factor);
    for (p, level) in levels.iter().enumerate() {
        let host_count = level.hosts.saturating_sub(level.excluded);
        if host_count == 0 {
            continue;
        }
        let (healthy_w, degraded_w, total_w) = if weighted_priority_health {
            (
                level.healthy_weight,
                level.degraded_weight,
                level.hosts_weight.saturating_sub(level.excluded_weight),
            )
        } else {
            (level.healthy, level.degraded, host_count)
        };
        if total_w == 0 {
            continue;
        }
        health[p] = (opf * healthy_w / total_w).min(100) as u32;
        degraded[p] = (opf * degraded_w / total_w).min(100) as u32;
    }

    let normalized_total = normalized_total_availability(&health, &degraded);
    if normalized_total > 0 {
        let (first_healthy, left) = distribute(&mut load.healthy, &health, 100, normalized_total);
        let (first_degraded, left) =
            distribute(&mut load.degraded, &degraded, left, normalized_total);
        // Rounding leftovers go to the first available priority, healthy before degraded.
        if left != 0 {
            if let Some(p) = first_healthy {
                load.healthy[p] += left;
            } else if let Some(p) = first_degraded {
                load.degraded[p] += left;
            }
        }
    }

    let mut panic = vec![false; n];
    if panic_threshold_percent == 0 && normalized_total == 0 {
        // Panic disabled and nothing available: the loads must still sum to 100, so P=0 gets it
        // all and picks there fail for lack of hosts.
        load.healthy[0] = 100;
        return PriorityState {
            load,
            panic,
            health,
            degraded,
        };
    }
    let mut total_panic = true;
    for (p, flag) in panic.iter_mut().enumerate() {
        let level = levels.get(p).copied().unwrap_or_default();
        *flag = normalized_total != 100 && level_in_panic(&level, panic_threshold_percent);
        total_panic &= *flag;
    }
    if total_panic {
        load_in_total_panic(levels, &mut load);
    }
    PriorityState {
        load,
        panic,
        health,
        degraded,
    }
}

/// Picks a priority from a hash: `hash % 100 + 1` walks the cumulative healthy loads, then the
/// degraded ones.
pub(crate) fn choose_priority(load: &PriorityLoad, hash: u64) -> (usize, Availability) {
    let h = (hash % 100 + 1) as u32;
    let mut acc = 0u32;
    for (p, l) in load.healthy.iter().enumerate() {
        acc += l;
        if h <= acc {
            return (p, Availability::Healthy);
        }
    }
    for (p, l) in load.degraded.iter().enumerate() {
        acc += l;
        if h <= acc {
            return (p, Availability::Degraded);
        }
    }
    // Loads always sum to 100; Envoy flags this as a bug and uses P=0.
    (0, Availability::Healthy)
}

fn normalized_total_availability(health: &[u32], degraded: &[u32]) -> u32 {
    let total: u64 = health.iter().chain(degraded).map(|&v| u64::from(v)).sum();
    total.min(100) as u32
}

/// Envoy's `distributeLoad`: each level takes `availability * 100 / normalized_total`, capped by
/// what is left. Returns the first level with availability and the load left over.
fn distribute(
    load: &mut [u32],
    availability: &[u32],
    mut total: u32,
    normalized_total: u32,
) -> (Option<usize>, u32) {
    let mut first = None;
    for (p, &a) in availability.iter().enumerate() {
        if first.is_none() && a > 0 {
            first = Some(p);
        }
        load[p] = total.min(a * 100 / normalized_total);
        total -= load[p];
    }
    (first, total)
}

/// Envoy's `isHostSetInPanic`: healthy plus degraded percentage (of non-excluded hosts, by count,
/// never by weight) below the threshold. An empty level counts as 0% available.
fn level_in_panic(level: &LevelCounts, threshold: u32) -> bool {
    let host_count = level.hosts.saturating_sub(level.excluded);
    let (healthy, degraded) = if host_count == 0 {
        (0.0, 0.0)
    } else {
        (
            100.0 * level.healthy as f64 / host_count as f64,
            100.0 * level.degraded as f64 / host_count as f64,
        )
    };
    healthy + degraded < f64::from(threshold)
}

/// Envoy's `recalculateLoadInTotalPanic`: every level is in panic, so load follows the number of
/// hosts (healthy or not, excluded included) per level.
fn load_in_total_panic(levels: &[LevelCounts], load: &mut PriorityLoad) {
    let total_hosts: u64 = levels.iter().map(|l| l.hosts).sum();
    load.degraded.iter_mut().for_each(|d| *d = 0);
    if total_hosts == 0 {
        load.healthy.iter_mut().for_each(|h| *h = 0);
        load.healthy[0] = 100;
        return;
    }
    let mut left = 100u32;
    let mut first_nonempty = None;
    for (p, level) in levels.iter().enumerate() {
        if first_nonempty.is_none() && level.hosts != 0 {
            first_nonempty = Some(p);
        }
        let share = (100 * level.hosts / total_hosts) as u32;
        load.healthy[p] = share;
        left -= share;
    }
    if let Some(p) = first_nonempty {
        load.healthy[p] += left;
    }
}

#[cfg(test)]
mod tests;
