//! The JSON shape of a post in the posts API (openapi.yaml, schema `Post`): the overall state
//! derived from its destinations, and per account what a user checks.

use serde::Serialize;
use time::OffsetDateTime;

use crate::post::{
    DestState, Destination, Failure, MediaItem, OrphanedContainer, Post, PostOptions, PostState, StateChange, overall_state,
};

#[derive(Debug, Serialize)]
pub struct PostView {
    pub post_id: String,
    pub state: PostState,
    pub source: String,
    pub caption: String,
    pub media: Vec<MediaItem>,
    pub options: PostOptions,
    #[serde(with = "time::serde::rfc3339::option")]
    pub publish_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    pub destinations: Vec<DestinationView>,
}

#[derive(Debug, Serialize)]
pub struct DestinationView {
    pub account_id: String,
    pub state: DestState,
    pub container_id: Option<String>,
    pub media_id: Option<String>,
    pub permalink: Option<String>,
    pub failure: Option<Failure>,
    /// Containers left behind by retries (never published; they expire after 24 h).
    pub orphaned_containers: Vec<OrphanedContainer>,
    pub history: Vec<StateChange>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl PostView {
    pub fn new(post: Post, destinations: Vec<Destination>) -> PostView {
        PostView {
            state: overall_state(&destinations),
            post_id: post.post_id,
            source: post.source,
            caption: post.caption,
            media: post.media,
            options: post.options,
            // Times are shown in UTC, whatever offset the request used.
            publish_at: post.publish_at.map(|at| at.to_offset(time::UtcOffset::UTC)),
            created_at: post.created_at,
            destinations: destinations.into_iter().map(DestinationView::from).collect(),
        }
    }
}

impl From<Destination> for DestinationView {
    fn from(d: Destination) -> DestinationView {
        DestinationView {
            account_id: d.account_id,
            state: d.state,
            container_id: d.container_id,
            media_id: d.media_id,
            permalink: d.permalink,
            failure: d.failure,
            orphaned_containers: d.orphaned_containers,
            history: d.history,
            updated_at: d.updated_at,
        }
    }
}
