//! What the routed sources (Shopify, Contentful, WordPress, EventBridge) need at run time: the
//! routing, each route's signing secrets, the shared secrets being migrated away from, and the
//! asset resolver. What they make of an event is [`mapped`](super::mapped).
//!
//! **Which secrets verify a request.** A request claims a tenant (the Shopify shop header, the
//! WordPress `data.site`, the Contentful space, the EventBridge `source`). Only that tenant's
//! route secrets verify it. A tenant without secrets of its own is verified with its source's
//! shared secret (the single secret of earlier versions, see [`SourceDeps::shared`]) until the
//! operator gives it its own; once it has them, the shared one no longer verifies it. A request
//! for a tenant no route names, with no shared secret, is checked against a random decoy secret,
//! so it fails exactly as a forged signature does and the answer does not say whether the route
//! exists.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use secrecy::{ExposeSecret, SecretString};

use super::RequestError;
use crate::config::IngestSettings;
use crate::error::{Error, Result};
use crate::route_secrets::{self, RouteSecretDocument, RouteSecretId, RouteSecretStore};
use crate::routing::{RouteSource, Routing};
use crate::secrets::WebhookSecrets;
use crate::sources::contentful::ContentfulVerifier;
use crate::sources::contentful_assets::{AssetResolver, DeliveryApi};
use crate::sources::shopify::ShopifyVerifier;
use crate::sources::standard_webhooks::StandardWebhookVerifier;

/// The routed sources' dependencies.
pub struct SourceDeps {
    pub routing: Routing,
    /// Each tenant's own signing secrets.
    pub route_secrets: Arc<dyn RouteSecretStore>,
    /// Migration: the one secret per source of the webhook-secrets secret (`shopify`,
    /// `contentful`, `wordpress`), which verifies the tenants that have no secrets of their own.
    pub shared: BTreeMap<RouteSource, SecretString>,
    pub assets: Arc<dyn AssetResolver>,
}

impl Default for SourceDeps {
    fn default() -> Self {
        SourceDeps {
            routing: Routing::default(),
            route_secrets: Arc::new(route_secrets::MemoryRouteSecrets::default()),
            shared: BTreeMap::new(),
            assets: Arc::new(DeliveryApi::unconfigured()),
        }
    }
}

/// Whose secrets verified a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerifiedBy {
    /// The claimed tenant's own secrets.
    Route(RouteSecretId),
    /// The source's shared secret (a tenant without secrets of its own, or no route).
    Shared,
}

impl SourceDeps {
    /// Reads the shared secrets from the webhook-secrets secret, checks that each is usable,
    /// and audits the routes: see [`SourceDeps::audit`].
    pub async fn load(secrets: &WebhookSecrets, settings: &IngestSettings, route_secrets: Arc<dyn RouteSecretStore>) -> Result<SourceDeps> {
        use crate::secrets::webhook_keys::*;
        let mut shared = BTreeMap::new();
        for (source, key) in [(RouteSource::Shopify, SHOPIFY), (RouteSource::Contentful, CONTENTFUL), (RouteSource::Wordpress, WORDPRESS)] {
            if let Some(value) = secrets.get(key) {
                match source {
                    RouteSource::Shopify => ShopifyVerifier::new(value).map(drop)?,
                    RouteSource::Contentful => ContentfulVerifier::new(value).map(drop)?,
                    _ => StandardWebhookVerifier::new(value).map(drop)?,
                }
                shared.insert(source, SecretString::from(value.to_string()));
            }
        }
        let delivery_token = secrets.get(CONTENTFUL_DELIVERY_TOKEN);
        if settings.routing.uses(RouteSource::Contentful) && delivery_token.is_none() {
            return Err(Error::Config(format!(
                "ROUTING_CONFIG has contentful routes but secret {} has no \"{CONTENTFUL_DELIVERY_TOKEN}\" entry",
                settings.webhook_secrets_name
            )));
        }
        let deps = SourceDeps {
            routing: settings.routing.clone(),
            route_secrets,
            shared,
            assets: Arc::new(DeliveryApi::new(&settings.contentful_delivery_base_url, delivery_token.map(str::to_string))?),
        };
        deps.audit(&settings.webhook_secrets_name, &settings.route_secret_prefix).await?.log();
        Ok(deps)
    }

    /// Whether the source's route answers at all (404 otherwise): it has a shared secret or routes.
    pub fn configured(&self, source: RouteSource) -> bool {
        self.shared.contains_key(&source) || self.routing.uses(source)
    }

    /// Runs `check` (build the source's verifier from space-separated secrets and verify) with
    /// the secrets that may verify a request claiming `tenant` (normalised; `None` when the
    /// request names none). A failure with cached route secrets reads them again once (a secret
    /// added moments ago), within the store's limits.
    pub async fn verify<T>(
        &self,
        source: RouteSource,
        tenant: Option<&str>,
        check: impl Fn(&str) -> std::result::Result<T, RequestError>,
    ) -> std::result::Result<(T, VerifiedBy), RequestError> {
        let route = tenant.and_then(|t| self.routing.tenant(source, t));
        if let Some(route) = route {
            let id = RouteSecretId::new(source, route.tenant.clone());
            if let Some(document) = self.route_secrets.secrets(&id).await.map_err(unavailable)? {
                let first = check(document.joined().expose_secret());
                let outcome = match first {
                    Ok(value) => Ok(value),
                    Err(refused) => match self.route_secrets.reread(&id).await.map_err(unavailable)? {
                        Some(Some(newer)) => check(newer.joined().expose_secret()),
                        Some(None) => return self.verify_shared(source, check),
                        None => Err(refused),
                    },
                };
                return outcome.map(|value| (value, VerifiedBy::Route(id)));
            }
        }
        self.verify_shared(source, check)
    }

    fn verify_shared<T>(
        &self,
        source: RouteSource,
        check: impl Fn(&str) -> std::result::Result<T, RequestError>,
    ) -> std::result::Result<(T, VerifiedBy), RequestError> {
        match self.shared.get(&source) {
            Some(shared) => check(shared.expose_secret()).map(|value| (value, VerifiedBy::Shared)),
            None => {
                // Same checks, same failure, whether or not the route exists.
                let decoy = route_secrets::decoy_secret(source);
                match check(decoy.expose_secret()) {
                    Err(refused) => Err(refused),
                    Ok(_) => Err(RequestError::new(401, "invalid_signature", "the signature does not match")),
                }
            }
        }
    }

    /// The routes' standing: which tenants have secrets of their own, which still use their
    /// source's shared secret, which have neither (their requests answer 401).
    pub async fn audit(&self, webhook_secrets_name: &str, prefix: &str) -> Result<Audit> {
        let mut audit = Audit { webhook_secrets_name: webhook_secrets_name.to_string(), prefix: prefix.to_string(), ..Audit::default() };
        let tenants: BTreeSet<RouteSecretId> =
            self.routing.routes().iter().map(|r| RouteSecretId::new(r.source, r.tenant.clone())).collect();
        for id in tenants {
            let own = self.route_secrets.secrets(&id).await?;
            match own {
                Some(document) => audit.own.push((id, document)),
                None if self.shared.contains_key(&id.source) => audit.shared.push(id),
                // EventBridge had no signatures: its events stay trusted by IAM until the route has secrets.
                None if id.source == RouteSource::Eventbridge => audit.unsigned.push(id),
                None => audit.missing.push(id),
            }
        }
        audit.shared_sources = self.shared.keys().copied().collect();
        Ok(audit)
    }
}

/// See [`SourceDeps::audit`].
#[derive(Debug, Default)]
pub struct Audit {
    pub webhook_secrets_name: String,
    pub prefix: String,
    pub own: Vec<(RouteSecretId, RouteSecretDocument)>,
    /// Tenants verified with their source's shared secret: to migrate.
    pub shared: Vec<RouteSecretId>,
    /// EventBridge sources whose events are taken unsigned: to migrate.
    pub unsigned: Vec<RouteSecretId>,
    /// Tenants with no secret at all: every request answers 401.
    pub missing: Vec<RouteSecretId>,
    pub shared_sources: Vec<RouteSource>,
}

impl Audit {
    /// The start-up warning of a deployment still on shared secrets (names, never values).
    pub fn migration_warning(&self) -> Option<String> {
        if self.shared.is_empty() && self.unsigned.is_empty() && self.shared_sources.is_empty() {
            return None;
        }
        let list = |ids: &[RouteSecretId]| ids.iter().map(|id| format!("{id} ({})", id.secret_name(&self.prefix))).collect::<Vec<_>>().join(", ");
        let mut parts = Vec::new();
        if !self.shared.is_empty() {
            parts.push(format!(
                "these routes are verified with their source's shared secret in {}, which any of its senders can use for any route: {}",
                self.webhook_secrets_name,
                list(&self.shared)
            ));
        }
        if !self.unsigned.is_empty() {
            parts.push(format!("these EventBridge sources are taken unsigned: {}", list(&self.unsigned)));
        }
        if !self.shared_sources.is_empty() {
            let keys: Vec<&str> = self.shared_sources.iter().map(|s| s.as_str()).collect();
            parts.push(format!(
                "once every route has its own secrets, remove the entries {} from {}",
                keys.join(", "),
                self.webhook_secrets_name
            ));
        }
        Some(format!(
            "per-route signing secrets: {}. Give each route its own (`instapipe routes secret set <source> <tenant>`; README, \"Per-route signing secrets\")",
            parts.join("; ")
        ))
    }

    pub fn log(&self) {
        if let Some(warning) = self.migration_warning() {
            tracing::warn!(migrate = %warning, "routes still on shared signing secrets");
        }
        for id in &self.missing {
            tracing::error!(route = %id, secret = %id.secret_name(&self.prefix), "route has no signing secret: its requests answer 401");
        }
    }
}

fn unavailable(err: Error) -> RequestError {
    tracing::error!(error = %err, "could not read a route's signing secrets");
    RequestError::new(503, "unavailable", "the signing secrets could not be read; nothing was kept, retry later")
}

/// A route secret that its source's verifier cannot use (the operator CLI refuses such secrets,
/// so it was written by hand): the request cannot be verified.
pub fn unusable_secret(err: Error) -> RequestError {
    tracing::error!(error = %err, "a signing secret is not usable");
    RequestError::new(503, "unavailable", "the signing secrets are misconfigured; nothing was kept")
}
