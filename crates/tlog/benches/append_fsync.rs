//! Appends with fsync (group commit) next to a plain `fdatasync` loop on the
//! same directory, on the real disk.
//!
//! `cargo bench -p tlog --bench append_fsync` (directory: `TLOG_BENCH_DIR`,
//! default the target's tmp directory, which is on the build's disk, not a
//! tmpfs; seconds per measurement: `TLOG_BENCH_SECONDS`, default 2).
//!
//! For each payload size and batch size (entries per sync) it prints the
//! time of one append + sync, the entries per second, and the ratio of that
//! time to a plain `pwrite` + `fdatasync` measured right before on the same
//! directory: of 8 bytes (the disk's sync latency), and of as many bytes as
//! the tlog writes per sync (the disk's cost for that volume). 1.0 means the
//! tlog costs no more than the disk. The tlog's time includes rotation and
//! the sealing (lz4) of each full 32 MiB segment.

use disk::{Disk, OpenMode, RealDisk};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tlog::{Entry, Tlog, TlogOptions};

fn bench_dir() -> PathBuf {
    std::env::var_os("TLOG_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tlog-bench"))
}

fn seconds() -> Duration {
    let secs = std::env::var("TLOG_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

/// Mean seconds of one `pwrite(len_bytes) + fdatasync` appending to a
/// file, over `duration`.
fn plain_fdatasync(
    dir: &Path,
    len_bytes: usize,
    duration: Duration,
) -> Result<f64, Box<dyn std::error::Error>> {
    let path = dir.join("plain-fdatasync");
    let file = RealDisk.open(&path, OpenMode::Truncate)?;
    let data = vec![0xa5u8; len_bytes];
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < duration {
        file.write_all_at(count * len_bytes as u64, &data)?;
        file.sync_data()?;
        count += 1;
    }
    let secs = start.elapsed().as_secs_f64() / count as f64;
    drop(file);
    RealDisk.remove(&path)?;
    Ok(secs)
}

struct TlogRun {
    secs_per_sync: f64,
    entries_per_sec: f64,
    mib_per_sec: f64,
}

fn tlog_appends(
    dir: &Path,
    payload_len: usize,
    batch: usize,
    duration: Duration,
) -> Result<TlogRun, Box<dyn std::error::Error>> {
    let tlog_dir = dir.join(format!("tlog-{payload_len}-{batch}"));
    if tlog_dir.exists() {
        std::fs::remove_dir_all(&tlog_dir)?;
    }
    let mut tlog = Tlog::open(RealDisk::shared(), tlog_dir.clone(), TlogOptions::default())?;
    let payload = vec![0x5a; payload_len];
    let mut entries: Vec<Entry> = Vec::with_capacity(batch);
    let start = Instant::now();
    let mut syncs = 0u64;
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
        tlog.append(&entries)?;
        tlog.sync()?;
        syncs += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let entries_total = syncs * batch as u64;
    drop(tlog);
    std::fs::remove_dir_all(&tlog_dir)?;
    Ok(TlogRun {
        secs_per_sync: elapsed / syncs as f64,
        entries_per_sec: entries_total as f64 / elapsed,
        mib_per_sec: (entries_total * payload_len as u64) as f64 / elapsed / (1 << 20) as f64,
    })
}

const ROUNDS: u32 = 3;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = bench_dir();
    std::fs::create_dir_all(&dir)?;
    let duration = seconds();
    println!(
        "tlog append + sync vs plain fdatasync, in {}",
        dir.display()
    );
    println!("| payload | entries/sync | µs per append+sync | entries/s | MiB/s | fdatasync µs (8 B) | ratio | fdatasync µs (same bytes) | ratio |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for payload_len in [100usize, 4096] {
        for batch in [1usize, 16, 256] {
            let bytes_per_sync = batch * (payload_len + tlog::FRAME_OVERHEAD_LEN as usize);
            // Rounds interleave the three measurements, so a disk whose speed
            // drifts (a shared virtual disk does) shifts them alike; medians.
            let mut plain = Vec::new();
            let mut same_bytes = Vec::new();
            let mut runs = Vec::new();
            for _ in 0..ROUNDS {
                plain.push(plain_fdatasync(&dir, 8, duration / (2 * ROUNDS))?);
                same_bytes.push(plain_fdatasync(
                    &dir,
                    bytes_per_sync,
                    duration / (2 * ROUNDS),
                )?);
                runs.push(tlog_appends(&dir, payload_len, batch, duration / ROUNDS)?);
            }
            runs.sort_by(|a, b| a.secs_per_sync.total_cmp(&b.secs_per_sync));
            let run = &runs[runs.len() / 2];
            let plain = median(plain);
            let same_bytes = median(same_bytes);
            println!(
                "| {payload_len} B | {batch} | {:.0} | {:.0} | {:.1} | {:.0} | {:.2} | {:.0} | {:.2} |",
                run.secs_per_sync * 1e6,
                run.entries_per_sec,
                run.mib_per_sec,
                plain * 1e6,
                run.secs_per_sync / plain,
                same_bytes * 1e6,
                run.secs_per_sync / same_bytes,
            );
        }
    }
    Ok(())
}
