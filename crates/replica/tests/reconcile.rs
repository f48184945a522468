//! A node stopped between installing a store snapshot and rebasing its tlog
//! starts again: `reconcile_storage` rebases the tlog on the `(index, term)`
//! the install recorded. A store ahead of its tlog for any other reason is
//! left alone (the core refuses to start on it, naming both).

use disk::SimDisk;
use protocol::Update;
use std::path::Path;
use store::{Store, StoreOptions};
use tlog::{Entry, Tlog, TlogOptions};

fn open(disk: &SimDisk) -> (Tlog, Store) {
    let tlog = Tlog::open(disk.shared(), "/n/tlog".into(), TlogOptions::default()).expect("tlog");
    let store = Store::open(
        disk.shared(),
        Path::new("/n/store/store.redb"),
        &StoreOptions::default(),
    )
    .expect("store");
    (tlog, store)
}

/// A store snapshot at index 40 (of term 3) from another store.
fn snapshot_at_40() -> Vec<u8> {
    let disk = SimDisk::new();
    let (_, source) = open(&disk);
    let batches: Vec<Vec<Update>> = (1..=40)
        .map(|i| {
            vec![Update::Set {
                key: format!("k{i}").into_bytes(),
                value: vec![i as u8],
            }]
        })
        .collect();
    source.apply_entries(1, &batches).expect("apply");
    let mut bytes = Vec::new();
    source
        .export()
        .expect("export")
        .write_to(&mut bytes)
        .expect("write");
    bytes
}

#[test]
fn a_store_installed_past_its_tlog_gets_the_tlog_rebased_at_the_next_start() {
    let disk = SimDisk::new();
    let (mut tlog, store) = open(&disk);
    tlog.append(&[Entry {
        index: 1,
        term: 1,
        payload: Vec::new(),
    }])
    .expect("append");
    tlog.sync().expect("sync");
    store
        .install(&mut snapshot_at_40().as_slice(), 40, 3)
        .expect("install");
    assert_eq!(store.snapshot_base().expect("base"), Some((40, 3)));
    // The node stops here, before the tlog is rebased.
    drop(tlog);
    store.close().expect("close");

    let (mut tlog, store) = open(&disk);
    assert_eq!((store.applied_index(), tlog.last_index()), (40, 1));
    assert!(replica::reconcile_storage(&mut tlog, &store).expect("reconcile"));
    assert_eq!(
        (tlog.first_index(), tlog.last_index(), tlog.term(40)),
        (41, 40, Some(3))
    );
    // Once rebased, nothing more to do.
    assert!(!replica::reconcile_storage(&mut tlog, &store).expect("again"));
}

#[test]
fn a_snapshot_of_another_index_than_announced_is_refused_and_changes_nothing() {
    let disk = SimDisk::new();
    let (_, store) = open(&disk);
    let err = store
        .install(&mut snapshot_at_40().as_slice(), 41, 3)
        .expect_err("index mismatch");
    assert!(err.to_string().contains("expected one at 41"), "{err}");
    assert_eq!(store.applied_index(), 0);
    assert_eq!(store.snapshot_base().expect("base"), None);
}

#[test]
fn a_store_ahead_of_its_tlog_without_a_recorded_snapshot_is_left_alone() {
    let disk = SimDisk::new();
    let (mut tlog, store) = open(&disk);
    store
        .apply_entries(
            1,
            &[vec![Update::Set {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
            }]],
        )
        .expect("apply");
    assert!(!replica::reconcile_storage(&mut tlog, &store).expect("reconcile"));
    assert_eq!(tlog.last_index(), 0);
}
