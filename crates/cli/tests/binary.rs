//! The built `arakoon` binary against scripted fake nodes: output, exit
//! status and the one-line reason on failure.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use client::fake_node::FakeNode;

const CLUSTER: &str = "cli_test";

/// A directory removed when dropped (also when the test fails).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("arakoon-cli-test-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A free port on 127.0.0.1 for a messaging port nobody uses; the listener
/// keeps it distinct from every other port until the config is written.
fn unused_port() -> (std::net::TcpListener, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    (listener, port)
}

/// Writes an Arakoon config naming `nodes`; returns its path.
fn write_config(dir: &TempDir, nodes: &[FakeNode]) -> PathBuf {
    let names: Vec<&str> = nodes.iter().map(FakeNode::name).collect();
    let mut text = format!(
        "[global]\ncluster = {}\ncluster_id = {CLUSTER}\n",
        names.join(", ")
    );
    let mut reserved = Vec::new();
    for node in nodes {
        let (listener, messaging) = unused_port();
        reserved.push(listener);
        text.push_str(&format!(
            "\n[{name}]\nip = 127.0.0.1\nclient_port = {port}\nmessaging_port = {messaging}\nhome = {home}\nlog_level = info\n",
            name = node.name(),
            port = node.port(),
            home = dir.0.join(node.name()).display(),
        ));
    }
    let path = dir.0.join("arakoon.ini");
    std::fs::write(&path, text).expect("write config");
    path
}

/// Runs the binary off the async runtime, so the fake nodes keep serving.
async fn arakoon(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_arakoon"))
            .args(&args)
            .output()
    })
    .await
    .expect("join");
    output.expect("run the arakoon binary")
}

/// As [`arakoon`], with `input` on standard input.
async fn arakoon_with_input(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let input = input.to_vec();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_arakoon"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&input)?;
        }
        child.wait_with_output()
    })
    .await
    .expect("join");
    output.expect("run the arakoon binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn cluster(names: &[&str], master: &str) -> Vec<FakeNode> {
    let mut nodes = Vec::new();
    for name in names {
        let node = FakeNode::start(name, CLUSTER).await.expect("bind");
        node.set_master(Some(master));
        nodes.push(node);
    }
    nodes
}

fn config_arg(path: &Path) -> String {
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_found_and_not_found() {
    let dir = TempDir::new();
    let nodes = cluster(&["n0"], "n0").await;
    nodes[0].insert(b"foo", b"bar \"baz\"\n");
    let config = config_arg(&write_config(&dir, &nodes));

    let found = arakoon(&["-config", &config, "--get", "foo"]).await;
    assert_eq!(found.status.code(), Some(0), "{}", text(&found.stderr));
    assert_eq!(text(&found.stdout), "\"bar \\\"baz\\\"\\n\"\n");

    let missing = arakoon(&["-config", &config, "--get", "nope"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        text(&missing.stderr),
        "arakoon: get \"nope\": key not found\n"
    );
    assert!(missing.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_master_set_and_range_entries() {
    let dir = TempDir::new();
    let nodes = cluster(&["n0", "n1", "n2"], "n1").await;
    let config = config_arg(&write_config(&dir, &nodes));

    let who = arakoon(&["-config", &config, "--who-master"]).await;
    assert_eq!(who.status.code(), Some(0), "{}", text(&who.stderr));
    assert_eq!(text(&who.stdout), "n1\n");

    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
        let set = arakoon(&["--config", &config, "--set", k, v]).await;
        assert_eq!(set.status.code(), Some(0), "{}", text(&set.stderr));
    }
    assert_eq!(nodes[1].value(b"b").as_deref(), Some(&b"2"[..]));

    let range = arakoon(&[
        "-config",
        &config,
        "--range-entries",
        "-left",
        "a",
        "-right",
        "c",
    ])
    .await;
    assert_eq!(range.status.code(), Some(0), "{}", text(&range.stderr));
    assert_eq!(text(&range.stdout), "\"a\" \"1\"\n\"b\" \"2\"\n2 listed\n");

    let prefix = arakoon(&["-config", &config, "--delete-prefix", ""]).await;
    assert_eq!(text(&prefix.stdout), "3\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_version_ping_and_drop_master_talk_to_that_node() {
    let dir = TempDir::new();
    let nodes = cluster(&["n0", "n1"], "n0").await;
    let config = config_arg(&write_config(&dir, &nodes));
    let version = arakoon(&["-config", &config, "--node-version", "n1"]).await;
    assert_eq!(version.status.code(), Some(0), "{}", text(&version.stderr));
    assert_eq!(text(&version.stdout), "0.1.0\nfake node n1\n");
    assert_eq!(nodes[0].connections(), 0, "the master was not asked");

    // Arakoon's CLUSTER_ID IP PORT form, no config.
    let port = nodes[1].port().to_string();
    let ping = arakoon(&["--ping", CLUSTER, "127.0.0.1", &port]).await;
    assert_eq!(ping.status.code(), Some(0), "{}", text(&ping.stderr));
    assert!(
        text(&ping.stdout).starts_with("fake node n1\ntook\t"),
        "{}",
        text(&ping.stdout)
    );
    let port = nodes[0].port().to_string();
    let drop = arakoon(&["--drop-master", CLUSTER, "127.0.0.1", &port]).await;
    assert_eq!(drop.status.code(), Some(0), "{}", text(&drop.stderr));
    assert_eq!(nodes[0].count(protocol::Command::DropMaster), 1);

    let unknown = arakoon(&["-config", &config, "--node-version", "n9"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(
        text(&unknown.stderr),
        "arakoon: node-version n9: unknown node \"n9\" (known: n0, n1)\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_exit_non_zero_with_one_line() {
    let dir = TempDir::new();
    let missing_config = dir.0.join("absent.ini");
    let out = arakoon(&["-config", &config_arg(&missing_config), "--who-master"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.starts_with("arakoon: config: cannot read ") && stderr.contains("absent.ini"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let out = arakoon(&["--get"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).lines().count(),
        1,
        "{}",
        text(&out.stderr)
    );

    let out = arakoon(&["--node", "n0", "-config", "x.ini"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("arakoon: --node n0: "));
    assert!(text(&out.stderr).contains("x.ini"), "{}", text(&out.stderr));

    let out = arakoon(&["demo", "--nodes", "5"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "arakoon demo: unknown argument '--nodes' (usage: arakoon demo [--dir DIR])\n"
    );

    let out = arakoon(&["--version"]).await;
    assert_eq!(out.status.code(), Some(0));
    // Arakoon's tests read the first quoted string as the git revision
    // (without a '+': no local modifications) and `tlogEntriesPerFile:`.
    let version = text(&out.stdout);
    assert!(version.starts_with("git_revision: \""), "{version}");
    let revision = version.split('"').nth(1).expect("a quoted revision");
    assert!(!revision.is_empty() && !revision.contains('+'), "{version}");
    assert!(
        version.contains("\ntlogEntriesPerFile: 50000\n"),
        "{version}"
    );
    assert!(version.contains("\nversion: "), "{version}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_values_prefix_and_cluster_queries() {
    let dir = TempDir::new();
    let nodes = cluster(&["n0", "n1"], "n1").await;
    let config = config_arg(&write_config(&dir, &nodes));

    let value = b"line one\nline two\xff";
    let set = arakoon_with_input(&["-config", &config, "--set-raw", "raw"], value).await;
    assert_eq!(set.status.code(), Some(0), "{}", text(&set.stderr));
    assert_eq!(nodes[1].value(b"raw").as_deref(), Some(&value[..]));
    let get = arakoon(&["-config", &config, "--get-raw", "raw"]).await;
    assert_eq!(get.stdout, value);

    nodes[1].insert(b"raw2", b"x");
    nodes[1].insert(b"other", b"y");
    let prefix = arakoon(&["-config", &config, "--prefix", "raw", "-max_results", "5"]).await;
    assert_eq!(text(&prefix.stdout), "\"raw\"\n\"raw2\"\n");
    let count = arakoon(&["-config", &config, "--n-values"]).await;
    assert_eq!(text(&count.stdout), "3\n");
    let progress = arakoon(&["-config", &config, "--expect-progress-possible"]).await;
    assert_eq!(text(&progress.stdout), "true\n");
    let nop = arakoon(&["-config", &config, "--nop"]).await;
    assert_eq!(nop.status.code(), Some(0), "{}", text(&nop.stderr));
    assert_eq!(nodes[1].count(protocol::Command::Nop), 1);
    let stats = arakoon(&["-config", &config, "--statistics"]).await;
    assert!(
        text(&stats.stdout).starts_with("arakoon_stats:\n  node_name: \"n1\"\n"),
        "{}",
        text(&stats.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn who_master_without_a_master_fails_with_one_line() {
    let dir = TempDir::new();
    let nodes = cluster(&["n0", "n1"], "nobody").await;
    let config = config_arg(&write_config(&dir, &nodes));
    let who = arakoon(&["-config", &config, "--who-master"]).await;
    // No master: the cluster cannot serve, status 3.
    assert_eq!(who.status.code(), Some(3));
    let stderr = text(&who.stderr);
    assert!(
        stderr.starts_with(
            "arakoon: who-master: no master found for cluster \"cli_test\": n0: names \"nobody\""
        ),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// `ARAKOON_LOG=debug` shows discovery on stderr; a bad level is a usage error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_level_from_the_environment() {
    let dir = TempDir::new();
    let nodes = cluster(&["n0"], "n0").await;
    let config = config_arg(&write_config(&dir, &nodes));
    let args = ["-config".to_string(), config, "--who-master".to_string()];
    let run = |level: &'static str| {
        let args = args.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_arakoon"))
                .args(&args)
                .env("ARAKOON_LOG", level)
                .output()
        })
    };
    let debug = run("debug").await.expect("join").expect("run");
    assert_eq!(debug.status.code(), Some(0));
    assert!(
        text(&debug.stderr).contains("master found"),
        "{}",
        text(&debug.stderr)
    );
    let bad = run("loud").await.expect("join").expect("run");
    assert_eq!(bad.status.code(), Some(2));
    assert_eq!(
        text(&bad.stderr),
        "arakoon: ARAKOON_LOG=loud: not a level (error, warn, info, debug, trace)\n"
    );
}

/// Rule (exit statuses in `--help`): a refused operation is 1, a bad
/// command line 2, a cluster that cannot be reached 3; each one line on
/// stderr, never a backtrace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_statuses_tell_the_kind_of_failure() {
    let dir = TempDir::new();
    let nodes = cluster(&["n0"], "n0").await;
    let config = config_arg(&write_config(&dir, &nodes));
    let missing = arakoon(&["-config", &config, "--get", "nope"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        text(&missing.stderr),
        "arakoon: get \"nope\": key not found\n"
    );

    let bad = arakoon(&["-config", &config, "--frobnicate"]).await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(
        text(&bad.stderr).starts_with("arakoon: unexpected argument '--frobnicate'"),
        "{}",
        text(&bad.stderr)
    );
    assert_eq!(text(&bad.stderr).lines().count(), 1);

    // A node that is not there: its port was free a moment ago.
    let (listener, port) = unused_port();
    drop(listener);
    let (reserved, messaging) = unused_port();
    let config_path = dir.0.join("nobody.ini");
    std::fs::write(
        &config_path,
        format!(
            "[global]\ncluster = n0\ncluster_id = {CLUSTER}\n\n[n0]\nip = 127.0.0.1\n\
             client_port = {port}\nmessaging_port = {messaging}\nhome = {}\nlog_level = info\n",
            dir.0.join("n0").display()
        ),
    )
    .expect("write config");
    drop(reserved);
    let down = arakoon(&["-config", &config_arg(&config_path), "--who-master"]).await;
    let stderr = text(&down.stderr);
    assert_eq!(down.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.starts_with("arakoon: who-master: ") && stderr.contains("is the cluster running"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let help = arakoon(&["--help"]).await;
    let help = text(&help.stdout);
    for line in [
        "Exit status:",
        "  3  the cluster cannot be reached",
        "Offline tools",
        "--dump-tlog <FILE>",
    ] {
        assert!(help.contains(line), "{line:?} not in:\n{help}");
    }
}

/// Rule: output to a closed pipe ends quietly, with status 0: `--prefix`
/// with more keys than a pipe buffers, read one line and the reader gone;
/// and `--help` whose reader is gone before it starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_ends_the_output_quietly() {
    use std::io::BufRead;
    use std::process::Stdio;
    let dir = TempDir::new();
    let nodes = cluster(&["n0"], "n0").await;
    let value = [b'v'; 16];
    for k in 0..5000 {
        nodes[0].insert(
            format!("key_with_a_long_enough_name_{k:06}").as_bytes(),
            &value,
        );
    }
    let config = config_arg(&write_config(&dir, &nodes));
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_arakoon"))
            .args([
                "-config",
                &config,
                "--prefix",
                "key",
                "-max_results",
                "5000",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = std::io::BufReader::new(stdout);
        let mut first = String::new();
        reader.read_line(&mut first)?;
        assert_eq!(first, "\"key_with_a_long_enough_name_000000\"\n");
        drop(reader);
        child.wait_with_output()
    })
    .await
    .expect("join")
    .expect("run arakoon");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");

    let out = tokio::task::spawn_blocking(|| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_arakoon"))
            .arg("--help")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        drop(child.stdout.take());
        child.wait_with_output()
    })
    .await
    .expect("join")
    .expect("run arakoon");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

/// `arakoon completions bash` prints a script that knows the flags and
/// the subcommands; an unknown shell is a usage error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_for_bash_zsh_fish() {
    for shell in ["bash", "zsh", "fish"] {
        let out = arakoon(&["completions", shell]).await;
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains("dump-tlog"), "{shell}: {script}");
        assert!(script.contains("who-master"), "{shell}: {script}");
    }
    let bash = text(&arakoon(&["completions", "bash"]).await.stdout);
    assert!(
        bash.contains("--verify-db") && bash.contains("demo"),
        "{bash}"
    );
    let out = arakoon(&["completions", "tcsh"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr).lines().count(),
        1,
        "{}",
        text(&out.stderr)
    );
}
