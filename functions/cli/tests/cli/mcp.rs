//! `instapipe mcp` end to end: an MCP client (rmcp's) starts the server as a child process
//! against the local stack's posts API, lists the tools and their schemas, creates a post that
//! reaches PUBLISHED on the Graph API simulator, schedules one and cancels it, reschedules one,
//! and sends bad arguments that must come back as tool errors with nothing written.

use std::time::Duration;

use graph_sim::SimConfig;
use instapipe_local::LocalStack;
use instapipe_local::settings::Settings;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use rmcp::ServiceExt;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const ACCOUNT: &str = "17841400000000001";

type Client = RunningService<RoleClient, ()>;

async fn stack() -> LocalStack {
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("warn").try_init();
    let mut settings = Settings::for_tests();
    settings.set("POLL_INLINE_CHECKS_MS", "200,300,500").set("POLL_INTERVAL_SECS", "1").set("POLL_MAX_INTERVAL_SECS", "2");
    let sim = SimConfig { image_delay: Duration::from_millis(300), ..SimConfig::default() };
    let stack = LocalStack::start(settings, sim).await.expect("the local stack starts (did `make deps` run?)");
    stack.add_account(ACCOUNT, "IGAA-mcp-token").await.unwrap();
    stack
}

/// `instapipe mcp`, configured only through its environment (no AWS settings at all).
async fn start_server(stack: &LocalStack) -> Client {
    let command = tokio::process::Command::new(env!("CARGO_BIN_EXE_instapipe")).configure(|cmd| {
        cmd.arg("mcp")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("INSTAPIPE_API_URL", &stack.base_url)
            .env("INSTAPIPE_API_KEY", &stack.settings.api_key);
    });
    ().serve(TokioChildProcess::new(command).unwrap()).await.expect("the MCP session starts")
}

fn args(value: Value) -> serde_json::Map<String, Value> {
    value.as_object().expect("arguments are an object").clone()
}

async fn call(client: &Client, tool: &'static str, arguments: Value) -> CallToolResult {
    client.call_tool(CallToolRequestParams::new(tool).with_arguments(args(arguments))).await.expect("the call is answered")
}

/// The result's JSON; fails the test on a tool error.
async fn ok(client: &Client, tool: &'static str, arguments: Value) -> Value {
    let result = call(client, tool, arguments.clone()).await;
    assert_ne!(result.is_error, Some(true), "{tool} {arguments} failed: {}", text(&result));
    result.structured_content.clone().unwrap_or_else(|| serde_json::from_str(&text(&result)).unwrap())
}

/// A tool error's text; fails the test if the call succeeded.
async fn refused(client: &Client, tool: &'static str, arguments: Value) -> String {
    let result = call(client, tool, arguments.clone()).await;
    assert_eq!(result.is_error, Some(true), "{tool} {arguments} was accepted: {}", text(&result));
    text(&result)
}

fn text(result: &CallToolResult) -> String {
    result.content.iter().filter_map(|c| c.as_text()).map(|t| t.text.as_str()).collect::<Vec<_>>().join("\n")
}

fn image_post(caption: &str, publish_at: Option<OffsetDateTime>) -> Value {
    let mut post = json!({
        "caption": caption,
        "media": [{ "url": "https://cdn.example.com/mcp.jpg", "type": "image", "alt_text": "a test image" }],
        "accounts": [ACCOUNT],
    });
    if let Some(at) = publish_at {
        post["publish_at"] = json!(at.format(&Rfc3339).unwrap());
    }
    post
}

async fn get_until(client: &Client, post_id: &str, state: &str, timeout: Duration) -> Value {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let post = ok(client, "get_post", json!({ "post_id": post_id })).await;
        if post["state"] == state {
            return post;
        }
        assert!(tokio::time::Instant::now() < deadline, "post {post_id} not {state} in time: {post}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Items of posts and deliveries in the table (not accounts or keys).
async fn post_items(stack: &LocalStack) -> usize {
    let out = stack.clients.dynamodb.scan().table_name(stack.config.table_name()).send().await.unwrap();
    out.items()
        .iter()
        .filter(|i| i.get("pk").and_then(|v| v.as_s().ok()).is_some_and(|pk| pk.starts_with("POST#") || pk.starts_with("DELIVERY#")))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assistant_posts_through_the_mcp_server() {
    let stack = stack().await;
    let client = start_server(&stack).await;

    // The tools, with schemas generated from the API's types.
    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    names.sort();
    assert_eq!(names, ["cancel_post", "create_post", "get_post", "list_posts", "reschedule_post"]);
    let create = tools.iter().find(|t| t.name == "create_post").unwrap();
    let input = create.schema_as_json_value();
    assert_eq!(input["type"], "object");
    let required: Vec<_> = input["required"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(required, ["media", "accounts"], "{input}");
    for field in ["caption", "publish_at", "options", "idempotency_key"] {
        assert!(input["properties"].get(field).is_some(), "create_post lacks {field}: {input}");
    }
    let description = create.description.as_deref().unwrap();
    for limit in ["2200 characters", "30 hashtags", "JPEG only", "https://"] {
        assert!(description.contains(limit), "the description should tell {limit:?}: {description}");
    }
    let output = serde_json::to_string(create.output_schema.as_ref().expect("an output schema")).unwrap();
    assert!(output.contains("permalink") && output.contains("destinations"), "{output}");
    for tool in ["get_post", "cancel_post", "reschedule_post"] {
        let t = tools.iter().find(|t| t.name == tool).unwrap();
        assert!(t.schema_as_json_value()["properties"].get("post_id").is_some(), "{tool}");
    }

    // Bad arguments: tool errors naming the field as the API does, and nothing written.
    let before = post_items(&stack).await;
    let mut http_media = image_post("over http", None);
    http_media["media"][0]["url"] = json!("http://cdn.example.com/mcp.jpg");
    let said = refused(&client, "create_post", http_media).await;
    assert!(said.starts_with("media[0].url: must be an https:// URL"), "{said}");
    let said = refused(&client, "create_post", image_post(&"x".repeat(2201), None)).await;
    assert!(said.starts_with("caption: longer than 2200 characters"), "{said}");
    let mut unknown = image_post("with a colour", None);
    unknown["colour"] = json!("red");
    let said = refused(&client, "create_post", unknown).await;
    assert!(said.contains("unknown field `colour`"), "{said}");
    let said = refused(&client, "get_post", json!({ "post_id": "01JD0000000000000000000000", "colour": "red" })).await;
    assert!(said.starts_with("colour: unknown field"), "{said}");
    let said = refused(&client, "list_posts", json!({ "state": "DONE" })).await;
    assert!(said.starts_with("state: "), "{said}");
    assert_eq!(post_items(&stack).await, before, "a refused call wrote nothing");
    assert!(stack.sim.as_ref().unwrap().published().is_empty());

    // A post now: PUBLISHED on the simulator, read back with its permalink.
    let mut first = image_post("Posted by an assistant", None);
    first["idempotency_key"] = json!("mcp-test-1");
    let created = ok(&client, "create_post", first.clone()).await;
    let post_id = created["post_id"].as_str().expect("a post id").to_string();
    let post = get_until(&client, &post_id, "PUBLISHED", Duration::from_secs(60)).await;
    let destination = &post["destinations"][0];
    assert_eq!(destination["account_id"], ACCOUNT);
    let permalink = destination["permalink"].as_str().expect("a permalink once published");
    let published: Vec<_> =
        stack.sim.as_ref().unwrap().published().into_iter().filter(|m| m.caption.as_deref() == Some("Posted by an assistant")).collect();
    assert_eq!(published.len(), 1);
    assert_eq!(destination["media_id"].as_str(), Some(published[0].media_id.as_str()));
    assert!(permalink.starts_with("https://"), "{permalink}");
    // The same idempotency key again: the same post, not a second one.
    let replay = ok(&client, "create_post", first).await;
    assert_eq!(replay["post_id"], post_id.as_str());

    // A post for later, cancelled: never published.
    let later = OffsetDateTime::now_utc() + time::Duration::hours(2);
    let scheduled = ok(&client, "create_post", image_post("For later, then cancelled", Some(later))).await;
    assert_eq!(scheduled["state"], "SCHEDULED");
    let scheduled_id = scheduled["post_id"].as_str().unwrap().to_string();
    let cancelled = ok(&client, "cancel_post", json!({ "post_id": scheduled_id })).await;
    assert_eq!(cancelled["state"], "CANCELLED");
    assert_eq!(cancelled["destinations"][0]["state"], "CANCELLED");
    let listed = ok(&client, "list_posts", json!({ "state": "CANCELLED", "limit": 10 })).await;
    let ids: Vec<_> = listed["posts"].as_array().unwrap().iter().filter_map(|p| p["post_id"].as_str()).collect();
    assert_eq!(ids, [scheduled_id.as_str()], "{listed}");
    let said = refused(&client, "reschedule_post", json!({ "post_id": scheduled_id, "caption": "too late" })).await;
    assert!(said.contains("already_final"), "{said}");

    // Rescheduled: a new time and caption; a caption over the limit is refused by name.
    let rescheduled = ok(&client, "create_post", image_post("To be moved", Some(later))).await;
    let moved_id = rescheduled["post_id"].as_str().unwrap().to_string();
    let new_time = (later + time::Duration::hours(1)).replace_nanosecond(0).unwrap();
    let moved = ok(&client, "reschedule_post", json!({ "post_id": moved_id, "publish_at": new_time.format(&Rfc3339).unwrap(), "caption": "Moved" })).await;
    assert_eq!(moved["publish_at"], new_time.format(&Rfc3339).unwrap().as_str());
    assert_eq!(moved["caption"], "Moved");
    let said = refused(&client, "reschedule_post", json!({ "post_id": moved_id, "caption": "y".repeat(2201) })).await;
    assert!(said.starts_with("caption: longer than 2200 characters"), "{said}");
    assert_eq!(ok(&client, "get_post", json!({ "post_id": moved_id })).await["caption"], "Moved");

    tokio::time::sleep(Duration::from_millis(500)).await;
    let captions: Vec<_> = stack.sim.as_ref().unwrap().published().into_iter().filter_map(|m| m.caption).collect();
    assert_eq!(captions, ["Posted by an assistant"], "only the post for now was published");
    client.cancel().await.unwrap();
}

/// Without its settings the server says which variable is missing, and never takes the key as an argument.
#[test]
fn the_server_needs_its_environment() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_instapipe"))
        .arg("mcp")
        .env_clear()
        .env("INSTAPIPE_API_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("INSTAPIPE_API_KEY"), "{stderr}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_instapipe")).args(["mcp", "--api-key", "k"]).output().unwrap();
    assert!(!out.status.success(), "no --api-key flag");
}
