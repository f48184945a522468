//! Recovery: a node that lost its disk, or cannot vouch for what it
//! promised, earns its vote back; and the master side of it (a peer that
//! comes back with a new incarnation is reset; a recovering peer counts
//! toward neither a commit nor the lease).
//!
//! # The argument
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
//! answers asked after the recovery wait (below), moves to the highest term
//! `T` answered and counts its vote in `T` as spent: no election it may have
//! voted in can still be won, none it voted in was won by another node (the
//! winner's barrier would be in that winner's log), and one *it* won (its
//! barrier wiped with it) was of a term at most `T` (the voters that elected
//! it made that term durable), in which it will not vote again, so no other
//! node wins that term either: the other `q - 1` voters of the old quorum
//! voted already, and the `v - q` left are not a quorum. Why asking *every*
//! voter is right: a promise this node made went to a candidate or master of
//! some term `t >= 1`, which made `t` durable before asking, and so answers
//! with a term above 0 (or a log) unless it lost its own disk too, in which
//! case the election or mastership that used the promise is gone with it. A
//! cluster of nodes that were all wiped is a new cluster; its data is gone
//! either way.
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

use super::*;
use crate::types::Standing;

/// Most incarnations remembered as replaced, per peer.
const RETIRED_INCARNATIONS_MAX: usize = 8;

/// A voter's answer to a recovery query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Answer {
    term: u64,
    standing: Standing,
    last_index: u64,
    /// When the question was asked (the asker's local time).
    asked_at: Time,
}

/// How far a node that is not `Trusted` got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Recovery {
    Trusted,
    /// Nothing persisted: is the cluster new, or did this node lose its disk?
    Unknown {
        answers: BTreeMap<NodeId, Answer>,
        next_query: Time,
    },
    /// Catching up before it votes and counts again.
    Recovering {
        /// Answers to queries asked after the recovery wait.
        answers: BTreeMap<NodeId, Answer>,
        next_query: Time,
        /// A term at least as high as any this node's earlier incarnation
        /// took part in, once enough voters answered. Its vote in this
        /// term counts as spent.
        floor: Option<u64>,
        /// `(term, commit)`: the commit index a master of `term` (at least
        /// `floor`) announced after it knew this node's new incarnation.
        target: Option<(u64, u64)>,
    },
}

impl Recovery {
    pub(super) fn standing(&self) -> Standing {
        match self {
            Recovery::Trusted => Standing::Trusted,
            Recovery::Unknown { .. } => Standing::Unknown,
            Recovery::Recovering { .. } => Standing::Recovering,
        }
    }

    pub(super) fn recovering(now: Time) -> Recovery {
        Recovery::Recovering {
            answers: BTreeMap::new(),
            next_query: now,
            floor: None,
            target: None,
        }
    }
}

impl Core {
    /// This node's standing: may it vote and count?
    pub fn standing(&self) -> Standing {
        self.recovery.standing()
    }

    /// This node's incarnation (see [`HardState::incarnation`]).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    pub(super) fn is_trusted(&self) -> bool {
        self.recovery == Recovery::Trusted
    }

    /// The standing a starting node takes from what it found on disk.
    pub(super) fn starting_recovery(
        config: &Config,
        hard_state: &HardState,
        log_is_empty: bool,
        now: Time,
    ) -> Recovery {
        #[cfg(feature = "broken")]
        if config.broken == Some(crate::config::Broken::WipedNodeVotes) {
            return Recovery::Trusted;
        }
        let standing = match hard_state.standing {
            Standing::Unknown if !log_is_empty => Standing::Recovering,
            s => s,
        };
        let others = config.voters.iter().filter(|v| **v != config.id).count();
        let is_voter = config.voters.contains(&config.id);
        match standing {
            Standing::Trusted => Recovery::Trusted,
            // A lone voter has nobody whose promises could depend on its
            // own: what it holds is the cluster's state.
            _ if is_voter && others == 0 => Recovery::Trusted,
            // A learner never votes or counts: it only has to catch up,
            // which the master's reset on its new incarnation takes care of.
            _ if !is_voter => Recovery::Recovering {
                answers: BTreeMap::new(),
                next_query: now,
                floor: Some(hard_state.term),
                target: None,
            },
            Standing::Unknown => Recovery::Unknown {
                answers: BTreeMap::new(),
                next_query: now,
            },
            Standing::Recovering => Recovery::recovering(now.plus(config.recovery_wait())),
        }
    }

    /// Asks the other voters, when a question is due: at once and every
    /// heartbeat interval while `Unknown`; from the recovery wait on while
    /// `Recovering` without a floor.
    pub(super) fn recovery_tick(&mut self) {
        let now = self.now;
        let period = self.config.heartbeat_interval;
        let due = match &mut self.recovery {
            Recovery::Unknown { next_query, .. }
            | Recovery::Recovering {
                next_query,
                floor: None,
                ..
            } if now >= *next_query => {
                *next_query = now.plus(period);
                true
            }
            _ => false,
        };
        if !due {
            return;
        }
        let me = self.config.id;
        let voters: Vec<NodeId> = self.config.voters.clone();
        for v in voters.into_iter().filter(|v| *v != me) {
            self.send(v, Body::RecoveryQuery { asked_at: now });
        }
    }

    pub(super) fn on_recovery_query(&mut self, from: NodeId, asked_at: Time, log: &dyn LogRead) {
        let standing = self.standing();
        let last_index = self.pending.last_index(log);
        self.send(
            from,
            Body::RecoveryReply {
                asked_at,
                standing,
                last_index,
            },
        );
    }

    pub(super) fn on_recovery_reply(
        &mut self,
        from: NodeId,
        term: u64,
        asked_at: Time,
        standing: Standing,
        last_index: u64,
        log: &dyn LogRead,
    ) {
        if !self.is_voter_id(from) || asked_at > self.now {
            return;
        }
        let answer = Answer {
            term,
            standing,
            last_index,
            asked_at,
        };
        let wait_over = self.started_at.plus(self.config.recovery_wait());
        match &mut self.recovery {
            Recovery::Trusted => {}
            Recovery::Unknown { answers, .. } => {
                if standing == Standing::Recovering || last_index > 0 {
                    // Someone has a log, or knows the cluster has one: this
                    // node may have promised something it no longer holds.
                    tracing::info!(node = %self.config.id, peer = %from, n = term, i = last_index,
                        "nothing persisted here, but the cluster has a history: this node lost its disk (or is new to a running cluster) and recovers before it votes");
                    self.recovery = Recovery::recovering(wait_over);
                    self.hard_state_dirty = true;
                    return;
                }
                answers.insert(from, answer);
                let others = self.config.voters.len() - 1;
                if answers.len() < others {
                    return;
                }
                // Every other voter has an empty log and none is recovering.
                // All at term 0: nobody ever campaigned, so this node never
                // promised anything. Some term above 0 but no log anywhere:
                // elections were tried but none was won (a winner appends
                // its barrier); asked after the recovery wait, no election
                // this node may have voted in can still be won.
                let highest_term = answers.values().map(|a| a.term).max().unwrap_or(0);
                let all_after_wait = answers.values().all(|a| a.asked_at >= wait_over);
                if highest_term == 0 || all_after_wait {
                    tracing::info!(node = %self.config.id, n = highest_term, "every voter is empty: a new cluster; this node votes");
                    self.recovery = Recovery::Trusted;
                    self.hard_state_dirty = true;
                    if highest_term == 0 && self.term == 0 {
                        // Never acknowledged a master: no lease to guard.
                        self.lease_guard_until = self.now;
                    } else {
                        // An election this node's earlier incarnation won
                        // (its barrier wiped with it) or voted in was of a
                        // term at most this one: its vote there is spent.
                        self.spend_vote_up_to(highest_term, log);
                    }
                }
            }
            Recovery::Recovering {
                answers,
                floor: None,
                ..
            } => {
                if asked_at < wait_over {
                    return;
                }
                answers.insert(from, answer);
                let trusted = answers
                    .values()
                    .filter(|a| a.standing == Standing::Trusted)
                    .count();
                if trusted < self.config.recovery_answers_needed() {
                    return;
                }
                let floor = answers.values().map(|a| a.term).max().unwrap_or(0);
                self.set_recovery_floor(floor, log);
            }
            Recovery::Recovering { .. } => {}
        }
    }

    /// Moves to term `term` (if it is ahead) and counts the vote in the
    /// current term as spent: the earlier incarnation may have voted (or
    /// won) in any term up to `term`.
    fn spend_vote_up_to(&mut self, term: u64, log: &dyn LogRead) {
        if term > self.term {
            self.become_follower(term, None, log);
        }
        if self.voted_for.is_none() {
            self.voted_for = Some(self.config.id);
        }
        self.hard_state_dirty = true;
    }

    /// Enough voters answered: `floor` is at least every term this node's
    /// earlier incarnation voted or acknowledged in.
    fn set_recovery_floor(&mut self, floor: u64, log: &dyn LogRead) {
        self.spend_vote_up_to(floor, log);
        let floor = floor.max(self.term);
        tracing::info!(node = %self.config.id, n = floor,
            "recovering: the voters' term is {floor}; catching up from a master of term {floor} or later before voting again");
        if let Recovery::Recovering {
            floor: f, target, ..
        } = &mut self.recovery
        {
            *f = Some(floor);
            *target = None;
        }
    }

    /// On an append or heartbeat of the current term's master: an unknown
    /// node learns the cluster has a history; a recovering one takes its
    /// catch-up target from a master that echoes its new incarnation.
    pub(super) fn recovery_heard_master(&mut self, slave_incarnation: u64, commit: u64) {
        let term = self.term;
        let me = self.config.id;
        let wait_over = self.started_at.plus(self.config.recovery_wait());
        match &mut self.recovery {
            Recovery::Trusted => {}
            Recovery::Unknown { .. } => {
                tracing::info!(node = %me, n = term,
                    "nothing persisted here, but a master exists: this node lost its disk (or is new to a running cluster) and recovers before it votes");
                self.recovery = Recovery::recovering(wait_over);
                self.hard_state_dirty = true;
            }
            Recovery::Recovering {
                floor: Some(floor),
                target,
                ..
            } => {
                let knows_me = slave_incarnation == self.incarnation;
                if knows_me && term >= *floor && target.is_none_or(|(t, _)| t != term) {
                    tracing::info!(node = %me, n = term, target = commit, "recovering: catching up to the master's commit index {commit}");
                    *target = Some((term, commit));
                }
            }
            Recovery::Recovering { .. } => {}
        }
    }

    /// A recovering node that holds, durably and verified, every entry the
    /// master had committed when it learnt of this incarnation, and an
    /// entry of the master's own term (so everything committed before it),
    /// votes and counts again.
    pub(super) fn maybe_finish_recovery(&mut self, log: &dyn LogRead) -> Result<(), StepError> {
        let Recovery::Recovering {
            floor: Some(_),
            target: Some((term, commit)),
            ..
        } = self.recovery
        else {
            return Ok(());
        };
        if term != self.term || self.master.is_none() || !self.is_voter {
            return Ok(());
        }
        let held = self.commit_index.min(self.synced_index);
        if held < commit || held == 0 {
            return Ok(());
        }
        match self.pending.term(log, held) {
            Ok(t) if t == self.term => {}
            Ok(_) => return Ok(()),
            Err(LogError::Compacted { .. }) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(node = %self.config.id, n = self.term, i = held,
            "recovered: caught up to {held} with the master of term {}; this node votes and counts again", self.term);
        self.recovery = Recovery::Trusted;
        self.hard_state_dirty = true;
        Ok(())
    }

    // ----- master side ---------------------------------------------------

    /// A response from `from`'s incarnation `incarnation`: should the
    /// master take it into account? A peer's progress follows one
    /// incarnation per term; a *recovering* message from another one means
    /// the peer came back without what it acknowledged: its progress is
    /// reset and the old incarnation retired. A message from a retired
    /// incarnation, or a non-recovering one from an incarnation the
    /// progress does not follow, is stale and ignored.
    pub(super) fn admit_response(
        &mut self,
        from: NodeId,
        incarnation: u64,
        recovering: bool,
        log: &dyn LogRead,
    ) -> bool {
        if self.role != Role::Master {
            return true;
        }
        if self
            .retired_incarnations
            .get(&from)
            .is_some_and(|r| r.contains(&incarnation))
        {
            return false;
        }
        let last = self.pending.last_index(log);
        let Some(pr) = self.progress.get_mut(&from) else {
            return true;
        };
        match pr.incarnation {
            None => pr.incarnation = Some(incarnation),
            Some(known) if known == incarnation => {}
            Some(known) => {
                if !recovering {
                    return false;
                }
                tracing::info!(node = %self.config.id, n = self.term, peer = %from,
                    "{from} came back with a new incarnation and no promise to keep (its disk was wiped?): replicating to it from scratch");
                *pr = Progress::new(last + 1);
                pr.incarnation = Some(incarnation);
                let retired = self.retired_incarnations.entry(from).or_default();
                if retired.len() >= RETIRED_INCARNATIONS_MAX {
                    retired.pop_front();
                }
                retired.push_back(known);
                if self.transfer.is_some_and(|t| t.target == from) {
                    // It cannot take over now; the hand-over times out.
                    tracing::info!(node = %self.config.id, target = %from, "the hand-over target is recovering");
                }
            }
        }
        if let Some(pr) = self.progress.get_mut(&from) {
            pr.recovering = recovering;
        }
        true
    }

    /// The incarnation the master knows `peer` by in this term (0: none).
    pub(super) fn known_incarnation(&self, peer: NodeId) -> u64 {
        self.progress
            .get(&peer)
            .and_then(|p| p.incarnation)
            .unwrap_or(0)
    }
}
