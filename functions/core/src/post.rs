//! Posts, their destinations (one per Instagram account) and the legal state changes.
//! Pure data and rules: no I/O here. Every change of a destination's state (and so of its
//! history) is a method of [`Destination`]; the handlers and the CLI only call them and save.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A Meta container lives 24 hours; an older one is made again rather than published.
pub const CONTAINER_LIFETIME: time::Duration = time::Duration::hours(24);

/// A change the state machine refuses. Nothing was changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    #[error("illegal transition from {from} to {to}")]
    IllegalTransition { from: DestState, to: DestState },
    /// Only a FAILED destination can be retried by an operator.
    #[error("account {account_id} is {state}, not FAILED: nothing to retry")]
    NotFailed { account_id: String, state: DestState },
    /// Time and caption change only while no container is made (SCHEDULED).
    #[error("account {account_id} is already {state}: its container is made with the current caption and time")]
    NotScheduled { account_id: String, state: DestState },
    /// The watchdog restarts only destinations that something must move on.
    #[error("a {state} destination has no step for the watchdog to restart")]
    NothingToRestart { state: DestState },
}

type Result<T> = std::result::Result<T, PostError>;

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    Video,
}

/// One image or video of a post.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaItem {
    pub url: String,
    #[serde(rename = "type")]
    pub kind: MediaKind,
    /// Images only (feed image or carousel image), at most 1,000 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alt_text: Option<String>,
    /// People tagged in this item (x/y between 0 and 1, required for images).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_tags: Vec<UserTag>,
}

impl MediaItem {
    pub fn new(url: impl Into<String>, kind: MediaKind) -> MediaItem {
        MediaItem { url: url.into(), kind, alt_text: None, user_tags: Vec::new() }
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserTag {
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "storable_fraction")]
    pub x: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "storable_fraction")]
    pub y: Option<f64>,
}

/// DynamoDB stores no number closer to zero than 1e-130; a tag position that close (such as
/// 2.2e-311, valid JSON) is 0 for Instagram too, so it is read as 0 rather than failing the write.
fn storable_fraction<'de, D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Option<f64>, D::Error> {
    let value = Option::<f64>::deserialize(deserializer)?;
    Ok(value.map(|v| if v.abs() < 1e-130 { 0.0 } else { v }))
}

/// Where the post appears: the feed (an image, a Reel, or a carousel of 2–10 items) or stories.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    #[default]
    Feed,
    Story,
}

/// Reel parameters of Meta's container API.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReelOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover_url: Option<String>,
    /// Milliseconds into the video for the cover frame.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "whole_number::option")]
    pub thumb_offset: Option<u64>,
    /// true: feed and Reels tab; false: Reels tab only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_to_feed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_name: Option<String>,
}

/// JSON Schema's integers, as JSON encoders write them: `1763` and also `1763.0` (Python writes
/// integral floats so); fractional, negative or too large numbers are refused.
mod whole_number {
    use serde::de::{self, Deserializer, Visitor};

    /// The largest integer every JSON implementation keeps exactly (2^53 - 1); openapi.yaml says so.
    pub const MAX: u64 = (1 << 53) - 1;

    struct WholeNumber(u64);

    impl<'de> serde::Deserialize<'de> for WholeNumber {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_u64(WholeNumberVisitor)
        }
    }

    struct WholeNumberVisitor;

    impl Visitor<'_> for WholeNumberVisitor {
        type Value = WholeNumber;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a whole number from 0 to {MAX}")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<WholeNumber, E> {
            if v > MAX {
                return Err(E::invalid_value(de::Unexpected::Unsigned(v), &self));
            }
            Ok(WholeNumber(v))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<WholeNumber, E> {
            u64::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self)).and_then(|v| self.visit_u64(v))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<WholeNumber, E> {
            if v.fract() != 0.0 || !(0.0..=MAX as f64).contains(&v) {
                return Err(E::invalid_value(de::Unexpected::Float(v), &self));
            }
            Ok(WholeNumber(v as u64))
        }
    }

    pub fn option<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        Ok(<Option<WholeNumber> as serde::Deserialize>::deserialize(deserializer)?.map(|n| n.0))
    }
}

/// Everything about a post beyond caption, media, accounts and time.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostOptions {
    #[serde(default)]
    pub placement: Placement,
    /// A Facebook Page id with location data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    /// Up to 3 usernames invited as collaborators (feed only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collaborators: Vec<String>,
    /// Posted as a comment right after publishing; its failure never fails the post.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reel: Option<ReelOptions>,
}

/// A validated request to post, whatever source it came from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PostRequest {
    pub caption: String,
    pub media: Vec<MediaItem>,
    pub accounts: Vec<String>,
    pub publish_at: Option<OffsetDateTime>,
    pub options: PostOptions,
}

/// The post as accepted: what to publish, for whom, when, and where it came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Post {
    pub post_id: String,
    pub source: String,
    pub source_event_id: String,
    pub caption: String,
    pub media: Vec<MediaItem>,
    pub accounts: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub publish_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub options: PostOptions,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl Post {
    pub fn new(post_id: String, source: &str, source_event_id: &str, request: PostRequest, now: OffsetDateTime) -> Post {
        Post {
            post_id,
            source: source.to_string(),
            source_event_id: source_event_id.to_string(),
            caption: request.caption,
            media: request.media,
            accounts: request.accounts,
            publish_at: request.publish_at,
            options: request.options,
            created_at: now,
        }
    }

    /// The post's content as a request again, for the checks every request passes (an edit).
    pub fn to_request(&self) -> PostRequest {
        PostRequest {
            caption: self.caption.clone(),
            media: self.media.clone(),
            accounts: self.accounts.clone(),
            publish_at: self.publish_at,
            options: self.options.clone(),
        }
    }

    /// Due now (or overdue): no time given, or a time not in the future.
    pub fn is_due(&self, now: OffsetDateTime) -> bool {
        self.publish_at.is_none_or(|at| at <= now)
    }

    /// What Meta will have to process, which decides how long we wait for it: a carousel
    /// waits like a video (its children are processed one by one).
    pub fn processing_kind(&self) -> MediaKind {
        if self.media.len() == 1 && self.media[0].kind == MediaKind::Image {
            MediaKind::Image
        } else {
            MediaKind::Video
        }
    }

    /// Two or more items in the feed make a carousel.
    pub fn is_carousel(&self) -> bool {
        self.media.len() > 1
    }

    /// One destination per account, SCHEDULED for a future time, QUEUED otherwise.
    pub fn destinations(&self, now: OffsetDateTime) -> Vec<Destination> {
        let state = if self.is_due(now) { DestState::Queued } else { DestState::Scheduled };
        self.accounts
            .iter()
            .map(|account| Destination {
                post_id: self.post_id.clone(),
                account_id: account.clone(),
                state,
                version: 0,
                publish_at: self.publish_at,
                container_id: None,
                children: Vec::new(),
                children_ready: 0,
                recreated: false,
                container_created_at: None,
                poll_attempt: 0,
                next_poll_at: None,
                missed_look_ms: None,
                rearms: 0,
                rearmed_at: None,
                recovery_checks: 0,
                publish_attempts: 0,
                create_retries: 0,
                media_id: None,
                permalink: None,
                failure: None,
                resume_state: None,
                deferred_until: None,
                first_comment_id: None,
                first_comment_error: None,
                orphaned_containers: Vec::new(),
                history: vec![StateChange { state, at: now, note: None }],
                created_at: now,
                updated_at: now,
            })
            .collect()
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DestState {
    /// Waiting for its publish time (a one-time schedule will start it).
    Scheduled,
    /// Due: create-container picks it up from the stream.
    Queued,
    /// Container created; Meta is processing it.
    Processing,
    /// Container finished: publish picks it up from the stream.
    Ready,
    /// media_publish has been called (or is being called); its outcome may be unknown.
    Publishing,
    Published,
    Failed,
    /// Instagram refused the account's token: waits (not failed) until a new token is stored,
    /// then returns to `resume_state`.
    AwaitingAuth,
    /// Waiting for the publishing quota or a rate limit to free up; a scheduled poll-status
    /// returns it to `resume_state` at `deferred_until`.
    Deferred,
    /// Cancelled through the posts API before it was handed to media_publish. Final.
    Cancelled,
}

impl DestState {
    pub fn as_str(self) -> &'static str {
        match self {
            DestState::Scheduled => "SCHEDULED",
            DestState::Queued => "QUEUED",
            DestState::Processing => "PROCESSING",
            DestState::Ready => "READY",
            DestState::Publishing => "PUBLISHING",
            DestState::Published => "PUBLISHED",
            DestState::Failed => "FAILED",
            DestState::AwaitingAuth => "AWAITING_AUTH",
            DestState::Deferred => "DEFERRED",
            DestState::Cancelled => "CANCELLED",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, DestState::Published | DestState::Failed | DestState::Cancelled)
    }

    pub fn can_move_to(self, next: DestState) -> bool {
        use DestState::*;
        match (self, next) {
            // Anything not yet handed to media_publish can be called off.
            (from, Cancelled) => !from.is_final() && from != Publishing,
            // Only the operator's `instapipe posts retry` takes these: a FAILED destination
            // starts again from the step it failed at. No handler moves a FAILED one.
            (Failed, Queued | Ready) => true,
            (Scheduled, Queued) => true,
            (Scheduled | Queued, Processing) => true,
            (Processing, Ready) => true,
            (Ready, Publishing) => true,
            (Publishing, Published) => true,
            // 9007 at publish time: Meta is not done after all, so poll again.
            (Publishing | Ready, Processing) => true,
            // An expired container is made again, once.
            (Processing | Ready | Publishing, Queued) => true,
            // Waiting ends by going back to work, or by failing.
            (AwaitingAuth | Deferred, Queued | Processing | Ready | Failed) => true,
            (AwaitingAuth, Deferred) | (Deferred, AwaitingAuth) => true,
            (AwaitingAuth | Deferred, _) => false,
            (Queued | Processing | Ready | Publishing, Deferred) => true,
            (from, Failed | AwaitingAuth) => !from.is_final(),
            _ => false,
        }
    }
}

impl std::fmt::Display for DestState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a destination failed, in words a person understands, with Meta's codes when there are any.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subcode: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fbtrace_id: Option<String>,
}

impl Failure {
    pub fn new(reason: impl Into<String>) -> Failure {
        Failure { reason: reason.into(), ..Failure::default() }
    }
}

#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub state: DestState,
    #[cfg_attr(feature = "schema", schemars(with = "String", extend("format" = "date-time")))]
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The post's journey to one Instagram account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Destination {
    pub post_id: String,
    pub account_id: String,
    pub state: DestState,
    /// Bumped by every write; each write is conditional on the version it read.
    pub version: u64,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub publish_at: Option<OffsetDateTime>,
    /// The container to publish: the single item's, or the carousel parent's.
    #[serde(default)]
    pub container_id: Option<String>,
    /// Carousel children, in media order, each saved as soon as it is made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
    /// How many children (from the first) are known to be finished.
    #[serde(default)]
    pub children_ready: usize,
    /// The containers were made again once already (after one expired).
    #[serde(default)]
    pub recreated: bool,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub container_created_at: Option<OffsetDateTime>,
    /// Number of the poll-status schedule currently expected to fire (0: none yet).
    #[serde(default)]
    pub poll_attempt: u32,
    /// When that poll is due to fire.
    #[serde(with = "time::serde::rfc3339::option", default, skip_serializing_if = "Option::is_none")]
    pub next_poll_at: Option<OffsetDateTime>,
    /// The latest look at the current containers that found them still in progress (ms after
    /// their creation): with the look that finds them done, the account learns a window of
    /// processing times ([`crate::account::ProcessingTimes`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed_look_ms: Option<u64>,
    /// Times the watchdog found this destination stalled and started its step again, and when
    /// it last did (the next restart waits a whole grace after it).
    #[serde(default)]
    pub rearms: u32,
    #[serde(with = "time::serde::rfc3339::option", default, skip_serializing_if = "Option::is_none")]
    pub rearmed_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub publish_attempts: u32,
    /// Looks for the media of a publish whose answer was lost, while it is not certain.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub recovery_checks: u32,
    /// Container creations retried after a transient error.
    #[serde(default)]
    pub create_retries: u32,
    #[serde(default)]
    pub media_id: Option<String>,
    #[serde(default)]
    pub permalink: Option<String>,
    #[serde(default)]
    pub failure: Option<Failure>,
    /// Where an AWAITING_AUTH or DEFERRED destination goes back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_state: Option<DestState>,
    #[serde(with = "time::serde::rfc3339::option", default, skip_serializing_if = "Option::is_none")]
    pub deferred_until: Option<OffsetDateTime>,
    /// The first comment, once posted; or why it could not be (the post stays published).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_comment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_comment_error: Option<String>,
    /// Containers made (or possibly made) for this destination that will never be published:
    /// what a retry left behind. Meta lets them expire unused after 24 h.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orphaned_containers: Vec<OrphanedContainer>,
    #[serde(default)]
    pub history: Vec<StateChange>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl Destination {
    /// Moves to `next` if the state machine allows it, recording when and why.
    pub fn move_to(&mut self, next: DestState, at: OffsetDateTime, note: Option<String>) -> Result<()> {
        if !self.state.can_move_to(next) {
            return Err(PostError::IllegalTransition { from: self.state, to: next });
        }
        self.state = next;
        self.updated_at = at;
        self.history.push(StateChange { state: next, at, note });
        Ok(())
    }

    /// Parks the destination until the account is connected again; `resume` is where it
    /// continues then (QUEUED: create the container, PROCESSING: poll, READY: publish).
    pub fn await_auth(&mut self, resume: DestState, failure: Failure, at: OffsetDateTime) -> Result<()> {
        self.move_to(DestState::AwaitingAuth, at, Some(failure.reason.clone()))?;
        self.resume_state = Some(resume);
        self.failure = Some(failure);
        Ok(())
    }

    /// The account has a token again: an AWAITING_AUTH destination goes back to the step it was
    /// stopped at (QUEUED when none was recorded) and forgets the failure that parked it.
    pub fn resume_after_auth(&mut self, at: OffsetDateTime) -> Result<DestState> {
        let resume = self.resume_state.unwrap_or(DestState::Queued);
        if self.state != DestState::AwaitingAuth {
            return Err(PostError::IllegalTransition { from: self.state, to: resume });
        }
        self.move_to(resume, at, Some("the account was connected again".into()))?;
        self.resume_state = None;
        self.failure = None;
        Ok(resume)
    }

    /// Parks the destination until `until` (quota or rate limit); `resume` is where it goes then.
    pub fn defer(&mut self, resume: DestState, until: OffsetDateTime, reason: String, at: OffsetDateTime) -> Result<()> {
        self.move_to(DestState::Deferred, at, Some(format!("{reason}; waiting until {until}")))?;
        self.resume_state = Some(resume);
        self.deferred_until = Some(until);
        Ok(())
    }

    /// The wait of a DEFERRED destination is over: back to the step it was stopped at (READY
    /// when none was recorded).
    pub fn resume_after_wait(&mut self, at: OffsetDateTime) -> Result<DestState> {
        let resume = self.resume_state.unwrap_or(DestState::Ready);
        if self.state != DestState::Deferred {
            return Err(PostError::IllegalTransition { from: self.state, to: resume });
        }
        self.move_to(resume, at, Some("the wait is over".into()))?;
        self.resume_state = None;
        self.deferred_until = None;
        Ok(resume)
    }

    /// Forgets the containers so they are made again (the step goes back to QUEUED). Allowed
    /// once per post by the caller (`recreated`); a second expiry fails instead.
    pub fn recreate(&mut self, reason: &str, at: OffsetDateTime) -> Result<()> {
        self.move_to(DestState::Queued, at, Some(format!("{reason}; creating the containers again")))?;
        self.reset_containers();
        self.recreated = true;
        Ok(())
    }

    /// Everything about the containers made so far, and the poll waiting for them.
    fn reset_containers(&mut self) {
        self.container_id = None;
        self.children.clear();
        self.children_ready = 0;
        self.container_created_at = None;
        self.missed_look_ms = None;
        self.poll_attempt = 0;
        self.next_poll_at = None;
    }

    /// The latest containers were made at `at`: their waits are measured from there.
    pub fn containers_made_at(&mut self, at: OffsetDateTime) {
        self.container_created_at = Some(at);
        self.missed_look_ms = None;
    }

    /// When this destination is next expected to move, if anything must move it: the watchdog
    /// restarts it when this is long past. None when it is final, or waits for a person
    /// (AWAITING_AUTH: the account must be connected again, an alarm says so).
    pub fn next_move_at(&self) -> Option<OffsetDateTime> {
        let expected = match self.state {
            DestState::Scheduled => self.publish_at,
            // Handed on through the stream, or being worked on right now.
            DestState::Queued | DestState::Ready | DestState::Publishing => None,
            DestState::Processing => self.next_poll_at,
            DestState::Deferred => self.deferred_until,
            DestState::AwaitingAuth | DestState::Published | DestState::Failed | DestState::Cancelled => return None,
        };
        [expected, Some(self.updated_at), self.rearmed_at].into_iter().flatten().max()
    }

    /// The watchdog restarts the current step (its state does not change); counted, so a
    /// destination that keeps stalling ends FAILED instead of being restarted forever.
    pub fn rearm(&mut self, why: &str, at: OffsetDateTime) -> Result<()> {
        if self.next_move_at().is_none() {
            return Err(PostError::NothingToRestart { state: self.state });
        }
        // `updated_at` stays (it is the last real move, and the publish lease counts from it).
        self.rearms += 1;
        self.rearmed_at = Some(at);
        self.history.push(StateChange { state: self.state, at, note: Some(format!("re-armed by the watchdog ({}): {why}", self.rearms)) });
        Ok(())
    }

    pub fn fail(&mut self, failure: Failure, at: OffsetDateTime) -> Result<()> {
        let note = Some(failure.reason.clone());
        self.move_to(DestState::Failed, at, note)?;
        self.failure = Some(failure);
        Ok(())
    }

    /// Where an operator's retry starts a FAILED destination again: READY when its container had
    /// finished (and has not expired since), so only media_publish is repeated; otherwise
    /// QUEUED, with the old containers forgotten so they are made again.
    pub fn retry_target(&self, now: OffsetDateTime) -> Result<DestState> {
        if self.state != DestState::Failed {
            return Err(PostError::NotFailed { account_id: self.account_id.clone(), state: self.state });
        }
        // Since the containers were last (re)made: the last QUEUED in the history.
        let since = self.history.iter().rposition(|c| c.state == DestState::Queued).unwrap_or(0);
        let finished = self.history[since..].iter().any(|c| c.state == DestState::Ready);
        let fresh = self.container_created_at.is_none_or(|at| now - at < CONTAINER_LIFETIME);
        Ok(if self.container_id.is_some() && finished && fresh { DestState::Ready } else { DestState::Queued })
    }

    /// `instapipe posts retry`: moves a FAILED destination back to work (see
    /// [`retry_target`](Self::retry_target)), clears the failure and records why in the history.
    pub fn operator_retry(&mut self, now: OffsetDateTime) -> Result<DestState> {
        let target = self.retry_target(now)?;
        let was = self.failure.as_ref().map(|f| format!(" (failed: {})", f.reason)).unwrap_or_default();
        let note = match target {
            DestState::Ready => format!(
                "retried by an operator: publishing container {} again{was}",
                self.container_id.as_deref().unwrap_or("?")
            ),
            _ => format!("retried by an operator: creating the container again{was}"),
        };
        self.move_to(target, now, Some(note))?;
        self.failure = None;
        self.resume_state = None;
        self.deferred_until = None;
        if target == DestState::Queued {
            self.reset_containers();
            self.recreated = false;
            // Their schedules have fired and are gone (ActionAfterCompletion DELETE).
            self.create_retries = 0;
        }
        Ok(target)
    }

    /// Calls the destination off (the posts API's cancel), if it was not handed to
    /// media_publish yet.
    pub fn cancel(&mut self, note: &str, at: OffsetDateTime) -> Result<()> {
        self.move_to(DestState::Cancelled, at, Some(note.to_string()))
    }

    /// A SCHEDULED destination takes the post's new time (and/or caption, which lives on the
    /// post); the change is recorded in its history without a change of state. Its start
    /// retries belonged to the start being replaced.
    pub fn reschedule(&mut self, publish_at: Option<OffsetDateTime>, note: String, at: OffsetDateTime) -> Result<()> {
        if self.state != DestState::Scheduled {
            return Err(PostError::NotScheduled { account_id: self.account_id.clone(), state: self.state });
        }
        self.publish_at = publish_at;
        self.create_retries = 0;
        self.updated_at = at;
        self.history.push(StateChange { state: self.state, at, note: Some(note) });
        Ok(())
    }
}

/// A container left behind: made (or possibly made) on Meta's side, never to be published.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrphanedContainer {
    /// None when a creation's outcome is unknown (no answer in time, a 5xx, an unreadable
    /// answer): Meta may hold a container whose id never reached us.
    #[serde(default)]
    pub container_id: Option<String>,
    /// For a carousel container: the children it was (possibly) made with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
    pub reason: String,
    #[cfg_attr(feature = "schema", schemars(with = "String", extend("format" = "date-time")))]
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl Destination {
    /// Records a container left behind.
    pub fn orphan(&mut self, container_id: Option<String>, children: Vec<String>, reason: impl Into<String>, at: OffsetDateTime) {
        self.orphaned_containers.push(OrphanedContainer { container_id, children, reason: reason.into(), at });
    }

    /// Gives up the carousel items for fresh ones, because a carousel container that went
    /// unanswered may hold them: they are recorded as left behind and the destination goes back
    /// to QUEUED to make them again, then a new carousel container. Not an expiry, so the one
    /// re-creation an expired container is allowed (`recreated`) stays available.
    pub fn replace_children(&mut self, reason: &str, at: OffsetDateTime) -> Result<()> {
        self.move_to(DestState::Queued, at, Some(format!("{reason}; making the carousel items again")))?;
        let children = std::mem::take(&mut self.children);
        let count = children.len();
        for (i, child) in children.into_iter().enumerate() {
            let why = format!("carousel item {} of {count}: a carousel container that went unanswered may hold it", i + 1);
            self.orphan(Some(child), Vec::new(), why, at);
        }
        self.reset_containers();
        Ok(())
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A post's overall state, derived from its destinations (never stored, so never stale).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PostState {
    Scheduled,
    InProgress,
    Published,
    PartiallyFailed,
    Failed,
    /// Cancelled before publishing (some destinations may have failed before that).
    Cancelled,
}

impl PostState {
    pub fn as_str(self) -> &'static str {
        match self {
            PostState::Scheduled => "SCHEDULED",
            PostState::InProgress => "IN_PROGRESS",
            PostState::Published => "PUBLISHED",
            PostState::PartiallyFailed => "PARTIALLY_FAILED",
            PostState::Failed => "FAILED",
            PostState::Cancelled => "CANCELLED",
        }
    }
}

pub fn overall_state(destinations: &[Destination]) -> PostState {
    let all = |s: DestState| destinations.iter().all(|d| d.state == s);
    if destinations.iter().any(|d| !d.state.is_final()) {
        if all(DestState::Scheduled) { PostState::Scheduled } else { PostState::InProgress }
    } else if all(DestState::Published) {
        PostState::Published
    } else if all(DestState::Failed) {
        PostState::Failed
    } else if destinations.iter().all(|d| matches!(d.state, DestState::Cancelled | DestState::Failed)) {
        PostState::Cancelled
    } else {
        PostState::PartiallyFailed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn post(publish_at: Option<OffsetDateTime>) -> Post {
        let request = PostRequest {
            caption: "hello".into(),
            media: vec![MediaItem::new("https://example.com/a.jpg", MediaKind::Image)],
            accounts: vec!["1784".into(), "1785".into()],
            publish_at,
            ..PostRequest::default()
        };
        Post::new("P1".into(), "generic", "msg_1", request, datetime!(2026-11-23 10:00 UTC))
    }

    #[test]
    fn a_due_post_gets_queued_destinations_and_a_future_one_scheduled_ones() {
        let now = datetime!(2026-11-23 10:00 UTC);
        let due = post(Some(datetime!(2026-11-23 09:59 UTC))).destinations(now);
        assert_eq!(due.len(), 2);
        assert!(due.iter().all(|d| d.state == DestState::Queued && d.version == 0));
        let later = post(Some(datetime!(2026-11-23 10:05 UTC))).destinations(now);
        assert!(later.iter().all(|d| d.state == DestState::Scheduled));
        assert!(post(None).destinations(now).iter().all(|d| d.state == DestState::Queued));
    }

    #[test]
    fn the_happy_path_is_legal_and_shortcuts_are_not() {
        let now = datetime!(2026-11-23 10:00 UTC);
        let mut d = post(None).destinations(now).remove(0);
        assert!(d.move_to(DestState::Ready, now, None).is_err(), "READY needs a container first");
        for s in [DestState::Processing, DestState::Ready, DestState::Publishing, DestState::Published] {
            d.move_to(s, now, None).unwrap();
        }
        assert_eq!(d.history.len(), 5);
        assert!(d.fail(Failure::new("late"), now).is_err(), "a published destination never fails");
        assert!(d.move_to(DestState::Queued, now, None).is_err());
    }

    #[test]
    fn awaiting_auth_resumes_only_to_a_working_state() {
        let now = datetime!(2026-11-23 10:00 UTC);
        let mut d = post(None).destinations(now).remove(0);
        d.await_auth(DestState::Queued, Failure::new("token expired"), now).unwrap();
        assert_eq!((d.state, d.resume_state), (DestState::AwaitingAuth, Some(DestState::Queued)));
        assert!(!d.state.is_final());
        assert!(d.clone().move_to(DestState::Published, now, None).is_err());
        d.move_to(DestState::Queued, now, None).unwrap();
    }

    #[test]
    fn failing_keeps_the_reason() {
        let now = datetime!(2026-11-23 10:00 UTC);
        let mut d = post(None).destinations(now).remove(0);
        d.fail(Failure { reason: "media could not be fetched".into(), code: Some(9004), ..Failure::default() }, now)
            .unwrap();
        assert_eq!(d.state, DestState::Failed);
        assert_eq!(d.failure.as_ref().unwrap().code, Some(9004));
        assert_eq!(d.history.last().unwrap().note.as_deref(), Some("media could not be fetched"));
    }

    #[test]
    fn overall_state_follows_the_destinations() {
        let now = datetime!(2026-11-23 10:00 UTC);
        let mut ds = post(None).destinations(now);
        assert_eq!(overall_state(&ds), PostState::InProgress);
        for d in ds.iter_mut() {
            d.state = DestState::Published;
        }
        assert_eq!(overall_state(&ds), PostState::Published);
        ds[1].state = DestState::Failed;
        assert_eq!(overall_state(&ds), PostState::PartiallyFailed);
        ds[0].state = DestState::Failed;
        assert_eq!(overall_state(&ds), PostState::Failed);
        let scheduled = post(Some(datetime!(2026-11-24 10:00 UTC))).destinations(now);
        assert_eq!(overall_state(&scheduled), PostState::Scheduled);
    }

    #[test]
    fn an_operator_retry_is_the_only_way_out_of_failed() {
        use DestState::*;
        assert!(Failed.can_move_to(Queued) && Failed.can_move_to(Ready));
        for next in [Scheduled, Processing, Publishing, Published, AwaitingAuth, Deferred, Cancelled, Failed] {
            assert!(!Failed.can_move_to(next), "FAILED must not move to {next}");
        }
        for from in [Published, Cancelled] {
            assert!(!from.can_move_to(Queued) && !from.can_move_to(Ready), "{from} stays final");
        }
        let now = datetime!(2026-11-23 10:00 UTC);
        let mut d = post(None).destinations(now).remove(0);
        d.fail(Failure::new("media could not be fetched"), now).unwrap();
        d.move_to(Queued, now, Some("retried by an operator".into())).unwrap();
        assert_eq!(d.history.last().unwrap().state, Queued);
    }

    #[test]
    fn cancelling_is_possible_until_publishing_and_is_final() {
        use DestState::*;
        for from in [Scheduled, Queued, Processing, Ready, AwaitingAuth, Deferred] {
            assert!(from.can_move_to(Cancelled), "{from} should be cancellable");
        }
        for from in [Publishing, Published, Failed, Cancelled] {
            assert!(!from.can_move_to(Cancelled), "{from} must not be cancellable");
        }
        let now = datetime!(2026-11-23 10:00 UTC);
        let mut ds = post(Some(datetime!(2026-11-24 10:00 UTC))).destinations(now);
        ds[0].move_to(Cancelled, now, Some("cancelled".into())).unwrap();
        assert!(ds[0].state.is_final());
        assert!(ds[0].clone().move_to(Queued, now, None).is_err());
        assert!(ds[0].clone().fail(Failure::new("late"), now).is_err(), "a cancelled destination never fails");
        assert_eq!(overall_state(&ds), PostState::InProgress, "one account still scheduled");
        ds[1].state = Failed;
        assert_eq!(overall_state(&ds), PostState::Cancelled);
        ds[1].state = Published;
        assert_eq!(overall_state(&ds), PostState::PartiallyFailed);
    }

    // The operator's retry (`instapipe posts retry`).

    const NOW: OffsetDateTime = datetime!(2026-11-23 10:00 UTC);

    fn destination() -> Destination {
        post(None).destinations(NOW).remove(0)
    }

    #[test]
    fn a_failure_before_any_container_goes_back_to_queued() {
        let mut d = destination();
        d.fail(Failure::new("media could not be fetched"), NOW).unwrap();
        assert_eq!(d.operator_retry(NOW), Ok(DestState::Queued));
        assert_eq!(d.state, DestState::Queued);
        assert!(d.failure.is_none());
        let note = d.history.last().unwrap().note.clone().unwrap();
        assert!(note.contains("retried by an operator") && note.contains("media could not be fetched"), "{note}");
    }

    #[test]
    fn a_finished_container_goes_back_to_ready_and_keeps_its_id() {
        let mut d = destination();
        d.move_to(DestState::Processing, NOW, None).unwrap();
        d.container_id = Some("C1".into());
        d.container_created_at = Some(NOW);
        d.move_to(DestState::Ready, NOW, None).unwrap();
        d.move_to(DestState::Publishing, NOW, None).unwrap();
        d.fail(Failure { reason: "publish refused".into(), code: Some(2), ..Failure::default() }, NOW).unwrap();
        assert_eq!(d.operator_retry(NOW + time::Duration::hours(1)), Ok(DestState::Ready));
        assert_eq!(d.container_id.as_deref(), Some("C1"));
        assert!(d.failure.is_none());
    }

    #[test]
    fn a_container_that_failed_processing_or_expired_is_made_again() {
        // Processing ended in ERROR: never READY.
        let mut d = destination();
        d.move_to(DestState::Processing, NOW, None).unwrap();
        d.container_id = Some("C1".into());
        d.container_created_at = Some(NOW);
        d.create_retries = 3;
        d.poll_attempt = 4;
        d.fail(Failure::new("status ERROR"), NOW).unwrap();
        assert_eq!(d.operator_retry(NOW), Ok(DestState::Queued));
        assert_eq!((d.container_id.as_deref(), d.container_created_at, d.create_retries), (None, None, 0));
        assert_eq!(d.poll_attempt, 0, "no poll of the old container is awaited any more");

        // Finished, but more than 24 h ago.
        let mut d = destination();
        d.move_to(DestState::Processing, NOW, None).unwrap();
        d.container_id = Some("C1".into());
        d.container_created_at = Some(NOW);
        d.move_to(DestState::Ready, NOW, None).unwrap();
        d.fail(Failure::new("quota"), NOW).unwrap();
        assert_eq!(d.retry_target(NOW + time::Duration::hours(25)), Ok(DestState::Queued));

        // READY before a recreate does not count for the new container.
        let mut d = destination();
        d.move_to(DestState::Processing, NOW, None).unwrap();
        d.move_to(DestState::Ready, NOW, None).unwrap();
        d.recreate("expired", NOW).unwrap();
        d.move_to(DestState::Processing, NOW, None).unwrap();
        d.container_id = Some("C2".into());
        d.fail(Failure::new("status ERROR"), NOW).unwrap();
        assert_eq!(d.retry_target(NOW), Ok(DestState::Queued));
        d.operator_retry(NOW).unwrap();
        assert!(!d.recreated, "a retried post may have its container made again once more");
    }

    #[test]
    fn only_failed_destinations_are_retried_and_a_refusal_changes_nothing() {
        let mut d = destination();
        let before = d.clone();
        assert_eq!(
            d.operator_retry(NOW),
            Err(PostError::NotFailed { account_id: "1784".into(), state: DestState::Queued })
        );
        assert_eq!(d, before);
        d.cancel("cancelled", NOW).unwrap();
        let err = d.operator_retry(NOW).unwrap_err();
        assert_eq!(err.to_string(), "account 1784 is CANCELLED, not FAILED: nothing to retry");
        assert_eq!(d.state, DestState::Cancelled);
    }

    // Containers made again.

    #[test]
    fn recreating_forgets_every_container_and_the_awaited_poll() {
        let mut d = destination();
        d.move_to(DestState::Processing, NOW, None).unwrap();
        d.children = vec!["K1".into(), "K2".into()];
        d.children_ready = 2;
        d.container_id = Some("C1".into());
        d.container_created_at = Some(NOW);
        d.poll_attempt = 3;
        d.recreate("the container expired", NOW).unwrap();
        assert_eq!(d.state, DestState::Queued);
        assert!(d.container_id.is_none() && d.children.is_empty() && d.container_created_at.is_none());
        assert_eq!((d.children_ready, d.poll_attempt, d.recreated), (0, 0, true));
        assert_eq!(
            d.history.last().unwrap().note.as_deref(),
            Some("the container expired; creating the containers again")
        );
        let mut published = destination();
        for s in [DestState::Processing, DestState::Ready, DestState::Publishing, DestState::Published] {
            published.move_to(s, NOW, None).unwrap();
        }
        assert!(published.recreate("expired", NOW).is_err(), "a published destination keeps its media");
    }

    #[test]
    fn replaced_carousel_items_are_left_behind_on_record_and_made_again() {
        let mut d = destination();
        d.move_to(DestState::Processing, NOW, None).unwrap();
        d.children = vec!["K1".into(), "K2".into()];
        d.children_ready = 2;
        d.poll_attempt = 2;
        d.orphan(None, d.children.clone(), "creating the carousel container: no answer in time", NOW);
        d.replace_children("Instagram refused the carousel container", NOW).unwrap();
        assert_eq!((d.state, d.children.len(), d.children_ready, d.poll_attempt, d.recreated), (DestState::Queued, 0, 0, 0, false));
        let left: Vec<_> = d.orphaned_containers.iter().map(|o| o.container_id.as_deref()).collect();
        assert_eq!(left, [None, Some("K1"), Some("K2")]);
        assert_eq!(
            d.history.last().unwrap().note.as_deref(),
            Some("Instagram refused the carousel container; making the carousel items again")
        );
        let mut published = destination();
        for s in [DestState::Processing, DestState::Ready, DestState::Publishing, DestState::Published] {
            published.move_to(s, NOW, None).unwrap();
        }
        published.children = vec!["K1".into()];
        assert!(published.replace_children("refused", NOW).is_err());
        assert!(published.orphaned_containers.is_empty(), "a refused transition changes nothing");
    }

    // Resuming after re-auth and after a wait.

    #[test]
    fn resuming_after_auth_goes_back_to_the_parked_step_and_forgets_the_failure() {
        let mut d = destination();
        d.move_to(DestState::Processing, NOW, None).unwrap();
        d.await_auth(DestState::Processing, Failure::new("token expired"), NOW).unwrap();
        assert_eq!(d.resume_after_auth(NOW), Ok(DestState::Processing));
        assert_eq!((d.state, d.resume_state, d.failure.as_ref()), (DestState::Processing, None, None));
        assert_eq!(d.history.last().unwrap().note.as_deref(), Some("the account was connected again"));

        // Without a recorded step it starts from the container.
        let mut d = destination();
        d.await_auth(DestState::Queued, Failure::new("token expired"), NOW).unwrap();
        d.resume_state = None;
        assert_eq!(d.resume_after_auth(NOW), Ok(DestState::Queued));
    }

    #[test]
    fn only_a_parked_destination_resumes_after_auth() {
        let mut d = destination();
        let before = d.clone();
        assert_eq!(
            d.resume_after_auth(NOW),
            Err(PostError::IllegalTransition { from: DestState::Queued, to: DestState::Queued })
        );
        assert_eq!(d, before, "a refused resume changes nothing");
        d.fail(Failure::new("gone"), NOW).unwrap();
        assert!(d.resume_after_auth(NOW).is_err());
    }

    #[test]
    fn resuming_after_a_wait_goes_back_to_the_deferred_step() {
        let until = NOW + time::Duration::minutes(5);
        let mut d = destination();
        d.defer(DestState::Queued, until, "rate limit".into(), NOW).unwrap();
        assert_eq!(d.deferred_until, Some(until));
        assert_eq!(d.resume_after_wait(until), Ok(DestState::Queued));
        assert_eq!((d.state, d.resume_state, d.deferred_until), (DestState::Queued, None, None));
        assert_eq!(d.history.last().unwrap().note.as_deref(), Some("the wait is over"));
        assert!(d.resume_after_wait(until).is_err(), "a QUEUED destination has no wait to end");

        let mut d = destination();
        d.defer(DestState::Ready, until, "quota".into(), NOW).unwrap();
        d.resume_state = None;
        assert_eq!(d.resume_after_wait(until), Ok(DestState::Ready), "READY when no step was recorded");
    }

    // The posts API's cancel and reschedule.

    #[test]
    fn cancel_records_its_note_and_refuses_once_publishing() {
        let mut d = destination();
        d.cancel("cancelled through the posts API", NOW).unwrap();
        assert_eq!(d.state, DestState::Cancelled);
        assert_eq!(d.history.last().unwrap().note.as_deref(), Some("cancelled through the posts API"));
        let mut d = destination();
        for s in [DestState::Processing, DestState::Ready, DestState::Publishing] {
            d.move_to(s, NOW, None).unwrap();
        }
        assert_eq!(
            d.cancel("too late", NOW),
            Err(PostError::IllegalTransition { from: DestState::Publishing, to: DestState::Cancelled })
        );
        assert_eq!(d.state, DestState::Publishing);
    }

    #[test]
    fn a_scheduled_destination_is_rescheduled_in_place_and_others_refuse() {
        let later = datetime!(2026-11-25 10:00 UTC);
        let mut d = post(Some(datetime!(2026-11-24 10:00 UTC))).destinations(NOW).remove(0);
        d.create_retries = 2;
        let at = NOW + time::Duration::minutes(1);
        d.reschedule(Some(later), "rescheduled to 2026-11-25T10:00:00Z".into(), at).unwrap();
        assert_eq!((d.state, d.publish_at, d.create_retries, d.updated_at), (DestState::Scheduled, Some(later), 0, at));
        let last = d.history.last().unwrap();
        assert_eq!((last.state, last.note.as_deref()), (DestState::Scheduled, Some("rescheduled to 2026-11-25T10:00:00Z")));
        assert_eq!(d.history.len(), 2);

        let mut queued = destination();
        let before = queued.clone();
        let err = queued.reschedule(Some(later), "rescheduled".into(), at).unwrap_err();
        assert_eq!(err, PostError::NotScheduled { account_id: "1784".into(), state: DestState::Queued });
        assert_eq!(queued, before);
    }
}
