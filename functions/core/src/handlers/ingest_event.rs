//! ingest-event: EventBridge events and EventBridge Scheduler inputs (see
//! [`sources::eventbridge`](crate::sources::eventbridge)) through the same accept path as the
//! webhooks. The answer is the function's result: `{"post_id", "state"}`, `{"post_id",
//! "duplicate": true}` or `{"skipped": true, "reason"}`; a refused event is an error that names
//! the field, and writes nothing.

use serde_json::{Value, json};
use tracing::Instrument;

use super::accept::{accept, internal, skip};
use crate::deps::Ingest;
use crate::post::{DestState, overall_state};
use crate::sources::RequestError;
use crate::sources::eventbridge::{self, Trigger};
use crate::sources::mapped::DedupeKey;

pub async fn handle(deps: &Ingest, event: Value) -> Result<Value, RequestError> {
    let result = match eventbridge::parse(event, &deps.sources.routing)? {
        Trigger::Mapped(mapped) => accept(deps, mapped).await.map(|a| a.to_json()),
        Trigger::PublishDue { delivery, post_key, schedule_arn } => publish_due(deps, &delivery, &post_key, &schedule_arn).await,
    };
    if let Err(err) = &result {
        tracing::info!(status = err.status, code = err.code, field = ?err.field, message = %err.message, "event refused");
    }
    result
}

/// Moves the post's destinations that still wait for their time on now. Idempotent: a second
/// delivery finds nothing waiting.
async fn publish_due(deps: &Ingest, delivery: &DedupeKey, post_key: &DedupeKey, schedule_arn: &str) -> Result<Value, RequestError> {
    let now = deps.clock.now();
    let Some(post_id) = deps.store.delivered_post(&post_key.source, &post_key.event_id).await.map_err(internal)? else {
        let reason = format!("no post was made for idempotency key {}:{}", post_key.source, post_key.event_id);
        return skip(deps, delivery, reason, now).await.map(|a| a.to_json());
    };
    let span = tracing::info_span!("publish_due", post_id = %post_id, schedule = %schedule_arn);
    async move {
        let mut moved = 0;
        for mut dest in deps.store.list_destinations(&post_id).await.map_err(internal)? {
            if dest.state != DestState::Scheduled {
                continue;
            }
            let note = Some(format!("publish-due from {schedule_arn}"));
            if dest.move_to(DestState::Queued, now, note).is_ok() {
                match deps.store.save_destination(&mut dest).await {
                    Ok(()) => moved += 1,
                    // Moved by someone else meanwhile (its own start schedule): fine.
                    Err(crate::Error::Conflict(_)) => {}
                    Err(err) => return Err(internal(err)),
                }
            }
        }
        let destinations = deps.store.list_destinations(&post_id).await.map_err(internal)?;
        let state = overall_state(&destinations);
        tracing::info!(moved, state = state.as_str(), "publish-due handled");
        Ok(json!({ "post_id": post_id, "state": state, "queued_now": moved }))
    }
    .instrument(span)
    .await
}
