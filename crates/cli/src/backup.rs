//! `--backup-db CLUSTER_ID IP PORT FILE`: the node's `get_db` answer (a
//! consistent copy of its store; a master refuses, as Arakoon's does)
//! written to `FILE.part` beside `FILE`, fsynced, then renamed to `FILE`:
//! `FILE` is either absent or whole. A failure, or Ctrl-C, removes the
//! part file. Progress: a bar on a terminal, a line every few seconds
//! otherwise (on standard error).

use crate::actions::{client_failure, ActionError};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long to wait for each chunk of the copy (the node first makes the
/// copy, which for a large store takes a while).
const CHUNK_TIMEOUT: Duration = Duration::from_secs(600);
/// How often a plain progress line is written when not on a terminal.
const LINE_INTERVAL: Duration = Duration::from_secs(5);

/// Removes the part file unless the backup completed.
struct PartFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for PartFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Writes the node's store copy to `file`; returns its length.
pub(crate) async fn backup_db(
    client: &client::Client,
    file: &Path,
    what: &str,
) -> Result<u64, ActionError> {
    let mut part_name = file.as_os_str().to_owned();
    part_name.push(".part");
    let mut part = PartFile {
        path: PathBuf::from(part_name),
        keep: false,
    };
    let io_failed = |e: std::io::Error| ActionError::new(what, e);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&part.path)
        .map_err(|e| {
            ActionError::new(what, format!("cannot create {}: {e}", part.path.display()))
        })?;
    let mut bar: Option<indicatif::ProgressBar> = None;
    let terminal = std::io::stderr().is_terminal();
    let mut last_line = Instant::now();
    let patient = client.with_request_timeout(CHUNK_TIMEOUT);
    let download = patient.get_db(&mut out, |done, total| {
        if terminal {
            let b = bar.get_or_insert_with(|| {
                let b = indicatif::ProgressBar::new(total);
                let style = indicatif::ProgressStyle::with_template(
                    "backup-db [{bar:40}] {bytes}/{total_bytes} ({eta} left)",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
                b.set_style(style.progress_chars("=> "));
                b
            });
            b.set_position(done);
        } else if last_line.elapsed() >= LINE_INTERVAL || done == total {
            last_line = Instant::now();
            eprintln!("backup-db: {done} of {total} bytes");
        }
    });
    let length = tokio::select! {
        result = download => result.map_err(|e| client_failure(what, &e))?,
        _ = tokio::signal::ctrl_c() => {
            return Err(ActionError::new(what, "interrupted: nothing was written"));
        }
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    out.flush().map_err(io_failed)?;
    out.sync_all().map_err(io_failed)?;
    drop(out);
    std::fs::rename(&part.path, file).map_err(|e| {
        ActionError::new(
            what,
            format!(
                "cannot rename {} to {}: {e}",
                part.path.display(),
                file.display()
            ),
        )
    })?;
    part.keep = true;
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename made durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(length)
}
