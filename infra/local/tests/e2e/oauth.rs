//! Connecting an account by OAuth on the local stack, against the simulator's login pages:
//! `instapipe accounts connect` (the loopback callback) for both flavours, `/oauth/start` and
//! `/oauth/callback` on the public function, the refusals (denied consent, a permission not
//! granted, a code used twice or expired, another redirect URI), each storing nothing, and the
//! secret hygiene of it all: no token, code or app secret in a log line or in any output.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use graph_sim::{Consent, SimPage};
use instapipe_cli::Ctx;
use instapipe_cli::commands::connect::{self, ConnectRequest, ConnectedAccount};
use instapipe_core::account::{AccountStatus, LoginFlavour};
use instapipe_core::oauth::{CallbackParams, ConnectError, OAuthApp, OAuthClient, OAuthHosts};
use instapipe_core::post::DestState;
use instapipe_local::LocalStack;
use instapipe_local::settings::{DEMO_API_KEY, DEMO_FACEBOOK_APP_SECRET, DEMO_INSTAGRAM_APP_ID, DEMO_INSTAGRAM_APP_SECRET};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::common::{self, fast_sim, stack};

/// The account the simulator's logins connect unless told otherwise.
const SECOND: &str = graph_sim::DEFAULT_LOGIN_ACCOUNT;
const WAIT: Duration = Duration::from_secs(60);

fn ctx(stack: &LocalStack) -> Ctx {
    Ctx::new(stack.clients.clone(), stack.config.clone())
}

fn sim(stack: &LocalStack) -> &graph_sim::GraphSim {
    stack.sim.as_ref().expect("the simulator runs")
}

/// A browser: follows the authorize URL's redirects to the callback and keeps the page it shows.
fn browser() -> (impl Fn(&str) + Sync, Arc<Mutex<Vec<String>>>) {
    let pages = Arc::new(Mutex::new(Vec::new()));
    let seen = pages.clone();
    let open = move |url: &str| {
        let (url, pages) = (url.to_string(), seen.clone());
        tokio::spawn(async move {
            let page = match reqwest::get(&url).await {
                Ok(response) => response.text().await.unwrap_or_default(),
                Err(e) => format!("browser error: {e}"),
            };
            pages.lock().unwrap().push(page);
        });
    };
    (open, pages)
}

fn request(login: LoginFlavour, page: Option<&str>) -> ConnectRequest {
    ConnectRequest { login, app_id: None, app_secret: None, port: 0, page: page.map(str::to_string), timeout: Duration::from_secs(20) }
}

/// `instapipe accounts connect`: (result, what it prompted, what it printed, the browser's pages).
async fn cli_connect(stack: &LocalStack, login: LoginFlavour, page: Option<&str>) -> (Result<ConnectedAccount, String>, String, String, Vec<String>) {
    let (open, pages) = browser();
    let (mut prompt, mut out) = (Vec::new(), Vec::new());
    let result = connect::connect(&ctx(stack), request(login, page), &open, &mut prompt, &mut out).await.map_err(|e| e.0);
    // The browser shows its page once the callback answered.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pages = pages.lock().unwrap().clone();
    (result, String::from_utf8(prompt).unwrap(), String::from_utf8(out).unwrap(), pages)
}

async fn stored_token(stack: &LocalStack, account: &str) -> Option<String> {
    let name = format!("{}{account}", stack.config.account_secret_prefix());
    let out = stack.clients.secrets.get_secret_value().secret_id(name).send().await.ok()?;
    let value: Value = serde_json::from_str(out.secret_string()?).ok()?;
    value["access_token"].as_str().map(str::to_string)
}

async fn assert_nothing_stored(stack: &LocalStack, account: &str) {
    assert!(stack.store.get_account(account).await.unwrap().is_none(), "account {account} was stored");
    assert!(stored_token(stack, account).await.is_none(), "a token of {account} was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_connects_an_instagram_login_account_resumes_its_waiting_post_and_publishes() {
    let stack = stack(fast_sim()).await;
    // The account is known but its token was revoked: a post to it waits for a new login.
    stack.add_account(SECOND, "IGAA-revoked-before-connect").await.unwrap();
    sim(&stack).set_token(SECOND, "IGAA-something-else");
    let body = json!({"caption": "Waits for connect", "media": [{"url": "https://cdn.example.com/c.jpg", "type": "image"}], "accounts": [SECOND]});
    let post_id = common::accepted(&stack, &body, "msg_oauth_waiting").await;
    for _ in 0..300 {
        if stack.destinations(&post_id).await.first().is_some_and(|d| d.state == DestState::AwaitingAuth) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(stack.destinations(&post_id).await[0].state, DestState::AwaitingAuth);

    let (result, prompt, out, pages) = cli_connect(&stack, LoginFlavour::Instagram, None).await;
    let connected = result.unwrap_or_else(|e| panic!("{e}\n{prompt}"));
    assert_eq!((connected.account_id.as_str(), connected.login, connected.resumed), (SECOND, LoginFlavour::Instagram, 1));
    assert!(prompt.contains(&format!("{}/oauth/authorize?client_id={DEMO_INSTAGRAM_APP_ID}", stack.graph_base_url)), "{prompt}");
    assert!(prompt.contains("redirect_uri=http%3A%2F%2F127.0.0.1%3A"), "{prompt}");
    assert!(out.contains(&format!("connected Instagram account {SECOND} @sim_user_{SECOND} (instagram login)")), "{out}");
    assert!(out.contains("1 waiting destination(s) resumed"), "{out}");
    assert!(pages.iter().any(|p| p.contains("is connected to instapipe")), "{pages:?}");

    // The long-lived token Meta issued is stored, with its expiry (60 days), and it publishes.
    let token = stored_token(&stack, SECOND).await.unwrap();
    assert_eq!(Some(token.clone()), sim(&stack).token_of(SECOND));
    assert!(token.starts_with("IGAAsim") && !token.contains("short"), "the long-lived token, not the short one: {token}");
    let account = stack.store.get_account(SECOND).await.unwrap().unwrap();
    assert_eq!((account.login, account.status), (LoginFlavour::Instagram, AccountStatus::Active));
    let days = (account.token_expires_at.expect("the expiry is recorded") - time::OffsetDateTime::now_utc()).whole_days();
    assert!((59..=60).contains(&days), "{days} days");
    let d = stack.wait_final(&post_id, WAIT).await.unwrap().remove(0);
    assert_eq!(d.state, DestState::Published, "{:?}", d.failure);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_connects_a_facebook_login_page_account_and_it_publishes() {
    let stack = stack(fast_sim()).await;
    let other = "17841400000000003";
    sim(&stack).set_consent(Consent {
        pages: vec![
            SimPage { id: "1000000000000001".into(), name: "Shop".into(), ig_user_id: Some(SECOND.into()) },
            SimPage { id: "1000000000000002".into(), name: "Blog".into(), ig_user_id: Some(other.into()) },
        ],
        ..Consent::default()
    });

    // Two Pages and none chosen: the operator is told to choose, and nothing is stored.
    let (result, _, _, pages) = cli_connect(&stack, LoginFlavour::Facebook, None).await;
    let err = result.unwrap_err();
    assert!(err.contains("several Pages") && err.contains("1000000000000002 (Blog)") && err.contains("--page"), "{err}");
    assert!(pages.iter().any(|p| p.contains("Not connected")), "{pages:?}");
    assert_nothing_stored(&stack, other).await;

    let (result, prompt, out, _) = cli_connect(&stack, LoginFlavour::Facebook, Some("1000000000000002")).await;
    let connected = result.unwrap_or_else(|e| panic!("{e}\n{prompt}"));
    assert_eq!((connected.account_id.as_str(), connected.login), (other, LoginFlavour::Facebook));
    assert!(prompt.contains(&format!("{}/v25.0/dialog/oauth?", stack.graph_base_url)), "{prompt}");
    assert!(out.contains(&format!("connected Instagram account {other} (facebook login, Page 1000000000000002 Blog)")), "{out}");
    assert!(out.contains("token expires never (a Page token)"), "{out}");
    let token = stored_token(&stack, other).await.unwrap();
    assert!(token.starts_with("EAAsimpage"), "the Page token is stored: {token}");
    assert_eq!(Some(token), sim(&stack).token_of(other));
    let account = stack.store.get_account(other).await.unwrap().unwrap();
    assert_eq!((account.login, account.token_expires_at), (LoginFlavour::Facebook, None));

    let body = json!({"caption": "Via Facebook Login", "media": [{"url": "https://cdn.example.com/f.jpg", "type": "image"}], "accounts": [other]});
    let post_id = common::accepted(&stack, &body, "msg_oauth_facebook").await;
    let d = stack.wait_final(&post_id, WAIT).await.unwrap().remove(0);
    assert_eq!(d.state, DestState::Published, "{:?}", d.failure);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_consent_or_a_missing_permission_says_what_to_do_and_stores_nothing() {
    let stack = stack(fast_sim()).await;

    sim(&stack).set_consent(Consent { deny: true, ..Consent::default() });
    let (result, _, out, pages) = cli_connect(&stack, LoginFlavour::Instagram, None).await;
    let err = result.unwrap_err();
    assert!(err.contains("refused on the authorization page (access_denied: user_denied"), "{err}");
    assert!(err.contains("allow every permission"), "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(pages.iter().any(|p| p.contains("Not connected")), "{pages:?}");
    assert_nothing_stored(&stack, SECOND).await;

    sim(&stack).set_consent(Consent { withhold: vec!["instagram_business_content_publish".into()], ..Consent::default() });
    let err = cli_connect(&stack, LoginFlavour::Instagram, None).await.0.unwrap_err();
    assert!(err.contains("did not grant instagram_business_content_publish; nothing was stored"), "{err}");
    assert_nothing_stored(&stack, SECOND).await;

    sim(&stack).set_consent(Consent { withhold: vec!["instagram_content_publish".into(), "pages_show_list".into()], ..Consent::default() });
    let err = cli_connect(&stack, LoginFlavour::Facebook, None).await.0.unwrap_err();
    assert!(err.contains("did not grant instagram_content_publish, pages_show_list"), "{err}");
    assert_nothing_stored(&stack, SECOND).await;
}

/// Follows the authorize URL to where the simulator redirects, without following it further.
async fn consent(authorize_url: &str) -> String {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let response = client.get(authorize_url).send().await.unwrap();
    assert_eq!(response.status(), 302);
    response.headers()["location"].to_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn used_or_expired_codes_and_another_redirect_uri_are_refused_with_what_to_do() {
    let stack = stack(fast_sim()).await;
    let settings = &stack.config.ingest.connect;
    let client = OAuthClient::new(OAuthHosts::from_override(settings.oauth_base_url.as_deref()), settings.graph.clone()).unwrap();
    for (login, secret) in [(LoginFlavour::Instagram, DEMO_INSTAGRAM_APP_SECRET), (LoginFlavour::Facebook, DEMO_FACEBOOK_APP_SECRET)] {
        let app = OAuthApp { login, app_id: "42".into(), app_secret: SecretString::from(secret) };
        let redirect = "http://127.0.0.1:9/callback";
        let code = |location: String| CallbackParams::from_query(location.split_once('?').unwrap().1).code().unwrap();

        let first = code(consent(&client.authorize_url(&app, redirect, "s")).await);
        let err = client.connect(&app, "http://127.0.0.1:9/elsewhere", &first, None).await.unwrap_err();
        assert!(matches!(err, ConnectError::RedirectUri(_)), "{login:?}: {err}");
        assert!(err.to_string().contains("Valid OAuth Redirect URIs") && err.to_string().contains("http://127.0.0.1:9/elsewhere"), "{err}");

        let second = code(consent(&client.authorize_url(&app, redirect, "s")).await);
        client.connect(&app, redirect, &second, None).await.unwrap_or_else(|e| panic!("{login:?}: {e}"));
        let err = client.connect(&app, redirect, &second, None).await.unwrap_err();
        assert!(matches!(err, ConnectError::CodeExpiredOrUsed), "{login:?}: {err}");
        assert!(err.to_string().contains("Start the connection again"), "{err}");

        let third = code(consent(&client.authorize_url(&app, redirect, "s")).await);
        sim(&stack).expire_oauth_codes();
        let err = client.connect(&app, redirect, &third, None).await.unwrap_err();
        assert!(matches!(err, ConnectError::CodeExpiredOrUsed), "{login:?}: {err}");
    }
}

/// `GET /oauth/start` with the stack's API key: its JSON answer.
async fn start(stack: &LocalStack, query: &str, key: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(format!("{}/oauth/start{query}", stack.base_url));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// A browser at the callback: (status, JSON answer).
async fn call_back(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_routes_connect_an_account_with_a_signed_state_bound_to_the_api_key() {
    let stack = stack(fast_sim()).await;

    let (status, answer) = start(&stack, "?flavour=instagram", None).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("unauthorized")), "{answer}");
    let (status, answer) = start(&stack, "?flavour=tiktok", Some(DEMO_API_KEY)).await;
    assert_eq!((status, answer["error"]["field"].as_str()), (400, Some("flavour")), "{answer}");

    let (status, started) = start(&stack, "?flavour=instagram", Some(DEMO_API_KEY)).await;
    assert_eq!(status, 200, "{started}");
    assert_eq!(started["redirect_uri"], format!("{}/oauth/callback", stack.base_url));
    let callback = consent(started["authorize_url"].as_str().unwrap()).await;
    assert!(callback.starts_with(&format!("{}/oauth/callback?code=", stack.base_url)), "{callback}");

    // A state changed by one character is refused before any code is exchanged.
    let (before, after) = callback.rsplit_once("state=").unwrap();
    let mut forged_state: Vec<char> = after.trim_end_matches("#_").chars().collect();
    forged_state[5] = if forged_state[5] == 'A' { 'B' } else { 'A' };
    let forged = format!("{before}state={}", forged_state.into_iter().collect::<String>());
    let (status, answer) = call_back(&forged).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("invalid_state")), "{answer}");
    assert_nothing_stored(&stack, SECOND).await;

    let (status, connected) = call_back(&callback).await;
    assert_eq!(status, 200, "{connected}");
    assert_eq!(connected["account_id"], SECOND);
    assert_eq!(connected["flavour"], "instagram");
    assert_eq!(connected["username"], format!("sim_user_{SECOND}"));
    assert!(connected["token_expires_at"].as_str().is_some_and(|t| t.starts_with("20")), "{connected}");
    assert_eq!(stored_token(&stack, SECOND).await, sim(&stack).token_of(SECOND));
    assert_eq!(stack.store.get_account(SECOND).await.unwrap().unwrap().status, AccountStatus::Active);

    // The same redirect again: the code has been used.
    let (status, answer) = call_back(&callback).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("code_expired_or_used")), "{answer}");

    // Denied at Meta, through the routes: the answer says so and nothing is stored.
    sim(&stack).set_consent(Consent { deny: true, ig_user_id: "17841400000000004".into(), ..Consent::default() });
    let (_, started) = start(&stack, "?flavour=facebook", Some(DEMO_API_KEY)).await;
    let (status, answer) = call_back(&consent(started["authorize_url"].as_str().unwrap()).await).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (400, Some("access_denied")), "{answer}");
    assert_nothing_stored(&stack, "17841400000000004").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_code_or_app_secret_reaches_a_log_or_an_output() {
    let captured = common::logs().capture_trace();
    let stack = stack(fast_sim()).await;

    let mut outputs: Vec<(String, String)> = Vec::new();
    let (result, prompt, out, pages) = cli_connect(&stack, LoginFlavour::Instagram, None).await;
    result.unwrap();
    outputs.extend([("instagram prompt".into(), prompt), ("instagram output".into(), out), ("instagram page".into(), pages.join("\n"))]);
    let (result, prompt, out, pages) = cli_connect(&stack, LoginFlavour::Facebook, None).await;
    result.unwrap();
    outputs.extend([("facebook prompt".into(), prompt), ("facebook output".into(), out), ("facebook page".into(), pages.join("\n"))]);
    sim(&stack).set_consent(Consent { withhold: vec!["instagram_business_content_publish".into()], ..Consent::default() });
    let (result, prompt, _, pages) = cli_connect(&stack, LoginFlavour::Instagram, None).await;
    outputs.extend([("refused error".into(), result.unwrap_err()), ("refused prompt".into(), prompt), ("refused page".into(), pages.join("\n"))]);
    sim(&stack).set_consent(Consent::default());
    let (_, started) = start(&stack, "?flavour=instagram", Some(DEMO_API_KEY)).await;
    let callback = consent(started["authorize_url"].as_str().unwrap()).await;
    let (_, connected) = call_back(&callback).await;
    let (_, reused) = call_back(&callback).await;
    outputs.extend([("start answer".into(), started.to_string()), ("callback answer".into(), connected.to_string()), ("reused answer".into(), reused.to_string())]);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let log = captured.text();
    assert!(log.contains("account connected"), "the routes' connection was logged (the capture works)");
    let code = CallbackParams::from_query(callback.split_once('?').unwrap().1).code().unwrap();
    let table = stack.clients.dynamodb.scan().table_name(stack.config.table_name()).send().await.unwrap();
    outputs.push(("the table".into(), format!("{:?}", table.items())));
    // Every token and code the simulator hands out has one of these prefixes.
    let mut secrets = vec![
        ("a simulator token".to_string(), "IGAAsim".to_string()),
        ("a simulator Facebook token".into(), "EAAsim".into()),
        ("a login code".into(), "AQsimcode".into()),
        ("the Instagram app secret".into(), DEMO_INSTAGRAM_APP_SECRET.into()),
        ("the Facebook app secret".into(), DEMO_FACEBOOK_APP_SECRET.into()),
    ];
    use secrecy::ExposeSecret;
    secrets.push(("the routes' code".into(), code.expose_secret().to_string()));
    let mut leaks = Vec::new();
    for (what, secret) in &secrets {
        if log.contains(secret.as_str()) {
            let at = log.find(secret.as_str()).unwrap();
            leaks.push(format!("{what} in the log: …{}…", &log[at.saturating_sub(200)..(at + 80).min(log.len())]));
        }
        for (place, text) in &outputs {
            if text.contains(secret.as_str()) {
                leaks.push(format!("{what} in the {place}: {text}"));
            }
        }
    }
    assert!(leaks.is_empty(), "{} leak(s):\n{}", leaks.len(), leaks.join("\n\n"));
}
