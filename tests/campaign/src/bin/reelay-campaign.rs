//! The big fault campaign (default 2,000 jobs across 160 accounts): prints the report and exits
//! non-zero if a promise is broken or the campaign did not exercise what it claims.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use reelay_campaign::logs::{self, LogScan};
use reelay_campaign::{CampaignConfig, FaultMix, run};

#[derive(Debug, Parser)]
#[command(about = "Reelay's fault-injection campaign against the local stack")]
struct Args {
    /// Start from the CI-sized preset instead of the big one.
    #[arg(long)]
    ci: bool,
    #[arg(long)]
    jobs: Option<usize>,
    #[arg(long)]
    accounts: Option<usize>,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    time_scale: Option<f64>,
    /// Ssemble account tier for the simulator and Reelay's budgets: standard (100/h, 1,000/day)
    /// or higher (2,000/h, 20,000/day). Default: the preset's (CI higher, big standard).
    #[arg(long)]
    ssemble_tier: Option<String>,
    /// Most seconds the drain waits for the run to be quiet (what still moves then is reported
    /// as unsettled, not judged).
    #[arg(long)]
    drain: Option<u64>,
    /// Minimum seconds of faults and kills.
    #[arg(long)]
    chaos: Option<u64>,
    /// Most seconds of faults and kills (the chaos phase goes on past `--chaos` until every kill
    /// point and ten fault kinds were hit).
    #[arg(long)]
    chaos_max: Option<u64>,
    #[arg(long)]
    kill_probability: Option<f64>,
    #[arg(long)]
    init_kill_probability: Option<f64>,
    /// Seconds into the chaos phase for the endpoint restart.
    #[arg(long)]
    restart_after: Option<u64>,
    #[arg(long)]
    no_restart: bool,
    #[arg(long)]
    no_faults: bool,
    /// Share of jobs whose source Ssemble fails to render (1.0: none renders, so no init
    /// reaches TikTok and the run must top itself up to exercise the init kill).
    #[arg(long)]
    bad_source_share: Option<f64>,
    /// The level every log line is captured and scanned at.
    #[arg(long, default_value = "trace")]
    log_filter: String,
    /// Also keep every log line in this file.
    #[arg(long)]
    log_file: Option<PathBuf>,
    /// Where the private MiniStack lives (default: a fresh temp dir).
    #[arg(long)]
    run_dir: Option<PathBuf>,
}

/// Worker stack size: the campaign runs the dev profile (debug assertions on), whose nested
/// futures keep their temporaries on the stack; the publish path alone needs about 1.7 MiB of
/// tokio's default 2 MiB.
const WORKER_STACK: usize = 8 * 1024 * 1024;

fn main() -> ExitCode {
    let args = Args::parse();
    match tokio::runtime::Builder::new_multi_thread()
        .thread_stack_size(WORKER_STACK)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(campaign(args)),
        Err(e) => {
            eprintln!("runtime: {e}");
            ExitCode::from(2)
        }
    }
}

async fn campaign(args: Args) -> ExitCode {
    let run_dir = args.run_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("reelay-campaign-{}", std::process::id()))
    });
    let mut c = if args.ci {
        CampaignConfig::ci(run_dir)
    } else {
        CampaignConfig::big(run_dir)
    };
    if let Some(v) = args.jobs {
        c.jobs = v;
    }
    if let Some(v) = args.accounts {
        c.accounts = v;
    }
    if let Some(v) = args.seed {
        c.seed = v;
    }
    if let Some(v) = args.time_scale {
        c.time_scale = v;
    }
    if let Some(v) = args.bad_source_share {
        c.bad_source_share = v;
    }
    match args.ssemble_tier.as_deref() {
        None => {}
        Some("standard") => c.ssemble_tier = ssemble_sim::Tier::STANDARD,
        Some("higher") => c.ssemble_tier = ssemble_sim::Tier::HIGHER,
        Some(other) => {
            eprintln!("--ssemble-tier must be standard or higher, got {other:?}");
            return ExitCode::from(2);
        }
    }
    if let Some(v) = args.drain {
        c.drain = Duration::from_secs(v);
    }
    if let Some(v) = args.chaos {
        c.chaos = Duration::from_secs(v);
        c.chaos_max = c.chaos_max.max(c.chaos);
    }
    if let Some(v) = args.chaos_max {
        c.chaos_max = Duration::from_secs(v);
    }
    if let Some(v) = args.kill_probability {
        c.kill_probability = v;
    }
    if let Some(v) = args.init_kill_probability {
        c.init_kill_probability = v;
    }
    if let Some(v) = args.restart_after {
        c.restart_after = Some(Duration::from_secs(v));
    }
    if args.no_restart {
        c.restart_after = None;
    }
    if args.no_faults {
        c.faults = FaultMix::none();
    }
    let scan = match LogScan::new(&c.canary, args.log_file.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = logs::install(scan.clone(), &args.log_filter) {
        eprintln!("{e}");
        return ExitCode::from(2);
    }
    eprintln!(
        "campaign: {} jobs, {} accounts, seed {}, clock ×{}, logs scanned at `{}`",
        c.jobs, c.accounts, c.seed, c.time_scale, args.log_filter
    );
    let report = match run(c, Some(scan.clone())).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("campaign failed to run: {e}");
            return ExitCode::from(2);
        }
    };
    scan.flush();
    println!("{}", report.render());
    let broken = report.broken();
    let missing = report.not_exercised();
    if !missing.is_empty() {
        println!("campaign did not exercise: {}", missing.join("; "));
    }
    if broken.is_empty() && missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
