//! `make soak`: pushes posts through the pipeline on a local stack of its own while everything
//! that may go wrong in production goes wrong, and checks that no post is lost and none is
//! published twice.
//!
//! ```sh
//! make soak                                         # this, then the long property-test run
//! cargo run -p instapipe-local --bin soak -- --posts 1000 --rate 1.8 --drain 300
//! ```
//!
//! - posts: feed images, Reels, carousels, stories, Shopify and WordPress posts, scheduled posts
//!   through the posts API (some then rescheduled, some cancelled), and groups of posts sharing
//!   one caption;
//! - the Graph API simulator answers 10 % of calls with a 5xx (nothing done), carries out 2 %
//!   but answers them only after the client's timeout — and the first and then 20 % of carousel
//!   container creations, so that retries meet carousel items already used — and loses the
//!   answer of 5 % of successful publishes (`--lost-publish`; seeded);
//! - the fault proxy answers 5 % of the functions' DynamoDB, Scheduler and Secrets Manager
//!   calls with a throttle or a 5xx (`--aws-errors`, half each);
//! - the local runner kills 2 % of invocations mid-handler (`--kill-rate`), fires schedules up
//!   to 3 s late (`--late-ms`), and delivers 10 % of stream records and of schedule firings
//!   twice (seeded);
//! - every webhook is sent twice with the same id (generic, Shopify and WordPress; the second
//!   time signed again with the current time).
//!
//! Printed at the end: posts accepted, published, failed (by reason), lost (accepted but in no
//! final state after the drain), duplicated (published more than once on the simulator), wrong
//! media, stuck (not final within its deadline plus one sweep) and re-armed by the watchdog.
//! Exit code 1 when anything was lost, duplicated, recorded against the wrong media or stuck, or
//! a carousel failed on a refused carousel container (a late answer must never become a failure).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use graph_sim::SimConfig;
use instapipe_core::post::{DestState, Destination};
use instapipe_test_support::samples;
use instapipe_test_support::signing::shopify_signature;
use instapipe_local::LocalStack;
use instapipe_local::fault_proxy::AwsFaults;
use instapipe_local::settings::Settings;
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::Semaphore;

const ACCOUNTS: [(&str, &str); 4] = [
    ("17841400000000001", "IGAA-soak-token-1"),
    ("17841400000000002", "IGAA-soak-token-2"),
    ("17841400000000003", "IGAA-soak-token-3"),
    ("17841400000000004", "IGAA-soak-token-4"),
];

struct Args {
    posts: usize,
    rate: f64,
    drain: Duration,
    seed: u64,
    /// Share of invocations killed mid-handler.
    kill_rate: f64,
    /// Schedules fire up to this late.
    late: Duration,
    /// Share of the functions' DynamoDB / Scheduler / Secrets Manager calls the fault proxy
    /// answers with an error: half throttles, half 5xx.
    aws_errors: f64,
    lost_publish: f64,
}

fn args() -> Args {
    let mut args = Args {
        posts: 1000,
        rate: 1.8,
        drain: Duration::from_secs(300),
        seed: 7,
        kill_rate: 0.02,
        late: Duration::from_secs(3),
        aws_errors: 0.05,
        lost_publish: 0.05,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--posts" => args.posts = value().parse().expect("--posts N"),
            "--rate" => args.rate = value().parse().expect("--rate POSTS_PER_SECOND"),
            "--drain" => args.drain = Duration::from_secs(value().parse().expect("--drain SECONDS")),
            "--seed" => args.seed = value().parse().expect("--seed N"),
            "--kill-rate" => args.kill_rate = value().parse().expect("--kill-rate SHARE"),
            "--late-ms" => args.late = Duration::from_millis(value().parse().expect("--late-ms MILLISECONDS")),
            "--aws-errors" => args.aws_errors = value().parse().expect("--aws-errors SHARE"),
            "--lost-publish" => args.lost_publish = value().parse().expect("--lost-publish SHARE"),
            "-h" | "--help" => {
                eprintln!("soak [--posts 1000] [--rate 1.8] [--drain 300] [--seed 7] [--kill-rate 0.02] [--late-ms 3000] [--aws-errors 0.05] [--lost-publish 0.05]");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other}"),
        }
    }
    args
}

fn root() -> std::path::PathBuf {
    std::env::var_os("INSTAPIPE_ROOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// What the soak sends as post `i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Source {
    GenericImage,
    GenericReel,
    GenericCarousel,
    Shopify,
    WordPress,
    /// Through the posts API, scheduled a few seconds ahead (some then moved, some cancelled).
    Scheduled,
    /// A generic image whose caption several posts to the first account share.
    SharedCaption,
    /// A generic image story (no caption on Instagram: told apart by its media URL).
    GenericStory,
}

/// What the soak does to a scheduled post after creating it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Change {
    Keep,
    Reschedule,
    Cancel,
}

fn change_of(i: usize) -> Change {
    match i % 60 {
        21 => Change::Reschedule,
        41 => Change::Cancel,
        _ => Change::Keep,
    }
}

/// The caption shared by the posts of collision group `i / 100` (its number, 900000 + group,
/// is read by `post_number` like any post's).
fn shared_caption(i: usize) -> String {
    format!("Soak shared caption soak-{:06} #soak", 900_000 + i / 100)
}

fn source_of(i: usize) -> Source {
    match i % 20 {
        7 => Source::Shopify,
        13 => Source::WordPress,
        3 | 11 | 17 => Source::GenericReel,
        5 | 15 => Source::GenericCarousel,
        1 => Source::Scheduled,
        9 | 19 => Source::SharedCaption,
        4 | 14 => Source::GenericStory,
        _ => Source::GenericImage,
    }
}

/// One webhook, ready to be signed at send time (so the second delivery is signed anew).
struct Webhook {
    url: String,
    id: String,
    body: Vec<u8>,
    kind: Source,
}

fn webhook(stack: &LocalStack, i: usize) -> Webhook {
    let kind = source_of(i);
    let url = |source: &str| format!("{}/webhooks/{source}", stack.base_url);
    match kind {
        Source::Shopify => {
            let mut product: Value = samples::json("shopify-products-create");
            product["id"] = json!(9_000_000_000_000u64 + i as u64);
            product["title"] = json!(format!("Soak mug soak-{i:06}"));
            Webhook { url: url("shopify"), id: format!("soak-shopify-{i:06}"), body: product.to_string().into_bytes(), kind }
        }
        Source::WordPress => {
            let mut event: Value = samples::json("wordpress-post-published");
            event["data"]["id"] = json!(100_000 + i);
            event["data"]["title"] = json!(format!("Soak article soak-{i:06}"));
            event["data"]["excerpt"] = json!(format!("Excerpt of soak article {i}."));
            event["data"]["permalink"] = json!(format!("https://news.example.org/soak/{i}/"));
            Webhook { url: url("wordpress"), id: format!("msg_soak_wp_{i:06}"), body: event.to_string().into_bytes(), kind }
        }
        _ => {
            let media = match kind {
                Source::GenericReel => json!([{ "url": format!("https://cdn.example.com/soak/{i}.mp4"), "type": "video" }]),
                Source::GenericCarousel => json!([
                    { "url": format!("https://cdn.example.com/soak/{i}-1.jpg"), "type": "image" },
                    { "url": format!("https://cdn.example.com/soak/{i}-2.jpg"), "type": "image" },
                ]),
                // The URL carries the post number: a story's media has no caption to read it from.
                Source::GenericStory => json!([{ "url": format!("https://cdn.example.com/soak/story-soak-{i:06}.jpg"), "type": "image" }]),
                _ => json!([{ "url": format!("https://cdn.example.com/soak/{i}.jpg"), "type": "image" }]),
            };
            // Every tenth generic post goes to two accounts.
            let first = ACCOUNTS[i % ACCOUNTS.len()].0;
            let accounts = if i % 10 == 0 { json!([first, ACCOUNTS[(i + 1) % ACCOUNTS.len()].0]) } else { json!([first]) };
            let mut body = json!({ "caption": format!("Soak post soak-{i:06} #soak"), "media": media, "accounts": accounts });
            match kind {
                Source::SharedCaption => {
                    body["caption"] = json!(shared_caption(i));
                    body["accounts"] = json!([ACCOUNTS[0].0]);
                }
                Source::GenericStory => {
                    body["options"] = json!({ "placement": "story" });
                }
                Source::Scheduled => {
                    let at = OffsetDateTime::now_utc() + Duration::from_secs(5 + (i % 7) as u64);
                    body["publish_at"] = json!(at.format(&time::format_description::well_known::Rfc3339).unwrap());
                    return Webhook { url: stack.posts_url(), id: format!("soak-api-{i:06}"), body: body.to_string().into_bytes(), kind };
                }
                _ => {}
            }
            Webhook { url: url("generic"), id: format!("msg_soak_{i:06}"), body: body.to_string().into_bytes(), kind }
        }
    }
}

/// Moves a scheduled post 8 s later or cancels it, through the posts API, soon after creating it.
async fn change(http: &reqwest::Client, stack: &LocalStack, tally: &Mutex<Tally>, post_id: &str, what: Change) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let url = format!("{}/{post_id}", stack.posts_url());
    let request = match what {
        Change::Keep => return,
        Change::Cancel => http.delete(&url),
        Change::Reschedule => {
            let at = OffsetDateTime::now_utc() + Duration::from_secs(12);
            http.patch(&url).json(&json!({ "publish_at": at.format(&time::format_description::well_known::Rfc3339).unwrap() }))
        }
    };
    let request = request.bearer_auth(&stack.settings.api_key);
    // Sent again while answered 5xx (an AWS fault that outlived the SDK's retries), as a client would.
    let mut answer = (0, Value::Null);
    for attempt in 0..5u64 {
        let Some(attempt_request) = request.try_clone() else { break };
        answer = match attempt_request.send().await {
            Ok(r) => (r.status().as_u16(), r.json::<Value>().await.unwrap_or(Value::Null)),
            Err(e) => (0, json!(e.to_string())),
        };
        if answer.0 != 0 && answer.0 < 500 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500 * (attempt + 1))).await;
    }
    let mut t = tally.lock().unwrap();
    match (what, answer.0, answer.1["state"].as_str()) {
        (Change::Cancel, 200, Some("CANCELLED")) => {
            t.cancelled.insert(post_id.to_string());
        }
        (Change::Reschedule, 200, _) => t.rescheduled += 1,
        _ => t.changes_refused.push(format!("{what:?} {post_id}: {} {}", answer.0, answer.1)),
    }
}

/// Sends the webhook, again (signed anew) while it is answered 5xx or not at all, as webhook
/// senders and API clients retry: a 5xx (an AWS fault that outlived the SDK's retries) stored
/// nothing or something the next delivery finds. (status, answer, attempts beyond the first).
async fn send_retrying(http: &reqwest::Client, stack: &LocalStack, w: &Webhook) -> (Result<(u16, Value), String>, usize) {
    let mut again = 0;
    loop {
        let answer = send(http, stack, w).await;
        let retry = match &answer {
            Ok((status, _)) => *status >= 500,
            Err(_) => true,
        };
        if !retry || again == 4 {
            return (answer, again);
        }
        again += 1;
        tokio::time::sleep(Duration::from_millis(500 * again as u64)).await;
    }
}

/// Sends the webhook signed now; (status, answer).
async fn send(http: &reqwest::Client, stack: &LocalStack, w: &Webhook) -> Result<(u16, Value), String> {
    let now = OffsetDateTime::now_utc();
    let mut request = http.post(&w.url).header("content-type", "application/json").body(w.body.clone());
    if w.kind == Source::Scheduled {
        // The posts API: the same Idempotency-Key makes the second call answer the same post.
        request = request.bearer_auth(&stack.settings.api_key).header("Idempotency-Key", &w.id);
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        // Answered like a webhook for the tally: 202 and a post id.
        return Ok((if status == 201 || status == 200 { 202 } else { status }, json!({ "post_id": body["post_id"], "duplicate": status == 200 })));
    }
    match w.kind {
        Source::Shopify => {
            let signature = shopify_signature(&stack.settings.sources.shopify, &w.body);
            request = request
                .header("X-Shopify-Topic", "products/create")
                .header("X-Shopify-Hmac-Sha256", signature)
                .header("X-Shopify-Shop-Domain", samples::header("shopify-products-create", "X-Shopify-Shop-Domain"))
                .header("X-Shopify-API-Version", "2026-10")
                .header("X-Shopify-Webhook-Id", &w.id)
                .header("X-Shopify-Event-Id", format!("{}-event", w.id))
                .header("X-Shopify-Triggered-At", now.format(&time::format_description::well_known::Rfc3339).unwrap());
        }
        _ => {
            let secret = if w.kind == Source::WordPress { &stack.settings.sources.wordpress } else { &stack.settings.generic_secret };
            let ts = now.unix_timestamp();
            let signature = standardwebhooks::Webhook::new(secret).map_err(|e| e.to_string())?.sign(&w.id, ts, &w.body).map_err(|e| e.to_string())?;
            request = request.header("webhook-id", &w.id).header("webhook-timestamp", ts.to_string()).header("webhook-signature", signature);
        }
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, serde_json::from_str(&body).unwrap_or(Value::String(body))))
}

#[derive(Default)]
struct Tally {
    /// post id → (what, caption key i).
    accepted: HashMap<String, (Source, usize)>,
    refused: Vec<String>,
    /// The second delivery did not answer the same post as a duplicate.
    inconsistent_repeats: Vec<String>,
    webhooks_sent: usize,
    /// Scheduled posts cancelled (answered CANCELLED) and moved through the posts API.
    cancelled: std::collections::HashSet<String>,
    rescheduled: usize,
    /// Changes the API refused (e.g. the post had already started).
    changes_refused: Vec<String>,
    /// Requests answered 5xx (or not at all) and sent again.
    resent_after_5xx: usize,
}

fn progress(message: impl AsRef<str>) {
    println!("[soak {}] {}", OffsetDateTime::now_utc().time().truncate_to_second(), message.as_ref());
}

fn init_logging() -> std::path::PathBuf {
    let dir = root().join(".local");
    std::fs::create_dir_all(&dir).ok();
    let path = dir.join("soak.log");
    let file = std::fs::File::create(&path).expect("create .local/soak.log");
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt().with_writer(Mutex::new(file)).with_ansi(false).with_env_filter(filter).try_init();
    path
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = args();
    let log = init_logging();
    let mut settings = Settings::for_tests();
    settings.fast_waits();
    settings.duplicate_rate = 0.10;
    settings.duplicate_seed = args.seed;
    settings.kills = instapipe_local::lambda::KillPlan { rate: args.kill_rate, functions: Default::default(), window: Duration::from_millis(300) };
    settings.kill_seed = args.seed;
    settings.schedule_lateness = args.late;
    aws_fault_hook(&mut settings, args.aws_errors, args.seed);
    let sim = SimConfig {
        image_delay: Duration::from_millis(300),
        video_delay: Duration::from_secs(3),
        seed: args.seed,
        error_rate: 0.10,
        timeout_rate: 0.02,
        carousel_timeout_rate: 0.20,
        // Longer than the client's 2 s GRAPH_API_TIMEOUT_MS: the client gives up first.
        timeout: Duration::from_secs(3),
        lost_publish_rate: args.lost_publish,
        // Not what is soaked: 1,000 posts are more than four accounts' daily quota and hourly
        // call budget.
        quota_total: 1_000_000,
        account_calls_per_hour: 0,
        ..SimConfig::default()
    };
    progress(format!(
        "{} posts at {}/s; simulator: 5xx {:.0} %, answered late {:.0} % and carousel containers {:.0} % ({} s vs 2 s client timeout), lost publish answers {:.0} %, seed {}; \
         AWS: {:.1} % throttled and {:.1} % 5xx (DynamoDB, Scheduler, Secrets Manager); \
         runner: {:.0} % of stream records and schedule firings delivered twice, {:.0} % of invocations killed, schedules up to {} ms late; every webhook sent twice; logs in {}",
        args.posts,
        args.rate,
        sim.error_rate * 100.0,
        sim.timeout_rate * 100.0,
        sim.carousel_timeout_rate * 100.0,
        sim.timeout.as_secs(),
        sim.lost_publish_rate * 100.0,
        sim.seed,
        settings.aws_faults.throttle_rate * 100.0,
        settings.aws_faults.error_rate * 100.0,
        settings.duplicate_rate * 100.0,
        settings.kills.rate * 100.0,
        settings.schedule_lateness.as_millis(),
        log.display()
    ));
    let stack = Arc::new(LocalStack::start(settings, sim).await.expect("the local stack starts (did `make deps` run?)"));
    for (account, token) in ACCOUNTS {
        stack.add_account(account, token).await.unwrap();
    }
    // However short the run, its first carousel meets a retry whose children are already used.
    stack.sim.as_ref().unwrap().answer_carousel_creations_late(1);
    let started = Instant::now();
    let tally = Arc::new(Mutex::new(Tally::default()));
    let http = reqwest::Client::new();
    let gate = Arc::new(Semaphore::new(16));
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let t0 = tokio::time::Instant::now();
    let mut last_report = Instant::now();
    let mut sends = Vec::new();
    for i in 0..args.posts {
        tokio::time::sleep_until(t0 + interval * i as u32).await;
        let permit = gate.clone().acquire_owned().await.unwrap();
        let (stack2, tally2, http) = (stack.clone(), tally.clone(), http.clone());
        sends.push(tokio::spawn(async move {
            let (stack, tally) = (stack2, tally2);
            let w = webhook(&stack, i);
            let (first, resent1) = send_retrying(&http, &stack, &w).await;
            let (second, resent2) = send_retrying(&http, &stack, &w).await;
            drop(permit);
            let mut t = tally.lock().unwrap();
            t.webhooks_sent += 2;
            t.resent_after_5xx += resent1 + resent2;
            match first {
                Ok((202, answer)) => {
                    let Some(post_id) = answer["post_id"].as_str() else {
                        t.refused.push(format!("#{i} {:?}: 202 without a post ({answer})", w.kind));
                        return;
                    };
                    t.accepted.insert(post_id.to_string(), (w.kind, i));
                    if w.kind == Source::Scheduled && change_of(i) != Change::Keep {
                        let (stack, tally, http, post_id) = (stack.clone(), tally.clone(), http.clone(), post_id.to_string());
                        tokio::spawn(async move { change(&http, &stack, &tally, &post_id, change_of(i)).await });
                    }
                    match second {
                        Ok((202, again)) if again["post_id"] == answer["post_id"] && again["duplicate"] == true => {}
                        other => t.inconsistent_repeats.push(format!("#{i} {:?} post {post_id}: second delivery answered {other:?}", w.kind)),
                    }
                }
                other => t.refused.push(format!("#{i} {:?}: {other:?}", w.kind)),
            }
        }));
        if last_report.elapsed() >= Duration::from_secs(15) {
            last_report = Instant::now();
            report_progress(&stack, &tally, started, i + 1).await;
        }
    }
    for s in sends {
        let _ = s.await;
    }
    progress(format!("all {} posts sent (twice each) in {:.0} s; draining (up to {} s)", args.posts, started.elapsed().as_secs_f64(), args.drain.as_secs()));
    let drain_started = Instant::now();
    let mut dests;
    loop {
        dests = accepted_destinations(&stack, &tally).await;
        let open = dests.values().flatten().filter(|d| !d.state.is_final()).count();
        let missing = dests.values().filter(|d| d.is_empty()).count();
        if open == 0 && missing == 0 {
            break;
        }
        if drain_started.elapsed() > args.drain {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(15) {
            last_report = Instant::now();
            report_progress(&stack, &tally, started, args.posts).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // Late duplicates (a stream record or schedule delivered again) may still be in flight.
    tokio::time::sleep(Duration::from_secs(5)).await;
    dests = accepted_destinations(&stack, &tally).await;
    let ok = summary(&stack, &tally, &dests, started, drain_started.elapsed(), args.late);
    std::process::exit(if ok { 0 } else { 1 });
}

/// AWS-side errors at `rate` on the functions' DynamoDB, Scheduler and Secrets Manager calls:
/// the stack puts its fault proxies in front of DynamoDB Local and moto when `aws_faults` is on
/// (`LocalStack::start`), half of them answered as throttles, half as internal errors.
fn aws_fault_hook(settings: &mut Settings, rate: f64, seed: u64) {
    settings.aws_faults = AwsFaults { throttle_rate: rate / 2.0, error_rate: rate / 2.0, seed, ..AwsFaults::off() };
}

/// Every accepted post's destinations, read from the table.
async fn accepted_destinations(stack: &LocalStack, tally: &Mutex<Tally>) -> BTreeMap<String, Vec<Destination>> {
    let ids: Vec<String> = tally.lock().unwrap().accepted.keys().cloned().collect();
    let all = stack.all_destinations().await.unwrap_or_default();
    let mut by_post: BTreeMap<String, Vec<Destination>> = ids.into_iter().map(|id| (id, Vec::new())).collect();
    for d in all {
        if let Some(v) = by_post.get_mut(&d.post_id) {
            v.push(d);
        }
    }
    by_post
}

async fn report_progress(stack: &LocalStack, tally: &Mutex<Tally>, started: Instant, sent: usize) {
    let dests = accepted_destinations(stack, tally).await;
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    for d in dests.values().flatten() {
        *states.entry(d.state.as_str()).or_default() += 1;
    }
    let sim = stack.sim.as_ref().unwrap();
    let running: BTreeMap<&str, u64> = stack.functions.in_flight().into_iter().map(|(f, n)| (f.name(), n)).collect();
    progress(format!(
        "{:>4.0} s: {sent} posts sent, {} accepted; destinations {:?}; running invocations {:?}; simulator: {} published, {} Graph requests",
        started.elapsed().as_secs_f64(),
        dests.len(),
        states,
        running,
        sim.published().len(),
        sim.requests().len()
    ));
}

/// The post number every caption carries as `soak-NNNNNN` (in the title for Shopify and WordPress).
fn post_number(caption: &str) -> Option<usize> {
    caption.match_indices("soak-").find_map(|(at, _)| {
        let digits = caption.get(at + 5..at + 11)?;
        digits.bytes().all(|b| b.is_ascii_digit()).then(|| digits.parse().ok()).flatten()
    })
}

/// The post number a published media carries: in its caption, or (a story) in its media URL.
fn media_number(m: &graph_sim::PublishedMedia) -> Option<usize> {
    m.caption.as_deref().and_then(post_number).or_else(|| m.media_urls.iter().find_map(|url| post_number(url)))
}

/// The caption number a post's media carries: its own, or its collision group's.
fn number_of(source: Source, i: usize) -> usize {
    if source == Source::SharedCaption { 900_000 + i / 100 } else { i }
}

/// By when a destination must be final: its start (publish time or creation), the local poll
/// deadline, the watchdog's grace, one sweep, and how late its schedule may fire.
fn deadline_of(d: &Destination, source: Source, late: Duration) -> OffsetDateTime {
    let start = d.publish_at.map_or(d.created_at, |at| at.max(d.created_at));
    let poll = if source == Source::GenericReel { 180 } else { 60 };
    start + Duration::from_secs(poll + 30 + 10) + late
}

fn summary(stack: &LocalStack, tally: &Mutex<Tally>, dests: &BTreeMap<String, Vec<Destination>>, started: Instant, drained: Duration, late: Duration) -> bool {
    let tally = tally.lock().unwrap();
    let sim = stack.sim.as_ref().unwrap();
    let published_on_sim = sim.published();
    // (account, post number) → media ids published.
    let mut live: HashMap<(String, Option<usize>), Vec<String>> = HashMap::new();
    for m in &published_on_sim {
        let number = media_number(m);
        live.entry((m.ig_user_id.clone(), number)).or_default().push(m.media_id.clone());
    }

    let mut by_state: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut lost = Vec::new();
    let mut failed_but_live = Vec::new();
    let mut carousels_refused = Vec::new();
    let mut published_not_live = Vec::new();
    let mut by_source: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let media_by_id: HashMap<&str, &graph_sim::PublishedMedia> = published_on_sim.iter().map(|m| (m.media_id.as_str(), m)).collect();
    // (account, caption number) → destinations expected there (a collision group has several).
    let mut expected: HashMap<(String, Option<usize>), usize> = HashMap::new();
    let mut recorded: HashMap<&str, Vec<String>> = HashMap::new();
    let mut wrong_media = Vec::new();
    let mut stuck = Vec::new();
    let mut cancelled_but_live = Vec::new();
    let mut rearms = 0u32;
    for (post_id, ds) in dests {
        let (source, i) = tally.accepted[post_id];
        for d in ds {
            rearms += d.rearms;
            if d.state != DestState::Cancelled {
                *expected.entry((d.account_id.clone(), Some(number_of(source, i)))).or_default() += 1;
            }
            let finished = if d.state.is_final() { d.history.last().map(|h| h.at) } else { None };
            if finished.is_none_or(|at| at > deadline_of(d, source, late)) {
                stuck.push(format!("{post_id}/{} {} (rearms {})", d.account_id, d.state.as_str(), d.rearms));
            }
            if let Some(media_id) = d.media_id.as_deref() {
                recorded.entry(media_id).or_default().push(format!("{post_id}/{}", d.account_id));
                let right = media_by_id.get(media_id).is_some_and(|m| {
                    m.ig_user_id == d.account_id && media_number(m) == Some(number_of(source, i))
                });
                if !right {
                    wrong_media.push(format!("{post_id}/{} media {media_id}", d.account_id));
                }
            }
        }
    }
    for (media_id, holders) in &recorded {
        if holders.len() > 1 {
            wrong_media.push(format!("media {media_id} recorded by {holders:?}"));
        }
    }
    for (post_id, ds) in dests {
        let (source, i) = tally.accepted[post_id];
        let entry = by_source.entry(format!("{source:?}")).or_default();
        entry.0 += 1;
        if ds.is_empty() || ds.iter().any(|d| !d.state.is_final()) {
            lost.push(post_id.clone());
        }
        for d in ds {
            *by_state.entry(d.state.as_str()).or_default() += 1;
            let on_sim = live.get(&(d.account_id.clone(), Some(number_of(source, i)))).map_or(0, Vec::len);
            if d.state == DestState::Cancelled && on_sim > 0 && source != Source::SharedCaption {
                cancelled_but_live.push(format!("{post_id}/{}", d.account_id));
            }
            match d.state {
                DestState::Published => {
                    entry.1 += 1;
                    if on_sim == 0 {
                        published_not_live.push(format!("{post_id}/{}", d.account_id));
                    }
                }
                DestState::Failed => {
                    entry.2 += 1;
                    let reason = d.failure.as_ref().map_or("(no reason)".to_string(), |f| {
                        let code = f.code.map(|c| format!(" [code {c}{}]", f.subcode.map(|s| format!("/{s}")).unwrap_or_default())).unwrap_or_default();
                        format!("{}{code}", f.reason.chars().take(140).collect::<String>())
                    });
                    *failures.entry(reason).or_default() += 1;
                    if source == Source::GenericCarousel && d.failure.as_ref().is_some_and(|f| f.code == Some(100)) {
                        carousels_refused.push(format!("{post_id}/{}", d.account_id));
                    }
                    if on_sim > 0 {
                        failed_but_live.push(format!("{post_id}/{}", d.account_id));
                    }
                }
                _ => {}
            }
        }
    }
    // More media live under a caption than destinations expected there.
    let duplicated: Vec<_> = live.iter().filter(|(k, v)| v.len() > expected.get(*k).copied().unwrap_or(1).max(1)).collect();
    let unknown: Vec<_> = live.keys().filter(|(_, k)| k.is_none()).collect();
    let destinations: usize = dests.values().map(Vec::len).sum();
    let published_dests = by_state.get("PUBLISHED").copied().unwrap_or(0);
    let usage = stack.functions.usage();
    let mut invocations: Vec<_> = usage.iter().map(|(f, u)| format!("{} {} ({} failed)", f.name(), u.invocations, u.errors)).collect();
    invocations.sort();

    println!();
    println!("## Soak result");
    println!();
    println!("| | |");
    println!("|---|---|");
    println!("| Posts sent | {} webhooks ({} requests: each sent twice) in {:.0} s, drain {:.0} s |", tally.webhooks_sent / 2, tally.webhooks_sent, started.elapsed().as_secs_f64() - drained.as_secs_f64(), drained.as_secs_f64());
    println!("| Posts accepted | {} ({} destinations) |", tally.accepted.len(), destinations);
    println!("| Refused | {} |", tally.refused.len());
    println!("| Second delivery not answered as the same post | {} |", tally.inconsistent_repeats.len());
    println!("| Destinations PUBLISHED | {published_dests} |");
    println!("| Destinations FAILED | {} |", by_state.get("FAILED").copied().unwrap_or(0));
    println!("| States | {by_state:?} |");
    for (reason, n) in &failures {
        println!("| Failed: {} | {n} |", reason.replace('|', "/"));
    }
    println!("| By source (posts, published dests, failed dests) | {by_source:?} |");
    println!("| **Lost** (accepted, not final after the drain) | **{}** |", lost.len());
    println!("| **Duplicated** (published more than once on the simulator) | **{}** |", duplicated.len());
    println!("| **Wrong media** (recorded by two destinations, or live with another post's caption or account) | **{}** |", wrong_media.len());
    println!("| **Stuck** (not final within its deadline plus one sweep) | **{}** |", stuck.len());
    println!("| Re-armed by the watchdog (sum of rearms) | {rearms} |");
    println!("| Scheduled posts rescheduled / cancelled / change refused | {} / {} / {} |", tally.rescheduled, tally.cancelled.len(), tally.changes_refused.len());
    println!("| Cancelled but live on the simulator | {} |", cancelled_but_live.len());
    println!("| Simulator: media published / duplicate publish attempts | {} / {} |", published_on_sim.len(), sim.duplicate_publish_attempts());
    println!("| Simulator: answered late after the work was done (of which carousel containers) | {} ({}) |", sim.late_answers(), sim.late_carousel_creations());
    let orphans: usize = dests.values().flatten().map(|d| d.orphaned_containers.len()).sum();
    println!("| Containers recorded as left behind (on destinations) | {orphans} |");
    println!("| **Carousels FAILED on a refused carousel container** | **{}** |", carousels_refused.len());
    println!("| FAILED but live on the simulator | {} |", failed_but_live.len());
    println!("| PUBLISHED but not on the simulator | {} |", published_not_live.len());
    println!("| Live media not matched to a post | {} |", unknown.len());
    println!("| Graph requests received by the simulator | {} |", sim.requests().len());
    match &stack.aws_faults {
        Some(proxies) => {
            println!("| AWS faults injected, DynamoDB | {} |", proxies.dynamodb.counts());
            println!("| AWS faults injected, Scheduler + Secrets Manager (moto) | {} |", proxies.moto.counts());
        }
        None => println!("| AWS faults injected | none (--aws-errors 0) |"),
    }
    println!("| Webhook / API requests answered 5xx and sent again (as senders retry) | {} |", tally.resent_after_5xx);
    println!("| Invocations (with duplicates and retries) | {} |", invocations.join(", "));
    let running: BTreeMap<&str, u64> = stack.functions.in_flight().into_iter().map(|(f, n)| (f.name(), n)).collect();
    println!("| Invocations still running at the end | {running:?} |");
    println!();
    for r in tally.refused.iter().take(10) {
        println!("refused: {r}");
    }
    for r in tally.inconsistent_repeats.iter().take(10) {
        println!("repeat: {r}");
    }
    for ((account, number), media) in duplicated.iter().take(20) {
        let post = tally.accepted.iter().find(|(_, (_, i))| Some(*i) == *number).map(|(id, _)| id.clone());
        println!("duplicated: soak-{number:?} (post {post:?}) on {account}: media {media:?}");
    }
    for id in wrong_media.iter().take(20) {
        println!("wrong media: {id}");
    }
    for id in stuck.iter().take(20) {
        println!("stuck: {id}");
    }
    for r in tally.changes_refused.iter().take(10) {
        println!("change refused: {r}");
    }
    for id in carousels_refused.iter().take(20) {
        println!("carousel refused: {id}");
    }
    for id in failed_but_live.iter().chain(&published_not_live).take(20) {
        println!("mismatch: {id}");
    }
    for post_id in lost.iter().take(20) {
        println!("lost: post {post_id} ({:?})", tally.accepted[post_id]);
        for d in &dests[post_id] {
            println!("  {} {} v{} container {:?} poll {} publish attempts {}", d.account_id, d.state.as_str(), d.version, d.container_id, d.poll_attempt, d.publish_attempts);
            for h in &d.history {
                println!("    {} {} {}", h.at, h.state.as_str(), h.note.as_deref().unwrap_or(""));
            }
        }
    }
    lost.is_empty()
        && duplicated.is_empty()
        && wrong_media.is_empty()
        && stuck.is_empty()
        && cancelled_but_live.is_empty()
        && failed_but_live.is_empty()
        && carousels_refused.is_empty()
        && tally.inconsistent_repeats.is_empty()
}
