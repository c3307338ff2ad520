//! Simulator state: requests and their timelines, accounts, limiters, faults, ground-truth logs.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{Limit, SimConfig};

/// Stable, non-secret identifier of an API key for inspection output: `key_` + 12 hex digits
/// of its SHA-256.
pub fn key_id(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("key_{}", &hex::encode(digest)[..12])
}

/// The API endpoints, as named in faults and inspection.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize, PartialOrd, Ord,
)]
#[serde(rename_all = "snake_case")]
pub enum ApiEndpoint {
    Create,
    Status,
    Get,
    List,
    Delete,
    Templates,
}

impl ApiEndpoint {
    pub fn pool(self) -> Pool {
        match self {
            Self::Create => Pool::VideoCreation,
            Self::Status | Self::Get => Pool::StatusCheck,
            Self::List => Pool::ListRequests,
            Self::Delete | Self::Templates => Pool::Standard,
        }
    }
}

/// The docs' limiter pools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Pool {
    #[serde(rename = "Video creation")]
    VideoCreation,
    #[serde(rename = "Status check")]
    StatusCheck,
    #[serde(rename = "List requests")]
    ListRequests,
    #[serde(rename = "Standard")]
    Standard,
}

impl Pool {
    pub fn limit(self, cfg: &SimConfig) -> Limit {
        match self {
            Self::VideoCreation => cfg.pools.video_creation,
            Self::StatusCheck => cfg.pools.status_check,
            Self::ListRequests => cfg.pools.list_requests,
            Self::Standard => cfg.pools.standard,
        }
    }
}

/// The lifecycle phase a request is in at a given instant.
#[derive(Debug, Clone, PartialEq)]
pub struct View {
    pub status: &'static str,
    pub step: &'static str,
    pub step_message: &'static str,
    pub progress: u32,
    pub failure_reason: Option<String>,
    /// When it became terminal (for `updatedAt` and webhooks).
    pub terminal_at: Option<DateTime<Utc>>,
}

/// How a request ends unless forced otherwise.
#[derive(Debug, Clone, PartialEq)]
pub enum Fate {
    Complete,
    /// Fail `at_secs` virtual seconds after creation.
    Fail {
        at_secs: f64,
        reason: String,
    },
}

/// A forced terminal state (control API or delete-while-processing).
#[derive(Debug, Clone, PartialEq)]
pub enum Forced {
    Completed,
    Failed(String),
    Cancelled,
}

/// A generated clip.
#[derive(Debug, Clone, Serialize)]
pub struct SimShort {
    pub id: String,
    pub title: String,
    pub description: String,
    pub reason: String,
    pub viral_score: f64,
    pub start: f64,
    pub end: f64,
    pub sentence_indexes: Vec<u32>,
    pub error: bool,
}

/// A stored request.
#[derive(Debug, Clone)]
pub struct SimRequest {
    pub id: String,
    pub key: String,
    pub url: Option<String>,
    pub file_url: Option<String>,
    pub start: f64,
    pub end: f64,
    pub preferred_length: String,
    pub language: String,
    pub caption_language: String,
    pub template_name: String,
    pub webhook_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub title: String,
    pub fate: Fate,
    pub forced: Option<(DateTime<Utc>, Forced)>,
    pub deleted: bool,
    pub shorts: Vec<SimShort>,
    pub clip_bytes: Option<u64>,
    pub settled: bool,
    pub seed: u64,
    /// Wire values to emit instead of the real status/step (e.g. `TASK_COMPLETE`, a new step).
    pub wire_status: Option<String>,
    pub wire_step: Option<String>,
    /// Stuck in processing: never finishes on its own (only a forced outcome ends it).
    pub stuck: bool,
}

const PHASES: [(&str, &str, f64, u32, u32); 5] = [
    ("queued", "Waiting in queue...", 5.0 / 60.0, 0, 0),
    (
        "fetching_video",
        "Downloading video from source...",
        15.0 / 60.0,
        10,
        20,
    ),
    (
        "transcribing_audio",
        "Transcribing audio...",
        30.0 / 60.0,
        20,
        50,
    ),
    (
        "finding_highlights",
        "Finding interesting segments...",
        45.0 / 60.0,
        50,
        80,
    ),
    ("finalizing", "Rendering final clips...", 1.0, 80, 99),
];

impl SimRequest {
    pub fn source(&self) -> &str {
        self.url
            .as_deref()
            .or(self.file_url.as_deref())
            .unwrap_or_default()
    }

    /// The request as seen at `now` on a timeline of `total` virtual seconds.
    pub fn view(&self, now: DateTime<Utc>, total: f64) -> View {
        let secs_at =
            |t: f64| self.created_at + chrono::Duration::milliseconds((t * 1000.0) as i64);
        let mut elapsed = (now - self.created_at).num_milliseconds() as f64 / 1000.0;
        let natural_end = match &self.fate {
            Fate::Complete => (total, None),
            Fate::Fail { at_secs, reason } => (*at_secs, Some(reason.clone())),
        };
        let forced = self
            .forced
            .as_ref()
            .filter(|(at, _)| *at <= now && (self.stuck || *at <= secs_at(natural_end.0)));
        if let Some((at, f)) = forced {
            return match f {
                Forced::Completed => completed(*at),
                Forced::Failed(reason) => failed(*at, reason.clone()),
                Forced::Cancelled => View {
                    status: "cancelled",
                    step: "cancelled",
                    step_message: "Processing cancelled",
                    progress: 0,
                    failure_reason: None,
                    terminal_at: Some(*at),
                },
            };
        }
        if self.stuck {
            // Frozen mid-timeline ("finding highlights"), as a hung render looks from outside.
            elapsed = elapsed.min(total * 0.6).min(natural_end.0 * 0.99);
        }
        if elapsed >= natural_end.0 {
            let at = secs_at(natural_end.0);
            return match natural_end.1 {
                None => completed(at),
                Some(reason) => failed(at, reason),
            };
        }
        let frac = (elapsed / total).max(0.0);
        let mut lower = 0.0;
        for (step, msg, upper, p0, p1) in PHASES {
            if frac < upper {
                let within = if upper > lower {
                    (frac - lower) / (upper - lower)
                } else {
                    0.0
                };
                let progress = p0 + ((f64::from(p1 - p0)) * within).floor() as u32;
                return View {
                    status: if step == "queued" {
                        "queued"
                    } else {
                        "processing"
                    },
                    step,
                    step_message: msg,
                    progress,
                    failure_reason: None,
                    terminal_at: None,
                };
            }
            lower = upper;
        }
        completed(secs_at(total))
    }
}

fn completed(at: DateTime<Utc>) -> View {
    View {
        status: "completed",
        step: "completed",
        step_message: "Done! Ready to download.",
        progress: 100,
        failure_reason: None,
        terminal_at: Some(at),
    }
}

fn failed(at: DateTime<Utc>, reason: String) -> View {
    View {
        status: "failed",
        step: "failed",
        step_message: "Processing failed",
        progress: 0,
        failure_reason: Some(reason),
        terminal_at: Some(at),
    }
}

/// Per-key credit bookkeeping.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Credits {
    pub remaining: i64,
    pub spent: u64,
    pub refunded: u64,
}

/// What an injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// JSON `internal_error` envelope with the given status (default 500).
    HttpError,
    /// An HTML 502 as a proxy would send, without rate-limit headers.
    NonJson502,
    /// The call takes effect, then the response is withheld past any sane client timeout.
    TimeoutAfterAccept,
    /// The call takes effect, then the connection is cut mid-response.
    DropAfterAccept,
}

/// A pending fault.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultSpec {
    /// `None` = any endpoint.
    #[serde(default)]
    pub endpoint: Option<ApiEndpoint>,
    pub kind: FaultKind,
    /// How many matching requests it applies to.
    #[serde(default = "one")]
    pub count: u32,
    /// Status for `HttpError` (default 500).
    #[serde(default)]
    pub status: Option<u16>,
}

fn one() -> u32 {
    1
}

/// The next `count` requests (optionally of one endpoint) get a 429, with the chosen hints, so
/// tests can exercise each fallback of a client's wait computation.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StormSpec {
    #[serde(default)]
    pub endpoint: Option<ApiEndpoint>,
    #[serde(default = "one")]
    pub count: u32,
    /// Seconds announced (virtual).
    #[serde(default = "default_storm_secs")]
    pub retry_after_secs: u64,
    #[serde(default = "yes")]
    pub retry_after_header: bool,
    #[serde(default = "yes")]
    pub details_retry_after: bool,
    #[serde(default = "yes")]
    pub details_reset_at: bool,
    #[serde(default = "yes")]
    pub reset_header: bool,
}

fn default_storm_secs() -> u64 {
    37
}
fn yes() -> bool {
    true
}

/// Webhook delivery faults.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookFaults {
    /// Drop the next N deliveries entirely (no attempt at all).
    #[serde(default)]
    pub drop: u32,
    /// Send each of the next N deliveries twice.
    #[serde(default)]
    pub duplicate: u32,
    /// Extra virtual delay before the first attempt.
    #[serde(default)]
    pub delay_secs: f64,
    /// Hold deliveries until released (release in reverse to reorder).
    #[serde(default)]
    pub hold: bool,
}

/// One scheduled webhook attempt.
#[derive(Debug, Clone)]
pub struct PendingDelivery {
    pub request_id: String,
    pub event: String,
    pub url: String,
    pub body: String,
    pub attempt: u32,
    pub due: DateTime<Utc>,
    pub duplicate: bool,
}

/// Ground truth: one webhook attempt.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryRecord {
    pub request_id: String,
    pub event: String,
    pub attempt: u32,
    /// Virtual time the attempt started.
    pub at: DateTime<Utc>,
    /// HTTP status, if one came back.
    pub status: Option<u16>,
    /// `delivered`, `failed`, `timeout`, `dropped`, `abandoned`.
    pub outcome: String,
    pub duplicate: bool,
    pub body: serde_json::Value,
}

/// Ground truth: one API call.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallRecord {
    pub at: DateTime<Utc>,
    pub key_id: Option<String>,
    pub endpoint: ApiEndpoint,
    pub status: u16,
}

/// Ground truth: a request beyond a documented limit.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Violation {
    pub at: DateTime<Utc>,
    pub key_id: String,
    pub endpoint: ApiEndpoint,
    /// `Video creation`, `Status check`, `List requests`, `Standard`, `hour` or `day`.
    pub limit: String,
    pub max: u32,
    pub window_secs: i64,
}

/// Rate-limit headers for one response.
#[derive(Debug, Clone)]
pub struct RateHeaders {
    pub limit_hour: u32,
    pub remaining_hour: u32,
    pub limit_day: u32,
    pub remaining_day: u32,
    pub reset: DateTime<Utc>,
}

/// A 429 decision.
#[derive(Debug, Clone)]
pub struct Limited {
    pub headers: RateHeaders,
    pub limit: String,
    pub max: u32,
    pub window: &'static str,
    pub reset_at: DateTime<Utc>,
    pub retry_after: u64,
}

/// All mutable simulator state, behind one mutex (never held across an await).
#[derive(Debug)]
pub struct SimState {
    pub rng: StdRng,
    pub requests: BTreeMap<String, SimRequest>,
    pub order: Vec<String>,
    pub credits: HashMap<String, Credits>,
    pub counters: HashMap<(String, String, i64), u32>,
    pub faults: Vec<FaultSpec>,
    pub storms: Vec<StormSpec>,
    pub webhook_faults: WebhookFaults,
    pub pending: Vec<PendingDelivery>,
    pub held: Vec<PendingDelivery>,
    pub deliveries: Vec<DeliveryRecord>,
    pub calls: Vec<CallRecord>,
    pub violations: Vec<Violation>,
    pub storm_429s: u32,
    pub creates_per_source: BTreeMap<String, u32>,
    pub clip_bytes: u64,
    pub files_ignore_range: bool,
    pub webhook_score_divisor: f64,
    /// Root URL (`http://host:port`) used in `video_url`s.
    pub files_base: String,
    /// The next this many created requests get stuck in processing.
    pub stuck_next: u32,
}

impl SimState {
    pub fn new(cfg: &SimConfig) -> Self {
        Self {
            rng: StdRng::seed_from_u64(cfg.seed),
            requests: BTreeMap::new(),
            order: Vec::new(),
            credits: HashMap::new(),
            counters: HashMap::new(),
            faults: Vec::new(),
            storms: Vec::new(),
            webhook_faults: WebhookFaults::default(),
            pending: Vec::new(),
            held: Vec::new(),
            deliveries: Vec::new(),
            calls: Vec::new(),
            violations: Vec::new(),
            storm_429s: 0,
            creates_per_source: BTreeMap::new(),
            clip_bytes: cfg.clip_bytes,
            files_ignore_range: false,
            webhook_score_divisor: cfg.webhook_score_divisor,
            files_base: String::new(),
            stuck_next: 0,
        }
    }

    pub fn credits_mut(&mut self, key: &str, cfg: &SimConfig) -> &mut Credits {
        self.credits
            .entry(key.to_owned())
            .or_insert_with(|| Credits {
                remaining: cfg.initial_credits,
                ..Credits::default()
            })
    }

    /// Takes the first pending fault matching `endpoint`.
    pub fn take_fault(&mut self, endpoint: ApiEndpoint, kinds: &[FaultKind]) -> Option<FaultSpec> {
        let idx = self.faults.iter().position(|f| {
            f.endpoint.is_none_or(|e| e == endpoint) && kinds.contains(&f.kind) && f.count > 0
        })?;
        let fault = self.faults[idx].clone();
        self.faults[idx].count -= 1;
        if self.faults[idx].count == 0 {
            self.faults.remove(idx);
        }
        Some(fault)
    }

    pub fn take_storm(&mut self, endpoint: ApiEndpoint) -> Option<StormSpec> {
        let idx = self
            .storms
            .iter()
            .position(|s| s.endpoint.is_none_or(|e| e == endpoint) && s.count > 0)?;
        let storm = self.storms[idx].clone();
        self.storms[idx].count -= 1;
        if self.storms[idx].count == 0 {
            self.storms.remove(idx);
        }
        self.storm_429s += 1;
        Some(storm)
    }

    fn window_start(now: DateTime<Utc>, window_secs: i64) -> i64 {
        now.timestamp().div_euclid(window_secs) * window_secs
    }

    fn count(&self, key: &str, bucket: &str, start: i64) -> u32 {
        self.counters
            .get(&(key.to_owned(), bucket.to_owned(), start))
            .copied()
            .unwrap_or(0)
    }

    /// Headers for a request that consumed nothing (no key, or a rejected one).
    pub fn peek_headers(
        &self,
        key: Option<&str>,
        cfg: &SimConfig,
        now: DateTime<Utc>,
    ) -> RateHeaders {
        let hour = Self::window_start(now, 3600);
        let day = Self::window_start(now, 86400);
        let (used_h, used_d) = key.map_or((0, 0), |k| {
            (self.count(k, "hour", hour), self.count(k, "day", day))
        });
        RateHeaders {
            limit_hour: cfg.tier.per_hour,
            remaining_hour: cfg.tier.per_hour.saturating_sub(used_h),
            limit_day: cfg.tier.per_day,
            remaining_day: cfg.tier.per_day.saturating_sub(used_d),
            reset: ts(hour + 3600),
        }
    }

    /// Checks and charges the key's pool and the account's hour and day buckets.
    pub fn admit(
        &mut self,
        key: &str,
        endpoint: ApiEndpoint,
        cfg: &SimConfig,
        now: DateTime<Utc>,
    ) -> Result<RateHeaders, Limited> {
        let pool = endpoint.pool();
        let pl = pool.limit(cfg);
        let pool_name = serde_json::to_value(pool)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let pool_start = Self::window_start(now, pl.window_secs);
        let hour = Self::window_start(now, 3600);
        let day = Self::window_start(now, 86400);
        let checks = [
            (
                pool_name.clone(),
                pl.max,
                pl.window_secs,
                pool_start,
                if pl.window_secs == 60 {
                    "minute"
                } else {
                    "15 minutes"
                },
            ),
            ("hour".to_owned(), cfg.tier.per_hour, 3600, hour, "hour"),
            ("day".to_owned(), cfg.tier.per_day, 86400, day, "day"),
        ];
        for (bucket, max, window_secs, start, window) in &checks {
            if self.count(key, bucket, *start) >= *max {
                let reset_at = ts(start + window_secs);
                let retry_after = u64::try_from((reset_at - now).num_seconds().max(1)).unwrap_or(1);
                self.violations.push(Violation {
                    at: now,
                    key_id: key_id(key),
                    endpoint,
                    limit: bucket.clone(),
                    max: *max,
                    window_secs: *window_secs,
                });
                return Err(Limited {
                    headers: self.peek_headers(Some(key), cfg, now),
                    limit: bucket.clone(),
                    max: *max,
                    window,
                    reset_at,
                    retry_after,
                });
            }
        }
        for (bucket, _, _, start, _) in checks {
            *self
                .counters
                .entry((key.to_owned(), bucket, start))
                .or_insert(0) += 1;
        }
        Ok(self.peek_headers(Some(key), cfg, now))
    }

    /// Applies consequences of requests that reached a terminal state: refunds and webhooks.
    pub fn settle(&mut self, cfg: &SimConfig, now: DateTime<Utc>) {
        let ids: Vec<String> = self
            .requests
            .values()
            .filter(|r| !r.settled)
            .map(|r| r.id.clone())
            .collect();
        for id in ids {
            let Some(req) = self.requests.get(&id) else {
                continue;
            };
            let view = req.view(now, cfg.timeline_secs);
            let Some(at) = view.terminal_at else { continue };
            let key = req.key.clone();
            let webhook = req.webhook_url.clone().filter(|_| !req.deleted);
            let body = match view.status {
                "completed" => Some(("shorts.completed", self.completed_webhook(req, at))),
                "failed" => Some((
                    "shorts.failed",
                    failed_webhook(req, at, view.failure_reason.as_deref()),
                )),
                _ => None,
            };
            if view.status == "failed" {
                let c = self.credits_mut(&key, cfg);
                c.remaining += 1;
                c.refunded += 1;
            }
            if let (Some(url), Some((event, body))) = (webhook, body) {
                let wf = &mut self.webhook_faults;
                let delivery = PendingDelivery {
                    request_id: id.clone(),
                    event: event.to_owned(),
                    url,
                    body: body.to_string(),
                    attempt: 1,
                    due: at.max(now)
                        + chrono::Duration::milliseconds((wf.delay_secs * 1000.0) as i64),
                    duplicate: false,
                };
                if wf.drop > 0 {
                    wf.drop -= 1;
                    self.deliveries.push(DeliveryRecord {
                        request_id: id.clone(),
                        event: event.to_owned(),
                        attempt: 0,
                        at: now,
                        status: None,
                        outcome: "dropped".to_owned(),
                        duplicate: false,
                        body,
                    });
                } else {
                    let dup = if wf.duplicate > 0 {
                        wf.duplicate -= 1;
                        true
                    } else {
                        false
                    };
                    let target = if wf.hold {
                        &mut self.held
                    } else {
                        &mut self.pending
                    };
                    if dup {
                        target.push(PendingDelivery {
                            duplicate: true,
                            ..delivery.clone()
                        });
                    }
                    target.push(delivery);
                }
            }
            if let Some(r) = self.requests.get_mut(&id) {
                r.settled = true;
            }
        }
    }

    fn completed_webhook(&self, req: &SimRequest, at: DateTime<Utc>) -> serde_json::Value {
        let div = if self.webhook_score_divisor > 0.0 {
            self.webhook_score_divisor
        } else {
            1.0
        };
        let shorts: Vec<serde_json::Value> = req
            .shorts
            .iter()
            .map(|s| {
                serde_json::json!({
                    "id": s.id,
                    "title": s.title,
                    "video_url": if s.error { serde_json::Value::Null } else { serde_json::Value::String(file_url(&self.files_base, &req.id, &s.id)) },
                    "duration": (s.end - s.start).round(),
                    "viral_score": (s.viral_score / div * 10.0).round() / 10.0,
                })
            })
            .collect();
        serde_json::json!({
            "event": "shorts.completed",
            "requestId": req.id,
            "status": "completed",
            "timestamp": iso(at),
            "data": { "shorts": shorts },
        })
    }

    /// Generates a 24-hex id.
    pub fn next_object_id(&mut self) -> String {
        let bytes: [u8; 12] = self.rng.random();
        hex::encode(bytes)
    }
}

fn failed_webhook(req: &SimRequest, at: DateTime<Utc>, reason: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "event": "shorts.failed",
        "requestId": req.id,
        "status": "failed",
        "timestamp": iso(at),
        "data": { "failureReason": reason.unwrap_or("Internal processing error") },
    })
}

/// Where the simulator serves a clip.
pub fn file_url(base: &str, request_id: &str, short_id: &str) -> String {
    format!("{base}/files/{request_id}/{short_id}.mp4")
}

/// ISO 8601 with milliseconds and `Z`, as the docs' examples.
pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn ts(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or_default()
}

/// Generates the clips of a request deterministically from its seed.
pub fn generate_shorts(
    seed: u64,
    start: f64,
    end: f64,
    preferred: &str,
    cfg: &SimConfig,
    clip_error: bool,
) -> Vec<SimShort> {
    let mut rng = StdRng::seed_from_u64(seed);
    let max_len: f64 = match preferred {
        "under30sec" => 30.0,
        "under90sec" => 90.0,
        "under3min" => 180.0,
        "under5min" => 300.0,
        "under10min" => 600.0,
        _ => 60.0,
    };
    let window = (end - start).max(1.0);
    let lo = cfg.min_shorts.min(cfg.max_shorts);
    let hi = cfg.max_shorts.max(lo);
    let n = rng.random_range(lo..=hi);
    let titles = [
        "The Most Viral Moment",
        "Key Insight Everyone Missed",
        "The Surprising Twist",
        "Why This Changes Everything",
        "The Hook That Works",
        "A Story Worth Sharing",
        "The Unexpected Answer",
        "Three Words That Matter",
    ];
    (0..n)
        .map(|i| {
            let max_d = max_len.min(window);
            let min_d = (max_d / 3.0).max(1.0).min(max_d);
            let d = (rng.random_range(min_d..=max_d) * 10.0).floor() / 10.0;
            let latest_start = (end - d).max(start);
            let s = ((rng.random_range(start..=latest_start)) * 10.0).floor() / 10.0;
            let e = (s + d).min(end);
            let id_bytes: [u8; 16] = rng.random();
            let id = uuid::Builder::from_random_bytes(id_bytes)
                .into_uuid()
                .to_string();
            let score = (rng.random_range(0.0..=100.0_f64) * 10.0).round() / 10.0;
            SimShort {
                id,
                title: titles[(i as usize) % titles.len()].to_owned(),
                description: format!("Clip {} of the source. #shorts #viral", i + 1),
                reason: "High engagement potential due to emotional hook".to_owned(),
                viral_score: score,
                start: s,
                end: e,
                sentence_indexes: vec![i * 2, i * 2 + 1],
                error: clip_error && i == 0,
            }
        })
        .collect()
}
