//! The seam to the caller's log (the tlog): [`LogRead`], and the core's view
//! of it with the not-yet-taken `Ready` overlaid.
//!
//! The core never holds the whole log. It reads the caller's log through
//! [`LogRead`], and keeps only what it produced since the caller last took a
//! `Ready` (a suffix to truncate and entries to append). Invariant: after
//! `take_ready`, the caller applies that truncation and those appends to its
//! log before the next call into the core, so that the caller's log, plus the
//! core's pending overlay, is the node's log.

use crate::types::Entry;

/// Why the log could not answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// The index lies before the log's base: it was collapsed into a snapshot.
    #[error("log index {index} is compacted (collapsed into a snapshot)")]
    Compacted { index: u64 },
    /// The index lies after the log's last entry.
    #[error("log index {index} is past the last entry")]
    Unavailable { index: u64 },
    /// The storage failed; the node should stop.
    #[error("log storage failed: {message}")]
    Storage { message: String },
}

/// Read access to the caller's log. Indexes start at 1. The log has a base
/// `(first_index - 1, term)`: `(0, 0)` for a fresh log, `(snapshot_index,
/// snapshot_term)` after a snapshot or a collapse. Entries appended but not yet
/// fsynced are included: the log is what was appended, durable or not.
pub trait LogRead {
    /// Index of the first entry held (`base + 1`; 1 for a fresh log).
    fn first_index(&self) -> u64;
    /// Index of the last entry (`base` when no entry is held).
    fn last_index(&self) -> u64;
    /// Term of the entry at `index`, for `first_index - 1 ..= last_index`
    /// (the base's term for `first_index - 1`; 0 for index 0).
    /// `Compacted` below, `Unavailable` above.
    fn term(&self, index: u64) -> Result<u64, LogError>;
    /// Entries `from ..= to` in order, stopping before the total of
    /// [`Entry::size_bytes`] would exceed `max_bytes`, but always at least
    /// one entry when `from <= to`.
    fn entries(&self, from: u64, to: u64, max_bytes: u64) -> Result<Vec<Entry>, LogError>;
}

/// What the core produced since the last `take_ready`: remove the entries
/// after `truncate_after` (if set), then append `entries`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Pending {
    pub(crate) truncate_after: Option<u64>,
    pub(crate) entries: Vec<Entry>,
}

impl Pending {
    pub(crate) fn is_empty(&self) -> bool {
        self.truncate_after.is_none() && self.entries.is_empty()
    }

    /// Last index of the caller's log that survives the pending truncation.
    pub(crate) fn stable_last(&self, log: &dyn LogRead) -> u64 {
        let last = log.last_index();
        match self.truncate_after {
            Some(t) => t.min(last),
            None => last,
        }
    }

    pub(crate) fn last_index(&self, log: &dyn LogRead) -> u64 {
        match self.entries.last() {
            Some(e) => e.index,
            None => self.stable_last(log),
        }
    }

    pub(crate) fn term(&self, log: &dyn LogRead, index: u64) -> Result<u64, LogError> {
        let stable = self.stable_last(log);
        if index <= stable {
            return log.term(index);
        }
        let offset =
            usize::try_from(index - stable - 1).map_err(|_| LogError::Unavailable { index })?;
        self.entries
            .get(offset)
            .map(|e| e.term)
            .ok_or(LogError::Unavailable { index })
    }

    pub(crate) fn last_term(&self, log: &dyn LogRead) -> Result<u64, LogError> {
        self.term(log, self.last_index(log))
    }

    /// Drops every entry after `index`.
    pub(crate) fn truncate_after(&mut self, log: &dyn LogRead, index: u64) {
        let stable = self.stable_last(log);
        if index >= stable {
            let keep = usize::try_from(index - stable).unwrap_or(usize::MAX);
            self.entries.truncate(keep);
        } else {
            self.entries.clear();
            self.truncate_after = Some(index);
        }
        assert!(
            self.last_index(log) <= index,
            "truncation left entries after {index}"
        );
    }

    pub(crate) fn append(&mut self, log: &dyn LogRead, entry: Entry) {
        // Log matching needs a gapless log: every append extends the last entry.
        assert_eq!(
            entry.index,
            self.last_index(log) + 1,
            "log append leaves a gap"
        );
        self.entries.push(entry);
    }

    /// Entries `from ..= to`, bounded by `max_bytes` as [`LogRead::entries`].
    pub(crate) fn entries(
        &self,
        log: &dyn LogRead,
        from: u64,
        to: u64,
        max_bytes: u64,
    ) -> Result<Vec<Entry>, LogError> {
        let stable = self.stable_last(log);
        let mut out = Vec::new();
        let mut bytes = 0u64;
        if from <= to.min(stable) {
            let upto = to.min(stable);
            out = log.entries(from, upto, max_bytes)?;
            if out.is_empty() {
                return Err(LogError::Storage {
                    message: format!("log returned no entry for {from}..={upto}"),
                });
            }
            for (k, e) in out.iter().enumerate() {
                if e.index != from + k as u64 {
                    return Err(LogError::Storage {
                        message: format!(
                            "log returned index {} at position {k} from {from}",
                            e.index
                        ),
                    });
                }
            }
            bytes = out.iter().map(Entry::size_bytes).sum();
            if out.len() as u64 != upto - from + 1 {
                return Ok(out); // byte limit reached inside the stable log
            }
        }
        for e in &self.entries {
            if e.index < from || e.index > to {
                continue;
            }
            if !out.is_empty() && bytes + e.size_bytes() > max_bytes {
                break;
            }
            bytes += e.size_bytes();
            out.push(e.clone());
        }
        Ok(out)
    }
}
