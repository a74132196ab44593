//! End to end on the local stack: the runners deliver as Lambda does. A scheduled start whose
//! invocations keep dying is tried three times, then lands in the on-failure queue in Lambda's
//! record shape; once the fault stops, the watchdog publishes the post.


use std::time::{Duration, Instant};

use instapipe_core::post::DestState;
use instapipe_local::LocalStack;
use instapipe_local::functions::Function;
use instapipe_local::lambda::KillPlan;
use instapipe_local::settings::Settings;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::common::{self, ACCOUNT, TOKEN};

async fn wait_for_records(stack: &LocalStack, at_least: usize, timeout: Duration) -> Vec<Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let records = stack.failure_queues.peek(&stack.failure_queues.async_url).await.unwrap();
        if records.len() >= at_least || Instant::now() > deadline {
            return records;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_that_keeps_dying_goes_to_the_failure_queue_and_the_watchdog_publishes_it() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
    let mut settings = Settings::for_tests();
    settings.fast_waits();
    // Long enough for the three attempts to end first.
    settings.set("WATCHDOG_GRACE_SECS", "6");
    let stack = LocalStack::start(settings, common::fast_sim()).await.expect("the local stack starts (did `make deps` run?)");
    stack.add_account(ACCOUNT, TOKEN).await.unwrap();

    let at = (OffsetDateTime::now_utc() + time::Duration::seconds(4)).format(&Rfc3339).unwrap();
    let caption = "Dies at every start, published anyway";
    let body = json!({ "caption": caption, "media": [{ "url": "https://cdn.example.com/dying.jpg", "type": "image" }],
                       "accounts": [ACCOUNT], "publish_at": at });
    let post_id = common::accepted(&stack, &body, "msg_dying_start").await;
    assert_eq!(stack.destinations(&post_id).await[0].state, DestState::Scheduled);
    // Once its start schedule exists, every create-container invocation dies before it does
    // anything: nothing but the watchdog can move the post afterwards.
    let deadline = Instant::now() + Duration::from_secs(3);
    while stack.clients.scheduler.list_schedules().group_name(stack.config.schedule_group()).send().await.unwrap().schedules().is_empty() {
        assert!(Instant::now() < deadline, "no start schedule was created");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dying = KillPlan { rate: 1.0, functions: ["create-container".to_string()].into(), window: Duration::ZERO };
    stack.functions.kills().set(dying);

    let records = wait_for_records(&stack, 1, Duration::from_secs(15)).await;
    assert_eq!(records.len(), 1, "one exhausted event: {records:?}");
    let record = &records[0];
    assert_eq!(record["requestContext"]["condition"], "RetriesExhausted");
    assert_eq!(record["requestContext"]["approximateInvokeCount"], 3);
    let arn = record["requestContext"]["functionArn"].as_str().unwrap();
    assert!(arn.starts_with(&stack.config.pipeline.schedules.create_container_arn), "{arn}");
    assert_eq!(record["requestPayload"]["post_id"], post_id.as_str());
    assert_eq!(record["requestPayload"]["account_id"], ACCOUNT);
    assert!(record["responsePayload"]["errorMessage"].as_str().unwrap().contains("killed"), "{record}");
    assert_eq!(stack.functions.usage()[&Function::CreateContainer].errors, 3);
    assert!(common::published_with(&stack, caption).is_empty());
    assert!(!stack.destinations(&post_id).await[0].state.is_final());

    stack.functions.kills().set(KillPlan::default());
    let dests = stack.wait_final(&post_id, Duration::from_secs(40)).await.unwrap();
    assert_eq!(dests[0].state, DestState::Published, "{:?}", dests[0].history);
    assert!(dests[0].rearms >= 1, "the watchdog restarted it: {:?}", dests[0].history);
    assert_eq!(common::published_with(&stack, caption).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_invocations_retry_and_late_schedules_still_publish() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
    let mut settings = Settings::for_tests();
    settings.fast_waits();
    settings.kills = KillPlan { rate: 0.3, functions: Default::default(), window: Duration::from_millis(300) };
    settings.kill_seed = 11;
    settings.schedule_lateness = Duration::from_secs(3);
    settings.set("WATCHDOG_GRACE_SECS", "5");
    let stack = LocalStack::start(settings, common::fast_sim()).await.expect("the local stack starts (did `make deps` run?)");
    stack.add_account(ACCOUNT, TOKEN).await.unwrap();

    let at = (OffsetDateTime::now_utc() + time::Duration::seconds(1)).format(&Rfc3339).unwrap();
    let mut posts = Vec::new();
    for i in 0..6 {
        let caption = format!("Killed now and then {i}");
        let mut body = common::post(&caption, &format!("https://cdn.example.com/killed-{i}.jpg"), "image");
        if i % 2 == 0 {
            body["publish_at"] = json!(at);
        }
        posts.push((common::accepted(&stack, &body, &format!("msg_killed_{i}")).await, caption));
    }
    for (post_id, caption) in &posts {
        let dests = stack.wait_final(post_id, Duration::from_secs(90)).await.unwrap();
        assert_eq!(dests[0].state, DestState::Published, "{:?}", dests[0].history);
        assert_eq!(common::published_with(&stack, caption).len(), 1, "{caption}");
    }
    let killed: u64 = stack.functions.usage().values().map(|u| u.errors).sum();
    assert!(killed > 0, "30 % of invocations were to be killed");
}
