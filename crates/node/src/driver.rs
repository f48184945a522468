//! The driver: the one task that owns the consensus [`Core`] and the
//! [`Tlog`], and runs the caller's loop of the consensus crate doc (the
//! same loop as `crates/sim/src/node.rs`, over the real disk and network).
//!
//! It runs on a thread of its own, on a current-thread runtime it shares
//! with the node-to-node messaging tasks only (see `lib.rs`): tlog appends
//! and fsyncs and store applies are blocking IO, and must not stall the
//! runtime's workers that serve clients; and a peer's message reaches the
//! driver, and the driver's messages reach the peers' sockets, without a
//! hop to another thread.
//!
//! # One round (after every input or batch of inputs)
//!
//! 1. Propose every queued update, in batches of at most
//!    [`BATCH_TARGET_BYTES`] (group commit: the updates that queued up
//!    while the driver was busy, an fsync included, share one entry and
//!    one fsync).
//! 2. `take_ready`; persist the hard state (durable, before any message);
//!    truncate then append the entries (buffered).
//! 3. Publish the state (role, lease, applied index) for readers, *then*
//!    queue the messages (see `state.rs` for why this order).
//! 4. No longer master: every proposed update is answered
//!    `NoLongerMaster`, every queued one `NotMaster`.
//! 5. Yield, so that the messaging tasks write the queued messages: the
//!    master's appends leave before its own fsync (the slaves' fsyncs run
//!    in parallel with it), a slave's acknowledgement before anything else.
//!    A master's round without new entries (only heartbeats, such as the
//!    one that carries a new commit index to the slaves) yields after step
//!    8 instead, so that the clients are answered first.
//! 6. If entries were appended, fsync them here, on this thread, then
//!    `entries_synced(i, n)` and back to 2 (the acknowledgement leaves at
//!    once). With `fsync = false`, entries count as synced at once (see
//!    lib.rs for the weaker promise); a `synced_sequence` still fsyncs.
//! 7. Answer, ahead of the apply, the committed updates whose result the
//!    store cannot change (sets, nops, sequences of those: see
//!    [`Driver::answer_before_apply`]), after publishing their index.
//! 8. Apply committed entries from the tlog to the store, in order; each
//!    client whose proposal `(i, n)` was applied with term `n` gets its own
//!    update's result; another term at `i` means it lost: `NoLongerMaster`.
//!    Applying comes last so that it never delays an fsync or a message.
//!    A master applies at once; any other node holds committed entries back
//!    for up to `slave_apply_delay` to apply several in one store
//!    transaction ([`Driver::apply_due`]: at once for 64 of them, or for an
//!    `AtLeast(i)` reader, which asks through `DriverIo::apply_wanted`).
//!
//! The core holds a new commit index back from the slaves for up to
//! `commit_announce_delay` (1 ms) when no append carries it; the driver
//! ticks the core when the announcement is due. A single client's writes
//! thus cost each slave one wake-up per write (the append) instead of two.
//!
//! The fsync runs on the driver's thread rather than beside it: measured
//! on the 2-core test machine, handing it to another thread and back cost
//! more (two thread wake-ups, ~50 µs, on every write's path, and more CPU
//! under load) than the overlap gained. While it runs, the driver reads no
//! input; ticks and messages wait for it. A disk whose fsync hangs thus
//! stalls this node's consensus work, as in etcd: a master stops sending
//! heartbeats and the others elect another (its lease, as published,
//! lapses by the clock, so it serves no `Consistent` read meanwhile).
//!
//! # Invariants
//!
//! - Hard state is durable before any message of the same `Ready` leaves.
//! - A client is answered success only after its entry is committed (a
//!   quorum fsynced it, this node included): after the apply, or, for an
//!   update whose result the store cannot change, before it, once its index
//!   is published as `answered_index` (no read on this node is served from
//!   a store short of it).
//! - The driver never waits for the network: sends are `try_send` into
//!   bounded per-peer queues.

use crate::answer::AnswerSender;
use crate::clock::Clock;
use crate::error::NodeError;
use crate::messaging::Transport;
use crate::settings::{Settings, BATCH_MAX_UPDATES, BATCH_TARGET_BYTES};
use crate::state::{Answered, DirectReply, DriverRequest, Lease, Published, Refused, SharedStore};
use crate::StopMode;
use bytes::Bytes;
use consensus::{Core, Message, NodeId, ProposeError, Role, StepError};
use protocol::Update;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::{UpdateOk, UpdateResult};
use tlog::{Synced, Tlog, TlogError};
use tokio::sync::{mpsc, watch, Notify};

/// Store checkpoint (one fsync of the store) at least every this many
/// applied entries, bounding the replay after a crash.
const CHECKPOINT_EVERY_ENTRIES: u64 = 10_000;
/// ... and at least this often while entries are applied.
const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);
/// Most inputs taken from one queue before a round is run.
const INPUTS_PER_ROUND_MAX: usize = 256;
/// Most entries applied in one round.
const APPLY_PER_ROUND_MAX: u64 = 1024;
/// Most bytes of entries read from the tlog at once to apply them.
const APPLY_READ_MAX_BYTES: u64 = 8 << 20;
/// Most rounds run back to back for one input (a round may produce work for
/// the next one, e.g. entries counted as synced with `fsync = false`).
const ROUNDS_PER_INPUT_MAX: usize = 8;
/// Least work of one sealing step (compressing full tlog segments), bytes.
const SEAL_STEP_MIN_BYTES: u64 = 1 << 20;
/// Most updates in one entry whose plain successes the driver writes to
/// the clients' sockets itself (see [`DirectReply`]); an entry with more
/// is answered by the connections. Measured on the 2-core test machine: at
/// 64 clients, direct answers for every update cost 10–20 % of the writes
/// per second, the driver being the one serial thread.
const DIRECT_ANSWERS_MAX: usize = 4;
/// A node that is not master applies its committed entries once this many
/// wait, whatever `slave_apply_delay` says (one store transaction each).
const SLAVE_APPLY_BATCH_ENTRIES: u64 = 64;

struct Queued {
    update: Update,
    encoded_len: usize,
    waiter: Waiter,
}

/// A connection waiting for its update's answer.
struct Waiter {
    reply: AnswerSender,
    direct: Option<DirectReply>,
    /// The update's result, if the store cannot change it
    /// ([`store::result_before_apply`]): answered once committed.
    before_apply: Option<UpdateResult>,
}

impl Waiter {
    fn refuse(self, refused: Refused) {
        self.reply.send(Answered::new(Err(refused)));
    }

    /// The update's result. With `direct`, a plain success is written to
    /// the client's socket right here when the connection allowed it (see
    /// [`DirectReply`]), saving the hop back to the connection's thread.
    /// A whole answer written here is handed over quietly: the connection
    /// picks it up when the client's next request arrives, without a
    /// wake-up of its own (see `answer.rs`).
    fn answer(self, result: UpdateResult, direct: bool) {
        let (written, whole) = match (&result, &self.direct) {
            (Ok(UpdateOk::Done), Some(reply)) if direct => {
                let written = reply.write_done();
                (written, written == reply.done.len())
            }
            _ => (0, false),
        };
        self.reply.send(Answered {
            answer: Ok(result),
            written,
            quiet_at: whole.then(Instant::now),
        });
    }
}

enum Event {
    Stop,
    Message(Option<Message>),
    Request(Option<DriverRequest>),
    Tick,
    Apply { wanted: bool },
}

/// The channels and shared handles the driver runs with.
pub struct DriverIo {
    pub transport: Transport,
    pub requests: mpsc::Receiver<DriverRequest>,
    pub inbound: mpsc::Receiver<Message>,
    pub published: watch::Sender<Published>,
    pub stop: watch::Receiver<StopMode>,
    /// A reader waits for this node to apply an index it holds
    /// (`AtLeast(i)`): apply what is committed now, whatever
    /// `slave_apply_delay` says.
    pub apply_wanted: Arc<Notify>,
}

pub struct Driver {
    settings: Arc<Settings>,
    clock: Clock,
    core: Core,
    tlog: Tlog,
    store: Arc<SharedStore>,
    io: DriverIo,
    queued: VecDeque<Queued>,
    /// Proposed entries: index -> (term, the waiters of its updates, in
    /// order; `None` once answered ahead of the apply).
    pending: BTreeMap<u64, (u64, Vec<Option<Waiter>>)>,
    /// The highest index with an update answered before the store applied
    /// it (published before the answer is written).
    answered_index: u64,
    applied_since_checkpoint: u64,
    last_checkpoint: Instant,
    logged_master: Option<(u64, NodeId)>,
    /// `fsync = false` and a synced update was appended: fsync it for real.
    force_sync: bool,
    /// A round left work for another round.
    again: bool,
    /// Entries were appended and need an fsync (taken in [`Driver::settle`]).
    sync_due: bool,
    /// Payload bytes appended since the last sealing step.
    appended_bytes: u64,
    /// The highest index reported to the core as synced (with `fsync =
    /// false`, the tlog's own synced index stays behind).
    reported_synced: u64,
    /// The commit index of the last `Ready` (what may be applied).
    commit_index: u64,
    /// Not master, committed entries wait to be applied: apply them by
    /// then (`slave_apply_delay` after the first of them was seen).
    apply_deadline: Option<Instant>,
    /// A reader asked for the committed entries to be applied now.
    apply_wanted: bool,
}

/// Sleeps until `at`; never ends without one.
async fn sleep_until_if(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

fn fatal(what: &str, e: impl std::fmt::Display) -> NodeError {
    NodeError::Driver(format!("{what}: {e}"))
}

impl Driver {
    pub fn new(
        settings: Arc<Settings>,
        clock: Clock,
        core: Core,
        tlog: Tlog,
        store: Arc<SharedStore>,
        io: DriverIo,
    ) -> Driver {
        // Open synced everything it recovered.
        let reported_synced = tlog.last_index();
        Driver {
            settings,
            clock,
            core,
            tlog,
            store,
            io,
            queued: VecDeque::new(),
            pending: BTreeMap::new(),
            answered_index: 0,
            applied_since_checkpoint: 0,
            last_checkpoint: Instant::now(),
            logged_master: None,
            force_sync: false,
            again: false,
            sync_due: false,
            appended_bytes: 0,
            reported_synced,
            commit_index: 0,
            apply_deadline: None,
            apply_wanted: false,
        }
    }

    fn fsync_enabled(&self) -> bool {
        self.settings.node().fsync
    }

    /// Runs until stopped (`StopMode::Graceful`: syncs and checkpoints;
    /// `StopMode::Crash`: drops everything as it is, like `kill -9`) or
    /// until the storage fails.
    pub async fn run(mut self) -> Result<(), NodeError> {
        let mut ticker = tokio::time::interval(self.settings.tick_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = self.run_loop(&mut ticker).await;
        let mode = *self.io.stop.borrow();
        match (result, mode) {
            (Err(e), _) => {
                tracing::error!(error = %e, "node stops: {e}");
                self.fail_all(|proposed| Refused::GoingDown { proposed });
                self.publish_going_down();
                Err(e)
            }
            (Ok(()), StopMode::Crash) => Ok(()),
            (Ok(()), _) => self.shutdown().await,
        }
    }

    async fn run_loop(&mut self, ticker: &mut tokio::time::Interval) -> Result<(), NodeError> {
        self.settle().await?;
        loop {
            // A commit index the slaves are owed (no append carried it
            // within `commit_announce_delay`): tick the core then.
            let announce = sleep_until_if(
                self.core
                    .commit_announce_due()
                    .map(|t| self.clock.instant_at(t)),
            );
            // Committed entries a slave holds back (`slave_apply_delay`).
            let apply_due = sleep_until_if(self.apply_deadline);
            let event = tokio::select! {
                biased;
                r = self.io.stop.changed() => match r {
                    Ok(()) => Event::Stop,
                    Err(_) => return Ok(()), // the node's handle is gone: stop
                },
                // Ticks before the queues: heartbeats and elections must
                // not starve under load (a tick is cheap and rare).
                _ = ticker.tick() => Event::Tick,
                () = announce => Event::Tick,
                () = apply_due => Event::Apply { wanted: false },
                () = self.io.apply_wanted.notified() => Event::Apply { wanted: true },
                m = self.io.inbound.recv() => Event::Message(m),
                r = self.io.requests.recv() => Event::Request(r),
            };
            match event {
                Event::Stop => {
                    if *self.io.stop.borrow() != StopMode::Running {
                        return Ok(());
                    }
                }
                Event::Message(None) | Event::Request(None) => return Ok(()),
                Event::Message(Some(m)) => {
                    self.on_message(m)?;
                    for _ in 1..INPUTS_PER_ROUND_MAX {
                        match self.io.inbound.try_recv() {
                            Ok(m) => self.on_message(m)?,
                            Err(_) => break,
                        }
                    }
                }
                Event::Request(Some(r)) => {
                    self.on_request(r)?;
                    for _ in 1..INPUTS_PER_ROUND_MAX {
                        match self.io.requests.try_recv() {
                            Ok(r) => self.on_request(r)?,
                            Err(_) => break,
                        }
                    }
                }
                Event::Tick => self.on_tick()?,
                // The round below applies (now due, or wanted).
                Event::Apply { wanted } => self.apply_wanted |= wanted,
            }
            self.settle().await?;
        }
    }

    fn on_message(&mut self, msg: Message) -> Result<(), NodeError> {
        let now = self.clock.now();
        let from = msg.from;
        let kind = msg.body.kind();
        match self.core.step(msg, now, &self.tlog) {
            Ok(()) => Ok(()),
            Err(StepError::Log(e)) => Err(fatal("tlog read", e)),
            Err(e) => {
                tracing::warn!(peer = %self.settings.name_of(from), kind, "message refused: {e}");
                Ok(())
            }
        }
    }

    fn on_tick(&mut self) -> Result<(), NodeError> {
        let now = self.clock.now();
        self.core
            .tick(now, &self.tlog)
            .map_err(|e| fatal("tick", e))?;
        if self.store.applied_index() > self.store.durable_applied_index()
            && self.last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL
        {
            self.checkpoint()?;
        }
        Ok(())
    }

    fn checkpoint(&mut self) -> Result<(), NodeError> {
        self.store.checkpoint()?;
        self.applied_since_checkpoint = 0;
        self.last_checkpoint = Instant::now();
        Ok(())
    }

    fn on_request(&mut self, request: DriverRequest) -> Result<(), NodeError> {
        match request {
            DriverRequest::Update {
                update,
                encoded_len,
                reply,
                direct,
            } => {
                let waiter = Waiter {
                    reply,
                    direct,
                    before_apply: store::result_before_apply(&update),
                };
                if self.settings.read_only() {
                    waiter.refuse(Refused::ReadOnly);
                } else if self.core.role() != Role::Master {
                    waiter.refuse(Refused::NotMaster(self.core.master()));
                } else {
                    self.queued.push_back(Queued {
                        update,
                        encoded_len,
                        waiter,
                    });
                }
            }
            DriverRequest::DropMaster { reply } => {
                let answer = self.drop_master()?;
                let _ = reply.send(answer);
            }
        }
        Ok(())
    }

    fn drop_master(&mut self) -> Result<Result<(), String>, NodeError> {
        if self.core.role() != Role::Master {
            return Ok(Ok(()));
        }
        let now = self.clock.now();
        let me = self.settings.id();
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
                .hand_over_to(target, now, &self.tlog)
                .map_err(|e| fatal("hand over", e))?;
            if handed {
                tracing::info!(target = %self.settings.name_of(target), "drop_master: handing mastership over");
                return Ok(Ok(()));
            }
        }
        Ok(Err(
            "no caught-up voter to hand mastership to (or a hand-over is under way)".into(),
        ))
    }

    fn on_synced(&mut self, result: Result<Synced, TlogError>) -> Result<(), NodeError> {
        let synced = self
            .tlog
            .mark_synced(result)
            .map_err(|e| self.tlog_error(e))?;
        self.report_synced(synced)?;
        self.seal_step()
    }

    /// Seals full segments a step at a time, keeping up with the appends
    /// without stalling the loop for a whole segment.
    fn seal_step(&mut self) -> Result<(), NodeError> {
        let budget = SEAL_STEP_MIN_BYTES.max(2 * std::mem::take(&mut self.appended_bytes));
        self.tlog
            .seal_some(budget)
            .map_err(|e| self.tlog_error(e))?;
        Ok(())
    }

    fn report_synced(&mut self, synced: u64) -> Result<(), NodeError> {
        if synced == 0 || synced < self.tlog.first_index() {
            return Ok(());
        }
        let Some(term) = self.tlog.term(synced) else {
            return Err(fatal("fsync", format!("no term for synced index {synced}")));
        };
        let now = self.clock.now();
        self.core
            .entries_synced(synced, term, now, &self.tlog)
            .map_err(|e| fatal("entries_synced", e))?;
        self.reported_synced = self.reported_synced.max(synced);
        Ok(())
    }

    fn tlog_error(&self, e: TlogError) -> NodeError {
        NodeError::Tlog {
            dir: self.tlog.dir().to_path_buf(),
            source: e,
        }
    }

    /// Runs rounds until the input is dealt with: messages out, appended
    /// entries fsynced (and acknowledged), committed entries applied (at
    /// most [`ROUNDS_PER_INPUT_MAX`] rounds; the rest after the next input).
    async fn settle(&mut self) -> Result<(), NodeError> {
        for _ in 0..ROUNDS_PER_INPUT_MAX {
            self.again = false;
            self.flush_updates()?;
            let sent = self.round()?;
            // The messaging tasks share this thread: a yield lets them
            // write. Appends (before an fsync) and a slave's
            // acknowledgements leave before anything else; a master's round
            // without new entries carries only heartbeats (the commit index
            // after an acknowledgement, or a periodic one), which wait until
            // the clients the commit concerns have their answers.
            let messages_first = self.sync_due || self.core.role() != Role::Master;
            if sent && messages_first {
                tokio::task::yield_now().await;
            }
            if std::mem::take(&mut self.sync_due) {
                self.sync()?;
                continue; // the next round sends what the fsync allows
            }
            self.answer_before_apply();
            self.apply_committed()?;
            self.publish();
            if sent && !messages_first {
                tokio::task::yield_now().await;
            }
            if !self.again {
                break;
            }
        }
        Ok(())
    }

    /// Proposes the queued updates, a batch per entry.
    fn flush_updates(&mut self) -> Result<(), NodeError> {
        while !self.queued.is_empty() {
            let mut bytes = 0usize;
            let mut take = 0usize;
            for q in &self.queued {
                if take > 0
                    && (bytes + q.encoded_len > BATCH_TARGET_BYTES || take >= BATCH_MAX_UPDATES)
                {
                    break;
                }
                bytes += q.encoded_len;
                take += 1;
            }
            let batch: Vec<Queued> = self.queued.drain(..take).collect();
            let updates: Vec<Update> = batch.iter().map(|q| q.update.clone()).collect();
            let synced = updates.iter().any(Update::is_synced);
            let mut payload = Vec::with_capacity(bytes + 8);
            protocol::encode_batch(&updates, &mut payload);
            let payload_len = payload.len();
            let now = self.clock.now();
            match self.core.propose(Bytes::from(payload), now, &self.tlog) {
                Ok(p) => {
                    if synced && !self.fsync_enabled() {
                        self.force_sync = true;
                    }
                    let waiters = batch.into_iter().map(|q| Some(q.waiter)).collect();
                    // A lost mastership clears `pending` in the next round;
                    // should a new term reuse the index before that, the old
                    // proposal there has lost.
                    if let Some((_, lost)) = self.pending.insert(p.index, (p.term, waiters)) {
                        for waiter in lost.into_iter().flatten() {
                            waiter.refuse(Refused::NoLongerMaster);
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
                Err(ProposeError::Step(e)) => return Err(fatal("propose", e)),
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
                        q.waiter.refuse(refused.clone());
                    }
                }
            }
        }
        Ok(())
    }

    /// One pass of the caller's loop over a `Ready`, up to queueing its
    /// messages (steps 2 to 4 of the module doc). Returns whether any
    /// message was queued.
    fn round(&mut self) -> Result<bool, NodeError> {
        let ready = self
            .core
            .take_ready(&self.tlog)
            .map_err(|e| fatal("take_ready", e))?;
        if let Some(hs) = ready.hard_state {
            self.tlog
                .save_hard_state(hs)
                .map_err(|e| self.tlog_error(e))?;
        }
        if let Some(after) = ready.truncate_after {
            tracing::info!(after, "truncating the uncommitted tlog suffix");
            self.tlog
                .truncate_suffix(after + 1)
                .map_err(|e| self.tlog_error(e))?;
            self.reported_synced = self.reported_synced.min(after);
        }
        if !ready.entries.is_empty() {
            let entries: Vec<tlog::Entry> = ready.entries.iter().map(tlog::Entry::from).collect();
            self.appended_bytes += entries.iter().map(|e| e.payload.len() as u64).sum::<u64>();
            self.tlog.append(&entries).map_err(|e| self.tlog_error(e))?;
        }
        self.publish();
        for m in &ready.messages {
            self.io.transport.send(m);
        }
        if !ready.snapshots_to_send.is_empty() {
            tracing::warn!(
                nodes = ?ready.snapshots_to_send,
                "peers need a store snapshot (their entries were collapsed); snapshot transfer is not implemented in this build"
            );
        }
        for rc in &ready.role_changes {
            tracing::debug!(role = %rc.role, n = rc.term, master = ?rc.master.map(|m| self.settings.name_of(m)), i = rc.last_index, commit = rc.commit_index, "role change");
            if let Some(master) = rc.master {
                if self.logged_master != Some((rc.term, master)) {
                    self.logged_master = Some((rc.term, master));
                    tracing::info!(
                        "master is {} (n = {}, i = {}, committed {}); this node is {}",
                        self.settings.name_of(master),
                        rc.term,
                        rc.last_index,
                        rc.commit_index,
                        rc.role
                    );
                }
            }
        }
        if self.core.role() != Role::Master {
            let master = self.core.master();
            for (_, (_, waiters)) in std::mem::take(&mut self.pending) {
                for waiter in waiters.into_iter().flatten() {
                    waiter.refuse(Refused::NoLongerMaster);
                }
            }
            for q in std::mem::take(&mut self.queued) {
                q.waiter.refuse(Refused::NotMaster(master));
            }
        }
        // The core hands out only what is committed *and* in the local log.
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
    fn sync(&mut self) -> Result<(), NodeError> {
        if !self.fsync_enabled() {
            // The weaker promise of `fsync = false`: appended counts as synced.
            if std::mem::take(&mut self.force_sync) {
                self.tlog.sync().map_err(|e| self.tlog_error(e))?;
            }
            let last = self.tlog.last_index();
            self.report_synced(last)?;
            return self.seal_step();
        }
        let Some(job) = self.tlog.take_sync_job().map_err(|e| self.tlog_error(e))? else {
            // Everything appended is synced already (by a rotation, say):
            // make sure the core knows, so that `sync_due` cannot stay set.
            let synced = self.tlog.synced_index();
            if synced > self.reported_synced {
                self.report_synced(synced)?;
            }
            return Ok(());
        };
        let result = job.run();
        self.on_synced(result)
    }

    /// Answers, ahead of the apply, the updates of committed entries whose
    /// result the store cannot change ([`store::result_before_apply`]: sets,
    /// nops, sequences of those), saving them the store transaction's time.
    /// The answered index is published first, and every read on this node
    /// waits until the store applied it (`Published::answered_index`), so a
    /// read that follows such an answer sees the update, whatever its
    /// consistency; a `Consistent` read waits anyway for its read index (the
    /// commit index, at least this entry). The entry is committed (a quorum
    /// fsynced it, this node included), so the answer holds even if this
    /// node dies before applying it.
    fn answer_before_apply(&mut self) {
        let applied = self.store.applied_index();
        if self.commit_index <= applied.max(self.answered_index) {
            return;
        }
        let from = applied.max(self.answered_index) + 1;
        let mut answerable = Vec::new();
        for (&index, (term, waiters)) in self.pending.range(from..=self.commit_index) {
            // Our proposal is what committed at `index` only if the tlog
            // holds it with our term there.
            if self.tlog.term(index) == Some(*term)
                && waiters.iter().flatten().any(|w| w.before_apply.is_some())
            {
                answerable.push(index);
            }
        }
        let Some(&highest) = answerable.last() else {
            return;
        };
        self.answered_index = highest;
        self.publish(); // before any answer is written
        for index in answerable {
            let Some((_, waiters)) = self.pending.get_mut(&index) else {
                continue;
            };
            let direct = waiters.len() <= DIRECT_ANSWERS_MAX;
            for slot in waiters.iter_mut() {
                if let Some(result) = slot.as_ref().and_then(|w| w.before_apply.clone()) {
                    if let Some(waiter) = slot.take() {
                        waiter.answer(result, direct);
                    }
                }
            }
        }
    }

    /// Applies committed entries, at most [`APPLY_PER_ROUND_MAX`] per round
    /// (a long replay or catch-up must not keep the loop from heartbeats
    /// and acknowledgements); the rest in the next rounds.
    fn apply_committed(&mut self) -> Result<(), NodeError> {
        if !self.apply_due() {
            return Ok(());
        }
        let commit_index = self.commit_index;
        let stop_at = commit_index.min(self.store.applied_index() + APPLY_PER_ROUND_MAX);
        if stop_at < commit_index {
            self.again = true;
            self.apply_wanted = true; // the rest in the next round
        }
        while self.store.applied_index() < stop_at {
            let from = self.store.applied_index() + 1;
            let entries = self
                .tlog
                .read(from, stop_at + 1, APPLY_READ_MAX_BYTES)
                .map_err(|e| self.tlog_error(e))?;
            if entries.is_empty() {
                return Err(fatal(
                    "apply",
                    format!("committed entry {from} missing from the tlog"),
                ));
            }
            self.apply_entries(entries)?;
        }
        Ok(())
    }

    /// Whether committed entries are to be applied in this round. A master
    /// applies at once: its reads wait for the store (the lease's read
    /// index, the answered index). Any other node holds them back for up to
    /// `slave_apply_delay` or until [`SLAVE_APPLY_BATCH_ENTRIES`] wait, so
    /// that one store transaction applies several: its reads are
    /// `NoGuarantee` (stale anyway) or `AtLeast(i)`, which asks for the
    /// apply (`apply_wanted`). Measured on the 2-core test machine: a redb
    /// transaction per entry on both slaves, right when the master needs
    /// the CPU to answer, cost ~10 % of a single client's write latency.
    fn apply_due(&mut self) -> bool {
        let waiting = self.commit_index.saturating_sub(self.store.applied_index());
        if waiting == 0 {
            self.apply_deadline = None;
            return false;
        }
        let now = Instant::now();
        let wanted = std::mem::take(&mut self.apply_wanted);
        let delay = self.settings.node().slave_apply_delay;
        let deadline = *self.apply_deadline.get_or_insert(now + delay);
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
    fn apply_entries(&mut self, entries: Vec<tlog::Entry>) -> Result<(), NodeError> {
        let Some(first) = entries.first().map(|e| e.index) else {
            return Ok(());
        };
        let mut batches = Vec::with_capacity(entries.len());
        for (k, entry) in entries.iter().enumerate() {
            assert_eq!(entry.index, first + k as u64, "tlog read out of order");
            batches.push(if entry.payload.is_empty() {
                Vec::new() // the master's barrier entry of its term
            } else {
                protocol::decode_batch(&entry.payload, &self.settings.payload_limits)
                    .map_err(|e| fatal("apply", format!("entry {}: {e}", entry.index)))?
            });
        }
        let all_results = self.store.apply_entries(first, &batches)?;
        let last = first + entries.len() as u64 - 1;
        // One result list per entry, and the store moved exactly to the last.
        assert_eq!(
            all_results.len(),
            entries.len(),
            "results of entries {first}..={last}"
        );
        assert_eq!(
            self.store.applied_index(),
            last,
            "store applied entries {first}..={last}"
        );
        for ((entry, updates), results) in entries.iter().zip(&batches).zip(all_results) {
            let index = entry.index;
            assert_eq!(results.len(), updates.len(), "results of entry {index}");
            if let Some((term, waiters)) = self.pending.remove(&index) {
                if term == entry.term {
                    assert_eq!(
                        waiters.len(),
                        results.len(),
                        "one result per update of our own entry {index}"
                    );
                    // Few clients: the driver answers them itself (latency).
                    // Many: their connections do, on the runtime's workers,
                    // in parallel with the driver's next round (throughput).
                    let direct = waiters.len() <= DIRECT_ANSWERS_MAX;
                    for (waiter, result) in waiters.into_iter().zip(results) {
                        if let Some(waiter) = waiter {
                            waiter.answer(result, direct);
                        }
                    }
                } else {
                    // Another master's entry won this index: ours never
                    // committed (nothing of it was answered ahead: that
                    // needs the entry in the tlog with our term).
                    for waiter in waiters.into_iter().flatten() {
                        waiter.refuse(Refused::NoLongerMaster);
                    }
                }
            }
        }
        self.applied_since_checkpoint += entries.len() as u64;
        if self.applied_since_checkpoint >= CHECKPOINT_EVERY_ENTRIES {
            self.checkpoint()?;
        }
        Ok(())
    }

    fn publish(&mut self) {
        let now = self.clock.now();
        let role = self.core.role();
        let lease = self.core.lease(now).ok().map(|l| Lease {
            read_index: l.read_index,
            until: l.until,
        });
        let peers_match = if role == Role::Master {
            (0..self.settings.cluster.nodes.len() as u64)
                .map(NodeId)
                .filter_map(|id| self.core.peer_progress(id).map(|(m, _)| (id, m)))
                .collect()
        } else {
            Vec::new()
        };
        let new = Published {
            role,
            standing: self.core.standing(),
            term: self.core.term(),
            master: self.core.master(),
            lease,
            commit_index: self.core.commit_index(),
            applied_index: self.store.applied_index(),
            answered_index: self.answered_index,
            tlog_last_index: self.tlog.last_index(),
            peers_match,
            going_down: false,
        };
        self.io.published.send_if_modified(|p| {
            if *p != new {
                *p = new;
                true
            } else {
                false
            }
        });
    }

    fn publish_going_down(&mut self) {
        self.io.published.send_modify(|p| {
            p.going_down = true;
            p.lease = None;
        });
    }

    fn fail_all(&mut self, refused: impl Fn(bool) -> Refused) {
        for (_, (_, waiters)) in std::mem::take(&mut self.pending) {
            for waiter in waiters.into_iter().flatten() {
                waiter.refuse(refused(true));
            }
        }
        for q in std::mem::take(&mut self.queued) {
            q.waiter.refuse(refused(false));
        }
        while let Ok(r) = self.io.requests.try_recv() {
            match r {
                DriverRequest::Update { reply, .. } => {
                    reply.send(Answered::new(Err(refused(false))));
                }
                DriverRequest::DropMaster { reply } => {
                    let _ = reply.send(Err("the node is going down".into()));
                }
            }
        }
    }

    /// Graceful stop: readers and writers are told the node is going down,
    /// the tlog is synced and the store checkpointed.
    async fn shutdown(mut self) -> Result<(), NodeError> {
        tracing::info!("stopping: failing in-flight requests with E_GOING_DOWN, syncing the tlog, checkpointing the store");
        self.publish_going_down();
        self.fail_all(|proposed| Refused::GoingDown { proposed });
        self.tlog.sync().map_err(|e| self.tlog_error(e))?;
        // What a slave held back (`slave_apply_delay`) goes into the
        // checkpoint rather than into the next start's replay.
        while self.store.applied_index() < self.commit_index {
            self.apply_wanted = true;
            self.apply_committed()?;
        }
        let durable = self.store.checkpoint()?;
        tracing::info!(
            tlog_last = self.tlog.last_index(),
            store_applied = durable,
            "stopped cleanly"
        );
        Ok(())
    }
}
