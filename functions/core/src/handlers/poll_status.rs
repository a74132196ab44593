//! poll-status: fired by a `poll-…` schedule; reads the container's status and moves the
//! destination to READY, schedules the next poll with backoff, or fails it (ERROR, a second
//! EXPIRED, or the deadline for its media type passed). It also wakes DEFERRED destinations.

use tracing::Instrument;

use super::steps::{self, Checked, Step};
use crate::deps::Pipeline;
use crate::error::Result;
use crate::post::{DestState, Failure};
use crate::scheduler::PollInput;

pub async fn handle(deps: &Pipeline, input: PollInput) -> Result<()> {
    let span = tracing::info_span!("poll_status", post_id = %input.post_id, account_id = %input.account_id, attempt = input.attempt, state = tracing::field::Empty);
    async move {
        let Some(mut dest) = deps.store.get_destination(&input.post_id, &input.account_id).await? else {
            tracing::warn!("no such destination; nothing to do");
            return Ok(());
        };
        tracing::Span::current().record("state", dest.state.as_str());
        // Scheduler may deliver twice, and late: only the poll the destination waits for counts.
        if !matches!(dest.state, DestState::Processing | DestState::Deferred) || dest.poll_attempt != input.attempt {
            tracing::debug!(expected = dest.poll_attempt, "stale poll; nothing to do");
            return Ok(());
        }
        // Where this poll was placed (since creation), when it is a look placed for processing:
        // a time to learn from when it finds the container done. A deferred destination's
        // wake-up is not, nor a poll after READY (publish found it not ready after all).
        let first_wait = !dest.history.iter().any(|h| h.state == DestState::Ready);
        let placed = (dest.state == DestState::Processing && first_wait)
            .then(|| dest.next_poll_at.zip(dest.container_created_at).map(|(at, created)| at - created))
            .flatten()
            .filter(|d| d.is_positive())
            .map(|d| d.unsigned_abs());
        if dest.state == DestState::Deferred {
            let resume = dest.resume_after_wait(deps.clock.now())?;
            if resume != DestState::Processing {
                // QUEUED and READY are picked up from the stream.
                return steps::save_or_yield(deps, &mut dest).await.map(drop);
            }
        }
        let Some(mut ctx) = steps::load_context(deps, &mut dest, Step::Check).await? else { return Ok(()) };
        let stage = steps::stage(&ctx.post, &dest);
        // Read before the look: a carousel container made by it starts a wait of its own.
        let missed = dest.missed_look_ms.map(std::time::Duration::from_millis);
        // A schedule that fires late looks later than it was placed: the container is known done
        // (or in progress) at the later time only.
        let placed = placed.map(|placed| placed.max(steps::since_creation(deps, &dest)));
        let checked = steps::check_container(deps, &ctx, &mut dest).await?;
        let now_in = steps::stage(&ctx.post, &dest);
        if let (Some(placed), true) = (placed, dest.state == DestState::Ready || now_in != stage) {
            steps::learn_processing(deps, &mut ctx, stage, placed, missed).await;
        }
        if let Checked::Settled = checked {
            tracing::info!("container settled");
            return Ok(());
        }
        let deadline = deps.polling.deadline_for(ctx.post.processing_kind());
        let created = dest.container_created_at.unwrap_or(dest.created_at);
        if deps.clock.now() - created > deadline {
            let reason = format!(
                "processing timeout: Instagram was still processing the media after {}",
                humane(deadline)
            );
            return steps::fail(deps, &mut dest, Failure::new(reason)).await;
        }
        if now_in != stage {
            // The carousel's container was just made: its first look, inline when soon.
            let now = steps::since_creation(deps, &dest);
            let at = steps::first_look(deps, &ctx, &dest, now);
            return steps::look_inline(deps, &mut ctx, &mut dest, at, input.attempt + 1).await;
        }
        // Missed. A look at the middle of the account's learnt window: its end next, where the
        // last container was done. A look at a learnt time: the container is nearly done, the
        // next look one interval later (then growing). Else the growing interval as before.
        if let Some(placed) = placed {
            steps::record_miss(&mut dest, placed);
        }
        let done = steps::learnt_done(deps, &ctx, stage);
        let delay = match (placed, done) {
            (Some(placed), Some(done)) if placed < done => {
                // At least a second: a one-time schedule is written to the second.
                done.saturating_sub(steps::since_creation(deps, &dest)).max(std::time::Duration::from_secs(1))
            }
            _ => deps.polling.delay_before_poll(if done.is_some() { input.attempt } else { input.attempt + 1 }),
        };
        steps::schedule_poll_in(deps, &mut dest, input.attempt + 1, delay).await
    }
    .instrument(span)
    .await
}

fn humane(d: std::time::Duration) -> String {
    match d.as_secs() {
        s if s < 120 => format!("{s} seconds"),
        s => format!("{} minutes", s / 60),
    }
}
