//! ingest-webhook: verifies a signed webhook over its raw body, de-duplicates it, stores the post
//! with one destination per account, and answers 202 with the post id. Everything after that
//! happens from the table's stream, so the answer is fast and nothing accepted is lost.

use http::Method;
use lambda_http::{Body, Request, Response};

use super::edge;
use crate::deps::Ingest;
use crate::intake::{Intake, Submission};
use crate::sources::mapped::DedupeKey;
use crate::sources::{RequestError, generic};

pub async fn handle(deps: &Ingest, request: Request) -> Response<Body> {
    if let Some(response) = super::posts_api::handle(deps, &request).await {
        return response;
    }
    if let Some(response) = super::oauth_routes::handle(deps, &request).await {
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
    result.unwrap_or_else(|err| {
        let mut response = edge::error(&err);
        // Every webhook route takes POST only.
        if err.status == 405 {
            edge::allow(&mut response, &["POST"]);
        }
        response
    })
}

/// Size, content type, signature, payload; then the intake: 202 with the post (new or known),
/// or 422 naming the account that is not registered.
async fn generic_webhook(deps: &Ingest, request: &Request) -> Result<Response<Body>, RequestError> {
    let body = edge::body(request)?;
    edge::content_type(request, &["application/json"])?;
    let now = deps.clock.now();
    let event_id = deps.generic.verify(request.headers(), body, now)?;
    let post_request = generic::parse(body)?;
    let submission = Submission::new(DedupeKey::new(generic::SOURCE, event_id), post_request);
    let accepted = Intake::new(deps.store.as_ref()).accept(submission, now).await.map_err(|refusal| {
        refusal.into_request_error(|err| {
            tracing::error!(error = %err, "could not store the post");
            RequestError::new(503, "unavailable", "the post could not be stored; nothing was kept, retry later")
        })
    })?;
    Ok(edge::json(accepted.status(), &accepted.to_json()))
}
