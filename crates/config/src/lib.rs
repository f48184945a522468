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
//! - Nodes are exactly those in `cluster`; a learner is listed there too,
//!   with `learner = true` and its `targets`.
//! - `fsync` defaults to `true` (durability first).

mod ini;

use ini::Ini;
use std::collections::{BTreeMap, BTreeSet};
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
    pub log_config: Option<String>,
    pub batched_transaction_config: Option<String>,
    pub learner: bool,
    /// For a learner: the nodes it follows.
    pub targets: Vec<String>,
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
}

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
    let mut reader = Reader {
        ini: &ini,
        used: BTreeSet::new(),
    };
    let config = read_cluster(&mut reader)?;
    let warnings = reader.unknown_keys(&config);
    Ok(Loaded { config, warnings })
}

const KNOWN_UNUSED_GLOBAL: &[&str] = &["lcnum", "ncnum", "__tainted_tlog_entries_per_file"];

struct Reader<'a> {
    ini: &'a Ini,
    used: BTreeSet<(String, String)>,
}

impl Reader<'_> {
    fn raw(&mut self, section: &str, key: &str) -> Option<String> {
        self.used.insert((section.to_string(), key.to_string()));
        self.ini
            .sections
            .get(section)
            .and_then(|s| s.get(key))
            .map(|e| e.value.clone())
    }

    fn required(&mut self, section: &str, key: &str) -> Result<String, ConfigError> {
        match self.raw(section, key) {
            Some(v) if !v.is_empty() => Ok(v),
            _ => Err(ConfigError::Missing {
                section: section.into(),
                key: key.into(),
            }),
        }
    }

    fn parsed<T>(
        &mut self,
        section: &str,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        match self.raw(section, key) {
            None => Ok(None),
            Some(value) => parse(&value)
                .map(Some)
                .map_err(|reason| ConfigError::Invalid {
                    section: section.into(),
                    key: key.into(),
                    value,
                    reason,
                }),
        }
    }

    fn int(&mut self, section: &str, key: &str) -> Result<Option<u64>, ConfigError> {
        self.parsed(section, key, parse_int)
    }

    fn bool(&mut self, section: &str, key: &str, default: bool) -> Result<bool, ConfigError> {
        Ok(self.parsed(section, key, parse_bool)?.unwrap_or(default))
    }

    fn float(&mut self, section: &str, key: &str) -> Result<Option<f64>, ConfigError> {
        self.parsed(section, key, parse_float)
    }

    fn list(&mut self, section: &str, key: &str) -> Option<Vec<String>> {
        self.raw(section, key).map(|v| parse_list(&v))
    }

    fn unknown_keys(&self, config: &ClusterConfig) -> Vec<String> {
        let mut warnings = Vec::new();
        let node_sections: BTreeSet<&str> = config.nodes.iter().map(|n| n.name.as_str()).collect();
        for (section, keys) in &self.ini.sections {
            let known_section = section == "global"
                || node_sections.contains(section.as_str())
                || self.used.iter().any(|(s, _)| s == section);
            if !known_section {
                // Sections of other tools ([nursery], log configs not referenced): leave them be.
                continue;
            }
            for (key, entry) in keys {
                let used = self.used.contains(&(section.clone(), key.clone()));
                let tolerated = section == "global" && KNOWN_UNUSED_GLOBAL.contains(&key.as_str());
                if !used && !tolerated {
                    warnings.push(format!(
                        "config line {}: unknown key [{section}] {key} ignored",
                        entry.line
                    ));
                }
            }
        }
        warnings
    }
}

fn parse_int(s: &str) -> Result<u64, String> {
    let digits: String = s.chars().filter(|c| *c != '_').collect();
    digits
        .parse::<u64>()
        .map_err(|_| "not a non-negative integer".to_string())
}

fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("not a boolean (true or false)".to_string()),
    }
}

fn parse_float(s: &str) -> Result<f64, String> {
    let digits: String = s.chars().filter(|c| *c != '_').collect();
    match digits.parse::<f64>() {
        Ok(f) if f.is_finite() && f >= 0.0 => Ok(f),
        _ => Err("not a non-negative number".to_string()),
    }
}

fn parse_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn invalid(section: &str, key: &str, value: impl ToString, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        section: section.into(),
        key: key.into(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

fn in_range<T: TryFrom<u64>>(section: &str, key: &str, v: u64, min: u64) -> Result<T, ConfigError> {
    if v < min {
        return Err(invalid(section, key, v, format!("must be at least {min}")));
    }
    T::try_from(v).map_err(|_| invalid(section, key, v, "too large"))
}

fn read_cluster(r: &mut Reader) -> Result<ClusterConfig, ConfigError> {
    const G: &str = "global";
    let names = r
        .list(G, "cluster")
        .filter(|l| !l.is_empty())
        .ok_or_else(|| ConfigError::Missing {
            section: G.into(),
            key: "cluster".into(),
        })?;
    let mut seen = BTreeSet::new();
    for name in &names {
        if !seen.insert(name) {
            return Err(invalid(
                G,
                "cluster",
                names.join(", "),
                format!("node '{name}' listed twice"),
            ));
        }
        if !r.ini.sections.contains_key(name) {
            return Err(invalid(
                G,
                "cluster",
                names.join(", "),
                format!("node '{name}' has no [{name}] section"),
            ));
        }
    }
    let cluster_id = r.required(G, "cluster_id")?;
    let lease_s = r.float(G, "lease_period")?.unwrap_or(10.0);
    if lease_s <= 0.0 || lease_s > 3600.0 {
        return Err(invalid(
            G,
            "lease_period",
            lease_s,
            "must be in (0, 3600] seconds",
        ));
    }
    let lease_period = Duration::from_secs_f64(lease_s);

    let mut nodes = Vec::with_capacity(names.len());
    for name in &names {
        nodes.push(read_node(r, name)?);
    }
    let mut addresses = BTreeMap::new();
    for n in &nodes {
        for ip in &n.ips {
            for (key, port) in [
                ("client_port", n.client_port),
                ("messaging_port", n.messaging_port),
            ] {
                if let Some(other) = addresses.insert((ip.clone(), port), n.name.clone()) {
                    return Err(invalid(
                        &n.name,
                        key,
                        port,
                        format!("{ip}:{port} is already used by [{other}]"),
                    ));
                }
            }
        }
    }
    for n in nodes.iter().filter(|n| n.learner) {
        if n.targets.is_empty() {
            return Err(ConfigError::Missing {
                section: n.name.clone(),
                key: "targets".into(),
            });
        }
        for t in &n.targets {
            if !names.contains(t) {
                return Err(invalid(
                    &n.name,
                    "targets",
                    n.targets.join(", "),
                    format!("'{t}' is not in [global] cluster"),
                ));
            }
        }
    }
    let voters: Vec<&str> = nodes
        .iter()
        .filter(|n| !n.learner)
        .map(|n| n.name.as_str())
        .collect();
    if voters.is_empty() || voters.len() > 7 {
        return Err(invalid(
            G,
            "cluster",
            names.join(", "),
            format!("{} voters; 1 to 7 are supported", voters.len()),
        ));
    }

    let master_name = r.raw(G, "master").filter(|m| !m.is_empty());
    let preferred_masters = r.list(G, "preferred_masters").filter(|l| !l.is_empty());
    let preferred_master = r.bool(G, "preferred_master", false)?;
    let readonly = r.bool(G, "readonly", false)?;
    let check_voter = |key: &str, value: &str, m: &str| -> Result<(), ConfigError> {
        if voters.contains(&m) {
            Ok(())
        } else {
            Err(invalid(
                G,
                key,
                value,
                format!("'{m}' is not a voting node of [global] cluster"),
            ))
        }
    };
    let master = match (master_name, preferred_masters) {
        (Some(m), Some(_)) => {
            return Err(invalid(
                G,
                "master",
                m,
                "'master' and 'preferred_masters' are incompatible",
            ))
        }
        (Some(m), None) => {
            check_voter("master", &m, &m)?;
            if preferred_master {
                MasterMode::Preferred(vec![m])
            } else {
                MasterMode::Forced(m)
            }
        }
        (None, Some(list)) => {
            for m in &list {
                check_voter("preferred_masters", &list.join(", "), m)?;
            }
            MasterMode::Preferred(list)
        }
        (None, None) if readonly => {
            if nodes.len() != 1 {
                return Err(invalid(
                    G,
                    "readonly",
                    "true",
                    "only a one-node cluster can be readonly",
                ));
            }
            MasterMode::ReadOnly
        }
        (None, None) => MasterMode::Elected,
    };

    let quorum = match r.int(G, "quorum")? {
        None => None,
        Some(q) if q >= 1 && (q as usize) <= voters.len() => Some(q as usize),
        Some(q) => {
            return Err(invalid(
                G,
                "quorum",
                q,
                format!("must be between 1 and {} (the voters)", voters.len()),
            ))
        }
    };
    if r.list(G, "plugins").is_some_and(|p| !p.is_empty()) {
        return Err(invalid(
            G,
            "plugins",
            r.raw(G, "plugins").unwrap_or_default(),
            "user-function plugins are not supported by this version",
        ));
    }
    let tlog_max_entries = in_range(
        G,
        "tlog_max_entries",
        r.int(G, "tlog_max_entries")?.unwrap_or(50_000),
        1,
    )?;
    let tlog_max_size = in_range(
        G,
        "tlog_max_size",
        r.int(G, "tlog_max_size")?.unwrap_or(33_554_432),
        4096,
    )?;
    let client_buffer_capacity = in_range(
        G,
        "client_buffer_capacity",
        r.int(G, "client_buffer_capacity")?.unwrap_or(32),
        1,
    )?;
    let max_value_size: usize = in_range(
        G,
        "__tainted_max_value_size",
        r.int(G, "__tainted_max_value_size")?.unwrap_or(8_388_608),
        1,
    )?;
    let max_buffer_size: usize = in_range(
        G,
        "__tainted_max_buffer_size",
        r.int(G, "__tainted_max_buffer_size")?.unwrap_or(33_554_432),
        1024,
    )?;
    if max_value_size > max_buffer_size {
        return Err(invalid(
            G,
            "__tainted_max_value_size",
            max_value_size,
            format!("larger than __tainted_max_buffer_size ({max_buffer_size})"),
        ));
    }
    let tls = read_tls(r)?;
    let mut batch_configs = BTreeMap::new();
    for section in nodes
        .iter()
        .filter_map(|n| n.batched_transaction_config.clone())
    {
        if !r.ini.sections.contains_key(&section) {
            return Err(invalid(
                &section,
                "batched_transaction_config",
                &section,
                "no such section",
            ));
        }
        let max_entries = r.int(&section, "max_entries")?;
        let max_size = r.int(&section, "max_size")?;
        batch_configs.insert(
            section,
            BatchConfig {
                max_entries,
                max_size,
            },
        );
    }
    Ok(ClusterConfig {
        cluster_id,
        nodes,
        master,
        lease_period,
        quorum,
        tlog_max_entries,
        tlog_max_size,
        client_buffer_capacity,
        max_value_size,
        max_buffer_size,
        tls,
        batch_configs,
    })
}

fn read_tls(r: &mut Reader) -> Result<Option<TlsConfig>, ConfigError> {
    const G: &str = "global";
    let ca_cert = r.raw(G, "tls_ca_cert").filter(|v| !v.is_empty());
    let service = r.bool(G, "tls_service", false)?;
    let service_validate_peer = r.bool(G, "tls_service_validate_peer", false)?;
    let version = r.raw(G, "tls_version").unwrap_or_else(|| "1.2".into());
    let _ignored_cipher_list = r.raw(G, "tls_cipher_list");
    let Some(ca_cert) = ca_cert else {
        if service {
            return Err(invalid(G, "tls_service", "true", "needs tls_ca_cert"));
        }
        return Ok(None);
    };
    if version != "1.2" && version != "1.3" {
        return Err(invalid(
            G,
            "tls_version",
            version,
            "only 1.2 and 1.3 are supported (1.0 and 1.1 are unsafe)",
        ));
    }
    Ok(Some(TlsConfig {
        ca_cert: PathBuf::from(ca_cert),
        service,
        service_validate_peer,
        version,
    }))
}

fn read_node(r: &mut Reader, name: &str) -> Result<NodeConfig, ConfigError> {
    let ips = parse_list(&r.required(name, "ip")?);
    if ips.is_empty() {
        return Err(ConfigError::Missing {
            section: name.into(),
            key: "ip".into(),
        });
    }
    let port = |r: &mut Reader, key: &str| -> Result<u16, ConfigError> {
        let v = r.int(name, key)?.ok_or_else(|| ConfigError::Missing {
            section: name.into(),
            key: key.into(),
        })?;
        in_range(name, key, v, 1)
    };
    let client_port = port(r, "client_port")?;
    let messaging_port = port(r, "messaging_port")?;
    let home = PathBuf::from(r.required(name, "home")?);
    let dir_or = |r: &mut Reader, key: &str, default: &Path| {
        r.raw(name, key)
            .filter(|v| !v.is_empty())
            .map_or_else(|| default.to_path_buf(), PathBuf::from)
    };
    let tlog_dir = dir_or(r, "tlog_dir", &home);
    let tlx_dir = match r.raw(name, "tlx_dir").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => dir_or(r, "tlf_dir", &tlog_dir),
    };
    let head_dir = dir_or(r, "head_dir", &tlx_dir);
    let log_dir = dir_or(r, "log_dir", &home);
    let level_text = r.required(name, "log_level")?;
    let log_level = match level_text.to_ascii_lowercase().as_str() {
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "notice" => LogLevel::Notice,
        "warning" => LogLevel::Warning,
        "error" => LogLevel::Error,
        "fatal" => LogLevel::Fatal,
        _ => {
            return Err(invalid(
                name,
                "log_level",
                level_text,
                "expected debug, info, notice, warning, error or fatal",
            ))
        }
    };
    let log_config = r.raw(name, "log_config").filter(|v| !v.is_empty());
    let batched_transaction_config = r
        .raw(name, "batched_transaction_config")
        .filter(|v| !v.is_empty());
    let learner = r.bool(name, "learner", false)?;
    let targets = r.list(name, "targets").unwrap_or_default();
    let witness = r.bool(name, "witness", false)?;
    if witness {
        return Err(invalid(
            name,
            "witness",
            "true",
            "witness nodes are not supported by this version",
        ));
    }
    let _laggy = r.bool(name, "laggy", false)?;
    let tlog_compression = if r.bool(name, "disable_tlog_compression", false)? {
        TlogCompression::None
    } else {
        match r
            .raw(name, "tlog_compression")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("snappy") => TlogCompression::Snappy,
            Some("lz4") => TlogCompression::Lz4,
            Some("none") => TlogCompression::None,
            Some(other) => {
                return Err(invalid(
                    name,
                    "tlog_compression",
                    other,
                    "expected snappy, lz4 or none (bz2 is not supported)",
                ))
            }
        }
    };
    let fsync = r.bool(name, "fsync", true)?;
    let fsync_interval = r
        .float(name, "fsync_interval")?
        .map(Duration::from_secs_f64);
    let fsync_entries = r.int(name, "fsync_entries")?;
    let tls_cert = r
        .raw(name, "tls_cert")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let tls_key = r
        .raw(name, "tls_key")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if tls_cert.is_some() != tls_key.is_some() {
        let key = if tls_cert.is_some() {
            "tls_key"
        } else {
            "tls_cert"
        };
        return Err(ConfigError::Missing {
            section: name.into(),
            key: format!("{key} (tls_cert and tls_key go together)"),
        });
    }
    let collapse_slowdown = r.float(name, "collapse_slowdown")?;
    let head_copy_throttling = r.float(name, "head_copy_throttling")?.unwrap_or(0.0);
    let optimize_db_slowdown = r.float(name, "optimize_db_slowdown")?.unwrap_or(0.0);
    let reporting = Duration::from_secs(r.int(name, "reporting")?.unwrap_or(300));
    let metrics_port = match r.int(name, "metrics_port")? {
        None => None,
        Some(p) => Some(in_range(name, "metrics_port", p, 1)?),
    };
    let slave_apply_delay = match r.int(name, "slave_apply_delay")? {
        None => SLAVE_APPLY_DELAY_DEFAULT,
        Some(ms) if ms > SLAVE_APPLY_DELAY_MAX_MS => {
            return Err(invalid(
                name,
                "slave_apply_delay",
                ms,
                format!("at most {SLAVE_APPLY_DELAY_MAX_MS} (milliseconds)"),
            ))
        }
        Some(ms) => Duration::from_millis(ms),
    };
    Ok(NodeConfig {
        name: name.to_string(),
        ips,
        client_port,
        messaging_port,
        home,
        tlog_dir,
        tlx_dir,
        head_dir,
        log_dir,
        log_level,
        log_config,
        batched_transaction_config,
        learner,
        targets,
        witness,
        tlog_compression,
        fsync,
        fsync_interval,
        fsync_entries,
        tls_cert,
        tls_key,
        collapse_slowdown,
        head_copy_throttling,
        optimize_db_slowdown,
        reporting,
        metrics_port,
        slave_apply_delay,
    })
}

#[cfg(test)]
mod tests;
