//! The signed sample requests of `samples/`, compiled in (so a test reads nothing at run time,
//! and a missing file fails the build). The secrets and signing times are those of
//! `samples/generate.py`, which wrote the files; see `samples/README.md`.

use serde_json::Value;

/// `X-Shopify-Hmac-Sha256` key (the app's client secret; HMAC key = its UTF-8 bytes).
pub const SHOPIFY_SECRET: &str = "instapipe-test-shopify-client-secret";
/// Contentful webhook signing secret (64 characters; HMAC key = its UTF-8 bytes).
pub const CONTENTFUL_SECRET: &str = "instapipe-test-contentful-signing-secret-0112233445566778899aabb";
/// Standard Webhooks secret of the WordPress sample's current key (`instapipe-test-wordpress-key-new`).
pub const WORDPRESS_SECRET: &str = "whsec_aW5zdGFwaXBlLXRlc3Qtd29yZHByZXNzLWtleS1uZXc=";
/// The key before a rotation (`instapipe-test-wordpress-key-old`); the sample carries a token of each.
pub const WORDPRESS_PREVIOUS_SECRET: &str = "whsec_aW5zdGFwaXBlLXRlc3Qtd29yZHByZXNzLWtleS1vbGQ=";

/// When the Shopify samples were sent (Shopify signs no time), in Unix seconds.
pub const SHOPIFY_AT: i64 = 1791877860;
/// `x-contentful-timestamp` of the Contentful sample, in Unix milliseconds.
pub const CONTENTFUL_AT_MS: i64 = 1791877925250;
/// `webhook-timestamp` of the WordPress sample, in Unix seconds.
pub const WORDPRESS_AT: i64 = 1791877990;

macro_rules! samples {
    ($($name:literal),* $(,)?) => {
        /// Every sample: name, body bytes, headers file.
        const SAMPLES: &[(&str, &[u8], &str)] = &[
            $(($name, include_bytes!(concat!("../samples/", $name, ".body.json")), include_str!(concat!("../samples/", $name, ".headers.json")))),*
        ];
    };
}

samples!(
    "shopify-products-create",
    "shopify-products-update",
    "contentful-entry-publish",
    "wordpress-post-published",
    "eventbridge-publish-requested",
    "eventbridge-scheduler-publish-due",
);

fn sample(name: &str) -> &'static (&'static str, &'static [u8], &'static str) {
    SAMPLES.iter().find(|(n, _, _)| *n == name).unwrap_or_else(|| panic!("no sample named {name}"))
}

/// The names of every sample.
pub fn names() -> impl Iterator<Item = &'static str> {
    SAMPLES.iter().map(|(n, _, _)| *n)
}

/// The body's exact bytes: what was signed.
pub fn body(name: &str) -> Vec<u8> {
    sample(name).1.to_vec()
}

/// The body parsed (re-serialising it changes the bytes, so never sign or verify this).
pub fn json(name: &str) -> Value {
    serde_json::from_slice(sample(name).1).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The headers, names as the sender spelled them.
pub fn headers(name: &str) -> Vec<(String, String)> {
    let raw: serde_json::Map<String, Value> = serde_json::from_str(sample(name).2).unwrap_or_else(|e| panic!("{name}: {e}"));
    raw.into_iter().map(|(k, v)| (k, v.as_str().expect("header values are strings").to_string())).collect()
}

/// One header's value, its name compared case-insensitively.
pub fn header(name: &str, header: &str) -> String {
    headers(name)
        .into_iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(header))
        .unwrap_or_else(|| panic!("{name} has no header {header}"))
        .1
}
