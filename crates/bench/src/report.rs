//! What a scenario measured: counts, errors by kind, latency percentiles
//! from an HDR histogram; printed as one line for people or one JSON
//! object per scenario.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Longest latency the histogram holds, in µs (larger ones are clamped to
/// it and still counted).
pub const LATENCY_US_MAX: u64 = 3_600 * 1_000_000;
/// Significant decimal digits of the histogram (0.1 % resolution).
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;
/// Error messages kept per scenario, as samples (all are counted).
pub const ERROR_SAMPLES_MAX: usize = 5;

/// Latency percentiles of the successful operations, in µs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

/// One scenario's result: what `--json` prints, one object per line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    /// "arakoon" or "etcd".
    pub target: String,
    pub scenario: String,
    /// Of reads: "consistent", "at-least", "no-guarantee".
    pub consistency: String,
    pub clients: usize,
    /// Operations sent (successful + failed).
    pub ops: u64,
    /// Operations answered successfully (a `get` of a missing key included,
    /// counted in `missing` too).
    pub ok: u64,
    pub errors: u64,
    /// Reads of a key that had no value.
    pub missing: u64,
    pub seconds: f64,
    /// Successful operations per second of wall time.
    pub ops_per_sec: f64,
    pub latency_us: Latency,
    pub value_size: usize,
    pub key_size: usize,
    pub keys: u64,
    /// Failed operations by kind ("timeout", "not_master", …).
    pub error_kinds: BTreeMap<String, u64>,
    /// The first few error messages.
    pub error_samples: Vec<String>,
}

/// Why an operation failed: a short kind to count by, and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    pub kind: String,
    pub message: String,
}

impl OpError {
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> OpError {
        OpError {
            kind: kind.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// Counts of one client (or of all, merged).
#[derive(Debug, Clone)]
pub struct Tally {
    latency: Histogram<u64>,
    pub ok: u64,
    pub errors: u64,
    pub missing: u64,
    pub error_kinds: BTreeMap<String, u64>,
    pub error_samples: Vec<String>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally::new()
    }
}

impl Tally {
    pub fn new() -> Tally {
        // The bounds are constants that the crate accepts (checked by the
        // tests), so this cannot fail at run time.
        let latency = Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_DIGITS)
            .unwrap_or_else(|e| panic!("histogram bounds are constants: {e}"));
        Tally {
            latency,
            ok: 0,
            errors: 0,
            missing: 0,
            error_kinds: BTreeMap::new(),
            error_samples: Vec::new(),
        }
    }

    pub fn record_ok(&mut self, latency: Duration, missing: bool) {
        let us = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, LATENCY_US_MAX);
        self.latency.saturating_record(us);
        self.ok += 1;
        if missing {
            self.missing += 1;
        }
    }

    pub fn record_error(&mut self, error: OpError) {
        self.errors += 1;
        *self.error_kinds.entry(error.kind.clone()).or_insert(0) += 1;
        if self.error_samples.len() < ERROR_SAMPLES_MAX {
            self.error_samples.push(error.to_string());
        }
    }

    pub fn merge(&mut self, other: &Tally) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.ok += other.ok;
        self.errors += other.errors;
        self.missing += other.missing;
        for (kind, n) in &other.error_kinds {
            *self.error_kinds.entry(kind.clone()).or_insert(0) += n;
        }
        for sample in &other.error_samples {
            if self.error_samples.len() < ERROR_SAMPLES_MAX {
                self.error_samples.push(sample.clone());
            }
        }
    }

    pub fn latency(&self) -> Latency {
        let h = &self.latency;
        if h.is_empty() {
            return Latency {
                p50: 0,
                p99: 0,
                p999: 0,
                max: 0,
                mean: 0.0,
            };
        }
        Latency {
            p50: h.value_at_quantile(0.50),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// `µs` as a short human figure: "850µs", "1.25ms", "2.1s".
pub fn human_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1e3)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

/// One line per scenario, for people.
pub fn print_human(report: &ScenarioReport, out: &mut dyn Write) -> std::io::Result<()> {
    let l = report.latency_us;
    write!(
        out,
        "{:<9} {:<8} clients {:>4}  ops {:>8}  errors {:>6}  {:>10.0} ops/s  p50 {:>8}  p99 {:>8}  p999 {:>8}  max {:>8}",
        report.scenario,
        report.target,
        report.clients,
        report.ok,
        report.errors,
        report.ops_per_sec,
        human_us(l.p50),
        human_us(l.p99),
        human_us(l.p999),
        human_us(l.max),
    )?;
    if report.missing > 0 {
        write!(out, "  missing {}", report.missing)?;
    }
    writeln!(out)?;
    for (kind, n) in &report.error_kinds {
        writeln!(out, "    {n} × {kind}")?;
    }
    for sample in &report.error_samples {
        writeln!(out, "    e.g. {sample}")?;
    }
    Ok(())
}

/// One JSON object on one line.
pub fn print_json(report: &ScenarioReport, out: &mut dyn Write) -> std::io::Result<()> {
    let line = serde_json::to_string(report).map_err(std::io::Error::other)?;
    writeln!(out, "{line}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_errors_are_counted() {
        let mut a = Tally::new();
        for us in 1..=1000u64 {
            a.record_ok(Duration::from_micros(us), us % 10 == 0);
        }
        let mut b = Tally::new();
        for i in 0..7 {
            b.record_error(OpError::new("timeout", format!("op {i}")));
        }
        b.record_ok(Duration::from_secs(7200), false);
        a.merge(&b);
        assert_eq!(a.ok, 1001);
        assert_eq!(a.missing, 100);
        assert_eq!(a.errors, 7);
        assert_eq!(a.error_kinds["timeout"], 7);
        assert_eq!(a.error_samples.len(), ERROR_SAMPLES_MAX);
        let l = a.latency();
        assert!((495..=505).contains(&l.p50), "{l:?}");
        assert!((985..=1000).contains(&l.p99), "{l:?}");
        // Clamped, not lost.
        assert!(l.max >= LATENCY_US_MAX * 999 / 1000, "{l:?}");
    }

    #[test]
    fn human_figures() {
        assert_eq!(human_us(850), "850µs");
        assert_eq!(human_us(1250), "1.25ms");
        assert_eq!(human_us(2_100_000), "2.10s");
    }
}
