//! In-process clusters: real nodes (tokio tasks and driver threads) on
//! loopback ports bound by the test, data in temporary directories, driven
//! through the `client` crate. Every wait is for a condition, with a
//! deadline; a failing test prints the data directory and ports.

use client::{Client, ClientBuilder, Consistency, Error, KeyRange, RetryPolicy, Update};
use config::ClusterConfig;
use consensus::Role;
use node::{Listeners, Node};
use std::net::TcpListener;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLUSTER_ID: &str = "testcluster";
/// Lease period of the test clusters: failover within about 1 to 2 s.
const LEASE: &str = "1";
const DEADLINE: Duration = Duration::from_secs(15);

struct Cluster {
    dir: tempfile::TempDir,
    config: ClusterConfig,
    nodes: Vec<Option<Node>>,
}

fn free_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind a loopback port")
}

impl Cluster {
    async fn start(n: usize) -> Cluster {
        Self::start_with(n, "").await
    }

    /// `node_extra` is added to every node's section.
    async fn start_with(n: usize, node_extra: &str) -> Cluster {
        let extras = vec![node_extra.to_string(); n];
        Self::start_custom(&extras).await
    }

    /// One node per item of `extras`, which is added to its section.
    async fn start_custom(extras: &[String]) -> Cluster {
        Self::start_full("", extras).await
    }

    /// `global` is added to `[global]`, `extras[i]` to node i's section.
    async fn start_full(global: &str, extras: &[String]) -> Cluster {
        let n = extras.len();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut listeners = Vec::new();
        let names: Vec<String> = (0..n).map(|i| format!("node_{i}")).collect();
        let mut text = format!(
            "[global]\ncluster = {}\ncluster_id = {CLUSTER_ID}\nlease_period = {LEASE}\n{global}\n",
            names.join(", ")
        );
        for (name, node_extra) in names.iter().zip(extras) {
            let client = free_listener();
            let messaging = free_listener();
            text.push_str(&format!(
                "[{name}]\nip = 127.0.0.1\nclient_port = {}\nmessaging_port = {}\nhome = {}\nlog_level = info\n{node_extra}\n",
                client.local_addr().unwrap().port(),
                messaging.local_addr().unwrap().port(),
                dir.path().join(name).display()
            ));
            listeners.push((client, messaging));
        }
        let config = config::parse(&text).expect("test config").config;
        let mut nodes = Vec::new();
        for (name, (client, messaging)) in names.iter().zip(listeners) {
            let node = Node::start(
                config.clone(),
                name,
                Listeners {
                    client: Some(client),
                    messaging: Some(messaging),
                    ..Listeners::default()
                },
            )
            .await
            .unwrap_or_else(|e| panic!("start {name} in {}: {e}", dir.path().display()));
            nodes.push(Some(node));
        }
        eprintln!("cluster of {n} in {}", dir.path().display());
        Cluster { dir, config, nodes }
    }

    fn name(&self, i: usize) -> String {
        self.config.nodes[i].name.clone()
    }

    fn client(&self) -> Client {
        let mut b = ClientBuilder::new(CLUSTER_ID)
            .request_timeout(Duration::from_secs(5))
            .retry_policy(RetryPolicy {
                max_attempts: 20,
                backoff_initial: Duration::from_millis(50),
                backoff_max: Duration::from_millis(500),
            });
        for n in &self.config.nodes {
            b = b.node(&n.name, n.client_address());
        }
        b.build().expect("client")
    }

    /// The index of the node that is master with its lease, once there is one.
    async fn wait_master(&self, among: &[usize]) -> usize {
        let start = Instant::now();
        loop {
            for &i in among {
                if let Some(node) = &self.nodes[i] {
                    let s = node.status(&self.config);
                    if s.role == Role::Master && s.lease_held {
                        return i;
                    }
                }
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no master with a lease among {among:?} within {DEADLINE:?} (data in {})",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until node `i` is master with its lease.
    async fn wait_until_master(&self, i: usize) {
        let start = Instant::now();
        loop {
            let s = self.nodes[i]
                .as_ref()
                .expect("running")
                .status(&self.config);
            if s.role == Role::Master && s.lease_held {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "node {i} is not master after {DEADLINE:?}: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_applied(&self, i: usize, index: u64) {
        let start = Instant::now();
        loop {
            let s = self.nodes[i]
                .as_ref()
                .expect("running")
                .status(&self.config);
            if s.applied_index >= index {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "node {i} applied {} < {index} after {DEADLINE:?}",
                s.applied_index
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn crash(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.crash().await;
        }
    }

    async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} is running");
        let name = self.name(i);
        let node = Node::start(self.config.clone(), &name, Listeners::default())
            .await
            .unwrap_or_else(|e| panic!("restart {name}: {e}"));
        self.nodes[i] = Some(node);
    }

    async fn stop_all(mut self) {
        for node in self.nodes.iter_mut().filter_map(Option::take) {
            node.stop().await.expect("graceful stop");
        }
    }
}

/// `AtLeast(i)` reads of `key` on every slave (name, client bound to it),
/// after set #`n` wrote `value`: each sees `value`, or, allowed only for a
/// slave whose tlog lacks `i`, answers `E_INCONSISTENT_READ`; at least one
/// (one of the commit quorum) serves. Returns how many served.
async fn read_at_least_on_slaves(
    slaves: &[(String, Client)],
    i: u64,
    key: &[u8],
    value: &[u8],
    n: u32,
) -> usize {
    let mut served = 0;
    for (name, slave) in slaves {
        let at_least = slave.with_consistency(Consistency::AtLeast(i as i64));
        match at_least.get(key).await {
            Ok(v) => {
                assert_eq!(v, value, "AtLeast({i}) on {name} after set #{n}");
                served += 1;
            }
            Err(Error::InconsistentRead { .. }) => {}
            Err(e) => panic!("AtLeast({i}) on {name} after set #{n}: {e}"),
        }
    }
    assert!(served >= 1, "no slave served AtLeast({i}) after set #{n}");
    served
}

fn txid(c: Consistency) -> u64 {
    match c {
        Consistency::AtLeast(i) => i as u64,
        other => panic!("get_txid answered {other:?}"),
    }
}

fn all() -> KeyRange {
    KeyRange {
        first: None,
        first_inclusive: true,
        last: None,
        last_inclusive: true,
        max: -1,
    }
}

/// Every command of the spec on a one-node cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_serves_every_command() {
    let cluster = Cluster::start(1).await;
    cluster.wait_master(&[0]).await;
    let c = cluster.client();

    c.set(b"a", b"1").await.unwrap();
    assert_eq!(c.get(b"a").await.unwrap(), b"1");
    assert!(c.exists(b"a").await.unwrap());
    assert!(matches!(c.get(b"zz").await, Err(Error::NotFound { .. })));
    c.delete(b"a").await.unwrap();
    assert!(matches!(c.delete(b"a").await, Err(Error::NotFound { .. })));

    // A sequence whose assert fails applies nothing.
    c.set(b"x", b"old").await.unwrap();
    let failed = c
        .sequence(vec![
            Update::Set {
                key: b"y".to_vec(),
                value: b"new".to_vec(),
            },
            Update::Assert {
                key: b"x".to_vec(),
                value: Some(b"other".to_vec()),
            },
        ])
        .await;
    assert!(
        matches!(failed, Err(Error::AssertionFailed { .. })),
        "{failed:?}"
    );
    assert!(
        !c.exists(b"y").await.unwrap(),
        "nothing of a failed sequence is applied"
    );
    c.sequence(vec![
        Update::Assert {
            key: b"x".to_vec(),
            value: Some(b"old".to_vec()),
        },
        Update::Set {
            key: b"y".to_vec(),
            value: b"new".to_vec(),
        },
    ])
    .await
    .unwrap();
    assert_eq!(c.get(b"y").await.unwrap(), b"new");
    c.synced_sequence(vec![Update::Set {
        key: b"s".to_vec(),
        value: b"synced".to_vec(),
    }])
    .await
    .unwrap();

    // test_and_set and replace answer the value before.
    assert_eq!(c.test_and_set(b"t", None, Some(b"1")).await.unwrap(), None);
    assert_eq!(
        c.test_and_set(b"t", Some(b"2"), Some(b"3")).await.unwrap(),
        Some(b"1".to_vec()),
        "a failed test_and_set answers the current value"
    );
    assert_eq!(c.get(b"t").await.unwrap(), b"1");
    assert_eq!(
        c.replace(b"t", Some(b"r")).await.unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(c.get(b"t").await.unwrap(), b"r");

    // Asserts.
    c.assert(b"x", Some(b"old")).await.unwrap();
    assert!(matches!(
        c.assert(b"x", Some(b"no")).await,
        Err(Error::AssertionFailed { .. })
    ));
    c.assert_exists(b"x").await.unwrap();
    assert!(matches!(
        c.assert_exists(b"nope").await,
        Err(Error::AssertionFailed { .. })
    ));

    // Ranges and prefixes.
    for k in ["p1", "p2", "p3", "q1"] {
        c.set(k.as_bytes(), k.as_bytes()).await.unwrap();
    }
    assert_eq!(
        c.prefix_keys(b"p", None).await.unwrap(),
        vec![b"p1".to_vec(), b"p2".to_vec(), b"p3".to_vec()]
    );
    assert_eq!(c.prefix_keys(b"p", Some(2)).await.unwrap().len(), 2);
    let range = KeyRange {
        first: Some(b"p2".to_vec()),
        first_inclusive: true,
        last: Some(b"q1".to_vec()),
        last_inclusive: false,
        max: -1,
    };
    assert_eq!(
        c.range(&range).await.unwrap(),
        vec![b"p2".to_vec(), b"p3".to_vec()]
    );
    assert_eq!(
        c.range_entries(&range).await.unwrap(),
        vec![
            (b"p2".to_vec(), b"p2".to_vec()),
            (b"p3".to_vec(), b"p3".to_vec())
        ]
    );
    let rev = KeyRange {
        first: Some(b"q1".to_vec()),
        first_inclusive: true,
        last: Some(b"p2".to_vec()),
        last_inclusive: true,
        max: 2,
    };
    let rev_keys: Vec<Vec<u8>> = c
        .rev_range_entries(&rev)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(rev_keys, vec![b"q1".to_vec(), b"p3".to_vec()]);
    assert_eq!(
        c.multi_get(&[b"p1", b"q1"]).await.unwrap(),
        vec![b"p1".to_vec(), b"q1".to_vec()]
    );
    assert!(matches!(
        c.multi_get(&[b"p1", b"zz"]).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        c.multi_get_option(&[b"p1", b"zz"]).await.unwrap(),
        vec![Some(b"p1".to_vec()), None]
    );
    assert_eq!(c.delete_prefix(b"p").await.unwrap(), 3);
    assert!(c.prefix_keys(b"p", None).await.unwrap().is_empty());
    let count = c.get_key_count().await.unwrap();
    assert_eq!(count, c.range(&all()).await.unwrap().len() as u64);

    // Confirm, nop, txid, admin-ish commands.
    c.confirm(b"x", b"old").await.unwrap();
    c.confirm(b"x", b"newer").await.unwrap();
    assert_eq!(c.get(b"x").await.unwrap(), b"newer");
    c.nop().await.unwrap();
    let i = txid(c.get_txid().await.unwrap());
    assert!(i > 0);
    assert_eq!(c.who_master().await.unwrap().as_deref(), Some("node_0"));
    assert!(c.expect_progress_possible().await.unwrap());
    let stats = c.statistics().await.unwrap();
    assert_eq!(stats.name, "arakoon_stats");
    assert!(stats.get("set_info").is_some() && stats.get("node_is").is_some());
    let v = c.version().await.unwrap();
    assert_eq!(
        (v.major, v.minor),
        (1, 9),
        "the Arakoon release line served"
    );
    assert!(c.current_state().await.unwrap().contains("master"));
    // drop_master on a singleton: refused (E_NOT_SUPPORTED), the node stays master.
    assert!(c.drop_master().await.is_err());

    // max_value_size is enforced.
    let big = vec![0u8; cluster.config.max_value_size + 1];
    let too_big = c.set(b"big", &big).await;
    assert!(too_big.is_err(), "a value above max_value_size is refused");
    cluster.stop_all().await;
}

/// A client that sends several requests without waiting for the answers
/// (pipelining) gets every answer, in order. The connection then holds the
/// next requests' bytes while the driver writes an answer itself, so the
/// answer must wake it (the socket stays quiet: the client waits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_updates_are_all_answered_in_order() {
    for nodes in [1, 3] {
        let cluster = Cluster::start(nodes).await;
        let master = cluster.wait_master(&(0..nodes).collect::<Vec<_>>()).await;
        let addr = cluster.config.nodes[master].client_address();
        let mut requests = Vec::new();
        let mut expected = Vec::new();
        protocol::encode_prologue(CLUSTER_ID.as_bytes(), &mut requests);
        for n in 0..10u8 {
            let set = protocol::Request::Set {
                key: b"piped".to_vec(),
                value: vec![n],
            };
            protocol::encode_request(&set, &mut requests);
            protocol::encode_response(&protocol::Response::Ok(protocol::Reply::Set), &mut expected);
        }
        let get = protocol::Request::Get {
            consistency: protocol::Consistency::Consistent,
            key: b"piped".to_vec(),
        };
        protocol::encode_request(&get, &mut requests);
        protocol::encode_response(
            &protocol::Response::Ok(protocol::Reply::Get(vec![9])),
            &mut expected,
        );
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(&requests).await.unwrap();
        let mut got = vec![0u8; expected.len()];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
            .await
            .unwrap_or_else(|_| panic!("{nodes} node(s): not every pipelined request was answered"))
            .unwrap();
        assert_eq!(got, expected, "{nodes} node(s): the answers, in order");
        cluster.stop_all().await;
    }
}

/// Raw connections: a wrong cluster id, a wrong magic, a huge declared
/// length and a truncated frame get a clear error; the node serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_the_node_serves_on() {
    let cluster = Cluster::start(1).await;
    cluster.wait_master(&[0]).await;
    let addr = cluster.config.nodes[0].client_address();

    async fn exchange(addr: &str, bytes: &[u8]) -> (u32, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .expect("the node answers and closes")
            .unwrap();
        assert!(out.len() >= 8, "answer too short: {out:?}");
        let rc = u32::from_le_bytes(out[0..4].try_into().unwrap());
        let len = u32::from_le_bytes(out[4..8].try_into().unwrap()) as usize;
        let msg = String::from_utf8_lossy(&out[8..(8 + len).min(out.len())]).into_owned();
        (rc, msg)
    }
    let mut prologue = Vec::new();
    protocol::encode_prologue(b"other_cluster", &mut prologue);
    let (rc, msg) = exchange(&addr, &prologue).await;
    assert_eq!(rc, 0x06, "E_WRONG_CLUSTER: {msg}");
    assert!(msg.contains("other_cluster"), "{msg}");

    let (rc, msg) = exchange(&addr, &[0xde, 0xad, 0xbe, 0xef, 1, 0, 0, 0]).await;
    assert_eq!(rc, 0x01, "E_NO_MAGIC: {msg}");

    // A get whose key declares 1 GiB.
    let mut huge = Vec::new();
    protocol::encode_prologue(CLUSTER_ID.as_bytes(), &mut huge);
    huge.extend_from_slice(&(0xb1ff_0000u32 | 0x08).to_le_bytes());
    huge.push(0x01);
    huge.extend_from_slice(&(1u32 << 30).to_le_bytes());
    let (rc, msg) = exchange(&addr, &huge).await;
    assert_eq!(rc, 0x26, "E_BAD_INPUT: {msg}");

    // A request word without the magic after a good prologue.
    let mut nomagic = Vec::new();
    protocol::encode_prologue(CLUSTER_ID.as_bytes(), &mut nomagic);
    nomagic.extend_from_slice(&0x0000_0008u32.to_le_bytes());
    let (rc, _) = exchange(&addr, &nomagic).await;
    assert_eq!(rc, 0x01, "E_NO_MAGIC for a request word");

    // A truncated frame, then the client goes away: nothing to answer.
    {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut bytes = Vec::new();
        protocol::encode_prologue(CLUSTER_ID.as_bytes(), &mut bytes);
        bytes.extend_from_slice(&(0xb1ff_0000u32 | 0x09).to_le_bytes());
        bytes.extend_from_slice(&10u32.to_le_bytes());
        bytes.extend_from_slice(b"abc");
        s.write_all(&bytes).await.unwrap();
    }

    // Messaging port: a wrong cluster id is refused with a reason.
    let maddr = cluster.config.nodes[0].messaging_address();
    let mut s = tokio::net::TcpStream::connect(&maddr).await.unwrap();
    let mut hello = b"ARKRSMSG".to_vec();
    hello.extend_from_slice(&node::MESSAGING_VERSION.to_le_bytes());
    for field in ["wrong", "node_0", "node_0"] {
        hello.extend_from_slice(&(field.len() as u32).to_le_bytes());
        hello.extend_from_slice(field.as_bytes());
    }
    s.write_all(&hello).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.first(), Some(&1u8), "handshake refused");
    assert!(String::from_utf8_lossy(&out).contains("cluster id"));

    let c = cluster.client();
    c.set(b"still", b"here").await.unwrap();
    assert_eq!(c.get(b"still").await.unwrap(), b"here");
    cluster.stop_all().await;
}

/// Three nodes: writes on the master, NotMaster on a slave, AtLeast and
/// NoGuarantee reads on a slave, failover when the master crashes, and the
/// old master catching up after its restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_replicate_fail_over_and_catch_up() {
    let mut cluster = Cluster::start(3).await;
    let master = cluster.wait_master(&[0, 1, 2]).await;
    let c = cluster.client();
    for k in 0..20u32 {
        c.set(format!("k{k:02}").as_bytes(), &k.to_le_bytes())
            .await
            .unwrap();
    }
    let i = txid(c.get_txid().await.unwrap());
    let slave = (master + 1) % 3;
    let slave_name = cluster.name(slave);

    // NotMaster on a slave, naming the master.
    let on_slave = c.node(&slave_name).unwrap();
    match on_slave.set(b"nope", b"x").await {
        Err(Error::NotMaster { master: m, .. }) => {
            assert_eq!(m.as_deref(), Some(cluster.name(master).as_str()))
        }
        other => panic!("set on a slave: {other:?}"),
    }
    match on_slave.get(b"k00").await {
        Err(Error::NotMaster { .. }) => {}
        other => panic!("Consistent get on a slave: {other:?}"),
    }
    // AtLeast(i) on the slave: wait for it to apply (the commit index rides
    // on the next heartbeat), then the value is there.
    let at_least = on_slave.with_consistency(Consistency::AtLeast(i as i64));
    let start = Instant::now();
    loop {
        match at_least.get(b"k19").await {
            Ok(v) => {
                assert_eq!(v, 19u32.to_le_bytes());
                break;
            }
            Err(Error::InconsistentRead { .. }) if start.elapsed() < DEADLINE => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            Err(e) => panic!("AtLeast({i}) on {slave_name}: {e}"),
        }
    }
    let ng = on_slave.with_consistency(Consistency::NoGuarantee);
    assert_eq!(ng.get(b"k00").await.unwrap(), 0u32.to_le_bytes());
    let far = on_slave.with_consistency(Consistency::AtLeast(i as i64 + 1000));
    assert!(matches!(
        far.get(b"k00").await,
        Err(Error::InconsistentRead { .. })
    ));

    // Failover: crash the master; the others elect a new one.
    let crashed_at = Instant::now();
    cluster.crash(master).await;
    let rest: Vec<usize> = (0..3).filter(|&j| j != master).collect();
    let new_master = cluster.wait_master(&rest).await;
    eprintln!(
        "failover: {} is master {:?} after the crash of {}",
        cluster.name(new_master),
        crashed_at.elapsed(),
        cluster.name(master)
    );
    for k in 0..20u32 {
        assert_eq!(
            c.get(format!("k{k:02}").as_bytes()).await.unwrap(),
            k.to_le_bytes(),
            "acknowledged write k{k:02} survives the failover"
        );
    }
    c.set(b"after", b"failover").await.unwrap();
    let i2 = txid(c.get_txid().await.unwrap());

    // The old master restarts on the same dirs and catches up.
    cluster.restart(master).await;
    cluster.wait_applied(master, i2).await;
    let old = c
        .node(&cluster.name(master))
        .unwrap()
        .with_consistency(Consistency::AtLeast(i2 as i64));
    assert_eq!(old.get(b"after").await.unwrap(), b"failover");
    assert_eq!(old.get(b"k07").await.unwrap(), 7u32.to_le_bytes());
    cluster.stop_all().await;
}

/// A crash (no sync, no checkpoint) then a start on the same directories
/// replays the tlog into the store; a graceful stop then start as well.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_after_crash_replays_the_tlog() {
    let mut cluster = Cluster::start(1).await;
    cluster.wait_master(&[0]).await;
    let c = cluster.client();
    // More entries than one round applies (APPLY_PER_ROUND_MAX), one each.
    for k in 0..1100u32 {
        c.set(format!("r{k}").as_bytes(), &k.to_le_bytes())
            .await
            .unwrap();
    }
    c.delete(b"r3").await.unwrap();
    let before = cluster.nodes[0].as_ref().unwrap().status(&cluster.config);
    cluster.crash(0).await;
    cluster.restart(0).await;
    cluster.wait_master(&[0]).await;
    let after = cluster.nodes[0].as_ref().unwrap().status(&cluster.config);
    assert!(after.applied_index >= before.applied_index);
    let c = cluster.client();
    assert_eq!(c.get(b"r1099").await.unwrap(), 1099u32.to_le_bytes());
    assert!(!c.exists(b"r3").await.unwrap());
    assert_eq!(c.prefix_keys(b"r", None).await.unwrap().len(), 1099);

    // Graceful stop, then start again.
    let node = cluster.nodes[0].take().unwrap();
    node.stop().await.expect("graceful stop");
    cluster.restart(0).await;
    cluster.wait_master(&[0]).await;
    assert_eq!(
        cluster.client().get(b"r10").await.unwrap(),
        10u32.to_le_bytes()
    );
    cluster.stop_all().await;
}

/// Many clients at once are each answered with their own result (group
/// commit puts them in few entries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_each_get_their_own_result() {
    let cluster = Cluster::start(3).await;
    cluster.wait_master(&[0, 1, 2]).await;
    let mut tasks = Vec::new();
    for t in 0..16u32 {
        let c = cluster.client();
        tasks.push(tokio::spawn(async move {
            for k in 0..10u32 {
                let key = format!("c{t}-{k}");
                c.set(key.as_bytes(), key.as_bytes()).await.unwrap();
                let before = c
                    .test_and_set(key.as_bytes(), Some(key.as_bytes()), Some(b"done"))
                    .await
                    .unwrap();
                assert_eq!(before.as_deref(), Some(key.as_bytes()));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let c = cluster.client();
    assert_eq!(c.prefix_keys(b"c", None).await.unwrap().len(), 160);
    cluster.stop_all().await;
}

/// The master answers a plain `set` once it is committed, ahead of the
/// store's apply, and the commit index reaches the slaves with the next
/// message (or after `commit_announce_delay`). Neither may show: right after
/// each answer, a read on another connection to the master sees the value
/// whatever its consistency, `get_txid` covers the write, and `AtLeast` of
/// that index on a slave that holds the entry (one at least: the commit
/// quorum) waits for the commit and sees the value rather than failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_ahead_of_the_apply_are_read_back_at_once() {
    let cluster = Cluster::start(3).await;
    let master = cluster.wait_master(&[0, 1, 2]).await;
    let writer = cluster.client();
    let reader = cluster.client();
    let on_master = reader.node(&cluster.name(master)).unwrap();
    let slaves: Vec<_> = (0..3)
        .filter(|&j| j != master)
        .map(|j| (cluster.name(j), reader.node(&cluster.name(j)).unwrap()))
        .collect();
    let mut slave_reads_served = 0;
    for n in 0..200u32 {
        let value = n.to_le_bytes();
        writer.set(b"counter", &value).await.unwrap();
        let i = txid(on_master.get_txid().await.unwrap());
        slave_reads_served += read_at_least_on_slaves(&slaves, i, b"counter", &value, n).await;
        // On the master, every read sees every answered update.
        for (k, consistency) in [
            Consistency::NoGuarantee,
            Consistency::Consistent,
            Consistency::AtLeast(i as i64),
        ]
        .into_iter()
        .enumerate()
        {
            let value = format!("{n}-{k}");
            writer.set(b"other", value.as_bytes()).await.unwrap();
            let got = on_master.with_consistency(consistency).get(b"other").await;
            assert_eq!(
                got.unwrap(),
                value.as_bytes(),
                "{consistency:?} read after set #{n}"
            );
        }
    }
    eprintln!("slaves served {slave_reads_served} of 400 AtLeast reads at once");
    cluster.stop_all().await;
}

/// A node that is not master holds committed entries back for
/// `slave_apply_delay` (a minute here) to apply several in one store
/// transaction. An `AtLeast(i)` read of an index it holds asks it to apply
/// at once: served, where waiting for the delay would have failed it with
/// `E_INCONSISTENT_READ` after a heartbeat interval. Without such a read it
/// does hold the entries back; a graceful stop applies them before its last
/// checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slave_holds_applies_back_but_not_from_an_at_least_read() {
    let mut cluster = Cluster::start_with(3, "slave_apply_delay = 60000").await;
    let master = cluster.wait_master(&[0, 1, 2]).await;
    let writer = cluster.client();
    let reader = cluster.client();
    let on_master = reader.node(&cluster.name(master)).unwrap();
    let slaves: Vec<usize> = (0..3).filter(|&j| j != master).collect();
    let slave_readers: Vec<_> = slaves
        .iter()
        .map(|&j| (cluster.name(j), reader.node(&cluster.name(j)).unwrap()))
        .collect();
    for n in 0..20u32 {
        let value = n.to_le_bytes();
        writer.set(b"k", &value).await.unwrap();
        let i = txid(on_master.get_txid().await.unwrap());
        read_at_least_on_slaves(&slave_readers, i, b"k", &value, n).await;
    }
    // Writes nobody reads on the slaves: they stay unapplied there (fewer
    // than the 64 entries that are applied whatever the delay).
    for n in 0..10u32 {
        writer.set(b"quiet", &n.to_le_bytes()).await.unwrap();
    }
    let last = txid(on_master.get_txid().await.unwrap());
    let slave = slaves[0];
    let start = Instant::now();
    loop {
        let s = cluster.nodes[slave]
            .as_ref()
            .unwrap()
            .status(&cluster.config);
        if s.commit_index >= last {
            assert!(
                s.applied_index < last,
                "{} applied {} of {last} committed well within slave_apply_delay",
                cluster.name(slave),
                s.applied_index
            );
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "{} never learnt commit {last}",
            cluster.name(slave)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // A graceful stop applies them: the store opens at `last` after it.
    let node = cluster.nodes[slave].take().unwrap();
    node.stop().await.expect("graceful stop");
    cluster.restart(slave).await;
    let s = cluster.nodes[slave]
        .as_ref()
        .unwrap()
        .status(&cluster.config);
    assert!(
        s.applied_index >= last,
        "{} reopened with {} applied, not {last}",
        cluster.name(slave),
        s.applied_index
    );
    cluster.stop_all().await;
}

/// A stopping node answers E_GOING_DOWN rather than hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_master_hands_over() {
    let cluster = Cluster::start(3).await;
    let master = cluster.wait_master(&[0, 1, 2]).await;
    let c = cluster.client();
    c.set(b"k", b"v").await.unwrap();
    // Wait until every slave has applied it (so they are caught up).
    let i = txid(c.get_txid().await.unwrap());
    for j in 0..3 {
        cluster.wait_applied(j, i).await;
    }
    c.node(&cluster.name(master))
        .unwrap()
        .drop_master()
        .await
        .unwrap();
    let start = Instant::now();
    let new_master = loop {
        let m = cluster.wait_master(&[0, 1, 2]).await;
        if m != master {
            break m;
        }
        assert!(start.elapsed() < DEADLINE, "mastership was not handed over");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!(
        "handed over to {} in {:?}",
        cluster.name(new_master),
        start.elapsed()
    );
    assert_eq!(c.get(b"k").await.unwrap(), b"v");
    cluster.stop_all().await;
}

/// Two of three nodes crash: the master loses its lease and steps down, so
/// an update fails within the lease period plus a margin (never hangs), and
/// a `Consistent` read is refused; one node back: progress resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_quorum_updates_fail_fast_and_resume() {
    let mut cluster = Cluster::start(3).await;
    let master = cluster.wait_master(&[0, 1, 2]).await;
    let c = cluster.client();
    c.set(b"before", b"1").await.unwrap();
    let others: Vec<usize> = (0..3).filter(|&j| j != master).collect();
    for &j in &others {
        cluster.crash(j).await;
    }
    let direct = c
        .node(&cluster.name(master))
        .unwrap()
        .with_request_timeout(Duration::from_secs(10));
    let lease = cluster.config.lease_period;
    let margin = Duration::from_secs(1);
    let started = Instant::now();
    let result = direct.set(b"lost", b"?").await;
    let took = started.elapsed();
    eprintln!("update without a quorum failed after {took:?}: {result:?}");
    assert!(
        matches!(
            result,
            Err(Error::NoLongerMaster { .. }) | Err(Error::NotMaster { .. })
        ),
        "{result:?}"
    );
    assert!(took < lease + margin, "took {took:?}, lease {lease:?}");
    // No lease any more: a Consistent read is refused too.
    assert!(matches!(
        direct.get(b"before").await,
        Err(Error::NotMaster { .. })
    ));

    cluster.restart(others[0]).await;
    let m = cluster.wait_master(&[master, others[0]]).await;
    eprintln!("master again: {}", cluster.name(m));
    c.set(b"after", b"2").await.unwrap();
    assert_eq!(c.get(b"before").await.unwrap(), b"1");
    assert_eq!(c.get(b"after").await.unwrap(), b"2");
    cluster.stop_all().await;
}

/// A graceful stop answers an update in flight with E_GOING_DOWN (it cannot
/// commit: both slaves are down) instead of dropping the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_stop_answers_in_flight_updates_going_down() {
    let mut cluster = Cluster::start(3).await;
    let master = cluster.wait_master(&[0, 1, 2]).await;
    let c = cluster.client();
    c.set(b"k", b"v").await.unwrap();
    for j in (0..3).filter(|&j| j != master) {
        cluster.crash(j).await;
    }
    let before = cluster.nodes[master]
        .as_ref()
        .unwrap()
        .status(&cluster.config)
        .tlog_last_index;
    let direct = c.node(&cluster.name(master)).unwrap();
    let update = tokio::spawn(async move { direct.set(b"pending", b"x").await });
    // Wait until the update is proposed (appended to the master's tlog).
    let start = Instant::now();
    loop {
        let s = cluster.nodes[master]
            .as_ref()
            .unwrap()
            .status(&cluster.config);
        if s.tlog_last_index > before {
            break;
        }
        assert!(start.elapsed() < DEADLINE, "the update was never proposed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let node = cluster.nodes[master].take().unwrap();
    node.stop().await.expect("graceful stop");
    let result = update.await.unwrap();
    // The client reports E_GOING_DOWN on an update as an unknown outcome.
    match &result {
        Err(e @ Error::OutcomeUnknown { reason, .. }) => {
            assert!(reason.contains("going down"), "{e}")
        }
        other => panic!("expected E_GOING_DOWN, got {other:?}"),
    }
}

/// `fsync = false`: the same answers (a synced_sequence still fsyncs), and
/// a crashed process loses nothing (the data is in the page cache).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_false_serves_and_survives_a_process_crash() {
    let mut cluster = Cluster::start_with(3, "fsync = false\n").await;
    let master = cluster.wait_master(&[0, 1, 2]).await;
    let c = cluster.client();
    for k in 0..20u32 {
        c.set(format!("f{k}").as_bytes(), b"v").await.unwrap();
    }
    c.synced_sequence(vec![Update::Set {
        key: b"synced".to_vec(),
        value: b"yes".to_vec(),
    }])
    .await
    .unwrap();
    cluster.crash(master).await;
    cluster.restart(master).await;
    cluster.wait_master(&[0, 1, 2]).await;
    let i = txid(c.get_txid().await.unwrap());
    cluster.wait_applied(master, i).await;
    let on_old = c
        .node(&cluster.name(master))
        .unwrap()
        .with_consistency(Consistency::AtLeast(i as i64));
    assert_eq!(on_old.get(b"synced").await.unwrap(), b"yes");
    assert_eq!(on_old.prefix_keys(b"f", None).await.unwrap().len(), 20);
    cluster.stop_all().await;
}

/// A learner receives the log and applies it, never votes: the three voters
/// elect a master among themselves and the learner serves AtLeast reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_follows_and_serves_at_least_reads() {
    let mut extras = vec![String::new(); 3];
    extras.push("learner = true\ntargets = node_0, node_1, node_2\n".to_string());
    let cluster = Cluster::start_custom(&extras).await;
    let master = cluster.wait_master(&[0, 1, 2]).await;
    assert_ne!(master, 3);
    let learner = cluster.nodes[3].as_ref().unwrap().status(&cluster.config);
    assert_eq!(learner.role, Role::Learner);
    let c = cluster.client();
    c.set(b"learned", b"yes").await.unwrap();
    let i = txid(c.get_txid().await.unwrap());
    cluster.wait_applied(3, i).await;
    let on_learner = c
        .node("node_3")
        .unwrap()
        .with_consistency(Consistency::AtLeast(i as i64));
    assert_eq!(on_learner.get(b"learned").await.unwrap(), b"yes");
    assert!(matches!(
        c.node("node_3").unwrap().set(b"x", b"y").await,
        Err(Error::NotMaster { .. })
    ));
    cluster.stop_all().await;
}

/// `metrics_port`: Prometheus text on GET /metrics, 404 elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_serves_prometheus_text() {
    // Bound by the node later: from outside the ephemeral range, so that
    // no outgoing connection takes it meanwhile (see node::loopback_ports).
    let port = node::loopback_ports(1).unwrap()[0];
    let cluster = Cluster::start_custom(&[format!("metrics_port = {port}\n")]).await;
    cluster.wait_master(&[0]).await;
    cluster.client().set(b"m", b"1").await.unwrap();
    async fn http_get(port: u16, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
            .await
            .unwrap()
            .unwrap();
        out
    }
    let page = http_get(port, "/metrics").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("arakoon_is_master{node=\"node_0\"} 1"),
        "{page}"
    );
    // A request is counted when its connection picks its answer up, which
    // for an answer the driver wrote to the socket itself is when the
    // client sends its next request or closes (`answer.rs`): the client
    // above was dropped, so the count comes, a moment later.
    let counted = "arakoon_requests_total{node=\"node_0\",family=\"set\"} 1";
    let started = std::time::Instant::now();
    let mut page = page;
    while !page.contains(counted) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the set is never counted:\n{page}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        page = http_get(port, "/metrics").await;
    }
    assert!(http_get(port, "/other").await.starts_with("HTTP/1.1 404"));
    cluster.stop_all().await;
}

/// A known peer's frame declaring 1 GiB, or one that is not a message: the
/// connection is closed (nothing allocated) and the cluster serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_peer_frames_close_the_connection() {
    let cluster = Cluster::start(2).await;
    cluster.wait_master(&[0, 1]).await;
    let maddr = cluster.config.nodes[0].messaging_address();
    // A peer's frame declaring 1 GiB, or one that is not a message: the
    // connection is closed (nothing allocated), the node serves on.
    for frame in [
        (1u32 << 30).to_le_bytes().to_vec(),
        [5u32.to_le_bytes().to_vec(), b"junk!".to_vec()].concat(),
    ] {
        let mut s = tokio::net::TcpStream::connect(&maddr).await.unwrap();
        let mut hello = b"ARKRSMSG".to_vec();
        hello.extend_from_slice(&node::MESSAGING_VERSION.to_le_bytes());
        for field in [CLUSTER_ID, "node_1", "node_0"] {
            hello.extend_from_slice(&(field.len() as u32).to_le_bytes());
            hello.extend_from_slice(field.as_bytes());
        }
        s.write_all(&hello).await.unwrap();
        assert_eq!(
            s.read_u8().await.unwrap(),
            0,
            "handshake of a known peer accepted"
        );
        s.write_all(&frame).await.unwrap();
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        assert!(
            closed.is_ok(),
            "the node closes the connection after a bad frame"
        );
    }
    let c = cluster.client();
    c.set(b"still", b"here").await.unwrap();
    assert_eq!(c.get(b"still").await.unwrap(), b"here");
    cluster.stop_all().await;
}

/// A client that never reads its (large) answer, and one that sent half a
/// request and went quiet, hold only their own connections: other clients
/// are served at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_dead_clients_do_not_block_others() {
    let cluster = Cluster::start(1).await;
    cluster.wait_master(&[0]).await;
    let c = cluster.client();
    let value = vec![b'x'; 4096];
    let mut updates = Vec::new();
    for k in 0..1000u32 {
        updates.push(Update::Set {
            key: format!("big{k:04}").into_bytes(),
            value: value.clone(),
        });
    }
    c.sequence(updates).await.unwrap();
    let addr = cluster.config.nodes[0].client_address();
    // Slow: asks for ~4 MB and never reads.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut req = Vec::new();
    protocol::encode_prologue(CLUSTER_ID.as_bytes(), &mut req);
    for _ in 0..4 {
        protocol::encode_request(
            &protocol::Request::RangeEntries {
                consistency: Consistency::NoGuarantee,
                range: all(),
            },
            &mut req,
        );
    }
    slow.write_all(&req).await.unwrap();
    // Dead: half a request, then silence.
    let mut dead = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut half = Vec::new();
    protocol::encode_prologue(CLUSTER_ID.as_bytes(), &mut half);
    half.extend_from_slice(&(0xb1ff_0000u32 | 0x09).to_le_bytes());
    half.extend_from_slice(&100u32.to_le_bytes());
    dead.write_all(&half).await.unwrap();
    let start = Instant::now();
    for k in 0..20u32 {
        c.set(format!("fast{k}").as_bytes(), b"v").await.unwrap();
        assert_eq!(c.get(format!("fast{k}").as_bytes()).await.unwrap(), b"v");
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "20 sets and gets took {took:?}"
    );
    // Nor do they hold up a graceful stop for long.
    let stopping = Instant::now();
    cluster.stop_all().await;
    let stop_took = stopping.elapsed();
    assert!(
        stop_took < Duration::from_secs(5),
        "stop took {stop_took:?}"
    );
    drop((slow, dead));
}

/// `master = X` (forced): only X is ever master. `preferred_master = true`:
/// X takes over once caught up, also after another node was master.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_and_preferred_masters_from_the_config() {
    let three = vec![String::new(); 3];
    let forced = Cluster::start_full("master = node_1\n", &three).await;
    assert_eq!(forced.wait_master(&[0, 1, 2]).await, 1, "the forced master");
    forced.client().set(b"f", b"1").await.unwrap();
    forced.stop_all().await;

    let mut preferred =
        Cluster::start_full("master = node_2\npreferred_master = true\n", &three).await;
    // Whoever wins the first election hands over to the preferred master.
    preferred.wait_master(&[0, 1, 2]).await;
    preferred.wait_until_master(2).await;
    let c = preferred.client();
    c.set(b"p", b"1").await.unwrap();
    // Another node takes over while node_2 is down, and hands mastership
    // back once node_2 is back and caught up.
    preferred.crash(2).await;
    let interim = preferred.wait_master(&[0, 1]).await;
    c.set(b"p", b"2").await.unwrap();
    preferred.restart(2).await;
    let start = Instant::now();
    preferred.wait_until_master(2).await;
    eprintln!(
        "node_2 took mastership back from node_{interim} in {:?}",
        start.elapsed()
    );
    assert_eq!(c.get(b"p").await.unwrap(), b"2");
    preferred.stop_all().await;
}
