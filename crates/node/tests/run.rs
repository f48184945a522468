//! `node::run`, as `arakoon --node NAME -config FILE` calls it: from a
//! config file, until the shutdown future resolves. (A test binary of its
//! own: `run` installs the global log subscriber.)

use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_serves_from_a_config_file_until_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let ports = node::loopback_ports(2).unwrap();
    let (client_port, messaging_port) = (ports[0], ports[1]);
    let home = dir.path().join("n0");
    let text = format!(
        "[global]\ncluster = n0\ncluster_id = runtest\nlease_period = 0.5\n\n\
         [n0]\nip = 127.0.0.1\nclient_port = {client_port}\nmessaging_port = {messaging_port}\n\
         home = {}\nlog_level = info\n",
        home.display()
    );
    let path = dir.path().join("cfg.ini");
    std::fs::write(&path, text).unwrap();

    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let path2 = path.clone();
    let node = tokio::spawn(async move {
        node::run(&path2, "n0", node::RunMode::Serve, async {
            let _ = rx.await;
        })
        .await
    });
    let loaded = config::load(&path).unwrap();
    let c = client::Client::from_config(&loaded.config).unwrap();
    let start = Instant::now();
    loop {
        match c.set(b"k", b"v").await {
            Ok(()) => break,
            Err(e) if start.elapsed() < Duration::from_secs(15) => {
                eprintln!("not yet: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("no master in time: {e}"),
        }
    }
    assert_eq!(c.get(b"k").await.unwrap(), b"v");
    tx.send(()).unwrap();
    node.await.unwrap().expect("clean stop");
    let log = std::fs::read_to_string(home.join("n0.log")).expect("log file under log_dir");
    assert!(log.contains("master is n0"), "{log}");
    assert!(log.contains("stopped cleanly"), "{log}");

    // A bad config is refused, naming the problem.
    std::fs::write(&path, "[global]\ncluster = n0\n").unwrap();
    let e = node::run(&path, "n0", node::RunMode::Serve, std::future::pending())
        .await
        .unwrap_err();
    assert!(
        matches!(e, node::NodeError::ConfigFile(_)) && e.to_string().contains("cfg.ini"),
        "{e}"
    );
}
