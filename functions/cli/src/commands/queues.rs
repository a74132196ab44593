//! `instapipe queues show | redrive`: what Lambda could not deliver, and delivering it again.
//!
//! Two SQS queues of template.yaml hold it:
//! - `AsyncFailureQueue` (`ASYNC_FAILURE_QUEUE_URL`): asynchronous invocations (Scheduler,
//!   EventBridge) that failed Lambda's two retries, as Lambda's destination record: the
//!   function's ARN and the whole event (`requestPayload`). Redrive invokes the function with
//!   that event again through the [`Invoker`] port (Lambda Invoke, InvocationType `Event`: the
//!   deployed function in AWS, the local runner's Invoke endpoint against `make run`) and
//!   deletes the message only once the invocation was accepted.
//! - `StreamFailureQueue` (`STREAM_FAILURE_QUEUE_URL`): stream batches that used up their
//!   retries. Their records hold only pointers into the table's stream, which keeps records
//!   24 hours: redrive reads the records pointed at and re-arms each destination they name
//!   through the watchdog's path (`handlers::sweep::rearm_now`); when the stream no longer has
//!   them it says so and leaves the message.
//!
//! Delivering an event twice is harmless: every step is a conditional write on the
//! destination's version, so a second start finds the destination moved on and does nothing.

use std::io::Write;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_dynamodbstreams::types::ShardIteratorType;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use aws_sdk_sqs::error::DisplayErrorContext;
use instapipe_core::handlers::sweep::{self, Rearmed};
use serde::Serialize;
use serde_json::Value;

use super::{CliError, Ctx, Result};

/// The on-failure queue of the asynchronously invoked functions (template.yaml output
/// `AsyncFailureQueueUrl`).
pub const ASYNC_QUEUE_VAR: &str = "ASYNC_FAILURE_QUEUE_URL";
/// The stream mappings' failure queue (template.yaml output `StreamFailureQueueUrl`).
pub const STREAM_QUEUE_VAR: &str = "STREAM_FAILURE_QUEUE_URL";

/// How long a message read by `redrive` stays hidden from other readers while it is worked on.
const REDRIVE_VISIBILITY_SECS: i32 = 300;
/// How long `show` hides what it reads (it makes every message visible again at once).
const SHOW_VISIBILITY_SECS: i32 = 30;
/// At most this many messages per queue and run.
pub const MAX_MESSAGES: usize = 1000;

/// Where the failed events are: the queues' URLs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueUrls {
    pub async_failures: Option<String>,
    pub stream_failures: Option<String>,
}

impl QueueUrls {
    /// `ASYNC_FAILURE_QUEUE_URL` and `STREAM_FAILURE_QUEUE_URL` (blank counts as unset).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> QueueUrls {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        QueueUrls { async_failures: get(ASYNC_QUEUE_VAR), stream_failures: get(STREAM_QUEUE_VAR) }
    }

    pub fn from_env() -> QueueUrls {
        QueueUrls::from_lookup(|name| std::env::var(name).ok())
    }

    fn require_any(&self) -> Result<()> {
        if self.async_failures.is_none() && self.stream_failures.is_none() {
            return Err(CliError(format!(
                "no failure queue configured: set {ASYNC_QUEUE_VAR} and {STREAM_QUEUE_VAR} (the stack's outputs \
                 AsyncFailureQueueUrl and StreamFailureQueueUrl; `make run` writes both to .instapipe/local.env)"
            )));
        }
        Ok(())
    }
}

/// Invokes a function asynchronously, as Scheduler and EventBridge do: accepted means Lambda
/// took the event (its own retries and on-failure destination apply again).
#[async_trait]
pub trait Invoker: Send + Sync {
    async fn invoke_async(&self, function_arn: &str, payload: &Value) -> std::result::Result<(), String>;
}

/// Lambda's Invoke API, InvocationType `Event`. `AWS_ENDPOINT_URL_LAMBDA` points it at the local
/// stack's runner, which answers the same API.
pub struct LambdaInvoker(pub aws_sdk_lambda::Client);

#[async_trait]
impl Invoker for LambdaInvoker {
    async fn invoke_async(&self, function_arn: &str, payload: &Value) -> std::result::Result<(), String> {
        let body = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
        let out = self
            .0
            .invoke()
            .function_name(function_arn)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(body))
            .send()
            .await
            .map_err(|e| DisplayErrorContext(e).to_string())?;
        match out.status_code() {
            202 => Ok(()),
            other => Err(format!("Lambda answered {other} instead of 202 Accepted")),
        }
    }
}

/// What the `queues` commands work with, besides the functions' [`Ctx`].
#[derive(Clone)]
pub struct QueueDeps {
    pub sqs: aws_sdk_sqs::Client,
    pub streams: aws_sdk_dynamodbstreams::Client,
    pub invoker: Arc<dyn Invoker>,
    pub urls: QueueUrls,
}

impl QueueDeps {
    /// From the environment, like the rest of the CLI: the queue URLs above, and the SDK's
    /// standard variables (`AWS_ENDPOINT_URL_SQS`, `AWS_ENDPOINT_URL_LAMBDA`,
    /// `AWS_ENDPOINT_URL_DYNAMODB_STREAMS` against the local stack).
    pub async fn from_env() -> QueueDeps {
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(instapipe_core::deps::aws_timeouts())
            .load()
            .await;
        QueueDeps {
            sqs: aws_sdk_sqs::Client::new(&sdk),
            streams: aws_sdk_dynamodbstreams::Client::new(&sdk),
            invoker: Arc::new(LambdaInvoker(aws_sdk_lambda::Client::new(&sdk))),
            urls: QueueUrls::from_env(),
        }
    }
}

/// Which queue a message is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    /// Asynchronous invocations that failed Lambda's retries.
    Async,
    /// Stream batches that failed every retry.
    Stream,
}

impl QueueKind {
    fn title(self) -> &'static str {
        match self {
            QueueKind::Async => "Asynchronous invocations that failed Lambda's retries",
            QueueKind::Stream => "Stream batches that failed every retry",
        }
    }

    fn var(self) -> &'static str {
        match self {
            QueueKind::Async => ASYNC_QUEUE_VAR,
            QueueKind::Stream => STREAM_QUEUE_VAR,
        }
    }
}

/// The stream records a failed batch points at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StreamBatch {
    pub stream_arn: String,
    pub shard_id: String,
    pub start_sequence_number: String,
    pub end_sequence_number: String,
    pub batch_size: u64,
}

/// One message of a failure queue, read as Lambda's destination record.
#[derive(Clone, Debug, Serialize)]
pub struct FailedEvent {
    pub queue: QueueKind,
    pub message_id: String,
    /// The function's name (`<stack>-create-container`), from `function_arn`.
    pub function: String,
    pub function_arn: String,
    /// The post and account the event was about, when the payload names them (create-container's
    /// and poll-status's inputs do; a sweep or a token refresh does not).
    pub post_id: Option<String>,
    pub account_id: Option<String>,
    /// Lambda's reason: `RetriesExhausted`, `EventAgeExceeded`, `RetryAttemptsExhausted`, …
    pub condition: Option<String>,
    /// The function's error (`responsePayload.errorMessage`, with its type), when there was one.
    pub error: Option<String>,
    /// When Lambda gave up (the record's `timestamp`).
    pub failed_at: Option<String>,
    /// How many times Lambda invoked the function with it (`approximateInvokeCount`).
    pub invocations: Option<u64>,
    /// How many times the message was read from the queue, this time included.
    pub received: u64,
    /// The event, to invoke the function with again (asynchronous invocations only).
    pub payload: Option<Value>,
    /// The stream records it points at (stream batches only).
    pub stream_batch: Option<StreamBatch>,
    #[serde(skip)]
    receipt_handle: String,
}

impl FailedEvent {
    fn parse(queue: QueueKind, message: &aws_sdk_sqs::types::Message) -> FailedEvent {
        let body: Value = message.body().and_then(|b| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
        let context = &body["requestContext"];
        let function_arn = context["functionArn"].as_str().unwrap_or_default().to_string();
        let payload = body.get("requestPayload").filter(|p| !p.is_null()).cloned();
        let named = |field: &str| {
            payload.as_ref().and_then(|p| p[field].as_str().or_else(|| p["detail"][field].as_str())).map(str::to_string)
        };
        let response = &body["responsePayload"];
        let error = response["errorMessage"].as_str().map(|message| match response["errorType"].as_str() {
            Some(kind) => format!("{message} ({kind})"),
            None => message.to_string(),
        });
        let batch = &body["DDBStreamBatchInfo"];
        let stream_batch = batch.is_object().then(|| StreamBatch {
            stream_arn: batch["streamArn"].as_str().unwrap_or_default().to_string(),
            shard_id: batch["shardId"].as_str().unwrap_or_default().to_string(),
            start_sequence_number: batch["startSequenceNumber"].as_str().unwrap_or_default().to_string(),
            end_sequence_number: batch["endSequenceNumber"].as_str().unwrap_or_default().to_string(),
            batch_size: batch["batchSize"].as_u64().unwrap_or(0),
        });
        let received = message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        FailedEvent {
            queue,
            message_id: message.message_id().unwrap_or_default().to_string(),
            function: function_name(&function_arn).to_string(),
            post_id: named("post_id"),
            account_id: named("account_id"),
            condition: context["condition"].as_str().map(str::to_string),
            error,
            failed_at: body["timestamp"].as_str().map(str::to_string),
            invocations: context["approximateInvokeCount"].as_u64(),
            received,
            payload,
            stream_batch,
            function_arn,
            receipt_handle: message.receipt_handle().unwrap_or_default().to_string(),
        }
    }

    /// `--function F`: the deployed name (`<stack>-create-container`), or the function's own
    /// name (`create-container`) that the deployed name ends with.
    fn is_of(&self, function: &str) -> bool {
        self.function == function || (FUNCTIONS.contains(&function) && self.function.ends_with(&format!("-{function}")))
    }

    fn destination(&self) -> String {
        match (&self.post_id, &self.account_id) {
            (Some(post), Some(account)) => format!("post {post} account {account}"),
            (Some(post), None) => format!("post {post}"),
            (None, Some(account)) => format!("account {account}"),
            (None, None) => match &self.stream_batch {
                Some(b) => format!("{} stream record(s) {}..{}", b.batch_size, b.start_sequence_number, b.end_sequence_number),
                None => "-".to_string(),
            },
        }
    }

    fn line(&self) -> String {
        let why = [self.condition.clone(), self.invocations.map(|n| format!("after {n} invocations"))]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        let error = self.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
        format!(
            "  {}  {}  {}  {}{}  (message {}, read {}x)",
            self.failed_at.as_deref().unwrap_or("-"),
            self.function,
            self.destination(),
            if why.is_empty() { "failed".to_string() } else { why },
            error,
            self.message_id,
            self.received
        )
    }
}

/// The functions' own names (the function table's), which the deployed names end with.
const FUNCTIONS: [&str; 8] = {
    use instapipe_core::functions::{self as table, Function as _};
    [
        table::IngestWebhook::NAME,
        table::IngestEvent::NAME,
        table::CreateContainer::NAME,
        table::PollStatus::NAME,
        table::Publish::NAME,
        table::Sweep::NAME,
        table::RefreshTokens::NAME,
        table::Notify::NAME,
    ]
};

/// `arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]` → NAME.
fn function_name(arn: &str) -> &str {
    arn.split(':').nth(6).unwrap_or(arn)
}

/// Reads up to [`MAX_MESSAGES`] messages, each hidden for `visibility` seconds meanwhile.
async fn receive_all(sqs: &aws_sdk_sqs::Client, url: &str, queue: QueueKind, visibility: i32) -> Result<Vec<FailedEvent>> {
    let mut events = Vec::new();
    while events.len() < MAX_MESSAGES {
        let out = sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(visibility)
            // Long polling: short polls sample only some of SQS's servers and may miss messages.
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
            .send()
            .await
            .map_err(|e| CliError(format!("cannot read {url} ({}): {}", queue.var(), DisplayErrorContext(e))))?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        events.extend(messages.iter().map(|m| FailedEvent::parse(queue, m)));
    }
    Ok(events)
}

/// Makes a message visible again at once (it stays in the queue).
async fn release(sqs: &aws_sdk_sqs::Client, url: &str, event: &FailedEvent) {
    let released = sqs.change_message_visibility().queue_url(url).receipt_handle(&event.receipt_handle).visibility_timeout(0).send().await;
    if let Err(err) = released {
        tracing::warn!(message_id = %event.message_id, error = %DisplayErrorContext(err), "could not make the message visible again; it reappears when its visibility timeout ends");
    }
}

/// What one queue holds.
#[derive(Clone, Debug, Serialize)]
pub struct QueueContents {
    pub queue: QueueKind,
    pub queue_url: String,
    pub count: usize,
    pub messages: Vec<FailedEvent>,
}

/// `queues show --output json`: `null` for a queue whose URL is not configured.
#[derive(Debug, Serialize)]
pub struct ShowJson {
    pub async_failures: Option<QueueContents>,
    pub stream_failures: Option<QueueContents>,
}

/// Every message of both queues, left in them (read, then made visible again).
pub async fn show(deps: &QueueDeps, function: Option<&str>, out: &mut dyn Write) -> Result<ShowJson> {
    deps.urls.require_any()?;
    let mut json = ShowJson { async_failures: None, stream_failures: None };
    for (queue, url) in [(QueueKind::Async, &deps.urls.async_failures), (QueueKind::Stream, &deps.urls.stream_failures)] {
        let Some(url) = url else {
            writeln!(out, "{}: not configured (set {})", queue.title(), queue.var())?;
            continue;
        };
        let mut messages = receive_all(&deps.sqs, url, queue, SHOW_VISIBILITY_SECS).await?;
        for m in &messages {
            release(&deps.sqs, url, m).await;
        }
        messages.retain(|m| function.is_none_or(|f| m.is_of(f)));
        messages.sort_by(|a, b| a.failed_at.cmp(&b.failed_at));
        let mut by_function = std::collections::BTreeMap::<&str, usize>::new();
        for m in &messages {
            *by_function.entry(m.function.as_str()).or_default() += 1;
        }
        let counts = by_function.iter().map(|(f, n)| format!("{f} {n}")).collect::<Vec<_>>().join(", ");
        writeln!(out, "{} ({}): {}{}", queue.title(), queue.var(), messages.len(), if counts.is_empty() { String::new() } else { format!(" ({counts})") })?;
        for m in &messages {
            writeln!(out, "{}", m.line())?;
        }
        let contents = QueueContents { queue, queue_url: url.clone(), count: messages.len(), messages };
        match queue {
            QueueKind::Async => json.async_failures = Some(contents),
            QueueKind::Stream => json.stream_failures = Some(contents),
        }
    }
    Ok(json)
}

/// What `redrive` did with one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The function was invoked with the event again; the message is deleted.
    Invoked,
    /// Every destination the stream records name was re-armed (or had nothing left to do); the
    /// message is deleted.
    Rearmed,
    /// `--dry-run`: what would be done; nothing was.
    WouldInvoke,
    WouldRearm,
    /// Could not be done now (the invocation was refused, a step failed); the message stays.
    Failed,
    /// Can never be replayed (the stream no longer has its records, or it is no destination
    /// record); the message stays, the detail says why and what to do.
    NotReplayable,
}

#[derive(Clone, Debug, Serialize)]
pub struct Redriven {
    pub queue: QueueKind,
    pub message_id: String,
    pub function: String,
    pub post_id: Option<String>,
    pub account_id: Option<String>,
    pub outcome: Outcome,
    /// Whether the message was deleted from its queue.
    pub deleted: bool,
    pub detail: String,
}

/// `queues redrive --output json`.
#[derive(Debug, Serialize)]
pub struct RedriveJson {
    pub dry_run: bool,
    pub messages: Vec<Redriven>,
}

#[derive(Clone, Debug, Default)]
pub struct RedriveOptions {
    pub dry_run: bool,
    /// Only the messages of this function (its name, with or without the stack's prefix).
    pub function: Option<String>,
}

/// Delivers every message again (or, `--dry-run`, says what it would do); a message is deleted
/// only once its redelivery was accepted. Exit code 1 when a message could not be redriven.
pub async fn redrive(ctx: &Ctx, deps: &QueueDeps, options: &RedriveOptions, out: &mut dyn Write) -> Result<(u8, RedriveJson)> {
    deps.urls.require_any()?;
    let mut done = Vec::new();
    for (queue, url) in [(QueueKind::Async, &deps.urls.async_failures), (QueueKind::Stream, &deps.urls.stream_failures)] {
        let Some(url) = url else { continue };
        let messages = receive_all(&deps.sqs, url, queue, REDRIVE_VISIBILITY_SECS).await?;
        for event in messages {
            if options.function.as_deref().is_some_and(|f| !event.is_of(f)) {
                release(&deps.sqs, url, &event).await;
                continue;
            }
            let (outcome, detail) = match queue {
                QueueKind::Async => redrive_invocation(deps, &event, options.dry_run).await,
                QueueKind::Stream => redrive_stream_batch(ctx, deps, &event, options.dry_run).await,
            };
            let mut deleted = false;
            let mut detail = detail;
            if matches!(outcome, Outcome::Invoked | Outcome::Rearmed) {
                match deps.sqs.delete_message().queue_url(url).receipt_handle(&event.receipt_handle).send().await {
                    Ok(_) => deleted = true,
                    // Delivered but still queued: a second redrive delivers it again, which the
                    // conditional writes make harmless.
                    Err(err) => detail = format!("{detail}; the message could not be deleted ({})", DisplayErrorContext(err)),
                }
            } else {
                release(&deps.sqs, url, &event).await;
            }
            writeln!(
                out,
                "{}  {}  {}: {}{}",
                event.function,
                event.destination(),
                outcome_word(outcome),
                detail,
                if deleted { " (message deleted)" } else { "" }
            )?;
            done.push(Redriven {
                queue,
                message_id: event.message_id.clone(),
                function: event.function.clone(),
                post_id: event.post_id.clone(),
                account_id: event.account_id.clone(),
                outcome,
                deleted,
                detail,
            });
        }
    }
    let failed = done.iter().filter(|r| matches!(r.outcome, Outcome::Failed | Outcome::NotReplayable)).count();
    let count = |o: &[Outcome]| done.iter().filter(|r| o.contains(&r.outcome)).count();
    if options.dry_run {
        writeln!(out, "dry run: {} to invoke again, {} to re-arm, {} not replayable; nothing done", count(&[Outcome::WouldInvoke]), count(&[Outcome::WouldRearm]), failed)?;
    } else {
        writeln!(out, "{} invoked again, {} re-armed, {} left in the queues", count(&[Outcome::Invoked]), count(&[Outcome::Rearmed]), failed)?;
    }
    Ok((u8::from(failed > 0), RedriveJson { dry_run: options.dry_run, messages: done }))
}

fn outcome_word(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Invoked => "invoked again",
        Outcome::Rearmed => "re-armed",
        Outcome::WouldInvoke => "would invoke again",
        Outcome::WouldRearm => "would re-arm",
        Outcome::Failed => "FAILED, left in the queue",
        Outcome::NotReplayable => "NOT REPLAYABLE, left in the queue",
    }
}

async fn redrive_invocation(deps: &QueueDeps, event: &FailedEvent, dry_run: bool) -> (Outcome, String) {
    let Some(payload) = &event.payload else {
        return (Outcome::NotReplayable, "no requestPayload: not a record of Lambda's on-failure destination".into());
    };
    if event.function_arn.is_empty() {
        return (Outcome::NotReplayable, "no requestContext.functionArn: not a record of Lambda's on-failure destination".into());
    }
    if dry_run {
        return (Outcome::WouldInvoke, format!("{} with {payload}", event.function_arn));
    }
    match deps.invoker.invoke_async(&event.function_arn, payload).await {
        Ok(()) => (Outcome::Invoked, format!("{} accepted the event", event.function)),
        Err(err) => (Outcome::Failed, format!("invoking {} failed: {err}", event.function_arn)),
    }
}

/// A destination a stream record names (`pk` = `POST#<post>`, `sk` = `DEST#<account>`).
fn destination_of(keys: &std::collections::HashMap<String, aws_sdk_dynamodbstreams::types::AttributeValue>) -> Option<(String, String)> {
    let key = |name: &str| keys.get(name).and_then(|v| v.as_s().ok()).cloned();
    let post = key("pk")?.strip_prefix("POST#")?.to_string();
    let account = key("sk")?.strip_prefix("DEST#")?.to_string();
    Some((post, account))
}

/// Stream sequence numbers are decimal strings of different lengths.
fn sequence_after(a: &str, b: &str) -> bool {
    (a.len(), a) > (b.len(), b)
}

/// The destinations the batch's records name, read from the stream (in order, once each).
async fn stream_destinations(deps: &QueueDeps, batch: &StreamBatch) -> std::result::Result<Vec<(String, String)>, String> {
    let iterator = deps
        .streams
        .get_shard_iterator()
        .stream_arn(&batch.stream_arn)
        .shard_id(&batch.shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .sequence_number(&batch.start_sequence_number)
        .send()
        .await
        .map_err(|e| DisplayErrorContext(e).to_string())?;
    let mut next = iterator.shard_iterator;
    let mut found = Vec::new();
    // Bounded: a batch is at most a few hundred records.
    for _ in 0..100 {
        let Some(it) = next.take() else { break };
        let page = deps.streams.get_records().shard_iterator(it).send().await.map_err(|e| DisplayErrorContext(e).to_string())?;
        let records = page.records.unwrap_or_default();
        if records.is_empty() {
            break;
        }
        for record in records {
            let Some(change) = record.dynamodb else { continue };
            let sequence = change.sequence_number.unwrap_or_default();
            if sequence_after(&sequence, &batch.end_sequence_number) {
                return Ok(found);
            }
            if let Some(dest) = change.keys.as_ref().and_then(destination_of)
                && !found.contains(&dest)
            {
                found.push(dest);
            }
        }
        next = page.next_shard_iterator;
    }
    Ok(found)
}

async fn redrive_stream_batch(ctx: &Ctx, deps: &QueueDeps, event: &FailedEvent, dry_run: bool) -> (Outcome, String) {
    let Some(batch) = &event.stream_batch else {
        return (Outcome::NotReplayable, "no DDBStreamBatchInfo: not a record of a stream mapping's failure destination".into());
    };
    let destinations = match stream_destinations(deps, batch).await {
        Ok(found) if !found.is_empty() => found,
        outcome => {
            let why = match outcome {
                Err(err) => format!("the stream cannot give its records ({err})"),
                Ok(_) => "the stream no longer has its records".to_string(),
            };
            return (
                Outcome::NotReplayable,
                format!(
                    "{why}: the message holds only pointers into the table's stream, which keeps records 24 hours (the batch failed at {}). \
                     The watchdog restarts any destination left overdue; find others with `instapipe posts list --state …`, then delete the message",
                    event.failed_at.as_deref().unwrap_or("an unknown time")
                ),
            );
        }
    };
    if dry_run {
        let named = destinations.iter().map(|(p, a)| format!("post {p} account {a}")).collect::<Vec<_>>().join(", ");
        return (Outcome::WouldRearm, named);
    }
    let pipeline = match ctx.pipeline() {
        Ok(p) => p,
        Err(err) => return (Outcome::Failed, err.to_string()),
    };
    let why = format!(
        "by an operator (`instapipe queues redrive`): a {} stream batch failed every retry at {}",
        event.function,
        event.failed_at.as_deref().unwrap_or("an unknown time")
    );
    let mut notes = Vec::new();
    let mut failed = false;
    for (post, account) in &destinations {
        let note = match sweep::rearm_now(&pipeline, post, account, &why).await {
            Ok(Rearmed::Restarted(state)) => format!("post {post} account {account} re-armed at {state}"),
            Ok(Rearmed::NothingToRestart(state)) => format!("post {post} account {account} is {state}: nothing to restart"),
            Ok(Rearmed::Missing) => format!("post {post} account {account} does not exist (anymore)"),
            Ok(Rearmed::Moved) => format!("post {post} account {account} moved on meanwhile"),
            Err(err) => {
                failed = true;
                format!("post {post} account {account}: {err}")
            }
        };
        notes.push(note);
    }
    (if failed { Outcome::Failed } else { Outcome::Rearmed }, notes.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_urls_come_from_their_variables() {
        let urls = QueueUrls::from_lookup(|name| match name {
            ASYNC_QUEUE_VAR => Some("http://sqs/async".into()),
            STREAM_QUEUE_VAR => Some("  ".into()),
            _ => None,
        });
        assert_eq!(urls, QueueUrls { async_failures: Some("http://sqs/async".into()), stream_failures: None });
        let err = QueueUrls::default().require_any().unwrap_err().to_string();
        assert!(err.contains(ASYNC_QUEUE_VAR) && err.contains(STREAM_QUEUE_VAR), "{err}");
    }

    #[test]
    fn a_lambda_destination_record_is_read() {
        let body = serde_json::json!({
            "version": "1.0",
            "timestamp": "2026-12-01T10:00:00.000Z",
            "requestContext": { "requestId": "r", "functionArn": "arn:aws:lambda:eu-west-1:1:function:ip-create-container:$LATEST",
                                "condition": "RetriesExhausted", "approximateInvokeCount": 3 },
            "requestPayload": { "post_id": "P1", "account_id": "A1" },
            "responsePayload": { "errorMessage": "throttled", "errorType": "Runtime.Error" },
        });
        let message = aws_sdk_sqs::types::Message::builder().message_id("m1").receipt_handle("h").body(body.to_string()).build();
        let event = FailedEvent::parse(QueueKind::Async, &message);
        assert_eq!(event.function, "ip-create-container");
        assert_eq!((event.post_id.as_deref(), event.account_id.as_deref()), (Some("P1"), Some("A1")));
        assert_eq!(event.error.as_deref(), Some("throttled (Runtime.Error)"));
        assert_eq!((event.invocations, event.received), (Some(3), 1));
        assert!(event.is_of("create-container") && event.is_of("ip-create-container"));
        assert!(!event.is_of("container") && !event.is_of("poll-status"));
        assert!(event.line().contains("RetriesExhausted after 3 invocations: throttled"), "{}", event.line());
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert!(sequence_after("1000", "999"));
        assert!(!sequence_after("999", "1000"));
        assert!(!sequence_after("1000", "1000"));
    }
}
