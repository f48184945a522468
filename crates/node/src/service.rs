//! The client service on `client_port`: Arakoon's client protocol.
//!
//! - At most [`MAX_CLIENT_CONNECTIONS`] connections; one more is answered
//!   `E_MAX_CONNECTIONS` and closed.
//! - The prologue comes first: a wrong magic or version is answered
//!   `E_NO_MAGIC`, a wrong cluster id `E_WRONG_CLUSTER`, and the connection
//!   is closed (the reason is logged).
//! - Requests of one connection are served one at a time, in order (so at
//!   most one is queued per connection, within Arakoon's
//!   `client_buffer_capacity`; the rest wait in the socket); every
//!   connection is its own task, so a slow or dead client only holds its
//!   own task (writes have a timeout, [`WRITE_TIMEOUT`]).
//! - Updates go to the driver's bounded queue and wait for their own
//!   result. Reads never go through the driver: `NoGuarantee` and
//!   `AtLeast(i)` read the store at once (`E_INCONSISTENT_READ` when it has
//!   not applied `i`); `Consistent` reads check the lease the driver
//!   publishes, wait until the store has applied the lease's read index,
//!   then read. Store reads run on blocking threads.
//! - A request the decoder cannot read is answered with its error
//!   (`E_BAD_INPUT`, `E_NO_MAGIC`) and the connection closed; a request
//!   read whole but unusable is answered and the connection goes on.

use crate::clock::Clock;
use crate::messaging::{stopped, stopped_as};
use crate::settings::{Settings, MAX_CLIENT_CONNECTIONS};
use crate::state::{DriverRequest, Published, Refused, SharedStore, UpdateAnswer};
use crate::stats::Stats;
use crate::StopMode;
use consensus::Role;
use protocol::{
    Consistency, Decoded, ErrorResponse, Incoming, ProtocolError, Reply, Request, RequestDecoder,
    Response, ResultCode, Update,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{ReadView, StoreError, UpdateFailure, UpdateOk};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

/// Longest wait for a new connection's prologue.
pub const PROLOGUE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for one response to be written.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes read from a socket at once.
const READ_CHUNK_BYTES: usize = 64 << 10;

/// Everything a connection task needs; cheap to clone.
#[derive(Clone)]
pub struct Service {
    pub settings: Arc<Settings>,
    pub clock: Clock,
    pub store: Arc<SharedStore>,
    pub published: watch::Receiver<Published>,
    pub requests: mpsc::Sender<DriverRequest>,
    pub stats: Arc<Stats>,
    pub stop: watch::Receiver<StopMode>,
}

/// Starts the accept loop; its task (which holds the listener) ends when
/// the node stops.
pub fn start(service: Service, listener: TcpListener) -> tokio::task::JoinHandle<()> {
    let mut stop = service.stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = accept_loop(service, listener) => {}
            _ = stopped(&mut stop) => {}
        }
    })
}

async fn accept_loop(service: Service, listener: TcpListener) {
    let connections = Arc::new(Semaphore::new(MAX_CLIENT_CONNECTIONS));
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("client accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        match Arc::clone(&connections).try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(async move {
                    // A crash cuts the connection at once; a graceful stop
                    // lets the request in hand be answered (E_GOING_DOWN).
                    let mut stop = service.stop.clone();
                    tokio::select! {
                        r = service.serve(stream) => {
                            if let Err(e) = r {
                                tracing::info!(%addr, "client connection closed: {e}");
                            }
                        }
                        _ = stopped_as(&mut stop, |m| m == StopMode::Crash) => {}
                    }
                    drop(permit);
                });
            }
            Err(_) => {
                tracing::warn!(%addr, limit = MAX_CLIENT_CONNECTIONS, "connection refused: too many client connections");
                tokio::spawn(async move {
                    let mut stream = stream;
                    let e = ErrorResponse::new(
                        ResultCode::MaxConnections,
                        format!("too many connections (at most {MAX_CLIENT_CONNECTIONS})"),
                    );
                    let _ = write_response(&mut stream, &Response::Error(e)).await;
                });
            }
        }
    }
}

async fn write_response(stream: &mut TcpStream, response: &Response) -> Result<(), String> {
    let mut out = Vec::new();
    protocol::encode_response(response, &mut out);
    tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(&out))
        .await
        .map_err(|_| format!("client did not take the answer within {WRITE_TIMEOUT:?}"))?
        .map_err(|e| format!("write: {e}"))
}

/// Reads from `stream` into `buf` until `decode` finds a whole frame.
/// `Ok(None)`: the client closed the connection between frames.
async fn read_frame<T>(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    mut decode: impl FnMut(&[u8]) -> Result<Decoded<T>, ProtocolError>,
) -> Result<Option<T>, FrameError> {
    loop {
        if !buf.is_empty() {
            match decode(buf).map_err(FrameError::Protocol)? {
                Decoded::Complete { value, consumed } => {
                    buf.drain(..consumed);
                    return Ok(Some(value));
                }
                Decoded::Incomplete { needed } => {
                    buf.reserve((needed - buf.len()).min(READ_CHUNK_BYTES));
                }
            }
        }
        if buf.capacity() == buf.len() {
            buf.reserve(READ_CHUNK_BYTES);
        }
        let n = stream.read_buf(buf).await.map_err(FrameError::Io)?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(FrameError::Truncated(buf.len()))
            };
        }
    }
}

enum FrameError {
    Protocol(ProtocolError),
    Io(std::io::Error),
    Truncated(usize),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Protocol(e) => write!(f, "{e}"),
            FrameError::Io(e) => write!(f, "read: {e}"),
            FrameError::Truncated(n) => {
                write!(
                    f,
                    "the client closed the connection inside a frame ({n} bytes)"
                )
            }
        }
    }
}

fn error(rc: ResultCode, message: impl Into<Vec<u8>>) -> ErrorResponse {
    ErrorResponse::new(rc, message)
}

fn internal(what: &str, e: impl std::fmt::Display) -> ErrorResponse {
    tracing::error!("{what}: {e}");
    error(
        ResultCode::UnknownFailure,
        format!("{what} failed on the node (see its log)"),
    )
}

fn store_error(e: StoreError) -> ErrorResponse {
    match e {
        StoreError::KeyNotFound { key } => error(ResultCode::NotFound, key),
        e => internal("store read", e),
    }
}

fn failure_response(f: UpdateFailure) -> ErrorResponse {
    match f {
        UpdateFailure::NotFound { key } => error(ResultCode::NotFound, key),
        UpdateFailure::AssertionFailed { key } => error(ResultCode::AssertionFailed, key),
        f @ UpdateFailure::UserFunctionNotSupported { .. } => {
            error(ResultCode::NotSupported, f.to_string())
        }
    }
}

/// The largest value an update carries, for `max_value_size`.
fn largest_value(update: &Update) -> usize {
    match update {
        Update::Set { value, .. } => value.len(),
        Update::TestAndSet { wanted, .. } | Update::Replace { wanted, .. } => {
            wanted.as_ref().map_or(0, Vec::len)
        }
        Update::Sequence(inner) | Update::SyncedSequence(inner) => {
            inner.iter().map(largest_value).max().unwrap_or(0)
        }
        _ => 0,
    }
}

impl Service {
    fn name(&self) -> &str {
        &self.settings.node().name
    }

    fn master_name(&self, p: &Published) -> Option<String> {
        if p.role == Role::Master {
            return Some(self.name().to_string());
        }
        p.master.map(|m| self.settings.name_of(m).to_string())
    }

    fn not_master(&self, p: &Published) -> ErrorResponse {
        error(
            ResultCode::NotMaster,
            self.master_name(p).unwrap_or_default(),
        )
    }

    fn going_down() -> ErrorResponse {
        error(ResultCode::GoingDown, "the node is going down")
    }

    async fn serve(self, mut stream: TcpStream) -> Result<(), String> {
        let mut buf = Vec::with_capacity(READ_CHUNK_BYTES);
        let limits = self.settings.request_limits;
        let prologue = tokio::time::timeout(
            PROLOGUE_TIMEOUT,
            read_frame(&mut stream, &mut buf, |b| {
                protocol::decode_prologue(b, &limits)
            }),
        )
        .await
        .map_err(|_| format!("no prologue within {PROLOGUE_TIMEOUT:?}"))?;
        let prologue = match prologue {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(()),
            Err(FrameError::Protocol(e)) => {
                let _ = write_response(&mut stream, &Response::Error(e.to_error_response())).await;
                return Err(format!("refused: bad prologue: {e}"));
            }
            Err(e) => return Err(format!("prologue: {e}")),
        };
        let ours = self.settings.cluster.cluster_id.as_bytes();
        if prologue.cluster_id != ours {
            let message = format!(
                "wrong cluster id {:?}: this node is in cluster {:?}",
                String::from_utf8_lossy(&prologue.cluster_id),
                self.settings.cluster.cluster_id
            );
            let e = error(ResultCode::WrongCluster, message.clone());
            let _ = write_response(&mut stream, &Response::Error(e)).await;
            return Err(format!("refused: {message}"));
        }
        let mut decoder = RequestDecoder::new(limits);
        let mut stop = self.stop.clone();
        loop {
            let read = tokio::select! {
                r = read_frame(&mut stream, &mut buf, |b| decoder.decode(b)) => r,
                _ = stopped(&mut stop) => return Ok(()), // between requests: just close
            };
            let incoming = match read {
                Ok(Some(incoming)) => incoming,
                Ok(None) => return Ok(()),
                Err(FrameError::Protocol(e)) => {
                    let _ =
                        write_response(&mut stream, &Response::Error(e.to_error_response())).await;
                    return Err(format!("bad request: {e}"));
                }
                Err(e) => return Err(e.to_string()),
            };
            match incoming {
                Incoming::Request(request) => {
                    let response = self.handle(request).await;
                    write_response(&mut stream, &response).await?;
                }
                Incoming::Rejected { command, error } => {
                    tracing::debug!(%command, "request rejected: {error}");
                    write_response(&mut stream, &Response::Error(error.to_error_response()))
                        .await?;
                }
                Incoming::Unsupported(u) => {
                    write_response(&mut stream, &Response::Error(u.error_response())).await?;
                    if !u.stream_in_sync {
                        return Err(format!(
                            "unsupported command 0x{:02x} of unknown layout: closing",
                            u.code
                        ));
                    }
                }
            }
        }
    }

    async fn handle(&self, request: Request) -> Response {
        let command = request.command();
        let started = Instant::now();
        let result = self.dispatch(request).await;
        match result {
            Ok((reply, size)) => {
                self.stats.record(command, started.elapsed(), size);
                Response::Ok(reply)
            }
            Err(e) => Response::Error(e),
        }
    }

    /// Serves one request; the size is what statistics average, if any.
    async fn dispatch(&self, request: Request) -> Result<(Reply, Option<usize>), ErrorResponse> {
        let p = self.published.borrow().clone();
        Ok(match request {
            Request::Ping { .. } => (
                Reply::Ping(
                    format!("Arakoon-rs {} ({})", env!("CARGO_PKG_VERSION"), self.name())
                        .into_bytes(),
                ),
                None,
            ),
            Request::WhoMaster => (
                Reply::WhoMaster(self.master_name(&p).map(String::into_bytes)),
                None,
            ),
            Request::ExpectProgressPossible => {
                let possible = !p.going_down
                    && p.master.is_some()
                    && (p.role != Role::Master || p.lease.is_some());
                (Reply::ExpectProgressPossible(possible), None)
            }
            Request::Statistics => {
                let mut node_is = vec![(self.name().to_string(), p.tlog_last_index)];
                for (id, i) in &p.peers_match {
                    node_is.push((self.settings.name_of(*id).to_string(), *i));
                }
                (Reply::Statistics(self.stats.to_field(node_is)), None)
            }
            Request::Version => {
                let mut parts = env!("CARGO_PKG_VERSION")
                    .split('.')
                    .map(|x| x.parse::<i32>().unwrap_or(0));
                (
                    Reply::Version {
                        major: parts.next().unwrap_or(0),
                        minor: parts.next().unwrap_or(0),
                        patch: parts.next().unwrap_or(0),
                        info: b"arakoon-rs".to_vec(),
                    },
                    None,
                )
            }
            Request::CurrentState => {
                let state = format!(
                    "node {}: {} in n = {}, master {}, tlog last i = {}, committed {}, applied {}, lease {}{}",
                    self.name(),
                    p.role,
                    p.term,
                    self.master_name(&p).unwrap_or_else(|| "unknown".into()),
                    p.tlog_last_index,
                    p.commit_index,
                    p.applied_index,
                    if p.lease.is_some() { "held" } else { "not held" },
                    if p.going_down { ", going down" } else { "" }
                );
                (Reply::CurrentState(state.into_bytes()), None)
            }
            Request::GetTxid => (
                Reply::GetTxid(Consistency::AtLeast(
                    i64::try_from(self.store.applied_index()).unwrap_or(i64::MAX),
                )),
                None,
            ),
            Request::GetKeyCount => {
                let n = self
                    .read(Consistency::NoGuarantee, |v| v.key_count())
                    .await?;
                (
                    Reply::GetKeyCount(i64::try_from(n).unwrap_or(i64::MAX)),
                    None,
                )
            }
            Request::DropMaster => {
                let (tx, rx) = oneshot::channel();
                self.requests
                    .send(DriverRequest::DropMaster { reply: tx })
                    .await
                    .map_err(|_| Self::going_down())?;
                match rx.await {
                    Ok(Ok(())) => (Reply::DropMaster, None),
                    Ok(Err(reason)) => return Err(error(ResultCode::UnknownFailure, reason)),
                    Err(_) => return Err(Self::going_down()),
                }
            }
            Request::Exists { consistency, key } => {
                let b = self.read(consistency, move |v| v.exists(&key)).await?;
                (Reply::Exists(b), None)
            }
            Request::Get { consistency, key } => {
                let value = self
                    .read(consistency, move |v| {
                        v.get(&key)?.ok_or(StoreError::KeyNotFound { key })
                    })
                    .await?;
                let size = value.len();
                (Reply::Get(value), Some(size))
            }
            Request::Assert {
                consistency,
                key,
                value,
            } => {
                let (found, key) = self
                    .read(consistency, move |v| Ok((v.get(&key)?, key)))
                    .await?;
                if found != value {
                    return Err(error(ResultCode::AssertionFailed, key));
                }
                (Reply::Assert, None)
            }
            Request::AssertExists { consistency, key } => {
                let (found, key) = self
                    .read(consistency, move |v| Ok((v.exists(&key)?, key)))
                    .await?;
                if !found {
                    return Err(error(ResultCode::AssertionFailed, key));
                }
                (Reply::AssertExists, None)
            }
            Request::MultiGet { consistency, keys } => {
                let values = self.read(consistency, move |v| v.multi_get(&keys)).await?;
                let n = values.len();
                (Reply::MultiGet(values), Some(n))
            }
            Request::MultiGetOption { consistency, keys } => {
                let values = self
                    .read(consistency, move |v| v.multi_get_option(&keys))
                    .await?;
                let n = values.len();
                (Reply::MultiGetOption(values), Some(n))
            }
            Request::Range { consistency, range } => {
                let keys = self
                    .read(consistency, move |v| {
                        v.range(
                            range.first.as_deref(),
                            range.first_inclusive,
                            range.last.as_deref(),
                            range.last_inclusive,
                            i64::from(range.max),
                        )
                    })
                    .await?;
                let n = keys.len();
                (Reply::Range(keys), Some(n))
            }
            Request::RangeEntries { consistency, range } => {
                let entries = self
                    .read(consistency, move |v| {
                        v.range_entries(
                            range.first.as_deref(),
                            range.first_inclusive,
                            range.last.as_deref(),
                            range.last_inclusive,
                            i64::from(range.max),
                        )
                    })
                    .await?;
                let n = entries.len();
                (Reply::RangeEntries(entries), Some(n))
            }
            Request::RevRangeEntries { consistency, range } => {
                let entries = self
                    .read(consistency, move |v| {
                        v.rev_range_entries(
                            range.first.as_deref(),
                            range.first_inclusive,
                            range.last.as_deref(),
                            range.last_inclusive,
                            i64::from(range.max),
                        )
                    })
                    .await?;
                let n = entries.len();
                (Reply::RevRangeEntries(entries), Some(n))
            }
            Request::PrefixKeys {
                consistency,
                prefix,
                max,
            } => {
                let keys = self
                    .read(consistency, move |v| v.prefix_keys(&prefix, i64::from(max)))
                    .await?;
                let n = keys.len();
                (Reply::PrefixKeys(keys), Some(n))
            }
            Request::Confirm { key, value } => {
                // A set that skips consensus when the value is already there
                // (checked with a Consistent read, so it is linearizable).
                let (k, v) = (key.clone(), value.clone());
                let found = self
                    .read(Consistency::Consistent, move |view| view.get(&k))
                    .await?;
                if found.as_deref() != Some(v.as_slice()) {
                    self.update(Update::Set { key, value }).await?;
                }
                (Reply::Confirm, None)
            }
            Request::CollapseTlogs { .. }
            | Request::UserFunction { .. }
            | Request::GetNurseryCfg => {
                return Err(error(
                    ResultCode::NotSupported,
                    format!("{} is not supported by this node", request_name(&request)),
                ))
            }
            request => {
                let name = request_name(&request);
                let update = match request.into_update() {
                    Ok(u) => u,
                    Err(other) => {
                        return Err(internal(
                            "dispatch",
                            format!("request {:?} has no handler", other.command()),
                        ))
                    }
                };
                let size = largest_value(&update);
                let kind = update.tag();
                let result = self.update(update).await?;
                let reply = match result {
                    UpdateOk::Done => match kind {
                        1 => Reply::Set,
                        2 => Reply::Delete,
                        5 => Reply::Sequence,
                        13 => Reply::SyncedSequence,
                        6 => Reply::Nop,
                        _ => return Err(internal("update", format!("{name}: unexpected answer"))),
                    },
                    UpdateOk::Previous(v) => match kind {
                        3 => Reply::TestAndSet(v),
                        16 => Reply::Replace(v),
                        _ => return Err(internal("update", format!("{name}: unexpected answer"))),
                    },
                    UpdateOk::Count(n) => Reply::DeletePrefix(i32::try_from(n).unwrap_or(i32::MAX)),
                };
                (reply, Some(size))
            }
        })
    }

    /// Proposes one update through the driver and waits for its own result.
    async fn update(&self, update: Update) -> Result<UpdateOk, ErrorResponse> {
        {
            let p = self.published.borrow();
            if p.going_down {
                return Err(Self::going_down());
            }
            if self.settings.read_only() {
                return Err(error(ResultCode::ReadOnly, "the cluster is read-only"));
            }
            if p.role != Role::Master {
                return Err(self.not_master(&p));
            }
        }
        let max_value = self.settings.cluster.max_value_size;
        let largest = largest_value(&update);
        if largest > max_value {
            return Err(error(
                ResultCode::BadInput,
                format!("a value of {largest} bytes exceeds max_value_size ({max_value} bytes)"),
            ));
        }
        let encoded_len = update.encoded_len();
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(DriverRequest::Update {
                update,
                encoded_len,
                reply: tx,
            })
            .await
            .map_err(|_| Self::going_down())?;
        let answer: UpdateAnswer = rx.await.map_err(|_| Self::going_down())?;
        match answer {
            Ok(Ok(ok)) => Ok(ok),
            Ok(Err(failure)) => Err(failure_response(failure)),
            Err(refused) => Err(self.refused(refused)),
        }
    }

    fn refused(&self, refused: Refused) -> ErrorResponse {
        match refused {
            Refused::NotMaster(m) => error(
                ResultCode::NotMaster,
                m.map(|m| self.settings.name_of(m).to_string())
                    .unwrap_or_default(),
            ),
            Refused::NoLongerMaster => error(
                ResultCode::NoLongerMaster,
                "lost mastership while handling the request: the outcome is unknown",
            ),
            Refused::GoingDown { proposed: false } => Self::going_down(),
            Refused::GoingDown { proposed: true } => error(
                ResultCode::GoingDown,
                "the node is going down: the outcome of the update is unknown",
            ),
            Refused::ReadOnly => error(ResultCode::ReadOnly, "the cluster is read-only"),
            Refused::TooLarge { bytes, limit } => error(
                ResultCode::BadInput,
                format!("an update of {bytes} bytes exceeds the entry limit of {limit} bytes"),
            ),
        }
    }

    /// Waits until a `Consistent` read may be served here: master, lease
    /// held, and the store has applied the lease's read index.
    async fn consistent_gate(&self) -> Result<(), ErrorResponse> {
        let lease_period = self.settings.consensus.lease_period;
        let deadline = tokio::time::Instant::now() + lease_period;
        let mut rx = self.published.clone();
        let read_index = loop {
            {
                let p = rx.borrow_and_update();
                if p.going_down {
                    return Err(Self::going_down());
                }
                if p.role != Role::Master {
                    return Err(self.not_master(&p));
                }
                if let Some(lease) = p.lease {
                    if self.clock.now() < lease.until {
                        break lease.read_index;
                    }
                }
            }
            // A master without the lease (just elected, or cut off): wait a
            // little for it, as the client would retry anyway.
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Self::going_down()),
                Err(_) => {
                    return Err(error(
                        ResultCode::NotMaster,
                        "", // no master known that holds a lease
                    ));
                }
            }
        };
        loop {
            {
                let p = rx.borrow_and_update();
                if p.applied_index >= read_index {
                    return Ok(());
                }
                if p.going_down {
                    return Err(Self::going_down());
                }
                if p.role != Role::Master {
                    return Err(error(
                        ResultCode::NoLongerMaster,
                        "lost mastership while serving the read",
                    ));
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Self::going_down()),
                Err(_) => {
                    return Err(error(
                        ResultCode::NoLongerMaster,
                        "the store did not reach the read index in time",
                    ))
                }
            }
        }
    }

    /// A read at `consistency`, on a blocking thread, from one view.
    async fn read<R: Send + 'static>(
        &self,
        consistency: Consistency,
        f: impl FnOnce(&ReadView) -> Result<R, StoreError> + Send + 'static,
    ) -> Result<R, ErrorResponse> {
        if self.published.borrow().going_down {
            return Err(Self::going_down());
        }
        if consistency == Consistency::Consistent {
            self.consistent_gate().await?;
        }
        let at_least = consistency.at_least_index();
        let store = Arc::clone(&self.store);
        let result = tokio::task::spawn_blocking(move || {
            let view = store.read().map_err(store_error)?;
            if let Some(i) = at_least {
                let applied = view.applied_index();
                if applied < i {
                    return Err(error(
                        ResultCode::InconsistentRead,
                        format!("this node has applied up to {applied}, not yet {i}"),
                    ));
                }
            }
            f(&view).map_err(store_error)
        })
        .await;
        match result {
            Ok(r) => r,
            Err(e) => Err(internal("read task", e)),
        }
    }
}

fn request_name(request: &Request) -> &'static str {
    request.command().name()
}
