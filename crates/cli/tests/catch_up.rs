//! Catch-up you can see, on real processes: a slave that was down while
//! the others took more than `replica::progress::BEHIND_THRESHOLD` entries
//! logs its catch-up (start, then rate and time left, then the end), and
//! the master logs the same peer catching up; both through
//! `crates/replica/src/progress.rs`.

mod common;

use common::*;

/// More entries than the reporting threshold (1,000): one client writing
/// one key at a time makes one entry per write.
const WRITES: usize = 1_200;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_back_from_the_dead_logs_its_catch_up_and_so_does_the_master() {
    let mut p = Processes::start(3);
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let m = index_of(&p, &master);
    let slave = (m + 1) % 3;
    p.kill(slave);
    for k in 0..WRITES {
        c.set(format!("k{k:05}").as_bytes(), b"v").await.unwrap();
    }
    let last = txid(c.get_txid().await.unwrap());
    p.spawn(slave);
    let slave_log = wait_for_log(&p, slave, "caught up: this node took").await;
    assert!(
        slave_log.contains("catching up: this node is"),
        "the start of the catch-up is logged:\n{slave_log}"
    );
    let master_log = wait_for_log(&p, m, &format!("caught up: peer {slave} took")).await;
    assert!(
        master_log.contains(&format!("catching up: peer {slave} is")),
        "the master logs the peer's catch-up:\n{master_log}"
    );
    for (who, log) in [("slave", &slave_log), ("master", &master_log)] {
        for line in log
            .lines()
            .filter(|l| l.contains("catching up") || l.contains("caught up"))
        {
            eprintln!("{who}: {line}");
        }
    }
    // And it really caught up: the last write is there.
    read_at_least(
        &c,
        &p,
        slave,
        last,
        format!("k{:05}", WRITES - 1).as_bytes(),
    )
    .await;
}
