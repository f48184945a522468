//! A Prometheus `/metrics` endpoint on the node's `metrics_port` (our config
//! key; none by default): plain HTTP/1.0-style `GET /metrics`, answered in
//! the text exposition format and closed. Anything else is a 404; a request
//! head larger than [`REQUEST_HEAD_MAX_BYTES`] or slower than
//! [`REQUEST_TIMEOUT`] is dropped.

use crate::settings::Settings;
use crate::stats::Stats;
use crate::stop::stopped;
use crate::stop::StopMode;
use consensus::Role;
use replica::Published;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Largest request head read.
pub const REQUEST_HEAD_MAX_BYTES: usize = 8 << 10;
/// Longest wait for a request head and for the answer to be written.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Metrics {
    pub settings: Arc<Settings>,
    pub published: watch::Receiver<Published>,
    pub stats: Arc<Stats>,
}

/// Starts the endpoint; its task (holding the listener) ends when the node
/// stops.
pub fn start(
    metrics: Metrics,
    listener: TcpListener,
    mut stop: watch::Receiver<StopMode>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        tokio::select! {
            _ = accept_loop(metrics, listener) => {}
            _ = stopped(&mut stop) => {}
        }
    })
}

async fn accept_loop(metrics: Metrics, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(REQUEST_TIMEOUT, metrics.serve(stream)).await;
        });
    }
}

impl Metrics {
    async fn serve(&self, mut stream: TcpStream) -> std::io::Result<()> {
        let mut head = Vec::new();
        let mut chunk = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&chunk[..n]);
            if head.len() > REQUEST_HEAD_MAX_BYTES {
                return Ok(());
            }
        }
        let wanted = head.starts_with(b"GET /metrics ") || head.starts_with(b"GET /metrics\r");
        let (status, body) = if wanted {
            ("200 OK", self.render())
        } else {
            (
                "404 Not Found",
                "only GET /metrics is served here\n".to_string(),
            )
        };
        let answer = format!(
            "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).await?;
        stream.shutdown().await
    }

    /// The metrics, in Prometheus' text format.
    pub fn render(&self) -> String {
        let p = self.published.borrow().clone();
        let node = &self.settings.node().name;
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            let _ = writeln!(out, "{name}{{node=\"{node}\"}} {value}");
        };
        gauge("arakoon_term", "current term n", p.term);
        gauge(
            "arakoon_is_master",
            "1 if this node is master",
            u64::from(p.role == Role::Master),
        );
        gauge(
            "arakoon_lease_held",
            "1 if this node holds the master lease",
            u64::from(p.lease.is_some()),
        );
        gauge(
            "arakoon_tlog_last_index",
            "last tlog index i",
            p.tlog_last_index,
        );
        gauge(
            "arakoon_commit_index",
            "highest index known committed",
            p.commit_index,
        );
        gauge(
            "arakoon_applied_index",
            "highest index applied to the store",
            p.applied_index,
        );
        let _ = writeln!(
            out,
            "# HELP arakoon_requests_total successful client requests by command family\n# TYPE arakoon_requests_total counter"
        );
        for (family, n) in self.stats.counts() {
            let _ = writeln!(
                out,
                "arakoon_requests_total{{node=\"{node}\",family=\"{family}\"}} {n}"
            );
        }
        out
    }
}
