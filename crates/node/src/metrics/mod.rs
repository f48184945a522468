//! The node's metrics ([`NodeMetrics`], a `prometheus-client` registry) and
//! the page that serves them (`http.rs`: `GET /metrics` on the node's
//! `metrics_port`, OpenMetrics text, which Prometheus scrapes).
//! `docs/metrics.md` lists every metric for operators; this says where
//! each is measured.
//!
//! Recorded as things happen, on the hot paths: counters and gauges are
//! atomics, a histogram's observation takes one short lock of its own, and
//! nothing allocates after a command's first request (its label set is
//! created then and its handles cached, [`Requests`]).
//!
//! - **Client requests** (`service/commands.rs`, `Service::handle`): per
//!   command (label `command`, Arakoon's name; `kind` = read, write or
//!   admin), the latency of each request answered with success, from its
//!   decoding to its answer (for an answer the driver wrote to the socket
//!   itself, to when the driver handed it over: what `--statistics`
//!   times), and the count of those answered with an error code. Requests
//!   the decoder refuses (bad input, unsupported opcodes) are not counted.
//! - **Client connections** (`service/mod.rs`): open now; refused at
//!   `MAX_CLIENT_CONNECTIONS`.
//! - **Tlog** (`driver.rs`, `NodeEnv`, on the driver's thread): each
//!   append's duration (`replica::Env::appended`: the write of one round's
//!   new entries, a segment rotation included), entries and payload bytes
//!   appended; each fsync's duration (`Env::sync`: the fdatasync that makes
//!   the appended entries durable; the hard state's and a rotation's own
//!   syncs are not in it) and how many entries and updates each made
//!   durable, i.e. appended since the previous one (group commit). With
//!   `fsync = false` the replica runs no such fsync: those stay empty.
//! - **Elections and master changes** (`NodeEnv::role_changed`): this node
//!   became candidate (a real election, after a won pre-vote); this node
//!   learnt of a new master (a new `(term, master)`, the first after start
//!   included).
//!
//! Read when scraped ([`NodeMetrics::render`]): the published state
//! (`replica::Published`: role, term, lease, tlog/commit/applied indices,
//! on a master each peer's match index), the store file's size and the
//! tlog directory's (one `stat` each, off the runtime's workers), and the
//! `--statistics` counters (`arakoon_requests_total`, kept from the first
//! version of this page).

mod http;

pub use http::{start, Page};

use crate::settings::Settings;
use crate::stats::Stats;
use consensus::{Lease, Role, Standing, Time};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use protocol::Command;
use replica::Published;
use std::borrow::Cow;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Request latency buckets: 25 µs to 6.6 s, doubling (19 bounds).
fn request_seconds_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(25e-6, 2.0, 19)
}

/// Tlog append buckets: 5 µs to 0.66 s, doubling (18 bounds).
fn append_seconds_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(5e-6, 2.0, 18)
}

/// Fsync buckets: 50 µs to 3.3 s, doubling (17 bounds).
fn fsync_seconds_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(50e-6, 2.0, 17)
}

/// Entries per fsync: 1 to 1024 (11 bounds).
fn entries_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(1.0, 2.0, 11)
}

/// Updates per fsync: 1 to 8192 (14 bounds).
fn updates_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(1.0, 2.0, 14)
}

/// Which of the three kinds a client command is: a `kind` label value.
pub fn kind_of(command: Command) -> &'static str {
    // No wildcard: a new command must be put in its place here.
    match command {
        Command::Exists
        | Command::Get
        | Command::Range
        | Command::PrefixKeys
        | Command::RangeEntries
        | Command::RevRangeEntries
        | Command::MultiGet
        | Command::MultiGetOption
        | Command::Assert
        | Command::AssertExists
        | Command::GetKeyCount => "read",
        Command::Set
        | Command::Delete
        | Command::TestAndSet
        | Command::Sequence
        | Command::SyncedSequence
        | Command::DeletePrefix
        | Command::Replace
        | Command::Nop
        | Command::Confirm
        | Command::UserFunction => "write",
        Command::Ping
        | Command::WhoMaster
        | Command::ExpectProgressPossible
        | Command::Statistics
        | Command::CollapseTlogs
        | Command::GetNurseryCfg
        | Command::Version
        | Command::DropMaster
        | Command::CurrentState
        | Command::Inspect
        | Command::GetTxid
        | Command::GetDb
        | Command::OptimizeDb
        | Command::DefragDb
        | Command::FlushStore
        | Command::CopyDbToHead => "admin",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    command: &'static str,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RoleLabels {
    role: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerLabels {
    peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CollapseLabels {
    /// `auto` (the node's own policy) or `request` (`--collapse-remote`).
    origin: &'static str,
}

/// Collapse run durations: 10 ms to about 164 s (15 bounds).
fn collapse_seconds_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.01, 2.0, 15)
}

/// A collapse run's origin as a label value.
fn collapse_origin(origin: replica::CollapseOrigin) -> &'static str {
    match origin {
        replica::CollapseOrigin::Request => "request",
        replica::CollapseOrigin::Automatic => "auto",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// One past the highest command code (`CopyDbToHead`, 0x44).
const COMMAND_CODES: usize = 0x45;

/// One command's series, created on its first request.
struct CommandSeries {
    ok_seconds: Histogram,
    failed: Counter,
}

/// The request metrics, with each command's handles cached by code so
/// that recording is a lookup in an array, after the first time.
struct Requests {
    seconds: HistogramFamily<RequestLabels>,
    failed: Family<RequestLabels, Counter>,
    by_code: Box<[OnceLock<CommandSeries>]>,
}

impl Requests {
    fn series(&self, command: Command) -> Option<&CommandSeries> {
        let slot = self.by_code.get(usize::try_from(command.code()).ok()?)?;
        Some(slot.get_or_init(|| {
            let labels = RequestLabels {
                command: command.name(),
                kind: kind_of(command),
            };
            CommandSeries {
                ok_seconds: self.seconds.get_or_create_owned(&labels),
                failed: self.failed.get_or_create_owned(&labels),
            }
        }))
    }
}

/// `arakoon_requests_total{family}`: the `--statistics` counts, read from
/// [`Stats`] at each scrape (the page's first version had them; kept).
#[derive(Debug)]
struct StatsCounts(Arc<Stats>);

impl Collector for StatsCounts {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut metric = encoder.encode_descriptor(
            "arakoon_requests",
            "Client requests answered with success, by Arakoon's statistics family (as --statistics counts them; op: all)",
            None,
            MetricType::Counter,
        )?;
        for (family, n) in self.0.counts() {
            let labels = [("family", family)];
            ConstCounter::new(n).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// The gauges set from the published state at each scrape.
struct StateGauges {
    term: Gauge,
    is_master: Gauge,
    role: Family<RoleLabels, Gauge>,
    recovering: Gauge,
    lease_held: Gauge,
    lease_remaining_seconds: Gauge<f64, AtomicU64>,
    tlog_last_index: Gauge,
    commit_index: Gauge,
    applied_index: Gauge,
    peer_match_index: Family<PeerLabels, Gauge>,
    peer_lag_entries: Family<PeerLabels, Gauge>,
    store_size_bytes: Gauge,
    tlog_size_bytes: Gauge,
    snapshot_pairs_received: Gauge,
    snapshot_pairs_total: Gauge,
    snapshots_sending: Gauge,
    catch_up_entries_left: Gauge,
    catch_up_entries_per_second: Gauge,
}

const ROLES: [Role; 5] = [
    Role::Slave,
    Role::PreCandidate,
    Role::Candidate,
    Role::Master,
    Role::Learner,
];

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Slave => "slave",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Master => "master",
        Role::Learner => "learner",
    }
}

/// Sizes on disk, read at scrape time ([`disk_usage`]); `None` when the
/// `stat` failed (the gauge keeps its last value).
#[derive(Debug, Clone, Copy, Default)]
pub struct DiskUsage {
    pub store_bytes: Option<u64>,
    pub tlog_bytes: Option<u64>,
}

/// The store file's size and the sum of the tlog's files' (the tlog
/// directory may be `home`, shared with the store and the log).
/// Blocking (a `stat` per file).
pub fn disk_usage(settings: &Settings) -> DiskUsage {
    let node = settings.node();
    let store_bytes = std::fs::metadata(crate::store_path(node))
        .ok()
        .map(|m| m.len());
    let tlog_bytes = std::fs::read_dir(crate::tlog_path(node)).ok().map(|dir| {
        dir.filter_map(Result::ok)
            .filter(|e| e.file_name().to_str().is_some_and(tlog::is_tlog_file))
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum()
    });
    DiskUsage {
        store_bytes,
        tlog_bytes,
    }
}

fn gauge_value(x: u64) -> i64 {
    i64::try_from(x).unwrap_or(i64::MAX)
}

/// Every metric of one node, registered with its `node` label.
pub struct NodeMetrics {
    registry: Registry,
    /// The node's own id, left out of the per-peer series.
    me: consensus::NodeId,
    peer_names: Vec<String>,
    requests: Requests,
    connections_open: Gauge,
    connections_refused: Counter,
    tlog_append_seconds: Histogram,
    tlog_appended_entries: Counter,
    tlog_appended_bytes: Counter,
    tlog_fsync_seconds: Histogram,
    tlog_entries_per_fsync: Histogram,
    tlog_updates_per_fsync: Histogram,
    elections: Counter,
    master_changes: Counter,
    collapse_seconds: HistogramFamily<CollapseLabels>,
    collapsed_segments: Family<CollapseLabels, Counter>,
    last_collapse_timestamp: Gauge<f64, AtomicU64>,
    state: StateGauges,
    /// One scrape at a time: the per-peer families are cleared and filled.
    scraping: Mutex<()>,
    /// Arakoon's statistics, which count some of the same events.
    stats: Arc<Stats>,
}

impl std::fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeMetrics").finish_non_exhaustive()
    }
}

impl NodeMetrics {
    pub fn new(settings: &Settings, stats: Arc<Stats>) -> NodeMetrics {
        let node_label = (
            Cow::Borrowed("node"),
            Cow::Owned(settings.node().name.clone()),
        );
        let mut registry = Registry::with_labels(std::iter::once(node_label));
        let r = &mut registry;

        // Kept from the page's first version, same names and meaning (but
        // for `arakoon_lease_held`, which now also checks the lease's time).
        let state = StateGauges {
            term: Gauge::default(),
            is_master: Gauge::default(),
            role: Family::default(),
            recovering: Gauge::default(),
            lease_held: Gauge::default(),
            lease_remaining_seconds: Gauge::default(),
            tlog_last_index: Gauge::default(),
            commit_index: Gauge::default(),
            applied_index: Gauge::default(),
            peer_match_index: Family::default(),
            peer_lag_entries: Family::default(),
            store_size_bytes: Gauge::default(),
            snapshot_pairs_received: Gauge::default(),
            snapshot_pairs_total: Gauge::default(),
            snapshots_sending: Gauge::default(),
            catch_up_entries_left: Gauge::default(),
            catch_up_entries_per_second: Gauge::default(),
            tlog_size_bytes: Gauge::default(),
        };
        r.register("arakoon_term", "Current term n", state.term.clone());
        r.register(
            "arakoon_is_master",
            "1 if this node is master",
            state.is_master.clone(),
        );
        r.register(
            "arakoon_lease_held",
            "1 if this node is master and holds an unexpired lease (serves consistent reads)",
            state.lease_held.clone(),
        );
        r.register(
            "arakoon_tlog_last_index",
            "Last tlog index i",
            state.tlog_last_index.clone(),
        );
        r.register(
            "arakoon_commit_index",
            "Highest index known committed",
            state.commit_index.clone(),
        );
        r.register(
            "arakoon_applied_index",
            "Highest index applied to the store",
            state.applied_index.clone(),
        );
        r.register_collector(Box::new(StatsCounts(Arc::clone(&stats))));

        // New.
        r.register(
            "arakoon_role",
            "1 for this node's current role, 0 for the others",
            state.role.clone(),
        );
        for role in ROLES {
            state
                .role
                .get_or_create(&RoleLabels {
                    role: role_name(role),
                })
                .set(0);
        }
        r.register(
            "arakoon_snapshot_pairs_received",
            "Pairs of the store snapshot being received so far (0 when none)",
            state.snapshot_pairs_received.clone(),
        );
        r.register(
            "arakoon_snapshot_pairs_total",
            "Pairs in the store snapshot being received (0 when none)",
            state.snapshot_pairs_total.clone(),
        );
        r.register(
            "arakoon_snapshots_sending",
            "Store snapshot transfers this master sends",
            state.snapshots_sending.clone(),
        );
        r.register(
            "arakoon_catch_up_entries_left",
            "Entries this node's store still has to apply in a long catch-up (0 when none)",
            state.catch_up_entries_left.clone(),
        );
        r.register(
            "arakoon_catch_up_entries_per_second",
            "The rate of that catch-up over its last report interval (0 when none)",
            state.catch_up_entries_per_second.clone(),
        );
        r.register(
            "arakoon_recovering",
            "1 while this node, having lost its disk, catches up before it votes again",
            state.recovering.clone(),
        );
        // arakoon_lease_remaining_seconds
        r.register_with_unit(
            "arakoon_lease_remaining",
            "Time left on the master's lease (0 without one)",
            Unit::Seconds,
            state.lease_remaining_seconds.clone(),
        );
        r.register(
            "arakoon_peer_match_index",
            "On the master: the highest index known to be in each peer's tlog",
            state.peer_match_index.clone(),
        );
        r.register(
            "arakoon_peer_lag_entries",
            "On the master: entries each peer's tlog is behind this node's (last index - match index)",
            state.peer_lag_entries.clone(),
        );
        // arakoon_store_size_bytes, arakoon_tlog_size_bytes
        r.register_with_unit(
            "arakoon_store_size",
            "Size of the store file",
            Unit::Bytes,
            state.store_size_bytes.clone(),
        );
        r.register_with_unit(
            "arakoon_tlog_size",
            "Size of the tlog directory's files",
            Unit::Bytes,
            state.tlog_size_bytes.clone(),
        );

        let requests = Requests {
            seconds: Family::new_with_constructor(|| Histogram::new(request_seconds_buckets())),
            failed: Family::default(),
            by_code: (0..COMMAND_CODES).map(|_| OnceLock::new()).collect(),
        };
        // arakoon_request_duration_seconds
        r.register_with_unit(
            "arakoon_request_duration",
            "Latency of client requests answered with success, from decoded to answered",
            Unit::Seconds,
            requests.seconds.clone(),
        );
        // arakoon_request_failures_total
        r.register(
            "arakoon_request_failures",
            "Client requests answered with an error code",
            requests.failed.clone(),
        );

        let connections_open = Gauge::default();
        let connections_refused = Counter::default();
        r.register(
            "arakoon_client_connections",
            "Open client connections",
            connections_open.clone(),
        );
        // arakoon_client_connections_refused_total
        r.register(
            "arakoon_client_connections_refused",
            "Client connections refused at the connection limit",
            connections_refused.clone(),
        );

        let tlog_append_seconds = Histogram::new(append_seconds_buckets());
        let tlog_appended_entries = Counter::default();
        let tlog_appended_bytes = Counter::default();
        let tlog_fsync_seconds = Histogram::new(fsync_seconds_buckets());
        let tlog_entries_per_fsync = Histogram::new(entries_buckets());
        let tlog_updates_per_fsync = Histogram::new(updates_buckets());
        // arakoon_tlog_append_duration_seconds
        r.register_with_unit(
            "arakoon_tlog_append_duration",
            "Duration of one tlog append (the write of a round's new entries, not fsynced)",
            Unit::Seconds,
            tlog_append_seconds.clone(),
        );
        // arakoon_tlog_appended_entries_total
        r.register(
            "arakoon_tlog_appended_entries",
            "Entries appended to the tlog",
            tlog_appended_entries.clone(),
        );
        // arakoon_tlog_appended_bytes_total
        r.register_with_unit(
            "arakoon_tlog_appended",
            "Payload bytes of the entries appended to the tlog",
            Unit::Bytes,
            tlog_appended_bytes.clone(),
        );
        // arakoon_tlog_fsync_duration_seconds
        r.register_with_unit(
            "arakoon_tlog_fsync_duration",
            "Duration of the fdatasync that makes appended tlog entries durable",
            Unit::Seconds,
            tlog_fsync_seconds.clone(),
        );
        r.register(
            "arakoon_tlog_entries_per_fsync",
            "Tlog entries each fsync made durable (group commit)",
            tlog_entries_per_fsync.clone(),
        );
        r.register(
            "arakoon_tlog_updates_per_fsync",
            "Client updates in the entries each fsync made durable (group commit)",
            tlog_updates_per_fsync.clone(),
        );

        let elections = Counter::default();
        let master_changes = Counter::default();
        // arakoon_elections_total
        r.register(
            "arakoon_elections",
            "Elections this node started (became candidate after a won pre-vote)",
            elections.clone(),
        );
        // arakoon_master_changes_total
        r.register(
            "arakoon_master_changes",
            "New masters this node learnt of (a new term and master, the first after start included)",
            master_changes.clone(),
        );
        let collapse_seconds: HistogramFamily<CollapseLabels> =
            Family::new_with_constructor(|| Histogram::new(collapse_seconds_buckets()));
        let collapsed_segments = Family::<CollapseLabels, Counter>::default();
        let last_collapse_timestamp = Gauge::<f64, AtomicU64>::default();
        // Both origins on the page from the start (at 0).
        for origin in [
            replica::CollapseOrigin::Automatic,
            replica::CollapseOrigin::Request,
        ] {
            let labels = CollapseLabels {
                origin: collapse_origin(origin),
            };
            drop(collapse_seconds.get_or_create(&labels));
            drop(collapsed_segments.get_or_create(&labels));
        }
        // arakoon_collapse_duration_seconds (its _count: runs done)
        r.register_with_unit(
            "arakoon_collapse_duration",
            "Collapse runs done, by origin (auto, request), and how long each took (store checkpoint and pauses included)",
            Unit::Seconds,
            collapse_seconds.clone(),
        );
        // arakoon_collapsed_segments_total
        r.register(
            "arakoon_collapsed_segments",
            "Tlog segments removed by collapse runs, by origin",
            collapsed_segments.clone(),
        );
        // arakoon_last_collapse_timestamp_seconds
        r.register_with_unit(
            "arakoon_last_collapse_timestamp",
            "Unix time the last collapse run ended (0: none since the node started)",
            Unit::Seconds,
            last_collapse_timestamp.clone(),
        );
        r.register(
            "arakoon_build",
            "This node's build",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );

        NodeMetrics {
            registry,
            me: settings.id(),
            peer_names: settings
                .cluster
                .nodes
                .iter()
                .map(|n| n.name.clone())
                .collect(),
            requests,
            connections_open,
            connections_refused,
            tlog_append_seconds,
            tlog_appended_entries,
            tlog_appended_bytes,
            tlog_fsync_seconds,
            tlog_entries_per_fsync,
            tlog_updates_per_fsync,
            elections,
            master_changes,
            collapse_seconds,
            collapsed_segments,
            last_collapse_timestamp,
            state,
            scraping: Mutex::new(()),
            stats,
        }
    }

    /// The master made one tlog entry of `updates` client updates (Arakoon's
    /// `harvest_stats`: how many updates it harvested into one value).
    pub fn harvested(&self, updates: u32) {
        self.stats.harvested(updates);
    }

    /// A request answered with success, `took` after it was decoded.
    pub fn request_done(&self, command: Command, took: Duration) {
        if let Some(s) = self.requests.series(command) {
            s.ok_seconds.observe(took.as_secs_f64());
        }
    }

    /// A request answered with an error code.
    pub fn request_failed(&self, command: Command) {
        if let Some(s) = self.requests.series(command) {
            s.failed.inc();
        }
    }

    /// A client connection was accepted; it counts as open until the
    /// returned guard is dropped.
    pub fn connection_opened(&self) -> OpenConnection {
        self.connections_open.inc();
        OpenConnection(self.connections_open.clone())
    }

    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// One tlog append of `entries` entries, `bytes` of payload.
    pub fn tlog_appended(&self, took: Duration, entries: u64, bytes: u64) {
        self.tlog_append_seconds.observe(took.as_secs_f64());
        self.tlog_appended_entries.inc_by(entries);
        self.tlog_appended_bytes.inc_by(bytes);
    }

    /// One fsync that made `entries` entries of `updates` updates durable.
    pub fn tlog_synced(&self, took: Duration, entries: u64, updates: u64) {
        self.tlog_fsync_seconds.observe(took.as_secs_f64());
        // Exact in an f64 up to 2^53.
        self.tlog_entries_per_fsync.observe(entries as f64);
        self.tlog_updates_per_fsync.observe(updates as f64);
    }

    pub fn election_started(&self) {
        self.elections.inc();
    }

    pub fn master_changed(&self) {
        self.master_changes.inc();
    }

    /// When the last collapse run ended (Unix seconds), if one did since
    /// the node started.
    pub fn last_collapse(&self) -> Option<f64> {
        let at = self.last_collapse_timestamp.get();
        (at > 0.0).then_some(at)
    }

    /// A collapse run removed one more segment; at its last, the run is
    /// counted with its duration.
    pub fn collapsed(&self, progress: &replica::CollapseProgress) {
        let labels = CollapseLabels {
            origin: collapse_origin(progress.origin),
        };
        self.collapsed_segments.get_or_create(&labels).inc();
        if progress.done >= progress.total {
            self.collapse_seconds
                .get_or_create(&labels)
                .observe(progress.elapsed.as_secs_f64());
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            self.last_collapse_timestamp.set(now);
        }
    }

    /// The page: the gauges set from `published` (at local time `now`) and
    /// `disk`, then every metric in the OpenMetrics text format.
    pub fn render(
        &self,
        published: &Published,
        now: Time,
        disk: DiskUsage,
    ) -> Result<String, std::fmt::Error> {
        let _one_at_a_time = self.scraping.lock().unwrap_or_else(|p| p.into_inner());
        self.set_state(published, now, disk);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }

    fn set_state(&self, p: &Published, now: Time, disk: DiskUsage) {
        let s = &self.state;
        s.term.set(gauge_value(p.term));
        s.is_master.set(i64::from(p.role == Role::Master));
        for role in ROLES {
            let labels = RoleLabels {
                role: role_name(role),
            };
            s.role.get_or_create(&labels).set(i64::from(p.role == role));
        }
        s.recovering
            .set(i64::from(p.standing == Standing::Recovering));
        let remaining = match p.lease {
            Some(Lease { until, .. }) => until.as_nanos().saturating_sub(now.as_nanos()),
            None => 0,
        };
        s.lease_held.set(i64::from(remaining > 0));
        s.lease_remaining_seconds
            .set(Duration::from_nanos(remaining).as_secs_f64());
        s.tlog_last_index.set(gauge_value(p.tlog_last_index));
        s.commit_index.set(gauge_value(p.commit_index));
        s.applied_index.set(gauge_value(p.applied_index));
        let (done, total) = p.snapshot.map_or((0, 0), |s| (s.pairs_done, s.pairs_total));
        s.snapshot_pairs_received.set(gauge_value(done));
        s.snapshot_pairs_total.set(gauge_value(total));
        s.snapshots_sending
            .set(i64::try_from(p.snapshots_sending).unwrap_or(i64::MAX));
        let (left, rate) = p
            .catch_up
            .map_or((0, 0), |c| (c.remaining(), c.entries_per_second));
        s.catch_up_entries_left.set(gauge_value(left));
        s.catch_up_entries_per_second.set(gauge_value(rate));
        // Only a master has them: a node that lost mastership drops them.
        s.peer_match_index.clear();
        s.peer_lag_entries.clear();
        for &(id, match_index) in &p.peers_match {
            if id == self.me {
                continue;
            }
            let Some(name) = self.peer_names.get(id.0 as usize) else {
                continue;
            };
            let labels = PeerLabels { peer: name.clone() };
            s.peer_match_index
                .get_or_create(&labels)
                .set(gauge_value(match_index));
            s.peer_lag_entries
                .get_or_create(&labels)
                .set(gauge_value(p.tlog_last_index.saturating_sub(match_index)));
        }
        if let Some(b) = disk.store_bytes {
            s.store_size_bytes.set(gauge_value(b));
        }
        if let Some(b) = disk.tlog_bytes {
            s.tlog_size_bytes.set(gauge_value(b));
        }
    }
}

/// Counts a client connection as open while it lives.
pub struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}
