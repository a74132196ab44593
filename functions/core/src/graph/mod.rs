//! The Instagram Graph API publishing calls, as a port, with a reqwest client.

pub mod account_api;
mod client;
mod error;
mod metered;

pub use client::{GraphClient, usage_from_headers};
pub use metered::MeteredGraph;
pub use error::{GraphError, Reaction};

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Serialize;

use crate::account::{Account, ApiUsage};
use crate::post::{MediaItem, MediaKind, Placement, Post, UserTag};

/// Parameters of `POST /{ig-user-id}/media`, sent as a JSON body.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ContainerSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub video_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_carousel_item: bool,
    /// Carousel children, comma-separated container ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub children: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alt_text: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub collaborators: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub user_tags: Vec<UserTag>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cover_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumb_offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share_to_feed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio_name: Option<String>,
}

impl ContainerSpec {
    /// The one container of a single-item post: a feed image, a Reel (standalone VIDEO
    /// containers were retired in 2023), or a story.
    pub fn single(post: &Post) -> ContainerSpec {
        let item = &post.media[0];
        let options = &post.options;
        let (image_url, video_url) = urls(item);
        if options.placement == Placement::Story {
            // Stories take no caption, location or collaborators.
            return ContainerSpec {
                media_type: Some("STORIES"),
                image_url,
                video_url,
                user_tags: item.user_tags.clone(),
                ..Default::default()
            };
        }
        let reel = options.reel.clone().unwrap_or_default();
        ContainerSpec {
            media_type: (item.kind == MediaKind::Video).then_some("REELS"),
            image_url,
            video_url,
            caption: caption(post),
            alt_text: item.alt_text.clone().filter(|_| item.kind == MediaKind::Image),
            location_id: options.location_id.clone(),
            collaborators: options.collaborators.clone(),
            user_tags: item.user_tags.clone(),
            cover_url: reel.cover_url,
            thumb_offset: reel.thumb_offset,
            share_to_feed: reel.share_to_feed,
            audio_name: reel.audio_name,
            ..Default::default()
        }
    }

    /// One carousel item (no caption: the parent carries it).
    pub fn carousel_child(item: &MediaItem) -> ContainerSpec {
        let (image_url, video_url) = urls(item);
        let is_image = item.kind == MediaKind::Image;
        ContainerSpec {
            media_type: (!is_image).then_some("VIDEO"),
            image_url,
            video_url,
            is_carousel_item: true,
            alt_text: item.alt_text.clone().filter(|_| is_image),
            // Meta takes no user tags on carousel video children.
            user_tags: if is_image { item.user_tags.clone() } else { Vec::new() },
            ..Default::default()
        }
    }

    pub fn carousel(post: &Post, children: &[String]) -> ContainerSpec {
        ContainerSpec {
            media_type: Some("CAROUSEL"),
            caption: caption(post),
            children: Some(children.join(",")),
            location_id: post.options.location_id.clone(),
            collaborators: post.options.collaborators.clone(),
            ..Default::default()
        }
    }
}

fn urls(item: &MediaItem) -> (Option<String>, Option<String>) {
    match item.kind {
        MediaKind::Image => (Some(item.url.clone()), None),
        MediaKind::Video => (None, Some(item.url.clone())),
    }
}

fn caption(post: &Post) -> Option<String> {
    Some(post.caption.clone()).filter(|c| !c.is_empty())
}

/// The account's 24-hour publishing quota (`content_publishing_limit`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishingLimit {
    pub usage: u32,
    pub total: u32,
    /// Length of the rolling window, in seconds.
    pub window_secs: u64,
}

/// `status_code` of a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ContainerStatus {
    InProgress,
    Finished,
    Published,
    /// Processing failed; Meta's `status` text says why.
    Error(String),
    Expired,
}

/// A published media as listed by `GET /{ig-user-id}/media`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaSummary {
    pub id: String,
    pub caption: Option<String>,
    pub permalink: Option<String>,
    /// When it was published (Meta's `timestamp`, whole seconds).
    pub timestamp: Option<time::OffsetDateTime>,
}

#[async_trait]
pub trait GraphApi: Send + Sync {
    /// The usage headers of the latest answer for this account, if any was seen.
    fn latest_usage(&self, _account_id: &str) -> Option<ApiUsage> {
        None
    }
    async fn create_container(&self, account: &Account, token: &SecretString, spec: &ContainerSpec)
    -> Result<String, GraphError>;
    async fn container_status(&self, account: &Account, token: &SecretString, container_id: &str)
    -> Result<ContainerStatus, GraphError>;
    /// `media_publish`; returns the media id.
    async fn publish(&self, account: &Account, token: &SecretString, container_id: &str) -> Result<String, GraphError>;
    async fn permalink(&self, account: &Account, token: &SecretString, media_id: &str) -> Result<String, GraphError>;
    /// The account's latest media, newest first (to recover a publish whose answer was lost);
    /// stories are listed separately by Meta.
    async fn recent_media(&self, account: &Account, token: &SecretString, stories: bool)
    -> Result<Vec<MediaSummary>, GraphError>;
    async fn publishing_limit(&self, account: &Account, token: &SecretString) -> Result<PublishingLimit, GraphError>;
    /// Posts a comment on a published media; returns the comment id.
    async fn comment(&self, account: &Account, token: &SecretString, media_id: &str, message: &str)
    -> Result<String, GraphError>;
}
