//! [`ReplicaError`]: what stops a replica (its storage failed, or the core
//! refused what its own caller did). Refused messages from peers are not
//! errors of the replica: [`crate::Replica::step`] hands them back.

use std::path::PathBuf;

/// Why the replica cannot go on; the node stops.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    /// The tlog failed (an IO error, a failed fsync: the tlog is poisoned).
    #[error("tlog {}: {source}", dir.display())]
    Tlog {
        dir: PathBuf,
        #[source]
        source: tlog::TlogError,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// Anything else that must stop the node: the core refused an input of
    /// the replica's own (a bug), or a committed entry cannot be read back.
    #[error("{what}: {detail}")]
    Fatal { what: &'static str, detail: String },
}

impl ReplicaError {
    pub(crate) fn fatal(what: &'static str, detail: impl std::fmt::Display) -> ReplicaError {
        ReplicaError::Fatal {
            what,
            detail: detail.to_string(),
        }
    }
}
