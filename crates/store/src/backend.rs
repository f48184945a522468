//! redb's storage backend over a [`disk::DiskFile`], so that the store does
//! all its file IO through the `disk` seam (and runs on the simulator's disk).

use disk::DiskFile;
use std::io;

/// One database file, as redb sees it. redb does its own caching and never
/// reads past the length it set, so every call maps one to one onto the file.
#[derive(Debug)]
pub(crate) struct DiskBackend {
    file: Box<dyn DiskFile>,
}

impl DiskBackend {
    pub(crate) fn new(file: Box<dyn DiskFile>) -> Self {
        Self { file }
    }
}

impl redb::StorageBackend for DiskBackend {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.file.read_exact_at(offset, out)
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.file.set_len(len)
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        self.file.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.file.write_all_at(offset, data)
    }
}
