//! What each scenario sends: keys drawn uniformly (seeded, one stream per
//! client) from a key space of fixed-size keys, values of fixed size.
//!
//! Key `i` is `KEY_PREFIX` followed by `i` in decimal, zero-padded to the
//! key size, so keys sort in index order (ranges walk consecutive keys).

use std::sync::Arc;

use crate::args::{Options, Scenario};

/// Every key starts with this, so a bench's keys are one prefix.
pub const KEY_PREFIX: &[u8] = b"k";
/// Most entries one `range` operation asks for.
pub const RANGE_MAX_KEYS: usize = 100;
/// Sets in one `sequence` operation.
pub const SEQUENCE_SETS: usize = 10;
/// Share of reads in the `mixed` scenario, in percent (the rest are sets).
pub const MIXED_READ_PERCENT: u64 = 50;
/// Keys written by one request of the fill (below etcd's default limit of
/// 128 operations per transaction).
pub const FILL_BATCH_KEYS: u64 = 100;

/// One operation, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Set {
        key: Vec<u8>,
        value: Arc<[u8]>,
    },
    Get {
        key: Vec<u8>,
    },
    /// Entries from `first` (included), at most `max`, ascending.
    Range {
        first: Vec<u8>,
        max: usize,
    },
    /// Sets every key to `value`, atomically.
    Sequence {
        keys: Vec<Vec<u8>>,
        value: Arc<[u8]>,
    },
}

impl Op {
    /// Whether it only reads.
    pub fn is_read(&self) -> bool {
        matches!(self, Op::Get { .. } | Op::Range { .. })
    }
}

/// The bench's seeded generator: the project's SplitMix64 (reproducible
/// uniform draws, not cryptographic ones).
pub use consensus::rng::SplitMix64 as Rng;

/// The key space and the value of a run.
#[derive(Debug, Clone)]
pub struct Workload {
    key_size: usize,
    keys: u64,
    value: Arc<[u8]>,
}

impl Workload {
    pub fn new(options: &Options) -> Workload {
        Workload::with(
            options.key_size,
            options.keys,
            options.value_size,
            options.seed,
        )
    }

    /// `key_size` must hold `keys` keys (`args::min_key_size`).
    pub fn with(key_size: usize, keys: u64, value_size: usize, seed: u64) -> Workload {
        assert!(keys > 0, "an empty key space");
        assert!(
            key_size >= crate::args::min_key_size(keys),
            "key size {key_size} too small for {keys} keys"
        );
        // Printable, varied bytes: nothing compresses a value to nothing.
        let mut rng = Rng::new(seed ^ 0x0056_414C_5545);
        let value: Vec<u8> = (0..value_size)
            .map(|_| b'a' + (rng.below(26) as u8))
            .collect();
        Workload {
            key_size,
            keys,
            value: value.into(),
        }
    }

    pub fn keys(&self) -> u64 {
        self.keys
    }

    pub fn value(&self) -> &Arc<[u8]> {
        &self.value
    }

    /// Key number `index` (taken modulo the key space).
    pub fn key(&self, index: u64) -> Vec<u8> {
        let digits = self.key_size - KEY_PREFIX.len();
        let mut key = Vec::with_capacity(self.key_size);
        key.extend_from_slice(KEY_PREFIX);
        key.extend_from_slice(format!("{:0digits$}", index % self.keys).as_bytes());
        debug_assert_eq!(key.len(), self.key_size);
        key
    }

    /// The first key after every key of the space (the end of a prefix
    /// range over the bench's keys).
    pub fn end_key(&self) -> Vec<u8> {
        let mut end = KEY_PREFIX.to_vec();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        end
    }

    fn random_key(&self, rng: &mut Rng) -> Vec<u8> {
        self.key(rng.below(self.keys))
    }

    /// `count` distinct keys (all keys if the space is smaller): etcd
    /// refuses a transaction that puts one key twice.
    fn distinct_random_keys(&self, count: usize, rng: &mut Rng) -> Vec<Vec<u8>> {
        let count = usize::try_from(self.keys).map_or(count, |keys| count.min(keys));
        let mut indexes: Vec<u64> = Vec::with_capacity(count);
        while indexes.len() < count {
            let index = rng.below(self.keys);
            if !indexes.contains(&index) {
                indexes.push(index);
            }
        }
        indexes.into_iter().map(|i| self.key(i)).collect()
    }

    fn set(&self, rng: &mut Rng) -> Op {
        Op::Set {
            key: self.random_key(rng),
            value: Arc::clone(&self.value),
        }
    }

    /// The next operation of `scenario`.
    pub fn op(&self, scenario: Scenario, rng: &mut Rng) -> Op {
        match scenario {
            Scenario::Set => self.set(rng),
            Scenario::Get => Op::Get {
                key: self.random_key(rng),
            },
            Scenario::Range => Op::Range {
                first: self.random_key(rng),
                max: RANGE_MAX_KEYS,
            },
            Scenario::Sequence => Op::Sequence {
                keys: self.distinct_random_keys(SEQUENCE_SETS, rng),
                value: Arc::clone(&self.value),
            },
            Scenario::Mixed => {
                if rng.below(100) < MIXED_READ_PERCENT {
                    Op::Get {
                        key: self.random_key(rng),
                    }
                } else {
                    self.set(rng)
                }
            }
        }
    }

    /// How many requests the fill takes.
    pub fn fill_batches(&self) -> u64 {
        self.keys.div_ceil(FILL_BATCH_KEYS)
    }

    /// Fill request `batch`: sets keys `batch * FILL_BATCH_KEYS ..` (the last
    /// batch may be short).
    pub fn fill_op(&self, batch: u64) -> Op {
        let first = batch.saturating_mul(FILL_BATCH_KEYS).min(self.keys);
        let last = first.saturating_add(FILL_BATCH_KEYS).min(self.keys);
        Op::Sequence {
            keys: (first..last).map(|i| self.key(i)).collect(),
            value: Arc::clone(&self.value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_the_size_and_sort_in_index_order() {
        let w = Workload::with(16, 100_000, 100, 1);
        let k0 = w.key(0);
        let k9 = w.key(9);
        let k10 = w.key(10);
        assert_eq!(k0, b"k000000000000000");
        assert!(k9 < k10);
        assert_eq!(w.key(99_999).len(), 16);
        assert_eq!(w.key(100_000), k0, "taken modulo the key space");
        assert!(w.key(99_999) < w.end_key());
        assert_eq!(w.value().len(), 100);
    }

    #[test]
    fn fill_covers_every_key_once() {
        let w = Workload::with(8, 250, 10, 1);
        assert_eq!(w.fill_batches(), 3);
        let mut all = Vec::new();
        for b in 0..w.fill_batches() {
            let Op::Sequence { keys, .. } = w.fill_op(b) else {
                panic!("fill is sequences");
            };
            all.extend(keys);
        }
        assert_eq!(all.len(), 250);
        all.dedup();
        assert_eq!(all.len(), 250);
    }

    #[test]
    fn draws_are_in_range_and_reproducible() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..1000 {
            let x = a.below(10);
            assert!(x < 10);
            assert_eq!(x, b.below(10));
        }
        let w = Workload::with(16, 1000, 1, 1);
        let mut rng = Rng::new(3);
        let reads = (0..1000)
            .filter(|_| w.op(Scenario::Mixed, &mut rng).is_read())
            .count();
        assert!((400..600).contains(&reads), "{reads} reads of 1000");
        for keys in [1000, 3] {
            let w = Workload::with(16, keys, 1, 1);
            let Op::Sequence {
                keys: mut drawn, ..
            } = w.op(Scenario::Sequence, &mut rng)
            else {
                panic!("a sequence");
            };
            let n = drawn.len();
            assert_eq!(n as u64, keys.min(SEQUENCE_SETS as u64));
            drawn.sort();
            drawn.dedup();
            assert_eq!(drawn.len(), n, "distinct keys in a sequence");
        }
    }
}
