//! The Arakoon target: one [`client::Client`] per bench client (its own
//! connections), writes to the master, reads with the asked consistency:
//! `Consistent` to the master; `NoGuarantee` and `AtLeast(i)` to the nodes
//! in turn (client `c` reads from voter `c mod n`), as a deployment
//! spreading relaxed reads would.

use std::time::{Duration, Instant};

use client::{Client, ClientBuilder, Consistency, Error, KeyRange, Update};
use config::ClusterConfig;

use crate::args::ReadConsistency;
use crate::report::OpError;
use crate::runner::{Backend, Outcome, Session};
use crate::workload::Op;

/// How long opening a session may keep trying (a cluster just started may
/// not have a master yet).
pub const OPEN_DEADLINE: Duration = Duration::from_secs(30);
/// Pause between tries while opening.
pub const OPEN_RETRY_PAUSE: Duration = Duration::from_millis(100);
/// Longest wait for one answer during the bench.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The short kind of a client error, to count errors by.
pub fn error_kind(e: &Error) -> String {
    match e {
        Error::NotFound { .. } => "not_found".into(),
        Error::NotMaster { .. } => "not_master".into(),
        Error::AssertionFailed { .. } => "assertion_failed".into(),
        Error::InconsistentRead { .. } => "inconsistent_read".into(),
        Error::NoLongerMaster { .. } => "no_longer_master".into(),
        Error::OutcomeUnknown { .. } => "outcome_unknown".into(),
        Error::Timeout { .. } => "timeout".into(),
        Error::Io { .. } => "io".into(),
        Error::Protocol { .. } => "protocol".into(),
        Error::WrongCluster { .. } => "wrong_cluster".into(),
        Error::NoMaster { .. } => "no_master".into(),
        Error::UnknownNode { .. } => "unknown_node".into(),
        Error::Server { code, .. } => format!("server {}", code.name()),
        Error::RequestTooLarge { .. } => "request_too_large".into(),
        Error::Config(_) => "config".into(),
        _ => "other".into(),
    }
}

fn op_error(e: &Error) -> OpError {
    OpError::new(error_kind(e), e.to_string())
}

/// Opens clients of the cluster in a config.
#[derive(Debug)]
pub struct ArakoonBackend {
    config: ClusterConfig,
    consistency: ReadConsistency,
    /// Voters, which relaxed reads are spread over.
    readers: Vec<String>,
}

impl ArakoonBackend {
    pub fn new(config: ClusterConfig, consistency: ReadConsistency) -> ArakoonBackend {
        let readers = config
            .nodes
            .iter()
            .filter(|n| !n.learner)
            .map(|n| n.name.clone())
            .collect();
        ArakoonBackend {
            config,
            consistency,
            readers,
        }
    }
}

/// One bench client.
#[derive(Debug)]
pub struct ArakoonSession {
    /// Sends to the master (updates, and `Consistent` reads).
    writer: Client,
    /// Sends reads (the master, or one node).
    reader: Client,
    consistency: ReadConsistency,
}

impl ArakoonSession {
    /// The `AtLeast` index: the master's txid now.
    async fn at_least(&self) -> Result<Consistency, Error> {
        self.writer.get_txid().await
    }
}

/// Retries `attempt` until it succeeds or `OPEN_DEADLINE` passes.
async fn with_deadline<T, F, Fut>(mut attempt: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let start = Instant::now();
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(_) if start.elapsed() < OPEN_DEADLINE => {
                tokio::time::sleep(OPEN_RETRY_PAUSE).await;
            }
            Err(e) => return Err(e),
        }
    }
}

impl Backend for ArakoonBackend {
    type Session = ArakoonSession;

    fn name(&self) -> &'static str {
        "arakoon"
    }

    async fn open(&self, client: usize) -> Result<ArakoonSession, OpError> {
        let writer = ClientBuilder::from_config(&self.config)
            .request_timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| op_error(&e))?;
        // Discover the master and connect to it.
        with_deadline(|| writer.master())
            .await
            .map_err(|e| op_error(&e))?;
        let reader = match self.consistency {
            ReadConsistency::Consistent => writer.clone(),
            ReadConsistency::AtLeast | ReadConsistency::NoGuarantee => {
                let name = &self.readers[client % self.readers.len().max(1)];
                let node = writer.node(name).map_err(|e| op_error(&e))?;
                // Connect now, outside the measurement.
                with_deadline(|| node.who_master())
                    .await
                    .map_err(|e| op_error(&e))?;
                node.with_consistency(Consistency::NoGuarantee)
            }
        };
        let mut session = ArakoonSession {
            writer,
            reader,
            consistency: self.consistency,
        };
        session.prepare().await?;
        Ok(session)
    }
}

impl Session for ArakoonSession {
    async fn prepare(&mut self) -> Result<(), OpError> {
        if self.consistency == ReadConsistency::AtLeast {
            let index = with_deadline(|| self.at_least())
                .await
                .map_err(|e| op_error(&e))?;
            self.reader = self.reader.with_consistency(index);
            // A node whose tlog does not hold the index yet answers
            // E_INCONSISTENT_READ at once (it is not in the commit's
            // quorum, or the entries are still on their way): wait, outside
            // the measurement, until it can serve the scenario's reads.
            with_deadline(|| self.reader.exists(b"arakoon-bench-ready"))
                .await
                .map_err(|e| op_error(&e))?;
        }
        Ok(())
    }

    async fn execute(&mut self, op: &Op) -> Result<Outcome, OpError> {
        let result = match op {
            Op::Set { key, value } => self.writer.set(key, value).await.map(|()| Outcome::Done),
            Op::Get { key } => match self.reader.get(key).await {
                Ok(_) => Ok(Outcome::Done),
                Err(Error::NotFound { .. }) => Ok(Outcome::Missing),
                Err(e) => Err(e),
            },
            Op::Range { first, max } => {
                let range = KeyRange {
                    first: Some(first.clone()),
                    first_inclusive: true,
                    last: None,
                    last_inclusive: false,
                    max: i32::try_from(*max).unwrap_or(i32::MAX),
                };
                self.reader.range_entries(&range).await.map(|entries| {
                    if entries.is_empty() {
                        Outcome::Missing
                    } else {
                        Outcome::Done
                    }
                })
            }
            Op::Sequence { keys, value } => {
                let updates: Vec<Update> = keys
                    .iter()
                    .map(|key| Update::Set {
                        key: key.clone(),
                        value: value.to_vec(),
                    })
                    .collect();
                self.writer.sequence(updates).await.map(|()| Outcome::Done)
            }
        };
        result.map_err(|e| op_error(&e))
    }
}
