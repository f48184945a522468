//! Command codes (`protocol_common.ml`): the low half of a request's first
//! word, whose high half is the magic `0xb1ff`.

use crate::result_code::ResultCode;
use crate::wire::{ReadResult, Reader};
use crate::ErrorResponse;

/// A command we implement. The discriminant is the wire code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Command {
    Ping = 0x01,
    WhoMaster = 0x02,
    Exists = 0x07,
    Get = 0x08,
    Set = 0x09,
    Delete = 0x0a,
    Range = 0x0b,
    PrefixKeys = 0x0c,
    TestAndSet = 0x0d,
    RangeEntries = 0x0f,
    Sequence = 0x10,
    MultiGet = 0x11,
    ExpectProgressPossible = 0x12,
    Statistics = 0x13,
    CollapseTlogs = 0x14,
    UserFunction = 0x15,
    Assert = 0x16,
    GetKeyCount = 0x1a,
    /// Admin: a copy of the node's store, streamed after the answer.
    GetDb = 0x1b,
    Confirm = 0x1c,
    GetNurseryCfg = 0x20,
    RevRangeEntries = 0x23,
    SyncedSequence = 0x24,
    OptimizeDb = 0x25,
    DefragDb = 0x26,
    DeletePrefix = 0x27,
    Version = 0x28,
    AssertExists = 0x29,
    DropMaster = 0x30,
    MultiGetOption = 0x31,
    CurrentState = 0x32,
    Replace = 0x33,
    Nop = 0x41,
    FlushStore = 0x42,
    GetTxid = 0x43,
    CopyDbToHead = 0x44,
    /// Ours (not Arakoon's): a node's state for `--inspect-cluster`.
    Inspect = 0x70,
}

impl Command {
    /// Every command, in code order.
    pub const ALL: [Command; 37] = [
        Command::Ping,
        Command::WhoMaster,
        Command::Exists,
        Command::Get,
        Command::Set,
        Command::Delete,
        Command::Range,
        Command::PrefixKeys,
        Command::TestAndSet,
        Command::RangeEntries,
        Command::Sequence,
        Command::MultiGet,
        Command::ExpectProgressPossible,
        Command::Statistics,
        Command::CollapseTlogs,
        Command::UserFunction,
        Command::Assert,
        Command::GetKeyCount,
        Command::GetDb,
        Command::Confirm,
        Command::GetNurseryCfg,
        Command::RevRangeEntries,
        Command::SyncedSequence,
        Command::OptimizeDb,
        Command::DefragDb,
        Command::DeletePrefix,
        Command::Version,
        Command::AssertExists,
        Command::DropMaster,
        Command::MultiGetOption,
        Command::CurrentState,
        Command::Replace,
        Command::Nop,
        Command::FlushStore,
        Command::GetTxid,
        Command::CopyDbToHead,
        Command::Inspect,
    ];

    /// The wire code (without the magic).
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The first word of a request: `0xb1ff0000 | code`.
    pub fn word(self) -> u32 {
        crate::MAGIC | self.code()
    }

    pub fn from_code(code: u32) -> Option<Command> {
        Command::ALL.iter().copied().find(|c| c.code() == code)
    }

    /// Arakoon's name for the command (`who_master`, …).
    pub fn name(self) -> &'static str {
        match self {
            Command::Ping => "ping",
            Command::WhoMaster => "who_master",
            Command::Exists => "exists",
            Command::Get => "get",
            Command::Set => "set",
            Command::Delete => "delete",
            Command::Range => "range",
            Command::PrefixKeys => "prefix_keys",
            Command::TestAndSet => "test_and_set",
            Command::RangeEntries => "range_entries",
            Command::Sequence => "sequence",
            Command::MultiGet => "multi_get",
            Command::ExpectProgressPossible => "expect_progress_possible",
            Command::Statistics => "statistics",
            Command::CollapseTlogs => "collapse_tlogs",
            Command::UserFunction => "user_function",
            Command::Assert => "assert",
            Command::GetKeyCount => "get_key_count",
            Command::GetDb => "get_db",
            Command::OptimizeDb => "optimize_db",
            Command::DefragDb => "defrag_db",
            Command::FlushStore => "flush_store",
            Command::CopyDbToHead => "copy_db_to_head",
            Command::Confirm => "confirm",
            Command::GetNurseryCfg => "get_nursery_cfg",
            Command::RevRangeEntries => "rev_range_entries",
            Command::SyncedSequence => "synced_sequence",
            Command::DeletePrefix => "delete_prefix",
            Command::Version => "version",
            Command::AssertExists => "assert_exists",
            Command::DropMaster => "drop_master",
            Command::MultiGetOption => "multi_get_option",
            Command::CurrentState => "current_state",
            Command::Replace => "replace",
            Command::Nop => "nop",
            Command::GetTxid => "get_txid",
            Command::Inspect => "inspect",
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (0x{:02x})", self.name(), self.code())
    }
}

/// A request we do not implement: an Arakoon admin or nursery command, or a
/// code Arakoon does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsupported {
    /// The code (without the magic).
    pub code: u32,
    /// Arakoon's name for it, `None` if Arakoon does not define the code.
    pub name: Option<&'static str>,
    /// Whether the request's fields were consumed, so that the next request
    /// can be read. When `false` (unknown layout) the server must close the
    /// connection after answering: the stream cannot be resynchronised.
    pub stream_in_sync: bool,
}

impl Unsupported {
    /// What the server answers: an Arakoon command we do not implement gets
    /// `E_NOT_SUPPORTED`; an unknown code gets `E_NOT_FOUND` "… command not
    /// found", as Arakoon's server does.
    pub fn error_response(&self) -> ErrorResponse {
        match self.name {
            Some(name) => ErrorResponse::new(
                ResultCode::NotSupported,
                format!("{name} (0x{:02x}) is not supported", self.code).into_bytes(),
            ),
            None => ErrorResponse::new(
                ResultCode::NotFound,
                format!("{:x}: command not found", self.code).into_bytes(),
            ),
        }
    }
}

/// The request fields of an Arakoon command we do not implement, as far as
/// we know them (`client_protocol.ml`).
#[derive(Debug, Clone, Copy)]
enum UnsupportedLayout {
    Empty,
    Int64,
    Strings(usize),
    /// user_hook: consistency, string name.
    ConsistencyString,
    /// get_fringe: option string boundary, int direction.
    OptionStringInt32,
    /// set_interval: an interval, four option strings (public begin and
    /// end, private begin and end: `Interval.input_interval`).
    Interval,
    /// migrate_range: an interval, then a string (an encoded sequence, as
    /// the payload of `sequence`).
    IntervalString,
    /// interval, routing, nursery config: layouts we do not decode.
    Unknown,
}

fn unsupported_layout(code: u32) -> Option<(&'static str, UnsupportedLayout)> {
    use UnsupportedLayout::*;
    Some(match code {
        0x0e => ("last_entries", Int64),
        0x17 => ("set_interval", Interval),
        0x18 => ("get_routing", Empty),
        0x19 => ("set_routing", Unknown),
        0x1d => ("get_fringe", OptionStringInt32),
        0x1e => ("get_interval", Empty),
        0x1f => ("set_nursery_cfg", Unknown),
        0x21 => ("set_routing_delta", Strings(3)),
        0x22 => ("migrate_range", IntervalString),
        0x40 => ("last_entries2", Int64),
        0x45 => ("user_hook", ConsistencyString),
        0x46 => ("last_entries3", Int64),
        _ => return None,
    })
}

/// Reads (and drops) the fields of an unsupported command, when their layout
/// is known; the code word is already consumed.
pub(crate) fn read_unsupported(r: &mut Reader<'_>, code: u32) -> ReadResult<Unsupported> {
    let Some((name, layout)) = unsupported_layout(code) else {
        return Ok(Unsupported {
            code,
            name: None,
            stream_in_sync: false,
        });
    };
    let stream_in_sync = match layout {
        UnsupportedLayout::Empty => true,
        UnsupportedLayout::Int64 => {
            r.i64("unsupported.int64")?;
            true
        }
        UnsupportedLayout::Strings(n) => {
            for _ in 0..n {
                r.skip_bytes("unsupported.string")?;
            }
            true
        }
        UnsupportedLayout::ConsistencyString => {
            crate::request::read_consistency(r)?;
            r.skip_bytes("user_hook.name")?;
            true
        }
        UnsupportedLayout::OptionStringInt32 => {
            if r.bool("get_fringe.boundary")? {
                r.skip_bytes("get_fringe.boundary")?;
            }
            r.i32("get_fringe.direction")?;
            true
        }
        UnsupportedLayout::Interval => {
            read_interval(r)?;
            true
        }
        UnsupportedLayout::IntervalString => {
            read_interval(r)?;
            r.skip_bytes("migrate_range.sequence")?;
            true
        }
        UnsupportedLayout::Unknown => false,
    };
    Ok(Unsupported {
        code,
        name: Some(name),
        stream_in_sync,
    })
}

/// An interval (`Interval.input_interval`): four option strings.
fn read_interval(r: &mut Reader<'_>) -> ReadResult<()> {
    for field in [
        "interval.public_begin",
        "interval.public_end",
        "interval.private_begin",
        "interval.private_end",
    ] {
        r.option_bytes(field)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes of the spec's command table, verbatim.
    #[test]
    fn codes_match_the_spec_table() {
        let expected: [(Command, u32); 32] = [
            (Command::Ping, 0x01),
            (Command::WhoMaster, 0x02),
            (Command::Exists, 0x07),
            (Command::Get, 0x08),
            (Command::Set, 0x09),
            (Command::Delete, 0x0a),
            (Command::Range, 0x0b),
            (Command::PrefixKeys, 0x0c),
            (Command::TestAndSet, 0x0d),
            (Command::RangeEntries, 0x0f),
            (Command::Sequence, 0x10),
            (Command::MultiGet, 0x11),
            (Command::ExpectProgressPossible, 0x12),
            (Command::Statistics, 0x13),
            (Command::CollapseTlogs, 0x14),
            (Command::UserFunction, 0x15),
            (Command::Assert, 0x16),
            (Command::GetKeyCount, 0x1a),
            (Command::Confirm, 0x1c),
            (Command::GetNurseryCfg, 0x20),
            (Command::RevRangeEntries, 0x23),
            (Command::SyncedSequence, 0x24),
            (Command::DeletePrefix, 0x27),
            (Command::Version, 0x28),
            (Command::AssertExists, 0x29),
            (Command::DropMaster, 0x30),
            (Command::MultiGetOption, 0x31),
            (Command::CurrentState, 0x32),
            (Command::Replace, 0x33),
            (Command::Nop, 0x41),
            (Command::GetTxid, 0x43),
            (Command::Inspect, 0x70),
        ];
        for (command, code) in expected {
            assert_eq!(command.code(), code, "{command:?}");
            assert_eq!(Command::from_code(code), Some(command));
            assert_eq!(command.word(), 0xb1ff_0000 | code);
        }
    }

    /// Spec: admin and nursery commands (0x0e, 0x17–0x1f, 0x21, 0x22, 0x25,
    /// 0x26, 0x40, 0x42, 0x44–0x46) are answered with E_NOT_SUPPORTED.
    #[test]
    fn admin_and_nursery_codes_are_known_and_unsupported() {
        let mut codes = vec![0x0e, 0x21, 0x22, 0x25, 0x26, 0x40, 0x42, 0x44, 0x45, 0x46];
        codes.extend(0x17..=0x1f);
        for code in codes {
            if Command::from_code(code).is_some() {
                continue; // 0x1a get_key_count and 0x1c confirm are ours
            }
            let (name, _) = unsupported_layout(code).unwrap_or_else(|| panic!("{code:#x}"));
            let u = Unsupported {
                code,
                name: Some(name),
                stream_in_sync: true,
            };
            assert_eq!(u.error_response().result_code(), ResultCode::NotSupported);
        }
    }
}
