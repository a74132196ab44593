//! Account access tokens, kept in Secrets Manager (`<prefix><ig user id>`), cached for the life
//! of the function instance.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use secrecy::{ExposeSecret, SecretString};
use crate::error::{Error, Result};
use crate::secrets;

#[async_trait]
pub trait TokenSource: Send + Sync {
    async fn token(&self, account_id: &str) -> Result<SecretString>;
    /// Drops a cached token so the next call reads the secret again (after a 190).
    fn forget(&self, account_id: &str);
    /// Reads the stored token again, bypassing the cache, and says whether it differs from the
    /// one handed out before: after a 190, `Changed` means refresh-tokens (or an operator) stored
    /// a new token since this instance started, so the call is worth one more try with it.
    /// A source without a cache has nothing newer to offer.
    async fn reread(&self, account_id: &str) -> Result<Reread> {
        self.token(account_id).await.map(|_| Reread::Same)
    }
}

/// What [`TokenSource::reread`] found.
#[derive(Clone, Debug)]
pub enum Reread {
    /// A different token is stored now; it is cached and returned.
    Changed(SecretString),
    /// The stored token is the one that was refused.
    Same,
}

/// A token source that can also store a new token (refresh-tokens, the operator CLI).
#[async_trait]
pub trait TokenVault: TokenSource {
    /// Stores `token` as the account's current token (a new secret version) and caches it.
    async fn put_token(&self, account_id: &str, token: &SecretString) -> Result<()>;
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

    fn secret_name(&self, account_id: &str) -> String {
        secrets::account_token_name(&self.prefix, account_id)
    }

    /// The stored token, read from Secrets Manager (never from the cache).
    async fn read(&self, account_id: &str) -> Result<SecretString> {
        let name = self.secret_name(account_id);
        let out = self.client.get_secret_value().secret_id(&name).send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) {
                Error::NotFound(format!("no token stored for account {account_id} (secret {name})"))
            } else {
                Error::aws("Secrets Manager GetSecretValue", e)
            }
        })?;
        out.secret_string()
            .and_then(secrets::parse_token_secret)
            .ok_or_else(|| Error::Data(format!("secret {name} holds no access_token")))
    }
}

#[async_trait]
impl TokenSource for SecretsManagerTokens {
    async fn token(&self, account_id: &str) -> Result<SecretString> {
        if let Some(token) = self.cache.lock().unwrap().get(account_id) {
            return Ok(token.clone());
        }
        let token = self.read(account_id).await?;
        self.cache.lock().unwrap().insert(account_id.to_string(), token.clone());
        Ok(token)
    }

    fn forget(&self, account_id: &str) {
        self.cache.lock().unwrap().remove(account_id);
    }

    async fn reread(&self, account_id: &str) -> Result<Reread> {
        let stored = self.read(account_id).await?;
        let previous = self.cache.lock().unwrap().insert(account_id.to_string(), stored.clone());
        Ok(reread_outcome(previous.as_ref(), stored))
    }
}

#[async_trait]
impl TokenVault for SecretsManagerTokens {
    async fn put_token(&self, account_id: &str, token: &SecretString) -> Result<()> {
        secrets::write_account_token(&self.client, &self.prefix, account_id, token).await?;
        self.cache.lock().unwrap().insert(account_id.to_string(), token.clone());
        Ok(())
    }
}

/// Nothing cached yet counts as changed: one more try is cheap and bounded.
fn reread_outcome(previous: Option<&SecretString>, stored: SecretString) -> Reread {
    match previous {
        Some(old) if old.expose_secret() == stored.expose_secret() => Reread::Same,
        _ => Reread::Changed(stored),
    }
}

/// Tokens in memory that can be replaced, with every stored version kept (unit tests).
#[derive(Default)]
pub struct MemoryTokens {
    versions: Mutex<HashMap<String, Vec<String>>>,
    handed_out: Mutex<HashMap<String, String>>,
}

impl MemoryTokens {
    pub fn with(account_id: &str, token: &str) -> MemoryTokens {
        let tokens = MemoryTokens::default();
        tokens.replace(account_id, token);
        tokens
    }

    /// Stores a new current token behind the back of whoever cached the old one.
    pub fn replace(&self, account_id: &str, token: &str) {
        self.versions.lock().unwrap().entry(account_id.to_string()).or_default().push(token.to_string());
    }

    /// Every token stored for the account, oldest first.
    pub fn versions(&self, account_id: &str) -> Vec<String> {
        self.versions.lock().unwrap().get(account_id).cloned().unwrap_or_default()
    }

    fn current(&self, account_id: &str) -> Result<String> {
        self.versions
            .lock()
            .unwrap()
            .get(account_id)
            .and_then(|v| v.last().cloned())
            .ok_or_else(|| Error::NotFound(format!("no token stored for account {account_id}")))
    }
}

#[async_trait]
impl TokenSource for MemoryTokens {
    /// Like the Secrets Manager adapter: the first token read is cached until forgotten.
    async fn token(&self, account_id: &str) -> Result<SecretString> {
        if let Some(token) = self.handed_out.lock().unwrap().get(account_id) {
            return Ok(SecretString::from(token.clone()));
        }
        let token = self.current(account_id)?;
        self.handed_out.lock().unwrap().insert(account_id.to_string(), token.clone());
        Ok(SecretString::from(token))
    }

    fn forget(&self, account_id: &str) {
        self.handed_out.lock().unwrap().remove(account_id);
    }

    async fn reread(&self, account_id: &str) -> Result<Reread> {
        let stored = SecretString::from(self.current(account_id)?);
        let previous = self
            .handed_out
            .lock()
            .unwrap()
            .insert(account_id.to_string(), stored.expose_secret().to_string())
            .map(SecretString::from);
        Ok(reread_outcome(previous.as_ref(), stored))
    }
}

#[async_trait]
impl TokenVault for MemoryTokens {
    async fn put_token(&self, account_id: &str, token: &SecretString) -> Result<()> {
        self.replace(account_id, token.expose_secret());
        self.handed_out.lock().unwrap().insert(account_id.to_string(), token.expose_secret().to_string());
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reread_after_a_refresh_hands_out_the_new_token_once() {
        let tokens = MemoryTokens::with("A1", "IGAA-old");
        assert_eq!(tokens.token("A1").await.unwrap().expose_secret(), "IGAA-old");
        // refresh-tokens stores a new version; this instance still has the old one cached.
        tokens.replace("A1", "IGAA-new");
        assert_eq!(tokens.token("A1").await.unwrap().expose_secret(), "IGAA-old");
        match tokens.reread("A1").await.unwrap() {
            Reread::Changed(token) => assert_eq!(token.expose_secret(), "IGAA-new"),
            Reread::Same => panic!("the stored token changed"),
        }
        assert_eq!(tokens.token("A1").await.unwrap().expose_secret(), "IGAA-new");
        // Nothing new since: the refused token really is the stored one.
        assert!(matches!(tokens.reread("A1").await.unwrap(), Reread::Same));
    }

    #[tokio::test]
    async fn a_source_without_a_cache_never_claims_a_change() {
        let tokens = StaticTokens(HashMap::from([("A1".to_string(), "IGAA".to_string())]));
        assert!(matches!(tokens.reread("A1").await.unwrap(), Reread::Same));
        assert!(matches!(tokens.reread("nobody").await, Err(Error::NotFound(_))));
    }

    #[test]
    fn a_token_never_shows_in_debug_output() {
        let token = secrets::parse_token_secret("IGAA-very-secret").unwrap();
        assert!(!format!("{token:?}").contains("very-secret"));
    }
}
