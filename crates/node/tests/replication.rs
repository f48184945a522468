//! Three nodes (and a learner) replicating one log: writes on the master,
//! reads of every consistency on master and slaves, fail-over when the
//! master crashes and catch-up of the old master after its restart, answers
//! ahead of the apply read back at once, a slave's delayed apply (and the
//! `AtLeast` read that cuts it short), a learner following the voters.

mod common;

use client::{Client, Consistency, Error};
use common::{txid, Cluster};
use consensus::Role;
use std::time::Instant;

/// `AtLeast(i)` reads of `key` on every slave (name, client bound to it),
/// after set #`n` wrote `value`: each sees `value`, or, allowed only for a
/// slave whose tlog lacks `i`, answers `E_INCONSISTENT_READ`; at least one
/// (one of the commit quorum) serves. Returns how many served.
async fn read_at_least_on_slaves(
    slaves: &[(String, Client)],
    i: u64,
    key: &[u8],
    value: &[u8],
    n: u32,
) -> usize {
    let mut served = 0;
    for (name, slave) in slaves {
        let at_least = slave.with_consistency(Consistency::AtLeast(i as i64));
        match at_least.get(key).await {
            Ok(v) => {
                assert_eq!(v, value, "AtLeast({i}) on {name} after set #{n}");
                served += 1;
            }
            Err(Error::InconsistentRead { .. }) => {}
            Err(e) => panic!("AtLeast({i}) on {name} after set #{n}: {e}"),
        }
    }
    assert!(served >= 1, "no slave served AtLeast({i}) after set #{n}");
    served
}

/// Three nodes: writes on the master, NotMaster on a slave, AtLeast and
/// NoGuarantee reads on a slave, failover when the master crashes, and the
/// old master catching up after its restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_fail_over_and_catch_up() {
    let mut cluster = Cluster::start(3).await;
    let master = cluster.wait_master(&[0, 1, 2]).await;
    let c = cluster.client();
    for k in 0..20u32 {
        c.set(format!("k{k:02}").as_bytes(), &k.to_le_bytes())
            .await
            .unwrap();
    }
    let i = txid(c.get_txid().await.unwrap());
    let slave = (master + 1) % 3;
    let slave_name = cluster.name(slave);

    // NotMaster on a slave, naming the master.
    let on_slave = c.node(&slave_name).unwrap();
    match on_slave.set(b"nope", b"x").await {
        Err(Error::NotMaster { master: m, .. }) => {
            assert_eq!(m.as_deref(), Some(cluster.name(master).as_str()))
        }
        other => panic!("set on a slave: {other:?}"),
    }
    match on_slave.get(b"k00").await {
        Err(Error::NotMaster { .. }) => {}
        other => panic!("Consistent get on a slave: {other:?}"),
    }
    // AtLeast(i) on the slave: wait for it to apply (the commit index rides
    // on the next heartbeat), then the value is there.
    let at_least = on_slave.with_consistency(Consistency::AtLeast(i as i64));
    let v = cluster
        .wait_for(
            &format!("AtLeast({i}) on {slave_name} to serve"),
            async || match at_least.get(b"k19").await {
                Ok(v) => Some(v),
                Err(Error::InconsistentRead { .. }) => None,
                Err(e) => panic!("AtLeast({i}) on {slave_name}: {e}"),
            },
        )
        .await;
    assert_eq!(v, 19u32.to_le_bytes());
    let ng = on_slave.with_consistency(Consistency::NoGuarantee);
    assert_eq!(ng.get(b"k00").await.unwrap(), 0u32.to_le_bytes());
    let far = on_slave.with_consistency(Consistency::AtLeast(i as i64 + 1000));
    assert!(matches!(
        far.get(b"k00").await,
        Err(Error::InconsistentRead { .. })
    ));

    // Failover: crash the master; the others elect a new one.
    let crashed_at = Instant::now();
    cluster.crash(master).await;
    let rest: Vec<usize> = (0..3).filter(|&j| j != master).collect();
    let new_master = cluster.wait_master(&rest).await;
    eprintln!(
        "failover: {} is master {:?} after the crash of {}",
        cluster.name(new_master),
        crashed_at.elapsed(),
        cluster.name(master)
    );
    for k in 0..20u32 {
        assert_eq!(
            c.get(format!("k{k:02}").as_bytes()).await.unwrap(),
            k.to_le_bytes(),
            "acknowledged write k{k:02} survives the failover"
        );
    }
    c.set(b"after", b"failover").await.unwrap();
    let i2 = txid(c.get_txid().await.unwrap());

    // The old master restarts on the same dirs and catches up.
    cluster.restart(master).await;
    cluster.wait_applied(master, i2).await;
    let old = c
        .node(&cluster.name(master))
        .unwrap()
        .with_consistency(Consistency::AtLeast(i2 as i64));
    assert_eq!(old.get(b"after").await.unwrap(), b"failover");
    assert_eq!(old.get(b"k07").await.unwrap(), 7u32.to_le_bytes());
    cluster.stop_all().await;
}

/// The master answers a plain `set` once it is committed, ahead of the
/// store's apply, and the commit index reaches the slaves with the next
/// message (or after `commit_announce_delay`). Neither may show: right after
/// each answer, a read on another connection to the master sees the value
/// whatever its consistency, `get_txid` covers the write, and `AtLeast` of
/// that index on a slave that holds the entry (one at least: the commit
/// quorum) waits for the commit and sees the value rather than failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_ahead_of_the_apply_are_read_back_at_once() {
    let cluster = Cluster::start(3).await;
    let master = cluster.wait_master(&[0, 1, 2]).await;
    let writer = cluster.client();
    let reader = cluster.client();
    let on_master = reader.node(&cluster.name(master)).unwrap();
    let slaves: Vec<_> = (0..3)
        .filter(|&j| j != master)
        .map(|j| (cluster.name(j), reader.node(&cluster.name(j)).unwrap()))
        .collect();
    let mut slave_reads_served = 0;
    for n in 0..200u32 {
        let value = n.to_le_bytes();
        writer.set(b"counter", &value).await.unwrap();
        let i = txid(on_master.get_txid().await.unwrap());
        slave_reads_served += read_at_least_on_slaves(&slaves, i, b"counter", &value, n).await;
        // On the master, every read sees every answered update.
        for (k, consistency) in [
            Consistency::NoGuarantee,
            Consistency::Consistent,
            Consistency::AtLeast(i as i64),
        ]
        .into_iter()
        .enumerate()
        {
            let value = format!("{n}-{k}");
            writer.set(b"other", value.as_bytes()).await.unwrap();
            let got = on_master.with_consistency(consistency).get(b"other").await;
            assert_eq!(
                got.unwrap(),
                value.as_bytes(),
                "{consistency:?} read after set #{n}"
            );
        }
    }
    eprintln!("slaves served {slave_reads_served} of 400 AtLeast reads at once");
    cluster.stop_all().await;
}

/// A node that is not master holds committed entries back for
/// `slave_apply_delay` (a minute here) to apply several in one store
/// transaction. An `AtLeast(i)` read of an index it holds asks it to apply
/// at once: served, where waiting for the delay would have failed it with
/// `E_INCONSISTENT_READ` after a heartbeat interval. Without such a read it
/// does hold the entries back; a graceful stop applies them before its last
/// checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_holds_applies_back_but_not_from_an_at_least_read() {
    let mut cluster = Cluster::start_with(3, "slave_apply_delay = 60000").await;
    let master = cluster.wait_master(&[0, 1, 2]).await;
    let writer = cluster.client();
    let reader = cluster.client();
    let on_master = reader.node(&cluster.name(master)).unwrap();
    let slaves: Vec<usize> = (0..3).filter(|&j| j != master).collect();
    let slave_readers: Vec<_> = slaves
        .iter()
        .map(|&j| (cluster.name(j), reader.node(&cluster.name(j)).unwrap()))
        .collect();
    for n in 0..20u32 {
        let value = n.to_le_bytes();
        writer.set(b"k", &value).await.unwrap();
        let i = txid(on_master.get_txid().await.unwrap());
        read_at_least_on_slaves(&slave_readers, i, b"k", &value, n).await;
    }
    // Writes nobody reads on the slaves: they stay unapplied there (fewer
    // than the 64 entries that are applied whatever the delay).
    for n in 0..10u32 {
        writer.set(b"quiet", &n.to_le_bytes()).await.unwrap();
    }
    let last = txid(on_master.get_txid().await.unwrap());
    let slave = slaves[0];
    let s = cluster
        .wait_for(
            &format!("{} to learn commit {last}", cluster.name(slave)),
            async || {
                let s = cluster.status(slave);
                (s.commit_index >= last).then_some(s)
            },
        )
        .await;
    assert!(
        s.applied_index < last,
        "{} applied {} of {last} committed well within slave_apply_delay",
        cluster.name(slave),
        s.applied_index
    );
    // A graceful stop applies them: the store opens at `last` after it.
    cluster.stop(slave).await;
    cluster.restart(slave).await;
    let s = cluster.status(slave);
    assert!(
        s.applied_index >= last,
        "{} reopened with {} applied, not {last}",
        cluster.name(slave),
        s.applied_index
    );
    cluster.stop_all().await;
}

/// A learner receives the log and applies it, never votes: the three voters
/// elect a master among themselves and the learner serves AtLeast reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_follows_and_serves_at_least_reads() {
    let mut extras = vec![String::new(); 3];
    extras.push("learner = true\ntargets = node_0, node_1, node_2\n".to_string());
    let cluster = Cluster::start_custom(&extras).await;
    let master = cluster.wait_master(&[0, 1, 2]).await;
    assert_ne!(master, 3);
    let learner = cluster.status(3);
    assert_eq!(learner.role, Role::Learner);
    let c = cluster.client();
    c.set(b"learned", b"yes").await.unwrap();
    let i = txid(c.get_txid().await.unwrap());
    cluster.wait_applied(3, i).await;
    let on_learner = c
        .node("node_3")
        .unwrap()
        .with_consistency(Consistency::AtLeast(i as i64));
    assert_eq!(on_learner.get(b"learned").await.unwrap(), b"yes");
    assert!(matches!(
        c.node("node_3").unwrap().set(b"x", b"y").await,
        Err(Error::NotMaster { .. })
    ));
    cluster.stop_all().await;
}
