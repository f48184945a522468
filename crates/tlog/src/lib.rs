//! `tlog`: Arakoon's transaction log. The durable, ordered record of what
//! the cluster decided: entries `(index, term, payload)` in segment files,
//! appended by the master and the slaves, read back for catch-up and replay.
//! No network, no threads of its own; every byte goes through [`disk::Disk`],
//! so the simulator runs this very code on a disk that loses unsynced writes.
//!
//! # Files in the tlog directory
//! - `<generation:08>-<first_index:020>.tlog`: a *plain* segment. The last
//!   one is the *active* segment, the only file appended to.
//! - `<generation:08>-<first_index:020>.tlz`: a *sealed* segment: a full
//!   segment compressed, never written again.
//! - `hard_state`: current term and vote.
//! - `base`: the generation of the segments and the position `(index, term)`
//!   the log starts after, as set by the last [`Tlog::reset`] or
//!   [`Tlog::collapse`] (absent: generation 0, base (0, 0)). The first
//!   segment must start right after it, so a lost segment is noticed.
//! - `*.tmp`: a file being written (one of the above with `.tmp` added);
//!   removed at open.
//!
//! The directory may hold other files (a node keeps its tlog directly in
//! `tlog_dir`, which defaults to its `home`, as Arakoon does): they are
//! left alone; one whose name ends like a segment's but does not parse is
//! warned about.
//!
//! # On-disk format (all integers little endian, all checksums CRC32C)
//! Segment header, 36 bytes: magic `ARKTLOG1` (plain) or `ARKTLZ41`
//! (sealed) | generation u64 | first_index u64 | prev_term u64 (the term of
//! entry `first_index - 1`) | crc u32 of the 32 bytes before it.
//!
//! A plain segment is its header, then frames back to back, then zero bytes
//! up to its preallocated size:
//!
//! ```text
//! length u32 | crc u32 | index u64 | term u64 | payload (length - 16 bytes)
//! ```
//!
//! `length` counts index, term and payload and is at most
//! 16 + [`PAYLOAD_LEN_MAX`] (a larger one is damage, never an allocation);
//! `crc` covers the length field and everything after it in the frame. An
//! intact frame's `length` is never zero, so the zeros cannot be a frame.
//!
//! **Preallocation.** Every plain segment file is allocated (with real
//! blocks, `fallocate`; see [`disk::DiskFile::allocate`]) to
//! [`TlogOptions::max_size`] bytes when it is created (at an open of an
//! empty log, at rotation, at a reset, when a truncation unseals a segment)
//! and when open finds it shorter, before its header and the allocation are
//! synced. Appends then write inside the file's size, and the `fdatasync` on
//! every write's path need not write the file's size (measured on this
//! project's ext4 test machine, 150 bytes + fdatasync: p50 119 µs at the
//! end of a file, 84 µs inside an allocated one; a sparse extension or
//! `FALLOC_FL_KEEP_SIZE` gives nothing). The tlog keeps where the
//! frames end (the next frame's offset) apart from the file's length; a
//! frame that does not fit in the allocated space extends the file (an entry
//! alone may exceed `max_size`). Sealing reads only the frames; sealed files
//! are not preallocated.
//!
//! A sealed segment is its header, then blocks, then an end marker:
//!
//! ```text
//! compressed_len u32 | uncompressed_len u32 | first_index u64 | entry_count u32 | crc u32 | lz4 block
//! ```
//!
//! A block holds whole frames, exactly as in a plain segment, about 64 KiB of
//! them, compressed as one lz4 block; its crc covers the 20 header bytes
//! before it and the compressed bytes. The end marker is a block header with
//! `compressed_len = uncompressed_len = 0`, `first_index` = the index after
//! the segment's last entry and `entry_count` = the segment's count. A read
//! decompresses one block, and every frame's own crc is checked again.
//!
//! **Codec: lz4** (the `lz4_flex` crate, safe Rust only). Tlog payloads are
//! batches of keys and values; what matters is that sealing a 32 MiB segment
//! and decompressing blocks for catch-up cost little CPU on a node that also
//! serves clients. lz4 runs at hundreds of MB/s (compress) to GB/s
//! (decompress) per core; zstd
//! would save more space at several times the CPU, and needs C code.
//! Independent 64 KiB blocks let a read touch one block, not a segment.
//!
//! `hard_state`, 38 bytes: magic `ARKHARD2` | term u64 | has_vote u8 |
//! vote u64 | incarnation u64 | standing u8 (0 trusted, 1 recovering, 2
//! unknown) | crc u32 (version 1, 29 bytes, `ARKHARD1` without incarnation
//! and standing, is still read: trusted, incarnation 0). A missing or
//! damaged hard-state file is not an error at open: [`Tlog::hard_state`] is
//! then `None` and the node recovers what it promised from its peers
//! (`consensus::Standing`). `base`, 36 bytes: magic `ARKBASE1` | generation
//! u64 | index u64 | term u64 | crc u32.
//!
//! # Offline reading
//! [`offline`] walks a segment file or a whole tlog directory read-only,
//! entry by entry, with the same checks as open (for `arakoon --dump-tlog`
//! on a stopped node's files): it never writes, so a torn tail is reported
//! as damage instead of being cut.
//!
//! # Durability contract
//! - [`Tlog::append`] writes the frames to the active segment and returns;
//!   nothing is durable yet. [`Tlog::sync`] issues one `fdatasync` for
//!   everything appended since the previous one (group commit) and returns
//!   the synced index; so does a [`SyncJob`] run on another thread.
//!   After a crash the log holds a prefix of what was appended that contains
//!   every entry up to the last synced index. Dropping a [`Tlog`] syncs
//!   nothing.
//! - Rotation (the active segment is full) is durable at once: the full
//!   segment is fdatasynced, the next one is created under a temporary name
//!   with its header and its allocation, synced, renamed, and the directory
//!   synced. So every segment but the last is whole on disk, and only the
//!   last segment's tail can be torn.
//! - Sealing writes the compressed file under a temporary name, syncs it,
//!   renames it, syncs the directory, and only then removes the plain file
//!   (and syncs the directory). If both exist at open, the plain one wins.
//! - [`Tlog::truncate_suffix`] is durable before it returns (it is rare: a
//!   slave whose uncommitted suffix conflicts with the master). The cut is
//!   `set_len` then `allocate` back to `max_size`, so the dropped frames
//!   become zeros. Dropped entries never come back after it returns; a crash
//!   during it leaves a prefix of the log as it was before.
//! - [`Tlog::collapse`] commits by replacing the `base` file atomically (new
//!   base position); the segments below are then removed (and at open, if a
//!   crash came first).
//! - [`Tlog::reset`] commits by replacing the `base` file atomically (new
//!   generation); old segments are then removed (and at open, if a crash
//!   came first).
//! - [`Tlog::save_hard_state`] replaces `hard_state` atomically and durably.
//!
//! # Recovery
//! [`Tlog::open`] reads every segment and checks every frame and block.
//! In a plain segment, where the intact frames stop, bytes that are all
//! zero up to the end of the file are free preallocated space: a clean end,
//! no warning, nothing cut (a torn write that left only zeros is the same
//! thing). In the last segment, a bad frame (short, impossible length, bad
//! crc; a non-zero byte in the zero tail counts as one) with no intact frame
//! of a later index anywhere after it is a torn tail: it is cut away
//! (`set_len`, then the segment is allocated to `max_size` again, synced, so
//! the torn bytes are zeros) and a warning names the file, offset and
//! damage. Any other damage (an earlier frame, non-zero bytes after the
//! frames of a segment that is not the last, a sealed segment, a header, a
//! gap in indices or terms going backwards) is [`TlogError::Corrupt`]
//! naming the file and byte offset: the tlog never skips an entry silently.
//! The search for a later intact frame skips runs of zeros 64 bytes at a
//! time, so a 32 MiB zero tail costs a read, not a parse per offset. Open
//! allocates the active segment to `max_size` if it is shorter and finishes
//! with one fdatasync of it, so everything it found, and the allocation,
//! is durable.
//!
//! The torn-tail rule assumes what the simulated disk models: unsynced
//! writes reach the disk as an in-order prefix, the last one possibly torn
//! (or zero-filled). A real file system may write back unsynced pages out
//! of order; if a power loss leaves a hole *followed by* an intact later
//! frame, open reports corruption instead of guessing, and an operator
//! decides (such a tail was never synced, so cutting it is safe).
//!
//! A failed write or fdatasync *poisons* the tlog: every later call returns
//! [`TlogError::Poisoned`] until it is reopened (after a failed fdatasync the
//! kernel may have dropped dirty pages; only a reopen knows what is on disk).
//! Except a full device ([`TlogError::is_no_space`]): a write, allocation or
//! file creation of an append, a seal, a collapse or a hard state save that
//! fails with ENOSPC (or a quota) leaves the tlog as it was (an append, with
//! a prefix of its entries appended) and usable; the call may be retried.
//!
//! # Memory and file descriptors
//! Per entry of a plain segment, a 4-byte frame offset (the active segment,
//! and full ones until sealed); per sealed block of ~64 KiB, 16 bytes; per
//! term change, 16 bytes. A million 16-byte entries cost about 330 KiB of
//! index, nearly all of it the active segment's offsets (measured by
//! `a_million_entries_cost_a_few_bytes_each_in_memory`); `term(i)` is a
//! binary search over the term runs. Plain segments keep their file open;
//! a sealed segment is opened for each read, so a long log holds one
//! descriptor, not one per segment.
//!
//! # Off-loop fsync
//! [`Tlog::take_sync_job`] hands out a [`SyncJob`] holding a shared handle to
//! the active segment and the last index it covers; the node runs it on a
//! blocking thread while it goes on appending, and passes the result to
//! [`Tlog::mark_synced`]. A rotation in the meantime syncs the full segment
//! itself; a truncation or reset in the meantime makes the job's result
//! ignored (it carries an epoch). Sealing is then the node's to call:
//! [`Tlog::seal_pending`] after each `mark_synced` (as [`Tlog::sync`] does
//! itself). It compresses at least [`SEAL_STEP_BYTES`] and twice what was
//! appended since its previous call (a few milliseconds per MiB), so a seal
//! is spread over many calls and keeps up with the appends, instead of
//! stalling one call for a whole segment ([`Tlog::seal_some`] takes an
//! explicit budget; [`Tlog::seal_full_segments`] does everything at once).
//! A truncation or reset cancels a seal in progress, and so does a collapse
//! that removes the segment being sealed.

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod consensus_log;
mod error;
mod format;
mod log;
pub mod offline;
mod segment;
mod terms;

pub use error::TlogError;
pub use format::{
    HardState, FRAME_OVERHEAD_LEN, HARD_STATE_FILE, INDEX_MAX, PAYLOAD_LEN_MAX, SEGMENT_HEADER_LEN,
};
/// Whether `name` is one of the files the tlog keeps in its directory (a
/// segment, the hard state, the base file or a temporary file of its own):
/// what a tool that measures or moves the tlog takes, when the directory is
/// shared with other files (a node's `home`).
pub fn is_tlog_file(name: &str) -> bool {
    name == format::HARD_STATE_FILE
        || name == format::BASE_FILE
        || format::parse_segment_name(name).is_some()
        || name.strip_suffix(format::TMP_SUFFIX).is_some_and(|stem| {
            stem == format::HARD_STATE_FILE
                || stem == format::BASE_FILE
                || format::parse_segment_name(stem).is_some()
        })
}

pub use log::{
    Compression, Entry, SegmentInfo, SyncJob, Synced, Tlog, TlogOptions, DEFAULT_MAX_ENTRIES,
    DEFAULT_MAX_SIZE, MAX_ENTRIES_LIMIT, MAX_SIZE_LIMIT, MIN_SIZE_LIMIT, SEAL_STEP_BYTES,
};
