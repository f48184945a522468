//! A scripted fake Arakoon node, for tests (feature `test-util`): it
//! listens on `127.0.0.1:0`, decodes requests with the protocol crate, and
//! answers like a simple one-node store, unless a test scripted another
//! answer for the next request of a command.
//!
//! Default behaviour: `who_master` answers the master set with
//! [`FakeNode::set_master`]; a node that is not master refuses updates and
//! `Consistent` reads with `NotMaster` (naming the master); other reads
//! are served from an in-memory map. A prologue with another cluster id
//! closes the connection without a reply, as Arakoon's nodes do.
//!
//! Dropping the `FakeNode` stops it and closes every connection.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use client::fake_node::{Action, FakeNode};
//! use client::ClientBuilder;
//! use protocol::{Command, ErrorResponse, ResultCode};
//! let node = FakeNode::start("n0", "test").await?;
//! node.set_master(Some("n0"));
//! node.insert(b"k", b"v");
//! // The next get is refused as if mastership were lost.
//! node.script(Command::Get, Action::error(ResultCode::GoingDown, "bye"));
//! let client = ClientBuilder::new("test").node("n0", node.address()).build()?;
//! assert_eq!(client.get(b"k").await?, b"v"); // retried: a get is idempotent
//! assert_eq!(node.count(Command::Get), 2);
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use protocol::{
    Command, Consistency, Decoded, ErrorResponse, Incoming, Limits, NamedField, NamedValue, Reply,
    Request, Response, ResultCode, Update,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// How to answer one request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answer this.
    Respond(Response),
    /// Close the connection without answering (after reading the request).
    Close,
    /// Never answer (the connection stays open).
    Hang,
    /// Answer this, then close the connection.
    RespondThenClose(Response),
}

impl Action {
    /// A failure answer.
    pub fn error(code: ResultCode, message: &str) -> Action {
        Action::Respond(Response::Error(ErrorResponse::new(
            code,
            message.as_bytes(),
        )))
    }
}

#[derive(Debug, Default)]
struct State {
    master: Option<String>,
    store: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Updates applied, the txid `get_txid` answers.
    applied: i64,
    scripted: HashMap<Command, VecDeque<Action>>,
    received: Vec<Request>,
    connections: usize,
}

/// A fake node; see the module docs.
#[derive(Debug)]
pub struct FakeNode {
    name: String,
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    /// How many connections this node has closed (their sockets dropped).
    closed: tokio::sync::watch::Sender<usize>,
    accept: tokio::task::JoinHandle<()>,
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        // Dropping the accept task drops its JoinSet: every connection task
        // is aborted and its socket closed.
        self.accept.abort();
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FakeNode {
    /// Starts a node called `name` of cluster `cluster_id` on a free port
    /// of 127.0.0.1. It knows no master until told.
    pub async fn start(name: &str, cluster_id: &str) -> std::io::Result<FakeNode> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let (closed, _) = tokio::sync::watch::channel(0);
        let accept = tokio::spawn(accept_loop(
            listener,
            name.to_string(),
            cluster_id.to_string(),
            state.clone(),
            closed.clone(),
        ));
        Ok(FakeNode {
            name: name.to_string(),
            address,
            state,
            closed,
            accept,
        })
    }

    /// `127.0.0.1:port`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    pub fn port(&self) -> u16 {
        self.address.port()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which node this one names as master (itself: it acts as master).
    pub fn set_master(&self, master: Option<&str>) {
        lock(&self.state).master = master.map(str::to_string);
    }

    /// Stores a value, as if set earlier.
    pub fn insert(&self, key: &[u8], value: &[u8]) {
        lock(&self.state).store.insert(key.to_vec(), value.to_vec());
    }

    /// The value stored for `key`.
    pub fn value(&self, key: &[u8]) -> Option<Vec<u8>> {
        lock(&self.state).store.get(key).cloned()
    }

    /// The next request of `command` not yet scripted gets `action` instead
    /// of the default answer (actions queue up in order).
    pub fn script(&self, command: Command, action: Action) {
        lock(&self.state)
            .scripted
            .entry(command)
            .or_default()
            .push_back(action);
    }

    /// Every request received, in order.
    pub fn received(&self) -> Vec<Request> {
        lock(&self.state).received.clone()
    }

    /// How many requests of `command` were received.
    pub fn count(&self, command: Command) -> usize {
        lock(&self.state)
            .received
            .iter()
            .filter(|r| r.command() == command)
            .count()
    }

    /// Waits until this node has closed at least `count` connections (its
    /// end dropped); `false` if that did not happen within `deadline`.
    pub async fn wait_closed(&self, count: usize, deadline: std::time::Duration) -> bool {
        let mut closed = self.closed.subscribe();
        let reached = tokio::time::timeout(deadline, closed.wait_for(|n| *n >= count)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// How many connections were accepted.
    pub fn connections(&self) -> usize {
        lock(&self.state).connections
    }
}

async fn accept_loop(
    listener: TcpListener,
    name: String,
    cluster_id: String,
    state: Arc<Mutex<State>>,
    closed: tokio::sync::watch::Sender<usize>,
) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        lock(&state).connections += 1;
        let serving = serve(stream, name.clone(), cluster_id.clone(), state.clone());
        let closed = closed.clone();
        connections.spawn(async move {
            // `serve` owns the socket: it is closed when `serve` returns.
            serving.await;
            closed.send_modify(|n| *n += 1);
        });
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
}

/// Serves one connection until the client closes it or a script says so.
async fn serve(mut stream: TcpStream, name: String, cluster_id: String, state: Arc<Mutex<State>>) {
    let limits = Limits::default();
    let mut buffer = Vec::new();
    // The prologue.
    let prologue = loop {
        match protocol::decode_prologue(&buffer, &limits) {
            Ok(Decoded::Complete { value, consumed }) => {
                buffer.drain(..consumed);
                break value;
            }
            Ok(Decoded::Incomplete { .. }) => {
                if !read_more(&mut stream, &mut buffer).await {
                    return;
                }
            }
            Err(e) => {
                let _ = write(&mut stream, &Response::Error(e.to_error_response())).await;
                return;
            }
        }
    };
    if prologue.cluster_id != cluster_id.as_bytes() {
        // As Arakoon's nodes: closed without a reply.
        return;
    }
    loop {
        let incoming = match protocol::decode_request(&buffer, &limits) {
            Ok(Decoded::Complete { value, consumed }) => {
                buffer.drain(..consumed);
                value
            }
            Ok(Decoded::Incomplete { .. }) => {
                if !read_more(&mut stream, &mut buffer).await {
                    return;
                }
                continue;
            }
            Err(e) => {
                let _ = write(&mut stream, &Response::Error(e.to_error_response())).await;
                return;
            }
        };
        let request = match incoming {
            Incoming::Request(request) => request,
            Incoming::Rejected { error, .. } => {
                if write(&mut stream, &Response::Error(error.to_error_response()))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            Incoming::Unsupported(unsupported) => {
                let answer = Response::Error(unsupported.error_response());
                if write(&mut stream, &answer).await.is_err() || !unsupported.stream_in_sync {
                    return;
                }
                continue;
            }
        };
        let action = {
            let mut state = lock(&state);
            state.received.push(request.clone());
            let scripted = state
                .scripted
                .get_mut(&request.command())
                .and_then(VecDeque::pop_front);
            match scripted {
                Some(action) => action,
                None => Action::Respond(answer(&name, &mut state, request)),
            }
        };
        match action {
            Action::Respond(response) => {
                if write(&mut stream, &response).await.is_err() {
                    return;
                }
            }
            Action::RespondThenClose(response) => {
                let _ = write(&mut stream, &response).await;
                return;
            }
            Action::Close => return,
            Action::Hang => std::future::pending::<()>().await,
        }
    }
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> bool {
    buffer.reserve(4096);
    matches!(stream.read_buf(buffer).await, Ok(n) if n > 0)
}

async fn write(stream: &mut TcpStream, response: &Response) -> std::io::Result<()> {
    let mut out = Vec::new();
    protocol::encode_response(response, &mut out);
    stream.write_all(&out).await
}

fn refuse(code: ResultCode, message: &[u8]) -> Response {
    Response::Error(ErrorResponse::new(code, message.to_vec()))
}

/// The default answer of node `name` to `request`.
fn answer(name: &str, state: &mut State, request: Request) -> Response {
    let is_master = state.master.as_deref() == Some(name);
    let not_master = || {
        let hint = state.master.clone().unwrap_or_default();
        refuse(ResultCode::NotMaster, hint.as_bytes())
    };
    let command = request.command();
    let needs_master = match &request {
        Request::Exists { consistency, .. }
        | Request::Get { consistency, .. }
        | Request::Range { consistency, .. }
        | Request::PrefixKeys { consistency, .. }
        | Request::RangeEntries { consistency, .. }
        | Request::RevRangeEntries { consistency, .. }
        | Request::MultiGet { consistency, .. }
        | Request::MultiGetOption { consistency, .. }
        | Request::Assert { consistency, .. }
        | Request::AssertExists { consistency, .. } => *consistency == Consistency::Consistent,
        Request::Set { .. }
        | Request::Delete { .. }
        | Request::TestAndSet { .. }
        | Request::Sequence { .. }
        | Request::SyncedSequence { .. }
        | Request::DeletePrefix { .. }
        | Request::Replace { .. }
        | Request::Confirm { .. }
        | Request::Nop
        | Request::GetTxid => true,
        _ => false,
    };
    if needs_master && !is_master {
        return not_master();
    }
    let store = &mut state.store;
    let reply = match request {
        Request::Ping { .. } => Reply::Ping(format!("fake node {name}").into_bytes()),
        Request::WhoMaster => Reply::WhoMaster(state.master.clone().map(String::into_bytes)),
        Request::Exists { key, .. } => Reply::Exists(store.contains_key(&key)),
        Request::Get { key, .. } => match store.get(&key) {
            Some(value) => Reply::Get(value.clone()),
            None => return refuse(ResultCode::NotFound, &key),
        },
        Request::MultiGet { keys, .. } => {
            let mut values = Vec::new();
            for key in keys {
                match store.get(&key) {
                    Some(value) => values.push(value.clone()),
                    None => return refuse(ResultCode::NotFound, &key),
                }
            }
            Reply::MultiGet(values)
        }
        Request::MultiGetOption { keys, .. } => {
            Reply::MultiGetOption(keys.iter().map(|k| store.get(k).cloned()).collect())
        }
        Request::Range { range, .. } => Reply::Range(
            entries_in(store, &range, false)
                .into_iter()
                .map(|(k, _)| k)
                .collect(),
        ),
        Request::RangeEntries { range, .. } => {
            Reply::RangeEntries(entries_in(store, &range, false))
        }
        Request::RevRangeEntries { range, .. } => {
            Reply::RevRangeEntries(entries_in(store, &range, true))
        }
        Request::PrefixKeys { prefix, max, .. } => {
            let limit = usize::try_from(max).unwrap_or(usize::MAX);
            Reply::PrefixKeys(
                store
                    .keys()
                    .filter(|k| k.starts_with(&prefix))
                    .take(limit)
                    .cloned()
                    .collect(),
            )
        }
        Request::Assert { key, value, .. } => {
            if store.get(&key) == value.as_ref() {
                Reply::Assert
            } else {
                return refuse(ResultCode::AssertionFailed, &key);
            }
        }
        Request::AssertExists { key, .. } => {
            if store.contains_key(&key) {
                Reply::AssertExists
            } else {
                return refuse(ResultCode::AssertionFailed, &key);
            }
        }
        Request::ExpectProgressPossible => Reply::ExpectProgressPossible(is_master),
        Request::Statistics => Reply::Statistics(NamedField::new(
            "arakoon_stats",
            NamedValue::List(vec![
                NamedField::new("node_name", NamedValue::String(name.to_string())),
                NamedField::new("applied", NamedValue::Int64(state.applied)),
            ]),
        )),
        Request::GetKeyCount => Reply::GetKeyCount(i64::try_from(store.len()).unwrap_or(i64::MAX)),
        Request::Version => Reply::Version {
            major: 0,
            minor: 1,
            patch: 0,
            info: format!("fake node {name}").into_bytes(),
        },
        Request::CurrentState => Reply::CurrentState(
            format!("{name}: {}", if is_master { "master" } else { "slave" }).into_bytes(),
        ),
        Request::DropMaster => {
            if is_master {
                state.master = None;
            }
            Reply::DropMaster
        }
        Request::GetTxid => Reply::GetTxid(Consistency::AtLeast(state.applied)),
        Request::UserFunction { name, .. } => {
            // Arakoon's answer for a name it does not know (none is known).
            let message = format!(
                "User function \"{}\" could not be found",
                name.escape_ascii()
            );
            return refuse(ResultCode::BadInput, message.as_bytes());
        }
        Request::Nop => {
            state.applied += 1;
            Reply::Nop
        }
        update_request => {
            let update = match update_request.into_update() {
                Ok(update) => update,
                Err(_) => {
                    let message = format!("{} is not supported by the fake node", command.name());
                    return refuse(ResultCode::NotSupported, message.as_bytes());
                }
            };
            let mut scratch = store.clone();
            match apply(&mut scratch, update) {
                Ok(outcome) => {
                    *store = scratch;
                    state.applied += 1;
                    match command {
                        Command::Set => Reply::Set,
                        Command::Confirm => Reply::Confirm,
                        Command::Delete => Reply::Delete,
                        Command::TestAndSet => Reply::TestAndSet(outcome.before),
                        Command::Replace => Reply::Replace(outcome.before),
                        Command::DeletePrefix => {
                            Reply::DeletePrefix(i32::try_from(outcome.deleted).unwrap_or(i32::MAX))
                        }
                        Command::SyncedSequence => Reply::SyncedSequence,
                        _ => Reply::Sequence,
                    }
                }
                Err(refusal) => return refusal,
            }
        }
    };
    Response::Ok(reply)
}

fn entries_in(
    store: &BTreeMap<Vec<u8>, Vec<u8>>,
    range: &protocol::KeyRange,
    reverse: bool,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    // For a reverse range, `first` is the high end.
    let (low, low_inclusive, high, high_inclusive) = if reverse {
        (
            &range.last,
            range.last_inclusive,
            &range.first,
            range.first_inclusive,
        )
    } else {
        (
            &range.first,
            range.first_inclusive,
            &range.last,
            range.last_inclusive,
        )
    };
    let in_range = |key: &Vec<u8>| {
        let above = match low {
            Some(low) => key > low || (low_inclusive && key == low),
            None => true,
        };
        let below = match high {
            Some(high) => key < high || (high_inclusive && key == high),
            None => true,
        };
        above && below
    };
    let limit = range.max_results().unwrap_or(usize::MAX);
    let matching = store.iter().filter(|(k, _)| in_range(k));
    let pick = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
    if reverse {
        matching.rev().take(limit).map(pick).collect()
    } else {
        matching.take(limit).map(pick).collect()
    }
}

#[derive(Default)]
struct Outcome {
    before: Option<Vec<u8>>,
    deleted: usize,
}

/// Applies `update` to `store`; on failure the caller drops `store`.
fn apply(store: &mut BTreeMap<Vec<u8>, Vec<u8>>, update: Update) -> Result<Outcome, Response> {
    let mut outcome = Outcome::default();
    match update {
        Update::Set { key, value } => {
            store.insert(key, value);
        }
        Update::Delete { key } => {
            if store.remove(&key).is_none() {
                return Err(refuse(ResultCode::NotFound, &key));
            }
        }
        Update::TestAndSet {
            key,
            expected,
            wanted,
        } => {
            outcome.before = store.get(&key).cloned();
            if outcome.before == expected {
                match wanted {
                    Some(value) => store.insert(key, value),
                    None => store.remove(&key),
                };
            }
        }
        Update::Replace { key, wanted } => {
            outcome.before = match wanted {
                Some(value) => store.insert(key, value),
                None => store.remove(&key),
            };
        }
        Update::DeletePrefix { prefix } => {
            let doomed: Vec<_> = store
                .keys()
                .filter(|k| k.starts_with(&prefix))
                .cloned()
                .collect();
            outcome.deleted = doomed.len();
            for key in doomed {
                store.remove(&key);
            }
        }
        Update::Assert { key, value } => {
            if store.get(&key) != value.as_ref() {
                return Err(refuse(ResultCode::AssertionFailed, &key));
            }
        }
        Update::AssertExists { key } => {
            if !store.contains_key(&key) {
                return Err(refuse(ResultCode::AssertionFailed, &key));
            }
        }
        Update::Sequence(updates) | Update::SyncedSequence(updates) => {
            for update in updates {
                apply(store, update)?;
            }
        }
        Update::Nop => {}
        Update::UserFunction { name, .. } => {
            // No user function is registered: Arakoon's answer inside a
            // sequence.
            let message = format!(
                "user function \"{}\" could not be found",
                name.escape_ascii()
            );
            return Err(refuse(ResultCode::NotFound, message.as_bytes()));
        }
        Update::AssertRange {
            prefix,
            assertion: protocol::RangeAssertion::ContainsExactly(mut keys),
        } => {
            keys.sort();
            let found: Vec<&Vec<u8>> = store.keys().filter(|k| k.starts_with(&prefix)).collect();
            if !found.iter().copied().eq(keys.iter()) {
                return Err(refuse(ResultCode::AssertionFailed, &prefix));
            }
        }
    }
    Ok(outcome)
}
