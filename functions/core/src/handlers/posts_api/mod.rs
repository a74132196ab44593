//! The posts API: create, read, list, cancel and edit posts over HTTP with an API key
//! (`Authorization: Bearer <key>`), served by the same function as the webhooks.
//! Its contract is openapi.yaml at the repository root, served at `GET /openapi.yaml`.

pub mod changes;
mod view;

#[cfg(test)]
mod tests;

use http::Method;
use futures::StreamExt;
use lambda_http::{Body, Request, Response};
use tracing::Instrument;

use super::edge;
use crate::store::api_keys;
use crate::deps::Ingest;
use crate::intake::{Accepted, Intake, Submission, new_post_id};
use crate::post::{DestState, Destination, Post};
use crate::sources::mapped::DedupeKey;
use crate::sources::{RequestError, generic};
use crate::store::DestinationQuery;
use changes::{not_found, unavailable};
pub use view::{DestinationView, PostView, PostsPage};

/// The contract, kept in the repository and served as is.
pub const OPENAPI_YAML: &str = include_str!("../../../../../openapi.yaml");

/// Deliveries of this API are recorded under this source, keyed by the Idempotency-Key.
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
    if matching.first().is_none_or(|(r, _)| r.needs_key) {
        authenticate(deps, request).await?;
    }
    let Some(&(route, id)) = matching.iter().find(|(r, _)| r.method == request.method()) else {
        return Err(match matching.is_empty() {
            true => RequestError::new(404, "not_found", format!("no route for {path}")),
            false => RequestError::new(405, "method_not_allowed", format!("use {}", allowed_methods(path).join(", "))),
        });
    };
    let id = id.unwrap_or_default();
    match route.operation {
        Operation::OpenApi => Ok(Response::builder()
            .status(200)
            .header(http::header::CONTENT_TYPE, "application/yaml")
            .body(Body::Text(OPENAPI_YAML.to_string()))
            .expect("static parts are valid")),
        Operation::CreatePost => create(deps, request).await,
        Operation::ListPosts => list(deps, request).await,
        Operation::GetPost => in_post_span(id, get(deps, id)).await,
        Operation::EditPost => in_post_span(id, edit(deps, request, id)).await,
        Operation::CancelPost => in_post_span(id, cancel(deps, id)).await,
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

/// `Authorization: Bearer <key>`, whose SHA-256 must be registered. The key is never logged.
pub(crate) async fn authenticate(deps: &Ingest, request: &Request) -> Result<(), RequestError> {
    let refused = || {
        RequestError::new(401, "unauthorized", "a valid API key is required: send the header Authorization: Bearer <key>")
    };
    let header = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(refused)?;
    let (scheme, key) = header.trim().split_once(' ').ok_or_else(refused)?;
    let key = key.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || key.is_empty() {
        return Err(refused());
    }
    match deps.api_keys.is_registered(&api_keys::hash(key)).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(refused()),
        Err(err) => Err(unavailable(err)),
    }
}

/// Post ids are ULIDs; anything else cannot name a post.
fn check_post_id(id: &str) -> Result<(), RequestError> {
    ulid::Ulid::from_string(id).map(drop).map_err(|_| not_found(id))
}

/// `POST /posts`: 201 with the new post; with an `Idempotency-Key` seen before, 200 with the
/// post it made and `Idempotent-Replayed: true`. An unknown account is a 422 naming it.
async fn create(deps: &Ingest, request: &Request) -> Result<Response<Body>, RequestError> {
    let body = edge::json_body(request)?;
    let idempotency_key = idempotency_key(request)?;
    let post_request = generic::parse(body)?;
    let post_id = new_post_id();
    // Without a key every request is a new post; its delivery is keyed by the post id.
    let event_id = idempotency_key.unwrap_or_else(|| post_id.clone());
    let submission = Submission { post_id, ..Submission::new(DedupeKey::new(SOURCE, event_id), post_request) };
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

async fn get(deps: &Ingest, id: &str) -> Result<Response<Body>, RequestError> {
    check_post_id(id)?;
    let (post, destinations) = load(deps, id).await?;
    Ok(edge::json(200, &PostView::new(post, destinations)))
}

async fn cancel(deps: &Ingest, id: &str) -> Result<Response<Body>, RequestError> {
    check_post_id(id)?;
    let (post, destinations) = changes::cancel(deps, id).await?;
    Ok(edge::json(200, &PostView::new(post, destinations)))
}

async fn edit(deps: &Ingest, request: &Request, id: &str) -> Result<Response<Body>, RequestError> {
    check_post_id(id)?;
    let body = edge::json_body(request)?;
    let change: changes::PostEdit = crate::sources::json::parse(body)?;
    let (post, destinations) = changes::edit(deps, id, change).await?;
    Ok(edge::json(200, &PostView::new(post, destinations)))
}

/// `GET /posts?state=&account=&limit=&cursor=`: newest first, one entry per post, a page at a
/// time. A page may hold fewer than `limit` posts; follow `next_cursor` until it is null.
async fn list(deps: &Ingest, request: &Request) -> Result<Response<Body>, RequestError> {
    let mut query = DestinationQuery { limit: DEFAULT_LIMIT, ..DestinationQuery::default() };
    for (name, value) in edge::query_params(request, &["state", "account", "limit", "cursor"])? {
        let bad = |message: String| RequestError::field(400, "invalid_query", name.clone(), message);
        match name.as_str() {
            "state" => {
                let state = serde_json::from_value::<DestState>(serde_json::Value::String(value.clone()));
                query.state = Some(state.map_err(|_| bad(format!("{value:?} is not a destination state")))?);
            }
            "account" => {
                if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad("an Instagram account id is 1 to 20 digits".into()));
                }
                query.account = Some(value);
            }
            "limit" => {
                query.limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| bad(format!("a number from 1 to {MAX_LIMIT}")))?;
            }
            // An empty cursor is the first page, as no cursor is (clients send `cursor=` for it).
            _ if value.is_empty() => {}
            _ => query.cursor = Some(value),
        }
    }
    let page = match deps.store.query_destinations(&query).await {
        Ok(page) => page,
        Err(crate::Error::Data(_)) if query.cursor.is_some() => {
            return Err(RequestError::field(400, "invalid_query", "cursor", "not a cursor this API returned for these filters"));
        }
        Err(err) => return Err(unavailable(err)),
    };
    // Each post once, in page order, with the accounts it was found with on this page.
    let mut found: Vec<(String, Vec<String>)> = Vec::new();
    for d in &page.items {
        match found.iter_mut().find(|(p, _)| *p == d.post_id) {
            Some((_, accounts)) => accounts.push(d.account_id.clone()),
            None => found.push((d.post_id.clone(), vec![d.account_id.clone()])),
        }
    }
    let loaded: Vec<_> = futures::stream::iter(found)
        .map(|(post_id, accounts)| async move { (load(deps, &post_id).await, accounts) })
        .buffered(8)
        .collect()
        .await;
    let mut posts = Vec::new();
    for (result, accounts) in loaded {
        let (post, destinations) = match result {
            Ok(found) => found,
            Err(err) if err.status == 404 => continue,
            Err(err) => return Err(err),
        };
        if listed_on_another_page(&query, &destinations, &accounts) {
            continue;
        }
        posts.push(PostView::new(post, destinations));
    }
    Ok(edge::json(200, &PostsPage { posts, next_cursor: page.next_cursor }))
}

/// A post with several matching destinations is listed once: with the first of them by
/// account id, so pages that hold its other destinations skip it.
fn listed_on_another_page(query: &DestinationQuery, destinations: &[Destination], found_with: &[String]) -> bool {
    let matches = |d: &&Destination| {
        query.state.is_none_or(|s| d.state == s) && query.account.as_ref().is_none_or(|a| d.account_id == *a)
    };
    match destinations.iter().filter(matches).map(|d| d.account_id.as_str()).min() {
        Some(first) => !found_with.iter().any(|a| a == first),
        // It changed since the page was read: show it as it is now.
        None => false,
    }
}
