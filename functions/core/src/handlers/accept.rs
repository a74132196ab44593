//! The routed sources' entry to the intake (Shopify, Contentful, WordPress webhooks and the
//! infrastructure events): a mapped event is posted or skipped by
//! [`Intake::accept_mapped`]; a storage failure is a 503 that asks the sender to retry.

use time::OffsetDateTime;

use crate::deps::Ingest;
use crate::intake::{Accepted, Intake};
use crate::sources::RequestError;
use crate::sources::mapped::{DedupeKey, Mapped};
use crate::store::DELIVERY_MEMORY_SECS;

pub async fn accept(deps: &Ingest, mapped: Mapped) -> Result<Accepted, RequestError> {
    let accepted = Intake::new(deps.store.as_ref()).accept_mapped(mapped, deps.clock.now()).await;
    accepted.map_err(|refusal| refusal.into_request_error(internal))
}

/// Acknowledges without posting, and remembers why under the delivery's key.
pub async fn skip(deps: &Ingest, delivery: &DedupeKey, reason: String, now: OffsetDateTime) -> Result<Accepted, RequestError> {
    Intake::new(deps.store.as_ref()).skip(delivery, reason, DELIVERY_MEMORY_SECS, now).await.map_err(internal)
}

pub(crate) fn internal(err: crate::Error) -> RequestError {
    tracing::error!(error = %err, "could not store the event");
    RequestError::new(503, "unavailable", "the event could not be stored; nothing was kept, retry later")
}
