//! `arakoon --inspect-cluster -config CFG [-watch]` on real processes: one
//! row per node (role, term, tlog range, indices, lag, sizes), a node that
//! does not answer named as such, and the divergence check's verdict.

mod common;

use common::*;
use std::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspect_cluster_shows_every_node_and_checks_divergence() {
    let mut p = Processes::start(3);
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    for k in 0..50 {
        c.set(format!("k{k}").as_bytes(), b"v").await.expect("set");
    }
    let i = txid(c.get_txid().await.expect("txid"));
    for s in 0..3 {
        read_at_least(&c, &p, s, i, b"k49").await;
    }

    let (ok, out, err) = p.cli(&["--inspect-cluster"]);
    assert!(ok, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("node") && lines[0].contains("last collapse"),
        "{out}"
    );
    for name in &p.names {
        let row = lines
            .iter()
            .find(|l| l.starts_with(name.as_str()))
            .unwrap_or_else(|| panic!("no row for {name}:\n{out}"));
        let role = if *name == master { "master" } else { "slave" };
        assert!(row.contains(role) && row.contains("trusted"), "{row}");
    }
    assert!(out.contains("divergence: none"), "{out}");
    assert!(out.contains("stores: the same at i = "), "{out}");
    assert!(out.contains(" keys) on every node answering"), "{out}");

    // A node down: named, and the others still compared.
    let down = (index_of(&p, &master) + 1) % 3;
    p.kill(down);
    let (ok, out, err) = p.cli(&["--inspect-cluster"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("{}: no answer", p.names[down])),
        "{out}"
    );
    assert!(out.contains("divergence: none"), "{out}");

    // -watch redraws until stopped.
    let watched = Command::new("timeout")
        .args(["2.5", env!("CARGO_BIN_EXE_arakoon"), "-config"])
        .arg(&p.config_path)
        .args(["--inspect-cluster", "-watch"])
        .output()
        .expect("run timeout arakoon");
    let text = String::from_utf8_lossy(&watched.stdout);
    assert!(text.matches("divergence:").count() >= 2, "{text}");

    let (ok, _, err) = p.cli(&["--who-master", "-watch"]);
    assert!(!ok && err.contains("only for --inspect-cluster"), "{err}");
}
