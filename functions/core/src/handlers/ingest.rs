//! ingest-webhook: verifies a signed webhook over its raw body, de-duplicates it, stores the post
//! with one destination per account, and answers 202 with the post id. Everything after that
//! happens from the table's stream, so the answer is fast and nothing accepted is lost.

use http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde_json::json;
use tracing::Instrument;

use crate::deps::Ingest;
use crate::post::{Post, PostRequest, overall_state};
use crate::sources::{RequestError, generic};
use crate::store::{Created, DELIVERY_MEMORY_SECS, Delivery};

/// Larger bodies are refused with 413 before any parsing.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

pub async fn handle(deps: &Ingest, request: Request) -> Response<Body> {
    if let Some(response) = super::posts_api::handle(deps, &request).await {
        return response;
    }
    let path = request.uri().path().trim_end_matches('/').to_string();
    let result = match path.as_str() {
        "/webhooks/generic" if request.method() == Method::POST => generic_webhook(deps, &request).await,
        "/webhooks/generic" => Err(RequestError::new(405, "method_not_allowed", "use POST")),
        p if super::source_webhooks::PATHS.contains(&p) && request.method() == Method::POST => {
            super::source_webhooks::handle(deps, p, &request).await
        }
        p if super::source_webhooks::PATHS.contains(&p) => Err(RequestError::new(405, "method_not_allowed", "use POST")),
        _ => Err(RequestError::new(404, "not_found", format!("no route for {path}"))),
    };
    match result {
        Ok(response) => response,
        Err(err) => {
            tracing::info!(status = err.status, code = err.code, field = ?err.field, message = %err.message, "request refused");
            json_response(err.status, err.to_json())
        }
    }
}

async fn generic_webhook(deps: &Ingest, request: &Request) -> Result<Response<Body>, RequestError> {
    let body: &[u8] = request.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return Err(RequestError::new(413, "body_too_large", format!("the body exceeds {MAX_BODY_BYTES} bytes")));
    }
    super::source_webhooks::content_type(request, &["application/json"])?;
    let now = deps.clock.now();
    let event_id = deps.generic.verify(request.headers(), body, now)?;
    let post_request = generic::parse(body)?;
    accept(deps, generic::SOURCE, event_id, post_request).await
}

/// Stores a verified, valid request as a post (once per source event) and answers 202.
async fn accept(deps: &Ingest, source: &str, event_id: &str, request: PostRequest) -> Result<Response<Body>, RequestError> {
    for (i, account) in request.accounts.iter().enumerate() {
        let known = deps.store.get_account(account).await.map_err(internal)?;
        if known.is_none() {
            return Err(RequestError::field(
                422,
                "unknown_account",
                format!("accounts[{i}]"),
                format!("Instagram account {account} is not registered with instapipe"),
            ));
        }
    }
    let now = deps.clock.now();
    let post = Post::new(ulid::Ulid::new().to_string(), source, event_id, request, now);
    let span = tracing::info_span!("ingest", post_id = %post.post_id, source, state = tracing::field::Empty);
    async move {
        let destinations = post.destinations(now);
        let delivery = Delivery {
            source: source.to_string(),
            event_id: event_id.to_string(),
            post_id: post.post_id.clone(),
            expires_at: now.unix_timestamp() + DELIVERY_MEMORY_SECS,
        };
        match deps.store.create_post(&delivery, &post, &destinations).await.map_err(internal)? {
            Created::New => {
                let state = overall_state(&destinations);
                tracing::Span::current().record("state", state.as_str());
                tracing::info!(accounts = destinations.len(), publish_at = ?post.publish_at, "post accepted");
                Ok(json_response(202, json!({ "post_id": post.post_id, "state": state })))
            }
            Created::Duplicate { post_id } => {
                tracing::info!(%post_id, "delivery seen before; same post");
                Ok(json_response(202, json!({ "post_id": post_id, "duplicate": true })))
            }
        }
    }
    .instrument(span)
    .await
}

fn internal(err: crate::Error) -> RequestError {
    tracing::error!(error = %err, "could not store the post");
    RequestError::new(503, "unavailable", "the post could not be stored; nothing was kept, retry later")
}

fn json_response(status: u16, body: serde_json::Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(Body::Text(body.to_string()))
        .expect("static parts are valid")
}
