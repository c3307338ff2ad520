//! Replays one seed and prints its whole trace (every step, every upstream call) and every job's
//! audit trail: `cargo run -p reelay-simulation --example trace -- <seed> [max steps]`.

use reelay_simulation::{Config, run};

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(seed) = args.next().and_then(|s| s.parse().ok()) else {
        eprintln!("usage: trace <seed> [max steps]");
        std::process::exit(2);
    };
    let mut config = Config::seed(seed);
    config.trace = true;
    if let Some(steps) = args.next().and_then(|s| s.parse().ok()) {
        config.max_steps = steps;
    }
    let report = run(config);
    for line in &report.trace {
        println!("{line}");
    }
    for (job, trail) in &report.audits {
        println!("audit of {job}:");
        for line in trail {
            println!("    {line}");
        }
    }
    println!(
        "seed {}: {} jobs {:?}, {} steps",
        report.seed, report.jobs, report.states, report.steps
    );
    for v in &report.violations {
        println!("  {v}");
    }
    if !report.ok() {
        std::process::exit(1);
    }
}
