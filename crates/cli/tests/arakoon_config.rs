//! Arakoon 1.9's config, read as Arakoon reads it, on real processes
//! (`shared/spec/config.md`, "Where Arakoon reads a key differently"):
//! a learner given as a section with `learner = true` that `cluster` does
//! not list; lists split on spaces, tabs and commas; OCaml's integer forms;
//! every address of `ip` bound; `log_sinks` and a `log_config` section's
//! component levels; the keys without effect here warned about once.

mod common;

use client::ClientBuilder;
use common::{read_at_least, wait_for_log, wait_for_master, Processes};
use std::time::Duration;

/// A config written as an Arakoon user writes one.
/// Returns the cluster and arakoon_0's `messaging_port`.
fn arakoon_style_cluster() -> (Processes, u16) {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster_id = format!(
        "test_{:016x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()) << 32
    );
    let ports = node::loopback_ports(6).expect("free ports");
    let names = ["arakoon_0", "arakoon_1", "arakoon_learner"];
    let home = |n: &str| dir.path().join(n);
    let text = format!(
        "# written as for Arakoon 1.9\n\
         [global]\n\
         ; two voters, tab and space separated\n\
         cluster = arakoon_0\tarakoon_1\n\
         cluster_id = {cluster_id}\n\
         lease_period = 1\n\
         lcnum = 8192\n\
         tcp_keepalive_time = 0x1e\n\
         \n\
         [arakoon_0]\n\
         ip = 127.0.0.1, 127.0.0.2\n\
         client_port = {:#x}\n\
         messaging_port = {}\n\
         home = {}\n\
         log_level = info\n\
         log_config = verbose_paxos\n\
         log_sinks = file://{}/arakoon_0-own.log, console:\n\
         \n\
         [arakoon_1]\n\
         ip = 127.0.0.1\n\
         client_port = {}\n\
         messaging_port = {}\n\
         home = {}\n\
         log_level = info\n\
         log_config = verbose_paxos\n\
         log_sinks = file://{}/arakoon_1-own.log, console:\n\
         \n\
         [arakoon_learner]\n\
         ip = 127.0.0.1\n\
         client_port = {}\n\
         messaging_port = {}\n\
         home = {}\n\
         log_level = info\n\
         learner = true\n\
         laggy = false\n\
         \n\
         [verbose_paxos]\n\
         paxos = debug\n",
        ports[0],
        ports[1],
        home("arakoon_0").display(),
        dir.path().display(),
        ports[2],
        ports[3],
        home("arakoon_1").display(),
        dir.path().display(),
        ports[4],
        ports[5],
        home("arakoon_learner").display(),
    );
    let config_path = dir.path().join("arakoon.ini");
    std::fs::write(&config_path, &text).expect("write the config");
    eprintln!("cluster in {}:\n{text}", dir.path().display());
    let mut p = Processes {
        tmpfs: None,
        dir,
        cluster_id,
        config_path,
        names: names.iter().map(|s| s.to_string()).collect(),
        client_addresses: [ports[0], ports[2], ports[4]]
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect(),
        children: vec![None, None, None],
        net: None,
    };
    for i in 0..3 {
        p.spawn(i);
    }
    (p, ports[1])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_in_arakoons_own_form_runs_a_cluster_with_a_learner() {
    let (p, messaging_port_0) = arakoon_style_cluster();
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    assert_ne!(master, "arakoon_learner", "a learner never becomes master");
    c.set(b"k", b"v").await.expect("a write");
    let i = common::txid(c.get_txid().await.expect("txid"));

    // The learner, not listed in `cluster`, follows.
    read_at_least(&c, &p, 2, i, b"k").await;

    // arakoon_0 serves on its second address too.
    let second = ClientBuilder::new(&p.cluster_id)
        .node("arakoon_0", format!("127.0.0.2:{}", p.client_port(0)))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let v = second
        .node("arakoon_0")
        .expect("the node")
        .version()
        .await
        .expect("an answer on 127.0.0.2");
    assert_eq!((v.major, v.minor), (1, 9));
    // ... and takes a peer's messaging connection there too: a handshake
    // from arakoon_1 is accepted (status byte 0).
    let mut hello = Vec::new();
    hello.extend_from_slice(node::messaging::HANDSHAKE_MAGIC);
    hello.extend_from_slice(&node::messaging::MESSAGING_VERSION.to_le_bytes());
    for s in [p.cluster_id.as_str(), "arakoon_1", "arakoon_0"] {
        hello.extend_from_slice(&(s.len() as u32).to_le_bytes());
        hello.extend_from_slice(s.as_bytes());
    }
    let status = tokio::time::timeout(common::DEADLINE, async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut peer = tokio::net::TcpStream::connect(("127.0.0.2", messaging_port_0)).await?;
        peer.write_all(&hello).await?;
        peer.read_u8().await
    })
    .await
    .expect("a handshake answer in time")
    .expect("messaging_port bound on 127.0.0.2");
    assert_eq!(status, 0, "the handshake on the second address is accepted");

    // log_sinks: the node's own file (and the console); log_config:
    // paxos at debug (the master logs each commit), the rest at info
    // (the node's own debug lines stay out).
    let m = common::index_of(&p, &master);
    let own = p.dir.path().join(format!("{master}-own.log"));
    let started = std::time::Instant::now();
    let log = loop {
        let log = std::fs::read_to_string(&own).unwrap_or_default();
        if log.contains("committed") || started.elapsed() > common::DEADLINE {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(log.contains("node starting"), "{}:\n{log}", own.display());
    assert!(
        log.contains("DEBUG") && log.contains("committed"),
        "no paxos debug line in {}:\n{log}",
        own.display()
    );
    assert!(!log.contains("DEBUG node::"), "{log}");
    wait_for_log(&p, m, "node starting").await;
    // No default file beside the one named.
    assert!(!p.home(m).join(format!("{master}.log")).exists());

    // One warning per key without effect, naming it.
    let learner_log = wait_for_log(&p, 2, "[global] lcnum").await;
    assert_eq!(
        learner_log.matches("[global] lcnum").count(),
        1,
        "{learner_log}"
    );
    assert!(
        learner_log.contains("[arakoon_learner] laggy"),
        "{learner_log}"
    );
}
