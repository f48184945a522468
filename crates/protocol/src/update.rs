//! Arakoon's updates: what a client asks to change, what a tlog entry
//! carries and what the store applies. Keys and values are byte strings.

/// One update, as in Arakoon's `update.ml` (the wire tag is in the docs of
/// each variant).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// Tag 1: set `key` to `value`.
    Set { key: Vec<u8>, value: Vec<u8> },
    /// Tag 2: delete `key`; a missing key is `NotFound` (and fails a sequence).
    Delete { key: Vec<u8> },
    /// Tag 3: if the current value equals `expected` (None = absent), set it to
    /// `wanted` (None = delete). Answers the value found before.
    TestAndSet {
        key: Vec<u8>,
        expected: Option<Vec<u8>>,
        wanted: Option<Vec<u8>>,
    },
    /// Tag 5: all or nothing; nesting allowed.
    Sequence(Vec<Update>),
    /// Tag 6: changes nothing, still goes through consensus.
    Nop,
    /// Tag 7: a user function (not supported: applying it fails).
    UserFunction {
        name: Vec<u8>,
        argument: Option<Vec<u8>>,
    },
    /// Tag 8: fails the sequence unless the value of `key` equals `value`
    /// (None = absent).
    Assert {
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    },
    /// Tag 13: a sequence after which the tlog is fsynced before answering.
    SyncedSequence(Vec<Update>),
    /// Tag 14: delete every key that starts with `prefix`; answers the count.
    DeletePrefix { prefix: Vec<u8> },
    /// Tag 15: fails the sequence unless `key` exists.
    AssertExists { key: Vec<u8> },
    /// Tag 16: set `key` to `wanted` (None = delete), answering the value before.
    Replace {
        key: Vec<u8>,
        wanted: Option<Vec<u8>>,
    },
    /// Tag 17: fails the sequence unless the keys that start with `prefix`
    /// satisfy `assertion`.
    AssertRange {
        prefix: Vec<u8>,
        assertion: RangeAssertion,
    },
}

/// What an [`Update::AssertRange`] asserts of the keys under its prefix
/// (Arakoon's `Range_assertion`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeAssertion {
    /// Kind 1: the keys under the prefix are exactly these. Kept in wire
    /// order; Arakoon's Python client writes them ascending, its OCaml
    /// client descending, so the store compares them sorted.
    ContainsExactly(Vec<Vec<u8>>),
}

impl RangeAssertion {
    /// The wire kind (`int32`).
    pub fn kind(&self) -> i32 {
        match self {
            RangeAssertion::ContainsExactly(_) => 1,
        }
    }
}

// ---- encoding ------------------------------------------------------------

use crate::error::ProtocolError;
use crate::wire::{self, ReadResult, Reader};
use crate::{decode_payload, Limits};

pub(crate) const SEQUENCE_TAG: i32 = 5;
const ASSERT_RANGE_TAG: i32 = 17;
/// Smallest encoding of an update: a tag alone (Nop).
const MIN_UPDATE_SIZE: usize = 4;

/// The version byte that starts a batch (a tlog entry's payload).
pub const BATCH_FORMAT_VERSION: u8 = 1;

impl Update {
    /// The wire tag (`update.ml`).
    pub fn tag(&self) -> i32 {
        match self {
            Update::Set { .. } => 1,
            Update::Delete { .. } => 2,
            Update::TestAndSet { .. } => 3,
            Update::Sequence(_) => SEQUENCE_TAG,
            Update::Nop => 6,
            Update::UserFunction { .. } => 7,
            Update::Assert { .. } => 8,
            Update::SyncedSequence(_) => 13,
            Update::DeletePrefix { .. } => 14,
            Update::AssertExists { .. } => 15,
            Update::Replace { .. } => 16,
            Update::AssertRange { .. } => ASSERT_RANGE_TAG,
        }
    }

    /// Whether applying it must fsync the tlog before answering (a
    /// SyncedSequence, as Arakoon's `is_synced`).
    pub fn is_synced(&self) -> bool {
        matches!(self, Update::SyncedSequence(_))
    }

    /// The length of [`Update::encode`]'s output, without encoding.
    pub fn encoded_len(&self) -> usize {
        fn string(b: &[u8]) -> usize {
            4 + b.len()
        }
        fn option(b: &Option<Vec<u8>>) -> usize {
            1 + b.as_deref().map_or(0, string)
        }
        4 + match self {
            Update::Set { key, value } => string(key) + string(value),
            Update::Delete { key } | Update::AssertExists { key } => string(key),
            Update::DeletePrefix { prefix } => string(prefix),
            Update::TestAndSet {
                key,
                expected,
                wanted,
            } => string(key) + option(expected) + option(wanted),
            Update::Sequence(us) | Update::SyncedSequence(us) => {
                4 + us.iter().map(Update::encoded_len).sum::<usize>()
            }
            Update::Nop => 0,
            Update::UserFunction { name, argument } => string(name) + option(argument),
            Update::Assert { key, value } => string(key) + option(value),
            Update::Replace { key, wanted } => string(key) + option(wanted),
            Update::AssertRange {
                prefix,
                assertion: RangeAssertion::ContainsExactly(keys),
            } => string(prefix) + 4 + 4 + keys.iter().map(|k| string(k)).sum::<usize>(),
        }
    }

    /// Appends the encoding: `int32 tag` then the fields.
    pub fn encode(&self, out: &mut Vec<u8>) {
        wire::put_i32(out, self.tag());
        match self {
            Update::Set { key, value } => {
                wire::put_bytes(out, key);
                wire::put_bytes(out, value);
            }
            Update::Delete { key } | Update::AssertExists { key } => wire::put_bytes(out, key),
            Update::DeletePrefix { prefix } => wire::put_bytes(out, prefix),
            Update::TestAndSet {
                key,
                expected,
                wanted,
            } => {
                wire::put_bytes(out, key);
                wire::put_option_bytes(out, expected.as_deref());
                wire::put_option_bytes(out, wanted.as_deref());
            }
            Update::Sequence(updates) | Update::SyncedSequence(updates) => {
                write_update_list(out, updates)
            }
            Update::Nop => {}
            Update::UserFunction { name, argument } => {
                wire::put_bytes(out, name);
                wire::put_option_bytes(out, argument.as_deref());
            }
            Update::Assert { key, value } => {
                wire::put_bytes(out, key);
                wire::put_option_bytes(out, value.as_deref());
            }
            Update::Replace { key, wanted } => {
                wire::put_bytes(out, key);
                wire::put_option_bytes(out, wanted.as_deref());
            }
            Update::AssertRange { prefix, assertion } => {
                wire::put_bytes(out, prefix);
                wire::put_i32(out, assertion.kind());
                match assertion {
                    RangeAssertion::ContainsExactly(keys) => {
                        wire::put_len(out, keys.len());
                        for key in keys {
                            wire::put_bytes(out, key);
                        }
                    }
                }
            }
        }
    }

    /// Decodes one update that fills all of `bytes`.
    pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Update, ProtocolError> {
        decode_payload(bytes, limits, "update", |r| read_update(r, 0, limits))
    }
}

/// `int32 count`, then the updates in order (Arakoon's `update.ml` keeps the
/// order of a sequence on the wire).
pub(crate) fn write_update_list(out: &mut Vec<u8>, updates: &[Update]) {
    wire::put_len(out, updates.len());
    for update in updates {
        update.encode(out);
    }
}

/// Reads the update list of a sequence nested `depth` levels deep (the
/// sequence of a request is level 1).
pub(crate) fn read_update_list(
    r: &mut Reader<'_>,
    depth: usize,
    limits: &Limits,
) -> ReadResult<Vec<Update>> {
    if depth > limits.max_nesting_depth {
        return Err(ProtocolError::NestingTooDeep {
            limit: limits.max_nesting_depth,
        }
        .into());
    }
    r.list("sequence.count", MIN_UPDATE_SIZE, |r| {
        read_update(r, depth, limits)
    })
}

/// Reads one update inside `depth` levels of sequences.
pub(crate) fn read_update(r: &mut Reader<'_>, depth: usize, limits: &Limits) -> ReadResult<Update> {
    let tag = r.i32("update.tag")?;
    let update = match tag {
        1 => Update::Set {
            key: r.bytes("update.set.key")?,
            value: r.bytes("update.set.value")?,
        },
        2 => Update::Delete {
            key: r.bytes("update.delete.key")?,
        },
        3 => Update::TestAndSet {
            key: r.bytes("update.test_and_set.key")?,
            expected: r.option_bytes("update.test_and_set.expected")?,
            wanted: r.option_bytes("update.test_and_set.wanted")?,
        },
        SEQUENCE_TAG => Update::Sequence(read_update_list(r, depth + 1, limits)?),
        6 => Update::Nop,
        7 => Update::UserFunction {
            name: r.bytes("update.user_function.name")?,
            argument: r.option_bytes("update.user_function.argument")?,
        },
        8 => Update::Assert {
            key: r.bytes("update.assert.key")?,
            value: r.option_bytes("update.assert.value")?,
        },
        13 => Update::SyncedSequence(read_update_list(r, depth + 1, limits)?),
        14 => Update::DeletePrefix {
            prefix: r.bytes("update.delete_prefix.prefix")?,
        },
        15 => Update::AssertExists {
            key: r.bytes("update.assert_exists.key")?,
        },
        16 => Update::Replace {
            key: r.bytes("update.replace.key")?,
            wanted: r.option_bytes("update.replace.wanted")?,
        },
        ASSERT_RANGE_TAG => {
            let prefix = r.bytes("update.assert_range.prefix")?;
            let assertion = match r.i32("update.assert_range.kind")? {
                1 => RangeAssertion::ContainsExactly(r.list(
                    "update.assert_range.keys",
                    wire::MIN_STRING_SIZE,
                    |r| r.bytes("update.assert_range.key"),
                )?),
                kind => return Err(ProtocolError::UnknownRangeAssertion { kind }.into()),
            };
            Update::AssertRange { prefix, assertion }
        }
        4 | 9..=12 => {
            let name = match tag {
                4 => "MasterSet",
                9 => "AdminSet",
                10 => "SetInterval",
                11 => "SetRouting",
                _ => "SetRoutingDelta",
            };
            return Err(ProtocolError::UnsupportedUpdate { tag, name }.into());
        }
        tag => return Err(ProtocolError::UnknownUpdateTag { tag }.into()),
    };
    Ok(update)
}

/// Appends a batch of updates, the payload of one tlog entry:
/// `u8 version (1)`, `int32 count`, then each update as inside a sequence.
/// Takes the updates or references to them.
pub fn encode_batch<U: std::borrow::Borrow<Update>>(updates: &[U], out: &mut Vec<u8>) {
    wire::put_u8(out, BATCH_FORMAT_VERSION);
    wire::put_len(out, updates.len());
    for update in updates {
        update.borrow().encode(out);
    }
}

/// The number of updates a batch says it holds (its header only, nothing
/// decoded: for counting, as the node's metrics do); `None` if `bytes` do
/// not start as a batch does (a barrier entry's empty payload, say).
pub fn batch_update_count(bytes: &[u8]) -> Option<u32> {
    let (&version, rest) = bytes.split_first()?;
    if version != BATCH_FORMAT_VERSION {
        return None;
    }
    let count = i32::from_le_bytes(rest.get(..4)?.try_into().ok()?);
    u32::try_from(count).ok()
}

/// Decodes a batch that fills all of `bytes` (see [`encode_batch`]). Its
/// updates are at nesting level 0: a Sequence in a batch may nest
/// `limits.max_nesting_depth` levels.
pub fn decode_batch(bytes: &[u8], limits: &Limits) -> Result<Vec<Update>, ProtocolError> {
    decode_payload(bytes, limits, "batch", |r| {
        let version = r.u8("batch.version")?;
        if version != BATCH_FORMAT_VERSION {
            return Err(ProtocolError::UnknownBatchVersion { version }.into());
        }
        r.list("batch.count", MIN_UPDATE_SIZE, |r| {
            read_update(r, 0, limits)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize) -> Update {
        let mut u = Update::Nop;
        for _ in 0..depth {
            u = Update::Sequence(vec![u]);
        }
        u
    }

    #[test]
    fn nesting_up_to_the_limit_decodes_and_one_more_is_a_clear_error() {
        let limits = Limits {
            max_nesting_depth: 4,
            ..Limits::default()
        };
        let mut ok = Vec::new();
        nested(4).encode(&mut ok);
        assert_eq!(Update::decode(&ok, &limits), Ok(nested(4)));
        let mut deep = Vec::new();
        nested(5).encode(&mut deep);
        assert_eq!(
            Update::decode(&deep, &limits),
            Err(ProtocolError::NestingTooDeep { limit: 4 })
        );
    }

    #[test]
    fn a_million_nested_sequences_do_not_overflow_the_stack() {
        // 1M x (tag 5, count 1): far past the limit, stopped at level 33.
        let mut bytes = Vec::new();
        for _ in 0..1_000_000 {
            wire::put_i32(&mut bytes, 5);
            wire::put_i32(&mut bytes, 1);
        }
        wire::put_i32(&mut bytes, 6);
        assert!(matches!(
            Update::decode(&bytes, &Limits::default()),
            Err(ProtocolError::NestingTooDeep { .. })
        ));
    }

    /// Spec: AssertRange (17) is `string prefix, int32 1 (ContainsExactly),
    /// list keys`; written out by hand.
    #[test]
    fn assert_range_layout_is_prefix_kind_keys() {
        let mut bytes = Vec::new();
        wire::put_i32(&mut bytes, 17);
        wire::put_bytes(&mut bytes, b"p");
        wire::put_i32(&mut bytes, 1);
        wire::put_i32(&mut bytes, 2);
        wire::put_bytes(&mut bytes, b"pa");
        wire::put_bytes(&mut bytes, b"pb");
        let update = Update::AssertRange {
            prefix: b"p".to_vec(),
            assertion: RangeAssertion::ContainsExactly(vec![b"pa".to_vec(), b"pb".to_vec()]),
        };
        assert_eq!(
            Update::decode(&bytes, &Limits::default()),
            Ok(update.clone())
        );
        let mut out = Vec::new();
        update.encode(&mut out);
        assert_eq!(out, bytes);
        assert_eq!(update.encoded_len(), bytes.len());
    }

    /// Arakoon defines one assertion kind; another is refused by name.
    #[test]
    fn assert_range_of_an_unknown_kind_is_bad_input() {
        let mut bytes = Vec::new();
        wire::put_i32(&mut bytes, 17);
        wire::put_bytes(&mut bytes, b"p");
        wire::put_i32(&mut bytes, 2);
        wire::put_i32(&mut bytes, 0);
        let err = Update::decode(&bytes, &Limits::default()).unwrap_err();
        assert_eq!(err, ProtocolError::UnknownRangeAssertion { kind: 2 });
        assert_eq!(err.result_code(), crate::ResultCode::BadInput);
    }

    #[test]
    fn batch_layout_is_version_count_updates() {
        let mut out = Vec::new();
        encode_batch(
            &[Update::Nop, Update::Delete { key: b"k".to_vec() }],
            &mut out,
        );
        assert_eq!(
            out,
            [1, 2, 0, 0, 0, 6, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, b'k']
        );
        assert_eq!(
            decode_batch(&out, &Limits::default()).map(|b| b.len()),
            Ok(2)
        );
        assert_eq!(batch_update_count(&out), Some(2));
        assert_eq!(batch_update_count(&[]), None);
        assert_eq!(batch_update_count(&[BATCH_FORMAT_VERSION, 2, 0]), None);
        assert_eq!(batch_update_count(&[9, 2, 0, 0, 0]), None);
        out.push(0);
        assert_eq!(
            decode_batch(&out, &Limits::default()),
            Err(ProtocolError::TrailingBytes {
                field: "batch",
                count: 1
            })
        );
    }
}
