//! End to end on the local stack: the operator CLI's commands, called as `instapipe` calls them,
//! with the stack's clients and configuration.

use std::time::Duration;

use crate::common::{self, ACCOUNT, TOKEN, fast_sim, stack};
use instapipe_cli::Ctx;
use instapipe_cli::commands::accounts::{self, AddAccount};
use instapipe_cli::commands::import::{self, ImportOptions, Progress};
use instapipe_cli::commands::posts;
use instapipe_core::account::{AccountStatus, LoginFlavour};
use instapipe_core::post::DestState;
use instapipe_core::store::DestinationQuery;
use instapipe_local::LocalStack;
use secrecy::SecretString;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

fn ctx(stack: &LocalStack) -> Ctx {
    Ctx::new(stack.clients.clone(), stack.config.clone())
}

async fn stored_token(stack: &LocalStack, account: &str) -> String {
    let name = format!("{}{account}", stack.config.account_secret_prefix());
    let out = stack.clients.secrets.get_secret_value().secret_id(name).send().await.unwrap();
    let value: Value = serde_json::from_str(out.secret_string().unwrap()).unwrap();
    value["access_token"].as_str().unwrap().to_string()
}

async fn wait_for_state(stack: &LocalStack, post_id: &str, state: DestState) {
    for _ in 0..300 {
        if stack.destinations(post_id).await.first().is_some_and(|d| d.state == state) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("post {post_id} never reached {state}: {:?}", stack.destinations(post_id).await);
}

fn text(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_add_stores_the_token_and_a_waiting_post_then_publishes() {
    let stack = stack(fast_sim()).await;
    let ctx = ctx(&stack);

    // A new account: its secret is created and its item stored.
    let new_account = "17841400000000009";
    let mut out = Vec::new();
    let request = AddAccount {
        account_id: new_account.into(),
        token: SecretString::from("IGAA-cli-added-token"),
        login: LoginFlavour::Facebook,
        exchange: false,
    };
    let added = accounts::add(&ctx, request, &mut out).await.unwrap();
    assert_eq!(added.resumed, 0);
    let out = text(out);
    assert!(!out.contains("IGAA-cli-added-token"), "the token is never printed: {out}");
    assert_eq!(stored_token(&stack, new_account).await, "IGAA-cli-added-token");
    let account = stack.store.get_account(new_account).await.unwrap().unwrap();
    assert_eq!((account.login, account.status), (LoginFlavour::Facebook, AccountStatus::Active));

    // Meta now refuses the stored token: the post waits for a new one.
    stack.sim.as_ref().unwrap().set_token(ACCOUNT, "IGAA-renewed-by-cli");
    let body = json!({"caption": "Waits for the operator", "media": [{"url": "https://cdn.example.com/w.jpg", "type": "image"}], "accounts": [ACCOUNT]});
    let (status, answer) = common::send(&stack, &body, "msg_cli_reauth").await;
    assert_eq!(status, 202, "{answer}");
    let post_id = answer["post_id"].as_str().unwrap().to_string();
    wait_for_state(&stack, &post_id, DestState::AwaitingAuth).await;
    assert_eq!(stack.store.get_account(ACCOUNT).await.unwrap().unwrap().status, AccountStatus::NeedsReauth);

    let mut list = Vec::new();
    accounts::list(&ctx, false, &mut list).await.unwrap();
    let list = text(list);
    assert!(list.contains(ACCOUNT) && list.contains("NEEDS_REAUTH") && list.contains(new_account), "{list}");
    assert!(!list.contains(TOKEN));

    // `instapipe accounts add ACCOUNT --token -` with the new token.
    let stdin = b"IGAA-renewed-by-cli\n".to_vec();
    let token = accounts::read_token("-", &mut stdin.as_slice()).unwrap();
    let mut out = Vec::new();
    let request = AddAccount { account_id: ACCOUNT.into(), token, login: LoginFlavour::Instagram, exchange: false };
    let added = accounts::add(&ctx, request, &mut out).await.unwrap();
    assert_eq!(added.resumed, 1, "{}", text(out));
    assert_eq!(stored_token(&stack, ACCOUNT).await, "IGAA-renewed-by-cli");
    let d = stack.wait_final(&post_id, WAIT).await.unwrap().remove(0);
    assert_eq!(d.state, DestState::Published, "{:?}", d.failure);
    assert_eq!(stack.store.get_account(ACCOUNT).await.unwrap().unwrap().status, AccountStatus::Active);

    // `posts show` tells the whole story.
    let mut out = Vec::new();
    posts::show(&ctx, &post_id, &mut out).await.unwrap();
    let out = text(out);
    assert!(out.contains(&format!("post {post_id}  PUBLISHED")), "{out}");
    assert!(out.contains("AWAITING_AUTH") && out.contains("the account was connected again"), "{out}");
    assert!(out.contains(&format!("permalink  {}", d.permalink.unwrap())), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_with_good_and_bad_rows_schedules_the_good_ones_and_reports_the_bad() {
    let stack = stack(fast_sim()).await;
    let ctx = ctx(&stack);
    let csv = format!(
        "caption,media,accounts,publish_at,options\n\
         CSV one #import,image:https://cdn.example.com/csv1.jpg,{ACCOUNT},,\n\
         \"CSV two, a carousel\",image:https://cdn.example.com/csv2a.jpg image:https://cdn.example.com/csv2b.jpg,{ACCOUNT},2020-01-01T00:00:00Z,\"{{\"\"first_comment\"\":\"\"#more\"\"}}\"\n\
         CSV three,image:http://cdn.example.com/insecure.jpg,{ACCOUNT},,\n"
    );
    let options = |dry_run| ImportOptions { dry_run, progress: Progress::Hidden };

    // --dry-run checks and reports, and writes nothing.
    let mut out = Vec::new();
    let report = import::import(&ctx, csv.as_bytes(), options(true), &mut out).await.unwrap();
    let out = text(out);
    assert_eq!(report.would_schedule, [2, 3], "{out}");
    assert!(report.scheduled.is_empty());
    assert_eq!(report.bad.iter().map(|b| b.line).collect::<Vec<_>>(), [4], "{out}");
    assert!(out.contains("line 4: media[0].url:"), "{out}");
    assert!(out.contains("dry run: nothing written"), "{out}");
    assert!(stack.all_destinations().await.unwrap().is_empty(), "a dry run writes nothing");

    // The real import schedules the two good rows, which publish on the simulator.
    let mut out = Vec::new();
    let report = import::import(&ctx, csv.as_bytes(), options(false), &mut out).await.unwrap();
    let out = text(out);
    assert_eq!(report.scheduled.iter().map(|s| s.0).collect::<Vec<_>>(), [2, 3], "{out}");
    assert_eq!(report.bad.len(), 1);
    assert!(out.contains("line 4: media[0].url:"), "{out}");
    assert!(out.contains("3 rows: 2 scheduled, 0 imported before, 0 repeated in the file, 1 bad"), "{out}");
    for (_, post_id) in &report.scheduled {
        let d = stack.wait_final(post_id, WAIT).await.unwrap().remove(0);
        assert_eq!(d.state, DestState::Published, "{:?}", d.failure);
    }
    let published = stack.sim.as_ref().unwrap().published();
    assert!(published.iter().any(|p| p.caption.as_deref() == Some("CSV one #import")), "{published:?}");
    assert!(published.iter().any(|p| p.caption.as_deref() == Some("CSV two, a carousel")), "{published:?}");
    assert_eq!(stack.store.get_post(&report.scheduled[0].1).await.unwrap().unwrap().source, "csv");

    // Importing the same file again schedules nothing twice.
    let mut out = Vec::new();
    let again = import::import(&ctx, csv.as_bytes(), options(false), &mut out).await.unwrap();
    assert!(again.scheduled.is_empty(), "{}", text(out));
    assert_eq!(again.already, report.scheduled);
    assert_eq!(stack.all_destinations().await.unwrap().len(), 2);

    // `posts list` finds them.
    let mut out = Vec::new();
    let query = DestinationQuery { account: Some(ACCOUNT.into()), state: Some(DestState::Published), limit: 10, cursor: None };
    let listed = posts::list(&ctx, query, &mut out).await.unwrap();
    assert_eq!(listed.len(), 2, "{}", text(out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_cancel_and_retry() {
    let stack = stack(fast_sim()).await;
    let ctx = ctx(&stack);

    // A scheduled post is cancelled.
    let later = json!({"caption": "Never mind", "media": [{"url": "https://cdn.example.com/n.jpg", "type": "image"}],
                       "accounts": [ACCOUNT], "publish_at": "2030-01-01T09:00:00Z"});
    let (_, answer) = common::send(&stack, &later, "msg_cli_cancel").await;
    let scheduled = answer["post_id"].as_str().unwrap().to_string();
    let mut out = Vec::new();
    posts::cancel(&ctx, &scheduled, &mut out).await.unwrap();
    assert!(text(out).contains("CANCELLED"));
    assert_eq!(stack.destinations(&scheduled).await[0].state, DestState::Cancelled);

    // A post whose media cannot be fetched fails; a retry sends it back to container creation,
    // where it fails again (the URL is still bad) — through the stream, as a new attempt.
    let bad = json!({"caption": "Bad media", "media": [{"url": "https://cdn.example.com/bad-media.jpg", "type": "image"}], "accounts": [ACCOUNT]});
    let (_, answer) = common::send(&stack, &bad, "msg_cli_retry").await;
    let failed = answer["post_id"].as_str().unwrap().to_string();
    let d = stack.wait_final(&failed, WAIT).await.unwrap().remove(0);
    assert_eq!(d.state, DestState::Failed);
    let failures_before = d.history.iter().filter(|c| c.state == DestState::Failed).count();

    let mut out = Vec::new();
    let retried = posts::retry(&ctx, &failed, None, &mut out).await.unwrap();
    assert_eq!(retried, [(ACCOUNT.to_string(), DestState::Queued)], "{}", text(out));
    let mut d = stack.destinations(&failed).await.remove(0);
    for _ in 0..300 {
        if d.history.iter().filter(|c| c.state == DestState::Failed).count() > failures_before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        d = stack.destinations(&failed).await.remove(0);
    }
    assert_eq!(d.state, DestState::Failed, "{:?}", d.history);
    assert!(d.history.iter().any(|c| c.note.as_deref().is_some_and(|n| n.starts_with("retried by an operator"))), "{:?}", d.history);
    assert_eq!(d.history.iter().filter(|c| c.state == DestState::Failed).count(), failures_before + 1, "tried again once");

    // Nothing else to retry on a published or cancelled post.
    assert!(posts::retry(&ctx, &scheduled, None, &mut Vec::new()).await.is_err());
}
