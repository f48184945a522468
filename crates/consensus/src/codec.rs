//! Wire encoding of [`Message`]: versioned, compact, little-endian, for the
//! node to send over TCP (framing, e.g. a length prefix, is the caller's).
//!
//! Layout (version 2): `version u8 = 2`, `kind u8`, `from u64`, `to u64`,
//! `term u64`, then the body:
//!
//! | kind | body |
//! |---|---|
//! | 1 pre_vote | last_index u64, last_term u64 |
//! | 2 pre_vote_response | granted u8 |
//! | 3 vote | last_index u64, last_term u64, transfer u8 |
//! | 4 vote_response | granted u8 |
//! | 5 append | prev_index u64, prev_term u64, commit u64, sent_at u64, slave_incarnation u64, count u32, count × (index u64, term u64, len u32, payload) |
//! | 6 append_response | sent_at u64, incarnation u64, recovering u8, then 0 u8 + match_index u64, or 1 u8 + rejected_prev_index u64 + hint_index u64 + hint_term u64 |
//! | 7 heartbeat | commit u64, sent_at u64, slave_incarnation u64 |
//! | 8 heartbeat_response | sent_at u64, commit u64, incarnation u64, recovering u8 |
//! | 9 timeout_now | (nothing) |
//! | 10 recovery_query | asked_at u64 |
//! | 11 recovery_reply | asked_at u64, standing u8 (0 trusted, 1 recovering, 2 unknown), last_index u64 |
//!
//! The decoder never panics, rejects trailing bytes, booleans other than 0/1,
//! and counts or lengths beyond [`DecodeLimits`] before allocating anything
//! for them; it allocates at most about the input's length.

use crate::message::{AppendResult, Body, Message};
use crate::types::{Entry, NodeId, Standing, Time};
use bytes::Bytes;

/// The encoding version this code writes and reads.
pub const WIRE_VERSION: u8 = 2;

/// Bounds the decoder enforces on hostile input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest encoded message accepted.
    pub max_message_bytes: usize,
    /// Most entries in one `append`.
    pub max_entries: u32,
    /// Largest payload of one entry.
    pub max_payload_bytes: u32,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_message_bytes: 64 << 20,
            max_entries: 100_000,
            max_payload_bytes: 16 << 20,
        }
    }
}

/// Why bytes are not a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message of {len} bytes exceeds the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
    #[error("unsupported wire version {version} (this node speaks {WIRE_VERSION})")]
    UnsupportedVersion { version: u8 },
    #[error("unknown message kind {kind}")]
    UnknownKind { kind: u8 },
    #[error("truncated message: needed {needed} more bytes at offset {offset} reading {field}")]
    Truncated {
        field: &'static str,
        offset: usize,
        needed: usize,
    },
    #[error("invalid {field} value {value} at offset {offset}")]
    InvalidValue {
        field: &'static str,
        offset: usize,
        value: u64,
    },
    #[error("{field} = {value} exceeds the limit of {limit}")]
    LimitExceeded {
        field: &'static str,
        value: u64,
        limit: u64,
    },
    #[error("{count} trailing bytes after the message")]
    TrailingBytes { count: usize },
}

/// Appends the encoding of `msg` to `out`.
pub fn encode_into(msg: &Message, out: &mut Vec<u8>) {
    out.push(WIRE_VERSION);
    out.push(kind_of(&msg.body));
    put_u64(out, msg.from.0);
    put_u64(out, msg.to.0);
    put_u64(out, msg.term);
    match &msg.body {
        Body::PreVote {
            last_index,
            last_term,
        } => {
            put_u64(out, *last_index);
            put_u64(out, *last_term);
        }
        Body::PreVoteResponse { granted } | Body::VoteResponse { granted } => {
            out.push(u8::from(*granted))
        }
        Body::Vote {
            last_index,
            last_term,
            transfer,
        } => {
            put_u64(out, *last_index);
            put_u64(out, *last_term);
            out.push(u8::from(*transfer));
        }
        Body::Append {
            prev_index,
            prev_term,
            commit,
            sent_at,
            slave_incarnation,
            entries,
        } => {
            put_u64(out, *prev_index);
            put_u64(out, *prev_term);
            put_u64(out, *commit);
            put_u64(out, sent_at.0);
            put_u64(out, *slave_incarnation);
            // Entry counts and payload lengths are bounded by the config's
            // limits (max_entry_bytes < 4 GiB); saturating keeps encode total.
            put_u32(out, u32::try_from(entries.len()).unwrap_or(u32::MAX));
            for e in entries {
                put_u64(out, e.index);
                put_u64(out, e.term);
                put_u32(out, u32::try_from(e.payload.len()).unwrap_or(u32::MAX));
                out.extend_from_slice(&e.payload);
            }
        }
        Body::AppendResponse {
            sent_at,
            result,
            incarnation,
            recovering,
        } => {
            put_u64(out, sent_at.0);
            put_u64(out, *incarnation);
            out.push(u8::from(*recovering));
            match result {
                AppendResult::Accepted { match_index } => {
                    out.push(0);
                    put_u64(out, *match_index);
                }
                AppendResult::Rejected {
                    rejected_prev_index,
                    hint_index,
                    hint_term,
                } => {
                    out.push(1);
                    put_u64(out, *rejected_prev_index);
                    put_u64(out, *hint_index);
                    put_u64(out, *hint_term);
                }
            }
        }
        Body::Heartbeat {
            commit,
            sent_at,
            slave_incarnation,
        } => {
            put_u64(out, *commit);
            put_u64(out, sent_at.0);
            put_u64(out, *slave_incarnation);
        }
        Body::HeartbeatResponse {
            sent_at,
            commit,
            incarnation,
            recovering,
        } => {
            put_u64(out, sent_at.0);
            put_u64(out, *commit);
            put_u64(out, *incarnation);
            out.push(u8::from(*recovering));
        }
        Body::TimeoutNow => {}
        Body::RecoveryQuery { asked_at } => put_u64(out, asked_at.0),
        Body::RecoveryReply {
            asked_at,
            standing,
            last_index,
        } => {
            put_u64(out, asked_at.0);
            out.push(standing.code());
            put_u64(out, *last_index);
        }
    }
}

/// The encoding of `msg`.
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(msg, &mut out);
    out
}

fn kind_of(body: &Body) -> u8 {
    match body {
        Body::PreVote { .. } => 1,
        Body::PreVoteResponse { .. } => 2,
        Body::Vote { .. } => 3,
        Body::VoteResponse { .. } => 4,
        Body::Append { .. } => 5,
        Body::AppendResponse { .. } => 6,
        Body::Heartbeat { .. } => 7,
        Body::HeartbeatResponse { .. } => 8,
        Body::TimeoutNow => 9,
        Body::RecoveryQuery { .. } => 10,
        Body::RecoveryReply { .. } => 11,
    }
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

struct Reader<'a> {
    buf: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let rest = &self.buf[self.offset..];
        if rest.len() < n {
            return Err(DecodeError::Truncated {
                field,
                offset: self.offset,
                needed: n - rest.len(),
            });
        }
        let (head, _) = rest.split_at(n);
        self.offset += n;
        Ok(head)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take(1, field)?[0])
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, DecodeError> {
        let mut b = [0u8; 4];
        b.copy_from_slice(self.take(4, field)?);
        Ok(u32::from_le_bytes(b))
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8, field)?);
        Ok(u64::from_le_bytes(b))
    }

    fn bool(&mut self, field: &'static str) -> Result<bool, DecodeError> {
        let offset = self.offset;
        match self.u8(field)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DecodeError::InvalidValue {
                field,
                offset,
                value: u64::from(v),
            }),
        }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.offset
    }
}

/// Decodes one message that fills `buf` exactly.
pub fn decode(buf: &[u8], limits: &DecodeLimits) -> Result<Message, DecodeError> {
    if buf.len() > limits.max_message_bytes {
        return Err(DecodeError::TooLarge {
            len: buf.len(),
            limit: limits.max_message_bytes,
        });
    }
    let mut r = Reader { buf, offset: 0 };
    let version = r.u8("version")?;
    if version != WIRE_VERSION {
        return Err(DecodeError::UnsupportedVersion { version });
    }
    let kind = r.u8("kind")?;
    let from = NodeId(r.u64("from")?);
    let to = NodeId(r.u64("to")?);
    let term = r.u64("term")?;
    let body = match kind {
        1 => Body::PreVote {
            last_index: r.u64("last_index")?,
            last_term: r.u64("last_term")?,
        },
        2 => Body::PreVoteResponse {
            granted: r.bool("granted")?,
        },
        3 => Body::Vote {
            last_index: r.u64("last_index")?,
            last_term: r.u64("last_term")?,
            transfer: r.bool("transfer")?,
        },
        4 => Body::VoteResponse {
            granted: r.bool("granted")?,
        },
        5 => decode_append(&mut r, limits)?,
        6 => {
            let sent_at = Time(r.u64("sent_at")?);
            let incarnation = r.u64("incarnation")?;
            let recovering = r.bool("recovering")?;
            let offset = r.offset;
            let result = match r.u8("append_result")? {
                0 => AppendResult::Accepted {
                    match_index: r.u64("match_index")?,
                },
                1 => AppendResult::Rejected {
                    rejected_prev_index: r.u64("rejected_prev_index")?,
                    hint_index: r.u64("hint_index")?,
                    hint_term: r.u64("hint_term")?,
                },
                v => {
                    return Err(DecodeError::InvalidValue {
                        field: "append_result",
                        offset,
                        value: u64::from(v),
                    })
                }
            };
            Body::AppendResponse {
                sent_at,
                result,
                incarnation,
                recovering,
            }
        }
        7 => Body::Heartbeat {
            commit: r.u64("commit")?,
            sent_at: Time(r.u64("sent_at")?),
            slave_incarnation: r.u64("slave_incarnation")?,
        },
        8 => Body::HeartbeatResponse {
            sent_at: Time(r.u64("sent_at")?),
            commit: r.u64("commit")?,
            incarnation: r.u64("incarnation")?,
            recovering: r.bool("recovering")?,
        },
        9 => Body::TimeoutNow,
        10 => Body::RecoveryQuery {
            asked_at: Time(r.u64("asked_at")?),
        },
        11 => {
            let asked_at = Time(r.u64("asked_at")?);
            let offset = r.offset;
            let code = r.u8("standing")?;
            let standing = Standing::from_code(code).ok_or(DecodeError::InvalidValue {
                field: "standing",
                offset,
                value: u64::from(code),
            })?;
            Body::RecoveryReply {
                asked_at,
                standing,
                last_index: r.u64("last_index")?,
            }
        }
        kind => return Err(DecodeError::UnknownKind { kind }),
    };
    if r.remaining() != 0 {
        return Err(DecodeError::TrailingBytes {
            count: r.remaining(),
        });
    }
    Ok(Message {
        from,
        to,
        term,
        body,
    })
}

/// Smallest encoding of one entry (empty payload).
const MIN_ENTRY_BYTES: usize = 8 + 8 + 4;

fn decode_append(r: &mut Reader<'_>, limits: &DecodeLimits) -> Result<Body, DecodeError> {
    let prev_index = r.u64("prev_index")?;
    let prev_term = r.u64("prev_term")?;
    let commit = r.u64("commit")?;
    let sent_at = Time(r.u64("sent_at")?);
    let slave_incarnation = r.u64("slave_incarnation")?;
    let count = r.u32("entry_count")?;
    if count > limits.max_entries {
        return Err(DecodeError::LimitExceeded {
            field: "entry_count",
            value: u64::from(count),
            limit: u64::from(limits.max_entries),
        });
    }
    let count = count as usize;
    // Each entry takes at least MIN_ENTRY_BYTES of input: a count the input
    // cannot hold is refused before anything is allocated for it.
    if count > r.remaining() / MIN_ENTRY_BYTES {
        return Err(DecodeError::Truncated {
            field: "entries",
            offset: r.offset,
            needed: count
                .saturating_mul(MIN_ENTRY_BYTES)
                .saturating_sub(r.remaining()),
        });
    }
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        let index = r.u64("entry_index")?;
        let term = r.u64("entry_term")?;
        let len = r.u32("payload_len")?;
        if len > limits.max_payload_bytes {
            return Err(DecodeError::LimitExceeded {
                field: "payload_len",
                value: u64::from(len),
                limit: u64::from(limits.max_payload_bytes),
            });
        }
        let payload = Bytes::copy_from_slice(r.take(len as usize, "payload")?);
        entries.push(Entry {
            index,
            term,
            payload,
        });
    }
    Ok(Body::Append {
        prev_index,
        prev_term,
        commit,
        sent_at,
        slave_incarnation,
        entries,
    })
}
