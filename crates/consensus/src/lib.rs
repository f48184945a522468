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
//!   term, persisted (hard state) before the response leaves. A candidate
//!   that gets another candidate's vote request of its own term (a split
//!   vote) tries again after a random back-off of at most a quarter of
//!   `election_timeout_min`, not a whole election timeout.
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
//! - **Witnesses** (Arakoon's `witness = true`): voters that vote and
//!   acknowledge like any other (so they count for quorums and the lease)
//!   but never serve as master: never the target of a hand-over, and they
//!   campaign only after `election_timeout_max` more than the others, so a
//!   full voter that can be elected is. A full voter cannot be elected
//!   when a witness alone holds the latest entries (the witness refuses it
//!   its vote, §3.6.1: its log is behind); then the witness is elected,
//!   forfeits the lease at once (no `Consistent` read), refuses every
//!   proposal, and once its term's first entry is committed hands
//!   mastership to the responsive full voter furthest along (which it
//!   catches up first). `Core::serving_master` hides a witness master from
//!   clients. The safety rules are untouched: a witness master is an
//!   ordinary master that proposes nothing.
//! - **Quorum**: a majority of voters, or `Config::quorum` (dangerous below a
//!   majority: two quorums may then not intersect, so neither election
//!   safety nor the lease argument hold).
//!
//! # The master lease, and recovery after a lost disk
//!
//! Why two leases never overlap, given bounded clock-rate drift, is argued
//! step by step in [`lease`], next to the code it speaks of
//! ([`Core::lease`]). How a node that lost its disk (or cannot read its hard
//! state) earns its vote back without breaking that argument or Raft's is
//! argued in [`recovery`], next to its code.
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
//! `testing` (feature `testing`) holds an in-memory log and a small cluster
//! harness that runs the caller's loop above. With the `broken` feature, [`Config`] has a
//! `broken` field selecting one deliberate bug (see `Broken`), for the
//! simulator to prove it catches each.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod codec;
mod config;
mod core;
mod log;
mod message;
mod progress;
pub mod rng;
#[cfg(feature = "testing")]
pub mod testing;
mod types;

pub use crate::codec::{decode, encode, encode_into, DecodeError, DecodeLimits, WIRE_VERSION};
#[cfg(feature = "broken")]
pub use crate::config::Broken;
pub use crate::config::{Config, ConfigError, MAX_LEARNERS, MAX_VOTERS};
pub use crate::core::lease::{self, Lease};
pub use crate::core::recovery;
pub use crate::core::{
    Core, ProposeError, Proposed, ReadError, Ready, RoleChange, StartError, Status, StepError,
    MAX_TERM,
};
pub use crate::log::{LogError, LogRead};
pub use crate::message::{AppendResult, Body, Message};
pub use crate::types::{Entry, HardState, NodeId, Role, Standing, Time, ENTRY_OVERHEAD_BYTES};
