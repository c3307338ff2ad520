//! The client API (`ingest-api`) in a local run.
//!
//! GATED (feature `ingest`, on by default): `ingest-api` is rewritten on its own branch (h-ingest)
//! at the same time as this crate, so this module is written against that branch's API
//! (`ingest_api::config::Config`, `ingest_api::wiring::{live, LivePorts}`, `ingest_api::Deps<P>`
//! with `map_ports`, `ingest_api::handler(&Deps<P>, Request)`) and compiles once it is merged.
//! Only [`Wiring::ingest_config`] names `Config`'s fields. Without the feature the stack runs
//! with no client API route (function tests depend on this crate without it).

#[cfg(feature = "ingest")]
mod hosted {
    use std::sync::Arc;

    use lambda_http::Request;
    use reelay_template::Template;

    use crate::Routes;
    use crate::kill::{self, Decorate, Decorated};
    use crate::stack::{StackError, crashed_is_502};
    use crate::wiring::{Wiring, WiringError};

    pub type IngestDeps = ingest_api::Deps<Decorated<ingest_api::wiring::LivePorts>>;

    impl Wiring {
        pub fn ingest_config(&self) -> ingest_api::config::Config {
            ingest_api::config::Config {
                table_name: self.resources.table.clone(),
                render_queue_url: self.resources.render_queue_url.clone(),
                tiktok_app_secret_id: self.resources.tiktok_app_secret_id.clone(),
                token_table_name: self.resources.token_table.clone(),
                token_key_id: self.resources.token_key_id.clone(),
                tiktok_token_secret_prefix: Some(self.resources.token_secret_prefix.clone()),
                tiktok_api_base_url: self.upstream.tiktok_api_base_url.clone(),
                tiktok_auth_base_url: self.upstream.tiktok_auth_base_url.clone(),
                public_base_url: Some(self.public_base_url.clone()),
                max_body_bytes: ingest_api::config::MAX_BODY_BYTES,
                settings: self.settings(),
                webhook_queue_url: self.resources.webhook_queue_url.clone(),
                // The local-development switch: a run's receivers listen on loopback.
                webhook_allow_loopback: true,
            }
        }

        pub async fn ingest(&self) -> Result<IngestDeps, WiringError> {
            let deps = ingest_api::wiring::live(&self.sdk, &self.ingest_config())
                .await
                .map_err(|e| WiringError::Ingest(e.to_string()))?;
            Ok(deps.map_ports(|p| p.decorate(self.kill.clone())))
        }
    }

    /// Adds every route of the client API, behind the kill switch like the other functions.
    pub async fn route(
        routes: Routes,
        template: &Template,
        wiring: &Wiring,
    ) -> Result<Routes, StackError> {
        let deps = Arc::new(wiring.ingest().await?);
        let kill = wiring.kill.clone();
        Ok(
            routes.function_from_template(template, "IngestApiFunction", move |req: Request| {
                let (deps, kill) = (deps.clone(), kill.clone());
                async move {
                    crashed_is_502(
                        kill::invoke(kill.as_ref(), "ingest-api", async {
                            ingest_api::handler(&*deps, req).await
                        })
                        .await,
                    )
                }
            })?,
        )
    }
}

#[cfg(feature = "ingest")]
pub use hosted::{IngestDeps, route};

/// Without the `ingest` feature there is no client API to host.
#[cfg(not(feature = "ingest"))]
pub async fn route(
    routes: crate::Routes,
    _template: &reelay_template::Template,
    _wiring: &crate::wiring::Wiring,
) -> Result<crate::Routes, crate::StackError> {
    tracing::warn!("built without the `ingest` feature: the client API is not hosted");
    Ok(routes)
}
