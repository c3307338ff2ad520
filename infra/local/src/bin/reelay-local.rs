//! `make run`: Reelay's whole pipeline on one machine, with a demo batch followed live and a
//! summary checked against the simulators' ground truth. Exits non-zero when a promise breaks
//! (duplicate post, limit exceeded, more than one init in flight) or a job is stuck.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use reelay_domain::{JobState, TenantId};
use reelay_local::client::{ApiClient, seed_tenant};
use reelay_local::demo::{self, DemoPlan};
use reelay_local::progress::{self, Display};
use reelay_local::receiver::Receiver;
use reelay_local::stack::random_suffix;
use reelay_local::summary;
use reelay_local::{Stack, StackOptions, Upstreams};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;

#[derive(Debug, Parser)]
#[command(about = "Reelay locally: simulators, real handlers, a demo batch and its summary")]
struct Args {
    /// Keep serving after the demo, so the API can be tried with curl (Ctrl-C stops).
    #[arg(long)]
    serve: bool,
    /// Simulated seconds per real second, for the simulators and Reelay's limits alike.
    #[arg(long, default_value_t = 60.0)]
    time_scale: f64,
    /// Seconds the demo jobs get to settle before the run fails.
    #[arg(long, default_value_t = 180)]
    deadline: u64,
    /// HTTP port of the API (0: any free port; default 3000 with --serve, else any).
    #[arg(long)]
    port: Option<u16>,
    #[arg(long, default_value = "template.yaml")]
    template: PathBuf,
    /// Name suffix of this run's resources (default: random, so runs never share state).
    #[arg(long)]
    suffix: Option<String>,
    /// Where logs go (`-` for stderr); stdout is the progress display.
    #[arg(long, default_value = ".aws-emulator/run/reelay-local.log")]
    log_file: String,
    /// Run the stack without the demo batch (implies --serve).
    #[arg(long)]
    no_demo: bool,
    #[arg(long, env = "SSEMBLE_API_BASE_URL")]
    ssemble_api_base_url: Option<String>,
    #[arg(long, env = "TIKTOK_API_BASE_URL")]
    tiktok_api_base_url: Option<String>,
    #[arg(long, env = "TIKTOK_AUTH_BASE_URL")]
    tiktok_auth_base_url: Option<String>,
}

fn init_logs(target: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    if target == "-" {
        builder.with_writer(std::io::stderr).init();
    } else {
        if let Some(dir) = std::path::Path::new(target).parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let file = std::fs::File::create(target).with_context(|| format!("opening {target}"))?;
        builder.with_writer(Mutex::new(file)).init();
    }
    Ok(())
}

fn secret_env(name: &str) -> Option<SecretString> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .map(SecretString::from)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logs(&args.log_file)?;
    // The terminal is the progress display: metric lines go to the log file with the rest.
    reelay_aws::metrics::set_sink(|line| tracing::info!(target: "metrics", "{line}"));
    let serve = args.serve || args.no_demo;
    let port = args.port.unwrap_or(if serve { 3000 } else { 0 });

    let mut options = StackOptions::local(&args.template, args.time_scale);
    options.suffix = Some(args.suffix.clone().unwrap_or_else(|| random_suffix("run")));
    options.http_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    options.upstreams = Upstreams {
        ssemble_api_base_url: args.ssemble_api_base_url.clone(),
        tiktok_api_base_url: args.tiktok_api_base_url.clone(),
        tiktok_auth_base_url: args.tiktok_auth_base_url.clone(),
        ssemble_api_key: secret_env("SSEMBLE_API_KEY"),
        tiktok_client_key: std::env::var("TIKTOK_CLIENT_KEY").ok(),
        tiktok_client_secret: secret_env("TIKTOK_CLIENT_SECRET"),
    };
    let scale = options.time_scale;
    let stack = Stack::start(options)
        .await
        .context("starting the local stack")?;
    let up = &stack.wiring.upstream;
    let mut out = Banner::default();
    out.say(format!("==> Reelay is up (clock x{scale})"));
    out.say(format!("    API            {}", stack.api_base_url));
    out.say(format!(
        "    Ssemble        {}{}",
        up.ssemble_api_base_url,
        sim_tag(stack.ssemble.is_some())
    ));
    out.say(format!(
        "    TikTok         {}{}",
        up.tiktok_api_base_url,
        sim_tag(stack.tiktok.is_some())
    ));
    out.say(format!(
        "    table          {}",
        stack.wiring.resources.table
    ));
    out.say(format!(
        "    queues         {}",
        stack.wiring.resources.render_queue_url
    ));
    out.say(format!(
        "                   {}",
        stack.wiring.resources.publish_queue_url
    ));
    out.say(format!("    logs           {}", args.log_file));

    let tenant = TenantId::parse("tenant_demo").map_err(|e| anyhow::anyhow!(e.reason))?;
    let key = seed_tenant(&stack.store, tenant.as_str()).await?;
    out.say(format!(
        "==> tenant {tenant}, API key (shown once): {}",
        key.expose_secret()
    ));
    let client = ApiClient::new(&stack.api_base_url, key.clone())?;

    let mut code = 0;
    if !args.no_demo {
        let deadline = Duration::from_secs(args.deadline);
        code = run_demo(&stack, &client, &tenant, deadline, out).await?;
    }
    if serve {
        print_curl(
            &stack.api_base_url,
            key.expose_secret(),
            &stack.wiring.resources.table,
        );
        println!("==> serving until Ctrl-C");
        stack.serve_until_ctrl_c().await?;
    } else {
        stack.shutdown().await?;
    }
    std::process::exit(code);
}

/// Lines printed before the progress display, kept so a full-screen redraw can repeat them.
#[derive(Debug, Default)]
struct Banner(Vec<String>);

impl Banner {
    fn say(&mut self, line: String) {
        println!("{line}");
        self.0.push(line);
    }
}

fn sim_tag(sim: bool) -> &'static str {
    if sim {
        "  (built-in simulator)"
    } else {
        "  (external)"
    }
}

async fn run_demo(
    stack: &Stack,
    client: &ApiClient,
    tenant: &TenantId,
    deadline: Duration,
    mut out: Banner,
) -> anyhow::Result<i32> {
    let plan = DemoPlan::standard();
    let tag = demo::run_tag();
    // The client's side of webhooks: a receiver on loopback, registered like any endpoint.
    let receiver = Receiver::start().await?;
    let registered = client
        .post("/v1/webhooks", &json!({ "url": receiver.url }), None)
        .await?;
    let secret = registered
        .str("/secret")
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("webhook registration answered {}", registered.status))?;
    out.say(format!("==> webhooks to {} (every event)", receiver.url));
    out.say(format!(
        "==> connecting {} TikTok accounts through OAuth",
        plan.accounts.len()
    ));
    demo::connect_accounts(client, &plan).await?;
    for (account, mode) in &plan.accounts {
        out.say(format!("    {account:<14} connected ({mode})"));
    }
    let started = Instant::now();
    let mut tracked = demo::submit_jobs(client, &plan, &tag).await?;
    out.say(format!(
        "==> submitted {} jobs through POST /v1/jobs",
        tracked.len()
    ));
    if let Some((job, answer)) =
        demo::seed_planned(client, &plan, &tracked, &tag, Duration::from_secs(60)).await?
    {
        out.say(
            "==> POST /api/publish/tiktok (the seed's route, existing requestId) answered:".into(),
        );
        out.say(format!("    {answer}"));
        tracked.push(job);
    }

    let mut display = Display::new(out.0);
    let (observed, deadline_passed) =
        progress::follow(&stack.store, &tracked, &mut display, started, deadline).await?;
    // Let late webhooks and moderation land, so the inspection sees the final picture.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let summary =
        summary::summarize(stack, tenant, observed, started.elapsed(), deadline_passed).await?;
    let published: std::collections::BTreeSet<String> = summary
        .jobs
        .iter()
        .filter(|j| {
            matches!(
                j.observed.state(),
                Some(JobState::PublishComplete | JobState::PubliclyAvailable)
            )
        })
        .map(|j| j.observed.tracked.job_id.clone())
        .collect();
    // The last events may still be on their way: wait a little for every published job's.
    let mut hooks = receiver.report(&secret);
    for _ in 0..50 {
        if published.is_subset(&hooks.published) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        hooks = receiver.report(&secret);
    }
    println!();
    println!("==> summary");
    print!("{}", summary.render());
    let types: Vec<String> = hooks
        .by_type
        .iter()
        .map(|(kind, n)| format!("{n} {kind}"))
        .collect();
    let verified = if hooks.unverified == 0 {
        "every signature verified".to_owned()
    } else {
        format!("{} signature(s) NOT verified", hooks.unverified)
    };
    println!(
        "{:<27}{} events in {} requests ({}), {verified}",
        "webhooks to the client:",
        hooks.by_type.values().sum::<usize>(),
        hooks.requests,
        types.join(", "),
    );
    let mut broken = summary.broken_promises();
    if hooks.unverified > 0 {
        broken.push(format!(
            "{} webhook(s) to the client did not verify",
            hooks.unverified
        ));
    }
    let unannounced = published.difference(&hooks.published).count();
    if unannounced > 0 {
        broken.push(format!(
            "{unannounced} published job(s) without a job.published webhook"
        ));
    }
    if broken.is_empty() {
        println!("==> every promise kept");
        Ok(0)
    } else {
        for b in &broken {
            println!("!!  {b}");
        }
        Ok(1)
    }
}

fn print_curl(api: &str, key: &str, table: &str) {
    println!();
    println!("==> try it (API key above):");
    println!("    export REELAY_API={api} REELAY_KEY={key}");
    println!("    curl -s $REELAY_API/v1/jobs -H \"x-api-key: $REELAY_KEY\"");
    println!(
        "    curl -s $REELAY_API/v1/jobs -H \"x-api-key: $REELAY_KEY\" -H 'content-type: application/json' \\\n      -H \"idempotency-key: $(date +%s)\" -d '{{\"tiktokAccountId\":\"acct_demo_01\",\"source\":{{\"url\":\"https://www.youtube.com/watch?v=curl\",\"start\":0,\"end\":60}},\"post\":{{\"mode\":\"direct\",\"privacyLevel\":\"PUBLIC_TO_EVERYONE\",\"title\":\"from curl\"}}}}'"
    );
    println!("    curl -s $REELAY_API/v1/jobs/<jobId> -H \"x-api-key: $REELAY_KEY\"");
    println!("    curl -s $REELAY_API/v1/accounts/acct_demo_01 -H \"x-api-key: $REELAY_KEY\"");
    println!(
        "    curl -s $REELAY_API/v1/accounts/acct_demo_01/creator-info -H \"x-api-key: $REELAY_KEY\""
    );
    println!("==> more tenants and keys (reelay-admin --help), in another shell:");
    println!("    eval \"$(infra/scripts/aws-emulator.sh env)\"");
    println!("    TABLE_NAME={table} cargo run -q -p reelay-admin -- tenant create my_tenant");
}
