//! MAGLEV: Envoy's Maglev table (`maglev_lb.cc`, paper section 3.4, pseudocode listing 1, with
//! Envoy's weighting).
//!
//! Hosts are sorted by address so the fill order is stable. Each host's permutation is
//! `(offset + skip × j) mod M` with `offset = xxHash64(address, seed 0) mod M` and
//! `skip = xxHash64(address, seed 1) mod (M − 1) + 1`. Rounds go over the hosts in order; a host
//! of normalized weight `w` takes its next free preferred slot in round `r` only when
//! `r × w ≥ target`, after which `target += max_weight`, so the heaviest host fills a slot every
//! round and a host of a third of that weight every third round. Lookup is `table[hash mod M]`.

use xxhash_rust::xxh64::xxh64;

use crate::hashing::NormalizedWeights;

/// A filled table of host indices (Envoy's compact table, 4 bytes a slot).
#[derive(Debug, Default)]
pub(crate) struct Maglev {
    table: Vec<u32>,
}

struct BuildEntry {
    host: u32,
    offset: u64,
    skip: u64,
    weight: f64,
    target: f64,
    next: u64,
}

impl Maglev {
    pub(crate) fn build(weights: &NormalizedWeights<'_>, table_size: u64) -> Self {
        if weights.entries.is_empty() || table_size < 2 {
            return Self::default();
        }
        let mut sorted: Vec<_> = weights.entries.iter().collect();
        sorted.sort_by(|a, b| a.address.cmp(b.address).then(a.host.cmp(&b.host)));
        let mut entries: Vec<BuildEntry> = sorted
            .iter()
            .map(|e| {
                let key = e.address.as_bytes();
                BuildEntry {
                    host: e.host,
                    offset: xxh64(key, 0) % table_size,
                    skip: xxh64(key, 1) % (table_size - 1) + 1,
                    weight: e.weight,
                    target: 0.0,
                    next: 0,
                }
            })
            .collect();

        let size = table_size as usize;
        let mut table = vec![u32::MAX; size];
        let mut filled = 0usize;
        let mut iteration: u32 = 1;
        while filled < size {
            for entry in entries.iter_mut() {
                if filled >= size {
                    break;
                }
                if f64::from(iteration) * entry.weight < entry.target {
                    continue;
                }
                entry.target += weights.max;
                let mut c = permutation(entry, table_size);
                while table[c] != u32::MAX {
                    entry.next += 1;
                    c = permutation(entry, table_size);
                }
                table[c] = entry.host;
                entry.next += 1;
                filled += 1;
            }
            iteration += 1;
        }
        Self { table }
    }

    /// `table[hash mod M]`; on retry attempt `n > 0` the hash is first XORed with `2^64 − n`
    /// (Envoy: flips most bits so retries spread over the table).
    pub(crate) fn choose(&self, mut hash: u64, attempt: u32) -> Option<u32> {
        if self.table.is_empty() {
            return None;
        }
        if attempt > 0 {
            hash ^= u64::from(attempt).wrapping_neg();
        }
        self.table
            .get((hash % self.table.len() as u64) as usize)
            .copied()
    }

    #[cfg(test)]
    pub(crate) fn table(&self) -> &[u32] {
        &self.table
    }
}

fn permutation(entry: &BuildEntry, table_size: u64) -> usize {
    ((entry.offset + entry.skip.wrapping_mul(entry.next) % table_size) % table_size) as usize
}
