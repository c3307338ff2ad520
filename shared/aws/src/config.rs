//! Cold-start configuration: one `SdkConfig` from the environment, typed variables, fail fast.

use aws_config::{BehaviorVersion, SdkConfig};
use reelay_domain::budget::Limits;
use reelay_domain::usecase::Settings;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Which roots the SDK's TLS connections trust (`AWS_TLS_ROOTS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsTlsRoots {
    /// The five Amazon Trust Services roots that every AWS endpoint's certificate chains to
    /// (<https://www.amazontrust.com/repository/>: "for relying parties that make use of custom
    /// trust stores we recommend that all five ... be included"). The default: nothing to read
    /// from disk at a cold start, and no other CA is trusted for AWS.
    Amazon,
    /// The platform's store (`SSL_CERT_FILE`/`SSL_CERT_DIR`, else the system's), as the SDK does
    /// by default: for a TLS-inspecting proxy or a private endpoint with its own CA. It is read
    /// and parsed at every cold start (measured here: 0.5 ms for one bundle file, as on AL2023;
    /// 2.7 ms for Debian's 292-file directory).
    Platform,
}

/// Amazon Root CA 1–4 and Starfield Services Root Certificate Authority - G2 (PEM), as
/// published at <https://www.amazontrust.com/repository/> and in Mozilla's store.
const AMAZON_TRUST_SERVICES_ROOTS: &[u8] = include_bytes!("amazon_trust_services_roots.pem");

impl AwsTlsRoots {
    /// `AWS_TLS_ROOTS`: `amazon` (default) or `platform`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::parse(env_var_opt("AWS_TLS_ROOTS").as_deref())
    }

    fn parse(value: Option<&str>) -> Result<Self, ConfigError> {
        match value.map(str::trim) {
            None | Some("amazon") => Ok(Self::Amazon),
            Some("platform") => Ok(Self::Platform),
            Some(other) => Err(ConfigError::Invalid {
                name: "AWS_TLS_ROOTS",
                reason: format!("'{other}' is neither 'amazon' nor 'platform'"),
            }),
        }
    }
}

/// Loads the SDK configuration from the environment only (endpoint, region, credentials), so the
/// Lambda and the tests run the same code against AWS or a local endpoint. The HTTP client trusts
/// the roots `AWS_TLS_ROOTS` names; the SDK's own default would read the platform's store, which
/// is most of what `load_defaults` spends at a cold start.
pub async fn load_sdk_config() -> Result<SdkConfig, ConfigError> {
    let loader = aws_config::defaults(BehaviorVersion::latest());
    let loader = match AwsTlsRoots::from_env()? {
        AwsTlsRoots::Platform => loader,
        AwsTlsRoots::Amazon => with_amazon_roots(loader)?,
    };
    Ok(loader.load().await)
}

/// The SDK's default HTTPS client (rustls on aws-lc) with only the Amazon Trust Services roots.
fn with_amazon_roots(
    loader: aws_config::ConfigLoader,
) -> Result<aws_config::ConfigLoader, ConfigError> {
    use aws_smithy_http_client::tls::{self, TlsContext, TrustStore, rustls_provider::CryptoMode};
    let roots = TrustStore::empty().with_pem_certificate(AMAZON_TRUST_SERVICES_ROOTS);
    let context = TlsContext::builder()
        .with_trust_store(roots)
        .build()
        .map_err(|e| ConfigError::Invalid {
            name: "AWS_TLS_ROOTS",
            reason: e.to_string(),
        })?;
    Ok(loader.http_client(
        aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context)
            .build_https(),
    ))
}

/// A required variable.
pub fn env_var(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// An optional variable (unset or empty is `None`).
pub fn env_var_opt(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The documented defaults, with the account tier's caps overridable
/// (`SSEMBLE_LIMIT_HOUR`, `SSEMBLE_LIMIT_DAY`: 100/1,000 standard, up to 2,000/20,000) and the
/// budgets' safety margin (`BUDGET_WINDOW_MARGIN_MS`, see [`Limits::window_margin`]).
pub fn limits_from_env() -> Result<Limits, ConfigError> {
    let mut limits = Limits::default();
    if let Some(v) = env_var_opt("BUDGET_WINDOW_MARGIN_MS") {
        let ms = v.trim().parse::<u64>().map_err(|e| ConfigError::Invalid {
            name: "BUDGET_WINDOW_MARGIN_MS",
            reason: e.to_string(),
        })?;
        limits.window_margin = std::time::Duration::from_millis(ms);
    }
    let parse = |name: &'static str| -> Result<Option<u32>, ConfigError> {
        env_var_opt(name)
            .map(|v| {
                v.trim().parse::<u32>().map_err(|e| ConfigError::Invalid {
                    name,
                    reason: e.to_string(),
                })
            })
            .transpose()
    };
    if let Some(n) = parse("SSEMBLE_LIMIT_HOUR")? {
        limits.ssemble_hourly.limit = n;
    }
    if let Some(n) = parse("SSEMBLE_LIMIT_DAY")? {
        limits.ssemble_daily.limit = n;
    }
    if let Some(n) = parse("API_RATE_LIMIT_PER_MINUTE")? {
        limits.tenant_api.limit = n;
    }
    Ok(limits)
}

/// Whole seconds from `name`, if set.
pub fn secs_var(name: &'static str) -> Result<Option<std::time::Duration>, ConfigError> {
    env_var_opt(name)
        .map(|v| {
            v.trim()
                .parse::<u64>()
                .map(std::time::Duration::from_secs)
                .map_err(|e| ConfigError::Invalid {
                    name,
                    reason: e.to_string(),
                })
        })
        .transpose()
}

/// A positive whole number from `name`, if set.
fn positive_var(name: &'static str) -> Result<Option<u32>, ConfigError> {
    match env_var_opt(name) {
        None => Ok(None),
        Some(v) => match v.trim().parse::<u32>() {
            Ok(0) => Err(ConfigError::Invalid {
                name,
                reason: "must be at least 1".into(),
            }),
            Ok(n) => Ok(Some(n)),
            Err(e) => Err(ConfigError::Invalid {
                name,
                reason: e.to_string(),
            }),
        },
    }
}

/// The use cases' settings from the environment: the documented defaults, with every figure an
/// operator may tune overridable (see the README's configuration table). One reader for every
/// function, so two functions can never read the same variable differently.
pub fn settings_from_env() -> Result<Settings, ConfigError> {
    let mut s = Settings {
        limits: limits_from_env()?,
        ..Settings::default()
    };
    let p = &mut s.publish;
    for (name, slot) in [
        ("PUBLISH_GROUP_DELAY_CAP_SECS", &mut p.group_delay_cap),
        ("PUBLISH_CAP_WAIT_SECS", &mut p.cap_wait),
        ("PUBLISH_RATE_LIMIT_WAIT_SECS", &mut p.rate_limit_wait),
        ("PUBLISH_TRANSIENT_WAIT_SECS", &mut p.transient_wait),
        ("PUBLISH_INIT_WINDOW_SECS", &mut p.init_window),
        ("PUBLISH_SCHEDULE_LEAD_SECS", &mut p.schedule_lead),
    ] {
        if let Some(d) = secs_var(name)? {
            *slot = d;
        }
    }
    if let Some(d) = secs_var("PUBLISH_ENQUEUE_AHEAD_SECS")? {
        s.policy.enqueue_ahead = d;
    }
    if let Some(d) = secs_var("STORE_RETRY_SECS")? {
        s.store_retry = d;
    }
    if let Some(n) = positive_var("RECONCILE_CONCURRENCY")? {
        s.reconcile.concurrency = n as usize;
    }
    if let Some(n) = positive_var("RECONCILE_PAGES_PER_READ")? {
        s.reconcile.pages_per_read = n;
    }
    s.render.ssemble_timeout = secs_var("SSEMBLE_TIMEOUT_SECS")?;
    if let Some(v) = env_var_opt("SSEMBLE_TENANT_SHARE_PERMILLE") {
        s.render.tenant_share_permille = v
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|p| *p <= 1000)
            .ok_or_else(|| ConfigError::Invalid {
                name: "SSEMBLE_TENANT_SHARE_PERMILLE",
                reason: format!("{v:?} is not a whole number from 0 to 1000"),
            })?;
    }
    if let Some(base) = env_var_opt("PUBLIC_BASE_URL") {
        s.render.webhook_base_url = base.trim_end_matches('/').to_owned();
    }
    Ok(s)
}

/// [`limits_from_env`], under the name the Ssemble callers already use.
pub fn ssemble_limits_from_env() -> Result<Limits, ConfigError> {
    limits_from_env()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn aws_tls_roots_are_amazons_unless_the_platform_is_named() {
        assert_eq!(AwsTlsRoots::parse(None).unwrap(), AwsTlsRoots::Amazon);
        assert_eq!(
            AwsTlsRoots::parse(Some("amazon")).unwrap(),
            AwsTlsRoots::Amazon
        );
        assert_eq!(
            AwsTlsRoots::parse(Some(" platform ")).unwrap(),
            AwsTlsRoots::Platform
        );
        let err = AwsTlsRoots::parse(Some("mozilla")).unwrap_err().to_string();
        assert!(
            err.contains("AWS_TLS_ROOTS") && err.contains("mozilla"),
            "{err}"
        );
    }

    #[test]
    fn the_amazon_roots_are_the_five_of_the_repository() {
        let pem = std::str::from_utf8(AMAZON_TRUST_SERVICES_ROOTS).unwrap();
        assert_eq!(pem.matches("-----BEGIN CERTIFICATE-----").count(), 5);
        assert_eq!(pem.matches("-----END CERTIFICATE-----").count(), 5);
    }

    /// The SDK parses the trust store when it builds the connector, and panics on a bad one: a
    /// call over HTTPS must get as far as connecting (refused here) and answer an error.
    #[tokio::test]
    async fn an_https_call_with_the_amazon_roots_builds_its_connector_and_fails_cleanly() {
        let loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::for_tests())
            .endpoint_url("https://127.0.0.1:9");
        let sdk = with_amazon_roots(loader).unwrap().load().await;
        let client = aws_sdk_dynamodb::Client::new(&sdk);
        let answer = client.list_tables().send().await;
        assert!(answer.is_err(), "nothing listens on port 9");
    }
}
