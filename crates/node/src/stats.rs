//! The node's statistics, encoded as Arakoon's `Statistics.to_buffer`
//! named fields (see `protocol::NamedField` for the list of names).

use protocol::{Command, NamedField, NamedValue};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Arakoon's `x_stats` (`statistics.ml`): a count, min, max and Welford's
/// running mean and `m2`, with its variance as Arakoon computes it, so that
/// its clients read the same numbers: `min` starts at the largest float and
/// `max` at 0 (what a list of no samples shows), and after each sample the
/// variance is `m2` divided by the count *before* that sample (so NaN after
/// the first, 0 / 0, as Arakoon's).
#[derive(Debug, Clone, Copy)]
struct Timing {
    n: u64,
    min: f64,
    max: f64,
    avg: f64,
    m2: f64,
    var: f64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            n: 0,
            min: f64::MAX,
            max: 0.0,
            avg: 0.0,
            m2: 0.0,
            var: 0.0,
        }
    }
}

impl Timing {
    fn add(&mut self, x: f64) {
        let n_before = self.n as f64;
        self.n += 1;
        if x < self.min {
            self.min = x;
        }
        if x > self.max {
            self.max = x;
        }
        let delta = x - self.avg;
        self.avg += delta / self.n as f64;
        if self.n > 1 {
            self.m2 += delta * (x - self.avg);
        }
        self.var = self.m2 / n_before;
    }

    fn field(&self, name: &str) -> NamedField {
        let n = i32::try_from(self.n).unwrap_or(i32::MAX);
        NamedField::timing(name, n, self.min, self.max, self.m2, self.avg, self.var)
    }
}

/// Average sizes (bytes or result counts) as Arakoon reports them.
#[derive(Debug, Clone, Copy, Default)]
struct Average {
    n: u64,
    avg: f64,
}

impl Average {
    fn add(&mut self, x: f64) {
        self.n += 1;
        self.avg += (x - self.avg) / self.n as f64;
    }
}

/// Which of Arakoon's `*_info` lists an operation counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Set,
    Get,
    Delete,
    Sequence,
    MultiGet,
    MultiGetOption,
    TestAndSet,
    Replace,
    Range,
    RangeEntries,
    RevRangeEntries,
    Prefix,
    DeletePrefix,
}

const KINDS: [(Kind, &str); 13] = [
    (Kind::Set, "set_info"),
    (Kind::Get, "get_info"),
    (Kind::Delete, "del_info"),
    (Kind::Sequence, "seq_info"),
    (Kind::MultiGet, "mget_info"),
    (Kind::MultiGetOption, "mget_option_info"),
    (Kind::TestAndSet, "tas_info"),
    (Kind::Replace, "replace_info"),
    (Kind::Range, "range_info"),
    (Kind::RangeEntries, "range_entries_info"),
    (Kind::RevRangeEntries, "rev_range_entries_info"),
    (Kind::Prefix, "prefix_info"),
    (Kind::DeletePrefix, "delete_prefix_info"),
];

fn kind_of(command: Command) -> Option<Kind> {
    Some(match command {
        Command::Set | Command::Confirm => Kind::Set,
        Command::Get | Command::Exists => Kind::Get,
        Command::Delete => Kind::Delete,
        Command::Sequence | Command::SyncedSequence => Kind::Sequence,
        Command::MultiGet => Kind::MultiGet,
        Command::MultiGetOption => Kind::MultiGetOption,
        Command::TestAndSet => Kind::TestAndSet,
        Command::Replace => Kind::Replace,
        Command::Range => Kind::Range,
        Command::RangeEntries => Kind::RangeEntries,
        Command::RevRangeEntries => Kind::RevRangeEntries,
        Command::PrefixKeys => Kind::Prefix,
        Command::DeletePrefix => Kind::DeletePrefix,
        _ => return None,
    })
}

#[derive(Debug)]
struct Inner {
    start: f64,
    last: f64,
    per_kind: [Timing; 13],
    op: Timing,
    /// Client updates per tlog entry this node made as master.
    harvest: Timing,
    set_size: Average,
    get_size: Average,
    range_size: Average,
    range_entries_size: Average,
    rev_range_entries_size: Average,
    prefix_size: Average,
    del_prefix_size: Average,
}

/// Statistics of one node since it started.
#[derive(Debug)]
pub struct Stats {
    inner: Mutex<Inner>,
}

fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Stats {
    pub fn new() -> Stats {
        let now = unix_seconds();
        Stats {
            inner: Mutex::new(Inner {
                start: now,
                last: now,
                per_kind: [Timing::default(); 13],
                op: Timing::default(),
                harvest: Timing::default(),
                set_size: Average::default(),
                get_size: Average::default(),
                range_size: Average::default(),
                range_entries_size: Average::default(),
                rev_range_entries_size: Average::default(),
                prefix_size: Average::default(),
                del_prefix_size: Average::default(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Plain counters: a panic elsewhere leaves nothing half-updated that matters.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one operation that succeeded; `size` is the value size or
    /// the result count, where Arakoon averages one.
    pub fn record(&self, command: Command, took: Duration, size: Option<usize>) {
        let seconds = took.as_secs_f64();
        let mut s = self.lock();
        s.last = unix_seconds();
        s.op.add(seconds);
        let Some(kind) = kind_of(command) else {
            return;
        };
        if let Some(i) = KINDS.iter().position(|(k, _)| *k == kind) {
            s.per_kind[i].add(seconds);
        }
        if let Some(size) = size {
            let size = size as f64;
            match kind {
                Kind::Set => s.set_size.add(size),
                Kind::Get => s.get_size.add(size),
                Kind::Range => s.range_size.add(size),
                Kind::RangeEntries => s.range_entries_size.add(size),
                Kind::RevRangeEntries => s.rev_range_entries_size.add(size),
                Kind::Prefix => s.prefix_size.add(size),
                Kind::DeletePrefix => s.del_prefix_size.add(size),
                _ => {}
            }
        }
    }

    /// The master made one tlog entry of `updates` client updates.
    pub fn harvested(&self, updates: u32) {
        self.lock().harvest.add(f64::from(updates));
    }

    /// Successful operations per family (Arakoon's `*_info` names without
    /// `_info`), and all of them as `op`.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        let s = self.lock();
        let mut counts: Vec<(&'static str, u64)> = KINDS
            .iter()
            .enumerate()
            .map(|(i, (_, name))| (name.trim_end_matches("_info"), s.per_kind[i].n))
            .collect();
        counts.push(("op", s.op.n));
        counts
    }

    /// The `arakoon_stats` field; `node_is` gives each node's tlog position.
    pub fn to_field(&self, node_is: Vec<(String, u64)>) -> NamedField {
        let s = self.lock();
        let f = |name: &str, v: f64| NamedField::new(name, NamedValue::Float(v));
        let mut fields = vec![
            f("start", s.start),
            f("last", s.last),
            f("avg_set_size", s.set_size.avg),
            f("avg_get_size", s.get_size.avg),
            f("avg_range_size", s.range_size.avg),
            f("avg_range_entries_size", s.range_entries_size.avg),
            f("avg_rev_range_entries_size", s.rev_range_entries_size.avg),
            f("avg_prefix_size", s.prefix_size.avg),
            f("avg_del_prefix_size", s.del_prefix_size.avg),
            s.harvest.field("harvest_stats"),
        ];
        for (i, (_, name)) in KINDS.iter().enumerate() {
            fields.push(s.per_kind[i].field(name));
        }
        fields.push(s.op.field("op_info"));
        fields.push(f("mem_allocated", 0.0));
        for name in [
            "mem_maxrss",
            "mem_minor_collections",
            "mem_major_collections",
            "mem_compactions",
        ] {
            fields.push(NamedField::new(name, NamedValue::Int32(0)));
        }
        fields.push(NamedField::new(
            "node_is",
            NamedValue::List(
                node_is
                    .into_iter()
                    .map(|(name, i)| {
                        NamedField::new(
                            name,
                            NamedValue::Int64(i64::try_from(i).unwrap_or(i64::MAX)),
                        )
                    })
                    .collect(),
            ),
        ));
        NamedField::new("arakoon_stats", NamedValue::List(fields))
    }
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn floats(field: &NamedField) -> Vec<(String, f64)> {
        let NamedValue::List(fields) = &field.value else {
            panic!("{field:?}")
        };
        fields
            .iter()
            .map(|f| match f.value {
                NamedValue::Float(x) => (f.name.clone(), x),
                NamedValue::Int32(i) => (f.name.clone(), f64::from(i)),
                _ => panic!("{f:?}"),
            })
            .collect()
    }

    /// Arakoon's `update_x_stats`, by hand: no sample shows min = max_float,
    /// max = 0; one sample a variance of 0 / 0; then m2 / (n - 1).
    #[test]
    fn timing_is_computed_as_arakoons_x_stats() {
        let mut t = Timing::default();
        let empty = floats(&t.field("x"));
        assert_eq!(
            empty.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["n", "min", "max", "m2", "avg", "var"]
        );
        assert_eq!(empty[1].1, f64::MAX);
        assert_eq!((empty[0].1, empty[2].1, empty[5].1), (0.0, 0.0, 0.0));
        t.add(2.0);
        let one = floats(&t.field("x"));
        assert_eq!((one[1].1, one[2].1, one[4].1), (2.0, 2.0, 2.0));
        assert!(one[5].1.is_nan(), "0 / 0 as Arakoon's: {one:?}");
        t.add(4.0);
        t.add(6.0);
        let three = floats(&t.field("x"));
        // Samples 2, 4, 6: mean 4, m2 = 8, variance m2 / 2 = 4.
        assert_eq!(three[0].1, 3.0);
        assert_eq!((three[1].1, three[2].1), (2.0, 6.0));
        assert!((three[3].1 - 8.0).abs() < 1e-12, "{three:?}");
        assert!((three[4].1 - 4.0).abs() < 1e-12, "{three:?}");
        assert!((three[5].1 - 4.0).abs() < 1e-12, "{three:?}");
    }

    /// `harvest_stats` carries the six entries of every `*_info` list.
    #[test]
    fn harvest_stats_is_a_full_x_stats() {
        let stats = Stats::new();
        stats.harvested(3);
        stats.harvested(5);
        let field = stats.to_field(Vec::new());
        let harvest = field.get("harvest_stats").expect("harvest_stats");
        let values = floats(harvest);
        assert_eq!(values.len(), 6);
        assert_eq!(values[0].1, 2.0);
        assert_eq!((values[1].1, values[2].1, values[4].1), (3.0, 5.0, 4.0));
    }
}
