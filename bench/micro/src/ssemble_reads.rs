//! Ssemble calls per render (issue 13): the cost run's own count, read from the Ssemble
//! simulator (webhooks delivered), and the poll fallback for a render whose webhook never comes,
//! stepped through the lifecycle's own poll schedule (`Policy::poll_after`). These are calls on
//! the stage's one Ssemble key (a standard key: 100 an hour), not AWS dollars.

use std::time::Duration;

use reelay_domain::lifecycle::Policy;
use reelay_local::summary::SsembleCalls;

use crate::report::{Row, Verdict};
use crate::stackrun::RunResult;

/// Issue 13's goal: at most 1.2 reads a render beyond its create when webhooks arrive.
const MAX_READS_PER_RENDER: f64 = 1.2;

/// Render durations the fallback is shown for, in minutes.
const RENDER_MINUTES: [u64; 5] = [3, 5, 10, 20, 30];

/// Without a webhook: the status polls a render of `render` gets (the first `render_poll_min`
/// after the create, then every fifth of its age within `render_poll_min..=render_poll_max`)
/// until one finds it done, plus the one document read; and how long after it finished that
/// poll came.
pub fn poll_fallback(policy: &Policy, render: Duration) -> (u32, Duration) {
    let mut at = policy.render_poll_min;
    let mut polls = 1;
    while at < render {
        at += policy.poll_after(at, policy.render_poll_min, policy.render_poll_max);
        polls += 1;
    }
    (polls + 1, at - render)
}

pub fn rows(r: &RunResult) -> Vec<Row> {
    let mut rows = Vec::new();
    let bench = "3 Ssemble calls a render";
    let calls = SsembleCalls::from_counts(&r.ssemble_by_endpoint);
    if calls.creates > 0 {
        let per = calls.reads as f64 / calls.creates as f64;
        rows.push(Row::new(
            bench,
            format!(
                "{:.2} reads a create ({} creates, {} reads; every call by endpoint: {})",
                per,
                calls.creates,
                calls.reads,
                r.ssemble_by_endpoint
                    .iter()
                    .map(|(e, n)| format!("{e} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!("≤ {MAX_READS_PER_RENDER} reads a render beyond its create, webhooks delivered"),
            Verdict::of(per <= MAX_READS_PER_RENDER),
            "measured: the Ssemble simulator's call log over the cost run (clock ×60: its 2 min first poll is 2 real seconds, so a webhook late on a loaded machine costs a poll)",
        ));
    } else {
        rows.push(Row::info(
            bench,
            "no render created in the run",
            "measured: the Ssemble simulator's call log",
        ));
    }
    let policy = Policy::default();
    let cells: Vec<String> = RENDER_MINUTES
        .iter()
        .map(|m| {
            let (reads, late) = poll_fallback(&policy, Duration::from_secs(m * 60));
            format!(
                "{m} min: {reads} reads, found {:.1} min late",
                late.as_secs_f64() / 60.0
            )
        })
        .collect();
    rows.push(Row::info(
        "3 Ssemble calls a render: no webhook",
        cells.join("; "),
        format!(
            "model from the code: Policy::default()'s poll schedule (first poll {} min after the create, then every fifth of the render's age within {}–{} min), each poll one status read, then one document read; at a standard key's 100 calls an hour, a render of 10 min without its webhook costs as much of the key as {} creates",
            policy.render_poll_min.as_secs() / 60,
            policy.render_poll_min.as_secs() / 60,
            policy.render_poll_max.as_secs() / 60,
            poll_fallback(&policy, Duration::from_secs(600)).0 + 1
        ),
    ));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_steps_through_the_policys_own_schedule() {
        let p = Policy::default();
        let min = |m: u64| Duration::from_secs(m * 60);
        // 2 min first poll, then 2 min steps while a fifth of the age is under 2 min.
        assert_eq!(poll_fallback(&p, min(1)), (2, min(1)));
        assert_eq!(poll_fallback(&p, min(2)), (2, Duration::ZERO));
        assert_eq!(poll_fallback(&p, min(5)), (4, min(1)));
        assert_eq!(poll_fallback(&p, min(10)), (6, Duration::ZERO));
        // Past 10 min the steps grow with the age (12, 14.4, 17.28, 20.736 min).
        let (reads, late) = poll_fallback(&p, min(20));
        assert_eq!(reads, 10);
        assert!((late.as_secs_f64() - 0.736 * 60.0).abs() < 1.0, "{late:?}");
    }
}
