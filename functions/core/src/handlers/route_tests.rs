//! Per-route signing secrets through the handlers, two tenants per source: a request verifies
//! only with the secrets of the tenant it claims (A's secret claiming B's shop, site, space or
//! event source is 401 and writes nothing), several secrets verify during a rotation, and a
//! deployment on shared secrets keeps working until a route has its own.

use std::sync::Arc;

use http::HeaderMap;
use instapipe_test_support::samples::{CONTENTFUL_AT_MS, SHOPIFY_AT, WORDPRESS_AT};
use instapipe_test_support::signing::{contentful_headers, shopify_signature};
use lambda_http::Request;
use secrecy::SecretString;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::{ingest, ingest_event};
use crate::account::{Account, AccountStatus, LoginFlavour};
use crate::clock::FixedClock;
use crate::deps::Ingest;
use crate::route_secrets::MemoryRouteSecrets;
use crate::routing::{RouteSource, Routing};
use crate::scheduler::MemoryScheduler;
use crate::sources::contentful_assets::{Asset, StaticAssets};
use crate::sources::eventbridge;
use crate::sources::fixtures;
use crate::sources::routed::SourceDeps;
use crate::sources::standard_webhooks::StandardWebhookVerifier;
use crate::store::{MemoryStore, PostStore};

const ACCOUNT_A: &str = "17841400000000001";
const ACCOUNT_B: &str = "17841400000000002";

const SHOP_A: &str = "demo-pier-goods.myshopify.com";
const SHOP_B: &str = "brand-b.myshopify.com";
const SITE_A: &str = "https://news.example.org/";
const SITE_B: &str = "https://blog.brand-b.example/";
const SPACE_A: &str = "demo0space7";
const SPACE_B: &str = "brandbspace1";
const BUS_A: &str = "com.example.cms-bridge";
const BUS_B: &str = "com.brand-b.events";

const SHOPIFY_A: &str = "shpss_brand_a_client_secret";
const SHOPIFY_B: &str = "shpss_brand_b_client_secret";
const CONTENTFUL_A: &str = "brand-a-contentful-signing-secret-0000000000000000000000000000aa";
const CONTENTFUL_B: &str = "brand-b-contentful-signing-secret-0000000000000000000000000000bb";
const WHSEC_A: &str = "whsec_YnJhbmQtYS1zdGFuZGFyZC13ZWJob29rcy1rZXk=";
const WHSEC_B: &str = "whsec_YnJhbmQtYi1zdGFuZGFyZC13ZWJob29rcy1rZXk=";
const WHSEC_A_NEXT: &str = "whsec_YnJhbmQtYS1uZXh0LXdlYmhvb2tzLWtleS0wMQ==";
/// The single WordPress secret of a deployment from before per-route secrets.
const WHSEC_SHARED: &str = "whsec_c2hhcmVkLXdvcmRwcmVzcy1zZWNyZXQtb2YtYWxs";

fn routing() -> Routing {
    let doc = json!({"routes": [
        {"source": "shopify", "shop": SHOP_A, "accounts": [ACCOUNT_A]},
        {"source": "shopify", "shop": SHOP_B, "accounts": [ACCOUNT_B]},
        {"source": "contentful", "space": SPACE_A, "content_type": "instagramPost", "accounts": [ACCOUNT_A],
         "fields": {"media": ["heroImage", "gallery"], "publish_at": "publishAt"}},
        {"source": "contentful", "space": SPACE_B, "content_type": "instagramPost", "accounts": [ACCOUNT_B],
         "fields": {"media": ["heroImage", "gallery"], "publish_at": "publishAt"}},
        {"source": "wordpress", "site": SITE_A, "accounts": [ACCOUNT_A]},
        {"source": "wordpress", "site": SITE_B, "accounts": [ACCOUNT_B]},
        {"source": "eventbridge", "event_source": BUS_A, "accounts": [ACCOUNT_A]},
        {"source": "eventbridge", "event_source": BUS_B, "accounts": [ACCOUNT_B]},
    ]});
    Routing::from_json(Some(&doc.to_string())).unwrap()
}

/// Every tenant with its own secret.
fn per_route_secrets() -> MemoryRouteSecrets {
    let secrets = MemoryRouteSecrets::default();
    secrets.set(RouteSource::Shopify, SHOP_A, &[SHOPIFY_A]);
    secrets.set(RouteSource::Shopify, SHOP_B, &[SHOPIFY_B]);
    secrets.set(RouteSource::Contentful, SPACE_A, &[CONTENTFUL_A]);
    secrets.set(RouteSource::Contentful, SPACE_B, &[CONTENTFUL_B]);
    secrets.set(RouteSource::Wordpress, "news.example.org", &[WHSEC_A]);
    secrets.set(RouteSource::Wordpress, "blog.brand-b.example", &[WHSEC_B]);
    secrets.set(RouteSource::Eventbridge, BUS_A, &[WHSEC_A]);
    secrets.set(RouteSource::Eventbridge, BUS_B, &[WHSEC_B]);
    secrets
}

struct World {
    deps: Ingest,
    store: Arc<MemoryStore>,
    secrets: Arc<MemoryRouteSecrets>,
}

async fn world(now: OffsetDateTime, secrets: MemoryRouteSecrets, shared: &[(RouteSource, &str)]) -> World {
    let store = Arc::new(MemoryStore::default());
    for account in [ACCOUNT_A, ACCOUNT_B] {
        let account = Account { account_id: account.into(), login: LoginFlavour::Instagram, status: AccountStatus::Active, token_expires_at: None };
        store.put_account(&account).await.unwrap();
    }
    let secrets = Arc::new(secrets);
    let assets = StaticAssets(
        ["4mNbVcXzLkJhGfDsAqW001", "4mNbVcXzLkJhGfDsAqW002", "4mNbVcXzLkJhGfDsAqW003"]
            .iter()
            .map(|id| (id.to_string(), Asset { url: format!("https://images.example.com/{id}.jpg"), content_type: "image/jpeg".into() }))
            .collect(),
    );
    let deps = Ingest {
        store: store.clone(),
        clock: Arc::new(FixedClock(now)),
        generic: StandardWebhookVerifier::new(WHSEC_SHARED).unwrap(),
        api_keys: Arc::new(crate::store::api_keys::MemoryApiKeys::default()),
        scheduler: Arc::new(MemoryScheduler::default()),
        cursor_key: Default::default(),
        connect: None,
        sources: SourceDeps {
            routing: routing(),
            route_secrets: secrets.clone(),
            shared: shared.iter().map(|(source, secret)| (*source, SecretString::from(secret.to_string()))).collect(),
            assets: Arc::new(assets),
        },
    };
    World { deps, store, secrets }
}

impl World {
    async fn send(&self, request: Request) -> (u16, Value) {
        let response = ingest::handle(&self.deps, request).await;
        (response.status().as_u16(), serde_json::from_slice(response.body().as_ref()).unwrap())
    }

    fn written(&self) -> (usize, usize) {
        (self.store.post_count(), self.store.delivery_count())
    }
}

fn secs(ts: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(ts).unwrap()
}

fn millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap()
}

/// The Shopify sample, claiming `shop`, signed with `secret`.
fn shopify(shop: &str, secret: &str) -> Request {
    let name = "shopify-products-create";
    let body = fixtures::body(name);
    let mut headers = fixtures::headers(name);
    headers.insert("x-shopify-shop-domain", shop.parse().unwrap());
    headers.insert("x-shopify-webhook-id", format!("delivery-{shop}").parse().unwrap());
    headers.insert("x-shopify-event-id", format!("event-{shop}").parse().unwrap());
    headers.insert("x-shopify-hmac-sha256", shopify_signature(secret, &body).parse().unwrap());
    fixtures::request_with("/webhooks/shopify", headers, body)
}

/// The Contentful sample moved to `space`, signed with `secret`.
fn contentful(space: &str, secret: &str) -> Request {
    let name = "contentful-entry-publish";
    let body = String::from_utf8(fixtures::body(name)).unwrap().replace(SPACE_A, space).into_bytes();
    let mut headers = fixtures::headers(name);
    let signed = ["content-type", "x-contentful-topic"].map(|n| (n, headers[n].to_str().unwrap().to_string()));
    let signed: Vec<(&str, &str)> = signed.iter().map(|(n, v)| (*n, v.as_str())).collect();
    for (n, v) in contentful_headers(secret, "POST", "/webhooks/contentful", &signed, CONTENTFUL_AT_MS, &body) {
        headers.insert(http::HeaderName::from_bytes(n.as_bytes()).unwrap(), v.parse().unwrap());
    }
    fixtures::request_with("/webhooks/contentful", headers, body)
}

/// The WordPress sample from `site`, signed with `secret`.
fn wordpress(site: &str, secret: &str, edit: impl Fn(&mut Value)) -> Request {
    let mut payload = fixtures::json("wordpress-post-published");
    payload["data"]["site"] = site.into();
    edit(&mut payload);
    let body = serde_json::to_vec(&payload).unwrap();
    let id = format!("msg_{}_{}", site.len(), payload["data"]["id"]);
    let signature = standardwebhooks::Webhook::new(secret).unwrap().sign(&id, WORDPRESS_AT, &body).unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    headers.insert("webhook-id", id.parse().unwrap());
    headers.insert("webhook-timestamp", WORDPRESS_AT.to_string().parse().unwrap());
    headers.insert("webhook-signature", signature.parse().unwrap());
    fixtures::request_with("/webhooks/wordpress", headers, body)
}

/// The EventBridge sample from `source`, signed with `secret` (unsigned with `None`).
fn event(source: &str, secret: Option<&str>, accounts: Option<&[&str]>) -> Value {
    let mut event = fixtures::json("eventbridge-publish-requested");
    event["source"] = source.into();
    event["detail"]["idempotencyKey"] = format!("{source}:entry-5").into();
    if let Some(accounts) = accounts {
        event["detail"]["post"]["accounts"] = json!(accounts);
    }
    if let Some(secret) = secret {
        let signature = eventbridge::sign(secret, source, &event["detail"]).unwrap();
        event["detail"]["signature"] = signature.into();
    }
    event
}

fn assert_refused(answer: &Value, message_like: &Value) {
    assert_eq!(answer["error"]["code"], "invalid_signature", "{answer}");
    assert_eq!(answer["error"]["message"], message_like["error"]["message"], "unknown route and wrong secret answer alike");
}

// ---- cross-tenant: A's secret claiming B's route ----

#[tokio::test]
async fn shopify_a_secret_claiming_shop_b_is_refused_and_writes_nothing() {
    let w = world(secs(SHOPIFY_AT), per_route_secrets(), &[]).await;
    let (status, forged) = w.send(shopify(SHOP_B, SHOPIFY_A)).await;
    assert_eq!((status, &forged["error"]["code"]), (401, &json!("invalid_signature")), "{forged}");
    let (status, unknown) = w.send(shopify("unknown-shop.myshopify.com", SHOPIFY_A)).await;
    assert_eq!(status, 401);
    assert_refused(&unknown, &forged);
    assert_eq!(w.written(), (0, 0), "no post, no delivery record");

    let (status, answer) = w.send(shopify(SHOP_A, SHOPIFY_A)).await;
    assert_eq!(status, 202, "{answer}");
    let post = w.store.get_post(answer["post_id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(post.accounts, [ACCOUNT_A]);
    let (status, _) = w.send(shopify(SHOP_B, SHOPIFY_B)).await;
    assert_eq!(status, 202, "B's own secret verifies B");
}

#[tokio::test]
async fn wordpress_a_secret_claiming_site_b_is_refused_and_writes_nothing() {
    let w = world(secs(WORDPRESS_AT), per_route_secrets(), &[]).await;
    let (status, forged) = w.send(wordpress(SITE_B, WHSEC_A, |_| {})).await;
    assert_eq!(status, 401, "{forged}");
    // The same site written differently is the same tenant.
    let (status, _) = w.send(wordpress("https://BLOG.brand-b.example", WHSEC_A, |_| {})).await;
    assert_eq!(status, 401);
    let (status, unknown) = w.send(wordpress("https://unknown.example/", WHSEC_A, |_| {})).await;
    assert_eq!(status, 401);
    assert_refused(&unknown, &forged);
    assert_eq!(w.written(), (0, 0));

    let (status, answer) = w.send(wordpress(SITE_A, WHSEC_A, |_| {})).await;
    assert_eq!(status, 202, "{answer}");
    let (status, answer) = w.send(wordpress(SITE_B, WHSEC_B, |_| {})).await;
    assert_eq!(status, 202, "{answer}");
    let post = w.store.get_post(answer["post_id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(post.accounts, [ACCOUNT_B]);
}

#[tokio::test]
async fn contentful_a_secret_claiming_space_b_is_refused_and_writes_nothing() {
    let w = world(millis(CONTENTFUL_AT_MS), per_route_secrets(), &[]).await;
    let (status, forged) = w.send(contentful(SPACE_B, CONTENTFUL_A)).await;
    assert_eq!(status, 401, "{forged}");
    let (status, unknown) = w.send(contentful("unknownspace", CONTENTFUL_A)).await;
    assert_eq!(status, 401);
    assert_refused(&unknown, &forged);
    assert_eq!(w.written(), (0, 0));

    let (status, answer) = w.send(contentful(SPACE_A, CONTENTFUL_A)).await;
    assert_eq!(status, 202, "{answer}");
    let (status, answer) = w.send(contentful(SPACE_B, CONTENTFUL_B)).await;
    assert_eq!(status, 202, "{answer}");
}

#[tokio::test]
async fn eventbridge_a_secret_claiming_source_b_is_refused_and_writes_nothing() {
    let w = world(secs(WORDPRESS_AT), per_route_secrets(), &[]).await;
    let refused = |event: Value| {
        let deps = &w.deps;
        async move { ingest_event::handle(deps, event).await.unwrap_err() }
    };
    let forged = refused(event(BUS_B, Some(WHSEC_A), None)).await;
    assert_eq!((forged.status, forged.code), (401, "invalid_signature"));
    assert_eq!(refused(event(BUS_A, None, None)).await.status, 401, "a route with secrets takes no unsigned event");
    let unknown = refused(event("com.unknown", Some(WHSEC_A), Some(&[ACCOUNT_B]))).await;
    assert_eq!((unknown.status, &unknown.message), (401, &forged.message));
    // Signed by A, but naming B's account: A may post only to its route's accounts.
    let trespass = refused(event(BUS_A, Some(WHSEC_A), Some(&[ACCOUNT_B]))).await;
    assert_eq!((trespass.status, trespass.code, trespass.field.as_deref()), (403, "account_not_in_route", Some("detail.post.accounts[0]")));
    assert_eq!(w.written(), (0, 0));

    let accepted = ingest_event::handle(&w.deps, event(BUS_A, Some(WHSEC_A), None)).await.unwrap();
    let post = w.store.get_post(accepted["post_id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(post.accounts, [ACCOUNT_A]);
    let accepted = ingest_event::handle(&w.deps, event(BUS_B, Some(WHSEC_B), Some(&[ACCOUNT_B]))).await.unwrap();
    assert!(accepted["post_id"].is_string(), "{accepted}");
}

// ---- WordPress: password-protected posts ----

#[tokio::test]
async fn a_password_protected_wordpress_post_is_422_and_writes_nothing() {
    let w = world(secs(WORDPRESS_AT), per_route_secrets(), &[]).await;
    let (status, answer) = w.send(wordpress(SITE_A, WHSEC_A, |p| p["data"]["password_protected"] = true.into())).await;
    assert_eq!((status, &answer["error"]["code"], &answer["error"]["field"]), (422, &json!("protected_post"), &json!("data.password_protected")));
    assert_eq!(w.written(), (0, 0));
}

// ---- rotation ----

#[tokio::test]
async fn during_a_rotation_the_old_and_the_new_secret_both_verify() {
    let w = world(secs(WORDPRESS_AT), per_route_secrets(), &[]).await;
    w.secrets.set(RouteSource::Wordpress, "news.example.org", &[WHSEC_A, WHSEC_A_NEXT]);
    w.secrets.set(RouteSource::Eventbridge, BUS_A, &[WHSEC_A, WHSEC_A_NEXT]);
    let (status, _) = w.send(wordpress(SITE_A, WHSEC_A, |p| p["data"]["id"] = 1.into())).await;
    assert_eq!(status, 202);
    let (status, _) = w.send(wordpress(SITE_A, WHSEC_A_NEXT, |p| p["data"]["id"] = 2.into())).await;
    assert_eq!(status, 202);
    ingest_event::handle(&w.deps, event(BUS_A, Some(WHSEC_A_NEXT), None)).await.unwrap();

    // The rotation ends: the old secret no longer verifies.
    w.secrets.set(RouteSource::Wordpress, "news.example.org", &[WHSEC_A_NEXT]);
    let before = w.written();
    let (status, _) = w.send(wordpress(SITE_A, WHSEC_A, |p| p["data"]["id"] = 3.into())).await;
    assert_eq!(status, 401);
    assert_eq!(w.written(), before);
}

// ---- migration from shared secrets ----

#[tokio::test]
async fn a_shared_secret_verifies_routes_without_their_own_until_they_get_one() {
    // A deployment from before: one WordPress secret for every site, no route secrets.
    let w = world(secs(WORDPRESS_AT), MemoryRouteSecrets::default(), &[(RouteSource::Wordpress, WHSEC_SHARED)]).await;
    let audit = w.deps.sources.audit("instapipe/webhook-secrets", "instapipe/routes/").await.unwrap();
    let warning = audit.migration_warning().unwrap();
    assert!(warning.contains("wordpress news.example.org (instapipe/routes/wordpress/news.example.org)"), "{warning}");
    assert!(warning.contains("wordpress blog.brand-b.example"), "{warning}");
    assert!(warning.contains("instapipe routes secret set"), "{warning}");
    assert!(!warning.contains(WHSEC_SHARED) && !warning.contains("c2hhcmVk"), "names, never secrets: {warning}");
    let (status, _) = w.send(wordpress(SITE_A, WHSEC_SHARED, |p| p["data"]["id"] = 1.into())).await;
    assert_eq!(status, 202, "the shared secret still verifies");

    // Site A moves to its own secret: the shared one no longer verifies A, and still verifies B.
    w.secrets.set(RouteSource::Wordpress, "news.example.org", &[WHSEC_A]);
    let before = w.written();
    let (status, _) = w.send(wordpress(SITE_A, WHSEC_SHARED, |p| p["data"]["id"] = 2.into())).await;
    assert_eq!(status, 401);
    assert_eq!(w.written(), before, "refused, nothing written");
    let (status, _) = w.send(wordpress(SITE_A, WHSEC_A, |p| p["data"]["id"] = 3.into())).await;
    assert_eq!(status, 202);
    let (status, _) = w.send(wordpress(SITE_B, WHSEC_SHARED, |p| p["data"]["id"] = 4.into())).await;
    assert_eq!(status, 202, "B has not moved yet");
    let audit = w.deps.sources.audit("instapipe/webhook-secrets", "instapipe/routes/").await.unwrap();
    assert_eq!(audit.own.len(), 1);
    let warning = audit.migration_warning().unwrap();
    assert!(!warning.contains("news.example.org") && warning.contains("blog.brand-b.example"), "{warning}");
}

#[tokio::test]
async fn shared_shopify_and_contentful_secrets_stop_verifying_a_route_that_has_its_own() {
    let shopify_shared = "shpss_shared_for_every_shop";
    let contentful_shared = "shared-contentful-signing-secret-00000000000000000000000000000cc";
    let shared = [(RouteSource::Shopify, shopify_shared), (RouteSource::Contentful, contentful_shared)];
    let secrets = MemoryRouteSecrets::default();
    secrets.set(RouteSource::Shopify, SHOP_B, &[SHOPIFY_B]);
    secrets.set(RouteSource::Contentful, SPACE_B, &[CONTENTFUL_B]);
    let w = world(millis(CONTENTFUL_AT_MS), secrets, &shared).await;
    assert_eq!(w.send(shopify(SHOP_A, shopify_shared)).await.0, 202, "A is still on the shared secret");
    assert_eq!(w.send(shopify(SHOP_B, shopify_shared)).await.0, 401, "B has its own");
    assert_eq!(w.send(contentful(SPACE_B, contentful_shared)).await.0, 401);
    assert_eq!(w.send(contentful(SPACE_A, contentful_shared)).await.0, 202);
    assert_eq!(w.store.post_count(), 2);
}

#[tokio::test]
async fn an_eventbridge_route_without_secrets_takes_unsigned_events_until_it_has_some() {
    let w = world(secs(WORDPRESS_AT), MemoryRouteSecrets::default(), &[]).await;
    let audit = w.deps.sources.audit("n", "p/").await.unwrap();
    assert!(audit.migration_warning().unwrap().contains("eventbridge com.example.cms-bridge (p/eventbridge/com.example.cms-bridge)"));
    ingest_event::handle(&w.deps, event(BUS_A, None, None)).await.unwrap();
    w.secrets.set(RouteSource::Eventbridge, BUS_B, &[WHSEC_B]);
    let before = w.written();
    assert_eq!(ingest_event::handle(&w.deps, event(BUS_B, None, None)).await.unwrap_err().status, 401);
    assert_eq!(w.written(), before);
}
