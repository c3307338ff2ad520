//! Load benchmarks on the local stack: saturation against a naive baseline, isolation, scheduling
//! precision, a simulated day. Each benchmark runs the real pipeline (`reelay_local::Stack`) and
//! reads its figures from what the TikTok simulator received; `src/main.rs` prints them as one
//! table.

pub mod day;
pub mod harness;
pub mod isolation;
pub mod naive;
pub mod precision;
pub mod proxy;
pub mod report;
pub mod saturation;
pub mod stats;

/// The real wall clock in unix milliseconds: the clock `scheduleAt` and Reelay's budgets use.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
