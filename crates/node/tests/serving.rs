//! The client service, and the bytes on a node's sockets: every command of
//! the spec, pipelined requests, bad input on the client and messaging
//! ports, many concurrent clients, slow and dead clients, the metrics
//! endpoint. Mostly one node; two or three where the answer's path goes
//! through replication or a peer's connection.

mod common;

use client::{Consistency, Error, KeyRange, Update};
use common::{all, txid, Cluster};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Every command of the spec on a one-node cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_serves_every_command() {
    let cluster = Cluster::start(1).await;
    cluster.wait_master(&[0]).await;
    let c = cluster.client();

    c.set(b"a", b"1").await.unwrap();
    assert_eq!(c.get(b"a").await.unwrap(), b"1");
    assert!(c.exists(b"a").await.unwrap());
    assert!(matches!(c.get(b"zz").await, Err(Error::NotFound { .. })));
    c.delete(b"a").await.unwrap();
    assert!(matches!(c.delete(b"a").await, Err(Error::NotFound { .. })));

    // A sequence whose assert fails applies nothing.
    c.set(b"x", b"old").await.unwrap();
    let failed = c
        .sequence(vec![
            Update::Set {
                key: b"y".to_vec(),
                value: b"new".to_vec(),
            },
            Update::Assert {
                key: b"x".to_vec(),
                value: Some(b"other".to_vec()),
            },
        ])
        .await;
    assert!(
        matches!(failed, Err(Error::AssertionFailed { .. })),
        "{failed:?}"
    );
    assert!(
        !c.exists(b"y").await.unwrap(),
        "nothing of a failed sequence is applied"
    );
    c.sequence(vec![
        Update::Assert {
            key: b"x".to_vec(),
            value: Some(b"old".to_vec()),
        },
        Update::Set {
            key: b"y".to_vec(),
            value: b"new".to_vec(),
        },
    ])
    .await
    .unwrap();
    assert_eq!(c.get(b"y").await.unwrap(), b"new");
    c.synced_sequence(vec![Update::Set {
        key: b"s".to_vec(),
        value: b"synced".to_vec(),
    }])
    .await
    .unwrap();

    // test_and_set and replace answer the value before.
    assert_eq!(c.test_and_set(b"t", None, Some(b"1")).await.unwrap(), None);
    assert_eq!(
        c.test_and_set(b"t", Some(b"2"), Some(b"3")).await.unwrap(),
        Some(b"1".to_vec()),
        "a failed test_and_set answers the current value"
    );
    assert_eq!(c.get(b"t").await.unwrap(), b"1");
    assert_eq!(
        c.replace(b"t", Some(b"r")).await.unwrap(),
        Some(b"1".to_vec())
    );
    assert_eq!(c.get(b"t").await.unwrap(), b"r");

    // Asserts.
    c.assert(b"x", Some(b"old")).await.unwrap();
    assert!(matches!(
        c.assert(b"x", Some(b"no")).await,
        Err(Error::AssertionFailed { .. })
    ));
    c.assert_exists(b"x").await.unwrap();
    assert!(matches!(
        c.assert_exists(b"nope").await,
        Err(Error::AssertionFailed { .. })
    ));

    // Ranges and prefixes.
    for k in ["p1", "p2", "p3", "q1"] {
        c.set(k.as_bytes(), k.as_bytes()).await.unwrap();
    }
    assert_eq!(
        c.prefix_keys(b"p", None).await.unwrap(),
        vec![b"p1".to_vec(), b"p2".to_vec(), b"p3".to_vec()]
    );
    assert_eq!(c.prefix_keys(b"p", Some(2)).await.unwrap().len(), 2);
    let range = KeyRange {
        first: Some(b"p2".to_vec()),
        first_inclusive: true,
        last: Some(b"q1".to_vec()),
        last_inclusive: false,
        max: -1,
    };
    assert_eq!(
        c.range(&range).await.unwrap(),
        vec![b"p2".to_vec(), b"p3".to_vec()]
    );
    assert_eq!(
        c.range_entries(&range).await.unwrap(),
        vec![
            (b"p2".to_vec(), b"p2".to_vec()),
            (b"p3".to_vec(), b"p3".to_vec())
        ]
    );
    let rev = KeyRange {
        first: Some(b"q1".to_vec()),
        first_inclusive: true,
        last: Some(b"p2".to_vec()),
        last_inclusive: true,
        max: 2,
    };
    let rev_keys: Vec<Vec<u8>> = c
        .rev_range_entries(&rev)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(rev_keys, vec![b"q1".to_vec(), b"p3".to_vec()]);
    assert_eq!(
        c.multi_get(&[b"p1", b"q1"]).await.unwrap(),
        vec![b"p1".to_vec(), b"q1".to_vec()]
    );
    assert!(matches!(
        c.multi_get(&[b"p1", b"zz"]).await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        c.multi_get_option(&[b"p1", b"zz"]).await.unwrap(),
        vec![Some(b"p1".to_vec()), None]
    );
    assert_eq!(c.delete_prefix(b"p").await.unwrap(), 3);
    assert!(c.prefix_keys(b"p", None).await.unwrap().is_empty());
    let count = c.get_key_count().await.unwrap();
    assert_eq!(count, c.range(&all()).await.unwrap().len() as u64);

    // Confirm, nop, txid, admin-ish commands.
    c.confirm(b"x", b"old").await.unwrap();
    c.confirm(b"x", b"newer").await.unwrap();
    assert_eq!(c.get(b"x").await.unwrap(), b"newer");
    c.nop().await.unwrap();
    let i = txid(c.get_txid().await.unwrap());
    assert!(i > 0);
    assert_eq!(c.who_master().await.unwrap().as_deref(), Some("node_0"));
    assert!(c.expect_progress_possible().await.unwrap());
    let stats = c.statistics().await.unwrap();
    assert_eq!(stats.name, "arakoon_stats");
    assert!(stats.get("set_info").is_some() && stats.get("node_is").is_some());
    let v = c.version().await.unwrap();
    assert_eq!(
        (v.major, v.minor),
        (1, 9),
        "the Arakoon release line served"
    );
    assert!(c.current_state().await.unwrap().contains("master"));
    // drop_master on a singleton: refused (E_NOT_SUPPORTED), the node stays master.
    assert!(c.drop_master().await.is_err());

    // max_value_size is enforced.
    let big = vec![0u8; cluster.config.max_value_size + 1];
    let too_big = c.set(b"big", &big).await;
    assert!(too_big.is_err(), "a value above max_value_size is refused");
    cluster.stop_all().await;
}

/// A client that sends several requests without waiting for the answers
/// (pipelining) gets every answer, in order. The connection then holds the
/// next requests' bytes while the driver writes an answer itself, so the
/// answer must wake it (the socket stays quiet: the client waits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_updates_are_all_answered_in_order() {
    for nodes in [1, 3] {
        let cluster = Cluster::start(nodes).await;
        let master = cluster.wait_master(&(0..nodes).collect::<Vec<_>>()).await;
        let addr = cluster.config.nodes[master].client_address();
        let mut requests = Vec::new();
        let mut expected = Vec::new();
        protocol::encode_prologue(cluster.cluster_id().as_bytes(), &mut requests);
        for n in 0..10u8 {
            let set = protocol::Request::Set {
                key: b"piped".to_vec(),
                value: vec![n],
            };
            protocol::encode_request(&set, &mut requests);
            protocol::encode_response(&protocol::Response::Ok(protocol::Reply::Set), &mut expected);
        }
        let get = protocol::Request::Get {
            consistency: protocol::Consistency::Consistent,
            key: b"piped".to_vec(),
        };
        protocol::encode_request(&get, &mut requests);
        protocol::encode_response(
            &protocol::Response::Ok(protocol::Reply::Get(vec![9])),
            &mut expected,
        );
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        s.write_all(&requests).await.unwrap();
        let mut got = vec![0u8; expected.len()];
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
            .await
            .unwrap_or_else(|_| panic!("{nodes} node(s): not every pipelined request was answered"))
            .unwrap();
        assert_eq!(got, expected, "{nodes} node(s): the answers, in order");
        cluster.stop_all().await;
    }
}

/// Raw connections: a wrong cluster id (closed without a reply), a wrong
/// magic, a huge declared length (beyond what the node drops) and a
/// truncated frame get a clear error; the node serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_the_node_serves_on() {
    let cluster = Cluster::start(1).await;
    cluster.wait_master(&[0]).await;
    let addr = cluster.config.nodes[0].client_address();

    async fn exchange(addr: &str, bytes: &[u8]) -> (u32, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(bytes).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .expect("the node answers and closes")
            .unwrap();
        assert!(out.len() >= 8, "answer too short: {out:?}");
        let rc = u32::from_le_bytes(out[0..4].try_into().unwrap());
        let len = u32::from_le_bytes(out[4..8].try_into().unwrap()) as usize;
        let msg = String::from_utf8_lossy(&out[8..(8 + len).min(out.len())]).into_owned();
        (rc, msg)
    }
    // A wrong cluster id: closed without a reply, as Arakoon does.
    let mut prologue = Vec::new();
    protocol::encode_prologue(b"other_cluster", &mut prologue);
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    s.write_all(&prologue).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("the node closes the connection")
        .unwrap();
    assert_eq!(out, b"", "no reply to a wrong cluster id");

    let (rc, msg) = exchange(&addr, &[0xde, 0xad, 0xbe, 0xef, 1, 0, 0, 0]).await;
    assert_eq!(rc, 0x01, "E_NO_MAGIC: {msg}");

    // A get whose key declares 1 GiB.
    let mut huge = Vec::new();
    protocol::encode_prologue(cluster.cluster_id().as_bytes(), &mut huge);
    huge.extend_from_slice(&(0xb1ff_0000u32 | 0x08).to_le_bytes());
    huge.push(0x01);
    huge.extend_from_slice(&(1u32 << 30).to_le_bytes());
    let (rc, msg) = exchange(&addr, &huge).await;
    assert_eq!(rc, 0x26, "E_BAD_INPUT: {msg}");

    // A request word without the magic after a good prologue.
    let mut nomagic = Vec::new();
    protocol::encode_prologue(cluster.cluster_id().as_bytes(), &mut nomagic);
    nomagic.extend_from_slice(&0x0000_0008u32.to_le_bytes());
    let (rc, _) = exchange(&addr, &nomagic).await;
    assert_eq!(rc, 0x01, "E_NO_MAGIC for a request word");

    // A truncated frame, then the client goes away: nothing to answer.
    {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut bytes = Vec::new();
        protocol::encode_prologue(cluster.cluster_id().as_bytes(), &mut bytes);
        bytes.extend_from_slice(&(0xb1ff_0000u32 | 0x09).to_le_bytes());
        bytes.extend_from_slice(&10u32.to_le_bytes());
        bytes.extend_from_slice(b"abc");
        s.write_all(&bytes).await.unwrap();
    }

    // Messaging port: a wrong cluster id is refused with a reason.
    let maddr = cluster.config.nodes[0].messaging_address();
    let mut s = tokio::net::TcpStream::connect(&maddr).await.unwrap();
    let mut hello = b"ARKRSMSG".to_vec();
    hello.extend_from_slice(&node::MESSAGING_VERSION.to_le_bytes());
    for field in ["wrong", "node_0", "node_0"] {
        hello.extend_from_slice(&(field.len() as u32).to_le_bytes());
        hello.extend_from_slice(field.as_bytes());
    }
    s.write_all(&hello).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.first(), Some(&1u8), "handshake refused");
    assert!(String::from_utf8_lossy(&out).contains("cluster id"));

    let c = cluster.client();
    c.set(b"still", b"here").await.unwrap();
    assert_eq!(c.get(b"still").await.unwrap(), b"here");
    cluster.stop_all().await;
}

/// A known peer's frame declaring 1 GiB, or one that is not a message: the
/// connection is closed (nothing allocated) and the cluster serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_peer_frames_close_the_connection() {
    let cluster = Cluster::start(2).await;
    cluster.wait_master(&[0, 1]).await;
    let maddr = cluster.config.nodes[0].messaging_address();
    // A peer's frame declaring 1 GiB, or one that is not a message: the
    // connection is closed (nothing allocated), the node serves on.
    for frame in [
        (1u32 << 30).to_le_bytes().to_vec(),
        [5u32.to_le_bytes().to_vec(), b"junk!".to_vec()].concat(),
    ] {
        let mut s = tokio::net::TcpStream::connect(&maddr).await.unwrap();
        let mut hello = b"ARKRSMSG".to_vec();
        hello.extend_from_slice(&node::MESSAGING_VERSION.to_le_bytes());
        for field in [cluster.cluster_id(), "node_1", "node_0"] {
            hello.extend_from_slice(&(field.len() as u32).to_le_bytes());
            hello.extend_from_slice(field.as_bytes());
        }
        s.write_all(&hello).await.unwrap();
        assert_eq!(
            s.read_u8().await.unwrap(),
            0,
            "handshake of a known peer accepted"
        );
        s.write_all(&frame).await.unwrap();
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
        assert!(
            closed.is_ok(),
            "the node closes the connection after a bad frame"
        );
    }
    let c = cluster.client();
    c.set(b"still", b"here").await.unwrap();
    assert_eq!(c.get(b"still").await.unwrap(), b"here");
    cluster.stop_all().await;
}

/// Many clients at once are each answered with their own result (group
/// commit puts them in few entries).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_each_get_their_own_result() {
    let cluster = Cluster::start(3).await;
    cluster.wait_master(&[0, 1, 2]).await;
    let mut tasks = Vec::new();
    for t in 0..16u32 {
        let c = cluster.client();
        tasks.push(tokio::spawn(async move {
            for k in 0..10u32 {
                let key = format!("c{t}-{k}");
                c.set(key.as_bytes(), key.as_bytes()).await.unwrap();
                let before = c
                    .test_and_set(key.as_bytes(), Some(key.as_bytes()), Some(b"done"))
                    .await
                    .unwrap();
                assert_eq!(before.as_deref(), Some(key.as_bytes()));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let c = cluster.client();
    assert_eq!(c.prefix_keys(b"c", None).await.unwrap().len(), 160);
    cluster.stop_all().await;
}

/// A client that never reads its (large) answer, and one that sent half a
/// request and went quiet, hold only their own connections: other clients
/// are served at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_dead_clients_do_not_block_others() {
    let cluster = Cluster::start(1).await;
    cluster.wait_master(&[0]).await;
    let c = cluster.client();
    let value = vec![b'x'; 4096];
    let mut updates = Vec::new();
    for k in 0..1000u32 {
        updates.push(Update::Set {
            key: format!("big{k:04}").into_bytes(),
            value: value.clone(),
        });
    }
    c.sequence(updates).await.unwrap();
    let addr = cluster.config.nodes[0].client_address();
    // Slow: asks for ~4 MB and never reads.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut req = Vec::new();
    protocol::encode_prologue(cluster.cluster_id().as_bytes(), &mut req);
    for _ in 0..4 {
        protocol::encode_request(
            &protocol::Request::RangeEntries {
                consistency: Consistency::NoGuarantee,
                range: all(),
            },
            &mut req,
        );
    }
    slow.write_all(&req).await.unwrap();
    // Dead: half a request, then silence.
    let mut dead = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let mut half = Vec::new();
    protocol::encode_prologue(cluster.cluster_id().as_bytes(), &mut half);
    half.extend_from_slice(&(0xb1ff_0000u32 | 0x09).to_le_bytes());
    half.extend_from_slice(&100u32.to_le_bytes());
    dead.write_all(&half).await.unwrap();
    let start = Instant::now();
    for k in 0..20u32 {
        c.set(format!("fast{k}").as_bytes(), b"v").await.unwrap();
        assert_eq!(c.get(format!("fast{k}").as_bytes()).await.unwrap(), b"v");
    }
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "20 sets and gets took {took:?}"
    );
    // Nor do they hold up a graceful stop for long.
    let stopping = Instant::now();
    cluster.stop_all().await;
    let stop_took = stopping.elapsed();
    assert!(
        stop_took < Duration::from_secs(5),
        "stop took {stop_took:?}"
    );
    drop((slow, dead));
}

/// `metrics_port`: Prometheus text on GET /metrics, 404 elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_serves_prometheus_text() {
    // Bound by the node later: from outside the ephemeral range, so that
    // no outgoing connection takes it meanwhile (see node::loopback_ports).
    let port = node::loopback_ports(1).unwrap()[0];
    let cluster = Cluster::start_custom(&[format!("metrics_port = {port}\n")]).await;
    cluster.wait_master(&[0]).await;
    cluster.client().set(b"m", b"1").await.unwrap();
    async fn http_get(port: u16, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut out = String::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out))
            .await
            .unwrap()
            .unwrap();
        out
    }
    let page = http_get(port, "/metrics").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(
        page.contains("arakoon_is_master{node=\"node_0\"} 1"),
        "{page}"
    );
    // A request is counted when its connection picks its answer up, which
    // for an answer the driver wrote to the socket itself is when the
    // client sends its next request or closes (`answer.rs`): the client
    // above was dropped, so the count comes, a moment later.
    let counted = "arakoon_requests_total{node=\"node_0\",family=\"set\"} 1";
    cluster
        .wait_for(&format!("`{counted}` on /metrics"), async || {
            let page = http_get(port, "/metrics").await;
            page.contains(counted).then_some(())
        })
        .await;
    assert!(http_get(port, "/other").await.starts_with("HTTP/1.1 404"));
    cluster.stop_all().await;
}

/// A range or prefix answer larger than `max_buffer_size` (which no client
/// would read) is refused with `E_BAD_INPUT` before it is built, and the
/// connection serves on; asking for fewer (`max`) pages through it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_beyond_max_buffer_size_are_refused_not_built() {
    let global = "__tainted_max_buffer_size = 65536\n__tainted_max_value_size = 4096";
    let cluster = Cluster::start_full(global, &[String::new()]).await;
    let c = cluster.client();
    cluster.wait_master(&[0]).await;
    // 100 values of 1,000 bytes: about 100 KB of answer for everything.
    let value = vec![b'v'; 1_000];
    for i in 0..100 {
        c.set(format!("k{i:03}").as_bytes(), &value).await.unwrap();
    }
    let refused = c.range_entries(&all()).await.unwrap_err();
    assert_eq!(
        refused.result_code(),
        Some(client::ResultCode::BadInput),
        "{refused}"
    );
    assert!(refused.to_string().contains("65536"), "{refused}");
    // The same connection serves on, and a page within the limit is given.
    let page = KeyRange { max: 50, ..all() };
    assert_eq!(c.range_entries(&page).await.unwrap().len(), 50);
    assert_eq!(c.range(&all()).await.unwrap().len(), 100, "keys alone fit");
    assert_eq!(c.prefix_keys(b"k", None).await.unwrap().len(), 100);
}

/// A client that sends half a request and vanishes does not hold its
/// connection (and a slot of `MAX_CLIENT_CONNECTIONS`) for good: the node
/// closes it after `client_frame_timeout`. A connection idle between
/// requests is kept (Arakoon's clients keep theirs open).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_is_dropped_after_the_frame_timeout() {
    let cluster = Cluster::start_with(1, "client_frame_timeout = 1").await;
    let c = cluster.client();
    cluster.wait_master(&[0]).await;
    c.set(b"k", b"v").await.unwrap();
    let addr = cluster.config.nodes[0].client_address();
    let open = || async {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let mut prologue = Vec::new();
        protocol::encode_prologue(cluster.cluster_id().as_bytes(), &mut prologue);
        s.write_all(&prologue).await.unwrap();
        s
    };
    let mut get = Vec::new();
    protocol::encode_request(
        &protocol::Request::Get {
            consistency: Consistency::Consistent,
            key: b"k".to_vec(),
        },
        &mut get,
    );
    let mut idle = open().await;
    let mut stalled = open().await;
    stalled.write_all(&get[..get.len() / 2]).await.unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), stalled.read_to_end(&mut rest))
        .await
        .expect("the node closes a stalled request's connection")
        .unwrap();
    assert!(rest.is_empty(), "nothing is answered to half a request");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed only after the frame timeout, not at once ({:?})",
        started.elapsed()
    );
    // The idle connection outlived the frame timeout and still serves.
    idle.write_all(&get).await.unwrap();
    let mut answer = [0u8; 4 + 4 + 1];
    tokio::time::timeout(Duration::from_secs(5), idle.read_exact(&mut answer))
        .await
        .expect("an answer on the idle connection")
        .unwrap();
    assert_eq!(answer[..4], 0u32.to_le_bytes(), "E_OK");
    assert_eq!(&answer[8..], b"v");
}

/// A raw client connection: every write and read within [`RAW_TIMEOUT`],
/// so that a node that stops reading fails the test instead of hanging it.
struct Raw {
    stream: tokio::net::TcpStream,
}

const RAW_TIMEOUT: Duration = Duration::from_secs(10);

impl Raw {
    async fn open(addr: &str, cluster_id: &str) -> Raw {
        let stream = tokio::time::timeout(RAW_TIMEOUT, tokio::net::TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        let mut raw = Raw { stream };
        let mut prologue = Vec::new();
        protocol::encode_prologue(cluster_id.as_bytes(), &mut prologue);
        raw.send(&prologue).await;
        raw
    }

    async fn send(&mut self, bytes: &[u8]) {
        tokio::time::timeout(RAW_TIMEOUT, self.stream.write_all(bytes))
            .await
            .expect("the node reads what is sent (write timed out)")
            .expect("write");
    }

    /// One answer to `command`: its rc and its message (or payload).
    async fn answer(&mut self, command: protocol::Command) -> protocol::Response {
        let mut buf = Vec::new();
        loop {
            let limits = protocol::Limits::default();
            match protocol::decode_response(&buf, command, &limits).expect("a valid answer") {
                protocol::Decoded::Complete { value, consumed } => {
                    assert_eq!(consumed, buf.len(), "one answer only");
                    return value;
                }
                protocol::Decoded::Incomplete { needed } => {
                    let mut more = vec![0u8; needed - buf.len()];
                    tokio::time::timeout(RAW_TIMEOUT, self.stream.read_exact(&mut more))
                        .await
                        .expect("an answer in time")
                        .expect("the connection is kept until the answer");
                    buf.extend_from_slice(&more);
                }
            }
        }
    }

    /// The node closes the connection (nothing more comes).
    async fn closed(&mut self) {
        let mut rest = Vec::new();
        tokio::time::timeout(RAW_TIMEOUT, self.stream.read_to_end(&mut rest))
            .await
            .expect("the node closes the connection")
            .expect("read to the end");
        assert_eq!(rest, b"", "nothing after the answer");
    }
}

fn error_of(response: protocol::Response) -> (protocol::ResultCode, String) {
    match response {
        protocol::Response::Error(e) => (e.result_code(), e.message_lossy().into_owned()),
        ok => panic!("expected an error answer, got {ok:?}"),
    }
}

/// Issue 13, as Arakoon 1.9 answers (`shared/spec/arakoon-protocol.md`,
/// "Behaviours Arakoon's clients and scripts rely on"), on one node with a
/// 1 MiB `__tainted_max_buffer_size`:
/// - a request string over the limit is read and dropped, answered
///   E_BAD_INPUT naming the limit, and the connection serves on; a string
///   beyond what the node drops (4 × the limit) is E_BAD_INPUT and a close;
/// - `user_function` of an unknown name: E_BAD_INPUT, connection kept;
///   inside a sequence: E_NOT_FOUND;
/// - `set_interval`, `migrate_range`: read whole, E_NOT_SUPPORTED, kept;
/// - AssertRange in a sequence holds exactly for the keys under the prefix;
/// - `harvest_stats` is a full `x_stats` list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_13_answers_as_arakoon() {
    use protocol::{Command, Request as Wire, ResultCode};
    let limit = 1 << 20;
    let global =
        format!("__tainted_max_buffer_size = {limit}\n__tainted_max_value_size = 524288\n");
    let cluster = Cluster::start_full(&global, &[String::new()]).await;
    cluster.wait_master(&[0]).await;
    let addr = cluster.config.nodes[0].client_address();
    let c = cluster.client();

    // A sequence carrying a 3 MB value: over the limit, within what the
    // node drops.
    let mut raw = Raw::open(&addr, cluster.cluster_id()).await;
    let mut big = Vec::new();
    protocol::encode_request(
        &Wire::Sequence {
            updates: vec![Update::Set {
                key: b"big".to_vec(),
                value: vec![5; 3_000_000],
            }],
        },
        &mut big,
    );
    raw.send(&big).await;
    let (rc, message) = error_of(raw.answer(Command::Sequence).await);
    assert_eq!(rc, ResultCode::BadInput, "{message}");
    assert!(message.contains(&format!("limit of {limit}")), "{message}");
    // The connection serves on, in step.
    let mut set = Vec::new();
    protocol::encode_request(
        &Wire::Set {
            key: b"after_big".to_vec(),
            value: b"1".to_vec(),
        },
        &mut set,
    );
    raw.send(&set).await;
    assert_eq!(
        raw.answer(Command::Set).await,
        protocol::Response::Ok(protocol::Reply::Set)
    );
    assert!(!c.exists(b"big").await.unwrap(), "nothing of it applied");
    assert_eq!(c.get(b"after_big").await.unwrap(), b"1");

    // A key declaring 5 MiB (beyond 4 × the limit): refused at its length,
    // without reading it, and closed.
    let mut raw2 = Raw::open(&addr, cluster.cluster_id()).await;
    let mut huge = Command::Delete.word().to_le_bytes().to_vec();
    huge.extend_from_slice(&(5u32 << 20).to_le_bytes());
    raw2.send(&huge).await;
    let (rc, message) = error_of(raw2.answer(Command::Delete).await);
    assert_eq!(rc, ResultCode::BadInput, "{message}");
    raw2.closed().await;

    // user_function of a name no node knows: E_BAD_INPUT, kept.
    let mut uf = Vec::new();
    protocol::encode_request(
        &Wire::UserFunction {
            name: b"no_such_function".to_vec(),
            argument: None,
        },
        &mut uf,
    );
    raw.send(&uf).await;
    let (rc, message) = error_of(raw.answer(Command::UserFunction).await);
    assert_eq!(rc, ResultCode::BadInput, "{message}");
    assert_eq!(
        message,
        "User function \"no_such_function\" could not be found"
    );
    // Inside a sequence: E_NOT_FOUND, nothing applied.
    let failed = c
        .sequence(vec![
            Update::Set {
                key: b"uf_side_effect".to_vec(),
                value: b"x".to_vec(),
            },
            Update::UserFunction {
                name: b"no_such_function".to_vec(),
                argument: Some(b"arg".to_vec()),
            },
        ])
        .await
        .unwrap_err();
    assert_eq!(failed.result_code(), Some(ResultCode::NotFound), "{failed}");
    assert!(!c.exists(b"uf_side_effect").await.unwrap());

    // set_interval (four option strings) and migrate_range (the same and a
    // string): E_NOT_SUPPORTED, connection kept.
    for code in [0x17u32, 0x22] {
        let mut bytes = (protocol::MAGIC | code).to_le_bytes().to_vec();
        bytes.extend_from_slice(&[1, 1, 0, 0, 0, b'a', 0, 0, 1, 1, 0, 0, 0, b'z']);
        if code == 0x22 {
            bytes.extend_from_slice(&[2, 0, 0, 0, 9, 9]);
        }
        raw.send(&bytes).await;
        // Answered as any command's error: rc and message.
        let (rc, message) = error_of(raw.answer(Command::Nop).await);
        assert_eq!(rc, ResultCode::NotSupported, "{code:#x}: {message}");
        raw.send(&set).await;
        assert_eq!(
            raw.answer(Command::Set).await,
            protocol::Response::Ok(protocol::Reply::Set),
            "{code:#x}: the connection is kept"
        );
    }

    // AssertRange: the keys under the prefix are exactly these.
    let assert_range = |keys: &[&[u8]]| Update::AssertRange {
        prefix: b"ar/".to_vec(),
        assertion: protocol::RangeAssertion::ContainsExactly(
            keys.iter().map(|k| k.to_vec()).collect(),
        ),
    };
    c.sequence(vec![assert_range(&[])]).await.unwrap();
    c.set(b"ar/1", b"").await.unwrap();
    c.set(b"ar/2", b"").await.unwrap();
    c.set(b"as", b"").await.unwrap();
    c.sequence(vec![assert_range(&[b"ar/2", b"ar/1"])])
        .await
        .unwrap();
    let failed = c
        .sequence(vec![
            Update::Set {
                key: b"ar_side_effect".to_vec(),
                value: b"x".to_vec(),
            },
            assert_range(&[b"ar/1"]),
        ])
        .await
        .unwrap_err();
    assert_eq!(
        failed.result_code(),
        Some(ResultCode::AssertionFailed),
        "{failed}"
    );
    assert!(failed.to_string().contains("ar/2"), "{failed}");
    assert!(!c.exists(b"ar_side_effect").await.unwrap());

    // harvest_stats: n, min, max, m2, avg, var, counting the entries made.
    let stats = c.statistics().await.unwrap();
    let harvest = stats.get("harvest_stats").expect("harvest_stats");
    let protocol::NamedValue::List(fields) = &harvest.value else {
        panic!("{harvest:?}");
    };
    let names: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["n", "min", "max", "m2", "avg", "var"]);
    assert!(
        matches!(fields[0].value, protocol::NamedValue::Int32(n) if n >= 5),
        "{harvest:?}"
    );
    assert!(
        matches!(fields[1].value, protocol::NamedValue::Float(min) if min >= 1.0),
        "{harvest:?}"
    );
    // An operation family never used shows Arakoon's initial min.
    let unused = stats.get("rev_range_entries_info").expect("listed");
    assert_eq!(
        unused.get("min").map(|f| &f.value),
        Some(&protocol::NamedValue::Float(f64::MAX))
    );
    cluster.stop_all().await;
}

/// A wrong cluster id: the node closes without a reply, and our client
/// says so, naming the cluster id it sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_cluster_id_is_named_by_the_client() {
    let cluster = Cluster::start(1).await;
    cluster.wait_master(&[0]).await;
    let wrong = client::ClientBuilder::new("not_this_cluster")
        .node(cluster.name(0), cluster.config.nodes[0].client_address())
        .build()
        .unwrap();
    let error = wrong.get(b"k").await.unwrap_err();
    let Error::WrongCluster { cluster_id, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(cluster_id, "not_this_cluster");
    assert!(error.to_string().contains("not_this_cluster"), "{error}");
    cluster.stop_all().await;
}
