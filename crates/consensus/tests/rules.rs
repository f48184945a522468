//! Single-core rules, driven message by message: voting (§3.4, §3.6.1),
//! terms (§3.3), the caller contract (hard state before messages), refusal
//! of malformed input, configuration checks, determinism.

use bytes::Bytes;
use consensus::testing::{test_config, Cluster, MemLog};
use consensus::{
    AppendResult, Body, Config, ConfigError, Core, Entry, HardState, Message, NodeId, ProposeError,
    Role, StepError, Time,
};
use std::time::Duration;

const MS: u64 = 1_000_000;

fn voters() -> Vec<NodeId> {
    vec![NodeId(1), NodeId(2), NodeId(3)]
}

fn log_with(terms: &[u64]) -> MemLog {
    let mut log = MemLog::new();
    let entries: Vec<Entry> = terms
        .iter()
        .enumerate()
        .map(|(k, t)| Entry {
            index: k as u64 + 1,
            term: *t,
            payload: Bytes::from_static(b"p"),
        })
        .collect();
    log.apply(None, &entries);
    log.sync();
    log
}

/// Node 1 with the given log and term, past its restart lease guard.
fn node1(log: &MemLog, term: u64) -> Core {
    let cfg = test_config(NodeId(1), voters(), vec![], 1);
    let mut core = Core::new(
        cfg,
        HardState {
            term,
            voted_for: None,
            ..HardState::default()
        },
        log,
        0,
        Time(0),
    )
    .unwrap();
    core.tick(Time(150 * MS), log).unwrap(); // guard over; may start a pre-vote
    let _ = core.take_ready(log).unwrap();
    core
}

fn vote(from: u64, term: u64, last_index: u64, last_term: u64) -> Message {
    Message {
        from: NodeId(from),
        to: NodeId(1),
        term,
        body: Body::Vote {
            last_index,
            last_term,
            transfer: false,
        },
    }
}

fn granted(core: &mut Core, log: &MemLog) -> Option<bool> {
    let rd = core.take_ready(log).unwrap();
    rd.messages.iter().find_map(|m| match m.body {
        Body::VoteResponse { granted } | Body::PreVoteResponse { granted } => Some(granted),
        _ => None,
    })
}

/// §3.6.1: a vote only for a candidate whose log is at least as up to date
/// (higher last term, or same last term and at least as long).
#[test]
fn vote_only_for_up_to_date_candidate() {
    let log = log_with(&[1, 2, 2]);
    let now = Time(200 * MS);
    // Lower last term: refused, even with a longer log.
    let mut c = node1(&log, 2);
    c.step(vote(2, 3, 10, 1), now, &log).unwrap();
    assert_eq!(granted(&mut c, &log), Some(false));
    // Same last term, shorter log: refused.
    let mut c = node1(&log, 2);
    c.step(vote(2, 3, 2, 2), now, &log).unwrap();
    assert_eq!(granted(&mut c, &log), Some(false));
    // Same last term, same length: granted.
    let mut c = node1(&log, 2);
    c.step(vote(2, 3, 3, 2), now, &log).unwrap();
    assert_eq!(granted(&mut c, &log), Some(true));
    // Higher last term, shorter log: granted.
    let mut c = node1(&log, 2);
    c.step(vote(2, 3, 1, 3), now, &log).unwrap();
    assert_eq!(granted(&mut c, &log), Some(true));
}

/// The same rule for pre-votes (§9.6), which change no state.
#[test]
fn pre_vote_checks_the_log_and_changes_nothing() {
    let log = log_with(&[1, 2, 2]);
    let now = Time(200 * MS);
    let mut c = node1(&log, 2);
    let pre = |last_index, last_term| Message {
        from: NodeId(2),
        to: NodeId(1),
        term: 3,
        body: Body::PreVote {
            last_index,
            last_term,
        },
    };
    c.step(pre(2, 2), now, &log).unwrap();
    assert_eq!(granted(&mut c, &log), Some(false));
    c.step(pre(3, 2), now, &log).unwrap();
    let rd = c.take_ready(&log).unwrap();
    assert!(rd.hard_state.is_none(), "a pre-vote persists nothing");
    assert!(matches!(
        rd.messages[0].body,
        Body::PreVoteResponse { granted: true }
    ));
    assert_eq!(rd.messages[0].term, 3);
    assert_eq!(c.term(), 2, "a pre-vote does not raise the term");
}

/// §3.4: at most one vote per term, persisted in the same Ready as the
/// response (the caller persists before sending).
#[test]
fn one_vote_per_term_and_persisted_with_the_response() {
    let log = log_with(&[1]);
    let now = Time(200 * MS);
    let mut c = node1(&log, 1);
    c.step(vote(2, 2, 1, 1), now, &log).unwrap();
    let rd = c.take_ready(&log).unwrap();
    assert_eq!(
        rd.hard_state,
        Some(HardState {
            term: 2,
            voted_for: Some(NodeId(2)),
            ..HardState::default()
        })
    );
    assert!(matches!(
        rd.messages[0].body,
        Body::VoteResponse { granted: true }
    ));
    c.step(vote(3, 2, 5, 1), now, &log).unwrap();
    assert_eq!(
        granted(&mut c, &log),
        Some(false),
        "second candidate, same term"
    );
    c.step(vote(2, 2, 1, 1), now, &log).unwrap();
    assert_eq!(
        granted(&mut c, &log),
        Some(true),
        "the same candidate again (retransmission)"
    );
}

/// §3.3: a message with a higher term makes a master step down; the term
/// never decreases and stale-term messages are answered with the newer term.
#[test]
fn terms_only_grow_and_stale_messages_get_the_newer_term() {
    let mut c = Cluster::new(3, 0, |_| {});
    let m = c.elect();
    let term = c.nodes[&m].core.term();
    let other = c.ids().into_iter().find(|id| *id != m).unwrap();
    // A heartbeat from a master of a higher term.
    let hb = Message {
        from: other,
        to: m,
        term: term + 3,
        body: Body::Heartbeat {
            commit: 0,
            sent_at: Time(0),
            slave_incarnation: 0,
        },
    };
    let now = c.now;
    let n = c.nodes.get_mut(&m).unwrap();
    n.core.step(hb, now, &n.log).unwrap();
    assert_eq!(n.core.role(), Role::Slave);
    assert_eq!(n.core.term(), term + 3);
    // A stale append is rejected with the newer term.
    let stale = Message {
        from: other,
        to: m,
        term,
        body: Body::Append {
            prev_index: 0,
            prev_term: 0,
            commit: 0,
            sent_at: Time(0),
            slave_incarnation: 0,
            entries: vec![],
        },
    };
    n.core.step(stale, now, &n.log).unwrap();
    let rd = n.core.take_ready(&n.log).unwrap();
    let reply = rd
        .messages
        .iter()
        .find(|m| m.to == other && matches!(m.body, Body::AppendResponse { .. }))
        .unwrap();
    assert_eq!(reply.term, term + 3);
    assert!(matches!(
        reply.body,
        Body::AppendResponse {
            result: AppendResult::Rejected { .. },
            ..
        }
    ));
}

/// A slave commits only what it verified against this term's master: a
/// heartbeat's commit index does not commit a stale suffix (§3.5).
#[test]
fn slave_commit_is_capped_by_verified_entries() {
    let log = log_with(&[1, 1, 1]);
    let now = Time(200 * MS);
    let mut c = node1(&log, 2);
    let hb = Message {
        from: NodeId(2),
        to: NodeId(1),
        term: 3,
        body: Body::Heartbeat {
            commit: 3,
            sent_at: Time(5),
            slave_incarnation: 0,
        },
    };
    c.step(hb, now, &log).unwrap();
    assert_eq!(c.commit_index(), 0, "nothing verified yet in term 3");
    let probe = Message {
        from: NodeId(2),
        to: NodeId(1),
        term: 3,
        body: Body::Append {
            prev_index: 2,
            prev_term: 1,
            commit: 3,
            sent_at: Time(6),
            slave_incarnation: 0,
            entries: vec![],
        },
    };
    c.step(probe, now, &log).unwrap();
    assert_eq!(c.commit_index(), 2, "verified up to 2 only");
    let rd = c.take_ready(&log).unwrap();
    assert!(rd.messages.iter().any(|m| matches!(
        m.body,
        Body::AppendResponse {
            result: AppendResult::Accepted { match_index: 2 },
            sent_at: Time(6),
            ..
        }
    )));
}

/// Malformed or misdirected messages are refused with a typed error and
/// change nothing; so are caller contract violations.
#[test]
fn bad_input_is_refused_without_state_change() {
    let log = log_with(&[1]);
    let now = Time(200 * MS);
    let mut c = node1(&log, 1);
    let before = c.status();
    let gap = Message {
        from: NodeId(2),
        to: NodeId(1),
        term: 5,
        body: Body::Append {
            prev_index: 1,
            prev_term: 1,
            commit: 0,
            sent_at: Time(0),
            slave_incarnation: 0,
            entries: vec![Entry {
                index: 7,
                term: 5,
                payload: Bytes::new(),
            }],
        },
    };
    assert!(matches!(
        c.step(gap, now, &log),
        Err(StepError::Malformed { .. })
    ));
    let mut wrong = vote(2, 9, 1, 1);
    wrong.to = NodeId(3);
    assert!(matches!(
        c.step(wrong, now, &log),
        Err(StepError::WrongRecipient { .. })
    ));
    assert!(matches!(
        c.step(vote(9, 9, 1, 1), now, &log),
        Err(StepError::UnknownSender { .. })
    ));
    assert!(matches!(
        c.tick(Time(1), &log),
        Err(StepError::TimeWentBackwards { .. })
    ));
    let longer = log_with(&[1, 1]);
    assert!(matches!(
        c.tick(now, &longer),
        Err(StepError::LogOutOfStep { .. })
    ));
    assert_eq!(c.status(), before);
}

/// Proposals: only the master takes them, with a hint; empty payloads are
/// reserved; oversized payloads and an unbounded backlog are refused.
#[test]
fn proposal_refusals() {
    let mut c = Cluster::new(3, 0, |cfg| {
        cfg.max_entry_bytes = 10;
        cfg.max_uncommitted_entries = 3;
    });
    let m = c.elect();
    c.run_for(Duration::from_millis(20));
    let s = c.ids().into_iter().find(|id| *id != m).unwrap();
    assert_eq!(
        c.propose(s, b"x"),
        Err(ProposeError::NotMaster { master: Some(m) })
    );
    assert_eq!(c.propose(m, b""), Err(ProposeError::EmptyPayload));
    assert!(matches!(
        c.propose(m, &[0; 11]),
        Err(ProposeError::TooLarge { len: 11, limit: 10 })
    ));
    for id in c.ids() {
        c.node_mut(id.0).auto_sync = false;
    }
    for _ in 0..3 {
        c.propose(m, b"x").unwrap();
    }
    assert!(matches!(
        c.propose(m, b"x"),
        Err(ProposeError::Backpressure { .. })
    ));
}

/// `quorum` override (dangerous): with quorum 1, a master of three commits
/// on its own fsync.
#[test]
fn quorum_override_commits_with_fewer_nodes() {
    let mut c = Cluster::new(3, 0, |cfg| cfg.quorum = Some(1));
    let m = c.elect();
    for id in c.ids() {
        if id != m {
            c.isolate(id.0);
        }
    }
    let p = c.propose(m, b"alone").unwrap();
    assert_eq!(c.nodes[&m].applied_index, p.index);
}

/// A vote request flagged `transfer` (after TimeoutNow) is granted even
/// inside a lease guard; an unflagged one is ignored.
#[test]
fn transfer_vote_bypasses_the_lease_guard() {
    let log = log_with(&[1]);
    let cfg = test_config(NodeId(1), voters(), vec![], 1);
    let mut c = Core::new(
        cfg,
        HardState {
            term: 1,
            voted_for: None,
            ..HardState::default()
        },
        &log,
        0,
        Time(0),
    )
    .unwrap();
    let now = Time(10 * MS); // inside the restart guard
    c.step(vote(2, 2, 1, 1), now, &log).unwrap();
    assert_eq!(granted(&mut c, &log), None, "ignored inside the guard");
    assert_eq!(c.term(), 1);
    let mut t = vote(2, 2, 1, 1);
    t.body = Body::Vote {
        last_index: 1,
        last_term: 1,
        transfer: true,
    };
    c.step(t, now, &log).unwrap();
    assert_eq!(granted(&mut c, &log), Some(true));
}

/// Configuration errors name the field.
#[test]
fn config_validation_names_the_field() {
    let ok = test_config(NodeId(1), voters(), vec![], 0);
    assert_eq!(ok.validate(), Ok(()));
    let field = |cfg: Config| match cfg.validate() {
        Err(ConfigError::Invalid { field, .. }) => field,
        Ok(()) => "ok",
    };
    let mut c = ok.clone();
    c.voters = (1..=8).map(NodeId).collect();
    assert_eq!(field(c), "voters");
    let mut c = ok.clone();
    c.id = NodeId(9);
    assert_eq!(field(c), "id");
    let mut c = ok.clone();
    c.learners = vec![NodeId(2)];
    assert_eq!(field(c), "learners");
    let mut c = ok.clone();
    c.max_clock_drift = c.lease_period;
    assert_eq!(field(c), "max_clock_drift");
    let mut c = ok.clone();
    c.quorum = Some(4);
    assert_eq!(field(c), "quorum");
    let mut c = ok.clone();
    c.forced_master = Some(NodeId(7));
    assert_eq!(field(c), "forced_master");
    let mut c = ok.clone();
    c.preferred_masters = vec![NodeId(7)];
    assert_eq!(field(c), "preferred_masters");
    let mut c = ok;
    c.election_timeout_max = c.election_timeout_min;
    assert_eq!(field(c), "election_timeout_min");
}

/// Determinism: the same seed gives the same run, message for message.
#[test]
fn same_seed_same_run() {
    let run = |seed: u64| {
        let mut c = Cluster::new(5, 1, |cfg| cfg.seed = seed);
        let m = c.elect();
        for k in 0..10u8 {
            c.propose(m, &[k]).unwrap();
        }
        c.isolate(m.0);
        c.run_for(Duration::from_millis(500));
        c.delivered
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}
