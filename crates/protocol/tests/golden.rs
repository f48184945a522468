//! Golden byte vectors, written out by hand from the spec
//! (`shared/spec/arakoon-protocol.md`) and Arakoon's sources
//! (`client_protocol.ml`, `protocol_common.ml`, `llio.ml`, `update.ml`):
//! encoding gives exactly these bytes, decoding them gives the value back.

use protocol::{
    decode_prologue, decode_request, decode_response, encode_prologue, encode_request,
    encode_response, Command, Consistency, Decoded, ErrorResponse, Incoming, KeyRange, Limits,
    NamedField, NamedValue, Reply, Request, Response, ResultCode, Update,
};

fn request_bytes(request: &Request) -> Vec<u8> {
    let mut out = Vec::new();
    encode_request(request, &mut out);
    out
}

fn response_bytes(response: &Response) -> Vec<u8> {
    let mut out = Vec::new();
    encode_response(response, &mut out);
    out
}

/// Encodes to `expected` and decodes `expected` back to the request.
fn check_request(request: Request, expected: &[u8]) {
    assert_eq!(request_bytes(&request), expected, "{request:?}");
    assert_eq!(
        decode_request(expected, &Limits::default()),
        Ok(Decoded::Complete {
            value: Incoming::Request(request),
            consumed: expected.len()
        })
    );
}

fn check_response(command: Command, response: Response, expected: &[u8]) {
    assert_eq!(response_bytes(&response), expected, "{response:?}");
    assert_eq!(
        decode_response(expected, command, &Limits::default()),
        Ok(Decoded::Complete {
            value: response,
            consumed: expected.len()
        })
    );
}

/// Spec "Connection prologue": int32 magic 0xb1ff0000, int32 version 1,
/// string cluster_id.
#[test]
fn prologue() {
    let expected = [
        0x00, 0x00, 0xff, 0xb1, // magic, little-endian
        0x01, 0x00, 0x00, 0x00, // version 1
        0x03, 0x00, 0x00, 0x00, b'a', b'r', b'a', // "ara"
    ];
    let mut out = Vec::new();
    encode_prologue(b"ara", &mut out);
    assert_eq!(out, expected);
    let decoded = decode_prologue(&expected, &Limits::default()).unwrap();
    let (prologue, consumed) = decoded.complete().unwrap();
    assert_eq!(prologue.cluster_id, b"ara");
    assert_eq!(consumed, expected.len());
}

/// Spec: 0x08 get: cons, string key; 0x00 = Consistent.
#[test]
fn get_consistent() {
    check_request(
        Request::Get {
            consistency: Consistency::Consistent,
            key: b"key".to_vec(),
        },
        &[
            0x08, 0x00, 0xff, 0xb1, // 0xb1ff0000 | 0x08
            0x00, // Consistent
            0x03, 0x00, 0x00, 0x00, b'k', b'e', b'y',
        ],
    );
}

/// Spec: 0x02 AtLeast followed by an int64 i; 0x01 NoGuarantee.
#[test]
fn exists_at_least_and_no_guarantee() {
    check_request(
        Request::Exists {
            consistency: Consistency::AtLeast(0x0102),
            key: b"k".to_vec(),
        },
        &[
            0x07, 0x00, 0xff, 0xb1, //
            0x02, 0x02, 0x01, 0, 0, 0, 0, 0, 0, // AtLeast 0x0102
            0x01, 0x00, 0x00, 0x00, b'k',
        ],
    );
    check_request(
        Request::AssertExists {
            consistency: Consistency::NoGuarantee,
            key: b"k".to_vec(),
        },
        &[0x29, 0x00, 0xff, 0xb1, 0x01, 0x01, 0x00, 0x00, 0x00, b'k'],
    );
}

/// Spec: 0x09 set: string key, string value.
#[test]
fn set() {
    check_request(
        Request::Set {
            key: b"k".to_vec(),
            value: b"value".to_vec(),
        },
        &[
            0x09, 0x00, 0xff, 0xb1, //
            0x01, 0x00, 0x00, 0x00, b'k', //
            0x05, 0x00, 0x00, 0x00, b'v', b'a', b'l', b'u', b'e',
        ],
    );
}

/// Spec: 0x10 sequence: string (an encoded Sequence update); update tags
/// Set 1, Sequence 5 (int32 count, then the updates), Assert 8.
#[test]
fn sequence_with_a_nested_assert() {
    let request = Request::Sequence {
        updates: vec![
            Update::Set {
                key: b"a".to_vec(),
                value: b"b".to_vec(),
            },
            Update::Sequence(vec![Update::Assert {
                key: b"a".to_vec(),
                value: Some(b"b".to_vec()),
            }]),
            Update::Delete { key: b"c".to_vec() },
        ],
    };
    #[rustfmt::skip]
    let expected = [
        0x10, 0x00, 0xff, 0xb1,
        54, 0, 0, 0,                   // payload length
        5, 0, 0, 0,  3, 0, 0, 0,       // Sequence, 3 updates
        1, 0, 0, 0,                    // Set
        1, 0, 0, 0, b'a',  1, 0, 0, 0, b'b',
        5, 0, 0, 0,  1, 0, 0, 0,       // Sequence, 1 update
        8, 0, 0, 0,                    // Assert
        1, 0, 0, 0, b'a',  1,  1, 0, 0, 0, b'b',
        2, 0, 0, 0,  1, 0, 0, 0, b'c', // Delete
    ];
    assert_eq!(expected.len() - 8, 54);
    check_request(request, &expected);
}

/// Spec: 0x24 synced_sequence: as sequence (the payload is still tag 5).
#[test]
fn synced_sequence_payload_is_tag_5() {
    check_request(
        Request::SyncedSequence {
            updates: vec![Update::Nop],
        },
        &[
            0x24, 0x00, 0xff, 0xb1, 12, 0, 0, 0, 5, 0, 0, 0, 1, 0, 0, 0, 6, 0, 0, 0,
        ],
    );
}

/// Spec: 0x0b range: cons, option first, bool first_incl, option last, bool
/// last_incl, int max (-1: no limit).
#[test]
fn range_with_options() {
    check_request(
        Request::Range {
            consistency: Consistency::NoGuarantee,
            range: KeyRange {
                first: Some(b"a".to_vec()),
                first_inclusive: true,
                last: None,
                last_inclusive: false,
                max: -1,
            },
        },
        &[
            0x0b, 0x00, 0xff, 0xb1, //
            0x01, // NoGuarantee
            0x01, 0x01, 0x00, 0x00, 0x00, b'a', // Some "a"
            0x01, // first inclusive
            0x00, // None
            0x00, // last exclusive
            0xff, 0xff, 0xff, 0xff, // max -1
        ],
    );
}

/// `multi_get` keys are written as the client lists them (the Python client;
/// see docs/protocol.md for the OCaml client, which writes them reversed).
#[test]
fn multi_get_request() {
    check_request(
        Request::MultiGet {
            consistency: Consistency::Consistent,
            keys: vec![b"x".to_vec(), b"y".to_vec()],
        },
        &[
            0x11, 0x00, 0xff, 0xb1, 0x00, //
            0x02, 0x00, 0x00, 0x00, // 2 keys
            0x01, 0x00, 0x00, 0x00, b'x', //
            0x01, 0x00, 0x00, 0x00, b'y',
        ],
    );
}

/// Spec: who_master answers option(string master name).
#[test]
fn who_master_response_some_and_none() {
    check_response(
        Command::WhoMaster,
        Response::Ok(Reply::WhoMaster(Some(b"n0".to_vec()))),
        &[0, 0, 0, 0, 0x01, 0x02, 0x00, 0x00, 0x00, b'n', b'0'],
    );
    check_response(
        Command::WhoMaster,
        Response::Ok(Reply::WhoMaster(None)),
        &[0, 0, 0, 0, 0x00],
    );
}

/// Spec: rc != 0 is followed by `string message` and nothing else; for a
/// missing key the rc is E_NOT_FOUND (0x05) and the message the key.
#[test]
fn error_response() {
    let response = Response::Error(ErrorResponse::new(ResultCode::NotFound, b"key".to_vec()));
    // Whatever the command, an error has the same layout.
    for command in [Command::Get, Command::Range, Command::Sequence] {
        check_response(
            command,
            response.clone(),
            &[0x05, 0, 0, 0, 0x03, 0, 0, 0, b'k', b'e', b'y'],
        );
    }
}

/// An rc Arakoon does not define is kept as received, read as
/// E_UNKNOWN_FAILURE.
#[test]
fn unknown_result_code_is_kept() {
    let bytes = [0x77, 0, 0, 0, 0, 0, 0, 0];
    let (response, _) = decode_response(&bytes, Command::Get, &Limits::default())
        .unwrap()
        .complete()
        .unwrap();
    let Response::Error(e) = response else {
        panic!("{response:?}")
    };
    assert_eq!(e.code(), 0x77);
    assert_eq!(e.result_code(), ResultCode::UnknownFailure);
    assert_eq!(response_bytes(&Response::Error(e)), bytes);
}

/// Spec: version answers int major, int minor, int patch, string info.
#[test]
fn version_response() {
    check_response(
        Command::Version,
        Response::Ok(Reply::Version {
            major: 1,
            minor: 9,
            patch: 22,
            info: b"rs".to_vec(),
        }),
        &[
            0, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 22, 0, 0, 0, 2, 0, 0, 0, b'r', b's',
        ],
    );
}

/// Spec: get_txid answers a consistency value: 0x02 + int64 i.
#[test]
fn get_txid_response() {
    check_response(
        Command::GetTxid,
        Response::Ok(Reply::GetTxid(Consistency::AtLeast(42))),
        &[0, 0, 0, 0, 0x02, 42, 0, 0, 0, 0, 0, 0, 0],
    );
}

/// get_key_count: int64; delete_prefix: int; exists: bool; set: nothing.
#[test]
fn scalar_responses() {
    check_response(
        Command::GetKeyCount,
        Response::Ok(Reply::GetKeyCount(3)),
        &[0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0],
    );
    check_response(
        Command::DeletePrefix,
        Response::Ok(Reply::DeletePrefix(2)),
        &[0, 0, 0, 0, 2, 0, 0, 0],
    );
    check_response(
        Command::Exists,
        Response::Ok(Reply::Exists(true)),
        &[0, 0, 0, 0, 1],
    );
    check_response(Command::Set, Response::Ok(Reply::Set), &[0, 0, 0, 0]);
}

/// Spec "Statistics encoding": a string holding one named field.
#[test]
fn statistics_response() {
    let field = NamedField::new(
        "arakoon_stats",
        NamedValue::List(vec![NamedField::new("node_is", NamedValue::List(vec![]))]),
    );
    #[rustfmt::skip]
    let mut expected = vec![
        0, 0, 0, 0,                   // E_OK
        44, 0, 0, 0,                  // the string's length
        5, 0, 0, 0,                   // list
        13, 0, 0, 0,
    ];
    expected.extend_from_slice(b"arakoon_stats");
    expected.extend_from_slice(&[1, 0, 0, 0, 5, 0, 0, 0, 7, 0, 0, 0]);
    expected.extend_from_slice(b"node_is");
    expected.extend_from_slice(&[0, 0, 0, 0]);
    check_response(
        Command::Statistics,
        Response::Ok(Reply::Statistics(field)),
        &expected,
    );
}

/// collapse_tlogs streams: `rc 0, int count`, then per tlog `rc 0, int64`.
#[test]
fn collapse_tlogs_frames() {
    check_response(
        Command::CollapseTlogs,
        Response::Ok(Reply::CollapseTlogs {
            tlogs_to_collapse: 2,
        }),
        &[0, 0, 0, 0, 2, 0, 0, 0],
    );
    let progress = [0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(
        response_bytes(&Response::Ok(Reply::CollapseTlogsProgress { elapsed: 9 })),
        progress
    );
    assert_eq!(
        protocol::decode_collapse_progress(&progress, &Limits::default()),
        Ok(Decoded::Complete {
            value: Response::Ok(Reply::CollapseTlogsProgress { elapsed: 9 }),
            consumed: 12
        })
    );
}
