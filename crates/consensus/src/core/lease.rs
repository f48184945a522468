//! The master lease: what it is, why two leases never overlap, and every
//! piece of the core that makes it so (the lease a master holds, the guard a
//! granting node keeps). Readers ask [`Core::lease`]: the read index and
//! the local instant the lease ends, computed once, without allocating.
//!
//! # The argument
//!
//! The master stamps every append and heartbeat with its local send time
//! `s`; a slave echoes the latest `s` in its responses. Master M *holds the
//! lease* at local time `t` iff it is master, has not begun a hand-over in
//! this term, has committed an entry of its term, and a quorum of voters
//! (M counting itself at `t`) echoed some `s` with `t < s + lease_period -
//! max_clock_drift`. Then [`Core::lease`]`(t)` gives M's commit index as the
//! read index, and the instant the lease ends.
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

use super::*;
use crate::config::MAX_VOTERS;

/// A lease the master holds at a given local time: serve a `Consistent`
/// read once the store has applied `read_index`, at any local time before
/// `until` (later: ask again).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The commit index: it covers every write any earlier master
    /// acknowledged (an entry of this term is committed).
    pub read_index: u64,
    /// The first local time at which the lease no longer holds, as far as
    /// the acknowledgements received so far go (new ones extend it).
    pub until: Time,
}

impl Core {
    /// The lease this node holds at local time `now`, if it is master and
    /// holds one: the quorum-th most recent acknowledged send time `s` (this
    /// node counting itself at `now`, a recovering voter not at all) gives
    /// `until = s + lease_period - max_clock_drift`; a hand-over in progress
    /// or no committed entry of this term means no lease. On a single-voter
    /// cluster the lease never lapses by itself; `until` is then a lease
    /// period ahead.
    pub fn lease(&self, now: Time) -> Result<Lease, ReadError> {
        let now = now.max(self.now);
        if self.role != Role::Master {
            return Err(ReadError::NotMaster {
                master: self.master,
            });
        }
        #[cfg(feature = "broken")]
        if self.config.broken == Some(crate::config::Broken::ReadWithoutLease) {
            return Ok(Lease {
                read_index: self.commit_index,
                until: Time(u64::MAX),
            });
        }
        let not_held = |reason| ReadError::LeaseNotHeld {
            term: self.term,
            reason,
        };
        if self.lease_forfeited {
            return Err(not_held("mastership is being handed over"));
        }
        if self.commit_index < self.term_start_index {
            return Err(not_held("no entry of this term committed yet"));
        }
        let until = self.lease_until(now);
        if until.is_none_or(|u| now >= u) {
            return Err(not_held("no quorum acknowledged within the lease period"));
        }
        Ok(Lease {
            read_index: self.commit_index,
            until: until.unwrap_or(now),
        })
    }

    /// The index the caller must have applied before serving a `Consistent`
    /// read now (the read index of [`Core::lease`]).
    pub fn consistent_read_index(&self, now: Time) -> Result<u64, ReadError> {
        self.lease(now).map(|l| l.read_index)
    }

    /// The send time of the quorum-th most recent acknowledgement among
    /// voters (the master counting itself at `now`; a recovering voter does
    /// not count). No allocation: at most [`MAX_VOTERS`] times.
    pub(super) fn lease_quorum_sent_at(&self, now: Time) -> Option<Time> {
        let mut times = [Time(0); MAX_VOTERS];
        let mut n = 0;
        for v in &self.config.voters {
            let t = if *v == self.config.id {
                Some(now)
            } else {
                self.progress
                    .get(v)
                    .filter(|p| !p.recovering)
                    .and_then(|p| p.acked_sent_at)
            };
            if let Some(t) = t {
                assert!(n < MAX_VOTERS, "more voters than MAX_VOTERS");
                times[n] = t;
                n += 1;
            }
        }
        let times = &mut times[..n];
        times.sort_unstable_by(|a, b| b.cmp(a));
        times.get(self.quorum - 1).copied()
    }

    /// The local time the lease ends, as of `now` (`None`: no quorum ever
    /// acknowledged). With a quorum of one the master alone holds it: a
    /// lease period from `now`.
    fn lease_until(&self, now: Time) -> Option<Time> {
        let period = self
            .config
            .lease_period
            .saturating_sub(self.config.max_clock_drift);
        if self.quorum == 1 && self.is_voter {
            return Some(now.plus(self.config.lease_period));
        }
        // Every other voter's acknowledged send time is at most `now`, so the
        // quorum-th most recent (this node counting itself at any later `t`)
        // does not move with `t`: computed once.
        self.lease_quorum_sent_at(now).map(|s| s.plus(period))
    }

    pub(super) fn lease_holds(&self, now: Time) -> bool {
        self.lease_until(now).is_some_and(|u| now < u)
    }

    /// Extends the lease guard: this node granted (or held) a lease at `now`.
    pub(super) fn guard_lease(&mut self) {
        let until = Time(self.now.0.saturating_add(self.lease_period_ns()));
        self.lease_guard_until = self.lease_guard_until.max(until);
    }

    /// True while this node must not help elect anyone else: it is master, a
    /// lease it granted may run, or it heard from a master recently (§9.6:
    /// a healthy master is not disturbed).
    pub(super) fn in_lease(&self) -> bool {
        if self.role == Role::Master {
            return true;
        }
        if self.now < self.lease_guard_until {
            return true;
        }
        let recent = self
            .last_master_contact
            .is_some_and(|t| self.now < t.plus(self.config.election_timeout_min));
        self.master.is_some() && recent
    }
}
