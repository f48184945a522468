//! A node that lost its disk (`consensus::recovery` has the argument):
//! it neither votes nor counts until it has caught up, a new
//! cluster of empty nodes still elects at once, and the master starts a
//! wiped peer's replication from scratch.

use consensus::testing::Cluster;
use consensus::{AppendResult, Body, Message, NodeId, ReadError, Role, Standing, Time};
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);

fn wait(c: &mut Cluster, ms: u64, done: impl Fn(&Cluster) -> bool) -> bool {
    c.run_until(MS * ms as u32, done)
}

/// A cluster of three nodes that all start with nothing persisted: each
/// asks the others, finds every voter empty at term 0, and the cluster
/// elects a master without waiting for any lease or recovery period.
#[test]
fn a_new_cluster_of_empty_nodes_elects_at_once() {
    let mut c = Cluster::new(3, 0, |_| {});
    for id in 1..=3 {
        c.wipe(id);
        assert_eq!(c.node(id).core.standing(), Standing::Unknown);
    }
    // Election timeouts are 100-200 ms; the recovery wait is ~221 ms.
    assert!(
        wait(&mut c, 210, |c| c.master().is_some()),
        "a new cluster must elect within an election timeout"
    );
    for id in 1..=3 {
        assert_eq!(c.node(id).core.standing(), Standing::Trusted);
        assert_eq!(
            c.node(id).hard_state.standing,
            Standing::Trusted,
            "the decision is persisted"
        );
    }
    c.assert_one_master_per_term();
}

/// Runs the operator's steps of the safety issue: C paused (here: cut
/// off), writes acknowledged by A and B, B wiped and restarted, A killed,
/// C back. Returns the cluster and the entries A had committed.
fn wiped_slave_and_dead_master(broken: bool) -> (Cluster, u64, NodeId, NodeId, NodeId) {
    let mut c = Cluster::new(3, 0, |_cfg| {
        #[cfg(feature = "broken")]
        if broken {
            _cfg.broken = Some(consensus::Broken::WipedNodeVotes);
        }
    });
    let _ = broken;
    let a = c.elect();
    let mut others = c.ids().into_iter().filter(|id| *id != a);
    let (b, cc) = (others.next().unwrap(), others.next().unwrap());
    c.run_for(MS * 50);
    c.isolate(cc.0);
    for k in 0..50u32 {
        c.propose(a, &k.to_le_bytes()).expect("master takes writes");
        c.deliver_all();
    }
    c.run_for(MS * 20);
    let committed = c.node(a.0).core.commit_index();
    assert!(committed >= 51, "A and B committed the 50 writes");
    c.wipe(b.0);
    c.crash(a.0);
    c.heal();
    c.isolate(a.0);
    (c, committed, a, b, cc)
}

/// The reproduction of the safety issue, on the core: without the master
/// that holds the writes, no master is elected (the wiped node does not
/// vote); once it is back, every node ends with all of them.
#[test]
fn a_wiped_voter_does_not_help_elect_a_stale_master() {
    let (mut c, committed, a, b, cc) = wiped_slave_and_dead_master(false);
    c.run_for(MS * 2_000);
    assert_eq!(
        c.master(),
        None,
        "C lacks the writes and B must not vote for it"
    );
    assert_ne!(c.node(b.0).core.standing(), Standing::Trusted);
    // A comes back: A (or C, after catching up from A) leads, and B
    // recovers from it.
    c.heal();
    c.restart(a.0);
    assert!(wait(&mut c, 3_000, |c| {
        c.master().is_some()
            && c.nodes
                .values()
                .all(|n| n.applied_index >= committed && n.core.standing() == Standing::Trusted)
    }));
    c.assert_one_master_per_term();
    c.assert_applied_agree();
    let m = c.master().unwrap();
    assert!(m == a || m == cc || m == b);
}

/// The same steps with the deliberately broken variant, in which a wiped
/// node votes at once: C is elected without the writes. This is what the
/// test above defends against.
#[cfg(feature = "broken")]
#[test]
fn the_broken_variant_elects_a_master_without_the_writes() {
    let (mut c, committed, _a, _b, cc) = wiped_slave_and_dead_master(true);
    assert!(wait(&mut c, 2_000, |c| c.master() == Some(cc)));
    assert!(
        c.node(cc.0).core.commit_index() < committed,
        "the new master lacks acknowledged writes"
    );
}

/// A wiped slave whose master never changes: the master notices its new
/// incarnation, replicates to it from scratch (its rejections are no longer
/// taken as stale), and the slave votes and counts again once caught up.
#[test]
fn a_wiped_slave_catches_up_from_the_same_master() {
    let mut c = Cluster::new(3, 0, |_| {});
    let a = c.elect();
    for k in 0..20u32 {
        c.propose(a, &k.to_le_bytes()).unwrap();
        c.deliver_all();
    }
    c.run_for(MS * 20);
    let b = c.ids().into_iter().find(|id| *id != a).unwrap();
    c.wipe(b.0);
    assert_eq!(c.node(b.0).core.standing(), Standing::Unknown);
    assert!(wait(&mut c, 2_000, |c| {
        c.node(b.0).core.standing() == Standing::Trusted
    }));
    assert_eq!(c.master(), Some(a), "no election was needed");
    let committed = c.node(a.0).core.commit_index();
    assert!(wait(&mut c, 200, |c| c.node(b.0).applied_index >= committed));
    c.assert_applied_agree();
    // It counts again: with the third node gone, A and B still commit.
    let third = c.ids().into_iter().find(|id| *id != a && *id != b).unwrap();
    c.isolate(third.0);
    let p = c.propose(a, b"after").unwrap();
    assert!(wait(&mut c, 200, |c| c.node(a.0).core.commit_index() >= p.index));
}

/// While a wiped voter recovers, it counts toward neither a commit nor the
/// lease: with the third voter cut off, the master commits nothing, loses
/// its lease and steps down, although the wiped node acknowledges.
#[test]
fn a_recovering_voter_counts_toward_neither_commit_nor_lease() {
    let mut c = Cluster::new(3, 0, |_| {});
    let a = c.elect();
    c.run_for(MS * 30);
    let mut others = c.ids().into_iter().filter(|id| *id != a);
    let (b, third) = (others.next().unwrap(), others.next().unwrap());
    c.isolate(third.0);
    c.wipe(b.0);
    c.run_for(MS * 20);
    let p = c.propose(a, b"x").expect("still master");
    c.run_for(MS * 150);
    assert!(
        c.node(a.0).core.commit_index() < p.index,
        "committed with a recovering node's acknowledgement"
    );
    let now = c.node(a.0).local_time(c.now);
    assert!(matches!(
        c.node(a.0).core.consistent_read_index(now),
        Err(ReadError::NotMaster { .. } | ReadError::LeaseNotHeld { .. })
    ));
    assert_ne!(c.node(a.0).core.role(), Role::Master, "check-quorum");
    // The third voter returns: a master commits, B recovers.
    c.heal();
    assert!(wait(&mut c, 3_000, |c| {
        c.master().is_some() && c.node(b.0).core.standing() == Standing::Trusted
    }));
    let m = c.master().unwrap();
    let p = c.propose(m, b"y").unwrap();
    assert!(wait(&mut c, 300, |c| c
        .nodes
        .values()
        .all(|n| n.applied_index >= p.index)));
    c.assert_applied_agree();
    c.assert_one_master_per_term();
}

/// The master follows one incarnation of a peer per term: a recovering
/// message from a new one resets the peer's progress, and late messages
/// from the replaced one are ignored.
#[test]
fn late_messages_of_a_replaced_incarnation_are_ignored() {
    let mut c = Cluster::new(3, 0, |_| {});
    let a = c.elect();
    for k in 0..5u32 {
        c.propose(a, &k.to_le_bytes()).unwrap();
        c.deliver_all();
    }
    c.run_for(MS * 20);
    let b = c.ids().into_iter().find(|id| *id != a).unwrap();
    let old = c.node(b.0).core.incarnation();
    let term = c.node(a.0).core.term();
    let (matched, _) = c.node(a.0).core.peer_progress(b).unwrap();
    assert!(matched >= 6);
    let step = |c: &mut Cluster, incarnation: u64, recovering: bool, match_index: u64| {
        let msg = Message {
            from: b,
            to: a,
            term,
            body: Body::AppendResponse {
                sent_at: Time(1),
                result: AppendResult::Accepted { match_index },
                incarnation,
                recovering,
            },
        };
        let now = c.now;
        let n = c.nodes.get_mut(&a).unwrap();
        let local = n.local_time(now);
        n.core.step(msg, local, &n.log).unwrap();
    };
    // A new incarnation says it is recovering: progress starts over.
    step(&mut c, old + 1, true, 0);
    assert_eq!(c.node(a.0).core.peer_progress(b).unwrap().0, 0);
    // The old incarnation's late acknowledgement is not believed.
    step(&mut c, old, false, matched);
    assert_eq!(c.node(a.0).core.peer_progress(b).unwrap().0, 0);
    // Nor is it when it claims to be recovering (it was replaced).
    step(&mut c, old, true, matched);
    assert_eq!(c.node(a.0).core.peer_progress(b).unwrap().0, 0);
    // A non-recovering message of an incarnation the progress does not
    // follow is not believed either.
    step(&mut c, old + 2, false, matched);
    assert_eq!(c.node(a.0).core.peer_progress(b).unwrap().0, 0);
    // The new incarnation's acknowledgements are.
    step(&mut c, old + 1, true, 3);
    assert_eq!(c.node(a.0).core.peer_progress(b).unwrap().0, 3);
}

/// An empty node that joins a cluster with a history (a node added to a
/// running cluster, or one that lost its disk) recovers; and a node whose
/// hard state said `Recovering` when it stopped is still recovering after a
/// restart, however far it got.
#[test]
fn recovering_survives_a_restart() {
    let mut c = Cluster::new(3, 0, |_| {});
    let a = c.elect();
    for k in 0..10u32 {
        c.propose(a, &k.to_le_bytes()).unwrap();
        c.deliver_all();
    }
    let b = c.ids().into_iter().find(|id| *id != a).unwrap();
    c.wipe(b.0);
    assert!(wait(&mut c, 100, |c| {
        c.node(b.0).hard_state.standing == Standing::Recovering
    }));
    c.crash(b.0);
    c.restart(b.0);
    assert_eq!(c.node(b.0).core.standing(), Standing::Recovering);
    assert!(wait(&mut c, 2_000, |c| {
        c.node(b.0).core.standing() == Standing::Trusted
    }));
    c.assert_applied_agree();
}

/// The recovery wait outlasts an election timeout and a lease, stretched
/// by the clock-drift bound.
#[test]
fn the_recovery_wait_covers_an_election_and_a_lease() {
    let c = consensus::testing::test_config(NodeId(1), vec![NodeId(1)], vec![], 1);
    let wait = c.recovery_wait();
    assert!(wait > c.election_timeout_max && wait > c.lease_period);
    // 200 ms * (200 + 10) / (200 - 10)
    assert_eq!(wait, Duration::from_nanos(221_052_632));
    assert_eq!(
        consensus::Config::new(NodeId(1), vec![NodeId(1), NodeId(2), NodeId(3)])
            .recovery_answers_needed(),
        2
    );
}

/// An empty node whose peers have empty logs but a term above 0 (elections
/// were tried) becomes trusted only after the recovery wait, at the highest
/// term answered, with its vote there spent: its earlier incarnation may
/// have *won* that term (its barrier wiped with it), and a second master of
/// the same term must not follow with its new vote. (Found by the
/// simulator, seed 1607, before the vote was spent.)
#[test]
fn a_fresh_decision_after_tried_elections_spends_the_vote() {
    use consensus::testing::{test_config, MemLog};
    use consensus::{Core, HardState};
    let voters = vec![NodeId(1), NodeId(2), NodeId(3)];
    let config = test_config(NodeId(1), voters, vec![], 7);
    let wait = config.recovery_wait();
    let log = MemLog::new();
    let mut core = Core::new(config, HardState::unknown(77), &log, 0, Time(0)).unwrap();
    let answer =
        |core: &mut Core, from: u64, term: u64, standing: Standing, asked_at: Time, now: Time| {
            let msg = Message {
                from: NodeId(from),
                to: NodeId(1),
                term,
                body: Body::RecoveryReply {
                    asked_at,
                    standing,
                    last_index: 0,
                },
            };
            core.step(msg, now, &log).unwrap();
        };
    // Answers to a question asked before the wait do not decide.
    let early = Time(1_000_000);
    core.tick(early, &log).unwrap();
    answer(&mut core, 2, 1, Standing::Trusted, early, early);
    answer(&mut core, 3, 0, Standing::Unknown, early, early);
    assert_eq!(core.standing(), Standing::Unknown);
    // After the wait: trusted, at term 1, its vote there spent.
    let late = Time(wait.as_nanos() as u64 + 1);
    core.tick(late, &log).unwrap();
    answer(&mut core, 2, 1, Standing::Trusted, late, late);
    answer(&mut core, 3, 0, Standing::Unknown, late, late);
    assert_eq!(core.standing(), Standing::Trusted);
    let hs = core.hard_state();
    assert_eq!((hs.term, hs.voted_for), (1, Some(NodeId(1))));
    let _ = core.take_ready(&log).unwrap();
    let vote = Message {
        from: NodeId(3),
        to: NodeId(1),
        term: 1,
        body: Body::Vote {
            last_index: 0,
            last_term: 0,
            transfer: false,
        },
    };
    core.step(vote, Time(late.0 + 1), &log).unwrap();
    let rd = core.take_ready(&log).unwrap();
    assert!(
        rd.messages
            .iter()
            .all(|m| !matches!(m.body, Body::VoteResponse { granted: true })),
        "no second vote in term 1"
    );
}
