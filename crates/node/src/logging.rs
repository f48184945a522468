//! The node's logs: `tracing` to the node's `log_sinks` (Arakoon's key:
//! `console:` is stderr, anything else a file; default: the file
//! `<log_dir>/<name>.log` and stderr), at `log_level`, with the levels of a
//! `log_config` section for Arakoon's components. SIGUSR1 reopens every log
//! file (logrotate's convention, and Arakoon's: rotate by renaming the file,
//! then send SIGUSR1; the node goes on in a new file of the old name).
//!
//! Arakoon's components map onto this code's modules (`tracing` targets):
//! `paxos` → `consensus`, `replica`; `tcp_messaging` → `node::messaging`;
//! `client_protocol` → `node::service`, `protocol`; `tlog_map` → `tlog`;
//! `server` → `node` (the rest of the node).
//!
//! Invariants: a line is written whole to one file (the file is swapped
//! under the same lock the writers take); a file that cannot be reopened
//! leaves the old one in use, with a warning, and never stops the node;
//! SIGUSR1 never stops the node, with or without a log file.

use config::{LogComponents, LogLevel, LogSink};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// The log file: its path, and the open file the log lines go to.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl LogFile {
    /// Opens (creates, appends to) the file at `path`, and its directory.
    pub fn open(path: &Path) -> io::Result<LogFile> {
        Ok(LogFile {
            path: path.to_path_buf(),
            file: Mutex::new(open_for_append(path)?),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the file at the path anew (after a rotation renamed the old
    /// one) and writes the next lines there. On failure the old file stays.
    pub fn reopen(&self) -> io::Result<()> {
        let fresh = open_for_append(&self.path)?;
        *self.lock() = fresh;
        Ok(())
    }

    fn lock(&self) -> MutexGuard<'_, File> {
        // A writer that panicked mid-line leaves a file that is still fine
        // to append to.
        self.file.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn open_for_append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// One log line's writer: holds the file's lock while the line is written.
pub struct LogFileWriter<'a>(MutexGuard<'a, File>);

impl io::Write for LogFileWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// The writer handle given to `tracing`: shares the [`LogFile`].
#[derive(Debug, Clone)]
struct SharedLogFile(Arc<LogFile>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SharedLogFile {
    type Writer = LogFileWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LogFileWriter(self.0.lock())
    }
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Debug => "debug",
        LogLevel::Info | LogLevel::Notice => "info",
        LogLevel::Warning => "warn",
        LogLevel::Error | LogLevel::Fatal => "error",
    }
}

/// The `EnvFilter` directives for `level` and the components' levels
/// (Arakoon's notice counts as info, fatal as error).
pub fn filter_directives(level: LogLevel, components: &LogComponents) -> String {
    let mut directives = vec![level_name(level).to_string()];
    let targets: [(Option<LogLevel>, &[&str]); 5] = [
        (components.server, &["node"]),
        (components.paxos, &["consensus", "replica"]),
        (components.tcp_messaging, &["node::messaging"]),
        (components.client_protocol, &["node::service", "protocol"]),
        (components.tlog_map, &["tlog"]),
    ];
    for (level, modules) in targets {
        if let Some(level) = level {
            for module in modules {
                directives.push(format!("{module}={}", level_name(level)));
            }
        }
    }
    directives.join(",")
}

type BoxedLayer = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

/// Sets up `tracing` logs at Arakoon's `level` and the `components`'
/// levels to `sinks` (a file that cannot be opened for appending is left
/// out with a warning, on stderr if no other sink is left). `RUST_LOG`, if
/// set, takes precedence. Does nothing if a subscriber is already
/// installed. Returns the log files, for [`reopen_log_on_sigusr1`].
pub fn init_logging(
    level: LogLevel,
    components: &LogComponents,
    sinks: &[LogSink],
) -> Vec<Arc<LogFile>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(filter_directives(level, components))
    });
    let mut errors = Vec::new();
    let mut files = Vec::new();
    let mut console = false;
    for sink in sinks {
        match sink {
            LogSink::Console => console = true,
            LogSink::File(path) => match LogFile::open(path) {
                Ok(f) => files.push(Arc::new(f)),
                Err(e) => errors.push(format!("{}: {e}", path.display())),
            },
        }
    }
    let mut layers: Vec<BoxedLayer> = files
        .iter()
        .map(|f| {
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(SharedLogFile(Arc::clone(f)))
                .boxed()
        })
        .collect();
    if console || layers.is_empty() {
        layers.push(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr)
                .boxed(),
        );
    }
    let installed = tracing_subscriber::registry()
        .with(layers)
        .with(filter)
        .try_init()
        .is_ok();
    if installed {
        for e in errors {
            tracing::warn!("cannot open a log file, leaving it out: {e}");
        }
        files
    } else {
        Vec::new()
    }
}

/// Reopens `file` at every SIGUSR1, for as long as it runs (the node aborts
/// it when it stops). Without a file, SIGUSR1 is only logged: it never
/// stops the node.
pub async fn reopen_log_on_sigusr1(files: Vec<Arc<LogFile>>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut usr1 = match signal(SignalKind::user_defined1()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot handle SIGUSR1 (log reopening): {e}");
                return;
            }
        };
        while usr1.recv().await.is_some() {
            if files.is_empty() {
                tracing::info!("SIGUSR1: no log file to reopen");
            }
            for f in &files {
                match f.reopen() {
                    Ok(()) => {
                        tracing::info!(path = %f.path().display(), "SIGUSR1: log file reopened")
                    }
                    Err(e) => tracing::warn!(
                        path = %f.path().display(),
                        "SIGUSR1: cannot reopen the log file, still writing to the old one: {e}"
                    ),
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = files;
        std::future::pending::<()>().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use tracing_subscriber::fmt::MakeWriter;

    #[test]
    fn reopen_writes_the_next_lines_to_a_new_file_of_the_same_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs").join("node.log");
        let file = SharedLogFile(Arc::new(LogFile::open(&path).unwrap()));
        writeln!(file.make_writer(), "before").unwrap();
        let rotated = dir.path().join("node.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        writeln!(file.make_writer(), "still the old file").unwrap();
        file.0.reopen().unwrap();
        writeln!(file.make_writer(), "after").unwrap();
        assert_eq!(
            std::fs::read_to_string(&rotated).unwrap(),
            "before\nstill the old file\n"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "after\n");
    }

    #[test]
    fn component_levels_become_target_directives() {
        let c = LogComponents {
            paxos: Some(LogLevel::Debug),
            tcp_messaging: Some(LogLevel::Fatal),
            ..LogComponents::default()
        };
        assert_eq!(
            filter_directives(LogLevel::Notice, &c),
            "info,consensus=debug,replica=debug,node::messaging=error"
        );
        assert_eq!(
            filter_directives(LogLevel::Warning, &LogComponents::default()),
            "warn"
        );
        // The directives parse as tracing's filter.
        tracing_subscriber::EnvFilter::try_new(filter_directives(LogLevel::Info, &c)).unwrap();
    }

    #[test]
    fn a_failed_reopen_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        let path = logs.join("node.log");
        let file = SharedLogFile(Arc::new(LogFile::open(&path).unwrap()));
        let moved = dir.path().join("moved");
        std::fs::rename(&logs, &moved).unwrap();
        // The directory's name is now a file: the reopen cannot make it.
        std::fs::write(&logs, b"in the way").unwrap();
        assert!(file.0.reopen().is_err());
        writeln!(file.make_writer(), "kept").unwrap();
        assert_eq!(
            std::fs::read_to_string(moved.join("node.log")).unwrap(),
            "kept\n"
        );
    }
}
