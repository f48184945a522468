//! Real-process tests: `arakoon --node NAME -config FILE` processes on
//! loopback ports, killed with SIGKILL, driven with the `client` crate and
//! the binary's own client actions (harness: `common/mod.rs`).

mod common;

use client::{Consistency, Error, KeyRange, Update};
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_against_three_processes() {
    let p = Processes::start(3);
    let c = p.client();
    let master = wait_for_master(&c, &p).await;

    c.set(b"a", b"1").await.unwrap();
    assert_eq!(c.get(b"a").await.unwrap(), b"1");
    assert!(c.exists(b"a").await.unwrap());
    c.delete(b"a").await.unwrap();
    assert!(matches!(c.delete(b"a").await, Err(Error::NotFound { .. })));
    c.set(b"x", b"old").await.unwrap();
    let failed = c
        .sequence(vec![
            Update::Set {
                key: b"y".to_vec(),
                value: b"new".to_vec(),
            },
            Update::Assert {
                key: b"x".to_vec(),
                value: Some(b"other".to_vec()),
            },
        ])
        .await;
    assert!(
        matches!(failed, Err(Error::AssertionFailed { .. })),
        "{failed:?}"
    );
    assert!(
        !c.exists(b"y").await.unwrap(),
        "nothing of a failed sequence applied"
    );
    c.synced_sequence(vec![Update::Set {
        key: b"y".to_vec(),
        value: b"new".to_vec(),
    }])
    .await
    .unwrap();
    assert_eq!(c.test_and_set(b"t", None, Some(b"1")).await.unwrap(), None);
    assert_eq!(
        c.replace(b"t", Some(b"2")).await.unwrap(),
        Some(b"1".to_vec())
    );
    c.assert(b"t", Some(b"2")).await.unwrap();
    c.assert_exists(b"t").await.unwrap();
    for k in ["p1", "p2", "p3"] {
        c.set(k.as_bytes(), b"v").await.unwrap();
    }
    assert_eq!(c.prefix_keys(b"p", None).await.unwrap().len(), 3);
    let all = KeyRange {
        first: None,
        first_inclusive: true,
        last: None,
        last_inclusive: true,
        max: -1,
    };
    assert_eq!(
        c.range(&all).await.unwrap().len() as u64,
        c.get_key_count().await.unwrap()
    );
    assert_eq!(c.range_entries(&all).await.unwrap().len(), 6);
    assert_eq!(c.rev_range_entries(&all).await.unwrap()[0].0, b"y");
    assert_eq!(c.multi_get_option(&[b"p1", b"zz"]).await.unwrap()[1], None);
    assert_eq!(c.delete_prefix(b"p").await.unwrap(), 3);
    c.confirm(b"x", b"old").await.unwrap();
    c.nop().await.unwrap();
    assert!(c.expect_progress_possible().await.unwrap());
    assert_eq!(
        c.who_master().await.unwrap().as_deref(),
        Some(master.as_str())
    );
    assert_eq!(c.statistics().await.unwrap().name, "arakoon_stats");
    c.version().await.unwrap();

    // NotMaster on a slave; AtLeast and NoGuarantee reads there.
    let slave = p.names.iter().find(|n| **n != master).unwrap().clone();
    let on_slave = c.node(&slave).unwrap();
    assert!(matches!(
        on_slave.set(b"n", b"m").await,
        Err(Error::NotMaster { .. })
    ));
    let i = txid(c.get_txid().await.unwrap());
    let at_least = on_slave.with_consistency(Consistency::AtLeast(i));
    let start = Instant::now();
    let got = loop {
        match at_least.get(b"x").await {
            Err(Error::InconsistentRead { .. }) if start.elapsed() < DEADLINE => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => break other,
        }
    };
    assert_eq!(got.unwrap(), b"old");
    let ng = on_slave.with_consistency(Consistency::NoGuarantee);
    assert_eq!(ng.get(b"y").await.unwrap(), b"new");

    // The binary's own client actions against the cluster.
    let (ok, _, err) = p.cli(&["--set", "cli_key", "cli_value"]);
    assert!(ok, "--set: {err}");
    let (ok, out, err) = p.cli(&["--get", "cli_key"]);
    assert!(ok && out.contains("cli_value"), "--get: {out} {err}");
    let (ok, out, err) = p.cli(&["--who-master"]);
    assert!(ok && out.contains(&master), "--who-master: {out} {err}");
}

/// kill -9 of the master under a write load: a new master within a few
/// lease periods, no acknowledged write lost, the old master restarts and
/// catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_master_under_writes() {
    let mut p = Processes::start(3);
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4u32 {
        let c = c.clone();
        let stop = Arc::clone(&stop);
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let mut k = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w{w}-{k:06}");
                match c.set(key.as_bytes(), key.as_bytes()).await {
                    Ok(()) => acked.push((key, Instant::now())),
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
                k += 1;
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // let the load run
    let killed_at = Instant::now();
    let m = index_of(&p, &master);
    p.kill(m);
    let new_master = wait_for_master(&c, &p).await;
    let failover = killed_at.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await; // writes on the new master
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    let after_kill = acked.iter().filter(|(_, t)| *t > killed_at).count();
    eprintln!(
        "failover: {new_master} took over from {master} {failover:?} after kill -9; \
         {} writes acknowledged, {after_kill} of them after the kill",
        acked.len()
    );
    assert_ne!(new_master, master);
    assert!(
        failover < Duration::from_secs(4 * LEASE_SECS + 2),
        "{failover:?}"
    );
    for (key, _) in &acked {
        assert_eq!(
            c.get(key.as_bytes()).await.unwrap(),
            key.as_bytes(),
            "acknowledged write {key} lost"
        );
    }
    // The old master restarts on its directories and catches up.
    p.spawn(m);
    let i = txid(c.get_txid().await.unwrap());
    let old = c
        .node(&master)
        .unwrap()
        .with_consistency(Consistency::AtLeast(i));
    let (last_key, _) = acked.last().expect("some writes were acknowledged");
    let start = Instant::now();
    loop {
        match old.get(last_key.as_bytes()).await {
            Ok(v) => {
                assert_eq!(v, last_key.as_bytes());
                break;
            }
            Err(e) if start.elapsed() < DEADLINE => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{master} did not catch up: {e}\n{}", p.stderr_of(m)),
        }
    }
    eprintln!(
        "{master} caught up to {i} {:?} after its restart",
        start.elapsed()
    );
}

/// Two of three killed: updates fail fast (no hang past the lease plus a
/// margin); one back: progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_three_killed_updates_fail_fast_then_resume() {
    let mut p = Processes::start(3);
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    c.set(b"before", b"1").await.unwrap();
    let m = index_of(&p, &master);
    let others: Vec<usize> = (0..3).filter(|&j| j != m).collect();
    for &j in &others {
        p.kill(j);
    }
    let direct = c
        .node(&master)
        .unwrap()
        .with_request_timeout(Duration::from_secs(30));
    let started = Instant::now();
    let result = direct.set(b"lost", b"?").await;
    let took = started.elapsed();
    eprintln!("update without a quorum: {result:?} after {took:?}");
    assert!(result.is_err(), "an update cannot succeed without a quorum");
    assert!(
        took < Duration::from_secs(LEASE_SECS) + Duration::from_secs(2),
        "hung for {took:?}"
    );
    // A client of the whole cluster also fails, within its own bounds.
    let started = Instant::now();
    assert!(c.set(b"lost2", b"?").await.is_err());
    eprintln!("cluster client failed after {:?}", started.elapsed());

    p.spawn(others[0]);
    let back = wait_for_master(&c, &p).await;
    eprintln!("progress again with {back} as master");
    c.set(b"after", b"2").await.unwrap();
    assert_eq!(c.get(b"before").await.unwrap(), b"1");
}

/// Wrong cluster id (closed without a reply), wrong magic, a truncated
/// frame, a 1 GiB declared length: each gets a clear error and the node
/// serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_the_node_is_unharmed() {
    let p = Processes::start(1);
    let c = p.client();
    wait_for_master(&c, &p).await;
    let addr = p.client_addresses[0].clone();

    async fn answer(addr: &str, bytes: &[u8]) -> (u32, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .expect("the node answers and closes")
            .unwrap();
        assert!(out.len() >= 8, "short answer {out:?}");
        let rc = u32::from_le_bytes(out[0..4].try_into().unwrap());
        (rc, String::from_utf8_lossy(&out[8..]).into_owned())
    }
    let mut wrong_cluster = Vec::new();
    protocol::encode_prologue(b"not_this_one", &mut wrong_cluster);
    {
        // Closed without a reply, as Arakoon does.
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(&wrong_cluster).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .expect("the node closes the connection")
            .unwrap();
        assert_eq!(out, b"", "no reply to a wrong cluster id");
    }
    let (rc, msg) = answer(&addr, &[1, 2, 3, 4, 1, 0, 0, 0]).await;
    assert_eq!(rc, 0x01, "E_NO_MAGIC: {msg}");
    let mut huge = Vec::new();
    protocol::encode_prologue(p.cluster_id.as_bytes(), &mut huge);
    huge.extend_from_slice(&(0xb1ff_0000u32 | 0x09).to_le_bytes()); // set
    huge.extend_from_slice(&(1u32 << 30).to_le_bytes()); // key of 1 GiB
    let (rc, msg) = answer(&addr, &huge).await;
    assert_eq!(rc, 0x26, "E_BAD_INPUT: {msg}");
    {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut truncated = Vec::new();
        protocol::encode_prologue(p.cluster_id.as_bytes(), &mut truncated);
        truncated.extend_from_slice(&(0xb1ff_0000u32 | 0x09).to_le_bytes());
        truncated.extend_from_slice(&100u32.to_le_bytes());
        truncated.extend_from_slice(b"only a few");
        s.write_all(&truncated).await.unwrap();
    } // closed mid-frame
    c.set(b"unharmed", b"yes").await.unwrap();
    assert_eq!(c.get(b"unharmed").await.unwrap(), b"yes");
    let stderr = p.stderr_of(0);
    assert!(
        stderr.contains("wrong cluster id"),
        "the refusal is logged:\n{stderr}"
    );
}

/// SIGTERM: the node stops cleanly (exit 0, tlog synced, store
/// checkpointed), and starts again on the same directories.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_the_node_restarts() {
    let mut p = Processes::start(1);
    let c = p.client();
    wait_for_master(&c, &p).await;
    for k in 0..20u32 {
        c.set(format!("s{k}").as_bytes(), b"v").await.unwrap();
    }
    signal(&p, 0, "TERM");
    let start = Instant::now();
    let status = loop {
        if let Some(status) = p.children[0].as_mut().unwrap().try_wait().unwrap() {
            break status;
        }
        assert!(start.elapsed() < DEADLINE, "no exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    p.children[0] = None;
    assert!(
        status.success(),
        "exit status {status:?}:\n{}",
        p.stderr_of(0)
    );
    assert!(
        p.stderr_of(0).contains("stopped cleanly"),
        "{}",
        p.stderr_of(0)
    );
    p.spawn(0);
    wait_for_master(&c, &p).await;
    assert_eq!(c.prefix_keys(b"s", None).await.unwrap().len(), 20);
}

/// SIGSTOP of the master: the others elect a new master; the paused node,
/// resumed, serves no stale `Consistent` read, follows the new master and
/// catches up. No acknowledged write is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_master_is_replaced_and_follows_when_resumed() {
    let p = Processes::start(3);
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    c.set(b"k", b"before").await.unwrap();
    let m = index_of(&p, &master);
    signal(&p, m, "STOP");
    let paused_at = Instant::now();
    let new_master = loop {
        let name = wait_for_master(&c, &p).await;
        if name != master {
            break name;
        }
        assert!(paused_at.elapsed() < DEADLINE, "no new master");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    eprintln!(
        "{new_master} took over {:?} after SIGSTOP of {master}",
        paused_at.elapsed()
    );
    c.set(b"k", b"after").await.unwrap();
    let i = txid(c.get_txid().await.unwrap());
    signal(&p, m, "CONT");
    // The resumed node must not answer a Consistent read with the old value.
    let old = c.node(&master).unwrap();
    match old.get(b"k").await {
        Ok(v) => assert_eq!(v, b"after", "a resumed old master served a stale read"),
        Err(Error::NotMaster { .. }) | Err(Error::NoLongerMaster { .. }) => {}
        Err(e) => panic!("Consistent get on the resumed old master: {e}"),
    }
    let at_least = old.with_consistency(Consistency::AtLeast(i));
    let start = Instant::now();
    loop {
        match at_least.get(b"k").await {
            Ok(v) => {
                assert_eq!(v, b"after");
                break;
            }
            Err(_) if start.elapsed() < DEADLINE => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{master} did not catch up after SIGCONT: {e}"),
        }
    }
    assert_eq!(c.get(b"k").await.unwrap(), b"after");
}

/// A failing fdatasync (EIO injected with strace into the running node):
/// the node stops with an error naming the tlog, rather than acknowledging
/// what may not be on disk; restarted, it has every acknowledged write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_fsync_stops_the_node_and_nothing_acknowledged_is_lost() {
    ensure_tool("strace", "strace", "to inject an fsync failure");
    let mut p = Processes::start(1);
    let c = p.client();
    wait_for_master(&c, &p).await;
    for k in 0..10u32 {
        c.set(format!("d{k}").as_bytes(), b"v").await.unwrap();
    }
    let tracer = common::strace::Tracer::attach(&p, 0, &["fdatasync"], "error=EIO");
    // Writes until one fails (strace needs a moment to attach).
    let start = Instant::now();
    let failed = loop {
        match c.set(b"after-eio", b"?").await {
            Ok(()) => {
                assert!(start.elapsed() < DEADLINE, "fdatasync never failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => break e,
        }
    };
    eprintln!("update while fdatasync fails: {failed}");
    let status = loop {
        if let Some(status) = p.children[0].as_mut().unwrap().try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "the node did not stop after EIO"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    drop(tracer);
    p.children[0] = None;
    let stderr = p.stderr_of(0);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("tlog"),
        "the error names the tlog:\n{stderr}"
    );
    eprintln!("node stopped: {}", stderr.lines().last().unwrap_or(""));
    p.spawn(0);
    wait_for_master(&c, &p).await;
    for k in 0..10u32 {
        assert_eq!(c.get(format!("d{k}").as_bytes()).await.unwrap(), b"v");
    }
}
