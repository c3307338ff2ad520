use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// When the caller's time runs out (a Lambda's invocation deadline, less its margins). Every
/// request made under it waits at most min(its own timeout, what is left), and none starts once
/// nothing is left, so no call outlives the invocation that must record its result.
///
/// A wall-clock deadline is turned into a monotonic instant once, when the call starts: a clock
/// step during an upload can neither stretch nor cut it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    /// No deadline: each request has only its own timeout.
    pub const NONE: Self = Self(None);

    pub fn at(instant: Instant) -> Self {
        Self(Some(instant))
    }

    /// `after` from now.
    pub fn after(after: Duration) -> Self {
        Self(Instant::now().checked_add(after))
    }

    /// A wall-clock deadline in Unix milliseconds (the domain's `UtcTime`); one in the past has
    /// nothing left.
    pub fn at_unix_millis(ms: i64) -> Self {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let left = u64::try_from(ms.saturating_sub(now_ms)).unwrap_or(0);
        Self::after(Duration::from_millis(left))
    }

    /// What is left, `None` when there is no deadline.
    pub fn remaining(&self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    pub fn has_passed(&self) -> bool {
        self.remaining().is_some_and(|d| d.is_zero())
    }

    /// The timeout for one request: min(`timeout`, what is left); `None` when nothing is left.
    pub fn bound(&self, timeout: Duration) -> Option<Duration> {
        match self.remaining() {
            None => Some(timeout),
            Some(left) if left.is_zero() => None,
            Some(left) => Some(timeout.min(left)),
        }
    }

    /// Whether more than `wait` is left (a backoff that would end past the deadline is not slept).
    pub fn leaves(&self, wait: Duration) -> bool {
        self.remaining().is_none_or(|left| left > wait)
    }

    /// Runs `work` until the deadline; `None` if the deadline came first.
    pub(crate) async fn run<F: std::future::Future>(&self, work: F) -> Option<F::Output> {
        match self.0 {
            None => Some(work.await),
            Some(at) => tokio::time::timeout_at(at, work).await.ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_time_is_left_should_bound_each_timeout_by_it() {
        let d = Deadline::after(Duration::from_secs(3600));
        let t = d.bound(Duration::from_secs(30)).unwrap();
        assert_eq!(t, Duration::from_secs(30));
        let short = Deadline::after(Duration::from_secs(2)).bound(Duration::from_secs(300));
        assert!(short.unwrap() <= Duration::from_secs(2));
        assert_eq!(
            Deadline::NONE.bound(Duration::from_secs(300)),
            Some(Duration::from_secs(300))
        );
        assert!(!Deadline::NONE.has_passed());
        assert!(Deadline::NONE.leaves(Duration::from_secs(3600)));
        assert!(!Deadline::after(Duration::from_secs(2)).leaves(Duration::from_secs(10)));
        assert!(Deadline::after(Duration::from_secs(3600)).leaves(Duration::from_secs(10)));
    }

    #[test]
    fn when_the_wall_clock_deadline_is_past_should_leave_nothing() {
        let now_ms = i64::try_from(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap();
        for past in [now_ms - 1, now_ms - 60_000, 0, i64::MIN] {
            let d = Deadline::at_unix_millis(past);
            assert!(d.has_passed(), "{past}");
            assert_eq!(d.bound(Duration::from_secs(30)), None);
        }
        let later = Deadline::at_unix_millis(now_ms + 3_600_000);
        assert!(!later.has_passed());
        assert!(later.remaining().unwrap() > Duration::from_secs(3500));
        assert!(!Deadline::at_unix_millis(i64::MAX).has_passed());
    }
}
