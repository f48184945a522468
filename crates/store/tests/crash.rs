//! Reopening after a simulated crash of the `SimDisk` (durability contract
//! of the store's module doc): the store comes back at an applied index
//! between the last checkpoint's and the last applied one, with exactly the
//! content of that index.

mod common;

use common::*;
use disk::{Crash, SimDisk, Tripwire};
use protocol::Update;
use std::collections::BTreeMap;
use std::sync::Arc;
use store::{Store, StoreOptions};

/// A small cache, so that redb writes pages to the file between checkpoints
/// and a crash has unsynced writes to lose or tear.
fn small_cache() -> StoreOptions {
    StoreOptions {
        cache_size_bytes: 256 << 10,
        verify_on_open: true,
    }
}

fn entry(index: u64) -> Vec<Update> {
    let i = index * 2654435761 % 997;
    let mut updates = vec![
        set(&format!("k{i:04}"), &format!("{index:0>200}")),
        set(&format!("k{:04}", (i + 1) % 997), &"w".repeat(100)),
    ];
    if index % 7 == 0 {
        updates.push(Update::DeletePrefix {
            prefix: format!("k{}", i % 10).into_bytes(),
        });
    }
    if index % 5 == 0 {
        updates.push(Update::Sequence(vec![
            Update::Delete {
                key: format!("k{:04}", (i + 3) % 997).into_bytes(),
            },
            set("seq", &index.to_string()),
        ]));
    }
    updates
}

struct Run {
    disk: SimDisk,
    store: Store,
    model: Model,
    history: BTreeMap<u64, Model>,
    durable_index: u64,
}

impl Run {
    fn new() -> Self {
        let disk = SimDisk::new();
        let store = Store::open(disk.shared(), sim_path(), &small_cache()).unwrap();
        Self {
            disk,
            store,
            model: Model::new(),
            history: BTreeMap::from([(0, Model::new())]),
            durable_index: 0,
        }
    }

    fn apply(&mut self, count: u64, checkpoint_every: u64) {
        for _ in 0..count {
            let index = self.store.applied_index() + 1;
            let updates = entry(index);
            for u in &updates {
                let _ = model_apply(&mut self.model, u);
            }
            self.store.apply(index, &updates).unwrap();
            self.history.insert(index, self.model.clone());
            if index % checkpoint_every == 0 {
                self.durable_index = self.store.checkpoint().unwrap();
                assert_eq!(self.durable_index, index);
                let durable = self.durable_index;
                self.history.retain(|&i, _| i >= durable);
            }
        }
    }

    /// Crashes with `choose`, reopens, checks; returns the recovered index.
    fn crash(&mut self, choose: &mut dyn FnMut(u64) -> u64) -> u64 {
        let applied_index = self.store.applied_index();
        self.disk.crash(choose);
        let reopened = Store::open(self.disk.shared(), sim_path(), &small_cache()).unwrap();
        // The old handle is dead; dropping it must not disturb the new one.
        drop(std::mem::replace(&mut self.store, reopened));
        let recovered = self.store.applied_index();
        assert!(
            (self.durable_index..=applied_index).contains(&recovered),
            "recovered {recovered}, durable {}, applied {applied_index}",
            self.durable_index
        );
        self.model = self.history[&recovered].clone();
        assert_eq!(contents(&self.store), self.model, "content at {recovered}");
        assert_eq!(
            self.store.read().unwrap().key_count().unwrap(),
            self.model.len() as u64
        );
        self.durable_index = recovered;
        self.history.retain(|&i, _| i == recovered);
        recovered
    }
}

#[test]
fn losing_every_unsynced_write_goes_back_to_the_checkpoint() {
    let mut run = Run::new();
    run.apply(300, 40);
    assert_eq!(run.crash(&mut |_| 0), 280);
}

#[test]
fn keeping_every_unsynced_write_is_consistent() {
    let mut run = Run::new();
    run.apply(280, 40);
    let written_at_checkpoint = run.disk.stats().bytes_written;
    run.apply(20, 1000);
    // The small cache makes redb write pages between checkpoints: the crash
    // below has unsynced writes to keep.
    assert!(run.disk.stats().bytes_written > written_at_checkpoint);
    let recovered = run.crash(&mut |n| n - 1);
    eprintln!("recovered at {recovered} of 300 (checkpoint 280)");
}

/// Seeds to run: 12 by default; `STORE_CRASH_SEEDS=N` for a longer soak.
fn crash_seeds() -> u64 {
    std::env::var("STORE_CRASH_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(12)
}

#[test]
fn random_crashes_with_torn_writes_recover_and_go_on() {
    for seed in 1..=crash_seeds() {
        eprintln!("seed {seed}");
        let mut run = Run::new();
        let mut rng = Rng(seed);
        for round in 0..4 {
            run.apply(60 + rng.below(120), 1 + rng.below(50));
            let recovered = run.crash(&mut |n| rng.below(n));
            assert!(recovered >= run.durable_index, "seed {seed} round {round}");
            // Applying goes on from the recovered index.
            run.apply(5, 1000);
        }
    }
}

#[test]
fn a_crash_right_after_creation_leaves_an_empty_store() {
    let disk = SimDisk::new();
    let store = Store::open(disk.shared(), sim_path(), &small_cache()).unwrap();
    store.apply(1, &[set("a", "1")]).unwrap();
    disk.crash(&mut |_| 0);
    drop(store);
    let store = Store::open(disk.shared(), sim_path(), &small_cache()).unwrap();
    assert_eq!(store.applied_index(), 0);
    assert_eq!(store.read().unwrap().key_count().unwrap(), 0);
}

/// A crash at any point while a new store is made (the node killed in its
/// first milliseconds) leaves a store that opens, empty, at index 0: never
/// a half-written file that is "not a redb database".
#[test]
fn a_crash_anywhere_in_creating_the_store_leaves_one_that_opens() {
    let mut crash_points = 0;
    for after_ops in 0.. {
        let crashes = [
            Crash::ProcessKill,
            Crash::PowerLoss { seed: 0 },
            Crash::PowerLoss { seed: 1 },
            Crash::PowerLoss { seed: 2 },
        ];
        for crash in crashes {
            let sim = SimDisk::new();
            let wire = Tripwire::new(sim.clone());
            wire.arm_with(after_ops, crash);
            let created = Store::open(Arc::new(wire.clone()), sim_path(), &small_cache());
            let tripped = wire.disarm();
            match (created, tripped) {
                (Ok(store), false) => {
                    assert_eq!(store.applied_index(), 0);
                    assert!(crash_points > 10, "only {crash_points} crash points tried");
                    return;
                }
                (Ok(_), true) => {}
                (Err(e), true) => assert!(!e.to_string().is_empty()),
                (Err(e), false) => panic!("creating failed without a crash: {e}"),
            }
            crash_points += 1;
            let store = Store::open(sim.shared(), sim_path(), &small_cache())
                .unwrap_or_else(|e| panic!("after {crash:?} at op {after_ops}: {e}"));
            assert_eq!(store.applied_index(), 0);
            assert_eq!(store.read().unwrap().key_count().unwrap(), 0);
            store.apply(1, &[set("a", "1")]).unwrap();
        }
    }
}

#[test]
fn a_clean_close_keeps_everything() {
    let mut run = Run::new();
    run.apply(100, 1000);
    let Run {
        disk, store, model, ..
    } = run;
    assert_eq!(store.close().unwrap(), 100);
    disk.crash(&mut |_| 0);
    let store = Store::open(disk.shared(), sim_path(), &small_cache()).unwrap();
    assert_eq!(store.applied_index(), 100);
    assert_eq!(contents(&store), model);
}
