//! What MiniStack keeps across a restart, measured rather than assumed: a probe FIFO queue with a
//! visible message, one in flight and a deduplication id; a table item with both GSIs' keys; and
//! the run's secrets (checked through the stack's own reads after the restart).

use std::fmt;

use aws_sdk_dynamodb::types::AttributeValue;
use reelay_local::Stack;

use crate::CampaignError;

const PROBE_PK: &str = "CAMPAIGNPROBE#item";

/// The probe's state before the restart.
#[derive(Debug)]
pub struct Probe {
    queue_url: String,
    /// Body of the message received (in flight, 10-minute visibility) before the restart.
    in_flight: Option<String>,
    visible: Option<String>,
}

/// What survived.
#[derive(Debug, Clone, Default)]
pub struct Persistence {
    pub queue_kept: bool,
    pub visible_message_kept: bool,
    /// `Some(true)`: the in-flight message stayed invisible; `Some(false)`: it came back at once.
    pub in_flight_kept_invisible: Option<bool>,
    pub in_flight_message_kept: bool,
    /// A resend with a deduplication id used before the restart was dropped.
    pub dedup_kept: bool,
    pub item_kept: bool,
    pub gsi1_kept: bool,
    pub due_index_kept: bool,
}

impl fmt::Display for Persistence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yn = |b: bool| if b { "kept" } else { "LOST" };
        write!(
            f,
            "SQS queue {}, visible message {}, in-flight message {} ({}), FIFO dedup window {}; \
             DynamoDB item {}, gsi1 entry {}, due-index entry {}",
            yn(self.queue_kept),
            yn(self.visible_message_kept),
            yn(self.in_flight_message_kept),
            match self.in_flight_kept_invisible {
                Some(true) => "still invisible",
                Some(false) => "visible again at once",
                None => "not seen",
            },
            yn(self.dedup_kept),
            yn(self.item_kept),
            yn(self.gsi1_kept),
            yn(self.due_index_kept),
        )
    }
}

fn err(what: &str, e: impl fmt::Display) -> CampaignError {
    CampaignError::Probe(format!("{what}: {e}"))
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

/// Sets up the probe just before the restart.
pub async fn before(stack: &Stack, suffix: &str) -> Result<Probe, CampaignError> {
    let sqs = stack.wiring.sqs();
    let sqs = &sqs;
    let created = sqs
        .create_queue()
        .queue_name(format!("campaign-probe-{suffix}.fifo"))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout,
            "600",
        )
        .send()
        .await
        .map_err(|e| {
            err(
                "create probe queue",
                aws_sdk_sqs::error::DisplayErrorContext(e),
            )
        })?;
    let queue_url = created.queue_url.unwrap_or_default();
    for (body, group, dedup) in [("first", "g1", "d-first"), ("second", "g2", "d-second")] {
        sqs.send_message()
            .queue_url(&queue_url)
            .message_body(body)
            .message_group_id(group)
            .message_deduplication_id(dedup)
            .send()
            .await
            .map_err(|e| {
                err(
                    "send probe message",
                    aws_sdk_sqs::error::DisplayErrorContext(e),
                )
            })?;
    }
    let got = sqs
        .receive_message()
        .queue_url(&queue_url)
        .max_number_of_messages(1)
        .send()
        .await
        .map_err(|e| {
            err(
                "receive probe message",
                aws_sdk_sqs::error::DisplayErrorContext(e),
            )
        })?;
    let in_flight = got
        .messages()
        .first()
        .and_then(|m| m.body())
        .map(str::to_owned);
    let visible = match in_flight.as_deref() {
        Some("first") => Some("second".to_owned()),
        Some(_) => Some("first".to_owned()),
        None => None,
    };
    stack
        .wiring
        .dynamo()
        .put_item()
        .table_name(&stack.wiring.resources.table)
        .item("pk", s(PROBE_PK))
        .item("sk", s("probe"))
        .item("gsi1pk", s("CAMPAIGNPROBE"))
        .item("gsi1sk", s("1"))
        .item("due_pk", s("CAMPAIGNPROBE"))
        .item("due_sk", s("1"))
        .send()
        .await
        .map_err(|e| {
            err(
                "put probe item",
                aws_sdk_dynamodb::error::DisplayErrorContext(e),
            )
        })?;
    Ok(Probe {
        queue_url,
        in_flight,
        visible,
    })
}

/// Reads the probe back after the restart.
pub async fn after(stack: &Stack, probe: &Probe) -> Persistence {
    let mut out = Persistence::default();
    let sqs = stack.wiring.sqs();
    let sqs = &sqs;
    out.queue_kept = sqs
        .get_queue_attributes()
        .queue_url(&probe.queue_url)
        .send()
        .await
        .is_ok();
    if out.queue_kept {
        // Resend the visible message's dedup id with a new body: kept dedup drops it.
        if let Some(v) = &probe.visible {
            let _ = sqs
                .send_message()
                .queue_url(&probe.queue_url)
                .message_body("resent")
                .message_group_id("g3")
                .message_deduplication_id(format!("d-{v}"))
                .send()
                .await;
        }
        let mut bodies = Vec::new();
        for _ in 0..3 {
            if let Ok(got) = sqs
                .receive_message()
                .queue_url(&probe.queue_url)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .send()
                .await
            {
                bodies.extend(
                    got.messages()
                        .iter()
                        .filter_map(|m| m.body().map(str::to_owned)),
                );
            }
        }
        out.visible_message_kept = probe.visible.as_ref().is_some_and(|v| bodies.contains(v));
        out.dedup_kept = !bodies.iter().any(|b| b == "resent");
        if let Some(f) = &probe.in_flight {
            let seen = bodies.contains(f);
            out.in_flight_kept_invisible = Some(!seen);
            // Invisible, or back: either way it exists if its attributes count it.
            let counted = sqs
                .get_queue_attributes()
                .queue_url(&probe.queue_url)
                .attribute_names(
                    aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                )
                .send()
                .await
                .ok()
                .and_then(|a| {
                    a.attributes()
                        .and_then(|m| {
                            m.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
                                .cloned()
                        })
                })
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
            out.in_flight_message_kept = seen || counted > 0;
        }
    }
    let dynamo = stack.wiring.dynamo();
    let dynamo = &dynamo;
    let table = &stack.wiring.resources.table;
    out.item_kept = dynamo
        .get_item()
        .table_name(table)
        .key("pk", s(PROBE_PK))
        .key("sk", s("probe"))
        .send()
        .await
        .ok()
        .and_then(|o| o.item)
        .is_some();
    for (index, pk, flag) in [
        ("gsi1", "gsi1pk", &mut out.gsi1_kept),
        ("due", "due_pk", &mut out.due_index_kept),
    ] {
        *flag = dynamo
            .query()
            .table_name(table)
            .index_name(index)
            .key_condition_expression("#k = :v")
            .expression_attribute_names("#k", pk)
            .expression_attribute_values(":v", s("CAMPAIGNPROBE"))
            .send()
            .await
            .ok()
            .is_some_and(|o| o.count > 0);
    }
    out
}
