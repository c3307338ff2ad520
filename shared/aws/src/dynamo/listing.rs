//! The index reads of `JobStore`: a tenant's jobs (`gsi1`) and due work (the sharded sparse
//! `due` index).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reelay_domain::ports::{DueJob, JobFilter, JobPage, StoreError};
use reelay_domain::{JobId, TenantId, UtcTime};

use super::jobs::{JOB_SK, job_gsi_sk, job_pk, parse_check_kind, parse_job, tenant_gsi};
use super::{ATTR_PK, ATTR_SK, DUE_SHARDS, DynamoStore, Item, due_pk, get_s, req_s, s};

/// Pages read per `list` call when filters discard items: bounds one API call's cost.
const LIST_MAX_PAGES: usize = 5;

impl DynamoStore {
    pub(super) async fn list_jobs(
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
            // The index holds keys only, so the filters apply to the jobs read from the table:
            // read more keys per page when filtering.
            let page_limit = if filtered {
                (remaining * 4).min(200)
            } else {
                remaining
            };
            let out = self
                .client
                .query()
                .table_name(self.table())
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :t AND begins_with(gsi1sk, :job)")
                .expression_attribute_values(":t", s(tenant_gsi(tenant)))
                .expression_attribute_values(":job", s("JOB#"))
                .scan_index_forward(false)
                .limit(i32::try_from(page_limit).unwrap_or(100))
                .return_consumed_capacity(self.capacity())
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(self.failed("list"))?;
            self.meter.record("list", out.consumed_capacity());
            let keys = out.items.unwrap_or_default();
            let mut page = Vec::with_capacity(keys.len());
            for item in self.batch_get("list", &keys).await? {
                let job = parse_job(&item)?;
                if filter.matches(&job) {
                    page.push(job);
                }
            }
            let last_evaluated = out.last_evaluated_key.filter(|k| !k.is_empty());
            let room = remaining as usize;
            if page.len() >= room {
                // Full page: resume after the last returned job, unless it was the very last one.
                let more = page.len() > room || last_evaluated.is_some();
                jobs.extend(page.into_iter().take(room));
                next_cursor = if more {
                    jobs.last().map(|j| encode_cursor(&j.id))
                } else {
                    None
                };
                break;
            }
            jobs.extend(page);
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

    /// Every shard's oldest due entries, merged oldest first, `limit` in all.
    pub(super) async fn due_jobs(
        &self,
        now: UtcTime,
        limit: u32,
    ) -> Result<Vec<DueJob>, StoreError> {
        let limit = limit.clamp(1, 1000);
        let upper = format!("{:015}", now.as_millis().saturating_add(1).max(0));
        let shards = (0..DUE_SHARDS).map(|shard| self.due_in_shard(shard, &upper, limit));
        let mut due = Vec::new();
        for shard in futures::future::join_all(shards).await {
            due.extend(shard?);
        }
        due.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.job_id.cmp(&b.job_id)));
        due.truncate(limit as usize);
        Ok(due)
    }

    /// The oldest `limit` due entries of one shard (following pages: a page stops at 1 MB).
    async fn due_in_shard(
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
                .table_name(self.table())
                .index_name("due")
                .key_condition_expression("due_pk = :p AND due_sk < :upper")
                .expression_attribute_values(":p", s(due_pk(shard)))
                .expression_attribute_values(":upper", s(upper))
                .limit(i32::try_from(remaining).unwrap_or(1000))
                .return_consumed_capacity(self.capacity())
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(self.failed("due"))?;
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

fn due_entry(item: &Item) -> Result<DueJob, StoreError> {
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

fn cursor_key(tenant: &TenantId, id: &JobId) -> Item {
    Item::from([
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
}
