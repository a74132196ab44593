//! Graph calls per post (issue 14), counted in the simulator's request log: the account's call
//! budget (about 200 an hour) is what limits how much it can post, so one call more per post
//! than the lower bound fails here. One post at a time, after a first post of each kind (which
//! reads the publishing quota and learns where processing is done).

use std::time::Duration;

use instapipe_core::post::DestState;
use instapipe_local::LocalStack;
use serde_json::{Value, json};

use crate::common::{ACCOUNT, accepted, fast_sim, post, stack};

/// What a recorded request was, by method and path.
fn kind_of(method: &str, path_and_query: &str) -> &'static str {
    let path = path_and_query.split('?').next().unwrap_or_default();
    let last = path.rsplit('/').next().unwrap_or_default();
    match (method, last) {
        ("POST", "media") => "create",
        ("POST", "media_publish") => "publish",
        ("GET", "content_publishing_limit") => "quota",
        ("GET", _) if path_and_query.contains("status_code") => "status",
        ("GET", _) if path_and_query.contains("permalink") => "permalink",
        _ => "other",
    }
}

/// Sends one post, waits until it is published and the stack is quiet, and returns its Graph
/// calls in order.
async fn calls_for(stack: &LocalStack, body: &Value, id: &str) -> Vec<&'static str> {
    let sim = stack.sim.as_ref().unwrap();
    let before = sim.requests().len();
    let post_id = accepted(stack, body, id).await;
    let dests = stack.wait_final(&post_id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(dests[0].state, DestState::Published, "{:?}", dests[0].failure);
    // Nothing should follow publishing; give a stray call the time to show.
    tokio::time::sleep(Duration::from_millis(500)).await;
    sim.requests()[before..].iter().map(|r| kind_of(&r.method, &r.path_and_query)).collect()
}

fn carousel(caption: &str, n: usize) -> Value {
    let media: Vec<Value> = (0..n).map(|i| json!({ "url": format!("https://cdn.example.com/c{i}.jpg"), "type": "image" })).collect();
    json!({ "caption": caption, "media": media, "accounts": [ACCOUNT] })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_post_type_costs_its_lower_bound_in_graph_calls() {
    let stack = stack(fast_sim()).await;
    let image = |n: usize| post(&format!("image {n}"), &format!("https://cdn.example.com/i{n}.jpg"), "image");
    let reel = |n: usize| post(&format!("reel {n}"), &format!("https://cdn.example.com/r{n}.mp4"), "video");

    // The account's first post reads the publishing quota once (then not again for hours).
    let first = calls_for(&stack, &image(0), "msg_calls_image_0").await;
    assert_eq!(first.iter().filter(|c| **c == "quota").count(), 1, "{first:?}");
    for n in 1..=2 {
        assert_eq!(calls_for(&stack, &image(n), &format!("msg_calls_image_{n}")).await, ["create", "status", "publish", "permalink"]);
    }

    // A Reel: the first one learns how long the account's videos take; the next is looked at
    // there, once.
    let first = calls_for(&stack, &reel(0), "msg_calls_reel_0").await;
    assert!(!first.contains(&"quota"), "{first:?}");
    assert_eq!(calls_for(&stack, &reel(1), "msg_calls_reel_1").await, ["create", "status", "publish", "permalink"]);

    // A carousel of n: n items and the carousel container made, each item looked at once when
    // likely done, the container once, publish, permalink.
    calls_for(&stack, &carousel("carousel 0", 3), "msg_calls_carousel_0").await;
    for (n, size) in [(1, 3), (2, 4)] {
        let calls = calls_for(&stack, &carousel(&format!("carousel {n}"), size), &format!("msg_calls_carousel_{n}")).await;
        let mut expected = vec!["create"; size];
        expected.extend(vec!["status"; size]);
        expected.extend(["create", "status", "publish", "permalink"]);
        assert_eq!(calls, expected, "carousel of {size}");
    }
    assert!(stack.sim.as_ref().unwrap().requests().iter().all(|r| kind_of(&r.method, &r.path_and_query) != "other"));
}
