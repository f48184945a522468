//! `disk`: the one seam through which the tlog and the store touch files.
//!
//! Two implementations of [`Disk`]:
//! - [`RealDisk`]: the operating system's files (`pread`/`pwrite`,
//!   `fdatasync`, `fallocate`, `rename`, directory fsync).
//! - [`SimDisk`]: an in-memory disk for the deterministic simulator, with the
//!   crash semantics of a POSIX file system that promises only what it must.
//!
//! # What a crash of the [`SimDisk`] keeps (the durability contract we code against)
//! - File *contents* are durable up to the last [`DiskFile::sync_data`] of that
//!   file. Writes after it survive a crash only as an in-order prefix, and the
//!   first write that does not survive whole may be torn at any byte.
//! - *Names* (create, rename, remove) are durable only after
//!   [`Disk::sync_dir`] of the directory that holds them. A file created and
//!   synced, but whose directory was never synced, is gone after a crash.
//! - [`DiskFile::allocate`] and [`DiskFile::set_len`] are ordered with the
//!   writes: a crash keeps them if it keeps every write before them.
//! - Directories made by [`Disk::create_dir_all`] are durable at once (the
//!   tlog and store create their directories once, at start, and sync the
//!   parent themselves on a real disk).
//! - After a crash every open handle is dead: its operations fail, so code
//!   that keeps using a handle across a simulated restart is caught.
//!
//! Code that is correct on the [`SimDisk`] therefore calls `sync_data` before
//! it relies on contents, and `sync_dir` before it relies on a name.

// Unsafe only for fallocate(2) and statvfs(2), which have no safe form in
// std: their SAFETY arguments and an `allow` are on those functions
// (real.rs).
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod real;
mod sim;
mod tripwire;

#[cfg(unix)]
pub use real::available_space;
pub use real::RealDisk;
pub use sim::SimDisk;
pub use tripwire::{splitmix_chooser, Crash, Tripwire};

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Existing file, reads only.
    Read,
    /// Existing file, reads and writes.
    ReadWrite,
    /// Open for reads and writes, creating it empty if it does not exist.
    Create,
    /// Create a new empty file; fails with `AlreadyExists` if the name is taken.
    CreateNew,
    /// Open for reads and writes, creating it or cutting it to length 0.
    Truncate,
}

/// A file system: the few operations the tlog and the store need.
pub trait Disk: Send + Sync + fmt::Debug {
    /// Creates `dir` and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Opens `path` as `mode` says.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn DiskFile>>;
    /// Atomically renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes the file `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// The names of the files directly in `dir`, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Makes creations, renames and removals of names in `dir` durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Whether a file or directory called `path` exists now.
    fn exists(&self, path: &Path) -> bool;
}

/// An open file. All methods take `&self`: a file may be shared between a
/// writer and readers (positions are explicit, there is no cursor).
pub trait DiskFile: Send + Sync + fmt::Debug {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the file is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Fills `buf` from `offset`; `UnexpectedEof` if the file is shorter.
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes all of `data` at `offset`, extending the file with zeros if needed.
    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Cuts or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Makes the file at least `len` bytes long, the new bytes reading as
    /// zeros, with real blocks allocated where the file system can: never
    /// shrinks the file and never changes a byte it already holds.
    /// Like a write, the new length is durable after the next
    /// [`DiskFile::sync_data`], and a crash before it keeps it or not.
    ///
    /// Why: `fdatasync` after a write *inside* the allocated size need not
    /// write the file's size and block map (on ext4 this saves about a third
    /// of the latency of a small append + fdatasync); a sparse extension
    /// (`set_len`) or an allocation that keeps the size does not give that.
    fn allocate(&self, len: u64) -> io::Result<()>;
    /// Makes the contents durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
}

/// A shared handle to a disk, as the tlog and store hold it.
pub type DiskRef = Arc<dyn Disk>;

/// Reads the whole file at `path`.
pub fn read_all(disk: &dyn Disk, path: &Path) -> io::Result<Vec<u8>> {
    let file = disk.open(path, OpenMode::Read)?;
    let len = file.len()?;
    let len = usize::try_from(len).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {len} bytes do not fit in memory", path.display()),
        )
    })?;
    let mut buf = vec![0; len];
    file.read_exact_at(0, &mut buf)?;
    Ok(buf)
}

/// Replaces the file at `path` with `data` atomically and durably: write a
/// temporary file, sync it, rename it over `path`, sync the directory.
/// After a crash the file holds either the old or the new content, whole.
pub fn write_atomic(disk: &dyn Disk, path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = path.parent().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: no parent directory", path.display()),
        )
    })?;
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let file = disk.open(tmp, OpenMode::Truncate)?;
    if let Err(e) = file.write_all_at(0, data) {
        // Best effort: a full device gets the space back.
        drop(file);
        let _ = disk.remove(tmp);
        return Err(e);
    }
    file.sync_data()?;
    drop(file);
    disk.rename(tmp, path)?;
    disk.sync_dir(dir)
}

#[cfg(test)]
mod tests;
