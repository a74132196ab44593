//! The routed sources on the local stack: their signing secrets (`INSTAPIPE_*_SECRET`) and a
//! demo routing that sends the signed samples' shop, space, site and EventBridge source (those
//! of instapipe-test-support) to the demo account.

use serde_json::json;

/// Signing secrets of the routed sources. The defaults are fixed demo secrets of the local stack
/// (like [`DEMO_SECRET`](crate::settings::DEMO_SECRET)); a test that sends the signed samples as
/// they are sets the samples' own secrets.
#[derive(Clone, Debug)]
pub struct SourceSecrets {
    /// `INSTAPIPE_SHOPIFY_SECRET`: the Shopify app's client secret.
    pub shopify: String,
    /// `INSTAPIPE_CONTENTFUL_SECRET`: the Contentful webhook signing secret (64 characters).
    pub contentful: String,
    /// `INSTAPIPE_CONTENTFUL_DELIVERY_TOKEN`: the Contentful Delivery API token.
    pub contentful_delivery_token: String,
    /// `INSTAPIPE_WORDPRESS_SECRET`: Standard Webhooks secret(s) of the WordPress plugin.
    pub wordpress: String,
}

/// Shopify signing secret unless `INSTAPIPE_SHOPIFY_SECRET` gives another.
pub const DEMO_SHOPIFY_SECRET: &str = "local-demo-shopify-secret";
/// Contentful signing secret (64 characters) unless `INSTAPIPE_CONTENTFUL_SECRET` gives another.
pub const DEMO_CONTENTFUL_SECRET: &str = "local-demo-contentful-signing-secret-0123456789abcdef0123456789a";
/// WordPress (Standard Webhooks) secret unless `INSTAPIPE_WORDPRESS_SECRET` gives another.
pub const DEMO_WORDPRESS_SECRET: &str = "whsec_bG9jYWwtZGVtby13b3JkcHJlc3Mtc2lnbmluZy1rZXk=";

impl Default for SourceSecrets {
    fn default() -> Self {
        SourceSecrets {
            shopify: DEMO_SHOPIFY_SECRET.into(),
            contentful: DEMO_CONTENTFUL_SECRET.into(),
            contentful_delivery_token: "local-contentful-delivery-token".into(),
            wordpress: DEMO_WORDPRESS_SECRET.into(),
        }
    }
}

impl SourceSecrets {
    pub fn from_env() -> SourceSecrets {
        let var = |name: &str, default: String| std::env::var(name).ok().filter(|v| !v.is_empty()).unwrap_or(default);
        let d = SourceSecrets::default();
        SourceSecrets {
            shopify: var("INSTAPIPE_SHOPIFY_SECRET", d.shopify),
            contentful: var("INSTAPIPE_CONTENTFUL_SECRET", d.contentful),
            contentful_delivery_token: var("INSTAPIPE_CONTENTFUL_DELIVERY_TOKEN", d.contentful_delivery_token),
            wordpress: var("INSTAPIPE_WORDPRESS_SECRET", d.wordpress),
        }
    }
}

/// `ROUTING_CONFIG` unless the environment gives one: the signed samples' sources, to `account`.
pub fn demo_routing(account: &str) -> String {
    json!({"routes": [
        {"source": "shopify", "shop": "demo-pier-goods.myshopify.com", "accounts": [account]},
        {"source": "contentful", "space": "demo0space7", "content_type": "instagramPost", "accounts": [account],
         "fields": {"media": ["heroImage", "gallery"], "publish_at": "publishAt"}},
        {"source": "wordpress", "site": "https://news.example.org/", "accounts": [account]},
        {"source": "eventbridge", "event_source": "com.example.cms-bridge", "accounts": [account]},
    ]})
    .to_string()
}
