//! Elections: randomized timeouts, pre-vote (§9.6), votes only for an
//! up-to-date candidate (§3.6.1), at most one per term (§3.4), and the
//! candidate side of a hand-over (§3.10). Lease guards are honoured here.

use super::*;

impl Core {
    // ----- elections (§3.4, §9.6 pre-vote, §3.10 transfer) ------------------

    pub(super) fn start_pre_vote(&mut self, log: &dyn LogRead) -> Result<(), StepError> {
        assert!(self.is_voter && self.forced_allows(self.config.id));
        let changed = self.role != Role::PreCandidate || self.master.is_some();
        self.role = Role::PreCandidate;
        self.master = None;
        self.votes.clear();
        self.votes.insert(self.config.id, true);
        self.reset_election_deadline();
        if changed {
            self.record_role_change(log);
        }
        let (last_index, last_term) = self.last_index_term(log)?;
        let me = self.config.id;
        let voters: Vec<NodeId> = self.config.voters.clone();
        for v in voters.into_iter().filter(|v| *v != me) {
            self.send_with_term(
                v,
                self.term + 1,
                Body::PreVote {
                    last_index,
                    last_term,
                },
            );
        }
        if self.tally().0 >= self.quorum {
            self.start_election(false, log)?;
        }
        Ok(())
    }

    pub(super) fn start_election(
        &mut self,
        transfer: bool,
        log: &dyn LogRead,
    ) -> Result<(), StepError> {
        assert!(self.is_voter && self.forced_allows(self.config.id));
        // Terms from peers are at most MAX_TERM; ours grow by one per election.
        assert!(self.term < u64::MAX - 1, "term exhausted");
        let term = self.term + 1;
        self.set_term(term);
        if !transfer {
            self.handed_over_by = None;
        }
        self.voted_for = Some(self.config.id);
        self.hard_state_dirty = true;
        self.role = Role::Candidate;
        self.master = None;
        self.votes.clear();
        self.votes.insert(self.config.id, true);
        self.reset_election_deadline();
        self.record_role_change(log);
        let (last_index, last_term) = self.last_index_term(log)?;
        let me = self.config.id;
        let voters: Vec<NodeId> = self.config.voters.clone();
        for v in voters.into_iter().filter(|v| *v != me) {
            self.send(
                v,
                Body::Vote {
                    last_index,
                    last_term,
                    transfer,
                },
            );
        }
        if self.tally().0 >= self.quorum {
            self.become_master(log)?;
        }
        Ok(())
    }

    pub(super) fn become_master(&mut self, log: &dyn LogRead) -> Result<(), StepError> {
        assert_eq!(self.role, Role::Candidate);
        assert_eq!(
            self.voted_for,
            Some(self.config.id),
            "a master voted for itself"
        );
        assert!(
            self.forced_allows(self.config.id),
            "only the forced master campaigns"
        );
        self.role = Role::Master;
        self.master = Some(self.config.id);
        self.became_master_at = self.now;
        self.transfer = None;
        // A witness never holds the lease: it serves no read, takes no
        // proposal, and hands mastership on (`maybe_hand_over`).
        self.lease_forfeited = self.is_witness() && !self.witness_serves();
        self.votes.clear();
        let last = self.pending.last_index(log);
        self.progress.clear();
        let members: Vec<NodeId> = self
            .config
            .voters
            .iter()
            .chain(&self.config.learners)
            .copied()
            .collect();
        for peer in members.into_iter().filter(|p| *p != self.config.id) {
            self.progress.insert(peer, Progress::new(last + 1));
        }
        // §3.6.2 / §6.4: a barrier entry of the new term, so that earlier
        // entries commit with it and reads can rely on the commit index.
        self.pending.append(
            log,
            Entry {
                index: last + 1,
                term: self.term,
                payload: Bytes::new(),
            },
        );
        self.term_start_index = last + 1;
        self.heartbeat_due = self.now.plus(self.config.heartbeat_interval);
        self.record_role_change(log);
        self.maybe_commit(log)?;
        Ok(())
    }

    pub(super) fn on_pre_vote(
        &mut self,
        msg: &Message,
        last_index: u64,
        last_term: u64,
        log: &dyn LogRead,
    ) -> Result<(), StepError> {
        if !self.is_voter {
            return Ok(());
        }
        let granted = msg.term > self.term
            && self.is_trusted()
            && self.forced_allows(msg.from)
            && !self.in_lease()
            && self.candidate_up_to_date(last_index, last_term, log)?;
        let term = if granted { msg.term } else { self.term };
        self.send_with_term(msg.from, term, Body::PreVoteResponse { granted });
        Ok(())
    }

    pub(super) fn on_pre_vote_response(
        &mut self,
        msg: &Message,
        granted: bool,
        log: &dyn LogRead,
    ) -> Result<(), StepError> {
        if self.role != Role::PreCandidate {
            return Ok(());
        }
        if granted {
            if msg.term != self.term + 1 {
                return Ok(()); // from an earlier round
            }
            self.votes.insert(msg.from, true);
        } else if msg.term > self.term {
            self.become_follower(msg.term, None, log);
            return Ok(());
        } else {
            self.votes.insert(msg.from, false);
        }
        let (granted, rejected) = self.tally();
        if granted >= self.quorum {
            self.start_election(false, log)?;
        } else if rejected > self.config.voters.len() - self.quorum {
            self.become_follower(self.term, None, log);
        }
        Ok(())
    }

    pub(super) fn on_vote(
        &mut self,
        msg: &Message,
        last_index: u64,
        last_term: u64,
        transfer: bool,
        log: &dyn LogRead,
    ) -> Result<(), StepError> {
        if !self.is_voter {
            return Ok(());
        }
        if self.role == Role::Candidate && msg.from != self.config.id && !transfer {
            // Another candidate of this term (terms were matched before):
            // a split vote, lost by both unless a third voter answers.
            self.back_off_split_vote();
        }
        // The guard holds in every term: a node may have moved to this term
        // (e.g. from a stray response) while a lease it granted still runs.
        let guarded = !transfer && self.in_lease() && self.voted_for != Some(msg.from);
        let free = !guarded
            && self.voted_for.is_none_or(|v| v == msg.from)
            && self.master.is_none_or(|m| m == msg.from)
            && self.role != Role::Master;
        let granted = free
            && self.is_trusted()
            && self.forced_allows(msg.from)
            && self.candidate_up_to_date(last_index, last_term, log)?;
        if granted {
            if self.role != Role::Slave {
                self.become_follower(self.term, None, log);
            }
            self.voted_for = Some(msg.from);
            self.hard_state_dirty = true;
            self.reset_election_deadline();
        }
        self.send(msg.from, Body::VoteResponse { granted });
        Ok(())
    }

    /// Two candidates of one term split the vote when each voted for
    /// itself before the other's request came (their timeouts fired within
    /// a round trip, or both were stalled past them and woke together). A
    /// whole election timeout to the next try would double the time
    /// without a master; each of them tries again after a random back-off
    /// of at most a quarter of the shortest election timeout instead, so
    /// that the first one's pre-vote and vote reach the other before its
    /// own back-off ends. Only the deadline moves (earlier, never later):
    /// liveness, not safety. A witness keeps its longer timeout.
    fn back_off_split_vote(&mut self) {
        if self.is_witness() {
            return;
        }
        let quarter = duration_nanos(self.config.election_timeout_min) / 4;
        let back_off = self.rng.in_range(0, quarter);
        let retry_at = Time(self.now.0.saturating_add(back_off));
        if retry_at < self.election_deadline {
            let back_off = std::time::Duration::from_nanos(back_off);
            tracing::info!(node = %self.config.id, n = self.term, "split vote: campaigning again in {back_off:.0?}");
            self.election_deadline = retry_at;
        }
    }

    pub(super) fn on_vote_response(
        &mut self,
        from: NodeId,
        granted: bool,
        log: &dyn LogRead,
    ) -> Result<(), StepError> {
        if self.role != Role::Candidate {
            return Ok(());
        }
        self.votes.insert(from, granted);
        let (granted, rejected) = self.tally();
        if granted >= self.quorum {
            self.become_master(log)?;
        } else if rejected > self.config.voters.len() - self.quorum {
            self.become_follower(self.term, None, log);
        }
        Ok(())
    }

    pub(super) fn on_timeout_now(
        &mut self,
        from: NodeId,
        log: &dyn LogRead,
    ) -> Result<(), StepError> {
        if self.role == Role::Slave
            && self.master == Some(from)
            && self.is_trusted()
            && self.may_be_master(self.config.id)
        {
            tracing::info!(node = %self.config.id, n = self.term, master = %from, "mastership handed over: campaigning");
            self.start_election(true, log)?;
            self.handed_over_by = Some(from);
        }
        Ok(())
    }
}
