//! Read-only walks of a tlog for the offline tools (`arakoon --dump-tlog`):
//! one segment file, or a whole tlog directory as [`crate::Tlog::open`]
//! would load it, but without writing anything (no leftover is removed, no
//! torn tail cut, nothing allocated or synced). Entries are visited one at
//! a time: a plain segment is read through a 1 MiB window, a sealed one a
//! block (about 64 KiB) at a time, so a walk never holds a segment.

use crate::error::{corrupt, io_err, TlogError};
use crate::format::{decode_base, parse_segment_name, Base, SegmentKind, BASE_FILE, BASE_LEN};
use crate::segment;
use disk::Disk;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// One segment file of a tlog directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFile {
    pub path: PathBuf,
    /// From the file name (checked against the header when walked).
    pub first_index: u64,
    /// Compressed (`.tlz`), never written again.
    pub sealed: bool,
}

/// What a walk visited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkSummary {
    /// Entries passed to the visitor.
    pub entries: u64,
    /// The index after the last entry visited (for a directory, entries at
    /// or below the base index, leftovers of a collapse, are not visited).
    pub next_index: u64,
    /// Segment files read.
    pub segment_files: u64,
    /// The visitor asked to stop before the end.
    pub stopped: bool,
}

/// Walks one segment file (plain `.tlog` or sealed `.tlz`), checking every
/// frame; `each(index, term, payload)` is called in order until it breaks.
/// Damage anywhere, a torn final frame included, is [`TlogError::Corrupt`]
/// naming the file and byte offset; the entries before it have been visited.
pub fn walk_segment_file(
    disk: &dyn Disk,
    path: &Path,
    each: impl FnMut(u64, u64, &[u8]) -> ControlFlow<()>,
) -> Result<WalkSummary, TlogError> {
    let mut entries = 0u64;
    let mut each = each;
    let walk = segment::walk_file(disk, path, |i, t, p| {
        entries += 1;
        each(i, t, p)
    })?;
    Ok(WalkSummary {
        entries,
        next_index: walk.next_index,
        segment_files: 1,
        stopped: walk.stopped,
    })
}

fn read_base(disk: &dyn Disk, dir: &Path) -> Result<Base, TlogError> {
    let path = dir.join(BASE_FILE);
    if !disk.exists(&path) {
        return Ok(Base::default());
    }
    let bytes = disk::read_all(disk, &path).map_err(io_err(&path, "read"))?;
    if bytes.len() != BASE_LEN {
        return Err(corrupt(
            &path,
            0,
            format!("{} bytes, expected {BASE_LEN}", bytes.len()),
        ));
    }
    decode_base(&bytes).map_err(|(offset, what)| corrupt(&path, offset, what))
}

/// The segment files of the current generation in `dir`, ascending, as
/// [`crate::Tlog::open`] would load them: older generations (an interrupted
/// reset) and a sealed copy beside its plain file (an interrupted seal) are
/// left out; a newer generation than the base file's is damage. Nothing is
/// removed. Also returns the base index (entries at or below it are
/// collapsed).
pub fn segment_files(disk: &dyn Disk, dir: &Path) -> Result<(u64, Vec<SegmentFile>), TlogError> {
    let base = read_base(disk, dir)?;
    let names = disk.list(dir).map_err(io_err(dir, "list"))?;
    // first index -> (plain, sealed)
    let mut found: BTreeMap<u64, (bool, bool)> = BTreeMap::new();
    for name in names {
        let Some((generation, first_index, kind)) = parse_segment_name(&name) else {
            continue;
        };
        if generation < base.generation {
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
    let mut files: Vec<SegmentFile> = found
        .into_iter()
        .map(|(first_index, (plain, _sealed))| {
            let kind = if plain {
                SegmentKind::Plain
            } else {
                SegmentKind::Sealed
            };
            SegmentFile {
                path: crate::format::segment_path(dir, base.generation, first_index, kind),
                first_index,
                sealed: !plain,
            }
        })
        .collect();
    // Wholly at or below the base: leftovers of an interrupted collapse.
    while files.len() >= 2 && files[1].first_index <= base.index + 1 {
        files.remove(0);
    }
    Ok((base.index, files))
}

/// Walks every entry of the tlog in directory `dir` above its base index,
/// in order, checking every frame, that the segments follow each other
/// without a gap and that terms never go down. `each` as in
/// [`walk_segment_file`]. Writes nothing.
pub fn walk_dir(
    disk: &dyn Disk,
    dir: &Path,
    mut each: impl FnMut(u64, u64, &[u8]) -> ControlFlow<()>,
) -> Result<WalkSummary, TlogError> {
    let (base_index, files) = segment_files(disk, dir)?;
    let mut summary = WalkSummary {
        entries: 0,
        next_index: base_index + 1,
        segment_files: 0,
        stopped: false,
    };
    let mut previous: Option<(PathBuf, u64, u64)> = None; // path, next index, last term
    for file in &files {
        let mut entries = 0u64;
        let walk = segment::walk_file(disk, &file.path, |i, t, p| {
            if i <= base_index {
                return ControlFlow::Continue(());
            }
            entries += 1;
            each(i, t, p)
        })?;
        summary.segment_files += 1;
        summary.entries += entries;
        if walk.header.first_index != file.first_index {
            return Err(corrupt(
                &file.path,
                0,
                format!(
                    "the header says first index {}, the file name {}",
                    walk.header.first_index, file.first_index
                ),
            ));
        }
        match &previous {
            None if file.first_index > base_index + 1 => {
                return Err(corrupt(
                    &file.path,
                    0,
                    format!(
                        "the log starts at index {}, the base file says after {base_index}: a segment is missing",
                        file.first_index
                    ),
                ));
            }
            Some((path, next, last_term)) => {
                if file.first_index != *next {
                    return Err(corrupt(
                        &file.path,
                        0,
                        format!(
                            "gap: starts at index {}, {} ends before {next}",
                            file.first_index,
                            path.display()
                        ),
                    ));
                }
                if walk.header.prev_term != *last_term {
                    return Err(corrupt(
                        &file.path,
                        0,
                        format!(
                            "term before the first entry is {}, {} ends with term {last_term}",
                            walk.header.prev_term,
                            path.display()
                        ),
                    ));
                }
            }
            None => {}
        }
        summary.next_index = summary.next_index.max(walk.next_index);
        if walk.stopped {
            summary.stopped = true;
            return Ok(summary);
        }
        previous = Some((file.path.clone(), walk.next_index, walk.last_term));
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Compression, Entry, Tlog, TlogOptions};

    fn entries(from: u64, to: u64) -> Vec<Entry> {
        (from..=to)
            .map(|index| Entry {
                index,
                term: 1 + index / 40,
                payload: format!("payload {index}").into_bytes(),
            })
            .collect()
    }

    /// Rule: the offline walk sees exactly what the log holds, across plain
    /// and sealed segments and above a collapse's base, and writes nothing.
    #[test]
    fn walk_dir_sees_what_read_returns_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("tlog");
        let disk = disk::RealDisk::shared();
        let options = TlogOptions {
            max_entries: 16,
            compression: Compression::Lz4,
            ..TlogOptions::default()
        };
        let mut log = Tlog::open(disk.clone(), path.clone(), options).expect("open");
        log.append(&entries(1, 100)).expect("append");
        log.sync().expect("sync");
        log.seal_full_segments().expect("seal");
        log.collapse(40).expect("collapse");
        let held = log.read(log.first_index(), 101, u64::MAX).expect("read");
        drop(log);
        let listing = |p: &Path| {
            let mut names: Vec<_> = std::fs::read_dir(p)
                .expect("list")
                .map(|e| {
                    let e = e.expect("entry");
                    (e.file_name(), e.metadata().expect("metadata").len())
                })
                .collect();
            names.sort();
            names
        };
        let before = listing(&path);

        let mut seen = Vec::new();
        let summary = walk_dir(disk.as_ref(), &path, |index, term, payload| {
            seen.push(Entry {
                index,
                term,
                payload: payload.to_vec(),
            });
            ControlFlow::Continue(())
        })
        .expect("walk");
        assert_eq!(seen, held);
        assert_eq!(summary.entries, held.len() as u64);
        assert_eq!(summary.next_index, 101);
        assert!(!summary.stopped);
        assert_eq!(listing(&path), before, "the walk wrote");

        let mut count = 0;
        let summary = walk_dir(disk.as_ref(), &path, |_, _, _| {
            count += 1;
            if count == 5 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .expect("walk");
        assert!(summary.stopped);
        assert_eq!(summary.entries, 5);
    }
}
