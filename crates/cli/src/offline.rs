//! The offline tools, on a stopped node's files: Arakoon's `--dump-tlog`,
//! `--dump-store`, `--inspect-store` and `--verify-db`, doing the same jobs
//! on our formats (the tlog is a directory of CRC32C-framed segments, some
//! lz4-sealed: the `tlog` crate; the store is one redb file: the `store`
//! crate).
//!
//! Every tool streams: one tlog entry, one store pair at a time, so a dump
//! of a large tlog or store holds neither in memory. `--dump-tlog`,
//! `--dump-store` and `--inspect-store` never write the files (a store not
//! closed cleanly is refused, not repaired). `--verify-db` opens the store
//! as a node does: it checks every page's checksum, and repairs a store left
//! by a crash as the node's next start would, then checkpoints; so it is
//! for a stopped node only, like the others.

use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::Path;
use std::time::{Duration, Instant};

use client::Escaped;
use protocol::{KeyRange, Update};

use crate::actions::{ActionError, FailureKind};
use crate::args::OfflineTool;

/// redb's page cache of the read-only tools.
const READ_CACHE_BYTES: usize = 16 << 20;
/// How often `--verify-db` writes a plain progress line when standard error
/// is not a terminal.
const PROGRESS_LINE_INTERVAL: Duration = Duration::from_secs(2);

/// Runs `tool`, writing its answer to `out`.
pub fn run(tool: &OfflineTool, out: &mut dyn Write) -> Result<(), ActionError> {
    match tool {
        OfflineTool::DumpTlog { path, values } => dump_tlog(path, *values, out),
        OfflineTool::DumpStore { path } => dump_store(path, out),
        OfflineTool::InspectStore {
            path,
            left,
            right,
            max,
        } => inspect_store(path, left.as_deref(), right.as_deref(), *max, out),
        OfflineTool::VerifyDb { path } => verify_db(path, out),
        OfflineTool::OptimizeDb { path } => optimize_db(path, out),
        OfflineTool::ReplayTlogs { dir, tlx, db, end } => {
            crate::tlog_tools::replay_tlogs(dir, tlx.as_deref(), db, *end, out)
        }
        OfflineTool::TruncateTlog { path } => crate::tlog_tools::truncate_tlog(path, out),
        OfflineTool::CompressTlog { path } => crate::tlog_tools::compress_tlog(path, out),
        OfflineTool::UncompressTlog { path } => crate::tlog_tools::uncompress_tlog(path, out),
        OfflineTool::NoMarker { flag, .. } => Err(crate::tlog_tools::no_marker(flag)),
    }
}

/// How the tool is named in an error line.
pub fn describe(tool: &OfflineTool) -> String {
    let (flag, path) = match tool {
        OfflineTool::DumpTlog { path, .. } => ("--dump-tlog", path),
        OfflineTool::DumpStore { path } => ("--dump-store", path),
        OfflineTool::InspectStore { path, .. } => ("--inspect-store", path),
        OfflineTool::VerifyDb { path } => ("--verify-db", path),
        OfflineTool::OptimizeDb { path } => ("--optimize-db-offline", path),
        OfflineTool::ReplayTlogs { dir, .. } => ("--replay-tlogs", dir),
        OfflineTool::TruncateTlog { path } => ("--truncate-tlog", path),
        OfflineTool::CompressTlog { path } => ("--compress-tlog", path),
        OfflineTool::UncompressTlog { path } => ("--uncompress-tlog", path),
        OfflineTool::NoMarker { flag, path } => (*flag, path),
    };
    format!("{flag} {}", path.display())
}

pub(crate) fn tlog_failure(what: &str, error: tlog::TlogError) -> ActionError {
    let kind = match error {
        tlog::TlogError::Corrupt { .. } => FailureKind::Damaged,
        _ => FailureKind::Refused,
    };
    ActionError::of_kind(kind, what, error)
}

pub(crate) fn store_failure(what: &str, error: store::StoreError) -> ActionError {
    let kind = match error {
        store::StoreError::Io { .. } | store::StoreError::NeedsRepair { .. } => {
            FailureKind::Refused
        }
        _ => FailureKind::Damaged,
    };
    ActionError::of_kind(kind, what, error)
}

/// `--dump-tlog FILE`: one line per entry, `index:term:updates`.
fn dump_tlog(path: &Path, values: bool, out: &mut dyn Write) -> Result<(), ActionError> {
    let what = format!("--dump-tlog {}", path.display());
    let limits = protocol::Limits {
        max_buffer_size: usize::try_from(tlog::PAYLOAD_LEN_MAX).unwrap_or(usize::MAX),
        ..protocol::Limits::default()
    };
    let mut line = String::new();
    let mut write_error = None;
    let visit = |index: u64, term: u64, payload: &[u8]| {
        line.clear();
        render_entry(index, term, payload, values, &limits, &mut line);
        match out.write_all(line.as_bytes()) {
            Ok(()) => ControlFlow::Continue(()),
            Err(e) => {
                write_error = Some(e);
                ControlFlow::Break(())
            }
        }
    };
    let disk = disk::RealDisk;
    let walked = if path.is_dir() {
        tlog::offline::walk_dir(&disk, path, visit)
    } else {
        tlog::offline::walk_segment_file(&disk, path, visit)
    };
    if let Some(e) = write_error {
        return Err(ActionError::write_failed(&what, &e));
    }
    let summary = walked.map_err(|e| tlog_failure(&what, e))?;
    if summary.segment_files == 0 {
        return Err(ActionError::new(
            &what,
            "no tlog segment files here (NNNNNNNN-NNN….tlog or .tlz; a node's tlog is \
             the directory tlog/ in its tlog_dir, by default its home)",
        ));
    }
    out.flush()
        .map_err(|e| ActionError::write_failed(&what, &e))?;
    tracing::info!(
        entries = summary.entries,
        next_index = summary.next_index,
        segment_files = summary.segment_files,
        "dump-tlog done"
    );
    Ok(())
}

/// One tlog entry as a line: `index:term:updates`, the updates separated
/// by `; `; the master's barrier entry of its term (no payload) is
/// `barrier`.
pub fn render_entry(
    index: u64,
    term: u64,
    payload: &[u8],
    values: bool,
    limits: &protocol::Limits,
    out: &mut String,
) {
    use std::fmt::Write as _;
    let _ = write!(out, "{index}:{term}:");
    if payload.is_empty() {
        out.push_str("barrier");
    } else {
        match protocol::decode_batch(payload, limits) {
            Ok(updates) => render_updates(&updates, values, out),
            // The frame's crc held: the bytes are as written, in a format
            // this version does not read. Shown, not a reason to stop.
            Err(e) => {
                let _ = write!(out, "undecodable payload of {} bytes: {e}", payload.len());
            }
        }
    }
    out.push('\n');
}

fn render_updates(updates: &[Update], values: bool, out: &mut String) {
    for (k, update) in updates.iter().enumerate() {
        if k > 0 {
            out.push_str("; ");
        }
        render_update(update, values, out);
    }
}

fn render_update(update: &Update, values: bool, out: &mut String) {
    use std::fmt::Write as _;
    let value = |out: &mut String, v: Option<&[u8]>| {
        if values {
            match v {
                Some(v) => {
                    let _ = write!(out, " {}", Escaped(v));
                }
                None => out.push_str(" none"),
            }
        }
    };
    match update {
        Update::Set { key, value: v } => {
            let _ = write!(out, "set {}", Escaped(key));
            value(out, Some(v));
        }
        Update::Delete { key } => {
            let _ = write!(out, "delete {}", Escaped(key));
        }
        Update::TestAndSet {
            key,
            expected,
            wanted,
        } => {
            let _ = write!(out, "test_and_set {}", Escaped(key));
            value(out, expected.as_deref());
            value(out, wanted.as_deref());
        }
        Update::Sequence(inner) | Update::SyncedSequence(inner) => {
            out.push_str(if matches!(update, Update::Sequence(_)) {
                "sequence["
            } else {
                "synced_sequence["
            });
            render_updates(inner, values, out);
            out.push(']');
        }
        Update::Nop => out.push_str("nop"),
        Update::UserFunction { name, argument } => {
            let _ = write!(out, "user_function {}", Escaped(name));
            value(out, argument.as_deref());
        }
        Update::Assert { key, value: v } => {
            let _ = write!(out, "assert {}", Escaped(key));
            value(out, v.as_deref());
        }
        Update::DeletePrefix { prefix } => {
            let _ = write!(out, "delete_prefix {}", Escaped(prefix));
        }
        Update::AssertExists { key } => {
            let _ = write!(out, "assert_exists {}", Escaped(key));
        }
        Update::Replace { key, wanted } => {
            let _ = write!(out, "replace {}", Escaped(key));
            value(out, wanted.as_deref());
        }
        Update::AssertRange {
            prefix,
            assertion: protocol::RangeAssertion::ContainsExactly(keys),
        } => {
            let _ = write!(out, "assert_range {} [", Escaped(prefix));
            for (i, key) in keys.iter().enumerate() {
                let _ = write!(out, "{}{}", if i > 0 { " " } else { "" }, Escaped(key));
            }
            out.push(']');
        }
    }
}

/// Opens a store file read-only.
fn open_reader(path: &Path, what: &str) -> Result<store::StoreReader, ActionError> {
    store::StoreReader::open(&disk::RealDisk, path, READ_CACHE_BYTES)
        .map_err(|e| store_failure(what, e))
}

/// Writes the pairs of `range` as `"key" "value"` lines; returns how many.
fn write_pairs(
    view: &store::ReadView,
    range: &KeyRange,
    what: &str,
    progress: &mut Progress,
    out: &mut dyn Write,
) -> Result<u64, ActionError> {
    let mut write_error = None;
    let mut line = Vec::new();
    let visited = view
        .visit_range_entries(range, store::Order::Ascending, |key, value| {
            line.clear();
            let _ = writeln!(line, "{} {}", Escaped(key), Escaped(value));
            progress.advance(1);
            match out.write_all(&line) {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    write_error = Some(e);
                    ControlFlow::Break(())
                }
            }
        })
        .map_err(|e| store_failure(what, e));
    if let Some(e) = write_error {
        return Err(ActionError::write_failed(what, &e));
    }
    visited
}

/// `--dump-store FILE`: the applied index and key count, then every pair.
fn dump_store(path: &Path, out: &mut dyn Write) -> Result<(), ActionError> {
    let what = format!("--dump-store {}", path.display());
    let reader = open_reader(path, &what)?;
    let view = reader.read().map_err(|e| store_failure(&what, e))?;
    let key_count = view.key_count().map_err(|e| store_failure(&what, e))?;
    writeln!(
        out,
        "applied_index: {}\nkeys: {key_count}",
        view.applied_index()
    )
    .map_err(|e| ActionError::write_failed(&what, &e))?;
    let mut progress = Progress::new("dump-store", &what, key_count, false);
    let written = write_pairs(&view, &KeyRange::all(), &what, &mut progress, out)?;
    progress.finish();
    out.flush()
        .map_err(|e| ActionError::write_failed(&what, &e))?;
    if written != key_count {
        return Err(ActionError::of_kind(
            FailureKind::Damaged,
            &what,
            format!("the store counts {key_count} keys, a walk found {written}"),
        ));
    }
    Ok(())
}

/// `--inspect-store FILE`: the pairs from `left` (included) to `right`
/// (excluded), at most `max`, then `N listed` (as `--range-entries`).
fn inspect_store(
    path: &Path,
    left: Option<&[u8]>,
    right: Option<&[u8]>,
    max: usize,
    out: &mut dyn Write,
) -> Result<(), ActionError> {
    let what = format!("--inspect-store {}", path.display());
    let reader = open_reader(path, &what)?;
    let view = reader.read().map_err(|e| store_failure(&what, e))?;
    let range = KeyRange {
        first: left.map(<[u8]>::to_vec),
        first_inclusive: true,
        last: right.map(<[u8]>::to_vec),
        last_inclusive: false,
        max: i32::try_from(max).unwrap_or(i32::MAX),
    };
    let mut progress = Progress::new("inspect-store", &what, 0, false);
    let written = write_pairs(&view, &range, &what, &mut progress, out)?;
    writeln!(out, "{written} listed")
        .and_then(|()| out.flush())
        .map_err(|e| ActionError::write_failed(&what, &e))
}

/// `--verify-db FILE`: opens the store as a node does, with every page's
/// checksum verified, walks every key and checks the count; prints the
/// applied index, the key count and `ok`.
/// `--optimize-db-offline FILE`: redb's compaction of a stopped node's
/// store file, in place (the store must not be open elsewhere: a running
/// node holds its file, and redb refuses a second opener).
fn optimize_db(path: &Path, out: &mut dyn Write) -> Result<(), ActionError> {
    let what = format!("--optimize-db-offline {}", path.display());
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(ActionError::new(&what, "not a file")),
        Err(e) => return Err(ActionError::new(&what, format!("cannot read it: {e}"))),
    }
    // redb's compaction reports no progress: a spinner with the time spent
    // on a terminal, one line before it starts otherwise.
    let spinner = std::io::stderr().is_terminal().then(|| {
        let spinner = indicatif::ProgressBar::new_spinner();
        let style = indicatif::ProgressStyle::with_template(
            "optimize-db-offline {spinner} compacting ({elapsed})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
        spinner.set_style(style);
        spinner.enable_steady_tick(Duration::from_millis(100));
        spinner
    });
    if spinner.is_none() {
        eprintln!("arakoon: {what}: compacting (no progress to show until it ends)");
    }
    let compacted = store::compact_file(path);
    if let Some(spinner) = &spinner {
        spinner.finish_and_clear();
    }
    let (before, after) = compacted.map_err(|e| store_failure(&what, e))?;
    writeln!(out, "compacted: {before} bytes before, {after} bytes after")
        .and_then(|()| out.flush())
        .map_err(|e| ActionError::write_failed(&what, &e))
}

fn verify_db(path: &Path, out: &mut dyn Write) -> Result<(), ActionError> {
    let what = format!("--verify-db {}", path.display());
    // `Store::open` makes a store where there is none: not what a check of
    // an existing file should do.
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => {}
        Ok(_) => return Err(ActionError::new(&what, "not a file")),
        Err(e) => return Err(ActionError::new(&what, format!("cannot read it: {e}"))),
    }
    let options = store::StoreOptions {
        verify_on_open: true,
        ..store::StoreOptions::default()
    };
    let opened = store::Store::open(disk::RealDisk::shared(), path, &options)
        .map_err(|e| store_failure(&what, e))?;
    let view = opened.read().map_err(|e| store_failure(&what, e))?;
    let key_count = view.key_count().map_err(|e| store_failure(&what, e))?;
    let mut progress = Progress::new("verify-db", &what, key_count, true);
    let mut bytes = 0u64;
    let mut previous: Option<Vec<u8>> = None;
    let mut out_of_order: Option<Vec<u8>> = None;
    let walked = view
        .visit_range_entries(&KeyRange::all(), store::Order::Ascending, |key, value| {
            if previous.as_deref().is_some_and(|p| p >= key) {
                out_of_order = Some(key.to_vec());
                return ControlFlow::Break(());
            }
            previous = Some(key.to_vec());
            bytes += (key.len() + value.len()) as u64;
            progress.advance(1);
            ControlFlow::Continue(())
        })
        .map_err(|e| store_failure(&what, e))?;
    progress.finish();
    if let Some(key) = out_of_order {
        return Err(ActionError::of_kind(
            FailureKind::Damaged,
            &what,
            format!("key {} is out of order", Escaped(&key)),
        ));
    }
    if walked != key_count {
        return Err(ActionError::of_kind(
            FailureKind::Damaged,
            &what,
            format!("the store counts {key_count} keys, a walk found {walked}"),
        ));
    }
    let applied_index = view.applied_index();
    drop(view);
    opened.close().map_err(|e| store_failure(&what, e))?;
    writeln!(
        out,
        "store: {}\napplied_index: {applied_index}\nkeys: {key_count}\nbytes: {bytes} (keys and values)\nok",
        path.display()
    )
    .and_then(|()| out.flush())
    .map_err(|e| ActionError::write_failed(&what, &e))
}

/// Progress of a long walk on standard error: a bar when standard error is
/// a terminal; otherwise, if asked, a plain line every
/// [`PROGRESS_LINE_INTERVAL`]; else nothing.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    plain_lines: bool,
    what: String,
    total: u64,
    done: u64,
    last_line: Instant,
}

impl Progress {
    fn new(tool: &str, what: &str, total: u64, plain_lines: bool) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(total);
            let style = indicatif::ProgressStyle::with_template(
                "{prefix} [{bar:40}] {pos}/{len} keys ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style.progress_chars("=> "));
            bar.set_prefix(tool.to_string());
            bar
        });
        Progress {
            bar,
            plain_lines,
            what: what.to_string(),
            total,
            done: 0,
            last_line: Instant::now(),
        }
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        if let Some(bar) = &self.bar {
            bar.inc(n);
        } else if self.plain_lines && self.last_line.elapsed() >= PROGRESS_LINE_INTERVAL {
            self.last_line = Instant::now();
            eprintln!(
                "arakoon: {}: {} of {} keys walked",
                self.what, self.done, self.total
            );
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(payload: &[u8], values: bool) -> String {
        let mut out = String::new();
        render_entry(
            7,
            2,
            payload,
            values,
            &protocol::Limits::default(),
            &mut out,
        );
        out
    }

    #[test]
    fn entries_render_as_index_term_updates() {
        assert_eq!(line(b"", false), "7:2:barrier\n");
        let mut payload = Vec::new();
        protocol::encode_batch(
            &[
                Update::Set {
                    key: b"k\n".to_vec(),
                    value: b"v".to_vec(),
                },
                Update::Sequence(vec![
                    Update::Delete { key: b"d".to_vec() },
                    Update::Assert {
                        key: b"a".to_vec(),
                        value: None,
                    },
                ]),
            ],
            &mut payload,
        );
        assert_eq!(
            line(&payload, false),
            "7:2:set \"k\\n\"; sequence[delete \"d\"; assert \"a\"]\n"
        );
        assert_eq!(
            line(&payload, true),
            "7:2:set \"k\\n\" \"v\"; sequence[delete \"d\"; assert \"a\" none]\n"
        );
        assert!(line(b"\x09garbage", false).starts_with("7:2:undecodable payload of 8 bytes"));
    }
}
