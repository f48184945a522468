//! A disk that fills up (a tmpfs of fixed size under the nodes' homes,
//! filled by a ballast file): the master refuses updates with
//! `E_READ_ONLY` saying which directory is full, goes on serving reads,
//! takes updates again once space returns, and has lost nothing it
//! acknowledged. Needs root (mount); these machines run tests as root.
//!
//! And a disk that fills faster than the free-space watch sees (ENOSPC
//! injected into the master's writes with strace): the master hands
//! mastership over, stays up, and catches up once it can write again.

mod common;

use client::{Error, ResultCode};
use common::*;
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;

/// Sets `after` = `space` once updates are taken again: within 5 s of the
/// space's return (the watch looks twice a second, the replica retries
/// every half second).
async fn write_once_space_returns(c: &client::Client) {
    let freed = Instant::now();
    loop {
        match c.set(b"after", b"space").await {
            Ok(()) => return,
            Err(e) => assert!(
                freed.elapsed() < Duration::from_secs(5),
                "no write {:?} after space returned: {e}",
                freed.elapsed()
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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
    write_once_space_returns(&c).await;
    assert!(stderr_has(&p, index_of(&p, &master), "updates taken again"));
    for k in 0..acked {
        assert_eq!(
            c.get(format!("k{k}").as_bytes()).await.expect("a read"),
            value
        );
    }
    assert_eq!(c.get(b"after").await.expect("a read"), b"space".to_vec());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_on_the_masters_writes_hands_mastership_over_and_the_node_catches_up() {
    ensure_tool(
        "strace",
        "strace",
        "to inject ENOSPC into the master's writes",
    );
    let mut p = Processes::start(3);
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let m = index_of(&p, &master);
    let value = vec![b'w'; 100];
    for k in 0..100u32 {
        c.set(format!("k{k}").as_bytes(), &value)
            .await
            .expect("a write with space");
    }

    // The master's writes fail (strace needs a moment to attach): it
    // notices, acknowledges nothing it did not write, and hands mastership
    // over; updates go on at the new master. An update in flight at the
    // switch may end without an answer (its outcome unknown): only the
    // acknowledged ones are checked.
    let tracer = common::strace::Tracer::no_space(&p, m);
    let started = Instant::now();
    let mut acked: Vec<u32> = (0..100).collect();
    let mut k = 100u32;
    let new_master = loop {
        match c.set(format!("k{k}").as_bytes(), &value).await {
            Ok(()) => acked.push(k),
            Err(e) => eprintln!("update k{k} while the master's disk is full: {e}"),
        }
        k += 1;
        if stderr_has(&p, m, "no space left for the tlog") {
            if let Ok(now) = c.master().await {
                if now != master {
                    break now;
                }
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{master} still master {:?} after ENOSPC was injected:\n{}",
            started.elapsed(),
            p.stderr_of(m)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(stderr_has(&p, m, "handing mastership over"));
    for _ in 0..50 {
        c.set(format!("k{k}").as_bytes(), &value)
            .await
            .expect("a write at the new master");
        acked.push(k);
        k += 1;
    }
    let child = p.children[m].as_mut().expect("running");
    assert!(
        child.try_wait().expect("wait for a node").is_none(),
        "{master} stopped on a full disk:\n{}",
        p.stderr_of(m)
    );
    eprintln!(
        "{master} full, {new_master} master after {:?}",
        started.elapsed()
    );

    // Writes go through again: the node writes what it held, catches up,
    // and has lost nothing the cluster acknowledged.
    drop(tracer);
    wait_for_log(&p, m, "the tlog takes writes again").await;
    c.set(b"after", b"space").await.expect("a write");
    let i = txid(c.get_txid().await.expect("get_txid"));
    read_at_least(&c, &p, m, i, b"after").await;
    let node = c
        .node(&master)
        .expect("a node client")
        .with_consistency(client::Consistency::AtLeast(i));
    for k in &acked {
        assert_eq!(
            node.get(format!("k{k}").as_bytes())
                .await
                .expect("a read on the node that was full"),
            value
        );
    }
    assert!(p.children[m]
        .as_mut()
        .expect("running")
        .try_wait()
        .expect("wait for a node")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_on_a_single_node_refuses_updates_serves_reads_and_recovers() {
    ensure_tool(
        "strace",
        "strace",
        "to inject ENOSPC into the node's writes",
    );
    let p = Processes::start(1);
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let value = vec![b's'; 100];
    for k in 0..100u32 {
        c.set(format!("k{k}").as_bytes(), &value)
            .await
            .expect("a write with space");
    }

    // No one to hand mastership to: the node stays master, refuses updates
    // saying why, and serves every acknowledged write, Consistent.
    let tracer = common::strace::Tracer::no_space(&p, 0);
    let started = Instant::now();
    let mut acked: Vec<u32> = (0..100).collect();
    let mut k = 100u32;
    let message = loop {
        k += 1;
        match c.set(format!("k{k}").as_bytes(), &value).await {
            Ok(()) => acked.push(k),
            Err(Error::Server {
                code: ResultCode::ReadOnly,
                message,
                ..
            }) => break message,
            // The update in flight when the write failed: its entry is
            // held, and commits only once the disk takes it (a single node
            // has no one else to commit it): no answer until then.
            Err(e) if e.to_string().contains("outcome unknown") => {}
            Err(e) => panic!("a write while the disk is full: {e}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "updates still taken {:?} after ENOSPC was injected",
            started.elapsed()
        );
    };
    assert!(message.contains("no space left for the tlog"), "{message}");
    assert!(
        message.contains(&p.dir.path().display().to_string()),
        "{message}"
    );
    for k in &acked {
        assert_eq!(
            c.get(format!("k{k}").as_bytes())
                .await
                .expect("a read while the disk is full"),
            value
        );
    }
    assert_eq!(c.master().await.expect("a master"), master);
    assert!(stderr_has(&p, 0, "staying master, refusing updates"));

    drop(tracer);
    write_once_space_returns(&c).await;
    assert!(stderr_has(&p, 0, "the tlog takes writes again"));
    for k in &acked {
        assert_eq!(
            c.get(format!("k{k}").as_bytes()).await.expect("a read"),
            value
        );
    }
    assert_eq!(c.get(b"after").await.expect("a read"), b"space".to_vec());
}
