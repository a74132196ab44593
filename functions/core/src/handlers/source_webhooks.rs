//! `POST /webhooks/shopify`, `/webhooks/contentful`, `/webhooks/wordpress`: the same checks in
//! the same order for each — size (413), content type (415), signature (401), payload (400/422) —
//! then the source's mapping and the shared accept path. A refused request writes nothing.

use lambda_http::{Body, Request, Response};

use super::accept::accept;
use super::edge::{self, content_type};
use crate::deps::Ingest;
use crate::sources::{RequestError, contentful, shopify, wordpress};

pub const SHOPIFY_PATH: &str = "/webhooks/shopify";
pub const CONTENTFUL_PATH: &str = "/webhooks/contentful";
pub const WORDPRESS_PATH: &str = "/webhooks/wordpress";
pub const PATHS: [&str; 3] = [SHOPIFY_PATH, CONTENTFUL_PATH, WORDPRESS_PATH];

/// `path` is one of [`PATHS`]; the method has been checked.
pub async fn handle(deps: &Ingest, path: &str, request: &Request) -> Result<Response<Body>, RequestError> {
    let body = edge::body(request)?;
    let sources = &deps.sources;
    let now = deps.clock.now();
    let headers = request.headers();
    let not_configured = |name: &str| RequestError::new(404, "not_found", format!("the {name} source is not configured"));
    let mapped = match path {
        SHOPIFY_PATH => {
            let verifier = sources.shopify.as_ref().ok_or_else(|| not_configured("Shopify"))?;
            content_type(request, &["application/json"])?;
            verifier.verify(headers, body)?;
            shopify::map(headers, body, &sources.routing)?
        }
        CONTENTFUL_PATH => {
            let verifier = sources.contentful.as_ref().ok_or_else(|| not_configured("Contentful"))?;
            // A webhook transformation may switch the vendor type for plain JSON.
            content_type(request, &["application/vnd.contentful.management.v1+json", "application/json"])?;
            verifier.verify(request.method().as_str(), request.uri(), headers, body, now)?;
            contentful::map(headers, body, &sources.routing, sources.assets.as_ref()).await?
        }
        WORDPRESS_PATH => {
            let verifier = sources.wordpress.as_ref().ok_or_else(|| not_configured("WordPress"))?;
            content_type(request, &["application/json"])?;
            let webhook_id = verifier.verify(headers, body, now)?;
            wordpress::map(webhook_id, body, &sources.routing)?
        }
        _ => return Err(RequestError::new(404, "not_found", format!("no route for {path}"))),
    };
    let accepted = accept(deps, mapped).await?;
    Ok(edge::json(accepted.status(), &accepted.to_json()))
}
