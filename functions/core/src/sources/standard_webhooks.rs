//! Standard Webhooks (v1 symmetric) verification: HMAC-SHA256 over `{id}.{timestamp}.{body}` with
//! the base64-decoded `whsec_` key, any matching `v1,` token accepted (key rotation), compared in
//! constant time, inside a ±5 minute window.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;
use time::OffsetDateTime;

use super::RequestError;
use crate::error::Error;

pub const TOLERANCE_SECS: i64 = 300;

/// Verifies with one or more keys: during rotation the old and the new secret are both valid.
pub struct StandardWebhookVerifier {
    keys: Vec<Vec<u8>>,
}

/// Says how many keys there are, never what they are.
impl std::fmt::Debug for StandardWebhookVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StandardWebhookVerifier({} keys, redacted)", self.keys.len())
    }
}

impl StandardWebhookVerifier {
    /// `secrets`: one or more `whsec_<base64>` values separated by spaces or commas.
    pub fn new(secrets: &str) -> Result<Self, Error> {
        let keys = secrets
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .map(|s| BASE64.decode(s.strip_prefix("whsec_").unwrap_or(s)))
            .collect::<Result<Vec<_>, _>>()
            // The message never repeats the secret.
            .map_err(|_| Error::Config("a Standard Webhooks secret is not valid base64 after whsec_".into()))?;
        if keys.is_empty() || keys.iter().any(|k| k.is_empty()) {
            return Err(Error::Config("no Standard Webhooks secret configured".into()));
        }
        Ok(StandardWebhookVerifier { keys })
    }

    /// Returns the `webhook-id` (the idempotency key) of a genuine, fresh request.
    pub fn verify<'h>(&self, headers: &'h HeaderMap, body: &[u8], now: OffsetDateTime) -> Result<&'h str, RequestError> {
        let id = header(headers, "webhook-id")?;
        let timestamp = header(headers, "webhook-timestamp")?;
        let signatures = header(headers, "webhook-signature")?;
        let ts: i64 = timestamp
            .parse()
            .map_err(|_| unauthorized("webhook-timestamp is not a Unix time in seconds"))?;
        // Saturating: the header is read before anything is verified, so it may be any i64.
        let age = now.unix_timestamp().saturating_sub(ts);
        if age > TOLERANCE_SECS {
            return Err(unauthorized("webhook-timestamp is more than 5 minutes old"));
        }
        if age < -TOLERANCE_SECS {
            return Err(unauthorized("webhook-timestamp is more than 5 minutes in the future"));
        }
        let tokens: Vec<Vec<u8>> = signatures
            .split(' ')
            .filter_map(|token| token.strip_prefix("v1,"))
            .filter_map(|b64| BASE64.decode(b64).ok())
            .collect();
        let genuine = self.keys.iter().any(|key| {
            tokens.iter().any(|sig| {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
                mac.update(id.as_bytes());
                mac.update(b".");
                mac.update(timestamp.as_bytes());
                mac.update(b".");
                mac.update(body);
                mac.verify_slice(sig).is_ok()
            })
        });
        if genuine { Ok(id) } else { Err(unauthorized("webhook-signature does not match")) }
    }
}

impl StandardWebhookVerifier {
    /// Verifies `v1,<base64>` tokens (space-separated) over a message signed the same way but
    /// carried elsewhere than in headers (EventBridge events).
    pub fn verify_message(&self, message: &[u8], signatures: &str) -> Result<(), RequestError> {
        let tokens: Vec<Vec<u8>> =
            signatures.split(' ').filter_map(|token| token.strip_prefix("v1,")).filter_map(|b64| BASE64.decode(b64).ok()).collect();
        let genuine = self.keys.iter().any(|key| {
            tokens.iter().any(|sig| {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
                mac.update(message);
                mac.verify_slice(sig).is_ok()
            })
        });
        if genuine { Ok(()) } else { Err(unauthorized("the signature does not match")) }
    }

    /// `v1,<base64>` of the message with the first key (the local stack and tests sign with it).
    pub fn sign_message(&self, message: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.keys[0]).expect("HMAC takes keys of any length");
        mac.update(message);
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, RequestError> {
    headers
        .get(name)
        .ok_or_else(|| unauthorized(format!("missing header {name}")))?
        .to_str()
        .map_err(|_| unauthorized(format!("header {name} is not visible ASCII")))
}

fn unauthorized(message: impl Into<String>) -> RequestError {
    RequestError::new(401, "invalid_signature", message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::fixtures;
    use instapipe_test_support::samples::{WORDPRESS_AT as FIXTURE_TS, WORDPRESS_PREVIOUS_SECRET as PREVIOUS, WORDPRESS_SECRET as CURRENT};
    use time::macros::datetime;

    fn fixture() -> (HeaderMap, Vec<u8>) {
        let name = "wordpress-post-published";
        (fixtures::headers(name), fixtures::body(name))
    }

    fn at(ts: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(ts).unwrap()
    }

    #[test]
    fn the_fixture_verifies_with_either_key_inside_the_window() {
        let (headers, body) = fixture();
        for secret in [CURRENT, PREVIOUS] {
            let v = StandardWebhookVerifier::new(secret).unwrap();
            for ts in [FIXTURE_TS - 300, FIXTURE_TS, FIXTURE_TS + 300] {
                assert!(v.verify(&headers, &body, at(ts)).unwrap().starts_with("msg_"));
            }
        }
    }

    #[test]
    fn the_fixtures_tokens_are_what_the_reference_library_signs_with_each_key() {
        // The sample was signed by samples/generate.py; the standardwebhooks crate is a second,
        // independent implementation of the scheme.
        let (headers, body) = fixture();
        let id = headers["webhook-id"].to_str().unwrap();
        let tokens: Vec<&str> = headers["webhook-signature"].to_str().unwrap().split(' ').collect();
        let theirs = |secret| standardwebhooks::Webhook::new(secret).unwrap().sign(id, FIXTURE_TS, &body).unwrap();
        assert_eq!(tokens, [theirs(PREVIOUS), theirs(CURRENT)]);
    }

    #[test]
    fn stale_future_tampered_and_unknown_keys_are_refused() {
        let (headers, body) = fixture();
        let v = StandardWebhookVerifier::new(CURRENT).unwrap();
        let now = at(FIXTURE_TS);
        assert!(v.verify(&headers, &body, at(FIXTURE_TS + 301)).unwrap_err().message.contains("old"));
        assert!(v.verify(&headers, &body, at(FIXTURE_TS - 301)).unwrap_err().message.contains("future"));
        let mut flipped = body.clone();
        flipped[10] ^= 1;
        assert_eq!(v.verify(&headers, &flipped, now).unwrap_err().status, 401);
        // Drop the token made with the current key: only the previous key's token remains.
        let mut only_old = headers.clone();
        let sig = only_old["webhook-signature"].to_str().unwrap().split(' ').next().unwrap().to_string();
        only_old.insert("webhook-signature", sig.parse().unwrap());
        assert!(v.verify(&only_old, &body, now).is_err());
        let other = StandardWebhookVerifier::new("whsec_c29tZS1vdGhlci1zZWNyZXQtMDEyMzQ1Njc4OQ==").unwrap();
        assert!(other.verify(&headers, &body, now).is_err());
        let mut missing = headers.clone();
        missing.remove("webhook-id");
        assert_eq!(v.verify(&missing, &body, now).unwrap_err().message, "missing header webhook-id");
    }

    #[test]
    fn agrees_with_the_reference_library() {
        // Sign with the standardwebhooks crate, verify with ours.
        let body = br#"{"caption":"x"}"#;
        let now = OffsetDateTime::now_utc();
        let signer = standardwebhooks::Webhook::new(CURRENT).unwrap();
        let sig = signer.sign("msg_abc", now.unix_timestamp(), body).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("webhook-id", "msg_abc".parse().unwrap());
        headers.insert("webhook-timestamp", now.unix_timestamp().to_string().parse().unwrap());
        headers.insert("webhook-signature", sig.parse().unwrap());
        let ours = StandardWebhookVerifier::new(&format!("{PREVIOUS} {CURRENT}")).unwrap();
        assert_eq!(ours.verify(&headers, body, now).unwrap(), "msg_abc");
        assert!(signer.verify(body, &headers).is_ok());
    }

    #[test]
    fn a_bad_secret_is_a_configuration_error_that_does_not_echo_it() {
        let err = StandardWebhookVerifier::new("whsec_!!!not-base64").unwrap_err().to_string();
        assert!(!err.contains("not-base64"), "{err}");
    }

    #[test]
    fn garbage_signature_headers_do_not_panic() {
        let v = StandardWebhookVerifier::new(CURRENT).unwrap();
        let now = datetime!(2026-10-13 07:53:10 UTC);
        for sig in ["", "v1,", "v1,%%%", "v2,abc", "v1a,abc v1,=", ",,,,"] {
            let mut headers = HeaderMap::new();
            headers.insert("webhook-id", "msg_1".parse().unwrap());
            headers.insert("webhook-timestamp", now.unix_timestamp().to_string().parse().unwrap());
            headers.insert("webhook-signature", sig.parse().unwrap());
            assert_eq!(v.verify(&headers, b"{}", now).unwrap_err().status, 401);
        }
    }
}
