//! The publishing surface end to end on the local stack: every media type, the first comment,
//! the publishing quota, a refused token, and the simulator's faults.

use std::time::Duration;

use crate::common::{self, ACCOUNT, TOKEN, accepted, fast_sim, published_with, stack};
use graph_sim::SimConfig;
use instapipe_core::account::AccountStatus;
use instapipe_core::post::DestState;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carousel_of_images_and_a_video_is_published_as_one_album() {
    let stack = stack(fast_sim()).await;
    let caption = "Three looks for autumn";
    let urls = ["https://cdn.example.com/1.jpg", "https://cdn.example.com/2.mp4", "https://cdn.example.com/3.jpg"];
    let body = json!({
        "caption": caption,
        "media": [
            { "url": urls[0], "type": "image", "alt_text": "a red coat", "user_tags": [{ "username": "ana", "x": 0.4, "y": 0.6 }] },
            { "url": urls[1], "type": "video" },
            { "url": urls[2], "type": "image" },
        ],
        "accounts": [ACCOUNT],
        "options": { "location_id": "110843418940484", "collaborators": ["bo"] },
    });
    let post_id = accepted(&stack, &body, "msg_carousel").await;
    let dests = stack.wait_final(&post_id, WAIT).await.unwrap();
    let d = &dests[0];
    assert_eq!(d.state, DestState::Published, "{:?}", d.failure);
    assert_eq!(d.children.len(), 3);
    let published = published_with(&stack, caption);
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].media_type, "CAROUSEL_ALBUM");
    assert_eq!(published[0].media_urls, urls.map(String::from));
    assert_eq!(Some(&published[0].container_id), d.container_id.as_ref());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reel_with_options_and_stories_of_both_kinds_are_published() {
    let stack = stack(fast_sim()).await;
    let reel = json!({
        "caption": "Behind the scenes",
        "media": [{ "url": "https://cdn.example.com/bts.mp4", "type": "video" }],
        "accounts": [ACCOUNT],
        "options": { "reel": { "cover_url": "https://cdn.example.com/cover.jpg", "thumb_offset": 1200, "share_to_feed": true, "audio_name": "Studio" } },
    });
    let story_image = json!({
        "caption": "", "media": [{ "url": "https://cdn.example.com/s.jpg", "type": "image" }],
        "accounts": [ACCOUNT], "options": { "placement": "story" },
    });
    let story_video = json!({
        "caption": "", "media": [{ "url": "https://cdn.example.com/s.mp4", "type": "video" }],
        "accounts": [ACCOUNT], "options": { "placement": "story" },
    });
    let ids = [
        accepted(&stack, &reel, "msg_reel").await,
        accepted(&stack, &story_image, "msg_story_image").await,
        accepted(&stack, &story_video, "msg_story_video").await,
    ];
    for id in &ids {
        let d = &stack.wait_final(id, WAIT).await.unwrap()[0];
        assert_eq!(d.state, DestState::Published, "{:?}", d.failure);
    }
    let kinds: Vec<(String, String)> = stack
        .sim
        .as_ref()
        .unwrap()
        .published()
        .iter()
        .map(|m| (m.media_product_type.clone(), m.media_type.clone()))
        .collect();
    for expected in [("REELS", "VIDEO"), ("STORY", "IMAGE"), ("STORY", "VIDEO")] {
        assert!(kinds.contains(&(expected.0.into(), expected.1.into())), "{expected:?} not in {kinds:?}");
    }
    assert_eq!(kinds.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_comment_is_posted_on_the_published_media() {
    let stack = stack(fast_sim()).await;
    let mut body = common::post("With a first comment", "https://cdn.example.com/c.jpg", "image");
    body["options"] = json!({ "first_comment": "#autumn #sale" });
    let post_id = accepted(&stack, &body, "msg_comment").await;
    let d = stack.wait_final(&post_id, WAIT).await.unwrap().remove(0);
    assert_eq!(d.state, DestState::Published);
    // PUBLISHED is recorded before the comment: wait for the comment id to follow.
    let mut comment_id = d.first_comment_id.clone();
    for _ in 0..50 {
        if comment_id.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        comment_id = stack.destinations(&post_id).await[0].first_comment_id.clone();
    }
    assert!(comment_id.is_some(), "no first comment recorded");
    let comments = stack.sim.as_ref().unwrap().comments();
    assert_eq!(comments, vec![(d.media_id.clone().unwrap(), "#autumn #sale".to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_used_up_quota_defers_the_post_instead_of_failing_it() {
    let stack = stack(SimConfig { quota_total: 1, ..fast_sim() }).await;
    let first = accepted(&stack, &common::post("quota one", "https://cdn.example.com/q1.jpg", "image"), "msg_q1").await;
    assert_eq!(stack.wait_final(&first, WAIT).await.unwrap()[0].state, DestState::Published);
    let second = accepted(&stack, &common::post("quota two", "https://cdn.example.com/q2.jpg", "image"), "msg_q2").await;
    let mut deferred = None;
    for _ in 0..200 {
        let d = stack.destinations(&second).await.remove(0);
        if d.state == DestState::Deferred {
            deferred = Some(d);
            break;
        }
        assert!(!d.state.is_final(), "the second post ended {:?}: {:?}", d.state, d.failure);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let d = deferred.expect("the second post was never deferred");
    let note = d.history.last().unwrap().note.clone().unwrap();
    assert!(note.contains("quota used up (1 of 1"), "{note}");
    // Woken after the recheck interval, it finds the quota still used and waits again.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let d = stack.destinations(&second).await.remove(0);
    assert!(matches!(d.state, DestState::Deferred | DestState::Ready), "{:?}", d.state);
    assert!(d.poll_attempt >= 2, "deferred only once");
    assert!(published_with(&stack, "quota two").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_parks_posts_until_the_account_is_connected_again() {
    let stack = stack(fast_sim()).await;
    // Meta now expects another token (the stored one was revoked).
    stack.sim.as_ref().unwrap().set_token(ACCOUNT, "IGAA-renewed-token");
    let caption = "Waits for its account";
    let post_id = accepted(&stack, &common::post(caption, "https://cdn.example.com/w.jpg", "image"), "msg_reauth").await;
    let mut parked = false;
    for _ in 0..200 {
        if stack.destinations(&post_id).await[0].state == DestState::AwaitingAuth {
            parked = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(parked, "the post did not wait for re-auth");
    let account = stack.store.get_account(ACCOUNT).await.unwrap().unwrap();
    assert_eq!(account.status, AccountStatus::NeedsReauth);
    assert!(published_with(&stack, caption).is_empty());

    assert_eq!(stack.reconnect_account(ACCOUNT, "IGAA-renewed-token").await.unwrap(), 1);
    let d = stack.wait_final(&post_id, WAIT).await.unwrap().remove(0);
    assert_eq!(d.state, DestState::Published, "{:?}", d.failure);
    assert_eq!(published_with(&stack, caption).len(), 1);
    let _ = TOKEN;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_publish_answers_never_publish_twice() {
    let stack = stack(SimConfig { lost_publish_rate: 1.0, ..fast_sim() }).await;
    let captions = ["lost answer one", "lost answer two"];
    let mut ids = Vec::new();
    for (i, caption) in captions.iter().enumerate() {
        ids.push(accepted(&stack, &common::post(caption, "https://cdn.example.com/l.jpg", "image"), &format!("msg_lost_{i}")).await);
    }
    for (id, caption) in ids.iter().zip(captions) {
        let d = stack.wait_final(id, WAIT).await.unwrap().remove(0);
        assert_eq!(d.state, DestState::Published, "{:?}", d.failure);
        let published = published_with(&stack, caption);
        assert_eq!(published.len(), 1, "{caption} published {} times", published.len());
        assert_eq!(d.media_id.as_ref(), Some(&published[0].media_id), "media id recovered");
    }
    assert_eq!(stack.sim.as_ref().unwrap().duplicate_publish_attempts(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_errors_and_timeouts_injected_every_post_is_published_exactly_once() {
    // Timeouts answer after 2.5 s, past the client's 2 s: the work done, the answer late.
    let sim = SimConfig { error_rate: 0.2, timeout_rate: 0.05, timeout: Duration::from_millis(2500), seed: 7, ..fast_sim() };
    let stack = stack(sim).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        let kind = if i % 3 == 2 { ("v.mp4", "video") } else { ("i.jpg", "image") };
        let body = common::post(&format!("faulty {i}"), &format!("https://cdn.example.com/{}", kind.0), kind.1);
        ids.push((accepted(&stack, &body, &format!("msg_faulty_{i}")).await, format!("faulty {i}")));
    }
    for (id, caption) in &ids {
        let d = stack.wait_final(id, Duration::from_secs(150)).await.unwrap().remove(0);
        assert_eq!(d.state, DestState::Published, "{caption}: {:?}", d.failure);
        assert_eq!(published_with(&stack, caption).len(), 1, "{caption}");
    }
    assert_eq!(stack.sim.as_ref().unwrap().duplicate_publish_attempts(), 0);
}

/// Issue 16: the carousel container is made on the simulator but answered after the client
/// gave up; the retry's children are refused as already used. The post is published once, and
/// what was left behind is on record for the operator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_carousel_whose_container_was_made_but_answered_too_late_is_published_once() {
    // Answered after 2.5 s, past the client's 2 s GRAPH_API_TIMEOUT_MS.
    let stack = stack(SimConfig { timeout: Duration::from_millis(2500), ..fast_sim() }).await;
    let sim = stack.sim.as_ref().unwrap();
    sim.answer_carousel_creations_late(1);
    let caption = "Made, but answered too late";
    let body = json!({
        "caption": caption,
        "media": [
            { "url": "https://cdn.example.com/late-1.jpg", "type": "image" },
            { "url": "https://cdn.example.com/late-2.jpg", "type": "image" },
            { "url": "https://cdn.example.com/late-3.jpg", "type": "image" },
        ],
        "accounts": [ACCOUNT],
    });
    let post_id = accepted(&stack, &body, "msg_late_carousel").await;
    let d = stack.wait_final(&post_id, WAIT).await.unwrap().remove(0);
    assert_eq!(d.state, DestState::Published, "{:?}", d.failure);
    assert_eq!(sim.late_carousel_creations(), 1, "the fault was met");
    let published = published_with(&stack, caption);
    assert_eq!(published.len(), 1);
    assert_eq!(Some(&published[0].container_id), d.container_id.as_ref());
    assert_eq!(sim.duplicate_publish_attempts(), 0);

    // On the simulator: the late carousel holds the first children and was never published.
    let carousels: Vec<_> = sim.containers().into_iter().filter(|c| c.media_type == "CAROUSEL").collect();
    assert_eq!(carousels.len(), 2, "{carousels:?}");
    let late = carousels.iter().find(|c| Some(&c.id) != d.container_id.as_ref()).unwrap();
    assert_ne!(late.status_code, "PUBLISHED");
    // On the destination: that carousel (its id never reached us) and its children, left behind.
    let possibly_made: Vec<_> = d.orphaned_containers.iter().filter(|o| o.container_id.is_none()).collect();
    assert_eq!(possibly_made.len(), 1, "{:?}", d.orphaned_containers);
    assert_eq!(possibly_made[0].children, late.children);
    assert!(possibly_made[0].reason.contains("did not answer in time"), "{}", possibly_made[0].reason);
    let children_left: Vec<_> = d.orphaned_containers.iter().filter_map(|o| o.container_id.clone()).collect();
    assert_eq!(children_left, late.children);
    assert!(d.children.iter().all(|c| !late.children.contains(c)), "the published carousel has fresh children");

    // The operator sees it: GET /posts/{id} and `instapipe posts show`.
    let read: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/posts/{post_id}", stack.base_url))
        .bearer_auth(&stack.settings.api_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let shown = &read["destinations"][0]["orphaned_containers"];
    assert_eq!(shown.as_array().map(Vec::len), Some(4), "{read}");
    assert_eq!(shown[0]["container_id"], serde_json::Value::Null);
    assert_eq!(shown[0]["children"], json!(late.children));
    let mut out = Vec::new();
    let ctx = instapipe_cli::Ctx::new(stack.clients.clone(), stack.config.clone());
    instapipe_cli::commands::posts::show(&ctx, &post_id, &mut out).await.unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("left behind") && out.contains("(id unknown)"), "{out}");
    for child in &late.children {
        assert!(out.contains(child.as_str()), "{child} missing from: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_near_the_rate_limit_pauses_the_account_and_says_so() {
    // 10 calls an hour: the usage headers pass 80 % after a handful of calls.
    let stack = stack(SimConfig { account_calls_per_hour: 10, ..fast_sim() }).await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let body = common::post(&format!("busy {i}"), "https://cdn.example.com/b.jpg", "image");
        ids.push(accepted(&stack, &body, &format!("msg_busy_{i}")).await);
    }
    let mut deferred = None;
    'wait: for _ in 0..300 {
        for id in &ids {
            let d = stack.destinations(id).await.remove(0);
            if d.state == DestState::Deferred {
                deferred = Some(d);
                break 'wait;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let d = deferred.expect("no post waited for the rate limit");
    assert!(d.history.last().unwrap().note.as_deref().unwrap().contains("rate limit"), "{:?}", d.history);
    let usage = stack.store.get_account_usage(ACCOUNT).await.unwrap().expect("usage recorded");
    assert!(usage.latest.unwrap().account >= 80, "{usage:?}");
    assert!(usage.throttled_until.is_some());
    // Nothing failed: waiting is not failing.
    for id in &ids {
        let d = stack.destinations(id).await.remove(0);
        assert_ne!(d.state, DestState::Failed, "{:?}", d.failure);
    }
}
