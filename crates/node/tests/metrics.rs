//! The `/metrics` endpoint of live in-process nodes (docs/metrics.md):
//! every metric the doc lists is on a master's page with its `# HELP`, and
//! the counters and histograms move under writes and reads. Every wait is
//! for a condition, with a deadline; a failing test prints the data
//! directory, the ports and the page.

mod common;

use client::Error;
use common::Cluster;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One HTTP exchange: the status code, the headers (lower-case names) and
/// the body. The server closes the connection after one answer.
async fn http(port: u16, request_line: &str) -> (u16, Vec<(String, String)>, String) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("connect to metrics port {port}: {e}"));
    s.write_all(format!("{request_line}\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .expect("write the request");
    let mut raw = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut raw))
        .await
        .unwrap_or_else(|_| panic!("port {port}: no whole answer (closed) within 5 s: {raw}"))
        .expect("read the answer");
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {raw:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line in {raw:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

async fn scrape(port: u16) -> String {
    let (status, headers, body) = http(port, "GET /metrics HTTP/1.1").await;
    assert_eq!(status, 200, "{body}");
    let content_type = headers
        .iter()
        .find(|(k, _)| k == "content-type")
        .map(|(_, v)| v.as_str());
    assert_eq!(
        content_type,
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(
        body.ends_with("# EOF\n"),
        "not a whole OpenMetrics page:\n{body}"
    );
    body
}

/// The value of the sample `series` (name and labels exactly as written),
/// if the page has it.
fn value(page: &str, series: &str) -> Option<f64> {
    page.lines().find_map(|l| {
        let v = l.strip_prefix(series)?.strip_prefix(' ')?;
        v.split(' ').next()?.parse().ok()
    })
}

/// The metric names docs/metrics.md documents: first cells of its tables.
fn documented_metrics() -> Vec<String> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/metrics.md"
    ))
    .expect("read docs/metrics.md");
    let names: Vec<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `arakoon_"))
        .filter_map(|rest| rest.split('`').next())
        .map(|rest| format!("arakoon_{rest}"))
        .collect();
    assert!(names.len() >= 20, "docs/metrics.md lists only {names:?}");
    names
}

/// The family name of a documented metric as `# HELP` and `# TYPE` name it
/// (OpenMetrics: without a counter's `_total`, an info's `_info`).
fn family_of<'a>(page: &str, name: &'a str) -> Option<(&'a str, String)> {
    [
        name,
        name.trim_end_matches("_total"),
        name.trim_end_matches("_info"),
    ]
    .into_iter()
    .find_map(|family| {
        let type_line = format!("# TYPE {family} ");
        let kind = page
            .lines()
            .find_map(|l| l.strip_prefix(type_line.as_str()))?;
        Some((family, kind.to_string()))
    })
}

/// docs/metrics.md's metrics are all served, with `# HELP` and samples;
/// writes and reads move the request, tlog and fsync metrics; other paths
/// are 404; the endpoint stops with the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_metric_is_served_and_moves() {
    let test_started = Instant::now();
    let cluster = Cluster::start_with_metrics(3).await;
    let m = cluster.wait_master(&[0, 1, 2]).await;
    let master = format!("node_{m}");
    let port = cluster.metrics_ports[m];
    let client = cluster.client();
    // One request first: a command's request series appear with its first.
    let _ = client.who_master().await.expect("who_master");
    let node = format!("node=\"{master}\"");

    // The peers' match indices come with the master's first appends to
    // them: wait until both peers are on the page.
    let page = cluster
        .wait_for(
            "both peers' match indices on the master's page",
            async || {
                let page = scrape(port).await;
                (0..3)
                    .filter(|&i| i != m)
                    .all(|i| {
                        value(
                            &page,
                            &format!("arakoon_peer_match_index{{{node},peer=\"node_{i}\"}}"),
                        )
                        .is_some()
                    })
                    .then_some(page)
            },
        )
        .await;

    for name in documented_metrics() {
        let (family, kind) = family_of(&page, &name)
            .unwrap_or_else(|| panic!("{name}: no `# TYPE` line on the master's page:\n{page}"));
        assert!(
            page.lines()
                .any(|l| l.starts_with(&format!("# HELP {family} ")) && l.len() > family.len() + 10),
            "{name}: no help text:\n{page}"
        );
        let sample = match kind.as_str() {
            "histogram" => format!("{name}_count{{{node}"),
            _ => format!("{name}{{{node}"),
        };
        assert!(
            page.lines().any(|l| l.starts_with(&sample)),
            "{name} ({kind}): no sample `{sample}…` on the master's page:\n{page}"
        );
    }
    assert_eq!(
        value(&page, &format!("arakoon_is_master{{{node}}}")),
        Some(1.0)
    );
    assert_eq!(
        value(&page, &format!("arakoon_role{{{node},role=\"master\"}}")),
        Some(1.0)
    );
    assert_eq!(
        value(&page, &format!("arakoon_lease_held{{{node}}}")),
        Some(1.0)
    );
    assert!(value(&page, &format!("arakoon_master_changes_total{{{node}}}")) >= Some(1.0));
    assert!(value(&page, &format!("arakoon_elections_total{{{node}}}")) >= Some(1.0));
    assert!(value(&page, &format!("arakoon_client_connections{{{node}}}")) >= Some(1.0));
    assert!(value(&page, &format!("arakoon_store_size_bytes{{{node}}}")) > Some(0.0));
    assert!(value(&page, &format!("arakoon_tlog_size_bytes{{{node}}}")) > Some(0.0));

    // Writes and reads; one read of a missing key fails.
    let before = page;
    const WRITES: usize = 40;
    const READS: usize = 30;
    for k in 0..WRITES {
        client
            .set(format!("k{k}").as_bytes(), b"value")
            .await
            .expect("set");
    }
    for k in 0..READS {
        assert_eq!(
            client.get(format!("k{k}").as_bytes()).await.expect("get"),
            b"value"
        );
    }
    assert!(matches!(
        client.get(b"missing").await,
        Err(Error::NotFound { .. })
    ));

    let set_count =
        format!("arakoon_request_duration_seconds_count{{{node},command=\"set\",kind=\"write\"}}");
    let get_count =
        format!("arakoon_request_duration_seconds_count{{{node},command=\"get\",kind=\"read\"}}");
    let get_failed =
        format!("arakoon_request_failures_total{{{node},command=\"get\",kind=\"read\"}}");
    let sets_counted = format!("arakoon_requests_total{{{node},family=\"set\"}}");
    // A request is counted when its connection hands the answer over: a
    // moment after the client has it. Wait for the counts, with a deadline.
    let page = cluster
        .wait_for("every request counted on the master's page", async || {
            let page = scrape(port).await;
            (value(&page, &set_count) >= Some(WRITES as f64)
                && value(&page, &get_count) >= Some(READS as f64)
                && value(&page, &get_failed) >= Some(1.0))
            .then_some(page)
        })
        .await;
    let moved = |series: String, by: f64| {
        let (b, a) = (
            value(&before, &series).unwrap_or(0.0),
            value(&page, &series),
        );
        assert!(
            a >= Some(b + by),
            "{series}: {b} before, {a:?} after {WRITES} writes and {READS} reads:\n{page}"
        );
    };
    moved(sets_counted, WRITES as f64);
    moved(
        format!("arakoon_tlog_appended_entries_total{{{node}}}"),
        1.0,
    );
    moved(
        format!("arakoon_tlog_appended_bytes_total{{{node}}}"),
        WRITES as f64 * 5.0,
    );
    moved(
        format!("arakoon_tlog_append_duration_seconds_count{{{node}}}"),
        1.0,
    );
    moved(
        format!("arakoon_tlog_fsync_duration_seconds_count{{{node}}}"),
        1.0,
    );
    moved(format!("arakoon_tlog_entries_per_fsync_sum{{{node}}}"), 1.0);
    // Every write is an update in an entry this node fsynced.
    moved(
        format!("arakoon_tlog_updates_per_fsync_sum{{{node}}}"),
        WRITES as f64,
    );
    moved(format!("arakoon_applied_index{{{node}}}"), WRITES as f64);
    moved(format!("arakoon_commit_index{{{node}}}"), WRITES as f64);
    for i in (0..3).filter(|&i| i != m) {
        moved(
            format!("arakoon_peer_match_index{{{node},peer=\"node_{i}\"}}"),
            1.0,
        );
    }
    // Sums of latencies: positive, and less than the test's own duration.
    let took = test_started.elapsed().as_secs_f64();
    let sum = value(
        &page,
        &format!("arakoon_request_duration_seconds_sum{{{node},command=\"set\",kind=\"write\"}}"),
    );
    assert!(sum > Some(0.0) && sum < Some(took), "{sum:?} of {took} s");

    // A slave's page: its role, no per-peer series.
    let s = (m + 1) % 3;
    let slave_page = scrape(cluster.metrics_ports[s]).await;
    let slave = format!("node=\"node_{s}\"");
    assert_eq!(
        value(&slave_page, &format!("arakoon_is_master{{{slave}}}")),
        Some(0.0)
    );
    assert_eq!(
        value(
            &slave_page,
            &format!("arakoon_role{{{slave},role=\"slave\"}}")
        ),
        Some(1.0)
    );
    assert!(
        !slave_page.contains("arakoon_peer_match_index{"),
        "{slave_page}"
    );

    // Other paths and methods.
    let (status, _, _) = http(port, "GET /other HTTP/1.1").await;
    assert_eq!(status, 404);
    let (status, headers, _) = http(port, "POST /metrics HTTP/1.1").await;
    assert_eq!(status, 405);
    assert!(headers
        .iter()
        .any(|(k, v)| k == "allow" && v == "GET, HEAD"));

    drop(client);
    let ports = cluster.metrics_ports.clone();
    cluster.stop_all().await;
    for port in ports {
        assert!(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err(),
            "metrics port {port} still accepts after the node stopped"
        );
    }
}

/// A request head that never ends is dropped after the header read
/// timeout; one larger than the limit is refused; the page serves on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_oversized_requests_are_bounded() {
    let cluster = Cluster::start_with_metrics(1).await;
    cluster.wait_master(&[0]).await;
    let port = cluster.metrics_ports[0];

    // Oversized head: answered 431 (or closed), never buffered whole.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let big = format!(
        "GET /metrics HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 << 10)
    );
    let _ = s.write_all(big.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer))
        .await
        .expect("the oversized request's connection is closed within 5 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );

    // A head that stops half way: the connection is closed by the server
    // (hyper's header read timeout, 5 s), not held open.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write half a head");
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
        .await
        .expect("a half head is dropped within 10 s");
    assert!(
        started.elapsed() >= Duration::from_secs(4),
        "closed after {:?}, before the timeout",
        started.elapsed()
    );

    // Still serving.
    let page = scrape(port).await;
    assert!(
        page.contains("arakoon_is_master{node=\"node_0\"} 1"),
        "{page}"
    );
    cluster.stop_all().await;
}

/// A collapse run shows on the page: segments removed and the run's
/// duration by origin, and the time the last run ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collapse_run_moves_the_collapse_metrics() {
    let cluster =
        Cluster::start_full_with_metrics("tlog_max_entries = 5", &vec![String::new(); 3]).await;
    let m = cluster.wait_master(&[0, 1, 2]).await;
    let master = format!("node_{m}");
    let node = format!("node=\"{master}\"");
    let port = cluster.metrics_ports[m];
    let runs = format!("arakoon_collapse_duration_seconds_count{{{node},origin=\"request\"}}");
    let removed = format!("arakoon_collapsed_segments_total{{{node},origin=\"request\"}}");
    let last = format!("arakoon_last_collapse_timestamp_seconds{{{node}}}");
    let page = scrape(port).await;
    assert_eq!(value(&page, &runs), Some(0.0), "{page}");
    assert_eq!(value(&page, &removed), Some(0.0), "{page}");
    assert_eq!(value(&page, &last), Some(0.0), "{page}");

    let client = cluster.client();
    for k in 0..40 {
        client
            .set(format!("k{k}").as_bytes(), b"v")
            .await
            .expect("set");
    }
    let count = client
        .node(&master)
        .expect("the master")
        .collapse_tlogs(1, |_, _, _| {})
        .await
        .expect("collapse_tlogs");
    assert!(
        count >= 1,
        "40 entries in segments of 5: something to remove"
    );
    let page = cluster
        .wait_for("the run on the page", async || {
            let page = scrape(port).await;
            (value(&page, &runs) == Some(1.0)).then_some(page)
        })
        .await;
    assert_eq!(value(&page, &removed), Some(f64::from(count)), "{page}");
    assert!(value(&page, &last) > Some(1.0e9), "a Unix time: {page}");
    assert!(
        value(
            &page,
            &format!("arakoon_collapse_duration_seconds_sum{{{node},origin=\"request\"}}")
        ) > Some(0.0),
        "{page}"
    );
}
