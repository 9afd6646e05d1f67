//! RING_HASH: Envoy's Ketama-style ring (`ring_hash_lb.cc`).
//!
//! Each host gets `scale × normalized_weight` points, where `scale` makes the lightest host own a
//! whole number of points and at least `minimum_ring_size` points exist overall (capped by
//! `maximum_ring_size`). Point `i` of a host is `xxHash64("{address}_{i}", seed 0)`. A request hash
//! maps to the first point at or after it, wrapping to the start.

use std::fmt::Write as _;

use xxhash_rust::xxh64::xxh64;

use crate::hashing::NormalizedWeights;

/// A built ring: parallel arrays sorted by point hash (hashes first for a cache-friendly search).
#[derive(Debug, Default)]
pub(crate) struct Ring {
    pub(crate) hashes: Vec<u64>,
    pub(crate) hosts: Vec<u32>,
}

impl Ring {
    pub(crate) fn build(
        weights: &NormalizedWeights<'_>,
        min_ring_size: u64,
        max_ring_size: u64,
    ) -> Self {
        if weights.entries.is_empty() {
            return Self::default();
        }
        let min_w = weights.min;
        let scale = ((min_w * min_ring_size as f64).ceil() / min_w).min(max_ring_size as f64);
        let ring_size = scale.ceil() as usize;
        let mut points: Vec<(u64, u32)> = Vec::with_capacity(ring_size);
        let mut key = String::with_capacity(64);
        let mut current = 0.0f64;
        let mut target = 0.0f64;
        for entry in &weights.entries {
            key.clear();
            key.push_str(entry.address);
            key.push('_');
            let prefix = key.len();
            target += scale * entry.weight;
            let mut i = 0u64;
            while current < target {
                key.truncate(prefix);
                // Writing into a String cannot fail.
                let _ = write!(key, "{i}");
                points.push((xxh64(key.as_bytes(), 0), entry.host));
                i += 1;
                current += 1.0;
            }
        }
        points.sort_unstable_by_key(|&(hash, _)| hash);
        Self {
            hashes: points.iter().map(|&(h, _)| h).collect(),
            hosts: points.iter().map(|&(_, host)| host).collect(),
        }
    }

    /// The host owning `hash`; on retry attempt `n > 0`, the point `n` places further along the
    /// ring (Envoy: "behave as if this host was not in the ring", which does not guarantee a
    /// different host).
    pub(crate) fn choose(&self, hash: u64, attempt: u32) -> Option<u32> {
        let len = self.hashes.len();
        if len == 0 {
            return None;
        }
        // First point >= hash, or wrap to 0. Equivalent to Envoy's ketama_get_server loop.
        let mut idx = self.hashes.partition_point(|&p| p < hash);
        if idx == len {
            idx = 0;
        }
        if attempt > 0 {
            idx = (idx + attempt as usize) % len;
        }
        self.hosts.get(idx).copied()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.hashes.len()
    }

    /// The hash of the point `hash` lands on (first attempt).
    #[cfg(test)]
    pub(crate) fn point_for(&self, hash: u64) -> u64 {
        let idx = self.hashes.partition_point(|&p| p < hash);
        self.hashes
            .get(idx)
            .or(self.hashes.first())
            .copied()
            .unwrap_or(0)
    }

    #[cfg(test)]
    pub(crate) fn points_per_host(&self, host: u32) -> usize {
        self.hosts.iter().filter(|&&h| h == host).count()
    }
}
