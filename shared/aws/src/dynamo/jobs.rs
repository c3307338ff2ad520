//! `JobStore`: jobs, their audit events and the pointer items (`REQ#`, `PUB#`) a transition names.
//! Idempotency records are in `idempotency.rs`, the index reads (`list`, `due`) in `listing.rs`.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use reelay_domain::job::{Applied, AuditEvent, Job, Pointer};
use reelay_domain::lifecycle::CheckKind;
use reelay_domain::ports::{
    AuditPage, DueJob, IdempotencyBegin, IdempotencyScope, JobFilter, JobPage, JobStore,
    StoreError, StoredResponse,
};
use reelay_domain::{JobId, PayloadHash, PublishId, RequestId, TenantId, UtcTime};
use tracing::debug;

use super::{
    ATTR_PK, ATTR_SK, DynamoStore, Item, Tx, due_pk, due_shard, due_sk, n, req_s, s, unavailable,
};

pub(super) const JOB_SK: &str = "JOB";
const PUB_SK: &str = "PUB";
const AUDIT_PREFIX: &str = "EV#";
/// The largest version an audit sort key holds (10 digits).
const AUDIT_VERSION_MAX: u64 = 9_999_999_999;
/// The most audit events one `audit_page` returns.
const AUDIT_PAGE_MAX: u32 = 1_000;
/// The job document, deflated. Every transition writes the job item and its copies in both
/// GSIs, and DynamoDB bills each of those writes per started KB: a job's JSON is 1.2–1.6 KB (URLs,
/// hashes, ids), so it cost two units a copy; deflated against a preset dictionary of the job
/// layout it is 0.3–0.4 KB, and the item with its keys fits one KB.
const ATTR_DOC_DEFLATED: &str = "docz";
/// Items written before the job document was deflated hold it as JSON text here.
const ATTR_DOC: &str = "doc";
/// `docz`'s first byte: the dictionary its deflate stream was made with. A new dictionary gets a
/// new byte; the old ones stay for the items written with them.
const DOC_FORMAT_V1: u8 = 1;
/// The job JSON's keys and common values, rarest first (nearer matches code shorter). Never
/// edited: stored documents need it byte for byte (a test pins its hash).
const DOC_DICTIONARY_V1: &[u8] = include_bytes!("job_doc_dictionary_v1.txt");
/// No job document inflates past DynamoDB's 400 KB item limit; a larger one is corrupt.
const DOC_MAX_BYTES: usize = 400 * 1024;

pub(super) fn job_pk(id: &str) -> String {
    format!("JOB#{id}")
}

fn audit_sk(version: u64) -> String {
    format!("{AUDIT_PREFIX}{:010}", version.min(AUDIT_VERSION_MAX))
}

fn req_pk(id: &RequestId) -> String {
    format!("REQ#{id}")
}

fn pub_pk(id: &PublishId) -> String {
    format!("PUB#{id}")
}

pub(super) fn tenant_gsi(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

pub(super) fn job_gsi_sk(id: &str) -> String {
    format!("JOB#{id}")
}

pub(super) fn check_kind_str(kind: CheckKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub(super) fn parse_check_kind(raw: &str) -> Option<CheckKind> {
    serde_json::from_value(serde_json::Value::String(raw.to_owned())).ok()
}

/// The job item: the whole `Job` as JSON plus the attributes conditions and indexes read.
fn job_item(job: &Job) -> Result<Item, StoreError> {
    let id = job.id.as_str();
    let doc = serde_json::to_vec(job)
        .map_err(|e| StoreError::Corrupt(format!("job does not serialise: {e}")))?;
    let mut item = Item::from([
        (ATTR_PK.to_owned(), s(job_pk(id))),
        (ATTR_SK.to_owned(), s(JOB_SK)),
        ("t".to_owned(), s("job")),
        (
            ATTR_DOC_DEFLATED.to_owned(),
            AttributeValue::B(Blob::new(deflate(&doc)?)),
        ),
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

/// An audit event; it names the tenant so its stream record is dispatched to the tenant's
/// webhook endpoints without reading the job.
fn audit_item(job: &Job, audit: &AuditEvent) -> Result<Item, StoreError> {
    let doc = serde_json::to_string(audit)
        .map_err(|e| StoreError::Corrupt(format!("audit does not serialise: {e}")))?;
    Ok(Item::from([
        (ATTR_PK.to_owned(), s(job_pk(job.id.as_str()))),
        (ATTR_SK.to_owned(), s(audit_sk(audit.version))),
        ("t".to_owned(), s("audit")),
        ("tenant".to_owned(), s(job.tenant_id.as_str())),
        (ATTR_DOC.to_owned(), s(doc)),
    ]))
}

fn deflate(doc: &[u8]) -> Result<Vec<u8>, StoreError> {
    let failed = |e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("job document does not deflate: {e}"))
    };
    let mut deflater = Compress::new(Compression::best(), false);
    deflater
        .set_dictionary(DOC_DICTIONARY_V1)
        .map_err(|e| failed(&e))?;
    let mut out = Vec::with_capacity(doc.len() / 2 + 64);
    out.push(DOC_FORMAT_V1);
    loop {
        let read = usize::try_from(deflater.total_in()).unwrap_or(doc.len());
        let rest = doc.get(read..).unwrap_or_default();
        match deflater.compress_vec(rest, &mut out, FlushCompress::Finish) {
            Ok(Status::StreamEnd) => return Ok(out),
            // `compress_vec` writes only into spare capacity.
            Ok(Status::Ok | Status::BufError) => out.reserve(out.capacity().max(256)),
            Err(e) => return Err(failed(&e)),
        }
    }
}

fn inflate(stored: &[u8]) -> Result<Vec<u8>, StoreError> {
    let corrupt = |why: String| StoreError::Corrupt(format!("job document: {why}"));
    let (format, deflated) = stored
        .split_first()
        .ok_or_else(|| corrupt("empty".into()))?;
    if *format != DOC_FORMAT_V1 {
        return Err(corrupt(format!("unknown format {format}")));
    }
    let mut inflater = Decompress::new(false);
    inflater
        .set_dictionary(DOC_DICTIONARY_V1)
        .map_err(|e| corrupt(e.to_string()))?;
    let mut doc = Vec::with_capacity(deflated.len() * 4);
    loop {
        // `decompress_vec` writes only into spare capacity.
        if doc.len() == doc.capacity() {
            doc.reserve(doc.capacity().max(1024));
        }
        let progress = (inflater.total_in(), inflater.total_out());
        let read = usize::try_from(inflater.total_in()).unwrap_or(deflated.len());
        let rest = deflated.get(read..).unwrap_or_default();
        let status = inflater
            .decompress_vec(rest, &mut doc, FlushDecompress::Finish)
            .map_err(|e| corrupt(e.to_string()))?;
        if doc.len() > DOC_MAX_BYTES {
            return Err(corrupt(format!("inflates past {DOC_MAX_BYTES} bytes")));
        }
        match status {
            Status::StreamEnd => return Ok(doc),
            // Room to write and nothing written or read: the stream is cut short.
            Status::Ok | Status::BufError
                if (inflater.total_in(), inflater.total_out()) == progress =>
            {
                return Err(corrupt("truncated".into()));
            }
            Status::Ok | Status::BufError => {}
        }
    }
}

/// The job of a job item: its deflated document, or the JSON text of an item written before.
pub(super) fn parse_job(item: &Item) -> Result<Job, StoreError> {
    let parsed = match item.get(ATTR_DOC_DEFLATED) {
        Some(AttributeValue::B(deflated)) => serde_json::from_slice(&inflate(deflated.as_ref())?),
        Some(_) => {
            return Err(StoreError::Corrupt(format!(
                "{ATTR_DOC_DEFLATED} is not binary"
            )));
        }
        None => serde_json::from_str(&req_s(item, ATTR_DOC)?),
    };
    parsed.map_err(|e| StoreError::Corrupt(format!("job document: {e}")))
}

fn parse_audit(item: &Item) -> Result<AuditEvent, StoreError> {
    let doc = req_s(item, ATTR_DOC)?;
    serde_json::from_str(&doc).map_err(|e| StoreError::Corrupt(format!("audit document: {e}")))
}

fn parse_job_id(item: &Item) -> Result<JobId, StoreError> {
    JobId::parse(req_s(item, "job_id")?).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl DynamoStore {
    /// The job item and its first audit event, conditional on the job id being new.
    fn creation_items(&self, created: &Applied, tx: &mut Tx) -> Result<(), StoreError> {
        let job = &created.job;
        tx.put(
            self.put(job_item(job)?)
                .condition_expression("attribute_not_exists(pk)"),
        )?;
        tx.put(
            self.put(audit_item(job, &created.audit)?)
                .condition_expression("attribute_not_exists(pk)"),
        )?;
        self.pointer_items(&created.pointers, &job.id, tx)
    }

    /// Exactly the pointers the transition names. A request may feed many jobs (one item per
    /// job); a `publish_id` belongs to one job forever, so pointing it at another is refused as
    /// the integrity fault it would be (TikTok's ids are unique), never taken as a lost race.
    fn pointer_items(
        &self,
        pointers: &[Pointer],
        job_id: &JobId,
        tx: &mut Tx,
    ) -> Result<(), StoreError> {
        for pointer in pointers {
            match pointer {
                Pointer::Request(request_id) => tx.put(self.put(Item::from([
                    (ATTR_PK.to_owned(), s(req_pk(request_id))),
                    (ATTR_SK.to_owned(), s(job_gsi_sk(job_id.as_str()))),
                    ("t".to_owned(), s("request_ptr")),
                    ("job_id".to_owned(), s(job_id.as_str())),
                ])))?,
                Pointer::Publish(publish_id) => {
                    let put = self
                        .put(Item::from([
                            (ATTR_PK.to_owned(), s(pub_pk(publish_id))),
                            (ATTR_SK.to_owned(), s(PUB_SK)),
                            ("t".to_owned(), s("publish_ptr")),
                            ("job_id".to_owned(), s(job_id.as_str())),
                        ]))
                        .condition_expression("attribute_not_exists(pk) OR job_id = :job")
                        .expression_attribute_values(":job", s(job_id.as_str()))
                        .build()
                        .map_err(unavailable)?;
                    tx.push_guarded(
                        TransactWriteItem::builder().put(put).build(),
                        format!("publish_id {publish_id} already points at another job"),
                    );
                }
            }
        }
        Ok(())
    }
}

impl JobStore for DynamoStore {
    async fn begin_idempotent(
        &self,
        scope: &IdempotencyScope,
        hash: &PayloadHash,
        now: UtcTime,
        in_progress_until: UtcTime,
    ) -> Result<IdempotencyBegin, StoreError> {
        self.begin_idempotency(scope, hash, now, in_progress_until)
            .await
    }

    async fn abandon_idempotent(&self, scope: &IdempotencyScope) -> Result<(), StoreError> {
        self.abandon_idempotency(scope).await
    }

    async fn create(
        &self,
        created: &Applied,
        idempotency: Option<(&IdempotencyScope, &PayloadHash, &StoredResponse, UtcTime)>,
    ) -> Result<(), StoreError> {
        let job = &created.job;
        let mut tx = Tx::default();
        self.creation_items(created, &mut tx)?;
        if let Some((scope, hash, response, expires_at)) = idempotency {
            tx.push(self.complete_idempotency(scope, hash, response, expires_at, job)?);
        }
        self.write("create", tx).await?;
        debug!(job_id = %job.id, account_id = %job.account_id, state = %job.state, "job created");
        Ok(())
    }

    async fn get(&self, id: &JobId) -> Result<Option<Job>, StoreError> {
        self.get_item("get", job_pk(id.as_str()), JOB_SK)
            .await?
            .map(|item| parse_job(&item))
            .transpose()
    }

    /// One Query on the job's partition, `sk` between `EV#<after + 1>` and the last possible
    /// version, reading one event more than asked to learn whether another page follows.
    async fn audit_page(
        &self,
        id: &JobId,
        after: Option<u64>,
        limit: u32,
    ) -> Result<AuditPage, StoreError> {
        let limit = limit.clamp(1, AUDIT_PAGE_MAX) as usize;
        let from = audit_sk(after.map_or(0, |a| a.saturating_add(1)));
        let mut events = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let want = limit + 1 - events.len();
            let out = self
                .client
                .query()
                .table_name(self.table())
                .consistent_read(true)
                .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                .expression_attribute_values(":pk", s(job_pk(id.as_str())))
                .expression_attribute_values(":from", s(from.clone()))
                .expression_attribute_values(":to", s(audit_sk(AUDIT_VERSION_MAX)))
                .limit(i32::try_from(want).unwrap_or(i32::MAX))
                .return_consumed_capacity(self.capacity())
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(self.failed("audit_page"))?;
            self.meter.record("audit_page", out.consumed_capacity());
            for item in out.items.unwrap_or_default() {
                events.push(parse_audit(&item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && events.len() <= limit => start = Some(k),
                _ => break,
            }
        }
        let more = events.len() > limit;
        events.truncate(limit);
        let next_after = if more {
            events.last().map(|e| e.version)
        } else {
            None
        };
        Ok(AuditPage { events, next_after })
    }

    /// One transaction: the job conditional on `(expected_version, from state)`, its audit event
    /// (new), and exactly the pointers the transition names.
    async fn save(&self, applied: &Applied, expected_version: u64) -> Result<(), StoreError> {
        let job = &applied.job;
        if job.version <= expected_version || applied.audit.version != job.version {
            return Err(StoreError::Corrupt(format!(
                "transition to version {} (audit {}) cannot follow version {expected_version}",
                job.version, applied.audit.version
            )));
        }
        let mut put = self
            .put(job_item(job)?)
            .expression_attribute_values(":expected", n(expected_version));
        put = match applied.audit.from {
            Some(from) => put
                .condition_expression("ver = :expected AND st = :from")
                .expression_attribute_values(":from", s(from.as_str())),
            None => put.condition_expression("ver = :expected"),
        };
        let mut tx = Tx::default();
        tx.put(put)?;
        tx.put(
            self.put(audit_item(job, &applied.audit)?)
                .condition_expression("attribute_not_exists(pk)"),
        )?;
        self.pointer_items(&applied.pointers, &job.id, &mut tx)?;
        match self.write("save", tx).await {
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

    /// The whole job item, put conditionally on the stored job being at `job.version` in
    /// `job.state`: only the next check and hold differ from what is stored, so the item keeps
    /// its version and the due index follows the new next check. No audit item, no transaction.
    async fn reschedule(&self, job: &Job) -> Result<(), StoreError> {
        let mut tx = Tx::default();
        tx.put(
            self.put(job_item(job)?)
                .condition_expression("ver = :ver AND st = :st")
                .expression_attribute_values(":ver", n(job.version))
                .expression_attribute_values(":st", s(job.state.as_str())),
        )?;
        self.write("reschedule", tx).await?;
        debug!(job_id = %job.id, account_id = %job.account_id, version = job.version,
            next_check = ?job.next_check, "next check moved");
        Ok(())
    }

    async fn jobs_for_request(&self, request_id: &RequestId) -> Result<Vec<JobId>, StoreError> {
        self.query_partition("jobs_for_request", req_pk(request_id))
            .await?
            .iter()
            .map(parse_job_id)
            .collect()
    }

    async fn job_for_publish(&self, publish_id: &PublishId) -> Result<Option<JobId>, StoreError> {
        self.get_item("job_for_publish", pub_pk(publish_id), PUB_SK)
            .await?
            .as_ref()
            .map(parse_job_id)
            .transpose()
    }

    async fn list(
        &self,
        tenant: &TenantId,
        filter: &JobFilter,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<JobPage, StoreError> {
        self.list_jobs(tenant, filter, cursor, limit).await
    }

    async fn due(&self, now: UtcTime, limit: u32) -> Result<Vec<DueJob>, StoreError> {
        self.due_jobs(now, limit).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn check_kinds_round_trip_through_their_wire_names() {
        for kind in [
            CheckKind::SubmitRender,
            CheckKind::RenderPoll,
            CheckKind::PublishAt,
            CheckKind::QueueStale,
            CheckKind::LeaseExpiry,
            CheckKind::StatusPoll,
            CheckKind::UnknownResolve,
        ] {
            assert_eq!(parse_check_kind(&check_kind_str(kind)), Some(kind));
        }
        assert_eq!(check_kind_str(CheckKind::LeaseExpiry), "lease_expiry");
    }

    #[test]
    fn a_document_that_inflates_past_the_item_limit_is_corrupt_not_read() {
        let fits = vec![b' '; DOC_MAX_BYTES];
        assert_eq!(inflate(&deflate(&fits).unwrap()).unwrap(), fits);
        let bomb = deflate(&vec![b' '; DOC_MAX_BYTES + 1]).unwrap();
        assert!(bomb.len() < 1024, "a small item");
        assert!(matches!(inflate(&bomb), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn a_cut_or_foreign_document_is_corrupt_not_read() {
        let doc = br#"{"id":"job_01","state":"ready"}"#;
        let stored = deflate(doc).unwrap();
        assert_eq!(inflate(&stored).unwrap(), doc);
        for cut in 0..stored.len() {
            assert!(inflate(&stored[..cut]).is_err(), "cut at {cut}");
        }
        let mut other_format = stored.clone();
        other_format[0] = DOC_FORMAT_V1 + 1;
        assert!(inflate(&other_format).is_err());
    }

    /// Stored documents need the dictionary byte for byte: a change must be a new format.
    #[test]
    fn the_v1_dictionary_never_changes() {
        use sha2::Digest as _;
        assert_eq!(
            hex::encode(sha2::Sha256::digest(DOC_DICTIONARY_V1)),
            "f73d3c30daee678df68baeec09bac0b06df4f23d96f5ecc6afe3220a2bba0867"
        );
    }

    /// A published job of the cost benchmark (1,478 bytes of JSON) deflates to well under a KB.
    #[test]
    fn a_published_jobs_document_deflates_to_a_third() {
        let doc = include_bytes!("../../tests/fixtures/published_job.json");
        let stored = deflate(doc).unwrap();
        assert_eq!(inflate(&stored).unwrap(), doc);
        assert!(
            stored.len() * 3 < doc.len(),
            "{} of {} bytes",
            stored.len(),
            doc.len()
        );
    }

    #[test]
    fn audit_keys_sort_by_version() {
        assert!(audit_sk(9) < audit_sk(10));
        assert!(audit_sk(0) < audit_sk(1));
        assert_eq!(audit_sk(u64::MAX), audit_sk(AUDIT_VERSION_MAX));
        assert!(audit_sk(AUDIT_VERSION_MAX).starts_with(AUDIT_PREFIX));
    }
}
