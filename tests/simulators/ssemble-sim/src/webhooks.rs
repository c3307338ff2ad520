//! Webhook delivery on the simulator clock: first attempt when the request turns terminal,
//! retries after the configured delays, each with a timeout, abandoned after the last.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::watch;

use crate::Shared;
use crate::state::{DeliveryRecord, PendingDelivery};

/// Background loop: settles terminal requests and fires due deliveries.
pub(crate) async fn run(sh: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let now = sh.clock.now();
        let due: Vec<PendingDelivery> = {
            let mut st = sh.lock();
            st.settle(&sh.cfg, now);
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut st.pending)
                .into_iter()
                .partition(|d| d.due <= now);
            st.pending = later;
            due
        };
        for d in due {
            tokio::spawn(attempt(sh.clone(), d));
        }
    }
}

/// Sends held deliveries now, one after another (reversed to reorder them).
pub(crate) fn release(sh: &Arc<Shared>, reverse: bool) -> usize {
    let mut held = std::mem::take(&mut sh.lock().held);
    if reverse {
        held.reverse();
    }
    let n = held.len();
    let sh = sh.clone();
    tokio::spawn(async move {
        for d in held {
            attempt(sh.clone(), d).await;
        }
    });
    n
}

/// `t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>` — a simulator extension.
pub fn signature(secret: &str, unix: i64, body: &str) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(format!("{unix}.{body}").as_bytes());
    format!("t={unix},v1={}", hex::encode(mac.finalize().into_bytes()))
}

async fn attempt(sh: Arc<Shared>, d: PendingDelivery) {
    let at = sh.clock.now();
    let mut req = sh
        .http
        .post(&d.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .timeout(sh.clock.real(sh.cfg.webhook_timeout_secs))
        .body(d.body.clone());
    if let Some(secret) = &sh.cfg.webhook_secret {
        req = req.header(
            "X-Ssemble-Signature",
            signature(secret, at.timestamp(), &d.body),
        );
    }
    let (status, outcome) = match req.send().await {
        Ok(r) if r.status().is_success() => (Some(r.status().as_u16()), "delivered"),
        Ok(r) => (Some(r.status().as_u16()), "failed"),
        Err(e) if e.is_timeout() => (None, "timeout"),
        Err(_) => (None, "failed"),
    };
    tracing::debug!(request_id = %d.request_id, attempt = d.attempt, outcome, "sim webhook attempt");
    let body: serde_json::Value = serde_json::from_str(&d.body).unwrap_or_default();
    let mut st = sh.lock();
    st.deliveries.push(DeliveryRecord {
        request_id: d.request_id.clone(),
        event: d.event.clone(),
        attempt: d.attempt,
        at,
        status,
        outcome: outcome.to_owned(),
        duplicate: d.duplicate,
        body: body.clone(),
    });
    if outcome == "delivered" || d.duplicate {
        return;
    }
    let delays = &sh.cfg.webhook_retry_delays_secs;
    match usize::try_from(d.attempt - 1)
        .ok()
        .and_then(|i| delays.get(i))
    {
        Some(delay) => {
            let due = sh.clock.now() + chrono::Duration::milliseconds((delay * 1000.0) as i64);
            st.pending.push(PendingDelivery {
                attempt: d.attempt + 1,
                due,
                ..d
            });
        }
        None => st.deliveries.push(DeliveryRecord {
            request_id: d.request_id,
            event: d.event,
            attempt: d.attempt,
            at: sh.clock.now(),
            status: None,
            outcome: "abandoned".to_owned(),
            duplicate: false,
            body,
        }),
    }
}
