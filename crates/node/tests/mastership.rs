//! Who is master, and what happens when that changes: `drop_master`
//! handing over, no quorum (updates fail fast, then resume), a graceful stop
//! of the master with an update in flight, forced and preferred masters from
//! the config.

mod common;

use client::Error;
use common::{txid, Cluster};
use std::time::{Duration, Instant};

/// `drop_master` on the master hands mastership over to another node,
/// which serves what was written before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_master_hands_over() {
    let cluster = Cluster::start(3).await;
    let master = cluster.wait_master(&[0, 1, 2]).await;
    let c = cluster.client();
    c.set(b"k", b"v").await.unwrap();
    // Wait until every slave has applied it (so they are caught up).
    let i = txid(c.get_txid().await.unwrap());
    for j in 0..3 {
        cluster.wait_applied(j, i).await;
    }
    let start = Instant::now();
    c.node(&cluster.name(master))
        .unwrap()
        .drop_master()
        .await
        .unwrap();
    // As Arakoon: the answer comes once another node holds mastership, and
    // half a lease after that.
    let answered = start.elapsed();
    let new_master = cluster
        .master_among(&[0, 1, 2])
        .filter(|&m| m != master)
        .expect("another node is master when drop_master answers");
    assert!(
        answered >= cluster.config.lease_period / 2,
        "answered after {answered:?}"
    );
    eprintln!(
        "handed over to {}, answered in {answered:?}",
        cluster.name(new_master)
    );
    assert_eq!(c.get(b"k").await.unwrap(), b"v");
    cluster.stop_all().await;
}

/// Two of three nodes crash: the master loses its lease and steps down, so
/// an update fails within the lease period plus a margin (never hangs), and
/// a `Consistent` read is refused; one node back: progress resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_updates_fail_fast_and_resume() {
    let mut cluster = Cluster::start(3).await;
    let master = cluster.wait_master(&[0, 1, 2]).await;
    let c = cluster.client();
    c.set(b"before", b"1").await.unwrap();
    let others: Vec<usize> = (0..3).filter(|&j| j != master).collect();
    for &j in &others {
        cluster.crash(j).await;
    }
    let direct = c
        .node(&cluster.name(master))
        .unwrap()
        .with_request_timeout(Duration::from_secs(10));
    let lease = cluster.config.lease_period;
    let margin = Duration::from_secs(1);
    let started = Instant::now();
    let result = direct.set(b"lost", b"?").await;
    let took = started.elapsed();
    eprintln!("update without a quorum failed after {took:?}: {result:?}");
    assert!(
        matches!(
            result,
            Err(Error::NoLongerMaster { .. }) | Err(Error::NotMaster { .. })
        ),
        "{result:?}"
    );
    assert!(took < lease + margin, "took {took:?}, lease {lease:?}");
    // No lease any more: a Consistent read is refused too.
    assert!(matches!(
        direct.get(b"before").await,
        Err(Error::NotMaster { .. })
    ));

    cluster.restart(others[0]).await;
    let m = cluster.wait_master(&[master, others[0]]).await;
    eprintln!("master again: {}", cluster.name(m));
    c.set(b"after", b"2").await.unwrap();
    assert_eq!(c.get(b"before").await.unwrap(), b"1");
    assert_eq!(c.get(b"after").await.unwrap(), b"2");
    cluster.stop_all().await;
}

/// A graceful stop answers an update in flight with E_GOING_DOWN (it cannot
/// commit: both slaves are down) instead of dropping the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_answers_in_flight_updates_going_down() {
    let mut cluster = Cluster::start(3).await;
    let master = cluster.wait_master(&[0, 1, 2]).await;
    let c = cluster.client();
    c.set(b"k", b"v").await.unwrap();
    for j in (0..3).filter(|&j| j != master) {
        cluster.crash(j).await;
    }
    let before = cluster.status(master).tlog_last_index;
    let direct = c.node(&cluster.name(master)).unwrap();
    let update = tokio::spawn(async move { direct.set(b"pending", b"x").await });
    // Wait until the update is proposed (appended to the master's tlog).
    cluster
        .wait_for("the update to be proposed", async || {
            (cluster.status(master).tlog_last_index > before).then_some(())
        })
        .await;
    cluster.stop(master).await;
    let result = update.await.unwrap();
    // The client reports E_GOING_DOWN on an update as an unknown outcome.
    match &result {
        Err(e @ Error::OutcomeUnknown { reason, .. }) => {
            assert!(reason.contains("going down"), "{e}")
        }
        other => panic!("expected E_GOING_DOWN, got {other:?}"),
    }
}

/// `master = X` (forced): only X is ever master. `preferred_master = true`:
/// X takes over once caught up, also after another node was master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_and_preferred_masters_from_the_config() {
    let three = vec![String::new(); 3];
    let forced = Cluster::start_full("master = node_1\n", &three).await;
    assert_eq!(forced.wait_master(&[0, 1, 2]).await, 1, "the forced master");
    forced.client().set(b"f", b"1").await.unwrap();
    forced.stop_all().await;

    let mut preferred =
        Cluster::start_full("master = node_2\npreferred_master = true\n", &three).await;
    // Whoever wins the first election hands over to the preferred master.
    preferred.wait_master(&[0, 1, 2]).await;
    preferred.wait_until_master(2).await;
    let c = preferred.client();
    c.set(b"p", b"1").await.unwrap();
    // Another node takes over while node_2 is down, and hands mastership
    // back once node_2 is back and caught up.
    preferred.crash(2).await;
    let interim = preferred.wait_master(&[0, 1]).await;
    c.set(b"p", b"2").await.unwrap();
    preferred.restart(2).await;
    let start = Instant::now();
    preferred.wait_until_master(2).await;
    eprintln!(
        "node_2 took mastership back from node_{interim} in {:?}",
        start.elapsed()
    );
    assert_eq!(c.get(b"p").await.unwrap(), b"2");
    // openvstorage/arakoon#95: a preferred master must not keep the cluster
    // losing its master. Once back, it stays master (three lease periods,
    // every node naming it at every poll) and writes go on.
    let stable_for = Duration::from_secs(3);
    let started = Instant::now();
    let mut writes = 0u64;
    while started.elapsed() < stable_for {
        c.set(b"stable", writes.to_string().as_bytes())
            .await
            .unwrap();
        writes += 1;
        for name in ["node_0", "node_1", "node_2"] {
            let named = c.node(name).unwrap().who_master().await.unwrap();
            assert_eq!(
                named.as_deref(),
                Some("node_2"),
                "{name} names another master after {:?} ({writes} writes)",
                started.elapsed()
            );
        }
    }
    eprintln!("node_2 stayed master for {stable_for:?}: {writes} writes");
    preferred.stop_all().await;
}
