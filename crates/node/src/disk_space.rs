//! The free-space watch: a master whose disk is nearly full refuses updates
//! (`E_READ_ONLY`, saying which directory has how much) and goes on serving
//! reads, until space returns; nothing it acknowledged is at risk.
//!
//! Every [`CHECK_EVERY`] a task asks the file system (`statvfs`) how much
//! an unprivileged writer may still write in each of the node's home, tlog
//! and tlx directories; below the node's `min_free_disk` the node is
//! [`DiskSpace::low`]. The reserve is what the writes already under way
//! (a batch, a new tlog segment, the store's growth, a collapse) may still
//! take: an update refused here was never proposed. A disk that fills up
//! faster than the watch sees, or under a slave, still fails the write
//! (ENOSPC), and the node stops as on any failed write: it loses nothing it
//! acknowledged, and starts again once there is space.
//!
//! Outside the consensus core and the replica on purpose: the refusal is
//! the service's, before a proposal, like a read-only cluster's.

use crate::stop::{self, StopMode};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// How often the free space is looked at.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);

/// What the watch saw last; shared with the client service.
#[derive(Debug, Default)]
pub struct DiskSpace {
    /// Why updates are refused now (which directory, how much free), if
    /// they are.
    low: Mutex<Option<String>>,
}

impl DiskSpace {
    /// Why updates are refused now, if they are.
    pub fn low(&self) -> Option<String> {
        self.low.lock().map_or(None, |l| l.clone())
    }

    fn set(&self, now: Option<String>) {
        if let Ok(mut low) = self.low.lock() {
            match (&*low, &now) {
                (None, Some(why)) => tracing::warn!("updates refused: {why}"),
                (Some(_), None) => {
                    tracing::info!(
                        "updates taken again: free disk space is back above min_free_disk"
                    )
                }
                _ => {}
            }
            *low = now;
        }
    }
}

/// The first of `dirs` with less than `min_free` bytes free, said in words.
fn check(dirs: &[PathBuf], min_free: u64) -> Option<String> {
    for dir in dirs {
        match disk::available_space(dir) {
            Ok(free) if free < min_free => {
                return Some(format!(
                    "disk full: {} has {} MiB free, below min_free_disk = {} MiB; \
                     updates are taken again when space returns",
                    dir.display(),
                    free >> 20,
                    min_free >> 20
                ))
            }
            Ok(_) => {}
            // A directory that cannot be looked at is not taken for full:
            // its writes fail on their own if it is gone.
            Err(e) => tracing::debug!("free space of {}: {e}", dir.display()),
        }
    }
    None
}

/// Starts the watch over `dirs` (nothing with `min_free` = 0).
pub fn spawn(
    dirs: Vec<PathBuf>,
    min_free: u64,
    mut stop: watch::Receiver<StopMode>,
) -> Arc<DiskSpace> {
    let space = Arc::new(DiskSpace::default());
    if min_free == 0 {
        return space;
    }
    let mut dirs = dirs;
    dirs.sort();
    dirs.dedup();
    let shared = Arc::clone(&space);
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(CHECK_EVERY);
        loop {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stop::stopped(&mut stop) => return,
            }
            let dirs_now = dirs.clone();
            // statvfs may block on a slow file system: off the runtime.
            let seen = tokio::task::spawn_blocking(move || check(&dirs_now, min_free)).await;
            if let Ok(seen) = seen {
                shared.set(seen);
            }
        }
    });
    space
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_above_the_free_space_names_the_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_path_buf();
        assert_eq!(check(std::slice::from_ref(&path), 1), None);
        let why = check(std::slice::from_ref(&path), u64::MAX).expect("low");
        assert!(why.contains(&path.display().to_string()), "{why}");
        assert!(why.contains("min_free_disk"), "{why}");
    }

    #[test]
    fn transitions_are_kept() {
        let space = DiskSpace::default();
        assert_eq!(space.low(), None);
        space.set(Some("full".into()));
        assert_eq!(space.low().as_deref(), Some("full"));
        space.set(None);
        assert_eq!(space.low(), None);
    }
}
