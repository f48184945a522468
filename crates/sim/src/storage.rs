//! One simulated node's durable state: its tlog and its store on the
//! node's own [`SimDisk`] (the tlog is the consensus core's `LogRead`).

use disk::SimDisk;
use std::path::PathBuf;
use store::{Store, StoreOptions};
use tlog::{Tlog, TlogOptions};

/// Small segments, so that rotation, sealing and collapse happen in short runs.
pub fn sim_tlog_options() -> TlogOptions {
    TlogOptions {
        max_entries: 8,
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

/// Where a simulated node keeps its tlog (its own device: see the
/// disk-full fault).
pub fn tlog_dir() -> PathBuf {
    PathBuf::from("/node/tlog")
}

fn store_path() -> PathBuf {
    PathBuf::from("/node/store/store.redb")
}

impl Storage {
    /// Opens (recovering after a crash) the node's tlog and store.
    pub fn open(disk: &SimDisk) -> Result<Storage, String> {
        let mut tlog = Tlog::open(disk.shared(), tlog_dir(), sim_tlog_options())
            .map_err(|e| format!("tlog open: {e}"))?;
        let options = StoreOptions {
            cache_size_bytes: 1 << 20,
            verify_on_open: true,
        };
        let store = Store::open(disk.shared(), &store_path(), &options)
            .map_err(|e| format!("store open: {e}"))?;
        replica::reconcile_storage(&mut tlog, &store).map_err(|e| format!("reconcile: {e}"))?;
        Ok(Storage { tlog, store })
    }
}
