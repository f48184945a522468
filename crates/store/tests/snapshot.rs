//! Snapshot export and import: round trip while applies go on, and every
//! kind of damaged stream refused with the store left empty.

mod common;

use common::*;
use disk::{RealDisk, SimDisk};
use protocol::Update;
use std::sync::{Arc, Barrier};
use store::{Store, StoreError};

fn fresh_sim_store() -> Store {
    Store::open(SimDisk::new().shared(), sim_path(), &options()).unwrap()
}

fn key(i: u32) -> String {
    format!("key-{i:06}")
}

/// Applies entries that set, overwrite and delete keys; returns the model.
fn fill(store: &Store, entries: u32, model: &mut Model) {
    for n in 0..entries {
        let index = store.applied_index() + 1;
        let i = n * 7919 % 5000;
        let mut updates = vec![
            set(&key(i), &format!("value-{index}")),
            set(&key(i + 1), &"v".repeat((i % 300) as usize)),
        ];
        if n % 5 == 0 {
            updates.push(Update::Delete {
                key: key(i / 2).into_bytes(),
            });
        }
        for u in &updates {
            let _ = model_apply(model, u);
        }
        store.apply(index, &updates).unwrap();
    }
}

fn export_bytes(store: &Store, chunk_target_bytes: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    store
        .export_with_chunk_target(chunk_target_bytes)
        .unwrap()
        .write_to(&mut bytes)
        .unwrap();
    bytes
}

fn assert_empty(store: &Store) {
    assert_eq!(store.applied_index(), 0);
    assert_eq!(store.read().unwrap().key_count().unwrap(), 0);
    assert_eq!(store.read().unwrap().applied_index(), 0);
}

/// The rule: an export is the state at its applied index, whatever is applied
/// while it streams.
#[test]
fn export_while_applying_imports_the_state_at_the_exported_index() {
    let dir = tempfile::tempdir().unwrap();
    let source = Arc::new(
        Store::open(
            RealDisk::shared(),
            &dir.path().join("source.db"),
            &options(),
        )
        .unwrap(),
    );
    let mut model = Model::new();
    fill(&source, 2000, &mut model);
    let exported_model = model.clone();
    let exported_index = source.applied_index();

    let export = source.export_with_chunk_target(4096).unwrap();
    assert_eq!(export.applied_index(), exported_index);
    let start = Arc::new(Barrier::new(2));
    let writer = {
        let source = Arc::clone(&source);
        let start = Arc::clone(&start);
        std::thread::spawn(move || {
            let mut model = Model::new();
            start.wait();
            fill(&source, 1000, &mut model);
            source.checkpoint().unwrap()
        })
    };
    start.wait();
    let mut stream = Vec::new();
    let mut frames = 0;
    let mut writer = Some(writer);
    let mut written_index = 0;
    for frame in export {
        stream.extend(frame.unwrap());
        frames += 1;
        // The first frames stream while the writer runs; then, to be sure
        // that writes land in the middle of the export whatever the
        // scheduling, the rest waits until the writer is done.
        if frames == 5 {
            written_index = writer.take().unwrap().join().unwrap();
        }
    }
    assert_eq!(written_index, exported_index + 1000);
    assert!(frames > 10, "small chunks make many frames, got {frames}");

    let target = fresh_sim_store();
    assert_eq!(
        target.import(&mut stream.as_slice()).unwrap(),
        exported_index
    );
    assert_eq!(target.applied_index(), exported_index);
    assert_eq!(target.durable_applied_index(), exported_index);
    assert_eq!(contents(&target), exported_model);
    // The imported store goes on from there.
    target
        .apply(exported_index + 1, &[set("after", "import")])
        .unwrap();
    assert_eq!(
        target.read().unwrap().get(b"after").unwrap(),
        Some(b"import".to_vec())
    );
}

#[test]
fn an_empty_store_round_trips() {
    let source = fresh_sim_store();
    let stream = export_bytes(&source, 1024);
    let target = fresh_sim_store();
    assert_eq!(target.import(&mut stream.as_slice()).unwrap(), 0);
    assert_empty(&target);
}

#[test]
fn an_import_survives_a_crash_and_reopen() {
    let source = fresh_sim_store();
    let mut model = Model::new();
    fill(&source, 50, &mut model);
    let stream = export_bytes(&source, 512);
    let disk = SimDisk::new();
    let target = Store::open(disk.shared(), sim_path(), &options()).unwrap();
    target.import(&mut stream.as_slice()).unwrap();
    disk.crash(&mut |_| 0);
    drop(target);
    let target = Store::open(disk.shared(), sim_path(), &options()).unwrap();
    assert_eq!(target.applied_index(), 50);
    assert_eq!(contents(&target), model);
}

#[test]
fn bytes_in_any_slicing_import_the_same() {
    let source = fresh_sim_store();
    let mut model = Model::new();
    fill(&source, 30, &mut model);
    let stream = export_bytes(&source, 256);
    let target = fresh_sim_store();
    let mut session = target.begin_import().unwrap();
    for byte in &stream {
        session.push(std::slice::from_ref(byte)).unwrap();
    }
    assert_eq!(session.finish().unwrap(), 30);
    assert_eq!(contents(&target), model);
}

#[test]
fn import_into_a_store_with_content_is_refused() {
    let source = fresh_sim_store();
    let stream = export_bytes(&source, 1024);
    let target = fresh_sim_store();
    target.apply(1, &[]).unwrap();
    let err = target.import(&mut stream.as_slice()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::ImportIntoNonEmpty {
                applied_index: 1,
                ..
            }
        ),
        "{err}"
    );
}

/// Every cut of the stream and every flipped bit is refused, and leaves the
/// store empty: a good import into the same store still works afterwards.
#[test]
fn damaged_streams_are_refused_and_change_nothing() {
    let source = fresh_sim_store();
    let mut model = Model::new();
    fill(&source, 12, &mut model);
    let good = export_bytes(&source, 128);
    let target = fresh_sim_store();

    for cut in 0..good.len() {
        let err = target.import(&mut &good[..cut]).unwrap_err();
        assert!(
            matches!(err, StoreError::SnapshotCorrupt { .. }),
            "cut at {cut}: {err}"
        );
        assert_empty(&target);
    }
    for at in 0..good.len() {
        let mut bad = good.clone();
        bad[at] ^= 1 << (at % 8);
        let err = target.import(&mut bad.as_slice()).unwrap_err();
        assert!(
            matches!(err, StoreError::SnapshotCorrupt { .. }),
            "flip at {at}: {err}"
        );
        assert_empty(&target);
    }
    let mut longer = good.clone();
    longer.push(0);
    let err = target.import(&mut longer.as_slice()).unwrap_err();
    assert!(err.to_string().contains("after the trailer"), "{err}");
    assert_empty(&target);

    assert_eq!(target.import(&mut good.as_slice()).unwrap(), 12);
    assert_eq!(contents(&target), model);
}

/// Frames of a valid stream in the wrong order, or a stream whose keys are
/// not ascending, are refused even though every checksum holds.
#[test]
fn well_framed_but_inconsistent_streams_are_refused() {
    let source = fresh_sim_store();
    let mut model = Model::new();
    fill(&source, 12, &mut model);
    let frames: Vec<Vec<u8>> = source
        .export_with_chunk_target(64)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(frames.len() >= 4);
    let last = frames.len() - 1;
    let target = fresh_sim_store();
    let mut cases: Vec<(&str, Vec<Vec<u8>>)> = Vec::new();
    cases.push(("no header", frames[1..].to_vec()));
    cases.push(("two headers", [&frames[..1], &frames[..]].concat()));
    let mut swapped = frames.clone();
    swapped.swap(1, 2);
    cases.push(("entries out of order", swapped));
    let mut dropped = frames.clone();
    dropped.remove(1);
    cases.push(("an entries frame missing", dropped));
    let mut duplicated = frames.clone();
    duplicated.insert(1, frames[1].clone());
    cases.push(("an entries frame twice", duplicated));
    cases.push(("no trailer", frames[..last].to_vec()));
    for (what, case) in cases {
        let stream = case.concat();
        let err = target.import(&mut stream.as_slice()).unwrap_err();
        assert!(
            matches!(err, StoreError::SnapshotCorrupt { .. }),
            "{what}: {err}"
        );
        assert_empty(&target);
    }
}

/// Catch-up of a node too far behind: its whole content is replaced by a
/// newer snapshot, atomically.
#[test]
fn replace_swaps_the_whole_content_for_a_newer_snapshot() {
    let source = fresh_sim_store();
    let mut source_model = Model::new();
    fill(&source, 80, &mut source_model);
    let stream = export_bytes(&source, 512);

    let disk = SimDisk::new();
    let target = Store::open(disk.shared(), sim_path(), &options()).unwrap();
    target
        .apply(1, &[set("only-in-target", "1"), set(&key(3), "old")])
        .unwrap();
    for index in 2..=50 {
        target.apply(index, &[]).unwrap();
    }
    assert_eq!(target.replace(&mut stream.as_slice()).unwrap(), 80);
    assert_eq!(target.applied_index(), 80);
    assert_eq!(contents(&target), source_model);
    // Durable at once, and applying goes on from there.
    disk.crash(&mut |_| 0);
    drop(target);
    let target = Store::open(disk.shared(), sim_path(), &options()).unwrap();
    assert_eq!(contents(&target), source_model);
    target.apply(81, &[]).unwrap();
}

#[test]
fn replace_with_an_older_or_damaged_snapshot_keeps_the_old_content() {
    let source = fresh_sim_store();
    let mut source_model = Model::new();
    fill(&source, 20, &mut source_model);
    let stream = export_bytes(&source, 256);

    let target = fresh_sim_store();
    let mut target_model = Model::new();
    fill(&target, 30, &mut target_model);
    let err = target.replace(&mut stream.as_slice()).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SnapshotTooOld {
                snapshot_index: 20,
                applied_index: 30,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(target.applied_index(), 30);
    assert_eq!(contents(&target), target_model);

    let behind = fresh_sim_store();
    let mut behind_model = Model::new();
    fill(&behind, 10, &mut behind_model);
    let cut = &stream[..stream.len() - 3];
    assert!(behind.replace(&mut &cut[..]).is_err());
    assert_eq!(behind.applied_index(), 10);
    assert_eq!(contents(&behind), behind_model);
    // An empty snapshot at a later index empties the store.
    let empty = fresh_sim_store();
    for index in 1..=15 {
        empty.apply(index, &[]).unwrap();
    }
    let empty_stream = export_bytes(&empty, 256);
    assert_eq!(behind.replace(&mut empty_stream.as_slice()).unwrap(), 15);
    assert_eq!(behind.read().unwrap().key_count().unwrap(), 0);
    assert!(contents(&behind).is_empty());
}

/// `copy_to`: a consistent copy as a new store file, equal to the source
/// at its applied index; an existing target is refused and left alone.
/// `compact_file` then compacts the copy (closed) and keeps its content.
#[test]
fn copy_to_makes_an_equal_store_file_and_compact_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let disk = RealDisk::shared();
    let source = Store::open(disk.clone(), &dir.path().join("source.db"), &options()).unwrap();
    let mut model = Model::new();
    fill(&source, 300, &mut model);
    let target = dir.path().join("copy.db");
    let index = source.copy_to(&target, &options()).unwrap();
    assert_eq!(index, source.applied_index());
    let copy = Store::open(disk.clone(), &target, &options()).unwrap();
    assert_eq!(copy.applied_index(), index);
    assert_eq!(contents(&copy), model);
    drop(copy);

    let refused = source.copy_to(&target, &options()).unwrap_err();
    assert!(refused.to_string().contains("exists"), "{refused}");

    let (before, after) = store::compact_file(&target).unwrap();
    assert!(after <= before, "{before} -> {after}");
    let copy = Store::open(disk, &target, &options()).unwrap();
    assert_eq!(contents(&copy), model);
}
