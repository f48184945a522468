//! How long a node restart takes to replay a long tlog (issue 5's target:
//! 1,000,000 entries in under 10 s).
//!
//! ```text
//! cargo run --release -p node --example replay -- [ENTRIES]
//! ```
//! Writes ENTRIES (default 1,000,000) tlog entries of one `set` each (16-byte
//! key, 100-byte value) under a temporary directory on the real disk, with an
//! empty store, as a node finds them after a crash right after a burst of
//! writes. Then starts a 1-node cluster on it in-process and prints how long
//! the node took until its store had applied every entry: from the start,
//! and from the moment it became master (before that it waits out its
//! restart lease guard and an election timeout: lease_period = 1 s here).

use std::error::Error;
use std::time::{Duration, Instant};

use disk::RealDisk;
use protocol::Update;
use tlog::{Entry, HardState, Tlog, TlogOptions};

const CHUNK_ENTRIES: u64 = 10_000;
const REPLAY_LIMIT: Duration = Duration::from_secs(600);

fn free_port() -> Result<u16, Box<dyn Error>> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn Error>> {
    let entries: u64 = match std::env::args().nth(1) {
        Some(n) => n
            .parse()
            .map_err(|_| format!("ENTRIES: '{n}' is not a number"))?,
        None => 1_000_000,
    };
    let dir = tempfile::tempdir_in(std::env::current_dir()?)?;
    let home = dir.path().join("n0");
    let text = format!(
        "[global]\ncluster = n0\ncluster_id = replay\nlease_period = 1\n\n\
         [n0]\nip = 127.0.0.1\nclient_port = {}\nmessaging_port = {}\nhome = {}\nlog_level = warning\n",
        free_port()?,
        free_port()?,
        home.display()
    );
    let cluster = config::parse(&text)?.config;
    let node_config = cluster.node("n0").ok_or("no node n0")?.clone();

    let written = Instant::now();
    let options = TlogOptions {
        max_entries: cluster.tlog_max_entries,
        max_size: cluster.tlog_max_size,
        ..TlogOptions::default()
    };
    let mut tlog = Tlog::open(RealDisk::shared(), node::tlog_path(&node_config), options)?;
    let value = vec![b'v'; 100];
    let mut index = 1;
    while index <= entries {
        let end = (index + CHUNK_ENTRIES).min(entries + 1);
        let chunk: Vec<Entry> = (index..end)
            .map(|i| {
                let mut payload = Vec::with_capacity(160);
                let set = Update::Set {
                    key: format!("key-{i:012}").into_bytes(),
                    value: value.clone(),
                };
                protocol::encode_batch(std::slice::from_ref(&set), &mut payload);
                Entry {
                    index: i,
                    term: 1,
                    payload,
                }
            })
            .collect();
        tlog.append(&chunk)?;
        tlog.sync()?;
        index = end;
    }
    tlog.save_hard_state(HardState {
        term: 1,
        voted_for: Some(consensus::NodeId(0)),
        ..HardState::default()
    })?;
    drop(tlog);
    println!(
        "wrote {entries} tlog entries in {:.1} s",
        written.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let node = node::Node::start(cluster.clone(), "n0", node::Listeners::default()).await?;
    let mut master_at = None;
    loop {
        let status = node.status(&cluster);
        if master_at.is_none() && status.master.as_deref() == Some("n0") {
            master_at = Some(started.elapsed());
        }
        if status.applied_index >= entries {
            break;
        }
        if started.elapsed() > REPLAY_LIMIT {
            return Err(format!(
                "applied only {} of {entries} after {REPLAY_LIMIT:?}",
                status.applied_index
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let total = started.elapsed();
    let master_at = master_at.unwrap_or(total);
    println!(
        "replayed {entries} entries: {:.2} s from the start, {:.2} s of it after becoming master ({:.0} entries/s)",
        total.as_secs_f64(),
        (total - master_at).as_secs_f64(),
        entries as f64 / (total - master_at).as_secs_f64().max(1e-9)
    );
    node.stop().await?;
    Ok(())
}
