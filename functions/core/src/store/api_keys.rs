//! API keys of the posts API. Only their SHA-256 hashes are stored, as table items
//! `pk = APIKEY#<hex sha256>`, `sk = APIKEY`: a request's key is hashed and looked up, so the
//! table never holds a usable key, and adding or revoking a key is one item, effective at once.

use std::collections::HashSet;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The table key of an API key's item.
pub fn item_key(key_hash: &str) -> String {
    format!("APIKEY#{key_hash}")
}
pub const ITEM_SORT_KEY: &str = "APIKEY";

/// Lowercase hex SHA-256 of the key as sent. Keys are long random strings, so a plain
/// (unsalted, fast) hash is enough: there is nothing to guess a key from.
pub fn hash(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait]
pub trait ApiKeys: Send + Sync {
    /// Whether a key with this hash is registered.
    async fn is_registered(&self, key_hash: &str) -> Result<bool>;
}

pub struct DynamoApiKeys {
    client: Client,
    table: String,
}

impl DynamoApiKeys {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoApiKeys { client, table: table.into() }
    }

    /// Registers a key by its hash; `name` says whose it is (for the operator, never checked).
    pub async fn register(&self, key_hash: &str, name: &str) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(item_key(key_hash)))
            .item("sk", AttributeValue::S(ITEM_SORT_KEY.into()))
            .item("name", AttributeValue::S(name.into()))
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB PutItem", e))?;
        Ok(())
    }
}

#[async_trait]
impl ApiKeys for DynamoApiKeys {
    async fn is_registered(&self, key_hash: &str) -> Result<bool> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(item_key(key_hash)))
            .key("sk", AttributeValue::S(ITEM_SORT_KEY.into()))
            .projection_expression("pk")
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB GetItem", e))?;
        Ok(out.item.is_some())
    }
}

/// Hashes held in memory (unit tests).
#[derive(Default)]
pub struct MemoryApiKeys(pub HashSet<String>);

impl MemoryApiKeys {
    pub fn with_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        MemoryApiKeys(keys.into_iter().map(hash).collect())
    }
}

#[async_trait]
impl ApiKeys for MemoryApiKeys {
    async fn is_registered(&self, key_hash: &str) -> Result<bool> {
        Ok(self.0.contains(key_hash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_hex_sha256() {
        // echo -n abc | sha256sum
        assert_eq!(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[tokio::test]
    async fn only_registered_hashes_are_known() {
        let keys = MemoryApiKeys::with_keys(["ipk_right"]);
        assert!(keys.is_registered(&hash("ipk_right")).await.unwrap());
        assert!(!keys.is_registered(&hash("ipk_wrong")).await.unwrap());
        assert!(!keys.is_registered("ipk_right").await.unwrap(), "the key itself is not what is stored");
    }
}
