fn main() {
    let seed: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let scenario = sim::run::Scenario::standard(3, 25);
    let t = std::time::Instant::now();
    let r = sim::run::run(seed, &scenario, std::env::args().nth(2).is_some());
    for l in &r.trace {
        println!("{l}");
    }
    println!(
        "seed {} ops {} faults {} applied {} masters {} reads {} simtime {:.1}s wall {:?}",
        r.seed,
        r.operations_checked,
        r.faults_injected,
        r.entries_applied,
        r.master_changes,
        r.consistent_reads,
        r.sim_time_ns as f64 / 1e9,
        t.elapsed()
    );
    for v in &r.violations {
        println!("VIOLATION {v}");
    }
}
