//! A node whose tlog is damaged (a byte flipped in the middle of its
//! segment, as a failing disk would) refuses to start, naming the file and
//! the offset; the one-command recovery of `docs/operations.md` (wipe the
//! home, start it) brings it back with everything (issue 11).

mod common;

use common::*;
use std::io::{Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_tlog_is_refused_by_name_and_the_wipe_recovery_brings_the_node_back() {
    let mut p = Processes::start(3);
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let s = (index_of(&p, &master) + 1) % 3;
    for k in 0..300 {
        c.set(format!("k{k:04}").as_bytes(), b"value")
            .await
            .expect("set");
    }
    let last = txid(c.get_txid().await.expect("txid"));
    read_at_least(&c, &p, s, last, b"k0299").await;
    p.kill(s);

    // Flip a byte inside the frames of the slave's active segment, with
    // valid frames after it (not a torn tail: damage).
    let dir = p.home(s);
    let segment = std::fs::read_dir(&dir)
        .expect("the tlog directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|path| path.extension().is_some_and(|e| e == "tlog"))
        .expect("an active segment");
    let bytes = std::fs::read(&segment).expect("read the segment");
    // The frames end before the preallocated zeros.
    let frames_end = bytes.iter().rposition(|b| *b != 0).expect("frames") as u64;
    let offset = frames_end / 2;
    assert!(offset > 100, "frames up to {frames_end} only");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .expect("open the segment");
        f.seek(SeekFrom::Start(offset)).expect("seek");
        f.write_all(&[!bytes[offset as usize]]).expect("flip");
        f.sync_all().expect("sync");
    }

    // It refuses to start, and says which file and where.
    p.spawn(s);
    let started = Instant::now();
    let status = loop {
        let child = p.children[s].as_mut().expect("spawned");
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "a node with a damaged tlog kept running:\n{}",
            p.stderr_of(s)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    p.children[s] = None;
    assert!(!status.success(), "it must not start on a damaged tlog");
    let log = p.stderr_of(s);
    let file_name = segment
        .file_name()
        .and_then(|n| n.to_str())
        .expect("a name");
    assert!(
        log.contains(file_name) && log.contains("at byte"),
        "the refusal names the file and the byte offset:\n{log}"
    );

    // The runbook: wipe the home, start it; it recovers from its peers.
    p.wipe(s);
    p.spawn(s);
    read_at_least(&c, &p, s, last, b"k0299").await;
    c.set(b"after", b"recovery").await.expect("writes go on");
}
