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
        None | Some("run") => run_until_stopped().await,
        Some("send") => send(args.get(1).map(String::as_str)).await,
        Some(other) => Err(format!("unknown command {other:?}; use `run` or `send [FILE]`")),
    };
    if let Err(err) = result {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

/// Runs the stack until SIGTERM, SIGINT or SIGHUP (a process manager, an IDE's stop button, `kill`,
/// Ctrl-C, a closed terminal), then stops it: dropping `run`'s future drops the stack, whose
/// services then stop (see `services.rs`; they also stop by themselves if this process is killed).
async fn run_until_stopped() -> Result<(), String> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut stop_signals = Vec::new();
    for (kind, name) in [(SignalKind::terminate(), "SIGTERM"), (SignalKind::interrupt(), "SIGINT"), (SignalKind::hangup(), "SIGHUP")] {
        stop_signals.push((signal(kind).map_err(|e| format!("cannot handle {name}: {e}"))?, name));
    }
    let stopped = first_signal(stop_signals);
    tokio::select! {
        result = run() => result,
        name = stopped => {
            eprintln!("\n{name}: stopping the local stack ...");
            Ok(())
        }
    }
}

/// The name of the first of `signals` to arrive.
async fn first_signal(mut signals: Vec<(tokio::signal::unix::Signal, &'static str)>) -> &'static str {
    std::future::poll_fn(|cx| {
        for (signal, name) in &mut signals {
            if signal.poll_recv(cx).is_ready() {
                return std::task::Poll::Ready(*name);
            }
        }
        std::task::Poll::Pending
    })
    .await
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
    // The local stack's endpoints and names (its AWS credentials are moto's fixed test values),
    // for the CLI's --local / --env-file, from now until the stack stops.
    let env_file = CliEnvFile::write(&settings, &stack.cli_env())?;

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

    // A second account, connected the way an operator would: Instagram Login through the
    // public function's /oauth/start and /oauth/callback, against the simulator's login page.
    if stack.sim.is_some() {
        println!("\nConnecting a second demo account by Instagram Login ({}/oauth/start) ...", stack.base_url);
        let connected = stack.connect_by_oauth("instagram").await?;
        println!(
            "  connected account {} @{} ({} login), token expires {}",
            connected["account_id"].as_str().unwrap_or("?"),
            connected["username"].as_str().unwrap_or("?"),
            connected["flavour"].as_str().unwrap_or("?"),
            connected["token_expires_at"].as_str().unwrap_or("never"),
        );
        println!("  (from a terminal: cargo run -q -p instapipe-cli -- {} accounts connect --flavour instagram)", env_file.cli_option);
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
    println!("Operator CLI against this stack (README, \"Operator CLI\"; its settings are in {}):", env_file.shown);
    println!("  cargo run -q -p instapipe-cli -- {} posts list\n", env_file.cli_option);
    // An MCP session on stdin: initialize, then one tool call; the server answers and exits.
    let mcp_session = r#"'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"shell","version":"1"}}}' '{"jsonrpc":"2.0","method":"notifications/initialized"}' '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_posts","arguments":{"limit":1}}}'"#;
    println!("MCP server for AI assistants (README, \"MCP server\"), tried over stdio:");
    println!("  printf '%s\\n' {mcp_session} \\\n    | INSTAPIPE_API_URL={} INSTAPIPE_API_KEY={key} cargo run -q -p instapipe-cli -- mcp\n", stack.base_url);
    println!("State changes of every post follow. Press Ctrl-C to stop.");
    loop {
        match stack.all_destinations().await {
            Ok(dests) => print_changes(&dests, &mut seen, started),
            Err(err) => eprintln!("cannot read the table: {err}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `.instapipe/local.env` (or `INSTAPIPE_ENV_FILE`): the CLI's environment for this stack, in
/// `KEY=value` lines. Removed when the stack stops (a stale one would point at closed ports).
struct CliEnvFile {
    path: std::path::PathBuf,
    /// The path as the banner shows it: relative to the project root when it is inside.
    shown: String,
    /// What tells the CLI to read it: `--local` for the default place, else `--env-file PATH`.
    cli_option: String,
}

impl CliEnvFile {
    fn write(settings: &Settings, vars: &[(&str, String)]) -> Result<CliEnvFile, String> {
        let default = settings.root.join(".instapipe/local.env");
        let given = std::env::var_os("INSTAPIPE_ENV_FILE").filter(|p| !p.is_empty()).map(std::path::PathBuf::from);
        let is_default = given.is_none();
        let path = given.unwrap_or(default);
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        // Absolute, so the path the file and the banner show works from any directory.
        let path = match (dir.canonicalize(), path.file_name()) {
            (Ok(dir), Some(name)) => dir.join(name),
            _ => path,
        };
        let mut text = format!(
            "# The operator CLI's settings for the local stack of instapipe-local (pid {}), removed when it stops.\n\
             # cargo run -q -p instapipe-cli -- --env-file {} posts list\n",
            std::process::id(),
            path.display()
        );
        for (name, value) in vars {
            // dotenv reads a single-quoted value literally (JSON such as ROUTING_CONFIG).
            let plain = value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:@+=,".contains(&b));
            if plain || value.contains('\'') {
                text.push_str(&format!("{name}={value}\n"));
            } else {
                text.push_str(&format!("{name}='{value}'\n"));
            }
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let root = settings.root.canonicalize().unwrap_or_else(|_| settings.root.clone());
        let shown = path.strip_prefix(&root).map_or_else(|_| path.display().to_string(), |p| p.display().to_string());
        let cli_option = if is_default { "--local".to_string() } else { format!("--env-file {}", path.display()) };
        Ok(CliEnvFile { path, shown, cli_option })
    }
}

impl Drop for CliEnvFile {
    fn drop(&mut self) {
        // Only while it is still this stack's (another stack may have written the same file since).
        let ours = format!("(pid {})", std::process::id());
        if std::fs::read_to_string(&self.path).is_ok_and(|text| text.lines().next().is_some_and(|l| l.contains(&ours))) {
            let _ = std::fs::remove_file(&self.path);
        }
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
