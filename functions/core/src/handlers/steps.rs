//! Steps shared by create-container, poll-status and publish.

use secrecy::SecretString;

use crate::account::Account;
use crate::deps::Pipeline;
use crate::error::{Error, Result};
use crate::graph::{ContainerStatus, GraphError, Reaction};
use crate::post::{DestState, Destination, Failure, Post};
use crate::scheduler::{OneTimeSchedule, PollInput};

/// Everything a step needs to talk to Instagram about one destination.
pub struct Context {
    pub post: Post,
    pub account: Account,
    pub token: SecretString,
}

/// Saves; a lost race means another invocation moved the destination on, which is fine.
/// Returns whether our write landed.
pub async fn save_or_yield(deps: &Pipeline, dest: &mut Destination) -> Result<bool> {
    match deps.store.save_destination(dest).await {
        Ok(()) => {
            tracing::Span::current().record("state", dest.state.as_str());
            Ok(true)
        }
        Err(Error::Conflict(why)) => {
            tracing::info!(%why, "another invocation moved this destination first; stopping");
            Ok(false)
        }
        Err(err) => Err(err),
    }
}

pub async fn fail(deps: &Pipeline, dest: &mut Destination, failure: Failure) -> Result<()> {
    tracing::warn!(reason = %failure.reason, code = ?failure.code, subcode = ?failure.subcode, "destination failed");
    dest.fail(failure, deps.clock.now())?;
    save_or_yield(deps, dest).await.map(drop)
}

/// Loads the post, account and token, or fails the destination with the reason it cannot go on.
pub async fn load_context(deps: &Pipeline, dest: &mut Destination) -> Result<Option<Context>> {
    let Some(post) = deps.store.get_post(&dest.post_id).await? else {
        fail(deps, dest, Failure::new("the post record is missing")).await?;
        return Ok(None);
    };
    let Some(account) = deps.store.get_account(&dest.account_id).await? else {
        let reason = format!("Instagram account {} is not registered with instapipe", dest.account_id);
        fail(deps, dest, Failure::new(reason)).await?;
        return Ok(None);
    };
    let token = match deps.tokens.token(&dest.account_id).await {
        Ok(token) => token,
        Err(Error::NotFound(reason)) => {
            fail(deps, dest, Failure::new(reason)).await?;
            return Ok(None);
        }
        Err(err) => return Err(err),
    };
    Ok(Some(Context { post, account, token }))
}

/// Handles a Graph error the step could not absorb: transient ones go back to the event source
/// for a retry; permanent ones fail the destination with Meta's code and message.
pub async fn react(deps: &Pipeline, dest: &mut Destination, err: GraphError, step: &str) -> Result<()> {
    match err.reaction() {
        Reaction::Retry | Reaction::Throttle | Reaction::Quota | Reaction::Repoll => Err(err.into()),
        Reaction::Reauth => {
            deps.tokens.forget(&dest.account_id);
            let mut failure = err.to_failure(step);
            failure.reason.push_str(" (the account must be connected again)");
            fail(deps, dest, failure).await
        }
        Reaction::Recreate | Reaction::Fail => fail(deps, dest, err.to_failure(step)).await,
    }
}

pub enum Checked {
    /// The destination moved on (READY or FAILED).
    Settled,
    /// Meta is still processing.
    Pending,
}

/// Reads the container's status once and moves the destination accordingly.
pub async fn check_container(deps: &Pipeline, ctx: &Context, dest: &mut Destination) -> Result<Checked> {
    let container_id = dest.container_id.clone().ok_or_else(|| Error::Data("no container id".into()))?;
    let now = deps.clock.now();
    let status = match deps.graph.container_status(&ctx.account, &ctx.token, &container_id).await {
        Ok(status) => status,
        // A hiccup or a throttle while waiting is just another reason to look again later.
        Err(err) if matches!(err.reaction(), Reaction::Retry | Reaction::Throttle) => {
            tracing::info!(error = %err, "status check failed; will look again");
            return Ok(Checked::Pending);
        }
        Err(err) => {
            react(deps, dest, err, "checking the container").await?;
            return Ok(Checked::Settled);
        }
    };
    tracing::debug!(?status, "container status");
    match status {
        ContainerStatus::InProgress => return Ok(Checked::Pending),
        ContainerStatus::Finished | ContainerStatus::Published => {
            dest.move_to(DestState::Ready, now, Some(format!("container {container_id} finished")))?;
            save_or_yield(deps, dest).await?;
        }
        ContainerStatus::Error(text) => {
            let failure = Failure::new(format!("Instagram could not process the media: {text}"));
            fail(deps, dest, failure).await?;
        }
        ContainerStatus::Expired => {
            fail(deps, dest, Failure::new("the container expired (24 h) before it was published")).await?;
        }
    }
    Ok(Checked::Settled)
}

/// Schedules poll number `attempt`, then records that it is the one expected to fire.
/// Scheduling first: a crash in between leaves a schedule that finds nothing to do, never a
/// destination that nothing will wake.
pub async fn schedule_poll(deps: &Pipeline, dest: &mut Destination, attempt: u32) -> Result<()> {
    let now = deps.clock.now();
    let at = now + deps.polling.delay_before_poll(attempt);
    let input = PollInput { post_id: dest.post_id.clone(), account_id: dest.account_id.clone(), attempt };
    deps.scheduler.schedule_once(&OneTimeSchedule::poll(input, at)).await?;
    dest.poll_attempt = attempt;
    dest.updated_at = now;
    if save_or_yield(deps, dest).await? {
        tracing::info!(attempt, at = %at, "Instagram is still processing; poll scheduled");
    }
    Ok(())
}
