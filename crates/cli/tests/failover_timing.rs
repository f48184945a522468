//! Failover within Arakoon's bounds, on real processes, as Arakoon's
//! `delayed_master_restart_loop` system test drives it (lease 2 s): wait
//! 1.5 leases, write, `kill -9` the master, write again (the failover),
//! start the old master again; three rounds in a row, so each round after
//! the first kills a master elected with the vote of a node restarted 1.5
//! leases before. Arakoon's tests allow about two lease periods for each
//! failover; every round must be done within that.

mod common;

use common::*;
use std::time::{Duration, Instant};

const LEASE: u64 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_after_failover_within_two_leases() {
    let mut p = Processes::start_with_lease(3, LEASE);
    let c = p.client();
    wait_for_master(&c, &p).await;
    let mut took = Vec::new();
    for round in 0..3 {
        tokio::time::sleep(Duration::from_millis(1500 * LEASE)).await;
        let c = p.client();
        c.set(b"delayed_master_restart_loop", b"before")
            .await
            .expect("a write before the kill");
        let master = c.master().await.expect("the master");
        let m = index_of(&p, &master);
        p.kill(m);
        let killed = Instant::now();
        // Written through a new client each try, as Arakoon's client
        // retries after dropping its connections.
        loop {
            let c = p.client().with_request_timeout(Duration::from_millis(500));
            if c.set(b"delayed_master_restart_loop", b"after")
                .await
                .is_ok()
            {
                break;
            }
            assert!(killed.elapsed() < DEADLINE, "round {round}: no failover");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let failover = killed.elapsed();
        eprintln!("round {round}: {master} killed; a write succeeded {failover:?} later");
        took.push(failover);
        if std::env::var("FAILOVER_TRACE").is_ok() {
            eprintln!("killed at {:?}", std::time::SystemTime::now() - failover);
            for i in 0..3 {
                for l in p
                    .stderr_of(i)
                    .lines()
                    .filter(|l| l.contains("role change"))
                    .rev()
                    .take(4)
                {
                    eprintln!("{i}: {l}");
                }
            }
        }
        p.spawn(m);
    }
    eprintln!("failovers at lease_period = {LEASE} s: {took:?}");
    for (round, t) in took.iter().enumerate() {
        assert!(
            *t < Duration::from_secs(2 * LEASE),
            "round {round}: failover took {t:?}, Arakoon's bound is two lease periods; all: {took:?}"
        );
    }
}

/// Two slaves stalled past their election timeouts and woken in the same
/// instant (the master stopped, then both slaves, the master killed
/// meanwhile, one `kill -CONT` for both) campaign at once: each grants
/// the other's pre-vote and votes for itself, a split vote. They must not wait a whole
/// election timeout (1–1.5 leases) to try again: a write goes through
/// within one lease of the wake-up. Three rounds; at least one of them
/// must have split (the nodes log "split vote"), or the test proved
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slaves_woken_together_elect_a_master_within_a_lease() {
    const LEASE: u64 = 1;
    let mut p = Processes::start_with_lease(3, LEASE);
    let mut took = Vec::new();
    let mut splits = 0;
    for round in 0..3 {
        let c = p.client();
        let master = wait_for_master(&c, &p).await;
        c.set(b"woken_together", format!("before {round}").as_bytes())
            .await
            .expect("a write before the fault");
        let m = index_of(&p, &master);
        let slaves: Vec<usize> = (0..3).filter(|&i| i != m).collect();
        let split_lines = |p: &Processes| -> usize {
            slaves
                .iter()
                .map(|&i| p.stderr_of(i).matches("split vote").count())
                .sum()
        };
        let before = split_lines(&p);
        // The master goes quiet first, and the slaves handle what it sent
        // before they stop: a heartbeat still unread in a stopped slave's
        // socket would be taken for a live master when it wakes, and the
        // slave would wait a whole election timeout more (a stale
        // heartbeat is not told from a fresh one; see the README).
        signal(&p, m, "STOP");
        tokio::time::sleep(Duration::from_millis(100)).await;
        signal_all(&p, &slaves, "STOP");
        p.kill(m);
        // The stall: past both election timeouts (1.5 leases at most)
        // and the lease guards.
        tokio::time::sleep(Duration::from_millis(1700 * LEASE)).await;
        signal_all(&p, &slaves, "CONT");
        let woken = Instant::now();
        loop {
            let c = p.client().with_request_timeout(Duration::from_millis(300));
            if c.set(b"woken_together", format!("after {round}").as_bytes())
                .await
                .is_ok()
            {
                break;
            }
            assert!(woken.elapsed() < DEADLINE, "round {round}: no master");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        took.push(woken.elapsed());
        if woken.elapsed() >= Duration::from_secs(LEASE) {
            for &i in &slaves {
                let log = p.stderr_of(i);
                let tail: Vec<&str> = log.lines().rev().take(12).collect();
                eprintln!(
                    "{}'s log, last lines first:\n{}",
                    p.names[i],
                    tail.join("\n")
                );
            }
        }
        let split = split_lines(&p) > before;
        splits += usize::from(split);
        eprintln!(
            "round {round}: a write {:?} after the wake-up (split vote: {split})",
            woken.elapsed()
        );
        p.spawn(m);
        let c = p.client();
        let i = txid(c.get_txid().await.expect("the index"));
        read_at_least(&c, &p, m, i, b"woken_together").await;
    }
    for (round, t) in took.iter().enumerate() {
        assert!(
            *t < Duration::from_secs(LEASE),
            "round {round}: {t:?} to a write after the wake-up; all: {took:?}"
        );
    }
    assert!(splits > 0, "no round split the vote: {took:?}");
}
