//! The naive baseline the seed warns against: one global FIFO queue of every account's jobs, a
//! pool of workers that send each job's init straight to TikTok with no per-account budget, and
//! a 429 answered by putting the job back at the tail after a short fixed back-off. It talks to
//! the same TikTok simulator (through the same recording proxy) as Reelay in the same run, with
//! its own accounts, so the two never share a rate window.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow};
use bytes::Bytes;
use serde_json::{Value, json};

/// One naive account: its `open_id` and access token (minted at the simulator).
#[derive(Debug, Clone)]
pub struct NaiveAccount {
    pub open_id: String,
    token: String,
}

#[derive(Debug, Clone)]
pub struct NaiveConfig {
    pub workers: usize,
    pub retry_after_429: Duration,
    /// Real time after which the baseline stops taking jobs.
    pub run_for: Duration,
}

#[derive(Debug, Default, Clone)]
pub struct NaiveOutcome {
    pub sent: u64,
    pub accepted: u64,
    pub rate_limited: u64,
    pub other_errors: u64,
}

/// Mints tokens for `n` fresh accounts and tells the proxy who owns them.
pub fn accounts(
    sim: &tiktok_sim::SimHandle,
    proxy: &crate::proxy::Proxy,
    tag: &str,
    n: usize,
) -> anyhow::Result<Vec<NaiveAccount>> {
    (0..n)
        .map(|i| {
            let open_id = format!("-naive-{tag}-{i}");
            let minted = sim.mint_tokens(&open_id, &["user.info.basic", "video.publish"]);
            let token = minted
                .get("access_token")
                .and_then(Value::as_str)
                .ok_or_else(|| anyhow!("simulator minted no token: {minted}"))?
                .to_owned();
            proxy.register_token(&token, &open_id);
            Ok(NaiveAccount { open_id, token })
        })
        .collect()
}

/// Runs `jobs_per_account` direct posts per account through one global queue, job-major order
/// (every account's first job, then every account's second, …).
pub async fn run(
    api_base: &str,
    accounts: &[NaiveAccount],
    jobs_per_account: usize,
    clip: Bytes,
    tag: &str,
    cfg: &NaiveConfig,
) -> anyhow::Result<NaiveOutcome> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(cfg.workers)
        .build()?;
    let mut queue = VecDeque::new();
    for j in 0..jobs_per_account {
        for a in accounts {
            queue.push_back((a.clone(), format!("naive {tag} {} #{j}", a.open_id)));
        }
    }
    let queue = Arc::new(Mutex::new(queue));
    let outcome = Arc::new(Mutex::new(NaiveOutcome::default()));
    let stop_at = tokio::time::Instant::now() + cfg.run_for;
    let mut workers = Vec::new();
    for _ in 0..cfg.workers.max(1) {
        let (queue, outcome, http, clip) =
            (queue.clone(), outcome.clone(), http.clone(), clip.clone());
        let url = format!("{api_base}/v2/post/publish/video/init/");
        let backoff = cfg.retry_after_429;
        workers.push(tokio::spawn(async move {
            while tokio::time::Instant::now() < stop_at {
                let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                let Some((account, title)) = next else { break };
                let result = post_once(&http, &url, &account, &title, &clip).await;
                let limited = matches!(result, Ok(Sent::RateLimited));
                {
                    let mut o = outcome.lock().unwrap_or_else(|e| e.into_inner());
                    o.sent += 1;
                    match result {
                        Ok(Sent::Accepted) => o.accepted += 1,
                        Ok(Sent::RateLimited) => o.rate_limited += 1,
                        Ok(Sent::Refused(code)) => {
                            o.other_errors += 1;
                            tracing::debug!(%code, "naive: init refused; job dropped");
                        }
                        Err(e) => {
                            o.other_errors += 1;
                            tracing::warn!(error = %e, "naive: init failed; job dropped");
                        }
                    }
                }
                if limited {
                    // Retry on 429: back to the tail of the one global queue.
                    queue
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_back((account, title));
                    tokio::time::sleep(backoff).await;
                }
            }
        }));
    }
    for w in workers {
        w.await.context("naive worker panicked")?;
    }
    let o = outcome.lock().unwrap_or_else(|e| e.into_inner()).clone();
    Ok(o)
}

enum Sent {
    Accepted,
    RateLimited,
    Refused(String),
}

/// One init and, when accepted, the single-chunk upload of the clip.
async fn post_once(
    http: &reqwest::Client,
    url: &str,
    account: &NaiveAccount,
    title: &str,
    clip: &Bytes,
) -> anyhow::Result<Sent> {
    let size = clip.len();
    let body = json!({
        "post_info": {
            "title": title,
            "privacy_level": "PUBLIC_TO_EVERYONE",
            "disable_duet": false, "disable_stitch": false, "disable_comment": false,
            "brand_content_toggle": false, "brand_organic_toggle": false,
        },
        "source_info": {
            "source": "FILE_UPLOAD", "video_size": size, "chunk_size": size, "total_chunk_count": 1,
        },
    });
    let resp = http
        .post(url)
        .bearer_auth(&account.token)
        .header("content-type", "application/json; charset=UTF-8")
        .body(body.to_string())
        .send()
        .await?;
    let status = resp.status().as_u16();
    let answer: Value = resp.json().await.unwrap_or(Value::Null);
    let code = answer
        .pointer("/error/code")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if status == 429 {
        return Ok(Sent::RateLimited);
    }
    if status != 200 || code != "ok" {
        return Ok(Sent::Refused(format!("{status} {code}")));
    }
    let upload_url = answer
        .pointer("/data/upload_url")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("accepted init without upload_url"))?;
    http.put(upload_url)
        .header("content-type", "video/mp4")
        .header(
            "content-range",
            format!("bytes 0-{}/{size}", size.saturating_sub(1)),
        )
        .body(clip.clone())
        .send()
        .await?
        .error_for_status()?;
    Ok(Sent::Accepted)
}
