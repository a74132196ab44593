//! The accept path of the routed sources (Shopify, Contentful, WordPress webhooks and the
//! infrastructure events): checks the mapped post request, then stores the post together with
//! every de-duplication key that names it — or records why the event made no post.

use serde_json::{Value, json};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::deps::Ingest;
use crate::post::{Post, PostState, overall_state};
use crate::sources::routed::{DedupeKey, Mapped, Outcome};
use crate::sources::{RequestError, validate};
use crate::store::{Created, DELIVERY_MEMORY_SECS, Delivery, Skipped};

/// What became of an accepted event.
#[derive(Clone, Debug, PartialEq)]
pub enum Accepted {
    Posted { post_id: String, state: PostState },
    /// This delivery, or another one of the same content, made that post already.
    Duplicate { post_id: String },
    /// Acknowledged, recorded, not posted.
    Skipped { reason: String },
}

impl Accepted {
    /// 202 for a post (new or known), 200 for an event that is acknowledged and skipped.
    pub fn status(&self) -> u16 {
        match self {
            Accepted::Posted { .. } | Accepted::Duplicate { .. } => 202,
            Accepted::Skipped { .. } => 200,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Accepted::Posted { post_id, state } => json!({ "post_id": post_id, "state": state }),
            Accepted::Duplicate { post_id } => json!({ "post_id": post_id, "duplicate": true }),
            Accepted::Skipped { reason } => json!({ "skipped": true, "reason": reason }),
        }
    }
}

pub async fn accept(deps: &Ingest, mapped: Mapped) -> Result<Accepted, RequestError> {
    let Mapped { delivery, outcome } = mapped;
    let now = deps.clock.now();
    let (request, route, also) = match outcome {
        Outcome::Skip(reason) => return skip(deps, &delivery, reason, now).await,
        Outcome::Post { request, route, also } => (request, route, also),
    };
    validate(&request)?;
    for account in &request.accounts {
        if deps.store.get_account(account).await.map_err(internal)?.is_none() {
            // The routing's mistake, not the sender's: acknowledge (a refusal would only be
            // retried, and Shopify drops subscriptions that keep failing) and say why.
            let reason = format!("Instagram account {account} ({route}) is not registered with instapipe");
            return skip(deps, &delivery, reason, now).await;
        }
    }
    let post = Post::new(ulid::Ulid::new().to_string(), &delivery.source, &delivery.event_id, request, now);
    let span = tracing::info_span!("ingest", post_id = %post.post_id, source = %delivery.source, %route, state = tracing::field::Empty);
    async move {
        let destinations = post.destinations(now);
        let expires_at = now.unix_timestamp() + DELIVERY_MEMORY_SECS;
        let deliveries: Vec<Delivery> = std::iter::once(&delivery)
            .chain(&also)
            .map(|key| Delivery { source: key.source.clone(), event_id: key.event_id.clone(), post_id: post.post_id.clone(), expires_at })
            .collect();
        match deps.store.create_post_claiming(&deliveries, &post, &destinations).await.map_err(internal)? {
            Created::New => {
                let state = overall_state(&destinations);
                tracing::Span::current().record("state", state.as_str());
                tracing::info!(accounts = destinations.len(), publish_at = ?post.publish_at, "post accepted");
                Ok(Accepted::Posted { post_id: post.post_id.clone(), state })
            }
            Created::Duplicate { post_id } => {
                tracing::info!(%post_id, "this content was posted before; nothing new stored");
                // Says on this delivery which post it repeats (a no-op for a plain retry).
                let reason = format!("already posted as {post_id}");
                record(deps, &delivery, reason, now).await?;
                Ok(Accepted::Duplicate { post_id })
            }
        }
    }
    .instrument(span)
    .await
}

/// Acknowledges without posting, and remembers why under the delivery's key.
pub async fn skip(deps: &Ingest, delivery: &DedupeKey, reason: String, now: OffsetDateTime) -> Result<Accepted, RequestError> {
    tracing::info!(source = %delivery.source, event_id = %delivery.event_id, %reason, "event skipped");
    record(deps, delivery, reason.clone(), now).await?;
    Ok(Accepted::Skipped { reason })
}

async fn record(deps: &Ingest, delivery: &DedupeKey, reason: String, now: OffsetDateTime) -> Result<(), RequestError> {
    let skipped = Skipped {
        source: delivery.source.clone(),
        event_id: delivery.event_id.clone(),
        reason,
        at: now,
        expires_at: now.unix_timestamp() + DELIVERY_MEMORY_SECS,
    };
    deps.store.record_skipped(&skipped).await.map_err(internal)
}

pub(crate) fn internal(err: crate::Error) -> RequestError {
    tracing::error!(error = %err, "could not store the event");
    RequestError::new(503, "unavailable", "the event could not be stored; nothing was kept, retry later")
}
