//! [`MemQueue`]: the two FIFO work queues in memory, with SQS FIFO's deduplication and
//! message groups.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reelay_domain::UtcTime;
use reelay_domain::messages::{QueueKind, WorkMessage};
use reelay_domain::ports::{QueueError, WorkQueue};

use crate::clock::ManualClock;
use crate::hook::{Hook, HookSlot, calls};

/// SQS FIFO's deduplication interval.
pub const SQS_DEDUP_WINDOW: Duration = Duration::from_secs(300);

/// How long a deduplication id drops resends.
#[derive(Debug, Clone)]
pub enum Dedup {
    /// Like SQS: a resend within `window` of the first send (on `clock`) is dropped, a later
    /// one is delivered.
    Window {
        clock: ManualClock,
        window: Duration,
    },
    /// Every resend is dropped, however late (stricter than SQS).
    Forever,
}

/// Every message sent, and the messages waiting per queue kind.
///
/// Deduplication is per queue kind (an SQS FIFO queue deduplicates across its groups). Messages
/// come out in send order per queue; [`MemQueue::receive`] also keeps SQS FIFO's group rule: while
/// a group has a message in flight, nothing else of that group is delivered.
#[derive(Debug, Clone)]
pub struct MemQueue {
    inner: Arc<Mutex<QueueState>>,
    hook: HookSlot,
}

/// One `send` as the queue saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub message: WorkMessage,
    pub dedup_id: String,
    /// When the queue had a clock ([`Dedup::Window`]), the instant of the send.
    pub at: Option<UtcTime>,
    /// Dropped as a duplicate of an earlier send with the same id.
    pub dropped: bool,
}

/// A message waiting in (or taken from) a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Identifies a received message for [`MemQueue::ack`] and [`MemQueue::release`].
    pub receipt: u64,
    pub message: WorkMessage,
    /// The FIFO group (`tenant:account`).
    pub group: String,
    pub dedup_id: String,
    /// Deliveries before this one (by [`MemQueue::receive`] then [`MemQueue::release`]).
    pub receive_count: u32,
}

#[derive(Debug)]
struct QueueState {
    dedup: Dedup,
    sent: Vec<Sent>,
    first_sent: HashMap<(QueueKind, String), Option<UtcTime>>,
    waiting: HashMap<QueueKind, VecDeque<Queued>>,
    in_flight: HashMap<u64, (QueueKind, Queued)>,
    next_receipt: u64,
}

impl MemQueue {
    /// SQS's 5-minute deduplication window on `clock`.
    pub fn new(clock: ManualClock) -> Self {
        Self::with_dedup(Dedup::Window {
            clock,
            window: SQS_DEDUP_WINDOW,
        })
    }

    pub fn with_dedup(dedup: Dedup) -> Self {
        Self {
            inner: Arc::new(Mutex::new(QueueState {
                dedup,
                sent: Vec::new(),
                first_sent: HashMap::new(),
                waiting: HashMap::new(),
                in_flight: HashMap::new(),
                next_receipt: 1,
            })),
            hook: HookSlot::default(),
        }
    }

    /// This queue (same messages) with `hook` awaited before every send.
    pub fn with_hook(&self, hook: Arc<dyn Hook>) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            hook: HookSlot::new(hook),
        }
    }

    fn state(&self) -> MutexGuard<'_, QueueState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn enqueue(&self, message: &WorkMessage, dedup_id: &str) {
        let mut s = self.state();
        let (at, window) = match &s.dedup {
            Dedup::Window { clock, window } => (Some(clock.now()), Some(*window)),
            Dedup::Forever => (None, None),
        };
        let key = (message.kind, dedup_id.to_owned());
        let dropped = match (s.first_sent.get(&key), at, window) {
            (None, _, _) => false,
            (Some(_), _, None) => true,
            (Some(first), Some(now), Some(window)) => {
                first.is_some_and(|first| now < first.plus(window))
            }
            (Some(_), None, Some(_)) => true,
        };
        s.sent.push(Sent {
            message: message.clone(),
            dedup_id: dedup_id.to_owned(),
            at,
            dropped,
        });
        if dropped {
            tracing::debug!(job_id = %message.job_id, dedup_id, "duplicate send dropped");
            return;
        }
        s.first_sent.insert(key, at);
        let receipt = s.next_receipt;
        s.next_receipt += 1;
        s.waiting
            .entry(message.kind)
            .or_default()
            .push_back(Queued {
                receipt,
                message: message.clone(),
                group: message.group_id(),
                dedup_id: dedup_id.to_owned(),
                receive_count: 0,
            });
    }

    /// Every send, in order, with whether it was dropped as a duplicate.
    pub fn sent(&self) -> Vec<Sent> {
        self.state().sent.clone()
    }

    /// Messages waiting in `kind`'s queue, oldest first (not those in flight).
    pub fn waiting(&self, kind: QueueKind) -> Vec<Queued> {
        self.state()
            .waiting
            .get(&kind)
            .map(|q| q.iter().cloned().collect())
            .unwrap_or_default()
    }

    pub fn len(&self, kind: QueueKind) -> usize {
        self.state().waiting.get(&kind).map_or(0, VecDeque::len)
    }

    pub fn is_empty(&self, kind: QueueKind) -> bool {
        self.len(kind) == 0
    }

    /// Removes and returns the oldest waiting message of `kind` whose group has nothing in flight.
    pub fn take(&self, kind: QueueKind) -> Option<Queued> {
        let mut s = self.state();
        let blocked = s.blocked_groups(kind);
        let q = s.waiting.get_mut(&kind)?;
        let i = q.iter().position(|m| !blocked.contains(&m.group))?;
        q.remove(i)
    }

    /// Removes and returns the oldest waiting message of `group` in `kind`'s queue.
    pub fn take_group(&self, kind: QueueKind, group: &str) -> Option<Queued> {
        let mut s = self.state();
        let q = s.waiting.get_mut(&kind)?;
        let i = q.iter().position(|m| m.group == group)?;
        q.remove(i)
    }

    /// Every waiting message of `kind`, oldest first, removed.
    pub fn drain(&self, kind: QueueKind) -> Vec<Queued> {
        self.state()
            .waiting
            .remove(&kind)
            .map(Vec::from)
            .unwrap_or_default()
    }

    /// Like [`MemQueue::take`], but the message stays in flight and blocks its group until
    /// [`MemQueue::ack`] (done) or [`MemQueue::release`] (back to the head of its group).
    pub fn receive(&self, kind: QueueKind) -> Option<Queued> {
        let taken = self.take(kind)?;
        self.state()
            .in_flight
            .insert(taken.receipt, (kind, taken.clone()));
        Some(taken)
    }

    /// Deletes a received message. `false` if it was not in flight.
    pub fn ack(&self, receipt: u64) -> bool {
        self.state().in_flight.remove(&receipt).is_some()
    }

    /// Makes a received message visible again, ahead of everything else of its group (a failed
    /// or timed-out delivery). `false` if it was not in flight.
    pub fn release(&self, receipt: u64) -> bool {
        let mut s = self.state();
        let Some((kind, mut m)) = s.in_flight.remove(&receipt) else {
            return false;
        };
        m.receive_count += 1;
        let q = s.waiting.entry(kind).or_default();
        let at = q.iter().position(|w| w.group == m.group).unwrap_or(q.len());
        q.insert(at, m);
        true
    }

    /// Messages received and neither acknowledged nor released.
    pub fn in_flight(&self) -> Vec<Queued> {
        let mut out: Vec<Queued> = self
            .state()
            .in_flight
            .values()
            .map(|(_, m)| m.clone())
            .collect();
        out.sort_by_key(|m| m.receipt);
        out
    }
}

impl QueueState {
    fn blocked_groups(&self, kind: QueueKind) -> Vec<String> {
        self.in_flight
            .values()
            .filter(|(k, _)| *k == kind)
            .map(|(_, m)| m.group.clone())
            .collect()
    }
}

impl WorkQueue for MemQueue {
    async fn send(&self, message: &WorkMessage, dedup_id: &str) -> Result<(), QueueError> {
        let after = match self.hook.pass(calls::QUEUE_SEND).await {
            Ok(after) => after,
            Err(fault) => return Err(fault.queue_error(calls::QUEUE_SEND)),
        };
        self.enqueue(message, dedup_id);
        match after {
            Some(fault) => Err(fault.queue_error(calls::QUEUE_SEND)),
            None => Ok(()),
        }
    }
}
