//! Per-route signing secrets on the local stack, with Secrets Manager (moto) and the operator
//! CLI: two tenants per source, each route given its own secret with `instapipe routes secret
//! set`; a request signed with A's secret that claims B's shop, site, space or event source is
//! 401 and leaves the table as it was. Then the migration from the single shared secret and a
//! rotation, as an operator does them.

use std::time::Duration;

use graph_sim::SimConfig;
use instapipe_cli::{Cli, Ctx};
use instapipe_local::LocalStack;
use instapipe_local::settings::Settings;
use instapipe_local::sources::DEMO_WORDPRESS_SECRET;
use instapipe_test_support::samples::{body, headers};
use instapipe_test_support::signing::{contentful_headers, shopify_signature};
use serde_json::{Value, json};

use crate::common::post_to_source;

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

const SHOPIFY_A: &str = "shpss_e2e_brand_a";
const SHOPIFY_B: &str = "shpss_e2e_brand_b";
const CONTENTFUL_A: &str = "e2e-brand-a-contentful-signing-secret-000000000000000000000000aa";
const CONTENTFUL_B: &str = "e2e-brand-b-contentful-signing-secret-000000000000000000000000bb";
const WHSEC_A: &str = "whsec_ZTJlLWJyYW5kLWEtc3RhbmRhcmQtd2ViaG9va3M=";
const WHSEC_B: &str = "whsec_ZTJlLWJyYW5kLWItc3RhbmRhcmQtd2ViaG9va3M=";

/// Time for the functions' route-secret cache (1 s here) to expire.
const CACHE: Duration = Duration::from_millis(1_200);

async fn stack() -> LocalStack {
    crate::common::logs();
    let mut settings = Settings::for_tests();
    settings.fast_waits();
    let routing = json!({"routes": [
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
    settings
        .set("ROUTING_CONFIG", routing.to_string())
        .set("ROUTE_SECRET_CACHE_SECS", "1")
        // Nothing answers there: a verified Contentful request fails at its asset lookup, locally.
        .set("CONTENTFUL_DELIVERY_BASE_URL", "http://127.0.0.1:9");
    let sim = SimConfig { image_delay: Duration::from_millis(300), ..SimConfig::default() };
    let stack = LocalStack::start(settings, sim).await.expect("the local stack starts (did `make deps` run?)");
    stack.add_account(ACCOUNT_A, "IGAA-routes-a").await.unwrap();
    stack.add_account(ACCOUNT_B, "IGAA-routes-b").await.unwrap();
    stack
}

/// `instapipe <args> --output json` against the stack.
async fn cli(stack: &LocalStack, args: &[&str]) -> Value {
    let ctx = Ctx::new(stack.clients.clone(), stack.config.clone());
    let cli = <Cli as clap::Parser>::try_parse_from(["instapipe", "--output", "json"].into_iter().chain(args.iter().copied())).unwrap();
    let mut out = Vec::new();
    instapipe_cli::run(cli, &ctx, &mut out).await.unwrap_or_else(|e| panic!("instapipe {args:?}: {e}"));
    serde_json::from_slice(&out).unwrap()
}

/// Every item of the table: what "writes nothing" is checked against.
async fn items(stack: &LocalStack) -> usize {
    let out = stack.clients.dynamodb.scan().table_name(stack.config.table_name()).send().await.unwrap();
    out.items().len()
}

fn now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

async fn shopify(stack: &LocalStack, shop: &str, secret: &str, delivery: &str) -> (u16, Value) {
    let name = "shopify-products-create";
    let body = body(name);
    let mut headers: Vec<(String, String)> = headers(name)
        .into_iter()
        .filter(|(k, _)| !["x-shopify-shop-domain", "x-shopify-hmac-sha256", "x-shopify-webhook-id", "x-shopify-event-id"].contains(&k.to_ascii_lowercase().as_str()))
        .collect();
    headers.push(("X-Shopify-Shop-Domain".into(), shop.into()));
    headers.push(("X-Shopify-Webhook-Id".into(), delivery.into()));
    headers.push(("X-Shopify-Hmac-Sha256".into(), shopify_signature(secret, &body)));
    post_to_source(stack, "shopify", headers, body).await
}

async fn contentful(stack: &LocalStack, space: &str, secret: &str) -> (u16, Value) {
    let name = "contentful-entry-publish";
    let body = String::from_utf8(body(name)).unwrap().replace(SPACE_A, space).into_bytes();
    let mut headers: Vec<(String, String)> =
        headers(name).into_iter().filter(|(k, _)| ["content-type", "x-contentful-topic"].contains(&k.to_ascii_lowercase().as_str())).collect();
    let signed: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let ms = (now().unix_timestamp_nanos() / 1_000_000) as i64;
    let signature = contentful_headers(secret, "POST", "/webhooks/contentful", &signed, ms, &body);
    headers.extend(signature);
    post_to_source(stack, "contentful", headers, body).await
}

async fn wordpress(stack: &LocalStack, site: &str, secret: &str, post_id: u64) -> (u16, Value) {
    let mut payload: Value = serde_json::from_slice(&body("wordpress-post-published")).unwrap();
    payload["data"]["site"] = site.into();
    payload["data"]["id"] = post_id.into();
    payload["data"]["title"] = format!("routes e2e {post_id}").into();
    let body = serde_json::to_vec(&payload).unwrap();
    let id = format!("msg_routes_{post_id}_{}", site.len());
    let ts = now().unix_timestamp();
    let signature = standardwebhooks::Webhook::new(secret).unwrap().sign(&id, ts, &body).unwrap();
    let headers = vec![
        ("content-type".to_string(), "application/json".to_string()),
        ("webhook-id".into(), id),
        ("webhook-timestamp".into(), ts.to_string()),
        ("webhook-signature".into(), signature),
    ];
    post_to_source(stack, "wordpress", headers, body).await
}

fn event(source: &str, secret: &str, key: &str) -> Value {
    let mut event: Value = serde_json::from_slice(&body("eventbridge-publish-requested")).unwrap();
    event["source"] = source.into();
    event["detail"]["idempotencyKey"] = format!("{source}:{key}").into();
    event["detail"]["signature"] = instapipe_core::sources::eventbridge::sign(secret, source, &event["detail"]).unwrap().into();
    event
}

#[tokio::test]
async fn a_tenants_secret_never_verifies_another_tenants_route() {
    let stack = stack().await;
    let tenants = [
        ("shopify", SHOP_A, SHOPIFY_A),
        ("shopify", SHOP_B, SHOPIFY_B),
        ("contentful", SPACE_A, CONTENTFUL_A),
        ("contentful", SPACE_B, CONTENTFUL_B),
        ("wordpress", SITE_A, WHSEC_A),
        ("wordpress", SITE_B, WHSEC_B),
        ("eventbridge", BUS_A, WHSEC_A),
        ("eventbridge", BUS_B, WHSEC_B),
    ];
    for (source, tenant, secret) in tenants {
        let set = cli(&stack, &["routes", "secret", "set", source, tenant, "--secret", secret]).await;
        assert_eq!(set["fingerprints"].as_array().unwrap().len(), 1, "{set}");
        assert!(set.get("generated_secret").is_none() && !set.to_string().contains(secret), "never printed: {set}");
    }
    let listed = cli(&stack, &["routes", "list"]).await;
    let verified_by: Vec<&str> = listed["routes"].as_array().unwrap().iter().map(|r| r["verified_by"].as_str().unwrap()).collect();
    assert_eq!(verified_by, ["own"; 8], "{listed}");
    tokio::time::sleep(CACHE).await;

    let before = items(&stack).await;
    let (status, forged) = shopify(&stack, SHOP_B, SHOPIFY_A, "d-1").await;
    assert_eq!((status, forged["error"]["code"].as_str()), (401, Some("invalid_signature")), "{forged}");
    let (status, unknown) = shopify(&stack, "nobody.myshopify.com", SHOPIFY_A, "d-2").await;
    assert_eq!((status, &unknown["error"]["message"]), (401, &forged["error"]["message"]), "an unknown shop answers as a forged signature");
    assert_eq!(contentful(&stack, SPACE_B, CONTENTFUL_A).await.0, 401);
    assert_eq!(wordpress(&stack, SITE_B, WHSEC_A, 1).await.0, 401);
    let refused = stack.deliver_event(event(BUS_B, WHSEC_A, "k1")).await.unwrap_err();
    assert_eq!(refused["error"]["code"], "invalid_signature", "{refused}");
    // The shared secret of the demo stack no longer verifies a route that has its own.
    assert_eq!(wordpress(&stack, SITE_A, DEMO_WORDPRESS_SECRET, 2).await.0, 401);
    assert_eq!(items(&stack).await, before, "refused requests wrote nothing");

    // Each tenant's own secret verifies its own route, and posts to its own accounts only.
    let (status, answer) = shopify(&stack, SHOP_B, SHOPIFY_B, "d-3").await;
    assert_eq!(status, 202, "{answer}");
    let (status, answer) = wordpress(&stack, SITE_A, WHSEC_A, 3).await;
    assert_eq!(status, 202, "{answer}");
    let accepted = stack.deliver_event(event(BUS_A, WHSEC_A, "k2")).await.unwrap();
    let post = stack.store.get_post(accepted["post_id"].as_str().unwrap()).await.unwrap().unwrap();
    assert_eq!(post.accounts, [ACCOUNT_A]);
    // A's contentful secret gets past the signature of A's space (the asset lookup is another matter).
    assert_ne!(contentful(&stack, SPACE_A, CONTENTFUL_A).await.0, 401);
}

#[tokio::test]
async fn migrating_from_the_shared_secret_and_rotating_with_the_cli() {
    let stack = stack().await;
    // A deployment from before: the one WordPress secret verifies every site.
    assert_eq!(wordpress(&stack, SITE_A, DEMO_WORDPRESS_SECRET, 10).await.0, 202);
    assert_eq!(wordpress(&stack, SITE_B, DEMO_WORDPRESS_SECRET, 11).await.0, 202);
    let listed = cli(&stack, &["routes", "list"]).await;
    let site_a = listed["routes"].as_array().unwrap().iter().find(|r| r["tenant"] == "news.example.org").unwrap().clone();
    assert_eq!((&site_a["verified_by"], &site_a["secret_name"]), (&json!("shared"), &json!("instapipe/routes/wordpress/news.example.org")));

    // Site A gets its own secret, generated and shown once.
    let set = cli(&stack, &["routes", "secret", "set", "wordpress", SITE_A]).await;
    let first = set["generated_secret"].as_str().unwrap().to_string();
    let first_fingerprint = set["fingerprints"][0].as_str().unwrap().to_string();
    tokio::time::sleep(CACHE).await;
    let before = items(&stack).await;
    assert_eq!(wordpress(&stack, SITE_A, DEMO_WORDPRESS_SECRET, 12).await.0, 401, "the shared secret no longer verifies A");
    assert_eq!(items(&stack).await, before);
    assert_eq!(wordpress(&stack, SITE_A, &first, 13).await.0, 202);
    assert_eq!(wordpress(&stack, SITE_B, DEMO_WORDPRESS_SECRET, 14).await.0, 202, "B has not moved yet");

    // Rotation: a second secret; both verify at once (a refused request re-reads the secrets).
    let added = cli(&stack, &["routes", "secret", "add", "wordpress", SITE_A]).await;
    let second = added["generated_secret"].as_str().unwrap().to_string();
    assert_eq!(added["fingerprints"].as_array().unwrap().len(), 2);
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(wordpress(&stack, SITE_A, &second, 15).await.0, 202);
    assert_eq!(wordpress(&stack, SITE_A, &first, 16).await.0, 202);
    // The sender uses the new one: the old is removed and refused.
    let removed = cli(&stack, &["routes", "secret", "remove", "wordpress", SITE_A, "--fingerprint", &first_fingerprint]).await;
    assert_eq!(removed["fingerprints"].as_array().unwrap().len(), 1);
    tokio::time::sleep(CACHE).await;
    assert_eq!(wordpress(&stack, SITE_A, &first, 17).await.0, 401);
    assert_eq!(wordpress(&stack, SITE_A, &second, 18).await.0, 202);
    let listed = cli(&stack, &["routes", "list"]).await;
    let site_a = listed["routes"].as_array().unwrap().iter().find(|r| r["tenant"] == "news.example.org").unwrap().clone();
    assert_eq!(site_a["verified_by"], "own");
    assert!(!listed.to_string().contains(&second[6..]), "routes list shows no secret");
}
