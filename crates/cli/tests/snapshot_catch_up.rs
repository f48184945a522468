//! Snapshot catch-up on real processes (issue 11): a node whose missing
//! entries were collapsed away on every peer gets a store snapshot over the
//! messaging port, installs it, and takes the tail from the tlog, also when
//! it is killed half-way through receiving it, and while clients keep
//! writing. Every node's full range scan compares equal afterwards. These
//! are also Arakoon's catch-up failures that must not happen here: a new or
//! lagging node that never catches up while the cluster keeps writing
//! (openvstorage/arakoon#191, #204), tlog numbering that looks out of
//! order after a long absence (#67, #84), a node killed after a catch-up
//! whose store is behind its tlog ("store counter too low", #137: it
//! replays from the store's index), a store ahead of its tlogs after
//! a collapse (#101; the crash between install and rebase is
//! `crates/replica/tests/reconcile.rs`).

mod common;

use client::{Client, Consistency};
use common::*;
use protocol::{KeyRange, Update};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Small segments: a collapse removes most of the tlog.
const GLOBAL: &str = "tlog_max_entries = 50\n";

fn key(k: usize) -> Vec<u8> {
    format!("key{k:07}").into_bytes()
}

/// `sequences` sequences of 100 sets of `value_bytes` each, from one client.
async fn fill(c: &Client, first: usize, sequences: usize, value_bytes: usize) {
    for s in 0..sequences {
        let updates: Vec<Update> = (0..100)
            .map(|j| Update::Set {
                key: key(first + s * 100 + j),
                value: vec![b'a' + (j % 26) as u8; value_bytes],
            })
            .collect();
        c.sequence(updates).await.expect("a sequence of sets");
    }
}

/// `arakoon --collapse-remote CLUSTER_ID IP PORT 1` against node `i`.
fn collapse(p: &Processes, i: usize) {
    let out = Command::new(env!("CARGO_BIN_EXE_arakoon"))
        .args(["--collapse-remote", &p.cluster_id, "127.0.0.1"])
        .arg(p.client_port(i).to_string())
        .arg("1")
        .output()
        .expect("run arakoon --collapse-remote");
    assert!(
        out.status.success(),
        "collapse of {}: {}{}",
        p.names[i],
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every pair node `i` holds, read `AtLeast(index)`, page by page.
async fn scan(c: &Client, p: &Processes, i: usize, index: i64) -> Vec<(Vec<u8>, Vec<u8>)> {
    read_at_least(c, p, i, index, &key(0)).await;
    let node = c
        .node(&p.names[i])
        .expect("a node")
        .with_consistency(Consistency::AtLeast(index));
    let mut all = Vec::new();
    let mut from: Option<Vec<u8>> = None;
    loop {
        let range = KeyRange {
            first: from.clone(),
            first_inclusive: false,
            last: None,
            last_inclusive: true,
            max: 2_000,
        };
        let page = node.range_entries(&range).await.expect("range_entries");
        let Some((last, _)) = page.last() else {
            return all;
        };
        from = Some(last.clone());
        all.extend(page);
    }
}

async fn assert_all_equal(c: &Client, p: &Processes, index: i64, at_least_keys: usize) {
    let reference = scan(c, p, 0, index).await;
    assert!(
        reference.len() >= at_least_keys,
        "{} holds {} keys, {at_least_keys} were written",
        p.names[0],
        reference.len()
    );
    for i in 1..p.names.len() {
        let other = scan(c, p, i, index).await;
        assert_eq!(
            other.len(),
            reference.len(),
            "{} and {} hold different key counts",
            p.names[i],
            p.names[0]
        );
        assert!(
            other == reference,
            "{} and {} differ",
            p.names[i],
            p.names[0]
        );
    }
}

fn tlog_segments(p: &Processes, i: usize) -> usize {
    let dir = p.home(i);
    std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.ends_with(".tlog") || name.ends_with(".tlz")
                })
                .count()
        })
        .unwrap_or(0)
}

fn scratch_file(p: &Processes, i: usize) -> PathBuf {
    p.home(i).join(format!("{}.db.incoming", p.names[i]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_behind_a_collapse_catches_up_from_a_snapshot_even_when_killed_mid_transfer() {
    // No automatic collapse: first the tlog catch-up, then a collapse by hand.
    let mut p = Processes::start_with_config(3, LEASE_SECS, GLOBAL, "auto_collapse_keep = 0\n");
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let m = index_of(&p, &master);
    let s = (m + 1) % 3;
    let o = (m + 2) % 3;
    // Down while 100,000 updates (1,000 entries) of 400-byte values are
    // written (~45 MB of store): back, it catches up from the tlog.
    p.kill(s);
    fill(&c, 0, 1_000, 400).await;
    let last = txid(c.get_txid().await.expect("txid"));
    p.spawn(s);
    read_at_least(&c, &p, s, last, &key(99_999)).await;
    assert!(
        !p.stderr_of(s).contains("receiving a store snapshot"),
        "nothing was collapsed: the tlog suffices"
    );
    // Down again while more is written (300 entries: more segments than a
    // collapse holds back for a peer a little behind), and the others
    // collapse: back, it needs a snapshot.
    p.kill(s);
    fill(&c, 100_000, 300, 400).await;
    let last = txid(c.get_txid().await.expect("txid"));
    let before = tlog_segments(&p, m);
    collapse(&p, m);
    collapse(&p, o);
    let after = tlog_segments(&p, m);
    assert!(
        after < before,
        "the master's tlog directory did not shrink ({before} -> {after} files)"
    );

    // Started again, the slave gets a snapshot; it is killed while the
    // snapshot arrives (the scratch file exists).
    p.spawn(s);
    let scratch = scratch_file(&p, s);
    let started = Instant::now();
    while !scratch.exists() {
        assert!(
            started.elapsed() < DEADLINE,
            "no snapshot transfer began:\n{}",
            p.stderr_of(s)
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    p.kill(s);
    let log = p.stderr_of(s);
    assert!(
        log.contains("receiving a store snapshot"),
        "the slave logs the transfer:\n{log}"
    );
    let installed_before_kill = log.contains("store snapshot installed");
    eprintln!(
        "killed {} the install",
        if installed_before_kill {
            "after"
        } else {
            "before"
        }
    );

    // Restarted: the half transfer is thrown away, a new one completes.
    p.spawn(s);
    let log = wait_for_log(&p, s, "store snapshot installed").await;
    if !installed_before_kill {
        assert!(
            log.contains("removed the scratch file of a snapshot transfer that did not finish"),
            "the restarted slave removes the half transfer:\n{log}"
        );
    }
    assert_all_equal(&c, &p, last, 130_000).await;
    // The master saw it done.
    wait_for_log(&p, m, "snapshot installed by the slave").await;
    assert!(
        !scratch.exists(),
        "the scratch file is removed after the install"
    );
    // Its tlog now starts past the snapshot (a new generation): it starts
    // again without complaint about segment numbering (Arakoon's #67, #84)
    // and serves everything.
    p.kill(s);
    p.spawn(s);
    read_at_least(&c, &p, s, last, &key(129_999)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_node_joins_a_collapsed_cluster_while_64_clients_write() {
    let mut p = Processes::start_with(3, LEASE_SECS, GLOBAL);
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let m = index_of(&p, &master);
    let s = (m + 1) % 3;
    let o = (m + 2) % 3;
    fill(&c, 0, 300, 100).await;
    p.wipe(s);
    fill(&c, 30_000, 300, 100).await;
    collapse(&p, m);
    collapse(&p, o);

    // 64 clients write while the empty node joins.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..64 {
        let c = c.clone();
        let stop = Arc::clone(&stop);
        let written = Arc::clone(&written);
        writers.push(tokio::spawn(async move {
            let mut k = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w{w:02}-{k:07}");
                c.set(key.as_bytes(), b"while joining")
                    .await
                    .expect("a write while the node joins");
                written.fetch_add(1, Ordering::Relaxed);
                k += 1;
            }
        }));
    }
    let joined_at = Instant::now();
    p.spawn(s);
    wait_for_log(&p, s, "store snapshot installed").await;
    // Caught up with the writers still going: it holds an index the master
    // reached after the install.
    let during = txid(c.get_txid().await.expect("txid"));
    read_at_least(&c, &p, s, during, &key(0)).await;
    let joined = joined_at.elapsed();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.expect("a writer");
    }
    let writes = written.load(Ordering::Relaxed);
    eprintln!("the empty node joined in {joined:?} while 64 clients wrote {writes} keys");
    assert!(writes > 0);
    let last = txid(c.get_txid().await.expect("txid"));
    assert_all_equal(&c, &p, last, 60_000).await;
}
