//! The harness of the in-process cluster tests: real nodes (tokio tasks and
//! driver threads) on loopback ports bound by the test, data in a temporary
//! directory, a cluster id of their own, driven through the `client` crate.
//!
//! Every wait is [`Cluster::wait_for`]: a condition polled until it holds or
//! [`DEADLINE`] passes, then a panic that names what was awaited, the data
//! directory, the ports and every node's state. A cluster dropped with nodes
//! still running (a failed test) crashes them before its directory goes; set
//! `ARAKOON_TEST_KEEP_DATA=1` to keep the directory of a failed test.
//!
//! Each test file includes this module and uses part of it.
#![allow(dead_code)]

use client::{Client, ClientBuilder, Consistency, KeyRange, RetryPolicy};
use config::ClusterConfig;
use consensus::Role;
use node::{Listeners, Node, NodeStatus};
use std::fmt::Write as _;
use std::net::TcpListener;
use std::time::{Duration, Instant};

/// Lease period of the test clusters: failover within about 1 to 2 s.
const LEASE: &str = "1";
/// Longest wait for any condition of a test.
const DEADLINE: Duration = Duration::from_secs(15);
/// Pause between two polls of a condition.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Set (to anything) to keep the data directory of a failed test.
const KEEP_DATA_ENV: &str = "ARAKOON_TEST_KEEP_DATA";

pub struct Cluster {
    dir: tempfile::TempDir,
    pub config: ClusterConfig,
    /// `None` for a node that is down (crashed or stopped by the test).
    pub nodes: Vec<Option<Node>>,
    /// Each node's `metrics_port` ([`Cluster::start_with_metrics`]; empty
    /// otherwise).
    pub metrics_ports: Vec<u16>,
}

fn free_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind a loopback port")
}

/// A cluster id no other test cluster (of this run or another) shares, so
/// that a node of one test never accepts a stray peer or client of another.
fn random_cluster_id() -> String {
    let r = getrandom::u64().expect("random cluster id");
    format!("test_{r:016x}")
}

impl Cluster {
    pub async fn start(n: usize) -> Cluster {
        Self::start_with(n, "").await
    }

    /// `node_extra` is added to every node's section.
    pub async fn start_with(n: usize, node_extra: &str) -> Cluster {
        let extras = vec![node_extra.to_string(); n];
        Self::start_custom(&extras).await
    }

    /// One node per item of `extras`, which is added to its section.
    pub async fn start_custom(extras: &[String]) -> Cluster {
        Self::start_full("", extras).await
    }

    /// `n` nodes, each serving its metrics on a `metrics_port` of its own
    /// (bound by the test: [`Cluster::metrics_ports`]).
    pub async fn start_with_metrics(n: usize) -> Cluster {
        Self::start_inner("", &vec![String::new(); n], true).await
    }

    /// `global` is added to `[global]`, `extras[i]` to node i's section.
    pub async fn start_full(global: &str, extras: &[String]) -> Cluster {
        Self::start_inner(global, extras, false).await
    }

    /// As [`Cluster::start_full`], each node serving its metrics.
    #[allow(dead_code)] // not every test binary uses it
    pub async fn start_full_with_metrics(global: &str, extras: &[String]) -> Cluster {
        Self::start_inner(global, extras, true).await
    }

    async fn start_inner(global: &str, extras: &[String], metrics: bool) -> Cluster {
        let n = extras.len();
        let dir = tempfile::Builder::new()
            .prefix("arakoon-test-")
            .tempdir()
            .expect("temp dir");
        let cluster_id = random_cluster_id();
        let mut listeners = Vec::new();
        let names: Vec<String> = (0..n).map(|i| format!("node_{i}")).collect();
        let mut text = format!(
            "[global]\ncluster = {}\ncluster_id = {cluster_id}\nlease_period = {LEASE}\n{global}\n",
            names.join(", ")
        );
        let mut metrics_ports = Vec::new();
        for (name, node_extra) in names.iter().zip(extras) {
            let client = free_listener();
            let messaging = free_listener();
            let metrics_listener = metrics.then(free_listener);
            let mut section = format!(
                "[{name}]\nip = 127.0.0.1\nclient_port = {}\nmessaging_port = {}\nhome = {}\nlog_level = info\n{node_extra}\n",
                client.local_addr().expect("bound").port(),
                messaging.local_addr().expect("bound").port(),
                dir.path().join(name).display()
            );
            if let Some(l) = &metrics_listener {
                let port = l.local_addr().expect("bound").port();
                section.push_str(&format!("metrics_port = {port}\n"));
                metrics_ports.push(port);
            }
            text.push_str(&section);
            listeners.push((client, messaging, metrics_listener));
        }
        let config = config::parse(&text).expect("test config").config;
        // Built before the nodes start, so that a node failing to start
        // still drops (crashes) the ones started before it.
        let mut cluster = Cluster {
            dir,
            config,
            nodes: Vec::new(),
            metrics_ports,
        };
        for (name, (client, messaging, metrics)) in names.iter().zip(listeners) {
            let node = Node::start(
                cluster.config.clone(),
                name,
                Listeners {
                    client: Some(client),
                    messaging: Some(messaging),
                    metrics,
                },
            )
            .await
            .unwrap_or_else(|e| panic!("start {name}: {e}\n{}", cluster.describe()));
            cluster.nodes.push(Some(node));
        }
        eprintln!("started {}", cluster.describe());
        cluster
    }

    pub fn cluster_id(&self) -> &str {
        &self.config.cluster_id
    }

    pub fn name(&self, i: usize) -> String {
        self.config.nodes[i].name.clone()
    }

    /// The state of node `i`, which must be running.
    pub fn status(&self, i: usize) -> NodeStatus {
        match &self.nodes[i] {
            Some(node) => node.status(&self.config),
            None => panic!("node {i} is down\n{}", self.describe()),
        }
    }

    /// A client of the whole cluster (it finds the master itself).
    pub fn client(&self) -> Client {
        let mut b = ClientBuilder::new(self.cluster_id())
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

    /// Polls `condition` until it gives `Some` (its value is returned), at
    /// most until [`DEADLINE`]; then panics naming `what` (the condition
    /// that did not come to hold), the data directory, the ports and the
    /// state of every node. A poll still running at the deadline is cut.
    pub async fn wait_for<T>(
        &self,
        what: &str,
        mut condition: impl AsyncFnMut() -> Option<T>,
    ) -> T {
        let start = Instant::now();
        loop {
            let left = DEADLINE.saturating_sub(start.elapsed());
            if let Ok(Some(value)) = tokio::time::timeout(left, condition()).await {
                return value;
            }
            if start.elapsed() >= DEADLINE {
                panic!(
                    "waited {DEADLINE:?} in vain for {what}\n{}",
                    self.describe()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// The index of a node among `among` that is master with its lease.
    pub fn master_among(&self, among: &[usize]) -> Option<usize> {
        among.iter().copied().find(|&i| {
            self.nodes[i].as_ref().is_some_and(|node| {
                let s = node.status(&self.config);
                s.role == Role::Master && s.lease_held
            })
        })
    }

    /// The index of the node among `among` that is master with its lease,
    /// once there is one.
    pub async fn wait_master(&self, among: &[usize]) -> usize {
        self.wait_for(
            &format!("a master with its lease among nodes {among:?}"),
            async || self.master_among(among),
        )
        .await
    }

    /// Waits until node `i` is master with its lease.
    pub async fn wait_until_master(&self, i: usize) {
        self.wait_for(
            &format!("node {i} to be master with its lease"),
            async || self.master_among(&[i]),
        )
        .await;
    }

    /// Waits until node `i` has applied entry `index` to its store.
    pub async fn wait_applied(&self, i: usize, index: u64) {
        self.wait_for(&format!("node {i} to apply {index}"), async || {
            (self.status(i).applied_index >= index).then_some(())
        })
        .await
    }

    pub async fn crash(&mut self, i: usize) {
        if let Some(node) = self.nodes[i].take() {
            node.crash().await;
        }
    }

    /// Starts node `i` again on its directories and ports.
    pub async fn restart(&mut self, i: usize) {
        assert!(self.nodes[i].is_none(), "node {i} is running");
        let name = self.name(i);
        let node = Node::start(self.config.clone(), &name, Listeners::default())
            .await
            .unwrap_or_else(|e| panic!("restart {name}: {e}\n{}", self.describe()));
        self.nodes[i] = Some(node);
    }

    /// Stops node `i` gracefully.
    pub async fn stop(&mut self, i: usize) {
        let node = self.nodes[i].take().expect("node running");
        node.stop().await.expect("graceful stop");
    }

    pub async fn stop_all(mut self) {
        for node in self.nodes.iter_mut().filter_map(Option::take) {
            node.stop().await.expect("graceful stop");
        }
    }

    /// The cluster id, data directory, ports and state of every node: what
    /// a failing test prints.
    pub fn describe(&self) -> String {
        let mut out = format!(
            "cluster {} in {}",
            self.cluster_id(),
            self.dir.path().display()
        );
        for (i, n) in self.config.nodes.iter().enumerate() {
            let state = match self.nodes.get(i) {
                Some(Some(node)) => format!("{:?}", node.status(&self.config)),
                _ => "down".to_string(),
            };
            let _ = write!(
                out,
                "\n  {} client {} messaging {}: {state}",
                n.name,
                n.client_address(),
                n.messaging_address()
            );
        }
        out
    }
}

impl Drop for Cluster {
    /// Nodes still running (the test failed, or did not stop them) are
    /// crashed, and their driver threads have let go of the data, before
    /// the temporary directory is removed (the `dir` field would otherwise
    /// go first). `Node::crash` is async and this may run inside the test's
    /// runtime, so it runs on a thread of its own with its own runtime; the
    /// nodes' tasks keep running on the test's runtime meanwhile.
    fn drop(&mut self) {
        if std::thread::panicking() && std::env::var_os(KEEP_DATA_ENV).is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("kept {}", self.dir.path().display());
        }
        let running: Vec<Node> = self.nodes.iter_mut().filter_map(Option::take).collect();
        if running.is_empty() {
            return;
        }
        std::thread::scope(|s| {
            s.spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                {
                    Ok(rt) => rt.block_on(async {
                        for node in running {
                            node.crash().await;
                        }
                    }),
                    // Dropped, the nodes still stop (their handle is gone),
                    // only nobody waits for them.
                    Err(e) => eprintln!("no runtime to crash the nodes: {e}"),
                }
            });
        });
    }
}

/// The index of a `get_txid` answer.
pub fn txid(c: Consistency) -> u64 {
    match c {
        Consistency::AtLeast(i) => i as u64,
        other => panic!("get_txid answered {other:?}"),
    }
}

/// Every key.
pub fn all() -> KeyRange {
    KeyRange {
        first: None,
        first_inclusive: true,
        last: None,
        last_inclusive: true,
        max: -1,
    }
}
