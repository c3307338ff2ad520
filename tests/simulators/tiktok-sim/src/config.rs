use serde::{Deserialize, Serialize};

/// Everything the contract leaves open, plus the documented defaults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SimConfig {
    /// Seeds every generated id and token.
    pub seed: u64,
    /// Simulated seconds per real second (60 → a one-minute window passes in one second).
    pub time_scale: f64,
    /// Simulated epoch at start; `None` = the real wall clock.
    pub start_unix: Option<i64>,
    pub client_key: String,
    pub client_secret: String,
    /// Where webhooks are delivered; none when unset.
    pub webhook_url: Option<String>,
    pub oauth: OAuthConfig,
    pub limits: RateLimits,
    pub chunk_rules: ChunkRules,
    pub app: AppConfig,
    pub delays: Delays,
    pub webhooks: WebhookConfig,
    /// UNVERIFIED: the docs spell it `invalid_param`, real traffic `invalid_params`.
    pub invalid_param_code: String,
    /// Require `brand_content_toggle` (the table says required; the examples omit it).
    pub strict_brand_toggle: bool,
    /// Largest video accepted (4 GB per the archived docs; 10 GB claimed elsewhere).
    pub max_video_size: u64,
    /// Validity of an upload_url, simulated seconds.
    pub upload_url_ttl_secs: u64,
    /// Progress header `bytes 0-{n}/{total}`: `false` → n = bytes received (as the docs write it),
    /// `true` → n = last received byte index (HTTP semantics).
    pub progress_header_inclusive: bool,
    /// Authorize creates an unknown user on the fly.
    pub auto_create_users: bool,
    pub default_daily_post_cap: u32,
    pub pending_share_cap: u32,
    /// Put into every issued access, refresh and upload token, never into ids (a canary a log
    /// scan looks for).
    pub token_marker: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            time_scale: 1.0,
            start_unix: None,
            client_key: "sim_client_key".into(),
            client_secret: "sim_client_secret".into(),
            webhook_url: None,
            oauth: OAuthConfig::default(),
            limits: RateLimits::default(),
            chunk_rules: ChunkRules::default(),
            app: AppConfig::default(),
            delays: Delays::default(),
            webhooks: WebhookConfig::default(),
            invalid_param_code: "invalid_params".into(),
            strict_brand_toggle: false,
            max_video_size: 4 * 1024 * 1024 * 1024,
            upload_url_ttl_secs: 3600,
            progress_header_inclusive: false,
            auto_create_users: true,
            default_daily_post_cap: 15,
            pending_share_cap: 5,
            token_marker: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct OAuthConfig {
    /// 2 h per the newer docs (24 h legacy).
    pub access_token_ttl_secs: u64,
    /// 180 d per the newer docs (365 d legacy), counted from first issuance.
    pub refresh_token_ttl_secs: u64,
    /// A refresh returns a new refresh token and kills the old one at once.
    pub rotate_refresh_tokens: bool,
    /// UNVERIFIED: OAuth errors' HTTP status is undocumented; third-party code sees 200.
    pub error_http_status: u16,
    pub code_ttl_secs: u64,
    /// Non-TikTok: give `expires_in` and `refresh_expires_in` in real seconds (÷ `time_scale`),
    /// so a client on the real clock (Reelay in a time-scaled local run) knows when its tokens
    /// expire, as it does at TikTok. Off: simulated seconds, and such a client learns of an
    /// expiry from a refused call.
    pub lifetimes_in_real_seconds: bool,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 2 * 3600,
            refresh_token_ttl_secs: 180 * 86_400,
            rotate_refresh_tokens: true,
            error_http_status: 400,
            code_ttl_secs: 600,
            lifetimes_in_real_seconds: false,
        }
    }
}

/// Per access token, per sliding window.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RateLimits {
    pub creator_info_per_window: u32,
    /// Shared by video/init and inbox/video/init.
    pub init_per_window: u32,
    pub status_per_window: u32,
    pub window_secs: u64,
    /// Non-TikTok: add `Retry-After` to 429s (off by default; TikTok documents no rate headers).
    pub send_retry_after: bool,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            creator_info_per_window: 20,
            init_per_window: 6,
            status_per_window: 30,
            window_secs: 60,
            send_retry_after: false,
        }
    }
}

/// Chunk rules; "MB" is ambiguous in the docs, so thresholds are configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ChunkRules {
    pub min_chunk: u64,
    pub max_chunk: u64,
    pub max_final_chunk: u64,
    pub max_chunks: u64,
    /// Below this a video must be one whole chunk.
    pub whole_below: u64,
    /// Above this a video must be multi-chunk.
    pub multi_above: u64,
    /// Single-chunk uploads need chunk_size == video_size at any size.
    pub strict_single_chunk: bool,
    /// Reproduces the 2026 incident where every multi-chunk init got `invalid_params`.
    pub reject_multi_chunk: bool,
}

impl ChunkRules {
    /// Binary reading: 5 MiB / 64 MiB / 128 MiB.
    pub fn binary() -> Self {
        Self {
            min_chunk: 5 * 1024 * 1024,
            max_chunk: 64 * 1024 * 1024,
            max_final_chunk: 128 * 1024 * 1024,
            max_chunks: 1000,
            whole_below: 5 * 1024 * 1024,
            multi_above: 64 * 1024 * 1024,
            strict_single_chunk: false,
            reject_multi_chunk: false,
        }
    }

    /// Strict: only what is valid under both readings (5 MiB min, 64,000,000 max, 128,000,000 final).
    pub fn strict() -> Self {
        Self {
            min_chunk: 5 * 1024 * 1024,
            max_chunk: 64_000_000,
            max_final_chunk: 128_000_000,
            max_chunks: 1000,
            whole_below: 5 * 1024 * 1024,
            multi_above: 64_000_000,
            strict_single_chunk: true,
            reject_multi_chunk: false,
        }
    }
}

impl Default for ChunkRules {
    fn default() -> Self {
        Self::binary()
    }
}

/// Which check the unaudited-app rule applies (UNVERIFIED which one TikTok uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnauditedRule {
    /// privacy_level must be SELF_ONLY.
    RequestedPrivacy,
    /// The account must be private.
    AccountPrivacy,
    /// Either violation triggers the error (the spec's suggestion).
    Either,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AppConfig {
    pub audited: bool,
    pub unaudited_rule: UnauditedRule,
    /// Distinct posting users per 24 h; `None` = 5 when unaudited, unlimited when audited.
    pub active_user_cap: Option<u32>,
    /// Domain properties: cover the domain and its subdomains.
    pub verified_domains: Vec<String>,
    /// URL-prefix properties: `https://host/path/`.
    pub verified_prefixes: Vec<String>,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            audited: true,
            unaudited_rule: UnauditedRule::Either,
            active_user_cap: None,
            verified_domains: Vec::new(),
            verified_prefixes: Vec::new(),
        }
    }
}

/// Status-machine delays, simulated seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Delays {
    pub download_secs: u64,
    pub processing_secs: u64,
    /// `None` = public post ids never appear.
    pub moderation_secs: Option<u64>,
    /// `None` = an inbox share waits for `/_sim/publishes/{id}/user-post`.
    pub inbox_user_post_secs: Option<u64>,
}

impl Default for Delays {
    fn default() -> Self {
        Self {
            download_secs: 5,
            processing_secs: 10,
            moderation_secs: Some(30),
            inbox_user_post_secs: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct WebhookConfig {
    /// Compressed exponential backoff (TikTok retries for 72 h): real milliseconds.
    pub retry_base_ms: u64,
    pub max_attempts: u32,
    /// Re-sign each attempt with a fresh `t` (UNVERIFIED).
    pub resign_on_retry: bool,
    pub request_timeout_ms: u64,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            retry_base_ms: 100,
            max_attempts: 8,
            resign_on_retry: true,
            request_timeout_ms: 2000,
        }
    }
}
