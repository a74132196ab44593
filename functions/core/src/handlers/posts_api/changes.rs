//! Cancelling and editing a post before it is published. Both write the destinations
//! conditionally on their version, so a step that moved a destination meanwhile wins or loses
//! cleanly: the handlers stop quietly on a lost race, and so does this, by reading again.

use serde::Deserialize;
use time::OffsetDateTime;

use crate::deps::Ingest;
use crate::error::Error;
use crate::post::{DestState, Destination, Post};
use crate::scheduler::{OneTimeSchedule, StartInput};
use crate::sources::{RequestError, validate};

/// Reads again after a lost race at most this often before asking the client to retry.
const ATTEMPTS: usize = 3;

/// `PATCH /posts/{id}`: a new time, a new caption, or both.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostEdit {
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub publish_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub caption: Option<String>,
}

/// Cancels every destination not yet handed to media_publish and deletes its schedules.
/// Repeating it on a cancelled post changes nothing (and deletes leftover schedules).
pub async fn cancel(deps: &Ingest, post_id: &str) -> Result<(Post, Vec<Destination>), RequestError> {
    let post = load_post(deps, post_id).await?;
    for _ in 0..ATTEMPTS {
        let destinations = deps.store.list_destinations(post_id).await.map_err(unavailable)?;
        refuse_if_publishing(&destinations, "cancelled")?;
        let open: Vec<_> = destinations.iter().filter(|d| d.state.can_move_to(DestState::Cancelled)).cloned().collect();
        if open.is_empty() && !destinations.iter().any(|d| d.state == DestState::Cancelled) {
            return Err(RequestError::new(
                409,
                "already_final",
                format!("the post has already ended ({}); there is nothing to cancel", crate::post::overall_state(&destinations).as_str()),
            ));
        }
        let mut lost_race = false;
        for mut d in open {
            d.cancel("cancelled through the posts API", deps.clock.now()).map_err(|e| unavailable(e.into()))?;
            match deps.store.save_destination(&mut d).await {
                Ok(()) => {}
                Err(Error::Conflict(_)) => lost_race = true,
                Err(err) => return Err(unavailable(err)),
            }
        }
        if lost_race {
            continue;
        }
        let destinations = deps.store.list_destinations(post_id).await.map_err(unavailable)?;
        for d in destinations.iter().filter(|d| d.state == DestState::Cancelled) {
            delete_schedules(deps, d).await.map_err(|err| {
                tracing::error!(error = %err, account_id = %d.account_id, "cancelled, but a schedule could not be deleted");
                RequestError::new(503, "unavailable", "the post is cancelled but its schedules could not all be deleted; retry to finish")
            })?;
        }
        tracing::info!(state = %crate::post::overall_state(&destinations).as_str(), "post cancelled");
        return Ok((post, destinations));
    }
    Err(busy())
}

/// Changes the time and/or caption of a post all of whose open destinations are still
/// SCHEDULED (no container made yet), then replaces each start schedule.
pub async fn edit(deps: &Ingest, post_id: &str, edit: PostEdit) -> Result<(Post, Vec<Destination>), RequestError> {
    if edit.publish_at.is_none() && edit.caption.is_none() {
        return Err(RequestError::new(422, "invalid_field", "nothing to change: give publish_at, caption or both"));
    }
    let mut post = load_post(deps, post_id).await?;
    let edit = PostEdit { publish_at: edit.publish_at.map(|at| at.to_offset(time::UtcOffset::UTC)), ..edit };
    if let Some(caption) = &edit.caption {
        post.caption = caption.clone();
    }
    if let Some(at) = edit.publish_at {
        post.publish_at = Some(at);
    }
    validate(&post.to_request())?;
    let note = match (edit.publish_at, &edit.caption) {
        (Some(at), Some(_)) => format!("rescheduled to {} and caption edited", rfc3339(at)),
        (Some(at), None) => format!("rescheduled to {}", rfc3339(at)),
        _ => "caption edited".to_string(),
    };
    for _ in 0..ATTEMPTS {
        let destinations = deps.store.list_destinations(post_id).await.map_err(unavailable)?;
        refuse_if_publishing(&destinations, "changed")?;
        let mut open: Vec<_> = destinations.iter().filter(|d| !d.state.is_final()).cloned().collect();
        if open.is_empty() {
            return Err(RequestError::new(409, "already_final", "the post has already ended; it cannot be changed"));
        }
        if let Some(d) = open.iter().find(|d| d.state != DestState::Scheduled) {
            return Err(RequestError::new(
                409,
                "not_editable",
                format!(
                    "account {} is already {}: its container is made with the current caption and time; cancel the post instead",
                    d.account_id, d.state
                ),
            ));
        }
        let now = deps.clock.now();
        let replaced: Vec<Destination> = open.clone();
        // A time already past starts at once (its start schedule is named by that time).
        let at = post.publish_at.map_or(now, |at| at.max(now));
        for d in open.iter_mut() {
            d.reschedule(Some(at), note.clone(), now).map_err(|e| unavailable(e.into()))?;
        }
        match deps.store.save_post_edit(&post, &mut open).await {
            Ok(()) => {}
            Err(Error::Conflict(_)) => continue,
            Err(err) => return Err(unavailable(err)),
        }
        // Written first, so an old start that fires now finds the new time and only re-arms.
        // Then the new start is made before the old one goes: a failure in between leaves two
        // starts (the old one re-arms, harmlessly), never none.
        for (d, old) in open.iter().zip(&replaced) {
            let replace = async {
                let input = StartInput { post_id: d.post_id.clone(), account_id: d.account_id.clone() };
                deps.scheduler.schedule_once(&OneTimeSchedule::start(input, at)).await?;
                delete_start_schedules(deps, old, Some(at)).await
            };
            replace.await.map_err(|err| {
                tracing::error!(error = %err, account_id = %d.account_id, "edited, but the start schedule could not be replaced");
                RequestError::new(503, "unavailable", "the post was changed but its schedule could not be replaced; send the same change again")
            })?;
        }
        tracing::info!(%note, "post edited");
        let destinations = deps.store.list_destinations(post_id).await.map_err(unavailable)?;
        return Ok((post, destinations));
    }
    Err(busy())
}

async fn load_post(deps: &Ingest, post_id: &str) -> Result<Post, RequestError> {
    deps.store.get_post(post_id).await.map_err(unavailable)?.ok_or_else(|| not_found(post_id))
}

pub fn not_found(post_id: &str) -> RequestError {
    RequestError::new(404, "not_found", format!("no post {post_id}"))
}

/// Once media_publish was called for one account, the post cannot be called back.
fn refuse_if_publishing(destinations: &[Destination], what: &str) -> Result<(), RequestError> {
    match destinations.iter().find(|d| matches!(d.state, DestState::Publishing | DestState::Published)) {
        Some(d) => Err(RequestError::new(
            409,
            "already_publishing",
            format!("the post is already {} to account {}; it can no longer be {what}", d.state, d.account_id),
        )),
        None => Ok(()),
    }
}

/// Every schedule a destination may still have: its start, start retries and current poll.
async fn delete_schedules(deps: &Ingest, d: &Destination) -> crate::Result<()> {
    delete_start_schedules(deps, d, None).await?;
    if d.poll_attempt > 0 {
        deps.scheduler.delete(&OneTimeSchedule::poll_name(&d.post_id, &d.account_id, d.poll_attempt)).await?;
    }
    Ok(())
}

/// `d` as it was when its start was made; `keep`: a start time that must stay (the new one).
async fn delete_start_schedules(deps: &Ingest, d: &Destination, keep: Option<OffsetDateTime>) -> crate::Result<()> {
    if let Some(at) = d.publish_at.filter(|at| Some(*at) != keep) {
        deps.scheduler.delete(&OneTimeSchedule::start_name(&d.post_id, &d.account_id, at)).await?;
    }
    for retry in 1..=d.create_retries {
        deps.scheduler.delete(&OneTimeSchedule::retry_start_name(&d.post_id, &d.account_id, retry)).await?;
    }
    Ok(())
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_else(|_| at.to_string())
}

pub fn unavailable(err: Error) -> RequestError {
    tracing::error!(error = %err, "posts API: storage failed");
    RequestError::new(503, "unavailable", "the table could not be read or written; retry later")
}

fn busy() -> RequestError {
    RequestError::new(503, "busy", "the post kept changing while this request ran; retry")
}
