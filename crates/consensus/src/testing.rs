//! A small in-memory harness: a log ([`MemLog`]) and a cluster of cores
//! joined by a message queue ([`Cluster`]), driven exactly as the crate doc's
//! caller loop prescribes. Used by this crate's tests; the simulator may reuse
//! [`MemLog`] or the loop in [`Cluster::process`] as a reference.
//!
//! Everything here panics on misuse: it is test code.

// Test support: a harness that panics on what a test must not see.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::config::Config;
use crate::core::{Core, ProposeError, Proposed, RoleChange};
use crate::log::{LogError, LogRead};
use crate::message::Message;
use crate::types::{Entry, HardState, NodeId, Role, Time};
use bytes::Bytes;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// An in-memory log with a base (snapshot) and a durable prefix.
#[derive(Clone, Debug, Default)]
pub struct MemLog {
    pub base_index: u64,
    pub base_term: u64,
    pub entries: Vec<Entry>,
    /// Entries up to here survive a crash.
    pub synced_index: u64,
}

impl MemLog {
    pub fn new() -> MemLog {
        MemLog::default()
    }

    /// Applies a `Ready`'s truncation and appends (buffered, not synced).
    pub fn apply(&mut self, truncate_after: Option<u64>, entries: &[Entry]) {
        if let Some(t) = truncate_after {
            assert!(t >= self.base_index, "truncation below the base");
            self.entries.truncate((t - self.base_index) as usize);
            self.synced_index = self.synced_index.min(t);
        }
        for e in entries {
            assert_eq!(e.index, self.last_index() + 1, "append leaves a gap");
            self.entries.push(e.clone());
        }
    }

    /// Marks everything durable; returns the `(index, term)` to report.
    pub fn sync(&mut self) -> (u64, u64) {
        self.synced_index = self.last_index();
        let last = self.last_index();
        (last, self.term(last).unwrap_or(0))
    }

    /// A crash: everything not synced is gone.
    pub fn crash(&mut self) {
        let keep = self.synced_index.saturating_sub(self.base_index) as usize;
        self.entries.truncate(keep);
    }

    /// Collapses every entry up to `index` into the base.
    pub fn compact(&mut self, index: u64) {
        assert!(index >= self.base_index && index <= self.last_index());
        let term = self.term(index).unwrap_or(0);
        let drop = (index - self.base_index) as usize;
        self.entries.drain(..drop);
        self.base_index = index;
        self.base_term = term;
    }

    /// Rebases on a snapshot at `(index, term)`, keeping the suffix only if
    /// this log holds `(index, term)`.
    pub fn install_snapshot(&mut self, index: u64, term: u64) {
        if index <= self.last_index() && index >= self.base_index && self.term(index) == Ok(term) {
            self.compact(index);
            self.synced_index = self.synced_index.min(self.last_index()).max(index);
        } else {
            self.entries.clear();
            self.base_index = index;
            self.base_term = term;
            self.synced_index = index;
        }
    }

    pub fn entry(&self, index: u64) -> Option<&Entry> {
        if index <= self.base_index {
            return None;
        }
        self.entries.get((index - self.base_index - 1) as usize)
    }
}

impl LogRead for MemLog {
    fn first_index(&self) -> u64 {
        self.base_index + 1
    }

    fn last_index(&self) -> u64 {
        self.base_index + self.entries.len() as u64
    }

    fn term(&self, index: u64) -> Result<u64, LogError> {
        if index < self.base_index {
            return Err(LogError::Compacted { index });
        }
        if index == self.base_index {
            return Ok(self.base_term);
        }
        self.entry(index)
            .map(|e| e.term)
            .ok_or(LogError::Unavailable { index })
    }

    fn entries(&self, from: u64, to: u64, max_bytes: u64) -> Result<Vec<Entry>, LogError> {
        if from <= self.base_index {
            return Err(LogError::Compacted { index: from });
        }
        if to > self.last_index() {
            return Err(LogError::Unavailable { index: to });
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        for i in from..=to {
            let Some(e) = self.entry(i) else { break };
            if !out.is_empty() && bytes + e.size_bytes() > max_bytes {
                break;
            }
            bytes += e.size_bytes();
            out.push(e.clone());
        }
        Ok(out)
    }
}

/// One node of the test cluster: the core and what its caller keeps.
#[derive(Debug)]
pub struct TestNode {
    pub core: Core,
    pub log: MemLog,
    pub hard_state: HardState,
    /// Entries applied to the "store", in order.
    pub applied: Vec<Entry>,
    pub applied_index: u64,
    /// Sync the log right after each `Ready` (otherwise call `Cluster::sync`).
    pub auto_sync: bool,
    /// This node's clock reads global time plus this offset ...
    pub clock_offset_ns: i64,
    /// ... and runs fast (positive) or slow (negative) by this many parts
    /// per million.
    pub clock_rate_ppm: i64,
    pub role_changes: Vec<RoleChange>,
    pub snapshot_requests: Vec<NodeId>,
    pub config: Config,
    pub up: bool,
    /// A process pause: until then the node neither ticks nor receives
    /// (messages to it are lost).
    pub paused_until: Option<Time>,
}

impl TestNode {
    /// Up and not paused at global time `now`.
    pub fn running(&self, now: Time) -> bool {
        self.up && self.paused_until.is_none_or(|t| now >= t)
    }

    pub fn local_time(&self, global: Time) -> Time {
        let drift = (i128::from(global.0) * i128::from(self.clock_rate_ppm) / 1_000_000) as i64;
        Time(
            global
                .0
                .saturating_add_signed(self.clock_offset_ns.saturating_add(drift)),
        )
    }
}

/// A cluster of cores joined by a FIFO queue of messages, with cuttable links
/// and one global clock (plus per-node offsets).
#[derive(Debug)]
pub struct Cluster {
    pub nodes: BTreeMap<NodeId, TestNode>,
    pub queue: VecDeque<Message>,
    pub now: Time,
    /// Directed links that drop messages.
    pub cut: BTreeSet<(NodeId, NodeId)>,
    /// Every message delivered, in order (for assertions).
    pub delivered: Vec<Message>,
    /// Every (term, master) observed taking office.
    pub masters: Vec<(u64, NodeId)>,
    /// Snapshots installed by `serve_snapshots`.
    pub snapshots_installed: u64,
}

/// Short default periods for tests: election 100–200 ms, heartbeat 10 ms,
/// lease 100 ms, drift margin 10 ms.
pub fn test_config(id: NodeId, voters: Vec<NodeId>, learners: Vec<NodeId>, seed: u64) -> Config {
    let mut c = Config::new(id, voters);
    c.learners = learners;
    c.election_timeout_min = Duration::from_millis(100);
    c.election_timeout_max = Duration::from_millis(200);
    c.heartbeat_interval = Duration::from_millis(10);
    c.lease_period = Duration::from_millis(100);
    c.max_clock_drift = Duration::from_millis(10);
    c.snapshot_timeout = Duration::from_millis(500);
    c.seed = seed;
    c
}

impl Cluster {
    /// Voters `1..=voters`, learners after them; `tweak` adjusts each config.
    pub fn new(voters: u64, learners: u64, tweak: impl Fn(&mut Config)) -> Cluster {
        let voter_ids: Vec<NodeId> = (1..=voters).map(NodeId).collect();
        let learner_ids: Vec<NodeId> = (voters + 1..=voters + learners).map(NodeId).collect();
        let mut nodes = BTreeMap::new();
        for id in voter_ids.iter().chain(&learner_ids) {
            let mut config = test_config(*id, voter_ids.clone(), learner_ids.clone(), 42);
            tweak(&mut config);
            let log = MemLog::new();
            let core = Core::new(config.clone(), HardState::default(), &log, 0, Time(0))
                .expect("valid config");
            nodes.insert(
                *id,
                TestNode {
                    core,
                    log,
                    hard_state: HardState::default(),
                    applied: Vec::new(),
                    applied_index: 0,
                    auto_sync: true,
                    clock_offset_ns: 0,
                    clock_rate_ppm: 0,
                    role_changes: Vec::new(),
                    snapshot_requests: Vec::new(),
                    config,
                    up: true,
                    paused_until: None,
                },
            );
        }
        Cluster {
            nodes,
            queue: VecDeque::new(),
            now: Time(0),
            cut: BTreeSet::new(),
            delivered: Vec::new(),
            masters: Vec::new(),
            snapshots_installed: 0,
        }
    }

    pub fn node(&self, id: u64) -> &TestNode {
        &self.nodes[&NodeId(id)]
    }

    pub fn node_mut(&mut self, id: u64) -> &mut TestNode {
        self.nodes.get_mut(&NodeId(id)).expect("node exists")
    }

    pub fn ids(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// The caller's loop for one node, as the crate doc prescribes:
    /// take the Ready; persist hard state; truncate and append; send; apply;
    /// then (auto_sync) fsync and report it, and loop while there is work.
    pub fn process(&mut self, id: NodeId) {
        for _ in 0..100 {
            let now = self.now;
            let node = self.nodes.get_mut(&id).expect("node exists");
            if !node.up {
                return;
            }
            let rd = node.core.take_ready(&node.log).expect("take_ready");
            if let Some(hs) = rd.hard_state {
                assert!(hs.term >= node.hard_state.term, "persisted term went back");
                node.hard_state = hs;
            }
            node.log.apply(rd.truncate_after, &rd.entries);
            assert!(
                rd.commit_index >= node.applied_index,
                "commit index went back"
            );
            for i in node.applied_index + 1..=rd.commit_index {
                if let Some(e) = node.log.entry(i) {
                    node.applied.push(e.clone());
                }
            }
            node.applied_index = rd.commit_index;
            for rc in &rd.role_changes {
                if rc.role == Role::Master {
                    self.masters.push((rc.term, id));
                }
            }
            node.role_changes.extend(rd.role_changes);
            node.snapshot_requests.extend(rd.snapshots_to_send);
            let mut more = false;
            if node.auto_sync && node.log.synced_index < node.log.last_index() {
                let (index, term) = node.log.sync();
                let local = node.local_time(now);
                node.core
                    .entries_synced(index, term, local, &node.log)
                    .expect("entries_synced");
                more = true;
            }
            for m in rd.messages {
                if !self.cut.contains(&(m.from, m.to)) {
                    self.queue.push_back(m);
                }
            }
            if !more {
                return;
            }
        }
        panic!("node {id} did not settle");
    }

    /// Syncs a node's log by hand (for nodes with `auto_sync` off).
    pub fn sync(&mut self, id: u64) {
        let now = self.now;
        let node = self.node_mut(id);
        let (index, term) = node.log.sync();
        let local = node.local_time(now);
        node.core
            .entries_synced(index, term, local, &node.log)
            .expect("entries_synced");
        self.process(NodeId(id));
    }

    /// Delivers one queued message. Returns false when the queue is empty.
    pub fn deliver_one(&mut self) -> bool {
        let Some(m) = self.queue.pop_front() else {
            return false;
        };
        let to = m.to;
        let now = self.now;
        let Some(node) = self.nodes.get_mut(&to) else {
            return true;
        };
        if !node.running(now) || self.cut.contains(&(m.from, m.to)) {
            return true;
        }
        let local = node.local_time(now);
        self.delivered.push(m.clone());
        node.core.step(m, local, &node.log).expect("step");
        self.process(to);
        true
    }

    /// Delivers until the queue is empty (at most `10_000` messages).
    pub fn deliver_all(&mut self) {
        for _ in 0..10_000 {
            if !self.deliver_one() {
                return;
            }
        }
        panic!("messages never stopped flowing");
    }

    /// Advances global time by `step` and ticks every node that is up.
    pub fn tick(&mut self, step: Duration) {
        self.advance(step);
        self.tick_nodes();
    }

    /// Advances global time only (no node notices until `tick_nodes`).
    pub fn advance(&mut self, step: Duration) {
        self.now = self.now.plus(step);
    }

    /// Ticks every running node at the current time.
    pub fn tick_nodes(&mut self) {
        for id in self.ids() {
            let now = self.now;
            let node = self.nodes.get_mut(&id).expect("node exists");
            if !node.running(now) {
                continue;
            }
            let local = node.local_time(now);
            node.core.tick(local, &node.log).expect("tick");
            self.process(id);
        }
    }

    /// Ticks in 1 ms steps, delivering everything after each, for `period`.
    pub fn run_for(&mut self, period: Duration) {
        let steps = period.as_millis() as u64;
        for _ in 0..steps {
            self.tick(Duration::from_millis(1));
            self.deliver_all();
        }
    }

    /// Runs (1 ms steps) until `done` holds, for at most `limit`. Returns
    /// whether it held.
    pub fn run_until(&mut self, limit: Duration, done: impl Fn(&Cluster) -> bool) -> bool {
        let steps = limit.as_millis() as u64;
        for _ in 0..steps {
            if done(self) {
                return true;
            }
            self.tick(Duration::from_millis(1));
            self.deliver_all();
        }
        done(self)
    }

    /// The nodes that believe they are master, with their terms.
    pub fn masters_now(&self) -> Vec<(NodeId, u64)> {
        self.nodes
            .iter()
            .filter(|(_, n)| n.up && n.core.role() == Role::Master)
            .map(|(id, n)| (*id, n.core.term()))
            .collect()
    }

    /// The master of the highest term, if any.
    pub fn master(&self) -> Option<NodeId> {
        self.masters_now()
            .into_iter()
            .max_by_key(|(_, t)| *t)
            .map(|(id, _)| id)
    }

    /// Runs until some node is master (at most 5 s). Panics otherwise.
    pub fn elect(&mut self) -> NodeId {
        assert!(
            self.run_until(Duration::from_secs(5), |c| c.master().is_some()),
            "no master elected"
        );
        self.master().expect("a master")
    }

    /// A client proposal to node `id`. A paused or crashed process takes
    /// none (it cannot read its socket): `NotMaster`, the core untouched.
    pub fn propose(&mut self, id: NodeId, payload: &[u8]) -> Result<Proposed, ProposeError> {
        let now = self.now;
        let node = self.nodes.get_mut(&id).expect("node exists");
        if !node.running(now) {
            return Err(ProposeError::NotMaster { master: None });
        }
        let local = node.local_time(now);
        let r = node
            .core
            .propose(Bytes::copy_from_slice(payload), local, &node.log);
        self.process(id);
        r
    }

    /// Pauses a node's process for `period` (as a stop-the-world GC or
    /// SIGSTOP would).
    pub fn pause(&mut self, id: u64, period: Duration) {
        let until = self.now.plus(period);
        self.node_mut(id).paused_until = Some(until);
    }

    /// Serves the snapshot requests of every node as its caller would: the
    /// requesting node's store (its applied entries) at its applied index is
    /// installed on the target, whose log is rebased on it, and the target's
    /// core is told. Requests to nodes that are down or cut off, or that
    /// would not move the target forward, are dropped.
    pub fn serve_snapshots(&mut self) {
        for from in self.ids() {
            let requests =
                std::mem::take(&mut self.nodes.get_mut(&from).expect("node").snapshot_requests);
            for to in requests {
                if !self.try_install_snapshot(from, to) {
                    let now = self.now;
                    let n = self.nodes.get_mut(&from).expect("node");
                    if n.running(now) {
                        let local = n.local_time(now);
                        n.core
                            .snapshot_failed(to, local, &n.log)
                            .expect("snapshot_failed");
                        self.process(from);
                    }
                }
            }
        }
    }

    fn try_install_snapshot(&mut self, from: NodeId, to: NodeId) -> bool {
        let now = self.now;
        let (index, term, store) = {
            let n = &self.nodes[&from];
            if !n.running(now) {
                return false;
            }
            let index = n.applied_index;
            let Ok(term) = n.log.term(index) else {
                return false;
            };
            (index, term, n.applied.clone())
        };
        if self.cut.contains(&(from, to)) {
            return false;
        }
        let Some(t) = self.nodes.get_mut(&to) else {
            return false;
        };
        if !t.running(now) || index <= t.core.commit_index() {
            return false;
        }
        t.log.install_snapshot(index, term);
        t.applied = store;
        t.applied_index = index;
        let local = t.local_time(now);
        t.core
            .snapshot_installed(index, term, local, &t.log)
            .expect("snapshot_installed");
        self.snapshots_installed += 1;
        self.process(to);
        true
    }

    /// Collapses a node's log up to its applied index (as a tlog collapse
    /// would), keeping the last `keep` applied entries.
    pub fn collapse(&mut self, id: u64, keep: u64) {
        let n = self.node_mut(id);
        let upto = n.applied_index.saturating_sub(keep).min(n.log.synced_index);
        if upto > n.log.base_index {
            n.log.compact(upto);
        }
    }

    /// Cuts both directions between `id` and every other node.
    pub fn isolate(&mut self, id: u64) {
        for other in self.ids() {
            if other != NodeId(id) {
                self.cut.insert((NodeId(id), other));
                self.cut.insert((other, NodeId(id)));
            }
        }
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Crashes a node: unsynced log entries and all in-memory state are lost.
    pub fn crash(&mut self, id: u64) {
        let node = self.node_mut(id);
        node.up = false;
        node.log.crash();
    }

    /// Restarts a crashed node from its persisted hard state and durable log.
    pub fn restart(&mut self, id: u64) {
        let now = self.now;
        let node = self.node_mut(id);
        let local = node.local_time(now);
        node.applied_index = node.applied_index.min(node.log.last_index());
        node.applied.truncate(node.applied_index as usize);
        node.core = Core::new(
            node.config.clone(),
            node.hard_state,
            &node.log,
            node.applied_index,
            local,
        )
        .expect("restart");
        node.up = true;
    }

    /// Crashes a node and loses its whole disk (log, store, hard state),
    /// then starts it empty with a new incarnation, as an operator who
    /// replaces a broken disk would.
    pub fn wipe(&mut self, id: u64) {
        let now = self.now;
        let node = self.node_mut(id);
        let incarnation = node.core.incarnation().wrapping_add(0x9E37_79B9).max(1);
        node.log = MemLog::new();
        node.applied.clear();
        node.applied_index = 0;
        node.hard_state = HardState::unknown(incarnation);
        node.snapshot_requests.clear();
        let local = node.local_time(now);
        node.core = Core::new(node.config.clone(), node.hard_state, &node.log, 0, local)
            .expect("restart empty");
        node.up = true;
    }

    /// State-machine safety (§3.6.3): every two nodes applied the same entry
    /// at every index both applied.
    pub fn assert_applied_agree(&self) {
        let nodes: Vec<&TestNode> = self.nodes.values().collect();
        for a in &nodes {
            for b in &nodes {
                for (x, y) in a.applied.iter().zip(&b.applied) {
                    assert_eq!(
                        x, y,
                        "two nodes applied different entries at index {}",
                        x.index
                    );
                }
            }
        }
    }

    /// Election safety (§3.6.3): at most one master per term, ever.
    pub fn assert_one_master_per_term(&self) {
        let mut seen: BTreeMap<u64, NodeId> = BTreeMap::new();
        for (term, id) in &self.masters {
            if let Some(other) = seen.insert(*term, *id) {
                assert_eq!(other, *id, "two masters in term {term}");
            }
        }
    }
}
