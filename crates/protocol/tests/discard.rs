//! `RequestDecoder::next`: a request string too large for the frame is
//! dropped from the stream, never held, and the request, read to its end,
//! is rejected with `E_BAD_INPUT` naming the limit; the stream stays in step
//! (Arakoon reads the string and answers `E_BAD_INPUT`, the connection
//! kept). Bounded: a few strings, a few `max_buffer_size` per request.

mod common;

use proptest::prelude::*;
use protocol::{
    encode_request, Command, Incoming, Limits, ProtocolError, Request, RequestDecoder, ResultCode,
    Step, Update, DISCARD_BUDGET_FACTOR, MAX_DISCARDED_STRINGS,
};

fn limits(max_buffer_size: usize) -> Limits {
    Limits {
        max_buffer_size,
        ..Limits::default()
    }
}

/// What a server does with `next`: `stream` arrives `chunk` bytes at a
/// time; dropped bytes are skipped as they arrive, never buffered. Returns
/// each request's outcome, the decoder's error if one ended the stream, and
/// the most bytes the buffer ever held.
fn serve(
    limits: Limits,
    stream: &[u8],
    chunk: usize,
) -> (Vec<Incoming>, Option<ProtocolError>, usize) {
    let mut decoder = RequestDecoder::new(limits);
    let mut buf: Vec<u8> = Vec::new();
    let mut arrived = 0;
    let mut to_drop = 0usize;
    let mut out = Vec::new();
    let mut held_max = 0;
    loop {
        match decoder.next(&buf) {
            Err(e) => return (out, Some(e), held_max),
            Ok(Step::Complete { value, consumed }) => {
                buf.drain(..consumed);
                out.push(value);
                continue;
            }
            Ok(Step::Discard { at, bytes }) => {
                let present = buf.len().saturating_sub(at).min(bytes);
                buf.drain(at..at + present);
                to_drop = bytes - present;
                continue;
            }
            Ok(Step::Incomplete { .. }) => {}
        }
        if arrived == stream.len() {
            // (A stream may end inside a request, or a dropped string.)
            return (out, None, held_max);
        }
        let end = (arrived + chunk).min(stream.len());
        let mut piece = &stream[arrived..end];
        arrived = end;
        let skipped = to_drop.min(piece.len());
        to_drop -= skipped;
        piece = &piece[skipped..];
        buf.extend_from_slice(piece);
        held_max = held_max.max(buf.len());
    }
}

fn oversized(incoming: &Incoming) -> Option<(Command, &ProtocolError)> {
    match incoming {
        Incoming::Rejected {
            command,
            error: error @ ProtocolError::OversizedString { .. },
        } => Some((*command, error)),
        _ => None,
    }
}

/// A 1000-byte value with a 400-byte limit, arriving in pieces of every
/// size: rejected naming the field and the limit, the buffer never holding
/// the value, the next request served.
#[test]
fn an_oversized_value_is_dropped_and_the_next_request_is_served() {
    let mut stream = Vec::new();
    encode_request(
        &Request::Set {
            key: b"k".to_vec(),
            value: vec![7; 1000],
        },
        &mut stream,
    );
    encode_request(&Request::Nop, &mut stream);
    for chunk in [1, 3, 7, 64, 500, 4096] {
        let (out, error, held_max) = serve(limits(400), &stream, chunk);
        assert_eq!(error, None, "chunk {chunk}");
        assert_eq!(out.len(), 2, "chunk {chunk}: {out:?}");
        let (command, e) = oversized(&out[0]).unwrap_or_else(|| panic!("{:?}", out[0]));
        assert_eq!(command, Command::Set);
        assert_eq!(
            e,
            &ProtocolError::OversizedString {
                field: "set.value",
                declared: 1000,
                frame_bytes: 13 + 1000,
                limit: 400
            }
        );
        assert_eq!(e.result_code(), ResultCode::BadInput);
        assert!(!e.result_code().closes_connection());
        let message = e.to_string();
        assert!(
            message.contains("limit of 400") && message.contains("1000 bytes"),
            "{message}"
        );
        assert_eq!(out[1], Incoming::Request(Request::Nop));
        assert!(
            held_max < 400 + chunk,
            "chunk {chunk}: held {held_max} bytes"
        );
    }
}

/// A sequence payload over the limit (the brief's 40 MB sequence, scaled):
/// rejected as a sequence; a key and a value both over it: both dropped.
#[test]
fn an_oversized_sequence_and_two_oversized_strings() {
    let mut stream = Vec::new();
    encode_request(
        &Request::Sequence {
            updates: vec![Update::Set {
                key: b"k".to_vec(),
                value: vec![1; 300],
            }],
        },
        &mut stream,
    );
    encode_request(
        &Request::Set {
            key: vec![2; 100],
            value: vec![3; 100],
        },
        &mut stream,
    );
    encode_request(&Request::WhoMaster, &mut stream);
    let (out, error, _) = serve(limits(96), &stream, 10);
    assert_eq!(error, None);
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(oversized(&out[0]).map(|(c, _)| c), Some(Command::Sequence));
    let (command, e) = oversized(&out[1]).expect("set rejected");
    assert_eq!(command, Command::Set);
    // The first string dropped is the one named.
    assert!(
        matches!(
            e,
            ProtocolError::OversizedString {
                field: "set.key",
                declared: 100,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(out[2], Incoming::Request(Request::WhoMaster));
}

/// Past the budget (`DISCARD_BUDGET_FACTOR` × the limit) a string is an
/// error: the server answers it and closes, without reading the string.
#[test]
fn a_string_beyond_the_budget_is_an_error() {
    let limit = 64;
    let declared = limit * DISCARD_BUDGET_FACTOR + 1;
    let mut stream = Command::Delete.word().to_le_bytes().to_vec();
    stream.extend_from_slice(&(declared as u32).to_le_bytes());
    let (out, error, _) = serve(limits(limit), &stream, 8);
    assert!(out.is_empty());
    assert_eq!(
        error,
        Some(ProtocolError::LengthTooLarge {
            field: "delete.key",
            declared,
            limit
        })
    );
}

/// At most `MAX_DISCARDED_STRINGS` strings are dropped per request: keys of
/// a `multi_get` that each push the frame past the limit.
#[test]
fn at_most_so_many_strings_are_dropped() {
    let limit = 100;
    let request = |extra_keys: usize| {
        let mut keys = vec![vec![0; 40]];
        keys.extend((0..extra_keys).map(|i| vec![i as u8; 48]));
        let mut stream = Vec::new();
        encode_request(
            &Request::MultiGet {
                consistency: protocol::Consistency::Consistent,
                keys,
            },
            &mut stream,
        );
        stream
    };
    let (out, error, _) = serve(limits(limit), &request(MAX_DISCARDED_STRINGS), 16);
    assert_eq!(error, None);
    assert_eq!(oversized(&out[0]).map(|(c, _)| c), Some(Command::MultiGet));
    let (out, error, _) = serve(limits(limit), &request(MAX_DISCARDED_STRINGS + 1), 16);
    assert!(out.is_empty());
    assert!(
        matches!(error, Some(ProtocolError::FrameTooLarge { .. })),
        "{error:?}"
    );
}

/// Requests with strings of up to a few hundred bytes: some over the
/// small limits of the property below, some not.
fn big_request() -> impl Strategy<Value = Request> {
    let string = || proptest::collection::vec(any::<u8>(), 0..400);
    prop_oneof![
        (string(), string()).prop_map(|(key, value)| Request::Set { key, value }),
        proptest::collection::vec((string(), string()), 0..3).prop_map(|pairs| {
            Request::Sequence {
                updates: pairs
                    .into_iter()
                    .map(|(key, value)| Update::Set { key, value })
                    .collect(),
            }
        }),
        (
            string(),
            proptest::option::of(string()),
            proptest::option::of(string())
        )
            .prop_map(|(key, expected, wanted)| Request::TestAndSet {
                key,
                expected,
                wanted,
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any stream of requests under a small limit, in any chunking: each
    /// request is served as the stateless decoder with a large limit reads
    /// it, or rejected as oversized, or the stream ends with an error; the
    /// buffer never holds a dropped string.
    #[test]
    fn requests_under_a_small_limit_stay_in_step(
        requests in proptest::collection::vec(
            prop_oneof![common::request(), big_request()],
            1..4,
        ),
        limit in 24usize..200,
        chunk in 1usize..300,
    ) {
        let mut stream = Vec::new();
        let mut frame_sizes = Vec::new();
        for request in &requests {
            let before = stream.len();
            encode_request(request, &mut stream);
            frame_sizes.push(stream.len() - before);
        }
        let (out, error, held_max) = serve(limits(limit), &stream, chunk);
        prop_assert!(held_max < limit + chunk, "held {} bytes", held_max);
        prop_assert!(out.len() <= requests.len());
        if error.is_none() {
            prop_assert_eq!(out.len(), requests.len());
        }
        for ((incoming, request), size) in out.iter().zip(&requests).zip(&frame_sizes) {
            if *size <= limit {
                // A request within the limit is served as sent.
                prop_assert_eq!(incoming, &Incoming::Request(request.clone()));
            }
            match incoming {
                Incoming::Request(got) => prop_assert_eq!(got, request),
                Incoming::Rejected { command, .. } => prop_assert_eq!(*command, request.command()),
                Incoming::Unsupported(u) => prop_assert!(false, "{:?}", u),
            }
        }
    }

    /// Random bytes, random limits: `next` never panics and the server's
    /// loop ends.
    #[test]
    fn random_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        limit in 8usize..128,
        chunk in 1usize..64,
    ) {
        let mut stream = Command::Set.word().to_le_bytes().to_vec();
        stream.extend_from_slice(&bytes);
        let _ = serve(limits(limit), &stream, chunk);
    }
}
