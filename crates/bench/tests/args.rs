//! The command line: what is accepted, and that every mistake is one clear
//! line naming the flag and the value.

use bench::args::{parse, Parsed, ReadConsistency, Scenario, Target};
use std::path::PathBuf;
use std::time::Duration;

fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

fn options(line: &str) -> bench::Options {
    match parse(&args(line)) {
        Ok(Parsed::Run(options)) => options,
        other => panic!("{line}: {other:?}"),
    }
}

fn error(line: &str) -> String {
    match parse(&args(line)) {
        Err(e) => e.to_string(),
        Ok(other) => panic!("{line}: accepted as {other:?}"),
    }
}

#[test]
fn every_flag_of_the_issue() {
    let o = options(
        "-config cfg.ini --scenario set,get,range,sequence,mixed --clients 64 --ops 5000 \
         --value-size 100 --key-size 16 --keys 100000 --consistency no-guarantee --json",
    );
    assert_eq!(
        o.target,
        Target::Arakoon {
            config: PathBuf::from("cfg.ini")
        }
    );
    assert_eq!(o.scenarios, Scenario::ALL.to_vec());
    assert_eq!(o.clients, 64);
    assert_eq!(o.ops, 5000);
    assert_eq!(o.value_size, 100);
    assert_eq!(o.key_size, 16);
    assert_eq!(o.keys, 100_000);
    assert_eq!(o.consistency, ReadConsistency::NoGuarantee);
    assert!(o.json);
    assert!(o.fill);
}

#[test]
fn defaults_and_other_spellings() {
    let o = options("--config=c.ini");
    assert_eq!(o.scenarios, vec![Scenario::Set]);
    assert_eq!(o.consistency, ReadConsistency::Consistent);
    assert!(!o.json);
    assert_eq!(o.max_duration, None);
    let o = options("-config c.ini --consistency=at-least --no-fill --max-seconds 5 --seed 9");
    assert_eq!(o.consistency, ReadConsistency::AtLeast);
    assert!(!o.fill);
    assert_eq!(o.max_duration, Some(Duration::from_secs(5)));
    assert_eq!(o.seed, 9);
    let o = options("--target etcd://127.0.0.1:2379,127.0.0.1:22379 --scenario get");
    assert_eq!(
        o.target,
        Target::Etcd {
            endpoints: vec!["127.0.0.1:2379".into(), "127.0.0.1:22379".into()]
        }
    );
    assert_eq!(parse(&args("--help")), Ok(Parsed::Help));
    assert_eq!(parse(&args("-config c.ini -h")), Ok(Parsed::Help));
}

#[test]
fn mistakes_are_named() {
    assert_eq!(
        error("--clients 4"),
        "-config FILE is required (or --target etcd://HOST:PORT,...)"
    );
    assert_eq!(
        error("-config c --scenario set,put"),
        "--scenario: unknown scenario \"put\" (known: set, get, range, sequence, mixed)"
    );
    assert_eq!(
        error("-config c --scenario set,set"),
        "--scenario: set is listed twice"
    );
    assert_eq!(
        error("-config c --clients"),
        "--clients: a value is missing"
    );
    assert_eq!(
        error("-config c --clients many"),
        "--clients \"many\": not a whole number"
    );
    assert_eq!(
        error("-config c --clients 0"),
        "--clients 0: out of range (from 1 to 4096)"
    );
    assert_eq!(
        error("-config c --ops -5"),
        "--ops \"-5\": not a whole number"
    );
    assert_eq!(
        error("-config c --consistency strong"),
        "--consistency \"strong\": not one of consistent, at-least, no-guarantee"
    );
    assert_eq!(
        error("-config c --key-size 4 --keys 100000"),
        "--key-size 4: too small for --keys 100000 (needs at least 6 bytes)"
    );
    assert_eq!(
        error("-config c --frobnicate"),
        "unknown argument \"--frobnicate\" (see arakoon bench --help)"
    );
    assert_eq!(error("-config c --json=yes"), "--json takes no value");
    assert_eq!(
        error("--target http://x:1"),
        "--target \"http://x:1\": expected etcd://HOST:PORT[,HOST:PORT...] (for Arakoon, use -config FILE)"
    );
    assert_eq!(
        error("--target etcd://localhost"),
        "--target: endpoint \"localhost\" is not HOST:PORT"
    );
    assert_eq!(
        error("-config c --target etcd://a:1"),
        "-config and --target both given: load either an Arakoon cluster or etcd"
    );
    for e in [
        error("-config c --value-size 99999999"),
        error("-config c --keys 0"),
    ] {
        assert!(e.contains("out of range"), "{e}");
        assert_eq!(e.lines().count(), 1);
    }
}

/// Through `run`: help on stdout with status 0, a usage error as one line
/// on stderr with status 2, an unreadable config with status 1.
#[test]
fn exit_statuses() {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(bench::run(&args("--help"), &mut out, &mut err), 0);
    assert!(String::from_utf8_lossy(&out).starts_with("Usage: arakoon bench"));

    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(bench::run(&args("--ops 1"), &mut out, &mut err), 2);
    let err = String::from_utf8_lossy(&err).to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("arakoon bench: "), "{err}");

    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = bench::run(&args("-config /nonexistent/cfg.ini"), &mut out, &mut err);
    assert_eq!(code, 1);
    assert!(String::from_utf8_lossy(&err).contains("/nonexistent/cfg.ini"));
}

/// `--target etcd://` without the separate etcd load generator: one line
/// saying how to build it, status 2.
#[test]
fn etcd_target_without_its_runner() {
    if std::env::var_os(bench::ETCD_RUNNER_ENV).is_some() {
        return; // a runner is configured: this is not the case under test
    }
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = bench::run(&args("--target etcd://127.0.0.1:1"), &mut out, &mut err);
    assert_eq!(code, 2);
    let err = String::from_utf8_lossy(&err).to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bench/etcd-load/Cargo.toml"), "{err}");
}
