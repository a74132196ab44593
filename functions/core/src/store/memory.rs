use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{DestinationQuery, Page, PostStore};
use crate::account::{Account, AccountUsage};
use crate::error::{Error, Result};
use crate::post::{Destination, Post};

/// In-memory store with the same conditional semantics as DynamoDB (unit tests).
#[derive(Default)]
pub struct MemoryStore {
    pub(super) inner: Mutex<Tables>,
    /// When not 0, a listing's page holds at most this many destinations, whatever the limit
    /// asked, as DynamoDB cuts a page at 1 MB (tests).
    pub page_cap: std::sync::atomic::AtomicUsize,
}

#[derive(Default)]
pub(super) struct Tables {
    pub(super) deliveries: HashMap<(String, String), String>,
    /// (source, event id) → the unix time after which the table's TTL may drop the key.
    pub(super) delivery_expiry: HashMap<(String, String), i64>,
    /// (source, event id) → the fingerprint recorded with the delivery.
    pub(super) fingerprints: HashMap<(String, String), String>,
    pub(super) posts: HashMap<String, Post>,
    pub(super) destinations: HashMap<(String, String), Destination>,
    /// (source, event id) → why that delivery made no post (see `DeliveryLog`).
    pub(super) skipped: HashMap<(String, String), String>,
    pub(super) accounts: HashMap<String, Account>,
    pub(super) usage: HashMap<String, AccountUsage>,
    /// Account id → refresh lock expiry (see `AccountStore`).
    pub(super) refresh_locks: HashMap<String, time::OffsetDateTime>,
    /// (post id, account id, event type) → status webhook delivery (see `NotificationLog`).
    pub(super) notifications: HashMap<(String, String, String), super::NotificationRecord>,
    /// Media id → the destination it was recorded for (see `MediaClaims`).
    pub(super) media: HashMap<String, super::MediaOwner>,
}

/// Where a destination is in a listing: newest first, ties broken by post and account.
type Position = (i128, String, String);

fn position(d: &Destination) -> Position {
    (d.created_at.unix_timestamp_nanos(), d.post_id.clone(), d.account_id.clone())
}

fn format_position((nanos, post_id, account_id): &Position) -> String {
    format!("{nanos}.{post_id}.{account_id}")
}

fn parse_position(cursor: &str) -> Option<Position> {
    let mut parts = cursor.splitn(3, '.');
    let nanos = parts.next()?.parse().ok()?;
    Some((nanos, parts.next()?.to_string(), parts.next()?.to_string()))
}

impl MemoryStore {
    pub fn post_count(&self) -> usize {
        self.inner.lock().unwrap().posts.len()
    }
}

#[async_trait]
impl PostStore for MemoryStore {
    async fn get_post(&self, post_id: &str) -> Result<Option<Post>> {
        Ok(self.inner.lock().unwrap().posts.get(post_id).cloned())
    }

    async fn get_destination(&self, post_id: &str, account_id: &str) -> Result<Option<Destination>> {
        Ok(self.inner.lock().unwrap().destinations.get(&(post_id.into(), account_id.into())).cloned())
    }

    async fn list_destinations(&self, post_id: &str) -> Result<Vec<Destination>> {
        let t = self.inner.lock().unwrap();
        let mut list: Vec<_> = t.destinations.values().filter(|d| d.post_id == post_id).cloned().collect();
        list.sort_by(|a, b| a.account_id.cmp(&b.account_id));
        Ok(list)
    }

    async fn save_destination(&self, destination: &mut Destination) -> Result<()> {
        let mut t = self.inner.lock().unwrap();
        let key = (destination.post_id.clone(), destination.account_id.clone());
        match t.destinations.get(&key) {
            Some(stored) if stored.version == destination.version => {
                destination.version += 1;
                t.destinations.insert(key, destination.clone());
                Ok(())
            }
            _ => Err(Error::Conflict(format!("destination {}/{}", key.0, key.1))),
        }
    }

    async fn save_post_edit(&self, post: &Post, destinations: &mut [Destination]) -> Result<()> {
        let mut t = self.inner.lock().unwrap();
        if !t.posts.contains_key(&post.post_id) {
            return Err(Error::Conflict(format!("post {} does not exist", post.post_id)));
        }
        for d in destinations.iter() {
            let stored = t.destinations.get(&(d.post_id.clone(), d.account_id.clone()));
            if stored.is_none_or(|s| s.version != d.version) {
                return Err(Error::Conflict(format!("destination {}/{}", d.post_id, d.account_id)));
            }
        }
        t.posts.insert(post.post_id.clone(), post.clone());
        for d in destinations.iter_mut() {
            d.version += 1;
            t.destinations.insert((d.post_id.clone(), d.account_id.clone()), d.clone());
        }
        Ok(())
    }

    async fn query_destinations(&self, query: &DestinationQuery) -> Result<Page<Destination>> {
        let t = self.inner.lock().unwrap();
        let mut list: Vec<_> = t
            .destinations
            .values()
            .filter(|d| query.account.as_ref().is_none_or(|a| &d.account_id == a))
            .filter(|d| query.state.is_none_or(|s| d.state == s))
            .cloned()
            .collect();
        // Newest first, as the indexes answer; a cursor is the position of the last one read.
        list.sort_by_key(|d| std::cmp::Reverse(position(d)));
        let start = match &query.cursor {
            None => 0,
            Some(cursor) => {
                let after = parse_position(cursor).ok_or_else(|| Error::Data("the cursor is not one this store made".into()))?;
                list.iter().position(|d| position(d) < after).unwrap_or(list.len())
            }
        };
        let limit = match self.page_cap.load(std::sync::atomic::Ordering::Relaxed) {
            0 => query.limit.max(1),
            cap => query.limit.clamp(1, cap),
        };
        let items: Vec<_> = list.iter().skip(start).take(limit).cloned().collect();
        let next_cursor = (start + limit < list.len()).then(|| format_position(&position(&list[start + limit - 1])));
        Ok(Page { items, next_cursor })
    }

    fn destination_cursor(&self, _query: &DestinationQuery, last: &Destination) -> Result<String> {
        Ok(format_position(&position(last)))
    }

    async fn overdue_destinations(
        &self,
        state: crate::post::DestState,
        before: time::OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Destination>> {
        let t = self.inner.lock().unwrap();
        // Whole seconds, as the DynamoDB index keeps them.
        let due = |d: &Destination| d.next_move_at().map(|at| at.unix_timestamp());
        let mut list: Vec<_> = t
            .destinations
            .values()
            .filter(|d| d.state == state && due(d).is_some_and(|at| at < before.unix_timestamp()))
            .cloned()
            .collect();
        list.sort_by_key(|d| due(d));
        list.truncate(limit);
        Ok(list)
    }

    async fn get_account(&self, account_id: &str) -> Result<Option<Account>> {
        Ok(self.inner.lock().unwrap().accounts.get(account_id).cloned())
    }

    async fn put_account(&self, account: &Account) -> Result<()> {
        self.inner.lock().unwrap().accounts.insert(account.account_id.clone(), account.clone());
        Ok(())
    }

    async fn get_account_usage(&self, account_id: &str) -> Result<Option<AccountUsage>> {
        Ok(self.inner.lock().unwrap().usage.get(account_id).cloned())
    }

    async fn put_account_usage(&self, usage: &AccountUsage) -> Result<()> {
        self.inner.lock().unwrap().usage.insert(usage.account_id.clone(), usage.clone());
        Ok(())
    }
}
