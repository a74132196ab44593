//! End to end on the local stack: `instapipe queues show | redrive`. A post's asynchronous start
//! keeps dying until Lambda's retries are used up and the event lands in the on-failure queue;
//! the operator sees it, fixes the cause, redrives it, and the post is published exactly once,
//! even when the record is in the queue twice. A stream batch that used up its retries is
//! redriven by re-arming the destination its records name. The watchdog is off, so nothing but
//! the redrive can move these posts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use instapipe_cli::Ctx;
use instapipe_cli::commands::queues::{self, LambdaInvoker, Outcome, QueueDeps, QueueUrls, RedriveOptions};
use instapipe_core::post::DestState;
use instapipe_local::LocalStack;
use instapipe_local::lambda::KillPlan;
use instapipe_local::settings::Settings;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::common::{self, ACCOUNT, TOKEN};

/// The CLI's queue dependencies for this stack, as `--local` configures them from the env file
/// (`AWS_ENDPOINT_URL_SQS`, `_DYNAMODB_STREAMS`, `_LAMBDA`, and the two queue URLs).
fn queue_deps(stack: &LocalStack) -> QueueDeps {
    let env: std::collections::HashMap<&str, String> = stack.cli_env().into_iter().collect();
    let sdk = instapipe_local::stack::local_sdk_config();
    let sqs = aws_sdk_sqs::config::Builder::from(&sdk).endpoint_url(&env["AWS_ENDPOINT_URL_SQS"]).build();
    let streams = aws_sdk_dynamodbstreams::config::Builder::from(&sdk).endpoint_url(&env["AWS_ENDPOINT_URL_DYNAMODB_STREAMS"]).build();
    let lambda = aws_sdk_lambda::config::Builder::from(&sdk).endpoint_url(&env["AWS_ENDPOINT_URL_LAMBDA"]).build();
    QueueDeps {
        sqs: aws_sdk_sqs::Client::from_conf(sqs),
        streams: aws_sdk_dynamodbstreams::Client::from_conf(streams),
        invoker: Arc::new(LambdaInvoker(aws_sdk_lambda::Client::from_conf(lambda))),
        urls: QueueUrls::from_lookup(|name| env.get(name).cloned()),
    }
}

async fn started(settings: Settings) -> LocalStack {
    let stack = LocalStack::start(settings, common::fast_sim()).await.expect("the local stack starts (did `make deps` run?)");
    stack.add_account(ACCOUNT, TOKEN).await.unwrap();
    stack
}

fn no_watchdog() -> Settings {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
    let mut settings = Settings::for_tests();
    settings.fast_waits();
    settings.sweep_every = Duration::ZERO;
    settings
}

async fn wait_for_messages(stack: &LocalStack, url: &str, at_least: usize, timeout: Duration) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let records = stack.failure_queues.peek(url).await.unwrap();
        if records.len() >= at_least || Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn text(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap()
}

fn kill_only(function: &str) -> KillPlan {
    KillPlan { rate: 1.0, functions: [function.to_string()].into(), window: Duration::ZERO }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_used_up_its_retries_is_shown_redriven_and_published_once() {
    let stack = started(no_watchdog()).await;
    let deps = queue_deps(&stack);
    let ctx = Ctx::new(stack.clients.clone(), stack.config.clone());

    // Nothing failed yet: both queues are empty.
    let mut out = Vec::new();
    let shown = queues::show(&deps, None, &mut out).await.unwrap();
    assert_eq!((shown.async_failures.as_ref().unwrap().count, shown.stream_failures.as_ref().unwrap().count), (0, 0), "{}", text(out));

    let at = (OffsetDateTime::now_utc() + time::Duration::seconds(3)).format(&Rfc3339).unwrap();
    let caption = "Stranded by a dying start, redriven by the operator";
    let body = json!({ "caption": caption, "media": [{ "url": "https://cdn.example.com/redrive.jpg", "type": "image" }],
                       "accounts": [ACCOUNT], "publish_at": at });
    let post_id = common::accepted(&stack, &body, "msg_redrive_start").await;
    // Its start schedule exists: from now on every create-container invocation dies.
    let deadline = Instant::now() + Duration::from_secs(3);
    while stack.clients.scheduler.list_schedules().group_name(stack.config.schedule_group()).send().await.unwrap().schedules().is_empty() {
        assert!(Instant::now() < deadline, "no start schedule was created");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.functions.kills().set(kill_only("create-container"));

    let records = wait_for_messages(&stack, &stack.failure_queues.async_url, 1, Duration::from_secs(20)).await;
    assert_eq!(records.len(), 1, "{records:?}");

    // `queues show`: the function, the post and account, Lambda's condition and the error, the count.
    let mut out = Vec::new();
    let shown = queues::show(&deps, None, &mut out).await.unwrap();
    let out = text(out);
    assert!(out.contains("Asynchronous invocations that failed Lambda's retries (ASYNC_FAILURE_QUEUE_URL): 1 (instapipe-create-container 1)"), "{out}");
    assert!(out.contains(&format!("instapipe-create-container  post {post_id} account {ACCOUNT}  RetriesExhausted after 3 invocations: create-container killed")), "{out}");
    assert!(out.contains("Stream batches that failed every retry (STREAM_FAILURE_QUEUE_URL): 0"), "{out}");
    let listed = shown.async_failures.unwrap();
    assert_eq!(listed.count, 1);
    let message = &listed.messages[0];
    assert_eq!((message.post_id.as_deref(), message.account_id.as_deref()), (Some(post_id.as_str()), Some(ACCOUNT)));
    assert_eq!((message.function.as_str(), message.condition.as_deref(), message.invocations), ("instapipe-create-container", Some("RetriesExhausted"), Some(3)));
    assert!(message.failed_at.is_some() && message.error.as_deref().is_some_and(|e| e.contains("killed")), "{message:?}");
    // JSON, as --output json writes it.
    let json = serde_json::to_value(&queues::ShowJson { async_failures: Some(listed.clone()), stream_failures: None }).unwrap();
    assert_eq!(json["async_failures"]["messages"][0]["post_id"], post_id.as_str());
    assert_eq!(json["async_failures"]["messages"][0]["payload"], json!({ "post_id": post_id, "account_id": ACCOUNT }));
    // `show` leaves the messages where they are; `--function` filters.
    assert_eq!(stack.failure_queues.peek(&stack.failure_queues.async_url).await.unwrap().len(), 1);
    let mut out = Vec::new();
    let other = queues::show(&deps, Some("poll-status"), &mut out).await.unwrap();
    assert_eq!(other.async_failures.unwrap().count, 0, "{}", text(out));

    // A dry run says what it would do and does nothing.
    let mut out = Vec::new();
    let dry = RedriveOptions { dry_run: true, function: Some("create-container".into()) };
    let (code, planned) = queues::redrive(&ctx, &deps, &dry, &mut out).await.unwrap();
    assert_eq!(code, 0, "{}", text(out));
    assert_eq!(planned.messages.len(), 1);
    assert_eq!((planned.messages[0].outcome, planned.messages[0].deleted), (Outcome::WouldInvoke, false));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(stack.failure_queues.peek(&stack.failure_queues.async_url).await.unwrap().len(), 1);
    assert_eq!(stack.destinations(&post_id).await[0].state, DestState::Scheduled);

    // The record is in the queue twice (SQS delivers at least once): both are redriven, the
    // post is published once.
    stack.failure_queues.sqs.send_message().queue_url(&stack.failure_queues.async_url).message_body(records[0].to_string()).send().await.unwrap();
    // The cause is fixed; then the redrive.
    stack.functions.kills().set(KillPlan::default());
    let mut out = Vec::new();
    let (code, redriven) = queues::redrive(&ctx, &deps, &RedriveOptions::default(), &mut out).await.unwrap();
    let out = text(out);
    assert_eq!(code, 0, "{out}");
    assert_eq!(redriven.messages.len(), 2, "{out}");
    assert!(redriven.messages.iter().all(|m| m.outcome == Outcome::Invoked && m.deleted), "{redriven:?}");
    assert!(out.contains(&format!("instapipe-create-container  post {post_id} account {ACCOUNT}  invoked again")), "{out}");
    assert!(stack.failure_queues.peek(&stack.failure_queues.async_url).await.unwrap().is_empty());

    let dests = stack.wait_final(&post_id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(dests[0].state, DestState::Published, "{:?}", dests[0].history);
    // Late effects of the second invocation would show by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(common::published_with(&stack, caption).len(), 1, "published exactly once");
    let dest = &stack.destinations(&post_id).await[0];
    assert_eq!(dest.history.iter().filter(|h| h.state == DestState::Published).count(), 1, "{:?}", dest.history);
    assert!(stack.failure_queues.peek(&stack.failure_queues.async_url).await.unwrap().is_empty(), "the redriven invocations succeeded");

    // Redriving an empty queue does nothing.
    let mut out = Vec::new();
    let (code, nothing) = queues::redrive(&ctx, &deps, &RedriveOptions::default(), &mut out).await.unwrap();
    assert_eq!((code, nothing.messages.len()), (0, 0));
    assert!(text(out).contains("0 invoked again, 0 re-armed, 0 left in the queues"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_batch_that_used_up_its_retries_is_redriven_by_rearming_its_destination() {
    let stack = started(no_watchdog()).await;
    let deps = queue_deps(&stack);
    let ctx = Ctx::new(stack.clients.clone(), stack.config.clone());

    // publish dies at every try: the READY record uses up the stream mapping's retries.
    stack.functions.kills().set(kill_only("publish"));
    let caption = "Stranded by a dying publish, re-armed by the operator";
    let post_id = common::accepted(&stack, &common::post(caption, "https://cdn.example.com/stream-redrive.jpg", "image"), "msg_redrive_stream").await;
    let records = wait_for_messages(&stack, &stack.failure_queues.stream_url, 1, Duration::from_secs(90)).await;
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(stack.destinations(&post_id).await[0].state, DestState::Ready);

    let mut out = Vec::new();
    let shown = queues::show(&deps, None, &mut out).await.unwrap();
    let out = text(out);
    let batch = &shown.stream_failures.as_ref().unwrap().messages[0];
    assert_eq!((batch.function.as_str(), batch.condition.as_deref()), ("instapipe-publish", Some("RetryAttemptsExhausted")), "{out}");
    assert!(batch.stream_batch.as_ref().is_some_and(|b| b.batch_size >= 1), "{batch:?}");
    assert!(out.contains("Stream batches that failed every retry (STREAM_FAILURE_QUEUE_URL): 1 (instapipe-publish 1)"), "{out}");

    // The dry run reads the stream and names the destination.
    let mut out = Vec::new();
    let (_, planned) = queues::redrive(&ctx, &deps, &RedriveOptions { dry_run: true, function: None }, &mut out).await.unwrap();
    assert_eq!(planned.messages[0].outcome, Outcome::WouldRearm, "{}", text(out));
    assert!(planned.messages[0].detail.contains(&format!("post {post_id} account {ACCOUNT}")), "{:?}", planned.messages[0]);

    stack.functions.kills().set(KillPlan::default());
    let mut out = Vec::new();
    let (code, redriven) = queues::redrive(&ctx, &deps, &RedriveOptions::default(), &mut out).await.unwrap();
    let out = text(out);
    assert_eq!(code, 0, "{out}");
    assert_eq!((redriven.messages[0].outcome, redriven.messages[0].deleted), (Outcome::Rearmed, true), "{out}");
    assert!(out.contains(&format!("post {post_id} account {ACCOUNT} re-armed at READY")), "{out}");
    let dests = stack.wait_final(&post_id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(dests[0].state, DestState::Published, "{:?}", dests[0].history);
    assert_eq!(dests[0].rearms, 1);
    assert!(dests[0].history.iter().any(|h| h.note.as_deref().is_some_and(|n| n.contains("instapipe queues redrive"))), "{:?}", dests[0].history);
    assert_eq!(common::published_with(&stack, caption).len(), 1);

    // The same batch again (as if the delete had been lost): the destination is final, nothing
    // is published twice.
    stack.failure_queues.sqs.send_message().queue_url(&stack.failure_queues.stream_url).message_body(records[0].to_string()).send().await.unwrap();
    let mut out = Vec::new();
    let (code, again) = queues::redrive(&ctx, &deps, &RedriveOptions::default(), &mut out).await.unwrap();
    let out = text(out);
    assert_eq!((code, again.messages[0].outcome), (0, Outcome::Rearmed), "{out}");
    assert!(out.contains("is PUBLISHED: nothing to restart"), "{out}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(common::published_with(&stack, caption).len(), 1);
}
