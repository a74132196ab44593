//! Shared handling of DynamoDB stream batches.

use std::future::Future;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use serde::Deserialize;

use crate::error::Result;

/// The destination a stream record is about.
#[derive(Clone, Debug, Deserialize)]
pub struct DestinationKey {
    pub post_id: String,
    pub account_id: String,
}

/// Runs `work` for each record's destination, concurrently, and reports the records that
/// failed so that Lambda retries from the first of them (ReportBatchItemFailures).
pub async fn for_each_destination<F, Fut>(event: Event, work: F) -> DynamoDbEventResponse
where
    F: Fn(DestinationKey) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    let jobs = event.records.into_iter().filter_map(|record| {
        let sequence = record.change.sequence_number.clone();
        match serde_dynamo::from_item::<_, DestinationKey>(record.change.new_image) {
            Ok(key) => Some((sequence, work(key))),
            Err(err) => {
                // Retrying cannot fix a record we cannot read; say so and move on.
                tracing::error!(event_id = %record.event_id, error = %err, "stream record is not a destination; skipped");
                None
            }
        }
    });
    let (sequences, futures): (Vec<_>, Vec<_>) = jobs.unzip();
    let results = futures::future::join_all(futures).await;
    let mut response = DynamoDbEventResponse::default();
    for (sequence, result) in sequences.into_iter().zip(results) {
        if let Err(err) = result {
            tracing::warn!(error = %err, "record failed; the event source will deliver it again");
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = sequence;
            response.batch_item_failures.push(failure);
        }
    }
    response
}
