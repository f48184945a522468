//! `arakoon migrate`: a running cluster copied to another over the client
//! protocol, interrupted (`kill -9`) and resumed from its state file, then
//! verified; a difference between the sides is status 1.

mod common;

use client::Update;
use common::{wait_for_master, Processes, DEADLINE};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

fn arakoon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_arakoon"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_copies_resumes_after_a_kill_and_verifies() {
    let old = Processes::start(1);
    let new = Processes::start(1);
    let (src, dst) = (old.client(), new.client());
    wait_for_master(&src, &old).await;
    wait_for_master(&dst, &new).await;
    const KEYS: usize = 3_000;
    for chunk in 0..KEYS / 100 {
        let updates: Vec<Update> = (chunk * 100..(chunk + 1) * 100)
            .map(|k| Update::Set {
                key: format!("key-{k:05}").into_bytes(),
                value: vec![(k % 251) as u8; k % 300],
            })
            .collect();
        src.sequence(updates).await.unwrap();
    }
    let state = new.dir.path().join("migrate-state");

    // First run: killed once 1,000 keys are copied.
    let mut first = arakoon()
        .arg("migrate")
        .arg("-from")
        .arg(&old.config_path)
        .arg("-to")
        .arg(&new.config_path)
        .args(["-page", "200", "-state"])
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = first.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let started = Instant::now();
    loop {
        let line = lines.next().expect("output").unwrap();
        if line == "copied 1000 keys" {
            break;
        }
        assert!(started.elapsed() < DEADLINE, "no progress: {line}");
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let saved = std::fs::read_to_string(&state).expect("a state file after a page");
    assert!(!saved.trim().is_empty());
    let partial = dst.get_key_count().await.unwrap();
    assert!(partial >= 1_000 && partial < KEYS as u64, "{partial}");

    // Second run: resumes after the saved key, copies the rest, verifies.
    let out = arakoon()
        .arg("migrate")
        .arg("-from")
        .arg(&old.config_path)
        .arg("-to")
        .arg(&new.config_path)
        .args(["-page", "200", "-state"])
        .arg(&state)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("resuming after key \"key-"), "{text}");
    assert!(
        text.contains(&format!("verified: both sides hold the same {KEYS} keys")),
        "{text}"
    );
    assert!(
        !state.exists(),
        "the state file outlived a verified migration"
    );
    assert_eq!(dst.get_key_count().await.unwrap(), KEYS as u64);
    assert_eq!(
        dst.get(b"key-02999").await.unwrap(),
        vec![(2999 % 251) as u8; 2999 % 300]
    );

    // A key only on one side: the verification fails, status 1.
    dst.set(b"stray", b"x").await.unwrap();
    let out = arakoon()
        .arg("migrate")
        .arg("-from")
        .arg(&old.config_path)
        .arg("-to")
        .arg(&new.config_path)
        .arg("-verify-only")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("source: {KEYS} keys"))
            && text.contains(&format!("destination: {} keys", KEYS + 1)),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("differs"));
}
