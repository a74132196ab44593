//! Which destination each published media belongs to: an item `MEDIA#<media id>` / `MEDIA`
//! claimed with a conditional write when a destination records its media. A publish whose
//! answer was lost is recovered from the account's media list, where two posts with the same
//! caption look alike: a media claimed by another destination is never taken, so no media is
//! ever recorded for two destinations. No `state` or `created_at`: the indexes skip it.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use super::{DynamoStore, MemoryStore};
use crate::error::{Error, Result};

/// The destination a media was recorded for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaOwner {
    pub post_id: String,
    pub account_id: String,
}

impl MediaOwner {
    pub fn of(destination: &crate::post::Destination) -> MediaOwner {
        MediaOwner { post_id: destination.post_id.clone(), account_id: destination.account_id.clone() }
    }
}

fn key(media_id: &str) -> String {
    format!("MEDIA#{media_id}")
}
const SORT_KEY: &str = "MEDIA";

#[async_trait]
pub trait MediaClaims: Send + Sync {
    async fn media_owner(&self, media_id: &str) -> Result<Option<MediaOwner>>;
    /// Claims `media_id` for `owner`: true when it is theirs now (new, or claimed by them
    /// before), false when another destination holds it.
    async fn claim_media(&self, media_id: &str, owner: &MediaOwner) -> Result<bool>;
}

#[async_trait]
impl MediaClaims for DynamoStore {
    async fn media_owner(&self, media_id: &str) -> Result<Option<MediaOwner>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(key(media_id)))
            .key("sk", AttributeValue::S(SORT_KEY.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB GetItem", e))?;
        Ok(out.item.map(serde_dynamo::from_item).transpose()?)
    }

    async fn claim_media(&self, media_id: &str, owner: &MediaOwner) -> Result<bool> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(super::dynamo::item(owner, key(media_id), SORT_KEY.into())?))
            .condition_expression("attribute_not_exists(pk) OR (post_id = :p AND account_id = :a)")
            .expression_attribute_values(":p", AttributeValue::S(owner.post_id.clone()))
            .expression_attribute_values(":a", AttributeValue::S(owner.account_id.clone()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(false),
            Err(err) => Err(Error::aws("DynamoDB PutItem", err)),
        }
    }
}

#[async_trait]
impl MediaClaims for MemoryStore {
    async fn media_owner(&self, media_id: &str) -> Result<Option<MediaOwner>> {
        Ok(self.inner.lock().unwrap().media.get(media_id).cloned())
    }

    async fn claim_media(&self, media_id: &str, owner: &MediaOwner) -> Result<bool> {
        let mut t = self.inner.lock().unwrap();
        Ok(t.media.entry(media_id.to_string()).or_insert_with(|| owner.clone()) == owner)
    }
}
