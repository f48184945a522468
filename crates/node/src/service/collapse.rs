//! `collapse_tlogs` (0x14), the one command whose answer is a stream of
//! frames, as Arakoon's: first `rc 0, int32 count` (the tlog segments the
//! node will remove), then per removed segment `rc 0, int64` (here: the
//! microseconds since the collapse started; Arakoon's value is opaque to
//! its clients, which only log it). `n < 1` or a requested collapse
//! already running: `E_UNKNOWN_FAILURE` with Arakoon's message, before
//! any frame. The node stopping half-way: `E_GOING_DOWN` in place of the
//! next frame. The collapse itself is the replica's (`replica::collapse`),
//! run by the driver between its other work.

use super::{write_response, Service};
use crate::state::DriverRequest;
use protocol::{Command, ErrorResponse, Reply, Response, ResultCode};
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

impl Service {
    /// Serves one `collapse_tlogs`; returns whether the connection is to be
    /// closed (after an error Arakoon closes on).
    pub(super) async fn serve_collapse(
        &self,
        stream: &mut tls::Stream,
        tlogs_to_keep: i32,
    ) -> Result<bool, String> {
        let began = Instant::now();
        tracing::info!(tlogs_to_keep, "collapse_tlogs requested");
        let (started_tx, started_rx) = oneshot::channel();
        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
        let count = match self
            .requests
            .send(DriverRequest::Collapse {
                tlogs_to_keep,
                started: started_tx,
                progress: progress_tx,
            })
            .await
        {
            Err(_) => Err(Self::going_down()),
            Ok(()) => match started_rx.await {
                Ok(Ok(count)) => Ok(count),
                Ok(Err(refused)) => Err(ErrorResponse::new(
                    ResultCode::UnknownFailure,
                    refused.to_string(),
                )),
                Err(_) => Err(Self::going_down()),
            },
        };
        let count = match count {
            Ok(count) => count,
            Err(e) => return self.collapse_failed(stream, e).await,
        };
        let first = Reply::CollapseTlogs {
            tlogs_to_collapse: i32::try_from(count).unwrap_or(i32::MAX),
        };
        write_response(stream, &Response::Ok(first)).await?;
        for _ in 0..count {
            let Some(elapsed) = progress_rx.recv().await else {
                return self.collapse_failed(stream, Self::going_down()).await;
            };
            let elapsed = i64::try_from(elapsed.as_micros()).unwrap_or(i64::MAX);
            write_response(
                stream,
                &Response::Ok(Reply::CollapseTlogsProgress { elapsed }),
            )
            .await?;
        }
        self.metrics
            .request_done(Command::CollapseTlogs, began.elapsed());
        Ok(false)
    }

    async fn collapse_failed(
        &self,
        stream: &mut tls::Stream,
        e: ErrorResponse,
    ) -> Result<bool, String> {
        self.metrics.request_failed(Command::CollapseTlogs);
        let closes = e.result_code().closes_connection();
        write_response(stream, &Response::Error(e)).await?;
        Ok(closes)
    }
}
