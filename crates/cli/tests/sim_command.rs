//! `arakoon sim` end to end: the binary runs seeds, prints one summary line,
//! replays one seed with a trace, and refuses bad arguments with exit code 2.

use std::process::Command;

fn arakoon(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_arakoon"))
        .args(args)
        .output()
        .expect("the arakoon binary runs")
}

#[test]
fn sim_runs_seeds_and_prints_one_summary_line() {
    let out = arakoon(&["sim", "--seeds", "4", "--seed", "11"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let summary: Vec<&str> = stdout.lines().filter(|l| l.starts_with("sim: ")).collect();
    assert_eq!(summary.len(), 1, "{stdout}");
    assert!(summary[0].starts_with("sim: 4 seeds, "), "{stdout}");
    assert!(summary[0].contains(", 0 violations"), "{stdout}");
}

#[test]
fn sim_trace_replays_one_seed_identically() {
    let first = arakoon(&["sim", "--seed", "11", "--trace"]);
    let second = arakoon(&["sim", "--seed", "11", "--trace"]);
    assert_eq!(first.status.code(), Some(0));
    let text = String::from_utf8_lossy(&first.stdout);
    assert!(text.contains("node 0: start"), "{text}");
    assert!(text.contains("master in term"), "{text}");
    assert_eq!(
        first.stdout, second.stdout,
        "a seed must replay byte for byte"
    );
}

#[test]
fn sim_refuses_bad_arguments() {
    let out = arakoon(&["sim", "--nodes", "9"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "arakoon sim: --nodes 9: at most 7\n"
    );
}
