//! Small value types shared by every module: time, node ids, log entries,
//! hard state, roles.

use bytes::Bytes;
use std::time::Duration;

/// A monotonic local time in nanoseconds, passed in by the caller. The core
/// never reads a clock; it only compares the times it is given, and only
/// times of one node with each other (echoed `sent_at` values come back to
/// the node that produced them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time(pub u64);

impl Time {
    /// The time in nanoseconds.
    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + period`, saturating at the end of time.
    pub fn plus(self, period: Duration) -> Time {
        Time(self.0.saturating_add(duration_nanos(period)))
    }

    /// `self - period`, saturating at zero.
    pub fn minus(self, period: Duration) -> Time {
        Time(self.0.saturating_sub(duration_nanos(period)))
    }
}

/// A duration in nanoseconds, saturating at `u64::MAX`.
pub(crate) fn duration_nanos(period: Duration) -> u64 {
    u64::try_from(period.as_nanos()).unwrap_or(u64::MAX)
}

/// A member of the cluster. The caller maps Arakoon's node names to ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "node_{}", self.0)
    }
}

/// Bytes an entry is counted as in batching limits: its payload plus the
/// fixed part of its wire encoding (index, term, payload length).
pub const ENTRY_OVERHEAD_BYTES: u64 = 8 + 8 + 4;

/// One position of the replicated log (the tlog): `i`, `n` and an opaque
/// payload (the caller's batch of updates). An empty payload is the master's
/// no-op barrier entry (appended when it takes office); the caller applies
/// nothing for it. `Core::propose` refuses empty payloads, so every empty
/// entry is such a barrier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Log index `i`, starting at 1.
    pub index: u64,
    /// Term `n` of the master that created the entry.
    pub term: u64,
    /// The caller's payload; empty for the master's barrier entry.
    pub payload: Bytes,
}

impl Entry {
    /// Size counted against `max_append_bytes`.
    pub fn size_bytes(&self) -> u64 {
        self.payload.len() as u64 + ENTRY_OVERHEAD_BYTES
    }

    /// True for the no-op barrier a new master appends.
    pub fn is_barrier(&self) -> bool {
        self.payload.is_empty()
    }
}

/// What must be durable before any message of the same `Ready` leaves the
/// node: the current term `n`, the vote given in it, and whether this
/// node's persisted state holds everything it ever promised (see
/// [`crate::recovery`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// Current term; never decreases.
    pub term: u64,
    /// The candidate this node voted for in `term`, if any.
    pub voted_for: Option<NodeId>,
    /// Identifies this node's state since it was last created empty: a node
    /// that loses its disk comes back with another one, and the master
    /// resets what it believed of the old one. Chosen by the caller at
    /// random when nothing was persisted; 0 for a state that predates
    /// incarnations.
    pub incarnation: u64,
    /// Whether the state can be trusted to hold every promise (vote,
    /// acknowledgement) this node ever made.
    pub standing: Standing,
}

impl HardState {
    /// The state of a node that found nothing persisted (an empty home, or
    /// a hard state it cannot read): it does not know whether it is new in
    /// a new cluster or lost its disk, and finds out by asking the others.
    /// `incarnation` must be fresh (random, non-zero).
    pub fn unknown(incarnation: u64) -> HardState {
        HardState {
            term: 0,
            voted_for: None,
            incarnation,
            standing: Standing::Unknown,
        }
    }
}

/// Whether a node's persisted state holds everything it ever promised.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Standing {
    /// Its hard state and log are what it made durable itself: a full voter.
    /// (Also a node that proved, by asking every other voter, that the
    /// cluster is new.)
    #[default]
    Trusted,
    /// It cannot vouch for what an earlier incarnation promised (its disk
    /// was wiped, its hard state was unreadable, its store was injected):
    /// it neither votes nor counts toward a commit or a lease until it has
    /// caught up (the crate doc says exactly when).
    Recovering,
    /// Nothing was persisted: new in a new cluster, or wiped. Decided by
    /// asking the other voters (then `Trusted` or `Recovering`).
    Unknown,
}

impl Standing {
    /// The wire and disk code of this standing.
    pub fn code(self) -> u8 {
        match self {
            Standing::Trusted => 0,
            Standing::Recovering => 1,
            Standing::Unknown => 2,
        }
    }

    /// The standing of a wire or disk code.
    pub fn from_code(code: u8) -> Option<Standing> {
        match code {
            0 => Some(Standing::Trusted),
            1 => Some(Standing::Recovering),
            2 => Some(Standing::Unknown),
            _ => None,
        }
    }
}

impl std::fmt::Display for Standing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Standing::Trusted => "trusted",
            Standing::Recovering => "recovering",
            Standing::Unknown => "unknown",
        })
    }
}

/// The part a node plays right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A voter following a master (or waiting for one).
    Slave,
    /// A voter asking whether it could win an election (pre-vote), without
    /// having changed its term.
    PreCandidate,
    /// A voter that raised its term and asks for votes.
    Candidate,
    /// The only node that accepts proposals in its term.
    Master,
    /// A non-voting member: receives the log, never votes, never campaigns.
    Learner,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Role::Slave => "slave",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Master => "master",
            Role::Learner => "learner",
        };
        f.write_str(name)
    }
}
