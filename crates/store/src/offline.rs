//! [`StoreReader`]: a store file opened read-only, for the offline tools
//! (`arakoon --dump-store`, `--inspect-store`) on a stopped node's files.
//! It never writes the file: no checkpoint, no repair, no metadata.

use crate::error::StoreError;
use crate::read::ReadView;
use crate::{read_meta_u64, redb_error, FORMAT_VERSION, META_FORMAT_VERSION, META_TABLE};
use disk::{Disk, OpenMode};
use redb::{ReadOnlyDatabase, ReadableDatabase};
use std::path::Path;
use std::sync::Arc;

/// A store file opened read-only. Refuses a file that does not exist (it is
/// never created), a store that needs a repair after a crash
/// ([`StoreError::NeedsRepair`]: a read-only open cannot repair), and a
/// format version it does not read.
pub struct StoreReader {
    db: ReadOnlyDatabase,
    path: Arc<Path>,
}

impl std::fmt::Debug for StoreReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreReader")
            .field("path", &self.path)
            .finish()
    }
}

impl StoreReader {
    /// Opens the store file at `path` on `disk` without writing to it;
    /// redb may cache up to `cache_size_bytes` of its pages.
    pub fn open(
        disk: &dyn Disk,
        path: &Path,
        cache_size_bytes: usize,
    ) -> Result<StoreReader, StoreError> {
        let file = disk
            .open(path, OpenMode::Read)
            .map_err(|source| StoreError::Io {
                path: path.to_path_buf(),
                what: "open",
                source,
            })?;
        let mut builder = redb::Builder::new();
        builder.set_cache_size(cache_size_bytes);
        // As in `Store::open`: a damaged file may make redb panic on open;
        // that is about the file, not this process.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            builder.open_read_only_with_backend(crate::backend::DiskBackend::new(file))
        }));
        let db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(redb::DatabaseError::RepairAborted)) => {
                return Err(StoreError::NeedsRepair {
                    path: path.to_path_buf(),
                })
            }
            Ok(Err(e)) => return Err(redb_error(path, e.into())),
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
        let reader = StoreReader { db, path };
        reader.check_format()?;
        Ok(reader)
    }

    fn check_format(&self) -> Result<(), StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| redb_error(&self.path, e.into()))?;
        let meta = txn
            .open_table(META_TABLE)
            .map_err(|e| redb_error(&self.path, e.into()))?;
        match read_meta_u64(&self.path, &meta, META_FORMAT_VERSION)? {
            Some(FORMAT_VERSION) => Ok(()),
            Some(other) => Err(StoreError::CorruptMetadata {
                path: self.path.to_path_buf(),
                what: format!("format version {other}, this store reads {FORMAT_VERSION}"),
            }),
            None => Err(StoreError::CorruptMetadata {
                path: self.path.to_path_buf(),
                what: "the format version is missing".to_string(),
            }),
        }
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A consistent view of the whole store (the file does not change
    /// under a stopped node).
    pub fn read(&self) -> Result<ReadView, StoreError> {
        let txn = self
            .db
            .begin_read()
            .map_err(|e| redb_error(&self.path, e.into()))?;
        ReadView::new(Arc::clone(&self.path), &txn)
    }
}
