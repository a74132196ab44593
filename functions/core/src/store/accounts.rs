//! Account bookkeeping of refresh-tokens and the operator CLI: listing accounts, the refresh
//! lock and the recorded token expiry. Each write touches only its own attributes of the
//! account item, so it never undoes a concurrent `put_account` (e.g. `accounts add`).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{DynamoStore, MemoryStore, keys};
use crate::account::{Account, AccountStatus};
use crate::error::{Error, Result};

/// Unix seconds until which one refresh run owns the account.
pub const REFRESH_LOCK_ATTRIBUTE: &str = "refresh_lock_until";

#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Every registered account (a handful: read in full).
    async fn list_accounts(&self) -> Result<Vec<Account>>;
    /// Takes the account's refresh lock until `until` unless another run holds it past `now`
    /// (one conditional write). Returns the account as stored once locked; `None` when someone
    /// else holds the lock or the account does not exist.
    async fn lock_for_refresh(&self, account_id: &str, now: OffsetDateTime, until: OffsetDateTime)
    -> Result<Option<Account>>;
    /// Gives the lock back early (nothing was refreshed, so another run may try).
    async fn unlock_refresh(&self, account_id: &str) -> Result<()>;
    /// Records when the account's new token expires (`None`: Meta did not say).
    async fn record_token_expiry(&self, account_id: &str, expires_at: Option<OffsetDateTime>) -> Result<()>;
    async fn set_account_status(&self, account_id: &str, status: AccountStatus) -> Result<()>;
}

fn status_value(status: AccountStatus) -> AttributeValue {
    // Serialized exactly as the Account item holds it (SCREAMING_SNAKE_CASE).
    let text = serde_json::to_value(status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
    AttributeValue::S(text)
}

impl DynamoStore {
    fn update_account(&self, account_id: &str) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(keys::account(account_id)))
            .key("sk", AttributeValue::S(keys::ACCOUNT.into()))
    }
}

fn not_registered(account_id: &str) -> Error {
    Error::NotFound(format!("Instagram account {account_id} is not registered with instapipe"))
}

#[async_trait]
impl AccountStore for DynamoStore {
    async fn list_accounts(&self) -> Result<Vec<Account>> {
        let mut items = Vec::new();
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("sk = :account")
            .expression_attribute_values(":account", AttributeValue::S(keys::ACCOUNT.into()))
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            items.push(item.map_err(|e| Error::aws("DynamoDB Scan", e))?);
        }
        let mut accounts: Vec<Account> = serde_dynamo::from_items(items)?;
        accounts.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        Ok(accounts)
    }

    async fn lock_for_refresh(&self, account_id: &str, now: OffsetDateTime, until: OffsetDateTime) -> Result<Option<Account>> {
        let result = self
            .update_account(account_id)
            .update_expression("SET #lock = :until")
            .condition_expression("attribute_exists(pk) AND (attribute_not_exists(#lock) OR #lock <= :now)")
            .expression_attribute_names("#lock", REFRESH_LOCK_ATTRIBUTE)
            .expression_attribute_values(":until", AttributeValue::N(until.unix_timestamp().to_string()))
            .expression_attribute_values(":now", AttributeValue::N(now.unix_timestamp().to_string()))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(serde_dynamo::from_item(out.attributes.unwrap_or_default())?)),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => Ok(None),
            Err(err) => Err(Error::aws("DynamoDB UpdateItem", err)),
        }
    }

    async fn unlock_refresh(&self, account_id: &str) -> Result<()> {
        self.update_account(account_id)
            .update_expression("REMOVE #lock")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#lock", REFRESH_LOCK_ATTRIBUTE)
            .send()
            .await
            .map(drop)
            .or_else(|err| match err.as_service_error() {
                Some(e) if e.is_conditional_check_failed_exception() => Ok(()),
                _ => Err(Error::aws("DynamoDB UpdateItem", err)),
            })
    }

    async fn record_token_expiry(&self, account_id: &str, expires_at: Option<OffsetDateTime>) -> Result<()> {
        let update = match expires_at {
            Some(at) => {
                let text = at.format(&Rfc3339).map_err(|e| Error::Data(e.to_string()))?;
                self.update_account(account_id)
                    .update_expression("SET token_expires_at = :at")
                    .expression_attribute_values(":at", AttributeValue::S(text))
            }
            None => self.update_account(account_id).update_expression("REMOVE token_expires_at"),
        };
        match update.condition_expression("attribute_exists(pk)").send().await {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Err(not_registered(account_id))
            }
            Err(err) => Err(Error::aws("DynamoDB UpdateItem", err)),
        }
    }

    async fn set_account_status(&self, account_id: &str, status: AccountStatus) -> Result<()> {
        let result = self
            .update_account(account_id)
            .update_expression("SET #status = :s")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":s", status_value(status))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_conditional_check_failed_exception()) => {
                Err(not_registered(account_id))
            }
            Err(err) => Err(Error::aws("DynamoDB UpdateItem", err)),
        }
    }
}

#[async_trait]
impl AccountStore for MemoryStore {
    async fn list_accounts(&self) -> Result<Vec<Account>> {
        let t = self.inner.lock().unwrap();
        let mut accounts: Vec<Account> = t.accounts.values().cloned().collect();
        accounts.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        Ok(accounts)
    }

    async fn lock_for_refresh(&self, account_id: &str, now: OffsetDateTime, until: OffsetDateTime) -> Result<Option<Account>> {
        let mut t = self.inner.lock().unwrap();
        let Some(account) = t.accounts.get(account_id).cloned() else { return Ok(None) };
        if t.refresh_locks.get(account_id).is_some_and(|held| *held > now) {
            return Ok(None);
        }
        t.refresh_locks.insert(account_id.to_string(), until);
        Ok(Some(account))
    }

    async fn unlock_refresh(&self, account_id: &str) -> Result<()> {
        self.inner.lock().unwrap().refresh_locks.remove(account_id);
        Ok(())
    }

    async fn record_token_expiry(&self, account_id: &str, expires_at: Option<OffsetDateTime>) -> Result<()> {
        let mut t = self.inner.lock().unwrap();
        let account = t.accounts.get_mut(account_id).ok_or_else(|| not_registered(account_id))?;
        account.token_expires_at = expires_at;
        Ok(())
    }

    async fn set_account_status(&self, account_id: &str, status: AccountStatus) -> Result<()> {
        let mut t = self.inner.lock().unwrap();
        t.accounts.get_mut(account_id).ok_or_else(|| not_registered(account_id))?.status = status;
        Ok(())
    }
}

/// For tests: who holds which lock.
impl MemoryStore {
    pub fn refresh_locks(&self) -> HashMap<String, OffsetDateTime> {
        self.inner.lock().unwrap().refresh_locks.clone()
    }
}
