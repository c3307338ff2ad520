//! Simulator settings. Every value the vendor docs leave open (ssemble-api.md §11) is here.

use chrono::{DateTime, Utc};

/// A request limit over a fixed, clock-aligned window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limit {
    pub max: u32,
    pub window_secs: i64,
}

/// Per-key limiter pools, keyed by the docs' limiter names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolLimits {
    /// `POST /shorts/create`.
    pub video_creation: Limit,
    /// `GET /shorts/:id/status`, `GET /shorts/:id`.
    pub status_check: Limit,
    /// `GET /shorts`.
    pub list_requests: Limit,
    /// `DELETE /shorts/:id`, `GET /templates`.
    pub standard: Limit,
}

impl Default for PoolLimits {
    fn default() -> Self {
        Self {
            video_creation: Limit {
                max: 500,
                window_secs: 60,
            },
            status_check: Limit {
                max: 500,
                window_secs: 60,
            },
            list_requests: Limit {
                max: 500,
                window_secs: 60,
            },
            standard: Limit {
                max: 1000,
                window_secs: 900,
            },
        }
    }
}

/// Account-level caps across all endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    pub per_hour: u32,
    pub per_day: u32,
}

impl Tier {
    /// The documented default (100/h, 1,000/day).
    pub const STANDARD: Tier = Tier {
        per_hour: 100,
        per_day: 1000,
    };
    /// The documented top tier (2,000/h, 20,000/day).
    pub const HIGHER: Tier = Tier {
        per_hour: 2000,
        per_day: 20000,
    };
}

/// Everything configurable about a simulator instance.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seeds ids, clip counts, scores and titles: same seed and same calls, same answers.
    pub seed: u64,
    /// Virtual seconds per real second (60 → a minute per second).
    pub time_scale: f64,
    /// Virtual time at start; `None` = the real time at start.
    pub start_time: Option<DateTime<Utc>>,
    /// Virtual seconds from create to completed.
    pub timeline_secs: f64,
    /// If set, only these keys (plus the special ones) are valid; else any well-formed key.
    pub api_keys: Option<Vec<String>>,
    /// Key answered with 403 `subscription_required`.
    pub subscription_required_key: String,
    /// Key answered with 403 `insufficient_credits`.
    pub insufficient_credits_key: String,
    /// Credits each key starts with.
    pub initial_credits: i64,
    /// Account caps.
    pub tier: Tier,
    /// Per-key pools.
    pub pools: PoolLimits,
    /// Bytes per synthetic clip file unless overridden per request.
    pub clip_bytes: u64,
    /// `viral_score` in webhooks = GET score ÷ this (1.0 to disable the documented mismatch).
    pub webhook_score_divisor: f64,
    /// When set, webhooks carry `X-Ssemble-Signature: t=…,v1=…` (a simulator extension).
    pub webhook_secret: Option<String>,
    /// Delays (virtual seconds) before the 2nd, 3rd, … attempt, after the previous one failed.
    pub webhook_retry_delays_secs: Vec<f64>,
    /// Per-attempt timeout (virtual seconds).
    pub webhook_timeout_secs: f64,
    /// Real time a "timeout after accept" fault withholds the response.
    pub withhold_real_secs: f64,
    /// Simulated source duration unless the URL says `sim_duration=N`.
    pub default_video_secs: f64,
    /// Clip count range per completed request.
    pub min_shorts: u32,
    pub max_shorts: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            time_scale: 1.0,
            start_time: None,
            timeline_secs: 60.0,
            api_keys: None,
            subscription_required_key: format!("sk_ssemble_{:0<32}", "subscriptionrequired"),
            insufficient_credits_key: format!("sk_ssemble_{:0<32}", "insufficientcredits"),
            initial_credits: 1000,
            tier: Tier::STANDARD,
            pools: PoolLimits::default(),
            clip_bytes: 6 * 1024 * 1024,
            webhook_score_divisor: 10.0,
            webhook_secret: None,
            webhook_retry_delays_secs: vec![1.0, 3.0],
            webhook_timeout_secs: 10.0,
            withhold_real_secs: 30.0,
            default_video_secs: 3600.0,
            min_shorts: 3,
            max_shorts: 8,
        }
    }
}
