//! The simulated network: every message gets a random delay (so messages
//! reorder), may be dropped or duplicated, and is blocked by partitions,
//! which may be one-way. Delivery order is a pure function of the seed.

use crate::rng::Rng;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

/// An address on the simulated network: a node or a client.
pub type Endpoint = usize;

/// How unreliable the network is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetFaults {
    /// Smallest one-way delay.
    pub delay_min_ns: u64,
    /// Largest one-way delay.
    pub delay_max_ns: u64,
    /// Chance that a message is lost, per million.
    pub drop_per_million: u64,
    /// Chance that a message is delivered twice, per million.
    pub duplicate_per_million: u64,
}

impl NetFaults {
    /// A healthy network: loopback-like delays, no loss, no duplicates.
    pub fn quiet() -> Self {
        NetFaults {
            delay_min_ns: 50_000,
            delay_max_ns: 200_000,
            drop_per_million: 0,
            duplicate_per_million: 0,
        }
    }
}

#[derive(Debug)]
struct InFlight<M> {
    deliver_at_ns: u64,
    seq: u64,
    from: Endpoint,
    to: Endpoint,
    message: M,
}

impl<M> PartialEq for InFlight<M> {
    fn eq(&self, other: &Self) -> bool {
        (self.deliver_at_ns, self.seq) == (other.deliver_at_ns, other.seq)
    }
}
impl<M> Eq for InFlight<M> {}
impl<M> PartialOrd for InFlight<M> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<M> Ord for InFlight<M> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deliver_at_ns, self.seq).cmp(&(other.deliver_at_ns, other.seq))
    }
}

/// Counters for the run summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Messages handed to `send`.
    pub sent: u64,
    /// Lost to random drops.
    pub dropped: u64,
    /// Lost to partitions.
    pub blocked: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
}

/// The network, with its messages in flight.
#[derive(Debug)]
pub struct Network<M> {
    rng: Rng,
    faults: NetFaults,
    in_flight: BinaryHeap<Reverse<InFlight<M>>>,
    /// Directed pairs `(from, to)` that cannot talk.
    cut: BTreeSet<(Endpoint, Endpoint)>,
    next_seq: u64,
    stats: NetStats,
}

impl<M: Clone> Network<M> {
    /// A network drawing its randomness from `rng`.
    pub fn new(rng: Rng, faults: NetFaults) -> Self {
        assert!(faults.delay_min_ns <= faults.delay_max_ns);
        Network {
            rng,
            faults,
            in_flight: BinaryHeap::new(),
            cut: BTreeSet::new(),
            next_seq: 0,
            stats: NetStats::default(),
        }
    }

    /// Changes the fault profile (for the quiet phase, say).
    pub fn set_faults(&mut self, faults: NetFaults) {
        assert!(faults.delay_min_ns <= faults.delay_max_ns);
        self.faults = faults;
    }

    /// Sends `message`; it arrives after a random delay unless lost, and
    /// may arrive twice.
    pub fn send(&mut self, now_ns: u64, from: Endpoint, to: Endpoint, message: M) {
        self.send_with(now_ns, from, to, message, true);
    }

    /// Sends `message` as a TCP stream would carry one request: it may be
    /// delayed or lost (connection reset), but never delivered twice.
    pub fn send_once(&mut self, now_ns: u64, from: Endpoint, to: Endpoint, message: M) {
        self.send_with(now_ns, from, to, message, false);
    }

    fn send_with(
        &mut self,
        now_ns: u64,
        from: Endpoint,
        to: Endpoint,
        message: M,
        may_duplicate: bool,
    ) {
        self.stats.sent += 1;
        if self.cut.contains(&(from, to)) {
            self.stats.blocked += 1;
            return;
        }
        if self.rng.chance(self.faults.drop_per_million) {
            self.stats.dropped += 1;
            return;
        }
        let copies = if may_duplicate && self.rng.chance(self.faults.duplicate_per_million) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = self
                .rng
                .between(self.faults.delay_min_ns, self.faults.delay_max_ns);
            self.next_seq += 1;
            self.in_flight.push(Reverse(InFlight {
                deliver_at_ns: now_ns + delay,
                seq: self.next_seq,
                from,
                to,
                message: message.clone(),
            }));
        }
    }

    /// Queues `message` for delivery at exactly `at_ns`, bypassing faults
    /// (a message that already crossed the network and waits at a stopped
    /// process).
    pub fn send_at(&mut self, at_ns: u64, from: Endpoint, to: Endpoint, message: M) {
        self.next_seq += 1;
        self.in_flight.push(Reverse(InFlight {
            deliver_at_ns: at_ns,
            seq: self.next_seq,
            from,
            to,
            message,
        }));
    }

    /// When the next message is due, if any is in flight.
    pub fn next_delivery_ns(&self) -> Option<u64> {
        self.in_flight.peek().map(|Reverse(m)| m.deliver_at_ns)
    }

    /// The next message due at or before `now_ns`, as `(from, to, message)`.
    /// A message whose path was cut while it was in flight is lost.
    pub fn deliver(&mut self, now_ns: u64) -> Option<(Endpoint, Endpoint, M)> {
        while self.next_delivery_ns().is_some_and(|t| t <= now_ns) {
            let Reverse(m) = self.in_flight.pop()?;
            if self.cut.contains(&(m.from, m.to)) {
                self.stats.blocked += 1;
                continue;
            }
            return Some((m.from, m.to, m.message));
        }
        None
    }

    /// Cuts the one-way path `from -> to`.
    pub fn cut_one_way(&mut self, from: Endpoint, to: Endpoint) {
        self.cut.insert((from, to));
    }

    /// Cuts both ways between every member of `side` and every other endpoint of `all`.
    pub fn isolate(&mut self, side: &[Endpoint], all: &[Endpoint]) {
        for &a in side {
            for &b in all {
                if !side.contains(&b) {
                    self.cut.insert((a, b));
                    self.cut.insert((b, a));
                }
            }
        }
    }

    /// Heals every partition.
    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Whether any path is cut.
    pub fn is_partitioned(&self) -> bool {
        !self.cut.is_empty()
    }

    /// Drops everything in flight to or from `endpoint` (its process died).
    pub fn forget(&mut self, endpoint: Endpoint) {
        let kept: Vec<_> = std::mem::take(&mut self.in_flight)
            .into_iter()
            .filter(|Reverse(m)| m.from != endpoint && m.to != endpoint)
            .collect();
        self.in_flight = kept.into_iter().collect();
    }

    /// Counters so far.
    pub fn stats(&self) -> NetStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(faults: NetFaults) -> Network<u32> {
        Network::new(Rng::new(42), faults)
    }

    fn drain(net: &mut Network<u32>) -> Vec<(Endpoint, Endpoint, u32)> {
        let mut out = Vec::new();
        while let Some(m) = net.deliver(u64::MAX) {
            out.push(m);
        }
        out
    }

    #[test]
    fn delivers_after_delay_and_reorders() {
        let mut n = net(NetFaults {
            delay_min_ns: 10,
            delay_max_ns: 1_000,
            ..NetFaults::quiet()
        });
        for i in 0..50 {
            n.send(0, 0, 1, i);
        }
        assert!(
            n.deliver(9).is_none(),
            "nothing arrives before the minimum delay"
        );
        let got: Vec<u32> = drain(&mut n).into_iter().map(|m| m.2).collect();
        let mut sorted = got.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(got, sorted, "random delays must reorder some messages");
    }

    #[test]
    fn one_way_partition_blocks_one_direction_only() {
        let mut n = net(NetFaults::quiet());
        n.cut_one_way(0, 1);
        n.send(0, 0, 1, 1);
        n.send(0, 1, 0, 2);
        assert_eq!(drain(&mut n), vec![(1, 0, 2)]);
        n.heal();
        n.send(0, 0, 1, 3);
        assert_eq!(drain(&mut n), vec![(0, 1, 3)]);
    }

    #[test]
    fn partition_made_while_in_flight_loses_the_message() {
        let mut n = net(NetFaults::quiet());
        n.send(0, 0, 1, 1);
        n.isolate(&[1], &[0, 1, 2]);
        assert!(drain(&mut n).is_empty());
        assert_eq!(n.stats().blocked, 1);
    }

    #[test]
    fn drops_and_duplicates_happen_at_their_rates() {
        let mut n = net(NetFaults {
            drop_per_million: 200_000,
            duplicate_per_million: 200_000,
            ..NetFaults::quiet()
        });
        for i in 0..1_000 {
            n.send(0, 0, 1, i);
        }
        let s = n.stats();
        assert!((100..300).contains(&s.dropped), "{s:?}");
        assert!((100..300).contains(&s.duplicated), "{s:?}");
        assert_eq!(drain(&mut n).len() as u64, 1_000 - s.dropped + s.duplicated);
    }

    #[test]
    fn same_seed_same_delivery_order() {
        let run = || {
            let mut n = net(NetFaults {
                delay_min_ns: 1,
                delay_max_ns: 1_000,
                drop_per_million: 100_000,
                duplicate_per_million: 100_000,
            });
            for i in 0..100 {
                n.send(i as u64, (i % 3) as usize, 1, i);
            }
            drain(&mut n)
        };
        assert_eq!(run(), run());
    }
}
