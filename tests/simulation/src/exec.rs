//! A single-threaded executor the driver steps by hand. Every port call of the simulated adapters
//! first yields once (see `faults::Interleave`), so one poll of an invocation runs it up to its
//! next port call: the driver chooses, with the seeded generator, which invocation takes the next
//! step, and may drop one between two steps — a crash at that point, exactly.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use reelay_domain::UtcTime;

type Task<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Wakes a task by raising its flag; the driver only polls raised tasks.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// One in-flight invocation (a Lambda call, in production terms).
pub struct Invocation<T> {
    pub label: String,
    pub started: UtcTime,
    future: Task<T>,
    flag: Arc<Flag>,
}

impl<T> std::fmt::Debug for Invocation<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("label", &self.label)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

/// The in-flight invocations, keyed by a sequence number (iteration order is deterministic).
#[derive(Debug)]
pub struct Executor<T> {
    next: u64,
    tasks: BTreeMap<u64, Invocation<T>>,
}

impl<T> Default for Executor<T> {
    fn default() -> Self {
        Self {
            next: 0,
            tasks: BTreeMap::new(),
        }
    }
}

impl<T> Executor<T> {
    pub fn spawn(
        &mut self,
        label: String,
        started: UtcTime,
        future: impl Future<Output = T> + Send + 'static,
    ) -> u64 {
        let id = self.next;
        self.next += 1;
        self.tasks.insert(
            id,
            Invocation {
                label,
                started,
                future: Box::pin(future),
                flag: Arc::new(Flag(AtomicBool::new(true))),
            },
        );
        id
    }

    /// Invocations that can take a step now (the rest wait for simulated time).
    pub fn runnable(&self) -> Vec<u64> {
        self.tasks
            .iter()
            .filter(|(_, t)| t.flag.0.load(Ordering::SeqCst))
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn ids(&self) -> Vec<u64> {
        self.tasks.keys().copied().collect()
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    pub fn label(&self, id: u64) -> Option<&str> {
        self.tasks.get(&id).map(|t| t.label.as_str())
    }

    pub fn started(&self, id: u64) -> Option<UtcTime> {
        self.tasks.get(&id).map(|t| t.started)
    }

    /// Runs invocation `id` up to its next yield; its output once it has finished.
    pub fn step(&mut self, id: u64) -> Option<(String, T)> {
        let task = self.tasks.get_mut(&id)?;
        task.flag.0.store(false, Ordering::SeqCst);
        let waker = Waker::from(Arc::clone(&task.flag));
        let mut cx = Context::from_waker(&waker);
        match task.future.as_mut().poll(&mut cx) {
            Poll::Ready(out) => self.tasks.remove(&id).map(|t| (t.label, out)),
            Poll::Pending => None,
        }
    }

    /// Drops invocation `id` where it stands: the process died between two steps.
    pub fn crash(&mut self, id: u64) -> Option<String> {
        self.tasks.remove(&id).map(|t| t.label)
    }
}
