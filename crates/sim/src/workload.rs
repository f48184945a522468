//! The simulated clients: each issues one operation at a time over a small
//! key set (so that operations collide), waits for the answer or times out,
//! follows `NotMaster` hints, and records what it saw for the checker.
//!
//! What counts as what (the rules that keep the checker honest):
//! - `NotMaster`, `InconsistentRead` and `Refused` (a full disk) mean
//!   "not executed": the client retries (elsewhere, or later) and records
//!   nothing for that attempt.
//! - A timeout or `NoLongerMaster` means "unknown": recorded as
//!   [`Outcome::Unknown`], which the checker lets happen or not.
//! - Everything else is a definite answer, recorded with its call and
//!   return times on the one real clock.

use crate::checker::{Op, Operation, Outcome, Value};
use crate::rng::Rng;

/// How a read wants to be served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadKind {
    /// On the master, under its lease: linearizable.
    Consistent,
    /// On any node that has applied at least this index.
    AtLeast(u64),
}

/// What a client sends to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest {
    pub client: usize,
    /// Unique per client; replies carry it back.
    pub request_id: u64,
    pub key: u64,
    pub op: Op,
    pub read: ReadKind,
}

/// What a node answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientReply {
    /// A definite answer; `index` is the node's applied index when it answered
    /// (for an update: the entry that carried it).
    Done { outcome: Outcome, index: u64 },
    /// Not executed; try this node instead, if known.
    NotMaster { hint: Option<usize> },
    /// The node lost mastership while handling the request: outcome unknown.
    NoLongerMaster,
    /// `AtLeast(i)` on a node that has not applied `i`: not executed.
    InconsistentRead,
    /// The master refused the update (its disk is full): not executed.
    Refused,
}

/// An `AtLeast` read as served, for the separate staleness check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtLeastRead {
    pub client: usize,
    pub key: u64,
    /// The client asked for at least this index.
    pub at_least: u64,
    /// The node answered from this applied index.
    pub served_at: u64,
    pub value: Option<Value>,
}

/// Workload knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadConfig {
    pub clients: usize,
    pub keys: u64,
    /// Operations each client performs before it stops.
    pub ops_per_client: u64,
    /// Give up on an answer after this long (real time).
    pub timeout_ns: u64,
    /// Pause between a client's operations, at most.
    pub think_max_ns: u64,
    /// Share of reads that are `AtLeast` reads on a random node, per million.
    pub at_least_per_million: u64,
}

#[derive(Debug, Clone)]
struct InFlight {
    request: ClientRequest,
    node: usize,
    call_ns: u64,
    deadline_ns: u64,
}

/// One client.
#[derive(Debug)]
pub struct Client {
    pub id: usize,
    rng: Rng,
    config: WorkloadConfig,
    /// Where it believes the master is.
    master_guess: usize,
    nodes: usize,
    next_request_id: u64,
    /// The highest index it has seen an answer from (read-your-writes).
    seen_index: u64,
    in_flight: Option<InFlight>,
    /// Retries left for the operation in flight (NotMaster hops).
    hops_left: u32,
    /// Operations started so far.
    started: u64,
    /// Earliest real time for the next operation.
    next_start_ns: u64,
    /// A value counter: values are `id << 32 | counter`, unique in the run.
    next_value: u64,
}

/// A hop limit per operation: after this many `NotMaster` answers in a row
/// the client backs off and starts over, so it never spins.
const MAX_HOPS: u32 = 6;

impl Client {
    pub fn new(id: usize, rng: Rng, config: WorkloadConfig, nodes: usize) -> Client {
        assert!(nodes > 0 && config.keys > 0);
        Client {
            id,
            rng,
            config,
            master_guess: id % nodes,
            nodes,
            next_request_id: 0,
            seen_index: 0,
            in_flight: None,
            hops_left: MAX_HOPS,
            started: 0,
            next_start_ns: 0,
            next_value: 1,
        }
    }

    /// Whether the client has done all its operations and has none in flight.
    pub fn finished(&self) -> bool {
        self.in_flight.is_none() && self.started >= self.config.ops_per_client
    }

    /// The next real time at which the client wants to act (start or time out).
    pub fn next_wakeup_ns(&self) -> Option<u64> {
        match &self.in_flight {
            Some(f) => Some(f.deadline_ns),
            None if self.started < self.config.ops_per_client => Some(self.next_start_ns),
            None => None,
        }
    }

    fn fresh_value(&mut self) -> Value {
        let v = ((self.id as u64) << 32) | self.next_value;
        self.next_value += 1;
        v
    }

    fn random_op(&mut self) -> (u64, Op, ReadKind) {
        let key = self.rng.below(self.config.keys);
        let maybe = |rng: &mut Rng, v: Value| if rng.chance(500_000) { Some(v) } else { None };
        let op = match self.rng.below(10) {
            0..=3 => Op::Get,
            4 | 5 => Op::Set(self.fresh_value()),
            6 => Op::Delete,
            7 => {
                // Expect a recent value of ours or absence, so that some succeed.
                let guess = ((self.id as u64) << 32) | self.next_value.saturating_sub(1);
                let expected = maybe(&mut self.rng, guess);
                let wanted = Some(self.fresh_value());
                Op::TestAndSet { expected, wanted }
            }
            _ => {
                let guess = ((self.id as u64) << 32) | self.next_value.saturating_sub(1);
                let expected = maybe(&mut self.rng, guess);
                Op::AssertThenSet {
                    expected,
                    wanted: self.fresh_value(),
                }
            }
        };
        let read = if op == Op::Get && self.rng.chance(self.config.at_least_per_million) {
            ReadKind::AtLeast(self.seen_index)
        } else {
            ReadKind::Consistent
        };
        (key, op, read)
    }

    /// Called at `now_ns` when the client may act: starts an operation or
    /// times out the one in flight. Returns a request to send (to a node).
    pub fn wake(
        &mut self,
        now_ns: u64,
        history: &mut Vec<Operation>,
    ) -> Option<(usize, ClientRequest)> {
        if self
            .in_flight
            .as_ref()
            .is_some_and(|f| now_ns < f.deadline_ns)
        {
            return None;
        }
        if let Some(f) = self.in_flight.take() {
            if f.request.read == ReadKind::Consistent {
                history.push(Operation {
                    client: self.id,
                    key: f.request.key,
                    op: f.request.op,
                    call_ns: f.call_ns,
                    return_ns: None,
                    outcome: Outcome::Unknown,
                });
            }
            // After a timeout the master may have moved: try another node.
            self.master_guess = self.rng.below(self.nodes as u64) as usize;
            self.next_start_ns = now_ns;
        }
        if self.started >= self.config.ops_per_client || now_ns < self.next_start_ns {
            return None;
        }
        self.started += 1;
        let (key, op, read) = self.random_op();
        self.next_request_id += 1;
        let request = ClientRequest {
            client: self.id,
            request_id: self.next_request_id,
            key,
            op,
            read,
        };
        let node = match read {
            ReadKind::AtLeast(_) => self.rng.below(self.nodes as u64) as usize,
            ReadKind::Consistent => self.master_guess,
        };
        self.hops_left = MAX_HOPS;
        self.in_flight = Some(InFlight {
            request: request.clone(),
            node,
            call_ns: now_ns,
            deadline_ns: now_ns + self.config.timeout_ns,
        });
        Some((node, request))
    }

    /// An answer arrived at `now_ns`. Returns a request to re-send if the
    /// answer says "not executed here" and a retry makes sense.
    pub fn on_reply(
        &mut self,
        now_ns: u64,
        request_id: u64,
        reply: ClientReply,
        history: &mut Vec<Operation>,
        at_least_reads: &mut Vec<AtLeastRead>,
    ) -> Option<(usize, ClientRequest)> {
        if self.in_flight.as_ref()?.request.request_id != request_id {
            return None; // a late or duplicated answer to an operation already given up
        }
        let f = self.in_flight.take()?;
        let think = self.rng.below(self.config.think_max_ns + 1);
        self.next_start_ns = now_ns + think;
        match reply {
            ClientReply::Done { outcome, index } => {
                self.seen_index = self.seen_index.max(index);
                self.master_guess = f.node;
                match f.request.read {
                    ReadKind::Consistent => history.push(Operation {
                        client: self.id,
                        key: f.request.key,
                        op: f.request.op,
                        call_ns: f.call_ns,
                        return_ns: Some(now_ns),
                        outcome,
                    }),
                    ReadKind::AtLeast(at_least) => {
                        let Outcome::Value(value) = outcome else {
                            panic!("an AtLeast get answered {outcome:?}");
                        };
                        at_least_reads.push(AtLeastRead {
                            client: self.id,
                            key: f.request.key,
                            at_least,
                            served_at: index,
                            value,
                        });
                    }
                }
                None
            }
            ClientReply::NoLongerMaster => {
                history.push(Operation {
                    client: self.id,
                    key: f.request.key,
                    op: f.request.op,
                    call_ns: f.call_ns,
                    return_ns: None,
                    outcome: Outcome::Unknown,
                });
                None
            }
            ClientReply::NotMaster { hint } => {
                let next = match hint {
                    Some(h) if h != f.node => h,
                    _ => (f.node + 1 + self.rng.below(self.nodes as u64) as usize) % self.nodes,
                };
                self.master_guess = next;
                if self.hops_left == 0 {
                    return None; // not executed anywhere: nothing to record; start over later
                }
                self.hops_left -= 1;
                // Not executed: the same operation, re-sent, keeps its original call time
                // (it may only take effect after that instant anyway).
                let request = f.request.clone();
                self.in_flight = Some(InFlight { node: next, ..f });
                Some((next, request))
            }
            ClientReply::InconsistentRead | ClientReply::Refused => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WorkloadConfig {
        WorkloadConfig {
            clients: 1,
            keys: 3,
            ops_per_client: 2,
            timeout_ns: 1_000,
            think_max_ns: 0,
            at_least_per_million: 0,
        }
    }

    #[test]
    fn timeout_is_recorded_as_unknown_and_the_client_moves_on() {
        let mut c = Client::new(0, Rng::new(3), config(), 3);
        let mut history = Vec::new();
        let (_, req) = c.wake(0, &mut history).unwrap();
        assert!(
            c.wake(999, &mut history).is_none(),
            "no timeout before the deadline"
        );
        let (_, next) = c.wake(1_000, &mut history).unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0].outcome, Outcome::Unknown);
        assert_eq!(history[0].return_ns, None);
        assert_eq!(history[0].op, req.op);
        assert_ne!(next.request_id, req.request_id);
    }

    #[test]
    fn not_master_is_retried_at_the_hint_and_not_recorded() {
        let mut c = Client::new(0, Rng::new(3), config(), 3);
        let mut history = Vec::new();
        let mut reads = Vec::new();
        let (_, req) = c.wake(0, &mut history).unwrap();
        let (to, again) = c
            .on_reply(
                5,
                req.request_id,
                ClientReply::NotMaster { hint: Some(2) },
                &mut history,
                &mut reads,
            )
            .unwrap();
        assert_eq!(to, 2);
        assert_eq!(again, req);
        assert!(history.is_empty());
        c.on_reply(
            9,
            req.request_id,
            ClientReply::Done {
                outcome: Outcome::Ok,
                index: 4,
            },
            &mut history,
            &mut reads,
        );
        assert_eq!(history.len(), 1);
        assert_eq!((history[0].call_ns, history[0].return_ns), (0, Some(9)));
    }

    #[test]
    fn stale_replies_are_ignored() {
        let mut c = Client::new(0, Rng::new(3), config(), 3);
        let mut history = Vec::new();
        let mut reads = Vec::new();
        let (_, req) = c.wake(0, &mut history).unwrap();
        assert!(c
            .on_reply(
                1,
                req.request_id + 7,
                ClientReply::NoLongerMaster,
                &mut history,
                &mut reads
            )
            .is_none());
        assert!(history.is_empty());
        assert!(!c.finished());
    }
}
