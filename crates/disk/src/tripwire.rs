//! [`Tripwire`]: a [`SimDisk`] that crashes right before its n-th mutating
//! operation, for tests that crash *inside* an operation (creating a store,
//! sealing a segment) at every point in turn. After the crash every
//! operation fails, as for a process that died; reopen on the `SimDisk`.

use crate::{Disk, DiskFile, OpenMode, SimDisk};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A disk that crashes the simulated disk right before its n-th mutating
/// operation, after which every operation fails (the process is "dead").
#[derive(Debug, Clone)]
pub struct Tripwire {
    sim: SimDisk,
    state: Arc<Mutex<TripState>>,
}

/// What the crash is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crash {
    /// The machine loses power: each file's unsynced writes are kept, torn
    /// or lost as the SplitMix64 stream of the seed chooses, and names not
    /// made durable by a directory sync vanish ([`SimDisk::crash`]).
    PowerLoss { seed: u64 },
    /// Only the process dies (`kill -9`): everything written so far stays
    /// ([`SimDisk::kill_process`]).
    ProcessKill,
}

#[derive(Debug, Default)]
struct TripState {
    /// Mutating operations left before the crash; `None`: disarmed.
    countdown: Option<u32>,
    crash: Option<Crash>,
    tripped: bool,
}

impl Tripwire {
    /// A disarmed tripwire over `sim`.
    pub fn new(sim: SimDisk) -> Self {
        Self {
            sim,
            state: Arc::default(),
        }
    }

    /// Arms a power loss: the `after_ops`-th mutating operation from now
    /// (0: the next) crashes `sim` as [`Crash::PowerLoss`] with `seed`.
    pub fn arm(&self, after_ops: u32, seed: u64) {
        self.arm_with(after_ops, Crash::PowerLoss { seed });
    }

    /// Arms: the `after_ops`-th mutating operation from now (0: the next)
    /// fails and `crash` happens instead.
    pub fn arm_with(&self, after_ops: u32, crash: Crash) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *state = TripState {
            countdown: Some(after_ops),
            crash: Some(crash),
            tripped: false,
        };
    }

    /// Disarms; true if the crash happened.
    pub fn disarm(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.countdown = None;
        state.tripped
    }

    fn check(&self, mutating: bool) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.tripped {
            return Err(io::Error::other("simulated process death"));
        }
        if mutating {
            if let Some(left) = state.countdown {
                if left == 0 {
                    state.tripped = true;
                    return Err(match state.crash {
                        Some(Crash::PowerLoss { seed }) => {
                            self.sim.crash(&mut splitmix_chooser(seed));
                            io::Error::other("simulated power loss")
                        }
                        Some(Crash::ProcessKill) | None => {
                            self.sim.kill_process();
                            io::Error::other("simulated process kill")
                        }
                    });
                }
                state.countdown = Some(left - 1);
            }
        }
        Ok(())
    }
}

#[derive(Debug)]
struct TripFile {
    inner: Box<dyn DiskFile>,
    wire: Tripwire,
}

impl DiskFile for TripFile {
    fn len(&self) -> io::Result<u64> {
        self.wire.check(false)?;
        self.inner.len()
    }
    fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.wire.check(false)?;
        self.inner.read_exact_at(offset, buf)
    }
    fn write_all_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.wire.check(true)?;
        self.inner.write_all_at(offset, data)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.wire.check(true)?;
        self.inner.set_len(len)
    }
    fn allocate(&self, len: u64) -> io::Result<()> {
        self.wire.check(true)?;
        self.inner.allocate(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.wire.check(true)?;
        self.inner.sync_data()
    }
}

impl Disk for Tripwire {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        self.check(false)?;
        self.sim.create_dir_all(dir)
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Box<dyn DiskFile>> {
        self.check(!matches!(mode, OpenMode::Read | OpenMode::ReadWrite))?;
        let inner = self.sim.open(path, mode)?;
        Ok(Box::new(TripFile {
            inner,
            wire: self.clone(),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(true)?;
        self.sim.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.check(true)?;
        self.sim.remove(path)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.check(false)?;
        self.sim.list(dir)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(true)?;
        self.sim.sync_dir(dir)
    }
    fn exists(&self, path: &Path) -> bool {
        self.sim.exists(path)
    }
}

/// The choices of a crash from a seed (SplitMix64, each in `0..n`).
pub fn splitmix_chooser(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut state = seed;
    move |n| {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        z % n.max(1)
    }
}
