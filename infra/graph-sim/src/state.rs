//! The simulator's memory: accounts, containers, published media, comments, the request log and
//! the call counters behind the usage headers. Time is passed in (`now`) so that every status is
//! derived from creation instants rather than from background timers.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::SimConfig;
use crate::{ContainerInfo, PublishedMedia, RecordedRequest};

/// Ids are numeric strings from one counter shared by containers, media and comments, in the
/// range real Instagram ids live in.
const FIRST_ID: u64 = 17_900_000_000_000_001;
pub(crate) const QUOTA_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
pub(crate) const USAGE_WINDOW: Duration = Duration::from_secs(60 * 60);
/// The app-wide budget behind `X-App-Usage`, as a multiple of the per-account budget. It is
/// only reported, never enforced: the app-level limit (code 4) is not simulated.
const APP_BUDGET_ACCOUNTS: u64 = 10;

/// What a container was created as (the `media_type` parameter, IMAGE when absent).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ContainerKind {
    Image,
    /// Only as a carousel child.
    Video,
    Reels,
    Stories,
    Carousel,
}

impl ContainerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerKind::Image => "IMAGE",
            ContainerKind::Video => "VIDEO",
            ContainerKind::Reels => "REELS",
            ContainerKind::Stories => "STORIES",
            ContainerKind::Carousel => "CAROUSEL",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatusCode {
    InProgress,
    Finished,
    Error,
    Expired,
    Published,
}

impl StatusCode {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::InProgress => "IN_PROGRESS",
            StatusCode::Finished => "FINISHED",
            StatusCode::Error => "ERROR",
            StatusCode::Expired => "EXPIRED",
            StatusCode::Published => "PUBLISHED",
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Container {
    pub id: String,
    pub ig_user_id: String,
    pub kind: ContainerKind,
    /// Stories can hold an image or a video; this tells them apart.
    pub is_video: bool,
    pub is_carousel_item: bool,
    pub children: Vec<String>,
    pub caption: Option<String>,
    pub media_urls: Vec<String>,
    pub created_at: Instant,
    /// Processing time of this container alone (carousel parents also wait for children).
    pub delay: Duration,
    /// Set at creation when a media URL cannot be fetched; the container is ERROR from then on.
    pub error_status: Option<String>,
    /// Set when published (for carousel children: when their parent was published).
    pub published_media_id: Option<String>,
    /// A carousel item: the carousel container that holds it (a child belongs to one only).
    pub carousel_id: Option<String>,
}

#[derive(Clone, Debug)]
pub(crate) struct Media {
    pub record: PublishedMedia,
    pub shortcode: String,
    pub published_at: Instant,
}

#[derive(Clone, Debug)]
pub(crate) struct Comment {
    pub id: String,
    pub media_id: String,
    pub message: String,
    pub timestamp: String,
}

pub(crate) struct State {
    pub config: SimConfig,
    /// Account id → the only token it accepts.
    pub tokens: HashMap<String, String>,
    /// Tokens marked expired: every call with one gets 190/463.
    pub expired_tokens: HashSet<String>,
    next_id: u64,
    pub containers: Vec<Container>,
    container_index: HashMap<String, usize>,
    pub media: Vec<Media>,
    media_index: HashMap<String, usize>,
    pub comments: Vec<Comment>,
    pub requests: Vec<RecordedRequest>,
    /// Graph calls per account in the last hour, oldest first (Business Use Case usage).
    account_calls: HashMap<String, VecDeque<Instant>>,
    /// All Graph calls in the last hour (app usage).
    app_calls: VecDeque<Instant>,
    pub duplicate_publish_attempts: u64,
    /// Requests carried out but answered only after `config.timeout`, and how many of them
    /// created a carousel container.
    pub late_answers: u64,
    pub late_carousel_creations: u64,
    /// Carousel container creations still to be answered late, whatever the rates (a test hook).
    pub carousel_creations_to_answer_late: u32,
    /// Drives fault injection only, so faults follow the seed independently of content.
    pub fault_rng: StdRng,
    /// Drives shortcodes and fbtrace ids.
    content_rng: StdRng,
    /// Logins: the consent the next one gives, codes issued, Facebook user tokens.
    pub oauth: crate::oauth::OAuthState,
}

impl State {
    pub fn new(config: SimConfig) -> State {
        let seed = config.seed;
        State {
            config,
            tokens: HashMap::new(),
            expired_tokens: HashSet::new(),
            next_id: FIRST_ID,
            containers: Vec::new(),
            container_index: HashMap::new(),
            media: Vec::new(),
            media_index: HashMap::new(),
            comments: Vec::new(),
            requests: Vec::new(),
            account_calls: HashMap::new(),
            app_calls: VecDeque::new(),
            duplicate_publish_attempts: 0,
            late_answers: 0,
            late_carousel_creations: 0,
            carousel_creations_to_answer_late: 0,
            fault_rng: StdRng::seed_from_u64(seed),
            content_rng: StdRng::seed_from_u64(seed ^ 0x5EED_C0DE_5EED_C0DE),
            oauth: crate::oauth::OAuthState::default(),
        }
    }

    /// Forgets everything except config and tokens. The id counter keeps counting so an id from
    /// before the reset can never name a new object.
    pub fn reset(&mut self) {
        let next_id = self.next_id;
        let tokens = std::mem::take(&mut self.tokens);
        let expired_tokens = std::mem::take(&mut self.expired_tokens);
        let consent = self.oauth.consent.clone();
        *self = State::new(self.config.clone());
        self.oauth.consent = consent;
        self.tokens = tokens;
        self.expired_tokens = expired_tokens;
        self.next_id = next_id;
    }

    /// Records a request by its path only (login requests carry codes and secrets in the query).
    pub fn record(&mut self, method: &str, path: &str, headers: &axum::http::HeaderMap, body: &str) {
        self.requests.push(crate::RecordedRequest {
            method: method.into(),
            path_and_query: path.into(),
            authorization: headers
                .get(axum::http::header::AUTHORIZATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
            body: body.into(),
        });
    }

    pub fn new_id(&mut self) -> String {
        let id = self.next_id;
        self.next_id += 1;
        id.to_string()
    }

    // ---- containers ------------------------------------------------------------------------

    pub fn add_container(&mut self, container: Container) {
        self.container_index
            .insert(container.id.clone(), self.containers.len());
        self.containers.push(container);
    }

    pub fn container(&self, id: &str) -> Option<&Container> {
        self.container_index.get(id).map(|&i| &self.containers[i])
    }

    pub fn container_mut(&mut self, id: &str) -> Option<&mut Container> {
        self.container_index
            .get(id)
            .map(|&i| &mut self.containers[i])
    }

    /// When the container's processing is done (ignoring expiry), or `Err(status text)` if it
    /// can never finish because it or one of its children failed.
    fn ready_at(&self, container: &Container) -> Result<Instant, String> {
        if let Some(error) = &container.error_status {
            return Err(error.clone());
        }
        let mut ready = container.created_at + container.delay;
        for child_id in &container.children {
            if let Some(child) = self.container(child_id) {
                ready = ready.max(self.ready_at(child)?);
            }
        }
        Ok(ready)
    }

    pub fn status(&self, container: &Container, now: Instant) -> (StatusCode, String) {
        if container.published_media_id.is_some() {
            return (
                StatusCode::Published,
                "Published: Media has been published.".into(),
            );
        }
        match self.ready_at(container) {
            Err(text) => (StatusCode::Error, text),
            Ok(_) if now >= container.created_at + self.config.expiry => (
                StatusCode::Expired,
                "Expired: The media container was not published within 24 hours and has expired."
                    .into(),
            ),
            Ok(ready) if now >= ready => (
                StatusCode::Finished,
                "Finished: Media has been uploaded and it is ready to be published.".into(),
            ),
            Ok(_) => (
                StatusCode::InProgress,
                "In Progress: Media is still being processed.".into(),
            ),
        }
    }

    pub fn container_info(&self, container: &Container, now: Instant) -> ContainerInfo {
        let (code, status) = self.status(container, now);
        ContainerInfo {
            id: container.id.clone(),
            ig_user_id: container.ig_user_id.clone(),
            media_type: container.kind.as_str().to_string(),
            status_code: code.as_str().to_string(),
            status,
            is_carousel_item: container.is_carousel_item,
            children: container.children.clone(),
            caption: container.caption.clone(),
            media_urls: container.media_urls.clone(),
            carousel_id: container.carousel_id.clone(),
        }
    }

    // ---- media -----------------------------------------------------------------------------

    pub fn add_media(&mut self, media: Media) {
        self.media_index
            .insert(media.record.media_id.clone(), self.media.len());
        self.media.push(media);
    }

    pub fn media(&self, id: &str) -> Option<&Media> {
        self.media_index.get(id).map(|&i| &self.media[i])
    }

    pub fn publishes_in_window(&self, ig_user_id: &str, now: Instant) -> u32 {
        let count = self
            .media
            .iter()
            .filter(|m| {
                m.record.ig_user_id == ig_user_id
                    && now.duration_since(m.published_at) < QUOTA_WINDOW
            })
            .count();
        u32::try_from(count).unwrap_or(u32::MAX)
    }

    /// The account that owns an object id (container, media or comment), if the id is one.
    pub fn owner_of(&self, id: &str) -> Option<String> {
        if let Some(container) = self.container(id) {
            return Some(container.ig_user_id.clone());
        }
        if let Some(media) = self.media(id) {
            return Some(media.record.ig_user_id.clone());
        }
        let comment = self.comments.iter().find(|c| c.id == id)?;
        self.media(&comment.media_id)
            .map(|m| m.record.ig_user_id.clone())
    }

    pub fn account_for_token(&self, token: &str) -> Option<String> {
        self.tokens
            .iter()
            .find(|(_, t)| t.as_str() == token)
            .map(|(account, _)| account.clone())
    }

    // ---- random values ---------------------------------------------------------------------

    pub fn shortcode(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
        (0..11)
            .map(|_| ALPHABET[self.content_rng.random_range(0..ALPHABET.len())] as char)
            .collect()
    }

    pub fn fbtrace_id(&mut self) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let tail: String = (0..22)
            .map(|_| ALPHABET[self.content_rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        format!("A{tail}")
    }

    // ---- usage (X-App-Usage / X-Business-Use-Case-Usage) -----------------------------------

    fn prune(calls: &mut VecDeque<Instant>, now: Instant) {
        while calls
            .front()
            .is_some_and(|&t| now.duration_since(t) >= USAGE_WINDOW)
        {
            calls.pop_front();
        }
    }

    /// `Some(minutes until a call is possible again)` when the account used its hourly budget.
    pub fn account_throttled(&mut self, account: &str, now: Instant) -> Option<u64> {
        let budget = self.config.account_calls_per_hour as usize;
        let calls = self.account_calls.get_mut(account)?;
        Self::prune(calls, now);
        if budget == 0 || calls.len() < budget {
            return None;
        }
        // The block lifts when enough old calls leave the window to get back under budget.
        let freeing_call = calls[calls.len() - budget];
        let wait = USAGE_WINDOW.saturating_sub(now.duration_since(freeing_call));
        Some(wait.as_secs().div_ceil(60).max(1))
    }

    pub fn count_call(&mut self, account: Option<&str>, now: Instant) {
        self.app_calls.push_back(now);
        if let Some(account) = account {
            self.account_calls
                .entry(account.to_string())
                .or_default()
                .push_back(now);
        }
    }

    /// (call_count %, total_cputime %, total_time %) for the app.
    pub fn app_usage(&mut self, now: Instant) -> (u64, u64, u64) {
        Self::prune(&mut self.app_calls, now);
        let budget = u64::from(self.config.account_calls_per_hour) * APP_BUDGET_ACCOUNTS;
        let pct = percent(self.app_calls.len(), budget);
        (pct, pct / 2, pct / 2)
    }

    /// (call_count %, total_cputime %, total_time %, minutes to regain access) for an account.
    pub fn account_usage(&mut self, account: &str, now: Instant) -> (u64, u64, u64, u64) {
        let calls = match self.account_calls.get_mut(account) {
            Some(calls) => {
                Self::prune(calls, now);
                calls.len()
            }
            None => 0,
        };
        let pct = percent(calls, u64::from(self.config.account_calls_per_hour));
        let regain = self.account_throttled(account, now).unwrap_or(0);
        (pct, pct / 2, pct / 2, regain)
    }
}

fn percent(calls: usize, budget: u64) -> u64 {
    if budget == 0 {
        return 0;
    }
    (calls as u64 * 100 / budget).min(100)
}

/// Graph's timestamp format, e.g. `2026-11-23T10:00:00+0000`.
pub(crate) fn graph_timestamp(at: SystemTime) -> String {
    use time::OffsetDateTime;
    use time::macros::format_description;
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+0000");
    OffsetDateTime::from(at)
        .format(&format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00+0000".into())
}
