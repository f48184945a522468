//! Data-driven interaction tests (etcd-raft style): each file in
//! `tests/traces/` is a script of commands, each followed by its expected
//! output on lines starting with `> `. A new case is a few lines of text.
//! `REWRITE=1 cargo test -p consensus --test trace` rewrites the expected
//! output from the current behaviour (review the diff!).
//!
//! Commands (node ids are numbers, voters 1..=v then learners; `master`
//! names the master of the highest term, `slave` the first other voter):
//!
//! | command | effect | prints |
//! |---|---|---|
//! | `cluster voters=V [learners=L] [preferred=A,B] [forced=F] [quorum=Q] [seed=S]` | a fresh cluster | nothing |
//! | `elect` | run until a master exists | `master N term T` |
//! | `propose N TEXT` | propose on node N | `ok i=I n=T` or the error |
//! | `run MS` | tick 1 ms at a time, delivering everything | nothing |
//! | `advance MS` | tick once, MS later, and deliver everything | nothing |
//! | `isolate N` / `heal` | cut / restore links | nothing |
//! | `crash N` / `restart N` | lose unsynced state / restart from disk | nothing |
//! | `autosync N on\|off` / `sync N` | fsync policy / fsync now | nothing |
//! | `read N` | `consistent_read_index` on N | `ok I` or the error |
//! | `status` | one line per node | `N role term master commit applied last` |
//! | `log N` | node N's log | `i:n` pairs |

use consensus::testing::Cluster;
use consensus::{LogRead, NodeId};
use std::time::Duration;

fn parse_list(v: &str) -> Vec<NodeId> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| NodeId(s.parse().expect("node id")))
        .collect()
}

fn num(s: Option<&&str>, what: &str) -> u64 {
    s.unwrap_or_else(|| panic!("missing {what}"))
        .parse()
        .unwrap_or_else(|_| panic!("bad {what}"))
}

/// A node argument: a number, `master` (the master of the highest term) or
/// `slave` (the lowest-numbered voter that is not that master).
fn node(c: &Cluster, s: Option<&&str>) -> u64 {
    match s.copied() {
        Some("master") => c.master().expect("a master").0,
        Some("slave") => {
            let m = c.master();
            c.ids()
                .into_iter()
                .find(|id| Some(*id) != m && c.nodes[id].core.role() != consensus::Role::Learner)
                .expect("a slave")
                .0
        }
        other => num(other.as_ref(), "node"),
    }
}

fn execute(c: &mut Option<Cluster>, line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut out = Vec::new();
    if words[0] == "cluster" {
        let mut voters = 3;
        let mut learners = 0;
        let mut preferred = Vec::new();
        let mut forced = None;
        let mut quorum = None;
        let mut seed = 42;
        for w in &words[1..] {
            let (k, v) = w.split_once('=').expect("key=value");
            match k {
                "voters" => voters = v.parse().expect("voters"),
                "learners" => learners = v.parse().expect("learners"),
                "preferred" => preferred = parse_list(v),
                "forced" => forced = Some(NodeId(v.parse().expect("forced"))),
                "quorum" => quorum = Some(v.parse().expect("quorum")),
                "seed" => seed = v.parse().expect("seed"),
                _ => panic!("unknown cluster option {k}"),
            }
        }
        *c = Some(Cluster::new(voters, learners, |cfg| {
            cfg.preferred_masters = preferred.clone();
            cfg.forced_master = forced;
            cfg.quorum = quorum;
            cfg.seed = seed;
        }));
        return out;
    }
    let c = c.as_mut().expect("`cluster` first");
    match words[0] {
        "elect" => {
            let m = c.elect();
            out.push(format!("master {} term {}", m.0, c.nodes[&m].core.term()));
        }
        "propose" => {
            let n = NodeId(node(c, words.get(1)));
            let text = words[2..].join(" ");
            match c.propose(n, text.as_bytes()) {
                Ok(p) => out.push(format!("ok i={} n={}", p.index, p.term)),
                Err(e) => out.push(format!("error: {e}")),
            }
        }
        "run" => c.run_for(Duration::from_millis(num(words.get(1), "ms"))),
        "advance" => {
            c.tick(Duration::from_millis(num(words.get(1), "ms")));
            c.deliver_all();
        }
        "isolate" => {
            let n = node(c, words.get(1));
            c.isolate(n);
        }
        "heal" => c.heal(),
        "crash" => {
            let n = node(c, words.get(1));
            c.crash(n);
        }
        "restart" => {
            let n = node(c, words.get(1));
            c.restart(n);
        }
        "autosync" => {
            let n = node(c, words.get(1));
            c.node_mut(n).auto_sync = words.get(2) == Some(&"on");
        }
        "sync" => {
            let n = node(c, words.get(1));
            c.sync(n);
            c.deliver_all();
        }
        "read" => {
            let n = c.node(node(c, words.get(1)));
            match n.core.consistent_read_index(n.local_time(c.now)) {
                Ok(i) => out.push(format!("ok {i}")),
                Err(e) => out.push(format!("error: {e}")),
            }
        }
        "status" => {
            for (id, n) in &c.nodes {
                if !n.up {
                    out.push(format!("{} down", id.0));
                    continue;
                }
                out.push(format!(
                    "{} {} term={} master={} commit={} applied={} last={}",
                    id.0,
                    n.core.role(),
                    n.core.term(),
                    n.core.master().map_or("-".to_string(), |m| m.0.to_string()),
                    n.core.commit_index(),
                    n.applied_index,
                    n.log.last_index()
                ));
            }
        }
        "log" => {
            let n = c.node(node(c, words.get(1)));
            let pairs: Vec<String> = n
                .log
                .entries
                .iter()
                .map(|e| format!("{}:{}", e.index, e.term))
                .collect();
            out.push(if pairs.is_empty() {
                "(empty)".into()
            } else {
                pairs.join(" ")
            });
        }
        other => panic!("unknown command {other}"),
    }
    out
}

fn run_file(path: &std::path::Path) {
    let text = std::fs::read_to_string(path).expect("read trace");
    let mut cluster = None;
    let mut rewritten = String::new();
    let mut failures = Vec::new();
    let mut lines = text.lines().peekable();
    let mut line_no = 0;
    while let Some(line) = lines.next() {
        line_no += 1;
        if line.starts_with("> ") || line == ">" {
            continue; // expected output of the previous command, compared there
        }
        rewritten.push_str(line);
        rewritten.push('\n');
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let got = execute(&mut cluster, trimmed);
        let mut expected = Vec::new();
        while let Some(next) = lines.peek() {
            if let Some(rest) = next.strip_prefix("> ") {
                expected.push(rest.to_string());
            } else if *next == ">" {
                expected.push(String::new());
            } else {
                break;
            }
            lines.next();
        }
        for g in &got {
            rewritten.push_str(&format!("> {g}\n"));
        }
        if got != expected {
            failures.push(format!(
                "{}:{line_no}: `{trimmed}`\n  expected: {expected:?}\n  got:      {got:?}",
                path.display()
            ));
        }
    }
    if std::env::var("REWRITE").is_ok() {
        std::fs::write(path, rewritten).expect("rewrite trace");
        return;
    }
    assert!(
        failures.is_empty(),
        "trace mismatches:\n{}",
        failures.join("\n")
    );
}

#[test]
fn traces() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/traces");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/traces")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    for f in files {
        run_file(&f);
    }
}
