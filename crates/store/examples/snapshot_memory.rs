//! Shows that a snapshot export and import stream: fills a store with
//! 300,000 pairs of 1,000-byte values (about 300 MiB) on the real disk,
//! exports it to a file, imports it into a new store, and prints the peak
//! resident memory after each step (it stays near redb's page cache, far
//! below the store's size). Then times a reopen with and without
//! `verify_on_open`.
//!
//! Run: `cargo run --release -p store --example snapshot_memory [DIR]`
//! (the files go in a temporary directory under DIR, default `target`).

use disk::RealDisk;
use protocol::Update;
use std::error::Error;
use store::{Store, StoreOptions};

const ENTRIES: u64 = 300;
const SETS_PER_ENTRY: u64 = 1000;
const VALUE_BYTES: usize = 1000;

fn peak_rss_mib() -> Result<u64, Box<dyn Error>> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .ok_or("no VmHWM in /proc/self/status")?;
    let kib: u64 = line.split_whitespace().nth(1).ok_or("bad VmHWM")?.parse()?;
    Ok(kib / 1024)
}

fn main() -> Result<(), Box<dyn Error>> {
    let base = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "target".into()));
    std::fs::create_dir_all(&base)?;
    let dir = tempfile::tempdir_in(&base)?;
    let options = StoreOptions::default();
    let source = Store::open(RealDisk::shared(), &dir.path().join("source.db"), &options)?;
    let mut n = 0u64;
    for index in 1..=ENTRIES {
        let updates: Vec<Update> = (0..SETS_PER_ENTRY)
            .map(|_| {
                n += 1;
                Update::Set {
                    key: format!("key{n:09}").into_bytes(),
                    value: vec![b'v'; VALUE_BYTES],
                }
            })
            .collect();
        source.apply(index, &updates)?;
        if index % 50 == 0 {
            source.checkpoint()?;
        }
    }
    println!("filled {n} pairs: peak rss {} MiB", peak_rss_mib()?);

    let snapshot_path = dir.path().join("snapshot");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&snapshot_path)?);
    let bytes = source.export()?.write_to(&mut out)?;
    drop(out);
    source.close()?;
    println!(
        "exported {} MiB: peak rss {} MiB",
        bytes >> 20,
        peak_rss_mib()?
    );

    let target = Store::open(RealDisk::shared(), &dir.path().join("target.db"), &options)?;
    let mut input = std::io::BufReader::new(std::fs::File::open(&snapshot_path)?);
    let started = std::time::Instant::now();
    let applied_index = target.import(&mut input)?;
    println!(
        "imported {} pairs at index {applied_index} in {:.1} s: peak rss {} MiB",
        target.read()?.key_count()?,
        started.elapsed().as_secs_f64(),
        peak_rss_mib()?
    );
    target.close()?;

    for verify_on_open in [true, false] {
        let options = StoreOptions {
            verify_on_open,
            ..StoreOptions::default()
        };
        let started = std::time::Instant::now();
        let reopened = Store::open(RealDisk::shared(), &dir.path().join("target.db"), &options)?;
        println!(
            "reopened (verify_on_open: {verify_on_open}) in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        reopened.close()?;
    }
    Ok(())
}
