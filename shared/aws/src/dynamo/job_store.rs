//! `JobStore` on DynamoDB: jobs, their audit events, idempotency records and pointer items.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnConsumedCapacity, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reelay_domain::job::{Applied, AuditEvent, Job};
use reelay_domain::lifecycle::CheckKind;
use reelay_domain::ports::{
    DueJob, IdempotencyBegin, IdempotencyScope, JobFilter, JobPage, JobStore, StoreError,
    StoredResponse,
};
use reelay_domain::{JobId, PayloadHash, PublishId, RequestId, TenantId, UtcTime};
use tracing::{debug, warn};

use super::{
    ATTR_PK, ATTR_SK, CapacityMeter, DUE_SHARDS, due_pk, due_shard, due_sk, get_n, get_s, n, req_s,
    s, unavailable,
};

const JOB_SK: &str = "JOB";
const IDEM_SK: &str = "IDEM";
const PUB_SK: &str = "PUB";
const STATUS_IN_PROGRESS: &str = "INPROGRESS";
const STATUS_COMPLETED: &str = "COMPLETED";
/// Idempotency records are kept at least this long (after an in-progress lease, or after the
/// job's creation once completed); TTL removes them later, correctness never relies on TTL.
const IN_PROGRESS_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// Pages read per `list` call when filters discard items: bounds one API call's cost.
const LIST_MAX_PAGES: usize = 5;

fn job_pk(id: &str) -> String {
    format!("JOB#{id}")
}

fn audit_sk(version: u64) -> String {
    format!("EV#{version:010}")
}

fn idem_pk(scope: &IdempotencyScope) -> String {
    // Tenant ids never contain '#', so the key part is unambiguous whatever it holds.
    format!("IDEM#{}#{}", scope.tenant_id, scope.key.as_str())
}

fn req_pk(id: &RequestId) -> String {
    format!("REQ#{id}")
}

fn pub_pk(id: &PublishId) -> String {
    format!("PUB#{id}")
}

fn tenant_gsi(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

fn job_gsi_sk(id: &str) -> String {
    format!("JOB#{id}")
}

fn check_kind_str(kind: CheckKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn parse_check_kind(raw: &str) -> Option<CheckKind> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned())).ok()
}

/// DynamoDB's `DynamoJobStore`. Cheap to clone; build once per cold start.
#[derive(Debug, Clone)]
pub struct DynamoJobStore {
    client: Client,
    table: String,
    meter: CapacityMeter,
    capacity: ReturnConsumedCapacity,
}

impl DynamoJobStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            meter: CapacityMeter::default(),
            capacity: ReturnConsumedCapacity::Total,
        }
    }

    /// Asks DynamoDB for the capacity of the table and of each index separately
    /// (ReturnConsumedCapacity=INDEXES) instead of one total: for cost investigations.
    pub fn with_index_capacity(mut self) -> Self {
        self.capacity = ReturnConsumedCapacity::Indexes;
        self
    }

    /// From the Lambda environment: `TABLE_NAME`.
    pub fn from_env(sdk: &aws_config::SdkConfig) -> Result<Self, crate::ConfigError> {
        Ok(Self::new(
            Client::new(sdk),
            crate::config::env_var("TABLE_NAME")?,
        ))
    }

    pub fn meter(&self) -> &CapacityMeter {
        &self.meter
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn job_item(job: &Job) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let id = job.id.as_str();
        let doc = serde_json::to_string(job)
            .map_err(|e| StoreError::Corrupt(format!("job does not serialise: {e}")))?;
        let mut item = HashMap::from([
            (ATTR_PK.to_owned(), s(job_pk(id))),
            (ATTR_SK.to_owned(), s(JOB_SK)),
            ("t".to_owned(), s("job")),
            ("doc".to_owned(), s(doc)),
            ("ver".to_owned(), n(job.version)),
            ("st".to_owned(), s(job.state.as_str())),
            ("tenant".to_owned(), s(job.tenant_id.as_str())),
            ("account".to_owned(), s(job.account_id.as_str())),
            ("gsi1pk".to_owned(), s(tenant_gsi(&job.tenant_id))),
            ("gsi1sk".to_owned(), s(job_gsi_sk(id))),
        ]);
        // Sparse: only jobs with a next check are in the due index; terminal jobs never are.
        if let Some(next) = job.next_check.filter(|_| !job.is_terminal()) {
            item.insert("due_pk".to_owned(), s(due_pk(due_shard(id))));
            item.insert("due_sk".to_owned(), s(due_sk(next.at.as_millis(), id)));
            item.insert("due_kind".to_owned(), s(check_kind_str(next.kind)));
        }
        Ok(item)
    }

    fn audit_item(
        job_id: &JobId,
        audit: &AuditEvent,
    ) -> Result<HashMap<String, AttributeValue>, StoreError> {
        let doc = serde_json::to_string(audit)
            .map_err(|e| StoreError::Corrupt(format!("audit does not serialise: {e}")))?;
        Ok(HashMap::from([
            (ATTR_PK.to_owned(), s(job_pk(job_id.as_str()))),
            (ATTR_SK.to_owned(), s(audit_sk(audit.version))),
            ("t".to_owned(), s("audit")),
            ("doc".to_owned(), s(doc)),
        ]))
    }

    fn parse_job(item: &HashMap<String, AttributeValue>) -> Result<Job, StoreError> {
        let doc = req_s(item, "doc")?;
        serde_json::from_str(&doc).map_err(|e| StoreError::Corrupt(format!("job document: {e}")))
    }

    fn put(
        &self,
        item: HashMap<String, AttributeValue>,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        let mut put = Put::builder().set_item(Some(item));
        if let Some(c) = condition {
            put = put.condition_expression(c);
        }
        self.put_op(put)
    }

    fn put_op(
        &self,
        put: aws_sdk_dynamodb::types::builders::PutBuilder,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = put.table_name(&self.table).build().map_err(unavailable)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Runs a transaction; a failed condition or a concurrent transaction on the same items is a
    /// lost race (`Conflict`), never retried here: the caller re-reads and lets the table decide.
    ///
    /// The SDK fills ClientRequestToken once per call and keeps it across its own retries, so a
    /// transaction whose response was lost is replayed as a success, not reported as a lost race.
    /// The token is deliberately per call, never derived from content: two writers producing the
    /// same bytes (same event, same millisecond) must still see exactly one winner.
    async fn transact(
        &self,
        op: &'static str,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), StoreError> {
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .return_consumed_capacity(self.capacity.clone())
            .send()
            .await;
        match result {
            Ok(out) => {
                self.meter.record(op, out.consumed_capacity());
                Ok(())
            }
            Err(err) => {
                self.meter.record_failed(op);
                if let Some(TransactWriteItemsError::TransactionCanceledException(tc)) =
                    err.as_service_error()
                {
                    let lost = tc.cancellation_reasons().iter().any(|r| {
                        matches!(
                            r.code(),
                            Some("ConditionalCheckFailed") | Some("TransactionConflict")
                        )
                    });
                    if lost {
                        return Err(StoreError::Conflict);
                    }
                }
                if let Some(TransactWriteItemsError::IdempotentParameterMismatchException(_)) =
                    err.as_service_error()
                {
                    // A token reused with other content: never ours to claim as a success.
                    return Err(StoreError::Conflict);
                }
                Err(unavailable(err))
            }
        }
    }

    async fn get_item(
        &self,
        op: &'static str,
        pk: String,
        sk: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(ATTR_PK, s(pk))
            .key(ATTR_SK, s(sk))
            .consistent_read(true)
            .return_consumed_capacity(self.capacity.clone())
            .send()
            .await
            .map_err(|e| {
                self.meter.record_failed(op);
                unavailable(e)
            })?;
        self.meter.record(op, out.consumed_capacity());
        Ok(out.item)
    }

    /// Every item of a partition (optionally under an sort-key prefix), following pagination.
    async fn query_partition(
        &self,
        op: &'static str,
        pk: String,
        sk_prefix: Option<&str>,
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StoreError> {
        let mut items = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .consistent_read(true)
                .expression_attribute_values(":pk", s(pk.clone()))
                .return_consumed_capacity(self.capacity.clone())
                .set_exclusive_start_key(start.take());
            q = match sk_prefix {
                Some(prefix) => q
                    .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                    .expression_attribute_values(":prefix", s(prefix)),
                None => q.key_condition_expression("pk = :pk"),
            };
            let out = q.send().await.map_err(|e| {
                self.meter.record_failed(op);
                unavailable(e)
            })?;
            self.meter.record(op, out.consumed_capacity());
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        Ok(items)
    }

    fn idem_key(scope: &IdempotencyScope) -> HashMap<String, AttributeValue> {
        HashMap::from([
            (ATTR_PK.to_owned(), s(idem_pk(scope))),
            (ATTR_SK.to_owned(), s(IDEM_SK)),
        ])
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
        let retained = in_progress_until
            .max(now)
            .plus(IN_PROGRESS_RETENTION)
            .as_secs();
        // A per-call nonce: if the SDK retried a put whose success response was lost, the record
        // that "blocks" us is our own, and we did start.
        let claim = uuid::Uuid::new_v4().to_string();
        let mut item = Self::idem_key(scope);
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
            .table_name(&self.table)
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
            .return_consumed_capacity(self.capacity.clone())
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

impl JobStore for DynamoJobStore {
    async fn begin_idempotent(
        &self,
        scope: &IdempotencyScope,
        hash: &PayloadHash,
        now: UtcTime,
        in_progress_until: UtcTime,
    ) -> Result<IdempotencyBegin, StoreError> {
        // Powertools retries an inconsistent read-back twice; so do we, then report a conflict.
        for _ in 0..3 {
            if let Some(outcome) = self.try_begin(scope, hash, now, in_progress_until).await? {
                debug!(tenant_id = %scope.tenant_id, outcome = ?outcome, "idempotency key claimed");
                return Ok(outcome);
            }
        }
        warn!(tenant_id = %scope.tenant_id, "idempotency record kept changing under us");
        Err(StoreError::Conflict)
    }

    async fn abandon_idempotent(&self, scope: &IdempotencyScope) -> Result<(), StoreError> {
        // Only an in-progress record is released; a completed answer is never deleted.
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::idem_key(scope)))
            .condition_expression("#status = :inprogress")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":inprogress", s(STATUS_IN_PROGRESS))
            .return_consumed_capacity(self.capacity.clone())
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

    async fn create(
        &self,
        created: &Applied,
        idempotency: Option<(&IdempotencyScope, &PayloadHash, &StoredResponse, UtcTime)>,
    ) -> Result<(), StoreError> {
        let job = &created.job;
        let mut items = vec![
            self.put(Self::job_item(job)?, Some("attribute_not_exists(pk)"))?,
            self.put(
                Self::audit_item(&job.id, &created.audit)?,
                Some("attribute_not_exists(pk)"),
            )?,
        ];
        if let Some(request_id) = &job.request_id {
            items.push(self.put(request_pointer(request_id, &job.id), None)?);
        }
        if let Some((scope, hash, response, expires_at)) = idempotency {
            // Stripe's floor: a key is remembered for at least 24 h whatever the caller asked.
            let expires_at = expires_at.max(job.created_at.plus(IN_PROGRESS_RETENTION));
            // Completing the record is the fence: only one request can flip INPROGRESS to
            // COMPLETED, so even two owners (after an in-progress takeover) create one job.
            let update = Update::builder()
                .set_key(Some(Self::idem_key(scope)))
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
                .table_name(&self.table)
                .build()
                .map_err(unavailable)?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        self.transact("create", items).await?;
        debug!(job_id = %job.id, account_id = %job.account_id, state = %job.state, "job created");
        Ok(())
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        self.get_item("get", job_pk(id.as_str()), JOB_SK)
            .await?
            .map(|item| Self::parse_job(&item))
            .transpose()
    }

    async fn audit_trail(&self, id: &JobId) -> Result<Vec<AuditEvent>, StoreError> {
        let items = self
            .query_partition("audit_trail", job_pk(id.as_str()), Some("EV#"))
            .await?;
        items
            .iter()
            .map(|item| {
                let doc = req_s(item, "doc")?;
                serde_json::from_str(&doc)
                    .map_err(|e| StoreError::Corrupt(format!("audit document: {e}")))
            })
            .collect()
    }

    async fn save(&self, applied: &Applied, expected_version: u64) -> Result<(), StoreError> {
        let job = &applied.job;
        if job.version <= expected_version || applied.audit.version != job.version {
            return Err(StoreError::Corrupt(format!(
                "transition to version {} (audit {}) cannot follow version {expected_version}",
                job.version, applied.audit.version
            )));
        }
        let mut put = Put::builder()
            .set_item(Some(Self::job_item(job)?))
            .expression_attribute_values(":expected", n(expected_version));
        put = match applied.audit.from {
            Some(from) => put
                .condition_expression("ver = :expected AND st = :from")
                .expression_attribute_values(":from", s(from.as_str())),
            None => put.condition_expression("ver = :expected"),
        };
        let mut items = vec![
            self.put_op(put)?,
            self.put(
                Self::audit_item(&job.id, &applied.audit)?,
                Some("attribute_not_exists(pk)"),
            )?,
        ];
        // Pointers are written by the transition that first sets the reference, nowhere else.
        match applied.audit.event.as_str() {
            "render_submitted" => {
                if let Some(request_id) = &job.request_id {
                    items.push(self.put(request_pointer(request_id, &job.id), None)?);
                }
            }
            "publish_accepted" => {
                if let Some(publish_id) = &job.publish_id {
                    items.push(self.put(publish_pointer(publish_id, &job.id), None)?);
                }
            }
            _ => {}
        }
        match self.transact("save", items).await {
            Ok(()) => {
                debug!(job_id = %job.id, account_id = %job.account_id, version = job.version,
                    state = %job.state, event = %applied.audit.event, "transition stored");
                Ok(())
            }
            Err(StoreError::Conflict) => {
                debug!(job_id = %job.id, expected_version, event = %applied.audit.event, "transition lost a race");
                Err(StoreError::Conflict)
            }
            Err(e) => Err(e),
        }
    }

    async fn jobs_for_request(&self, request_id: &RequestId) -> Result<Vec<JobId>, StoreError> {
        let items = self
            .query_partition("jobs_for_request", req_pk(request_id), None)
            .await?;
        items
            .iter()
            .map(|item| {
                let raw = req_s(item, "job_id")?;
                JobId::parse(raw).map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect()
    }

    async fn job_for_publish(&self, publish_id: &PublishId) -> Result<Option<JobId>, StoreError> {
        let Some(item) = self
            .get_item("job_for_publish", pub_pk(publish_id), PUB_SK)
            .await?
        else {
            return Ok(None);
        };
        let raw = req_s(&item, "job_id")?;
        JobId::parse(raw)
            .map(Some)
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    async fn list(
        &self,
        tenant: &TenantId,
        filter: &JobFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<JobPage, StoreError> {
        let limit = limit.clamp(1, 100);
        let filtered = filter.account_id.is_some() || filter.state.is_some();
        let mut start = match cursor {
            Some(c) => Some(cursor_key(tenant, &decode_cursor(c)?)),
            None => None,
        };
        let mut jobs = Vec::new();
        let mut next_cursor = None;
        for _ in 0..LIST_MAX_PAGES {
            let remaining = limit.saturating_sub(u32::try_from(jobs.len()).unwrap_or(u32::MAX));
            // Limit counts items read before the filter: read more per page when filtering.
            let page_limit = if filtered {
                (remaining * 4).min(200)
            } else {
                remaining
            };
            let mut q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :t AND begins_with(gsi1sk, :job)")
                .expression_attribute_values(":t", s(tenant_gsi(tenant)))
                .expression_attribute_values(":job", s("JOB#"))
                .scan_index_forward(false)
                .limit(i32::try_from(page_limit).unwrap_or(100))
                .return_consumed_capacity(self.capacity.clone())
                .set_exclusive_start_key(start.take());
            let mut conditions = Vec::new();
            if let Some(account) = &filter.account_id {
                conditions.push("account = :a");
                q = q.expression_attribute_values(":a", s(account.as_str()));
            }
            if let Some(state) = filter.state {
                conditions.push("st = :st");
                q = q.expression_attribute_values(":st", s(state.as_str()));
            }
            if !conditions.is_empty() {
                q = q.filter_expression(conditions.join(" AND "));
            }
            let out = q.send().await.map_err(|e| {
                self.meter.record_failed("list");
                unavailable(e)
            })?;
            self.meter.record("list", out.consumed_capacity());
            let items = out.items.unwrap_or_default();
            let mut filled_at = None;
            for (i, item) in items.iter().enumerate() {
                jobs.push(Self::parse_job(item)?);
                if jobs.len() >= limit as usize {
                    filled_at = Some(i);
                    break;
                }
            }
            let last_evaluated = out.last_evaluated_key.filter(|k| !k.is_empty());
            if let Some(i) = filled_at {
                // Full page: resume after the last returned job, unless it was the very last one.
                let more = i + 1 < items.len() || last_evaluated.is_some();
                next_cursor = if more {
                    jobs.last().map(|j| encode_cursor(&j.id))
                } else {
                    None
                };
                break;
            }
            match last_evaluated {
                Some(key) => {
                    next_cursor = get_s(&key, ATTR_PK)
                        .and_then(|pk| pk.strip_prefix("JOB#"))
                        .and_then(|id| JobId::parse(id).ok())
                        .map(|id| encode_cursor(&id));
                    start = Some(key);
                }
                None => {
                    next_cursor = None;
                    break;
                }
            }
        }
        Ok(JobPage { jobs, next_cursor })
    }

    async fn due(&self, now: UtcTime, limit: u32) -> Result<Vec<DueJob>, StoreError> {
        let limit = limit.clamp(1, 1000);
        let upper = format!("{:015}", now.as_millis().saturating_add(1).max(0));
        let shards = (0..DUE_SHARDS).map(|shard| self.due_shard(shard, &upper, limit));
        let mut due = Vec::new();
        for shard in futures::future::join_all(shards).await {
            due.extend(shard?);
        }
        due.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.job_id.cmp(&b.job_id)));
        due.truncate(limit as usize);
        Ok(due)
    }
}

impl DynamoJobStore {
    /// The oldest `limit` due entries of one shard (following pages: a page stops at 1 MB).
    async fn due_shard(
        &self,
        shard: u8,
        upper: &str,
        limit: u32,
    ) -> Result<Vec<DueJob>, StoreError> {
        let mut due = Vec::new();
        let mut start = None;
        loop {
            let remaining = limit.saturating_sub(u32::try_from(due.len()).unwrap_or(u32::MAX));
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("due")
                .key_condition_expression("due_pk = :p AND due_sk < :upper")
                .expression_attribute_values(":p", s(due_pk(shard)))
                .expression_attribute_values(":upper", s(upper))
                .limit(i32::try_from(remaining).unwrap_or(1000))
                .return_consumed_capacity(self.capacity.clone())
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| {
                    self.meter.record_failed("due");
                    unavailable(e)
                })?;
            self.meter.record("due", out.consumed_capacity());
            for item in out.items.unwrap_or_default() {
                due.push(due_entry(&item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && (due.len() as u32) < limit => start = Some(k),
                _ => return Ok(due),
            }
        }
    }
}

fn due_entry(item: &HashMap<String, AttributeValue>) -> Result<DueJob, StoreError> {
    let sk = req_s(item, "due_sk")?;
    let corrupt = || StoreError::Corrupt(format!("due_sk {sk}"));
    let (at, id) = sk.split_once('#').ok_or_else(corrupt)?;
    let at = at.parse::<i64>().map_err(|_| corrupt())?;
    let job_id = JobId::parse(id).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let kind = get_s(item, "due_kind")
        .and_then(parse_check_kind)
        .ok_or_else(|| StoreError::Corrupt(format!("due_kind of {job_id}")))?;
    Ok(DueJob {
        job_id,
        at: UtcTime::from_millis(at),
        kind,
    })
}

fn request_pointer(request_id: &RequestId, job_id: &JobId) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (ATTR_PK.to_owned(), s(req_pk(request_id))),
        (ATTR_SK.to_owned(), s(format!("JOB#{job_id}"))),
        ("t".to_owned(), s("request_ptr")),
        ("job_id".to_owned(), s(job_id.as_str())),
    ])
}

fn publish_pointer(publish_id: &PublishId, job_id: &JobId) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (ATTR_PK.to_owned(), s(pub_pk(publish_id))),
        (ATTR_SK.to_owned(), s(PUB_SK)),
        ("t".to_owned(), s("publish_ptr")),
        ("job_id".to_owned(), s(job_id.as_str())),
    ])
}

/// The cursor names the last job returned; the tenant comes from the caller, so a cursor cannot
/// reach another tenant's partition.
fn encode_cursor(id: &JobId) -> String {
    URL_SAFE_NO_PAD.encode(id.as_str())
}

fn decode_cursor(cursor: &str) -> Result<JobId, StoreError> {
    let raw = URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(StoreError::InvalidCursor)?;
    JobId::parse(raw).map_err(|_| StoreError::InvalidCursor)
}

fn cursor_key(tenant: &TenantId, id: &JobId) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (ATTR_PK.to_owned(), s(job_pk(id.as_str()))),
        (ATTR_SK.to_owned(), s(JOB_SK)),
        ("gsi1pk".to_owned(), s(tenant_gsi(tenant))),
        ("gsi1sk".to_owned(), s(job_gsi_sk(id.as_str()))),
    ])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let id = JobId::generate(UtcTime::from_millis(1_700_000_000_000), 7);
        assert_eq!(decode_cursor(&encode_cursor(&id)).unwrap(), id);
        assert!(decode_cursor("not a cursor!").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("job_nope")).is_err());
    }

    #[test]
    fn check_kinds_round_trip_through_their_wire_names() {
        for kind in [
            CheckKind::LeaseExpiry,
            CheckKind::StatusPoll,
            CheckKind::PublishAt,
        ] {
            assert_eq!(parse_check_kind(&check_kind_str(kind)), Some(kind));
        }
        assert_eq!(check_kind_str(CheckKind::LeaseExpiry), "lease_expiry");
    }
}
