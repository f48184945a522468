//! One simulated node: the real [`Replica`] (consensus core, tlog, store and
//! the driver loop of `crates/replica`, the very code the node runs) on its
//! own simulated disk, and what only the simulation adds: a virtual clock,
//! fsyncs that take simulated time, the network, the clients' requests and
//! answers, and the observer's hooks.
//!
//! Clients' updates go through the replica's write path (answered at commit
//! or after the apply, directly or through the "connection": a delivery
//! event a little later), reads through its read gates (`Consistent` under
//! the published lease, `AtLeast(i)` waiting for an index the tlog holds,
//! with the apply nudge), exactly as on a real node.
//!
//! As in the node, the fsync blocks the driver: while it runs, the node
//! takes no message, tick or update (they wait, as in the node's queues),
//! but its readers go on serving from the state last published (the node's
//! connection tasks do). A slow disk (a fault) can so stall a master for
//! longer than its lease: its published lease must lapse by the clock.

use crate::checker::{Op, Outcome, Value};
use crate::clock::NodeClock;
use crate::net::Network;
use crate::observe::Observer;
use crate::rng::Rng;
use crate::storage::Storage;
use crate::workload::{ClientReply, ClientRequest, ReadKind};
use bytes::Bytes;
use consensus::{Config, Core, HardState, Message, Role, RoleChange, Standing, Time};
use disk::SimDisk;
use protocol::{KeyRange, Update};
use replica::reads::{Gate, ReadConsistency, ReadGate, ReadRefusal, ReadTiming};
use replica::{
    Env, PeerMessage, Published, Refused, Replica, Settle, SnapshotMessage, SyncOutcome,
    UpdateAnswer,
};
use std::collections::BTreeMap;
use store::{Order, Store, UpdateFailure, UpdateOk};
use tlog::SyncJob;

/// What travels on the simulated network.
#[derive(Debug, Clone)]
pub enum SimMsg {
    /// A message between replicas (consensus, or a snapshot transfer's),
    /// encoded with the real wire codec.
    Peer(Bytes),
    Request(ClientRequest),
    Reply {
        request_id: u64,
        reply: ClientReply,
    },
}

/// The shared world a node acts on while it handles one input.
pub struct Ctx<'a> {
    pub now_ns: u64,
    pub net: &'a mut Network<SimMsg>,
    pub obs: &'a mut Observer,
    pub rng: &'a mut Rng,
    /// Real-time bounds of one fsync.
    pub fsync_ns: (u64, u64),
    /// Clients' endpoints start after the nodes'.
    pub clients_base: usize,
}

/// A store's user pairs, in key order.
pub type StoreContent = Vec<(Vec<u8>, Vec<u8>)>;

/// Store checkpoint every this many applied entries (often, so that
/// crashes find the store anywhere between checkpoint and tlog).
const CHECKPOINT_EVERY: u64 = 16;
/// An answer that goes through the client's connection (not the driver's
/// direct path) arrives this much later at most: the hop to the
/// connection's thread.
const CONNECTION_HOP_NS: (u64, u64) = (20_000, 300_000);

pub fn key_bytes(key: u64) -> Vec<u8> {
    format!("k{key:03}").into_bytes()
}

fn value_bytes(v: Value) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn decode_value(bytes: &[u8]) -> Result<Value, String> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| format!("a value of {} bytes, the simulator writes 8", bytes.len()))?;
    Ok(u64::from_le_bytes(arr))
}

/// The Arakoon update a client operation becomes.
pub fn update_of(key: u64, op: &Op) -> Option<Update> {
    let key = key_bytes(key);
    Some(match op {
        Op::Get => return None,
        Op::Set(v) => Update::Set {
            key,
            value: value_bytes(*v),
        },
        Op::Delete => Update::Delete { key },
        Op::TestAndSet { expected, wanted } => Update::TestAndSet {
            key,
            expected: expected.map(value_bytes),
            wanted: wanted.map(value_bytes),
        },
        Op::AssertThenSet { expected, wanted } => Update::Sequence(vec![
            Update::Assert {
                key: key.clone(),
                value: expected.map(value_bytes),
            },
            Update::Set {
                key,
                value: value_bytes(*wanted),
            },
        ]),
    })
}

/// What the client is told for an applied update.
fn outcome_of(op: &Op, result: &store::UpdateResult) -> Result<Outcome, String> {
    Ok(match (op, result) {
        (Op::Set(_), Ok(UpdateOk::Done)) => Outcome::Ok,
        (Op::Delete, Ok(UpdateOk::Done)) => Outcome::Ok,
        (Op::Delete, Err(UpdateFailure::NotFound { .. })) => Outcome::NotFound,
        (Op::TestAndSet { .. }, Ok(UpdateOk::Previous(v))) => {
            Outcome::Value(v.as_deref().map(decode_value).transpose()?)
        }
        (Op::AssertThenSet { .. }, Ok(UpdateOk::Done)) => Outcome::Ok,
        (Op::AssertThenSet { .. }, Err(UpdateFailure::AssertionFailed { .. })) => {
            Outcome::AssertionFailed
        }
        (op, result) => return Err(format!("{op:?} answered {result:?}")),
    })
}

fn read_value(store: &Store, key: u64) -> Result<Option<Value>, String> {
    let raw = store
        .read()
        .and_then(|view| view.get(&key_bytes(key)))
        .map_err(|e| format!("store get: {e}"))?;
    raw.as_deref().map(decode_value).transpose()
}

/// The replica's settings in the simulator (the node's defaults, with
/// frequent checkpoints, and the automatic collapse keeping 2 segments of
/// 8 entries: peers that fall behind need snapshots often).
pub fn replica_settings() -> replica::Settings {
    replica::Settings {
        checkpoint_every_entries: CHECKPOINT_EVERY,
        auto_collapse_keep: 2,
        ..replica::Settings::default()
    }
}

/// A running node: the replica, its fsync in flight, its waiting reads.
struct Running {
    replica: Replica<Store, ClientRequest>,
    /// An fsync in flight (the driver is blocked until it completes), and
    /// the real time it completes.
    fsync: Option<(u64, SyncJob)>,
    /// Reads waiting at a gate.
    reads: Vec<(ReadGate, ClientRequest)>,
    /// Updates that came while the driver was blocked (the node's request
    /// queue), submitted once it is free.
    held_updates: Vec<(Update, ClientRequest)>,
    /// A tick came while the driver was blocked.
    tick_held: bool,
}

/// The simulated world as one node's replica sees it.
struct SimEnv<'a, 'b> {
    ctx: &'a mut Ctx<'b>,
    id: usize,
    clock: NodeClock,
    fsync: &'a mut Option<(u64, SyncJob)>,
    /// The next fsync takes this long (a slow disk), if set.
    slow_fsync_ns: &'a mut Option<u64>,
}

impl SimEnv<'_, '_> {
    fn reply(&mut self, request: &ClientRequest, reply: ClientReply, at_ns: Option<u64>) {
        let msg = SimMsg::Reply {
            request_id: request.request_id,
            reply,
        };
        let to = self.ctx.clients_base + request.client;
        match at_ns {
            Some(at) => self.ctx.net.send_at(at, self.id, to, msg),
            None => self.ctx.net.send_once(self.ctx.now_ns, self.id, to, msg),
        }
    }
}

impl Env for SimEnv<'_, '_> {
    type Waiter = ClientRequest;

    fn now(&self) -> Time {
        Time(self.clock.local_ns(self.ctx.now_ns))
    }

    fn send(&mut self, message: &Message) {
        let to = message.to.0 as usize;
        let bytes = Bytes::from(replica::peer::encode_consensus(message));
        self.ctx
            .net
            .send(self.ctx.now_ns, self.id, to, SimMsg::Peer(bytes));
    }

    fn send_snapshot(&mut self, message: &SnapshotMessage) {
        let to = message.to().0 as usize;
        let bytes = Bytes::from(replica::peer::encode_snapshot(message));
        self.ctx
            .net
            .send(self.ctx.now_ns, self.id, to, SimMsg::Peer(bytes));
    }

    fn publish(&mut self, _published: &Published) {}

    fn answer(
        &mut self,
        request: ClientRequest,
        index: Option<u64>,
        answer: UpdateAnswer,
        direct: bool,
    ) {
        let reply = match answer {
            Ok(result) => match outcome_of(&request.op, &result) {
                Ok(outcome) => ClientReply::Done {
                    outcome,
                    index: index.unwrap_or(0),
                },
                Err(e) => {
                    let id = self.id;
                    self.ctx
                        .obs
                        .violation(self.ctx.now_ns, format!("node {id}: {e}"));
                    return;
                }
            },
            Err(Refused::NotMaster(m)) => ClientReply::NotMaster {
                hint: m.map(|m| m.0 as usize),
            },
            Err(Refused::NoLongerMaster | Refused::GoingDown { .. }) => ClientReply::NoLongerMaster,
            Err(Refused::DiskFull(_)) => ClientReply::Refused,
            Err(other) => {
                let id = self.id;
                self.ctx.obs.violation(
                    self.ctx.now_ns,
                    format!("node {id}: the simulator's update was refused: {other:?}"),
                );
                return;
            }
        };
        // The driver's direct path answers now; the connection's, a hop later.
        let at = (!direct).then(|| {
            self.ctx.now_ns
                + self
                    .ctx
                    .rng
                    .between(CONNECTION_HOP_NS.0, CONNECTION_HOP_NS.1)
        });
        self.reply(&request, reply, at);
    }

    fn sync(&mut self, job: SyncJob) -> SyncOutcome {
        let took = match self.slow_fsync_ns.take() {
            Some(slow) => slow,
            None => self
                .ctx
                .rng
                .between(self.ctx.fsync_ns.0, self.ctx.fsync_ns.1),
        };
        *self.fsync = Some((self.ctx.now_ns + took, job));
        SyncOutcome::Pending
    }

    fn role_changed(&mut self, rc: &RoleChange) {
        let id = self.id;
        self.ctx.obs.trace(self.ctx.now_ns, || {
            format!(
                "node {id}: {} in term {} (master {:?}), tlog last {}, commit {}",
                rc.role, rc.term, rc.master, rc.last_index, rc.commit_index
            )
        });
        if rc.role == Role::Master {
            self.ctx.obs.became_master(self.ctx.now_ns, id, rc.term);
        }
    }

    /// Every entry applied is observed, with the keys it was the last in
    /// the batch to touch and their values after the batch (one store
    /// transaction applies the batch: values in between are not there to
    /// read, and are not needed: no later entry of the batch changed them).
    fn applied(&mut self, entries: &[tlog::Entry], updates: &[Vec<Update>], store: &Store) {
        let mut last_touch: BTreeMap<u64, u64> = BTreeMap::new();
        for (entry, batch) in entries.iter().zip(updates) {
            let mut keys = Vec::new();
            for u in batch {
                collect_keys(u, &mut keys);
            }
            for k in keys {
                last_touch.insert(k, entry.index);
            }
        }
        let mut values: BTreeMap<u64, Vec<(u64, Option<Value>)>> = BTreeMap::new();
        for (&key, &index) in &last_touch {
            match read_value(store, key) {
                Ok(v) => values.entry(index).or_default().push((key, v)),
                Err(e) => {
                    let id = self.id;
                    self.ctx
                        .obs
                        .violation(self.ctx.now_ns, format!("node {id}: {e}"));
                    return;
                }
            }
        }
        for entry in entries {
            let touched = values.remove(&entry.index).unwrap_or_default();
            self.ctx.obs.applied(
                self.ctx.now_ns,
                self.id,
                entry.index,
                entry.term,
                &entry.payload,
                &touched,
            );
        }
    }

    /// The installed store must hold, for every key, the value the key
    /// had after `index` (as the nodes that applied the entries saw it).
    fn snapshot_installed(&mut self, index: u64, term: u64, store: &Store) {
        let id = self.id;
        self.ctx.obs.trace(self.ctx.now_ns, || {
            format!("node {id}: installed a store snapshot at ({index}, term {term})")
        });
        let content = match store
            .read()
            .and_then(|view| view.range_entries(&KeyRange::all(), Order::Ascending, usize::MAX))
        {
            Ok(c) => c,
            Err(e) => {
                self.ctx.obs.violation(
                    self.ctx.now_ns,
                    format!("node {id}: reading the installed snapshot: {e}"),
                );
                return;
            }
        };
        let mut pairs = Vec::with_capacity(content.len());
        for (key, value) in content {
            match (parse_key(&key), decode_value(&value)) {
                (Some(k), Ok(v)) => pairs.push((k, v)),
                _ => {
                    self.ctx.obs.violation(
                        self.ctx.now_ns,
                        format!("node {id}: the installed snapshot holds a pair the simulator never wrote"),
                    );
                    return;
                }
            }
        }
        self.ctx
            .obs
            .snapshot_installed(self.ctx.now_ns, id, index, term, &pairs);
    }
}

/// A simulated node, running or crashed.
pub struct SimNode {
    pub id: usize,
    pub clock: NodeClock,
    pub disk: SimDisk,
    config: Config,
    settings: replica::Settings,
    running: Option<Running>,
    /// While paused (SIGSTOP), inputs wait until this real time.
    pub paused_until_ns: u64,
    /// Real time of the next tick.
    pub next_tick_ns: u64,
    /// The standing it last had (kept while it is down; `Unknown` once
    /// its disk was wiped).
    pub standing: Standing,
    /// The next fsync takes this long (the slow-disk fault).
    pub slow_fsync_ns: Option<u64>,
    /// The tlog's device is full until this real time (the disk-full fault).
    pub disk_full_until_ns: Option<u64>,
}

impl std::fmt::Debug for SimNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNode")
            .field("id", &self.id)
            .field("running", &self.running.is_some())
            .field("standing", &self.standing)
            .finish_non_exhaustive()
    }
}

impl SimNode {
    pub fn new(
        id: usize,
        clock: NodeClock,
        config: Config,
        settings: replica::Settings,
    ) -> SimNode {
        SimNode {
            id,
            clock,
            disk: SimDisk::new(),
            config,
            settings,
            running: None,
            paused_until_ns: 0,
            next_tick_ns: 0,
            standing: Standing::Unknown,
            slow_fsync_ns: None,
            disk_full_until_ns: None,
        }
    }

    /// The tlog's device fills (writes there fail with ENOSPC) until
    /// `until_ns`; the store's device keeps space.
    pub fn fill_tlog_device(&mut self, until_ns: u64) {
        self.disk.set_full(Some(&crate::storage::tlog_dir()));
        self.disk_full_until_ns = Some(until_ns);
    }

    /// The tlog's device has space again.
    pub fn free_tlog_device(&mut self) {
        self.disk.set_full(None);
        self.disk_full_until_ns = None;
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    pub fn is_paused(&self, now_ns: u64) -> bool {
        now_ns < self.paused_until_ns
    }

    /// The real time the fsync in flight completes.
    pub fn fsync_due_ns(&self) -> Option<u64> {
        self.running
            .as_ref()
            .and_then(|r| r.fsync.as_ref().map(|f| f.0))
    }

    /// Until when the driver takes no input: it is paused, or blocked in an
    /// fsync (then its readers still serve).
    pub fn driver_busy_until_ns(&self, now_ns: u64) -> Option<u64> {
        let until = self.paused_until_ns.max(self.fsync_due_ns().unwrap_or(0));
        (until > now_ns).then_some(until)
    }

    /// The real time the replica wants to be woken at.
    pub fn wake_due_ns(&self) -> Option<u64> {
        let r = self.running.as_ref()?;
        r.replica.wake_at().map(|t| self.clock.real_ns_at(t.0))
    }

    pub fn applied_index(&self) -> Option<u64> {
        self.running
            .as_ref()
            .map(|r| r.replica.store().applied_index())
    }

    pub fn commit_index(&self) -> Option<u64> {
        self.running
            .as_ref()
            .map(|r| r.replica.core().commit_index())
    }

    pub fn role(&self) -> Option<Role> {
        self.running.as_ref().map(|r| r.replica.core().role())
    }

    pub fn has_pending_client_work(&self) -> bool {
        self.running
            .as_ref()
            .is_some_and(|r| r.replica.has_waiters() || !r.reads.is_empty())
    }

    /// The store's user content, for the end-of-run comparison.
    pub fn store_content(&self) -> Option<Result<StoreContent, String>> {
        self.running.as_ref().map(|r| {
            r.replica
                .store()
                .read()
                .and_then(|view| view.range_entries(&KeyRange::all(), Order::Ascending, usize::MAX))
                .map_err(|e| e.to_string())
        })
    }

    fn local(&self, now_ns: u64) -> Time {
        Time(self.clock.local_ns(now_ns))
    }

    /// Starts the node (first boot or restart after a crash): recover the
    /// tlog and store from the disk, rebuild the core and the replica.
    pub fn start(&mut self, ctx: &mut Ctx) {
        assert!(self.running.is_none(), "node {} started twice", self.id);
        let storage = match Storage::open(&self.disk) {
            Ok(s) => s,
            Err(e) => {
                ctx.obs.violation(
                    ctx.now_ns,
                    format!("node {} cannot recover its disk: {e}", self.id),
                );
                return;
            }
        };
        // Nothing persisted (first boot, or a wiped disk): an unknown
        // state with a fresh incarnation, as the node does.
        let hard_state = match storage.tlog.hard_state() {
            Some(saved) => saved,
            None => HardState::unknown(ctx.rng.below(u64::MAX - 1) + 1),
        };
        let applied = storage.store.applied_index();
        let now = self.local(ctx.now_ns);
        let core = match Core::new(self.config.clone(), hard_state, &storage.tlog, applied, now) {
            Ok(c) => c,
            Err(e) => {
                ctx.obs
                    .violation(ctx.now_ns, format!("node {} cannot restart: {e}", self.id));
                return;
            }
        };
        let id = self.id;
        let (first, last) = (storage.tlog.first_index(), storage.tlog.last_index());
        ctx.obs.trace(ctx.now_ns, || {
            format!(
                "node {id}: start, term {}, {}, tlog {first}..={last}, store at {applied}",
                hard_state.term,
                core.standing()
            )
        });
        self.standing = core.standing();
        let replica = Replica::new(
            self.settings.clone(),
            core,
            storage.tlog,
            storage.store,
            now,
        );
        self.running = Some(Running {
            replica,
            fsync: None,
            reads: Vec::new(),
            held_updates: Vec::new(),
            tick_held: false,
        });
        self.next_tick_ns = ctx.now_ns;
    }

    /// The disk is lost: the process is gone and the node comes back with
    /// an empty disk (an operator replaced it and wiped the home).
    pub fn wipe(&mut self, ctx: &mut Ctx) {
        self.running = None;
        self.disk = SimDisk::new();
        self.disk_full_until_ns = None;
        self.standing = Standing::Unknown;
        let id = self.id;
        ctx.obs
            .trace(ctx.now_ns, || format!("node {id}: WIPE (disk lost)"));
    }

    /// `collapse_tlogs` on this node, keeping its newest `keep` full
    /// segments (never what its store has not made durable); the run's
    /// steps follow at the replica's wake-ups.
    pub fn collapse(&mut self, ctx: &mut Ctx, keep: u64) {
        let id = self.id;
        let mut count = None;
        self.with_replica(ctx, |replica, env| {
            match replica
                .collapse(keep as i64, env)
                .map_err(|e| e.to_string())?
            {
                Ok(n) => count = Some(n),
                Err(refused) => {
                    env.ctx.obs.trace(env.ctx.now_ns, || {
                        format!("node {id}: collapse refused: {refused}")
                    });
                }
            }
            Ok(())
        });
        if let Some(count) = count {
            ctx.obs.trace(ctx.now_ns, || {
                format!("node {id}: COLLAPSE keeping {keep} segments: {count} to remove")
            });
        }
    }

    /// Power loss: everything not fsynced may be lost; the process is gone.
    pub fn crash(&mut self, ctx: &mut Ctx) {
        self.running = None;
        let rng = &mut *ctx.rng;
        self.disk.crash(&mut |n| rng.below(n));
        let id = self.id;
        ctx.obs.trace(ctx.now_ns, || format!("node {id}: CRASH"));
    }

    /// Runs `input` on the replica with this node's environment, then lets
    /// it settle and serves the reads that can be served. An error of the
    /// replica (its storage or a refused input) is a violation.
    fn with_replica(
        &mut self,
        ctx: &mut Ctx,
        input: impl FnOnce(&mut Replica<Store, ClientRequest>, &mut SimEnv) -> Result<(), String>,
    ) {
        let id = self.id;
        let clock = self.clock;
        let Some(r) = self.running.as_mut() else {
            return;
        };
        let mut env = SimEnv {
            ctx,
            id,
            clock,
            fsync: &mut r.fsync,
            slow_fsync_ns: &mut self.slow_fsync_ns,
        };
        let mut result = input(&mut r.replica, &mut env);
        if result.is_ok() {
            result = settle(&mut r.replica, &mut env);
        }
        // Reads waiting for an apply a slave held back get it now (the
        // node's connections notify the driver, which settles again).
        if result.is_ok() && serve_reads(&r.replica, &mut r.reads, &mut env) {
            r.replica.want_apply();
            result = settle(&mut r.replica, &mut env);
            if result.is_ok() {
                serve_reads(&r.replica, &mut r.reads, &mut env);
            }
        }
        if let Err(e) = result {
            env.ctx
                .obs
                .violation(env.ctx.now_ns, format!("node {id}: {e}"));
            return;
        }
        // The core counts this node (a slave's acknowledgement, a master's
        // own share of a commit) only for what its tlog fsynced, or what a
        // store snapshot installed over entries the tlog holds unsynced
        // covers (the next start rebases the tlog on that snapshot:
        // `replica::reconcile_storage`).
        let counted = r.replica.core().status().synced_index;
        let mut durable = r.replica.tlog().synced_index();
        if counted > durable {
            let store = r.replica.store();
            if let Ok(Some((index, _))) = store.snapshot_base() {
                if index == store.durable_applied_index() {
                    durable = durable.max(index);
                }
            }
        }
        if counted > durable {
            ctx.obs.violation(
                ctx.now_ns,
                format!(
                    "node {id}: counted as durable up to index {counted}, but its tlog fsynced only up to {durable} (held in memory: {})",
                    r.replica.held_entries()
                ),
            );
        }
        let standing = r.replica.core().standing();
        if standing != self.standing {
            ctx.obs
                .trace(ctx.now_ns, || format!("node {id}: now {standing}"));
            self.standing = standing;
        }
    }

    pub fn tick(&mut self, ctx: &mut Ctx, tick_interval_ns: u64) {
        let now = self.local(ctx.now_ns);
        self.next_tick_ns = self
            .clock
            .real_ns_at(now.0 + tick_interval_ns)
            .max(ctx.now_ns + 1);
        if self.driver_busy_until_ns(ctx.now_ns).is_some() {
            // The readers' timers run; the driver's tick waits for the fsync.
            self.serve_reads_only(ctx);
            if let Some(r) = self.running.as_mut() {
                r.tick_held = true;
            }
            return;
        }
        self.with_replica(ctx, |replica, env| {
            replica.tick(env).map_err(|e| e.to_string())
        });
    }

    /// While the driver is blocked: the waiting reads ask their gates again
    /// (the published state stands still, the clock does not).
    fn serve_reads_only(&mut self, ctx: &mut Ctx) {
        let id = self.id;
        let clock = self.clock;
        let Some(r) = self.running.as_mut() else {
            return;
        };
        let mut env = SimEnv {
            ctx,
            id,
            clock,
            fsync: &mut r.fsync,
            slow_fsync_ns: &mut self.slow_fsync_ns,
        };
        // An apply a reader asks for waits for the driver too.
        if serve_reads(&r.replica, &mut r.reads, &mut env) {
            r.replica.want_apply();
        }
    }

    /// At the replica's wake-up time: a commit announcement, or entries a
    /// slave held back.
    pub fn wake(&mut self, ctx: &mut Ctx) {
        self.with_replica(ctx, |replica, env| {
            replica.wake(env).map_err(|e| e.to_string())
        });
    }

    pub fn on_peer(&mut self, ctx: &mut Ctx, bytes: &[u8]) {
        let msg = match replica::peer::decode(bytes, &consensus::DecodeLimits::default()) {
            Ok(m) => m,
            Err(e) => {
                let id = self.id;
                ctx.obs.violation(
                    ctx.now_ns,
                    format!("node {id}: undecodable peer message: {e}"),
                );
                return;
            }
        };
        self.with_replica(ctx, |replica, env| match msg {
            PeerMessage::Consensus(msg) => replica
                .step(msg, env)
                .map_err(|e| format!("core refused an input: {e}")),
            PeerMessage::Snapshot(msg) => replica
                .step_snapshot(msg, env)
                .map_err(|e| format!("snapshot transfer: {e}")),
        });
    }

    /// The fsync completed: the driver takes what waited for it (the
    /// updates, a tick) along with the result.
    pub fn on_fsync_done(&mut self, ctx: &mut Ctx) {
        let Some(r) = self.running.as_mut() else {
            return;
        };
        let Some((_, job)) = r.fsync.take() else {
            return;
        };
        let held = std::mem::take(&mut r.held_updates);
        let tick = std::mem::take(&mut r.tick_held);
        self.with_replica(ctx, |replica, env| {
            replica
                .sync_finished(job.run(), env)
                .map_err(|e| e.to_string())?;
            for (update, request) in held {
                replica.submit(update, request, env);
            }
            if tick {
                replica.tick(env).map_err(|e| e.to_string())?;
            }
            Ok(())
        });
    }

    pub fn on_request(&mut self, ctx: &mut Ctx, request: ClientRequest) {
        let busy = self.driver_busy_until_ns(ctx.now_ns).is_some();
        match update_of(request.key, &request.op) {
            Some(update) if busy => {
                if let Some(r) = self.running.as_mut() {
                    r.held_updates.push((update, request));
                }
            }
            Some(update) => self.with_replica(ctx, |replica, env| {
                replica.submit(update, request, env);
                Ok(())
            }),
            None => {
                let consistency = match request.read {
                    ReadKind::Consistent => ReadConsistency::Consistent,
                    ReadKind::AtLeast(i) => ReadConsistency::AtLeast(i),
                };
                let timing = ReadTiming {
                    lease_period: self.config.lease_period,
                    heartbeat_interval: self.config.heartbeat_interval,
                };
                let gate = ReadGate::new(consistency, timing, self.local(ctx.now_ns));
                if let Some(r) = self.running.as_mut() {
                    r.reads.push((gate, request));
                }
                if busy {
                    self.serve_reads_only(ctx);
                } else {
                    self.with_replica(ctx, |_, _| Ok(()));
                }
            }
        }
    }
}

/// Lets the replica settle (its messages are in the network already, so a
/// `Yield` needs nothing).
fn settle(replica: &mut Replica<Store, ClientRequest>, env: &mut SimEnv) -> Result<(), String> {
    loop {
        match replica.settle(env) {
            Ok(Settle::Yield) => {}
            Ok(Settle::Done) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Asks the gate of every waiting read again: serves, refuses, or keeps it
/// waiting. Returns whether a gate asks for the committed entries to be
/// applied now.
fn serve_reads(
    replica: &Replica<Store, ClientRequest>,
    reads: &mut Vec<(ReadGate, ClientRequest)>,
    env: &mut SimEnv,
) -> bool {
    if reads.is_empty() {
        return false;
    }
    let now = env.now();
    let published = replica.published();
    let store = replica.store();
    let applied = store.applied_index();
    let mut waiting = Vec::new();
    let mut apply_wanted = false;
    for (mut gate, request) in std::mem::take(reads) {
        match gate.check(published, applied, now) {
            Gate::Serve => match read_value(store, request.key) {
                Ok(v) => {
                    if gate.consistency() == ReadConsistency::Consistent {
                        env.ctx
                            .obs
                            .consistent_read(env.ctx.now_ns, env.id, published.term);
                    }
                    let reply = ClientReply::Done {
                        outcome: Outcome::Value(v),
                        index: applied,
                    };
                    env.reply(&request, reply, None);
                }
                Err(e) => {
                    let id = env.id;
                    env.ctx
                        .obs
                        .violation(env.ctx.now_ns, format!("node {id}: {e}"));
                }
            },
            Gate::Refuse(refusal) => {
                let reply = match refusal {
                    ReadRefusal::NotMaster(m) => ClientReply::NotMaster {
                        hint: m.map(|m| m.0 as usize),
                    },
                    ReadRefusal::NoLease => ClientReply::NotMaster { hint: None },
                    ReadRefusal::NoLongerMaster(_) | ReadRefusal::GoingDown => {
                        ClientReply::NoLongerMaster
                    }
                    ReadRefusal::Inconsistent { .. } => ClientReply::InconsistentRead,
                };
                env.reply(&request, reply, None);
            }
            Gate::Wait {
                apply_wanted: a, ..
            } => {
                apply_wanted |= a;
                waiting.push((gate, request));
            }
        }
    }
    *reads = waiting;
    apply_wanted
}

fn parse_key(key: &[u8]) -> Option<u64> {
    std::str::from_utf8(key.strip_prefix(b"k")?)
        .ok()?
        .parse()
        .ok()
}

fn collect_keys(update: &Update, out: &mut Vec<u64>) {
    match update {
        Update::Set { key, .. }
        | Update::Delete { key }
        | Update::TestAndSet { key, .. }
        | Update::Replace { key, .. } => out.extend(parse_key(key)),
        Update::Sequence(inner) | Update::SyncedSequence(inner) => {
            for u in inner {
                collect_keys(u, out);
            }
        }
        _ => {}
    }
}
