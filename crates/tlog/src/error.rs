//! The tlog's errors. Each names the file, byte offset or index it is about.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the tlog.
#[derive(Debug, thiserror::Error)]
pub enum TlogError {
    /// The operating system (or the simulated disk) refused an operation.
    #[error("{path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// Bytes on disk are not what the tlog wrote, somewhere a crash cannot
    /// explain. Never skipped: the node stops and an operator decides.
    #[error("{path} at byte {offset}: corrupt: {what}")]
    Corrupt {
        path: PathBuf,
        offset: u64,
        what: String,
    },
    /// Appended entries do not continue the log.
    #[error("append: expected index {expected}, got {got}")]
    NotContiguous { expected: u64, got: u64 },
    /// Appended entry's term is below the term of the entry before it.
    #[error("append: index {index} has term {term}, below term {prev_term} of the entry before")]
    TermDecreasing {
        index: u64,
        term: u64,
        prev_term: u64,
    },
    /// A payload above [`crate::PAYLOAD_LEN_MAX`].
    #[error(
        "append: index {index} has a payload of {len_bytes} bytes, above the limit of {max_bytes}"
    )]
    PayloadTooLarge {
        index: u64,
        len_bytes: u64,
        max_bytes: u64,
    },
    /// A read outside `[first_index, last_index + 1]`, or with `from > to`.
    #[error("read [{from}, {to}): outside the log [{first_index}, {last_index}]")]
    OutOfRange {
        from: u64,
        to: u64,
        first_index: u64,
        last_index: u64,
    },
    /// `truncate_suffix` below the first index (those entries are collapsed).
    #[error("truncate_suffix({from}): below the first index {first_index}")]
    TruncateBelowFirst { from: u64, first_index: u64 },
    /// `save_hard_state` with a term below the saved one.
    #[error("save_hard_state: term {term} is below the saved term {saved_term}")]
    HardStateTermRegress { term: u64, saved_term: u64 },
    /// An index beyond [`crate::INDEX_MAX`].
    #[error("index {index} is above the limit {max}")]
    IndexTooLarge { index: u64, max: u64 },
    /// Options out of their bounds.
    #[error("invalid tlog options: {0}")]
    InvalidOptions(String),
    /// An earlier write or fsync failed; the in-memory state may no longer
    /// match the disk (after a failed fsync, the kernel may have dropped the
    /// dirty pages), so the tlog refuses further work until it is reopened.
    #[error("tlog unusable after an earlier failure ({0}); reopen it")]
    Poisoned(String),
}

impl TlogError {
    /// The device is full (ENOSPC, or a quota: EDQUOT) and the operation
    /// that failed leaves the tlog as it was: a write, an allocation or a
    /// file's creation, never an fsync (after a failed fsync the kernel may
    /// have dropped dirty pages: that one poisons the tlog whatever its
    /// errno). The tlog stays usable; the same call may be retried once
    /// there is space again.
    pub fn is_no_space(&self) -> bool {
        match self {
            TlogError::Io { op, source, .. } => {
                matches!(*op, "write" | "allocate" | "create")
                    && matches!(
                        source.kind(),
                        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
                    )
            }
            _ => false,
        }
    }
}

/// Shorthand for an IO error with its path and operation.
pub(crate) fn io_err<'a>(
    path: &'a std::path::Path,
    op: &'static str,
) -> impl FnOnce(io::Error) -> TlogError + 'a {
    move |source| TlogError::Io {
        path: path.to_path_buf(),
        op,
        source,
    }
}

pub(crate) fn corrupt(path: &std::path::Path, offset: u64, what: impl Into<String>) -> TlogError {
    TlogError::Corrupt {
        path: path.to_path_buf(),
        offset,
        what: what.into(),
    }
}
