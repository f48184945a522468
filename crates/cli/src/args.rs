//! Arakoon's command line: `-config FILE` and one action flag
//! (`--get KEY`, `--who-master`, …), parsed into an [`Invocation`].
//!
//! Arakoon's options are long names with a single dash (`-config`,
//! `-left`, `-right`, `-max_results`). [`normalise`] is the one place that
//! turns them into clap's double-dash form; it knows every flag's number of
//! values, so a value that looks like a flag (`--set k -config`) stays a
//! value. `--config` etc. are accepted as well.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgGroup, CommandFactory, FromArgMatches, Parser};

/// Arakoon's default config path, used when `-config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "cfg/arakoon.ini";
/// Arakoon's default `-max_results` for `--prefix` and `--range-entries`.
pub const DEFAULT_MAX_RESULTS: usize = 100;

/// Arakoon's single-dash options, and the double-dash names clap knows them by.
const SINGLE_DASH_OPTIONS: &[(&str, &str)] = &[
    ("-config", "--config"),
    ("-left", "--left"),
    ("-right", "--right"),
    ("-max_results", "--max_results"),
    ("-dump-values", "--dump-values"),
    ("-start", "--start"),
    ("-daemonize", "--daemonize"),
    ("-autofix", "--autofix"),
    ("-catchup-only", "--catchup-only"),
    ("-watch", "--watch"),
    ("-scenario", "--scenario"),
    ("-value_size", "--value_size"),
    ("-key_size", "--key_size"),
    ("-tx_size", "--tx_size"),
    ("-max_n", "--max_n"),
    ("-n_clients", "--n_clients"),
    ("-tls-ca-cert", "--tls-ca-cert"),
    ("-tls-cert", "--tls-cert"),
    ("-tls-key", "--tls-key"),
    ("-tls-version", "--tls-version"),
];

/// Every flag that takes values, with how many: what follows it is copied
/// as is, never normalised.
const FLAG_ARITY: &[(&str, usize)] = &[
    ("--config", 1),
    ("--left", 1),
    ("--right", 1),
    ("--max_results", 1),
    ("--max-results", 1),
    ("--set", 2),
    ("--get", 1),
    ("--get-raw", 1),
    ("--set-raw", 1),
    ("--delete", 1),
    ("--delete-prefix", 1),
    ("--prefix", 1),
    ("--node-version", 1),
    ("--node-state", 1),
    ("--node", 1),
    ("--ping", 3),
    ("--drop-master", 3),
    ("--collapse-remote", 4),
    ("--collapse-local", 2),
    ("--truncate-tlog", 1),
    ("--compress-tlog", 1),
    ("--uncompress-tlog", 1),
    ("--replay-tlogs", 2),
    ("--strip-tlog", 1),
    ("--mark-tlog", 2),
    ("--make-tlog", 2),
    ("--inject-as-head", 2),
    ("--dump-tlog", 1),
    ("--dump-store", 1),
    ("--inspect-store", 1),
    ("--verify-db", 1),
    ("--load", 1),
    ("--scenario", 1),
    ("--value_size", 1),
    ("--key_size", 1),
    ("--tx_size", 1),
    ("--max_n", 1),
    ("--n_clients", 1),
    ("--tls-ca-cert", 1),
    ("--tls-cert", 1),
    ("--tls-key", 1),
    ("--tls-version", 1),
];

/// Rewrites Arakoon's single-dash long options (`-config`) to the
/// double-dash form (`--config`), leaving flag values untouched.
pub fn normalise(args: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len());
    let mut values_to_copy = 0usize;
    for arg in args {
        if values_to_copy > 0 {
            values_to_copy -= 1;
            out.push(arg.clone());
            continue;
        }
        let text = arg.to_str();
        let renamed = text.and_then(|t| {
            SINGLE_DASH_OPTIONS
                .iter()
                .find(|(single, _)| *single == t)
                .map(|(_, double)| *double)
        });
        let flag = renamed.or(text).unwrap_or_default();
        values_to_copy = FLAG_ARITY
            .iter()
            .find(|(name, _)| *name == flag)
            .map_or(0, |(_, arity)| *arity);
        out.push(renamed.map_or_else(|| arg.clone(), OsString::from));
    }
    out
}

/// Headings of `--help`, one per family of flags.
const CLIENT: &str = "Client actions (against the cluster in -config)";
const ADMIN: &str = "Cluster and node queries, admin";
const OFFLINE: &str = "Offline tools (on a stopped node's files)";
const NODE: &str = "Running a node";
const TLS: &str = "TLS of client actions (Arakoon's -tls-ca-cert, -tls-cert, -tls-key)";
const BENCH: &str = "Load (Arakoon's --benchmark and --load; see also `arakoon bench`)";

/// The exit statuses, as `--help` lists them (see [`crate::exit`]).
pub const EXIT_STATUS_HELP: &str = "Exit status:
  0  success (also when the reader of the output stops early, as `| head` does)
  1  refused or failed: a missing key, a failed assertion, a node's error
     answer, a config or file that cannot be read
  2  bad command line
  3  the cluster cannot be reached: no connection, no answer in time, no master
  4  outcome unknown: an update may or may not have been applied; read back
     before retrying
  5  an offline tool found a damaged tlog or store file";

/// The flags as clap parses them (after [`normalise`]).
#[derive(Debug, Parser)]
#[command(
    name = "arakoon",
    about = "Arakoon-compatible replicated key-value store: client actions and tools",
    override_usage = "arakoon [-config FILE] <ACTION>\n       arakoon <SUBCOMMAND> [ARGS]",
    after_help = "Arakoon's single-dash options (-config, -left, -right, -max_results, \
                  -dump-values) are accepted as shown, or with two dashes.\n\
                  Offline tools read our formats, not Arakoon's: the tlog is a directory of \
                  CRC32C-framed segments (.tlog, and lz4-sealed .tlz), the store one redb \
                  file (<home>/<node>.db); they do the same jobs as Arakoon's tools.",
    disable_version_flag = true
)]
#[command(group(ArgGroup::new("action").required(true).multiple(false)))]
struct Flags {
    /// The cluster config file (default cfg/arakoon.ini); Arakoon spells it -config
    #[arg(long = "config", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Set KEY to VALUE
    #[arg(long, group = "action", num_args = 2, value_names = ["KEY", "VALUE"], allow_hyphen_values = true, help_heading = CLIENT)]
    set: Option<Vec<OsString>>,

    /// Print KEY's value (escaped, in double quotes)
    #[arg(long, group = "action", value_name = "KEY", allow_hyphen_values = true, help_heading = CLIENT)]
    get: Option<OsString>,

    /// Print KEY's value as is, without quotes or newline
    #[arg(
        long = "get-raw",
        group = "action",
        value_name = "KEY",
        allow_hyphen_values = true,
        help_heading = CLIENT
    )]
    get_raw: Option<OsString>,

    /// Set KEY to the bytes read from standard input
    #[arg(
        long = "set-raw",
        group = "action",
        value_name = "KEY",
        allow_hyphen_values = true,
        help_heading = CLIENT
    )]
    set_raw: Option<OsString>,

    /// Delete KEY
    #[arg(long, group = "action", value_name = "KEY", allow_hyphen_values = true, help_heading = CLIENT)]
    delete: Option<OsString>,

    /// Delete every key starting with PREFIX; print how many
    #[arg(
        long = "delete-prefix",
        group = "action",
        value_name = "PREFIX",
        allow_hyphen_values = true,
        help_heading = CLIENT
    )]
    delete_prefix: Option<OsString>,

    /// Print the keys starting with PREFIX (at most -max_results)
    #[arg(
        long,
        group = "action",
        value_name = "PREFIX",
        allow_hyphen_values = true,
        help_heading = CLIENT
    )]
    prefix: Option<OsString>,

    /// Print the entries from -left (included) to -right (excluded), at most -max_results
    #[arg(long = "range-entries", group = "action", help_heading = CLIENT)]
    range_entries: bool,

    /// As --range-entries, descending: -left is the high end
    #[arg(long = "rev-range-entries", group = "action", help_heading = CLIENT)]
    rev_range_entries: bool,

    /// Send a no-op through consensus
    #[arg(long, group = "action", help_heading = CLIENT)]
    nop: bool,

    /// Print how many keys the store holds
    #[arg(long = "n-values", group = "action", help_heading = CLIENT)]
    n_values: bool,

    /// Print the master's name
    #[arg(long = "who-master", group = "action", help_heading = ADMIN)]
    who_master: bool,

    /// Print whether the master thinks progress is possible
    #[arg(long = "expect-progress-possible", group = "action", help_heading = ADMIN)]
    expect_progress_possible: bool,

    /// Print the master's statistics
    #[arg(long, group = "action", help_heading = ADMIN)]
    statistics: bool,

    /// One table of every node (role, term, tlog, commit and applied indices, lag, sizes on disk, last collapse) and a divergence check
    #[arg(long = "inspect-cluster", group = "action", help_heading = ADMIN)]
    inspect_cluster: bool,
    /// With --inspect-cluster: redraw it every second until Ctrl-C (Arakoon spells it -watch)
    #[arg(long, help_heading = ADMIN)]
    watch: bool,

    /// Print the version of node NODE
    #[arg(long = "node-version", group = "action", value_name = "NODE", help_heading = ADMIN)]
    node_version: Option<String>,

    /// Print the state of node NODE
    #[arg(long = "node-state", group = "action", value_name = "NODE", help_heading = ADMIN)]
    node_state: Option<String>,

    /// Ping the node at IP:PORT of cluster CLUSTER_ID; print its greeting and the round trip
    #[arg(long, group = "action", num_args = 3, value_names = ["CLUSTER_ID", "IP", "PORT"], help_heading = ADMIN)]
    ping: Option<Vec<String>>,

    /// Ask the node at IP:PORT of cluster CLUSTER_ID to give up mastership
    #[arg(long = "drop-master", group = "action", num_args = 3, value_names = ["CLUSTER_ID", "IP", "PORT"], help_heading = ADMIN)]
    drop_master: Option<Vec<String>>,

    /// Ask the node at IP:PORT of cluster CLUSTER_ID to collapse its tlog, keeping its newest N tlogs
    #[arg(long = "collapse-remote", group = "action", num_args = 4, value_names = ["CLUSTER_ID", "IP", "PORT", "N"], help_heading = ADMIN)]
    collapse_remote: Option<Vec<String>>,

    /// Stream a consistent copy of the store of the node at IP:PORT (a slave: a master refuses, as Arakoon's) into FILE (here a redb store file)
    #[arg(long = "backup-db", group = "action", num_args = 4, value_names = ["CLUSTER_ID", "IP", "PORT", "FILE"], help_heading = ADMIN)]
    backup_db: Option<Vec<String>>,

    /// Ask the node at IP:PORT to optimize its store (refused here on every node: redb compacts offline, see --optimize-db-offline)
    #[arg(long = "optimize-db", group = "action", num_args = 3, value_names = ["CLUSTER_ID", "IP", "PORT"], help_heading = ADMIN)]
    optimize_db: Option<Vec<String>>,

    /// Ask the node at IP:PORT to defragment its store (as --optimize-db)
    #[arg(long = "defrag-db", group = "action", num_args = 3, value_names = ["CLUSTER_ID", "IP", "PORT"], help_heading = ADMIN)]
    defrag_db: Option<Vec<String>>,

    /// Ask the node at IP:PORT (a slave) to drop its tlogs but the newest N (here the store is the head: a collapse keeping N), answered when done
    #[arg(long = "copy-db-to-head", group = "action", num_args = 4, value_names = ["CLUSTER_ID", "IP", "PORT", "N"], help_heading = ADMIN)]
    copy_db_to_head: Option<Vec<String>>,

    /// Ask the node at IP:PORT to make its store durable now (Arakoon's flush_store opcode; this flag is ours)
    #[arg(long = "flush-store", group = "action", num_args = 3, value_names = ["CLUSTER_ID", "IP", "PORT"], help_heading = ADMIN)]
    flush_store: Option<Vec<String>>,

    /// Compact a stopped node's store file in place (redb compaction: what --optimize-db and --defrag-db do on Arakoon's store)
    #[arg(long = "optimize-db-offline", group = "action", value_name = "FILE", allow_hyphen_values = true, help_heading = OFFLINE)]
    optimize_db_offline: Option<PathBuf>,

    /// Make the store file FILE (a --backup-db) stopped node NODE's store: it starts from it and catches up from its peers
    #[arg(long = "inject-as-head", group = "action", num_args = 2, value_names = ["FILE", "NODE"], allow_hyphen_values = true, help_heading = OFFLINE)]
    inject_as_head: Option<Vec<OsString>>,
    /// With --inject-as-head: inject a backup that is not newer than the node's store
    #[arg(long, help_heading = OFFLINE)]
    force: bool,
    /// With --inject-as-head: move FILE rather than copy it
    #[arg(long, help_heading = OFFLINE)]
    inplace: bool,
    /// With --inject-as-head: every node lost its data and is restored from a backup; this one comes up trusted (never on one node of a running cluster)
    #[arg(long = "whole-cluster", help_heading = OFFLINE)]
    whole_cluster: bool,

    /// Apply the entries of tlog directory TLOG_DIR after the store DB's applied index (up to END_I) to DB, made if missing (Arakoon's TLOG_DIR TLX_DIR DB [END_I] is accepted: sealed segments are in TLOG_DIR here)
    #[arg(long = "replay-tlogs", group = "action", num_args = 2..=4, value_names = ["TLOG_DIR", "DB", "END_I"], allow_hyphen_values = true, help_heading = OFFLINE)]
    replay_tlogs: Option<Vec<OsString>>,
    /// Cut the newest tlog segment FILE (.tlog) after its last whole entry; the node then recovers its votes and the entries cut from its peers
    #[arg(long = "truncate-tlog", group = "action", value_name = "FILE", allow_hyphen_values = true, help_heading = OFFLINE)]
    truncate_tlog: Option<PathBuf>,
    /// Seal (lz4) the full plain segments of FILE's tlog, FILE among them, as the node does
    #[arg(long = "compress-tlog", group = "action", value_name = "FILE", allow_hyphen_values = true, help_heading = OFFLINE)]
    compress_tlog: Option<PathBuf>,
    /// Rewrite the sealed tlog segment FILE (.tlz) as a plain .tlog with the same entries
    #[arg(long = "uncompress-tlog", group = "action", value_name = "FILE", allow_hyphen_values = true, help_heading = OFFLINE)]
    uncompress_tlog: Option<PathBuf>,
    /// Arakoon's: remove a tlog's clean-shutdown marker (refused: our tlog has no marker)
    #[arg(long = "strip-tlog", group = "action", value_name = "FILE", allow_hyphen_values = true, help_heading = OFFLINE)]
    strip_tlog: Option<PathBuf>,
    /// Arakoon's: add a clean-shutdown marker KEY (refused: our tlog has no marker)
    #[arg(long = "mark-tlog", group = "action", num_args = 2, value_names = ["FILE", "KEY"], allow_hyphen_values = true, help_heading = OFFLINE)]
    mark_tlog: Option<Vec<OsString>>,
    /// Arakoon's: make an empty tlog file with a counter (refused: our segments are named by their first index)
    #[arg(long = "make-tlog", group = "action", num_args = 2, value_names = ["FILE", "COUNTER"], allow_hyphen_values = true, help_heading = OFFLINE)]
    make_tlog: Option<Vec<OsString>>,

    /// Collapse the tlog of stopped node NODE of the cluster in -config, keeping its newest N tlogs
    #[arg(long = "collapse-local", group = "action", num_args = 2, value_names = ["NODE", "N"], help_heading = OFFLINE)]
    collapse_local: Option<Vec<String>>,

    /// Print every entry of a tlog segment file (.tlog, .tlz) or tlog directory, one line each: index:term:updates
    #[arg(long = "dump-tlog", group = "action", value_name = "FILE", allow_hyphen_values = true, help_heading = OFFLINE)]
    dump_tlog: Option<PathBuf>,

    /// Print a store file's applied index and key count, then every key and value
    #[arg(long = "dump-store", group = "action", value_name = "FILE", allow_hyphen_values = true, help_heading = OFFLINE)]
    dump_store: Option<PathBuf>,

    /// Print a store file's entries from -left (included) to -right (excluded), at most -max_results
    #[arg(long = "inspect-store", group = "action", value_name = "FILE", allow_hyphen_values = true, help_heading = OFFLINE)]
    inspect_store: Option<PathBuf>,

    /// Check a store file: verify every page's checksum, walk every key; print its applied index and key count
    #[arg(long = "verify-db", group = "action", value_name = "FILE", allow_hyphen_values = true, help_heading = OFFLINE)]
    verify_db: Option<PathBuf>,

    /// Run node NAME of the cluster in -config, until SIGTERM or SIGINT
    #[arg(long, group = "action", value_name = "NAME", help_heading = NODE)]
    node: Option<String>,
    /// With --node: nothing (Arakoon's marker for process matching: `pgrep -f '... -start'`)
    #[arg(long, help_heading = NODE)]
    start: bool,
    /// With --node: run in the background (double fork, new session, stdio to /dev/null), writing the pid to <home>/<name>.pid until it stops
    #[arg(long, help_heading = NODE)]
    daemonize: bool,
    /// With --node: accepted; a torn tlog tail (Arakoon's unexpected end) is always repaired at start, damage inside the tlog always refused
    #[arg(long, help_heading = NODE)]
    autofix: bool,
    /// With --node: catch up with the cluster's committed entries, then stop (exit 0)
    #[arg(long = "catchup-only", help_heading = NODE)]
    catchup_only: bool,
    /// Arakoon's benchmark on the cluster in -config (runs `arakoon bench` with its scenarios mapped)
    #[arg(long, group = "action", help_heading = BENCH)]
    benchmark: bool,
    /// N clients, each setting 1000 keys at 10 per second, printing each step (Arakoon's --load)
    #[arg(long, group = "action", value_name = "N", help_heading = BENCH)]
    load: Option<usize>,
    /// With --benchmark: comma list of master, set, set_tx, get, multi_get, range, range_entries (default all)
    #[arg(long, value_name = "LIST", help_heading = BENCH)]
    scenario: Option<String>,
    /// With --benchmark: value size in bytes (default 10)
    #[arg(long = "value_size", value_name = "BYTES", help_heading = BENCH)]
    value_size: Option<usize>,
    /// With --benchmark: key size in bytes (default 10)
    #[arg(long = "key_size", value_name = "BYTES", help_heading = BENCH)]
    key_size: Option<usize>,
    /// With --benchmark: updates per set_tx sequence (default 100)
    #[arg(long = "tx_size", value_name = "N", help_heading = BENCH)]
    tx_size: Option<usize>,
    /// With --benchmark: operations per scenario (default 1000000)
    #[arg(long = "max_n", value_name = "N", help_heading = BENCH)]
    max_n: Option<u64>,
    /// With --benchmark: concurrent clients (default 1)
    #[arg(long = "n_clients", value_name = "N", help_heading = BENCH)]
    n_clients: Option<usize>,

    /// Print this program's version
    #[arg(long, group = "action")]
    version: bool,

    /// Connect with TLS, checking the node's certificate against this CA (default with tls_service in -config: its tls_ca_cert)
    #[arg(long = "tls-ca-cert", value_name = "FILE", help_heading = TLS)]
    tls_ca_cert: Option<PathBuf>,
    /// Client certificate, for a cluster with tls_service_validate_peer (with -tls-key)
    #[arg(long = "tls-cert", value_name = "FILE", help_heading = TLS)]
    tls_cert: Option<PathBuf>,
    /// The client certificate's key (with -tls-cert)
    #[arg(long = "tls-key", value_name = "FILE", help_heading = TLS)]
    tls_key: Option<PathBuf>,
    /// Oldest TLS version offered: 1.2 (1.2 and 1.3) or 1.3 (Arakoon's 1.0 and 1.1 are taken as 1.2)
    #[arg(long = "tls-version", value_name = "VERSION", help_heading = TLS)]
    tls_version: Option<String>,

    /// Left boundary of --range-entries and --inspect-store (Arakoon: -left)
    #[arg(long, value_name = "KEY", allow_hyphen_values = true)]
    left: Option<OsString>,

    /// Right boundary of --range-entries and --inspect-store (Arakoon: -right)
    #[arg(long, value_name = "KEY", allow_hyphen_values = true)]
    right: Option<OsString>,

    /// Most results of --prefix, --range-entries, --inspect-store (Arakoon: -max_results; default 100)
    #[arg(long = "max_results", alias = "max-results", value_name = "N")]
    max_results: Option<usize>,

    /// With --dump-tlog: print the values too, escaped (Arakoon: -dump-values)
    #[arg(long = "dump-values")]
    dump_values: bool,
}

/// The command line's clap definition (for `arakoon completions`).
pub fn command() -> clap::Command {
    Flags::command()
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `--help`: print this text.
    Help(String),
    /// `--version`: this program's version.
    LocalVersion,
    /// `--node NAME`: run a node.
    Node {
        name: String,
        config: PathBuf,
        daemonize: bool,
        catchup_only: bool,
    },
    /// `--benchmark`: `arakoon bench` with these arguments.
    Benchmark { bench_args: Vec<String> },
    /// `--load N`: N clients of Arakoon's load.
    Load { config: PathBuf, clients: usize },
    /// An action against the cluster in `config`.
    Client {
        config: PathBuf,
        action: ClientAction,
    },
    /// An action against one node given by address (no config).
    Direct {
        cluster_id: String,
        address: String,
        action: DirectAction,
    },
    /// A tool on a stopped node's files.
    Offline(OfflineTool),
    /// `--inject-as-head FILE NODE`: a backup as a stopped node's store.
    InjectAsHead {
        file: PathBuf,
        name: String,
        config: PathBuf,
        force: bool,
        in_place: bool,
        whole_cluster: bool,
    },
    /// `--collapse-local NODE N`: collapse a stopped node's tlog.
    CollapseLocal {
        name: String,
        tlogs_to_keep: u32,
        config: PathBuf,
    },
}

/// An offline tool and its file (a tlog segment or directory, a store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfflineTool {
    DumpTlog {
        path: PathBuf,
        values: bool,
    },
    DumpStore {
        path: PathBuf,
    },
    InspectStore {
        path: PathBuf,
        left: Option<Vec<u8>>,
        right: Option<Vec<u8>>,
        max: usize,
    },
    VerifyDb {
        path: PathBuf,
    },
    /// Compact a store file in place.
    OptimizeDb {
        path: PathBuf,
    },
    /// Apply a tlog directory's entries to a store file.
    ReplayTlogs {
        dir: PathBuf,
        /// Arakoon's tlx directory, if given (not read: see the tool).
        tlx: Option<PathBuf>,
        db: PathBuf,
        end: Option<u64>,
    },
    /// Cut the newest tlog segment after its last whole entry.
    TruncateTlog {
        path: PathBuf,
    },
    /// Seal a tlog's full plain segments.
    CompressTlog {
        path: PathBuf,
    },
    /// Rewrite a sealed segment as a plain one.
    UncompressTlog {
        path: PathBuf,
    },
    /// One of Arakoon's marker tools, which our tlog has no use for.
    NoMarker {
        flag: &'static str,
        path: PathBuf,
    },
}

/// An action on one node named by its address (Arakoon's
/// `CLUSTER_ID IP PORT` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirectAction {
    Ping,
    DropMaster,
    /// `get_db` into this file.
    BackupDb {
        file: PathBuf,
    },
    OptimizeDb,
    DefragDb,
    FlushStore,
    CopyDbToHead {
        tlogs_to_keep: i32,
    },
    /// `collapse_tlogs`, keeping this many tlogs (at least 1).
    CollapseRemote {
        tlogs_to_keep: i32,
    },
}

/// Arakoon's `N` of the collapse flags: how many tlogs to keep, at least 1.
fn tlogs_to_keep(flag: &str, value: Option<&String>) -> Result<i32, UsageError> {
    let value = value.ok_or_else(|| UsageError(format!("{flag} needs N, the tlogs to keep")))?;
    match value.parse::<i32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(UsageError(format!(
            "{flag}: N = {value:?}: the number of tlogs to keep must be a whole number of at least 1"
        ))),
    }
}

/// `CLUSTER_ID IP PORT` as a cluster id and a socket address.
fn direct_target(flag: &str, values: &[String]) -> Result<(String, String), UsageError> {
    let [cluster_id, ip, port] = values else {
        return Err(UsageError(format!("{flag} needs CLUSTER_ID IP PORT")));
    };
    let port: u16 = port.parse().map_err(|_| {
        UsageError(format!(
            "{flag}: port {port:?} is not a number in 0..=65535"
        ))
    })?;
    let address = if ip.contains(':') && !ip.starts_with('[') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    };
    Ok((cluster_id.clone(), address))
}

/// `-config`'s value: a path, or Arakoon's URL forms: `file://PATH` is the
/// path; `arakoon://` and `etcd://` (a config kept in another cluster) are
/// refused, saying what to give instead.
fn config_path(given: PathBuf) -> Result<PathBuf, UsageError> {
    let Some(text) = given.to_str() else {
        return Ok(given);
    };
    if let Some(path) = text.strip_prefix("file://") {
        return Ok(PathBuf::from(path));
    }
    for scheme in ["arakoon://", "etcd://"] {
        if text.starts_with(scheme) {
            return Err(UsageError(format!(
                "-config {text}: configs kept in {} are not supported here; \
                 give the path of the .ini file (or file://PATH)",
                scheme.trim_end_matches("://")
            )));
        }
    }
    Ok(given)
}

/// Arakoon's `--benchmark` sizes.
struct BenchmarkSizes {
    value_size: usize,
    key_size: usize,
    max_n: u64,
    n_clients: usize,
}

/// Arakoon's `--benchmark` as `arakoon bench` arguments. Its scenarios map
/// to ours: `set` → `set`, `set_tx` → `sequence` (ours has a fixed size;
/// `-tx_size` is not used), `get` and `multi_get` → `get`, `range` and
/// `range_entries` → `range`; `master` (a who-master round trip) has no
/// scenario of its own. Repeats are dropped, the order kept.
fn benchmark_args(
    config: &std::path::Path,
    scenario: Option<&str>,
    sizes: BenchmarkSizes,
) -> Result<Vec<String>, UsageError> {
    let list = scenario.unwrap_or("master, set, set_tx, get, multi_get, range, range_entries");
    let mut ours: Vec<&str> = Vec::new();
    for name in list.split([',', ' ', '\t']).filter(|s| !s.is_empty()) {
        let mapped = match name {
            "master" => None,
            "set" => Some("set"),
            "set_tx" => Some("sequence"),
            "get" | "multi_get" => Some("get"),
            "range" | "range_entries" => Some("range"),
            other => {
                return Err(UsageError(format!(
                    "-scenario: {other:?} is not one of master, set, set_tx, get, multi_get, range, range_entries"
                )))
            }
        };
        if let Some(m) = mapped.filter(|m| !ours.contains(m)) {
            ours.push(m);
        }
    }
    if ours.is_empty() {
        ours.push("set");
    }
    Ok(vec![
        "-config".to_string(),
        config.display().to_string(),
        "--scenario".to_string(),
        ours.join(","),
        "--value-size".to_string(),
        sizes.value_size.to_string(),
        "--key-size".to_string(),
        sizes.key_size.max(1).to_string(),
        "--ops".to_string(),
        sizes.max_n.max(1).to_string(),
        "--clients".to_string(),
        sizes.n_clients.max(1).to_string(),
    ])
}

/// A client action. Keys and values are bytes, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAction {
    /// `--inspect-cluster [-watch]`.
    InspectCluster {
        watch: bool,
    },
    Set {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Get {
        key: Vec<u8>,
    },
    /// The value from standard input.
    SetRaw {
        key: Vec<u8>,
    },
    GetRaw {
        key: Vec<u8>,
    },
    Delete {
        key: Vec<u8>,
    },
    DeletePrefix {
        prefix: Vec<u8>,
    },
    Prefix {
        prefix: Vec<u8>,
        max: usize,
    },
    RangeEntries {
        left: Option<Vec<u8>>,
        right: Option<Vec<u8>>,
        max: usize,
        reverse: bool,
    },
    WhoMaster,
    ExpectProgressPossible,
    Statistics,
    Nop,
    KeyCount,
    NodeVersion {
        node: String,
    },
    NodeState {
        node: String,
    },
}

/// A bad command line, with its one-line reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn bytes(arg: OsString) -> Vec<u8> {
    arg.into_encoded_bytes()
}

/// Parses Arakoon-style arguments (without the program name).
pub fn parse(args: &[OsString]) -> Result<Invocation, UsageError> {
    parse_with_tls(args).map(|(invocation, _)| invocation)
}

/// TLS of a client action (`-tls-ca-cert`, `-tls-cert`, `-tls-key`,
/// `-tls-version`); empty: as the config says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientTls {
    pub ca_cert: Option<PathBuf>,
    pub identity: Option<client::TlsIdentity>,
    pub min_version: Option<client::TlsMinVersion>,
}

impl ClientTls {
    pub fn is_empty(&self) -> bool {
        *self == ClientTls::default()
    }
}

/// [`parse`], and the TLS options of a client action.
pub fn parse_with_tls(args: &[OsString]) -> Result<(Invocation, ClientTls), UsageError> {
    let mut argv = vec![OsString::from("arakoon")];
    argv.extend(normalise(args));
    let mut command = Flags::command();
    let matches = match command.try_get_matches_from_mut(argv) {
        Ok(matches) => matches,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            return Ok((
                Invocation::Help(command.render_help().to_string()),
                ClientTls::default(),
            ));
        }
        Err(e) => return Err(UsageError(one_line(&e))),
    };
    let mut flags = Flags::from_arg_matches(&matches).map_err(|e| UsageError(one_line(&e)))?;
    let tls = flags.take_tls()?;
    let invocation = flags.into_invocation()?;
    let for_clients = matches!(
        invocation,
        Invocation::Client { .. } | Invocation::Direct { .. } | Invocation::Load { .. }
    );
    if !tls.is_empty() && !for_clients {
        return Err(UsageError(
            "-tls-ca-cert, -tls-cert, -tls-key and -tls-version are for client actions only \
             (a node takes its TLS settings from the config)"
                .to_string(),
        ));
    }
    Ok((invocation, tls))
}

/// clap's error as one line, without its "error: " lead and usage block.
fn one_line(error: &clap::Error) -> String {
    if error.kind() == clap::error::ErrorKind::MissingRequiredArgument {
        // The only required argument is the action group.
        return "no action given: one of --get, --set, --who-master, … (try --help)".to_string();
    }
    let rendered = error.render().to_string();
    let first = rendered.lines().next().unwrap_or("bad command line");
    let reason = first.strip_prefix("error: ").unwrap_or(first);
    format!("{reason} (try --help)")
}

impl Flags {
    fn take_tls(&mut self) -> Result<ClientTls, UsageError> {
        let identity = match (self.tls_cert.take(), self.tls_key.take()) {
            (Some(cert), Some(key)) => Some(client::TlsIdentity { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(UsageError("-tls-cert needs -tls-key".to_string()));
            }
            (None, Some(_)) => {
                return Err(UsageError("-tls-key needs -tls-cert".to_string()));
            }
        };
        let min_version = match self.tls_version.take().as_deref() {
            None => None,
            Some("1.0" | "1.1" | "1.2") => Some(client::TlsMinVersion::Tls12),
            Some("1.3") => Some(client::TlsMinVersion::Tls13),
            Some(other) => {
                return Err(UsageError(format!(
                    "-tls-version {other:?}: expected 1.2 or 1.3 (1.0 and 1.1 are taken as 1.2)"
                )))
            }
        };
        Ok(ClientTls {
            ca_cert: self.tls_ca_cert.take(),
            identity,
            min_version,
        })
    }

    fn into_invocation(mut self) -> Result<Invocation, UsageError> {
        let ranged = self.range_entries || self.rev_range_entries;
        let bounded = ranged || self.inspect_store.is_some();
        if !bounded {
            for (given, name) in [
                (self.left.is_some(), "-left"),
                (self.right.is_some(), "-right"),
            ] {
                if given {
                    return Err(UsageError(format!(
                        "{name} is only for --range-entries, --rev-range-entries and --inspect-store"
                    )));
                }
            }
        }
        if self.max_results.is_some() && !bounded && self.prefix.is_none() {
            return Err(UsageError(
                "-max_results is only for --prefix, --range-entries, --rev-range-entries \
                 and --inspect-store"
                    .to_string(),
            ));
        }
        if self.dump_values && self.dump_tlog.is_none() {
            return Err(UsageError(
                "-dump-values is only for --dump-tlog".to_string(),
            ));
        }
        if self.watch && !self.inspect_cluster {
            return Err(UsageError(
                "-watch is only for --inspect-cluster".to_string(),
            ));
        }
        if (self.force || self.inplace || self.whole_cluster) && self.inject_as_head.is_none() {
            return Err(UsageError(
                "--force, --inplace and --whole-cluster are only for --inject-as-head".to_string(),
            ));
        }
        let max = self.max_results.unwrap_or(DEFAULT_MAX_RESULTS);
        let node_only = [
            (self.start, "-start"),
            (self.daemonize, "-daemonize"),
            (self.autofix, "-autofix"),
            (self.catchup_only, "-catchup-only"),
        ];
        if self.node.is_none() {
            if let Some((_, name)) = node_only.iter().find(|(given, _)| *given) {
                return Err(UsageError(format!("{name} is only for --node")));
            }
        }
        let bench_only = [
            (self.scenario.is_some(), "-scenario"),
            (self.value_size.is_some(), "-value_size"),
            (self.key_size.is_some(), "-key_size"),
            (self.tx_size.is_some(), "-tx_size"),
            (self.max_n.is_some(), "-max_n"),
            (self.n_clients.is_some(), "-n_clients"),
        ];
        if !self.benchmark {
            if let Some((_, name)) = bench_only.iter().find(|(given, _)| *given) {
                return Err(UsageError(format!("{name} is only for --benchmark")));
            }
        }
        let config = config_path(
            self.config
                .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH)),
        )?;
        let action = if let Some(mut pair) = self.set {
            let (Some(value), Some(key)) = (pair.pop(), pair.pop()) else {
                return Err(UsageError("--set needs KEY and VALUE".to_string()));
            };
            ClientAction::Set {
                key: bytes(key),
                value: bytes(value),
            }
        } else if let Some(key) = self.get {
            ClientAction::Get { key: bytes(key) }
        } else if let Some(key) = self.get_raw {
            ClientAction::GetRaw { key: bytes(key) }
        } else if let Some(key) = self.set_raw {
            ClientAction::SetRaw { key: bytes(key) }
        } else if let Some(key) = self.delete {
            ClientAction::Delete { key: bytes(key) }
        } else if let Some(prefix) = self.delete_prefix {
            ClientAction::DeletePrefix {
                prefix: bytes(prefix),
            }
        } else if let Some(prefix) = self.prefix {
            ClientAction::Prefix {
                prefix: bytes(prefix),
                max,
            }
        } else if ranged {
            ClientAction::RangeEntries {
                left: self.left.map(bytes),
                right: self.right.map(bytes),
                max,
                reverse: self.rev_range_entries,
            }
        } else if self.who_master {
            ClientAction::WhoMaster
        } else if self.expect_progress_possible {
            ClientAction::ExpectProgressPossible
        } else if self.statistics {
            ClientAction::Statistics
        } else if self.inspect_cluster {
            ClientAction::InspectCluster { watch: self.watch }
        } else if self.nop {
            ClientAction::Nop
        } else if self.n_values {
            ClientAction::KeyCount
        } else if let Some(node) = self.node_version {
            ClientAction::NodeVersion { node }
        } else if let Some(node) = self.node_state {
            ClientAction::NodeState { node }
        } else if let Some(values) = self.ping {
            let (cluster_id, address) = direct_target("--ping", &values)?;
            return Ok(Invocation::Direct {
                cluster_id,
                address,
                action: DirectAction::Ping,
            });
        } else if let Some(values) = self.drop_master {
            let (cluster_id, address) = direct_target("--drop-master", &values)?;
            return Ok(Invocation::Direct {
                cluster_id,
                address,
                action: DirectAction::DropMaster,
            });
        } else if let Some(values) = self.backup_db {
            let (target, rest) = values.split_at(values.len().min(3));
            let (cluster_id, address) = direct_target("--backup-db", target)?;
            let file = rest.first().ok_or_else(|| {
                UsageError("--backup-db needs CLUSTER_ID IP PORT FILE".to_string())
            })?;
            return Ok(Invocation::Direct {
                cluster_id,
                address,
                action: DirectAction::BackupDb {
                    file: PathBuf::from(file),
                },
            });
        } else if let Some((flag, values, action)) = [
            (
                "--optimize-db",
                self.optimize_db.take(),
                DirectAction::OptimizeDb,
            ),
            ("--defrag-db", self.defrag_db.take(), DirectAction::DefragDb),
            (
                "--flush-store",
                self.flush_store.take(),
                DirectAction::FlushStore,
            ),
        ]
        .into_iter()
        .find_map(|(flag, values, action)| values.map(|v| (flag, v, action)))
        {
            let (cluster_id, address) = direct_target(flag, &values)?;
            return Ok(Invocation::Direct {
                cluster_id,
                address,
                action,
            });
        } else if let Some(values) = self.copy_db_to_head {
            let (target, rest) = values.split_at(values.len().min(3));
            let (cluster_id, address) = direct_target("--copy-db-to-head", target)?;
            let tlogs_to_keep = tlogs_to_keep("--copy-db-to-head", rest.first())?;
            return Ok(Invocation::Direct {
                cluster_id,
                address,
                action: DirectAction::CopyDbToHead { tlogs_to_keep },
            });
        } else if let Some(path) = self.optimize_db_offline {
            return Ok(Invocation::Offline(OfflineTool::OptimizeDb { path }));
        } else if let Some(values) = self.replay_tlogs {
            let end_i = |end: &OsString| {
                let text = end.to_string_lossy();
                text.parse::<u64>().map_err(|_| {
                    UsageError(format!(
                        "--replay-tlogs: END_I = {text:?} is not a non-negative integer"
                    ))
                })
            };
            // Arakoon's form names the tlx directory too: TLOG_DIR TLX_DIR
            // DB [END_I]; a third value that is a number is END_I.
            let (dir, tlx, db, end) = match values.as_slice() {
                [dir, db] => (dir, None, db, None),
                [dir, db, end] if end.to_string_lossy().parse::<u64>().is_ok() => {
                    (dir, None, db, Some(end_i(end)?))
                }
                [dir, tlx, db] => (dir, Some(tlx), db, None),
                [dir, tlx, db, end] => (dir, Some(tlx), db, Some(end_i(end)?)),
                _ => {
                    return Err(UsageError(
                        "--replay-tlogs needs TLOG_DIR [TLX_DIR] DB [END_I]".to_string(),
                    ))
                }
            };
            return Ok(Invocation::Offline(OfflineTool::ReplayTlogs {
                dir: PathBuf::from(dir),
                tlx: tlx.map(PathBuf::from),
                db: PathBuf::from(db),
                end,
            }));
        } else if let Some(path) = self.truncate_tlog {
            return Ok(Invocation::Offline(OfflineTool::TruncateTlog { path }));
        } else if let Some(path) = self.compress_tlog {
            return Ok(Invocation::Offline(OfflineTool::CompressTlog { path }));
        } else if let Some(path) = self.uncompress_tlog {
            return Ok(Invocation::Offline(OfflineTool::UncompressTlog { path }));
        } else if let Some(path) = self.strip_tlog {
            return Ok(Invocation::Offline(OfflineTool::NoMarker {
                flag: "--strip-tlog",
                path,
            }));
        } else if let Some((flag, values)) = [
            ("--mark-tlog", self.mark_tlog.take()),
            ("--make-tlog", self.make_tlog.take()),
        ]
        .into_iter()
        .find_map(|(flag, values)| values.map(|v| (flag, v)))
        {
            let path = values.first().map(PathBuf::from).unwrap_or_default();
            return Ok(Invocation::Offline(OfflineTool::NoMarker { flag, path }));
        } else if let Some(values) = self.collapse_remote {
            let (target, rest) = values.split_at(values.len().min(3));
            let (cluster_id, address) = direct_target("--collapse-remote", target)?;
            let tlogs_to_keep = tlogs_to_keep("--collapse-remote", rest.first())?;
            return Ok(Invocation::Direct {
                cluster_id,
                address,
                action: DirectAction::CollapseRemote { tlogs_to_keep },
            });
        } else if let Some(values) = self.inject_as_head {
            let [file, name] = values.as_slice() else {
                return Err(UsageError("--inject-as-head needs FILE NODE".to_string()));
            };
            let name = name.to_str().ok_or_else(|| {
                UsageError(format!("--inject-as-head: node name {name:?} is not UTF-8"))
            })?;
            return Ok(Invocation::InjectAsHead {
                file: PathBuf::from(file),
                name: name.to_string(),
                config,
                force: self.force,
                in_place: self.inplace,
                whole_cluster: self.whole_cluster,
            });
        } else if let Some(values) = self.collapse_local {
            let [name, n] = values.as_slice() else {
                return Err(UsageError("--collapse-local needs NODE N".to_string()));
            };
            let keep = tlogs_to_keep("--collapse-local", Some(n))?;
            return Ok(Invocation::CollapseLocal {
                name: name.clone(),
                tlogs_to_keep: keep.unsigned_abs(),
                config,
            });
        } else if let Some(path) = self.dump_tlog {
            return Ok(Invocation::Offline(OfflineTool::DumpTlog {
                path,
                values: self.dump_values,
            }));
        } else if let Some(path) = self.dump_store {
            return Ok(Invocation::Offline(OfflineTool::DumpStore { path }));
        } else if let Some(path) = self.inspect_store {
            return Ok(Invocation::Offline(OfflineTool::InspectStore {
                path,
                left: self.left.map(bytes),
                right: self.right.map(bytes),
                max,
            }));
        } else if let Some(path) = self.verify_db {
            return Ok(Invocation::Offline(OfflineTool::VerifyDb { path }));
        } else if let Some(name) = self.node {
            return Ok(Invocation::Node {
                name,
                config,
                daemonize: self.daemonize,
                catchup_only: self.catchup_only,
            });
        } else if self.benchmark {
            return Ok(Invocation::Benchmark {
                bench_args: benchmark_args(
                    &config,
                    self.scenario.as_deref(),
                    BenchmarkSizes {
                        value_size: self.value_size.unwrap_or(10),
                        key_size: self.key_size.unwrap_or(10),
                        max_n: self.max_n.unwrap_or(1_000_000),
                        n_clients: self.n_clients.unwrap_or(1),
                    },
                )?,
            });
        } else if let Some(clients) = self.load {
            if clients == 0 {
                return Err(UsageError("--load: N must be at least 1".to_string()));
            }
            return Ok(Invocation::Load { config, clients });
        } else if self.version {
            return Ok(Invocation::LocalVersion);
        } else {
            // clap's required group makes this unreachable; say so plainly anyway.
            return Err(UsageError("no action given (try --help)".to_string()));
        };
        Ok(Invocation::Client { config, action })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    fn parsed(list: &[&str]) -> Invocation {
        match parse(&args(list)) {
            Ok(invocation) => invocation,
            Err(e) => panic!("{list:?}: {e}"),
        }
    }

    fn refused(list: &[&str]) -> String {
        match parse(&args(list)) {
            Ok(invocation) => panic!("{list:?} was accepted: {invocation:?}"),
            Err(e) => e.0,
        }
    }

    fn client(config: &str, action: ClientAction) -> Invocation {
        Invocation::Client {
            config: PathBuf::from(config),
            action,
        }
    }

    #[test]
    fn normalise_rewrites_single_dash_options_only() {
        let out = normalise(&args(&["-config", "a.ini", "--get", "k", "-left", "x"]));
        assert_eq!(
            out,
            args(&["--config", "a.ini", "--get", "k", "--left", "x"])
        );
    }

    /// A value that looks like an option is a value: the normaliser knows
    /// each flag's number of values.
    #[test]
    fn normalise_leaves_flag_values_alone() {
        let out = normalise(&args(&["--set", "-config", "-left", "-config", "c.ini"]));
        assert_eq!(
            out,
            args(&["--set", "-config", "-left", "--config", "c.ini"])
        );
        let out = normalise(&args(&["-config", "-left"]));
        assert_eq!(out, args(&["--config", "-left"]));
    }

    #[test]
    fn arakoon_command_lines() {
        assert_eq!(
            parsed(&["-config", "c.ini", "--set", "k", "v"]),
            client(
                "c.ini",
                ClientAction::Set {
                    key: b"k".to_vec(),
                    value: b"v".to_vec()
                }
            )
        );
        assert_eq!(
            parsed(&["--get", "k", "-config", "c.ini"]),
            client("c.ini", ClientAction::Get { key: b"k".to_vec() })
        );
        assert_eq!(
            parsed(&["--config", "c.ini", "--who-master"]),
            client("c.ini", ClientAction::WhoMaster)
        );
        assert_eq!(
            parsed(&["--delete-prefix", "p"]),
            client(
                DEFAULT_CONFIG_PATH,
                ClientAction::DeletePrefix {
                    prefix: b"p".to_vec()
                }
            )
        );
        assert_eq!(
            parsed(&["--prefix", "p", "-max_results", "5"]),
            client(
                DEFAULT_CONFIG_PATH,
                ClientAction::Prefix {
                    prefix: b"p".to_vec(),
                    max: 5
                }
            )
        );
        assert_eq!(
            parsed(&[
                "-config",
                "c.ini",
                "--range-entries",
                "-left",
                "a",
                "-right",
                "b"
            ]),
            client(
                "c.ini",
                ClientAction::RangeEntries {
                    left: Some(b"a".to_vec()),
                    right: Some(b"b".to_vec()),
                    max: DEFAULT_MAX_RESULTS,
                    reverse: false,
                }
            )
        );
        assert_eq!(
            parsed(&["--node-version", "arakoon_0"]),
            client(
                DEFAULT_CONFIG_PATH,
                ClientAction::NodeVersion {
                    node: "arakoon_0".into()
                }
            )
        );
        assert_eq!(parsed(&["--version"]), Invocation::LocalVersion);
        assert_eq!(
            parsed(&["--set-raw", "-k"]),
            client(
                DEFAULT_CONFIG_PATH,
                ClientAction::SetRaw {
                    key: b"-k".to_vec()
                }
            )
        );
        assert_eq!(
            parsed(&["--get-raw", "k"]),
            client(
                DEFAULT_CONFIG_PATH,
                ClientAction::GetRaw { key: b"k".to_vec() }
            )
        );
        assert_eq!(
            parsed(&["--node", "arakoon_0", "-config", "c.ini"]),
            Invocation::Node {
                name: "arakoon_0".into(),
                config: PathBuf::from("c.ini"),
                daemonize: false,
                catchup_only: false,
            }
        );
        assert_eq!(
            parsed(&["--drop-master", "ricky", "127.0.0.1", "4000"]),
            Invocation::Direct {
                cluster_id: "ricky".into(),
                address: "127.0.0.1:4000".into(),
                action: DirectAction::DropMaster,
            }
        );
        assert_eq!(
            parsed(&["--collapse-remote", "ricky", "127.0.0.1", "4000", "3"]),
            Invocation::Direct {
                cluster_id: "ricky".into(),
                address: "127.0.0.1:4000".into(),
                action: DirectAction::CollapseRemote { tlogs_to_keep: 3 },
            }
        );
        assert_eq!(
            parsed(&["--collapse-local", "arakoon_1", "2", "-config", "c.ini"]),
            Invocation::CollapseLocal {
                name: "arakoon_1".into(),
                tlogs_to_keep: 2,
                config: PathBuf::from("c.ini"),
            }
        );
        assert!(
            refused(&["--collapse-remote", "ricky", "127.0.0.1", "4000", "0"])
                .contains("at least 1")
        );
        assert!(refused(&["--collapse-local", "arakoon_1", "x"]).contains("N = \"x\""));
        assert_eq!(
            parsed(&[
                "--inject-as-head",
                "b.db",
                "arakoon_1",
                "-config",
                "c.ini",
                "--force"
            ]),
            Invocation::InjectAsHead {
                file: PathBuf::from("b.db"),
                name: "arakoon_1".into(),
                config: PathBuf::from("c.ini"),
                force: true,
                in_place: false,
                whole_cluster: false,
            }
        );
        assert!(refused(&["--get", "k", "--inplace"]).contains("only for --inject-as-head"));
        assert!(refused(&["-tls-cert", "c.pem", "--get", "k"]).contains("-tls-key"));
        assert!(refused(&["--dump-store", "s.db", "-tls-ca-cert", "ca.pem"])
            .contains("for client actions only"));
        assert_eq!(
            parsed(&["--ping", "ricky", "::1", "4000"]),
            Invocation::Direct {
                cluster_id: "ricky".into(),
                address: "[::1]:4000".into(),
                action: DirectAction::Ping,
            }
        );
        for (flag, action) in [
            (
                "--expect-progress-possible",
                ClientAction::ExpectProgressPossible,
            ),
            ("--statistics", ClientAction::Statistics),
            ("--nop", ClientAction::Nop),
            ("--n-values", ClientAction::KeyCount),
        ] {
            assert_eq!(parsed(&[flag]), client(DEFAULT_CONFIG_PATH, action));
        }
    }

    #[test]
    fn values_may_start_with_a_dash() {
        assert_eq!(
            parsed(&["--set", "-k", "-v"]),
            client(
                DEFAULT_CONFIG_PATH,
                ClientAction::Set {
                    key: b"-k".to_vec(),
                    value: b"-v".to_vec()
                }
            )
        );
    }

    #[test]
    fn bad_command_lines_get_one_line_reasons() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "no action given"),
            (&["--get"], "--get"),
            (&["--set", "k"], "--set"),
            (&["--get", "a", "--delete", "b"], "cannot be used with"),
            (
                &["--who-master", "-left", "a"],
                "-left is only for --range-entries",
            ),
            (
                &["--get", "k", "-max_results", "3"],
                "-max_results is only for",
            ),
            (&["--prefix", "p", "-max_results", "many"], "many"),
            (&["--frobnicate"], "--frobnicate"),
            (&["-config"], "--config"),
            (
                &["--ping", "c", "127.0.0.1", "http"],
                "port \"http\" is not a number",
            ),
            (&["--drop-master", "c", "127.0.0.1"], "--drop-master"),
        ];
        for (line, expected) in cases {
            let reason = refused(line);
            assert!(
                reason.contains(expected),
                "{line:?}: {reason:?} lacks {expected:?}"
            );
            assert!(!reason.contains('\n'), "{line:?}: {reason:?}");
        }
    }

    #[test]
    fn help_is_not_an_error() {
        let Invocation::Help(text) = parsed(&["--help"]) else {
            panic!("no help");
        };
        assert!(text.contains("--who-master"), "{text}");
        for heading in [CLIENT, ADMIN, OFFLINE, NODE, "Options"] {
            assert!(text.contains(heading), "{heading:?} missing from {text}");
        }
    }

    /// Every flag has its help line.
    #[test]
    fn every_flag_has_a_help_line() {
        for arg in command().get_arguments() {
            assert!(
                arg.get_help().is_some_and(|h| !h.to_string().is_empty()),
                "{:?} has no help",
                arg.get_id()
            );
        }
    }

    #[test]
    fn offline_tools() {
        assert_eq!(
            parsed(&["--dump-tlog", "/d/tlog", "-dump-values"]),
            Invocation::Offline(OfflineTool::DumpTlog {
                path: PathBuf::from("/d/tlog"),
                values: true
            })
        );
        assert_eq!(
            parsed(&["--dump-tlog", "-dump-values"]),
            Invocation::Offline(OfflineTool::DumpTlog {
                path: PathBuf::from("-dump-values"),
                values: false
            }),
            "a flag's value is a value"
        );
        assert_eq!(
            parsed(&["--dump-store", "n.db"]),
            Invocation::Offline(OfflineTool::DumpStore {
                path: PathBuf::from("n.db")
            })
        );
        assert_eq!(
            parsed(&["--inspect-store", "n.db", "-left", "k", "-max_results", "3"]),
            Invocation::Offline(OfflineTool::InspectStore {
                path: PathBuf::from("n.db"),
                left: Some(b"k".to_vec()),
                right: None,
                max: 3
            })
        );
        assert_eq!(
            parsed(&["--verify-db", "n.db"]),
            Invocation::Offline(OfflineTool::VerifyDb {
                path: PathBuf::from("n.db")
            })
        );
        for (line, expected) in [
            (
                &["--dump-store", "n.db", "-dump-values"][..],
                "-dump-values is only for",
            ),
            (
                &["--verify-db", "n.db", "-left", "a"][..],
                "-left is only for",
            ),
            (&["--dump-tlog"][..], "--dump-tlog"),
        ] {
            let reason = refused(line);
            assert!(reason.contains(expected), "{line:?}: {reason:?}");
        }
    }

    /// Arakoon's management command line: `--node NAME -config FILE -start`
    /// with `-daemonize`, `-autofix`, `-catchup-only`; its config URL forms.
    #[test]
    fn arakoons_node_flags_and_config_urls() {
        assert_eq!(
            parsed(&[
                "--node",
                "a0",
                "-config",
                "c.ini",
                "-start",
                "-daemonize",
                "-autofix"
            ]),
            Invocation::Node {
                name: "a0".into(),
                config: PathBuf::from("c.ini"),
                daemonize: true,
                catchup_only: false,
            }
        );
        assert_eq!(
            parsed(&[
                "--node",
                "a0",
                "-config",
                "file:///etc/a.ini",
                "-catchup-only"
            ]),
            Invocation::Node {
                name: "a0".into(),
                config: PathBuf::from("/etc/a.ini"),
                daemonize: false,
                catchup_only: true,
            }
        );
        for flag in ["-start", "-daemonize", "-autofix", "-catchup-only"] {
            assert!(
                refused(&["--who-master", flag]).contains(&format!("{flag} is only for --node"))
            );
        }
        for url in ["arakoon://host:1/cfg", "etcd://host:2379/key"] {
            let reason = refused(&["--who-master", "-config", url]);
            assert!(
                reason.contains("not supported here") && reason.contains(url),
                "{reason}"
            );
        }
    }

    /// `--benchmark` maps Arakoon's scenarios and sizes onto `arakoon bench`.
    #[test]
    fn arakoons_benchmark_maps_onto_bench() {
        let Invocation::Benchmark { bench_args } = parsed(&["-config", "c.ini", "--benchmark"])
        else {
            panic!("not a benchmark");
        };
        assert_eq!(
            bench_args.join(" "),
            "-config c.ini --scenario set,sequence,get,range --value-size 10 --key-size 10 --ops 1000000 --clients 1"
        );
        let Invocation::Benchmark { bench_args } = parsed(&[
            "--benchmark",
            "-config",
            "c.ini",
            "-scenario",
            "range_entries, set",
            "-value_size",
            "64",
            "-key_size",
            "20",
            "-max_n",
            "500",
            "-n_clients",
            "4",
            "-tx_size",
            "10",
        ]) else {
            panic!("not a benchmark");
        };
        assert_eq!(
            bench_args.join(" "),
            "-config c.ini --scenario range,set --value-size 64 --key-size 20 --ops 500 --clients 4"
        );
        assert!(refused(&["--benchmark", "-scenario", "fly"]).contains("\"fly\" is not one of"));
        assert!(
            refused(&["--who-master", "-max_n", "3"]).contains("-max_n is only for --benchmark")
        );
        assert_eq!(
            parsed(&["-config", "c.ini", "--load", "3"]),
            Invocation::Load {
                config: PathBuf::from("c.ini"),
                clients: 3
            }
        );
        assert!(refused(&["--load", "0"]).contains("at least 1"));
    }
}
