//! create-container: for a due destination, create the Instagram container, save its id before
//! anything else, look at its status where processing is likely finished (inline when that is
//! soon), then mark it READY or hand it to poll-status.
//! Fed by the stream (QUEUED / SCHEDULED destinations) and by `start-…` schedules.

use aws_lambda_events::event::dynamodb::Event;
use serde::Deserialize;
use tracing::Instrument;

use super::steps::{self, Context, Step};
use super::stream::{self, DestinationKey};
use crate::deps::Pipeline;
use crate::error::Result;
use crate::graph::{ContainerSpec, GraphError, Reaction};
use crate::polling::MAX_CREATE_RETRIES;
use crate::post::{DestState, Destination, Failure, MediaItem, MediaKind, Placement, Post};
use crate::scheduler::{OneTimeSchedule, StartInput};

/// The function's two kinds of input.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum CreateContainerEvent {
    /// A `start-…` schedule fired.
    Start(StartInput),
    /// DynamoDB stream batch.
    Stream(Event),
}

pub async fn handle(deps: &Pipeline, event: CreateContainerEvent) -> Result<serde_json::Value> {
    match event {
        CreateContainerEvent::Start(input) => {
            start(deps, DestinationKey { post_id: input.post_id, account_id: input.account_id }).await?;
            Ok(serde_json::json!({}))
        }
        CreateContainerEvent::Stream(batch) => {
            let response = stream::for_each_destination(batch, |key| start(deps, key)).await;
            Ok(serde_json::to_value(response).expect("plain struct"))
        }
    }
}

/// Idempotent: whatever the destination's state, redelivery continues or does nothing.
pub async fn start(deps: &Pipeline, key: DestinationKey) -> Result<()> {
    let span = tracing::info_span!("create_container", post_id = %key.post_id, account_id = %key.account_id, state = tracing::field::Empty);
    async move {
        let Some(mut dest) = deps.store.get_destination(&key.post_id, &key.account_id).await? else {
            tracing::warn!("no such destination (cancelled or never stored); nothing to do");
            return Ok(());
        };
        tracing::Span::current().record("state", dest.state.as_str());
        let now = deps.clock.now();
        match dest.state {
            DestState::Scheduled if dest.publish_at.is_some_and(|at| at > now) => {
                let at = dest.publish_at.expect("checked above");
                let input = StartInput { post_id: key.post_id, account_id: key.account_id };
                deps.scheduler.schedule_once(&OneTimeSchedule::start(input, at)).await?;
                tracing::info!(%at, "not due yet; start scheduled");
                return Ok(());
            }
            DestState::Scheduled | DestState::Queued => {}
            // A crash (or a transient error) after a container was saved but before a poll was
            // arranged: resume, creating what is still missing.
            DestState::Processing if dest.poll_attempt == 0 => {}
            _ => {
                tracing::debug!("already past container creation");
                return Ok(());
            }
        }
        let Some(mut ctx) = steps::load_context(deps, &mut dest, Step::Create).await? else { return Ok(()) };
        let first_time = dest.container_id.is_none() && dest.children.is_empty();
        if first_time && let Err(reason) = check_media(deps, &ctx.post).await {
            return steps::fail(deps, &mut dest, Failure::new(reason)).await;
        }
        if !create(deps, &ctx, &mut dest).await? {
            return Ok(());
        }
        // First look where processing is likely finished: inline when that is soon, else by schedule.
        let at = steps::first_look(deps, &ctx, &dest, steps::since_creation(deps, &dest));
        steps::look_inline(deps, &mut ctx, &mut dest, at, 1).await
    }
    .instrument(span)
    .await
}

/// Every item (and a Reel's cover) must pass the media check before anything is made.
async fn check_media(deps: &Pipeline, post: &Post) -> Result<(), String> {
    let placement = post.options.placement;
    for (i, item) in post.media.iter().enumerate() {
        deps.media
            .check(item, placement, post.is_carousel())
            .await
            .map_err(|reason| format!("media {} ({}) {reason}", i + 1, item.url))?;
    }
    if let Some(cover) = post.options.reel.as_ref().and_then(|r| r.cover_url.as_ref()) {
        let item = MediaItem::new(cover.clone(), MediaKind::Image);
        deps.media.check(&item, Placement::Story, false).await.map_err(|reason| format!("the Reel cover ({cover}) {reason}"))?;
    }
    Ok(())
}

/// Creates the containers still missing, saving each id as soon as it exists: the single
/// item's container, or each carousel child in turn (the parent follows once they are ready,
/// in [`steps::check_container`]). Returns whether the caller should go on.
///
/// A creation whose outcome is unknown (no answer in time, a 5xx, an unreadable answer) is
/// simply made again, here or by the scheduled retry. That is safe if the first attempt did
/// happen, for every container made here:
/// - a single item (feed image, Reel with or without a cover, image or video story): the
///   retry makes a second container from the same parameters, independent of the first.
///   Nothing refers to the first, and nothing publishes it: media_publish only ever gets the
///   id saved on the destination. Meta lets it expire after 24 h; it costs one of the
///   account's 400 containers a day, not publishing quota. A Reel's cover and a story's media
///   are fetched per container, used up by none. A refusal of the retry is a refusal of
///   parameters the first attempt carried too, so failing then is right.
/// - a carousel child: the same; a child no carousel container names is never published,
///   and fresh children are only ever given to a fresh parent.
///
/// A crash between the call and the save leaves the same kind of unused container, unseen.
/// What an unknown outcome may have left is recorded on the destination (id unknown); a
/// container made by an invocation that lost the race to save is logged.
async fn create(deps: &Pipeline, ctx: &Context, dest: &mut Destination) -> Result<bool> {
    if !ctx.post.is_carousel() {
        if dest.container_id.is_some() {
            return Ok(true);
        }
        let Some(id) = make(deps, ctx, dest, &ContainerSpec::single(&ctx.post), "creating the container").await? else {
            return Ok(false);
        };
        dest.container_id = Some(id.clone());
        return saved(deps, dest, id.clone(), format!("container {id} created")).await;
    }
    let count = ctx.post.media.len();
    for item in ctx.post.media.iter().skip(dest.children.len()) {
        let what = format!("creating carousel item {} of {count}", dest.children.len() + 1);
        let Some(id) = make(deps, ctx, dest, &ContainerSpec::carousel_child(item), &what).await? else { return Ok(false) };
        dest.children.push(id.clone());
        let note = format!("carousel item {} of {count}: container {id} created", dest.children.len());
        if !saved(deps, dest, id, note).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One create call; an error is dealt with here (retry by schedule, park or fail) and gives None.
async fn make(deps: &Pipeline, ctx: &Context, dest: &mut Destination, spec: &ContainerSpec, what: &str) -> Result<Option<String>> {
    match deps.graph.create_container(&ctx.account, &ctx.token, spec).await {
        Ok(id) => Ok(Some(id)),
        Err(err) => {
            if err.outcome_unknown() {
                // Saved with whatever the error leads to below.
                let reason = format!("{what}: {err}; Meta may have made it (its id never reached us)");
                dest.orphan(None, Vec::new(), reason, deps.clock.now());
            }
            match err.reaction() {
                Reaction::Throttle => steps::defer_for_throttle(deps, dest, Step::Create, &err).await?,
                Reaction::Retry | Reaction::Quota => retry_later(deps, dest, err).await?,
                _ => steps::react(deps, ctx, dest, err, Step::Create).await?,
            }
            Ok(None)
        }
    }
}

/// Saves a new container id. If another invocation saved first, ours is never published and
/// expires on Meta's side.
async fn saved(deps: &Pipeline, dest: &mut Destination, id: String, note: String) -> Result<bool> {
    let now = deps.clock.now();
    // Waits are measured from the latest container made (a carousel's latest item).
    dest.containers_made_at(now);
    if dest.state == DestState::Processing {
        dest.updated_at = now;
    } else {
        dest.move_to(DestState::Processing, now, Some(note.clone()))?;
    }
    let landed = steps::save_or_yield(deps, dest).await?;
    if landed {
        tracing::info!(%note, "container saved");
    } else {
        steps::left_behind_by_lost_race(&id, "container");
    }
    Ok(landed)
}

/// A transient failure: try again by schedule (a Lambda retry would give up after two), a
/// bounded number of times, then fail with the last error.
async fn retry_later(deps: &Pipeline, dest: &mut Destination, err: GraphError) -> Result<()> {
    if dest.create_retries >= MAX_CREATE_RETRIES {
        let mut failure = err.to_failure("creating the container");
        failure.reason.push_str(&format!(" (gave up after {} attempts)", MAX_CREATE_RETRIES + 1));
        return steps::fail(deps, dest, failure).await;
    }
    let retry = dest.create_retries + 1;
    let now = deps.clock.now();
    let at = now + deps.polling.delay_before_create_retry(retry);
    let input = StartInput { post_id: dest.post_id.clone(), account_id: dest.account_id.clone() };
    deps.scheduler.schedule_once(&OneTimeSchedule::retry_start(input, retry, at)).await?;
    dest.create_retries = retry;
    dest.updated_at = now;
    if steps::save_or_yield(deps, dest).await? {
        tracing::warn!(error = %err, retry, %at, "container creation failed transiently; retry scheduled");
    }
    Ok(())
}
