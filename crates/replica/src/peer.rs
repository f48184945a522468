//! What replicas send each other: consensus messages, and the parts of a
//! store snapshot transfer ([`SnapshotMessage`], see [`crate::snapshot`]).
//!
//! # Wire layout (little-endian)
//!
//! One message fills one frame of the caller's framing (the node's
//! messaging connection, the simulator's network):
//!
//! ```text
//! tag u8, then by tag:
//!   0 consensus  the consensus codec's bytes (consensus::encode)
//!   1 chunk      from u64, to u64, transfer u64, index u64, term u64,
//!                seq u64, pairs_sent u64, pairs_total u64, crc u32,
//!                len u32, len bytes (store snapshot stream bytes)
//!   2 end        from u64, to u64, transfer u64, seq u64,
//!                total_bytes u64, total_crc u32
//!   3 ack        from u64, to u64, transfer u64, next u64, status u8
//!                (0 receiving, 1 installed, 2 refused, 3 not needed,
//!                4 unknown transfer), then
//!                for refused len u32 and a UTF-8 reason, for not needed
//!                the receiver's commit index u64
//! ```
//!
//! `crc` is the CRC32C of the chunk's bytes, `total_crc` that of all chunks'
//! bytes in order. The decoder never panics, rejects trailing bytes, and
//! checks every length against the input and its limits before allocating.

use bytes::Bytes;
use consensus::{DecodeError, DecodeLimits, Message, NodeId};

const TAG_CONSENSUS: u8 = 0;
const TAG_CHUNK: u8 = 1;
const TAG_END: u8 = 2;
const TAG_ACK: u8 = 3;
/// Longest reason of a refusal carried in an ack.
pub const REFUSAL_REASON_MAX: usize = 1024;

/// A message between two replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerMessage {
    Consensus(Message),
    Snapshot(SnapshotMessage),
}

/// The parts of one snapshot transfer (`transfer` names it; the sender
/// picks it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotMessage {
    /// Part `seq` (from 0) of the store snapshot of the log entry `(index,
    /// term)`. `pairs_sent` counts the pairs framed so far (this chunk
    /// included, about), of `pairs_total`: for progress only.
    Chunk {
        from: NodeId,
        to: NodeId,
        transfer: u64,
        index: u64,
        term: u64,
        seq: u64,
        pairs_sent: u64,
        pairs_total: u64,
        crc: u32,
        bytes: Bytes,
    },
    /// The stream ended after `seq` chunks: `total_bytes` bytes with CRC32C
    /// `total_crc`.
    End {
        from: NodeId,
        to: NodeId,
        transfer: u64,
        seq: u64,
        total_bytes: u64,
        total_crc: u32,
    },
    /// From the receiver: every part before `next` arrived.
    Ack {
        from: NodeId,
        to: NodeId,
        transfer: u64,
        next: u64,
        status: AckStatus,
    },
}

/// Where the receiver stands with a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckStatus {
    Receiving,
    /// The snapshot is installed; the transfer is over.
    Installed,
    /// The receiver dropped the transfer (and why); the sender gives up.
    Refused(String),
    /// The receiver already holds the committed state up to this index (at
    /// or past the snapshot's): the sender replicates from there.
    NotNeeded(u64),
    /// A part other than the first arrived of a transfer the receiver does
    /// not know: it restarted mid-transfer (the sender starts over if the
    /// receiver had acknowledged parts), or the first part is late.
    UnknownTransfer,
}

impl SnapshotMessage {
    pub fn from(&self) -> NodeId {
        match self {
            SnapshotMessage::Chunk { from, .. }
            | SnapshotMessage::End { from, .. }
            | SnapshotMessage::Ack { from, .. } => *from,
        }
    }

    pub fn to(&self) -> NodeId {
        match self {
            SnapshotMessage::Chunk { to, .. }
            | SnapshotMessage::End { to, .. }
            | SnapshotMessage::Ack { to, .. } => *to,
        }
    }
}

impl PeerMessage {
    pub fn from(&self) -> NodeId {
        match self {
            PeerMessage::Consensus(m) => m.from,
            PeerMessage::Snapshot(s) => s.from(),
        }
    }

    pub fn to(&self) -> NodeId {
        match self {
            PeerMessage::Consensus(m) => m.to,
            PeerMessage::Snapshot(s) => s.to(),
        }
    }
}

fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// The encoding of a consensus message as a peer message.
pub fn encode_consensus(msg: &Message) -> Vec<u8> {
    let mut out = vec![TAG_CONSENSUS];
    consensus::encode_into(msg, &mut out);
    out
}

/// The encoding of a snapshot transfer's message.
pub fn encode_snapshot(msg: &SnapshotMessage) -> Vec<u8> {
    let mut out = Vec::new();
    match msg {
        SnapshotMessage::Chunk {
            from,
            to,
            transfer,
            index,
            term,
            seq,
            pairs_sent,
            pairs_total,
            crc,
            bytes,
        } => {
            out.reserve(77 + bytes.len());
            out.push(TAG_CHUNK);
            for v in [
                from.0,
                to.0,
                *transfer,
                *index,
                *term,
                *seq,
                *pairs_sent,
                *pairs_total,
            ] {
                put_u64(&mut out, v);
            }
            put_u32(&mut out, *crc);
            // Chunks are built by `snapshot` from frames far below 4 GiB.
            assert!(u32::try_from(bytes.len()).is_ok(), "chunk too large");
            put_u32(&mut out, bytes.len() as u32);
            out.extend_from_slice(bytes);
        }
        SnapshotMessage::End {
            from,
            to,
            transfer,
            seq,
            total_bytes,
            total_crc,
        } => {
            out.push(TAG_END);
            for v in [from.0, to.0, *transfer, *seq, *total_bytes] {
                put_u64(&mut out, v);
            }
            put_u32(&mut out, *total_crc);
        }
        SnapshotMessage::Ack {
            from,
            to,
            transfer,
            next,
            status,
        } => {
            out.push(TAG_ACK);
            for v in [from.0, to.0, *transfer, *next] {
                put_u64(&mut out, v);
            }
            match status {
                AckStatus::Receiving => out.push(0),
                AckStatus::Installed => out.push(1),
                AckStatus::NotNeeded(commit) => {
                    out.push(3);
                    put_u64(&mut out, *commit);
                }
                AckStatus::UnknownTransfer => out.push(4),
                AckStatus::Refused(reason) => {
                    out.push(2);
                    let mut end = reason.len().min(REFUSAL_REASON_MAX);
                    while !reason.is_char_boundary(end) {
                        end -= 1;
                    }
                    put_u32(&mut out, end as u32);
                    out.extend_from_slice(&reason.as_bytes()[..end]);
                }
            }
        }
    }
    out
}

/// The encoding of any peer message.
pub fn encode(msg: &PeerMessage) -> Vec<u8> {
    match msg {
        PeerMessage::Consensus(m) => encode_consensus(m),
        PeerMessage::Snapshot(s) => encode_snapshot(s),
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() - self.offset < n {
            return Err(DecodeError::Truncated {
                field,
                offset: self.offset,
                needed: n - (self.buf.len() - self.offset),
            });
        }
        let s = &self.buf[self.offset..self.offset + n];
        self.offset += n;
        Ok(s)
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

    fn finish(self) -> Result<(), DecodeError> {
        match self.buf.len() - self.offset {
            0 => Ok(()),
            count => Err(DecodeError::TrailingBytes { count }),
        }
    }
}

/// Decodes one peer message that fills `buf` exactly.
pub fn decode(buf: &[u8], limits: &DecodeLimits) -> Result<PeerMessage, DecodeError> {
    if buf.len() > limits.max_message_bytes {
        return Err(DecodeError::TooLarge {
            len: buf.len(),
            limit: limits.max_message_bytes,
        });
    }
    let Some((&tag, rest)) = buf.split_first() else {
        return Err(DecodeError::Truncated {
            field: "tag",
            offset: 0,
            needed: 1,
        });
    };
    if tag == TAG_CONSENSUS {
        return consensus::decode(rest, limits).map(PeerMessage::Consensus);
    }
    let mut r = Reader { buf, offset: 1 };
    let msg = match tag {
        TAG_CHUNK => {
            let from = NodeId(r.u64("from")?);
            let to = NodeId(r.u64("to")?);
            let transfer = r.u64("transfer")?;
            let index = r.u64("index")?;
            let term = r.u64("term")?;
            let seq = r.u64("seq")?;
            let pairs_sent = r.u64("pairs_sent")?;
            let pairs_total = r.u64("pairs_total")?;
            let crc = r.u32("crc")?;
            let len = r.u32("len")? as usize;
            let bytes = Bytes::copy_from_slice(r.take(len, "chunk bytes")?);
            SnapshotMessage::Chunk {
                from,
                to,
                transfer,
                index,
                term,
                seq,
                pairs_sent,
                pairs_total,
                crc,
                bytes,
            }
        }
        TAG_END => SnapshotMessage::End {
            from: NodeId(r.u64("from")?),
            to: NodeId(r.u64("to")?),
            transfer: r.u64("transfer")?,
            seq: r.u64("seq")?,
            total_bytes: r.u64("total_bytes")?,
            total_crc: r.u32("total_crc")?,
        },
        TAG_ACK => {
            let from = NodeId(r.u64("from")?);
            let to = NodeId(r.u64("to")?);
            let transfer = r.u64("transfer")?;
            let next = r.u64("next")?;
            let status = match r.u8("status")? {
                0 => AckStatus::Receiving,
                1 => AckStatus::Installed,
                3 => AckStatus::NotNeeded(r.u64("commit")?),
                4 => AckStatus::UnknownTransfer,
                2 => {
                    let offset = r.offset;
                    let len = r.u32("reason length")? as usize;
                    if len > REFUSAL_REASON_MAX {
                        return Err(DecodeError::LimitExceeded {
                            field: "reason length",
                            value: len as u64,
                            limit: REFUSAL_REASON_MAX as u64,
                        });
                    }
                    let reason = std::str::from_utf8(r.take(len, "reason")?).map_err(|_| {
                        DecodeError::InvalidValue {
                            field: "reason (not UTF-8)",
                            offset,
                            value: len as u64,
                        }
                    })?;
                    AckStatus::Refused(reason.to_string())
                }
                other => {
                    return Err(DecodeError::InvalidValue {
                        field: "status",
                        offset: r.offset - 1,
                        value: u64::from(other),
                    })
                }
            };
            SnapshotMessage::Ack {
                from,
                to,
                transfer,
                next,
                status,
            }
        }
        kind => return Err(DecodeError::UnknownKind { kind }),
    };
    r.finish()?;
    Ok(PeerMessage::Snapshot(msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<SnapshotMessage> {
        vec![
            SnapshotMessage::Chunk {
                from: NodeId(1),
                to: NodeId(2),
                transfer: 7,
                index: 100,
                term: 3,
                seq: 0,
                pairs_sent: 10,
                pairs_total: 20,
                crc: 0xdead_beef,
                bytes: Bytes::from_static(b"frames"),
            },
            SnapshotMessage::End {
                from: NodeId(1),
                to: NodeId(2),
                transfer: 7,
                seq: 1,
                total_bytes: 6,
                total_crc: 5,
            },
            SnapshotMessage::Ack {
                from: NodeId(2),
                to: NodeId(1),
                transfer: 7,
                next: 1,
                status: AckStatus::Receiving,
            },
            SnapshotMessage::Ack {
                from: NodeId(2),
                to: NodeId(1),
                transfer: 7,
                next: 2,
                status: AckStatus::Installed,
            },
            SnapshotMessage::Ack {
                from: NodeId(2),
                to: NodeId(1),
                transfer: 7,
                next: 0,
                status: AckStatus::Refused("no such transfer".into()),
            },
            SnapshotMessage::Ack {
                from: NodeId(2),
                to: NodeId(1),
                transfer: 7,
                next: 0,
                status: AckStatus::NotNeeded(42),
            },
            SnapshotMessage::Ack {
                from: NodeId(2),
                to: NodeId(1),
                transfer: 7,
                next: 0,
                status: AckStatus::UnknownTransfer,
            },
        ]
    }

    #[test]
    fn snapshot_messages_round_trip() {
        for m in samples() {
            let bytes = encode_snapshot(&m);
            let back = decode(&bytes, &DecodeLimits::default()).expect("decodes");
            assert_eq!(back, PeerMessage::Snapshot(m));
        }
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        for m in samples() {
            let bytes = encode_snapshot(&m);
            for cut in 0..bytes.len() {
                assert!(decode(&bytes[..cut], &DecodeLimits::default()).is_err());
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(matches!(
                decode(&longer, &DecodeLimits::default()),
                Err(DecodeError::TrailingBytes { count: 1 })
            ));
        }
    }

    #[test]
    fn a_chunk_claiming_more_bytes_than_sent_is_refused_without_allocating() {
        let mut bytes = encode_snapshot(&samples()[0]);
        let len_at = bytes.len() - 6 - 4;
        bytes[len_at..len_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode(&bytes, &DecodeLimits::default()),
            Err(DecodeError::Truncated { .. })
        ));
    }

    /// Hostile input: mutated encodings and random bytes decode to a
    /// message or an error, never a panic, and what decodes encodes back
    /// to the same bytes.
    #[test]
    fn mutated_and_random_bytes_never_panic() {
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let limits = DecodeLimits::default();
        let valid: Vec<Vec<u8>> = samples().iter().map(encode_snapshot).collect();
        for round in 0..50_000 {
            let mut bytes = if round % 2 == 0 {
                valid[(next() % valid.len() as u64) as usize].clone()
            } else {
                (0..next() % 96).map(|_| next() as u8).collect()
            };
            for _ in 0..(next() % 4) {
                if bytes.is_empty() {
                    break;
                }
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] = next() as u8;
            }
            if let Ok(PeerMessage::Snapshot(m)) = decode(&bytes, &limits) {
                assert_eq!(encode_snapshot(&m), bytes);
            }
        }
    }

    #[test]
    fn unknown_tags_and_statuses_are_refused() {
        assert!(matches!(
            decode(&[9], &DecodeLimits::default()),
            Err(DecodeError::UnknownKind { kind: 9 })
        ));
        let mut ack = encode_snapshot(&samples()[2]);
        let last = ack.len() - 1;
        ack[last] = 7;
        assert!(matches!(
            decode(&ack, &DecodeLimits::default()),
            Err(DecodeError::InvalidValue {
                field: "status",
                ..
            })
        ));
    }
}
