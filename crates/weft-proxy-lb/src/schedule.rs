//! Earliest-deadline-first scheduling, two ways.
//!
//! Envoy's `EdfScheduler` gives entry `i` deadlines `1/w_i, 2/w_i, ...` and always picks the
//! earliest deadline, breaking ties first-in-first-out. With static integer weights the pick
//! sequence is periodic: after `Σw` picks (weights divided by their gcd) every entry has been
//! picked exactly `w_i` times and all deadlines are back in the same relative order.
//! [`StaticSchedule`] precomputes one period with exact rational comparisons, so a pick is an
//! atomic increment and an index: O(1), lock-free, allocation-free. It serves weighted round robin
//! and the locality scheduler.
//!
//! Least request rescales a host's weight by its load every time the host is picked, so its
//! sequence is not periodic; [`DynamicEdf`] is Envoy's floating-point scheduler behind a mutex.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

/// Longest precomputed period. Larger periods are approximated by scaling the weights down
/// (each keeps at least 1), which bounds memory at 4 bytes × this per schedule.
pub(crate) const MAX_SCHEDULE_LEN: u64 = 1 << 17;

/// One period of a static EDF schedule plus a shared cursor.
#[derive(Debug)]
pub(crate) struct StaticSchedule {
    /// Entry indices in pick order.
    order: Vec<u32>,
    cursor: AtomicU64,
}

impl StaticSchedule {
    /// Builds the schedule for `weights` (all > 0), starting `seed` picks into the period (Envoy
    /// starts its schedulers after a random number of picks so that proxies do not move in step).
    pub(crate) fn new(weights: &[u64], seed: u64) -> Self {
        Self {
            order: edf_period(weights),
            cursor: AtomicU64::new(seed),
        }
    }

    /// The next entry index; `None` only for an empty schedule.
    pub(crate) fn next(&self) -> Option<u32> {
        if self.order.is_empty() {
            return None;
        }
        let i = self.cursor.fetch_add(1, AtomicOrdering::Relaxed);
        self.order
            .get((i % self.order.len() as u64) as usize)
            .copied()
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn reduce(weights: &[u64]) -> Vec<u64> {
    let g = weights.iter().copied().fold(0, gcd).max(1);
    weights.iter().map(|w| w / g).collect()
}

/// One period of EDF picks over integer weights.
pub(crate) fn edf_period(weights: &[u64]) -> Vec<u32> {
    if weights.is_empty() || weights.contains(&0) {
        return Vec::new();
    }
    let mut w = reduce(weights);
    let total: u128 = w.iter().map(|&x| u128::from(x)).sum();
    if total > u128::from(MAX_SCHEDULE_LEN) {
        let scaled: Vec<u64> = w
            .iter()
            .map(|&x| ((u128::from(x) * u128::from(MAX_SCHEDULE_LEN) / total) as u64).max(1))
            .collect();
        w = reduce(&scaled);
    }
    let period: u64 = w.iter().sum();

    #[derive(PartialEq, Eq)]
    struct Slot {
        /// The deadline is `picks / weight`.
        picks: u64,
        weight: u64,
        order: u64,
        index: u32,
    }
    impl Ord for Slot {
        fn cmp(&self, other: &Self) -> Ordering {
            // Min-heap on (deadline, order): reverse the natural order.
            let lhs = u128::from(self.picks) * u128::from(other.weight);
            let rhs = u128::from(other.picks) * u128::from(self.weight);
            rhs.cmp(&lhs).then_with(|| other.order.cmp(&self.order))
        }
    }
    impl PartialOrd for Slot {
        fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
            Some(self.cmp(other))
        }
    }

    let mut heap: BinaryHeap<Slot> = w
        .iter()
        .enumerate()
        .map(|(i, &weight)| Slot {
            picks: 1,
            weight,
            order: i as u64,
            index: i as u32,
        })
        .collect();
    let first_order = w.len() as u64;
    let mut out = Vec::with_capacity(period as usize);
    // Each re-insertion gets the next FIFO order number, as Envoy's `order_offset_++`.
    for order in first_order..first_order + period {
        let Some(mut slot) = heap.pop() else { break };
        out.push(slot.index);
        slot.picks += 1;
        slot.order = order;
        heap.push(slot);
    }
    out
}

/// Envoy's floating-point EDF scheduler with weights recomputed at each pick, behind a mutex.
#[derive(Debug)]
pub(crate) struct DynamicEdf {
    inner: Mutex<EdfQueue>,
}

#[derive(Debug)]
struct EdfQueue {
    heap: BinaryHeap<EdfEntry>,
    current_time: f64,
    next_order: u64,
}

#[derive(Debug, Clone, Copy)]
struct EdfEntry {
    deadline: f64,
    order: u64,
    index: u32,
}

impl PartialEq for EdfEntry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for EdfEntry {}
impl Ord for EdfEntry {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .deadline
            .total_cmp(&self.deadline)
            .then_with(|| other.order.cmp(&self.order))
    }
}
impl PartialOrd for EdfEntry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl DynamicEdf {
    /// Envoy's `EdfScheduler::createWithPicks`: the state after `picks` picks at the initial
    /// weights, reached in O(n) by emulating `floor(picks * w_i / W)` picks per entry and doing
    /// the remainder one by one.
    pub(crate) fn with_picks(weights: &[f64], picks: u64) -> Self {
        let picks = picks % 429_496_729;
        let aug: Vec<f64> = weights.iter().map(|w| w + 1e-13).collect();
        let sum: f64 = aug.iter().sum();
        let mut entries = Vec::with_capacity(aug.len());
        let mut picks_so_far = 0u64;
        let mut max_pick_time = 0.0f64;
        for (i, &w) in aug.iter().enumerate() {
            let mut floor = (w * picks as f64 / sum) as u64;
            if floor > 0 && floor as f64 / w >= picks as f64 / sum {
                floor -= 1;
            }
            max_pick_time = max_pick_time.max(floor as f64 / w);
            entries.push(EdfEntry {
                deadline: (floor + 1) as f64 / w,
                order: i as u64,
                index: i as u32,
            });
            picks_so_far += floor;
        }
        let mut queue = EdfQueue {
            heap: BinaryHeap::from(entries),
            current_time: max_pick_time,
            next_order: aug.len() as u64,
        };
        while picks_so_far < picks {
            queue.pick(|i| weights.get(i as usize).copied().unwrap_or(1.0));
            picks_so_far += 1;
        }
        Self {
            inner: Mutex::new(queue),
        }
    }

    /// Pops the earliest deadline and reinserts that entry with the weight `weight_of` gives it
    /// now (Envoy's `pickAndAdd`). Allocation-free: the heap keeps its capacity.
    pub(crate) fn pick(&self, weight_of: impl FnOnce(u32) -> f64) -> Option<u32> {
        // A poisoned lock only means another pick panicked mid-way; the heap is still a heap.
        let mut queue = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        queue.pick(weight_of)
    }
}

impl EdfQueue {
    fn pick(&mut self, weight_of: impl FnOnce(u32) -> f64) -> Option<u32> {
        let entry = self.heap.pop()?;
        self.current_time = entry.deadline;
        let weight = weight_of(entry.index);
        // A zero or non-finite weight parks the entry at +inf instead of dividing by zero.
        let deadline = if weight > 0.0 {
            self.current_time + 1.0 / weight
        } else {
            f64::INFINITY
        };
        self.heap.push(EdfEntry {
            deadline,
            order: self.next_order,
            index: entry.index,
        });
        self.next_order += 1;
        Some(entry.index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_weights_take_turns_in_order() {
        assert_eq!(edf_period(&[5, 5, 5]), [0, 1, 2]);
    }

    #[test]
    fn one_to_two_matches_envoys_edf() {
        // Deadlines: a 1, b 0.5 → b; b re-added at 1.0 after a (FIFO) → a, then b.
        assert_eq!(edf_period(&[1, 2]), [1, 0, 1]);
    }

    #[test]
    fn each_entry_appears_weight_times_per_period() {
        let period = edf_period(&[1, 3, 6]);
        assert_eq!(period.len(), 10);
        for (i, w) in [1, 3, 6].into_iter().enumerate() {
            assert_eq!(period.iter().filter(|&&x| x == i as u32).count(), w);
        }
        // Interleaved, not blocked: the heaviest entry never runs more than twice in a row.
        assert!(!period.windows(3).any(|w| w.iter().all(|&x| x == 2)));
    }

    #[test]
    fn huge_periods_are_scaled_within_the_cap() {
        let period = edf_period(&[u64::from(u32::MAX), u64::from(u32::MAX) - 1, 1]);
        assert!(period.len() as u64 <= MAX_SCHEDULE_LEN + 3);
        assert!(period.contains(&2), "every entry keeps at least one slot");
    }

    #[test]
    fn static_schedule_starts_at_the_seed() {
        let s = StaticSchedule::new(&[1, 1, 1], 4);
        assert_eq!([s.next(), s.next(), s.next()], [Some(1), Some(2), Some(0)]);
        assert_eq!(StaticSchedule::new(&[], 0).next(), None);
    }

    #[test]
    fn dynamic_edf_follows_weights_of_the_moment() {
        let edf = DynamicEdf::with_picks(&[1.0, 1.0], 0);
        // Entry 0 always reports weight 3 after a pick, entry 1 weight 1.
        let mut counts = [0u32; 2];
        for _ in 0..4000 {
            if let Some(i) = edf.pick(|i| if i == 0 { 3.0 } else { 1.0 }) {
                counts[i as usize] += 1;
            }
        }
        assert!((2950..=3050).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn with_picks_matches_picking_one_by_one() {
        // Weights without rational ties: Envoy documents that tied entries may be ordered
        // differently by the shortcut.
        let weights = [1.0, std::f64::consts::PI, 3.0 * std::f64::consts::E];
        let fast = DynamicEdf::with_picks(&weights, 23);
        let slow = DynamicEdf::with_picks(&weights, 0);
        for _ in 0..23 {
            slow.pick(|i| weights[i as usize]);
        }
        for _ in 0..50 {
            assert_eq!(
                fast.pick(|i| weights[i as usize]),
                slow.pick(|i| weights[i as usize])
            );
        }
    }
}
