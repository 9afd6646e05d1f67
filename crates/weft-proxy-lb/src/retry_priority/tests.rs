//! The `previous_priorities` retry priority against Envoy's `PreviousPrioritiesRetryPriority`:
//! when levels are excluded, how the load is redistributed, and when the exclusions reset.

use super::*;
use crate::config::{LbConfig, LbPolicy, RingHashConfig};
use crate::host::{Endpoints, Health, Host};
use crate::lb::{PickContext, SplitMix64};

/// `healthy` healthy and `total - healthy` unhealthy hosts (`health` for the healthy ones),
/// numbered from `first`.
fn level(first: usize, total: usize, healthy: usize, health: Health) -> Vec<Host<usize>> {
    (first..first + total)
        .map(|i| {
            let h = Host::new(i, format!("10.0.{}.{}:80", i / 256, i % 256));
            if i - first < healthy {
                h.with_health(health)
            } else {
                h.with_health(Health::Unhealthy)
            }
        })
        .collect()
}

/// A balancer over levels given as (hosts, healthy) pairs, all healthy ones `Healthy`.
fn balancer(policy: LbPolicy, levels: &[(usize, usize)]) -> LoadBalancer<usize> {
    let mut endpoints = Endpoints::new();
    let mut first = 0;
    for (p, &(total, healthy)) in levels.iter().enumerate() {
        endpoints = endpoints.with_hosts(p as u32, level(first, total, healthy, Health::Healthy));
        first += total;
    }
    LoadBalancer::new(&LbConfig::new(policy).validate().unwrap(), endpoints, 0).unwrap()
}

fn load(healthy: &[u32], degraded: &[u32]) -> PriorityLoad {
    PriorityLoad {
        healthy: healthy.to_vec(),
        degraded: degraded.to_vec(),
    }
}

#[test]
fn the_first_attempts_keep_the_balancers_load() {
    let lb = balancer(LbPolicy::RoundRobin, &[(1, 1), (1, 1), (1, 1)]);
    let mut state = PreviousPriorities::new(2);
    assert_eq!(state.priority_load(&lb), &load(&[100, 0, 0], &[0, 0, 0]));
    state.on_host_attempted(0);
    // One attempt, update_frequency 2: not yet.
    assert_eq!(state.priority_load(&lb), &load(&[100, 0, 0], &[0, 0, 0]));
}

#[test]
fn every_attempted_level_is_excluded_at_each_update() {
    let lb = balancer(LbPolicy::RoundRobin, &[(1, 1), (1, 1), (1, 1)]);
    let mut state = PreviousPriorities::new(1);
    state.on_host_attempted(0);
    assert_eq!(state.priority_load(&lb), &load(&[0, 100, 0], &[0, 0, 0]));
    state.on_host_attempted(1);
    assert_eq!(state.priority_load(&lb), &load(&[0, 0, 100], &[0, 0, 0]));
}

#[test]
fn between_updates_the_last_adjusted_load_is_reused() {
    let lb = balancer(LbPolicy::RoundRobin, &[(1, 1), (1, 1), (1, 1)]);
    let mut state = PreviousPriorities::new(2);
    state.on_host_attempted(0);
    state.on_host_attempted(0);
    assert_eq!(state.priority_load(&lb), &load(&[0, 100, 0], &[0, 0, 0]));
    // Third attempt (on P=1): 3 is not a multiple of 2, so P=1 is not excluded yet.
    state.on_host_attempted(1);
    assert_eq!(state.priority_load(&lb), &load(&[0, 100, 0], &[0, 0, 0]));
    state.on_host_attempted(1);
    assert_eq!(state.priority_load(&lb), &load(&[0, 0, 100], &[0, 0, 0]));
}

#[test]
fn when_every_level_is_excluded_the_exclusions_reset() {
    let lb = balancer(LbPolicy::RoundRobin, &[(1, 1), (1, 1)]);
    let mut state = PreviousPriorities::new(1);
    state.on_host_attempted(0);
    assert_eq!(state.priority_load(&lb), &load(&[0, 100], &[0, 0]));
    state.on_host_attempted(1);
    // Both attempted: forget them and spread over every level again.
    assert_eq!(state.priority_load(&lb), &load(&[100, 0], &[0, 0]));
    // The attempts were forgotten too: the next attempt starts counting afresh.
    state.on_host_attempted(0);
    assert_eq!(state.priority_load(&lb), &load(&[0, 100], &[0, 0]));
}

#[test]
fn load_follows_the_remaining_levels_availability() {
    // P=1 half healthy (availability 70 with the default overprovisioning factor), P=2 healthy:
    // P=1 takes its 70, P=2 the rest.
    let lb = balancer(LbPolicy::RoundRobin, &[(2, 2), (10, 5), (2, 2)]);
    let mut state = PreviousPriorities::new(1);
    state.on_host_attempted(0);
    assert_eq!(state.priority_load(&lb), &load(&[0, 70, 30], &[0, 0, 0]));

    // Availability 42 and 42 (30% healthy): normalized over their total, 50/50.
    let lb = balancer(LbPolicy::RoundRobin, &[(2, 2), (10, 3), (10, 3)]);
    let mut state = PreviousPriorities::new(1);
    state.on_host_attempted(0);
    assert_eq!(state.priority_load(&lb), &load(&[0, 50, 50], &[0, 0, 0]));

    // Availability 33 and 34 (total 67): 49 and 50 in the first pass, the last percent to the
    // first level with availability in the second pass.
    let lb = balancer(LbPolicy::RoundRobin, &[(1, 1), (100, 24), (70, 17)]);
    let mut state = PreviousPriorities::new(1);
    state.on_host_attempted(0);
    assert_eq!(state.priority_load(&lb), &load(&[0, 50, 50], &[0, 0, 0]));
}

#[test]
fn degraded_hosts_take_load_after_healthy_ones() {
    // P=1 only degraded hosts, P=2 a quarter healthy (availability 35).
    let endpoints = Endpoints::new()
        .with_hosts(0, level(0, 1, 1, Health::Healthy))
        .with_hosts(1, level(1, 2, 2, Health::Degraded))
        .with_hosts(2, level(3, 4, 1, Health::Healthy));
    let lb = LoadBalancer::new(
        &LbConfig::new(LbPolicy::RoundRobin).validate().unwrap(),
        endpoints,
        0,
    )
    .unwrap();
    let mut state = PreviousPriorities::new(1);
    state.on_host_attempted(0);
    // Total availability min(100 + 35, 100) = 100: P=2's healthy 35 first, degraded P=1 the rest.
    assert_eq!(state.priority_load(&lb), &load(&[0, 0, 35], &[0, 65, 0]));
}

#[test]
fn without_any_availability_the_balancers_load_is_used() {
    let lb = balancer(LbPolicy::RoundRobin, &[(1, 0), (1, 0)]);
    let original = lb.priority_load().clone();
    let mut state = PreviousPriorities::new(1);
    state.on_host_attempted(0);
    assert_eq!(state.priority_load(&lb), &original);
}

#[test]
fn random_picks_follow_the_adjusted_load() {
    for policy in [LbPolicy::RoundRobin, LbPolicy::Random] {
        let lb = balancer(policy, &[(2, 2), (2, 2)]);
        let mut state = PreviousPriorities::new(1);
        state.on_host_attempted(0);
        let adjusted = state.priority_load(&lb).clone();
        let mut rng = SplitMix64::new(7);
        for _ in 0..50 {
            let ctx = PickContext::new().with_priority_load(&adjusted);
            let picked = lb.choose(&ctx, &mut rng).unwrap();
            assert!(picked.host.id >= 2, "picked {} in P=0", picked.host.id);
            let plain = lb.choose(&PickContext::new(), &mut rng).unwrap();
            assert!(plain.host.id < 2, "picked {} outside P=0", plain.host.id);
        }
    }
}

#[test]
fn hash_balancers_ignore_the_override_as_envoy_does() {
    let lb = balancer(
        LbPolicy::RingHash(RingHashConfig::default()),
        &[(2, 2), (2, 2)],
    );
    let adjusted = load(&[0, 100], &[0, 0]);
    let mut rng = SplitMix64::new(7);
    for hash in 0..50u64 {
        let ctx = PickContext::new()
            .with_hash(hash)
            .with_priority_load(&adjusted);
        assert!(lb.choose(&ctx, &mut rng).unwrap().host.id < 2);
    }
}
