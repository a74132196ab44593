//! The routed sources end to end through the handlers, against the in-memory store, with the
//! signed fixtures' real requests at their own (fixed) time.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderMap;
// The samples' secrets, and when each was signed.
use instapipe_test_support::samples::{
    CONTENTFUL_AT_MS, CONTENTFUL_SECRET, SHOPIFY_AT, SHOPIFY_SECRET, WORDPRESS_AT, WORDPRESS_PREVIOUS_SECRET as WP_PREVIOUS,
    WORDPRESS_SECRET as WP_CURRENT,
};
use instapipe_test_support::signing::{contentful_headers, shopify_signature};
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{ingest, ingest_event};
use crate::account::{Account, AccountStatus, LoginFlavour};
use crate::clock::FixedClock;
use crate::deps::Ingest;
use crate::post::DestState;
use crate::routing::Routing;
use crate::scheduler::MemoryScheduler;
use crate::route_secrets::MemoryRouteSecrets;
use crate::routing::RouteSource;
use crate::sources::contentful_assets::{Asset, StaticAssets};
use crate::sources::fixtures;
use crate::sources::routed::SourceDeps;
use crate::sources::standard_webhooks::StandardWebhookVerifier;
use secrecy::SecretString;
use crate::store::{MemoryStore, PostStore};

const ACCOUNT: &str = "17841400000000001";

fn routing() -> Routing {
    let doc = json!({"routes": [
        {"source": "shopify", "shop": "demo-pier-goods.myshopify.com", "accounts": [ACCOUNT], "media": "all"},
        {"source": "contentful", "space": "demo0space7", "content_type": "instagramPost", "accounts": [ACCOUNT],
         "fields": {"media": ["heroImage", "gallery"], "publish_at": "publishAt"}},
        {"source": "wordpress", "site": "https://news.example.org/", "accounts": [ACCOUNT]},
        {"source": "eventbridge", "event_source": "com.example.cms-bridge", "accounts": [ACCOUNT]},
    ]});
    Routing::from_json(Some(&doc.to_string())).unwrap()
}

fn assets() -> StaticAssets {
    let ids = ["4mNbVcXzLkJhGfDsAqW001", "4mNbVcXzLkJhGfDsAqW002", "4mNbVcXzLkJhGfDsAqW003"];
    StaticAssets(
        ids.iter()
            .map(|id| (id.to_string(), Asset { url: format!("https://images.example.com/{id}.jpg"), content_type: "image/jpeg".into() }))
            .collect::<HashMap<_, _>>(),
    )
}

async fn deps(now: OffsetDateTime, routing: Routing) -> (Ingest, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::default());
    let account = Account { account_id: ACCOUNT.into(), login: LoginFlavour::Instagram, status: AccountStatus::Active, token_expires_at: None };
    store.put_account(&account).await.unwrap();
    let deps = Ingest {
        store: store.clone(),
        clock: Arc::new(FixedClock(now)),
        generic: StandardWebhookVerifier::new(WP_CURRENT).unwrap(),
        api_keys: Arc::new(crate::store::api_keys::MemoryApiKeys::default()),
        scheduler: Arc::new(MemoryScheduler::default()),
        cursor_key: Default::default(),
        // The shared secrets of a deployment from before per-route secrets (see route_tests for those).
        sources: SourceDeps {
            routing,
            route_secrets: Arc::new(MemoryRouteSecrets::default()),
            shared: [
                (RouteSource::Shopify, SHOPIFY_SECRET.to_string()),
                (RouteSource::Contentful, CONTENTFUL_SECRET.to_string()),
                // During a rotation both keys are configured; the fixture carries a token of each.
                (RouteSource::Wordpress, format!("{WP_PREVIOUS} {WP_CURRENT}")),
            ]
            .into_iter()
            .map(|(source, secret)| (source, SecretString::from(secret)))
            .collect(),
            assets: Arc::new(assets()),
        },
        connect: None,
    };
    (deps, store)
}

fn secs(ts: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(ts).unwrap()
}

fn millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap()
}

fn body_json(response: &Response<Body>) -> Value {
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

async fn send(deps: &Ingest, request: Request) -> (u16, Value) {
    let response = ingest::handle(deps, request).await;
    let status = response.status().as_u16();
    assert_eq!(response.headers()["content-type"], "application/json");
    (status, body_json(&response))
}

fn shopify(name: &str) -> Request {
    fixtures::request(name, "/webhooks/shopify")
}

/// A Shopify request with this body, signed properly.
fn shopify_signed(name: &str, body: Vec<u8>) -> Request {
    let mut headers = fixtures::headers(name);
    headers.insert("x-shopify-hmac-sha256", shopify_signature(SHOPIFY_SECRET, &body).parse().unwrap());
    fixtures::request_with("/webhooks/shopify", headers, body)
}

fn contentful_signed(body: Vec<u8>, ts_ms: i64) -> Request {
    let name = "contentful-entry-publish";
    let mut headers = fixtures::headers(name);
    let signed = ["content-type", "x-contentful-crn", "x-contentful-topic", "x-contentful-webhook-name"]
        .map(|n| (n, headers[n].to_str().unwrap().to_string()));
    let signed: Vec<(&str, &str)> = signed.iter().map(|(n, v)| (*n, v.as_str())).collect();
    for (n, v) in contentful_headers(CONTENTFUL_SECRET, "POST", "/webhooks/contentful", &signed, ts_ms, &body) {
        headers.insert(http::HeaderName::from_bytes(n.as_bytes()).unwrap(), v.parse().unwrap());
    }
    fixtures::request_with("/webhooks/contentful", headers, body)
}

fn wordpress_signed(body: Vec<u8>, id: &str, ts: i64, secret: &str) -> Request {
    let mut headers = fixtures::headers("wordpress-post-published");
    let signature = standardwebhooks::Webhook::new(secret).unwrap().sign(id, ts, &body).unwrap();
    headers.insert("webhook-id", id.parse().unwrap());
    headers.insert("webhook-timestamp", ts.to_string().parse().unwrap());
    headers.insert("webhook-signature", signature.parse().unwrap());
    fixtures::request_with("/webhooks/wordpress", headers, body)
}

fn with_header(mut request: Request, name: &'static str, value: &str) -> Request {
    request.headers_mut().insert(name, value.parse().unwrap());
    request
}

// ---- Shopify ----

#[tokio::test]
async fn shopify_posts_an_active_product_once_and_skips_drafts() {
    let (deps, store) = deps(secs(SHOPIFY_AT), routing()).await;
    let (status, answer) = send(&deps, shopify("shopify-products-create")).await;
    assert_eq!((status, answer["state"].as_str()), (202, Some("IN_PROGRESS")), "{answer}");
    let post_id = answer["post_id"].as_str().unwrap().to_string();
    let post = store.get_post(&post_id).await.unwrap().unwrap();
    assert_eq!((post.source.as_str(), post.source_event_id.as_str()), ("shopify", "5b2e9f10-7c4a-4d63-8e1b-2a3c4d5e6f70"));
    assert_eq!(post.media.len(), 2, "the route posts every image: a carousel");
    assert!(post.caption.starts_with("Enamel Camp Kettle — Fjäll Edition — from 38.00\n"), "{}", post.caption);
    assert_eq!(store.list_destinations(&post_id).await.unwrap()[0].state, DestState::Queued);

    // Shopify retries the same delivery: the same post.
    let (status, answer) = send(&deps, shopify("shopify-products-create")).await;
    assert_eq!((status, &answer["post_id"], &answer["duplicate"]), (202, &json!(post_id), &json!(true)));

    // A products/update of the same product (a new delivery): not posted again, and says why.
    let mut update = fixtures::headers("shopify-products-create");
    update.insert("x-shopify-topic", "products/update".parse().unwrap());
    update.insert("x-shopify-webhook-id", "later-delivery".parse().unwrap());
    update.insert("x-shopify-event-id", "later-event".parse().unwrap());
    let (status, answer) = send(&deps, fixtures::request_with("/webhooks/shopify", update, fixtures::body("shopify-products-create"))).await;
    assert_eq!((status, &answer["post_id"]), (202, &json!(post_id)));
    assert_eq!(store.skipped_reason("shopify", "later-delivery"), Some(format!("already posted as {post_id}")));
    assert_eq!(store.post_count(), 1);

    // A draft: acknowledged with 200 and recorded as skipped.
    let (status, answer) = send(&deps, shopify("shopify-products-update")).await;
    assert_eq!((status, &answer["skipped"]), (200, &json!(true)), "{answer}");
    assert_eq!(answer["reason"], "product 7310000000188 is draft, not active");
    assert_eq!(store.skipped_reason("shopify", "0e9d8c7b-6a5f-4e3d-b2c1-a0f9e8d7c6b5").as_deref(), Some("product 7310000000188 is draft, not active"));
    assert_eq!(store.post_count(), 1);
}

#[tokio::test]
async fn shopify_header_names_in_any_casing_verify() {
    let (deps, store) = deps(secs(SHOPIFY_AT), routing()).await;
    // HeaderMap folds case; the fixture's own spelling is X-Shopify-Hmac-Sha256.
    let mut headers = HeaderMap::new();
    for (name, value) in fixtures::headers("shopify-products-create") {
        headers.insert(http::HeaderName::from_bytes(name.unwrap().as_str().to_ascii_uppercase().as_bytes()).unwrap(), value);
    }
    let (status, _) = send(&deps, fixtures::request_with("/webhooks/shopify", headers, fixtures::body("shopify-products-create"))).await;
    assert_eq!(status, 202);
    assert_eq!(store.post_count(), 1);
}

// ---- Contentful ----

#[tokio::test]
async fn contentful_schedules_the_entry_and_the_eventbridge_event_for_it_is_the_same_post() {
    let (deps, store) = deps(millis(CONTENTFUL_AT_MS + 2_000), routing()).await;
    let (status, answer) = send(&deps, fixtures::request("contentful-entry-publish", "/webhooks/contentful")).await;
    assert_eq!((status, answer["state"].as_str()), (202, Some("SCHEDULED")), "{answer}");
    let post_id = answer["post_id"].as_str().unwrap().to_string();
    let post = store.get_post(&post_id).await.unwrap().unwrap();
    assert_eq!(post.media[0].url, "https://images.example.com/4mNbVcXzLkJhGfDsAqW001.jpg");
    assert_eq!(post.publish_at, Some(time::macros::datetime!(2026-10-15 16:30 UTC)));

    let result = ingest_event::handle(&deps, fixtures::json("eventbridge-publish-requested")).await.unwrap();
    assert_eq!(result, json!({"post_id": post_id, "duplicate": true}));
    assert_eq!(store.post_count(), 1);

    // The external scheduler says it is due: the post goes now.
    let result = ingest_event::handle(&deps, fixtures::json("eventbridge-scheduler-publish-due")).await.unwrap();
    assert_eq!((&result["post_id"], &result["queued_now"]), (&json!(post_id), &json!(1)));
    let dest = store.list_destinations(&post_id).await.unwrap().remove(0);
    assert_eq!(dest.state, DestState::Queued);
    assert!(dest.history.last().unwrap().note.as_deref().unwrap().starts_with("publish-due from arn:aws:scheduler"));
    let again = ingest_event::handle(&deps, fixtures::json("eventbridge-scheduler-publish-due")).await.unwrap();
    assert_eq!(again["queued_now"], 0, "a second delivery finds nothing waiting");
}

#[tokio::test]
async fn contentful_other_topics_and_unrouted_content_types_are_acknowledged() {
    let (deps, store) = deps(millis(CONTENTFUL_AT_MS), Routing::default()).await;
    let (status, answer) = send(&deps, fixtures::request("contentful-entry-publish", "/webhooks/contentful")).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["reason"], "no route for Contentful space demo0space7 (master), content type instagramPost");
    assert!(store.skipped_reason("contentful", "demo0space7:master:5kPqRsTuVwXyZaBcDeFgHi:5").is_some());
    assert_eq!(store.post_count(), 0);
}

// ---- WordPress ----

#[tokio::test]
async fn wordpress_posts_the_featured_image_once_per_blog_post() {
    let (deps, store) = deps(secs(WORDPRESS_AT), routing()).await;
    let (status, answer) = send(&deps, fixtures::request("wordpress-post-published", "/webhooks/wordpress")).await;
    assert_eq!(status, 202, "{answer}");
    let post = store.get_post(answer["post_id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(post.media[0].url, "https://news.example.org/wp-content/uploads/2026/10/autumn-reading.jpg");
    assert!(post.caption.ends_with("#autumn #reading"), "{}", post.caption);
    // The same blog post published again (another webhook-id): not posted twice.
    let again = wordpress_signed(fixtures::body("wordpress-post-published"), "msg_another", WORDPRESS_AT, WP_CURRENT);
    let (status, again) = send(&deps, again).await;
    assert_eq!((status, &again["duplicate"], &again["post_id"]), (202, &json!(true), &answer["post_id"]));
    assert_eq!(store.post_count(), 1);
}

#[tokio::test]
async fn an_account_the_routing_names_but_nobody_registered_is_a_recorded_skip() {
    let doc = json!({"routes": [{"source": "wordpress", "site": "https://news.example.org", "accounts": ["999"]}]});
    let (deps, store) = deps(secs(WORDPRESS_AT), Routing::from_json(Some(&doc.to_string())).unwrap()).await;
    let (status, answer) = send(&deps, fixtures::request("wordpress-post-published", "/webhooks/wordpress")).await;
    assert_eq!(status, 200);
    let reason = "Instagram account 999 (routes[0] (wordpress https://news.example.org)) is not registered with instapipe";
    assert_eq!(answer["reason"], reason);
    assert_eq!(store.skipped_reason("wordpress", "msg_286756288af89c6fe2bcb1de3973f016").as_deref(), Some(reason));
    assert_eq!(store.post_count(), 0);
}

// ---- bad input, every source ----

struct Case {
    what: &'static str,
    request: Request,
    status: u16,
    code: &'static str,
    field: Option<&'static str>,
}

fn case(what: &'static str, request: Request, status: u16, code: &'static str, field: Option<&'static str>) -> Case {
    Case { what, request, status, code, field }
}

async fn refused(now: OffsetDateTime, cases: Vec<Case>) {
    let (deps, store) = deps(now, routing()).await;
    for c in cases {
        let (status, answer) = send(&deps, c.request).await;
        assert_eq!(status, c.status, "{}: {answer}", c.what);
        assert_eq!(answer["error"]["code"], c.code, "{}: {answer}", c.what);
        assert_eq!(answer["error"]["field"].as_str(), c.field, "{}: {answer}", c.what);
        assert!(answer["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{}", c.what);
    }
    assert_eq!((store.post_count(), store.delivery_count()), (0, 0), "a refused request writes nothing");
}

fn oversized() -> Vec<u8> {
    format!(r#"{{"title":"{}"}}"#, "x".repeat(super::edge::MAX_BODY_BYTES)).into_bytes()
}

fn truncated(name: &str) -> Vec<u8> {
    let body = fixtures::body(name);
    body[..body.len() - 40].to_vec()
}

#[tokio::test]
async fn shopify_refuses_bad_requests_and_writes_nothing() {
    let create = "shopify-products-create";
    let forged = fixtures::request_with(
        "/webhooks/shopify",
        { let mut h = fixtures::headers(create); h.insert("x-shopify-hmac-sha256", shopify_signature("forged", &fixtures::body(create)).parse().unwrap()); h },
        fixtures::body(create),
    );
    let mut no_image = fixtures::json(create);
    no_image["images"][0]["src"] = "http://cdn.example.com/a.jpg".into();
    refused(secs(SHOPIFY_AT), vec![
        case("forged", forged, 401, "invalid_signature", None),
        case("truncated, fixture signature", fixtures::request_with("/webhooks/shopify", fixtures::headers(create), truncated(create)), 401, "invalid_signature", None),
        case("truncated, re-signed", shopify_signed(create, truncated(create)), 400, "invalid_body", None),
        case("oversized", shopify_signed(create, oversized()), 413, "body_too_large", None),
        case("form encoded", with_header(shopify(create), "content-type", "application/x-www-form-urlencoded"), 415, "unsupported_media_type", Some("content-type")),
        case("no content type", { let mut r = shopify(create); r.headers_mut().remove("content-type"); r }, 415, "unsupported_media_type", Some("content-type")),
        case("id is not a number", shopify_signed(create, br#"{"id":"mug","title":"x"}"#.to_vec()), 400, "invalid_body", Some("id")),
        case("http image", shopify_signed(create, serde_json::to_vec(&no_image).unwrap()), 422, "invalid_field", Some("media[0].url")),
        case("no webhook id", { let mut r = shopify(create); r.headers_mut().remove("x-shopify-webhook-id"); r }, 400, "invalid_header", Some("X-Shopify-Webhook-Id")),
        case("GET", { let mut r = shopify(create); *r.method_mut() = http::Method::GET; r }, 405, "method_not_allowed", None),
    ])
    .await;
}

#[tokio::test]
async fn contentful_refuses_bad_requests_and_writes_nothing() {
    let name = "contentful-entry-publish";
    let body = fixtures::body(name);
    let mut bad_date = fixtures::json(name);
    bad_date["fields"]["publishAt"]["en-US"] = "next week".into();
    let mut no_sys = fixtures::json(name);
    no_sys.as_object_mut().unwrap().remove("sys");
    let mut forged = fixtures::request(name, "/webhooks/contentful");
    forged.headers_mut().insert("x-contentful-signature", "0".repeat(64).parse().unwrap());
    let now = CONTENTFUL_AT_MS + 1_000;
    refused(millis(now), vec![
        case("forged", forged, 401, "invalid_signature", None),
        case("stale", contentful_signed(body.clone(), now - 300_001), 401, "invalid_signature", None),
        case("truncated, fixture signature", fixtures::request_with("/webhooks/contentful", fixtures::headers(name), truncated(name)), 401, "invalid_signature", None),
        case("truncated, re-signed", contentful_signed(truncated(name), now), 400, "invalid_body", None),
        case("oversized", contentful_signed(oversized(), now), 413, "body_too_large", None),
        case("text/plain", with_header(fixtures::request(name, "/webhooks/contentful"), "content-type", "text/plain"), 415, "unsupported_media_type", Some("content-type")),
        case("no sys", contentful_signed(serde_json::to_vec(&no_sys).unwrap(), now), 400, "invalid_body", None),
        case("bad publishAt", contentful_signed(serde_json::to_vec(&bad_date).unwrap(), now), 422, "invalid_field", Some("fields.publishAt.en-US")),
    ])
    .await;
}

#[tokio::test]
async fn wordpress_refuses_bad_requests_and_writes_nothing() {
    let name = "wordpress-post-published";
    let body = fixtures::body(name);
    let id = "msg_286756288af89c6fe2bcb1de3973f016";
    let mut http_image = fixtures::json(name);
    http_image["data"]["featured_image"] = "http://news.example.org/a.jpg".into();
    refused(secs(WORDPRESS_AT), vec![
        case("forged", wordpress_signed(body.clone(), id, WORDPRESS_AT, "whsec_Zm9yZ2VkLXNlY3JldC1mb3ItdGVzdGluZy0wMTIzNDU="), 401, "invalid_signature", None),
        case("stale", wordpress_signed(body.clone(), id, WORDPRESS_AT - 301, WP_CURRENT), 401, "invalid_signature", None),
        case("truncated, fixture signature", fixtures::request_with("/webhooks/wordpress", fixtures::headers(name), truncated(name)), 401, "invalid_signature", None),
        case("truncated, re-signed", wordpress_signed(truncated(name), id, WORDPRESS_AT, WP_CURRENT), 400, "invalid_body", None),
        case("oversized", wordpress_signed(oversized(), id, WORDPRESS_AT, WP_CURRENT), 413, "body_too_large", None),
        case("form encoded", with_header(fixtures::request(name, "/webhooks/wordpress"), "content-type", "application/x-www-form-urlencoded"), 415, "unsupported_media_type", Some("content-type")),
        case("id is text", wordpress_signed(br#"{"type":"post.published","data":{"site":"https://news.example.org/","id":"x"}}"#.to_vec(), id, WORDPRESS_AT, WP_CURRENT), 400, "invalid_body", Some("data.id")),
        case("http image", wordpress_signed(serde_json::to_vec(&http_image).unwrap(), id, WORDPRESS_AT, WP_CURRENT), 422, "invalid_field", Some("media[0].url")),
    ])
    .await;
}

#[tokio::test]
async fn a_source_without_a_secret_or_routes_is_not_served() {
    let (mut deps, store) = deps(secs(SHOPIFY_AT), Routing::default()).await;
    deps.sources.shared.remove(&RouteSource::Shopify);
    let (status, answer) = send(&deps, shopify("shopify-products-create")).await;
    assert_eq!((status, &answer["error"]["code"]), (404, &json!("not_found")));
    // With a route but no secret at all, the route exists and nothing verifies it.
    deps.sources.routing = routing();
    let (status, answer) = send(&deps, shopify("shopify-products-create")).await;
    assert_eq!((status, &answer["error"]["code"]), (401, &json!("invalid_signature")));
    assert_eq!((store.post_count(), store.delivery_count()), (0, 0));
}

#[tokio::test]
async fn infrastructure_events_that_break_the_schema_are_refused_and_write_nothing() {
    let (deps, store) = deps(secs(WORDPRESS_AT), routing()).await;
    let mut bad_media = fixtures::json("eventbridge-publish-requested");
    bad_media["detail"]["post"]["media"][0]["url"] = "http://images.example.com/a.jpg".into();
    let mut no_detail = fixtures::json("eventbridge-publish-requested");
    no_detail["detail"] = json!({});
    let cases = [
        (bad_media, 422, Some("media[0].url")),
        (no_detail, 400, Some("detail")),
        (json!({"kind": "post", "scheduleArn": "a", "scheduledTime": "t", "post": {"media": []}}), 400, Some("post")),
        (json!("just a string"), 400, None),
    ];
    for (event, status, field) in cases {
        let err = ingest_event::handle(&deps, event.clone()).await.unwrap_err();
        assert_eq!((err.status, err.field.as_deref()), (status, field), "{event}: {err:?}");
    }
    assert_eq!((store.post_count(), store.delivery_count()), (0, 0));
}

#[tokio::test]
async fn a_recurring_schedule_makes_one_post_per_scheduled_time() {
    let (deps, store) = deps(secs(WORDPRESS_AT), routing()).await;
    let input = |time: &str| {
        json!({"kind": "post", "scheduleArn": "arn:aws:scheduler:eu-west-1:1:schedule/instapipe/weekly", "scheduledTime": time,
               "post": {"caption": "Weekly menu", "media": [{"url": "https://cdn.example.com/menu.jpg", "type": "image"}], "accounts": [ACCOUNT]}})
    };
    let first = ingest_event::handle(&deps, input("2026-11-16T09:00:00Z")).await.unwrap();
    let retry = ingest_event::handle(&deps, input("2026-11-16T09:00:00Z")).await.unwrap();
    let next_week = ingest_event::handle(&deps, input("2026-11-23T09:00:00Z")).await.unwrap();
    assert_eq!(first["state"], "IN_PROGRESS");
    assert_eq!((&retry["post_id"], &retry["duplicate"]), (&first["post_id"], &json!(true)));
    assert_ne!(next_week["post_id"], first["post_id"]);
    assert_eq!(store.post_count(), 2);
}
