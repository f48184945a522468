//! The command line of `arakoon bench`: hand-parsed, so that Arakoon's
//! single-dash `-config FILE` works beside `--flag VALUE` and
//! `--flag=VALUE`. Every bad value is one line naming the flag, the value
//! and what is accepted.

use std::path::PathBuf;
use std::time::Duration;

/// Most concurrent clients (each one a set of TCP connections).
pub const MAX_CLIENTS: usize = 4096;
/// Most operations of one scenario.
pub const MAX_OPS: u64 = 1_000_000_000;
/// Largest value, in bytes (well under the protocol's default frame limit
/// of 32 MiB, even inside a sequence).
pub const MAX_VALUE_SIZE: usize = 1 << 20;
/// Largest key, in bytes.
pub const MAX_KEY_SIZE: usize = 4096;
/// Most keys in the key space.
pub const MAX_KEYS: u64 = 1_000_000_000_000;
/// Longest `--max-seconds`.
pub const MAX_SECONDS: u64 = 7 * 24 * 3600;

pub const DEFAULT_CLIENTS: usize = 16;
pub const DEFAULT_OPS: u64 = 10_000;
pub const DEFAULT_VALUE_SIZE: usize = 100;
pub const DEFAULT_KEY_SIZE: usize = 16;
pub const DEFAULT_KEYS: u64 = 100_000;
pub const DEFAULT_SEED: u64 = 42;

/// A bad command line, in one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(message: impl Into<String>) -> UsageError {
    UsageError(message.into())
}

/// What a scenario's operations are (see `workload.rs` for their shapes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// `set` of one key.
    Set,
    /// `get` of one key.
    Get,
    /// `range_entries` from one key, at most `RANGE_MAX_KEYS` entries.
    Range,
    /// A `sequence` of `SEQUENCE_SETS` sets.
    Sequence,
    /// `get` or `set`, `MIXED_READ_PERCENT` % reads.
    Mixed,
}

impl Scenario {
    pub const ALL: [Scenario; 5] = [
        Scenario::Set,
        Scenario::Get,
        Scenario::Range,
        Scenario::Sequence,
        Scenario::Mixed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Set => "set",
            Scenario::Get => "get",
            Scenario::Range => "range",
            Scenario::Sequence => "sequence",
            Scenario::Mixed => "mixed",
        }
    }

    /// Whether it reads keys that should exist (the key space is filled
    /// before the first such scenario, unless `--no-fill`).
    pub fn reads(self) -> bool {
        matches!(self, Scenario::Get | Scenario::Range | Scenario::Mixed)
    }
}

/// The read consistency asked for reads (writes always go to the master).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    /// Arakoon `Consistent` (the master under its lease); etcd linearizable.
    Consistent,
    /// Arakoon `AtLeast(i)`, `i` the master's txid at the scenario's start,
    /// on any node; etcd serializable (it has nothing closer).
    AtLeast,
    /// Arakoon `NoGuarantee` on any node; etcd serializable.
    NoGuarantee,
}

impl ReadConsistency {
    pub fn name(self) -> &'static str {
        match self {
            ReadConsistency::Consistent => "consistent",
            ReadConsistency::AtLeast => "at-least",
            ReadConsistency::NoGuarantee => "no-guarantee",
        }
    }
}

/// What the load goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The Arakoon cluster of a config file (`-config FILE`).
    Arakoon { config: PathBuf },
    /// etcd members (`--target etcd://host:port,host:port`), served by the
    /// separate etcd load generator (`bench/etcd-load`).
    Etcd { endpoints: Vec<String> },
}

/// A parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub target: Target,
    pub scenarios: Vec<Scenario>,
    pub clients: usize,
    /// Operations per scenario.
    pub ops: u64,
    pub value_size: usize,
    pub key_size: usize,
    /// Keys are drawn uniformly from this many.
    pub keys: u64,
    pub consistency: ReadConsistency,
    pub json: bool,
    /// Fill the key space before the first reading scenario.
    pub fill: bool,
    /// Stop a scenario after this long, even if not all ops were done.
    pub max_duration: Option<Duration>,
    /// Seed of the key choice (each client derives its own).
    pub seed: u64,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Run(Options),
    Help,
}

/// The help text.
pub const USAGE: &str = "\
Usage: arakoon bench -config FILE [OPTIONS]
       arakoon bench --target etcd://HOST:PORT[,HOST:PORT...] [OPTIONS]

Load against a cluster over real client connections: C clients, each with
its own connections and one request in flight. Prints ops/s and latency
p50/p99/p999/max per scenario.

Options:
  -config FILE             the cluster's Arakoon config (.ini)
  --target etcd://H:P,...  load an etcd cluster instead (needs the separate
                           etcd load generator, see bench/compare-etcd.sh)
  --scenario LIST          comma-separated: set,get,range,sequence,mixed
                           (default: set)
  --clients C              concurrent clients (default 16)
  --ops N                  operations per scenario (default 10000)
  --value-size V           value bytes (default 100)
  --key-size K             key bytes (default 16)
  --keys KEYSPACE          keys drawn uniformly from this many (default 100000)
  --consistency C          reads: consistent (default), at-least, no-guarantee
  --json                   one JSON object per scenario on stdout
  --no-fill                do not write the key space before reading scenarios
  --max-seconds S          stop a scenario after S seconds
  --seed N                 seed of the key choice (default 42)
  -h, --help               this text
";

/// Least key size that holds `keys` distinct keys: the prefix and the
/// decimal digits of the largest index.
pub fn min_key_size(keys: u64) -> usize {
    let largest = keys.saturating_sub(1);
    crate::workload::KEY_PREFIX.len() + largest.to_string().len()
}

fn number<T>(flag: &str, value: &str, min: T, max: T) -> Result<T, UsageError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let n: T = value
        .parse()
        .map_err(|_| usage(format!("{flag} {value:?}: not a whole number")))?;
    if n < min || n > max {
        return Err(usage(format!(
            "{flag} {value}: out of range (from {min} to {max})"
        )));
    }
    Ok(n)
}

fn scenarios(value: &str) -> Result<Vec<Scenario>, UsageError> {
    let mut list = Vec::new();
    for name in value.split(',').map(str::trim) {
        let scenario = Scenario::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                usage(format!(
                    "--scenario: unknown scenario {name:?} (known: set, get, range, sequence, mixed)"
                ))
            })?;
        if list.contains(&scenario) {
            return Err(usage(format!("--scenario: {name} is listed twice")));
        }
        list.push(scenario);
    }
    Ok(list)
}

fn consistency(value: &str) -> Result<ReadConsistency, UsageError> {
    match value {
        "consistent" => Ok(ReadConsistency::Consistent),
        "at-least" | "at_least" => Ok(ReadConsistency::AtLeast),
        "no-guarantee" | "no_guarantee" => Ok(ReadConsistency::NoGuarantee),
        other => Err(usage(format!(
            "--consistency {other:?}: not one of consistent, at-least, no-guarantee"
        ))),
    }
}

fn etcd_endpoints(value: &str) -> Result<Vec<String>, UsageError> {
    let rest = value.strip_prefix("etcd://").ok_or_else(|| {
        usage(format!(
            "--target {value:?}: expected etcd://HOST:PORT[,HOST:PORT...] (for Arakoon, use -config FILE)"
        ))
    })?;
    let endpoints: Vec<String> = rest.split(',').map(|e| e.trim().to_string()).collect();
    for endpoint in &endpoints {
        let port = endpoint
            .rsplit_once(':')
            .filter(|(host, _)| !host.is_empty())
            .and_then(|(_, port)| port.parse::<u16>().ok());
        if port.is_none() {
            return Err(usage(format!(
                "--target: endpoint {endpoint:?} is not HOST:PORT"
            )));
        }
    }
    Ok(endpoints)
}

/// Parses the arguments after `bench`.
pub fn parse(args: &[String]) -> Result<Parsed, UsageError> {
    let mut config = None;
    let mut etcd = None;
    let mut options = Options {
        target: Target::Arakoon {
            config: PathBuf::new(),
        },
        scenarios: vec![Scenario::Set],
        clients: DEFAULT_CLIENTS,
        ops: DEFAULT_OPS,
        value_size: DEFAULT_VALUE_SIZE,
        key_size: DEFAULT_KEY_SIZE,
        keys: DEFAULT_KEYS,
        consistency: ReadConsistency::Consistent,
        json: false,
        fill: true,
        max_duration: None,
        seed: DEFAULT_SEED,
    };
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].as_str();
        i += 1;
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with('-') => (flag, Some(value.to_string())),
            _ => (arg, None),
        };
        let takes_value = match flag {
            "-h" | "--help" | "--json" | "--no-fill" => false,
            "-config" | "--config" | "--target" | "--scenario" | "--scenarios" | "--clients"
            | "--ops" | "--value-size" | "--key-size" | "--keys" | "--consistency"
            | "--max-seconds" | "--seed" => true,
            other => {
                return Err(usage(format!(
                    "unknown argument {other:?} (see arakoon bench --help)"
                )))
            }
        };
        let value = if takes_value {
            match inline {
                Some(v) => v,
                None => {
                    let v = args
                        .get(i)
                        .ok_or_else(|| usage(format!("{flag}: a value is missing")))?;
                    i += 1;
                    v.clone()
                }
            }
        } else {
            if inline.is_some() {
                return Err(usage(format!("{flag} takes no value")));
            }
            String::new()
        };
        match flag {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--json" => options.json = true,
            "--no-fill" => options.fill = false,
            "-config" | "--config" => config = Some(PathBuf::from(value)),
            "--target" => etcd = Some(etcd_endpoints(&value)?),
            "--scenario" | "--scenarios" => options.scenarios = scenarios(&value)?,
            "--clients" => options.clients = number(flag, &value, 1, MAX_CLIENTS)?,
            "--ops" => options.ops = number(flag, &value, 1, MAX_OPS)?,
            "--value-size" => options.value_size = number(flag, &value, 0, MAX_VALUE_SIZE)?,
            "--key-size" => options.key_size = number(flag, &value, 1, MAX_KEY_SIZE)?,
            "--keys" => options.keys = number(flag, &value, 1, MAX_KEYS)?,
            "--consistency" => options.consistency = consistency(&value)?,
            "--max-seconds" => {
                let seconds = number(flag, &value, 1, MAX_SECONDS)?;
                options.max_duration = Some(Duration::from_secs(seconds));
            }
            "--seed" => options.seed = number(flag, &value, 0, u64::MAX)?,
            other => unreachable!("{other} is listed above as a flag"),
        }
    }
    options.target = match (config, etcd) {
        (Some(_), Some(_)) => {
            return Err(usage(
                "-config and --target both given: load either an Arakoon cluster or etcd",
            ))
        }
        (Some(config), None) => Target::Arakoon { config },
        (None, Some(endpoints)) => Target::Etcd { endpoints },
        (None, None) => {
            return Err(usage(
                "-config FILE is required (or --target etcd://HOST:PORT,...)",
            ))
        }
    };
    let needed = min_key_size(options.keys);
    if options.key_size < needed {
        return Err(usage(format!(
            "--key-size {}: too small for --keys {} (needs at least {needed} bytes)",
            options.key_size, options.keys
        )));
    }
    Ok(Parsed::Run(options))
}
