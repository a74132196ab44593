//! What the routed sources (Shopify, Contentful, WordPress, EventBridge) need at run time: their
//! verifiers, the routing and the asset resolver. What they make of an event is
//! [`mapped`](super::mapped).

use std::sync::Arc;

use crate::config::IngestSettings;
use crate::error::{Error, Result};
use crate::routing::{RouteSource, Routing};
use crate::secrets::WebhookSecrets;
use crate::sources::contentful::ContentfulVerifier;
use crate::sources::contentful_assets::{AssetResolver, DeliveryApi};
use crate::sources::shopify::ShopifyVerifier;
use crate::sources::standard_webhooks::StandardWebhookVerifier;

/// The routed sources' dependencies. A source without a secret answers 404 on its route.
pub struct SourceDeps {
    pub routing: Routing,
    pub shopify: Option<ShopifyVerifier>,
    pub contentful: Option<ContentfulVerifier>,
    pub wordpress: Option<StandardWebhookVerifier>,
    pub assets: Arc<dyn AssetResolver>,
}

impl Default for SourceDeps {
    fn default() -> Self {
        SourceDeps {
            routing: Routing::default(),
            shopify: None,
            contentful: None,
            wordpress: None,
            assets: Arc::new(DeliveryApi::unconfigured()),
        }
    }
}

impl SourceDeps {
    /// Builds the verifiers from the webhook secrets and checks that every routed source can be
    /// verified.
    pub fn load(secrets: &WebhookSecrets, settings: &IngestSettings) -> Result<SourceDeps> {
        use crate::secrets::webhook_keys::*;
        let secrets_name = &settings.webhook_secrets_name;
        let get = |key: &str| secrets.get(key);
        let deps = SourceDeps {
            routing: settings.routing.clone(),
            shopify: get(SHOPIFY).map(ShopifyVerifier::new).transpose()?,
            contentful: get(CONTENTFUL).map(ContentfulVerifier::new).transpose()?,
            wordpress: get(WORDPRESS).map(StandardWebhookVerifier::new).transpose()?,
            assets: Arc::new(DeliveryApi::new(
                &settings.contentful_delivery_base_url,
                get(CONTENTFUL_DELIVERY_TOKEN).map(str::to_string),
            )?),
        };
        let needs = [
            (RouteSource::Shopify, SHOPIFY, deps.shopify.is_some()),
            (RouteSource::Contentful, CONTENTFUL, deps.contentful.is_some()),
            (RouteSource::Contentful, CONTENTFUL_DELIVERY_TOKEN, get(CONTENTFUL_DELIVERY_TOKEN).is_some()),
            (RouteSource::Wordpress, WORDPRESS, deps.wordpress.is_some()),
        ];
        for (source, key, present) in needs {
            if deps.routing.uses(source) && !present {
                return Err(Error::Config(format!(
                    "ROUTING_CONFIG has {} routes but secret {secrets_name} has no \"{key}\" entry",
                    source.as_str()
                )));
            }
        }
        Ok(deps)
    }
}
