//! One simulated run: a cluster, a workload and a fault schedule, all from
//! one seed, then the checks.
//!
//! Phases:
//! 1. *Faults* (`fault_phase_ns`): clients run while nodes crash (losing
//!    unsynced writes, possibly tearing the last one) and restart, lose
//!    their whole disk and restart empty, pause, get partitioned (both ways
//!    or one way), and the network drops, duplicates and reorders messages.
//! 2. *Quiet*: everything heals. Liveness is required: every client finishes
//!    and all nodes converge within `quiet_limit_ns`.
//! 3. *Checks*: linearizability of the history (with a final read of every
//!    key from the converged stores), `AtLeast` reads, identical stores.

use crate::checker::{self, Op, Operation, Outcome, Verdict};
use crate::clock::NodeClock;
use crate::net::{NetFaults, Network};
use crate::node::{Ctx, SimMsg, SimNode};
use crate::observe::Observer;
use crate::rng::Rng;
use crate::workload::{Client, WorkloadConfig};
use consensus::{Config, NodeId, Role, Standing};
use std::time::Duration;

/// What can go wrong during the fault phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultConfig {
    /// Mean real time between two faults.
    pub mean_interval_ns: u64,
    pub crashes: bool,
    /// A node loses its whole disk and restarts empty (never more voters
    /// at once than can recover: `voters - quorum` not trusted).
    pub wipes: bool,
    /// A running node collapses its tlog (keeping a random few entries):
    /// a peer behind it then needs a store snapshot.
    pub collapses: bool,
    pub pauses: bool,
    /// A node's next fsync takes longer than a lease (a disk that hangs):
    /// its driver is blocked meanwhile, its readers are not.
    pub slow_disks: bool,
    /// A node's tlog device fills for a while (its writes fail with
    /// ENOSPC; the store's device keeps space): it must hold on, refuse
    /// updates and acknowledge nothing its disk did not take; once space
    /// is back it may also be restarted (an operator's reflex).
    pub disk_fulls: bool,
    pub partitions: bool,
    /// The network during the fault phase.
    pub net: NetFaults,
    /// Clock rate error bound, parts per million.
    pub max_drift_ppm: u64,
}

/// A whole run's shape.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub voters: usize,
    /// How many of the voters (the highest-numbered) are witnesses: they
    /// vote but must never become master.
    pub witnesses: usize,
    pub workload: WorkloadConfig,
    pub fault_phase_ns: u64,
    pub quiet_limit_ns: u64,
    pub faults: FaultConfig,
    pub tick_interval_ns: u64,
    /// Real-time bounds of one fsync.
    pub fsync_ns: (u64, u64),
    /// Consensus timing.
    pub election_timeout: (Duration, Duration),
    pub heartbeat_interval: Duration,
    pub lease_period: Duration,
    pub max_clock_drift: Duration,
    /// Explored-state budget per key for the linearizability checker.
    pub checker_budget: u64,
    #[cfg(feature = "broken")]
    pub broken: Option<consensus::Broken>,
    /// A deliberately broken replica layer.
    #[cfg(feature = "broken")]
    pub replica_broken: Option<replica::Broken>,
}

impl Scenario {
    /// The default scenario: 3 voters, 4 clients over 4 keys, every fault on.
    pub fn standard(voters: usize, ops_per_client: u64) -> Scenario {
        Scenario {
            voters,
            witnesses: 0,
            workload: WorkloadConfig {
                clients: 4,
                keys: 4,
                ops_per_client,
                timeout_ns: 400_000_000,
                think_max_ns: 60_000_000,
                at_least_per_million: 200_000,
            },
            fault_phase_ns: 3_000_000_000,
            quiet_limit_ns: 20_000_000_000,
            faults: FaultConfig {
                mean_interval_ns: 250_000_000,
                crashes: true,
                wipes: true,
                collapses: true,
                pauses: true,
                slow_disks: true,
                disk_fulls: true,
                partitions: true,
                net: NetFaults {
                    delay_min_ns: 50_000,
                    delay_max_ns: 8_000_000,
                    drop_per_million: 20_000,
                    duplicate_per_million: 20_000,
                },
                max_drift_ppm: 5_000,
            },
            tick_interval_ns: 10_000_000,
            fsync_ns: (100_000, 20_000_000),
            election_timeout: (Duration::from_millis(300), Duration::from_millis(600)),
            heartbeat_interval: Duration::from_millis(50),
            lease_period: Duration::from_millis(500),
            max_clock_drift: Duration::from_millis(50),
            checker_budget: 2_000_000,
            #[cfg(feature = "broken")]
            broken: None,
            #[cfg(feature = "broken")]
            replica_broken: None,
        }
    }
}

/// The outcome of one run.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub seed: u64,
    pub operations_checked: u64,
    pub faults_injected: u64,
    /// Of which: disks wiped.
    pub wipes_injected: u64,
    /// Of which: tlog collapses.
    pub collapses_injected: u64,
    /// Of which: full tlog devices.
    pub disk_fulls_injected: u64,
    /// Store snapshots installed.
    pub snapshots_installed: u64,
    pub entries_applied: u64,
    pub master_changes: u64,
    pub consistent_reads: u64,
    pub sim_time_ns: u64,
    pub violations: Vec<String>,
    /// The readable trace, when asked for.
    pub trace: Vec<String>,
}

/// What happens next, in priority order for ties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Next {
    Fault,
    /// Before `Restart`: a restart postponed until the disk has space
    /// again happens at the same instant.
    DiskSpace(usize),
    Restart(usize),
    Deliver,
    Fsync(usize),
    Wake(usize),
    Tick(usize),
    Client(usize),
    QuietCheck,
}

struct World {
    scenario: Scenario,
    rng: Rng,
    net: Network<SimMsg>,
    obs: Observer,
    nodes: Vec<SimNode>,
    clients: Vec<Client>,
    /// Crashed nodes come back at this real time.
    restart_at: Vec<Option<u64>>,
    next_fault_ns: u64,
    now_ns: u64,
    faults_injected: u64,
    wipes_injected: u64,
    collapses_injected: u64,
    disk_fulls_injected: u64,
    quiet: bool,
    /// When the quiet phase begins, then when to check for its end.
    next_quiet_check_ns: u64,
}

impl World {
    fn ctx(&mut self) -> (Ctx<'_>, &mut Vec<SimNode>) {
        let clients_base = self.scenario.voters;
        (
            Ctx {
                now_ns: self.now_ns,
                net: &mut self.net,
                obs: &mut self.obs,
                rng: &mut self.rng,
                fsync_ns: self.scenario.fsync_ns,
                clients_base,
            },
            &mut self.nodes,
        )
    }

    fn schedule_next_fault(&mut self) {
        let mean = self.scenario.faults.mean_interval_ns;
        self.next_fault_ns = self.now_ns + self.rng.between(mean / 4, mean * 7 / 4);
    }

    fn next_event(&self) -> (u64, Next) {
        let mut best = (u64::MAX, Next::QuietCheck);
        let mut consider = |t: u64, n: Next| {
            if (t, n) < best {
                best = (t, n);
            }
        };
        if !self.quiet {
            consider(self.next_fault_ns, Next::Fault);
        }
        consider(self.next_quiet_check_ns, Next::QuietCheck);
        for (i, r) in self.restart_at.iter().enumerate() {
            if let Some(t) = r {
                consider(*t, Next::Restart(i));
            }
        }
        for n in &self.nodes {
            if let Some(t) = n.disk_full_until_ns {
                consider(t, Next::DiskSpace(n.id));
            }
        }
        if let Some(t) = self.net.next_delivery_ns() {
            consider(t, Next::Deliver);
        }
        for n in &self.nodes {
            if !n.is_running() {
                continue;
            }
            let wake = n.paused_until_ns;
            if let Some(t) = n.fsync_due_ns() {
                consider(t.max(wake), Next::Fsync(n.id));
            }
            // The driver's own wake-ups wait while it is blocked in an fsync.
            let busy = n.driver_busy_until_ns(self.now_ns).unwrap_or(0);
            if let Some(t) = n.wake_due_ns() {
                consider(t.max(busy).max(self.now_ns), Next::Wake(n.id));
            }
            consider(n.next_tick_ns.max(wake), Next::Tick(n.id));
        }
        for c in &self.clients {
            if let Some(t) = c.next_wakeup_ns() {
                consider(t, Next::Client(c.id));
            }
        }
        best
    }

    fn inject_fault(&mut self) {
        self.schedule_next_fault();
        let f = self.scenario.faults;
        let n = self.nodes.len();
        let down = self.restart_at.iter().filter(|r| r.is_some()).count();
        let now = self.now_ns;
        let all: Vec<usize> = (0..n).collect();
        match self.rng.below(10) {
            // At most a minority down at once (one node for a 1-node cluster).
            0 | 1 if f.crashes && down < (n.saturating_sub(1) / 2).max(1) => {
                let victim = self.rng.below(n as u64) as usize;
                if self.restart_at[victim].is_some() {
                    return;
                }
                self.faults_injected += 1;
                let (mut ctx, nodes) = self.ctx();
                nodes[victim].crash(&mut ctx);
                let back = now + self.rng.between(50_000_000, 800_000_000);
                self.restart_at[victim] = Some(back);
            }
            // A lost disk: only while every voter can still recover (at
            // most `voters - quorum` of them not trusted; none in a
            // one-node cluster, whose only copy it would be).
            5 if f.wipes && down < n.saturating_sub(1) / 2 => {
                let victim = self.rng.below(n as u64) as usize;
                let quorum = n / 2 + 1;
                let untrusted = self
                    .nodes
                    .iter()
                    .filter(|node| node.id == victim || node.standing != Standing::Trusted)
                    .count();
                if self.restart_at[victim].is_some() || untrusted > n - quorum {
                    return;
                }
                self.faults_injected += 1;
                self.wipes_injected += 1;
                let (mut ctx, nodes) = self.ctx();
                nodes[victim].wipe(&mut ctx);
                let back = now + self.rng.between(50_000_000, 800_000_000);
                self.restart_at[victim] = Some(back);
            }
            7 if f.collapses => {
                let victim = self.rng.below(n as u64) as usize;
                // A few segments (of 8 entries) kept: peers a little behind
                // still catch up from the tlog, others need a snapshot.
                let keep = 1 + self.rng.below(2);
                if self.nodes[victim].driver_busy_until_ns(now).is_some() {
                    return;
                }
                self.faults_injected += 1;
                self.collapses_injected += 1;
                let (mut ctx, nodes) = self.ctx();
                nodes[victim].collapse(&mut ctx, keep);
            }
            6 if f.slow_disks => {
                // A master's disk, if there is one: its lease is at stake.
                let masters: Vec<usize> = (0..n)
                    .filter(|&i| self.nodes[i].role() == Some(Role::Master))
                    .collect();
                let victim = match masters.as_slice() {
                    [] => self.rng.below(n as u64) as usize,
                    m => m[self.rng.below(m.len() as u64) as usize],
                };
                let lease = duration_ns(self.scenario.lease_period);
                let took = self.rng.between(lease, 3 * lease);
                self.faults_injected += 1;
                self.nodes[victim].slow_fsync_ns = Some(took);
                self.obs.trace(now, || {
                    format!(
                        "node {victim}: SLOW DISK: its next fsync takes {:.3} ms",
                        took as f64 / 1e6
                    )
                });
            }
            8 if f.disk_fulls => {
                // A master's tlog device half of the time: its updates
                // stop, its reads go on.
                let masters: Vec<usize> = (0..n)
                    .filter(|&i| self.nodes[i].role() == Some(Role::Master))
                    .collect();
                let victim = match masters.as_slice() {
                    [m, ..] if self.rng.below(2) == 0 => *m,
                    _ => self.rng.below(n as u64) as usize,
                };
                if self.nodes[victim].disk_full_until_ns.is_some() {
                    return;
                }
                let lease = duration_ns(self.scenario.lease_period);
                let until = now + self.rng.between(lease / 2, 4 * lease);
                self.faults_injected += 1;
                self.disk_fulls_injected += 1;
                self.nodes[victim].fill_tlog_device(until);
                self.obs.trace(now, || {
                    format!(
                        "node {victim}: DISK FULL (tlog device) until {:.3} ms",
                        until as f64 / 1e6
                    )
                });
            }
            2 if f.pauses => {
                let victim = self.rng.below(n as u64) as usize;
                let until = now + self.rng.between(50_000_000, 1_500_000_000);
                self.faults_injected += 1;
                self.nodes[victim].paused_until_ns = self.nodes[victim].paused_until_ns.max(until);
                self.obs.trace(now, || {
                    format!("node {victim}: PAUSE until {:.3} ms", until as f64 / 1e6)
                });
            }
            3 if f.partitions => {
                let victim = self.rng.below(n as u64) as usize;
                self.faults_injected += 1;
                self.net.isolate(&[victim], &all);
                self.obs
                    .trace(now, || format!("PARTITION: node {victim} isolated"));
            }
            4 if f.partitions => {
                let a = self.rng.below(n as u64) as usize;
                let b = self.rng.below(n as u64) as usize;
                if a != b {
                    self.faults_injected += 1;
                    self.net.cut_one_way(a, b);
                    self.obs
                        .trace(now, || format!("PARTITION: one way {a} -> {b}"));
                }
            }
            _ => {
                if self.net.is_partitioned() {
                    self.net.heal();
                    self.obs.trace(now, || "HEAL".to_string());
                }
            }
        }
    }

    /// A full tlog device has space again; a third of the time the node is
    /// also restarted (crashed now, back soon), when a minority is down.
    fn disk_space_back(&mut self, i: usize) {
        let now = self.now_ns;
        self.nodes[i].free_tlog_device();
        self.obs.trace(now, || format!("node {i}: DISK SPACE back"));
        let n = self.nodes.len();
        let down = self.restart_at.iter().filter(|r| r.is_some()).count();
        if !self.quiet
            && self.nodes[i].is_running()
            && down < (n.saturating_sub(1) / 2).max(1)
            && self.rng.below(3) == 0
        {
            let (mut ctx, nodes) = self.ctx();
            nodes[i].crash(&mut ctx);
            self.restart_at[i] = Some(now + self.rng.between(50_000_000, 400_000_000));
        }
    }

    fn begin_quiet(&mut self) {
        self.quiet = true;
        self.net.heal();
        self.net.set_faults(NetFaults::quiet());
        for n in &mut self.nodes {
            n.paused_until_ns = n.paused_until_ns.min(self.now_ns);
            if n.disk_full_until_ns.is_some() {
                n.disk_full_until_ns = Some(self.now_ns);
            }
        }
        for r in &mut self.restart_at {
            if r.is_some() {
                *r = Some(self.now_ns);
            }
        }
        self.obs
            .trace(self.now_ns, || "QUIET: all faults healed".to_string());
    }

    /// In the quiet phase: done when every client finished and every node
    /// runs, is idle, and has applied the same index as the master.
    fn converged(&self) -> bool {
        if !self.clients.iter().all(Client::finished) {
            return false;
        }
        let masters = self
            .nodes
            .iter()
            .filter(|n| n.role() == Some(Role::Master))
            .count();
        if masters != 1 {
            return false;
        }
        let Some(commit) = self.nodes.iter().filter_map(SimNode::commit_index).max() else {
            return false;
        };
        // Every node votes and counts again: a wiped one has recovered.
        self.nodes.iter().all(|n| {
            n.is_running()
                && n.standing == Standing::Trusted
                && n.applied_index() == Some(commit)
                && !n.has_pending_client_work()
        })
    }

    fn deliver(&mut self) {
        let Some((from, to, msg)) = self.net.deliver(self.now_ns) else {
            return;
        };
        let nodes = self.nodes.len();
        if to < nodes && self.nodes[to].is_paused(self.now_ns) {
            // A stopped process: the kernel holds the bytes until it resumes.
            let until = self.nodes[to].paused_until_ns;
            self.net.send_at(until, from, to, msg);
            return;
        }
        if let (true, SimMsg::Peer(_)) = (to < nodes, &msg) {
            if let Some(until) = self.nodes[to].driver_busy_until_ns(self.now_ns) {
                // The driver is blocked in an fsync: the message waits in
                // its queue (clients' requests reach the connections).
                self.net.send_at(until, from, to, msg);
                return;
            }
        }
        match msg {
            SimMsg::Peer(bytes) => {
                let (mut ctx, ns) = self.ctx();
                ns[to].on_peer(&mut ctx, &bytes);
            }
            SimMsg::Request(request) => {
                let (mut ctx, ns) = self.ctx();
                ns[to].on_request(&mut ctx, request);
            }
            SimMsg::Reply { request_id, reply } => {
                let client = to - nodes;
                let now = self.now_ns;
                let resend = self.clients[client].on_reply(
                    now,
                    request_id,
                    reply,
                    &mut self.obs.history,
                    &mut self.obs.at_least_reads,
                );
                if let Some((node, request)) = resend {
                    self.net.send_once(now, to, node, SimMsg::Request(request));
                }
            }
        }
    }
}

fn node_config(scenario: &Scenario, id: usize, seed: u64) -> Config {
    let voters: Vec<NodeId> = (0..scenario.voters as u64).map(NodeId).collect();
    assert!(
        scenario.witnesses < scenario.voters,
        "a witness-only cluster"
    );
    let witnesses = voters[scenario.voters - scenario.witnesses..].to_vec();
    let mut c = Config::new(NodeId(id as u64), voters);
    c.witnesses = witnesses;
    c.election_timeout_min = scenario.election_timeout.0;
    c.election_timeout_max = scenario.election_timeout.1;
    c.heartbeat_interval = scenario.heartbeat_interval;
    c.lease_period = scenario.lease_period;
    c.max_clock_drift = scenario.max_clock_drift;
    c.seed = seed;
    #[cfg(feature = "broken")]
    {
        c.broken = scenario.broken;
    }
    c
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn node_settings(_scenario: &Scenario) -> replica::Settings {
    #[allow(unused_mut)]
    let mut settings = crate::node::replica_settings();
    #[cfg(feature = "broken")]
    {
        settings.broken = _scenario.replica_broken;
    }
    settings
}

/// Runs one seed of `scenario`.
pub fn run(seed: u64, scenario: &Scenario, with_trace: bool) -> Report {
    let mut rng = Rng::new(seed);
    let net = Network::new(rng.fork(), scenario.faults.net);
    let drift = scenario.faults.max_drift_ppm;
    let nodes: Vec<SimNode> = (0..scenario.voters)
        .map(|i| {
            let clock = NodeClock {
                origin_ns: rng.below(1_000_000_000_000),
                drift_ppm: rng.between(0, 2 * drift) as i64 - drift as i64,
            };
            SimNode::new(
                i,
                clock,
                node_config(scenario, i, seed),
                node_settings(scenario),
            )
        })
        .collect();
    let clients = (0..scenario.workload.clients)
        .map(|i| Client::new(i, rng.fork(), scenario.workload, scenario.voters))
        .collect();
    let mut world = World {
        scenario: scenario.clone(),
        rng,
        net,
        obs: Observer::new(with_trace)
            .with_witnesses((scenario.voters - scenario.witnesses..scenario.voters).collect()),
        nodes,
        clients,
        restart_at: vec![None; scenario.voters],
        next_fault_ns: 0,
        now_ns: 0,
        faults_injected: 0,
        wipes_injected: 0,
        collapses_injected: 0,
        disk_fulls_injected: 0,
        quiet: false,
        next_quiet_check_ns: scenario.fault_phase_ns,
    };
    world.schedule_next_fault();
    for i in 0..scenario.voters {
        let (mut ctx, nodes) = world.ctx();
        nodes[i].start(&mut ctx);
    }
    let deadline = scenario.fault_phase_ns + scenario.quiet_limit_ns;
    loop {
        let (t, next) = world.next_event();
        assert!(
            t >= world.now_ns,
            "time went backwards: {next:?} at {t} < {}",
            world.now_ns
        );
        world.now_ns = t;
        if t > deadline {
            let unfinished = world.clients.iter().filter(|c| !c.finished()).count();
            let roles: Vec<String> = world
                .nodes
                .iter()
                .map(|n| {
                    format!(
                        "node {}: {:?} {} commit {:?} applied {:?} busy {}",
                        n.id,
                        n.role(),
                        n.standing,
                        n.commit_index(),
                        n.applied_index(),
                        n.has_pending_client_work()
                    )
                })
                .collect();
            world.obs.violation(
                t,
                format!(
                    "liveness: not converged {:.1} s after the faults healed \
                     ({unfinished} clients unfinished; {})",
                    scenario.quiet_limit_ns as f64 / 1e9,
                    roles.join("; ")
                ),
            );
            break;
        }
        if !world.obs.violations.is_empty() && !with_trace {
            break; // the first violation fails the seed; replay with a trace to see it
        }
        match next {
            Next::Fault => world.inject_fault(),
            Next::QuietCheck => {
                // In the quiet phase, look for convergence every simulated 50 ms.
                world.next_quiet_check_ns = world.now_ns + 50_000_000;
                if !world.quiet {
                    world.begin_quiet();
                } else if world.converged() {
                    break;
                }
            }
            Next::Restart(i) => {
                if let Some(until) = world.nodes[i].disk_full_until_ns {
                    // The operator frees space before starting it again.
                    world.restart_at[i] = Some(until);
                    continue;
                }
                world.restart_at[i] = None;
                let (mut ctx, nodes) = world.ctx();
                nodes[i].start(&mut ctx);
            }
            Next::DiskSpace(i) => world.disk_space_back(i),
            Next::Deliver => world.deliver(),
            Next::Fsync(i) => {
                let (mut ctx, nodes) = world.ctx();
                nodes[i].on_fsync_done(&mut ctx);
            }
            Next::Wake(i) => {
                let (mut ctx, nodes) = world.ctx();
                nodes[i].wake(&mut ctx);
            }
            Next::Tick(i) => {
                let tick = world.scenario.tick_interval_ns;
                let (mut ctx, nodes) = world.ctx();
                nodes[i].tick(&mut ctx, tick);
            }
            Next::Client(c) => {
                let now = world.now_ns;
                if let Some((node, request)) = world.clients[c].wake(now, &mut world.obs.history) {
                    let from = world.scenario.voters + c;
                    world
                        .net
                        .send_once(now, from, node, SimMsg::Request(request));
                }
            }
        }
    }
    finish(world, seed)
}

fn finish(mut world: World, seed: u64) -> Report {
    let now = world.now_ns;
    if world.obs.violations.is_empty() {
        // Every store holds the same content (they are at the same index).
        let contents: Vec<_> = world.nodes.iter().map(SimNode::store_content).collect();
        for (i, c) in contents.iter().enumerate() {
            match (c, &contents[0]) {
                (Some(Ok(a)), Some(Ok(b))) if a == b => {}
                _ => world.obs.violation(
                    now,
                    format!("store of node {i} differs from node 0's after convergence"),
                ),
            }
        }
        // A final read of every key, after everything: no acknowledged write is lost.
        if let Some(Some(Ok(content))) = contents.first() {
            let end = now + 1;
            for key in 0..world.scenario.workload.keys {
                let k = crate::node::key_bytes(key);
                let value = content
                    .iter()
                    .find(|(kk, _)| *kk == k)
                    .and_then(|(_, v)| v.as_slice().try_into().ok().map(u64::from_le_bytes));
                world.obs.history.push(Operation {
                    client: usize::MAX,
                    key,
                    op: Op::Get,
                    call_ns: end,
                    return_ns: Some(end),
                    outcome: Outcome::Value(value),
                });
            }
        }
        world.obs.check_at_least_reads(now);
        match checker::check(&world.obs.history, world.scenario.checker_budget) {
            Verdict::Linearizable => {}
            v => world.obs.violation(now, v.to_string()),
        }
    }
    Report {
        seed,
        operations_checked: world.obs.history.len() as u64 + world.obs.at_least_reads.len() as u64,
        faults_injected: world.faults_injected,
        wipes_injected: world.wipes_injected,
        collapses_injected: world.collapses_injected,
        disk_fulls_injected: world.disk_fulls_injected,
        snapshots_installed: world.obs.snapshots_installed,
        entries_applied: world.obs.entries_applied,
        master_changes: world.obs.master_changes,
        consistent_reads: world.obs.consistent_reads_served,
        sim_time_ns: now,
        violations: world.obs.violations,
        trace: world.obs.trace.unwrap_or_default(),
    }
}
