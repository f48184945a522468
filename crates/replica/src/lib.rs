//! `replica`: the replication driver of one node, the one both the real node
//! (`crates/node`) and the simulator (`crates/sim`) run. It owns everything
//! between the consensus [`Core`](consensus::Core) and the outside world:
//!
//! - the caller's loop of the consensus crate over a `Ready`: the hard state
//!   made durable before any message, truncation and appends to the tlog,
//!   the fsync and the synced index back to the core ([`Replica::settle`]);
//! - the client updates: queued, batched into one entry per round (group
//!   commit), and answered *at commit* when the store cannot change their
//!   result (`set`, `nop`, sequences of those), *after the apply* otherwise;
//!   another term at their index, or lost mastership, answers
//!   `NoLongerMaster`;
//! - the applying pace: a master applies at once; any other node holds
//!   committed entries back for up to `slave_apply_delay`, or until 64 wait,
//!   an `AtLeast` read asks ([`Replica::want_apply`]), it becomes master, or
//!   it stops;
//! - store checkpoints; and the state readers go by ([`Published`]): role,
//!   lease (`consensus::Lease`: read index and end), applied and answered
//!   indices, and a catch-up in progress ([`progress`]: logged with its
//!   rate and time left, here and, on the master, for each peer);
//! - the read gates ([`reads`]): when a `Consistent`, `AtLeast(i)` or
//!   `NoGuarantee` read may be served, given the published state.
//!
//! It does no IO of its own but the tlog's and the store's (which go through
//! the disk seam: the real disk in the node, the simulated one in the
//! simulator); time, messages, answers, the fsync and publication go through
//! the caller's [`Env`].
//!
//! # How a caller drives it
//!
//! After one input or a batch of them ([`Replica::step`], [`Replica::tick`],
//! [`Replica::submit`], [`Replica::drop_master`], [`Replica::want_apply`],
//! [`Replica::wake`]), call [`Replica::settle`] until it returns
//! [`Settle::Done`]. `Settle::Yield` means: messages were queued that should
//! leave before the next step (the node yields to its messaging tasks; the
//! simulator has nothing to do). The fsync goes through [`Env::sync`]: done
//! at once (the node runs it inline), or later (the simulator), then
//! [`Replica::sync_finished`]. Wake the replica at [`Replica::wake_at`].
//!
//! # Invariants
//!
//! - Hard state is durable before any message of the same `Ready` leaves.
//! - A client is answered success only after its entry is committed (a
//!   quorum fsynced it, this node included): after the apply, or, for an
//!   update whose result the store cannot change, before it, once its index
//!   was published as `answered_index` (no read here is served from a store
//!   short of it: see [`reads`]).
//! - The published lease is the core's, never longer.
//! - Committed entries are applied in order, each exactly once, from the
//!   tlog; the store's applied index never passes the commit index handed
//!   out by the core.
//! - A full disk stops nothing ([`disk_full`]): what the tlog cannot take
//!   is held and never reported synced; updates are refused and a master
//!   hands mastership over until the tlog takes writes again.
//!
//! # Snapshots
//!
//! [`collapse`]: old, full tlog segments that the store holds durably are
//! removed, on request ([`Replica::collapse`], `collapse_tlogs`) or by the
//! automatic policy (`Settings::auto_collapse_keep`), one segment per step,
//! paced so that the node serves clients in between; never an entry above
//! the store's durable applied index, and, on a master, holding back a
//! bounded number of segments for a peer that lags a little.
//!
//! A peer that needs entries this node's tlog no longer holds gets a store
//! snapshot, sent and installed here ([`snapshot`]), over the caller's
//! transport ([`Env::send_snapshot`], [`Replica::step_snapshot`]; the wire
//! form of every peer message is [`peer`]).

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod apply;
#[cfg(feature = "broken")]
mod broken;
pub mod collapse;
pub mod disk_full;
mod env;
mod error;
pub mod peer;
pub mod progress;
mod published;
pub mod reads;
mod replica;
mod settings;
pub mod snapshot;
mod updates;

pub use collapse::{CollapseOrigin, CollapseProgress, CollapseRefused};
pub use env::{Env, SyncOutcome};
pub use error::ReplicaError;
pub use peer::{AckStatus, PeerMessage, SnapshotMessage};
pub use published::{Published, SnapshotProgress};
pub use replica::{Replica, Settle};
#[cfg(feature = "broken")]
pub use settings::Broken;
pub use settings::Settings;
pub use snapshot::reconcile_storage;
pub use updates::{Refused, UpdateAnswer};

/// What the replica needs of the store: the store itself, however the
/// caller shares it (the node with its connections, the simulator not at
/// all).
pub trait StoreAccess {
    /// The store.
    fn store(&self) -> &store::Store;
}

impl StoreAccess for store::Store {
    fn store(&self) -> &store::Store {
        self
    }
}

impl<T: StoreAccess + ?Sized> StoreAccess for std::sync::Arc<T> {
    fn store(&self) -> &store::Store {
        (**self).store()
    }
}
