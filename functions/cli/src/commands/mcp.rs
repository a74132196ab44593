//! `instapipe mcp`: an MCP server over stdio that lets an AI assistant create, read, list,
//! cancel and reschedule posts through the posts API of a deployment (or the local stack).
//!
//! The server holds no rules of its own: it forwards each tool's arguments to the API, so a
//! refusal is the API's, naming the field exactly as the API does, and nothing is written.
//! The tools' JSON Schemas are generated from the API's own request and response types
//! (instapipe-core's `schema` feature), so they cannot drift from what the API accepts.

use std::sync::Arc;
use std::time::Duration;

use instapipe_core::handlers::posts_api::changes::PostEdit;
use instapipe_core::handlers::posts_api::{MAX_LIMIT, PostView, PostsPage};
use instapipe_core::post::DestState;
use instapipe_core::sources::generic::GenericPostBody;
use instapipe_core::sources::{MAX_ACCOUNTS, MAX_CAPTION_CHARS, MAX_CAROUSEL_ITEMS, MAX_HASHTAGS, MAX_MENTIONS};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler, ServiceExt};
use schemars::JsonSchema;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use super::CliError;

/// The deployment's base URL (the posts API is `<base>/posts`).
pub const API_URL_VAR: &str = "INSTAPIPE_API_URL";
/// A posts-API key; read from the environment only, as process lists show arguments.
pub const API_KEY_VAR: &str = "INSTAPIPE_API_KEY";

const TIMEOUT: Duration = Duration::from_secs(30);

/// `create_post`'s arguments: the body of `POST /posts`, plus its `Idempotency-Key` header.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct CreatePostArgs {
    #[serde(flatten)]
    body: GenericPostBody,
    /// Sent as the Idempotency-Key header: the same key again returns the post it made
    /// instead of making a second one (1 to 255 printable ASCII characters without spaces).
    /// Use one whenever a call may be repeated.
    idempotency_key: Option<String>,
}

/// A post, by the id `create_post` or `list_posts` returned.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct PostIdArgs {
    /// The post's id (a ULID such as 01JD3…).
    post_id: String,
}

/// `reschedule_post`'s arguments: the post, and the body of `PATCH /posts/{id}`.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ReschedulePostArgs {
    /// The post's id (a ULID such as 01JD3…).
    post_id: String,
    #[serde(flatten)]
    change: PostEdit,
}

/// `list_posts`'s arguments: the query parameters of `GET /posts`.
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct ListPostsArgs {
    /// Only posts with an account in this state.
    state: Option<DestState>,
    /// Only posts to this Instagram account id (digits).
    account: Option<String>,
    /// Posts per page, 1 to 100 (default 20). A page may hold fewer.
    #[schemars(range(min = 1, max = 100))]
    limit: Option<u32>,
    /// `next_cursor` of the previous page, with the same filters.
    cursor: Option<String>,
}

/// The tools, their descriptions and schemas.
pub fn tools() -> Vec<Tool> {
    let limits = format!(
        "Instagram's limits, checked before anything is stored: media URLs must be public https:// URLs \
         (images JPEG only; videos MP4/MOV); a caption has at most {MAX_CAPTION_CHARS} characters, \
         {MAX_HASHTAGS} hashtags and {MAX_MENTIONS} @-mentions; a carousel has 2 to {MAX_CAROUSEL_ITEMS} items; \
         a story has exactly one item and no collaborators or location; at most 3 collaborators; \
         up to {MAX_ACCOUNTS} accounts (Instagram account ids, digits) per post. \
         Instagram allows about 50 published posts per account per 24 hours."
    );
    let post_out = |tool: Tool| tool.with_output_schema::<PostView>();
    vec![
        post_out(Tool::new(
            "create_post",
            format!(
                "Schedule an Instagram post to one or more accounts. One image (type image) is a feed post; \
                 one video is a Reel (options.reel for cover, thumb offset, share to feed, audio name); \
                 2 to {MAX_CAROUSEL_ITEMS} items make a carousel; options.placement \"story\" makes a story. \
                 publish_at (RFC 3339, e.g. 2026-12-24T09:00:00Z) schedules it; absent or past publishes now. \
                 Optional: alt_text and user_tags per image, options.first_comment, options.location_id, \
                 options.collaborators. {limits} Returns the post with its post_id and state per account; \
                 follow it with get_post. A refusal names the field (e.g. media[0].url) and stores nothing."
            ),
            Arc::new(Map::new()),
        )
        .with_input_schema::<CreatePostArgs>()
        .with_annotations(ToolAnnotations::new().read_only(false).destructive(false).idempotent(false).open_world(true))),
        post_out(Tool::new(
            "get_post",
            "Read a post: its overall state (SCHEDULED, IN_PROGRESS, PUBLISHED, PARTIALLY_FAILED, FAILED, CANCELLED) \
             and per account its state, Instagram media id, permalink once PUBLISHED, the failure reason if it \
             failed, and the history of its state changes.",
            Arc::new(Map::new()),
        )
        .with_input_schema::<PostIdArgs>()
        .with_annotations(ToolAnnotations::new().read_only(true).open_world(false))),
        Tool::new(
            "list_posts",
            format!(
                "List posts, newest first, optionally only those with an account in a given state or to a given \
                 account. Up to {MAX_LIMIT} per page; when next_cursor is not null, call again with it as cursor \
                 (and the same filters) for the next page."
            ),
            Arc::new(Map::new()),
        )
        .with_input_schema::<ListPostsArgs>()
        .with_output_schema::<PostsPage>()
        .with_annotations(ToolAnnotations::new().read_only(true).open_world(false)),
        post_out(Tool::new(
            "cancel_post",
            "Cancel a post on every account where it is not yet being published, and delete its schedules. \
             Refused once Instagram is publishing it to an account. Cancelling again changes nothing.",
            Arc::new(Map::new()),
        )
        .with_input_schema::<PostIdArgs>()
        .with_annotations(ToolAnnotations::new().read_only(false).destructive(true).idempotent(true).open_world(false))),
        post_out(Tool::new(
            "reschedule_post",
            format!(
                "Change a scheduled post's publish_at (RFC 3339; past means now), its caption, or both. Only while \
                 every open account is still SCHEDULED; otherwise cancel it. The caption limits hold \
                 ({MAX_CAPTION_CHARS} characters, {MAX_HASHTAGS} hashtags, {MAX_MENTIONS} @-mentions)."
            ),
            Arc::new(Map::new()),
        )
        .with_input_schema::<ReschedulePostArgs>()
        .with_annotations(ToolAnnotations::new().read_only(false).destructive(false).idempotent(true).open_world(false))),
    ]
}

/// A client of the posts API. The key goes only into the Authorization header.
#[derive(Clone)]
pub struct PostsApi {
    base_url: String,
    key: SecretString,
    http: reqwest::Client,
}

impl PostsApi {
    pub fn new(base_url: &str, key: SecretString) -> Result<PostsApi, CliError> {
        let base_url = base_url.trim().trim_end_matches('/').to_string();
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(CliError(format!("{API_URL_VAR} must be an http(s) URL, such as https://abc123.execute-api.eu-west-1.amazonaws.com")));
        }
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .user_agent(concat!("instapipe-mcp/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CliError(format!("cannot make an HTTP client: {e}")))?;
        Ok(PostsApi { base_url, key, http })
    }

    pub fn from_env() -> Result<PostsApi, CliError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let url = var(API_URL_VAR).ok_or_else(|| CliError(format!("set {API_URL_VAR} to the deployment's base URL")))?;
        let key = var(API_KEY_VAR).ok_or_else(|| CliError(format!("set {API_KEY_VAR} to a posts-API key")))?;
        PostsApi::new(&url, SecretString::from(key))
    }

    /// One request; the answer as the tool's result: the JSON on 2xx, otherwise a tool error
    /// with the API's own words (its field and message).
    async fn call(&self, request: ApiRequest) -> CallToolResult {
        let url = format!("{}{}", self.base_url, request.path);
        let mut builder = self.http.request(request.method, &url).bearer_auth(self.key.expose_secret()).query(&request.query);
        if let Some(key) = &request.idempotency_key {
            builder = builder.header("Idempotency-Key", key);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let response = match builder.send().await {
            Ok(response) => response,
            // reqwest's error names the URL, never the headers.
            Err(err) => return tool_error(format!("cannot reach the posts API: {err}")),
        };
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return CallToolResult::structured(json);
        }
        let error = &json["error"];
        let message = error["message"].as_str().map_or_else(|| text.chars().take(500).collect(), str::to_string);
        let said = match error["field"].as_str() {
            Some(field) => format!("{field}: {message}"),
            None => message,
        };
        let code = error["code"].as_str().unwrap_or("error");
        let mut result = tool_error(format!("{said} (HTTP {}, {code})", status.as_u16()));
        if !error.is_null() {
            result.content.push(ContentBlock::text(json.to_string()));
        }
        result
    }
}

struct ApiRequest {
    method: reqwest::Method,
    path: String,
    query: Vec<(String, String)>,
    body: Option<Value>,
    idempotency_key: Option<String>,
}

impl ApiRequest {
    fn new(method: reqwest::Method, path: String) -> ApiRequest {
        ApiRequest { method, path, query: Vec::new(), body: None, idempotency_key: None }
    }
}

fn tool_error(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

/// Takes a string argument the tool itself uses (not one the API reads).
fn take_string(args: &mut Map<String, Value>, name: &str, required: bool) -> Result<Option<String>, CallToolResult> {
    match args.remove(name) {
        Some(Value::String(s)) => Ok(Some(s)),
        None | Some(Value::Null) if !required => Ok(None),
        None | Some(Value::Null) => Err(tool_error(format!("{name}: required"))),
        Some(_) => Err(tool_error(format!("{name}: must be a string"))),
    }
}

/// `/posts/{id}`; an id that could not be a post (ULIDs are alphanumeric) is answered as the API would.
fn post_path(post_id: &str) -> Result<String, CallToolResult> {
    if post_id.is_empty() || !post_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(tool_error(format!("no post {post_id} (HTTP 404, not_found)")));
    }
    Ok(format!("/posts/{post_id}"))
}

fn refuse_unknown(args: &Map<String, Value>) -> Result<(), CallToolResult> {
    match args.keys().next() {
        Some(name) => Err(tool_error(format!("{name}: unknown field; the only argument is post_id"))),
        None => Ok(()),
    }
}

/// What each tool sends to the API.
fn request_for(tool: &str, mut args: Map<String, Value>) -> Result<ApiRequest, CallToolResult> {
    use reqwest::Method;
    match tool {
        "create_post" => {
            let idempotency_key = take_string(&mut args, "idempotency_key", false)?;
            Ok(ApiRequest { body: Some(Value::Object(args)), idempotency_key, ..ApiRequest::new(Method::POST, "/posts".into()) })
        }
        "get_post" | "cancel_post" => {
            let post_id = take_string(&mut args, "post_id", true)?.unwrap_or_default();
            refuse_unknown(&args)?;
            let method = if tool == "get_post" { Method::GET } else { Method::DELETE };
            Ok(ApiRequest::new(method, post_path(&post_id)?))
        }
        "reschedule_post" => {
            let post_id = take_string(&mut args, "post_id", true)?.unwrap_or_default();
            Ok(ApiRequest { body: Some(Value::Object(args)), ..ApiRequest::new(Method::PATCH, post_path(&post_id)?) })
        }
        "list_posts" => {
            // Every argument is a query parameter; the API refuses unknown ones by name.
            let query = args
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                }))
                .collect();
            Ok(ApiRequest { query, ..ApiRequest::new(Method::GET, "/posts".into()) })
        }
        other => Err(tool_error(format!("no tool {other}; the tools are create_post, get_post, list_posts, cancel_post, reschedule_post"))),
    }
}

/// The MCP server: the tools over one [`PostsApi`].
#[derive(Clone)]
pub struct PostsServer {
    api: PostsApi,
    tools: Arc<Vec<Tool>>,
}

impl PostsServer {
    pub fn new(api: PostsApi) -> PostsServer {
        PostsServer { api, tools: Arc::new(tools()) }
    }

    pub async fn call_tool(&self, name: &str, args: Map<String, Value>) -> CallToolResult {
        match request_for(name, args) {
            Ok(request) => self.api.call(request).await,
            Err(refused) => refused,
        }
    }
}

impl ServerHandler for PostsServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("instapipe", env!("CARGO_PKG_VERSION")).with_title("instapipe posts"))
            .with_instructions(
                "Schedule and follow Instagram posts through instapipe. create_post stores a post and returns its \
                 post_id; it is then published at publish_at (or now) to each account; get_post shows its state per \
                 account and, once PUBLISHED, the permalink. A tool error names the refused field and nothing was stored.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        Ok(PostsServer::call_tool(self, &request.name, request.arguments.unwrap_or_default()).await.into())
    }
}

/// Serves the tools over stdin/stdout until the client hangs up.
pub async fn serve_from_env() -> Result<(), CliError> {
    let server = PostsServer::new(PostsApi::from_env()?);
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| CliError(format!("the MCP session did not start: {e}")))?;
    running.waiting().await.map_err(|e| CliError(format!("the MCP server stopped: {e}")))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(name: &str) -> Value {
        let tool = tools().into_iter().find(|t| t.name == name).unwrap();
        tool.schema_as_json_value()
    }

    #[test]
    fn schemas_come_from_the_api_types() {
        let create = schema("create_post");
        let props = &create["properties"];
        for field in ["caption", "media", "accounts", "publish_at", "options", "idempotency_key"] {
            assert!(props.get(field).is_some(), "create_post lacks {field}: {create}");
        }
        let required: Vec<_> = create["required"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert_eq!(required, ["media", "accounts"], "{create}");
        // The API refuses unknown fields; the schema says so.
        assert_eq!(create["additionalProperties"], false, "{create}");
        assert_eq!(create["properties"]["publish_at"]["format"], "date-time", "{create}");
        // The media item's kinds are the API's enum.
        let text = create.to_string();
        assert!(text.contains("\"image\"") && text.contains("\"video\""), "{text}");

        let reschedule = schema("reschedule_post");
        for field in ["post_id", "publish_at", "caption"] {
            assert!(reschedule["properties"].get(field).is_some(), "{reschedule}");
        }
        assert_eq!(reschedule["additionalProperties"], false, "{reschedule}");
        let list = schema("list_posts").to_string();
        assert!(list.contains("AWAITING_AUTH"), "the states are DestState's: {list}");
    }

    #[test]
    fn tool_arguments_that_are_the_tools_own_are_checked() {
        let args = |v: Value| v.as_object().unwrap().clone();
        let refused = |r: Result<ApiRequest, CallToolResult>| match r {
            Err(result) => {
                assert_eq!(result.is_error, Some(true));
                format!("{:?}", result.content)
            }
            Ok(_) => panic!("accepted"),
        };
        assert!(refused(request_for("get_post", args(serde_json::json!({})))).contains("post_id: required"));
        assert!(refused(request_for("cancel_post", args(serde_json::json!({"post_id": "01J", "x": 1})))).contains("x: unknown field"));
        assert!(refused(request_for("get_post", args(serde_json::json!({"post_id": "../openapi.yaml"})))).contains("not_found"));
        let create = request_for("create_post", args(serde_json::json!({"caption": "c", "idempotency_key": "k1"}))).unwrap();
        assert_eq!(create.idempotency_key.as_deref(), Some("k1"));
        assert_eq!(create.body, Some(serde_json::json!({"caption": "c"})));
        let list = request_for("list_posts", args(serde_json::json!({"state": "PUBLISHED", "limit": 5}))).unwrap();
        assert_eq!(list.query, [("limit".to_string(), "5".to_string()), ("state".to_string(), "PUBLISHED".to_string())]);
    }
}
