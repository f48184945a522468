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
//! prints (values escaped in double quotes, one per line); on failure one
//! line `arakoon: <action>: <reason>` on stderr, never a backtrace, and an
//! exit status that tells the kind of failure ([`exit`], listed by
//! `--help`). Output to a closed pipe (`| head`) ends the process quietly,
//! with status 0.
//!
//! The offline tools (`--dump-tlog`, `--dump-store`, `--inspect-store`,
//! `--verify-db`, in [`offline`]) work on a stopped node's files.
//! `arakoon completions SHELL` prints a completion script.
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
mod backup;
mod collapse;
mod daemon;
pub mod demo;
mod inject;
mod inspect;
pub mod migrate;
pub mod offline;
pub mod subcommands;
mod tlog_tools;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use args::Invocation;

/// The exit statuses (`--help` lists them: [`args::EXIT_STATUS_HELP`]).
pub mod exit {
    /// Success; also when the reader of standard output went away.
    pub const OK: u8 = 0;
    /// Refused or failed: a missing key, a node's error answer, a config
    /// or a file that cannot be read.
    pub const REFUSED: u8 = 1;
    /// A bad command line.
    pub const USAGE: u8 = 2;
    /// The cluster cannot be reached: no connection, no answer in time, no
    /// master.
    pub const UNREACHABLE: u8 = 3;
    /// An update may or may not have been applied.
    pub const OUTCOME_UNKNOWN: u8 = 4;
    /// An offline tool found a damaged file.
    pub const DAMAGED: u8 = 5;
}

/// Exit status of a failed action.
pub const EXIT_FAILED: u8 = exit::REFUSED;
/// Exit status of a bad command line.
pub const EXIT_USAGE: u8 = exit::USAGE;

/// Writes `bytes` to standard output: the exit status. A reader that went
/// away (`EPIPE`) ends the process quietly with success; any other failure
/// to write is one line and status 1.
pub fn print_out(bytes: &[u8]) -> ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let error = actions::ActionError::write_failed("output", &e);
            exit_with(&error)
        }
    }
}

/// The one line of a failed action on stderr (none for a closed output),
/// and its exit status.
fn exit_with(error: &actions::ActionError) -> ExitCode {
    if !error.is_quiet() {
        eprintln!("arakoon: {error}");
    }
    ExitCode::from(error.kind.exit_code())
}

/// Runs the binary with `args` (without the program name).
pub fn main(args: &[OsString]) -> ExitCode {
    if let Some(subcommand) = args
        .first()
        .and_then(|a| a.to_str())
        .and_then(subcommands::find)
    {
        return (subcommand.run)(&args[1..]);
    }
    let (invocation, tls) = match args::parse_with_tls(args) {
        Ok(parsed) => parsed,
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
            let mut help = text;
            help.push_str("\nSubcommands:\n");
            for subcommand in subcommands::SUBCOMMANDS {
                help.push_str(&format!("  {:<13}{}\n", subcommand.name, subcommand.about));
            }
            help.push('\n');
            help.push_str(args::EXIT_STATUS_HELP);
            help.push('\n');
            print_out(help.as_bytes())
        }
        Invocation::LocalVersion => print_out(version_text().as_bytes()),
        Invocation::Offline(tool) => run_offline(&tool),
        Invocation::Node {
            name,
            config,
            daemonize,
            catchup_only,
        } => run_node(&name, &config, daemonize, catchup_only),
        Invocation::Benchmark { bench_args } => {
            ExitCode::from(u8::try_from(bench::main(&bench_args)).unwrap_or(EXIT_FAILED))
        }
        Invocation::Load { config, clients } => {
            match actions::client_from_config_with_tls(&config, &tls) {
                Ok(client) => block_on(actions::load(
                    &client,
                    clients,
                    LOAD_STEPS,
                    std::time::Duration::from_millis(100),
                    &mut std::io::stdout().lock(),
                )),
                Err(e) => exit_with(&e),
            }
        }
        Invocation::InjectAsHead {
            file,
            name,
            config,
            force,
            in_place,
            whole_cluster,
        } => {
            if let Err(e) = init_client_logging(std::env::var_os(LOG_ENV)) {
                eprintln!("arakoon: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
            let options = node::InjectOptions {
                force,
                in_place,
                whole_cluster,
            };
            match inject::run(
                &file,
                &name,
                &config,
                options,
                &mut std::io::stdout().lock(),
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => exit_with(&e),
            }
        }
        Invocation::CollapseLocal {
            name,
            tlogs_to_keep,
            config,
        } => {
            if let Err(e) = init_client_logging(std::env::var_os(LOG_ENV)) {
                eprintln!("arakoon: {e}");
                return ExitCode::from(EXIT_USAGE);
            }
            match collapse::run(&name, tlogs_to_keep, &config, &mut std::io::stdout().lock()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => exit_with(&e),
            }
        }
        Invocation::Client { config, action } => run_client_action(&config, &action, &tls),
        Invocation::Direct {
            cluster_id,
            address,
            action,
        } => block_on(actions::run_direct(
            &cluster_id,
            &address,
            action,
            &tls,
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

/// Sets per client of Arakoon's `--load`.
const LOAD_STEPS: usize = 1000;

/// `--version`: Arakoon's first line (`git_revision: "…"`, the first
/// quoted string, which Arakoon's tests read), then ours; and
/// `tlogEntriesPerFile:` (the default `tlog_max_entries`), which Arakoon's
/// tests look for.
fn version_text() -> String {
    format!(
        "git_revision: {:?}\nversion: {}\nimplementation: arakoon-rs {} (Arakoon 1.9 client protocol)\ncompiler_version: {:?}\ntlogEntriesPerFile: {}\n",
        env!("ARAKOON_GIT_REVISION"),
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION"),
        env!("ARAKOON_RUSTC_VERSION"),
        tlog::DEFAULT_MAX_ENTRIES,
    )
}

/// `--node NAME -config FILE`: runs the node until SIGTERM/SIGINT
/// (`-daemonize`: in the background; `-catchup-only`: until caught up).
fn run_node(name: &str, config: &std::path::Path, daemonize: bool, catchup_only: bool) -> ExitCode {
    let mut pid_file = None;
    if daemonize {
        // Arakoon reads the config before it daemonizes: a bad one is
        // reported on the terminal.
        let home = match config::load(config) {
            Ok(loaded) => match loaded.config.node(name) {
                Some(n) => n.home.clone(),
                None => {
                    eprintln!(
                        "arakoon: --node {name}: no such node in {}",
                        config.display()
                    );
                    return ExitCode::from(EXIT_FAILED);
                }
            },
            Err(e) => {
                eprintln!("arakoon: --node {name}: {}: {e}", config.display());
                return ExitCode::from(EXIT_FAILED);
            }
        };
        let path = daemon::pid_file(&home, name);
        if let Err(e) = daemon::daemonize(&path) {
            eprintln!("arakoon: --node {name} -daemonize: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
        pid_file = Some(path);
    }
    let mode = if catchup_only {
        node::RunMode::CatchUpOnly
    } else {
        node::RunMode::Serve
    };
    let result = node::main(config, name, mode);
    if let Some(path) = pid_file {
        daemon::remove_pid_file(&path);
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arakoon: --node {name}: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn run_client_action(
    config: &std::path::Path,
    action: &args::ClientAction,
    tls: &args::ClientTls,
) -> ExitCode {
    match actions::client_from_config_with_tls(config, tls) {
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
        Err(e) => exit_with(&e),
    }
}

/// Runs an offline tool, its output buffered. A panic of the store's
/// reader (redb's own comments allow one on a damaged file) is reported as
/// damage, in one line, without a backtrace.
fn run_offline(tool: &args::OfflineTool) -> ExitCode {
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        offline::run(tool, &mut out)
    }));
    std::panic::set_hook(default_hook);
    let result = result.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        Err(actions::ActionError::of_kind(
            actions::FailureKind::Damaged,
            &offline::describe(tool),
            format!("reading the file failed, it looks damaged ({message})"),
        ))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // What was written before the failure still goes out.
            let _ = out.flush();
            exit_with(&e)
        }
    }
}
