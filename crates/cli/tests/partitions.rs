//! Network partitions between real processes (each node in its own network
//! namespace, cuts made with nftables: see `common::net`), one scenario
//! per test, each with the availability bound issue 14 asks for
//! (`lease_period` = 1 s here, so the election timeout is 1–1.5 s):
//! - after any heal, a master within one election timeout plus one lease;
//! - a follower that rejoins has caught up within 2 s of the heal plus its
//!   catch-up time;
//! - a deposed master never answers a `Consistent` read or takes a write.
//!
//! The tests need root and `ip` and `nft` (installed by `.ci/run`, or
//! here with apt): where namespaces cannot be made, they fail saying why
//! (the nemesis harness instead says so and runs its other faults).

mod common;

use client::{Client, Error};
use common::net::{cut_off, others, Net};
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LEASE: Duration = Duration::from_secs(1);
/// The longest election timeout at a 1 s lease.
const ELECTION_TIMEOUT_MAX: Duration = Duration::from_millis(1500);

/// A cluster of `nodes` nodes in namespaces.
fn cluster(nodes: usize) -> Processes {
    ensure_tool("ip", "iproute2", "to make network namespaces");
    ensure_tool("nft", "nftables", "to cut the network between nodes");
    match Net::create(nodes) {
        Ok(net) => Processes::start_in_net(net, LEASE.as_secs(), ""),
        Err(e) => panic!("network namespaces cannot be made here: {e}"),
    }
}

fn net(p: &Processes) -> &Net {
    p.net.as_ref().expect("a cluster in namespaces")
}

/// Node `i` hears none of the others and none hear it.
fn isolate(p: &Processes, i: usize) {
    let n = p.names.len();
    net(p).cut(&cut_off(n, i, &others(n, i), true));
}

/// Waits until a write succeeds through the whole-cluster client; the time
/// it took.
async fn until_write(c: &Client, since: Instant) -> Duration {
    let c = c.with_request_timeout(Duration::from_millis(300));
    loop {
        if c.set(b"probe", b"x").await.is_ok() {
            return since.elapsed();
        }
        assert!(since.elapsed() < DEADLINE, "no write within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The time until node `i` answers an `AtLeast(index)` read.
async fn until_caught_up(
    c: &Client,
    p: &Processes,
    i: usize,
    index: i64,
    since: Instant,
) -> Duration {
    // "writer" exists in every test by then (read_at_least waits for a
    // value).
    read_at_least(c, p, i, index, b"writer").await;
    since.elapsed()
}

/// A client writing all the time; the instants of its successful writes.
struct Writer {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Vec<Instant>>,
}

impl Writer {
    fn start(c: &Client) -> Writer {
        let c = c.with_request_timeout(Duration::from_millis(300));
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let task = tokio::spawn(async move {
            let mut acked = vec![Instant::now()];
            let mut n = 0u64;
            while !stopped.load(Ordering::Relaxed) {
                n += 1;
                if c.set(b"writer", n.to_string().as_bytes()).await.is_ok() {
                    acked.push(Instant::now());
                } else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            acked
        });
        Writer { stop, task }
    }

    /// Stops; the longest stretch without a successful write between
    /// `from` and `to`.
    async fn longest_gap(self, from: Instant, to: Instant) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        let acked = self.task.await.expect("the writer");
        let mut last = from;
        let mut longest = Duration::ZERO;
        for &t in acked.iter().filter(|&&t| t > from && t < to).chain([&to]) {
            longest = longest.max(t - last);
            last = t;
        }
        longest
    }
}

/// The whole cluster commits, and each node holds the same value of
/// `key` once it applied the master's last index.
async fn converged(c: &Client, p: &Processes, key: &[u8]) {
    c.set(key, b"last").await.expect("a write after the heal");
    let index = txid(c.get_txid().await.expect("get_txid"));
    for i in 0..p.names.len() {
        read_at_least(c, p, i, index, key).await;
        let got = c
            .node(&p.names[i])
            .expect("a node")
            .with_consistency(client::Consistency::AtLeast(index))
            .get(key)
            .await
            .expect("a read at the master's index");
        assert_eq!(got, b"last".to_vec(), "{} holds another value", p.names[i]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_master_is_replaced_steps_down_and_rejoins() {
    let p = cluster(3);
    let c = p.client();
    let old = index_of(&p, &wait_for_master(&c, &p).await);
    c.set(b"before", b"1")
        .await
        .expect("a write before the cut");

    let cut = Instant::now();
    isolate(&p, old);
    let elected = until_write(&c, cut).await;
    let new = index_of(&p, &c.master().await.expect("a master"));
    assert_ne!(new, old, "the isolated node is master again");
    // The lease runs out first, then an election: one lease plus one
    // election timeout (plus a round trip) after the cut.
    assert!(
        elected < LEASE + ELECTION_TIMEOUT_MAX + Duration::from_millis(500),
        "a new master took its first write {elected:?} after the master was cut off"
    );

    // The deposed master, still reachable by clients, neither answers a
    // Consistent read nor takes a write.
    let deposed = c
        .node(&p.names[old])
        .expect("a node")
        .with_request_timeout(Duration::from_secs(1));
    match deposed.get(b"before").await {
        Err(Error::NotMaster { .. }) | Err(Error::NoMaster { .. }) => {}
        other => panic!("the deposed master answered a Consistent read: {other:?}"),
    }
    match deposed.set(b"during", b"x").await {
        Err(Error::NotMaster { .. }) | Err(Error::NoMaster { .. }) => {}
        other => panic!("the deposed master took a write: {other:?}"),
    }
    c.set(b"during", b"2")
        .await
        .expect("a write during the cut");
    c.set(b"writer", b"0")
        .await
        .expect("a write during the cut");
    let index = txid(c.get_txid().await.expect("get_txid"));

    tokio::time::sleep(Duration::from_secs(2)).await; // the cut lasts
    let writer = Writer::start(&c);
    let healed = Instant::now();
    net(&p).heal();
    let caught_up = until_caught_up(&c, &p, old, index, healed).await;
    // Stale traffic of the old master arriving after the heal must not
    // make it master again (a ghost master: no master for seconds).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let gap = writer.longest_gap(healed, Instant::now()).await;
    eprintln!(
        "isolated master: a new master {elected:?} after the cut; after the heal the old \
         master caught up in {caught_up:?}, longest stretch without a write {gap:?}"
    );
    assert!(
        caught_up < Duration::from_secs(2),
        "the old master caught up {caught_up:?} after the heal"
    );
    assert!(gap < LEASE, "{gap:?} without a write after the heal");
    assert_eq!(
        c.get(b"during").await.expect("read after the heal"),
        b"2".to_vec()
    );
    converged(&c, &p, b"end").await;
}

/// A follower that hears nothing for a long cut (packets dropped at its
/// side, so both sides' TCP retransmissions back off) catches up soon
/// after the heal: the messaging layer redials a silent peer instead of
/// waiting for TCP's back-off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_cut_off_for_long_catches_up_soon_after_the_heal() {
    let p = cluster(3);
    let c = p.client();
    let master = index_of(&p, &wait_for_master(&c, &p).await);
    let follower = (master + 1) % 3;
    let n = p.names.len();
    net(&p).cut(&cut_off(n, follower, &others(n, follower), false));
    c.set(b"writer", b"0").await.expect("a write");
    let writer = Writer::start(&c);
    let cut = Instant::now();
    tokio::time::sleep(Duration::from_secs(15)).await;
    let gap = writer.longest_gap(cut, Instant::now()).await;
    assert!(
        gap < LEASE,
        "{gap:?} without a write with one follower cut off"
    );
    let index = txid(c.get_txid().await.expect("get_txid"));
    let healed = Instant::now();
    net(&p).heal();
    let caught_up = until_caught_up(&c, &p, follower, index, healed).await;
    eprintln!("follower cut off for 15 s: caught up {caught_up:?} after the heal");
    assert!(
        caught_up < Duration::from_secs(2),
        "the follower caught up {caught_up:?} after the heal"
    );
    converged(&c, &p, b"end").await;
}

/// The master hears no one (a one-way cut: its peers still hear it). It
/// must notice it lost its majority (check-quorum), step down, and let the
/// others elect a master, although they keep hearing its heartbeats until
/// it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_that_hears_no_one_steps_down_for_another() {
    let p = cluster(3);
    let c = p.client();
    let old = index_of(&p, &wait_for_master(&c, &p).await);
    let n = p.names.len();
    let drops = cut_off(n, old, &others(n, old), false);
    let cut = Instant::now();
    net(&p).cut(&drops);
    let elected = until_write(&c, cut).await;
    let new = index_of(&p, &c.master().await.expect("a master"));
    assert_ne!(new, old, "the deaf master is still master");
    eprintln!("deaf master: a new master took a write {elected:?} after the cut");
    // Check-quorum (an election timeout without a majority's answers),
    // then an election timeout of the others, then the election.
    assert!(
        elected < 2 * ELECTION_TIMEOUT_MAX + LEASE,
        "a new master took its first write {elected:?} after the cut"
    );
    let healed = Instant::now();
    net(&p).heal();
    let rewrite = until_write(&c, healed).await;
    assert!(rewrite < LEASE, "a write took {rewrite:?} after the heal");
    converged(&c, &p, b"end").await;
}

/// A bridge: two nodes cannot hear each other, the third hears both. The
/// cluster keeps a master and commits through the bridge; the node on the
/// far side of the master may try elections (it hears no master) but must
/// not depose a master the bridge still hears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bridge_node_keeps_the_cluster_committing() {
    let p = cluster(3);
    let c = p.client();
    let master = index_of(&p, &wait_for_master(&c, &p).await);
    // The master and one follower are cut from each other; the third node
    // is the bridge.
    let far = (master + 1) % 3;
    let drops = cut_off(3, master, &[far], true);
    let writer = Writer::start(&c);
    let cut = Instant::now();
    net(&p).cut(&drops);
    tokio::time::sleep(Duration::from_secs(5)).await;
    let gap = writer.longest_gap(cut, Instant::now()).await;
    eprintln!("bridge: longest stretch without a write {gap:?}");
    assert!(
        gap < LEASE + ELECTION_TIMEOUT_MAX,
        "{gap:?} without a write with a bridge node"
    );
    let writer = Writer::start(&c);
    let healed = Instant::now();
    net(&p).heal();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let gap = writer.longest_gap(healed, Instant::now()).await;
    assert!(gap < LEASE, "{gap:?} without a write after the heal");
    converged(&c, &p, b"end").await;
}

/// No one hears the master (a one-way cut: it still hears them), four
/// times over. The others must elect one of themselves within about one
/// lease plus one election timeout: no stretch without a write longer
/// than that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_no_one_hears_is_replaced() {
    let p = cluster(3);
    let c = p.client();
    wait_for_master(&c, &p).await;
    c.set(b"writer", b"0").await.expect("a write");
    for round in 0..4 {
        let old = index_of(&p, &wait_for_master(&c, &p).await);
        let mut drops = vec![Vec::new(); 3];
        for (j, d) in drops.iter_mut().enumerate() {
            if j != old {
                d.push(old);
            }
        }
        let writer = Writer::start(&c);
        let cut = Instant::now();
        net(&p).cut(&drops);
        tokio::time::sleep(Duration::from_secs(3)).await;
        let gap = writer.longest_gap(cut, Instant::now()).await;
        eprintln!(
            "no one hears the master, round {round}: longest stretch without a write {gap:?}"
        );
        if gap >= LEASE + ELECTION_TIMEOUT_MAX + Duration::from_millis(500) {
            for i in 0..3 {
                eprintln!(
                    "--- {} (master before the cut: {}):\n{}",
                    p.names[i],
                    p.names[old],
                    p.stderr_of(i)
                );
            }
            panic!("{gap:?} without a write while no one heard the master (round {round})");
        }
        net(&p).heal();
        converged(&c, &p, b"end").await;
    }
}
