//! The client service on `client_port`: Arakoon's client protocol.
//!
//! - At most [`MAX_CLIENT_CONNECTIONS`] connections; one more is answered
//!   `E_MAX_CONNECTIONS` and closed.
//! - The prologue comes first: a wrong magic or version is answered
//!   `E_NO_MAGIC` and the connection closed; a wrong cluster id closes it
//!   without a reply, as Arakoon does (the reason is logged).
//! - Requests of one connection are served one at a time, in order (so at
//!   most one is queued per connection, within Arakoon's
//!   `client_buffer_capacity`; the rest wait in the socket); every
//!   connection is its own task, so a slow or dead client only holds its
//!   own task (writes have a timeout, [`WRITE_TIMEOUT`]; a request begun
//!   must be sent whole within the node's `client_frame_timeout`, else the
//!   connection is closed; an idle connection between requests is kept).
//! - Updates go to the driver's bounded queue and wait for their own
//!   result. Reads never go through the driver: they pass the replica's
//!   read gate (`replica::reads`) over the state the driver publishes —
//!   every read waits for the updates this node answered; `NoGuarantee`
//!   then reads at once; `AtLeast(i)` reads once the store applied `i`
//!   (waiting up to a heartbeat, and asking the driver to apply, if the
//!   tlog holds `i`; `E_INCONSISTENT_READ` otherwise); `Consistent` reads
//!   need the published lease and wait until the store applied its read
//!   index. Point reads (a few keys) run on the connection's task, scans
//!   (ranges, prefixes, key counts, many keys) on blocking threads (see
//!   `commands.rs`, `ReadCost`).
//! - A request the decoder cannot read is answered with its error
//!   (`E_BAD_INPUT`, `E_NO_MAGIC`) and the connection closed; a request
//!   read whole but unusable is answered and the connection goes on. A
//!   request string too large for `max_buffer_size` is read in chunks and
//!   dropped (`protocol::RequestDecoder::next`, bounded per request), then
//!   the request is answered `E_BAD_INPUT` naming the limit, the connection
//!   kept, as Arakoon does.
//! - After an answer whose code Arakoon closes on
//!   ([`ResultCode::closes_connection`]: `E_NOT_MASTER`, `E_GOING_DOWN`,
//!   `E_NOT_SUPPORTED`, `0xff`, …) the connection is closed, as Arakoon's
//!   nodes do; a command of known layout that this node does not support
//!   is answered `E_NOT_SUPPORTED` and the connection kept.

pub(crate) mod admin;
mod collapse;
mod commands;

use crate::clock::Clock;
use crate::metrics::NodeMetrics;
use crate::settings::{Settings, MAX_CLIENT_CONNECTIONS};
use crate::state::{DriverRequest, SharedStore};
use crate::stats::Stats;
use crate::stop::StopMode;
use crate::stop::{stopped, stopped_as};
use protocol::{
    ErrorResponse, Incoming, ProtocolError, RequestDecoder, Response, ResultCode, Step,
};
use replica::Published;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;
use tls::Stream;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};

/// Longest wait for a new connection's prologue.
pub const PROLOGUE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for one response to be written.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful stop lets a connection finish the request in hand.
pub const GRACEFUL_STOP_GRACE: Duration = Duration::from_secs(2);
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
    pub metrics: Arc<NodeMetrics>,
    pub stop: watch::Receiver<StopMode>,
    /// Tells the driver that a reader waits for an index this node holds
    /// but has not applied (see `Driver::apply_due`).
    pub apply_wanted: Arc<tokio::sync::Notify>,
    /// Whether this node's disk is too full to take updates (see
    /// `crate::disk_space`).
    pub disk_space: Arc<crate::disk_space::DiskSpace>,
}

/// Starts an accept loop per listener (one per address of the node's
/// `ip`), sharing one connection limit; the task (which holds the
/// listeners) ends when the node stops.
pub fn start(service: Service, listeners: Vec<TcpListener>) -> tokio::task::JoinHandle<()> {
    let mut stop = service.stop.clone();
    let connections = Arc::new(Semaphore::new(MAX_CLIENT_CONNECTIONS));
    let loops: Vec<_> = listeners
        .into_iter()
        .map(|l| Box::pin(accept_loop(service.clone(), l, Arc::clone(&connections))))
        .collect();
    tokio::spawn(async move {
        tokio::select! {
            _ = futures_join_all(loops) => {}
            _ = stopped(&mut stop) => {}
        }
    })
}

/// Waits for every future (accept loops never end; this keeps them all
/// polled on one task).
async fn futures_join_all<F: std::future::Future<Output = ()> + Unpin>(mut futures: Vec<F>) {
    std::future::poll_fn(|cx| {
        futures.retain_mut(|f| std::pin::Pin::new(f).poll(cx).is_pending());
        if futures.is_empty() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}

async fn accept_loop(service: Service, listener: TcpListener, connections: Arc<Semaphore>) {
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
        crate::sockets::set_keepalive(&stream, &service.settings.cluster.tcp_keepalive);
        let service = service.clone();
        match Arc::clone(&connections).try_acquire_owned() {
            Ok(permit) => {
                let open = service.metrics.connection_opened();
                tokio::spawn(async move {
                    // A crash cuts the connection at once; a graceful stop
                    // lets the request in hand be answered (E_GOING_DOWN).
                    let mut stop = service.stop.clone();
                    let mut graceful = service.stop.clone();
                    tokio::select! {
                        r = service.serve(stream) => {
                            if let Err(e) = r {
                                tracing::info!(%addr, "client connection closed: {e}");
                            }
                        }
                        _ = stopped_as(&mut stop, |m| m == StopMode::Crash) => {}
                        // A client that does not take its answer does not
                        // hold up a graceful stop for long.
                        _ = async {
                            stopped(&mut graceful).await;
                            tokio::time::sleep(GRACEFUL_STOP_GRACE).await;
                        } => {}
                    }
                    drop(permit);
                    drop(open);
                });
            }
            Err(_) => {
                service.metrics.connection_refused();
                tracing::warn!(%addr, limit = MAX_CLIENT_CONNECTIONS, "connection refused: too many client connections");
                if service
                    .settings
                    .tls
                    .as_ref()
                    .is_some_and(|t| t.service.is_some())
                {
                    // No handshake spent on a refusal: a TLS client sees
                    // the connection closed.
                    continue;
                }
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

async fn write_response<S: AsyncWrite + Unpin>(
    stream: &mut S,
    response: &Response,
) -> Result<(), String> {
    write_bytes(stream, &encoded(response)).await
}

fn encoded(response: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    protocol::encode_response(response, &mut out);
    out
}

/// Writes `bytes` (an answer, or what the driver left of it: see
/// `state::DirectReply`), within [`WRITE_TIMEOUT`].
async fn write_bytes<S: AsyncWrite + Unpin>(stream: &mut S, bytes: &[u8]) -> Result<(), String> {
    if bytes.is_empty() {
        return Ok(());
    }
    tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(bytes))
        .await
        .map_err(|_| format!("client did not take the answer within {WRITE_TIMEOUT:?}"))?
        .map_err(|e| format!("write: {e}"))
}

/// Reads from `stream` into `buf` until `decode` finds a whole frame.
/// `Ok(None)`: the client closed the connection between frames. Once a
/// frame has begun (a byte of it is here), the rest must come within
/// `frame_timeout`; waiting for the first byte has no limit. A string the
/// decoder asks to drop ([`Step::Discard`]) is read in chunks of at most
/// [`READ_CHUNK_BYTES`] and thrown away, never held whole, within the same
/// timeout.
async fn read_frame<T>(
    stream: &mut Stream,
    buf: &mut Vec<u8>,
    frame_timeout: Duration,
    mut decode: impl FnMut(&[u8]) -> Result<Step<T>, ProtocolError>,
) -> Result<Option<T>, FrameError> {
    let mut begun = (!buf.is_empty()).then(tokio::time::Instant::now);
    loop {
        if !buf.is_empty() {
            match decode(buf).map_err(FrameError::Protocol)? {
                Step::Complete { value, consumed } => {
                    buf.drain(..consumed);
                    return Ok(Some(value));
                }
                Step::Incomplete { needed } => {
                    buf.reserve((needed - buf.len()).min(READ_CHUNK_BYTES));
                }
                Step::Discard { at, bytes } => {
                    let present = buf.len().saturating_sub(at).min(bytes);
                    buf.drain(at..at + present);
                    let started = *begun.get_or_insert_with(tokio::time::Instant::now);
                    drop_bytes(stream, bytes - present, started, frame_timeout).await?;
                    continue;
                }
            }
        }
        if buf.capacity() == buf.len() {
            buf.reserve(READ_CHUNK_BYTES);
        }
        let read = stream.read_buf(buf);
        let n = match begun {
            None => read.await,
            Some(at) => tokio::time::timeout_at(at + frame_timeout, read)
                .await
                .map_err(|_| FrameError::Stalled {
                    bytes: buf.len(),
                    timeout: frame_timeout,
                })?,
        }
        .map_err(FrameError::Io)?;
        if n == 0 {
            return if buf.is_empty() {
                Ok(None)
            } else {
                Err(FrameError::Truncated(buf.len()))
            };
        }
        begun.get_or_insert_with(tokio::time::Instant::now);
    }
}

/// Reads `bytes` bytes from `stream` and throws them away, within
/// `frame_timeout` of the frame's start.
async fn drop_bytes(
    stream: &mut Stream,
    bytes: usize,
    frame_started: tokio::time::Instant,
    frame_timeout: Duration,
) -> Result<(), FrameError> {
    let deadline = frame_started + frame_timeout;
    let mut scratch = vec![0u8; bytes.min(READ_CHUNK_BYTES)];
    let mut left = bytes;
    while left > 0 {
        let want = left.min(scratch.len());
        let n = tokio::time::timeout_at(deadline, stream.read(&mut scratch[..want]))
            .await
            .map_err(|_| FrameError::Stalled {
                bytes: bytes - left,
                timeout: frame_timeout,
            })?
            .map_err(FrameError::Io)?;
        if n == 0 {
            return Err(FrameError::Truncated(bytes - left));
        }
        left -= n;
    }
    Ok(())
}

enum FrameError {
    Protocol(ProtocolError),
    Io(std::io::Error),
    Truncated(usize),
    /// A frame begun and not finished within the timeout.
    Stalled {
        bytes: usize,
        timeout: Duration,
    },
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Protocol(e) => write!(f, "{e}"),
            FrameError::Io(e) => write!(f, "read: {e}"),
            FrameError::Stalled { bytes, timeout } => write!(
                f,
                "the client sent {bytes} bytes of a request and not the rest within {timeout:?} \
                 (client_frame_timeout)"
            ),
            FrameError::Truncated(n) => {
                write!(
                    f,
                    "the client closed the connection inside a frame ({n} bytes)"
                )
            }
        }
    }
}

impl Service {
    /// With `tls_service`, the TLS handshake first (within
    /// [`PROLOGUE_TIMEOUT`]); a plaintext client is answered, in plaintext,
    /// that this port speaks TLS.
    async fn secure(&self, tcp: TcpStream) -> Result<Option<Stream>, String> {
        let Some(acceptor) = self.settings.tls.as_ref().and_then(|t| t.service.as_ref()) else {
            return Ok(Some(Stream::Plain(tcp)));
        };
        let accepted = tokio::time::timeout(PROLOGUE_TIMEOUT, tls::accept(acceptor, tcp))
            .await
            .map_err(|_| format!("no TLS handshake within {PROLOGUE_TIMEOUT:?}"))?;
        match accepted {
            Ok(stream) => Ok(Some(stream)),
            Err((tls::AcceptError::Closed, _)) => Ok(None),
            Err((e @ tls::AcceptError::Plaintext(_), Some(mut tcp))) => {
                let answer = ErrorResponse::new(
                    ResultCode::NoMagic,
                    "this node's client port speaks TLS (tls_service = true): connect with TLS \
                     (the arakoon CLI: -tls-ca-cert, and -tls-cert/-tls-key if client \
                     certificates are validated)",
                );
                let _ = write_response(&mut tcp, &Response::Error(answer)).await;
                Err(format!("refused: {e} (tls_service = true)"))
            }
            Err((e, _)) => Err(format!("refused: {e}")),
        }
    }

    async fn serve(self, tcp: TcpStream) -> Result<(), String> {
        let Some(mut stream) = self.secure(tcp).await? else {
            return Ok(());
        };
        let mut buf = Vec::with_capacity(READ_CHUNK_BYTES);
        let limits = self.settings.request_limits;
        let frame_timeout = self.settings.node().client_frame_timeout;
        let prologue = tokio::time::timeout(
            PROLOGUE_TIMEOUT,
            read_frame(&mut stream, &mut buf, frame_timeout, |b| {
                protocol::decode_prologue(b, &limits).map(Step::from)
            }),
        )
        .await
        .map_err(|_| format!("no prologue within {PROLOGUE_TIMEOUT:?}"))?;
        let prologue = match prologue {
            Ok(Some(p)) => p,
            Ok(None) => return Ok(()),
            Err(FrameError::Protocol(e)) => {
                let _ = write_response(&mut stream, &Response::Error(e.to_error_response())).await;
                if !stream.is_tls() && buf.first() == Some(&tls::HANDSHAKE_RECORD) {
                    return Err(format!(
                        "refused: bad prologue: {e}: the client began a TLS handshake, \
                         and this node's client port is plaintext (tls_service is not set)"
                    ));
                }
                return Err(format!("refused: bad prologue: {e}"));
            }
            Err(e) => return Err(format!("prologue: {e}")),
        };
        let ours = self.settings.cluster.cluster_id.as_bytes();
        if prologue.cluster_id != ours {
            // As Arakoon: closed without a reply (the client sees the
            // connection end before any answer; ours names the cluster id).
            return Err(format!(
                "refused, closed without a reply: wrong cluster id {:?}: this node is in cluster {:?}",
                String::from_utf8_lossy(&prologue.cluster_id),
                self.settings.cluster.cluster_id
            ));
        }
        let mut decoder = RequestDecoder::new(limits);
        let mut stop = self.stop.clone();
        // A duplicate of the socket (same connection, own descriptor) for
        // the driver to answer plain successful updates directly; not with
        // TLS (the session's state is this task's).
        let socket = match stream.plain().map(|tcp| tcp.as_fd().try_clone_to_owned()) {
            None => None,
            Some(Ok(fd)) => Some(Arc::new(std::net::TcpStream::from(fd))),
            Some(Err(e)) => {
                tracing::debug!("no direct answers on this connection: dup failed: {e}");
                None
            }
        };
        loop {
            let read = tokio::select! {
                r = read_frame(&mut stream, &mut buf, frame_timeout, |b| decoder.next(b)) => r,
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
                Incoming::Request(protocol::Request::GetDb) => {
                    if self.serve_get_db(&mut stream).await? {
                        return Ok(());
                    }
                }
                Incoming::Request(protocol::Request::CollapseTlogs { tlogs_to_keep }) => {
                    if self.serve_collapse(&mut stream, tlogs_to_keep).await? {
                        tracing::debug!(
                            "collapse_tlogs failed: closing the connection, as Arakoon does"
                        );
                        return Ok(());
                    }
                }
                Incoming::Request(request) => {
                    let handled = self
                        .handle(
                            request,
                            commands::Direct {
                                socket: socket.as_ref(),
                                stream: stream.plain().filter(|_| buf.is_empty()),
                            },
                        )
                        .await;
                    match handled.by_driver {
                        // What the driver did not write of the success
                        // answer it had (encoded once, by the connection).
                        Some((done, written)) => {
                            debug_assert_eq!(done, encoded(&handled.response));
                            write_bytes(&mut stream, done.get(written..).unwrap_or_default())
                                .await?;
                        }
                        None => write_response(&mut stream, &handled.response).await?,
                    }
                    if let Response::Error(e) = &handled.response {
                        let code = e.result_code();
                        if code.closes_connection() {
                            // As Arakoon: the client reconnects (ours does).
                            tracing::debug!(
                                "answered {code}: closing the connection, as Arakoon does"
                            );
                            return Ok(());
                        }
                    }
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
}
