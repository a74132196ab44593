//! End to end on the local stack, one source at a time: each source's signed sample request
//! (instapipe-test-support), re-signed with the current time (the samples' own timestamps are
//! long past), ends as a post published on the Graph API simulator; bad requests change nothing.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use graph_sim::SimConfig;
use instapipe_core::post::DestState;
use instapipe_core::routing::Routing;
use instapipe_core::sources::eventbridge::{self, Trigger};
use instapipe_core::sources::mapped::Outcome;
use instapipe_local::LocalStack;
use instapipe_local::settings::Settings;
use instapipe_local::sources::SourceSecrets;
use instapipe_test_support::samples::{self, CONTENTFUL_SECRET, SHOPIFY_SECRET, WORDPRESS_SECRET, body, headers};
use instapipe_test_support::signing::{contentful_headers, shopify_signature};
use serde_json::json;

use crate::common::post_to_source;

const ACCOUNT: &str = "17841400000000001";
const TOKEN: &str = "IGAA-sources-token";
const CDA_TOKEN: &str = "cda-test-token";

/// The samples' own secrets: the stack verifies what the samples' sender signed.
fn sample_secrets() -> SourceSecrets {
    SourceSecrets {
        shopify: SHOPIFY_SECRET.into(),
        contentful: CONTENTFUL_SECRET.into(),
        contentful_delivery_token: CDA_TOKEN.into(),
        wordpress: WORDPRESS_SECRET.into(),
    }
}

/// A fake Contentful Delivery API that knows the Contentful sample's three assets.
async fn fake_contentful() -> String {
    let app = axum::Router::new().route(
        "/spaces/{space}/environments/{env}/assets/{id}",
        get(|Path((_space, _env, id)): Path<(String, String, String)>, headers: axum::http::HeaderMap| async move {
            let authorised = headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {CDA_TOKEN}"));
            if !authorised || !id.starts_with("4mNbVcXzLkJhGfDsAqW00") {
                return (axum::http::StatusCode::NOT_FOUND, String::new());
            }
            let file = json!({"url": format!("//images.example.com/{id}/autumn.jpg"), "contentType": "image/jpeg"});
            (axum::http::StatusCode::OK, json!({"sys": {"id": id}, "fields": {"file": file}}).to_string())
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

async fn stack() -> LocalStack {
    crate::common::logs();
    let mut settings = Settings::for_tests();
    settings.sources = sample_secrets();
    let routing = json!({"routes": [
        {"source": "shopify", "shop": "demo-pier-goods.myshopify.com", "accounts": [ACCOUNT], "media": "all"},
        {"source": "contentful", "space": "demo0space7", "content_type": "instagramPost", "accounts": [ACCOUNT],
         "fields": {"media": ["heroImage", "gallery"], "publish_at": "publishAt"}},
        {"source": "wordpress", "site": "https://news.example.org/", "accounts": [ACCOUNT]},
        {"source": "eventbridge", "event_source": "com.example.cms-bridge", "accounts": [ACCOUNT]},
    ]});
    settings
        .set("ROUTING_CONFIG", routing.to_string())
        .set("CONTENTFUL_DELIVERY_BASE_URL", fake_contentful().await)
        .set("POLL_INLINE_CHECKS_MS", "200,300,500")
        .set("POLL_INTERVAL_SECS", "1")
        .set("POLL_MAX_INTERVAL_SECS", "2");
    let sim = SimConfig { image_delay: Duration::from_millis(300), ..SimConfig::default() };
    let stack = LocalStack::start(settings, sim).await.expect("the local stack starts (did `make deps` run?)");
    stack.add_account(ACCOUNT, TOKEN).await.unwrap();
    stack
}

/// Headers and body of one HTTP request.
type Signed = (Vec<(String, String)>, Vec<u8>);

/// Shopify signs no time: the sample goes as it is (its HMAC is still the right one).
fn shopify_request(name: &str) -> Signed {
    (headers(name), body(name))
}

/// The sample with its `x-contentful-*` signature made again at `ts_ms`.
fn contentful_request(body: Vec<u8>, ts_ms: i64, secret: &str) -> Signed {
    let name = "contentful-entry-publish";
    let mut headers: Vec<(String, String)> = headers(name).into_iter().filter(|(k, _)| !k.to_ascii_lowercase().starts_with("x-contentful-s") && !k.eq_ignore_ascii_case("x-contentful-timestamp")).collect();
    let signed: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(k, _)| ["content-type", "x-contentful-crn", "x-contentful-topic", "x-contentful-webhook-name"].contains(&k.to_ascii_lowercase().as_str()))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let signature = contentful_headers(secret, "POST", "/webhooks/contentful", &signed, ts_ms, &body);
    headers.extend(signature);
    (headers, body)
}

/// The sample with its `webhook-*` headers made again at `ts` (same webhook-id).
fn wordpress_request(body: Vec<u8>, ts: i64, secret: &str) -> Signed {
    let name = "wordpress-post-published";
    let mut headers: Vec<(String, String)> = headers(name);
    let id = headers.iter().find(|(k, _)| k == "webhook-id").unwrap().1.clone();
    let signature = standardwebhooks::Webhook::new(secret).unwrap().sign(&id, ts, &body).unwrap();
    for (k, v) in headers.iter_mut() {
        match k.as_str() {
            "webhook-timestamp" => *v = ts.to_string(),
            "webhook-signature" => *v = signature.clone(),
            _ => {}
        }
    }
    (headers, body)
}

fn now_secs() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// Waits for the post and returns what the simulator published for it.
async fn published(stack: &LocalStack, post_id: &str) -> graph_sim::PublishedMedia {
    let dests = stack.wait_final(post_id, Duration::from_secs(90)).await.unwrap();
    assert_eq!(dests.len(), 1);
    assert_eq!(dests[0].state, DestState::Published, "{:?}", dests[0].failure);
    let media_id = dests[0].media_id.clone().unwrap();
    stack.sim.as_ref().unwrap().published().into_iter().find(|m| m.media_id == media_id).expect("published on the simulator")
}

/// `(pk, skipped_reason)` of the items that are not accounts or API keys.
async fn post_and_delivery_items(stack: &LocalStack) -> Vec<(String, Option<String>)> {
    let out = stack.clients.dynamodb.scan().table_name(stack.config.table_name()).send().await.unwrap();
    out.items()
        .iter()
        .filter_map(|i| {
            let pk = i.get("pk")?.as_s().ok()?.clone();
            let reason = i.get("skipped_reason").and_then(|v| v.as_s().ok()).cloned();
            (pk.starts_with("POST#") || pk.starts_with("DELIVERY#")).then_some((pk, reason))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sources_signed_sample_ends_as_a_published_post() {
    let stack = stack().await;
    let secrets = sample_secrets();

    // Shopify products/create: the route posts both product images as a carousel.
    let (h, b) = shopify_request("shopify-products-create");
    let (status, answer) = post_to_source(&stack, "shopify", h, b).await;
    assert_eq!(status, 202, "{answer}");
    let shopify = published(&stack, answer["post_id"].as_str().unwrap()).await;
    assert_eq!(shopify.media_type, "CAROUSEL_ALBUM");
    assert_eq!(shopify.media_urls.len(), 2);
    assert!(shopify.media_urls[0].ends_with("camp-kettle-pine.jpg?v=1791877841"), "{:?}", shopify.media_urls);
    let caption = shopify.caption.unwrap();
    assert!(caption.starts_with("Enamel Camp Kettle — Fjäll Edition — from 38.00\n"), "{caption}");
    assert!(caption.ends_with("#fjäll #camping #gift #newarrival"), "{caption}");

    // Contentful Entry.publish: the hero image resolved through the (fake) Delivery API.
    let (h, b) = contentful_request(body("contentful-entry-publish"), now_ms(), &secrets.contentful);
    let (status, answer) = post_to_source(&stack, "contentful", h, b).await;
    assert_eq!(status, 202, "{answer}");
    let contentful_post = answer["post_id"].as_str().unwrap().to_string();
    let contentful = published(&stack, &contentful_post).await;
    assert_eq!(contentful.media_urls, ["https://images.example.com/4mNbVcXzLkJhGfDsAqW001/autumn.jpg"]);
    assert!(contentful.caption.unwrap().starts_with("Ten books for long evenings 🍂"));

    // The EventBridge event about the same entry revision is that post, not a second one.
    let same = stack.deliver_event(samples::json("eventbridge-publish-requested")).await.unwrap();
    assert_eq!(same, json!({"post_id": contentful_post, "duplicate": true}));

    // WordPress, signed with the current key only.
    let (h, b) = wordpress_request(body("wordpress-post-published"), now_secs(), &secrets.wordpress);
    let (status, answer) = post_to_source(&stack, "wordpress", h, b).await;
    assert_eq!(status, 202, "{answer}");
    let wordpress = published(&stack, answer["post_id"].as_str().unwrap()).await;
    assert_eq!(wordpress.media_urls, ["https://news.example.org/wp-content/uploads/2026/10/autumn-reading.jpg"]);
    assert!(wordpress.caption.unwrap().starts_with("Autumn Reading List — Ten Picks\n\n"));

    // A recurring Scheduler schedule's input.
    let input = json!({"kind": "post", "scheduleArn": "arn:aws:scheduler:us-east-1:123456789012:schedule/instapipe/weekly",
        "scheduledTime": "2026-11-23T09:00:00Z",
        "post": {"caption": "Weekly menu #menu", "media": [{"url": "https://cdn.example.com/weekly.jpg", "type": "image"}], "accounts": [ACCOUNT]}});
    let answer = stack.deliver_event(input).await.unwrap();
    let scheduled = published(&stack, answer["post_id"].as_str().unwrap()).await;
    assert_eq!(scheduled.caption.as_deref(), Some("Weekly menu #menu"));

    assert_eq!(stack.sim.as_ref().unwrap().published().len(), 4, "one post per source event, none twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_leave_the_table_as_it_was_and_irrelevant_events_are_recorded_as_skipped() {
    let stack = stack().await;
    let secrets = sample_secrets();
    let oversized = format!(r#"{{"title":"{}"}}"#, "x".repeat(300 * 1024)).into_bytes();
    let truncated = |name: &str| {
        let b = body(name);
        b[..b.len() - 40].to_vec()
    };
    let shopify_signed = |b: Vec<u8>| {
        let mut h = headers("shopify-products-create");
        for (k, v) in h.iter_mut() {
            if k == "X-Shopify-Hmac-Sha256" {
                *v = shopify_signature(&secrets.shopify, &b);
            }
        }
        (h, b)
    };
    let with = |(mut h, b): Signed, name: &str, value: &str| {
        h.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        h.push((name.to_string(), value.to_string()));
        (h, b)
    };
    let forged_wp = "whsec_Zm9yZ2VkLXNlY3JldC1mb3ItdGVzdGluZy0wMTIzNDU=";
    let cases: Vec<(&str, &str, Signed, u16, &str)> = vec![
        ("shopify forged", "shopify", with(shopify_request("shopify-products-create"), "X-Shopify-Hmac-Sha256", &shopify_signature("forged", &body("shopify-products-create"))), 401, "invalid_signature"),
        ("shopify truncated", "shopify", shopify_signed(truncated("shopify-products-create")), 400, "invalid_body"),
        ("shopify oversized", "shopify", shopify_signed(oversized.clone()), 413, "body_too_large"),
        ("shopify text/plain", "shopify", with(shopify_request("shopify-products-create"), "Content-Type", "text/plain"), 415, "unsupported_media_type"),
        ("contentful stale", "contentful", contentful_request(body("contentful-entry-publish"), now_ms() - 301_000, &secrets.contentful), 401, "invalid_signature"),
        ("contentful as signed on 2026-10-13", "contentful", (headers("contentful-entry-publish"), body("contentful-entry-publish")), 401, "invalid_signature"),
        ("contentful forged", "contentful", contentful_request(body("contentful-entry-publish"), now_ms(), &"f".repeat(64)), 401, "invalid_signature"),
        ("contentful truncated", "contentful", contentful_request(truncated("contentful-entry-publish"), now_ms(), &secrets.contentful), 400, "invalid_body"),
        ("wordpress stale", "wordpress", wordpress_request(body("wordpress-post-published"), now_secs() - 400, &secrets.wordpress), 401, "invalid_signature"),
        ("wordpress forged", "wordpress", wordpress_request(body("wordpress-post-published"), now_secs(), forged_wp), 401, "invalid_signature"),
        ("wordpress oversized", "wordpress", wordpress_request(oversized.clone(), now_secs(), &secrets.wordpress), 413, "body_too_large"),
        ("wordpress form", "wordpress", with(wordpress_request(body("wordpress-post-published"), now_secs(), &secrets.wordpress), "Content-Type", "application/x-www-form-urlencoded"), 415, "unsupported_media_type"),
        ("wordpress schema", "wordpress", wordpress_request(br#"{"type":"post.published","data":{"id":5120}}"#.to_vec(), now_secs(), &secrets.wordpress), 400, "invalid_body"),
    ];
    for (what, source, (h, b), status, code) in cases {
        let (got, answer) = post_to_source(&stack, source, h, b).await;
        assert_eq!((got, answer["error"]["code"].as_str()), (status, Some(code)), "{what}: {answer}");
    }
    let mut bad_event = samples::json("eventbridge-publish-requested");
    bad_event["detail"]["post"]["media"][0]["type"] = "GIF".into();
    let err = stack.deliver_event(bad_event).await.unwrap_err();
    assert_eq!(err["error"]["field"], "detail.post.media[0].type");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(post_and_delivery_items(&stack).await, [], "a refused request writes nothing");

    // A draft product: acknowledged with 200, recorded with why, nothing posted.
    let (h, b) = shopify_request("shopify-products-update");
    let (status, answer) = post_to_source(&stack, "shopify", h, b).await;
    assert_eq!((status, &answer["skipped"]), (200, &json!(true)), "{answer}");
    let items: HashMap<String, Option<String>> = post_and_delivery_items(&stack).await.into_iter().collect();
    assert_eq!(
        items,
        HashMap::from([(
            "DELIVERY#shopify#0e9d8c7b-6a5f-4e3d-b2c1-a0f9e8d7c6b5".to_string(),
            Some("product 7310000000188 is draft, not active".to_string())
        )])
    );
    assert!(stack.sim.as_ref().unwrap().published().is_empty());
}

/// infra/events/ingest-event-*.json are what `cargo lambda invoke ingest-event --data-file` sends.
#[test]
fn the_sample_events_of_ingest_event_are_post_requests() {
    let routing = Routing::from_json(Some(&instapipe_local::sources::demo_routing(ACCOUNT))).unwrap();
    for name in ["ingest-event-publish-requested.json", "ingest-event-schedule.json"] {
        let text = std::fs::read_to_string(format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let trigger = eventbridge::parse(serde_json::from_str(&text).unwrap(), &routing).unwrap();
        let Trigger::Mapped(mapped) = trigger else { panic!("{name}: {trigger:?}") };
        let Outcome::Post { request, .. } = mapped.outcome else { panic!("{name}: {:?}", mapped.outcome) };
        assert_eq!(request.accounts, [ACCOUNT], "{name}");
    }
}

/// The local stack's default routing sends every signed sample to the demo account, so they can
/// be sent to `make run` (re-signed with its secrets) as they are.
#[test]
fn the_demo_routing_routes_every_signed_sample() {
    let routing = Routing::from_json(Some(&instapipe_local::sources::demo_routing(ACCOUNT))).unwrap();
    let shop = samples::header("shopify-products-create", "x-shopify-shop-domain");
    assert_eq!(routing.shopify(&shop).expect("a Shopify route").accounts, [ACCOUNT]);
    let entry = samples::json("contentful-entry-publish");
    let sys = &entry["sys"];
    let (space, environment, content_type) =
        (sys["space"]["sys"]["id"].as_str().unwrap(), sys["environment"]["sys"]["id"].as_str().unwrap(), sys["contentType"]["sys"]["id"].as_str().unwrap());
    assert!(routing.contentful(space, environment, content_type).is_some(), "{space} {environment} {content_type}");
    let site = samples::json("wordpress-post-published")["data"]["site"].as_str().unwrap().to_string();
    assert!(routing.wordpress(&site).is_some(), "{site}");
    let source = samples::json("eventbridge-publish-requested")["source"].as_str().unwrap().to_string();
    assert!(routing.eventbridge(&source).is_some(), "{source}");
}
