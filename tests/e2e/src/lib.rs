//! The end-to-end harness: one whole local stack per test (fresh simulators, resources under a
//! random suffix, all six functions' real handlers), driven through the HTTP API like a client,
//! and judged by what the simulators received. Needs `AWS_ENDPOINT_URL` (`make test` sets it);
//! without it every test fails, saying how to start the endpoint.

use std::future::Future;
use std::time::Duration;

use reelay_domain::ports::{AccountStore, StoreError, TokenVault};
use reelay_domain::{AccountId, TenantId};
use reelay_local::client::{Answer, ApiClient, ClientError, seed_tenant};
use reelay_local::stack::random_suffix;
use reelay_local::{Stack, StackError, StackOptions};
use secrecy::SecretString;
use serde_json::{Value, json};
use thiserror::Error;

/// Simulated seconds per real second in every test: a render (60 virtual s) takes one second.
pub const TIME_SCALE: f64 = 60.0;

/// Printed with its message by a failing test (a test's `Err` is shown with `Debug`).
#[derive(Error)]
pub enum HarnessError {
    #[error(transparent)]
    Stack(#[from] StackError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("secrets: {0}")]
    Secret(#[from] reelay_domain::ports::SecretError),
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    #[error("simulator configuration: {0}")]
    SimConfig(#[from] serde_json::Error),
    #[error("{0}")]
    Unexpected(String),
}

impl std::fmt::Debug for HarnessError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

/// A running stack with one tenant.
#[derive(Debug)]
pub struct Harness {
    pub stack: Stack,
    pub client: ApiClient,
    pub tenant: TenantId,
    pub key: SecretString,
    /// Unique per test: titles and sources never collide.
    pub tag: String,
}

impl Harness {
    pub async fn start() -> Result<Self, HarnessError> {
        Self::start_with(|_| {}).await
    }

    /// Starts with the local defaults, adjusted by `configure` (simulator settings, ...).
    pub async fn start_with(
        configure: impl FnOnce(&mut StackOptions),
    ) -> Result<Self, HarnessError> {
        let template = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");
        let mut options = StackOptions::local(template, TIME_SCALE);
        options.suffix = Some(random_suffix("e2e"));
        configure(&mut options);
        let stack = Stack::start(options).await?;
        let tenant =
            TenantId::parse("tenant_e2e").map_err(|e| HarnessError::Unexpected(e.reason.into()))?;
        let key = seed_tenant(&stack.store, tenant.as_str()).await?;
        let client = ApiClient::new(&stack.api_base_url, key.clone())?;
        Ok(Self {
            stack,
            client,
            tenant,
            key,
            tag: reelay_local::demo::run_tag(),
        })
    }

    /// Another tenant of the same deployment, with its own key.
    pub async fn other_tenant(&self, tenant: &str) -> Result<ApiClient, HarnessError> {
        let key = seed_tenant(&self.stack.store, tenant).await?;
        Ok(ApiClient::new(&self.stack.api_base_url, key)?)
    }

    pub fn tiktok(&self) -> Result<&tiktok_sim::SimHandle, HarnessError> {
        self.stack
            .tiktok
            .as_ref()
            .ok_or_else(|| HarnessError::Unexpected("no TikTok simulator".into()))
    }

    pub fn ssemble(&self) -> Result<&ssemble_sim::SimHandle, HarnessError> {
        self.stack
            .ssemble
            .as_ref()
            .ok_or_else(|| HarnessError::Unexpected("no Ssemble simulator".into()))
    }

    /// Connects an account through OAuth; returns the TikTok `open_id` it was bound to.
    pub async fn connect(&self, account: &str, mode: &str) -> Result<String, HarnessError> {
        self.client.connect_account(account, mode).await?;
        let id = AccountId::parse(account.to_owned())
            .map_err(|e| HarnessError::Unexpected(e.reason.into()))?;
        self.stack
            .store
            .get_account(&self.tenant, &id)
            .await?
            .and_then(|a| a.open_id)
            .ok_or_else(|| HarnessError::Unexpected(format!("{account} has no open_id")))
    }

    /// The account's current access token (to expire it at the simulator).
    pub async fn access_token(&self, account: &str) -> Result<SecretString, HarnessError> {
        let id = AccountId::parse(account.to_owned())
            .map_err(|e| HarnessError::Unexpected(e.reason.into()))?;
        let vault = self.stack.wiring.vault();
        vault
            .get_tokens(&self.tenant, &id)
            .await?
            .map(|t| t.access_token)
            .ok_or_else(|| HarnessError::Unexpected(format!("{account} has no tokens")))
    }

    /// A direct post body with a title unique to this test (`n` tells jobs apart).
    pub fn direct_job(&self, account: &str, n: u32) -> Value {
        json!({
            "tiktokAccountId": account,
            "source": {
                "url": format!("https://www.youtube.com/watch?v=e2e-{}-{n}", self.tag),
                "start": 0,
                "end": 60,
            },
            "post": {
                "mode": "direct",
                "privacyLevel": "PUBLIC_TO_EVERYONE",
                "title": self.title(n),
            },
        })
    }

    pub fn draft_job(&self, account: &str, n: u32) -> Value {
        json!({
            "tiktokAccountId": account,
            "source": {
                "url": format!("https://www.youtube.com/watch?v=e2e-{}-{n}", self.tag),
                "start": 0,
                "end": 60,
            },
            "post": { "mode": "draft" },
        })
    }

    pub fn title(&self, n: u32) -> String {
        format!("e2e {} #{n}", self.tag)
    }

    /// `POST /v1/jobs` with a fresh idempotency key; the job id of a 202.
    pub async fn submit(&self, body: &Value) -> Result<String, HarnessError> {
        let key = format!("e2e-{}", random_suffix(""));
        let answer = self.client.post("/v1/jobs", body, Some(&key)).await?;
        match (answer.status, answer.str("/jobId")) {
            (202, Some(id)) => Ok(id.to_owned()),
            _ => Err(HarnessError::Unexpected(format!(
                "create answered {}: {}",
                answer.status, answer.body
            ))),
        }
    }

    pub async fn job(&self, job_id: &str) -> Result<Answer, HarnessError> {
        Ok(self.client.get(&format!("/v1/jobs/{job_id}")).await?)
    }

    /// Polls the job until `done(state)`; the last answer.
    pub async fn wait_for(
        &self,
        job_id: &str,
        within: Duration,
        done: impl Fn(&str) -> bool,
    ) -> Result<Answer, HarnessError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let answer = self.job(job_id).await?;
            if answer.str("/state").is_some_and(&done) {
                return Ok(answer);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: format!(
                        "job {job_id} (last state {:?}, error {})",
                        answer.str("/state"),
                        answer.body.get("error").cloned().unwrap_or(Value::Null)
                    ),
                    after: within,
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The simulator's publishes on an account (ground truth).
    pub fn posts(&self, open_id: &str) -> Result<Vec<Value>, HarnessError> {
        Ok(self
            .tiktok()?
            .inspect()
            .pointer(&format!("/accounts/{open_id}/posts"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default())
    }

    /// Publishes the simulator holds with this title (direct posts carry it).
    pub fn posts_titled(&self, title: &str) -> Result<u64, HarnessError> {
        Ok(self
            .tiktok()?
            .inspect()
            .pointer("/publishes_by_title")
            .and_then(|m| m.get(title))
            .and_then(Value::as_u64)
            .unwrap_or(0))
    }

    /// The promises every test checks at the end, from the simulators: no TikTok or Ssemble
    /// limit exceeded, never more than one init in flight per account.
    pub fn assert_limits_kept(&self) -> Result<(), HarnessError> {
        let tiktok = self.tiktok()?.inspect();
        let violations = tiktok
            .get("limit_violations")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let inits = reelay_local::summary::max_inits_in_flight(&tiktok);
        let ssemble = self.ssemble()?.inspect().limit_violations.len();
        if violations > 0 || ssemble > 0 || inits > 1 {
            return Err(HarnessError::Unexpected(format!(
                "promises broken: {violations} TikTok and {ssemble} Ssemble limit violations, \
                 {inits} inits in flight on one account; TikTok: {}",
                tiktok
                    .get("limit_violations")
                    .cloned()
                    .unwrap_or(Value::Null)
            )));
        }
        Ok(())
    }

    /// Every TikTok webhook the simulator sent (signed, with its own clock) was accepted.
    pub fn assert_tiktok_webhooks_accepted(&self) -> Result<usize, HarnessError> {
        let inspect = self.tiktok()?.inspect();
        let hooks = inspect
            .get("webhooks")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let refused: Vec<&Value> = hooks
            .iter()
            .filter(|w| {
                w.get("statuses")
                    .and_then(Value::as_array)
                    .is_some_and(|s| {
                        s.iter()
                            .any(|c| !(200..300).contains(&c.as_u64().unwrap_or(0)))
                    })
            })
            .collect();
        if !refused.is_empty() {
            return Err(HarnessError::Unexpected(format!(
                "Reelay refused TikTok webhooks: {refused:?}"
            )));
        }
        Ok(hooks.len())
    }

    pub async fn shutdown(self) -> Result<(), HarnessError> {
        self.stack
            .shutdown()
            .await
            .map_err(|e| HarnessError::Unexpected(e.to_string()))
    }
}

/// Worker stack size of the tests' runtimes. A debug build keeps every nested future's
/// temporaries on the stack: the publish path (the publisher's handler over `Core::publish` over
/// the kill switch's decorators) needs about 1.7 MiB of tokio's default 2 MiB, so a slightly
/// deeper path would abort the whole test binary. Lambda runs release builds.
pub const WORKER_STACK: usize = 8 * 1024 * 1024;

/// Runs a test on a multi-thread runtime like the tests' `#[tokio::test(flavor =
/// "multi_thread", worker_threads = 2)]`, with [`WORKER_STACK`] per worker.
pub fn run<T>(test: impl Future<Output = Result<T, HarnessError>>) -> Result<T, HarnessError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(WORKER_STACK)
        .enable_all()
        .build()
        .map_err(|e| HarnessError::Unexpected(format!("test runtime: {e}")))?
        .block_on(test)
}

/// Runs a test body within `limit`: a stuck pipeline fails the test instead of hanging CI.
pub async fn within<T>(
    limit: Duration,
    body: impl Future<Output = Result<T, HarnessError>>,
) -> Result<T, HarnessError> {
    tokio::time::timeout(limit, body)
        .await
        .map_err(|_| HarnessError::Timeout {
            what: "the whole test".into(),
            after: limit,
        })?
}

/// States in which a direct post is on TikTok.
pub fn posted(state: &str) -> bool {
    matches!(state, "publish_complete" | "publicly_available")
}

/// States in which a draft is in the creator's inbox (or posted from it).
pub fn delivered(state: &str) -> bool {
    matches!(
        state,
        "submitted" | "publish_complete" | "publicly_available"
    )
}

pub fn terminal(state: &str) -> bool {
    matches!(
        state,
        "publicly_available" | "render_failed" | "publish_failed" | "cancelled"
    )
}
