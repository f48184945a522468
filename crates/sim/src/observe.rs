//! The run's observer: everything the checks need, recorded as it happens,
//! and the checks that can be made on the spot.
//!
//! Checked on the spot:
//! - at most one master per term (election safety);
//! - a witness serves no client: a term it is master of holds no entry but
//!   the master's empty barrier, and it serves no `Consistent` read;
//! - every node applies the same entry at each index, and afterwards holds
//!   the same values for the keys that entry touched (state-machine safety);
//! - `Consistent` reads are served in non-decreasing term order over real
//!   time: a read served by the master of term t after a read served by the
//!   master of a later term means two leases overlapped (a stale read).
//!
//! Checked at the end of the run (by `run`): linearizability of the client
//! history, `AtLeast` reads against the values recorded per index, and that
//! all stores agree once the cluster is quiet.

use crate::checker::{Operation, Value};
use crate::workload::AtLeastRead;
use std::collections::BTreeMap;

/// What the observer saw.
#[derive(Debug, Default)]
pub struct Observer {
    /// `Some` when the run keeps a readable trace.
    pub trace: Option<Vec<String>>,
    pub violations: Vec<String>,
    pub history: Vec<Operation>,
    pub at_least_reads: Vec<AtLeastRead>,
    masters_by_term: BTreeMap<u64, usize>,
    /// Voters that must never become master.
    witnesses: Vec<usize>,
    /// index -> (term, payload fingerprint, first node to apply it)
    applied: BTreeMap<u64, (u64, u64, usize)>,
    /// key -> index -> value after that index (only indexes touching the key).
    key_versions: BTreeMap<u64, BTreeMap<u64, Option<Value>>>,
    /// Highest term of a `Consistent` read served so far, and by whom.
    last_lease_read: Option<(u64, usize, u64)>,
    pub consistent_reads_served: u64,
    pub entries_applied: u64,
    pub master_changes: u64,
    pub snapshots_installed: u64,
}

/// FNV-1a, for payload fingerprints (stable across builds and platforms).
pub fn fingerprint(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Observer {
    pub fn new(with_trace: bool) -> Self {
        Observer {
            trace: with_trace.then(Vec::new),
            ..Observer::default()
        }
    }

    /// The nodes that are witnesses: one becoming master is a violation.
    pub fn with_witnesses(mut self, witnesses: Vec<usize>) -> Self {
        self.witnesses = witnesses;
        self
    }

    /// Adds a trace line (only when tracing; the closure is not run otherwise).
    pub fn trace(&mut self, now_ns: u64, line: impl FnOnce() -> String) {
        if let Some(t) = &mut self.trace {
            t.push(format!("{:>12.3} ms  {}", now_ns as f64 / 1e6, line()));
        }
    }

    pub fn violation(&mut self, now_ns: u64, what: String) {
        self.trace(now_ns, || format!("VIOLATION: {what}"));
        self.violations
            .push(format!("at {:.3} ms: {what}", now_ns as f64 / 1e6));
    }

    /// A node became master of `term`.
    pub fn became_master(&mut self, now_ns: u64, node: usize, term: u64) {
        self.master_changes += 1;
        match self.masters_by_term.get(&term) {
            Some(&other) if other != node => self.violation(
                now_ns,
                format!("two masters in term {term}: node {other} and node {node}"),
            ),
            _ => {
                self.masters_by_term.insert(term, node);
            }
        }
    }

    /// `node` applied the entry `(index, term)` with this payload; `touched`
    /// lists the keys the entry touched and their values afterwards.
    pub fn applied(
        &mut self,
        now_ns: u64,
        node: usize,
        index: u64,
        term: u64,
        payload: &[u8],
        touched: &[(u64, Option<Value>)],
    ) {
        self.entries_applied += 1;
        if let Some(&master) = self.masters_by_term.get(&term) {
            if self.witnesses.contains(&master) && !payload.is_empty() {
                self.violation(
                    now_ns,
                    format!(
                        "witness node {master}, master of term {term}, took a client update \
                         (applied at index {index} by node {node})"
                    ),
                );
            }
        }
        let print = fingerprint(payload);
        match self.applied.get(&index) {
            Some(&(t, p, first)) if (t, p) != (term, print) => {
                self.violation(
                    now_ns,
                    format!(
                        "state-machine safety: node {node} applied ({index}, term {term}) \
                         but node {first} applied ({index}, term {t}) with other content"
                    ),
                );
                return;
            }
            Some(_) => {}
            None => {
                self.applied.insert(index, (term, print, node));
            }
        }
        for &(key, value) in touched {
            let versions = self.key_versions.entry(key).or_default();
            match versions.get(&index) {
                Some(&v) if v != value => {
                    let msg = format!(
                        "state-machine safety: after index {index} node {node} has key {key} = {value:?}, \
                         another node had {v:?}"
                    );
                    self.violation(now_ns, msg);
                }
                Some(_) => {}
                None => {
                    versions.insert(index, value);
                }
            }
        }
    }

    /// `node` installed a store snapshot of the entry `(index, term)`
    /// holding `pairs`: the entry must be the one applied at `index`, and
    /// every key must hold the value it had after `index`.
    pub fn snapshot_installed(
        &mut self,
        now_ns: u64,
        node: usize,
        index: u64,
        term: u64,
        pairs: &[(u64, Value)],
    ) {
        self.snapshots_installed += 1;
        match self.applied.get(&index) {
            Some(&(t, _, first)) if t != term => {
                self.violation(
                    now_ns,
                    format!(
                        "snapshot: node {node} installed ({index}, term {term}) but node {first} applied ({index}, term {t})"
                    ),
                );
                return;
            }
            Some(_) => {}
            None => {
                self.violation(
                    now_ns,
                    format!(
                        "snapshot: node {node} installed one at {index}, which no node applied"
                    ),
                );
                return;
            }
        }
        let held: BTreeMap<u64, Value> = pairs.iter().copied().collect();
        let keys: std::collections::BTreeSet<u64> = self
            .key_versions
            .keys()
            .chain(held.keys())
            .copied()
            .collect();
        for key in keys {
            let expected = self.value_at(key, index);
            let got = held.get(&key).copied();
            if got != expected {
                self.violation(
                    now_ns,
                    format!(
                        "snapshot: node {node} installed ({index}, term {term}) with key {key} = {got:?}; after {index} it held {expected:?}"
                    ),
                );
                return;
            }
        }
    }

    /// `node`, master of `term`, served a `Consistent` read now.
    pub fn consistent_read(&mut self, now_ns: u64, node: usize, term: u64) {
        self.consistent_reads_served += 1;
        if self.witnesses.contains(&node) {
            self.violation(
                now_ns,
                format!("witness node {node} served a Consistent read as master of term {term}"),
            );
        }
        if let Some((last_term, last_node, at_ns)) = self.last_lease_read {
            if term < last_term {
                self.violation(
                    now_ns,
                    format!(
                        "lease overlap: node {node} served a Consistent read as master of term {term} \
                         after node {last_node} served one as master of term {last_term} at {:.3} ms",
                        at_ns as f64 / 1e6
                    ),
                );
                return;
            }
        }
        self.last_lease_read = Some((term, node, now_ns));
    }

    /// The value `key` had after index `index` (applied entries seen so far).
    pub fn value_at(&self, key: u64, index: u64) -> Option<Value> {
        self.key_versions
            .get(&key)
            .and_then(|v| v.range(..=index).next_back())
            .and_then(|(_, value)| *value)
    }

    /// Checks every `AtLeast` read: served from an index at least the one
    /// asked for, with the value the key had at that index.
    pub fn check_at_least_reads(&mut self, now_ns: u64) {
        let reads = std::mem::take(&mut self.at_least_reads);
        for r in &reads {
            if r.served_at < r.at_least {
                self.violation(
                    now_ns,
                    format!(
                        "AtLeast({}) read served from index {}",
                        r.at_least, r.served_at
                    ),
                );
            }
            let expected = self.value_at(r.key, r.served_at);
            if r.value != expected {
                self.violation(
                    now_ns,
                    format!(
                        "AtLeast read by client {} of key {} at index {} saw {:?}, the key held {:?}",
                        r.client, r.key, r.served_at, r.value, expected
                    ),
                );
            }
        }
        self.at_least_reads = reads;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_masters_in_one_term_is_a_violation() {
        let mut o = Observer::new(false);
        o.became_master(0, 1, 3);
        o.became_master(1, 1, 3);
        assert!(o.violations.is_empty());
        o.became_master(2, 2, 3);
        assert_eq!(o.violations.len(), 1);
    }

    #[test]
    fn different_entries_at_one_index_is_a_violation() {
        let mut o = Observer::new(false);
        o.applied(0, 0, 5, 2, b"a", &[(1, Some(7))]);
        o.applied(1, 1, 5, 2, b"a", &[(1, Some(7))]);
        assert!(o.violations.is_empty());
        o.applied(2, 2, 5, 2, b"b", &[]);
        assert_eq!(o.violations.len(), 1);
        o.applied(3, 2, 6, 2, b"c", &[(1, None)]);
        o.applied(4, 1, 6, 2, b"c", &[(1, Some(8))]);
        assert_eq!(o.violations.len(), 2);
    }

    #[test]
    fn lease_reads_out_of_term_order_are_a_violation() {
        let mut o = Observer::new(false);
        o.consistent_read(0, 0, 2);
        o.consistent_read(1, 1, 3);
        assert!(o.violations.is_empty());
        o.consistent_read(2, 0, 2);
        assert_eq!(o.violations.len(), 1);
    }

    #[test]
    fn at_least_reads_are_checked_against_versions() {
        let mut o = Observer::new(false);
        o.applied(0, 0, 1, 1, b"x", &[(4, Some(10))]);
        o.applied(0, 0, 2, 1, b"y", &[(4, None)]);
        o.at_least_reads.push(AtLeastRead {
            client: 0,
            key: 4,
            at_least: 1,
            served_at: 1,
            value: Some(10),
        });
        o.at_least_reads.push(AtLeastRead {
            client: 0,
            key: 4,
            at_least: 1,
            served_at: 2,
            value: None,
        });
        o.check_at_least_reads(9);
        assert!(o.violations.is_empty(), "{:?}", o.violations);
        o.at_least_reads.push(AtLeastRead {
            client: 0,
            key: 4,
            at_least: 2,
            served_at: 2,
            value: Some(10),
        });
        o.check_at_least_reads(9);
        assert_eq!(o.violations.len(), 1);
    }
}
