//! One TCP connection to one node: connect, prologue, then one request at a
//! time (write it whole, read its answer whole). Framing only: what an
//! answer means is the client's business.

use std::time::Duration;

use protocol::{Command, Decoded, Limits, Request, Response, ResponseDecoder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::Error;

/// Bytes read from the socket at least per read call.
const READ_CHUNK_SIZE: usize = 64 * 1024;

/// A request, encoded once (it may be sent several times).
#[derive(Debug)]
pub(crate) struct Frame {
    pub(crate) command: Command,
    pub(crate) bytes: Vec<u8>,
}

impl Frame {
    pub(crate) fn new(request: &Request) -> Frame {
        let mut bytes = Vec::new();
        protocol::encode_request(request, &mut bytes);
        Frame {
            command: request.command(),
            bytes,
        }
    }
}

/// How a request failed, by whether the node may have seen it.
#[derive(Debug)]
pub(crate) enum CallError {
    /// Nothing of the request left this process (connecting failed): any
    /// request may be retried.
    NotSent(Error),
    /// The request was (maybe partly) written: the node may have applied it.
    MaybeSent(Error),
}

/// The context of a failed TLS handshake (with what to check).
const TLS_HANDSHAKE: &str =
    "TLS handshake (does the cluster have tls_service = true, and is the node's certificate \
     signed by the CA given?)";

/// A connection to `node`, prologue sent.
#[derive(Debug)]
pub(crate) struct Connection {
    node: String,
    address: String,
    /// Plaintext or TLS.
    stream: tls::Stream,
    /// Bytes received and not yet decoded.
    buffer: Vec<u8>,
    /// Keeps its place inside a long answer between reads (linear time).
    decoder: ResponseDecoder,
    decoder_limits: Limits,
    /// Set while a request is between its first written byte and the end of
    /// its answer. Still set when a caller dropped the future mid-request
    /// (cancellation): the stream is then out of step and is not reused.
    in_flight: bool,
    /// Whether any answer came on this connection: a node that closes a new
    /// connection at once may have refused the prologue (cluster id).
    answered: bool,
    /// The cluster id sent in the prologue.
    cluster_id: String,
}

/// Why a request failed: the node closed a new connection before its
/// first answer. Arakoon's nodes (and ours) close without a reply on a
/// prologue naming another cluster, so that is the likely cause; a node
/// stopping at that moment closes the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClosedAfterPrologue {
    pub(crate) cluster_id: String,
}

impl std::fmt::Display for ClosedAfterPrologue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "connection closed by the node right after the prologue, before any answer: \
             it does not serve cluster id {:?} (or it was stopping)",
            self.cluster_id
        )
    }
}

impl std::error::Error for ClosedAfterPrologue {}

/// Whether `error` is a node closing a new connection before its first
/// answer ([`ClosedAfterPrologue`]).
pub(crate) fn closed_after_prologue(error: &Error) -> bool {
    match error {
        Error::Io { source, .. } => source
            .get_ref()
            .is_some_and(|e| e.downcast_ref::<ClosedAfterPrologue>().is_some()),
        _ => false,
    }
}

impl Connection {
    /// Connects to the first of `addresses` that accepts within
    /// `connect_timeout` each, and sends the prologue.
    pub(crate) async fn open(
        node: &str,
        addresses: &[String],
        cluster_id: &str,
        connect_timeout: Duration,
        limits: Limits,
        tls: Option<&tls::TlsConnector>,
    ) -> Result<Connection, Error> {
        let mut last_error = None;
        for address in addresses {
            match Self::open_one(node, address, cluster_id, connect_timeout, limits, tls).await {
                Ok(connection) => return Ok(connection),
                Err(e) => {
                    tracing::debug!(node, address, error = %e, "connect failed");
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| Error::Config(format!("node {node} has no address"))))
    }

    async fn open_one(
        node: &str,
        address: &str,
        cluster_id: &str,
        connect_timeout: Duration,
        limits: Limits,
        tls: Option<&tls::TlsConnector>,
    ) -> Result<Connection, Error> {
        let io_error = |context, source| Error::Io {
            node: node.to_string(),
            address: address.to_string(),
            context,
            source,
        };
        let stream = match tokio::time::timeout(connect_timeout, TcpStream::connect(address)).await
        {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(io_error("connect", e)),
            Err(_) => {
                return Err(io_error(
                    "connect",
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no connection within {connect_timeout:?}"),
                    ),
                ))
            }
        };
        stream
            .set_nodelay(true)
            .map_err(|e| io_error("set TCP_NODELAY", e))?;
        let stream = match tls {
            None => tls::Stream::Plain(stream),
            Some(connector) => {
                let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
                let handshake = tls::connect(connector, host, stream);
                match tokio::time::timeout(connect_timeout, handshake).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => {
                        let described = std::io::Error::new(e.kind(), tls::describe(&e));
                        return Err(io_error(TLS_HANDSHAKE, described));
                    }
                    Err(_) => {
                        return Err(io_error(
                            TLS_HANDSHAKE,
                            std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                format!("no TLS handshake within {connect_timeout:?}"),
                            ),
                        ))
                    }
                }
            }
        };
        let mut connection = Connection {
            node: node.to_string(),
            address: address.to_string(),
            stream,
            buffer: Vec::new(),
            decoder: ResponseDecoder::new(limits),
            decoder_limits: limits,
            in_flight: false,
            answered: false,
            cluster_id: cluster_id.to_string(),
        };
        let mut prologue = Vec::new();
        protocol::encode_prologue(cluster_id.as_bytes(), &mut prologue);
        let written = tokio::time::timeout(connect_timeout, connection.stream.write_all(&prologue));
        match written.await {
            Ok(Ok(())) => Ok(connection),
            Ok(Err(e)) => Err(io_error("send prologue", e)),
            Err(_) => Err(io_error(
                "send prologue",
                std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("not sent within {connect_timeout:?}"),
                ),
            )),
        }
    }

    /// The connection, if it can carry another request: no request was
    /// abandoned on it, and the node has neither closed it nor sent bytes
    /// nobody asked for. (A close racing with this check is still possible;
    /// it then shows as an error of the next request.)
    pub(crate) fn if_reusable(mut self) -> Option<Connection> {
        if self.in_flight || !self.buffer.is_empty() {
            return None;
        }
        let mut probe = [0u8; 1];
        match self.stream.read_now(&mut probe) {
            None => Some(self),
            // Ok(0): closed by the node; Ok(_): unasked bytes; Err: broken.
            Some(_) => None,
        }
    }

    /// Sends `frame` and reads its answer, all within `timeout`.
    pub(crate) async fn call(
        &mut self,
        frame: &Frame,
        timeout: Duration,
    ) -> Result<Response, CallError> {
        let command = frame.command;
        self.in_flight = true;
        let exchange = self.exchange(&frame.bytes, command);
        let response = match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result.map_err(CallError::MaybeSent)?,
            Err(_) => {
                return Err(CallError::MaybeSent(Error::Timeout {
                    node: self.node.clone(),
                    command: command.name(),
                    after: timeout,
                }))
            }
        };
        self.in_flight = false;
        Ok(response)
    }

    async fn exchange(&mut self, frame: &[u8], command: Command) -> Result<Response, Error> {
        if let Err(e) = self.stream.write_all(frame).await {
            return Err(self.closed_or_io_error("send request", e));
        }
        self.read_response(command).await
    }

    /// The error for `e`: a node that closes a new connection right after
    /// the prologue may show as a reset (the request it did not read was
    /// in its socket when it closed), which is [`ClosedAfterPrologue`] too.
    fn closed_or_io_error(&self, context: &'static str, e: std::io::Error) -> Error {
        let reset = matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        );
        if reset && !self.answered && self.buffer.is_empty() {
            return self.io_error(
                context,
                std::io::Error::new(
                    e.kind(),
                    ClosedAfterPrologue {
                        cluster_id: self.cluster_id.clone(),
                    },
                ),
            );
        }
        self.io_error(context, e)
    }

    /// Sends a `collapse_tlogs` frame and reads its stream: the first
    /// answer (the count, or the node's refusal), then one progress frame
    /// per segment (`on_removed(done, total, elapsed)`), each within
    /// `timeout` of the one before. An error frame in place of a progress
    /// frame ends it as a refusal.
    pub(crate) async fn collapse(
        &mut self,
        frame: &Frame,
        timeout: Duration,
        on_removed: &mut dyn FnMut(u32, u32, i64),
    ) -> Result<Result<u32, protocol::ErrorResponse>, CallError> {
        let command = frame.command;
        let count = match self.call(frame, timeout).await? {
            Response::Ok(protocol::Reply::CollapseTlogs { tlogs_to_collapse }) => {
                u32::try_from(tlogs_to_collapse).map_err(|_| {
                    CallError::MaybeSent(self.unexpected(command, "a negative count"))
                })?
            }
            Response::Ok(_) => {
                return Err(CallError::MaybeSent(
                    self.unexpected(command, "the reply is for another command"),
                ))
            }
            Response::Error(e) => return Ok(Err(e)),
        };
        self.in_flight = true;
        for done in 1..=count {
            let limits = self.decoder_limits;
            let read = self.read_with(command, |_, buf| {
                protocol::decode_collapse_progress(buf, &limits)
            });
            let response = match tokio::time::timeout(timeout, read).await {
                Ok(r) => r.map_err(CallError::MaybeSent)?,
                Err(_) => {
                    return Err(CallError::MaybeSent(Error::Timeout {
                        node: self.node.clone(),
                        command: command.name(),
                        after: timeout,
                    }))
                }
            };
            match response {
                Response::Ok(protocol::Reply::CollapseTlogsProgress { elapsed }) => {
                    on_removed(done, count, elapsed)
                }
                Response::Ok(_) => {
                    return Err(CallError::MaybeSent(
                        self.unexpected(command, "not a progress frame"),
                    ))
                }
                Response::Error(e) => {
                    self.in_flight = false;
                    return Ok(Err(e));
                }
            }
        }
        self.in_flight = false;
        Ok(Ok(count))
    }

    /// Sends a `get_db` frame, then copies the store bytes that follow its
    /// answer (`rc 0, int64 length`) to `out`, each read within `timeout`;
    /// `on_progress(done, total)` after each chunk. Returns the length, or
    /// the node's refusal.
    pub(crate) async fn get_db(
        &mut self,
        frame: &Frame,
        timeout: Duration,
        out: &mut (dyn std::io::Write + Send),
        on_progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<Result<u64, protocol::ErrorResponse>, CallError> {
        let command = frame.command;
        let length = match self.call(frame, timeout).await? {
            Response::Ok(protocol::Reply::GetDb { length }) => u64::try_from(length)
                .map_err(|_| CallError::MaybeSent(self.unexpected(command, "a negative length")))?,
            Response::Ok(_) => {
                return Err(CallError::MaybeSent(
                    self.unexpected(command, "the reply is for another command"),
                ))
            }
            Response::Error(e) => return Ok(Err(e)),
        };
        self.in_flight = true;
        let write_failed = |e: std::io::Error| {
            CallError::MaybeSent(Error::Output {
                context: "get_db: writing the store copy",
                source: e,
            })
        };
        // What came with the answer's frame first.
        let mut done = 0u64;
        let buffered = usize::try_from(length)
            .unwrap_or(usize::MAX)
            .min(self.buffer.len());
        out.write_all(&self.buffer[..buffered])
            .map_err(write_failed)?;
        self.buffer.drain(..buffered);
        done += buffered as u64;
        on_progress(done, length);
        let mut chunk = vec![0u8; READ_CHUNK_SIZE.max(64 << 10)];
        while done < length {
            let want = usize::try_from(length - done)
                .unwrap_or(usize::MAX)
                .min(chunk.len());
            let read =
                match tokio::time::timeout(timeout, self.stream.read(&mut chunk[..want])).await {
                    Ok(Ok(0)) => {
                        return Err(CallError::MaybeSent(self.io_error(
                            "read the store copy",
                            std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                format!("connection closed after {done} of {length} bytes"),
                            ),
                        )))
                    }
                    Ok(Ok(n)) => n,
                    Ok(Err(e)) => {
                        return Err(CallError::MaybeSent(
                            self.io_error("read the store copy", e),
                        ))
                    }
                    Err(_) => {
                        return Err(CallError::MaybeSent(Error::Timeout {
                            node: self.node.clone(),
                            command: command.name(),
                            after: timeout,
                        }))
                    }
                };
            out.write_all(&chunk[..read]).map_err(write_failed)?;
            done += read as u64;
            on_progress(done, length);
        }
        self.in_flight = false;
        Ok(Ok(length))
    }

    fn unexpected(&self, command: Command, reason: &'static str) -> Error {
        Error::Protocol {
            node: self.node.clone(),
            command: command.name(),
            source: protocol::ProtocolError::UnexpectedResponse { reason },
        }
    }

    async fn read_response(&mut self, command: Command) -> Result<Response, Error> {
        self.read_with(command, |decoder, buf| decoder.decode(buf, command))
            .await
    }

    /// Reads one answer frame, decoded by `decode` from the buffer.
    async fn read_with(
        &mut self,
        command: Command,
        mut decode: impl FnMut(
            &mut ResponseDecoder,
            &[u8],
        ) -> Result<Decoded<Response>, protocol::ProtocolError>,
    ) -> Result<Response, Error> {
        loop {
            let decoded =
                decode(&mut self.decoder, &self.buffer).map_err(|source| Error::Protocol {
                    node: self.node.clone(),
                    command: command.name(),
                    source,
                })?;
            match decoded {
                Decoded::Complete { value, consumed } => {
                    self.buffer.drain(..consumed);
                    self.answered = true;
                    return Ok(value);
                }
                Decoded::Incomplete { needed } => {
                    let missing = needed.saturating_sub(self.buffer.len());
                    self.buffer.reserve(missing.max(READ_CHUNK_SIZE));
                    let read = match self.stream.read_buf(&mut self.buffer).await {
                        Ok(read) => read,
                        Err(e) => return Err(self.closed_or_io_error("read answer", e)),
                    };
                    if read == 0 {
                        let source = if self.answered || !self.buffer.is_empty() {
                            std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                format!(
                                    "connection closed by the node ({} of at least {needed} bytes received)",
                                    self.buffer.len()
                                ),
                            )
                        } else {
                            std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                ClosedAfterPrologue {
                                    cluster_id: self.cluster_id.clone(),
                                },
                            )
                        };
                        return Err(self.io_error("read answer", source));
                    }
                }
            }
        }
    }

    fn io_error(&self, context: &'static str, source: std::io::Error) -> Error {
        Error::Io {
            node: self.node.clone(),
            address: self.address.clone(),
            context,
            source,
        }
    }
}
