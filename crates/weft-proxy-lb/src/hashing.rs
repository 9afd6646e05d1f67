//! What RING_HASH and MAGLEV share: Envoy's weight normalization (`thread_aware_lb_impl.cc`)
//! and the per-priority table.

use crate::maglev::Maglev;
use crate::ring_hash::Ring;

/// One host's share of a priority, normalized so that all shares sum to 1.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WeightedHost<'a> {
    pub host: u32,
    pub address: &'a str,
    pub weight: f64,
}

/// Envoy's `NormalizedHostWeightVector` with its min and max.
#[derive(Debug, Clone)]
pub(crate) struct NormalizedWeights<'a> {
    pub entries: Vec<WeightedHost<'a>>,
    pub min: f64,
    pub max: f64,
}

impl<'a> NormalizedWeights<'a> {
    pub(crate) fn new() -> Self {
        Self {
            entries: Vec::new(),
            min: 1.0,
            max: 0.0,
        }
    }

    /// Envoy's `normalizeHostWeights`: `weight × locality_share / Σ weights` for each host.
    pub(crate) fn add_hosts(&mut self, hosts: &[(u32, &'a str, u32)], locality_share: f64) {
        let sum: u64 = hosts.iter().map(|&(_, _, w)| u64::from(w)).sum();
        if sum == 0 {
            return;
        }
        for &(host, address, w) in hosts {
            let weight = f64::from(w) * locality_share / sum as f64;
            self.entries.push(WeightedHost {
                host,
                address,
                weight,
            });
            self.min = self.min.min(weight);
            self.max = self.max.max(weight);
        }
    }
}

/// The consistent-hash structure of one priority.
#[derive(Debug)]
pub(crate) enum HashTable {
    Ring(Ring),
    Maglev(Maglev),
}

impl HashTable {
    pub(crate) fn choose(&self, hash: u64, attempt: u32) -> Option<u32> {
        match self {
            Self::Ring(ring) => ring.choose(hash, attempt),
            Self::Maglev(maglev) => maglev.choose(hash, attempt),
        }
    }
}
