//! The budget with its margin, against an upstream that counts a call when it arrives.

use std::time::Duration;

use proptest::prelude::*;
use reelay_domain::UtcTime;
use reelay_domain::budget::{BudgetKind, Limits, Tally};

/// Takes at `attempts` (ms, ascending) against TikTok's init window with `margin`; returns the
/// granted instants.
fn granted(attempts: &[u64], margin: Duration) -> Vec<UtcTime> {
    let limits = Limits {
        window_margin: margin,
        ..Limits::default()
    };
    let window = limits.window(BudgetKind::TikTokInit);
    let mut tally: Option<Tally> = None;
    let mut log = Vec::new();
    for ms in attempts {
        let now = UtcTime::from_millis(*ms as i64);
        if let Ok((step, _)) = window.plan(tally.as_ref(), 1, now) {
            tally.get_or_insert_with(Tally::default).apply(&step);
            log.push(now);
        }
    }
    log
}

fn ascending(gaps: &[u64]) -> Vec<u64> {
    let mut at = 1_000_000_u64;
    gaps.iter()
        .map(|g| {
            at += g;
            at
        })
        .collect()
}

proptest! {
    #[test]
    fn the_window_is_never_overspent_and_every_take_waits_out_the_margin(
        gaps in prop::collection::vec(0_u64..15_000, 1..120),
        margin_ms in 0_u64..2_000,
    ) {
        let margin = Duration::from_millis(margin_ms);
        let limit = Limits::default().tiktok_init.limit as usize;
        let period = Limits::default().tiktok_init.period;
        let log = granted(&ascending(&gaps), margin);
        for pair in log.windows(limit + 1) {
            let (first, last) = (pair[0], pair[limit]);
            prop_assert!(
                last.since(first) >= period + margin,
                "take {last:?} only {:?} after the take {limit} before it",
                last.since(first)
            );
        }
    }

    #[test]
    fn calls_arriving_up_to_the_margin_late_never_overspend_the_upstream_window(
        gaps in prop::collection::vec(0_u64..15_000, 1..120),
        delays in prop::collection::vec(0_u64..=1_000, 120),
    ) {
        // The default margin, and every call reaching TikTok between 0 and 1 s after its take.
        let margin = Limits::default().window_margin;
        prop_assert_eq!(margin, Duration::from_secs(1));
        let upstream = Limits::default().documented(BudgetKind::TikTokInit);
        let log = granted(&ascending(&gaps), margin);
        let arrivals: Vec<u64> = log
            .iter()
            .zip(&delays)
            .map(|(t, d)| t.as_millis() as u64 + d)
            .collect();
        let period_ms = upstream.period.as_millis() as u64;
        for a in &arrivals {
            let seen = arrivals
                .iter()
                .filter(|b| **b <= *a && *b + period_ms > *a)
                .count();
            prop_assert!(seen <= upstream.limit as usize, "{seen} calls in one window at {a}");
        }
    }
}

#[test]
fn without_the_margin_a_late_call_can_overspend_the_upstream_window() {
    // The failure the margin exists for: six takes, the first at the end of its half-second
    // bucket, then a seventh as soon as that bucket has left the window, 60.001 s later; the
    // first reached TikTok 400 ms after its take, so TikTok counts seven in 60 s.
    let attempts: Vec<u64> = (0..6)
        .map(|i| 1_000_499 + i * 1_000)
        .chain([1_060_500])
        .collect();
    let no_margin = granted(&attempts, Duration::ZERO);
    assert_eq!(no_margin.len(), 7);
    let first_arrival = no_margin[0].as_millis() + 400;
    assert!(no_margin[6].as_millis() - first_arrival < 60_000);
    assert_eq!(granted(&attempts, Duration::from_secs(1)).len(), 6);
}
