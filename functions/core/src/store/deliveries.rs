//! De-duplication beyond one delivery per post: a post made from a source event claims every key
//! that names it (the delivery, and the product / entry revision / blog post it shows) in the
//! same transaction as the post, and an event that makes no post is recorded as skipped, with
//! why. All are `DELIVERY#<source>#<event id>` items with the same 14-day expiry.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::dynamo::{destination_item, item};
use super::{Created, Delivery, DynamoStore, MemoryStore, keys};
use crate::error::{Error, Result};
use crate::post::{Destination, Post};

/// A delivery that made no post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub source: String,
    pub event_id: String,
    pub reason: String,
    pub at: OffsetDateTime,
    /// Unix seconds after which the table's TTL may drop it.
    pub expires_at: i64,
}

/// The attribute that marks a delivery item as skipped.
pub const SKIPPED_REASON_ATTRIBUTE: &str = "skipped_reason";

impl DynamoStore {
    /// One string attribute of a delivery record (consistent read, only that attribute).
    async fn delivery_attribute(&self, source: &str, event_id: &str, name: &str) -> Result<Option<String>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(keys::delivery(source, event_id)))
            .key("sk", AttributeValue::S(keys::DELIVERY.into()))
            .projection_expression("#a")
            .expression_attribute_names("#a", name)
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB GetItem", e))?;
        Ok(out.item.and_then(|mut item| item.remove(name)).and_then(|v| v.as_s().ok().cloned()))
    }
}

#[async_trait]
pub trait DeliveryLog: Send + Sync {
    /// Writes every delivery (each naming `post`), the post and its destinations at once — or
    /// nothing, when one of the deliveries already names a post: then that post is the answer.
    /// A skipped record under one of the keys does not block; the claim replaces it.
    async fn create_post_claiming(&self, deliveries: &[Delivery], post: &Post, destinations: &[Destination]) -> Result<Created>;
    /// Records why a delivery made no post; whatever is recorded under its key already stays.
    async fn record_skipped(&self, skipped: &Skipped) -> Result<()>;
    /// The post a delivery made, if it made one.
    async fn delivered_post(&self, source: &str, event_id: &str) -> Result<Option<String>>;
    /// The fingerprint recorded with a delivery (see [`Delivery::fingerprint`]).
    async fn delivery_fingerprint(&self, source: &str, event_id: &str) -> Result<Option<String>>;
}

/// The same key twice in one transaction is an error in DynamoDB; keep the first.
fn distinct(deliveries: &[Delivery]) -> Vec<&Delivery> {
    let mut out: Vec<&Delivery> = Vec::with_capacity(deliveries.len());
    for d in deliveries {
        if !out.iter().any(|o| o.source == d.source && o.event_id == d.event_id) {
            out.push(d);
        }
    }
    out
}

type Item = HashMap<String, AttributeValue>;

impl DynamoStore {
    /// The one transaction that creates a post: a claim per delivery (its key free, or holding
    /// only a skipped record; no key twice), then the post and its destinations (free keys).
    /// Public so that `make bench` can send exactly this write with a bare client: the ceiling
    /// of ingest.
    pub fn post_creation(&self, deliveries: &[&Delivery], post: &Post, destinations: &[Destination]) -> Result<Vec<TransactWriteItem>> {
        let pk = keys::post(&post.post_id);
        let mut writes = Vec::with_capacity(deliveries.len() + 1 + destinations.len());
        for d in deliveries {
            let mut claim = Item::new();
            claim.insert("pk".into(), AttributeValue::S(keys::delivery(&d.source, &d.event_id)));
            claim.insert("sk".into(), AttributeValue::S(keys::DELIVERY.into()));
            claim.insert("post_id".into(), AttributeValue::S(d.post_id.clone()));
            if let Some(expires_at) = d.expires_at {
                claim.insert("expires_at".into(), AttributeValue::N(expires_at.to_string()));
            }
            if let Some(fingerprint) = &d.fingerprint {
                claim.insert("fingerprint".into(), AttributeValue::S(fingerprint.clone()));
            }
            writes.push(self.put(claim, "attribute_not_exists(pk) OR attribute_exists(skipped_reason)")?);
        }
        writes.push(self.put(item(post, pk.clone(), keys::POST_META.into())?, "attribute_not_exists(pk)")?);
        for d in destinations {
            writes.push(self.put(destination_item(d)?, "attribute_not_exists(pk)")?);
        }
        Ok(writes)
    }
}

#[async_trait]
impl DeliveryLog for DynamoStore {
    async fn create_post_claiming(&self, deliveries: &[Delivery], post: &Post, destinations: &[Destination]) -> Result<Created> {
        let deliveries = distinct(deliveries);
        let writes = self.post_creation(&deliveries, post, destinations)?;
        let err = match self.client.transact_write_items().set_transact_items(Some(writes)).send().await {
            Ok(_) => return Ok(Created::New),
            Err(err) => err,
        };
        // Which delivery exists already (the reasons are in the order of the writes).
        let claimed = err.as_service_error().and_then(|e| match e {
            TransactWriteItemsError::TransactionCanceledException(canceled) => canceled
                .cancellation_reasons()
                .iter()
                .take(deliveries.len())
                .enumerate()
                .find(|(_, reason)| reason.code() == Some("ConditionalCheckFailed"))
                .map(|(i, reason)| (i, reason.item().and_then(|item| item.get("post_id")).and_then(|v| v.as_s().ok()).cloned())),
            _ => None,
        });
        match claimed {
            Some((_, Some(post_id))) => Ok(Created::Duplicate { post_id }),
            Some((i, None)) => self
                .delivered_post(&deliveries[i].source, &deliveries[i].event_id)
                .await?
                .map(|post_id| Created::Duplicate { post_id })
                .ok_or_else(|| Error::Conflict(format!("delivery {}#{} changed meanwhile", deliveries[i].source, deliveries[i].event_id))),
            None => Err(Error::aws("DynamoDB TransactWriteItems", err)),
        }
    }

    async fn record_skipped(&self, skipped: &Skipped) -> Result<()> {
        let at = skipped.at.format(&Rfc3339).map_err(|e| Error::Data(e.to_string()))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(keys::delivery(&skipped.source, &skipped.event_id)))
            .item("sk", AttributeValue::S(keys::DELIVERY.into()))
            .item(SKIPPED_REASON_ATTRIBUTE, AttributeValue::S(skipped.reason.clone()))
            .item("skipped_at", AttributeValue::S(at))
            .item("expires_at", AttributeValue::N(skipped.expires_at.to_string()))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(()),
            Err(err) => Err(Error::aws("DynamoDB PutItem", err)),
        }
    }

    async fn delivered_post(&self, source: &str, event_id: &str) -> Result<Option<String>> {
        self.delivery_attribute(source, event_id, "post_id").await
    }

    async fn delivery_fingerprint(&self, source: &str, event_id: &str) -> Result<Option<String>> {
        self.delivery_attribute(source, event_id, "fingerprint").await
    }
}

#[async_trait]
impl DeliveryLog for MemoryStore {
    async fn create_post_claiming(&self, deliveries: &[Delivery], post: &Post, destinations: &[Destination]) -> Result<Created> {
        let mut t = self.inner.lock().unwrap();
        let deliveries = distinct(deliveries);
        for d in &deliveries {
            if let Some(post_id) = t.deliveries.get(&(d.source.clone(), d.event_id.clone())) {
                return Ok(Created::Duplicate { post_id: post_id.clone() });
            }
        }
        for d in deliveries {
            let key = (d.source.clone(), d.event_id.clone());
            t.skipped.remove(&key);
            match d.expires_at {
                Some(at) => t.delivery_expiry.insert(key.clone(), at),
                None => t.delivery_expiry.remove(&key),
            };
            match &d.fingerprint {
                Some(fingerprint) => t.fingerprints.insert(key.clone(), fingerprint.clone()),
                None => t.fingerprints.remove(&key),
            };
            t.deliveries.insert(key, d.post_id.clone());
        }
        t.posts.insert(post.post_id.clone(), post.clone());
        for d in destinations {
            t.destinations.insert((d.post_id.clone(), d.account_id.clone()), d.clone());
        }
        Ok(Created::New)
    }

    async fn record_skipped(&self, skipped: &Skipped) -> Result<()> {
        let mut t = self.inner.lock().unwrap();
        let key = (skipped.source.clone(), skipped.event_id.clone());
        if !t.deliveries.contains_key(&key) {
            t.delivery_expiry.entry(key.clone()).or_insert(skipped.expires_at);
            t.skipped.entry(key).or_insert_with(|| skipped.reason.clone());
        }
        Ok(())
    }

    async fn delivered_post(&self, source: &str, event_id: &str) -> Result<Option<String>> {
        Ok(self.inner.lock().unwrap().deliveries.get(&(source.to_string(), event_id.to_string())).cloned())
    }

    async fn delivery_fingerprint(&self, source: &str, event_id: &str) -> Result<Option<String>> {
        Ok(self.inner.lock().unwrap().fingerprints.get(&(source.to_string(), event_id.to_string())).cloned())
    }
}

impl MemoryStore {
    /// When the table may forget a delivery key (made a post or skipped), in unix seconds;
    /// None for a key kept as long as its post (tests).
    pub fn delivery_expires_at(&self, source: &str, event_id: &str) -> Option<i64> {
        self.inner.lock().unwrap().delivery_expiry.get(&(source.to_string(), event_id.to_string())).copied()
    }

    /// Why a delivery made no post, if it was recorded as skipped (tests).
    pub fn skipped_reason(&self, source: &str, event_id: &str) -> Option<String> {
        self.inner.lock().unwrap().skipped.get(&(source.to_string(), event_id.to_string())).cloned()
    }

    /// Delivery items of any kind: claims and skipped records (tests: "nothing was written").
    pub fn delivery_count(&self) -> usize {
        let t = self.inner.lock().unwrap();
        t.deliveries.len() + t.skipped.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::post::{MediaItem, MediaKind, PostRequest};
    use crate::store::PostStore;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-23 10:00 UTC);

    fn post(id: &str) -> Post {
        let request = PostRequest {
            media: vec![MediaItem::new("https://cdn.example.com/a.jpg", MediaKind::Image)],
            accounts: vec!["1784".into()],
            ..PostRequest::default()
        };
        Post::new(id.into(), "shopify", "w1", request, NOW)
    }

    fn delivery(event_id: &str, post_id: &str) -> Delivery {
        Delivery { source: "shopify".into(), event_id: event_id.into(), post_id: post_id.into(), expires_at: Some(0), fingerprint: None }
    }

    fn skipped(event_id: &str, reason: &str) -> Skipped {
        Skipped { source: "shopify".into(), event_id: event_id.into(), reason: reason.into(), at: NOW, expires_at: 0 }
    }

    #[tokio::test]
    async fn any_claimed_key_makes_the_next_event_a_duplicate_and_writes_nothing() {
        let store = MemoryStore::default();
        let p1 = post("P1");
        let created = store
            .create_post_claiming(&[delivery("w1", "P1"), delivery("product:1", "P1"), delivery("w1", "P1")], &p1, &p1.destinations(NOW))
            .await
            .unwrap();
        assert_eq!(created, Created::New);
        // Another delivery (products/update) of the same product.
        let p2 = post("P2");
        let again = store.create_post_claiming(&[delivery("w2", "P2"), delivery("product:1", "P2")], &p2, &p2.destinations(NOW)).await.unwrap();
        assert_eq!(again, Created::Duplicate { post_id: "P1".into() });
        assert_eq!(store.post_count(), 1);
        assert_eq!(store.delivered_post("shopify", "w2").await.unwrap(), None, "the duplicate claimed nothing");
        assert_eq!(store.delivered_post("shopify", "product:1").await.unwrap().as_deref(), Some("P1"));
        assert_eq!(store.list_destinations("P2").await.unwrap().len(), 0);
    }

    #[tokio::test]
    async fn skipped_records_keep_the_first_reason_and_give_way_to_a_post() {
        let store = MemoryStore::default();
        store.record_skipped(&skipped("w1", "draft")).await.unwrap();
        store.record_skipped(&skipped("w1", "other")).await.unwrap();
        assert_eq!(store.skipped_reason("shopify", "w1").as_deref(), Some("draft"));
        let p = post("P1");
        assert_eq!(store.create_post_claiming(&[delivery("w1", "P1")], &p, &p.destinations(NOW)).await.unwrap(), Created::New);
        assert_eq!(store.skipped_reason("shopify", "w1"), None);
        store.record_skipped(&skipped("w1", "late")).await.unwrap();
        assert_eq!(store.skipped_reason("shopify", "w1"), None, "a claim is never overwritten");
        assert_eq!(store.delivery_count(), 1);
    }
}
