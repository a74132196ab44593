//! What a routed source (Shopify, Contentful, WordPress, EventBridge) makes of a verified event:
//! its de-duplication keys, and a post request or the reason it makes none.

use crate::post::PostRequest;

/// One de-duplication key: the table item `DELIVERY#<source>#<event id>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DedupeKey {
    pub source: String,
    pub event_id: String,
}

impl DedupeKey {
    pub fn new(source: &str, event_id: impl Into<String>) -> DedupeKey {
        DedupeKey { source: source.to_string(), event_id: event_id.into() }
    }
}

/// A verified event: its own delivery key (what a retry repeats) and what to do with it.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapped {
    pub delivery: DedupeKey,
    pub outcome: Outcome,
}

// One short-lived value per request: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Post this. `also` are content keys claimed with the delivery in the same transaction
    /// (a product, an entry revision, a blog post), so another delivery of the same content
    /// finds the post already made.
    Post { request: PostRequest, route: String, also: Vec<DedupeKey> },
    /// Acknowledge (so the sender does not retry) and record why nothing is posted.
    Skip(String),
}
