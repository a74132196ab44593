//! Posts, their destinations (one per Instagram account) and the legal state changes.
//! Pure data and rules: no I/O here.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::{Error, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    Video,
}

/// One image or video of a post.
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

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserTag {
    pub username: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<f64>,
}

/// Where the post appears: the feed (an image, a Reel, or a carousel of 2–10 items) or stories.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    #[default]
    Feed,
    Story,
}

/// Reel parameters of Meta's container API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReelOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cover_url: Option<String>,
    /// Milliseconds into the video for the cover frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumb_offset: Option<u64>,
    /// true: feed and Reels tab; false: Reels tab only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_to_feed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio_name: Option<String>,
}

/// Everything about a post beyond caption, media, accounts and time.
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
                rearms: 0,
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
                history: vec![StateChange { state, at: now, note: None }],
                created_at: now,
                updated_at: now,
            })
            .collect()
    }
}

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

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    pub state: DestState,
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
    /// Times the watchdog found this destination stalled and started its step again.
    #[serde(default)]
    pub rearms: u32,
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
            return Err(Error::IllegalTransition { from: self.state.to_string(), to: next.to_string() });
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

    /// Parks the destination until `until` (quota or rate limit); `resume` is where it goes then.
    pub fn defer(&mut self, resume: DestState, until: OffsetDateTime, reason: String, at: OffsetDateTime) -> Result<()> {
        self.move_to(DestState::Deferred, at, Some(format!("{reason}; waiting until {until}")))?;
        self.resume_state = Some(resume);
        self.deferred_until = Some(until);
        Ok(())
    }

    /// Forgets the containers so they are made again (the step goes back to QUEUED).
    pub fn recreate(&mut self, reason: &str, at: OffsetDateTime) -> Result<()> {
        self.move_to(DestState::Queued, at, Some(format!("{reason}; creating the containers again")))?;
        self.container_id = None;
        self.children.clear();
        self.children_ready = 0;
        self.container_created_at = None;
        self.poll_attempt = 0;
        self.next_poll_at = None;
        self.recreated = true;
        Ok(())
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
        Some(expected.map_or(self.updated_at, |at| at.max(self.updated_at)))
    }

    /// The watchdog restarts the current step (its state does not change); counted, so a
    /// destination that keeps stalling ends FAILED instead of being restarted forever.
    pub fn rearm(&mut self, why: &str, at: OffsetDateTime) -> Result<()> {
        if self.next_move_at().is_none() {
            return Err(Error::IllegalTransition { from: self.state.to_string(), to: format!("{} (re-armed)", self.state) });
        }
        // `updated_at` stays: the stall is measured from the last real move, so a destination
        // that stays stuck is found again by the next sweep and fails after a bounded number.
        self.rearms += 1;
        self.history.push(StateChange { state: self.state, at, note: Some(format!("re-armed by the watchdog ({}): {why}", self.rearms)) });
        Ok(())
    }

    pub fn fail(&mut self, failure: Failure, at: OffsetDateTime) -> Result<()> {
        let note = Some(failure.reason.clone());
        self.move_to(DestState::Failed, at, note)?;
        self.failure = Some(failure);
        Ok(())
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A post's overall state, derived from its destinations (never stored, so never stale).
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
}
