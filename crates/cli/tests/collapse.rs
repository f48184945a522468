//! Tlog collapse on real processes (issue 11): `--collapse-remote` under
//! write load (the tlog directory shrinks, no client sees an error, the
//! writers' latency during the collapse is printed next to without), a
//! slave that was down during the collapse catches up from the kept
//! entries; the automatic policy (`auto_collapse_keep`) keeps every node's
//! tlog directory bounded under sustained writes; `--collapse-local` on a
//! stopped node, which then starts and serves.

mod common;

use client::{Client, Consistency};
use common::*;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The segment files (`.tlog`, `.tlz`) in node `i`'s tlog directory.
fn segment_files(p: &Processes, i: usize) -> usize {
    count_segments(&p.home(i))
}

fn count_segments(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.ends_with(".tlog") || name.ends_with(".tlz")
                })
                .count()
        })
        .unwrap_or(0)
}

/// The first index of the oldest segment in node `i`'s tlog directory
/// (segment files are named `<generation:08>-<first_index:020>.tlog|.tlz`).
fn oldest_index(p: &Processes, i: usize) -> u64 {
    std::fs::read_dir(p.home(i))
        .map(|d| {
            d.flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let stem = name.strip_suffix(".tlog").or(name.strip_suffix(".tlz"))?;
                    stem.split_once('-')?.1.parse::<u64>().ok()
                })
                .min()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Each write's start (since the test's epoch) and latency.
type Samples = Arc<Mutex<Vec<(Duration, Duration)>>>;

/// `writers` clients writing distinct keys until `stop`; every failure is
/// recorded (a client must see none).
fn start_writers(
    p: &Processes,
    writers: usize,
    epoch: Instant,
    stop: Arc<AtomicBool>,
    samples: Samples,
    errors: Arc<Mutex<Vec<String>>>,
) -> Vec<tokio::task::JoinHandle<u64>> {
    (0..writers)
        .map(|w| {
            let c: Client = p.client();
            let (stop, samples, errors) = (stop.clone(), samples.clone(), errors.clone());
            tokio::spawn(async move {
                let mut k = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let key = format!("load-{w}-{k:07}");
                    match c.set(key.as_bytes(), &[b'x'; 100]).await {
                        Ok(()) => samples
                            .lock()
                            .unwrap()
                            .push((started - epoch, started.elapsed())),
                        Err(e) => errors.lock().unwrap().push(format!("{key}: {e}")),
                    }
                    k += 1;
                }
                k
            })
        })
        .collect()
}

/// p50 and p99 (µs) of the latencies of writes started in `[from, to)`.
fn percentiles(samples: &Samples, from: Duration, to: Duration) -> (usize, u128, u128) {
    let mut v: Vec<u128> = samples
        .lock()
        .unwrap()
        .iter()
        .filter(|(at, _)| *at >= from && *at < to)
        .map(|(_, took)| took.as_micros())
        .collect();
    v.sort_unstable();
    if v.is_empty() {
        return (0, 0, 0);
    }
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (v.len(), at(0.50), at(0.99))
}

fn arakoon(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_arakoon"))
        .args(args)
        .output()
        .expect("run arakoon");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn port_of(p: &Processes, i: usize) -> String {
    p.client_addresses[i]
        .rsplit(':')
        .next()
        .expect("ip:port")
        .to_string()
}

/// `--collapse-remote` on the master and a slave while 4 clients write;
/// the third node is down meanwhile, only a little behind, and catches up
/// from the kept entries when it returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collapse_remote_under_load_shrinks_the_tlog_and_a_slave_down_meanwhile_catches_up() {
    // Keep 8: 8 full segments of 50 entries, and 8 more for a peer a
    // little behind, cover what the writers add between the slave's kill
    // and the master's plan (800 entries).
    const KEEP: &str = "8";
    // Small segments, so that a collapse has many to remove; no automatic
    // collapse, so that the requested one does the work.
    let mut p = Processes::start_with_config(
        3,
        LEASE_SECS,
        "tlog_max_entries = 50",
        "auto_collapse_keep = 0",
    );
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let m = index_of(&p, &master);
    let (down, other) = ((m + 1) % 3, (m + 2) % 3);
    // History to collapse: 2,000 entries (one client, one entry per set).
    for k in 0..2_000 {
        c.set(format!("old-{k:05}").as_bytes(), b"v").await.unwrap();
    }
    let history_end = common::txid(c.get_txid().await.unwrap());
    let epoch = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let samples: Samples = Arc::default();
    let errors: Arc<Mutex<Vec<String>>> = Arc::default();
    let writers = start_writers(&p, 4, epoch, stop.clone(), samples.clone(), errors.clone());
    // Without a collapse: 1.5 s of load, and at least 1,000 writes beyond
    // the history (what the kept segments and those held for the slave
    // cover, 800 entries at most, must lie above the history whatever the
    // machine's speed).
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let waited = Instant::now();
    loop {
        c.nop().await.unwrap();
        let i = common::txid(c.get_txid().await.unwrap());
        if i >= history_end + 1_000 {
            break;
        }
        assert!(
            waited.elapsed() < common::DEADLINE,
            "the tlog reached only {i}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let baseline_end = epoch.elapsed();

    // A slave goes down just before the collapse: it is a little behind.
    p.kill(down);
    let before = (segment_files(&p, m), segment_files(&p, other));
    let collapse_start = epoch.elapsed();
    let mut outputs = Vec::new();
    for i in [m, other] {
        let port = port_of(&p, i);
        let (cluster_id, home) = (p.cluster_id.clone(), p.home(i));
        let started = Instant::now();
        let out = tokio::task::spawn_blocking(move || {
            arakoon(&["--collapse-remote", &cluster_id, "127.0.0.1", &port, KEEP])
        })
        .await
        .unwrap();
        eprintln!(
            "--collapse-remote {} {KEEP} took {:?} (tlog dir {}):\n{}{}",
            p.names[i],
            started.elapsed(),
            home.display(),
            out.1,
            out.2
        );
        outputs.push(out);
    }
    let collapse_end = epoch.elapsed();
    // Load goes on a little after the collapse.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut written = 0;
    for w in writers {
        written += w.await.unwrap();
    }
    let after = (segment_files(&p, m), segment_files(&p, other));
    let errors = errors.lock().unwrap().clone();
    assert!(errors.is_empty(), "clients saw errors: {errors:?}");

    for (code, stdout, stderr) in &outputs {
        assert_eq!(*code, 0, "--collapse-remote failed:\n{stdout}{stderr}");
        assert!(stdout.contains("collapsed 1 of "), "{stdout}");
        assert!(stdout.contains("tlogs collapsed"), "{stdout}");
    }
    eprintln!(
        "segment files before/after: master {} -> {}, slave {} -> {}",
        before.0, after.0, before.1, after.1
    );
    assert!(before.0 > 40 && before.1 > 40, "{before:?}");
    // Kept: 8 full segments and the active one, plus what filled since;
    // the 2,000 entries of history are gone from both.
    assert!(
        after.0 < before.0 && after.1 < before.1,
        "{before:?} -> {after:?}"
    );
    for i in [m, other] {
        let oldest = oldest_index(&p, i);
        assert!(
            oldest > history_end as u64,
            "{}: tlog starts at {oldest}, in the history (up to {history_end})",
            p.names[i]
        );
    }

    let (n0, p50_0, p99_0) = percentiles(&samples, Duration::ZERO, baseline_end);
    let (n1, p50_1, p99_1) = percentiles(&samples, collapse_start, collapse_end);
    eprintln!(
        "writes of 4 clients: without collapse {n0} writes, p50 {p50_0} µs, p99 {p99_0} µs; \
         during the two collapses ({:?}) {n1} writes, p50 {p50_1} µs, p99 {p99_1} µs; {written} in all",
        collapse_end - collapse_start
    );
    assert!(n0 > 0 && n1 > 0, "writes measured in both windows");

    // The node down during the collapse comes back and catches up from
    // the entries the others kept (no snapshot needed).
    c.set(b"last", b"write").await.unwrap();
    let last = txid(c.get_txid().await.unwrap());
    p.spawn(down);
    read_at_least(&c, &p, down, last, b"last").await;
    let node = c
        .node(&p.names[down])
        .unwrap()
        .with_consistency(Consistency::AtLeast(last));
    assert_eq!(node.get(b"old-00000").await.unwrap(), b"v");
    assert_eq!(node.get(b"load-0-0000000").await.unwrap(), [b'x'; 100]);
    let master_log = p.stderr_of(m);
    assert!(
        !master_log.contains("sending a store snapshot"),
        "the returning slave needed no snapshot:\n{master_log}"
    );
    assert!(master_log.contains("collapse: removing"), "{master_log}");

    // Arakoon's refusals: n < 1 (the node's own check, through the client
    // library), and the CLI's before anything is sent.
    let e = c
        .node(&master)
        .unwrap()
        .collapse_tlogs(0, |_, _, _| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("0 is not acceptable"), "{e}");
    let (code, _, stderr) = arakoon(&[
        "--collapse-remote",
        &p.cluster_id,
        "127.0.0.1",
        &port_of(&p, m),
        "0",
    ]);
    assert_eq!(code, 2, "{stderr}");
}

/// `auto_collapse_keep = 2` with 100-entry segments: under sustained writes
/// no node's tlog directory ever holds more than the README's bound; then
/// `--collapse-local` on a stopped node (refused while it runs), which
/// starts again, catches up and serves as a voter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_automatic_policy_bounds_the_tlog_and_collapse_local_works_on_a_stopped_node() {
    const KEEP: usize = 2;
    let mut p = Processes::start_with_config(
        3,
        LEASE_SECS,
        "tlog_max_entries = 100",
        &format!("auto_collapse_keep = {KEEP}"),
    );
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let m = index_of(&p, &master);
    // One client: one entry per write, 4,000 entries = 40 segments.
    let writes = 4_000;
    let writer = {
        let c = p.client();
        tokio::spawn(async move {
            for k in 0..writes {
                c.set(format!("k{k:05}").as_bytes(), &[b'v'; 100])
                    .await
                    .unwrap();
            }
        })
    };
    let mut most = [0usize; 3];
    while !writer.is_finished() {
        for (i, most) in most.iter_mut().enumerate() {
            *most = (*most).max(segment_files(&p, i));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    writer.await.unwrap();
    // The README's bound: 2·n full segments (n kept, n more for a peer a
    // little behind) and the active one, plus what fills before the next
    // tick notices and what a slave has not applied yet (64 entries).
    let bound = 2 * KEEP + 1 + 2;
    eprintln!("most segment files seen per node: {most:?} (bound {bound}, keep {KEEP})");
    assert!(most.iter().all(|&n| n <= bound), "{most:?} > {bound}");
    assert!(
        most.iter().all(|&n| n > KEEP),
        "{most:?}: segments did fill"
    );
    for i in 0..3 {
        let log = p.stderr_of(i);
        assert!(
            log.contains("collapse: removed"),
            "{} collapsed by itself:\n{log}",
            p.names[i]
        );
    }

    // --collapse-local: refused while the node runs, then on the stopped node.
    let slave = (m + 1) % 3;
    let config = p.config_path.to_string_lossy().into_owned();
    let (code, _, stderr) =
        arakoon(&["--collapse-local", &p.names[slave], "1", "-config", &config]);
    assert_eq!(code, 1, "refused while running: {stderr}");
    assert!(stderr.contains("seems to be running"), "{stderr}");
    signal(&p, slave, "TERM");
    if let Some(mut child) = p.children[slave].take() {
        let _ = child.wait();
    }
    let before = segment_files(&p, slave);
    let (code, stdout, stderr) =
        arakoon(&["--collapse-local", &p.names[slave], "1", "-config", &config]);
    eprintln!("--collapse-local:\n{stdout}{stderr}");
    assert_eq!(code, 0, "{stdout}{stderr}");
    let after = segment_files(&p, slave);
    assert!(stdout.contains("keeping 1 tlogs"), "{stdout}");
    if before > 2 {
        assert!(stdout.contains("done: "), "{stdout}");
        assert!(after < before, "{before} -> {after}");
    }
    assert!(after <= 2, "1 full segment and the active one: {after}");

    // Started again: it catches up and serves everything, and the cluster
    // needs it once another node is gone.
    for k in 0..50 {
        c.set(format!("after-{k:02}").as_bytes(), b"a")
            .await
            .unwrap();
    }
    p.spawn(slave);
    let last = txid(c.get_txid().await.unwrap());
    read_at_least(&c, &p, slave, last, b"after-49").await;
    let node = c
        .node(&p.names[slave])
        .unwrap()
        .with_consistency(Consistency::AtLeast(last));
    assert_eq!(node.get(b"k00000").await.unwrap(), [b'v'; 100]);
    assert_eq!(
        node.get(format!("k{:05}", writes - 1).as_bytes())
            .await
            .unwrap(),
        [b'v'; 100]
    );
    let third = (m + 2) % 3;
    p.kill(third);
    wait_for_master(&c, &p).await;
    c.set(b"with", b"the collapsed node").await.unwrap();
    assert_eq!(c.get(b"with").await.unwrap(), b"the collapsed node");
}
