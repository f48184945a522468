//! The static configuration of one node's consensus core, and its validation.

use crate::types::NodeId;
use std::time::Duration;

/// Most voters a cluster may have.
pub const MAX_VOTERS: usize = 7;
/// Most learners a cluster may have.
pub const MAX_LEARNERS: usize = 16;

/// A deliberately broken variant, for the simulator's proof that its checks
/// catch real bugs. Only compiled with the `broken` feature.
#[cfg(feature = "broken")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broken {
    /// The master commits once a minority (quorum - 1, at least 1) has an entry.
    CommitOnMinority,
    /// `consistent_read_index` answers on any master, lease or not.
    ReadWithoutLease,
    /// Votes (and pre-votes) skip the "candidate's log is at least as up to
    /// date" check.
    VoteForStaleCandidate,
    /// A slave acknowledges appended entries before the fsync event covers them.
    AckBeforeFsync,
    /// A node that lost its disk (or cannot read its hard state) trusts its
    /// empty state at once: it votes and counts as if it had never promised
    /// anything.
    WipedNodeVotes,
    /// A witness that becomes master serves as one: it holds the lease,
    /// takes proposals and does not hand mastership to a full node.
    WitnessServes,
}

/// Configuration of one node. Every period is a `Duration`; every limit is
/// named. Build with [`Config::new`] and adjust fields; [`Config::validate`]
/// (called by `Core::new`) names the first bad field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node.
    pub id: NodeId,
    /// Voting members (1 to 7), this node included if it votes.
    pub voters: Vec<NodeId>,
    /// Non-voting members that receive the log.
    pub learners: Vec<NodeId>,
    /// Voters that vote and acknowledge like any other but never serve as
    /// master (Arakoon's witness nodes): never handed mastership, and they
    /// campaign only after a longer timeout (see `core` docs: "Witnesses").
    /// At least one voter is not a witness.
    pub witnesses: Vec<NodeId>,
    /// Lower bound of the randomized election timeout.
    pub election_timeout_min: Duration,
    /// Upper bound (exclusive) of the randomized election timeout.
    pub election_timeout_max: Duration,
    /// How often the master sends heartbeats (they carry the commit index and
    /// renew the lease).
    pub heartbeat_interval: Duration,
    /// How long a master may hold back telling the slaves a new commit
    /// index when no append carries it (zero: at once, with a heartbeat).
    /// Within the delay the next append usually carries it for free, which
    /// saves every slave a wake-up per write; a slave learns the commit at
    /// most this much later. Below `heartbeat_interval`.
    pub commit_announce_delay: Duration,
    /// Master lease. A slave that acknowledged a master at local time `t`
    /// neither votes for another node nor campaigns before `t + lease_period`.
    pub lease_period: Duration,
    /// Margin for clock rate drift: the master believes its lease only for
    /// `lease_period - max_clock_drift` after the send time of the
    /// acknowledged messages. See the crate doc for the exact assumption.
    pub max_clock_drift: Duration,
    /// Most append messages in flight to one slave (pipelining).
    pub max_inflight_appends: usize,
    /// Most bytes of entries (as counted by `Entry::size_bytes`) in one append
    /// message; a single larger entry is still sent alone.
    pub max_append_bytes: u64,
    /// Largest payload `propose` accepts.
    pub max_entry_bytes: u64,
    /// Most entries the master holds appended but not committed; `propose`
    /// refuses more (back-pressure).
    pub max_uncommitted_entries: u64,
    /// How long the master waits for a slave to install a snapshot before it
    /// probes it again (and, if still needed, asks for another snapshot).
    pub snapshot_timeout: Duration,
    /// Voters in order of preference: a caught-up node earlier in this list
    /// than the master is handed mastership.
    pub preferred_masters: Vec<NodeId>,
    /// When set, only this node may ever be master: others never campaign and
    /// vote only for it.
    pub forced_master: Option<NodeId>,
    /// Override of the number of voters (master included) that makes a
    /// quorum. Dangerous: anything below a majority allows split brain.
    pub quorum: Option<usize>,
    /// Seed of the core's PRNG (election timeouts). Mixed with the node id.
    pub seed: u64,
    /// Deliberate bug to exhibit (tests only).
    #[cfg(feature = "broken")]
    pub broken: Option<Broken>,
}

/// A configuration that cannot run, naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("config: {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field,
        reason: reason.into(),
    }
}

impl Config {
    /// A config with the default periods and limits for node `id` of a
    /// cluster of `voters` (no learners, no preference, majority quorum).
    pub fn new(id: NodeId, voters: Vec<NodeId>) -> Config {
        Config {
            id,
            voters,
            learners: Vec::new(),
            witnesses: Vec::new(),
            election_timeout_min: Duration::from_millis(1_000),
            election_timeout_max: Duration::from_millis(2_000),
            heartbeat_interval: Duration::from_millis(100),
            commit_announce_delay: Duration::from_millis(1),
            lease_period: Duration::from_millis(1_000),
            max_clock_drift: Duration::from_millis(100),
            max_inflight_appends: 8,
            max_append_bytes: 1 << 20,
            max_entry_bytes: 8 << 20,
            max_uncommitted_entries: 10_000,
            snapshot_timeout: Duration::from_secs(60),
            preferred_masters: Vec::new(),
            forced_master: None,
            quorum: None,
            seed: 0,
            #[cfg(feature = "broken")]
            broken: None,
        }
    }

    /// Voters needed for a quorum (the override, or a majority).
    pub fn quorum_size(&self) -> usize {
        self.quorum.unwrap_or(self.voters.len() / 2 + 1)
    }

    /// How long a node that cannot vouch for its state waits, from its
    /// start, before it asks the other voters for their terms: by then every
    /// election its earlier incarnation may have voted in is over (a
    /// candidate counts votes for at most `election_timeout_max` of its own
    /// clock) and every lease it may have granted has run out. The longer of
    /// the two periods, stretched for clock-rate drift (rates within
    /// `max_clock_drift / (2 lease_period)` of real time, as the lease
    /// argument assumes): `period * (2L + drift) / (2L - drift)`, rounded up.
    pub fn recovery_wait(&self) -> Duration {
        let period = self.election_timeout_max.max(self.lease_period).as_nanos();
        let two_lease = 2 * self.lease_period.as_nanos();
        let drift = self.max_clock_drift.as_nanos();
        // validate(): drift < lease_period, so the divisor is above L.
        let divisor = two_lease.saturating_sub(drift).max(1);
        let nanos = (period * (two_lease + drift)).div_ceil(divisor);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Answers from other voters (trusted ones, given after
    /// [`Config::recovery_wait`]) a recovering node needs before it knows a
    /// term at least as high as any its earlier incarnation took part in:
    /// enough to meet every quorum's other members (`voters - quorum + 1`),
    /// and never more than there are other voters.
    pub fn recovery_answers_needed(&self) -> usize {
        let voters = self.voters.len();
        (voters + 1)
            .saturating_sub(self.quorum_size())
            .min(voters.saturating_sub(1))
    }

    /// Checks every field; the first problem is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.voters.is_empty() || self.voters.len() > MAX_VOTERS {
            return Err(invalid(
                "voters",
                format!("{} voters, need 1 to {MAX_VOTERS}", self.voters.len()),
            ));
        }
        if self.learners.len() > MAX_LEARNERS {
            return Err(invalid(
                "learners",
                format!("{} learners, at most {MAX_LEARNERS}", self.learners.len()),
            ));
        }
        let mut members: Vec<NodeId> = self.voters.iter().chain(&self.learners).copied().collect();
        members.sort();
        if members.windows(2).any(|w| w[0] == w[1]) {
            return Err(invalid(
                "learners",
                "a node is listed twice among voters and learners",
            ));
        }
        if !members.contains(&self.id) {
            return Err(invalid(
                "id",
                format!("{} is neither a voter nor a learner", self.id),
            ));
        }
        if self.election_timeout_min.is_zero()
            || self.election_timeout_min >= self.election_timeout_max
        {
            return Err(invalid(
                "election_timeout_min",
                "must be positive and below election_timeout_max",
            ));
        }
        if self.heartbeat_interval.is_zero() || self.heartbeat_interval >= self.election_timeout_min
        {
            return Err(invalid(
                "heartbeat_interval",
                "must be positive and below election_timeout_min",
            ));
        }
        if self.commit_announce_delay >= self.heartbeat_interval {
            return Err(invalid(
                "commit_announce_delay",
                "must be below heartbeat_interval",
            ));
        }
        if self.max_clock_drift >= self.lease_period {
            return Err(invalid("max_clock_drift", "must be below lease_period"));
        }
        if self.heartbeat_interval >= self.lease_period - self.max_clock_drift {
            return Err(invalid(
                "heartbeat_interval",
                "must be below lease_period - max_clock_drift, or the lease never holds",
            ));
        }
        if self.max_inflight_appends == 0 || self.max_inflight_appends > 1024 {
            return Err(invalid("max_inflight_appends", "must be 1 to 1024"));
        }
        if self.max_append_bytes == 0 {
            return Err(invalid("max_append_bytes", "must be positive"));
        }
        if self.max_entry_bytes == 0 || self.max_entry_bytes > u64::from(u32::MAX) {
            return Err(invalid("max_entry_bytes", "must be 1 to 4 GiB - 1"));
        }
        if self.max_uncommitted_entries == 0 {
            return Err(invalid("max_uncommitted_entries", "must be positive"));
        }
        if self.snapshot_timeout.is_zero() {
            return Err(invalid("snapshot_timeout", "must be positive"));
        }
        for w in &self.witnesses {
            if !self.voters.contains(w) {
                return Err(invalid("witnesses", format!("{w} is not a voter")));
            }
        }
        if self.voters.iter().all(|v| self.witnesses.contains(v)) {
            return Err(invalid(
                "witnesses",
                "every voter is a witness: no node could ever be master",
            ));
        }
        for p in &self.preferred_masters {
            if !self.voters.contains(p) {
                return Err(invalid("preferred_masters", format!("{p} is not a voter")));
            }
            if self.witnesses.contains(p) {
                return Err(invalid(
                    "preferred_masters",
                    format!("{p} is a witness, which never becomes master"),
                ));
            }
        }
        if let Some(f) = self.forced_master {
            if !self.voters.contains(&f) {
                return Err(invalid("forced_master", format!("{f} is not a voter")));
            }
            if self.witnesses.contains(&f) {
                return Err(invalid(
                    "forced_master",
                    format!("{f} is a witness, which never becomes master"),
                ));
            }
        }
        if let Some(q) = self.quorum {
            if q == 0 || q > self.voters.len() {
                return Err(invalid(
                    "quorum",
                    format!("{q} is not between 1 and {} voters", self.voters.len()),
                ));
            }
        }
        Ok(())
    }
}
