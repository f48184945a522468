//! Helpers shared by the tlog's integration tests.
#![allow(dead_code)]

use disk::{DiskRef, SimDisk};
use std::path::PathBuf;
use tlog::{Compression, Entry, Tlog, TlogOptions};

pub fn dir() -> PathBuf {
    PathBuf::from("/node0/tlog")
}

/// An entry whose payload starts with `tag` (so entries re-appended after a
/// truncation differ from the ones they replace) and is `len` bytes long.
pub fn entry(index: u64, term: u64, tag: u64, len: usize) -> Entry {
    let mut payload = tag.to_le_bytes().to_vec();
    payload.resize(len.max(8), (tag % 251) as u8);
    Entry {
        index,
        term,
        payload,
    }
}

pub fn small_options(max_entries: u64, max_size: u64) -> TlogOptions {
    TlogOptions {
        max_entries,
        max_size,
        compression: Compression::Lz4,
    }
}

pub fn open_sim(disk: &SimDisk, options: TlogOptions) -> Tlog {
    match Tlog::open(disk.shared(), dir(), options) {
        Ok(tlog) => tlog,
        Err(err) => panic!("open failed: {err}"),
    }
}

pub fn open_on(disk: DiskRef, dir: PathBuf, options: TlogOptions) -> Tlog {
    match Tlog::open(disk, dir, options) {
        Ok(tlog) => tlog,
        Err(err) => panic!("open failed: {err}"),
    }
}

/// Every entry the tlog holds, read in one go.
pub fn all_entries(tlog: &Tlog) -> Vec<Entry> {
    match tlog.read(tlog.first_index(), tlog.last_index() + 1, u64::MAX) {
        Ok(entries) => entries,
        Err(err) => panic!("read failed: {err}"),
    }
}

/// A deterministic `choose(n)` for `SimDisk::crash`.
pub fn chooser(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed;
    move |n| {
        // splitmix64
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        z % n
    }
}
