//! Proptest strategies shared by the round-trip and hostile-input tests.
#![allow(dead_code)]

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use protocol::{
    Command, Consistency, ErrorResponse, KeyRange, NamedField, NamedValue, Reply, Request,
    Response, ResultCode, Update,
};

pub fn bytes() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..6)
}

pub fn opt_bytes() -> impl Strategy<Value = Option<Vec<u8>>> {
    option::of(bytes())
}

pub fn byte_list() -> impl Strategy<Value = Vec<Vec<u8>>> {
    vec(bytes(), 0..4)
}

pub fn pairs() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    vec((bytes(), bytes()), 0..4)
}

pub fn consistency() -> impl Strategy<Value = Consistency> {
    prop_oneof![
        Just(Consistency::Consistent),
        Just(Consistency::NoGuarantee),
        any::<i64>().prop_map(Consistency::AtLeast),
    ]
}

pub fn key_range() -> impl Strategy<Value = KeyRange> {
    (
        opt_bytes(),
        any::<bool>(),
        opt_bytes(),
        any::<bool>(),
        any::<i32>(),
    )
        .prop_map(
            |(first, first_inclusive, last, last_inclusive, max)| KeyRange {
                first,
                first_inclusive,
                last,
                last_inclusive,
                max,
            },
        )
}

pub fn update() -> impl Strategy<Value = Update> {
    let leaf = prop_oneof![
        (bytes(), bytes()).prop_map(|(key, value)| Update::Set { key, value }),
        bytes().prop_map(|key| Update::Delete { key }),
        (bytes(), opt_bytes(), opt_bytes()).prop_map(|(key, expected, wanted)| {
            Update::TestAndSet {
                key,
                expected,
                wanted,
            }
        }),
        Just(Update::Nop),
        (bytes(), opt_bytes()).prop_map(|(name, argument)| Update::UserFunction { name, argument }),
        (bytes(), opt_bytes()).prop_map(|(key, value)| Update::Assert { key, value }),
        bytes().prop_map(|prefix| Update::DeletePrefix { prefix }),
        bytes().prop_map(|key| Update::AssertExists { key }),
        (bytes(), opt_bytes()).prop_map(|(key, wanted)| Update::Replace { key, wanted }),
        (bytes(), vec(bytes(), 0..3)).prop_map(|(prefix, keys)| Update::AssertRange {
            prefix,
            assertion: protocol::RangeAssertion::ContainsExactly(keys),
        }),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(Update::Sequence),
            vec(inner, 0..4).prop_map(Update::SyncedSequence),
        ]
    })
}

pub fn updates() -> impl Strategy<Value = Vec<Update>> {
    vec(update(), 0..4)
}

pub fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (bytes(), bytes()).prop_map(|(client_id, cluster_id)| Request::Ping {
            client_id,
            cluster_id
        }),
        Just(Request::WhoMaster),
        (consistency(), bytes())
            .prop_map(|(consistency, key)| Request::Exists { consistency, key }),
        (consistency(), bytes()).prop_map(|(consistency, key)| Request::Get { consistency, key }),
        (bytes(), bytes()).prop_map(|(key, value)| Request::Set { key, value }),
        bytes().prop_map(|key| Request::Delete { key }),
        (consistency(), key_range())
            .prop_map(|(consistency, range)| Request::Range { consistency, range }),
        (consistency(), bytes(), any::<i32>()).prop_map(|(consistency, prefix, max)| {
            Request::PrefixKeys {
                consistency,
                prefix,
                max,
            }
        }),
        (bytes(), opt_bytes(), opt_bytes()).prop_map(|(key, expected, wanted)| {
            Request::TestAndSet {
                key,
                expected,
                wanted,
            }
        }),
        (consistency(), key_range())
            .prop_map(|(consistency, range)| Request::RangeEntries { consistency, range }),
        updates().prop_map(|updates| Request::Sequence { updates }),
        (consistency(), byte_list())
            .prop_map(|(consistency, keys)| Request::MultiGet { consistency, keys }),
        Just(Request::ExpectProgressPossible),
        Just(Request::Statistics),
        any::<i32>().prop_map(|tlogs_to_keep| Request::CollapseTlogs { tlogs_to_keep }),
        (bytes(), opt_bytes())
            .prop_map(|(name, argument)| Request::UserFunction { name, argument }),
        (consistency(), bytes(), opt_bytes()).prop_map(|(consistency, key, value)| {
            Request::Assert {
                consistency,
                key,
                value,
            }
        }),
        Just(Request::GetKeyCount),
        (bytes(), bytes()).prop_map(|(key, value)| Request::Confirm { key, value }),
        Just(Request::GetNurseryCfg),
        (consistency(), key_range())
            .prop_map(|(consistency, range)| Request::RevRangeEntries { consistency, range }),
        updates().prop_map(|updates| Request::SyncedSequence { updates }),
        bytes().prop_map(|prefix| Request::DeletePrefix { prefix }),
        Just(Request::Version),
        (consistency(), bytes())
            .prop_map(|(consistency, key)| Request::AssertExists { consistency, key }),
        Just(Request::DropMaster),
        (consistency(), byte_list())
            .prop_map(|(consistency, keys)| Request::MultiGetOption { consistency, keys }),
        Just(Request::CurrentState),
        (any::<i64>(), any::<bool>()).prop_map(|(term_at, fingerprint)| Request::Inspect {
            term_at,
            fingerprint
        }),
        (bytes(), opt_bytes()).prop_map(|(key, wanted)| Request::Replace { key, wanted }),
        Just(Request::Nop),
        Just(Request::GetTxid),
    ]
}

/// Finite floats only: NaN != NaN would fail a value comparison (the bits
/// round-trip all the same; see the byte-level test).
fn float() -> impl Strategy<Value = f64> {
    prop_oneof![any::<i32>().prop_map(f64::from), -1e300f64..1e300f64]
}

pub fn named_field() -> impl Strategy<Value = NamedField> {
    let name = "[a-z_]{0,8}";
    let leaf = prop_oneof![
        (name, any::<i32>()).prop_map(|(n, v)| NamedField::new(n, NamedValue::Int32(v))),
        (name, any::<i64>()).prop_map(|(n, v)| NamedField::new(n, NamedValue::Int64(v))),
        (name, float()).prop_map(|(n, v)| NamedField::new(n, NamedValue::Float(v))),
        (name, ".{0,6}").prop_map(|(n, v)| NamedField::new(n, NamedValue::String(v))),
    ];
    leaf.prop_recursive(3, 24, 4, move |inner| {
        (name, vec(inner, 0..4)).prop_map(|(n, l)| NamedField::new(n, NamedValue::List(l)))
    })
}

pub fn reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        bytes().prop_map(Reply::Ping),
        opt_bytes().prop_map(Reply::WhoMaster),
        any::<bool>().prop_map(Reply::Exists),
        bytes().prop_map(Reply::Get),
        Just(Reply::Set),
        Just(Reply::Delete),
        byte_list().prop_map(Reply::Range),
        byte_list().prop_map(Reply::PrefixKeys),
        opt_bytes().prop_map(Reply::TestAndSet),
        pairs().prop_map(Reply::RangeEntries),
        Just(Reply::Sequence),
        byte_list().prop_map(Reply::MultiGet),
        any::<bool>().prop_map(Reply::ExpectProgressPossible),
        named_field().prop_map(Reply::Statistics),
        any::<i32>().prop_map(|tlogs_to_collapse| Reply::CollapseTlogs { tlogs_to_collapse }),
        opt_bytes().prop_map(Reply::UserFunction),
        Just(Reply::Assert),
        any::<i64>().prop_map(Reply::GetKeyCount),
        Just(Reply::Confirm),
        bytes().prop_map(Reply::GetNurseryCfg),
        pairs().prop_map(Reply::RevRangeEntries),
        Just(Reply::SyncedSequence),
        any::<i32>().prop_map(Reply::DeletePrefix),
        (any::<i32>(), any::<i32>(), any::<i32>(), bytes()).prop_map(
            |(major, minor, patch, info)| Reply::Version {
                major,
                minor,
                patch,
                info
            }
        ),
        Just(Reply::AssertExists),
        Just(Reply::DropMaster),
        vec(opt_bytes(), 0..4).prop_map(Reply::MultiGetOption),
        bytes().prop_map(Reply::CurrentState),
        bytes().prop_map(Reply::Inspect),
        opt_bytes().prop_map(Reply::Replace),
        Just(Reply::Nop),
        consistency().prop_map(Reply::GetTxid),
    ]
}

pub fn error_response() -> impl Strategy<Value = ErrorResponse> {
    (proptest::sample::select(&ResultCode::ALL[1..]), bytes())
        .prop_map(|(rc, message)| ErrorResponse::new(rc, message))
}

/// A response and the command it answers.
pub fn response() -> impl Strategy<Value = (Command, Response)> {
    prop_oneof![
        3 => reply().prop_map(|r| (r.command(), Response::Ok(r))),
        1 => (proptest::sample::select(&Command::ALL[..]), error_response())
            .prop_map(|(c, e)| (c, Response::Error(e))),
    ]
}
