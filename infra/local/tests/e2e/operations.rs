//! End to end on the local stack: token refresh against the simulator's token endpoints, and
//! signed status webhooks checked by the reference Standard Webhooks library.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use graph_sim::SimConfig;
use instapipe_core::account::{Account, AccountStatus, LoginFlavour};
use instapipe_core::post::DestState;
use instapipe_local::LocalStack;
use instapipe_local::functions::Function;
use instapipe_local::settings::{DEMO_STATUS_SECRET, Settings};
use serde_json::{Value, json};

const ACCOUNT: &str = "17841400000000001";
const TOKEN: &str = "IGAA-operations-token";

async fn stack(settings: Settings) -> LocalStack {
    crate::common::logs();
    let sim = SimConfig { image_delay: Duration::from_millis(200), ..SimConfig::default() };
    let stack = LocalStack::start(settings, sim).await.expect("the local stack starts (did `make deps` run?)");
    stack.add_account(ACCOUNT, TOKEN).await.unwrap();
    stack
}

/// The account's secret versions, as Secrets Manager lists them.
async fn secret_versions(stack: &LocalStack, account: &str) -> usize {
    let name = format!("{}{account}", stack.config.account_secret_prefix());
    let out = stack.clients.secrets.list_secret_version_ids().secret_id(name).send().await.unwrap();
    out.versions().len()
}

async fn stored_token(stack: &LocalStack, account: &str) -> String {
    let name = format!("{}{account}", stack.config.account_secret_prefix());
    let out = stack.clients.secrets.get_secret_value().secret_id(name).send().await.unwrap();
    let value: Value = serde_json::from_str(out.secret_string().unwrap()).unwrap();
    value["access_token"].as_str().unwrap().to_string()
}

async fn set_expiry(stack: &LocalStack, account: &str, expires_in: time::Duration) {
    let mut item = stack.store.get_account(account).await.unwrap().unwrap();
    item.token_expires_at = Some(time::OffsetDateTime::now_utc() + expires_in);
    stack.store.put_account(&item).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_within_the_window_is_refreshed_into_a_new_secret_version() {
    let stack = stack(Settings::for_tests()).await;
    let later = "17841400000000002";
    stack.add_account(later, "IGAA-later-token").await.unwrap();
    set_expiry(&stack, ACCOUNT, time::Duration::days(3)).await;
    set_expiry(&stack, later, time::Duration::days(50)).await;
    let versions_before = secret_versions(&stack, ACCOUNT).await;

    let report = stack.functions.invoke(Function::RefreshTokens, json!({})).await.unwrap();

    let outcome = |id: &str| report["accounts"].as_array().unwrap().iter().find(|a| a["account_id"] == id).unwrap()["outcome"].clone();
    assert_eq!(outcome(ACCOUNT), "refreshed", "{report}");
    assert_eq!(outcome(later), "not_due", "{report}");
    assert_eq!(secret_versions(&stack, ACCOUNT).await, versions_before + 1, "a new secret version");
    let new_token = stored_token(&stack, ACCOUNT).await;
    assert_ne!(new_token, TOKEN);
    assert_eq!(stack.sim.as_ref().unwrap().token_of(ACCOUNT), Some(new_token.clone()), "the token Meta issued is stored");
    assert_eq!(stored_token(&stack, later).await, "IGAA-later-token");
    let account = stack.store.get_account(ACCOUNT).await.unwrap().unwrap();
    let expires = account.token_expires_at.unwrap() - time::OffsetDateTime::now_utc();
    assert!(expires > time::Duration::days(59) && expires <= time::Duration::days(60), "{expires}");
    assert_eq!(account.status, AccountStatus::Active);

    // A second run right away (an overlapping or repeated schedule) refreshes nothing.
    let again = stack.functions.invoke(Function::RefreshTokens, json!({"account_id": ACCOUNT, "force": true})).await.unwrap();
    assert_eq!(again["accounts"][0]["outcome"], "busy", "{again}");
    assert_eq!(stored_token(&stack, ACCOUNT).await, new_token);

    // A post sent after the refresh publishes with the new token.
    let body = json!({"caption": "After the refresh", "media": [{"url": "https://cdn.example.com/r.jpg", "type": "image"}], "accounts": [ACCOUNT]});
    let answer: Value = stack.send_generic(&body.to_string(), "msg_after_refresh").await.unwrap().json().await.unwrap();
    let dests = stack.wait_final(answer["post_id"].as_str().unwrap(), Duration::from_secs(60)).await.unwrap();
    assert_eq!(dests[0].state, DestState::Published, "{:?}", dests[0].failure);
    // The token travelled in the query of the refresh call only, as Meta defines that call.
    for request in stack.sim.as_ref().unwrap().requests() {
        if !request.path_and_query.starts_with("/refresh_access_token") {
            assert!(!request.path_and_query.contains(&new_token), "{}", request.path_and_query);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_marks_the_account_needs_reauth() {
    let stack = stack(Settings::for_tests()).await;
    stack.sim.as_ref().unwrap().expire_token(ACCOUNT);
    let versions_before = secret_versions(&stack, ACCOUNT).await;
    let report = stack.functions.invoke(Function::RefreshTokens, json!({})).await.unwrap();
    assert_eq!(report["accounts"][0]["outcome"], "needs_reauth", "{report}");
    assert!(report["accounts"][0]["reason"].as_str().unwrap().contains("190"), "{report}");
    assert_eq!(stack.store.get_account(ACCOUNT).await.unwrap().unwrap().status, AccountStatus::NeedsReauth);
    assert_eq!(secret_versions(&stack, ACCOUNT).await, versions_before, "nothing stored");

    // An expiry already in the past is not even sent to Meta.
    let other = Account { account_id: "17841400000000003".into(), login: LoginFlavour::Instagram, status: AccountStatus::Active, token_expires_at: None };
    stack.add_account(&other.account_id, "IGAA-other").await.unwrap();
    set_expiry(&stack, &other.account_id, -time::Duration::hours(1)).await;
    let requests_before = stack.sim.as_ref().unwrap().requests().len();
    let report = stack.functions.invoke(Function::RefreshTokens, json!({"account_id": other.account_id})).await.unwrap();
    assert_eq!(report["accounts"][0]["outcome"], "needs_reauth", "{report}");
    assert_eq!(stack.sim.as_ref().unwrap().requests().len(), requests_before);
}

/// A receiver of status webhooks: keeps each request's headers and body.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<(http::HeaderMap, bytes::Bytes)>>>);

async fn start_receiver() -> (Receiver, String) {
    let receiver = Receiver::default();
    let kept = receiver.clone();
    let app = axum::Router::new().route(
        "/status",
        axum::routing::post(move |headers: http::HeaderMap, body: bytes::Bytes| {
            let kept = kept.clone();
            async move {
                kept.0.lock().unwrap().push((headers, body));
                http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/status", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (receiver, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_post_fires_a_status_webhook_that_a_standard_webhooks_verifier_accepts() {
    let (receiver, url) = start_receiver().await;
    let mut settings = Settings::for_tests();
    settings.set("STATUS_WEBHOOK_URL", url);
    let stack = stack(settings).await;
    let caption = "Status webhooks, end to end";
    let body = json!({"caption": caption, "media": [{"url": "https://cdn.example.com/s.jpg", "type": "image"}], "accounts": [ACCOUNT]});
    let answer: Value = stack.send_generic(&body.to_string(), "msg_status_1").await.unwrap().json().await.unwrap();
    let post_id = answer["post_id"].as_str().unwrap().to_string();
    let dests = stack.wait_final(&post_id, Duration::from_secs(60)).await.unwrap();
    assert_eq!(dests[0].state, DestState::Published);

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while receiver.0.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // would a duplicate follow?
    let got = receiver.0.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "exactly one status webhook");
    let (headers, payload) = &got[0];
    standardwebhooks::Webhook::new(DEMO_STATUS_SECRET).unwrap().verify(payload, headers).expect("the signature verifies");
    let forged = standardwebhooks::Webhook::new("whsec_Zm9yZ2VkLXNlY3JldC1mb3ItdGVzdGluZy0wMTIzNDU=").unwrap();
    assert!(forged.verify(payload, headers).is_err(), "another key must not verify");
    let event: Value = serde_json::from_slice(payload).unwrap();
    assert_eq!(event["type"], "post.published");
    assert_eq!(event["data"]["post_id"], post_id.as_str());
    assert_eq!(event["data"]["permalink"].as_str(), dests[0].permalink.as_deref());
}
