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

/// Exit code and message of a subcommand this build does not have yet.
fn not_yet(name: &str) -> ExitCode {
    eprintln!("arakoon: {name}: not yet implemented in this build");
    ExitCode::from(crate::EXIT_FAILED)
}

// Placeholder until the node is wired in for demo.
fn demo(_args: &[OsString]) -> ExitCode {
    not_yet("demo")
}

/// `arakoon bench`: load against a cluster (`bench::main` parses and runs).
fn bench(args: &[OsString]) -> ExitCode {
    let mut text = Vec::with_capacity(args.len());
    for a in args {
        match a.to_str() {
            Some(s) => text.push(s.to_string()),
            None => {
                eprintln!("arakoon bench: argument {a:?} is not valid UTF-8");
                return ExitCode::from(2);
            }
        }
    }
    let code = bench::main(&text);
    ExitCode::from(u8::try_from(code).unwrap_or(crate::EXIT_FAILED))
}

/// `arakoon sim`: the deterministic simulator (`sim::command` parses and runs).
fn run_sim(args: &[OsString]) -> ExitCode {
    let mut text = Vec::with_capacity(args.len());
    for a in args {
        match a.to_str() {
            Some(s) => text.push(s.to_string()),
            None => {
                eprintln!("arakoon sim: argument {a:?} is not valid UTF-8");
                return ExitCode::from(2);
            }
        }
    }
    let code = sim::command::main(&text);
    ExitCode::from(u8::try_from(code).unwrap_or(crate::EXIT_FAILED))
}
