//! Interleaving points and outages. Every simulated port call first passes an [`Chaos::point`]:
//! it yields once (so the driver can run another invocation, or crash this one, between any two
//! port calls) and then fails if its part of the system is in an outage.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use reelay_domain::UtcTime;
use reelay_domain::ports::Clock;

use crate::clock::SimClock;

/// The parts of the system an outage can take down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    Store,
    Queue,
    Vault,
}

impl Part {
    pub fn of(call: &str) -> Option<Self> {
        let head = call.split('.').next().unwrap_or(call);
        match head {
            "jobs" | "accounts" | "budgets" | "locks" | "tenants" => Some(Self::Store),
            "queue" => Some(Self::Queue),
            "vault" => Some(Self::Vault),
            _ => None,
        }
    }
}

#[derive(Debug, Default)]
struct Outages {
    windows: Vec<(Part, UtcTime, UtcTime)>,
    failed_calls: u64,
}

/// The chaos of one run: outage windows, and whether faults are on at all (a run ends calm so
/// that every job can settle).
#[derive(Debug, Clone)]
pub struct Chaos {
    clock: SimClock,
    outages: Arc<Mutex<Outages>>,
    calm: Arc<std::sync::atomic::AtomicBool>,
}

impl Chaos {
    pub fn new(clock: SimClock) -> Self {
        Self {
            clock,
            outages: Arc::new(Mutex::new(Outages::default())),
            calm: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// From now on no fault is injected (outages already scheduled end as planned).
    pub fn calm_down(&self) {
        self.calm.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn is_calm(&self) -> bool {
        self.calm.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A fault with probability `p`, only while the run is not calm.
    pub fn roll(&self, p: f64) -> bool {
        !self.is_calm() && self.clock.chance(p)
    }

    pub fn clock(&self) -> &SimClock {
        &self.clock
    }

    /// `part` fails every call from `from` for `lasting`.
    pub fn outage(&self, part: Part, from: UtcTime, lasting: Duration) {
        if let Ok(mut o) = self.outages.lock() {
            o.windows.push((part, from, from.plus(lasting)));
        }
    }

    pub fn failed_calls(&self) -> u64 {
        self.outages.lock().map(|o| o.failed_calls).unwrap_or(0)
    }

    /// Whether `part` is down now; counts the failed call.
    pub fn down(&self, part: Part) -> bool {
        let now = self.clock.now();
        let Ok(mut o) = self.outages.lock() else {
            return false;
        };
        let down = o
            .windows
            .iter()
            .any(|(p, from, to)| *p == part && *from <= now && now < *to);
        if down {
            o.failed_calls += 1;
        }
        down
    }

    /// The interleaving point before `call`: yields once, then says whether the call fails.
    pub fn point(&self, call: &'static str) -> Point {
        Point {
            chaos: self.clone(),
            call,
            yielded: false,
        }
    }
}

/// Yields once, then answers `true` when the call must fail (its part is down).
#[derive(Debug)]
pub struct Point {
    chaos: Chaos,
    call: &'static str,
    yielded: bool,
}

impl Future for Point {
    type Output = bool;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        if !self.yielded {
            self.yielded = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Part::of(self.call).is_some_and(|p| self.chaos.down(p)))
    }
}
