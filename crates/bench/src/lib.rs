//! `bench`: `arakoon bench`, load against a cluster over real client
//! connections, with ops/s and latency percentiles per scenario.
//!
//! ```text
//! arakoon bench -config FILE --scenario set,get,range,sequence,mixed \
//!     --clients C --ops N --value-size V --key-size K --keys KEYSPACE \
//!     [--consistency consistent|at-least|no-guarantee] [--json]
//! ```
//!
//! What it does: opens C clients (each its own connections, so C requests
//! are in flight), fills the key space before the first reading scenario
//! (sequences of `FILL_BATCH_KEYS` sets, not measured as a scenario), then
//! runs each scenario for N operations and prints one line (or, with
//! `--json`, one JSON object: [`ScenarioReport`]) per scenario. A progress
//! bar is drawn on stderr when it is a terminal.
//!
//! What it promises: every operation is counted, as a success or as an
//! error by kind with a few sample messages, never dropped; latency is
//! measured per operation (send to answer, monotonic clock) into an HDR
//! histogram of 3 significant digits; ops/s counts successful operations
//! over the scenario's wall time. Exit status: 0; 1 when a scenario had
//! every operation fail or the cluster could not be reached; 2 for a bad
//! command line.
//!
//! `--target etcd://…` runs the same load against etcd. That load
//! generator needs the `etcd-client` crate, whose build needs `protoc`, so
//! it is a separate program (`bench/etcd-load`, built by
//! `bench/compare-etcd.sh`) that reuses this crate through [`run_with`];
//! `arakoon bench --target etcd://…` hands over to it when it is found
//! (`$ARAKOON_BENCH_ETCD`, or `arakoon-bench-etcd` beside the binary).
//!
//! What it never does: write outside its key prefix (`k…`), or retry an
//! update (the client never resends one whose outcome is unknown).

#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod arakoon;
pub mod args;
pub mod report;
pub mod runner;
pub mod workload;

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

pub use args::{Options, Parsed, ReadConsistency, Scenario, Target, UsageError};
pub use report::{Latency, OpError, ScenarioReport};
pub use runner::{Backend, Outcome, Session};
pub use workload::{Op, Workload};

/// Exit status of a run in which something failed whole.
pub const EXIT_FAILED: i32 = 1;
/// Exit status of a bad command line.
pub const EXIT_USAGE: i32 = 2;
/// Environment variable naming the etcd load generator's executable.
pub const ETCD_RUNNER_ENV: &str = "ARAKOON_BENCH_ETCD";
/// The etcd load generator's file name, looked for beside this binary.
pub const ETCD_RUNNER_NAME: &str = "arakoon-bench-etcd";

/// `arakoon bench ARGS`, printing to stdout and stderr; the exit status.
pub fn main(args: &[String]) -> i32 {
    // Unlocked handles (each write locks): the progress bar draws on
    // stderr from other threads, which would wait forever on a lock held
    // here for the whole run.
    run(args, &mut std::io::stdout(), &mut std::io::stderr())
}

/// `arakoon bench ARGS` with the report to `out` and messages to `err`.
pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let options = match args::parse(args) {
        Ok(Parsed::Help) => {
            let _ = out.write_all(args::USAGE.as_bytes());
            return 0;
        }
        Ok(Parsed::Run(options)) => options,
        Err(e) => {
            let _ = writeln!(err, "arakoon bench: {e}");
            return EXIT_USAGE;
        }
    };
    match &options.target {
        Target::Etcd { .. } => hand_over_to_etcd_runner(args, err),
        Target::Arakoon { config } => {
            let loaded = match config::load(config) {
                Ok(loaded) => loaded,
                Err(e) => {
                    let _ = writeln!(err, "arakoon bench: config {}: {e}", config.display());
                    return EXIT_FAILED;
                }
            };
            let backend = arakoon::ArakoonBackend::new(loaded.config, options.consistency);
            run_with(backend, &options, out, err)
        }
    }
}

/// Where the etcd load generator is, if anywhere.
fn etcd_runner() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(ETCD_RUNNER_ENV) {
        return Some(PathBuf::from(path));
    }
    let beside = std::env::current_exe()
        .ok()?
        .parent()?
        .join(ETCD_RUNNER_NAME);
    beside.is_file().then_some(beside)
}

fn hand_over_to_etcd_runner(args: &[String], err: &mut dyn Write) -> i32 {
    let Some(runner) = etcd_runner() else {
        let _ = writeln!(
            err,
            "arakoon bench: --target etcd://: the etcd load generator is a separate build (it needs protoc): \
             cargo build --release --manifest-path bench/etcd-load/Cargo.toml, then set {ETCD_RUNNER_ENV} \
             to its binary (bench/compare-etcd.sh does all of this)"
        );
        return EXIT_USAGE;
    };
    match std::process::Command::new(&runner).args(args).status() {
        Ok(status) => status.code().unwrap_or(EXIT_FAILED),
        Err(e) => {
            let _ = writeln!(err, "arakoon bench: cannot run {}: {e}", runner.display());
            EXIT_FAILED
        }
    }
}

/// Runs `options`' scenarios against `backend`: opens the clients, fills
/// the key space if a scenario reads, prints a report per scenario.
pub fn run_with<B: Backend>(
    backend: B,
    options: &Options,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = writeln!(err, "arakoon bench: cannot start the async runtime: {e}");
            return EXIT_FAILED;
        }
    };
    let target = backend.name();
    let backend = Arc::new(backend);
    let workload = Arc::new(Workload::new(options));
    let show_progress = std::io::stderr().is_terminal();

    let mut sessions = match runtime.block_on(runner::open_sessions(&backend, options.clients)) {
        Ok(sessions) => sessions,
        Err(e) => {
            let _ = writeln!(
                err,
                "arakoon bench: cannot open {} clients of {target}: {e}",
                options.clients
            );
            return EXIT_FAILED;
        }
    };

    let mut status = 0;
    if options.fill && options.scenarios.iter().any(|s| s.reads()) {
        let plan = Arc::new(runner::Plan::fill(Arc::clone(&workload)));
        let (back, measured) = runtime.block_on(runner::run_plan(
            sessions,
            plan,
            options.seed,
            options.max_duration,
            show_progress,
        ));
        sessions = back;
        let _ = writeln!(
            err,
            "filled {} keys in {:.1} s ({} requests, {} failed)",
            workload.keys(),
            measured.elapsed.as_secs_f64(),
            measured.ops,
            measured.tally.errors
        );
        if measured.tally.ok == 0 {
            let _ = writeln!(err, "arakoon bench: every fill request failed");
            for sample in &measured.tally.error_samples {
                let _ = writeln!(err, "    e.g. {sample}");
            }
            return EXIT_FAILED;
        }
    }

    for &scenario in &options.scenarios {
        let prepared = runtime.block_on(async {
            for session in sessions.iter_mut() {
                session.prepare().await?;
            }
            Ok::<(), OpError>(())
        });
        if let Err(e) = prepared {
            let _ = writeln!(
                err,
                "arakoon bench: {}: cannot prepare the clients: {e}",
                scenario.name()
            );
            return EXIT_FAILED;
        }
        let plan = Arc::new(runner::Plan::scenario(
            scenario,
            options.ops,
            Arc::clone(&workload),
        ));
        let (back, measured) = runtime.block_on(runner::run_plan(
            sessions,
            plan,
            options.seed,
            options.max_duration,
            show_progress,
        ));
        sessions = back;
        let report = runner::report(target, scenario.name(), options, &measured);
        let printed = if options.json {
            report::print_json(&report, out)
        } else {
            report::print_human(&report, out)
        };
        let _ = out.flush();
        if let Err(e) = printed {
            let _ = writeln!(err, "arakoon bench: cannot write the report: {e}");
            return EXIT_FAILED;
        }
        if report.ok == 0 {
            let _ = writeln!(
                err,
                "arakoon bench: {}: every operation failed",
                scenario.name()
            );
            status = EXIT_FAILED;
        }
    }
    status
}
