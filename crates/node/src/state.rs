//! What the driver shares with the client service: the requests it takes
//! (updates, drop-master) and the state it publishes after every round
//! (role, master, lease, applied index), so that reads never queue behind
//! the driver.
//!
//! # The lease as published
//!
//! After every round, *before* the round's messages leave, the driver
//! publishes `lease = Some((read_index, until))` when the core holds the
//! lease: `read_index` is the core's `consistent_read_index`, `until` the
//! first local time at which the core would no longer answer it (found by
//! asking the core, which is pure, for later times). A reader that sees
//! `now < until` may serve a `Consistent` read once the store has applied
//! `read_index`. Publishing before sending matters for a hand-over: the core
//! forfeits the lease before it sends `TimeoutNow`, and readers see the
//! forfeit before the target can campaign.

use consensus::{NodeId, Role, Standing, Time};
use protocol::Update;
use store::UpdateResult;
use tokio::sync::oneshot;

/// The master's lease as the driver last published it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Apply at least this far before serving a `Consistent` read.
    pub read_index: u64,
    /// Local time (the node's [`crate::clock::Clock`]) at which it lapses.
    pub until: Time,
}

/// The driver's state, as readers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub role: Role,
    /// Whether this node votes and counts (`Recovering`: it lost its disk
    /// and catches up first).
    pub standing: Standing,
    pub term: u64,
    pub master: Option<NodeId>,
    pub lease: Option<Lease>,
    pub commit_index: u64,
    pub applied_index: u64,
    /// The highest index of an update this node answered, possibly before
    /// the store applied it (see the driver's `answer_before_apply`): no
    /// read is served here from a store that has not applied it.
    pub answered_index: u64,
    pub tlog_last_index: u64,
    /// On the master: each peer's match index (`node_is` in statistics).
    pub peers_match: Vec<(NodeId, u64)>,
    /// The node is stopping: answer `E_GOING_DOWN`.
    pub going_down: bool,
}

impl Published {
    pub fn initial(
        role: Role,
        standing: Standing,
        term: u64,
        applied_index: u64,
        tlog_last_index: u64,
    ) -> Published {
        Published {
            role,
            standing,
            term,
            master: None,
            lease: None,
            commit_index: applied_index,
            applied_index,
            answered_index: 0,
            tlog_last_index,
            peers_match: Vec::new(),
            going_down: false,
        }
    }
}

/// Why an update was not applied (or its outcome is unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// This node is not master; the master's id if known. Nothing was done.
    NotMaster(Option<NodeId>),
    /// Proposed, then mastership was lost: the outcome is unknown.
    NoLongerMaster,
    /// The node is stopping; the update was not proposed (or its outcome is
    /// unknown if `proposed`).
    GoingDown { proposed: bool },
    /// The cluster is read-only.
    ReadOnly,
    /// The update is too large for one entry.
    TooLarge { bytes: usize, limit: u64 },
}

/// The answer to an update: the store's result once its entry is applied.
pub type UpdateAnswer = Result<UpdateResult, Refused>;

/// An answer as the driver hands it back to the connection.
#[derive(Debug)]
pub struct Answered {
    pub answer: UpdateAnswer,
    /// How many bytes of the encoded success answer the driver already
    /// wrote to the client's socket (see [`DirectReply`]); the connection
    /// writes the rest. Zero unless the answer is `Ok(Ok(store::UpdateOk::Done))`.
    pub written: usize,
    /// When the driver handed over an answer it wrote whole (quietly: the
    /// connection picks it up later, see `answer.rs`).
    pub quiet_at: Option<std::time::Instant>,
}

impl Answered {
    pub fn new(answer: UpdateAnswer) -> Answered {
        Answered {
            answer,
            written: 0,
            quiet_at: None,
        }
    }
}

/// The driver's way to answer an update on the client's socket without a
/// hop back to the connection's thread: the connection hands over a
/// duplicate of its socket (`dup`, so it stays valid whatever the
/// connection does) and the bytes of the answer it would send if the
/// update succeeds with `store::UpdateOk::Done`. Once the entry is committed
/// (or applied) with that result, the driver writes what the socket takes
/// without blocking and reports how much in [`Answered::written`]; an
/// answer it wrote whole it hands over quietly (`answer.rs`). The
/// connection writes nothing while it waits for the answer, so the bytes on
/// the wire are exactly what it would have written itself, in order.
#[derive(Debug)]
pub struct DirectReply {
    pub socket: std::sync::Arc<std::net::TcpStream>,
    pub done: Vec<u8>,
}

impl DirectReply {
    /// Writes as much of the success answer as the socket takes now.
    pub fn write_done(&self) -> usize {
        use std::io::Write;
        let mut written = 0;
        while written < self.done.len() {
            match (&*self.socket).write(&self.done[written..]) {
                Ok(0) => break,
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // WouldBlock, or a broken connection: the connection's own
                // write finishes the answer or reports the error.
                Err(_) => break,
            }
        }
        written
    }
}

/// What a connection asks of the driver.
#[derive(Debug)]
pub enum DriverRequest {
    Update {
        update: Update,
        /// Size of the update in a batch (cached, for batching limits).
        encoded_len: usize,
        reply: crate::answer::AnswerSender,
        /// Where the driver may write the success answer itself.
        direct: Option<DirectReply>,
    },
    /// Give up mastership to a caught-up voter (`drop_master`).
    DropMaster {
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// The store, shared by the driver and the connection tasks, that says when
/// it is closed: `released` is dropped after `store` (fields drop in
/// order), so its receiver learns that the file is closed (redb's own drop
/// writes to it) and may be opened again, e.g. by a restart in-process.
#[derive(Debug)]
pub struct SharedStore {
    store: store::Store,
    _released: oneshot::Sender<()>,
}

impl SharedStore {
    pub fn new(store: store::Store) -> (SharedStore, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (
            SharedStore {
                store,
                _released: tx,
            },
            rx,
        )
    }
}

impl std::ops::Deref for SharedStore {
    type Target = store::Store;

    fn deref(&self) -> &store::Store {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::Arc;

    fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (server, client)
    }

    #[test]
    fn a_direct_answer_is_written_whole_when_the_socket_takes_it() {
        let (server, mut client) = pair();
        server.set_nonblocking(true).unwrap();
        let direct = DirectReply {
            socket: Arc::new(server),
            done: vec![0, 0, 0, 0],
        };
        assert_eq!(direct.write_done(), 4);
        let mut got = [9u8; 4];
        client.read_exact(&mut got).unwrap();
        assert_eq!(got, [0, 0, 0, 0]);
    }

    #[test]
    fn a_full_socket_takes_a_prefix_and_the_write_never_blocks() {
        // More than any socket buffer: the non-blocking write stops early
        // and says how much went, so the connection can write the rest.
        let (server, mut client) = pair();
        server.set_nonblocking(true).unwrap();
        let done: Vec<u8> = (0..64u32 << 20).map(|i| (i % 251) as u8).collect();
        let direct = DirectReply {
            socket: Arc::new(server),
            done: done.clone(),
        };
        let written = direct.write_done();
        assert!(written > 0 && written < done.len(), "wrote {written}");
        let mut got = vec![0u8; written];
        client.read_exact(&mut got).unwrap();
        assert_eq!(
            got,
            done[..written],
            "the bytes written are the answer's prefix"
        );
    }
}
