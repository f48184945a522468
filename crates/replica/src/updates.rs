//! Client updates on their way: queued until the next entry, pending until
//! committed or applied, and how they end ([`UpdateAnswer`], [`Refused`]).

use consensus::NodeId;
use protocol::Update;
use store::UpdateResult;

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
    /// This node's disk is full (why, naming the directory): nothing was
    /// done.
    DiskFull(String),
    /// The update is too large for one entry.
    TooLarge { bytes: usize, limit: u64 },
}

/// The answer to an update: the store's result for it, or why there is none.
pub type UpdateAnswer = Result<UpdateResult, Refused>;

/// A waiter with what the replica knows of its update's result ahead of
/// the apply.
#[derive(Debug)]
pub(crate) struct Waiting<W> {
    pub waiter: W,
    /// The update's result, if the store cannot change it
    /// ([`store::result_before_apply`]): answered once committed.
    pub before_apply: Option<UpdateResult>,
    /// The update itself, kept only by the broken variant that answers
    /// store-dependent updates at commit.
    #[cfg(feature = "broken")]
    pub update: Option<Update>,
}

/// An update waiting for the next entry.
#[derive(Debug)]
pub(crate) struct Queued<W> {
    pub update: Update,
    pub encoded_len: usize,
    pub waiting: Waiting<W>,
}

/// A proposed entry's updates: its term, and each update's waiter in order
/// (`None` once answered ahead of the apply).
#[derive(Debug)]
pub(crate) struct Proposal<W> {
    pub term: u64,
    pub waiting: Vec<Option<Waiting<W>>>,
}
