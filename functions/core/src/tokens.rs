//! Account access tokens, kept in Secrets Manager (`<prefix><ig user id>`), cached for the life
//! of the function instance.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use secrecy::SecretString;
use serde::Deserialize;

use crate::error::{Error, Result};

#[async_trait]
pub trait TokenSource: Send + Sync {
    async fn token(&self, account_id: &str) -> Result<SecretString>;
    /// Drops a cached token so the next call reads the secret again (after a 190).
    fn forget(&self, account_id: &str);
}

/// The secret's value: `{"access_token": "..."}` (other fields allowed), or the bare token.
#[derive(Deserialize)]
struct TokenSecret {
    access_token: String,
}

pub fn parse_token_secret(value: &str) -> Option<SecretString> {
    let token = match serde_json::from_str::<TokenSecret>(value) {
        Ok(secret) => secret.access_token,
        Err(_) if !value.trim_start().starts_with('{') => value.trim().to_string(),
        Err(_) => return None,
    };
    (!token.is_empty()).then(|| SecretString::from(token))
}

pub struct SecretsManagerTokens {
    client: Client,
    prefix: String,
    cache: Mutex<HashMap<String, SecretString>>,
}

impl SecretsManagerTokens {
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        SecretsManagerTokens { client, prefix: prefix.into(), cache: Mutex::new(HashMap::new()) }
    }
}

#[async_trait]
impl TokenSource for SecretsManagerTokens {
    async fn token(&self, account_id: &str) -> Result<SecretString> {
        if let Some(token) = self.cache.lock().unwrap().get(account_id) {
            return Ok(token.clone());
        }
        let name = format!("{}{account_id}", self.prefix);
        let out = self.client.get_secret_value().secret_id(&name).send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) {
                Error::NotFound(format!("no token stored for account {account_id} (secret {name})"))
            } else {
                Error::aws("Secrets Manager GetSecretValue", e)
            }
        })?;
        let token = out
            .secret_string()
            .and_then(parse_token_secret)
            .ok_or_else(|| Error::Data(format!("secret {name} holds no access_token")))?;
        self.cache.lock().unwrap().insert(account_id.to_string(), token.clone());
        Ok(token)
    }

    fn forget(&self, account_id: &str) {
        self.cache.lock().unwrap().remove(account_id);
    }
}

/// Fixed tokens (unit tests).
#[derive(Default)]
pub struct StaticTokens(pub HashMap<String, String>);

#[async_trait]
impl TokenSource for StaticTokens {
    async fn token(&self, account_id: &str) -> Result<SecretString> {
        self.0
            .get(account_id)
            .map(|t| SecretString::from(t.clone()))
            .ok_or_else(|| Error::NotFound(format!("no token stored for account {account_id}")))
    }

    fn forget(&self, _account_id: &str) {}
}

/// Reads the webhook signing secrets: a JSON object keyed by source (`{"generic": "whsec_..."}`).
pub async fn load_webhook_secrets(client: &Client, name: &str) -> Result<HashMap<String, String>> {
    let out = client
        .get_secret_value()
        .secret_id(name)
        .send()
        .await
        .map_err(|e| Error::aws("Secrets Manager GetSecretValue", e))?;
    serde_json::from_str(out.secret_string().unwrap_or_default())
        .map_err(|_| Error::Config(format!("secret {name} must be a JSON object of source → signing secret")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn secrets_hold_json_or_a_bare_token() {
        assert_eq!(parse_token_secret(r#"{"access_token":"IGAA1","expires_at":1}"#).unwrap().expose_secret(), "IGAA1");
        assert_eq!(parse_token_secret("IGAA2\n").unwrap().expose_secret(), "IGAA2");
        assert!(parse_token_secret(r#"{"token":"x"}"#).is_none());
        assert!(parse_token_secret("").is_none());
    }

    #[test]
    fn a_token_never_shows_in_debug_output() {
        let token = parse_token_secret("IGAA-very-secret").unwrap();
        assert!(!format!("{token:?}").contains("very-secret"));
    }
}
