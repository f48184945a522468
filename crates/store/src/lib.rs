//! `store`: Arakoon's key-value state machine on [redb].
//!
//! The store applies the committed entries of the tlog, one at a time and in
//! order, and answers every read query of Arakoon's client protocol. It is a
//! single redb file, and all its file IO goes through the [`disk`] seam (a
//! redb storage backend over a [`disk::DiskFile`]), so the simulator runs this
//! very code on its crashing in-memory disk.
//!
//! # Applying
//! [`Store::apply`]`(index, updates)` applies one tlog entry: a batch of
//! client updates, each with its own [`UpdateResult`], together with the new
//! applied index, in **one** redb write transaction. Entries are numbered from
//! 1; an empty store has applied index 0, and `index` must be exactly the
//! applied index + 1 ([`StoreError::IndexMismatch`] otherwise, nothing
//! changed). Semantics are Arakoon's: a refused update ([`UpdateFailure`]:
//! `Delete` of a missing key, a failed `Assert`/`AssertExists`/`AssertRange`,
//! a `UserFunction`) changes nothing and affects no other update of the batch;
//! a `Sequence` is all or nothing at any nesting depth: its first refused
//! update is its result and none of it is applied. The entry is applied (the
//! index advances) whatever its updates' results.
//!
//! # Durability contract
//! - `apply` does not fsync: it commits with redb's non-durable commit. The
//!   tlog, fsynced before an entry is committed, is the write-ahead log.
//! - [`Store::checkpoint`] makes everything applied so far durable (one redb
//!   durable commit: one fsync) and returns that durable applied index.
//!   [`Store::open`] and [`Store::close`] checkpoint too.
//! - After a crash (power loss, `kill -9`, torn final writes), [`Store::open`]
//!   finds a consistent store (every entry wholly applied or not at all) whose
//!   applied index lies between the last checkpoint's and the last applied
//!   one. The node then replays the tlog from `applied_index() + 1`. So the
//!   tlog must keep every entry above the last *checkpointed* index: collapse
//!   only below [`Store::checkpoint`]'s result.
//! - A new store file's name is made durable (directory fsync) before `open`
//!   returns.
//! - Checkpoint regularly (every few thousand entries or seconds): besides
//!   bounding the replay after a crash, it bounds the file's growth, since
//!   redb cannot reuse a page of the last durable state until the next
//!   durable commit. A long-lived [`ReadView`] or [`SnapshotExport`] likewise
//!   keeps the pages it sees from reuse while it lives.
//!
//! # Reads
//! Every read sees one consistent state: [`Store::read`] gives a
//! [`ReadView`] (a redb read transaction) for several reads at one applied
//! index; the read methods on [`Store`] each take a fresh view. Results are
//! in ascending key order ([`ReadView::rev_range_entries`]: descending); a
//! negative `max` means no limit (Arakoon: "if max < 0 then you want them
//! all"), 0 gives nothing. Reversing lists for the wire is the protocol's
//! business, not the store's.
//!
//! # Layout
//! User keys live in their own redb table, the store's metadata (format
//! version, applied index) in another: no user key can clash with internal
//! state, and `key_count` counts user keys only.
//!
//! # Snapshots
//! [`Store::export`] streams the store (applied index and every pair) as
//! framed, CRC32C-checked chunks from one read view while applies go on;
//! [`Store::import`] / [`Store::begin_import`] load such a stream into an
//! empty store, [`Store::replace`] / [`Store::begin_replace`] swap a store's
//! whole content for it; either in one transaction, checking everything. Neither holds more
//! than one frame in memory. The format is documented in [`snapshot`].
//!
//! # Figures (this 2-core machine, shared with other builds; real disk)
//! `cargo bench -p store --bench store`, two runs under varying load: an
//! entry of 1 set of a 100-byte value applies in 17-28 µs (36,000-58,000
//! entries/s); an entry of 100 such sets in 96-116 µs (8,600-10,500
//! entries/s, 0.86-1.05 million sets/s); `range_entries` of 10,000 keys out
//! of 100,000 takes 1.6-2.1 ms (`range`, keys only: 1.0-2.0 ms); a
//! checkpoint (one fsync) about 1 ms.
//! `cargo run --release -p store --example snapshot_memory`: exporting and
//! importing a 291 MiB store peaks at 74 MiB resident (redb's 64 MiB cache);
//! reopening it takes 0.75 s with `verify_on_open` (a checksum pass over the
//! file, page cache warm) and 0.01 s without.
//!
//! # What it never does
//! It never decides what is committed (the consensus does), never touches
//! the tlog, never panics on what it reads from a snapshot stream. A store
//! file that redb finds corrupt on open is an error (with
//! [`StoreOptions::verify_on_open`], every page's checksum is checked
//! first); redb does not re-verify checksums on later reads.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
#![warn(missing_docs, missing_debug_implementations)]

mod apply;
mod backend;
mod error;
mod import;
mod offline;
mod read;
pub mod snapshot;

pub use error::{ShowKey, StoreError, UpdateFailure};
pub use import::ImportSession;
pub use offline::StoreReader;
pub use read::{Order, ReadView};
pub use snapshot::{SnapshotExport, SNAPSHOT_CHUNK_TARGET_BYTES, SNAPSHOT_FRAME_MAX_BYTES};

use disk::{DiskRef, OpenMode};
use protocol::Update;
use redb::{
    Database, Durability, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// User keys and their values.
pub(crate) const USER_TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("user");
/// The store's own state, by name.
pub(crate) const META_TABLE: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const META_FORMAT_VERSION: &str = "format_version";
const META_APPLIED_INDEX: &str = "applied_index";
/// The `(index, term)` of the last snapshot installed (16 bytes), so that a
/// node whose store was replaced but whose tlog was not yet rebased (a crash
/// in between) can rebase its tlog at the next start.
pub(crate) const META_SNAPSHOT_BASE: &str = "snapshot_base";
const FORMAT_VERSION: u64 = 1;

/// What a successful update answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOk {
    /// `Set`, `Delete`, `Assert`, `AssertExists`, `Nop`, `Sequence`,
    /// `SyncedSequence`: nothing to answer.
    Done,
    /// `TestAndSet`, `Replace`: the value found before the update.
    Previous(Option<Vec<u8>>),
    /// `DeletePrefix`: how many keys were removed.
    Count(u64),
}

/// A key and its value.
pub type KeyValue = (Vec<u8>, Vec<u8>);

/// The result of one update of an applied entry.
pub type UpdateResult = Result<UpdateOk, UpdateFailure>;

/// The result applying `update` gives whatever the store holds, if the
/// store cannot change it: `Set`, `Nop`, and sequences of only those (they
/// neither read nor fail). The master answers such an update as soon as its
/// entry is committed, before the store applies it (see the node's driver).
pub fn result_before_apply(update: &Update) -> Option<UpdateResult> {
    fn store_independent(update: &Update) -> bool {
        match update {
            Update::Set { .. } | Update::Nop => true,
            Update::Sequence(inner) | Update::SyncedSequence(inner) => {
                inner.iter().all(store_independent)
            }
            Update::Delete { .. }
            | Update::TestAndSet { .. }
            | Update::UserFunction { .. }
            | Update::Assert { .. }
            | Update::DeletePrefix { .. }
            | Update::AssertExists { .. }
            | Update::AssertRange { .. }
            | Update::Replace { .. } => false,
        }
    }
    store_independent(update).then_some(Ok(UpdateOk::Done))
}

/// How a store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Memory redb may use to cache pages (reads and unsynced writes).
    pub cache_size_bytes: usize,
    /// Verify every page's checksum when opening, so that a damaged file is
    /// an error at open rather than a failure later. Costs a read of the
    /// whole file per open.
    pub verify_on_open: bool,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            cache_size_bytes: 64 << 20,
            verify_on_open: true,
        }
    }
}

pub(crate) fn redb_error(path: &Path, source: redb::Error) -> StoreError {
    StoreError::Redb {
        path: path.to_path_buf(),
        source: Box::new(source),
    }
}

/// Where [`Store::open`] makes a new store before renaming it to `path`.
fn creating_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".creating");
    PathBuf::from(name)
}

fn corrupt_metadata(path: &Path, what: impl Into<String>) -> StoreError {
    StoreError::CorruptMetadata {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

fn read_meta_u64(
    path: &Path,
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
) -> Result<Option<u64>, StoreError> {
    let Some(guard) = meta.get(name).map_err(|e| redb_error(path, e.into()))? else {
        return Ok(None);
    };
    let bytes: [u8; 8] = guard.value().try_into().map_err(|_| {
        corrupt_metadata(
            path,
            format!("{name}: {} bytes, expected 8", guard.value().len()),
        )
    })?;
    Ok(Some(u64::from_le_bytes(bytes)))
}

pub(crate) fn read_applied_index(
    path: &Path,
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
) -> Result<u64, StoreError> {
    read_meta_u64(path, meta, META_APPLIED_INDEX)?
        .ok_or_else(|| corrupt_metadata(path, "the applied index is missing"))
}

/// The key-value state machine. `Send + Sync`: share it (`Arc`) to read or
/// export on other threads while one thread applies.
pub struct Store {
    db: Database,
    path: Arc<Path>,
    /// The disk the store lives on (and its snapshot scratch file).
    disk: DiskRef,
    /// Held by whoever changes the applied index (apply, import), from its
    /// check of the index to the update of `applied_index` after its commit.
    writer: Mutex<()>,
    /// Mirrors the applied index in the metadata table, for cheap reads.
    applied_index: AtomicU64,
    durable_applied_index: AtomicU64,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("applied_index", &self.applied_index())
            .field("durable_applied_index", &self.durable_applied_index())
            .finish()
    }
}

impl Store {
    /// Opens the store file at `path` on `disk`, creating it (and its
    /// directory) if needed. After a crash this recovers the last consistent
    /// state (see the durability contract above). Ends with a checkpoint, so
    /// what it opened is durable.
    pub fn open(disk: DiskRef, path: &Path, options: &StoreOptions) -> Result<Self, StoreError> {
        let io_error = |what, source| StoreError::Io {
            path: path.to_path_buf(),
            what,
            source,
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => {
                return Err(io_error(
                    "find the directory",
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        "the store path needs a directory part",
                    ),
                ))
            }
        };
        let dir_existed = disk.exists(dir);
        disk.create_dir_all(dir)
            .map_err(|e| io_error("create its directory", e))?;
        if !dir_existed {
            // A new directory's own name must survive a crash too.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                disk.sync_dir(parent)
                    .map_err(|e| io_error("sync the directory above it", e))?;
            }
        }
        // A new store is made whole under a temporary name and renamed
        // into place: a crash while it is made (the node killed in its
        // first milliseconds) leaves either no store or a complete empty
        // one, never a half-written file that no longer opens.
        let creating = creating_path(path);
        if disk.exists(&creating) {
            disk.remove(&creating)
                .map_err(|e| io_error("remove the half-made store", e))?;
            tracing::info!(path = %creating.display(), "removed a store left half-made by a crash");
        }
        if !disk.exists(path) {
            Self::open_file(disk.clone(), &creating, dir, options)?.close()?;
            disk.rename(&creating, path)
                .map_err(|e| io_error("rename the new store into place", e))?;
            disk.sync_dir(dir)
                .map_err(|e| io_error("sync its directory", e))?;
        }
        Self::open_file(disk, path, dir, options)
    }

    /// Opens (or, for [`Self::open`]'s temporary name, creates) the store
    /// file at `path` in `dir`.
    fn open_file(
        disk: DiskRef,
        path: &Path,
        dir: &Path,
        options: &StoreOptions,
    ) -> Result<Self, StoreError> {
        let io_error = |what, source| StoreError::Io {
            path: path.to_path_buf(),
            what,
            source,
        };
        let file = disk
            .open(path, OpenMode::Create)
            .map_err(|e| io_error("open", e))?;
        let mut builder = Database::builder();
        builder
            .set_cache_size(options.cache_size_bytes)
            .set_check_integrity_on_open(options.verify_on_open);
        // redb reports damage it recognises as errors, but its own comments
        // say a damaged file may also make it panic on open. A panic here is
        // about the file, not about this process's state: report it as such.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            builder.create_with_backend(backend::DiskBackend::new(file))
        }));
        let db = match opened {
            Ok(db) => db.map_err(|e| redb_error(path, e.into()))?,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_default();
                return Err(StoreError::OpenPanicked {
                    path: path.to_path_buf(),
                    message,
                });
            }
        };
        let path: Arc<Path> = Arc::from(path);
        let applied_index = Self::init_metadata(&db, &path)?;
        // The name of a new file must survive a crash before anyone relies on
        // it; a directory fsync at every open also covers an earlier open
        // that created the file and failed before this point.
        disk.sync_dir(dir)
            .map_err(|e| io_error("sync its directory", e))?;
        let store = Self {
            db,
            path,
            disk,
            writer: Mutex::new(()),
            applied_index: AtomicU64::new(applied_index),
            durable_applied_index: AtomicU64::new(0),
        };
        store.checkpoint()?;
        tracing::info!(path = %store.path.display(), applied_index, "store opened");
        Ok(store)
    }

    /// Creates the tables and metadata of a new store, or checks those of an
    /// existing one; returns the applied index.
    fn init_metadata(db: &Database, path: &Path) -> Result<u64, StoreError> {
        let err = |e: redb::Error| redb_error(path, e);
        let mut txn = db.begin_write().map_err(|e| err(e.into()))?;
        let (applied_index, created) = {
            let user = txn.open_table(USER_TABLE).map_err(|e| err(e.into()))?;
            let mut meta = txn.open_table(META_TABLE).map_err(|e| err(e.into()))?;
            match read_meta_u64(path, &meta, META_FORMAT_VERSION)? {
                Some(FORMAT_VERSION) => (read_applied_index(path, &meta)?, false),
                Some(other) => {
                    return Err(corrupt_metadata(
                        path,
                        format!("format version {other}, this store reads {FORMAT_VERSION}"),
                    ))
                }
                None => {
                    let key_count =
                        redb::ReadableTableMetadata::len(&user).map_err(|e| err(e.into()))?;
                    if key_count != 0 || read_meta_u64(path, &meta, META_APPLIED_INDEX)?.is_some() {
                        return Err(corrupt_metadata(
                            path,
                            "the format version is missing from a store with content",
                        ));
                    }
                    meta.insert(META_FORMAT_VERSION, FORMAT_VERSION.to_le_bytes().as_slice())
                        .map_err(|e| err(e.into()))?;
                    meta.insert(META_APPLIED_INDEX, 0u64.to_le_bytes().as_slice())
                        .map_err(|e| err(e.into()))?;
                    (0, true)
                }
            }
        };
        if created {
            txn.set_quick_repair(true);
            txn.commit().map_err(|e| err(e.into()))?;
        } else {
            txn.abort().map_err(|e| err(e.into()))?;
        }
        Ok(applied_index)
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        redb_error(&self.path, e.into())
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The disk the store lives on.
    pub fn disk(&self) -> &DiskRef {
        &self.disk
    }

    /// Where a snapshot being received is written before it is installed
    /// (beside the store file, on its disk): `<store>.incoming`.
    pub fn scratch_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".incoming");
        PathBuf::from(name)
    }

    /// The `(index, term)` of the last snapshot installed with
    /// [`Self::install`], if any.
    pub fn snapshot_base(&self) -> Result<Option<(u64, u64)>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let meta = txn.open_table(META_TABLE).map_err(|e| self.err(e))?;
        let Some(guard) = meta
            .get(META_SNAPSHOT_BASE)
            .map_err(|e| redb_error(&self.path, e.into()))?
        else {
            return Ok(None);
        };
        let bytes = guard.value();
        let (Some(index), Some(term)) = (bytes.get(..8), bytes.get(8..16)) else {
            return Err(corrupt_metadata(
                &self.path,
                format!("{META_SNAPSHOT_BASE}: {} bytes, expected 16", bytes.len()),
            ));
        };
        let word = |b: &[u8]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(b);
            u64::from_le_bytes(w)
        };
        Ok(Some((word(index), word(term))))
    }

    /// Records that this store's state is the one after log entry
    /// `(index, term)`, as [`Self::install`] records a snapshot's: for a
    /// copy made with [`Self::copy_to`] whose entry's term the caller
    /// knows, so that a node given the copy (`--inject-as-head`) can rebase
    /// its tlog on it. `index` must be the applied index.
    pub fn record_snapshot_base(&self, index: u64, term: u64) -> Result<(), StoreError> {
        assert_eq!(
            index,
            self.applied_index(),
            "a snapshot base is the applied entry's"
        );
        let mut txn = self.begin_write()?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| self.err(e))?;
        {
            let mut meta = txn.open_table(META_TABLE).map_err(|e| self.err(e))?;
            let mut base = [0u8; 16];
            base[..8].copy_from_slice(&index.to_le_bytes());
            base[8..].copy_from_slice(&term.to_le_bytes());
            meta.insert(META_SNAPSHOT_BASE, base.as_slice())
                .map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The index of the last applied entry (0: none).
    pub fn applied_index(&self) -> u64 {
        self.applied_index.load(Ordering::Acquire)
    }

    /// The applied index made durable by the last checkpoint.
    pub fn durable_applied_index(&self) -> u64 {
        self.durable_applied_index.load(Ordering::Acquire)
    }

    /// The writer lock. A panic of another writer leaves nothing half done
    /// (its transaction was not committed), so a poisoned lock is still good.
    pub(crate) fn lock_writer(&self) -> MutexGuard<'_, ()> {
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        self.db.begin_write().map_err(|e| self.err(e))
    }

    /// Applies the committed entry `index` (its batch of `updates`) in one
    /// transaction, with the new applied index. Not durable until the next
    /// [`Self::checkpoint`]. Returns one result per update, in order.
    pub fn apply(&self, index: u64, updates: &[Update]) -> Result<Vec<UpdateResult>, StoreError> {
        let mut results = self.apply_entries(index, &[updates])?;
        assert_eq!(results.len(), 1, "one entry applied, one list of results");
        Ok(results.pop().unwrap_or_default())
    }

    /// Applies the consecutive entries `first_index, first_index + 1, …` in
    /// ONE write transaction: the same results as [`Store::apply`] for each
    /// in turn (a failed update still affects only itself, a failed sequence
    /// only itself), at the cost of one commit. For replay and catch-up,
    /// where many committed entries are applied at once. A crash keeps all
    /// of them or none (the durability contract above is unchanged).
    pub fn apply_entries<U: AsRef<[Update]>>(
        &self,
        first_index: u64,
        entries: &[U],
    ) -> Result<Vec<Vec<UpdateResult>>, StoreError> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let _writer = self.lock_writer();
        let mut txn = self.begin_write()?;
        txn.set_durability(Durability::None)
            .map_err(|e| self.err(e))?;
        let (results, last_index) = {
            let mut meta = txn.open_table(META_TABLE).map_err(|e| self.err(e))?;
            let applied_index = read_applied_index(&self.path, &meta)?;
            let last_index = first_index.checked_add(entries.len() as u64 - 1);
            let last_index = match last_index {
                Some(last) if applied_index.checked_add(1) == Some(first_index) => last,
                _ => {
                    return Err(StoreError::IndexMismatch {
                        path: self.path.to_path_buf(),
                        applied_index,
                        index: first_index,
                    })
                }
            };
            let mut user = txn.open_table(USER_TABLE).map_err(|e| self.err(e))?;
            let mut results = Vec::with_capacity(entries.len());
            for updates in entries {
                let updates = updates.as_ref();
                let mut entry_results = Vec::with_capacity(updates.len());
                for update in updates {
                    entry_results
                        .push(apply::apply_update(&mut user, update).map_err(|e| self.err(e))?);
                }
                results.push(entry_results);
            }
            meta.insert(META_APPLIED_INDEX, last_index.to_le_bytes().as_slice())
                .map_err(|e| self.err(e))?;
            (results, last_index)
        };
        txn.commit().map_err(|e| self.err(e))?;
        // Writers hold `writer` from the index check above until here.
        let previous = self.applied_index.swap(last_index, Ordering::AcqRel);
        assert_eq!(
            previous + 1,
            first_index,
            "applied index moved under a writer"
        );
        Ok(results)
    }

    /// Makes everything applied so far durable (one fsync) and returns the
    /// durable applied index. Safe to call at any time, from any thread.
    pub fn checkpoint(&self) -> Result<u64, StoreError> {
        let mut txn = self.begin_write()?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| self.err(e))?;
        // Saves redb's allocator state with the commit, so that opening after
        // a crash need not walk the whole file to rebuild it.
        txn.set_quick_repair(true);
        let applied_index = {
            let meta = txn.open_table(META_TABLE).map_err(|e| self.err(e))?;
            read_applied_index(&self.path, &meta)?
        };
        txn.commit().map_err(|e| self.err(e))?;
        self.durable_applied_index
            .fetch_max(applied_index, Ordering::AcqRel);
        tracing::debug!(path = %self.path.display(), applied_index, "store checkpoint");
        Ok(applied_index)
    }

    /// Checkpoints and closes the store; returns the durable applied index.
    pub fn close(self) -> Result<u64, StoreError> {
        let applied_index = self.checkpoint()?;
        self.db
            .close()
            .map_err(|e| redb_error(&self.path, e.into()))?;
        Ok(applied_index)
    }

    /// A consistent view for several reads at one applied index.
    pub fn read(&self) -> Result<ReadView, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        ReadView::new(Arc::clone(&self.path), &txn)
    }

    /// A snapshot of the current state, as a stream of frames of about
    /// [`SNAPSHOT_CHUNK_TARGET_BYTES`]. Applies may go on meanwhile; they do
    /// not show in the snapshot.
    pub fn export(&self) -> Result<SnapshotExport, StoreError> {
        self.export_with_chunk_target(SNAPSHOT_CHUNK_TARGET_BYTES)
    }

    /// As [`Self::export`], closing each entries frame at about
    /// `chunk_target_bytes` (at least one pair per frame).
    pub fn export_with_chunk_target(
        &self,
        chunk_target_bytes: usize,
    ) -> Result<SnapshotExport, StoreError> {
        SnapshotExport::new(self.read()?, chunk_target_bytes.max(1))
    }

    /// Starts importing a snapshot stream into this store, which must be
    /// empty (applied index 0, no keys). Applies wait until the import ends.
    pub fn begin_import(&self) -> Result<ImportSession<'_>, StoreError> {
        ImportSession::begin(self, import::ImportMode::IntoEmpty)
    }

    /// Starts replacing this store's whole content with a snapshot stream,
    /// for a node too far behind to catch up from the tlogs. Atomic: until
    /// [`ImportSession::finish`] commits, the store keeps its old content,
    /// and a failed or abandoned replace leaves it there. A snapshot older
    /// than the store's applied index is refused
    /// ([`StoreError::SnapshotTooOld`]). Applies wait until it ends.
    pub fn begin_replace(&self) -> Result<ImportSession<'_>, StoreError> {
        ImportSession::begin(self, import::ImportMode::Replace)
    }

    /// Imports a whole snapshot stream from `reader` (see
    /// [`Self::begin_import`]); returns the applied index it brought. On any
    /// error the store stays empty.
    pub fn import(&self, reader: &mut dyn std::io::Read) -> Result<u64, StoreError> {
        Self::feed(self.begin_import()?, reader)
    }

    /// Replaces the store's content with a whole snapshot stream from
    /// `reader` (see [`Self::begin_replace`]); returns the applied index it
    /// brought. On any error the store keeps its old content.
    pub fn replace(&self, reader: &mut dyn std::io::Read) -> Result<u64, StoreError> {
        Self::feed(self.begin_replace()?, reader)
    }

    /// As [`Self::replace`], for a snapshot of the log entry `(index,
    /// term)`: the same transaction records them ([`Self::snapshot_base`]),
    /// and a stream of another index is refused.
    pub fn install(
        &self,
        reader: &mut dyn std::io::Read,
        index: u64,
        term: u64,
    ) -> Result<u64, StoreError> {
        let mut session = self.begin_replace()?;
        session.expect_base(index, term);
        Self::feed(session, reader)
    }

    /// Writes a consistent copy of this store (its state at one applied
    /// index; applies go on meanwhile) as a new store file at `path`,
    /// which must not exist, through a snapshot stream: never the whole
    /// store in memory. The copy is durable and closed when this returns
    /// its applied index. On error, what was written of `path` is removed.
    pub fn copy_to(&self, path: &Path, options: &StoreOptions) -> Result<u64, StoreError> {
        if path.exists() {
            return Err(StoreError::Io {
                path: path.to_path_buf(),
                what: "copy the store",
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "the copy's file exists already",
                ),
            });
        }
        let result = (|| {
            let copy = Store::open(self.disk.clone(), path, options)?;
            {
                let export = self.export()?;
                let mut session = copy.begin_import()?;
                let mut sink = ImportSink(&mut session, None);
                let written = export.write_to(&mut sink);
                if let Some(e) = sink.1.take() {
                    return Err(e);
                }
                written?;
                session.finish()?;
            }
            copy.close()
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(path);
        }
        result
    }

    fn feed(
        mut session: ImportSession<'_>,
        reader: &mut dyn std::io::Read,
    ) -> Result<u64, StoreError> {
        const READ_CHUNK_BYTES: usize = 64 << 10;
        let mut buf = vec![0u8; READ_CHUNK_BYTES];
        let mut offset = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(StoreError::SnapshotIo { offset, source }),
            };
            session.push(&buf[..n])?;
            offset += n as u64;
        }
        session.finish()
    }

    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    pub(crate) fn path_arc(&self) -> &Arc<Path> {
        &self.path
    }

    pub(crate) fn set_imported(&self, applied_index: u64) {
        self.applied_index.store(applied_index, Ordering::Release);
        self.durable_applied_index
            .store(applied_index, Ordering::Release);
    }
}

/// A `Write` that feeds an import session (`Store::copy_to`); the
/// session's error is kept, the writer sees an IO error.
struct ImportSink<'s, 'a>(&'s mut ImportSession<'a>, Option<StoreError>);

impl std::io::Write for ImportSink<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Err(e) = self.0.push(buf) {
            let message = e.to_string();
            self.1 = Some(e);
            return Err(std::io::Error::other(message));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Compacts a stopped node's store file in place (redb's compaction:
/// pages freed by earlier writes are given back, the file shrinks).
/// Returns the file's size before and after. The store must not be open
/// anywhere else.
pub fn compact_file(path: &Path) -> Result<(u64, u64), StoreError> {
    let size = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .map_err(|source| StoreError::Io {
                path: p.to_path_buf(),
                what: "stat the store file",
                source,
            })
    };
    let before = size(path)?;
    let mut db = Database::open(path).map_err(|e| redb_error(path, e.into()))?;
    db.compact().map_err(|e| redb_error(path, e.into()))?;
    drop(db);
    Ok((before, size(path)?))
}
