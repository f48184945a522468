//! One segment file: scanning it at open, reading entries from it, sealing
//! it (plain -> lz4 blocks) and unsealing it (for a truncation).

use crate::error::{corrupt, io_err, TlogError};
use crate::format::{
    check_frame, encode_frame, frame_body_len, frame_payload, segment_path, tmp_path, BlockHeader,
    FrameCheck, SegmentHeader, SegmentKind, BLOCK_HEADER_LEN, BLOCK_TARGET_LEN,
    BLOCK_UNCOMPRESSED_LEN_MAX, FRAME_BODY_LEN_MAX, FRAME_LEN_FIELD_LEN, FRAME_OVERHEAD_LEN,
    FRAME_PREFIX_LEN, SEGMENT_HEADER_LEN,
};
use crate::Entry;
use disk::{Disk, DiskFile, OpenMode};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a sealed block starts, and the first index it holds.
#[derive(Debug, Clone, Copy)]
pub struct BlockRef {
    pub first_index: u64,
    pub offset: u64,
}

/// How a segment's entries are found.
#[derive(Debug)]
pub enum Body {
    /// The open file, the byte offset of every frame (4 bytes per entry;
    /// plain segments are below 4 GiB by the options' bounds), and where
    /// the frames end: the offset of the next frame, not the file's length
    /// (the file is preallocated with zeros past it).
    Plain {
        file: Arc<dyn DiskFile>,
        offsets: Vec<u32>,
        len_bytes: u64,
    },
    /// One reference per block of about 64 KiB of frames. The file is opened
    /// for each read, so that a long log does not hold a descriptor per
    /// segment.
    Sealed { blocks: Vec<BlockRef> },
}

/// A segment as the tlog keeps it in memory.
#[derive(Debug)]
pub struct Segment {
    pub path: PathBuf,
    pub header: SegmentHeader,
    pub entry_count: u64,
    /// Term of the last entry, or `header.prev_term` when empty.
    pub last_term: u64,
    pub body: Body,
}

impl Segment {
    pub fn first_index(&self) -> u64 {
        self.header.first_index
    }

    /// The index after the last entry.
    pub fn next_index(&self) -> u64 {
        self.header.first_index + self.entry_count
    }

    /// The open file of a plain segment (the active one always is).
    pub fn plain_file(&self) -> &Arc<dyn DiskFile> {
        match &self.body {
            Body::Plain { file, .. } => file,
            Body::Sealed { .. } => unreachable!("only plain segments keep their file open"),
        }
    }

    pub fn is_plain(&self) -> bool {
        matches!(self.body, Body::Plain { .. })
    }

    pub fn heap_bytes(&self) -> usize {
        match &self.body {
            Body::Plain { offsets, .. } => offsets.capacity() * 4,
            Body::Sealed { blocks } => blocks.capacity() * std::mem::size_of::<BlockRef>(),
        }
    }
}

/// Reads a file through a window, so a scan costs one read per window.
struct WindowReader<'a> {
    file: &'a dyn DiskFile,
    path: &'a Path,
    file_len: u64,
    window_start: u64,
    window: Vec<u8>,
}

const WINDOW_LEN: u64 = 1 << 20;

impl<'a> WindowReader<'a> {
    fn new(file: &'a dyn DiskFile, path: &'a Path, file_len: u64) -> Self {
        Self {
            file,
            path,
            file_len,
            window_start: 0,
            window: Vec::new(),
        }
    }

    /// Up to `want` bytes from `pos` (fewer only at the end of the file).
    /// `want` is bounded by the callers (a frame at most), and so is the
    /// allocation: never more than the file holds.
    fn get(&mut self, pos: u64, want: u64) -> Result<&[u8], TlogError> {
        assert!(want <= FRAME_PREFIX_LEN + FRAME_BODY_LEN_MAX);
        assert!(pos <= self.file_len);
        let want = want.min(self.file_len - pos);
        let window_end = self.window_start + self.window.len() as u64;
        if pos < self.window_start || pos + want > window_end {
            let len = want.max(WINDOW_LEN).min(self.file_len - pos);
            self.window.resize(len as usize, 0);
            self.file
                .read_exact_at(pos, &mut self.window)
                .map_err(io_err(self.path, "read"))?;
            self.window_start = pos;
        }
        let at = (pos - self.window_start) as usize;
        Ok(&self.window[at..at + want as usize])
    }

    /// The offset of the first non-zero byte at or after `from`, if any
    /// before the end of the file. Compares 64 bytes at a time, so a
    /// preallocated tail of zeros costs a read at memory speed, not a
    /// parse at every offset.
    fn next_nonzero(&mut self, from: u64) -> Result<Option<u64>, TlogError> {
        let mut pos = from;
        while pos < self.file_len {
            // From the current window if it holds `pos`, else a new one.
            let window_end = self.window_start + self.window.len() as u64;
            let want = if self.window_start <= pos && pos < window_end {
                window_end - pos
            } else {
                WINDOW_LEN
            };
            let chunk = self.get(pos, want)?;
            if let Some(at) = first_nonzero(chunk) {
                return Ok(Some(pos + at as u64));
            }
            pos += chunk.len() as u64;
        }
        Ok(None)
    }

    /// Checks the frame at `pos`.
    fn check_frame_at(&mut self, pos: u64) -> Result<FrameCheck, TlogError> {
        let prefix = self.get(pos, FRAME_PREFIX_LEN)?;
        if (prefix.len() as u64) < FRAME_PREFIX_LEN {
            return Ok(FrameCheck::Incomplete);
        }
        match frame_body_len(prefix) {
            Err(len) => Ok(FrameCheck::BadLength(len)),
            Ok(body_len) => Ok(check_frame(self.get(pos, FRAME_PREFIX_LEN + body_len)?)),
        }
    }
}

/// The position of the first non-zero byte of `bytes`.
fn first_nonzero(bytes: &[u8]) -> Option<usize> {
    const ZEROS: [u8; 64] = [0; 64];
    let mut start = 0usize;
    for chunk in bytes.chunks(ZEROS.len()) {
        if chunk != &ZEROS[..chunk.len()] {
            return chunk.iter().position(|&b| b != 0).map(|at| start + at);
        }
        start += chunk.len();
    }
    None
}

/// What a scan of a plain segment found.
#[derive(Debug)]
pub struct PlainScan {
    pub offsets: Vec<u32>,
    /// Where the last good frame ends: where the next frame goes (the file
    /// is cut here if `torn`). Only zero bytes, if any, follow it unless
    /// `torn`.
    pub len_bytes: u64,
    pub entry_count: u64,
    pub last_term: u64,
    /// `(offset, what)` of a torn final frame, which the caller cuts away.
    pub torn: Option<(u64, String)>,
}

/// Scans a plain segment, checking every frame. `on_entry(index, term)` is
/// called for each good frame in order. Where the frames stop, zero bytes
/// up to the end of the file are free preallocated space: a clean end. In
/// the last segment (`is_last`) a bad frame (with a non-zero byte from it
/// on) with no intact later frame after it is a torn tail, reported in the
/// result; anything else bad is an error.
pub fn scan_plain(
    file: &dyn DiskFile,
    path: &Path,
    header: &SegmentHeader,
    is_last: bool,
    mut on_entry: impl FnMut(u64, u64),
) -> Result<PlainScan, TlogError> {
    let file_len = file.len().map_err(io_err(path, "length of"))?;
    if file_len > u64::from(u32::MAX) {
        return Err(corrupt(
            path,
            0,
            format!("plain segment of {file_len} bytes, above 4 GiB"),
        ));
    }
    let mut reader = WindowReader::new(file, path, file_len);
    let mut scan = PlainScan {
        offsets: Vec::new(),
        len_bytes: SEGMENT_HEADER_LEN,
        entry_count: 0,
        last_term: header.prev_term,
        torn: None,
    };
    let mut pos = SEGMENT_HEADER_LEN;
    while pos < file_len {
        let expected = header.first_index + scan.entry_count;
        match reader.check_frame_at(pos)? {
            FrameCheck::Good {
                index,
                term,
                frame_len,
            } => {
                if index != expected {
                    return Err(corrupt(
                        path,
                        pos,
                        format!("frame holds index {index}, expected {expected}"),
                    ));
                }
                if term < scan.last_term {
                    return Err(corrupt(
                        path,
                        pos,
                        format!(
                            "index {index} has term {term}, below the term {} before it",
                            scan.last_term
                        ),
                    ));
                }
                scan.offsets.push(pos as u32);
                on_entry(index, term);
                scan.entry_count += 1;
                scan.last_term = term;
                pos += frame_len;
                scan.len_bytes = pos;
            }
            bad => {
                // Nothing but zeros from here on: preallocated space never
                // written (or a torn write that left only zeros, which is
                // the same thing: the next append overwrites it).
                if reader.next_nonzero(pos)?.is_none() {
                    break;
                }
                let what = bad.describe();
                if !is_last {
                    return Err(corrupt(
                        path,
                        pos,
                        format!("{what} (index {expected}) in a segment that is not the last"),
                    ));
                }
                if let Some((later_pos, later_index)) =
                    find_later_frame(&mut reader, pos, expected)?
                {
                    return Err(corrupt(
                        path,
                        pos,
                        format!("{what} (index {expected}), yet an intact frame of index {later_index} follows at byte {later_pos}"),
                    ));
                }
                scan.torn = Some((pos, format!("{what} (index {expected})")));
                break;
            }
        }
    }
    Ok(scan)
}

/// Looks for an intact frame with an index after `broken_index` anywhere
/// after `broken_pos`: if there is one, the damage is not a torn tail.
fn find_later_frame(
    reader: &mut WindowReader<'_>,
    broken_pos: u64,
    broken_index: u64,
) -> Result<Option<(u64, u64)>, TlogError> {
    let file_len = reader.file_len;
    let frames_max = (file_len - broken_pos) / FRAME_OVERHEAD_LEN;
    let mut pos = broken_pos + 1;
    // A frame's length field is at least 16, so a frame starting at `p`
    // has a non-zero byte in `p..p + 4`: runs of zeros (the preallocated
    // tail) are skipped at memory speed rather than parsed at every offset.
    // `nonzero_at` is the first non-zero byte at or after some earlier `pos`.
    let mut nonzero_at = 0u64;
    while pos + FRAME_OVERHEAD_LEN <= file_len {
        if nonzero_at < pos {
            match reader.next_nonzero(pos)? {
                Some(at) => nonzero_at = at,
                None => break,
            }
        }
        pos = pos.max(nonzero_at.saturating_sub(FRAME_LEN_FIELD_LEN - 1));
        if pos + FRAME_OVERHEAD_LEN > file_len {
            break;
        }
        let bytes = reader.get(pos, FRAME_OVERHEAD_LEN)?;
        let mut word = [0u8; 8];
        word.copy_from_slice(&bytes[8..16]);
        let index = u64::from_le_bytes(word);
        if index > broken_index && index - broken_index <= frames_max {
            if let FrameCheck::Good { index: found, .. } = reader.check_frame_at(pos)? {
                if found == index {
                    return Ok(Some((pos, index)));
                }
            }
        }
        pos += 1;
    }
    Ok(None)
}

/// A decompressed block: its header, where it is, and its frames.
struct Block {
    header: BlockHeader,
    offset: u64,
    frames: Vec<u8>,
}

/// Reads and checks the block header at `offset`; `Ok(None)` for the end marker.
fn read_block(
    file: &dyn DiskFile,
    path: &Path,
    file_len: u64,
    offset: u64,
) -> Result<Option<Block>, TlogError> {
    if file_len.saturating_sub(offset) < BLOCK_HEADER_LEN {
        return Err(corrupt(
            path,
            offset,
            "sealed segment ends without its end marker",
        ));
    }
    let mut raw = [0u8; BLOCK_HEADER_LEN as usize];
    file.read_exact_at(offset, &mut raw)
        .map_err(io_err(path, "read"))?;
    let header = BlockHeader::decode(&raw);
    if header.is_end_marker() {
        if header.uncompressed_len != 0 || header.compute_crc(&[]) != header.crc {
            return Err(corrupt(path, offset, "bad end marker"));
        }
        return Ok(None);
    }
    let compressed_len = u64::from(header.compressed_len);
    if compressed_len > file_len - offset - BLOCK_HEADER_LEN {
        return Err(corrupt(
            path,
            offset,
            format!("block of {compressed_len} compressed bytes runs past the end of the file"),
        ));
    }
    let uncompressed_len = u64::from(header.uncompressed_len);
    if uncompressed_len > BLOCK_UNCOMPRESSED_LEN_MAX || header.entry_count == 0 {
        return Err(corrupt(
            path,
            offset,
            format!(
                "impossible block: {uncompressed_len} bytes, {} entries",
                header.entry_count
            ),
        ));
    }
    let mut compressed = vec![0u8; compressed_len as usize];
    file.read_exact_at(offset + BLOCK_HEADER_LEN, &mut compressed)
        .map_err(io_err(path, "read"))?;
    if header.compute_crc(&compressed) != header.crc {
        return Err(corrupt(path, offset, "block crc mismatch"));
    }
    let mut frames = vec![0u8; uncompressed_len as usize];
    match lz4_flex::block::decompress_into(&compressed, &mut frames) {
        Ok(len) if len as u64 == uncompressed_len => {}
        Ok(len) => {
            return Err(corrupt(
                path,
                offset,
                format!("block decompresses to {len} bytes, header says {uncompressed_len}"),
            ));
        }
        Err(err) => {
            return Err(corrupt(
                path,
                offset,
                format!("block does not decompress: {err}"),
            ))
        }
    }
    Ok(Some(Block {
        header,
        offset,
        frames,
    }))
}

/// Walks the frames of a block, checking each; calls `each(index, term, payload)`.
fn walk_block(
    path: &Path,
    block: &Block,
    expected_first: u64,
    prev_term: u64,
    mut each: impl FnMut(u64, u64, &[u8]),
) -> Result<u64, TlogError> {
    if block.header.first_index != expected_first {
        return Err(corrupt(
            path,
            block.offset,
            format!(
                "block starts at index {}, expected {expected_first}",
                block.header.first_index
            ),
        ));
    }
    let mut at = 0usize;
    let mut expected = expected_first;
    let mut last_term = prev_term;
    while at < block.frames.len() {
        let what_at = |what: String| {
            corrupt(
                path,
                block.offset,
                format!("{what} at byte {at} of the decompressed block"),
            )
        };
        match check_frame(&block.frames[at..]) {
            FrameCheck::Good {
                index,
                term,
                frame_len,
            } => {
                if index != expected {
                    return Err(what_at(format!(
                        "frame holds index {index}, expected {expected}"
                    )));
                }
                if term < last_term {
                    return Err(what_at(format!(
                        "index {index} has term {term}, below {last_term}"
                    )));
                }
                each(
                    index,
                    term,
                    frame_payload(&block.frames[at..at + frame_len as usize]),
                );
                at += frame_len as usize;
                expected += 1;
                last_term = term;
            }
            bad => return Err(what_at(bad.describe())),
        }
    }
    if expected - expected_first != u64::from(block.header.entry_count) {
        return Err(corrupt(
            path,
            block.offset,
            format!(
                "block holds {} entries, header says {}",
                expected - expected_first,
                block.header.entry_count
            ),
        ));
    }
    Ok(last_term)
}

/// What a scan of a sealed segment found.
pub struct SealedScan {
    pub blocks: Vec<BlockRef>,
    pub entry_count: u64,
    pub last_term: u64,
}

/// Scans a sealed segment, decompressing and checking every block and frame.
pub fn scan_sealed(
    file: &dyn DiskFile,
    path: &Path,
    header: &SegmentHeader,
    mut on_entry: impl FnMut(u64, u64),
) -> Result<SealedScan, TlogError> {
    let file_len = file.len().map_err(io_err(path, "length of"))?;
    let mut scan = SealedScan {
        blocks: Vec::new(),
        entry_count: 0,
        last_term: header.prev_term,
    };
    let mut offset = SEGMENT_HEADER_LEN;
    loop {
        let next_index = header.first_index + scan.entry_count;
        let Some(block) = read_block(file, path, file_len, offset)? else {
            let mut raw = [0u8; BLOCK_HEADER_LEN as usize];
            file.read_exact_at(offset, &mut raw)
                .map_err(io_err(path, "read"))?;
            let marker = BlockHeader::decode(&raw);
            if marker.first_index != next_index || u64::from(marker.entry_count) != scan.entry_count
            {
                return Err(corrupt(
                    path,
                    offset,
                    "end marker does not match the blocks before it",
                ));
            }
            if offset + BLOCK_HEADER_LEN != file_len {
                return Err(corrupt(
                    path,
                    offset + BLOCK_HEADER_LEN,
                    "bytes after the end marker",
                ));
            }
            return Ok(scan);
        };
        scan.last_term = walk_block(
            path,
            &block,
            next_index,
            scan.last_term,
            |index, term, _| on_entry(index, term),
        )?;
        scan.blocks.push(BlockRef {
            first_index: next_index,
            offset,
        });
        scan.entry_count += u64::from(block.header.entry_count);
        offset += BLOCK_HEADER_LEN + u64::from(block.header.compressed_len);
    }
}

/// Reads entries `[from, to)` of `segment` into `out`, stopping before the
/// entry that would take `*budget_bytes` below zero unless `out` is empty.
/// Returns false if it stopped for the budget.
pub fn read_entries(
    disk: &dyn Disk,
    segment: &Segment,
    from: u64,
    to: u64,
    budget_bytes: &mut u64,
    out: &mut Vec<Entry>,
) -> Result<bool, TlogError> {
    assert!(segment.first_index() <= from && from <= to && to <= segment.next_index());
    match &segment.body {
        Body::Plain {
            file,
            offsets,
            len_bytes,
        } => {
            let first = segment.first_index();
            let offset_of = |index: u64| {
                let k = (index - first) as usize;
                offsets.get(k).map_or(*len_bytes, |&o| u64::from(o))
            };
            // Choose the frames that fit, from their offsets alone.
            let mut end = from;
            let mut spent = 0u64;
            let mut stopped = false;
            while end < to {
                let payload_len = offset_of(end + 1) - offset_of(end) - FRAME_OVERHEAD_LEN;
                if spent + payload_len > *budget_bytes && !(out.is_empty() && end == from) {
                    stopped = true;
                    break;
                }
                spent += payload_len;
                end += 1;
            }
            let start_pos = offset_of(from);
            let mut bytes = vec![0u8; (offset_of(end) - start_pos) as usize];
            file.read_exact_at(start_pos, &mut bytes)
                .map_err(io_err(&segment.path, "read"))?;
            let mut at = 0usize;
            for index in from..end {
                let pos = start_pos + at as u64;
                match check_frame(&bytes[at..]) {
                    FrameCheck::Good {
                        index: found,
                        term,
                        frame_len,
                    } if found == index => {
                        out.push(Entry {
                            index,
                            term,
                            payload: frame_payload(&bytes[at..at + frame_len as usize]).to_vec(),
                        });
                        at += frame_len as usize;
                    }
                    FrameCheck::Good { index: found, .. } => {
                        return Err(corrupt(
                            &segment.path,
                            pos,
                            format!("frame holds index {found}, expected {index}"),
                        ));
                    }
                    bad => {
                        return Err(corrupt(
                            &segment.path,
                            pos,
                            format!("{} (index {index})", bad.describe()),
                        ))
                    }
                }
            }
            *budget_bytes = budget_bytes.saturating_sub(spent);
            Ok(!stopped)
        }
        Body::Sealed { blocks } => {
            let file = disk
                .open(&segment.path, OpenMode::Read)
                .map_err(io_err(&segment.path, "open"))?;
            let file_len = file.len().map_err(io_err(&segment.path, "length of"))?;
            let mut k = blocks.partition_point(|b| b.first_index <= from) - 1;
            let mut next = from;
            while next < to && k < blocks.len() {
                let block_ref = blocks[k];
                let Some(block) =
                    read_block(file.as_ref(), &segment.path, file_len, block_ref.offset)?
                else {
                    return Err(corrupt(
                        &segment.path,
                        block_ref.offset,
                        "end marker where a block was indexed",
                    ));
                };
                let mut stopped = false;
                walk_block(
                    &segment.path,
                    &block,
                    block_ref.first_index,
                    0,
                    |index, term, payload| {
                        if stopped || index < next || index >= to {
                            return;
                        }
                        let payload_len = payload.len() as u64;
                        if payload_len > *budget_bytes && !out.is_empty() {
                            stopped = true;
                            return;
                        }
                        *budget_bytes = budget_bytes.saturating_sub(payload_len);
                        out.push(Entry {
                            index,
                            term,
                            payload: payload.to_vec(),
                        });
                        next = index + 1;
                    },
                )?;
                if stopped {
                    return Ok(false);
                }
                k += 1;
            }
            if next != to {
                // The file changed under us since open (its blocks checked
                // out then): report it rather than return too little.
                return Err(corrupt(
                    &segment.path,
                    0,
                    format!("its blocks end at index {next}, expected {to}"),
                ));
            }
            Ok(true)
        }
    }
}

/// Writes `file` at `path` under a temporary name, syncs it, renames it
/// into place and syncs the directory; returns the file reopened as `mode`.
pub fn install_file(
    disk: &dyn Disk,
    dir: &Path,
    path: &Path,
    mode: OpenMode,
    write: impl FnOnce(&dyn DiskFile, &Path) -> Result<(), TlogError>,
) -> Result<Arc<dyn DiskFile>, TlogError> {
    let tmp = tmp_path(path);
    let file = disk
        .open(&tmp, OpenMode::Truncate)
        .map_err(io_err(&tmp, "create"))?;
    if let Err(e) = write(file.as_ref(), &tmp) {
        // Best effort: give back the space of a file that will never be
        // used (an open removes temporary files anyway).
        drop(file);
        let _ = disk.remove(&tmp);
        return Err(e);
    }
    file.sync_data().map_err(io_err(&tmp, "fdatasync"))?;
    drop(file);
    disk.rename(&tmp, path).map_err(io_err(&tmp, "rename"))?;
    disk.sync_dir(dir).map_err(io_err(dir, "sync directory"))?;
    let file = disk.open(path, mode).map_err(io_err(path, "open"))?;
    Ok(Arc::from(file))
}

/// Creates a new empty plain segment, durable (header synced, name synced),
/// preallocated with zeros to `max_size` bytes (synced with the header).
pub fn create_plain(
    disk: &dyn Disk,
    dir: &Path,
    header: SegmentHeader,
    max_size: u64,
) -> Result<Segment, TlogError> {
    assert_eq!(header.kind, SegmentKind::Plain);
    let path = segment_path(
        dir,
        header.generation,
        header.first_index,
        SegmentKind::Plain,
    );
    let file = install_file(disk, dir, &path, OpenMode::ReadWrite, |file, tmp| {
        file.write_all_at(0, &header.encode())
            .map_err(io_err(tmp, "write"))?;
        file.allocate(max_size).map_err(io_err(tmp, "allocate"))
    })?;
    Ok(Segment {
        path,
        header,
        entry_count: 0,
        last_term: header.prev_term,
        body: Body::Plain {
            file,
            offsets: Vec::new(),
            len_bytes: SEGMENT_HEADER_LEN,
        },
    })
}

/// A seal in progress: the sealed file being written under its temporary
/// name, block by block, so that the work can be spread over several calls.
#[derive(Debug)]
pub struct SealProgress {
    /// First index of the plain segment being sealed.
    pub first_index: u64,
    header: SegmentHeader,
    path: PathBuf,
    tmp: PathBuf,
    out: Box<dyn DiskFile>,
    /// The next entry (position in the segment) to compress.
    next_entry: usize,
    out_pos: u64,
    blocks: Vec<BlockRef>,
}

impl SealProgress {
    /// Removes the temporary file (a cancelled seal); its removal need not
    /// be durable, an open removes temporary files anyway.
    pub fn cancel(self, disk: &dyn Disk) -> Result<(), TlogError> {
        drop(self.out);
        disk.remove(&self.tmp).map_err(io_err(&self.tmp, "remove"))
    }
}

/// Starts sealing a full, durable plain segment: creates the temporary
/// sealed file with its header.
pub fn seal_begin(disk: &dyn Disk, dir: &Path, plain: &Segment) -> Result<SealProgress, TlogError> {
    assert!(plain.is_plain());
    assert!(
        plain.entry_count <= u64::from(u32::MAX),
        "max_entries is bounded by MAX_ENTRIES_LIMIT"
    );
    let header = SegmentHeader {
        kind: SegmentKind::Sealed,
        ..plain.header
    };
    let path = segment_path(
        dir,
        header.generation,
        header.first_index,
        SegmentKind::Sealed,
    );
    let tmp = tmp_path(&path);
    let out = disk
        .open(&tmp, OpenMode::Truncate)
        .map_err(io_err(&tmp, "create"))?;
    if let Err(e) = out.write_all_at(0, &header.encode()) {
        drop(out);
        let _ = disk.remove(&tmp);
        return Err(io_err(&tmp, "write")(e));
    }
    Ok(SealProgress {
        first_index: plain.first_index(),
        header,
        path,
        tmp,
        out,
        next_entry: 0,
        out_pos: SEGMENT_HEADER_LEN,
        blocks: Vec::new(),
    })
}

/// Compresses blocks of `plain` into the sealed file until about
/// `budget_bytes` of frames are done (at least one block) or the segment is;
/// returns the frame bytes consumed and whether the file is complete.
pub fn seal_advance(
    progress: &mut SealProgress,
    plain: &Segment,
    budget_bytes: u64,
) -> Result<(u64, bool), TlogError> {
    let Body::Plain {
        file: plain_file,
        offsets,
        len_bytes,
    } = &plain.body
    else {
        unreachable!("only plain segments are sealed");
    };
    assert_eq!(progress.first_index, plain.first_index());
    let offset_of = |k: usize| offsets.get(k).map_or(*len_bytes, |&o| u64::from(o));
    let mut consumed = 0u64;
    while progress.next_entry < offsets.len() {
        if consumed > 0 && consumed >= budget_bytes {
            return Ok((consumed, false));
        }
        let k = progress.next_entry;
        let mut k_end = k + 1;
        while k_end < offsets.len() && offset_of(k_end) - offset_of(k) < BLOCK_TARGET_LEN {
            k_end += 1;
        }
        let start = offset_of(k);
        let mut frames = vec![0u8; (offset_of(k_end) - start) as usize];
        plain_file
            .read_exact_at(start, &mut frames)
            .map_err(io_err(&plain.path, "read"))?;
        // Check every frame again: bytes rotten since they were written
        // must not be sealed under a fresh block checksum.
        let mut at = 0usize;
        for j in k..k_end {
            let index = plain.first_index() + j as u64;
            match check_frame(&frames[at..]) {
                FrameCheck::Good {
                    index: found,
                    frame_len,
                    ..
                } if found == index => at += frame_len as usize,
                bad => {
                    return Err(corrupt(
                        &plain.path,
                        start + at as u64,
                        format!("while sealing: {} (index {index})", bad.describe()),
                    ));
                }
            }
        }
        let compressed = lz4_flex::block::compress(&frames);
        let first_index = plain.first_index() + k as u64;
        let block = BlockHeader::new(
            frames.len() as u32,
            first_index,
            (k_end - k) as u32,
            &compressed,
        );
        let mut record = Vec::with_capacity(BLOCK_HEADER_LEN as usize + compressed.len());
        record.extend_from_slice(&block.encode());
        record.extend_from_slice(&compressed);
        progress
            .out
            .write_all_at(progress.out_pos, &record)
            .map_err(io_err(&progress.tmp, "write"))?;
        progress.blocks.push(BlockRef {
            first_index,
            offset: progress.out_pos,
        });
        progress.out_pos += record.len() as u64;
        progress.next_entry = k_end;
        consumed += frames.len() as u64;
    }
    let marker = BlockHeader::new(0, plain.next_index(), plain.entry_count as u32, &[]);
    progress
        .out
        .write_all_at(progress.out_pos, &marker.encode())
        .map_err(io_err(&progress.tmp, "write"))?;
    Ok((consumed, true))
}

/// Installs a complete sealed file and removes the plain one. Crash-safe:
/// the sealed file is synced, renamed into place and the directory synced
/// before the plain file is removed; at open, a plain file wins over a
/// sealed one of the same name.
pub fn seal_finish(
    disk: &dyn Disk,
    dir: &Path,
    progress: SealProgress,
    plain: &Segment,
) -> Result<Segment, TlogError> {
    assert_eq!(progress.first_index, plain.first_index());
    progress
        .out
        .sync_data()
        .map_err(io_err(&progress.tmp, "fdatasync"))?;
    drop(progress.out);
    disk.rename(&progress.tmp, &progress.path)
        .map_err(io_err(&progress.tmp, "rename"))?;
    disk.sync_dir(dir).map_err(io_err(dir, "sync directory"))?;
    disk.remove(&plain.path)
        .map_err(io_err(&plain.path, "remove"))?;
    disk.sync_dir(dir).map_err(io_err(dir, "sync directory"))?;
    Ok(Segment {
        path: progress.path,
        header: progress.header,
        entry_count: plain.entry_count,
        last_term: plain.last_term,
        body: Body::Sealed {
            blocks: progress.blocks,
        },
    })
}

/// Rewrites a sealed segment as a plain one holding only its entries below
/// `keep_below`: the truncation of a suffix that reaches into a sealed
/// segment (preallocated to `max_size`, as it becomes the active segment).
/// Crash-safe like [`seal_finish`]: the plain file is installed (synced,
/// renamed, directory synced) before the sealed one is removed, and at open
/// a plain file wins over a sealed one of the same name.
pub fn unseal_prefix(
    disk: &dyn Disk,
    dir: &Path,
    sealed: &Segment,
    keep_below: u64,
    max_size: u64,
) -> Result<Segment, TlogError> {
    assert!(!sealed.is_plain());
    assert!(sealed.first_index() <= keep_below && keep_below <= sealed.next_index());
    let header = SegmentHeader {
        kind: SegmentKind::Plain,
        ..sealed.header
    };
    let mut entries = Vec::new();
    let mut budget = u64::MAX;
    read_entries(
        disk,
        sealed,
        sealed.first_index(),
        keep_below,
        &mut budget,
        &mut entries,
    )?;
    let mut bytes = header.encode().to_vec();
    let mut offsets = Vec::with_capacity(entries.len());
    for entry in &entries {
        offsets.push(bytes.len() as u32);
        encode_frame(&mut bytes, entry.index, entry.term, &entry.payload);
    }
    let path = segment_path(
        dir,
        header.generation,
        header.first_index,
        SegmentKind::Plain,
    );
    let file = install_file(disk, dir, &path, OpenMode::ReadWrite, |file, tmp| {
        file.write_all_at(0, &bytes).map_err(io_err(tmp, "write"))?;
        file.allocate(max_size).map_err(io_err(tmp, "allocate"))
    })?;
    disk.remove(&sealed.path)
        .map_err(io_err(&sealed.path, "remove"))?;
    disk.sync_dir(dir).map_err(io_err(dir, "sync directory"))?;
    Ok(Segment {
        path,
        header,
        entry_count: entries.len() as u64,
        last_term: entries.last().map_or(header.prev_term, |e| e.term),
        body: Body::Plain {
            file,
            offsets,
            len_bytes: bytes.len() as u64,
        },
    })
}

/// Where a read-only walk of one segment file ended.
#[derive(Debug, Clone, Copy)]
pub struct FileWalk {
    pub header: SegmentHeader,
    /// The index after the last entry visited.
    pub next_index: u64,
    /// Term of the last entry visited, or `header.prev_term`.
    pub last_term: u64,
    /// `each` asked to stop before the end.
    pub stopped: bool,
}

/// Walks one segment file without writing anything, checking every frame
/// and block as open does, calling `each(index, term, payload)` in order
/// until it breaks. Any damage, a torn final frame included (which open
/// would cut away in the last segment), is [`TlogError::Corrupt`].
pub fn walk_file(
    disk: &dyn Disk,
    path: &Path,
    mut each: impl FnMut(u64, u64, &[u8]) -> std::ops::ControlFlow<()>,
) -> Result<FileWalk, TlogError> {
    let file = disk
        .open(path, OpenMode::Read)
        .map_err(io_err(path, "open"))?;
    let file_len = file.len().map_err(io_err(path, "length of"))?;
    if file_len < SEGMENT_HEADER_LEN {
        return Err(corrupt(
            path,
            0,
            format!("{file_len} bytes, shorter than a segment header"),
        ));
    }
    let mut raw = [0u8; SEGMENT_HEADER_LEN as usize];
    file.read_exact_at(0, &mut raw)
        .map_err(io_err(path, "read"))?;
    let header = SegmentHeader::decode(&raw).map_err(|what| corrupt(path, 0, what))?;
    let mut walk = FileWalk {
        header,
        next_index: header.first_index,
        last_term: header.prev_term,
        stopped: false,
    };
    match header.kind {
        SegmentKind::Plain => {
            if file_len > u64::from(u32::MAX) {
                return Err(corrupt(
                    path,
                    0,
                    format!("plain segment of {file_len} bytes, above 4 GiB"),
                ));
            }
            let mut reader = WindowReader::new(file.as_ref(), path, file_len);
            let mut pos = SEGMENT_HEADER_LEN;
            while pos < file_len {
                let expected = walk.next_index;
                match reader.check_frame_at(pos)? {
                    FrameCheck::Good {
                        index,
                        term,
                        frame_len,
                    } => {
                        if index != expected {
                            return Err(corrupt(
                                path,
                                pos,
                                format!("frame holds index {index}, expected {expected}"),
                            ));
                        }
                        if term < walk.last_term {
                            return Err(corrupt(
                                path,
                                pos,
                                format!(
                                    "index {index} has term {term}, below the term {} before it",
                                    walk.last_term
                                ),
                            ));
                        }
                        let frame = reader.get(pos, frame_len)?;
                        walk.next_index = index + 1;
                        walk.last_term = term;
                        if each(index, term, frame_payload(frame)).is_break() {
                            walk.stopped = true;
                            return Ok(walk);
                        }
                        pos += frame_len;
                    }
                    bad => {
                        // Zeros to the end: preallocated space, a clean end.
                        if reader.next_nonzero(pos)?.is_none() {
                            break;
                        }
                        return Err(corrupt(
                            path,
                            pos,
                            format!(
                                "{} (index {expected}); if this is the last segment of a node \
                                 that crashed, it may be a torn final write, which the node \
                                 cuts away at its next start",
                                bad.describe()
                            ),
                        ));
                    }
                }
            }
            Ok(walk)
        }
        SegmentKind::Sealed => {
            let mut offset = SEGMENT_HEADER_LEN;
            let mut count = 0u64;
            loop {
                let Some(block) = read_block(file.as_ref(), path, file_len, offset)? else {
                    let mut raw = [0u8; BLOCK_HEADER_LEN as usize];
                    file.read_exact_at(offset, &mut raw)
                        .map_err(io_err(path, "read"))?;
                    let marker = BlockHeader::decode(&raw);
                    if marker.first_index != walk.next_index
                        || u64::from(marker.entry_count) != count
                    {
                        return Err(corrupt(
                            path,
                            offset,
                            "end marker does not match the blocks before it",
                        ));
                    }
                    if offset + BLOCK_HEADER_LEN != file_len {
                        return Err(corrupt(
                            path,
                            offset + BLOCK_HEADER_LEN,
                            "bytes after the end marker",
                        ));
                    }
                    return Ok(walk);
                };
                let mut stopped = false;
                let mut next_index = walk.next_index;
                walk.last_term =
                    walk_block(path, &block, walk.next_index, walk.last_term, |i, t, p| {
                        if !stopped {
                            next_index = i + 1;
                            stopped = each(i, t, p).is_break();
                        }
                    })?;
                if stopped {
                    walk.next_index = next_index;
                    walk.stopped = true;
                    return Ok(walk);
                }
                walk.next_index += u64::from(block.header.entry_count);
                count += u64::from(block.header.entry_count);
                offset += BLOCK_HEADER_LEN + u64::from(block.header.compressed_len);
            }
        }
    }
}
