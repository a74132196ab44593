//! Opaque, tamper-evident list cursors. A cursor holds where the listing stands and the filters
//! it continues, and is signed (HMAC-SHA256) with a server secret together with the hash of
//! the API key it was given to: a changed or made-up cursor, or one given to another key, does
//! not verify and is refused (400 `invalid_query`) before the table is read.
//!
//! The secret is the `posts_api_cursor` entry of the webhook-secrets secret. Without it the
//! key is derived from the `generic` entry (with a warning at start-up): cursors still cannot
//! be changed by API clients, but the generic webhook's sender, who knows that secret, could
//! make them. Whatever a cursor says, every page is read within the calling key's scope.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::post::DestState;

/// The entry of the webhook-secrets JSON that holds the cursor secret.
pub const SECRET_ENTRY: &str = "posts_api_cursor";

const TAG_BYTES: usize = 32;
/// Separates this use of the secret from any other.
const CONTEXT: &[u8] = b"instapipe posts API cursor v1";

/// The server secret cursors are signed with.
pub struct CursorKey(Vec<u8>);

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(..)")
    }
}

/// A random key: cursors then verify only in this process (tests).
impl Default for CursorKey {
    fn default() -> Self {
        CursorKey(rand::random::<[u8; 32]>().to_vec())
    }
}

impl CursorKey {
    pub fn new(secret: &[u8]) -> CursorKey {
        CursorKey(secret.to_vec())
    }

    /// A key of its own derived from another secret (HMAC with a fixed label).
    pub fn derived_from(secret: &[u8]) -> CursorKey {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
        mac.update(CONTEXT);
        CursorKey(mac.finalize().into_bytes().to_vec())
    }

    fn mac(&self, key_hash: &str, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for part in [CONTEXT, key_hash.as_bytes(), payload] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// The cursor for `position`, given to the key with hash `key_hash`.
    pub fn seal(&self, key_hash: &str, position: &Position) -> String {
        let payload = serde_json::to_vec(position).expect("a position serializes");
        let tag = self.mac(key_hash, &payload).finalize().into_bytes();
        let mut bytes = payload;
        bytes.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The position a cursor holds, if this server made it for this key (checked in constant time).
    pub fn open(&self, key_hash: &str, cursor: &str) -> Option<Position> {
        let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        let split = bytes.len().checked_sub(TAG_BYTES)?;
        let (payload, tag) = bytes.split_at(split);
        self.mac(key_hash, payload).verify_slice(tag).ok()?;
        serde_json::from_slice(payload).ok()
    }
}

/// Where a listing stands, and the filters it was asked with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub state: Option<DestState>,
    #[serde(rename = "a", default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(rename = "p")]
    pub at: At,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum At {
    /// One listing of the store: its cursor.
    #[serde(rename = "o")]
    One(String),
    /// A key's several accounts, listed together: where each one's listing stands.
    #[serde(rename = "m")]
    Merged(BTreeMap<String, Lane>),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Lane {
    #[serde(rename = "s")]
    Start,
    /// Continue with the store's cursor.
    #[serde(rename = "c")]
    After(String),
    #[serde(rename = "d")]
    Done,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position() -> Position {
        Position { state: Some(DestState::Scheduled), account: None, at: At::One("eyJwayI6IlBPU1QjMSJ9".into()) }
    }

    #[test]
    fn a_sealed_cursor_opens_for_its_key_only() {
        let key = CursorKey::new(b"server secret");
        let cursor = key.seal("hash-a", &position());
        assert!(cursor.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'), "{cursor}");
        assert_eq!(key.open("hash-a", &cursor), Some(position()));
        assert_eq!(key.open("hash-b", &cursor), None, "another API key's cursor");
        assert_eq!(CursorKey::new(b"other secret").open("hash-a", &cursor), None, "another server's cursor");
    }

    #[test]
    fn any_change_to_a_cursor_is_refused() {
        let key = CursorKey::new(b"server secret");
        let cursor = key.seal("hash-a", &position());
        let bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 0x01;
            assert_eq!(key.open("hash-a", &URL_SAFE_NO_PAD.encode(&changed)), None, "byte {i} changed");
        }
        // A payload without a valid tag, as the old unsigned cursors were.
        let unsigned = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&position()).unwrap());
        for forged in [unsigned.as_str(), "", "AAAA", "not base64!", &cursor[..cursor.len() - 2]] {
            assert_eq!(key.open("hash-a", forged), None, "{forged:?}");
        }
    }

    #[test]
    fn a_derived_key_differs_from_its_source() {
        let derived = CursorKey::derived_from(b"whsec_x");
        let cursor = derived.seal("h", &position());
        assert_eq!(CursorKey::new(b"whsec_x").open("h", &cursor), None);
        assert_eq!(CursorKey::derived_from(b"whsec_x").open("h", &cursor), Some(position()));
    }
}
