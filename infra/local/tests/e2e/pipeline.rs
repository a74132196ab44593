//! End to end on the local stack: DynamoDB Local, moto, the Graph API simulator, and the real
//! handlers fed by the stream and by schedules. Each test starts a stack of its own.

use std::time::Duration;

use instapipe_core::post::DestState;
use instapipe_local::LocalStack;
use serde_json::{Value, json};

use crate::common::{self, ACCOUNT, TOKEN, fast_sim, post, post_items, send, stack};

fn published_with(stack: &LocalStack, caption: &str) -> usize {
    common::published_with(stack, caption).len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_post_is_published_once() {
    let stack = stack(fast_sim()).await;
    let caption = "First light over the harbour #instapipe";
    let (status, answer) = send(&stack, &post(caption, "https://cdn.example.com/harbour.jpg", "image"), "msg_image_1").await;
    assert_eq!(status, 202, "{answer}");
    let post_id = answer["post_id"].as_str().unwrap();

    let dests = stack.wait_final(post_id, Duration::from_secs(60)).await.unwrap();
    let d = &dests[0];
    assert_eq!(d.state, DestState::Published, "{:?}", d.failure);
    let permalink = d.permalink.as_deref().unwrap();
    assert!(permalink.starts_with("https://www.instagram.com/p/"), "{permalink}");

    let published = stack.sim.as_ref().unwrap().published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].caption.as_deref(), Some(caption));
    assert_eq!(published[0].media_urls, vec!["https://cdn.example.com/harbour.jpg".to_string()]);
    assert_eq!(Some(&published[0].media_id), d.media_id.as_ref());
    assert_eq!(published[0].permalink, permalink);
    let states: Vec<_> = d.history.iter().map(|h| h.state).collect();
    assert_eq!(states, [DestState::Queued, DestState::Processing, DestState::Ready, DestState::Publishing, DestState::Published]);
    // Images are ready within the inline check: no poll-status was needed.
    assert_eq!(d.poll_attempt, 0);
    // The token went in the Authorization header only, never in a URL.
    for request in stack.sim.as_ref().unwrap().requests() {
        assert!(!request.path_and_query.contains(TOKEN), "token in URL: {}", request.path_and_query);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_with_publish_at_is_published_after_that_time_and_not_before() {
    let stack = stack(fast_sim()).await;
    let publish_at = time::OffsetDateTime::now_utc() + Duration::from_secs(5);
    let caption = "Scheduled for later";
    let mut body = post(caption, "https://cdn.example.com/later.jpg", "image");
    body["publish_at"] = json!(publish_at.format(&time::format_description::well_known::Rfc3339).unwrap());
    let (status, answer) = send(&stack, &body, "msg_scheduled_1").await;
    assert_eq!((status, answer["state"].as_str()), (202, Some("SCHEDULED")), "{answer}");
    let post_id = answer["post_id"].as_str().unwrap();

    // A start schedule appears in Scheduler (moto) and nothing is published before the time.
    let mut saw_schedule = false;
    while time::OffsetDateTime::now_utc() < publish_at - Duration::from_millis(500) {
        let schedules = stack.clients.scheduler.list_schedules().group_name(stack.config.schedule_group()).send().await.unwrap();
        saw_schedule |= schedules.schedules().iter().any(|s| s.name().is_some_and(|n| n.starts_with(&format!("start-{post_id}-{ACCOUNT}-"))));
        assert_eq!(published_with(&stack, caption), 0, "published before publish_at");
        assert_eq!(stack.destinations(post_id).await[0].state, DestState::Scheduled);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(saw_schedule, "no start schedule was created");

    let dests = stack.wait_final(post_id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(dests[0].state, DestState::Published, "{:?}", dests[0].failure);
    let publishing = dests[0].history.iter().find(|h| h.state == DestState::Publishing).unwrap();
    assert!(publishing.at >= publish_at, "publishing at {} before {publish_at}", publishing.at);
    assert_eq!(published_with(&stack, caption), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_video_container_goes_through_poll_status() {
    let stack = stack(fast_sim()).await;
    let caption = "A reel that takes its time";
    let (status, answer) = send(&stack, &post(caption, "https://cdn.example.com/reel.mp4", "video"), "msg_video_1").await;
    assert_eq!(status, 202);
    let post_id = answer["post_id"].as_str().unwrap();
    let dests = stack.wait_final(post_id, Duration::from_secs(90)).await.unwrap();
    let d = &dests[0];
    assert_eq!(d.state, DestState::Published, "{:?}", d.failure);
    assert!(d.poll_attempt >= 1, "the container was never polled by schedule");
    let usage = stack.functions.usage();
    assert!(usage[&instapipe_local::functions::Function::PollStatus].invocations >= 1);
    let published = stack.sim.as_ref().unwrap().published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].media_product_type, "REELS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_delivery_of_the_same_webhook_gives_one_post() {
    let stack = stack(fast_sim()).await;
    let caption = "Sent twice, posted once";
    let body = post(caption, "https://cdn.example.com/twice.jpg", "image");
    let ((s1, a1), (s2, a2)) = tokio::join!(send(&stack, &body, "msg_dup_1"), send(&stack, &body, "msg_dup_1"));
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(a1["post_id"], a2["post_id"]);
    let (s3, a3) = send(&stack, &body, "msg_dup_1").await;
    assert_eq!((s3, &a3["post_id"], &a3["duplicate"]), (202, &a1["post_id"], &json!(true)));
    stack.wait_final(a1["post_id"].as_str().unwrap(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(published_with(&stack, caption), 1);
    assert_eq!(post_items(&stack).await, 3, "one delivery, one post, one destination");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_malformed_webhooks_are_refused_and_leave_no_item() {
    let stack = stack(fast_sim()).await;
    let body = post("forged", "https://cdn.example.com/x.jpg", "image").to_string();
    let forged = "whsec_Zm9yZ2VkLXNlY3JldC1mb3ItdGVzdGluZy0wMTIzNDU=";
    let response = instapipe_local::stack::send_signed(&stack.webhook_url(), forged, &body, "msg_forged").await.unwrap();
    assert_eq!(response.status(), 401);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "invalid_signature");

    let (status, answer) = send(&stack, &json!({"caption": "x", "media": [{"url": "https://a.example/x.jpg", "type": "gif"}], "accounts": [ACCOUNT]}), "msg_bad").await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["field"], "media[0].type");

    let unsigned = reqwest::Client::new()
        .post(stack.webhook_url())
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(post_items(&stack).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_instagram_cannot_fetch_fails_with_metas_reason() {
    let stack = stack(fast_sim()).await;
    let (status, answer) = send(&stack, &post("broken", "https://cdn.example.com/bad-media.jpg", "image"), "msg_bad_media").await;
    assert_eq!(status, 202);
    let dests = stack.wait_final(answer["post_id"].as_str().unwrap(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(dests[0].state, DestState::Failed);
    let reason = &dests[0].failure.as_ref().unwrap().reason;
    assert!(reason.contains("2207052"), "{reason}");
    assert!(stack.sim.as_ref().unwrap().published().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_post_whose_start_was_lost_is_published_by_the_watchdog() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn,instapipe_core=info").try_init();
    let mut settings = instapipe_local::settings::Settings::for_tests();
    settings.fast_waits().set("WATCHDOG_GRACE_SECS", "3");
    let stack = LocalStack::start(settings, fast_sim()).await.expect("the local stack starts");
    stack.add_account(ACCOUNT, TOKEN).await.unwrap();
    let publish_at = time::OffsetDateTime::now_utc() + Duration::from_secs(4);
    let caption = "Its start schedule was dropped";
    let mut body = post(caption, "https://cdn.example.com/dropped.jpg", "image");
    body["publish_at"] = json!(publish_at.format(&time::format_description::well_known::Rfc3339).unwrap());
    let (status, answer) = send(&stack, &body, "msg_dropped_start").await;
    assert_eq!(status, 202, "{answer}");
    let post_id = answer["post_id"].as_str().unwrap();

    // The start schedule is made, then lost (as an invocation Lambda dropped after its retries).
    let group = stack.config.schedule_group().to_string();
    let name = loop {
        let out = stack.clients.scheduler.list_schedules().group_name(&group).send().await.unwrap();
        if let Some(name) = out.schedules().iter().filter_map(|s| s.name()).find(|n| n.starts_with(&format!("start-{post_id}-"))) {
            break name.to_string();
        }
        assert!(time::OffsetDateTime::now_utc() < publish_at, "no start schedule before the publish time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    stack.clients.scheduler.delete_schedule().group_name(&group).name(&name).send().await.unwrap();

    let dests = stack.wait_final(post_id, Duration::from_secs(60)).await.unwrap();
    let d = &dests[0];
    assert_eq!(d.state, DestState::Published, "{:?}", d.failure);
    assert_eq!(d.rearms, 1, "restarted once by the watchdog: {:?}", d.history);
    assert!(d.history.iter().any(|h| h.note.as_deref().is_some_and(|n| n.contains("re-armed by the watchdog"))));
    assert_eq!(published_with(&stack, caption), 1);
    let published_at = d.history.iter().find(|h| h.state == DestState::Publishing).unwrap().at;
    assert!(published_at >= publish_at, "published at {published_at}, before {publish_at}");
}

/// On a busy machine a CreateTable attempt can time out although DynamoDB Local carries it out;
/// the retry must find the table, not fail the stack's start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_the_table_again_finds_the_one_there() {
    let stack = stack(fast_sim()).await;
    let table = stack.config.table_name();
    let arn = instapipe_local::stack::create_table(&stack.clients.dynamodb, table).await.expect("the table is found");
    let described = stack.clients.dynamodb.describe_table().table_name(table).send().await.unwrap();
    assert_eq!(described.table.and_then(|t| t.latest_stream_arn).as_deref(), Some(arn.as_str()));
}

/// Sends like a webhook sender: the same message again (same id) until it is accepted, as
/// Standard Webhooks senders retry a 5xx. Returns the post id and how many sends it took.
async fn send_until_accepted(stack: &LocalStack, body: &Value, webhook_id: &str) -> (String, u32) {
    let mut answers = Vec::new();
    for sends in 1..=6 {
        let (status, answer) = send(stack, body, webhook_id).await;
        if status == 202 {
            return (answer["post_id"].as_str().unwrap().to_string(), sends);
        }
        assert!(status >= 500, "only a server error may be retried: {status} {answer}");
        answers.push(answer);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{webhook_id} never accepted: {answers:?}");
}

/// DynamoDB, Scheduler and Secrets Manager throttle and fail on the functions' calls (through
/// the seeded fault proxies): the SDK's retries and the event sources' retries still carry every
/// post (images, reels polled by schedule, posts scheduled for later) to PUBLISHED, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_are_published_once_while_aws_throttles_fails_and_slows() {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn,instapipe_core=info").try_init();
    let mut settings = instapipe_local::settings::Settings::for_tests();
    settings.fast_waits();
    settings.aws_faults = instapipe_local::fault_proxy::AwsFaults {
        throttle_rate: 0.05,
        error_rate: 0.05,
        slow_rate: 0.05,
        slow_by: Duration::from_millis(200),
        seed: 11,
    };
    let stack = LocalStack::start(settings, fast_sim()).await.expect("the local stack starts (did `make deps` run?)");
    stack.add_account(ACCOUNT, TOKEN).await.unwrap();

    let mut posts = Vec::new();
    let mut sends = 0;
    let publish_at = time::OffsetDateTime::now_utc() + Duration::from_secs(4);
    for i in 0..10 {
        let caption = format!("Harbour at dusk, take {i} #instapipe");
        let mut body = match i % 5 {
            3 => post(&caption, &format!("https://cdn.example.com/dusk-{i}.mp4"), "video"),
            _ => post(&caption, &format!("https://cdn.example.com/dusk-{i}.jpg"), "image"),
        };
        if i % 5 == 4 {
            body["publish_at"] = json!(publish_at.format(&time::format_description::well_known::Rfc3339).unwrap());
        }
        let (post_id, tries) = send_until_accepted(&stack, &body, &format!("msg_aws_faults_{i}")).await;
        sends += tries;
        posts.push((post_id, caption));
    }
    let proxies = stack.aws_faults.as_ref().expect("the fault proxies run");
    for (post_id, caption) in &posts {
        // Generous: on a loaded machine every AWS call is slow too, and the SDK retries them.
        let dests = stack.wait_final(post_id, Duration::from_secs(180)).await.unwrap_or_else(|e| {
            panic!("{e}\nAWS faults: {}\ninvocations: {:?}", proxies.counts(), stack.functions.usage())
        });
        assert_eq!(dests.len(), 1, "{dests:?}");
        assert_eq!(dests[0].state, DestState::Published, "{post_id}: {:?}", dests[0].failure);
        assert_eq!(published_with(&stack, caption), 1, "{caption} published once");
        assert_eq!(
            common::published_with(&stack, caption)[0].media_id,
            dests[0].media_id.clone().unwrap(),
            "the post records the media that carries its caption"
        );
    }
    assert_eq!(stack.sim.as_ref().unwrap().published().len(), posts.len());

    let (dynamodb, moto) = (proxies.dynamodb.counts(), proxies.moto.counts());
    let usage = stack.functions.usage();
    println!("webhook sends for {} posts: {sends}", posts.len());
    println!("DynamoDB: {dynamodb}");
    println!("moto (Scheduler, Secrets Manager): {moto}");
    println!("invocations (calls, errors): {:?}", usage.iter().map(|(f, u)| (f.name(), u.invocations, u.errors)).collect::<Vec<_>>());
    let all = proxies.counts();
    assert!(dynamodb.throttled > 0 && dynamodb.errored > 0, "DynamoDB: {dynamodb}");
    assert!(moto.requests > 0, "Scheduler and Secrets Manager calls go through the proxy: {moto}");
    assert!(all.slowed > 0, "{all}");
    assert!(all.retried_throttles > 0 && all.retried_errors > 0, "the SDK retried: {all}");
}
