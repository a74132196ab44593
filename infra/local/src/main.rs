//! `instapipe-local run`: the local stack and an end-to-end demo that publishes to the simulator.
//! `instapipe-local send [FILE]`: signs a post request (JSON, from FILE or stdin) and sends it to a
//! running stack.

use std::collections::HashSet;
use std::io::Read;
use std::time::{Duration, Instant};

use graph_sim::SimConfig;
use instapipe_core::post::{DestState, Destination};
use instapipe_local::settings::Settings;
use instapipe_local::stack::{LocalStack, send_signed};

#[tokio::main]
async fn main() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).compact().init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        None | Some("run") => run().await,
        Some("send") => send(args.get(1).map(String::as_str)).await,
        Some(other) => Err(format!("unknown command {other:?}; use `run` or `send [FILE]`")),
    };
    if let Err(err) = result {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

async fn run() -> Result<(), String> {
    let settings = Settings::from_env()?;
    let sim_config = SimConfig::from_env()?;
    println!("Starting DynamoDB Local, moto (Scheduler, Secrets Manager){} ...",
        if settings.graph_api_base_url.is_some() { "" } else { " and the Graph API simulator" });
    let stack = LocalStack::start(settings.clone(), sim_config).await?;
    println!("  DynamoDB Local   {}", stack.dynamodb_url);
    println!("  moto             {}", stack.moto_url);
    println!("  Graph API        {}{}", stack.graph_base_url, if stack.sim.is_some() { " (simulator)" } else { "" });
    stack.add_account(&settings.demo_account, &settings.demo_token).await?;
    println!("  account          {} registered, token stored in Secrets Manager", settings.demo_account);

    let now = time::OffsetDateTime::now_utc();
    let body = serde_json::json!({
        "caption": format!("Hello from instapipe: a demo post sent at {} #instapipe", now.format(&time::format_description::well_known::Rfc3339).map_err(|e| e.to_string())?),
        "media": [{ "url": "https://picsum.photos/id/237/1080/1080.jpg", "type": "image" }],
        "accounts": [settings.demo_account],
    })
    .to_string();
    println!("\nSending a signed demo post to {} ...", stack.webhook_url());
    let started = Instant::now();
    let response = stack.send_generic(&body, &format!("msg_demo_{}", ulid::Ulid::new())).await?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    println!("  HTTP {status} {answer}");
    let post_id = answer["post_id"].as_str().ok_or("the demo post was not accepted")?.to_string();

    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let dests = stack.destinations(&post_id).await;
        print_changes(&dests, &mut seen, started);
        if !dests.is_empty() && dests.iter().all(|d| d.state.is_final()) {
            for d in &dests {
                match (&d.permalink, &d.failure) {
                    (Some(link), _) => println!("\nPublished: {link} (media {})", d.media_id.as_deref().unwrap_or("?")),
                    (None, Some(f)) => println!("\nFailed: {}", f.reason),
                    _ => println!("\nFinished in state {}", d.state),
                }
            }
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the demo post did not finish within 3 minutes (post {post_id})"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let sample = serde_json::json!({
        "caption": "Another post #instapipe",
        "media": [{ "url": "https://picsum.photos/id/1025/1080/1350.jpg", "type": "image" }],
        "accounts": [settings.demo_account],
    })
    .to_string();
    let id = format!("msg_{}", ulid::Ulid::new());
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = standardwebhooks::Webhook::new(&settings.generic_secret)
        .and_then(|w| w.sign(&id, ts, sample.as_bytes()))
        .map_err(|e| e.to_string())?;
    print_source_urls(&stack);
    println!("Send another post (this signature is valid for 5 minutes):\n");
    println!("curl -i {} -H 'content-type: application/json' -H 'webhook-id: {id}' -H 'webhook-timestamp: {ts}' -H 'webhook-signature: {signature}' -d '{sample}'\n",
        stack.webhook_url());
    println!("Or sign and send any post request, at any time:");
    println!("  echo '{sample}' | cargo run -q -p instapipe-local -- send\n");
    // The demo key is public (README); a key of your own is not printed.
    let key = if settings.api_key == instapipe_local::settings::DEMO_API_KEY { settings.api_key.as_str() } else { "$INSTAPIPE_API_KEY" };
    println!("Posts API (contract at {}/openapi.yaml):", stack.base_url);
    println!("  curl -s '{}?limit=5' -H \"Authorization: Bearer {key}\"\n", stack.posts_url());
    // The local stack's endpoints and names; its AWS credentials are moto's fixed test values.
    let cli_env: Vec<String> = stack.cli_env().into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("Operator CLI against this stack (README, \"Operator CLI\"):");
    println!("  export {}", cli_env.join(" "));
    println!("  cargo run -q -p instapipe-cli -- posts list\n");
    println!("State changes of every post follow. Press Ctrl-C to stop.");
    let watch = async {
        loop {
            match stack.all_destinations().await {
                Ok(dests) => print_changes(&dests, &mut seen, started),
                Err(err) => eprintln!("cannot read the table: {err}"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    tokio::select! {
        _ = watch => Ok(()),
        signal = tokio::signal::ctrl_c() => signal.map_err(|e| e.to_string()),
    }
}

/// Where each source sends: the webhooks, the posts API, and where status webhooks go.
fn print_source_urls(stack: &LocalStack) {
    println!("\ninstapipe is serving:");
    println!("  generic webhook  {}", stack.webhook_url());
    println!("  Shopify          {}", stack.source_url("shopify"));
    println!("  Contentful       {}", stack.source_url("contentful"));
    println!("  WordPress        {}  (the plugin's endpoint URL)", stack.source_url("wordpress"));
    println!("  posts API        {}", stack.posts_url());
    match stack.settings.handler_vars.get("STATUS_WEBHOOK_URL") {
        Some(url) => println!("  status webhooks  → {url}"),
        None => println!("  status webhooks  off (set STATUS_WEBHOOK_URL, e.g. to the WordPress plugin's status route)"),
    }
}

/// Prints the state changes not printed yet, one line each.
fn print_changes(dests: &[Destination], seen: &mut HashSet<(String, String, DestState, i128)>, started: Instant) {
    for d in dests {
        for change in &d.history {
            let key = (d.post_id.clone(), d.account_id.clone(), change.state, change.at.unix_timestamp_nanos());
            if seen.insert(key) {
                println!(
                    "  [{:>7.2}s] post {} account {} → {:<10} {}",
                    started.elapsed().as_secs_f64(),
                    d.post_id,
                    d.account_id,
                    change.state.as_str(),
                    change.note.as_deref().unwrap_or("")
                );
            }
        }
    }
}

async fn send(file: Option<&str>) -> Result<(), String> {
    let settings = Settings::from_env()?;
    let mut body = String::new();
    match file {
        Some(path) if path != "-" => body = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?,
        _ => {
            std::io::stdin().read_to_string(&mut body).map_err(|e| e.to_string())?;
        }
    }
    let url = format!("http://127.0.0.1:{}/webhooks/generic", settings.http_port);
    let response = send_signed(&url, &settings.generic_secret, body.trim(), &format!("msg_{}", ulid::Ulid::new())).await?;
    println!("HTTP {} {}", response.status(), response.text().await.unwrap_or_default());
    Ok(())
}
