//! [`Env`]: what the replica needs of the world it runs in.

use crate::peer::SnapshotMessage;
use crate::published::Published;
use crate::updates::UpdateAnswer;
use consensus::{Message, RoleChange, Time};
use protocol::Update;
use tlog::{SyncJob, Synced, TlogError};

/// The outcome of [`Env::sync`].
#[derive(Debug)]
pub enum SyncOutcome {
    /// The fsync ran; here is its result.
    Done(Result<Synced, TlogError>),
    /// The fsync runs elsewhere; its result comes with
    /// [`crate::Replica::sync_finished`]. No other fsync is started
    /// meanwhile, and new updates wait for the next entry (group commit).
    Pending,
}

/// The world around one replica. The node implements it with its clock,
/// its messaging tasks, the connections' answer channels and a `watch` of
/// the published state; the simulator with its virtual clock, its network
/// and its clients.
pub trait Env {
    /// What the caller needs to answer one update (a connection's channel,
    /// a simulated client's request).
    type Waiter;

    /// The node's monotonic local time.
    fn now(&self) -> Time;

    /// Queues a message to another node. Never blocks.
    fn send(&mut self, message: &Message);

    /// The state readers go by changed (see [`Published`]).
    fn publish(&mut self, published: &Published);

    /// The answer to an update: `index` is the entry that carried it, if it
    /// was proposed. `direct`: the entry had few updates, and the caller's
    /// fast path may deliver it straight away (the node writes a plain
    /// success to the client's socket itself); with many, the caller's
    /// connections deliver it, in parallel with the next round.
    fn answer(
        &mut self,
        waiter: Self::Waiter,
        index: Option<u64>,
        answer: UpdateAnswer,
        direct: bool,
    );

    /// Makes the tlog durable up to the job's index: now (the node), or
    /// later (the simulator, whose fsyncs take simulated time).
    fn sync(&mut self, job: SyncJob) -> SyncOutcome;

    /// `entries` were appended to the tlog (written, not yet fsynced);
    /// `started` is [`Env::now`] just before the append. For observers
    /// (the node's metrics time the append and count what each fsync
    /// makes durable); nothing depends on it.
    fn appended(&mut self, _entries: &[tlog::Entry], _started: Time) {}

    /// A change of role or master (one log line each).
    fn role_changed(&mut self, _change: &RoleChange) {}

    /// Consecutive entries were applied to the store in one transaction
    /// (`updates[k]` are the decoded updates of `entries[k]`; a barrier has
    /// none). For observers (the simulator's checks).
    fn applied(
        &mut self,
        _entries: &[tlog::Entry],
        _updates: &[Vec<Update>],
        _store: &store::Store,
    ) {
    }

    /// Queues a message of a snapshot transfer to another node (to
    /// `message.to()`). Never blocks.
    fn send_snapshot(&mut self, message: &SnapshotMessage);

    /// A store snapshot of the log entry `(index, term)` was installed (the
    /// store holds it, the tlog is rebased on it). For observers.
    fn snapshot_installed(&mut self, _index: u64, _term: u64, _store: &store::Store) {}

    /// A step of a tlog collapse removed a segment (see `collapse.rs`):
    /// the node streams it to the client that asked for the collapse.
    fn collapsed(&mut self, _progress: &crate::collapse::CollapseProgress) {}
}
