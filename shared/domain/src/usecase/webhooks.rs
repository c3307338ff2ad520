//! Webhooks out to the client: register, list and remove endpoints, read their delivery log,
//! replay, turn a stored transition or an account's health change into deliveries, and make one
//! delivery attempt. The ingest API, the `client-webhooks` function and the local runner all call
//! these, so an event is chosen, signed, retried and given up one way.

use std::collections::HashSet;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::account::AccountHealth;
use crate::envelope::FieldError;
use crate::ids::{AccountId, JobId, TenantId};
use crate::job::AuditEvent;
use crate::ports::{
    Clock, DeliveryPage, DeliveryQueue, Entropy, JobStore, PostResult, QueueError, StoreError,
    WebhookSender, WebhookStore, is_delivery_cursor,
};
use crate::time::UtcTime;
use crate::webhooks::{
    AttemptOutcome, ClientEvent, Delivery, DeliveryRecord, Endpoint, EndpointId, EventType,
    MAX_ENDPOINTS_PER_TENANT, RetrySchedule, account_event, check_url, generate_secret, job_events,
    sign,
};

/// How deliveries are made; every figure is configuration.
#[derive(Debug, Clone)]
pub struct OutboundSettings {
    pub retry: RetrySchedule,
    /// The local-development switch: lets endpoints on loopback (and plain http there) through.
    /// Off on every AWS stage.
    pub allow_loopback: bool,
    /// How long the delivery log keeps an attempt.
    pub log_ttl: Duration,
    /// The longest delay the queue takes (SQS: 15 minutes); a longer wait is several hops.
    pub max_queue_delay: Duration,
    /// Events a replay sends at most.
    pub max_replay: usize,
}

impl Default for OutboundSettings {
    fn default() -> Self {
        Self {
            retry: RetrySchedule::default(),
            allow_loopback: false,
            log_ttl: Duration::from_secs(30 * 86_400),
            max_queue_delay: Duration::from_secs(900),
            max_replay: 1_000,
        }
    }
}

/// The webhook use cases over their ports: the store, the delivery queue and the clock.
#[derive(Debug, Clone)]
pub struct Outbound<S, Q, C> {
    pub store: S,
    pub queue: Q,
    pub clock: C,
    pub settings: OutboundSettings,
}

#[derive(Debug, Error)]
pub enum OutboundError {
    #[error("invalid webhook endpoint")]
    Invalid(Vec<FieldError>),
    #[error("no webhook endpoint {0}")]
    NotFound(String),
    #[error("a tenant has at most {MAX_ENDPOINTS_PER_TENANT} webhook endpoints")]
    TooMany,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// `POST /v1/webhooks`'s body.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointRequest {
    pub url: String,
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(default, deserialize_with = "crate::request::non_null")]
    pub description: Option<String>,
}

/// What one delivery attempt did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempted {
    /// Not due yet: sent on for another hop of the queue.
    Deferred,
    /// The endpoint was removed: nothing sent.
    EndpointGone,
    Delivered,
    /// Failed (or blocked); tried again at `next`.
    Retrying {
        next: UtcTime,
    },
    /// Every attempt failed: in the dead-letter queue.
    Dead,
}

fn invalid(field: &str, message: impl Into<String>) -> OutboundError {
    OutboundError::Invalid(vec![FieldError {
        field: field.into(),
        message: message.into(),
    }])
}

impl<S, Q, C> Outbound<S, Q, C>
where
    S: WebhookStore,
    Q: DeliveryQueue,
    C: Clock + Entropy,
{
    /// Registers an endpoint and returns it with its signing secret (shown once).
    pub async fn register(
        &self,
        tenant: &TenantId,
        request: EndpointRequest,
    ) -> Result<Endpoint, OutboundError> {
        check_url(&request.url, self.settings.allow_loopback)
            .map_err(|e| invalid("url", format!("url {e}")))?;
        let mut events = Vec::new();
        for raw in &request.events {
            let kind = raw.parse::<EventType>().map_err(|()| {
                let known: Vec<&str> = EventType::ALL.iter().map(EventType::as_str).collect();
                invalid(
                    "events",
                    format!("unknown event type {raw:?}; one of {}", known.join(", ")),
                )
            })?;
            if !events.contains(&kind) {
                events.push(kind);
            }
        }
        if let Some(d) = &request.description
            && d.chars().count() > 200
        {
            return Err(invalid("description", "at most 200 characters"));
        }
        if self.store.endpoints(tenant).await?.len() >= MAX_ENDPOINTS_PER_TENANT {
            return Err(OutboundError::TooMany);
        }
        let now = self.clock.now();
        let endpoint = Endpoint {
            id: EndpointId::generate(now, self.clock.random_u128()),
            tenant_id: tenant.clone(),
            url: request.url,
            events,
            description: request.description,
            secret: generate_secret(self.clock.random_u128(), self.clock.random_u128()),
            created_at: now,
        };
        self.store.put_endpoint(&endpoint).await?;
        tracing::info!(tenant_id = %tenant, webhook_id = %endpoint.id, "webhook endpoint registered");
        Ok(endpoint)
    }

    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<Endpoint>, OutboundError> {
        Ok(self.store.endpoints(tenant).await?)
    }

    /// Removes an endpoint; deliveries already queued for it are dropped when they come up.
    pub async fn remove(&self, tenant: &TenantId, id: &str) -> Result<(), OutboundError> {
        let id = EndpointId::parse(id).map_err(|_| OutboundError::NotFound(id.to_owned()))?;
        if self.store.delete_endpoint(tenant, &id).await? {
            Ok(())
        } else {
            Err(OutboundError::NotFound(id.to_string()))
        }
    }

    async fn owned(&self, tenant: &TenantId, id: &str) -> Result<Endpoint, OutboundError> {
        let parsed = EndpointId::parse(id).map_err(|_| OutboundError::NotFound(id.to_owned()))?;
        self.store
            .endpoint(tenant, &parsed)
            .await?
            .ok_or_else(|| OutboundError::NotFound(id.to_owned()))
    }

    /// A page of the endpoint's delivery log, newest first.
    pub async fn deliveries(
        &self,
        tenant: &TenantId,
        id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<DeliveryPage, OutboundError> {
        let endpoint = self.owned(tenant, id).await?;
        if let Some(c) = cursor
            && !is_delivery_cursor(c)
        {
            return Err(invalid("after", "not a cursor this log issued"));
        }
        Ok(self
            .store
            .deliveries(tenant, &endpoint.id, cursor, limit)
            .await?)
    }

    /// Sends again every event the endpoint's log holds since `since` (only those never
    /// delivered when `only_failed`), each once, as a new delivery with a fresh schedule. The
    /// events keep their ids, so a receiver that has one already can tell.
    pub async fn replay(
        &self,
        tenant: &TenantId,
        id: &str,
        since: UtcTime,
        only_failed: bool,
    ) -> Result<usize, OutboundError> {
        let endpoint = self.owned(tenant, id).await?;
        let mut delivered = HashSet::new();
        let mut events: Vec<ClientEvent> = Vec::new();
        let mut seen = HashSet::new();
        let mut cursor: Option<String> = None;
        'pages: loop {
            let page = self
                .store
                .deliveries(tenant, &endpoint.id, cursor.as_deref(), 100)
                .await?;
            for record in page.records {
                if record.at < since {
                    break 'pages;
                }
                if record.outcome == AttemptOutcome::Delivered {
                    delivered.insert(record.event_id.clone());
                }
                if seen.insert(record.event_id.clone()) {
                    events.push(record.event);
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let now = self.clock.now();
        let mut sent = 0;
        // Oldest first, as they happened.
        for event in events.into_iter().rev() {
            if only_failed && delivered.contains(&event.id) {
                continue;
            }
            if sent >= self.settings.max_replay {
                break;
            }
            let delivery = Delivery {
                tenant_id: tenant.clone(),
                endpoint_id: endpoint.id.clone(),
                event,
                attempts: 0,
                due_at: now,
                replay: true,
            };
            self.queue.send(&delivery, Duration::ZERO).await?;
            sent += 1;
        }
        tracing::info!(tenant_id = %tenant, webhook_id = %endpoint.id, replayed = sent, "webhook replay queued");
        Ok(sent)
    }

    /// Queues one delivery of each event to every endpoint of the tenant that wants it.
    pub async fn dispatch(
        &self,
        tenant: &TenantId,
        events: &[ClientEvent],
    ) -> Result<usize, OutboundError> {
        if events.is_empty() {
            return Ok(0);
        }
        let endpoints = self.store.endpoints(tenant).await?;
        self.send_to(tenant, &endpoints, events).await
    }

    async fn send_to(
        &self,
        tenant: &TenantId,
        endpoints: &[Endpoint],
        events: &[ClientEvent],
    ) -> Result<usize, OutboundError> {
        let now = self.clock.now();
        let mut sent = 0;
        for endpoint in endpoints {
            for event in events.iter().filter(|e| endpoint.wants(e.event_type)) {
                let delivery = Delivery {
                    tenant_id: tenant.clone(),
                    endpoint_id: endpoint.id.clone(),
                    event: event.clone(),
                    attempts: 0,
                    due_at: now,
                    replay: false,
                };
                self.queue.send(&delivery, Duration::ZERO).await?;
                sent += 1;
            }
        }
        Ok(sent)
    }

    /// The events of one stored transition (from the table's change stream), dispatched. A
    /// transition that is no move (the creation, a recorded observation) costs nothing; with
    /// the tenant known (the audit item names it) a tenant without endpoints costs one query,
    /// and the job is read only when someone listens.
    pub async fn dispatch_transition(
        &self,
        jobs: &impl JobStore,
        job_id: &JobId,
        tenant: Option<&TenantId>,
        audit: &AuditEvent,
    ) -> Result<usize, OutboundError> {
        if audit.from.is_none_or(|from| from == audit.to) {
            return Ok(0);
        }
        let endpoints = match tenant {
            Some(t) => Some(self.store.endpoints(t).await?),
            None => None,
        };
        if endpoints.as_ref().is_some_and(Vec::is_empty) {
            return Ok(0);
        }
        let Some(job) = jobs.get(job_id).await? else {
            return Ok(0);
        };
        let events = job_events(&job, audit);
        match endpoints {
            Some(endpoints) if tenant == Some(&job.tenant_id) => {
                self.send_to(&job.tenant_id, &endpoints, &events).await
            }
            _ => self.dispatch(&job.tenant_id, &events).await,
        }
    }

    /// The event of one account health change, dispatched.
    #[allow(clippy::too_many_arguments)]
    pub async fn dispatch_account_change(
        &self,
        tenant: &TenantId,
        account: &AccountId,
        before: Option<AccountHealth>,
        after: AccountHealth,
        reason: Option<&str>,
        version: u64,
    ) -> Result<usize, OutboundError> {
        let now = self.clock.now();
        match account_event(tenant, account, before, after, reason, now, version) {
            Some((tenant, event)) => self.dispatch(&tenant, &[event]).await,
            None => Ok(0),
        }
    }

    /// Makes one attempt of `delivery` (or sends it on if it is not due), logs it, and queues
    /// the next attempt or the dead letter. An error means the queue refused: the caller lets the
    /// message come back, and the attempt is made again (receivers deduplicate on the id).
    pub async fn deliver(
        &self,
        sender: &impl WebhookSender,
        delivery: &Delivery,
    ) -> Result<Attempted, OutboundError> {
        let now = self.clock.now();
        if delivery.due_at > now {
            let wait = delivery
                .due_at
                .since(now)
                .min(self.settings.max_queue_delay);
            self.queue.send(delivery, wait).await?;
            return Ok(Attempted::Deferred);
        }
        let tenant = &delivery.tenant_id;
        let Some(endpoint) = self.store.endpoint(tenant, &delivery.endpoint_id).await? else {
            tracing::info!(tenant_id = %tenant, webhook_id = %delivery.endpoint_id,
                event_id = %delivery.event.id, "webhook endpoint removed; delivery dropped");
            return Ok(Attempted::EndpointGone);
        };
        let body = delivery.event.body();
        let attempt = delivery.attempts.saturating_add(1);
        let started = now;
        let (outcome, status, error) = match sign(&endpoint.secret, &delivery.event.id, now, &body)
        {
            Err(e) => (AttemptOutcome::Failed, None, Some(e.to_string())),
            Ok(headers) => match sender.post(&endpoint.url, &headers, body).await {
                PostResult::Answered(code) if (200..300).contains(&code) => {
                    (AttemptOutcome::Delivered, Some(code), None)
                }
                PostResult::Answered(code) => (
                    AttemptOutcome::Failed,
                    Some(code),
                    Some(format!("answered {code}")),
                ),
                PostResult::Blocked(why) => (AttemptOutcome::Blocked, None, Some(why)),
                PostResult::Failed(why) => (AttemptOutcome::Failed, None, Some(why)),
            },
        };
        let ended = self.clock.now();
        let next = match outcome {
            AttemptOutcome::Delivered => None,
            _ => self
                .settings
                .retry
                .after(attempt)
                .map(|wait| ended.plus(wait)),
        };
        let dead = outcome != AttemptOutcome::Delivered && next.is_none();
        let record = DeliveryRecord {
            endpoint_id: endpoint.id.clone(),
            event_id: delivery.event.id.clone(),
            event_type: delivery.event.event_type,
            attempt,
            at: started,
            outcome,
            status,
            error: error.clone(),
            duration_ms: u64::try_from(ended.since(started).as_millis()).unwrap_or(u64::MAX),
            next_attempt_at: next,
            dead,
            replay: delivery.replay,
            event: delivery.event.clone(),
        };
        if let Err(e) = self
            .store
            .record_delivery(tenant, &record, ended.plus(self.settings.log_ttl))
            .await
        {
            tracing::warn!(tenant_id = %tenant, webhook_id = %endpoint.id, event_id = %record.event_id,
                error.message = %e, "delivery log write failed");
        }
        tracing::info!(tenant_id = %tenant, webhook_id = %endpoint.id, event_id = %record.event_id,
            event_type = record.event_type.as_str(), attempt, outcome = ?outcome, status,
            error.message = error.as_deref().unwrap_or(""), "webhook attempt");
        if outcome == AttemptOutcome::Delivered {
            return Ok(Attempted::Delivered);
        }
        let mut again = delivery.clone();
        again.attempts = attempt;
        match next {
            Some(at) => {
                again.due_at = at;
                let wait = at.since(ended).min(self.settings.max_queue_delay);
                self.queue.send(&again, wait).await?;
                Ok(Attempted::Retrying { next: at })
            }
            None => {
                self.queue.dead_letter(&again).await?;
                tracing::warn!(tenant_id = %tenant, webhook_id = %endpoint.id, event_id = %record.event_id,
                    attempts = attempt, "webhook delivery given up; in the dead-letter queue");
                Ok(Attempted::Dead)
            }
        }
    }
}
