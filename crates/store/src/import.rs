//! Importing a snapshot stream (format: [`crate::snapshot`]) into an empty
//! store, or replacing a store's whole content with one, in one write
//! transaction: the store holds either what it held before or the whole
//! snapshot at its applied index, whatever happens on the way.

use crate::error::StoreError;
use crate::snapshot::{Frame, FrameSplitter};
use crate::{
    read_applied_index, Store, META_APPLIED_INDEX, META_SNAPSHOT_BASE, META_TABLE, USER_TABLE,
};
use redb::{Durability, ReadableTableMetadata, WriteTransaction};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Header,
    EntriesOrTrailer,
    End,
    /// An error was reported; the session accepts nothing more.
    Failed,
}

/// A snapshot import under way: [`Self::push`] the stream's bytes as they
/// arrive (in any slicing), then [`Self::finish`]. Dropping it unfinished,
/// or any error, leaves the store as it was.
pub struct ImportSession<'s> {
    store: &'s Store,
    /// No apply may run during an import.
    _writer: std::sync::MutexGuard<'s, ()>,
    txn: WriteTransaction,
    splitter: FrameSplitter,
    expect: Expect,
    /// The store's applied index when the import began: a snapshot may not
    /// take the store back before it.
    applied_index_before: u64,
    applied_index: u64,
    last_key: Option<Vec<u8>>,
    entry_count: u64,
    /// The log entry `(index, term)` the snapshot must be of, recorded with
    /// it ([`Store::install`]).
    base: Option<(u64, u64)>,
}

impl std::fmt::Debug for ImportSession<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportSession")
            .field("store", &self.store.path())
            .field("expect", &self.expect)
            .field("applied_index", &self.applied_index)
            .field("entry_count", &self.entry_count)
            .field("offset", &self.splitter.offset())
            .finish()
    }
}

/// What an import may overwrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ImportMode {
    /// Only an empty store (applied index 0, no keys).
    IntoEmpty,
    /// Any store, whose whole content the snapshot replaces, provided the
    /// snapshot is not older than the store.
    Replace,
}

impl<'s> ImportSession<'s> {
    pub(crate) fn begin(store: &'s Store, mode: ImportMode) -> Result<Self, StoreError> {
        let writer = store.lock_writer();
        let txn = store.db().begin_write().map_err(|e| store_err(store, e))?;
        let applied_index_before = {
            let user = txn
                .open_table(USER_TABLE)
                .map_err(|e| store_err(store, e))?;
            let meta = txn
                .open_table(META_TABLE)
                .map_err(|e| store_err(store, e))?;
            let applied_index = read_applied_index(store.path(), &meta)?;
            let key_count = user.len().map_err(|e| store_err(store, e))?;
            if mode == ImportMode::IntoEmpty && (applied_index != 0 || key_count != 0) {
                return Err(StoreError::ImportIntoNonEmpty {
                    path: store.path().to_path_buf(),
                    applied_index,
                    key_count,
                });
            }
            applied_index
        };
        if mode == ImportMode::Replace {
            // Within this transaction only: the old content stays until the
            // import commits.
            txn.delete_table(USER_TABLE)
                .map_err(|e| store_err(store, e))?;
            // Created anew, so that it exists even if the snapshot is empty.
            txn.open_table(USER_TABLE)
                .map_err(|e| store_err(store, e))?;
        }
        Ok(Self {
            store,
            _writer: writer,
            txn,
            splitter: FrameSplitter::default(),
            expect: Expect::Header,
            applied_index_before,
            applied_index: 0,
            last_key: None,
            entry_count: 0,
            base: None,
        })
    }

    /// The stream must be a snapshot at `index`, of the log entry `(index,
    /// term)`; both are recorded with it.
    pub fn expect_base(&mut self, index: u64, term: u64) {
        self.base = Some((index, term));
    }

    fn corrupt(&self, offset: u64, what: impl Into<String>) -> StoreError {
        StoreError::SnapshotCorrupt {
            offset,
            what: what.into(),
        }
    }

    /// Takes the next bytes of the stream.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        let result = self.push_inner(bytes);
        if result.is_err() {
            self.expect = Expect::Failed;
        }
        result
    }

    fn push_inner(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        match self.expect {
            Expect::Failed => {
                return Err(self.corrupt(self.splitter.offset(), "the import already failed"))
            }
            Expect::End if !bytes.is_empty() => {
                return Err(self.corrupt(self.splitter.offset(), "bytes after the trailer"))
            }
            _ => {}
        }
        self.splitter.push(bytes);
        while let Some((offset, frame)) = self.splitter.next_frame()? {
            self.take_frame(offset, frame)?;
        }
        if self.expect == Expect::End && self.splitter.pending_bytes() > 0 {
            return Err(self.corrupt(self.splitter.offset(), "bytes after the trailer"));
        }
        Ok(())
    }

    fn take_frame(&mut self, offset: u64, frame: Frame) -> Result<(), StoreError> {
        match (self.expect, frame) {
            (Expect::Header, Frame::Header { applied_index }) => {
                if applied_index < self.applied_index_before {
                    return Err(StoreError::SnapshotTooOld {
                        path: self.store.path().to_path_buf(),
                        snapshot_index: applied_index,
                        applied_index: self.applied_index_before,
                    });
                }
                if let Some((index, _)) = self.base.filter(|(i, _)| *i != applied_index) {
                    return Err(self.corrupt(
                        offset,
                        format!("a snapshot at index {applied_index}, expected one at {index}"),
                    ));
                }
                self.applied_index = applied_index;
                self.expect = Expect::EntriesOrTrailer;
            }
            (Expect::EntriesOrTrailer, Frame::Entries(pairs)) => {
                let mut user = self
                    .txn
                    .open_table(USER_TABLE)
                    .map_err(|e| store_err(self.store, e))?;
                for (key, value) in pairs {
                    if self.last_key.as_ref().is_some_and(|last| *last >= key) {
                        return Err(self.corrupt(
                            offset,
                            format!(
                                "key {} is not above the one before it",
                                crate::ShowKey(&key)
                            ),
                        ));
                    }
                    user.insert(key.as_slice(), value.as_slice())
                        .map_err(|e| store_err(self.store, e))?;
                    self.last_key = Some(key);
                    self.entry_count += 1;
                }
            }
            (
                Expect::EntriesOrTrailer,
                Frame::Trailer {
                    entry_count,
                    applied_index,
                },
            ) => {
                if entry_count != self.entry_count || applied_index != self.applied_index {
                    return Err(self.corrupt(
                        offset,
                        format!(
                            "the trailer says {entry_count} pairs at index {applied_index}, \
                             the stream had {} pairs at index {}",
                            self.entry_count, self.applied_index
                        ),
                    ));
                }
                self.expect = Expect::End;
            }
            (expect, frame) => {
                let got = match frame {
                    Frame::Header { .. } => "a header",
                    Frame::Entries(_) => "an entries frame",
                    Frame::Trailer { .. } => "a trailer",
                };
                let wanted = match expect {
                    Expect::Header => "the header",
                    _ => "entries or the trailer",
                };
                return Err(self.corrupt(offset, format!("{got} where {wanted} belongs")));
            }
        }
        Ok(())
    }

    /// Ends the stream: checks it was whole, then commits the import durably.
    /// Returns the applied index of the imported state.
    pub fn finish(mut self) -> Result<u64, StoreError> {
        match self.expect {
            Expect::End => {}
            Expect::Failed => {
                return Err(self.corrupt(self.splitter.offset(), "the import already failed"))
            }
            _ => {
                return Err(self.corrupt(
                    self.splitter.offset() + self.splitter.pending_bytes() as u64,
                    "the stream ends before its trailer",
                ))
            }
        }
        let store = self.store;
        {
            let mut meta = self
                .txn
                .open_table(META_TABLE)
                .map_err(|e| store_err(store, e))?;
            meta.insert(
                META_APPLIED_INDEX,
                self.applied_index.to_le_bytes().as_slice(),
            )
            .map_err(|e| store_err(store, e))?;
            if let Some((index, term)) = self.base {
                let mut base = [0u8; 16];
                base[..8].copy_from_slice(&index.to_le_bytes());
                base[8..].copy_from_slice(&term.to_le_bytes());
                meta.insert(META_SNAPSHOT_BASE, base.as_slice())
                    .map_err(|e| store_err(store, e))?;
            }
        }
        self.txn
            .set_durability(Durability::Immediate)
            .map_err(|e| store_err(store, e))?;
        self.txn.set_quick_repair(true);
        self.txn.commit().map_err(|e| store_err(store, e))?;
        store.set_imported(self.applied_index);
        tracing::info!(
            path = %store.path().display(),
            applied_index = self.applied_index,
            pairs = self.entry_count,
            "snapshot imported"
        );
        Ok(self.applied_index)
    }
}

fn store_err(store: &Store, e: impl Into<redb::Error>) -> StoreError {
    crate::redb_error(store.path_arc(), e.into())
}
