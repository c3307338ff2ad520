//! Cold-start wiring: every client built once, from one SDK config and a [`Config`].

use aws_config::SdkConfig;
use reelay_aws::{DynamoStore, SqsDeliveries, SystemClock};
use reelay_domain::usecase::Outbound;

use crate::config::Config;
use crate::handler::Deps;
use crate::sender::{HttpSender, SenderError};

pub type LiveDeps = Deps<DynamoStore, SqsDeliveries, SystemClock, HttpSender>;

pub fn live(sdk: &SdkConfig, config: &Config) -> Result<LiveDeps, SenderError> {
    Ok(Deps {
        outbound: Outbound {
            store: DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), &config.table_name),
            queue: SqsDeliveries::new(
                aws_sdk_sqs::Client::new(sdk),
                config.queue_url.clone(),
                Some(config.dead_letter_url.clone()),
            ),
            clock: SystemClock,
            settings: config.outbound.clone(),
        },
        sender: HttpSender::new(&config.sender)?,
    })
}
