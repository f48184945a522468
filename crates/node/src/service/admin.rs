//! Arakoon's store admin commands, answered as Arakoon answers them where
//! our store (redb, not Tokyo Cabinet) allows:
//!
//! - `get_db` (0x1b): a consistent copy of the store, streamed: `rc 0,
//!   int64 length`, then `length` bytes of a store file (a redb file that
//!   `--inspect-store`, `--verify-db` and `--inject-as-head` read). As in
//!   Arakoon, a master refuses (`E_NOT_SUPPORTED`, "Operation cannot be
//!   performed on master node"): take backups from slaves. The copy is
//!   made through a snapshot stream into a file beside the store (applies
//!   go on meanwhile), never whole in memory, then streamed and removed.
//! - `flush_store` (0x42): the store made durable now (a checkpoint).
//! - `copy_db_to_head` (0x44, `n`): Arakoon copies its store to the head
//!   database and drops the tlogs but the last `n`; here the store is the
//!   head, so it is the collapse keeping `n` (`collapse.rs`), answered once
//!   done. `n < 1`: `E_UNKNOWN_FAILURE` "tlogs_to_keep=n is not
//!   acceptable"; a master refuses as Arakoon's does.
//! - `optimize_db` (0x25), `defrag_db` (0x26): a master refuses as
//!   Arakoon's does. A slave refuses too, with `E_NOT_SUPPORTED` naming
//!   the way: redb compacts a store file only while nothing else has it
//!   open, so compaction is an offline tool here (`arakoon
//!   --optimize-db-offline FILE` on a stopped node's store).

use super::{write_response, Service};
use crate::state::DriverRequest;
use consensus::Role;
use protocol::{Command, ErrorResponse, Reply, Response, ResultCode};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use tokio::io::AsyncReadExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, oneshot};

/// Arakoon's answer to a store admin command on the master.
pub(super) const ON_MASTER: &str = "Operation cannot be performed on master node";

/// Distinguishes the copies of concurrent `get_db` requests.
static COPIES: AtomicU64 = AtomicU64::new(0);

/// What a `get_db` copy's name adds to the store file's name (then the
/// process id and a counter).
const COPY_INFIX: &str = ".get_db.";

/// Frame size of the store export a fingerprint is the checksum of (fixed:
/// the stream, so its checksum, then depends on the pairs only).
const FINGERPRINT_CHUNK_BYTES: usize = 256 << 10;

/// A checksum (CRC32C) of the store's export stream at one applied index
/// (from one read view: applies go on meanwhile), that index, and the pair
/// count: two stores at the same index with the same pairs have the same.
fn store_fingerprint(store: &store::Store) -> Result<(u64, u32, u64), store::StoreError> {
    struct Crc(u32);
    impl std::io::Write for Crc {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 = crc32c::crc32c_append(self.0, bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let export = store.export_with_chunk_target(FINGERPRINT_CHUNK_BYTES)?;
    let index = export.applied_index();
    let pairs = export.pair_count()?;
    let mut crc = Crc(0);
    export.write_to(&mut crc)?;
    Ok((index, crc.0, pairs))
}

/// Removes the `get_db` copies a node killed while serving one left beside
/// `store` (a copy is removed once sent, or when its connection ends; a
/// `kill -9` leaves it). Run at start, before anything serves. Returns how
/// many were removed; an entry that cannot be read or removed is an error
/// naming it.
pub(crate) fn remove_leftover_copies(store: &std::path::Path) -> std::io::Result<usize> {
    let (Some(dir), Some(name)) = (store.parent(), store.file_name()) else {
        return Ok(0);
    };
    let dir = if dir.as_os_str().is_empty() {
        std::path::Path::new(".")
    } else {
        dir
    };
    let mut prefix = name.to_owned();
    prefix.push(COPY_INFIX);
    let prefix = prefix.to_string_lossy().into_owned();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|e| {
                std::io::Error::new(e.kind(), format!("remove {}: {e}", path.display()))
            })?;
            tracing::info!(copy = %path.display(), "removed a get_db copy left by an earlier run");
            removed += 1;
        }
    }
    Ok(removed)
}

/// Removes a `get_db` copy when the request ends, however it ends.
struct CopyFile(PathBuf);

impl Drop for CopyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn refused(rc: ResultCode, message: impl Into<Vec<u8>>) -> ErrorResponse {
    ErrorResponse::new(rc, message)
}

impl Service {
    fn is_master(&self) -> bool {
        self.published.borrow().role == Role::Master
    }

    /// Serves one `get_db`; returns whether the connection is to be closed.
    pub(super) async fn serve_get_db(&self, stream: &mut tls::Stream) -> Result<bool, String> {
        let began = Instant::now();
        match self.copy_store().await {
            Err(e) => {
                self.metrics.request_failed(Command::GetDb);
                let closes = e.result_code().closes_connection();
                write_response(stream, &Response::Error(e)).await?;
                Ok(closes)
            }
            Ok((copy, length)) => {
                let mut file = tokio::fs::File::open(&copy.0)
                    .await
                    .map_err(|e| format!("get_db: open {}: {e}", copy.0.display()))?;
                let header = Reply::GetDb {
                    length: i64::try_from(length).unwrap_or(i64::MAX),
                };
                write_response(stream, &Response::Ok(header)).await?;
                let mut buf = vec![0u8; 256 << 10];
                let mut left = length;
                while left > 0 {
                    let want = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                    let n = file
                        .read(&mut buf[..want])
                        .await
                        .map_err(|e| format!("get_db: read {}: {e}", copy.0.display()))?;
                    if n == 0 {
                        return Err(format!(
                            "get_db: {} ended {left} bytes early",
                            copy.0.display()
                        ));
                    }
                    stream
                        .write_all(&buf[..n])
                        .await
                        .map_err(|e| format!("get_db: send: {e}"))?;
                    left -= n as u64;
                }
                stream
                    .flush()
                    .await
                    .map_err(|e| format!("get_db: send: {e}"))?;
                tracing::info!(
                    bytes = length,
                    seconds = began.elapsed().as_secs_f64(),
                    "get_db: store copy sent"
                );
                self.metrics.request_done(Command::GetDb, began.elapsed());
                Ok(false)
            }
        }
    }

    /// Records in the copy the term of its last applied entry (asked of the
    /// driver's tlog), so that `--inject-as-head` can rebase a node's tlog
    /// on it; a tlog that no longer holds the entry (collapsed meanwhile)
    /// leaves the copy without it (such a copy can still be injected where
    /// the node's own tlog holds the entry).
    async fn record_base(&self, copy: &std::path::Path, index: u64) -> Result<(), ErrorResponse> {
        if index == 0 {
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(DriverRequest::TermOf { index, reply: tx })
            .await
            .map_err(|_| Self::going_down())?;
        let Some(term) = rx.await.map_err(|_| Self::going_down())? else {
            tracing::info!(index, "get_db: the tlog no longer holds the copy's last entry: its term is not recorded in the copy");
            return Ok(());
        };
        let path = copy.to_path_buf();
        let recorded = tokio::task::spawn_blocking(move || {
            let disk = disk::RealDisk::shared();
            let copy = store::Store::open(disk, &path, &store::StoreOptions::default())?;
            copy.record_snapshot_base(index, term)?;
            copy.close().map(|_| ())
        })
        .await
        .map_err(|e| refused(ResultCode::UnknownFailure, format!("get_db: {e}")))?;
        recorded.map_err(|e| {
            refused(
                ResultCode::UnknownFailure,
                format!("get_db: recording the copy's last entry: {e}"),
            )
        })
    }

    /// `inspect` (ours, for `--inspect-cluster`): the node's state as
    /// `key=value` lines, the tlog's facts asked of the driver, the sizes
    /// on disk read here.
    pub(super) async fn inspect(
        &self,
        p: &replica::Published,
        term_at: Option<u64>,
        fingerprint: bool,
    ) -> Result<String, ErrorResponse> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(DriverRequest::TlogFacts { term_at, reply: tx })
            .await
            .map_err(|_| Self::going_down())?;
        let facts = rx.await.map_err(|_| Self::going_down())?;
        let node = self.settings.node().clone();
        let store_path = self.store.path().to_path_buf();
        let (tlog_bytes, store_bytes) = tokio::task::spawn_blocking(move || {
            let tlog_dir = crate::tlog_path(&node);
            let tlog_bytes: u64 = std::fs::read_dir(&tlog_dir)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .filter(|e| e.file_name().to_str().is_some_and(tlog::is_tlog_file))
                        .filter_map(|e| e.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0);
            let store_bytes = std::fs::metadata(&store_path).map_or(0, |m| m.len());
            (tlog_bytes, store_bytes)
        })
        .await
        .map_err(|e| refused(ResultCode::UnknownFailure, format!("inspect: {e}")))?;
        let master = p.master.map_or_else(
            || "none".to_string(),
            |m| self.settings.name_of(m).to_string(),
        );
        let mut lines = vec![
            format!("node={}", self.settings.node().name),
            format!("role={}", p.role),
            format!("standing={}", p.standing),
            format!("n={}", p.term),
            format!("master={master}"),
            format!("tlog_first={}", facts.first_index),
            format!("tlog_last={}", facts.last_index),
            format!("committed={}", p.commit_index),
            format!("applied={}", p.applied_index),
            format!("lease={}", if p.lease.is_some() { "held" } else { "none" }),
            format!("tlog_bytes={tlog_bytes}"),
            format!("store_bytes={store_bytes}"),
            format!(
                "last_collapse={}",
                self.metrics
                    .last_collapse()
                    .map_or_else(|| "none".to_string(), |t| format!("{t:.0}"))
            ),
        ];
        if fingerprint {
            let store = std::sync::Arc::clone(&self.store);
            let (index, crc, pairs) =
                tokio::task::spawn_blocking(move || store_fingerprint(&store))
                    .await
                    .map_err(|e| refused(ResultCode::UnknownFailure, format!("inspect: {e}")))?
                    .map_err(|e| {
                        refused(
                            ResultCode::UnknownFailure,
                            format!("inspect: fingerprint of the store: {e}"),
                        )
                    })?;
            lines.push(format!("fingerprint={index}:{crc:08x}:{pairs}"));
        }
        if let Some(index) = term_at {
            let term = facts
                .term_at
                .map_or_else(|| "none".to_string(), |t| t.to_string());
            lines.push(format!("term_at={index}:{term}"));
        }
        let mut text = lines.join("\n");
        text.push('\n');
        Ok(text)
    }

    /// A consistent copy of the store beside it, and its length.
    async fn copy_store(&self) -> Result<(CopyFile, u64), ErrorResponse> {
        if self.is_master() {
            return Err(refused(ResultCode::NotSupported, ON_MASTER));
        }
        let n = COPIES.fetch_add(1, Ordering::Relaxed);
        let mut name = self.store.path().as_os_str().to_owned();
        name.push(format!("{COPY_INFIX}{}.{n}", std::process::id()));
        let copy = CopyFile(PathBuf::from(name));
        let store = std::sync::Arc::clone(&self.store);
        let path = copy.0.clone();
        tracing::info!(copy = %path.display(), "get_db: copying the store");
        let made = tokio::task::spawn_blocking(move || {
            store.copy_to(&path, &store::StoreOptions::default())
        })
        .await
        .map_err(|e| refused(ResultCode::UnknownFailure, format!("get_db: {e}")))?;
        let index = made.map_err(|e| {
            refused(
                ResultCode::UnknownFailure,
                format!("get_db: copying the store failed: {e}"),
            )
        })?;
        self.record_base(&copy.0, index).await?;
        let length = std::fs::metadata(&copy.0)
            .map(|m| m.len())
            .map_err(|e| refused(ResultCode::UnknownFailure, format!("get_db: {e}")))?;
        tracing::info!(index, bytes = length, "get_db: store copied");
        Ok((copy, length))
    }

    /// `flush_store`: the store made durable now.
    pub(super) async fn flush_store(&self) -> Result<Reply, ErrorResponse> {
        let store = std::sync::Arc::clone(&self.store);
        let done = tokio::task::spawn_blocking(move || store.checkpoint())
            .await
            .map_err(|e| refused(ResultCode::UnknownFailure, format!("flush_store: {e}")))?;
        let index = done.map_err(|e| {
            refused(
                ResultCode::UnknownFailure,
                format!("flush_store: the store checkpoint failed: {e}"),
            )
        })?;
        tracing::info!(index, "flush_store: store durable");
        Ok(Reply::FlushStore)
    }

    /// `optimize_db`, `defrag_db`.
    pub(super) fn compact_store(&self, command: Command) -> ErrorResponse {
        if self.is_master() {
            return refused(ResultCode::NotSupported, ON_MASTER);
        }
        refused(
            ResultCode::NotSupported,
            format!(
                "{}: the store (redb) is compacted only while no process has it open: \
                 stop this node and run `arakoon --optimize-db-offline {}`",
                command.name(),
                self.store.path().display()
            ),
        )
    }

    /// `copy_db_to_head n`: the collapse keeping `n` tlogs, answered once
    /// it is done.
    pub(super) async fn copy_db_to_head(&self, tlogs_to_keep: i32) -> Result<Reply, ErrorResponse> {
        if tlogs_to_keep < 1 {
            return Err(refused(
                ResultCode::UnknownFailure,
                format!("tlogs_to_keep={tlogs_to_keep} is not acceptable"),
            ));
        }
        if self.is_master() {
            return Err(refused(ResultCode::NotSupported, ON_MASTER));
        }
        let (started_tx, started_rx) = oneshot::channel();
        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
        self.requests
            .send(DriverRequest::Collapse {
                tlogs_to_keep,
                started: started_tx,
                progress: progress_tx,
            })
            .await
            .map_err(|_| Self::going_down())?;
        let count = match started_rx.await {
            Ok(Ok(count)) => count,
            Ok(Err(why)) => return Err(refused(ResultCode::UnknownFailure, why.to_string())),
            Err(_) => return Err(Self::going_down()),
        };
        for _ in 0..count {
            if progress_rx.recv().await.is_none() {
                return Err(Self::going_down());
            }
        }
        tracing::info!(tlogs_to_keep, removed = count, "copy_db_to_head: done");
        Ok(Reply::CopyDbToHead)
    }
}

#[cfg(test)]
mod tests {
    use super::remove_leftover_copies;

    #[test]
    fn leftover_copies_of_this_store_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("arakoon_0.db");
        let keep = [
            "arakoon_0.db",
            "arakoon_1.db.get_db.7.0",
            "arakoon_0.db-other",
        ];
        let gone = ["arakoon_0.db.get_db.123.0", "arakoon_0.db.get_db.123.1"];
        for name in keep.iter().chain(&gone) {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        assert_eq!(remove_leftover_copies(&store).unwrap(), 2);
        for name in keep {
            assert!(dir.path().join(name).exists(), "{name} was removed");
        }
        for name in gone {
            assert!(!dir.path().join(name).exists(), "{name} is still there");
        }
        assert_eq!(remove_leftover_copies(&store).unwrap(), 0);
        let absent = dir.path().join("nowhere").join("x.db");
        assert_eq!(remove_leftover_copies(&absent).unwrap(), 0);
    }
}
