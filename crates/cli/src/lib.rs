//! `cli`: the `arakoon` binary.
//!
//! Two shapes of command line:
//! - `arakoon SUBCOMMAND [ARGS]` when the first argument names one of
//!   [`subcommands::SUBCOMMANDS`] (`demo`, `bench`, `sim`): our tools;
//! - otherwise Arakoon's own flags, parsed by [`args`]: `-config FILE` and
//!   one action (`--get KEY`, `--set KEY VALUE`, `--who-master`, …, or
//!   `--node NAME` to run a node).
//!
//! Promises: the output of a client action is what Arakoon's `arakoon`
//! prints (values escaped in double quotes, one per line); exit status 0
//! on success, 1 with one line `arakoon: <action>: <reason>` on stderr
//! when the action failed, 2 with one line for a bad command line.
//!
//! Client actions log to stderr at the level named by `ARAKOON_LOG`
//! (default `warn`); `ARAKOON_LOG=debug` shows master discovery and retries.
//!
//! `--node NAME -config FILE` runs a node ([`node::main`]) until SIGTERM or
//! SIGINT; it exits 0 after a clean stop, 1 with one line if the node could
//! not start or failed. `demo` starts a local 3-node cluster; `bench`
//! loads a cluster (the `bench` crate); `sim` runs the simulator.

// Unsafe only where a libc call has no safe form, each with its SAFETY
// argument and an `allow` on the function (demo.rs).
#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod actions;
pub mod args;
pub mod demo;
pub mod subcommands;

use std::ffi::OsString;
use std::process::ExitCode;

use args::Invocation;

/// Exit status of a failed action.
pub const EXIT_FAILED: u8 = 1;
/// Exit status of a bad command line.
pub const EXIT_USAGE: u8 = 2;

/// Runs the binary with `args` (without the program name).
pub fn main(args: &[OsString]) -> ExitCode {
    if let Some(subcommand) = args
        .first()
        .and_then(|a| a.to_str())
        .and_then(subcommands::find)
    {
        return (subcommand.run)(&args[1..]);
    }
    let invocation = match args::parse(args) {
        Ok(invocation) => invocation,
        Err(e) => {
            eprintln!("arakoon: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if matches!(
        invocation,
        Invocation::Client { .. } | Invocation::Direct { .. }
    ) {
        if let Err(e) = init_client_logging(std::env::var_os(LOG_ENV)) {
            eprintln!("arakoon: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    match invocation {
        Invocation::Help(text) => {
            print!("{text}");
            println!("\nSubcommands:");
            for subcommand in subcommands::SUBCOMMANDS {
                println!("  {:<8}{}", subcommand.name, subcommand.about);
            }
            ExitCode::SUCCESS
        }
        Invocation::LocalVersion => {
            println!("version: {}", env!("CARGO_PKG_VERSION"));
            println!("implementation: arakoon-rs (Arakoon client protocol 1)");
            ExitCode::SUCCESS
        }
        Invocation::Node { name, config } => run_node(&name, &config),
        Invocation::Client { config, action } => run_client_action(&config, &action),
        Invocation::Direct {
            cluster_id,
            address,
            action,
        } => block_on(actions::run_direct(
            &cluster_id,
            &address,
            action,
            &mut std::io::stdout().lock(),
        )),
    }
}

/// The environment variable with the log level of client actions (to
/// stderr): `error`, `warn` (default), `info`, `debug`, `trace`.
pub const LOG_ENV: &str = "ARAKOON_LOG";

/// Client actions log to stderr at the level in [`LOG_ENV`]; by default
/// only warnings and errors, so that a failure stays one line.
fn init_client_logging(level: Option<OsString>) -> Result<(), args::UsageError> {
    let level = match level {
        None => tracing::Level::WARN,
        Some(value) => value
            .to_str()
            .and_then(|v| v.parse::<tracing::Level>().ok())
            .ok_or_else(|| {
                args::UsageError(format!(
                    "{LOG_ENV}={}: not a level (error, warn, info, debug, trace)",
                    value.to_string_lossy()
                ))
            })?,
    };
    // Fails only if a subscriber is already set: then that one logs.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .try_init();
    Ok(())
}

/// `--node NAME -config FILE`: runs the node until SIGTERM/SIGINT.
fn run_node(name: &str, config: &std::path::Path) -> ExitCode {
    match node::main(config, name) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arakoon: --node {name}: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn run_client_action(config: &std::path::Path, action: &args::ClientAction) -> ExitCode {
    match actions::client_from_config(config) {
        Ok(client) => block_on(actions::run(&client, action, &mut std::io::stdout().lock())),
        Err(e) => {
            eprintln!("arakoon: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Runs an action on a one-thread runtime; its error is the one line on
/// stderr.
fn block_on(
    action: impl std::future::Future<Output = Result<(), actions::ActionError>>,
) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("arakoon: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(action) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arakoon: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
