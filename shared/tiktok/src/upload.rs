use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::Mutex;

use crate::{
    API_VERSION,
    chunk::{ChunkPlan, ChunkRange},
    client::TikTokClient,
    deadline::Deadline,
    error::TikTokError,
    source::{ByteStream, SourceError, UploadSource},
};

/// Outcome of a completed upload (final 201). A 201 means "received", not "published".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadReport {
    pub video_size: u64,
    pub chunks: u64,
    /// PUT requests made, retries and resumes included.
    pub requests: u64,
    /// Chunk re-sends after 5xx or transport failures.
    pub retries: u32,
    /// Jumps to the server-reported progress after a 416.
    pub resumes: u32,
    /// `x-tt-logid` of the final response, when sent.
    pub log_id: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// 403: the upload_url is older than its one-hour validity; a new init is needed.
    #[error("upload_url expired (HTTP 403, log_id {log_id:?})")]
    Expired { log_id: Option<String> },
    /// 404: no upload task for this upload_url.
    #[error("no upload task for this upload_url (HTTP 404, log_id {log_id:?})")]
    TaskNotFound { log_id: Option<String> },
    /// 400 and other non-retryable answers.
    #[error("chunk {chunk} rejected with HTTP {status} (log_id {log_id:?})")]
    Rejected {
        chunk: u64,
        status: u16,
        log_id: Option<String>,
    },
    #[error("chunk {chunk} still failing with HTTP {status} after {attempts} attempts")]
    ServerErrorsExhausted {
        chunk: u64,
        status: u16,
        attempts: u32,
    },
    #[error("chunk {chunk} could not be delivered after {attempts} attempts: {source}")]
    TransportExhausted {
        chunk: u64,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    /// 416 whose progress header is missing, malformed or not on a chunk boundary.
    #[error("HTTP 416 with unusable progress {header:?}")]
    BadProgress { header: Option<String> },
    #[error("upload made no progress after {resumes} consecutive 416 answers")]
    NoProgress { resumes: u32 },
    #[error("unexpected HTTP {status} for chunk {chunk} of {total}")]
    UnexpectedStatus { chunk: u64, total: u64, status: u16 },
    #[error("source has {actual} bytes but the plan expects {expected}")]
    SizeMismatch { expected: u64, actual: u64 },
}

impl UploadError {
    pub fn log_id(&self) -> Option<&str> {
        match self {
            Self::Expired { log_id }
            | Self::TaskNotFound { log_id }
            | Self::Rejected { log_id, .. } => log_id.as_deref(),
            _ => None,
        }
    }
}

/// The source read position shared between successive chunk bodies, so the source is read once
/// front to back unless a chunk must be re-sent.
struct Cursor {
    stream: Option<ByteStream>,
    pos: u64,
    leftover: Option<Bytes>,
    failure: Option<SourceError>,
}

/// Names the upload step that met the deadline.
const STAGE: &str = "upload";

impl TikTokClient {
    /// Streams `source` to `upload_url` chunk by chunk per `plan`. Memory stays around one network
    /// buffer, not one chunk. 5xx and transport failures re-send the same chunk (bounded backoff); 416
    /// resumes from the server's progress.
    pub async fn upload(
        &self,
        upload_url: &str,
        plan: &ChunkPlan,
        source: &dyn UploadSource,
        content_type: &str,
    ) -> Result<UploadReport, TikTokError> {
        self.upload_within(upload_url, plan, source, content_type, Deadline::NONE)
            .await
    }

    /// [`TikTokClient::upload`] under `deadline`: each chunk PUT (and each read of the source) waits
    /// at most min(`timeouts.upload_chunk`, what is left), and no PUT or retry starts once the
    /// deadline has passed. Then [`TikTokError::DeadlineExceeded`] says whether a PUT was cut off
    /// (its chunk may have landed; a later `416` tells).
    pub async fn upload_within(
        &self,
        upload_url: &str,
        plan: &ChunkPlan,
        source: &dyn UploadSource,
        content_type: &str,
        deadline: Deadline,
    ) -> Result<UploadReport, TikTokError> {
        let passed = |request_cut: bool, chunk: u64| {
            tracing::warn!(
                endpoint = "upload",
                api_version = API_VERSION,
                chunk,
                chunks = plan.total_chunk_count,
                request_cut,
                "upload stopped at the caller's deadline"
            );
            TikTokError::DeadlineExceeded {
                stage: STAGE,
                request_cut,
            }
        };
        if source.len() != plan.video_size {
            return Err(UploadError::SizeMismatch {
                expected: plan.video_size,
                actual: source.len(),
            }
            .into());
        }
        let policy = self.cfg.upload_retry;
        let cursor = Arc::new(Mutex::new(Cursor {
            stream: None,
            pos: 0,
            leftover: None,
            failure: None,
        }));
        let mut report = UploadReport {
            video_size: plan.video_size,
            chunks: plan.total_chunk_count,
            ..UploadReport::default()
        };
        let mut index = 0u64;
        let mut attempts = 0u32;
        let mut resumes_without_progress = 0u32;
        // Whether the last PUT failed without an answer (it may have landed).
        let mut last_cut = false;
        while index < plan.total_chunk_count {
            let range = plan.range(index);
            let Some(chunk_timeout) = deadline.bound(self.cfg.timeouts.upload_chunk) else {
                return Err(passed(last_cut, index));
            };
            {
                let mut c = cursor.lock().await;
                if c.stream.is_none() || c.pos != range.start {
                    let Some(opened) = deadline.run(source.open(range.start)).await else {
                        return Err(passed(last_cut, index));
                    };
                    c.stream = Some(opened?);
                    c.pos = range.start;
                    c.leftover = None;
                }
                c.failure = None;
            }
            attempts += 1;
            report.requests += 1;
            let body = reqwest::Body::wrap_stream(chunk_body(cursor.clone(), range));
            let sent = self
                .http
                .put(upload_url)
                .header(reqwest::header::CONTENT_TYPE, content_type)
                .header(reqwest::header::CONTENT_LENGTH, range.len())
                .header(
                    reqwest::header::CONTENT_RANGE,
                    format!("bytes {}-{}/{}", range.start, range.end, plan.video_size),
                )
                .timeout(chunk_timeout)
                .body(body)
                .send()
                .await;
            if let Some(e) = cursor.lock().await.failure.take() {
                return Err(e.into());
            }
            let resp = match sent {
                Ok(r) => r,
                Err(source) => {
                    // The upload_url carries the upload token: keep it out of logs and errors.
                    let source = source.without_url();
                    tracing::warn!(endpoint = "upload", api_version = API_VERSION, chunk = index, attempt = attempts, error = %source, "chunk PUT failed");
                    invalidate(&cursor).await;
                    last_cut = true;
                    if deadline.has_passed() {
                        return Err(passed(true, index));
                    }
                    if attempts >= policy.max_attempts_per_chunk {
                        return Err(UploadError::TransportExhausted {
                            chunk: index,
                            attempts,
                            source,
                        }
                        .into());
                    }
                    let wait = backoff(&policy, attempts);
                    if !deadline.leaves(wait) {
                        return Err(passed(true, index));
                    }
                    report.retries += 1;
                    tokio::time::sleep(wait).await;
                    continue;
                }
            };
            last_cut = false;
            let status = resp.status().as_u16();
            let log_id = header(&resp, "x-tt-logid");
            let progress = header(&resp, "content-range");
            tracing::info!(
                endpoint = "upload",
                api_version = API_VERSION,
                chunk = index,
                chunks = plan.total_chunk_count,
                http_status = status,
                x_tt_logid = log_id.as_deref(),
                progress = progress.as_deref(),
                "chunk PUT"
            );
            // Drain so the connection can be reused; the body is undocumented and unused.
            let _ = resp.bytes().await;
            let last = index + 1 == plan.total_chunk_count;
            match status {
                206 if !last => {
                    index += 1;
                    attempts = 0;
                    resumes_without_progress = 0;
                }
                201 if last => {
                    report.log_id = log_id;
                    return Ok(report);
                }
                416 => {
                    invalidate(&cursor).await;
                    let uploaded = resume_offset(plan, progress.as_deref())
                        .ok_or(UploadError::BadProgress { header: progress })?;
                    if uploaded == plan.video_size {
                        report.log_id = log_id;
                        return Ok(report);
                    }
                    let Some(next) = plan.chunk_starting_at(uploaded) else {
                        return Err(UploadError::BadProgress { header: None }.into());
                    };
                    if next > index {
                        resumes_without_progress = 0;
                    } else {
                        resumes_without_progress += 1;
                        if resumes_without_progress > policy.max_resumes_without_progress {
                            return Err(UploadError::NoProgress {
                                resumes: resumes_without_progress,
                            }
                            .into());
                        }
                    }
                    report.resumes += 1;
                    index = next;
                    attempts = 0;
                }
                403 => return Err(UploadError::Expired { log_id }.into()),
                404 => return Err(UploadError::TaskNotFound { log_id }.into()),
                s if s >= 500 => {
                    invalidate(&cursor).await;
                    if attempts >= policy.max_attempts_per_chunk {
                        return Err(UploadError::ServerErrorsExhausted {
                            chunk: index,
                            status: s,
                            attempts,
                        }
                        .into());
                    }
                    let wait = backoff(&policy, attempts);
                    if !deadline.leaves(wait) {
                        return Err(passed(false, index));
                    }
                    report.retries += 1;
                    tokio::time::sleep(wait).await;
                }
                400..=499 => {
                    return Err(UploadError::Rejected {
                        chunk: index,
                        status,
                        log_id,
                    }
                    .into());
                }
                _ => {
                    return Err(UploadError::UnexpectedStatus {
                        chunk: index,
                        total: plan.total_chunk_count,
                        status,
                    }
                    .into());
                }
            }
        }
        Err(UploadError::UnexpectedStatus {
            chunk: index,
            total: plan.total_chunk_count,
            status: 206,
        }
        .into())
    }
}

async fn invalidate(cursor: &Arc<Mutex<Cursor>>) {
    let mut c = cursor.lock().await;
    c.stream = None;
    c.leftover = None;
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn backoff(policy: &crate::config::UploadRetryPolicy, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
    policy
        .initial_backoff
        .saturating_mul(factor)
        .min(policy.max_backoff)
}

/// Bytes already received per a `Content-Range: bytes 0-{n}/{total}` progress header. Whether `n` is a
/// count or an inclusive last index is undocumented, so the reading that lands on a chunk boundary (or
/// the end) wins, the inclusive reading first.
fn resume_offset(plan: &ChunkPlan, header: Option<&str>) -> Option<u64> {
    let rest = header?.trim().strip_prefix("bytes")?.trim();
    let (range, _total) = rest.split_once('/')?;
    let (start, end) = range.split_once('-')?;
    let (start, end): (u64, u64) = (start.trim().parse().ok()?, end.trim().parse().ok()?);
    if start != 0 {
        return None;
    }
    let on_boundary = |n: u64| n == plan.video_size || plan.chunk_starting_at(n).is_some();
    [end + 1, end].into_iter().find(|n| on_boundary(*n))
}

/// Exactly `range.len()` bytes from the shared cursor; a source that ends early or errors fails the
/// body (so the PUT cannot complete with wrong bytes) and records why.
fn chunk_body(
    cursor: Arc<Mutex<Cursor>>,
    range: ChunkRange,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
    futures::stream::unfold(
        (cursor, range.len(), false),
        move |(cursor, remaining, failed)| async move {
            if remaining == 0 || failed {
                return None;
            }
            let mut c = cursor.lock().await;
            let next = match c.leftover.take() {
                Some(b) => Ok(b),
                None => match c.stream.as_mut() {
                    Some(s) => match s.next().await {
                        Some(r) => r,
                        None => Err(SourceError::ShortRead {
                            offset: range.start,
                            expected: range.len(),
                            got: range.len() - remaining,
                        }),
                    },
                    None => Err(SourceError::ShortRead {
                        offset: range.start,
                        expected: range.len(),
                        got: range.len() - remaining,
                    }),
                },
            };
            match next {
                Ok(mut piece) => {
                    let take = (piece.len() as u64).min(remaining) as usize;
                    let rest = piece.split_off(take);
                    if !rest.is_empty() {
                        c.leftover = Some(rest);
                    }
                    c.pos += take as u64;
                    drop(c);
                    Some((Ok(piece), (cursor, remaining - take as u64, false)))
                }
                Err(e) => {
                    let msg = e.to_string();
                    c.failure = Some(e);
                    drop(c);
                    Some((Err(std::io::Error::other(msg)), (cursor, remaining, true)))
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ChunkPolicy;

    #[test]
    fn when_progress_header_is_inclusive_or_count_should_land_on_a_boundary() {
        let plan = ChunkPlan::from_parts(50_000_123, 10_000_000, &ChunkPolicy::default()).unwrap();
        assert_eq!(
            resume_offset(&plan, Some("bytes 0-19999999/50000123")),
            Some(20_000_000)
        );
        assert_eq!(
            resume_offset(&plan, Some("bytes 0-20000000/50000123")),
            Some(20_000_000)
        );
        assert_eq!(resume_offset(&plan, Some("bytes 0-0/50000123")), Some(0));
        assert_eq!(
            resume_offset(&plan, Some("bytes 0-50000122/50000123")),
            Some(50_000_123)
        );
        assert_eq!(resume_offset(&plan, Some("bytes 0-12345/50000123")), None);
        assert_eq!(resume_offset(&plan, Some("garbage")), None);
        assert_eq!(resume_offset(&plan, None), None);
    }
}
