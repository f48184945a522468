//! The real-process harness shared by the tests of the `arakoon` binary:
//! clusters of `arakoon --node NAME -config FILE` processes on loopback
//! ports outside the ephemeral range, each with a random `cluster_id`.
//! Every child is killed when the harness is dropped, also when a test
//! fails; a failing test prints the data directory (with each node's
//! stderr) and the ports.

#![allow(dead_code)] // each test binary uses its own part of the harness

pub mod net;
pub mod strace;

use client::{Client, ClientBuilder, Consistency, RetryPolicy};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Lease period of the test clusters (unless given), seconds.
pub const LEASE_SECS: u64 = 1;
/// Longest wait for anything a test waits for.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// See `node::loopback_ports`: outside the ephemeral range, so that no
/// outgoing connection of a parallel test takes one before its node binds.
pub fn free_port() -> u16 {
    node::loopback_ports(1).expect("a free loopback port")[0]
}

/// A tmpfs of a fixed size mounted on a directory: a small disk that fills
/// up. Unmounted when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(dir: &Path, mib: u64) -> Tmpfs {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mount a {mib} MiB tmpfs on {} (needs root)",
            dir.display()
        );
        Tmpfs(dir.to_path_buf())
    }
}

/// Fills the file system holding `ballast` with that file until less
/// than `leave` bytes are free (a tmpfs counts only written pages, so the
/// bytes are written).
pub fn fill_disk(ballast: &Path, leave: u64) {
    use std::io::Write;
    let dir = ballast.parent().expect("the ballast's directory");
    let mut f = std::fs::File::create(ballast).expect("the ballast file");
    let chunk = vec![0u8; 1 << 20];
    while disk::available_space(dir).expect("statvfs") >= leave {
        f.write_all(&chunk).expect("write the ballast");
    }
    f.sync_all().expect("sync the ballast");
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A cluster of `arakoon` processes; kills them all when dropped.
pub struct Processes {
    /// A tmpfs the cluster's directory is on, if any: unmounted after the
    /// children are killed and before the directory is removed (fields
    /// drop in order, after `Drop::drop`).
    pub tmpfs: Option<Tmpfs>,
    pub dir: tempfile::TempDir,
    /// Random per cluster, so that a stray node of another test (same
    /// ports by accident) is refused at the handshake.
    pub cluster_id: String,
    pub config_path: PathBuf,
    pub names: Vec<String>,
    pub client_addresses: Vec<String>,
    pub children: Vec<Option<Child>>,
    /// The private network the nodes run in, if not on loopback (dropped
    /// after the children are killed: fields drop after `Drop::drop`).
    pub net: Option<net::Net>,
}

/// A cluster id no other test cluster has.
fn random_cluster_id() -> String {
    let mut bytes = [0u8; 8];
    let random = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes));
    let nonce = match random {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => {
            u64::from(std::process::id())
                ^ std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
        }
    };
    format!("test_{nonce:016x}")
}

impl Drop for Processes {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Processes {
    /// `n` nodes with a lease of [`LEASE_SECS`], started.
    pub fn start(n: usize) -> Processes {
        Processes::start_with_lease(n, LEASE_SECS)
    }

    /// `n` nodes with a lease of `lease_secs` seconds, started.
    pub fn start_with_lease(n: usize, lease_secs: u64) -> Processes {
        Processes::start_with_config(n, lease_secs, "", "")
    }

    /// `n` nodes with a lease of `lease_secs` seconds and `global` (lines
    /// of `key = value`) added to the `[global]` section, started.
    pub fn start_with(n: usize, lease_secs: u64, global: &str) -> Processes {
        Processes::start_with_config(n, lease_secs, global, "")
    }

    /// `n` nodes with a lease of `lease_secs` seconds and extra lines in
    /// `[global]` and in every node's section, started.
    pub fn start_with_config(
        n: usize,
        lease_secs: u64,
        global_extra: &str,
        node_extra: &str,
    ) -> Processes {
        let extras = vec![node_extra; n];
        Processes::start_with_node_extras(lease_secs, global_extra, &extras)
    }

    /// One node per entry of `node_extras` (its extra lines), with a lease
    /// of `lease_secs` seconds and `global_extra` in `[global]`, started.
    pub fn start_with_node_extras(
        lease_secs: u64,
        global_extra: &str,
        node_extras: &[&str],
    ) -> Processes {
        Processes::start_on(lease_secs, global_extra, node_extras, None, None)
    }

    /// `n` nodes whose homes are on one tmpfs of `mib` MiB (a disk that
    /// fills up), with `global_extra` in `[global]` and `node_extra` in
    /// each node's section.
    pub fn start_on_tmpfs(n: usize, mib: u64, global_extra: &str, node_extra: &str) -> Processes {
        let extras = vec![node_extra; n];
        Processes::start_on(LEASE_SECS, global_extra, &extras, None, Some(mib))
    }

    /// `n` nodes in the namespaces of `net` (see [`net::Net`]), with a
    /// lease of `lease_secs` seconds and `global_extra` in `[global]`.
    pub fn start_in_net(net: net::Net, lease_secs: u64, global_extra: &str) -> Processes {
        let extras = vec![""; net.nodes()];
        Processes::start_on(lease_secs, global_extra, &extras, Some(net), None)
    }

    /// The general form: `node_extras` (one per node), in the namespaces
    /// of `net` if given, the homes on a tmpfs of `tmpfs_mib` MiB if given.
    pub fn start_on(
        lease_secs: u64,
        global_extra: &str,
        node_extras: &[&str],
        net: Option<net::Net>,
        tmpfs_mib: Option<u64>,
    ) -> Processes {
        let n = node_extras.len();
        let dir = tempfile::tempdir().expect("temp dir");
        let tmpfs = tmpfs_mib.map(|mib| Tmpfs::mount(dir.path(), mib));
        let cluster_id = random_cluster_id();
        let names: Vec<String> = (0..n).map(|i| format!("arakoon_{i}")).collect();
        let mut text = format!(
            "[global]\ncluster = {}\ncluster_id = {cluster_id}\nlease_period = {lease_secs}\n{global_extra}\n\n",
            names.join(", ")
        );
        let mut client_addresses = Vec::new();
        for (i, (name, node_extra)) in names.iter().zip(node_extras).enumerate() {
            let (ip, cp, mp) = match &net {
                Some(net) => (net.addr(i), net::CLIENT_PORT, net::MESSAGING_PORT),
                None => ("127.0.0.1".to_string(), free_port(), free_port()),
            };
            client_addresses.push(format!("{ip}:{cp}"));
            text.push_str(&format!(
                "[{name}]\nip = {ip}\nclient_port = {cp}\nmessaging_port = {mp}\nhome = {}\nlog_level = info\n{node_extra}\n\n",
                dir.path().join(name).display()
            ));
        }
        let config_path = dir.path().join("arakoon.ini");
        std::fs::write(&config_path, &text).expect("write the config");
        eprintln!("cluster in {}:\n{text}", dir.path().display());
        let mut p = Processes {
            tmpfs,
            dir,
            cluster_id,
            config_path,
            names,
            client_addresses,
            children: (0..n).map(|_| None).collect(),
            net,
        };
        for i in 0..n {
            p.spawn(i);
        }
        p
    }

    pub fn spawn(&mut self, i: usize) {
        let config = self.config_path.clone();
        self.spawn_with_config(i, &config);
    }

    /// Starts node `i` with another config file than the cluster's.
    pub fn spawn_with_config(&mut self, i: usize, config: &Path) {
        assert!(self.children[i].is_none(), "node {i} is running");
        let stderr_path = self.dir.path().join(format!("{}.stderr", self.names[i]));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&stderr_path)
            .expect("stderr file");
        // `ip netns exec` execs the node: the child's pid is the node's.
        let mut command = match &self.net {
            Some(net) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", &net.ns(i), env!("CARGO_BIN_EXE_arakoon")]);
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_arakoon")),
        };
        let child = command
            .arg("--node")
            .arg(&self.names[i])
            .arg("-config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn arakoon --node");
        self.children[i] = Some(child);
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The node's client port.
    pub fn client_port(&self, i: usize) -> u16 {
        self.client_addresses[i]
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port")
    }

    /// The node's home directory (its store, tlog and log).
    pub fn home(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.names[i])
    }

    /// The operator's answer to a broken disk: the node is killed, its
    /// home removed and made again, empty.
    pub fn wipe(&mut self, i: usize) {
        self.kill(i);
        let home = self.home(i);
        // A node killed in its first instants may not have made it yet.
        match std::fs::remove_dir_all(&home) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("remove the node's home {}: {e}", home.display()),
        }
        std::fs::create_dir_all(&home).expect("make the node's home again");
        assert!(is_empty_dir(&home));
    }

    pub fn client(&self) -> Client {
        self.builder().build().expect("client")
    }

    /// The builder of [`Processes::client`] (every node, short timeouts).
    pub fn builder(&self) -> ClientBuilder {
        let mut b = ClientBuilder::new(&self.cluster_id)
            .request_timeout(Duration::from_secs(5))
            .connect_timeout(Duration::from_millis(500))
            .discovery_timeout(Duration::from_millis(500))
            .retry_policy(RetryPolicy {
                max_attempts: 4,
                backoff_initial: Duration::from_millis(50),
                backoff_max: Duration::from_millis(200),
            });
        for (name, addr) in self.names.iter().zip(&self.client_addresses) {
            b = b.node(name, addr);
        }
        b
    }

    pub fn stderr_of(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{}.stderr", self.names[i])))
            .unwrap_or_default()
    }

    /// Runs a client action of the binary (`-config FILE` + `args`).
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let config = self.config_path.to_str().expect("a UTF-8 config path");
        let mut all = vec!["-config", config];
        all.extend_from_slice(args);
        arakoon(&all)
    }
}

/// Runs the binary with `args` as given (no config added): whether it
/// succeeded, its standard output and its standard error.
pub fn arakoon(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_arakoon"))
        .args(args)
        .output()
        .expect("run arakoon");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until some node names itself master and takes a write (a paused
/// node costs at most half a second per try).
pub async fn wait_for_master(c: &Client, p: &Processes) -> String {
    let c = c.with_request_timeout(Duration::from_millis(500));
    let start = Instant::now();
    loop {
        if let Ok(m) = c.master().await {
            if c.nop().await.is_ok() {
                return m;
            }
        }
        if start.elapsed() > DEADLINE {
            for i in 0..p.names.len() {
                eprintln!("--- {} stderr:\n{}", p.names[i], p.stderr_of(i));
            }
            panic!("no master within {DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until node `i` answers an `AtLeast(index)` read of `key`.
pub async fn read_at_least(c: &Client, p: &Processes, i: usize, index: i64, key: &[u8]) {
    let node = c
        .node(&p.names[i])
        .unwrap()
        .with_consistency(Consistency::AtLeast(index));
    let started = Instant::now();
    loop {
        match node.get(key).await {
            Ok(_) => return,
            Err(e) if started.elapsed() > DEADLINE => {
                panic!(
                    "{} never reached {index}: {e}\n{}",
                    p.names[i],
                    p.stderr_of(i)
                )
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Waits until node `i`'s stderr (its log) holds `needle`; returns the log.
pub async fn wait_for_log(p: &Processes, i: usize, needle: &str) -> String {
    let started = Instant::now();
    loop {
        let log = p.stderr_of(i);
        if log.contains(needle) {
            return log;
        }
        if started.elapsed() > DEADLINE {
            panic!(
                "{} never logged {needle:?} within {DEADLINE:?}:\n{log}",
                p.names[i]
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn index_of(p: &Processes, name: &str) -> usize {
    p.names.iter().position(|n| n == name).expect("a node name")
}

pub fn txid(c: Consistency) -> i64 {
    match c {
        Consistency::AtLeast(i) => i,
        other => panic!("get_txid answered {other:?}"),
    }
}

/// Sends `kill -SIG` to node `i`'s process.
pub fn signal(p: &Processes, i: usize, sig: &str) {
    signal_all(p, &[i], sig);
}

/// Sends `kill -SIG` to several nodes' processes in one call (stopped
/// ones resume in the same instant).
pub fn signal_all(p: &Processes, nodes: &[usize], sig: &str) {
    let pids: Vec<String> = nodes
        .iter()
        .map(|&i| p.children[i].as_ref().expect("running").id().to_string())
        .collect();
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .args(&pids)
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{sig} {pids:?}");
}

/// A tool a fault injection needs (`strace`, `nft`, `ip`). `.ci/run`
/// installs them; a developer machine without one gets it from apt here
/// (these machines run tests as root), and if that is impossible the test
/// fails saying so: never a silent skip.
pub fn ensure_tool(command: &str, package: &str, why: &str) {
    let present = || {
        Command::new(command)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if present() {
        return;
    }
    eprintln!("{command} is missing: installing {package} with apt-get");
    let installed = Command::new("sh")
        .args([
            "-c",
            &format!(
                "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq {package}"
            ),
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        installed && present(),
        "this test needs {command} (apt-get install {package}) {why}"
    );
}

fn is_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none())
}

/// Whether node `i`'s stderr (its log) holds `needle` now.
pub fn stderr_has(p: &Processes, i: usize, needle: &str) -> bool {
    p.stderr_of(i).contains(needle)
}
