//! Queue messages: a versioned envelope naming the job; the job's state lives in the store.

use serde::{Deserialize, Serialize};

use crate::account::Account;
use crate::ids::{AccountId, JobId, TenantId};

/// Why a queue message body is not a `WorkMessage` this code handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("the message has no body")]
    Empty,
    #[error("the body is not a work message")]
    Undecodable,
    #[error("the envelope version is not one this code knows")]
    UnknownVersion,
}

impl EnvelopeError {
    /// The failure code recorded for the record (stable: dashboards and DLQ triage key on it).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty_body",
            Self::Undecodable => "undecodable_body",
            Self::UnknownVersion => "unknown_envelope_version",
        }
    }
}

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
    /// The API request that created the job (`X-Request-Id`), for the consumers' log lines.
    /// Optional and additive: version 1 consumers ignore it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_request_id: Option<String>,
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
            api_request_id: None,
        }
    }

    /// The message naming the API request that created its job.
    #[must_use]
    pub fn for_request(mut self, api_request_id: Option<&str>) -> Self {
        self.api_request_id = api_request_id.map(str::to_owned);
        self
    }

    /// Parses a queue record body. Lives with the envelope (not the SQS adapter) so the decoder
    /// can be fuzzed without the AWS SDK. The version is checked before the fields, so a future
    /// envelope is reported as such rather than as garbage.
    pub fn decode(body: Option<&str>) -> Result<Self, EnvelopeError> {
        let body = body.ok_or(EnvelopeError::Empty)?;
        let value: serde_json::Value =
            serde_json::from_str(body).map_err(|_| EnvelopeError::Undecodable)?;
        match value.get("v").and_then(serde_json::Value::as_u64) {
            Some(v) if v == u64::from(Self::VERSION) => {}
            _ => return Err(EnvelopeError::UnknownVersion),
        }
        serde_json::from_value(value).map_err(|_| EnvelopeError::Undecodable)
    }

    /// FIFO group: the destination account, so its work is serialised and a throttled account
    /// delays only itself.
    pub fn group_id(&self) -> String {
        Account::message_group(&self.tenant_id, &self.account_id)
    }

    /// FIFO deduplication id of one logical enqueue: the job, the queue, the version that sent
    /// it and `nonce` (the next check written with the enqueue). A resend of the same enqueue is
    /// dropped by SQS; the reconciler's later re-enqueue (same version, a later next check) is not.
    pub fn dedup_id(&self, nonce: i64) -> String {
        let kind = match self.kind {
            QueueKind::Render => "r",
            QueueKind::Publish => "p",
        };
        format!("{}-{kind}-v{}-t{nonce}", self.job_id, self.job_version)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn message() -> WorkMessage {
        WorkMessage::new(
            QueueKind::Publish,
            JobId::parse("job_01HT0000000000000000000000").unwrap(),
            TenantId::parse("tenant_a").unwrap(),
            AccountId::parse("acct_1").unwrap(),
            7,
        )
    }

    #[test]
    fn a_message_decodes_to_itself_and_anything_else_is_classified() {
        let m = message();
        let encoded = serde_json::to_string(&m).unwrap();
        assert_eq!(WorkMessage::decode(Some(&encoded)), Ok(m));
        assert_eq!(WorkMessage::decode(None), Err(EnvelopeError::Empty));
        assert_eq!(
            WorkMessage::decode(Some(&encoded[..encoded.len() - 1])),
            Err(EnvelopeError::Undecodable)
        );
        let v2 = encoded.replace("\"v\":1", "\"v\":2");
        assert_eq!(
            WorkMessage::decode(Some(&v2)),
            Err(EnvelopeError::UnknownVersion)
        );
        let bad_id = encoded.replace("acct_1", "acct 1");
        assert_eq!(
            WorkMessage::decode(Some(&bad_id)),
            Err(EnvelopeError::Undecodable)
        );
    }
}
