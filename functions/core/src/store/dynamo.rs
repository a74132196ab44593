use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{DestinationQuery, Page, PostStore, indexes, keys};
use crate::account::{Account, AccountUsage};
use crate::error::{Error, Result};
use crate::post::{Destination, Post};

type Item = HashMap<String, AttributeValue>;

/// The DynamoDB adapter. Items are the domain structs plus their `pk`/`sk`.
pub struct DynamoStore {
    pub(super) client: Client,
    pub(super) table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore { client, table: table.into() }
    }

    async fn get<T: DeserializeOwned>(&self, pk: String, sk: &str) -> Result<Option<T>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(pk))
            .key("sk", AttributeValue::S(sk.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB GetItem", e))?;
        Ok(out.item.map(serde_dynamo::from_item).transpose()?)
    }

    pub(super) fn put(&self, item: Item, condition: &str) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(condition)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(|e| Error::aws("DynamoDB Put", e))?;
        Ok(TransactWriteItem::builder().put(put).build())
    }
}

pub(super) fn item<T: Serialize>(value: &T, pk: String, sk: String) -> Result<Item> {
    let mut item: Item = serde_dynamo::to_item(value)?;
    item.insert("pk".into(), AttributeValue::S(pk));
    item.insert("sk".into(), AttributeValue::S(sk));
    Ok(item)
}

/// A destination's item, with the watchdog's index attribute: `due_at` (unix seconds) while
/// something must still move it, absent otherwise, so the index holds only the open ones.
pub(super) fn destination_item(d: &Destination) -> Result<Item> {
    let mut item = item(d, keys::post(&d.post_id), keys::destination(&d.account_id))?;
    if let Some(due) = d.next_move_at() {
        item.insert(indexes::DUE_AT.into(), AttributeValue::N(due.unix_timestamp().to_string()));
    }
    Ok(item)
}

/// The last evaluated key (all string attributes in this table) as URL-safe base64 JSON.
fn encode_cursor(key: &Item, b64: base64::engine::GeneralPurpose) -> String {
    use base64::Engine;
    let raw: HashMap<&String, &str> =
        key.iter().filter_map(|(k, v)| v.as_s().ok().map(|s| (k, s.as_str()))).collect();
    b64.encode(serde_json::to_vec(&raw).expect("strings serialize"))
}

#[async_trait]
impl PostStore for DynamoStore {
    async fn get_post(&self, post_id: &str) -> Result<Option<Post>> {
        self.get(keys::post(post_id), keys::POST_META).await
    }

    async fn get_destination(&self, post_id: &str, account_id: &str) -> Result<Option<Destination>> {
        self.get(keys::post(post_id), &keys::destination(account_id)).await
    }

    async fn list_destinations(&self, post_id: &str) -> Result<Vec<Destination>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :dest)")
            .expression_attribute_values(":pk", AttributeValue::S(keys::post(post_id)))
            .expression_attribute_values(":dest", AttributeValue::S("DEST#".into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB Query", e))?;
        Ok(serde_dynamo::from_items(out.items.unwrap_or_default())?)
    }

    async fn save_destination(&self, destination: &mut Destination) -> Result<()> {
        let read_version = destination.version;
        let mut next = destination.clone();
        next.version += 1;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(destination_item(&next)?))
            .condition_expression("version = :read")
            .expression_attribute_values(":read", AttributeValue::N(read_version.to_string()))
            .send()
            .await;
        match result {
            Ok(_) => {
                *destination = next;
                Ok(())
            }
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Err(
                Error::Conflict(format!("destination {}/{} is no longer at version {read_version}", next.post_id, next.account_id)),
            ),
            Err(err) => Err(Error::aws("DynamoDB PutItem", err)),
        }
    }

    async fn save_post_edit(&self, post: &Post, destinations: &mut [Destination]) -> Result<()> {
        let pk = keys::post(&post.post_id);
        let mut writes = vec![self.put(item(post, pk.clone(), keys::POST_META.into())?, "attribute_exists(pk)")?];
        let mut saved = Vec::with_capacity(destinations.len());
        for d in destinations.iter() {
            let mut next = d.clone();
            next.version += 1;
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(destination_item(&next)?))
                .condition_expression("version = :read")
                .expression_attribute_values(":read", AttributeValue::N(d.version.to_string()))
                .build()
                .map_err(|e| Error::aws("DynamoDB Put", e))?;
            writes.push(TransactWriteItem::builder().put(put).build());
            saved.push(next);
        }
        let result = self.client.transact_write_items().set_transact_items(Some(writes)).send().await;
        match result {
            Ok(_) => {
                for (d, next) in destinations.iter_mut().zip(saved) {
                    *d = next;
                }
                Ok(())
            }
            Err(err) if matches!(err.as_service_error(), Some(TransactWriteItemsError::TransactionCanceledException(_))) => {
                Err(Error::Conflict(format!("post {} or one of its destinations changed meanwhile", post.post_id)))
            }
            Err(err) => Err(Error::aws("DynamoDB TransactWriteItems", err)),
        }
    }

    async fn query_destinations(&self, query: &DestinationQuery) -> Result<Page<Destination>> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let start_key = match &query.cursor {
            None => None,
            Some(cursor) => {
                let raw: HashMap<String, String> = b64
                    .decode(cursor)
                    .ok()
                    .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                    .ok_or_else(|| Error::Data("the cursor is not one this service made".into()))?;
                Some(raw.into_iter().map(|(k, v)| (k, AttributeValue::S(v))).collect::<Item>())
            }
        };
        // A cursor only continues the query it came from: the same index and partition
        // (DynamoDB refuses any other start key, which would otherwise read as an outage).
        if let Some(key) = &start_key {
            let (names, partition): (&[&str], Option<(&str, String)>) = match (&query.account, query.state) {
                (Some(account), _) => (&["pk", "sk", "account_id", "created_at"], Some(("account_id", account.clone()))),
                (None, Some(state)) => (&["pk", "sk", "state", "updated_at"], Some(("state", state.as_str().to_string()))),
                (None, None) => (&["pk", "sk"], None),
            };
            let same_names = key.len() == names.len() && names.iter().all(|n| key.contains_key(*n));
            let same_partition = partition.is_none_or(|(name, value)| key.get(name).and_then(|v| v.as_s().ok()) == Some(&value));
            if !same_names || !same_partition {
                return Err(Error::Data("the cursor belongs to a listing with other filters".into()));
            }
        }
        let limit = i32::try_from(query.limit.clamp(1, 100)).expect("at most 100");
        let dest_prefix = AttributeValue::S("DEST#".into());
        let out = match (&query.account, query.state) {
            (Some(account), state) => {
                let mut q = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .index_name(indexes::BY_ACCOUNT)
                    .key_condition_expression("account_id = :a")
                    .expression_attribute_values(":a", AttributeValue::S(account.clone()))
                    .expression_attribute_values(":dest", dest_prefix)
                    .scan_index_forward(false);
                q = match state {
                    Some(state) => q
                        .filter_expression("begins_with(sk, :dest) AND #state = :s")
                        .expression_attribute_names("#state", "state")
                        .expression_attribute_values(":s", AttributeValue::S(state.as_str().into())),
                    None => q.filter_expression("begins_with(sk, :dest)"),
                };
                q.set_exclusive_start_key(start_key).limit(limit).send().await.map_err(|e| Error::aws("DynamoDB Query", e))?
            }
            (None, Some(state)) => self
                .client
                .query()
                .table_name(&self.table)
                .index_name(indexes::BY_STATE)
                .key_condition_expression("#state = :s")
                .expression_attribute_names("#state", "state")
                .expression_attribute_values(":s", AttributeValue::S(state.as_str().into()))
                .scan_index_forward(false)
                .set_exclusive_start_key(start_key)
                .limit(limit)
                .send()
                .await
                .map_err(|e| Error::aws("DynamoDB Query", e))?,
            (None, None) => {
                let out = self
                    .client
                    .scan()
                    .table_name(&self.table)
                    .filter_expression("begins_with(sk, :dest)")
                    .expression_attribute_values(":dest", dest_prefix)
                    .set_exclusive_start_key(start_key)
                    .limit(limit)
                    .send()
                    .await
                    .map_err(|e| Error::aws("DynamoDB Scan", e))?;
                let next = out.last_evaluated_key.clone();
                let items: Vec<Destination> = serde_dynamo::from_items(out.items.unwrap_or_default())?;
                return Ok(Page { items, next_cursor: next.map(|k| encode_cursor(&k, b64)) });
            }
        };
        let next = out.last_evaluated_key.clone();
        let items: Vec<Destination> = serde_dynamo::from_items(out.items.unwrap_or_default())?;
        Ok(Page { items, next_cursor: next.map(|k| encode_cursor(&k, b64)) })
    }

    fn destination_cursor(&self, query: &DestinationQuery, last: &Destination) -> Result<String> {
        let item = destination_item(last)?;
        // The start key of the index the query reads: its keys and the table's.
        let names: &[&str] = match (&query.account, query.state) {
            (Some(_), _) => &["pk", "sk", "account_id", "created_at"],
            (None, Some(_)) => &["pk", "sk", "state", "updated_at"],
            (None, None) => &["pk", "sk"],
        };
        let key: Item = names.iter().filter_map(|n| item.get(*n).map(|v| (n.to_string(), v.clone()))).collect();
        if key.len() != names.len() {
            return Err(Error::Data(format!("destination {}/{} lacks a key of its index", last.post_id, last.account_id)));
        }
        Ok(encode_cursor(&key, base64::engine::general_purpose::URL_SAFE_NO_PAD))
    }

    async fn overdue_destinations(
        &self,
        state: crate::post::DestState,
        before: time::OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Destination>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(indexes::BY_DUE)
            .key_condition_expression("#state = :s AND #due < :before")
            .expression_attribute_names("#state", "state")
            .expression_attribute_names("#due", indexes::DUE_AT)
            .expression_attribute_values(":s", AttributeValue::S(state.as_str().into()))
            .expression_attribute_values(":before", AttributeValue::N(before.unix_timestamp().to_string()))
            .limit(i32::try_from(limit.clamp(1, 1000)).expect("at most 1000"))
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB Query", e))?;
        Ok(serde_dynamo::from_items(out.items.unwrap_or_default())?)
    }

    async fn get_account(&self, account_id: &str) -> Result<Option<Account>> {
        self.get(keys::account(account_id), keys::ACCOUNT).await
    }

    async fn put_account(&self, account: &Account) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(account, keys::account(&account.account_id), keys::ACCOUNT.into())?))
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB PutItem", e))?;
        Ok(())
    }

    async fn get_account_usage(&self, account_id: &str) -> Result<Option<AccountUsage>> {
        self.get(keys::account(account_id), keys::USAGE).await
    }

    async fn put_account_usage(&self, usage: &AccountUsage) -> Result<()> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item(usage, keys::account(&usage.account_id), keys::USAGE.into())?))
            .send()
            .await
            .map_err(|e| Error::aws("DynamoDB PutItem", e))?;
        Ok(())
    }
}
