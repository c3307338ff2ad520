//! Reelay's domain: the job model, its lifecycle table, budgets and the ports the adapters
//! implement. It knows no AWS, no Lambda and no HTTP.

pub mod account;
pub mod budget;
pub mod compliance;
pub mod envelope;
pub mod ids;
pub mod job;
pub mod lifecycle;
pub mod messages;
pub mod ports;
pub mod request;
pub mod tenant;
pub mod time;
pub mod upstream;
pub mod usecase;
pub mod webhooks;

pub use envelope::{ErrorEnvelope, FieldError};
pub use ids::{
    AccountId, IdError, IdempotencyKey, JobId, PayloadHash, PublishId, RequestId, TenantId,
};
pub use job::{Applied, AuditEvent, Clip, Job, JobError, JobSource, PostMode, PostSettings, Step};
pub use lifecycle::{
    Actor, CheckKind, Decision, Effect, ErrorClass, Event, JobState, Policy, PublishStatus,
    TransitionError, Via,
};
pub use time::UtcTime;
