//! The read gates: when a read may be served here, given the published
//! state ([`Published`]). The node's connections and the simulator's reads
//! go through the same [`ReadGate`]; each waits the way it waits (a `watch`
//! and a timer; simulated events) and asks the gate again.
//!
//! For every read, first: the store must hold every update this node
//! answered (`answered_index`; on a master at most one apply away), so a
//! read that follows an answer sees it. Then, by consistency:
//!
//! - `Consistent`: only a master that holds its lease (`now <
//!   lease.until`), once the store applied the lease's read index. A master
//!   without the lease (just elected, cut off) is waited for, up to a lease
//!   period (the client would retry anyway); then `NoLease`.
//! - `AtLeast(i)`: at once if the store applied `i`; if the node's tlog
//!   holds `i` but the node has not applied it yet (the commit is on its
//!   way, or a slave holds committed entries back), the caller asks the
//!   replica to apply ([`crate::Replica::want_apply`]) and waits, up to one
//!   heartbeat interval; otherwise `Inconsistent` at once.
//! - `NoGuarantee`: the store as it is, at once.

use crate::published::Published;
use consensus::{NodeId, Role, Time};
use std::time::Duration;

/// The consistency a read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadConsistency {
    Consistent,
    AtLeast(u64),
    NoGuarantee,
}

/// Why a read is not served here (each maps to one of Arakoon's result
/// codes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadRefusal {
    /// The node is stopping (`E_GOING_DOWN`).
    GoingDown,
    /// Not master (`E_NOT_MASTER`, with the master if known).
    NotMaster(Option<NodeId>),
    /// Master, but no lease came within a lease period (`E_NOT_MASTER`
    /// without a name: no master known that holds a lease).
    NoLease,
    /// Mastership was lost while the read waited, or the store did not
    /// catch up in time (`E_NO_LONGER_MASTER`).
    NoLongerMaster(String),
    /// `AtLeast(wanted)` on a node that has applied only `applied`
    /// (`E_INCONSISTENT_READ`).
    Inconsistent { applied: u64, wanted: u64 },
}

/// What the gate says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Read the store now (for `AtLeast(i)`: check the view's applied index
    /// is still at least `i`).
    Serve,
    /// Ask again when the published state changes, or at `until` at the
    /// latest. `apply_wanted`: ask the replica to apply what is committed.
    Wait { until: Time, apply_wanted: bool },
    /// Refuse the read.
    Refuse(ReadRefusal),
}

/// The periods the gates wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadTiming {
    /// A `Consistent` read waits this long for a lease, then for its read
    /// index; any read this long for the answered index.
    pub lease_period: Duration,
    /// An `AtLeast(i)` read waits this long for an index the tlog holds.
    pub heartbeat_interval: Duration,
}

/// One read's passage through the gates.
#[derive(Debug, Clone)]
pub struct ReadGate {
    consistency: ReadConsistency,
    timing: ReadTiming,
    started: Time,
    /// A `Consistent` read's read index, once a lease gave it.
    read_index: Option<u64>,
    /// The caller was told to ask for an apply already.
    apply_asked: bool,
}

impl ReadGate {
    /// A read asked at local time `now`.
    pub fn new(consistency: ReadConsistency, timing: ReadTiming, now: Time) -> ReadGate {
        ReadGate {
            consistency,
            timing,
            started: now,
            read_index: None,
            apply_asked: false,
        }
    }

    /// The consistency asked for.
    pub fn consistency(&self) -> ReadConsistency {
        self.consistency
    }

    /// Whether the read may be served now. `store_applied`: the store's own
    /// applied index (it may be ahead of the published one).
    pub fn check(&mut self, p: &Published, store_applied: u64, now: Time) -> Gate {
        if p.going_down {
            return Gate::Refuse(ReadRefusal::GoingDown);
        }
        let applied = store_applied.max(p.applied_index);
        let lease_deadline = self.started.plus(self.timing.lease_period);
        if applied < p.answered_index {
            if now < lease_deadline {
                return Gate::Wait {
                    until: lease_deadline,
                    apply_wanted: false,
                };
            }
            return Gate::Refuse(ReadRefusal::NoLongerMaster(format!(
                "the store did not apply the answered index {} in time (applied {applied})",
                p.answered_index
            )));
        }
        match self.consistency {
            ReadConsistency::NoGuarantee => Gate::Serve,
            ReadConsistency::Consistent => self.consistent(p, applied, now, lease_deadline),
            ReadConsistency::AtLeast(i) => self.at_least(i, p, applied, now),
        }
    }

    fn consistent(&mut self, p: &Published, applied: u64, now: Time, deadline: Time) -> Gate {
        if p.role != Role::Master {
            return Gate::Refuse(match self.read_index {
                Some(_) => {
                    ReadRefusal::NoLongerMaster("lost mastership while serving the read".into())
                }
                None => ReadRefusal::NotMaster(p.master),
            });
        }
        let read_index = match self.read_index {
            Some(i) => i,
            None => match p.lease {
                Some(lease) if now < lease.until => {
                    self.read_index = Some(lease.read_index);
                    lease.read_index
                }
                // A master without the lease (just elected, or cut off):
                // wait a little for it, as the client would retry anyway.
                _ if now < deadline => {
                    return Gate::Wait {
                        until: deadline,
                        apply_wanted: false,
                    }
                }
                _ => return Gate::Refuse(ReadRefusal::NoLease),
            },
        };
        if applied >= read_index {
            Gate::Serve
        } else if now < deadline {
            Gate::Wait {
                until: deadline,
                apply_wanted: false,
            }
        } else {
            Gate::Refuse(ReadRefusal::NoLongerMaster(
                "the store did not reach the read index in time".into(),
            ))
        }
    }

    fn at_least(&mut self, wanted: u64, p: &Published, applied: u64, now: Time) -> Gate {
        if applied >= wanted {
            return Gate::Serve;
        }
        let refuse = Gate::Refuse(ReadRefusal::Inconsistent { applied, wanted });
        if wanted > p.tlog_last_index {
            return refuse;
        }
        let deadline = self.started.plus(self.timing.heartbeat_interval);
        if now >= deadline {
            return refuse;
        }
        // Not master, this node may hold committed entries back to apply
        // several at once (`slave_apply_delay`): not for a reader.
        let apply_wanted = !std::mem::replace(&mut self.apply_asked, true);
        Gate::Wait {
            until: deadline,
            apply_wanted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use consensus::{Lease, Standing};

    const TIMING: ReadTiming = ReadTiming {
        lease_period: Duration::from_millis(1000),
        heartbeat_interval: Duration::from_millis(100),
    };

    fn ms(n: u64) -> Time {
        Time(n * 1_000_000)
    }

    fn master(applied: u64, lease: Option<Lease>) -> Published {
        let mut p = Published::initial(Role::Master, Standing::Trusted, 2, applied, 20);
        p.master = Some(NodeId(0));
        p.lease = lease;
        p
    }

    #[test]
    fn a_consistent_read_needs_the_lease_and_its_read_index() {
        let lease = Lease {
            read_index: 12,
            until: ms(500),
        };
        let mut gate = ReadGate::new(ReadConsistency::Consistent, TIMING, ms(0));
        let p = master(10, Some(lease));
        assert!(matches!(gate.check(&p, 10, ms(1)), Gate::Wait { .. }));
        // The read index was fixed by the lease seen first: applied 12 serves
        // even after the lease ran out.
        let p = master(12, None);
        assert_eq!(gate.check(&p, 12, ms(600)), Gate::Serve);
        // A lease that ended is no lease.
        let mut late = ReadGate::new(ReadConsistency::Consistent, TIMING, ms(500));
        let p = master(12, Some(lease));
        assert!(matches!(late.check(&p, 12, ms(500)), Gate::Wait { .. }));
        assert_eq!(
            late.check(&p, 12, ms(1500)),
            Gate::Refuse(ReadRefusal::NoLease)
        );
    }

    #[test]
    fn a_consistent_read_on_a_slave_is_refused_with_the_master() {
        let mut p = Published::initial(Role::Slave, Standing::Trusted, 2, 5, 5);
        p.master = Some(NodeId(2));
        let mut gate = ReadGate::new(ReadConsistency::Consistent, TIMING, ms(0));
        assert_eq!(
            gate.check(&p, 5, ms(0)),
            Gate::Refuse(ReadRefusal::NotMaster(Some(NodeId(2))))
        );
    }

    #[test]
    fn every_read_waits_for_the_answered_index() {
        let mut p = master(
            9,
            Some(Lease {
                read_index: 9,
                until: ms(900),
            }),
        );
        p.answered_index = 10;
        let mut gate = ReadGate::new(ReadConsistency::NoGuarantee, TIMING, ms(0));
        assert!(matches!(gate.check(&p, 9, ms(1)), Gate::Wait { .. }));
        assert_eq!(gate.check(&p, 10, ms(2)), Gate::Serve);
    }

    #[test]
    fn at_least_waits_a_heartbeat_for_an_index_the_tlog_holds() {
        let p = Published::initial(Role::Slave, Standing::Trusted, 2, 10, 20);
        let mut gate = ReadGate::new(ReadConsistency::AtLeast(15), TIMING, ms(0));
        assert_eq!(
            gate.check(&p, 10, ms(0)),
            Gate::Wait {
                until: ms(100),
                apply_wanted: true
            }
        );
        assert_eq!(
            gate.check(&p, 10, ms(50)),
            Gate::Wait {
                until: ms(100),
                apply_wanted: false
            },
            "the apply is asked for once"
        );
        assert_eq!(gate.check(&p, 15, ms(60)), Gate::Serve);
        let mut late = ReadGate::new(ReadConsistency::AtLeast(15), TIMING, ms(0));
        assert_eq!(
            late.check(&p, 10, ms(100)),
            Gate::Refuse(ReadRefusal::Inconsistent {
                applied: 10,
                wanted: 15
            })
        );
        let mut beyond = ReadGate::new(ReadConsistency::AtLeast(21), TIMING, ms(0));
        assert!(matches!(
            beyond.check(&p, 10, ms(0)),
            Gate::Refuse(ReadRefusal::Inconsistent { .. })
        ));
    }
}
