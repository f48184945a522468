//! The client actions: each runs one request through [`client::Client`] and
//! prints its answer the way Arakoon's `arakoon` prints it (values and keys
//! escaped in double quotes, one per line).

use std::io::Write;
use std::path::Path;

use client::{Client, Error, Escaped, KeyRange, NamedField, NamedValue};

use crate::args::{ClientAction, ClientTls, DirectAction};

/// Why an action failed: what was asked (`get "foo"`) and why, one line,
/// and what kind of failure it is (its exit status).
#[derive(Debug, thiserror::Error)]
#[error("{what}: {reason}")]
pub struct ActionError {
    pub what: String,
    pub reason: String,
    pub kind: FailureKind,
}

/// The kinds of failure an operator's script tells apart, each with its
/// exit status ([`crate::exit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Refused or failed: a missing key, a node's error answer, a file
    /// that cannot be read.
    Refused,
    /// No connection, no answer in time, no master.
    Unreachable,
    /// An update may or may not have been applied.
    OutcomeUnknown,
    /// An offline tool found a damaged file.
    Damaged,
    /// The reader of standard output went away (`| head`): not a failure,
    /// the process ends quietly.
    OutputClosed,
}

impl FailureKind {
    /// The process's exit status for this kind.
    pub fn exit_code(self) -> u8 {
        match self {
            FailureKind::Refused => crate::exit::REFUSED,
            FailureKind::Unreachable => crate::exit::UNREACHABLE,
            FailureKind::OutcomeUnknown => crate::exit::OUTCOME_UNKNOWN,
            FailureKind::Damaged => crate::exit::DAMAGED,
            FailureKind::OutputClosed => crate::exit::OK,
        }
    }
}

impl ActionError {
    pub(crate) fn new(what: &str, reason: impl std::fmt::Display) -> ActionError {
        ActionError::of_kind(FailureKind::Refused, what, reason)
    }

    pub(crate) fn of_kind(
        kind: FailureKind,
        what: &str,
        reason: impl std::fmt::Display,
    ) -> ActionError {
        ActionError {
            what: what.to_string(),
            reason: reason.to_string(),
            kind,
        }
    }

    /// A failed write of the answer: quiet if the reader went away.
    pub(crate) fn write_failed(what: &str, error: &std::io::Error) -> ActionError {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            ActionError::of_kind(FailureKind::OutputClosed, what, "standard output closed")
        } else {
            ActionError::new(what, format!("cannot write the answer: {error}"))
        }
    }

    /// Whether the process should end without a word (see
    /// [`FailureKind::OutputClosed`]).
    pub fn is_quiet(&self) -> bool {
        self.kind == FailureKind::OutputClosed
    }
}

/// The kind of failure a client error is.
fn kind_of(error: &Error) -> FailureKind {
    match error {
        // NotMaster is an answer (of the one node asked, or after the
        // retries): refused, not unreachable.
        Error::Io { .. } | Error::Timeout { .. } | Error::NoMaster { .. } => {
            FailureKind::Unreachable
        }
        e if e.is_outcome_unknown() => FailureKind::OutcomeUnknown,
        _ => FailureKind::Refused,
    }
}

/// The failure of `what` with a client error: its kind, its reason, and
/// for the kinds where the operator has something to do, what.
pub(crate) fn client_failure(what: &str, error: &Error) -> ActionError {
    let kind = kind_of(error);
    let hint = match kind {
        FailureKind::Unreachable => {
            " (is the cluster running, and are the addresses in the config right?)"
        }
        FailureKind::OutcomeUnknown => " (read the key back before retrying)",
        _ => "",
    };
    ActionError::of_kind(kind, what, format!("{}{hint}", reason(error)))
}

/// How the action is named in an error line.
fn describe(action: &ClientAction) -> String {
    match action {
        ClientAction::Set { key, .. } => format!("set {}", Escaped(key)),
        ClientAction::Get { key } => format!("get {}", Escaped(key)),
        ClientAction::SetRaw { key } => format!("set-raw {}", Escaped(key)),
        ClientAction::GetRaw { key } => format!("get-raw {}", Escaped(key)),
        ClientAction::Delete { key } => format!("delete {}", Escaped(key)),
        ClientAction::DeletePrefix { prefix } => format!("delete-prefix {}", Escaped(prefix)),
        ClientAction::Prefix { prefix, .. } => format!("prefix {}", Escaped(prefix)),
        ClientAction::RangeEntries { reverse, .. } => if *reverse {
            "rev-range-entries"
        } else {
            "range-entries"
        }
        .to_string(),
        ClientAction::WhoMaster => "who-master".to_string(),
        ClientAction::ExpectProgressPossible => "expect-progress-possible".to_string(),
        ClientAction::Statistics => "statistics".to_string(),
        ClientAction::InspectCluster { .. } => "inspect-cluster".to_string(),
        ClientAction::Nop => "nop".to_string(),
        ClientAction::KeyCount => "n-values".to_string(),
        ClientAction::NodeVersion { node } => format!("node-version {node}"),
        ClientAction::NodeState { node } => format!("node-state {node}"),
    }
}

/// A client error as the reason of an error line (the key is already in
/// the action's description).
fn reason(error: &Error) -> String {
    match error {
        Error::NotFound { .. } => "key not found".to_string(),
        other => other.to_string(),
    }
}

/// `builder` with the command line's TLS options over the config's: a CA
/// turns TLS on (Arakoon's `-tls-ca-cert`); a client certificate needs TLS.
pub fn with_tls(
    builder: client::ClientBuilder,
    tls: &ClientTls,
    what: &str,
) -> Result<client::ClientBuilder, ActionError> {
    if tls.is_empty() {
        return Ok(builder);
    }
    let mut options = builder.tls_options().cloned();
    if let Some(ca_cert) = &tls.ca_cert {
        let options = options.get_or_insert_with(|| client::TlsOptions {
            ca_cert: ca_cert.clone(),
            identity: None,
            min_version: client::TlsMinVersion::Tls12,
        });
        options.ca_cert = ca_cert.clone();
    }
    let Some(mut options) = options else {
        return Err(ActionError::new(
            what,
            "-tls-cert, -tls-key and -tls-version need TLS: give -tls-ca-cert \
             (or set tls_service in the config)",
        ));
    };
    if let Some(identity) = &tls.identity {
        options.identity = Some(identity.clone());
    }
    if let Some(version) = tls.min_version {
        options.min_version = version;
    }
    Ok(builder.tls(Some(options)))
}

/// Loads the config and builds a client of its cluster.
pub fn client_from_config(path: &Path) -> Result<Client, ActionError> {
    client_from_config_with_tls(path, &ClientTls::default())
}

/// [`client_from_config`], with the command line's TLS options.
pub fn client_from_config_with_tls(path: &Path, tls: &ClientTls) -> Result<Client, ActionError> {
    let loaded = config::load(path).map_err(|e| match e {
        // Names the file already.
        config::ConfigError::Io { .. } => {
            ActionError::new("config", e.to_string().trim_start_matches("config: "))
        }
        e => ActionError::new(&path.display().to_string(), e),
    })?;
    for warning in &loaded.warnings {
        tracing::debug!(%warning, "config");
    }
    let what = path.display().to_string();
    with_tls(
        client::ClientBuilder::from_config(&loaded.config),
        tls,
        &what,
    )?
    .build()
    .map_err(|e| ActionError::new(&what, e))
}

/// Runs `action` against `client`, printing its answer to `out`.
pub async fn run(
    client: &Client,
    action: &ClientAction,
    out: &mut dyn Write,
) -> Result<(), ActionError> {
    let what = describe(action);
    let failed = |e: Error| client_failure(&what, &e);
    let text = match action {
        ClientAction::InspectCluster { watch } => {
            return crate::inspect::run(client, *watch, out).await;
        }
        ClientAction::GetRaw { key } => {
            let value = client.get(key).await.map_err(failed)?;
            return out
                .write_all(&value)
                .and_then(|()| out.flush())
                .map_err(|e| ActionError::write_failed(&what, &e));
        }
        ClientAction::SetRaw { key } => {
            let mut value = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut value)
                .map_err(|e| ActionError::new(&what, format!("cannot read standard input: {e}")))?;
            client.set(key, &value).await.map_err(failed)?;
            String::new()
        }
        ClientAction::Set { key, value } => {
            client.set(key, value).await.map_err(failed)?;
            String::new()
        }
        ClientAction::Get { key } => {
            let value = client.get(key).await.map_err(failed)?;
            format!("{}\n", Escaped(&value))
        }
        ClientAction::Delete { key } => {
            client.delete(key).await.map_err(failed)?;
            String::new()
        }
        ClientAction::DeletePrefix { prefix } => {
            let count = client.delete_prefix(prefix).await.map_err(failed)?;
            format!("{count}\n")
        }
        ClientAction::Prefix { prefix, max } => {
            let keys = client
                .prefix_keys(prefix, Some(*max))
                .await
                .map_err(failed)?;
            keys.iter().map(|k| format!("{}\n", Escaped(k))).collect()
        }
        ClientAction::RangeEntries {
            left,
            right,
            max,
            reverse,
        } => {
            // Arakoon's CLI: left included, right excluded.
            let range = KeyRange {
                first: left.clone(),
                first_inclusive: true,
                last: right.clone(),
                last_inclusive: false,
                max: i32::try_from(*max).unwrap_or(i32::MAX),
            };
            let entries = if *reverse {
                client.rev_range_entries(&range).await
            } else {
                client.range_entries(&range).await
            }
            .map_err(failed)?;
            let mut text: String = entries
                .iter()
                .map(|(k, v)| format!("{} {}\n", Escaped(k), Escaped(v)))
                .collect();
            text.push_str(&format!("{} listed\n", entries.len()));
            text
        }
        ClientAction::WhoMaster => format!("{}\n", client.master().await.map_err(failed)?),
        ClientAction::ExpectProgressPossible => {
            format!(
                "{}\n",
                client.expect_progress_possible().await.map_err(failed)?
            )
        }
        ClientAction::Statistics => render_statistics(&client.statistics().await.map_err(failed)?),
        ClientAction::Nop => {
            client.nop().await.map_err(failed)?;
            String::new()
        }
        ClientAction::KeyCount => format!("{}\n", client.get_key_count().await.map_err(failed)?),
        ClientAction::NodeVersion { node } => {
            let version = client
                .node(node)
                .map_err(failed)?
                .version()
                .await
                .map_err(failed)?;
            format!(
                "{}.{}.{}\n{}\n",
                version.major, version.minor, version.patch, version.info
            )
        }
        ClientAction::NodeState { node } => {
            let state = client
                .node(node)
                .map_err(failed)?
                .current_state()
                .await
                .map_err(failed)?;
            format!("{state}\n")
        }
    };
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| ActionError::write_failed(&what, &e))
}

/// Longest wait for each frame of a `collapse_tlogs` answer: the node may
/// checkpoint its store before the first, and pauses between segments as
/// its `collapse_slowdown` says.
const COLLAPSE_FRAME_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs `action` on the node at `address` of cluster `cluster_id`, printing
/// its answer to `out` (`--ping`: the greeting, then `took\t<seconds>`).
pub async fn run_direct(
    cluster_id: &str,
    address: &str,
    action: DirectAction,
    tls: &ClientTls,
    out: &mut dyn Write,
) -> Result<(), ActionError> {
    let what = match &action {
        DirectAction::Ping => format!("ping {address}"),
        DirectAction::DropMaster => format!("drop-master {address}"),
        DirectAction::CollapseRemote { tlogs_to_keep } => {
            format!("collapse-remote {address} {tlogs_to_keep}")
        }
        DirectAction::BackupDb { file } => format!("backup-db {address} {}", file.display()),
        DirectAction::OptimizeDb => format!("optimize-db {address}"),
        DirectAction::DefragDb => format!("defrag-db {address}"),
        DirectAction::FlushStore => format!("flush-store {address}"),
        DirectAction::CopyDbToHead { tlogs_to_keep } => {
            format!("copy-db-to-head {address} {tlogs_to_keep}")
        }
    };
    let failed = |e: Error| client_failure(&what, &e);
    // One node, named by its address; NotMaster and the like are answers,
    // not something to follow.
    let builder = client::ClientBuilder::new(cluster_id).node(address, address);
    let client = with_tls(builder, tls, &what)?
        .build()
        .map_err(failed)?
        .node(address)
        .map_err(failed)?;
    let text = match action {
        DirectAction::BackupDb { file } => {
            let bytes = crate::backup::backup_db(&client, &file, &what).await?;
            format!("{bytes} bytes written to {}\n", file.display())
        }
        DirectAction::OptimizeDb => {
            client.optimize_db().await.map_err(failed)?;
            String::new()
        }
        DirectAction::DefragDb => {
            client.defrag_db().await.map_err(failed)?;
            String::new()
        }
        DirectAction::FlushStore => {
            client.flush_store().await.map_err(failed)?;
            String::new()
        }
        DirectAction::CopyDbToHead { tlogs_to_keep } => {
            client
                .with_request_timeout(COLLAPSE_FRAME_TIMEOUT)
                .copy_db_to_head(tlogs_to_keep)
                .await
                .map_err(failed)?;
            String::new()
        }
        DirectAction::Ping => {
            let started = std::time::Instant::now();
            let greeting = client.ping("arakoon-cli").await.map_err(failed)?;
            format!("{greeting}\ntook\t{:.6}\n", started.elapsed().as_secs_f64())
        }
        DirectAction::DropMaster => {
            client.drop_master().await.map_err(failed)?;
            String::new()
        }
        DirectAction::CollapseRemote { tlogs_to_keep } => {
            // One line per tlog as the node reports it (a collapse of many
            // takes a while), then the total.
            let mut write_error = None;
            let count = client
                .with_request_timeout(COLLAPSE_FRAME_TIMEOUT)
                .collapse_tlogs(tlogs_to_keep, |done, total, _elapsed| {
                    let line = format!("collapsed {done} of {total} tlogs\n");
                    if write_error.is_none() {
                        if let Err(e) = out.write_all(line.as_bytes()).and_then(|()| out.flush()) {
                            write_error = Some(e);
                        }
                    }
                })
                .await
                .map_err(failed)?;
            if let Some(e) = write_error {
                return Err(ActionError::write_failed(&what, &e));
            }
            if count == 0 {
                "nothing to collapse\n".to_string()
            } else {
                format!("done: {count} tlogs collapsed\n")
            }
        }
    };
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| ActionError::write_failed(&what, &e))
}

/// Statistics as indented `name: value` lines.
pub fn render_statistics(stats: &NamedField) -> String {
    let mut text = String::new();
    render_field(stats, 0, &mut text);
    text
}

fn render_field(field: &NamedField, depth: usize, out: &mut String) {
    let indent = "  ".repeat(depth);
    match &field.value {
        NamedValue::Int32(v) => out.push_str(&format!("{indent}{}: {v}\n", field.name)),
        NamedValue::Int64(v) => out.push_str(&format!("{indent}{}: {v}\n", field.name)),
        NamedValue::Float(v) => out.push_str(&format!("{indent}{}: {v}\n", field.name)),
        NamedValue::String(v) => out.push_str(&format!("{indent}{}: {v:?}\n", field.name)),
        NamedValue::List(fields) => {
            out.push_str(&format!("{indent}{}:\n", field.name));
            for inner in fields {
                render_field(inner, depth + 1, out);
            }
        }
    }
}

/// Arakoon's `--load N`: `clients` clients, each setting the keys
/// `"{c}:{i}_key"` (value: the key) for `i` in `0..steps`, one every
/// `pause`, printing `"{c:04}: {i}"` before each. Stops at the first
/// failure.
pub async fn load(
    client: &Client,
    clients: usize,
    steps: usize,
    pause: std::time::Duration,
    out: &mut dyn Write,
) -> Result<(), ActionError> {
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 1..=clients {
        let client = client.clone();
        let lines_tx = lines_tx.clone();
        tasks.spawn(async move {
            for i in 0..steps {
                let _ = lines_tx.send(format!("{c:04}: {i}\n"));
                let key = format!("{c}:{i}_key");
                client
                    .set(key.as_bytes(), key.as_bytes())
                    .await
                    .map_err(|e| client_failure(&format!("load client {c}: set {key}"), &e))?;
                tokio::time::sleep(pause).await;
            }
            Ok::<(), ActionError>(())
        });
    }
    drop(lines_tx);
    let mut result = Ok(());
    loop {
        tokio::select! {
            line = lines.recv() => match line {
                Some(line) => {
                    out.write_all(line.as_bytes())
                        .map_err(|e| ActionError::write_failed("load", &e))?;
                }
                None => break,
            },
            Some(done) = tasks.join_next() => {
                let done = done.unwrap_or_else(|e| Err(ActionError::new("load", e)));
                if done.is_err() && result.is_ok() {
                    result = done;
                    tasks.abort_all();
                }
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(e)) = done {
            if result.is_ok() {
                result = Err(e);
            }
        }
    }
    out.flush()
        .map_err(|e| ActionError::write_failed("load", &e))?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_render_nested() {
        let stats = NamedField::new(
            "arakoon_stats",
            NamedValue::List(vec![
                NamedField::new("node", NamedValue::String("n0".into())),
                NamedField::new(
                    "ops",
                    NamedValue::List(vec![NamedField::new("n", NamedValue::Int64(3))]),
                ),
            ]),
        );
        assert_eq!(
            render_statistics(&stats),
            "arakoon_stats:\n  node: \"n0\"\n  ops:\n    n: 3\n"
        );
    }

    #[test]
    fn errors_name_the_action_and_key() {
        let error = Error::NotFound {
            node: "n0".into(),
            key: b"foo".to_vec(),
        };
        let action = ClientAction::Get {
            key: b"foo".to_vec(),
        };
        let line = ActionError::new(&describe(&action), reason(&error)).to_string();
        assert_eq!(line, "get \"foo\": key not found");
    }
}
