//! `make deploy-local`'s demo: the demo batch of `make run`, driven through a *deployed* stack's
//! API URL (template.yaml deployed to the local AWS endpoint, the functions running as Lambda
//! functions there), followed in the stage's table and judged, as `make run` judges, by the
//! simulators' ground truth asked over HTTP. Hosts no function: every move is the deployed
//! stack's. Exits non-zero when a promise breaks, a job is still moving at the deadline, or a
//! job did not end as the demo meant it (published once; the bad source render_failed).
//!
//! The tenant's API key comes from `REELAY_API_KEY` (what `reelay-admin tenant create` printed)
//! and is never printed.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use reelay_aws::DynamoStore;
use reelay_domain::{JobState, TenantId};
use reelay_local::client::ApiClient;
use reelay_local::demo::{self, DemoPlan, Expect};
use reelay_local::progress::{self, Display};
use reelay_local::summary;
use secrecy::SecretString;

#[derive(Debug, Parser)]
#[command(about = "The demo batch of make run, through a deployed stack's API URL")]
struct Args {
    /// The deployed API's public base URL (the stack's `PublicBaseUrl` output).
    #[arg(long, env = "REELAY_API_URL")]
    api_url: String,
    /// The stage's table (the stack's `TableName` output), read to follow the jobs.
    #[arg(long, env = "TABLE_NAME")]
    table: String,
    /// The tenant `reelay-admin tenant create` made (its key in `REELAY_API_KEY`).
    #[arg(long, default_value = "tenant_demo")]
    tenant: String,
    /// The TikTok simulator the stack was deployed against (its inspection API judges).
    #[arg(long, env = "TIKTOK_API_BASE_URL")]
    tiktok_api_base_url: String,
    /// The Ssemble simulator the stack was deployed against.
    #[arg(long, env = "SSEMBLE_API_BASE_URL")]
    ssemble_api_base_url: String,
    /// Seconds the demo jobs get to settle before the run fails (the clock is real: a render
    /// takes the simulator's minute, the reconciler ticks once a minute).
    #[arg(long, default_value_t = 600)]
    deadline: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if std::env::var("AWS_ENDPOINT_URL").map_or(true, |v| v.trim().is_empty()) {
        anyhow::bail!(
            "AWS_ENDPOINT_URL is not set: this follows a stack deployed to a local endpoint"
        );
    }
    let key = std::env::var("REELAY_API_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .map(SecretString::from)
        .context("REELAY_API_KEY is not set: the key reelay-admin tenant create printed")?;
    let tenant = TenantId::parse(args.tenant.clone()).map_err(|e| anyhow::anyhow!(e.reason))?;
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), &args.table);
    let client = ApiClient::new(&args.api_url, key)?;

    let mut banner = vec![
        "==> the deployed stack".to_owned(),
        format!("    API            {}", args.api_url),
        format!("    table          {}", args.table),
        format!(
            "    Ssemble        {}  (simulator)",
            args.ssemble_api_base_url
        ),
        format!(
            "    TikTok         {}  (simulator)",
            args.tiktok_api_base_url
        ),
    ];
    for line in &banner {
        println!("{line}");
    }
    let mut say = |line: String| {
        println!("{line}");
        banner.push(line);
    };

    let plan = DemoPlan::standard();
    let tag = demo::run_tag();
    let t_connect = Instant::now();
    say(format!(
        "==> connecting {} TikTok accounts through OAuth (deployed API → TikTok simulator → callback)",
        plan.accounts.len()
    ));
    demo::connect_accounts(&client, &plan).await?;
    for (account, mode) in &plan.accounts {
        say(format!("    {account:<14} connected ({mode})"));
    }
    say(format!(
        "    connected in {:.1}s",
        t_connect.elapsed().as_secs_f64()
    ));
    let started = Instant::now();
    let mut tracked = demo::submit_jobs(&client, &plan, &tag).await?;
    say(format!(
        "==> submitted {} jobs through POST /v1/jobs",
        tracked.len()
    ));
    if let Some((job, answer)) =
        demo::seed_planned(&client, &plan, &tracked, &tag, Duration::from_secs(120)).await?
    {
        say("==> POST /api/publish/tiktok (the seed's route, existing requestId) answered:".into());
        say(format!("    {answer}"));
        tracked.push(job);
    }

    let deadline = Duration::from_secs(args.deadline);
    let mut display = Display::new(banner);
    let (observed, deadline_passed) =
        progress::follow(&store, &tracked, &mut display, started, deadline).await?;
    // Let late webhooks and moderation land, so the inspection sees the final picture.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let summary = summary::summarize_remote(
        &store,
        &args.tiktok_api_base_url,
        &args.ssemble_api_base_url,
        &tenant,
        observed,
        started.elapsed(),
        deadline_passed,
    )
    .await?;
    println!();
    println!("==> summary (deployed stack)");
    print!("{}", summary.render());
    let mut broken = summary.broken_promises();
    // make run judges promises only; this is a test of the deployed stack as well, so a job
    // must also end as the demo meant it: published (a draft in the inbox), or, for the bad
    // source, render_failed. A stage whose secrets or upstreams are wrong fails here.
    for j in &summary.jobs {
        let o = &j.observed;
        let as_meant = match o.tracked.expect {
            Expect::Publish => o.published() && j.posts == Some(1),
            Expect::RenderFail => o.state() == Some(JobState::RenderFailed),
        };
        if !as_meant {
            broken.push(format!(
                "{} ({}, {}) ended {} ({} post(s)), not as the demo meant it",
                o.tracked.job_id,
                o.tracked.account_id,
                o.tracked.label,
                o.state().map_or("missing", |s| s.as_str()),
                j.posts.map_or("?".into(), |p| p.to_string()),
            ));
        }
    }
    if broken.is_empty() {
        println!("==> every promise kept");
        Ok(())
    } else {
        for b in &broken {
            println!("!!  {b}");
        }
        std::process::exit(1);
    }
}
