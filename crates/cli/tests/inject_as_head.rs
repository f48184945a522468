//! `--inject-as-head FILE NODE -config CFG` on real processes: a slave
//! that was down is given a backup made (`--backup-db`) from another slave
//! after it stopped, newer than its own store and beyond the end of its
//! tlog: its tlog is rebased on the backup's last entry, it starts from the
//! backup and catches up the rest from its peers, ending with every key.
//! Refused, naming why: a running node, a backup not newer than the store
//! (unless `--force`).

mod common;

use client::Consistency;
use common::*;

/// A `--backup-db` of node `from` in the test's directory.
fn backup_of(p: &Processes, from: usize) -> std::path::PathBuf {
    let backup = p.dir.path().join("backup.db");
    let file = backup.to_str().expect("utf-8 path");
    let (ip, port) = p.client_addresses[from].rsplit_once(':').expect("ip:port");
    let (ok, out, err) = arakoon(&["--backup-db", &p.cluster_id, ip, port, file]);
    assert!(ok, "{out}{err}");
    backup
}

/// Node `n` (read without a guarantee) holds `key_k` = `value_k` for every
/// `k` in `keys`.
async fn assert_every_key(c: &client::Client, p: &Processes, n: usize, keys: std::ops::Range<u32>) {
    let node = c
        .node(&p.names[n])
        .expect("a node")
        .with_consistency(Consistency::NoGuarantee);
    for k in keys {
        let key = format!("key_{k:04}");
        let value = node.get(key.as_bytes()).await.expect("every key");
        assert_eq!(
            value,
            format!("value_{k}").as_bytes(),
            "{key} on {}",
            p.names[n]
        );
    }
}

async fn set_keys(c: &client::Client, range: std::ops::Range<u32>) {
    for k in range {
        c.set(
            format!("key_{k:04}").as_bytes(),
            format!("value_{k}").as_bytes(),
        )
        .await
        .expect("set");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_slave_starts_from_an_injected_backup_and_catches_up() {
    let mut p = Processes::start_with(3, LEASE_SECS, "tlog_max_entries = 20\n");
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let m = index_of(&p, &master);
    let (s0, s1) = ((m + 1) % 3, (m + 2) % 3);
    set_keys(&c, 0..100).await;
    let i = txid(c.get_txid().await.expect("txid"));
    read_at_least(&c, &p, s1, i, b"key_0099").await;

    // s1 stops; the others go on; s0 makes the backup.
    p.kill(s1);
    set_keys(&c, 100..300).await;
    let i = txid(c.get_txid().await.expect("txid"));
    read_at_least(&c, &p, s0, i, b"key_0299").await;
    let backup = backup_of(&p, s0);
    let file = backup.to_str().expect("utf-8 path");

    let config = p.config_path.to_str().expect("utf-8 path").to_string();
    let inject = |node: usize, extra: &[&str]| {
        let mut args = vec![
            "--inject-as-head",
            file,
            p.names[node].as_str(),
            "-config",
            &config,
        ];
        args.extend_from_slice(extra);
        arakoon(&args)
    };
    // A running node is refused.
    let (ok, _, err) = inject(s0, &[]);
    assert!(!ok && err.contains("seems to be running"), "{err}");

    // The stopped slave: its tlog ends before the backup's last entry, so
    // it is rebased on it (the backup records that entry's term).
    let (ok, out, err) = inject(s1, &[]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("backup: i = "), "{out}");
    assert!(
        out.contains("tlog now starts after the backup's last entry"),
        "{out}"
    );
    assert!(backup.exists(), "the backup was copied, not moved");

    // Again: not an improvement, refused; --force does it.
    let (ok, _, err) = inject(s1, &[]);
    assert!(!ok && err.contains("not an improvement"), "{err}");
    let (ok, out, err) = inject(s1, &["--force"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("tlog is kept as it was"), "{out}");

    // It starts from the backup and catches up; it has every key, also
    // those written after the backup.
    p.spawn(s1);
    set_keys(&c, 300..320).await;
    let i = txid(c.get_txid().await.expect("txid"));
    read_at_least(&c, &p, s1, i, b"key_0319").await;
    assert_every_key(&c, &p, s1, 0..320).await;
    let log = p.stderr_of(s1);
    assert!(log.contains("master is"), "{log}");
}

/// A node that lost its data, given a backup: it still recovers its votes
/// from its peers (it has no hard state), and the backup spares it most of
/// the catch-up; it ends with every key and the cluster goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_node_given_a_backup_recovers_and_catches_up() {
    let mut p = Processes::start_with(3, LEASE_SECS, "tlog_max_entries = 20\n");
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let m = index_of(&p, &master);
    let (s0, s1) = ((m + 1) % 3, (m + 2) % 3);
    set_keys(&c, 0..200).await;
    let i = txid(c.get_txid().await.expect("txid"));
    read_at_least(&c, &p, s0, i, b"key_0199").await;
    let backup = backup_of(&p, s0);
    let file = backup.to_str().expect("utf-8 path");

    p.kill(s1);
    p.wipe(s1);
    let config = p.config_path.to_str().expect("utf-8 path").to_string();
    let (ok, out, err) = arakoon(&[
        "--inject-as-head",
        file,
        &p.names[s1],
        "-config",
        &config,
        "--inplace",
    ]);
    assert!(ok, "{out}{err}");
    assert!(!backup.exists(), "--inplace moves the backup");
    p.spawn(s1);
    set_keys(&c, 200..220).await;
    let i = txid(c.get_txid().await.expect("txid"));
    read_at_least(&c, &p, s1, i, b"key_0219").await;
    assert_every_key(&c, &p, s1, 0..220).await;
    // Recovered, then trusted: it counts toward commits again, so the
    // cluster commits with the master and it alone.
    let log = wait_for_log(&p, s1, "recovered: caught up").await;
    // It came up recovering, not trusted: the backup gave it state, not
    // the votes and acknowledgements its lost disk held.
    assert!(log.contains("standing=recovering"), "{log}");
    p.kill(s0);
    set_keys(&c, 220..230).await;
}

/// Every node lost its data: each is given the backup with
/// `--whole-cluster` and comes up trusted, so the cluster elects a master
/// and serves every key of the backup, and takes writes again. A node that
/// kept its hard state is refused the flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_cluster_is_restored_from_a_backup() {
    let mut p = Processes::start(3);
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let s0 = (index_of(&p, &master) + 1) % 3;
    set_keys(&c, 0..100).await;
    let i = txid(c.get_txid().await.expect("txid"));
    read_at_least(&c, &p, s0, i, b"key_0099").await;
    let backup = backup_of(&p, s0);
    let file = backup.to_str().expect("utf-8 path");

    let config = p.config_path.to_str().expect("utf-8 path").to_string();
    for n in 0..3 {
        p.kill(n);
    }
    // Not wiped yet: refused.
    let (ok, _, err) = arakoon(&[
        "--inject-as-head",
        file,
        &p.names[0],
        "-config",
        &config,
        "--whole-cluster",
    ]);
    assert!(!ok && err.contains("still has its hard state"), "{err}");
    for n in 0..3 {
        p.wipe(n);
        let (ok, out, err) = arakoon(&[
            "--inject-as-head",
            file,
            &p.names[n],
            "-config",
            &config,
            "--whole-cluster",
        ]);
        assert!(ok, "{out}{err}");
    }
    for n in 0..3 {
        p.spawn(n);
    }
    let c = p.client();
    wait_for_master(&c, &p).await;
    for k in 0..100 {
        let key = format!("key_{k:04}");
        assert_eq!(
            c.get(key.as_bytes())
                .await
                .expect("every key of the backup"),
            format!("value_{k}").as_bytes(),
            "{key}"
        );
    }
    set_keys(&c, 100..110).await;
    let i = txid(c.get_txid().await.expect("txid"));
    for n in 0..3 {
        read_at_least(&c, &p, n, i, b"key_0109").await;
    }
}
