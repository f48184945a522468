//! The master's view of one peer's replication: how far its log matches
//! (`match_index`), what to send next (`next_index`), and the flow-control
//! state (etcd's Probe / Replicate / Snapshot).
//!
//! Invariants: `match_index < next_index`; `match_index` never decreases
//! within a term; in `Replicate`, `inflight` holds the last index of every
//! append in flight, strictly increasing, at most `max_inflight_appends`.

use crate::types::Time;
use std::collections::VecDeque;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FlowState {
    /// Unknown match point: one append at a time (`probe_sent`), until an
    /// acknowledgement says where the peer's log matches.
    Probe { probe_sent: bool },
    /// Known match point: appends pipelined, `next_index` advanced optimistically.
    Replicate,
    /// The peer needs entries the log no longer has; the caller was asked to
    /// send it a snapshot. Probing again after `deadline`.
    Snapshot { deadline: Time },
}

#[derive(Clone, Debug)]
pub(crate) struct Progress {
    pub(crate) match_index: u64,
    pub(crate) next_index: u64,
    pub(crate) state: FlowState,
    pub(crate) inflight: VecDeque<u64>,
    /// Latest master `sent_at` this peer echoed in this term (lease).
    pub(crate) acked_sent_at: Option<Time>,
    /// When a heartbeat response last freed a slot of a full window.
    pub(crate) slot_freed_at: Option<Time>,
    /// Send an append even with no new entry (acknowledgements may be lost).
    pub(crate) empty_append_due: bool,
    /// The highest commit index any message of this term told the peer.
    pub(crate) commit_sent: u64,
    /// The peer's incarnation whose responses this progress follows (the
    /// first one heard in this term, or the one it came back with).
    pub(crate) incarnation: Option<u64>,
    /// The peer said it is recovering: it counts toward neither a commit
    /// nor the lease.
    pub(crate) recovering: bool,
}

impl Progress {
    pub(crate) fn new(next_index: u64) -> Progress {
        Progress {
            match_index: 0,
            next_index,
            state: FlowState::Probe { probe_sent: false },
            inflight: VecDeque::new(),
            acked_sent_at: None,
            slot_freed_at: None,
            empty_append_due: false,
            commit_sent: 0,
            incarnation: None,
            recovering: false,
        }
    }

    pub(crate) fn check(&self, max_inflight_appends: usize) {
        assert!(
            self.match_index < self.next_index,
            "progress: match {} >= next {}",
            self.match_index,
            self.next_index
        );
        assert!(
            self.inflight.len() <= max_inflight_appends,
            "progress: too many appends in flight"
        );
        assert!(self
            .inflight
            .iter()
            .zip(self.inflight.iter().skip(1))
            .all(|(a, b)| a < b));
        if self.state != FlowState::Replicate {
            assert!(
                self.inflight.is_empty(),
                "progress: inflight outside replicate"
            );
        }
    }

    pub(crate) fn become_probe(&mut self) {
        self.state = FlowState::Probe { probe_sent: false };
        self.inflight.clear();
    }

    pub(crate) fn become_replicate(&mut self) {
        self.state = FlowState::Replicate;
        self.inflight.clear();
        self.next_index = self.next_index.max(self.match_index + 1);
    }

    /// The peer durably matches up to `index`. Returns true if that is news.
    pub(crate) fn record_match(&mut self, index: u64) -> bool {
        while self.inflight.front().is_some_and(|&last| last <= index) {
            self.inflight.pop_front();
        }
        if index <= self.match_index {
            return false;
        }
        self.match_index = index;
        self.next_index = self.next_index.max(index + 1);
        true
    }

    pub(crate) fn record_ack_sent_at(&mut self, sent_at: Time) {
        self.acked_sent_at = Some(self.acked_sent_at.map_or(sent_at, |t| t.max(sent_at)));
    }
}
