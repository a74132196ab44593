//! Scoped API keys end to end on the local stack: keys made with the operator CLI, one brand's
//! key against another brand's posts and accounts, read-only keys, Idempotency-Keys per key and
//! bound to the request, tampered cursors, and a key's life (create, list with last use, revoke).

use std::time::Duration;

use clap::Parser;
use instapipe_cli::commands::keys::{self, NewKey};
use instapipe_cli::{Cli, Ctx};
use instapipe_core::scheduler::OneTimeSchedule;
use instapipe_core::store::api_keys;
use instapipe_local::LocalStack;
use reqwest::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::common::{self, ACCOUNT, fast_sim, post_items};

const OTHER: &str = "17841400000000002";

async fn stack() -> LocalStack {
    let stack = common::stack(fast_sim()).await;
    stack.add_account(OTHER, "IGAA-token-other").await.unwrap();
    stack
}

fn ctx(stack: &LocalStack) -> Ctx {
    Ctx::new(stack.clients.clone(), stack.config.clone())
}

/// A key made as `instapipe keys create` makes it; returns the key itself.
async fn new_key(stack: &LocalStack, name: &str, accounts: &[&str], read_only: bool) -> String {
    let new = NewKey { name: name.into(), accounts: Some(accounts.iter().map(|a| a.to_string()).collect()), read_only };
    keys::create(&ctx(stack), new, &mut std::io::sink()).await.unwrap().key
}

async fn call(stack: &LocalStack, key: &str, method: Method, path: &str, body: Option<&Value>, idempotency_key: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().request(method, format!("{}{path}", stack.base_url)).bearer_auth(key);
    if let Some(body) = body {
        request = request.json(body);
    }
    if let Some(idempotency_key) = idempotency_key {
        request = request.header("Idempotency-Key", idempotency_key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn post(caption: &str, account: &str, publish_at: Option<OffsetDateTime>) -> Value {
    let mut body = json!({ "caption": caption, "media": [{ "url": "https://cdn.example.com/k.jpg", "type": "image" }], "accounts": [account] });
    if let Some(at) = publish_at {
        body["publish_at"] = json!(at.format(&Rfc3339).unwrap());
    }
    body
}

async fn schedule_names(stack: &LocalStack) -> Vec<String> {
    let out = stack.clients.scheduler.list_schedules().group_name(stack.config.schedule_group()).send().await.unwrap();
    out.schedules().iter().filter_map(|s| s.name().map(str::to_string)).collect()
}

/// A post's item and destinations as stored: what "nothing changed" compares.
async fn snapshot(stack: &LocalStack, post_id: &str) -> (String, Vec<(String, String, u64, usize)>) {
    let post = stack.store.get_post(post_id).await.unwrap().unwrap();
    let destinations = stack.destinations(post_id).await;
    (post.caption, destinations.iter().map(|d| (d.account_id.clone(), d.state.to_string(), d.version, d.history.len())).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_brands_key_cannot_read_change_or_post_for_another_brand() {
    let stack = stack().await;
    let key_a = new_key(&stack, "brand a", &[ACCOUNT], false).await;
    let key_b = new_key(&stack, "brand b", &[OTHER], false).await;
    let key_a_read = new_key(&stack, "brand a dashboard", &[ACCOUNT], true).await;

    // B's post, waiting for its time with its start schedule armed.
    let later = (OffsetDateTime::now_utc() + time::Duration::days(30)).replace_nanosecond(0).unwrap();
    let (status, created) = call(&stack, &key_b, Method::POST, "/posts", Some(&post("Brand B's launch", OTHER, Some(later))), None).await;
    assert_eq!(status, 201, "{created}");
    let theirs = created["post_id"].as_str().unwrap().to_string();
    let start = OneTimeSchedule::start_name(&theirs, OTHER, later);
    for _ in 0..100 {
        if schedule_names(&stack).await.contains(&start) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(schedule_names(&stack).await.contains(&start), "B's start schedule was never armed");
    let before = snapshot(&stack, &theirs).await;
    let items = post_items(&stack).await;

    // A's key: B's post answers exactly as a post that does not exist.
    let nowhere = "01KAT0000000000000000000AB";
    for id in [theirs.as_str(), nowhere] {
        let path = format!("/posts/{id}");
        let patch = json!({ "caption": "Hijacked", "publish_at": "2026-01-01T00:00:00Z" });
        for (method, body) in [(Method::GET, None), (Method::DELETE, None), (Method::PATCH, Some(&patch))] {
            let (status, answer) = call(&stack, &key_a, method.clone(), &path, body, None).await;
            assert_eq!((status, &answer), (404, &json!({ "error": { "code": "not_found", "message": format!("no post {id}") } })), "{method} {path}");
        }
    }
    // A's key posting to B's account: refused, naming the account; nothing written.
    let (status, answer) = call(&stack, &key_a, Method::POST, "/posts", Some(&post("Into B's feed", OTHER, None)), None).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!((answer["error"]["code"].as_str(), answer["error"]["field"].as_str()), (Some("account_not_allowed"), Some("accounts[0]")));
    // A's read-only key writing, even to A's own account: 403, nothing written.
    let (status, answer) = call(&stack, &key_a_read, Method::POST, "/posts", Some(&post("Read-only", ACCOUNT, None)), None).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("read_only_key")), "{answer}");
    let (status, _) = call(&stack, &key_a_read, Method::DELETE, &format!("/posts/{theirs}"), None, None).await;
    assert_eq!(status, 403);

    assert_eq!(post_items(&stack).await, items, "a refused request wrote something");
    assert_eq!(snapshot(&stack, &theirs).await, before, "B's post changed");
    assert!(schedule_names(&stack).await.contains(&start), "B's start schedule is gone");
    let (status, read) = call(&stack, &key_b, Method::GET, &format!("/posts/{theirs}"), None, None).await;
    assert_eq!((status, read["state"].as_str()), (200, Some("SCHEDULED")));

    // Idempotency-Keys: A's "order-1" again with the same request is the same post; with
    // another body it is refused and writes nothing; B's "order-1" is B's own post.
    let first_body = post("A's order", ACCOUNT, Some(later));
    let (status, first) = call(&stack, &key_a, Method::POST, "/posts", Some(&first_body), Some("order-1")).await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = call(&stack, &key_a, Method::POST, "/posts", Some(&first_body), Some("order-1")).await;
    assert_eq!((status, &again["post_id"]), (200, &first["post_id"]), "{again}");
    let items = post_items(&stack).await;
    let (status, answer) = call(&stack, &key_a, Method::POST, "/posts", Some(&post("Another order", ACCOUNT, None)), Some("order-1")).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!((answer["error"]["code"].as_str(), answer["error"]["field"].as_str()), (Some("idempotency_key_reused"), Some("Idempotency-Key")));
    assert_eq!(post_items(&stack).await, items, "the refused request wrote something");
    let (status, b_post) = call(&stack, &key_b, Method::POST, "/posts", Some(&post("B's order", OTHER, Some(later))), Some("order-1")).await;
    assert_eq!(status, 201, "{b_post}");
    assert_ne!(b_post["post_id"], first["post_id"]);
    assert_eq!((b_post["caption"].as_str(), b_post["destinations"][0]["account_id"].as_str()), (Some("B's order"), Some(OTHER)));

    // Lists: each key its own posts only.
    let ids = |page: &Value| page["posts"].as_array().unwrap().iter().map(|p| p["post_id"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let (_, page_a) = call(&stack, &key_a, Method::GET, "/posts", None, None).await;
    assert_eq!(ids(&page_a), [first["post_id"].as_str().unwrap()]);
    let (_, page_b) = call(&stack, &key_b, Method::GET, "/posts?limit=100", None, None).await;
    let mut expected_b = vec![theirs.clone(), b_post["post_id"].as_str().unwrap().to_string()];
    let mut got_b = ids(&page_b);
    expected_b.sort();
    got_b.sort();
    assert_eq!(got_b, expected_b);

    // A key for both brands lists both, merged newest first across their accounts, a post
    // per page, each once.
    let key_ab = new_key(&stack, "agency", &[ACCOUNT, OTHER], false).await;
    let (mut merged, mut path) = (Vec::new(), "/posts?limit=1".to_string());
    for _ in 0..20 {
        let (status, page) = call(&stack, &key_ab, Method::GET, &path, None, None).await;
        assert_eq!(status, 200, "{page}");
        merged.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/posts?limit=1&cursor={cursor}"),
            None => break,
        }
    }
    let newest_first = [b_post["post_id"].as_str().unwrap(), first["post_id"].as_str().unwrap(), theirs.as_str()];
    assert_eq!(merged, newest_first);

    // Cursors: tampered, or another key's, are 400 invalid_query with a JSON body.
    let (status, page) = call(&stack, &key_b, Method::GET, "/posts?limit=1", None, None).await;
    assert_eq!(status, 200);
    let cursor = page["next_cursor"].as_str().expect("two posts, one a page").to_string();
    let (status, next) = call(&stack, &key_b, Method::GET, &format!("/posts?limit=1&cursor={cursor}"), None, None).await;
    assert_eq!((status, next["posts"].as_array().map(Vec::len)), (200, Some(1)), "{next}");
    let mut tampered = cursor.clone().into_bytes();
    tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    for (key, cursor) in [(&key_b, &tampered), (&key_a, &cursor)] {
        let (status, answer) = call(&stack, key, Method::GET, &format!("/posts?limit=1&cursor={cursor}"), None, None).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!((answer["error"]["code"].as_str(), answer["error"]["field"].as_str()), (Some("invalid_query"), Some("cursor")));
    }
}

/// `instapipe <args>` against the stack, with `--output json`: its JSON.
async fn cli_json(stack: &LocalStack, args: &[&str]) -> Result<Value, String> {
    let cli = Cli::try_parse_from(["instapipe", "--output", "json"].iter().chain(args)).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    instapipe_cli::run(cli, &ctx(stack), &mut out).await.map_err(|e| e.to_string())?;
    Ok(serde_json::from_slice(&out).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_created_listed_with_their_last_use_and_revoked() {
    let stack = stack().await;
    let created = cli_json(&stack, &["keys", "create", "--name", "shop-a cms", "--accounts", &format!("{ACCOUNT},{OTHER}"), "--read-only"]).await.unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("ipk_") && key.len() > 40, "{created}");
    assert_eq!(created["accounts"], json!([ACCOUNT, OTHER]));
    assert_eq!((created["access"].as_str(), created["last_used_at"].as_str()), (Some("read_only"), None));
    // Only the hash is stored.
    let scan = stack.clients.dynamodb.scan().table_name(stack.config.table_name()).send().await.unwrap();
    assert!(!format!("{:?}", scan.items()).contains(&key), "the key itself is in the table");
    // Names are unique; a key needs accounts.
    assert!(cli_json(&stack, &["keys", "create", "--name", "shop-a cms", "--all-accounts"]).await.unwrap_err().contains("exists already"));
    assert!(cli_json(&stack, &["keys", "create", "--name", "nothing"]).await.is_err());

    // A key registered by hand before scopes (as the README once showed) is a full-access key.
    let legacy = "ipk_registered_by_hand_0123456789abcdef";
    stack
        .clients
        .dynamodb
        .put_item()
        .table_name(stack.config.table_name())
        .item("pk", aws_sdk_dynamodb::types::AttributeValue::S(api_keys::item_key(&api_keys::hash(legacy))))
        .item("sk", aws_sdk_dynamodb::types::AttributeValue::S(api_keys::ITEM_SORT_KEY.into()))
        .item("name", aws_sdk_dynamodb::types::AttributeValue::S("my cms".into()))
        .send()
        .await
        .unwrap();
    let (status, created_by_legacy) = call(&stack, legacy, Method::POST, "/posts", Some(&post("Legacy key", OTHER, None)), None).await;
    assert_eq!(status, 201, "{created_by_legacy}");

    let (status, _) = call(&stack, &key, Method::GET, "/posts", None, None).await;
    assert_eq!(status, 200);
    let listed = cli_json(&stack, &["keys", "list"]).await.unwrap();
    let by_name = |name: &str| listed["keys"].as_array().unwrap().iter().find(|k| k["name"] == name).cloned().unwrap_or_else(|| panic!("{name} not listed: {listed}"));
    let shop = by_name("shop-a cms");
    assert_eq!((shop["id"].as_str(), shop["access"].as_str()), (Some(&api_keys::hash(&key)[..12]), Some("read_only")));
    assert_eq!(shop["accounts"], json!([ACCOUNT, OTHER]));
    let used = OffsetDateTime::parse(shop["last_used_at"].as_str().expect("the use was recorded"), &Rfc3339).unwrap();
    assert!((OffsetDateTime::now_utc() - used).whole_seconds().abs() < 60, "{shop}");
    assert!(shop["created_at"].is_string());
    let old = by_name("my cms");
    assert_eq!((old["legacy"].as_bool(), old["accounts"].is_null(), old["access"].as_str()), (Some(true), true, Some("read_write")));
    assert_eq!(by_name("local stack")["accounts"], Value::Null, "the stack's own key covers every account");
    let mut text = Vec::new();
    keys::list(&ctx(&stack), &mut text).await.unwrap();
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("shop-a cms") && text.contains(&format!("{ACCOUNT},{OTHER} read-only")), "{text}");
    assert!(!text.contains(&key), "list shows the key itself: {text}");

    // Revoked by name, and by id: refused at once.
    let revoked = cli_json(&stack, &["keys", "revoke", "shop-a cms"]).await.unwrap();
    assert_eq!(revoked["revoked"]["name"], "shop-a cms");
    let (status, answer) = call(&stack, &key, Method::GET, "/posts", None, None).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (401, Some("unauthorized")));
    cli_json(&stack, &["keys", "revoke", &api_keys::hash(legacy)[..12]]).await.unwrap();
    assert_eq!(call(&stack, legacy, Method::GET, "/posts", None, None).await.0, 401);
    assert!(cli_json(&stack, &["keys", "revoke", "shop-a cms"]).await.unwrap_err().contains("no key"));
    let names: Vec<Value> = cli_json(&stack, &["keys", "list"]).await.unwrap()["keys"].as_array().unwrap().iter().map(|k| k["name"].clone()).collect();
    assert_eq!(names, [json!("local stack")]);
}
