//! A scripted Ssemble, written from ssemble-api.md: creates that cost a credit and have no
//! idempotency key (so an answer lost after the create leaves a request Reelay must find, not
//! create twice), the key's hourly budget, status and document reads, a 404 for ids it does not
//! know, and unsigned webhooks that arrive late and twice.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reelay_domain::job::{Clip, MediaSource, RenderRequest};
use reelay_domain::lifecycle::ErrorClass;
use reelay_domain::ports::Clock;
use reelay_domain::upstream::{RenderApi, RenderProgress, UpstreamError};
use reelay_domain::{RequestId, UtcTime};

use crate::clock::SimClock;
use crate::faults::Chaos;

const HOUR: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy)]
pub struct SsembleFaults {
    pub create_5xx_before: f64,
    pub create_5xx_after: f64,
    pub create_timeout: f64,
    pub create_429: f64,
    pub read_5xx: f64,
    pub webhook_duplicate: f64,
    pub webhook_late: f64,
    pub webhook_lost: f64,
}

impl Default for SsembleFaults {
    fn default() -> Self {
        Self {
            create_5xx_before: 0.05,
            create_5xx_after: 0.08,
            create_timeout: 0.05,
            create_429: 0.05,
            read_5xx: 0.05,
            webhook_duplicate: 0.3,
            webhook_late: 0.1,
            webhook_lost: 0.2,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Completed {
        after: Duration,
        clips: Vec<Clip>,
    },
    Failed {
        after: Duration,
        reason: String,
    },
    /// Never finishes (Reelay's render deadline must end the wait).
    Never,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub request_id: String,
    pub source: String,
    pub created: UtcTime,
    pub outcome: Outcome,
    pub webhook_url: Option<String>,
    pub settled: bool,
    /// Deleted (`DELETE /shorts/:id`): Ssemble answers 404 for it from then on.
    pub deleted: bool,
    /// When it was deleted.
    pub deleted_at: Option<UtcTime>,
}

/// A webhook Ssemble has yet to deliver: the URL Reelay gave it, and the request it names.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub at: UtcTime,
    pub url: String,
    pub request_id: String,
    /// `shorts.completed` (else `shorts.failed`).
    pub completed: bool,
}

#[derive(Debug, Default)]
struct State {
    requests: BTreeMap<String, Request>,
    calls: Vec<UtcTime>,
    outbox: Vec<Webhook>,
    violations: Vec<String>,
    /// Status reads: (request id, when).
    polls: Vec<(String, UtcTime)>,
    creates: u64,
    next: u64,
}

#[derive(Debug, Clone)]
pub struct SsembleSim {
    state: Arc<Mutex<State>>,
    clock: SimClock,
    chaos: Chaos,
    faults: SsembleFaults,
    /// The key's requests per hour (the account tier).
    pub hourly_limit: usize,
    pub find_bound: u32,
}

fn err(class: ErrorClass, code: &str, unknown: bool) -> UpstreamError {
    UpstreamError {
        class,
        code: code.into(),
        message: format!("simulated Ssemble: {code}"),
        log_id: None,
        retry_at: None,
        outcome_unknown: unknown,
    }
}

fn source_key(request: &RenderRequest) -> String {
    let media = match &request.media {
        MediaSource::Url(u) | MediaSource::FileUrl(u) => u.clone(),
    };
    format!("{media}#{}-{}", request.start, request.end)
}

impl SsembleSim {
    pub fn new(clock: SimClock, chaos: Chaos, faults: SsembleFaults, hourly_limit: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::default())),
            clock,
            chaos,
            faults,
            hourly_limit,
            find_bound: 2,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one call against the key's hour; a call past it is Reelay's fault.
    fn charge(&self, s: &mut State, now: UtcTime, what: &str) -> Result<(), UpstreamError> {
        s.calls.push(now);
        let start = now.minus(HOUR);
        let used = s.calls.iter().filter(|t| **t > start).count();
        if used > self.hourly_limit {
            s.violations.push(format!(
                "{what} over the key's {}/hour at {now}",
                self.hourly_limit
            ));
            return Err(err(ErrorClass::WaitForWindow, "rate_limit_exceeded", false));
        }
        Ok(())
    }

    fn outcome(&self) -> Outcome {
        let after = Duration::from_secs(5 + self.clock.below(1800));
        match self.clock.below(12) {
            0 => Outcome::Failed {
                after,
                reason: "Video download failed: URL returned 403 Forbidden".into(),
            },
            1 => Outcome::Never,
            _ => {
                let n = 1 + self.clock.below(3);
                let clips = (0..n)
                    .map(|i| Clip {
                        short_id: format!("short-{i}-{}", self.clock.below(1_000_000)),
                        video_url: format!(
                            "https://cdn.ssemble.sim/{}.mp4",
                            self.clock.below(1_000_000)
                        ),
                        duration_secs: Some(20.0 + i as f64),
                        viral_score: Some((self.clock.below(100)) as f64),
                    })
                    .collect();
                Outcome::Completed { after, clips }
            }
        }
    }

    fn create(
        &self,
        s: &mut State,
        request: &RenderRequest,
        url: Option<String>,
        now: UtcTime,
    ) -> String {
        s.next += 1;
        s.creates += 1;
        let id = format!("{:024x}", 0xa000_0000_0000_u64 + s.next);
        let outcome = self.outcome();
        s.requests.insert(
            id.clone(),
            Request {
                request_id: id.clone(),
                source: source_key(request),
                created: now,
                outcome,
                webhook_url: url,
                settled: false,
                deleted: false,
                deleted_at: None,
            },
        );
        id
    }

    /// A render another tenant (or nobody) made: for jobs that name an existing requestId.
    pub fn existing_render(&self, request: &RenderRequest) -> String {
        let now = self.clock.now();
        let mut s = self.lock();
        self.create(&mut s, request, None, now)
    }

    /// An operator deletes a request (`DELETE /shorts/:id`): processing stops, its videos are
    /// gone, and every read of it answers 404 from now on.
    pub fn delete(&self, request_id: &str) {
        let now = self.clock.now();
        if let Some(r) = self.lock().requests.get_mut(request_id) {
            r.deleted = true;
            r.deleted_at = Some(now);
        }
    }

    /// Settles the requests whose time has come, queueing their webhooks.
    pub fn advance(&self) {
        let now = self.clock.now();
        let mut s = self.lock();
        let f = self.faults;
        let due: Vec<String> = s
            .requests
            .values()
            .filter(|r| !r.settled && !r.deleted)
            .filter(|r| match &r.outcome {
                Outcome::Completed { after, .. } | Outcome::Failed { after, .. } => {
                    now >= r.created.plus(*after)
                }
                Outcome::Never => false,
            })
            .map(|r| r.request_id.clone())
            .collect();
        for id in due {
            let Some(r) = s.requests.get_mut(&id) else {
                continue;
            };
            r.settled = true;
            let completed = matches!(r.outcome, Outcome::Completed { .. });
            let Some(url) = r.webhook_url.clone() else {
                continue;
            };
            if self.chaos.roll(f.webhook_lost) {
                continue;
            }
            let delay = if self.chaos.roll(f.webhook_late) {
                Duration::from_secs(600 + self.clock.below(6 * 3600))
            } else {
                Duration::from_secs(self.clock.below(20))
            };
            s.outbox.push(Webhook {
                at: now.plus(delay),
                url: url.clone(),
                request_id: id.clone(),
                completed,
            });
            if self.chaos.roll(f.webhook_duplicate) {
                s.outbox.push(Webhook {
                    at: now
                        .plus(delay)
                        .plus(Duration::from_secs(self.clock.below(600))),
                    url,
                    request_id: id,
                    completed,
                });
            }
        }
    }

    pub fn next_change(&self) -> Option<UtcTime> {
        let now = self.clock.now();
        let s = self.lock();
        let settle = s
            .requests
            .values()
            .filter(|r| !r.settled)
            .filter_map(|r| match &r.outcome {
                Outcome::Completed { after, .. } | Outcome::Failed { after, .. } => {
                    Some(r.created.plus(*after))
                }
                Outcome::Never => None,
            });
        settle
            .chain(s.outbox.iter().map(|w| w.at))
            .filter(|t| *t > now)
            .min()
    }

    pub fn due_webhooks(&self) -> Vec<Webhook> {
        let now = self.clock.now();
        let mut s = self.lock();
        let (due, later): (Vec<_>, Vec<_>) = s.outbox.drain(..).partition(|w| w.at <= now);
        s.outbox = later;
        due
    }

    pub fn has_pending_webhooks(&self) -> bool {
        !self.lock().outbox.is_empty()
    }

    pub fn violations(&self) -> Vec<String> {
        self.lock().violations.clone()
    }

    pub fn polls_since(&self, from: usize) -> Vec<(String, UtcTime)> {
        self.lock().polls.iter().skip(from).cloned().collect()
    }

    pub fn poll_count(&self) -> usize {
        self.lock().polls.len()
    }

    pub fn creates(&self) -> u64 {
        self.lock().creates
    }

    /// Requests per source (creates Reelay made for the same job's source).
    pub fn requests_for(&self, request: &RenderRequest) -> usize {
        let key = source_key(request);
        self.lock()
            .requests
            .values()
            .filter(|r| r.source == key)
            .count()
    }

    pub fn knows(&self, request_id: &str) -> bool {
        self.lock()
            .requests
            .get(request_id)
            .is_some_and(|r| !r.deleted)
    }

    pub fn request(&self, request_id: &str) -> Option<Request> {
        self.lock().requests.get(request_id).cloned()
    }
}

impl RenderApi for SsembleSim {
    async fn submit(
        &self,
        request: &RenderRequest,
        webhook_url: &str,
    ) -> Result<RequestId, UpstreamError> {
        let _ = self.chaos.point("render.submit").await;
        let now = self.clock.now();
        let f = self.faults;
        let mut s = self.lock();
        self.charge(&mut s, now, "create")?;
        if self.chaos.roll(f.create_429) {
            let mut e = err(ErrorClass::WaitForWindow, "rate_limit_exceeded", false);
            e.retry_at = Some(now.plus(Duration::from_secs(60)));
            return Err(e);
        }
        if self.chaos.roll(f.create_5xx_before) {
            return Err(err(ErrorClass::Retryable, "internal_error", false));
        }
        if self.chaos.roll(f.create_timeout) {
            return Err(err(ErrorClass::Retryable, "upstream_no_response", true));
        }
        let id = self.create(&mut s, request, Some(webhook_url.to_owned()), now);
        self.clock.note(|| format!("ssemble create {id}"));
        if self.chaos.roll(f.create_5xx_after) {
            return Err(err(ErrorClass::Retryable, "internal_error", true));
        }
        RequestId::parse(id).map_err(|_| err(ErrorClass::Permanent, "bad_request_id", true))
    }

    async fn find_submitted(
        &self,
        request: &RenderRequest,
        since: UtcTime,
    ) -> Result<Option<RequestId>, UpstreamError> {
        let _ = self.chaos.point("render.find_submitted").await;
        let now = self.clock.now();
        let mut s = self.lock();
        for _ in 0..self.find_bound {
            self.charge(&mut s, now, "look-up")?;
        }
        if self.chaos.roll(self.faults.read_5xx) {
            return Err(err(ErrorClass::Retryable, "internal_error", false));
        }
        let key = source_key(request);
        let found: Vec<String> = s
            .requests
            .values()
            .filter(|r| r.source == key && r.created >= since && r.webhook_url.is_some())
            .filter(|r| !r.deleted)
            .map(|r| r.request_id.clone())
            .collect();
        match found.as_slice() {
            [] => Ok(None),
            [one] => RequestId::parse(one.clone())
                .map(Some)
                .map_err(|_| err(ErrorClass::Permanent, "bad_request_id", false)),
            _ => Err(err(
                ErrorClass::NeedsUser,
                "ambiguous_render_request",
                false,
            )),
        }
    }

    fn find_call_bound(&self) -> u32 {
        self.find_bound
    }

    async fn render_progress(
        &self,
        request_id: &RequestId,
    ) -> Result<RenderProgress, UpstreamError> {
        let _ = self.chaos.point("render.progress").await;
        let now = self.clock.now();
        let mut s = self.lock();
        s.polls.push((request_id.as_str().to_owned(), now));
        self.charge(&mut s, now, "status")?;
        if self.chaos.roll(self.faults.read_5xx) {
            return Err(err(ErrorClass::Retryable, "internal_error", false));
        }
        let Some(r) = s.requests.get(request_id.as_str()).filter(|r| !r.deleted) else {
            self.clock
                .note(|| format!("ssemble status {request_id}: 404"));
            return Err(err(ErrorClass::Permanent, "resource_not_found", false));
        };
        self.clock.note(|| format!("ssemble status {request_id}"));
        Ok(match &r.outcome {
            Outcome::Completed { after, .. } if now >= r.created.plus(*after) => {
                RenderProgress::Completed
            }
            Outcome::Failed { after, reason } if now >= r.created.plus(*after) => {
                RenderProgress::Failed {
                    reason: reason.clone(),
                }
            }
            _ => RenderProgress::Pending,
        })
    }

    async fn render_clips(
        &self,
        request_id: &RequestId,
    ) -> Result<Option<Vec<Clip>>, UpstreamError> {
        let _ = self.chaos.point("render.clips").await;
        let now = self.clock.now();
        let mut s = self.lock();
        self.charge(&mut s, now, "document")?;
        if self.chaos.roll(self.faults.read_5xx) {
            return Err(err(ErrorClass::Retryable, "internal_error", false));
        }
        let Some(r) = s.requests.get(request_id.as_str()).filter(|r| !r.deleted) else {
            return Err(err(ErrorClass::Permanent, "resource_not_found", false));
        };
        Ok(match &r.outcome {
            Outcome::Completed { after, clips } if now >= r.created.plus(*after) => {
                Some(clips.clone())
            }
            _ => None,
        })
    }
}
