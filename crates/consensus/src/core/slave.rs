//! The slave side of replication (§3.5): accepting a master, the consistency
//! check, conflict truncation, and acknowledgements that only cover entries
//! both verified against this term's master and fsynced (§3.8).

use super::*;

impl Core {
    /// An `Append` or `Heartbeat` of our term: `from` is the master of it.
    pub(super) fn accept_master(
        &mut self,
        from: NodeId,
        sent_at: Time,
        log: &dyn LogRead,
    ) -> Result<(), StepError> {
        if self.role == Role::Master {
            return Err(StepError::ProtocolViolation {
                from,
                term: self.term,
                reason: "a second master in this term".into(),
            });
        }
        if let Some(m) = self.master {
            if m != from {
                return Err(StepError::ProtocolViolation {
                    from,
                    term: self.term,
                    reason: format!("{m} is the master of this term"),
                });
            }
        }
        if self.role == Role::PreCandidate || self.role == Role::Candidate || self.master.is_none()
        {
            self.become_follower(self.term, Some(from), log);
        }
        self.last_master_contact = Some(self.now);
        self.latest_sent_at = Some(self.latest_sent_at.map_or(sent_at, |t| t.max(sent_at)));
        self.reset_election_deadline();
        Ok(())
    }

    /// §3.5: the consistency check, conflict truncation, append; the
    /// acknowledgement waits for the fsync (see `maybe_ack`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_append(
        &mut self,
        from: NodeId,
        mut prev_index: u64,
        mut prev_term: u64,
        commit: u64,
        sent_at: Time,
        mut entries: Vec<Entry>,
        log: &dyn LogRead,
    ) -> Result<(), StepError> {
        let committed = self.commit_index;
        if prev_index < committed {
            // Entries up to the commit index match every master's log (§3.6.3).
            let skip = committed - prev_index;
            if skip >= entries.len() as u64 {
                let last = prev_index + entries.len() as u64;
                self.verified_index = self.verified_index.max(last);
                self.ack_owed_index = Some(self.ack_owed_index.map_or(last, |o| o.max(last)));
                self.set_commit(commit.min(self.verified_index));
                self.maybe_ack();
                return Ok(());
            }
            let skip = skip as usize;
            prev_term = entries[skip - 1].term;
            entries.drain(..skip);
            prev_index = committed;
        }
        match self.pending.term(log, prev_index) {
            Ok(t) if t == prev_term => {}
            Ok(_) | Err(LogError::Unavailable { .. }) => {
                let (hint_index, hint_term) =
                    self.slave_conflict_hint(prev_index, prev_term, log)?;
                self.send(
                    from,
                    Body::AppendResponse {
                        sent_at,
                        result: AppendResult::Rejected {
                            rejected_prev_index: prev_index,
                            hint_index,
                            hint_term,
                        },
                        incarnation: self.incarnation,
                        recovering: !self.is_trusted(),
                    },
                );
                self.guard_lease();
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        let last_new = prev_index + entries.len() as u64;
        let mut append_from = None;
        for (k, e) in entries.iter().enumerate() {
            if e.index > self.pending.last_index(log) {
                append_from = Some(k);
                break;
            }
            if self.pending.term(log, e.index)? != e.term {
                if e.index <= self.commit_index || e.index <= self.verified_index {
                    return Err(StepError::ProtocolViolation {
                        from,
                        term: self.term,
                        reason: format!(
                            "conflict at index {} at or below commit {} / verified {}",
                            e.index, self.commit_index, self.verified_index
                        ),
                    });
                }
                tracing::info!(node = %self.config.id, n = self.term, i = e.index, "truncating the tlog suffix that conflicts with the master");
                self.pending.truncate_after(log, e.index - 1);
                self.synced_index = self.synced_index.min(e.index - 1);
                append_from = Some(k);
                break;
            }
        }
        if let Some(k) = append_from {
            for e in entries.into_iter().skip(k) {
                self.pending.append(log, e);
            }
        }
        self.verified_index = self.verified_index.max(last_new);
        self.ack_owed_index = Some(self.ack_owed_index.map_or(last_new, |o| o.max(last_new)));
        self.set_commit(commit.min(self.verified_index));
        self.maybe_ack();
        Ok(())
    }

    /// The slave's last entry at or below `min(prev_index, last)` whose term
    /// is at most `prev_term` (etcd's findConflictByTerm); entries up to the
    /// commit index always qualify.
    pub(super) fn slave_conflict_hint(
        &self,
        prev_index: u64,
        prev_term: u64,
        log: &dyn LogRead,
    ) -> Result<(u64, u64), StepError> {
        let mut index = prev_index.min(self.pending.last_index(log));
        loop {
            if index <= self.commit_index {
                let t = match self.pending.term(log, index) {
                    Ok(t) => t,
                    Err(LogError::Compacted { .. }) => 0,
                    Err(e) => return Err(e.into()),
                };
                return Ok((index, t));
            }
            let t = self.pending.term(log, index)?;
            if t <= prev_term {
                return Ok((index, t));
            }
            index -= 1;
        }
    }

    /// Acknowledges durable, verified entries to the master (§3.8: only what
    /// is on stable storage may be acknowledged).
    pub(super) fn maybe_ack(&mut self) {
        let Some(master) = self.master else { return };
        if self.role == Role::Master {
            return;
        }
        let durable = self.verified_index.min(self.synced_index);
        #[cfg(feature = "broken")]
        let durable = if self.config.broken == Some(crate::config::Broken::AckBeforeFsync) {
            self.verified_index
        } else {
            durable
        };
        let owed_now = self.ack_owed_index.is_some_and(|o| durable >= o);
        if durable > self.last_acked_index || owed_now {
            let sent_at = self.latest_sent_at.unwrap_or_default();
            self.send(
                master,
                Body::AppendResponse {
                    sent_at,
                    result: AppendResult::Accepted {
                        match_index: durable,
                    },
                    incarnation: self.incarnation,
                    recovering: !self.is_trusted(),
                },
            );
            self.last_acked_index = self.last_acked_index.max(durable);
            if owed_now {
                self.ack_owed_index = None;
            }
            self.guard_lease();
        }
    }
}
