//! End to end on the local stack: the operator CLI's `--output json`, parsed from a command line
//! as `instapipe` parses it, as a script reads it (the README's "Operator CLI" lists the shapes;
//! these tests hold every object to its documented fields).


use std::collections::BTreeSet;
use std::time::Duration;

use clap::Parser;
use crate::common::{self, ACCOUNT, fast_sim, stack};
use instapipe_cli::{Cli, Ctx};
use instapipe_core::post::DestState;
use instapipe_local::LocalStack;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// Runs `instapipe ARGS…` against the stack: (exit code, stdout).
async fn instapipe(stack: &LocalStack, args: &[&str]) -> (u8, String) {
    let cli = Cli::try_parse_from(std::iter::once("instapipe").chain(args.iter().copied())).unwrap();
    let ctx = Ctx::new(stack.clients.clone(), stack.config.clone());
    let mut out = Vec::new();
    let code = instapipe_cli::run(cli, &ctx, &mut out).await.unwrap_or_else(|e| panic!("instapipe {args:?}: {e}"));
    (code, String::from_utf8(out).unwrap())
}

/// The same, with stdout parsed as the one JSON object it must be.
async fn instapipe_json(stack: &LocalStack, args: &[&str]) -> (u8, Value) {
    let (code, out) = instapipe(stack, args).await;
    let value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("instapipe {args:?} printed no JSON object ({e}): {out}"));
    (code, value)
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value.as_object().unwrap_or_else(|| panic!("not an object: {value}")).keys().map(String::as_str).collect()
}

fn assert_keys(value: &Value, expected: &[&str]) {
    assert_eq!(keys(value), expected.iter().copied().collect(), "{value:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_that_prints_data_prints_its_documented_json() {
    let stack = stack(fast_sim()).await;

    // One post publishes, one fails (its media cannot be fetched), one waits for 2030.
    let published = common::accepted(&stack, &common::post("JSON published", "https://cdn.example.com/j.jpg", "image"), "msg_json_1").await;
    let failed = common::accepted(&stack, &common::post("JSON failed", "https://cdn.example.com/bad-media.jpg", "image"), "msg_json_2").await;
    let mut later = common::post("JSON later", "https://cdn.example.com/l.jpg", "image");
    later["publish_at"] = json!("2030-01-01T09:00:00Z");
    let scheduled = common::accepted(&stack, &later, "msg_json_3").await;
    let published_dest = stack.wait_final(&published, WAIT).await.unwrap().remove(0);
    assert_eq!(stack.wait_final(&failed, WAIT).await.unwrap()[0].state, DestState::Failed);

    // Text stays the default.
    let (_, text) = instapipe(&stack, &["posts", "list"]).await;
    assert!(text.starts_with("POST "), "{text}");
    assert!(serde_json::from_str::<Value>(&text).is_err());

    // A script wants the ids of FAILED posts.
    let (code, list) = instapipe_json(&stack, &["posts", "list", "--state", "FAILED", "--output", "json"]).await;
    assert_eq!(code, 0);
    assert_keys(&list, &["destinations"]);
    let rows = list["destinations"].as_array().unwrap();
    assert_eq!(rows.iter().map(|r| r["post_id"].as_str().unwrap()).collect::<Vec<_>>(), [failed.as_str()], "{list:#}");
    assert_keys(&rows[0], &["post_id", "account_id", "state", "publish_at", "updated_at", "media_id", "permalink", "failure"]);
    assert_eq!((rows[0]["state"].as_str(), rows[0]["permalink"].is_null()), (Some("FAILED"), true));
    assert!(rows[0]["failure"].as_str().is_some_and(|f| !f.is_empty()), "{list:#}");
    let (_, all) = instapipe_json(&stack, &["--output", "json", "posts", "list"]).await;
    assert_eq!(all["destinations"].as_array().unwrap().len(), 3, "{all:#}");

    // … and a post's permalink.
    let (_, show) = instapipe_json(&stack, &["posts", "show", &published, "--output", "json"]).await;
    assert_keys(&show, &["post_id", "state", "source", "source_event_id", "created_at", "publish_at", "caption", "media", "accounts"]);
    assert_eq!((show["state"].as_str(), show["caption"].as_str()), (Some("PUBLISHED"), Some("JSON published")));
    assert_eq!(show["media"], json!([{ "type": "image", "url": "https://cdn.example.com/j.jpg" }]));
    let account = &show["accounts"][0];
    assert_keys(account, &["account_id", "state", "container_id", "children", "media_id", "permalink", "failure", "waiting_until", "history"]);
    assert_eq!(account["permalink"].as_str(), published_dest.permalink.as_deref());
    assert_eq!(account["media_id"].as_str(), published_dest.media_id.as_deref());
    let history: Vec<&str> = account["history"].as_array().unwrap().iter().map(|c| c["state"].as_str().unwrap()).collect();
    assert_eq!(history, ["QUEUED", "PROCESSING", "READY", "PUBLISHING", "PUBLISHED"]);
    assert_keys(&account["history"][0], &["at", "state", "note"]);
    let (_, failed_show) = instapipe_json(&stack, &["posts", "show", &failed, "--output", "json"]).await;
    assert_keys(&failed_show["accounts"][0]["failure"], &["reason", "code", "subcode"]);

    // Accounts.
    let (_, accounts) = instapipe_json(&stack, &["accounts", "list", "--output", "json"]).await;
    assert_keys(&accounts, &["accounts"]);
    assert_keys(
        &accounts["accounts"][0],
        &["account_id", "login", "status", "token_expires_at", "usage_percent", "paused_until", "quota", "quota_error"],
    );
    assert_eq!((accounts["accounts"][0]["account_id"].as_str(), accounts["accounts"][0]["status"].as_str()), (Some(ACCOUNT), Some("ACTIVE")));

    // Cancel and retry say what they did.
    let (_, cancelled) = instapipe_json(&stack, &["posts", "cancel", &scheduled, "--output", "json"]).await;
    assert_eq!(cancelled, json!({ "post_id": scheduled, "state": "CANCELLED", "accounts": [{ "account_id": ACCOUNT, "state": "CANCELLED" }] }));
    let (_, retried) = instapipe_json(&stack, &["posts", "retry", &failed, "--output", "json"]).await;
    assert_eq!(retried, json!({ "post_id": failed, "retried": [{ "account_id": ACCOUNT, "state": "QUEUED" }] }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_import_report_in_json_names_rows_by_their_lines_in_a_crlf_file() {
    let stack = stack(fast_sim()).await;
    // A spreadsheet's export: BOM, CRLF, a caption over two lines, a bad row, a repeated row.
    let csv = format!(
        "\u{feff}caption,media,accounts\r\n\
         One,image:https://cdn.example.com/i1.jpg,{ACCOUNT}\r\n\
         \"Two\r\nlines\",image:https://cdn.example.com/i2.jpg,{ACCOUNT}\r\n\
         Bad,image:http://cdn.example.com/i3.jpg,{ACCOUNT}\r\n\
         One,image:https://cdn.example.com/i1.jpg,{ACCOUNT}\r\n"
    );
    let file = std::env::temp_dir().join(format!("instapipe-cli-output-{}.csv", std::process::id()));
    std::fs::write(&file, csv).unwrap();
    let path = file.to_str().unwrap();

    let (code, dry) = instapipe_json(&stack, &["import", path, "--dry-run", "--output", "json"]).await;
    assert_eq!(code, 1, "a bad row: exit code 1");
    assert_keys(&dry, &["dry_run", "rows", "scheduled", "would_schedule", "already_imported", "repeated", "bad"]);
    assert_eq!(dry["dry_run"], json!(true));
    assert_eq!(dry["would_schedule"], json!([{ "line": 2 }, { "line": 3 }]), "{dry:#}");
    assert_eq!(dry["repeated"], json!([{ "line": 6, "first_line": 2 }]));
    assert_eq!(dry["bad"][0]["line"], json!(5));
    assert!(dry["bad"][0]["reason"].as_str().unwrap().starts_with("media[0].url:"), "{dry:#}");
    assert_eq!(dry["rows"], json!(4));

    let (_, report) = instapipe_json(&stack, &["import", path, "--output", "json"]).await;
    let scheduled: Vec<u64> = report["scheduled"].as_array().unwrap().iter().map(|r| r["line"].as_u64().unwrap()).collect();
    assert_eq!(scheduled, [2, 3], "{report:#}");
    for row in report["scheduled"].as_array().unwrap() {
        assert_keys(row, &["line", "post_id"]);
        let post_id = row["post_id"].as_str().unwrap();
        assert_eq!(stack.wait_final(post_id, WAIT).await.unwrap()[0].state, DestState::Published);
    }
    let (_, again) = instapipe_json(&stack, &["import", path, "--output", "json"]).await;
    assert_eq!(again["already_imported"], report["scheduled"], "{again:#}");
    let _ = std::fs::remove_file(file);
}
