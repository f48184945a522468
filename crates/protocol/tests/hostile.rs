//! Hostile input (DESIGN promise 7: bad input gets a clear error, never a
//! crash): truncation at every byte asks for more, never panics, and the
//! "need" hint never overshoots the real frame; random and mutated bytes never
//! panic; huge declared lengths are errors naming the field, not allocations.

mod common;

use proptest::prelude::*;
use protocol::{
    decode_batch, decode_prologue, decode_request, decode_response, encode_prologue,
    encode_request, encode_response, Command, Decoded, Incoming, Limits, NamedField, ProtocolError,
    Request, ResultCode, Update,
};

/// Every strict prefix of a frame is `Incomplete` with
/// `prefix < needed <= frame`: a server waiting for `needed` bytes never
/// waits for bytes the client will not send.
fn check_every_prefix<T: std::fmt::Debug>(
    frame: &[u8],
    decode: impl Fn(&[u8]) -> Result<Decoded<T>, ProtocolError>,
) -> Result<(), TestCaseError> {
    for cut in 0..frame.len() {
        match decode(&frame[..cut]) {
            Ok(Decoded::Incomplete { needed }) => {
                prop_assert!(
                    needed > cut && needed <= frame.len(),
                    "cut {} of {}: needed {}",
                    cut,
                    frame.len(),
                    needed
                );
            }
            other => prop_assert!(false, "cut {} of {}: {:?}", cut, frame.len(), other),
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn truncated_requests_need_more(request in common::request()) {
        let mut frame = Vec::new();
        encode_request(&request, &mut frame);
        check_every_prefix(&frame, |b| decode_request(b, &Limits::default()))?;
    }

    #[test]
    fn truncated_responses_need_more((command, response) in common::response()) {
        let mut frame = Vec::new();
        encode_response(&response, &mut frame);
        check_every_prefix(&frame, |b| decode_response(b, command, &Limits::default()))?;
    }

    #[test]
    fn truncated_prologues_need_more(cluster_id in common::bytes()) {
        let mut frame = Vec::new();
        encode_prologue(&cluster_id, &mut frame);
        check_every_prefix(&frame, |b| decode_prologue(b, &Limits::default()))?;
    }

    /// Truncated payloads (updates, batches, statistics) cannot grow: an
    /// error, not a panic.
    #[test]
    fn truncated_payloads_are_errors(updates in common::updates(), field in common::named_field()) {
        let mut batch = Vec::new();
        protocol::encode_batch(&updates, &mut batch);
        for cut in 0..batch.len() {
            prop_assert!(decode_batch(&batch[..cut], &Limits::default()).is_err());
        }
        let mut stats = Vec::new();
        field.encode(&mut stats);
        for cut in 0..stats.len() {
            prop_assert!(NamedField::decode(&stats[..cut], &Limits::default()).is_err());
        }
    }

    /// Random bytes after a valid code word: whatever comes out, no panic,
    /// and a complete decode never claims more bytes than there are.
    #[test]
    fn random_requests_never_panic(code in 0u32..0x50, tail in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut bytes = (protocol::MAGIC | code).to_le_bytes().to_vec();
        bytes.extend_from_slice(&tail);
        if let Ok(Decoded::Complete { consumed, .. }) = decode_request(&bytes, &Limits::default()) {
            prop_assert!(consumed <= bytes.len());
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        let limits = Limits::default();
        let _ = decode_request(&bytes, &limits);
        let _ = decode_prologue(&bytes, &limits);
        for command in Command::ALL {
            let _ = decode_response(&bytes, command, &limits);
        }
        let _ = protocol::decode_collapse_progress(&bytes, &limits);
        let _ = Update::decode(&bytes, &limits);
        let _ = decode_batch(&bytes, &limits);
        let _ = NamedField::decode(&bytes, &limits);
    }

    /// Valid frames with bytes flipped: no panic.
    #[test]
    fn mutated_requests_never_panic(
        request in common::request(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = Vec::new();
        encode_request(&request, &mut bytes);
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = decode_request(&bytes, &Limits::default());
    }

    #[test]
    fn mutated_updates_never_panic(
        update in common::update(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = Vec::new();
        update.encode(&mut bytes);
        for (at, byte) in flips {
            let i = at.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = Update::decode(&bytes, &Limits::default());
    }
}

fn set_with_key_length(length: u32) -> Vec<u8> {
    let mut bytes = Command::Set.word().to_le_bytes().to_vec();
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.extend_from_slice(b"only a few bytes follow");
    bytes
}

/// Issue 4: "a declared length of 4 GiB is an error, not an allocation".
/// 0xffffffff is -1 as Arakoon's int32.
#[test]
fn four_gib_length_is_a_clear_error() {
    let err = decode_request(&set_with_key_length(u32::MAX), &Limits::default()).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::NegativeLength {
            field: "set.key",
            declared: -1
        }
    );
    assert_eq!(err.result_code(), ResultCode::BadInput);
    assert!(err.to_string().contains("set.key"), "{err}");
}

/// Issue 4 (real-process tests): "a 1 GiB declared length: clear error".
#[test]
fn one_gib_length_is_a_clear_error() {
    let err = decode_request(&set_with_key_length(1 << 30), &Limits::default()).unwrap_err();
    assert_eq!(
        err,
        ProtocolError::LengthTooLarge {
            field: "set.key",
            declared: 1 << 30,
            limit: 33_554_432
        }
    );
    assert_eq!(
        err.to_string(),
        "set.key: declared length 1073741824 is above the limit of 33554432 bytes (max_buffer_size)"
    );
}

/// A value under the limit is waited for (no allocation, no copy) until all
/// of it is there.
#[test]
fn a_large_value_within_the_limit_is_waited_for() {
    let bytes = set_with_key_length(1 << 20);
    assert_eq!(
        decode_request(&bytes, &Limits::default()),
        Ok(Decoded::Incomplete {
            needed: 8 + (1 << 20)
        })
    );
}

/// Lengths each under the limit cannot add up to a frame over it.
#[test]
fn a_frame_growing_past_the_limit_is_an_error() {
    let limits = Limits {
        max_buffer_size: 64,
        ..Limits::default()
    };
    let mut bytes = Command::Set.word().to_le_bytes().to_vec();
    bytes.extend_from_slice(&40u32.to_le_bytes());
    bytes.extend_from_slice(&[0; 40]);
    bytes.extend_from_slice(&40u32.to_le_bytes());
    assert!(matches!(
        decode_request(&bytes, &limits),
        Err(ProtocolError::FrameTooLarge {
            field: "set.value",
            limit: 64,
            ..
        })
    ));
}

/// A count of a billion keys is refused before anything is allocated.
#[test]
fn a_huge_list_count_is_a_clear_error() {
    let mut bytes = Command::MultiGet.word().to_le_bytes().to_vec();
    bytes.push(0);
    bytes.extend_from_slice(&1_000_000_000u32.to_le_bytes());
    assert!(matches!(
        decode_request(&bytes, &Limits::default()),
        Err(ProtocolError::LengthTooLarge {
            field: "multi_get.keys",
            ..
        })
    ));
}

/// Spec: "A word without the magic in its upper half is answered with
/// result E_NO_MAGIC (0x01) and the connection closed".
#[test]
fn no_magic() {
    let err = decode_request(&[0x08, 0, 0, 0], &Limits::default()).unwrap_err();
    assert_eq!(err, ProtocolError::NoMagic { word: 8 });
    assert_eq!(err.to_error_response().result_code(), ResultCode::NoMagic);
}

#[test]
fn wrong_prologue_magic_or_version() {
    assert_eq!(
        decode_prologue(&[0, 0, 0xff, 0xb0, 1, 0, 0, 0], &Limits::default()),
        Err(ProtocolError::BadPrologueMagic { word: 0xb0ff_0000 })
    );
    assert_eq!(
        decode_prologue(&[0, 0, 0xff, 0xb1, 2, 0, 0, 0], &Limits::default()),
        Err(ProtocolError::BadProtocolVersion { version: 2 })
    );
}

#[test]
fn invalid_consistency_byte() {
    let bytes = [0x08, 0x00, 0xff, 0xb1, 0x07, 0, 0, 0, 0];
    assert_eq!(
        decode_request(&bytes, &Limits::default()),
        Err(ProtocolError::InvalidConsistency { byte: 7 })
    );
}

/// A code Arakoon does not know: answered like Arakoon (E_NOT_FOUND,
/// "… command not found"); its layout is unknown, so the server must close.
#[test]
fn unknown_command_code() {
    let bytes = [0x99, 0x00, 0xff, 0xb1, 1, 2, 3];
    let (incoming, consumed) = decode_request(&bytes, &Limits::default())
        .unwrap()
        .complete()
        .unwrap();
    let Incoming::Unsupported(u) = incoming else {
        panic!("{incoming:?}")
    };
    assert_eq!((u.code, u.name, u.stream_in_sync), (0x99, None, false));
    assert_eq!(consumed, 4);
    let answer = u.error_response();
    assert_eq!(answer.result_code(), ResultCode::NotFound);
    assert_eq!(answer.message(), b"99: command not found");
}

/// An Arakoon admin command of known layout: E_NOT_SUPPORTED, its fields are
/// consumed and the next request reads fine.
#[test]
fn known_unsupported_commands_keep_the_stream_in_step() {
    let mut bytes = 0xb1ff_0046u32.to_le_bytes().to_vec(); // last_entries3
    bytes.extend_from_slice(&5i64.to_le_bytes());
    encode_request(&Request::Nop, &mut bytes);
    let (incoming, consumed) = decode_request(&bytes, &Limits::default())
        .unwrap()
        .complete()
        .unwrap();
    let Incoming::Unsupported(u) = incoming else {
        panic!("{incoming:?}")
    };
    assert_eq!(u.name, Some("last_entries3"));
    assert!(u.stream_in_sync);
    assert_eq!(u.error_response().result_code(), ResultCode::NotSupported);
    assert_eq!(
        decode_request(&bytes[consumed..], &Limits::default()),
        Ok(Decoded::Complete {
            value: Incoming::Request(Request::Nop),
            consumed: 4
        })
    );
}

/// A sequence payload that is a whole string but not valid content: the
/// request is consumed and rejected, the stream stays usable.
#[test]
fn bad_sequence_content_is_rejected_in_step() {
    let cases: [(Vec<u8>, ProtocolError); 4] = [
        (
            [99i32.to_le_bytes()].concat(),
            ProtocolError::NotASequence { tag: 99 },
        ),
        (
            [5i32.to_le_bytes(), 1i32.to_le_bytes(), 42i32.to_le_bytes()].concat(),
            ProtocolError::UnknownUpdateTag { tag: 42 },
        ),
        (
            [5i32.to_le_bytes(), 0i32.to_le_bytes(), [0, 0, 0, 0]].concat(),
            ProtocolError::TrailingBytes {
                field: "sequence.payload",
                count: 4,
            },
        ),
        (
            [5i32.to_le_bytes(), 2i32.to_le_bytes(), 6i32.to_le_bytes()].concat(),
            ProtocolError::Truncated {
                field: "sequence.count",
                needed: 16,
                available: 12,
            },
        ),
    ];
    for (payload, error) in cases {
        let mut bytes = Command::Sequence.word().to_le_bytes().to_vec();
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&payload);
        let frame = bytes.len();
        encode_request(&Request::Nop, &mut bytes);
        assert_eq!(
            decode_request(&bytes, &Limits::default()),
            Ok(Decoded::Complete {
                value: Incoming::Rejected {
                    command: Command::Sequence,
                    error: error.clone()
                },
                consumed: frame
            }),
            "{error}"
        );
        assert_eq!(error.result_code(), ResultCode::BadInput);
    }
}

/// A sequence holding an AssertRange (tag 17, kind 1, an empty key list),
/// bytes written by hand: decoded.
#[test]
fn assert_range_in_a_sequence_decodes() {
    let mut payload = [5i32.to_le_bytes(), 1i32.to_le_bytes(), 17i32.to_le_bytes()].concat();
    payload.extend_from_slice(&[1, 0, 0, 0, b'p', 1, 0, 0, 0, 0, 0, 0, 0]);
    let mut bytes = Command::Sequence.word().to_le_bytes().to_vec();
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&payload);
    let (incoming, consumed) = decode_request(&bytes, &Limits::default())
        .unwrap()
        .complete()
        .unwrap();
    assert_eq!(consumed, bytes.len());
    assert_eq!(
        incoming,
        Incoming::Request(Request::Sequence {
            updates: vec![Update::AssertRange {
                prefix: b"p".to_vec(),
                assertion: protocol::RangeAssertion::ContainsExactly(vec![]),
            }]
        })
    );
}

/// `set_interval` (0x17: four option strings) and `migrate_range` (0x22:
/// the same, then a string) are read whole and answered E_NOT_SUPPORTED,
/// the next request still in step (Arakoon's `Interval.input_interval`).
#[test]
fn set_interval_and_migrate_range_are_read_whole() {
    let interval = |bytes: &mut Vec<u8>| {
        bytes.extend_from_slice(&[1, 1, 0, 0, 0, b'a']); // Some "a"
        bytes.push(0); // None
        bytes.extend_from_slice(&[1, 2, 0, 0, 0, b'b', b'c']); // Some "bc"
        bytes.push(0); // None
    };
    for (code, name) in [(0x17u32, "set_interval"), (0x22, "migrate_range")] {
        let mut bytes = (protocol::MAGIC | code).to_le_bytes().to_vec();
        interval(&mut bytes);
        if code == 0x22 {
            bytes.extend_from_slice(&[3, 0, 0, 0, 1, 2, 3]);
        }
        let frame = bytes.len();
        encode_request(&Request::Nop, &mut bytes);
        let Ok(Decoded::Complete {
            value: Incoming::Unsupported(u),
            consumed,
        }) = decode_request(&bytes, &Limits::default())
        else {
            panic!("{name}: {:?}", decode_request(&bytes, &Limits::default()));
        };
        assert_eq!(
            (consumed, u.name, u.stream_in_sync),
            (frame, Some(name), true)
        );
        assert_eq!(u.error_response().result_code(), ResultCode::NotSupported);
        // Every strict prefix waits for more.
        for cut in 0..frame {
            assert!(matches!(
                decode_request(&bytes[..cut], &Limits::default()),
                Ok(Decoded::Incomplete { .. })
            ));
        }
        assert_eq!(
            decode_request(&bytes[frame..], &Limits::default()),
            Ok(Decoded::Complete {
                value: Incoming::Request(Request::Nop),
                consumed: 4
            })
        );
    }
}

/// A longer random run, a poor man's fuzzer (no cargo-fuzz on these
/// machines): `cargo test -p protocol --release -- --ignored`.
#[test]
#[ignore]
fn long_random_run() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(200_000));
    let strategy = (
        0u32..0x50,
        proptest::collection::vec(any::<u8>(), 0..256),
        any::<bool>(),
    );
    runner
        .run(&strategy, |(code, tail, with_magic)| {
            let mut bytes = Vec::new();
            if with_magic {
                bytes.extend_from_slice(&(protocol::MAGIC | code).to_le_bytes());
            }
            bytes.extend_from_slice(&tail);
            let limits = Limits::default();
            let _ = decode_request(&bytes, &limits);
            let _ = protocol::RequestDecoder::new(limits).decode(&bytes);
            let _ = protocol::RequestDecoder::new(limits).next(&bytes);
            for command in Command::ALL {
                let _ = decode_response(&bytes, command, &limits);
            }
            let _ = Update::decode(&tail, &limits);
            let _ = decode_batch(&tail, &limits);
            let _ = NamedField::decode(&tail, &limits);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
