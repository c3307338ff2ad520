//! Per-job cost, cold start and footprint, reconciler scaling and publisher memory benchmarks.
//!
//! Every figure is measured in one run of `reelay-bench-micro` and printed next to its baseline
//! and goal (see README.md); nothing here is a timed test.

#[cfg(feature = "bench")]
pub mod bill;
#[cfg(feature = "bench")]
pub mod coldstart;
#[cfg(feature = "bench")]
pub mod cost;
#[cfg(feature = "bench")]
pub mod lambdalog;
#[cfg(feature = "bench")]
pub mod meter;
#[cfg(feature = "bench")]
pub mod prices;
#[cfg(feature = "bench")]
pub mod procfs;
#[cfg(feature = "bench")]
pub mod pubmem;
#[cfg(feature = "bench")]
pub mod reconcile;
#[cfg(feature = "bench")]
pub mod report;
#[cfg(feature = "bench")]
pub mod ssemble_reads;
#[cfg(feature = "bench")]
pub mod stackrun;
#[cfg(feature = "bench")]
pub mod storage;
