//! Wraps the Graph client to keep each account's API usage where every function instance sees
//! it: after a call, usage at or above 80 % of any figure, or a throttling error, starts a
//! pause for the account (Meta's estimate, or a backoff), and a notable change of usage is
//! recorded. Handlers read the pause before calling Instagram (see handlers::steps).

use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;

use super::{ContainerSpec, ContainerStatus, GraphApi, GraphError, MediaSummary, PublishingLimit, Reaction};
use crate::account::{Account, AccountUsage, ApiUsage, USAGE_DEFER_PERCENT};
use crate::clock::Clock;
use crate::store::PostStore;

/// A change of this many points (or crossing the threshold) is worth a write.
const NOTABLE_CHANGE: u32 = 10;

pub struct MeteredGraph {
    inner: Arc<dyn GraphApi>,
    store: Arc<dyn PostStore>,
    clock: Arc<dyn Clock>,
}

impl MeteredGraph {
    pub fn new(inner: Arc<dyn GraphApi>, store: Arc<dyn PostStore>, clock: Arc<dyn Clock>) -> Self {
        MeteredGraph { inner, store, clock }
    }

    /// Records what the last answer said about the account's usage. Never fails the call: a
    /// lost usage record only means the next call learns it again.
    async fn observe<T>(&self, account: &Account, result: &Result<T, GraphError>) {
        let latest = self.inner.latest_usage(&account.account_id);
        let throttled = matches!(result, Err(err) if err.reaction() == Reaction::Throttle);
        if latest.is_none() && !throttled {
            return;
        }
        if let Err(err) = self.record(account, latest, throttled).await {
            tracing::warn!(error = %err, "could not record the account's API usage");
        }
    }

    async fn record(&self, account: &Account, latest: Option<ApiUsage>, throttled: bool) -> crate::Result<()> {
        let now = self.clock.now();
        let mut usage = self.store.get_account_usage(&account.account_id).await?.unwrap_or_else(|| AccountUsage {
            account_id: account.account_id.clone(),
            ..AccountUsage::default()
        });
        let mut changed = false;
        if let Some(latest) = latest {
            let before = usage.latest.map(|u| u.highest());
            changed = before.is_none_or(|b| b.abs_diff(latest.highest()) >= NOTABLE_CHANGE);
            usage.observe(latest, now);
        }
        let regain = latest.map(|u| u.regain_minutes).unwrap_or(0);
        if throttled || latest.is_some_and(|u| u.highest() >= USAGE_DEFER_PERCENT) {
            let until = usage.throttle(now, regain);
            tracing::warn!(account_id = %account.account_id, %until, usage = ?latest, throttled,
                "Instagram rate limit near or reached; the account's calls wait");
            changed = true;
        }
        if changed {
            self.store.put_account_usage(&usage).await?;
        }
        Ok(())
    }
}

#[async_trait]
impl GraphApi for MeteredGraph {
    fn latest_usage(&self, account_id: &str) -> Option<ApiUsage> {
        self.inner.latest_usage(account_id)
    }

    async fn create_container(&self, account: &Account, token: &SecretString, spec: &ContainerSpec) -> Result<String, GraphError> {
        let result = self.inner.create_container(account, token, spec).await;
        self.observe(account, &result).await;
        result
    }

    async fn container_status(&self, account: &Account, token: &SecretString, id: &str) -> Result<ContainerStatus, GraphError> {
        let result = self.inner.container_status(account, token, id).await;
        self.observe(account, &result).await;
        result
    }

    async fn publish(&self, account: &Account, token: &SecretString, container_id: &str) -> Result<String, GraphError> {
        let result = self.inner.publish(account, token, container_id).await;
        self.observe(account, &result).await;
        result
    }

    async fn permalink(&self, account: &Account, token: &SecretString, media_id: &str) -> Result<String, GraphError> {
        let result = self.inner.permalink(account, token, media_id).await;
        self.observe(account, &result).await;
        result
    }

    async fn recent_media(&self, account: &Account, token: &SecretString, stories: bool) -> Result<Vec<MediaSummary>, GraphError> {
        let result = self.inner.recent_media(account, token, stories).await;
        self.observe(account, &result).await;
        result
    }

    async fn publishing_limit(&self, account: &Account, token: &SecretString) -> Result<PublishingLimit, GraphError> {
        let result = self.inner.publishing_limit(account, token).await;
        self.observe(account, &result).await;
        result
    }

    async fn comment(&self, account: &Account, token: &SecretString, media_id: &str, message: &str) -> Result<String, GraphError> {
        let result = self.inner.comment(account, token, media_id, message).await;
        self.observe(account, &result).await;
        result
    }
}
