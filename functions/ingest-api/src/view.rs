//! The JSON a client sees: jobs, pages, accounts, authorize links and creator settings. Domain
//! types stay domain types; their names and shapes for clients are decided here, once.

use serde::Serialize;
use serde_json::{Value, json};

use reelay_domain::job::{Hold, JobError};
use reelay_domain::ports::JobPage;
use reelay_domain::usecase::{
    AccountPage, AccountStatus, ConnectLink, Connected, CreatorSettings, Disconnected,
};
use reelay_domain::{AccountId, AuditEvent, Job, JobSource};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobView<'a> {
    pub job_id: &'a str,
    pub tiktok_account_id: &'a str,
    pub state: &'static str,
    pub source: Value,
    pub post: &'a reelay_domain::PostSettings,
    pub schedule_at: String,
    pub request_id: Option<&'a str>,
    pub publish_id: Option<&'a str>,
    pub post_ids: &'a [String],
    pub attempt: u32,
    pub hold: Option<&'a Hold>,
    /// The last error that still describes the job: cleared when a publish attempt is accepted;
    /// a FAILED publish carries TikTok's `fail_reason` as its code.
    pub error: Option<&'a JobError>,
    pub next_check_at: Option<String>,
    pub taken_down_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The request that created the job (`X-Request-Id`).
    pub api_request_id: Option<&'a str>,
}

impl<'a> JobView<'a> {
    pub fn new(job: &'a Job) -> Self {
        let source = match &job.source {
            JobSource::Render(r) => serde_json::to_value(r).unwrap_or(Value::Null),
            JobSource::Rendered { request_id } => json!({ "requestId": request_id }),
        };
        Self {
            job_id: job.public_id().as_str(),
            tiktok_account_id: job.account_id.as_str(),
            state: job.state.as_str(),
            source,
            post: &job.post,
            schedule_at: job.schedule_at.to_rfc3339(),
            request_id: job.request_id.as_ref().map(|r| r.as_str()),
            publish_id: job.publish_id.as_ref().map(|p| p.as_str()),
            post_ids: &job.post_ids,
            attempt: job.attempt,
            hold: job.hold.as_ref(),
            error: job.last_error.as_ref(),
            next_check_at: job.next_check.map(|c| c.at.to_rfc3339()),
            taken_down_at: job.taken_down_at.map(|t| t.to_rfc3339()),
            created_at: job.created_at.to_rfc3339(),
            updated_at: job.updated_at.to_rfc3339(),
            api_request_id: job.api_request_id.as_deref(),
        }
    }
}

/// `GET /v1/jobs/{jobId}`: the job and one page of its audit trail, oldest first.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobWithAudit<'a> {
    #[serde(flatten)]
    pub job: JobView<'a>,
    pub audit: &'a [AuditEvent],
    /// The `auditAfter` that continues the trail; `null` on its last page.
    pub audit_next_after: Option<u64>,
}

/// The seed's response shape: `{"jobId","state","publishId","nextCheckAt"}`.
pub fn seed_view(job: &Job) -> Value {
    json!({
        "jobId": job.public_id().as_str(),
        "state": job.state.as_str(),
        "publishId": job.publish_id.as_ref().map(|p| p.as_str()),
        "nextCheckAt": job.next_check.map(|c| c.at.to_rfc3339()),
    })
}

pub fn job_page_view(page: &JobPage) -> Value {
    let jobs: Vec<JobView<'_>> = page.jobs.iter().map(JobView::new).collect();
    json!({ "jobs": jobs, "nextCursor": page.next_cursor })
}

/// An account's connection health and the budgets left now, keyed by budget name.
pub fn account_view(status: &AccountStatus) -> Value {
    let account = &status.account;
    let budgets: serde_json::Map<String, Value> = status
        .budgets
        .iter()
        .map(|b| {
            (
                b.kind.as_str().to_owned(),
                json!({ "remaining": b.remaining, "limit": b.limit, "windowSeconds": b.window_secs }),
            )
        })
        .collect();
    json!({
        "tiktokAccountId": account.account_id.as_str(),
        "health": account.health,
        "healthReason": account.health_reason,
        "blockedUntil": account.blocked_until.map(|t| t.to_rfc3339()),
        "blockedReason": account.blocked_reason,
        "scopes": account.scopes,
        "connectedAt": account.connected_at.map(|t| t.to_rfc3339()),
        "authorizationExpiresAt": account.authorization_expires_at.map(|t| t.to_rfc3339()),
        "pendingDrafts": status.pending_drafts,
        "budgets": budgets,
    })
}

pub fn account_page_view(page: &AccountPage) -> Value {
    json!({
        "accounts": page.accounts.iter().map(account_view).collect::<Vec<_>>(),
        "nextAfter": page.next_after.as_ref().map(|a| a.as_str()),
    })
}

/// A disconnect's answer: the account as it now stands and what happened to its jobs.
pub fn disconnected_view(done: &Disconnected) -> Value {
    json!({
        "tiktokAccountId": done.account.account_id.as_str(),
        "health": done.account.health,
        "healthReason": done.account.health_reason,
        "cancelledJobs": done.cancelled,
        "inFlightJobs": done.in_flight,
        "creatorReleased": done.creator_released,
        "revokedAtTikTok": done.revoked,
    })
}

pub fn connect_view(link: &ConnectLink) -> Value {
    json!({
        "tiktokAccountId": link.account_id.as_str(),
        "authorizeUrl": link.authorize_url,
        "expiresAt": link.expires_at.to_rfc3339(),
    })
}

pub fn connected_view(connected: &Connected) -> Value {
    json!({
        "tiktokAccountId": connected.account_id.as_str(),
        "health": "active",
        "scopes": connected.scopes,
    })
}

/// What a posting UI needs. `privacyLevelDefault` is always null: TikTok forbids a default. An
/// account connected for drafts only answers `mode: draft` with nothing TikTok would have said:
/// the creator chooses privacy and interactions in the app.
pub fn creator_info_view(account: &AccountId, settings: &CreatorSettings) -> Value {
    let info = match settings {
        CreatorSettings::Queried(info) => Some(info),
        CreatorSettings::DraftsOnly => None,
    };
    json!({
        "tiktokAccountId": account.as_str(),
        "mode": if info.is_some() { "direct" } else { "draft" },
        "nickname": info.map(|i| &i.nickname),
        "username": info.and_then(|i| i.username.as_ref()),
        "privacyLevelOptions": info.map_or(&[][..], |i| &i.privacy_level_options[..]),
        "privacyLevelDefault": Value::Null,
        "commentDisabled": info.is_some_and(|i| i.comment_disabled),
        "duetDisabled": info.is_some_and(|i| i.duet_disabled),
        "stitchDisabled": info.is_some_and(|i| i.stitch_disabled),
        "maxVideoPostDurationSec": info.and_then(|i| i.max_video_post_duration_sec),
        "canPost": info.is_none_or(|i| i.cannot_post_reason.is_none()),
        "cannotPostReason": info.and_then(|i| i.cannot_post_reason.as_ref()),
    })
}
