//! Budgets: sliding windows over the instants of recent takes, as TikTok and Ssemble count them.
//! The arithmetic is here; the store takes a budget atomically with a conditional write.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::time::UtcTime;

/// `limit` takes in any `period`-long sliding window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub limit: u32,
    pub period: Duration,
}

impl Window {
    pub const fn new(limit: u32, period: Duration) -> Self {
        Self { limit, period }
    }

    /// The takes still inside the window at `now`, oldest first.
    pub fn live(&self, log: &[UtcTime], now: UtcTime) -> Vec<UtcTime> {
        let start = now.minus(self.period);
        let mut live: Vec<UtcTime> = log
            .iter()
            .copied()
            .filter(|t| *t > start && *t <= now)
            .collect();
        live.sort();
        live
    }

    /// Whether one more take fits at `now`; if not, the earliest instant it will.
    pub fn admit(&self, log: &[UtcTime], now: UtcTime) -> Admission {
        let live = self.live(log, now);
        let used = u32::try_from(live.len()).unwrap_or(u32::MAX);
        if used < self.limit {
            return Admission::Granted {
                remaining: self.limit - used - 1,
            };
        }
        // The take that must leave the window first.
        let idx = live.len().saturating_sub(self.limit as usize);
        let retry_at = live
            .get(idx)
            .map(|t| t.plus(self.period).plus(Duration::from_millis(1)))
            .unwrap_or(now);
        Admission::Denied { retry_at }
    }
}

/// The instant a take is counted at: `now`, or the latest take if that is later. Takers run on
/// machines with slightly different clocks and [`Window`] ignores takes later than `now`, so a
/// taker behind the others would overspend and drop their takes from the log it writes back;
/// counting from the latest take keeps the log monotonic and errs on the safe side. Every budget
/// store (and a peek, so that it answers what a take would) counts this way.
pub fn counted_at(log: &[UtcTime], now: UtcTime) -> UtcTime {
    log.iter()
        .copied()
        .max()
        .map_or(now, |latest| latest.max(now))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Granted { remaining: u32 },
    Denied { retry_at: UtcTime },
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
}

impl BudgetKind {
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
    /// Every take is counted as lasting its window's period plus this margin, so a call that
    /// reaches the upstream later than its take was stamped still finds the upstream's own
    /// window refilled (no self-inflicted 429). Applied by [`Limits::window`].
    #[serde(default = "default_window_margin")]
    pub window_margin: Duration,
}

fn default_window_margin() -> Duration {
    DEFAULT_WINDOW_MARGIN
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

    /// `kinds` in the order to take them: shortest window first (see
    /// [`crate::usecase::take_budgets_naming`]); equal windows keep their given order.
    pub fn take_order(&self, kinds: &[BudgetKind]) -> Vec<BudgetKind> {
        let mut ordered = kinds.to_vec();
        ordered.sort_by_key(|k| self.documented(*k).period);
        ordered
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
            window_margin: self.window_margin.div_f64(factor),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_taken_shortest_window_first() {
        let limits = Limits::default();
        let order = limits.take_order(&[
            BudgetKind::SsembleDaily,
            BudgetKind::SsembleHourly,
            BudgetKind::SsembleCreate,
        ]);
        assert_eq!(
            order,
            vec![
                BudgetKind::SsembleCreate,
                BudgetKind::SsembleHourly,
                BudgetKind::SsembleDaily
            ]
        );
        let periods: Vec<_> = order.iter().map(|k| limits.window(*k).period).collect();
        assert!(periods.windows(2).all(|p| p[0] <= p[1]), "{periods:?}");
    }

    fn t(s: i64) -> UtcTime {
        UtcTime::from_secs(s)
    }

    #[test]
    fn a_full_window_denies_until_its_oldest_take_leaves() {
        let w = Window::new(6, MINUTE);
        let log: Vec<UtcTime> = (0..6).map(|i| t(100 + i * 5)).collect();
        assert_eq!(
            w.admit(&log, t(130)),
            Admission::Denied {
                retry_at: t(160).plus(Duration::from_millis(1))
            }
        );
        assert!(matches!(
            w.admit(&log, t(161)),
            Admission::Granted { remaining: 0 }
        ));
    }

    #[test]
    fn the_window_slides_rather_than_resetting_on_a_boundary() {
        // A fixed per-minute counter would allow 12 takes around a minute boundary.
        let w = Window::new(6, MINUTE);
        let log: Vec<UtcTime> = (0..6).map(|i| t(55 + i)).collect();
        assert!(matches!(w.admit(&log, t(61)), Admission::Denied { .. }));
    }

    #[test]
    fn takes_outside_the_window_do_not_count() {
        let w = Window::new(2, MINUTE);
        let log = vec![t(0), t(10), t(70)];
        assert_eq!(w.live(&log, t(75)), vec![t(70)]);
        assert!(matches!(
            w.admit(&log, t(75)),
            Admission::Granted { remaining: 0 }
        ));
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
        // Six takes 10 s apart: the seventh waits until 60 s + margin after the first.
        let log: Vec<UtcTime> = (0..6).map(|i| t(100 + i * 10)).collect();
        let w = l.window(BudgetKind::TikTokInit);
        assert_eq!(
            w.admit(&log, t(160)),
            Admission::Denied {
                retry_at: t(161).plus(Duration::from_millis(1))
            }
        );
        let scaled = l.time_scaled(60.0);
        assert_eq!(scaled.window_margin, DEFAULT_WINDOW_MARGIN.div_f64(60.0));
    }

    #[test]
    fn the_default_margin_keeps_the_reachable_rate_at_least_097_of_the_allowed_one() {
        let l = Limits::default();
        for kind in [
            BudgetKind::TikTokInit,
            BudgetKind::TikTokStatus,
            BudgetKind::TikTokCreatorInfo,
            BudgetKind::SsembleCreate,
        ] {
            let documented = l.documented(kind).period.as_secs_f64();
            let admitted = l.window(kind).period.as_secs_f64();
            assert!(
                documented / admitted >= 0.97,
                "{kind:?}: {documented} / {admitted}"
            );
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
