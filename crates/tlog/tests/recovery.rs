//! Recovery: a torn tail is cut away, every other damage is an error that
//! names the file and the byte offset.

mod common;

use common::{all_entries, dir, entry, open_on, open_sim, small_options};
use disk::{DiskRef, OpenMode, RealDisk, SimDisk};
use std::path::{Path, PathBuf};
use tlog::{Entry, Tlog, TlogError, TlogOptions, FRAME_OVERHEAD_LEN, SEGMENT_HEADER_LEN};

const SYNCED: u64 = 10;
const UNSYNCED: u64 = 5;
/// `max_size` of the logs `write_log` writes: every plain segment file is
/// preallocated to it.
const MAX_SIZE: u64 = 1 << 20;

/// Writes SYNCED entries (synced) then UNSYNCED more (appended one call
/// each, not synced) into a single segment. Returns the entries, the active
/// segment's path and the byte offset where each frame ends.
fn write_log(disk: DiskRef, dir: PathBuf) -> (Vec<Entry>, PathBuf, Vec<u64>) {
    let options = small_options(1000, MAX_SIZE);
    let mut tlog = open_on(disk, dir, options);
    let entries: Vec<_> = (1..=SYNCED + UNSYNCED)
        .map(|i| entry(i, 1 + i / 6, i, 10 + i as usize * 7))
        .collect();
    assert!(tlog.append(&entries[..SYNCED as usize]).is_ok());
    assert_eq!(tlog.sync().ok(), Some(SYNCED));
    for e in &entries[SYNCED as usize..] {
        assert!(tlog.append(std::slice::from_ref(e)).is_ok());
    }
    let segments = tlog.segments();
    assert_eq!(segments.len(), 1);
    let mut ends = Vec::new();
    let mut at = SEGMENT_HEADER_LEN;
    for e in &entries {
        at += FRAME_OVERHEAD_LEN + e.payload.len() as u64;
        ends.push(at);
    }
    (entries, segments[0].path.clone(), ends)
}

fn cut_file(disk: &DiskRef, path: &Path, len: u64, zeros_after: u64) {
    let Ok(file) = disk.open(path, OpenMode::ReadWrite) else {
        panic!("open {}", path.display());
    };
    assert!(file.set_len(len).is_ok());
    if zeros_after > 0 {
        // A file system may show a grown file with unwritten (zero) blocks.
        assert!(file.set_len(len + zeros_after).is_ok());
    }
    assert!(file.sync_data().is_ok());
}

/// Cuts the last segment at every byte offset of its `final_frames` unsynced final frames
/// (optionally leaving zeros after the cut) and checks that reopening yields
/// exactly the entries whose frames are whole: a prefix, every synced entry
/// included; then that the log goes on from there.
fn cut_at_every_offset(
    make_disk: &dyn Fn() -> (DiskRef, PathBuf),
    zeros_after: u64,
    final_frames: usize,
) {
    let (disk, dir) = make_disk();
    let (_, _, ends) = write_log(disk, dir);
    assert!(final_frames as u64 <= UNSYNCED);
    let synced_end = ends[ends.len() - 1 - final_frames];
    let file_end = ends[ends.len() - 1];
    for cut in synced_end..=file_end {
        let (disk, dir) = make_disk();
        let (entries, path, ends) = write_log(disk.clone(), dir.clone());
        cut_file(&disk, &path, cut, zeros_after);
        let whole = ends.iter().filter(|&&end| end <= cut).count();
        let tlog = match Tlog::open(disk.clone(), dir.clone(), small_options(1000, MAX_SIZE)) {
            Ok(tlog) => tlog,
            Err(err) => panic!("cut at {cut} (+{zeros_after} zeros): {err}"),
        };
        assert_eq!(
            all_entries(&tlog),
            entries[..whole],
            "cut at {cut} (+{zeros_after} zeros)"
        );
        assert!(whole as u64 >= SYNCED);
        assert_eq!(
            tlog.synced_index(),
            whole as u64,
            "what open found is durable"
        );
        let Ok(bytes) = disk::read_all(disk.as_ref(), &path) else {
            panic!("reread {}", path.display());
        };
        let kept = if whole == 0 {
            SEGMENT_HEADER_LEN
        } else {
            ends[whole - 1]
        };
        assert_eq!(
            bytes.len() as u64,
            MAX_SIZE,
            "the segment is preallocated again after the cut"
        );
        assert!(
            bytes[kept as usize..].iter().all(|&b| b == 0),
            "cut at {cut}: the torn tail is cut off the file (zeros after the kept frames)"
        );
        // The log continues after the cut, and that too survives a reopen.
        let mut tlog = tlog;
        let next = entry(whole as u64 + 1, 9, 999, 33);
        assert!(tlog.append(std::slice::from_ref(&next)).is_ok());
        assert!(tlog.sync().is_ok());
        drop(tlog);
        let tlog = open_on(disk, dir, small_options(1000, MAX_SIZE));
        let mut expected = entries[..whole].to_vec();
        expected.push(next);
        assert_eq!(
            all_entries(&tlog),
            expected,
            "cut at {cut}, then one more entry"
        );
    }
}

#[test]
fn cutting_the_last_segment_at_every_offset_of_its_final_frames_yields_a_prefix() {
    let sim = || {
        let disk = SimDisk::new();
        (disk.shared(), dir())
    };
    cut_at_every_offset(&sim, 0, UNSYNCED as usize);
    cut_at_every_offset(&sim, 100, UNSYNCED as usize);
}

#[test]
fn cutting_at_every_offset_on_the_real_file_system_too() {
    let root = tempfile::Builder::new()
        .prefix("tlog-cut")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap_or_else(|e| panic!("tempdir: {e}"));
    let counter = std::cell::Cell::new(0u32);
    let real = || {
        counter.set(counter.get() + 1);
        (
            RealDisk::shared(),
            root.path().join(format!("run{}", counter.get())),
        )
    };
    // Every offset of the final frame only: each run costs real fsyncs.
    cut_at_every_offset(&real, 0, 1);
}

fn expect_corrupt(result: Result<Tlog, TlogError>, path: &Path, offset: u64, context: &str) {
    match result {
        Err(TlogError::Corrupt {
            path: p,
            offset: o,
            what,
        }) => {
            assert_eq!(p, path, "{context}: {what}");
            assert_eq!(o, offset, "{context}: {what}");
        }
        Err(other) => panic!("{context}: expected corruption, got {other}"),
        Ok(tlog) => panic!(
            "{context}: opened with {} entries despite the damage",
            tlog.last_index()
        ),
    }
}

#[test]
fn a_flipped_bit_in_any_non_final_frame_of_the_last_segment_names_file_and_frame_offset() {
    let disk = SimDisk::new();
    let (_, path, ends) = write_log(disk.shared(), dir());
    let last_frame_start = ends[ends.len() - 2];
    let mut frame_start = SEGMENT_HEADER_LEN;
    for &frame_end in &ends[..ends.len() - 1] {
        for offset in frame_start..frame_end {
            for bit in [0u8, 7] {
                let disk = SimDisk::new();
                let (_, path2, _) = write_log(disk.shared(), dir());
                assert_eq!(path, path2);
                assert!(disk.flip_bit(&path, offset, bit));
                let context = format!("bit {bit} of byte {offset}");
                expect_corrupt(
                    Tlog::open(disk.shared(), dir(), small_options(1000, MAX_SIZE)),
                    &path,
                    frame_start,
                    &context,
                );
            }
        }
        frame_start = frame_end;
    }
    assert_eq!(frame_start, last_frame_start);
}

#[test]
fn a_flipped_bit_in_the_final_frame_cuts_only_that_frame_with_a_warning() {
    let (entries, path, ends) = write_log(SimDisk::new().shared(), dir());
    let last_start = ends[ends.len() - 2];
    for offset in last_start..ends[ends.len() - 1] {
        let disk = SimDisk::new();
        write_log(disk.shared(), dir());
        assert!(disk.flip_bit(&path, offset, 3));
        let tlog = open_sim(&disk, small_options(1000, MAX_SIZE));
        assert_eq!(
            all_entries(&tlog),
            entries[..entries.len() - 1],
            "flip at {offset}"
        );
    }
}

#[test]
fn a_flipped_bit_anywhere_in_a_sealed_segment_names_the_file_and_an_offset_at_or_before_it() {
    let options = small_options(6, 1 << 20);
    let build = |disk: &SimDisk| {
        let mut tlog = open_sim(disk, options);
        let entries: Vec<_> = (1..=14).map(|i| entry(i, 1, i, 40)).collect();
        assert!(tlog.append(&entries).is_ok());
        assert!(tlog.sync().is_ok());
        tlog.segments()
    };
    let segments = build(&SimDisk::new());
    let sealed = segments
        .iter()
        .filter(|s| s.sealed)
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(sealed.len(), 2, "{segments:?}");
    let target = &sealed[1].path;
    let len = {
        let disk = SimDisk::new();
        build(&disk);
        disk::read_all(&disk, target)
            .map(|b| b.len() as u64)
            .unwrap_or(0)
    };
    assert!(len > SEGMENT_HEADER_LEN);
    for offset in 0..len {
        let disk = SimDisk::new();
        build(&disk);
        assert!(disk.flip_bit(target, offset, (offset % 8) as u8));
        match Tlog::open(disk.shared(), dir(), options) {
            Err(TlogError::Corrupt {
                path,
                offset: reported,
                what,
            }) => {
                assert_eq!(&path, target, "flip at {offset}: {what}");
                assert!(
                    reported <= offset,
                    "flip at {offset} reported at {reported}: {what}"
                );
            }
            other => panic!(
                "flip at byte {offset} of a sealed segment: expected corruption, got {other:?}"
            ),
        }
    }
}

#[test]
fn a_sealed_segment_cut_short_or_missing_is_an_error() {
    let options = small_options(4, 1 << 20);
    let disk = SimDisk::new();
    let mut tlog = open_sim(&disk, options);
    assert!(tlog
        .append(&(1..=13).map(|i| entry(i, 1, i, 40)).collect::<Vec<_>>())
        .is_ok());
    assert!(tlog.sync().is_ok());
    let segments = tlog.segments();
    drop(tlog);
    // A sealed segment that lost its end marker.
    let shared = disk.shared();
    let Ok(len) = disk::read_all(&disk, &segments[1].path).map(|b| b.len() as u64) else {
        panic!("read sealed");
    };
    cut_file(&shared, &segments[1].path, len - 1, 0);
    expect_corrupt(
        Tlog::open(disk.shared(), dir(), options),
        &segments[1].path,
        len - 24,
        "cut sealed",
    );
    // A missing middle segment is a gap, named by the segment after it.
    let disk = SimDisk::new();
    let mut tlog = open_sim(&disk, options);
    assert!(tlog
        .append(&(1..=13).map(|i| entry(i, 1, i, 40)).collect::<Vec<_>>())
        .is_ok());
    assert!(tlog.sync().is_ok());
    drop(tlog);
    assert!(disk::Disk::remove(&disk, &segments[1].path).is_ok());
    expect_corrupt(
        Tlog::open(disk.shared(), dir(), options),
        &segments[2].path,
        0,
        "gap",
    );
}

#[test]
fn a_header_flip_in_the_last_segment_is_an_error_not_a_torn_tail() {
    let disk = SimDisk::new();
    let (_, path, _) = write_log(disk.shared(), dir());
    assert!(disk.flip_bit(&path, 17, 1));
    expect_corrupt(
        Tlog::open(disk.shared(), dir(), TlogOptions::default()),
        &path,
        0,
        "header",
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, ..Default::default() })]

    /// Bad input on disk: random bit flips in random files of the tlog
    /// directory, and a random cut of one of them. Opening never panics
    /// and never returns an entry that was not written: it is an error
    /// naming a file, or (damage only in the last segment's final frames)
    /// a prefix of the log; a damaged hard state is reported unreadable.
    #[test]
    fn damage_gives_a_corruption_error_or_a_prefix_never_wrong_entries(
        max_entries in 2u64..6,
        count in 1u64..30,
        flips in proptest::collection::vec((proptest::sample::select(vec![0usize, 1, 2, 3, 4, 5, 6, 7]), proptest::prelude::any::<u64>(), 0u8..8), 0..4),
        cut in proptest::option::of((proptest::sample::select(vec![0usize, 1, 2, 3, 4, 5, 6, 7]), proptest::prelude::any::<u64>())),
    ) {
        let disk = SimDisk::new();
        // Segments rotate by entry count (six frames take under 700
        // bytes); the active segment is preallocated to 1 KiB, so flips and
        // cuts land in its frames and in its zero tail alike.
        let options = small_options(max_entries, 1024);
        let mut tlog = open_sim(&disk, options);
        let entries: Vec<_> = (1..=count).map(|i| entry(i, 1 + i / 5, i, 5 + (i as usize * 13) % 70)).collect();
        proptest::prop_assert!(tlog.append(&entries).is_ok());
        proptest::prop_assert!(tlog.sync().is_ok());
        let hard_state = tlog::HardState {
            term: 4,
            voted_for: Some(consensus::NodeId(1)),
            ..tlog::HardState::default()
        };
        proptest::prop_assert!(tlog.save_hard_state(hard_state).is_ok());
        drop(tlog);
        let Ok(names) = disk::Disk::list(&disk, &dir()) else {
            return Err(proptest::test_runner::TestCaseError::fail("list"));
        };
        let file_len = |path: &Path| disk::read_all(&disk, path).map(|b| b.len() as u64).unwrap_or(0);
        for (file, offset, bit) in &flips {
            let path = dir().join(&names[file % names.len()]);
            let len = file_len(&path);
            if len > 0 {
                proptest::prop_assert!(disk.flip_bit(&path, offset % len, *bit));
            }
        }
        if let Some((file, len)) = cut {
            let path = dir().join(&names[file % names.len()]);
            let old_len = file_len(&path);
            cut_file(&disk.shared(), &path, len % (old_len + 1), 0);
        }
        match Tlog::open(disk.shared(), dir(), options) {
            Ok(tlog) => {
                let got = all_entries(&tlog);
                proptest::prop_assert_eq!(tlog.first_index(), 1);
                proptest::prop_assert!(got.len() <= entries.len());
                proptest::prop_assert_eq!(&got[..], &entries[..got.len()]);
                // A damaged hard state is reported, never made up.
                match tlog.hard_state() {
                    Some(found) => proptest::prop_assert_eq!(found, hard_state),
                    None => proptest::prop_assert!(tlog.hard_state_unreadable().is_some()),
                }
            }
            Err(TlogError::Corrupt { path, .. }) => {
                proptest::prop_assert!(path.starts_with(dir()), "{}", path.display());
            }
            Err(other) => return Err(proptest::test_runner::TestCaseError::fail(format!("not a corruption error: {other}"))),
        }
    }
}
