//! One simulated node's durable state: its tlog and its store on the
//! node's own [`SimDisk`], and the adapter through which the consensus core
//! reads the tlog.

use bytes::Bytes;
use consensus::{LogError, LogRead};
use disk::SimDisk;
use std::path::PathBuf;
use store::{Store, StoreOptions};
use tlog::{Tlog, TlogOptions};

/// Small segments, so that rotation, sealing and collapse happen in short runs.
pub fn sim_tlog_options() -> TlogOptions {
    TlogOptions {
        max_entries: 64,
        max_size: 64 * 1024,
        compression: tlog::Compression::Lz4,
    }
}

/// The tlog and store of a running node.
#[derive(Debug)]
pub struct Storage {
    pub tlog: Tlog,
    pub store: Store,
}

fn tlog_dir() -> PathBuf {
    PathBuf::from("/node/tlog")
}

fn store_path() -> PathBuf {
    PathBuf::from("/node/store/store.redb")
}

impl Storage {
    /// Opens (recovering after a crash) the node's tlog and store.
    pub fn open(disk: &SimDisk) -> Result<Storage, String> {
        let tlog = Tlog::open(disk.shared(), tlog_dir(), sim_tlog_options())
            .map_err(|e| format!("tlog open: {e}"))?;
        let options = StoreOptions {
            cache_size_bytes: 1 << 20,
            verify_on_open: true,
        };
        let store = Store::open(disk.shared(), &store_path(), &options)
            .map_err(|e| format!("store open: {e}"))?;
        Ok(Storage { tlog, store })
    }
}

/// The consensus core's view of a tlog.
pub struct TlogView<'a>(pub &'a Tlog);

impl LogRead for TlogView<'_> {
    fn first_index(&self) -> u64 {
        self.0.first_index()
    }

    fn last_index(&self) -> u64 {
        self.0.last_index()
    }

    fn term(&self, index: u64) -> Result<u64, LogError> {
        if index + 1 < self.0.first_index() {
            return Err(LogError::Compacted { index });
        }
        if index > self.0.last_index() {
            return Err(LogError::Unavailable { index });
        }
        self.0.term(index).ok_or_else(|| LogError::Storage {
            message: format!("tlog has no term for index {index}"),
        })
    }

    fn entries(
        &self,
        from: u64,
        to: u64,
        max_bytes: u64,
    ) -> Result<Vec<consensus::Entry>, LogError> {
        if from < self.0.first_index() {
            return Err(LogError::Compacted { index: from });
        }
        if to > self.0.last_index() {
            return Err(LogError::Unavailable { index: to });
        }
        let entries = self
            .0
            .read(from, to + 1, max_bytes)
            .map_err(|e| LogError::Storage {
                message: e.to_string(),
            })?;
        Ok(entries
            .into_iter()
            .map(|e| consensus::Entry {
                index: e.index,
                term: e.term,
                payload: Bytes::from(e.payload),
            })
            .collect())
    }
}
