//! Outgoing status webhooks: `post.published` and `post.failed` events, signed with Standard
//! Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "{id}.{timestamp}.{body}">`), so any Standard Webhooks library can verify them.

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha2::Sha256;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::post::{DestState, Destination, Failure, Post};

pub const POST_PUBLISHED: &str = "post.published";
pub const POST_FAILED: &str = "post.failed";

/// The event type for a destination in a final state; none for the others.
pub fn event_type(state: DestState) -> Option<&'static str> {
    match state {
        DestState::Published => Some(POST_PUBLISHED),
        DestState::Failed => Some(POST_FAILED),
        _ => None,
    }
}

/// The same on every try and every redelivery, so the receiver can de-duplicate.
pub fn webhook_id(dest: &Destination, event_type: &str) -> String {
    let kind = event_type.trim_start_matches("post.");
    format!("msg_{}_{}_{kind}", dest.post_id, dest.account_id)
}

/// The body: Standard Webhooks' recommended `{type, timestamp, data}` envelope.
#[derive(Debug, Serialize)]
pub struct StatusEvent<'a> {
    #[serde(rename = "type")]
    pub event_type: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    pub timestamp: OffsetDateTime,
    pub data: StatusData<'a>,
}

#[derive(Debug, Serialize)]
pub struct StatusData<'a> {
    pub post_id: &'a str,
    pub account_id: &'a str,
    pub state: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_event_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permalink: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<&'a Failure>,
}

impl<'a> StatusEvent<'a> {
    pub fn new(event_type: &'a str, dest: &'a Destination, post: Option<&'a Post>) -> StatusEvent<'a> {
        StatusEvent {
            event_type,
            timestamp: dest.updated_at,
            data: StatusData {
                post_id: &dest.post_id,
                account_id: &dest.account_id,
                state: dest.state.as_str(),
                source: post.map(|p| p.source.as_str()),
                source_event_id: post.map(|p| p.source_event_id.as_str()),
                media_id: dest.media_id.as_deref(),
                permalink: dest.permalink.as_deref(),
                failure: dest.failure.as_ref(),
            },
        }
    }
}

/// Signs with our `whsec_` secret. Never shows the key.
pub struct StatusWebhookSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for StatusWebhookSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatusWebhookSigner(redacted)")
    }
}

impl StatusWebhookSigner {
    pub fn new(secret: &str) -> Result<Self> {
        let secret = secret.trim();
        let key = BASE64
            .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
            .map_err(|_| Error::Config("the status webhook secret is not valid base64 after whsec_".into()))?;
        if key.is_empty() {
            return Err(Error::Config("the status webhook secret is empty".into()));
        }
        Ok(StatusWebhookSigner { key })
    }

    /// The `webhook-signature` header value.
    pub fn sign(&self, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(webhook_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

/// The variable that lets a status webhook go over plain http to a loopback host (the local stack
/// sets it; a deployment never does).
pub const ALLOW_HTTP_LOOPBACK_VAR: &str = "STATUS_WEBHOOK_ALLOW_HTTP_LOOPBACK";

/// Why `url` cannot be a status-webhook URL, if it cannot: it must be https (the events are
/// signed, not secret, but the receiver's path may hold a token of its own), or http to a loopback
/// host when `allow_http_loopback`.
pub fn check_url(url: &str, allow_http_loopback: bool) -> std::result::Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|_| "must be an absolute https URL".to_string())?;
    let host = parsed.host_str().unwrap_or_default();
    let loopback = host == "localhost"
        || host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match parsed.scheme() {
        "https" if !host.is_empty() => Ok(()),
        "http" if allow_http_loopback && loopback => Ok(()),
        "http" if loopback => Err(format!("must be https (http to a loopback host needs {ALLOW_HTTP_LOOPBACK_VAR}=true)")),
        _ => Err("must be an https URL".into()),
    }
}

/// The receiver's answer, or why there was none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Delivery {
    Answered(u16),
    Unreachable(String),
}

/// Sends one signed request (a port, so notify is tested without a network).
#[async_trait]
pub trait WebhookTransport: Send + Sync {
    async fn post(&self, url: &str, headers: &[(&str, String)], body: &str) -> Delivery;
}

pub struct HttpTransport {
    http: reqwest::Client,
}

impl HttpTransport {
    pub fn new(timeout: std::time::Duration) -> Result<Self> {
        let http = crate::https::client_builder()
            .timeout(timeout)
            .user_agent(concat!("instapipe/", env!("CARGO_PKG_VERSION")))
            // A redirect is the receiver's answer (not delivered), never a second destination: the
            // signed event goes to the configured URL or nowhere.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpTransport { http })
    }
}

#[async_trait]
impl WebhookTransport for HttpTransport {
    async fn post(&self, url: &str, headers: &[(&str, String)], body: &str) -> Delivery {
        let mut request = self.http.post(url).header("content-type", "application/json").body(body.to_string());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        match request.send().await {
            Ok(response) => Delivery::Answered(response.status().as_u16()),
            // The configured URL may hold a token of the receiver's: not in our logs.
            Err(err) => Delivery::Unreachable(err.without_url().to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_one_the_reference_library_computes() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let ours = StatusWebhookSigner::new(secret).unwrap().sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        let theirs = standardwebhooks::Webhook::new(secret)
            .unwrap()
            .sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#)
            .unwrap();
        assert_eq!(ours, theirs);
        assert!(!format!("{:?}", StatusWebhookSigner::new(secret).unwrap()).contains("MfKQ"));
    }

    #[test]
    fn a_malformed_secret_is_refused_without_echoing_it() {
        let err = StatusWebhookSigner::new("whsec_%%%not-base64").unwrap_err();
        assert!(!err.to_string().contains("not-base64"), "{err}");
    }

    #[test]
    fn status_webhook_urls_are_https_or_loopback_http_when_allowed() {
        assert_eq!(check_url("https://blog.example.com/wp-json/instapipe/v1/status", false), Ok(()));
        for refused in ["http://blog.example.com/hook", "ftp://blog.example.com/hook", "blog.example.com/hook", "https://", ""] {
            assert!(check_url(refused, false).is_err(), "{refused}");
            assert!(check_url(refused, true).is_err(), "{refused} (with loopback http allowed)");
        }
        for loopback in ["http://127.0.0.1:8080/?rest_route=/instapipe/v1/status", "http://localhost:9/hook", "http://[::1]:9/hook"] {
            let err = check_url(loopback, false).unwrap_err();
            assert!(err.contains(ALLOW_HTTP_LOOPBACK_VAR), "{loopback}: {err}");
            assert_eq!(check_url(loopback, true), Ok(()), "{loopback}");
        }
        assert!(check_url("http://10.0.0.1/hook", true).is_err(), "private is not loopback");
    }

    #[tokio::test]
    async fn a_redirect_is_an_answer_not_followed() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        let elsewhere = Arc::new(AtomicUsize::new(0));
        let hits = elsewhere.clone();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(|| async { (axum::http::StatusCode::TEMPORARY_REDIRECT, [("location", "/elsewhere")]) }))
            .route(
                "/elsewhere",
                axum::routing::post(move || {
                    hits.fetch_add(1, Ordering::SeqCst);
                    async { "ok" }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let transport = HttpTransport::new(std::time::Duration::from_secs(5)).unwrap();
        assert_eq!(transport.post(&url, &[], "{}").await, Delivery::Answered(307));
        assert_eq!(elsewhere.load(Ordering::SeqCst), 0, "the redirect's target got nothing");
    }

    #[test]
    fn only_final_states_make_events() {
        assert_eq!(event_type(DestState::Published), Some("post.published"));
        assert_eq!(event_type(DestState::Failed), Some("post.failed"));
        assert_eq!(event_type(DestState::Publishing), None);
        assert_eq!(event_type(DestState::AwaitingAuth), None);
    }
}
