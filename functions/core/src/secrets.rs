//! Every secret instapipe keeps in Secrets Manager: its default name, the shape of its value,
//! and how it is read and written. The functions, the operator CLI and the local stack all go
//! through here, so a secret's name or JSON shape is written down once.
//!
//! | secret | value |
//! |---|---|
//! | `WEBHOOK_SECRETS_NAME` | [`WebhookSecrets`]: a JSON object, source → signing secret |
//! | `ACCOUNT_SECRET_PREFIX` + IG user id | [`account_token_json`]: `{"access_token": "..."}` (or the bare token) |
//! | `STATUS_WEBHOOK_SECRET_NAME` | the `whsec_...` status webhook signing secret, as plain text |
//! | `META_APP_SECRET_NAME` | [`AppCredentials`]: the Meta app's id and secrets, JSON |
//! | `ROUTE_SECRET_PREFIX` + source/tenant | a route's signing secrets (see `route_secrets.rs`, which reads them) |
//!
//! Errors name the secret and what it must hold, never what it holds.

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::Client;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::{Error, Result};

pub const DEFAULT_WEBHOOK_SECRETS_NAME: &str = "instapipe/webhook-secrets";
pub const DEFAULT_ACCOUNT_SECRET_PREFIX: &str = "instapipe/accounts/";
pub const DEFAULT_STATUS_WEBHOOK_SECRET_NAME: &str = "instapipe/status-webhook-secret";
pub const DEFAULT_META_APP_SECRET_NAME: &str = "instapipe/meta-app";

/// Names of the entries in the webhook secrets' JSON object. `shopify`, `contentful` and
/// `wordpress` are the shared secrets of deployments from before per-route secrets (migration).
pub mod webhook_keys {
    /// `/webhooks/generic`'s Standard Webhooks secret.
    pub const GENERIC: &str = crate::sources::generic::SOURCE;
    pub const SHOPIFY: &str = "shopify";
    pub const CONTENTFUL: &str = "contentful";
    pub const WORDPRESS: &str = "wordpress";
    /// A Contentful Delivery API access token (read-only), for resolving asset links.
    pub const CONTENTFUL_DELIVERY_TOKEN: &str = "contentful_delivery_token";
}

/// The webhook signing secrets: one secret holding a JSON object keyed by source
/// (`{"generic": "whsec_...", "shopify": "...", ...}`; see [`webhook_keys`]).
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct WebhookSecrets(BTreeMap<String, String>);

impl std::fmt::Debug for WebhookSecrets {
    /// The entries' names only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl WebhookSecrets {
    pub async fn read(client: &Client, name: &str) -> Result<WebhookSecrets> {
        read_json(client, name, "a JSON object of source → signing secret").await
    }

    pub async fn write(&self, client: &Client, name: &str) -> Result<()> {
        write(client, name, &self.to_json(), "instapipe: webhook signing secrets, by source").await
    }

    /// Adds or replaces an entry.
    pub fn with(mut self, key: &str, secret: impl Into<String>) -> WebhookSecrets {
        self.0.insert(key.to_string(), secret.into());
        self
    }

    /// The entry, unless it is missing or blank.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    /// The secret's value.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).expect("a map of strings")
    }
}

/// The Meta app's credentials, from a Secrets Manager secret (JSON):
/// `{"facebook_app_id": "...", "facebook_app_secret": "...", "instagram_app_id": "...",
/// "instagram_app_secret": "..."}`. Each field is needed only by the calls that use it (see
/// `graph::account_api`; the app ids only by `oauth`, which also takes them from the environment).
#[derive(Default, Deserialize)]
pub struct AppCredentials {
    #[serde(default)]
    pub facebook_app_id: Option<String>,
    #[serde(default, deserialize_with = "secret_opt")]
    pub facebook_app_secret: Option<SecretString>,
    #[serde(default, deserialize_with = "secret_opt")]
    pub instagram_app_secret: Option<SecretString>,
    #[serde(default)]
    pub instagram_app_id: Option<String>,
}

fn secret_opt<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<SecretString>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()).map(SecretString::from))
}

impl AppCredentials {
    pub async fn read(client: &Client, name: &str) -> Result<AppCredentials> {
        read_json(client, name, "a JSON object with facebook_app_id, facebook_app_secret, instagram_app_id and/or instagram_app_secret").await
    }
}

/// The secret holding an account's token: `<prefix><ig user id>`.
pub fn account_token_name(prefix: &str, account_id: &str) -> String {
    format!("{prefix}{account_id}")
}

/// The JSON an account token secret holds.
pub fn account_token_json(token: &SecretString) -> String {
    serde_json::json!({ "access_token": token.expose_secret() }).to_string()
}

/// The secret's value: `{"access_token": "..."}` (other fields allowed), or the bare token.
#[derive(Deserialize)]
struct TokenSecret {
    access_token: String,
}

/// The token an account token secret holds, if it holds one.
pub fn parse_token_secret(value: &str) -> Option<SecretString> {
    let token = match serde_json::from_str::<TokenSecret>(value) {
        Ok(secret) => secret.access_token,
        Err(_) if !value.trim_start().starts_with('{') => value.trim().to_string(),
        Err(_) => return None,
    };
    (!token.is_empty()).then(|| SecretString::from(token))
}

/// Stores an account's token as a new version of its secret (creating it for a first token).
pub async fn write_account_token(client: &Client, prefix: &str, account_id: &str, token: &SecretString) -> Result<()> {
    let name = account_token_name(prefix, account_id);
    write(client, &name, &account_token_json(token), "instapipe: Instagram access token of one account").await
}

/// The status webhook signing secret (`whsec_...`), as plain text.
pub async fn read_status_webhook_secret(client: &Client, name: &str) -> Result<String> {
    read_string(client, name).await.map(Option::unwrap_or_default)
}

pub async fn write_status_webhook_secret(client: &Client, name: &str, secret: &str) -> Result<()> {
    write(client, name, secret, "instapipe: status webhook signing secret").await
}

/// The secret's current value (`None`: it has no string value).
pub async fn read_string(client: &Client, name: &str) -> Result<Option<String>> {
    let out = client
        .get_secret_value()
        .secret_id(name)
        .send()
        .await
        .map_err(|e| Error::aws("Secrets Manager GetSecretValue", e))?;
    Ok(out.secret_string().map(str::to_string))
}

/// Reads a secret holding JSON; the error says what `name` must hold, never what it holds.
pub async fn read_json<T: serde::de::DeserializeOwned>(client: &Client, name: &str, must_hold: &str) -> Result<T> {
    let value = read_string(client, name).await?.unwrap_or_default();
    serde_json::from_str(&value).map_err(|_| Error::Config(format!("secret {name} must be {must_hold}")))
}

/// Stores `value` as the secret's current version (the old one stays as AWSPREVIOUS); creates
/// the secret when it does not exist yet.
pub async fn write(client: &Client, name: &str, value: &str, description: &str) -> Result<()> {
    match client.put_secret_value().secret_id(name).secret_string(value).send().await {
        Ok(_) => Ok(()),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => client
            .create_secret()
            .name(name)
            .description(description)
            .secret_string(value)
            .send()
            .await
            .map(drop)
            .map_err(|e| Error::aws("Secrets Manager CreateSecret", e)),
        Err(e) => Err(Error::aws("Secrets Manager PutSecretValue", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_token_secrets_hold_json_or_a_bare_token() {
        assert_eq!(parse_token_secret(r#"{"access_token":"IGAA1","expires_at":1}"#).unwrap().expose_secret(), "IGAA1");
        assert_eq!(parse_token_secret("IGAA2\n").unwrap().expose_secret(), "IGAA2");
        assert!(parse_token_secret(r#"{"token":"x"}"#).is_none());
        assert!(parse_token_secret("").is_none());
    }

    #[test]
    fn the_stored_token_is_the_json_the_reader_expects() {
        let json = account_token_json(&SecretString::from("IGAA-9"));
        assert_eq!(parse_token_secret(&json).unwrap().expose_secret(), "IGAA-9");
    }

    #[test]
    fn webhook_secrets_round_trip_and_never_show_their_values() {
        let secrets = WebhookSecrets::default()
            .with(webhook_keys::GENERIC, "whsec_abc")
            .with(webhook_keys::SHOPIFY, "shpss_very_secret")
            .with(webhook_keys::WORDPRESS, "  ");
        let parsed: WebhookSecrets = serde_json::from_str(&secrets.to_json()).unwrap();
        assert_eq!(parsed, secrets);
        assert_eq!(parsed.get("generic"), Some("whsec_abc"));
        assert_eq!(parsed.get(webhook_keys::WORDPRESS), None, "a blank entry counts as missing");
        assert_eq!(parsed.get(webhook_keys::CONTENTFUL), None);
        let debug = format!("{parsed:?}");
        assert!(debug.contains("shopify") && !debug.contains("very_secret") && !debug.contains("abc"), "{debug}");
    }
}
