//! An in-memory disk with crash semantics, for the simulator.
//!
//! Model: every file is an inode with its *durable* bytes and the list of
//! writes made since its last `sync_data` (applied in order to give the
//! *current* bytes). Names map to inodes twice: the current namespace and
//! the durable one (updated per directory by `sync_dir`). A crash rebuilds
//! the disk from the durable namespace; each inode keeps its durable bytes
//! plus an in-order prefix of its pending writes, the next one possibly torn.
//! Length changes (`set_len`, `allocate`) are pending operations in the same
//! order: a crash keeps one only together with every write before it.

use crate::{Disk, DiskFile, OpenMode};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Clone)]
enum PendingOp {
    Write {
        offset: u64,
        data: Vec<u8>,
    },
    SetLen(u64),
    /// Grows the file to at least this length with zeros (never shrinks).
    Allocate(u64),
}

/// A file's bytes: `head`, then zeros up to `len`. Extensions (`set_len`,
/// `allocate`) cost no memory, so a preallocated 32 MiB segment is cheap.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Contents {
    head: Vec<u8>,
    /// Never below `head.len()`.
    len: usize,
}

impl Contents {
    fn flip_bit(&mut self, at: usize, bit: u8) {
        debug_assert!(at < self.len);
        if self.head.len() <= at {
            self.head.resize(at + 1, 0);
        }
        self.head[at] ^= 1 << (bit % 8);
    }

    /// Fills `buf` from `start`; the caller checked it is within `len`.
    fn read(&self, start: usize, buf: &mut [u8]) {
        debug_assert!(start + buf.len() <= self.len);
        let in_head = self.head.len().saturating_sub(start).min(buf.len());
        if in_head > 0 {
            buf[..in_head].copy_from_slice(&self.head[start..start + in_head]);
        }
        buf[in_head..].fill(0);
    }
}

/// A simulated file length or offset as an in-memory size: simulated files
/// live in memory, so every one fits (an invariant of the simulation).
fn in_memory(n: u64) -> usize {
    assert!(
        n <= usize::MAX as u64,
        "simulated file offset {n} does not fit in memory"
    );
    n as usize
}

fn apply(bytes: &mut Contents, op: &PendingOp) {
    match op {
        PendingOp::Write { offset, data } => {
            let start = in_memory(*offset);
            let end = start + data.len();
            if bytes.head.len() < end {
                bytes.head.resize(end, 0);
            }
            bytes.head[start..end].copy_from_slice(data);
            bytes.len = bytes.len.max(end);
        }
        PendingOp::SetLen(len) => {
            let len = in_memory(*len);
            bytes.head.truncate(len);
            bytes.len = len;
        }
        PendingOp::Allocate(len) => {
            let len = in_memory(*len);
            bytes.len = bytes.len.max(len);
        }
    }
}

#[derive(Debug, Default)]
struct Inode {
    current: Contents,
    durable: Contents,
    pending: Vec<PendingOp>,
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    next_inode: u64,
    inodes: HashMap<u64, Inode>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    dirs: BTreeSet<PathBuf>,
    bytes_written: u64,
    syncs: u64,
    /// Writes and allocations of files under this directory fail with
    /// ENOSPC (a full device); see [`SimDisk::set_full`].
    full_under: Option<PathBuf>,
}

/// Counters of what the disk was asked to do (for simulator summaries).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimDiskStats {
    /// Bytes written by `write_all_at` since the disk was made.
    pub bytes_written: u64,
    /// `sync_data` and `sync_dir` calls.
    pub syncs: u64,
}

/// A simulated disk. Cloning gives another handle to the same disk.
#[derive(Debug, Clone, Default)]
pub struct SimDisk {
    state: Arc<Mutex<State>>,
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file (simulated disk)", path.display()),
    )
}

impl SimDisk {
    /// An empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// A shared handle, as the tlog and store take it.
    pub fn shared(&self) -> crate::DiskRef {
        Arc::new(self.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug in this module; the state
        // is still consistent for reading, so recover the guard.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Simulates a power loss. `choose(n)` must return a number in `0..n`
    /// (the simulator passes its seeded RNG); it decides, per file, how many
    /// unsynced writes survive and where the next one is torn.
    /// Every handle opened before the crash is dead afterwards.
    pub fn crash(&self, choose: &mut dyn FnMut(u64) -> u64) {
        let mut state = self.lock();
        state.generation += 1;
        state.names = state.durable_names.clone();
        let live: BTreeSet<u64> = state.names.values().copied().collect();
        state.inodes.retain(|ino, _| live.contains(ino));
        // Iterate in inode order so that the same `choose` sequence gives the same disk.
        let mut inos: Vec<u64> = state.inodes.keys().copied().collect();
        inos.sort_unstable();
        for ino in inos {
            let Some(inode) = state.inodes.get_mut(&ino) else {
                unreachable!("inode {ino} was listed above");
            };
            let mut bytes = inode.durable.clone();
            let pending = std::mem::take(&mut inode.pending);
            let kept = choose(pending.len() as u64 + 1) as usize;
            for op in &pending[..kept] {
                apply(&mut bytes, op);
            }
            if let Some(PendingOp::Write { offset, data }) = pending.get(kept) {
                // The first lost write may be torn: a prefix of it reached the platter.
                let torn_len = choose(data.len() as u64 + 1) as usize;
                if torn_len > 0 {
                    let torn = PendingOp::Write {
                        offset: *offset,
                        data: data[..torn_len].to_vec(),
                    };
                    apply(&mut bytes, &torn);
                }
            }
            inode.durable = bytes.clone();
            inode.current = bytes;
        }
    }

    /// Simulates the death of the process (`kill -9`), not of the machine:
    /// every write and name already made stays (the kernel's page cache
    /// outlives the process), but every handle opened before is dead.
    pub fn kill_process(&self) {
        let mut state = self.lock();
        state.generation += 1;
        state.durable_names = state.names.clone();
        for inode in state.inodes.values_mut() {
            inode.pending.clear();
            inode.durable = inode.current.clone();
        }
    }

    /// Fills (`Some(dir)`) or frees (`None`) the device holding `dir`:
    /// while full, every write to a file under `dir` stores its first half
    /// and then fails with `StorageFull` (ENOSPC; a real full disk may take
    /// part of a write), and every allocation that grows a file fails with
    /// nothing done.
    /// Reads, syncs, truncations, renames and removals still work.
    pub fn set_full(&self, dir: Option<&Path>) {
        self.lock().full_under = dir.map(Path::to_path_buf);
    }

    /// Counters since the disk was made.
    pub fn stats(&self) -> SimDiskStats {
        let state = self.lock();
        SimDiskStats {
            bytes_written: state.bytes_written,
            syncs: state.syncs,
        }
    }

    /// Flips one bit of the file at `path` (current and durable bytes), to
    /// test corruption detection. Returns false if there is no such byte.
    pub fn flip_bit(&self, path: &Path, offset: u64, bit: u8) -> bool {
        let mut state = self.lock();
        let Some(&ino) = state.names.get(path) else {
            return false;
        };
        let Some(inode) = state.inodes.get_mut(&ino) else {
            unreachable!("inode {ino} has a name, so it exists");
        };
        let Ok(at) = usize::try_from(offset) else {
            return false;
        };
        if at >= inode.current.len {
            return false;
        }
        inode.current.flip_bit(at, bit);
        if at < inode.durable.len {
            inode.durable.flip_bit(at, bit);
        }
        true
    }
}

impl Disk for SimDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        for ancestor in dir.ancestors() {
            if !ancestor.as_os_str().is_empty() {
                state.dirs.insert(ancestor.to_path_buf());
            }
        }
        Ok(())
    }

    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn DiskFile>> {
        let mut state = self.lock();
        let parent = path.parent().unwrap_or(Path::new(""));
        if !parent.as_os_str().is_empty() && !state.dirs.contains(parent) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{}: no such directory (simulated disk)", parent.display()),
            ));
        }
        let existing = state.names.get(path).copied();
        let ino = match (mode, existing) {
            (OpenMode::Read | OpenMode::ReadWrite, None) => return Err(not_found(path)),
            (OpenMode::CreateNew, Some(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{}: already exists (simulated disk)", path.display()),
                ))
            }
            (_, Some(ino)) => ino,
            (_, None) => {
                let ino = state.next_inode;
                state.next_inode += 1;
                state.inodes.insert(ino, Inode::default());
                state.names.insert(path.to_path_buf(), ino);
                ino
            }
        };
        let file = SimFile {
            state: Arc::clone(&self.state),
            ino,
            generation: state.generation,
            writable: mode != OpenMode::Read,
            path: path.to_path_buf(),
        };
        drop(state);
        if mode == OpenMode::Truncate {
            file.set_len(0)?;
        }
        Ok(Box::new(file))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.lock();
        let ino = state.names.remove(from).ok_or_else(|| not_found(from))?;
        state.names.insert(to.to_path_buf(), ino);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.lock();
        state.names.remove(path).ok_or_else(|| not_found(path))?;
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.lock();
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        let names = state
            .names
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned))
            .collect();
        Ok(names)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.lock();
        if !state.dirs.contains(dir) {
            return Err(not_found(dir));
        }
        state.syncs += 1;
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        state.durable_names.retain(|p, _| !in_dir(p));
        let current: Vec<(PathBuf, u64)> = state
            .names
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        state.durable_names.extend(current);
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let state = self.lock();
        state.names.contains_key(path) || state.dirs.contains(path)
    }
}

#[derive(Debug)]
struct SimFile {
    state: Arc<Mutex<State>>,
    ino: u64,
    generation: u64,
    writable: bool,
    path: PathBuf,
}

impl SimFile {
    fn lock(&self) -> io::Result<MutexGuard<'_, State>> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.generation != self.generation {
            return Err(io::Error::other(format!(
                "{}: handle opened before a simulated crash",
                self.path.display()
            )));
        }
        Ok(state)
    }

    fn check_writable(&self) -> io::Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!("{}: opened read-only", self.path.display()),
            ))
        }
    }

    fn modify(&self, mut op: PendingOp) -> io::Result<()> {
        self.check_writable()?;
        let mut state = self.lock()?;
        let full = state
            .full_under
            .as_ref()
            .is_some_and(|dir| self.path.starts_with(dir));
        // Allocating what a file already holds takes no space.
        let grows = match (&op, state.inodes.get(&self.ino)) {
            (PendingOp::Allocate(len), Some(inode)) => {
                usize::try_from(*len).map_or(true, |len| len > inode.current.len)
            }
            _ => true,
        };
        let full = full && grows;
        let mut no_space = None;
        if full {
            let error = io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "{}: no space left on device (simulated disk)",
                    self.path.display()
                ),
            );
            match &mut op {
                PendingOp::Write { data, .. } if data.len() > 1 => {
                    data.truncate(data.len() / 2);
                    no_space = Some(error);
                }
                PendingOp::Write { .. } | PendingOp::Allocate(_) => return Err(error),
                PendingOp::SetLen(_) => {}
            }
        }
        if let PendingOp::Write { data, .. } = &op {
            state.bytes_written += data.len() as u64;
        }
        let inode = state
            .inodes
            .get_mut(&self.ino)
            .ok_or_else(|| not_found(&self.path))?;
        apply(&mut inode.current, &op);
        inode.pending.push(op);
        match no_space {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

impl DiskFile for SimFile {
    fn len(&self) -> io::Result<u64> {
        let state = self.lock()?;
        let inode = state
            .inodes
            .get(&self.ino)
            .ok_or_else(|| not_found(&self.path))?;
        Ok(inode.current.len as u64)
    }

    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let state = self.lock()?;
        let inode = state
            .inodes
            .get(&self.ino)
            .ok_or_else(|| not_found(&self.path))?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let end = start.saturating_add(buf.len());
        if end > inode.current.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{}: read of {} bytes at {offset} past the end ({} bytes)",
                    self.path.display(),
                    buf.len(),
                    inode.current.len
                ),
            ));
        }
        inode.current.read(start, buf);
        Ok(())
    }

    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.modify(PendingOp::Write {
            offset,
            data: data.to_vec(),
        })
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.modify(PendingOp::SetLen(len))
    }

    /// Like a `set_len` that only grows: a pending operation, ordered with
    /// the writes, kept by a crash only with every write before it.
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.modify(PendingOp::Allocate(len))
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.lock()?;
        state.syncs += 1;
        let inode = state
            .inodes
            .get_mut(&self.ino)
            .ok_or_else(|| not_found(&self.path))?;
        for op in std::mem::take(&mut inode.pending) {
            apply(&mut inode.durable, &op);
        }
        debug_assert_eq!(inode.durable, inode.current);
        Ok(())
    }
}
