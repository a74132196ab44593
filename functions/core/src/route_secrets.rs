//! Per-route signing secrets: each route's tenant (a Shopify shop, a WordPress site, a Contentful
//! space, an EventBridge event source) has a Secrets Manager secret of its own,
//! `<ROUTE_SECRET_PREFIX><source>/<tenant>`, holding one or more signing secrets (several during
//! a rotation). A request is verified only with the secrets of the tenant it claims, so one
//! tenant's secret never verifies another's request.
//!
//! The secrets are cached per function instance for [`CACHE_FOR`]; a request that fails to
//! verify with cached secrets re-reads them (at most once per [`REREAD_AFTER`] per route), so a
//! secret added by `instapipe routes secret add` verifies within seconds, and a flood of forged
//! requests costs at most one read per route every few seconds.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::routing::RouteSource;

pub const DEFAULT_ROUTE_SECRET_PREFIX: &str = "instapipe/routes/";
/// How long an instance trusts the secrets it read, unless `ROUTE_SECRET_CACHE_SECS` says
/// otherwise: a route given its own secrets stops taking the shared one within this time.
pub const CACHE_FOR: Duration = Duration::from_secs(300);
/// A failed verification re-reads a route's secrets only when they are at least this old.
pub const REREAD_AFTER: Duration = Duration::from_secs(2);
/// More than this many secrets at once is not a rotation any more.
pub const MAX_SECRETS: usize = 5;

/// The tenant a route's secrets belong to.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteSecretId {
    pub source: RouteSource,
    /// Normalised: the shop domain, the site without its scheme, the space id, the event source.
    pub tenant: String,
}

impl RouteSecretId {
    pub fn new(source: RouteSource, tenant: impl Into<String>) -> RouteSecretId {
        RouteSecretId { source, tenant: tenant.into() }
    }

    /// `<prefix><source>/<tenant>`; characters Secrets Manager does not allow in a name (and
    /// `=` itself) are written `=XX` (hex), so distinct tenants never share a secret.
    pub fn secret_name(&self, prefix: &str) -> String {
        let mut name = format!("{prefix}{}/", self.source.as_str());
        for b in self.tenant.bytes() {
            if b.is_ascii_alphanumeric() || b"/_+.@-".contains(&b) {
                name.push(b as char);
            } else {
                name.push_str(&format!("={b:02X}"));
            }
        }
        name
    }
}

impl std::fmt::Display for RouteSecretId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.source.as_str(), self.tenant)
    }
}

/// The value of a route secret: `{"secrets": ["...", "..."]}`, oldest first.
#[derive(Clone, Default, Deserialize, Serialize)]
pub struct RouteSecretDocument {
    pub secrets: Vec<String>,
}

/// Names only how many secrets there are.
impl std::fmt::Debug for RouteSecretDocument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RouteSecretDocument({} secrets, redacted)", self.secrets.len())
    }
}

impl RouteSecretDocument {
    /// The secrets as verifiers take them: separated by spaces.
    pub fn joined(&self) -> SecretString {
        SecretString::from(self.secrets.join(" "))
    }

    /// What the operator sees of a secret: the first 8 hex digits of its SHA-256.
    pub fn fingerprint(secret: &str) -> String {
        use sha2::{Digest, Sha256};
        Sha256::digest(secret.as_bytes()).iter().take(4).map(|b| format!("{b:02x}")).collect()
    }

    pub fn fingerprints(&self) -> Vec<String> {
        self.secrets.iter().map(|s| Self::fingerprint(s)).collect()
    }
}

/// The routes' signing secrets.
#[async_trait]
pub trait RouteSecretStore: Send + Sync {
    /// The tenant's secrets (possibly cached); `None`: it has none of its own.
    async fn secrets(&self, id: &RouteSecretId) -> Result<Option<RouteSecretDocument>>;
    /// Reads them again if the cached ones are older than [`REREAD_AFTER`]; `None` when they
    /// were not read again (a store without a cache has nothing newer).
    async fn reread(&self, _id: &RouteSecretId) -> Result<Option<Option<RouteSecretDocument>>> {
        Ok(None)
    }
}

struct Cached {
    read_at: Instant,
    document: Option<RouteSecretDocument>,
}

/// Route secrets in Secrets Manager, cached per instance.
pub struct SecretsManagerRouteSecrets {
    client: Client,
    prefix: String,
    cache_for: Duration,
    cache: Mutex<HashMap<RouteSecretId, Cached>>,
}

impl SecretsManagerRouteSecrets {
    pub fn new(client: Client, prefix: impl Into<String>, cache_for: Duration) -> Self {
        SecretsManagerRouteSecrets { client, prefix: prefix.into(), cache_for, cache: Mutex::new(HashMap::new()) }
    }

    async fn read(&self, id: &RouteSecretId) -> Result<Option<RouteSecretDocument>> {
        let document = read_document(&self.client, &self.prefix, id).await?;
        self.cache.lock().unwrap().insert(id.clone(), Cached { read_at: Instant::now(), document: document.clone() });
        Ok(document)
    }
}

#[async_trait]
impl RouteSecretStore for SecretsManagerRouteSecrets {
    async fn secrets(&self, id: &RouteSecretId) -> Result<Option<RouteSecretDocument>> {
        if let Some(cached) = self.cache.lock().unwrap().get(id)
            && cached.read_at.elapsed() < self.cache_for
        {
            return Ok(cached.document.clone());
        }
        self.read(id).await
    }

    async fn reread(&self, id: &RouteSecretId) -> Result<Option<Option<RouteSecretDocument>>> {
        let fresh = self.cache.lock().unwrap().get(id).is_some_and(|c| c.read_at.elapsed() < REREAD_AFTER);
        if fresh {
            return Ok(None);
        }
        self.read(id).await.map(Some)
    }
}

/// Reads a route's secret document: `None` when the secret does not exist. The error names
/// the secret and what it must hold, never what it holds.
pub async fn read_document(client: &Client, prefix: &str, id: &RouteSecretId) -> Result<Option<RouteSecretDocument>> {
    let name = id.secret_name(prefix);
    match client.get_secret_value().secret_id(&name).send().await {
        Ok(out) => {
            let value = out.secret_string().unwrap_or_default();
            let document: RouteSecretDocument = serde_json::from_str(value)
                .map_err(|_| Error::Config(format!("secret {name} must be a JSON object {{\"secrets\": [\"...\"]}}")))?;
            let secrets: Vec<String> = document.secrets.into_iter().filter(|s| !s.trim().is_empty()).collect();
            Ok((!secrets.is_empty()).then_some(RouteSecretDocument { secrets }))
        }
        Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => Ok(None),
        Err(e) => Err(Error::aws("Secrets Manager GetSecretValue", e)),
    }
}

/// Stores the route's secrets as the secret's new current version (creating it).
pub async fn write_document(client: &Client, prefix: &str, id: &RouteSecretId, document: &RouteSecretDocument) -> Result<()> {
    let value = serde_json::to_string(document).expect("a list of strings");
    let description = format!("instapipe: signing secrets of the {id} route");
    crate::secrets::write(client, &id.secret_name(prefix), &value, &description).await
}

/// Route secrets in memory (unit tests); replaceable behind a reader's back, like Secrets
/// Manager, and read fresh every time.
#[derive(Default)]
pub struct MemoryRouteSecrets {
    documents: Mutex<HashMap<RouteSecretId, Vec<String>>>,
}

impl MemoryRouteSecrets {
    pub fn set(&self, source: RouteSource, tenant: &str, secrets: &[&str]) {
        self.documents
            .lock()
            .unwrap()
            .insert(RouteSecretId::new(source, tenant), secrets.iter().map(|s| s.to_string()).collect());
    }
}

#[async_trait]
impl RouteSecretStore for MemoryRouteSecrets {
    async fn secrets(&self, id: &RouteSecretId) -> Result<Option<RouteSecretDocument>> {
        Ok(self.documents.lock().unwrap().get(id).filter(|s| !s.is_empty()).map(|s| RouteSecretDocument { secrets: s.clone() }))
    }
}

/// A secret no sender knows, for requests that claim an unknown route: they are checked like
/// any other and fail the same way, so the answer does not tell whether the route exists.
pub fn decoy_secret(source: RouteSource) -> SecretString {
    use rand::Rng;
    let mut rng = rand::rng();
    let bytes: Vec<u8> = (0..32).map(|_| rng.random()).collect();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    SecretString::from(match source {
        // Standard Webhooks keys are base64 after whsec_.
        RouteSource::Wordpress | RouteSource::Eventbridge => {
            use base64::Engine;
            format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(&bytes))
        }
        // Contentful signing secrets are exactly 64 characters.
        RouteSource::Contentful | RouteSource::Shopify => hex,
    })
}

/// A new secret for the route, as its sender expects one: `whsec_` + 32 random bytes in base64
/// (WordPress, EventBridge), 64 random alphanumerics (Contentful). Shopify makes its own.
pub fn generate(source: RouteSource) -> Option<SecretString> {
    use rand::Rng;
    use rand::distr::Alphanumeric;
    match source {
        RouteSource::Shopify => None,
        RouteSource::Contentful => Some(SecretString::from(rand::rng().sample_iter(&Alphanumeric).take(64).map(char::from).collect::<String>())),
        RouteSource::Wordpress | RouteSource::Eventbridge => Some(decoy_secret(source)),
    }
}

/// Checks that `secret` is usable by the source's verifier; the message never repeats it.
pub fn check_secret(source: RouteSource, secret: &str) -> Result<()> {
    if secret.trim().is_empty() || secret.chars().any(|c| c.is_whitespace() || c == ',') {
        return Err(Error::Config("a signing secret is one word: no spaces or commas".into()));
    }
    match source {
        RouteSource::Shopify => crate::sources::shopify::ShopifyVerifier::new(secret).map(drop),
        RouteSource::Contentful => crate::sources::contentful::ContentfulVerifier::new(secret).map(drop),
        RouteSource::Wordpress | RouteSource::Eventbridge => {
            crate::sources::standard_webhooks::StandardWebhookVerifier::new(secret).map(drop)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn secret_names_keep_allowed_characters_and_escape_the_rest() {
        let id = RouteSecretId::new(RouteSource::Shopify, "example-store.myshopify.com");
        assert_eq!(id.secret_name("instapipe/routes/"), "instapipe/routes/shopify/example-store.myshopify.com");
        let id = RouteSecretId::new(RouteSource::Wordpress, "blog.example.com:8080/~news");
        assert_eq!(id.secret_name("p/"), "p/wordpress/blog.example.com=3A8080/=7Enews");
        // `=` is escaped too, so a tenant that looks like an escape is another name.
        let a = RouteSecretId::new(RouteSource::Eventbridge, "a=3A").secret_name("");
        let b = RouteSecretId::new(RouteSource::Eventbridge, "a:").secret_name("");
        assert_ne!(a, b);
    }

    #[test]
    fn generated_secrets_are_what_the_verifiers_take_and_decoys_differ() {
        for source in [RouteSource::Contentful, RouteSource::Wordpress, RouteSource::Eventbridge] {
            let secret = generate(source).unwrap();
            check_secret(source, secret.expose_secret()).unwrap();
            assert_ne!(secret.expose_secret(), generate(source).unwrap().expose_secret());
        }
        assert!(generate(RouteSource::Shopify).is_none(), "Shopify makes the app's secret");
        check_secret(RouteSource::Contentful, decoy_secret(RouteSource::Contentful).expose_secret()).unwrap();
        assert!(check_secret(RouteSource::Contentful, "short").is_err());
        assert!(check_secret(RouteSource::Shopify, "two words").is_err());
        let err = check_secret(RouteSource::Wordpress, "whsec_!!!leak").unwrap_err().to_string();
        assert!(!err.contains("leak"), "{err}");
    }

    #[test]
    fn documents_never_show_their_secrets() {
        let doc = RouteSecretDocument { secrets: vec!["very-secret-1".into(), "very-secret-2".into()] };
        let debug = format!("{doc:?}");
        assert!(!debug.contains("very-secret"), "{debug}");
        assert_eq!(doc.fingerprints().len(), 2);
        assert_eq!(doc.fingerprints()[0].len(), 8);
        assert!(!doc.fingerprints()[0].contains("very"));
    }
}
