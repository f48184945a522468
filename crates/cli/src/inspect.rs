//! `arakoon --inspect-cluster -config CFG [-watch]`: one table with every
//! node's role, standing, term, tlog range, commit and applied indices,
//! lag behind the master, tlog and store size on disk and last collapse,
//! and a divergence check, from each node's `inspect` answer (ours, 0x70).
//!
//! # The divergence check
//!
//! The nodes' tlogs are compared at one index `X` that every reachable
//! node holds and has committed (the lowest `min(committed, tlog_last)`,
//! when no node's tlog starts after it): each node gives the term of its
//! entry `X`. By the log matching property of the consensus (two logs
//! with an entry of the same index and term are identical up to it), equal
//! terms mean the same history up to `X`, so the same store at `X` (applies
//! are deterministic). Different terms are a divergence: the exit status
//! is then 1.
//!
//! The stores are compared too (once, not with `-watch`: each node scans
//! its whole store): each node gives a checksum of its store's export
//! stream at its applied index (`fingerprint=I:CRC:PAIRS`); when every
//! node answering is at the same index (a quiet cluster: it is asked again
//! a few times), equal checksums mean equal stores, different ones a
//! divergence of the stores (exit status 1) even where the tlogs agree (a
//! corrupted store, say).
//!
//! `-watch` redraws the table every second (on a terminal, in place) until
//! Ctrl-C.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use client::Client;

use crate::actions::{ActionError, FailureKind};

/// One node's answer: its `key=value` lines, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub node: String,
    pub state: Result<BTreeMap<String, String>, String>,
}

impl Report {
    fn get(&self, key: &str) -> Option<&str> {
        self.state.as_ref().ok()?.get(key).map(String::as_str)
    }

    fn number(&self, key: &str) -> Option<u64> {
        self.get(key)?.parse().ok()
    }
}

/// What the divergence check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every reachable node has entry `index` in `term`.
    Same { index: u64, term: u64 },
    /// Terms differ at `index`: `(node, term)` of each node that answered.
    Diverged {
        index: u64,
        terms: Vec<(String, Option<u64>)>,
    },
    /// No index every reachable node holds and has committed (say why).
    NotCompared(String),
}

fn parse(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The index to compare the tlogs at (see the module docs).
pub fn common_index(reports: &[Report]) -> Result<u64, String> {
    let answered: Vec<&Report> = reports.iter().filter(|r| r.state.is_ok()).collect();
    if answered.len() < 2 {
        return Err("fewer than two nodes answered".to_string());
    }
    let mut upper = u64::MAX;
    let mut lower = 0;
    for r in &answered {
        let (Some(first), Some(last), Some(committed)) = (
            r.number("tlog_first"),
            r.number("tlog_last"),
            r.number("committed"),
        ) else {
            return Err(format!("{} gave no tlog range", r.node));
        };
        upper = upper.min(last.min(committed));
        lower = lower.max(first);
    }
    if upper == 0 {
        return Err("nothing committed yet".to_string());
    }
    if lower > upper {
        return Err(format!(
            "no entry every node holds (a tlog starts at i = {lower}, another has committed only up to {upper})"
        ));
    }
    Ok(upper)
}

/// Compares the terms the nodes gave for their entry `index`.
pub fn verdict(index: u64, reports: &[Report]) -> Verdict {
    let terms: Vec<(String, Option<u64>)> = reports
        .iter()
        .filter(|r| r.state.is_ok())
        .map(|r| {
            let term = r
                .get("term_at")
                .and_then(|v| v.split_once(':'))
                .filter(|(i, _)| i.parse() == Ok(index))
                .and_then(|(_, t)| t.parse().ok());
            (r.node.clone(), term)
        })
        .collect();
    match terms.first() {
        Some((_, Some(term))) if terms.iter().all(|(_, t)| *t == Some(*term)) => {
            Verdict::Same { index, term: *term }
        }
        _ => Verdict::Diverged { index, terms },
    }
}

async fn ask(
    client: &Client,
    names: &[String],
    term_at: Option<u64>,
    fingerprint: bool,
) -> Vec<Report> {
    let mut reports = Vec::with_capacity(names.len());
    for name in names {
        let state = match client.node(name) {
            Ok(node) => node
                .inspect(term_at, fingerprint)
                .await
                .map(|text| parse(&text))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        reports.push(Report {
            node: name.clone(),
            state,
        });
    }
    reports
}

/// What the store comparison found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stores {
    /// Every node answering is at `index` with the same checksum.
    Same { index: u64, crc: String, pairs: u64 },
    /// At `index`, the checksums differ: `(node, crc:pairs)` of each.
    Differ {
        index: u64,
        sums: Vec<(String, String)>,
    },
    /// Not compared (say why).
    NotCompared(String),
}

/// Compares the nodes' store fingerprints (`fingerprint=I:CRC:PAIRS`).
pub fn compare_stores(reports: &[Report]) -> Stores {
    let mut sums = Vec::new();
    for r in reports.iter().filter(|r| r.state.is_ok()) {
        let Some((index, rest)) = r.get("fingerprint").and_then(|f| f.split_once(':')) else {
            return Stores::NotCompared(format!("{} gave no fingerprint", r.node));
        };
        let Ok(index) = index.parse::<u64>() else {
            return Stores::NotCompared(format!("{} gave a malformed fingerprint", r.node));
        };
        sums.push((r.node.clone(), index, rest.to_string()));
    }
    if sums.len() < 2 {
        return Stores::NotCompared("fewer than two nodes answered".to_string());
    }
    let index = sums[0].1;
    if sums.iter().any(|(_, i, _)| *i != index) {
        return Stores::NotCompared(
            "the stores were at different applied indices (writes going on)".to_string(),
        );
    }
    let first = &sums[0].2;
    if sums.iter().all(|(_, _, s)| s == first) {
        let (crc, pairs) = first.split_once(':').unwrap_or((first.as_str(), "0"));
        return Stores::Same {
            index,
            crc: crc.to_string(),
            pairs: pairs.parse().unwrap_or(0),
        };
    }
    Stores::Differ {
        index,
        sums: sums.into_iter().map(|(n, _, s)| (n, s)).collect(),
    }
}

/// The stores compared: asked again (up to five times, 200 ms apart)
/// while the nodes' applied indices differ.
pub async fn gather_stores(client: &Client) -> Stores {
    let client = client
        .with_request_timeout(Duration::from_secs(60))
        .with_retry_policy(client::RetryPolicy::no_retry());
    let names: Vec<String> = client.node_names().map(str::to_string).collect();
    let mut found = Stores::NotCompared("not asked".to_string());
    for _ in 0..5 {
        found = compare_stores(&ask(&client, &names, None, true).await);
        if !matches!(&found, Stores::NotCompared(why) if why.contains("different applied")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    found
}

/// Every node's report, and the divergence verdict.
pub async fn gather(client: &Client) -> (Vec<Report>, Verdict) {
    // One attempt per node: a node that does not answer is reported as
    // such, not retried for seconds.
    let client = client
        .with_request_timeout(Duration::from_secs(2))
        .with_retry_policy(client::RetryPolicy::no_retry());
    let names: Vec<String> = client.node_names().map(str::to_string).collect();
    let first = ask(&client, &names, None, false).await;
    let index = match common_index(&first) {
        Ok(index) => index,
        Err(why) => return (first, Verdict::NotCompared(why)),
    };
    let second = ask(&client, &names, Some(index), false).await;
    let verdict = verdict(index, &second);
    (second, verdict)
}

/// `bytes` as B, KiB, MiB or GiB.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS` UTC (the proleptic Gregorian
/// calendar, from the day count: the civil-from-days algorithm).
pub fn utc(seconds: u64) -> String {
    let days = (seconds / 86_400) as i64;
    let rest = seconds % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// The table and the verdict's line.
pub fn render(reports: &[Report], verdict: &Verdict) -> String {
    let master_committed = reports
        .iter()
        .find(|r| r.get("role") == Some("master"))
        .and_then(|r| r.number("committed"));
    let header = [
        "node",
        "role",
        "standing",
        "n",
        "tlog i",
        "committed",
        "applied",
        "lag",
        "tlog",
        "store",
        "last collapse",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
    let mut unreachable = Vec::new();
    for r in reports {
        if let Err(e) = &r.state {
            unreachable.push(format!("{}: no answer: {e}", r.node));
            continue;
        }
        let text = |k: &str| r.get(k).unwrap_or("?").to_string();
        let lag = match (r.get("role"), master_committed, r.number("applied")) {
            (Some("master"), _, _) => "-".to_string(),
            (_, Some(c), Some(a)) => c.saturating_sub(a).to_string(),
            _ => "?".to_string(),
        };
        let last_collapse = match r.get("last_collapse") {
            Some("none") | None => "none since start".to_string(),
            Some(t) => t.parse().map_or_else(|_| t.to_string(), utc),
        };
        rows.push(vec![
            r.node.clone(),
            text("role"),
            text("standing"),
            text("n"),
            format!("{}..={}", text("tlog_first"), text("tlog_last")),
            text("committed"),
            text("applied"),
            lag,
            r.number("tlog_bytes").map_or_else(|| "?".to_string(), size),
            r.number("store_bytes")
                .map_or_else(|| "?".to_string(), size),
            last_collapse,
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| {
            rows.iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    for line in unreachable {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(&match verdict {
        Verdict::Same { index, term } => {
            format!("divergence: none: every node answering has entry {index} in term {term}, the same history up to it\n")
        }
        Verdict::Diverged { index, terms } => {
            let terms: Vec<String> = terms
                .iter()
                .map(|(n, t)| format!("{n}: {}", t.map_or("absent".to_string(), |t| t.to_string())))
                .collect();
            format!("DIVERGED at i = {index}: terms {}\n", terms.join(", "))
        }
        Verdict::NotCompared(why) => format!("divergence: not checked: {why}\n"),
    });
    out
}

/// The store comparison's line.
pub fn render_stores(stores: &Stores) -> String {
    match stores {
        Stores::Same { index, crc, pairs } => format!(
            "stores: the same at i = {index} (checksum {crc}, {pairs} keys) on every node answering\n"
        ),
        Stores::Differ { index, sums } => {
            let sums: Vec<String> = sums.iter().map(|(n, s)| format!("{n}: {s}")).collect();
            format!("STORES DIFFER at i = {index}: checksum:keys {}\n", sums.join(", "))
        }
        Stores::NotCompared(why) => format!("stores: not compared: {why}\n"),
    }
}

/// Runs `--inspect-cluster` (once, or with `watch` until Ctrl-C).
pub async fn run(client: &Client, watch: bool, out: &mut dyn Write) -> Result<(), ActionError> {
    let what = "inspect-cluster";
    let terminal = std::io::stdout().is_terminal();
    loop {
        let (reports, verdict) = gather(client).await;
        let mut text = render(&reports, &verdict);
        let stores = if watch {
            None
        } else {
            let stores = gather_stores(client).await;
            text.push_str(&render_stores(&stores));
            Some(stores)
        };
        if watch {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            text = format!("{} UTC (every 1 s; Ctrl-C ends)\n{text}", utc(now));
            if terminal {
                text.insert_str(0, "\x1b[H\x1b[2J");
            } else {
                text.push('\n');
            }
        }
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| ActionError::write_failed(what, &e))?;
        if !watch {
            if reports.iter().all(|r| r.state.is_err()) {
                return Err(ActionError::of_kind(
                    FailureKind::Unreachable,
                    what,
                    "no node answered (is the cluster running, and are the addresses in the config right?)",
                ));
            }
            if let Verdict::Diverged { index, .. } = verdict {
                return Err(ActionError::new(
                    what,
                    format!("the nodes' tlogs diverge at i = {index}"),
                ));
            }
            if let Some(Stores::Differ { index, .. }) = stores {
                return Err(ActionError::new(
                    what,
                    format!("the nodes' stores differ at i = {index}"),
                ));
            }
            return Ok(());
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(node: &str, lines: &str) -> Report {
        Report {
            node: node.to_string(),
            state: Ok(parse(lines)),
        }
    }

    fn state(first: u64, last: u64, committed: u64, term_at: &str) -> String {
        format!(
            "role=slave\ntlog_first={first}\ntlog_last={last}\ncommitted={committed}\napplied={committed}\nterm_at={term_at}\n"
        )
    }

    #[test]
    fn the_common_index_is_held_and_committed_by_every_node() {
        let reports = vec![
            report("a", &state(1, 120, 118, "")),
            report("b", &state(50, 118, 118, "")),
            report("c", &state(1, 90, 90, "")),
            Report {
                node: "d".into(),
                state: Err("connection refused".into()),
            },
        ];
        assert_eq!(common_index(&reports), Ok(90));
        let gap = vec![
            report("a", &state(100, 120, 120, "")),
            report("b", &state(1, 90, 90, "")),
        ];
        assert!(common_index(&gap)
            .unwrap_err()
            .contains("no entry every node holds"));
        assert!(common_index(&reports[..1]).is_err());
    }

    #[test]
    fn equal_terms_are_one_history_and_different_terms_a_divergence() {
        let same = vec![
            report("a", &state(1, 9, 9, "7:3")),
            report("b", &state(1, 9, 9, "7:3")),
        ];
        assert_eq!(verdict(7, &same), Verdict::Same { index: 7, term: 3 });
        let split = vec![
            report("a", &state(1, 9, 9, "7:3")),
            report("b", &state(1, 9, 9, "7:2")),
        ];
        assert!(matches!(
            verdict(7, &split),
            Verdict::Diverged { index: 7, .. }
        ));
        let absent = vec![
            report("a", &state(1, 9, 9, "7:3")),
            report("b", &state(1, 9, 9, "7:none")),
        ];
        assert!(matches!(verdict(7, &absent), Verdict::Diverged { .. }));
        assert!(render(&split, &verdict(7, &split)).contains("DIVERGED at i = 7: terms a: 3, b: 2"));
    }

    #[test]
    fn stores_compare_at_one_index() {
        let at = |node: &str, f: &str| report(node, &format!("fingerprint={f}\n"));
        assert_eq!(
            compare_stores(&[at("a", "9:0000abcd:4"), at("b", "9:0000abcd:4")]),
            Stores::Same {
                index: 9,
                crc: "0000abcd".into(),
                pairs: 4
            }
        );
        assert!(matches!(
            compare_stores(&[at("a", "9:0000abcd:4"), at("b", "9:0000abce:4")]),
            Stores::Differ { index: 9, .. }
        ));
        assert!(matches!(
            compare_stores(&[at("a", "9:0000abcd:4"), at("b", "8:0000abcd:4")]),
            Stores::NotCompared(why) if why.contains("different applied")
        ));
        let differ = compare_stores(&[at("a", "9:1:4"), at("b", "9:2:4")]);
        assert!(
            render_stores(&differ).contains("STORES DIFFER at i = 9: checksum:keys a: 1:4, b: 2:4")
        );
    }

    #[test]
    fn sizes_and_times_read_as_people_read_them() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(3 << 20), "3.0 MiB");
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
        assert_eq!(utc(1_796_355_296), "2026-12-04 03:34:56");
    }
}
