//! A full device under the tlog (ENOSPC): an append, a rotation, a seal
//! and a hard state save fail without poisoning the tlog, leave it as it
//! was (or with a prefix of the entries appended), and go through once the
//! device has space again; a crash meanwhile loses nothing that was synced.

mod common;

use common::{all_entries, chooser, dir, entry, open_sim, small_options};
use disk::{Disk, SimDisk};
use tlog::{HardState, TlogError};

fn no_space<T: std::fmt::Debug>(result: Result<T, TlogError>) -> TlogError {
    match result {
        Err(e) if e.is_no_space() => e,
        other => panic!("expected a full-device error, got {other:?}"),
    }
}

fn tmp_files(disk: &SimDisk) -> Vec<String> {
    match disk.list(&dir()) {
        Ok(names) => names.into_iter().filter(|n| n.ends_with(".tmp")).collect(),
        Err(e) => panic!("list {}: {e}", dir().display()),
    }
}

#[test]
fn an_append_on_a_full_device_leaves_the_tlog_usable_and_completes_later() {
    let disk = SimDisk::new();
    // 4 entries per segment: the batch below rotates in the middle.
    let mut tlog = open_sim(&disk, small_options(4, 1 << 20));
    let first: Vec<_> = (1..=3).map(|i| entry(i, 1, i, 100)).collect();
    assert_eq!(tlog.append(&first).ok(), Some(3));
    assert_eq!(tlog.sync().ok(), Some(3));

    disk.set_full(Some(&dir()));
    let batch: Vec<_> = (4..=9).map(|i| entry(i, 1, i, 100)).collect();
    let e = no_space(tlog.append(&batch));
    assert!(e.to_string().contains("no space left"), "{e}");
    // Nothing of a failed write counts: the tlog ends where it did.
    assert_eq!(tlog.last_index(), 3);
    assert_eq!(all_entries(&tlog), first);
    // Still usable: reads, syncs, and the same append fails the same way.
    assert_eq!(tlog.sync().ok(), Some(3));
    no_space(tlog.append(&batch));

    disk.set_full(None);
    assert_eq!(tlog.append(&batch).ok(), Some(9));
    assert_eq!(tlog.sync().ok(), Some(9));
    let mut all = first.clone();
    all.extend(batch);
    assert_eq!(all_entries(&tlog), all);

    // What the failed writes left past the end is overwritten or ignored.
    disk.crash(&mut chooser(7));
    let reopened = open_sim(&disk, small_options(4, 1 << 20));
    assert_eq!(all_entries(&reopened), all);
}

#[test]
fn a_rotation_on_a_full_device_appends_the_entries_that_fit_and_leaves_no_file_behind() {
    let disk = SimDisk::new();
    let mut tlog = open_sim(&disk, small_options(4, 1 << 20));
    let first: Vec<_> = (1..=2).map(|i| entry(i, 1, i, 100)).collect();
    assert_eq!(tlog.append(&first).ok(), Some(2));
    assert_eq!(tlog.sync().ok(), Some(2));
    let segments = tlog.segment_count();

    // The active segment is preallocated; the full device refuses the new
    // one. With the sim's half-written writes, entries 3 and 4 (which fit
    // in the active segment) fail too: nothing is appended.
    disk.set_full(Some(&dir()));
    let batch: Vec<_> = (3..=6).map(|i| entry(i, 2, i, 100)).collect();
    no_space(tlog.append(&batch));
    assert_eq!(tlog.last_index(), 2);
    assert_eq!(tlog.segment_count(), segments);
    assert!(tmp_files(&disk).is_empty(), "{:?}", tmp_files(&disk));

    disk.set_full(None);
    assert_eq!(tlog.append(&batch).ok(), Some(6));
    assert_eq!(tlog.sync().ok(), Some(6));
    assert_eq!(tlog.segment_count(), segments + 1);
}

#[test]
fn a_seal_on_a_full_device_is_dropped_and_done_later() {
    let disk = SimDisk::new();
    let mut tlog = open_sim(&disk, small_options(4, 1 << 20));
    let entries: Vec<_> = (1..=6).map(|i| entry(i, 1, i, 300)).collect();
    // Two segments: the first full and still plain (sealing comes with a sync).
    assert_eq!(tlog.append(&entries).ok(), Some(6));
    disk.set_full(Some(&dir()));
    no_space(tlog.seal_full_segments());
    assert!(tmp_files(&disk).is_empty(), "{:?}", tmp_files(&disk));
    assert_eq!(all_entries(&tlog), entries);
    assert!(tlog.segments().iter().all(|s| !s.sealed));

    disk.set_full(None);
    assert_eq!(tlog.seal_full_segments().ok(), Some(1));
    assert!(tlog.segments()[0].sealed);
    assert_eq!(all_entries(&tlog), entries);
}

#[test]
fn a_hard_state_on_a_full_device_keeps_the_old_one() {
    let disk = SimDisk::new();
    let mut tlog = open_sim(&disk, small_options(4, 1 << 20));
    let old = HardState {
        term: 3,
        voted_for: None,
        incarnation: 11,
        standing: consensus::Standing::Trusted,
    };
    assert!(tlog.save_hard_state(old).is_ok());
    disk.set_full(Some(&dir()));
    let new = HardState { term: 4, ..old };
    no_space(tlog.save_hard_state(new));
    assert_eq!(tlog.hard_state(), Some(old));
    assert!(tmp_files(&disk).is_empty(), "{:?}", tmp_files(&disk));
    disk.crash(&mut chooser(3));
    let mut reopened = open_sim(&disk, small_options(4, 1 << 20));
    assert_eq!(reopened.hard_state(), Some(old));

    disk.set_full(None);
    assert!(reopened.save_hard_state(new).is_ok());
    assert_eq!(reopened.hard_state(), Some(new));
}

#[test]
fn a_failed_fsync_still_poisons_whatever_its_errno() {
    // `is_no_space` is about writes only: an fdatasync that fails with
    // ENOSPC (as on NFS) may have dropped pages and must poison.
    let e = TlogError::Io {
        path: dir(),
        op: "fdatasync",
        source: std::io::Error::from(std::io::ErrorKind::StorageFull),
    };
    assert!(!e.is_no_space());
    let e = TlogError::Io {
        path: dir(),
        op: "write",
        source: std::io::Error::from(std::io::ErrorKind::StorageFull),
    };
    assert!(e.is_no_space());
    let e = TlogError::Io {
        path: dir(),
        op: "write",
        source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    };
    assert!(!e.is_no_space());
}

#[test]
fn a_truncation_on_a_full_device_goes_through() {
    let disk = SimDisk::new();
    let mut tlog = open_sim(&disk, small_options(8, 1 << 20));
    let entries: Vec<_> = (1..=6).map(|i| entry(i, 1, i, 100)).collect();
    assert_eq!(tlog.append(&entries).ok(), Some(6));
    assert_eq!(tlog.sync().ok(), Some(6));

    // A new master's log differs from 4 on: the cut needs no space (the
    // segment is not preallocated again until there is).
    disk.set_full(Some(&dir()));
    assert!(tlog.truncate_suffix(4).is_ok());
    assert_eq!(all_entries(&tlog), entries[..3].to_vec());
    let replacement = [entry(4, 2, 40, 100)];
    no_space(tlog.append(&replacement));
    assert_eq!(tlog.last_index(), 3);

    disk.set_full(None);
    assert_eq!(tlog.append(&replacement).ok(), Some(4));
    assert_eq!(tlog.sync().ok(), Some(4));
    disk.crash(&mut chooser(5));
    let reopened = open_sim(&disk, small_options(8, 1 << 20));
    let mut expected = entries[..3].to_vec();
    expected.extend(replacement);
    assert_eq!(all_entries(&reopened), expected);
}
