//! The whole bill (issue 13): AWS cost per day at 100, 1,000 and 10,000 accounts × 15 posts a
//! day, one line per item, from the run's measured figures and the template's fixed resources.
//!
//! Every line is three parts, so it is clear what scales with what:
//! - **per job**: measured in the run's window, per published job (DynamoDB units, SQS
//!   requests, Lambda requests and GB-s, HTTP API requests, Secrets Manager and KMS calls, log
//!   bytes, stored bytes, bytes uploaded to TikTok), times accounts × 15 a day;
//! - **per account a day**: what an account costs whether or not it posts more (its stored items,
//!   measured after connecting; its token refresh, measured by the refresh probe, about once a day
//!   because TikTok's access tokens live 24 h and are refreshed on use);
//! - **fixed a day**: the template's resources (secrets, keys, alarms, dashboard, custom metrics,
//!   schedules) and idle traffic (reconciler ticks measured when nothing was due, at the template's
//!   rate; the event source mappings' empty long polls, modelled), whatever the accounts.
//!
//! Assumptions are constants here, named and documented; prices are in [`crate::prices`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use reelay_template::Template;
use reelay_template::expr::Expr;
use reelay_template::model::{KMS_KEY, LOG_GROUP, SECRET, TABLE};
use reelay_template::resolve::{ResolveError, Resolver};

use crate::cost::{PerJob, published};
use crate::prices::*;
use crate::report::{Row, Verdict};
use crate::stackrun::{IDLE_RECONCILER, RunResult, TOKEN_REFRESH};

/// The scales the issue asks for.
pub const ACCOUNTS: [u32; 3] = [100, 1_000, 10_000];
/// Posts per account a day (issue 13).
pub const POSTS_PER_ACCOUNT_DAY: f64 = 15.0;
/// The goal: under $1 a day at 1,000 accounts, all in.
pub const GOAL_USD_PER_DAY: f64 = 1.0;
pub const GOAL_ACCOUNTS: u32 = 1_000;

/// A month in days (AWS prorates monthly prices by the hour: 730 h).
pub const DAYS_PER_MONTH: f64 = 365.0 / 12.0;
/// AWS bills storage and transfer in GB of 2^30 bytes.
pub const GB: f64 = 1024.0 * 1024.0 * 1024.0;

// ---- Model assumptions (each printed next to the line it feeds). ----

/// Finished jobs and their audit items never expire (shared/aws/DESIGN.md §7: no retention
/// policy yet), so their storage grows without bound: the bill shows it after one year.
pub const STORAGE_HORIZON_DAYS: f64 = 365.0;
/// DynamoDB deletes expired items "typically within a few days"; they are billed until then.
pub const TTL_DELETE_LAG_DAYS: f64 = 2.0;
/// TikTok access tokens live 24 h (Login Kit: `expires_in` 86400); refresh tokens 365 days.
pub const TIKTOK_ACCESS_TOKEN_TTL_S: f64 = 86_400.0;
/// Lambda's SQS event source mapping polls an idle queue with five long polls of 20 s at once.
pub const ESM_POLLERS: f64 = 5.0;
pub const ESM_LONG_POLL_S: f64 = 20.0;
/// Cold starts per function a day (an environment replaced every 30 min on average), each
/// reading its secrets once and billed its init; bench 4 measured 38–72 ms of init before the
/// core and 6.5–10.8 ms on 2026-12-04 (a local endpoint): 100 ms here, an upper bound.
pub const COLD_STARTS_PER_FUNCTION_DAY: f64 = 48.0;
pub const INIT_BILLED_S: f64 = 0.1;
/// Bytes CloudWatch Logs counts per log event on top of its message (PutLogEvents' rule,
/// taken as billed: an upper bound).
pub const LOG_EVENT_OVERHEAD_BYTES: f64 = 26.0;
/// Lambda's platform lines per invocation in JSON format (`platform.start`,
/// `platform.runtimeDone`, `platform.report`: about 140 + 330 + 230 bytes), written only when
/// `SystemLogLevel` is INFO or DEBUG.
pub const PLATFORM_BYTES_PER_INVOCATION: f64 = 700.0;
pub const PLATFORM_EVENTS_PER_INVOCATION: f64 = 3.0;

/// The metrics the code emits (`reelay_aws::metrics::emit`), by function: the publisher's
/// three init outcomes, the reconciler's run, failures and unknown outcomes. A test holds this
/// to the sources; the run adds whatever it saw.
pub const EMITTERS: [(&str, &str); 22] = [
    ("JobsCreated", "ingest-api"),
    ("RendersSubmitted", "render-submitter"),
    ("RendersRejected", "render-submitter"),
    ("RenderWaits", "render-submitter"),
    ("RendersConfirmed", "ssemble-webhook"),
    ("RendersFailed", "ssemble-webhook"),
    ("WebhooksAccepted", "ssemble-webhook"),
    ("WebhooksRejected", "ssemble-webhook"),
    ("WebhooksAccepted", "tiktok-webhook"),
    ("WebhooksRejected", "tiktok-webhook"),
    ("PublishAccepted", "publisher"),
    ("PublishRejected", "publisher"),
    ("PublishUnknown", "publisher"),
    ("PublishWaits", "publisher"),
    ("PublishUnknown", "reconciler"),
    ("ReconcilerRun", "reconciler"),
    ("ReconcileFailed", "reconciler"),
    ("ReconcileDue", "reconciler"),
    ("ReconcileMoved", "reconciler"),
    ("ReconcileLag", "reconciler"),
    ("RendersConfirmed", "reconciler"),
    ("RendersFailed", "reconciler"),
];

#[derive(Debug, thiserror::Error)]
pub enum BillError {
    #[error("template: {0}")]
    Resolve(#[from] ResolveError),
    #[error("template: {0}")]
    Local(#[from] reelay_local::LocalError),
    #[error("template: {what} of {id} is not a number: {value}")]
    NotANumber {
        what: &'static str,
        id: String,
        value: String,
    },
}

/// One function of the template, as the bill needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionFacts {
    pub id: String,
    pub memory_mb: u32,
    /// `*_SECRET_ID` variables: secrets read at every cold start.
    pub secrets_read_at_init: u32,
}

/// A schedule of the template: its function, period, and whether it is an EventBridge
/// Scheduler schedule (`ScheduleV2`, charged) or a scheduled rule on the default bus (free).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleFacts {
    pub function: String,
    pub period_s: f64,
    pub scheduler: bool,
}

/// What template.yaml deploys, counted (the prod stage: `IsProd` conditions resolved for it).
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateFacts {
    pub functions: Vec<FunctionFacts>,
    /// Every function on arm64 (else x86_64 prices).
    pub arm64: bool,
    /// `LoggingConfig.SystemLogLevel` (INFO without one).
    pub system_log_level: String,
    /// SQS event source mappings, and how many of them read a FIFO queue.
    pub event_source_mappings: u32,
    pub esm_fifo_mappings: u32,
    pub queues: u32,
    pub secrets: u32,
    pub kms_keys: u32,
    pub kms_rotation: bool,
    pub alarms: u32,
    pub alarm_metrics: u32,
    pub alarm_metrics_high_res: u32,
    pub dashboards: u32,
    pub log_groups: u32,
    /// Longest `RetentionInDays`; `None` if some group keeps logs forever.
    pub log_retention_days: Option<f64>,
    pub tables: u32,
    pub pitr_tables: u32,
    pub schedules: Vec<ScheduleFacts>,
}

impl TemplateFacts {
    pub fn platform_logs(&self) -> bool {
        !self.system_log_level.eq_ignore_ascii_case("WARN")
    }

    pub fn from_template(t: &Template) -> Result<Self, BillError> {
        let prod = BTreeMap::from([("Stage".to_owned(), "prod".to_owned())]);
        let r = Resolver::new(t, &prod);
        let globals = &t.function_globals;
        let count = |kind: &str| t.ids_of(kind).count() as u32;
        let number = |what: &'static str, id: &str, e: &Expr| -> Result<f64, BillError> {
            let value = r.resolve(e)?;
            value.parse::<f64>().map_err(|_| BillError::NotANumber {
                what,
                id: id.to_owned(),
                value,
            })
        };

        let mut functions = Vec::new();
        let mut arm64 = true;
        let mut schedules = Vec::new();
        let mut event_source_mappings = 0;
        let mut esm_fifo_mappings = 0;
        for f in t.functions() {
            let spec = reelay_local::FunctionSpec::from_template(t, f.id)?;
            functions.push(FunctionFacts {
                id: f.id.to_owned(),
                memory_mb: u32::try_from(spec.memory_mb).unwrap_or(128),
                secrets_read_at_init: f
                    .environment
                    .keys()
                    .filter(|k| k.ends_with("_SECRET_ID"))
                    .count() as u32,
            });
            let arch = f
                .resource
                .prop("Architectures")
                .or_else(|| globals.get("Architectures"))
                .and_then(|a| a.as_list().first().map(|e| r.resolve(e)))
                .transpose()?
                .unwrap_or_else(|| "x86_64".to_owned());
            arm64 &= arch == "arm64";
            for source in f.sqs_sources() {
                event_source_mappings += 1;
                if t.queue(&source).is_some_and(|q| q.is_fifo()) {
                    esm_fifo_mappings += 1;
                }
            }
            if f.events_of_type("Schedule").next().is_some() {
                let s = reelay_local::Schedule::from_template(t, f.id)?;
                schedules.push(ScheduleFacts {
                    function: f.id.to_owned(),
                    period_s: s.period.as_secs_f64(),
                    scheduler: false,
                });
            }
            for props in f.events_of_type("ScheduleV2") {
                let expression = props
                    .get("ScheduleExpression")
                    .map(|e| r.resolve(e))
                    .transpose()?
                    .unwrap_or_default();
                let period = reelay_local::schedule::parse_rate(&expression)?;
                schedules.push(ScheduleFacts {
                    function: f.id.to_owned(),
                    period_s: period.as_secs_f64(),
                    scheduler: true,
                });
            }
        }
        let system_log_level = globals
            .get("LoggingConfig")
            .and_then(|c| c.get("SystemLogLevel"))
            .map(|e| r.resolve(e))
            .transpose()?
            .unwrap_or_else(|| "INFO".to_owned());

        let mut alarm_metrics = 0;
        let mut alarm_metrics_high_res = 0;
        let alarm_ids: Vec<&str> = t.ids_of("AWS::CloudWatch::Alarm").collect();
        for id in &alarm_ids {
            let Some(alarm) = t.resources.get(*id) else {
                continue;
            };
            // A metric-math alarm pays for every metric it reads; expressions are free.
            let periods: Vec<Option<&Expr>> = match alarm.prop("Metrics") {
                Some(metrics) => metrics
                    .as_list()
                    .into_iter()
                    .filter_map(|m| m.get("MetricStat"))
                    .map(|s| s.get("Period"))
                    .collect(),
                None => vec![alarm.prop("Period")],
            };
            for period in periods {
                let p = period.map(|e| number("Period", id, e)).transpose()?;
                if p.is_some_and(|p| p < 60.0) {
                    alarm_metrics_high_res += 1;
                } else {
                    alarm_metrics += 1;
                }
            }
        }

        let mut log_retention_days = Some(0.0_f64);
        for id in t.ids_of(LOG_GROUP) {
            let days = t
                .resources
                .get(id)
                .and_then(|g| g.prop("RetentionInDays"))
                .map(|e| number("RetentionInDays", id, e))
                .transpose()?;
            log_retention_days = match (log_retention_days, days) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
        let pitr_tables = t
            .ids_of(TABLE)
            .filter(|id| {
                t.resources
                    .get(*id)
                    .and_then(|r| r.prop("PointInTimeRecoverySpecification"))
                    .and_then(|p| p.get("PointInTimeRecoveryEnabled"))
                    .and_then(Expr::as_bool)
                    == Some(true)
            })
            .count() as u32;
        let kms_rotation = t.ids_of(KMS_KEY).any(|id| {
            t.resources
                .get(id)
                .and_then(|k| k.prop("EnableKeyRotation"))
                .and_then(Expr::as_bool)
                == Some(true)
        });
        Ok(Self {
            functions,
            arm64,
            system_log_level,
            event_source_mappings,
            esm_fifo_mappings,
            queues: t.queues().len() as u32,
            secrets: count(SECRET),
            kms_keys: count(KMS_KEY),
            kms_rotation,
            alarms: alarm_ids.len() as u32,
            alarm_metrics,
            alarm_metrics_high_res,
            dashboards: count("AWS::CloudWatch::Dashboard"),
            log_groups: count(LOG_GROUP),
            log_retention_days,
            tables: count(TABLE),
            pitr_tables,
            schedules,
        })
    }
}

/// Log output: bytes (messages) and events.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Logs {
    pub bytes: f64,
    pub events: f64,
}

impl Logs {
    /// What CloudWatch counts: the messages plus the per-event overhead.
    pub fn billed_bytes(&self) -> f64 {
        self.bytes + self.events * LOG_EVENT_OVERHEAD_BYTES
    }
}

/// One forced token refresh, measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PerRefresh {
    pub rru: f64,
    pub wru: f64,
    pub kms: f64,
    pub secrets: f64,
    pub gb_s: f64,
    pub logs: Logs,
}

/// One reconciler tick that found nothing due, measured.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PerTick {
    pub rru: f64,
    pub gb_s: f64,
    pub logs: Logs,
}

/// The run's figures the bill scales.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measured {
    pub job: PerJob,
    pub job_logs: Logs,
    /// Bytes uploaded to TikTok per published job, at the run's clip size.
    pub job_upload_bytes: f64,
    pub clip_bytes: f64,
    /// Stored bytes per job that never expire: table items (overhead included), GSI copies.
    pub job_kept_bytes: f64,
    pub job_kept_index_bytes: f64,
    /// Σ bytes × days stored of the job's items with a TTL (GSI copies included).
    pub job_ttl_byte_days: f64,
    /// Stored bytes per connected account (tenant and API key included), and their GSI copies.
    pub account_bytes: f64,
    pub account_index_bytes: f64,
    pub refresh: PerRefresh,
    pub refreshes_measured: u64,
    pub tick: PerTick,
    pub ticks_measured: u64,
    /// Distinct custom metrics (name × dimension values) the code emits.
    pub metrics: u32,
    /// The run's published jobs (the divisor of every per-job figure).
    pub published: usize,
    /// KMS `GenerateDataKey` calls in the window (a token written: a refresh inside the run).
    pub window_data_keys: u64,
}

/// Refreshes per account a day: one whenever a post finds the token within `min_validity` of
/// its expiry, at most one per post.
pub fn refreshes_per_account_day() -> f64 {
    let min_validity = reelay_domain::usecase::TokenSettings::default()
        .min_validity
        .as_secs_f64();
    (86_400.0 / (TIKTOK_ACCESS_TOKEN_TTL_S - min_validity).max(1.0)).min(POSTS_PER_ACCOUNT_DAY)
}

/// Distinct metrics: per name, per dimension set it is published under, the distinct values the
/// set takes (`Stage` is one value, the deployed stage; `Function` one per emitting function).
pub fn metric_count(series: &BTreeSet<(String, String)>) -> u32 {
    let names: BTreeSet<&String> = series.iter().map(|(n, _)| n).collect();
    names
        .into_iter()
        .map(|name| {
            reelay_aws::metrics::dimension_sets(name)
                .iter()
                .map(|set| {
                    if set.contains(&"Function") {
                        series.iter().filter(|(n, _)| n == name).count() as u32
                    } else {
                        1
                    }
                })
                .sum::<u32>()
        })
        .sum()
}

impl Measured {
    pub fn from_run(r: &RunResult) -> Self {
        let published = published(r);
        let n = published.max(1) as f64;
        let mut job_logs = Logs::default();
        for (function, c) in &r.logs.by_function {
            if function != IDLE_RECONCILER && function != TOKEN_REFRESH {
                job_logs.bytes += c.total_bytes() as f64;
                job_logs.events += c.events() as f64;
            }
        }
        job_logs.bytes /= n;
        job_logs.events /= n;

        let p = &r.refresh;
        let k = p.refreshed.max(1) as f64;
        let refresh = PerRefresh {
            rru: p.meter.dynamo_read_units() / k,
            wru: (p.meter.dynamo_write_units() + p.meter.dynamo_failed_writes() as f64) / k,
            kms: p.meter.kms_requests() as f64 / k,
            secrets: p.meter.secrets_requests() as f64 / k,
            gb_s: p.times.billed_gb_s() / k,
            logs: Logs {
                bytes: p.logs.total_bytes() as f64 / k,
                events: p.logs.events() as f64 / k,
            },
        };

        let ticks = r.idle_ticks.invocations().max(1) as f64;
        let q = r.idle_tick_meter.get("dynamodb.Query@due");
        let idle_logs = r
            .logs
            .by_function
            .get(IDLE_RECONCILER)
            .copied()
            .unwrap_or_default();
        let tick = PerTick {
            rru: q.capacity_units.max(q.estimated_read_units) / ticks,
            gb_s: r.idle_ticks.billed_gb_s() / ticks,
            logs: Logs {
                bytes: idle_logs.total_bytes() as f64 / ticks,
                events: idle_logs.events() as f64 / ticks,
            },
        };

        let mut series = r.logs.metric_series.clone();
        series.extend(
            EMITTERS
                .iter()
                .map(|(m, f)| ((*m).to_owned(), (*f).to_owned())),
        );
        let s = &r.storage;
        let accounts = r.accounts.max(1) as f64;
        Self {
            job: PerJob::from_run(r),
            job_logs,
            job_upload_bytes: r.upload_bytes as f64 / n,
            clip_bytes: r.clip_bytes as f64,
            job_kept_bytes: s.kept_bytes as f64 / n,
            job_kept_index_bytes: s.kept_index_bytes as f64 / n,
            job_ttl_byte_days: (s.ttl_byte_seconds / 86_400.0
                + s.ttl_bytes as f64 * TTL_DELETE_LAG_DAYS)
                / n,
            account_bytes: s.before_bytes as f64 / accounts,
            account_index_bytes: s.before_index_bytes as f64 / accounts,
            refresh,
            refreshes_measured: p.refreshed,
            tick,
            ticks_measured: r.idle_ticks.invocations() as u64,
            metrics: metric_count(&series),
            published,
            window_data_keys: r.meter.get("kms.GenerateDataKey").requests,
        }
    }
}

/// Where a line's counts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    Measured,
    Template,
    Model,
}

/// One item of the bill: dollars per job, per account a day and fixed a day.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub item: &'static str,
    pub basis: Vec<Basis>,
    pub per_job: f64,
    pub per_account_day: f64,
    pub fixed_day: f64,
    /// Where each count comes from, with its figures.
    pub source: String,
}

impl Line {
    /// Dollars a day at `accounts` accounts posting [`POSTS_PER_ACCOUNT_DAY`] each.
    pub fn usd_per_day(&self, accounts: f64) -> f64 {
        self.fixed_day + accounts * (self.per_account_day + POSTS_PER_ACCOUNT_DAY * self.per_job)
    }
}

/// The bill: every line, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Bill {
    pub lines: Vec<Line>,
    /// The idle traffic inside the lines' fixed parts, $ a day each, for the record.
    pub idle: Vec<(&'static str, f64)>,
}

/// The item name of the data-transfer line (the one that depends on the clip size).
pub const DATA_OUT: &str = "Data transfer out (clips to TikTok)";

impl Bill {
    pub fn total(&self, accounts: f64) -> f64 {
        self.lines.iter().map(|l| l.usd_per_day(accounts)).sum()
    }

    pub fn line(&self, item: &str) -> Option<&Line> {
        self.lines.iter().find(|l| l.item == item)
    }

    pub fn build(m: &Measured, f: &TemplateFacts) -> Self {
        use Basis::*;
        let month = |usd: f64| usd / DAYS_PER_MONTH;
        let refreshes = refreshes_per_account_day();
        let ticks_day: f64 = f
            .schedules
            .iter()
            .map(|s| 86_400.0 / s.period_s.max(1.0))
            .sum();
        let gb_s_price = if f.arm64 {
            LAMBDA_ARM_PER_GB_S
        } else {
            LAMBDA_X86_PER_GB_S
        };
        let arch = if f.arm64 { "arm64" } else { "x86_64" };
        // A job's sends and receives are on the FIFO work queues.
        let sqs_price = if f.esm_fifo_mappings > 0 {
            SQS_FIFO_PER_REQUEST
        } else {
            SQS_STANDARD_PER_REQUEST
        };
        let cold_starts = COLD_STARTS_PER_FUNCTION_DAY * f.functions.len() as f64;
        let init_secret_calls: f64 = f
            .functions
            .iter()
            .map(|x| f64::from(x.secrets_read_at_init) * COLD_STARTS_PER_FUNCTION_DAY)
            .sum();
        let init_gb_s: f64 = f
            .functions
            .iter()
            .map(|x| COLD_STARTS_PER_FUNCTION_DAY * INIT_BILLED_S * f64::from(x.memory_mb) / 1024.0)
            .sum();
        let platform = |invocations: f64| {
            if f.platform_logs() {
                Logs {
                    bytes: invocations * PLATFORM_BYTES_PER_INVOCATION,
                    events: invocations * PLATFORM_EVENTS_PER_INVOCATION,
                }
            } else {
                Logs::default()
            }
        };
        let job_log_bytes =
            m.job_logs.billed_bytes() + platform(m.job.lambda_requests).billed_bytes();
        let refresh_log_bytes = m.refresh.logs.billed_bytes();
        let tick_log_bytes = m.tick.logs.billed_bytes() + platform(1.0).billed_bytes();
        let retention = f.log_retention_days.unwrap_or(STORAGE_HORIZON_DAYS);
        let pitr = f.pitr_tables > 0;
        let key_months = if f.kms_rotation {
            1.0 + (STORAGE_HORIZON_DAYS / 365.0).floor().min(2.0)
        } else {
            1.0
        };
        let schedulers: f64 = f
            .schedules
            .iter()
            .filter(|s| s.scheduler)
            .map(|s| 86_400.0 / s.period_s.max(1.0))
            .fold(0.0, |a, b| a + b);
        let rules = f.schedules.iter().filter(|s| !s.scheduler).count();
        let job_stored = m.job_kept_bytes * STORAGE_HORIZON_DAYS;
        let esm_polls_day =
            f64::from(f.event_source_mappings) * ESM_POLLERS * 86_400.0 / ESM_LONG_POLL_S;
        let fifo_share = f64::from(f.esm_fifo_mappings) / f64::from(f.event_source_mappings.max(1));
        let idle_poll_price =
            fifo_share * SQS_FIFO_PER_REQUEST + (1.0 - fifo_share) * SQS_STANDARD_PER_REQUEST;
        let logs_usd = |bytes: f64| {
            bytes / GB * (LOGS_INGEST_PER_GB + retention * month(LOGS_STORAGE_PER_GB_MONTH))
        };
        // What the platform lines would add at the goal's scale, were they written.
        let platform_at_goal = f64::from(GOAL_ACCOUNTS)
            * POSTS_PER_ACCOUNT_DAY
            * m.job.lambda_requests
            * (PLATFORM_BYTES_PER_INVOCATION
                + PLATFORM_EVENTS_PER_INVOCATION * LOG_EVENT_OVERHEAD_BYTES);
        let idle = vec![
            ("empty SQS receives", esm_polls_day * idle_poll_price),
            (
                "idle reconciler ticks: Lambda",
                ticks_day * (LAMBDA_PER_REQUEST + m.tick.gb_s * gb_s_price),
            ),
            (
                "idle reconciler ticks: DynamoDB",
                ticks_day * m.tick.rru * DYNAMO_PER_RRU,
            ),
            (
                "idle reconciler ticks: logs",
                ticks_day * logs_usd(tick_log_bytes),
            ),
        ];
        let job_index_stored = m.job_kept_index_bytes * STORAGE_HORIZON_DAYS;

        let lines = vec![
            Line {
                item: "DynamoDB requests (on-demand)",
                basis: vec![Measured, Model, Template],
                per_job: m.job.rru * DYNAMO_PER_RRU + m.job.wru * DYNAMO_PER_WRU,
                per_account_day: refreshes
                    * (m.refresh.rru * DYNAMO_PER_RRU + m.refresh.wru * DYNAMO_PER_WRU),
                fixed_day: ticks_day * m.tick.rru * DYNAMO_PER_RRU,
                source: format!(
                    "measured {:.1} RRU + {:.1} WRU a job (refused writes at 1 WRU); measured {:.1} RRU + {:.1} WRU a token refresh × {refreshes:.2} refreshes/account-day (model: TikTok access token {}h, refreshed {} s before expiry, on use); measured {:.2} RRU an idle reconciler tick × {ticks_day:.0} ticks/day (template schedule)",
                    m.job.rru,
                    m.job.wru,
                    m.refresh.rru,
                    m.refresh.wru,
                    TIKTOK_ACCESS_TOKEN_TTL_S / 3600.0,
                    reelay_domain::usecase::TokenSettings::default()
                        .min_validity
                        .as_secs(),
                    m.tick.rru
                ),
            },
            Line {
                item: "DynamoDB storage",
                basis: vec![Measured, Model],
                per_job: (job_stored + job_index_stored + m.job_ttl_byte_days) / GB
                    * month(DYNAMO_STORAGE_PER_GB_MONTH),
                per_account_day: (m.account_bytes + m.account_index_bytes) / GB
                    * month(DYNAMO_STORAGE_PER_GB_MONTH),
                fixed_day: 0.0,
                source: format!(
                    "measured (table scans before/after the window, DynamoDB item sizes + 100 B each): {:.0} B a job kept for ever ({:.0} B table + {:.0} B GSI copies; no retention on jobs and audit items: shown after {STORAGE_HORIZON_DAYS:.0} days, model) + {:.0} B·days a job of TTL items (+{TTL_DELETE_LAG_DAYS:.0} days deletion lag, model) + {:.0} B an account (accounts, tokens, tenant)",
                    m.job_kept_bytes + m.job_kept_index_bytes,
                    m.job_kept_bytes,
                    m.job_kept_index_bytes,
                    m.job_ttl_byte_days,
                    m.account_bytes + m.account_index_bytes
                ),
            },
            Line {
                item: "DynamoDB PITR backups",
                basis: vec![Measured, Template, Model],
                per_job: if pitr {
                    (job_stored + m.job_ttl_byte_days) / GB * month(DYNAMO_PITR_PER_GB_MONTH)
                } else {
                    0.0
                },
                per_account_day: if pitr {
                    m.account_bytes / GB * month(DYNAMO_PITR_PER_GB_MONTH)
                } else {
                    0.0
                },
                fixed_day: 0.0,
                source: format!(
                    "template: PITR on {} of {} tables, charged on table size (GSIs excluded) as stored above, after {STORAGE_HORIZON_DAYS:.0} days",
                    f.pitr_tables, f.tables
                ),
            },
            Line {
                item: "SQS requests",
                basis: vec![Measured, Template, Model],
                per_job: m.job.sqs * sqs_price,
                per_account_day: 0.0,
                fixed_day: esm_polls_day * idle_poll_price,
                source: format!(
                    "measured {:.1} requests a job (sends, receives with messages, deletes); idle: template {} event source mappings ({} FIFO at $0.50/M, {} standard at $0.40/M) × {ESM_POLLERS:.0} pollers × one {ESM_LONG_POLL_S:.0} s long poll each (model) = {esm_polls_day:.0} empty receives/day",
                    m.job.sqs,
                    f.event_source_mappings,
                    f.esm_fifo_mappings,
                    f.event_source_mappings - f.esm_fifo_mappings,
                ),
            },
            Line {
                item: "Lambda requests",
                basis: vec![Measured, Template],
                per_job: m.job.lambda_requests * LAMBDA_PER_REQUEST,
                per_account_day: 0.0,
                fixed_day: ticks_day * LAMBDA_PER_REQUEST,
                source: format!(
                    "measured {:.2} invocations a job; {ticks_day:.0} scheduled ticks/day (template); a refresh runs inside a publisher invocation",
                    m.job.lambda_requests
                ),
            },
            Line {
                item: "Lambda GB-s",
                basis: vec![Measured, Template, Model],
                per_job: m.job.gb_s * gb_s_price,
                per_account_day: refreshes * m.refresh.gb_s * gb_s_price,
                fixed_day: (ticks_day * m.tick.gb_s + init_gb_s) * gb_s_price,
                source: format!(
                    "measured {:.3} GB-s a job, {:.4} GB-s a refresh (publisher memory), {:.4} GB-s an idle tick; {arch} (template); {cold_starts:.0} cold starts/day × {INIT_BILLED_S} s init at each function's memory (model)",
                    m.job.gb_s, m.refresh.gb_s, m.tick.gb_s
                ),
            },
            Line {
                item: "API Gateway HTTP API",
                basis: vec![Measured],
                per_job: m.job.http * HTTP_API_PER_REQUEST,
                per_account_day: 0.0,
                fixed_day: 0.0,
                source: format!(
                    "measured {:.2} requests a job (POST /v1/jobs and the webhooks); clients' status reads not counted",
                    m.job.http
                ),
            },
            Line {
                item: "Secrets Manager secrets",
                basis: vec![Template],
                per_job: 0.0,
                per_account_day: 0.0,
                fixed_day: f64::from(f.secrets) * month(SECRETS_PER_SECRET_MONTH),
                source: format!(
                    "template: {} secrets × $0.40/month (account tokens are in the KMS-sealed table, not one secret each)",
                    f.secrets
                ),
            },
            Line {
                item: "Secrets Manager calls",
                basis: vec![Measured, Template, Model],
                per_job: m.job.secrets * SECRETS_PER_CALL,
                per_account_day: refreshes * m.refresh.secrets * SECRETS_PER_CALL,
                fixed_day: init_secret_calls * SECRETS_PER_CALL,
                source: format!(
                    "measured {:.2} calls a job and {:.2} a refresh; at init each function reads its *_SECRET_ID secrets (template: {} in all) × {COLD_STARTS_PER_FUNCTION_DAY:.0} cold starts/day (model)",
                    m.job.secrets,
                    m.refresh.secrets,
                    f.functions
                        .iter()
                        .map(|x| x.secrets_read_at_init)
                        .sum::<u32>()
                ),
            },
            Line {
                item: "KMS keys",
                basis: vec![Template, Model],
                per_job: 0.0,
                per_account_day: 0.0,
                fixed_day: f64::from(f.kms_keys) * key_months * month(KMS_PER_KEY_MONTH),
                source: format!(
                    "template: {} key(s), rotation {} → ${key_months:.0}/month each after {STORAGE_HORIZON_DAYS:.0} days ($1, +$1 for each of the first two yearly rotations)",
                    f.kms_keys,
                    if f.kms_rotation { "on" } else { "off" }
                ),
            },
            Line {
                item: "KMS requests",
                basis: vec![Measured, Model],
                per_job: m.job.kms * KMS_PER_REQUEST,
                per_account_day: refreshes * m.refresh.kms * KMS_PER_REQUEST,
                fixed_day: 0.0,
                source: format!(
                    "measured {:.2} calls a job (Decrypt per token read; {} GenerateDataKey in the window), {:.2} a refresh (Decrypt of the old set, GenerateDataKey for the new) × {refreshes:.2} refreshes/account-day (model, {} refreshes measured)",
                    m.job.kms, m.window_data_keys, m.refresh.kms, m.refreshes_measured
                ),
            },
            Line {
                item: "CloudWatch Logs ingestion",
                basis: vec![Measured, Template, Model],
                per_job: job_log_bytes / GB * LOGS_INGEST_PER_GB,
                per_account_day: refreshes * refresh_log_bytes / GB * LOGS_INGEST_PER_GB,
                fixed_day: ticks_day * tick_log_bytes / GB * LOGS_INGEST_PER_GB,
                source: format!(
                    "measured {:.0} B in {:.1} lines a job (JSON lines at the template's level inside the runtime's span, EMF lines), {:.0} B a refresh, {:.0} B an idle tick; +{LOG_EVENT_OVERHEAD_BYTES:.0} B per event (model); platform START/END/REPORT {} (template SystemLogLevel {}; at INFO, {PLATFORM_BYTES_PER_INVOCATION:.0} B an invocation (model) would add {} a day at {GOAL_ACCOUNTS} accounts)",
                    m.job_logs.bytes,
                    m.job_logs.events,
                    m.refresh.logs.bytes,
                    m.tick.logs.bytes,
                    if f.platform_logs() {
                        "counted"
                    } else {
                        "not written"
                    },
                    f.system_log_level,
                    usd(platform_at_goal / GB * LOGS_INGEST_PER_GB)
                ),
            },
            Line {
                item: "CloudWatch Logs storage",
                basis: vec![Measured, Template, Model],
                per_job: job_log_bytes * retention / GB * month(LOGS_STORAGE_PER_GB_MONTH),
                per_account_day: refreshes * refresh_log_bytes * retention / GB
                    * month(LOGS_STORAGE_PER_GB_MONTH),
                fixed_day: ticks_day * tick_log_bytes * retention / GB
                    * month(LOGS_STORAGE_PER_GB_MONTH),
                source: format!(
                    "ingested bytes × {retention:.0} days retention (template, prod; {} log groups), uncompressed (model: an upper bound, archives are compressed)",
                    f.log_groups
                ),
            },
            Line {
                item: "CloudWatch custom metrics",
                basis: vec![Measured, Model],
                per_job: 0.0,
                per_account_day: 0.0,
                fixed_day: f64::from(m.metrics) * month(METRIC_PER_MONTH),
                source: format!(
                    "{} metrics: each name emitted via EMF per Stage, and per Stage × Function if more than one function emits it (code + the run's lines); billed as if each were published every hour (an upper bound); AWS/* metrics free",
                    m.metrics
                ),
            },
            Line {
                item: "CloudWatch alarms",
                basis: vec![Template],
                per_job: 0.0,
                per_account_day: 0.0,
                fixed_day: month(
                    f64::from(f.alarm_metrics) * ALARM_METRIC_PER_MONTH
                        + f64::from(f.alarm_metrics_high_res) * ALARM_HIGH_RES_METRIC_PER_MONTH,
                ),
                source: format!(
                    "template: {} alarms reading {} standard-resolution metrics ({} high-resolution; a metric-math alarm pays per metric it reads)",
                    f.alarms, f.alarm_metrics, f.alarm_metrics_high_res
                ),
            },
            Line {
                item: "CloudWatch dashboard",
                basis: vec![Template, Model],
                per_job: 0.0,
                per_account_day: 0.0,
                fixed_day: f64::from(f.dashboards) * month(DASHBOARD_PER_MONTH),
                source: format!(
                    "template: {} dashboard(s) × $3/month (model: the account's 3 free dashboards are used elsewhere, e.g. by the dev stage's)",
                    f.dashboards
                ),
            },
            Line {
                item: "EventBridge schedule",
                basis: vec![Template],
                per_job: 0.0,
                per_account_day: 0.0,
                fixed_day: schedulers * SCHEDULER_PER_INVOCATION,
                source: format!(
                    "template: {rules} scheduled rule(s) on the default bus (SAM `Schedule`: no charge), {:.0} invocations/month; {:.0} EventBridge Scheduler invocations/day",
                    ticks_day * DAYS_PER_MONTH,
                    schedulers
                ),
            },
            Line {
                item: DATA_OUT,
                basis: vec![Measured, Model],
                per_job: m.job_upload_bytes / GB * DATA_OUT_PER_GB,
                per_account_day: 0.0,
                fixed_day: 0.0,
                source: format!(
                    "measured {:.2} MiB uploaded a job (FILE_UPLOAD, the publisher streams the clip from Ssemble to TikTok) at this run's {:.0} MiB clips: scales with the real clip size (model); downloads into Lambda are free",
                    m.job_upload_bytes / 1_048_576.0,
                    m.clip_bytes / 1_048_576.0
                ),
            },
        ];
        Self { lines, idle }
    }
}

fn usd(v: f64) -> String {
    if v == 0.0 {
        "$0".to_owned()
    } else if v < 0.001 {
        format!("${v:.6}")
    } else if v < 1.0 {
        format!("${v:.4}")
    } else {
        format!("${v:.2}")
    }
}

fn at_scales(f: impl Fn(f64) -> f64) -> String {
    ACCOUNTS
        .iter()
        .map(|a| usd(f(f64::from(*a))))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn basis(b: &[Basis]) -> String {
    b.iter()
        .map(|b| match b {
            Basis::Measured => "measured",
            Basis::Template => "template",
            Basis::Model => "model",
        })
        .collect::<Vec<_>>()
        .join(" + ")
}

/// The bill's rows: one per item, then the total and its verdict.
pub fn rows(r: &RunResult, template: &Template) -> Result<Vec<Row>, BillError> {
    let facts = TemplateFacts::from_template(template)?;
    let m = Measured::from_run(r);
    Ok(bill_rows(&Bill::build(&m, &facts), &m))
}

/// The rows of a built bill.
pub fn bill_rows(bill: &Bill, m: &Measured) -> Vec<Row> {
    let scales = ACCOUNTS
        .iter()
        .map(|a| format!("{a}"))
        .collect::<Vec<_>>()
        .join(" · ");
    let mut rows = vec![Row::info(
        "bill: per day at accounts",
        format!(
            "{scales} accounts × {POSTS_PER_ACCOUNT_DAY:.0} posts = {} jobs a day",
            ACCOUNTS
                .iter()
                .map(|a| format!("{:.0}", f64::from(*a) * POSTS_PER_ACCOUNT_DAY))
                .collect::<Vec<_>>()
                .join(" · ")
        ),
        format!(
            "each line: $/day at {scales} accounts; per-job figures from this run's {} published jobs; prices: {BILL_PRICES_AS_OF}",
            m.published
        ),
    )];
    for l in &bill.lines {
        let mut parts = String::new();
        for (what, v) in [
            ("a job", l.per_job),
            ("an account-day", l.per_account_day),
            ("fixed a day", l.fixed_day),
        ] {
            if v > 0.0 {
                let _ = write!(
                    parts,
                    "{}${v:.8} {what}",
                    if parts.is_empty() { "" } else { " + " }
                );
            }
        }
        if parts.is_empty() {
            parts.push_str("$0");
        }
        rows.push(Row::info(
            format!("bill: {}", l.item),
            at_scales(|a| l.usd_per_day(a)),
            format!("[{}] {}; = {parts}", basis(&l.basis), l.source),
        ));
    }
    let idle_total: f64 = bill.idle.iter().map(|(_, v)| v).sum();
    rows.push(Row::info(
        "bill: idle traffic (inside the lines above)",
        format!("{} a day at any scale", usd(idle_total)),
        bill.idle
            .iter()
            .map(|(what, v)| format!("{what} {}", usd(*v)))
            .collect::<Vec<_>>()
            .join("; "),
    ));
    let data_out = bill.line(DATA_OUT);
    let without_data_out = |a: f64| bill.total(a) - data_out.map_or(0.0, |l| l.usd_per_day(a));
    let goal = f64::from(GOAL_ACCOUNTS);
    let total = bill.total(goal);
    let mut dominant: Vec<(&str, f64)> = bill
        .lines
        .iter()
        .map(|l| (l.item, l.usd_per_day(goal)))
        .collect();
    dominant.sort_by(|a, b| b.1.total_cmp(&a.1));
    let top: Vec<String> = dominant
        .iter()
        .take(3)
        .map(|(i, v)| format!("{i} {} ({:.0} %)", usd(*v), 100.0 * v / total.max(1e-12)))
        .collect();
    rows.push(Row::new(
        "bill: total, all in",
        format!(
            "{} a day (without data transfer out: {})",
            at_scales(|a| bill.total(a)),
            at_scales(without_data_out)
        ),
        format!("< ${GOAL_USD_PER_DAY:.0}/day at {GOAL_ACCOUNTS} accounts"),
        Verdict::of(total < GOAL_USD_PER_DAY),
        format!(
            "sum of the lines above; at {GOAL_ACCOUNTS} accounts the largest: {}",
            top.join(", ")
        ),
    ));
    if let Some(l) = data_out
        && m.clip_bytes > 0.0
    {
        // The data-transfer line is linear in the clip size: the size at which the total
        // reaches the goal.
        let per_mib_day = l.usd_per_day(goal) / (m.clip_bytes / 1_048_576.0);
        let room = GOAL_USD_PER_DAY - without_data_out(goal);
        rows.push(Row::info(
            "bill: clip size the goal allows",
            if room <= 0.0 {
                "none: the rest of the bill alone misses the goal".to_owned()
            } else {
                format!(
                    "{:.1} MiB a clip at {GOAL_ACCOUNTS} accounts ({} a day per MiB of clip)",
                    room / per_mib_day.max(1e-12),
                    usd(per_mib_day)
                )
            },
            "data transfer out is the only line that follows the clip size; a 60 s 1080p clip is typically tens of MiB (not measured here)".to_owned(),
        ));
    }
    rows
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn template() -> Template {
        Template::from_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml")).unwrap()
    }

    fn measured() -> Measured {
        Measured {
            job: PerJob {
                rru: 50.0,
                wru: 200.0,
                sqs: 6.0,
                secrets: 0.0,
                kms: 1.0,
                http: 6.0,
                lambda_requests: 9.0,
                gb_s: 3.0,
            },
            job_logs: Logs {
                bytes: 5_000.0,
                events: 20.0,
            },
            job_upload_bytes: 2.0 * 1_048_576.0,
            clip_bytes: 2.0 * 1_048_576.0,
            job_kept_bytes: 4_000.0,
            job_kept_index_bytes: 2_000.0,
            job_ttl_byte_days: 300.0,
            account_bytes: 1_000.0,
            account_index_bytes: 200.0,
            refresh: PerRefresh {
                rru: 3.0,
                wru: 4.0,
                kms: 3.0,
                secrets: 0.0,
                gb_s: 0.1,
                logs: Logs {
                    bytes: 400.0,
                    events: 2.0,
                },
            },
            refreshes_measured: 4,
            tick: PerTick {
                rru: 4.0,
                gb_s: 0.01,
                logs: Logs {
                    bytes: 300.0,
                    events: 1.0,
                },
            },
            ticks_measured: 30,
            metrics: 11,
            published: 20,
            window_data_keys: 0,
        }
    }

    fn facts() -> TemplateFacts {
        TemplateFacts::from_template(&template()).unwrap()
    }

    #[test]
    fn the_total_is_the_sum_of_the_lines_at_every_scale() {
        let bill = Bill::build(&measured(), &facts());
        for a in ACCOUNTS {
            let a = f64::from(a);
            let sum: f64 = bill.lines.iter().map(|l| l.usd_per_day(a)).sum();
            assert!((bill.total(a) - sum).abs() < 1e-12);
            let parts: f64 = bill
                .lines
                .iter()
                .map(|l| l.fixed_day + a * (l.per_account_day + POSTS_PER_ACCOUNT_DAY * l.per_job))
                .sum();
            assert!((bill.total(a) - parts).abs() < 1e-9);
        }
    }

    #[test]
    fn template_resources_cost_the_same_at_every_scale() {
        let bill = Bill::build(&measured(), &facts());
        for item in [
            "Secrets Manager secrets",
            "KMS keys",
            "CloudWatch custom metrics",
            "CloudWatch alarms",
            "CloudWatch dashboard",
            "EventBridge schedule",
        ] {
            let l = bill.line(item).unwrap();
            assert_eq!(l.usd_per_day(100.0), l.usd_per_day(10_000.0), "{item}");
            assert_eq!((l.per_job, l.per_account_day), (0.0, 0.0), "{item}");
        }
        // Alarms: 9 single-metric alarms + a metric-math alarm reading 10 metrics, $0.10 each.
        let alarms = bill.line("CloudWatch alarms").unwrap();
        assert!((alarms.fixed_day - 19.0 * 0.10 / DAYS_PER_MONTH).abs() < 1e-12);
    }

    #[test]
    fn job_figures_scale_with_posts_and_idle_figures_do_not() {
        let f = facts();
        let base = Bill::build(&measured(), &f);
        let mut more = measured();
        more.job.rru *= 2.0;
        more.job.wru *= 2.0;
        let doubled = Bill::build(&more, &f);
        let (a, b) = (
            base.line("DynamoDB requests (on-demand)").unwrap(),
            doubled.line("DynamoDB requests (on-demand)").unwrap(),
        );
        assert!((b.per_job - 2.0 * a.per_job).abs() < 1e-15);
        // The idle reconciler ticks and the refreshes are not per job.
        assert_eq!(a.fixed_day, b.fixed_day);
        assert_eq!(a.per_account_day, b.per_account_day);
        assert!(a.fixed_day > 0.0);
        // A line with only a per-job part is linear in the accounts.
        let http = base.line("API Gateway HTTP API").unwrap();
        assert!((http.usd_per_day(1_000.0) - 10.0 * http.usd_per_day(100.0)).abs() < 1e-12);
        assert!(
            (http.usd_per_day(100.0) - 100.0 * 15.0 * 6.0 * HTTP_API_PER_REQUEST).abs() < 1e-12
        );
    }

    #[test]
    fn token_refreshes_scale_with_accounts_not_posts() {
        let bill = Bill::build(&measured(), &facts());
        let kms = bill.line("KMS requests").unwrap();
        let refreshes = refreshes_per_account_day();
        // A 24 h token refreshed 5 min early on use: a little over one refresh a day.
        assert!(refreshes > 1.0 && refreshes < 1.01, "{refreshes}");
        assert!((kms.per_account_day - refreshes * 3.0 * KMS_PER_REQUEST).abs() < 1e-15);
        assert!((kms.per_job - KMS_PER_REQUEST).abs() < 1e-15);
        let sqs = bill.line("SQS requests").unwrap();
        assert_eq!(sqs.per_account_day, 0.0);
        // Idle long polls: 3 mappings × 5 pollers × 4,320 polls a day, two FIFO, one standard.
        let polls = 5.0 * 4_320.0;
        let idle = polls * (2.0 * SQS_FIFO_PER_REQUEST + SQS_STANDARD_PER_REQUEST);
        assert!((sqs.fixed_day - idle).abs() < 1e-12, "{}", sqs.fixed_day);
        assert_eq!(bill.idle[0], ("empty SQS receives", sqs.fixed_day));
    }

    #[test]
    fn platform_lines_follow_the_system_log_level() {
        let m = measured();
        let mut f = facts();
        assert_eq!(f.system_log_level, "WARN");
        let quiet = Bill::build(&m, &f);
        f.system_log_level = "INFO".to_owned();
        let loud = Bill::build(&m, &f);
        let (q, l) = (
            quiet.line("CloudWatch Logs ingestion").unwrap(),
            loud.line("CloudWatch Logs ingestion").unwrap(),
        );
        let extra = m.job.lambda_requests
            * (PLATFORM_BYTES_PER_INVOCATION
                + PLATFORM_EVENTS_PER_INVOCATION * LOG_EVENT_OVERHEAD_BYTES)
            / GB
            * LOGS_INGEST_PER_GB;
        assert!((l.per_job - q.per_job - extra).abs() < 1e-15);
    }

    #[test]
    fn the_templates_fixed_resources_are_counted() {
        let f = facts();
        assert_eq!(f.functions.len(), 7);
        assert!(f.arm64);
        assert_eq!((f.secrets, f.kms_keys, f.dashboards), (2, 1, 1));
        assert!(f.kms_rotation);
        assert_eq!(
            (f.alarms, f.alarm_metrics, f.alarm_metrics_high_res),
            (10, 19, 0)
        );
        // The work queues (FIFO) and the webhook queue (standard); the table's stream mapping
        // is not an SQS one (its reads are free to Lambda).
        assert_eq!((f.event_source_mappings, f.queues), (3, 6));
        assert_eq!(f.esm_fifo_mappings, 2);
        assert_eq!((f.tables, f.pitr_tables), (2, 2));
        assert_eq!((f.log_groups, f.log_retention_days), (7, Some(90.0)));
        assert_eq!(
            f.schedules,
            [ScheduleFacts {
                function: "ReconcilerFunction".to_owned(),
                period_s: 60.0,
                scheduler: false,
            }]
        );
        // The reconciler reads the Ssemble key and the TikTok app secret at init; the others one.
        let reconciler = f
            .functions
            .iter()
            .find(|x| x.id == "ReconcilerFunction")
            .unwrap();
        assert_eq!(reconciler.secrets_read_at_init, 2);
        let bill = Bill::build(&measured(), &f);
        assert_eq!(bill.line("EventBridge schedule").unwrap().fixed_day, 0.0);
    }

    #[test]
    fn metrics_are_counted_per_dimension_set() {
        let series: BTreeSet<(String, String)> = EMITTERS
            .iter()
            .map(|(m, f)| ((*m).to_owned(), (*f).to_owned()))
            .collect();
        // 17 names per Stage + the 10 (name, function) pairs of the 5 names two functions emit.
        assert_eq!(metric_count(&series), 27);
    }

    /// The metrics published per function are exactly those more than one function emits.
    #[test]
    fn per_function_metrics_are_the_shared_ones() {
        let mut emitters: std::collections::BTreeMap<&str, u32> = Default::default();
        for (m, _) in EMITTERS {
            *emitters.entry(m).or_default() += 1;
        }
        let shared: BTreeSet<&str> = emitters
            .into_iter()
            .filter(|(_, n)| *n > 1)
            .map(|(m, _)| m)
            .collect();
        let per_function: BTreeSet<&str> = reelay_aws::metrics::PER_FUNCTION.into_iter().collect();
        assert_eq!(per_function, shared);
    }

    /// EMITTERS names every metric the functions emit, and only those.
    #[test]
    fn emitters_match_the_sources() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../functions");
        let declared: BTreeSet<&str> = reelay_aws::metrics::METRICS.into_iter().collect();
        let listed: BTreeSet<&str> = EMITTERS.iter().map(|(m, _)| *m).collect();
        assert_eq!(declared, listed);
        for dir in std::fs::read_dir(root).unwrap() {
            let dir = dir.unwrap().path();
            let function = dir.file_name().unwrap().to_string_lossy().into_owned();
            let mut text = String::new();
            let mut stack = vec![dir.join("src")];
            while let Some(p) = stack.pop() {
                if p.is_dir() {
                    stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
                } else if p.extension().is_some_and(|e| e == "rs") {
                    text.push_str(&std::fs::read_to_string(&p).unwrap());
                }
            }
            // `metrics::webhook` is the one helper that names its metrics itself.
            let webhook = text.contains("metrics::webhook(");
            let emits = text.contains("metrics::emit(") || webhook;
            for name in declared.iter() {
                let named = text.contains(&format!("\"{name}\""))
                    || (webhook && name.starts_with("Webhooks"));
                let listed = EMITTERS.contains(&(name, function.as_str()));
                assert_eq!(emits && named, listed, "{function} / {name}");
            }
        }
    }
}
