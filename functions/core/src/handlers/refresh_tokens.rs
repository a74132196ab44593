//! refresh-tokens: fired daily (and on demand). Every account whose token expires within the
//! window, or whose expiry is unknown, gets a fresh long-lived token from the endpoint of its
//! login flavour; the token is stored as a new secret version and its expiry on the account.
//! A refused (190) or already expired token marks the account NEEDS_REAUTH: its posts wait for
//! a person to connect it again (`instapipe accounts add`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::account::{Account, AccountStatus};
use crate::deps::TokenRefresh;
use crate::error::{Error, Result};
use crate::graph::Reaction;
use crate::metrics;

/// The invocation's input. The daily schedule sends `{}`; an operator may name one account and
/// force its refresh whatever its expiry (`{"account_id": "1784...", "force": true}`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct RefreshEvent {
    #[serde(default)]
    pub account_id: Option<String>,
    #[serde(default)]
    pub force: bool,
}

/// What happened to one account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Refreshed {
        #[serde(with = "time::serde::rfc3339::option")]
        expires_at: Option<OffsetDateTime>,
    },
    /// Expires later than the window.
    NotDue,
    /// Another run holds the account's refresh lock.
    Busy,
    /// Already waiting for a person to log in again.
    AwaitingReauth,
    /// Refused or expired: marked NEEDS_REAUTH now.
    NeedsReauth { reason: String },
    /// Could not refresh this time (network, throttling, ...); the next run tries again.
    Failed { error: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AccountResult {
    pub account_id: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The invocation's result, one line per account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RefreshReport {
    pub accounts: Vec<AccountResult>,
}

pub async fn handle(deps: &TokenRefresh, event: RefreshEvent) -> Result<RefreshReport> {
    let mut accounts = deps.accounts.list_accounts().await?;
    if let Some(id) = &event.account_id {
        accounts.retain(|a| &a.account_id == id);
        if accounts.is_empty() {
            return Err(Error::NotFound(format!("Instagram account {id} is not registered with instapipe")));
        }
    }
    let mut report = RefreshReport::default();
    for account in accounts {
        let span = tracing::info_span!("refresh", account_id = %account.account_id);
        let outcome = refresh_account(deps, &account, event.force).instrument(span).await;
        report.accounts.push(AccountResult { account_id: account.account_id, outcome });
    }
    Ok(report)
}

/// Whether the token should be refreshed now: unknown expiry, or expiring within the window.
pub fn is_due(account: &Account, now: OffsetDateTime, window: std::time::Duration) -> bool {
    match account.token_expires_at {
        None => true,
        Some(at) => at - now <= window,
    }
}

async fn refresh_account(deps: &TokenRefresh, listed: &Account, force: bool) -> Outcome {
    match try_refresh(deps, listed, force).await {
        Ok(outcome) => outcome,
        Err(err) => {
            // Whatever failed, another run may try again: give the lock back.
            if let Err(unlock) = deps.accounts.unlock_refresh(&listed.account_id).await {
                tracing::warn!(error = %unlock, "could not release the refresh lock; it runs out by itself");
            }
            tracing::error!(error = %err, "token refresh failed; the next run tries again");
            Outcome::Failed { error: err.to_string() }
        }
    }
}

async fn try_refresh(deps: &TokenRefresh, listed: &Account, force: bool) -> Result<Outcome> {
    let now = deps.clock.now();
    if listed.status == AccountStatus::NeedsReauth && !force {
        return Ok(Outcome::AwaitingReauth);
    }
    if !force && !is_due(listed, now, deps.window) {
        return Ok(Outcome::NotDue);
    }
    let until = now + deps.lock_for;
    let Some(account) = deps.accounts.lock_for_refresh(&listed.account_id, now, until).await? else {
        tracing::info!("another run is refreshing this account; skipped");
        return Ok(Outcome::Busy);
    };
    // Another run may have refreshed it between our listing and our lock.
    if !force && !is_due(&account, now, deps.window) {
        deps.accounts.unlock_refresh(&account.account_id).await?;
        return Ok(Outcome::NotDue);
    }
    if let Some(expired) = account.token_expires_at.filter(|at| *at <= now) {
        let reason = format!("the token expired at {expired}; Meta refreshes only tokens that are still valid");
        return mark_needs_reauth(deps, &account, reason).await;
    }
    // The stored token, not a cached one: an operator may have replaced it since start-up.
    deps.tokens.forget(&account.account_id);
    let token = match deps.tokens.token(&account.account_id).await {
        Ok(token) => token,
        Err(Error::NotFound(reason)) => return mark_needs_reauth(deps, &account, reason).await,
        Err(err) => return Err(err),
    };
    let issued = match deps.api.refresh_token(account.login, &token).await {
        Ok(issued) => issued,
        Err(Error::Graph(err)) if err.reaction() == Reaction::Reauth => {
            let reason = format!("Meta refused to refresh the token: {err}");
            return mark_needs_reauth(deps, &account, reason).await;
        }
        Err(err) => return Err(err),
    };
    deps.tokens.put_token(&account.account_id, &issued.access_token).await?;
    let expires_at = issued.expires_in.and_then(|s| i64::try_from(s).ok()).map(|s| now + time::Duration::seconds(s));
    deps.accounts.record_token_expiry(&account.account_id, expires_at).await?;
    // The lock stays until it runs out, so an overlapping run cannot refresh again.
    metrics::count(metrics::TOKENS_REFRESHED, 1);
    tracing::info!(expires_at = ?expires_at, "token refreshed and stored as a new secret version");
    Ok(Outcome::Refreshed { expires_at })
}

async fn mark_needs_reauth(deps: &TokenRefresh, account: &Account, reason: String) -> Result<Outcome> {
    deps.accounts.set_account_status(&account.account_id, AccountStatus::NeedsReauth).await?;
    metrics::count(metrics::ACCOUNTS_NEEDING_REAUTH, 1);
    // A fixed word for log-based alarms and searches: ACCOUNT_NEEDS_REAUTH.
    tracing::error!(alarm = "ACCOUNT_NEEDS_REAUTH", reason = %reason, "ACCOUNT_NEEDS_REAUTH: the account must be connected again");
    Ok(Outcome::NeedsReauth { reason })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use async_trait::async_trait;
    use secrecy::{ExposeSecret, SecretString};
    use time::macros::datetime;

    use super::*;
    use crate::account::LoginFlavour;
    use crate::graph::account_api::{AccountApi, IssuedToken, PublishingQuota};
    use crate::clock::FixedClock;
    use crate::graph::GraphError;
    use crate::store::{AccountStore, MemoryStore, PostStore};
    use crate::tokens::MemoryTokens;

    const NOW: OffsetDateTime = datetime!(2026-11-23 10:00 UTC);
    const DAY: time::Duration = time::Duration::DAY;

    /// Meta's token endpoints: refreshes a token it knows, refuses any other with 190.
    #[derive(Default)]
    struct FakeMeta {
        valid: Mutex<Vec<String>>,
        calls: Mutex<Vec<(LoginFlavour, String)>>,
        transient: Mutex<bool>,
    }

    #[async_trait]
    impl AccountApi for FakeMeta {
        async fn refresh_token(&self, login: LoginFlavour, token: &SecretString) -> Result<IssuedToken> {
            self.calls.lock().unwrap().push((login, token.expose_secret().to_string()));
            if *self.transient.lock().unwrap() {
                return Err(GraphError::Timeout.into());
            }
            let mut valid = self.valid.lock().unwrap();
            if !valid.iter().any(|t| t == token.expose_secret()) {
                let body = br#"{"error":{"message":"Error validating access token","code":190,"error_subcode":463}}"#;
                return Err(GraphError::from_response(400, body).into());
            }
            let fresh = format!("{}-r", token.expose_secret());
            valid.push(fresh.clone());
            Ok(IssuedToken { access_token: SecretString::from(fresh), expires_in: Some(5_184_000) })
        }
        async fn exchange_token(&self, login: LoginFlavour, token: &SecretString) -> Result<IssuedToken> {
            self.refresh_token(login, token).await
        }
        async fn publishing_quota(&self, _: &Account, _: &SecretString) -> Result<PublishingQuota> {
            Ok(PublishingQuota { usage: 0, total: Some(50) })
        }
    }

    struct World {
        deps: TokenRefresh,
        store: Arc<MemoryStore>,
        tokens: Arc<MemoryTokens>,
        meta: Arc<FakeMeta>,
    }

    async fn world(accounts: &[(&str, LoginFlavour, Option<OffsetDateTime>, &str)]) -> World {
        let store = Arc::new(MemoryStore::default());
        let tokens = Arc::new(MemoryTokens::default());
        let meta = Arc::new(FakeMeta::default());
        for (id, login, expires, token) in accounts {
            let account = Account {
                account_id: id.to_string(),
                login: *login,
                status: AccountStatus::Active,
                token_expires_at: *expires,
            };
            store.put_account(&account).await.unwrap();
            tokens.replace(id, token);
            meta.valid.lock().unwrap().push(token.to_string());
        }
        let deps = TokenRefresh {
            accounts: store.clone(),
            tokens: tokens.clone(),
            api: meta.clone(),
            clock: Arc::new(FixedClock(NOW)),
            window: Duration::from_secs(7 * 86_400),
            lock_for: Duration::from_secs(900),
        };
        World { deps, store, tokens, meta }
    }

    fn outcome(report: &RefreshReport, id: &str) -> Outcome {
        report.accounts.iter().find(|a| a.account_id == id).map(|a| a.outcome.clone()).unwrap()
    }

    #[tokio::test]
    async fn tokens_in_the_window_or_of_unknown_expiry_are_refreshed_and_the_others_left() {
        let w = world(&[
            ("A_SOON", LoginFlavour::Instagram, Some(NOW + DAY * 3), "IGAA-soon"),
            ("A_UNKNOWN", LoginFlavour::Facebook, None, "EAAB-unknown"),
            ("A_LATER", LoginFlavour::Instagram, Some(NOW + DAY * 30), "IGAA-later"),
        ])
        .await;
        let report = handle(&w.deps, RefreshEvent::default()).await.unwrap();

        let expected = Some(NOW + time::Duration::seconds(5_184_000));
        assert_eq!(outcome(&report, "A_SOON"), Outcome::Refreshed { expires_at: expected });
        assert_eq!(outcome(&report, "A_UNKNOWN"), Outcome::Refreshed { expires_at: expected });
        assert_eq!(outcome(&report, "A_LATER"), Outcome::NotDue);
        // A new version of the secret, and the new expiry on the account.
        assert_eq!(w.tokens.versions("A_SOON"), ["IGAA-soon", "IGAA-soon-r"]);
        assert_eq!(w.tokens.versions("A_LATER"), ["IGAA-later"]);
        assert_eq!(w.store.get_account("A_SOON").await.unwrap().unwrap().token_expires_at, expected);
        // Each with its own flavour's endpoint.
        let calls = w.meta.calls.lock().unwrap().clone();
        assert!(calls.contains(&(LoginFlavour::Instagram, "IGAA-soon".into())));
        assert!(calls.contains(&(LoginFlavour::Facebook, "EAAB-unknown".into())));
        assert_eq!(calls.len(), 2);
    }

    #[tokio::test]
    async fn a_second_overlapping_run_does_not_refresh_the_same_account_again() {
        let w = world(&[("A1", LoginFlavour::Instagram, Some(NOW + DAY), "IGAA-1")]).await;
        // Both runs list the account as due before either locks it.
        let listed = w.store.list_accounts().await.unwrap().remove(0);
        let first = refresh_account(&w.deps, &listed, false).await;
        let second = refresh_account(&w.deps, &listed, false).await;
        assert!(matches!(first, Outcome::Refreshed { .. }), "{first:?}");
        assert_eq!(second, Outcome::Busy);
        assert_eq!(w.meta.calls.lock().unwrap().len(), 1);
        assert_eq!(w.tokens.versions("A1").len(), 2);
    }

    #[tokio::test]
    async fn a_refused_token_marks_the_account_needs_reauth() {
        let w = world(&[("A1", LoginFlavour::Instagram, None, "IGAA-1")]).await;
        w.meta.valid.lock().unwrap().clear(); // Meta no longer knows the token: 190
        let report = handle(&w.deps, RefreshEvent::default()).await.unwrap();
        let Outcome::NeedsReauth { reason } = outcome(&report, "A1") else { panic!("{report:?}") };
        assert!(reason.contains("190"), "{reason}");
        assert_eq!(w.store.get_account("A1").await.unwrap().unwrap().status, AccountStatus::NeedsReauth);
        assert_eq!(w.tokens.versions("A1"), ["IGAA-1"], "nothing stored");
        // The next daily run leaves it alone until someone connects it again.
        let again = handle(&w.deps, RefreshEvent::default()).await.unwrap();
        assert_eq!(outcome(&again, "A1"), Outcome::AwaitingReauth);
    }

    #[tokio::test]
    async fn an_expired_token_is_not_sent_to_meta_and_marks_the_account() {
        let w = world(&[("A1", LoginFlavour::Instagram, Some(NOW - DAY), "IGAA-1")]).await;
        let report = handle(&w.deps, RefreshEvent::default()).await.unwrap();
        assert!(matches!(outcome(&report, "A1"), Outcome::NeedsReauth { .. }), "{report:?}");
        assert!(w.meta.calls.lock().unwrap().is_empty());
        assert_eq!(w.store.get_account("A1").await.unwrap().unwrap().status, AccountStatus::NeedsReauth);
    }

    #[tokio::test]
    async fn a_transient_failure_leaves_the_account_active_and_unlocked_for_the_next_run() {
        let w = world(&[("A1", LoginFlavour::Instagram, None, "IGAA-1")]).await;
        *w.meta.transient.lock().unwrap() = true;
        let report = handle(&w.deps, RefreshEvent::default()).await.unwrap();
        assert!(matches!(outcome(&report, "A1"), Outcome::Failed { .. }), "{report:?}");
        assert_eq!(w.store.get_account("A1").await.unwrap().unwrap().status, AccountStatus::Active);
        assert!(w.store.refresh_locks().is_empty());
        *w.meta.transient.lock().unwrap() = false;
        let report = handle(&w.deps, RefreshEvent::default()).await.unwrap();
        assert!(matches!(outcome(&report, "A1"), Outcome::Refreshed { .. }), "{report:?}");
    }

    #[tokio::test]
    async fn one_account_can_be_forced_on_demand() {
        let w = world(&[
            ("A1", LoginFlavour::Instagram, Some(NOW + DAY * 40), "IGAA-1"),
            ("A2", LoginFlavour::Instagram, None, "IGAA-2"),
        ])
        .await;
        let event = RefreshEvent { account_id: Some("A1".into()), force: true };
        let report = handle(&w.deps, event).await.unwrap();
        assert_eq!(report.accounts.len(), 1);
        assert!(matches!(outcome(&report, "A1"), Outcome::Refreshed { .. }));
        assert_eq!(w.tokens.versions("A2"), ["IGAA-2"]);
        let missing = RefreshEvent { account_id: Some("nobody".into()), force: false };
        assert!(matches!(handle(&w.deps, missing).await, Err(Error::NotFound(_))));
    }

    #[test]
    fn the_schedules_input_and_the_report_are_plain_json() {
        let event: RefreshEvent = serde_json::from_str("{}").unwrap();
        assert!(event.account_id.is_none() && !event.force);
        let report = RefreshReport {
            accounts: vec![AccountResult { account_id: "A1".into(), outcome: Outcome::Busy }],
        };
        assert_eq!(serde_json::to_value(&report).unwrap(), serde_json::json!({"accounts":[{"account_id":"A1","outcome":"busy"}]}));
    }
}
