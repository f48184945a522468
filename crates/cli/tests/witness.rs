//! Arakoon 1.9's witness nodes (`witness = true` in a voter's section) on
//! real processes: the two-datacenter layout, two full nodes and a witness
//! at a third site. The witness votes and acknowledges, so the cluster
//! goes on writing with one full node down; it is never master, not after
//! a failover, not when `--drop-master` is asked of the master.

mod common;

use common::*;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_witness_votes_but_is_never_master() {
    let mut p = Processes::start_with_node_extras(1, "", &["", "", "witness = true"]);
    let witness = p.names[2].clone();
    let c = p.client();
    let first = wait_for_master(&c, &p).await;
    assert_ne!(first, witness, "the witness was elected");
    c.set(b"before", b"1")
        .await
        .expect("a write with every node up");

    // --drop-master: mastership goes to the other full node.
    let (host, port) = p.client_addresses[index_of(&p, &first)]
        .rsplit_once(':')
        .map(|(h, port)| (h.to_string(), port.to_string()))
        .expect("host:port");
    let (ok, out, err) = p.cli(&["--drop-master", &p.cluster_id, &host, &port]);
    assert!(ok, "drop-master: {out}{err}");
    // (A new client: `c` remembers the master it found.)
    let c = p.client();
    let second = wait_for_master(&c, &p).await;
    assert_ne!(second, witness, "mastership was handed to the witness");
    assert_ne!(
        second,
        first,
        "drop-master did not hand mastership over: {out}{err}\n{}\n{}\n{}",
        p.stderr_of(0),
        p.stderr_of(1),
        p.stderr_of(2)
    );

    // The master killed: the remaining full node is elected with the
    // witness's vote; the witness is never named master meanwhile.
    p.kill(index_of(&p, &second));
    let started = std::time::Instant::now();
    let third = loop {
        for name in [&first, &witness] {
            let n = c.node(name).expect("a node");
            if let Ok(Some(m)) = n.who_master().await {
                assert_ne!(m, witness, "{name} names the witness master");
            }
        }
        // A new client each time: one that found a master keeps it.
        let c = p.client().with_request_timeout(Duration::from_millis(500));
        if let Ok(m) = c.master().await {
            if m != second && c.nop().await.is_ok() {
                break m;
            }
        }
        assert!(
            started.elapsed() < DEADLINE,
            "no new master after the kill:\n{}\n{}",
            p.stderr_of(index_of(&p, &first)),
            p.stderr_of(2)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(third, first, "the one full node left is master");

    // One full node and the witness: a quorum that commits.
    c.set(b"after", b"2")
        .await
        .expect("a write with the witness's vote");
    assert_eq!(c.get(b"before").await.expect("before"), b"1");
    assert_eq!(c.get(b"after").await.expect("after"), b"2");

    // The full node back: it catches up; the witness has stayed a slave.
    p.spawn(index_of(&p, &second));
    let i = txid(c.get_txid().await.expect("txid"));
    read_at_least(&c, &p, index_of(&p, &second), i, b"after").await;
    let w = c.node(&witness).expect("the witness");
    assert_eq!(
        w.who_master()
            .await
            .expect("who_master on the witness")
            .as_deref(),
        Some(first.as_str())
    );
}
