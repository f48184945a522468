//! Arakoon's rules: which sections and keys make a cluster config, their
//! defaults, ranges and the checks across keys (`shared/spec/config.md`).

use crate::reader::{in_bounds, in_range, invalid, parse_list, Reader};
use crate::{
    BatchConfig, ClusterConfig, ConfigError, LogLevel, MasterMode, NodeConfig, TlogCompression,
    TlsConfig, AUTO_COLLAPSE_KEEP_DEFAULT, AUTO_COLLAPSE_KEEP_MAX, CLIENT_FRAME_TIMEOUT_DEFAULT,
    CLIENT_FRAME_TIMEOUT_MAX_SECS, SLAVE_APPLY_DELAY_DEFAULT, SLAVE_APPLY_DELAY_MAX_MS,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Global keys other tools write that this node does not use: no warning.
pub(crate) const KNOWN_UNUSED_GLOBAL: &[&str] =
    &["lcnum", "ncnum", "__tainted_tlog_entries_per_file"];

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
        client_frame_timeout,
        auto_collapse_keep,
    })
}
