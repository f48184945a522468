//! Committed entries into the store, and the answers that go with them: at
//! commit for updates whose result the store cannot change, after the apply
//! for the rest; the applying pace of a node that is not master; store
//! checkpoints.

use crate::env::Env;
use crate::error::ReplicaError;
use crate::replica::{Replica, DIRECT_ANSWERS_MAX};
use crate::updates::Refused;
use crate::StoreAccess;
use consensus::{Role, Time};

/// Most entries applied in one round (a long replay or catch-up must not
/// keep the loop from heartbeats and acknowledgements).
const APPLY_PER_ROUND_MAX: u64 = 1024;
/// Most bytes of entries read from the tlog at once to apply them.
const APPLY_READ_MAX_BYTES: u64 = 8 << 20;
/// A node that is not master applies its committed entries once this many
/// wait, whatever `slave_apply_delay` says (one store transaction each).
const SLAVE_APPLY_BATCH_ENTRIES: u64 = 64;

impl<S: StoreAccess, W> Replica<S, W> {
    /// Answers, ahead of the apply, the updates of committed entries whose
    /// result the store cannot change ([`store::result_before_apply`]:
    /// sets, nops, sequences of those), saving them the store transaction's
    /// time. The answered index is published first, and every read waits
    /// until the store applied it (`Published::answered_index`), so a read
    /// that follows such an answer sees the update, whatever its
    /// consistency. The entry is committed (a quorum fsynced it, this node
    /// included), so the answer holds even if this node dies before
    /// applying it.
    pub(crate) fn answer_before_apply(&mut self, env: &mut impl Env<Waiter = W>) {
        let applied = self.store.store().applied_index();
        if self.commit_index <= applied.max(self.answered_index) {
            return;
        }
        let from = applied.max(self.answered_index) + 1;
        let mut answerable = Vec::new();
        for (&index, p) in self.pending.range(from..=self.commit_index) {
            // Our proposal is what committed at `index` only if the tlog
            // holds it with our term there.
            if self.tlog.term(index) == Some(p.term)
                && p.waiting.iter().flatten().any(|w| self.known_at_commit(w))
            {
                answerable.push(index);
            }
        }
        let Some(&highest) = answerable.last() else {
            return;
        };
        self.answered_index = highest;
        self.publish(env); // before any answer goes out
        for index in answerable {
            let Some(p) = self.pending.get_mut(&index) else {
                continue;
            };
            let direct = p.waiting.len() <= DIRECT_ANSWERS_MAX;
            let mut taken = Vec::new();
            for slot in p.waiting.iter_mut() {
                if slot.as_ref().is_some_and(|w| w.before_apply.is_some()) {
                    if let Some(w) = slot.take() {
                        taken.push(w);
                    }
                }
                #[cfg(feature = "broken")]
                if slot.as_ref().is_some_and(|w| w.update.is_some()) {
                    if let Some(mut w) = slot.take() {
                        let update = w.update.take();
                        w.before_apply =
                            update.and_then(|u| crate::broken::result_now(self.store.store(), &u));
                        taken.push(w);
                    }
                }
            }
            for w in taken {
                if let Some(result) = w.before_apply {
                    env.answer(w.waiter, Some(index), Ok(result), direct);
                }
            }
        }
    }

    /// Whether a waiting update's answer is known at commit.
    fn known_at_commit(&self, w: &crate::updates::Waiting<W>) -> bool {
        #[cfg(feature = "broken")]
        if w.update.is_some() {
            return true;
        }
        w.before_apply.is_some()
    }

    /// The highest index that may be applied: committed, and durable in
    /// this node's tlog. A store checkpoint must never make durable an entry
    /// a crash could still take from the tlog (the store would be ahead of
    /// its tlog at the next start), and a slave may learn that an entry is
    /// committed before its own fsync of it ends.
    pub(crate) fn appliable_index(&self) -> u64 {
        let applied = self.store.store().applied_index();
        self.commit_index.min(self.reported_synced.max(applied))
    }

    /// Applies committed entries, at most [`APPLY_PER_ROUND_MAX`] per round;
    /// the rest in the next rounds.
    pub(crate) fn apply_committed(
        &mut self,
        env: &mut impl Env<Waiter = W>,
    ) -> Result<(), ReplicaError> {
        if !self.apply_due(env.now()) {
            return Ok(());
        }
        let applied = self.store.store().applied_index();
        let commit_index = self.appliable_index();
        let stop_at = commit_index.min(applied + APPLY_PER_ROUND_MAX);
        if stop_at < commit_index {
            self.again = true;
            self.apply_wanted = true; // the rest in the next round
        }
        while self.store.store().applied_index() < stop_at {
            let from = self.store.store().applied_index() + 1;
            let entries = self
                .tlog
                .read(from, stop_at + 1, APPLY_READ_MAX_BYTES)
                .map_err(|e| self.tlog_error(e))?;
            if entries.is_empty() {
                return Err(ReplicaError::fatal(
                    "apply",
                    format!("committed entry {from} missing from the tlog"),
                ));
            }
            self.apply_entries(entries, env)?;
        }
        Ok(())
    }

    /// Whether committed entries are to be applied in this round. A master
    /// applies at once: its reads wait for the store (the lease's read
    /// index, the answered index). Any other node holds them back for up to
    /// `slave_apply_delay` or until [`SLAVE_APPLY_BATCH_ENTRIES`] wait, so
    /// that one store transaction applies several: its reads are
    /// `NoGuarantee` (stale anyway) or `AtLeast(i)`, which asks for the
    /// apply ([`Replica::want_apply`]). Measured on the 2-core test machine:
    /// a redb transaction per entry on both slaves, right when the master
    /// needs the CPU to answer, cost ~10 % of a single client's write
    /// latency.
    fn apply_due(&mut self, now: Time) -> bool {
        let waiting = self
            .appliable_index()
            .saturating_sub(self.store.store().applied_index());
        if waiting == 0 {
            self.apply_deadline = None;
            return false;
        }
        let wanted = std::mem::take(&mut self.apply_wanted);
        let delay = self.settings.slave_apply_delay;
        let deadline = *self.apply_deadline.get_or_insert(now.plus(delay));
        let due = self.core.role() == Role::Master
            || wanted
            || waiting >= SLAVE_APPLY_BATCH_ENTRIES
            || now >= deadline;
        if due {
            self.apply_deadline = None;
        }
        due
    }

    /// Applies consecutive committed entries to the store in one
    /// transaction, then answers the clients of our own entries among them.
    fn apply_entries(
        &mut self,
        entries: Vec<tlog::Entry>,
        env: &mut impl Env<Waiter = W>,
    ) -> Result<(), ReplicaError> {
        let Some(first) = entries.first().map(|e| e.index) else {
            return Ok(());
        };
        let mut batches = Vec::with_capacity(entries.len());
        for (k, entry) in entries.iter().enumerate() {
            assert_eq!(entry.index, first + k as u64, "tlog read out of order");
            batches.push(if entry.payload.is_empty() {
                Vec::new() // the master's barrier entry of its term
            } else {
                protocol::decode_batch(&entry.payload, &self.settings.payload_limits).map_err(
                    |e| ReplicaError::fatal("apply", format!("entry {}: {e}", entry.index)),
                )?
            });
        }
        let all_results = self.store.store().apply_entries(first, &batches)?;
        let last = first + entries.len() as u64 - 1;
        // One result list per entry, and the store moved exactly to the last.
        assert_eq!(
            all_results.len(),
            entries.len(),
            "results of entries {first}..={last}"
        );
        assert_eq!(
            self.store.store().applied_index(),
            last,
            "store applied entries {first}..={last}"
        );
        assert!(last <= self.commit_index, "applied past the commit index");
        env.applied(&entries, &batches, self.store.store());
        for ((entry, updates), results) in entries.iter().zip(&batches).zip(all_results) {
            let index = entry.index;
            assert_eq!(results.len(), updates.len(), "results of entry {index}");
            let Some(p) = self.pending.remove(&index) else {
                continue;
            };
            if p.term == entry.term {
                assert_eq!(
                    p.waiting.len(),
                    results.len(),
                    "one result per update of our own entry {index}"
                );
                // Few clients: the caller's direct path (latency). Many:
                // their connections, in parallel with the next round
                // (throughput).
                let direct = p.waiting.len() <= DIRECT_ANSWERS_MAX;
                for (w, result) in p.waiting.into_iter().zip(results) {
                    if let Some(w) = w {
                        env.answer(w.waiter, Some(index), Ok(result), direct);
                    }
                }
            } else {
                // Another master's entry won this index: ours never
                // committed (nothing of it was answered ahead: that needs
                // the entry in the tlog with our term).
                for w in p.waiting.into_iter().flatten() {
                    env.answer(w.waiter, Some(index), Err(Refused::NoLongerMaster), false);
                }
            }
        }
        self.applied_since_checkpoint += entries.len() as u64;
        if self.applied_since_checkpoint >= self.settings.checkpoint_every_entries {
            self.checkpoint(env.now())?;
        }
        Ok(())
    }

    /// Makes the store durable as applied (one fsync of the store).
    /// Not while the disk is full (`disk_full.rs`): the store's writes
    /// would fail and leave it unusable until reopened.
    pub(crate) fn checkpoint(&mut self, now: Time) -> Result<(), ReplicaError> {
        if self.disk_full.is_some() {
            return Ok(());
        }
        self.store.store().checkpoint()?;
        self.applied_since_checkpoint = 0;
        self.last_checkpoint = now;
        Ok(())
    }
}
