//! The store's errors: [`StoreError`] for what stops an operation (IO,
//! corruption, misuse), [`UpdateFailure`] for an update that was refused by
//! Arakoon's semantics (its entry is still applied, the index still advances).

use std::fmt;
use std::path::PathBuf;

/// At most this many bytes of a key are shown in an error message.
const KEY_SHOWN_MAX_BYTES: usize = 64;

/// A key as an error message shows it: printable ASCII as is, other bytes
/// escaped, long keys cut (with their length).
#[derive(Debug, Clone, Copy)]
pub struct ShowKey<'a>(pub &'a [u8]);

impl fmt::Display for ShowKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = &self.0[..self.0.len().min(KEY_SHOWN_MAX_BYTES)];
        write!(f, "\"{}\"", shown.escape_ascii())?;
        if shown.len() < self.0.len() {
            write!(f, "... ({} bytes)", self.0.len())?;
        }
        Ok(())
    }
}

/// Shows an optional key: the key, or `no key` for `None`.
pub struct ShowOptionKey<'a>(pub &'a Option<Vec<u8>>);

impl fmt::Display for ShowOptionKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(key) => ShowKey(key).fmt(f),
            None => f.write_str("no key"),
        }
    }
}

/// Why an operation of the store failed. Every variant names the store file
/// or the key it is about. (Fields are named for what they hold.)
#[allow(missing_docs)]
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed: an IO error of the disk, a corrupt file, a full disk.
    #[error("store {}: {source}", path.display())]
    Redb {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
    /// A file-system operation of the store itself failed.
    #[error("store {}: {what}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// redb panicked while opening the file: it is corrupt beyond what redb
    /// reports as an error.
    #[error("store {}: the file is corrupt (the database panicked on open: {message})", path.display())]
    OpenPanicked { path: PathBuf, message: String },
    /// [`crate::StoreReader`] found a store that was not closed cleanly (a
    /// crash): redb must repair it, which a read-only open never does.
    #[error(
        "store {}: not closed cleanly (a crash); a read-only open does not repair it: \
         open it once read-write (the node's next start does, or --verify-db)",
        path.display()
    )]
    NeedsRepair { path: PathBuf },
    /// The store's own metadata is missing or malformed.
    #[error("store {}: corrupt metadata: {what}", path.display())]
    CorruptMetadata { path: PathBuf, what: String },
    /// `apply` was given an entry that does not directly follow the applied one.
    #[error(
        "store {}: cannot apply entry {index}: the applied index is {applied_index}, \
         entries are applied in order, one at a time",
        path.display()
    )]
    IndexMismatch {
        path: PathBuf,
        applied_index: u64,
        index: u64,
    },
    /// A read's answer would take more than `limit` bytes (keys and values
    /// as on the wire): ask for fewer (`max`), or page.
    #[error("the answer would take more than {limit} bytes: ask for fewer results (max) and page")]
    AnswerTooLarge { limit: usize },
    /// A `multi_get` asked for a key that is not there (Arakoon's E_NOT_FOUND).
    #[error("key {} not found", ShowKey(key))]
    KeyNotFound { key: Vec<u8> },
    /// A snapshot can only be imported into an empty store.
    #[error(
        "store {}: snapshot import needs an empty store, this one has applied index \
         {applied_index} and {key_count} keys",
        path.display()
    )]
    ImportIntoNonEmpty {
        path: PathBuf,
        applied_index: u64,
        key_count: u64,
    },
    /// A snapshot older than the store would take it back in time.
    #[error(
        "store {}: the snapshot is at index {snapshot_index}, the store already at \
         {applied_index}",
        path.display()
    )]
    SnapshotTooOld {
        path: PathBuf,
        snapshot_index: u64,
        applied_index: u64,
    },
    /// The snapshot stream is malformed, truncated or fails its checksums.
    #[error("snapshot stream, byte {offset}: {what}")]
    SnapshotCorrupt { offset: u64, what: String },
    /// Reading or writing the snapshot stream failed.
    #[error("snapshot stream, byte {offset}: {source}")]
    SnapshotIo {
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    /// A key-value pair is too large for one snapshot frame.
    #[error(
        "key {} with a value of {value_bytes} bytes does not fit in a snapshot frame \
         (at most {frame_max_bytes} bytes)",
        ShowKey(key)
    )]
    SnapshotPairTooLarge {
        key: Vec<u8>,
        value_bytes: usize,
        frame_max_bytes: usize,
    },
}

/// Why one update was refused. The entry that carries it is still applied
/// (its other updates take effect and the applied index advances); a refused
/// update changes nothing, and a refused update inside a sequence undoes the
/// whole sequence.
#[allow(missing_docs)]
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpdateFailure {
    /// `Delete` of a missing key (Arakoon's E_NOT_FOUND, message: the key).
    #[error("key {} not found", ShowKey(key))]
    NotFound { key: Vec<u8> },
    /// `Assert` or `AssertExists` did not hold (Arakoon's E_ASSERTION_FAILED,
    /// message: the key).
    #[error("assertion on key {} failed", ShowKey(key))]
    AssertionFailed { key: Vec<u8> },
    /// A `UserFunction` update: no user function is registered on this node,
    /// so none can be found (Arakoon's E_NOT_FOUND for an unknown name).
    #[error("user function {} could not be found", ShowKey(name))]
    UserFunctionNotFound { name: Vec<u8> },
    /// An `AssertRange` did not hold (Arakoon's E_ASSERTION_FAILED): the
    /// first key, in ascending order, where the asserted keys and the keys
    /// under `prefix` differ (`None`: the list ran out first).
    #[error(
        "assertion on the keys under prefix {} failed: expected {}, found {}",
        ShowKey(prefix),
        ShowOptionKey(expected),
        ShowOptionKey(found)
    )]
    RangeAssertionFailed {
        prefix: Vec<u8>,
        expected: Option<Vec<u8>>,
        found: Option<Vec<u8>>,
    },
}
