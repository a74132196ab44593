//! Destinations parked in AWAITING_AUTH continue once their account has a new token.

use secrecy::SecretString;
use time::OffsetDateTime;

use crate::account::{Account, AccountStatus, LoginFlavour};
use crate::deps::Pipeline;
use crate::error::Result;
use crate::tokens::TokenVault;
use crate::post::DestState;
use crate::store::DestinationQuery;

use super::steps;

/// Stores an account's token (a new version of its secret), then the account item (ACTIVE, with
/// the token's expiry), then resumes its waiting posts: what `accounts add`, `accounts connect`
/// and `/oauth/callback` all do, in this order (the token first, so the account is never ACTIVE
/// without it). Returns how many destinations were resumed.
pub async fn register_account(
    deps: &Pipeline,
    vault: &dyn TokenVault,
    account_id: &str,
    login: LoginFlavour,
    token: &SecretString,
    token_expires_at: Option<OffsetDateTime>,
) -> Result<usize> {
    vault.put_token(account_id, token).await?;
    let account = Account { account_id: account_id.to_string(), login, status: AccountStatus::Active, token_expires_at };
    deps.store.put_account(&account).await?;
    resume_account(deps, account_id).await
}

/// Marks the account ACTIVE again and sends each of its waiting destinations back to the step
/// it was stopped at: QUEUED and READY are picked up from the stream, PROCESSING gets a poll.
/// Returns how many destinations were resumed. Safe to run twice.
pub async fn resume_account(deps: &Pipeline, account_id: &str) -> Result<usize> {
    deps.tokens.forget(account_id);
    // A targeted update: a full put would drop attributes others keep there (the refresh lock).
    if deps.store.get_account(account_id).await?.is_some_and(|a| a.status != AccountStatus::Active) {
        deps.store.set_account_status(account_id, AccountStatus::Active).await?;
    }
    let mut query = DestinationQuery {
        account: Some(account_id.to_string()),
        state: Some(DestState::AwaitingAuth),
        limit: 100,
        cursor: None,
    };
    let mut resumed = 0;
    loop {
        let page = deps.store.query_destinations(&query).await?;
        for mut dest in page.items {
            let resume = dest.resume_after_auth(deps.clock.now())?;
            let saved = if resume == DestState::Processing {
                let next = dest.poll_attempt + 1;
                steps::schedule_poll(deps, &mut dest, next).await.map(|()| true)?
            } else {
                steps::save_or_yield(deps, &mut dest).await?
            };
            resumed += usize::from(saved);
        }
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    tracing::info!(account_id, resumed, "account connected again; waiting posts resumed");
    Ok(resumed)
}
