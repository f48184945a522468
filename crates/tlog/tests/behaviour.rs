//! The tlog's contract, case by case: append and read, rotation and
//! sealing, truncation, collapse, reset, the sync job, hard state, and the
//! poisoning after a failed write.

mod common;

use common::{all_entries, chooser, dir, entry, open_sim, small_options};
use consensus::NodeId;
use disk::{Crash, Disk, OpenMode, SimDisk, Tripwire};
use std::sync::Arc;
use tlog::{Compression, HardState, Tlog, TlogError, TlogOptions};

#[test]
fn a_fresh_log_starts_at_index_one_after_base_zero_zero() {
    let disk = SimDisk::new();
    let tlog = open_sim(&disk, TlogOptions::default());
    assert_eq!(tlog.first_index(), 1);
    assert_eq!(tlog.last_index(), 0);
    assert_eq!(tlog.last_term(), 0);
    assert_eq!(tlog.term(0), Some(0));
    assert_eq!(tlog.term(1), None);
    assert_eq!(tlog.synced_index(), 0);
    assert_eq!(tlog.hard_state(), None);
    assert_eq!(tlog.read(1, 1, 10).map(|e| e.len()).ok(), Some(0));
}

#[test]
fn append_refuses_gaps_overlaps_and_decreasing_terms_before_writing() {
    let disk = SimDisk::new();
    let mut tlog = open_sim(&disk, TlogOptions::default());
    assert_eq!(
        tlog.append(&[entry(1, 1, 1, 10), entry(2, 2, 2, 10)]).ok(),
        Some(2)
    );
    let gap = tlog.append(&[entry(4, 2, 4, 10)]);
    assert!(
        matches!(
            gap,
            Err(TlogError::NotContiguous {
                expected: 3,
                got: 4
            })
        ),
        "{gap:?}"
    );
    let overlap = tlog.append(&[entry(2, 2, 9, 10)]);
    assert!(
        matches!(
            overlap,
            Err(TlogError::NotContiguous {
                expected: 3,
                got: 2
            })
        ),
        "{overlap:?}"
    );
    // The second entry is bad: the first must not have been written either.
    let inner_gap = tlog.append(&[entry(3, 2, 3, 10), entry(5, 2, 5, 10)]);
    assert!(matches!(
        inner_gap,
        Err(TlogError::NotContiguous {
            expected: 4,
            got: 5
        })
    ));
    assert_eq!(tlog.last_index(), 2);
    let backwards = tlog.append(&[entry(3, 1, 3, 10)]);
    assert!(matches!(
        backwards,
        Err(TlogError::TermDecreasing {
            index: 3,
            term: 1,
            prev_term: 2
        })
    ));
    let huge = tlog::Entry {
        index: 3,
        term: 2,
        payload: vec![0; tlog::PAYLOAD_LEN_MAX as usize + 1],
    };
    assert!(matches!(
        tlog.append(&[huge]),
        Err(TlogError::PayloadTooLarge { index: 3, .. })
    ));
    // The log is still usable: these were the caller's mistakes, not IO failures.
    assert_eq!(tlog.append(&[entry(3, 2, 3, 10)]).ok(), Some(3));
    assert_eq!(all_entries(&tlog).len(), 3);
}

#[test]
fn read_returns_the_range_within_max_bytes_but_always_one_entry() {
    let disk = SimDisk::new();
    let mut tlog = open_sim(&disk, small_options(4, 10_000));
    let entries: Vec<_> = (1..=20).map(|i| entry(i, 1 + i / 7, i, 100)).collect();
    assert!(tlog.append(&entries).is_ok());
    assert!(tlog.sync().is_ok());
    assert!(
        tlog.segments().iter().filter(|s| s.sealed).count() >= 3,
        "{:?}",
        tlog.segments()
    );
    for from in 1..=20u64 {
        for to in from..=21 {
            let got = tlog
                .read(from, to, u64::MAX)
                .unwrap_or_else(|e| panic!("read {from}..{to}: {e}"));
            assert_eq!(
                got,
                entries[(from - 1) as usize..(to - 1) as usize],
                "read {from}..{to}"
            );
        }
    }
    let one = tlog.read(3, 10, 0).unwrap_or_default();
    assert_eq!(one, entries[2..3], "at least one entry even over max_bytes");
    let three = tlog.read(3, 10, 350).unwrap_or_default();
    assert_eq!(three, entries[2..5], "as many as fit in 350 payload bytes");
    let out = tlog.read(0, 3, 100);
    assert!(matches!(out, Err(TlogError::OutOfRange { from: 0, .. })));
    assert!(matches!(
        tlog.read(5, 22, 100),
        Err(TlogError::OutOfRange { .. })
    ));
    assert!(matches!(
        tlog.read(5, 4, 100),
        Err(TlogError::OutOfRange { .. })
    ));
}

#[test]
fn segments_rotate_by_entries_and_by_size_and_sealed_ones_read_back_after_reopen() {
    for compression in [Compression::Lz4, Compression::None] {
        let disk = SimDisk::new();
        let options = TlogOptions {
            max_entries: 5,
            max_size: 400,
            compression,
        };
        let mut tlog = open_sim(&disk, options);
        let mut entries = Vec::new();
        for i in 1..=40u64 {
            // Entries 20..30 are big: size rotation (one 500-byte entry alone
            // exceeds max_size and still gets a segment of its own).
            let len = if (20..30).contains(&i) { 500 } else { 30 };
            entries.push(entry(i, 1 + i / 10, i, len));
        }
        for batch in entries.chunks(3) {
            assert!(tlog.append(batch).is_ok());
        }
        assert_eq!(tlog.sync().ok(), Some(40));
        let segments = tlog.segments();
        assert!(segments.iter().all(|s| s.entry_count <= 5));
        for s in &segments {
            if s.first_index >= 20 && s.first_index < 30 {
                assert_eq!(s.entry_count, 1, "a big entry alone in {s:?}");
            }
        }
        let sealed = segments.iter().filter(|s| s.sealed).count();
        match compression {
            Compression::Lz4 => {
                assert_eq!(sealed, segments.len() - 1, "all but the active are sealed")
            }
            Compression::None => assert_eq!(sealed, 0),
        }
        assert_eq!(all_entries(&tlog), entries);
        drop(tlog);
        let tlog = open_sim(&disk, options);
        assert_eq!(tlog.segments(), segments);
        assert_eq!(all_entries(&tlog), entries);
        for i in 0..=40 {
            assert_eq!(tlog.term(i), Some(if i == 0 { 0 } else { 1 + i / 10 }));
        }
    }
}

#[test]
fn truncate_suffix_reaches_back_into_sealed_segments_and_is_durable_at_once() {
    let disk = SimDisk::new();
    let options = small_options(4, 100_000);
    let mut tlog = open_sim(&disk, options);
    let entries: Vec<_> = (1..=18).map(|i| entry(i, 1, i, 20)).collect();
    assert!(tlog.append(&entries).is_ok());
    assert!(tlog.sync().is_ok());
    // Index 6 lies in the second segment [5, 8], sealed; 9.. are dropped.
    assert!(tlog.truncate_suffix(6).is_ok());
    assert_eq!(tlog.last_index(), 5);
    assert_eq!(tlog.synced_index(), 5);
    assert_eq!(all_entries(&tlog), entries[..5]);
    // Crash without any sync: the truncation must hold.
    disk.crash(&mut chooser(7));
    let mut tlog = open_sim(&disk, options);
    assert_eq!(all_entries(&tlog), entries[..5]);
    // New entries of a new term replace the old suffix.
    let replacement: Vec<_> = (6..=12).map(|i| entry(i, 2, 1000 + i, 20)).collect();
    assert!(tlog.append(&replacement).is_ok());
    assert!(tlog.sync().is_ok());
    // Truncate exactly at a segment's first index.
    let first_of_last_sealed = tlog
        .segments()
        .iter()
        .rev()
        .find(|s| s.sealed)
        .map(|s| s.first_index);
    let Some(cut) = first_of_last_sealed else {
        panic!("a sealed segment: {:?}", tlog.segments());
    };
    assert!(tlog.truncate_suffix(cut).is_ok());
    assert_eq!(tlog.last_index(), cut - 1);
    disk.crash(&mut chooser(8));
    let tlog = open_sim(&disk, options);
    let mut expected = entries[..5].to_vec();
    expected.extend(replacement);
    expected.truncate((cut - 1) as usize);
    assert_eq!(all_entries(&tlog), expected);
    assert_eq!(tlog.term(cut - 1), expected.last().map(|e| e.term));
    // Truncating everything leaves an empty log that still knows the base.
    let mut tlog = tlog;
    assert!(tlog.truncate_suffix(1).is_ok());
    assert_eq!(
        (tlog.first_index(), tlog.last_index(), tlog.term(0)),
        (1, 0, Some(0))
    );
    assert!(matches!(
        tlog.truncate_suffix(0),
        Err(TlogError::TruncateBelowFirst { from: 0, .. })
    ));
    assert!(tlog.truncate_suffix(5).is_ok(), "beyond the end: no-op");
}

#[test]
fn truncate_suffix_of_the_active_segment_holds_through_any_crash() {
    for seed in 0..16 {
        let disk = SimDisk::new();
        let mut tlog = open_sim(&disk, TlogOptions::default());
        assert!(tlog
            .append(&(1..=10).map(|i| entry(i, 1, i, 30)).collect::<Vec<_>>())
            .is_ok());
        assert!(tlog.sync().is_ok());
        assert!(tlog.truncate_suffix(4).is_ok());
        // Unsynced appends after the truncation may or may not survive, but
        // the dropped entries 4..=10 must never come back.
        assert!(tlog.append(&[entry(4, 2, 400, 30)]).is_ok());
        disk.crash(&mut chooser(seed));
        let tlog = open_sim(&disk, TlogOptions::default());
        let got = all_entries(&tlog);
        assert!(
            got.len() == 3 || got.len() == 4,
            "seed {seed}: {} entries",
            got.len()
        );
        if got.len() == 4 {
            assert_eq!(got[3], entry(4, 2, 400, 30), "seed {seed}");
        }
    }
}

#[test]
fn sealing_in_steps_keeps_the_log_readable_and_is_cancelled_by_a_truncation() {
    // Segments of ~1 MiB hold ~16 sealed blocks of 64 KiB: `seal_some(1)`
    // compresses one block per call, so a seal stays in progress for a while.
    let disk = SimDisk::new();
    let options = small_options(1000, 1 << 20);
    let mut tlog = open_sim(&disk, options);
    let entries: Vec<_> = (1..=2500)
        .map(|i| entry(i, 1 + i / 1000, i, 1000))
        .collect();
    assert!(tlog.append(&entries).is_ok());
    let Ok(Some(job)) = tlog.take_sync_job() else {
        panic!("entries to sync");
    };
    assert_eq!(tlog.mark_synced(job.run()).ok(), Some(2500));
    assert_eq!(
        tlog.segments().iter().filter(|s| !s.sealed).count(),
        3,
        "two full, one active"
    );
    let mut steps = 0;
    while tlog.segments().iter().filter(|s| s.sealed).count() < 1 {
        assert_eq!(
            tlog.seal_some(1).ok(),
            Some(0),
            "step {steps}: one block, no segment finished yet"
        );
        steps += 1;
        assert_eq!(
            tlog.read(990, 1010, u64::MAX).unwrap_or_default(),
            entries[989..1009]
        );
        if steps > 100 {
            panic!("sealing does not progress");
        }
        if steps == 15 {
            // The 16th block finishes the first segment.
            assert_eq!(tlog.seal_some(1).ok(), Some(1));
        }
    }
    assert_eq!(steps, 15);
    // Half-way through the second segment, a crash: the temporary file is
    // a leftover, the plain segment is the truth.
    for _ in 0..5 {
        assert_eq!(tlog.seal_some(1).ok(), Some(0));
    }
    disk.crash(&mut common::chooser(21));
    let mut tlog = open_sim(&disk, options);
    assert_eq!(all_entries(&tlog), entries);
    let names = disk::Disk::list(&disk, &dir()).unwrap_or_default();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    // A truncation into the segment being sealed cancels the seal.
    for _ in 0..5 {
        assert_eq!(tlog.seal_some(1).ok(), Some(0));
    }
    assert!(tlog.truncate_suffix(1500).is_ok());
    let names = disk::Disk::list(&disk, &dir()).unwrap_or_default();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
    assert_eq!(all_entries(&tlog), entries[..1499]);
    assert!(tlog
        .append(
            &(1500..=2200)
                .map(|i| entry(i, 9, 7000 + i, 1000))
                .collect::<Vec<_>>()
        )
        .is_ok());
    // sync seals what is full, at least twice what it synced.
    assert!(tlog.sync().is_ok());
    assert_eq!(tlog.seal_full_segments().ok(), Some(0), "sync kept up");
    let segments = tlog.segments();
    assert!(
        segments[..segments.len() - 1].iter().all(|s| s.sealed),
        "{segments:?}"
    );
    drop(tlog);
    let tlog = open_sim(&disk, options);
    let mut expected = entries[..1499].to_vec();
    expected.extend((1500..=2200).map(|i| entry(i, 9, 7000 + i, 1000)));
    assert_eq!(all_entries(&tlog), expected);
}

#[test]
fn collapse_deletes_whole_segments_below_and_keeps_the_base_term() {
    let disk = SimDisk::new();
    let options = small_options(5, 100_000);
    let mut tlog = open_sim(&disk, options);
    let entries: Vec<_> = (1..=23).map(|i| entry(i, i / 4, i, 20)).collect();
    assert!(tlog.append(&entries).is_ok());
    assert!(tlog.sync().is_ok());
    // Segments: [1,5] [6,10] [11,15] [16,20] [21,23]. Below 13: two go.
    assert_eq!(tlog.collapse(13).ok(), Some(11));
    assert_eq!(tlog.first_index(), 11);
    assert_eq!(tlog.term(10), Some(10 / 4));
    assert_eq!(tlog.term(9), None);
    assert_eq!(all_entries(&tlog), entries[10..]);
    assert!(matches!(
        tlog.read(10, 12, 100),
        Err(TlogError::OutOfRange { .. })
    ));
    // Never the active segment, even when everything is below.
    assert_eq!(tlog.collapse(1000).ok(), Some(21));
    assert_eq!(tlog.term(20), Some(5));
    disk.crash(&mut chooser(1));
    let mut tlog = open_sim(&disk, options);
    assert_eq!((tlog.first_index(), tlog.term(20)), (21, Some(5)));
    assert_eq!(all_entries(&tlog), entries[20..]);
    assert!(matches!(
        tlog.truncate_suffix(20),
        Err(TlogError::TruncateBelowFirst { .. })
    ));
    // Truncating everything after a collapse keeps the base too.
    assert!(tlog.truncate_suffix(21).is_ok());
    drop(tlog);
    let tlog = open_sim(&disk, options);
    assert_eq!(
        (tlog.first_index(), tlog.last_index(), tlog.last_term()),
        (21, 20, 5)
    );
}

#[test]
fn reset_starts_the_log_after_a_snapshot_and_survives_a_crash() {
    let disk = SimDisk::new();
    let options = small_options(3, 100_000);
    let mut tlog = open_sim(&disk, options);
    let entries: Vec<_> = (1..=10).map(|i| entry(i, 1, i, 20)).collect();
    assert!(tlog.append(&entries).is_ok());
    assert!(tlog.sync().is_ok());
    assert!(tlog.reset(1000, 7).is_ok());
    assert_eq!(
        (tlog.first_index(), tlog.last_index(), tlog.last_term()),
        (1001, 1000, 7)
    );
    assert_eq!(tlog.term(1000), Some(7));
    assert_eq!(tlog.synced_index(), 1000);
    disk.crash(&mut chooser(3));
    let mut tlog = open_sim(&disk, options);
    assert_eq!(
        (tlog.first_index(), tlog.last_index(), tlog.term(1000)),
        (1001, 1000, Some(7))
    );
    assert!(tlog
        .append(&[entry(1001, 8, 1, 20), entry(1002, 8, 2, 20)])
        .is_ok());
    assert!(tlog.sync().is_ok());
    // A reset backwards (a snapshot older than the log) drops it all too,
    // and entries of the old generation must not come back at the same names.
    assert!(tlog.reset(2, 1).is_ok());
    assert!(tlog.append(&[entry(3, 1, 77, 20)]).is_ok());
    assert!(tlog.sync().is_ok());
    disk.crash(&mut chooser(4));
    let tlog = open_sim(&disk, options);
    assert_eq!(all_entries(&tlog), vec![entry(3, 1, 77, 20)]);
    assert_eq!(tlog.term(2), Some(1));
}

#[test]
fn a_reset_interrupted_after_its_commit_point_finishes_at_open() {
    let disk = SimDisk::new();
    let options = small_options(3, 100_000);
    let mut tlog = open_sim(&disk, options);
    assert!(tlog
        .append(&(1..=7).map(|i| entry(i, 1, i, 20)).collect::<Vec<_>>())
        .is_ok());
    assert!(tlog.sync().is_ok());
    let old_files = tlog.segments();
    drop(tlog);
    // What `reset(50, 4)` does first, alone: the base file of generation 1,
    // made on a scratch disk by a real reset and copied over.
    let scratch = SimDisk::new();
    let mut donor = open_sim(&scratch, options);
    assert!(donor.reset(50, 4).is_ok());
    drop(donor);
    let base = disk::read_all(&scratch, &dir().join("base")).unwrap_or_default();
    assert!(disk::write_atomic(&disk, &dir().join("base"), &base).is_ok());
    disk.crash(&mut chooser(5));
    let tlog = open_sim(&disk, options);
    assert_eq!(
        (tlog.first_index(), tlog.last_index(), tlog.term(50)),
        (51, 50, Some(4))
    );
    for old in old_files {
        assert!(
            !disk.exists(&old.path),
            "{} should be removed",
            old.path.display()
        );
    }
}

#[test]
fn a_sync_job_runs_elsewhere_while_appends_go_on() {
    let disk = SimDisk::new();
    let mut tlog = open_sim(&disk, TlogOptions::default());
    assert!(tlog
        .append(&[entry(1, 1, 1, 50), entry(2, 1, 2, 50)])
        .is_ok());
    let Ok(Some(job)) = tlog.take_sync_job() else {
        panic!("a job: two entries are unsynced");
    };
    assert_eq!(job.index(), 2);
    assert!(tlog.append(&[entry(3, 1, 3, 50)]).is_ok());
    let handle = std::thread::spawn(move || job.run());
    let result = handle
        .join()
        .unwrap_or_else(|_| panic!("sync thread panicked"));
    assert_eq!(
        tlog.mark_synced(result).ok(),
        Some(2),
        "the job covers 2, not 3"
    );
    assert_eq!(tlog.synced_index(), 2);
    // A job taken before a truncation must not vouch for what replaced it.
    let Ok(Some(stale)) = tlog.take_sync_job() else {
        panic!("entry 3 is unsynced");
    };
    assert!(tlog.truncate_suffix(3).is_ok());
    assert!(tlog
        .append(&[entry(3, 2, 30, 50), entry(4, 2, 40, 50)])
        .is_ok());
    assert_eq!(tlog.mark_synced(stale.run()).ok(), Some(2));
    assert_eq!(tlog.sync().ok(), Some(4));
    assert!(matches!(tlog.take_sync_job(), Ok(None)));
    // What sync vouched for survives a crash.
    disk.crash(&mut chooser(11));
    let mut tlog = open_sim(&disk, TlogOptions::default());
    assert_eq!(tlog.last_index(), 4);
    assert_eq!(tlog.term(3), Some(2));
    // A job of a tlog since dropped vouches for nothing in the reopened one.
    assert!(tlog
        .append(&[entry(5, 2, 50, 50), entry(6, 2, 60, 50)])
        .is_ok());
    let Ok(Some(old_job)) = tlog.take_sync_job() else {
        panic!("entries 5 and 6 are unsynced");
    };
    drop(tlog);
    let mut tlog = open_sim(&disk, TlogOptions::default());
    assert!(tlog.truncate_suffix(5).is_ok());
    assert_eq!(tlog.mark_synced(old_job.run()).ok(), Some(4));
}

#[test]
fn hard_state_round_trips_and_a_saved_state_survives_any_crash() {
    let disk = SimDisk::new();
    let mut tlog = open_sim(&disk, TlogOptions::default());
    let first = HardState {
        term: 3,
        voted_for: Some(NodeId(1)),
        ..HardState::default()
    };
    assert!(tlog.save_hard_state(first).is_ok());
    assert_eq!(tlog.hard_state(), Some(first));
    let regress = tlog.save_hard_state(HardState {
        term: 2,
        ..HardState::default()
    });
    assert!(matches!(
        regress,
        Err(TlogError::HardStateTermRegress {
            term: 2,
            saved_term: 3
        })
    ));
    drop(tlog);
    let tlog = open_sim(&disk, TlogOptions::default());
    assert_eq!(tlog.hard_state(), Some(first));
    let second = HardState {
        term: 4,
        ..HardState::default()
    };
    let mut tlog = tlog;
    assert!(tlog.save_hard_state(second).is_ok());
    for seed in 0..20 {
        let disk = disk.clone();
        disk.crash(&mut chooser(seed));
        let tlog = open_sim(&disk, TlogOptions::default());
        assert_eq!(tlog.hard_state(), Some(second), "seed {seed}");
    }
}

#[test]
fn a_hard_state_save_cut_short_by_a_crash_leaves_the_old_state_whole() {
    // `save_hard_state` writes `hard_state.tmp`, syncs, renames. A crash
    // before the rename leaves a temporary file in any state: at most torn.
    let disk = SimDisk::new();
    let mut tlog = open_sim(&disk, TlogOptions::default());
    let old = HardState {
        term: 9,
        voted_for: Some(NodeId(2)),
        ..HardState::default()
    };
    assert!(tlog.save_hard_state(old).is_ok());
    drop(tlog);
    for seed in 0..30u64 {
        let tmp = dir().join("hard_state.tmp");
        let Ok(file) = disk.open(&tmp, OpenMode::Truncate) else {
            panic!("create tmp");
        };
        assert!(file.write_all_at(0, &[0xab; 38]).is_ok());
        if seed % 2 == 0 {
            assert!(
                disk.sync_dir(&dir()).is_ok(),
                "the tmp name may even be durable"
            );
        }
        disk.crash(&mut chooser(seed));
        let tlog = open_sim(&disk, TlogOptions::default());
        assert_eq!(tlog.hard_state(), Some(old), "seed {seed}");
        assert!(!disk.exists(&tmp), "open removes leftover temporary files");
    }
}

/// A damaged hard-state file does not keep the tlog from opening: the state
/// is unknown (`None`), the reason names the file and offset, and the node
/// recovers its promises from its peers (consensus `Standing`). The next
/// save replaces the file.
#[test]
fn a_corrupt_hard_state_file_is_reported_unreadable_naming_the_file() {
    let disk = SimDisk::new();
    let mut tlog = open_sim(&disk, TlogOptions::default());
    assert!(tlog
        .save_hard_state(HardState {
            term: 1,
            ..HardState::default()
        })
        .is_ok());
    drop(tlog);
    let path = dir().join("hard_state");
    assert!(disk.flip_bit(&path, 9, 0));
    let Ok(mut tlog) = Tlog::open(disk.shared(), dir(), TlogOptions::default()) else {
        panic!("a damaged hard state is not a damaged log");
    };
    assert_eq!(tlog.hard_state(), None);
    let why = tlog.hard_state_unreadable().unwrap_or_default().to_string();
    assert!(
        why.contains("hard_state") && why.contains("byte 34"),
        "names the file and the crc's offset: {why}"
    );
    let fresh = HardState::unknown(5);
    assert!(tlog.save_hard_state(fresh).is_ok());
    drop(tlog);
    let tlog = open_sim(&disk, TlogOptions::default());
    assert_eq!(tlog.hard_state(), Some(fresh));
    assert_eq!(tlog.hard_state_unreadable(), None);
}

#[test]
fn a_failed_write_poisons_the_tlog_until_it_is_reopened() {
    let disk = SimDisk::new();
    let mut tlog = open_sim(&disk, TlogOptions::default());
    assert!(tlog.append(&[entry(1, 1, 1, 10)]).is_ok());
    assert!(tlog.sync().is_ok());
    // A crash kills every open handle: the next write fails.
    disk.crash(&mut chooser(0));
    assert!(matches!(
        tlog.append(&[entry(2, 1, 2, 10)]),
        Err(TlogError::Io { .. })
    ));
    assert!(matches!(
        tlog.append(&[entry(2, 1, 2, 10)]),
        Err(TlogError::Poisoned(_))
    ));
    assert!(matches!(tlog.sync(), Err(TlogError::Poisoned(_))));
    assert!(matches!(tlog.read(1, 2, 10), Err(TlogError::Poisoned(_))));
    let tlog = open_sim(&disk, TlogOptions::default());
    assert_eq!(tlog.last_index(), 1);
}

#[test]
fn invalid_options_are_refused_with_the_bad_value() {
    let disk = SimDisk::new();
    for options in [
        small_options(0, 1000),
        small_options(10, 10),
        small_options(10, 2 << 30),
    ] {
        match Tlog::open(disk.shared(), dir(), options) {
            Err(TlogError::InvalidOptions(what)) => assert!(what.contains("max_"), "{what}"),
            other => panic!("expected InvalidOptions for {options:?}, got {other:?}"),
        }
    }
}

#[test]
fn unknown_files_are_left_alone_and_segments_of_another_generation_refused() {
    let disk = SimDisk::new();
    let mut tlog = open_sim(&disk, TlogOptions::default());
    assert!(tlog.append(&[entry(1, 1, 1, 10)]).is_ok());
    assert!(tlog.sync().is_ok());
    drop(tlog);
    assert!(disk::write_atomic(&disk, &dir().join("README"), b"hello").is_ok());
    let tlog = open_sim(&disk, TlogOptions::default());
    assert_eq!(tlog.last_index(), 1);
    assert!(disk.exists(&dir().join("README")));
    drop(tlog);
    let future = dir().join("00000007-00000000000000000002.tlog");
    assert!(disk::write_atomic(&disk, &future, b"x").is_ok());
    match Tlog::open(disk.shared(), dir(), TlogOptions::default()) {
        Err(TlogError::Corrupt { path, .. }) => assert_eq!(path, future),
        other => panic!(
            "expected an error naming {}, got {other:?}",
            future.display()
        ),
    }
}

#[test]
fn a_million_entries_cost_a_few_bytes_each_in_memory() {
    // The budget: a node with 1,000,000 entries stays well under 256 MiB.
    // The tlog's share is its in-memory index; the entries live on disk.
    let tmp = tempfile::Builder::new()
        .prefix("tlog-memory")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap_or_else(|e| panic!("tempdir: {e}"));
    let options = TlogOptions::default();
    let mut tlog = common::open_on(disk::RealDisk::shared(), tmp.path().to_path_buf(), options);
    let mut index = 1u64;
    let mut batch = Vec::with_capacity(10_000);
    while index <= 1_000_000 {
        batch.clear();
        for _ in 0..10_000 {
            // A term change every 100,000 entries.
            batch.push(entry(index, 1 + index / 100_000, index, 16));
            index += 1;
        }
        assert!(tlog.append(&batch).is_ok());
    }
    assert_eq!(tlog.sync().ok(), Some(1_000_000));
    let heap = tlog.index_heap_bytes();
    eprintln!(
        "index of 1,000,000 entries: {heap} heap bytes, {} segments",
        tlog.segments().len()
    );
    // Sealed segments cost per block; only the active one costs per entry.
    assert!(
        heap < 1_000_000,
        "{heap} bytes: more than one byte per entry"
    );
    drop(tlog);
    let tlog = common::open_on(disk::RealDisk::shared(), tmp.path().to_path_buf(), options);
    assert_eq!(tlog.last_index(), 1_000_000);
    assert_eq!(tlog.term(999_999), Some(10));
    assert!(tlog.index_heap_bytes() < 1_000_000);
    let got = tlog.read(123_456, 123_459, u64::MAX).unwrap_or_default();
    assert_eq!(
        got,
        (123_456..123_459)
            .map(|i| entry(i, 2, i, 16))
            .collect::<Vec<_>>()
    );
}

/// A crash at any point while a new tlog is made and first written (the
/// node killed, or the machine losing power, in its first milliseconds)
/// leaves a tlog that opens, holding a prefix of what was appended.
#[test]
fn a_crash_anywhere_in_creating_the_tlog_leaves_one_that_opens() {
    let mut crash_points = 0;
    for after_ops in 0.. {
        let crashes = [
            Crash::ProcessKill,
            Crash::PowerLoss { seed: 0 },
            Crash::PowerLoss { seed: 1 },
        ];
        for crash in crashes {
            let sim = SimDisk::new();
            let wire = Tripwire::new(sim.clone());
            wire.arm_with(after_ops, crash);
            let made = Tlog::open(Arc::new(wire.clone()), dir(), small_options(100, 1 << 16))
                .and_then(|mut tlog| {
                    tlog.save_hard_state(HardState {
                        term: 1,
                        voted_for: Some(NodeId(0)),
                        ..HardState::default()
                    })?;
                    tlog.append(&[entry(1, 1, 1, 100), entry(2, 1, 2, 100)])?;
                    tlog.sync()
                });
            let tripped = wire.disarm();
            match (made, tripped) {
                (Ok(synced), false) => {
                    assert_eq!(synced, 2);
                    assert!(crash_points > 5, "only {crash_points} crash points tried");
                    return;
                }
                (_, true) => {}
                (Err(e), false) => panic!("making the tlog failed without a crash: {e}"),
            }
            crash_points += 1;
            let tlog = Tlog::open(sim.shared(), dir(), small_options(100, 1 << 16))
                .unwrap_or_else(|e| panic!("after {crash:?} at op {after_ops}: {e}"));
            assert!(tlog.last_index() <= 2);
            assert_eq!(
                all_entries(&tlog),
                (1..=tlog.last_index())
                    .map(|i| entry(i, 1, i, 100))
                    .collect::<Vec<_>>()
            );
        }
    }
}

/// A collapse of sealed segments before the one being sealed leaves that
/// seal in progress (a collapse under load does not throw its work away);
/// a collapse that removes the segment being sealed cancels it.
#[test]
fn a_collapse_cancels_a_seal_only_if_it_removes_its_segment() {
    let disk = SimDisk::new();
    let options = small_options(1000, 1 << 20);
    let mut tlog = open_sim(&disk, options);
    let entries: Vec<_> = (1..=4500).map(|i| entry(i, 1, i, 1000)).collect();
    assert!(tlog.append(&entries).is_ok());
    let Ok(Some(job)) = tlog.take_sync_job() else {
        panic!("entries to sync");
    };
    assert_eq!(tlog.mark_synced(job.run()).ok(), Some(4500));
    // Seal the first two of the four full segments, then start the third.
    while tlog.segments().iter().filter(|s| s.sealed).count() < 2 {
        assert!(tlog.seal_some(1).is_ok());
    }
    for _ in 0..5 {
        assert_eq!(tlog.seal_some(1).ok(), Some(0), "one block of the third");
    }
    let tmp = |disk: &SimDisk| {
        disk::Disk::list(disk, &dir())
            .unwrap_or_default()
            .iter()
            .filter(|n| n.ends_with(".tmp"))
            .count()
    };
    assert_eq!(tmp(&disk), 1, "the third segment's seal is in progress");
    // Removing the two sealed segments keeps it going: 16 blocks in all,
    // 5 done, so 10 more steps without a segment finished, then the 11th.
    assert_eq!(tlog.collapse(2001).ok(), Some(2001));
    assert_eq!(tmp(&disk), 1, "the seal goes on");
    for step in 0..10 {
        assert_eq!(tlog.seal_some(1).ok(), Some(0), "step {step}");
    }
    assert_eq!(tlog.seal_some(1).ok(), Some(1), "finished where it was");
    // Start sealing the fourth, then collapse it away: cancelled.
    assert_eq!(tlog.seal_some(1).ok(), Some(0));
    assert_eq!(tmp(&disk), 1);
    assert_eq!(tlog.collapse(4001).ok(), Some(4001));
    assert_eq!(tmp(&disk), 0, "the cancelled seal's file is gone");
    assert_eq!(all_entries(&tlog), entries[4000..]);
    let reopened = open_sim(&disk, options);
    assert_eq!(all_entries(&reopened), entries[4000..]);
}
