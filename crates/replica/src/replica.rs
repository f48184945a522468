//! [`Replica`]: the core, the tlog and the store of one node, and the loop
//! that drives them (see the crate doc for the contract).

use crate::disk_full::LocalLog;
use crate::env::{Env, SyncOutcome};
use crate::error::ReplicaError;
use crate::progress::{Tracker, Whose};
use crate::published::Published;
use crate::settings::Settings;
use crate::updates::{Proposal, Queued, Refused, Waiting};
use crate::StoreAccess;
use bytes::Bytes;
use consensus::{Core, Message, NodeId, ProposeError, Role, StepError, Time};
use protocol::Update;
use std::collections::{BTreeMap, VecDeque};
use tlog::{Synced, Tlog, TlogError};

/// Most rounds run back to back in one [`Replica::settle`] (a round may
/// produce work for the next one, e.g. entries counted as synced with
/// `fsync = false`); the rest after the next input.
const ROUNDS_PER_SETTLE_MAX: usize = 8;
/// Most updates in one entry whose answers may take the caller's direct
/// path (the node writes a plain success to the client's socket itself);
/// an entry with more is answered through the connections. Measured on the
/// 2-core test machine: at 64 clients, direct answers for every update cost
/// 10–20 % of the writes per second, the driver being the one serial thread.
pub(crate) const DIRECT_ANSWERS_MAX: usize = 4;

/// What [`Replica::settle`] asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Messages were queued that should leave before the replica goes on:
    /// let them (the node yields to its messaging tasks), then call
    /// `settle` again.
    Yield,
    /// Nothing left to do until the next input.
    Done,
}

/// Where [`Replica::settle`] stands within a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Propose the queued updates, take the core's `Ready`, persist, send.
    Round,
    /// Fsync what was appended (then another round), or answer and apply.
    Sync,
    /// The round is over: another one, or done.
    Finish,
}

/// One node's replication driver: core, tlog, store, and the updates in
/// flight. `S` shares the store with readers; `W` is the caller's waiter.
pub struct Replica<S, W> {
    pub(crate) settings: Settings,
    pub(crate) core: Core,
    pub(crate) tlog: Tlog,
    pub(crate) store: S,
    queued: VecDeque<Queued<W>>,
    /// Proposed entries by index.
    pub(crate) pending: BTreeMap<u64, Proposal<W>>,
    /// The highest index with an update answered before the store applied
    /// it (published before the answer goes out).
    pub(crate) answered_index: u64,
    pub(crate) applied_since_checkpoint: u64,
    pub(crate) last_checkpoint: Time,
    /// `fsync = false` and a synced update was appended: fsync it for real.
    force_sync: bool,
    /// `fsync = false`: when the tlog was last fsynced for real (relaxed
    /// modes, [`Settings::relaxed_fsync_interval`]).
    last_relaxed_fsync: Time,
    /// A round left work for another round.
    pub(crate) again: bool,
    /// Entries were appended and need an fsync.
    sync_due: bool,
    /// An fsync runs elsewhere (see [`SyncOutcome::Pending`]).
    sync_pending: bool,
    /// The highest index reported to the core as synced (with `fsync =
    /// false`, the tlog's own synced index stays behind).
    pub(crate) reported_synced: u64,
    /// The commit index of the last `Ready` (what may be applied).
    pub(crate) commit_index: u64,
    /// Not master, committed entries wait: apply them by then.
    pub(crate) apply_deadline: Option<Time>,
    /// A reader asked for the committed entries to be applied now.
    pub(crate) apply_wanted: bool,
    published: Published,
    /// This node's catch-up, followed while it is not master.
    catch_up: Tracker,
    /// On the master: each peer's catch-up.
    peers_catch_up: BTreeMap<NodeId, Tracker>,
    phase: Phase,
    rounds: usize,
    /// Messages went out in this round.
    sent: bool,
    /// ... and should leave before the fsync (or the answers).
    messages_first: bool,
    /// Snapshot transfers, sent and received.
    pub(crate) transfers: crate::snapshot::Transfers,
    /// A tlog collapse in progress (`collapse.rs`).
    pub(crate) collapse_run: Option<crate::collapse::CollapseRun>,
    /// Entries the core handed out that the tlog could not take yet (a
    /// full disk; see `disk_full.rs`): the log is the tlog, then these.
    pub(crate) held: Vec<tlog::Entry>,
    /// A hard state the tlog could not save yet (a full disk): no message
    /// leaves until it is saved.
    pub(crate) unsaved_hard_state: Option<consensus::HardState>,
    /// The disk refused a write for lack of space (`disk_full.rs`).
    pub(crate) disk_full: Option<crate::disk_full::DiskFull>,
}

impl<S, W> std::fmt::Debug for Replica<S, W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("core", &self.core.status())
            .field("tlog_last_index", &self.tlog.last_index())
            .field("queued", &self.queued.len())
            .field("pending", &self.pending.len())
            .field("answered_index", &self.answered_index)
            .field("commit_index", &self.commit_index)
            .finish_non_exhaustive()
    }
}

impl<S: StoreAccess, W> Replica<S, W> {
    /// A replica over a core started on this tlog and store (`Core::new`
    /// with the store's applied index), at local time `now`.
    pub fn new(settings: Settings, core: Core, tlog: Tlog, store: S, now: Time) -> Replica<S, W> {
        // Open synced everything it recovered.
        let reported_synced = tlog.last_index();
        let applied = store.store().applied_index();
        let published = Published::initial(
            core.role(),
            core.standing(),
            core.term(),
            applied,
            tlog.last_index(),
        );
        let replica = Replica {
            settings,
            core,
            tlog,
            store,
            queued: VecDeque::new(),
            pending: BTreeMap::new(),
            answered_index: 0,
            applied_since_checkpoint: 0,
            last_checkpoint: now,
            last_relaxed_fsync: now,
            force_sync: false,
            again: false,
            sync_due: false,
            sync_pending: false,
            reported_synced,
            commit_index: applied,
            apply_deadline: None,
            apply_wanted: false,
            published,
            catch_up: Tracker::default(),
            peers_catch_up: BTreeMap::new(),
            phase: Phase::Round,
            rounds: 0,
            sent: false,
            messages_first: false,
            transfers: crate::snapshot::Transfers::default(),
            collapse_run: None,
            held: Vec::new(),
            unsaved_hard_state: None,
            disk_full: None,
        };
        replica.remove_stale_scratch();
        replica
    }

    // ----- queries -------------------------------------------------------

    /// The consensus core.
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// The tlog.
    pub fn tlog(&self) -> &Tlog {
        &self.tlog
    }

    /// The store.
    pub fn store(&self) -> &store::Store {
        self.store.store()
    }

    /// The state as last published.
    pub fn published(&self) -> &Published {
        &self.published
    }

    /// Updates queued or proposed and not answered yet.
    pub fn has_waiters(&self) -> bool {
        !self.queued.is_empty()
            || self
                .pending
                .values()
                .any(|p| p.waiting.iter().any(Option::is_some))
    }

    /// The next local time the replica wants to be woken at
    /// ([`Replica::wake`]), if any: a commit index the slaves are owed, or
    /// committed entries a slave holds back.
    pub fn wake_at(&self) -> Option<Time> {
        [
            self.core.commit_announce_due(),
            self.apply_deadline,
            self.transfers.wake_at(),
            self.collapse_due_at(),
            self.disk_retry_at(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ----- inputs ----------------------------------------------------------

    /// A message from a peer. A refused message (malformed, of another
    /// cluster member's confusion, or the storage failing: `StepError::Log`,
    /// after which the caller stops) is handed back.
    pub fn step(&mut self, msg: Message, env: &mut impl Env<Waiter = W>) -> Result<(), StepError> {
        self.core
            .step(msg, env.now(), &LocalLog::new(&self.tlog, &self.held))
    }

    /// Time passed: the core's timers, a store checkpoint when one is due
    /// by time, and the automatic collapse policy (`collapse.rs`).
    pub fn tick(&mut self, env: &mut impl Env<Waiter = W>) -> Result<(), ReplicaError> {
        let now = env.now();
        self.core
            .tick(now, &LocalLog::new(&self.tlog, &self.held))
            .map_err(|e| ReplicaError::fatal("tick", e))?;
        let store = self.store.store();
        if store.applied_index() > store.durable_applied_index()
            && now >= self.last_checkpoint.plus(self.settings.checkpoint_interval)
        {
            self.checkpoint(now)?;
        }
        self.auto_collapse(env)?;
        self.snapshot_timers(env)
    }

    /// Called at [`Replica::wake_at`]: the core is ticked if a commit
    /// announcement is due; committed entries held back are applied by the
    /// next [`Replica::settle`]; a due step of a tlog collapse runs.
    pub fn wake(&mut self, env: &mut impl Env<Waiter = W>) -> Result<(), ReplicaError> {
        let now = env.now();
        self.retry_writes(env)?;
        if self.core.commit_announce_due().is_some_and(|t| now >= t) {
            self.tick(env)?;
        }
        self.collapse_step(env)?;
        self.snapshot_timers(env)
    }

    /// A reader waits for an index this node holds but has not applied
    /// (`AtLeast(i)`): apply what is committed at the next settle, whatever
    /// `slave_apply_delay` says.
    pub fn want_apply(&mut self) {
        self.apply_wanted = true;
    }

    /// A client update: queued for the next entry on a master, refused
    /// otherwise (`NotMaster`, `ReadOnly`).
    pub fn submit(&mut self, update: Update, waiter: W, env: &mut impl Env<Waiter = W>) {
        let before_apply = store::result_before_apply(&update);
        if self.settings.read_only {
            env.answer(waiter, None, Err(Refused::ReadOnly), false);
        } else if let Some(refused) = self.refused_for_disk() {
            env.answer(waiter, None, Err(refused), false);
        } else if self.core.role() != Role::Master {
            env.answer(
                waiter,
                None,
                Err(Refused::NotMaster(self.core.master())),
                false,
            );
        } else {
            let encoded_len = update.encoded_len();
            #[cfg(feature = "broken")]
            let kept = (self.settings.broken
                == Some(crate::settings::Broken::AnswerStoreDependentAtCommit))
            .then(|| update.clone());
            self.queued.push_back(Queued {
                update,
                encoded_len,
                waiting: Waiting {
                    waiter,
                    before_apply,
                    #[cfg(feature = "broken")]
                    update: kept,
                },
            });
        }
    }

    /// `drop_master`: hands mastership to the most caught-up other voter
    /// that will take it. `Ok(Err(reason))` when none can.
    pub fn drop_master(
        &mut self,
        env: &mut impl Env<Waiter = W>,
    ) -> Result<Result<(), String>, ReplicaError> {
        if self.core.role() != Role::Master {
            return Ok(Ok(()));
        }
        let now = env.now();
        let me = self.core.id();
        // The most caught-up other voter first.
        let mut voters: Vec<(u64, NodeId)> = self
            .core
            .config()
            .voters
            .iter()
            .filter(|v| **v != me)
            .map(|v| (self.core.peer_progress(*v).map_or(0, |(m, _)| m), *v))
            .collect();
        voters.sort_by(|a, b| b.cmp(a));
        for (_, target) in voters {
            let handed = self
                .core
                .hand_over_to(target, now, &LocalLog::new(&self.tlog, &self.held))
                .map_err(|e| ReplicaError::fatal("hand over", e))?;
            if handed {
                tracing::info!(target = %target, "drop_master: handing mastership over");
                return Ok(Ok(()));
            }
        }
        Ok(Err(
            "no caught-up voter to hand mastership to (or a hand-over is under way)".into(),
        ))
    }

    /// The fsync handed out as [`SyncOutcome::Pending`] finished.
    pub fn sync_finished(
        &mut self,
        result: Result<Synced, TlogError>,
        env: &mut impl Env<Waiter = W>,
    ) -> Result<(), ReplicaError> {
        assert!(self.sync_pending, "an fsync finished that was not pending");
        self.sync_pending = false;
        self.on_synced(result, env)
    }

    // ----- the loop ----------------------------------------------------------

    /// Runs rounds until the input is dealt with: updates proposed, the
    /// `Ready` persisted and sent, appended entries fsynced (and
    /// acknowledged), committed updates answered and entries applied. At
    /// most a few rounds; the rest after the next input.
    ///
    /// One round: (1) propose the queued updates, a batch per entry; (2)
    /// take the `Ready`, persist the hard state (durable, before any
    /// message), truncate and append (buffered); (3) publish, *then* send
    /// the messages; no longer master: every proposed update is answered
    /// `NoLongerMaster`, every queued one `NotMaster`; (4) yield so the
    /// messages leave: the master's appends before its own fsync (the
    /// slaves' fsyncs run in parallel with it), a slave's acknowledgement
    /// before anything else; a master's round without new entries (only
    /// heartbeats) yields after step 6 instead, so the clients are answered
    /// first; (5) fsync what was appended, report it to the core, and run
    /// another round (the acknowledgement leaves at once); (6) answer the
    /// committed updates whose result the store cannot change, after
    /// publishing their index, then apply committed entries (a master at
    /// once, others at their pace) and answer the rest.
    pub fn settle(&mut self, env: &mut impl Env<Waiter = W>) -> Result<Settle, ReplicaError> {
        loop {
            match self.phase {
                Phase::Round => {
                    if self.rounds >= ROUNDS_PER_SETTLE_MAX {
                        self.rounds = 0;
                        return Ok(Settle::Done);
                    }
                    self.rounds += 1;
                    self.again = false;
                    self.flush_updates(env)?;
                    self.sent = self.round(env)?;
                    // Right after a `Ready` was taken, as the core wants.
                    if self.transfers.install_due() {
                        self.install_snapshot(env)?;
                        self.sent = true;
                    }
                    self.pump_snapshots(env)?;
                    self.messages_first = self.sync_due || self.core.role() != Role::Master;
                    self.phase = Phase::Sync;
                    if self.sent && self.messages_first {
                        return Ok(Settle::Yield);
                    }
                }
                Phase::Sync => {
                    if self.sync_due && !self.sync_pending {
                        self.sync_due = false;
                        self.sync(env)?;
                        if !self.sync_pending {
                            // The next round sends what the fsync allows.
                            self.phase = Phase::Round;
                            continue;
                        }
                    }
                    self.answer_before_apply(env);
                    self.apply_committed(env)?;
                    self.publish(env);
                    self.phase = Phase::Finish;
                    if self.sent && !self.messages_first {
                        return Ok(Settle::Yield);
                    }
                }
                Phase::Finish => {
                    self.phase = Phase::Round;
                    if !self.again {
                        self.rounds = 0;
                        return Ok(Settle::Done);
                    }
                }
            }
        }
    }

    /// Proposes the queued updates, a batch per entry (none while an fsync
    /// runs elsewhere: they share the next one).
    fn flush_updates(&mut self, env: &mut impl Env<Waiter = W>) -> Result<(), ReplicaError> {
        if self.sync_pending {
            return Ok(());
        }
        if let Some(refused) = self.refused_for_disk() {
            for q in std::mem::take(&mut self.queued) {
                env.answer(q.waiting.waiter, None, Err(refused.clone()), false);
            }
            return Ok(());
        }
        while !self.queued.is_empty() {
            let mut bytes = 0usize;
            let mut take = 0usize;
            for q in &self.queued {
                if take > 0
                    && (bytes + q.encoded_len > self.settings.batch_target_bytes
                        || take >= self.settings.batch_max_updates)
                {
                    break;
                }
                bytes += q.encoded_len;
                take += 1;
            }
            let batch: Vec<Queued<W>> = self.queued.drain(..take).collect();
            let updates: Vec<&Update> = batch.iter().map(|q| &q.update).collect();
            let synced = updates.iter().any(|u| u.is_synced());
            let mut payload = Vec::with_capacity(bytes + 8);
            protocol::encode_batch(&updates, &mut payload);
            let payload_len = payload.len();
            match self.core.propose(
                Bytes::from(payload),
                env.now(),
                &LocalLog::new(&self.tlog, &self.held),
            ) {
                Ok(p) => {
                    if synced && !self.settings.fsync {
                        self.force_sync = true;
                    }
                    let waiting = batch.into_iter().map(|q| Some(q.waiting)).collect();
                    // A lost mastership clears `pending` in the next round;
                    // should a new term reuse the index before that, the old
                    // proposal there has lost.
                    let proposal = Proposal {
                        term: p.term,
                        waiting,
                    };
                    if let Some(lost) = self.pending.insert(p.index, proposal) {
                        for w in lost.waiting.into_iter().flatten() {
                            env.answer(
                                w.waiter,
                                Some(p.index),
                                Err(Refused::NoLongerMaster),
                                false,
                            );
                        }
                    }
                }
                Err(ProposeError::Backpressure { .. }) => {
                    // Too many uncommitted entries: keep them queued, in order.
                    for q in batch.into_iter().rev() {
                        self.queued.push_front(q);
                    }
                    return Ok(());
                }
                Err(ProposeError::Step(e)) => return Err(ReplicaError::fatal("propose", e)),
                Err(e) => {
                    let refused = match e {
                        ProposeError::NotMaster { master } => Refused::NotMaster(master),
                        ProposeError::TransferInProgress { to } => Refused::NotMaster(Some(to)),
                        ProposeError::TooLarge { limit, .. } => Refused::TooLarge {
                            bytes: payload_len,
                            limit,
                        },
                        _ => Refused::NotMaster(None),
                    };
                    for q in batch {
                        env.answer(q.waiting.waiter, None, Err(refused.clone()), false);
                    }
                }
            }
        }
        Ok(())
    }

    /// One pass over a `Ready`, up to sending its messages. Returns whether
    /// any message went out.
    fn round(&mut self, env: &mut impl Env<Waiter = W>) -> Result<bool, ReplicaError> {
        let ready = self
            .core
            .take_ready(&LocalLog::new(&self.tlog, &self.held))
            .map_err(|e| ReplicaError::fatal("take_ready", e))?;
        if let Some(after) = ready.truncate_after {
            // Held entries go first (they follow the tlog), then the tlog's.
            self.held.retain(|e| e.index <= after);
            if after < self.tlog.last_index() {
                assert!(self.held.is_empty(), "held entries follow the tlog");
                tracing::info!(after, "truncating the uncommitted tlog suffix");
                self.tlog
                    .truncate_suffix(after + 1)
                    .map_err(|e| self.tlog_error(e))?;
                self.reported_synced = self.reported_synced.min(after);
            }
        }
        // The hard state before any message; a full disk holds both back.
        let may_send = self.persist(ready.hard_state, &ready.entries, env)?;
        self.publish(env);
        if may_send {
            for m in &ready.messages {
                env.send(m);
            }
            if !ready.snapshots_to_send.is_empty() {
                self.start_snapshots(&ready.snapshots_to_send, env)?;
            }
        } else {
            for &peer in &ready.snapshots_to_send {
                self.core
                    .snapshot_failed(peer, env.now(), &LocalLog::new(&self.tlog, &self.held))
                    .map_err(|e| ReplicaError::fatal("snapshot_failed", e))?;
            }
        }
        for rc in &ready.role_changes {
            env.role_changed(rc);
        }
        self.hand_over_if_full(env)?;
        if self.core.role() != Role::Master {
            let master = self.core.master();
            for (index, p) in std::mem::take(&mut self.pending) {
                for w in p.waiting.into_iter().flatten() {
                    env.answer(w.waiter, Some(index), Err(Refused::NoLongerMaster), false);
                }
            }
            for q in std::mem::take(&mut self.queued) {
                env.answer(
                    q.waiting.waiter,
                    None,
                    Err(Refused::NotMaster(master)),
                    false,
                );
            }
        }
        // The core hands out only what is committed *and* in the local log.
        #[cfg(feature = "broken")]
        let ready = consensus::Ready {
            commit_index: ready.commit_index.min(self.tlog.last_index()),
            ..ready
        };
        assert!(
            ready.commit_index <= self.tlog.last_index(),
            "commit index {} past the tlog's last index {}",
            ready.commit_index,
            self.tlog.last_index()
        );
        self.commit_index = ready.commit_index;
        self.sync_due = self.tlog.last_index() > self.reported_synced;
        Ok(!ready.messages.is_empty())
    }

    /// Makes the appended entries durable (with `fsync = false`: counts
    /// them as durable, fsyncing only for a `synced_sequence`) and tells
    /// the core.
    fn sync(&mut self, env: &mut impl Env<Waiter = W>) -> Result<(), ReplicaError> {
        if !self.settings.fsync {
            // The weaker promise of `fsync = false`: appended counts as
            // synced; a relaxed mode bounds what a machine crash can take.
            let now = env.now();
            let unsynced =
                self.tlog.last_index() - self.tlog.synced_index().min(self.tlog.last_index());
            let relaxed_due = unsynced > 0
                && (self
                    .settings
                    .relaxed_fsync_entries
                    .is_some_and(|n| unsynced >= n)
                    || self
                        .settings
                        .relaxed_fsync_interval
                        .is_some_and(|d| now >= self.last_relaxed_fsync.plus(d)));
            if std::mem::take(&mut self.force_sync) || relaxed_due {
                self.tlog.sync().map_err(|e| self.tlog_error(e))?;
                self.last_relaxed_fsync = now;
            }
            let last = self.tlog.last_index();
            self.report_synced(last, env)?;
            return self.seal_step(now);
        }
        let Some(job) = self.tlog.take_sync_job().map_err(|e| self.tlog_error(e))? else {
            // Everything appended is synced already (by a rotation, say):
            // make sure the core knows, so that `sync_due` cannot stay set.
            let synced = self.tlog.synced_index();
            if synced > self.reported_synced {
                self.report_synced(synced, env)?;
            }
            return Ok(());
        };
        match env.sync(job) {
            SyncOutcome::Done(result) => self.on_synced(result, env),
            SyncOutcome::Pending => {
                self.sync_pending = true;
                Ok(())
            }
        }
    }

    fn on_synced(
        &mut self,
        result: Result<Synced, TlogError>,
        env: &mut impl Env<Waiter = W>,
    ) -> Result<(), ReplicaError> {
        let synced = self
            .tlog
            .mark_synced(result)
            .map_err(|e| self.tlog_error(e))?;
        self.report_synced(synced, env)?;
        // Sealing a step at a time keeps up with the appends without
        // stalling the loop for a whole segment.
        self.seal_step(env.now())?;
        self.sync_due = self.tlog.last_index() > self.reported_synced;
        Ok(())
    }

    fn report_synced(
        &mut self,
        synced: u64,
        env: &mut impl Env<Waiter = W>,
    ) -> Result<(), ReplicaError> {
        if synced == 0 || synced < self.tlog.first_index() {
            return Ok(());
        }
        let Some(term) = self.tlog.term(synced) else {
            return Err(ReplicaError::fatal(
                "fsync",
                format!("no term for synced index {synced}"),
            ));
        };
        self.core
            .entries_synced(
                synced,
                term,
                env.now(),
                &LocalLog::new(&self.tlog, &self.held),
            )
            .map_err(|e| ReplicaError::fatal("entries_synced", e))?;
        self.reported_synced = self.reported_synced.max(synced);
        Ok(())
    }

    /// After the tlog was rebased on a snapshot: whether an fsync is due.
    pub(crate) fn sync_due_after_rebase(&mut self) {
        self.sync_due = self.tlog.last_index() > self.reported_synced;
    }

    pub(crate) fn tlog_error(&self, e: TlogError) -> ReplicaError {
        ReplicaError::Tlog {
            dir: self.tlog.dir().to_path_buf(),
            source: e,
        }
    }

    /// Publishes the state readers go by, if it changed.
    pub(crate) fn publish(&mut self, env: &mut impl Env<Waiter = W>) {
        let now = env.now();
        let role = self.core.role();
        #[allow(unused_mut)]
        let mut lease = self.core.lease(now).ok();
        #[cfg(feature = "broken")]
        if self.settings.broken == Some(crate::settings::Broken::LeaseTooLong) {
            let period = self.core.config().lease_period;
            lease = lease.map(|l| consensus::Lease {
                until: l.until.plus(period),
                ..l
            });
        }
        let peers_match = if role == Role::Master {
            let config = self.core.config();
            config
                .voters
                .iter()
                .chain(&config.learners)
                .filter_map(|id| self.core.peer_progress(*id).map(|(m, _)| (*id, m)))
                .collect()
        } else {
            Vec::new()
        };
        let commit_index = self.core.commit_index();
        let applied_index = self.store.store().applied_index();
        let catch_up = if role == Role::Master {
            self.catch_up.reset();
            None
        } else {
            let target = self.core.heard_commit_index();
            self.catch_up
                .observe(now, applied_index, target, Whose::ThisNode)
        };
        if role == Role::Master {
            // A match index of 0 is not known yet (a new master learns it
            // from the peer's first answer): not a catch-up to report.
            for &(id, matched) in peers_match.iter().filter(|(_, m)| *m > 0) {
                self.peers_catch_up.entry(id).or_default().observe(
                    now,
                    matched,
                    commit_index,
                    Whose::Peer(id),
                );
            }
        } else {
            self.peers_catch_up.clear();
        }
        let new = Published {
            role,
            standing: self.core.standing(),
            term: self.core.term(),
            master: self.core.serving_master(),
            lease,
            commit_index,
            applied_index,
            answered_index: self.answered_index,
            tlog_last_index: self.tlog.last_index(),
            peers_match,
            going_down: self.published.going_down,
            catch_up,
            snapshot: self.transfers.progress(now),
            snapshots_sending: self.transfers.sending(),
        };
        if new != self.published {
            self.published = new;
            env.publish(&self.published);
        }
    }

    /// Every waiter is answered `GoingDown` and readers are told the node
    /// stops: after an error, or at a graceful stop.
    pub fn fail_all(&mut self, env: &mut impl Env<Waiter = W>) {
        for (index, p) in std::mem::take(&mut self.pending) {
            for w in p.waiting.into_iter().flatten() {
                env.answer(
                    w.waiter,
                    Some(index),
                    Err(Refused::GoingDown { proposed: true }),
                    false,
                );
            }
        }
        for q in std::mem::take(&mut self.queued) {
            env.answer(
                q.waiting.waiter,
                None,
                Err(Refused::GoingDown { proposed: false }),
                false,
            );
        }
        self.published.going_down = true;
        self.published.lease = None;
        env.publish(&self.published);
    }

    /// Graceful stop: readers and writers are told the node is going down,
    /// the tlog is synced, what a slave held back is applied, and the store
    /// checkpointed.
    pub fn shutdown(&mut self, env: &mut impl Env<Waiter = W>) -> Result<(), ReplicaError> {
        tracing::info!("stopping: failing in-flight requests with E_GOING_DOWN, syncing the tlog, checkpointing the store");
        self.fail_all(env);
        self.drop_outgoing("stopping");
        self.tlog.sync().map_err(|e| self.tlog_error(e))?;
        // What a slave held back goes into the checkpoint rather than into
        // the next start's replay.
        self.reported_synced = self.reported_synced.max(self.tlog.synced_index());
        while self.store.store().applied_index() < self.appliable_index() {
            self.apply_wanted = true;
            self.apply_committed(env)?;
        }
        if let Some(why) = self.disk_full() {
            // The next start replays the tlog from the last checkpoint.
            tracing::warn!(
                held = self.held.len(),
                "stopped without a store checkpoint: {why}"
            );
            return Ok(());
        }
        let durable = self.store.store().checkpoint()?;
        tracing::info!(
            tlog_last = self.tlog.last_index(),
            store_applied = durable,
            "stopped cleanly"
        );
        Ok(())
    }
}

/// Arakoon's relaxed fsync modes (`fsync = false` with `fsync_entries` or
/// `fsync_interval`): the tlog is fsynced for real once that many entries
/// or that much time accumulated, and not in between.
#[cfg(test)]
mod relaxed_fsync_tests {
    use crate::collapse::replica_tests::{replica, write_one};
    use std::time::Duration;

    fn unsynced(r: &super::Replica<store::Store, ()>) -> u64 {
        r.tlog().last_index() - r.tlog().synced_index()
    }

    #[test]
    fn every_n_entries() {
        let (mut r, mut env, _disk) = replica(crate::Settings {
            fsync: false,
            relaxed_fsync_entries: Some(4),
            ..crate::Settings::default()
        });
        let mut most = 0;
        let mut synced_before = r.tlog().synced_index();
        let mut advances = 0;
        for k in 0..40 {
            write_one(&mut r, &mut env, k);
            most = most.max(unsynced(&r));
            if r.tlog().synced_index() > synced_before {
                advances += 1;
                synced_before = r.tlog().synced_index();
            }
        }
        assert!(most < 4, "{most} entries were left unsynced");
        assert!(most > 0, "every entry was fsynced: not a relaxed mode");
        assert!(advances >= 8, "only {advances} real fsyncs for 40 entries");
    }

    #[test]
    fn every_interval() {
        let (mut r, mut env, _disk) = replica(crate::Settings {
            fsync: false,
            relaxed_fsync_interval: Some(Duration::from_millis(100)),
            ..crate::Settings::default()
        });
        // write_one lets 5 ms pass: an fsync at least every ~20 entries.
        let mut most = 0;
        for k in 0..100 {
            write_one(&mut r, &mut env, k);
            most = most.max(unsynced(&r));
        }
        assert!(most > 1 && most <= 21, "{most} entries unsynced at most");
    }

    #[test]
    fn plain_fsync_false_never_fsyncs_on_its_own() {
        let (mut r, mut env, _disk) = replica(crate::Settings {
            fsync: false,
            ..crate::Settings::default()
        });
        // Within one segment (a rotation fsyncs what it seals).
        let before = r.tlog().synced_index();
        for k in 0..8 {
            write_one(&mut r, &mut env, k);
        }
        assert_eq!(r.tlog().synced_index(), before);
        assert!(unsynced(&r) >= 8);
    }
}
