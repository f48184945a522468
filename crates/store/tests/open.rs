//! Opening: on the real disk, on damaged files (an error, never a panic that
//! escapes), and the apply-order rule.

mod common;

use common::*;
use disk::{Disk, OpenMode, RealDisk, SimDisk};
use protocol::{KeyRange, Update};
use store::{Order, Store, StoreError, UpdateFailure, UpdateOk};

#[test]
fn a_store_on_the_real_disk_keeps_its_content_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub").join("arakoon.db");
    let store = Store::open(RealDisk::shared(), &path, &options()).unwrap();
    store.apply(1, &[set("a", "1"), set("b", "2")]).unwrap();
    store
        .apply(2, &[Update::Delete { key: b"a".to_vec() }])
        .unwrap();
    assert_eq!(store.close().unwrap(), 2);
    let store = Store::open(RealDisk::shared(), &path, &options()).unwrap();
    assert_eq!(store.applied_index(), 2);
    assert_eq!(store.durable_applied_index(), 2);
    let view = store.read().unwrap();
    assert_eq!(view.get(b"a").unwrap(), None);
    assert_eq!(view.get(b"b").unwrap(), Some(b"2".to_vec()));
}

#[test]
fn entries_apply_in_order_only() {
    let store = Store::open(SimDisk::new().shared(), sim_path(), &options()).unwrap();
    for index in [0, 2, u64::MAX] {
        let err = store.apply(index, &[set("a", "1")]).unwrap_err();
        assert!(
            matches!(err, StoreError::IndexMismatch { applied_index: 0, index: i, .. } if i == index),
            "{err}"
        );
    }
    assert_eq!(store.read().unwrap().key_count().unwrap(), 0);
    store.apply(1, &[]).unwrap();
    assert!(store.apply(1, &[]).is_err());
    assert_eq!(store.applied_index(), 1);
}

/// Arakoon's example: a batch whose updates fail one by one, a sequence that
/// fails on its last assert, and the index advancing all the same.
#[test]
fn a_failing_update_affects_only_itself_and_a_failing_sequence_nothing() {
    let store = Store::open(SimDisk::new().shared(), sim_path(), &options()).unwrap();
    let results = store
        .apply(
            1,
            &[
                set("x", "1"),
                Update::Delete {
                    key: b"missing".to_vec(),
                },
                Update::Sequence(vec![
                    set("y", "2"),
                    Update::Sequence(vec![Update::Delete { key: b"x".to_vec() }]),
                    Update::Assert {
                        key: b"x".to_vec(),
                        value: Some(b"1".to_vec()),
                    },
                ]),
                Update::TestAndSet {
                    key: b"x".to_vec(),
                    expected: Some(b"1".to_vec()),
                    wanted: Some(b"3".to_vec()),
                },
                Update::DeletePrefix { prefix: vec![] },
            ],
        )
        .unwrap();
    assert_eq!(
        results,
        vec![
            Ok(UpdateOk::Done),
            Err(UpdateFailure::NotFound {
                key: b"missing".to_vec()
            }),
            // The nested delete removed x, so the assert saw it absent.
            Err(UpdateFailure::AssertionFailed { key: b"x".to_vec() }),
            Ok(UpdateOk::Previous(Some(b"1".to_vec()))),
            Ok(UpdateOk::Count(1)),
        ]
    );
    assert_eq!(store.applied_index(), 1);
    assert_eq!(store.read().unwrap().key_count().unwrap(), 0);
}

#[test]
fn a_path_without_a_directory_is_refused() {
    let err = Store::open(SimDisk::new().shared(), "x.db".as_ref(), &options()).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
}

#[test]
fn a_file_that_is_not_a_store_is_an_error() {
    let disk = SimDisk::new();
    disk.create_dir_all(sim_path().parent().unwrap()).unwrap();
    let file = disk.open(sim_path(), OpenMode::Create).unwrap();
    file.write_all_at(0, &[0x5a; 8192]).unwrap();
    file.sync_data().unwrap();
    drop(file);
    let err = Store::open(disk.shared(), sim_path(), &options()).unwrap_err();
    eprintln!("{err}");
}

fn build_closed_store(disk: &SimDisk) -> Model {
    let store = Store::open(disk.shared(), sim_path(), &options()).unwrap();
    let mut model = Model::new();
    for index in 1..=40u64 {
        let update = set(&format!("k{index}"), &"v".repeat(64));
        let _ = model_apply(&mut model, &update);
        store.apply(index, &[update]).unwrap();
    }
    store.close().unwrap();
    model
}

/// Bit flips across a closed store file: opening either fails with an error,
/// or (the flip hit unused space) gives the store's exact content. Nothing
/// panics out of `open`, and nothing wrong is read.
#[test]
fn flipped_bits_in_the_file_are_errors_or_harmless() {
    let file_len = {
        let disk = SimDisk::new();
        build_closed_store(&disk);
        let file = disk.open(sim_path(), OpenMode::Read).unwrap();
        file.len().unwrap()
    };
    let (mut refused, mut harmless) = (0, 0);
    for at in (0..file_len).step_by(997) {
        let disk = SimDisk::new();
        let model = build_closed_store(&disk);
        assert!(disk.flip_bit(sim_path(), at, (at % 8) as u8));
        let read = Store::open(disk.shared(), sim_path(), &options())
            .and_then(|store| store.read())
            .and_then(|view| view.range_entries(&KeyRange::all(), Order::Ascending, usize::MAX));
        match read {
            Err(_) => refused += 1,
            Ok(entries) => {
                assert_eq!(
                    entries.into_iter().collect::<Model>(),
                    model,
                    "flip at {at}"
                );
                harmless += 1;
            }
        }
    }
    eprintln!("{refused} flips refused, {harmless} harmless");
    assert!(refused > 0);
}

/// The node shares the store between threads and streams exports from one.
#[test]
fn handles_can_move_between_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Store>();
    send::<store::SnapshotExport>();
    send::<store::ReadView>();
}

/// A read view is one consistent state: applies after it was taken, and a
/// checkpoint, do not show through it.
#[test]
fn a_read_view_keeps_its_state_while_applies_go_on() {
    let store = Store::open(SimDisk::new().shared(), sim_path(), &options()).unwrap();
    store.apply(1, &[set("a", "1"), set("b", "1")]).unwrap();
    let view = store.read().unwrap();
    store
        .apply(
            2,
            &[
                set("a", "2"),
                Update::Delete { key: b"b".to_vec() },
                set("c", "2"),
            ],
        )
        .unwrap();
    store.checkpoint().unwrap();
    assert_eq!(view.applied_index(), 1);
    assert_eq!(view.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert!(view.exists(b"b").unwrap());
    assert_eq!(view.key_count().unwrap(), 2);
    assert_eq!(
        view.prefix_keys(b"", -1, usize::MAX).unwrap(),
        vec![b"a".to_vec(), b"b".to_vec()]
    );
    let now = store.read().unwrap();
    assert_eq!(now.applied_index(), 2);
    assert_eq!(
        now.range(&KeyRange::all(), usize::MAX).unwrap(),
        vec![b"a".to_vec(), b"c".to_vec()]
    );
}

/// Arakoon's own reverse-range example (arakoon_remote_client_test.ml):
/// keys xey000..xey099, `rev_range_entries(first "xey100" incl, last
/// "xey009" incl, max 3)` starts at xey099, the high end.
#[test]
fn rev_range_entries_walks_down_from_first_as_in_arakoon() {
    let store = Store::open(SimDisk::new().shared(), sim_path(), &options()).unwrap();
    let updates: Vec<Update> = (0..100).map(|i| set(&format!("xey{i:03}"), "v")).collect();
    store.apply(1, &updates).unwrap();
    let view = store.read().unwrap();
    let range = |first: &str, first_inclusive, last: &str, last_inclusive, max| KeyRange {
        first: Some(first.as_bytes().to_vec()),
        first_inclusive,
        last: Some(last.as_bytes().to_vec()),
        last_inclusive,
        max,
    };
    let keys: Vec<Vec<u8>> = view
        .range_entries(
            &range("xey100", true, "xey009", true, 3),
            Order::Descending,
            usize::MAX,
        )
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        vec![b"xey099".to_vec(), b"xey098".to_vec(), b"xey097".to_vec()]
    );
    // And the low end bounds the walk.
    let all = view
        .range_entries(
            &range("xey012", false, "xey009", false, -1),
            Order::Descending,
            usize::MAX,
        )
        .unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].0, b"xey011".to_vec());
}

/// A range or prefix answer is bounded in bytes (keys and values counted
/// as on the wire, 4 bytes of length each): at the limit it is given, one
/// byte below it is refused without being built.
#[test]
fn answers_larger_than_their_byte_budget_are_refused() {
    let store = Store::open(SimDisk::new().shared(), sim_path(), &options()).unwrap();
    let updates: Vec<Update> = (0..100)
        .map(|i| set(&format!("k{i:03}"), "0123456789"))
        .collect();
    store.apply(1, &updates).unwrap();
    let view = store.read().unwrap();
    let all = KeyRange::all();
    // 100 keys of 4 bytes, values of 10: 100 × (4 + 4 + 4 + 10) bytes.
    let entries_bytes = 100 * (4 + 4 + 4 + 10);
    assert_eq!(
        view.range_entries(&all, Order::Ascending, entries_bytes)
            .unwrap()
            .len(),
        100
    );
    let refused = view.range_entries(&all, Order::Descending, entries_bytes - 1);
    assert!(
        matches!(refused, Err(StoreError::AnswerTooLarge { limit }) if limit == entries_bytes - 1)
    );
    let keys_bytes = 100 * (4 + 4);
    assert_eq!(view.range(&all, keys_bytes).unwrap().len(), 100);
    assert!(matches!(
        view.range(&all, keys_bytes - 1),
        Err(StoreError::AnswerTooLarge { .. })
    ));
    assert_eq!(view.prefix_keys(b"k", -1, keys_bytes).unwrap().len(), 100);
    assert!(matches!(
        view.prefix_keys(b"k", -1, keys_bytes - 1),
        Err(StoreError::AnswerTooLarge { .. })
    ));
    // A max within the budget is fine however large the store.
    let ten = KeyRange {
        max: 10,
        ..KeyRange::all()
    };
    assert_eq!(
        view.range_entries(&ten, Order::Ascending, 10 * 22)
            .unwrap()
            .len(),
        10
    );
    // multi_get and multi_get_option: values with their 4-byte lengths.
    let keys: Vec<String> = (0..10).map(|i| format!("k{i:03}")).collect();
    let values_bytes = 10 * (4 + 10);
    assert_eq!(view.multi_get(&keys, values_bytes).unwrap().len(), 10);
    assert!(matches!(
        view.multi_get(&keys, values_bytes - 1),
        Err(StoreError::AnswerTooLarge { .. })
    ));
    assert_eq!(
        view.multi_get_option(&keys, values_bytes).unwrap().len(),
        10
    );
    assert!(matches!(
        view.multi_get_option(&keys, values_bytes - 1),
        Err(StoreError::AnswerTooLarge { .. })
    ));
}
