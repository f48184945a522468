//! `arakoon bench` end to end: real nodes of the node crate, in process, on
//! loopback ports, driven through the bench's command line; and a scripted
//! fake node refusing every update (the run must fail, loudly).

use bench::ScenarioReport;
use client::fake_node::{Action, FakeNode};
use node::{Listeners, Node};
use protocol::{Command, ResultCode};
use std::net::TcpListener;
use std::path::Path;

const CLUSTER_ID: &str = "benchtest";

fn free_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind a loopback port")
}

fn port(l: &TcpListener) -> u16 {
    l.local_addr().expect("bound").port()
}

/// Starts an `n`-node cluster in `dir` and writes its config to
/// `dir/cfg.ini`.
async fn start_cluster(dir: &Path, n: usize) -> Vec<Node> {
    let names: Vec<String> = (0..n).map(|i| format!("node_{i}")).collect();
    let mut text = format!(
        "[global]\ncluster = {}\ncluster_id = {CLUSTER_ID}\nlease_period = 1\n\n",
        names.join(", ")
    );
    let mut listeners = Vec::new();
    for name in &names {
        let (client, messaging) = (free_listener(), free_listener());
        text.push_str(&format!(
            "[{name}]\nip = 127.0.0.1\nclient_port = {}\nmessaging_port = {}\nhome = {}\nlog_level = warning\n\n",
            port(&client),
            port(&messaging),
            dir.join(name).display()
        ));
        listeners.push((client, messaging));
    }
    std::fs::write(dir.join("cfg.ini"), &text).expect("write the config");
    let config = config::parse(&text).expect("test config").config;
    let mut nodes = Vec::new();
    for (name, (client, messaging)) in names.iter().zip(listeners) {
        // Field by field: the node crate may add listeners (all optional).
        #[allow(clippy::field_reassign_with_default)]
        let listeners = {
            let mut listeners = Listeners::default();
            listeners.client = Some(client);
            listeners.messaging = Some(messaging);
            listeners
        };
        let node = Node::start(config.clone(), name, listeners)
            .await
            .unwrap_or_else(|e| panic!("start {name} in {}: {e}", dir.display()));
        nodes.push(node);
    }
    nodes
}

/// Runs `arakoon bench ARGS` on a thread of its own (it builds its own
/// runtime); its status, stdout and stderr.
async fn bench(args: Vec<String>) -> (i32, String, String) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = bench::run(&args, &mut out, &mut err);
        let _ = tx.send((
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        ));
    });
    rx.await.expect("the bench thread answers")
}

fn args(config: &Path, rest: &str) -> Vec<String> {
    let mut args = vec!["-config".to_string(), config.display().to_string()];
    args.extend(rest.split_whitespace().map(str::to_string));
    args
}

fn reports(stdout: &str) -> Vec<ScenarioReport> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// Every scenario against a one-node cluster: one JSON object each, with
/// every operation counted and none failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_scenario_on_one_node() {
    let dir = tempfile::tempdir().expect("temp dir");
    let nodes = start_cluster(dir.path(), 1).await;
    let config = dir.path().join("cfg.ini");
    let (code, out, err) = bench(args(
        &config,
        "--scenario set,get,range,sequence,mixed --clients 4 --ops 200 --keys 1000 --json",
    ))
    .await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let reports = reports(&out);
    let names: Vec<&str> = reports.iter().map(|r| r.scenario.as_str()).collect();
    assert_eq!(names, ["set", "get", "range", "sequence", "mixed"]);
    for r in &reports {
        assert_eq!(r.target, "arakoon");
        assert_eq!(r.consistency, "consistent");
        assert_eq!((r.ops, r.ok, r.errors), (200, 200, 0), "{r:?}");
        assert_eq!(r.clients, 4);
        assert_eq!((r.value_size, r.key_size, r.keys), (100, 16, 1000));
        assert!(r.ops_per_sec > 0.0 && r.seconds > 0.0, "{r:?}");
        let l = r.latency_us;
        assert!(
            0 < l.p50 && l.p50 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max,
            "{r:?}"
        );
        assert!(
            r.error_kinds.is_empty() && r.error_samples.is_empty(),
            "{r:?}"
        );
    }
    // The key space was filled before the reads.
    assert_eq!(reports[1].missing, 0, "{:?}", reports[1]);
    assert!(err.contains("filled 1000 keys"), "{err}");

    // Human output: one line per scenario.
    let (code, out, err) = bench(args(
        &config,
        "--scenario get --clients 2 --ops 50 --keys 1000 --no-fill",
    ))
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("get "), "{out}");
    assert!(out.contains("ops/s") && out.contains("p999"), "{out}");
    for node in nodes {
        node.stop().await.expect("graceful stop");
    }
}

/// Relaxed reads on a three-node cluster go to every node; `AtLeast(i)`
/// (the master's txid after the fill) never misses a filled key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_reads_on_three_nodes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let nodes = start_cluster(dir.path(), 3).await;
    let config = dir.path().join("cfg.ini");
    let (code, out, err) = bench(args(
        &config,
        "--scenario set,get --clients 3 --ops 150 --keys 500 --consistency at-least --json",
    ))
    .await;
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let reports = reports(&out);
    assert_eq!(reports.len(), 2);
    for r in &reports {
        assert_eq!(r.consistency, "at-least");
        assert_eq!((r.ops, r.ok, r.errors), (150, 150, 0), "{r:?}");
    }
    assert_eq!(reports[1].missing, 0, "{:?}", reports[1]);
    for node in nodes {
        node.stop().await.expect("graceful stop");
    }
}

/// A node that refuses every update: each failure is counted by kind with
/// samples, and the run exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_where_every_op_fails_exits_non_zero() {
    let node = FakeNode::start("n0", CLUSTER_ID).await.expect("fake node");
    node.set_master(Some("n0"));
    const OPS: u64 = 20;
    for _ in 0..OPS {
        node.script(
            Command::Set,
            Action::error(ResultCode::ReadOnly, "read only"),
        );
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("cfg.ini");
    let text = format!(
        "[global]\ncluster = n0\ncluster_id = {CLUSTER_ID}\n\n[n0]\nip = 127.0.0.1\nclient_port = {}\nmessaging_port = 1\nhome = {}\nlog_level = warning\n",
        node.port(),
        dir.path().display()
    );
    std::fs::write(&config, text).expect("write the config");
    let (code, out, err) = bench(args(
        &config,
        &format!("--scenario set --clients 2 --ops {OPS} --json"),
    ))
    .await;
    assert_eq!(code, 1, "stdout: {out}\nstderr: {err}");
    let reports = reports(&out);
    assert_eq!(reports.len(), 1, "stdout: {out}\nstderr: {err}");
    let r = &reports[0];
    assert_eq!((r.ops, r.ok, r.errors), (OPS, 0, OPS), "{r:?}");
    assert_eq!(r.error_kinds.len(), 1, "{r:?}");
    let (kind, count) = r.error_kinds.iter().next().expect("one kind");
    assert!(kind.starts_with("server E_READ_ONLY"), "{kind}");
    assert_eq!(*count, OPS);
    assert!(!r.error_samples.is_empty());
    assert!(err.contains("set: every operation failed"), "{err}");
}
