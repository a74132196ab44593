//! The posts API end to end on the local stack: create, follow to PUBLISHED, list, cancel and
//! reschedule, and bad requests that must leave the table as it was.

use std::time::Duration;

use crate::common::post_items;

use graph_sim::SimConfig;
use instapipe_local::LocalStack;
use instapipe_local::settings::Settings;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const ACCOUNT: &str = "17841400000000001";
const OTHER: &str = "17841400000000002";

async fn stack() -> LocalStack {
    crate::common::logs();
    let mut settings = Settings::for_tests();
    settings.set("POLL_INLINE_CHECKS_MS", "200,300,500").set("POLL_INTERVAL_SECS", "1").set("POLL_MAX_INTERVAL_SECS", "2");
    let sim = SimConfig { image_delay: Duration::from_millis(300), ..SimConfig::default() };
    let stack = LocalStack::start(settings, sim).await.expect("the local stack starts (did `make deps` run?)");
    stack.add_account(ACCOUNT, "IGAA-token-1").await.unwrap();
    stack.add_account(OTHER, "IGAA-token-2").await.unwrap();
    stack
}

/// Calls the API with the stack's key; returns the status, the JSON answer and the headers.
async fn call(stack: &LocalStack, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", stack.base_url))
        .bearer_auth(&stack.settings.api_key);
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.unwrap();
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, response.json().await.unwrap_or(Value::Null), headers)
}

async fn get(stack: &LocalStack, path: &str) -> Value {
    let (status, body, _) = call(stack, reqwest::Method::GET, path, None).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

fn post(caption: &str, accounts: &[&str], publish_at: Option<OffsetDateTime>) -> Value {
    let mut body = json!({
        "caption": caption,
        "media": [{ "url": "https://cdn.example.com/api.jpg", "type": "image" }],
        "accounts": accounts,
    });
    if let Some(at) = publish_at {
        body["publish_at"] = json!(at.format(&Rfc3339).unwrap());
    }
    body
}

async fn create(stack: &LocalStack, body: &Value) -> String {
    let (status, answer, _) = call(stack, reqwest::Method::POST, "/posts", Some(body)).await;
    assert_eq!(status, 201, "{answer}");
    answer["post_id"].as_str().unwrap().to_string()
}

/// Reads the post through the API until its overall state is `state`.
async fn read_until(stack: &LocalStack, post_id: &str, state: &str, timeout: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let post = get(stack, &format!("/posts/{post_id}")).await;
        if post["state"] == state {
            return post;
        }
        assert!(tokio::time::Instant::now() < deadline, "post {post_id} not {state} in time: {post}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn published_with(stack: &LocalStack, caption: &str) -> usize {
    stack.sim.as_ref().unwrap().published().iter().filter(|m| m.caption.as_deref() == Some(caption)).count()
}

async fn schedule_names(stack: &LocalStack) -> Vec<String> {
    let out = stack.clients.scheduler.list_schedules().group_name(stack.config.schedule_group()).send().await.unwrap();
    out.schedules().iter().filter_map(|s| s.name().map(str::to_string)).collect()
}

async fn wait_for_schedule(stack: &LocalStack, name: &str) {
    for _ in 0..50 {
        if schedule_names(stack).await.iter().any(|n| n == name) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("schedule {name} never appeared");
}


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_created_through_the_api_is_published_and_listed() {
    let stack = stack().await;
    let caption = "Made through the posts API";
    let body = post(caption, &[ACCOUNT], None);
    let keyed = || {
        reqwest::Client::new()
            .post(stack.posts_url())
            .bearer_auth(&stack.settings.api_key)
            .header("idempotency-key", "it-order-1")
            .json(&body)
            .send()
    };
    let first = keyed().await.unwrap();
    assert_eq!(first.status(), 201);
    let post_id = first.json::<Value>().await.unwrap()["post_id"].as_str().unwrap().to_string();
    let again = keyed().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["post_id"], post_id.as_str());

    let published = read_until(&stack, &post_id, "PUBLISHED", Duration::from_secs(60)).await;
    let d = &published["destinations"][0];
    let media = stack.sim.as_ref().unwrap().published();
    assert_eq!(media.len(), 1, "the repeated request made no second post");
    assert_eq!(d["media_id"].as_str(), Some(media[0].media_id.as_str()));
    assert_eq!(d["permalink"].as_str(), Some(media[0].permalink.as_str()));
    assert!(d["container_id"].is_string(), "{d}");
    let states: Vec<_> = d["history"].as_array().unwrap().iter().map(|h| h["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["QUEUED", "PROCESSING", "READY", "PUBLISHING", "PUBLISHED"]);
    assert_eq!(published_with(&stack, caption), 1);

    // Two more posts: one to both accounts, one scheduled for much later.
    let both = create(&stack, &post("To both accounts", &[ACCOUNT, OTHER], None)).await;
    read_until(&stack, &both, "PUBLISHED", Duration::from_secs(60)).await;
    let later = create(&stack, &post("Much later", &[OTHER], Some(OffsetDateTime::now_utc() + Duration::from_secs(3600)))).await;

    let page = get(&stack, "/posts?state=PUBLISHED").await;
    let mut ids: Vec<_> = page["posts"].as_array().unwrap().iter().map(|p| p["post_id"].as_str().unwrap().to_string()).collect();
    ids.sort();
    let mut expected = vec![post_id.clone(), both.clone()];
    expected.sort();
    assert_eq!(ids, expected, "each published post once");
    let page = get(&stack, "/posts?state=SCHEDULED").await;
    assert_eq!(page["posts"][0]["post_id"], later.as_str());

    // By account, a post per page, following the cursor.
    let mut seen = Vec::new();
    let mut path = format!("/posts?account={OTHER}&limit=1");
    for _ in 0..10 {
        let page = get(&stack, &path).await;
        seen.extend(page["posts"].as_array().unwrap().iter().map(|p| p["post_id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/posts?account={OTHER}&limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, [later.clone(), both.clone()], "newest first, only the account's posts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_post_can_be_cancelled_and_another_rescheduled() {
    let stack = stack().await;
    let old_time = OffsetDateTime::now_utc() + Duration::from_secs(6);
    let cancelled = create(&stack, &post("Never mind", &[ACCOUNT], Some(old_time))).await;
    let moved = create(&stack, &post("A bit later", &[ACCOUNT], Some(old_time))).await;
    let start_name = |post: &str, at| instapipe_core::scheduler::OneTimeSchedule::start_name(post, ACCOUNT, at);
    let cancelled_start = start_name(&cancelled, old_time);
    let moved_start = start_name(&moved, old_time);
    wait_for_schedule(&stack, &cancelled_start).await;
    wait_for_schedule(&stack, &moved_start).await;

    let (status, body, _) = call(&stack, reqwest::Method::DELETE, &format!("/posts/{cancelled}"), None).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("CANCELLED")), "{body}");
    assert!(!schedule_names(&stack).await.contains(&cancelled_start), "the start schedule is still in Scheduler");

    let new_time = OffsetDateTime::now_utc() + Duration::from_secs(12);
    let change = json!({ "publish_at": new_time.format(&Rfc3339).unwrap() });
    let (status, body, _) = call(&stack, reqwest::Method::PATCH, &format!("/posts/{moved}"), Some(&change)).await;
    assert_eq!((status, body["state"].as_str()), (200, Some("SCHEDULED")), "{body}");
    assert!(!schedule_names(&stack).await.contains(&moved_start), "the old start schedule is still in Scheduler");
    let moved_start = start_name(&moved, new_time);
    let schedule = stack
        .clients
        .scheduler
        .get_schedule()
        .group_name(stack.config.schedule_group())
        .name(&moved_start)
        .send()
        .await
        .expect("a new start schedule");
    let at = instapipe_core::scheduler::parse_at_expression(schedule.schedule_expression().unwrap()).unwrap();
    assert!(at >= new_time - Duration::from_secs(1), "the start fires at {at}, not at the new time {new_time}");

    // Past the old time: nothing went out, and the cancelled post stays cancelled.
    while OffsetDateTime::now_utc() < new_time - Duration::from_millis(500) {
        assert_eq!(published_with(&stack, "A bit later"), 0, "published before the new time");
        assert_eq!(published_with(&stack, "Never mind"), 0, "a cancelled post was published");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let done = read_until(&stack, &moved, "PUBLISHED", Duration::from_secs(60)).await;
    let publishing = done["destinations"][0]["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["state"] == "PUBLISHING")
        .map(|h| OffsetDateTime::parse(h["at"].as_str().unwrap(), &Rfc3339).unwrap())
        .unwrap();
    assert!(publishing >= new_time, "published at {publishing}, before the new time {new_time}");
    assert_eq!(published_with(&stack, "A bit later"), 1);
    let after = get(&stack, &format!("/posts/{cancelled}")).await;
    assert_eq!(after["state"], "CANCELLED");
    assert_eq!(published_with(&stack, "Never mind"), 0);

    // Too late now for either.
    let (status, body, _) = call(&stack, reqwest::Method::DELETE, &format!("/posts/{moved}"), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("already_publishing")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_to_the_posts_api_get_their_error_and_write_nothing() {
    let stack = stack().await;
    let client = reqwest::Client::new();
    let url = stack.posts_url();
    let key = stack.settings.api_key.clone();
    let good = post("fine", &[ACCOUNT], None).to_string();
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (client.post(&url).header("content-type", "application/json").body(good.clone()), 401, "unauthorized"),
        (client.post(&url).bearer_auth("ipk_forged").header("content-type", "application/json").body(good.clone()), 401, "unauthorized"),
        (client.post(&url).bearer_auth(&key).header("content-type", "text/plain").body(good.clone()), 415, "unsupported_media_type"),
        (client.post(&url).bearer_auth(&key).header("content-type", "application/json").body("{\"caption\":"), 400, "invalid_body"),
        (
            client.post(&url).bearer_auth(&key).json(&json!({"media": [{"url": "http://a.example/x.jpg", "type": "image"}], "accounts": [ACCOUNT]})),
            422,
            "invalid_field",
        ),
        (client.post(&url).bearer_auth(&key).json(&post("x", &["999"], None)), 422, "unknown_account"),
        (
            client.post(&url).bearer_auth(&key).header("content-type", "application/json").body(format!(r#"{{"caption":"{}"}}"#, "x".repeat(300_000))),
            413,
            "body_too_large",
        ),
        (client.get(format!("{url}/01KAT0000000000000000000AB")).bearer_auth(&key), 404, "not_found"),
        (client.delete(format!("{url}/01KAT0000000000000000000AB")).bearer_auth(&key), 404, "not_found"),
        (client.get(format!("{url}?state=DONE")).bearer_auth(&key), 400, "invalid_query"),
        (client.get(format!("{url}?account={ACCOUNT}&cursor=not-ours")).bearer_auth(&key), 400, "invalid_query"),
    ];
    for (request, status, code) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(!body.to_string().contains(&key), "the key is echoed");
    }
    assert_eq!(post_items(&stack).await, 0);

    let doc = client.get(format!("{}/openapi.yaml", stack.base_url)).send().await.unwrap();
    assert_eq!(doc.status(), 200);
    assert!(doc.text().await.unwrap().starts_with("openapi: 3.1.0"));
}
