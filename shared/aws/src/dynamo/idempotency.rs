//! Ingest idempotency records, Powertools' algorithm: a conditional claim, completed in the
//! transaction that creates the job.

use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use reelay_domain::job::Job;
use reelay_domain::ports::{IdempotencyBegin, IdempotencyScope, StoreError, StoredResponse};
use reelay_domain::{PayloadHash, UtcTime};
use tracing::{debug, warn};

use super::{DynamoStore, Item, get_n, get_s, key, n, req_s, s, unavailable};

const IDEM_SK: &str = "IDEM";
const STATUS_IN_PROGRESS: &str = "INPROGRESS";
const STATUS_COMPLETED: &str = "COMPLETED";
/// Idempotency records are kept at least this long (after an in-progress lease, or after the
/// job's creation once completed); TTL removes them later, correctness never relies on TTL.
const RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Powertools retries an inconsistent read-back twice; so do we, then report a conflict.
const BEGIN_ROUNDS: usize = 3;

fn idem_key(scope: &IdempotencyScope) -> Item {
    // Tenant ids never contain '#', so the key part is unambiguous whatever it holds.
    key(
        format!("IDEM#{}#{}", scope.tenant_id, scope.key.as_str()),
        IDEM_SK,
    )
}

impl DynamoStore {
    pub(super) async fn begin_idempotency(
        &self,
        scope: &IdempotencyScope,
        hash: &PayloadHash,
        now: UtcTime,
        in_progress_until: UtcTime,
    ) -> Result<IdempotencyBegin, StoreError> {
        for _ in 0..BEGIN_ROUNDS {
            if let Some(outcome) = self.try_begin(scope, hash, now, in_progress_until).await? {
                debug!(tenant_id = %scope.tenant_id, outcome = ?outcome, "idempotency key claimed");
                return Ok(outcome);
            }
        }
        warn!(tenant_id = %scope.tenant_id, "idempotency record kept changing under us");
        Err(StoreError::Conflict)
    }

    /// Only an in-progress record is released; a completed answer is never deleted.
    pub(super) async fn abandon_idempotency(
        &self,
        scope: &IdempotencyScope,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .delete_item()
            .table_name(self.table())
            .set_key(Some(idem_key(scope)))
            .condition_expression("#status = :inprogress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":inprogress", s(STATUS_IN_PROGRESS))
            .return_consumed_capacity(self.capacity())
            .send()
            .await;
        match result {
            Ok(out) => {
                self.meter
                    .record("abandon_idempotent", out.consumed_capacity());
                Ok(())
            }
            Err(err) => {
                self.meter.record_failed("abandon_idempotent");
                match err.as_service_error() {
                    Some(e) if e.is_conditional_check_failed_exception() => Ok(()),
                    _ => Err(unavailable(err)),
                }
            }
        }
    }

    /// The update that completes a claimed key, for `create`'s transaction. It is the fence: only
    /// one request can flip INPROGRESS to COMPLETED, so even two owners (after an in-progress
    /// takeover) create one job.
    pub(super) fn complete_idempotency(
        &self,
        scope: &IdempotencyScope,
        hash: &PayloadHash,
        response: &StoredResponse,
        expires_at: UtcTime,
        job: &Job,
    ) -> Result<TransactWriteItem, StoreError> {
        // Stripe's floor: a key is remembered for at least 24 h whatever the caller asked.
        let expires_at = expires_at.max(job.created_at.plus(RETENTION));
        let update = Update::builder()
            .set_key(Some(idem_key(scope)))
            .update_expression(
                "SET #status = :completed, resp_status = :rs, resp_body = :rb, job_id = :job, \
                 #exp = :exp, expires_at = :exp REMOVE #ipe",
            )
            .condition_expression("#status = :inprogress AND #hash = :hash")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#exp", "expiration")
            .expression_attribute_names("#ipe", "ipe")
            .expression_attribute_names("#hash", "hash")
            .expression_attribute_values(":completed", s(STATUS_COMPLETED))
            .expression_attribute_values(":inprogress", s(STATUS_IN_PROGRESS))
            .expression_attribute_values(":hash", s(hash.as_str()))
            .expression_attribute_values(":rs", n(response.status))
            .expression_attribute_values(":rb", s(response.body.clone()))
            .expression_attribute_values(":job", s(job.id.as_str()))
            .expression_attribute_values(":exp", n(expires_at.as_secs()))
            .table_name(self.table())
            .build()
            .map_err(unavailable)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// One attempt of Powertools' conditional put; `None` means the old record was in a state the
    /// condition should have let through (it changed in between): try again.
    async fn try_begin(
        &self,
        scope: &IdempotencyScope,
        hash: &PayloadHash,
        now: UtcTime,
        in_progress_until: UtcTime,
    ) -> Result<Option<IdempotencyBegin>, StoreError> {
        let retained = in_progress_until.max(now).plus(RETENTION).as_secs();
        // A per-call nonce: if the SDK retried a put whose success response was lost, the record
        // that "blocks" us is our own, and we did start.
        let claim = uuid::Uuid::new_v4().to_string();
        let mut item = idem_key(scope);
        item.extend([
            ("t".to_owned(), s("idempotency")),
            ("claim".to_owned(), s(claim.as_str())),
            ("status".to_owned(), s(STATUS_IN_PROGRESS)),
            ("hash".to_owned(), s(hash.as_str())),
            ("ipe".to_owned(), n(in_progress_until.as_millis())),
            ("expiration".to_owned(), n(retained)),
            ("expires_at".to_owned(), n(retained)),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(self.table())
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(pk) OR #exp < :now_s \
                 OR (#status = :inprogress AND attribute_exists(#ipe) AND #ipe < :now_ms)",
            )
            .expression_attribute_names("#exp", "expiration")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#ipe", "ipe")
            .expression_attribute_values(":now_s", n(now.as_secs()))
            .expression_attribute_values(":now_ms", n(now.as_millis()))
            .expression_attribute_values(":inprogress", s(STATUS_IN_PROGRESS))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(self.capacity())
            .send()
            .await;
        let err = match result {
            Ok(out) => {
                self.meter
                    .record("begin_idempotent", out.consumed_capacity());
                return Ok(Some(IdempotencyBegin::Started));
            }
            Err(err) => err,
        };
        self.meter.record_failed("begin_idempotent");
        let old = match &err {
            SdkError::ServiceError(se) => match se.err() {
                PutItemError::ConditionalCheckFailedException(ccf) => ccf.item.clone(),
                _ => return Err(unavailable(err)),
            },
            _ => return Err(unavailable(err)),
        };
        // Saves a GetItem: the exception carries the record that blocked us.
        let Some(old) = old else { return Ok(None) };
        if get_s(&old, "claim") == Some(claim.as_str())
            && get_s(&old, "status") == Some(STATUS_IN_PROGRESS)
        {
            return Ok(Some(IdempotencyBegin::Started));
        }
        if get_s(&old, "hash") != Some(hash.as_str()) {
            return Ok(Some(IdempotencyBegin::Mismatch));
        }
        match get_s(&old, "status") {
            Some(STATUS_COMPLETED) => {
                let status = get_n::<u16>(&old, "resp_status").ok_or_else(|| {
                    StoreError::Corrupt("completed record without resp_status".into())
                })?;
                let body = req_s(&old, "resp_body")?;
                Ok(Some(IdempotencyBegin::Replay(StoredResponse {
                    status,
                    body,
                })))
            }
            Some(STATUS_IN_PROGRESS) => {
                let until = UtcTime::from_millis(get_n::<i64>(&old, "ipe").unwrap_or(0));
                if until.as_millis() < now.as_millis() {
                    Ok(None)
                } else {
                    Ok(Some(IdempotencyBegin::InProgress { until }))
                }
            }
            _ => Ok(None),
        }
    }
}
