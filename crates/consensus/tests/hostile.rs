//! Hostile or buggy peers: any sequence of well-formed but arbitrary
//! messages (wrong terms, indexes, acknowledgements of entries never sent,
//! votes out of turn) is either processed or refused with an error; the core
//! never panics, and the cluster's safety checks still hold among the honest
//! nodes' own state (terms never go back).

use bytes::Bytes;
use consensus::testing::Cluster;
use consensus::{AppendResult, Body, Entry, Message, NodeId, Time};
use proptest::prelude::*;
use std::time::Duration;

fn body() -> impl Strategy<Value = Body> {
    let small = prop_oneof![8 => 0u64..8, 1 => any::<u64>(), 1 => Just(u64::MAX)];
    prop_oneof![
        (small.clone(), small.clone()).prop_map(|(last_index, last_term)| Body::PreVote {
            last_index,
            last_term
        }),
        any::<bool>().prop_map(|granted| Body::PreVoteResponse { granted }),
        (small.clone(), small.clone(), any::<bool>()).prop_map(
            |(last_index, last_term, transfer)| Body::Vote {
                last_index,
                last_term,
                transfer
            }
        ),
        any::<bool>().prop_map(|granted| Body::VoteResponse { granted }),
        (
            small.clone(),
            small.clone(),
            small.clone(),
            0u64..3,
            small.clone()
        )
            .prop_map(
                |(prev_index, prev_term, commit, n, entry_term)| Body::Append {
                    prev_index,
                    prev_term,
                    commit,
                    sent_at: Time(0),
                    slave_incarnation: n,
                    entries: (0..n)
                        .map(|k| Entry {
                            index: prev_index.wrapping_add(1 + k),
                            term: entry_term,
                            payload: Bytes::from_static(b"h"),
                        })
                        .collect(),
                }
            ),
        (small.clone(), any::<u64>(), 0u64..3, any::<bool>()).prop_map(
            |(match_index, sent_at, incarnation, recovering)| Body::AppendResponse {
                sent_at: Time(sent_at),
                result: AppendResult::Accepted { match_index },
                incarnation,
                recovering,
            }
        ),
        (
            small.clone(),
            small.clone(),
            small.clone(),
            0u64..3,
            any::<bool>()
        )
            .prop_map(|(r, h, t, incarnation, recovering)| Body::AppendResponse {
                sent_at: Time(0),
                result: AppendResult::Rejected {
                    rejected_prev_index: r,
                    hint_index: h,
                    hint_term: t
                },
                incarnation,
                recovering,
            }),
        (small.clone(), any::<u64>(), 0u64..3).prop_map(|(commit, sent_at, slave_incarnation)| {
            Body::Heartbeat {
                commit,
                sent_at: Time(sent_at),
                slave_incarnation,
            }
        }),
        (any::<u64>(), any::<u64>(), 0u64..3, any::<bool>()).prop_map(
            |(sent_at, commit, incarnation, recovering)| Body::HeartbeatResponse {
                sent_at: Time(sent_at),
                commit,
                incarnation,
                recovering,
            }
        ),
        Just(Body::TimeoutNow),
        any::<u64>().prop_map(|t| Body::RecoveryQuery { asked_at: Time(t) }),
        (any::<u64>(), 0u8..3, small.clone()).prop_map(|(t, code, last_index)| {
            Body::RecoveryReply {
                asked_at: Time(t),
                standing: consensus::Standing::from_code(code).unwrap_or_default(),
                last_index,
            }
        }),
    ]
}

fn term() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0u64..6, 1 => any::<u64>(), 1 => Just(u64::MAX), 1 => Just(consensus::MAX_TERM)]
}

fn message() -> impl Strategy<Value = (u64, u64, u64, Body)> {
    (1u64..=4, 1u64..=4, term(), body())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_messages_never_panic_the_core(msgs in prop::collection::vec(message(), 1..40)) {
        let mut c = Cluster::new(3, 1, |_| {});
        c.elect();
        c.propose(c.master().unwrap(), b"x").unwrap();
        c.run_for(Duration::from_millis(5));
        for (from, to, term, body) in msgs {
            let now = c.now;
            let Some(node) = c.nodes.get_mut(&NodeId(to)) else { continue };
            let before = node.core.term();
            let m = Message { from: NodeId(from), to: NodeId(to), term, body };
            let _ = node.core.step(m, now, &node.log);
            prop_assert!(node.core.term() >= before);
            // The caller's loop goes on whatever the outcome.
            let rd = node.core.take_ready(&node.log);
            prop_assert!(rd.is_ok(), "{:?}", rd);
            let rd = rd.unwrap();
            node.log.apply(rd.truncate_after, &rd.entries);
            let (i, n) = node.log.sync();
            let _ = node.core.entries_synced(i, n, now, &node.log);
            let _ = node.core.take_ready(&node.log).map(|rd| node.log.apply(rd.truncate_after, &rd.entries));
            c.tick(Duration::from_millis(1));
        }
    }
}
