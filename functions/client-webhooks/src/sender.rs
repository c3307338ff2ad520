//! The HTTP side of a delivery: one signed POST to the client's endpoint, never to an address
//! Reelay must not call. The destination is checked when the request is made, after DNS: a name
//! that resolved to a public address at registration may point at a private or metadata address
//! now (DNS rebinding). Redirects are answers, never followed, so a 302 cannot lead there either.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reelay_domain::ports::{PostResult, WebhookSender};
use reelay_domain::webhooks::{SignedHeaders, check_url, forbidden_address};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use thiserror::Error;

/// Every figure is configuration (`WEBHOOK_TIMEOUT_MS`, `WEBHOOK_CONNECT_TIMEOUT_MS`,
/// `WEBHOOK_ALLOW_LOOPBACK`).
#[derive(Debug, Clone)]
pub struct SenderSettings {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// The local-development switch: loopback endpoints (and plain http there) are called.
    pub allow_loopback: bool,
}

impl Default for SenderSettings {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            allow_loopback: false,
        }
    }
}

#[derive(Debug, Error)]
#[error("{name} resolves only to {kind} address")]
struct Blocked {
    name: String,
    kind: &'static str,
}

/// Resolves with the system resolver and drops every address Reelay never calls; a name left
/// with none fails as [`Blocked`].
#[derive(Debug, Clone)]
struct GuardedResolver {
    allow_loopback: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut kind = "no";
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|a| match forbidden_address(a.ip(), allow_loopback) {
                    Some(k) => {
                        kind = k;
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(Blocked { name: host, kind }) as _);
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// The reqwest client every delivery of a cold start shares.
#[derive(Debug, Clone)]
pub struct HttpSender {
    client: reqwest::Client,
    allow_loopback: bool,
}

#[derive(Debug, Error)]
#[error("webhook HTTP client: {0}")]
pub struct SenderError(#[from] reqwest::Error);

impl HttpSender {
    pub fn new(settings: &SenderSettings) -> Result<Self, SenderError> {
        let client = reelay_http::client_builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(GuardedResolver {
                allow_loopback: settings.allow_loopback,
            }))
            .user_agent("Reelay-Webhooks/1")
            .build()?;
        Ok(Self {
            client,
            allow_loopback: settings.allow_loopback,
        })
    }
}

/// Whether `err` (or a cause of it) is the resolver's refusal.
fn blocked_cause(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(b) = e.downcast_ref::<Blocked>() {
            return Some(b.to_string());
        }
        current = e.source();
    }
    None
}

impl WebhookSender for HttpSender {
    async fn post(&self, url: &str, headers: &SignedHeaders, body: Vec<u8>) -> PostResult {
        // An address written into the URL never reaches the resolver: checked here.
        if let Err(e) = check_url(url, self.allow_loopback) {
            return PostResult::Blocked(format!("url {e}"));
        }
        let sent = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &headers.id)
            .header("webhook-timestamp", headers.timestamp.to_string())
            .header("webhook-signature", &headers.signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(answer) => PostResult::Answered(answer.status().as_u16()),
            Err(e) => match blocked_cause(&e) {
                Some(why) => PostResult::Blocked(why),
                None if e.is_timeout() => PostResult::Failed("timeout".into()),
                None if e.is_connect() => PostResult::Failed("connection failed".into()),
                None => PostResult::Failed(format!("request failed: {e}")),
            },
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// A name, not a literal, that resolves to loopback: refused after DNS, by the resolver
    /// (literals never reach it and are checked by `check_url`).
    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_unless_the_local_switch_is_on() {
        let strict = GuardedResolver {
            allow_loopback: false,
        };
        let err = match strict.resolve(Name::from_str("localhost").unwrap()).await {
            Err(e) => e,
            Ok(_) => panic!("localhost resolved through the guard"),
        };
        assert_eq!(
            blocked_cause(err.as_ref()).as_deref(),
            Some("localhost resolves only to a loopback address")
        );
        let local = GuardedResolver {
            allow_loopback: true,
        };
        let addrs: Vec<SocketAddr> = match local.resolve(Name::from_str("localhost").unwrap()).await
        {
            Ok(a) => a.collect(),
            Err(e) => panic!("{e}"),
        };
        assert!(addrs.iter().all(|a| a.ip().is_loopback()) && !addrs.is_empty());
    }
}
