//! publish: fed by the stream when a destination becomes READY; checks the account's
//! publishing quota when the cached reading is stale or near the cap (deferring when it is used
//! up), calls media_publish, counts the publish on the reading, reads the permalink,
//! records PUBLISHED, then posts the first comment. Exactly once: a PUBLISHING destination met
//! again (the earlier call timed out, crashed or lost its answer) is reconciled from the
//! container's status before anything is sent again.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use tracing::Instrument;

use super::steps::{self, Context, Step};
use super::stream::{self, DestinationKey};
use crate::account::{AccountUsage, QuotaReading};
use crate::deps::Pipeline;
use crate::error::{Error, Result};
use crate::graph::{ContainerStatus, Reaction};
use crate::post::{DestState, Destination, Failure, Placement};
use crate::store::MediaOwner;

/// The stream batch type, re-exported for the bin.
pub type StreamEvent = Event;

pub async fn handle(deps: &Pipeline, event: Event) -> DynamoDbEventResponse {
    stream::for_each_destination(event, |key| publish(deps, key)).await
}

pub async fn publish(deps: &Pipeline, key: DestinationKey) -> Result<()> {
    let span = tracing::info_span!("publish", post_id = %key.post_id, account_id = %key.account_id, state = tracing::field::Empty);
    async move {
        let Some(mut dest) = deps.store.get_destination(&key.post_id, &key.account_id).await? else {
            tracing::warn!("no such destination; nothing to do");
            return Ok(());
        };
        tracing::Span::current().record("state", dest.state.as_str());
        match dest.state {
            DestState::Ready => {
                let Some(ctx) = steps::load_context(deps, &mut dest, Step::Publish).await? else { return Ok(()) };
                if quota_used_up(deps, &ctx, &mut dest).await? {
                    return Ok(());
                }
                dest.publish_attempts += 1;
                dest.move_to(DestState::Publishing, deps.clock.now(), None)?;
                if !steps::save_or_yield(deps, &mut dest).await? {
                    return Ok(());
                }
                send(deps, &ctx, &mut dest).await
            }
            DestState::Publishing => reconcile(deps, dest).await,
            _ => {
                tracing::debug!("not ready or already published; nothing to do");
                Ok(())
            }
        }
    }
    .instrument(span)
    .await
}

/// Calls media_publish for a destination this invocation owns (state PUBLISHING, saved).
async fn send(deps: &Pipeline, ctx: &Context, dest: &mut Destination) -> Result<()> {
    let container_id = dest.container_id.clone().ok_or_else(|| Error::Data("READY without a container".into()))?;
    match deps.graph.publish(&ctx.account, &ctx.token, &container_id).await {
        Ok(media_id) => {
            update_quota_reading(deps, &ctx.account.account_id, |r| {
                if let Some(r) = r {
                    r.published_since += 1;
                }
            })
            .await;
            record_published(deps, ctx, dest, media_id, None).await
        }
        Err(err) if err.reaction() == Reaction::Repoll => {
            let note = "Instagram says the media is not ready for publishing; polling again";
            dest.move_to(DestState::Processing, deps.clock.now(), Some(note.into()))?;
            let next = dest.poll_attempt + 1;
            steps::schedule_poll(deps, dest, next).await
        }
        // Did it publish? Only the container can tell: leave PUBLISHING and let the retry look.
        Err(err) if err.outcome_unknown() => {
            tracing::warn!(error = %err, "publish outcome unknown; the retry will check the container first");
            Err(err.into())
        }
        Err(err) if err.reaction() == Reaction::Throttle => {
            steps::defer_for_throttle(deps, dest, Step::Publish, &err).await
        }
        Err(err) if err.reaction() == Reaction::Quota => {
            // Our count missed publishes (other apps): the next publish reads the quota.
            let now = deps.clock.now();
            update_quota_reading(deps, &ctx.account.account_id, |r| {
                let total = r.map_or(1, |r| r.total);
                *r = Some(QuotaReading { usage: total, total, read_at: now, published_since: 0 });
            })
            .await;
            let reason = format!("Instagram says the publishing limit is reached ({err})");
            steps::defer(deps, dest, DestState::Ready, deps.polling.quota_recheck, reason).await
        }
        // Recreating is safe only once the container says it did not go out.
        Err(err) if err.reaction() == Reaction::Recreate => {
            tracing::warn!(error = %err, "container refused at publish time; checking it before making a new one");
            match deps.graph.container_status(&ctx.account, &ctx.token, &container_id).await? {
                ContainerStatus::Published => recover(deps, ctx, dest).await,
                _ if !dest.recreated => {
                    dest.recreate(&format!("Instagram refused the container ({err})"), deps.clock.now())?;
                    steps::save_or_yield(deps, dest).await.map(drop)
                }
                _ => steps::fail(deps, dest, err.to_failure("publishing")).await,
            }
        }
        Err(err) => steps::react(deps, ctx, dest, err, Step::Publish).await,
    }
}

/// Reads `content_publishing_limit` only when the account's cached reading is missing, stale
/// or near the cap (see [`QuotaReading`]): otherwise it would cost a Graph call per post. When
/// the 24-hour quota is used up the destination is deferred instead of failed. A failed read
/// does not hold the post back: Meta enforces the cap at publish time anyway, and that answer
/// (9/2207042) defers too.
async fn quota_used_up(deps: &Pipeline, ctx: &Context, dest: &mut Destination) -> Result<bool> {
    let now = deps.clock.now();
    let cached = ctx.usage.as_ref().and_then(|u| u.publishing);
    if let Some(reading) = cached
        && !reading.worth_reading(now, deps.polling.quota_cache)
    {
        tracing::debug!(left = reading.left(), "publishing quota from the cached reading");
        return Ok(false);
    }
    match deps.graph.publishing_limit(&ctx.account, &ctx.token).await {
        Ok(limit) => {
            let reading = QuotaReading { usage: limit.usage, total: limit.total, read_at: now, published_since: 0 };
            update_quota_reading(deps, &ctx.account.account_id, |r| *r = Some(reading)).await;
            if limit.usage < limit.total {
                return Ok(false);
            }
            let reason = format!("publishing quota used up ({} of {} in 24 hours)", limit.usage, limit.total);
            steps::defer(deps, dest, DestState::Ready, deps.polling.quota_recheck, reason).await?;
            Ok(true)
        }
        Err(err) => {
            tracing::warn!(error = %err, "could not read the publishing quota; publishing anyway");
            Ok(false)
        }
    }
}

/// Changes the account's quota reading on its usage item, read afresh (the metered client
/// writes the same item). Never fails the step: a lost update only makes a later publish read
/// the quota sooner, or later (Meta's own answer still defers).
async fn update_quota_reading(deps: &Pipeline, account_id: &str, change: impl FnOnce(&mut Option<QuotaReading>)) {
    let result = async {
        let mut usage = deps.store.get_account_usage(account_id).await?.unwrap_or_else(|| AccountUsage {
            account_id: account_id.to_string(),
            ..AccountUsage::default()
        });
        let before = usage.publishing;
        change(&mut usage.publishing);
        if usage.publishing != before {
            deps.store.put_account_usage(&usage).await?;
        }
        Ok::<_, Error>(())
    }
    .await;
    if let Err(err) = result {
        tracing::warn!(error = %err, "could not record the publishing quota reading");
    }
}

/// Settles a destination left in PUBLISHING by an earlier attempt.
async fn reconcile(deps: &Pipeline, mut dest: Destination) -> Result<()> {
    // The earlier attempt may still be inside its publish call: give it its lease first.
    let age = deps.clock.now() - dest.updated_at;
    let remaining = time::Duration::try_from(deps.publish_lease).unwrap_or(time::Duration::ZERO) - age;
    if remaining.is_positive() {
        tokio::time::sleep(remaining.unsigned_abs()).await;
        match deps.store.get_destination(&dest.post_id, &dest.account_id).await? {
            Some(fresh) if fresh.state == DestState::Publishing && fresh.version == dest.version => dest = fresh,
            _ => return Ok(()),
        }
    }
    let Some(ctx) = steps::load_context(deps, &mut dest, Step::Publish).await? else { return Ok(()) };
    let container_id = dest.container_id.clone().ok_or_else(|| Error::Data("PUBLISHING without a container".into()))?;
    let status = deps.graph.container_status(&ctx.account, &ctx.token, &container_id).await?;
    tracing::info!(?status, "reconciling a publish whose outcome was unknown");
    match status {
        ContainerStatus::Published => recover(deps, &ctx, &mut dest).await,
        ContainerStatus::Finished => {
            // Not published: claim the destination again (a newer version) and send.
            dest.publish_attempts += 1;
            dest.updated_at = deps.clock.now();
            if steps::save_or_yield(deps, &mut dest).await? { send(deps, &ctx, &mut dest).await } else { Ok(()) }
        }
        ContainerStatus::InProgress => {
            dest.move_to(DestState::Processing, deps.clock.now(), Some("container still processing".into()))?;
            let next = dest.poll_attempt + 1;
            steps::schedule_poll(deps, &mut dest, next).await
        }
        ContainerStatus::Error(text) => {
            steps::fail(deps, &mut dest, Failure::new(format!("Instagram could not process the media: {text}"))).await
        }
        ContainerStatus::Expired => steps::expired(deps, &mut dest).await,
    }
}

/// How often a lost publish is looked for in the account's media before it is recorded as
/// published without its media (never guessed).
pub const MAX_RECOVERY_CHECKS: u32 = 5;
/// Allowed difference between our clock and Meta's media timestamps (whole seconds).
const CLOCK_SKEW: time::Duration = time::Duration::seconds(5);

/// The container says PUBLISHED: the earlier call went out. Find its media among the account's
/// latest and record it, instead of publishing again. Meta gives no container → media link, so
/// a media is ours only when it is certain: our caption (stories have none), published after
/// our first publish call, and not recorded for another destination — and exactly one such.
/// Otherwise (the list may lag; two of our posts may look alike) look again later; after
/// [`MAX_RECOVERY_CHECKS`], record PUBLISHED without a media id and without the first comment.
async fn recover(deps: &Pipeline, ctx: &Context, dest: &mut Destination) -> Result<()> {
    let stories = ctx.post.options.placement == Placement::Story;
    let since = publishing_since(dest) - CLOCK_SKEW;
    let recent = deps.graph.recent_media(&ctx.account, &ctx.token, stories).await?;
    let ours = MediaOwner::of(dest);
    let mut candidates = Vec::new();
    for media in recent {
        let caption_matches = stories || media.caption.as_deref().unwrap_or("") == ctx.post.caption;
        let after_our_call = media.timestamp.is_some_and(|at| at >= since);
        if !(caption_matches && after_our_call) {
            continue;
        }
        match deps.store.media_owner(&media.id).await? {
            // Claimed by this destination before a crash: it is ours.
            Some(owner) if owner == ours => return record_published(deps, ctx, dest, media.id, media.permalink).await,
            Some(_) => {}
            None => candidates.push(media),
        }
    }
    if candidates.len() == 1 {
        let media = candidates.remove(0);
        tracing::info!(media_id = %media.id, "lost publish answer recovered from the account's media");
        return record_published(deps, ctx, dest, media.id, media.permalink).await;
    }
    dest.recovery_checks += 1;
    let alike = candidates.len();
    if dest.recovery_checks < MAX_RECOVERY_CHECKS {
        tracing::warn!(alike, checks = dest.recovery_checks, "published, but its media is not certain yet; looking again later");
        if steps::save_or_yield(deps, dest).await? {
            return Err(Error::Retry(format!("published; {alike} media match it so far, looking again later")));
        }
        return Ok(());
    }
    let note = format!(
        "published (the container says so), but its media could not be told for certain \
         ({alike} alike after {} looks); media id, permalink and first comment left out",
        dest.recovery_checks
    );
    tracing::warn!(%note);
    if ctx.post.options.first_comment.is_some() {
        dest.first_comment_error = Some("not posted: the published media could not be identified for certain".into());
    }
    dest.move_to(DestState::Published, deps.clock.now(), Some(note))?;
    steps::save_or_yield(deps, dest).await.map(drop)
}

/// When this destination's first publish call of the current attempt was made.
fn publishing_since(dest: &Destination) -> time::OffsetDateTime {
    dest.history.iter().rev().find(|h| h.state == DestState::Publishing).map_or(dest.updated_at, |h| h.at)
}

/// Claims the media for this destination, then records it and its permalink. A permalink that
/// cannot be read does not undo a published post: it is left empty and said so.
async fn record_published(
    deps: &Pipeline,
    ctx: &Context,
    dest: &mut Destination,
    media_id: String,
    permalink: Option<String>,
) -> Result<()> {
    let owner = MediaOwner::of(dest);
    if !deps.store.claim_media(&media_id, &owner).await? {
        // Another destination recorded it first (a recovery race): look again.
        return Err(Error::Retry(format!("media {media_id} is recorded for another destination")));
    }
    let permalink = match permalink {
        Some(link) => Some(link),
        None => read_permalink(deps, ctx, &media_id).await,
    };
    let note = format!("media {media_id} {}", permalink.as_deref().unwrap_or("(no permalink)"));
    dest.media_id = Some(media_id);
    dest.permalink = permalink;
    dest.move_to(DestState::Published, deps.clock.now(), Some(note))?;
    // A conflict here must not pass quietly: the retry reconciles and records it.
    deps.store.save_destination(dest).await?;
    tracing::info!(permalink = dest.permalink.as_deref().unwrap_or(""), "published");
    first_comment(deps, ctx, dest).await
}

/// Three tries for a transient failure; the post is live either way.
async fn read_permalink(deps: &Pipeline, ctx: &Context, media_id: &str) -> Option<String> {
    for attempt in 1..=3 {
        match deps.graph.permalink(&ctx.account, &ctx.token, media_id).await {
            Ok(link) => return Some(link),
            Err(err) if attempt < 3 && err.reaction() == Reaction::Retry => {
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "published, but the permalink could not be read");
                return None;
            }
        }
    }
    None
}

/// Posts the first comment, after PUBLISHED is saved so that a retry never comments twice.
/// Its failure is recorded on the destination, which stays PUBLISHED.
async fn first_comment(deps: &Pipeline, ctx: &Context, dest: &mut Destination) -> Result<()> {
    let (Some(message), Some(media_id)) = (&ctx.post.options.first_comment, &dest.media_id) else { return Ok(()) };
    match deps.graph.comment(&ctx.account, &ctx.token, media_id, message).await {
        Ok(id) => dest.first_comment_id = Some(id),
        Err(err) => {
            tracing::warn!(error = %err, "published, but the first comment failed");
            dest.first_comment_error = Some(err.to_string());
        }
    }
    dest.updated_at = deps.clock.now();
    steps::save_or_yield(deps, dest).await.map(drop)
}
