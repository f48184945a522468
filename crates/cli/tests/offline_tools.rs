//! The offline tools of the built `arakoon` binary (`--dump-tlog`,
//! `--dump-store`, `--inspect-store`, `--verify-db`) on a tlog and a store
//! made with the crates' own APIs in a temp dir (removed when the test
//! ends, also on failure): the output names what was written, and a
//! damaged file is one line on stderr and exit status 5.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use protocol::Update;

/// The exit status of an offline tool that found damage.
const EXIT_DAMAGED: i32 = 5;

fn arakoon(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_arakoon"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run the arakoon binary")
}

fn run(flag: &str, path: &Path, more: &[&str]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec![flag.as_ref(), path.as_os_str()];
    args.extend(more.iter().map(|a| std::ffi::OsStr::new(*a)));
    arakoon(&args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn set(key: String, value: String) -> Update {
    Update::Set {
        key: key.into_bytes(),
        value: value.into_bytes(),
    }
}

/// Entry `i`'s updates: `key_i` set to `value_i`, and every tenth entry a
/// sequence with a delete too.
fn updates_of(i: u64) -> Vec<Update> {
    let mut updates = vec![set(format!("key_{i:05}"), format!("value \"{i}\""))];
    if i % 10 == 0 {
        updates.push(Update::Sequence(vec![Update::Delete {
            key: format!("gone_{i}").into_bytes(),
        }]));
    }
    updates
}

/// A tlog of `n` entries (index 1 a barrier, as a new master's), in
/// segments of 100 entries, the full ones lz4-sealed.
fn make_tlog(dir: &Path, n: u64) -> PathBuf {
    let tlog_dir = dir.join("tlog");
    let options = tlog::TlogOptions {
        max_entries: 100,
        ..tlog::TlogOptions::default()
    };
    let mut log =
        tlog::Tlog::open(disk::RealDisk::shared(), tlog_dir.clone(), options).expect("open tlog");
    let mut entries = Vec::new();
    for index in 1..=n {
        let mut payload = Vec::new();
        if index > 1 {
            protocol::encode_batch(&updates_of(index), &mut payload);
        }
        entries.push(tlog::Entry {
            index,
            term: 1 + index / 150,
            payload,
        });
    }
    log.append(&entries).expect("append");
    log.sync().expect("sync");
    log.seal_full_segments().expect("seal");
    tlog_dir
}

fn segment_files(tlog_dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(tlog_dir)
        .expect("list the tlog")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

/// Rule: `--dump-tlog` prints every entry of the directory, in order, one
/// line each (`index:term:updates`), keys always, values with
/// `-dump-values`; a single sealed or plain segment file works too.
#[test]
fn dump_tlog_prints_every_entry_of_a_directory_or_a_segment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tlog_dir = make_tlog(dir.path(), 350);

    let out = run("--dump-tlog", &tlog_dir, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 350, "{stdout}");
    assert_eq!(lines[0], "1:1:barrier");
    assert_eq!(lines[1], "2:1:set \"key_00002\"");
    assert_eq!(
        lines[9],
        "10:1:set \"key_00010\"; sequence[delete \"gone_10\"]"
    );
    assert_eq!(lines[348], "349:3:set \"key_00349\"");
    for (k, line) in lines.iter().enumerate() {
        assert!(line.starts_with(&format!("{}:", k + 1)), "{line}");
    }

    let out = run("--dump-tlog", &tlog_dir, &["-dump-values"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("\n2:1:set \"key_00002\" \"value \\\"2\\\"\"\n"),
        "{}",
        text(&out.stdout)
    );

    let sealed = segment_files(&tlog_dir, ".tlz");
    assert_eq!(sealed.len(), 3, "{sealed:?}");
    let out = run("--dump-tlog", &sealed[1], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 100);
    assert!(stdout.starts_with("101:1:set \"key_00101\"\n"), "{stdout}");

    let plain = segment_files(&tlog_dir, ".tlog");
    assert_eq!(plain.len(), 1, "{plain:?}");
    let out = run("--dump-tlog", &plain[0], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 50);
}

/// Rule: damage is refused with the tlog's error (file and byte offset),
/// exit status 5, never skipped.
#[test]
fn dump_tlog_refuses_a_damaged_segment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tlog_dir = make_tlog(dir.path(), 250);
    let sealed = segment_files(&tlog_dir, ".tlz");
    let mut bytes = std::fs::read(&sealed[0]).expect("read segment");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&sealed[0], &bytes).expect("damage segment");

    for path in [&tlog_dir, &sealed[0]] {
        let out = run("--dump-tlog", path, &[]);
        assert_eq!(
            out.status.code(),
            Some(EXIT_DAMAGED),
            "{}",
            text(&out.stderr)
        );
        let stderr = text(&out.stderr);
        assert!(
            stderr.starts_with("arakoon: --dump-tlog ")
                && stderr.contains(&sealed[0].display().to_string())
                && stderr.contains("at byte")
                && stderr.contains("corrupt"),
            "{stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }

    // A frame of the plain (last) segment: the same, with the hint that
    // a torn final write is the node's to cut.
    let plain = segment_files(&tlog_dir, ".tlog");
    let mut bytes = std::fs::read(&plain[0]).expect("read segment");
    bytes[tlog::SEGMENT_HEADER_LEN as usize + 30] ^= 0xff;
    std::fs::write(&plain[0], &bytes).expect("damage segment");
    let out = run("--dump-tlog", &plain[0], &[]);
    assert_eq!(
        out.status.code(),
        Some(EXIT_DAMAGED),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("torn final write"),
        "{}",
        text(&out.stderr)
    );

    let out = run("--dump-tlog", &dir.path().join("absent"), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr).lines().count(),
        1,
        "{}",
        text(&out.stderr)
    );
}

/// A store with `n` entries applied (keys `key_00002` … as in the tlog).
fn make_store(dir: &Path, n: u64) -> PathBuf {
    let path = dir.join("arakoon_0.db");
    let store = store::Store::open(
        disk::RealDisk::shared(),
        &path,
        &store::StoreOptions::default(),
    )
    .expect("open store");
    for index in 1..=n {
        store.apply(index, &updates_of(index)).expect("apply");
    }
    store.close().expect("close store");
    path
}

/// Rule: `--dump-store` prints the applied index, the key count and every
/// pair; `--inspect-store` a window from `-left`, at most `-max_results`;
/// neither writes the file.
#[test]
fn dump_and_inspect_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = make_store(dir.path(), 40);
    let before = std::fs::read(&path).expect("read store");

    let out = run("--dump-store", &path, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "applied_index: 40");
    assert_eq!(lines[1], "keys: 40");
    assert_eq!(lines[2], "\"key_00001\" \"value \\\"1\\\"\"");
    assert_eq!(lines.len(), 42, "{stdout}");

    let out = run(
        "--inspect-store",
        &path,
        &["-left", "key_00010", "-max_results", "3"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "\"key_00010\" \"value \\\"10\\\"\"\n\"key_00011\" \"value \\\"11\\\"\"\n\
         \"key_00012\" \"value \\\"12\\\"\"\n3 listed\n"
    );
    assert_eq!(std::fs::read(&path).expect("read store"), before, "written");
}

/// Rule: `--verify-db` checks every page and walks every key, prints the
/// applied index and key count; a damaged store is exit status 5 with one
/// line; a missing file is refused (1) and not created.
#[test]
fn verify_db_reports_the_applied_index_and_refuses_damage() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = make_store(dir.path(), 25);
    let out = run("--verify-db", &path, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("applied_index: 25\nkeys: 25\n") && stdout.ends_with("ok\n"),
        "{stdout}"
    );

    let absent = dir.path().join("absent.db");
    let out = run("--verify-db", &absent, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(!absent.exists(), "--verify-db made a store");

    // Garbage over everything but the file's first page.
    let mut bytes = std::fs::read(&path).expect("read store");
    for (k, b) in bytes.iter_mut().enumerate().skip(4096) {
        *b = (k as u8).wrapping_mul(31) ^ 0xa5;
    }
    std::fs::write(&path, &bytes).expect("damage store");
    let out = run("--verify-db", &path, &[]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(EXIT_DAMAGED), "{stderr}");
    assert!(stderr.starts_with("arakoon: --verify-db "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// Rule: output to a closed pipe ends quietly (status 0, nothing on
/// stderr), here a dump much larger than a pipe's buffer whose reader
/// stops after the first line.
#[test]
fn a_closed_pipe_ends_a_dump_quietly() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("temp dir");
    let tlog_dir = make_tlog(dir.path(), 20_000);
    let mut child = Command::new(env!("CARGO_BIN_EXE_arakoon"))
        .arg("--dump-tlog")
        .arg(&tlog_dir)
        .arg("-dump-values")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn arakoon");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = std::io::BufReader::new(stdout);
    let mut first = String::new();
    reader.read_line(&mut first).expect("first line");
    assert_eq!(first, "1:1:barrier\n");
    drop(reader);
    let out = child.wait_with_output().expect("wait");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

fn dump_keys(store: &Path) -> String {
    let out = run("--dump-store", store, &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// Rule: `--replay-tlogs TLOG_DIR DB [END_I]` applies the entries after
/// the store's applied index, up to END_I, as a node applies them; a
/// second run brings the same store forward; a tlog that no longer holds
/// the entries right after the store's index is refused, naming them.
#[test]
fn replay_tlogs_builds_a_store_and_brings_it_forward() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tlog_dir = make_tlog(dir.path(), 250);
    let db = dir.path().join("replayed.db");
    let db_text = db.to_str().expect("utf-8");

    let out = run("--replay-tlogs", &tlog_dir, &[db_text, "120"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("replayed 120 entries: the store is at i = 120 (was 0)"),
        "{}",
        text(&out.stdout)
    );
    let keys = dump_keys(&db);
    assert!(
        keys.contains("key_00120") && !keys.contains("key_00121"),
        "{keys}"
    );

    // Arakoon's form, with the tlx directory (the same one here).
    let tlx = tlog_dir.to_str().expect("utf-8");
    let out = run("--replay-tlogs", &tlog_dir, &[tlx, db_text]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !text(&out.stdout).contains("is not read"),
        "{}",
        text(&out.stdout)
    );
    assert!(
        text(&out.stdout).contains("replayed 130 entries: the store is at i = 250 (was 120)"),
        "{}",
        text(&out.stdout)
    );
    let keys = dump_keys(&db);
    for i in 2..=250u64 {
        assert!(keys.contains(&format!("key_{i:05}")), "key_{i:05} missing");
    }

    // The first segment collapsed away: a new store cannot start there.
    let mut log = tlog::Tlog::open(
        disk::RealDisk::shared(),
        tlog_dir.clone(),
        tlog::TlogOptions {
            max_entries: 100,
            ..tlog::TlogOptions::default()
        },
    )
    .expect("open tlog");
    log.collapse(101).expect("collapse");
    drop(log);
    let fresh = dir.path().join("fresh.db");
    let out = run(
        "--replay-tlogs",
        &tlog_dir,
        &[fresh.to_str().expect("utf-8")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("entries 1..=100 are missing"),
        "{}",
        text(&out.stderr)
    );
}

/// Rule: `--truncate-tlog FILE` cuts the newest segment after its last
/// whole entry and removes the node's hard state (it may have acknowledged
/// what was cut: it recovers from its peers); the tlog then reads whole.
/// A sealed segment, and Arakoon's marker tools, are refused saying why.
#[test]
fn truncate_tlog_cuts_the_newest_segment_at_the_damage() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tlog_dir = make_tlog(dir.path(), 250);
    let hard_state = tlog_dir.join(tlog::HARD_STATE_FILE);
    std::fs::write(&hard_state, b"votes").expect("a hard state");
    let plain = segment_files(&tlog_dir, ".tlog");
    assert_eq!(plain.len(), 1, "{plain:?}");
    let mut bytes = std::fs::read(&plain[0]).expect("read segment");
    let at = tlog::SEGMENT_HEADER_LEN as usize + 2000;
    bytes[at] ^= 0xff;
    std::fs::write(&plain[0], &bytes).expect("damage segment");
    assert_eq!(
        run("--dump-tlog", &tlog_dir, &[]).status.code(),
        Some(EXIT_DAMAGED)
    );

    let out = run("--truncate-tlog", &plain[0], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stdout);
    assert!(
        said.contains("damage at byte") && said.contains("entries kept up to i = "),
        "{said}"
    );
    assert!(said.contains("hard state was removed"), "{said}");
    assert!(!hard_state.exists());
    let dump = run("--dump-tlog", &tlog_dir, &[]);
    assert!(dump.status.success(), "{}", text(&dump.stderr));
    let last = text(&dump.stdout)
        .lines()
        .last()
        .and_then(|l| l.split(':').next())
        .and_then(|i| i.parse::<u64>().ok())
        .expect("an entry line");
    assert!((201..250).contains(&last), "kept up to {last}");
    assert!(said.contains(&format!("up to i = {last}")), "{said}");
    // The node's own open takes the cut tlog and appends after it.
    {
        let options = tlog::TlogOptions {
            max_entries: 100,
            ..tlog::TlogOptions::default()
        };
        let mut log = tlog::Tlog::open(disk::RealDisk::shared(), tlog_dir.clone(), options)
            .expect("the cut tlog opens");
        assert_eq!(log.last_index(), last);
        assert!(log.hard_state().is_none());
        let next = tlog::Entry {
            index: last + 1,
            term: log.last_term(),
            payload: Vec::new(),
        };
        log.append(&[next]).expect("append after the cut");
        log.sync().expect("sync");
    }
    let again = run("--truncate-tlog", &plain[0], &[]);
    assert!(
        text(&again.stdout).contains("nothing to cut"),
        "{}",
        text(&again.stdout)
    );

    let sealed = segment_files(&tlog_dir, ".tlz");
    let out = run("--truncate-tlog", &sealed[0], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("never written again"),
        "{}",
        text(&out.stderr)
    );
    for (flag, more) in [("--strip-tlog", &[][..]), ("--mark-tlog", &["closed"][..])] {
        let out = run(flag, &plain[0], more);
        assert_eq!(out.status.code(), Some(1));
        assert!(
            text(&out.stderr).contains("no clean-shutdown marker"),
            "{}",
            text(&out.stderr)
        );
    }
}

/// Rule: `--uncompress-tlog` rewrites a sealed segment as a plain one with
/// the same entries, `--compress-tlog` seals the full plain segments again;
/// the tlog dumps the same before and after; the newest segment (the one
/// a node appends to) is not sealed by hand.
#[test]
fn compress_and_uncompress_tlog_keep_every_entry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tlog_dir = make_tlog(dir.path(), 250);
    let before = run("--dump-tlog", &tlog_dir, &["-dump-values"]);
    assert!(before.status.success(), "{}", text(&before.stderr));
    let sealed = segment_files(&tlog_dir, ".tlz");
    assert_eq!(sealed.len(), 2, "{sealed:?}");

    let out = run("--uncompress-tlog", &sealed[0], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!sealed[0].exists());
    assert_eq!(segment_files(&tlog_dir, ".tlog").len(), 2);
    let after = run("--dump-tlog", &tlog_dir, &["-dump-values"]);
    assert_eq!(text(&after.stdout), text(&before.stdout));

    let plain = segment_files(&tlog_dir, ".tlog");
    let out = run("--compress-tlog", &plain[1], &[]);
    assert_eq!(out.status.code(), Some(1), "the newest segment was sealed");
    assert!(
        text(&out.stderr).contains("appends to"),
        "{}",
        text(&out.stderr)
    );
    let out = run("--compress-tlog", &plain[0], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("sealed 1 full segment"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(segment_files(&tlog_dir, ".tlz").len(), 2);
    let again = run("--dump-tlog", &tlog_dir, &["-dump-values"]);
    assert_eq!(text(&again.stdout), text(&before.stdout));
}
