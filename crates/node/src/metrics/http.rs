//! `GET /metrics` on the node's `metrics_port` (our config key; none by
//! default): hyper's HTTP/1 server on the client runtime, one request per
//! connection (no keep-alive; Prometheus opens one per scrape).
//!
//! Limits: at most [`CONNECTIONS_MAX`] connections at once (more are
//! closed at once); a request head larger than [`REQUEST_HEAD_MAX_BYTES`]
//! is refused by hyper (431); a head not read within [`REQUEST_TIMEOUT`] or
//! a connection not done within it (a client that does not take the
//! answer) is dropped. The body of a request is never read. Other paths
//! are answered 404, other methods on `/metrics` 405. The accept loop and
//! every connection end when the node stops.

use super::{disk_usage, NodeMetrics};
use crate::clock::Clock;
use crate::settings::Settings;
use crate::stop::{stopped, StopMode};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use replica::Published;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// Largest request head read (hyper's smallest allowed read buffer).
pub const REQUEST_HEAD_MAX_BYTES: usize = 8 << 10;
/// Longest wait for a request head, and longest life of a connection.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections served at once.
pub const CONNECTIONS_MAX: usize = 8;

/// OpenMetrics text, what `prometheus_client::encoding::text` writes.
const CONTENT_TYPE_OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// What the page is made of.
#[derive(Clone)]
pub struct Page {
    pub metrics: Arc<NodeMetrics>,
    pub settings: Arc<Settings>,
    pub published: watch::Receiver<Published>,
    pub clock: Clock,
}

/// Starts the endpoint; its task (holding the listener) ends when the node
/// stops.
pub fn start(
    page: Page,
    listener: TcpListener,
    mut stop: watch::Receiver<StopMode>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let connections_stop = stop.clone();
        tokio::select! {
            _ = accept_loop(Arc::new(page), listener, connections_stop) => {}
            _ = stopped(&mut stop) => {}
        }
    })
}

async fn accept_loop(page: Arc<Page>, listener: TcpListener, stop: watch::Receiver<StopMode>) {
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!("metrics accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
            tracing::debug!(
                limit = CONNECTIONS_MAX,
                "metrics connection closed: too many at once"
            );
            continue;
        };
        let page = Arc::clone(&page);
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let page = Arc::clone(&page);
                async move { Ok::<_, Infallible>(page.answer(&request).await) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(REQUEST_TIMEOUT)
                .max_buf_size(REQUEST_HEAD_MAX_BYTES)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                r = tokio::time::timeout(REQUEST_TIMEOUT, connection) => {
                    if let Ok(Err(e)) = r {
                        tracing::debug!("metrics connection: {e}");
                    }
                }
                _ = stopped(&mut stop) => {}
            }
            drop(permit);
        });
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

impl Page {
    async fn answer(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if request.uri().path() != "/metrics" {
            return plain(StatusCode::NOT_FOUND, "only GET /metrics is served here\n");
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            let mut response = plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "only GET /metrics is served here\n",
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        // A `stat` per file: off the runtime's workers.
        let settings = Arc::clone(&self.settings);
        let disk = tokio::task::spawn_blocking(move || disk_usage(&settings))
            .await
            .unwrap_or_default();
        let published = self.published.borrow().clone();
        match self.metrics.render(&published, self.clock.now(), disk) {
            Ok(text) => {
                let mut response = Response::new(Full::new(Bytes::from(text)));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(CONTENT_TYPE_OPENMETRICS),
                );
                response
            }
            Err(e) => {
                tracing::error!("metrics page: encoding failed: {e}");
                plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the metrics could not be encoded (see the node's log)\n",
                )
            }
        }
    }
}
