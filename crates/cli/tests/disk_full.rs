//! A disk that fills up (a tmpfs of fixed size under the nodes' homes,
//! filled by a ballast file): the master refuses updates with
//! `E_READ_ONLY` saying which directory is full, goes on serving reads,
//! takes updates again once space returns, and has lost nothing it
//! acknowledged. Needs root (mount); these machines run tests as root.

mod common;

use client::{Error, ResultCode};
use common::*;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_updates_serves_reads_and_recovers() {
    // Three nodes on one 128 MiB disk; tlog segments of 4 MiB; each node
    // keeps 24 MiB in reserve.
    let p = Processes::start_on_tmpfs(3, 128, "tlog_max_size = 4194304", "min_free_disk = 24");
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let value = vec![b'v'; 1000];
    for k in 0..200u32 {
        c.set(format!("k{k}").as_bytes(), &value)
            .await
            .expect("a write with space");
    }

    let ballast = p.dir.path().join("ballast");
    fill_disk(&ballast, 8 * MIB);
    // The watch looks twice a second: an update is refused soon, saying
    // why; every one acknowledged until then is kept.
    let started = Instant::now();
    let mut acked = 200u32;
    let message = loop {
        match c.set(format!("k{acked}").as_bytes(), &value).await {
            Ok(()) => acked += 1,
            Err(Error::Server {
                code: ResultCode::ReadOnly,
                message,
                ..
            }) => break message,
            Err(e) => panic!("a write on a full disk: {e}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "updates still taken {:?} after the disk filled up",
            started.elapsed()
        );
    };
    assert!(
        message.contains("disk full") && message.contains("min_free_disk = 24 MiB"),
        "{message}"
    );
    assert!(
        message.contains(&p.dir.path().display().to_string()),
        "{message}"
    );
    assert!(stderr_has(
        &p,
        index_of(&p, &master),
        "updates refused: disk full"
    ));

    // Reads are served, Consistent ones by the same master.
    for k in 0..acked {
        assert_eq!(
            c.get(format!("k{k}").as_bytes())
                .await
                .expect("a read on a full disk"),
            value
        );
    }
    assert_eq!(c.master().await.expect("a master"), master);
    // Every update is refused, not only sets.
    match c.delete(b"k0").await {
        Err(Error::Server {
            code: ResultCode::ReadOnly,
            ..
        }) => {}
        other => panic!("a delete on a full disk: {other:?}"),
    }

    // Space returns: updates are taken again, nothing was lost.
    std::fs::remove_file(&ballast).expect("remove the ballast");
    let freed = Instant::now();
    loop {
        match c.set(b"after", b"space").await {
            Ok(()) => break,
            Err(e) => assert!(
                freed.elapsed() < Duration::from_secs(5),
                "no write {:?} after space returned: {e}",
                freed.elapsed()
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stderr_has(&p, index_of(&p, &master), "updates taken again"));
    for k in 0..acked {
        assert_eq!(
            c.get(format!("k{k}").as_bytes()).await.expect("a read"),
            value
        );
    }
    assert_eq!(c.get(b"after").await.expect("a read"), b"space".to_vec());
}
