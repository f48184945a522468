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
