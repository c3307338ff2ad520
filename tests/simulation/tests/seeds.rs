//! The deterministic simulation in `make test`: many seeds, every promise checked after every
//! step. A failing seed prints the command that replays it with a full trace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use reelay_simulation::{Config, Report, run};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn describe(r: &Report) -> String {
    format!(
        "seed {}: {} jobs {:?}, {} steps, {} crashes, {} stalls, {} inits, {} creates, {} stale observations, {} dead letters, {} outage failures",
        r.seed,
        r.jobs,
        r.states,
        r.steps,
        r.crashes,
        r.stalls,
        r.inits,
        r.creates,
        r.stale_observations,
        r.dead_letters,
        r.outage_failures
    )
}

#[test]
fn every_promise_holds_across_seeds() {
    if let Some(seed) = env_u64("SIM_SEED") {
        let mut config = Config::seed(seed);
        config.trace = true;
        let report = run(config);
        for line in &report.trace {
            println!("{line}");
        }
        for (job, trail) in &report.audits {
            println!("audit of {job}:");
            for line in trail {
                println!("  {line}");
            }
        }
        println!("{}", describe(&report));
        assert!(
            report.ok(),
            "seed {seed} broke a promise:\n{}",
            report.violations.join("\n")
        );
        return;
    }
    let seeds = env_u64("SIM_SEEDS").unwrap_or(2000);
    let first = env_u64("SIM_SEED_START").unwrap_or(0);
    let started = Instant::now();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4) as u64;
    let reports: Vec<Report> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (first..first + seeds)
                        .filter(|s| s % threads == t)
                        .map(|s| run(Config::seed(s)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let failed: Vec<&Report> = reports.iter().filter(|r| !r.ok()).collect();
    let steps: u64 = reports.iter().map(|r| r.steps).sum();
    let jobs: usize = reports.iter().map(|r| r.jobs).sum();
    let crashes: u64 = reports.iter().map(|r| r.crashes).sum();
    let inits: u64 = reports.iter().map(|r| r.inits).sum();
    let stale: u64 = reports.iter().map(|r| r.stale_observations).sum();
    let impostors: u64 = reports.iter().map(|r| r.impostors).sum();
    let refused: u64 = reports.iter().map(|r| r.renders_refused).sum();
    let direct_refused: u64 = reports.iter().map(|r| r.direct_refused).sum();
    let disconnects: u64 = reports.iter().map(|r| r.disconnects).sum();
    let reschedules: u64 = reports.iter().map(|r| r.reschedules).sum();
    let children: usize = reports.iter().map(|r| r.fan_out_children).sum();
    let mut states = std::collections::BTreeMap::<String, usize>::new();
    for r in &reports {
        for (s, n) in &r.states {
            *states.entry(s.clone()).or_default() += n;
        }
    }
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    for r in &reports {
        for (s, n) in &r.reasons {
            *reasons.entry(s.clone()).or_default() += n;
        }
    }
    println!(
        "final states {states:?}; {stale} stale observations recorded; {impostors} sign-ins by another creator refused; {refused} creates of a render not the tenant's refused; {direct_refused} direct posts for drafts-only accounts refused; {disconnects} accounts disconnected; {reschedules} reschedules; {children} jobs shared their batch's first render"
    );
    println!("reasons {reasons:#?}");
    println!(
        "{seeds} seeds, {jobs} jobs, {steps} steps, {crashes} crashes, {inits} inits in {:.1}s; {} failed",
        started.elapsed().as_secs_f64(),
        failed.len()
    );
    for r in failed.iter().take(5) {
        println!("\n{}", describe(r));
        for v in r.violations.iter().take(8) {
            println!("  {v}");
        }
        println!(
            "  replay: SIM_SEED={} cargo test -p reelay-simulation -- --nocapture",
            r.seed
        );
    }
    assert!(
        seeds < 100 || refused > 0,
        "no create named another tenant's render: the ownership scenario did not run"
    );
    assert!(
        failed.is_empty(),
        "{} of {seeds} seeds broke a promise",
        failed.len()
    );
}
