//! The simulator's CI runs: many seeds of the default scenario, replay
//! determinism, and (with `--features broken`) proof that each deliberately
//! broken consensus variant is caught.

use sim::run::{run, Scenario};
use sim::sweep::{replay_command, sweep};

/// Seeds of the default scenario per CI run; `SIM_SEEDS` overrides (the
/// long mode before a release: `SIM_SEEDS=100000`).
const DEFAULT_SEEDS: u64 = 2_000;
const OPS_PER_CLIENT: u64 = 25;

fn seeds() -> u64 {
    std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEEDS)
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

#[test]
fn default_scenario_has_no_violations() {
    let scenario = Scenario::standard(3, OPS_PER_CLIENT);
    let started = std::time::Instant::now();
    let summary = sweep(1, seeds(), &scenario, threads(), 5);
    println!(
        "{} in {:.1} s",
        summary.line(),
        started.elapsed().as_secs_f64()
    );
    for f in &summary.failures {
        println!("seed {} failed: {}", f.seed, f.violations.join(" | "));
        println!("  replay: {}", replay_command(f.seed, 3, OPS_PER_CLIENT));
    }
    assert!(summary.failures.is_empty(), "{}", summary.line());
    assert!(
        summary.operations_checked > summary.seeds_run * 20,
        "the workload barely ran"
    );
    assert!(
        summary.faults_injected > summary.seeds_run,
        "faults were barely injected"
    );
}

#[test]
fn five_node_cluster_has_no_violations() {
    let scenario = Scenario::standard(5, OPS_PER_CLIENT);
    let summary = sweep(1, seeds() / 10, &scenario, threads(), 5);
    println!("5 nodes: {}", summary.line());
    for f in &summary.failures {
        println!("seed {} failed: {}", f.seed, f.violations.join(" | "));
        println!("  replay: {}", replay_command(f.seed, 5, OPS_PER_CLIENT));
    }
    assert!(summary.failures.is_empty(), "{}", summary.line());
}

/// Arakoon's two-datacenter layout: two full nodes and a witness (a voter
/// that never serves as master); and five voters with two witnesses. Every
/// fault of the default scenario, the witness crashed and wiped too: the
/// checks hold, no witness serves a client, and the cluster recovers even
/// when a witness alone holds the latest entries (it takes mastership to
/// hand them to a full node).
#[test]
fn clusters_with_witnesses_have_no_violations() {
    for (voters, witnesses) in [(3, 1), (5, 2)] {
        let mut scenario = Scenario::standard(voters, OPS_PER_CLIENT);
        scenario.witnesses = witnesses;
        let summary = sweep(1, seeds() / 10, &scenario, threads(), 5);
        println!("{voters} voters, {witnesses} witnesses: {}", summary.line());
        for f in &summary.failures {
            println!("seed {} failed: {}", f.seed, f.violations.join(" | "));
        }
        assert!(summary.failures.is_empty(), "{}", summary.line());
        assert!(summary.entries_applied > 0);
    }
}

#[test]
fn one_node_cluster_works() {
    let mut scenario = Scenario::standard(1, OPS_PER_CLIENT);
    scenario.faults.partitions = false;
    let summary = sweep(1, 50, &scenario, threads(), 5);
    for f in &summary.failures {
        println!("seed {} failed: {}", f.seed, f.violations.join(" | "));
    }
    assert!(summary.failures.is_empty(), "{}", summary.line());
    assert!(summary.entries_applied > 0);
}

#[test]
fn same_seed_replays_byte_for_byte() {
    let scenario = Scenario::standard(3, OPS_PER_CLIENT);
    for seed in [3, 77] {
        let a = run(seed, &scenario, true);
        let b = run(seed, &scenario, true);
        assert!(!a.trace.is_empty());
        assert_eq!(a.trace, b.trace, "seed {seed} did not replay identically");
        assert_eq!(a.operations_checked, b.operations_checked);
    }
    let c = run(4, &scenario, true);
    assert_ne!(
        run(3, &scenario, true).trace,
        c.trace,
        "different seeds, same run"
    );
}

#[cfg(feature = "broken")]
mod broken {
    use super::*;
    use consensus::Broken;

    /// Runs seeds until one shows a *safety* violation (a liveness failure
    /// would not show that the checks see the bug); the bug must be found
    /// within `limit` seeds.
    fn caught_within(bug: Broken, limit: u64) -> (u64, String) {
        let mut scenario = Scenario::standard(3, OPS_PER_CLIENT);
        scenario.broken = Some(bug);
        caught_in(scenario, &format!("{bug:?}"), limit)
    }

    /// The same for a broken variant of the replica layer (the driver both
    /// the node and the simulator run).
    fn replica_bug_caught_within(bug: replica::Broken, limit: u64) -> (u64, String) {
        let mut scenario = Scenario::standard(3, OPS_PER_CLIENT);
        scenario.replica_broken = Some(bug);
        caught_in(scenario, &format!("{bug:?}"), limit)
    }

    fn caught_in(scenario: Scenario, bug: &str, limit: u64) -> (u64, String) {
        // Stop early once some seeds failed (one safety violation is enough;
        // a few failing seeds may show only liveness, or a history the
        // checker could not decide: neither counts as caught).
        let summary = sweep(1, limit, &scenario, threads(), 50);
        let caught = summary.failures.iter().find_map(|f| {
            f.violations
                .iter()
                .find(|v| !v.contains("liveness") && !v.contains("UNKNOWN"))
                .map(|v| (f.seed, v.clone()))
        });
        let (seed, violation) = caught.unwrap_or_else(|| {
            panic!(
                "{bug}: no safety violation in {limit} seeds: {}",
                summary.line()
            )
        });
        println!("{bug}: caught by seed {seed}: {violation}");
        (seed, violation)
    }

    #[test]
    fn commit_on_minority_is_caught() {
        caught_within(Broken::CommitOnMinority, 2_000);
    }

    #[test]
    fn read_without_lease_is_caught() {
        caught_within(Broken::ReadWithoutLease, 2_000);
    }

    #[test]
    fn vote_for_stale_candidate_is_caught() {
        caught_within(Broken::VoteForStaleCandidate, 2_000);
    }

    #[test]
    fn ack_before_fsync_is_caught() {
        caught_within(Broken::AckBeforeFsync, 2_000);
    }

    /// A node whose disk was wiped votes at once (it trusts its empty
    /// state): the wipe fault of the default scenario must expose it.
    #[test]
    fn wiped_node_votes_is_caught() {
        caught_within(Broken::WipedNodeVotes, 2_000);
    }

    /// A witness that becomes master serves as one (lease, proposals, no
    /// hand-over): some seed makes it master, and the observer sees it
    /// take a client update or serve a read.
    #[test]
    fn a_witness_that_serves_is_caught() {
        let mut scenario = Scenario::standard(3, OPS_PER_CLIENT);
        scenario.witnesses = 1;
        scenario.broken = Some(Broken::WitnessServes);
        let (_, violation) = caught_in(scenario, "WitnessServes", 500);
        assert!(violation.contains("witness"), "{violation}");
    }

    /// The replica answers a store-dependent update (`test_and_set`,
    /// `delete`, an asserted sequence) at commit, from the store before the
    /// earlier committed entries are applied.
    #[test]
    fn answering_store_dependent_updates_at_commit_is_caught() {
        replica_bug_caught_within(replica::Broken::AnswerStoreDependentAtCommit, 2_000);
    }

    /// Collapse removes tlog entries the store has applied but not made
    /// durable: a crash then leaves a node that cannot restart (its store
    /// is behind its tlog's start).
    #[test]
    fn collapsing_beyond_the_durable_store_is_caught() {
        replica_bug_caught_within(replica::Broken::CollapseBeyondDurable, 2_000);
    }

    /// A node on a full tlog device reports the entries its tlog refused
    /// as synced: it acknowledges (or, as master, counts itself for) what
    /// its disk does not hold.
    #[test]
    fn acknowledging_entries_the_full_disk_refused_is_caught() {
        let (_, violation) = replica_bug_caught_within(replica::Broken::AckHeldEntries, 2_000);
        assert!(violation.contains("counted as durable"), "{violation}");
    }

    /// The replica publishes a lease a lease period longer than the core's.
    #[test]
    fn a_published_lease_longer_than_the_core_allows_is_caught() {
        replica_bug_caught_within(replica::Broken::LeaseTooLong, 2_000);
    }
}
