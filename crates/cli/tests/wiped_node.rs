//! A node restarted with a wiped home, on real processes: the operator's
//! most common recovery step must never lose an acknowledged write.

mod common;

use client::Consistency;
use common::*;
use std::time::{Duration, Instant};

const KEYS: usize = 50;
/// The lease of the reproduction, as the issue ran it.
const LEASE: u64 = 2;

fn key(k: usize) -> Vec<u8> {
    format!("acked-{k:03}").into_bytes()
}

/// The reproduction of the safety issue. Three nodes, `lease_period = 2`;
/// A is master. C paused; 50 writes acknowledged by A and B; B killed, its
/// home wiped, started again; A killed; C resumed. Before the fix, B voted
/// for C and C answered without 42 of the 50 keys. Now: B does not vote
/// until it has caught up, so no master is elected without a node that
/// holds the writes (and any master that is elected holds all 50); once A
/// returns, every node converges on all 50.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_slave_never_helps_elect_a_master_without_the_writes() {
    let mut p = Processes::start_with_lease(3, LEASE);
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let a = index_of(&p, &master);
    let (b, cc) = match a {
        0 => (1, 2),
        1 => (0, 2),
        _ => (0, 1),
    };
    // Every node up to date before C is paused.
    c.set(b"warm", b"up").await.unwrap();
    let warm = txid(c.get_txid().await.unwrap());
    for i in [b, cc] {
        read_at_least(&c, &p, i, warm, b"warm").await;
    }

    signal(&p, cc, "STOP");
    for k in 0..KEYS {
        c.set(&key(k), b"acknowledged").await.unwrap();
    }
    eprintln!("{KEYS} writes acknowledged by {master} and {}", p.names[b]);

    p.wipe(b);
    p.spawn(b);
    p.kill(a);
    signal(&p, cc, "CONT");

    // For several election timeouts (and past B's recovery wait), any node
    // that calls itself master must hold every acknowledged write.
    let watch = Duration::from_secs(5 * LEASE);
    let started = Instant::now();
    let mut masters_seen = 0;
    while started.elapsed() < watch {
        for i in [b, cc] {
            let node = c
                .node(&p.names[i])
                .unwrap()
                .with_request_timeout(Duration::from_millis(500));
            // A `Consistent` answer comes only from a master holding its
            // lease; whatever it answers must show every write.
            for k in 0..KEYS {
                match node.exists(&key(k)).await {
                    Ok(present) => {
                        assert!(
                            present,
                            "{} answers as master without acknowledged write {k}",
                            p.names[i]
                        );
                        if k == 0 {
                            masters_seen += 1;
                        }
                    }
                    Err(_) => break, // not master (or no lease): nothing to check
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "without A: {masters_seen} master answers seen in {watch:?} (each held all {KEYS} keys)"
    );
    let b_log = p.stderr_of(b);
    assert!(
        b_log.contains("recovers before it votes"),
        "the wiped node says it recovers:\n{b_log}"
    );

    // A comes back: a master with every write, and every node converges.
    p.spawn(a);
    wait_for_master(&c, &p).await;
    for k in 0..KEYS {
        assert_eq!(c.get(&key(k)).await.unwrap(), b"acknowledged", "key {k}");
    }
    c.set(b"after", b"recovery").await.unwrap();
    let last = txid(c.get_txid().await.unwrap());
    for i in 0..3 {
        read_at_least(&c, &p, i, last, b"after").await;
        let node = c
            .node(&p.names[i])
            .unwrap()
            .with_consistency(Consistency::AtLeast(last));
        for k in 0..KEYS {
            assert_eq!(
                node.get(&key(k)).await.unwrap(),
                b"acknowledged",
                "{} converged without key {k}",
                p.names[i]
            );
        }
    }
    let b_log = p.stderr_of(b);
    assert!(
        b_log.contains("recovered: caught up"),
        "the wiped node says when it votes again:\n{b_log}"
    );
}
