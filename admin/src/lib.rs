//! `reelay-admin`: what an operator does to a stage without writing DynamoDB items by hand —
//! create tenants, issue, list, rotate and revoke their API keys, list accounts with their
//! health and budgets, list jobs by state across tenants, read a job's record, cancel or retry
//! a job as the operator, redrive a dead-letter queue, set the stage's own secrets, move
//! account tokens from their old per-account secrets into the token table, and run the
//! reconciler once, now.
//!
//! Every command is the domain's use case over the stage's table (`reelay-<stage>`, or
//! `--table`); the AWS SDK's own configuration picks the account, region and endpoint
//! (`AWS_ENDPOINT_URL` for the local stack). A new key is printed once, alone on stdout, so a
//! script can capture it; everything else a command says goes to the writer it is given.

pub mod dlq;

use std::io::{BufRead, Write};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use reelay_aws::secrets::put_stage_secret;
use reelay_aws::{
    DynamoStore, DynamoTokenVault, SecretDeletion, SqsWorkQueue, SsembleSecret, SystemClock,
    TikTokAppSecret,
};
use reelay_domain::ports::{
    AccountStore, Adapters, Clock, JobFilter, JobStore, SecretError, StoreError, TenantStore,
};
use reelay_domain::tenant::{ApiKey, IssuedKey};
use reelay_domain::upstream::Unwired;
use reelay_domain::usecase::TenantError;
use reelay_domain::usecase::tenants;
use reelay_domain::usecase::{Command as JobAction, CommandError, Core, tenant_job};
use reelay_domain::{AccountId, Actor, IdError, Job, JobId, JobState, TenantId, UtcTime};
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

/// Default overlap of a rotation: a day for clients to switch to the new key.
pub const DEFAULT_OVERLAP_HOURS: u64 = 24;

#[derive(Debug, Parser)]
#[command(
    name = "reelay-admin",
    version,
    about = "Operate a Reelay stage: tenants, API keys, jobs"
)]
pub struct Cli {
    #[command(flatten)]
    pub target: Target,
    #[command(subcommand)]
    pub command: Command,
}

/// Which table: the stage's (`reelay-<stage>`, as template.yaml names it) or an explicit one.
#[derive(Debug, Args)]
pub struct Target {
    /// The stage whose table to use (dev, prod, …).
    #[arg(long, env = "REELAY_STAGE", conflicts_with = "table")]
    pub stage: Option<String>,
    /// The table itself (a local stack's is printed by `make run`).
    #[arg(long, env = "TABLE_NAME")]
    pub table: Option<String>,
    /// Without `--stage`: the render queue (its DLQ is read from its RedrivePolicy).
    #[arg(long, env = "RENDER_QUEUE_URL")]
    pub render_queue_url: Option<String>,
    /// Without `--stage`: the publish queue.
    #[arg(long, env = "PUBLISH_QUEUE_URL")]
    pub publish_queue_url: Option<String>,
    /// The stage's CloudFormation stack, whose outputs name what the template does not name
    /// after the stage (default `reelay-<stage>`, as samconfig.toml names each stage's stack).
    #[arg(long, env = "REELAY_STACK_NAME")]
    pub stack_name: Option<String>,
}

impl Target {
    pub fn table(&self) -> Result<String, AdminError> {
        match (&self.table, &self.stage) {
            (Some(table), _) => Ok(table.clone()),
            (None, Some(stage)) => Ok(format!("reelay-{stage}")),
            (None, None) => Err(AdminError::NoTarget),
        }
    }

    /// The tokens' KMS key: `given`, else the stage stack's `TokenKeyArn` output (a key has no
    /// name to derive from the stage, and its ARN is what the functions are configured with).
    pub async fn token_key(
        &self,
        sdk: &aws_config::SdkConfig,
        given: Option<&String>,
    ) -> Result<String, AdminError> {
        if let Some(key) = given.filter(|k| !k.trim().is_empty()) {
            return Ok(key.clone());
        }
        let stack = match (&self.stack_name, &self.stage) {
            (Some(stack), _) => stack.clone(),
            (None, Some(stage)) => format!("reelay-{stage}"),
            (None, None) => return Err(AdminError::NoTokenKey),
        };
        stack_output(sdk, &stack, "TokenKeyArn").await
    }

    /// The URL of `queue`: the stage's (`reelay-<stage>-<queue>.fifo`, as template.yaml names
    /// it) or the one given.
    pub async fn queue_url(
        &self,
        sqs: &aws_sdk_sqs::Client,
        queue: QueueName,
    ) -> Result<String, AdminError> {
        let given = match queue {
            QueueName::Render => &self.render_queue_url,
            QueueName::Publish => &self.publish_queue_url,
        };
        if let Some(url) = given.as_ref().filter(|_| self.stage.is_none()) {
            return Ok(url.clone());
        }
        let stage = self.stage.as_ref().ok_or(AdminError::NoQueue(queue))?;
        let name = format!("reelay-{stage}-{}.fifo", queue.as_str());
        sqs.get_queue_url()
            .queue_name(&name)
            .send()
            .await
            .map_err(dlq::queue_error)?
            .queue_url
            .ok_or_else(|| AdminError::Queue(format!("no URL for {name}")))
    }
}

/// Reelay's two work queues.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueueName {
    Render,
    Publish,
}

impl QueueName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Render => "render",
            Self::Publish => "publish",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Tenants: the owners of jobs, accounts and keys.
    #[command(subcommand)]
    Tenant(TenantCommand),
    /// A tenant's API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// A tenant's TikTok accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Jobs by state, across tenants.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// A job's record and its audit trail.
    #[command(subcommand)]
    Job(JobCommand),
    /// A work queue's dead-letter queue.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// The stage's own secrets (Ssemble's key, the TikTok app's credentials).
    #[command(subcommand)]
    Secret(SecretCommand),
    /// Account tokens: moving them off their old per-account secrets (issue 13).
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// The reconciler: one run, now, instead of waiting for the schedule (issue 11).
    #[command(subcommand)]
    Reconcile(ReconcileCommand),
}

#[derive(Debug, Subcommand)]
pub enum ReconcileCommand {
    /// One reconciler run in this process, with the reconciler function's own wiring and use
    /// case: every due job is moved on (re-enqueued, polled, expired) as the scheduled run
    /// would, then the run's report is printed. Fails if the run failed to move a job.
    Now(ReconcileArgs),
}

/// What the reconciler function reads from its environment (template.yaml
/// `ReconcilerFunction`): with `--stage`, every name follows the template's; the token key's ARN
/// is read from the stack's `TokenKeyArn` output, as for `tokens migrate`.
#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// The run stops before this many seconds (less the reconciler's safety margin); what is
    /// left stays due for the next run.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=900))]
    pub max_seconds: u64,
    /// The tokens' KMS key (TikTok status polls may refresh a token); default with `--stage`:
    /// the stack's `TokenKeyArn` output.
    #[arg(long, env = "TOKEN_KEY_ID")]
    pub key_id: Option<String>,
    /// The token table (default `reelay-<stage>-tokens`).
    #[arg(long, env = "TOKEN_TABLE_NAME")]
    pub token_table: Option<String>,
    /// The old per-account token secrets' prefix, read on a miss while accounts migrate
    /// (default `reelay/<stage>/tiktok-token/`; none without `--stage`; empty: none).
    #[arg(long, env = "TIKTOK_TOKEN_SECRET_PREFIX")]
    pub secret_prefix: Option<String>,
    /// Read no old token secret, as the functions of a stage deployed with
    /// `LegacyTokenSecrets=disabled`.
    #[arg(long, conflicts_with = "secret_prefix")]
    pub no_legacy_secrets: bool,
    /// The Ssemble API key's secret (default `reelay/<stage>/ssemble`).
    #[arg(long, env = "SSEMBLE_SECRET_ID")]
    pub ssemble_secret_id: Option<String>,
    /// The TikTok app's secret (default `reelay/<stage>/tiktok-app`).
    #[arg(long, env = "TIKTOK_APP_SECRET_ID")]
    pub tiktok_app_secret_id: Option<String>,
    /// Ssemble's API (the stack's `SsembleApiBaseUrl` parameter, when it was changed).
    #[arg(long, env = "SSEMBLE_API_BASE_URL", default_value = reelay_ssemble::DEFAULT_BASE_URL)]
    pub ssemble_api_base_url: String,
    /// TikTok's API (the stack's `TikTokApiBaseUrl` parameter, when it was changed).
    #[arg(long, env = "TIKTOK_API_BASE_URL", default_value = reconciler::config::DEFAULT_TIKTOK_API_BASE_URL)]
    pub tiktok_api_base_url: String,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Copies every account's tokens that still sit in an old per-account secret into the token
    /// table (never over a pair already there), reads each copy back, and with `--delete-old`
    /// deletes the secret (recoverable for `--recovery-days`). Without it, changes no secret:
    /// run it once to copy and check, again with `--delete-old` to stop paying for the secrets.
    Migrate {
        /// Only this account, as `<tenant>/<account>` (default: every account with a secret).
        #[arg(long)]
        account: Option<String>,
        /// Delete each old secret once its copy reads back from the table.
        #[arg(long)]
        delete_old: bool,
        /// Days a deleted secret stays recoverable (Secrets Manager allows 7 to 30).
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u8).range(7..=30))]
        recovery_days: u8,
        /// Delete with no recovery window at all (ForceDeleteWithoutRecovery): irreversible.
        #[arg(long, requires = "delete_old")]
        force_delete_without_recovery: bool,
        /// The token table (default `reelay-<stage>-tokens`, as template.yaml names it).
        #[arg(long, env = "TOKEN_TABLE_NAME")]
        token_table: Option<String>,
        /// The tokens' KMS key; default with `--stage`: the stack's `TokenKeyArn` output.
        #[arg(long, env = "TOKEN_KEY_ID")]
        key_id: Option<String>,
        /// The old secrets' name prefix (default `reelay/<stage>/tiktok-token/`).
        #[arg(long, env = "TIKTOK_TOKEN_SECRET_PREFIX")]
        secret_prefix: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Replaces a stage secret's value, read from stdin (never an argument: arguments show in
    /// `ps` and the shell's history). Nothing is printed of it.
    Set {
        which: StageSecret,
        /// The secret's name or ARN (default `reelay/<stage>/<which>`, as template.yaml names it).
        #[arg(long)]
        secret_id: Option<String>,
        /// `tiktok-app`: the app's client key (not a secret: it is in every authorize URL).
        #[arg(long, required_if_eq("which", "tiktok-app"))]
        client_key: Option<String>,
    },
}

/// The stage secrets the stack creates with placeholders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StageSecret {
    /// `{"apiKey"}`: stdin is the Ssemble API key.
    Ssemble,
    /// `{"clientKey","clientSecret"}`: stdin is the client secret.
    TiktokApp,
}

impl StageSecret {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ssemble => "ssemble",
            Self::TiktokApp => "tiktok-app",
        }
    }
}

/// Who acts, and why: both go into the job's audit event.
#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// The operator's name.
    #[arg(long, env = "REELAY_OPERATOR")]
    pub operator: String,
    /// Why (e.g. "creator's profile checked: no post").
    #[arg(long)]
    pub reason: String,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// How many messages the DLQ holds, and up to ten of them (account, job, receives).
    List { queue: QueueName },
    /// Moves messages back to the queue; the consumers re-decide each job from its state.
    Redrive {
        queue: QueueName,
        /// Messages moved at most.
        #[arg(long, default_value_t = 1000)]
        max: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Health, block (until, the upstream's code), scopes and the budgets left now.
    List { tenant: String },
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Newest first, per tenant: e.g. `--state publish_unknown` to see what waits for an operator.
    List {
        /// Only this tenant's jobs (default: every tenant's).
        #[arg(long)]
        tenant: Option<String>,
        /// Only jobs in this state (`publish_unknown`, `ready`, …).
        #[arg(long)]
        state: Option<String>,
        /// Jobs listed at most per tenant.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Creates a tenant with its first API key, printed once on stdout.
    Create {
        /// Lowercase letters, digits, `-` and `_`.
        id: String,
        /// A name for operators (the customer's).
        #[arg(long, default_value = "")]
        name: String,
    },
    /// Every tenant.
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Issues one more key (printed once); the others keep working.
    Issue { tenant: String },
    /// The tenant's keys: id, created, when each ends, revoked or not. Never the keys.
    List { tenant: String },
    /// Issues a new key (printed once) and ends every other key after the overlap.
    Rotate {
        tenant: String,
        #[arg(long, default_value_t = DEFAULT_OVERLAP_HOURS)]
        overlap_hours: u64,
    },
    /// Ends a key at once (its id as `key list` shows it, at least 8 digits).
    Revoke { tenant: String, key_id: String },
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// The job's state, error, hold and next check, then its audit trail, oldest first.
    Show {
        job_id: String,
        /// The tenant whose id this is, for an id its client chose (as the client reports it).
        #[arg(long)]
        tenant: Option<String>,
        /// Audit events shown at most.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Cancels the job as the operator (any tenant's; not once publishing has started).
    Cancel {
        job_id: String,
        /// The tenant whose id this is, for an id its client chose.
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        by: OperatorArgs,
    },
    /// Retries a failed or operator-parked job as the operator. Refused while a post could
    /// still appear (TikTok accepted the publish, or an init's webhooks may still arrive).
    Retry {
        job_id: String,
        /// The tenant whose id this is, for an id its client chose.
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        by: OperatorArgs,
    },
}

#[derive(Debug, Error)]
pub enum AdminError {
    #[error("no table: give --stage (REELAY_STAGE) or --table (TABLE_NAME)")]
    NoTarget,
    #[error("{0}")]
    Id(#[from] IdError),
    #[error("{0}")]
    Tenant(#[from] TenantError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("no job {0}")]
    NoJob(String),
    #[error("no {} queue: give --stage, or --{}-queue-url", .0.as_str(), .0.as_str())]
    NoQueue(QueueName),
    #[error("queue: {0}")]
    Queue(String),
    #[error("unknown state {0:?}")]
    BadState(String),
    #[error("refused: {0}")]
    Command(#[from] CommandError),
    #[error("an operator's command needs --operator and a non-blank --reason")]
    Unexplained,
    #[error("no secret: give --stage, or --secret-id")]
    NoSecretTarget,
    #[error("secret {0}: {1}")]
    Secret(String, SecretError),
    #[error("nothing on stdin: pipe the secret's value in")]
    NoSecretValue,
    #[error("no token table or secret prefix: give --stage, or --token-table and --secret-prefix")]
    NoTokenTarget,
    #[error("account {0:?}: expected <tenant>/<account>")]
    BadAccount(String),
    #[error("tokens: {0}")]
    Tokens(SecretError),
    #[error("{0} of {1} accounts failed to migrate (see above)")]
    MigrationFailed(usize, usize),
    #[error("no {0}: give --stage, or --{0}")]
    NoReconcileTarget(&'static str),
    #[error("no token key: give --stage (its stack's TokenKeyArn output), or --key-id")]
    NoTokenKey,
    #[error("stack {stack}: {problem}")]
    Stack { stack: String, problem: String },
    #[error("reconciler: {0}")]
    Wiring(#[from] reconciler::wiring::WiringError),
    #[error("the run failed to move {0} due jobs (they stay due; the log lines above name them)")]
    ReconcileFailed(usize),
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
}

/// The ports an operator reaches: the stage's table, the clock; no queue, vault or upstream.
pub type AdminPorts = Adapters<DynamoStore, SqsWorkQueue, SystemClock, Unwired, Unwired, Unwired>;

/// What the commands run on, built once: the use cases over the stage's table (with the
/// stage's limits, `settings_from_env`), an SQS client for the queues and their dead letters, a
/// Secrets Manager client for the stage's secrets.
#[derive(Debug)]
pub struct Admin {
    pub core: Core<AdminPorts>,
    pub sqs: aws_sdk_sqs::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    /// For the token vault (`tokens migrate`), which reaches its own table and KMS.
    pub sdk: aws_config::SdkConfig,
}

impl Admin {
    pub fn new(sdk: &aws_config::SdkConfig, table: &str) -> Result<Self, reelay_aws::ConfigError> {
        let sqs = aws_sdk_sqs::Client::new(sdk);
        let ports = Adapters {
            store: DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), table),
            queue: SqsWorkQueue::new(sqs.clone(), None, None),
            clock: SystemClock,
            vault: Unwired,
            render: Unwired,
            tiktok: Unwired,
        };
        Ok(Self {
            core: Core::new(ports, reelay_aws::settings_from_env()?),
            sqs,
            secrets: aws_sdk_secretsmanager::Client::new(sdk),
            sdk: sdk.clone(),
        })
    }

    /// The use cases with the stage's work queues, for a command whose transition may enqueue
    /// (a retry puts the job back on its queue). Both URLs are found before anything changes.
    pub async fn with_queues(&self, target: &Target) -> Result<Core<AdminPorts>, AdminError> {
        let render = target.queue_url(&self.sqs, QueueName::Render).await?;
        let publish = target.queue_url(&self.sqs, QueueName::Publish).await?;
        let ports = Adapters {
            store: self.core.ports.store.clone(),
            queue: SqsWorkQueue::new(self.sqs.clone(), Some(render), Some(publish)),
            clock: SystemClock,
            vault: Unwired,
            render: Unwired,
            tiktok: Unwired,
        };
        Ok(Core::new(ports, self.core.settings.clone()))
    }
}

/// Runs `cli`: the key of a create, issue or rotate goes to `key_out` alone, everything else
/// to `out`; a secret's value is read from `input`.
pub async fn run(
    cli: &Cli,
    admin: &Admin,
    input: &mut impl BufRead,
    out: &mut impl Write,
    key_out: &mut impl Write,
) -> Result<(), AdminError> {
    let core = &admin.core;
    let store = &core.ports.store;
    let now = SystemClock.now();
    match &cli.command {
        Command::Tenant(TenantCommand::Create { id, name }) => {
            let id = TenantId::parse(id.as_str())?;
            let issued = tenants::create_tenant(store, &SystemClock, &id, name, now).await?;
            writeln!(out, "created tenant {id}")?;
            issued_key(&issued, out, key_out)?;
        }
        Command::Tenant(TenantCommand::List) => {
            writeln!(out, "{:<40} {:<25} name", "tenant", "created")?;
            for t in store.tenants().await? {
                writeln!(out, "{:<40} {:<25} {}", t.id, t.created_at, t.name)?;
            }
        }
        Command::Key(KeyCommand::Issue { tenant }) => {
            let tenant = TenantId::parse(tenant.as_str())?;
            let issued = tenants::issue_key(store, &SystemClock, &tenant, now).await?;
            issued_key(&issued, out, key_out)?;
        }
        Command::Key(KeyCommand::List { tenant }) => {
            let tenant = TenantId::parse(tenant.as_str())?;
            writeln!(out, "{:<14} {:<25} {:<25} status", "key", "created", "ends")?;
            for key in store.api_keys(&tenant).await? {
                key_line(&key, now, out)?;
            }
        }
        Command::Key(KeyCommand::Rotate {
            tenant,
            overlap_hours,
        }) => {
            let tenant = TenantId::parse(tenant.as_str())?;
            let overlap = Duration::from_secs(overlap_hours.saturating_mul(3600));
            let rotated = tenants::rotate_keys(store, &SystemClock, &tenant, now, overlap).await?;
            for key in &rotated.ending {
                writeln!(
                    out,
                    "key {} ends at {}",
                    key.key_id(),
                    key.not_after.unwrap_or(now)
                )?;
            }
            issued_key(&rotated.issued, out, key_out)?;
        }
        Command::Key(KeyCommand::Revoke { tenant, key_id }) => {
            let tenant = TenantId::parse(tenant.as_str())?;
            let key = tenants::revoke_key(store, &tenant, key_id, now).await?;
            writeln!(out, "revoked key {} of {tenant}", key.key_id())?;
        }
        Command::Accounts(AccountsCommand::List { tenant }) => {
            let tenant = TenantId::parse(tenant.as_str())?;
            for a in store.accounts(&tenant).await? {
                let budgets = core.budgets_left(&a).await?;
                let mut line = format!("{:<24} {:<14}", a.account_id.as_str(), a.health.as_str());
                if let Some(reason) = &a.health_reason {
                    line.push_str(&format!(" ({reason})"));
                }
                if let Some(until) = a.blocked_until.filter(|t| *t > now) {
                    let why = a.blocked_reason.as_deref().unwrap_or("-");
                    line.push_str(&format!(" blocked until {until} ({why})"));
                }
                for b in &budgets {
                    line.push_str(&format!(" {}={}/{}", b.kind.as_str(), b.remaining, b.limit));
                }
                line.push_str(&format!(" scopes={}", a.scopes.join(",")));
                writeln!(out, "{line}")?;
            }
        }
        Command::Jobs(JobsCommand::List {
            tenant,
            state,
            limit,
        }) => {
            let state = state
                .as_deref()
                .map(|raw| JobState::parse(raw).ok_or_else(|| AdminError::BadState(raw.to_owned())))
                .transpose()?;
            let tenants = match tenant {
                Some(t) => vec![TenantId::parse(t.as_str())?],
                None => store.tenants().await?.into_iter().map(|t| t.id).collect(),
            };
            let filter = JobFilter {
                state,
                ..JobFilter::default()
            };
            writeln!(
                out,
                "{:<30} {:<16} {:<20} {:<20} {:<25} reason",
                "job", "tenant", "account", "state", "since"
            )?;
            for tenant in &tenants {
                let page = store.list(tenant, &filter, None, *limit).await?;
                for job in &page.jobs {
                    let reason = job
                        .hold
                        .as_ref()
                        .map(|h| h.reason.clone())
                        .or_else(|| job.last_error.as_ref().map(|e| e.code.clone()))
                        .unwrap_or_default();
                    writeln!(
                        out,
                        "{:<30} {:<16} {:<20} {:<20} {:<25} {reason}",
                        job.id.as_str(),
                        tenant.as_str(),
                        job.account_id.as_str(),
                        job.state.as_str(),
                        job.state_since.to_string()
                    )?;
                }
            }
        }
        Command::Dlq(DlqCommand::List { queue }) => {
            let url = cli.target.queue_url(&admin.sqs, *queue).await?;
            let dlq = dlq::Dlq::of(admin.sqs.clone(), &url).await?;
            let (count, listed) = dlq.list().await?;
            writeln!(out, "{} holds about {count} messages", dlq.url)?;
            for m in &listed {
                writeln!(
                    out,
                    "  {:<40} {:<30} receives={}",
                    m.group, m.job, m.receives
                )?;
            }
        }
        Command::Dlq(DlqCommand::Redrive { queue, max }) => {
            let url = cli.target.queue_url(&admin.sqs, *queue).await?;
            let dlq = dlq::Dlq::of(admin.sqs.clone(), &url).await?;
            let moved = dlq.redrive(*max).await?;
            writeln!(out, "moved {moved} messages from {} back to {url}", dlq.url)?;
        }
        Command::Job(JobCommand::Cancel { job_id, tenant, by }) => {
            let job = find_job(store, job_id, tenant.as_deref()).await?;
            operate(cli, admin, job, JobAction::Cancel, by, out).await?;
        }
        Command::Job(JobCommand::Retry { job_id, tenant, by }) => {
            let job = find_job(store, job_id, tenant.as_deref()).await?;
            operate(cli, admin, job, JobAction::Retry, by, out).await?;
        }
        Command::Secret(SecretCommand::Set {
            which,
            secret_id,
            client_key,
        }) => {
            let id = secret_id
                .clone()
                .or_else(|| {
                    cli.target
                        .stage
                        .as_ref()
                        .map(|stage| format!("reelay/{stage}/{}", which.as_str()))
                })
                .ok_or(AdminError::NoSecretTarget)?;
            let value = read_secret_value(input)?;
            let document = match which {
                StageSecret::Ssemble => SsembleSecret { api_key: value }.document(),
                StageSecret::TiktokApp => TikTokAppSecret {
                    client_key: client_key.clone().unwrap_or_default(),
                    client_secret: value,
                }
                .document(),
            };
            put_stage_secret(&admin.secrets, &id, &document)
                .await
                .map_err(|e| AdminError::Secret(id.clone(), e))?;
            writeln!(
                out,
                "set {id}; functions read it within 5 minutes, the ingest API at its next cold start"
            )?;
        }
        Command::Tokens(TokensCommand::Migrate {
            account,
            delete_old,
            recovery_days,
            force_delete_without_recovery,
            token_table,
            key_id,
            secret_prefix,
        }) => {
            let stage = cli.target.stage.as_ref();
            let table = token_table
                .clone()
                .or_else(|| stage.map(|s| format!("reelay-{s}-tokens")))
                .ok_or(AdminError::NoTokenTarget)?;
            let prefix = secret_prefix
                .clone()
                .or_else(|| stage.map(|s| format!("reelay/{s}/tiktok-token/")))
                .ok_or(AdminError::NoTokenTarget)?;
            let key_id = cli.target.token_key(&admin.sdk, key_id.as_ref()).await?;
            let vault = DynamoTokenVault::from_sdk(&admin.sdk, &table, &key_id)
                .with_legacy_prefix(&admin.sdk, Some(prefix));
            let deletion = match (delete_old, force_delete_without_recovery) {
                (false, _) => None,
                (true, false) => Some(SecretDeletion::RecoveryWindow(*recovery_days)),
                (true, true) => Some(SecretDeletion::WithoutRecovery),
            };
            migrate_tokens(&vault, account.as_deref(), deletion, out).await?;
        }
        Command::Reconcile(ReconcileCommand::Now(args)) => {
            reconcile_now(cli, admin, args, out).await?;
        }
        Command::Job(JobCommand::Show {
            job_id,
            tenant,
            limit,
        }) => {
            let job = find_job(store, job_id, tenant.as_deref()).await?;
            writeln!(
                out,
                "job      {} (tenant {}, account {})",
                job.id, job.tenant_id, job.account_id
            )?;
            if let Some(chosen) = &job.client_job_id {
                writeln!(out, "client   knows it as {chosen}")?;
            }
            writeln!(
                out,
                "state    {} since {} (version {})",
                job.state.as_str(),
                job.state_since,
                job.version
            )?;
            if let Some(e) = &job.last_error {
                writeln!(out, "error    {}: {}", e.code, e.message)?;
            }
            if let Some(h) = &job.hold {
                let until = h
                    .until
                    .map_or_else(|| "an event lifts it".to_owned(), |t| t.to_string());
                writeln!(out, "hold     {} until {until}", h.reason)?;
            }
            if let Some(n) = &job.next_check {
                writeln!(out, "next     {:?} at {}", n.kind, n.at)?;
            }
            if !job.publish_ids.is_empty() {
                let ids: Vec<&str> = job.publish_ids.iter().map(|p| p.as_str()).collect();
                writeln!(out, "publish  {}", ids.join(", "))?;
            }
            let page = store.audit_page(&job.id, None, *limit).await?;
            writeln!(
                out,
                "audit ({} events{})",
                page.events.len(),
                if page.next_after.is_some() {
                    ", more"
                } else {
                    ""
                }
            )?;
            for e in &page.events {
                let from = e.from.map_or("-", |s| s.as_str());
                let mut line = format!(
                    "  v{:<4} {} {:<22} {from} -> {}",
                    e.version,
                    e.at,
                    e.event,
                    e.to.as_str()
                );
                for (name, value) in [
                    (
                        "request",
                        e.request_id.as_ref().map(|r| r.as_str().to_owned()),
                    ),
                    (
                        "publish",
                        e.publish_id.as_ref().map(|p| p.as_str().to_owned()),
                    ),
                    ("error", e.error_code.clone()),
                    ("log", e.upstream_log_id.clone()),
                    ("detail", e.detail.clone()),
                ] {
                    if let Some(v) = value {
                        line.push_str(&format!(" {name}={v}"));
                    }
                }
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(())
}

/// The job an operator names: Reelay's id, or with `tenant` the id that tenant's client chose.
async fn find_job(
    store: &impl JobStore,
    job_id: &str,
    tenant: Option<&str>,
) -> Result<Job, AdminError> {
    let id = JobId::parse(job_id)?;
    let job = match tenant {
        Some(tenant) => tenant_job(store, &TenantId::parse(tenant)?, &id).await?,
        None => store.get(&id).await?,
    };
    job.ok_or_else(|| AdminError::NoJob(job_id.to_owned()))
}

/// Cancels or retries `before` as the operator, through the domain's table.
async fn operate(
    cli: &Cli,
    admin: &Admin,
    before: Job,
    action: JobAction,
    by: &OperatorArgs,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    let id = before.id.clone();
    let actor = Actor::operator(&by.operator, &by.reason).ok_or(AdminError::Unexplained)?;
    let core = admin.with_queues(&cli.target).await?;
    let after: Job = match core.operator_command(&id, action, actor).await {
        Err(CommandError::NotFound) => return Err(AdminError::NoJob(id.to_string())),
        other => other?,
    };
    writeln!(
        out,
        "job {id} (tenant {}): {} -> {} (version {})",
        after.tenant_id,
        before.state.as_str(),
        after.state.as_str(),
        after.version
    )?;
    Ok(())
}

/// `tokens migrate`: one line per account, then a summary; a failed account does not stop the
/// others, and makes the command fail at the end.
async fn migrate_tokens(
    vault: &DynamoTokenVault,
    account: Option<&str>,
    deletion: Option<SecretDeletion>,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    let legacy = vault.legacy().ok_or(AdminError::NoTokenTarget)?;
    let accounts = match account {
        Some(one) => {
            let (t, a) = one
                .split_once('/')
                .ok_or_else(|| AdminError::BadAccount(one.to_owned()))?;
            vec![(TenantId::parse(t)?, AccountId::parse(a)?)]
        }
        None => legacy.list_accounts().await.map_err(AdminError::Tokens)?,
    };
    let (mut copied, mut deleted, mut failed) = (0, 0, 0);
    for (tenant, account) in &accounts {
        match vault.migrate_account(tenant, account, deletion).await {
            Ok(m) => {
                copied += usize::from(m.copied);
                deleted += usize::from(m.secret_deleted);
                writeln!(
                    out,
                    "{tenant}/{account}: {} the table; old secret {}",
                    if m.copied {
                        "copied into"
                    } else {
                        "already in"
                    },
                    if m.secret_deleted { "deleted" } else { "kept" },
                )?;
            }
            Err(e) => {
                failed += 1;
                writeln!(out, "{tenant}/{account}: not migrated: {e}")?;
            }
        }
    }
    writeln!(
        out,
        "{} accounts: {copied} copied, {deleted} old secrets deleted, {failed} failed",
        accounts.len()
    )?;
    if failed > 0 {
        return Err(AdminError::MigrationFailed(failed, accounts.len()));
    }
    Ok(())
}

/// `reconcile now`: the reconciler function's wiring from the stage's names (or the ones given)
/// and its use case, run once with a deadline; the report is printed whatever it says, and a job
/// the run failed to move makes the command fail.
async fn reconcile_now(
    cli: &Cli,
    admin: &Admin,
    args: &ReconcileArgs,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    let stage = cli.target.stage.as_deref();
    let named = |given: &Option<String>, flag: &'static str, default: fn(&str) -> String| {
        given
            .clone()
            .or_else(|| stage.map(default))
            .ok_or(AdminError::NoReconcileTarget(flag))
    };
    let config = reconciler::config::Config {
        table_name: cli.target.table()?,
        render_queue_url: cli.target.queue_url(&admin.sqs, QueueName::Render).await?,
        publish_queue_url: cli.target.queue_url(&admin.sqs, QueueName::Publish).await?,
        ssemble_secret_id: named(&args.ssemble_secret_id, "ssemble-secret-id", |s| {
            format!("reelay/{s}/ssemble")
        })?,
        ssemble_api_base_url: args.ssemble_api_base_url.clone(),
        tiktok_app_secret_id: named(&args.tiktok_app_secret_id, "tiktok-app-secret-id", |s| {
            format!("reelay/{s}/tiktok-app")
        })?,
        token_table_name: named(&args.token_table, "token-table", |s| {
            format!("reelay-{s}-tokens")
        })?,
        token_key_id: cli
            .target
            .token_key(&admin.sdk, args.key_id.as_ref())
            .await?,
        tiktok_token_secret_prefix: match &args.secret_prefix {
            _ if args.no_legacy_secrets => None,
            Some(given) => Some(given.clone()).filter(|p| !p.is_empty()),
            None => stage.map(|s| format!("reelay/{s}/tiktok-token/")),
        },
        tiktok_api_base_url: args.tiktok_api_base_url.clone(),
        settings: admin.core.settings.clone(),
    };
    let deps = reconciler::wiring::live(&admin.sdk, &config).await?;
    let started = SystemClock.now();
    let deadline = started.plus(Duration::from_secs(args.max_seconds));
    writeln!(
        out,
        "reconciling {} (at most {} s)",
        config.table_name, args.max_seconds
    )?;
    // The use case itself, not the function's handler: an operator's run is not the schedule's,
    // so it emits no `ReconcilerRun` metric (the missed-run alarm watches the schedule).
    let report = deps.core.reconcile(deadline).await;
    write_report(&report, SystemClock.now().since(started), out)?;
    if report.failed > 0 {
        return Err(AdminError::ReconcileFailed(report.failed));
    }
    Ok(())
}

/// A run's report, one figure a line.
fn write_report(
    report: &reconciler::RunReport,
    took: Duration,
    out: &mut impl Write,
) -> Result<(), AdminError> {
    writeln!(out, "  due       {}", report.due)?;
    writeln!(
        out,
        "  moved     {} ({} to publish_unknown)",
        report.moved, report.became_unknown
    )?;
    writeln!(out, "  deferred  {}", report.deferred)?;
    writeln!(out, "  skipped   {}", report.skipped)?;
    writeln!(out, "  failed    {}", report.failed)?;
    writeln!(
        out,
        "done in {:.1} s{}",
        took.as_secs_f64(),
        if report.out_of_time {
            "; stopped at the deadline: due work is left (run it again, or let the schedule)"
        } else {
            ""
        }
    )?;
    Ok(())
}

/// The first line of `input`, trimmed; a blank one is refused.
fn read_secret_value(input: &mut impl BufRead) -> Result<SecretString, AdminError> {
    let mut line = String::new();
    input.read_line(&mut line)?;
    let value = SecretString::from(line.trim().to_owned());
    line.clear();
    if value.expose_secret().is_empty() {
        return Err(AdminError::NoSecretValue);
    }
    Ok(value)
}

fn issued_key(
    issued: &IssuedKey,
    out: &mut impl Write,
    key_out: &mut impl Write,
) -> Result<(), AdminError> {
    writeln!(
        out,
        "new key {} for {} (shown once: store it now)",
        issued.record.key_id(),
        issued.record.tenant
    )?;
    writeln!(key_out, "{}", issued.key.expose_secret())?;
    Ok(())
}

fn key_line(key: &ApiKey, now: UtcTime, out: &mut impl Write) -> Result<(), AdminError> {
    let ends = key
        .not_after
        .map_or_else(|| "-".to_owned(), |t| t.to_string());
    let status = match (key.revoked, key.usable_at(now)) {
        (true, _) => "revoked",
        (false, true) => "active",
        (false, false) => "expired",
    };
    writeln!(
        out,
        "{:<14} {:<25} {:<25} {status}",
        key.key_id(),
        key.created_at.to_string(),
        ends
    )?;
    Ok(())
}

/// The value of the output `key` of the CloudFormation stack `stack`.
async fn stack_output(
    sdk: &aws_config::SdkConfig,
    stack: &str,
    key: &str,
) -> Result<String, AdminError> {
    let problem = |problem: String| AdminError::Stack {
        stack: stack.to_owned(),
        problem,
    };
    let described = aws_sdk_cloudformation::Client::new(sdk)
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|e| {
            problem(format!(
                "cannot describe it ({}); give --stack-name or the value itself",
                aws_sdk_cloudformation::error::DisplayErrorContext(&e)
            ))
        })?;
    described
        .stacks()
        .first()
        .and_then(|s| {
            s.outputs()
                .iter()
                .find(|o| o.output_key() == Some(key))
                .and_then(|o| o.output_value())
        })
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| problem(format!("no output {key}")))
}
