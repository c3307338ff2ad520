//! [`ManualClock`]: simulated time and seeded randomness, shared by every clone.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reelay_domain::UtcTime;
use reelay_domain::ports::{Clock, Entropy};

use crate::hook::{Hook, HookSlot, calls};

/// Time that moves only when told to, and randomness from a seeded `StdRng`: the same seed and
/// the same calls give the same ids, tokens and states on every run.
///
/// `sleep(d)` returns at once with the clock at least `d` past the instant it was called (it
/// advances the clock unless something else already moved it that far while the hook was
/// pending), so a use case's waits cost nothing in a test.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<ClockState>>,
    hook: HookSlot,
}

#[derive(Debug)]
struct ClockState {
    now: UtcTime,
    rng: StdRng,
    slept: Duration,
    sleeps: u64,
}

/// 2026-03-10T18:00:00Z: the instant the specs' examples use.
pub const DEFAULT_START_MS: i64 = 1_773_165_600_000;

impl Default for ManualClock {
    fn default() -> Self {
        Self::new(UtcTime::from_millis(DEFAULT_START_MS), 0)
    }
}

impl ManualClock {
    pub fn new(start: UtcTime, seed: u64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(ClockState {
                now: start,
                rng: StdRng::seed_from_u64(seed),
                slept: Duration::ZERO,
                sleeps: 0,
            })),
            hook: HookSlot::default(),
        }
    }

    /// This clock (same time, same random stream) with `hook` awaited before every sleep.
    pub fn with_hook(&self, hook: Arc<dyn Hook>) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            hook: HookSlot::new(hook),
        }
    }

    fn state(&self) -> MutexGuard<'_, ClockState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current instant (also `Clock::now`, without importing the trait).
    pub fn now(&self) -> UtcTime {
        self.state().now
    }

    pub fn set(&self, t: UtcTime) {
        self.state().now = t;
    }

    pub fn advance(&self, d: Duration) -> UtcTime {
        let mut s = self.state();
        s.now = s.now.plus(d);
        s.now
    }

    /// Moves the clock to `t` if it is later; never backwards.
    pub fn advance_to(&self, t: UtcTime) -> UtcTime {
        let mut s = self.state();
        s.now = s.now.max(t);
        s.now
    }

    /// Total time requested by `sleep` calls, and how many there were.
    pub fn slept(&self) -> (Duration, u64) {
        let s = self.state();
        (s.slept, s.sleeps)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> UtcTime {
        ManualClock::now(self)
    }

    async fn sleep(&self, duration: Duration) {
        let target = {
            let mut s = self.state();
            s.slept = s.slept.saturating_add(duration);
            s.sleeps += 1;
            s.now.plus(duration)
        };
        // A sleep cannot fail: a fault from the hook only delays it.
        let _ = self.hook.pass(calls::CLOCK_SLEEP).await;
        self.advance_to(target);
    }
}

impl Entropy for ManualClock {
    fn random_u128(&self) -> u128 {
        self.state().rng.random()
    }
}
