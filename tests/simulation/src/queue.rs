//! SQS FIFO as Lambda's event source mapping sees it: a group's messages in order, one group's
//! head in flight at a time, a visibility timeout after which an unacknowledged message (its
//! consumer crashed, or is still running) is delivered again, FIFO deduplication for five
//! minutes, and a dead-letter queue after `max_receives`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reelay_domain::UtcTime;
use reelay_domain::messages::{QueueKind, WorkMessage};
use reelay_domain::ports::{Clock, QueueError, WorkQueue};

use crate::clock::SimClock;
use crate::faults::Chaos;

/// SQS's deduplication interval.
const DEDUP_WINDOW: Duration = Duration::from_secs(300);

#[derive(Debug, Clone)]
pub struct Message {
    pub id: u64,
    pub body: WorkMessage,
    pub group: String,
    visible_at: UtcTime,
    in_flight: bool,
    pub receives: u32,
}

/// A received message: its id, for the consumer's answer.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: u64,
    pub kind: QueueKind,
    pub message: WorkMessage,
    pub receives: u32,
}

#[derive(Debug, Clone, Copy)]
pub struct QueueConfig {
    pub visibility: Duration,
    pub max_receives: u32,
}

#[derive(Debug, Default)]
struct Queues {
    next_id: u64,
    /// Per queue kind, messages in send order.
    messages: BTreeMap<u8, Vec<Message>>,
    dedup: BTreeMap<String, UtcTime>,
    dead: Vec<(QueueKind, WorkMessage)>,
    sent: u64,
    deduplicated: u64,
}

fn slot(kind: QueueKind) -> u8 {
    match kind {
        QueueKind::Render => 0,
        QueueKind::Publish => 1,
    }
}

/// Both queues of the system.
#[derive(Debug, Clone)]
pub struct SimQueue {
    state: Arc<Mutex<Queues>>,
    clock: SimClock,
    chaos: Chaos,
    render: QueueConfig,
    publish: QueueConfig,
}

impl SimQueue {
    pub fn new(clock: SimClock, chaos: Chaos, render: QueueConfig, publish: QueueConfig) -> Self {
        Self {
            state: Arc::new(Mutex::new(Queues::default())),
            clock,
            chaos,
            render,
            publish,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn config(&self, kind: QueueKind) -> QueueConfig {
        match kind {
            QueueKind::Render => self.render,
            QueueKind::Publish => self.publish,
        }
    }

    /// Indexes of the messages a poller would receive now (at most `max`), and of those that
    /// have used up their receives (bound for the dead-letter queue): each group's messages in
    /// order, none of a group whose earlier message is in flight or delayed.
    fn receivable(
        list: &[Message],
        now: UtcTime,
        max: usize,
        max_receives: u32,
    ) -> (Vec<usize>, Vec<usize>) {
        let mut take = Vec::new();
        let mut dead = Vec::new();
        let mut blocked: BTreeSet<&str> = BTreeSet::new();
        for (i, m) in list.iter().enumerate() {
            if take.len() >= max {
                break;
            }
            if blocked.contains(m.group.as_str()) {
                continue;
            }
            if m.visible_at > now {
                // In flight, or delayed: the group waits behind it.
                blocked.insert(m.group.as_str());
                continue;
            }
            if m.receives >= max_receives {
                dead.push(i);
                continue;
            }
            take.push(i);
        }
        (take, dead)
    }

    /// Up to `max` messages a poller receives now.
    pub fn receive(&self, kind: QueueKind, max: usize) -> Vec<Delivery> {
        let now = self.clock.now();
        let config = self.config(kind);
        let mut s = self.lock();
        let list = s.messages.entry(slot(kind)).or_default();
        let (take, dead) = Self::receivable(list, now, max, config.max_receives);
        let mut out = Vec::new();
        for i in take {
            let m = &mut list[i];
            m.receives += 1;
            m.in_flight = true;
            m.visible_at = now.plus(config.visibility);
            out.push(Delivery {
                id: m.id,
                kind,
                message: m.body.clone(),
                receives: m.receives,
            });
        }
        let moved: Vec<WorkMessage> = dead.iter().map(|i| list[*i].body.clone()).collect();
        let dead_ids: Vec<u64> = dead.iter().map(|i| list[*i].id).collect();
        list.retain(|m| !dead_ids.contains(&m.id));
        s.dead.extend(moved.into_iter().map(|b| (kind, b)));
        out
    }

    /// The consumer succeeded: the message is deleted.
    pub fn ack(&self, kind: QueueKind, id: u64) {
        if let Some(list) = self.lock().messages.get_mut(&slot(kind)) {
            list.retain(|m| m.id != id);
        }
    }

    /// The consumer failed the record: visible again after `after` (0 = at once).
    pub fn retry_after(&self, kind: QueueKind, id: u64, after: Duration) {
        let at = self.clock.now().plus(after);
        if let Some(m) = self
            .lock()
            .messages
            .get_mut(&slot(kind))
            .and_then(|l| l.iter_mut().find(|m| m.id == id))
        {
            m.in_flight = false;
            m.visible_at = at;
        }
    }

    /// When a message next becomes receivable (for moving time on).
    pub fn next_visible(&self) -> Option<UtcTime> {
        let now = self.clock.now();
        self.lock()
            .messages
            .values()
            .flatten()
            .map(|m| m.visible_at)
            .filter(|t| *t > now)
            .min()
    }

    /// Whether a poller would receive something (or dead-letter something) now.
    pub fn has_visible(&self, kind: QueueKind) -> bool {
        let now = self.clock.now();
        let config = self.config(kind);
        let s = self.lock();
        s.messages.get(&slot(kind)).is_some_and(|l| {
            let (take, dead) = Self::receivable(l, now, usize::MAX, config.max_receives);
            !take.is_empty() || !dead.is_empty()
        })
    }

    pub fn dead_letters(&self) -> usize {
        self.lock().dead.len()
    }

    pub fn pending(&self) -> usize {
        self.lock().messages.values().map(Vec::len).sum()
    }

    pub fn stats(&self) -> (u64, u64) {
        let s = self.lock();
        (s.sent, s.deduplicated)
    }
}

impl WorkQueue for SimQueue {
    async fn send(&self, message: &WorkMessage, dedup_id: &str) -> Result<(), QueueError> {
        if self.chaos.point("queue.send").await {
            return Err(QueueError::Unavailable("simulated queue outage".into()));
        }
        let now = self.clock.now();
        let mut s = self.lock();
        if s.dedup
            .get(dedup_id)
            .is_some_and(|first| now.since(*first) < DEDUP_WINDOW)
        {
            s.deduplicated += 1;
            return Ok(());
        }
        s.dedup.insert(dedup_id.to_owned(), now);
        s.next_id += 1;
        s.sent += 1;
        let id = s.next_id;
        s.messages
            .entry(slot(message.kind))
            .or_default()
            .push(Message {
                id,
                body: message.clone(),
                group: message.group_id(),
                visible_at: now,
                in_flight: false,
                receives: 0,
            });
        Ok(())
    }
}
