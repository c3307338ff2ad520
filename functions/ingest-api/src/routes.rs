//! The route table: (method, path) → endpoint. Kept apart from the handlers so a test can hold it
//! against openapi.yaml.

use thiserror::Error;

/// A request line the API does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RouteError {
    #[error("route not found")]
    NoRoute,
    #[error("method not allowed")]
    MethodNotAllowed,
}

/// One operation of the API; the names match openapi.yaml's operationIds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint<'a> {
    CreateJob,
    CreateJobs,
    ListJobs,
    GetJob(&'a str),
    AmendJob(&'a str),
    CancelJob(&'a str),
    RetryJob(&'a str),
    SeedPublish,
    ConnectAccount,
    OAuthCallback,
    ListAccounts,
    GetAccount(&'a str),
    DisconnectAccount(&'a str),
    CreatorInfo(&'a str),
    OpenApi,
    CreateWebhook,
    ListWebhooks,
    DeleteWebhook(&'a str),
    ListWebhookDeliveries(&'a str),
    ReplayWebhook(&'a str),
}

impl Endpoint<'_> {
    pub const OPERATION_IDS: [&'static str; 20] = [
        "createJob",
        "createJobs",
        "listJobs",
        "getJob",
        "amendJob",
        "cancelJob",
        "retryJob",
        "seedPublish",
        "connectAccount",
        "oauthCallback",
        "listAccounts",
        "getAccount",
        "disconnectAccount",
        "getCreatorInfo",
        "getOpenApi",
        "createWebhook",
        "listWebhooks",
        "deleteWebhook",
        "listWebhookDeliveries",
        "replayWebhook",
    ];

    pub fn operation_id(&self) -> &'static str {
        match self {
            Self::CreateJob => "createJob",
            Self::CreateJobs => "createJobs",
            Self::ListJobs => "listJobs",
            Self::GetJob(_) => "getJob",
            Self::AmendJob(_) => "amendJob",
            Self::CancelJob(_) => "cancelJob",
            Self::RetryJob(_) => "retryJob",
            Self::SeedPublish => "seedPublish",
            Self::ConnectAccount => "connectAccount",
            Self::OAuthCallback => "oauthCallback",
            Self::ListAccounts => "listAccounts",
            Self::GetAccount(_) => "getAccount",
            Self::DisconnectAccount(_) => "disconnectAccount",
            Self::CreatorInfo(_) => "getCreatorInfo",
            Self::OpenApi => "getOpenApi",
            Self::CreateWebhook => "createWebhook",
            Self::ListWebhooks => "listWebhooks",
            Self::DeleteWebhook(_) => "deleteWebhook",
            Self::ListWebhookDeliveries(_) => "listWebhookDeliveries",
            Self::ReplayWebhook(_) => "replayWebhook",
        }
    }
}

/// Resolves a request line. An unknown path is `NoRoute`; a known path with another method is
/// `MethodNotAllowed`.
pub fn resolve<'a>(method: &str, path: &'a str) -> Result<Endpoint<'a>, RouteError> {
    let segments: Vec<&'a str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (get, post, delete) = (method == "GET", method == "POST", method == "DELETE");
    let endpoint = match segments.as_slice() {
        ["v1", "jobs"] if post => Endpoint::CreateJob,
        ["v1", "jobs:batch"] if post => Endpoint::CreateJobs,
        ["v1", "jobs"] if get => Endpoint::ListJobs,
        ["v1", "jobs", id] if get => Endpoint::GetJob(id),
        ["v1", "jobs", id] if method == "PATCH" => Endpoint::AmendJob(id),
        ["v1", "jobs", id, "cancel"] if post => Endpoint::CancelJob(id),
        ["v1", "jobs", id, "retry"] if post => Endpoint::RetryJob(id),
        ["api", "publish", "tiktok"] if post => Endpoint::SeedPublish,
        ["v1", "accounts", "connect"] if post => Endpoint::ConnectAccount,
        ["v1", "accounts", "oauth", "callback"] if get => Endpoint::OAuthCallback,
        ["v1", "accounts"] if get => Endpoint::ListAccounts,
        ["v1", "accounts", id] if get && *id != "connect" => Endpoint::GetAccount(id),
        ["v1", "accounts", id] if delete && *id != "connect" => Endpoint::DisconnectAccount(id),
        ["v1", "accounts", id, "creator-info"] if get => Endpoint::CreatorInfo(id),
        ["v1", "openapi.yaml"] if get => Endpoint::OpenApi,
        ["v1", "webhooks"] if post => Endpoint::CreateWebhook,
        ["v1", "webhooks"] if get => Endpoint::ListWebhooks,
        ["v1", "webhooks", id] if delete => Endpoint::DeleteWebhook(id),
        ["v1", "webhooks", id, "deliveries"] if get => Endpoint::ListWebhookDeliveries(id),
        ["v1", "webhooks", id, "replay"] if post => Endpoint::ReplayWebhook(id),
        ["v1", "jobs"]
        | ["v1", "jobs:batch"]
        | ["v1", "jobs", _]
        | ["v1", "jobs", _, "cancel" | "retry"]
        | ["api", "publish", "tiktok"]
        | ["v1", "accounts"]
        | ["v1", "accounts", _]
        | ["v1", "accounts", _, "creator-info"]
        | ["v1", "accounts", "oauth", "callback"]
        | ["v1", "openapi.yaml"]
        | ["v1", "webhooks"]
        | ["v1", "webhooks", _]
        | ["v1", "webhooks", _, "deliveries" | "replay"] => {
            return Err(RouteError::MethodNotAllowed);
        }
        _ => return Err(RouteError::NoRoute),
    };
    Ok(endpoint)
}
