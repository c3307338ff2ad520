//! The demo a `make run` shows: a tenant, several TikTok accounts connected through OAuth, and a
//! batch of jobs across them (direct posts and drafts, some scheduled ahead, one render that
//! fails, one publish of an existing render through the seed's route).

use std::time::Duration;

use reelay_domain::UtcTime;
use serde_json::{Value, json};

use crate::client::{ApiClient, ClientError};

/// What the demo expects of a job; a mismatch is reported, not hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Publish,
    RenderFail,
}

/// A job the run follows, as submitted.
#[derive(Debug, Clone)]
pub struct TrackedJob {
    pub job_id: String,
    pub account_id: String,
    /// Short label for tables (`direct`, `draft +20s`, `seed`...).
    pub label: String,
    /// The post title sent to TikTok; the simulator counts publishes per title.
    pub title: Option<String>,
    pub draft: bool,
    pub schedule_at: Option<UtcTime>,
    pub expect: Expect,
}

/// One demo job to submit.
#[derive(Debug, Clone)]
pub struct DemoJob {
    pub account: usize,
    pub draft: bool,
    pub delay: Option<Duration>,
    pub expect: Expect,
}

/// The accounts and jobs of a demo.
#[derive(Debug, Clone)]
pub struct DemoPlan {
    /// `(account id, connect mode)`.
    pub accounts: Vec<(String, &'static str)>,
    pub jobs: Vec<DemoJob>,
    /// Also publish the first job's render to this account through `POST /api/publish/tiktok`.
    pub seed_to: Option<usize>,
}

impl DemoPlan {
    /// Four accounts (three direct, one drafts), eleven jobs, one seed publish.
    pub fn standard() -> Self {
        let direct = |account, delay: Option<u64>| DemoJob {
            account,
            draft: false,
            delay: delay.map(Duration::from_secs),
            expect: Expect::Publish,
        };
        let draft = |account, delay: Option<u64>| DemoJob {
            draft: true,
            ..direct(account, delay)
        };
        Self {
            accounts: vec![
                ("acct_demo_01".into(), "direct"),
                ("acct_demo_02".into(), "direct"),
                ("acct_demo_03".into(), "direct"),
                ("acct_demo_04".into(), "draft"),
            ],
            jobs: vec![
                direct(0, None),
                direct(0, None),
                direct(0, Some(20)),
                direct(1, None),
                direct(1, None),
                direct(1, Some(30)),
                direct(2, None),
                direct(2, None),
                DemoJob {
                    expect: Expect::RenderFail,
                    ..direct(2, None)
                },
                draft(3, None),
                draft(3, Some(15)),
            ],
            seed_to: Some(3),
        }
    }
}

/// A unique tag per run, so titles (and sources) never collide across runs or tests.
pub fn run_tag() -> String {
    (0..4)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect()
}

/// The body of `POST /v1/jobs` for one demo job.
pub fn job_body(account_id: &str, n: usize, tag: &str, job: &DemoJob, now: UtcTime) -> Value {
    let path = match job.expect {
        Expect::RenderFail => "renderfail",
        Expect::Publish => "watch",
    };
    let title = format!("Reelay demo {tag} #{n:02}");
    let post = if job.draft {
        // The creator writes a draft's caption in the app; Reelay refuses one.
        json!({ "mode": "draft" })
    } else {
        json!({ "mode": "direct", "privacyLevel": "PUBLIC_TO_EVERYONE", "title": title })
    };
    let mut body = json!({
        "tiktokAccountId": account_id,
        "source": {
            "url": format!("https://www.youtube.com/{path}?v=reelay-{tag}-{n:02}"),
            "start": 0,
            "end": 60,
        },
        "post": post,
    });
    if let (Some(delay), Some(obj)) = (job.delay, body.as_object_mut()) {
        obj.insert("scheduleAt".into(), json!(now.plus(delay).to_rfc3339()));
    }
    body
}

fn label(job: &DemoJob) -> String {
    let mut l = String::from(if job.draft { "draft" } else { "direct" });
    if let Some(d) = job.delay {
        l.push_str(&format!(" +{}s", d.as_secs()));
    }
    if job.expect == Expect::RenderFail {
        l.push_str(" (bad source)");
    }
    l
}

/// Connects every account of the plan through the OAuth flow.
pub async fn connect_accounts(client: &ApiClient, plan: &DemoPlan) -> Result<(), ClientError> {
    for (account, mode) in &plan.accounts {
        client.connect_account(account, mode).await?;
    }
    Ok(())
}

/// Submits the plan's jobs through `POST /v1/jobs` (each with its own idempotency key).
pub async fn submit_jobs(
    client: &ApiClient,
    plan: &DemoPlan,
    tag: &str,
) -> Result<Vec<TrackedJob>, ClientError> {
    let mut tracked = Vec::with_capacity(plan.jobs.len() + 1);
    for (i, job) in plan.jobs.iter().enumerate() {
        let n = i + 1;
        let (account, _) = plan
            .accounts
            .get(job.account)
            .ok_or_else(|| ClientError::Protocol(format!("job {n} names no account")))?;
        let now = UtcTime::from_millis(chrono::Utc::now().timestamp_millis());
        let body = job_body(account, n, tag, job, now);
        let answer = client
            .post("/v1/jobs", &body, Some(&format!("demo-{tag}-{n:02}")))
            .await?;
        let Some(job_id) = answer.str("/jobId").filter(|_| answer.status == 202) else {
            return Err(ClientError::Status {
                what: "create job",
                status: answer.status,
                body: answer.body.to_string(),
            });
        };
        tracked.push(TrackedJob {
            job_id: job_id.to_owned(),
            account_id: account.clone(),
            label: label(job),
            title: body
                .pointer("/post/title")
                .and_then(Value::as_str)
                .map(str::to_owned),
            draft: job.draft,
            schedule_at: job.delay.map(|d| now.plus(d)),
            expect: job.expect,
        });
    }
    Ok(tracked)
}

/// The plan's seed publish, if it has one: the first submitted job's render to the plan's
/// `seed_to` account ([`seed_publish`]), with the route's answer.
pub async fn seed_planned(
    client: &ApiClient,
    plan: &DemoPlan,
    tracked: &[TrackedJob],
    tag: &str,
    wait: Duration,
) -> Result<Option<(TrackedJob, Value)>, ClientError> {
    let (Some(to), Some(first)) = (plan.seed_to, tracked.first()) else {
        return Ok(None);
    };
    let (account, _) = plan
        .accounts
        .get(to)
        .ok_or_else(|| ClientError::Protocol("the seed publish names no account".into()))?;
    seed_publish(client, first, account, tag, wait)
        .await
        .map(Some)
}

/// Waits until `source` has a Ssemble `requestId`, then publishes that render to `account`
/// through the seed's route (`POST /api/publish/tiktok`, the seed's request shape).
pub async fn seed_publish(
    client: &ApiClient,
    source: &TrackedJob,
    account: &str,
    tag: &str,
    wait: Duration,
) -> Result<(TrackedJob, Value), ClientError> {
    let deadline = tokio::time::Instant::now() + wait;
    let request_id = loop {
        let job = client.get(&format!("/v1/jobs/{}", source.job_id)).await?;
        if let Some(rid) = job.str("/requestId") {
            break rid.to_owned();
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ClientError::Protocol(format!(
                "job {} got no requestId within {wait:?}",
                source.job_id
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let key = format!("seed-{tag}");
    let body = json!({
        "requestId": request_id,
        "tiktokAccountId": account,
        "idempotencyKey": key,
    });
    let answer = client.post("/api/publish/tiktok", &body, None).await?;
    let Some(job_id) = answer
        .str("/jobId")
        .filter(|_| matches!(answer.status, 200 | 202))
    else {
        return Err(ClientError::Status {
            what: "seed publish",
            status: answer.status,
            body: answer.body.to_string(),
        });
    };
    let tracked = TrackedJob {
        job_id: job_id.to_owned(),
        account_id: account.to_owned(),
        label: "seed draft".into(),
        title: None,
        draft: true,
        schedule_at: None,
        expect: Expect::Publish,
    };
    Ok((tracked, answer.body))
}
