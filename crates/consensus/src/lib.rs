//! `consensus`: the replication core of arakoon-rs. Multi-Paxos with a stable
//! master, in Raft's formulation (Ongaro's dissertation, "Consensus: Bridging
//! Theory and Practice", is the normative reference; sections cited as §),
//! with Arakoon's words: `n` = term, `i` = log index, master, slave, learner,
//! lease.
//!
//! # What it is, what it never does
//!
//! A pure, deterministic state machine ([`Core`]), shaped like etcd-io/raft:
//! inputs go in, a [`Ready`] comes out. It does no IO, reads no clock (the
//! caller passes a monotonic local [`Time`] to every input), starts no
//! thread, and draws randomness only from a SplitMix64 seeded by
//! [`Config::seed`] and the node id. Same inputs, same outputs, byte for byte.
//! It does not hold the log: the caller's tlog is read through [`LogRead`].
//!
//! # Inputs
//!
//! - [`Core::step`]: a message received from another node.
//! - [`Core::tick`]: time passed (election timeout, heartbeats, check-quorum,
//!   hand-over timeouts). Tick at least every `heartbeat_interval / 2`.
//! - [`Core::propose`]: on the master, ONE entry with the caller's payload
//!   (its batch of client updates). Everything proposed since the last
//!   `Ready` goes to each slave in as few append messages as
//!   `max_append_bytes` and flow control allow.
//! - [`Core::entries_synced`]: the local log is durable up to `(i, n)`.
//! - [`Core::snapshot_installed`]: a store snapshot was installed at `(i, n)`;
//!   [`Core::snapshot_failed`]: on the master, a snapshot transfer failed.
//! - [`Core::hand_over_to`] / [`Core::drop_master`]: hand mastership to a
//!   voter (`--drop-master`): the lease is forfeited and proposals refused at
//!   once, `TimeoutNow` goes when the target has caught up, and the master
//!   steps down if the target has not taken over within
//!   `election_timeout_max`.
//!
//! Queries: [`Core::consistent_read_index`] (lease reads), [`Core::role`],
//! [`Core::master`], [`Core::term`], [`Core::commit_index`],
//! [`Core::hard_state`], [`Core::status`], [`Core::peer_progress`],
//! [`Core::standing`], [`Core::incarnation`].
//!
//! Messages from peers are validated first: wrong recipient, unknown sender,
//! a learner sending what only voters send, a term above [`MAX_TERM`],
//! entries out of order, acknowledgements or rejections past the master's
//! log are refused with a typed [`StepError`], never a panic
//! (`tests/hostile.rs` feeds arbitrary messages to check it).
//!
//! # The caller's loop
//!
//! After every input (or a batch of inputs), the caller does, in this order:
//!
//! 1. `let rd = core.take_ready(&log)?;`
//! 2. If `rd.hard_state` is set, write it and **fsync it** before step 4.
//!    (There is no "hard state persisted" event: this ordering is the
//!    contract. A vote or a term change reaches no one before it is durable.)
//! 3. Truncate the log after `rd.truncate_after` (if set), then append
//!    `rd.entries` to it. Buffered is fine, but it must be done before the
//!    next call into the core (the core checks `log.last_index()`). Start an
//!    fsync of the log (now or batched with later appends); when an fsync
//!    completes, call `core.entries_synced(i, n, now, &log)` with the last
//!    entry it covered, then go to 1.
//! 4. Send `rd.messages` (after step 2's fsync; the entries of step 3 need
//!    not be durable yet: a slave's acknowledgement is only emitted by the
//!    core after *its* fsync event, and the master counts itself only after
//!    its own).
//! 5. For each node in `rd.snapshots_to_send`, stream a store snapshot to it
//!    (the receiving caller installs it, rebases its log, and calls
//!    `snapshot_installed` right after a `take_ready`). If the transfer
//!    fails, call `core.snapshot_failed(node, now, &log)` on the master: it
//!    probes again at once (otherwise after `snapshot_timeout`).
//! 6. Apply every entry from the store's applied index + 1 up to
//!    `rd.commit_index`, in order, reading them from the log. Entries with an
//!    empty payload are the master's barriers: apply nothing, but advance the
//!    applied index. Answer a client whose proposal returned
//!    `Proposed { index, term }` when that index is applied: success if the
//!    applied entry has that term, lost otherwise.
//! 7. Log one line per `rd.role_changes` item (term `n`, master, index `i`).
//!
//! A one-node cluster, driven to a committed proposal (`MemLog` is the
//! in-memory log of [`testing`]; a node uses its tlog):
//!
//! ```
//! use consensus::testing::MemLog;
//! use consensus::{Config, Core, HardState, NodeId, Role, Time};
//! use std::time::Duration;
//!
//! let me = NodeId(1);
//! let mut log = MemLog::new();
//! let mut hard_state = HardState::default();
//! let mut applied_index = 0;
//! let mut core = Core::new(Config::new(me, vec![me]), hard_state, &log, applied_index, Time(0))?;
//! let mut now = Time(0);
//! let mut proposal = None;
//! for _ in 0..1000 {
//!     now = now.plus(Duration::from_millis(10));
//!     core.tick(now, &log)?;
//!     if core.role() == Role::Master && proposal.is_none() {
//!         proposal = Some(core.propose(bytes::Bytes::from_static(b"batch"), now, &log)?);
//!     }
//!     let rd = core.take_ready(&log)?;                   // 1
//!     if let Some(hs) = rd.hard_state {
//!         hard_state = hs;                                // 2 (write + fsync)
//!     }
//!     log.apply(rd.truncate_after, &rd.entries);         // 3 (buffered)
//!     assert!(rd.messages.is_empty());                   // 4 (one node: nobody to send to)
//!     applied_index = rd.commit_index;                   // 6 (apply entries up to here)
//!     let (i, n) = log.sync();                           // 3 (the fsync completes)
//!     core.entries_synced(i, n, now, &log)?;
//!     if proposal.is_some_and(|p| applied_index >= p.index) {
//!         break;
//!     }
//! }
//! let p = proposal.expect("became master");
//! assert!(applied_index >= p.index);
//! assert_eq!(hard_state.term, core.term());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! On restart: `Core::new(config, persisted_hard_state, &recovered_log,
//! store_applied_index, now)`; the recovered log must hold only durable
//! entries. A restarted node will not vote for another node or campaign for
//! `lease_period` (it may have granted a lease just before stopping), unless
//! it is trusted with a persisted term of 0: it never acknowledged or voted
//! for anyone. When *nothing* can be read (an empty home, a damaged hard
//! state), pass [`HardState::unknown`] with a fresh random incarnation: the
//! node then finds out whether it is new or lost its disk (below). The
//! hard state of every `Ready` includes the incarnation and the standing;
//! persist them with the term and vote.
//!
//! The recovered log must be durable: fsync it at startup (a process crash
//! leaves written but unsynced entries in the page cache, and the core
//! counts everything in the recovered log as synced).
//!
//! `Err` from an input means the input was refused (see [`StepError`];
//! `StepError::Log`: the storage failed, stop the node). Messages
//! from the network that are malformed or violate the protocol are refused
//! this way; the core never panics on them. Violations of the caller's
//! contract (time going back, log out of step) are refused the same way.
//!
//! # The rules (and where the code enforces them)
//!
//! - **Election** (§3.4): randomized timeouts in `[election_timeout_min,
//!   election_timeout_max)`; **pre-vote** first (§9.6): a node asks whether
//!   it could win before raising its term, and voters refuse while they heard
//!   from a master within `election_timeout_min` or a lease they granted may
//!   run; so a node that was partitioned away does not disturb a healthy
//!   master when it comes back. A vote goes only to a candidate whose log is
//!   at least as up to date (§3.6.1: last term, then last index), once per
//!   term, persisted (hard state) before the response leaves.
//! - **Replication** (§3.5): appends carry `(prev_index, prev_term)`; a slave
//!   accepts only if its log has that entry (log matching), truncates a
//!   conflicting suffix (never at or below its commit index), appends, and
//!   acknowledges only entries both verified against this term's master and
//!   fsynced. Pipelined: up to `max_inflight_appends` appends in flight per
//!   slave (Replicate state); after a rejection the master probes one append
//!   at a time (Probe state), skipping a whole term per round trip with the
//!   slave's hint. Batched: each append carries up to `max_append_bytes`.
//! - **Commit** (§3.6.2): the highest index a quorum of voters holds
//!   durably (the master counting its own fsynced index), and only if that
//!   entry is of the current term; earlier entries commit with it. A new
//!   master appends an empty barrier entry of its term at once. The commit
//!   index rides on the next append or heartbeat (a heartbeat goes at once
//!   to slaves that got no append when the commit index moved).
//! - **Learners** get the log, never vote, never campaign, never count.
//! - **Recovery** (a node that lost its disk, see below): it votes and
//!   counts only once it has caught up; the master resets its progress when
//!   it comes back with a new incarnation.
//! - **Check-quorum** (§6.2): a master whose lease has lapsed (see below)
//!   steps down, after a grace of `lease_period` from taking office.
//! - **Preferred masters**: a master that has committed an entry of its term
//!   hands mastership (TimeoutNow, §3.10) to the first node in
//!   `preferred_masters` ranked above itself that is responsive and has
//!   every committed entry (it then catches up the rest while proposals
//!   wait). **Forced master**: only that node campaigns, and voters vote
//!   only for it.
//! - **Quorum**: a majority of voters, or `Config::quorum` (dangerous below a
//!   majority: two quorums may then not intersect, so neither election
//!   safety nor the lease argument hold).
//!
//! # The master lease, and why two leases never overlap
//!
//! The master stamps every append and heartbeat with its local send time
//! `s`; a slave echoes the latest `s` in its responses. Master M *holds the
//! lease* at local time `t` iff it is master, has not begun a hand-over in
//! this term, has committed an entry of its term, and a quorum of voters
//! (M counting itself at `t`) echoed some `s` with `t < s + lease_period -
//! max_clock_drift`. Then `consistent_read_index(t)` returns M's commit index.
//!
//! A node that sends a response carrying `s` at its local time `a` (the time
//! of the step that produced it, which is after it received the message sent
//! at `s`) sets a *lease guard* until `a + lease_period`: until then it
//! ignores vote requests from other nodes (without raising its term), refuses
//! pre-votes, and does not campaign. A master that steps down guards itself
//! from the moment it stops; a node that (re)starts guards from its start
//! (unless its persisted term is 0: it never answered any master).
//! The only exception is a vote request flagged `transfer`, sent by a node
//! the master handed mastership to; that master forfeited its lease for the
//! rest of its term before sending `TimeoutNow`.
//!
//! *Clock assumption:* clocks may run at different rates but, for every node
//! and every local interval of length `d <= lease_period`, the real time
//! elapsed differs from `d` by at most `max_clock_drift / 2`.
//!
//! *Claim:* at no real instant do two nodes hold the lease. Say M, master of
//! term `n`, holds it at real time `T` on the acknowledgements of quorum Q.
//!
//! 1. *Every q in Q refuses to help elect another node at `T`.* For q with
//!    echoed send time `s` (real `S`) and guard start `a` (real `A >= S`):
//!    M's local time since `s` is below `lease_period - max_clock_drift`, so
//!    `T < S + lease_period - max_clock_drift / 2`; q's guard lasts a local
//!    `lease_period`, i.e. until real `>= A + lease_period - max_clock_drift /
//!    2 > T`. M itself, in Q, ignores vote requests while master and guards
//!    from the moment it steps down. A restart starts a fresh guard (a node
//!    restarting at term 0 acknowledged nothing, so it is in no Q).
//! 2. *No node became master of a term above `n` before `T`.* Otherwise let
//!    M' be the first (in real time) to do so, at `V < T`, in term `n'`. Its
//!    electing quorum meets Q in some q. All of q's acknowledgements counted
//!    by M are of term `n`, so they precede q's vote for M' (a node never
//!    answers a master of a lower term), and that vote fell inside q's guard
//!    (by 1, the guard runs past `T > V`). Inside the guard q grants no vote
//!    (in any term) and does not campaign, except for a `transfer` vote. A
//!    transfer vote for `n'` is asked only by a node that got `TimeoutNow` from
//!    the master of `n' - 1`; by the choice of M' that master is M itself, and
//!    M forfeited its lease for term `n` before sending it: it does not hold
//!    the lease at `T`. Contradiction.
//! 3. Another lease holder M'' at `T` is master of some term `n''`: not `n`
//!    (election safety, §3.6.3: one master per term), not above `n` (by 2), and
//!    not below `n`: by 2 applied to M'', M would not be master of `n` then.
//!
//! Quorums must intersect for 2, hence the warning on `Config::quorum`.
//!
//! # Recovery: a node that lost its disk
//!
//! Every argument above, and Raft's own, assumes a voter never forgets what
//! it promised: its vote in a term, the entries it acknowledged, the lease
//! it granted. A node whose disk was wiped (or whose hard state cannot be
//! read, or whose store was injected from elsewhere) has forgotten, and if
//! it voted at once it could elect a master that lacks acknowledged writes:
//! with A master and C behind, writes committed by A and B, B wiped and
//! restarted, A dead, B would vote for C. So a node's [`HardState`] carries
//! a [`Standing`] and an *incarnation* (random, chosen when nothing was
//! persisted), and a node that is not `Trusted` neither votes (nor grants
//! pre-votes), nor campaigns, nor counts toward a commit or a lease, until
//! it has earned its vote back. This follows Alagappan et al.,
//! "Protocol-Aware Recovery for Consensus-Based Storage" (FAST 2018): the
//! node recovers what it lost from the others, using what the protocol
//! knows about who must hold what, instead of being trusted or removed.
//!
//! *New cluster or lost disk?* A node with nothing persisted is `Unknown`
//! (with a non-empty log or store it is `Recovering` at once). It asks every
//! other voter ([`Body::RecoveryQuery`]) for its term, standing and last
//! index. If any has a log or is recovering, the cluster has a history:
//! `Recovering`. If *every* other voter answers with an empty log at term 0,
//! nobody ever campaigned, so this node never promised anything: `Trusted`,
//! at once (a brand-new cluster elects without delay). If every one answers
//! with an empty log but some term is above 0, it decides `Trusted` only on
//! answers asked after the recovery wait (below): elections were tried, none
//! was won (a winner appends its barrier at once), and none it may have
//! voted in can still be won. Why asking *every* voter is right: a promise
//! this node made went to a candidate or master of some term `t >= 1`, which
//! made `t` durable before asking, and so answers with a term above 0 (or a
//! log) unless it lost its own disk too, in which case the election or
//! mastership that used the promise is gone with it. A cluster of nodes that
//! were all wiped is a new cluster; its data is gone either way.
//!
//! *What a recovering node must learn* (`v` voters, quorum `q`): (a) a term
//! `T_S` at least as high as every term its earlier incarnation voted or
//! acknowledged in; (b) every entry committed with its help. It waits the
//! *recovery wait* ([`Config::recovery_wait`]: the longer of
//! `election_timeout_max` and `lease_period`, stretched by the clock-rate
//! bound of the lease argument) from its start, then asks again and needs
//! answers, to questions asked after the wait, from `v - q + 1` other voters
//! that are `Trusted` ([`Config::recovery_answers_needed`]); `T_S` is the
//! highest term among them. Its vote in `T_S` counts as spent (`voted_for`
//! is set to itself), and it never votes in lower terms. Then it follows a
//! master of term `>= T_S` and takes as its *target* the commit index that
//! master announced in an append or heartbeat echoing this node's new
//! incarnation (`slave_incarnation`); it becomes `Trusted` (persisted) once
//! it holds, durably and verified against that master, every entry up to
//! the target and a committed entry of the master's own term.
//!
//! *Why (a) holds.* The earlier incarnation's promises were made before this
//! node started. A vote went to a candidate of some term `t`, which counts
//! votes for at most `election_timeout_max` of its own clock (then it leaves
//! the candidate role, which a term never returns to; the core enforces
//! it), so by the end of the recovery wait every such election is won or
//! lost. A won one was won by a quorum `Q` whose other `q - 1` members made
//! `t` durable; an acknowledgement went to a master of `t`, elected by such
//! a quorum before it. Any `v - q + 1` other voters meet every such set of
//! `q - 1` (there are `v - 1` others and `(v - q + 1) + (q - 1) > v - 1`),
//! and a trusted voter's term never decreases: `T_S >= t`. Voters that lost
//! their disks too answer `Recovering` or `Unknown` and do not count; those
//! that count still meet every such set, as long as a majority kept its
//! disks. A lost election in a term above `T_S` needs nothing: its
//! candidate will never count the old vote.
//!
//! *Why (b) holds.* Every entry committed before the master's term is in
//! that master's log before its barrier (leader completeness, §3.6.3), and
//! the node holds a committed entry of that term, so it holds them all
//! (log matching). An entry committed in the master's own term with an
//! acknowledgement of the earlier incarnation was committed before the
//! master learnt the new incarnation, so it is at or below the target: the
//! master follows one incarnation of each peer per term, resets the peer's
//! progress (match index 0, probing) when a *recovering* message of another
//! incarnation arrives, retires the old one, and ignores its late messages;
//! it echoes an incarnation only after that reset.
//!
//! *Why the others stay safe meanwhile.* A recovering node neither votes nor
//! counts toward a commit or the lease (its responses carry `recovering`),
//! so every quorum formed without it is one of trusted voters, which meets
//! every earlier quorum in a voter that kept its promises (`q + (q - 1) >
//! v - 1`). The lease argument is untouched: the node is in no lease quorum
//! and helps elect nobody until the recovery wait, which outlasts any lease
//! its earlier incarnation granted, has passed. Once trusted, its log holds
//! everything it needs for the up-to-date check, and it has spent its vote
//! in every term its earlier incarnation could have voted in.
//!
//! *What it costs.* While a voter recovers, the cluster needs a quorum of
//! the *other* voters, and the recovering node needs `v - q + 1` trusted
//! ones: with 3 voters, both others up. A majority of voters wiped at once
//! cannot recover by itself (their data may be gone with them): the cluster
//! elects nobody and says so, rather than lose acknowledged writes. Growing
//! a cluster works the same way: a node added empty to a running cluster
//! recovers like a wiped one (from 2 to 3 voters: it needs both old ones).
//!
//! # Invariants asserted
//!
//! Term never decreases; commit and apply indexes never decrease; a master
//! voted for itself, never truncates its own log, and is the only node with
//! replication progress; `match_index < next_index` and bounded in-flight
//! windows; the log never gets a gap; learners never hold a voter's role.
//!
//! # Wire encoding
//!
//! [`encode`] / [`decode`] give `Message` a versioned little-endian binary
//! form; the decoder is total and bounded by [`DecodeLimits`].
//!
//! # Test support
//!
//! [`testing`] holds an in-memory log and a small cluster harness that runs
//! the caller's loop above. With the `broken` feature, [`Config`] has a
//! `broken` field selecting one deliberate bug (see `Broken`), for the
//! simulator to prove it catches each.

mod codec;
mod config;
mod core;
mod log;
mod message;
mod progress;
pub mod rng;
pub mod testing;
mod types;

pub use crate::codec::{decode, encode, encode_into, DecodeError, DecodeLimits, WIRE_VERSION};
#[cfg(feature = "broken")]
pub use crate::config::Broken;
pub use crate::config::{Config, ConfigError, MAX_LEARNERS, MAX_VOTERS};
pub use crate::core::{
    Core, ProposeError, Proposed, ReadError, Ready, RoleChange, StartError, Status, StepError,
    MAX_TERM,
};
pub use crate::log::{LogError, LogRead};
pub use crate::message::{AppendResult, Body, Message};
pub use crate::types::{Entry, HardState, NodeId, Role, Standing, Time, ENTRY_OVERHEAD_BYTES};
