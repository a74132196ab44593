//! The record of each status webhook (`post.published` / `post.failed`) notify sent or tried to
//! send: an item `POST#<post>` / `NOTIFY#<account>#<event type>` beside the destination, so a
//! redelivered stream record does not send a delivered event again, and an operator can see
//! what happened. It has no `state` or `created_at`, so the destination indexes skip it.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{DynamoStore, MemoryStore, keys};
use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotificationRecord {
    pub post_id: String,
    pub account_id: String,
    /// `post.published` or `post.failed`.
    pub event_type: String,
    /// The `webhook-id` sent (the same on every try, so the receiver can de-duplicate).
    pub webhook_id: String,
    pub delivered: bool,
    pub attempts: u32,
    /// The receiver's last HTTP status, if it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

fn sort_key(account_id: &str, event_type: &str) -> String {
    format!("NOTIFY#{account_id}#{event_type}")
}

#[async_trait]
pub trait NotificationLog: Send + Sync {
    async fn get_notification(&self, post_id: &str, account_id: &str, event_type: &str)
    -> Result<Option<NotificationRecord>>;
    async fn put_notification(&self, record: &NotificationRecord) -> Result<()>;
}

#[async_trait]
impl NotificationLog for DynamoStore {
    async fn get_notification(&self, post_id: &str, account_id: &str, event_type: &str) -> Result<Option<NotificationRecord>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(keys::post(post_id)))
            .key("sk", AttributeValue::S(sort_key(account_id, event_type)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB GetItem", e))?;
        Ok(out.item.map(serde_dynamo::from_item).transpose()?)
    }

    async fn put_notification(&self, record: &NotificationRecord) -> Result<()> {
        let mut item: std::collections::HashMap<String, AttributeValue> = serde_dynamo::to_item(record)?;
        item.insert("pk".into(), AttributeValue::S(keys::post(&record.post_id)));
        item.insert("sk".into(), AttributeValue::S(sort_key(&record.account_id, &record.event_type)));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB PutItem", e))?;
        Ok(())
    }
}

#[async_trait]
impl NotificationLog for MemoryStore {
    async fn get_notification(&self, post_id: &str, account_id: &str, event_type: &str) -> Result<Option<NotificationRecord>> {
        let key = (post_id.to_string(), account_id.to_string(), event_type.to_string());
        Ok(self.inner.lock().unwrap().notifications.get(&key).cloned())
    }

    async fn put_notification(&self, record: &NotificationRecord) -> Result<()> {
        let key = (record.post_id.clone(), record.account_id.clone(), record.event_type.clone());
        self.inner.lock().unwrap().notifications.insert(key, record.clone());
        Ok(())
    }
}
