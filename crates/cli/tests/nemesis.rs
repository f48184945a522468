//! The nemesis harness: real `arakoon` processes under faults while
//! several clients run a mixed workload over a small key set, every
//! operation recorded and the history checked with the simulator's
//! linearizability checker (`sim::checker`), then every node compared with
//! the master once the faults stop.
//!
//! Faults, one at a time, each followed by its heal:
//! - `kill -9` of the master (most often) or of any node, then a restart;
//!   on five nodes two at once;
//! - `SIGSTOP` of the master for 1.5 lease periods, then `SIGCONT` (the
//!   paused master must never serve a `Consistent` read once another
//!   master exists: the checker would see the stale read);
//! - network partitions, each node in its own network namespace
//!   (`common::net`, nftables drops): an isolated master, an isolated
//!   node, on five nodes a split (two against three), a master that hears
//!   no one, a master no one hears, a bridge (the master and one node cut
//!   from each other, a third hearing both); where namespaces cannot be
//!   made the harness says so and runs the rest on loopback;
//! - a slow disk: `strace` attached to a node delays each `fdatasync` and
//!   `fsync` by 50–300 ms for a few seconds (skipped, said so, without
//!   strace);
//! - a node wiped (killed, its home emptied) and restarted: it recovers its
//!   log and store from the others;
//! - a full disk: the nodes' homes are on one tmpfs (1 GiB), which a
//!   ballast file fills below `min_free_disk`; the master must refuse
//!   updates (`E_READ_ONLY`) within 3 s and go on serving reads, then take
//!   updates again once the ballast is gone;
//! - ENOSPC on every write of a slave, or once in three of the master
//!   (`strace` injection into `pwrite64` and `fallocate` for 1.5–4 s: a
//!   disk that fills faster than the free-space watch sees): the node
//!   stays up, holding what its tlog cannot take and acknowledging none
//!   of it; as master it hands mastership over (updates go on at the
//!   new master); it catches up once writes go through (a store checkpoint that meets the full disk
//!   stops it instead, saying so: it is started again).
//!
//! The kinds are dealt from a shuffled deck (the master's `kill -9` three
//! times over), so that the short form meets each of them.
//!
//! The workload: `set`, `Consistent` and `AtLeast` `get`s, `delete`,
//! `test_and_set`, asserted `sequence`s. An `AtLeast` read asks the master
//! for `get_txid` (a `Consistent` answer covering every acknowledged
//! update) and then any node for the key at that index: it is recorded as
//! one read spanning both calls, which the checker may place anywhere in
//! that span (read-your-writes and no stale state older than the call).
//!
//! After each heal the harness measures the time to the next write through
//! the cluster and the time until the nodes the fault hit hold the
//! master's index (caught up), and asserts issue 14's bounds: a write
//! within one election timeout plus one lease of the heal; each fault's
//! longest stretch without a completed operation.
//!
//! The short form (60 s, three nodes) runs with the test suite; the long
//! form is `NEMESIS_SECS=600 cargo test --release -p cli --test nemesis --
//! --ignored --nocapture` (three and five nodes). Each run prints one
//! line: operations, faults by kind, the longest stretch without a
//! completed operation, anomalies; the seed of its fault schedule is
//! printed first (`NEMESIS_SEED` replays the schedule; the timing of real
//! processes does not replay).

mod common;

use client::{Client, Consistency, Error, KeyRange, ResultCode, Update};
use common::net::{self, cut_off, Net};
use common::strace::Tracer;
use common::*;
use sim::checker::{check, Op, Operation, Outcome, Verdict};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
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
/// The longest election timeout at that lease (1.5 leases).
const ELECTION_TIMEOUT_MAX: Duration = Duration::from_millis(1500 * LEASE_SECS);

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
    /// The wall clock at `started` (to find a fault in the nodes' logs).
    wall: std::time::SystemTime,
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
        // A master on a full disk refuses before it proposes.
        Error::Server {
            code: ResultCode::ReadOnly,
            ..
        } => None,
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
            0..10 if !stale_reads => {
                // An `AtLeast` read: the index from the master, the value
                // from any node holding it; one read spanning both calls.
                let name = &names[rng.below(names.len() as u64) as usize];
                let outcome = match client.get_txid().await {
                    Ok(Consistency::AtLeast(i)) => match client.node(name) {
                        Ok(node) => {
                            match node.with_consistency(Consistency::AtLeast(i)).get(&k).await {
                                Ok(v) => Some(Outcome::Value(Some(parse_value(&v)))),
                                Err(Error::NotFound { .. }) => Some(Outcome::Value(None)),
                                Err(_) => None,
                            }
                        }
                        Err(e) => panic!("{name}: {e}"),
                    },
                    Ok(other) => panic!("get_txid answered {other:?}"),
                    Err(_) => None,
                };
                (Op::Get, outcome)
            }
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

/// The faults injected, by kind.
#[derive(Default, Debug)]
struct Faults(BTreeMap<&'static str, u32>);

impl Faults {
    fn add(&mut self, kind: &'static str) {
        *self.0.entry(kind).or_default() += 1;
    }
    fn total(&self) -> u32 {
        self.0.values().sum()
    }
}

impl std::fmt::Display for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, n)| format!("{k} {n}")).collect();
        write!(f, "{}", parts.join(", "))
    }
}

/// One fault, from its start to the end of its recovery, on the history's
/// clock; and what its heal measured.
struct Window {
    kind: &'static str,
    start_ns: u64,
    end_ns: u64,
    /// From the heal to the next write through the cluster.
    write_after_heal: Duration,
    /// From the heal until every node the fault hit holds the master's
    /// index of that moment and votes (is trusted) again.
    caught_up: Duration,
}

/// What the nemesis can use on this machine.
struct Means {
    partitions: bool,
    strace: bool,
    /// The nodes' homes are on one tmpfs of [`DISK_MIB`] (root can mount
    /// one): a disk the harness can fill.
    small_disk: bool,
}

/// The size of the nodes' shared disk (a tmpfs: it holds only what is
/// written; tlog segments of 4 MiB, at most 4 kept beside the active one).
const DISK_MIB: u64 = 1024;
/// Each node's `min_free_disk`, MiB.
const RESERVE_MIB: u64 = 64;
const SMALL_DISK_GLOBAL: &str = "tlog_max_size = 4194304";
const SMALL_DISK_NODE: &str = "min_free_disk = 64\nauto_collapse_keep = 4";

/// The master's index, if a node names one in time.
async fn master_index(p: &Processes) -> Option<usize> {
    let c = p.client().with_request_timeout(Duration::from_millis(500));
    let m = tokio::time::timeout(Duration::from_secs(1), c.master())
        .await
        .ok()?
        .ok()?;
    Some(index_of(p, &m))
}

/// Whether this process may mount a tmpfs (tried on a scratch directory).
fn can_mount_tmpfs() -> bool {
    let Ok(dir) = tempfile::tempdir() else {
        return false;
    };
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(dir.path())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if mounted {
        let _ = Command::new("umount").arg(dir.path()).status();
    }
    mounted
}

/// After a heal at `healed`: the time to the next write through the
/// cluster, and until every node of `hit` holds the master's index of
/// that moment.
async fn recovery(p: &Processes, hit: &[usize], healed: Instant) -> (Duration, Duration) {
    let c = p.client().with_request_timeout(Duration::from_millis(300));
    let i = loop {
        if c.nop().await.is_ok() {
            if let Ok(Consistency::AtLeast(i)) = c.get_txid().await {
                break i;
            }
        }
        assert!(
            healed.elapsed() < DEADLINE,
            "no write within {DEADLINE:?} of a heal"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let write_after_heal = healed.elapsed();
    for &j in hit {
        let node = c
            .node(&p.names[j])
            .expect("a node")
            .with_consistency(Consistency::AtLeast(i));
        loop {
            match node.get(b"nemesis_probe").await {
                Ok(_) | Err(Error::NotFound { .. }) => break,
                Err(e) => assert!(
                    healed.elapsed() < DEADLINE,
                    "{} did not reach {i} within {DEADLINE:?} of a heal: {e}",
                    p.names[j]
                ),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // And votes again: a wiped node holds the data long before it may
        // vote (it first waits out the recovery wait and hears every
        // other voter's term). Until then the fault is not over: a cut
        // during it leaves two of three nodes unable to elect (found by
        // this harness: 3.9-4.6 s without a master when the next fault
        // came too soon).
        loop {
            match node.current_state().await {
                Ok(state) if state.contains("(trusted)") => break,
                Ok(state) => assert!(
                    healed.elapsed() < DEADLINE,
                    "{} does not vote again within {DEADLINE:?} of a heal: {state}",
                    p.names[j]
                ),
                Err(e) => assert!(healed.elapsed() < DEADLINE, "{}: {e}", p.names[j]),
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    (write_after_heal, healed.elapsed())
}

/// Injects faults until `until`, one at a time, each healed and its
/// recovery measured; every node is running and connected at the end.
async fn nemesis(
    p: &mut Processes,
    means: &Means,
    rng: &mut Rng,
    until: Instant,
    history: &History,
) -> (Faults, Vec<Window>) {
    let n = p.names.len();
    let mut faults = Faults::default();
    let mut windows = Vec::new();
    // The kinds of fault (the arms below) are dealt from a shuffled deck,
    // so that a short run meets each of them: kill -9 of the master three
    // times as often as each other kind.
    let mut kinds: Vec<u64> = vec![0, 0, 0, 5, 7, 9];
    if means.strace {
        kinds.extend([10, 13]);
    }
    if means.small_disk {
        kinds.push(12);
    }
    if means.partitions {
        kinds.extend(14..20);
    }
    let mut deck: Vec<u64> = Vec::new();
    while Instant::now() < until {
        if deck.is_empty() {
            deck = kinds.clone();
            for i in (1..deck.len()).rev() {
                deck.swap(i, rng.below(i as u64 + 1) as usize);
            }
        }
        let dealt = deck.pop().expect("a dealt kind");
        tokio::time::sleep(rng.millis(500, 1500)).await;
        let master = master_index(p).await;
        let any = rng.below(n as u64) as usize;
        let other = |m: usize, r: u64| (m + 1 + (r % (n as u64 - 1)) as usize) % n;
        let start_ns = history.ns();
        let (kind, hit, healed): (&'static str, Vec<usize>, Instant) = match dealt {
            0..5 => {
                let victim = master.unwrap_or(any);
                p.kill(victim);
                tokio::time::sleep(rng.millis(500, 2000)).await;
                p.spawn(victim);
                let kind = if master.is_some() {
                    "kill -9 master"
                } else {
                    "kill -9 node"
                };
                (kind, vec![victim], Instant::now())
            }
            5..7 if n >= 5 => {
                let (a, b) = (any, other(any, rng.next()));
                p.kill(a);
                p.kill(b);
                tokio::time::sleep(rng.millis(1000, 2500)).await;
                p.spawn(a);
                p.spawn(b);
                ("kill -9 two", vec![a, b], Instant::now())
            }
            5..7 => {
                p.kill(any);
                tokio::time::sleep(rng.millis(500, 2000)).await;
                p.spawn(any);
                ("kill -9 node", vec![any], Instant::now())
            }
            7..9 => {
                let Some(m) = master else { continue };
                signal(p, m, "STOP");
                tokio::time::sleep(Duration::from_millis(1500 * LEASE_SECS)).await;
                signal(p, m, "CONT");
                ("SIGSTOP master", vec![m], Instant::now())
            }
            9 => {
                // A node loses its disk: the operator empties its home and
                // starts it again (the master once in three).
                let victim = match master {
                    Some(m) if rng.below(3) == 0 => m,
                    Some(m) => other(m, rng.next()),
                    None => any,
                };
                p.wipe(victim);
                tokio::time::sleep(rng.millis(200, 1000)).await;
                p.spawn(victim);
                ("wiped node", vec![victim], Instant::now())
            }
            12 if means.small_disk => {
                // The disk fills up: the master refuses updates (and says
                // so) within the watch's half second, reads go on; then
                // space returns.
                let ballast = p.dir.path().join("ballast");
                fill_disk(&ballast, (RESERVE_MIB / 2) << 20);
                let c = p.client().with_request_timeout(Duration::from_millis(500));
                let filled = Instant::now();
                loop {
                    match c.nop().await {
                        Err(Error::Server {
                            code: ResultCode::ReadOnly,
                            ..
                        }) => break,
                        _ => assert!(
                            filled.elapsed() < Duration::from_secs(3),
                            "updates still taken {:?} after the disk filled up",
                            filled.elapsed()
                        ),
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                tokio::time::sleep(rng.millis(1000, 3000)).await;
                std::fs::remove_file(&ballast).expect("remove the ballast");
                ("disk full", Vec::new(), Instant::now())
            }
            13 if means.strace => {
                // A node's writes fail with ENOSPC (a slave's, or once in
                // three the master's: a disk that fills faster than the
                // free-space watch sees). It stays up: it holds what its
                // tlog cannot take and acknowledges none of it; as master
                // it hands mastership over (an update it refuses meanwhile
                // is E_READ_ONLY, recorded as no effect); once writes go
                // through it catches up. Only a store checkpoint that meets the full
                // disk stops it (the store cannot go on after a failed
                // write): then it says so and is started again.
                let (victim, kind) = match master {
                    Some(m) if rng.below(3) == 0 => (m, "ENOSPC on the master"),
                    Some(m) => (other(m, rng.next()), "ENOSPC on a slave"),
                    None => continue,
                };
                let tracer = Tracer::no_space(p, victim);
                tokio::time::sleep(rng.millis(1500, 4000)).await;
                drop(tracer);
                let log = p.stderr_of(victim);
                let tail = &log[log.len().saturating_sub(2000)..];
                let child = p.children[victim].as_mut().expect("running");
                if let Some(status) = child.try_wait().expect("wait for a node") {
                    assert!(
                        !status.success() && log.contains("No space left on device"),
                        "{} stopped ({status}) on a full disk without saying why:\n{tail}",
                        p.names[victim]
                    );
                    p.children[victim] = None;
                    p.spawn(victim);
                    ("ENOSPC: the store stopped", vec![victim], Instant::now())
                } else {
                    assert!(
                        log.contains("no space left for the tlog"),
                        "{} wrote nothing for seconds without noticing:\n{tail}",
                        p.names[victim]
                    );
                    (kind, vec![victim], Instant::now())
                }
            }
            10..12 if means.strace => {
                let victim = match master {
                    Some(m) if rng.below(3) > 0 => m,
                    _ => any,
                };
                let tracer = Tracer::slow_disk(p, victim, rng.millis(50, 300));
                tokio::time::sleep(rng.millis(2000, 4000)).await;
                drop(tracer);
                ("slow disk", vec![victim], Instant::now())
            }
            14..20 if means.partitions => {
                let Some(m) = master else { continue };
                let net = p.net.as_ref().expect("a network");
                let others = net::others(n, m);
                let f = other(m, rng.next());
                let f_others = net::others(n, f);
                let (kind, drops, hit) = match dealt - 14 {
                    0 => ("isolated master", cut_off(n, m, &others, true), vec![m]),
                    1 => ("isolated node", cut_off(n, f, &f_others, true), vec![f]),
                    2 if n >= 5 => {
                        // Two against three, the master in either part.
                        let g = other(f, rng.next());
                        let g = if g == f { other(g, 1) } else { g };
                        let minority = [f, g];
                        let drops: Vec<Vec<usize>> = (0..n)
                            .map(|j| {
                                (0..n)
                                    .filter(|k| minority.contains(k) != minority.contains(&j))
                                    .collect()
                            })
                            .collect();
                        ("split", drops, minority.to_vec())
                    }
                    2 | 3 => (
                        "master hears no one",
                        cut_off(n, m, &others, false),
                        vec![m],
                    ),
                    4 => {
                        let mut drops = vec![Vec::new(); n];
                        for &j in &others {
                            drops[j].push(m);
                        }
                        ("no one hears the master", drops, vec![m])
                    }
                    _ => {
                        let mut drops = vec![Vec::new(); n];
                        drops[m].push(f);
                        drops[f].push(m);
                        ("bridge", drops, vec![m, f])
                    }
                };
                net.cut(&drops);
                tokio::time::sleep(rng.millis(1500, 5000)).await;
                net.heal();
                (kind, hit, Instant::now())
            }
            _ => continue,
        };
        faults.add(kind);
        let (write_after_heal, caught_up) = recovery(p, &hit, healed).await;
        windows.push(Window {
            kind,
            start_ns,
            end_ns: history.ns(),
            write_after_heal,
            caught_up,
        });
    }
    (faults, windows)
}

/// The longest stretch between `from_ns` and `to_ns` with no operation
/// completed (`returns` sorted).
fn longest_quiet(returns: &[u64], from_ns: u64, to_ns: u64) -> Duration {
    let mut last = from_ns;
    let mut longest = 0;
    let inside = returns
        .iter()
        .copied()
        .filter(|&r| r > from_ns && r < to_ns);
    for r in inside.chain([to_ns]) {
        longest = longest.max(r - last);
        last = r;
    }
    Duration::from_nanos(longest)
}

/// "min / median / max" of some durations.
fn spread(mut d: Vec<Duration>) -> String {
    if d.is_empty() {
        return "none".into();
    }
    d.sort_unstable();
    format!(
        "{:.2?} / {:.2?} / {:.2?}",
        d[0],
        d[d.len() / 2],
        d[d.len() - 1]
    )
}

/// A run's summary.
struct Summary {
    verdict: Verdict,
    divergent: Vec<String>,
    operations: usize,
    faults: Faults,
    /// Each fault's window, with the longest stretch in it without a
    /// completed operation.
    windows: Vec<(Window, Duration)>,
}

/// A run, checked: `quiet_bound` is the longest stretch without a completed
/// operation any single fault may cause.
async fn run(nodes: usize, secs: u64, quiet_bound: Duration) {
    let s = run_with(nodes, secs, false).await;
    assert_eq!(s.verdict, Verdict::Linearizable, "history: {}", s.verdict);
    assert!(s.divergent.is_empty(), "nodes differ: {:?}", s.divergent);
    assert!(
        s.operations > 200,
        "the workload barely ran: {} operations",
        s.operations
    );
    let f = &s.faults;
    assert!(f.total() >= secs as u32 / 8, "faults barely injected: {f}");
    for (w, quiet) in &s.windows {
        if let Some(why) = out_of_bounds(w, *quiet, quiet_bound) {
            panic!("{why}");
        }
    }
}

/// Issue 14's availability bounds for one fault, or what broke them:
/// `quiet_bound` is the longest stretch allowed without a completed
/// operation.
fn out_of_bounds(w: &Window, quiet: Duration, quiet_bound: Duration) -> Option<String> {
    let lease = Duration::from_secs(LEASE_SECS);
    // A master within one election timeout plus one lease of the heal (a
    // write is one round trip more).
    if w.write_after_heal >= ELECTION_TIMEOUT_MAX + lease + Duration::from_millis(200) {
        return Some(format!(
            "{}: the first write {:?} after the heal",
            w.kind, w.write_after_heal
        ));
    }
    // A single fault costs at most about one failover (1.1-1.7 s measured
    // at a 1 s lease).
    if quiet >= quiet_bound {
        return Some(format!(
            "{}: {quiet:?} without a completed operation",
            w.kind
        ));
    }
    // A node the fault hit holds the master's index soon after the heal
    // (2 s, plus its catch-up: a wiped node's snapshot).
    if w.caught_up >= 2 * Duration::from_secs(2) {
        return Some(format!(
            "{}: caught up {:?} after the heal",
            w.kind, w.caught_up
        ));
    }
    None
}

async fn run_with(nodes: usize, secs: u64, stale_reads: bool) -> Summary {
    let seed = seed();
    eprintln!("nemesis: {nodes} nodes, {secs} s, seed {seed} (NEMESIS_SEED replays the schedule)");
    let mut rng = Rng(seed);
    let means = Means {
        partitions: match Net::create(nodes) {
            Ok(net) => {
                drop(net);
                true
            }
            Err(e) => {
                eprintln!("nemesis: network namespaces cannot be made here ({e}): no partitions");
                false
            }
        },
        strace: Command::new("strace")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success()),
        small_disk: can_mount_tmpfs(),
    };
    if !means.small_disk {
        eprintln!("nemesis: a tmpfs cannot be mounted here (not root?): no disk full");
    }
    if !means.strace {
        eprintln!("nemesis: strace is not installed: no slow disk");
    }
    let net = means
        .partitions
        .then(|| Net::create(nodes).expect("namespaces, as a moment ago"));
    let mut p = Processes::start_on(
        LEASE_SECS,
        if means.small_disk {
            SMALL_DISK_GLOBAL
        } else {
            ""
        },
        &vec![
            if means.small_disk {
                SMALL_DISK_NODE
            } else {
                ""
            };
            nodes
        ],
        net,
        means.small_disk.then_some(DISK_MIB),
    );
    let c = p.client();
    wait_for_master(&c, &p).await;

    let history = Arc::new(History {
        started: Instant::now(),
        wall: std::time::SystemTime::now(),
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
    let (faults, windows) = nemesis(&mut p, &means, &mut rng, until, &history).await;
    let faults_end_ns = history.ns();

    // Healed: every node runs; a master takes writes; the clients stop.
    wait_for_master(&p.client(), &p).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.expect("a client task");
    }
    let mut returns: Vec<u64> = history
        .operations
        .lock()
        .expect("history lock")
        .iter()
        .filter_map(|o| o.return_ns)
        .collect();
    returns.sort_unstable();
    let quiet = longest_quiet(&returns, 0, faults_end_ns);
    let windows: Vec<(Window, Duration)> = windows
        .into_iter()
        .map(|w| {
            let q = longest_quiet(&returns, w.start_ns, w.end_ns);
            (w, q)
        })
        .collect();
    // A fault out of bounds: the nodes' logs are kept for a look, with
    // the fault's instants on the logs' clock. `NEMESIS_KEEP_LOGS=1`
    // keeps them whatever happened.
    if std::env::var_os("NEMESIS_KEEP_LOGS").is_some() {
        let kept = std::env::temp_dir().join(format!("nemesis-{seed}"));
        let _ = std::fs::create_dir_all(&kept);
        for (i, name) in p.names.iter().enumerate() {
            let _ = std::fs::write(kept.join(format!("{name}.stderr")), p.stderr_of(i));
        }
        eprintln!("nemesis: the nodes' logs are kept in {}", kept.display());
    }
    for (w, q) in &windows {
        if let Some(why) = out_of_bounds(w, *q, Duration::from_secs(2 * LEASE_SECS)) {
            let kept = std::env::temp_dir().join(format!("nemesis-{seed}"));
            let _ = std::fs::create_dir_all(&kept);
            for (i, name) in p.names.iter().enumerate() {
                let _ = std::fs::write(kept.join(format!("{name}.stderr")), p.stderr_of(i));
            }
            let at = |ns: u64| {
                (history.wall + Duration::from_nanos(ns))
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64())
            };
            eprintln!(
                "nemesis: {why}; the fault ran from {:.3} to {:.3} (Unix seconds, UTC); the nodes' logs are kept in {}",
                at(w.start_ns),
                at(w.end_ns),
                kept.display()
            );
        }
    }

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

    // Every node holds what the master holds (equal full scans), once it
    // applied the master's last index.
    let i = txid(c.get_txid().await.expect("get_txid"));
    let on_master = c
        .range_entries(&KeyRange::all())
        .await
        .expect("the master's full scan");
    // The scan holds what the final reads read, and nothing else.
    let expected: Vec<(Vec<u8>, Vec<u8>)> = {
        let mut e: Vec<_> = finals
            .iter()
            .filter_map(|(&key, v)| v.map(|v| (key_bytes(key), value_bytes(v))))
            .collect();
        e.sort();
        e
    };
    assert_eq!(on_master, expected, "the master's scan and the final reads");
    let mut divergent = Vec::new();
    for name in &p.names {
        let node = c
            .node(name)
            .expect("a node")
            .with_consistency(Consistency::AtLeast(i));
        let started = Instant::now();
        let scan = loop {
            match node.range_entries(&KeyRange::all()).await {
                Ok(scan) => break scan,
                Err(e) if started.elapsed() < DEADLINE => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("{name} did not catch up to {i}: {e}"),
            }
        };
        if scan != on_master {
            let differ = scan
                .iter()
                .zip(&on_master)
                .position(|(a, b)| a != b)
                .unwrap_or(scan.len().min(on_master.len()));
            divergent.push(format!(
                "{name}: {} keys, the master {}; first difference at entry {differ}",
                scan.len(),
                on_master.len()
            ));
        }
    }
    let anomalies = usize::from(verdict != Verdict::Linearizable) + divergent.len();
    println!(
        "nemesis: {nodes} nodes, {secs} s: {} operations ({unknown} of unknown outcome); \
         faults: {faults}; longest stretch without a completed operation {quiet:.1?}; \
         anomalies: {anomalies}",
        operations.len()
    );
    // Per kind of fault, min / median / max of: the first write after the
    // heal, the hit nodes caught up, the longest stretch without a
    // completed operation from the fault's start to its recovery.
    let kinds: std::collections::BTreeSet<&str> = windows.iter().map(|(w, _)| w.kind).collect();
    for kind in kinds {
        let of: Vec<&(Window, Duration)> = windows.iter().filter(|(w, _)| w.kind == kind).collect();
        println!(
            "nemesis:   {kind} ({}): write after the heal {}; caught up {}; longest without an operation {}",
            of.len(),
            spread(of.iter().map(|(w, _)| w.write_after_heal).collect()),
            spread(of.iter().map(|(w, _)| w.caught_up).collect()),
            spread(of.iter().map(|(_, q)| *q).collect()),
        );
    }
    Summary {
        verdict,
        divergent,
        operations: operations.len(),
        faults,
        windows,
    }
}

/// The short form, with the test suite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nemesis_short_three_nodes() {
    // Issue 14's bound is two leases; the long form asserts it (1.7 s at
    // most in its runs). The short form runs in a debug build beside
    // another test of this file on two cores: one lease more of room.
    run(3, 60, Duration::from_secs(3 * LEASE_SECS)).await;
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
    run(3, long_secs(), Duration::from_secs(2 * LEASE_SECS)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long form: NEMESIS_SECS=600 cargo test --release -p cli --test nemesis -- --ignored"]
async fn nemesis_long_five_nodes() {
    run(5, long_secs(), Duration::from_secs(2 * LEASE_SECS)).await;
}
