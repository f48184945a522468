//! The load loop, the same for every target: C sessions (one per client,
//! each with its own connections and one request in flight) take operation
//! numbers from a shared counter until N are taken or the time is up, and
//! record each operation's latency, from just before it is sent to just
//! after its answer, on a monotonic clock.
//!
//! A target plugs in through [`Backend`] (how to open a client session) and
//! [`Session`] (how to send one [`Op`]). The Arakoon backend is in
//! `arakoon.rs`; the etcd one lives in `bench/etcd-load` (it needs protoc
//! to build, so it is outside the workspace).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::args::{Options, Scenario};
use crate::report::{OpError, ScenarioReport, Tally};
use crate::workload::{Op, Rng, Workload};

/// How a successful operation went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// A read of a key with no value (served, but counted apart).
    Missing,
}

/// One client of the target: its own connections, one request at a time.
pub trait Session: Send + 'static {
    /// Sends `op` and waits for its answer.
    fn execute(&mut self, op: &Op) -> impl Future<Output = Result<Outcome, OpError>> + Send;

    /// Called before each scenario (e.g. to take the `AtLeast` index).
    fn prepare(&mut self) -> impl Future<Output = Result<(), OpError>> + Send {
        async { Ok(()) }
    }
}

/// A target: opens client sessions.
pub trait Backend: Send + Sync + 'static {
    type Session: Session;

    /// The target's name in reports ("arakoon", "etcd").
    fn name(&self) -> &'static str;

    /// Opens client number `client` (connected and ready: connection and
    /// discovery time stay out of the measurement).
    fn open(&self, client: usize) -> impl Future<Output = Result<Self::Session, OpError>> + Send;
}

/// Opens `count` sessions concurrently; the first failure, if any.
pub async fn open_sessions<B: Backend>(
    backend: &Arc<B>,
    count: usize,
) -> Result<Vec<B::Session>, OpError> {
    let mut tasks = Vec::with_capacity(count);
    for client in 0..count {
        let backend = Arc::clone(backend);
        tasks.push(tokio::spawn(async move { backend.open(client).await }));
    }
    let mut sessions = Vec::with_capacity(count);
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(Ok(session)) => sessions.push(session),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(OpError::new("panic", e.to_string()));
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(sessions),
    }
}

/// Makes operation `i` of a plan, given the client's generator.
pub type NextOp = Box<dyn Fn(u64, &mut Rng) -> Op + Send + Sync>;

/// What one scenario (or the fill) does: a name, how many operations, and
/// operation `i` given the client's generator.
pub struct Plan {
    pub name: String,
    pub ops: u64,
    pub next: NextOp,
}

impl Plan {
    pub fn scenario(scenario: Scenario, ops: u64, workload: Arc<Workload>) -> Plan {
        Plan {
            name: scenario.name().to_string(),
            ops,
            next: Box::new(move |_, rng| workload.op(scenario, rng)),
        }
    }

    pub fn fill(workload: Arc<Workload>) -> Plan {
        Plan {
            name: "fill".to_string(),
            ops: workload.fill_batches(),
            next: Box::new(move |i, _| workload.fill_op(i)),
        }
    }
}

/// What a plan's run measured, before it becomes a report.
#[derive(Debug)]
pub struct Measured {
    pub tally: Tally,
    /// Operations sent.
    pub ops: u64,
    pub elapsed: Duration,
}

fn progress_bar(plan: &Plan, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(plan.ops);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>9} [{wide_bar}] {pos}/{len} ops  {per_sec}  eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(plan.name.clone());
    bar
}

/// Runs `plan` on every session at once; gives the sessions back.
pub async fn run_plan<S: Session>(
    sessions: Vec<S>,
    plan: Arc<Plan>,
    seed: u64,
    max_duration: Option<Duration>,
    show_progress: bool,
) -> (Vec<S>, Measured) {
    let next_op = Arc::new(AtomicU64::new(0));
    let bar = progress_bar(&plan, show_progress);
    let start = Instant::now();
    let deadline = max_duration.map(|d| start + d);
    let mut tasks = Vec::with_capacity(sessions.len());
    for (client, mut session) in sessions.into_iter().enumerate() {
        let next_op = Arc::clone(&next_op);
        let plan = Arc::clone(&plan);
        let bar = bar.clone();
        // Each client its own stream of draws, reproducible from the seed.
        let mut rng = Rng::new(seed ^ (client as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::new();
            loop {
                let i = next_op.fetch_add(1, Ordering::Relaxed);
                if i >= plan.ops || deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                let op = (plan.next)(i, &mut rng);
                let sent = Instant::now();
                let result = session.execute(&op).await;
                let latency = sent.elapsed();
                match result {
                    Ok(outcome) => tally.record_ok(latency, outcome == Outcome::Missing),
                    Err(e) => tally.record_error(e),
                }
                bar.inc(1);
            }
            (session, tally)
        }));
    }
    let mut sessions = Vec::with_capacity(tasks.len());
    let mut tally = Tally::new();
    for task in tasks {
        match task.await {
            Ok((session, client_tally)) => {
                sessions.push(session);
                tally.merge(&client_tally);
            }
            // A session that panicked is gone: its operations count as
            // failed ones so that nothing disappears from the report.
            Err(e) => tally.record_error(OpError::new("panic", e.to_string())),
        }
    }
    let elapsed = start.elapsed();
    bar.finish_and_clear();
    let ops = tally.ok + tally.errors;
    (
        sessions,
        Measured {
            tally,
            ops,
            elapsed,
        },
    )
}

/// The report of a measured scenario.
pub fn report(
    target: &str,
    scenario: &str,
    options: &Options,
    measured: &Measured,
) -> ScenarioReport {
    let seconds = measured.elapsed.as_secs_f64();
    let tally = &measured.tally;
    ScenarioReport {
        target: target.to_string(),
        scenario: scenario.to_string(),
        consistency: options.consistency.name().to_string(),
        clients: options.clients,
        ops: measured.ops,
        ok: tally.ok,
        errors: tally.errors,
        missing: tally.missing,
        seconds,
        ops_per_sec: if seconds > 0.0 {
            tally.ok as f64 / seconds
        } else {
            0.0
        },
        latency_us: tally.latency(),
        value_size: options.value_size,
        key_size: options.key_size,
        keys: options.keys,
        error_kinds: tally.error_kinds.clone(),
        error_samples: tally.error_samples.clone(),
    }
}
