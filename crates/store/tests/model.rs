//! The store against a `BTreeMap` model (STYLE habit 8): random batches of
//! every update kind (nested sequences with failing asserts included), every
//! read with random boundaries and limits, checkpoints, clean reopens and
//! simulated crashes on the `SimDisk`.

mod common;

use common::*;
use disk::SimDisk;
use proptest::prelude::*;
use protocol::{KeyRange, RangeAssertion, Update};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use store::{Order, Store};

/// Keys from a tiny alphabet, so that updates collide, prefixes match and
/// the edge bytes 0x00 and 0xff (prefix ends) show up.
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![0x00u8, b'a', b'b', 0xff]), 0..4)
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![b'x', b'y']), 0..3)
}

fn leaf_update() -> impl Strategy<Value = Update> {
    prop_oneof![
        4 => (key(), value()).prop_map(|(key, value)| Update::Set { key, value }),
        2 => key().prop_map(|key| Update::Delete { key }),
        2 => (key(), prop::option::of(value()), prop::option::of(value()))
            .prop_map(|(key, expected, wanted)| Update::TestAndSet { key, expected, wanted }),
        1 => (key(), prop::option::of(value()))
            .prop_map(|(key, wanted)| Update::Replace { key, wanted }),
        1 => prop::collection::vec(prop::sample::select(vec![0x00u8, b'a', b'b', 0xff]), 0..3)
            .prop_map(|prefix| Update::DeletePrefix { prefix }),
        2 => (key(), prop::option::of(value()))
            .prop_map(|(key, value)| Update::Assert { key, value }),
        1 => key().prop_map(|key| Update::AssertExists { key }),
        1 => Just(Update::Nop),
        1 => Just(Update::UserFunction { name: b"f".to_vec(), argument: None }),
        // Short prefixes and few keys, so that some assertions hold.
        2 => (
            prop::collection::vec(prop::sample::select(vec![b'a', b'b']), 0..3),
            prop::collection::vec(key(), 0..3),
        )
            .prop_map(|(prefix, keys)| Update::AssertRange {
                prefix,
                assertion: RangeAssertion::ContainsExactly(keys),
            }),
    ]
}

fn update() -> impl Strategy<Value = Update> {
    leaf_update().prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Update::Sequence),
            prop::collection::vec(inner, 0..5).prop_map(Update::SyncedSequence),
        ]
    })
}

#[derive(Debug, Clone)]
enum Read {
    Get(Vec<u8>),
    Exists(Vec<u8>),
    MultiGet(Vec<Vec<u8>>),
    MultiGetOption(Vec<Vec<u8>>),
    Range(Option<Vec<u8>>, bool, Option<Vec<u8>>, bool, i64),
    RangeEntries(Option<Vec<u8>>, bool, Option<Vec<u8>>, bool, i64),
    RevRangeEntries(Option<Vec<u8>>, bool, Option<Vec<u8>>, bool, i64),
    PrefixKeys(Vec<u8>, i64),
    KeyCount,
    /// `visit_range_entries` in either order, the visitor stopping after
    /// that many pairs.
    Visit(RangeArgs, bool, usize),
}

fn max() -> impl Strategy<Value = i64> {
    prop::sample::select(vec![-2i64, -1, 0, 1, 2, 5])
}

type RangeArgs = (Option<Vec<u8>>, bool, Option<Vec<u8>>, bool, i64);

fn range_args() -> impl Strategy<Value = RangeArgs> {
    (
        prop::option::of(key()),
        any::<bool>(),
        prop::option::of(key()),
        any::<bool>(),
        max(),
    )
}

fn read() -> impl Strategy<Value = Read> {
    prop_oneof![
        key().prop_map(Read::Get),
        key().prop_map(Read::Exists),
        prop::collection::vec(key(), 0..4).prop_map(Read::MultiGet),
        prop::collection::vec(key(), 0..4).prop_map(Read::MultiGetOption),
        range_args().prop_map(|(f, fi, l, li, m)| Read::Range(f, fi, l, li, m)),
        range_args().prop_map(|(f, fi, l, li, m)| Read::RangeEntries(f, fi, l, li, m)),
        range_args().prop_map(|(f, fi, l, li, m)| Read::RevRangeEntries(f, fi, l, li, m)),
        (key(), max()).prop_map(|(p, m)| Read::PrefixKeys(p, m)),
        Just(Read::KeyCount),
        (range_args(), any::<bool>(), 1usize..4).prop_map(|(a, d, s)| Read::Visit(a, d, s)),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Apply(Vec<Update>),
    Read(Read),
    Checkpoint,
    Reopen,
    Crash(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => prop::collection::vec(update(), 0..4).prop_map(Op::Apply),
        8 => read().prop_map(Op::Read),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Reopen),
        1 => any::<u64>().prop_map(Op::Crash),
    ]
}

/// The wire form of a range the model reads with loose arguments.
fn key_range(f: &Option<Vec<u8>>, fi: bool, l: &Option<Vec<u8>>, li: bool, m: i64) -> KeyRange {
    KeyRange {
        first: f.clone(),
        first_inclusive: fi,
        last: l.clone(),
        last_inclusive: li,
        max: i32::try_from(m).unwrap(),
    }
}

fn check_read(store: &Store, model: &Model, read: &Read) {
    let o = |k: &Option<Vec<u8>>| k.clone();
    let view = store.read().unwrap();
    match read {
        Read::Get(k) => assert_eq!(view.get(k).unwrap(), model.get(k).cloned()),
        Read::Exists(k) => assert_eq!(view.exists(k).unwrap(), model.contains_key(k)),
        Read::MultiGet(keys) => {
            let want: Option<Vec<Vec<u8>>> = keys.iter().map(|k| model.get(k).cloned()).collect();
            match (view.multi_get(keys, usize::MAX), want) {
                (Ok(got), Some(want)) => assert_eq!(got, want),
                (Err(store::StoreError::KeyNotFound { key }), None) => {
                    let first_missing = keys.iter().find(|k| !model.contains_key(*k)).unwrap();
                    assert_eq!(&key, first_missing);
                }
                (got, want) => panic!("multi_get {keys:?}: got {got:?}, model {want:?}"),
            }
        }
        Read::MultiGetOption(keys) => {
            let want: Vec<Option<Vec<u8>>> = keys.iter().map(|k| model.get(k).cloned()).collect();
            assert_eq!(view.multi_get_option(keys, usize::MAX).unwrap(), want);
        }
        Read::Range(f, fi, l, li, m) => {
            let want: Vec<Vec<u8>> =
                model_range_entries(model, o(f).as_deref(), *fi, o(l).as_deref(), *li, *m)
                    .into_iter()
                    .map(|(k, _)| k)
                    .collect();
            let got = view
                .range(&key_range(f, *fi, l, *li, *m), usize::MAX)
                .unwrap();
            assert_eq!(got, want, "{read:?}");
        }
        Read::RangeEntries(f, fi, l, li, m) => {
            let want = model_range_entries(model, f.as_deref(), *fi, l.as_deref(), *li, *m);
            let got = view
                .range_entries(&key_range(f, *fi, l, *li, *m), Order::Ascending, usize::MAX)
                .unwrap();
            assert_eq!(got, want, "{read:?}");
        }
        Read::RevRangeEntries(f, fi, l, li, m) => {
            let want = model_rev_range_entries(model, f.as_deref(), *fi, l.as_deref(), *li, *m);
            let got = view
                .range_entries(
                    &key_range(f, *fi, l, *li, *m),
                    Order::Descending,
                    usize::MAX,
                )
                .unwrap();
            assert_eq!(got, want, "{read:?}");
        }
        Read::PrefixKeys(p, m) => {
            assert_eq!(
                view.prefix_keys(p, *m, usize::MAX).unwrap(),
                model_prefix_keys(model, p, *m),
                "{read:?}"
            );
        }
        Read::KeyCount => assert_eq!(view.key_count().unwrap(), model.len() as u64),
        Read::Visit((f, fi, l, li, m), descending, stop_after) => {
            let range = key_range(f, *fi, l, *li, *m);
            let (f, l) = (f.as_deref(), l.as_deref());
            let order = if *descending {
                Order::Descending
            } else {
                Order::Ascending
            };
            let mut got = Vec::new();
            let visited = view
                .visit_range_entries(&range, order, |k, v| {
                    got.push((k.to_vec(), v.to_vec()));
                    if got.len() >= *stop_after {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                })
                .unwrap();
            let mut want = if *descending {
                model_rev_range_entries(model, f, *fi, l, *li, *m)
            } else {
                model_range_entries(model, f, *fi, l, *li, *m)
            };
            want.truncate(*stop_after);
            assert_eq!(got, want, "{read:?}");
            assert_eq!(visited, got.len() as u64);
        }
    }
}

fn run(ops: Vec<Op>) {
    let disk = SimDisk::new();
    let mut store = Store::open(disk.shared(), sim_path(), &options()).unwrap();
    let mut model = Model::new();
    // The model at every index from the last checkpoint on: where a crash
    // may take the store back to.
    let mut history: BTreeMap<u64, Model> = BTreeMap::from([(0, Model::new())]);
    let mut applied_index = 0u64;
    let mut durable_index = 0u64;
    for op in ops {
        match op {
            Op::Apply(updates) => {
                applied_index += 1;
                let want: Vec<_> = updates.iter().map(|u| model_apply(&mut model, u)).collect();
                let got = store.apply(applied_index, &updates).unwrap();
                assert_eq!(got, want, "results of {updates:?}");
                for (update, result) in updates.iter().zip(&got) {
                    if let Some(known) = store::result_before_apply(update) {
                        assert_eq!(&known, result, "result_before_apply({update:?})");
                    }
                }
                assert_eq!(store.applied_index(), applied_index);
                history.insert(applied_index, model.clone());
            }
            Op::Read(read) => check_read(&store, &model, &read),
            Op::Checkpoint => {
                durable_index = store.checkpoint().unwrap();
                assert_eq!(durable_index, applied_index);
                history.retain(|&i, _| i >= durable_index);
            }
            Op::Reopen => {
                durable_index = store.close().unwrap();
                assert_eq!(durable_index, applied_index);
                store = Store::open(disk.shared(), sim_path(), &options()).unwrap();
                assert_eq!(store.applied_index(), applied_index);
                history.retain(|&i, _| i >= durable_index);
            }
            Op::Crash(seed) => {
                let mut rng = Rng(seed);
                disk.crash(&mut |n| rng.below(n));
                drop(store);
                store = Store::open(disk.shared(), sim_path(), &options()).unwrap();
                let recovered = store.applied_index();
                assert!(
                    (durable_index..=applied_index).contains(&recovered),
                    "recovered index {recovered} outside [{durable_index}, {applied_index}]"
                );
                model = history[&recovered].clone();
                applied_index = recovered;
                durable_index = store.durable_applied_index();
                assert_eq!(durable_index, recovered, "open checkpoints");
                history.retain(|&i, _| i == recovered);
            }
        }
        assert_eq!(contents(&store), model);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn store_behaves_like_the_model(ops in prop::collection::vec(op(), 1..40)) {
        run(ops);
    }
}

/// A key outside the generated alphabet: never present.
const ABSENT: &[u8] = b"zz";

/// Wraps `update` in `depth` sequences, with `before` inside the innermost
/// one, ahead of it.
fn nest(before: Vec<Update>, update: Update, depth: usize) -> Update {
    let mut inner = before;
    inner.push(update);
    let mut sequence = Update::Sequence(inner);
    for _ in 1..depth {
        sequence = Update::Sequence(vec![Update::Nop, sequence]);
    }
    sequence
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Sequence atomicity: a sequence whose last update (at any nesting depth)
    /// fails changes nothing, whatever came before it; the failure names the
    /// key; the index still advances; the rest of the batch still applies.
    #[test]
    fn a_failing_sequence_applies_nothing(
        setup in prop::collection::vec(leaf_update(), 0..8),
        before in prop::collection::vec(update(), 0..6),
        depth in 1usize..4,
        delete_instead in any::<bool>(),
    ) {
        let store = Store::open(SimDisk::new().shared(), sim_path(), &options()).unwrap();
        store.apply(1, &setup).unwrap();
        let state = contents(&store);
        let failing = if delete_instead {
            Update::Delete { key: ABSENT.to_vec() }
        } else {
            Update::Assert { key: ABSENT.to_vec(), value: Some(b"x".to_vec()) }
        };
        let after = Update::Set { key: b"after".to_vec(), value: b"1".to_vec() };
        let sequence = nest(before, failing, depth);
        let mut model = state.clone();
        // The model's verdict: the first failing update of the sequence (an
        // earlier random one, or the one planted last).
        let want = model_apply(&mut model, &sequence);
        prop_assert!(want.is_err());
        prop_assert_eq!(&model, &state);
        let results = store.apply(2, &[sequence, after]).unwrap();
        prop_assert_eq!(&results[0], &want);
        prop_assert_eq!(&results[1], &Ok(store::UpdateOk::Done));
        prop_assert_eq!(store.applied_index(), 2);
        let mut state_after = state;
        state_after.insert(b"after".to_vec(), b"1".to_vec());
        prop_assert_eq!(contents(&store), state_after);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    /// `apply_entries` (many entries, one transaction: replay and catch-up)
    /// gives exactly what `apply` of each entry in turn gives: the same
    /// results per update, the same content, the same applied index.
    #[test]
    fn apply_entries_equals_applying_one_by_one(
        entries in proptest::collection::vec(proptest::collection::vec(update(), 0..5), 1..25),
        chunk in 1usize..8,
    ) {
        let disk_a = SimDisk::new();
        let one_by_one = Store::open(disk_a.shared(), sim_path(), &options()).unwrap();
        let mut expected = Vec::new();
        for (k, updates) in entries.iter().enumerate() {
            expected.push(one_by_one.apply(k as u64 + 1, updates).unwrap());
        }
        let disk_b = SimDisk::new();
        let batched = Store::open(disk_b.shared(), sim_path(), &options()).unwrap();
        let mut got = Vec::new();
        for (c, group) in entries.chunks(chunk).enumerate() {
            let first = (c * chunk) as u64 + 1;
            got.extend(batched.apply_entries(first, group).unwrap());
        }
        prop_assert_eq!(got, expected);
        prop_assert_eq!(batched.applied_index(), entries.len() as u64);
        prop_assert_eq!(contents(&batched), contents(&one_by_one));
        // A gap is refused and changes nothing.
        let next = entries.len() as u64 + 2;
        prop_assert!(batched.apply_entries(next, &[Vec::<Update>::new()]).is_err());
        prop_assert_eq!(batched.applied_index(), entries.len() as u64);
    }
}

fn assert_range(prefix: &str, keys: &[&str]) -> Update {
    Update::AssertRange {
        prefix: prefix.as_bytes().to_vec(),
        assertion: RangeAssertion::ContainsExactly(
            keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
        ),
    }
}

/// Arakoon's own scenario for AssertRange (`src/system/single.ml`,
/// `_assert_range`), then the same assertions inside sequences that change
/// the keys under the prefix before asserting (the sequence sees its own
/// changes) and with the keys written in descending order (as Arakoon's
/// OCaml client writes them).
#[test]
fn assert_range_holds_exactly_for_the_keys_under_the_prefix() {
    let disk = SimDisk::new();
    let mut store = Store::open(disk.shared(), sim_path(), &options()).unwrap();
    let mut index = 0;
    let mut apply = |store: &mut Store, update: Update| {
        index += 1;
        let mut results = store
            .apply(index, &[Update::Sequence(vec![update])])
            .unwrap();
        results.remove(0)
    };
    let holds = |r: store::UpdateResult| assert_eq!(r, Ok(store::UpdateOk::Done));
    let fails = |r: store::UpdateResult| {
        assert!(
            matches!(r, Err(store::UpdateFailure::RangeAssertionFailed { .. })),
            "{r:?}"
        )
    };
    let p = "_assert_range";
    holds(apply(&mut store, assert_range(p, &[])));
    holds(apply(&mut store, set(p, "")));
    holds(apply(&mut store, assert_range(p, &[p])));
    fails(apply(&mut store, assert_range(p, &[])));
    fails(apply(
        &mut store,
        assert_range(p, &["_assert_rangedsisisi"]),
    ));
    holds(apply(
        &mut store,
        Update::Delete {
            key: p.as_bytes().to_vec(),
        },
    ));
    holds(apply(&mut store, assert_range(p, &[])));
    fails(apply(&mut store, assert_range(p, &[p])));
    fails(apply(
        &mut store,
        assert_range(p, &[p, "_assert_rangefsda"]),
    ));
    holds(apply(&mut store, set("_assert_rangebla", "")));
    fails(apply(&mut store, assert_range(p, &[])));
    holds(apply(&mut store, assert_range(p, &["_assert_rangebla"])));
    holds(apply(&mut store, set("_assert_rangebla2", "")));
    holds(apply(
        &mut store,
        assert_range(p, &["_assert_rangebla", "_assert_rangebla2"]),
    ));
    // Descending, as the OCaml client writes the list.
    holds(apply(
        &mut store,
        assert_range(p, &["_assert_rangebla2", "_assert_rangebla"]),
    ));
    // A key outside the prefix does not count.
    holds(apply(&mut store, set("_assert_rangf", "")));
    holds(apply(
        &mut store,
        assert_range(p, &["_assert_rangebla", "_assert_rangebla2"]),
    ));
    // Inside a sequence: its own set, delete and delete_prefix count.
    let seq = |updates: Vec<Update>| Update::Sequence(updates);
    holds(apply(
        &mut store,
        seq(vec![
            set("_assert_rangec", "x"),
            Update::Delete {
                key: b"_assert_rangebla".to_vec(),
            },
            assert_range(p, &["_assert_rangebla2", "_assert_rangec"]),
        ]),
    ));
    assert_eq!(
        contents(&store).get(b"_assert_rangec".as_slice()),
        Some(&b"x".to_vec())
    );
    holds(apply(
        &mut store,
        seq(vec![
            Update::DeletePrefix {
                prefix: p.as_bytes().to_vec(),
            },
            set("_assert_ranged", "y"),
            assert_range(p, &["_assert_ranged"]),
        ]),
    ));
    // A failing assertion undoes its sequence and names the difference.
    let before = contents(&store);
    let failed = apply(
        &mut store,
        seq(vec![
            set("_assert_rangee", "z"),
            assert_range(p, &["_assert_ranged"]),
        ]),
    );
    assert_eq!(
        failed,
        Err(store::UpdateFailure::RangeAssertionFailed {
            prefix: p.as_bytes().to_vec(),
            expected: None,
            found: Some(b"_assert_rangee".to_vec()),
        })
    );
    assert_eq!(contents(&store), before);
    // A top-level AssertRange (outside a sequence) is evaluated the same way.
    index += 1;
    let results = store
        .apply(
            index,
            &[assert_range(p, &["_assert_ranged"]), assert_range(p, &[])],
        )
        .unwrap();
    assert_eq!(results[0], Ok(store::UpdateOk::Done));
    assert!(results[1].is_err(), "{results:?}");
}
