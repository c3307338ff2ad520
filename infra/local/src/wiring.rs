//! Each function's concrete `Deps`, built the way its `main` builds them, but from the names the
//! provisioner created, the upstream URLs of this run and a time-scaled [`Policy`] / [`Limits`]
//! instead of process environment (no `set_var`: one process hosts every function).

use std::sync::Arc;
use std::time::Duration;

use reelay_aws::{
    DynamoAccountStore, DynamoJobStore, FailureScope, FifoBatchProcessor, SecretsManagerTokenVault,
    SqsWorkQueue, SystemClock, TokenRefreshConfig,
};
use reelay_domain::Policy;
use reelay_domain::budget::Limits;
use reelay_ssemble::{RetryPolicy, SsembleClient, SsembleConfig};
use reelay_tiktok::{TikTokClient, TikTokConfig, TikTokPort};
use secrecy::SecretString;
use thiserror::Error;

use crate::kill::{KillSwitch, Killable};

// Every port is wrapped in [`Killable`]: a pass-through unless the run has a [`KillSwitch`].
type Jobs = Killable<DynamoJobStore>;
type Accounts = Killable<DynamoAccountStore>;
type Queue = Killable<SqsWorkQueue>;
type Vault = Killable<SecretsManagerTokenVault>;
type TikTok = Killable<TikTokPort>;
type Ssemble = Killable<SsembleClient>;

/// The adapters every function shares, built once per run.
pub type IngestDeps =
    ingest_api::Deps<Jobs, Accounts, Queue, SystemClock, Vault, TikTok, TikTok, TikTok>;
pub type ReconcilerDeps =
    reconciler::Deps<Jobs, Accounts, Queue, SystemClock, Vault, TikTok, Ssemble, TikTok>;
pub type RenderSubmitterDeps = render_submitter::Deps<Jobs, Accounts, Queue, SystemClock, Ssemble>;
pub type SsembleWebhookDeps = ssemble_webhook::Deps<Jobs, Accounts, Queue, SystemClock, Ssemble>;
pub type PublisherDeps = publisher::Deps<Jobs, Accounts, Queue, SystemClock, Vault, TikTok, TikTok>;
pub type TikTokWebhookDeps = tiktok_webhook::Deps<
    Jobs,
    Accounts,
    Queue,
    SystemClock,
    Killable<tiktok_webhook::DynamoOpenIdDirectory>,
>;

#[derive(Debug, Error)]
pub enum WiringError {
    /// Only a client that cannot be built (bad base URL, TLS setup); the message says which.
    #[error("Ssemble client: {0}")]
    Ssemble(String),
    #[error("TikTok client: {0}")]
    TikTok(String),
}

/// Where the upstreams are and how to authenticate to them (values come from Secrets Manager).
#[derive(Debug, Clone)]
pub struct UpstreamConfig {
    pub ssemble_api_base_url: String,
    pub ssemble_api_key: SecretString,
    pub tiktok_api_base_url: String,
    pub tiktok_auth_base_url: String,
    pub tiktok_client_key: String,
    pub tiktok_client_secret: SecretString,
}

/// Physical resource names of this run (from `reelay_template::provision`).
#[derive(Debug, Clone)]
pub struct Resources {
    pub table: String,
    pub render_queue_url: String,
    pub publish_queue_url: String,
    pub token_secret_prefix: String,
}

/// Everything the six functions are built from.
#[derive(Debug, Clone)]
pub struct Wiring {
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub resources: Resources,
    pub upstream: UpstreamConfig,
    /// Base of Ssemble's `webhookUrl` and the OAuth redirect: this run's HTTP front.
    pub public_base_url: String,
    /// Simulated seconds per real second; 1.0 against real upstreams.
    pub time_scale: f64,
    /// Crashes at step boundaries (a fault campaign); `None` in ordinary runs.
    pub kill: Option<Arc<KillSwitch>>,
    /// The upstream limits of this run before time scaling (an account's Ssemble tier, say).
    pub base_limits: Limits,
}

/// `d / factor`, never below `floor`: leases and waits shrink with the simulators' clocks, but
/// a lease shorter than one real call would presume live work dead.
fn scaled(d: Duration, factor: f64, floor: Duration) -> Duration {
    if factor <= 1.0 {
        return d;
    }
    d.div_f64(factor).max(floor)
}

/// The production [`Policy`] on a clock `factor` times faster.
pub fn time_scaled_policy(factor: f64) -> Policy {
    let p = Policy::default();
    let lease = Duration::from_secs(10);
    let tick = Duration::from_millis(250);
    Policy {
        publish_lease: scaled(p.publish_lease, factor, lease),
        render_submit_lease: scaled(p.render_submit_lease, factor, lease),
        queue_grace: scaled(p.queue_grace, factor, lease),
        render_poll_min: scaled(p.render_poll_min, factor, tick),
        render_poll_max: scaled(p.render_poll_max, factor, tick),
        status_poll_min: scaled(p.status_poll_min, factor, tick),
        status_poll_max: scaled(p.status_poll_max, factor, tick),
        unknown_check: scaled(p.unknown_check, factor, tick),
        hold_recheck: scaled(p.hold_recheck, factor, tick),
        retry_backoff_base: scaled(p.retry_backoff_base, factor, tick),
        retry_backoff_max: scaled(p.retry_backoff_max, factor, tick),
        render_deadline: scaled(p.render_deadline, factor, lease),
        processing_horizon: scaled(p.processing_horizon, factor, lease),
        moderation_horizon: scaled(p.moderation_horizon, factor, lease),
        inbox_horizon: scaled(p.inbox_horizon, factor, lease),
        unknown_horizon: scaled(p.unknown_horizon, factor, lease),
        ..p
    }
}

impl Wiring {
    /// This run's limits with every window shrunk like the simulators' clocks.
    pub fn limits(&self) -> Limits {
        if self.time_scale > 1.0 {
            self.base_limits.time_scaled(self.time_scale)
        } else {
            self.base_limits.clone()
        }
    }

    pub fn policy(&self) -> Policy {
        time_scaled_policy(self.time_scale)
    }

    /// Token refresh timing: the lock must outlive one refresh call, so only the validity
    /// margin shrinks.
    pub fn tokens(&self) -> TokenRefreshConfig {
        let d = TokenRefreshConfig::default();
        TokenRefreshConfig {
            min_validity: scaled(d.min_validity, self.time_scale, Duration::from_secs(1)),
            ..d
        }
    }

    fn killable<T>(&self, inner: T) -> Killable<T> {
        Killable::new(inner, self.kill.clone())
    }

    fn jobs(&self) -> Jobs {
        self.killable(DynamoJobStore::new(
            self.dynamo.clone(),
            &self.resources.table,
        ))
    }

    fn accounts(&self) -> Accounts {
        self.killable(DynamoAccountStore::new(
            self.dynamo.clone(),
            &self.resources.table,
        ))
    }

    fn queue(&self) -> Queue {
        self.killable(SqsWorkQueue::new(
            self.sqs.clone(),
            Some(self.resources.render_queue_url.clone()),
            Some(self.resources.publish_queue_url.clone()),
        ))
    }

    fn vault(&self) -> Vault {
        self.killable(SecretsManagerTokenVault::new(
            self.secrets.clone(),
            &self.resources.token_secret_prefix,
        ))
    }

    /// As the functions' `main`: no retries inside the client, every call is charged to the
    /// budget before it is made.
    fn ssemble(&self) -> Result<Ssemble, WiringError> {
        SsembleClient::new(SsembleConfig {
            retry: RetryPolicy::none(),
            ..SsembleConfig::new(self.upstream.ssemble_api_key.clone())
                .with_base_url(&self.upstream.ssemble_api_base_url)
        })
        .map(|c| self.killable(c))
        .map_err(|e| WiringError::Ssemble(e.to_string()))
    }

    /// The OAuth redirect is this run's callback route.
    pub fn redirect_uri(&self) -> String {
        format!("{}/v1/accounts/oauth/callback", self.public_base_url)
    }

    fn tiktok(&self) -> Result<TikTok, WiringError> {
        let mut config = TikTokConfig::new(
            self.upstream.tiktok_client_key.clone(),
            self.upstream.tiktok_client_secret.clone(),
            self.redirect_uri(),
        );
        config.api_base_url = self.upstream.tiktok_api_base_url.clone();
        config.auth_base_url = self.upstream.tiktok_auth_base_url.clone();
        TikTokClient::new(config)
            .map(|c| self.killable(TikTokPort::new(c)))
            .map_err(|e| WiringError::TikTok(e.to_string()))
    }

    fn ssemble_scope(&self) -> String {
        render_submitter::ssemble_budget_scope(&self.upstream.ssemble_api_key)
    }

    pub fn ingest(&self) -> Result<IngestDeps, WiringError> {
        let tiktok = self.tiktok()?;
        Ok(ingest_api::Deps {
            jobs: self.jobs(),
            accounts: self.accounts(),
            queue: self.queue(),
            clock: SystemClock,
            account_routes: ingest_api::accounts::AccountDeps {
                vault: self.vault(),
                refresher: tiktok.clone(),
                auth: tiktok.clone(),
                publish: tiktok,
                limits: self.limits(),
                tokens: self.tokens(),
                oauth_state_ttl: Duration::from_secs(600),
                oauth_configured: true,
            },
            policy: self.policy(),
            max_body_bytes: 64 * 1024,
            in_progress_ttl: Duration::from_secs(30),
            idempotency_ttl: Duration::from_secs(48 * 3600),
        })
    }

    pub fn reconciler(&self) -> Result<ReconcilerDeps, WiringError> {
        let tiktok = self.tiktok()?;
        Ok(reconciler::Deps {
            jobs: self.jobs(),
            accounts: self.accounts(),
            queue: self.queue(),
            clock: SystemClock,
            vault: self.vault(),
            refresher: tiktok.clone(),
            render: self.ssemble()?,
            publish: tiktok,
            policy: self.policy(),
            limits: self.limits(),
            tokens: self.tokens(),
            ssemble_scope: self.ssemble_scope(),
            page: 100,
            safety_margin: Duration::from_secs(5),
            // One tick ahead: a publish due before the next tick starts on time.
            lookahead: scaled(
                Duration::from_secs(60),
                self.time_scale,
                Duration::from_secs(2),
            ),
        })
    }

    pub fn render_submitter(&self) -> Result<RenderSubmitterDeps, WiringError> {
        let render = self.ssemble()?;
        Ok(render_submitter::Deps {
            jobs: self.jobs(),
            accounts: self.accounts(),
            queue: self.queue(),
            clock: SystemClock,
            find_calls: render.inner().find_call_bound(),
            render,
            batches: FifoBatchProcessor::new(self.sqs.clone(), &self.resources.render_queue_url),
            policy: self.policy(),
            limits: self.limits(),
            budget_scope: self.ssemble_scope(),
            public_base_url: self.public_base_url.clone(),
        })
    }

    pub fn ssemble_webhook(&self) -> Result<SsembleWebhookDeps, WiringError> {
        Ok(ssemble_webhook::Deps {
            jobs: self.jobs(),
            accounts: self.accounts(),
            queue: self.queue(),
            clock: SystemClock,
            render: self.ssemble()?,
            policy: self.policy(),
            limits: self.limits(),
            budget_scope: self.ssemble_scope(),
            max_body_bytes: ssemble_webhook::DEFAULT_MAX_BODY_BYTES,
            work_deadline: ssemble_webhook::DEFAULT_WORK_DEADLINE,
        })
    }

    pub fn publisher(&self) -> Result<PublisherDeps, WiringError> {
        let tiktok = self.tiktok()?;
        let d = publisher::Settings::default();
        let floor = Duration::from_secs(1);
        Ok(publisher::Deps {
            jobs: self.jobs(),
            accounts: self.accounts(),
            queue: self.queue(),
            clock: SystemClock,
            vault: self.vault(),
            refresher: tiktok.clone(),
            tiktok,
            // A delayed account must not hold back the other accounts of the same batch.
            batches: FifoBatchProcessor::new(self.sqs.clone(), &self.resources.publish_queue_url)
                .with_scope(FailureScope::RestOfGroup),
            policy: self.policy(),
            limits: self.limits(),
            settings: publisher::Settings {
                group_delay_cap: scaled(d.group_delay_cap, self.time_scale, floor),
                cap_wait: scaled(d.cap_wait, self.time_scale, floor),
                rate_limit_wait: scaled(d.rate_limit_wait, self.time_scale, floor),
                transient_wait: scaled(d.transient_wait, self.time_scale, floor),
                token: self.tokens(),
            },
        })
    }

    pub fn tiktok_webhook(&self) -> TikTokWebhookDeps {
        // The simulator signs with its own clock, which runs `time_scale` times faster than
        // Reelay's: the replay window must cover the drift of a whole local run.
        let replay_window = if self.time_scale > 1.0 {
            Duration::from_secs(7 * 24 * 3600)
        } else {
            tiktok_webhook::DEFAULT_REPLAY_WINDOW
        };
        tiktok_webhook::Deps {
            jobs: self.jobs(),
            accounts: self.accounts(),
            queue: self.queue(),
            clock: SystemClock,
            directory: self.killable(tiktok_webhook::DynamoOpenIdDirectory::new(
                self.dynamo.clone(),
                &self.resources.table,
            )),
            policy: self.policy(),
            client_secret: self.upstream.tiktok_client_secret.clone(),
            replay_window,
            max_body_bytes: tiktok_webhook::DEFAULT_MAX_BODY_BYTES,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_scaled_should_shrink_polls_but_keep_leases_above_one_real_call() {
        let p = time_scaled_policy(60.0);
        assert_eq!(p.status_poll_min, Duration::from_millis(250));
        assert_eq!(p.render_poll_min, Duration::from_secs(2));
        assert_eq!(p.publish_lease, Duration::from_secs(10));
        assert_eq!(
            p.max_publish_attempts,
            Policy::default().max_publish_attempts
        );
        assert_eq!(time_scaled_policy(1.0), Policy::default());
    }
}
