//! Cost per published job: what the real stack asked of DynamoDB, SQS, Secrets Manager, KMS
//! and Lambda while a batch of direct posts went from `POST /v1/jobs` to `publicly_available`,
//! priced at the list prices in [`crate::prices`], and held against the floor the state
//! machine needs.
//!
//! The floor: every state a published job passes through is one conditional write of its item
//! (⌈item size / 1 KB⌉ WRU, creation included) and every transition after creation needs one
//! consistent read of it first (1 RRU for an item ≤ 4 KB). Nothing else — no audit item, no
//! transaction, no index, no budget or account read — is in the floor, so the ratio shows what
//! the design adds on top of the bare lifecycle.
//!
//! Two kinds of job write are measured apart: a transition (`JobStore::save`/`create`: the job,
//! its audit item and its pointers in one `TransactWriteItems`, billed twice) and a reschedule
//! (`JobStore::reschedule`: waiting, polling and backing off move only the next check, one
//! conditional `PutItem` of the job item — no audit item, no transaction, no version).

use std::fmt::Write as _;

use crate::meter::Meter;
use crate::prices::*;
use crate::report::{Row, Verdict};
use crate::stackrun::{FunctionTimes, RunResult};

/// Goals of issue 13 ("writes per job near the floor"): the measured DynamoDB cost within 1.5×
/// the floor the state machine needs (an earlier issue asked 1.25×), and at most $0.05 per 1,000
/// published jobs, all in (the "$0.19 per 1,000 jobs" it starts from was this row's total).
const MAX_RATIO: f64 = 1.5;
const MAX_USD_PER_1000: f64 = 0.05;

/// Figures of one run, per published job: what [`rows`] prices and what the whole bill
/// ([`crate::bill`]) scales.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PerJob {
    pub rru: f64,
    /// Write units, refused conditional writes counted at 1 WRU each.
    pub wru: f64,
    /// SQS requests, empty receives (idle polls) excluded.
    pub sqs: f64,
    pub secrets: f64,
    pub kms: f64,
    /// HTTP API requests: invocations of the functions behind it.
    pub http: f64,
    pub lambda_requests: f64,
    pub gb_s: f64,
}

/// The functions behind the HTTP API (one API request per invocation).
pub const HTTP_FUNCTIONS: [&str; 3] = ["ingest-api", "ssemble-webhook", "tiktok-webhook"];

impl PerJob {
    /// Divides the run's window by its published jobs (at least one).
    pub fn from_run(r: &RunResult) -> Self {
        let n = published(r).max(1) as f64;
        let http_invocations: usize = HTTP_FUNCTIONS
            .iter()
            .filter_map(|f| r.functions.get(*f))
            .map(FunctionTimes::invocations)
            .sum();
        Self {
            http: http_invocations as f64 / n,
            lambda_requests: sum_fn(r, |f| f.invocations() as f64) / n,
            gb_s: sum_fn(r, FunctionTimes::billed_gb_s) / n,
            ..Self::from_meter(&r.meter, n)
        }
    }

    /// The AWS requests of a metered window divided by `jobs` (Lambda and HTTP API left at 0:
    /// a window without timed invocations, such as the load bench's simulated day).
    pub fn from_meter(m: &Meter, jobs: f64) -> Self {
        let n = jobs.max(1.0);
        // Refused conditional writes are billed on AWS (≥ 1 WRU each) but carry no figure here:
        // counted at 1 WRU each, a lower bound.
        let failed_writes = m.dynamo_failed_writes() as f64;
        Self {
            rru: m.dynamo_read_units() / n,
            wru: (m.dynamo_write_units() + failed_writes) / n,
            sqs: m.sqs_requests().saturating_sub(m.sqs_empty_receives()) as f64 / n,
            secrets: m.secrets_requests() as f64 / n,
            kms: m.kms_requests() as f64 / n,
            ..Self::default()
        }
    }

    pub fn dynamo_usd(&self) -> f64 {
        self.rru * DYNAMO_PER_RRU + self.wru * DYNAMO_PER_WRU
    }

    /// DynamoDB, SQS, Secrets Manager and KMS requests, priced (no Lambda, no HTTP API).
    pub fn requests_usd(&self) -> f64 {
        self.dynamo_usd()
            + self.sqs * SQS_FIFO_PER_REQUEST
            + self.secrets * SECRETS_PER_CALL
            + self.kms * KMS_PER_REQUEST
    }

    fn total_usd(&self, per_gb_s: f64) -> f64 {
        self.requests_usd()
            + self.http * HTTP_API_PER_REQUEST
            + self.lambda_requests * LAMBDA_PER_REQUEST
            + self.gb_s * per_gb_s
    }
}

/// Jobs of the run that reached `publicly_available`.
pub fn published(r: &RunResult) -> usize {
    r.states.get("publicly_available").copied().unwrap_or(0)
}

fn sum_fn(r: &RunResult, f: impl Fn(&FunctionTimes) -> f64) -> f64 {
    r.functions.values().map(f).sum()
}

pub fn rows(r: &RunResult, params: &str) -> Vec<Row> {
    let n = published(r).max(1) as f64;
    let m = &r.meter;
    let failed_writes = m.dynamo_failed_writes() as f64;
    let per = PerJob::from_run(r);
    let wcu_per_state = (r.job_item_bytes as f64 / 1024.0).ceil().max(1.0);
    let floor_wru = r.path_states as f64 * wcu_per_state;
    let floor_rru = r.path_states.saturating_sub(1) as f64;
    let floor_usd = floor_rru * DYNAMO_PER_RRU + floor_wru * DYNAMO_PER_WRU;
    let ratio = per.dynamo_usd() / floor_usd.max(1e-12);

    let mut invocations = String::new();
    for (name, f) in &r.functions {
        let _ = write!(
            invocations,
            "{name} {:.2} × {:.1} ms @ {} MB; ",
            f.invocations() as f64 / n,
            f.total_ms() / f.invocations().max(1) as f64,
            f.memory_mb
        );
    }
    let mut by_op = String::new();
    for (op, c) in &m.ops {
        if !op.starts_with("dynamodb.") || op.contains(':') {
            continue;
        }
        let gsi: f64 = c.index_units.values().sum();
        let _ = write!(
            by_op,
            "{} {:.1} req {:.1} CU (GSI {:.1}){}; ",
            op.trim_start_matches("dynamodb."),
            c.requests as f64 / n,
            c.capacity_units.max(c.estimated_read_units) / n,
            gsi / n + 0.0,
            if c.errors > 0 {
                format!(", {:.1} refused", c.errors as f64 / n)
            } else {
                String::new()
            }
        );
    }
    let mut by_kind = String::new();
    for (op, c) in &m.ops {
        if let Some(rest) = op.strip_prefix("dynamodb.").filter(|o| o.contains(':')) {
            let _ = write!(
                by_kind,
                "{rest} {:.1} req {:.1} CU{}; ",
                c.requests as f64 / n,
                c.capacity_units / n,
                if c.errors > 0 {
                    format!(" ({:.1} refused)", c.errors as f64 / n)
                } else {
                    String::new()
                }
            );
        }
    }
    let mut sqs_ops = String::new();
    for (op, c) in &m.ops {
        if let Some(op) = op.strip_prefix("sqs.") {
            let _ = write!(sqs_ops, "{op} {:.2}; ", c.requests as f64 / n);
        }
    }
    let idle_q = r.idle_tick_meter.get("dynamodb.Query@due");
    let idle_n = r.idle_ticks.invocations().max(1) as f64;
    let idle_rru = idle_q.capacity_units.max(idle_q.estimated_read_units) / idle_n;
    let idle_ms = r.idle_ticks.total_ms() / idle_n;
    let ticks_per_month = 60.0 * 24.0 * 30.0;
    let idle_month = ticks_per_month
        * (idle_rru * DYNAMO_PER_RRU
            + LAMBDA_PER_REQUEST
            + idle_ms.ceil() / 1e3 * f64::from(r.idle_ticks.memory_mb) / 1024.0
                * LAMBDA_ARM_PER_GB_S);

    // Job writes by kind: transitions are transactions; reschedules are the single-item puts of
    // job items (the only single-item `PutItem` on a `JOB#` key).
    let tx = m.get("dynamodb.TransactWriteItems");
    let resched = m.get("dynamodb.PutItem:JOB");
    let resched_wru = resched.capacity_units + resched.errors as f64;

    let states: Vec<String> = r.states.iter().map(|(s, c)| format!("{s} {c}")).collect();
    let unreported = m.dynamo_unreported();
    vec![
        Row::info(
            "3 cost: run",
            format!(
                "{} jobs → {}; {:.0} s{}",
                r.jobs,
                states.join(", "),
                r.elapsed_s,
                if r.timed_out { " (deadline passed)" } else { "" }
            ),
            params.to_owned(),
        ),
        Row::info(
            "3 cost: DynamoDB / job",
            format!(
                "{:.1} requests, {:.1} RRU, {:.1} WRU (of which GSI {:.1}; refused conditional writes {:.1}, counted 1 WRU each){}",
                m.dynamo_requests() as f64 / n,
                per.rru,
                per.wru,
                m.dynamo_index_write_units() / n,
                failed_writes / n,
                if unreported > 0 {
                    format!("; {unreported} requests carried no capacity figure")
                } else {
                    String::new()
                }
            ),
            format!("by operation: {by_op}"),
        ),
        Row::info(
            "3 cost: job writes / job",
            format!(
                "{:.1} transitions ({:.1} WRU incl. audit items, pointers and GSI copies, {:.1} refused), {:.1} reschedules ({:.1} WRU, {:.1} refused); the published job's trail: {} audit events",
                tx.requests as f64 / n,
                (tx.capacity_units + tx.errors as f64) / n,
                tx.errors as f64 / n,
                resched.requests as f64 / n,
                resched_wru / n,
                resched.errors as f64 / n,
                r.path_transitions
            ),
            "transition = TransactWriteItems (job + audit item + pointers, billed 2×); reschedule = one conditional PutItem of the job item (a poll, a wait or a back-off moves only the next check: no audit item, no transaction)".to_owned(),
        ),
        Row::info(
            "3 cost: DynamoDB by item type / job",
            by_kind,
            "single-item requests by key prefix (JOB job, IDEM idempotency, BUDGET budget log, LOCK lease, ACCT account, APIKEY, PUB/REQ pointers); transactions are under TransactWriteItems above".to_owned(),
        ),
        Row::info(
            "3 cost: SQS / job",
            format!(
                "{:.1} requests (idle polls excluded: {} empty receives in the window)",
                per.sqs,
                m.sqs_empty_receives()
            ),
            format!("by action: {sqs_ops}"),
        ),
        Row::info(
            "3 cost: Lambda / job",
            format!(
                "{:.2} invocations, {:.3} GB-s billed (durations measured here, rounded up to 1 ms)",
                per.lambda_requests, per.gb_s
            ),
            invocations,
        ),
        Row::info(
            "3 cost: other / job",
            format!(
                "{:.2} Secrets Manager calls, {:.2} KMS calls, {:.2} HTTP API requests",
                per.secrets, per.kms, per.http
            ),
            "HTTP API = ingest + webhook invocations".to_owned(),
        ),
        Row::new(
            "3 cost: $ / 1,000 published jobs",
            format!(
                "arm64 ${:.4}, x86_64 ${:.4} (DynamoDB ${:.4}, SQS ${:.4}, Lambda arm64 ${:.4}, Secrets ${:.4}, KMS ${:.4}, HTTP API ${:.4})",
                1e3 * per.total_usd(LAMBDA_ARM_PER_GB_S),
                1e3 * per.total_usd(LAMBDA_X86_PER_GB_S),
                1e3 * per.dynamo_usd(),
                1e3 * per.sqs * SQS_FIFO_PER_REQUEST,
                1e3 * (per.lambda_requests * LAMBDA_PER_REQUEST + per.gb_s * LAMBDA_ARM_PER_GB_S),
                1e3 * per.secrets * SECRETS_PER_CALL,
                1e3 * per.kms * KMS_PER_REQUEST,
                1e3 * per.http * HTTP_API_PER_REQUEST
            ),
            format!("≤ ${MAX_USD_PER_1000:.2} (arm64, all in)"),
            Verdict::of(1e3 * per.total_usd(LAMBDA_ARM_PER_GB_S) <= MAX_USD_PER_1000),
            format!("list prices {PRICES_AS_OF}: DynamoDB on-demand $0.125/M RRU, $0.625/M WRU; SQS FIFO $0.50/M; Lambda $0.20/M + $0.0000133334 (arm64) / $0.0000166667 (x86) per GB-s; Secrets Manager $0.05/10k; KMS $0.03/10k; HTTP API $1.00/M"),
        ),
        Row::new(
            "3 cost: ratio to floor",
            format!(
                "{ratio:.2}× (DynamoDB ${:.4} vs floor ${:.4} per 1,000; floor {floor_rru:.0} RRU + {floor_wru:.0} WRU per job)",
                1e3 * per.dynamo_usd(),
                1e3 * floor_usd
            ),
            format!("≤ {MAX_RATIO}×"),
            Verdict::of(ratio <= MAX_RATIO),
            format!(
                "floor = {} states on a published job's path × ⌈{} B item / 1 KB⌉ WRU + one consistent read per transition; the excess is audit items, transactions (2×), reschedules (one job-item write each, no audit), GSI copies, budget/account/lease/idempotency items and status reads",
                r.path_states, r.job_item_bytes
            ),
        ),
        Row::info(
            "3 cost: idle reconciler tick",
            format!(
                "{:.1} due-index queries, {idle_rru:.1} RRU, {idle_ms:.1} ms per tick → ${idle_month:.3} / month at 1 tick/min (arm64)",
                idle_q.requests as f64 / idle_n
            ),
            format!("{} empty ticks in the window, not charged to jobs", r.idle_ticks.invocations()),
        ),
    ]
}
