//! Subcommands: `arakoon NAME [ARGS]` for the tools that are ours, not
//! Arakoon's. The first argument selects one when it is a name in
//! [`SUBCOMMANDS`]; anything else is parsed as Arakoon's flags.
//!
//! To add one: write `fn run(args: &[OsString]) -> ExitCode` (its own
//! parsing, e.g. a clap `Parser`, and its own `--help`) and list it here.

use std::ffi::OsString;
use std::process::ExitCode;

/// A subcommand: its name, a one-line summary, and what runs it (given the
/// arguments after its name).
pub struct Subcommand {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(&[OsString]) -> ExitCode,
}

/// Every subcommand.
pub const SUBCOMMANDS: &[Subcommand] = &[
    Subcommand {
        name: "demo",
        about: "start a local 3-node cluster (loopback ports), stop on Ctrl-C",
        run: demo,
    },
    Subcommand {
        name: "bench",
        about: "load against a cluster, with a JSON report",
        run: bench,
    },
    Subcommand {
        name: "sim",
        about: "run the deterministic simulator for N seeds",
        run: run_sim,
    },
];

/// The subcommand called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Subcommand> {
    SUBCOMMANDS.iter().find(|s| s.name == name)
}

/// The arguments as UTF-8 text, or the exit code of a one-line refusal.
fn utf8_args(name: &str, args: &[OsString]) -> Result<Vec<String>, ExitCode> {
    args.iter()
        .map(|a| {
            a.to_str().map(str::to_string).ok_or_else(|| {
                eprintln!("arakoon {name}: argument {a:?} is not valid UTF-8");
                ExitCode::from(crate::EXIT_USAGE)
            })
        })
        .collect()
}

/// An `i32` exit code from a subcommand's `main`, as the process's.
fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(crate::EXIT_FAILED))
}

/// `arakoon demo`: see [`crate::demo`].
fn demo(args: &[OsString]) -> ExitCode {
    match utf8_args("demo", args) {
        Ok(text) => crate::demo::main(&text),
        Err(code) => code,
    }
}

/// `arakoon bench`: load against a cluster (`bench::main` parses and runs).
fn bench(args: &[OsString]) -> ExitCode {
    match utf8_args("bench", args) {
        Ok(text) => exit_code(bench::main(&text)),
        Err(code) => code,
    }
}

/// `arakoon sim`: the deterministic simulator (`sim::command` parses and runs).
fn run_sim(args: &[OsString]) -> ExitCode {
    match utf8_args("sim", args) {
        Ok(text) => exit_code(sim::command::main(&text)),
        Err(code) => code,
    }
}
