//! In-memory adapters for every Reelay port, for fast deterministic tests of the use cases and
//! for the deterministic simulation: [`MemStore`] (every table-backed port, with the DynamoDB
//! adapter's conditions), [`MemQueue`] (SQS FIFO's dedup and groups), [`ManualClock`] (settable
//! time, seeded entropy), [`MemVault`], and the scripted fakes [`FakeTikTok`] and
//! [`FakeSsemble`]. Every adapter can await a [`Hook`] before each call (yield points, outages,
//! lost responses); [`World`] wires them into a [`MemCore`]. No tokio, AWS or HTTP.
//!
//! See the crate's README for what each adapter guarantees.

pub mod clock;
pub mod contract;
pub mod hook;
pub mod outbound;
pub mod queue;
pub mod sample;
pub mod ssemble;
pub mod store;
pub mod tiktok;
pub mod vault;
pub mod world;

pub use clock::ManualClock;
pub use hook::{Fault, Faults, Hook, HookFuture, HookSlot, calls, yield_once};
pub use outbound::{MemDeliveries, Pending, Received, ScriptedReceiver};
pub use queue::{Dedup, MemQueue, Queued, Sent};
pub use ssemble::{FakeSsemble, SsembleCall};
pub use store::{MemStore, WriteCounts};
pub use tiktok::{FakeTikTok, InitCall, Recorded, TikTokCall, token_tag};
pub use vault::MemVault;
pub use world::{
    AccountSetup, JobSetup, MemAdapters, MemCore, World, account_id, api_key, tenant_id,
};

/// Runs a future to completion on the current thread (`futures`' executor; no tokio).
pub use futures::executor::block_on;
