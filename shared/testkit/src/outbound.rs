//! Webhooks out, in memory: [`MemDeliveries`] (the delivery queue with its delays and dead
//! letters) and [`ScriptedReceiver`] (a client endpoint answering from a script, keeping every
//! request it got).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use reelay_domain::UtcTime;
use reelay_domain::ports::{DeliveryQueue, PostResult, QueueError, WebhookSender};
use reelay_domain::webhooks::{Delivery, SignedHeaders};

use crate::clock::ManualClock;

/// One delivery waiting in the queue until `visible_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub delivery: Delivery,
    pub visible_at: UtcTime,
    pub delay: Duration,
}

#[derive(Debug, Default)]
struct DeliveriesState {
    pending: Vec<Pending>,
    dead: Vec<Delivery>,
    sends: u64,
}

/// The delivery queue: a send is visible after its delay on the shared clock.
#[derive(Debug, Clone)]
pub struct MemDeliveries {
    clock: ManualClock,
    inner: Arc<Mutex<DeliveriesState>>,
}

impl MemDeliveries {
    pub fn new(clock: ManualClock) -> Self {
        Self {
            clock,
            inner: Arc::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, DeliveriesState> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes every delivery visible now, in send order.
    pub fn take_visible(&self) -> Vec<Delivery> {
        let now = self.clock.now();
        let mut state = self.state();
        let (due, later): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut state.pending)
            .into_iter()
            .partition(|p| p.visible_at <= now);
        state.pending = later;
        due.into_iter().map(|p| p.delivery).collect()
    }

    pub fn pending(&self) -> Vec<Pending> {
        self.state().pending.clone()
    }

    pub fn dead(&self) -> Vec<Delivery> {
        self.state().dead.clone()
    }

    pub fn sends(&self) -> u64 {
        self.state().sends
    }
}

impl DeliveryQueue for MemDeliveries {
    async fn send(&self, delivery: &Delivery, delay: Duration) -> Result<(), QueueError> {
        let visible_at = self.clock.now().plus(delay);
        let mut state = self.state();
        state.sends += 1;
        state.pending.push(Pending {
            delivery: delivery.clone(),
            visible_at,
            delay,
        });
        Ok(())
    }

    async fn dead_letter(&self, delivery: &Delivery) -> Result<(), QueueError> {
        self.state().dead.push(delivery.clone());
        Ok(())
    }
}

/// A request the receiver got.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub url: String,
    pub headers: SignedHeaders,
    pub body: Vec<u8>,
}

#[derive(Debug, Default)]
struct ReceiverState {
    script: VecDeque<PostResult>,
    received: Vec<Received>,
}

/// Answers each POST with the next scripted result, 200 once the script is used up.
#[derive(Debug, Clone, Default)]
pub struct ScriptedReceiver {
    inner: Arc<Mutex<ReceiverState>>,
}

impl ScriptedReceiver {
    pub fn answering(script: impl IntoIterator<Item = PostResult>) -> Self {
        let receiver = Self::default();
        receiver.state().script.extend(script);
        receiver
    }

    fn state(&self) -> MutexGuard<'_, ReceiverState> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state().received.clone()
    }
}

impl WebhookSender for ScriptedReceiver {
    async fn post(&self, url: &str, headers: &SignedHeaders, body: Vec<u8>) -> PostResult {
        let mut state = self.state();
        state.received.push(Received {
            url: url.to_owned(),
            headers: headers.clone(),
            body,
        });
        state
            .script
            .pop_front()
            .unwrap_or(PostResult::Answered(200))
    }
}
