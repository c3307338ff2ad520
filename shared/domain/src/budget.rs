//! Budgets: sliding windows as TikTok and Ssemble count them, kept as a tally of takes per
//! bucket so that a take is one conditional write that concurrent takers do not race on.
//!
//! A window's period is cut into [`BUCKETS`] buckets; a take is counted in the bucket of its
//! instant, and a bucket counts as inside the window until the whole of it has left. A take
//! therefore blocks for between `period` and `period + width` — never less, so the upstream's
//! sliding window is never overspent — and at most `1 / BUCKETS` of the rate is given up.
//! Only the latest bucket (`hi`) ever changes: a take in it is an increment the store checks
//! against the room the older buckets leave (no lost race while it fits); a take in a newer
//! bucket rewrites the tally, conditional on `hi` and its count as read. The arithmetic is here;
//! the stores only apply a [`Step`] atomically.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::UtcTime;

/// Buckets per window period. 120 gives a minute window half-second buckets (at most 1/120 of
/// the rate given up; with the 1 s margin TikTok's 6 inits a minute stay above 0.97 of the
/// allowed rate) and keeps a tally at most 121 counts however large the limit: a daily window
/// of 1,000 is at most 121 numbers, not 1,000 instants.
pub const BUCKETS: i64 = 120;

/// `limit` takes in any `period`-long sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub limit: u32,
    pub period: Duration,
}

/// One window's takes as stored: counts per bucket of `width_ms` milliseconds; `hi` is the
/// latest bucket taken in (the only one that may still grow). Empty when nothing was taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub width_ms: i64,
    pub hi: i64,
    pub counts: BTreeMap<i64, u32>,
}

/// How a granted take changes a tally; what the store writes, all windows of a take at once.
/// Each carries the condition the store checks, so a write made on a stale read fails instead
/// of overspending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Add `units` to bucket `bucket` (the tally's `hi`), provided it still holds at most
    /// `max_before`: concurrent takers in one bucket all succeed while the room lasts.
    Add {
        bucket: i64,
        units: u32,
        max_before: u32,
    },
    /// Open bucket `bucket` with `units` and drop the buckets that left the window, provided
    /// the latest bucket is still `seen_hi` and (when it is still inside the window) holds at
    /// most `max_at_hi`: takers still adding to it only fail this one if they took its room.
    Open {
        bucket: i64,
        units: u32,
        seen_hi: i64,
        max_at_hi: Option<u32>,
        drop: Vec<i64>,
    },
    /// Write `next` as the whole tally, provided the stored one is still as read (none stored,
    /// or stored in buckets of another width): rare, so a compare-and-set is enough.
    Replace { next: Tally },
}

/// A take refused: which budget, and the earliest instant every window of the take admits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied {
    pub kind: BudgetKind,
    pub retry_at: UtcTime,
}

impl Window {
    pub const fn new(limit: u32, period: Duration) -> Self {
        Self { limit, period }
    }

    /// The bucket width: the period cut into [`BUCKETS`], rounded up (never below 1 ms).
    pub fn width_ms(&self) -> i64 {
        let period = i64::try_from(self.period.as_millis()).unwrap_or(i64::MAX / 2);
        ((period + BUCKETS - 1) / BUCKETS).max(1)
    }

    /// What a take of `units` would answer at `now`, without taking.
    pub fn admit(&self, stored: Option<&Tally>, units: u32, now: UtcTime) -> Admission {
        match self.plan(stored, units, now) {
            Ok((_, remaining)) => Admission::Granted { remaining },
            Err(retry_at) => Admission::Denied { retry_at },
        }
    }

    /// The step that takes `units` at `now` and the units left after it, or the earliest
    /// instant the take would fit. A tally whose `hi` is later than `now` (a taker whose clock
    /// lags) is taken in at `hi`: a lagging clock neither overspends nor drops others' takes.
    pub fn plan(
        &self,
        stored: Option<&Tally>,
        units: u32,
        now: UtcTime,
    ) -> Result<(Step, u32), UtcTime> {
        let width = self.width_ms();
        let tally = stored.map(|t| t.rebucketed(width)).unwrap_or_default();
        let bucket = now.as_millis().div_euclid(width);
        let opened = !tally.counts.is_empty();
        let bucket = if opened { bucket.max(tally.hi) } else { bucket };
        let live: BTreeMap<i64, u32> = tally
            .counts
            .range(bucket - BUCKETS..=bucket)
            .map(|(b, n)| (*b, *n))
            .collect();
        let used: u64 = live.values().map(|n| u64::from(*n)).sum();
        let fits = used + u64::from(units) <= u64::from(self.limit);
        if !fits {
            return Err(self.retry_at(&live, used, units, now));
        }
        let remaining = u32::try_from(u64::from(self.limit) - used - u64::from(units)).unwrap_or(0);
        let same_width = stored.is_some_and(|s| s.width_ms == width);
        let step = if opened && same_width && bucket == tally.hi {
            let current = live.get(&bucket).copied().unwrap_or(0);
            let older = u32::try_from(used).unwrap_or(u32::MAX) - current;
            Step::Add {
                bucket,
                units,
                max_before: self.limit - units - older,
            }
        } else if opened && same_width {
            let at_hi = live.get(&tally.hi).copied();
            let others = u32::try_from(used).unwrap_or(u32::MAX) - at_hi.unwrap_or(0);
            Step::Open {
                bucket,
                units,
                seen_hi: tally.hi,
                max_at_hi: at_hi.map(|_| self.limit - units - others),
                drop: tally
                    .counts
                    .keys()
                    .copied()
                    .filter(|b| *b < bucket - BUCKETS)
                    .collect(),
            }
        } else {
            let mut counts = live;
            *counts.entry(bucket).or_insert(0) += units;
            Step::Replace {
                next: Tally {
                    width_ms: width,
                    hi: bucket,
                    counts,
                },
            }
        };
        Ok((step, remaining))
    }

    /// The first instant enough of the oldest buckets have left for `units` more.
    fn retry_at(&self, live: &BTreeMap<i64, u32>, used: u64, units: u32, now: UtcTime) -> UtcTime {
        if units > self.limit {
            // Never fits; asked again a period later, the caller keeps waiting visibly.
            return now.plus(self.period);
        }
        let width = self.width_ms();
        let mut left = used;
        for (bucket, n) in live {
            left -= u64::from(*n);
            if left + u64::from(units) <= u64::from(self.limit) {
                return UtcTime::from_millis((bucket + BUCKETS + 1).saturating_mul(width));
            }
        }
        now.plus(self.period)
    }
}

impl Tally {
    /// The units counted in any bucket (what the store holds, live or not).
    pub fn total(&self) -> u64 {
        self.counts.values().map(|n| u64::from(*n)).sum()
    }

    /// This tally in buckets of `width` ms. A tally stored with another width (the limits were
    /// reconfigured) is folded into one bucket at the latest instant any of its takes can have
    /// had: never earlier than they were, so the change cannot overspend.
    fn rebucketed(&self, width: i64) -> Tally {
        if self.width_ms == width || self.counts.is_empty() {
            return Tally {
                width_ms: width,
                ..self.clone()
            };
        }
        let latest = (self.hi + 1).saturating_mul(self.width_ms.max(1)) - 1;
        let hi = latest.div_euclid(width);
        let total = u32::try_from(self.total()).unwrap_or(u32::MAX);
        Tally {
            width_ms: width,
            hi,
            counts: BTreeMap::from([(hi, total)]),
        }
    }

    /// Applies a granted step (the in-memory store; DynamoDB expresses it as an update).
    pub fn apply(&mut self, step: &Step) {
        match step {
            Step::Add { bucket, units, .. } => {
                *self.counts.entry(*bucket).or_insert(0) += units;
            }
            Step::Open {
                bucket,
                units,
                drop,
                ..
            } => {
                for b in drop {
                    self.counts.remove(b);
                }
                self.counts.insert(*bucket, *units);
                self.hi = *bucket;
            }
            Step::Replace { next } => *self = next.clone(),
        }
    }
}

/// Whether `step`, planned on `seen`, may still be written over `current` (the tally stored
/// now, `None` if none): the condition every store's write checks, stated once.
pub fn still_admits(
    current: Option<&Tally>,
    step: &Step,
    seen: Option<&Tally>,
    width: i64,
) -> bool {
    let count = |t: &Tally, b: i64| t.counts.get(&b).copied().unwrap_or(0);
    match (step, current) {
        (
            Step::Add {
                bucket, max_before, ..
            },
            Some(c),
        ) => c.width_ms == width && c.hi == *bucket && count(c, *bucket) <= *max_before,
        (
            Step::Open {
                seen_hi, max_at_hi, ..
            },
            Some(c),
        ) => {
            c.width_ms == width
                && c.hi == *seen_hi
                && max_at_hi.is_none_or(|max| count(c, c.hi) <= max)
        }
        (Step::Replace { .. }, None) => seen.is_none(),
        (Step::Replace { .. }, Some(c)) => seen.is_some_and(|s| {
            s.width_ms == c.width_ms && s.hi == c.hi && count(s, s.hi) == count(c, c.hi)
        }),
        (Step::Add { .. } | Step::Open { .. }, None) => false,
    }
}

/// Plans a take of `units` of every window in `windows` at once: each window's step, or the
/// refusal of the window that admits it latest (nothing is taken from any window then).
pub fn plan_take(
    windows: &[(BudgetKind, Window)],
    stored: &BTreeMap<BudgetKind, Tally>,
    units: u32,
    now: UtcTime,
) -> Result<Vec<(BudgetKind, Step)>, Denied> {
    let mut steps = Vec::with_capacity(windows.len());
    let mut denied: Option<Denied> = None;
    for (kind, window) in windows {
        match window.plan(stored.get(kind), units, now) {
            Ok((step, _)) => steps.push((*kind, step)),
            Err(retry_at) => {
                if denied.is_none_or(|d| retry_at > d.retry_at) {
                    denied = Some(Denied {
                        kind: *kind,
                        retry_at,
                    });
                }
            }
        }
    }
    match denied {
        Some(d) => Err(d),
        None => Ok(steps),
    }
}

/// What a take would answer: the units left after it, or when it would fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Granted { remaining: u32 },
    Denied { retry_at: UtcTime },
}

impl Admission {
    /// Units that can be taken now (the peeked take included): what a client is shown.
    pub fn units_left(&self) -> u32 {
        match self {
            Self::Granted { remaining } => remaining.saturating_add(1),
            Self::Denied { .. } => 0,
        }
    }
}

/// What a budget counts. Each is kept per account (TikTok, per token) or per API key (Ssemble).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    TikTokInit,
    TikTokStatus,
    TikTokCreatorInfo,
    /// Direct posts per creator per rolling 24 h (TikTok: "typically around 15").
    DirectPostsDaily,
    /// Pending inbox drafts per rolling 24 h (TikTok: at most 5).
    PendingDrafts,
    SsembleCreate,
    SsembleStatus,
    SsembleList,
    SsembleHourly,
    SsembleDaily,
    /// Requests a tenant makes to Reelay's own API (answered 429 past it).
    TenantApi,
    /// A tenant's guaranteed share of the Ssemble key's hourly and daily creates.
    SsembleShareHourly,
    SsembleShareDaily,
}

impl BudgetKind {
    pub const ALL: [BudgetKind; 13] = [
        Self::TikTokInit,
        Self::TikTokStatus,
        Self::TikTokCreatorInfo,
        Self::DirectPostsDaily,
        Self::PendingDrafts,
        Self::SsembleCreate,
        Self::SsembleStatus,
        Self::SsembleList,
        Self::SsembleHourly,
        Self::SsembleDaily,
        Self::TenantApi,
        Self::SsembleShareHourly,
        Self::SsembleShareDaily,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::TikTokInit => "tiktok_init",
            Self::TikTokStatus => "tiktok_status",
            Self::TikTokCreatorInfo => "tiktok_creator_info",
            Self::DirectPostsDaily => "direct_posts_daily",
            Self::PendingDrafts => "pending_drafts",
            Self::SsembleCreate => "ssemble_create",
            Self::SsembleStatus => "ssemble_status",
            Self::SsembleList => "ssemble_list",
            Self::SsembleHourly => "ssemble_hourly",
            Self::SsembleDaily => "ssemble_daily",
            Self::TenantApi => "tenant_api",
            Self::SsembleShareHourly => "ssemble_share_hourly",
            Self::SsembleShareDaily => "ssemble_share_daily",
        }
    }
}

/// Default of [`Limits::window_margin`]. A take is stamped on Reelay's clock before the call
/// leaves (one conditional write, then the request); the upstream counts the call when it
/// arrives, in whole seconds at worst. 1 s covers that spread with room, and costs at most
/// 1/61 of TikTok's 6-per-60 s init rate (≥ 0.98 of the allowed rate is still reachable).
pub const DEFAULT_WINDOW_MARGIN: Duration = Duration::from_secs(1);

/// The documented limits, as configuration (tiktok-api.md §5, ssemble-api.md §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub tiktok_init: Window,
    pub tiktok_status: Window,
    pub tiktok_creator_info: Window,
    pub direct_posts_daily: Window,
    pub pending_drafts: Window,
    pub ssemble_create: Window,
    pub ssemble_status: Window,
    pub ssemble_list: Window,
    pub ssemble_hourly: Window,
    pub ssemble_daily: Window,
    /// Requests per tenant to Reelay's API (`API_RATE_LIMIT_PER_MINUTE`).
    #[serde(default = "default_tenant_api")]
    pub tenant_api: Window,
    /// Every take is counted as lasting its window's period plus this margin, so a call that
    /// reaches the upstream later than its take was stamped still finds the upstream's own
    /// window refilled (no self-inflicted 429). Applied by [`Limits::window`].
    #[serde(default = "default_window_margin")]
    pub window_margin: Duration,
}

fn default_window_margin() -> Duration {
    DEFAULT_WINDOW_MARGIN
}

/// 1,200 requests a minute per tenant: 20 a second, a batch of 100 creates being one request.
fn default_tenant_api() -> Window {
    Window::new(1_200, Duration::from_secs(60))
}

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86_400);

impl Default for Limits {
    fn default() -> Self {
        Self {
            tiktok_init: Window::new(6, MINUTE),
            tiktok_status: Window::new(30, MINUTE),
            tiktok_creator_info: Window::new(20, MINUTE),
            direct_posts_daily: Window::new(15, DAY),
            pending_drafts: Window::new(5, DAY),
            ssemble_create: Window::new(500, MINUTE),
            ssemble_status: Window::new(500, MINUTE),
            ssemble_list: Window::new(500, MINUTE),
            ssemble_hourly: Window::new(100, HOUR),
            ssemble_daily: Window::new(1000, DAY),
            tenant_api: default_tenant_api(),
            window_margin: DEFAULT_WINDOW_MARGIN,
        }
    }
}

impl Limits {
    /// The window a take of `kind` is admitted against: the documented one, its period
    /// lengthened by [`Limits::window_margin`].
    pub fn window(&self, kind: BudgetKind) -> Window {
        let w = self.documented(kind);
        Window::new(w.limit, w.period.saturating_add(self.window_margin))
    }

    /// The upstream's own window of `kind`, without the margin.
    pub fn documented(&self, kind: BudgetKind) -> Window {
        match kind {
            BudgetKind::TikTokInit => self.tiktok_init,
            BudgetKind::TikTokStatus => self.tiktok_status,
            BudgetKind::TikTokCreatorInfo => self.tiktok_creator_info,
            BudgetKind::DirectPostsDaily => self.direct_posts_daily,
            BudgetKind::PendingDrafts => self.pending_drafts,
            BudgetKind::SsembleCreate => self.ssemble_create,
            BudgetKind::SsembleStatus => self.ssemble_status,
            BudgetKind::SsembleList => self.ssemble_list,
            BudgetKind::SsembleHourly => self.ssemble_hourly,
            BudgetKind::SsembleDaily => self.ssemble_daily,
            BudgetKind::TenantApi => self.tenant_api,
            // A share is a part of the key's window; `usecase::budgets` sizes it.
            BudgetKind::SsembleShareHourly => self.ssemble_hourly,
            BudgetKind::SsembleShareDaily => self.ssemble_daily,
        }
    }

    /// Scales every period and the margin, so a simulator's compressed clock and Reelay agree
    /// in tests.
    pub fn time_scaled(&self, factor: f64) -> Self {
        let factor = factor.max(f64::MIN_POSITIVE);
        let s = |w: Window| Window::new(w.limit, w.period.div_f64(factor));
        Self {
            tiktok_init: s(self.tiktok_init),
            tiktok_status: s(self.tiktok_status),
            tiktok_creator_info: s(self.tiktok_creator_info),
            direct_posts_daily: s(self.direct_posts_daily),
            pending_drafts: s(self.pending_drafts),
            ssemble_create: s(self.ssemble_create),
            ssemble_status: s(self.ssemble_status),
            ssemble_list: s(self.ssemble_list),
            ssemble_hourly: s(self.ssemble_hourly),
            ssemble_daily: s(self.ssemble_daily),
            tenant_api: s(self.tenant_api),
            window_margin: self.window_margin.div_f64(factor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> UtcTime {
        UtcTime::from_secs(s)
    }

    /// Takes one unit at each instant, applying what is granted; the granted instants.
    fn take_all(w: Window, at: &[UtcTime]) -> (Tally, Vec<UtcTime>) {
        let mut tally: Option<Tally> = None;
        let mut granted = Vec::new();
        for now in at {
            if let Ok((step, _)) = w.plan(tally.as_ref(), 1, *now) {
                tally.get_or_insert_with(Tally::default).apply(&step);
                granted.push(*now);
            }
        }
        (tally.unwrap_or_default(), granted)
    }

    #[test]
    fn a_full_window_denies_until_its_oldest_bucket_leaves() {
        let w = Window::new(6, MINUTE);
        assert_eq!(w.width_ms(), 500);
        let at: Vec<UtcTime> = (0..6).map(|i| t(100 + i * 5)).collect();
        let (tally, granted) = take_all(w, &at);
        assert_eq!(granted.len(), 6);
        // The bucket [100 s, 100.5 s) leaves once the window's first bucket starts at 100.5 s.
        assert_eq!(
            w.admit(Some(&tally), 1, t(130)),
            Admission::Denied {
                retry_at: UtcTime::from_millis(160_500)
            }
        );
        assert_eq!(
            w.admit(Some(&tally), 1, UtcTime::from_millis(160_500)),
            Admission::Granted { remaining: 0 }
        );
        // Two units wait for the second take's bucket.
        assert_eq!(
            w.admit(Some(&tally), 2, t(161)),
            Admission::Denied {
                retry_at: UtcTime::from_millis(165_500)
            }
        );
    }

    #[test]
    fn the_window_slides_rather_than_resetting_on_a_boundary() {
        // A fixed per-minute counter would allow 12 takes around a minute boundary.
        let w = Window::new(6, MINUTE);
        let at: Vec<UtcTime> = (0..12).map(|i| t(55 + i)).collect();
        let (_, granted) = take_all(w, &at);
        assert_eq!(granted.len(), 6);
    }

    #[test]
    fn takes_in_the_latest_bucket_are_increments_and_a_new_bucket_is_opened_on_the_latest() {
        let w = Window::new(3, MINUTE);
        let now = UtcTime::from_millis(100_200);
        let (first, _) = w.plan(None, 1, now).unwrap_or_else(|e| panic!("{e:?}"));
        let Step::Replace { next } = first else {
            panic!("{first:?}")
        };
        assert_eq!((next.hi, next.total()), (200, 1));
        // Same bucket: an increment allowed while the bucket holds at most 2 (nothing older).
        let (second, remaining) = w
            .plan(Some(&next), 1, now.plus(Duration::from_millis(200)))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            second,
            Step::Add {
                bucket: 200,
                units: 1,
                max_before: 2
            }
        );
        assert_eq!(remaining, 1);
        // The next bucket: opened on the latest one as long as it keeps the room (<= 2).
        let (third, _) = w
            .plan(Some(&next), 1, t(101))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            third,
            Step::Open {
                bucket: 202,
                units: 1,
                seen_hi: 200,
                max_at_hi: Some(2),
                drop: vec![]
            }
        );
        let mut later = next.clone();
        later.apply(&third);
        assert_eq!(later.counts, BTreeMap::from([(200, 1), (202, 1)]));
        // A minute on, the first bucket has left: it is dropped, and the latest one (202, still
        // inside) bounds the room.
        let (fourth, remaining) = w
            .plan(Some(&later), 1, t(161))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(
            fourth,
            Step::Open {
                bucket: 322,
                units: 1,
                seen_hi: 202,
                max_at_hi: Some(2),
                drop: vec![200]
            }
        );
        assert_eq!(remaining, 1);
        // Two minutes on, the latest bucket has left too: no bound on it.
        let (fifth, _) = w
            .plan(Some(&later), 1, t(300))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(
            matches!(fifth, Step::Open { max_at_hi: None, ref drop, .. } if drop == &vec![200, 202]),
            "{fifth:?}"
        );
    }

    #[test]
    fn a_lagging_taker_takes_in_the_latest_bucket() {
        let w = Window::new(2, MINUTE);
        let (tally, _) = take_all(w, &[t(130)]);
        let (step, _) = w
            .plan(Some(&tally), 1, t(100))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert!(matches!(step, Step::Add { bucket: 260, .. }), "{step:?}");
        let (tally, granted) = take_all(w, &[t(130), t(100), t(100)]);
        assert_eq!(granted.len(), 2);
        assert_eq!(tally.counts, BTreeMap::from([(260, 2)]));
    }

    #[test]
    fn a_tally_of_another_width_is_folded_into_its_latest_instant() {
        let minute = Window::new(6, MINUTE);
        let (tally, _) = take_all(minute, &[t(100), t(110), t(119)]);
        // Reconfigured to 6 per two minutes: 1 s buckets; the three takes count as at 119.499 s.
        let two = Window::new(6, 2 * MINUTE);
        let (step, remaining) = two
            .plan(Some(&tally), 1, t(150))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(remaining, 2);
        let Step::Replace { next } = step else {
            panic!("{step:?}")
        };
        assert_eq!(next.counts, BTreeMap::from([(119, 3), (150, 1)]));
    }

    #[test]
    fn a_take_of_several_windows_is_refused_whole_by_the_latest_refusal() {
        let minute = Window::new(1, MINUTE);
        let hour = Window::new(1, HOUR);
        let stored = BTreeMap::from([
            (BudgetKind::SsembleCreate, take_all(minute, &[t(0)]).0),
            (BudgetKind::SsembleHourly, take_all(hour, &[t(0)]).0),
        ]);
        let windows = [
            (BudgetKind::SsembleCreate, minute),
            (BudgetKind::SsembleHourly, hour),
            (BudgetKind::SsembleDaily, Window::new(10, DAY)),
        ];
        let denied = plan_take(&windows, &stored, 1, t(10)).err();
        assert_eq!(
            denied,
            Some(Denied {
                kind: BudgetKind::SsembleHourly,
                retry_at: t(3_630)
            })
        );
        let granted = plan_take(&windows, &stored, 1, t(3_630)).unwrap_or_default();
        assert_eq!(granted.len(), 3);
    }

    #[test]
    fn more_units_than_the_limit_never_fit() {
        let w = Window::new(2, MINUTE);
        assert_eq!(
            w.admit(None, 3, t(10)),
            Admission::Denied { retry_at: t(70) }
        );
    }

    #[test]
    fn a_tally_never_holds_more_than_a_window_of_buckets() {
        let w = Window::new(1_000, DAY);
        let at: Vec<UtcTime> = (0..5_000).map(|i| t(i * 97)).collect();
        let (tally, granted) = take_all(w, &at);
        assert!(
            tally.counts.len() <= (BUCKETS + 1) as usize,
            "{}",
            tally.counts.len()
        );
        assert!(granted.len() >= 1_000);
    }

    #[test]
    fn scaling_shrinks_periods_not_limits() {
        let l = Limits::default().time_scaled(60.0);
        assert_eq!(l.tiktok_init, Window::new(6, Duration::from_secs(1)));
        assert_eq!(l.window(BudgetKind::PendingDrafts).limit, 5);
    }

    #[test]
    fn the_margin_lengthens_every_window_it_admits_against() {
        let l = Limits::default();
        assert_eq!(l.documented(BudgetKind::TikTokInit), Window::new(6, MINUTE));
        assert_eq!(
            l.window(BudgetKind::TikTokInit),
            Window::new(6, MINUTE + DEFAULT_WINDOW_MARGIN)
        );
        // Six takes 10 s apart: the seventh waits until 60 s + margin after the first, and at
        // most one bucket (61 s / 60) longer.
        let at: Vec<UtcTime> = (0..6).map(|i| t(100 + i * 10)).collect();
        let w = l.window(BudgetKind::TikTokInit);
        let (tally, _) = take_all(w, &at);
        let Admission::Denied { retry_at } = w.admit(Some(&tally), 1, t(160)) else {
            panic!("the seventh take was granted")
        };
        assert!(retry_at >= t(161), "{retry_at}");
        assert!(
            retry_at <= t(161).plus(Duration::from_millis(1_017)),
            "{retry_at}"
        );
        let scaled = l.time_scaled(60.0);
        assert_eq!(scaled.window_margin, DEFAULT_WINDOW_MARGIN.div_f64(60.0));
    }

    #[test]
    fn at_saturation_the_default_margin_and_buckets_reach_097_of_the_allowed_rate() {
        // A taker trying every 10 ms for an hour: what each window lets through, against what
        // the upstream allows in that hour.
        let l = Limits::default();
        let hour: Vec<UtcTime> = (0..360_000).map(|i| UtcTime::from_millis(i * 10)).collect();
        for kind in [
            BudgetKind::TikTokInit,
            BudgetKind::TikTokStatus,
            BudgetKind::TikTokCreatorInfo,
        ] {
            let documented = l.documented(kind);
            let (_, granted) = take_all(l.window(kind), &hour);
            let allowed = f64::from(documented.limit) * 3_600.0 / documented.period.as_secs_f64();
            let share = granted.len() as f64 / allowed;
            assert!(share >= 0.97, "{kind:?}: {} of {allowed}", granted.len());
        }
    }

    #[test]
    fn a_limits_document_without_a_margin_gets_the_default() {
        let mut doc = serde_json::to_value(Limits::default()).unwrap_or_default();
        if let Some(m) = doc.as_object_mut() {
            m.remove("window_margin");
        }
        let l: Limits = serde_json::from_value(doc).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(l.window_margin, DEFAULT_WINDOW_MARGIN);
    }
}
