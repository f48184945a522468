//! What survives a crash (no sync, no checkpoint) or a graceful stop: a
//! restart on the same directories replays the tlog into the store, also
//! with `fsync = false`.

mod common;

use client::{Consistency, Update};
use common::{txid, Cluster};

/// A crash (no sync, no checkpoint) then a start on the same directories
/// replays the tlog into the store; a graceful stop then start as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_crash_replays_the_tlog() {
    let mut cluster = Cluster::start(1).await;
    cluster.wait_master(&[0]).await;
    let c = cluster.client();
    // More entries than one round applies (APPLY_PER_ROUND_MAX), one each.
    for k in 0..1100u32 {
        c.set(format!("r{k}").as_bytes(), &k.to_le_bytes())
            .await
            .unwrap();
    }
    c.delete(b"r3").await.unwrap();
    let before = cluster.status(0);
    cluster.crash(0).await;
    cluster.restart(0).await;
    cluster.wait_master(&[0]).await;
    let after = cluster.status(0);
    assert!(after.applied_index >= before.applied_index);
    let c = cluster.client();
    assert_eq!(c.get(b"r1099").await.unwrap(), 1099u32.to_le_bytes());
    assert!(!c.exists(b"r3").await.unwrap());
    assert_eq!(c.prefix_keys(b"r", None).await.unwrap().len(), 1099);

    // Graceful stop, then start again.
    cluster.stop(0).await;
    cluster.restart(0).await;
    cluster.wait_master(&[0]).await;
    assert_eq!(
        cluster.client().get(b"r10").await.unwrap(),
        10u32.to_le_bytes()
    );
    cluster.stop_all().await;
}

/// `fsync = false`: the same answers (a synced_sequence still fsyncs), and
/// a crashed process loses nothing (the data is in the page cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_false_serves_and_survives_a_process_crash() {
    let mut cluster = Cluster::start_with(3, "fsync = false\n").await;
    let master = cluster.wait_master(&[0, 1, 2]).await;
    let c = cluster.client();
    for k in 0..20u32 {
        c.set(format!("f{k}").as_bytes(), b"v").await.unwrap();
    }
    c.synced_sequence(vec![Update::Set {
        key: b"synced".to_vec(),
        value: b"yes".to_vec(),
    }])
    .await
    .unwrap();
    cluster.crash(master).await;
    cluster.restart(master).await;
    cluster.wait_master(&[0, 1, 2]).await;
    let i = txid(c.get_txid().await.unwrap());
    cluster.wait_applied(master, i).await;
    let on_old = c
        .node(&cluster.name(master))
        .unwrap()
        .with_consistency(Consistency::AtLeast(i as i64));
    assert_eq!(on_old.get(b"synced").await.unwrap(), b"yes");
    assert_eq!(on_old.prefix_keys(b"f", None).await.unwrap().len(), 20);
    cluster.stop_all().await;
}
