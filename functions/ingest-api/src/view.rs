//! The JSON a client sees for a job.

use serde::Serialize;
use serde_json::{Value, json};

use reelay_domain::job::{Hold, JobError};
use reelay_domain::{AuditEvent, Job, JobSource};

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
    pub error: Option<&'a JobError>,
    pub next_check_at: Option<String>,
    pub taken_down_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audit: Option<&'a [AuditEvent]>,
}

impl<'a> JobView<'a> {
    pub fn new(job: &'a Job, audit: Option<&'a [AuditEvent]>) -> Self {
        let source = match &job.source {
            JobSource::Render(r) => serde_json::to_value(r).unwrap_or(Value::Null),
            JobSource::Rendered { request_id } => json!({ "requestId": request_id }),
        };
        Self {
            job_id: job.id.as_str(),
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
            audit,
        }
    }
}

/// The seed's response shape: `{"jobId","state","publishId","nextCheckAt"}`.
pub fn seed_view(job: &Job) -> Value {
    json!({
        "jobId": job.id.as_str(),
        "state": job.state.as_str(),
        "publishId": job.publish_id.as_ref().map(|p| p.as_str()),
        "nextCheckAt": job.next_check.map(|c| c.at.to_rfc3339()),
    })
}
