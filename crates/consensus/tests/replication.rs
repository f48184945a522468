//! Replication: §3.5 (log replication), §3.6 (safety: log matching, leader
//! completeness, state-machine safety, commit only of current-term entries
//! by counting), §3.8 (persisted before acknowledged), pipelining, batching,
//! flow control, learners, snapshots, restarts.

use consensus::testing::{Cluster, MemLog};
use consensus::{AppendResult, Body, Entry, HardState, LogRead, Message, NodeId, Role};
use std::time::Duration;

fn entry(index: u64, term: u64) -> Entry {
    Entry {
        index,
        term,
        payload: bytes::Bytes::from(format!("e{index}t{term}")),
    }
}

/// Gives node `id` a durable log and hard state, as if it had run before.
fn preset(c: &mut Cluster, id: u64, entries: &[(u64, u64)], term: u64, applied: u64) {
    let n = c.node_mut(id);
    n.log = MemLog::new();
    n.log.apply(
        None,
        &entries
            .iter()
            .map(|(i, t)| entry(*i, *t))
            .collect::<Vec<_>>(),
    );
    n.log.sync();
    n.hard_state = HardState {
        term,
        voted_for: None,
        ..HardState::default()
    };
    n.applied = n
        .log
        .entries
        .iter()
        .take(applied as usize)
        .cloned()
        .collect();
    n.applied_index = applied;
    c.restart(id);
}

fn appends_to(c: &Cluster, to: u64) -> Vec<Message> {
    c.delivered
        .iter()
        .filter(|m| {
            m.to == NodeId(to)
                && matches!(&m.body, Body::Append { entries, .. } if !entries.is_empty())
        })
        .cloned()
        .collect()
}

fn acks_from(c: &Cluster, from: u64) -> Vec<u64> {
    c.delivered
        .iter()
        .filter(|m| m.from == NodeId(from))
        .filter_map(|m| match m.body {
            Body::AppendResponse {
                result: AppendResult::Accepted { match_index },
                ..
            } => Some(match_index),
            _ => None,
        })
        .collect()
}

/// §3.5: a proposal on the master is replicated, committed at a majority,
/// and applied everywhere in the same order.
#[test]
fn proposals_commit_and_apply_everywhere() {
    let mut c = Cluster::new(3, 0, |_| {});
    let m = c.elect();
    let mut last = 0;
    for k in 0..20u8 {
        last = c.propose(m, &[k + 1]).unwrap().index;
    }
    c.run_for(Duration::from_millis(30));
    for n in c.nodes.values() {
        assert_eq!(n.applied_index, last, "{:?}", n.core.status());
        let payloads: Vec<u8> = n
            .applied
            .iter()
            .filter(|e| !e.is_barrier())
            .map(|e| e.payload[0])
            .collect();
        assert_eq!(payloads, (1..=20).collect::<Vec<u8>>());
    }
    c.assert_applied_agree();
}

/// §3.6.2 (Figure 3.7): an entry of an earlier term is not committed by
/// counting replicas, even on a majority; it commits with an entry of the
/// current term.
#[test]
fn previous_term_entry_is_not_committed_by_counting() {
    let mut c = Cluster::new(3, 0, |cfg| cfg.forced_master = Some(NodeId(1)));
    preset(&mut c, 1, &[(1, 1), (2, 2)], 2, 1);
    preset(&mut c, 2, &[(1, 1)], 2, 1);
    preset(&mut c, 3, &[(1, 1)], 2, 1);
    c.node_mut(2).auto_sync = false;
    c.node_mut(3).auto_sync = false;
    c.run_for(Duration::from_millis(300));
    assert_eq!(c.master(), Some(NodeId(1)));
    let term = c.node(1).core.term();
    assert!(term > 2);
    // Node 2 now holds (2,2) and the master's barrier (3,term), unsynced.
    assert_eq!(c.node(2).log.last_index(), 3);
    // Node 2 makes only entry 2 durable: entry 2 (term 2) is now on a
    // majority (nodes 1 and 2), but is of an earlier term.
    let now = c.now;
    let n2 = c.node_mut(2);
    n2.log.synced_index = 2;
    n2.core.entries_synced(2, 2, now, &n2.log).unwrap();
    c.process(NodeId(2));
    c.deliver_all();
    assert!(acks_from(&c, 2).contains(&2), "node 2 acknowledged index 2");
    assert_eq!(
        c.node(1).core.commit_index(),
        1,
        "entry 2 of term 2 must not commit by counting"
    );
    // Once the barrier of the current term is on a majority, both commit.
    c.sync(2);
    c.deliver_all();
    assert_eq!(c.node(1).core.commit_index(), 3);
}

/// §3.8: a slave acknowledges appended entries only after the fsync event
/// covering them; the master counts itself only after its own.
#[test]
fn acknowledgement_waits_for_fsync() {
    let mut c = Cluster::new(3, 0, |_| {});
    let m = c.elect();
    c.run_for(Duration::from_millis(20));
    let slaves: Vec<u64> = c
        .ids()
        .iter()
        .map(|id| id.0)
        .filter(|id| *id != m.0)
        .collect();
    for s in &slaves {
        c.node_mut(*s).auto_sync = false;
    }
    c.node_mut(m.0).auto_sync = false;
    let p = c.propose(m, b"x").unwrap();
    c.deliver_all();
    for s in &slaves {
        assert!(
            acks_from(&c, *s).iter().all(|i| *i < p.index),
            "node {s} acknowledged before its fsync"
        );
    }
    // The master alone, synced, is no majority.
    c.sync(m.0);
    c.deliver_all();
    assert!(c.nodes[&m].core.commit_index() < p.index);
    c.sync(slaves[0]);
    c.deliver_all();
    assert!(acks_from(&c, slaves[0]).contains(&p.index));
    assert_eq!(c.nodes[&m].core.commit_index(), p.index);
}

/// The master counts itself only after its own fsync: one durable slave and
/// an unsynced master are not a quorum of three.
#[test]
fn master_counts_itself_only_after_its_fsync() {
    let mut c = Cluster::new(3, 0, |_| {});
    let m = c.elect();
    c.run_for(Duration::from_millis(20));
    for id in c.ids() {
        c.node_mut(id.0).auto_sync = false;
    }
    let p = c.propose(m, b"y").unwrap();
    c.deliver_all();
    let s = c.ids().into_iter().find(|id| *id != m).unwrap();
    c.sync(s.0);
    c.deliver_all();
    assert!(
        c.nodes[&m].core.commit_index() < p.index,
        "one slave + unsynced master is not a quorum"
    );
    c.sync(m.0);
    c.deliver_all();
    assert_eq!(c.nodes[&m].core.commit_index(), p.index);
}

/// Pipelining and flow control: at most `max_inflight_appends` appends in
/// flight per slave; an acknowledgement opens the window again, and all the
/// entries that queued meanwhile go out batched.
#[test]
fn pipelining_is_bounded_and_batches_the_backlog() {
    // A long heartbeat interval: a heartbeat response may free one slot of a
    // full window once per interval (lost appends must not stall it forever).
    let mut c = Cluster::new(3, 0, |cfg| {
        cfg.max_inflight_appends = 2;
        cfg.heartbeat_interval = Duration::from_millis(80);
    });
    let m = c.elect();
    c.propose(m, b"warm").unwrap();
    c.run_for(Duration::from_millis(20));
    let s = c.ids().into_iter().find(|id| *id != m).unwrap();
    c.node_mut(s.0).auto_sync = false;
    let before = appends_to(&c, s.0).len();
    for k in 0..6u8 {
        c.propose(m, &[k]).unwrap();
        c.deliver_all();
    }
    let window = &appends_to(&c, s.0)[before..];
    assert_eq!(window.len(), 2, "two appends in flight, no more");
    c.sync(s.0);
    c.deliver_all();
    let after = &appends_to(&c, s.0)[before + 2..];
    assert!(!after.is_empty());
    let Body::Append { entries, .. } = &after[0].body else {
        unreachable!()
    };
    assert_eq!(
        entries.len(),
        4,
        "the four queued entries travel in one append"
    );
}

/// Batching is bounded by `max_append_bytes`.
#[test]
fn appends_are_bounded_by_bytes() {
    let mut c = Cluster::new(2, 0, |cfg| {
        cfg.max_append_bytes = 300;
        cfg.max_inflight_appends = 64;
    });
    let m = c.elect();
    c.run_for(Duration::from_millis(20));
    let s = c.ids().into_iter().find(|id| *id != m).unwrap();
    let before = appends_to(&c, s.0).len();
    {
        let now = c.now;
        let n = c.nodes.get_mut(&m).unwrap();
        for _ in 0..10 {
            n.core
                .propose(bytes::Bytes::from(vec![7u8; 100]), now, &n.log)
                .unwrap();
        }
    }
    c.process(m);
    c.deliver_all();
    let sent = &appends_to(&c, s.0)[before..];
    let total: usize = sent
        .iter()
        .map(|msg| {
            let Body::Append { entries, .. } = &msg.body else {
                unreachable!()
            };
            let bytes: u64 = entries.iter().map(Entry::size_bytes).sum();
            assert!(bytes <= 300, "append of {bytes} bytes");
            entries.len()
        })
        .sum();
    assert_eq!(total, 10);
    assert_eq!(sent.len(), 5, "two 120-byte entries per append");
}

/// §3.5: a rejected append (a slave that lost entries) sends the master back
/// to probing, and the slave catches up.
#[test]
fn rejection_backs_off_to_probe_and_catches_up() {
    let mut c = Cluster::new(3, 0, |_| {});
    let m = c.elect();
    let s = c.ids().into_iter().find(|id| *id != m).unwrap();
    c.isolate(s.0);
    let mut last = 0;
    for k in 0..30u8 {
        last = c.propose(m, &[k]).unwrap().index;
    }
    c.run_for(Duration::from_millis(50));
    assert!(c.nodes[&s].log.last_index() < last);
    c.heal();
    c.run_for(Duration::from_millis(100));
    assert_eq!(c.nodes[&s].applied_index, last);
    c.assert_applied_agree();
}

/// §3.5 (Figure 3.6 style): a slave with a conflicting uncommitted suffix
/// from an old term truncates it and takes the master's entries.
#[test]
fn conflicting_suffix_is_truncated() {
    let mut c = Cluster::new(3, 0, |cfg| cfg.forced_master = Some(NodeId(1)));
    preset(&mut c, 1, &[(1, 1), (2, 1), (3, 3), (4, 3)], 3, 1);
    preset(&mut c, 2, &[(1, 1), (2, 1), (3, 2), (4, 2), (5, 2)], 3, 1);
    preset(&mut c, 3, &[(1, 1)], 3, 1);
    c.run_for(Duration::from_millis(400));
    assert_eq!(c.master(), Some(NodeId(1)));
    let master_log: Vec<(u64, u64)> = c
        .node(1)
        .log
        .entries
        .iter()
        .map(|e| (e.index, e.term))
        .collect();
    let slave_log: Vec<(u64, u64)> = c
        .node(2)
        .log
        .entries
        .iter()
        .map(|e| (e.index, e.term))
        .collect();
    assert_eq!(master_log, slave_log);
    assert_eq!(&master_log[..4], &[(1, 1), (2, 1), (3, 3), (4, 3)]);
}

/// Learners receive and apply the log but never count toward a majority.
#[test]
fn learners_receive_but_do_not_count() {
    let mut c = Cluster::new(3, 2, |_| {});
    let m = c.elect();
    let p = c.propose(m, b"a").unwrap();
    c.run_for(Duration::from_millis(20));
    for id in [4, 5] {
        assert_eq!(c.node(id).applied_index, p.index);
        assert_eq!(c.node(id).core.role(), Role::Learner);
    }
    // Cut the master off from the other voters: learners still acknowledge,
    // but nothing commits.
    for v in c.ids() {
        if v != m && v.0 <= 3 {
            c.cut.insert((m, v));
            c.cut.insert((v, m));
        }
    }
    let q = c.propose(m, b"b").unwrap();
    c.run_for(Duration::from_millis(20));
    assert!(acks_from(&c, 4).contains(&q.index));
    assert!(c.nodes[&m].core.commit_index() < q.index);
}

/// A one-voter cluster with learners commits on the voter's own fsync.
#[test]
fn one_voter_with_learners_commits_alone() {
    let mut c = Cluster::new(1, 2, |_| {});
    let m = c.elect();
    c.node_mut(2).up = false;
    c.node_mut(3).up = false;
    let p = c.propose(m, b"solo").unwrap();
    assert_eq!(c.nodes[&m].applied_index, p.index);
}

/// Snapshot: a slave that needs collapsed entries is named in
/// `snapshots_to_send`; after it installs one, replication resumes.
#[test]
fn lagging_slave_gets_a_snapshot_then_the_tail() {
    let mut c = Cluster::new(3, 0, |_| {});
    let m = c.elect();
    let s = c.ids().into_iter().find(|id| *id != m).unwrap();
    c.isolate(s.0);
    for k in 0..10u8 {
        c.propose(m, &[k]).unwrap();
    }
    c.run_for(Duration::from_millis(30));
    let applied = c.nodes[&m].applied_index;
    c.nodes.get_mut(&m).unwrap().log.compact(applied);
    c.heal();
    c.run_for(Duration::from_millis(30));
    assert_eq!(c.nodes[&m].snapshot_requests, vec![s]);
    // The caller streams the store snapshot; the slave installs it.
    let term = c.nodes[&m].log.base_term;
    let store = c.nodes[&m].applied.clone();
    let now = c.now;
    {
        let n = c.nodes.get_mut(&s).unwrap();
        n.log.install_snapshot(applied, term);
        n.applied = store;
        n.applied_index = applied;
        n.core
            .snapshot_installed(applied, term, now, &n.log)
            .unwrap();
    }
    c.process(s);
    let p = c.propose(m, b"tail").unwrap();
    c.run_for(Duration::from_millis(50));
    assert_eq!(c.nodes[&s].applied_index, p.index);
    c.assert_applied_agree();
}

/// Durability: after every node crashes and restarts, every applied
/// (committed) entry is still there and stays applied in the same order.
#[test]
fn committed_entries_survive_a_full_restart() {
    let mut c = Cluster::new(3, 0, |_| {});
    let m = c.elect();
    for k in 0..5u8 {
        c.propose(m, &[k]).unwrap();
    }
    c.run_for(Duration::from_millis(20));
    let committed: Vec<Entry> = c.nodes[&m].applied.clone();
    for id in 1..=3 {
        c.crash(id);
    }
    for id in 1..=3 {
        c.restart(id);
    }
    let m2 = c.elect();
    c.propose(m2, b"after").unwrap();
    c.run_for(Duration::from_millis(30));
    for n in c.nodes.values() {
        assert_eq!(&n.applied[..committed.len()], &committed[..]);
    }
    c.assert_applied_agree();
}

/// Lost acknowledgements do not stall commit: with no new proposal, the
/// heartbeat round trip makes the master send an (empty) append and the
/// slaves acknowledge again.
#[test]
fn lost_acknowledgements_are_recovered() {
    let mut c = Cluster::new(3, 0, |_| {});
    let m = c.elect();
    c.run_for(Duration::from_millis(20));
    for id in c.ids() {
        if id != m {
            c.cut.insert((id, m));
        }
    }
    let p = c.propose(m, b"x").unwrap();
    c.deliver_all();
    assert!(
        c.nodes[&m].core.commit_index() < p.index,
        "every ack was lost"
    );
    c.heal();
    c.run_for(Duration::from_millis(30));
    assert_eq!(c.nodes[&m].core.commit_index(), p.index);
}

/// A failed snapshot transfer, reported with `snapshot_failed`, makes the
/// master probe again at once and ask for a new snapshot.
#[test]
fn failed_snapshot_is_requested_again() {
    let mut c = Cluster::new(3, 0, |_| {});
    let m = c.elect();
    let s = c.ids().into_iter().find(|id| *id != m).unwrap();
    c.isolate(s.0);
    for k in 0..5u8 {
        c.propose(m, &[k]).unwrap();
    }
    c.run_for(Duration::from_millis(20));
    let applied = c.nodes[&m].applied_index;
    c.nodes.get_mut(&m).unwrap().log.compact(applied);
    c.heal();
    c.run_for(Duration::from_millis(20));
    assert_eq!(c.nodes[&m].snapshot_requests, vec![s]);
    c.nodes.get_mut(&m).unwrap().snapshot_requests.clear();
    c.run_for(Duration::from_millis(50));
    assert!(
        c.nodes[&m].snapshot_requests.is_empty(),
        "no retry before snapshot_timeout"
    );
    let now = c.now;
    let n = c.nodes.get_mut(&m).unwrap();
    n.core.snapshot_failed(s, now, &n.log).unwrap();
    c.process(m);
    c.run_for(Duration::from_millis(20));
    assert_eq!(
        c.nodes[&m].snapshot_requests,
        vec![s],
        "asked again after the failure"
    );
}

/// Liveness after a restart (§3.5, §3.8): a slave that acknowledged the last
/// entry and restarted before learning it was committed holds it durably but
/// unverified against this term's master, so heartbeats cannot raise its
/// commit. Its heartbeat response reports its lower commit index, and the
/// master sends an (empty) append that lets it verify and catch up, even
/// while the cluster is idle.
#[test]
fn restarted_slave_catches_up_on_commit_while_idle() {
    let mut c = Cluster::new(3, 0, |_| {});
    let m = c.elect();
    c.run_for(Duration::from_millis(20));
    let s = c.ids().into_iter().find(|id| *id != m).unwrap();
    let p = c.propose(m, b"x").unwrap();
    // Deliver until the master knows s holds the entry durably.
    let mut steps = 0;
    while c.nodes[&m]
        .core
        .peer_progress(s)
        .map_or(0, |(matched, _)| matched)
        < p.index
    {
        if !c.deliver_one() {
            c.tick(Duration::from_millis(1));
        }
        steps += 1;
        assert!(steps < 10_000, "s never acknowledged the entry");
    }
    // From now on nothing from the master reaches s: it cannot learn the commit.
    c.cut.insert((m, s));
    c.run_for(Duration::from_millis(20));
    assert_eq!(c.nodes[&m].core.commit_index(), p.index);
    assert!(c.nodes[&s].core.commit_index() < p.index);
    c.crash(s.0);
    c.restart(s.0);
    c.heal();
    // Idle: no proposal from here on.
    let caught_up = c.run_until(Duration::from_secs(5), |c| {
        c.nodes[&s].core.commit_index() >= p.index
    });
    assert!(
        caught_up,
        "restarted slave stuck at commit {} below {}",
        c.nodes[&s].core.commit_index(),
        p.index
    );
    c.assert_applied_agree();
}

/// Heartbeats of `from` that carry `commit` (or more), delivered so far.
fn commit_heartbeats(c: &Cluster, from: NodeId, commit: u64) -> usize {
    c.delivered
        .iter()
        .filter(|m| {
            m.from == from && matches!(m.body, Body::Heartbeat { commit: k, .. } if k >= commit)
        })
        .count()
}

/// `commit_announce_delay`: a new commit index waits for the next append to
/// carry it; only when none goes within the delay does a heartbeat tell the
/// slaves. With no delay the heartbeat goes at once.
#[test]
fn commit_announcement_rides_on_appends_within_the_delay() {
    let mut c = Cluster::new(3, 0, |cfg| {
        cfg.commit_announce_delay = Duration::from_millis(5);
    });
    let m = c.elect();
    c.run_for(Duration::from_millis(30));
    let first = c.propose(m, b"one").unwrap().index;
    c.deliver_all(); // appended, acknowledged, committed on the master
    assert_eq!(c.node(m.0).core.commit_index(), first);
    assert_eq!(commit_heartbeats(&c, m, first), 0, "announced at once");
    for s in c.ids().into_iter().filter(|s| *s != m) {
        assert!(
            c.node(s.0).core.commit_index() < first,
            "slave {s} told early"
        );
    }
    // A proposal within the delay: its appends carry the commit.
    c.advance(Duration::from_millis(2));
    let second = c.propose(m, b"two").unwrap().index;
    c.deliver_all();
    for s in c.ids().into_iter().filter(|s| *s != m) {
        assert!(
            c.node(s.0).core.commit_index() >= first,
            "slave {s} not told by the append"
        );
    }
    assert_eq!(
        commit_heartbeats(&c, m, first),
        0,
        "heartbeat despite the append"
    );
    // Nothing more to send: once the delay passes, heartbeats tell the rest.
    let due = c
        .node(m.0)
        .core
        .commit_announce_due()
        .expect("an announcement is owed");
    c.run_for(Duration::from_millis(4));
    assert_eq!(
        commit_heartbeats(&c, m, second),
        0,
        "announced before the delay"
    );
    c.run_for(Duration::from_millis(2));
    assert_eq!(
        commit_heartbeats(&c, m, second),
        2,
        "not announced at {due:?}"
    );
    assert_eq!(c.node(m.0).core.commit_announce_due(), None);
    for s in c.ids() {
        assert_eq!(c.node(s.0).applied_index, second, "node {s}");
    }

    // No delay: the heartbeat leaves with the round that committed.
    let mut c = Cluster::new(3, 0, |cfg| cfg.commit_announce_delay = Duration::ZERO);
    let m = c.elect();
    c.run_for(Duration::from_millis(30));
    let third = c.propose(m, b"three").unwrap().index;
    c.deliver_all();
    assert_eq!(commit_heartbeats(&c, m, third), 2);
    for s in c.ids() {
        assert_eq!(c.node(s.0).applied_index, third, "node {s}");
    }
}
