//! Destinations parked in AWAITING_AUTH continue once their account has a new token.

use crate::account::AccountStatus;
use crate::deps::Pipeline;
use crate::error::Result;
use crate::post::DestState;
use crate::store::DestinationQuery;

use super::steps;

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
