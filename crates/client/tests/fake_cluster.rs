//! The client against scripted fake nodes (`client::fake_node`): master
//! discovery, NotMaster redirects, which requests are retried and which are
//! never resent, timeouts, a wrong cluster id, and every command.

use std::time::Duration;

use client::fake_node::{Action, FakeNode};
use client::{Client, ClientBuilder, Consistency, Error, KeyRange, RetryPolicy, Sequence, Update};
use protocol::{Command, ResultCode};

const CLUSTER: &str = "fake";

/// Quick retries, so that tests that exhaust them stay short.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        backoff_initial: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
    }
}

async fn start(names: &[&str], master: Option<&str>) -> Vec<FakeNode> {
    let mut nodes = Vec::new();
    for name in names {
        let node = FakeNode::start(name, CLUSTER)
            .await
            .expect("bind 127.0.0.1:0");
        node.set_master(master);
        nodes.push(node);
    }
    nodes
}

fn builder_for(nodes: &[FakeNode]) -> ClientBuilder {
    nodes
        .iter()
        .fold(ClientBuilder::new(CLUSTER), |b, n| {
            b.node(n.name(), n.address())
        })
        .retry_policy(fast_retry())
}

fn client_for(nodes: &[FakeNode]) -> Client {
    builder_for(nodes).build().expect("valid client config")
}

/// A port on 127.0.0.1 where nothing listens, reserved while the returned
/// socket lives: bound but not listening, so a connect is refused, and no
/// other test can be given the port meanwhile.
fn closed_port() -> (tokio::net::TcpSocket, String) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("address"))
        .expect("bind");
    let address = socket.local_addr().expect("local address").to_string();
    (socket, address)
}

/// Discovery: a node naming another sends the search there; the master is
/// the node that names itself.
#[tokio::test]
async fn discovery_follows_the_named_master() {
    let nodes = start(&["n0", "n1", "n2"], Some("n2")).await;
    let client = client_for(&nodes);
    assert_eq!(client.master().await.expect("master"), "n2");
    client.set(b"k", b"v").await.expect("set");
    assert_eq!(nodes[2].value(b"k").as_deref(), Some(&b"v"[..]));
    // n0 was asked, pointed at n2, and n1 was never needed.
    assert_eq!(nodes[0].count(Command::WhoMaster), 1);
    assert_eq!(nodes[1].count(Command::WhoMaster), 0);
    assert_eq!(nodes[2].count(Command::Set), 1);
}

/// Discovery skips a node that cannot be reached.
#[tokio::test]
async fn discovery_skips_unreachable_nodes() {
    let nodes = start(&["n1"], Some("n1")).await;
    let (_reserved, closed) = closed_port();
    let client = ClientBuilder::new(CLUSTER)
        .node("n0", closed)
        .node("n1", nodes[0].address())
        .retry_policy(fast_retry())
        .build()
        .expect("client");
    assert_eq!(
        client
            .get(b"missing")
            .await
            .err()
            .and_then(|e| e.result_code()),
        Some(ResultCode::NotFound)
    );
    assert_eq!(client.master().await.expect("master"), "n1");
}

/// No master anywhere: a bounded number of attempts, then an error that
/// says what each node answered.
#[tokio::test]
async fn no_master_fails_after_bounded_retries() {
    let nodes = start(&["n0", "n1"], None).await;
    let client = client_for(&nodes);
    let error = client.get(b"k").await.expect_err("no master");
    let Error::NoMaster {
        cluster_id,
        failures,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(cluster_id, CLUSTER);
    assert_eq!(failures.len(), 2);
    assert!(
        error
            .to_string()
            .contains("n0: knows no master; n1: knows no master"),
        "{error}"
    );
    let attempts = fast_retry().max_attempts as usize;
    assert_eq!(nodes[0].count(Command::WhoMaster), attempts);
    assert_eq!(nodes[0].count(Command::Get), 0);
}

/// NotMaster with a hint: the update (not applied by the refusing node) is
/// sent to the named master, once.
#[tokio::test]
async fn not_master_redirects_updates_to_the_named_master() {
    let nodes = start(&["n0", "n1"], Some("n0")).await;
    let client = client_for(&nodes);
    assert_eq!(client.master().await.expect("master"), "n0");
    // Mastership moves to n1; the client still has n0 cached.
    for node in &nodes {
        node.set_master(Some("n1"));
    }
    client.set(b"k", b"v").await.expect("set after redirect");
    assert_eq!(nodes[0].count(Command::Set), 1, "refused by n0");
    assert_eq!(nodes[1].count(Command::Set), 1, "applied by n1");
    assert_eq!(nodes[1].value(b"k").as_deref(), Some(&b"v"[..]));
    assert_eq!(client.master().await.expect("master"), "n1");
}

/// NotMaster without a hint: the master is looked up again.
#[tokio::test]
async fn not_master_without_hint_rediscovers() {
    let nodes = start(&["n0", "n1"], Some("n0")).await;
    let client = client_for(&nodes);
    client.set(b"a", b"1").await.expect("first set");
    nodes[0].set_master(None);
    nodes[1].set_master(Some("n1"));
    client.set(b"b", b"2").await.expect("set after rediscovery");
    assert_eq!(nodes[1].value(b"b").as_deref(), Some(&b"2"[..]));
    assert!(nodes[1].count(Command::WhoMaster) >= 1);
}

/// A read whose connection is lost is retried on a new connection.
#[tokio::test]
async fn reads_are_retried_after_a_lost_connection() {
    let nodes = start(&["n0"], Some("n0")).await;
    nodes[0].insert(b"k", b"v");
    nodes[0].script(Command::Get, Action::Close);
    let client = client_for(&nodes);
    assert_eq!(client.get(b"k").await.expect("get"), b"v");
    assert_eq!(nodes[0].count(Command::Get), 2);
    assert_eq!(nodes[0].connections(), 2);
}

/// Rule: an update whose bytes may have reached the node is never resent;
/// the error says the outcome is unknown.
#[tokio::test]
async fn updates_are_not_resent_after_a_lost_connection() {
    let nodes = start(&["n0"], Some("n0")).await;
    nodes[0].script(Command::Set, Action::Close);
    let client = client_for(&nodes);
    let error = client.set(b"k", b"v").await.expect_err("connection lost");
    assert!(
        matches!(error, Error::OutcomeUnknown { command: "set", .. }),
        "{error:?}"
    );
    assert!(error.is_outcome_unknown());
    let shown = error.to_string();
    assert!(
        shown.starts_with("set on n0: outcome unknown, read answer 127.0.0.1:")
            && shown.contains("connection closed by the node"),
        "{shown}"
    );
    assert_eq!(nodes[0].count(Command::Set), 1, "sent exactly once");
    // The client recovers: the next update goes through on a new connection.
    client.set(b"k", b"w").await.expect("next set");
    assert_eq!(nodes[0].value(b"k").as_deref(), Some(&b"w"[..]));
}

/// NoLongerMaster: an update is surfaced (outcome unknown), a read retried.
#[tokio::test]
async fn no_longer_master_is_surfaced_for_updates_and_retried_for_reads() {
    let nodes = start(&["n0"], Some("n0")).await;
    nodes[0].insert(b"k", b"v");
    nodes[0].script(
        Command::Delete,
        Action::error(ResultCode::NoLongerMaster, "lease lost"),
    );
    nodes[0].script(
        Command::Get,
        Action::error(ResultCode::NoLongerMaster, "lease lost"),
    );
    let client = client_for(&nodes);
    let error = client.delete(b"k").await.expect_err("no longer master");
    assert!(matches!(error, Error::NoLongerMaster { .. }), "{error:?}");
    assert!(error.is_outcome_unknown());
    assert_eq!(nodes[0].count(Command::Delete), 1);
    assert_eq!(client.get(b"k").await.expect("get retried"), b"v");
    assert_eq!(nodes[0].count(Command::Get), 2);
}

/// GoingDown mid-update: outcome unknown, not resent. MaxConnections is a
/// refusal at the door: resent.
#[tokio::test]
async fn going_down_is_outcome_unknown_and_max_connections_is_retried() {
    let nodes = start(&["n0"], Some("n0")).await;
    nodes[0].script(
        Command::Set,
        Action::error(ResultCode::GoingDown, "stopping"),
    );
    let client = client_for(&nodes);
    let error = client.set(b"k", b"v").await.expect_err("going down");
    assert!(error.is_outcome_unknown(), "{error:?}");
    assert!(
        error.to_string().contains("going down (stopping)"),
        "{error}"
    );
    assert_eq!(nodes[0].count(Command::Set), 1);

    nodes[0].script(
        Command::Set,
        Action::error(ResultCode::MaxConnections, "full"),
    );
    client.set(b"k", b"v").await.expect("set after a refusal");
    assert_eq!(nodes[0].count(Command::Set), 3);
    assert_eq!(nodes[0].value(b"k").as_deref(), Some(&b"v"[..]));
}

/// Timeouts: a read that gets no answer fails with Timeout after the
/// policy's attempts; an update with OutcomeUnknown after one.
#[tokio::test]
async fn timeouts_fail_reads_after_retries_and_updates_at_once() {
    let nodes = start(&["n0"], Some("n0")).await;
    for _ in 0..fast_retry().max_attempts {
        nodes[0].script(Command::Exists, Action::Hang);
    }
    nodes[0].script(Command::Set, Action::Hang);
    let client = builder_for(&nodes)
        .request_timeout(Duration::from_millis(100))
        .build()
        .expect("client");
    let error = client.exists(b"k").await.expect_err("hangs");
    assert!(
        matches!(
            error,
            Error::Timeout {
                command: "exists",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        nodes[0].count(Command::Exists),
        fast_retry().max_attempts as usize
    );
    let error = client.set(b"k", b"v").await.expect_err("hangs");
    assert!(matches!(error, Error::OutcomeUnknown { .. }), "{error:?}");
    assert!(error.to_string().contains("no answer within"), "{error}");
    assert_eq!(nodes[0].count(Command::Set), 1);
}

/// A wrong cluster id is a config mistake: the nodes close the connection
/// right after the prologue without a reply (as Arakoon's do); the client
/// reports it at once, naming the nodes and the cluster id it sent, and
/// does not retry.
#[tokio::test]
async fn wrong_cluster_id_is_reported_not_retried() {
    let nodes = start(&["n0"], Some("n0")).await;
    let client = ClientBuilder::new("another_cluster")
        .node("n0", nodes[0].address())
        .retry_policy(fast_retry())
        .build()
        .expect("client");
    let error = client.get(b"k").await.expect_err("wrong cluster");
    let Error::WrongCluster {
        node, cluster_id, ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(
        (node.as_str(), cluster_id.as_str()),
        ("n0", "another_cluster")
    );
    assert_eq!(nodes[0].connections(), 1, "not retried");
    assert!(error.to_string().contains("another_cluster"), "{error}");
}

/// Every node of three closes right after the prologue, one cannot be
/// reached: still `WrongCluster`, naming the nodes that closed and saying
/// how many could not be reached.
#[tokio::test]
async fn wrong_cluster_id_with_a_node_down() {
    let nodes = start(&["n0", "n1"], Some("n0")).await;
    let (_reserved, down) = closed_port();
    let client = ClientBuilder::new("another_cluster")
        .node("n0", nodes[0].address())
        .node("n1", nodes[1].address())
        .node("n2", down.as_str())
        .retry_policy(fast_retry())
        .build()
        .expect("client");
    let error = client.set(b"k", b"v").await.expect_err("wrong cluster");
    let Error::WrongCluster {
        node,
        cluster_id,
        message,
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(
        (node.as_str(), cluster_id.as_str()),
        ("n0, n1", "another_cluster")
    );
    assert!(
        message.contains("1 other node(s) could not be reached"),
        "{message}"
    );
    assert_eq!(nodes[0].count(Command::Set), 0);
}

/// A node that closes at once while another answers is not a wrong
/// cluster id: discovery goes on (here: finds no master) and says why.
#[tokio::test]
async fn one_node_closing_is_not_a_wrong_cluster() {
    let ours = start(&["n0"], None).await;
    let other = FakeNode::start("n1", "another_cluster")
        .await
        .expect("bind 127.0.0.1:0");
    let client = ClientBuilder::new(CLUSTER)
        .node("n0", ours[0].address())
        .node("n1", other.address())
        .retry_policy(RetryPolicy::no_retry())
        .build()
        .expect("client");
    let error = client.master().await.expect_err("no master");
    let Error::NoMaster { failures, .. } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(failures.len(), 2, "{error}");
    assert!(
        failures[1].reason.contains("right after the prologue"),
        "{error}"
    );
}

/// A handle on one node does not follow NotMaster, and serves NoGuarantee
/// reads from a slave.
#[tokio::test]
async fn one_node_handle_reads_from_a_slave() {
    let nodes = start(&["n0", "n1"], Some("n0")).await;
    nodes[1].insert(b"k", b"old");
    let client = client_for(&nodes);
    let slave = client.node("n1").expect("known node");
    let error = slave
        .get(b"k")
        .await
        .expect_err("consistent read on a slave");
    assert!(
        matches!(&error, Error::NotMaster { master: Some(m), .. } if m == "n0"),
        "{error:?}"
    );
    let relaxed = slave.with_consistency(Consistency::NoGuarantee);
    assert_eq!(relaxed.get(b"k").await.expect("relaxed read"), b"old");
    assert_eq!(
        relaxed.who_master().await.expect("who_master").as_deref(),
        Some("n0")
    );
    assert_eq!(nodes[0].count(Command::Get), 0, "never sent to the master");
}

/// Every command, against a fake master.
#[tokio::test]
async fn every_command_round_trips() {
    let nodes = start(&["n0"], Some("n0")).await;
    let c = client_for(&nodes);
    c.set(b"a", b"1").await.expect("set");
    c.set(b"b", b"2").await.expect("set");
    c.set(b"c", b"3").await.expect("set");
    assert_eq!(c.get(b"a").await.expect("get"), b"1");
    assert!(c.exists(b"a").await.expect("exists"));
    assert!(!c.exists(b"z").await.expect("exists"));
    let missing = c.get(b"z").await.expect_err("missing");
    assert!(
        matches!(&missing, Error::NotFound { key, .. } if key == b"z"),
        "{missing:?}"
    );
    assert_eq!(
        c.multi_get(&[b"a", b"c"]).await.expect("multi_get"),
        [b"1", b"3"]
    );
    let missing = c.multi_get(&[b"a", b"z"]).await.expect_err("missing");
    assert!(
        matches!(&missing, Error::NotFound { key, .. } if key == b"z"),
        "{missing:?}"
    );
    assert_eq!(
        c.multi_get_option(&[b"a", b"z"])
            .await
            .expect("multi_get_option"),
        [Some(b"1".to_vec()), None]
    );
    let all = KeyRange {
        first: Some(b"a".to_vec()),
        first_inclusive: false,
        last: None,
        last_inclusive: false,
        max: -1,
    };
    assert_eq!(c.range(&all).await.expect("range"), [b"b", b"c"]);
    let entries = c.range_entries(&all).await.expect("range_entries");
    assert_eq!(
        entries,
        [
            (b"b".to_vec(), b"2".to_vec()),
            (b"c".to_vec(), b"3".to_vec())
        ]
    );
    let down = KeyRange {
        first: Some(b"c".to_vec()),
        first_inclusive: true,
        last: Some(b"a".to_vec()),
        last_inclusive: false,
        max: -1,
    };
    let entries = c.rev_range_entries(&down).await.expect("rev_range_entries");
    assert_eq!(
        entries,
        [
            (b"c".to_vec(), b"3".to_vec()),
            (b"b".to_vec(), b"2".to_vec())
        ]
    );
    assert_eq!(
        c.prefix_keys(b"", Some(2)).await.expect("prefix_keys"),
        [b"a", b"b"]
    );
    assert_eq!(
        c.test_and_set(b"a", Some(b"1"), Some(b"10"))
            .await
            .expect("tas"),
        Some(b"1".to_vec())
    );
    assert_eq!(
        c.test_and_set(b"a", Some(b"1"), Some(b"11"))
            .await
            .expect("tas"),
        Some(b"10".to_vec())
    );
    assert_eq!(
        c.replace(b"b", Some(b"20")).await.expect("replace"),
        Some(b"2".to_vec())
    );
    c.assert(b"a", Some(b"10")).await.expect("assert");
    let failed = c.assert(b"a", None).await.expect_err("assert");
    assert!(
        matches!(failed, Error::AssertionFailed { .. }),
        "{failed:?}"
    );
    c.assert_exists(b"b").await.expect("assert_exists");
    // A sequence whose assert fails applies nothing.
    let failed = c
        .sequence(vec![
            Update::Set {
                key: b"x".to_vec(),
                value: b"1".to_vec(),
            },
            Update::Assert {
                key: b"a".to_vec(),
                value: None,
            },
        ])
        .await
        .expect_err("assert in sequence");
    assert!(
        matches!(failed, Error::AssertionFailed { .. }),
        "{failed:?}"
    );
    assert!(!c.exists(b"x").await.expect("exists"));
    c.sequence(vec![Update::Set {
        key: b"x".to_vec(),
        value: b"1".to_vec(),
    }])
    .await
    .expect("sequence");
    c.synced_sequence(vec![Update::Delete { key: b"x".to_vec() }])
        .await
        .expect("synced_sequence");
    c.confirm(b"y", b"1").await.expect("confirm");
    c.delete(b"y").await.expect("delete");
    assert_eq!(c.get_key_count().await.expect("get_key_count"), 3);
    assert_eq!(c.delete_prefix(b"").await.expect("delete_prefix"), 3);
    assert_eq!(
        c.who_master().await.expect("who_master").as_deref(),
        Some("n0")
    );
    assert!(c.expect_progress_possible().await.expect("epp"));
    let stats = c.statistics().await.expect("statistics");
    assert_eq!(stats.name, "arakoon_stats");
    assert_eq!(c.version().await.expect("version").minor, 1);
    c.nop().await.expect("nop");
    assert!(matches!(c.get_txid().await.expect("get_txid"), Consistency::AtLeast(i) if i > 0));
    assert!(c
        .current_state()
        .await
        .expect("current_state")
        .contains("master"));
    assert!(c.ping("test").await.expect("ping").contains("n0"));
    c.drop_master().await.expect("drop_master");
    assert_eq!(
        nodes[0].connections(),
        1,
        "one connection carried everything"
    );
}

/// The client's futures can be spawned on a multi-thread runtime.
#[test]
fn client_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let client = ClientBuilder::new(CLUSTER)
        .node("n0", "127.0.0.1:1")
        .build()
        .expect("client");
    assert_send(&client.get(b"k"));
    assert_send(&client.set(b"k", b"v"));
    assert_send(&client.master());
    assert_send(&client.sequence(Vec::new()));
}

/// Rule: a sequence is all or nothing; the builder's updates arrive in order.
#[tokio::test]
async fn sequence_builder_all_or_nothing() {
    let nodes = start(&["n0"], Some("n0")).await;
    nodes[0].insert(b"queue/1", b"pending");
    let client = client_for(&nodes);
    let take = || {
        Sequence::new()
            .assert(b"queue/1", Some(b"pending"))
            .delete(b"queue/1")
            .set(b"running/1", b"w7")
    };
    client.sequence(take()).await.expect("first take");
    assert_eq!(nodes[0].value(b"running/1").as_deref(), Some(&b"w7"[..]));
    let error = client.sequence(take()).await.expect_err("already taken");
    assert!(matches!(error, Error::AssertionFailed { .. }), "{error:?}");
    let received = nodes[0].received();
    let Some(protocol::Request::Sequence { updates }) = received.last() else {
        panic!("{received:?}");
    };
    assert_eq!(updates, &Vec::<Update>::from(take()));
}

/// Every node down: the error names each node and address, on one line.
#[tokio::test]
async fn all_nodes_down_names_each_address() {
    let ((_r0, a0), (_r1, a1)) = (closed_port(), closed_port());
    let client = ClientBuilder::new(CLUSTER)
        .node("n0", a0.clone())
        .node("n1", a1.clone())
        .retry_policy(fast_retry())
        .build()
        .expect("client");
    let error = client.set(b"k", b"v").await.expect_err("nobody listens");
    assert!(matches!(error, Error::NoMaster { .. }), "{error:?}");
    assert!(!error.is_outcome_unknown(), "nothing was sent");
    let shown = error.to_string();
    assert!(shown.contains(&format!("n0: connect {a0}: ")), "{shown}");
    assert!(shown.contains(&format!("; n1: connect {a1}: ")), "{shown}");
    assert!(!shown.contains('\n'));
}

/// A request abandoned by its caller (future dropped mid-request) leaves
/// its connection out of step: it is not reused.
#[tokio::test]
async fn an_abandoned_request_does_not_poison_the_next() {
    let nodes = start(&["n0"], Some("n0")).await;
    nodes[0].insert(b"k", b"v");
    nodes[0].script(Command::Get, Action::Hang);
    let client = client_for(&nodes);
    client.master().await.expect("master");
    let abandoned = tokio::time::timeout(Duration::from_millis(50), client.get(b"k")).await;
    assert!(abandoned.is_err(), "the scripted get hangs");
    assert_eq!(client.get(b"k").await.expect("next get"), b"v");
    assert_eq!(
        nodes[0].connections(),
        2,
        "a fresh connection for the next get"
    );
}

/// A pooled connection the node closed while idle is replaced before an
/// update is sent on it: the update is not lost to an "outcome unknown".
#[tokio::test]
async fn an_update_is_not_sent_on_a_connection_the_node_closed() {
    let nodes = start(&["n0"], Some("n0")).await;
    nodes[0].insert(b"k", b"v");
    let value = protocol::Response::Ok(protocol::Reply::Get(b"v".to_vec()));
    nodes[0].script(Command::Get, Action::RespondThenClose(value));
    let client = client_for(&nodes);
    assert_eq!(client.get(b"k").await.expect("get"), b"v");
    assert!(
        nodes[0].wait_closed(1, Duration::from_secs(5)).await,
        "the node closed the connection"
    );
    client
        .set(b"k", b"w")
        .await
        .expect("set on a new connection");
    assert_eq!(nodes[0].count(Command::Set), 1);
    assert_eq!(nodes[0].connections(), 2);
}

/// A request above the cluster's frame limit fails before any byte is sent.
#[tokio::test]
async fn a_too_large_request_is_not_sent() {
    let nodes = start(&["n0"], Some("n0")).await;
    let client = builder_for(&nodes)
        .max_request_size(100)
        .build()
        .expect("client");
    let error = client.set(b"k", &[7u8; 200]).await.expect_err("too large");
    assert!(
        matches!(error, Error::RequestTooLarge { limit: 100, .. }),
        "{error:?}"
    );
    assert!(!error.is_outcome_unknown());
    assert_eq!(nodes[0].connections(), 0);
    client.set(b"k", &[7u8; 50]).await.expect("small enough");
}

/// The raw request path follows the same rules; a streamed command is refused.
#[tokio::test]
async fn raw_requests() {
    let nodes = start(&["n0"], Some("n0")).await;
    nodes[0].insert(b"k", b"v");
    let client = client_for(&nodes);
    let reply = client
        .request(protocol::Request::GetKeyCount)
        .await
        .expect("get_key_count");
    assert_eq!(reply, protocol::Reply::GetKeyCount(1));
    let refused = client
        .request(protocol::Request::CollapseTlogs { tlogs_to_keep: 1 })
        .await
        .expect_err("streamed");
    assert!(matches!(refused, Error::Config(_)), "{refused:?}");
    assert_eq!(nodes[0].count(Command::CollapseTlogs), 0);
}

/// `Sequence::assert_prefix_contains_exactly` sends Arakoon's AssertRange
/// (ContainsExactly): the keys under the prefix, in any order.
#[tokio::test]
async fn assert_prefix_contains_exactly_is_an_assert_range() {
    let nodes = start(&["n0"], Some("n0")).await;
    let client = client_for(&nodes);
    client.set(b"p/1", b"").await.expect("set");
    client.set(b"p/2", b"").await.expect("set");
    client
        .sequence(Sequence::new().assert_prefix_contains_exactly(b"p/", &[b"p/2", b"p/1"]))
        .await
        .expect("the keys under p/ are p/1 and p/2");
    let error = client
        .sequence(
            Sequence::new()
                .set(b"q", b"x")
                .assert_prefix_contains_exactly(b"p/", &[b"p/1"]),
        )
        .await
        .expect_err("p/2 is there too");
    assert_eq!(error.result_code(), Some(ResultCode::AssertionFailed));
    assert!(matches!(
        &nodes[0].received().last(),
        Some(client::Request::Sequence { updates }) if matches!(
            updates.last(),
            Some(Update::AssertRange { prefix, .. }) if prefix == b"p/"
        )
    ));
}

/// A node that closes with the client's request unread in its socket
/// resets the connection instead of ending it: still the wrong cluster id
/// (the client had no answer on that connection).
#[tokio::test]
async fn a_reset_right_after_the_prologue_is_a_wrong_cluster_too() {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let cluster_id = "another_cluster";
    let node = tokio::spawn(async move {
        let mut accepted = 0;
        while let Ok((mut socket, _)) = listener.accept().await {
            // Read the prologue only, wait until the request is there,
            // then close with it unread: the kernel answers with a reset.
            let mut prologue = vec![0u8; 12 + cluster_id.len()];
            if socket.read_exact(&mut prologue).await.is_err() {
                continue;
            }
            let mut peek = [0u8; 1];
            let _ = socket.peek(&mut peek).await;
            drop(socket);
            accepted += 1;
            if accepted == 1 {
                break;
            }
        }
    });
    let client = ClientBuilder::new(cluster_id)
        .node("n0", address.as_str())
        .retry_policy(fast_retry())
        .build()
        .expect("client");
    let error = client.get(b"k").await.expect_err("reset");
    assert!(
        matches!(&error, Error::WrongCluster { cluster_id: c, .. } if c == cluster_id),
        "{error:?}"
    );
    node.await.expect("the fake node");
}
