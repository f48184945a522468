//! `node`: the arakoon-rs server, one node of a cluster.
//!
//! [`run`] is what `arakoon --node NAME -config FILE` calls: it reads the
//! config, opens the node's tlog and store, and serves until the shutdown
//! future resolves (SIGTERM/SIGINT: [`shutdown_signal`]). [`Node::start`]
//! starts a node from a parsed config, optionally on listeners the caller
//! bound (tests), and gives a handle to stop it gracefully or to crash it.
//!
//! # Tasks
//!
//! - The **driver** (`driver.rs`), on a thread of its own: runs the
//!   node's `replica::Replica` (consensus core, tlog, store, updates in
//!   flight: the same code the simulator runs), which proposes batched
//!   updates, persists, sends, applies, answers updates and publishes its
//!   state (`replica::Published`, through a `watch`).
//! - **Client connections** (`service/`), one task each: decode requests,
//!   send updates to the driver's bounded queue, serve reads from the store
//!   directly, through the replica's read gates over the published state.
//! - **Messaging** (`messaging.rs`): one sender task per peer (bounded
//!   queue, reconnects with backoff), one receiver task per incoming
//!   connection; they run on the driver's thread, on a current-thread
//!   runtime of its own, so that no thread hop lies between the network
//!   and the consensus core (client connections run on the multi-thread
//!   runtime's workers).
//! - **Metrics** (`metrics/`): recorded by the connections and the driver
//!   as things happen, served if the node's section sets `metrics_port`
//!   (OpenMetrics text on `GET /metrics`, hyper on the client runtime; see
//!   `docs/metrics.md`).
//!
//! Ids: a node's id is its position in the config's `cluster` list. Timing
//! is derived from `lease_period` (see `settings.rs`). Files: the store in
//! [`store_path`] (`<home>/<name>.db`), the tlog directly in [`tlog_path`]
//! (`tlog_dir`, default `home`, where Arakoon's tools look for it; a
//! `tlog_dir/tlog/` of an earlier version is moved up at start, see
//! [`adopt_legacy_tlog_dir`]), the log in `<log_dir>/<name>.log`.
//!
//! # What it promises
//!
//! - An update is acknowledged only once its entry is fsynced by a quorum
//!   (this node included) and committed: a `set`, `nop` or sequence of
//!   those (whose result the store cannot change) at commit, after its
//!   index was published as answered (no read here is served from a store
//!   short of it); any other update once applied to this node's store,
//!   with the store's result. Each client gets its own update's result.
//!   Mastership lost with the update in flight: `E_NO_LONGER_MASTER`
//!   (outcome unknown).
//! - `Consistent` reads are answered only by a master holding its lease,
//!   from a store that applied at least the lease's read index.
//!   `AtLeast(i)`: from a store that applied at least `i` (waiting up to a
//!   heartbeat interval if the tlog holds `i`), else `E_INCONSISTENT_READ`.
//!   `NoGuarantee`: the local store as it is. Every read first waits until
//!   the store holds every update this node answered.
//! - Start after `kill -9`: the tlog recovers (torn tail cut), the store
//!   reopens at its last checkpoint or later, and the committed entries
//!   above the store's applied index are applied again as the commit
//!   index becomes known (from the master, or by this node as master).
//! - Logs (`tracing`) at the node's `log_level` go to stderr and to
//!   `<log_dir>/<name>.log`; one info line per master change, with `n` and `i`.
//! - Graceful stop (SIGTERM/SIGINT): listeners close, queued and in-flight
//!   requests are answered `E_GOING_DOWN`, the tlog is synced and the store
//!   checkpointed.
//!
//! # `fsync = false`
//!
//! With `fsync = false` in the node's section, appended tlog entries count
//! as durable at once (no fdatasync before the acknowledgement; rotation and
//! the hard state are still synced). A crash of the *process* (`kill -9`)
//! loses nothing, the data is in the OS page cache; a crash of the *machine*
//! (power loss, kernel panic) may lose acknowledged updates of this node,
//! and if a majority of nodes lose them together, they are lost for the
//! cluster. `synced_sequence` is always fsynced before its answer.
//!
//! # Errors
//!
//! Nothing read from the network, the disk or the config is unwrapped:
//! malformed client input is answered with Arakoon's result codes, bad peer
//! input closes the connection with a logged reason, storage failures stop
//! the node with a [`NodeError`] naming the file (a failed fdatasync
//! poisons the tlog: the node stops rather than acknowledge what may not be
//! on disk; restarted, it recovers what is).
//!
//! # Collapse
//!
//! The tlog is collapsed by the replica (`replica::collapse`): on request
//! (`collapse_tlogs`, served with Arakoon's streamed answer by
//! `service/collapse.rs` through a driver request) and by the automatic
//! policy (`auto_collapse_keep`, default 10 segments kept); offline on a
//! stopped node by [`collapse_local`] (`--collapse-local`).
//!
//! # TLS
//!
//! With `tls_ca_cert`, node-to-node messaging is mutual TLS; with
//! `tls_service`, the client port is TLS too (`settings::NodeTls`, the `tls`
//! crate). A TLS client connection is answered by its own task only (the
//! driver's direct answers need a plaintext socket).
//!
//! # Not yet
//!
//! User functions. Requests of one connection are served one at a time.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod answer;
mod clock;
mod collapse_local;
mod disk_space;
mod driver;
mod error;
mod inject_local;
mod logging;
pub mod messaging;
mod metrics;
mod ports;
mod service;
mod settings;
mod sockets;
mod state;
mod stats;
mod stop;

pub use collapse_local::{collapse_local, LocalCollapse};
pub use error::NodeError;
pub use inject_local::{inject_as_head, InjectOptions, Injection};
pub use logging::{init_logging, reopen_log_on_sigusr1, LogFile};
pub use messaging::{HANDSHAKE_MAGIC, MESSAGING_VERSION};
pub use settings::{
    Settings, BATCH_TARGET_BYTES, DRIVER_QUEUE_CAPACITY, MAX_CLIENT_CONNECTIONS,
    PEER_QUEUE_CAPACITY,
};
pub use stop::{shutdown_signal, StopMode};

use clock::Clock;
use config::ClusterConfig;
use consensus::{Core, HardState, NodeId, Role};
pub use ports::loopback_ports;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use store::{Store, StoreOptions};
use tlog::{Tlog, TlogOptions};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

/// Where a node listens, when the caller bound the sockets.
#[derive(Debug, Default)]
pub struct Listeners {
    pub client: Option<std::net::TcpListener>,
    pub messaging: Option<std::net::TcpListener>,
    /// Used only if the node's section sets `metrics_port`.
    pub metrics: Option<std::net::TcpListener>,
}

/// A running node.
#[derive(Debug)]
pub struct Node {
    name: String,
    client_address: SocketAddr,
    stop: watch::Sender<StopMode>,
    published: watch::Receiver<replica::Published>,
    done: Option<oneshot::Receiver<Result<(), NodeError>>>,
    /// The accept loops, which hold the listeners.
    listener_tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Answers (closed) once the store file is closed.
    store_released: Option<oneshot::Receiver<()>>,
}

/// Longest wait, after the driver stopped, for connection tasks to let go
/// of the store (they finish the request in hand, or are cut by a crash).
const STORE_RELEASE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A snapshot of a node's state, for tests and tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub role: Role,
    /// `Recovering` while a node that lost its disk catches up.
    pub standing: consensus::Standing,
    pub term: u64,
    /// The master's name, if known (this node's name if it is master).
    pub master: Option<String>,
    pub lease_held: bool,
    pub commit_index: u64,
    pub applied_index: u64,
    pub tlog_last_index: u64,
}

async fn listen(
    given: Option<std::net::TcpListener>,
    address: &str,
    what: &'static str,
) -> Result<TcpListener, NodeError> {
    let err = |source| NodeError::Listen {
        address: address.to_string(),
        what,
        source,
    };
    match given {
        Some(l) => {
            l.set_nonblocking(true).map_err(err)?;
            TcpListener::from_std(l).map_err(err)
        }
        None => {
            let addr: SocketAddr = tokio::net::lookup_host(address)
                .await
                .map_err(err)?
                .next()
                .ok_or_else(|| {
                    err(std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "the address resolves to nothing",
                    ))
                })?;
            let socket = if addr.is_ipv4() {
                tokio::net::TcpSocket::new_v4()
            } else {
                tokio::net::TcpSocket::new_v6()
            }
            .map_err(err)?;
            socket.set_reuseaddr(true).map_err(err)?;
            socket.bind(addr).map_err(err)?;
            socket.listen(1024).map_err(err)
        }
    }
}

/// The hard state the node starts from: the saved one, or, when none can
/// be read (a new node, a wiped home, a damaged file), an unknown one with
/// a fresh random incarnation: the core then finds out from the other
/// voters whether the cluster is new or this node lost what it promised,
/// and in that case recovers before it votes (consensus `Standing`).
fn starting_hard_state(tlog: &Tlog) -> Result<HardState, NodeError> {
    if let Some(saved) = tlog.hard_state() {
        return Ok(saved);
    }
    if let Some(why) = tlog.hard_state_unreadable() {
        tracing::warn!(
            "the hard state cannot be read ({why}): this node cannot vouch for its votes and acknowledgements, and recovers them from its peers before it votes again"
        );
    }
    let incarnation = getrandom::u64()
        .map_err(|e| NodeError::Driver(format!("no randomness for the node's incarnation: {e}")))?
        .max(1);
    Ok(HardState::unknown(incarnation))
}

fn tlog_options(cluster: &ClusterConfig, node: &config::NodeConfig) -> TlogOptions {
    TlogOptions {
        // In the tlog's range: the config refuses any other value.
        max_entries: cluster.tlog_max_entries,
        max_size: cluster.tlog_max_size,
        compression: match node.tlog_compression {
            config::TlogCompression::None => tlog::Compression::None,
            config::TlogCompression::Snappy | config::TlogCompression::Lz4 => {
                tlog::Compression::Lz4
            }
        },
    }
}

/// What the driver's thread starts with.
struct DriverParts {
    settings: Arc<Settings>,
    clock: Clock,
    replica: replica::Replica<Arc<state::SharedStore>, driver::NodeWaiter>,
    /// One per address of the node's `ip`.
    messaging_listeners: Vec<std::net::TcpListener>,
    inbound: (
        mpsc::Sender<replica::PeerMessage>,
        mpsc::Receiver<replica::PeerMessage>,
    ),
    requests: mpsc::Receiver<state::DriverRequest>,
    published: watch::Sender<replica::Published>,
    stop: watch::Receiver<StopMode>,
    apply_wanted: Arc<tokio::sync::Notify>,
    metrics: Arc<metrics::NodeMetrics>,
}

impl DriverParts {
    /// Runs the driver and the node-to-node messaging on a current-thread
    /// runtime of their own, on this thread, until the driver stops: a
    /// peer's message wakes this thread directly (its socket is in this
    /// runtime's epoll) and the driver's messages are written by this
    /// thread, so no thread hop lies between the network and the consensus
    /// core. Dropping the runtime at the end ends the messaging tasks and
    /// closes their sockets and the listener.
    fn run(self) -> Result<(), NodeError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| NodeError::Driver(format!("cannot start the driver's runtime: {e}")))?;
        let result = runtime.block_on(async move {
            let mut listeners = Vec::with_capacity(self.messaging_listeners.len());
            for listener in self.messaging_listeners {
                listeners.push(
                    TcpListener::from_std(listener)
                        .map_err(|e| NodeError::Driver(format!("messaging listener: {e}")))?,
                );
            }
            let (inbound_tx, inbound_rx) = self.inbound;
            let (transport, _accept) = messaging::start(
                Arc::clone(&self.settings),
                listeners,
                inbound_tx,
                self.stop.clone(),
            );
            let driver = driver::Driver::new(
                self.settings,
                self.clock,
                self.replica,
                driver::DriverIo {
                    transport,
                    requests: self.requests,
                    inbound: inbound_rx,
                    published: self.published,
                    stop: self.stop,
                    apply_wanted: self.apply_wanted,
                    metrics: self.metrics,
                },
            );
            driver.run().await
        });
        drop(runtime);
        result
    }
}

impl Node {
    /// Opens the node's tlog and store (recovering after a crash) and
    /// starts serving. Needs a multi-thread tokio runtime.
    pub async fn start(
        cluster: ClusterConfig,
        name: &str,
        listeners: Listeners,
    ) -> Result<Node, NodeError> {
        let settings = Arc::new(Settings::new(cluster, name)?);
        let node = settings.node().clone();
        let client_listener =
            listen(listeners.client, &node.client_address(), "client_port").await?;
        // Arakoon binds every address of `ip`; the first is where the
        // others connect.
        let mut client_listeners = vec![client_listener];
        for ip in node.ips.iter().skip(1) {
            let address = format!("{ip}:{}", node.client_port);
            client_listeners.push(listen(None, &address, "client_port").await?);
        }
        let mut messaging_listeners = vec![
            listen(
                listeners.messaging,
                &node.messaging_address(),
                "messaging_port",
            )
            .await?,
        ];
        for ip in node.ips.iter().skip(1) {
            let address = format!("{ip}:{}", node.messaging_port);
            messaging_listeners.push(listen(None, &address, "messaging_port").await?);
        }
        let client_address =
            client_listeners[0]
                .local_addr()
                .map_err(|source| NodeError::Listen {
                    address: node.client_address(),
                    what: "client_port",
                    source,
                })?;

        // Storage: blocking work, off the runtime's workers.
        let settings2 = Arc::clone(&settings);
        let (tlog, store) = tokio::task::spawn_blocking(move || open_storage(&settings2))
            .await
            .map_err(|e| NodeError::Driver(format!("opening storage: {e}")))??;
        let (store, store_released) = state::SharedStore::new(store);
        let store = Arc::new(store);
        let clock = Clock::new();
        let hard_state = starting_hard_state(&tlog)?;
        let applied = store.applied_index();
        let core = Core::new(
            settings.consensus.clone(),
            hard_state,
            &tlog,
            applied,
            clock.now(),
        )?;
        tracing::info!(
            node = %node.name,
            n = hard_state.term,
            standing = %core.standing(),
            tlog_first = tlog.first_index(),
            tlog_last = tlog.last_index(),
            store_applied = applied,
            client = %client_address,
            "node starting"
        );

        let (stop_tx, stop_rx) = watch::channel(StopMode::Running);
        let replica = replica::Replica::new(
            settings.replica_settings(),
            core,
            tlog,
            Arc::clone(&store),
            clock.now(),
        );
        let (published_tx, published_rx) = watch::channel(replica.published().clone());
        let (inbound_tx, inbound_rx) = mpsc::channel(settings::INBOUND_QUEUE_CAPACITY);
        let (requests_tx, requests_rx) = mpsc::channel(DRIVER_QUEUE_CAPACITY);
        let apply_wanted = Arc::new(tokio::sync::Notify::new());
        // The messaging listener moves to the driver's own runtime.
        let mut messaging_std = Vec::with_capacity(messaging_listeners.len());
        for listener in messaging_listeners {
            messaging_std.push(
                listener
                    .into_std()
                    .map_err(|e| NodeError::Driver(format!("messaging listener: {e}")))?,
            );
        }
        let stats = Arc::new(stats::Stats::new());
        let node_metrics = Arc::new(metrics::NodeMetrics::new(&settings, Arc::clone(&stats)));
        let driver_parts = DriverParts {
            settings: Arc::clone(&settings),
            clock,
            replica,
            messaging_listeners: messaging_std,
            inbound: (inbound_tx, inbound_rx),
            requests: requests_rx,
            published: published_tx,
            stop: stop_rx.clone(),
            apply_wanted: Arc::clone(&apply_wanted),
            metrics: Arc::clone(&node_metrics),
        };
        let (done_tx, done_rx) = oneshot::channel();
        std::thread::Builder::new()
            .name(format!("driver-{}", node.name))
            .spawn(move || {
                let _ = done_tx.send(driver_parts.run());
            })
            .map_err(NodeError::Thread)?;
        spawn_reporter(
            node.reporting,
            published_rx.clone(),
            Arc::clone(&settings),
            stop_rx.clone(),
        );
        let mut listener_tasks = Vec::new();
        if let Some(port) = node.metrics_port {
            let ip = node.ips.first().map_or("127.0.0.1", String::as_str);
            let address = format!("{ip}:{port}");
            let listener = listen(listeners.metrics, &address, "metrics_port").await?;
            listener_tasks.push(metrics::start(
                metrics::Page {
                    metrics: Arc::clone(&node_metrics),
                    settings: Arc::clone(&settings),
                    published: published_rx.clone(),
                    clock,
                },
                listener,
                stop_rx.clone(),
            ));
        }
        let disk_space = disk_space::spawn(
            vec![
                node.home.clone(),
                node.tlog_dir.clone(),
                node.tlx_dir.clone(),
            ],
            node.min_free_disk,
            stop_rx.clone(),
        );
        let client_task = service::start(
            service::Service {
                settings: Arc::clone(&settings),
                clock,
                store,
                published: published_rx.clone(),
                requests: requests_tx,
                stats,
                metrics: node_metrics,
                stop: stop_rx,
                apply_wanted,
                disk_space,
            },
            client_listeners,
        );
        Ok(Node {
            name: node.name.clone(),
            client_address,
            stop: stop_tx,
            published: published_rx,
            done: Some(done_rx),
            listener_tasks: {
                listener_tasks.push(client_task);
                listener_tasks
            },
            store_released: Some(store_released),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the client service listens.
    pub fn client_address(&self) -> SocketAddr {
        self.client_address
    }

    /// The node's state as the driver last published it.
    pub fn status(&self, cluster: &ClusterConfig) -> NodeStatus {
        let p = self.published.borrow();
        let name_of = |id: NodeId| {
            cluster
                .nodes
                .get(id.0 as usize)
                .map(|n| n.name.clone())
                .unwrap_or_default()
        };
        NodeStatus {
            role: p.role,
            standing: p.standing,
            term: p.term,
            master: if p.role == Role::Master {
                Some(self.name.clone())
            } else {
                p.master.map(name_of)
            },
            lease_held: p.lease.is_some(),
            commit_index: p.commit_index,
            applied_index: p.applied_index,
            tlog_last_index: p.tlog_last_index,
        }
    }

    /// Waits until the node stops by itself (a storage failure) or is
    /// stopped; the driver's result.
    pub async fn wait(&mut self) -> Result<(), NodeError> {
        // Cancel-safe: the receiver is dropped only once it has answered.
        let result = match self.done.as_mut() {
            Some(rx) => {
                let r = rx.await.unwrap_or_else(|_| {
                    Err(NodeError::Driver("the driver thread panicked".into()))
                });
                self.done = None;
                r
            }
            None => Ok(()),
        };
        // The driver is gone: make sure nothing listens any more.
        let running = *self.stop.borrow() == StopMode::Running;
        if running {
            let _ = self.stop.send(StopMode::Crash);
        }
        for task in self.listener_tasks.drain(..) {
            let _ = task.await;
        }
        // The store file must be closed before anyone (a restart in this
        // process) opens it again: wait for the last task holding it.
        if let Some(released) = self.store_released.as_mut() {
            if tokio::time::timeout(STORE_RELEASE_TIMEOUT, released)
                .await
                .is_err()
            {
                tracing::warn!(
                    "connection tasks still hold the store after {STORE_RELEASE_TIMEOUT:?}"
                );
            } else {
                self.store_released = None;
            }
        }
        result
    }

    /// Graceful stop: see the crate doc.
    pub async fn stop(mut self) -> Result<(), NodeError> {
        let _ = self.stop.send(StopMode::Graceful);
        self.wait().await
    }

    /// Stops at once, syncing nothing, as `kill -9` would (the data written
    /// so far stays in the OS page cache). Returns when the driver thread
    /// has let go of the tlog and store.
    pub async fn crash(mut self) {
        let _ = self.stop.send(StopMode::Crash);
        let _ = self.wait().await;
    }
}

/// Logs one line about the node's state every `reporting` (Arakoon's key).
fn spawn_reporter(
    every: std::time::Duration,
    published: watch::Receiver<replica::Published>,
    settings: Arc<Settings>,
    mut stop: watch::Receiver<StopMode>,
) {
    if every.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(every);
        interval.tick().await;
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop::stopped(&mut stop) => return,
            }
            let p = published.borrow().clone();
            tracing::info!(
                role = %p.role,
                standing = %p.standing,
                n = p.term,
                master = p.master.map(|m| settings.name_of(m)).unwrap_or("unknown"),
                tlog_last = p.tlog_last_index,
                committed = p.commit_index,
                applied = p.applied_index,
                "report"
            );
        }
    });
}

/// Where a node keeps its tlog files: directly in its `tlog_dir` (which
/// defaults to `home`, where the store file and the log file also live),
/// as Arakoon does.
pub fn tlog_path(node: &config::NodeConfig) -> std::path::PathBuf {
    node.tlog_dir.clone()
}

/// Earlier versions kept the tlog in `tlog_dir/tlog/`. If that directory
/// exists, its tlog files are moved up into `tlog_dir` (one `rename`
/// each, then an fsync of `tlog_dir`, then the old directory is removed if
/// empty): idempotent, so a crash half-way is finished at the next start.
/// A file of the same name already in `tlog_dir` is never overwritten
/// (refused, naming both).
pub fn adopt_legacy_tlog_dir(node: &config::NodeConfig) -> Result<(), NodeError> {
    let new = tlog_path(node);
    let old = node.tlog_dir.join("tlog");
    let io = |what: &str, path: &Path, e: std::io::Error| {
        NodeError::Driver(format!(
            "moving the tlog from {} up to {}: {what} {}: {e}",
            old.display(),
            new.display(),
            path.display()
        ))
    };
    let entries = match std::fs::read_dir(&old) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Ok(()),
        Err(e) => return Err(io("list", &old, e)),
    };
    let mut moved = 0usize;
    for entry in entries {
        let entry = entry.map_err(|e| io("list", &old, e))?;
        let name = entry.file_name();
        let Some(text) = name.to_str() else { continue };
        if !tlog::is_tlog_file(text) {
            continue;
        }
        let to = new.join(&name);
        if to.exists() {
            return Err(NodeError::Driver(format!(
                "{} and {} both exist: the tlog is in two places; keep the right one and remove the other",
                entry.path().display(),
                to.display()
            )));
        }
        std::fs::rename(entry.path(), &to).map_err(|e| io("rename", &entry.path(), e))?;
        moved += 1;
    }
    std::fs::File::open(&new)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("fsync", &new, e))?;
    match std::fs::remove_dir(&old) {
        Ok(()) => {}
        Err(e) => tracing::warn!(
            dir = %old.display(),
            "the old tlog directory holds other files and is left in place: {e}"
        ),
    }
    tracing::info!(files = moved, from = %old.display(), to = %new.display(), "tlog moved to where Arakoon keeps it");
    Ok(())
}

/// Where a node keeps its store: `<home>/<name>.db`.
pub fn store_path(node: &config::NodeConfig) -> std::path::PathBuf {
    node.home.join(format!("{}.db", node.name))
}

fn open_storage(settings: &Settings) -> Result<(Tlog, Store), NodeError> {
    let node = settings.node();
    let disk = disk::RealDisk::shared();
    let options = tlog_options(&settings.cluster, node);
    adopt_legacy_tlog_dir(node)?;
    let dir = tlog_path(node);
    let mut tlog = Tlog::open(disk.clone(), dir.clone(), options)
        .map_err(|source| NodeError::Tlog { dir, source })?;
    let path = store_path(node);
    service::admin::remove_leftover_copies(&path).map_err(|e| {
        NodeError::Driver(format!(
            "removing get_db copies left beside the store {}: {e}",
            path.display()
        ))
    })?;
    inject_local::remove_staged(&path)?;
    let store = Store::open(disk, &path, &StoreOptions::default())?;
    replica::reconcile_storage(&mut tlog, &store)?;
    Ok((tlog, store))
}

/// Runs node `node_name` of the cluster in `config_path` until `shutdown`
/// resolves, then stops gracefully. Logs at the node's `log_level`. Needs a
/// multi-thread tokio runtime (see [`main`] for one that builds it).
pub async fn run(
    config_path: &Path,
    node_name: &str,
    mode: RunMode,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeError> {
    let loaded = config::load(config_path).map_err(|e| match e {
        config::ConfigError::Io { .. } => NodeError::ConfigFile(e.to_string()),
        e => NodeError::ConfigFile(format!("{}: {e}", config_path.display())),
    })?;
    let mut log_files = Vec::new();
    if let Some(node) = loaded.config.node(node_name) {
        log_files = init_logging(node.log_level, &node.log_components, &node.log_sinks);
    }
    // Installed whether or not there is a file to reopen: SIGUSR1 (what
    // logrotate sends, as for Arakoon) must never stop the node.
    let reopen = tokio::spawn(reopen_log_on_sigusr1(log_files));
    let usr2 = tokio::spawn(stop::log_sigusr2());
    for warning in &loaded.warnings {
        tracing::warn!("config {}: {warning}", config_path.display());
    }
    let mut node = Node::start(loaded.config, node_name, Listeners::default()).await?;
    let published = node.published.clone();
    let caught_up = async move {
        match mode {
            RunMode::Serve => std::future::pending::<()>().await,
            RunMode::CatchUpOnly => wait_caught_up(published).await,
        }
    };
    let stopped = tokio::select! {
        r = node.wait() => r,
        _ = shutdown => {
            tracing::info!("shutdown requested");
            node.stop().await
        }
        _ = caught_up => {
            tracing::info!("caught up (-catchup-only): stopping");
            node.stop().await
        }
    };
    reopen.abort();
    usr2.abort();
    stopped
}

/// How [`run`] runs the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Serve until the shutdown future resolves.
    Serve,
    /// Arakoon's `-catchup-only`: stop (gracefully) once the node's store
    /// holds every entry the cluster had committed when it heard of it: a
    /// master other than this node is known and this node has applied up
    /// to the commit index it learnt, or this node became master (it holds
    /// every committed entry then). It runs as a full voter meanwhile.
    CatchUpOnly,
}

async fn wait_caught_up(mut published: watch::Receiver<replica::Published>) {
    loop {
        {
            let p = published.borrow_and_update();
            let follows = p.master.is_some() && p.role != Role::Master;
            if p.role == Role::Master
                || (follows && p.commit_index > 0 && p.applied_index >= p.commit_index)
            {
                tracing::info!(
                    applied = p.applied_index,
                    committed = p.commit_index,
                    "caught up"
                );
                return;
            }
        }
        if published.changed().await.is_err() {
            // The driver stopped: `node.wait()` reports why.
            std::future::pending::<()>().await;
        }
    }
}

/// Worker threads of the runtime that serves clients: one per core but the
/// one the driver's thread keeps busy (at least one). Measured on the
/// 2-core test machine (3 nodes and the load generator on it): with a
/// second worker, a single client's write took ~20 µs longer at p50 (a
/// ready socket woke one worker and that one woke the other to share the
/// work), while 64 clients' writes and `Consistent` reads per second were
/// the same with one worker.
fn client_worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get().saturating_sub(1))
        .max(1)
}

/// [`run`] on a runtime of its own, stopping on SIGTERM/SIGINT: the whole
/// of `arakoon --node NAME -config FILE` (`-catchup-only`: `mode`).
pub fn main(config_path: &Path, node_name: &str, mode: RunMode) -> Result<(), NodeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(client_worker_threads())
        .enable_all()
        .thread_name("arakoon")
        .build()
        .map_err(|e| NodeError::Driver(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(run(config_path, node_name, mode, shutdown_signal()))
}

#[cfg(test)]
mod tlog_layout_tests {
    use super::*;

    fn node_in(dir: &Path) -> config::NodeConfig {
        let text = format!(
            "[global]\ncluster = a\ncluster_id = t\n[a]\nip = 127.0.0.1\nclient_port = 4000\nmessaging_port = 4001\nhome = {}\nlog_level = info\n",
            dir.display()
        );
        config::parse(&text).unwrap().config.nodes.remove(0)
    }

    /// A tlog of an earlier version (`tlog_dir/tlog/`) moves up into
    /// `tlog_dir` and opens there with every entry; other files stay; a
    /// second run (as after a crash half-way) is harmless; a file in both
    /// places is refused.
    #[test]
    fn a_legacy_tlog_directory_is_moved_up() {
        let root = tempfile::tempdir().unwrap();
        let node = node_in(root.path());
        let legacy = root.path().join("tlog");
        {
            let mut log = Tlog::open(
                disk::RealDisk::shared(),
                legacy.clone(),
                TlogOptions::default(),
            )
            .unwrap();
            let entries: Vec<tlog::Entry> = (1..=5)
                .map(|index| tlog::Entry {
                    index,
                    term: 1,
                    payload: vec![index as u8; 10],
                })
                .collect();
            log.append(&entries).unwrap();
            log.sync().unwrap();
        }
        std::fs::write(legacy.join("notes.txt"), b"an operator's file").unwrap();
        std::fs::write(root.path().join("a.log"), b"log").unwrap();
        adopt_legacy_tlog_dir(&node).unwrap();
        assert!(legacy.join("notes.txt").exists(), "other files stay");
        assert!(std::fs::read_dir(&legacy)
            .unwrap()
            .all(|e| !tlog::is_tlog_file(e.unwrap().file_name().to_str().unwrap())));
        adopt_legacy_tlog_dir(&node).unwrap();
        let log = Tlog::open(
            disk::RealDisk::shared(),
            tlog_path(&node),
            TlogOptions::default(),
        )
        .unwrap();
        assert_eq!((log.first_index(), log.last_index()), (1, 5));
        drop(log);
        // The same file in both places: refused, naming both.
        std::fs::write(legacy.join("base"), b"x").unwrap();
        std::fs::write(root.path().join("base"), b"y").unwrap();
        let e = adopt_legacy_tlog_dir(&node).unwrap_err().to_string();
        assert!(e.contains("both exist"), "{e}");
    }
}
