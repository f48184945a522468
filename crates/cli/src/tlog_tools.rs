//! Arakoon's tlog tools, on a stopped node's tlog in our format (a
//! directory of CRC32C-framed segments, `.tlog` plain and `.tlz` sealed):
//!
//! - `--replay-tlogs TLOG_DIR DB [END_I]`: applies the tlog's entries
//!   after the store's applied index, up to `END_I` (default: the last), to
//!   the store file `DB` (made if missing), as a node applies them: the
//!   way to rebuild a store from a tlog, or bring a backup forward.
//! - `--truncate-tlog FILE`: cuts the newest segment of a tlog after its
//!   last whole entry, where damage stops a node's start. The node may
//!   have acknowledged the entries cut, so its hard state goes too: it
//!   recovers its votes from its peers before it votes again (the wiped
//!   node's path, `docs/ARCHITECTURE.md`), and takes the lost entries back
//!   from them.
//! - `--compress-tlog FILE`: seals the full plain segments of FILE's tlog
//!   (what the node does as segments fill); `--uncompress-tlog FILE`:
//!   rewrites a sealed segment as a plain one with the same entries (a
//!   node running with compression seals it again). Both open the tlog as a
//!   node does (a torn last entry is cut), on a stopped node.
//! - `--strip-tlog`, `--mark-tlog`, `--make-tlog`: Arakoon's tools for its
//!   tlog's clean-shutdown marker and file counter. Our tlog has neither
//!   (every entry is checked at start; segments are named by their first
//!   index), so each is refused saying so.

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::actions::{ActionError, FailureKind};
use crate::offline::{store_failure, tlog_failure};

/// Entries applied to the store in one transaction by `--replay-tlogs`.
const REPLAY_BATCH_ENTRIES: usize = 1000;
/// Largest entry payload decoded by `--replay-tlogs` (a node's entries are
/// far smaller; the tlog reader bounds frames anyway).
const REPLAY_PAYLOAD_MAX: usize = 256 << 20;

/// How often `--replay-tlogs` writes a plain progress line when standard
/// error is not a terminal.
const PROGRESS_LINE_INTERVAL: Duration = Duration::from_secs(2);

/// Progress of `--replay-tlogs` on standard error: a spinner with the
/// count and rate on a terminal (the total is not known before the walk),
/// otherwise a line every [`PROGRESS_LINE_INTERVAL`].
struct ReplayProgress {
    bar: Option<indicatif::ProgressBar>,
    done: u64,
    last_line: Instant,
}

impl ReplayProgress {
    fn new() -> ReplayProgress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            let style = indicatif::ProgressStyle::with_template(
                "replay-tlogs {spinner} {pos} entries applied ({per_sec})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
            bar.set_style(style);
            bar
        });
        ReplayProgress {
            bar,
            done: 0,
            last_line: Instant::now(),
        }
    }

    fn applied(&mut self, entries: u64, at: u64) {
        self.done += entries;
        if let Some(bar) = &self.bar {
            bar.set_position(self.done);
        } else if self.last_line.elapsed() >= PROGRESS_LINE_INTERVAL {
            self.last_line = Instant::now();
            eprintln!(
                "arakoon: replay-tlogs: {} entries applied (at i = {at})",
                self.done
            );
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn write_line(out: &mut dyn Write, what: &str, line: String) -> Result<(), ActionError> {
    out.write_all(line.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| ActionError::write_failed(what, &e))
}

/// `--replay-tlogs TLOG_DIR DB [END_I]`.
pub fn replay_tlogs(
    dir: &Path,
    tlx: Option<&Path>,
    db: &Path,
    end: Option<u64>,
    out: &mut dyn Write,
) -> Result<(), ActionError> {
    let what = format!("--replay-tlogs {} {}", dir.display(), db.display());
    let same_dir = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    if let Some(tlx) = tlx.filter(|t| !same_dir(t, dir)) {
        write_line(
            out,
            &what,
            format!(
                "note: {} is not read: sealed segments (.tlz) stay in the tlog directory here\n",
                tlx.display()
            ),
        )?;
    }
    let disk = disk::RealDisk::shared();
    let store = store::Store::open(disk.clone(), db, &store::StoreOptions::default())
        .map_err(|e| store_failure(&what, e))?;
    let start = store.applied_index();
    if end.is_some_and(|e| e <= start) {
        store.close().map_err(|e| store_failure(&what, e))?;
        return write_line(
            out,
            &what,
            format!("the store is at i = {start}, at or past END_I: nothing to replay\n"),
        );
    }
    let limits = protocol::Limits {
        max_buffer_size: REPLAY_PAYLOAD_MAX,
        ..protocol::Limits::default()
    };
    let mut batch: Vec<Vec<protocol::Update>> = Vec::with_capacity(REPLAY_BATCH_ENTRIES);
    let mut batch_first = start + 1;
    let mut next = start + 1;
    let mut failure: Option<ActionError> = None;
    let mut progress = ReplayProgress::new();
    let mut flush = |batch: &mut Vec<Vec<protocol::Update>>, first: u64| {
        if batch.is_empty() {
            return Ok(());
        }
        let count = batch.len() as u64;
        let applied = store.apply_entries(first, batch).map(|_| ());
        batch.clear();
        progress.applied(count, first + count - 1);
        applied
    };
    let walked = tlog::offline::walk_dir(&*disk, dir, |index, _term, payload| {
        if index < next {
            return ControlFlow::Continue(()); // the store has it
        }
        if end.is_some_and(|e| index > e) {
            return ControlFlow::Break(());
        }
        if index != next {
            failure = Some(ActionError::new(
                &what,
                format!(
                    "the store is at i = {}, and the tlog goes on at i = {index}: entries {next}..={} are missing from it (collapsed?)",
                    next - 1,
                    index - 1
                ),
            ));
            return ControlFlow::Break(());
        }
        let updates = if payload.is_empty() {
            Vec::new() // a master's barrier entry
        } else {
            match protocol::decode_batch(payload, &limits) {
                Ok(updates) => updates,
                Err(e) => {
                    failure = Some(ActionError::of_kind(
                        FailureKind::Damaged,
                        &what,
                        format!("entry {index}: {e}"),
                    ));
                    return ControlFlow::Break(());
                }
            }
        };
        batch.push(updates);
        next = index + 1;
        if batch.len() == REPLAY_BATCH_ENTRIES {
            if let Err(e) = flush(&mut batch, batch_first) {
                failure = Some(store_failure(&what, e));
                return ControlFlow::Break(());
            }
            batch_first = next;
        }
        ControlFlow::Continue(())
    });
    // What was decoded before a failure is still applied: each entry is
    // whole, and the store stays a prefix of the log.
    let flushed = flush(&mut batch, batch_first);
    progress.finish();
    walked.map_err(|e| tlog_failure(&what, e))?;
    if let Some(e) = failure {
        return Err(e);
    }
    flushed.map_err(|e| store_failure(&what, e))?;
    let applied = store.checkpoint().map_err(|e| store_failure(&what, e))?;
    store.close().map_err(|e| store_failure(&what, e))?;
    assert_eq!(applied, next - 1, "the store holds what was replayed");
    let mut line = format!(
        "replayed {} entries: the store is at i = {applied} (was {start})\n",
        applied - start
    );
    if end.is_some_and(|e| e > applied) {
        line.push_str(&format!(
            "the tlog ends at i = {applied}, before END_I = {}\n",
            end.unwrap_or_default()
        ));
    }
    line.push_str(
        "note: the last entries of a node's tlog may never have been committed; \
         give END_I to stop at an index known committed\n",
    );
    write_line(out, &what, line)
}

/// `--truncate-tlog FILE`.
pub fn truncate_tlog(file: &Path, out: &mut dyn Write) -> Result<(), ActionError> {
    let what = format!("--truncate-tlog {}", file.display());
    let refuse = |why: String| Err(ActionError::new(&what, why));
    let Some(name) = file.file_name().and_then(|n| n.to_str()) else {
        return refuse("not a file name".to_string());
    };
    if !tlog::is_tlog_file(name) {
        return refuse(format!("{name} is not a tlog segment (.tlog or .tlz)"));
    }
    if !name.ends_with(".tlog") {
        return refuse(
            "a sealed segment (.tlz) is never written again: it has no torn end to cut; \
             damage inside it stops the node's start (docs/operations.md, \"A corrupt tlog\")"
                .to_string(),
        );
    }
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let disk = disk::RealDisk::shared();
    let (_, files) =
        tlog::offline::segment_files(&*disk, dir).map_err(|e| tlog_failure(&what, e))?;
    let newest = files.last().map(|f| f.path.as_path());
    if newest.and_then(|p| p.file_name()) != file.file_name() {
        return refuse(format!(
            "not the newest segment of the tlog in {}: cutting it would leave a gap",
            dir.display()
        ));
    }
    let mut last = None;
    let walked = tlog::offline::walk_segment_file(&*disk, file, |index, _, _| {
        last = Some(index);
        ControlFlow::Continue(())
    });
    let offset = match walked {
        Ok(summary) => {
            return write_line(
                out,
                &what,
                format!(
                    "nothing to cut: every entry is whole (the last is i = {})\n",
                    summary.next_index.saturating_sub(1)
                ),
            )
        }
        Err(tlog::TlogError::Corrupt {
            offset, what: why, ..
        }) => {
            if offset < tlog::SEGMENT_HEADER_LEN {
                return refuse(format!(
                    "the segment's header is damaged ({why}): nothing of it can be kept"
                ));
            }
            write_line(out, &what, format!("damage at byte {offset}: {why}\n"))?;
            offset
        }
        Err(e) => return Err(tlog_failure(&what, e)),
    };
    // The entries cut may have been acknowledged: the node forgets its
    // votes (and recovers them, and the entries, from its peers). First,
    // durably: a crash between the two steps then leaves a node that
    // recovers (its tlog still damaged, so it does not start until the
    // tool is run again), never one that trusts a tlog missing what it
    // acknowledged.
    let hard_state = dir.join(tlog::HARD_STATE_FILE);
    let forgot = match std::fs::remove_file(&hard_state) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            return refuse(format!(
                "the hard state {} could not be removed ({e}): nothing was cut (the node \
                 may have acknowledged the entries a cut would drop)",
                hard_state.display()
            ))
        }
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ActionError::new(&what, format!("fsync {}: {e}", dir.display())))?;
    let cut = std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .and_then(|f| {
            f.set_len(offset)?;
            f.sync_all()
        });
    cut.map_err(|e| ActionError::new(&what, format!("cut at byte {offset}: {e}")))?;
    let kept = last.map_or_else(|| "none".to_string(), |i| format!("up to i = {i}"));
    let mut line = format!("cut at byte {offset}: entries kept {kept}\n");
    if forgot {
        line.push_str(
            "the node's hard state was removed: it recovers its votes and the entries cut \
             from its peers before it votes again\n",
        );
    }
    write_line(out, &what, line)
}

/// `--strip-tlog`, `--mark-tlog`, `--make-tlog`: refused, saying why.
pub fn no_marker(flag: &str) -> ActionError {
    let why = match flag {
        "--make-tlog" => {
            "our tlog segments are named by their first index and made by the node; there is \
             no file counter to start from (a node whose store is ahead of its tlog rebases \
             its tlog itself: --inject-as-head)"
        }
        _ => {
            "our tlog has no clean-shutdown marker: a node checks every entry's CRC at start \
             and cuts a torn last entry itself (for damage, --truncate-tlog)"
        }
    };
    ActionError::new(flag, why)
}

/// The segment file `file` of its tlog directory, and the directory's
/// segments, for `--compress-tlog` / `--uncompress-tlog`.
fn segment_of(
    file: &Path,
    what: &str,
) -> Result<(std::path::PathBuf, tlog::offline::SegmentFile, bool), ActionError> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let disk = disk::RealDisk::shared();
    let (_, files) =
        tlog::offline::segment_files(&*disk, &dir).map_err(|e| tlog_failure(what, e))?;
    let position = files
        .iter()
        .position(|f| f.path.file_name() == file.file_name())
        .ok_or_else(|| {
            ActionError::new(
                what,
                format!(
                    "not a segment of the tlog in {} (its segments: .tlog and .tlz files named by their first index)",
                    dir.display()
                ),
            )
        })?;
    let newest = position + 1 == files.len();
    Ok((dir, files[position].clone(), newest))
}

/// Opens a stopped node's tlog for a tool that only seals or unseals:
/// the active segment's preallocation is left as it is.
fn open_for_tool(dir: &Path, what: &str) -> Result<tlog::Tlog, ActionError> {
    let disk = disk::RealDisk::shared();
    let (_, files) =
        tlog::offline::segment_files(&*disk, dir).map_err(|e| tlog_failure(what, e))?;
    let active_len = files
        .last()
        .and_then(|f| std::fs::metadata(&f.path).ok())
        .map_or(tlog::DEFAULT_MAX_SIZE, |m| m.len());
    let options = tlog::TlogOptions {
        max_entries: tlog::MAX_ENTRIES_LIMIT,
        max_size: active_len.clamp(tlog::MIN_SIZE_LIMIT, tlog::MAX_SIZE_LIMIT),
        compression: tlog::Compression::Lz4,
    };
    tlog::Tlog::open(disk, dir.to_path_buf(), options).map_err(|e| tlog_failure(what, e))
}

/// `--compress-tlog FILE`: seals the full plain segments of FILE's tlog
/// (FILE among them) into `.tlz`, as the node does when it runs.
pub fn compress_tlog(file: &Path, out: &mut dyn Write) -> Result<(), ActionError> {
    let what = format!("--compress-tlog {}", file.display());
    let (dir, segment, newest) = segment_of(file, &what)?;
    if segment.sealed {
        return write_line(
            out,
            &what,
            "already sealed (.tlz): nothing to do\n".to_string(),
        );
    }
    if newest {
        return Err(ActionError::new(
            &what,
            "the newest segment is the one the node appends to: it is sealed once full",
        ));
    }
    let mut log = open_for_tool(&dir, &what)?;
    let sealed = log
        .seal_full_segments()
        .map_err(|e| tlog_failure(&what, e))?;
    write_line(
        out,
        &what,
        format!(
            "sealed {sealed} full segment(s) of the tlog in {} into .tlz\n",
            dir.display()
        ),
    )
}

/// `--uncompress-tlog FILE`: rewrites the sealed segment FILE (`.tlz`) as
/// a plain `.tlog` with the same entries. A node running with compression
/// on seals it again.
pub fn uncompress_tlog(file: &Path, out: &mut dyn Write) -> Result<(), ActionError> {
    let what = format!("--uncompress-tlog {}", file.display());
    let (dir, segment, _) = segment_of(file, &what)?;
    if !segment.sealed {
        return write_line(
            out,
            &what,
            "already plain (.tlog): nothing to do\n".to_string(),
        );
    }
    let mut log = open_for_tool(&dir, &what)?;
    let done = log
        .unseal(segment.first_index)
        .map_err(|e| tlog_failure(&what, e))?;
    assert!(done, "a sealed segment file is loaded sealed");
    write_line(
        out,
        &what,
        format!(
            "rewritten as a plain segment ({}.tlog beside it, the .tlz removed)\n",
            file.with_extension("").display()
        ),
    )
}
