//! The bytes on disk: segment headers, entry frames, sealed blocks, the
//! hard-state and base files, and file names. Pure encode/decode, no IO.
//!
//! Every integer is little endian. Every checksum is CRC32C.

use std::path::{Path, PathBuf};

/// Bytes of a segment header (plain and sealed alike).
pub const SEGMENT_HEADER_LEN: u64 = 36;
/// Bytes of a frame's `length` and `crc` fields.
pub const FRAME_PREFIX_LEN: u64 = 8;
/// Bytes of a frame's `length` field (never zero in an intact frame: it
/// counts at least `index` and `term`).
pub const FRAME_LEN_FIELD_LEN: u64 = 4;
/// Bytes of an entry's fixed part inside a frame: `index` and `term`.
pub const ENTRY_FIXED_LEN: u64 = 16;
/// Bytes a frame adds to its payload.
pub const FRAME_OVERHEAD_LEN: u64 = FRAME_PREFIX_LEN + ENTRY_FIXED_LEN;
/// The largest payload an entry may carry. A declared frame length above
/// `ENTRY_FIXED_LEN + PAYLOAD_LEN_MAX` is corruption, never an allocation.
pub const PAYLOAD_LEN_MAX: u64 = 64 << 20;
/// The largest frame body (`index`, `term`, payload).
pub const FRAME_BODY_LEN_MAX: u64 = ENTRY_FIXED_LEN + PAYLOAD_LEN_MAX;
/// Indices above this are refused, on disk and in `reset`: far beyond any
/// real log, and room enough that index arithmetic never overflows.
pub const INDEX_MAX: u64 = 1 << 62;
/// Bytes of a sealed block header (and of the end marker).
pub const BLOCK_HEADER_LEN: u64 = 24;
/// A sealed block gathers whole frames until it holds at least this many bytes.
pub const BLOCK_TARGET_LEN: u64 = 64 << 10;
/// The largest uncompressed block: a block is closed as soon as it reaches
/// the target, so it holds less than the target plus one largest frame.
pub const BLOCK_UNCOMPRESSED_LEN_MAX: u64 =
    BLOCK_TARGET_LEN + FRAME_PREFIX_LEN + FRAME_BODY_LEN_MAX;

const PLAIN_MAGIC: [u8; 8] = *b"ARKTLOG1";
const SEALED_MAGIC: [u8; 8] = *b"ARKTLZ41";
const HARD_STATE_MAGIC: [u8; 8] = *b"ARKHARD2";
const HARD_STATE_V1_MAGIC: [u8; 8] = *b"ARKHARD1";
const BASE_MAGIC: [u8; 8] = *b"ARKBASE1";

/// Name of the hard-state file in the tlog directory.
pub const HARD_STATE_FILE: &str = "hard_state";
/// Name of the base file (generation and base position set by `reset`).
pub const BASE_FILE: &str = "base";
/// Suffix of temporary files; any left at open are removed.
pub const TMP_SUFFIX: &str = ".tmp";
const PLAIN_SUFFIX: &str = ".tlog";
const SEALED_SUFFIX: &str = ".tlz";

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Whether a segment holds plain frames (appendable) or lz4 blocks (sealed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// Frames one after the other; the active segment is always plain.
    Plain,
    /// Compressed blocks of frames, then an end marker; never written again.
    Sealed,
}

/// The first bytes of every segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentHeader {
    pub kind: SegmentKind,
    pub generation: u64,
    pub first_index: u64,
    /// Term of entry `first_index - 1` (the base term for the first segment).
    pub prev_term: u64,
}

impl SegmentHeader {
    pub fn encode(&self) -> [u8; SEGMENT_HEADER_LEN as usize] {
        let mut out = [0u8; SEGMENT_HEADER_LEN as usize];
        let magic = match self.kind {
            SegmentKind::Plain => PLAIN_MAGIC,
            SegmentKind::Sealed => SEALED_MAGIC,
        };
        out[0..8].copy_from_slice(&magic);
        out[8..16].copy_from_slice(&self.generation.to_le_bytes());
        out[16..24].copy_from_slice(&self.first_index.to_le_bytes());
        out[24..32].copy_from_slice(&self.prev_term.to_le_bytes());
        let crc = crc32c::crc32c(&out[0..32]);
        out[32..36].copy_from_slice(&crc.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8; SEGMENT_HEADER_LEN as usize]) -> Result<Self, &'static str> {
        let kind = if bytes[0..8] == PLAIN_MAGIC {
            SegmentKind::Plain
        } else if bytes[0..8] == SEALED_MAGIC {
            SegmentKind::Sealed
        } else {
            return Err("segment header: bad magic");
        };
        if crc32c::crc32c(&bytes[0..32]) != u32_at(bytes, 32) {
            return Err("segment header: crc mismatch");
        }
        Ok(Self {
            kind,
            generation: u64_at(bytes, 8),
            first_index: u64_at(bytes, 16),
            prev_term: u64_at(bytes, 24),
        })
    }
}

/// Appends one frame: `length u32 | crc u32 | index u64 | term u64 | payload`.
/// `length` counts index, term and payload; `crc` covers `length` and them.
pub fn encode_frame(out: &mut Vec<u8>, index: u64, term: u64, payload: &[u8]) {
    assert!(payload.len() as u64 <= PAYLOAD_LEN_MAX);
    let body_len = ENTRY_FIXED_LEN as usize + payload.len();
    let length = (body_len as u32).to_le_bytes();
    let start = out.len();
    out.extend_from_slice(&length);
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&index.to_le_bytes());
    out.extend_from_slice(&term.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&length), &out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// What the bytes at a frame position hold.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameCheck {
    /// A whole frame with a good checksum, `frame_len` bytes long.
    Good {
        index: u64,
        term: u64,
        frame_len: u64,
    },
    /// Fewer bytes than the frame needs (its prefix, or the declared body).
    Incomplete,
    /// The declared length is impossible.
    BadLength(u32),
    /// The checksum does not match; the frame is `frame_len` bytes long.
    BadCrc { frame_len: u64 },
}

impl FrameCheck {
    pub fn describe(&self) -> String {
        match self {
            FrameCheck::Good { .. } => "good frame".to_owned(),
            FrameCheck::Incomplete => "incomplete frame (shorter than declared)".to_owned(),
            FrameCheck::BadLength(len) => format!("impossible frame length {len}"),
            FrameCheck::BadCrc { .. } => "frame crc mismatch".to_owned(),
        }
    }
}

/// Reads the declared body length from a frame prefix, if it is possible.
pub fn frame_body_len(prefix: &[u8]) -> Result<u64, u32> {
    let len = u32_at(prefix, 0);
    if (len as u64) < ENTRY_FIXED_LEN || len as u64 > FRAME_BODY_LEN_MAX {
        return Err(len);
    }
    Ok(len as u64)
}

/// Checks the frame that starts at `bytes[0]`. `bytes` may run past the frame.
pub fn check_frame(bytes: &[u8]) -> FrameCheck {
    if (bytes.len() as u64) < FRAME_PREFIX_LEN {
        return FrameCheck::Incomplete;
    }
    let body_len = match frame_body_len(bytes) {
        Ok(len) => len,
        Err(len) => return FrameCheck::BadLength(len),
    };
    let frame_len = FRAME_PREFIX_LEN + body_len;
    if (bytes.len() as u64) < frame_len {
        return FrameCheck::Incomplete;
    }
    let frame = &bytes[..frame_len as usize];
    let crc = crc32c::crc32c_append(crc32c::crc32c(&frame[0..4]), &frame[8..]);
    if crc != u32_at(frame, 4) {
        return FrameCheck::BadCrc { frame_len };
    }
    FrameCheck::Good {
        index: u64_at(frame, 8),
        term: u64_at(frame, 16),
        frame_len,
    }
}

/// The payload of a frame already checked `Good`.
pub fn frame_payload(frame: &[u8]) -> &[u8] {
    &frame[FRAME_OVERHEAD_LEN as usize..]
}

/// The header of a sealed block, or the end marker when `compressed_len == 0`:
/// `compressed_len u32 | uncompressed_len u32 | first_index u64 |
/// entry_count u32 | crc u32`, the crc covering the 20 bytes before it and
/// the compressed bytes after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    pub compressed_len: u32,
    pub uncompressed_len: u32,
    /// For the end marker: the index after the segment's last entry.
    pub first_index: u64,
    /// For the end marker: the segment's entry count.
    pub entry_count: u32,
    pub crc: u32,
}

impl BlockHeader {
    pub fn new(
        uncompressed_len: u32,
        first_index: u64,
        entry_count: u32,
        compressed: &[u8],
    ) -> Self {
        let mut header = Self {
            compressed_len: compressed.len() as u32,
            uncompressed_len,
            first_index,
            entry_count,
            crc: 0,
        };
        header.crc = header.compute_crc(compressed);
        header
    }

    pub fn is_end_marker(&self) -> bool {
        self.compressed_len == 0
    }

    fn fixed_bytes(&self) -> [u8; 20] {
        let mut out = [0u8; 20];
        out[0..4].copy_from_slice(&self.compressed_len.to_le_bytes());
        out[4..8].copy_from_slice(&self.uncompressed_len.to_le_bytes());
        out[8..16].copy_from_slice(&self.first_index.to_le_bytes());
        out[16..20].copy_from_slice(&self.entry_count.to_le_bytes());
        out
    }

    pub fn compute_crc(&self, compressed: &[u8]) -> u32 {
        crc32c::crc32c_append(crc32c::crc32c(&self.fixed_bytes()), compressed)
    }

    pub fn encode(&self) -> [u8; BLOCK_HEADER_LEN as usize] {
        let mut out = [0u8; BLOCK_HEADER_LEN as usize];
        out[0..20].copy_from_slice(&self.fixed_bytes());
        out[20..24].copy_from_slice(&self.crc.to_le_bytes());
        out
    }

    pub fn decode(bytes: &[u8; BLOCK_HEADER_LEN as usize]) -> Self {
        Self {
            compressed_len: u32_at(bytes, 0),
            uncompressed_len: u32_at(bytes, 4),
            first_index: u64_at(bytes, 8),
            entry_count: u32_at(bytes, 16),
            crc: u32_at(bytes, 20),
        }
    }
}

pub use consensus::HardState;
use consensus::{NodeId, Standing};

/// Bytes of a version-1 hard-state file (term and vote only).
pub const HARD_STATE_V1_LEN: usize = 29;
/// Bytes of the hard-state file as written now.
pub const HARD_STATE_LEN: usize = 38;

/// Encodes the hard state (version 2): magic `ARKHARD2` | term u64 |
/// has_vote u8 | vote u64 | incarnation u64 | standing u8 | crc u32.
pub fn encode_hard_state(state: &HardState) -> [u8; HARD_STATE_LEN] {
    let mut out = [0u8; HARD_STATE_LEN];
    out[0..8].copy_from_slice(&HARD_STATE_MAGIC);
    out[8..16].copy_from_slice(&state.term.to_le_bytes());
    out[16] = u8::from(state.voted_for.is_some());
    out[17..25].copy_from_slice(&state.voted_for.map_or(0, |v| v.0).to_le_bytes());
    out[25..33].copy_from_slice(&state.incarnation.to_le_bytes());
    out[33] = state.standing.code();
    let crc = crc32c::crc32c(&out[0..34]);
    out[34..38].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes the hard-state file, version 2 or 1 (a version-1 state is
/// `Trusted`, incarnation 0: it predates both); the error is `(byte
/// offset, what)`.
pub fn decode_hard_state(bytes: &[u8]) -> Result<HardState, (u64, &'static str)> {
    let (crc_at, v1) = match (bytes.len(), bytes.get(0..8)) {
        (HARD_STATE_LEN, Some(m)) if m == HARD_STATE_MAGIC => (34, false),
        (HARD_STATE_V1_LEN, Some(m)) if m == HARD_STATE_V1_MAGIC => (25, true),
        (HARD_STATE_LEN | HARD_STATE_V1_LEN, _) => return Err((0, "hard state: bad magic")),
        _ => return Err((0, "hard state: wrong file length")),
    };
    if crc32c::crc32c(&bytes[0..crc_at]) != u32_at(bytes, crc_at) {
        return Err((crc_at as u64, "hard state: crc mismatch"));
    }
    let voted_for = match bytes[16] {
        0 => None,
        1 => Some(NodeId(u64_at(bytes, 17))),
        _ => return Err((16, "hard state: bad vote flag")),
    };
    let (incarnation, standing) = if v1 {
        (0, Standing::Trusted)
    } else {
        let standing =
            Standing::from_code(bytes[33]).ok_or((33, "hard state: bad standing code"))?;
        (u64_at(bytes, 25), standing)
    };
    Ok(HardState {
        term: u64_at(bytes, 8),
        voted_for,
        incarnation,
        standing,
    })
}

/// The base file: which generation of segments is current, and the position
/// the log starts after when that generation has no segment yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Base {
    pub generation: u64,
    pub index: u64,
    pub term: u64,
}

pub const BASE_LEN: usize = 36;

pub fn encode_base(base: &Base) -> [u8; BASE_LEN] {
    let mut out = [0u8; BASE_LEN];
    out[0..8].copy_from_slice(&BASE_MAGIC);
    out[8..16].copy_from_slice(&base.generation.to_le_bytes());
    out[16..24].copy_from_slice(&base.index.to_le_bytes());
    out[24..32].copy_from_slice(&base.term.to_le_bytes());
    let crc = crc32c::crc32c(&out[0..32]);
    out[32..36].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes the base file; the error is `(byte offset, what)`.
pub fn decode_base(bytes: &[u8]) -> Result<Base, (u64, &'static str)> {
    if bytes.len() != BASE_LEN {
        return Err((0, "base: wrong file length"));
    }
    if bytes[0..8] != BASE_MAGIC {
        return Err((0, "base: bad magic"));
    }
    if crc32c::crc32c(&bytes[0..32]) != u32_at(bytes, 32) {
        return Err((32, "base: crc mismatch"));
    }
    Ok(Base {
        generation: u64_at(bytes, 8),
        index: u64_at(bytes, 16),
        term: u64_at(bytes, 24),
    })
}

/// `<generation:08>-<first_index:020>.tlog` (plain) or `.tlz` (sealed).
pub fn segment_file_name(generation: u64, first_index: u64, kind: SegmentKind) -> String {
    let suffix = match kind {
        SegmentKind::Plain => PLAIN_SUFFIX,
        SegmentKind::Sealed => SEALED_SUFFIX,
    };
    format!("{generation:08}-{first_index:020}{suffix}")
}

pub fn segment_path(dir: &Path, generation: u64, first_index: u64, kind: SegmentKind) -> PathBuf {
    dir.join(segment_file_name(generation, first_index, kind))
}

/// The temporary name a file is written under before it is renamed.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(TMP_SUFFIX);
    PathBuf::from(name)
}

/// Parses a segment file name into `(generation, first_index, kind)`.
pub fn parse_segment_name(name: &str) -> Option<(u64, u64, SegmentKind)> {
    let (stem, kind) = if let Some(stem) = name.strip_suffix(PLAIN_SUFFIX) {
        (stem, SegmentKind::Plain)
    } else if let Some(stem) = name.strip_suffix(SEALED_SUFFIX) {
        (stem, SegmentKind::Sealed)
    } else {
        return None;
    };
    let (generation, first) = stem.split_once('-')?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(generation) || !all_digits(first) {
        return None;
    }
    Some((generation.parse().ok()?, first.parse().ok()?, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_round_trip_and_every_single_bit_flip_is_caught() {
        let mut buf = Vec::new();
        encode_frame(&mut buf, 7, 3, b"hello");
        assert_eq!(
            check_frame(&buf),
            FrameCheck::Good {
                index: 7,
                term: 3,
                frame_len: buf.len() as u64
            }
        );
        assert_eq!(frame_payload(&buf), b"hello");
        for bit in 0..buf.len() * 8 {
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                !matches!(check_frame(&bad), FrameCheck::Good { .. }),
                "flip of bit {bit} went unnoticed"
            );
        }
        for cut in 0..buf.len() {
            assert_eq!(
                check_frame(&buf[..cut]),
                FrameCheck::Incomplete,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn huge_declared_length_is_rejected_before_any_allocation() {
        let bytes = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert_eq!(check_frame(&bytes), FrameCheck::BadLength(u32::MAX));
    }

    #[test]
    fn headers_and_small_files_round_trip() {
        let header = SegmentHeader {
            kind: SegmentKind::Sealed,
            generation: 2,
            first_index: 1001,
            prev_term: 9,
        };
        assert_eq!(SegmentHeader::decode(&header.encode()), Ok(header));
        let mut bad = header.encode();
        bad[20] ^= 1;
        assert!(SegmentHeader::decode(&bad).is_err());
        let state = HardState {
            term: 5,
            voted_for: Some(NodeId(2)),
            incarnation: 77,
            standing: Standing::Recovering,
        };
        assert_eq!(decode_hard_state(&encode_hard_state(&state)), Ok(state));
        // A version-1 file (term 5, vote 2): trusted, incarnation 0.
        let mut v1 = [0u8; HARD_STATE_V1_LEN];
        v1[0..8].copy_from_slice(b"ARKHARD1");
        v1[8..16].copy_from_slice(&5u64.to_le_bytes());
        v1[16] = 1;
        v1[17..25].copy_from_slice(&2u64.to_le_bytes());
        let crc = crc32c::crc32c(&v1[0..25]);
        v1[25..29].copy_from_slice(&crc.to_le_bytes());
        assert_eq!(
            decode_hard_state(&v1),
            Ok(HardState {
                term: 5,
                voted_for: Some(NodeId(2)),
                incarnation: 0,
                standing: Standing::Trusted,
            })
        );
        let mut bad = encode_hard_state(&state);
        bad[33] = 9;
        assert!(decode_hard_state(&bad).is_err());
        let base = Base {
            generation: 1,
            index: 10,
            term: 4,
        };
        assert_eq!(decode_base(&encode_base(&base)), Ok(base));
    }

    #[test]
    fn segment_names_parse_back() {
        let name = segment_file_name(3, 12345, SegmentKind::Plain);
        assert_eq!(name, "00000003-00000000000000012345.tlog");
        assert_eq!(
            parse_segment_name(&name),
            Some((3, 12345, SegmentKind::Plain))
        );
        let name = segment_file_name(0, 1, SegmentKind::Sealed);
        assert_eq!(parse_segment_name(&name), Some((0, 1, SegmentKind::Sealed)));
        assert_eq!(parse_segment_name("hard_state"), None);
        assert_eq!(parse_segment_name("x-1.tlog"), None);
        assert_eq!(parse_segment_name("1-+1.tlog"), None);
    }
}
