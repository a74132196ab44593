//! Secret hygiene end to end: with every log of every crate captured at TRACE, a run that
//! publishes, refuses and fails posts must never show the account token or the webhook signing
//! secret in a log line, in an HTTP answer, in a URL or body sent to the Graph API, or in the
//! table. The token goes to the Graph API in the `Authorization` header and nowhere else.

use std::time::Duration;

use graph_sim::SimConfig;
use instapipe_core::post::DestState;
use instapipe_local::LocalStack;
use instapipe_local::settings::{DEMO_SECRET, Settings};
use serde_json::{Value, json};

const ACCOUNT: &str = "17841400000000001";
/// Distinctive enough that any occurrence is this token and nothing else.
const TOKEN: &str = "IGAA-hygiene-token-7Q2xZp9Lk4";
/// A secret the stack does not know, for the forged request.
const FORGED_SECRET: &str = "whsec_Zm9yZ2VkLXNlY3JldC1mb3ItdGVzdGluZy0wMTIzNDU=";

/// The secrets that must not show up: the token, the whole `whsec_` secret, its base64 key, and
/// the key itself (the demo key decodes to readable text).
fn secrets() -> Vec<(&'static str, String)> {
    let key_b64 = DEMO_SECRET.strip_prefix("whsec_").expect("a whsec_ secret").to_string();
    let key = decode_base64(&key_b64);
    let mut list = vec![
        ("account token", TOKEN.to_string()),
        ("webhook secret", DEMO_SECRET.to_string()),
        ("webhook key (base64)", key_b64),
    ];
    if let Ok(key) = String::from_utf8(key)
        && key.len() >= 8
    {
        list.push(("webhook key (decoded)", key));
    }
    list
}

/// Standard base64 (this crate has no base64 dependency, and the test needs only this).
fn decode_base64(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut bits, mut n, mut out) = (0u32, 0u32, Vec::new());
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).expect("standard base64") as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
            bits &= (1 << n) - 1;
        }
    }
    out
}

/// Each place where `needle` occurs in `haystack`, with some context, for the failure message.
fn occurrences(haystack: &str, needle: &str) -> Vec<String> {
    haystack
        .match_indices(needle)
        .take(5)
        .map(|(i, _)| {
            let mut start = i.saturating_sub(300);
            while !haystack.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = (i + needle.len() + 100).min(haystack.len());
            while !haystack.is_char_boundary(end) {
                end += 1;
            }
            format!("…{}…", &haystack[start..end])
        })
        .collect()
}

fn post(caption: &str, url: &str, kind: &str, account: &str) -> Value {
    json!({ "caption": caption, "media": [{ "url": url, "type": kind }], "accounts": [account] })
}

/// Sends and returns (status, body text).
async fn answer(response: Result<reqwest::Response, String>) -> (u16, String) {
    let response = response.expect("the stack answers");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a readable body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_signing_secrets_never_leak() {
    // TRACE for every crate, before anything starts, so nothing logs unseen. The tests running
    // beside this one are captured too: their logs must not show the secret either.
    let captured = crate::common::logs().capture_trace();

    let mut settings = Settings::for_tests();
    settings
        .set("POLL_INLINE_CHECKS_MS", "200,300,500")
        .set("POLL_INTERVAL_SECS", "1")
        .set("POLL_MAX_INTERVAL_SECS", "2");
    assert_eq!(settings.generic_secret, DEMO_SECRET, "the stack signs with the secret this test looks for");
    let sim = SimConfig { image_delay: Duration::from_millis(300), video_delay: Duration::from_secs(3), ..SimConfig::default() };
    let stack: LocalStack = LocalStack::start(settings, sim).await.expect("the local stack starts (did `make deps` run?)");
    stack.add_account(ACCOUNT, TOKEN).await.unwrap();

    let mut responses: Vec<(&str, u16, String)> = Vec::new();

    // Accepted: an image, a video (goes through poll-status) and one whose media Meta cannot fetch.
    let accepted = [
        ("image post", post("Hygiene image", "https://cdn.example.com/hygiene.jpg", "image", ACCOUNT), "msg_hygiene_image"),
        ("video post", post("Hygiene reel", "https://cdn.example.com/hygiene.mp4", "video", ACCOUNT), "msg_hygiene_video"),
        ("failing post", post("Hygiene broken", "https://cdn.example.com/bad-media.jpg", "image", ACCOUNT), "msg_hygiene_bad"),
    ];
    let mut post_ids = Vec::new();
    for (what, body, id) in &accepted {
        let (status, text) = answer(stack.send_generic(&body.to_string(), id).await).await;
        assert_eq!(status, 202, "{what}: {text}");
        let answer: Value = serde_json::from_str(&text).unwrap();
        post_ids.push(answer["post_id"].as_str().expect("a post id").to_string());
        responses.push((what, status, text));
    }

    // Refused: forged signature, malformed bodies, an account nobody registered.
    let body = post("Forged", "https://cdn.example.com/forged.jpg", "image", ACCOUNT).to_string();
    let forged = instapipe_local::stack::send_signed(&stack.webhook_url(), FORGED_SECRET, &body, "msg_hygiene_forged").await;
    let (status, text) = answer(forged).await;
    assert_eq!(status, 401, "{text}");
    responses.push(("forged", status, text));

    let (status, text) = answer(stack.send_generic(r#"{"caption": "broken", "media": ["#, "msg_hygiene_broken").await).await;
    assert_eq!(status, 400, "{text}");
    responses.push(("not JSON", status, text));

    let wrong_type = json!({ "caption": "x", "media": [{ "url": "https://a.example/x.jpg", "type": "gif" }], "accounts": [ACCOUNT] });
    let (status, text) = answer(stack.send_generic(&wrong_type.to_string(), "msg_hygiene_gif").await).await;
    assert_eq!(status, 400, "{text}");
    responses.push(("wrong type", status, text));

    let unknown = post("Nobody's", "https://cdn.example.com/nobody.jpg", "image", "17841499999999999");
    let (status, text) = answer(stack.send_generic(&unknown.to_string(), "msg_hygiene_unknown").await).await;
    assert_eq!(status, 422, "{text}");
    assert!(text.contains("unknown_account"), "{text}");
    responses.push(("unknown account", status, text));

    // Every accepted post to its end.
    let mut finals = Vec::new();
    for id in &post_ids {
        let dests = stack.wait_final(id, Duration::from_secs(90)).await.unwrap();
        finals.push(dests[0].clone());
    }
    assert_eq!(finals[0].state, DestState::Published, "{:?}", finals[0].failure);
    assert_eq!(finals[1].state, DestState::Published, "{:?}", finals[1].failure);
    assert_eq!(finals[2].state, DestState::Failed);
    assert!(finals[1].poll_attempt >= 1, "the video went through poll-status");
    // The failure reason and the history are in the table: they are checked with it below.

    // Let late log lines (stream reader, schedule firer) land.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let graph_requests = stack.sim.as_ref().expect("the simulator runs").requests();
    let table = stack.clients.dynamodb.scan().table_name(stack.config.table_name()).send().await.unwrap();
    let table_text = format!("{:?}", table.items());
    let log = captured.text();

    // Not vacuous: the log is there and follows the posts; the token did reach the Graph API, in
    // the header, so a search would have found it had it been anywhere else.
    assert!(log.len() > 1000, "the captured log is nearly empty ({} bytes)", log.len());
    for id in &post_ids {
        assert!(log.contains(id.as_str()), "the log never mentions post {id}");
    }
    assert!(log.contains("TRACE"), "TRACE lines were not captured");
    assert!(!graph_requests.is_empty(), "the simulator received nothing");
    let bearer = format!("Bearer {TOKEN}");
    assert!(
        graph_requests.iter().any(|r| r.authorization.as_deref() == Some(bearer.as_str())),
        "no Graph request carried `Authorization: Bearer <token>`"
    );
    for r in &graph_requests {
        assert_eq!(r.authorization.as_deref(), Some(bearer.as_str()), "{} {} without the token header", r.method, r.path_and_query);
    }
    assert!(table_text.contains(&post_ids[0]), "the table scan found no post");

    let mut leaks = Vec::new();
    for (secret_name, secret) in secrets() {
        let mut look = |place: String, text: &str| {
            for context in occurrences(text, &secret) {
                leaks.push(format!("{secret_name} in {place}: {context}"));
            }
        };
        look("the captured log".into(), &log);
        for (what, status, body) in &responses {
            look(format!("the answer to the {what} request (HTTP {status})"), body);
        }
        for r in &graph_requests {
            look(format!("the URL of Graph request {} {}", r.method, r.path_and_query), &r.path_and_query);
            look(format!("the body of Graph request {} {}", r.method, r.path_and_query), &r.body);
        }
        look("the table".into(), &table_text);
    }
    assert!(leaks.is_empty(), "{} leak(s):\n{}", leaks.len(), leaks.join("\n\n"));
}
