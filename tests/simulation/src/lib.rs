//! The deterministic simulation of Reelay's whole domain.
//!
//! One seed is one run: tenants, creators and jobs drawn from the seed; every use case of
//! `reelay_domain::usecase` running as the invocations of the six functions would (queue
//! consumers under SQS FIFO rules, a reconciler on its one-minute schedule, Ssemble and TikTok
//! webhooks, the clients' cancels and retries, an operator following the runbook) over the
//! in-memory store of `reelay-testkit` and scripted upstreams; crashes between any two port calls,
//! stalls past leases and visibility timeouts, store outages, upstream faults and webhooks
//! duplicated, delayed for hours and reordered across attempts. Every step is chosen by the
//! seeded generator, so a failing seed replays exactly (`SIM_SEED=<n>`).
//!
//! The promises are checked as the run goes and at its end (see [`check`]): at most one live post
//! per job and no init while another attempt of the job may still post (TikTok's own view), no
//! upstream limit overspent, no poll of a job past its horizon, an audit trail of bounded size,
//! and every job terminal or parked with a reason within the run's simulated time.

pub mod check;
pub mod clock;
pub mod exec;
pub mod faults;
pub mod queue;
pub mod run;
pub mod ssemble;
pub mod tiktok;

pub use run::{Config, Report, run};
