//! Appends with fsync (group commit) next to a plain `fdatasync` loop on the
//! same directory, on the real disk.
//!
//! `cargo bench -p tlog --bench append_fsync` (directory: `TLOG_BENCH_DIR`,
//! default the target's tmp directory, which is on the build's disk, not a
//! tmpfs; seconds per configuration: `TLOG_BENCH_SECONDS`, default 4).
//!
//! For each payload size and batch size (entries per sync) it prints the
//! time of one append + sync, the entries per second, and the ratio of that
//! time to a plain `pwrite` + `fdatasync` appending to a file in the same
//! directory: of 8 bytes (the disk's sync latency), and of as many bytes as
//! the tlog writes per sync (the disk's cost for that volume). 1.0 means the
//! tlog costs no more than the disk. The three are measured in turn, one
//! operation each, so that a disk whose latency drifts (a shared virtual
//! disk does, by 10x over seconds) weighs on all three alike. The tlog's
//! time includes rotation and the sealing (lz4) of each full 32 MiB segment
//! (`TLOG_BENCH_COMPRESSION=none` leaves sealing out).

use disk::{Disk, DiskFile, OpenMode, RealDisk};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tlog::{Compression, Entry, Tlog, TlogOptions, FRAME_OVERHEAD_LEN};

fn bench_dir() -> PathBuf {
    std::env::var_os("TLOG_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tlog-bench"))
}

fn seconds() -> Duration {
    let secs = std::env::var("TLOG_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(4.0);
    Duration::from_secs_f64(secs)
}

/// A file appended to with `pwrite(len_bytes) + fdatasync`.
struct PlainAppender {
    path: PathBuf,
    file: Box<dyn DiskFile>,
    data: Vec<u8>,
    count: u64,
    total: Duration,
    max: Duration,
}

impl PlainAppender {
    fn new(path: PathBuf, len_bytes: usize) -> std::io::Result<Self> {
        let file = RealDisk.open(&path, OpenMode::Truncate)?;
        Ok(Self {
            path,
            file,
            data: vec![0xa5; len_bytes],
            count: 0,
            total: Duration::ZERO,
            max: Duration::ZERO,
        })
    }

    fn step(&mut self) -> std::io::Result<()> {
        let start = Instant::now();
        self.file
            .write_all_at(self.count * self.data.len() as u64, &self.data)?;
        self.file.sync_data()?;
        let elapsed = start.elapsed();
        self.total += elapsed;
        self.max = self.max.max(elapsed);
        self.count += 1;
        Ok(())
    }

    fn mean_secs(&self) -> f64 {
        self.total.as_secs_f64() / self.count as f64
    }

    fn remove(self) -> std::io::Result<()> {
        drop(self.file);
        RealDisk.remove(&self.path)
    }
}

/// `TLOG_BENCH_COMPRESSION=none` measures without sealing.
fn options() -> TlogOptions {
    let mut options = TlogOptions::default();
    if std::env::var("TLOG_BENCH_COMPRESSION").as_deref() == Ok("none") {
        options.compression = Compression::None;
    }
    options
}

struct Row {
    tlog_secs_per_sync: f64,
    tlog_secs_max: f64,
    entries_per_sec: f64,
    mib_per_sec: f64,
    plain_8_secs: f64,
    plain_same_secs: f64,
    plain_same_secs_max: f64,
}

fn measure(
    dir: &Path,
    payload_len: usize,
    batch: usize,
    duration: Duration,
) -> Result<Row, Box<dyn std::error::Error>> {
    let tlog_dir = dir.join(format!("tlog-{payload_len}-{batch}"));
    if tlog_dir.exists() {
        std::fs::remove_dir_all(&tlog_dir)?;
    }
    let mut tlog = Tlog::open(RealDisk::shared(), tlog_dir.clone(), options())?;
    let bytes_per_sync = batch * (payload_len + FRAME_OVERHEAD_LEN as usize);
    let mut plain_8 = PlainAppender::new(dir.join("plain-8"), 8)?;
    let mut plain_same = PlainAppender::new(dir.join("plain-same"), bytes_per_sync)?;
    // Payloads compress about as well as keys and values do (lz4 ~2x here),
    // not to nothing.
    let payload: Vec<u8> = (0..payload_len)
        .map(|i| {
            if i % 2 == 0 {
                (i / 2 % 251) as u8
            } else {
                (i * 7919 % 256) as u8
            }
        })
        .collect();
    let mut entries: Vec<Entry> = Vec::with_capacity(batch);
    let mut tlog_total = Duration::ZERO;
    let mut tlog_max = Duration::ZERO;
    let mut syncs = 0u64;
    let start = Instant::now();
    while start.elapsed() < duration {
        entries.clear();
        let next = tlog.last_index() + 1;
        for k in 0..batch as u64 {
            entries.push(Entry {
                index: next + k,
                term: 1,
                payload: payload.clone(),
            });
        }
        let tlog_start = Instant::now();
        tlog.append(&entries)?;
        tlog.sync()?;
        let tlog_elapsed = tlog_start.elapsed();
        tlog_total += tlog_elapsed;
        tlog_max = tlog_max.max(tlog_elapsed);
        syncs += 1;
        plain_8.step()?;
        plain_same.step()?;
    }
    drop(tlog);
    std::fs::remove_dir_all(&tlog_dir)?;
    let tlog_secs = tlog_total.as_secs_f64();
    let entries_total = syncs * batch as u64;
    let row = Row {
        tlog_secs_per_sync: tlog_secs / syncs as f64,
        tlog_secs_max: tlog_max.as_secs_f64(),
        entries_per_sec: entries_total as f64 / tlog_secs,
        mib_per_sec: (entries_total * payload_len as u64) as f64 / tlog_secs / (1 << 20) as f64,
        plain_8_secs: plain_8.mean_secs(),
        plain_same_secs: plain_same.mean_secs(),
        plain_same_secs_max: plain_same.max.as_secs_f64(),
    };
    plain_8.remove()?;
    plain_same.remove()?;
    Ok(row)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = bench_dir();
    std::fs::create_dir_all(&dir)?;
    let duration = seconds();
    println!(
        "tlog append + sync vs plain fdatasync, in {}",
        dir.display()
    );
    println!("| payload | entries/sync | µs per append+sync | max µs | entries/s | payload MiB/s | fdatasync µs (8 B) | ratio | fdatasync µs (same bytes) | its max µs | ratio |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for payload_len in [100usize, 4096] {
        for batch in [1usize, 16, 256] {
            let row = measure(&dir, payload_len, batch, duration)?;
            println!(
                "| {payload_len} B | {batch} | {:.0} | {:.0} | {:.0} | {:.1} | {:.0} | {:.2} | {:.0} | {:.0} | {:.2} |",
                row.tlog_secs_per_sync * 1e6,
                row.tlog_secs_max * 1e6,
                row.entries_per_sec,
                row.mib_per_sec,
                row.plain_8_secs * 1e6,
                row.tlog_secs_per_sync / row.plain_8_secs,
                row.plain_same_secs * 1e6,
                row.plain_same_secs_max * 1e6,
                row.tlog_secs_per_sync / row.plain_same_secs,
            );
        }
    }
    Ok(())
}
