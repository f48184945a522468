//! Node-to-node messaging on `messaging_port`: consensus messages over TCP
//! with our own framing.
//!
//! # Wire format (all integers little endian)
//!
//! A connection carries one direction only: the connecting node sends, the
//! accepting node receives. Right after connecting, the sender writes the
//! handshake:
//!
//! ```text
//! magic "ARKRSMSG" (8 bytes) | version u32 = 1 | cluster_id | from_name | to_name
//! ```
//!
//! where each string is `u32 length` then bytes (at most
//! [`HANDSHAKE_STRING_MAX`]). The receiver answers one byte, `0` for
//! accepted, or `1` then a `u32`-length reason, and closes: a wrong magic,
//! version or cluster id, an unknown sender, or a `to_name` that is not
//! itself (both sides log the reason). After it, frames follow:
//! `u32 length | peer message` ([`replica::peer`]: a consensus message or a
//! part of a store snapshot transfer), the length at most the node's
//! `max_message_bytes`; a longer one, or a message that does not decode or
//! claims another sender than the handshake's, closes the connection with a
//! logged reason.
//!
//! # Behaviour
//!
//! - One outgoing connection per peer, opened by a task of its own that
//!   reconnects with exponential backoff ([`BACKOFF_INITIAL`] to
//!   [`BACKOFF_MAX`]). Messages wait in a bounded queue
//!   ([`PEER_QUEUE_CAPACITY`]); when it is full, or the peer is unreachable,
//!   they are dropped: the consensus tolerates loss, and the driver never
//!   waits for the network. What was queued before a (re)connection is
//!   dropped too (stale).
//! - A peer is dialled at each address of its `ip` in turn (the next one
//!   after a failure); `messaging_port` is bound on every address of ours.
//! - Both ends set the config's TCP keepalive; the sending end also sets
//!   `TCP_USER_TIMEOUT` to a lease period ([`unacknowledged_limit`]), so
//!   a peer behind a cut is redialled (and reached as soon as the cut
//!   heals) rather than left to TCP's growing retransmission back-off.
//! - Incoming connections are accepted from any known peer; their messages
//!   go to the driver's bounded inbound queue (a full queue slows the
//!   reading of that connection, not the driver).

use crate::settings::{Settings, PEER_QUEUE_CAPACITY};
use crate::stop::{stopped, StopMode};
use bytes::Bytes;
use consensus::{Message, NodeId};
use replica::{PeerMessage, SnapshotMessage};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tls::Stream;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

pub const HANDSHAKE_MAGIC: &[u8; 8] = b"ARKRSMSG";
/// 3: frames carry [`replica::peer`] messages (snapshot transfers).
pub const MESSAGING_VERSION: u32 = 3;
/// Longest cluster id or node name in a handshake.
pub const HANDSHAKE_STRING_MAX: usize = 256;
/// Longest wait for a handshake (and its answer).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest wait for one write to a peer before the connection is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(50);
/// A peer that comes back is reached within this much (a refused dial on
/// a LAN costs a round trip).
pub const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// How a failed TLS handshake with a peer begins (logged as a warning).
const TLS_FAILURE: &str = "TLS handshake failed";

/// The driver's side: hand a message to a peer's queue, never waiting.
#[derive(Debug, Clone)]
pub struct Transport {
    /// Indexed by node id; `None` for this node.
    peers: Arc<Vec<Option<mpsc::Sender<Bytes>>>>,
    dropped: Arc<AtomicU64>,
}

impl Transport {
    pub fn send(&self, msg: &Message) {
        self.queue(msg.to, replica::peer::encode_consensus(msg));
    }

    pub fn send_snapshot(&self, msg: &SnapshotMessage) {
        self.queue(msg.to(), replica::peer::encode_snapshot(msg));
    }

    fn queue(&self, to: NodeId, bytes: Vec<u8>) {
        let Some(Some(queue)) = self.peers.get(to.0 as usize) else {
            tracing::warn!(%to, "message for an unknown node dropped");
            return;
        };
        if queue.try_send(Bytes::from(bytes)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Starts one accept loop per listener (Arakoon binds `messaging_port` on
/// every address of `ip`) and one sender task per peer; the accept tasks
/// (which hold the listeners) end when the node stops.
pub fn start(
    settings: Arc<Settings>,
    listeners: Vec<TcpListener>,
    inbound: mpsc::Sender<PeerMessage>,
    stop: watch::Receiver<StopMode>,
) -> (Transport, Vec<tokio::task::JoinHandle<()>>) {
    let mut peers = Vec::new();
    for (p, _) in settings.cluster.nodes.iter().enumerate() {
        if p == settings.me {
            peers.push(None);
            continue;
        }
        let (tx, rx) = mpsc::channel(PEER_QUEUE_CAPACITY);
        peers.push(Some(tx));
        let settings = Arc::clone(&settings);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = sender(Arc::clone(&settings), NodeId(p as u64), rx) => {}
                _ = stopped(&mut stop) => {}
            }
        });
    }
    let mut accept = Vec::with_capacity(listeners.len());
    for listener in listeners {
        let mut accept_stop = stop.clone();
        let (settings, inbound, stop) = (Arc::clone(&settings), inbound.clone(), stop.clone());
        accept.push(tokio::spawn(async move {
            tokio::select! {
                _ = accept_loop(settings, listener, inbound, stop) => {}
                _ = stopped(&mut accept_stop) => {}
            }
        }));
    }
    let transport = Transport {
        peers: Arc::new(peers),
        dropped: Arc::new(AtomicU64::new(0)),
    };
    (transport, accept)
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s);
}

fn handshake_bytes(cluster_id: &str, from: &str, to: &str) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(HANDSHAKE_MAGIC);
    out.extend_from_slice(&MESSAGING_VERSION.to_le_bytes());
    put_str(&mut out, cluster_id.as_bytes());
    put_str(&mut out, from.as_bytes());
    put_str(&mut out, to.as_bytes());
    out
}

/// The sending task of one peer: connect, handshake, write frames; on any
/// failure, back off and reconnect.
async fn sender(settings: Arc<Settings>, peer: NodeId, mut queue: mpsc::Receiver<Bytes>) {
    let peer_name = settings.name_of(peer).to_string();
    let Some(peer_config) = settings.cluster.nodes.get(peer.0 as usize) else {
        return;
    };
    // Every address of the peer's `ip`, tried in turn: the first at the
    // start, the next one after a failure.
    let addresses: Vec<String> = peer_config
        .ips
        .iter()
        .map(|ip| format!("{ip}:{}", peer_config.messaging_port))
        .collect();
    assert!(!addresses.is_empty(), "the config gives every node an ip");
    let mut which = 0;
    let mut backoff = BACKOFF_INITIAL;
    let mut last_error = String::new();
    loop {
        let address = &addresses[which % addresses.len()];
        match connect(&settings, &peer_name, address).await {
            Ok(stream) => {
                tracing::debug!(peer = %peer_name, %address, "messaging connection up");
                backoff = BACKOFF_INITIAL;
                last_error.clear();
                // Drop what was queued while disconnected: it is stale.
                while queue.try_recv().is_ok() {}
                match pump(stream, &mut queue).await {
                    Ok(()) => return, // the driver is gone
                    Err(e) => {
                        tracing::debug!(peer = %peer_name, %address, "messaging connection lost: {e}")
                    }
                }
            }
            Err(e) => {
                which += 1;
                // Logged once per distinct reason, not at every retry.
                if e != last_error {
                    if e.starts_with("refused") || e.starts_with(TLS_FAILURE) {
                        tracing::warn!(peer = %peer_name, %address, "peer refused our handshake: {e}");
                    } else {
                        tracing::debug!(peer = %peer_name, %address, "cannot connect: {e}");
                    }
                    last_error = e;
                }
            }
        }
        // Drop what queues up meanwhile, without blocking the driver.
        let deadline = tokio::time::Instant::now() + backoff;
        loop {
            match tokio::time::timeout_at(deadline, queue.recv()).await {
                Ok(Some(_)) => continue,
                Ok(None) => return,
                Err(_) => break,
            }
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn connect(settings: &Settings, peer_name: &str, address: &str) -> Result<Stream, String> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
        .await
        .map_err(|_| format!("no connection within {CONNECT_TIMEOUT:?}"))?
        .map_err(|e| e.to_string())?;
    let _ = tcp.set_nodelay(true);
    crate::sockets::set_keepalive(&tcp, &settings.cluster.tcp_keepalive);
    crate::sockets::set_user_timeout(&tcp, unacknowledged_limit(settings));
    let mut stream = match &settings.tls {
        None => Stream::Plain(tcp),
        Some(node_tls) => {
            let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
            let handshake = tls::connect(&node_tls.messaging_connector, host, tcp);
            tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake)
                .await
                .map_err(|_| {
                    format!("{TLS_FAILURE}: no TLS handshake within {HANDSHAKE_TIMEOUT:?}")
                })?
                .map_err(|e| {
                    format!(
                        "{TLS_FAILURE}: {} (every node needs tls_cert and tls_key signed by \
                         the CA in tls_ca_cert)",
                        tls::describe(&e)
                    )
                })?
        }
    };
    let hello = handshake_bytes(
        &settings.cluster.cluster_id,
        &settings.node().name,
        peer_name,
    );
    let tls_on = stream.is_tls();
    let answer = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        stream.write_all(&hello).await?;
        let status = stream.read_u8().await?;
        if status == 0 {
            return Ok::<_, std::io::Error>(None);
        }
        let len = stream.read_u32_le().await? as usize;
        let mut reason = vec![0u8; len.min(HANDSHAKE_STRING_MAX * 4)];
        stream.read_exact(&mut reason).await?;
        Ok(Some(String::from_utf8_lossy(&reason).into_owned()))
    })
    .await
    .map_err(|_| format!("no handshake answer within {HANDSHAKE_TIMEOUT:?}"))?
    .map_err(|e| {
        // With TLS 1.3 the dialling side's handshake ends before the peer
        // has checked its certificate: a refusal arrives as an alert here.
        if tls_on && e.kind() == std::io::ErrorKind::InvalidData {
            format!(
                "{TLS_FAILURE}: the peer refused our certificate: {} (every node needs \
                 tls_cert and tls_key signed by the CA in tls_ca_cert)",
                tls::describe(&e)
            )
        } else {
            format!("handshake: {e}")
        }
    })?;
    match answer {
        None => Ok(stream),
        Some(reason) => Err(format!("refused: {reason}")),
    }
}

/// How long data sent to a peer may stay unacknowledged by its kernel
/// before the connection is dropped and redialled: one lease period, at
/// least 500 ms. A master heartbeats ten times per lease, so a live peer
/// acknowledges well within it; a peer cut off (packets dropped) is given
/// up on within it, and the redial reaches it as soon as the cut heals.
fn unacknowledged_limit(settings: &Settings) -> Duration {
    settings
        .cluster
        .lease_period
        .max(Duration::from_millis(500))
}

/// Writes queued messages until the queue closes (`Ok`) or a write fails.
///
/// The peer never writes on this connection after the handshake's answer,
/// so anything readable (its end of file, when it closed or died) ends the
/// pump at once: the connection is redialled before the next message
/// rather than that message being written into a dead connection and lost
/// (which, for a slave that sends nothing between elections, was its next
/// pre-vote answer: an election lost for a whole timeout).
async fn pump(stream: Stream, queue: &mut mpsc::Receiver<Bytes>) -> std::io::Result<()> {
    match stream {
        Stream::Plain(tcp) => {
            let (from_peer, to_peer) = tcp.into_split();
            pump_halves(from_peer, to_peer, queue).await
        }
        tls => {
            let (from_peer, to_peer) = tokio::io::split(tls);
            pump_halves(from_peer, to_peer, queue).await
        }
    }
}

async fn pump_halves<R, W>(
    mut from_peer: R,
    to_peer: W,
    queue: &mut mpsc::Receiver<Bytes>,
) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut out = BufWriter::with_capacity(256 << 10, to_peer);
    let mut scratch = [0u8; 64];
    loop {
        let bytes = tokio::select! {
            next = queue.recv() => match next {
                Some(bytes) => bytes,
                None => return Ok(()),
            },
            read = from_peer.read(&mut scratch) => {
                return Err(match read {
                    Ok(0) => std::io::Error::new(
                        std::io::ErrorKind::ConnectionAborted,
                        "the peer closed the connection",
                    ),
                    Ok(n) => std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("the peer sent {n} bytes on a one-way connection"),
                    ),
                    Err(e) => e,
                });
            }
        };
        let write = async {
            out.write_all(&(bytes.len() as u32).to_le_bytes()).await?;
            out.write_all(&bytes).await?;
            // Coalesce what is already queued into one flush.
            while let Ok(more) = queue.try_recv() {
                out.write_all(&(more.len() as u32).to_le_bytes()).await?;
                out.write_all(&more).await?;
            }
            out.flush().await
        };
        tokio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))??;
    }
}

async fn accept_loop(
    settings: Arc<Settings>,
    listener: TcpListener,
    inbound: mpsc::Sender<PeerMessage>,
    stop: watch::Receiver<StopMode>,
) {
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("messaging accept failed: {e}");
                tokio::time::sleep(BACKOFF_INITIAL).await;
                continue;
            }
        };
        crate::sockets::set_keepalive(&stream, &settings.cluster.tcp_keepalive);
        let settings = Arc::clone(&settings);
        let inbound = inbound.clone();
        let mut stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = receive(settings, stream, inbound) => {
                    if let Err(e) = r {
                        tracing::warn!(%addr, "messaging connection closed: {e}");
                    }
                }
                _ = stopped(&mut stop) => {}
            }
        });
    }
}

async fn read_str<S: AsyncRead + Unpin>(stream: &mut S, field: &str) -> Result<String, String> {
    let len = stream
        .read_u32_le()
        .await
        .map_err(|e| format!("handshake {field}: {e}"))? as usize;
    if len > HANDSHAKE_STRING_MAX {
        return Err(format!(
            "handshake {field}: {len} bytes, at most {HANDSHAKE_STRING_MAX}"
        ));
    }
    let mut buf = vec![0u8; len];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| format!("handshake {field}: {e}"))?;
    String::from_utf8(buf).map_err(|_| format!("handshake {field}: not UTF-8"))
}

/// Reads and checks a handshake; `Err(reason)`: refuse it.
async fn read_handshake<S: AsyncRead + Unpin>(
    settings: &Settings,
    stream: &mut S,
) -> Result<NodeId, String> {
    let mut magic = [0u8; 8];
    stream
        .read_exact(&mut magic)
        .await
        .map_err(|e| format!("handshake magic: {e}"))?;
    if magic[0] == tls::HANDSHAKE_RECORD {
        return Err(
            "the peer began a TLS handshake and this node has no TLS ([global] tls_ca_cert): \
             every node needs the same TLS settings"
                .to_string(),
        );
    }
    if &magic != HANDSHAKE_MAGIC {
        return Err(format!(
            "handshake magic {:?} is not {:?} (not an arakoon-rs node?)",
            magic.escape_ascii().to_string(),
            "ARKRSMSG"
        ));
    }
    let version = stream
        .read_u32_le()
        .await
        .map_err(|e| format!("handshake version: {e}"))?;
    if version != MESSAGING_VERSION {
        return Err(format!(
            "messaging version {version}, this node speaks {MESSAGING_VERSION}"
        ));
    }
    let cluster_id = read_str(stream, "cluster_id").await?;
    let from = read_str(stream, "from").await?;
    let to = read_str(stream, "to").await?;
    if cluster_id != settings.cluster.cluster_id {
        return Err(format!(
            "cluster id {cluster_id:?}, this node is in {:?}",
            settings.cluster.cluster_id
        ));
    }
    if to != settings.node().name {
        return Err(format!(
            "addressed to node {to:?}, this is {:?}",
            settings.node().name
        ));
    }
    match settings.id_of(&from) {
        Some(id) if id != settings.id() => Ok(id),
        _ => Err(format!(
            "sender {from:?} is not another node of this cluster"
        )),
    }
}

/// With TLS, the handshake (within [`HANDSHAKE_TIMEOUT`]); a plaintext
/// peer is refused in our handshake's own terms, so that it logs why.
async fn secure(settings: &Settings, tcp: TcpStream) -> Result<Stream, String> {
    let Some(node_tls) = &settings.tls else {
        return Ok(Stream::Plain(tcp));
    };
    let accepted = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tls::accept(&node_tls.messaging_acceptor, tcp),
    )
    .await
    .map_err(|_| format!("no TLS handshake within {HANDSHAKE_TIMEOUT:?}"))?;
    match accepted {
        Ok(stream) => Ok(stream),
        Err((e @ tls::AcceptError::Plaintext(_), Some(mut tcp))) => {
            let reason = "this node's messaging port speaks TLS ([global] tls_ca_cert) and \
                          the peer does not: every node needs the same TLS settings";
            let mut answer = vec![1u8];
            put_str(&mut answer, reason.as_bytes());
            let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, tcp.write_all(&answer)).await;
            Err(format!("refused: {e}: {reason}"))
        }
        Err((e, _)) => Err(format!(
            "refused: {e} (a peer needs a certificate signed by the CA in tls_ca_cert)"
        )),
    }
}

async fn receive(
    settings: Arc<Settings>,
    tcp: TcpStream,
    inbound: mpsc::Sender<PeerMessage>,
) -> Result<(), String> {
    let _ = tcp.set_nodelay(true);
    let mut stream = secure(&settings, tcp).await?;
    let checked = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_handshake(&settings, &mut stream))
        .await
        .unwrap_or_else(|_| Err(format!("no handshake within {HANDSHAKE_TIMEOUT:?}")));
    let peer = match checked {
        Ok(peer) => {
            stream
                .write_u8(0)
                .await
                .map_err(|e| format!("handshake answer: {e}"))?;
            peer
        }
        Err(reason) => {
            let mut answer = vec![1u8];
            put_str(&mut answer, reason.as_bytes());
            let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.write_all(&answer)).await;
            return Err(format!("handshake refused: {reason}"));
        }
    };
    let peer_name = settings.name_of(peer).to_string();
    tracing::debug!(peer = %peer_name, "messaging connection accepted");
    let max = settings.decode_limits.max_message_bytes;
    let mut stream = tokio::io::BufReader::with_capacity(256 << 10, stream);
    loop {
        let len = match stream.read_u32_le().await {
            Ok(len) => len as usize,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(format!("from {peer_name}: {e}")),
        };
        if len > max {
            return Err(format!(
                "from {peer_name}: frame of {len} bytes, the limit is {max}"
            ));
        }
        let mut buf = vec![0u8; len];
        stream
            .read_exact(&mut buf)
            .await
            .map_err(|e| format!("from {peer_name}: {e}"))?;
        let msg = replica::peer::decode(&buf, &settings.decode_limits)
            .map_err(|e| format!("from {peer_name}: undecodable message: {e}"))?;
        if msg.from() != peer || msg.to() != settings.id() {
            return Err(format!(
                "from {peer_name}: message claims to be from {} to {}",
                msg.from(),
                msg.to()
            ));
        }
        if inbound.send(msg).await.is_err() {
            return Ok(()); // the driver is gone
        }
    }
}
