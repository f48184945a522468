//! How a node stops: the [`StopMode`] every task watches, the futures that
//! resolve when it changes, and the signals that ask for a graceful stop.
//!
//! Graceful (SIGTERM, SIGINT, `Node::stop`): listeners close, queued and
//! in-flight requests are answered `E_GOING_DOWN`, the tlog is synced and
//! the store checkpointed. Crash (`Node::crash`, tests): everything is
//! dropped as it is, as `kill -9` would.

use tokio::sync::watch;

/// How the node is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    Running,
    /// Fail in-flight requests with `E_GOING_DOWN`, sync, checkpoint.
    Graceful,
    /// Stop at once, syncing nothing (as `kill -9`; for tests).
    Crash,
}

/// Resolves when the node is told to stop (or its handle is gone).
pub async fn stopped(stop: &mut watch::Receiver<StopMode>) {
    stopped_as(stop, |mode| mode != StopMode::Running).await
}

/// Resolves when the node is told to stop in a way `matches` (or its
/// handle is gone).
pub async fn stopped_as(stop: &mut watch::Receiver<StopMode>, matches: impl Fn(StopMode) -> bool) {
    loop {
        if matches(*stop.borrow_and_update()) {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM ({e}); Ctrl-C only");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
