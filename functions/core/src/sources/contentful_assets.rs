//! Contentful webhooks carry asset *links*; the image URLs come from the Content Delivery API
//! (`GET {base}/spaces/{space}/environments/{env}/assets/{id}?locale=…`, a read-only token in the
//! `Authorization` header). The base URL is configurable (`CONTENTFUL_DELIVERY_BASE_URL`) so
//! tests and the local stack point it at a fake.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::Error;

pub const DEFAULT_BASE_URL: &str = "https://cdn.contentful.com";
/// Contentful waits up to 30 s for the webhook's answer; an asset lookup gets a small part of it.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A published asset's file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asset {
    /// https URL of the file.
    pub url: String,
    /// MIME type, e.g. `image/jpeg`.
    pub content_type: String,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AssetError {
    /// Not published (or deleted): the entry cannot be posted as it is.
    #[error("asset {0} is not published in the Delivery API")]
    NotFound(String),
    /// The asset has no file in the route's locale, or a URL that is not usable.
    #[error("asset {id}: {problem}")]
    Unusable { id: String, problem: String },
    /// The Delivery API did not answer properly; worth a retry.
    #[error("the Contentful Delivery API is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait AssetResolver: Send + Sync {
    async fn resolve(&self, space: &str, environment: &str, asset_id: &str, locale: &str) -> Result<Asset, AssetError>;
}

pub struct DeliveryApi {
    client: reqwest::Client,
    base_url: String,
    token: Option<SecretString>,
}

impl DeliveryApi {
    pub fn new(base_url: &str, token: Option<String>) -> Result<DeliveryApi, Error> {
        if !(base_url.starts_with("https://") || base_url.starts_with("http://")) {
            return Err(Error::Config("environment variable CONTENTFUL_DELIVERY_BASE_URL must be an http(s) URL".into()));
        }
        let client = crate::https::client_builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| Error::Config(format!("cannot build the Contentful HTTP client: {e}")))?;
        Ok(DeliveryApi { client, base_url: base_url.trim_end_matches('/').to_string(), token: token.map(SecretString::from) })
    }

    /// No token: every lookup fails (used where no Contentful route exists).
    pub fn unconfigured() -> DeliveryApi {
        DeliveryApi { client: crate::https::client_builder().build().expect("the TLS configuration is valid"), base_url: DEFAULT_BASE_URL.into(), token: None }
    }
}

#[derive(Deserialize)]
struct AssetBody {
    fields: AssetFields,
}

#[derive(Deserialize)]
struct AssetFields {
    file: Option<AssetFile>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssetFile {
    url: String,
    content_type: String,
}

#[async_trait]
impl AssetResolver for DeliveryApi {
    async fn resolve(&self, space: &str, environment: &str, asset_id: &str, locale: &str) -> Result<Asset, AssetError> {
        let Some(token) = &self.token else {
            return Err(AssetError::Unavailable("no Delivery API token is configured".into()));
        };
        let safe = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if ![space, environment, asset_id].into_iter().all(safe) {
            return Err(AssetError::Unusable { id: asset_id.into(), problem: "space, environment or asset id has unexpected characters".into() });
        }
        let url = format!("{}/spaces/{space}/environments/{environment}/assets/{asset_id}", self.base_url);
        let response = self
            .client
            .get(&url)
            .query(&[("locale", locale)])
            .bearer_auth(token.expose_secret())
            .send()
            .await
            // reqwest's message names the URL, which holds no secret.
            .map_err(|e| AssetError::Unavailable(e.to_string()))?;
        match response.status().as_u16() {
            200 => {}
            404 => return Err(AssetError::NotFound(asset_id.into())),
            status => return Err(AssetError::Unavailable(format!("asset {asset_id}: HTTP {status}"))),
        }
        let body: AssetBody = response.json().await.map_err(|e| AssetError::Unavailable(format!("asset {asset_id}: {e}")))?;
        let file = body.fields.file.ok_or_else(|| AssetError::Unusable { id: asset_id.into(), problem: format!("no file in locale {locale}") })?;
        Ok(Asset { url: https_url(&file.url), content_type: file.content_type })
    }
}

/// Contentful gives protocol-relative URLs (`//images.ctfassets.net/…`).
fn https_url(url: &str) -> String {
    match url.strip_prefix("//") {
        Some(rest) => format!("https://{rest}"),
        None => url.to_string(),
    }
}

/// Fixed assets by id (tests).
#[derive(Default)]
pub struct StaticAssets(pub HashMap<String, Asset>);

#[async_trait]
impl AssetResolver for StaticAssets {
    async fn resolve(&self, _space: &str, _environment: &str, asset_id: &str, _locale: &str) -> Result<Asset, AssetError> {
        self.0.get(asset_id).cloned().ok_or_else(|| AssetError::NotFound(asset_id.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::{Path, Query};
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;

    async fn fake() -> String {
        let app = axum::Router::new().route(
            "/spaces/{space}/environments/{env}/assets/{id}",
            get(|Path((space, env, id)): Path<(String, String, String)>, Query(q): Query<HashMap<String, String>>, headers: HeaderMap| async move {
                if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer cda-token") {
                    return (StatusCode::UNAUTHORIZED, String::new());
                }
                match id.as_str() {
                    "img1" => (StatusCode::OK, serde_json::json!({"sys": {"id": id}, "fields": {"title": "x", "file": {
                        "url": format!("//images.ctfassets.net/{space}/{env}/{}/hero.jpg", q["locale"]),
                        "contentType": "image/jpeg", "fileName": "hero.jpg"}}}).to_string()),
                    "nofile" => (StatusCode::OK, r#"{"fields":{}}"#.into()),
                    "boom" => (StatusCode::BAD_GATEWAY, String::new()),
                    _ => (StatusCode::NOT_FOUND, "{}".into()),
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        url
    }

    #[tokio::test]
    async fn assets_resolve_to_https_urls_through_the_configured_base_url() {
        let base = fake().await;
        let api = DeliveryApi::new(&format!("{base}/"), Some("cda-token".into())).unwrap();
        let asset = api.resolve("sp1", "master", "img1", "de-DE").await.unwrap();
        assert_eq!(asset, Asset { url: "https://images.ctfassets.net/sp1/master/de-DE/hero.jpg".into(), content_type: "image/jpeg".into() });
        assert_eq!(api.resolve("sp1", "master", "gone", "en-US").await, Err(AssetError::NotFound("gone".into())));
        assert!(matches!(api.resolve("sp1", "master", "nofile", "en-US").await, Err(AssetError::Unusable { .. })));
        assert!(matches!(api.resolve("sp1", "master", "boom", "en-US").await, Err(AssetError::Unavailable(_))));
        assert!(matches!(api.resolve("sp1", "master", "../x", "en-US").await, Err(AssetError::Unusable { .. })));
        let wrong_token = DeliveryApi::new(&base, Some("other".into())).unwrap();
        let err = wrong_token.resolve("sp1", "master", "img1", "en-US").await.unwrap_err();
        assert!(matches!(err, AssetError::Unavailable(_)));
        assert!(!err.to_string().contains("other"), "the token never shows: {err}");
        assert!(matches!(DeliveryApi::unconfigured().resolve("s", "e", "a", "en-US").await, Err(AssetError::Unavailable(_))));
        let err = DeliveryApi::new("cdn.contentful.com", None).err().unwrap().to_string();
        assert!(err.contains("CONTENTFUL_DELIVERY_BASE_URL"), "{err}");
    }
}
