#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use futures::{FutureExt, future::BoxFuture};
use reelay_tiktok::{
    ByteStream, ChunkPolicy, SourceError, TikTokClient, TikTokConfig, UploadSource,
};
use secrecy::SecretString;
use sha2::Digest;
use tiktok_sim::{ChunkRules, SimConfig, SimHandle, TikTokSim};

pub const MIB: u64 = 1024 * 1024;

/// Small thresholds so uploads stay fast in debug builds; the same rules on both sides.
pub fn small_rules() -> ChunkRules {
    ChunkRules {
        min_chunk: MIB,
        max_chunk: 2 * MIB,
        max_final_chunk: 4 * MIB,
        max_chunks: 1000,
        whole_below: MIB,
        multi_above: 2 * MIB,
        strict_single_chunk: true,
        reject_multi_chunk: false,
    }
}

pub fn small_policy() -> ChunkPolicy {
    ChunkPolicy {
        min_chunk: MIB,
        max_chunk: 2 * MIB,
        max_final_chunk: 4 * MIB,
        preferred_chunk: MIB,
        single_chunk_threshold: 2 * MIB,
        max_chunks: 1000,
    }
}

pub fn sim_config() -> SimConfig {
    SimConfig {
        start_unix: Some(1_780_000_000),
        chunk_rules: small_rules(),
        ..SimConfig::default()
    }
}

pub async fn start(cfg: SimConfig) -> SimHandle {
    TikTokSim::start(cfg).await.unwrap()
}

/// The app's OAuth callback URL in these tests.
pub const REDIRECT: &str = "https://app.example.com/oauth/callback";

pub fn client(sim: &SimHandle, tweak: impl FnOnce(&mut TikTokConfig)) -> TikTokClient {
    let cfg = sim.config();
    let mut c = TikTokConfig::new(cfg.client_key, SecretString::from(cfg.client_secret))
        .with_base_url(&sim.base_url);
    c.timeouts.request = Duration::from_secs(5);
    c.timeouts.upload_chunk = Duration::from_secs(10);
    c.chunk_policy = small_policy();
    c.upload_retry.initial_backoff = Duration::from_millis(5);
    c.upload_retry.max_backoff = Duration::from_millis(20);
    tweak(&mut c);
    TikTokClient::new(c).unwrap()
}

/// (access, refresh) for a fresh creator with the given scopes.
pub fn tokens(sim: &SimHandle, open_id: &str, scopes: &[&str]) -> (SecretString, SecretString) {
    let v = sim.mint_tokens(open_id, scopes);
    (
        SecretString::from(v["access_token"].as_str().unwrap().to_owned()),
        SecretString::from(v["refresh_token"].as_str().unwrap().to_owned()),
    )
}

pub fn publish_token(sim: &SimHandle, open_id: &str) -> SecretString {
    tokens(
        sim,
        open_id,
        &["video.publish", "video.upload", "user.info.basic"],
    )
    .0
}

/// Deterministic pseudo-random bytes.
pub fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

pub fn sha256_hex(b: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(b))
}

/// An in-memory source that yields 64 KiB pieces; `truncate_to` makes it end early.
#[derive(Debug, Clone)]
pub struct MemSource {
    pub data: Arc<Vec<u8>>,
    pub truncate_to: Option<usize>,
}

impl MemSource {
    pub fn new(data: Vec<u8>) -> Self {
        Self {
            data: Arc::new(data),
            truncate_to: None,
        }
    }
}

impl UploadSource for MemSource {
    fn len(&self) -> u64 {
        self.data.len() as u64
    }

    fn open(&self, offset: u64) -> BoxFuture<'_, Result<ByteStream, SourceError>> {
        let end = self.truncate_to.unwrap_or(self.data.len());
        let data = self.data.clone();
        async move {
            let pieces: Vec<Result<Bytes, SourceError>> = (offset as usize..end)
                .step_by(64 * 1024)
                .map(|s| Ok(Bytes::copy_from_slice(&data[s..(s + 64 * 1024).min(end)])))
                .collect();
            Ok(Box::pin(futures::stream::iter(pieces)) as ByteStream)
        }
        .boxed()
    }
}
