//! Reads the table's DynamoDB stream and delivers its records to the stream-fed functions as
//! Lambda's event source mappings would: as `aws_lambda_events` DynamoDB events, through the
//! filters of template.yaml, retrying the records a batch reports as failed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::dynamodb::{Event, EventRecord, StreamViewType};
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::types::{Record, ShardIteratorType};
use serde_json::Value;

use crate::filter;
use crate::functions::{Function, Functions};
use crate::lambda::{self, FailureQueues};

/// Like the template's MaximumRetryAttempts.
const MAX_RETRIES: u32 = 10;
const BATCH_SIZE: usize = 10;

/// One event source mapping: a function and its filter patterns.
pub struct Mapping {
    pub function: Function,
    pub patterns: Vec<Value>,
}

impl Mapping {
    pub fn new(function: Function, patterns: &[&str]) -> Mapping {
        let patterns = patterns.iter().map(|p| serde_json::from_str(p).expect("filters are JSON")).collect();
        Mapping { function, patterns }
    }

    fn accepts(&self, record: &Value) -> bool {
        self.patterns.iter().any(|p| filter::matches(p, record))
    }
}

/// At-least-once delivery made visible: decides, with a seeded generator, which stream records
/// and schedule firings are delivered a second time (`INSTAPIPE_DUPLICATE_RATE`, default 0).
/// The same seed and order of decisions repeat the same choices.
pub struct Duplicator {
    rate: f64,
    state: Mutex<u64>,
}

impl Duplicator {
    pub fn new(rate: f64, seed: u64) -> Duplicator {
        let rate = if rate.is_nan() { 0.0 } else { rate.clamp(0.0, 1.0) };
        Duplicator { rate, state: Mutex::new(seed) }
    }

    /// Never duplicates.
    pub fn off() -> Duplicator {
        Duplicator::new(0.0, 0)
    }

    /// `true` with probability `rate` (splitmix64; a rate of 0 draws nothing).
    pub fn roll(&self) -> bool {
        if self.rate <= 0.0 {
            return false;
        }
        let mut state = self.state.lock().unwrap();
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        ((z >> 11) as f64 / (1u64 << 53) as f64) < self.rate
    }

    /// How long to hold a duplicate back, 0–999 ms, so that it sometimes races the original
    /// and sometimes comes after it.
    pub fn delay(&self) -> Duration {
        let mut state = self.state.lock().unwrap();
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        Duration::from_millis((*state >> 33) % 1000)
    }
}

/// Where a batch is delivered: the mappings, the functions, and the failure destination of a
/// batch that used up its retries.
pub struct Delivery {
    pub mappings: Vec<Mapping>,
    pub functions: Arc<Functions>,
    pub failures: Arc<FailureQueues>,
    pub stream_arn: String,
}

/// Polls every shard of the stream forever, handing each batch to every mapping, and the
/// records `duplicates` picks a second time, in a batch of their own.
pub async fn run(client: Client, delivery: Arc<Delivery>, duplicates: Arc<Duplicator>) {
    let mut iterators: HashMap<String, Option<String>> = HashMap::new();
    loop {
        if let Err(err) = poll_once(&client, &mut iterators, &delivery, &duplicates).await {
            tracing::warn!(error = %err, "reading the stream failed; trying again");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn poll_once(
    client: &Client,
    iterators: &mut HashMap<String, Option<String>>,
    delivery: &Arc<Delivery>,
    duplicates: &Arc<Duplicator>,
) -> Result<(), String> {
    let stream_arn = delivery.stream_arn.as_str();
    let description = client.describe_stream().stream_arn(stream_arn).send().await.map_err(|e| format!("{e:?}"))?;
    for shard in description.stream_description().map(|d| d.shards()).unwrap_or_default() {
        let Some(shard_id) = shard.shard_id() else { continue };
        if !iterators.contains_key(shard_id) {
            let it = client
                .get_shard_iterator()
                .stream_arn(stream_arn)
                .shard_id(shard_id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .map_err(|e| format!("{e:?}"))?;
            iterators.insert(shard_id.to_string(), it.shard_iterator);
        }
    }
    for (shard_id, iterator) in iterators.iter_mut() {
        let Some(current) = iterator.clone() else { continue }; // closed shard, fully read
        let out = client.get_records().shard_iterator(current).send().await.map_err(|e| format!("{e:?}"))?;
        *iterator = out.next_shard_iterator;
        let records: Vec<EventRecord> = out.records.unwrap_or_default().into_iter().map(|r| to_lambda_record(r, stream_arn)).collect();
        for chunk in records.chunks(BATCH_SIZE) {
            deliver(chunk, delivery, shard_id);
        }
        let again: Vec<EventRecord> = records.iter().filter(|_| duplicates.roll()).cloned().collect();
        if !again.is_empty() {
            let (delivery, delay, shard_id) = (delivery.clone(), duplicates.delay(), shard_id.clone());
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                for chunk in again.chunks(BATCH_SIZE) {
                    deliver(chunk, &delivery, &shard_id);
                }
            });
        }
    }
    Ok(())
}

/// Hands the records each mapping accepts to its function, in the background (the template
/// sets a parallelization factor, so batches of one shard may run side by side).
fn deliver(records: &[EventRecord], delivery: &Arc<Delivery>, shard_id: &str) {
    for (index, mapping) in delivery.mappings.iter().enumerate() {
        let accepted: Vec<EventRecord> = records
            .iter()
            .filter(|r| mapping.accepts(&serde_json::to_value(r).expect("records serialize")))
            .cloned()
            .collect();
        if accepted.is_empty() {
            continue;
        }
        let (delivery, shard_id) = (delivery.clone(), shard_id.to_string());
        tokio::spawn(async move { invoke_with_retries(&delivery, index, accepted, &shard_id).await });
    }
}

async fn invoke_with_retries(delivery: &Delivery, index: usize, mut records: Vec<EventRecord>, shard_id: &str) {
    let (mapping, functions) = (&delivery.mappings[index], &delivery.functions);
    for attempt in 0..=MAX_RETRIES {
        let mut event = Event::default();
        event.records = records.clone();
        let payload = serde_json::to_value(&event).expect("events serialize");
        let failed_from = match functions.invoke(mapping.function, payload).await {
            // Lambda retries from the first failed record on.
            Ok(result) => {
                let response: DynamoDbEventResponse = serde_json::from_value(result).unwrap_or_default();
                let failed: Vec<String> =
                    response.batch_item_failures.into_iter().filter_map(|f| f.item_identifier).collect();
                records.iter().position(|r| r.change.sequence_number.as_ref().is_some_and(|s| failed.contains(s)))
            }
            Err(err) => {
                tracing::warn!(function = mapping.function.name(), error = %err, "invocation failed");
                Some(0)
            }
        };
        let Some(first) = failed_from else { return };
        records.drain(..first);
        tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt + 1))).await;
    }
    tracing::error!(function = mapping.function.name(), records = records.len(), "retries exhausted; batch sent to the failure destination");
    let sequence = |r: Option<&EventRecord>| r.and_then(|r| r.change.sequence_number.clone()).unwrap_or_default();
    let (first, last) = (sequence(records.first()), sequence(records.last()));
    lambda::stream_batch_failed(
        &delivery.failures,
        mapping.function,
        MAX_RETRIES + 1,
        &delivery.stream_arn,
        shard_id,
        (&first, &last),
        records.len(),
    )
    .await;
}

fn to_lambda_record(record: Record, stream_arn: &str) -> EventRecord {
    let mut r = EventRecord::default();
    r.event_id = record.event_id.unwrap_or_default();
    // TTL deletes come from DynamoDB Local as an unknown operation: they are REMOVEs on AWS.
    r.event_name = match record.event_name.as_ref().map(|n| n.as_str()) {
        Some("INSERT") => "INSERT",
        Some("MODIFY") => "MODIFY",
        _ => "REMOVE",
    }
    .to_string();
    r.event_version = record.event_version;
    r.event_source = Some("aws:dynamodb".into());
    r.aws_region = record.aws_region.unwrap_or_default();
    r.event_source_arn = Some(stream_arn.to_string());
    if let Some(s) = record.dynamodb {
        if let Some(at) = s.approximate_creation_date_time {
            r.change.approximate_creation_date_time =
                chrono::DateTime::from_timestamp(at.secs(), at.subsec_nanos()).unwrap_or_default();
        }
        r.change.keys = s.keys.unwrap_or_default().into();
        r.change.new_image = s.new_image.unwrap_or_default().into();
        r.change.old_image = s.old_image.unwrap_or_default().into();
        r.change.sequence_number = s.sequence_number;
        r.change.size_bytes = s.size_bytes.unwrap_or_default();
        r.change.stream_view_type = Some(StreamViewType::NewAndOldImages);
    }
    r
}
