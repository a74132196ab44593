//! The routed sources on the local stack: their signing secrets (`INSTAPIPE_*_SECRET`) and a
//! demo routing that sends the shared fixtures' shop, space, site and EventBridge source to the
//! demo account.

use serde_json::json;

/// Signing secrets of the routed sources. The defaults are the test-only secrets of
/// shared/fixtures/webhooks, so its samples (re-signed with the current time) work as they are.
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

impl Default for SourceSecrets {
    fn default() -> Self {
        SourceSecrets {
            shopify: "test-secret".into(),
            contentful: "test-secret-contentful-webhooks-0123456789abcdef0123456789abcdef".into(),
            contentful_delivery_token: "local-contentful-delivery-token".into(),
            wordpress: "whsec_dGVzdC1zZWNyZXQtc3RhbmRhcmQtd2ViaG9va3MtMDE=".into(),
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

/// `ROUTING_CONFIG` unless the environment gives one: the fixtures' sources, to `account`.
pub fn demo_routing(account: &str) -> String {
    json!({"routes": [
        {"source": "shopify", "shop": "example-store.myshopify.com", "accounts": [account]},
        {"source": "contentful", "space": "exmpl0space1", "content_type": "socialPost", "accounts": [account],
         "fields": {"media": ["heroImage", "gallery"], "publish_at": "publishAt"}},
        {"source": "wordpress", "site": "https://blog.example.com/", "accounts": [account]},
        {"source": "eventbridge", "event_source": "com.example.cms-bridge", "accounts": [account]},
    ]})
    .to_string()
}
