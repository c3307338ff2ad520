use std::time::Duration;

use secrecy::SecretString;

/// Everything that differs between TikTok, the simulator and the two readings of the docs.
#[derive(Debug, Clone)]
pub struct TikTokConfig {
    /// `https://open.tiktokapis.com` in production; the simulator's base URL in tests.
    pub api_base_url: String,
    /// `https://www.tiktok.com` in production (the authorize page lives at `/v2/auth/authorize/`).
    pub auth_base_url: String,
    pub client_key: String,
    pub client_secret: SecretString,
    pub timeouts: Timeouts,
    pub chunk_policy: ChunkPolicy,
    pub upload_retry: UploadRetryPolicy,
    /// Tolerated age of a webhook's `t=`; TikTok gives none, 300 s is the common choice.
    pub webhook_replay_window: Duration,
}

impl TikTokConfig {
    /// Production base URLs and the documented defaults.
    /// The OAuth redirect is not here: it is the API's own callback URL as each request
    /// reached it, passed to [`crate::TikTokClient::authorize_url`] and `exchange_code`.
    pub fn new(client_key: impl Into<String>, client_secret: SecretString) -> Self {
        Self {
            api_base_url: "https://open.tiktokapis.com".into(),
            auth_base_url: "https://www.tiktok.com".into(),
            client_key: client_key.into(),
            client_secret,
            timeouts: Timeouts::default(),
            chunk_policy: ChunkPolicy::default(),
            upload_retry: UploadRetryPolicy::default(),
            webhook_replay_window: Duration::from_secs(300),
        }
    }

    /// Same as [`TikTokConfig::new`] with both base URLs pointed at one host (a simulator).
    pub fn with_base_url(mut self, base: impl Into<String>) -> Self {
        let base = base.into();
        self.api_base_url.clone_from(&base);
        self.auth_base_url = base;
        self
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// Whole-request timeout for JSON calls; past it an init's outcome is unknown.
    pub request: Duration,
    /// Per chunk PUT; a 64 MB chunk at a slow 10 Mbit/s needs ~55 s.
    pub upload_chunk: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            request: Duration::from_secs(30),
            upload_chunk: Duration::from_secs(300),
        }
    }
}

/// Chunk thresholds. "MB" is ambiguous in the docs (decimal in one example, binary in another), so the
/// defaults are the intersection that is valid under both readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkPolicy {
    /// Smallest non-final chunk (default 5 MiB = 5,242,880).
    pub min_chunk: u64,
    /// Largest non-final chunk (default 64,000,000).
    pub max_chunk: u64,
    /// Largest final chunk, which absorbs the trailing bytes (default 128,000,000).
    pub max_final_chunk: u64,
    /// Chunk size used for multi-chunk uploads, clamped to `[min_chunk, max_chunk]`.
    pub preferred_chunk: u64,
    /// Videos up to this size go as one chunk with chunk_size = video_size (default 64,000,000).
    pub single_chunk_threshold: u64,
    /// At most this many chunks (documented: 1000).
    pub max_chunks: u64,
}

impl Default for ChunkPolicy {
    fn default() -> Self {
        Self {
            min_chunk: 5 * 1024 * 1024,
            max_chunk: 64_000_000,
            max_final_chunk: 128_000_000,
            preferred_chunk: 64_000_000,
            single_chunk_threshold: 64_000_000,
            max_chunks: 1000,
        }
    }
}

/// Bounded retry of a chunk PUT on 5xx or transport failure; safe because the server's 416 reports progress.
#[derive(Debug, Clone, Copy)]
pub struct UploadRetryPolicy {
    pub max_attempts_per_chunk: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// 416 answers in a row without progress before giving up.
    pub max_resumes_without_progress: u32,
}

impl Default for UploadRetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts_per_chunk: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            max_resumes_without_progress: 3,
        }
    }
}
