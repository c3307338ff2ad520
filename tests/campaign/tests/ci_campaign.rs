//! The CI-sized fault campaign: 60 jobs over 50 accounts (`CampaignConfig::ci`) through the
//! whole local stack with upstream faults, kills at step boundaries (deliberately after TikTok accepted an
//! init and before Reelay stored it) and one restart of the campaign's own local AWS endpoint.
//! Every assertion reads the simulators' ground truth or the table. Needs only what
//! `infra/scripts/aws-emulator.sh install` provides (the campaign starts its own MiniStack).
//!
//! It fails only when a promise breaks, never because the machine was slow: the chaos phase
//! lasts until it did what it claims (bounded), the drain waits until the run is quiet (bounded),
//! and a job still moving with a next check when the drain ends is reported as unsettled, not
//! judged. That every job settles within bounded simulated time is the deterministic
//! simulation's proof (`tests/simulation`). The outer bound below only guards against a hang.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use reelay_campaign::logs::{self, LogScan};
use reelay_campaign::{CampaignConfig, run};
use reelay_local::kill::INIT_ACCEPTED;

/// A hang guard, not a verdict: the campaign's own bounds (chaos at most 4 min, drain at most
/// 5 min, plus setup) end it long before this on any machine that makes progress at all.
const HANG_GUARD: Duration = Duration::from_secs(40 * 60);

/// Worker stack size: a debug build keeps every nested future's temporaries on the stack, and
/// the publish path alone needs about 1.7 MiB of tokio's default 2 MiB (Lambda runs release
/// builds). Two workers, as on the CI machine's two cores.
const WORKER_STACK: usize = 8 * 1024 * 1024;

#[test]
fn ci_campaign_keeps_every_promise() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(WORKER_STACK)
        .enable_all()
        .build()
        .unwrap()
        .block_on(campaign());
}

async fn campaign() {
    let run_dir = std::env::temp_dir().join(format!("reelay-ci-campaign-{}", std::process::id()));
    let mut config = CampaignConfig::ci(run_dir.clone());
    if let Some(jobs) = std::env::var("REELAY_CAMPAIGN_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        config.jobs = jobs;
    }
    let scan = LogScan::new(&config.canary, None).unwrap();
    logs::install(scan.clone(), "trace").unwrap();
    let started = Instant::now();
    let report = tokio::time::timeout(HANG_GUARD, run(config, Some(scan.clone())))
        .await
        .expect("the campaign did not hang")
        .expect("the campaign ran");
    println!("{}", report.render());
    let _ = std::fs::remove_dir_all(&run_dir);

    // The campaign did what it claims, or its verdict proves nothing.
    assert!(
        report.kills_at(INIT_ACCEPTED) > 0,
        "the init-accepted kill point was hit"
    );
    assert!(
        report.total_kills() > report.kills_at(INIT_ACCEPTED),
        "other step boundaries were hit too"
    );
    assert!(
        report.faults.len() >= 10,
        "many fault kinds injected: {:?}",
        report.faults
    );
    let restart = report.restart.as_ref().expect("the endpoint was restarted");
    assert!(restart.downtime.is_some(), "restart: {:?}", restart.error);
    assert!(scan.lines() > 1000, "the log scan saw the run's lines");
    assert!(
        report.accepted >= report.jobs_planned * 9 / 10,
        "most jobs accepted"
    );
    assert!(report.published > 0, "jobs were published");

    // The promises.
    assert_eq!(
        report.duplicate_posts, 0,
        "duplicates: {:?}",
        report.duplicate_lines
    );
    assert!(
        report.missing.is_empty(),
        "accepted but absent: {:?}",
        report.missing
    );
    assert!(
        report.invisible.is_empty(),
        "invisible jobs (nothing will move them): {:?}",
        report.invisible
    );
    assert!(report.churn.is_empty(), "churn: {:?}", report.churn);
    assert!(
        report.ahead.is_empty(),
        "jobs claiming more than TikTok did: {:?}",
        report.ahead
    );
    assert_eq!(
        report.tiktok_violations, 0,
        "{:?}",
        report.tiktok_violation_lines
    );
    assert_eq!(report.ssemble_violations, 0);
    assert!(report.max_inits_in_flight <= 1);
    assert!(
        report.audit_missing.is_empty(),
        "{:?}",
        report.audit_missing
    );
    assert_eq!(scan.hits(), 0, "canary in logs: {:?}", scan.samples());
    assert_eq!(report.foreign_publishes, 0);
    assert!(report.broken().is_empty(), "{:?}", report.broken());
    println!(
        "ci campaign took {:.1}s; {} job(s) unsettled when the drain ended (reported, not judged)",
        started.elapsed().as_secs_f64(),
        report.unsettled.len()
    );
}
