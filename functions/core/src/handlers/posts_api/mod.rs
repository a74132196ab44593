//! The posts API: create, read, list, cancel and edit posts over HTTP with an API key
//! (`Authorization: Bearer <key>`), served by the same function as the webhooks.
//! Its contract is openapi.yaml at the repository root, served at `GET /openapi.yaml`.

pub mod changes;
pub mod cursor;
mod list;
mod view;

#[cfg(test)]
mod tests;

use http::Method;
use lambda_http::{Body, Request, Response};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::edge;
use crate::deps::Ingest;
use crate::intake::{Accepted, Intake, Submission, new_post_id};
use crate::post::{Destination, Post};
use crate::sources::mapped::DedupeKey;
use crate::sources::{RequestError, generic};
use crate::store::api_keys::{self, ApiKey};
use changes::{not_found, unavailable};
pub use view::{DestinationView, PostView, PostsPage};

/// The contract, kept in the repository and served as is.
pub const OPENAPI_YAML: &str = include_str!("../../../../../openapi.yaml");

/// Deliveries of this API are recorded under this source, keyed by the API key's hash and the
/// Idempotency-Key.
pub const SOURCE: &str = "api";

pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 100;
const MAX_IDEMPOTENCY_KEY_CHARS: usize = 255;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    CreatePost,
    ListPosts,
    GetPost,
    EditPost,
    CancelPost,
    OpenApi,
}

pub struct Route {
    pub method: Method,
    /// `{id}` stands for one path segment.
    pub path: &'static str,
    pub operation: Operation,
    pub needs_key: bool,
}

/// Every route this module serves (a test checks each is in openapi.yaml).
pub const ROUTES: &[Route] = &[
    Route { method: Method::POST, path: "/posts", operation: Operation::CreatePost, needs_key: true },
    Route { method: Method::GET, path: "/posts", operation: Operation::ListPosts, needs_key: true },
    Route { method: Method::GET, path: "/posts/{id}", operation: Operation::GetPost, needs_key: true },
    Route { method: Method::PATCH, path: "/posts/{id}", operation: Operation::EditPost, needs_key: true },
    Route { method: Method::DELETE, path: "/posts/{id}", operation: Operation::CancelPost, needs_key: true },
    Route { method: Method::GET, path: "/openapi.yaml", operation: Operation::OpenApi, needs_key: false },
];

/// Answers requests to `/posts…` and `/openapi.yaml`; `None` for any other path.
pub async fn handle(deps: &Ingest, request: &Request) -> Option<Response<Body>> {
    let path = request.uri().path().trim_end_matches('/');
    let ours = path == "/posts" || path.starts_with("/posts/") || path == "/openapi.yaml";
    if !ours {
        return None;
    }
    let result = dispatch(deps, request, path).await;
    Some(result.unwrap_or_else(|err| {
        let mut response = edge::error(&err);
        if err.status == 401 {
            response.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        }
        if err.status == 405 {
            edge::allow(&mut response, &allowed_methods(path));
        }
        response
    }))
}

async fn dispatch(deps: &Ingest, request: &Request, path: &str) -> Result<Response<Body>, RequestError> {
    let matching: Vec<(&Route, Option<&str>)> =
        ROUTES.iter().filter_map(|r| match_path(r.path, path).map(|id| (r, id))).collect();
    // The key is checked before anything about the path is told.
    let key = match matching.first().is_none_or(|(r, _)| r.needs_key) {
        true => Some(authenticate(deps, request).await?),
        false => None,
    };
    let Some(&(route, id)) = matching.iter().find(|(r, _)| r.method == request.method()) else {
        return Err(match matching.is_empty() {
            true => RequestError::new(404, "not_found", format!("no route for {path}")),
            false => RequestError::new(405, "method_not_allowed", format!("use {}", allowed_methods(path).join(", "))),
        });
    };
    let id = id.unwrap_or_default();
    // Every route but the contract has a key by now.
    let key = || key.as_ref().ok_or_else(unauthorized);
    match route.operation {
        Operation::OpenApi => Ok(Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, "application/yaml")
            .body(Body::Text(OPENAPI_YAML.to_string()))
            .expect("static parts are valid")),
        Operation::CreatePost => create(deps, request, writer(key()?)?).await,
        Operation::ListPosts => list::list(deps, request, key()?).await,
        Operation::GetPost => in_post_span(id, get(deps, id, key()?)).await,
        Operation::EditPost => in_post_span(id, edit(deps, request, id, writer(key()?)?)).await,
        Operation::CancelPost => in_post_span(id, cancel(deps, id, writer(key()?)?)).await,
    }
}

/// The key, if it may write: a read-only key is refused whatever the post, so the answer
/// tells nothing about it.
fn writer(key: &ApiKey) -> Result<&ApiKey, RequestError> {
    match key.scope.can_write() {
        true => Ok(key),
        false => Err(RequestError::new(403, "read_only_key", "this API key may only read posts")),
    }
}

/// The methods served at `path` (the `Allow` header of a 405).
fn allowed_methods(path: &str) -> Vec<&'static str> {
    ROUTES.iter().filter(|r| match_path(r.path, path).is_some()).map(|r| r.method.as_str()).collect()
}

async fn in_post_span<F: Future<Output = Result<Response<Body>, RequestError>>>(
    post_id: &str,
    work: F,
) -> Result<Response<Body>, RequestError> {
    work.instrument(tracing::info_span!("posts_api", post_id = %post_id)).await
}

/// `"/posts/{id}"` against `"/posts/01K…"`: `Some(Some("01K…"))`; against `"/posts"`: `Some(None)`.
fn match_path<'a>(template: &str, path: &'a str) -> Option<Option<&'a str>> {
    let (mut t, mut p) = (template.split('/'), path.split('/'));
    let mut id = None;
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(id),
            (Some("{id}"), Some(segment)) if !segment.is_empty() => id = Some(segment),
            (Some(a), Some(b)) if a == b => {}
            _ => return None,
        }
    }
}

fn unauthorized() -> RequestError {
    RequestError::new(401, "unauthorized", "a valid API key is required: send the header Authorization: Bearer <key>")
}

/// `Authorization: Bearer <key>`, whose SHA-256 must be registered: the key as registered,
/// with its scope. The key is never logged.
pub(crate) async fn authenticate(deps: &Ingest, request: &Request) -> Result<ApiKey, RequestError> {
    let header = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(unauthorized)?;
    let (scheme, key) = header.trim().split_once(' ').ok_or_else(unauthorized)?;
    let key = key.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || key.is_empty() {
        return Err(unauthorized());
    }
    let key = deps.api_keys.find(&api_keys::hash(key)).await.map_err(unavailable)?.ok_or_else(unauthorized)?;
    // Only for the operator's `keys list`: a failure to note it never fails the request.
    if let Err(err) = deps.api_keys.touch(&key.hash, deps.clock.now()).await {
        tracing::warn!(error = %err, key_id = key.id(), "the API key's last use could not be recorded");
    }
    Ok(key)
}

/// `POST /posts`: 201 with the new post; with an `Idempotency-Key` this key sent before with
/// the same request, 200 with the post it made and `Idempotent-Replayed: true`; with another
/// request, 422 `idempotency_key_reused`. An account outside the key's scope is a 422 naming it
/// (as an unknown account is), decided by the scope alone, before any account is looked up.
async fn create(deps: &Ingest, request: &Request, key: &ApiKey) -> Result<Response<Body>, RequestError> {
    let body = edge::json_body(request)?;
    let idempotency_key = idempotency_key(request)?;
    let post_request = generic::parse(body)?;
    if let Some((index, account)) = post_request.accounts.iter().enumerate().find(|(_, a)| !key.scope.allows(a)) {
        return Err(RequestError::field(
            422,
            "account_not_allowed",
            format!("accounts[{index}]"),
            format!("this API key may not post to Instagram account {account}"),
        ));
    }
    let post_id = new_post_id();
    // Idempotency keys are the API key's own: another client's same string is another post.
    // Without one every request is a new post; its delivery is keyed by the post id.
    let event_id = match &idempotency_key {
        Some(idempotency_key) => format!("{}#{idempotency_key}", key.hash),
        None => post_id.clone(),
    };
    let fingerprint = idempotency_key.as_ref().map(|_| fingerprint(request, body));
    let submission = Submission {
        post_id,
        fingerprint: fingerprint.clone(),
        ..Submission::new(DedupeKey::new(SOURCE, event_id.clone()), post_request)
    };
    let accepted = Intake::new(deps.store.as_ref()).accept(submission, deps.clock.now()).await;
    match accepted.map_err(|refusal| refusal.into_request_error(unavailable))? {
        Accepted::Posted { post, destinations } => {
            let location = format!("/posts/{}", post.post_id);
            let mut response = edge::json(201, &PostView::new(post, destinations));
            if let Ok(value) = http::HeaderValue::from_str(&location) {
                response.headers_mut().insert(http::header::LOCATION, value);
            }
            Ok(response)
        }
        Accepted::Duplicate { post_id } => {
            let stored = deps.store.delivery_fingerprint(SOURCE, &event_id).await.map_err(unavailable)?;
            if stored.is_none() || stored != fingerprint {
                return Err(RequestError::field(
                    422,
                    "idempotency_key_reused",
                    "Idempotency-Key",
                    "this Idempotency-Key was used with another request; send a new key for a new post",
                ));
            }
            let (post, destinations) = load(deps, &post_id).await?;
            let mut response = edge::json(200, &PostView::new(post, destinations));
            response.headers_mut().insert("idempotent-replayed", http::HeaderValue::from_static("true"));
            Ok(response)
        }
        Accepted::Skipped { reason } => {
            // Not asked for: only routed sources skip.
            tracing::error!(%reason, "the intake skipped a posts API request");
            Err(RequestError::new(503, "unavailable", "the post could not be stored; retry later"))
        }
    }
}

/// What makes a request the same request: method, path and the body's JSON with its object
/// keys sorted (so key order and whitespace do not count), as hex SHA-256.
fn fingerprint(request: &Request, body: &[u8]) -> String {
    let mut canonical = String::new();
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(value) => canonical_json(&value, &mut canonical),
        // Only parsed bodies get here; raw bytes would do as well.
        Err(_) => canonical.push_str(&String::from_utf8_lossy(body)),
    }
    let mut hash = Sha256::new();
    hash.update(request.method().as_str().as_bytes());
    hash.update(b" ");
    hash.update(request.uri().path().trim_end_matches('/').as_bytes());
    hash.update(b"\n");
    hash.update(canonical.as_bytes());
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn canonical_json(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(v, out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The optional `Idempotency-Key`: printable ASCII, as it becomes part of a table key.
fn idempotency_key(request: &Request) -> Result<Option<String>, RequestError> {
    let Some(value) = request.headers().get("idempotency-key") else { return Ok(None) };
    let invalid = || {
        RequestError::field(
            400,
            "invalid_header",
            "Idempotency-Key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters without spaces"),
        )
    };
    let key = value.to_str().map_err(|_| invalid())?;
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_CHARS || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid());
    }
    Ok(Some(key.to_string()))
}

async fn load(deps: &Ingest, post_id: &str) -> Result<(Post, Vec<Destination>), RequestError> {
    let post = deps.store.get_post(post_id).await.map_err(unavailable)?.ok_or_else(|| not_found(post_id))?;
    let destinations = deps.store.list_destinations(post_id).await.map_err(unavailable)?;
    Ok((post, destinations))
}

/// Post ids are ULIDs; anything else cannot name a post.
fn check_post_id(id: &str) -> Result<(), RequestError> {
    ulid::Ulid::from_string(id).map(drop).map_err(|_| not_found(id))
}

/// The post, if it is one the key may see; another key's post is answered exactly as a post
/// that does not exist.
async fn load_visible(deps: &Ingest, post_id: &str, key: &ApiKey) -> Result<(Post, Vec<Destination>), RequestError> {
    check_post_id(post_id)?;
    let (post, destinations) = load(deps, post_id).await?;
    if !key.scope.sees(&post.accounts) {
        return Err(not_found(post_id));
    }
    Ok((post, destinations))
}

async fn get(deps: &Ingest, id: &str, key: &ApiKey) -> Result<Response<Body>, RequestError> {
    let (post, destinations) = load_visible(deps, id, key).await?;
    Ok(edge::json(200, &PostView::new(post, destinations)))
}

async fn cancel(deps: &Ingest, id: &str, key: &ApiKey) -> Result<Response<Body>, RequestError> {
    load_visible(deps, id, key).await?;
    let (post, destinations) = changes::cancel(deps, id).await?;
    Ok(edge::json(200, &PostView::new(post, destinations)))
}

/// The body is checked first, as before scopes: its errors are the same for any post, so they
/// tell nothing about whose it is.
async fn edit(deps: &Ingest, request: &Request, id: &str, key: &ApiKey) -> Result<Response<Body>, RequestError> {
    check_post_id(id)?;
    let body = edge::json_body(request)?;
    let change: changes::PostEdit = crate::sources::json::parse(body)?;
    load_visible(deps, id, key).await?;
    let (post, destinations) = changes::edit(deps, id, change).await?;
    Ok(edge::json(200, &PostView::new(post, destinations)))
}
