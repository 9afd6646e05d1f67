//! Pick latency per policy over 10 and 1,000 hosts, and ring/Maglev build time for 100 hosts.

// A benchmark with a broken fixed configuration should stop loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use weft_proxy_lb::{
    Endpoints, Host, HostId, LbConfig, LbPolicy, LeastRequestConfig, LoadBalancer, MaglevConfig,
    PickContext, RandomSource, RingHashConfig, SplitMix64,
};

fn endpoints(n: usize, weighted: bool) -> Endpoints<usize> {
    let hosts = (0..n)
        .map(|i| {
            let host = Host::new(i, format!("10.{}.{}.1:8080", i / 256, i % 256));
            if weighted {
                host.with_weight(1 + (i % 4) as u32)
            } else {
                host
            }
        })
        .collect();
    Endpoints::new().with_hosts(0, hosts)
}

fn build(policy: LbPolicy, n: usize, weighted: bool) -> LoadBalancer<usize> {
    let config = LbConfig::new(policy)
        .validate()
        .expect("bench config is valid");
    LoadBalancer::new(&config, endpoints(n, weighted), 0).expect("bench endpoints are valid")
}

fn policies() -> Vec<(&'static str, LbPolicy, bool)> {
    vec![
        ("round_robin", LbPolicy::RoundRobin, false),
        ("round_robin_weighted", LbPolicy::RoundRobin, true),
        (
            "least_request",
            LbPolicy::LeastRequest(LeastRequestConfig::default()),
            false,
        ),
        (
            "least_request_weighted",
            LbPolicy::LeastRequest(LeastRequestConfig::default()),
            true,
        ),
        ("random", LbPolicy::Random, false),
        (
            "ring_hash",
            LbPolicy::RingHash(RingHashConfig::default()),
            false,
        ),
        ("maglev", LbPolicy::Maglev(MaglevConfig::default()), false),
    ]
}

fn pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    let active = |h: HostId| u64::from(h.0 % 7);
    for (name, policy, weighted) in policies() {
        for n in [10usize, 1000] {
            let lb = build(policy.clone(), n, weighted);
            let mut rng = SplitMix64::new(1);
            let mut keys = SplitMix64::new(2);
            group.bench_with_input(BenchmarkId::new(name, n), &n, |b, _| {
                b.iter(|| {
                    let ctx = PickContext::new()
                        .with_hash(keys.next_random())
                        .with_active_requests(&active);
                    black_box(lb.choose(&ctx, &mut rng).map(|p| p.id))
                });
            });
        }
    }
    group.finish();
}

fn build_tables(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    for (name, policy) in [
        ("ring_hash", LbPolicy::RingHash(RingHashConfig::default())),
        ("maglev", LbPolicy::Maglev(MaglevConfig::default())),
    ] {
        group.bench_with_input(BenchmarkId::new(name, 100), &100usize, |b, &n| {
            b.iter(|| black_box(build(policy.clone(), n, false).len()));
        });
    }
    group.finish();
}

criterion_group!(benches, pick, build_tables);
criterion_main!(benches);
