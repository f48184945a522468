//! [`Core`]: the replication state machine of one node. See the crate doc for
//! the rules and the caller's loop; every rule below cites the dissertation
//! (Ongaro, "Consensus: Bridging Theory and Practice", 2014) by section.

mod election;
pub mod lease;
mod master;
pub mod recovery;
mod slave;

use crate::config::Config;
use crate::log::{LogError, LogRead, Pending};
use crate::message::{AppendResult, Body, Message};
use crate::progress::{FlowState, Progress};
use crate::rng::SplitMix64;
use crate::types::{duration_nanos, Entry, HardState, NodeId, Role, Standing, Time};
use bytes::Bytes;
use recovery::Recovery;
use std::collections::{BTreeMap, VecDeque};

/// Everything the caller must do after feeding inputs: see the crate doc for
/// the order (persist hard state, truncate and append entries, send messages,
/// send snapshots, apply up to `commit_index`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// Persist durably (fsync) before sending any message of this `Ready`.
    pub hard_state: Option<HardState>,
    /// Remove every log entry with an index above this one, then append
    /// `entries`. Never at or below the commit index; never on a master.
    pub truncate_after: Option<u64>,
    /// Append to the log (buffered is fine); report the fsync with
    /// [`Core::entries_synced`].
    pub entries: Vec<Entry>,
    /// Send after `hard_state` is durable. Entries need not be durable first.
    pub messages: Vec<Message>,
    /// Apply every entry up to this index (never decreases; committed and
    /// durable in the local log).
    pub commit_index: u64,
    /// Send a store snapshot to each of these nodes: they need entries the log
    /// no longer has.
    pub snapshots_to_send: Vec<NodeId>,
    /// Role and master changes since the last `Ready`, in order (one log line
    /// each).
    pub role_changes: Vec<RoleChange>,
}

impl Ready {
    /// True if the caller has nothing to do but apply (`commit_index` is
    /// always set).
    pub fn is_empty(&self) -> bool {
        self.hard_state.is_none()
            && self.truncate_after.is_none()
            && self.entries.is_empty()
            && self.messages.is_empty()
            && self.snapshots_to_send.is_empty()
            && self.role_changes.is_empty()
    }
}

/// A change of role or of known master.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleChange {
    /// The role taken.
    pub role: Role,
    /// The term `n` it was taken in.
    pub term: u64,
    /// The master known in that term, if any.
    pub master: Option<NodeId>,
    /// Last index of the local log at the change.
    pub last_index: u64,
    /// Commit index at the change.
    pub commit_index: u64,
}

/// A snapshot of the core's state, for statistics and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its current term `n`.
    pub term: u64,
    /// Its vote in that term.
    pub voted_for: Option<NodeId>,
    /// The master it knows in that term.
    pub master: Option<NodeId>,
    /// Highest index known committed.
    pub commit_index: u64,
    /// Highest index known durable in its log.
    pub synced_index: u64,
    /// Whether it votes and counts (see [`Standing`]).
    pub standing: Standing,
}

/// Why an input was refused. Errors found before any processing (wrong
/// recipient, unknown sender, malformed message, time going back, log out of
/// step) change no state; a protocol violation found later may leave the
/// sender recognised as master; the core stays consistent either way. After
/// `Log` errors the node should stop (its storage failed).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("message for {to} delivered to {me}")]
    WrongRecipient { me: NodeId, to: NodeId },
    #[error("message from {from}, which is not a member of this cluster")]
    UnknownSender { from: NodeId },
    #[error("malformed {kind} from {from}: {reason}")]
    Malformed {
        from: NodeId,
        kind: &'static str,
        reason: String,
    },
    #[error("protocol violation by {from} in term {term}: {reason}")]
    ProtocolViolation {
        from: NodeId,
        term: u64,
        reason: String,
    },
    #[error("time went backwards: {now:?} after {last:?}")]
    TimeWentBackwards { now: Time, last: Time },
    #[error("the caller's log is out of step: expected last index {expected}, found {found} (append the Ready's entries before the next step)")]
    LogOutOfStep { expected: u64, found: u64 },
    #[error("invalid local event: {reason}")]
    InvalidEvent { reason: String },
    #[error(transparent)]
    Log(#[from] LogError),
}

fn master_name(master: Option<NodeId>) -> String {
    master.map_or_else(|| "unknown".to_string(), |m| m.to_string())
}

/// Why a proposal was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("not master (master: {})", master_name(*master))]
    NotMaster { master: Option<NodeId> },
    #[error("mastership is being handed to {to}")]
    TransferInProgress { to: NodeId },
    #[error("empty payload (reserved for the master's barrier entry)")]
    EmptyPayload,
    #[error("payload of {len} bytes exceeds max_entry_bytes {limit}")]
    TooLarge { len: u64, limit: u64 },
    #[error("{uncommitted} entries not yet committed, limit max_uncommitted_entries {limit}")]
    Backpressure { uncommitted: u64, limit: u64 },
    #[error(transparent)]
    Step(#[from] StepError),
}

/// Why a `Consistent` read cannot be served here now.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("not master (master: {})", master_name(*master))]
    NotMaster { master: Option<NodeId> },
    #[error("master of term {term} does not hold the lease: {reason}")]
    LeaseNotHeld { term: u64, reason: &'static str },
}

/// Where a proposal went: the caller answers the client once the entry at
/// `index` is applied *with this term* (another term there means it was lost).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Proposed {
    /// Index `i` of the new entry.
    pub index: u64,
    /// Term `n` of the new entry (the master's current term).
    pub term: u64,
}

/// Why `Core::new` refused the saved state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("applied index {applied_index} is outside the log {first_index}..={last_index} (base {base})", base = first_index.saturating_sub(1))]
    AppliedOutsideLog {
        applied_index: u64,
        first_index: u64,
        last_index: u64,
    },
    #[error("hard state votes for {voted_for}, not a voter")]
    VoteForNonVoter { voted_for: NodeId },
    #[error(transparent)]
    Log(#[from] LogError),
}

/// Highest term accepted from a peer: terms grow by one per election, so
/// anything near `u64::MAX` is hostile, and refusing it keeps `term + 1`
/// from overflowing.
pub const MAX_TERM: u64 = u64::MAX / 2;

#[derive(Clone, Copy, Debug)]
struct Transfer {
    target: NodeId,
    deadline: Time,
    /// TimeoutNow goes once the target holds every entry (no proposal is
    /// accepted meanwhile, so the log stops growing).
    timeout_now_sent: bool,
}

/// The consensus core of one node. Pure: every input passes the current
/// local time and read access to the log; outputs accumulate until
/// [`Core::take_ready`].
#[derive(Debug)]
pub struct Core {
    config: Config,
    quorum: usize,
    is_voter: bool,
    rng: SplitMix64,
    now: Time,

    term: u64,
    voted_for: Option<NodeId>,
    hard_state_dirty: bool,
    /// See [`HardState::incarnation`].
    incarnation: u64,
    /// Trusted, or how far a node that cannot vouch for its state got.
    recovery: Recovery,
    /// When this core started (the recovery wait counts from here).
    started_at: Time,

    role: Role,
    master: Option<NodeId>,

    /// Highest index known committed. Never decreases.
    commit_index: u64,
    /// Highest commit index a master announced to this node (its log may
    /// not hold that far yet). Never decreases; only reported.
    heard_commit_index: u64,
    /// Highest index known durable in the local log (fsync event or restart).
    synced_index: u64,
    /// `min(commit_index, synced_index)` as last handed out; never decreases.
    reported_commit_index: u64,
    pending: Pending,
    expected_log_last_index: Option<u64>,

    messages: Vec<Message>,
    snapshots_to_send: Vec<NodeId>,
    role_changes: Vec<RoleChange>,

    election_deadline: Time,
    /// Until then this node neither votes for another node nor campaigns: a
    /// lease it granted (or held, or may have granted before a restart) may run.
    lease_guard_until: Time,
    last_master_contact: Option<Time>,

    votes: BTreeMap<NodeId, bool>,

    // Slave side, reset with each new term.
    /// The local log matches the master's of this term up to here.
    verified_index: u64,
    last_acked_index: u64,
    ack_owed_index: Option<u64>,
    latest_sent_at: Option<Time>,

    // Master side.
    progress: BTreeMap<NodeId, Progress>,
    became_master_at: Time,
    term_start_index: u64,
    heartbeat_due: Time,
    transfer: Option<Transfer>,
    lease_forfeited: bool,
    /// The master whose `TimeoutNow` made this node campaign in this term:
    /// it gave mastership away, so this node, once master, does not hand
    /// it back as a preferred master (Arakoon: a preferred master asked to
    /// drop does not take mastership back). Cleared by a campaign of its
    /// own and when this node follows again.
    handed_over_by: Option<NodeId>,
    /// When the slaves that no message told the commit index yet get a
    /// heartbeat carrying it (`Config::commit_announce_delay`).
    commit_announce_due: Option<Time>,
    /// Per peer, incarnations it replaced (wiped and came back): their late
    /// messages are ignored. Kept across terms, bounded.
    retired_incarnations: BTreeMap<NodeId, VecDeque<u64>>,
}

impl Core {
    /// Starts (or restarts) a node. `hard_state` as last persisted (default
    /// for a new node); `log` as recovered, everything in it durable;
    /// `applied_index` the store's applied index (committed by definition).
    ///
    /// After a restart the node grants itself a lease guard of
    /// `lease_period` from `now`: it may have acknowledged a master just
    /// before it stopped, and the memory of that is gone. Only a trusted
    /// node at term 0 skips it (it never acknowledged anyone).
    ///
    /// A hard state whose standing is not `Trusted` starts the recovery of
    /// [`recovery`]; `Unknown` with
    /// a non-empty log (or store) is `Recovering`.
    pub fn new(
        config: Config,
        hard_state: HardState,
        log: &dyn LogRead,
        applied_index: u64,
        now: Time,
    ) -> Result<Core, StartError> {
        config.validate()?;
        let base = log.first_index().saturating_sub(1);
        if applied_index < base || applied_index > log.last_index() {
            return Err(StartError::AppliedOutsideLog {
                applied_index,
                first_index: log.first_index(),
                last_index: log.last_index(),
            });
        }
        if let Some(v) = hard_state.voted_for {
            if !config.voters.contains(&v) {
                return Err(StartError::VoteForNonVoter { voted_for: v });
            }
        }
        let _ = log.term(log.last_index())?;
        let is_voter = config.voters.contains(&config.id);
        let seed = config.seed ^ config.id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let quorum = config.quorum_size();
        let log_is_empty = log.last_index() == 0 && applied_index == 0;
        let recovery = Core::starting_recovery(&config, &hard_state, log_is_empty, now);
        // A trusted node whose persisted term is 0 never acknowledged a
        // master nor voted (either needs a term >= 1 made durable before the
        // answer leaves), so no lease it granted can be running: a
        // brand-new cluster elects at once instead of after a lease period.
        // A node that cannot vouch for its state cannot tell.
        let lease_guard_until = if hard_state.term == 0 && recovery == Recovery::Trusted {
            now
        } else {
            now.plus(config.lease_period)
        };
        let hard_state_dirty = recovery.standing() != hard_state.standing;
        let mut core = Core {
            quorum,
            is_voter,
            rng: SplitMix64::new(seed),
            now,
            term: hard_state.term,
            voted_for: hard_state.voted_for,
            hard_state_dirty,
            incarnation: hard_state.incarnation,
            recovery,
            started_at: now,
            role: if is_voter { Role::Slave } else { Role::Learner },
            master: None,
            commit_index: applied_index,
            heard_commit_index: applied_index,
            synced_index: log.last_index(),
            reported_commit_index: applied_index,
            pending: Pending::default(),
            expected_log_last_index: Some(log.last_index()),
            messages: Vec::new(),
            snapshots_to_send: Vec::new(),
            role_changes: Vec::new(),
            election_deadline: now,
            lease_guard_until,
            last_master_contact: None,
            votes: BTreeMap::new(),
            verified_index: 0,
            last_acked_index: 0,
            ack_owed_index: None,
            latest_sent_at: None,
            progress: BTreeMap::new(),
            became_master_at: now,
            term_start_index: 0,
            heartbeat_due: now,
            transfer: None,
            lease_forfeited: false,
            handed_over_by: None,
            commit_announce_due: None,
            retired_incarnations: BTreeMap::new(),
            config,
        };
        core.reset_election_deadline();
        Ok(core)
    }

    // ----- queries -------------------------------------------------------

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The validated configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The role this node plays now.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Current term `n`.
    pub fn term(&self) -> u64 {
        self.term
    }

    /// The master this node knows of in the current term.
    pub fn master(&self) -> Option<NodeId> {
        self.master
    }

    /// The master clients should be sent to: the master, unless it is a
    /// witness (which takes mastership only to hand it on, and serves no
    /// client meanwhile).
    pub fn serving_master(&self) -> Option<NodeId> {
        self.master.filter(|m| !self.config.witnesses.contains(m))
    }

    /// Highest index known committed (may exceed the `Ready`'s apply limit
    /// while the local log is not yet durable that far).
    pub fn commit_index(&self) -> u64 {
        self.commit_index
    }

    /// Highest index known committed in the cluster: the commit index, or
    /// a higher one a master announced that this node's log does not hold
    /// yet (what a node catching up must reach). For reports only.
    pub fn heard_commit_index(&self) -> u64 {
        self.heard_commit_index.max(self.commit_index)
    }

    /// The hard state as of now (what the last `Ready`s asked to persist,
    /// plus any change not yet taken).
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.voted_for,
            incarnation: self.incarnation,
            standing: self.standing(),
        }
    }

    /// A summary of the core's state.
    pub fn status(&self) -> Status {
        Status {
            id: self.config.id,
            role: self.role,
            term: self.term,
            voted_for: self.voted_for,
            master: self.master,
            commit_index: self.commit_index,
            synced_index: self.synced_index,
            standing: self.standing(),
        }
    }

    /// On a master: `(match_index, next_index)` of a peer.
    pub fn peer_progress(&self, peer: NodeId) -> Option<(u64, u64)> {
        self.progress
            .get(&peer)
            .map(|p| (p.match_index, p.next_index))
    }

    /// On a master, when a slave still to be told the latest commit index
    /// gets a heartbeat carrying it (call `tick` then); `None` when none is
    /// owed. See `Config::commit_announce_delay`.
    pub fn commit_announce_due(&self) -> Option<Time> {
        self.commit_announce_due
            .filter(|_| self.role == Role::Master)
    }

    // ----- inputs --------------------------------------------------------

    /// Time passes: election timeouts, heartbeats, check-quorum, transfers.
    pub fn tick(&mut self, now: Time, log: &dyn LogRead) -> Result<(), StepError> {
        self.enter(now, log)?;
        match self.role {
            Role::Master => self.tick_master(log)?,
            Role::Learner => {}
            Role::Slave | Role::PreCandidate | Role::Candidate => {
                if self.now >= self.election_deadline {
                    if self.may_campaign() {
                        self.start_pre_vote(log)?;
                    } else if self.role == Role::Candidate {
                        // A candidate counts votes for one election timeout
                        // at most (the recovery wait relies on it).
                        self.become_follower(self.term, None, log);
                    } else {
                        self.reset_election_deadline();
                    }
                }
            }
        }
        self.recovery_tick();
        self.check_invariants();
        Ok(())
    }

    /// A client proposal on the master: appends ONE entry holding `payload`
    /// (the caller's batch). It goes out with the next append to each slave.
    pub fn propose(
        &mut self,
        payload: Bytes,
        now: Time,
        log: &dyn LogRead,
    ) -> Result<Proposed, ProposeError> {
        self.enter(now, log)?;
        if self.role != Role::Master {
            return Err(ProposeError::NotMaster {
                master: self.master,
            });
        }
        if let Some(t) = self.transfer {
            return Err(ProposeError::TransferInProgress { to: t.target });
        }
        if self.is_witness() && !self.witness_serves() {
            return Err(ProposeError::NotMaster { master: None });
        }
        if payload.is_empty() {
            return Err(ProposeError::EmptyPayload);
        }
        let len = payload.len() as u64;
        if len > self.config.max_entry_bytes {
            return Err(ProposeError::TooLarge {
                len,
                limit: self.config.max_entry_bytes,
            });
        }
        let last = self.pending.last_index(log);
        let uncommitted = last - self.commit_index;
        if uncommitted >= self.config.max_uncommitted_entries {
            return Err(ProposeError::Backpressure {
                uncommitted,
                limit: self.config.max_uncommitted_entries,
            });
        }
        let entry = Entry {
            index: last + 1,
            term: self.term,
            payload,
        };
        self.pending.append(log, entry);
        self.check_invariants();
        Ok(Proposed {
            index: last + 1,
            term: self.term,
        })
    }

    /// The local log is durable up to `(index, term)`: every entry up to
    /// `index` as it stood when the fsync *started*, the one at `index` having
    /// `term`. Take the pair when the fsync starts (or, if the log was
    /// truncated below `index` while it ran, report at most the truncation
    /// point): a report about an entry that was since replaced (its term
    /// differs now) is ignored, but a term looked up after the fact could
    /// vouch for a newer, unsynced entry.
    pub fn entries_synced(
        &mut self,
        index: u64,
        term: u64,
        now: Time,
        log: &dyn LogRead,
    ) -> Result<(), StepError> {
        self.enter(now, log)?;
        if index > log.last_index() {
            return Err(StepError::InvalidEvent {
                reason: format!(
                    "fsync reported up to {index}, the log ends at {}",
                    log.last_index()
                ),
            });
        }
        if self.pending.truncate_after.is_some_and(|t| t < index) {
            return Ok(()); // about entries the pending Ready truncates
        }
        match log.term(index) {
            Ok(t) if t == term => {}
            Ok(_) => return Ok(()), // stale: that entry was replaced
            Err(LogError::Compacted { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        if index <= self.synced_index {
            return Ok(());
        }
        self.synced_index = index;
        if self.role == Role::Master {
            self.maybe_commit(log)?;
        } else {
            self.maybe_ack();
            self.maybe_finish_recovery(log)?;
        }
        self.check_invariants();
        Ok(())
    }

    /// The caller installed a store snapshot at `(index, term)` and rebased its
    /// log there: it kept the entries after `index` only if its log held
    /// `(index, term)`, and dropped the whole log otherwise. Call it right
    /// after a `take_ready` (nothing pending).
    pub fn snapshot_installed(
        &mut self,
        index: u64,
        term: u64,
        now: Time,
        log: &dyn LogRead,
    ) -> Result<(), StepError> {
        self.advance_time(now)?;
        let invalid = |reason: String| Err(StepError::InvalidEvent { reason });
        if !self.pending.is_empty() {
            return invalid("snapshot installed with a Ready not taken".into());
        }
        if self.role == Role::Master {
            return invalid("snapshot installed on the master".into());
        }
        if index <= self.commit_index {
            return invalid(format!(
                "snapshot at {index} is not past the commit index {}",
                self.commit_index
            ));
        }
        let base = log.first_index().saturating_sub(1);
        if index < base || index > log.last_index() || log.term(index)? != term {
            return invalid(format!(
                "log not rebased on the snapshot ({index}, {term}): base {base}, last {}",
                log.last_index()
            ));
        }
        if log.last_index() == index {
            if self.last_acked_index > index {
                return invalid(format!(
                    "the log was dropped down to the snapshot at {index}, but entries up to {} were acknowledged (keep the suffix when the log holds ({index}, {term}))",
                    self.last_acked_index
                ));
            }
            self.synced_index = index;
            self.verified_index = self.verified_index.min(index);
        } else {
            self.synced_index = self.synced_index.max(index);
        }
        // A committed prefix matches every later master's log (§3.6.3).
        self.verified_index = self.verified_index.max(index);
        self.set_commit(index);
        self.expected_log_last_index = Some(log.last_index());
        self.maybe_ack();
        self.maybe_finish_recovery(log)?;
        self.check_invariants();
        Ok(())
    }

    /// A message from another core.
    pub fn step(&mut self, msg: Message, now: Time, log: &dyn LogRead) -> Result<(), StepError> {
        self.validate_message(&msg)?;
        self.enter(now, log)?;
        self.step_valid(msg, log)?;
        self.check_invariants();
        Ok(())
    }

    /// Hands out what the caller must do. The master first puts every entry
    /// appended since the last call into append messages (batching), as far
    /// as each slave's flow control allows. After this call, apply
    /// `truncate_after` and `entries` to the log before the next input.
    pub fn take_ready(&mut self, log: &dyn LogRead) -> Result<Ready, StepError> {
        self.check_log(log)?;
        if self.role == Role::Master {
            let peers: Vec<NodeId> = self.progress.keys().copied().collect();
            for peer in peers {
                self.send_appends(peer, log)?;
            }
            // The commit index rides on the next message; peers that get
            // none within the delay get a heartbeat carrying it.
            let commit = self.commit_index;
            if self.progress.values().all(|pr| pr.commit_sent >= commit) {
                self.commit_announce_due = None;
            } else if self.commit_announce_due.is_none() {
                self.commit_announce_due = Some(self.now.plus(self.config.commit_announce_delay));
            }
            self.announce_commit_if_due();
        }
        let last_index = self.pending.last_index(log);
        // The slave's acknowledgement bookkeeping never runs ahead of its log:
        // acknowledged <= verified <= last, and synced <= last.
        assert!(self.synced_index <= last_index.max(log.last_index()));
        assert!(
            self.verified_index <= last_index,
            "verified {} past the log's end {last_index}",
            self.verified_index
        );
        assert!(
            self.last_acked_index <= self.verified_index,
            "acknowledged past the verified prefix"
        );
        assert!(
            self.commit_index <= last_index,
            "commit {} past the log's end {last_index}",
            self.commit_index
        );
        let apply_index = self.commit_index.min(self.synced_index);
        assert!(
            apply_index >= self.reported_commit_index,
            "apply index went back from {} to {apply_index}",
            self.reported_commit_index
        );
        self.reported_commit_index = apply_index;
        let hard_state = if self.hard_state_dirty {
            self.hard_state_dirty = false;
            Some(self.hard_state())
        } else {
            None
        };
        self.expected_log_last_index = Some(self.pending.last_index(log));
        let pending = std::mem::take(&mut self.pending);
        Ok(Ready {
            hard_state,
            truncate_after: pending.truncate_after,
            entries: pending.entries,
            messages: std::mem::take(&mut self.messages),
            commit_index: apply_index,
            snapshots_to_send: std::mem::take(&mut self.snapshots_to_send),
            role_changes: std::mem::take(&mut self.role_changes),
        })
    }

    // ----- plumbing ------------------------------------------------------

    /// Every input starts here: the log is checked, time advances, and a
    /// master whose quorum has lapsed (§6.2 check-quorum) steps down
    /// before it does anything else. A master woken from a pause longer
    /// than its lease would otherwise act on its first input (a queued
    /// proposal, a late response) as master of its old term, and its
    /// appends would make the slaves take it for a live master again, and
    /// refuse every pre-vote for an election timeout more (a ghost master).
    fn enter(&mut self, now: Time, log: &dyn LogRead) -> Result<(), StepError> {
        self.check_log(log)?;
        self.advance_time(now)?;
        self.step_down_if_quorum_lost(log);
        Ok(())
    }

    fn advance_time(&mut self, now: Time) -> Result<(), StepError> {
        if now < self.now {
            return Err(StepError::TimeWentBackwards {
                now,
                last: self.now,
            });
        }
        self.now = now;
        Ok(())
    }

    fn check_log(&self, log: &dyn LogRead) -> Result<(), StepError> {
        if let Some(expected) = self.expected_log_last_index {
            if log.last_index() != expected {
                return Err(StepError::LogOutOfStep {
                    expected,
                    found: log.last_index(),
                });
            }
        }
        Ok(())
    }

    fn is_member(&self, id: NodeId) -> bool {
        self.config.voters.contains(&id) || self.config.learners.contains(&id)
    }

    fn is_voter_id(&self, id: NodeId) -> bool {
        self.config.voters.contains(&id)
    }

    fn lease_period_ns(&self) -> u64 {
        duration_nanos(self.config.lease_period)
    }

    fn send(&mut self, to: NodeId, body: Body) {
        let term = self.term;
        self.send_with_term(to, term, body);
    }

    fn send_with_term(&mut self, to: NodeId, term: u64, body: Body) {
        assert_ne!(to, self.config.id, "message to self");
        if let Body::Append { commit, .. } | Body::Heartbeat { commit, .. } = body {
            if let Some(pr) = self.progress.get_mut(&to) {
                pr.commit_sent = pr.commit_sent.max(commit);
            }
        }
        self.messages.push(Message {
            from: self.config.id,
            to,
            term,
            body,
        });
    }

    fn reset_election_deadline(&mut self) {
        let low = duration_nanos(self.config.election_timeout_min);
        let high = duration_nanos(self.config.election_timeout_max);
        let mut timeout = self.rng.in_range(low, high);
        if self.is_witness() {
            // A full voter that can be elected is, before a witness tries.
            timeout = timeout.saturating_add(high);
        }
        self.election_deadline = Time(self.now.0.saturating_add(timeout));
    }

    fn forced_allows(&self, candidate: NodeId) -> bool {
        self.config.forced_master.is_none_or(|f| f == candidate)
    }

    /// Whether `id` may ever be master: a voter, not a witness, and the
    /// forced master if there is one.
    /// Whether `id` may be a serving master, the target of a hand-over: a
    /// voter, not a witness, and the forced master if there is one.
    fn may_be_master(&self, id: NodeId) -> bool {
        self.is_voter_id(id) && !self.config.witnesses.contains(&id) && self.forced_allows(id)
    }

    /// The deliberately broken variant where a witness serves as master.
    fn witness_serves(&self) -> bool {
        #[cfg(feature = "broken")]
        if self.config.broken == Some(crate::config::Broken::WitnessServes) {
            return true;
        }
        false
    }

    /// Whether this node is a witness.
    pub(super) fn is_witness(&self) -> bool {
        self.config.witnesses.contains(&self.config.id)
    }

    /// A witness campaigns too (after a longer timeout: see
    /// `reset_election_deadline`), but only to hand its entries on.
    fn may_campaign(&self) -> bool {
        self.is_voter
            && self.is_trusted()
            && self.forced_allows(self.config.id)
            && self.now >= self.lease_guard_until
    }

    fn set_term(&mut self, term: u64) {
        assert!(
            term >= self.term,
            "term went back from {} to {term}",
            self.term
        );
        if term > self.term {
            self.term = term;
            self.voted_for = None;
            self.hard_state_dirty = true;
            self.verified_index = 0;
            self.last_acked_index = 0;
            self.ack_owed_index = None;
            self.latest_sent_at = None;
        }
    }

    fn set_commit(&mut self, index: u64) {
        if index > self.commit_index {
            self.commit_index = index;
        }
    }

    fn record_role_change(&mut self, log: &dyn LogRead) {
        let change = RoleChange {
            role: self.role,
            term: self.term,
            master: self.master,
            last_index: self.pending.last_index(log),
            commit_index: self.commit_index,
        };
        tracing::info!(
            node = %self.config.id, role = %change.role, n = change.term,
            master = ?change.master, i = change.last_index, commit = change.commit_index,
            "role change"
        );
        self.role_changes.push(change);
    }

    fn become_follower(&mut self, term: u64, master: Option<NodeId>, log: &dyn LogRead) {
        if self.role == Role::Master {
            // It may have served reads on a lease that counted itself at any
            // instant up to now: guard as if it had granted one now.
            self.guard_lease();
            self.progress.clear();
            self.transfer = None;
            self.lease_forfeited = false;
        }
        self.handed_over_by = None;
        self.set_term(term);
        let role = if self.is_voter {
            Role::Slave
        } else {
            Role::Learner
        };
        let changed = self.role != role || self.master != master;
        self.role = role;
        self.master = master;
        self.votes.clear();
        self.reset_election_deadline();
        if changed {
            self.record_role_change(log);
        }
    }

    fn last_index_term(&self, log: &dyn LogRead) -> Result<(u64, u64), LogError> {
        Ok((self.pending.last_index(log), self.pending.last_term(log)?))
    }

    /// §3.6.1: a candidate's log is at least as up to date as ours.
    fn candidate_up_to_date(
        &self,
        last_index: u64,
        last_term: u64,
        log: &dyn LogRead,
    ) -> Result<bool, LogError> {
        #[cfg(feature = "broken")]
        if self.config.broken == Some(crate::config::Broken::VoteForStaleCandidate) {
            return Ok(true);
        }
        let (my_index, my_term) = self.last_index_term(log)?;
        Ok((last_term, last_index) >= (my_term, my_index))
    }

    fn tally(&self) -> (usize, usize) {
        let granted = self
            .votes
            .iter()
            .filter(|(id, g)| **g && self.is_voter_id(**id))
            .count();
        let rejected = self
            .votes
            .iter()
            .filter(|(id, g)| !**g && self.is_voter_id(**id))
            .count();
        (granted, rejected)
    }

    fn commit_quorum(&self) -> usize {
        #[cfg(feature = "broken")]
        if self.config.broken == Some(crate::config::Broken::CommitOnMinority) {
            return (self.quorum - 1).max(1);
        }
        self.quorum
    }

    // ----- messages ------------------------------------------------------

    fn validate_message(&self, msg: &Message) -> Result<(), StepError> {
        if msg.to != self.config.id {
            return Err(StepError::WrongRecipient {
                me: self.config.id,
                to: msg.to,
            });
        }
        if msg.from == self.config.id || !self.is_member(msg.from) {
            return Err(StepError::UnknownSender { from: msg.from });
        }
        if msg.term > MAX_TERM {
            return Err(StepError::Malformed {
                from: msg.from,
                kind: msg.body.kind(),
                reason: format!("term {} above the limit {MAX_TERM}", msg.term),
            });
        }
        let voter_only = matches!(
            msg.body,
            Body::PreVote { .. }
                | Body::PreVoteResponse { .. }
                | Body::Vote { .. }
                | Body::VoteResponse { .. }
                | Body::Append { .. }
                | Body::Heartbeat { .. }
                | Body::TimeoutNow
                | Body::RecoveryQuery { .. }
                | Body::RecoveryReply { .. }
        );
        if voter_only && !self.is_voter_id(msg.from) {
            return Err(StepError::ProtocolViolation {
                from: msg.from,
                term: msg.term,
                reason: format!("a learner sent {}", msg.body.kind()),
            });
        }
        if let Body::Append {
            prev_index,
            prev_term,
            entries,
            ..
        } = &msg.body
        {
            let malformed = |reason: String| StepError::Malformed {
                from: msg.from,
                kind: "append",
                reason,
            };
            if prev_index.checked_add(entries.len() as u64).is_none() {
                return Err(malformed("index overflow".into()));
            }
            let mut previous_term = *prev_term;
            for (k, e) in entries.iter().enumerate() {
                if e.index != prev_index + 1 + k as u64 {
                    return Err(malformed(format!(
                        "entry {k} has index {}, not {}",
                        e.index,
                        prev_index + 1 + k as u64
                    )));
                }
                if e.term < previous_term || e.term > msg.term {
                    return Err(malformed(format!(
                        "entry {} has term {} out of order",
                        e.index, e.term
                    )));
                }
                previous_term = e.term;
            }
            if *prev_term > msg.term {
                return Err(malformed(format!(
                    "prev_term {prev_term} above the term {}",
                    msg.term
                )));
            }
        }
        Ok(())
    }

    fn step_valid(&mut self, msg: Message, log: &dyn LogRead) -> Result<(), StepError> {
        // Pre-votes never change the receiver's term (§9.6).
        match msg.body {
            Body::PreVote {
                last_index,
                last_term,
            } => return self.on_pre_vote(&msg, last_index, last_term, log),
            Body::PreVoteResponse { granted } => {
                return self.on_pre_vote_response(&msg, granted, log)
            }
            // Recovery questions and answers change no term either.
            Body::RecoveryQuery { asked_at } => {
                self.on_recovery_query(msg.from, asked_at, log);
                return Ok(());
            }
            Body::RecoveryReply {
                asked_at,
                standing,
                last_index,
            } => {
                self.on_recovery_reply(msg.from, msg.term, asked_at, standing, last_index, log);
                return Ok(());
            }
            _ => {}
        }
        if msg.term > self.term {
            match msg.body {
                Body::Vote { transfer, .. } => {
                    if !self.is_voter {
                        return Ok(());
                    }
                    if !self.is_trusted() {
                        // It votes for nobody until it has recovered; its
                        // term follows the masters it catches up from.
                        tracing::debug!(node = %self.config.id, candidate = %msg.from, n = msg.term, "vote request ignored: recovering");
                        return Ok(());
                    }
                    if !transfer && self.in_lease() {
                        // §6.4.1 / §9.6: a lease we granted (or hold) may run;
                        // ignore without even raising our term.
                        tracing::debug!(node = %self.config.id, candidate = %msg.from, n = msg.term, "vote request ignored: in lease");
                        return Ok(());
                    }
                    self.become_follower(msg.term, None, log);
                }
                Body::Append { .. } | Body::Heartbeat { .. } | Body::TimeoutNow => {
                    self.become_follower(msg.term, Some(msg.from), log);
                }
                _ => {
                    self.become_follower(msg.term, None, log);
                    return Ok(());
                }
            }
        } else if msg.term < self.term {
            // A stale master or candidate learns the newer term from the answer.
            match msg.body {
                Body::Append {
                    prev_index,
                    sent_at,
                    ..
                } => self.send(
                    msg.from,
                    Body::AppendResponse {
                        sent_at,
                        result: AppendResult::Rejected {
                            rejected_prev_index: prev_index,
                            hint_index: 0,
                            hint_term: 0,
                        },
                        incarnation: self.incarnation,
                        recovering: !self.is_trusted(),
                    },
                ),
                Body::Heartbeat { sent_at, .. } => {
                    let commit = self.commit_index;
                    self.send_heartbeat_response(msg.from, sent_at, commit)
                }
                Body::Vote { .. } if self.is_voter => {
                    self.send(msg.from, Body::VoteResponse { granted: false })
                }
                _ => {}
            }
            return Ok(());
        }
        let from = msg.from;
        let term = msg.term;
        match msg.body {
            Body::Vote {
                last_index,
                last_term,
                transfer,
            } => {
                let m = Message {
                    from,
                    to: self.config.id,
                    term,
                    body: Body::TimeoutNow,
                };
                self.on_vote(&m, last_index, last_term, transfer, log)
            }
            Body::VoteResponse { granted } => self.on_vote_response(from, granted, log),
            Body::Append {
                prev_index,
                prev_term,
                commit,
                sent_at,
                slave_incarnation,
                entries,
            } => {
                self.accept_master(from, sent_at, log)?;
                self.recovery_heard_master(slave_incarnation, commit);
                self.heard_commit_index = self.heard_commit_index.max(commit);
                self.on_append(from, prev_index, prev_term, commit, sent_at, entries, log)?;
                self.maybe_finish_recovery(log)
            }
            Body::Heartbeat {
                commit,
                sent_at,
                slave_incarnation,
            } => {
                self.accept_master(from, sent_at, log)?;
                self.recovery_heard_master(slave_incarnation, commit);
                self.heard_commit_index = self.heard_commit_index.max(commit);
                let verified = self.verified_index;
                self.set_commit(commit.min(verified));
                let commit = self.commit_index;
                self.send_heartbeat_response(from, sent_at, commit);
                self.guard_lease();
                // E.g. after a snapshot installed while no master was known.
                self.maybe_ack();
                self.maybe_finish_recovery(log)
            }
            Body::AppendResponse {
                sent_at,
                result,
                incarnation,
                recovering,
            } => {
                if !self.admit_response(from, incarnation, recovering, log) {
                    return Ok(());
                }
                self.on_append_response(from, sent_at, result, log)
            }
            Body::HeartbeatResponse {
                sent_at,
                commit,
                incarnation,
                recovering,
            } => {
                if !self.admit_response(from, incarnation, recovering, log) {
                    return Ok(());
                }
                let last_index = self.pending.last_index(log);
                self.on_heartbeat_response(from, sent_at, commit, last_index);
                Ok(())
            }
            Body::TimeoutNow => self.on_timeout_now(from, log),
            Body::PreVote { .. }
            | Body::PreVoteResponse { .. }
            | Body::RecoveryQuery { .. }
            | Body::RecoveryReply { .. } => Ok(()),
        }
    }

    // ----- invariants ------------------------------------------------------

    fn send_heartbeat_response(&mut self, to: NodeId, sent_at: Time, commit: u64) {
        let body = Body::HeartbeatResponse {
            sent_at,
            commit,
            incarnation: self.incarnation,
            recovering: !self.is_trusted(),
        };
        self.send(to, body);
    }

    fn check_invariants(&self) {
        assert!(self.reported_commit_index <= self.commit_index);
        if !self.is_trusted() {
            assert!(
                matches!(self.role, Role::Slave | Role::Learner),
                "a node that is not trusted neither campaigns nor leads"
            );
        }
        assert_eq!(
            self.role == Role::Learner,
            !self.is_voter,
            "learner role iff not a voter"
        );
        match self.role {
            Role::Master => {
                assert_eq!(self.master, Some(self.config.id));
                assert_eq!(
                    self.voted_for,
                    Some(self.config.id),
                    "a master voted for itself in its term"
                );
                assert!(
                    self.pending.truncate_after.is_none(),
                    "a master never truncates its own log"
                );
                assert!(self.term_start_index > 0);
                for pr in self.progress.values() {
                    pr.check(self.config.max_inflight_appends);
                }
            }
            Role::Candidate => {
                assert_eq!(self.voted_for, Some(self.config.id));
                assert!(self.progress.is_empty());
            }
            _ => assert!(self.progress.is_empty(), "only a master tracks progress"),
        }
        if let Some(m) = self.master {
            assert!(self.is_voter_id(m), "a master is a voter");
        }
        if self.role != Role::Master {
            assert!(self.transfer.is_none() && !self.lease_forfeited);
        }
    }
}
