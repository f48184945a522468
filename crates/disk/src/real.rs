//! The operating system's file system.
//!
//! [`DiskFile::allocate`] is `fallocate(fd, 0, 0, len)` on Linux. Where the
//! file system answers that it cannot (`EOPNOTSUPP`, `ENOSYS`, `EINVAL`),
//! and on other systems, it falls back to extending the file with
//! `ftruncate` (`set_len`): the same bytes (zeros), the same durability,
//! only without the speed gain.

use crate::{Disk, DiskFile, OpenMode};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The bytes an unprivileged writer may still write to the file system
/// holding `dir` (`statvfs`: available blocks times the fragment size).
#[cfg(unix)]
#[allow(unsafe_code)]
pub fn available_space(dir: &Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: a path with a NUL byte", dir.display()),
        )
    })?;
    let mut stat = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is a NUL-terminated string that lives across the call;
    // `stat` is writable memory of the size `statvfs` fills.
    let rc = unsafe { libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) };
    if rc != 0 {
        return Err(with_path(io::Error::last_os_error(), "statvfs", dir));
    }
    // SAFETY: `statvfs` returned 0, so it filled `stat`.
    let stat = unsafe { stat.assume_init() };
    // u64 on 64-bit Linux, narrower elsewhere.
    #[allow(clippy::useless_conversion)]
    let (blocks, size) = (u64::from(stat.f_bavail), u64::from(stat.f_frsize));
    Ok(blocks.saturating_mul(size))
}

/// The real file system. Stateless: every call goes to the OS.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealDisk;

impl RealDisk {
    /// A handle to the real disk, shareable as a [`crate::DiskRef`].
    pub fn shared() -> crate::DiskRef {
        std::sync::Arc::new(RealDisk)
    }
}

fn with_path(err: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{what} {}: {err}", path.display()))
}

impl Disk for RealDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir).map_err(|e| with_path(e, "create directory", dir))
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn DiskFile>> {
        let mut options = OpenOptions::new();
        match mode {
            OpenMode::Read => options.read(true),
            OpenMode::ReadWrite => options.read(true).write(true),
            OpenMode::Create => options.read(true).write(true).create(true),
            OpenMode::CreateNew => options.read(true).write(true).create_new(true),
            OpenMode::Truncate => options.read(true).write(true).create(true).truncate(true),
        };
        let file = options.open(path).map_err(|e| with_path(e, "open", path))?;
        Ok(Box::new(RealFile { file }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to).map_err(|e| with_path(e, "rename", from))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path).map_err(|e| with_path(e, "remove", path))
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(|e| with_path(e, "list", dir))? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| with_path(e, "sync directory", dir))
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
}

#[derive(Debug)]
struct RealFile {
    file: File,
}

impl DiskFile for RealFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }

    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    fn allocate(&self, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        match fallocate(&self.file, len) {
            Ok(()) => Ok(()),
            // The file system cannot allocate (some network and older file
            // systems): extend it sparsely instead. The bytes read as zeros
            // just the same, only an fdatasync after a write into them may
            // still have to write the size.
            Err(err) if allocation_unsupported(&err) => {
                if self.file.metadata()?.len() < len {
                    self.file.set_len(len)?;
                }
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    fn sync_data(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// Whether `fallocate` failed because the file system (or kernel) does not
/// offer it, rather than for lack of space or an IO error.
fn allocation_unsupported(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL)
    )
}

/// `fallocate(fd, 0, 0, len)`: allocates blocks for the first `len` bytes
/// and extends the size to `len` if it is smaller (mode 0, not
/// `FALLOC_FL_KEEP_SIZE`); bytes already there keep their contents.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn fallocate(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot allocate {len} bytes: above the largest file offset"),
        )
    })?;
    loop {
        // SAFETY: `fallocate` takes a file descriptor and three integers and
        // touches no memory of ours; the descriptor is open for as long as
        // `file` is borrowed.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Elsewhere there is no `fallocate`: the caller extends sparsely.
#[cfg(not(target_os = "linux"))]
fn fallocate(_file: &File, _len: u64) -> io::Result<()> {
    Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
}
