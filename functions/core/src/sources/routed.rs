//! What the routed sources (Shopify, Contentful, WordPress, EventBridge) need at run time: their
//! verifiers, the routing and the asset resolver. What they make of an event is
//! [`mapped`](super::mapped).

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::routing::{RouteSource, Routing};
use crate::sources::contentful::ContentfulVerifier;
use crate::sources::contentful_assets::{AssetResolver, DeliveryApi};
use crate::sources::shopify::ShopifyVerifier;
use crate::sources::standard_webhooks::StandardWebhookVerifier;

/// Names of the entries in the webhook secrets' JSON object.
pub mod secret_names {
    pub const SHOPIFY: &str = "shopify";
    pub const CONTENTFUL: &str = "contentful";
    pub const WORDPRESS: &str = "wordpress";
    /// A Contentful Delivery API access token (read-only), for resolving asset links.
    pub const CONTENTFUL_DELIVERY_TOKEN: &str = "contentful_delivery_token";
}

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
    /// Builds the verifiers from the webhook secrets (`secrets_name` only names them in errors)
    /// and checks that every routed source can be verified.
    pub fn load(secrets: &HashMap<String, String>, secrets_name: &str, config: &Config) -> Result<SourceDeps> {
        use secret_names::*;
        let get = |key: &str| secrets.get(key).filter(|v| !v.trim().is_empty());
        let deps = SourceDeps {
            routing: config.routing.clone(),
            shopify: get(SHOPIFY).map(|s| ShopifyVerifier::new(s)).transpose()?,
            contentful: get(CONTENTFUL).map(|s| ContentfulVerifier::new(s)).transpose()?,
            wordpress: get(WORDPRESS).map(|s| StandardWebhookVerifier::new(s)).transpose()?,
            assets: Arc::new(DeliveryApi::new(
                &config.contentful_delivery_base_url,
                get(CONTENTFUL_DELIVERY_TOKEN).cloned(),
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
