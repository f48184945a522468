//! Snapshots: the whole store (applied index and every pair) as a stream of
//! framed, checksummed chunks, for a node that must catch up past collapsed
//! tlogs.
//!
//! # Format (version 1; all integers little-endian)
//!
//! The stream is a sequence of frames:
//!
//! ```text
//! frame   = payload_len: u32, crc: u32, payload: payload_len bytes
//! crc     = CRC32C of the 4 bytes of payload_len followed by the payload
//! payload = kind: u8, then by kind:
//!   1 header   magic "ARKNSNAP" (8 bytes), version: u32 = 1, applied_index: u64
//!   2 entries  count: u32, then count times
//!                (key_len: u32, key, value_len: u32, value)
//!   3 trailer  entry_count: u64 (pairs in all entries frames), applied_index: u64
//! ```
//!
//! A stream is one header, any number of entries frames (pairs in strictly
//! ascending key order across the whole stream), one trailer, then its end.
//! An exporter closes an entries frame once it holds
//! [`SNAPSHOT_CHUNK_TARGET_BYTES`]; no frame may exceed
//! [`SNAPSHOT_FRAME_MAX_BYTES`], which bounds what an importer allocates.
//!
//! An importer checks everything: checksums, lengths against the frame and
//! its limit, frame order, key order, the trailer's count and index; any
//! violation is [`StoreError::SnapshotCorrupt`] with the byte offset of the
//! frame, and the import changes nothing.

use crate::error::StoreError;
use crate::read::ReadView;
use crate::KeyValue;
use redb::{AccessGuard, Range};

/// An exporter closes an entries frame once its payload reaches this size.
pub const SNAPSHOT_CHUNK_TARGET_BYTES: usize = 1 << 20;
/// No frame payload may be larger; a pair that does not fit cannot be
/// exported. (Arakoon's values are at most 8 MiB.)
pub const SNAPSHOT_FRAME_MAX_BYTES: usize = 64 << 20;

const MAGIC: &[u8; 8] = b"ARKNSNAP";
const FORMAT_VERSION: u32 = 1;
const FRAME_HEADER_BYTES: usize = 8;
const KIND_HEADER: u8 = 1;
const KIND_ENTRIES: u8 = 2;
const KIND_TRAILER: u8 = 3;
/// Bytes of an entries payload before its pairs: kind and count.
const ENTRIES_PREAMBLE_BYTES: usize = 5;

fn frame(payload: &[u8]) -> Vec<u8> {
    // Exporters build payloads up to SNAPSHOT_FRAME_MAX_BYTES, which fits in a u32.
    assert!(payload.len() <= SNAPSHOT_FRAME_MAX_BYTES);
    let len_bytes = (payload.len() as u32).to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), payload);
    let mut out = Vec::with_capacity(FRAME_HEADER_BYTES + payload.len());
    out.extend_from_slice(&len_bytes);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn header_frame(applied_index: u64) -> Vec<u8> {
    let mut payload = vec![KIND_HEADER];
    payload.extend_from_slice(MAGIC);
    payload.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    payload.extend_from_slice(&applied_index.to_le_bytes());
    frame(&payload)
}

fn trailer_frame(entry_count: u64, applied_index: u64) -> Vec<u8> {
    let mut payload = vec![KIND_TRAILER];
    payload.extend_from_slice(&entry_count.to_le_bytes());
    payload.extend_from_slice(&applied_index.to_le_bytes());
    frame(&payload)
}

/// The bytes one pair takes in an entries payload.
fn pair_bytes(key: &[u8], value: &[u8]) -> usize {
    8 + key.len() + value.len()
}

enum ExportState {
    Header,
    Entries,
    Done,
}

/// A snapshot being exported: an iterator of frames (each a `Vec<u8>` to be
/// sent or written as is), read from one consistent view of the store, while
/// applies go on. Holds at most one frame in memory.
pub struct SnapshotExport {
    view: ReadView,
    pairs: Range<'static, &'static [u8], &'static [u8]>,
    /// A pair read but not yet framed (it did not fit the previous frame).
    carried: Option<(Vec<u8>, Vec<u8>)>,
    state: ExportState,
    entry_count: u64,
    chunk_target_bytes: usize,
}

impl std::fmt::Debug for SnapshotExport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotExport")
            .field("view", &self.view)
            .field("entry_count", &self.entry_count)
            .field("chunk_target_bytes", &self.chunk_target_bytes)
            .finish()
    }
}

impl SnapshotExport {
    pub(crate) fn new(view: ReadView, chunk_target_bytes: usize) -> Result<Self, StoreError> {
        assert!(chunk_target_bytes > 0);
        let pairs = view
            .user_table()
            .range::<&[u8]>(..)
            .map_err(|e| crate::redb_error(view.path(), e.into()))?;
        Ok(Self {
            view,
            pairs,
            carried: None,
            state: ExportState::Header,
            entry_count: 0,
            chunk_target_bytes: chunk_target_bytes.min(SNAPSHOT_FRAME_MAX_BYTES),
        })
    }

    /// The applied index of the exported state.
    pub fn applied_index(&self) -> u64 {
        self.view.applied_index()
    }

    /// Pairs framed so far.
    pub fn pairs_exported(&self) -> u64 {
        self.entry_count
    }

    /// Pairs in the exported state.
    pub fn pair_count(&self) -> Result<u64, StoreError> {
        self.view.key_count()
    }

    /// Writes the whole stream to `out`; returns the bytes written.
    pub fn write_to(self, out: &mut dyn std::io::Write) -> Result<u64, StoreError> {
        let mut written_bytes = 0u64;
        for chunk in self {
            let chunk = chunk?;
            out.write_all(&chunk)
                .map_err(|source| StoreError::SnapshotIo {
                    offset: written_bytes,
                    source,
                })?;
            written_bytes += chunk.len() as u64;
        }
        out.flush().map_err(|source| StoreError::SnapshotIo {
            offset: written_bytes,
            source,
        })?;
        Ok(written_bytes)
    }

    fn next_pair(&mut self) -> Result<Option<KeyValue>, StoreError> {
        if let Some(pair) = self.carried.take() {
            return Ok(Some(pair));
        }
        match self.pairs.next() {
            None => Ok(None),
            Some(Err(e)) => Err(crate::redb_error(self.view.path(), e.into())),
            Some(Ok((key, value))) => {
                let (key, value): (AccessGuard<&[u8]>, AccessGuard<&[u8]>) = (key, value);
                Ok(Some((key.value().to_vec(), value.value().to_vec())))
            }
        }
    }

    /// The next entries frame, or `None` when the pairs are exhausted.
    fn entries_frame(&mut self) -> Result<Option<Vec<u8>>, StoreError> {
        let mut payload = vec![KIND_ENTRIES, 0, 0, 0, 0];
        let mut count: u32 = 0;
        while payload.len() < self.chunk_target_bytes {
            let Some((key, value)) = self.next_pair()? else {
                break;
            };
            let bytes = pair_bytes(&key, &value);
            if ENTRIES_PREAMBLE_BYTES + bytes > SNAPSHOT_FRAME_MAX_BYTES {
                return Err(StoreError::SnapshotPairTooLarge {
                    key,
                    value_bytes: value.len(),
                    frame_max_bytes: SNAPSHOT_FRAME_MAX_BYTES,
                });
            }
            if count > 0 && payload.len() + bytes > SNAPSHOT_FRAME_MAX_BYTES {
                self.carried = Some((key, value));
                break;
            }
            // Both lengths are below SNAPSHOT_FRAME_MAX_BYTES (checked above).
            payload.extend_from_slice(&(key.len() as u32).to_le_bytes());
            payload.extend_from_slice(&key);
            payload.extend_from_slice(&(value.len() as u32).to_le_bytes());
            payload.extend_from_slice(&value);
            count += 1;
        }
        if count == 0 {
            return Ok(None);
        }
        payload[1..5].copy_from_slice(&count.to_le_bytes());
        self.entry_count += u64::from(count);
        Ok(Some(frame(&payload)))
    }
}

impl Iterator for SnapshotExport {
    type Item = Result<Vec<u8>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.state {
            ExportState::Header => {
                self.state = ExportState::Entries;
                Some(Ok(header_frame(self.view.applied_index())))
            }
            ExportState::Entries => match self.entries_frame() {
                Ok(Some(frame)) => Some(Ok(frame)),
                Ok(None) => {
                    self.state = ExportState::Done;
                    Some(Ok(trailer_frame(
                        self.entry_count,
                        self.view.applied_index(),
                    )))
                }
                Err(e) => {
                    self.state = ExportState::Done;
                    Some(Err(e))
                }
            },
            ExportState::Done => None,
        }
    }
}

/// One decoded frame.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    Header {
        applied_index: u64,
    },
    Entries(Vec<(Vec<u8>, Vec<u8>)>),
    Trailer {
        entry_count: u64,
        applied_index: u64,
    },
}

/// Reads fields from a payload, every read bounded by what is left.
struct Cursor<'a> {
    bytes: &'a [u8],
    offset: u64,
}

impl<'a> Cursor<'a> {
    fn corrupt(&self, what: impl Into<String>) -> StoreError {
        StoreError::SnapshotCorrupt {
            offset: self.offset,
            what: what.into(),
        }
    }

    fn take(&mut self, len: usize, what: &str) -> Result<&'a [u8], StoreError> {
        if len > self.bytes.len() {
            return Err(self.corrupt(format!(
                "{what}: {len} bytes declared, {} left in the frame",
                self.bytes.len()
            )));
        }
        let (taken, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Ok(taken)
    }

    fn u32(&mut self, what: &str) -> Result<u32, StoreError> {
        let bytes = self.take(4, what)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    fn u64(&mut self, what: &str) -> Result<u64, StoreError> {
        let bytes = self.take(8, what)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(bytes);
        Ok(u64::from_le_bytes(array))
    }

    fn string(&mut self, what: &str) -> Result<&'a [u8], StoreError> {
        let len = self.u32(what)?;
        let len = usize::try_from(len).map_err(|_| self.corrupt(format!("{what}: too long")))?;
        self.take(len, what)
    }
}

/// Decodes one checked payload that starts at stream byte `offset`.
pub(crate) fn decode_payload(payload: &[u8], offset: u64) -> Result<Frame, StoreError> {
    let mut cursor = Cursor {
        bytes: payload,
        offset,
    };
    let kind = cursor.take(1, "frame kind")?[0];
    let frame = match kind {
        KIND_HEADER => {
            let magic = cursor.take(MAGIC.len(), "magic")?;
            if magic != MAGIC {
                return Err(cursor.corrupt("not a store snapshot (wrong magic)"));
            }
            let version = cursor.u32("format version")?;
            if version != FORMAT_VERSION {
                return Err(cursor.corrupt(format!(
                    "snapshot format version {version}, this store reads version {FORMAT_VERSION}"
                )));
            }
            Frame::Header {
                applied_index: cursor.u64("applied index")?,
            }
        }
        KIND_ENTRIES => {
            let count = cursor.u32("pair count")?;
            // Every pair takes at least 8 bytes: a larger count is a lie, and
            // must not size an allocation.
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            if count > cursor.bytes.len() / 8 {
                return Err(cursor.corrupt(format!(
                    "{count} pairs declared in {} bytes",
                    cursor.bytes.len()
                )));
            }
            let mut pairs = Vec::with_capacity(count);
            for _ in 0..count {
                let key = cursor.string("key")?.to_vec();
                let value = cursor.string("value")?.to_vec();
                pairs.push((key, value));
            }
            Frame::Entries(pairs)
        }
        KIND_TRAILER => Frame::Trailer {
            entry_count: cursor.u64("entry count")?,
            applied_index: cursor.u64("applied index")?,
        },
        other => return Err(cursor.corrupt(format!("unknown frame kind {other}"))),
    };
    if !cursor.bytes.is_empty() {
        return Err(cursor.corrupt(format!(
            "{} bytes after the end of the frame's content",
            cursor.bytes.len()
        )));
    }
    Ok(frame)
}

/// Cuts a byte stream into checked frames. Buffers at most one partial frame
/// plus the bytes of one `push`.
#[derive(Default)]
pub(crate) struct FrameSplitter {
    pending: Vec<u8>,
    /// Stream offset of `pending[0]`.
    offset: u64,
}

impl FrameSplitter {
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
    }

    /// The stream offset up to which frames were taken.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes received but not yet part of a whole frame.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    /// The next whole frame: its stream offset and decoded content; `None`
    /// if more bytes are needed.
    pub(crate) fn next_frame(&mut self) -> Result<Option<(u64, Frame)>, StoreError> {
        if self.pending.len() < FRAME_HEADER_BYTES {
            return Ok(None);
        }
        let corrupt = |what: String| StoreError::SnapshotCorrupt {
            offset: self.offset,
            what,
        };
        let len_bytes = [
            self.pending[0],
            self.pending[1],
            self.pending[2],
            self.pending[3],
        ];
        let len = u32::from_le_bytes(len_bytes);
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        if len > SNAPSHOT_FRAME_MAX_BYTES {
            return Err(corrupt(format!(
                "frame of {len} bytes declared, at most {SNAPSHOT_FRAME_MAX_BYTES} allowed"
            )));
        }
        let frame_bytes = FRAME_HEADER_BYTES + len;
        if self.pending.len() < frame_bytes {
            return Ok(None);
        }
        let crc_stored = u32::from_le_bytes([
            self.pending[4],
            self.pending[5],
            self.pending[6],
            self.pending[7],
        ]);
        let payload = &self.pending[FRAME_HEADER_BYTES..frame_bytes];
        let crc_computed = crc32c::crc32c_append(crc32c::crc32c(&len_bytes), payload);
        if crc_stored != crc_computed {
            return Err(corrupt(format!(
                "checksum mismatch: stored {crc_stored:#010x}, computed {crc_computed:#010x}"
            )));
        }
        let frame_offset = self.offset;
        let frame = decode_payload(payload, frame_offset)?;
        self.pending.drain(..frame_bytes);
        self.offset += frame_bytes as u64;
        Ok(Some((frame_offset, frame)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries_frame(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut payload = vec![KIND_ENTRIES];
        payload.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
        for (key, value) in pairs {
            payload.extend_from_slice(&(key.len() as u32).to_le_bytes());
            payload.extend_from_slice(key);
            payload.extend_from_slice(&(value.len() as u32).to_le_bytes());
            payload.extend_from_slice(value);
        }
        frame(&payload)
    }

    fn split_all(bytes: &[u8]) -> Result<Vec<Frame>, StoreError> {
        let mut splitter = FrameSplitter::default();
        splitter.push(bytes);
        let mut frames = Vec::new();
        while let Some((_, frame)) = splitter.next_frame()? {
            frames.push(frame);
        }
        Ok(frames)
    }

    #[test]
    fn frames_round_trip() {
        let mut stream = header_frame(7);
        stream.extend(entries_frame(&[(b"a", b"1"), (b"", b"")]));
        stream.extend(trailer_frame(2, 7));
        let frames = split_all(&stream).unwrap();
        assert_eq!(
            frames,
            vec![
                Frame::Header { applied_index: 7 },
                Frame::Entries(vec![(b"a".to_vec(), b"1".to_vec()), (vec![], vec![])]),
                Frame::Trailer {
                    entry_count: 2,
                    applied_index: 7
                },
            ]
        );
    }

    #[test]
    fn a_huge_declared_frame_is_refused_before_allocating() {
        let mut bytes = u32::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(&[0; 4]);
        let err = split_all(&bytes).unwrap_err();
        assert!(err.to_string().contains("at most"), "{err}");
    }

    #[test]
    fn a_huge_declared_pair_count_is_refused_before_allocating() {
        let mut payload = vec![KIND_ENTRIES];
        payload.extend_from_slice(&u32::MAX.to_le_bytes());
        let err = split_all(&frame(&payload)).unwrap_err();
        assert!(err.to_string().contains("pairs declared"), "{err}");
    }

    #[test]
    fn a_huge_declared_key_is_refused() {
        let mut payload = vec![KIND_ENTRIES];
        payload.extend_from_slice(&1u32.to_le_bytes());
        payload.extend_from_slice(&u32::MAX.to_le_bytes());
        payload.extend_from_slice(&[0; 8]);
        let err = split_all(&frame(&payload)).unwrap_err();
        assert!(err.to_string().contains("key"), "{err}");
    }

    #[test]
    fn every_flipped_bit_of_a_frame_is_detected() {
        let good = entries_frame(&[(b"key", b"value")]);
        for at in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[at] ^= 1 << bit;
                // Either an error or (a grown length) a frame still incomplete.
                match split_all(&bad) {
                    Err(StoreError::SnapshotCorrupt { .. }) => {}
                    Ok(frames) => assert!(frames.is_empty(), "byte {at} bit {bit}: {frames:?}"),
                    Err(other) => panic!("byte {at} bit {bit}: {other}"),
                }
            }
        }
    }

    #[test]
    fn trailing_bytes_inside_a_frame_are_refused() {
        let mut payload = vec![KIND_TRAILER];
        payload.extend_from_slice(&[0; 17]);
        assert!(split_all(&frame(&payload)).is_err());
    }
}
