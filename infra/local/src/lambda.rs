//! What Lambda itself does around a handler, for the local runners: asynchronous invocation (two
//! retries with backoff, then the on-failure destination: an SQS queue in moto, as
//! template.yaml's EventInvokeConfig), the stream mapping's failure destination, and invocations
//! killed mid-handler (as a timeout or out-of-memory would), seeded so a run can be repeated.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::functions::{Function, Functions};

/// Lambda's default (and template.yaml's) MaximumRetryAttempts of an asynchronous invocation.
pub const ASYNC_RETRIES: u32 = 2;

/// The on-failure queues' names in moto.
pub const ASYNC_FAILURE_QUEUE: &str = "instapipe-async-failures";
pub const STREAM_FAILURE_QUEUE: &str = "instapipe-stream-failures";

/// A seeded generator (splitmix64): the same seed and order of draws repeat the same choices.
pub struct Dice(Mutex<u64>);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice(Mutex::new(seed))
    }

    fn next(&self) -> u64 {
        let mut state = self.0.lock().unwrap();
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// `true` with probability `rate` (a rate of 0 draws nothing).
    pub fn chance(&self, rate: f64) -> bool {
        rate > 0.0 && ((self.next() >> 11) as f64 / (1u64 << 53) as f64) < rate
    }

    /// A duration in `0..=max`.
    pub fn up_to(&self, max: Duration) -> Duration {
        let ms = max.as_millis() as u64;
        if ms == 0 { Duration::ZERO } else { Duration::from_millis(self.next() % (ms + 1)) }
    }
}

/// Which invocations die mid-handler (`INSTAPIPE_KILL_RATE`): changeable while the stack runs,
/// so a test can stop the fault.
pub struct Kills {
    dice: Dice,
    plan: Mutex<KillPlan>,
}

#[derive(Clone, Debug, Default)]
pub struct KillPlan {
    pub rate: f64,
    /// Only these functions (by name); empty: every function.
    pub functions: HashSet<String>,
    /// The latest point at which a killed invocation dies (`INSTAPIPE_KILL_WINDOW_MS`).
    pub window: Duration,
}

impl Kills {
    pub fn new(plan: KillPlan, seed: u64) -> Kills {
        Kills { dice: Dice::new(seed), plan: Mutex::new(plan) }
    }

    pub fn off() -> Kills {
        Kills::new(KillPlan::default(), 0)
    }

    pub fn set(&self, plan: KillPlan) {
        *self.plan.lock().unwrap() = plan;
    }

    /// `set`, drawing from `seed` from now on.
    pub fn set_seeded(&self, plan: KillPlan, seed: u64) {
        *self.dice.0.lock().unwrap() = seed;
        self.set(plan);
    }

    /// When this invocation of `function` is to die, if it is.
    pub fn decide(&self, function: &str) -> Option<Duration> {
        let plan = self.plan.lock().unwrap().clone();
        if plan.rate <= 0.0 || !(plan.functions.is_empty() || plan.functions.contains(function)) {
            return None;
        }
        self.dice.chance(plan.rate).then(|| self.dice.up_to(plan.window))
    }
}

/// The deployed function's ARN, as the local settings name them.
pub fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:123456789012:function:instapipe-{name}")
}

/// The on-failure destinations: SQS queues in moto, created with the table.
pub struct FailureQueues {
    pub sqs: aws_sdk_sqs::Client,
    pub async_url: String,
    pub stream_url: String,
}

impl FailureQueues {
    pub async fn create(sqs: aws_sdk_sqs::Client) -> Result<FailureQueues, String> {
        let create = |name: &'static str| {
            let sqs = sqs.clone();
            async move {
                let out = sqs.create_queue().queue_name(name).send().await.map_err(|e| format!("CreateQueue {name}: {e:?}"))?;
                out.queue_url.ok_or_else(|| format!("CreateQueue {name} answered no URL"))
            }
        };
        let async_url = create(ASYNC_FAILURE_QUEUE).await?;
        let stream_url = create(STREAM_FAILURE_QUEUE).await?;
        Ok(FailureQueues { sqs, async_url, stream_url })
    }

    async fn send(&self, url: &str, record: &Value) {
        if let Err(err) = self.sqs.send_message().queue_url(url).message_body(record.to_string()).send().await {
            // Lambda would keep trying to deliver to the destination; here the log is the trace.
            tracing::error!(error = ?err, %record, "sending to the on-failure queue failed");
        }
    }

    /// Every message body of `url` now: received (hidden meanwhile, so each is read once) and
    /// then made visible again.
    pub async fn peek(&self, url: &str) -> Result<Vec<Value>, String> {
        let mut bodies = Vec::new();
        let mut handles = Vec::new();
        loop {
            let out = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .send()
                .await
                .map_err(|e| format!("ReceiveMessage: {e:?}"))?;
            let messages = out.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            for m in messages {
                bodies.push(serde_json::from_str(m.body().unwrap_or("null")).unwrap_or(Value::Null));
                handles.extend(m.receipt_handle.clone());
            }
        }
        for handle in handles {
            let _ = self.sqs.change_message_visibility().queue_url(url).receipt_handle(handle).visibility_timeout(0).send().await;
        }
        Ok(bodies)
    }
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

fn request_id() -> String {
    ulid::Ulid::new().to_string().to_lowercase()
}

/// Invokes functions asynchronously as Lambda does: the event is accepted at once; a failed
/// invocation is tried again after `retry_delay` and twice that, then its event goes to the
/// on-failure queue in Lambda's destination record shape.
pub struct AsyncInvoker {
    pub functions: Arc<Functions>,
    pub queues: Arc<FailureQueues>,
    /// Lambda waits about a minute, then two; scaled down locally.
    pub retry_delay: Duration,
    /// ARN per function (create-container's and poll-status's as the settings name them).
    pub arns: HashMap<Function, String>,
}

impl AsyncInvoker {
    fn arn(&self, function: Function) -> String {
        self.arns.get(&function).cloned().unwrap_or_else(|| function_arn(function.name()))
    }

    /// Hands the event over and returns (the caller does not wait for the handler).
    pub fn invoke(self: &Arc<Self>, function: Function, payload: Value) {
        let this = self.clone();
        tokio::spawn(async move { this.deliver(function, payload).await });
    }

    /// Runs the invocation and its retries; `true` when one of them succeeded.
    pub async fn deliver(&self, function: Function, payload: Value) -> bool {
        let mut last_error = String::new();
        for attempt in 0..=ASYNC_RETRIES {
            if attempt > 0 {
                tokio::time::sleep(self.retry_delay * attempt).await;
            }
            match self.functions.invoke(function, payload.clone()).await {
                Ok(_) => return true,
                Err(err) => {
                    tracing::warn!(function = function.name(), attempt = attempt + 1, error = %err, "asynchronous invocation failed");
                    last_error = err;
                }
            }
        }
        tracing::error!(function = function.name(), error = %last_error, "retries exhausted; event sent to the on-failure queue");
        let record = json!({
            "version": "1.0",
            "timestamp": now_rfc3339(),
            "requestContext": {
                "requestId": request_id(),
                "functionArn": format!("{}:$LATEST", self.arn(function)),
                "condition": "RetriesExhausted",
                "approximateInvokeCount": ASYNC_RETRIES + 1,
            },
            "requestPayload": payload,
            "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
            "responsePayload": { "errorMessage": last_error, "errorType": "Runtime.Error" },
        });
        self.queues.send(&self.queues.async_url, &record).await;
        false
    }
}

/// The stream mapping's failure record: metadata about the batch, not its records (as on AWS).
pub async fn stream_batch_failed(
    queues: &FailureQueues,
    function: Function,
    invocations: u32,
    stream_arn: &str,
    shard_id: &str,
    sequence_numbers: (&str, &str),
    batch_size: usize,
) {
    let record = json!({
        "version": "1.0",
        "timestamp": now_rfc3339(),
        "requestContext": {
            "requestId": request_id(),
            "functionArn": format!("{}:$LATEST", function_arn(function.name())),
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": invocations,
        },
        "responseContext": { "statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled" },
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": sequence_numbers.0,
            "endSequenceNumber": sequence_numbers.1,
            "batchSize": batch_size,
            "streamArn": stream_arn,
        },
    });
    queues.send(&queues.stream_url, &record).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kills_only_the_named_functions_at_the_rate() {
        let kills = Kills::new(
            KillPlan { rate: 1.0, functions: ["create-container".to_string()].into(), window: Duration::from_millis(50) },
            3,
        );
        assert!(kills.decide("create-container").is_some_and(|at| at <= Duration::from_millis(50)));
        assert_eq!(kills.decide("poll-status"), None);
        kills.set(KillPlan { rate: 0.25, ..KillPlan::default() });
        let killed = (0..4000).filter(|_| kills.decide("publish").is_some()).count();
        assert!((800..1200).contains(&killed), "{killed} of 4000 at 25 %");
        kills.set(KillPlan::default());
        assert_eq!(kills.decide("publish"), None);
    }

    #[test]
    fn the_same_seed_repeats_the_same_choices() {
        let draw = |seed| {
            let dice = Dice::new(seed);
            (0..64).map(|_| (dice.chance(0.5), dice.up_to(Duration::from_secs(9)))).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }
}
