//! The `arakoon` binary as Arakoon's management scripts and system tests
//! call it: `--node NAME -config FILE -start` with `-daemonize` (a pid
//! file, the process found by its command line), `-catchup-only` (catch
//! up, then stop with status 0), `-autofix` (a torn tlog tail repaired);
//! `--load N` and `--benchmark` on a live cluster.

mod common;

use common::{wait_for_master, Processes, DEADLINE};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the process with this pid when dropped (a daemon is not our child).
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-9")
            .arg(self.0.to_string())
            .status();
    }
}

/// A child killed when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn arakoon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_arakoon"))
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| {
            !s.lines()
                .any(|l| l.starts_with("State:") && l.contains("Z"))
        })
        .unwrap_or(false)
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < DEADLINE,
            "{what} not within {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The child's status, killing it if it runs past the deadline.
fn wait_exit(mut child: ChildGuard) -> std::process::ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait().expect("try_wait") {
            return status;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "still running after {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemonize_runs_the_node_in_the_background_with_a_pid_file() {
    let mut p = Processes::start(1);
    p.kill(0);
    let out = arakoon()
        .args(["--node", "arakoon_0", "-config"])
        .arg(&p.config_path)
        .args(["-start", "-daemonize"])
        .stdin(Stdio::null())
        .output()
        .expect("run arakoon -daemonize");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid_file = p.home(0).join("arakoon_0.pid");
    wait_until("the pid file", || {
        std::fs::read_to_string(&pid_file).is_ok_and(|t| t.ends_with('\n'))
    });
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _guard = KillOnDrop(pid);
    assert!(alive(pid));
    // Found by its command line, as Arakoon's management finds it.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    assert!(
        cmdline.contains("--node arakoon_0 -config") && cmdline.contains("-start"),
        "{cmdline}"
    );

    let c = p.client();
    wait_for_master(&c, &p).await;
    c.set(b"k", b"v").await.unwrap();
    assert_eq!(c.get(b"k").await.unwrap(), b"v");

    // SIGTERM: a graceful stop, and the pid file goes with the process.
    assert!(Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    wait_until("the daemon's exit", || !alive(pid));
    assert!(!pid_file.exists(), "the pid file outlived the daemon");
}

/// `-catchup-only`: a node that missed writes catches up and exits 0; its
/// store then holds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catchup_only_catches_up_then_stops() {
    let mut p = Processes::start(3);
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let behind = (common::index_of(&p, &master) + 1) % 3;
    p.kill(behind);
    for k in 0..300 {
        c.set(format!("k{k:04}").as_bytes(), b"v").await.unwrap();
    }
    let txid = common::txid(c.get_txid().await.unwrap());
    let child = arakoon()
        .args(["--node", &p.names[behind], "-config"])
        .arg(&p.config_path)
        .args(["-catchup-only"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn -catchup-only");
    let status = wait_exit(ChildGuard(child));
    assert!(status.success(), "-catchup-only ended with {status}");
    let store = p.home(behind).join(format!("{}.db", p.names[behind]));
    let out = arakoon().arg("--verify-db").arg(&store).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let applied: i64 = text
        .lines()
        .find_map(|l| l.strip_prefix("applied_index: "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no applied_index in {text}"));
    assert!(applied >= txid, "applied {applied} < {txid}:\n{text}");
    assert!(text.contains("\nkeys: 300\n"), "{text}");
}

/// Arakoon's `-autofix`: a tlog whose last entry was torn by a crash (an
/// unexpected end) is repaired and the node serves every write before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autofix_starts_a_node_whose_tlog_tail_is_torn() {
    let mut p = Processes::start(1);
    let c = p.client();
    wait_for_master(&c, &p).await;
    for k in 0..50 {
        c.set(format!("k{k}").as_bytes(), b"v").await.unwrap();
    }
    p.kill(0);
    // Half a frame after the last one: what a crash mid-append leaves.
    let segment = active_segment(&p.home(0));
    let mut bytes = std::fs::read(&segment).unwrap();
    let end = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
    bytes[end..end + 12].copy_from_slice(&[60, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8]);
    std::fs::write(&segment, &bytes).unwrap();
    let child = arakoon()
        .args(["--node", "arakoon_0", "-config"])
        .arg(&p.config_path)
        .args(["-start", "-autofix"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _node = ChildGuard(child);
    wait_for_master(&c, &p).await;
    for k in 0..50 {
        assert_eq!(c.get(format!("k{k}").as_bytes()).await.unwrap(), b"v");
    }
    c.set(b"after", b"v").await.unwrap();
}

fn active_segment(dir: &Path) -> std::path::PathBuf {
    let mut plain: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "tlog"))
        .collect();
    plain.sort();
    plain.pop().expect("an active segment")
}

/// `--load N`: N clients setting `"{c}:{i}_key"`, printing `"{c:04}: {i}"`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_sets_keys_from_n_clients() {
    let p = Processes::start(1);
    let c = p.client();
    wait_for_master(&c, &p).await;
    let mut child = arakoon()
        .arg("-config")
        .arg(&p.config_path)
        .args(["--load", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let guard = ChildGuard(child);
    let mut seen = (false, false);
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        seen.0 |= line == "0001: 3";
        seen.1 |= line == "0002: 3";
        if seen.0 && seen.1 {
            break;
        }
    }
    drop(guard);
    assert!(seen.0 && seen.1);
    for key in ["1:2_key", "2:2_key"] {
        assert_eq!(c.get(key.as_bytes()).await.unwrap(), key.as_bytes());
    }
}

/// `--benchmark` with Arakoon's flags runs `arakoon bench`'s scenarios.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn benchmark_with_arakoons_flags() {
    let p = Processes::start(1);
    let c = p.client();
    wait_for_master(&c, &p).await;
    let out = arakoon()
        .arg("-config")
        .arg(&p.config_path)
        .args([
            "--benchmark",
            "-scenario",
            "set, set_tx, get",
            "-max_n",
            "200",
            "-n_clients",
            "2",
            "-value_size",
            "32",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for scenario in ["set", "sequence", "get"] {
        assert!(text.contains(scenario), "no {scenario} in:\n{text}");
    }
}

/// Arakoon's management stops a node with SIGTERM, repeated every second,
/// and sends SIGUSR2 then `kill -9` after 10 s: the master of a 3-node
/// cluster under writes stops within that time with status 0, and SIGUSR2
/// (a crash-log request) does not stop a node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_as_arakoons_management_sends_it_stops_a_loaded_master_in_time() {
    let mut p = Processes::start(3);
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let m = common::index_of(&p, &master);
    let slave = (m + 1) % 3;
    common::signal(&p, slave, "USR2");
    let writer = {
        let c = c.clone();
        tokio::spawn(async move {
            let mut k = 0u64;
            // Until the master goes: failures are expected then.
            while c.set(format!("w{k}").as_bytes(), b"v").await.is_ok() {
                k += 1;
            }
            k
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut child = ChildGuard(p.children[m].take().expect("the master runs"));
    let pid = child.0.id().to_string();
    let started = Instant::now();
    let status = loop {
        // It may have exited since the last look: the status is not checked.
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let until = Instant::now() + Duration::from_secs(1);
        let mut done = None;
        while Instant::now() < until {
            if let Some(s) = child.0.try_wait().unwrap() {
                done = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(s) = done {
            break s;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the master did not stop within 10 s of SIGTERM"
        );
    };
    eprintln!(
        "the master stopped {:?} after the first SIGTERM",
        started.elapsed()
    );
    assert!(status.success(), "{status}");
    let written = writer.await.unwrap();
    assert!(written > 0);
    // The slave that got SIGUSR2 still runs and serves.
    assert!(p.children[slave]
        .as_mut()
        .unwrap()
        .try_wait()
        .unwrap()
        .is_none());
    wait_for_master(&c, &p).await;
    assert!(common::stderr_has(&p, slave, "SIGUSR2"));
}

/// Arakoon's `deploy_2_to_3`: a 2-node cluster grows to 3 by adding the
/// node to the config and restarting the old nodes one at a time; the new
/// node starts empty, catches up, and the cluster keeps every write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_node_cluster_grows_to_three_by_editing_the_config() {
    let mut p = Processes::start(2);
    let c = p.client();
    wait_for_master(&c, &p).await;
    for k in 0..200 {
        c.set(format!("before-{k:03}").as_bytes(), b"v")
            .await
            .unwrap();
    }
    // The third node, in every node's (the one shared) config.
    let (cp, mp) = (common::free_port(), common::free_port());
    let home = p.dir.path().join("arakoon_2");
    let text = std::fs::read_to_string(&p.config_path).unwrap();
    let text = text.replacen(
        "cluster = arakoon_0, arakoon_1",
        "cluster = arakoon_0, arakoon_1, arakoon_2",
        1,
    ) + &format!(
        "[arakoon_2]\nip = 127.0.0.1\nclient_port = {cp}\nmessaging_port = {mp}\nhome = {}\nlog_level = info\n",
        home.display()
    );
    std::fs::write(&p.config_path, text).unwrap();
    p.names.push("arakoon_2".into());
    p.client_addresses.push(format!("127.0.0.1:{cp}"));
    p.children.push(None);
    // Restart the old nodes one at a time, then start the new one.
    for i in 0..2 {
        p.kill(i);
        p.spawn(i);
        let c2 = Processes::client(&p);
        wait_for_master(&c2, &p).await;
    }
    p.spawn(2);
    let c3 = p.client();
    wait_for_master(&c3, &p).await;
    c3.set(b"after", b"v").await.unwrap();
    let txid = common::txid(c3.get_txid().await.unwrap());
    common::read_at_least(&c3, &p, 2, txid, b"after").await;
    let new_node = c3
        .node("arakoon_2")
        .unwrap()
        .with_consistency(client::Consistency::AtLeast(txid));
    for k in 0..200 {
        assert_eq!(
            new_node
                .get(format!("before-{k:03}").as_bytes())
                .await
                .unwrap(),
            b"v"
        );
    }
}

/// `--drop-master` on a preferred master, as Arakoon does it: the command
/// returns once another node is master, and the preferred node does not
/// take mastership back at once (before, it did within milliseconds, so
/// the command was a no-op): watched for three lease periods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_master_on_a_preferred_master_hands_over_for_good() {
    let p = Processes::start_with(3, 1, "master = arakoon_0\npreferred_master = true");
    let c = p.client();
    let started = Instant::now();
    while wait_for_master(&c, &p).await != "arakoon_0" {
        assert!(
            started.elapsed() < DEADLINE,
            "the preferred node never became master"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.set(b"k", b"v").await.unwrap();
    let port = p.client_port(0).to_string();
    let out = arakoon()
        .args(["--drop-master", &p.cluster_id, "127.0.0.1", &port])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A fresh client each time: a client caches the master it found.
    let master = p.client().master().await.unwrap();
    assert_ne!(
        master, "arakoon_0",
        "drop_master answered before the hand-over"
    );
    let watch = Instant::now();
    while watch.elapsed() < Duration::from_secs(3) {
        if let Ok(m) = p.client().master().await {
            assert_ne!(
                m,
                "arakoon_0",
                "mastership went back to the preferred node after {:?}",
                watch.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(c.get(b"k").await.unwrap(), b"v");
}
