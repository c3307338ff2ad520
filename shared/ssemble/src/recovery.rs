//! Resolving a create whose outcome is unknown. Ssemble has no idempotency key and every
//! create costs a credit, so a lost response is settled by looking in `GET /shorts` — never by
//! blindly sending the create again.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::client::SsembleClient;
use crate::error::{ApiError, ErrorClass};
use crate::model::{
    ApiResponse, CreateShortRequest, CreateShortResponse, ListQuery, RequestId, RequestSummary,
    SortBy, SortOrder, Source,
};

/// Tolerance when comparing second offsets that went through JSON numbers.
const RANGE_EPSILON: f64 = 0.5;

/// What identifies "our" request among an account's recent ones.
#[derive(Debug, Clone)]
pub struct FindCriteria {
    /// The source exactly as sent.
    pub source: Source,
    /// Requested range start.
    pub start: f64,
    /// Requested range end (the server may clamp it down to the video's length).
    pub end: f64,
    /// When the create was first attempted (our clock).
    pub attempted_at: DateTime<Utc>,
    /// Request ids already owned by other jobs: never claim them.
    pub exclude: BTreeSet<RequestId>,
}

impl FindCriteria {
    /// Criteria for a create request attempted at `attempted_at`.
    pub fn for_request(request: &CreateShortRequest, attempted_at: DateTime<Utc>) -> Self {
        Self {
            source: request.source.clone(),
            start: request.start,
            end: request.end,
            attempted_at,
            exclude: BTreeSet::new(),
        }
    }
}

/// Result of a search.
#[derive(Debug, Clone)]
pub enum FindOutcome {
    /// Exactly one request matches.
    Found(RequestSummary),
    /// Several match (e.g. two jobs submitted the same source and range): a human or a
    /// stricter rule must choose.
    Ambiguous(Vec<RequestSummary>),
    /// Nothing matches in the scanned window. Not proof of absence if the server was slow
    /// to commit; callers that can afford it look again later before resubmitting.
    NotFound,
}

/// Result of [`SsembleClient::create_at_most_once`].
#[derive(Debug)]
pub enum CreateOutcome {
    /// The create answered normally.
    Created(ApiResponse<CreateShortResponse>),
    /// The response was lost, but the request exists: use this id, do not resubmit.
    Recovered {
        request: RequestSummary,
        cause: ApiError,
    },
    /// The response was lost and several requests match.
    Ambiguous {
        candidates: Vec<RequestSummary>,
        cause: ApiError,
    },
    /// The response was lost and no matching request exists: the caller decides whether to
    /// resubmit (spending another credit if the first did land after all).
    NotFound { cause: ApiError },
    /// The response was lost and the search itself failed: still unknown, look again later.
    Unresolved {
        cause: ApiError,
        lookup_error: ApiError,
    },
}

impl SsembleClient {
    /// Looks for a request matching `criteria` among the newest requests
    /// (`GET /shorts?sortBy=createdAt&sortOrder=desc`), created within the configured window
    /// after the attempt. List items lacking the range are confirmed with `GET /shorts/:id`.
    pub async fn find_request(&self, criteria: &FindCriteria) -> Result<FindOutcome, ApiError> {
        let policy = self.find;
        let skew = chrono::Duration::from_std(policy.clock_skew).unwrap_or_default();
        let window = chrono::Duration::from_std(policy.window).unwrap_or_default();
        let earliest = criteria.attempted_at - skew;
        let latest = criteria.attempted_at + window + skew;
        let mut matches = Vec::new();
        let mut confirmations = 0u32;

        'pages: for page in 1..=policy.max_pages.max(1) {
            let resp = self
                .list(&ListQuery {
                    page: Some(page),
                    limit: Some(policy.page_limit.clamp(1, 100)),
                    status: None,
                    sort_by: Some(SortBy::CreatedAt),
                    sort_order: Some(SortOrder::Desc),
                })
                .await?;
            let items = resp.data.requests;
            let page_len = items.len();
            let mut older_seen = false;
            for item in items {
                if let Some(created) = item.created_at {
                    if created < earliest {
                        older_seen = true;
                        continue;
                    }
                    if created > latest {
                        continue;
                    }
                }
                if criteria.exclude.contains(&item.request_id) {
                    continue;
                }
                match quick_match(criteria, &item) {
                    Match::No => {}
                    Match::Yes => matches.push(item),
                    Match::NeedsDocument => {
                        if confirmations >= policy.max_confirmations {
                            tracing::warn!(
                                request_id = item.request_id.as_str(),
                                "ssemble find_request confirmation budget exhausted"
                            );
                            continue;
                        }
                        confirmations += 1;
                        let doc = match self.get(item.request_id.as_str()).await {
                            Ok(resp) => resp.data,
                            // Deleted between the list and the look-up: not ours to claim.
                            Err(e) if e.class() == ErrorClass::NotFound => continue,
                            Err(e) => return Err(e),
                        };
                        let candidate = RequestSummary {
                            url: doc.url.clone().or(item.url.clone()),
                            file_url: doc.file_url.clone().or(item.file_url.clone()),
                            start: doc.start,
                            end: doc.end,
                            ..item
                        };
                        if quick_match(criteria, &candidate) == Match::Yes {
                            matches.push(candidate);
                        }
                    }
                }
            }
            let last_page = resp
                .data
                .pagination
                .is_none_or(|p| p.total_pages <= page || p.total_pages == 0);
            if older_seen || last_page || page_len == 0 {
                break 'pages;
            }
        }

        tracing::info!(
            matches = matches.len(),
            confirmations,
            "ssemble find_request finished"
        );
        Ok(match matches.len() {
            0 => FindOutcome::NotFound,
            1 => FindOutcome::Found(matches.remove(0)),
            _ => FindOutcome::Ambiguous(matches),
        })
    }

    /// Creates a request at most once. If the answer proves the server did not act (4xx,
    /// 429 after bounded retries) the error is returned; if the outcome is unknown (timeout
    /// after sending, 5xx, unreadable 2xx) it waits `FindPolicy::settle_delay`, then searches
    /// and reports what it found. It never sends the create a second time.
    pub async fn create_at_most_once(
        &self,
        request: &CreateShortRequest,
        exclude: BTreeSet<RequestId>,
    ) -> Result<CreateOutcome, ApiError> {
        let attempted_at = Utc::now();
        let cause = match self.create(request).await {
            Ok(resp) => return Ok(CreateOutcome::Created(resp)),
            Err(e) if !e.may_have_taken_effect() => return Err(e),
            Err(e) => e,
        };
        tracing::warn!(
            error.message = %cause,
            "ssemble create outcome unknown; searching before any resubmission"
        );
        if self.find.settle_delay > Duration::ZERO {
            tokio::time::sleep(self.find.settle_delay).await;
        }
        let mut criteria = FindCriteria::for_request(request, attempted_at);
        criteria.exclude = exclude;
        Ok(match self.find_request(&criteria).await {
            Ok(FindOutcome::Found(request)) => {
                tracing::info!(
                    request_id = request.request_id.as_str(),
                    "ssemble create recovered"
                );
                CreateOutcome::Recovered { request, cause }
            }
            Ok(FindOutcome::Ambiguous(candidates)) => {
                CreateOutcome::Ambiguous { candidates, cause }
            }
            Ok(FindOutcome::NotFound) => CreateOutcome::NotFound { cause },
            Err(lookup_error) => CreateOutcome::Unresolved {
                cause,
                lookup_error,
            },
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Match {
    Yes,
    No,
    NeedsDocument,
}

fn quick_match(c: &FindCriteria, item: &RequestSummary) -> Match {
    let wanted = c.source.as_str();
    let source_known = item.url.is_some() || item.file_url.is_some();
    if source_known
        && item.url.as_deref() != Some(wanted)
        && item.file_url.as_deref() != Some(wanted)
    {
        return Match::No;
    }
    let requested = c.end - c.start;
    if let (Some(start), Some(end)) = (item.start, item.end) {
        // The server clamps `end` down to the video's length, never up.
        let start_ok = (start - c.start).abs() <= RANGE_EPSILON;
        let end_ok = (end - c.end).abs() <= RANGE_EPSILON || (end < c.end && end > start);
        return if start_ok && end_ok && source_known {
            Match::Yes
        } else if start_ok && end_ok {
            Match::NeedsDocument
        } else {
            Match::No
        };
    }
    if item.duration.is_some_and(|d| d > requested + RANGE_EPSILON) {
        return Match::No;
    }
    Match::NeedsDocument
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::model::RequestStatus;

    fn criteria() -> FindCriteria {
        FindCriteria {
            source: Source::FileUrl("https://cdn/a.mp4".into()),
            start: 10.0,
            end: 70.0,
            attempted_at: Utc::now(),
            exclude: BTreeSet::new(),
        }
    }

    fn item() -> RequestSummary {
        RequestSummary {
            request_id: RequestId::parse("665a1b2c3d4e5f6a7b8c9d0e").unwrap(),
            status: RequestStatus::Queued,
            progress: None,
            created_at: None,
            updated_at: None,
            url: None,
            file_url: None,
            duration: None,
            start: None,
            end: None,
        }
    }

    #[test]
    fn when_list_item_is_complete_should_match_on_source_and_range() {
        let c = criteria();
        let full = RequestSummary {
            file_url: Some("https://cdn/a.mp4".into()),
            start: Some(10.0),
            end: Some(70.0),
            ..item()
        };
        assert_eq!(quick_match(&c, &full), Match::Yes);
        let clamped = RequestSummary {
            end: Some(42.0),
            ..full.clone()
        };
        assert_eq!(quick_match(&c, &clamped), Match::Yes);
        let other_start = RequestSummary {
            start: Some(0.0),
            ..full.clone()
        };
        assert_eq!(quick_match(&c, &other_start), Match::No);
        let other_src = RequestSummary {
            file_url: Some("https://cdn/b.mp4".into()),
            ..full
        };
        assert_eq!(quick_match(&c, &other_src), Match::No);
    }

    #[test]
    fn when_list_item_lacks_range_should_need_document_unless_duration_excludes_it() {
        let c = criteria();
        let documented = RequestSummary {
            url: Some("https://cdn/a.mp4".into()),
            duration: Some(60.0),
            ..item()
        };
        assert_eq!(quick_match(&c, &documented), Match::NeedsDocument);
        let too_long = RequestSummary {
            duration: Some(600.0),
            ..documented
        };
        assert_eq!(quick_match(&c, &too_long), Match::No);
    }
}
