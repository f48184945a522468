//! Master lease (§6.4.1), check-quorum (§6.2), lease guards on slaves, and
//! the property that no two nodes hold a lease at the same real instant.

use consensus::testing::Cluster;
use consensus::LogRead;
use consensus::{Body, Message, NodeId, ReadError, Role, Time};
use std::time::Duration;

/// A master holds the lease once a quorum acknowledged it and an entry of its
/// term is committed; it answers its commit index.
#[test]
fn master_serves_reads_under_lease() {
    let mut c = Cluster::new(3, 0, |_| {});
    let m = c.elect();
    c.run_for(Duration::from_millis(20));
    let p = c.propose(m, b"x").unwrap();
    c.deliver_all();
    let n = &c.nodes[&m];
    assert_eq!(n.core.consistent_read_index(c.now), Ok(p.index));
    for (id, n) in &c.nodes {
        if *id != m {
            assert_eq!(
                n.core.consistent_read_index(c.now),
                Err(ReadError::NotMaster { master: Some(m) })
            );
        }
    }
}

/// §6.4: right after election, before an entry of its term commits, a new
/// master does not serve reads.
#[test]
fn no_read_before_an_entry_of_the_term_commits() {
    let mut c = Cluster::new(3, 0, |_| {});
    for id in 1..=3 {
        c.node_mut(id).auto_sync = false;
    }
    // Elect without syncing anything: the barrier cannot commit.
    assert!(c.run_until(Duration::from_secs(2), |c| c.master().is_some()));
    let m = c.master().unwrap();
    assert!(matches!(
        c.nodes[&m].core.consistent_read_index(c.now),
        Err(ReadError::LeaseNotHeld { .. })
    ));
    for id in 1..=3 {
        c.sync(id);
    }
    c.deliver_all();
    assert!(c.nodes[&m].core.consistent_read_index(c.now).is_ok());
}

/// The lease lapses `lease_period - max_clock_drift` after the send time of
/// the last quorum acknowledgement, and check-quorum then makes the master
/// step down.
#[test]
fn isolated_master_loses_lease_then_steps_down() {
    let mut c = Cluster::new(3, 0, |_| {});
    let m = c.elect();
    c.run_for(Duration::from_millis(150));
    c.isolate(m.0);
    let cut_at = c.now;
    let mut lost_at = None;
    let mut stepped_down_at = None;
    for _ in 0..300 {
        c.tick(Duration::from_millis(1));
        c.deliver_all();
        let n = &c.nodes[&m];
        if lost_at.is_none() && n.core.consistent_read_index(c.now).is_err() {
            lost_at = Some(c.now);
        }
        if stepped_down_at.is_none() && n.core.role() != Role::Master {
            stepped_down_at = Some(c.now);
        }
    }
    let lost = lost_at.expect("lease lost").0 - cut_at.0;
    let down = stepped_down_at.expect("stepped down").0 - cut_at.0;
    // Last heartbeat acknowledged was sent at most one interval before the cut.
    assert!(lost <= 90_000_000, "lease held {lost} ns after the cut");
    assert!(lost >= 80_000_000, "lease lost too early: {lost} ns");
    assert!(down <= 91_000_000, "stepped down {down} ns after the cut");
}

/// A slave that acknowledged a master ignores another node's vote request
/// while the lease it granted may run, without raising its term.
#[test]
fn slave_in_lease_ignores_vote_requests() {
    let mut c = Cluster::new(3, 0, |_| {});
    let m = c.elect();
    c.run_for(Duration::from_millis(30));
    let s = c.ids().into_iter().find(|id| *id != m).unwrap();
    let other = c.ids().into_iter().find(|id| *id != m && *id != s).unwrap();
    let term = c.nodes[&s].core.term();
    let last = c.nodes[&m].log.entries.len() as u64 + 10;
    let vote = Message {
        from: other,
        to: s,
        term: term + 1,
        body: Body::Vote {
            last_index: last,
            last_term: term,
            transfer: false,
        },
    };
    let before = c.delivered.len();
    c.queue.push_back(vote.clone());
    c.deliver_all();
    assert_eq!(
        c.nodes[&s].core.term(),
        term,
        "term not raised inside the lease"
    );
    assert!(!c.delivered[before..]
        .iter()
        .any(|m| m.from == s && matches!(m.body, Body::VoteResponse { granted: true })));
    // Once the master is gone and the guard expired, the same request wins.
    c.crash(m.0);
    c.run_for(Duration::from_millis(101));
    let mut vote = vote;
    vote.term = c.nodes[&s].core.term() + 5;
    let before = c.delivered.len();
    c.queue.push_back(vote);
    c.deliver_all();
    assert!(c.delivered[before..]
        .iter()
        .any(|m| m.from == s && matches!(m.body, Body::VoteResponse { granted: true })));
}

/// A hand-over forfeits the lease at once.
#[test]
fn hand_over_forfeits_the_lease() {
    let mut c = Cluster::new(3, 0, |_| {});
    let m = c.elect();
    c.propose(m, b"x").unwrap();
    c.run_for(Duration::from_millis(30));
    assert!(c.nodes[&m].core.consistent_read_index(c.now).is_ok());
    let target = c.ids().into_iter().find(|id| *id != m).unwrap();
    let now = c.now;
    let n = c.nodes.get_mut(&m).unwrap();
    assert!(n.core.hand_over_to(target, now, &n.log).unwrap());
    assert!(n.core.consistent_read_index(now).is_err());
    c.process(m);
    c.deliver_all();
    assert_eq!(c.master(), Some(target));
}

/// The lease property under faults, drift and restarts: at every
/// millisecond, at most one node answers `consistent_read_index`. Clocks run
/// at rates within ±4% (so a 100 ms lease period drifts by at most 4 ms,
/// inside the 10 ms margin's half).
#[test]
fn never_two_lease_holders_at_once() {
    for seed in 0..12u64 {
        lease_run(seed, |_| {});
    }
    // Hand-overs to preferred masters forfeit leases and bypass guards: the
    // property must survive them too.
    for seed in 12..20u64 {
        lease_run(seed, |cfg| {
            cfg.preferred_masters = vec![NodeId(3), NodeId(1)]
        });
    }
}

fn lease_run(seed: u64, tweak: impl Fn(&mut consensus::Config)) {
    lease_run_drift(seed, 40_000, tweak);
}

/// `drift_ppm`: clock rates are drawn in `±drift_ppm`.
fn lease_run_drift(seed: u64, drift_ppm: u64, tweak: impl Fn(&mut consensus::Config)) {
    {
        let mut c = Cluster::new(5, 0, |cfg| {
            cfg.seed = seed;
            tweak(cfg);
        });
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for id in 1..=5u64 {
            c.node_mut(id).clock_rate_ppm =
                (next() % (2 * drift_ppm + 1)) as i64 - drift_ppm as i64;
        }
        let mut holders_seen = 0;
        for step in 0..3_000u64 {
            match next() % 200 {
                0 => {
                    let id = 1 + next() % 5;
                    c.isolate(id);
                }
                1 | 2 => c.heal(),
                3 => {
                    let id = 1 + next() % 5;
                    if c.node(id).up {
                        c.crash(id);
                    }
                }
                4 | 5 => {
                    for id in 1..=5 {
                        if !c.node(id).up {
                            c.restart(id);
                        }
                    }
                }
                6..=40 => {
                    if let Some(m) = c.master() {
                        let _ = c.propose(m, &step.to_le_bytes());
                    }
                }
                41..=60 => {
                    // Drop a message.
                    c.queue.pop_front();
                }
                61 if next() % 4 == 0 => {
                    // A process pause (GC, SIGSTOP) of up to 600 ms, about
                    // once a second; mostly of the master.
                    let id = match c.master() {
                        Some(m) if next() % 4 != 0 => m.0,
                        _ => 1 + next() % 5,
                    };
                    let period = Duration::from_millis(next() % 600);
                    c.pause(id, period);
                }
                _ => {}
            }
            // A read may arrive at any running node before it next ticks
            // (e.g. right after a pause).
            c.advance(Duration::from_millis(1));
            let holders: Vec<NodeId> = c
                .nodes
                .iter()
                .filter(|(_, n)| {
                    n.running(c.now) && n.core.consistent_read_index(n.local_time(c.now)).is_ok()
                })
                .map(|(id, _)| *id)
                .collect();
            assert!(
                holders.len() <= 1,
                "seed {seed} step {step}: lease holders {holders:?}"
            );
            holders_seen += holders.len();
            c.tick_nodes();
            c.deliver_all();
        }
        assert!(
            holders_seen > 100,
            "seed {seed}: the lease was hardly ever held"
        );
        c.assert_one_master_per_term();
        c.assert_applied_agree();
        let _ = Time(0);
    }
}

/// The lease check can fail: serving reads without a lease is caught.
#[cfg(feature = "broken")]
#[test]
fn read_without_lease_is_caught() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let found = (0..40u64).find(|seed| {
        std::panic::catch_unwind(|| {
            lease_run(*seed, |cfg| {
                cfg.broken = Some(consensus::Broken::ReadWithoutLease)
            })
        })
        .is_err()
    });
    std::panic::set_hook(hook);
    println!("ReadWithoutLease caught by seed {found:?}");
    assert!(found.is_some());
}

/// Many more seeds, for use before releases:
/// `CONSENSUS_SEEDS=2000 cargo test -p consensus --test lease -- --ignored`.
#[test]
#[ignore]
fn lease_long() {
    let seeds: u64 = std::env::var("CONSENSUS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    for seed in 1_000..1_000 + seeds {
        if seed % 2 == 0 {
            lease_run(seed, |cfg| cfg.preferred_masters = vec![NodeId(2)]);
        } else {
            lease_run(seed, |_| {});
        }
    }
}

/// Pauses a master whose clock runs `rate_ppm` slow among slaves whose
/// clocks run `rate_ppm` fast; counts the runs in which two nodes hold a
/// lease at once (checked before the resumed master ticks).
fn overlapping_leases(rate_ppm: i64) -> u32 {
    let mut overlaps = 0;
    for seed in 0..20u64 {
        for pause_ms in [110u64, 120, 130, 140] {
            let mut c = Cluster::new(3, 0, |cfg| {
                cfg.seed = seed;
                cfg.preferred_masters = vec![NodeId(1)];
            });
            c.node_mut(1).clock_rate_ppm = -rate_ppm;
            c.node_mut(2).clock_rate_ppm = rate_ppm;
            c.node_mut(3).clock_rate_ppm = rate_ppm;
            c.run_for(Duration::from_secs(1));
            if c.master() != Some(NodeId(1)) {
                continue;
            }
            c.pause(1, Duration::from_millis(pause_ms));
            for _ in 0..pause_ms + 5 {
                c.advance(Duration::from_millis(1));
                let holders = c
                    .nodes
                    .values()
                    .filter(|n| {
                        n.running(c.now)
                            && n.core.consistent_read_index(n.local_time(c.now)).is_ok()
                    })
                    .count();
                if holders > 1 {
                    overlaps += 1;
                    break;
                }
                c.tick_nodes();
                c.deliver_all();
            }
        }
    }
    overlaps
}

/// The clock assumption matters: with rates far outside what
/// `max_clock_drift` covers (master 40% slow, slaves 40% fast), a paused
/// master still believes in its lease when it resumes while the slaves,
/// their guards run out early, elected a master that holds one too. Within
/// the assumption (4%), the same scenario never overlaps.
#[test]
fn drift_beyond_the_margin_breaks_the_lease() {
    assert!(
        overlapping_leases(400_000) > 0,
        "40% drift should allow overlapping leases"
    );
    assert_eq!(
        overlapping_leases(40_000),
        0,
        "4% drift is within the margin"
    );
}

/// `Core::lease` computes the instant the lease ends once: the lease holds
/// (as the core answers it at that time) at every instant before `until`
/// and not at `until`, as long as no new acknowledgement arrives.
#[test]
fn lease_until_is_exactly_where_the_lease_stops() {
    let mut c = Cluster::new(3, 0, |_| {});
    let m = c.elect();
    c.run_for(Duration::from_millis(50));
    c.isolate(m.0); // no new acknowledgement from now on
    let n = &c.nodes[&m];
    let now = c.now;
    let lease = n.core.lease(now).expect("held");
    assert_eq!(lease.read_index, n.core.commit_index());
    assert!(lease.until > now);
    let period = Duration::from_millis(100 - 10); // lease_period - max_clock_drift
    assert!(lease.until <= now.plus(period), "at most a lease from now");
    for t in [now, Time(lease.until.0 - 1)] {
        assert_eq!(n.core.lease(t), Ok(lease), "holds at {t:?}");
    }
    assert!(matches!(
        n.core.lease(lease.until),
        Err(ReadError::LeaseNotHeld { .. })
    ));
}

/// A single-voter cluster's master holds its lease alone; `until` is a
/// lease period ahead of the time asked.
#[test]
fn a_lone_master_always_holds_its_lease() {
    let mut c = Cluster::new(1, 0, |_| {});
    let m = c.elect();
    c.run_for(Duration::from_millis(20));
    let n = &c.nodes[&m];
    let later = c.now.plus(Duration::from_secs(5));
    let lease = n.core.lease(later).expect("held");
    assert_eq!(lease.until, later.plus(Duration::from_millis(100)));
}

/// A master paused past its lease (SIGSTOP, a long GC) does not come back
/// as master for anything it does first on waking: a proposal queued
/// during the pause is refused and sends no append in the old term (such
/// appends made the slaves take it for a live master again, so that they
/// refused every pre-vote for one more election timeout although it was
/// about to step down: a ghost master, issue 14). It steps down at the
/// first thing it does, and the slaves elect another master.
#[test]
fn a_master_paused_past_its_lease_steps_down_before_anything_else() {
    let mut c = Cluster::new(3, 0, |cfg| {
        // The slaves do not campaign during the pause.
        cfg.election_timeout_min = Duration::from_millis(500);
        cfg.election_timeout_max = Duration::from_millis(600);
    });
    let m = c.elect();
    c.run_for(Duration::from_millis(50));
    let term = c.nodes[&m].core.term();
    c.pause(m.0, Duration::from_millis(250));
    // The first thing it does on waking (its pause just over, before it
    // ticks): propose.
    c.run_for(Duration::from_millis(249));
    c.advance(Duration::from_millis(2));
    assert_eq!(
        c.nodes[&m].core.role(),
        Role::Master,
        "still master, not ticked yet"
    );
    assert!(matches!(
        c.propose(m, b"queued during the pause"),
        Err(consensus::ProposeError::NotMaster { .. })
    ));
    assert_ne!(c.nodes[&m].core.role(), Role::Master);
    let others: Vec<NodeId> = c.ids().into_iter().filter(|id| *id != m).collect();
    assert!(
        c.run_until(Duration::from_millis(700), |c| c
            .master()
            .is_some_and(|new| new != m && c.nodes[&new].core.term() > term)),
        "no new master"
    );
    for id in others {
        let log = &c.nodes[&id].log;
        assert!((1..=log.last_index())
            .filter_map(|i| log.entry(i))
            .all(|e| e.payload.as_ref() != b"queued during the pause"));
    }
}
