//! Log rotation as logrotate (and Arakoon's operators) do it: rename the
//! node's log file, send SIGUSR1; the node goes on serving and writes its
//! next lines to a new file of the old name. Before, SIGUSR1 killed the
//! node (the default action of the signal).

mod common;

use common::*;
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_reopens_the_log_file_and_the_node_serves_on() {
    let p = Processes::start(1);
    let c = p.client();
    wait_for_master(&c, &p).await;
    c.set(b"before", b"rotation").await.unwrap();
    let log = p.home(0).join(format!("{}.log", p.names[0]));
    assert!(log.exists(), "the node logs to {}", log.display());
    let rotated = log.with_extension("log.1");
    std::fs::rename(&log, &rotated).unwrap();
    signal(&p, 0, "USR1");
    let started = Instant::now();
    while !std::fs::read_to_string(&log).is_ok_and(|l| l.contains("log file reopened")) {
        assert!(
            started.elapsed() < DEADLINE,
            "no new log file after SIGUSR1:\n{}",
            p.stderr_of(0)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The node still serves, and the old file kept what was written before.
    c.set(b"after", b"rotation").await.unwrap();
    assert_eq!(c.get(b"before").await.unwrap(), b"rotation".to_vec());
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(
        old.contains("store opened"),
        "the rotated file holds the start:\n{old}"
    );
}
