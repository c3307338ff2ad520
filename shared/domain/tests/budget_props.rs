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

/// Takers read the tally, plan, and write later, interleaved in any order; a write whose
/// condition no longer holds re-plans on the stored tally (as DynamoDB's failure returns it).
/// Whatever the interleaving, no window of buckets ever counts more than the limit.
fn interleaved(reads: &[(u64, usize)], limit: u32) -> (Vec<i64>, u32) {
    use reelay_domain::budget::{BUCKETS, Step, still_admits};
    let window = reelay_domain::budget::Window::new(limit, Duration::from_secs(60));
    let width = window.width_ms();
    let mut stored: Option<Tally> = None;
    // Each taker: (its now, the tally it read, its planned step).
    let mut pending: Vec<(UtcTime, Option<Tally>, Step)> = Vec::new();
    let mut granted_buckets = Vec::new();
    let mut refused = 0;
    for (at_ms, writes_after) in reads {
        let now = UtcTime::from_millis(*at_ms as i64);
        if let Ok((step, _)) = window.plan(stored.as_ref(), 1, now) {
            pending.push((now, stored.clone(), step));
        }
        // Some pending writes land now, oldest-read first or not.
        for _ in 0..(*writes_after).min(pending.len()) {
            let idx = (*at_ms as usize) % pending.len();
            let (now, mut seen, mut step) = pending.remove(idx);
            loop {
                if still_admits(stored.as_ref(), &step, seen.as_ref(), width) {
                    let tally = stored.get_or_insert_with(Tally::default);
                    tally.apply(&step);
                    granted_buckets.push(tally.hi);
                    break;
                }
                refused += 1;
                seen = stored.clone();
                match window.plan(seen.as_ref(), 1, now) {
                    Ok((next, _)) => step = next,
                    Err(_) => break,
                }
            }
        }
    }
    // Every bucket's window: the buckets counted with it.
    for b in &granted_buckets {
        let in_window = granted_buckets
            .iter()
            .filter(|x| **x <= *b && **x >= *b - BUCKETS)
            .count();
        assert!(
            in_window <= limit as usize,
            "{in_window} in the window ending at bucket {b}"
        );
    }
    (granted_buckets, refused)
}

proptest! {
    #[test]
    fn stale_reads_written_in_any_order_never_overspend(
        steps in prop::collection::vec((0_u64..2_000, 0_usize..4), 1..200),
        limit in 1_u32..12,
    ) {
        let mut at = 1_000_000_u64;
        let reads: Vec<(u64, usize)> = steps
            .iter()
            .map(|(gap, writes)| {
                at += gap;
                (at, *writes)
            })
            .collect();
        let (granted, _) = interleaved(&reads, limit);
        prop_assert!(granted.len() <= reads.len());
    }
}

#[test]
fn takers_adding_to_one_bucket_never_refuse_each_other_while_there_is_room() {
    // Ten takers read the same open bucket, then all write: ten grants, no re-plan.
    let mut reads: Vec<(u64, usize)> = vec![(1_000_000, 1)];
    reads.extend((0..10).map(|i| (1_000_001 + i, 0)));
    reads.push((1_000_020, 20));
    let (granted, refused) = interleaved(&reads, 20);
    assert_eq!((granted.len(), refused), (12, 0));
}
