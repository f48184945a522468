//! One simulated node: the real consensus core, tlog and store on its own
//! simulated disk, driven the way the real node drives them (the caller's
//! loop documented in the consensus crate), plus a minimal client service:
//! writes are batched into one entry per fsync round (group commit),
//! `Consistent` reads wait for the lease's read index, `AtLeast` reads are
//! served by any node that has applied enough.

use crate::checker::{Op, Outcome, Value};
use crate::clock::NodeClock;
use crate::net::Network;
use crate::observe::Observer;
use crate::rng::Rng;
use crate::storage::Storage;
use crate::workload::{ClientReply, ClientRequest, ReadKind};
use bytes::Bytes;
use consensus::{Config, Core, HardState, ProposeError, ReadError, Role, Standing, Time};
use disk::SimDisk;
use protocol::Update;
use std::collections::BTreeMap;
use store::{UpdateFailure, UpdateOk};

/// What travels on the simulated network.
#[derive(Debug, Clone)]
pub enum SimMsg {
    /// A consensus message, encoded with the real wire codec.
    Consensus(Bytes),
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

/// Store checkpoint every this many applied entries.
const CHECKPOINT_EVERY: u64 = 16;

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

#[derive(Debug)]
struct Running {
    storage: Storage,
    core: Core,
    /// An fsync is in flight and completes at this real time.
    fsync_due_ns: Option<u64>,
    /// Writes waiting for the next entry.
    queued_writes: Vec<ClientRequest>,
    /// Proposed entries: index -> (term, the writes it carries).
    pending_writes: BTreeMap<u64, (u64, Vec<ClientRequest>)>,
    /// `Consistent` reads waiting until the store reaches their read index.
    pending_reads: Vec<(u64, ClientRequest)>,
    applied_since_checkpoint: u64,
}

/// A simulated node, running or crashed.
#[derive(Debug)]
pub struct SimNode {
    pub id: usize,
    pub clock: NodeClock,
    pub disk: SimDisk,
    config: Config,
    running: Option<Running>,
    /// While paused (SIGSTOP), inputs wait until this real time.
    pub paused_until_ns: u64,
    /// Real time of the next tick.
    pub next_tick_ns: u64,
    /// The standing it last had (kept while it is down; `Unknown` once
    /// its disk was wiped).
    pub standing: Standing,
}

impl SimNode {
    pub fn new(id: usize, clock: NodeClock, config: Config) -> SimNode {
        SimNode {
            id,
            clock,
            disk: SimDisk::new(),
            config,
            running: None,
            paused_until_ns: 0,
            next_tick_ns: 0,
            standing: Standing::Unknown,
        }
    }

    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    pub fn is_paused(&self, now_ns: u64) -> bool {
        now_ns < self.paused_until_ns
    }

    pub fn fsync_due_ns(&self) -> Option<u64> {
        self.running.as_ref().and_then(|r| r.fsync_due_ns)
    }

    pub fn applied_index(&self) -> Option<u64> {
        self.running
            .as_ref()
            .map(|r| r.storage.store.applied_index())
    }

    pub fn commit_index(&self) -> Option<u64> {
        self.running.as_ref().map(|r| r.core.commit_index())
    }

    pub fn role(&self) -> Option<Role> {
        self.running.as_ref().map(|r| r.core.role())
    }

    pub fn has_pending_client_work(&self) -> bool {
        self.running.as_ref().is_some_and(|r| {
            !r.queued_writes.is_empty()
                || !r.pending_writes.is_empty()
                || !r.pending_reads.is_empty()
        })
    }

    /// The store's user content, for the end-of-run comparison.
    pub fn store_content(&self) -> Option<Result<StoreContent, String>> {
        self.running.as_ref().map(|r| {
            r.storage
                .store
                .range_entries(None, true, None, true, -1)
                .map_err(|e| e.to_string())
        })
    }

    fn local(&self, now_ns: u64) -> Time {
        Time(self.clock.local_ns(now_ns))
    }

    /// Starts the node (first boot or restart after a crash): recover the
    /// tlog and store from the disk, rebuild the core from them.
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
        let core = match Core::new(
            self.config.clone(),
            hard_state,
            &storage.tlog,
            applied,
            self.local(ctx.now_ns),
        ) {
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
        self.running = Some(Running {
            storage,
            core,
            fsync_due_ns: None,
            queued_writes: Vec::new(),
            pending_writes: BTreeMap::new(),
            pending_reads: Vec::new(),
            applied_since_checkpoint: 0,
        });
        self.next_tick_ns = ctx.now_ns;
    }

    /// The disk is lost: the process is gone and the node comes back with
    /// an empty disk (an operator replaced it and wiped the home).
    pub fn wipe(&mut self, ctx: &mut Ctx) {
        self.running = None;
        self.disk = SimDisk::new();
        self.standing = Standing::Unknown;
        let id = self.id;
        ctx.obs
            .trace(ctx.now_ns, || format!("node {id}: WIPE (disk lost)"));
    }

    /// Power loss: everything not fsynced may be lost; the process is gone.
    pub fn crash(&mut self, ctx: &mut Ctx) {
        self.running = None;
        let rng = &mut *ctx.rng;
        self.disk.crash(&mut |n| rng.below(n));
        let id = self.id;
        ctx.obs.trace(ctx.now_ns, || format!("node {id}: CRASH"));
    }

    pub fn tick(&mut self, ctx: &mut Ctx, tick_interval_ns: u64) {
        let now = self.local(ctx.now_ns);
        self.next_tick_ns = self
            .clock
            .real_ns_at(now.0 + tick_interval_ns)
            .max(ctx.now_ns + 1);
        let Some(r) = self.running.as_mut() else {
            return;
        };
        let result = r.core.tick(now, &r.storage.tlog);
        self.after_input(ctx, result.map_err(|e| e.to_string()));
    }

    pub fn on_consensus(&mut self, ctx: &mut Ctx, bytes: &[u8]) {
        let now = self.local(ctx.now_ns);
        let Some(r) = self.running.as_mut() else {
            return;
        };
        let msg = match consensus::decode(bytes, &consensus::DecodeLimits::default()) {
            Ok(m) => m,
            Err(e) => {
                let id = self.id;
                ctx.obs.violation(
                    ctx.now_ns,
                    format!("node {id}: undecodable consensus message: {e}"),
                );
                return;
            }
        };
        let result = r.core.step(msg, now, &r.storage.tlog);
        self.after_input(ctx, result.map_err(|e| e.to_string()));
    }

    pub fn on_fsync_done(&mut self, ctx: &mut Ctx) {
        let now = self.local(ctx.now_ns);
        let Some(r) = self.running.as_mut() else {
            return;
        };
        r.fsync_due_ns = None;
        let result = match r.storage.tlog.sync() {
            Ok(synced) => match r.storage.tlog.term(synced) {
                Some(term) => r
                    .core
                    .entries_synced(synced, term, now, &r.storage.tlog)
                    .map_err(|e| e.to_string()),
                None if synced == 0 => Ok(()),
                None => Err(format!("no term for synced index {synced}")),
            },
            Err(e) => Err(format!("fsync: {e}")),
        };
        self.after_input(ctx, result);
    }

    fn reply(
        &self,
        ctx: &mut Ctx,
        request: &ClientRequest,
        reply: ClientReply,
        clients_base: usize,
    ) {
        let msg = SimMsg::Reply {
            request_id: request.request_id,
            reply,
        };
        ctx.net
            .send_once(ctx.now_ns, self.id, clients_base + request.client, msg);
    }

    fn master_hint(core: &Core) -> Option<usize> {
        core.master().map(|m| m.0 as usize)
    }

    pub fn on_request(&mut self, ctx: &mut Ctx, request: ClientRequest, clients_base: usize) {
        let now = self.local(ctx.now_ns);
        let Some(r) = self.running.as_mut() else {
            return;
        };
        match (&request.op, request.read) {
            (Op::Get, ReadKind::AtLeast(i)) => {
                let applied = r.storage.store.applied_index();
                let reply = if applied >= i {
                    match self.read_value(request.key) {
                        Ok(v) => ClientReply::Done {
                            outcome: Outcome::Value(v),
                            index: applied,
                        },
                        Err(e) => {
                            ctx.obs.violation(ctx.now_ns, e);
                            return;
                        }
                    }
                } else {
                    ClientReply::InconsistentRead
                };
                self.reply(ctx, &request, reply, clients_base);
            }
            (Op::Get, ReadKind::Consistent) => match r.core.consistent_read_index(now) {
                Ok(read_index) => {
                    r.pending_reads.push((read_index, request));
                    self.serve_reads(ctx, clients_base);
                }
                Err(ReadError::NotMaster { master }) => {
                    let hint = master.map(|m| m.0 as usize);
                    self.reply(ctx, &request, ClientReply::NotMaster { hint }, clients_base);
                }
                Err(ReadError::LeaseNotHeld { .. }) => {
                    self.reply(
                        ctx,
                        &request,
                        ClientReply::NotMaster { hint: None },
                        clients_base,
                    );
                }
            },
            _ => {
                if r.core.role() != Role::Master {
                    let hint = Self::master_hint(&r.core);
                    self.reply(ctx, &request, ClientReply::NotMaster { hint }, clients_base);
                    return;
                }
                r.queued_writes.push(request);
                self.after_input(ctx, Ok(()));
            }
        }
    }

    fn read_value(&self, key: u64) -> Result<Option<Value>, String> {
        let r = self.running.as_ref().ok_or("not running")?;
        let raw = r
            .storage
            .store
            .get(&key_bytes(key))
            .map_err(|e| format!("node {}: store get: {e}", self.id))?;
        raw.as_deref().map(decode_value).transpose()
    }

    /// Proposes every queued write as one entry, unless an fsync is in
    /// flight (then they wait for the next round: group commit).
    fn flush_writes(&mut self, ctx: &mut Ctx, clients_base: usize) {
        let now = self.local(ctx.now_ns);
        let Some(r) = self.running.as_mut() else {
            return;
        };
        if r.queued_writes.is_empty() || r.fsync_due_ns.is_some() {
            return;
        }
        let writes = std::mem::take(&mut r.queued_writes);
        let updates: Vec<Update> = writes
            .iter()
            .map(|w| update_of(w.key, &w.op).expect("only writes are queued"))
            .collect();
        let mut payload = Vec::new();
        protocol::encode_batch(&updates, &mut payload);
        match r.core.propose(Bytes::from(payload), now, &r.storage.tlog) {
            Ok(p) => {
                let id = self.id;
                ctx.obs.trace(ctx.now_ns, || {
                    format!(
                        "node {id}: propose {} writes at ({}, term {})",
                        writes.len(),
                        p.index,
                        p.term
                    )
                });
                r.pending_writes.insert(p.index, (p.term, writes));
            }
            Err(ProposeError::Step(e)) => {
                ctx.obs
                    .violation(ctx.now_ns, format!("node {}: propose failed: {e}", self.id));
            }
            Err(e) => {
                let hint = match e {
                    ProposeError::NotMaster { master } => master.map(|m| m.0 as usize),
                    _ => None,
                };
                for w in &writes {
                    self.reply(ctx, w, ClientReply::NotMaster { hint }, clients_base);
                }
            }
        }
    }

    /// After any input: propose queued writes, then carry out the core's
    /// `Ready` in the documented order until it is empty.
    fn after_input(&mut self, ctx: &mut Ctx, input: Result<(), String>) {
        if let Err(e) = input {
            ctx.obs.violation(
                ctx.now_ns,
                format!("node {}: core refused an input: {e}", self.id),
            );
            return;
        }
        let clients_base = ctx.clients_base;
        self.flush_writes(ctx, clients_base);
        if let Err(e) = self.process_ready(ctx, clients_base) {
            ctx.obs
                .violation(ctx.now_ns, format!("node {}: {e}", self.id));
        }
        if let Some(r) = &self.running {
            let standing = r.core.standing();
            if standing != self.standing {
                let id = self.id;
                ctx.obs
                    .trace(ctx.now_ns, || format!("node {id}: now {standing}"));
                self.standing = standing;
            }
        }
    }

    fn process_ready(&mut self, ctx: &mut Ctx, clients_base: usize) -> Result<(), String> {
        let id = self.id;
        let Some(r) = self.running.as_mut() else {
            return Ok(());
        };
        let ready = r
            .core
            .take_ready(&r.storage.tlog)
            .map_err(|e| format!("take_ready: {e}"))?;
        // 1. Hard state, durably, before any message of this Ready leaves.
        if let Some(hs) = ready.hard_state {
            r.storage
                .tlog
                .save_hard_state(hs)
                .map_err(|e| format!("save hard state: {e}"))?;
        }
        // 2. Truncate the uncommitted suffix, append the new entries (buffered).
        if let Some(after) = ready.truncate_after {
            ctx.obs.trace(ctx.now_ns, || {
                format!("node {id}: truncate tlog after {after}")
            });
            r.storage
                .tlog
                .truncate_suffix(after + 1)
                .map_err(|e| format!("truncate: {e}"))?;
        }
        if !ready.entries.is_empty() {
            let entries: Vec<tlog::Entry> = ready.entries.iter().map(tlog::Entry::from).collect();
            r.storage
                .tlog
                .append(&entries)
                .map_err(|e| format!("append: {e}"))?;
        }
        // 3. Messages.
        for m in &ready.messages {
            let to = m.to.0 as usize;
            let bytes = Bytes::from(consensus::encode(m));
            ctx.net.send(ctx.now_ns, id, to, SimMsg::Consensus(bytes));
        }
        if !ready.snapshots_to_send.is_empty() {
            // The simulator never collapses tlogs, so no slave can need a snapshot.
            return Err(format!(
                "asked to send snapshots to {:?}, but no tlog was collapsed",
                ready.snapshots_to_send
            ));
        }
        // 4. Role changes.
        for rc in &ready.role_changes {
            ctx.obs.trace(ctx.now_ns, || {
                format!(
                    "node {id}: {} in term {} (master {:?}), tlog last {}, commit {}",
                    rc.role, rc.term, rc.master, rc.last_index, rc.commit_index
                )
            });
            if rc.role == Role::Master {
                ctx.obs.became_master(ctx.now_ns, id, rc.term);
            }
        }
        if r.core.role() != Role::Master {
            // Lost mastership: what was proposed may or may not commit.
            let writes: Vec<ClientRequest> = std::mem::take(&mut r.pending_writes)
                .into_values()
                .flat_map(|(_, w)| w)
                .chain(std::mem::take(&mut r.queued_writes))
                .collect();
            let reads: Vec<ClientRequest> = std::mem::take(&mut r.pending_reads)
                .into_iter()
                .map(|(_, q)| q)
                .collect();
            for w in writes.iter().chain(&reads) {
                self.reply(ctx, w, ClientReply::NoLongerMaster, clients_base);
            }
        }
        // 5. Start an fsync for what was appended, if none is in flight.
        let r = self.running.as_mut().expect("still running");
        if r.fsync_due_ns.is_none() && r.storage.tlog.last_index() > r.storage.tlog.synced_index() {
            r.fsync_due_ns = Some(ctx.now_ns + ctx.rng.between(ctx.fsync_ns.0, ctx.fsync_ns.1));
        }
        // 6. Apply what is committed.
        self.apply_committed(ctx, ready.commit_index, clients_base)?;
        self.serve_reads(ctx, clients_base);
        Ok(())
    }

    fn apply_committed(
        &mut self,
        ctx: &mut Ctx,
        commit_index: u64,
        clients_base: usize,
    ) -> Result<(), String> {
        let id = self.id;
        loop {
            let r = self.running.as_mut().expect("running");
            let index = r.storage.store.applied_index() + 1;
            if index > commit_index {
                break;
            }
            let mut entries = r
                .storage
                .tlog
                .read(index, index + 1, u64::MAX)
                .map_err(|e| format!("read committed entry {index}: {e}"))?;
            let entry = entries
                .pop()
                .ok_or_else(|| format!("committed entry {index} missing from the tlog"))?;
            let updates = if entry.payload.is_empty() {
                Vec::new() // the master's barrier entry of its term
            } else {
                protocol::decode_batch(&entry.payload, &protocol::Limits::default())
                    .map_err(|e| format!("entry {index}: {e}"))?
            };
            let results = r
                .storage
                .store
                .apply(index, &updates)
                .map_err(|e| format!("apply {index}: {e}"))?;
            r.applied_since_checkpoint += 1;
            if r.applied_since_checkpoint >= CHECKPOINT_EVERY {
                r.applied_since_checkpoint = 0;
                r.storage
                    .store
                    .checkpoint()
                    .map_err(|e| format!("checkpoint: {e}"))?;
            }
            let mut touched = Vec::new();
            for u in &updates {
                collect_keys(u, &mut touched);
            }
            touched.sort_unstable();
            touched.dedup();
            let mut after = Vec::with_capacity(touched.len());
            for key in touched {
                after.push((key, self.read_value(key)?));
            }
            ctx.obs
                .applied(ctx.now_ns, id, index, entry.term, &entry.payload, &after);
            let r = self.running.as_mut().expect("running");
            if let Some((term, writes)) = r.pending_writes.remove(&index) {
                if term == entry.term {
                    for (w, result) in writes.iter().zip(&results) {
                        let outcome = outcome_of(&w.op, result)?;
                        self.reply(ctx, w, ClientReply::Done { outcome, index }, clients_base);
                    }
                } else {
                    // Another master's entry won this index: ours was never committed.
                    for w in &writes {
                        self.reply(ctx, w, ClientReply::NoLongerMaster, clients_base);
                    }
                }
            }
        }
        Ok(())
    }

    fn serve_reads(&mut self, ctx: &mut Ctx, clients_base: usize) {
        let Some(r) = self.running.as_mut() else {
            return;
        };
        let applied = r.storage.store.applied_index();
        let term = r.core.term();
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut r.pending_reads)
            .into_iter()
            .partition(|(read_index, _)| *read_index <= applied);
        r.pending_reads = waiting;
        for (_, request) in ready {
            match self.read_value(request.key) {
                Ok(v) => {
                    ctx.obs.consistent_read(ctx.now_ns, self.id, term);
                    let reply = ClientReply::Done {
                        outcome: Outcome::Value(v),
                        index: applied,
                    };
                    self.reply(ctx, &request, reply, clients_base);
                }
                Err(e) => ctx.obs.violation(ctx.now_ns, e),
            }
        }
    }
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
