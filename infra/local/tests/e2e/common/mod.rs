//! Helpers shared by the end-to-end tests: a stack of their own, signed sends, and the one log
//! subscriber of the test binary.

use std::time::Duration;

use graph_sim::SimConfig;
use instapipe_local::LocalStack;
use instapipe_local::settings::Settings;
use serde_json::{Value, json};

mod logs;
pub use logs::logs;

pub const ACCOUNT: &str = "17841400000000001";
pub const TOKEN: &str = "IGAA-integration-token";

/// A stack with waits in (fractions of) seconds and the test account registered.
pub async fn stack(sim: SimConfig) -> LocalStack {
    logs();
    let mut settings = Settings::for_tests();
    settings.fast_waits();
    let stack = LocalStack::start(settings, sim).await.expect("the local stack starts (did `make deps` run?)");
    stack.add_account(ACCOUNT, TOKEN).await.unwrap();
    stack
}

pub fn fast_sim() -> SimConfig {
    SimConfig { image_delay: Duration::from_millis(300), video_delay: Duration::from_secs(3), ..SimConfig::default() }
}

pub fn post(caption: &str, url: &str, kind: &str) -> Value {
    json!({ "caption": caption, "media": [{ "url": url, "type": kind }], "accounts": [ACCOUNT] })
}

pub async fn send(stack: &LocalStack, body: &Value, webhook_id: &str) -> (u16, Value) {
    let response = stack.send_generic(&body.to_string(), webhook_id).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Sends and returns the new post's id, asserting it was accepted.
pub async fn accepted(stack: &LocalStack, body: &Value, webhook_id: &str) -> String {
    let (status, answer) = send(stack, body, webhook_id).await;
    assert_eq!(status, 202, "{answer}");
    answer["post_id"].as_str().unwrap().to_string()
}

pub fn published_with(stack: &LocalStack, caption: &str) -> Vec<graph_sim::PublishedMedia> {
    stack.sim.as_ref().unwrap().published().into_iter().filter(|m| m.caption.as_deref() == Some(caption)).collect()
}

/// Sends `body` with `headers` to a source's webhook route; the status and the JSON answer.
pub async fn post_to_source(stack: &LocalStack, source: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> (u16, Value) {
    let mut request = reqwest::Client::new().post(stack.source_url(source)).body(body);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Items of posts and deliveries (not accounts, usage or API keys) in the table.
pub async fn post_items(stack: &LocalStack) -> usize {
    let out = stack.clients.dynamodb.scan().table_name(stack.config.table_name()).send().await.unwrap();
    out.items()
        .iter()
        .filter(|i| i.get("pk").and_then(|v| v.as_s().ok()).is_some_and(|pk| pk.starts_with("POST#") || pk.starts_with("DELIVERY#")))
        .count()
}

