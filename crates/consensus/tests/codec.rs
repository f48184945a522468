//! Wire encoding: round trips (proptest) and hostile input (never a panic,
//! bounded allocation, clear errors).

use bytes::Bytes;
use consensus::{
    decode, encode, AppendResult, Body, DecodeError, DecodeLimits, Entry, Message, NodeId, Time,
};
use proptest::prelude::*;

fn entries() -> impl Strategy<Value = Vec<Entry>> {
    (
        0u64..1000,
        0u64..50,
        prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..8),
    )
        .prop_map(|(start, term, payloads)| {
            payloads
                .into_iter()
                .enumerate()
                .map(|(k, p)| Entry {
                    index: start + 1 + k as u64,
                    term,
                    payload: Bytes::from(p),
                })
                .collect()
        })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (any::<u64>(), any::<u64>()).prop_map(|(last_index, last_term)| Body::PreVote {
            last_index,
            last_term
        }),
        any::<bool>().prop_map(|granted| Body::PreVoteResponse { granted }),
        (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(
            |(last_index, last_term, transfer)| Body::Vote {
                last_index,
                last_term,
                transfer
            }
        ),
        any::<bool>().prop_map(|granted| Body::VoteResponse { granted }),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            entries()
        )
            .prop_map(
                |(prev_index, prev_term, commit, sent_at, slave_incarnation, entries)| {
                    Body::Append {
                        prev_index,
                        prev_term,
                        commit,
                        sent_at: Time(sent_at),
                        slave_incarnation,
                        entries,
                    }
                }
            ),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<bool>()).prop_map(
            |(sent_at, match_index, incarnation, recovering)| Body::AppendResponse {
                sent_at: Time(sent_at),
                result: AppendResult::Accepted { match_index },
                incarnation,
                recovering,
            }
        ),
        (
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>(),
            any::<u64>()
        )
            .prop_map(|(sent_at, r, h, t, incarnation)| {
                Body::AppendResponse {
                    sent_at: Time(sent_at),
                    result: AppendResult::Rejected {
                        rejected_prev_index: r,
                        hint_index: h,
                        hint_term: t,
                    },
                    incarnation,
                    recovering: false,
                }
            }),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
            |(commit, sent_at, slave_incarnation)| Body::Heartbeat {
                commit,
                sent_at: Time(sent_at),
                slave_incarnation,
            }
        ),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<bool>()).prop_map(
            |(sent_at, commit, incarnation, recovering)| Body::HeartbeatResponse {
                sent_at: Time(sent_at),
                commit,
                incarnation,
                recovering,
            }
        ),
        Just(Body::TimeoutNow),
        any::<u64>().prop_map(|t| Body::RecoveryQuery { asked_at: Time(t) }),
        (any::<u64>(), 0u8..3, any::<u64>()).prop_map(|(t, code, last_index)| {
            Body::RecoveryReply {
                asked_at: Time(t),
                standing: consensus::Standing::from_code(code).unwrap_or_default(),
                last_index,
            }
        }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (any::<u64>(), any::<u64>(), any::<u64>(), body()).prop_map(|(from, to, term, body)| Message {
        from: NodeId(from),
        to: NodeId(to),
        term,
        body,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// decode(encode(m)) == m.
    #[test]
    fn round_trip(m in message()) {
        let bytes = encode(&m);
        prop_assert_eq!(decode(&bytes, &DecodeLimits::default()), Ok(m));
    }

    /// Every strict prefix of a valid encoding is refused, without a panic.
    #[test]
    fn truncations_are_refused(m in message()) {
        let bytes = encode(&m);
        for len in 0..bytes.len() {
            prop_assert!(decode(&bytes[..len], &DecodeLimits::default()).is_err());
        }
    }

    /// Trailing bytes are refused.
    #[test]
    fn trailing_bytes_are_refused(m in message(), extra in prop::collection::vec(any::<u8>(), 1..8)) {
        let mut bytes = encode(&m);
        bytes.extend(extra);
        let is_trailing = matches!(
            decode(&bytes, &DecodeLimits::default()),
            Err(DecodeError::TrailingBytes { .. })
        );
        prop_assert!(is_trailing);
    }

    /// Arbitrary bytes never panic the decoder.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode(&bytes, &DecodeLimits::default());
    }

    /// Mutating one byte of a valid encoding never panics the decoder.
    #[test]
    fn mutated_bytes_never_panic(m in message(), pos in any::<prop::sample::Index>(), b in any::<u8>()) {
        let mut bytes = encode(&m);
        let i = pos.index(bytes.len());
        bytes[i] = b;
        let _ = decode(&bytes, &DecodeLimits::default());
    }
}

fn header(kind: u8) -> Vec<u8> {
    let mut v = vec![consensus::WIRE_VERSION, kind];
    v.extend_from_slice(&1u64.to_le_bytes());
    v.extend_from_slice(&2u64.to_le_bytes());
    v.extend_from_slice(&3u64.to_le_bytes());
    v
}

/// A huge entry count is refused before anything is allocated for it.
#[test]
fn huge_entry_count_is_refused_up_front() {
    let mut v = header(5);
    // prev_index, prev_term, commit, sent_at, slave_incarnation
    for _ in 0..5 {
        v.extend_from_slice(&0u64.to_le_bytes());
    }
    v.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode(&v, &DecodeLimits::default()),
        Err(DecodeError::LimitExceeded {
            field: "entry_count",
            ..
        })
    ));
    // Within the limit but more than the input can hold: refused too.
    let mut v = header(5);
    // prev_index, prev_term, commit, sent_at, slave_incarnation
    for _ in 0..5 {
        v.extend_from_slice(&0u64.to_le_bytes());
    }
    v.extend_from_slice(&50_000u32.to_le_bytes());
    assert!(matches!(
        decode(&v, &DecodeLimits::default()),
        Err(DecodeError::Truncated {
            field: "entries",
            ..
        })
    ));
}

/// A payload length beyond the limit is refused; one beyond the input too.
#[test]
fn huge_payload_length_is_refused() {
    let mut v = header(5);
    // prev_index, prev_term, commit, sent_at, slave_incarnation
    for _ in 0..5 {
        v.extend_from_slice(&0u64.to_le_bytes());
    }
    v.extend_from_slice(&1u32.to_le_bytes());
    v.extend_from_slice(&1u64.to_le_bytes());
    v.extend_from_slice(&1u64.to_le_bytes());
    v.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        decode(&v, &DecodeLimits::default()),
        Err(DecodeError::LimitExceeded {
            field: "payload_len",
            ..
        })
    ));
    let limits = DecodeLimits {
        max_payload_bytes: u32::MAX,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        decode(&v, &limits),
        Err(DecodeError::Truncated {
            field: "payload",
            ..
        })
    ));
}

/// Oversized input, unknown versions and kinds, bad booleans: clear errors.
#[test]
fn bad_headers_are_refused_with_context() {
    let limits = DecodeLimits {
        max_message_bytes: 10,
        ..DecodeLimits::default()
    };
    assert!(matches!(
        decode(&[0u8; 11], &limits),
        Err(DecodeError::TooLarge { len: 11, limit: 10 })
    ));
    let mut v = header(9);
    v[0] = 1;
    assert_eq!(
        decode(&v, &DecodeLimits::default()),
        Err(DecodeError::UnsupportedVersion { version: 1 })
    );
    assert_eq!(
        decode(&header(42), &DecodeLimits::default()),
        Err(DecodeError::UnknownKind { kind: 42 })
    );
    let mut v = header(2);
    v.push(7);
    assert!(matches!(
        decode(&v, &DecodeLimits::default()),
        Err(DecodeError::InvalidValue {
            field: "granted",
            value: 7,
            ..
        })
    ));
    let mut v = header(6);
    v.extend_from_slice(&0u64.to_le_bytes());
    v.extend_from_slice(&0u64.to_le_bytes());
    v.push(0);
    v.push(3);
    assert!(matches!(
        decode(&v, &DecodeLimits::default()),
        Err(DecodeError::InvalidValue {
            field: "append_result",
            ..
        })
    ));
    let mut v = header(11);
    v.extend_from_slice(&0u64.to_le_bytes());
    v.push(3);
    v.extend_from_slice(&0u64.to_le_bytes());
    assert!(matches!(
        decode(&v, &DecodeLimits::default()),
        Err(DecodeError::InvalidValue {
            field: "standing",
            value: 3,
            ..
        })
    ));
    assert!(decode(&[], &DecodeLimits::default()).is_err());
}

/// The layout is fixed little-endian: a golden encoding.
#[test]
fn golden_heartbeat_encoding() {
    let m = Message {
        from: NodeId(1),
        to: NodeId(2),
        term: 3,
        body: Body::Heartbeat {
            commit: 4,
            sent_at: Time(5),
            slave_incarnation: 6,
        },
    };
    let mut expected = header(7);
    expected.extend_from_slice(&4u64.to_le_bytes());
    expected.extend_from_slice(&5u64.to_le_bytes());
    expected.extend_from_slice(&6u64.to_le_bytes());
    assert_eq!(encode(&m), expected);
}
