//! Snapshot catch-up: a peer that needs entries this node's tlog no longer
//! holds (collapsed away) gets the whole store instead, at the store's
//! applied index, then takes the tail from the tlog as usual.
//!
//! # Sender (the master; the core asks, `Ready::snapshots_to_send`)
//!
//! The store is exported from one consistent read view
//! ([`store::SnapshotExport`]: frames of about [`CHUNK_TARGET_BYTES`], each
//! checksummed) while applies go on. Each frame travels as a
//! [`SnapshotMessage::Chunk`] with its own CRC32C; an
//! [`SnapshotMessage::End`] carries the byte count and the CRC32C of the
//! whole stream. Flow control is a window of [`WINDOW_CHUNKS`] unacknowledged
//! chunks (go-back-N: after [`RESEND_AFTER`] without progress, every
//! unacknowledged chunk is sent again), so at most the window and one frame
//! are in memory, and the sender's loop produces at most a window of chunks
//! per input: it keeps serving its clients. No acknowledged progress for
//! [`GIVE_UP_AFTER`], or a refusal, ends the transfer and tells the core
//! (`snapshot_failed`), which probes the peer again and asks for a new
//! snapshot if it still needs one. A master that loses mastership drops its
//! transfers.
//!
//! # Receiver
//!
//! Chunks are written, in order, to a scratch file beside the store
//! ([`store::Store::scratch_path`]); nothing of the store changes while they
//! arrive. Once the end arrived and both checksums match, the file is
//! fsynced and installed: the store's whole content is replaced in one
//! transaction ([`store::Store::install`], which checks every frame again and
//! records the snapshot's `(index, term)`), then the tlog is rebased on
//! `(index, term)` (kept as it is if it holds that entry), then the core is
//! told (`snapshot_installed`), then the sender gets `Installed`.
//!
//! # Invariants
//!
//! - A store is replaced only by a whole, checked stream, atomically: a
//!   transfer cut anywhere (either side killed, the connection gone, a
//!   corrupt chunk) leaves the store as it was, and the scratch file is
//!   removed when the replica starts or a new transfer begins. A half
//!   snapshot never looks complete.
//! - The store is installed before the tlog is rebased; a crash in between
//!   leaves a store ahead of its tlog, which [`reconcile_storage`] rebases
//!   at the next start from the `(index, term)` the install recorded.
//! - Only a snapshot past the core's commit index is installed, and never on
//!   a master (the core refuses both; here they are dropped first).
//! - The snapshot's `(index, term)` is the sender's applied (so committed)
//!   entry: every later master's log holds it.

use crate::env::Env;
use crate::error::ReplicaError;
use crate::peer::{AckStatus, SnapshotMessage};
use crate::replica::Replica;
use crate::StoreAccess;
use bytes::Bytes;
use consensus::{NodeId, Role, Time};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use store::{SnapshotExport, Store, StoreError};
use tlog::Tlog;

/// An exporter closes a frame (one chunk) at about this many bytes.
pub const CHUNK_TARGET_BYTES: usize = 256 << 10;
/// Chunks sent and not yet acknowledged, at most.
pub const WINDOW_CHUNKS: u64 = 8;
/// Unacknowledged chunks are sent again after this long without progress.
pub const RESEND_AFTER: Duration = Duration::from_millis(500);
/// A transfer without progress for this long is abandoned (on both sides).
/// Long enough for the receiver to install a large store (its loop is busy
/// meanwhile, the end's acknowledgement waits).
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(30);
/// How often a transfer in progress is logged.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// One transfer this node sends.
struct Outgoing {
    transfer: u64,
    index: u64,
    term: u64,
    /// `None` once every frame was taken.
    export: Option<SnapshotExport>,
    pairs_total: u64,
    next_seq: u64,
    /// Every part before this one was acknowledged.
    acked: u64,
    /// Parts `acked..next_seq`, to be sent again if need be.
    unacked: VecDeque<SnapshotMessage>,
    total_bytes: u64,
    total_crc: u32,
    started: Time,
    last_sent: Time,
    last_progress: Time,
    last_report: Time,
}

/// The transfer this node receives.
struct Incoming {
    from: NodeId,
    transfer: u64,
    index: u64,
    term: u64,
    next_seq: u64,
    bytes: u64,
    crc: u32,
    pairs_sent: u64,
    pairs_total: u64,
    file: Box<dyn disk::DiskFile>,
    started: Time,
    last_chunk: Time,
    last_report: Time,
    /// The end arrived and the checksums match: install at the next round.
    complete: bool,
}

/// The replica's snapshot transfers.
#[derive(Default)]
pub(crate) struct Transfers {
    outgoing: BTreeMap<NodeId, Outgoing>,
    incoming: Option<Incoming>,
    /// The last transfer installed: `(from, transfer, next)`, so that an end
    /// sent again gets its `Installed` again.
    installed: Option<(NodeId, u64, u64)>,
    counter: u64,
}

impl Transfers {
    pub(crate) fn install_due(&self) -> bool {
        self.incoming.as_ref().is_some_and(|i| i.complete)
    }

    pub(crate) fn sending(&self) -> usize {
        self.outgoing.len()
    }

    /// The transfer being received, as published.
    pub(crate) fn progress(&self, now: Time) -> Option<crate::published::SnapshotProgress> {
        self.incoming
            .as_ref()
            .map(|i| crate::published::SnapshotProgress {
                from: i.from,
                index: i.index,
                pairs_done: i.pairs_sent,
                pairs_total: i.pairs_total,
                bytes: i.bytes,
                bytes_per_second: rate(i.bytes, i.started, now) as u64,
            })
    }

    pub(crate) fn wake_at(&self) -> Option<Time> {
        self.outgoing
            .values()
            .filter(|o| !o.unacked.is_empty())
            .map(|o| o.last_sent.plus(RESEND_AFTER))
            .min()
    }
}

fn rate(bytes: u64, since: Time, now: Time) -> f64 {
    let secs = now.0.saturating_sub(since.0) as f64 / 1e9;
    if secs > 0.0 {
        bytes as f64 / secs
    } else {
        0.0
    }
}

/// Reads a scratch file front to back.
struct FileReader<'a> {
    file: &'a dyn disk::DiskFile,
    offset: u64,
    len: u64,
}

impl std::io::Read for FileReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.len - self.offset;
        let n = (buf.len() as u64).min(left) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.file.read_exact_at(self.offset, &mut buf[..n])?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// Before the core starts: a store that is ahead of its tlog because a
/// snapshot was installed and the node stopped before the tlog was rebased
/// gets its tlog rebased now (the install recorded the snapshot's `(index,
/// term)`). Any other store ahead of its tlog is left for the core to refuse.
/// Returns whether the tlog was rebased.
pub fn reconcile_storage(tlog: &mut Tlog, store: &Store) -> Result<bool, ReplicaError> {
    let applied = store.applied_index();
    if applied <= tlog.last_index() {
        return Ok(false);
    }
    match store.snapshot_base()? {
        Some((index, term)) if index == applied => {
            tracing::warn!(
                store_applied = applied,
                tlog_last = tlog.last_index(),
                snapshot_term = term,
                "the store holds a snapshot installed after the tlog's end (the node stopped mid-install): rebasing the tlog on it"
            );
            tlog.reset(index, term)
                .map_err(|source| ReplicaError::Tlog {
                    dir: tlog.dir().to_path_buf(),
                    source,
                })?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

impl<S: StoreAccess, W> Replica<S, W> {
    /// Removes a scratch file a stopped transfer left behind.
    pub(crate) fn remove_stale_scratch(&self) {
        let store = self.store.store();
        let path = store.scratch_path();
        if store.disk().exists(&path) {
            match store.disk().remove(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "removed the scratch file of a snapshot transfer that did not finish")
                }
                // A new transfer truncates it anyway.
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "could not remove the scratch file of an unfinished snapshot transfer")
                }
            }
        }
    }

    /// A message of a snapshot transfer from a peer.
    pub fn step_snapshot(
        &mut self,
        msg: SnapshotMessage,
        env: &mut impl Env<Waiter = W>,
    ) -> Result<(), ReplicaError> {
        if msg.to() != self.core.id() {
            tracing::warn!(to = %msg.to(), "snapshot message for another node dropped");
            return Ok(());
        }
        match msg {
            SnapshotMessage::Ack {
                from,
                transfer,
                next,
                status,
                ..
            } => self.on_ack(from, transfer, next, status, env),
            SnapshotMessage::Chunk {
                from,
                transfer,
                index,
                term,
                seq,
                pairs_sent,
                pairs_total,
                crc,
                bytes,
                ..
            } => {
                self.on_chunk(
                    from,
                    transfer,
                    (index, term),
                    seq,
                    (pairs_sent, pairs_total),
                    crc,
                    &bytes,
                    env,
                );
                Ok(())
            }
            SnapshotMessage::End {
                from,
                transfer,
                seq,
                total_bytes,
                total_crc,
                ..
            } => {
                self.on_end(from, transfer, seq, total_bytes, total_crc, env);
                Ok(())
            }
        }
    }

    // ----- sender --------------------------------------------------------

    /// The core asks for snapshots to these peers.
    pub(crate) fn start_snapshots(
        &mut self,
        peers: &[NodeId],
        env: &mut impl Env<Waiter = W>,
    ) -> Result<(), ReplicaError> {
        let now = env.now();
        for &peer in peers {
            if self.core.role() != Role::Master || self.transfers.outgoing.contains_key(&peer) {
                continue;
            }
            let export = self
                .store
                .store()
                .export_with_chunk_target(CHUNK_TARGET_BYTES)?;
            let index = export.applied_index();
            let term = match self.tlog.term(index) {
                Some(t) if index > 0 => t,
                _ => {
                    // The store's applied index is always in the tlog (collapse
                    // keeps what the store has not made durable), so this is
                    // a snapshot of nothing: let the core probe again.
                    tracing::warn!(slave = %peer, index, "no snapshot to send (store at {index}, tlog {}..={})", self.tlog.first_index(), self.tlog.last_index());
                    self.core
                        .snapshot_failed(
                            peer,
                            now,
                            &crate::disk_full::LocalLog::new(&self.tlog, &self.held),
                        )
                        .map_err(|e| ReplicaError::fatal("snapshot_failed", e))?;
                    continue;
                }
            };
            let pairs_total = export.pair_count()?;
            self.transfers.counter += 1;
            let transfer = (self.core.term() << 32) | (self.transfers.counter & 0xffff_ffff);
            tracing::info!(slave = %peer, transfer, i = index, n = term, pairs = pairs_total, "sending a store snapshot");
            self.transfers.outgoing.insert(
                peer,
                Outgoing {
                    transfer,
                    index,
                    term,
                    export: Some(export),
                    pairs_total,
                    next_seq: 0,
                    acked: 0,
                    unacked: VecDeque::new(),
                    total_bytes: 0,
                    total_crc: 0,
                    started: now,
                    last_sent: now,
                    last_progress: now,
                    last_report: now,
                },
            );
        }
        Ok(())
    }

    /// Sends what each transfer's window allows.
    pub(crate) fn pump_snapshots(
        &mut self,
        env: &mut impl Env<Waiter = W>,
    ) -> Result<(), ReplicaError> {
        if self.transfers.outgoing.is_empty() {
            return Ok(());
        }
        if self.core.role() != Role::Master {
            self.drop_outgoing("no longer master");
            return Ok(());
        }
        let me = self.core.id();
        let now = env.now();
        let mut failed = Vec::new();
        for (&peer, o) in self.transfers.outgoing.iter_mut() {
            while o.next_seq - o.acked < WINDOW_CHUNKS {
                let Some(export) = o.export.as_mut() else {
                    break; // the end was sent
                };
                let msg = match export.next() {
                    Some(Ok(frame)) => {
                        let crc = crc32c::crc32c(&frame);
                        o.total_crc = crc32c::crc32c_append(o.total_crc, &frame);
                        o.total_bytes += frame.len() as u64;
                        SnapshotMessage::Chunk {
                            from: me,
                            to: peer,
                            transfer: o.transfer,
                            index: o.index,
                            term: o.term,
                            seq: o.next_seq,
                            pairs_sent: export.pairs_exported(),
                            pairs_total: o.pairs_total,
                            crc,
                            bytes: Bytes::from(frame),
                        }
                    }
                    Some(Err(e)) => {
                        tracing::error!(slave = %peer, error = %e, "reading the store for a snapshot failed");
                        failed.push(peer);
                        break;
                    }
                    None => {
                        o.export = None; // releases the read view
                        SnapshotMessage::End {
                            from: me,
                            to: peer,
                            transfer: o.transfer,
                            seq: o.next_seq,
                            total_bytes: o.total_bytes,
                            total_crc: o.total_crc,
                        }
                    }
                };
                env.send_snapshot(&msg);
                o.unacked.push_back(msg);
                o.next_seq += 1;
                o.last_sent = now;
            }
        }
        for peer in failed {
            self.transfers.outgoing.remove(&peer);
            self.core
                .snapshot_failed(
                    peer,
                    now,
                    &crate::disk_full::LocalLog::new(&self.tlog, &self.held),
                )
                .map_err(|e| ReplicaError::fatal("snapshot_failed", e))?;
        }
        Ok(())
    }

    fn on_ack(
        &mut self,
        from: NodeId,
        transfer: u64,
        next: u64,
        status: AckStatus,
        env: &mut impl Env<Waiter = W>,
    ) -> Result<(), ReplicaError> {
        let now = env.now();
        let Some(o) = self.transfers.outgoing.get_mut(&from) else {
            return Ok(());
        };
        if o.transfer != transfer {
            return Ok(());
        }
        match status {
            AckStatus::Receiving => {
                if next > o.acked && next <= o.next_seq {
                    for _ in o.acked..next {
                        o.unacked.pop_front();
                    }
                    o.acked = next;
                    o.last_progress = now;
                }
                if now >= o.last_report.plus(REPORT_EVERY) {
                    o.last_report = now;
                    tracing::info!(slave = %from, transfer, bytes_sent = o.total_bytes, chunks_acked = o.acked, pairs_total = o.pairs_total, bytes_per_second = rate(o.total_bytes, o.started, now) as u64, "snapshot transfer in progress");
                }
            }
            AckStatus::Installed => {
                let secs = now.0.saturating_sub(o.started.0) as f64 / 1e9;
                tracing::info!(slave = %from, transfer, i = o.index, bytes = o.total_bytes, pairs = o.pairs_total, seconds = secs, bytes_per_second = rate(o.total_bytes, o.started, now) as u64, "snapshot installed by the slave");
                let index = o.index;
                self.transfers.outgoing.remove(&from);
                self.core
                    .snapshot_sent(
                        from,
                        index,
                        now,
                        &crate::disk_full::LocalLog::new(&self.tlog, &self.held),
                    )
                    .map_err(|e| ReplicaError::fatal("snapshot_sent", e))?;
            }
            AckStatus::NotNeeded(commit) => {
                tracing::info!(slave = %from, transfer, commit, "the slave needs no snapshot (it holds the committed state that far): replicating from there");
                let index = o.index.min(commit);
                self.transfers.outgoing.remove(&from);
                self.core
                    .snapshot_sent(
                        from,
                        index,
                        now,
                        &crate::disk_full::LocalLog::new(&self.tlog, &self.held),
                    )
                    .map_err(|e| ReplicaError::fatal("snapshot_sent", e))?;
            }
            AckStatus::UnknownTransfer if o.acked == 0 => {
                // The first part may be late (a network that reorders): the
                // resends go on, and the transfer gives up without progress.
            }
            AckStatus::UnknownTransfer => {
                tracing::info!(slave = %from, transfer, "the slave forgot the snapshot transfer (it restarted): starting over");
                self.transfers.outgoing.remove(&from);
                self.core
                    .snapshot_failed(
                        from,
                        now,
                        &crate::disk_full::LocalLog::new(&self.tlog, &self.held),
                    )
                    .map_err(|e| ReplicaError::fatal("snapshot_failed", e))?;
            }
            AckStatus::Refused(reason) => {
                tracing::warn!(slave = %from, transfer, reason = %reason, "the slave refused the snapshot transfer; probing it again");
                self.transfers.outgoing.remove(&from);
                self.core
                    .snapshot_failed(
                        from,
                        now,
                        &crate::disk_full::LocalLog::new(&self.tlog, &self.held),
                    )
                    .map_err(|e| ReplicaError::fatal("snapshot_failed", e))?;
            }
        }
        Ok(())
    }

    /// Drops every outgoing transfer (mastership lost, stopping).
    pub(crate) fn drop_outgoing(&mut self, why: &str) {
        for (peer, o) in std::mem::take(&mut self.transfers.outgoing) {
            tracing::info!(slave = %peer, transfer = o.transfer, why, "snapshot transfer dropped");
        }
    }

    /// Timers of the transfers: resends, give-ups.
    pub(crate) fn snapshot_timers(
        &mut self,
        env: &mut impl Env<Waiter = W>,
    ) -> Result<(), ReplicaError> {
        let now = env.now();
        let mut abandoned = Vec::new();
        for (&peer, o) in self.transfers.outgoing.iter_mut() {
            if now >= o.last_progress.plus(GIVE_UP_AFTER) {
                tracing::warn!(slave = %peer, transfer = o.transfer, "snapshot transfer made no progress for {GIVE_UP_AFTER:?}: abandoned");
                abandoned.push(peer);
            } else if !o.unacked.is_empty() && now >= o.last_sent.plus(RESEND_AFTER) {
                for msg in &o.unacked {
                    env.send_snapshot(msg);
                }
                o.last_sent = now;
            }
        }
        for peer in abandoned {
            self.transfers.outgoing.remove(&peer);
            self.core
                .snapshot_failed(
                    peer,
                    now,
                    &crate::disk_full::LocalLog::new(&self.tlog, &self.held),
                )
                .map_err(|e| ReplicaError::fatal("snapshot_failed", e))?;
        }
        if let Some(inc) = &self.transfers.incoming {
            if !inc.complete && now >= inc.last_chunk.plus(GIVE_UP_AFTER) {
                let (from, transfer) = (inc.from, inc.transfer);
                tracing::warn!(master = %from, transfer, "no part of the snapshot arrived for {GIVE_UP_AFTER:?}: dropped");
                self.discard_incoming();
            }
        }
        Ok(())
    }

    // ----- receiver ------------------------------------------------------

    fn ack(
        &self,
        to: NodeId,
        transfer: u64,
        next: u64,
        status: AckStatus,
        env: &mut impl Env<Waiter = W>,
    ) {
        env.send_snapshot(&SnapshotMessage::Ack {
            from: self.core.id(),
            to,
            transfer,
            next,
            status,
        });
    }

    fn refuse(
        &mut self,
        to: NodeId,
        transfer: u64,
        reason: String,
        env: &mut impl Env<Waiter = W>,
    ) {
        tracing::warn!(master = %to, transfer, reason = %reason, "snapshot transfer refused");
        self.ack(to, transfer, 0, AckStatus::Refused(reason), env);
    }

    /// Drops the transfer being received and its scratch file.
    fn discard_incoming(&mut self) {
        if let Some(inc) = self.transfers.incoming.take() {
            drop(inc.file);
            let store = self.store.store();
            let path = store.scratch_path();
            if let Err(e) = store.disk().remove(&path) {
                tracing::warn!(path = %path.display(), error = %e, "could not remove the snapshot scratch file (removed at the next start)");
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_chunk(
        &mut self,
        from: NodeId,
        transfer: u64,
        (index, term): (u64, u64),
        seq: u64,
        (pairs_sent, pairs_total): (u64, u64),
        crc: u32,
        bytes: &Bytes,
        env: &mut impl Env<Waiter = W>,
    ) {
        let now = env.now();
        let same = self
            .transfers
            .incoming
            .as_ref()
            .is_some_and(|i| i.from == from && i.transfer == transfer);
        if !same {
            if self
                .transfers
                .installed
                .is_some_and(|(f, t, _)| f == from && t == transfer)
            {
                return; // a chunk sent again after the install
            }
            if seq != 0 {
                // Not refused: over a network that reorders, the first part
                // may still come; the sender decides (see `on_ack`).
                self.ack(from, transfer, 0, AckStatus::UnknownTransfer, env);
                return;
            }
            if self.core.role() == Role::Master {
                self.refuse(from, transfer, "this node is master".into(), env);
                return;
            }
            let commit = self.core.commit_index();
            if index <= commit {
                tracing::info!(master = %from, transfer, i = index, commit, "no snapshot needed: this node's commit index is at or past it");
                self.ack(from, transfer, 0, AckStatus::NotNeeded(commit), env);
                return;
            }
            if let Some(old) = &self.transfers.incoming {
                tracing::info!(master = %old.from, transfer = old.transfer, "an unfinished snapshot transfer is replaced by a new one");
            }
            self.discard_incoming();
            let store = self.store.store();
            let path = store.scratch_path();
            let file = match store
                .disk()
                .open(&path, disk::OpenMode::Create)
                .and_then(|f| f.set_len(0).map(|()| f))
            {
                Ok(f) => f,
                Err(e) => {
                    let reason = format!("cannot create {}: {e}", path.display());
                    self.refuse(from, transfer, reason, env);
                    return;
                }
            };
            tracing::info!(master = %from, transfer, i = index, n = term, pairs = pairs_total, "receiving a store snapshot (the entries this node misses were collapsed away)");
            self.transfers.incoming = Some(Incoming {
                from,
                transfer,
                index,
                term,
                next_seq: 0,
                bytes: 0,
                crc: 0,
                pairs_sent: 0,
                pairs_total,
                file,
                started: now,
                last_chunk: now,
                last_report: now,
                complete: false,
            });
        }
        let Some(inc) = self.transfers.incoming.as_mut() else {
            return;
        };
        inc.last_chunk = now;
        if seq == inc.next_seq && !inc.complete {
            if crc32c::crc32c(bytes) != crc {
                self.refuse(
                    from,
                    transfer,
                    format!("chunk {seq} arrived damaged (checksum mismatch)"),
                    env,
                );
                self.discard_incoming();
                return;
            }
            if let Err(e) = inc.file.write_all_at(inc.bytes, bytes) {
                let reason = format!("writing the snapshot scratch file: {e}");
                self.refuse(from, transfer, reason, env);
                self.discard_incoming();
                return;
            }
            inc.bytes += bytes.len() as u64;
            inc.crc = crc32c::crc32c_append(inc.crc, bytes);
            inc.next_seq += 1;
            inc.pairs_sent = pairs_sent;
            if now >= inc.last_report.plus(REPORT_EVERY) {
                inc.last_report = now;
                let per_second = rate(inc.pairs_sent, inc.started, now);
                let left = inc.pairs_total.saturating_sub(inc.pairs_sent);
                let eta = if per_second > 0.0 {
                    left as f64 / per_second
                } else {
                    f64::NAN
                };
                tracing::info!(master = %from, transfer, pairs_done = inc.pairs_sent, pairs_left = left, bytes = inc.bytes, pairs_per_second = per_second as u64, seconds_left = eta, "receiving a store snapshot");
            }
        }
        let next = inc.next_seq;
        self.ack(from, transfer, next, AckStatus::Receiving, env);
        self.publish(env);
    }

    fn on_end(
        &mut self,
        from: NodeId,
        transfer: u64,
        seq: u64,
        total_bytes: u64,
        total_crc: u32,
        env: &mut impl Env<Waiter = W>,
    ) {
        if let Some((f, t, next)) = self.transfers.installed {
            if f == from && t == transfer {
                self.ack(from, transfer, next, AckStatus::Installed, env);
                return;
            }
        }
        let Some(inc) = self
            .transfers
            .incoming
            .as_mut()
            .filter(|i| i.from == from && i.transfer == transfer)
        else {
            self.ack(from, transfer, 0, AckStatus::UnknownTransfer, env);
            return;
        };
        inc.last_chunk = env.now();
        if inc.complete || seq != inc.next_seq {
            let next = inc.next_seq;
            self.ack(from, transfer, next, AckStatus::Receiving, env);
            return;
        }
        if total_bytes != inc.bytes || total_crc != inc.crc {
            let reason = format!(
                "the stream arrived damaged: {} bytes with checksum {:08x}, the sender sent {total_bytes} with {total_crc:08x}",
                inc.bytes, inc.crc
            );
            self.refuse(from, transfer, reason, env);
            self.discard_incoming();
            return;
        }
        if let Err(e) = inc.file.sync_data() {
            let reason = format!("fsync of the snapshot scratch file: {e}");
            self.refuse(from, transfer, reason, env);
            self.discard_incoming();
            return;
        }
        inc.next_seq += 1;
        inc.complete = true;
        // Installed at the next round (the core takes it between rounds).
        self.again = true;
    }

    /// Installs the snapshot received whole: store, tlog, core, in that
    /// order. Call right after a `Ready` was taken.
    pub(crate) fn install_snapshot(
        &mut self,
        env: &mut impl Env<Waiter = W>,
    ) -> Result<(), ReplicaError> {
        let Some(inc) = self.transfers.incoming.as_ref().filter(|i| i.complete) else {
            return Ok(());
        };
        let (from, transfer, index, term, next) =
            (inc.from, inc.transfer, inc.index, inc.term, inc.next_seq);
        let (pairs, bytes, received_since) = (inc.pairs_total, inc.bytes, inc.started);
        let commit = self.core.commit_index();
        if self.core.role() == Role::Master {
            self.refuse(from, transfer, "this node became master".into(), env);
            self.discard_incoming();
            return Ok(());
        }
        if let Some(why) = self.disk_full() {
            let why = format!("install: {why}");
            self.refuse(from, transfer, why, env);
            self.discard_incoming();
            return Ok(());
        }
        if index <= commit {
            // Caught up from the tlog meanwhile.
            self.ack(from, transfer, 0, AckStatus::NotNeeded(commit), env);
            self.discard_incoming();
            return Ok(());
        }
        let started = env.now();
        let installed = {
            let mut reader = FileReader {
                file: inc.file.as_ref(),
                offset: 0,
                len: inc.bytes,
            };
            self.store.store().install(&mut reader, index, term)
        };
        match installed {
            Ok(_) => {}
            Err(
                e @ (StoreError::SnapshotCorrupt { .. }
                | StoreError::SnapshotTooOld { .. }
                | StoreError::SnapshotIo { .. }),
            ) => {
                self.refuse(from, transfer, format!("install: {e}"), env);
                self.discard_incoming();
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        // The store is past the tlog's end (or the tlog holds the entry):
        // rebase the tlog on the snapshot's entry unless it holds it.
        let keeps = self.tlog.term(index) == Some(term);
        if keeps {
            self.reported_synced = self.reported_synced.max(index);
        } else {
            self.tlog
                .reset(index, term)
                .map_err(|e| self.tlog_error(e))?;
            self.reported_synced = index;
        }
        let now = env.now();
        self.core
            .snapshot_installed(
                index,
                term,
                now,
                &crate::disk_full::LocalLog::new(&self.tlog, &self.held),
            )
            .map_err(|e| ReplicaError::fatal("snapshot_installed", e))?;
        self.commit_index = self.commit_index.max(index);
        self.applied_since_checkpoint = 0;
        self.transfers.installed = Some((from, transfer, next));
        self.discard_incoming();
        tracing::info!(
            master = %from,
            transfer,
            i = index,
            n = term,
            pairs,
            bytes,
            receive_seconds = started.0.saturating_sub(received_since.0) as f64 / 1e9,
            install_seconds = now.0.saturating_sub(started.0) as f64 / 1e9,
            tlog_kept = keeps,
            "store snapshot installed; catching up the rest from the tlog"
        );
        self.ack(from, transfer, next, AckStatus::Installed, env);
        env.snapshot_installed(index, term, self.store.store());
        self.sync_due_after_rebase();
        self.publish(env);
        self.again = true;
        Ok(())
    }
}
