//! Signing requests the way Shopify and Contentful do, for senders the tests play: handler tests
//! that sign changed bodies, the end-to-end tests that re-sign the samples with the current
//! time, and the soak. (Standard Webhooks senders use the `standardwebhooks` crate.) The
//! verifiers are checked against the samples, which `samples/generate.py` (a second, independent
//! implementation) signed, not against these.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

fn mac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// `X-Shopify-Hmac-Sha256`: base64 of HMAC-SHA256 over the body, keyed with the secret's bytes.
pub fn shopify_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = mac(secret.as_bytes());
    mac.update(body);
    BASE64.encode(mac.finalize().into_bytes())
}

/// The three `x-contentful-*` headers that sign `headers` (all of them), like the toolkit's
/// `signRequest` for a path without a query.
pub fn contentful_headers(secret: &str, method: &str, path: &str, headers: &[(&str, &str)], timestamp_ms: i64, body: &[u8]) -> Vec<(String, String)> {
    let mut signed: Vec<(String, String)> =
        headers.iter().map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string())).collect();
    let mut names: Vec<String> = signed.iter().map(|(n, _)| n.clone()).collect();
    names.extend(["x-contentful-signed-headers".to_string(), "x-contentful-timestamp".to_string()]);
    names.sort();
    names.dedup();
    let list = names.join(",");
    signed.push(("x-contentful-signed-headers".into(), list.clone()));
    signed.push(("x-contentful-timestamp".into(), timestamp_ms.to_string()));
    signed.sort();
    let header_part = signed.iter().map(|(n, v)| format!("{n}:{v}")).collect::<Vec<_>>().join(";");
    let mut mac = mac(secret.as_bytes());
    mac.update(format!("{}\n{path}\n{header_part}\n", method.to_ascii_uppercase()).as_bytes());
    mac.update(body);
    let signature: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    vec![
        ("x-contentful-signature".into(), signature),
        ("x-contentful-signed-headers".into(), list),
        ("x-contentful-timestamp".into(), timestamp_ms.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::samples::{self, CONTENTFUL_AT_MS, CONTENTFUL_SECRET, SHOPIFY_SECRET};

    #[test]
    fn signs_the_samples_exactly_as_the_generator_did() {
        for name in ["shopify-products-create", "shopify-products-update"] {
            assert_eq!(shopify_signature(SHOPIFY_SECRET, &samples::body(name)), samples::header(name, "x-shopify-hmac-sha256"), "{name}");
        }
        let name = "contentful-entry-publish";
        let signed = ["content-type", "x-contentful-crn", "x-contentful-topic", "x-contentful-webhook-name"].map(|n| (n, samples::header(name, n)));
        let signed: Vec<(&str, &str)> = signed.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let out = contentful_headers(CONTENTFUL_SECRET, "POST", "/webhooks/contentful", &signed, CONTENTFUL_AT_MS, &samples::body(name));
        assert_eq!(out.len(), 3);
        for (n, v) in out {
            assert_eq!(samples::header(name, &n), v, "{n}");
        }
    }

    #[test]
    fn a_changed_byte_or_secret_changes_the_signature() {
        let name = "shopify-products-create";
        let mut body = samples::body(name);
        let good = shopify_signature(SHOPIFY_SECRET, &body);
        assert_ne!(shopify_signature("another-secret", &body), good);
        body[0] ^= 1;
        assert_ne!(shopify_signature(SHOPIFY_SECRET, &body), good);
    }
}
