//! Responses: `int32 rc`, then the command's payload if rc = 0, else
//! `string message`.
//!
//! # Order of lists
//!
//! The API holds every list in its natural order: `range`, `prefix_keys`
//! and `range_entries` ascending, `rev_range_entries` descending, `multi_get`
//! and `multi_get_option` in the order of the request's keys. On the wire,
//! Arakoon's server writes all of them *reversed* except `multi_get_option`
//! (its clients read by prepending, `llio.ml`'s `input_list`), and this codec
//! does the same, in both directions. `docs/protocol.md` has the derivation
//! per command.

use std::borrow::Cow;

use crate::command::Command;
use crate::error::ProtocolError;
use crate::request::{read_consistency, write_consistency, Consistency};
use crate::result_code::ResultCode;
use crate::statistics::NamedField;
use crate::wire::{self, ReadResult, Reader, MIN_OPTION_SIZE, MIN_PAIR_SIZE, MIN_STRING_SIZE};
use crate::{decode_stream, Decoded, Limits};

/// A failure answer: a result code other than `E_OK`, and a message (for
/// `E_NOT_FOUND`, the key; for `E_NOT_MASTER`, the master's name if known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorResponse {
    code: u32,
    message: Vec<u8>,
}

impl ErrorResponse {
    /// Panics if `rc` is `E_OK`: an OK answer carries a payload, never a
    /// message, so this is a bug in the caller.
    pub fn new(rc: ResultCode, message: impl Into<Vec<u8>>) -> Self {
        assert!(rc != ResultCode::Ok, "an error response cannot be E_OK");
        ErrorResponse {
            code: rc.code(),
            message: message.into(),
        }
    }

    /// The result code; a code Arakoon does not define reads as
    /// `E_UNKNOWN_FAILURE`, as Arakoon's client does.
    pub fn result_code(&self) -> ResultCode {
        ResultCode::from_code(self.code).unwrap_or(ResultCode::UnknownFailure)
    }

    /// The code exactly as received.
    pub fn code(&self) -> u32 {
        self.code
    }

    pub fn message(&self) -> &[u8] {
        &self.message
    }

    pub fn message_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.message)
    }
}

impl std::fmt::Display for ErrorResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match ResultCode::from_code(self.code) {
            Some(rc) => write!(f, "{rc}: {}", self.message_lossy()),
            None => write!(f, "rc 0x{:x}: {}", self.code, self.message_lossy()),
        }
    }
}

impl std::error::Error for ErrorResponse {}

/// The payload of an OK answer, one variant per command.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A greeting naming the node's version.
    Ping(Vec<u8>),
    /// The master's name, if there is one.
    WhoMaster(Option<Vec<u8>>),
    Exists(bool),
    /// The value.
    Get(Vec<u8>),
    Set,
    Delete,
    /// Keys, ascending.
    Range(Vec<Vec<u8>>),
    /// Keys, ascending.
    PrefixKeys(Vec<Vec<u8>>),
    /// The value found before.
    TestAndSet(Option<Vec<u8>>),
    /// (key, value), ascending.
    RangeEntries(Vec<(Vec<u8>, Vec<u8>)>),
    Sequence,
    /// Values in the order of the request's keys.
    MultiGet(Vec<Vec<u8>>),
    ExpectProgressPossible(bool),
    /// The `arakoon_stats` field (sent as a string holding it).
    Statistics(NamedField),
    /// First frame of a collapse: how many tlogs will be collapsed. One
    /// [`Reply::CollapseTlogsProgress`] frame follows per tlog.
    CollapseTlogs {
        tlogs_to_collapse: i32,
    },
    /// A later frame of a collapse: time since the start (Arakoon writes a
    /// difference of float bit patterns; keep it opaque).
    CollapseTlogsProgress {
        elapsed: i64,
    },
    UserFunction(Option<Vec<u8>>),
    Assert,
    GetKeyCount(i64),
    /// The header of `get_db`'s answer: `length` bytes of the store file
    /// follow it, outside the frame.
    GetDb {
        length: i64,
    },
    OptimizeDb,
    DefragDb,
    FlushStore,
    CopyDbToHead,
    Confirm,
    /// The nursery configuration, opaque.
    GetNurseryCfg(Vec<u8>),
    /// (key, value), descending.
    RevRangeEntries(Vec<(Vec<u8>, Vec<u8>)>),
    SyncedSequence,
    /// How many keys were deleted.
    DeletePrefix(i32),
    Version {
        major: i32,
        minor: i32,
        patch: i32,
        info: Vec<u8>,
    },
    AssertExists,
    DropMaster,
    /// Values in the order of the request's keys.
    MultiGetOption(Vec<Option<Vec<u8>>>),
    CurrentState(Vec<u8>),
    /// `key=value` lines (see [`crate::Request::Inspect`]).
    Inspect(Vec<u8>),
    /// The value found before.
    Replace(Option<Vec<u8>>),
    Nop,
    /// Where to read one's writes: `AtLeast(i)`.
    GetTxid(Consistency),
}

impl Reply {
    /// The command this answers.
    pub fn command(&self) -> Command {
        match self {
            Reply::Ping(_) => Command::Ping,
            Reply::WhoMaster(_) => Command::WhoMaster,
            Reply::Exists(_) => Command::Exists,
            Reply::Get(_) => Command::Get,
            Reply::Set => Command::Set,
            Reply::Delete => Command::Delete,
            Reply::Range(_) => Command::Range,
            Reply::PrefixKeys(_) => Command::PrefixKeys,
            Reply::TestAndSet(_) => Command::TestAndSet,
            Reply::RangeEntries(_) => Command::RangeEntries,
            Reply::Sequence => Command::Sequence,
            Reply::MultiGet(_) => Command::MultiGet,
            Reply::ExpectProgressPossible(_) => Command::ExpectProgressPossible,
            Reply::Statistics(_) => Command::Statistics,
            Reply::CollapseTlogs { .. } | Reply::CollapseTlogsProgress { .. } => {
                Command::CollapseTlogs
            }
            Reply::UserFunction(_) => Command::UserFunction,
            Reply::Assert => Command::Assert,
            Reply::GetKeyCount(_) => Command::GetKeyCount,
            Reply::GetDb { .. } => Command::GetDb,
            Reply::OptimizeDb => Command::OptimizeDb,
            Reply::DefragDb => Command::DefragDb,
            Reply::FlushStore => Command::FlushStore,
            Reply::CopyDbToHead => Command::CopyDbToHead,
            Reply::Confirm => Command::Confirm,
            Reply::GetNurseryCfg(_) => Command::GetNurseryCfg,
            Reply::RevRangeEntries(_) => Command::RevRangeEntries,
            Reply::SyncedSequence => Command::SyncedSequence,
            Reply::DeletePrefix(_) => Command::DeletePrefix,
            Reply::Version { .. } => Command::Version,
            Reply::AssertExists => Command::AssertExists,
            Reply::DropMaster => Command::DropMaster,
            Reply::MultiGetOption(_) => Command::MultiGetOption,
            Reply::CurrentState(_) => Command::CurrentState,
            Reply::Inspect(_) => Command::Inspect,
            Reply::Replace(_) => Command::Replace,
            Reply::Nop => Command::Nop,
            Reply::GetTxid(_) => Command::GetTxid,
        }
    }
}

/// An answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    Ok(Reply),
    Error(ErrorResponse),
}

impl From<ErrorResponse> for Response {
    fn from(e: ErrorResponse) -> Self {
        Response::Error(e)
    }
}

impl From<Reply> for Response {
    fn from(r: Reply) -> Self {
        Response::Ok(r)
    }
}

/// Strings, written in reverse of the given (natural) order.
fn put_reversed_strings(out: &mut Vec<u8>, items: &[Vec<u8>]) {
    wire::put_len(out, items.len());
    for item in items.iter().rev() {
        wire::put_bytes(out, item);
    }
}

/// Pairs, written in reverse of the given (natural) order.
fn put_reversed_pairs(out: &mut Vec<u8>, items: &[(Vec<u8>, Vec<u8>)]) {
    wire::put_len(out, items.len());
    for (k, v) in items.iter().rev() {
        wire::put_bytes(out, k);
        wire::put_bytes(out, v);
    }
}

/// Writes an answer.
pub fn encode_response(response: &Response, out: &mut Vec<u8>) {
    let reply = match response {
        Response::Error(e) => {
            wire::put_u32(out, e.code);
            wire::put_bytes(out, &e.message);
            return;
        }
        Response::Ok(reply) => reply,
    };
    wire::put_u32(out, ResultCode::Ok.code());
    match reply {
        Reply::Set
        | Reply::Delete
        | Reply::Sequence
        | Reply::Assert
        | Reply::Confirm
        | Reply::SyncedSequence
        | Reply::AssertExists
        | Reply::DropMaster
        | Reply::OptimizeDb
        | Reply::DefragDb
        | Reply::FlushStore
        | Reply::CopyDbToHead
        | Reply::Nop => {}
        Reply::GetDb { length } => wire::put_i64(out, *length),
        Reply::Ping(s)
        | Reply::Get(s)
        | Reply::GetNurseryCfg(s)
        | Reply::CurrentState(s)
        | Reply::Inspect(s) => wire::put_bytes(out, s),
        Reply::WhoMaster(o) | Reply::TestAndSet(o) | Reply::UserFunction(o) | Reply::Replace(o) => {
            wire::put_option_bytes(out, o.as_deref())
        }
        Reply::Exists(b) | Reply::ExpectProgressPossible(b) => wire::put_bool(out, *b),
        // Arakoon: `output_array_reversed` of the ascending array (range),
        // `output_counted_list` of a descending list (prefix_keys), `output_list`
        // of the values in reversed key order (multi_get).
        Reply::Range(keys) | Reply::PrefixKeys(keys) | Reply::MultiGet(keys) => {
            put_reversed_strings(out, keys)
        }
        // Arakoon: `output_counted_list` of a list built by prepending while
        // walking in the query's direction.
        Reply::RangeEntries(entries) | Reply::RevRangeEntries(entries) => {
            put_reversed_pairs(out, entries)
        }
        // Arakoon: `output_list` of `List.rev` of the values in reversed key
        // order: request order on the wire.
        Reply::MultiGetOption(values) => {
            wire::put_len(out, values.len());
            for value in values {
                wire::put_option_bytes(out, value.as_deref());
            }
        }
        Reply::Statistics(field) => wire::put_nested(out, |out| field.encode(out)),
        Reply::CollapseTlogs { tlogs_to_collapse } => wire::put_i32(out, *tlogs_to_collapse),
        Reply::CollapseTlogsProgress { elapsed } => wire::put_i64(out, *elapsed),
        Reply::GetKeyCount(n) => wire::put_i64(out, *n),
        Reply::DeletePrefix(n) => wire::put_i32(out, *n),
        Reply::Version {
            major,
            minor,
            patch,
            info,
        } => {
            wire::put_i32(out, *major);
            wire::put_i32(out, *minor);
            wire::put_i32(out, *patch);
            wire::put_bytes(out, info);
        }
        Reply::GetTxid(c) => write_consistency(out, *c),
    }
}

/// Decodes the answer to a request of `command` from the start of `buf`.
/// For `collapse_tlogs` this is the first frame; read the following ones
/// with [`decode_collapse_progress`].
pub fn decode_response(
    buf: &[u8],
    command: Command,
    limits: &Limits,
) -> Result<Decoded<Response>, ProtocolError> {
    decode_stream(buf, limits, |r| {
        read_response(r, |r| read_reply(r, command, limits))
    })
}

/// Decodes a progress frame of `collapse_tlogs` (after the first).
pub fn decode_collapse_progress(
    buf: &[u8],
    limits: &Limits,
) -> Result<Decoded<Response>, ProtocolError> {
    decode_stream(buf, limits, |r| {
        read_response(r, |r| {
            Ok(Reply::CollapseTlogsProgress {
                elapsed: r.i64("collapse_tlogs.elapsed")?,
            })
        })
    })
}

pub(crate) fn read_response(
    r: &mut Reader<'_>,
    reply: impl FnOnce(&mut Reader<'_>) -> ReadResult<Reply>,
) -> ReadResult<Response> {
    let code = r.u32("response.rc")?;
    if code == ResultCode::Ok.code() {
        Ok(Response::Ok(reply(r)?))
    } else {
        let message = r.bytes("response.message")?;
        Ok(Response::Error(ErrorResponse { code, message }))
    }
}

fn reversed<T>(mut items: Vec<T>) -> Vec<T> {
    items.reverse();
    items
}

fn read_strings(r: &mut Reader<'_>, field: &'static str) -> ReadResult<Vec<Vec<u8>>> {
    r.list(field, MIN_STRING_SIZE, |r| r.bytes(field))
}

fn read_pairs(r: &mut Reader<'_>, field: &'static str) -> ReadResult<Vec<(Vec<u8>, Vec<u8>)>> {
    r.list(field, MIN_PAIR_SIZE, |r| {
        Ok((r.bytes(field)?, r.bytes(field)?))
    })
}

pub(crate) fn read_reply(
    r: &mut Reader<'_>,
    command: Command,
    limits: &Limits,
) -> ReadResult<Reply> {
    Ok(match command {
        Command::Ping => Reply::Ping(r.bytes("ping.greeting")?),
        Command::WhoMaster => Reply::WhoMaster(r.option_bytes("who_master.master")?),
        Command::Exists => Reply::Exists(r.bool("exists.result")?),
        Command::Get => Reply::Get(r.bytes("get.value")?),
        Command::Set => Reply::Set,
        Command::Delete => Reply::Delete,
        Command::Range => Reply::Range(reversed(read_strings(r, "range.keys")?)),
        Command::PrefixKeys => Reply::PrefixKeys(reversed(read_strings(r, "prefix_keys.keys")?)),
        Command::TestAndSet => Reply::TestAndSet(r.option_bytes("test_and_set.previous")?),
        Command::RangeEntries => {
            Reply::RangeEntries(reversed(read_pairs(r, "range_entries.entries")?))
        }
        Command::Sequence => Reply::Sequence,
        Command::MultiGet => Reply::MultiGet(reversed(read_strings(r, "multi_get.values")?)),
        Command::ExpectProgressPossible => {
            Reply::ExpectProgressPossible(r.bool("expect_progress_possible.result")?)
        }
        Command::Statistics => {
            let payload = r.slice("statistics.payload")?;
            if r.skimming() {
                // Measuring the frame only.
                return Ok(Reply::Nop);
            }
            Reply::Statistics(NamedField::decode(payload, limits)?)
        }
        Command::CollapseTlogs => Reply::CollapseTlogs {
            tlogs_to_collapse: r.i32("collapse_tlogs.count")?,
        },
        Command::UserFunction => Reply::UserFunction(r.option_bytes("user_function.result")?),
        Command::Assert => Reply::Assert,
        Command::GetKeyCount => Reply::GetKeyCount(r.i64("get_key_count.count")?),
        Command::GetDb => Reply::GetDb {
            length: r.i64("get_db.length")?,
        },
        Command::OptimizeDb => Reply::OptimizeDb,
        Command::DefragDb => Reply::DefragDb,
        Command::FlushStore => Reply::FlushStore,
        Command::CopyDbToHead => Reply::CopyDbToHead,
        Command::Confirm => Reply::Confirm,
        Command::GetNurseryCfg => Reply::GetNurseryCfg(r.bytes("get_nursery_cfg.config")?),
        Command::RevRangeEntries => {
            Reply::RevRangeEntries(reversed(read_pairs(r, "rev_range_entries.entries")?))
        }
        Command::SyncedSequence => Reply::SyncedSequence,
        Command::DeletePrefix => Reply::DeletePrefix(r.i32("delete_prefix.count")?),
        Command::Version => Reply::Version {
            major: r.i32("version.major")?,
            minor: r.i32("version.minor")?,
            patch: r.i32("version.patch")?,
            info: r.bytes("version.info")?,
        },
        Command::AssertExists => Reply::AssertExists,
        Command::DropMaster => Reply::DropMaster,
        Command::MultiGetOption => {
            Reply::MultiGetOption(r.list("multi_get_option.values", MIN_OPTION_SIZE, |r| {
                r.option_bytes("multi_get_option.value")
            })?)
        }
        Command::CurrentState => Reply::CurrentState(r.bytes("current_state.state")?),
        Command::Inspect => Reply::Inspect(r.bytes("inspect.state")?),
        Command::Replace => Reply::Replace(r.option_bytes("replace.previous")?),
        Command::Nop => Reply::Nop,
        Command::GetTxid => Reply::GetTxid(read_consistency(r)?),
    })
}
