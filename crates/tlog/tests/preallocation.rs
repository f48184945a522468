//! Preallocated segments: a plain segment is its header, its frames, then
//! zero bytes up to `max_size`. The zeros are free space: never data, never
//! a torn tail, never a warning. Anything non-zero after the last intact
//! frame is judged like a torn frame: cut (and the segment allocated again)
//! if no intact later frame follows, corruption if one does.

mod common;

use common::{all_entries, chooser, dir, entry, open_on, open_sim, small_options, warnings_during};
use disk::{DiskRef, OpenMode, RealDisk, SimDisk};
use std::path::{Path, PathBuf};
use tlog::{
    Compression, Entry, Tlog, TlogError, TlogOptions, FRAME_OVERHEAD_LEN, SEGMENT_HEADER_LEN,
};

const MAX_SIZE: u64 = 1 << 20;

fn options() -> TlogOptions {
    small_options(1000, MAX_SIZE)
}

fn test_entries(count: u64, tag: u64) -> Vec<Entry> {
    (1..=count)
        .map(|i| entry(i, 1 + i / 4, tag + i, 20 + i as usize * 3))
        .collect()
}

/// Where each frame of `entries`, written from the start of a segment, ends.
fn frame_ends(entries: &[Entry]) -> Vec<u64> {
    let mut at = SEGMENT_HEADER_LEN;
    entries
        .iter()
        .map(|e| {
            at += FRAME_OVERHEAD_LEN + e.payload.len() as u64;
            at
        })
        .collect()
}

/// Appends `count` entries into one segment and syncs; returns the entries,
/// the segment's path and where each frame ends.
fn write_synced(
    disk: DiskRef,
    dir: PathBuf,
    options: TlogOptions,
    count: u64,
) -> (Vec<Entry>, PathBuf, Vec<u64>) {
    let mut tlog = open_on(disk, dir, options);
    let entries = test_entries(count, 0);
    assert!(tlog.append(&entries).is_ok());
    assert_eq!(tlog.sync().ok(), Some(count));
    let segments = tlog.segments();
    assert_eq!(segments.len(), 1);
    let ends = frame_ends(&entries);
    (entries, segments[0].path.clone(), ends)
}

fn file_bytes(disk: &DiskRef, path: &Path) -> Vec<u8> {
    match disk::read_all(disk.as_ref(), path) {
        Ok(bytes) => bytes,
        Err(err) => panic!("read {}: {err}", path.display()),
    }
}

fn file_len(disk: &DiskRef, path: &Path) -> u64 {
    match disk.open(path, OpenMode::Read).and_then(|f| f.len()) {
        Ok(len) => len,
        Err(err) => panic!("length of {}: {err}", path.display()),
    }
}

/// Writes `data` at `offset` of `path`, durably (damage made on purpose).
fn write_at(disk: &DiskRef, path: &Path, offset: u64, data: &[u8]) {
    let Ok(file) = disk.open(path, OpenMode::ReadWrite) else {
        panic!("open {}", path.display());
    };
    assert!(file.write_all_at(offset, data).is_ok());
    assert!(file.sync_data().is_ok());
}

/// The bytes from `from` to the end of `path` are zeros, up to `len`.
fn assert_zeros_after(disk: &DiskRef, path: &Path, from: u64, len: u64, context: &str) {
    let bytes = file_bytes(disk, path);
    assert_eq!(bytes.len() as u64, len, "{context}: file length");
    if let Some(at) = bytes[from as usize..].iter().position(|&b| b != 0) {
        panic!(
            "{context}: non-zero byte at {} after the data end {from}",
            from + at as u64
        );
    }
}

fn open_warned(disk: &DiskRef, dir: &Path, options: TlogOptions) -> (Tlog, Vec<String>) {
    let (result, warnings) =
        warnings_during(|| Tlog::open(disk.clone(), dir.to_path_buf(), options));
    match result {
        Ok(tlog) => (tlog, warnings),
        Err(err) => panic!("open failed: {err}"),
    }
}

/// A SimDisk, and real directories under the target's tmp directory.
fn disks(root: &Path) -> Vec<(&'static str, DiskRef, PathBuf)> {
    vec![
        ("sim", SimDisk::new().shared(), dir()),
        ("real", RealDisk::shared(), root.join("tlog")),
    ]
}

fn temp_root(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap_or_else(|e| panic!("tempdir: {e}"))
}

#[test]
fn a_reopened_log_ends_cleanly_before_its_zero_tail_without_a_warning_and_keeps_its_size() {
    let root = temp_root("tlog-prealloc-clean");
    for (name, disk, dir) in disks(root.path()) {
        let tlog = open_on(disk.clone(), dir.clone(), options());
        let path = tlog.segments()[0].path.clone();
        drop(tlog);
        assert_zeros_after(&disk, &path, SEGMENT_HEADER_LEN, MAX_SIZE, name);
        let (entries, path2, ends) = write_synced(disk.clone(), dir.clone(), options(), 20);
        assert_eq!(path, path2);
        assert_zeros_after(&disk, &path, ends[19], MAX_SIZE, name);
        for round in 0..2 {
            let (mut tlog, warnings) = open_warned(&disk, &dir, options());
            assert!(warnings.is_empty(), "{name} round {round}: {warnings:?}");
            assert_eq!(all_entries(&tlog), entries, "{name} round {round}");
            assert_eq!(tlog.synced_index(), 20);
            assert_eq!(file_len(&disk, &path), MAX_SIZE, "{name} round {round}");
            // Appends after a reopen go right after the last frame.
            assert!(tlog.append(&[]).is_ok());
            drop(tlog);
        }
        let mut tlog = open_on(disk.clone(), dir.clone(), options());
        let more = entry(21, 9, 77, 50);
        assert!(tlog.append(std::slice::from_ref(&more)).is_ok());
        assert!(tlog.sync().is_ok());
        drop(tlog);
        let (tlog, warnings) = open_warned(&disk, &dir, options());
        assert!(warnings.is_empty(), "{name}: {warnings:?}");
        let mut expected = entries.clone();
        expected.push(more);
        assert_eq!(all_entries(&tlog), expected, "{name}");
        assert_eq!(file_len(&disk, &path), MAX_SIZE, "{name}");
    }
}

#[test]
fn the_default_segment_is_32_mib_of_allocated_blocks_on_the_real_disk() {
    use std::os::unix::fs::MetadataExt;
    let root = temp_root("tlog-prealloc-default");
    let disk = RealDisk::shared();
    let dir = root.path().join("tlog");
    let (entries, path, _) = write_synced(disk.clone(), dir.clone(), TlogOptions::default(), 5);
    let max_size = TlogOptions::default().max_size;
    assert_eq!(file_len(&disk, &path), max_size);
    let meta = std::fs::metadata(&path).unwrap_or_else(|e| panic!("stat: {e}"));
    assert!(
        meta.blocks() * 512 >= max_size,
        "allocated, not sparse: {} blocks",
        meta.blocks()
    );
    let (tlog, warnings) = open_warned(&disk, &dir, TlogOptions::default());
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(all_entries(&tlog), entries);
}

#[test]
fn full_plain_segments_keep_their_zero_tail_and_garbage_there_is_corruption() {
    // Compression off: full segments stay plain, with their preallocation.
    let options = TlogOptions {
        compression: Compression::None,
        ..small_options(3, 4096)
    };
    let disk = SimDisk::new();
    let mut tlog = open_sim(&disk, options);
    let entries = test_entries(8, 0);
    assert!(tlog.append(&entries).is_ok());
    assert!(tlog.sync().is_ok());
    let segments = tlog.segments();
    assert_eq!(segments.len(), 3);
    drop(tlog);
    let shared = disk.shared();
    for segment in &segments {
        assert_eq!(file_len(&shared, &segment.path), 4096);
    }
    let (tlog, warnings) = open_warned(&shared, &dir(), options);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(all_entries(&tlog), entries);
    drop(tlog);
    // A full segment was whole and synced at rotation: a non-zero byte in
    // its zero tail is damage, named at the end of its frames.
    let data_end = frame_ends(&entries[..3])[2];
    assert!(disk.flip_bit(&segments[0].path, 3000, 2));
    match Tlog::open(disk.shared(), dir(), options) {
        Err(TlogError::Corrupt { path, offset, .. }) => {
            assert_eq!(path, segments[0].path);
            assert_eq!(offset, data_end);
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

#[test]
fn a_torn_frame_followed_by_zeros_is_cut_with_a_warning_and_the_segment_allocated_again() {
    let root = temp_root("tlog-prealloc-torn");
    for (name, disk, dir) in disks(root.path()) {
        let (entries, path, ends) = write_synced(disk.clone(), dir.clone(), options(), 10);
        // The last frame's second half never reached the disk: zeros.
        let start = ends[8];
        let mid = (start + ends[9]) / 2;
        write_at(&disk, &path, mid, &vec![0u8; (ends[9] - mid) as usize]);
        let (mut tlog, warnings) = open_warned(&disk, &dir, options());
        assert_eq!(all_entries(&tlog), entries[..9], "{name}");
        assert_eq!(warnings.len(), 1, "{name}: {warnings:?}");
        assert!(
            warnings[0].contains(&format!("offset={start} "))
                && warnings[0].contains(&path.display().to_string()),
            "{name}: the warning names file and offset: {}",
            warnings[0]
        );
        assert_zeros_after(&disk, &path, start, MAX_SIZE, name);
        // The log goes on from the cut; no warning the next time.
        let next = entry(10, 9, 555, 40);
        assert!(tlog.append(std::slice::from_ref(&next)).is_ok());
        assert!(tlog.sync().is_ok());
        drop(tlog);
        let (tlog, warnings) = open_warned(&disk, &dir, options());
        assert!(warnings.is_empty(), "{name}: {warnings:?}");
        let mut expected = entries[..9].to_vec();
        expected.push(next);
        assert_eq!(all_entries(&tlog), expected, "{name}");
        assert_eq!(file_len(&disk, &path), MAX_SIZE, "{name}");
    }
}

#[test]
fn a_flipped_byte_in_the_zero_tail_is_a_torn_tail_never_data_never_corruption() {
    let (entries, _, ends) = write_synced(SimDisk::new().shared(), dir(), options(), 10);
    let end = ends[9];
    for offset in [
        end,
        end + 1,
        end + 3,
        end + 8,
        end + 23,
        end + 1000,
        500_000,
        MAX_SIZE - 1,
    ] {
        for bit in [0u8, 5, 7] {
            let disk = SimDisk::new();
            let shared = disk.shared();
            let (_, path, _) = write_synced(shared.clone(), dir(), options(), 10);
            assert!(disk.flip_bit(&path, offset, bit));
            let context = format!("bit {bit} of byte {offset}");
            let (mut tlog, warnings) = open_warned(&shared, &dir(), options());
            assert_eq!(all_entries(&tlog), entries, "{context}");
            assert_eq!(warnings.len(), 1, "{context}: {warnings:?}");
            assert!(
                warnings[0].contains(&format!("offset={end} ")),
                "{context}: {}",
                warnings[0]
            );
            assert_zeros_after(&shared, &path, end, MAX_SIZE, &context);
            // The next entry lands where the flipped byte was; it reads back.
            let next = entry(11, 9, 11, 30);
            assert!(tlog.append(std::slice::from_ref(&next)).is_ok());
            assert!(tlog.sync().is_ok());
            drop(tlog);
            let tlog = open_sim(&disk, options());
            let mut expected = entries.clone();
            expected.push(next);
            assert_eq!(all_entries(&tlog), expected, "{context}");
        }
    }
}

/// The bytes of frame `index` of a log of `count` test entries.
fn frame_of(index: u64, count: u64) -> Vec<u8> {
    let disk = SimDisk::new().shared();
    let (_, path, ends) = write_synced(disk.clone(), dir(), options(), count);
    let start = if index == 1 {
        SEGMENT_HEADER_LEN
    } else {
        ends[index as usize - 2]
    };
    file_bytes(&disk, &path)[start as usize..ends[index as usize - 1] as usize].to_vec()
}

/// `result` is corruption of `path` at `offset`, naming the intact later
/// frame found at byte `later`.
fn expect_corrupt_at(
    result: Result<Tlog, TlogError>,
    path: &Path,
    offset: u64,
    later: u64,
    context: &str,
) {
    match result {
        Err(TlogError::Corrupt {
            path: p,
            offset: o,
            what,
        }) => {
            assert_eq!(p, path, "{context}");
            assert_eq!(o, offset, "{context}: {what}");
            assert!(what.contains(&format!("byte {later}")), "{context}: {what}");
        }
        other => panic!("{context}: expected corruption, got {other:?}"),
    }
}

#[test]
fn damage_then_zeros_then_an_intact_later_frame_is_corruption_even_far_into_the_tail() {
    let later = frame_of(12, 12);
    for (flip, at) in [(false, 600_000u64), (true, 600_000), (true, MAX_SIZE - 200)] {
        let disk = SimDisk::new();
        let shared = disk.shared();
        let (_, path, ends) = write_synced(shared.clone(), dir(), options(), 10);
        if flip {
            assert!(disk.flip_bit(&path, ends[9] + 5, 1));
        }
        write_at(&shared, &path, at, &later);
        let result = Tlog::open(shared.clone(), dir(), options());
        let context = format!("flip {flip}, frame at {at}");
        expect_corrupt_at(result, &path, ends[9], at, &context);
    }
}

#[test]
fn the_later_frame_search_over_a_32_mib_zero_tail_on_the_real_disk() {
    let root = temp_root("tlog-prealloc-search");
    let disk = RealDisk::shared();
    let dir = root.path().join("tlog");
    let options = TlogOptions::default();
    let (entries, path, ends) = write_synced(disk.clone(), dir.clone(), options, 10);
    let later = frame_of(12, 12);
    // A torn byte after the last frame, then zeros: a torn tail.
    write_at(&disk, &path, ends[9] + 2, &[0x5a]);
    let started = std::time::Instant::now();
    let (tlog, warnings) = open_warned(&disk, &dir, options);
    eprintln!(
        "open with a torn byte and a 32 MiB zero tail: {:?}",
        started.elapsed()
    );
    assert_eq!(all_entries(&tlog), entries);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_zeros_after(&disk, &path, ends[9], options.max_size, "after the cut");
    drop(tlog);
    // The same with an intact later frame near the end of the segment.
    write_at(&disk, &path, ends[9] + 2, &[0x5a]);
    let at = options.max_size - 100;
    write_at(&disk, &path, at, &later);
    let started = std::time::Instant::now();
    let result = Tlog::open(disk.clone(), dir.clone(), options);
    eprintln!("open finding a frame at byte {at}: {:?}", started.elapsed());
    expect_corrupt_at(result, &path, ends[9], at, "real disk");
}

#[test]
fn a_crash_right_after_a_rotation_recovers_the_synced_prefix_into_preallocated_segments() {
    for compression in [Compression::Lz4, Compression::None] {
        for seed in 0..40u64 {
            let options = TlogOptions {
                compression,
                ..small_options(3, 4096)
            };
            let disk = SimDisk::new();
            let mut tlog = open_sim(&disk, options);
            let entries = test_entries(7, 0);
            assert!(tlog.append(&entries[..3]).is_ok());
            assert!(tlog.sync().is_ok());
            // Entry 4 does not fit: rotation, then the write of entry 4.
            assert!(tlog.append(&entries[3..4]).is_ok());
            assert_eq!(tlog.segments().len(), 2);
            drop(tlog);
            disk.crash(&mut chooser(seed));
            let context = format!("{compression:?} seed {seed}");
            let mut tlog = open_sim(&disk, options);
            let got = all_entries(&tlog);
            assert!(
                got.len() >= 3 && got[..] == entries[..got.len()],
                "{context}: {} entries",
                got.len()
            );
            let segments = tlog.segments();
            assert_eq!(segments.len(), 2, "{context}");
            let shared = disk.shared();
            let active = &segments[1].path;
            assert_eq!(file_len(&shared, active), 4096, "{context}");
            // The log goes on, through another rotation, and reads back.
            let next = got.len();
            assert!(tlog.append(&entries[next..]).is_ok());
            assert!(tlog.sync().is_ok());
            drop(tlog);
            let tlog = open_sim(&disk, options);
            assert_eq!(all_entries(&tlog), entries, "{context}");
        }
    }
}

#[test]
fn a_crash_right_after_truncate_suffix_keeps_the_cut_and_zeros_after_it() {
    // In the active segment, and reaching back into a sealed one.
    for (max_entries, from) in [(1000u64, 5u64), (3, 5)] {
        for seed in 0..40u64 {
            let options = small_options(max_entries, 4096);
            let context = format!("max_entries {max_entries}, from {from}, seed {seed}");
            let disk = SimDisk::new();
            let mut tlog = open_sim(&disk, options);
            let entries = test_entries(10, 0);
            assert!(tlog.append(&entries[..8]).is_ok());
            assert!(tlog.sync().is_ok());
            assert!(tlog.append(&entries[8..]).is_ok());
            assert!(tlog.truncate_suffix(from).is_ok());
            let active = tlog.segments().last().map(|s| s.path.clone());
            drop(tlog);
            disk.crash(&mut chooser(seed));
            let mut tlog = open_sim(&disk, options);
            let kept = &entries[..from as usize - 1];
            assert_eq!(all_entries(&tlog), kept, "{context}");
            let shared = disk.shared();
            let Some(active) = active else {
                panic!("no segments");
            };
            assert_eq!(tlog.segments().last().map(|s| &s.path), Some(&active));
            let first = tlog.segments().last().map_or(1, |s| s.first_index);
            let data_end = frame_ends(&entries[first as usize - 1..from as usize - 1])
                .last()
                .copied()
                .unwrap_or(SEGMENT_HEADER_LEN);
            assert_zeros_after(&shared, &active, data_end, 4096, &context);
            // New entries in place of the dropped ones; a crash before
            // their sync keeps a prefix of them, never an old entry.
            let replaced = test_entries(10, 1000);
            assert!(tlog.append(&replaced[from as usize - 1..]).is_ok());
            drop(tlog);
            disk.crash(&mut chooser(seed + 1));
            let tlog = open_sim(&disk, options);
            let got = all_entries(&tlog);
            assert!(got.len() >= kept.len(), "{context}");
            assert_eq!(got[..kept.len()], kept[..], "{context}");
            assert_eq!(
                got[kept.len()..],
                replaced[kept.len()..got.len()],
                "{context}: only new entries after the cut"
            );
        }
    }
}
