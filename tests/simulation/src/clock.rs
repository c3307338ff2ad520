//! Simulated time and seeded randomness. Nothing in a simulated run reads the wall clock: a
//! `sleep` registers a timer the driver fires when it moves time on, so a week of moderation
//! takes the milliseconds its events take to compute.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use reelay_domain::UtcTime;
use reelay_domain::ports::{Clock, Entropy};

#[derive(Debug)]
struct State {
    now: UtcTime,
    timers: Vec<(UtcTime, Waker)>,
    rng: StdRng,
    /// The invocation the driver is stepping and when it started (the upstream models note who
    /// called them).
    current: Option<(u64, UtcTime)>,
    /// Upstream calls, when a run keeps a trace.
    notes: Option<Vec<String>>,
}

/// The simulation's clock (Reelay's [`Clock`] and [`Entropy`]) and its one source of randomness.
#[derive(Debug, Clone)]
pub struct SimClock {
    state: Arc<Mutex<State>>,
}

impl SimClock {
    pub fn new(start: UtcTime, seed: u64) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                now: start,
                timers: Vec::new(),
                rng: StdRng::seed_from_u64(seed),
                current: None,
                notes: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts keeping notes (a traced run).
    pub fn keep_notes(&self) {
        self.lock().notes = Some(Vec::new());
    }

    /// Notes what an upstream did, for the trace (nothing when the run keeps none).
    pub fn note(&self, line: impl FnOnce() -> String) {
        let mut s = self.lock();
        let (now, current) = (s.now, s.current.map(|(id, _)| id));
        if let Some(notes) = s.notes.as_mut() {
            notes.push(format!(
                "#{} {now}: {}",
                current.map_or("-".to_owned(), |c| c.to_string()),
                line()
            ));
        }
    }

    pub fn take_notes(&self) -> Vec<String> {
        self.lock()
            .notes
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The invocation being stepped from now on (its id and start), or none.
    pub fn set_current(&self, invocation: Option<(u64, UtcTime)>) {
        self.lock().current = invocation;
    }

    /// The invocation being stepped, if any.
    pub fn current(&self) -> Option<u64> {
        self.lock().current.map(|(id, _)| id)
    }

    /// When the invocation being stepped started, if any.
    pub fn current_started(&self) -> Option<UtcTime> {
        self.lock().current.map(|(_, started)| started)
    }

    /// The earliest pending timer.
    pub fn next_timer(&self) -> Option<UtcTime> {
        self.lock().timers.iter().map(|(t, _)| *t).min()
    }

    /// Moves time to `to` (never backwards) and wakes every sleeper due by then.
    pub fn advance_to(&self, to: UtcTime) {
        let due: Vec<Waker> = {
            let mut s = self.lock();
            if to > s.now {
                s.now = to;
            }
            let now = s.now;
            let (due, pending): (Vec<_>, Vec<_>) = s.timers.drain(..).partition(|(t, _)| *t <= now);
            s.timers = pending;
            due.into_iter().map(|(_, w)| w).collect()
        };
        for w in due {
            w.wake();
        }
    }

    pub fn advance(&self, by: Duration) {
        let to = self.now().plus(by);
        self.advance_to(to);
    }

    /// A seeded draw in `0..n` (0 when `n` is 0).
    pub fn below(&self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        self.lock().rng.random_range(0..n)
    }

    /// True with probability `p`.
    pub fn chance(&self, p: f64) -> bool {
        p > 0.0 && self.lock().rng.random_bool(p.clamp(0.0, 1.0))
    }

    fn register(&self, at: UtcTime, waker: &Waker) {
        self.lock().timers.push((at, waker.clone()));
    }
}

impl Clock for SimClock {
    fn now(&self) -> UtcTime {
        self.lock().now
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        Sleep {
            clock: self.clone(),
            until: self.now().plus(duration),
        }
    }
}

impl Entropy for SimClock {
    fn random_u128(&self) -> u128 {
        self.lock().rng.random()
    }
}

/// A wait on simulated time.
struct Sleep {
    clock: SimClock,
    until: UtcTime,
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.clock.now() >= self.until {
            return Poll::Ready(());
        }
        self.clock.register(self.until, cx.waker());
        Poll::Pending
    }
}
