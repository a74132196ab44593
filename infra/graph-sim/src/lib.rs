//! A simulator of the Instagram Graph API content-publishing endpoints, for tests and for the
//! local stack as a stand-in for `graph.instagram.com`. It follows
//! `shared/reference/instagram-graph-api.md` (§2–5): containers that process over time and
//! expire, carousel items that belong to one carousel only, `media_publish` with its error
//! codes and rolling quota, usage headers with the Business Use Case limit, Meta's error body
//! shape, plus seeded fault injection (5xx, answers sent late after the work was done, lost
//! publish answers) and `/_sim/*` hooks to inspect what a client did.

mod config;
mod error;
mod faults;
mod graph;
mod oauth;
mod params;
mod routes;
mod state;
mod tokens;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use serde::Serialize;

pub use config::SimConfig;
pub use tokens::LONG_LIVED_SECS;
pub use oauth::{CODE_LIFETIME, Consent, DEFAULT_LOGIN_ACCOUNT, SimPage};
use state::State;

/// A handle on one simulated Graph API; clones share the same state.
#[derive(Clone)]
pub struct GraphSim {
    state: Arc<Mutex<State>>,
}

/// A post that went live through `media_publish`.
#[derive(Clone, Debug, Serialize)]
pub struct PublishedMedia {
    pub media_id: String,
    pub container_id: String,
    pub ig_user_id: String,
    /// IMAGE, VIDEO or CAROUSEL_ALBUM.
    pub media_type: String,
    /// FEED, REELS or STORY.
    pub media_product_type: String,
    pub caption: Option<String>,
    /// The image/video URLs (for a carousel: its items' URLs, in order).
    pub media_urls: Vec<String>,
    pub permalink: String,
    /// Graph format, e.g. `2026-11-23T10:00:00+0000`.
    pub timestamp: String,
}

/// One request as received on a Graph path, for secret-hygiene checks (tokens must travel in
/// the `Authorization` header, never in the URL or body).
#[derive(Clone, Debug, Serialize)]
pub struct RecordedRequest {
    pub method: String,
    pub path_and_query: String,
    /// The raw `Authorization` header value.
    pub authorization: Option<String>,
    /// The body, lossily decoded as UTF-8.
    pub body: String,
}

/// A container as it is now.
#[derive(Clone, Debug, Serialize)]
pub struct ContainerInfo {
    pub id: String,
    pub ig_user_id: String,
    /// The `media_type` it was created with: IMAGE, VIDEO, REELS, STORIES or CAROUSEL.
    pub media_type: String,
    /// IN_PROGRESS, FINISHED, ERROR, EXPIRED or PUBLISHED.
    pub status_code: String,
    /// The `status` text Graph would return.
    pub status: String,
    pub is_carousel_item: bool,
    /// Child container ids of a carousel parent.
    pub children: Vec<String>,
    pub caption: Option<String>,
    pub media_urls: Vec<String>,
    /// A carousel item: the carousel container that holds it.
    pub carousel_id: Option<String>,
}

impl GraphSim {
    pub fn new(config: SimConfig) -> Self {
        GraphSim {
            state: Arc::new(Mutex::new(State::new(config.sanitized()))),
        }
    }

    /// The Graph routes (`/{version}/…`) and the `/_sim/*` test hooks.
    pub fn router(&self) -> axum::Router {
        routes::router(self.clone())
    }

    /// Registers an account and the only token it accepts from now on. Accounts never
    /// registered accept any non-empty token.
    pub fn set_token(&self, ig_user_id: &str, token: &str) {
        self.lock()
            .tokens
            .insert(ig_user_id.to_string(), token.to_string());
    }

    /// The token the account accepts now (after refreshes and exchanges, the newest one).
    pub fn token_of(&self, ig_user_id: &str) -> Option<String> {
        self.lock().tokens.get(ig_user_id).cloned()
    }

    /// Makes the account's current token expired: every call with it, a refresh included,
    /// gets 190/463 from now on.
    pub fn expire_token(&self, ig_user_id: &str) {
        let mut state = self.lock();
        if let Some(token) = state.tokens.get(ig_user_id).cloned() {
            state.expired_tokens.insert(token);
        }
    }

    /// Everything published, in publishing order.
    pub fn published(&self) -> Vec<PublishedMedia> {
        self.lock().media.iter().map(|m| m.record.clone()).collect()
    }

    /// Every request received on a Graph path (not the `/_sim/*` hooks), in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    /// Every container created, in creation order, with its current status.
    pub fn containers(&self) -> Vec<ContainerInfo> {
        let state = self.lock();
        let now = Instant::now();
        state
            .containers
            .iter()
            .map(|c| state.container_info(c, now))
            .collect()
    }

    /// Every comment posted, as (media id, message).
    pub fn comments(&self) -> Vec<(String, String)> {
        self.lock()
            .comments
            .iter()
            .map(|c| (c.media_id.clone(), c.message.clone()))
            .collect()
    }

    /// How many times `media_publish` was called for a container that was already published.
    pub fn duplicate_publish_attempts(&self) -> u64 {
        self.lock().duplicate_publish_attempts
    }

    /// Requests carried out but answered only after the configured timeout.
    pub fn late_answers(&self) -> u64 {
        self.lock().late_answers
    }

    /// Carousel container creations among [`GraphSim::late_answers`]: made, answered late.
    pub fn late_carousel_creations(&self) -> u64 {
        self.lock().late_carousel_creations
    }

    /// The next `count` carousel container creations are carried out and answered only after
    /// the configured timeout, whatever the rates (a client with a shorter timeout gives up
    /// not knowing that the carousel exists).
    pub fn answer_carousel_creations_late(&self, count: u32) {
        self.lock().carousel_creations_to_answer_late = count;
    }

    /// Publishes by this account in the rolling 24 h window (what `quota_usage` reports).
    pub fn quota_usage(&self, ig_user_id: &str) -> u32 {
        self.lock().publishes_in_window(ig_user_id, Instant::now())
    }

    /// Forgets containers, media, comments, requests, usage and counters; keeps config and
    /// tokens (same as `POST /_sim/reset`).
    pub fn reset(&self) {
        self.lock().reset();
    }

    /// The configuration in effect (rates clamped to 0..=1).
    pub fn config(&self) -> SimConfig {
        self.lock().config.clone()
    }

    /// A panic while the lock was held must not take the whole simulator down with it.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl std::fmt::Debug for GraphSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphSim").finish_non_exhaustive()
    }
}

/// Binds 127.0.0.1:`port` (0 = any free port), serves the simulator in a spawned tokio task and
/// returns it with its base URL `http://127.0.0.1:PORT`.
pub async fn spawn(config: SimConfig, port: u16) -> std::io::Result<(GraphSim, String)> {
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    let port = listener.local_addr()?.port();
    let sim = GraphSim::new(config);
    let router = sim.router();
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, router).await {
            tracing::error!(error = %err, "graph-sim server stopped");
        }
    });
    Ok((sim, format!("http://127.0.0.1:{port}")))
}
