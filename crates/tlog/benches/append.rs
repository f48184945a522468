//! The tlog's append path under criterion: framing (CRC32C), the buffered
//! write into the current segment and its rotation (no sync); and append
//! plus sync, the path of every write of a node with `fsync = true`.
//!
//! Run: `cargo bench -p tlog --bench append`. The tlog lives under the
//! target directory's tmp (the build's disk, not a tmpfs) and is started
//! afresh every [`FRESH_EVERY_ENTRIES`] entries (not timed), so the disk use
//! stays bounded however many iterations criterion runs. A shared virtual
//! disk's sync latency drifts by much over seconds: for the tlog's cost
//! next to a plain `fdatasync` measured alongside, see `append_fsync.rs`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use disk::RealDisk;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tlog::{Compression, Entry, Tlog, TlogOptions};

/// A new, empty tlog after this many entries.
const FRESH_EVERY_ENTRIES: u64 = 200_000;

/// A tlog in `dir`, replaced by an empty one every so often.
struct Bench {
    dir: PathBuf,
    tlog: Option<Tlog>,
    appended: u64,
}

impl Bench {
    fn new(dir: &Path) -> Bench {
        let mut bench = Bench {
            dir: dir.join("tlog"),
            tlog: None,
            appended: 0,
        };
        bench.fresh();
        bench
    }

    fn fresh(&mut self) {
        drop(self.tlog.take());
        if self.dir.exists() {
            std::fs::remove_dir_all(&self.dir).expect("remove the old tlog");
        }
        let options = TlogOptions {
            // Sealing is a step of its own in the node (`seal_step`).
            compression: Compression::None,
            ..TlogOptions::default()
        };
        self.tlog =
            Some(Tlog::open(RealDisk::shared(), self.dir.clone(), options).expect("open tlog"));
        self.appended = 0;
    }

    /// `batch` entries of `payload`, appended, then synced if `sync`; the
    /// time of that alone.
    fn step(&mut self, payload: &[u8], batch: usize, sync: bool) -> Duration {
        if self.appended >= FRESH_EVERY_ENTRIES {
            self.fresh();
        }
        let tlog = self.tlog.as_mut().expect("a tlog is open");
        let next = tlog.last_index() + 1;
        let entries: Vec<Entry> = (0..batch as u64)
            .map(|k| Entry {
                index: next + k,
                term: 1,
                payload: payload.to_vec(),
            })
            .collect();
        let start = Instant::now();
        tlog.append(&entries).expect("append");
        if sync {
            tlog.sync().expect("sync");
        }
        let elapsed = start.elapsed();
        self.appended += batch as u64;
        elapsed
    }
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7919 % 251) as u8).collect()
}

fn bench_dir() -> tempfile::TempDir {
    let base = Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(base).expect("bench directory");
    tempfile::tempdir_in(base).expect("bench directory")
}

fn append(c: &mut Criterion) {
    let dir = bench_dir();
    let mut bench = Bench::new(dir.path());
    let mut group = c.benchmark_group("tlog append, no sync");
    for (len, batch) in [(100, 1), (100, 16), (4096, 1)] {
        let data = payload(len);
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("{batch} x {len} B"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bench.step(&data, batch, false)).sum());
        });
    }
    group.finish();
}

fn append_sync(c: &mut Criterion) {
    let dir = bench_dir();
    let mut bench = Bench::new(dir.path());
    let mut group = c.benchmark_group("tlog append + sync");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(4));
    for (len, batch) in [(100, 1), (100, 16)] {
        let data = payload(len);
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("{batch} x {len} B"), |b| {
            b.iter_custom(|iters| (0..iters).map(|_| bench.step(&data, batch, true)).sum());
        });
    }
    group.finish();
}

criterion_group!(benches, append, append_sync);
criterion_main!(benches);
