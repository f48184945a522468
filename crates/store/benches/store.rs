//! Store benchmarks on the real disk: applies per second (entries of 1 and of
//! 100 sets of 100-byte values), a range scan of 10,000 keys, and the cost of
//! a checkpoint (one durable commit).
//!
//! Run: `cargo bench -p store --bench store`. The store files live under the
//! target directory's tmp (a real disk, not tmpfs).

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use disk::RealDisk;
use protocol::{KeyRange, Update};
use std::hint::black_box;
use std::path::Path;
use store::{Order, Store, StoreOptions};

const VALUE_BYTES: usize = 100;
/// Keys cycle through this many, so the store stays a fixed size however
/// many iterations criterion runs.
const KEY_SPACE: u64 = 100_000;
/// Applies do not fsync; a node checkpoints now and then. The apply benches
/// include a checkpoint every this many entries, amortised.
const CHECKPOINT_EVERY_ENTRIES: u64 = 10_000;

fn bench_dir() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).expect("bench directory");
    tempfile::tempdir_in(base).expect("bench directory")
}

fn open(dir: &Path, name: &str) -> Store {
    Store::open(
        RealDisk::shared(),
        &dir.join(name),
        &StoreOptions::default(),
    )
    .expect("open store")
}

fn key(n: u64) -> Vec<u8> {
    format!("key{:010}", n % KEY_SPACE).into_bytes()
}

fn sets(first: u64, count: u64) -> Vec<Update> {
    (first..first + count)
        .map(|n| Update::Set {
            key: key(n),
            value: vec![b'v'; VALUE_BYTES],
        })
        .collect()
}

fn apply_batches(c: &mut Criterion) {
    let dir = bench_dir();
    let mut group = c.benchmark_group("apply");
    for batch in [1u64, 100] {
        let store = open(dir.path(), &format!("apply-{batch}.db"));
        let mut n = 0u64;
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("entry_of_{batch}_sets_100B"), |b| {
            b.iter_batched(
                || {
                    n += batch;
                    sets(n, batch)
                },
                |updates| {
                    let index = store.applied_index() + 1;
                    store.apply(index, &updates).expect("apply");
                    if index % CHECKPOINT_EVERY_ENTRIES == 0 {
                        store.checkpoint().expect("checkpoint");
                    }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

fn checkpoint(c: &mut Criterion) {
    let dir = bench_dir();
    let store = open(dir.path(), "checkpoint.db");
    let mut n = 0u64;
    c.bench_function("checkpoint_after_one_entry_of_1_set", |b| {
        b.iter(|| {
            n += 1;
            store
                .apply(store.applied_index() + 1, &sets(n, 1))
                .expect("apply");
            store.checkpoint().expect("checkpoint")
        })
    });
}

fn range_scan(c: &mut Criterion) {
    let dir = bench_dir();
    let store = open(dir.path(), "range.db");
    for first in (0..KEY_SPACE).step_by(1000) {
        store
            .apply(store.applied_index() + 1, &sets(first, 1000))
            .expect("fill");
    }
    store.checkpoint().expect("checkpoint");
    let range = KeyRange {
        first: Some(key(40_000)),
        first_inclusive: true,
        last: None,
        last_inclusive: true,
        max: 10_000,
    };
    let mut group = c.benchmark_group("range");
    group.throughput(Throughput::Elements(10_000));
    group.bench_function("range_entries_10000_of_100000", |b| {
        b.iter(|| {
            let entries = store
                .read()
                .and_then(|view| view.range_entries(&range, Order::Ascending, usize::MAX))
                .expect("range");
            assert_eq!(entries.len(), 10_000);
            black_box(entries)
        })
    });
    group.bench_function("range_keys_10000_of_100000", |b| {
        b.iter(|| {
            let keys = store
                .read()
                .and_then(|view| view.range(&range, usize::MAX))
                .expect("range");
            assert_eq!(keys.len(), 10_000);
            black_box(keys)
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(std::time::Duration::from_secs(5));
    targets = apply_batches, range_scan, checkpoint
}
criterion_main!(benches);
