//! `arakoon demo` end to end: it starts a 3-node cluster, prints the config
//! and commands to try, the printed config works with the CLI's client
//! actions, and SIGTERM stops everything cleanly (exit 0, ports closed).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const EXE: &str = env!("CARGO_BIN_EXE_arakoon");

/// Kills the demo (and, through PR_SET_PDEATHSIG, its nodes) if the test fails.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_cli(args: &[&str]) -> std::process::Output {
    Command::new(EXE).args(args).output().expect("arakoon runs")
}

#[test]
fn demo_starts_a_cluster_that_serves_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let child = Command::new(EXE)
        .args(["demo", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("demo starts");
    let mut demo = Demo(child);
    let stdout = demo.0.stdout.take().expect("piped stdout");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wait for the banner, with a deadline.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut banner = Vec::new();
    while !banner
        .iter()
        .any(|l: &String| l.contains("Ctrl-C stops the cluster"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => banner.push(line),
            Err(_) => panic!("no banner within 60 s; got {banner:?}"),
        }
    }
    let config = banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("config: "))
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no config line in {banner:?}"));
    assert!(
        config.starts_with(dir.path().canonicalize().unwrap()),
        "{config:?}"
    );
    assert!(
        banner.iter().any(|l| l.contains("--set hello world")),
        "{banner:?}"
    );
    let cfg = config.to_str().unwrap();

    let set = run_cli(&["-config", cfg, "--set", "hello", "world"]);
    assert_eq!(
        set.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );
    let get = run_cli(&["-config", cfg, "--get", "hello"]);
    assert_eq!(
        get.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&get.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&get.stdout).trim(), "\"world\"");
    let who = run_cli(&["-config", cfg, "--who-master"]);
    assert!(String::from_utf8_lossy(&who.stdout).starts_with("arakoon_"));

    // SIGTERM: the demo stops its nodes and exits 0.
    let pid = demo.0.id() as libc::pid_t;
    // SAFETY: kill(2) on our own child.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let stop_deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = demo.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < stop_deadline,
            "demo did not stop within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "demo exit status {status}");
    let rest: Vec<String> = lines.try_iter().collect();
    assert_eq!(
        rest.iter().filter(|l| l.ends_with(" stopped")).count(),
        3,
        "{rest:?}"
    );
    // Every node is gone: the cluster no longer answers.
    let after = run_cli(&["-config", cfg, "--who-master"]);
    assert_ne!(after.status.code(), Some(0));
}
