//! `POST /webhooks/shopify`, `/webhooks/contentful`, `/webhooks/wordpress`: the same checks in
//! the same order for each — size (413), content type (415), signature (401), payload (400/422) —
//! then the source's mapping and the shared accept path. A refused request writes nothing.
//! The signature is checked only with the secrets of the tenant the request claims (the shop
//! header, the space or the site in the body; see [`SourceDeps`](crate::sources::routed::SourceDeps)).

use lambda_http::{Body, Request, Response};

use super::accept::accept;
use super::edge::{self, content_type};
use crate::deps::Ingest;
use crate::routing::{RouteSource, shop_tenant, site_tenant};
use crate::sources::contentful::ContentfulVerifier;
use crate::sources::routed::unusable_secret;
use crate::sources::shopify::ShopifyVerifier;
use crate::sources::standard_webhooks::StandardWebhookVerifier;
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
    let configured = |source: RouteSource, name: &str| {
        if sources.configured(source) {
            Ok(())
        } else {
            Err(RequestError::new(404, "not_found", format!("the {name} source is not configured")))
        }
    };
    let mapped = match path {
        SHOPIFY_PATH => {
            configured(RouteSource::Shopify, "Shopify")?;
            content_type(request, &["application/json"])?;
            // The shop header is not signed: it only chooses whose secrets may verify the body.
            let shop = headers.get("x-shopify-shop-domain").and_then(|v| v.to_str().ok()).map(shop_tenant);
            sources
                .verify(RouteSource::Shopify, shop.as_deref(), |secrets| {
                    ShopifyVerifier::new(secrets).map_err(unusable_secret)?.verify(headers, body)
                })
                .await?;
            shopify::map(headers, body, &sources.routing)?
        }
        CONTENTFUL_PATH => {
            configured(RouteSource::Contentful, "Contentful")?;
            // A webhook transformation may switch the vendor type for plain JSON.
            content_type(request, &["application/vnd.contentful.management.v1+json", "application/json"])?;
            let space = contentful::claimed_space(body);
            sources
                .verify(RouteSource::Contentful, space.as_deref(), |secrets| {
                    ContentfulVerifier::new(secrets).map_err(unusable_secret)?.verify(request.method().as_str(), request.uri(), headers, body, now)
                })
                .await?;
            contentful::map(headers, body, &sources.routing, sources.assets.as_ref()).await?
        }
        WORDPRESS_PATH => {
            configured(RouteSource::Wordpress, "WordPress")?;
            content_type(request, &["application/json"])?;
            let site = wordpress::claimed_site(body).map(|site| site_tenant(&site));
            let (webhook_id, _) = sources
                .verify(RouteSource::Wordpress, site.as_deref(), |secrets| {
                    StandardWebhookVerifier::new(secrets).map_err(unusable_secret)?.verify(headers, body, now)
                })
                .await?;
            wordpress::map(webhook_id, body, &sources.routing)?
        }
        _ => return Err(RequestError::new(404, "not_found", format!("no route for {path}"))),
    };
    let accepted = accept(deps, mapped).await?;
    Ok(edge::json(accepted.status(), &accepted.to_json()))
}
