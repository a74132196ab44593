//! Steps shared by create-container, poll-status and publish.

use secrecy::SecretString;

use std::time::Duration;

use crate::account::{Account, AccountStatus, AccountUsage, ProcessingStage};
use crate::deps::Pipeline;
use crate::error::{Error, Result};
use crate::graph::{ContainerSpec, ContainerStatus, GraphError, Reaction};
use crate::polling::MAX_CREATE_RETRIES;
use crate::post::{DestState, Destination, Failure, MediaKind, Post};
use crate::scheduler::{OneTimeSchedule, PollInput};
use crate::tokens::Reread;

/// Everything a step needs to talk to Instagram about one destination.
pub struct Context {
    pub post: Post,
    pub account: Account,
    pub token: SecretString,
    /// The account's usage item as read at the start: learnt processing times, quota reading.
    pub usage: Option<AccountUsage>,
}

/// The step that met an error: it says what we were doing, and where a destination parked
/// for re-auth resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Create,
    Check,
    Publish,
}

impl Step {
    fn describe(self) -> &'static str {
        match self {
            Step::Create => "creating the container",
            Step::Check => "checking the container",
            Step::Publish => "publishing",
        }
    }

    fn resume_state(self) -> DestState {
        match self {
            Step::Create => DestState::Queued,
            Step::Check => DestState::Processing,
            Step::Publish => DestState::Ready,
        }
    }
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

/// Loads the post, account and token; fails the destination when one cannot exist, and parks
/// it when its account must be connected again first.
pub async fn load_context(deps: &Pipeline, dest: &mut Destination, step: Step) -> Result<Option<Context>> {
    let Some(post) = deps.store.get_post(&dest.post_id).await? else {
        fail(deps, dest, Failure::new("the post record is missing")).await?;
        return Ok(None);
    };
    let Some(account) = deps.store.get_account(&dest.account_id).await? else {
        let reason = format!("Instagram account {} is not registered with instapipe", dest.account_id);
        fail(deps, dest, Failure::new(reason)).await?;
        return Ok(None);
    };
    let now = deps.clock.now();
    let usage = deps.store.get_account_usage(&account.account_id).await?;
    if let Some(until) = usage.as_ref().and_then(|u| u.waiting_until(now)) {
        let reason = "Instagram's rate limit for this account is near or reached".to_string();
        defer(deps, dest, step.resume_state(), (until - now).unsigned_abs(), reason).await?;
        return Ok(None);
    }
    if account.status == AccountStatus::NeedsReauth {
        let failure = Failure::new(format!("account {} must be connected again before it can publish", account.account_id));
        park_for_auth(deps, dest, step, failure).await?;
        return Ok(None);
    }
    let token = match deps.tokens.token(&dest.account_id).await {
        Ok(token) => token,
        Err(Error::NotFound(reason)) => {
            fail(deps, dest, Failure::new(reason)).await?;
            return Ok(None);
        }
        Err(err) => return Err(err),
    };
    Ok(Some(Context { post, account, token, usage }))
}

async fn park_for_auth(deps: &Pipeline, dest: &mut Destination, step: Step, failure: Failure) -> Result<()> {
    tracing::warn!(reason = %failure.reason, "waiting for the account to be connected again");
    dest.await_auth(step.resume_state(), failure, deps.clock.now())?;
    save_or_yield(deps, dest).await.map(drop)
}

/// Handles a Graph error a step could not absorb: transient ones go back to the event source
/// for a retry; a refused token parks the destination and flags the account; permanent ones
/// fail the destination with Meta's code and message.
pub async fn react(deps: &Pipeline, ctx: &Context, dest: &mut Destination, err: GraphError, step: Step) -> Result<()> {
    match err.reaction() {
        Reaction::Retry | Reaction::Throttle | Reaction::Quota | Reaction::Repoll => Err(err.into()),
        Reaction::Reauth => {
            // The secret may hold a newer token than our cache (a refresh ran): read it once
            // more and let the retry use it before calling the token bad.
            if let Ok(Reread::Changed(_)) = deps.tokens.reread(&dest.account_id).await {
                tracing::info!("a newer token is stored; retrying with it");
                return Err(err.into());
            }
            deps.store.set_account_status(&ctx.account.account_id, AccountStatus::NeedsReauth).await?;
            tracing::error!(account_id = %ctx.account.account_id, alarm = "ACCOUNT_NEEDS_REAUTH", "Instagram refused the account's token");
            let mut failure = err.to_failure(step.describe());
            failure.reason.push_str(" (waiting until the account is connected again)");
            park_for_auth(deps, dest, step, failure).await
        }
        Reaction::Recreate | Reaction::Fail => fail(deps, dest, err.to_failure(step.describe())).await,
    }
}

pub enum Checked {
    /// The destination moved on (READY, FAILED, back to QUEUED, or parked).
    Settled,
    /// Meta is still processing.
    Pending,
}

/// What one status read found.
enum Looked {
    Status(ContainerStatus),
    /// No answer this time (a hiccup or throttle): look again later.
    Later,
    /// The error settled the destination (failed or parked).
    Settled,
}

/// Reads the containers' status once and moves the destination accordingly. A carousel's
/// children are checked first; when all are finished its parent container is made.
pub async fn check_container(deps: &Pipeline, ctx: &Context, dest: &mut Destination) -> Result<Checked> {
    if dest.container_id.is_none() {
        match check_children(deps, ctx, dest).await? {
            // A container just made is not processed yet: its first look is placed like any
            // other's (a status read right away would only cost a call).
            Children::Waiting | Children::ParentCreated => return Ok(Checked::Pending),
            Children::Settled => return Ok(Checked::Settled),
        }
    }
    let container_id = dest.container_id.clone().ok_or_else(|| Error::Data("no container id".into()))?;
    let status = match look(deps, ctx, dest, &container_id).await? {
        Looked::Status(status) => status,
        Looked::Later => return Ok(Checked::Pending),
        Looked::Settled => return Ok(Checked::Settled),
    };
    let now = deps.clock.now();
    match status {
        ContainerStatus::InProgress => return Ok(Checked::Pending),
        ContainerStatus::Finished | ContainerStatus::Published => {
            dest.move_to(DestState::Ready, now, Some(format!("container {container_id} finished")))?;
            save_or_yield(deps, dest).await?;
        }
        ContainerStatus::Error(text) => {
            fail(deps, dest, Failure::new(format!("Instagram could not process the media: {text}"))).await?;
        }
        ContainerStatus::Expired => expired(deps, dest).await?,
    }
    Ok(Checked::Settled)
}

async fn look(deps: &Pipeline, ctx: &Context, dest: &mut Destination, id: &str) -> Result<Looked> {
    match deps.graph.container_status(&ctx.account, &ctx.token, id).await {
        Ok(status) => Ok(Looked::Status(status)),
        // A hiccup or a throttle while waiting is just another reason to look again later.
        Err(err) if matches!(err.reaction(), Reaction::Retry | Reaction::Throttle) => {
            tracing::info!(error = %err, "status check failed; will look again");
            Ok(Looked::Later)
        }
        Err(err) => {
            react(deps, ctx, dest, err, Step::Check).await?;
            Ok(Looked::Settled)
        }
    }
}

enum Children {
    Waiting,
    Settled,
    /// All children finished and the parent container is saved: check it next.
    ParentCreated,
}

/// Carousel: waits for every child to finish, then creates the parent and saves its id.
async fn check_children(deps: &Pipeline, ctx: &Context, dest: &mut Destination) -> Result<Children> {
    for (i, child) in dest.children.clone().iter().enumerate().skip(dest.children_ready) {
        let status = match look(deps, ctx, dest, child).await? {
            Looked::Status(status) => status,
            Looked::Later => return Ok(Children::Waiting),
            Looked::Settled => return Ok(Children::Settled),
        };
        match status {
            ContainerStatus::Finished | ContainerStatus::Published => dest.children_ready = i + 1,
            ContainerStatus::InProgress => return Ok(Children::Waiting),
            ContainerStatus::Error(text) => {
                let reason = format!("Instagram could not process carousel item {}: {text}", i + 1);
                fail(deps, dest, Failure::new(reason)).await?;
                return Ok(Children::Settled);
            }
            ContainerStatus::Expired => {
                expired(deps, dest).await?;
                return Ok(Children::Settled);
            }
        }
    }
    create_parent(deps, ctx, dest).await
}

/// Creates the carousel container once every child is finished, and saves its id.
///
/// Is a retry safe if the earlier attempt happened on Meta's side although we never learnt it
/// (no answer in time, a 5xx, an unreadable answer, or an invocation cut short after the
/// call)? Unlike every other creation, a second attempt shares something with the first: the
/// children. They may already belong to the container the first attempt made, and an API that
/// lets a child belong to one carousel only refuses them (Meta documents neither way). So:
/// - the attempt is recorded on the destination *before* the call, as a possibly made
///   carousel container with these children. That write is conditional: of two invocations
///   at it at once (a duplicated poll) one goes on, the other stops;
/// - an answer takes the record back (made: it is our container; refused or throttled:
///   nothing was made); an unknown outcome leaves it, saying why, and the next poll tries again;
/// - a refusal met while an earlier attempt with the same children is on record may be that
///   attempt's doing: the children are recorded as left behind and made afresh, then a new
///   parent (the old containers expire unused). Without such a record the refusal is the
///   request's own and the destination fails with Meta's reason.
///
/// Should a retry be accepted instead (children may be reused), the earlier container, if it
/// exists, is never published: media_publish is only ever called with the id saved here.
async fn create_parent(deps: &Pipeline, ctx: &Context, dest: &mut Destination) -> Result<Children> {
    let children = dest.children.clone();
    let earlier_attempts = possibly_made_parents(dest, &children);
    let now = deps.clock.now();
    dest.orphan(None, children.clone(), "creating the carousel container; no answer yet", now);
    let record = dest.orphaned_containers.len() - 1;
    dest.updated_at = now;
    if !save_or_yield(deps, dest).await? {
        return Ok(Children::Settled);
    }
    let spec = ContainerSpec::carousel(&ctx.post, &children);
    let result = deps.graph.create_container(&ctx.account, &ctx.token, &spec).await;
    match &result {
        Err(err) if err.outcome_unknown() => {
            dest.orphaned_containers[record].reason =
                format!("creating the carousel container: {err}; Meta may have made it (its id never reached us)");
            tracing::warn!(error = %err, "carousel container creation outcome unknown; recorded, will try again");
            // Saved by the caller with the next poll.
            return Ok(Children::Waiting);
        }
        _ => {
            dest.orphaned_containers.remove(record);
        }
    }
    match result {
        Ok(parent) => {
            dest.container_id = Some(parent.clone());
            dest.updated_at = deps.clock.now();
            // Its wait (first look, deadline) is measured from its own creation.
            dest.containers_made_at(dest.updated_at);
            if !save_or_yield(deps, dest).await? {
                left_behind_by_lost_race(&parent, "carousel container");
                return Ok(Children::Settled);
            }
            tracing::info!(container_id = %parent, "carousel container created");
            Ok(Children::ParentCreated)
        }
        Err(err) if matches!(err.reaction(), Reaction::Retry | Reaction::Throttle) => {
            tracing::info!(error = %err, "carousel container not created yet; will try again");
            Ok(Children::Waiting)
        }
        Err(err) if earlier_attempts > 0 && err.reaction_after_unknown_outcome() == Reaction::Recreate => {
            make_children_afresh(deps, dest, &err).await?;
            Ok(Children::Settled)
        }
        Err(err) => {
            react(deps, ctx, dest, err, Step::Create).await?;
            Ok(Children::Settled)
        }
    }
}

/// Earlier carousel containers possibly made with exactly these children (outcome unknown).
fn possibly_made_parents(dest: &Destination, children: &[String]) -> usize {
    dest.orphaned_containers.iter().filter(|o| o.container_id.is_none() && o.children == children).count()
}

/// The children a possibly made carousel container may hold are left behind and the carousel
/// is made again from its media: back to QUEUED, where create-container makes fresh children.
/// Bounded: after [`MAX_CREATE_RETRIES`] sets of children whose carousel container's creation
/// went unanswered, the refusal stands.
async fn make_children_afresh(deps: &Pipeline, dest: &mut Destination, err: &GraphError) -> Result<()> {
    let sets: std::collections::HashSet<&Vec<String>> =
        dest.orphaned_containers.iter().filter(|o| o.container_id.is_none() && !o.children.is_empty()).map(|o| &o.children).collect();
    if sets.len() > MAX_CREATE_RETRIES as usize {
        let mut failure = err.to_failure(Step::Create.describe());
        failure.reason.push_str(&format!(" (after {} sets of carousel items whose carousel container went unanswered)", sets.len()));
        return fail(deps, dest, failure).await;
    }
    tracing::warn!(error = %err, "carousel container refused after an unanswered attempt; making its items afresh");
    dest.replace_children(&format!("Instagram refused the carousel container ({err}) after an earlier attempt went unanswered"), deps.clock.now())?;
    save_or_yield(deps, dest).await.map(drop)
}

/// A container this invocation made but could not save, because another invocation moved the
/// destination on first: it is never published. Logged, not recorded on the destination: that
/// write would make the other invocation's next conditional write lose in turn, and stop it.
pub fn left_behind_by_lost_race(container_id: &str, what: &str) {
    tracing::warn!(%container_id, "another invocation saved first; {what} {container_id} is left behind (never published, expires unused)");
}

/// An expired container (24 h unpublished) is made again once; a second expiry fails.
pub async fn expired(deps: &Pipeline, dest: &mut Destination) -> Result<()> {
    if dest.recreated {
        return fail(deps, dest, Failure::new("the container expired (24 h) twice before it was published")).await;
    }
    dest.recreate("the container expired (24 h) before it was published", deps.clock.now())?;
    save_or_yield(deps, dest).await.map(drop)
}

/// Which wait the destination is in (a carousel: its items until its container is made).
pub fn stage(post: &Post, dest: &Destination) -> ProcessingStage {
    match (post.is_carousel(), dest.container_id.is_some(), post.media[0].kind) {
        (true, false, _) => ProcessingStage::CarouselItems,
        (true, true, _) => ProcessingStage::Carousel,
        (false, _, MediaKind::Image) => ProcessingStage::Image,
        (false, _, MediaKind::Video) => ProcessingStage::Video,
    }
}

/// Time since the destination's (first) container was made.
pub fn since_creation(deps: &Pipeline, dest: &Destination) -> Duration {
    dest.container_created_at.map_or(Duration::ZERO, |at| {
        let elapsed = deps.clock.now() - at;
        if elapsed.is_negative() { Duration::ZERO } else { elapsed.unsigned_abs() }
    })
}

/// Where (since the latest container's creation) to look first at the destination's
/// containers in their current stage: where the account's learnt processing times say
/// ([`crate::account::ProcessingTimes::first_look`]), else the policy's first guess. Never
/// before `now` (the time since creation).
pub fn first_look(deps: &Pipeline, ctx: &Context, dest: &Destination, now: Duration) -> Duration {
    let stage = stage(&ctx.post, dest);
    let learnt = ctx.usage.as_ref().and_then(|u| u.processing.first_look(stage, deps.clock.now()));
    let has_video = ctx.post.media.iter().any(|m| m.kind == MediaKind::Video);
    learnt.unwrap_or_else(|| deps.polling.first_guess(stage, has_video)).max(now)
}

/// When the account's last container of `stage` was known to be done (since creation).
pub fn learnt_done(deps: &Pipeline, ctx: &Context, stage: ProcessingStage) -> Option<Duration> {
    ctx.usage.as_ref().and_then(|u| u.processing.get(stage, deps.clock.now()))
}

/// A look at `missed` (since creation) found the containers still in progress: it is kept on
/// the destination, for the look that finds them done to learn from.
pub fn record_miss(dest: &mut Destination, missed: Duration) {
    dest.missed_look_ms = Some(missed.as_millis().min(u128::from(u64::MAX)) as u64);
}

/// How many of the policy's first guesses a learnt processing time may reach at most.
pub const LEARNT_CEILING_FIRST_GUESSES: u32 = 8;

/// A container of `stage` was found finished by the look at `found` (since creation), and seen
/// in progress by the look at `missed`: the account's window of processing times moves (see
/// [`crate::account::ProcessingTimes`]). Never fails the step: a lost record only costs a look
/// next time.
pub async fn learn_processing(deps: &Pipeline, ctx: &mut Context, stage: ProcessingStage, found: Duration, missed: Option<Duration>) {
    let now = deps.clock.now();
    // A look delayed by a fault (a 5xx, a killed or retried invocation, a late schedule) finds
    // the container long after it finished; learnt as is, such outliers push the first look
    // later (the all-faults soak ran images into their processing deadline). Learnt times are
    // therefore kept within a few first guesses of the polling policy.
    let has_video = ctx.post.media.iter().any(|m| m.kind == MediaKind::Video);
    let ceiling = deps.polling.first_guess(stage, has_video) * LEARNT_CEILING_FIRST_GUESSES;
    let (found, missed) = (found.min(ceiling), missed.map(|m| m.min(ceiling)));
    if let Some(usage) = &ctx.usage
        && !usage.processing.clone().learn(stage, found, missed, now)
    {
        return;
    }
    let account_id = ctx.account.account_id.clone();
    let result = async {
        // Read afresh: the metered client writes the same item.
        let mut usage = deps.store.get_account_usage(&account_id).await?.unwrap_or_else(|| AccountUsage {
            account_id: account_id.clone(),
            ..AccountUsage::default()
        });
        if usage.processing.learn(stage, found, missed, now) {
            deps.store.put_account_usage(&usage).await?;
            let ms = |d: Duration| d.as_millis() as u64;
            tracing::info!(?stage, found_ms = ms(found), missed_ms = missed.map(ms), "learnt processing times moved");
        }
        ctx.usage = Some(usage);
        Ok::<_, Error>(())
    }
    .await;
    if let Err(err) = result {
        tracing::warn!(error = %err, "could not record the processing time");
    }
}

/// Looks at the containers from `at` on (time since their creation, see [`crate::polling`]) for
/// as long as the looks stay within the inline budget of this invocation, moving the
/// destination on when they are done; the next look beyond the budget is scheduled poll
/// number `attempt`.
pub async fn look_inline(deps: &Pipeline, ctx: &mut Context, dest: &mut Destination, mut at: Duration, attempt: u32) -> Result<()> {
    // The last look this invocation may make inline, as a time since creation.
    let mut horizon = since_creation(deps, dest) + deps.polling.inline_budget();
    let mut stage = stage(&ctx.post, dest);
    loop {
        let wait = at.saturating_sub(since_creation(deps, dest));
        if at > horizon {
            return schedule_poll_in(deps, dest, attempt, wait).await;
        }
        tokio::time::sleep(wait).await;
        // Read before the look: a carousel container made by it starts a wait of its own.
        let missed = dest.missed_look_ms.map(Duration::from_millis);
        // A look that wakes late (a busy instance) knows the containers' state at that time only.
        let looked_at = at.max(since_creation(deps, dest));
        let checked = check_container(deps, ctx, dest).await?;
        let now_in = self::stage(&ctx.post, dest);
        match checked {
            Checked::Settled => {
                if dest.state == DestState::Ready {
                    learn_processing(deps, ctx, stage, looked_at, missed).await;
                }
                tracing::info!("container settled inline");
                return Ok(());
            }
            // The carousel's items are done and its container made (its creation is the new
            // origin): its own first look next, within what is left of the budget.
            Checked::Pending if now_in != stage => {
                learn_processing(deps, ctx, stage, looked_at, missed).await;
                stage = now_in;
                let now = since_creation(deps, dest);
                horizon = now + horizon.saturating_sub(at);
                at = first_look(deps, ctx, dest, now);
            }
            Checked::Pending => {
                record_miss(dest, looked_at);
                // A look before the end of the learnt window (its middle) missed: the end is
                // where the last container was done. Else the policy's next inline step.
                at = match learnt_done(deps, ctx, stage) {
                    Some(done) if looked_at < done => done,
                    _ => looked_at + deps.polling.inline_step(looked_at),
                };
            }
        }
    }
}

/// Schedules poll number `attempt`, then records that it is the one expected to fire.
/// Scheduling first: a crash in between leaves a schedule that finds nothing to do, never a
/// destination that nothing will wake.
pub async fn schedule_poll(deps: &Pipeline, dest: &mut Destination, attempt: u32) -> Result<()> {
    schedule_poll_in(deps, dest, attempt, deps.polling.delay_before_poll(attempt)).await
}

/// [`schedule_poll`] after `delay`.
pub async fn schedule_poll_in(deps: &Pipeline, dest: &mut Destination, attempt: u32, delay: Duration) -> Result<()> {
    let now = deps.clock.now();
    let at = now + delay;
    arm_poll(deps, dest, attempt, at).await?;
    dest.updated_at = now;
    if save_or_yield(deps, dest).await? {
        tracing::info!(attempt, at = %at, "Instagram is still processing; poll scheduled");
    }
    Ok(())
}

async fn arm_poll(deps: &Pipeline, dest: &mut Destination, attempt: u32, at: time::OffsetDateTime) -> Result<()> {
    let input = PollInput { post_id: dest.post_id.clone(), account_id: dest.account_id.clone(), attempt };
    deps.scheduler.schedule_once(&OneTimeSchedule::poll(input, at)).await?;
    dest.poll_attempt = attempt;
    dest.next_poll_at = Some(at);
    Ok(())
}

/// A throttling error: wait as long as the account's pause (recorded by the metered client).
pub async fn defer_for_throttle(deps: &Pipeline, dest: &mut Destination, step: Step, err: &GraphError) -> Result<()> {
    let now = deps.clock.now();
    let until = deps.store.get_account_usage(&dest.account_id).await?.and_then(|u| u.waiting_until(now));
    let delay = until.map_or(deps.polling.interval, |until| (until - now).unsigned_abs());
    defer(deps, dest, step.resume_state(), delay, format!("Instagram's rate limit was reached for this account ({err})")).await
}

/// Parks the destination until `delay` has passed (quota, rate limit); poll-status wakes it and
/// sends it back to `resume`.
pub async fn defer(deps: &Pipeline, dest: &mut Destination, resume: DestState, delay: std::time::Duration, reason: String) -> Result<()> {
    let now = deps.clock.now();
    let until = now + delay;
    let attempt = dest.poll_attempt + 1;
    arm_poll(deps, dest, attempt, until).await?;
    dest.defer(resume, until, reason, now)?;
    if save_or_yield(deps, dest).await? {
        tracing::info!(%until, resume = %resume, "deferred");
    }
    Ok(())
}
