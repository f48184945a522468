//! [`Tlog`]: the log itself, over its segments, and what runs on it once
//! open: append, sync, seal, read, truncate, collapse, reset, the hard
//! state. Opening and crash recovery are in `log/recovery.rs`.

use crate::error::{io_err, TlogError};
use crate::format::{
    encode_base, encode_frame, encode_hard_state, Base, HardState, SegmentHeader, SegmentKind,
    BASE_FILE, FRAME_OVERHEAD_LEN, HARD_STATE_FILE, INDEX_MAX, PAYLOAD_LEN_MAX, SEGMENT_HEADER_LEN,
};
use crate::segment::{self, Body, Segment};
use crate::terms::TermRuns;
use disk::{DiskFile, DiskRef};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

mod recovery;

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position in the log (Arakoon's `i`), from 1.
    pub index: u64,
    /// Term (Arakoon's `n`) of the master that proposed it.
    pub term: u64,
    /// The batch of updates, opaque to the tlog.
    pub payload: Vec<u8>,
}

/// What sealed (full) segments become.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// lz4 blocks of about 64 KiB (the default).
    Lz4,
    /// Full segments stay plain files.
    None,
}

/// Limits of a tlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlogOptions {
    /// A segment holds at most this many entries (Arakoon's `tlog_max_entries`).
    pub max_entries: u64,
    /// A segment is rotated before an append would take it above this many
    /// bytes (Arakoon's `tlog_max_size`); an entry alone may exceed it.
    /// Every plain segment file is preallocated to this size.
    pub max_size: u64,
    /// What full segments are sealed into.
    pub compression: Compression,
}

impl Default for TlogOptions {
    fn default() -> Self {
        Self {
            max_entries: DEFAULT_MAX_ENTRIES,
            max_size: DEFAULT_MAX_SIZE,
            compression: Compression::Lz4,
        }
    }
}

/// Arakoon's default `tlog_max_entries`.
pub const DEFAULT_MAX_ENTRIES: u64 = 50_000;
/// Arakoon's default `tlog_max_size` (32 MiB).
pub const DEFAULT_MAX_SIZE: u64 = 33_554_432;
/// The smallest `max_size`: a segment header and one byte.
pub const MIN_SIZE_LIMIT: u64 = SEGMENT_HEADER_LEN + 1;
/// The largest `max_entries` (a block's and a segment's count fit in `u32`).
pub const MAX_ENTRIES_LIMIT: u64 = 100_000_000;
/// The largest `max_size`: a plain segment stays below 4 GiB even with one
/// largest entry past it, so frame offsets fit in `u32`.
pub const MAX_SIZE_LIMIT: u64 = 1 << 30;

impl TlogOptions {
    fn validate(&self) -> Result<(), TlogError> {
        if self.max_entries == 0 || self.max_entries > MAX_ENTRIES_LIMIT {
            return Err(TlogError::InvalidOptions(format!(
                "max_entries = {} is outside [1, {MAX_ENTRIES_LIMIT}]",
                self.max_entries
            )));
        }
        if self.max_size < MIN_SIZE_LIMIT || self.max_size > MAX_SIZE_LIMIT {
            return Err(TlogError::InvalidOptions(format!(
                "max_size = {} bytes is outside [{MIN_SIZE_LIMIT}, {MAX_SIZE_LIMIT}]",
                self.max_size
            )));
        }
        Ok(())
    }
}

/// A description of one segment file, for tools and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    pub path: PathBuf,
    pub first_index: u64,
    pub entry_count: u64,
    /// Compressed and never written again.
    pub sealed: bool,
}

/// Proof that a [`SyncJob`] ran: everything up to `index` is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    index: u64,
    epoch: u64,
}

impl Synced {
    /// The index that is durable.
    pub fn index(&self) -> u64 {
        self.index
    }
}

/// One fdatasync covering every entry appended up to `index`, runnable on
/// another thread while the tlog goes on appending. Get it from
/// [`Tlog::take_sync_job`], call [`SyncJob::run`] anywhere, hand the result
/// to [`Tlog::mark_synced`].
#[derive(Debug)]
pub struct SyncJob {
    file: Arc<dyn DiskFile>,
    path: PathBuf,
    index: u64,
    epoch: u64,
}

impl SyncJob {
    /// The last index this job makes durable.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The fdatasync. Blocking.
    pub fn run(self) -> Result<Synced, TlogError> {
        self.file
            .sync_data()
            .map_err(io_err(&self.path, "fdatasync"))?;
        Ok(Synced {
            index: self.index,
            epoch: self.epoch,
        })
    }
}

/// The transaction log. See the crate documentation for the format and the
/// durability contract.
#[derive(Debug)]
pub struct Tlog {
    disk: DiskRef,
    dir: PathBuf,
    options: TlogOptions,
    /// Generation of the segments (bumped by `reset`).
    generation: u64,
    /// Ascending, contiguous; never empty; the last one is plain (active).
    /// Every segment but the last is durable whole, with its name.
    segments: Vec<Segment>,
    terms: TermRuns,
    synced_index: u64,
    /// Bumped by every change that can un-append entries, so that a
    /// `Synced` from before it is not believed.
    sync_epoch: u64,
    /// As last saved, or as found at open (`None`: none was found, or the
    /// file could not be read: see `hard_state_unreadable`).
    hard_state: Option<HardState>,
    /// Why the hard-state file found at open could not be read.
    hard_state_unreadable: Option<String>,
    poisoned: Option<String>,
    /// The seal in progress, if any: always of the oldest plain segment
    /// that is not the active one. Cancelled by truncate, reset, and a
    /// collapse that removes its segment.
    sealing: Option<segment::SealProgress>,
    /// Frame bytes appended since the last `seal_pending`, which then seals
    /// at least twice as much, so that sealing keeps up with appending.
    appended_bytes_since_seal_step: u64,
}

/// Frame bytes a `sync` compresses at least, when a full segment waits to
/// be sealed (a few milliseconds of lz4): a 32 MiB segment is sealed over
/// a few dozen syncs instead of stalling one of them.
pub const SEAL_STEP_BYTES: u64 = 1 << 20;

/// Epochs are unique in the process, so that a `Synced` from another `Tlog`
/// (one dropped before a reopen) is never believed either.
fn next_sync_epoch() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn has_room(options: &TlogOptions, entry_count: u64, len_bytes: u64, frame_len: u64) -> bool {
    entry_count < options.max_entries
        && (entry_count == 0 || len_bytes + frame_len <= options.max_size)
}

impl Tlog {
    fn assert_invariants(&self) {
        assert!(!self.segments.is_empty());
        let Some(active) = self.segments.last() else {
            unreachable!("checked above");
        };
        assert!(active.is_plain(), "the active segment is plain");
        assert_eq!(self.segments[0].first_index(), self.terms.base_index() + 1);
        assert_eq!(active.next_index(), self.terms.last_index() + 1);
        assert_eq!(active.last_term, self.terms.last_term());
        assert!(self.synced_index <= self.terms.last_index());
        if cfg!(debug_assertions) {
            for pair in self.segments.windows(2) {
                assert_eq!(pair[0].next_index(), pair[1].first_index());
                assert_eq!(pair[0].last_term, pair[1].header.prev_term);
            }
        }
    }

    fn check_usable(&self) -> Result<(), TlogError> {
        match &self.poisoned {
            Some(why) => Err(TlogError::Poisoned(why.clone())),
            None => Ok(()),
        }
    }

    /// Records a failure of a mutating operation: the in-memory state may no
    /// longer match the disk, so every later call fails until a reopen.
    fn poison_on_err<T>(&mut self, result: Result<T, TlogError>) -> Result<T, TlogError> {
        if let Err(err) = &result {
            tracing::error!(error = %err, dir = %self.dir.display(), "tlog: failed, refusing further work until reopened");
            self.poisoned = Some(err.to_string());
        }
        result
    }

    /// As [`Tlog::poison_on_err`], except for a full device on an operation
    /// that leaves the tlog as it was ([`TlogError::is_no_space`]): the
    /// caller may retry once there is space.
    fn poison_unless_no_space<T>(&mut self, result: Result<T, TlogError>) -> Result<T, TlogError> {
        match &result {
            Err(err) if err.is_no_space() => result,
            _ => self.poison_on_err(result),
        }
    }

    /// The directory of this tlog.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options it was opened with.
    pub fn options(&self) -> &TlogOptions {
        &self.options
    }

    /// The first index held (one past the base: 1 for a fresh log).
    pub fn first_index(&self) -> u64 {
        self.terms.base_index() + 1
    }

    /// The last index held (the base index if the log is empty).
    pub fn last_index(&self) -> u64 {
        self.terms.last_index()
    }

    /// The term of the last index (the base term if the log is empty).
    pub fn last_term(&self) -> u64 {
        self.terms.last_term()
    }

    /// The term of `index`, for `first_index() - 1 <= index <= last_index()`;
    /// `None` outside (collapsed, or not yet appended). O(log runs), no IO.
    pub fn term(&self, index: u64) -> Option<u64> {
        self.terms.term(index)
    }

    /// The last index known durable.
    pub fn synced_index(&self) -> u64 {
        self.synced_index
    }

    /// The hard state as last saved (or loaded at open); `None` if none
    /// was ever saved here, or the file found at open could not be read
    /// ([`Tlog::hard_state_unreadable`] says why). The caller then cannot
    /// vouch for what this node promised: see `consensus::Standing`.
    pub fn hard_state(&self) -> Option<HardState> {
        self.hard_state
    }

    /// Why the hard-state file found at open could not be read (damaged:
    /// wrong length, bad magic, checksum), naming the file and offset. The
    /// next save replaces it.
    pub fn hard_state_unreadable(&self) -> Option<&str> {
        self.hard_state_unreadable.as_deref()
    }

    /// The segment files, ascending.
    pub fn segments(&self) -> Vec<SegmentInfo> {
        self.segments
            .iter()
            .map(|s| SegmentInfo {
                path: s.path.clone(),
                first_index: s.first_index(),
                entry_count: s.entry_count,
                sealed: !s.is_plain(),
            })
            .collect()
    }

    /// How many segment files the log has (the active one included).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Heap bytes held by the in-memory index (frame offsets of plain
    /// segments, block references of sealed ones, term runs).
    pub fn index_heap_bytes(&self) -> usize {
        self.segments.iter().map(Segment::heap_bytes).sum::<usize>() + self.terms.heap_bytes()
    }

    /// Appends `entries` (buffered: written to the active segment, not
    /// synced). They must continue the log: the first index is
    /// `last_index() + 1`, indices step by one, terms never decrease.
    /// Checked before anything is written. Returns the new last index.
    ///
    /// A full device ([`TlogError::is_no_space`]) leaves the tlog usable:
    /// a prefix of `entries` may have been appended (see
    /// [`Tlog::last_index`]); append the rest once there is space. Any
    /// other failure poisons the tlog.
    pub fn append(&mut self, entries: &[Entry]) -> Result<u64, TlogError> {
        self.check_usable()?;
        let mut prev_term = self.last_term();
        for (expected, entry) in (self.last_index() + 1..).zip(entries) {
            if entry.index != expected {
                return Err(TlogError::NotContiguous {
                    expected,
                    got: entry.index,
                });
            }
            if entry.term < prev_term {
                return Err(TlogError::TermDecreasing {
                    index: entry.index,
                    term: entry.term,
                    prev_term,
                });
            }
            if entry.payload.len() as u64 > PAYLOAD_LEN_MAX {
                return Err(TlogError::PayloadTooLarge {
                    index: entry.index,
                    len_bytes: entry.payload.len() as u64,
                    max_bytes: PAYLOAD_LEN_MAX,
                });
            }
            prev_term = entry.term;
        }
        let result = self.append_checked(entries);
        let result = self.poison_unless_no_space(result);
        self.assert_invariants();
        result.map(|()| self.last_index())
    }

    fn append_checked(&mut self, mut entries: &[Entry]) -> Result<(), TlogError> {
        let options = self.options;
        while let Some(first) = entries.first() {
            {
                let active = self.active();
                let Body::Plain { len_bytes, .. } = &active.body else {
                    unreachable!("the active segment is plain");
                };
                let frame_len = FRAME_OVERHEAD_LEN + first.payload.len() as u64;
                if !has_room(&options, active.entry_count, *len_bytes, frame_len) {
                    self.rotate()?;
                }
            }
            let active = self.active_mut();
            let Body::Plain {
                file,
                offsets,
                len_bytes,
            } = &mut active.body
            else {
                unreachable!("the active segment is plain");
            };
            let start = *len_bytes;
            // Sized once for what this segment can take of the batch, so
            // encoding never reallocates.
            let batch_len_bytes: u64 = entries
                .iter()
                .map(|e| FRAME_OVERHEAD_LEN + e.payload.len() as u64)
                .sum();
            let capacity =
                batch_len_bytes.min(options.max_size + FRAME_OVERHEAD_LEN + PAYLOAD_LEN_MAX);
            let mut buf = Vec::with_capacity(capacity as usize);
            let mut new_offsets =
                Vec::with_capacity(entries.len().min(options.max_entries as usize));
            let mut taken = 0usize;
            for entry in entries {
                let frame_len = FRAME_OVERHEAD_LEN + entry.payload.len() as u64;
                let count = active.entry_count + taken as u64;
                if taken > 0 && !has_room(&options, count, start + buf.len() as u64, frame_len) {
                    break;
                }
                new_offsets.push((start + buf.len() as u64) as u32);
                encode_frame(&mut buf, entry.index, entry.term, &entry.payload);
                taken += 1;
            }
            assert!(
                taken > 0,
                "a fresh or roomy segment takes at least one entry"
            );
            // max_size <= MAX_SIZE_LIMIT and one frame past it stay below 4 GiB.
            assert!(start + buf.len() as u64 <= u64::from(u32::MAX));
            file.write_all_at(start, &buf)
                .map_err(io_err(&active.path, "write"))?;
            offsets.extend_from_slice(&new_offsets);
            *len_bytes = start + buf.len() as u64;
            active.entry_count += taken as u64;
            active.last_term = entries[taken - 1].term;
            self.appended_bytes_since_seal_step += buf.len() as u64;
            for entry in &entries[..taken] {
                self.terms.push(entry.index, entry.term);
            }
            entries = &entries[taken..];
        }
        Ok(())
    }

    fn active(&self) -> &Segment {
        let Some(active) = self.segments.last() else {
            unreachable!("there is always an active segment");
        };
        active
    }

    fn active_mut(&mut self) -> &mut Segment {
        let Some(active) = self.segments.last_mut() else {
            unreachable!("there is always an active segment");
        };
        active
    }

    /// Closes the full active segment and starts the next one. Durable at
    /// once (the full segment is fdatasynced, the new one is installed with
    /// its header synced and its name synced), so that every segment but the
    /// last is always whole on disk: recovery need only doubt the last one.
    fn rotate(&mut self) -> Result<(), TlogError> {
        let active = self.active();
        active
            .plain_file()
            .sync_data()
            .map_err(io_err(&active.path, "fdatasync"))?;
        let synced = active.next_index() - 1;
        let header = SegmentHeader {
            kind: SegmentKind::Plain,
            generation: self.generation,
            first_index: active.next_index(),
            prev_term: active.last_term,
        };
        self.synced_index = self.synced_index.max(synced);
        let segment =
            segment::create_plain(self.disk.as_ref(), &self.dir, header, self.options.max_size)?;
        self.segments.push(segment);
        Ok(())
    }

    /// A job that makes every entry appended so far durable, or `None` if
    /// they all are. See [`SyncJob`].
    pub fn take_sync_job(&self) -> Result<Option<SyncJob>, TlogError> {
        self.check_usable()?;
        if self.synced_index == self.last_index() {
            return Ok(None);
        }
        // Entries of every segment but the active one were synced at rotation.
        let active = self.active();
        Ok(Some(SyncJob {
            file: Arc::clone(active.plain_file()),
            path: active.path.clone(),
            index: self.last_index(),
            epoch: self.sync_epoch,
        }))
    }

    /// Takes in the result of a [`SyncJob::run`]. A failed fdatasync poisons
    /// the tlog (the kernel may have dropped the unsynced pages; only a
    /// reopen, which reads back what the disk really holds, is safe).
    /// A job from before a `truncate_suffix` or `reset` is ignored.
    /// Returns the synced index.
    pub fn mark_synced(&mut self, result: Result<Synced, TlogError>) -> Result<u64, TlogError> {
        self.check_usable()?;
        let synced = self.poison_on_err(result)?;
        if synced.epoch == self.sync_epoch {
            assert!(
                synced.index <= self.last_index(),
                "no truncation since the job was taken"
            );
            self.synced_index = self.synced_index.max(synced.index);
        }
        Ok(self.synced_index)
    }

    /// Group commit: one fdatasync for everything appended since the last
    /// one, then the sealing of any full segment. Returns the synced index.
    pub fn sync(&mut self) -> Result<u64, TlogError> {
        if let Some(job) = self.take_sync_job()? {
            let result = job.run();
            self.mark_synced(result)?;
        }
        self.seal_pending()?;
        Ok(self.synced_index)
    }

    /// One step of sealing, sized to keep up with the appends: at least
    /// [`SEAL_STEP_BYTES`] and twice the bytes appended since the previous
    /// step. [`Tlog::sync`] calls it; a node that syncs through
    /// [`SyncJob`]s calls it after each [`Tlog::mark_synced`].
    /// Returns how many segments were sealed.
    pub fn seal_pending(&mut self) -> Result<usize, TlogError> {
        let budget_bytes = SEAL_STEP_BYTES.max(2 * self.appended_bytes_since_seal_step);
        let sealed = self.seal_some(budget_bytes)?;
        self.appended_bytes_since_seal_step = 0;
        Ok(sealed)
    }

    /// Compresses every full (not active) segment that is still plain, if
    /// the options ask for compression, all at once (tens of milliseconds
    /// for a 32 MiB segment). Returns how many segments were sealed.
    pub fn seal_full_segments(&mut self) -> Result<usize, TlogError> {
        self.seal_some(u64::MAX)
    }

    /// Advances the sealing of full segments by about `budget_bytes` of
    /// frames (at least one block when there is work); see
    /// [`Tlog::seal_pending`] for the step that keeps up with the appends.
    /// Crash-safe at any point (see [`Tlog::open`]). Returns how many
    /// segments were sealed.
    pub fn seal_some(&mut self, budget_bytes: u64) -> Result<usize, TlogError> {
        self.check_usable()?;
        if self.options.compression == Compression::None {
            return Ok(0);
        }
        let result = self.seal_checked(budget_bytes);
        let result = match result {
            // A full device: drop the partial sealed file (freeing its
            // space); the plain segment stays and is sealed later.
            Err(e) if e.is_no_space() => self.cancel_sealing().and(Err(e)),
            other => other,
        };
        let sealed = self.poison_unless_no_space(result)?;
        self.assert_invariants();
        Ok(sealed)
    }

    fn seal_checked(&mut self, mut budget_bytes: u64) -> Result<usize, TlogError> {
        let mut sealed = 0;
        loop {
            let Some(k) = self.segments[..self.segments.len() - 1]
                .iter()
                .position(Segment::is_plain)
            else {
                assert!(
                    self.sealing.is_none(),
                    "a seal in progress has a plain target"
                );
                return Ok(sealed);
            };
            if self.sealing.is_none() {
                self.sealing = Some(segment::seal_begin(
                    self.disk.as_ref(),
                    &self.dir,
                    &self.segments[k],
                )?);
            }
            let Some(progress) = self.sealing.as_mut() else {
                unreachable!("set above");
            };
            assert_eq!(
                progress.first_index,
                self.segments[k].first_index(),
                "the oldest plain segment is sealed first"
            );
            let (consumed, complete) =
                segment::seal_advance(progress, &self.segments[k], budget_bytes)?;
            budget_bytes = budget_bytes.saturating_sub(consumed);
            if !complete {
                return Ok(sealed);
            }
            let Some(progress) = self.sealing.take() else {
                unreachable!("set above");
            };
            self.segments[k] =
                segment::seal_finish(self.disk.as_ref(), &self.dir, progress, &self.segments[k])?;
            sealed += 1;
            if budget_bytes == 0 {
                return Ok(sealed);
            }
        }
    }

    /// Drops a seal in progress (its target may be about to change).
    fn cancel_sealing(&mut self) -> Result<(), TlogError> {
        match self.sealing.take() {
            Some(progress) => progress.cancel(self.disk.as_ref()),
            None => Ok(()),
        }
    }

    /// Entries `[from, to)`, stopping early once their payloads would exceed
    /// `max_bytes` (always at least one entry if `from < to`). Every frame's
    /// CRC is checked. `first_index() <= from <= to <= last_index() + 1`.
    pub fn read(&self, from: u64, to: u64, max_bytes: u64) -> Result<Vec<Entry>, TlogError> {
        self.check_usable()?;
        if from > to || from < self.first_index() || to > self.last_index() + 1 {
            return Err(TlogError::OutOfRange {
                from,
                to,
                first_index: self.first_index(),
                last_index: self.last_index(),
            });
        }
        let mut out = Vec::new();
        let mut budget_bytes = max_bytes;
        let mut next = from;
        let mut k = self
            .segments
            .partition_point(|s| s.first_index() <= from)
            .saturating_sub(1);
        while next < to {
            let segment = &self.segments[k];
            let segment_to = to.min(segment.next_index());
            if segment_to > next {
                if !segment::read_entries(
                    self.disk.as_ref(),
                    segment,
                    next,
                    segment_to,
                    &mut budget_bytes,
                    &mut out,
                )? {
                    break;
                }
                next = segment_to;
            }
            k += 1;
        }
        assert!(!out.is_empty() || from == to);
        Ok(out)
    }

    /// Drops every entry with index >= `from` (an uncommitted suffix; it may
    /// reach into earlier, even sealed, segments). Durable before it returns:
    /// later segments are removed newest first with a directory sync each,
    /// then the segment holding `from` is cut and fdatasynced (or, if sealed,
    /// rewritten plain). A crash at any point leaves a prefix of the old log;
    /// once it returns, no crash brings the dropped entries back. Everything
    /// kept is durable afterwards (`synced_index() == last_index()`).
    /// No-op if `from > last_index()`.
    pub fn truncate_suffix(&mut self, from: u64) -> Result<(), TlogError> {
        self.check_usable()?;
        if from > self.last_index() {
            return Ok(());
        }
        if from < self.first_index() {
            return Err(TlogError::TruncateBelowFirst {
                from,
                first_index: self.first_index(),
            });
        }
        let result = self.truncate_checked(from);
        self.poison_on_err(result)?;
        self.assert_invariants();
        Ok(())
    }

    fn truncate_checked(&mut self, from: u64) -> Result<(), TlogError> {
        self.cancel_sealing()?;
        let k = self.segments.partition_point(|s| s.first_index() <= from) - 1;
        while self.segments.len() > k + 1 {
            let Some(dropped) = self.segments.pop() else {
                unreachable!("length checked by the loop");
            };
            self.disk
                .remove(&dropped.path)
                .map_err(io_err(&dropped.path, "remove"))?;
            self.disk
                .sync_dir(&self.dir)
                .map_err(io_err(&self.dir, "sync directory"))?;
        }
        let Some(kept_last_term) = self.terms.term(from - 1) else {
            unreachable!("from - 1 is within [base, last]");
        };
        let segment = &mut self.segments[k];
        let keep = from - segment.first_index();
        if segment.is_plain() {
            let Body::Plain {
                file,
                offsets,
                len_bytes,
            } = &mut segment.body
            else {
                unreachable!("checked plain above");
            };
            let cut = offsets
                .get(keep as usize)
                .map_or(*len_bytes, |&o| u64::from(o));
            // Cut, then allocate again: the dropped frames become zeros
            // (free space) and later appends keep writing into allocated
            // blocks.
            file.set_len(cut)
                .map_err(io_err(&segment.path, "truncate"))?;
            if let Err(e) = file.allocate(self.options.max_size) {
                let e = io_err(&segment.path, "allocate")(e);
                if !e.is_no_space() {
                    return Err(e);
                }
                // On a full device the cut stands and the file stays short:
                // appends extend it (and meet the full device themselves).
                tracing::warn!(error = %e, "tlog: no space to preallocate the truncated segment again");
            }
            file.sync_data()
                .map_err(io_err(&segment.path, "fdatasync"))?;
            offsets.truncate(keep as usize);
            *len_bytes = cut;
            segment.entry_count = keep;
            segment.last_term = kept_last_term;
        } else {
            let plain = segment::unseal_prefix(
                self.disk.as_ref(),
                &self.dir,
                segment,
                from,
                self.options.max_size,
            )?;
            assert_eq!(plain.last_term, kept_last_term);
            *segment = plain;
        }
        self.terms.truncate(from);
        self.synced_index = self.last_index();
        self.sync_epoch = next_sync_epoch();
        Ok(())
    }

    /// Rewrites the sealed segment that starts at `first_index` as a plain
    /// one with the same entries (`arakoon --uncompress-tlog`): crash-safe
    /// as a truncation into a sealed segment is (the plain file installed
    /// before the sealed one is removed; at open a plain file wins). The
    /// plain file is not preallocated. Returns false if that segment is
    /// plain already; an unknown `first_index` is an error.
    pub fn unseal(&mut self, first_index: u64) -> Result<bool, TlogError> {
        self.check_usable()?;
        let Some(segment) = self
            .segments
            .iter_mut()
            .find(|s| s.first_index() == first_index)
        else {
            return Err(TlogError::Corrupt {
                path: self.dir.clone(),
                offset: 0,
                what: format!("no segment starts at index {first_index}"),
            });
        };
        if segment.is_plain() {
            return Ok(false);
        }
        let next = segment.next_index();
        let last_term = segment.last_term;
        let result = segment::unseal_prefix(self.disk.as_ref(), &self.dir, segment, next, 0);
        let plain = self.poison_on_err(result)?;
        assert_eq!(plain.last_term, last_term, "unsealing keeps every entry");
        assert_eq!(plain.next_index(), next, "unsealing keeps every entry");
        if let Some(segment) = self
            .segments
            .iter_mut()
            .find(|s| s.first_index() == first_index)
        {
            *segment = plain;
        }
        Ok(true)
    }

    /// Deletes the full segments whose entries are all below `below` (never
    /// the active one). `first_index()` moves past them and
    /// `term(first_index() - 1)` still answers. Durable before it returns:
    /// the base file, replaced atomically with the new base position, is the
    /// commit point; the files are removed after it (and at open, if a crash
    /// came first or brought a removal back: their removal is not synced).
    /// Returns the new first index.
    pub fn collapse(&mut self, below: u64) -> Result<u64, TlogError> {
        self.check_usable()?;
        let result = self.collapse_checked(below);
        // A full device fails the base file's write, before the commit
        // point: the log is as it was.
        self.poison_unless_no_space(result)?;
        self.assert_invariants();
        Ok(self.first_index())
    }

    fn collapse_checked(&mut self, below: u64) -> Result<(), TlogError> {
        let doomed = self.segments[..self.segments.len() - 1]
            .iter()
            .take_while(|s| s.next_index() <= below)
            .count();
        if doomed == 0 {
            return Ok(());
        }
        let new_first = self.segments[doomed].first_index();
        // A seal in progress goes on if its segment stays (removing sealed
        // segments before it, as a collapse under load does, does not
        // throw its work away).
        if self
            .sealing
            .as_ref()
            .is_some_and(|p| p.first_index < new_first)
        {
            self.cancel_sealing()?;
        }
        let Some(new_base_term) = self.terms.term(new_first - 1) else {
            unreachable!("new_first - 1 is within the log");
        };
        assert_eq!(new_base_term, self.segments[doomed].header.prev_term);
        // The commit point: once the base file says so, the log starts at
        // `new_first`; an open removes whatever is below it.
        let base = Base {
            generation: self.generation,
            index: new_first - 1,
            term: new_base_term,
        };
        let base_path = self.dir.join(BASE_FILE);
        disk::write_atomic(self.disk.as_ref(), &base_path, &encode_base(&base))
            .map_err(io_err(&base_path, "write"))?;
        self.terms.collapse(new_first - 1);
        assert_eq!(self.terms.base_term(), new_base_term);
        // The removals need no directory sync of their own: should a crash
        // bring a removed segment back, it lies wholly below the durable
        // base, and an open removes it. (One fsync less for each collapse
        // step, which runs on the node's serving thread.)
        for oldest in self.segments.drain(..doomed) {
            self.disk
                .remove(&oldest.path)
                .map_err(io_err(&oldest.path, "remove"))?;
        }
        Ok(())
    }

    /// Drops the whole log: it now starts at `after_index + 1`, and
    /// `term(after_index)` is `after_term` (after installing a store
    /// snapshot). Durable before it returns; the base file, replaced
    /// atomically, is the commit point: a crash before it leaves the old log,
    /// after it the new empty one.
    pub fn reset(&mut self, after_index: u64, after_term: u64) -> Result<(), TlogError> {
        self.check_usable()?;
        if after_index > INDEX_MAX {
            return Err(TlogError::IndexTooLarge {
                index: after_index,
                max: INDEX_MAX,
            });
        }
        let result = self.reset_checked(after_index, after_term);
        self.poison_on_err(result)?;
        self.assert_invariants();
        Ok(())
    }

    fn reset_checked(&mut self, after_index: u64, after_term: u64) -> Result<(), TlogError> {
        self.cancel_sealing()?;
        let generation = self.generation + 1;
        let base = Base {
            generation,
            index: after_index,
            term: after_term,
        };
        let base_path = self.dir.join(BASE_FILE);
        disk::write_atomic(self.disk.as_ref(), &base_path, &encode_base(&base))
            .map_err(io_err(&base_path, "write"))?;
        // From here on the old segments are leftovers of an older generation,
        // which an open would remove anyway.
        self.generation = generation;
        self.sync_epoch = next_sync_epoch();
        for old in self.segments.drain(..) {
            self.disk
                .remove(&old.path)
                .map_err(io_err(&old.path, "remove"))?;
        }
        self.disk
            .sync_dir(&self.dir)
            .map_err(io_err(&self.dir, "sync directory"))?;
        let header = SegmentHeader {
            kind: SegmentKind::Plain,
            generation,
            first_index: after_index + 1,
            prev_term: after_term,
        };
        self.segments.push(segment::create_plain(
            self.disk.as_ref(),
            &self.dir,
            header,
            self.options.max_size,
        )?);
        self.terms = TermRuns::new(after_index, after_term);
        self.synced_index = after_index;
        Ok(())
    }

    /// Saves the hard state durably and atomically (write a new file,
    /// fdatasync, rename over the old one, sync the directory). After a crash
    /// the file holds the old or the new state, whole. The term never
    /// goes back.
    pub fn save_hard_state(&mut self, state: HardState) -> Result<(), TlogError> {
        self.check_usable()?;
        let saved_term = self.hard_state.map_or(0, |h| h.term);
        if state.term < saved_term {
            return Err(TlogError::HardStateTermRegress {
                term: state.term,
                saved_term,
            });
        }
        let path = self.dir.join(HARD_STATE_FILE);
        let result = disk::write_atomic(self.disk.as_ref(), &path, &encode_hard_state(&state))
            .map_err(io_err(&path, "write"));
        // A full device leaves the old file whole (the new one is written
        // aside, then renamed over it).
        self.poison_unless_no_space(result)?;
        self.hard_state = Some(state);
        self.hard_state_unreadable = None;
        Ok(())
    }
}
