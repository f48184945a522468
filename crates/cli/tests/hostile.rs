//! Hostile input against a live 3-node cluster of real processes, one kind
//! after another, on the client and the messaging ports: garbage, a frame
//! declaring 1 GiB, half a frame and a vanished client, more connections
//! than the limit, an answer larger than the cap, a handshake of another
//! cluster, a known peer's garbage frame. Then every key written before is
//! intact on every node and the cluster still commits.

mod common;

use client::Consistency;
use common::{wait_for_master, Processes, DEADLINE};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const KEYS: usize = 300;

fn connect(address: &str) -> TcpStream {
    let s = TcpStream::connect(address).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Writes `bytes`, then reads until the node closes (or 10 s pass).
fn send_and_drain(address: &str, bytes: &[u8]) -> Vec<u8> {
    let mut s = connect(address);
    // The node may close before all is written: that is a fine answer too.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    out
}

/// The soft limit on open files up to the hard one, for the connection
/// flood (the nodes inherit it).
#[allow(unsafe_code)]
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_harms_nothing_written_before() {
    raise_fd_limit();
    let p = Processes::start(3);
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let m = common::index_of(&p, &master);
    for k in 0..KEYS {
        c.set(format!("key-{k:04}").as_bytes(), &vec![b'v'; 1000 + k])
            .await
            .unwrap();
    }
    let client_address = p.client_addresses[m].clone();
    let mut prologue = Vec::new();
    protocol::encode_prologue(p.cluster_id.as_bytes(), &mut prologue);

    // Garbage instead of a prologue.
    let out = send_and_drain(&client_address, &[0x5a; 4096]);
    assert!(out.len() <= 4096, "{out:?}");

    // A get whose key declares 1 GiB: refused, nothing allocated.
    let mut huge = prologue.clone();
    huge.extend_from_slice(&(0xb1ff_0000u32 | 0x08).to_le_bytes());
    huge.push(0x01);
    huge.extend_from_slice(&(1u32 << 30).to_le_bytes());
    huge.extend_from_slice(&[0u8; 1024]);
    let out = send_and_drain(&client_address, &huge);
    assert_eq!(
        out.get(0..4),
        Some(&0x26u32.to_le_bytes()[..]),
        "E_BAD_INPUT"
    );

    // Half a frame, then the client vanishes (several times).
    for _ in 0..20 {
        let mut s = connect(&client_address);
        let mut half = prologue.clone();
        half.extend_from_slice(&(0xb1ff_0000u32 | 0x09).to_le_bytes());
        half.extend_from_slice(&100u32.to_le_bytes());
        half.extend_from_slice(b"abc");
        s.write_all(&half).unwrap();
    }

    // More connections than the limit (1024): the extra ones are answered
    // E_MAX_CONNECTIONS and closed; the node serves on.
    let mut held = Vec::new();
    for _ in 0..node::MAX_CLIENT_CONNECTIONS + 8 {
        match TcpStream::connect(&client_address) {
            Ok(s) => held.push(s),
            Err(e) => panic!("connect #{}: {e}", held.len()),
        }
    }
    let mut refused = 0;
    let started = Instant::now();
    for s in held.iter_mut().rev().take(64) {
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut word = [0u8; 4];
        if s.read_exact(&mut word).is_ok() && word == 0xfeu32.to_le_bytes() {
            refused += 1;
        }
        assert!(started.elapsed() < DEADLINE);
    }
    assert!(refused >= 8, "{refused} connections refused at the limit");
    drop(held);

    // A range of everything (max = -1) is served whole within the answer
    // cap (`max_buffer_size`); one beyond it is refused without being
    // built (crates/node/tests/serving.rs).
    let all = c
        .range_entries(&client::KeyRange::all())
        .await
        .expect("a full range within the cap");
    assert_eq!(all.len(), KEYS);

    // Messaging: a handshake naming another cluster, then a known peer's
    // garbage frame and a frame declaring 1 GiB.
    let other = (m + 1) % 3;
    let messaging = {
        let text = std::fs::read_to_string(&p.config_path).unwrap();
        let section = text
            .split(&format!("[{}]", p.names[other]))
            .nth(1)
            .unwrap()
            .to_string();
        let port = section
            .lines()
            .find_map(|l| l.strip_prefix("messaging_port = "))
            .unwrap()
            .trim()
            .to_string();
        format!("127.0.0.1:{port}")
    };
    let hello = |cluster: &str, from: &str, to: &str| {
        let mut h = node::HANDSHAKE_MAGIC.to_vec();
        h.extend_from_slice(&node::MESSAGING_VERSION.to_le_bytes());
        for field in [cluster, from, to] {
            h.extend_from_slice(&(field.len() as u32).to_le_bytes());
            h.extend_from_slice(field.as_bytes());
        }
        h
    };
    let out = send_and_drain(
        &messaging,
        &hello("another_cluster", "arakoon_0", &p.names[other]),
    );
    assert_eq!(
        out.first(),
        Some(&1u8),
        "another cluster's handshake refused"
    );
    for frame in [
        [5u32.to_le_bytes().to_vec(), b"junk!".to_vec()].concat(),
        (1u32 << 30).to_le_bytes().to_vec(),
    ] {
        let mut bytes = hello(&p.cluster_id, &p.names[m], &p.names[other]);
        bytes.extend_from_slice(&frame);
        let _ = send_and_drain(&messaging, &bytes);
    }

    // Every key intact on every node, and the cluster commits.
    c.set(b"zz-after", b"v").await.unwrap();
    let txid = common::txid(c.get_txid().await.unwrap());
    for i in 0..3 {
        common::read_at_least(&c, &p, i, txid, b"zz-after").await;
        let node = c
            .node(&p.names[i])
            .unwrap()
            .with_consistency(Consistency::AtLeast(txid));
        let entries = node.range_entries(&client::KeyRange::all()).await.unwrap();
        assert_eq!(entries.len(), KEYS + 1, "{}", p.names[i]);
        for (k, (key, value)) in entries.iter().take(KEYS).enumerate() {
            assert_eq!(key, format!("key-{k:04}").as_bytes());
            assert_eq!(value.len(), 1000 + k);
        }
    }
}
