//! Queue messages: a versioned envelope naming the job; the job's state lives in the store.

use serde::{Deserialize, Serialize};

use crate::account::Account;
use crate::ids::{AccountId, JobId, TenantId};

/// Which queue a message is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    Render,
    Publish,
}

/// The body of every Reelay queue message. Consumers re-read the job and let the lifecycle
/// table decide, so a stale or duplicated message changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkMessage {
    /// Envelope version; consumers reject versions they do not know (to the DLQ, not a retry loop).
    pub v: u8,
    pub kind: QueueKind,
    pub job_id: JobId,
    pub tenant_id: TenantId,
    pub account_id: AccountId,
    /// The job version that produced the message.
    pub job_version: u64,
}

impl WorkMessage {
    pub const VERSION: u8 = 1;

    pub fn new(
        kind: QueueKind,
        job_id: JobId,
        tenant_id: TenantId,
        account_id: AccountId,
        job_version: u64,
    ) -> Self {
        Self {
            v: Self::VERSION,
            kind,
            job_id,
            tenant_id,
            account_id,
            job_version,
        }
    }

    /// FIFO group: the destination account, so its work is serialised and a throttled account
    /// delays only itself.
    pub fn group_id(&self) -> String {
        Account::message_group(&self.tenant_id, &self.account_id)
    }

    /// FIFO deduplication id from (job, transition, attempt): the job version identifies the
    /// transition that enqueued it, so a resend of the same transition is suppressed by SQS.
    pub fn dedup_id(&self, attempt: u32) -> String {
        let kind = match self.kind {
            QueueKind::Render => "r",
            QueueKind::Publish => "p",
        };
        format!("{}-{kind}-v{}-a{attempt}", self.job_id, self.job_version)
    }
}
