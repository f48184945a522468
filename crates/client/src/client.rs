//! The cluster client: which node a request goes to (the master, found and
//! cached; or one node on purpose), and what happens when it fails (retry,
//! rediscover, or surface the error). Whether to retry is decided by the
//! pure `retry::after_failure`; this module applies the decision (waits,
//! updates the cached master, builds the error). The typed commands are in
//! `commands.rs`, the settings and their checks in `builder.rs`.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use protocol::{Command, Consistency, Limits, Reply, Request, Response};

use crate::builder::{ClientBuilder, Connector, Settings};
use crate::connection::{closed_after_prologue, CallError, Connection, Frame};
use crate::error::{Error, NodeFailure};
use crate::retry::{
    self, is_idempotent, Answer, Failure, Happened, MasterCache, Next, Refusal, RetryPolicy,
};

/// An async client of one Arakoon cluster.
///
/// Requests go to the master: the client asks the nodes `who_master` (in
/// config order, following the names they give, until a node confirms it
/// is master) and caches the answer. When the cached master answers
/// `NotMaster` naming another node, the request goes there at once; when it
/// answers `NotMaster` otherwise, `NoLongerMaster` or `E_GOING_DOWN`, or
/// cannot be reached, the cache is dropped and the master is looked up
/// again.
///
/// **Retries** follow one [`RetryPolicy`] (bounded attempts, exponential
/// backoff). A request is retried only when that cannot apply it twice:
/// - any request, when the node answered `NotMaster` or
///   `E_MAX_CONNECTIONS` (it did nothing), or when no connection could be
///   made or no master was found (nothing was sent);
/// - reads and other idempotent requests (`who_master`, `statistics`,
///   `nop`, …) also after a lost connection, a timeout, `NoLongerMaster` or
///   `GoingDown`;
/// - an update (`set`, `delete`, `sequence`, …) whose bytes may have reached
///   a node is **never** resent: it fails with [`Error::OutcomeUnknown`] or
///   [`Error::NoLongerMaster`] ([`Error::is_outcome_unknown`]), and the
///   caller reads back to find out.
///
/// A `Client` is cheap to clone; clones share connections and the cached
/// master. Requests through one client to one node run one at a time (one
/// connection per node, no pipelining): for parallel load, build one client
/// per task with [`ClientBuilder::build`].
///
/// ```no_run
/// # async fn demo() -> Result<(), client::Error> {
/// use client::{Client, Consistency};
/// let loaded = config::load("cfg/arakoon.ini".as_ref())
///     .map_err(|e| client::Error::Config(e.to_string()))?;
/// let client = Client::from_config(&loaded.config)?;
/// client.set(b"greeting", b"hello").await?;
/// assert_eq!(client.get(b"greeting").await?, b"hello");
/// // A read that any node may answer, from its current state:
/// let relaxed = client.with_consistency(Consistency::NoGuarantee);
/// let _maybe_stale = relaxed.exists(b"greeting").await?;
/// // Talk to one node on purpose:
/// let version = client.node("arakoon_1")?.version().await?;
/// println!("{}.{}.{}", version.major, version.minor, version.patch);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    shared: Arc<Shared>,
    options: Options,
}

/// Per-handle settings (a clone may change them without affecting others).
#[derive(Debug, Clone, Copy)]
struct Options {
    consistency: Consistency,
    request_timeout: Duration,
    target: Target,
    retry: RetryPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// The master, discovered.
    Master,
    /// This node (index into `Shared::nodes`), whatever its role.
    Node(usize),
}

#[derive(Debug)]
struct Shared {
    cluster_id: String,
    nodes: Vec<NodeSlot>,
    /// The cached master, an index into `nodes`.
    master: Mutex<Option<usize>>,
    connect_timeout: Duration,
    discovery_timeout: Duration,
    limits: Limits,
    max_request_size: usize,
    /// TLS on every connection, if set.
    tls: Option<Connector>,
}

#[derive(Debug)]
struct NodeSlot {
    name: String,
    addresses: Vec<String>,
    connection: tokio::sync::Mutex<Option<Connection>>,
}

/// What `call` does after a failed attempt: the [`retry::Next`] step, with
/// the error to return if no other attempt is made.
enum Step {
    /// Give up with this error.
    Fail(Error),
    /// Try again after the policy's backoff.
    Retry(Error),
    /// Try again at once: a node named the master, go there.
    Redirect(Error),
}

impl Client {
    /// The client of checked `settings` (see [`ClientBuilder::build`]),
    /// connected to nothing yet.
    pub(crate) fn new(settings: Settings, tls: Option<Connector>) -> Client {
        // Owned by the builder's checks; discovery and `node_index` find a
        // node by its name, so a duplicate would hide one.
        assert!(!settings.nodes.is_empty(), "a client needs a node");
        for (i, (name, addresses)) in settings.nodes.iter().enumerate() {
            assert!(
                settings.nodes[..i].iter().all(|(other, _)| other != name),
                "node {name:?} listed twice"
            );
            assert!(!addresses.is_empty(), "node {name:?} has no address");
        }
        let nodes = settings
            .nodes
            .into_iter()
            .map(|(name, addresses)| NodeSlot {
                name,
                addresses,
                connection: tokio::sync::Mutex::new(None),
            })
            .collect();
        Client {
            shared: Arc::new(Shared {
                cluster_id: settings.cluster_id,
                nodes,
                master: Mutex::new(None),
                connect_timeout: settings.connect_timeout,
                discovery_timeout: settings.discovery_timeout,
                limits: settings.limits,
                max_request_size: settings.max_request_size,
                tls,
            }),
            options: Options {
                consistency: settings.consistency,
                request_timeout: settings.request_timeout,
                target: Target::Master,
                retry: settings.retry,
            },
        }
    }

    /// A client of the cluster in `config`, with the default settings (use
    /// [`ClientBuilder::from_config`] to change them).
    pub fn from_config(config: &config::ClusterConfig) -> Result<Client, Error> {
        ClientBuilder::from_config(config).build()
    }

    /// The cluster id sent in the prologue.
    pub fn cluster_id(&self) -> &str {
        &self.shared.cluster_id
    }

    /// The node names, in config order.
    pub fn node_names(&self) -> impl Iterator<Item = &str> {
        self.shared.nodes.iter().map(|n| n.name.as_str())
    }

    /// The same client, reading with `consistency` (`Consistent`,
    /// `NoGuarantee`, or `AtLeast(i)` from [`Client::get_txid`]).
    pub fn with_consistency(&self, consistency: Consistency) -> Client {
        let mut client = self.clone();
        client.options.consistency = consistency;
        client
    }

    /// The same client, with another retry policy (e.g. one attempt, for
    /// a tool that asks every node and reports the ones that do not
    /// answer).
    pub fn with_retry_policy(&self, retry: RetryPolicy) -> Client {
        let mut client = self.clone();
        client.options.retry = retry;
        client
    }

    /// The same client, with another per-request timeout.
    pub fn with_request_timeout(&self, timeout: Duration) -> Client {
        let mut client = self.clone();
        client.options.request_timeout = timeout;
        client
    }

    /// The same client, sending every request to the node called `name`,
    /// whatever its role: no discovery, and `NotMaster` is returned, not
    /// followed. For `NoGuarantee` or `AtLeast` reads on a slave, and for a
    /// node's own `version`, `current_state`, `statistics`.
    pub fn node(&self, name: &str) -> Result<Client, Error> {
        let index = self.node_index(name).ok_or_else(|| Error::UnknownNode {
            name: name.to_string(),
            known: self.node_names().map(str::to_string).collect(),
        })?;
        let mut client = self.clone();
        client.options.target = Target::Node(index);
        Ok(client)
    }

    /// The read consistency of this handle.
    pub fn consistency(&self) -> Consistency {
        self.options.consistency
    }

    /// The master's name: the cached one, or found by asking the nodes (a
    /// node that names itself master is the master; a node naming another
    /// node sends the search there).
    pub async fn master(&self) -> Result<String, Error> {
        let index = match self.cached_master() {
            Some(index) => index,
            None => self.discover().await?,
        };
        Ok(self.shared.nodes[index].name.clone())
    }

    fn node_index(&self, name: &str) -> Option<usize> {
        self.shared.nodes.iter().position(|n| n.name == name)
    }

    fn lock_master(&self) -> MutexGuard<'_, Option<usize>> {
        // The guarded value is a plain index: a panic elsewhere cannot leave
        // it half-written, so a poisoned lock is still good.
        self.shared
            .master
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn cached_master(&self) -> Option<usize> {
        *self.lock_master()
    }

    fn set_master(&self, master: Option<usize>) {
        *self.lock_master() = master;
    }

    /// Forgets the master if it is `index`.
    fn forget_master(&self, index: usize) {
        let mut master = self.lock_master();
        if *master == Some(index) {
            *master = None;
        }
    }

    /// Asks the nodes who the master is; caches and returns it. A node's
    /// claim counts only when the named node confirms it is master. When
    /// every node that could be reached closed the connection right after
    /// the prologue, without an answer (what Arakoon's nodes do on a wrong
    /// cluster id), that is `Error::WrongCluster` naming the cluster id sent.
    async fn discover(&self) -> Result<usize, Error> {
        let nodes = &self.shared.nodes;
        let mut asked = vec![false; nodes.len()];
        let mut failures = Vec::new();
        // Nodes that closed at once; nodes that answered or may have.
        let mut closed_at_prologue = Vec::new();
        let mut reached_otherwise = false;
        let mut queue: std::collections::VecDeque<usize> = (0..nodes.len()).collect();
        let who_master = Frame::new(&Request::WhoMaster);
        while let Some(index) = queue.pop_front() {
            if std::mem::replace(&mut asked[index], true) {
                continue;
            }
            let name = &nodes[index].name;
            let answer = self
                .send(index, &who_master, self.shared.discovery_timeout)
                .await;
            if answer.is_ok() {
                reached_otherwise = true;
            }
            let reason = match answer {
                Ok(Response::Ok(Reply::WhoMaster(Some(master)))) => {
                    let master = String::from_utf8_lossy(&master).into_owned();
                    if master == *name {
                        tracing::debug!(cluster_id = %self.shared.cluster_id, master = %name, "master found");
                        self.set_master(Some(index));
                        return Ok(index);
                    }
                    match self.node_index(&master) {
                        Some(named) if !asked[named] => {
                            queue.push_front(named);
                            continue;
                        }
                        Some(_) => format!("names {master} as master, which does not confirm"),
                        None => format!("names {master:?} as master, a node not in the config"),
                    }
                }
                Ok(Response::Ok(Reply::WhoMaster(None))) => "knows no master".to_string(),
                Ok(Response::Ok(_)) => "answered who_master with another reply".to_string(),
                Ok(Response::Error(e)) => match self.refusal(name, Command::WhoMaster, e) {
                    e @ Error::WrongCluster { .. } => return Err(e),
                    e => e.to_string(),
                },
                Err(CallError::NotSent(e)) => e.cause(),
                Err(CallError::MaybeSent(e)) => {
                    if closed_after_prologue(&e) {
                        closed_at_prologue.push(name.clone());
                    } else {
                        reached_otherwise = true;
                    }
                    e.cause()
                }
            };
            tracing::debug!(node = %name, %reason, "no master from node");
            failures.push(NodeFailure {
                node: name.clone(),
                reason,
            });
        }
        if !closed_at_prologue.is_empty() && !reached_otherwise {
            return Err(Error::WrongCluster {
                node: closed_at_prologue.join(", "),
                cluster_id: self.shared.cluster_id.clone(),
                message: format!(
                    "every node reached closed the connection right after the prologue, \
                     without an answer, as Arakoon's nodes do for a cluster id they do not \
                     serve{}",
                    match failures.len() - closed_at_prologue.len() {
                        0 => String::new(),
                        n => format!(" ({n} other node(s) could not be reached)"),
                    }
                ),
            });
        }
        Err(Error::NoMaster {
            cluster_id: self.shared.cluster_id.clone(),
            failures,
        })
    }

    /// Sends one request to node `index` on its connection (opened or
    /// reopened as needed); a connection that failed is dropped.
    async fn send(
        &self,
        index: usize,
        frame: &Frame,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let slot = &self.shared.nodes[index];
        let mut guard = slot.connection.lock().await;
        let connection = match guard.take().and_then(Connection::if_reusable) {
            Some(connection) => guard.insert(connection),
            // No connection yet, or one that cannot carry a request (dropped
            // here, which closes it).
            _ => {
                let opened = Connection::open(
                    &slot.name,
                    &slot.addresses,
                    &self.shared.cluster_id,
                    self.shared.connect_timeout,
                    self.shared.limits,
                    self.shared.tls.as_ref().map(|c| &c.0),
                )
                .await
                .map_err(CallError::NotSent)?;
                guard.insert(opened)
            }
        };
        let result = connection.call(frame, timeout).await;
        match &result {
            // The node closes the connection after these (as Arakoon's do).
            Ok(Response::Error(e)) if e.result_code().closes_connection() => *guard = None,
            Ok(_) => {}
            Err(_) => *guard = None,
        }
        result
    }

    /// `collapse_tlogs` on the handle's node (or the master): see
    /// [`Client::collapse_tlogs`](crate::Client::collapse_tlogs). Not
    /// retried (the node may have begun).
    pub(crate) async fn collapse(
        &self,
        tlogs_to_keep: i32,
        on_removed: &mut dyn FnMut(u32, u32, i64),
    ) -> Result<u32, Error> {
        let command = Command::CollapseTlogs;
        let index = self.target_index().await?;
        let frame = Frame::new(&Request::CollapseTlogs { tlogs_to_keep });
        let slot = &self.shared.nodes[index];
        let mut guard = self.open_connection(index).await?;
        let Some(connection) = guard.as_mut() else {
            unreachable!("open_connection leaves a connection");
        };
        let result = connection
            .collapse(&frame, self.options.request_timeout, on_removed)
            .await;
        match result {
            Ok(Ok(count)) => Ok(count),
            Ok(Err(response)) => {
                if response.result_code().closes_connection() {
                    *guard = None;
                }
                Err(self.refusal(&slot.name, command, response))
            }
            Err(CallError::NotSent(e)) | Err(CallError::MaybeSent(e)) => {
                *guard = None;
                Err(e)
            }
        }
    }

    /// The node a streamed admin request goes to: the handle's node, or
    /// the master (the cached one, or found).
    async fn target_index(&self) -> Result<usize, Error> {
        match self.options.target {
            Target::Node(index) => Ok(index),
            Target::Master => match self.cached_master() {
                Some(index) => Ok(index),
                None => self.discover().await,
            },
        }
    }

    /// The connection to node `index`, opened if there is none usable.
    async fn open_connection(
        &self,
        index: usize,
    ) -> Result<tokio::sync::MutexGuard<'_, Option<Connection>>, Error> {
        let slot = &self.shared.nodes[index];
        let mut guard = slot.connection.lock().await;
        match guard.take().and_then(Connection::if_reusable) {
            Some(connection) => {
                *guard = Some(connection);
            }
            _ => {
                *guard = Some(
                    Connection::open(
                        &slot.name,
                        &slot.addresses,
                        &self.shared.cluster_id,
                        self.shared.connect_timeout,
                        self.shared.limits,
                        self.shared.tls.as_ref().map(|c| &c.0),
                    )
                    .await?,
                );
            }
        }
        Ok(guard)
    }

    /// `get_db` on the handle's node: see
    /// [`Client::get_db`](crate::Client::get_db). Not retried.
    pub(crate) async fn download_db(
        &self,
        out: &mut (dyn std::io::Write + Send),
        on_progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<u64, Error> {
        let command = Command::GetDb;
        let index = self.target_index().await?;
        let frame = Frame::new(&Request::GetDb);
        let slot = &self.shared.nodes[index];
        let mut guard = self.open_connection(index).await?;
        let Some(connection) = guard.as_mut() else {
            unreachable!("open_connection leaves a connection");
        };
        let result = connection
            .get_db(&frame, self.options.request_timeout, out, on_progress)
            .await;
        match result {
            Ok(Ok(length)) => Ok(length),
            Ok(Err(response)) => {
                if response.result_code().closes_connection() {
                    *guard = None;
                }
                Err(self.refusal(&slot.name, command, response))
            }
            Err(CallError::NotSent(e)) | Err(CallError::MaybeSent(e)) => {
                *guard = None;
                Err(e)
            }
        }
    }

    /// Sends `request` where this handle sends requests, retrying as the
    /// type docs say. Returns the answering node's index and the reply.
    pub(crate) async fn call(&self, request: Request) -> Result<(usize, Reply), Error> {
        let command = request.command();
        let frame = Frame::new(&request);
        drop(request);
        if frame.bytes.len() > self.shared.max_request_size {
            return Err(Error::RequestTooLarge {
                command: command.name(),
                bytes: frame.bytes.len(),
                limit: self.shared.max_request_size,
            });
        }
        let mut failed_attempts = 0u32;
        loop {
            let step = match self.attempt(&frame).await {
                Ok(answer) => return Ok(answer),
                Err(step) => step,
            };
            failed_attempts += 1;
            let (error, wait) = match step {
                Step::Fail(error) => return Err(error),
                Step::Retry(error) => (error, true),
                Step::Redirect(error) => (error, false),
            };
            if !self.options.retry.allows_another(failed_attempts) {
                tracing::debug!(command = command.name(), failed_attempts, %error, "giving up");
                return Err(error);
            }
            let backoff = if wait {
                self.options.retry.backoff(failed_attempts)
            } else {
                Duration::ZERO
            };
            tracing::debug!(command = command.name(), failed_attempts, %error, ?backoff, "retrying");
            if !backoff.is_zero() {
                tokio::time::sleep(backoff).await;
            }
        }
    }

    /// One attempt; after a failure, the step that [`retry::after_failure`]
    /// decides, with the cached master updated as it says.
    async fn attempt(&self, frame: &Frame) -> Result<(usize, Reply), Step> {
        let command = frame.command;
        let (happened, error) = match self.attempt_once(frame).await {
            Ok(answer) => return Ok(answer),
            Err(failure) => failure,
        };
        let decision = retry::after_failure(Failure {
            happened,
            idempotent: is_idempotent(command),
            to_master: self.options.target == Target::Master,
        });
        match decision.master {
            MasterCache::Keep => {}
            MasterCache::Set { master } => self.set_master(Some(master)),
            MasterCache::Forget { asked } => self.forget_master(asked),
        }
        Err(match decision.next {
            Next::Retry => Step::Retry(error),
            Next::Redirect { master } => {
                tracing::debug!(command = command.name(), master = self.node_name(master), %error, "redirected");
                Step::Redirect(error)
            }
            Next::Fail => Step::Fail(error),
            Next::FailOutcomeUnknown { asked } => {
                Step::Fail(outcome_unknown(self.node_name(asked), command, error))
            }
        })
    }

    /// Sends `frame` to the master (found first if none is cached) or to
    /// the handle's node. On failure: what happened, and the error.
    async fn attempt_once(&self, frame: &Frame) -> Result<(usize, Reply), (Happened, Error)> {
        let command = frame.command;
        let asked = match self.options.target {
            Target::Node(index) => index,
            Target::Master => match self.cached_master() {
                Some(index) => index,
                None => match self.discover().await {
                    Ok(index) => index,
                    Err(e @ Error::NoMaster { .. }) => return Err((Happened::NoMasterFound, e)),
                    Err(e) => return Err((Happened::DiscoveryFailed, e)),
                },
            },
        };
        let node = self.node_name(asked);
        let (answer, error) = match self.send(asked, frame, self.options.request_timeout).await {
            Ok(Response::Ok(reply)) if reply.command() == command => return Ok((asked, reply)),
            Ok(Response::Ok(_)) => (
                Answer::WrongReply,
                Error::Protocol {
                    node: node.to_string(),
                    command: command.name(),
                    source: protocol::ProtocolError::UnexpectedResponse {
                        reason: "the reply is for another command",
                    },
                },
            ),
            Ok(Response::Error(response)) => {
                let error = self.refusal(node, command, response);
                (Answer::Refused(self.refusal_kind(&error)), error)
            }
            Err(CallError::NotSent(error)) => (Answer::NotSent, error),
            Err(CallError::MaybeSent(error)) => (Answer::MaybeSent, error),
        };
        Err((Happened::Asked { asked, answer }, error))
    }

    /// The error for a node's failure answer.
    fn refusal(&self, node: &str, command: Command, response: protocol::ErrorResponse) -> Error {
        if response.result_code() == protocol::ResultCode::WrongCluster {
            return Error::WrongCluster {
                node: node.to_string(),
                cluster_id: self.shared.cluster_id.clone(),
                message: response.message_lossy().into_owned(),
            };
        }
        Error::from_response(node, command.name(), response)
    }

    /// What the retry decision needs to know of a refusal `error`.
    fn refusal_kind(&self, error: &Error) -> Refusal {
        match error {
            Error::NotMaster { master, .. } => Refusal::NotMaster {
                hint: master.as_deref().and_then(|name| self.node_index(name)),
            },
            Error::NoLongerMaster { .. } => Refusal::NoLongerMaster,
            Error::Server {
                code: protocol::ResultCode::MaxConnections,
                ..
            } => Refusal::MaxConnections,
            Error::Server {
                code: protocol::ResultCode::GoingDown,
                ..
            } => Refusal::GoingDown,
            _ => Refusal::Other,
        }
    }

    /// The read consistency to send.
    pub(crate) fn read_consistency(&self) -> Consistency {
        self.options.consistency
    }

    /// The name of node `index`.
    pub(crate) fn node_name(&self, index: usize) -> &str {
        &self.shared.nodes[index].name
    }
}

/// The error of a request that `node` may have applied, from the
/// attempt's `error`: a connection that failed or timed out, or a node going
/// down while handling it.
fn outcome_unknown(node: &str, command: Command, error: Error) -> Error {
    match error {
        Error::Server {
            code: protocol::ResultCode::GoingDown,
            node,
            command,
            message,
        } => Error::OutcomeUnknown {
            node,
            command,
            reason: format!("the node is going down ({message})"),
        },
        other => Error::OutcomeUnknown {
            node: node.to_string(),
            command: command.name(),
            reason: other.cause(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_node_names_the_known_ones() {
        let client = ClientBuilder::new("c")
            .node("a", "127.0.0.1:1")
            .build()
            .map_err(|e| e.to_string());
        let Ok(client) = client else {
            panic!("{client:?}");
        };
        let e = client.node("b").err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("unknown node \"b\" (known: a)"));
    }
}
