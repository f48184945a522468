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

/// SIGUSR2, for as long as it runs: Arakoon's management sends it to a node
/// that did not stop within 10 s of SIGTERM, asking for a crash-log dump.
/// This node keeps no separate crash log (its log is in its `log_sinks`):
/// the signal is logged, with what the node is doing, and never stops it
/// (the signal's default action would).
pub async fn log_sigusr2() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut usr2 = match signal(SignalKind::user_defined2()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("cannot handle SIGUSR2: {e}");
                return;
            }
        };
        while usr2.recv().await.is_some() {
            tracing::warn!(
                "SIGUSR2 (Arakoon's crash-log request): no separate crash log here; the log is in the node's log_sinks"
            );
        }
    }
    #[cfg(not(unix))]
    std::future::pending::<()>().await;
}
