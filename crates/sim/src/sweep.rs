//! Running many seeds: spread over threads, summarised in one line, with
//! the exact command that replays a failing seed.

use crate::run::{run, Report, Scenario};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What a sweep of seeds found.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub seeds_run: u64,
    pub operations_checked: u64,
    pub faults_injected: u64,
    /// Of which: disks wiped.
    pub wipes_injected: u64,
    /// Of which: tlog collapses.
    pub collapses_injected: u64,
    /// Of which: full tlog devices.
    pub disk_fulls_injected: u64,
    pub snapshots_installed: u64,
    pub entries_applied: u64,
    /// The failing runs (without traces), in seed order.
    pub failures: Vec<Report>,
}

impl Summary {
    /// One line: seeds run, operations checked, faults injected, violations.
    pub fn line(&self) -> String {
        format!(
            "sim: {} seeds, {} operations checked, {} entries applied, {} faults injected ({} disks wiped, {} tlog collapses, {} full tlog devices), {} snapshots installed, {} violations",
            self.seeds_run,
            self.operations_checked,
            self.entries_applied,
            self.faults_injected,
            self.wipes_injected,
            self.collapses_injected,
            self.disk_fulls_injected,
            self.snapshots_installed,
            self.failures.len()
        )
    }
}

/// The command that replays `seed` with a readable trace.
pub fn replay_command(seed: u64, voters: usize, ops_per_client: u64) -> String {
    format!("arakoon sim --seed {seed} --nodes {voters} --steps {ops_per_client} --trace")
}

/// Runs seeds `first..first + count` on `threads` threads. Stops handing
/// out new seeds after `max_failures` failures.
pub fn sweep(
    first: u64,
    count: u64,
    scenario: &Scenario,
    threads: usize,
    max_failures: usize,
) -> Summary {
    let next = AtomicU64::new(first);
    let end = first + count;
    let summary = Mutex::new(Summary::default());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let seed = next.fetch_add(1, Ordering::Relaxed);
                if seed >= end {
                    break;
                }
                if summary
                    .lock()
                    .map(|g| g.failures.len() >= max_failures)
                    .unwrap_or(true)
                {
                    break;
                }
                let report = run(seed, scenario, false);
                let Ok(mut sum) = summary.lock() else { break };
                sum.seeds_run += 1;
                sum.operations_checked += report.operations_checked;
                sum.faults_injected += report.faults_injected;
                sum.wipes_injected += report.wipes_injected;
                sum.collapses_injected += report.collapses_injected;
                sum.disk_fulls_injected += report.disk_fulls_injected;
                sum.snapshots_installed += report.snapshots_installed;
                sum.entries_applied += report.entries_applied;
                if !report.violations.is_empty() {
                    sum.failures.push(report);
                }
            });
        }
    });
    let mut summary = summary.into_inner().unwrap_or_default();
    summary.failures.sort_by_key(|r| r.seed);
    summary
}
