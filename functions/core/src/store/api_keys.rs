//! API keys of the posts API and what each may do. Only their SHA-256 hashes are stored, as
//! table items `pk = APIKEY#<hex sha256>`, `sk = APIKEY`: a request's key is hashed and looked
//! up, so the table never holds a usable key, and adding or revoking a key is one item,
//! effective at once.
//!
//! A key's scope is the accounts it may post to and read (a list, or all of them) and whether
//! it may write. An item without `access` was registered before scopes existed (by hand, as the
//! README once showed): it keeps working as a full-access key.
//!
//! When a key was last used is kept in an item of its own, `KEYUSE#<hash>` / `KEYUSE`: the
//! ingest function writes it, and writes no `APIKEY#` item (an IAM condition may forbid that).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::{Error, Result};

/// The table key of an API key's item.
pub fn item_key(key_hash: &str) -> String {
    format!("APIKEY#{key_hash}")
}
pub const ITEM_SORT_KEY: &str = "APIKEY";

/// The table key of the item that says when a key was last used.
pub fn use_item_key(key_hash: &str) -> String {
    format!("KEYUSE#{key_hash}")
}
pub const USE_SORT_KEY: &str = "KEYUSE";

/// The last use is written at most this often per key.
pub const TOUCH_EVERY_SECS: i64 = 60;

/// Lowercase hex SHA-256 of the key as sent. Keys are long random strings, so a plain
/// (unsalted, fast) hash is enough: there is nothing to guess a key from.
pub fn hash(key: &str) -> String {
    Sha256::digest(key.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The short id the operator names a key by (`keys list`, `keys revoke`): the start of its
/// hash, which is not secret.
pub fn key_id(key_hash: &str) -> &str {
    &key_hash[..key_hash.len().min(12)]
}

/// A new key: `ipk_` and 48 hex digits (192 random bits).
pub fn generate() -> String {
    let bytes: [u8; 24] = rand::random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("ipk_{hex}")
}

/// The accounts a key may post to and read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Accounts {
    /// An admin key: every account, present and future.
    All,
    Only(BTreeSet<String>),
}

/// Whether a key may create, edit and cancel posts, or only read them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::ReadOnly => "read_only",
            Access::ReadWrite => "read_write",
        }
    }

    pub fn parse(value: &str) -> Option<Access> {
        match value {
            "read_only" => Some(Access::ReadOnly),
            "read_write" => Some(Access::ReadWrite),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    pub accounts: Accounts,
    pub access: Access,
}

impl Scope {
    /// What a key registered before scopes existed may do: everything.
    pub fn full() -> Scope {
        Scope { accounts: Accounts::All, access: Access::ReadWrite }
    }

    pub fn only<'a>(accounts: impl IntoIterator<Item = &'a str>, access: Access) -> Scope {
        Scope { accounts: Accounts::Only(accounts.into_iter().map(str::to_string).collect()), access }
    }

    pub fn allows(&self, account: &str) -> bool {
        match &self.accounts {
            Accounts::All => true,
            Accounts::Only(accounts) => accounts.contains(account),
        }
    }

    /// A post is the key's when every account it goes to is: a post for several brands is
    /// seen only by keys that cover all of them, so no key sees another brand's progress.
    pub fn sees(&self, accounts: &[String]) -> bool {
        accounts.iter().all(|a| self.allows(a))
    }

    pub fn can_write(&self) -> bool {
        self.access == Access::ReadWrite
    }

    /// `all accounts` or the accounts, comma-separated; then `read-write` / `read-only`.
    pub fn describe(&self) -> String {
        let accounts = match &self.accounts {
            Accounts::All => "all accounts".to_string(),
            Accounts::Only(list) => list.iter().cloned().collect::<Vec<_>>().join(","),
        };
        let access = match self.access {
            Access::ReadOnly => "read-only",
            Access::ReadWrite => "read-write",
        };
        format!("{accounts} {access}")
    }
}

/// A registered key, as the table holds it (never the key itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKey {
    pub hash: String,
    pub name: String,
    pub scope: Scope,
    /// None for a key registered before scopes existed.
    pub created_at: Option<OffsetDateTime>,
    pub last_used_at: Option<OffsetDateTime>,
    /// Registered before scopes existed: full access, until it is revoked and replaced.
    pub legacy: bool,
}

impl ApiKey {
    pub fn new(key_hash: String, name: impl Into<String>, scope: Scope, now: OffsetDateTime) -> ApiKey {
        ApiKey { hash: key_hash, name: name.into(), scope, created_at: Some(now), last_used_at: None, legacy: false }
    }

    pub fn id(&self) -> &str {
        key_id(&self.hash)
    }
}

/// What the posts API needs: a key by its hash, and a note that it was used.
#[async_trait]
pub trait ApiKeys: Send + Sync {
    async fn find(&self, key_hash: &str) -> Result<Option<ApiKey>>;
    /// Records that the key was used at `now`; writes at most once a minute per key.
    async fn touch(&self, key_hash: &str, now: OffsetDateTime) -> Result<()>;
}

/// When this process last wrote each key's last use: keeps `touch` to one write a minute per
/// key and function instance (the table's condition keeps it so across instances).
#[derive(Default)]
struct TouchThrottle(Mutex<HashMap<String, OffsetDateTime>>);

impl TouchThrottle {
    /// Whether a write is due, and if so notes it as done.
    fn due(&self, key_hash: &str, now: OffsetDateTime) -> bool {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match last.get(key_hash) {
            Some(at) if (now - *at).whole_seconds() < TOUCH_EVERY_SECS => false,
            _ => {
                last.insert(key_hash.to_string(), now);
                true
            }
        }
    }
}

pub struct DynamoApiKeys {
    client: Client,
    table: String,
    throttle: TouchThrottle,
}

type Item = HashMap<String, AttributeValue>;

fn rfc3339(at: OffsetDateTime) -> Result<String> {
    at.format(&Rfc3339).map_err(|e| Error::Data(e.to_string()))
}

fn key_item(key: &ApiKey) -> Result<Item> {
    let mut item = Item::new();
    item.insert("pk".into(), AttributeValue::S(item_key(&key.hash)));
    item.insert("sk".into(), AttributeValue::S(ITEM_SORT_KEY.into()));
    item.insert("name".into(), AttributeValue::S(key.name.clone()));
    item.insert("access".into(), AttributeValue::S(key.scope.access.as_str().into()));
    match &key.scope.accounts {
        Accounts::All => item.insert("all_accounts".into(), AttributeValue::Bool(true)),
        Accounts::Only(accounts) => {
            item.insert("accounts".into(), AttributeValue::L(accounts.iter().cloned().map(AttributeValue::S).collect()))
        }
    };
    if let Some(at) = key.created_at {
        item.insert("created_at".into(), AttributeValue::S(rfc3339(at)?));
    }
    Ok(item)
}

/// An `APIKEY#` item as a key. Without `access` it is a key from before scopes: full access.
/// With `access`, the accounts are what the item lists (none if it lists none), never "all"
/// by omission.
fn key_from_item(item: &Item) -> Result<ApiKey> {
    let s = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let hash = s("pk").and_then(|pk| pk.strip_prefix("APIKEY#").map(str::to_string)).ok_or_else(|| Error::Data("an API key item without its hash".into()))?;
    let name = s("name").unwrap_or_default();
    let created_at = s("created_at").and_then(|at| OffsetDateTime::parse(&at, &Rfc3339).ok());
    let Some(access) = s("access") else {
        return Ok(ApiKey { hash, name, scope: Scope::full(), created_at, last_used_at: None, legacy: true });
    };
    let access = Access::parse(&access).ok_or_else(|| Error::Data(format!("API key {}: access {access:?} is not read_only or read_write", key_id(&hash))))?;
    let all = item.get("all_accounts").and_then(|v| v.as_bool().ok()).copied() == Some(true);
    let accounts = if all {
        Accounts::All
    } else {
        let list = item.get("accounts").and_then(|v| v.as_l().ok()).map(Vec::as_slice).unwrap_or_default();
        Accounts::Only(list.iter().filter_map(|v| v.as_s().ok().cloned()).collect())
    };
    Ok(ApiKey { hash, name, scope: Scope { accounts, access }, created_at, last_used_at: None, legacy: false })
}

impl DynamoApiKeys {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoApiKeys { client, table: table.into(), throttle: TouchThrottle::default() }
    }

    /// Registers a full-access key by its hash (the local stack's own key).
    pub async fn register(&self, key_hash: &str, name: &str) -> Result<()> {
        let key = ApiKey::new(key_hash.to_string(), name, Scope::full(), OffsetDateTime::now_utc());
        self.put(&key, None).await
    }

    /// Stores a new key; fails with [`Error::Conflict`] if its hash is registered already.
    pub async fn create(&self, key: &ApiKey) -> Result<()> {
        self.put(key, Some("attribute_not_exists(pk)")).await
    }

    async fn put(&self, key: &ApiKey, condition: Option<&str>) -> Result<()> {
        let result = self.client.put_item().table_name(&self.table).set_item(Some(key_item(key)?)).set_condition_expression(condition.map(str::to_string)).send().await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Err(Error::Conflict(format!("API key {} is registered already", key.id())))
            }
            Err(err) => Err(Error::aws("DynamoDB PutItem", err)),
        }
    }

    /// Every key with its last use, by name. A Scan of the table: an operator's command, read
    /// rarely, for which no index is worth its writes.
    pub async fn list(&self) -> Result<Vec<ApiKey>> {
        let mut keys = Vec::new();
        let mut used: HashMap<String, OffsetDateTime> = HashMap::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :key OR sk = :use")
                .expression_attribute_values(":key", AttributeValue::S(ITEM_SORT_KEY.into()))
                .expression_attribute_values(":use", AttributeValue::S(USE_SORT_KEY.into()))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| Error::aws("DynamoDB Scan", e))?;
            for item in out.items() {
                let pk = item.get("pk").and_then(|v| v.as_s().ok()).map(String::as_str).unwrap_or_default();
                if let Some(hash) = pk.strip_prefix("KEYUSE#") {
                    if let Some(at) = item.get("last_used_at").and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<i64>().ok()) {
                        used.insert(hash.to_string(), OffsetDateTime::from_unix_timestamp(at).map_err(|e| Error::Data(e.to_string()))?);
                    }
                } else if pk.starts_with("APIKEY#") {
                    keys.push(key_from_item(item)?);
                }
            }
            match out.last_evaluated_key {
                Some(key) => start = Some(key),
                None => break,
            }
        }
        for key in &mut keys {
            key.last_used_at = used.get(&key.hash).copied();
        }
        keys.sort_by(|a, b| (&a.name, &a.hash).cmp(&(&b.name, &b.hash)));
        Ok(keys)
    }

    /// Deletes the key (refused at once from then on) and its last use; false if there was none.
    pub async fn revoke(&self, key_hash: &str) -> Result<bool> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(item_key(key_hash)))
            .key("sk", AttributeValue::S(ITEM_SORT_KEY.into()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB DeleteItem", e))?;
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(use_item_key(key_hash)))
            .key("sk", AttributeValue::S(USE_SORT_KEY.into()))
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB DeleteItem", e))?;
        Ok(out.attributes.is_some())
    }
}

#[async_trait]
impl ApiKeys for DynamoApiKeys {
    async fn find(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(item_key(key_hash)))
            .key("sk", AttributeValue::S(ITEM_SORT_KEY.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB GetItem", e))?;
        out.item.as_ref().map(key_from_item).transpose()
    }

    async fn touch(&self, key_hash: &str, now: OffsetDateTime) -> Result<()> {
        if !self.throttle.due(key_hash, now) {
            return Ok(());
        }
        // A put, not an update: the item holds nothing else, and ingest-webhook may put items
        // but not update them (template.yaml).
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(use_item_key(key_hash)))
            .item("sk", AttributeValue::S(USE_SORT_KEY.into()))
            .item("last_used_at", AttributeValue::N(now.unix_timestamp().to_string()))
            .condition_expression("attribute_not_exists(last_used_at) OR last_used_at < :due")
            .expression_attribute_values(":due", AttributeValue::N((now.unix_timestamp() - TOUCH_EVERY_SECS + 1).to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Another instance wrote it within the minute.
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(err) => Err(Error::aws("DynamoDB PutItem", err)),
        }
    }
}

/// Keys held in memory (unit tests), with the same scopes and the writes `touch` made.
#[derive(Default)]
pub struct MemoryApiKeys {
    keys: Mutex<HashMap<String, ApiKey>>,
    throttle: TouchThrottle,
    /// Every last-use write, in order (key hash, time).
    pub touches: Mutex<Vec<(String, OffsetDateTime)>>,
}

impl MemoryApiKeys {
    /// Full-access keys.
    pub fn with_keys<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        let store = MemoryApiKeys::default();
        for key in keys {
            store.add(key, "test", Scope::full());
        }
        store
    }

    /// Registers `key` (the key itself; its hash is kept) with `scope`.
    pub fn add(&self, key: &str, name: &str, scope: Scope) {
        let key = ApiKey::new(hash(key), name, scope, OffsetDateTime::UNIX_EPOCH);
        self.keys.lock().unwrap().insert(key.hash.clone(), key);
    }

    pub fn revoke(&self, key: &str) {
        self.keys.lock().unwrap().remove(&hash(key));
    }
}

#[async_trait]
impl ApiKeys for MemoryApiKeys {
    async fn find(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        Ok(self.keys.lock().unwrap().get(key_hash).cloned())
    }

    async fn touch(&self, key_hash: &str, now: OffsetDateTime) -> Result<()> {
        if self.throttle.due(key_hash, now) {
            self.touches.lock().unwrap().push((key_hash.to_string(), now));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_hash_is_hex_sha256() {
        // echo -n abc | sha256sum
        assert_eq!(hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(key_id(&hash("abc")), "ba7816bf8f01");
    }

    #[test]
    fn generated_keys_are_long_random_and_distinct() {
        let (a, b) = (generate(), generate());
        assert!(a.starts_with("ipk_") && a.len() == 52, "{a}");
        assert!(a[4..].bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn only_registered_hashes_are_known() {
        let keys = MemoryApiKeys::with_keys(["ipk_right"]);
        assert_eq!(keys.find(&hash("ipk_right")).await.unwrap().map(|k| k.scope), Some(Scope::full()));
        assert_eq!(keys.find(&hash("ipk_wrong")).await.unwrap(), None);
        assert_eq!(keys.find("ipk_right").await.unwrap(), None, "the key itself is not what is stored");
    }

    #[test]
    fn a_scope_sees_a_post_only_when_it_covers_every_account() {
        let scope = Scope::only(["1", "2"], Access::ReadOnly);
        assert!(scope.sees(&["1".into()]));
        assert!(scope.sees(&["2".into(), "1".into()]));
        assert!(!scope.sees(&["1".into(), "3".into()]));
        assert!(!scope.can_write());
        assert!(Scope::full().sees(&["3".into()]) && Scope::full().can_write());
        assert_eq!(scope.describe(), "1,2 read-only");
    }

    #[test]
    fn items_without_access_are_full_access_keys_and_others_only_what_they_list() {
        let legacy: Item = [
            ("pk".to_string(), AttributeValue::S(item_key("abc"))),
            ("sk".to_string(), AttributeValue::S(ITEM_SORT_KEY.into())),
            ("name".to_string(), AttributeValue::S("my cms".into())),
        ]
        .into();
        let key = key_from_item(&legacy).unwrap();
        assert_eq!((key.scope, key.legacy, key.name.as_str()), (Scope::full(), true, "my cms"));

        let now = datetime!(2026-12-01 10:00 UTC);
        let scoped = ApiKey::new(hash("ipk_a"), "brand a", Scope::only(["17841400000000001"], Access::ReadWrite), now);
        assert_eq!(key_from_item(&key_item(&scoped).unwrap()).unwrap(), scoped);
        let admin = ApiKey::new(hash("ipk_b"), "admin", Scope { accounts: Accounts::All, access: Access::ReadOnly }, now);
        assert_eq!(key_from_item(&key_item(&admin).unwrap()).unwrap(), admin);

        // `access` without accounts: none, never all.
        let mut bare = key_item(&scoped).unwrap();
        bare.remove("accounts");
        assert_eq!(key_from_item(&bare).unwrap().scope.accounts, Accounts::Only(BTreeSet::new()));
    }

    #[tokio::test]
    async fn the_last_use_is_written_at_most_once_a_minute_per_key() {
        let keys = MemoryApiKeys::with_keys(["ipk_a", "ipk_b"]);
        let t0 = datetime!(2026-12-01 10:00 UTC);
        for s in [0, 10, 59] {
            keys.touch(&hash("ipk_a"), t0 + time::Duration::seconds(s)).await.unwrap();
        }
        keys.touch(&hash("ipk_b"), t0).await.unwrap();
        keys.touch(&hash("ipk_a"), t0 + time::Duration::seconds(60)).await.unwrap();
        let touches = keys.touches.lock().unwrap().clone();
        assert_eq!(
            touches,
            [(hash("ipk_a"), t0), (hash("ipk_b"), t0), (hash("ipk_a"), t0 + time::Duration::seconds(60))]
        );
    }
}
