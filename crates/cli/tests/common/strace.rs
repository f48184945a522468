//! `strace` fault injection into a running node: failed or delayed
//! system calls, detached when the [`Tracer`] is dropped (also when the
//! test fails). `ensure_tool("strace", ...)` first.

use super::Processes;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `strace` injecting into a node; detached (SIGINT) when
/// dropped, also when the test fails.
pub struct Tracer(Child);

impl Tracer {
    /// Attaches to every thread of node `i`, tracing `calls` and applying
    /// one `inject=CALL:WHAT` rule to each.
    pub fn attach(p: &Processes, i: usize, calls: &[&str], what: &str) -> Tracer {
        let pid = p.children[i].as_ref().expect("running").id();
        let mut strace = Command::new("strace");
        strace
            .args(["-f", "-o", "/dev/null", "-p", &pid.to_string()])
            .args(["-e", &format!("trace={}", calls.join(","))]);
        for call in calls {
            strace.args(["-e", &format!("inject={call}:{what}")]);
        }
        let child = strace
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn strace");
        Tracer(child)
    }

    /// Delays every `fdatasync` and `fsync` of node `i` by `delay`.
    pub fn slow_disk(p: &Processes, i: usize, delay: Duration) -> Tracer {
        let what = format!("delay_enter={}", delay.as_micros());
        Tracer::attach(p, i, &["fdatasync", "fsync"], &what)
    }

    /// Fails every `pwrite64` and `fallocate` of node `i` with ENOSPC (its
    /// disk is full as far as it can tell).
    pub fn no_space(p: &Processes, i: usize) -> Tracer {
        Tracer::attach(p, i, &["pwrite64", "fallocate"], "error=ENOSPC")
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        // SIGINT: strace detaches from the node and exits.
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}
