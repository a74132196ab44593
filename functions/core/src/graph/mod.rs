//! The Instagram Graph API publishing calls, as a port, with a reqwest client.

mod client;
mod error;

pub use client::GraphClient;
pub use error::{GraphError, Reaction};

use async_trait::async_trait;
use secrecy::SecretString;
use serde::Serialize;

use crate::account::Account;
use crate::post::{MediaKind, Post};

/// Parameters of `POST /{ig-user-id}/media`.
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
}

impl ContainerSpec {
    /// A feed image, or a Reel for a video (standalone VIDEO containers were retired in 2023).
    pub fn for_post(post: &Post) -> ContainerSpec {
        let item = &post.media[0];
        let caption = Some(post.caption.clone()).filter(|c| !c.is_empty());
        match item.kind {
            MediaKind::Image => ContainerSpec { image_url: Some(item.url.clone()), caption, ..Default::default() },
            MediaKind::Video => ContainerSpec {
                media_type: Some("REELS"),
                video_url: Some(item.url.clone()),
                caption,
                ..Default::default()
            },
        }
    }
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
}

#[async_trait]
pub trait GraphApi: Send + Sync {
    async fn create_container(&self, account: &Account, token: &SecretString, spec: &ContainerSpec)
    -> Result<String, GraphError>;
    async fn container_status(&self, account: &Account, token: &SecretString, container_id: &str)
    -> Result<ContainerStatus, GraphError>;
    /// `media_publish`; returns the media id.
    async fn publish(&self, account: &Account, token: &SecretString, container_id: &str) -> Result<String, GraphError>;
    async fn permalink(&self, account: &Account, token: &SecretString, media_id: &str) -> Result<String, GraphError>;
    /// The account's latest media, newest first (to recover a publish whose answer was lost).
    async fn recent_media(&self, account: &Account, token: &SecretString) -> Result<Vec<MediaSummary>, GraphError>;
}
