//! sweep: the watchdog. Lambda drops an asynchronous invocation after two retries, a stream
//! record that keeps failing ends in the failure queue, and a function can die mid-step: any of
//! them can leave a destination that nothing will move again. Every open destination carries
//! when it is next expected to move (`Destination::next_move_at`, the sparse `by-due` index);
//! this function, on a schedule, restarts each one that is overdue by more than the grace, at
//! the step where it stopped, through the same handlers and conditional writes (a restart that
//! races the real event does nothing twice). After `max_rearms` restarts it fails with the reason.

use futures::StreamExt;
use serde::Serialize;
use tracing::Instrument;

use super::steps;
use super::stream::DestinationKey;
use super::{create_container, poll_status, publish};
use crate::deps::Pipeline;
use crate::error::Result;
use crate::metrics;
use crate::polling::WatchdogPolicy;
use crate::post::{DestState, Destination, Failure};
use crate::scheduler::PollInput;

/// The states something must move on; AWAITING_AUTH waits for a person and is not here.
const WATCHED: [DestState; 6] = [
    DestState::Scheduled,
    DestState::Queued,
    DestState::Processing,
    DestState::Ready,
    DestState::Publishing,
    DestState::Deferred,
];

/// What one run did (also the function's result, for the logs and the local stack).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Overdue destinations found.
    pub overdue: u32,
    /// Restarted at their step.
    pub rearmed: u32,
    /// Restarted too often: failed with the reason.
    pub failed: u32,
    /// Restarts whose step failed again (the next run finds them again).
    pub errors: u32,
}

enum Swept {
    Rearmed,
    Failed,
    /// Another invocation moved it meanwhile.
    Moved,
}

pub async fn handle(deps: &Pipeline, policy: &WatchdogPolicy) -> Result<SweepReport> {
    let now = deps.clock.now();
    let before = now - policy.grace;
    let mut report = SweepReport::default();
    for state in WATCHED {
        let overdue = deps.store.overdue_destinations(state, before, policy.batch).await?;
        report.overdue += u32::try_from(overdue.len()).unwrap_or(u32::MAX);
        // A few at a time: a PUBLISHING one may wait out its lease before it can look.
        let results: Vec<Result<Swept>> =
            futures::stream::iter(overdue).map(|dest| sweep_one(deps, policy, dest)).buffer_unordered(8).collect().await;
        for result in results {
            match result {
                Ok(Swept::Rearmed) => report.rearmed += 1,
                Ok(Swept::Failed) => report.failed += 1,
                Ok(Swept::Moved) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "a restarted step failed; the next sweep tries again");
                    report.errors += 1;
                }
            }
        }
    }
    if report.overdue > 0 {
        tracing::warn!(?report, "overdue destinations swept");
    }
    metrics::count(metrics::WATCHDOG_REARMS, u64::from(report.rearmed));
    metrics::count(metrics::WATCHDOG_FAILED, u64::from(report.failed));
    Ok(report)
}

async fn sweep_one(deps: &Pipeline, policy: &WatchdogPolicy, mut dest: Destination) -> Result<Swept> {
    let span = tracing::info_span!("sweep", post_id = %dest.post_id, account_id = %dest.account_id, state = %dest.state);
    async move {
        let since = dest.next_move_at().unwrap_or(dest.updated_at);
        let state = dest.state;
        if dest.rearms >= policy.max_rearms {
            let reason = format!(
                "stalled: nothing moved it on from {state} since {since}, and the watchdog restarted it {} times",
                dest.rearms
            );
            tracing::error!(%reason, "stalled too often; failing it");
            dest.fail(Failure::new(reason), deps.clock.now())?;
            return Ok(if steps::save_or_yield(deps, &mut dest).await? { Swept::Failed } else { Swept::Moved });
        }
        dest.rearm(&format!("expected to move on from {state} by {since}"), deps.clock.now())?;
        // Counted before the step runs, so a step that dies every time still ends FAILED.
        if !steps::save_or_yield(deps, &mut dest).await? {
            return Ok(Swept::Moved);
        }
        tracing::warn!(rearms = dest.rearms, "overdue; restarting its step");
        restart_step(deps, &dest).await?;
        Ok(Swept::Rearmed)
    }
    .instrument(span)
    .await
}

/// Runs the handler of the step the destination stopped at (each is idempotent).
async fn restart_step(deps: &Pipeline, dest: &Destination) -> Result<()> {
    let key = DestinationKey { post_id: dest.post_id.clone(), account_id: dest.account_id.clone() };
    match dest.state {
        DestState::Scheduled | DestState::Queued => create_container::start(deps, key).await,
        // Containers saved, no poll arranged yet: creation resumes.
        DestState::Processing if dest.poll_attempt == 0 => create_container::start(deps, key).await,
        DestState::Processing | DestState::Deferred => {
            let input = PollInput { post_id: key.post_id, account_id: key.account_id, attempt: dest.poll_attempt };
            poll_status::handle(deps, input).await
        }
        DestState::Ready | DestState::Publishing => publish::publish(deps, key).await,
        _ => Ok(()),
    }
}

/// What [`rearm_now`] did with a destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rearmed {
    /// Re-armed (counted in `rearms`, noted in its history) and its step started again from this state.
    Restarted(DestState),
    /// Final, or waiting for a person (AWAITING_AUTH): nothing to restart.
    NothingToRestart(DestState),
    /// No such destination (never stored, or its post is gone).
    Missing,
    /// Another invocation moved it while this one looked; that one carries it on.
    Moved,
}

/// Re-arms one destination now through the watchdog's own path ([`Destination::rearm`], then
/// the handler of its step, with the same conditional writes): `instapipe queues redrive` for a
/// stream batch that used up its retries, whose records cannot be delivered again. Unlike the
/// sweep it does not wait until the destination is overdue, nor fail it after `max_rearms`:
/// an operator asked for it. Running it twice does nothing twice (the handlers are idempotent).
pub async fn rearm_now(deps: &Pipeline, post_id: &str, account_id: &str, why: &str) -> Result<Rearmed> {
    let Some(mut dest) = deps.store.get_destination(post_id, account_id).await? else { return Ok(Rearmed::Missing) };
    let state = dest.state;
    if dest.next_move_at().is_none() {
        return Ok(Rearmed::NothingToRestart(state));
    }
    dest.rearm(why, deps.clock.now())?;
    if !steps::save_or_yield(deps, &mut dest).await? {
        return Ok(Rearmed::Moved);
    }
    tracing::warn!(post_id, account_id, rearms = dest.rearms, why, "re-armed by an operator; restarting its step");
    restart_step(deps, &dest).await?;
    Ok(Rearmed::Restarted(state))
}
