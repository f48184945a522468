//! `arakoon sim`: run the simulator from the command line.
//!
//! ```text
//! arakoon sim --seeds N [--seed S] [--nodes K] [--steps M] [--trace] [--threads T]
//! ```
//! - `--seeds N`: run seeds `S .. S+N` (default 100), print one summary line,
//!   and for each failing seed the command that replays it.
//! - `--seed S`: the first seed (default 1). With `--trace` (or `--seeds 1`)
//!   the run's readable trace is printed.
//! - `--nodes K`: voters (default 3, 1 to 7).
//! - `--steps M`: operations per client (default 25); 4 clients run.
//!
//! Exit code: 0 when no violation was found, 1 on a violation, 2 on bad arguments.

use crate::run::{run, Scenario};
use crate::sweep::{replay_command, sweep};

/// Parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimArgs {
    pub seeds: u64,
    pub first_seed: u64,
    pub nodes: usize,
    pub steps: u64,
    pub trace: bool,
    pub threads: usize,
}

/// Largest value accepted for `--steps` (operations per client) and `--seeds`.
const MAX_STEPS: u64 = 10_000;
const MAX_SEEDS: u64 = 100_000_000;

fn number(flag: &str, value: Option<&String>, max: u64) -> Result<u64, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    let n: u64 = value
        .parse()
        .map_err(|_| format!("{flag} {value}: not a non-negative integer"))?;
    if n > max {
        return Err(format!("{flag} {value}: at most {max}"));
    }
    Ok(n)
}

/// Parses the arguments after `sim`.
pub fn parse(args: &[String]) -> Result<SimArgs, String> {
    let mut parsed = SimArgs {
        seeds: 100,
        first_seed: 1,
        nodes: 3,
        steps: 25,
        trace: false,
        threads: std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let mut seeds_given = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--seeds" => {
                parsed.seeds = number(flag, it.next(), MAX_SEEDS)?;
                seeds_given = true;
            }
            "--seed" => parsed.first_seed = number(flag, it.next(), u64::MAX)?,
            "--nodes" => parsed.nodes = number(flag, it.next(), 7)? as usize,
            "--steps" => parsed.steps = number(flag, it.next(), MAX_STEPS)?,
            "--threads" => parsed.threads = number(flag, it.next(), 256)? as usize,
            "--trace" => parsed.trace = true,
            other => {
                return Err(format!(
                    "unknown argument '{other}' (see arakoon sim --help)"
                ))
            }
        }
    }
    if parsed.nodes == 0 {
        return Err("--nodes 0: a cluster needs 1 to 7 voters".into());
    }
    if parsed.seeds == 0 {
        return Err("--seeds 0: nothing to run".into());
    }
    if parsed.trace && !seeds_given {
        parsed.seeds = 1;
    }
    if parsed.trace && parsed.seeds != 1 {
        return Err("--trace replays one seed: use --seed S without --seeds".into());
    }
    parsed.threads = parsed.threads.max(1);
    Ok(parsed)
}

/// Runs `arakoon sim ARGS`; returns the process exit code.
pub fn main(args: &[String]) -> i32 {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!(
            "arakoon sim --seeds N [--seed S] [--nodes K] [--steps M] [--trace] [--threads T]\n\
             Runs N seeds of the deterministic cluster simulator and checks every run."
        );
        return 0;
    }
    let parsed = match parse(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("arakoon sim: {e}");
            return 2;
        }
    };
    let scenario = Scenario::standard(parsed.nodes, parsed.steps);
    if parsed.trace {
        let report = run(parsed.first_seed, &scenario, true);
        for line in &report.trace {
            println!("{line}");
        }
        println!(
            "sim: seed {}, {} operations checked, {} entries applied, {} faults injected, {} violations",
            report.seed,
            report.operations_checked,
            report.entries_applied,
            report.faults_injected,
            report.violations.len()
        );
        for v in &report.violations {
            println!("violation: {v}");
        }
        return i32::from(!report.violations.is_empty());
    }
    let started = std::time::Instant::now();
    let summary = sweep(
        parsed.first_seed,
        parsed.seeds,
        &scenario,
        parsed.threads,
        usize::MAX,
    );
    println!(
        "{} ({:.1} s)",
        summary.line(),
        started.elapsed().as_secs_f64()
    );
    for f in &summary.failures {
        println!("seed {}: {}", f.seed, f.violations.join(" | "));
        println!(
            "  replay: {}",
            replay_command(f.seed, parsed.nodes, parsed.steps)
        );
    }
    i32::from(!summary.failures.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn defaults_and_flags() {
        let p = parse(&args("")).unwrap();
        assert_eq!(
            (p.seeds, p.first_seed, p.nodes, p.steps, p.trace),
            (100, 1, 3, 25, false)
        );
        let p = parse(&args("--seeds 5 --seed 9 --nodes 5 --steps 3")).unwrap();
        assert_eq!((p.seeds, p.first_seed, p.nodes, p.steps), (5, 9, 5, 3));
        let p = parse(&args("--seed 42 --trace")).unwrap();
        assert_eq!((p.seeds, p.first_seed, p.trace), (1, 42, true));
    }

    #[test]
    fn bad_arguments_are_named() {
        assert_eq!(
            parse(&args("--nodes 8")).unwrap_err(),
            "--nodes 8: at most 7"
        );
        assert_eq!(
            parse(&args("--seeds x")).unwrap_err(),
            "--seeds x: not a non-negative integer"
        );
        assert_eq!(
            parse(&args("--seeds")).unwrap_err(),
            "--seeds needs a value"
        );
        assert!(parse(&args("--bogus")).unwrap_err().contains("'--bogus'"));
        assert!(parse(&args("--seeds 3 --trace")).is_err());
        assert!(parse(&args("--nodes 0")).is_err());
    }
}
