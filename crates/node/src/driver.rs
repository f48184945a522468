//! The driver: the one task that runs this node's [`Replica`] (the consensus
//! core, the tlog, the store, the updates in flight: `crates/replica`, the
//! very code the simulator runs), feeding it inputs from the network, the
//! clients and the clock, and giving it the node's world ([`NodeEnv`]).
//!
//! It runs on a thread of its own, on a current-thread runtime it shares
//! with the node-to-node messaging tasks only (see `lib.rs`): tlog appends
//! and fsyncs and store applies are blocking IO, and must not stall the
//! runtime's workers that serve clients; and a peer's message reaches the
//! driver, and the driver's messages reach the peers' sockets, without a
//! hop to another thread.
//!
//! What is the node's own here, not the replica's:
//!
//! - The inputs, taken in batches ([`INPUTS_PER_ROUND_MAX`]) before each
//!   [`Replica::settle`]; ticks come first so that heartbeats and elections
//!   never starve under load.
//! - Where the replica asks to let messages leave ([`Settle::Yield`]), the
//!   driver yields to the messaging tasks on its runtime.
//! - The fsync runs inline, on this thread, after the round's messages
//!   left: measured on the 2-core test machine, handing it to another
//!   thread and back cost more (two thread wake-ups, ~50 µs, on every
//!   write's path, and more CPU under load) than the overlap gained. While
//!   it runs, the driver reads no input; a disk whose fsync hangs thus
//!   stalls this node's consensus work, as in etcd: a master stops sending
//!   heartbeats and the others elect another (its published lease lapses by
//!   the clock, so it serves no `Consistent` read meanwhile).
//! - Answers: a plain success of an entry of few updates is written to the
//!   client's socket by the driver itself ([`DirectReply`]), saving the hop
//!   back to the connection's thread; a whole answer written so is handed
//!   over quietly (`answer.rs`).
//! - Publication: the replica's [`replica::Published`] goes to the
//!   connections through a `watch`.
//! - Metrics (`metrics/`): each tlog append timed (`Env::appended`), each
//!   fsync timed with the entries and updates appended since the one
//!   before (group commit size), elections and master changes counted;
//!   the replica's behaviour does not depend on any of it.

use crate::answer::AnswerSender;
use crate::clock::Clock;
use crate::error::NodeError;
use crate::messaging::Transport;
use crate::metrics::NodeMetrics;
use crate::settings::Settings;
use crate::state::{Answered, DirectReply, DriverRequest, SharedStore};
use crate::stop::StopMode;
use consensus::{Message, NodeId, Role, RoleChange, StepError, Time};
use replica::{
    Env, PeerMessage, Published, Refused, Replica, ReplicaError, Settle, SnapshotMessage,
    SyncOutcome, UpdateAnswer,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use store::UpdateOk;
use tlog::SyncJob;
use tokio::sync::{mpsc, watch, Notify};

/// Most inputs taken from one queue before the replica settles.
const INPUTS_PER_ROUND_MAX: usize = 256;

/// A connection waiting for its update's answer.
pub struct NodeWaiter {
    pub reply: AnswerSender,
    /// Where the driver may write the success answer itself.
    pub direct: Option<DirectReply>,
}

/// The node's world as the replica sees it.
pub struct NodeEnv {
    settings: Arc<Settings>,
    clock: Clock,
    transport: Transport,
    published: watch::Sender<Published>,
    logged_master: Option<(u64, NodeId)>,
    metrics: Arc<NodeMetrics>,
    /// Appended since the last fsync: what the next one makes durable.
    unsynced: Unsynced,
    /// Where the requested collapse in progress reports each segment.
    collapse_progress: Option<mpsc::UnboundedSender<Duration>>,
    /// Whether the replica last published this node as master: its
    /// appended entries are its own harvests (`harvest_stats`).
    is_master: bool,
}

/// Entries and updates appended since the last fsync (group commit size).
#[derive(Debug, Default, Clone, Copy)]
struct Unsynced {
    entries: u64,
    updates: u64,
}

impl Env for NodeEnv {
    type Waiter = NodeWaiter;

    fn now(&self) -> Time {
        self.clock.now()
    }

    fn send(&mut self, message: &Message) {
        self.transport.send(message);
    }

    fn send_snapshot(&mut self, message: &SnapshotMessage) {
        self.transport.send_snapshot(message);
    }

    fn publish(&mut self, published: &Published) {
        self.is_master = published.role == Role::Master;
        self.published.send_replace(published.clone());
    }

    /// With `direct`, a plain success is written to the client's socket
    /// right here when the connection allowed it (see [`DirectReply`]). A
    /// whole answer written here is handed over quietly: the connection
    /// picks it up when the client's next request arrives, without a
    /// wake-up of its own (see `answer.rs`).
    fn answer(
        &mut self,
        waiter: NodeWaiter,
        _index: Option<u64>,
        answer: UpdateAnswer,
        direct: bool,
    ) {
        let (written, whole, done) = match (&answer, waiter.direct) {
            (Ok(Ok(UpdateOk::Done)), Some(reply)) => {
                let written = if direct { reply.write_done() } else { 0 };
                (written, written == reply.done.len(), Some(reply.done))
            }
            _ => (0, false, None),
        };
        waiter.reply.send(Answered {
            answer,
            written,
            quiet_at: whole.then(Instant::now),
            done,
        });
    }

    /// Times the append and counts what the next fsync makes durable.
    fn appended(&mut self, entries: &[tlog::Entry], started: Time) {
        let took = self
            .clock
            .now()
            .as_nanos()
            .saturating_sub(started.as_nanos());
        let mut bytes = 0u64;
        let mut updates = 0u64;
        for e in entries {
            bytes = bytes.saturating_add(e.payload.len() as u64);
            // A barrier entry (empty payload) carries no update.
            let count = protocol::batch_update_count(&e.payload).unwrap_or(0);
            updates = updates.saturating_add(u64::from(count));
            if self.is_master && count > 0 {
                self.metrics.harvested(count);
            }
        }
        let n = entries.len() as u64;
        self.unsynced.entries = self.unsynced.entries.saturating_add(n);
        self.unsynced.updates = self.unsynced.updates.saturating_add(updates);
        self.metrics
            .tlog_appended(Duration::from_nanos(took), n, bytes);
    }

    fn sync(&mut self, job: SyncJob) -> SyncOutcome {
        let started = Instant::now();
        let result = job.run();
        if result.is_ok() {
            let synced = std::mem::take(&mut self.unsynced);
            self.metrics
                .tlog_synced(started.elapsed(), synced.entries, synced.updates);
        }
        SyncOutcome::Done(result)
    }

    fn role_changed(&mut self, rc: &RoleChange) {
        if rc.role == Role::Candidate {
            self.metrics.election_started();
        }
        tracing::debug!(role = %rc.role, n = rc.term, master = ?rc.master.map(|m| self.settings.name_of(m)), i = rc.last_index, commit = rc.commit_index, "role change");
        if let Some(master) = rc.master {
            if self.logged_master != Some((rc.term, master)) {
                self.logged_master = Some((rc.term, master));
                self.metrics.master_changed();
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

    /// A requested run's step goes to the connection that asked (it
    /// streams it to its client); an automatic run's is only logged (by
    /// the replica).
    fn collapsed(&mut self, progress: &replica::CollapseProgress) {
        self.metrics.collapsed(progress);
        if progress.origin != replica::CollapseOrigin::Request {
            return;
        }
        if let Some(tx) = &self.collapse_progress {
            // The client may have gone: the collapse goes on regardless.
            let _ = tx.send(progress.elapsed);
        }
        if progress.done >= progress.total {
            self.collapse_progress = None;
        }
    }
}

enum Event {
    Stop,
    Message(Option<PeerMessage>),
    Request(Option<DriverRequest>),
    /// The instant the tick was due.
    Tick(tokio::time::Instant),
    Wake,
    ApplyWanted,
}

/// The channels and shared handles the driver runs with.
pub struct DriverIo {
    pub transport: Transport,
    pub requests: mpsc::Receiver<DriverRequest>,
    pub inbound: mpsc::Receiver<PeerMessage>,
    pub published: watch::Sender<Published>,
    pub stop: watch::Receiver<StopMode>,
    /// A reader waits for this node to apply an index it holds
    /// (`AtLeast(i)`): apply what is committed now, whatever
    /// `slave_apply_delay` says.
    pub apply_wanted: Arc<Notify>,
    pub metrics: Arc<NodeMetrics>,
}

pub struct Driver {
    settings: Arc<Settings>,
    replica: Replica<Arc<SharedStore>, NodeWaiter>,
    env: NodeEnv,
    requests: mpsc::Receiver<DriverRequest>,
    inbound: mpsc::Receiver<PeerMessage>,
    stop: watch::Receiver<StopMode>,
    apply_wanted: Arc<Notify>,
}

/// Sleeps until `at`; never ends without one.
async fn sleep_until_if(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

impl From<ReplicaError> for NodeError {
    fn from(e: ReplicaError) -> NodeError {
        match e {
            ReplicaError::Tlog { dir, source } => NodeError::Tlog { dir, source },
            ReplicaError::Store(e) => NodeError::Store(e),
            e @ ReplicaError::Fatal { .. } => NodeError::Driver(e.to_string()),
        }
    }
}

impl Driver {
    pub fn new(
        settings: Arc<Settings>,
        clock: Clock,
        replica: Replica<Arc<SharedStore>, NodeWaiter>,
        io: DriverIo,
    ) -> Driver {
        Driver {
            env: NodeEnv {
                settings: Arc::clone(&settings),
                clock,
                transport: io.transport,
                published: io.published,
                logged_master: None,
                metrics: io.metrics,
                unsynced: Unsynced::default(),
                collapse_progress: None,
                is_master: false,
            },
            settings,
            replica,
            requests: io.requests,
            inbound: io.inbound,
            stop: io.stop,
            apply_wanted: io.apply_wanted,
        }
    }

    /// Runs until stopped (`StopMode::Graceful`: syncs and checkpoints;
    /// `StopMode::Crash`: drops everything as it is, like `kill -9`) or
    /// until the storage fails.
    pub async fn run(mut self) -> Result<(), NodeError> {
        let mut ticker = tokio::time::interval(self.settings.tick_interval);
        // After a stall, one tick at once, then the ticks keep their phase
        // (`Skip`; `Delay` would start them again from the stall's end).
        // Election timeouts are checked on ticks: two nodes that woke from
        // one stall (a frozen VM, both stopped) would otherwise tick in
        // step ever after, and their timeouts would fire on the same tick.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let result = self.run_loop(&mut ticker).await;
        let mode = *self.stop.borrow();
        match (result, mode) {
            (Err(e), _) => {
                tracing::error!(error = %e, "node stops: {e}");
                self.fail_all();
                Err(e)
            }
            (Ok(()), StopMode::Crash) => Ok(()),
            (Ok(()), _) => {
                self.drain_requests();
                self.replica.shutdown(&mut self.env)?;
                Ok(())
            }
        }
    }

    async fn run_loop(&mut self, ticker: &mut tokio::time::Interval) -> Result<(), NodeError> {
        self.settle().await?;
        loop {
            // A commit index the slaves are owed, or committed entries a
            // slave holds back (`slave_apply_delay`).
            let wake = sleep_until_if(self.replica.wake_at().map(|t| self.env.clock.instant_at(t)));
            let event = tokio::select! {
                biased;
                r = self.stop.changed() => match r {
                    Ok(()) => Event::Stop,
                    Err(_) => return Ok(()), // the node's handle is gone: stop
                },
                // Ticks before the queues: heartbeats and elections must
                // not starve under load (a tick is cheap and rare).
                due = ticker.tick() => Event::Tick(due),
                () = wake => Event::Wake,
                () = self.apply_wanted.notified() => Event::ApplyWanted,
                m = self.inbound.recv() => Event::Message(m),
                r = self.requests.recv() => Event::Request(r),
            };
            let started = Instant::now();
            let what = match &event {
                Event::Stop => "handling a stop took that long",
                Event::Message(_) => "handling a message took that long",
                Event::Request(_) => "handling a request took that long",
                Event::Tick(due) => {
                    let late = started.saturating_duration_since(due.into_std());
                    self.warn_if_stalled("its tick came that late", late);
                    "handling a tick took that long"
                }
                Event::Wake => "handling a wake-up took that long",
                Event::ApplyWanted => "handling an apply took that long",
            };
            match event {
                Event::Stop => {
                    if *self.stop.borrow() != StopMode::Running {
                        return Ok(());
                    }
                }
                Event::Message(None) | Event::Request(None) => return Ok(()),
                Event::Message(Some(m)) => {
                    self.on_message(m)?;
                    for _ in 1..INPUTS_PER_ROUND_MAX {
                        match self.inbound.try_recv() {
                            Ok(m) => self.on_message(m)?,
                            Err(_) => break,
                        }
                    }
                }
                Event::Request(Some(r)) => {
                    self.on_request(r)?;
                    for _ in 1..INPUTS_PER_ROUND_MAX {
                        match self.requests.try_recv() {
                            Ok(r) => self.on_request(r)?,
                            Err(_) => break,
                        }
                    }
                }
                Event::Tick(_) => self.replica.tick(&mut self.env)?,
                Event::Wake => self.replica.wake(&mut self.env)?,
                Event::ApplyWanted => self.replica.want_apply(),
            }
            self.settle().await?;
            self.warn_if_stalled(what, started.elapsed());
        }
    }

    /// Logs a stretch the driver did not run its timers for: handling one
    /// input took that long, or the tick came that late (the thread was
    /// busy elsewhere or not scheduled). Elections and heartbeats wait
    /// meanwhile: a slave whose election timeout passed in the stretch
    /// campaigns at once when it ends.
    fn warn_if_stalled(&self, what: &str, took: Duration) {
        let limit = self.settings.consensus.heartbeat_interval * 2;
        if took > limit {
            tracing::warn!(
                millis = took.as_millis() as u64,
                "driver stalled for {took:.0?} (over two heartbeat intervals): {what}"
            );
        }
    }

    /// Lets the replica settle, yielding to the messaging tasks where it
    /// asks: the master's appends leave before its own fsync, a slave's
    /// acknowledgement before anything else.
    async fn settle(&mut self) -> Result<(), NodeError> {
        while self.replica.settle(&mut self.env)? == Settle::Yield {
            tokio::task::yield_now().await;
        }
        Ok(())
    }

    fn on_message(&mut self, msg: PeerMessage) -> Result<(), NodeError> {
        let msg = match msg {
            PeerMessage::Consensus(m) => m,
            PeerMessage::Snapshot(s) => {
                self.replica.step_snapshot(s, &mut self.env)?;
                return Ok(());
            }
        };
        let from = msg.from;
        let kind = msg.body.kind();
        match self.replica.step(msg, &mut self.env) {
            Ok(()) => Ok(()),
            Err(StepError::Log(e)) => Err(NodeError::Driver(format!("tlog read: {e}"))),
            Err(e) => {
                tracing::warn!(peer = %self.settings.name_of(from), kind, "message refused: {e}");
                Ok(())
            }
        }
    }

    fn on_request(&mut self, request: DriverRequest) -> Result<(), NodeError> {
        match request {
            DriverRequest::Update {
                update,
                reply,
                direct,
            } => {
                let waiter = NodeWaiter { reply, direct };
                self.replica.submit(update, waiter, &mut self.env);
            }
            DriverRequest::TermOf { index, reply } => {
                let _ = reply.send(self.replica.tlog().term(index));
            }
            DriverRequest::TlogFacts { term_at, reply } => {
                let tlog = self.replica.tlog();
                let _ = reply.send(crate::state::TlogFacts {
                    first_index: tlog.first_index(),
                    last_index: tlog.last_index(),
                    term_at: term_at.and_then(|i| tlog.term(i)),
                });
            }
            DriverRequest::DropMaster { reply } => {
                let answer = self.replica.drop_master(&mut self.env)?;
                let _ = reply.send(answer);
            }
            DriverRequest::Collapse {
                tlogs_to_keep,
                started,
                progress,
            } => {
                let answer = self
                    .replica
                    .collapse(i64::from(tlogs_to_keep), &mut self.env)?;
                if let Ok(count) = answer {
                    if count > 0 {
                        // Before the run's first step (at the next wake).
                        self.env.collapse_progress = Some(progress);
                    }
                }
                let _ = started.send(answer);
            }
        }
        Ok(())
    }

    /// After an error: every waiter, proposed or queued here or still in the
    /// requests channel, is told the node is going down.
    fn fail_all(&mut self) {
        self.replica.fail_all(&mut self.env);
        self.drain_requests();
    }

    fn drain_requests(&mut self) {
        while let Ok(r) = self.requests.try_recv() {
            match r {
                DriverRequest::Update { reply, .. } => {
                    reply.send(Answered::new(Err(Refused::GoingDown { proposed: false })));
                }
                DriverRequest::DropMaster { reply } => {
                    let _ = reply.send(Err("the node is going down".into()));
                }
                // Dropped: the connection answers E_GOING_DOWN (or, for a
                // term, goes without it).
                DriverRequest::Collapse { .. }
                | DriverRequest::TermOf { .. }
                | DriverRequest::TlogFacts { .. } => {}
            }
        }
    }
}
