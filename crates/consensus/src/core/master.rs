//! The master side: heartbeats, check-quorum (§6.2), the lease (§6.4.1),
//! hand-over to a preferred master (§3.10), flow control (Probe / Replicate /
//! Snapshot), commit by quorum of the current term only (§3.6.2).

use super::*;

impl Core {
    // ----- master ----------------------------------------------------------

    /// §6.2 check-quorum: a master without a quorum's recent
    /// acknowledgement (its lease lapsed), past the grace of a lease period
    /// from taking office, steps down. Run at every input (`enter`).
    pub(super) fn step_down_if_quorum_lost(&mut self, log: &dyn LogRead) {
        let now = self.now;
        if self.role == Role::Master
            && !self.lease_holds(now)
            && now >= self.became_master_at.plus(self.config.lease_period)
        {
            tracing::warn!(node = %self.config.id, n = self.term, "master lost its quorum: stepping down");
            self.become_follower(self.term, None, log);
        }
    }

    pub(super) fn tick_master(&mut self, log: &dyn LogRead) -> Result<(), StepError> {
        let now = self.now;
        assert_eq!(self.role, Role::Master, "enter() ran check-quorum first");
        if let Some(t) = self.transfer {
            if now >= t.deadline {
                tracing::warn!(node = %self.config.id, n = self.term, target = %t.target, "mastership hand-over timed out: stepping down");
                self.become_follower(self.term, None, log);
                return Ok(());
            }
        }
        if now >= self.heartbeat_due {
            for peer in self.progress.keys().copied().collect::<Vec<_>>() {
                self.send_heartbeat(peer);
            }
            self.heartbeat_due = now.plus(self.config.heartbeat_interval);
        }
        for pr in self.progress.values_mut() {
            if let FlowState::Snapshot { deadline } = pr.state {
                if now >= deadline {
                    pr.become_probe();
                }
            }
        }
        self.maybe_hand_over(log);
        Ok(())
    }

    /// Sends the commit index to the slaves no message has told it yet, once
    /// `commit_announce_due` has come (and forgets it off master).
    pub(super) fn announce_commit_if_due(&mut self) {
        if self.role != Role::Master {
            self.commit_announce_due = None;
            return;
        }
        if self.commit_announce_due.is_none_or(|due| self.now < due) {
            return;
        }
        self.commit_announce_due = None;
        let behind: Vec<NodeId> = self
            .progress
            .iter()
            .filter(|(_, pr)| pr.commit_sent < self.commit_index)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in behind {
            self.send_heartbeat(peer);
        }
    }

    pub(super) fn send_heartbeat(&mut self, peer: NodeId) {
        let commit = self.commit_index;
        let sent_at = self.now;
        let slave_incarnation = self.known_incarnation(peer);
        self.send(
            peer,
            Body::Heartbeat {
                commit,
                sent_at,
                slave_incarnation,
            },
        );
    }

    /// Preferred master: hand mastership to the most preferred voter that is
    /// caught up and responsive, if it ranks above this node, unless that
    /// voter handed mastership to this node in this term (it was asked to
    /// drop it: it does not get it back at once).
    pub(super) fn maybe_hand_over(&mut self, log: &dyn LogRead) {
        if self.transfer.is_some()
            || self.config.forced_master.is_some()
            || self.commit_index < self.term_start_index
        {
            return;
        }
        if self.is_witness() && !self.witness_serves() {
            self.witness_hands_over(log);
            return;
        }
        let rank = self
            .config
            .preferred_masters
            .iter()
            .position(|p| *p == self.config.id)
            .unwrap_or(self.config.preferred_masters.len());
        let last = self.pending.last_index(log);
        let period = self
            .config
            .lease_period
            .saturating_sub(self.config.max_clock_drift);
        let target = self.config.preferred_masters[..rank]
            .iter()
            .copied()
            .find(|p| {
                self.handed_over_by != Some(*p)
                    && self.may_be_master(*p)
                    && self.progress.get(p).is_some_and(|pr| {
                        !pr.recovering
                            && pr.match_index >= self.commit_index.min(last)
                            && pr.acked_sent_at.is_some_and(|t| self.now < t.plus(period))
                    })
            });
        if let Some(target) = target {
            self.transfer_to(target, log);
        }
    }

    /// A witness master (see the core's docs, "Witnesses"): once its term's
    /// first entry committed (a quorum holds every entry it had), it hands
    /// mastership to the responsive full voter furthest along; the
    /// transfer sends that voter what it lacks before `TimeoutNow`.
    fn witness_hands_over(&mut self, log: &dyn LogRead) {
        let period = self
            .config
            .lease_period
            .saturating_sub(self.config.max_clock_drift);
        if let Some(target) = self.furthest_responsive_candidate(period) {
            self.transfer_to(target, log);
        }
    }

    /// The peer a hand-over goes to: one that may be master, is not
    /// recovering, acknowledged a message sent less than `period` ago, and
    /// has the highest match index (the lowest id among equals).
    fn furthest_responsive_candidate(&self, period: std::time::Duration) -> Option<NodeId> {
        self.progress
            .iter()
            .filter(|(id, pr)| {
                self.may_be_master(**id)
                    && !pr.recovering
                    && pr.acked_sent_at.is_some_and(|t| self.now < t.plus(period))
            })
            .max_by_key(|(id, pr)| (pr.match_index, std::cmp::Reverse(**id)))
            .map(|(id, _)| *id)
    }

    /// §3.10 leadership transfer. The lease is forfeited first, for the rest
    /// of this term: the target's election may bypass the lease guards.
    /// Proposals are refused from now on; `TimeoutNow` goes once the target
    /// has caught up.
    pub(super) fn transfer_to(&mut self, target: NodeId, log: &dyn LogRead) {
        tracing::info!(node = %self.config.id, n = self.term, target = %target, "handing mastership over");
        self.lease_forfeited = true;
        self.transfer = Some(Transfer {
            target,
            deadline: self.now.plus(self.config.election_timeout_max),
            timeout_now_sent: false,
        });
        self.maybe_send_timeout_now(log);
    }

    pub(super) fn maybe_send_timeout_now(&mut self, log: &dyn LogRead) {
        let Some(t) = self.transfer else { return };
        if t.timeout_now_sent {
            return;
        }
        let last = self.pending.last_index(log);
        if self
            .progress
            .get(&t.target)
            .is_some_and(|p| p.match_index == last)
        {
            assert!(self.lease_forfeited, "lease forfeited before TimeoutNow");
            self.send(t.target, Body::TimeoutNow);
            self.transfer = Some(Transfer {
                timeout_now_sent: true,
                ..t
            });
        }
    }

    /// On the master: hand mastership to the voter `target` (e.g.
    /// `--drop-master`): the lease is forfeited and proposals refused at once,
    /// `TimeoutNow` goes when `target` has caught up; if it has not won within
    /// `election_timeout_max`, this master steps down. Returns false (and does
    /// nothing) if this node is not master, already handing over, or `target`
    /// is not another voter.
    pub fn hand_over_to(
        &mut self,
        target: NodeId,
        now: Time,
        log: &dyn LogRead,
    ) -> Result<bool, StepError> {
        self.enter(now, log)?;
        if self.role != Role::Master
            || self.transfer.is_some()
            || !self.may_be_master(target)
            || target == self.config.id
        {
            return Ok(false);
        }
        if self.progress.get(&target).is_none_or(|p| p.recovering) {
            return Ok(false);
        }
        self.transfer_to(target, log);
        self.check_invariants();
        Ok(true)
    }

    /// On the master: the snapshot for `peer` could not be sent or installed
    /// (the caller's transfer failed). The peer is probed again at once, which
    /// asks for a new snapshot if it still needs one. Without this report the
    /// master retries after `snapshot_timeout`.
    pub fn snapshot_failed(
        &mut self,
        peer: NodeId,
        now: Time,
        log: &dyn LogRead,
    ) -> Result<(), StepError> {
        self.probe_after_snapshot(peer, now, log)
    }

    /// On the master: `peer` holds the committed state at `index` (it
    /// installed the snapshot it was sent, or had come that far already).
    /// It is probed at once right after `index` (its answer shows where its
    /// log stands; a new snapshot is asked for if this log was collapsed
    /// past `index` meanwhile), instead of after `snapshot_timeout` from
    /// where it was.
    pub fn snapshot_sent(
        &mut self,
        peer: NodeId,
        index: u64,
        now: Time,
        log: &dyn LogRead,
    ) -> Result<(), StepError> {
        self.enter(now, log)?;
        if self.role != Role::Master {
            return Ok(());
        }
        if index > self.commit_index {
            return Err(StepError::InvalidEvent {
                reason: format!(
                    "a snapshot at {index} past the commit index {}",
                    self.commit_index
                ),
            });
        }
        if let Some(pr) = self.progress.get_mut(&peer) {
            if matches!(pr.state, FlowState::Snapshot { .. }) {
                pr.become_probe();
                pr.next_index = pr.next_index.max(index + 1);
            }
        }
        self.check_invariants();
        Ok(())
    }

    fn probe_after_snapshot(
        &mut self,
        peer: NodeId,
        now: Time,
        log: &dyn LogRead,
    ) -> Result<(), StepError> {
        self.enter(now, log)?;
        if self.role != Role::Master {
            return Ok(());
        }
        if let Some(pr) = self.progress.get_mut(&peer) {
            if matches!(pr.state, FlowState::Snapshot { .. }) {
                pr.become_probe();
            }
        }
        self.check_invariants();
        Ok(())
    }

    /// On the master: `--drop-master`. Hands mastership to the most
    /// caught-up responsive voter (see [`Core::hand_over_to`]). Returns the
    /// chosen node, or `None` if this node is not master, is already handing
    /// over, or no other voter answered within the lease period.
    pub fn drop_master(
        &mut self,
        now: Time,
        log: &dyn LogRead,
    ) -> Result<Option<NodeId>, StepError> {
        self.enter(now, log)?;
        if self.role != Role::Master || self.transfer.is_some() {
            return Ok(None);
        }
        let Some(target) = self.furthest_responsive_candidate(self.config.lease_period) else {
            return Ok(None);
        };
        self.transfer_to(target, log);
        self.check_invariants();
        Ok(Some(target))
    }

    pub(super) fn on_heartbeat_response(
        &mut self,
        from: NodeId,
        sent_at: Time,
        slave_commit: u64,
        last_index: u64,
    ) {
        if self.role != Role::Master {
            return;
        }
        let now = self.now;
        let max_inflight = self.config.max_inflight_appends;
        let heartbeat_interval = self.config.heartbeat_interval;
        let commit_index = self.commit_index;
        let Some(pr) = self.progress.get_mut(&from) else {
            return;
        };
        if sent_at <= now {
            pr.record_ack_sent_at(sent_at);
        }
        if pr.state == FlowState::Replicate
            && (pr.match_index < last_index || slave_commit < commit_index)
        {
            // Acknowledgements may have been lost, or the slave holds entries
            // it has not verified against this term (it restarted after
            // acknowledging them, so its commit is capped): an append (empty
            // if nothing new) makes it verify and acknowledge again.
            pr.empty_append_due = true;
        }
        match pr.state {
            FlowState::Probe { .. } => pr.state = FlowState::Probe { probe_sent: false },
            FlowState::Replicate
                if pr.inflight.len() >= max_inflight
                    && pr
                        .slot_freed_at
                        .is_none_or(|t| now >= t.plus(heartbeat_interval)) =>
            {
                // A lost append would stall a full window: free one slot (at
                // most once per heartbeat interval) so the next append (with a
                // gap, if one was lost) goes out and a rejection sends us back
                // to probing.
                pr.inflight.pop_front();
                pr.slot_freed_at = Some(now);
            }
            _ => {}
        }
    }

    pub(super) fn on_append_response(
        &mut self,
        from: NodeId,
        sent_at: Time,
        result: AppendResult,
        log: &dyn LogRead,
    ) -> Result<(), StepError> {
        if self.role != Role::Master {
            return Ok(());
        }
        let last = self.pending.last_index(log);
        let now = self.now;
        let Some(pr) = self.progress.get_mut(&from) else {
            return Ok(());
        };
        if sent_at <= now {
            pr.record_ack_sent_at(sent_at);
        }
        match result {
            AppendResult::Accepted { match_index } => {
                if match_index > last {
                    return Err(StepError::ProtocolViolation {
                        from,
                        term: self.term,
                        reason: format!(
                            "acknowledged {match_index}, past the master's last index {last}"
                        ),
                    });
                }
                let news = pr.record_match(match_index);
                let behind_base = match_index + 1 < log.first_index();
                let snapshotting = matches!(pr.state, FlowState::Snapshot { .. });
                if pr.state != FlowState::Replicate && !(snapshotting && behind_base) {
                    pr.become_replicate();
                    pr.slot_freed_at = Some(now);
                }
                if news {
                    self.maybe_commit(log)?;
                    self.maybe_send_timeout_now(log);
                }
            }
            AppendResult::Rejected {
                rejected_prev_index,
                hint_index,
                hint_term,
            } => {
                if rejected_prev_index > last {
                    return Err(StepError::ProtocolViolation {
                        from,
                        term: self.term,
                        reason: format!(
                            "rejected prev index {rejected_prev_index}, past the master's last index {last}"
                        ),
                    });
                }
                if rejected_prev_index <= pr.match_index {
                    return Ok(()); // stale
                }
                match pr.state {
                    FlowState::Snapshot { .. } => return Ok(()),
                    FlowState::Probe { .. } if rejected_prev_index + 1 != pr.next_index => {
                        return Ok(())
                    }
                    _ => {}
                }
                let match_index = pr.match_index;
                let mut probe = hint_index.min(rejected_prev_index.saturating_sub(1));
                if hint_term > 0 {
                    // Skip every master entry whose term exceeds the hint's.
                    while probe > match_index {
                        match self.pending.term(log, probe) {
                            Ok(t) if t > hint_term => probe -= 1,
                            Ok(_)
                            | Err(LogError::Compacted { .. })
                            | Err(LogError::Unavailable { .. }) => break,
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                let Some(pr) = self.progress.get_mut(&from) else {
                    return Ok(());
                };
                pr.next_index = (match_index + 1).max(rejected_prev_index.min(probe + 1));
                assert!(pr.next_index <= last + 1, "probe past the log's end");
                pr.become_probe();
            }
        }
        Ok(())
    }

    /// §3.6.2: commit the highest index a quorum of voters holds durably, if
    /// it is of the current term. The master counts itself at its fsynced
    /// index; a recovering voter does not count.
    pub(super) fn maybe_commit(&mut self, log: &dyn LogRead) -> Result<(), StepError> {
        if self.role != Role::Master {
            return Ok(());
        }
        let mut matches: Vec<u64> = self
            .config
            .voters
            .iter()
            .map(|v| {
                if *v == self.config.id {
                    self.synced_index
                } else {
                    self.progress
                        .get(v)
                        .filter(|p| !p.recovering)
                        .map_or(0, |p| p.match_index)
                }
            })
            .collect();
        matches.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&candidate) = matches.get(self.commit_quorum() - 1) else {
            return Ok(());
        };
        if candidate > self.commit_index && self.pending.term(log, candidate)? == self.term {
            tracing::debug!(node = %self.config.id, n = self.term, i = candidate, "committed");
            self.set_commit(candidate);
        }
        Ok(())
    }

    pub(super) fn need_snapshot(&mut self, peer: NodeId) {
        let deadline = self.now.plus(self.config.snapshot_timeout);
        if let Some(pr) = self.progress.get_mut(&peer) {
            pr.inflight.clear();
            pr.state = FlowState::Snapshot { deadline };
        }
        tracing::info!(node = %self.config.id, n = self.term, slave = %peer, "slave needs collapsed entries: sending a snapshot");
        self.snapshots_to_send.push(peer);
    }

    /// Sends what flow control allows to `peer`. Returns true if anything went.
    pub(super) fn send_appends(
        &mut self,
        peer: NodeId,
        log: &dyn LogRead,
    ) -> Result<bool, StepError> {
        let mut sent = false;
        let max_inflight = self.config.max_inflight_appends;
        loop {
            let Some(pr) = self.progress.get(&peer) else {
                return Ok(sent);
            };
            let is_probe = match pr.state {
                FlowState::Snapshot { .. } | FlowState::Probe { probe_sent: true } => {
                    return Ok(sent)
                }
                FlowState::Replicate if pr.inflight.len() >= max_inflight => return Ok(sent),
                FlowState::Replicate => false,
                FlowState::Probe { probe_sent: false } => true,
            };
            let next = pr.next_index;
            let last = self.pending.last_index(log);
            assert!(
                next <= last + 1,
                "next index {next} past the log's end {last}"
            );
            let recovery = !is_probe && next > last;
            if recovery && (sent || !pr.empty_append_due) {
                return Ok(sent);
            }
            let prev_index = next - 1;
            let prev_term = match self.pending.term(log, prev_index) {
                Ok(t) => t,
                Err(LogError::Compacted { .. }) => {
                    self.need_snapshot(peer);
                    return Ok(sent);
                }
                Err(e) => return Err(e.into()),
            };
            let entries = if next <= last {
                match self
                    .pending
                    .entries(log, next, last, self.config.max_append_bytes)
                {
                    Ok(v) => v,
                    Err(LogError::Compacted { .. }) => {
                        self.need_snapshot(peer);
                        return Ok(sent);
                    }
                    Err(e) => return Err(e.into()),
                }
            } else {
                Vec::new()
            };
            let count = entries.len() as u64;
            let body = Body::Append {
                prev_index,
                prev_term,
                commit: self.commit_index,
                sent_at: self.now,
                slave_incarnation: self.known_incarnation(peer),
                entries,
            };
            self.send(peer, body);
            sent = true;
            let Some(pr) = self.progress.get_mut(&peer) else {
                return Ok(sent);
            };
            pr.empty_append_due = false;
            if is_probe {
                pr.state = FlowState::Probe { probe_sent: true };
                return Ok(sent);
            }
            if recovery {
                return Ok(sent);
            }
            assert!(count > 0);
            pr.next_index = prev_index + count + 1;
            pr.inflight.push_back(prev_index + count);
        }
    }
}
