use std::{sync::Arc, time::Duration};

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::{Sim, model::WebhookJob};

/// `t={t},s=hex(HMAC-SHA256(secret, "{t}.{body}"))`.
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},s={}", hex::encode(mac.finalize().into_bytes()))
}

/// Applies delivery faults in arrival order, then delivers each event at least once.
pub(crate) async fn run(sim: Arc<Sim>, mut rx: UnboundedReceiver<WebhookJob>) {
    while let Some(job) = rx.recv().await {
        let (drop, dup, delay_ms, reorder, held) = {
            let mut w = sim.world();
            let f = &mut w.webhook_faults;
            let drop = take(&mut f.drop);
            let dup = !drop && take(&mut f.duplicate);
            let delay_ms = (!drop && take(&mut f.delay)).then_some(f.delay_ms);
            let reorder = !drop && take(&mut f.reorder);
            let held = w.held_webhook.take();
            if let Some(r) = w.webhook_log.get_mut(job.seq) {
                r.dropped = drop;
                r.duplicated = dup;
            }
            (drop, dup, delay_ms, reorder, held)
        };
        if drop {
            if let Some(h) = held {
                spawn_delivery(sim.clone(), h, 0);
            }
            continue;
        }
        if reorder && held.is_none() {
            sim.world().held_webhook = Some(job);
            continue;
        }
        let delay = delay_ms.unwrap_or(0);
        spawn_delivery(sim.clone(), job.clone(), delay);
        if dup {
            spawn_delivery(sim.clone(), job, delay + 50);
        }
        if let Some(h) = held {
            spawn_delivery(sim.clone(), h, delay + 100);
        }
    }
}

fn take(n: &mut u32) -> bool {
    if *n > 0 {
        *n -= 1;
        true
    } else {
        false
    }
}

fn spawn_delivery(sim: Arc<Sim>, job: WebhookJob, delay_ms: u64) {
    tokio::spawn(async move {
        if delay_ms > 0 {
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        }
        deliver(sim, job).await;
    });
}

async fn deliver(sim: Arc<Sim>, job: WebhookJob) {
    let (url, client_key, secret, cfg) = {
        let w = sim.world();
        (
            w.cfg.webhook_url.clone(),
            w.cfg.client_key.clone(),
            w.cfg.client_secret.clone(),
            w.cfg.webhooks.clone(),
        )
    };
    let Some(url) = url else { return };
    let body = json!({
        "client_key": client_key,
        "event": job.event,
        "create_time": job.create_time,
        "user_openid": job.open_id,
        "content": job.content,
    })
    .to_string();
    let first_t = sim.clock.now_secs();
    for attempt in 0..cfg.max_attempts.max(1) {
        let t = if cfg.resign_on_retry {
            sim.clock.now_secs()
        } else {
            first_t
        };
        let sent = sim
            .http
            .post(&url)
            .header("content-type", "application/json")
            .header("TikTok-Signature", signature(&secret, t, &body))
            .body(body.clone())
            .send()
            .await;
        let status = sent.as_ref().map(|r| r.status().as_u16()).unwrap_or(0);
        {
            let mut w = sim.world();
            if let Some(r) = w.webhook_log.get_mut(job.seq) {
                r.attempts += 1;
                r.statuses.push(status);
                if status == 200 {
                    r.delivered += 1;
                }
            }
        }
        if status == 200 {
            return;
        }
        let backoff = cfg.retry_base_ms.saturating_mul(1 << attempt.min(16));
        tokio::time::sleep(Duration::from_millis(backoff)).await;
    }
}
