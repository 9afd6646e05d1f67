//! Priority load against the tables of Envoy's "Priority levels", "Degraded endpoints",
//! "Panic threshold" and "Excluded endpoints" pages. Where a documentation row disagrees with
//! Envoy's code, the code wins and the test says so.

use super::*;

/// A level of 100 hosts with the given percentages healthy / degraded (the rest unhealthy).
fn level(healthy: u64, degraded: u64) -> LevelCounts {
    LevelCounts {
        hosts: 100,
        excluded: 0,
        healthy,
        degraded,
        hosts_weight: 100,
        excluded_weight: 0,
        healthy_weight: healthy,
        degraded_weight: degraded,
    }
}

fn healthy_load(levels: &[LevelCounts]) -> Vec<u32> {
    compute(levels, 140, 50, false).load.healthy
}

#[test]
fn two_levels_table_from_priority_docs() {
    // P=0 healthy % → traffic to P=0 / P=1, with P=1 100% healthy.
    for (p0, expected) in [
        (100, [100, 0]),
        (72, [100, 0]),
        (71, [99, 1]),
        (50, [70, 30]),
        (25, [35, 65]),
        (0, [0, 100]),
    ] {
        assert_eq!(
            healthy_load(&[level(p0, 0), level(100, 0)]),
            expected,
            "P=0 at {p0}%"
        );
    }
}

#[test]
fn all_healthy_sends_everything_to_p0() {
    let state = compute(
        &[level(100, 0), level(100, 0), level(100, 0)],
        140,
        50,
        false,
    );
    assert_eq!(state.load.healthy, [100, 0, 0]);
    assert_eq!(state.load.degraded, [0, 0, 0]);
    assert_eq!(state.panic, [false, false, false]);
}

#[test]
fn three_levels_table_from_priority_docs() {
    let cases: [([u64; 3], [u32; 3]); 6] = [
        ([100, 100, 100], [100, 0, 0]),
        ([72, 72, 100], [100, 0, 0]),
        ([71, 71, 100], [99, 1, 0]),
        ([50, 50, 100], [70, 30, 0]),
        ([25, 100, 100], [35, 65, 0]),
        ([25, 25, 100], [35, 35, 30]),
    ];
    for (health, expected) in cases {
        let levels: Vec<_> = health.iter().map(|&h| level(h, 0)).collect();
        assert_eq!(healthy_load(&levels), expected, "health {health:?}");
    }
}

#[test]
fn normalization_when_total_health_is_below_100() {
    // The priority page ignores panic, so disable it (threshold 0) to check the arithmetic alone.
    let no_panic = |levels: &[LevelCounts]| compute(levels, 140, 0, false).load.healthy;
    // Docs row 25%/25%/20% lists 36/36/28; Envoy's code gives health 35/35/28, normalized total
    // 98, loads 35/35/28 and the 2% rounding remainder to the first healthy level: 37/35/28.
    assert_eq!(
        no_panic(&[level(25, 0), level(25, 0), level(20, 0)]),
        [37, 35, 28]
    );
    // Two levels at 25%: 35 + 35 = 70 normalized to 50/50.
    assert_eq!(no_panic(&[level(25, 0), level(25, 0)]), [50, 50]);
    // With the default 50% threshold every level is in panic and load follows host counts.
    assert_eq!(
        healthy_load(&[level(25, 0), level(25, 0), level(20, 0)]),
        [34, 33, 33]
    );
}

#[test]
fn degraded_table_from_degraded_docs() {
    // P=0 healthy/degraded/unhealthy → traffic to P=0 healthy / P=0 degraded.
    for ((h, d), expected) in [
        ((100, 0), (100, 0)),
        ((71, 0), (100, 0)),
        ((71, 29), (99, 1)),
        ((25, 65), (35, 65)),
        ((5, 0), (100, 0)),
    ] {
        let state = compute(&[level(h, d)], 140, 50, false);
        assert_eq!(
            (state.load.healthy[0], state.load.degraded[0]),
            expected,
            "{h}/{d}"
        );
    }
}

#[test]
fn healthy_then_degraded_spill_over_across_levels() {
    // The example in Envoy's recalculatePerPriorityState comment: health 10/20/10%, degraded
    // 20/10/0% → healthy load 16/28/14 (2% rounding to the first) and degraded 28/14/0.
    // (Panic disabled: at 30/30/10% available every level would panic.)
    let state = compute(&[level(10, 20), level(20, 10), level(10, 0)], 140, 0, false);
    assert_eq!(state.load.healthy, [16, 28, 14]);
    assert_eq!(state.load.degraded, [28, 14, 0]);
}

#[test]
fn panic_is_ignored_while_normalized_total_health_is_100() {
    // Panic docs, P=1 100% healthy: 25% healthy P=0 is below the 50% threshold but not in panic.
    let state = compute(&[level(25, 0), level(100, 0)], 140, 50, false);
    assert_eq!(state.panic, [false, false]);
    assert_eq!(state.load.healthy, [35, 65]);
}

#[test]
fn panic_table_from_panic_threshold_docs() {
    // (P=0 %, P=1 %) → (traffic, P=0 panic, P=1 panic).
    let cases = [
        ((72, 72), [100, 0], [false, false]),
        ((71, 71), [99, 1], [false, false]),
        ((25, 25), [50, 50], [true, true]),
        // Docs list 7%/93%; the code gives 7 + the 1% rounding remainder to the first level.
        ((5, 65), [8, 92], [true, false]),
    ];
    for ((p0, p1), load, panic) in cases {
        let state = compute(&[level(p0, 0), level(p1, 0)], 140, 50, false);
        assert_eq!(state.load.healthy, load, "{p0}/{p1}");
        assert_eq!(state.panic, panic, "{p0}/{p1}");
    }
}

#[test]
fn total_panic_splits_by_host_count() {
    // Everything down: all levels panic and load follows host counts (30 vs 10 hosts).
    let mut a = level(0, 0);
    a.hosts = 30;
    let mut b = level(0, 0);
    b.hosts = 10;
    let state = compute(&[a, b], 140, 50, false);
    assert_eq!(state.panic, [true, true]);
    assert_eq!(state.load.healthy, [75, 25]);
    assert_eq!(state.load.degraded, [0, 0]);
}

#[test]
fn panic_disabled_with_nothing_available_sends_all_to_p0_without_panic() {
    let state = compute(&[level(0, 0), level(0, 0)], 140, 0, false);
    assert_eq!(state.load.healthy, [100, 0]);
    assert_eq!(state.panic, [false, false]);
}

#[test]
fn no_levels_at_all_is_total_panic_on_p0() {
    let state = compute(&[], 140, 50, false);
    assert_eq!(state.load.healthy, [100]);
}

#[test]
fn excluded_hosts_leave_the_denominator() {
    // Excluded docs: P0 {healthy, excluded, excluded}, P1 {healthy, healthy} → all traffic on P0.
    let p0 = LevelCounts {
        hosts: 3,
        excluded: 2,
        healthy: 1,
        degraded: 0,
        hosts_weight: 3,
        excluded_weight: 2,
        healthy_weight: 1,
        degraded_weight: 0,
    };
    let p1 = LevelCounts {
        hosts: 2,
        healthy: 2,
        hosts_weight: 2,
        healthy_weight: 2,
        ..LevelCounts::default()
    };
    let state = compute(&[p0, p1], 140, 50, false);
    assert_eq!(state.load.healthy, [100, 0]);
}

#[test]
fn overprovisioning_factor_is_applied() {
    // OPF 100: 50% healthy is 50% health.
    assert_eq!(
        compute(&[level(50, 0), level(100, 0)], 100, 50, false)
            .load
            .healthy,
        [50, 50]
    );
    // OPF 200: 50% healthy is already 100%.
    assert_eq!(
        compute(&[level(50, 0), level(100, 0)], 200, 50, false)
            .load
            .healthy,
        [100, 0]
    );
}

#[test]
fn weighted_priority_health_uses_weights() {
    // 2 hosts: the healthy one weighs 1, the unhealthy one 3 → 25% by weight (35 health), 50% by count (70).
    let p0 = LevelCounts {
        hosts: 2,
        healthy: 1,
        hosts_weight: 4,
        healthy_weight: 1,
        ..LevelCounts::default()
    };
    let p1 = level(100, 0);
    assert_eq!(compute(&[p0, p1], 140, 50, true).load.healthy, [35, 65]);
    assert_eq!(compute(&[p0, p1], 140, 50, false).load.healthy, [70, 30]);
}

#[test]
fn choose_priority_walks_healthy_then_degraded() {
    let load = PriorityLoad {
        healthy: vec![70, 0],
        degraded: vec![20, 10],
    };
    // hash % 100 + 1 ∈ 1..=100.
    assert_eq!(choose_priority(&load, 0), (0, Availability::Healthy));
    assert_eq!(choose_priority(&load, 69), (0, Availability::Healthy));
    assert_eq!(choose_priority(&load, 70), (0, Availability::Degraded));
    assert_eq!(choose_priority(&load, 89), (0, Availability::Degraded));
    assert_eq!(choose_priority(&load, 90), (1, Availability::Degraded));
    assert_eq!(choose_priority(&load, 199), (1, Availability::Degraded));
}
