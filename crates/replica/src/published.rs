//! [`Published`]: the replica's state as readers see it.
//!
//! The replica publishes after every round, *before* the round's messages
//! leave (a hand-over forfeits the lease before `TimeoutNow` goes, and
//! readers see the forfeit before the target can campaign), again before it
//! answers an update ahead of the apply (`answered_index`), and after it
//! applies. Readers go by it alone: the node's connections through a
//! `watch`, the simulator's pending reads directly.

use crate::progress::CatchUp;
use consensus::{Lease, NodeId, Role, Standing};

/// The replica's state, as readers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub role: Role,
    /// Whether this node votes and counts (`Recovering`: it lost its disk
    /// and catches up first).
    pub standing: Standing,
    pub term: u64,
    pub master: Option<NodeId>,
    /// The lease the master holds (the core's, never longer): a
    /// `Consistent` read may be served at local times before `until` once
    /// the store applied `read_index`.
    pub lease: Option<Lease>,
    pub commit_index: u64,
    pub applied_index: u64,
    /// The highest index of an update this node answered, possibly before
    /// the store applied it: no read is served here from a store that has
    /// not applied it.
    pub answered_index: u64,
    pub tlog_last_index: u64,
    /// On the master: each peer's match index.
    pub peers_match: Vec<(NodeId, u64)>,
    /// The node is stopping: readers and writers are told so.
    pub going_down: bool,
    /// This node's store catching up with the commit index, when it is far
    /// behind (see [`crate::progress`]).
    pub catch_up: Option<CatchUp>,
    /// A store snapshot being received ([`crate::snapshot`]).
    pub snapshot: Option<SnapshotProgress>,
    /// On the master: how many snapshot transfers it sends.
    pub snapshots_sending: usize,
}

/// A store snapshot being received, as published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotProgress {
    /// The sender.
    pub from: NodeId,
    /// The snapshot's index.
    pub index: u64,
    /// Pairs received so far, of `pairs_total` (the sender's count).
    pub pairs_done: u64,
    pub pairs_total: u64,
    pub bytes: u64,
    /// Over the whole transfer so far.
    pub bytes_per_second: u64,
}

impl std::fmt::Display for SnapshotProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{} pairs, {} bytes at {} bytes/s",
            self.pairs_done, self.pairs_total, self.bytes, self.bytes_per_second
        )?;
        if self.bytes_per_second > 0 && self.pairs_done > 0 {
            let bytes_per_pair = self.bytes as f64 / self.pairs_done as f64;
            let left = self.pairs_total.saturating_sub(self.pairs_done) as f64 * bytes_per_pair;
            write!(
                f,
                ", about {:.0} s left",
                left / self.bytes_per_second as f64
            )?;
        }
        Ok(())
    }
}

impl Published {
    /// The state of a node that has not run a round yet.
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
            catch_up: None,
            snapshot: None,
            snapshots_sending: 0,
        }
    }
}
