//! The table's change stream read back as domain facts, for webhooks to the client: an audited
//! transition (a job's `EV#<version>` item inserted) or an account's health change (its `ACCT`
//! item written). Everything else on the stream (reschedules, budgets, leases) is no fact here.

use aws_lambda_events::event::dynamodb::EventRecord;
use reelay_domain::account::AccountHealth;
use reelay_domain::job::AuditEvent;
use reelay_domain::ports::StoreError;
use reelay_domain::{AccountId, JobId, TenantId};
use serde_dynamo::{AttributeValue, Item};

/// One fact a stream record carries.
#[derive(Debug, Clone, PartialEq)]
pub enum TableChange {
    Transition {
        job_id: JobId,
        /// `None` for audit items written before they named it.
        tenant: Option<TenantId>,
        audit: AuditEvent,
    },
    AccountHealth {
        tenant: TenantId,
        account: AccountId,
        before: Option<AccountHealth>,
        after: AccountHealth,
        reason: Option<String>,
        version: u64,
    },
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.as_str()),
        _ => None,
    }
}

fn number(item: &Item, name: &str) -> Option<u64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

fn health(item: &Item) -> Option<AccountHealth> {
    let raw = text(item, "health")?;
    AccountHealth::ALL.into_iter().find(|h| h.as_str() == raw)
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("stream record: {what}"))
}

/// The fact `record` carries, if any. A malformed item of a kind that matters is `Corrupt`.
pub fn decode_change(record: &EventRecord) -> Result<Option<TableChange>, StoreError> {
    let change = &record.change;
    let (Some(pk), Some(sk)) = (text(&change.keys, "pk"), text(&change.keys, "sk")) else {
        return Ok(None);
    };
    let image = &change.new_image;
    if let (Some(job), true) = (pk.strip_prefix("JOB#"), sk.starts_with("EV#")) {
        if record.event_name != "INSERT" {
            return Ok(None);
        }
        let job_id = JobId::parse(job).map_err(corrupt)?;
        let doc = text(image, "doc").ok_or_else(|| corrupt("audit item without doc"))?;
        let audit: AuditEvent = serde_json::from_str(doc).map_err(corrupt)?;
        let tenant = text(image, "tenant")
            .map(TenantId::parse)
            .transpose()
            .map_err(corrupt)?;
        return Ok(Some(TableChange::Transition {
            job_id,
            tenant,
            audit,
        }));
    }
    if sk == "ACCT" && pk.starts_with("ACCT#") {
        if record.event_name == "REMOVE" {
            return Ok(None);
        }
        let after = health(image).ok_or_else(|| corrupt("account item without health"))?;
        let before = health(&change.old_image);
        if before == Some(after) {
            return Ok(None);
        }
        let tenant = TenantId::parse(text(image, "tenant").unwrap_or_default()).map_err(corrupt)?;
        let account =
            AccountId::parse(text(image, "account").unwrap_or_default()).map_err(corrupt)?;
        return Ok(Some(TableChange::AccountHealth {
            tenant,
            account,
            before,
            after,
            reason: text(image, "health_reason").map(str::to_owned),
            version: number(image, "ver").unwrap_or(0),
        }));
    }
    Ok(None)
}
