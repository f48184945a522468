//! What the driver shares with the client service: the requests it takes
//! (updates, drop-master, collapse), how an update's answer comes back ([`Answered`],
//! [`DirectReply`]), and the store both use. The state readers go by is
//! the replica's `Published` (see `crates/replica`), sent through a `watch`.

pub use crate::answer::Answered;
use protocol::Update;
pub use replica::Refused;
use tokio::sync::oneshot;

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
        reply: crate::answer::AnswerSender,
        /// Where the driver may write the success answer itself.
        direct: Option<DirectReply>,
    },
    /// The term of the tlog's entry `index`, if the tlog holds it (for a
    /// `get_db` copy to record the entry it is the state after).
    TermOf {
        index: u64,
        reply: tokio::sync::oneshot::Sender<Option<u64>>,
    },
    /// The tlog's range, and the term of its entry `term_at` if it holds
    /// it (`inspect`).
    TlogFacts {
        term_at: Option<u64>,
        reply: tokio::sync::oneshot::Sender<TlogFacts>,
    },
    /// Give up mastership to a caught-up voter (`drop_master`).
    DropMaster {
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Collapse the tlog keeping `tlogs_to_keep` segments
    /// (`collapse_tlogs`): `started` gets the count of segments the run
    /// removes (or why it was refused); then `progress` gets the time since
    /// the start after each one (at most `count` values; closed early if
    /// the node stops).
    Collapse {
        tlogs_to_keep: i32,
        started: oneshot::Sender<Result<u32, replica::CollapseRefused>>,
        progress: tokio::sync::mpsc::UnboundedSender<std::time::Duration>,
    },
}

/// What the driver tells of its tlog for `inspect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlogFacts {
    pub first_index: u64,
    pub last_index: u64,
    /// The term of the entry asked about, if the tlog holds it.
    pub term_at: Option<u64>,
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

impl replica::StoreAccess for SharedStore {
    fn store(&self) -> &store::Store {
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
