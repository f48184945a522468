//! Opening the tlog: finding the segments and the hard state a crash left,
//! checking every frame, cutting a torn tail of the last segment, and
//! refusing, by file and offset, any other damage. What runs afterwards is
//! in `log.rs`.

use super::{next_sync_epoch, Tlog, TlogOptions};
use crate::error::{corrupt, io_err, TlogError};
use crate::format::{
    decode_base, decode_hard_state, parse_segment_name, Base, HardState, SegmentHeader,
    SegmentKind, BASE_FILE, BASE_LEN, HARD_STATE_FILE, HARD_STATE_LEN, HARD_STATE_V1_LEN,
    INDEX_MAX, SEGMENT_HEADER_LEN, TMP_SUFFIX,
};
use crate::segment::{self, Body, Segment};
use crate::terms::TermRuns;
use disk::{DiskFile, DiskRef, OpenMode};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Reads a small fixed-size file, refusing any other length before reading.
fn read_small_file(disk: &DiskRef, path: &Path, len: usize) -> Result<Option<Vec<u8>>, TlogError> {
    if !disk.exists(path) {
        return Ok(None);
    }
    let file = disk
        .open(path, OpenMode::Read)
        .map_err(io_err(path, "open"))?;
    let file_len = file.len().map_err(io_err(path, "length of"))?;
    if file_len != len as u64 {
        return Err(corrupt(
            path,
            0,
            format!("{file_len} bytes, expected {len}"),
        ));
    }
    let mut bytes = vec![0u8; len];
    file.read_exact_at(0, &mut bytes)
        .map_err(io_err(path, "read"))?;
    Ok(Some(bytes))
}

impl Tlog {
    /// Opens the tlog in `dir` (created if missing), recovering after a crash:
    /// a torn final frame of the last segment is cut away (logged); any other
    /// damage is an error naming the file and byte offset.
    pub fn open(disk: DiskRef, dir: PathBuf, options: TlogOptions) -> Result<Tlog, TlogError> {
        options.validate()?;
        if !disk.exists(&dir) {
            disk.create_dir_all(&dir)
                .map_err(io_err(&dir, "create directory"))?;
            // The new directory's name must be durable before anything in it
            // (the hard state above all) is relied on.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                disk.sync_dir(parent)
                    .map_err(io_err(parent, "sync directory"))?;
            }
        }

        let hard_state_path = dir.join(HARD_STATE_FILE);
        let (hard_state, hard_state_unreadable) = Self::read_hard_state(&disk, &hard_state_path)?;
        let base_path = dir.join(BASE_FILE);
        let base = match read_small_file(&disk, &base_path, BASE_LEN)? {
            None => Base::default(),
            Some(bytes) => {
                decode_base(&bytes).map_err(|(offset, what)| corrupt(&base_path, offset, what))?
            }
        };
        if base.index > INDEX_MAX {
            return Err(corrupt(
                &base_path,
                16,
                format!("base index {} above {INDEX_MAX}", base.index),
            ));
        }

        let ordered = Self::list_segments(&disk, &dir, &base)?;
        let mut segments: Vec<Segment> = Vec::with_capacity(ordered.len());
        let mut terms = TermRuns::new(base.index, base.term);
        for (k, (first_index, kind)) in ordered.iter().copied().enumerate() {
            let is_last = k + 1 == ordered.len();
            let segment = Self::load_segment(
                &disk,
                &dir,
                &options,
                &base,
                first_index,
                kind,
                segments.last(),
                is_last,
                &mut terms,
            )?;
            segments.push(segment);
        }
        let generation = base.generation;
        let active_header = match segments.last() {
            None => Some(SegmentHeader {
                kind: SegmentKind::Plain,
                generation,
                first_index: base.index + 1,
                prev_term: base.term,
            }),
            Some(last) if !last.is_plain() => Some(SegmentHeader {
                kind: SegmentKind::Plain,
                generation,
                first_index: last.next_index(),
                prev_term: last.last_term,
            }),
            Some(_) => None,
        };
        if let Some(header) = active_header {
            segments.push(segment::create_plain(
                disk.as_ref(),
                &dir,
                header,
                options.max_size,
            )?);
        }
        let Some(active) = segments.last() else {
            unreachable!("an active segment was created above if there was none");
        };
        // What we read may sit only in the page cache (after a process crash,
        // not a power loss); one fdatasync makes `synced_index` true, and the
        // active segment's preallocation (see `load_segment`) durable.
        active
            .plain_file()
            .sync_data()
            .map_err(io_err(&active.path, "fdatasync"))?;
        let tlog = Tlog {
            disk,
            dir,
            options,
            generation,
            segments,
            synced_index: terms.last_index(),
            terms,
            sync_epoch: next_sync_epoch(),
            hard_state,
            hard_state_unreadable,
            poisoned: None,
            sealing: None,
            appended_bytes_since_seal_step: 0,
        };
        tlog.assert_invariants();
        Ok(tlog)
    }

    /// Lists the segment files of the current generation, ascending, after
    /// removing leftovers: temporary files, segments of an older generation
    /// (an interrupted `reset`), a sealed copy next to its plain file (an
    /// interrupted seal or truncation; the plain file is the truth).
    fn list_segments(
        disk: &DiskRef,
        dir: &Path,
        base: &Base,
    ) -> Result<Vec<(u64, SegmentKind)>, TlogError> {
        let names = disk.list(dir).map_err(io_err(dir, "list"))?;
        let mut found: BTreeMap<u64, (bool, bool)> = BTreeMap::new();
        let mut leftovers: Vec<(String, String)> = Vec::new();
        for name in names {
            if name == HARD_STATE_FILE || name == BASE_FILE {
                continue;
            }
            if name.ends_with(TMP_SUFFIX) {
                if crate::is_tlog_file(&name) {
                    leftovers.push((name, "temporary file of an interrupted write".to_owned()));
                }
                continue;
            }
            let Some((generation, first_index, kind)) = parse_segment_name(&name) else {
                if name.ends_with(".tlog") || name.ends_with(".tlz") {
                    tracing::warn!(file = %dir.join(&name).display(), "tlog: ignoring a file named like a segment that is not one");
                }
                continue;
            };
            if generation < base.generation {
                leftovers.push((
                    name,
                    format!(
                        "segment of generation {generation}, before the reset to {}",
                        base.generation
                    ),
                ));
                continue;
            }
            if generation > base.generation {
                return Err(corrupt(
                    &dir.join(&name),
                    0,
                    format!(
                        "segment of generation {generation}, newer than the base file's {}",
                        base.generation
                    ),
                ));
            }
            let slot = found.entry(first_index).or_default();
            match kind {
                SegmentKind::Plain => slot.0 = true,
                SegmentKind::Sealed => slot.1 = true,
            }
        }
        let mut ordered = Vec::with_capacity(found.len());
        for (first_index, (plain, sealed)) in found {
            if plain && sealed {
                let name = crate::format::segment_file_name(
                    base.generation,
                    first_index,
                    SegmentKind::Sealed,
                );
                leftovers.push((
                    name,
                    "sealed copy of a segment whose plain file is still there".to_owned(),
                ));
            }
            ordered.push((
                first_index,
                if plain {
                    SegmentKind::Plain
                } else {
                    SegmentKind::Sealed
                },
            ));
        }
        // Segments wholly at or below the base index are leftovers of an
        // interrupted collapse (the base file is its commit point). Only
        // names are known here: a segment ends where the next one starts.
        while ordered.len() >= 2 && ordered[1].0 <= base.index + 1 {
            let (first_index, kind) = ordered.remove(0);
            let name = crate::format::segment_file_name(base.generation, first_index, kind);
            leftovers.push((
                name,
                format!("segment below the base index {}, collapsed", base.index),
            ));
        }
        for (name, why) in &leftovers {
            let path = dir.join(name);
            tracing::info!(file = %path.display(), why = %why, "tlog: removing a leftover file");
            disk.remove(&path).map_err(io_err(&path, "remove"))?;
        }
        if !leftovers.is_empty() {
            disk.sync_dir(dir).map_err(io_err(dir, "sync directory"))?;
        }
        Ok(ordered)
    }

    #[allow(clippy::too_many_arguments)]
    fn load_segment(
        disk: &DiskRef,
        dir: &Path,
        options: &TlogOptions,
        base: &Base,
        first_index: u64,
        kind: SegmentKind,
        previous: Option<&Segment>,
        is_last: bool,
        terms: &mut TermRuns,
    ) -> Result<Segment, TlogError> {
        let path = crate::format::segment_path(dir, base.generation, first_index, kind);
        let mode = match kind {
            SegmentKind::Plain => OpenMode::ReadWrite,
            SegmentKind::Sealed => OpenMode::Read,
        };
        let file: Arc<dyn DiskFile> =
            Arc::from(disk.open(&path, mode).map_err(io_err(&path, "open"))?);
        let file_len = file.len().map_err(io_err(&path, "length of"))?;
        if file_len < SEGMENT_HEADER_LEN {
            return Err(corrupt(
                &path,
                0,
                format!("{file_len} bytes, shorter than a segment header"),
            ));
        }
        let mut raw = [0u8; SEGMENT_HEADER_LEN as usize];
        file.read_exact_at(0, &mut raw)
            .map_err(io_err(&path, "read"))?;
        let header = SegmentHeader::decode(&raw).map_err(|what| corrupt(&path, 0, what))?;
        if header.kind != kind
            || header.generation != base.generation
            || header.first_index != first_index
        {
            return Err(corrupt(
                &path,
                0,
                format!("segment header {header:?} does not match the file name"),
            ));
        }
        if first_index > INDEX_MAX {
            return Err(corrupt(
                &path,
                0,
                format!("first index {first_index} above {INDEX_MAX}"),
            ));
        }
        match previous {
            None => {
                // The base file names where the log starts (set by reset and
                // collapse): a first segment elsewhere means one is missing.
                if first_index != base.index + 1 {
                    return Err(corrupt(
                        &path,
                        0,
                        format!(
                            "the log starts at index {first_index}, the base file says after {}: a segment is missing",
                            base.index
                        ),
                    ));
                }
                if header.prev_term != base.term {
                    return Err(corrupt(
                        &path,
                        0,
                        format!(
                            "term before the first entry is {}, the base file says {}",
                            header.prev_term, base.term
                        ),
                    ));
                }
                *terms = TermRuns::new(first_index - 1, header.prev_term);
            }
            Some(previous) => {
                if first_index != previous.next_index() {
                    return Err(corrupt(
                        &path,
                        0,
                        format!(
                            "gap: starts at index {first_index}, {} ends before {}",
                            previous.path.display(),
                            previous.next_index()
                        ),
                    ));
                }
                if header.prev_term != previous.last_term {
                    return Err(corrupt(
                        &path,
                        0,
                        format!(
                            "term before the first entry is {}, {} ends with term {}",
                            header.prev_term,
                            previous.path.display(),
                            previous.last_term
                        ),
                    ));
                }
            }
        }
        let push = |index: u64, term: u64| terms.push(index, term);
        let segment = match kind {
            SegmentKind::Plain => {
                let scan = segment::scan_plain(file.as_ref(), &path, &header, is_last, push)?;
                if let Some((offset, what)) = &scan.torn {
                    tracing::warn!(
                        file = %path.display(),
                        offset,
                        what = %what,
                        dropped_bytes = file_len - offset,
                        "tlog: cutting away a torn final frame"
                    );
                    // Cut, then allocate again: the torn bytes become zeros
                    // (free space), never mistaken for a frame later.
                    file.set_len(*offset).map_err(io_err(&path, "truncate"))?;
                    file.allocate(options.max_size)
                        .map_err(io_err(&path, "allocate"))?;
                    file.sync_data().map_err(io_err(&path, "fdatasync"))?;
                } else if is_last {
                    // The active segment is preallocated (a no-op unless it
                    // was written by a version that did not, or `max_size`
                    // grew); open's final fdatasync makes it durable.
                    file.allocate(options.max_size)
                        .map_err(io_err(&path, "allocate"))?;
                }
                Segment {
                    path,
                    header,
                    entry_count: scan.entry_count,
                    last_term: scan.last_term,
                    body: Body::Plain {
                        file,
                        offsets: scan.offsets,
                        len_bytes: scan.len_bytes,
                    },
                }
            }
            SegmentKind::Sealed => {
                let scan = segment::scan_sealed(file.as_ref(), &path, &header, push)?;
                Segment {
                    path,
                    header,
                    entry_count: scan.entry_count,
                    last_term: scan.last_term,
                    body: Body::Sealed {
                        blocks: scan.blocks,
                    },
                }
            }
        };
        Ok(segment)
    }

    /// Reads the hard-state file: `(state, why unreadable)`. A missing file
    /// is `(None, None)`; a damaged one `(None, Some(reason))`, not an error
    /// (the node recovers its promises from its peers); a failing read of
    /// the disk is an error.
    fn read_hard_state(
        disk: &DiskRef,
        path: &Path,
    ) -> Result<(Option<HardState>, Option<String>), TlogError> {
        if !disk.exists(path) {
            return Ok((None, None));
        }
        let file = disk
            .open(path, OpenMode::Read)
            .map_err(io_err(path, "open"))?;
        let file_len = file.len().map_err(io_err(path, "length of"))?;
        if file_len != HARD_STATE_LEN as u64 && file_len != HARD_STATE_V1_LEN as u64 {
            let why = corrupt(
                path,
                0,
                format!("{file_len} bytes, expected {HARD_STATE_LEN}"),
            );
            return Ok((None, Some(why.to_string())));
        }
        let mut bytes = vec![0u8; file_len as usize];
        file.read_exact_at(0, &mut bytes)
            .map_err(io_err(path, "read"))?;
        match decode_hard_state(&bytes) {
            Ok(state) => Ok((Some(state), None)),
            Err((offset, what)) => Ok((None, Some(corrupt(path, offset, what).to_string()))),
        }
    }
}
