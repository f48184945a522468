//! `arakoon --inject-as-head FILE NODE -config CFG [--force] [--inplace]`:
//! a *stopped* node's store replaced by a backup (`--backup-db`, a store
//! file), so that it starts from the backup's state and catches up from
//! its peers. Arakoon's "head" is our store: the backup becomes it.
//!
//! # When it is safe, and what is refused
//!
//! A backup made by `--backup-db` holds committed state only (a slave's
//! store), at its applied index `ni`, and records the term of entry `ni`
//! (the snapshot base) when the serving node's tlog still held it.
//! Replacing a store with committed state of the same cluster is what a
//! snapshot install does; the node's tlog and hard state (term, vote,
//! standing) are kept, never an entry dropped that the node may have
//! acknowledged. So:
//!
//! - `ni` must be above the node's own store's applied index (Arakoon:
//!   "new head is not an improvement"), unless `--force`.
//! - The node's tlog must let it go on from `ni`: either it holds entry
//!   `ni + 1` or ends at or before `ni`. If it starts after `ni + 1` (those
//!   entries were collapsed away) the node could not replay them: refused,
//!   also with `--force`.
//! - If the tlog ends before `ni`, it is rebased on the backup's entry
//!   `(ni, term)` (`replica::reconcile_storage`, as after a snapshot
//!   install): the backup must record that term; one without it is
//!   refused with what to do.
//! - A node that lost its data (no hard state) may be given a backup: it
//!   still recovers its votes from its peers before it votes (see
//!   `docs/ARCHITECTURE.md`, a node that lost its disk); the backup only
//!   spares it most of the catch-up.
//! - The node must be stopped (as for `--collapse-local`: refused while
//!   its client port is in use on this machine).
//!
//! # A whole cluster from backups (`--whole-cluster`)
//!
//! When every node lost its data, each given a backup would come up
//! recovering and wait for a trusted peer that does not exist. With
//! `--whole-cluster` the injected node is made trusted: a hard state in
//! the backup's term, no vote, a fresh incarnation. That is safe only if no
//! node keeps promises (votes, acknowledgements) of the lost history, so
//! the tool refuses a node that still has a hard state, and the operator
//! uses it on every node (each with a backup of the same cluster); never on
//! one node of a running cluster, whose lost acknowledgements it would
//! forget (give such a node its backup without the flag: it recovers).
//!
//! # Crash safety
//!
//! The backup is copied (or, `--inplace`, moved) to `<store>.inject`,
//! checked there, made durable, and renamed over the store: the rename is
//! the commit point. A crash or Ctrl-C before it leaves the node as it was
//! (the `.inject` file is removed by the node's start or the next run);
//! after it, the node's start
//! rebases the tlog if need be (the same reconcile). The operator's backup
//! file is never opened for writing: checks open the copy.

use crate::collapse_local::refuse_if_running;
use crate::error::NodeError;
use crate::settings::Settings;
use crate::{store_path, tlog_options, tlog_path};
use config::ClusterConfig;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use store::{Store, StoreOptions};
use tlog::Tlog;

/// What `--inject-as-head` reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Injection {
    /// `done` of `total` bytes of the backup copied.
    Copying { done: u64, total: u64 },
    /// What was found, before anything of the node's changed.
    Checked {
        backup_index: u64,
        backup_term: Option<u64>,
        store_index: u64,
        tlog_first: u64,
        tlog_last: u64,
    },
    /// The backup is the node's store; `rebased`: its tlog now starts
    /// after the backup's entry.
    Done { rebased: bool },
}

/// Options of `--inject-as-head`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InjectOptions {
    /// Inject a backup that is not newer than the node's store.
    pub force: bool,
    /// Move the backup file rather than copy it.
    pub in_place: bool,
    /// Every node lost its data: make this one trusted (module docs).
    pub whole_cluster: bool,
}

const COPY_CHUNK: usize = 1 << 20;

fn io_error(what: &str, path: &Path, e: std::io::Error) -> NodeError {
    NodeError::Driver(format!("{what} {}: {e}", path.display()))
}

/// Replaces stopped node `name`'s store with the store file `backup`.
pub fn inject_as_head(
    cluster: ClusterConfig,
    name: &str,
    backup: &Path,
    options: InjectOptions,
    report: &mut dyn FnMut(Injection),
) -> Result<(), NodeError> {
    let settings = Settings::new(cluster, name)?;
    let node = settings.node();
    refuse_if_running(node)?;
    let total = std::fs::metadata(backup)
        .map_err(|e| io_error("the backup", backup, e))?
        .len();
    let store_file = store_path(node);
    if let Some(home) = store_file.parent() {
        std::fs::create_dir_all(home).map_err(|e| io_error("the node's home", home, e))?;
    }
    remove_staged(&store_file)?;
    let staged = staged_path(&store_file);
    // Stage the backup beside the store (same file system: the rename
    // below is atomic).
    let result = stage_and_swap(&settings, backup, &staged, total, options, report);
    if result.is_err() && !options.in_place {
        let _ = std::fs::remove_file(&staged);
    }
    result
}

fn stage_and_swap(
    settings: &Settings,
    backup: &Path,
    staged: &Path,
    total: u64,
    options: InjectOptions,
    report: &mut dyn FnMut(Injection),
) -> Result<(), NodeError> {
    let node = settings.node();
    let store_file = store_path(node);
    let moved = options.in_place && std::fs::rename(backup, staged).is_ok();
    if !moved {
        copy_file(backup, staged, total, report)?;
    }
    let disk = disk::RealDisk::shared();
    // The staged copy: its applied index and the term of that entry.
    let (backup_index, backup_term) = {
        let copy = Store::open(disk.clone(), staged, &StoreOptions::default())?;
        let index = copy.applied_index();
        let base = copy.snapshot_base()?;
        copy.close()?;
        (index, base.filter(|(i, _)| *i == index).map(|(_, t)| t))
    };
    let store_index = if store_file.exists() {
        let store = Store::open(disk.clone(), &store_file, &StoreOptions::default())?;
        let index = store.applied_index();
        store.close()?;
        index
    } else {
        0
    };
    crate::adopt_legacy_tlog_dir(node)?;
    let dir = tlog_path(node);
    let mut tlog = Tlog::open(
        disk.clone(),
        dir.clone(),
        tlog_options(&settings.cluster, node),
    )
    .map_err(|source| NodeError::Tlog {
        dir: dir.clone(),
        source,
    })?;
    report(Injection::Checked {
        backup_index,
        backup_term,
        store_index,
        tlog_first: tlog.first_index(),
        tlog_last: tlog.last_index(),
    });
    let refuse = |why: String| Err(NodeError::Config(why));
    if backup_index == 0 {
        return refuse(format!(
            "{} is an empty store (i = 0): nothing to inject",
            backup.display()
        ));
    }
    if backup_index <= store_index && !options.force {
        return refuse(format!(
            "the backup (i = {backup_index}) is not newer than node {}'s store (i = {store_index}): \
             new head is not an improvement (--force injects it anyway)",
            node.name
        ));
    }
    if tlog.first_index() > backup_index + 1 && tlog.last_index() > backup_index {
        return refuse(format!(
            "node {}'s tlog starts at i = {}: entries {}..={} were collapsed away, so the node \
             could not go on from the backup's i = {backup_index}; use a newer backup",
            node.name,
            tlog.first_index(),
            backup_index + 1,
            tlog.first_index() - 1
        ));
    }
    if let (Some(ours), Some(theirs)) = (tlog.term(backup_index), backup_term) {
        if ours != theirs {
            return refuse(format!(
                "node {}'s tlog has entry {backup_index} in term {ours}, the backup in term \
                 {theirs}: the backup is of another history (another cluster?)",
                node.name
            ));
        }
    }
    let rebase = tlog.last_index() < backup_index;
    if options.whole_cluster {
        if tlog.hard_state().is_some() || tlog.hard_state_unreadable().is_some() {
            return refuse(format!(
                "node {} still has its hard state (its votes): it did not lose its data. \
                 --whole-cluster is for a cluster whose every node did; give this node the \
                 backup without it",
                node.name
            ));
        }
        if !rebase || backup_term.is_none() {
            return refuse(format!(
                "--whole-cluster needs an empty tlog on node {} and a backup that records \
                 the term of its last entry (made by --backup-db)",
                node.name
            ));
        }
    }
    if rebase && backup_term.is_none() {
        return refuse(format!(
            "node {}'s tlog ends at i = {}, before the backup's i = {backup_index}, and the backup \
             does not record the term of its entry {backup_index} (the serving node's tlog no \
             longer held it): make a new backup with --backup-db",
            node.name,
            tlog.last_index()
        ));
    }
    // The commit point: the staged copy, durable, becomes the store.
    sync_file(staged)?;
    std::fs::rename(staged, &store_file)
        .map_err(|e| io_error("rename over the store", &store_file, e))?;
    if let Some(home) = store_file.parent() {
        sync_dir(home)?;
    }
    tracing::info!(
        node = %node.name,
        backup = %backup.display(),
        backup_index,
        store_index,
        "injected as head"
    );
    let store = Store::open(disk, &store_file, &StoreOptions::default())?;
    let rebased = replica::reconcile_storage(&mut tlog, &store)
        .map_err(|e| NodeError::Driver(format!("rebasing the tlog on the backup: {e}")))?;
    assert_eq!(
        rebased, rebase,
        "the reconcile rebases exactly when the tlog ends before the backup"
    );
    if options.whole_cluster {
        let term = backup_term.unwrap_or_default();
        let incarnation = getrandom::u64()
            .map_err(|e| NodeError::Driver(format!("no randomness for the incarnation: {e}")))?
            .max(1);
        let trusted = consensus::HardState {
            term,
            voted_for: None,
            incarnation,
            standing: consensus::Standing::Trusted,
        };
        tlog.save_hard_state(trusted)
            .map_err(|source| NodeError::Tlog {
                dir: dir.clone(),
                source,
            })?;
        tracing::info!(
            node = %node.name,
            term,
            "restored as a trusted member of a whole cluster restored from backups"
        );
    }
    store.close()?;
    report(Injection::Done { rebased });
    Ok(())
}

/// Removes a staged copy an interrupted `--inject-as-head` (Ctrl-C, a
/// crash) left beside the store: it never became the store (the rename is
/// the commit point). Run at the node's start and by the next injection.
pub(crate) fn remove_staged(store_file: &Path) -> Result<(), NodeError> {
    let staged = staged_path(store_file);
    match std::fs::remove_file(&staged) {
        Ok(()) => {
            tracing::info!(path = %staged.display(), "removed the staged copy of an interrupted --inject-as-head");
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_error(
            "an interrupted injection's staged copy",
            &staged,
            e,
        )),
    }
}

/// `<store>.inject`: where the backup is staged.
fn staged_path(store_file: &Path) -> PathBuf {
    let mut name = store_file.as_os_str().to_owned();
    name.push(".inject");
    PathBuf::from(name)
}

fn copy_file(
    from: &Path,
    to: &Path,
    total: u64,
    report: &mut dyn FnMut(Injection),
) -> Result<(), NodeError> {
    let mut source = std::fs::File::open(from).map_err(|e| io_error("open the backup", from, e))?;
    let mut target = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(|e| io_error("create", to, e))?;
    let mut buf = vec![0u8; COPY_CHUNK];
    let mut done = 0u64;
    report(Injection::Copying { done, total });
    loop {
        let n = source
            .read(&mut buf)
            .map_err(|e| io_error("read the backup", from, e))?;
        if n == 0 {
            break;
        }
        target
            .write_all(&buf[..n])
            .map_err(|e| io_error("write", to, e))?;
        done += n as u64;
        report(Injection::Copying { done, total });
    }
    Ok(())
}

fn sync_file(path: &Path) -> Result<(), NodeError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_error("fsync", path, e))
}

fn sync_dir(dir: &Path) -> Result<(), NodeError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_error("fsync the directory", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An interrupted injection's staged copy is removed, the store kept.
    #[test]
    fn a_staged_copy_left_behind_is_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("arakoon_0.db");
        std::fs::write(&store, b"store").unwrap();
        std::fs::write(staged_path(&store), b"half a backup").unwrap();
        remove_staged(&store).unwrap();
        assert!(!staged_path(&store).exists());
        assert_eq!(std::fs::read(&store).unwrap(), b"store");
        remove_staged(&store).unwrap();
    }
}
