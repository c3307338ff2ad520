//! Client configuration. Everything the vendor docs leave open is a field here with a default,
//! not a constant in the code.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;

/// Production base URL.
pub const DEFAULT_BASE_URL: &str = "https://aiclipping.ssemble.com/api/v1";
/// Environment variable callers read to override the base URL (e.g. to point at the simulator).
pub const BASE_URL_ENV: &str = "SSEMBLE_API_BASE_URL";

/// How the API key is presented; the docs accept both and recommend `X-API-Key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthScheme {
    /// `X-API-Key: sk_ssemble_…`.
    #[default]
    XApiKey,
    /// `Authorization: Bearer sk_ssemble_…`.
    Bearer,
}

/// Bounds for automatic retries of calls that are safe to repeat.
///
/// `create` is only retried when the server certainly did not act on it (a 429, or a
/// connection that never opened); see [`crate::SsembleClient::create_at_most_once`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts including the first; 1 disables retries.
    pub max_attempts: u32,
    /// First backoff step when the server gives no hint.
    pub base_delay: Duration,
    /// Cap for the exponential backoff.
    pub max_delay: Duration,
    /// A server-requested wait longer than this is not slept inside the client: the error is
    /// returned so the caller can reschedule (a Lambda should not idle for an hour).
    pub max_auto_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_auto_wait: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// No automatic retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// Exponential backoff with "equal jitter": a value in `[d/2, d]`, `d = base·2^(attempt-1)`
    /// capped at `max_delay`, so concurrent callers spread out but never retry instantly.
    pub fn backoff(&self, attempt: u32) -> Duration {
        use rand::Rng;
        let exp = attempt.saturating_sub(1).min(20);
        let full = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let half = full / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        let extra = if jitter_ms == 0 {
            0
        } else {
            rand::rng().random_range(0..=jitter_ms)
        };
        half + Duration::from_millis(extra)
    }
}

/// How `find_request` searches `GET /shorts` for a create whose response was lost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FindPolicy {
    /// A matching request must have been created within this long after the attempt started.
    pub window: Duration,
    /// Tolerated difference between our clock and Ssemble's `createdAt`.
    pub clock_skew: Duration,
    /// `limit` per list page (1–100).
    pub page_limit: u32,
    /// Pages to scan at most (newest first) before giving up.
    pub max_pages: u32,
    /// `GET /shorts/:id` look-ups allowed to confirm candidates whose list item lacks the range.
    pub max_confirmations: u32,
    /// Pause before searching, so a create the server is still committing becomes visible.
    pub settle_delay: Duration,
}

impl Default for FindPolicy {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(15 * 60),
            clock_skew: Duration::from_secs(120),
            page_limit: 50,
            max_pages: 3,
            max_confirmations: 5,
            settle_delay: Duration::from_secs(2),
        }
    }
}

/// Everything needed to build a [`crate::SsembleClient`].
#[derive(Clone)]
pub struct SsembleConfig {
    /// Base URL without a trailing slash, e.g. [`DEFAULT_BASE_URL`].
    pub base_url: String,
    /// The account's API key; only ever exposed into the request header.
    pub api_key: SecretString,
    /// Header used to present the key.
    pub auth_scheme: AuthScheme,
    /// TCP/TLS connect timeout. A failure here means the request was never sent.
    pub connect_timeout: Duration,
    /// Whole-request timeout. A timeout here after sending leaves the outcome unknown.
    pub request_timeout: Duration,
    /// Automatic retry bounds.
    pub retry: RetryPolicy,
    /// Search bounds for unknown-outcome creates.
    pub find: FindPolicy,
    /// `User-Agent` header.
    pub user_agent: String,
}

impl SsembleConfig {
    /// Defaults for everything but the key: production URL, 5 s connect, 30 s request.
    pub fn new(api_key: SecretString) -> Self {
        Self {
            base_url: DEFAULT_BASE_URL.to_owned(),
            api_key,
            auth_scheme: AuthScheme::default(),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            find: FindPolicy::default(),
            user_agent: concat!("reelay-ssemble/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }

    /// The base URL from [`BASE_URL_ENV`] if set and non-empty, else [`DEFAULT_BASE_URL`].
    pub fn base_url_from_env() -> String {
        std::env::var(BASE_URL_ENV)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned())
    }

    /// Same, with a base URL (e.g. the value of [`BASE_URL_ENV`] or a simulator's URL).
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = base_url.into().trim_end_matches('/').to_owned();
        self
    }
}

impl fmt::Debug for SsembleConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SsembleConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &"[REDACTED]")
            .field("auth_scheme", &self.auth_scheme)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("retry", &self.retry)
            .field("find", &self.find)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_backoff_computed_should_stay_in_equal_jitter_bounds_and_cap() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..RetryPolicy::default()
        };
        for _ in 0..200 {
            let d1 = p.backoff(1);
            assert!(d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100));
            let d3 = p.backoff(3);
            assert!(d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400));
            let d9 = p.backoff(9);
            assert!(d9 >= Duration::from_millis(500) && d9 <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn when_config_debugged_should_not_show_key() {
        let c = SsembleConfig::new(SecretString::from(
            "sk_ssemble_abcdefabcdefabcdefabcdefabcdefab",
        ))
        .with_base_url("http://127.0.0.1:9/api/v1/");
        let s = format!("{c:?}");
        assert!(!s.contains("sk_ssemble_abc"));
        assert_eq!(c.base_url, "http://127.0.0.1:9/api/v1");
    }
}
