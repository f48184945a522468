//! §3.6.3 safety properties under random faults (partitions, crashes with
//! lost unsynced writes, dropped, duplicated and reordered messages, slow
//! fsyncs): election safety, log matching, leader completeness, state-machine
//! safety. A failing seed is printed; rerun with it.

use consensus::testing::Cluster;
use consensus::{LogRead, NodeId, Role};
use std::collections::BTreeMap;
use std::time::Duration;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Log matching (§3.5): if two logs hold an entry with the same index and
/// term, they are identical up to it.
fn assert_log_matching(c: &Cluster, seed: u64) {
    let nodes: Vec<_> = c.nodes.values().collect();
    for a in &nodes {
        for b in &nodes {
            let last = a.log.last_index().min(b.log.last_index());
            let first = a.log.first_index().max(b.log.first_index());
            let mut matched = false;
            for i in (first..=last).rev() {
                let (ea, eb) = (a.log.entry(i).unwrap(), b.log.entry(i).unwrap());
                if matched {
                    assert_eq!(ea, eb, "seed {seed}: log matching broken at {i}");
                } else if ea.term == eb.term {
                    matched = true;
                    assert_eq!(
                        ea, eb,
                        "seed {seed}: same (index, term) {i}, different entry"
                    );
                }
            }
        }
    }
}

/// Leader completeness (§3.6.3): the master of the newest term holds every
/// entry any node applied (applied means committed).
fn assert_master_complete(c: &Cluster, seed: u64) {
    let mut applied: BTreeMap<u64, &consensus::Entry> = BTreeMap::new();
    for n in c.nodes.values() {
        for e in &n.applied {
            applied.insert(e.index, e);
        }
    }
    // Only a master of the newest term: a stale one (paused or cut off, not
    // yet stepped down) rightly lacks what later terms committed.
    let newest_term = c.nodes.values().map(|n| n.core.term()).max().unwrap_or(0);
    for (id, n) in &c.nodes {
        if n.up && n.core.role() == Role::Master && n.core.term() == newest_term {
            for (i, e) in &applied {
                if *i <= n.log.base_index {
                    // Collapsed into this master's store: it applied it.
                    assert_eq!(
                        n.applied.get(*i as usize - 1),
                        Some(*e),
                        "seed {seed}: master {id} store lacks {i}"
                    );
                    continue;
                }
                assert_eq!(
                    n.log.entry(*i),
                    Some(*e),
                    "seed {seed}: master {id} lacks committed entry {i}"
                );
            }
        }
    }
}

fn run(seed: u64, voters: u64, steps: u64) -> (usize, u64, u64) {
    run_with(seed, voters, steps, |_| {})
}

fn run_with(
    seed: u64,
    voters: u64,
    steps: u64,
    tweak: impl Fn(&mut consensus::Config),
) -> (usize, u64, u64) {
    let mut c = Cluster::new(voters, 1, |cfg| {
        cfg.seed = seed;
        cfg.max_inflight_appends = 3;
        cfg.max_append_bytes = 64;
        tweak(cfg);
    });
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let ids: Vec<u64> = c.ids().iter().map(|id| id.0).collect();
    for id in &ids {
        // Clock rates within ±4%.
        c.node_mut(*id).clock_rate_ppm = rng.below(80_001) as i64 - 40_000;
    }
    let mut proposed = 0;
    for step in 0..steps {
        match rng.below(300) {
            0 => c.isolate(ids[rng.below(ids.len() as u64) as usize]),
            1 | 2 => c.heal(),
            3 => {
                let id = ids[rng.below(ids.len() as u64) as usize];
                if c.node(id).up {
                    c.crash(id);
                }
            }
            4..=6 => {
                for id in &ids {
                    if !c.node(*id).up {
                        c.restart(*id);
                    }
                }
            }
            7 => {
                // Slow disks: some nodes stop syncing on their own for a while.
                let id = ids[rng.below(ids.len() as u64) as usize];
                let n = c.node_mut(id);
                n.auto_sync = !n.auto_sync;
            }
            142..=145 => {
                // Collapse a node's tlog behind its applied index.
                let id = ids[rng.below(ids.len() as u64) as usize];
                c.collapse(id, rng.below(5));
            }
            141 => {
                // A process pause of up to 400 ms.
                let id = ids[rng.below(ids.len() as u64) as usize];
                c.pause(id, Duration::from_millis(rng.below(400)));
            }
            8..=60 => {
                if let Some(m) = c.master() {
                    if c.propose(m, &step.to_le_bytes()).is_ok() {
                        proposed += 1;
                    }
                }
            }
            61..=80 => {
                c.queue.pop_front();
            }
            81..=100 => {
                if let Some(m) = c.queue.front().cloned() {
                    c.queue.push_back(m);
                }
            }
            101..=130 => {
                let len = c.queue.len() as u64;
                if len > 1 {
                    let a = rng.below(len) as usize;
                    let b = rng.below(len) as usize;
                    c.queue.swap(a, b);
                }
            }
            131..=140 => {
                for id in &ids {
                    if c.node(*id).up && !c.node(*id).auto_sync {
                        c.sync(*id);
                    }
                }
            }
            _ => {}
        }
        c.serve_snapshots();
        c.tick(Duration::from_millis(1));
        // Deliver part of the queue: messages stay in flight across ticks.
        for _ in 0..rng.below(12) {
            c.deliver_one();
        }
        if step % 16 == 0 {
            assert_master_complete(&c, seed);
        }
    }
    // Quiet phase: heal everything; a master emerges and everyone catches up.
    c.heal();
    for id in &ids {
        if !c.node(*id).up {
            c.restart(*id);
        }
        c.node_mut(*id).auto_sync = true;
        c.sync(*id);
    }
    // Stale masters (cut off, not yet stepped down) give way within a lease.
    let quiet = |c: &mut Cluster, ms: u64| {
        for _ in 0..ms {
            c.serve_snapshots();
            c.run_for(Duration::from_millis(1));
        }
    };
    quiet(&mut c, 500);
    let m = c.elect();
    let term = c.nodes[&m].core.term();
    let p = c
        .propose(m, b"final")
        .unwrap_or_else(|e| panic!("seed {seed}: quiet master refused: {e}"));
    quiet(&mut c, 300);
    assert_eq!(
        c.master(),
        Some(m),
        "seed {seed}: mastership moved in the quiet phase"
    );
    assert_eq!(c.nodes[&m].core.term(), term);
    for (id, n) in &c.nodes {
        if n.applied_index < p.index && std::env::var("DEBUG_SEED").is_ok() {
            let mn = &c.nodes[&m];
            eprintln!("DBG master {m} {:?} progress {:?} base {} last {} | node base {} last {} synced {} auto {} reqs {:?} running {}", mn.core.status(), mn.core.peer_progress(*id), mn.log.base_index, mn.log.last_index(), n.log.base_index, n.log.last_index(), n.log.synced_index, n.auto_sync, mn.snapshot_requests, n.running(c.now));
            for msg in c
                .delivered
                .iter()
                .rev()
                .filter(|x| x.to == *id || x.from == *id)
                .take(8)
            {
                eprintln!("  {msg:?}");
            }
        }
        assert!(
            n.applied_index >= p.index,
            "seed {seed}: node {id} did not catch up ({:?})",
            n.core.status()
        );
    }
    c.assert_one_master_per_term();
    c.assert_applied_agree();
    assert_log_matching(&c, seed);
    assert_master_complete(&c, seed);
    (c.masters.len(), proposed, c.snapshots_installed)
}

#[test]
fn safety_under_random_faults_three_voters() {
    let mut masters = 0;
    let mut proposals = 0;
    let mut snapshots = 0;
    for seed in 1..=40 {
        let (m, p, s) = run(seed, 3, 2_000);
        masters += m;
        proposals += p;
        snapshots += s;
    }
    assert!(
        snapshots > 10,
        "collapses should force snapshots: {snapshots}"
    );
    assert!(masters > 80, "faults should cause re-elections: {masters}");
    assert!(proposals > 1_000, "too few proposals accepted: {proposals}");
}

#[test]
fn safety_under_random_faults_five_voters() {
    for seed in 100..=120 {
        run(seed, 5, 2_000);
    }
}

#[test]
fn one_master_per_term_with_seven_voters() {
    for seed in 200..=205 {
        let (m, _, _) = run(seed, 7, 1_500);
        assert!(m >= 1);
    }
    let _ = NodeId(0);
}

/// The checks above can fail: each deliberately broken variant that touches
/// log safety is caught within a bounded number of seeds.
#[cfg(feature = "broken")]
mod broken {
    use super::run_with;
    use consensus::Broken;

    fn caught(broken: Broken, voters: u64) -> Option<u64> {
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let found = (1..=60u64).find(|seed| {
            std::panic::catch_unwind(|| {
                run_with(*seed, voters, 2_000, |cfg| cfg.broken = Some(broken));
            })
            .is_err()
        });
        std::panic::set_hook(hook);
        found
    }

    #[test]
    fn commit_on_minority_is_caught() {
        assert!(caught(Broken::CommitOnMinority, 3).is_some());
    }

    #[test]
    fn vote_for_stale_candidate_is_caught() {
        assert!(caught(Broken::VoteForStaleCandidate, 3).is_some());
    }

    #[test]
    fn ack_before_fsync_is_caught() {
        assert!(caught(Broken::AckBeforeFsync, 3).is_some());
    }
}

/// Many more seeds, for use before releases:
/// `CONSENSUS_SEEDS=2000 cargo test -p consensus --test safety -- --ignored`.
#[test]
#[ignore]
fn safety_long() {
    let seeds: u64 = std::env::var("CONSENSUS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000);
    for seed in 1_000..1_000 + seeds {
        let voters = [1, 2, 3, 4, 5, 7][(seed % 6) as usize];
        run(seed, voters, 3_000);
    }
}

/// Replays one seed of `safety_long` (same voter count), with diagnostics
/// on a liveness failure: `DEBUG_SEED=1049 cargo test -p consensus --test
/// safety debug_seed -- --ignored --nocapture`.
#[test]
#[ignore]
fn debug_seed() {
    let seed: u64 = std::env::var("DEBUG_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let voters = [1, 2, 3, 4, 5, 7][(seed % 6) as usize];
    run(seed, voters, 3_000);
}
