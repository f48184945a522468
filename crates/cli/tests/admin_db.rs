//! Arakoon's store admin commands on real processes, with Arakoon's flags:
//! `--backup-db` (get_db: a consistent copy from a slave, refused by the
//! master as Arakoon's), `--flush-store`, `--optimize-db`/`--defrag-db`
//! (refused: the master as Arakoon's, a slave naming the offline tool),
//! `--optimize-db-offline` on the copy, `--copy-db-to-head` (the collapse
//! keeping N, on a slave) and `copy_db_to_head 0` refused with Arakoon's
//! message.

mod common;

use client::{Error, ResultCode};
use common::*;

fn tlog_files(p: &Processes, i: usize) -> usize {
    std::fs::read_dir(p.home(i))
        .expect("the node's home")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(tlog::is_tlog_file))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_admin_commands_as_arakoon() {
    let p = Processes::start_with(3, LEASE_SECS, "tlog_max_entries = 10\n");
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let m = index_of(&p, &master);
    let s = (m + 1) % 3;
    for k in 0..200 {
        c.set(
            format!("key_{k:03}").as_bytes(),
            format!("value_{k}").as_bytes(),
        )
        .await
        .expect("set");
    }
    let i = txid(c.get_txid().await.expect("txid"));
    read_at_least(&c, &p, s, i, b"key_199").await;
    let addr = |n: usize| {
        let (ip, port) = p.client_addresses[n].rsplit_once(':').expect("ip:port");
        (ip.to_string(), port.to_string())
    };
    let (mip, mport) = addr(m);
    let (sip, sport) = addr(s);
    let cid = p.cluster_id.as_str();

    // get_db on the master: Arakoon's refusal; nothing written.
    let backup = p.dir.path().join("backup.db");
    let file = backup.to_str().expect("utf-8 path");
    let (ok, _, err) = arakoon(&["--backup-db", cid, &mip, &mport, file]);
    assert!(!ok);
    assert!(
        err.contains("Operation cannot be performed on master node"),
        "{err}"
    );
    assert!(!backup.exists());
    assert!(!p.dir.path().join("backup.db.part").exists());

    // flush_store, then get_db on a slave: a store file with every key.
    let (ok, out, err) = arakoon(&["--flush-store", cid, &sip, &sport]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = arakoon(&["--backup-db", cid, &sip, &sport, file]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("bytes written"), "{out}");
    assert!(!p.dir.path().join("backup.db.part").exists());
    let (ok, dump, err) = arakoon(&["--dump-store", file]);
    assert!(ok, "{err}");
    for k in 0..200 {
        assert!(
            dump.contains(&format!("key_{k:03}")),
            "key_{k:03} missing:\n{dump}"
        );
    }
    // The node removed its copy.
    let leftovers: Vec<_> = std::fs::read_dir(p.home(s))
        .expect("home")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".get_db."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // optimize_db / defrag_db: the master refuses as Arakoon's; a slave
    // names the offline tool, which works on the copy.
    for flag in ["--optimize-db", "--defrag-db"] {
        let (ok, _, err) = arakoon(&[flag, cid, &mip, &mport]);
        assert!(
            !ok && err.contains("Operation cannot be performed on master node"),
            "{err}"
        );
        let (ok, _, err) = arakoon(&[flag, cid, &sip, &sport]);
        assert!(!ok && err.contains("--optimize-db-offline"), "{err}");
    }
    let (ok, out, err) = arakoon(&["--optimize-db-offline", file]);
    assert!(ok && out.contains("compacted"), "{out}{err}");
    let (ok, out, err) = arakoon(&["--verify-db", file]);
    assert!(ok, "{out}{err}");

    // copy_db_to_head: 0 refused with Arakoon's message; on the slave, the
    // tlogs but the newest 2 go.
    let on_slave = c.node(&p.names[s]).expect("the slave");
    match on_slave.copy_db_to_head(0).await {
        Err(Error::Server { code, message, .. }) => {
            assert_eq!(code, ResultCode::UnknownFailure);
            assert_eq!(message, "tlogs_to_keep=0 is not acceptable");
        }
        other => panic!("copy_db_to_head 0: {other:?}"),
    }
    let before = tlog_files(&p, s);
    assert!(before > 5, "{before} tlog files: the test needs more");
    let (ok, out, err) = arakoon(&["--copy-db-to-head", cid, &sip, &sport, "2"]);
    assert!(ok, "{out}{err}");
    let after = tlog_files(&p, s);
    // Kept: the newest 2 full tlogs, up to 2 more held for a peer a little
    // behind, the active one (the collapse's bound, `docs/operations.md`).
    assert!(
        after <= 5 && after < before,
        "{before} tlog files before, {after} after"
    );
    let (ok, _, err) = arakoon(&["--copy-db-to-head", cid, &mip, &mport, "2"]);
    assert!(
        !ok && err.contains("Operation cannot be performed on master node"),
        "{err}"
    );

    // The cluster goes on.
    c.set(b"after", b"admin").await.expect("a write after");
}
