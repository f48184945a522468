//! Arakoon 1.9's answers where its clients and scripts look at them
//! (`shared/spec/arakoon-protocol.md`, "Behaviours Arakoon's clients and
//! scripts rely on"), on real processes. Each assertion names the
//! behaviour it pins.

mod common;

use client::{Error, Request, ResultCode, Update};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_answer_as_arakoon_does() {
    let p = Processes::start(3);
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let slave = p.names[(index_of(&p, &master) + 1) % 3].clone();
    let on_slave = c.node(&slave).unwrap();

    // `version`: the Arakoon release line (tools check the major), our name
    // and version in the info string's three lines.
    let v = c.version().await.unwrap();
    assert_eq!((v.major, v.minor, v.patch), (1, 9, 0));
    assert!(v.info.starts_with("revision: arakoon-rs "), "{}", v.info);
    assert_eq!(v.info.lines().count(), 3, "{}", v.info);

    // `ping`: "Arakoon <version>"; naming another cluster: 0xff.
    assert_eq!(c.ping("test").await.unwrap(), "Arakoon 1.9.0");
    let other = c
        .request(Request::Ping {
            client_id: b"test".to_vec(),
            cluster_id: b"not_this_cluster".to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        other.result_code(),
        Some(ResultCode::UnknownFailure),
        "{other}"
    );

    // `who_master` names the master on every node while its lease holds.
    for name in &p.names {
        let n = c.node(name).unwrap();
        assert_eq!(
            n.who_master().await.unwrap().as_deref(),
            Some(master.as_str())
        );
    }

    // `expect_progress_possible`: the master, with a quorum at its last
    // index or one short of it; no other node.
    c.nop().await.unwrap();
    assert!(c.expect_progress_possible().await.unwrap());
    assert!(!on_slave.expect_progress_possible().await.unwrap());

    // `get_key_count` is a Consistent read: a slave answers E_NOT_MASTER,
    // naming the master.
    match on_slave.get_key_count().await {
        Err(Error::NotMaster {
            master: Some(m), ..
        }) => assert_eq!(m, master),
        other => panic!("get_key_count on a slave: {other:?}"),
    }
    assert_eq!(c.get_key_count().await.unwrap(), 0);

    // `get` of a missing key: E_NOT_FOUND (Arakoon's message `Not_found`;
    // the client names the key it asked for).
    match c.get(b"absent").await {
        Err(Error::NotFound { key, .. }) => assert_eq!(key, b"absent".to_vec()),
        other => panic!("get of a missing key: {other:?}"),
    }

    // Value size: refused from max_value_size on (not above it), 0xff
    // "value too large", on set-like commands; not inside a sequence.
    let max = 8_388_608; // Arakoon's default __tainted_max_value_size
    let refused = c.set(b"big", &vec![7u8; max]).await.unwrap_err();
    match &refused {
        Error::Server { code, message, .. } => {
            assert_eq!(*code, ResultCode::UnknownFailure);
            assert_eq!(message, "value too large");
        }
        other => panic!("a value of max_value_size bytes: {other:?}"),
    }
    c.set(b"big", &vec![7u8; max - 1]).await.unwrap();
    c.sequence(vec![Update::Set {
        key: b"big_in_sequence".to_vec(),
        value: vec![8u8; max],
    }])
    .await
    .unwrap();
    assert_eq!(c.get(b"big_in_sequence").await.unwrap().len(), max);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_master_on_a_singleton_is_not_supported() {
    let p = Processes::start(1);
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let refused = c.drop_master().await.unwrap_err();
    assert_eq!(
        refused.result_code(),
        Some(ResultCode::NotSupported),
        "{refused}"
    );
    assert!(refused.to_string().contains("singletons"), "{refused}");
    assert_eq!(c.who_master().await.unwrap(), Some(master));
}

/// Which answers close the connection, as Arakoon's nodes do: after
/// `E_NOT_MASTER` the node closes (the client reconnects); after
/// `E_NOT_FOUND` the connection serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_master_closes_the_connection_and_not_found_keeps_it() {
    use protocol::{Consistency, Request as Wire};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let p = Processes::start(3);
    let c = p.client();
    let master = wait_for_master(&c, &p).await;
    let m = index_of(&p, &master);
    let slave = (m + 1) % 3;
    let open = |i: usize| {
        let address = p.client_addresses[i].clone();
        let cluster_id = p.cluster_id.clone();
        async move {
            let mut s = tokio::net::TcpStream::connect(address).await.unwrap();
            let mut prologue = Vec::new();
            protocol::encode_prologue(cluster_id.as_bytes(), &mut prologue);
            s.write_all(&prologue).await.unwrap();
            s
        }
    };
    let get_missing = || {
        let mut out = Vec::new();
        protocol::encode_request(
            &Wire::Get {
                consistency: Consistency::Consistent,
                key: b"absent".to_vec(),
            },
            &mut out,
        );
        out
    };
    let deadline = std::time::Duration::from_secs(5);

    // E_NOT_FOUND "Not_found" (4 + 4 + 9 bytes), twice on one connection.
    let mut s = open(m).await;
    for _ in 0..2 {
        s.write_all(&get_missing()).await.unwrap();
        let mut answer = [0u8; 17];
        tokio::time::timeout(deadline, s.read_exact(&mut answer))
            .await
            .expect("an answer in time")
            .expect("the connection is kept after E_NOT_FOUND");
        assert_eq!(answer[..4], 0x05u32.to_le_bytes());
        assert_eq!(&answer[8..], b"Not_found");
    }

    // E_NOT_MASTER from a slave, then the end of the stream.
    let mut s = open(slave).await;
    let mut set = Vec::new();
    protocol::encode_request(
        &Wire::Set {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
        },
        &mut set,
    );
    s.write_all(&set).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(deadline, s.read_to_end(&mut answer))
        .await
        .expect("the slave closes the connection after E_NOT_MASTER")
        .unwrap();
    assert_eq!(answer[..4], 0x04u32.to_le_bytes(), "{answer:?}");
    assert!(String::from_utf8_lossy(&answer[8..]).contains(&master));
    // Our client rides over the close: it reconnects, each time.
    let on_slave = c.node(&p.names[slave]).unwrap();
    for _ in 0..3 {
        match on_slave.get_key_count().await {
            Err(Error::NotMaster {
                master: Some(m), ..
            }) => assert_eq!(m, master),
            other => panic!("get_key_count on a slave: {other:?}"),
        }
    }
    c.set(b"k", b"v").await.unwrap();
}

/// Peak resident memory of process `pid` (VmHWM), in bytes.
fn peak_rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status");
    kib * 1024
}

/// A blocking raw connection with read and write timeouts: a node that
/// stops reading or answering fails the check instead of hanging it.
fn raw_connection(address: &str, cluster_id: &str) -> std::net::TcpStream {
    use std::io::Write;
    let timeout = Some(std::time::Duration::from_secs(10));
    let mut s = std::net::TcpStream::connect(address).expect("connect");
    s.set_read_timeout(timeout).unwrap();
    s.set_write_timeout(timeout).unwrap();
    let mut prologue = Vec::new();
    protocol::encode_prologue(cluster_id.as_bytes(), &mut prologue);
    s.write_all(&prologue).expect("send the prologue");
    s
}

/// Reads one answer to `command` (an error answer decodes for any).
fn read_answer(s: &mut std::net::TcpStream, command: protocol::Command) -> protocol::Response {
    use std::io::Read;
    let mut buf = Vec::new();
    loop {
        match protocol::decode_response(&buf, command, &protocol::Limits::default())
            .expect("a valid answer")
        {
            protocol::Decoded::Complete { value, .. } => return value,
            protocol::Decoded::Incomplete { needed } => {
                let mut more = vec![0u8; needed - buf.len()];
                s.read_exact(&mut more)
                    .expect("an answer within the read timeout, on an open connection");
                buf.extend_from_slice(&more);
            }
        }
    }
}

/// Issue 13 on a real process (one node, default `max_buffer_size` of
/// 32 MiB): a sequence carrying a 40 MB value is read and dropped, never
/// held (the node's peak memory does not grow by the value), answered
/// E_BAD_INPUT naming the limit, and the same connection serves on; a
/// wrong cluster id is closed without a reply and our client names the
/// cluster id; `user_function` of an unknown name is E_BAD_INPUT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_strings_wrong_cluster_and_user_functions_as_arakoon() {
    let p = Processes::start(1);
    let c = p.client();
    wait_for_master(&c, &p).await;
    let pid = p.children[0].as_ref().expect("running").id();
    let address = p.client_addresses[0].clone();
    let cluster_id = p.cluster_id.clone();
    let hwm_before = peak_rss_bytes(pid);

    let checked = tokio::task::spawn_blocking(move || {
        use protocol::{Command, Reply, Request as Wire, Response};
        use std::io::{Read, Write};
        let mut s = raw_connection(&address, &cluster_id);
        let mut big = Vec::new();
        protocol::encode_request(
            &Wire::Sequence {
                updates: vec![Update::Set {
                    key: b"big".to_vec(),
                    value: vec![3; 40_000_000],
                }],
            },
            &mut big,
        );
        s.write_all(&big).expect("the node reads the whole request");
        let Response::Error(e) = read_answer(&mut s, Command::Sequence) else {
            panic!("a 40 MB sequence was accepted");
        };
        assert_eq!(e.result_code(), ResultCode::BadInput);
        let message = e.message_lossy().into_owned();
        assert!(message.contains("limit of 33554432"), "{message}");
        let mut set = Vec::new();
        protocol::encode_request(
            &Wire::Set {
                key: b"after".to_vec(),
                value: b"ok".to_vec(),
            },
            &mut set,
        );
        s.write_all(&set).unwrap();
        assert_eq!(read_answer(&mut s, Command::Set), Response::Ok(Reply::Set));

        // user_function of an unknown name: E_BAD_INPUT, connection kept.
        let mut uf = Vec::new();
        protocol::encode_request(
            &Wire::UserFunction {
                name: b"nope".to_vec(),
                argument: None,
            },
            &mut uf,
        );
        s.write_all(&uf).unwrap();
        let Response::Error(e) = read_answer(&mut s, Command::UserFunction) else {
            panic!("user_function answered OK");
        };
        assert_eq!(e.result_code(), ResultCode::BadInput);
        assert_eq!(
            e.message_lossy(),
            "User function \"nope\" could not be found"
        );
        s.write_all(&set).unwrap();
        assert_eq!(read_answer(&mut s, Command::Set), Response::Ok(Reply::Set));

        // A wrong cluster id: the connection ends, with no byte sent back.
        let mut wrong = raw_connection(&address, "not_this_cluster");
        let mut rest = Vec::new();
        wrong
            .read_to_end(&mut rest)
            .expect("closed within the read timeout");
        assert_eq!(rest, b"", "no reply to a wrong cluster id");
    });
    checked.await.expect("raw checks");

    let grown = peak_rss_bytes(pid).saturating_sub(hwm_before);
    eprintln!("peak memory of the node: {hwm_before} bytes before, grew by {grown}");
    assert!(
        grown < 24 << 20,
        "the node's peak memory grew by {grown} bytes for a dropped 40 MB value"
    );
    assert!(!c.exists(b"big").await.unwrap());
    assert_eq!(c.get(b"after").await.unwrap(), b"ok");

    let wrong = client::ClientBuilder::new("not_this_cluster")
        .node(&p.names[0], &p.client_addresses[0])
        .build()
        .unwrap();
    match wrong.get(b"after").await {
        Err(Error::WrongCluster { cluster_id, .. }) => assert_eq!(cluster_id, "not_this_cluster"),
        other => panic!("a client of another cluster: {other:?}"),
    }
}
