//! Arakoon's `-daemonize` for `--node`: the node goes to the background
//! as a daemon does (fork, a new session, fork again so that it can never
//! take a terminal, standard streams on `/dev/null`) and writes its pid to
//! `<home>/<name>.pid`, which it removes when it stops. Arakoon itself
//! writes no pid file (its management finds the process with
//! `pgrep -f` on the command line, which works here too: the daemon keeps
//! the command line it was started with). The working directory is kept,
//! so that relative paths in the config mean what they meant.
//!
//! Called before any thread exists (the node's runtimes start after it).

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

/// Where a daemonized node writes its pid.
pub fn pid_file(home: &Path, name: &str) -> PathBuf {
    home.join(format!("{name}.pid"))
}

/// Turns this process into a daemon; returns in the daemon only (the
/// starting process and the intermediate one exit with status 0). On
/// failure, a reason, in the process that can still report it.
#[allow(unsafe_code)]
pub fn daemonize(pid_file: &Path) -> Result<(), String> {
    if let Some(dir) = pid_file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    // SAFETY: fork in a process with one thread (nothing has started any
    // other yet); the child only calls async-signal-safe functions until
    // it goes on as this same single-threaded program.
    match unsafe { libc::fork() } {
        -1 => return Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {}
        _ => std::process::exit(0),
    }
    // SAFETY: setsid has no memory-safety preconditions.
    if unsafe { libc::setsid() } == -1 {
        return Err(format!("setsid: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: as above: still one thread.
    match unsafe { libc::fork() } {
        -1 => return Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {}
        _ => std::process::exit(0),
    }
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
        .map_err(|e| format!("/dev/null: {e}"))?;
    for fd in 0..3 {
        // SAFETY: dup2 on a descriptor we own onto the standard ones.
        if unsafe { libc::dup2(null.as_raw_fd(), fd) } == -1 {
            return Err(format!("dup2: {}", std::io::Error::last_os_error()));
        }
    }
    let mut file = std::fs::File::create(pid_file)
        .map_err(|e| format!("pid file {}: {e}", pid_file.display()))?;
    writeln!(file, "{}", std::process::id())
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("pid file {}: {e}", pid_file.display()))?;
    Ok(())
}

/// Removes the pid file if it still names this process.
pub fn remove_pid_file(pid_file: &Path) {
    let ours = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        == Some(std::process::id());
    if ours {
        let _ = std::fs::remove_file(pid_file);
    }
}
