//! The connection prologue and the requests (`client_protocol.ml` for what
//! the server reads, `protocol_common.ml` for what a client writes).
//!
//! Lists in requests (the keys of `multi_get` and `multi_get_option`) are in
//! wire order: the order in which a client wrote them. Values in the
//! responses follow that order in the API; the response codec applies
//! Arakoon's byte order (see `docs/protocol.md`).

use crate::command::{read_unsupported, Command, Unsupported};
use crate::error::ProtocolError;
use crate::update::{read_update_list, write_update_list, SEQUENCE_TAG};
use crate::wire::{self, ReadResult, Reader, MIN_STRING_SIZE};
use crate::{decode_payload, decode_stream, Decoded, Limits, Update};

/// The magic: the high half of every request word, and the prologue's first
/// word.
pub const MAGIC: u32 = 0xb1ff_0000;
/// The protocol version of the prologue.
pub const PROTOCOL_VERSION: i32 = 1;
const MAGIC_MASK: u32 = 0xffff_0000;

/// What a client sends once, right after connecting: magic, version 1,
/// cluster id. Nothing is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prologue {
    pub cluster_id: Vec<u8>,
}

/// Writes the prologue: `int32 0xb1ff0000`, `int32 1`, `string cluster_id`.
pub fn encode_prologue(cluster_id: &[u8], out: &mut Vec<u8>) {
    wire::put_u32(out, MAGIC);
    wire::put_i32(out, PROTOCOL_VERSION);
    wire::put_bytes(out, cluster_id);
}

/// Decodes the prologue from the start of `buf`. A wrong magic or version is
/// an error (answer it, then close); checking the cluster id is the server's
/// job ([`crate::ResultCode::WrongCluster`]).
pub fn decode_prologue(buf: &[u8], limits: &Limits) -> Result<Decoded<Prologue>, ProtocolError> {
    decode_stream(buf, limits, |r| {
        let word = r.u32("prologue.magic")?;
        if word != MAGIC {
            return Err(ProtocolError::BadPrologueMagic { word }.into());
        }
        let version = r.i32("prologue.version")?;
        if version != PROTOCOL_VERSION {
            return Err(ProtocolError::BadProtocolVersion { version }.into());
        }
        let cluster_id = r.bytes("prologue.cluster_id")?;
        Ok(Prologue { cluster_id })
    })
}

/// Read consistency: one byte, and for `AtLeast` an int64 after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Consistency {
    /// 0x00: the master answers, under its lease.
    Consistent,
    /// 0x01: any node answers from its current state.
    NoGuarantee,
    /// 0x02 + int64 i: any node that has applied at least tlog position `i`.
    /// Kept as Arakoon's signed int64 so that every wire value round-trips;
    /// see [`Consistency::at_least_index`].
    AtLeast(i64),
}

impl Consistency {
    /// For `AtLeast(i)`: the tlog index that must be applied, with a negative
    /// `i` (which every node satisfies, as in Arakoon) as 0.
    pub fn at_least_index(self) -> Option<u64> {
        match self {
            Consistency::AtLeast(i) => Some(u64::try_from(i).unwrap_or(0)),
            Consistency::Consistent | Consistency::NoGuarantee => None,
        }
    }
}

pub(crate) fn read_consistency(r: &mut Reader<'_>) -> ReadResult<Consistency> {
    match r.u8("consistency")? {
        0x00 => Ok(Consistency::Consistent),
        0x01 => Ok(Consistency::NoGuarantee),
        0x02 => Ok(Consistency::AtLeast(r.i64("consistency.at_least")?)),
        byte => Err(ProtocolError::InvalidConsistency { byte }.into()),
    }
}

pub(crate) fn write_consistency(out: &mut Vec<u8>, c: Consistency) {
    match c {
        Consistency::Consistent => wire::put_u8(out, 0x00),
        Consistency::NoGuarantee => wire::put_u8(out, 0x01),
        Consistency::AtLeast(i) => {
            wire::put_u8(out, 0x02);
            wire::put_i64(out, i);
        }
    }
}

/// The bounds of `range`, `range_entries` and `rev_range_entries`:
/// `option first, bool first_inclusive, option last, bool last_inclusive,
/// int max`. For `rev_range_entries`, `first` is the high end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRange {
    pub first: Option<Vec<u8>>,
    pub first_inclusive: bool,
    pub last: Option<Vec<u8>>,
    pub last_inclusive: bool,
    /// Most results to return; -1 (any negative) means no limit.
    pub max: i32,
}

impl KeyRange {
    /// Every key, without a limit.
    pub fn all() -> KeyRange {
        KeyRange {
            first: None,
            first_inclusive: true,
            last: None,
            last_inclusive: true,
            max: -1,
        }
    }

    /// `max` as a limit: `None` when negative (no limit).
    pub fn max_results(&self) -> Option<usize> {
        usize::try_from(self.max).ok()
    }
}

fn read_key_range(r: &mut Reader<'_>) -> ReadResult<KeyRange> {
    Ok(KeyRange {
        first: r.option_bytes("range.first")?,
        first_inclusive: r.bool("range.first_inclusive")?,
        last: r.option_bytes("range.last")?,
        last_inclusive: r.bool("range.last_inclusive")?,
        max: r.i32("range.max")?,
    })
}

fn write_key_range(out: &mut Vec<u8>, range: &KeyRange) {
    wire::put_option_bytes(out, range.first.as_deref());
    wire::put_bool(out, range.first_inclusive);
    wire::put_option_bytes(out, range.last.as_deref());
    wire::put_bool(out, range.last_inclusive);
    wire::put_i32(out, range.max);
}

/// A client request, one variant per command of the spec's table. Keys and
/// values are byte strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// 0x01: `string client_id, string cluster_id`.
    Ping {
        client_id: Vec<u8>,
        cluster_id: Vec<u8>,
    },
    /// 0x02.
    WhoMaster,
    /// 0x07.
    Exists {
        consistency: Consistency,
        key: Vec<u8>,
    },
    /// 0x08.
    Get {
        consistency: Consistency,
        key: Vec<u8>,
    },
    /// 0x09.
    Set { key: Vec<u8>, value: Vec<u8> },
    /// 0x0a.
    Delete { key: Vec<u8> },
    /// 0x0b: keys in the range, ascending.
    Range {
        consistency: Consistency,
        range: KeyRange,
    },
    /// 0x0c: `cons, string prefix, int max` (max -1: no limit).
    PrefixKeys {
        consistency: Consistency,
        prefix: Vec<u8>,
        max: i32,
    },
    /// 0x0d.
    TestAndSet {
        key: Vec<u8>,
        expected: Option<Vec<u8>>,
        wanted: Option<Vec<u8>>,
    },
    /// 0x0f: entries in the range, ascending.
    RangeEntries {
        consistency: Consistency,
        range: KeyRange,
    },
    /// 0x10: `string payload`, the payload a Sequence update (tag 5); these
    /// are its updates.
    Sequence { updates: Vec<Update> },
    /// 0x11: keys in wire order.
    MultiGet {
        consistency: Consistency,
        keys: Vec<Vec<u8>>,
    },
    /// 0x12.
    ExpectProgressPossible,
    /// 0x13.
    Statistics,
    /// 0x14: `int n`, the number of tlog segments to keep.
    CollapseTlogs { tlogs_to_keep: i32 },
    /// 0x15.
    UserFunction {
        name: Vec<u8>,
        argument: Option<Vec<u8>>,
    },
    /// 0x16.
    Assert {
        consistency: Consistency,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
    },
    /// 0x1a.
    GetKeyCount,
    /// 0x1b: a copy of the store (answered `rc 0, int64 length`, then that
    /// many bytes of the store file).
    GetDb,
    /// 0x25.
    OptimizeDb,
    /// 0x26.
    DefragDb,
    /// 0x42: make the store durable now.
    FlushStore,
    /// 0x44: `int n`, the number of tlog segments to keep.
    CopyDbToHead { tlogs_to_keep: i32 },
    /// 0x1c.
    Confirm { key: Vec<u8>, value: Vec<u8> },
    /// 0x20.
    GetNurseryCfg,
    /// 0x23: entries from `range.first` (high) down to `range.last` (low),
    /// descending.
    RevRangeEntries {
        consistency: Consistency,
        range: KeyRange,
    },
    /// 0x24: as `Sequence`, with an fsync of the tlog before the answer.
    SyncedSequence { updates: Vec<Update> },
    /// 0x27.
    DeletePrefix { prefix: Vec<u8> },
    /// 0x28.
    Version,
    /// 0x29.
    AssertExists {
        consistency: Consistency,
        key: Vec<u8>,
    },
    /// 0x30.
    DropMaster,
    /// 0x31: keys in wire order.
    MultiGetOption {
        consistency: Consistency,
        keys: Vec<Vec<u8>>,
    },
    /// 0x32.
    CurrentState,
    /// 0x70, ours: the node's state as `key=value` lines, with the term of
    /// its tlog entry `term_at` (`-1`: none asked) and, if `fingerprint`,
    /// a checksum of its whole store (costs a scan of it).
    Inspect { term_at: i64, fingerprint: bool },
    /// 0x33.
    Replace {
        key: Vec<u8>,
        wanted: Option<Vec<u8>>,
    },
    /// 0x41.
    Nop,
    /// 0x43.
    GetTxid,
}

impl Request {
    /// The read consistency asked for, for the reads that carry one (exists,
    /// get, assert, assert_exists, range, range_entries, rev_range_entries,
    /// prefix_keys, multi_get, multi_get_option).
    pub fn consistency(&self) -> Option<Consistency> {
        match self {
            Request::Exists { consistency, .. }
            | Request::Get { consistency, .. }
            | Request::Range { consistency, .. }
            | Request::PrefixKeys { consistency, .. }
            | Request::RangeEntries { consistency, .. }
            | Request::MultiGet { consistency, .. }
            | Request::Assert { consistency, .. }
            | Request::RevRangeEntries { consistency, .. }
            | Request::AssertExists { consistency, .. }
            | Request::MultiGetOption { consistency, .. } => Some(*consistency),
            _ => None,
        }
    }

    /// Whether the request is an update: it goes to the master and through
    /// consensus (set, confirm, delete, test_and_set, replace, delete_prefix,
    /// sequence, synced_sequence, user_function, nop).
    pub fn is_update(&self) -> bool {
        matches!(
            self,
            Request::Set { .. }
                | Request::Confirm { .. }
                | Request::Delete { .. }
                | Request::TestAndSet { .. }
                | Request::Replace { .. }
                | Request::DeletePrefix { .. }
                | Request::Sequence { .. }
                | Request::SyncedSequence { .. }
                | Request::UserFunction { .. }
                | Request::Nop
        )
    }

    /// The update an update request proposes (see [`Request::is_update`]);
    /// any other request is given back. `confirm` becomes a `Set`: skipping
    /// it when the value is already there is the node's decision.
    pub fn into_update(self) -> Result<Update, Request> {
        Ok(match self {
            Request::Set { key, value } | Request::Confirm { key, value } => {
                Update::Set { key, value }
            }
            Request::Delete { key } => Update::Delete { key },
            Request::TestAndSet {
                key,
                expected,
                wanted,
            } => Update::TestAndSet {
                key,
                expected,
                wanted,
            },
            Request::Replace { key, wanted } => Update::Replace { key, wanted },
            Request::DeletePrefix { prefix } => Update::DeletePrefix { prefix },
            Request::Sequence { updates } => Update::Sequence(updates),
            Request::SyncedSequence { updates } => Update::SyncedSequence(updates),
            Request::UserFunction { name, argument } => Update::UserFunction { name, argument },
            Request::Nop => Update::Nop,
            other => return Err(other),
        })
    }

    pub fn command(&self) -> Command {
        match self {
            Request::Ping { .. } => Command::Ping,
            Request::WhoMaster => Command::WhoMaster,
            Request::Exists { .. } => Command::Exists,
            Request::Get { .. } => Command::Get,
            Request::Set { .. } => Command::Set,
            Request::Delete { .. } => Command::Delete,
            Request::Range { .. } => Command::Range,
            Request::PrefixKeys { .. } => Command::PrefixKeys,
            Request::TestAndSet { .. } => Command::TestAndSet,
            Request::RangeEntries { .. } => Command::RangeEntries,
            Request::Sequence { .. } => Command::Sequence,
            Request::MultiGet { .. } => Command::MultiGet,
            Request::ExpectProgressPossible => Command::ExpectProgressPossible,
            Request::Statistics => Command::Statistics,
            Request::CollapseTlogs { .. } => Command::CollapseTlogs,
            Request::UserFunction { .. } => Command::UserFunction,
            Request::Assert { .. } => Command::Assert,
            Request::GetKeyCount => Command::GetKeyCount,
            Request::GetDb => Command::GetDb,
            Request::OptimizeDb => Command::OptimizeDb,
            Request::DefragDb => Command::DefragDb,
            Request::FlushStore => Command::FlushStore,
            Request::CopyDbToHead { .. } => Command::CopyDbToHead,
            Request::Confirm { .. } => Command::Confirm,
            Request::GetNurseryCfg => Command::GetNurseryCfg,
            Request::RevRangeEntries { .. } => Command::RevRangeEntries,
            Request::SyncedSequence { .. } => Command::SyncedSequence,
            Request::DeletePrefix { .. } => Command::DeletePrefix,
            Request::Version => Command::Version,
            Request::AssertExists { .. } => Command::AssertExists,
            Request::DropMaster => Command::DropMaster,
            Request::MultiGetOption { .. } => Command::MultiGetOption,
            Request::CurrentState => Command::CurrentState,
            Request::Inspect { .. } => Command::Inspect,
            Request::Replace { .. } => Command::Replace,
            Request::Nop => Command::Nop,
            Request::GetTxid => Command::GetTxid,
        }
    }
}

/// What a server reads from a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A request to serve.
    Request(Request),
    /// A request whose bytes were all consumed (the stream is still in step)
    /// but whose content is unusable, e.g. a sequence payload with an unknown
    /// update tag. Answer `error.to_error_response()` and read on.
    Rejected {
        command: Command,
        error: ProtocolError,
    },
    /// A command we do not implement. Answer `error_response()`; close the
    /// connection afterwards unless `stream_in_sync`.
    Unsupported(Unsupported),
}

/// Writes a request, code word first.
pub fn encode_request(request: &Request, out: &mut Vec<u8>) {
    wire::put_u32(out, request.command().word());
    match request {
        Request::WhoMaster
        | Request::ExpectProgressPossible
        | Request::Statistics
        | Request::GetKeyCount
        | Request::GetDb
        | Request::OptimizeDb
        | Request::DefragDb
        | Request::FlushStore
        | Request::GetNurseryCfg
        | Request::Version
        | Request::DropMaster
        | Request::CurrentState
        | Request::Nop
        | Request::GetTxid => {}
        Request::Ping {
            client_id,
            cluster_id,
        } => {
            wire::put_bytes(out, client_id);
            wire::put_bytes(out, cluster_id);
        }
        Request::Exists { consistency, key }
        | Request::Get { consistency, key }
        | Request::AssertExists { consistency, key } => {
            write_consistency(out, *consistency);
            wire::put_bytes(out, key);
        }
        Request::Set { key, value } | Request::Confirm { key, value } => {
            wire::put_bytes(out, key);
            wire::put_bytes(out, value);
        }
        Request::Delete { key } => wire::put_bytes(out, key),
        Request::DeletePrefix { prefix } => wire::put_bytes(out, prefix),
        Request::Range { consistency, range }
        | Request::RangeEntries { consistency, range }
        | Request::RevRangeEntries { consistency, range } => {
            write_consistency(out, *consistency);
            write_key_range(out, range);
        }
        Request::PrefixKeys {
            consistency,
            prefix,
            max,
        } => {
            write_consistency(out, *consistency);
            wire::put_bytes(out, prefix);
            wire::put_i32(out, *max);
        }
        Request::TestAndSet {
            key,
            expected,
            wanted,
        } => {
            wire::put_bytes(out, key);
            wire::put_option_bytes(out, expected.as_deref());
            wire::put_option_bytes(out, wanted.as_deref());
        }
        Request::Sequence { updates } | Request::SyncedSequence { updates } => {
            wire::put_nested(out, |out| {
                wire::put_i32(out, SEQUENCE_TAG);
                write_update_list(out, updates);
            });
        }
        Request::MultiGet { consistency, keys } | Request::MultiGetOption { consistency, keys } => {
            write_consistency(out, *consistency);
            wire::put_len(out, keys.len());
            for key in keys {
                wire::put_bytes(out, key);
            }
        }
        Request::Inspect {
            term_at,
            fingerprint,
        } => {
            wire::put_i64(out, *term_at);
            wire::put_bool(out, *fingerprint);
        }
        Request::CollapseTlogs { tlogs_to_keep } | Request::CopyDbToHead { tlogs_to_keep } => {
            wire::put_i32(out, *tlogs_to_keep)
        }
        Request::UserFunction { name, argument } => {
            wire::put_bytes(out, name);
            wire::put_option_bytes(out, argument.as_deref());
        }
        Request::Assert {
            consistency,
            key,
            value,
        } => {
            write_consistency(out, *consistency);
            wire::put_bytes(out, key);
            wire::put_option_bytes(out, value.as_deref());
        }
        Request::Replace { key, wanted } => {
            wire::put_bytes(out, key);
            wire::put_option_bytes(out, wanted.as_deref());
        }
    }
}

/// Decodes one request from the start of `buf` (see the crate docs for the
/// contract of [`Decoded`] and of errors).
pub fn decode_request(buf: &[u8], limits: &Limits) -> Result<Decoded<Incoming>, ProtocolError> {
    decode_stream(buf, limits, |r| read_request(r, limits))
}

pub(crate) fn read_request(r: &mut Reader<'_>, limits: &Limits) -> ReadResult<Incoming> {
    let word = r.u32("request.command")?;
    if word & MAGIC_MASK != MAGIC {
        return Err(ProtocolError::NoMagic { word }.into());
    }
    let code = word & !MAGIC_MASK;
    let Some(command) = Command::from_code(code) else {
        return Ok(Incoming::Unsupported(read_unsupported(r, code)?));
    };
    let request = match command {
        Command::Ping => Request::Ping {
            client_id: r.bytes("ping.client_id")?,
            cluster_id: r.bytes("ping.cluster_id")?,
        },
        Command::WhoMaster => Request::WhoMaster,
        Command::Exists => Request::Exists {
            consistency: read_consistency(r)?,
            key: r.bytes("exists.key")?,
        },
        Command::Get => Request::Get {
            consistency: read_consistency(r)?,
            key: r.bytes("get.key")?,
        },
        Command::Set => Request::Set {
            key: r.bytes("set.key")?,
            value: r.bytes("set.value")?,
        },
        Command::Delete => Request::Delete {
            key: r.bytes("delete.key")?,
        },
        Command::Range => Request::Range {
            consistency: read_consistency(r)?,
            range: read_key_range(r)?,
        },
        Command::PrefixKeys => Request::PrefixKeys {
            consistency: read_consistency(r)?,
            prefix: r.bytes("prefix_keys.prefix")?,
            max: r.i32("prefix_keys.max")?,
        },
        Command::TestAndSet => Request::TestAndSet {
            key: r.bytes("test_and_set.key")?,
            expected: r.option_bytes("test_and_set.expected")?,
            wanted: r.option_bytes("test_and_set.wanted")?,
        },
        Command::RangeEntries => Request::RangeEntries {
            consistency: read_consistency(r)?,
            range: read_key_range(r)?,
        },
        Command::Sequence | Command::SyncedSequence => {
            let payload = r.slice("sequence.payload")?;
            if r.skimming() {
                // Measuring the frame only: the payload's content does not
                // change where the frame ends.
                return Ok(Incoming::Request(Request::Nop));
            }
            match decode_sequence_payload(payload, limits) {
                Ok(updates) if command == Command::Sequence => Request::Sequence { updates },
                Ok(updates) => Request::SyncedSequence { updates },
                Err(error) => return Ok(Incoming::Rejected { command, error }),
            }
        }
        Command::MultiGet => Request::MultiGet {
            consistency: read_consistency(r)?,
            keys: r.list("multi_get.keys", MIN_STRING_SIZE, |r| {
                r.bytes("multi_get.key")
            })?,
        },
        Command::ExpectProgressPossible => Request::ExpectProgressPossible,
        Command::Statistics => Request::Statistics,
        Command::CollapseTlogs => Request::CollapseTlogs {
            tlogs_to_keep: r.i32("collapse_tlogs.n")?,
        },
        Command::UserFunction => Request::UserFunction {
            name: r.bytes("user_function.name")?,
            argument: r.option_bytes("user_function.argument")?,
        },
        Command::Assert => Request::Assert {
            consistency: read_consistency(r)?,
            key: r.bytes("assert.key")?,
            value: r.option_bytes("assert.value")?,
        },
        Command::GetKeyCount => Request::GetKeyCount,
        Command::GetDb => Request::GetDb,
        Command::OptimizeDb => Request::OptimizeDb,
        Command::DefragDb => Request::DefragDb,
        Command::FlushStore => Request::FlushStore,
        Command::CopyDbToHead => Request::CopyDbToHead {
            tlogs_to_keep: r.i32("copy_db_to_head.tlogs_to_keep")?,
        },
        Command::Confirm => Request::Confirm {
            key: r.bytes("confirm.key")?,
            value: r.bytes("confirm.value")?,
        },
        Command::GetNurseryCfg => Request::GetNurseryCfg,
        Command::RevRangeEntries => Request::RevRangeEntries {
            consistency: read_consistency(r)?,
            range: read_key_range(r)?,
        },
        Command::DeletePrefix => Request::DeletePrefix {
            prefix: r.bytes("delete_prefix.prefix")?,
        },
        Command::Version => Request::Version,
        Command::AssertExists => Request::AssertExists {
            consistency: read_consistency(r)?,
            key: r.bytes("assert_exists.key")?,
        },
        Command::DropMaster => Request::DropMaster,
        Command::MultiGetOption => Request::MultiGetOption {
            consistency: read_consistency(r)?,
            keys: r.list("multi_get_option.keys", MIN_STRING_SIZE, |r| {
                r.bytes("multi_get_option.key")
            })?,
        },
        Command::CurrentState => Request::CurrentState,
        Command::Inspect => Request::Inspect {
            term_at: r.i64("inspect.term_at")?,
            fingerprint: r.bool("inspect.fingerprint")?,
        },
        Command::Replace => Request::Replace {
            key: r.bytes("replace.key")?,
            wanted: r.option_bytes("replace.wanted")?,
        },
        Command::Nop => Request::Nop,
        Command::GetTxid => Request::GetTxid,
    };
    Ok(Incoming::Request(request))
}

/// The payload of a sequence request: one Sequence update (tag 5) filling
/// the whole string.
fn decode_sequence_payload(payload: &[u8], limits: &Limits) -> Result<Vec<Update>, ProtocolError> {
    decode_payload(payload, limits, "sequence.payload", |r| {
        let tag = r.i32("sequence.tag")?;
        if tag != SEQUENCE_TAG {
            return Err(ProtocolError::NotASequence { tag }.into());
        }
        read_update_list(r, 1, limits)
    })
}
