//! `arakoon bench` through the binary: its help, and a bad command line as
//! one line with status 2 (the load itself is tested in crates/bench).

use std::process::Command;

fn arakoon(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_arakoon"))
        .args(args)
        .output()
        .expect("run the arakoon binary")
}

#[test]
fn bench_help_and_usage_errors() {
    let out = arakoon(&["bench", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("Usage: arakoon bench"));

    let out = arakoon(&["bench", "--clients", "2"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        "arakoon bench: -config FILE is required (or --target etcd://HOST:PORT,...)\n"
    );
}
