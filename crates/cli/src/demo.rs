//! `arakoon demo`: a local 3-node cluster in one command, for a first try.
//!
//! ```text
//! arakoon demo [--dir DIR]
//! ```
//! Picks six free loopback ports, writes `DIR/arakoon.ini` (default DIR: a
//! new `arakoon-demo-<pid>` under the temp dir), starts the three nodes as
//! child processes of this binary (`--node arakoon_i -config DIR/arakoon.ini`,
//! logs in `DIR/arakoon_i/arakoon_i.log`), waits until a master is elected,
//! prints the config path and three commands to try, and runs until Ctrl-C
//! (SIGINT) or SIGTERM, which it passes on to the nodes for a clean stop.
//!
//! Clean-up: the nodes are bound to the demo process (`PR_SET_PDEATHSIG`),
//! so they stop even if the demo is killed with SIGKILL; a node still
//! running `STOP_TIMEOUT` after the signal is killed. The data directory is
//! kept (its path is printed) so that logs and tlogs can be read afterwards.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// A status line on stdout; a closed stdout must not stop the demo (it
/// still has nodes to stop), so a failed write is ignored.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

const NODES: usize = 3;
const CLUSTER_ID: &str = "arakoon_demo";
/// Lease of the demo cluster: short, so that a failover is quick to watch.
const LEASE_PERIOD_S: u64 = 2;
/// How long the nodes may take to elect a master.
const MASTER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a node may take to stop cleanly after the signal.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// What the arguments ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoArgs {
    pub dir: Option<PathBuf>,
}

/// Parses the arguments after `demo`.
pub fn parse(args: &[String]) -> Result<DemoArgs, String> {
    let mut parsed = DemoArgs { dir: None };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" => {
                let dir = it.next().ok_or("--dir needs a directory")?;
                parsed.dir = Some(PathBuf::from(dir));
            }
            other => {
                return Err(format!(
                    "unknown argument '{other}' (usage: arakoon demo [--dir DIR])"
                ))
            }
        }
    }
    Ok(parsed)
}

/// The demo cluster's config text for these ports (client, messaging per node).
pub fn config_text(dir: &Path, ports: &[(u16, u16)]) -> String {
    let names: Vec<String> = (0..ports.len()).map(|i| format!("arakoon_{i}")).collect();
    let mut text = format!(
        "# Written by `arakoon demo`: a local {}-node cluster on loopback.\n\
         [global]\ncluster = {}\ncluster_id = {CLUSTER_ID}\nlease_period = {LEASE_PERIOD_S}\n",
        ports.len(),
        names.join(", ")
    );
    for (name, (client, messaging)) in names.iter().zip(ports) {
        text.push_str(&format!(
            "\n[{name}]\nip = 127.0.0.1\nclient_port = {client}\nmessaging_port = {messaging}\n\
             home = {}\nlog_level = info\n",
            dir.join(name).display()
        ));
    }
    text
}

/// Free loopback ports (see `node::loopback_ports`: outside the kernel's
/// ephemeral range, so no outgoing connection takes one before its node
/// binds it).
fn free_ports(count: usize) -> Result<Vec<u16>, String> {
    node::loopback_ports(count).map_err(|e| format!("cannot find a free loopback port: {e}"))
}

/// The node processes; killed (SIGKILL) if still running when dropped.
struct Nodes {
    children: Vec<(String, tokio::process::Child)>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.start_kill();
        }
    }
}

fn spawn_node(
    exe: &Path,
    config: &Path,
    name: &str,
    dir: &Path,
) -> Result<tokio::process::Child, String> {
    let stderr_path = dir.join(format!("{name}.stderr"));
    let stderr = std::fs::File::create(&stderr_path)
        .map_err(|e| format!("cannot create {}: {e}", stderr_path.display()))?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg("--node")
        .arg(name)
        .arg("-config")
        .arg(config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(stderr);
    #[allow(unsafe_code)]
    // SAFETY: between fork and exec only prctl(2), which is async-signal-safe,
    // runs: the node gets SIGTERM when the demo process dies, however it dies.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    cmd.spawn()
        .map_err(|e| format!("cannot start node {name} ({}): {e}", exe.display()))
}

async fn wait_for_master(client: &client::Client, nodes: &mut Nodes) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + MASTER_TIMEOUT;
    loop {
        for (name, child) in &mut nodes.children {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "node {name} exited ({status}) before a master was elected"
                ));
            }
        }
        match tokio::time::timeout(Duration::from_secs(2), client.master()).await {
            Ok(Ok(master)) => return Ok(master),
            Ok(Err(_)) | Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(Err(e)) => return Err(format!("no master after {MASTER_TIMEOUT:?}: {e}")),
            Err(_) => return Err(format!("no master after {MASTER_TIMEOUT:?}")),
        }
    }
}

async fn stop(nodes: &mut Nodes) {
    for (_, child) in &nodes.children {
        if let Some(pid) = child.id() {
            // SAFETY: kill(2) on our own child's pid.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGTERM);
            }
        }
    }
    for (name, child) in &mut nodes.children {
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(Ok(status)) if status.success() => say!("arakoon demo: {name} stopped"),
            Ok(Ok(status)) => say!("arakoon demo: {name} stopped ({status})"),
            Ok(Err(e)) => say!("arakoon demo: {name}: {e}"),
            Err(_) => {
                let _ = child.start_kill();
                say!("arakoon demo: {name} did not stop within {STOP_TIMEOUT:?}: killed");
            }
        }
    }
}

async fn run(args: DemoArgs) -> Result<(), String> {
    let dir = match args.dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!("arakoon-demo-{}", std::process::id())),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| format!("cannot resolve {}: {e}", dir.display()))?;
    let ports = free_ports(2 * NODES)?;
    let pairs: Vec<(u16, u16)> = ports.chunks(2).map(|p| (p[0], p[1])).collect();
    let config_path = dir.join("arakoon.ini");
    std::fs::write(&config_path, config_text(&dir, &pairs))
        .map_err(|e| format!("cannot write {}: {e}", config_path.display()))?;
    let config = config::load(&config_path)
        .map_err(|e| e.to_string())?
        .config;
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program: {e}"))?;

    let mut nodes = Nodes {
        children: Vec::new(),
    };
    for node in &config.nodes {
        let child = spawn_node(&exe, &config_path, &node.name, &dir)?;
        nodes.children.push((node.name.clone(), child));
    }
    let client = client::Client::from_config(&config).map_err(|e| e.to_string())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| format!("cannot handle SIGINT: {e}"))?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot handle SIGTERM: {e}"))?;
    let master = tokio::select! {
        m = wait_for_master(&client, &mut nodes) => m?,
        _ = interrupt.recv() => { stop(&mut nodes).await; return Ok(()); }
        _ = terminate.recv() => { stop(&mut nodes).await; return Ok(()); }
    };
    let exe_name = exe.display();
    let cfg = config_path.display();
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "arakoon demo: a {NODES}-node cluster is running on 127.0.0.1 (master: {master})\n\
         \x20 config: {cfg}\n\
         \x20 data and logs: {}\n\
         Try, in another terminal:\n\
         \x20 {exe_name} -config {cfg} --set hello world\n\
         \x20 {exe_name} -config {cfg} --get hello\n\
         \x20 {exe_name} -config {cfg} --who-master\n\
         Ctrl-C stops the cluster.",
        dir.display()
    );
    let _ = out.flush();
    drop(out);
    let mut exited = None;
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
        (name, status) = async {
            // A node that dies on its own ends the demo too.
            loop {
                for (name, child) in &mut nodes.children {
                    if let Ok(Some(status)) = child.try_wait() {
                        return (name.clone(), status);
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        } => { exited = Some(format!("node {name} exited ({status}); see {}", dir.display())); }
    }
    say!("arakoon demo: stopping");
    stop(&mut nodes).await;
    match exited {
        Some(reason) => Err(reason),
        None => Ok(()),
    }
}

/// Runs `arakoon demo ARGS`.
pub fn main(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        say!(
            "arakoon demo [--dir DIR]\nStarts a local 3-node cluster on loopback; Ctrl-C stops it."
        );
        return ExitCode::SUCCESS;
    }
    let parsed = match parse(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("arakoon demo: {e}");
            return ExitCode::from(crate::EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("arakoon demo: cannot start the async runtime: {e}");
            return ExitCode::from(crate::EXIT_FAILED);
        }
    };
    match runtime.block_on(run(parsed)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arakoon demo: {e}");
            ExitCode::from(crate::EXIT_FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments() {
        assert_eq!(parse(&[]).unwrap(), DemoArgs { dir: None });
        let dir = parse(&["--dir".into(), "/x".into()]).unwrap();
        assert_eq!(dir.dir, Some(PathBuf::from("/x")));
        assert_eq!(
            parse(&["--dir".into()]).unwrap_err(),
            "--dir needs a directory"
        );
        assert!(parse(&["--nodes".into()])
            .unwrap_err()
            .contains("'--nodes'"));
    }

    #[test]
    fn config_is_valid_for_the_loader() {
        let text = config_text(Path::new("/d"), &[(1001, 1002), (1003, 1004), (1005, 1006)]);
        let loaded = config::parse(&text).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let c = loaded.config;
        assert_eq!(c.cluster_id, CLUSTER_ID);
        assert_eq!(c.nodes.len(), 3);
        assert_eq!(c.nodes[2].client_port, 1005);
        assert_eq!(c.nodes[1].home, PathBuf::from("/d/arakoon_1"));
        assert_eq!(c.lease_period, Duration::from_secs(LEASE_PERIOD_S));
    }
}
