//! `reelay-bench-micro`: prints the micro benchmarks' figures as one table (see README.md).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use reelay_bench_micro::report::{self, Row};
use std::time::Duration;

use reelay_bench_micro::{bill, coldstart, cost, lambdalog, pubmem, reconcile, stackrun};
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

#[derive(Debug, Parser)]
#[command(
    about = "Reelay micro benchmarks: cost per job, cold start and footprint, reconciler scaling, publisher memory"
)]
struct Args {
    /// template.yaml (resources are provisioned from it under fresh name suffixes).
    #[arg(long, global = true)]
    template: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// 4. Process start → first Runtime API poll, bootstrap size and peak RSS, against hello-world.
    Coldstart(ColdstartArgs),
    /// 5. One reconciler run over 100k jobs with 1 % due against 1k jobs all due.
    Reconciler(ReconcilerArgs),
    /// 3. Per published job: DynamoDB units, SQS requests, Lambda invocations and GB-s, $ per 1,000;
    ///    then the whole bill a day at 100, 1,000 and 10,000 accounts.
    Cost(CostArgs),
    /// 6. Peak RSS of the stack child publishing one 500 MiB clip, against a 2 MiB one.
    PublisherMemory(PublisherMemoryArgs),
    /// Every benchmark in turn (3, 4, 5, 6), one table.
    All(AllArgs),
    /// Internal: one timed, metered stack run; prints its figures as JSON (used by cost and
    /// publisher-memory, which run it as a child process).
    #[command(hide = true)]
    StackRun(StackRunArgs),
}

#[derive(Debug, clap::Args)]
struct CostArgs {
    #[arg(long, default_value_t = 20)]
    jobs: usize,
    #[arg(long, default_value_t = 4)]
    accounts: usize,
    #[arg(long, default_value_t = 300)]
    deadline_s: u64,
}

#[derive(Debug, clap::Args)]
struct PublisherMemoryArgs {
    #[arg(long, default_value_t = 500)]
    clip_mib: u64,
    #[arg(long, default_value_t = 600)]
    deadline_s: u64,
}

#[derive(Debug, clap::Args)]
struct AllArgs {
    #[command(flatten)]
    coldstart: ColdstartArgs,
    #[command(flatten)]
    reconciler: ReconcilerArgs,
    #[command(flatten)]
    cost: CostArgs,
    #[arg(long, default_value_t = 500)]
    clip_mib: u64,
}

#[derive(Debug, clap::Args)]
struct StackRunArgs {
    #[arg(long)]
    jobs: usize,
    #[arg(long)]
    accounts: usize,
    #[arg(long)]
    clip_bytes: u64,
    #[arg(long)]
    deadline_s: u64,
    #[arg(long, default_value_t = 60.0)]
    time_scale: f64,
}

#[derive(Debug, Clone, clap::Args)]
struct ColdstartArgs {
    /// cargo-lambda's output directory: `<dir>/<function>/bootstrap`.
    #[arg(long)]
    bootstraps: Option<PathBuf>,
    #[arg(long, default_value_t = 15)]
    runs: usize,
}

#[derive(Debug, Clone, clap::Args)]
struct ReconcilerArgs {
    /// Jobs in the large table.
    #[arg(long, default_value_t = 100_000)]
    table_jobs: usize,
    #[arg(long, default_value_t = 1_000)]
    due: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let template = args
        .template
        .clone()
        .unwrap_or_else(|| workspace_root().join("template.yaml"));
    // The harness' own messages go to stderr; a second layer counts what the functions would log
    // on Lambda (only inside their invocations, at the template's level: see lambdalog).
    let lambda_level = reelay_template::Template::from_path(&template)
        .map(|t| lambdalog::app_log_level(&t))
        .unwrap_or(tracing::level_filters::LevelFilter::INFO);
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                        tracing_subscriber::EnvFilter::new("warn,reelay_bench_micro=info")
                    }),
                ),
        )
        .with(lambdalog::layer(lambda_level))
        .init();
    let started = std::time::Instant::now();
    let rows: Vec<Row> = match args.command {
        Command::Coldstart(a) => coldstart_rows(a, &template).await?,
        Command::Reconciler(a) => reconciler_rows(a, &template).await?,
        Command::Cost(a) => cost_rows(a, &template).await?,
        Command::PublisherMemory(a) => {
            pubmem::run(&template, a.clip_mib, Duration::from_secs(a.deadline_s))
                .await
                .context("publisher memory benchmark")?
        }
        Command::All(a) => {
            let mut rows = cost_rows(a.cost, &template).await?;
            rows.extend(coldstart_rows(a.coldstart, &template).await?);
            rows.extend(reconciler_rows(a.reconciler, &template).await?);
            rows.extend(
                pubmem::run(&template, a.clip_mib, Duration::from_secs(600))
                    .await
                    .context("publisher memory benchmark")?,
            );
            rows
        }
        Command::StackRun(a) => {
            let result = stackrun::run(&stackrun::Workload {
                template,
                accounts: a.accounts.max(1),
                jobs: a.jobs,
                clip_bytes: a.clip_bytes,
                time_scale: a.time_scale,
                deadline: Duration::from_secs(a.deadline_s),
            })
            .await
            .context("stack run")?;
            // The functions print their own lines (metrics) to stdout; the answer is the marked one.
            println!(
                "{} {}",
                pubmem::RESULT_MARKER,
                serde_json::to_string(&result)?
            );
            return Ok(());
        }
    };
    println!(
        "reelay-bench-micro — {} — {} cores — took {:.0} s",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        started.elapsed().as_secs_f64()
    );
    print!("{}", report::render(&rows));
    Ok(())
}

async fn coldstart_rows(a: ColdstartArgs, template: &std::path::Path) -> anyhow::Result<Vec<Row>> {
    coldstart::run(&coldstart::Options {
        bootstraps: a
            .bootstraps
            .unwrap_or_else(|| workspace_root().join("target/sam/lambda")),
        runs: a.runs,
        template: template.to_owned(),
    })
    .await
    .context("cold start benchmark")
}

async fn reconciler_rows(
    a: ReconcilerArgs,
    template: &std::path::Path,
) -> anyhow::Result<Vec<Row>> {
    reconcile::run(&reconcile::Options {
        template: template.to_owned(),
        large: a.table_jobs,
        due: a.due,
    })
    .await
    .context("reconciler benchmark")
}

async fn cost_rows(a: CostArgs, template: &std::path::Path) -> anyhow::Result<Vec<Row>> {
    let result = pubmem::child_run(
        template,
        a.jobs,
        a.accounts,
        2 * 1024 * 1024,
        Duration::from_secs(a.deadline_s),
    )
    .await
    .context("cost benchmark")?;
    let params = format!(
        "{} direct posts over {} accounts through the whole local stack (MiniStack + simulators, clock ×60, 2 MiB clips); every AWS call metered",
        a.jobs, a.accounts
    );
    let parsed = reelay_template::Template::from_path(template)
        .with_context(|| format!("reading {}", template.display()))?;
    let mut rows = cost::rows(&result, &params);
    rows.extend(reelay_bench_micro::ssemble_reads::rows(&result));
    rows.extend(bill::rows(&result, &parsed).context("whole-bill model")?);
    Ok(rows)
}
