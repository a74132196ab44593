//! Where posts, destinations, deliveries and accounts are kept: one DynamoDB table (`pk`/`sk`).

mod accounts;
pub mod api_keys;
mod deliveries;
mod dynamo;
mod media;
mod memory;
mod notifications;

pub use accounts::{AccountStore, REFRESH_LOCK_ATTRIBUTE};
pub use deliveries::{DeliveryLog, SKIPPED_REASON_ATTRIBUTE, Skipped};
pub use dynamo::DynamoStore;
pub use media::{MediaClaims, MediaOwner};
pub use memory::MemoryStore;
pub use notifications::{NotificationLog, NotificationRecord};

use async_trait::async_trait;

use crate::account::{Account, AccountUsage};
use crate::error::Result;
use crate::post::{Destination, Post};

/// Key layout of the table.
pub mod keys {
    pub fn post(post_id: &str) -> String {
        format!("POST#{post_id}")
    }
    pub const POST_META: &str = "META";
    pub fn destination(account_id: &str) -> String {
        format!("DEST#{account_id}")
    }
    pub fn delivery(source: &str, event_id: &str) -> String {
        format!("DELIVERY#{source}#{event_id}")
    }
    pub const DELIVERY: &str = "DELIVERY";
    pub fn account(account_id: &str) -> String {
        format!("ACCOUNT#{account_id}")
    }
    pub const ACCOUNT: &str = "ACCOUNT";
    /// The account's API usage and throttle window, beside its `ACCOUNT` item.
    pub const USAGE: &str = "USAGE";
}

/// How long a webhook delivery is remembered for de-duplication (senders retry for days).
pub const DELIVERY_MEMORY_SECS: i64 = 14 * 24 * 3600;

/// One received event of a source, remembered so its retries map to the same post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub source: String,
    pub event_id: String,
    pub post_id: String,
    /// Unix seconds after which the table's TTL may drop it. None for a content key (a
    /// product, an entry, a blog post): it means "this content was posted" for as long as
    /// the post exists, so a products/update months later does not post it again.
    pub expires_at: Option<i64>,
    /// What the request that made it looked like (the posts API's Idempotency-Key: method,
    /// path and body hash), so the same key with another request is told apart from a retry.
    pub fingerprint: Option<String>,
}

/// Names of the table's secondary indexes (template.yaml and the local stack create them).
pub mod indexes {
    /// Destinations by `account_id`, sorted by `created_at` (account items have no
    /// `created_at`, so they are not in it).
    pub const BY_ACCOUNT: &str = "by-account";
    /// Destinations by `state`, sorted by `updated_at`.
    pub const BY_STATE: &str = "by-state";
    /// Open destinations by `state`, sorted by `due_at` (unix seconds, when the destination is
    /// next expected to move): sparse, final ones carry no `due_at`. The watchdog reads it.
    pub const BY_DUE: &str = "by-due";
    /// The sort key of [`BY_DUE`], written by the DynamoDB adapter from `Destination::next_move_at`.
    pub const DUE_AT: &str = "due_at";
}

/// Which destinations to list, newest first, a page at a time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DestinationQuery {
    pub account: Option<String>,
    pub state: Option<crate::post::DestState>,
    pub limit: usize,
    /// Opaque position from the previous page.
    pub cursor: Option<String>,
}

/// A page of results and where the next one starts.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    New,
    /// The delivery was seen before: this is the post it made.
    Duplicate { post_id: String },
}

#[async_trait]
/// Every store also keeps the de-duplication records of source events ([`DeliveryLog`]) and
/// which destination each media belongs to ([`MediaClaims`]).
pub trait PostStore: DeliveryLog + AccountStore + MediaClaims + Send + Sync {
    /// Writes the delivery, the post and its destinations at once, or nothing if the delivery
    /// is already known.
    async fn create_post(&self, delivery: &Delivery, post: &Post, destinations: &[Destination]) -> Result<Created> {
        self.create_post_claiming(std::slice::from_ref(delivery), post, destinations).await
    }
    async fn get_post(&self, post_id: &str) -> Result<Option<Post>>;
    async fn get_destination(&self, post_id: &str, account_id: &str) -> Result<Option<Destination>>;
    async fn list_destinations(&self, post_id: &str) -> Result<Vec<Destination>>;
    /// Stores `destination` if the stored version is still `destination.version`, then bumps
    /// the version. Fails with [`Error::Conflict`](crate::Error::Conflict) when it is not.
    async fn save_destination(&self, destination: &mut Destination) -> Result<()>;
    /// Replaces an existing post's content and saves `destinations` in one transaction, each
    /// conditional on its version as [`save_destination`](Self::save_destination) is: all or
    /// nothing, so no step sees the new post with an old destination or the reverse.
    async fn save_post_edit(&self, post: &Post, destinations: &mut [Destination]) -> Result<()>;
    /// Destinations by account and/or state (indexes), newest first.
    async fn query_destinations(&self, query: &DestinationQuery) -> Result<Page<Destination>>;
    /// The cursor that continues `query` right after `last`, one of its results (a page read
    /// further than it was used: the posts API's listing of a key's several accounts).
    fn destination_cursor(&self, query: &DestinationQuery, last: &Destination) -> Result<String>;
    /// Up to `limit` destinations in `state` that were expected to move before `before`,
    /// oldest first (the watchdog's index; never a scan).
    async fn overdue_destinations(
        &self,
        state: crate::post::DestState,
        before: time::OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Destination>>;
    async fn get_account(&self, account_id: &str) -> Result<Option<Account>>;
    async fn put_account(&self, account: &Account) -> Result<()>;
    async fn get_account_usage(&self, account_id: &str) -> Result<Option<AccountUsage>>;
    async fn put_account_usage(&self, usage: &AccountUsage) -> Result<()>;
}
