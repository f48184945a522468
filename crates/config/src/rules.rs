//! Arakoon's rules: which sections and keys make a cluster config, their
//! defaults, ranges and the checks across keys (`shared/spec/config.md`).

use crate::reader::{in_bounds, in_range, invalid, parse_list, Reader};
use crate::{
    BatchConfig, ClusterConfig, ConfigError, LogComponents, LogLevel, LogSink, MasterMode,
    NodeConfig, TcpKeepalive, TlogCompression, TlsConfig, AUTO_COLLAPSE_KEEP_DEFAULT,
    AUTO_COLLAPSE_KEEP_MAX, CLIENT_FRAME_TIMEOUT_DEFAULT, CLIENT_FRAME_TIMEOUT_MAX_SECS,
    MIN_FREE_DISK_DEFAULT_MB, MIN_FREE_DISK_MAX_MB, SLAVE_APPLY_DELAY_DEFAULT,
    SLAVE_APPLY_DELAY_MAX_MS,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Global keys of Arakoon 1.9 that have no effect here, and why (one
/// warning each when set).
const NO_EFFECT_GLOBAL: &[(&str, &str)] = &[
    (
        "lcnum",
        "no effect: a Tokyo Cabinet cache size; the store here is redb, which sizes its own cache",
    ),
    (
        "ncnum",
        "no effect: a Tokyo Cabinet cache size; the store here is redb, which sizes its own cache",
    ),
    (
        "__tainted_tlog_entries_per_file",
        "no effect: deprecated in Arakoon too; use tlog_max_entries",
    ),
];

/// Node keys of Arakoon 1.9 that have no effect here, and why.
const NO_EFFECT_NODE: &[(&str, &str)] = &[
    (
        "laggy",
        "no effect: every voter may be elected here; steer mastership with preferred_masters",
    ),
    (
        "head_dir",
        "no effect: the store in home is the head database here (no separate head copy is kept)",
    ),
    (
        "crash_log_sinks",
        "no effect: there is no separate crash dump here; log lines go to log_sinks at log_level",
    ),
    (
        "__tainted_fsync_tlog_dir",
        "no effect: the tlog directory is always fsynced when a tlog file is created or removed",
    ),
    (
        "targets",
        "no effect: a learner follows whichever node is master",
    ),
];

pub(crate) fn read_cluster(r: &mut Reader) -> Result<ClusterConfig, ConfigError> {
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
        if !r.has_section(name) {
            return Err(invalid(
                G,
                "cluster",
                names.join(", "),
                format!("node '{name}' has no [{name}] section"),
            ));
        }
    }
    // Arakoon's learners: any other section with `learner = true`.
    let mut names = names;
    let others: Vec<String> = r
        .section_names()
        .filter(|s| !names.iter().any(|n| n == s))
        .map(str::to_string)
        .collect();
    for section in others {
        if r.is_set(&section, "learner") && r.bool(&section, "learner", false)? {
            names.push(section);
        }
    }
    for (key, why) in NO_EFFECT_GLOBAL {
        r.warn(G, key, why);
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
    if nodes.iter().filter(|n| !n.learner).all(|n| n.witness) {
        return Err(invalid(
            G,
            "cluster",
            names.join(", "),
            "every voter is a witness: no node could ever be master",
        ));
    }
    let witnesses: Vec<&str> = nodes
        .iter()
        .filter(|n| n.witness)
        .map(|n| n.name.as_str())
        .collect();
    let check_voter = |key: &str, value: &str, m: &str| -> Result<(), ConfigError> {
        if witnesses.contains(&m) {
            Err(invalid(
                G,
                key,
                value,
                format!("'{m}' is a witness, which never serves as master"),
            ))
        } else if voters.contains(&m) {
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
    // The tlog's own limits: a value it cannot take is refused here, by
    // name, not clamped later.
    let tlog_max_entries = in_bounds(
        G,
        "tlog_max_entries",
        r.int(G, "tlog_max_entries")?
            .unwrap_or(tlog::DEFAULT_MAX_ENTRIES),
        1,
        tlog::MAX_ENTRIES_LIMIT,
    )?;
    let tlog_max_size = in_bounds(
        G,
        "tlog_max_size",
        r.int(G, "tlog_max_size")?.unwrap_or(tlog::DEFAULT_MAX_SIZE),
        tlog::MIN_SIZE_LIMIT,
        tlog::MAX_SIZE_LIMIT,
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
    let tcp_keepalive = read_tcp_keepalive(r)?;
    let mut batch_configs = BTreeMap::new();
    for section in nodes
        .iter()
        .filter_map(|n| n.batched_transaction_config.clone())
    {
        if !r.has_section(&section) {
            return Err(invalid(
                &section,
                "batched_transaction_config",
                &section,
                "no such section",
            ));
        }
        let max_entries = match r.int(&section, "max_entries")? {
            Some(n) => Some(in_bounds(&section, "max_entries", n, 1, u64::MAX)?),
            None => None,
        };
        let max_size = match r.int(&section, "max_size")? {
            Some(n) => Some(in_bounds(&section, "max_size", n, 1, u64::MAX)?),
            None => None,
        };
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
        tcp_keepalive,
        batch_configs,
    })
}

fn read_tls(r: &mut Reader) -> Result<Option<TlsConfig>, ConfigError> {
    const G: &str = "global";
    let ca_cert = r.raw(G, "tls_ca_cert").filter(|v| !v.is_empty());
    let service = r.bool(G, "tls_service", false)?;
    let service_validate_peer = r.bool(G, "tls_service_validate_peer", false)?;
    let version = r.raw(G, "tls_version").unwrap_or_else(|| "1.2".into());
    r.warn(
        G,
        "tls_cipher_list",
        "ignored: rustls offers only its own safe cipher suites",
    );
    let Some(ca_cert) = ca_cert else {
        if service {
            return Err(invalid(G, "tls_service", "true", "needs tls_ca_cert"));
        }
        return Ok(None);
    };
    let version = match version.as_str() {
        "1.2" | "1.3" => version,
        "1.0" | "1.1" => {
            r.warn(
                G,
                "tls_version",
                "TLS 1.0 and 1.1 are unsafe and not offered; TLS 1.2 is used",
            );
            "1.2".to_string()
        }
        _ => {
            return Err(invalid(
                G,
                "tls_version",
                version,
                "expected 1.2 or 1.3 (1.0 and 1.1 are taken as 1.2)",
            ))
        }
    };
    Ok(Some(TlsConfig {
        ca_cert: PathBuf::from(ca_cert),
        service,
        service_validate_peer,
        version,
    }))
}

fn read_tcp_keepalive(r: &mut Reader) -> Result<TcpKeepalive, ConfigError> {
    const G: &str = "global";
    let default = TcpKeepalive::default();
    let secs = |r: &mut Reader, key: &str, default: Duration| -> Result<Duration, ConfigError> {
        Ok(match r.int(G, key)? {
            None => default,
            Some(s) => Duration::from_secs(in_bounds(G, key, s, 1, 32_767)?),
        })
    };
    let enabled = r.bool(G, "enable_tcp_keepalive", default.enabled)?;
    let time = secs(r, "tcp_keepalive_time", default.time)?;
    let interval = secs(r, "tcp_keepalive_intvl", default.interval)?;
    let probes = match r.int(G, "tcp_keepalive_probes")? {
        None => default.probes,
        Some(p) => in_bounds(G, "tcp_keepalive_probes", p, 1, 127)? as u32,
    };
    Ok(TcpKeepalive {
        enabled,
        time,
        interval,
        probes,
    })
}

fn parse_level(s: &str) -> Result<LogLevel, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "debug" => LogLevel::Debug,
        "info" => LogLevel::Info,
        "notice" => LogLevel::Notice,
        "warning" => LogLevel::Warning,
        "error" => LogLevel::Error,
        "fatal" => LogLevel::Fatal,
        _ => return Err("expected debug, info, notice, warning, error or fatal".into()),
    })
}

/// One of `log_sinks`, in Arakoon's forms; `dir` resolves relative paths.
fn parse_sink(s: &str, cwd: &Path) -> Result<LogSink, String> {
    if s == "console:" || s == "console" || s.starts_with("console://") {
        return Ok(LogSink::Console);
    }
    let path = if let Some(rest) = s.strip_prefix("file://") {
        rest
    } else if let Some(rest) = s.strip_prefix("file:") {
        rest
    } else if let Some((scheme, _)) = s.split_once("://") {
        return Err(format!(
            "sink '{s}': {scheme} sinks are not supported here (use console: or a file)"
        ));
    } else {
        s
    };
    if path.is_empty() {
        return Err(format!("sink '{s}' names no file"));
    }
    let path = Path::new(path);
    Ok(LogSink::File(if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    }))
}

fn read_log_components(r: &mut Reader, section: &str) -> Result<LogComponents, ConfigError> {
    if !r.has_section(section) {
        return Err(invalid(section, "log_config", section, "no such section"));
    }
    let mut level = |key: &str| r.parsed(section, key, parse_level);
    Ok(LogComponents {
        client_protocol: level("client_protocol")?,
        paxos: level("paxos")?,
        tcp_messaging: level("tcp_messaging")?,
        tlog_map: level("tlog_map")?,
        server: level("server")?,
    })
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
    if tlx_dir != tlog_dir {
        // Arakoon moves sealed (compressed) tlogs there; our tlog keeps
        // every segment, sealed or not, in one directory, whose crash
        // recovery it owns (a segment between two directories, on two file
        // systems, could not be sealed atomically).
        for key in ["tlx_dir", "tlf_dir"] {
            r.warn(
                name,
                key,
                "no effect: sealed tlog segments stay in tlog_dir here (one directory, sealed atomically by a rename); size tlog_dir for the whole tlog",
            );
        }
    }
    let log_dir = dir_or(r, "log_dir", &home);
    let level_text = r.required(name, "log_level")?;
    let log_level = parse_level(&level_text)
        .map_err(|reason| invalid(name, "log_level", &level_text, reason))?;
    let log_config = r.raw(name, "log_config").filter(|v| !v.is_empty());
    let log_components = match &log_config {
        Some(section) => read_log_components(r, section)?,
        None => LogComponents::default(),
    };
    let log_sinks = match r.list(name, "log_sinks").filter(|l| !l.is_empty()) {
        // Arakoon's default file, and stderr (where Arakoon writes nothing).
        None => vec![
            LogSink::File(log_dir.join(format!("{name}.log"))),
            LogSink::Console,
        ],
        Some(list) => {
            let cwd = std::env::current_dir().unwrap_or_default();
            let mut sinks = Vec::with_capacity(list.len());
            for sink in &list {
                sinks.push(
                    parse_sink(sink, &cwd)
                        .map_err(|reason| invalid(name, "log_sinks", list.join(", "), reason))?,
                );
            }
            sinks
        }
    };
    for (key, why) in NO_EFFECT_NODE {
        r.warn(name, key, why);
    }
    let batched_transaction_config = r
        .raw(name, "batched_transaction_config")
        .filter(|v| !v.is_empty());
    let learner = r.bool(name, "learner", false)?;
    let witness = r.bool(name, "witness", false)?;
    if witness && learner {
        return Err(invalid(
            name,
            "witness",
            "true",
            "a witness votes; a learner does not: a node cannot be both",
        ));
    }
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
    let fsync_interval = r
        .float(name, "fsync_interval")?
        .map(Duration::from_secs_f64);
    let fsync_entries = match r.int(name, "fsync_entries")? {
        Some(0) => return Err(invalid(name, "fsync_entries", 0, "must be at least 1")),
        n => n,
    };
    let relaxed = fsync_interval.is_some() || fsync_entries.is_some();
    let fsync_explicit = r.parsed(name, "fsync", crate::reader::parse_bool)?;
    if relaxed && fsync_explicit == Some(true) {
        let key = if fsync_interval.is_some() {
            "fsync_interval"
        } else {
            "fsync_entries"
        };
        return Err(invalid(
            name,
            key,
            r.raw(name, key).unwrap_or_default(),
            "a relaxed fsync mode cannot be combined with fsync = true (drop one of them)",
        ));
    }
    // Durability first: fsync unless it is turned off or relaxed.
    let fsync = fsync_explicit.unwrap_or(!relaxed);
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
    if let Some(f) = collapse_slowdown.filter(|f| !(f.is_finite() && *f >= 0.0)) {
        return Err(invalid(
            name,
            "collapse_slowdown",
            f,
            "must be a factor of at least 0",
        ));
    }
    let auto_collapse_keep = match r.int(name, "auto_collapse_keep")? {
        None => AUTO_COLLAPSE_KEEP_DEFAULT,
        Some(n) => in_bounds(name, "auto_collapse_keep", n, 0, AUTO_COLLAPSE_KEEP_MAX)? as u32,
    };
    let head_copy_throttling = r.float(name, "head_copy_throttling")?.unwrap_or(0.0);
    let optimize_db_slowdown = r.float(name, "optimize_db_slowdown")?.unwrap_or(0.0);
    r.warn(
        name,
        "head_copy_throttling",
        "no effect: copy_db_to_head copies nothing here (the store is the head; it collapses the tlog)",
    );
    r.warn(
        name,
        "optimize_db_slowdown",
        "no effect: the store is compacted offline here (--optimize-db-offline, on a stopped node), with nothing to slow down for",
    );
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
    let client_frame_timeout = match r.int(name, "client_frame_timeout")? {
        None => CLIENT_FRAME_TIMEOUT_DEFAULT,
        Some(secs) => Duration::from_secs(in_bounds(
            name,
            "client_frame_timeout",
            secs,
            1,
            CLIENT_FRAME_TIMEOUT_MAX_SECS,
        )?),
    };
    let min_free_disk = in_bounds(
        name,
        "min_free_disk",
        r.int(name, "min_free_disk")?
            .unwrap_or(MIN_FREE_DISK_DEFAULT_MB),
        0,
        MIN_FREE_DISK_MAX_MB,
    )? << 20;
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
        log_sinks,
        log_config,
        log_components,
        batched_transaction_config,
        learner,
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
        client_frame_timeout,
        auto_collapse_keep,
        min_free_disk,
    })
}
