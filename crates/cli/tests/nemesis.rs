//! The nemesis harness: real `arakoon` processes under faults while
//! several clients run a mixed workload over a small key set, every
//! operation recorded and the history checked with the simulator's
//! linearizability checker (`sim::checker`), then every node compared with
//! the master once the faults stop.
//!
//! Faults (issue 14, part 1; what runs here so far): `kill -9` of the
//! master (most often) or of any node, then a restart; on five nodes two
//! at once; `SIGSTOP` of the master for 1.5 lease periods, then `SIGCONT`
//! (the paused master must never serve a `Consistent` read once another
//! master exists: the checker would see the stale read). Network
//! partitions (namespaces and nftables) and disk faults (strace) are not
//! in it yet.
//!
//! The short form (40 s, three nodes) runs with the test suite; the long
//! form is `NEMESIS_SECS=600 cargo test --release -p cli --test nemesis --
//! --ignored --nocapture` (three and five nodes). Each run prints one
//! line: operations, faults by kind, the longest stretch without a
//! completed operation, anomalies; the seed of its fault schedule is
//! printed first (`NEMESIS_SEED` replays the schedule; the timing of real
//! processes does not replay).

mod common;

use client::{Client, Error, Update};
use common::*;
use sim::checker::{check, Op, Operation, Outcome, Verdict};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const KEYS: u64 = 4;
/// Every this long the clients move on to 4 fresh keys: each key's history
/// then spans one segment, which keeps the checker's per-key search (and
/// memory) the size of the short form's in a long run. Linearizability is
/// per key (local), so checking them apart is exact.
const SEGMENT_SECS: u64 = 60;
const CLIENTS: usize = 4;
const LEASE_SECS: u64 = 1;

/// A small PRNG (xorshift64*), seeded per run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn millis(&mut self, from: u64, to: u64) -> Duration {
        Duration::from_millis(from + self.below(to - from))
    }
}

fn seed() -> u64 {
    std::env::var("NEMESIS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        })
}

fn key_bytes(key: u64) -> Vec<u8> {
    format!("nemesis_{key}").into_bytes()
}

fn value_bytes(v: u64) -> Vec<u8> {
    v.to_string().into_bytes()
}

fn parse_value(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("a value the harness did not write: {bytes:?}"))
}

/// The history, on one monotonic clock.
struct History {
    started: Instant,
    operations: Mutex<Vec<Operation>>,
}

impl History {
    fn ns(&self) -> u64 {
        self.started.elapsed().as_nanos() as u64
    }
    fn record(&self, op: Operation) {
        self.operations.lock().expect("history lock").push(op);
    }
}

/// What an update's error says about its effect: `None` if it certainly
/// did not happen (refused before it was proposed), else unknown.
fn update_failure(e: &Error) -> Option<Outcome> {
    match e {
        Error::NotMaster { .. } | Error::NoMaster { .. } => None,
        _ => Some(Outcome::Unknown),
    }
}

/// One client: random operations on the keys until `stop`.
///
/// `stale_reads` (the harness's deliberately broken variant): this
/// client's reads go to any node without a consistency guarantee, yet are
/// recorded as `Consistent` reads; the checker must find the history not
/// linearizable.
async fn client_loop(
    id: usize,
    client: Client,
    history: Arc<History>,
    stop: Arc<AtomicBool>,
    seed: u64,
    stale_reads: bool,
) {
    let names: Vec<String> = client.node_names().map(str::to_string).collect();
    let mut rng = Rng(seed ^ (id as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut counter = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let segment = history.started.elapsed().as_secs() / SEGMENT_SECS;
        let key = segment * KEYS + rng.below(KEYS);
        let k = key_bytes(key);
        counter += 1;
        let unique = ((id as u64 + 1) << 40) | counter;
        let call_ns = history.ns();
        let (op, result): (Op, Option<Outcome>) = match rng.below(100) {
            0..35 => {
                let r = if stale_reads {
                    let name = &names[rng.below(names.len() as u64) as usize];
                    match client.node(name) {
                        Ok(node) => {
                            node.with_consistency(client::Consistency::NoGuarantee)
                                .get(&k)
                                .await
                        }
                        Err(e) => Err(e),
                    }
                } else {
                    client.get(&k).await
                };
                let outcome = match r {
                    Ok(v) => Some(Outcome::Value(Some(parse_value(&v)))),
                    Err(Error::NotFound { .. }) => Some(Outcome::Value(None)),
                    Err(_) => None, // a read without an answer constrains nothing
                };
                (Op::Get, outcome)
            }
            35..65 => {
                let r = client.set(&k, &value_bytes(unique)).await;
                let outcome = match r {
                    Ok(()) => Some(Outcome::Ok),
                    Err(e) => update_failure(&e),
                };
                (Op::Set(unique), outcome)
            }
            65..75 => {
                let r = client.delete(&k).await;
                let outcome = match r {
                    Ok(()) => Some(Outcome::Ok),
                    Err(Error::NotFound { .. }) => Some(Outcome::NotFound),
                    Err(e) => update_failure(&e),
                };
                (Op::Delete, outcome)
            }
            75..90 => {
                // Expect what a recent value may be: absent, or one of ours.
                let expected = (rng.below(3) > 0)
                    .then(|| ((id as u64 + 1) << 40) | counter.saturating_sub(1 + rng.below(3)));
                let wanted = (rng.below(4) > 0).then_some(unique);
                let r = client
                    .test_and_set(
                        &k,
                        expected.map(value_bytes).as_deref(),
                        wanted.map(value_bytes).as_deref(),
                    )
                    .await;
                let outcome = match r {
                    Ok(before) => Some(Outcome::Value(before.as_deref().map(parse_value))),
                    Err(e) => update_failure(&e),
                };
                (Op::TestAndSet { expected, wanted }, outcome)
            }
            _ => {
                let expected =
                    (rng.below(2) > 0).then(|| ((id as u64 + 1) << 40) | counter.saturating_sub(1));
                let r = client
                    .sequence(vec![
                        Update::Assert {
                            key: k.clone(),
                            value: expected.map(value_bytes),
                        },
                        Update::Set {
                            key: k.clone(),
                            value: value_bytes(unique),
                        },
                    ])
                    .await;
                let outcome = match r {
                    Ok(()) => Some(Outcome::Ok),
                    Err(Error::AssertionFailed { .. }) => Some(Outcome::AssertionFailed),
                    Err(e) => update_failure(&e),
                };
                (
                    Op::AssertThenSet {
                        expected,
                        wanted: unique,
                    },
                    outcome,
                )
            }
        };
        let Some(outcome) = result else {
            // Refused or unanswered read: no effect; do not hammer a
            // cluster that has no master.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let return_ns = (outcome != Outcome::Unknown).then(|| history.ns());
        history.record(Operation {
            client: id,
            key,
            op,
            call_ns,
            return_ns,
            outcome,
        });
    }
}

#[derive(Default, Debug)]
struct Faults {
    kill_master: u32,
    kill_node: u32,
    kill_two: u32,
    pause_master: u32,
}

impl std::fmt::Display for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "kill -9 master {}, kill -9 node {}, kill -9 two {}, SIGSTOP master {}",
            self.kill_master, self.kill_node, self.kill_two, self.pause_master
        )
    }
}

/// The master's index, if a node names one in time.
async fn master_index(p: &Processes) -> Option<usize> {
    let c = p.client().with_request_timeout(Duration::from_millis(500));
    let m = tokio::time::timeout(Duration::from_secs(1), c.master())
        .await
        .ok()?
        .ok()?;
    Some(index_of(p, &m))
}

/// Injects faults until `until`; every node is running again at the end.
async fn nemesis(p: &mut Processes, rng: &mut Rng, until: Instant) -> Faults {
    let n = p.names.len();
    let mut faults = Faults::default();
    while Instant::now() < until {
        tokio::time::sleep(rng.millis(1000, 3000)).await;
        let master = master_index(p).await;
        match rng.below(10) {
            0..5 => {
                let victim = master.unwrap_or_else(|| rng.below(n as u64) as usize);
                p.kill(victim);
                faults.kill_master += u32::from(master.is_some());
                faults.kill_node += u32::from(master.is_none());
                tokio::time::sleep(rng.millis(500, 2000)).await;
                p.spawn(victim);
            }
            5..7 if n >= 5 => {
                let a = rng.below(n as u64) as usize;
                let b = (a + 1 + rng.below(n as u64 - 1) as usize) % n;
                p.kill(a);
                p.kill(b);
                faults.kill_two += 1;
                tokio::time::sleep(rng.millis(1000, 2500)).await;
                p.spawn(a);
                p.spawn(b);
            }
            5..7 => {
                let victim = rng.below(n as u64) as usize;
                p.kill(victim);
                faults.kill_node += 1;
                tokio::time::sleep(rng.millis(500, 2000)).await;
                p.spawn(victim);
            }
            _ => {
                let Some(m) = master else { continue };
                signal(p, m, "STOP");
                faults.pause_master += 1;
                tokio::time::sleep(Duration::from_millis(1500 * LEASE_SECS)).await;
                signal(p, m, "CONT");
            }
        }
    }
    faults
}

/// The longest stretch of the run with no operation completed.
fn longest_quiet(history: &[Operation], end_ns: u64) -> Duration {
    let mut returns: Vec<u64> = history.iter().filter_map(|o| o.return_ns).collect();
    returns.push(end_ns);
    returns.sort_unstable();
    let mut last = 0;
    let mut longest = 0;
    for r in returns {
        longest = longest.max(r - last);
        last = r;
    }
    Duration::from_nanos(longest)
}

/// A run's summary.
struct Summary {
    verdict: Verdict,
    divergent: Vec<String>,
    operations: usize,
    faults: Faults,
    /// The longest stretch without a completed operation.
    quiet: Duration,
}

async fn run(nodes: usize, secs: u64) {
    let s = run_with(nodes, secs, false).await;
    assert_eq!(s.verdict, Verdict::Linearizable, "history: {}", s.verdict);
    assert!(s.divergent.is_empty(), "nodes differ: {:?}", s.divergent);
    assert!(
        s.operations > 200,
        "the workload barely ran: {} operations",
        s.operations
    );
    let f = &s.faults;
    let injected = f.kill_master + f.kill_node + f.kill_two + f.pause_master;
    assert!(injected >= secs as u32 / 6, "faults barely injected: {f}");
    // Availability: one fault at a time costs about one failover (1.5-1.6 s
    // measured at a 1 s lease); the bound leaves room for a loaded machine.
    assert!(
        s.quiet < Duration::from_secs(3 * LEASE_SECS),
        "{:?} without a completed operation",
        s.quiet
    );
}

async fn run_with(nodes: usize, secs: u64, stale_reads: bool) -> Summary {
    let seed = seed();
    eprintln!("nemesis: {nodes} nodes, {secs} s, seed {seed} (NEMESIS_SEED replays the schedule)");
    let mut rng = Rng(seed);
    let mut p = Processes::start_with_lease(nodes, LEASE_SECS);
    let c = p.client();
    wait_for_master(&c, &p).await;

    let history = Arc::new(History {
        started: Instant::now(),
        operations: Mutex::new(Vec::new()),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let client = p.client().with_request_timeout(Duration::from_secs(2));
            tokio::spawn(client_loop(
                id,
                client,
                Arc::clone(&history),
                Arc::clone(&stop),
                seed,
                stale_reads && id == 0,
            ))
        })
        .collect();
    let until = Instant::now() + Duration::from_secs(secs);
    let faults = nemesis(&mut p, &mut rng, until).await;
    let faults_end_ns = history.ns();

    // Healed: every node runs; a master takes writes; the clients stop.
    wait_for_master(&p.client(), &p).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("a client task");
    }
    let quiet = longest_quiet(
        &history.operations.lock().expect("history lock"),
        faults_end_ns,
    );

    // A final read of every key (catches lost acknowledged writes).
    let c = p.client().with_request_timeout(Duration::from_secs(5));
    let keys_used = history
        .operations
        .lock()
        .expect("history lock")
        .iter()
        .map(|o| o.key + 1)
        .max()
        .unwrap_or(KEYS)
        .max(KEYS);
    let mut finals = BTreeMap::new();
    for key in 0..keys_used {
        let call_ns = history.ns();
        let value = match c.get(&key_bytes(key)).await {
            Ok(v) => Some(parse_value(&v)),
            Err(Error::NotFound { .. }) => None,
            Err(e) => panic!("final read of key {key}: {e}"),
        };
        finals.insert(key, value);
        history.record(Operation {
            client: CLIENTS,
            key,
            op: Op::Get,
            call_ns,
            return_ns: Some(history.ns()),
            outcome: Outcome::Value(value),
        });
    }
    let operations = history.operations.lock().expect("history lock").clone();
    let unknown = operations
        .iter()
        .filter(|o| o.outcome == Outcome::Unknown)
        .count();
    // The search recurses once per operation of a key: a thread with a
    // stack for long histories.
    let to_check = operations.clone();
    let verdict = std::thread::Builder::new()
        .stack_size(1 << 30)
        .spawn(move || check(&to_check, 5_000_000))
        .expect("a checker thread")
        .join()
        .expect("the checker");

    // Every node holds what the master holds, once it applied the master's
    // last index.
    let i = txid(c.get_txid().await.expect("get_txid"));
    let mut divergent = Vec::new();
    for name in &p.names {
        let node = c
            .node(name)
            .expect("a node")
            .with_consistency(client::Consistency::AtLeast(i));
        let started = Instant::now();
        for key in 0..keys_used {
            let got = loop {
                match node.get(&key_bytes(key)).await {
                    Ok(v) => break Some(parse_value(&v)),
                    Err(Error::NotFound { .. }) => break None,
                    Err(e) if started.elapsed() < DEADLINE => {
                        let _ = e;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => panic!("{name} did not catch up to {i}: {e}"),
                }
            };
            if got != finals[&key] {
                divergent.push(format!(
                    "{name}: key {key} = {got:?}, master: {:?}",
                    finals[&key]
                ));
            }
        }
    }
    let anomalies = usize::from(verdict != Verdict::Linearizable) + divergent.len();
    println!(
        "nemesis: {nodes} nodes, {secs} s: {} operations ({unknown} of unknown outcome); \
         faults: {faults}; longest stretch without a completed operation {quiet:.1?}; \
         anomalies: {anomalies}",
        operations.len()
    );
    Summary {
        verdict,
        divergent,
        operations: operations.len(),
        faults,
        quiet,
    }
}

/// The short form, with the test suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis_short_three_nodes() {
    run(3, 40).await;
}

fn long_secs() -> u64 {
    std::env::var("NEMESIS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600)
}

/// The harness's deliberately broken variant: one client reads from any
/// node without a guarantee (slaves lag their master by a few
/// milliseconds, and a paused or cut-off one by seconds) and records the
/// answers as `Consistent` reads: the checker must flag the history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis_catches_stale_reads() {
    let s = run_with(3, 20, true).await;
    match &s.verdict {
        Verdict::Violation { key, operations } => {
            println!(
                "stale reads caught on key {key} ({} operations)",
                operations.len()
            )
        }
        other => panic!("stale reads recorded as Consistent were not caught: {other}"),
    }
}

/// The long form (documented in the README): ten minutes by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long form: NEMESIS_SECS=600 cargo test --release -p cli --test nemesis -- --ignored"]
async fn nemesis_long_three_nodes() {
    run(3, long_secs()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long form: NEMESIS_SECS=600 cargo test --release -p cli --test nemesis -- --ignored"]
async fn nemesis_long_five_nodes() {
    run(5, long_secs()).await;
}
