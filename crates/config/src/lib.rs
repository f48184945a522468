//! `config`: the cluster configuration, read from Arakoon's `.ini` format
//! (`shared/spec/config.md`). One file describes the whole cluster; every
//! node and every client reads the same file.
//!
//! Promises:
//! - Same sections, keys and defaults as Arakoon where they apply.
//! - A missing required key, a value of the wrong type, a node named in
//!   `cluster` without a section, two nodes on the same address and port:
//!   an error naming the section, the key and the value.
//! - An unknown key is a warning (configs are shared with other tools),
//!   returned beside the config for the caller to log.
//!
//! Deliberate choices where Arakoon is silent or we differ:
//! - `lease_period` accepts a decimal number of seconds (`0.5`) as well as
//!   Arakoon's integer.
//! - The nodes are those in `cluster` and, as in Arakoon, every other
//!   section with `learner = true` (a learner); a learner may also be
//!   listed in `cluster`. `targets` is accepted and has no effect (a
//!   learner follows whichever node is master). Node ids follow `cluster`'s
//!   order, then the other learners by section name.
//! - `fsync` defaults to `true` (durability first); `fsync_interval` or
//!   `fsync_entries` without `fsync` choose Arakoon's relaxed modes.
//! - Keys Arakoon 1.9 knows that have no effect in this design are
//!   accepted with one warning each saying why.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod ini;
mod reader;
mod rules;

use ini::Ini;
use reader::Reader;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What went wrong, with where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("config line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("config: [{section}] {key} is required but missing")]
    Missing { section: String, key: String },
    #[error("config: [{section}] {key} = '{value}': {reason}")]
    Invalid {
        section: String,
        key: String,
        value: String,
        reason: String,
    },
    #[error("config: cannot read {path}: {reason}")]
    Io { path: String, reason: String },
}

/// How the master is chosen (`master`, `preferred_master(s)`, `readonly`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MasterMode {
    /// Any voter may be elected.
    Elected,
    /// Only this node may ever be master.
    Forced(String),
    /// These nodes, in order, are handed mastership when caught up.
    Preferred(Vec<String>),
    /// A one-node cluster that serves reads and refuses updates.
    ReadOnly,
}

/// Tlog compression of sealed segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlogCompression {
    /// Arakoon's default name; we compress with our codec (see the tlog docs).
    Snappy,
    /// Our codec, named.
    Lz4,
    /// Sealed segments stay plain.
    None,
}

/// Log levels, Arakoon's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Fatal,
}

/// TLS settings of the cluster (parsed and validated; see the node for support).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub ca_cert: PathBuf,
    pub service: bool,
    pub service_validate_peer: bool,
    pub version: String,
}

/// Where a node's log lines go (`log_sinks`, Arakoon's forms).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogSink {
    /// `console:` — standard error.
    Console,
    /// `file:///path`, `file:path` or a plain path (relative to the
    /// directory the node starts in).
    File(PathBuf),
}

/// Per-component log levels of a `log_config` section (Arakoon's
/// component names; each maps to the code that does that job here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogComponents {
    pub client_protocol: Option<LogLevel>,
    pub paxos: Option<LogLevel>,
    pub tcp_messaging: Option<LogLevel>,
    pub tlog_map: Option<LogLevel>,
    pub server: Option<LogLevel>,
}

/// TCP keepalive on the node's and the clients' sockets (`[global]`
/// `enable_tcp_keepalive`, `tcp_keepalive_time`, `tcp_keepalive_intvl`,
/// `tcp_keepalive_probes`; Arakoon's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpKeepalive {
    pub enabled: bool,
    /// Idle time before the first probe.
    pub time: Duration,
    /// Between probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped.
    pub probes: u32,
}

impl Default for TcpKeepalive {
    fn default() -> TcpKeepalive {
        TcpKeepalive {
            enabled: true,
            time: Duration::from_secs(20),
            interval: Duration::from_secs(20),
            probes: 3,
        }
    }
}

/// One node's section.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeConfig {
    pub name: String,
    /// Addresses; the first is used to connect.
    pub ips: Vec<String>,
    pub client_port: u16,
    pub messaging_port: u16,
    pub home: PathBuf,
    pub tlog_dir: PathBuf,
    pub tlx_dir: PathBuf,
    pub head_dir: PathBuf,
    pub log_dir: PathBuf,
    pub log_level: LogLevel,
    /// Where log lines go; default: the file `<log_dir>/<name>.log` and
    /// stderr (Arakoon: the file only).
    pub log_sinks: Vec<LogSink>,
    pub log_config: Option<String>,
    /// The levels of the `log_config` section (empty without one).
    pub log_components: LogComponents,
    pub batched_transaction_config: Option<String>,
    pub learner: bool,
    pub witness: bool,
    pub tlog_compression: TlogCompression,
    pub fsync: bool,
    pub fsync_interval: Option<Duration>,
    pub fsync_entries: Option<u64>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub collapse_slowdown: Option<f64>,
    pub head_copy_throttling: f64,
    pub optimize_db_slowdown: f64,
    pub reporting: Duration,
    /// Our key: port of the Prometheus `/metrics` endpoint (none by default).
    pub metrics_port: Option<u16>,
    /// Our key (`slave_apply_delay`, milliseconds): how long a node that is
    /// not master may leave committed entries unapplied, to apply several in
    /// one store transaction. Default [`SLAVE_APPLY_DELAY_DEFAULT`]; 0
    /// applies at once.
    pub slave_apply_delay: Duration,
    /// Our key (`client_frame_timeout`, seconds): how long a client may take
    /// to send the rest of a request it began; a connection stalled longer
    /// is closed (a client that sends half a frame and vanishes does not
    /// hold a connection slot for good). Idle connections between requests
    /// are not timed out (Arakoon's clients keep theirs).
    pub client_frame_timeout: Duration,
    /// Our key (`auto_collapse_keep`): the node collapses its tlog by
    /// itself, keeping this many full tlog segments (Arakoon's `n` of
    /// `collapse_tlogs`) beside the active one; 0 turns it off. Default
    /// [`AUTO_COLLAPSE_KEEP_DEFAULT`].
    pub auto_collapse_keep: u32,
    /// Our key (`min_free_disk`, MiB; here in bytes): a master whose home,
    /// tlog or tlx directory has less free space than this refuses updates
    /// (`E_READ_ONLY`, saying why) and goes on serving reads, until space
    /// returns. 0 turns the check off. Default [`MIN_FREE_DISK_DEFAULT_MB`].
    pub min_free_disk: u64,
}

/// Default of `min_free_disk`, MiB.
pub const MIN_FREE_DISK_DEFAULT_MB: u64 = 128;
/// Largest `min_free_disk`, MiB (1 TiB).
pub const MIN_FREE_DISK_MAX_MB: u64 = 1 << 20;

/// Default of `auto_collapse_keep`.
pub const AUTO_COLLAPSE_KEEP_DEFAULT: u32 = 10;
/// Largest `auto_collapse_keep`.
pub const AUTO_COLLAPSE_KEEP_MAX: u64 = 100_000;

/// Default of `client_frame_timeout`.
pub const CLIENT_FRAME_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);
/// Largest `client_frame_timeout`, seconds.
pub const CLIENT_FRAME_TIMEOUT_MAX_SECS: u64 = 3_600;

/// Default of `slave_apply_delay`.
pub const SLAVE_APPLY_DELAY_DEFAULT: Duration = Duration::from_millis(10);
/// Largest `slave_apply_delay`, milliseconds.
pub const SLAVE_APPLY_DELAY_MAX_MS: u64 = 60_000;

impl NodeConfig {
    /// `ip:client_port` of the first address.
    pub fn client_address(&self) -> String {
        format!("{}:{}", self.ips[0], self.client_port)
    }

    /// `ip:messaging_port` of the first address.
    pub fn messaging_address(&self) -> String {
        format!("{}:{}", self.ips[0], self.messaging_port)
    }
}

/// Batching limits of a `batched_transaction_config` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchConfig {
    pub max_entries: Option<u64>,
    pub max_size: Option<u64>,
}

/// The whole cluster's config.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    pub cluster_id: String,
    /// In the order of `cluster`.
    pub nodes: Vec<NodeConfig>,
    pub master: MasterMode,
    pub lease_period: Duration,
    /// Fixed quorum override (dangerous), if set.
    pub quorum: Option<usize>,
    pub tlog_max_entries: u64,
    pub tlog_max_size: u64,
    pub client_buffer_capacity: usize,
    pub max_value_size: usize,
    pub max_buffer_size: usize,
    pub tls: Option<TlsConfig>,
    pub tcp_keepalive: TcpKeepalive,
    /// `batched_transaction_config` sections by name.
    pub batch_configs: BTreeMap<String, BatchConfig>,
}

impl ClusterConfig {
    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&NodeConfig> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// The voters' names, in `cluster` order.
    pub fn voters(&self) -> impl Iterator<Item = &NodeConfig> {
        self.nodes.iter().filter(|n| !n.learner)
    }
}

/// A parsed config and the warnings found on the way (unknown keys, ignored settings).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub config: ClusterConfig,
    pub warnings: Vec<String>,
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    parse(&text)
}

/// Parses and validates config text.
pub fn parse(text: &str) -> Result<Loaded, ConfigError> {
    let ini = Ini::parse(text)?;
    let mut reader = Reader::new(&ini);
    let config = rules::read_cluster(&mut reader)?;
    let mut warnings = reader.take_warnings();
    warnings.extend(reader.unknown_keys(&config));
    Ok(Loaded { config, warnings })
}

#[cfg(test)]
mod tests;
