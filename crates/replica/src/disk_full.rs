//! A full disk under the tlog: what the replica does when a write fails
//! with ENOSPC (or a quota), instead of stopping the node.
//!
//! A write that fails for lack of space leaves the tlog as it was
//! ([`tlog::TlogError::is_no_space`]): the replica holds what it could not
//! write and tries again, and the node stays up, refusing updates and
//! serving reads, until the disk takes writes again. Any other storage
//! failure still stops the node.
//!
//! Invariants:
//! - The node's log, as the consensus core sees it ([`LocalLog`]), is the
//!   tlog followed by `held`: entries the core handed out that the tlog has
//!   not taken yet. They continue the tlog without a gap.
//! - Nothing in `held` is ever reported synced: the core counts this node
//!   for an entry (a slave's acknowledgement, the master's own vote towards
//!   the commit) only once the tlog wrote and fsynced it. The apply never
//!   passes the synced index, so nothing held is applied either (a store
//!   transaction may reach the disk before a checkpoint: the store would
//!   be ahead of its tlog after a crash; the simulator found that one).
//! - A master on a full disk hands mastership to a caught-up voter (the
//!   others commit without it, and its reads would wait for entries it
//!   cannot apply), retried every [`RETRY_INTERVAL`]; updates go on at the
//!   new master. With no voter to take over it stays, refusing updates.
//! - Nothing reaches the network ahead of the hard state: while a new hard
//!   state is not saved, the round's messages are dropped (as a lossy
//!   network would) and new entries are held, so that no promise (a vote, a
//!   term) goes out that a crash could make this node forget.
//! - While the disk is full, updates are refused (`Refused::DiskFull`,
//!   naming the directory and the error), the store is not checkpointed
//!   (its writes would fail and leave it unusable until reopened), no
//!   segment is sealed, no collapse runs, and no snapshot is installed.
//!   Applies go on: they write nothing to the store's file until a
//!   checkpoint.
//! - Every [`RETRY_INTERVAL`] the replica tries again, in order: the hard
//!   state, the held entries, a seal step. Once all succeed, the disk is
//!   no longer full.

use crate::env::Env;
use crate::error::ReplicaError;
use crate::updates::Refused;
use crate::{Replica, StoreAccess};
use consensus::{HardState, LogError, LogRead, Time};
use std::time::Duration;
use tlog::{Tlog, TlogError};

/// How often a replica on a full disk tries to write again.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(500);

/// The tlog and the entries held in memory after it: the node's log as the
/// consensus core reads it.
pub(crate) struct LocalLog<'a> {
    pub tlog: &'a Tlog,
    pub held: &'a [tlog::Entry],
}

impl<'a> LocalLog<'a> {
    pub fn new(tlog: &'a Tlog, held: &'a [tlog::Entry]) -> LocalLog<'a> {
        if let Some(first) = held.first() {
            assert_eq!(
                first.index,
                tlog.last_index() + 1,
                "held entries continue the tlog"
            );
        }
        LocalLog { tlog, held }
    }

    fn held_entry(&self, index: u64) -> Option<&tlog::Entry> {
        let offset = index.checked_sub(self.tlog.last_index() + 1)?;
        self.held.get(usize::try_from(offset).ok()?)
    }
}

impl LogRead for LocalLog<'_> {
    fn first_index(&self) -> u64 {
        LogRead::first_index(self.tlog)
    }

    fn last_index(&self) -> u64 {
        match self.held.last() {
            Some(e) => e.index,
            None => LogRead::last_index(self.tlog),
        }
    }

    fn term(&self, index: u64) -> Result<u64, LogError> {
        if index <= self.tlog.last_index() {
            return LogRead::term(self.tlog, index);
        }
        self.held_entry(index)
            .map(|e| e.term)
            .ok_or(LogError::Unavailable { index })
    }

    fn entries(
        &self,
        from: u64,
        to: u64,
        max_bytes: u64,
    ) -> Result<Vec<consensus::Entry>, LogError> {
        let tlog_last = self.tlog.last_index();
        let mut out = if from <= tlog_last {
            LogRead::entries(self.tlog, from, to.min(tlog_last), max_bytes)?
        } else {
            Vec::new()
        };
        if to <= tlog_last || out.last().is_some_and(|e| e.index < tlog_last) {
            // All from the tlog, or it stopped at `max_bytes`.
            return Ok(out);
        }
        let mut bytes: u64 = out.iter().map(consensus::Entry::size_bytes).sum();
        for index in from.max(tlog_last + 1)..=to {
            let Some(e) = self.held_entry(index) else {
                return Err(LogError::Unavailable { index });
            };
            let entry = consensus::Entry::from(e.clone());
            if !out.is_empty() && bytes + entry.size_bytes() > max_bytes {
                break;
            }
            bytes += entry.size_bytes();
            out.push(entry);
        }
        Ok(out)
    }
}

/// The disk under the tlog refused a write for lack of space.
#[derive(Debug, Clone)]
pub(crate) struct DiskFull {
    pub since: Time,
    pub retry_at: Time,
    /// When a master tries (again) to hand mastership over.
    pub hand_over_at: Time,
    /// The failure, as the refused updates are told.
    pub why: String,
}

impl<S: StoreAccess, W> Replica<S, W> {
    /// Why updates are refused for a full disk, if they are.
    pub fn disk_full(&self) -> Option<&str> {
        self.disk_full.as_ref().map(|d| d.why.as_str())
    }

    /// Entries handed out by the core that the tlog has not taken yet.
    pub fn held_entries(&self) -> usize {
        self.held.len()
    }

    /// Whether the replica holds back writes until [`DiskFull::retry_at`].
    fn waiting_for_space(&self, now: Time) -> bool {
        self.disk_full.as_ref().is_some_and(|d| now < d.retry_at)
    }

    /// When to try writing again, if the disk is full.
    pub(crate) fn disk_retry_at(&self) -> Option<Time> {
        let master = self.core.role() == consensus::Role::Master;
        self.disk_full.as_ref().map(|d| {
            if master {
                d.retry_at.min(d.hand_over_at)
            } else {
                d.retry_at
            }
        })
    }

    /// A write failed for lack of space: hold on and retry later. Any other
    /// failure is the node's end.
    pub(crate) fn on_write_failed(&mut self, e: TlogError, now: Time) -> Result<(), ReplicaError> {
        if !e.is_no_space() {
            return Err(self.tlog_error(e));
        }
        let retry_at = now.plus(RETRY_INTERVAL);
        match &mut self.disk_full {
            Some(d) => d.retry_at = retry_at,
            None => {
                let why = format!(
                    "no space left for the tlog in {}: {e}; updates are refused until it can write again",
                    self.tlog.dir().display()
                );
                tracing::error!(held = self.held.len(), "{why}");
                self.disk_full = Some(DiskFull {
                    since: now,
                    retry_at,
                    hand_over_at: now,
                    why,
                });
            }
        }
        Ok(())
    }

    /// The round's hard state and entries: saved and appended, or held
    /// while the disk is full (see the module doc). Returns whether the
    /// round's messages may leave (the hard state is saved).
    pub(crate) fn persist(
        &mut self,
        hard_state: Option<HardState>,
        entries: &[consensus::Entry],
        env: &mut impl Env<Waiter = W>,
    ) -> Result<bool, ReplicaError> {
        if hard_state.is_some() {
            self.unsaved_hard_state = hard_state;
        }
        self.held.extend(entries.iter().map(tlog::Entry::from));
        let now = env.now();
        if self.waiting_for_space(now) {
            return Ok(self.unsaved_hard_state.is_none());
        }
        if let Some(hs) = self.unsaved_hard_state {
            match self.tlog.save_hard_state(hs) {
                Ok(()) => self.unsaved_hard_state = None,
                Err(e) => {
                    self.on_write_failed(e, now)?;
                    return Ok(false);
                }
            }
        }
        if !self.held.is_empty() {
            let before = self.tlog.last_index();
            let result = self.tlog.append(&self.held);
            let written = usize::try_from(self.tlog.last_index() - before)
                .unwrap_or(usize::MAX)
                .min(self.held.len());
            if written > 0 {
                env.appended(&self.held[..written], now);
            }
            self.held.drain(..written);
            #[cfg(feature = "broken")]
            let result = self.broken_ack_held(result, env)?;
            if let Err(e) = result {
                self.on_write_failed(e, now)?;
                return Ok(true);
            }
            assert!(self.held.is_empty(), "an append takes every entry or fails");
        }
        Ok(true)
    }

    /// A seal step after an fsync, unless the disk is full; a seal that
    /// finds the disk full makes it so.
    pub(crate) fn seal_step(&mut self, now: Time) -> Result<(), ReplicaError> {
        if self.disk_full.is_some() {
            return Ok(());
        }
        match self.tlog.seal_pending() {
            Ok(_) => Ok(()),
            Err(e) => self.on_write_failed(e, now),
        }
    }

    /// At [`DiskFull::retry_at`]: the hard state, the held entries, a seal
    /// step. All written: the disk is no longer full.
    pub(crate) fn retry_writes(
        &mut self,
        env: &mut impl Env<Waiter = W>,
    ) -> Result<(), ReplicaError> {
        let now = env.now();
        if self.disk_full.is_none() {
            return Ok(());
        }
        self.hand_over_if_full(env)?;
        if self.waiting_for_space(now) {
            return Ok(());
        }
        if !self.persist(None, &[], env)? || !self.held.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.tlog.seal_pending() {
            return self.on_write_failed(e, now);
        }
        if let Some(d) = self.disk_full.take() {
            tracing::warn!(
                full_seconds = now.0.saturating_sub(d.since.0) as f64 / 1e9,
                "the tlog takes writes again: updates are accepted"
            );
        }
        self.sync_due_after_rebase();
        self.again = true;
        Ok(())
    }

    /// A master on a full disk hands mastership over, if a voter can take
    /// it (tried again every [`RETRY_INTERVAL`]).
    pub(crate) fn hand_over_if_full(
        &mut self,
        env: &mut impl Env<Waiter = W>,
    ) -> Result<(), ReplicaError> {
        let now = env.now();
        let due = self
            .disk_full
            .as_ref()
            .is_some_and(|d| now >= d.hand_over_at);
        if !due || self.core.role() != consensus::Role::Master {
            return Ok(());
        }
        if let Some(d) = self.disk_full.as_mut() {
            d.hand_over_at = now.plus(RETRY_INTERVAL);
        }
        match self.drop_master(env)? {
            Ok(()) => tracing::warn!("the disk is full: handing mastership over"),
            Err(why) => {
                tracing::warn!("the disk is full; staying master, refusing updates: {why}")
            }
        }
        Ok(())
    }

    /// The refusal for an update while the disk is full.
    pub(crate) fn refused_for_disk(&self) -> Option<Refused> {
        let d = self.disk_full.as_ref()?;
        Some(Refused::DiskFull(d.why.clone()))
    }

    /// The broken variant: entries the tlog refused are reported synced as
    /// if written (the node acknowledges what its disk does not hold).
    #[cfg(feature = "broken")]
    fn broken_ack_held(
        &mut self,
        result: Result<u64, TlogError>,
        env: &mut impl Env<Waiter = W>,
    ) -> Result<Result<u64, TlogError>, ReplicaError> {
        if self.settings.broken != Some(crate::settings::Broken::AckHeldEntries) {
            return Ok(result);
        }
        if let (Err(e), Some(last)) = (&result, self.held.last()) {
            if e.is_no_space() {
                let (index, term) = (last.index, last.term);
                self.core
                    .entries_synced(
                        index,
                        term,
                        env.now(),
                        &LocalLog::new(&self.tlog, &self.held),
                    )
                    .map_err(|e| ReplicaError::fatal("entries_synced", e))?;
            }
        }
        Ok(result)
    }
}
