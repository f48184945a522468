//! Messages between consensus cores. Every message carries the sender's term
//! `n`; the body says what it is.
//!
//! Times in messages (`sent_at`) are the *master's* local time when it sent
//! an `Append` or `Heartbeat`; a slave echoes the latest one it received in
//! its responses, and only the master that produced it ever interprets it
//! (for its lease). No node compares its clock with another node's.

use crate::types::{Entry, NodeId, Standing, Time};

/// A message from one core to another.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The receiver.
    pub to: NodeId,
    /// The sender's term `n` (for `PreVote`, the term it would campaign in;
    /// for a granted `PreVoteResponse`, that same term).
    pub term: u64,
    /// What the message says.
    pub body: Body,
}

/// What a message says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// "Would you vote for me in `term`?" Changes no state at the receiver.
    PreVote {
        last_index: u64,
        last_term: u64,
    },
    PreVoteResponse {
        granted: bool,
    },
    /// "Vote for me in `term`." `transfer`: the candidate was handed
    /// mastership by the master (`TimeoutNow`), so a granted lease does not
    /// stand in the way (the master gave it up first).
    Vote {
        last_index: u64,
        last_term: u64,
        transfer: bool,
    },
    VoteResponse {
        granted: bool,
    },
    /// Entries `prev_index + 1 ..` (possibly none: a probe), if the receiver's
    /// entry at `prev_index` has `prev_term`. `slave_incarnation`: the
    /// receiver's incarnation as the master knows it in this term (0 if it
    /// has heard none); a recovering slave takes its catch-up target only
    /// from a master that knows its new incarnation.
    Append {
        prev_index: u64,
        prev_term: u64,
        commit: u64,
        sent_at: Time,
        slave_incarnation: u64,
        entries: Vec<Entry>,
    },
    /// `incarnation`: the sender's; `recovering`: the sender does not count
    /// toward a commit or a lease (it is not `Trusted`).
    AppendResponse {
        sent_at: Time,
        result: AppendResult,
        incarnation: u64,
        recovering: bool,
    },
    /// Liveness, commit index and lease renewal, no entries.
    Heartbeat {
        commit: u64,
        sent_at: Time,
        slave_incarnation: u64,
    },
    HeartbeatResponse {
        sent_at: Time,
        /// The slave's commit index. Below the master's, the slave holds
        /// entries it has not yet verified against this term's master (after
        /// a restart, say): the master then sends an append (empty if nothing
        /// is new) so the slave can verify them and advance.
        commit: u64,
        incarnation: u64,
        recovering: bool,
    },
    /// "Campaign now": the master hands mastership to the receiver.
    TimeoutNow,
    /// From a node that is not `Trusted`, to every other voter: "what is
    /// your term, your standing, your last index?" Changes nothing at the
    /// receiver. `asked_at`: the asker's local time, echoed.
    RecoveryQuery {
        asked_at: Time,
    },
    /// The answer; the message's term is the answerer's current term.
    RecoveryReply {
        asked_at: Time,
        standing: Standing,
        last_index: u64,
    },
}

/// A slave's answer to `Append`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppendResult {
    /// The slave's log matches the master's up to `match_index`, durably.
    Accepted { match_index: u64 },
    /// The entry at `rejected_prev_index` did not match (or was missing).
    /// `(hint_index, hint_term)`: the slave's last entry at or below
    /// `rejected_prev_index` whose term is at most the rejected `prev_term`
    /// (hint_term 0 when unknown), so the master can skip a whole term at once.
    Rejected {
        rejected_prev_index: u64,
        hint_index: u64,
        hint_term: u64,
    },
}

impl Body {
    /// Short name for logs and traces.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::PreVote { .. } => "pre_vote",
            Body::PreVoteResponse { .. } => "pre_vote_response",
            Body::Vote { .. } => "vote",
            Body::VoteResponse { .. } => "vote_response",
            Body::Append { .. } => "append",
            Body::AppendResponse { .. } => "append_response",
            Body::Heartbeat { .. } => "heartbeat",
            Body::HeartbeatResponse { .. } => "heartbeat_response",
            Body::TimeoutNow => "timeout_now",
            Body::RecoveryQuery { .. } => "recovery_query",
            Body::RecoveryReply { .. } => "recovery_reply",
        }
    }
}
