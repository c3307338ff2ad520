//! One wiring path for every function: its own `Config`, filled from this run's provisioned names,
//! upstream URLs and time-scaled [`Settings`] (no process environment: one process hosts every
//! function), built by the function's own `wiring::live`, then decorated with the run's kill
//! switch through `Deps::map_ports`. Secrets are read back from the local endpoint by `live`,
//! exactly as in production.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use reelay_aws::DynamoStore;
use reelay_domain::Policy;
use reelay_domain::budget::Limits;
use reelay_domain::usecase::Settings;
use reelay_template::Provisioned;
use thiserror::Error;

use crate::kill::{Decorate, Decorated, KillSwitch};

/// Each function's `Deps` as a local run hosts it: its production ports, decorated.
pub type RenderSubmitterDeps =
    render_submitter::Deps<Decorated<render_submitter::wiring::LivePorts>>;
pub type PublisherDeps = publisher::Deps<Decorated<publisher::wiring::LivePorts>>;
pub type SsembleWebhookDeps = ssemble_webhook::Deps<Decorated<ssemble_webhook::wiring::LivePorts>>;
pub type TikTokWebhookDeps = tiktok_webhook::Deps<Decorated<tiktok_webhook::wiring::LivePorts>>;
pub type ReconcilerDeps = reconciler::Deps<Decorated<reconciler::wiring::LivePorts>>;

#[derive(Debug, Error)]
pub enum WiringError {
    #[error("provisioned resources lack {0}")]
    Missing(&'static str),
    #[error("render-submitter: {0}")]
    RenderSubmitter(#[from] render_submitter::wiring::WiringError),
    #[error("publisher: {0}")]
    Publisher(#[from] publisher::wiring::WiringError),
    #[error("ssemble-webhook: {0}")]
    SsembleWebhook(#[from] ssemble_webhook::wiring::WiringError),
    #[error("tiktok-webhook: {0}")]
    TikTokWebhook(#[from] tiktok_webhook::wiring::WiringError),
    #[error("reconciler: {0}")]
    Reconciler(#[from] reconciler::wiring::WiringError),
    /// Only with the `ingest` feature (see `crate::ingest`).
    #[error("ingest-api: {0}")]
    Ingest(String),
    #[error("client-webhooks: {0}")]
    ClientWebhooks(#[from] client_webhooks::SenderError),
}

/// Physical resource names of this run (from `reelay_template::provision`).
#[derive(Debug, Clone)]
pub struct Resources {
    pub table: String,
    pub render_queue_url: String,
    pub publish_queue_url: String,
    /// The account tokens' table and KMS key (`TokenTable`, `TokenKey`).
    pub token_table: String,
    pub token_key_id: String,
    /// The old per-account token secrets: still read on a miss, as while a stage migrates.
    pub token_secret_prefix: String,
    /// Secrets Manager ids; the secrets hold this run's upstream credentials.
    pub ssemble_secret_id: String,
    pub tiktok_app_secret_id: String,
    /// Webhooks to the client: the delivery queue, its dead letter, and the table's stream.
    pub webhook_queue_url: String,
    pub webhook_dlq_url: String,
    pub table_stream_arn: String,
}

impl Resources {
    /// The token vault the functions are wired with, from these names.
    pub fn vault(&self, sdk: &SdkConfig) -> reelay_aws::DynamoTokenVault {
        reelay_aws::DynamoTokenVault::from_sdk(sdk, &self.token_table, &self.token_key_id)
            .with_legacy_prefix(sdk, Some(self.token_secret_prefix.clone()))
    }

    pub fn from_provisioned(p: &Provisioned) -> Result<Self, WiringError> {
        Ok(Self {
            table: p
                .table("Table")
                .ok_or(WiringError::Missing("Table"))?
                .name
                .clone(),
            render_queue_url: p
                .queue("RenderQueue")
                .ok_or(WiringError::Missing("RenderQueue"))?
                .url
                .clone(),
            publish_queue_url: p
                .queue("PublishQueue")
                .ok_or(WiringError::Missing("PublishQueue"))?
                .url
                .clone(),
            token_table: p
                .table("TokenTable")
                .ok_or(WiringError::Missing("TokenTable"))?
                .name
                .clone(),
            token_key_id: p
                .key("TokenKey")
                .ok_or(WiringError::Missing("TokenKey"))?
                .arn
                .clone(),
            token_secret_prefix: p
                .env_var("TIKTOK_TOKEN_SECRET_PREFIX")
                .ok_or(WiringError::Missing("TIKTOK_TOKEN_SECRET_PREFIX"))?
                .to_owned(),
            ssemble_secret_id: p
                .secret("SsembleSecret")
                .ok_or(WiringError::Missing("SsembleSecret"))?
                .arn
                .clone(),
            tiktok_app_secret_id: p
                .secret("TikTokAppSecret")
                .ok_or(WiringError::Missing("TikTokAppSecret"))?
                .arn
                .clone(),
            webhook_queue_url: p
                .queue("WebhookQueue")
                .ok_or(WiringError::Missing("WebhookQueue"))?
                .url
                .clone(),
            webhook_dlq_url: p
                .queue("WebhookDlq")
                .ok_or(WiringError::Missing("WebhookDlq"))?
                .url
                .clone(),
            table_stream_arn: p
                .table("Table")
                .and_then(|t| t.stream_arn.clone())
                .ok_or(WiringError::Missing("Table's stream"))?,
        })
    }
}

/// Where this run's upstreams are (their credentials are in the provisioned secrets).
#[derive(Debug, Clone)]
pub struct UpstreamUrls {
    pub ssemble_api_base_url: String,
    pub tiktok_api_base_url: String,
    pub tiktok_auth_base_url: String,
}

/// Everything the functions are built from.
#[derive(Debug, Clone)]
pub struct Wiring {
    /// Every function's clients come from this (a benchmark swaps in a metered endpoint here).
    pub sdk: SdkConfig,
    pub resources: Resources,
    pub upstream: UpstreamUrls,
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
        // More than a tick ahead (1.5 periods, at least 2 s): a publish due before the next
        // tick's horizon is enqueued by this tick, with time to spare for a late or slow tick.
        enqueue_ahead: scaled(p.enqueue_ahead, factor, Duration::from_secs(2)),
        queue_grace: scaled(p.queue_grace, factor, lease),
        queue_grace_max: scaled(p.queue_grace_max, factor, lease),
        render_poll_min: scaled(p.render_poll_min, factor, tick),
        render_poll_max: scaled(p.render_poll_max, factor, tick),
        status_poll_min: scaled(p.status_poll_min, factor, tick),
        status_poll_max: scaled(p.status_poll_max, factor, tick),
        hold_recheck: scaled(p.hold_recheck, factor, tick),
        hold_recheck_max: scaled(p.hold_recheck_max, factor, tick),
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

/// The production [`Settings`] on a clock `factor` times faster, with `limits` (already scaled).
/// What measures real work (an HTTP call, a lock held over one, the reconciler's margin) keeps
/// a real-time floor.
pub fn time_scaled_settings(factor: f64, limits: Limits) -> Settings {
    let d = Settings::default();
    let second = Duration::from_secs(1);
    let policy = time_scaled_policy(factor);
    let mut s = Settings {
        limits,
        store_retry: scaled(d.store_retry, factor, second),
        ..d.clone()
    };
    let p = &mut s.publish;
    p.group_delay_cap = scaled(d.publish.group_delay_cap, factor, second);
    p.cap_wait = scaled(d.publish.cap_wait, factor, second);
    p.rate_limit_wait = scaled(d.publish.rate_limit_wait, factor, second);
    p.transient_wait = scaled(d.publish.transient_wait, factor, second);
    // The lease the commit starts must outlast the init window (the domain's rule).
    p.init_window =
        scaled(d.publish.init_window, factor, Duration::from_secs(5)).min(policy.publish_lease / 2);
    s.tokens.min_validity = scaled(d.tokens.min_validity, factor, second);
    s.policy = policy;
    s
}

impl Wiring {
    pub fn dynamo(&self) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::new(&self.sdk)
    }

    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(&self.sdk)
    }

    pub fn secrets(&self) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&self.sdk)
    }

    /// The account tokens as the functions read them (the token table, the old secrets behind).
    pub fn vault(&self) -> reelay_aws::DynamoTokenVault {
        self.resources.vault(&self.sdk)
    }

    /// Direct store access (seeding, progress, summaries; not for moving jobs).
    pub fn store(&self) -> DynamoStore {
        DynamoStore::new(self.dynamo(), &self.resources.table)
    }

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

    /// Every function's settings: time-scaled, Ssemble calling back to this run's front.
    pub fn settings(&self) -> Settings {
        let mut s = time_scaled_settings(self.time_scale, self.limits());
        s.render.webhook_base_url = self.public_base_url.trim_end_matches('/').to_owned();
        s
    }

    pub fn render_submitter_config(&self) -> render_submitter::config::Config {
        render_submitter::config::Config {
            table_name: self.resources.table.clone(),
            render_queue_url: self.resources.render_queue_url.clone(),
            publish_queue_url: self.resources.publish_queue_url.clone(),
            ssemble_secret_id: self.resources.ssemble_secret_id.clone(),
            ssemble_api_base_url: self.upstream.ssemble_api_base_url.clone(),
            settings: self.settings(),
        }
    }

    pub fn publisher_config(&self) -> publisher::config::Config {
        publisher::config::Config {
            table_name: self.resources.table.clone(),
            publish_queue_url: self.resources.publish_queue_url.clone(),
            tiktok_app_secret_id: self.resources.tiktok_app_secret_id.clone(),
            token_table_name: self.resources.token_table.clone(),
            token_key_id: self.resources.token_key_id.clone(),
            tiktok_token_secret_prefix: Some(self.resources.token_secret_prefix.clone()),
            tiktok_api_base_url: self.upstream.tiktok_api_base_url.clone(),
            tiktok_pull_prefix: None,
            schedule_sleep: reelay_aws::DEFAULT_SCHEDULE_SLEEP,
            settings: self.settings(),
        }
    }

    pub fn ssemble_webhook_config(&self) -> ssemble_webhook::config::Config {
        ssemble_webhook::config::Config {
            table_name: self.resources.table.clone(),
            publish_queue_url: self.resources.publish_queue_url.clone(),
            ssemble_secret_id: self.resources.ssemble_secret_id.clone(),
            ssemble_api_base_url: self.upstream.ssemble_api_base_url.clone(),
            settings: self.settings(),
        }
    }

    pub fn tiktok_webhook_config(&self) -> tiktok_webhook::config::Config {
        // The simulator signs with its own clock, which runs `time_scale` times faster than
        // Reelay's: the replay window must cover the drift of a whole local run.
        let replay_window = if self.time_scale > 1.0 {
            Duration::from_secs(7 * 24 * 3600)
        } else {
            tiktok_webhook::config::DEFAULT_REPLAY_WINDOW
        };
        tiktok_webhook::config::Config {
            table_name: self.resources.table.clone(),
            tiktok_app_secret_id: self.resources.tiktok_app_secret_id.clone(),
            publish_queue_url: Some(self.resources.publish_queue_url.clone()),
            replay_window,
            settings: self.settings(),
        }
    }

    pub fn reconciler_config(&self) -> reconciler::config::Config {
        reconciler::config::Config {
            table_name: self.resources.table.clone(),
            render_queue_url: self.resources.render_queue_url.clone(),
            publish_queue_url: self.resources.publish_queue_url.clone(),
            ssemble_secret_id: self.resources.ssemble_secret_id.clone(),
            ssemble_api_base_url: self.upstream.ssemble_api_base_url.clone(),
            tiktok_app_secret_id: self.resources.tiktok_app_secret_id.clone(),
            token_table_name: self.resources.token_table.clone(),
            token_key_id: self.resources.token_key_id.clone(),
            tiktok_token_secret_prefix: Some(self.resources.token_secret_prefix.clone()),
            tiktok_api_base_url: self.upstream.tiktok_api_base_url.clone(),
            settings: self.settings(),
        }
    }

    pub async fn render_submitter(&self) -> Result<RenderSubmitterDeps, WiringError> {
        let deps =
            render_submitter::wiring::live(&self.sdk, &self.render_submitter_config()).await?;
        Ok(deps.map_ports(|p| p.decorate(self.kill.clone())))
    }

    pub async fn publisher(&self) -> Result<PublisherDeps, WiringError> {
        let deps = publisher::wiring::live(&self.sdk, &self.publisher_config()).await?;
        Ok(deps.map_ports(|p| p.decorate(self.kill.clone())))
    }

    pub async fn ssemble_webhook(&self) -> Result<SsembleWebhookDeps, WiringError> {
        let deps = ssemble_webhook::wiring::live(&self.sdk, &self.ssemble_webhook_config()).await?;
        Ok(deps.map_ports(|p| p.decorate(self.kill.clone())))
    }

    pub async fn tiktok_webhook(&self) -> Result<TikTokWebhookDeps, WiringError> {
        let deps = tiktok_webhook::wiring::live(&self.sdk, &self.tiktok_webhook_config()).await?;
        Ok(deps.map_ports(|p| p.decorate(self.kill.clone())))
    }

    /// Webhooks to the client as the template configures them, with the local-development
    /// switch on (endpoints on loopback) and the retry schedule on the run's clock.
    pub fn client_webhooks_config(&self) -> client_webhooks::config::Config {
        let retry = client_webhooks::config::retry_from_env().unwrap_or_default();
        let retry = if self.time_scale > 1.0 {
            retry.scaled(self.time_scale)
        } else {
            retry
        };
        client_webhooks::config::Config {
            table_name: self.resources.table.clone(),
            queue_url: self.resources.webhook_queue_url.clone(),
            dead_letter_url: self.resources.webhook_dlq_url.clone(),
            outbound: reelay_domain::usecase::OutboundSettings {
                retry,
                allow_loopback: true,
                ..reelay_domain::usecase::OutboundSettings::default()
            },
            sender: client_webhooks::SenderSettings {
                allow_loopback: true,
                ..client_webhooks::SenderSettings::default()
            },
        }
    }

    pub fn client_webhooks(&self) -> Result<client_webhooks::wiring::LiveDeps, WiringError> {
        Ok(client_webhooks::wiring::live(
            &self.sdk,
            &self.client_webhooks_config(),
        )?)
    }

    pub async fn reconciler(&self) -> Result<ReconcilerDeps, WiringError> {
        let deps = reconciler::wiring::live(&self.sdk, &self.reconciler_config()).await?;
        Ok(deps.map_ports(|p| p.decorate(self.kill.clone())))
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

    #[test]
    fn scaled_settings_keep_the_init_window_inside_the_lease_and_unscaled_ones_are_production() {
        let s = time_scaled_settings(60.0, Limits::default());
        assert!(s.publish.init_window < s.policy.publish_lease);
        assert_eq!(s.publish.group_delay_cap, Duration::from_secs(1));
        assert_eq!(s.publish.cap_wait, Duration::from_secs(24 * 60));
        assert_eq!(s.policy.enqueue_ahead, Duration::from_secs(2));
        assert_eq!(s.tokens.lock_ttl, Settings::default().tokens.lock_ttl);
        assert_eq!(
            time_scaled_settings(1.0, Limits::default()),
            Settings::default()
        );
    }
}
