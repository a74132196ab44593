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
use crate::route_secrets::RouteSecretId;
use crate::routing::RouteSource;
use crate::sources::mapped::{DedupeKey, Outcome};
use crate::sources::routed::unusable_secret;
use crate::sources::standard_webhooks::StandardWebhookVerifier;

pub async fn handle(deps: &Ingest, event: Value) -> Result<Value, RequestError> {
    let result = async {
        let allowed = verify(deps, &event).await?;
        match eventbridge::parse(event, &deps.sources.routing)? {
            Trigger::Mapped(mapped) => {
                if let (Some(allowed), Outcome::Post { request, route, .. }) = (&allowed, &mapped.outcome) {
                    within_route(&request.accounts, allowed, route)?;
                }
                accept(deps, mapped).await.map(|a| a.to_json())
            }
            Trigger::PublishDue { delivery, post_key, schedule_arn } => publish_due(deps, &delivery, &post_key, &schedule_arn).await,
        }
    }
    .await;
    if let Err(err) = &result {
        tracing::info!(status = err.status, code = err.code, field = ?err.field, message = %err.message, "event refused");
    }
    result
}

/// A `Publish Requested` event whose source's route has secrets of its own must carry a
/// signature made with one of them (`detail.signature`, see [`eventbridge::signed_message`]),
/// and then may post only to that route's accounts (returned). A route without secrets of its
/// own takes unsigned events, trusted by IAM as before (migration; warned at start-up). Once
/// any EventBridge route has secrets, a source no route names is refused like a bad signature.
async fn verify(deps: &Ingest, event: &Value) -> Result<Option<Vec<String>>, RequestError> {
    let Some((source, detail)) = eventbridge::claim(event) else { return Ok(None) };
    let sources = &deps.sources;
    let signature = detail.get("signature").and_then(Value::as_str).unwrap_or_default();
    let check = |secrets: &str| {
        StandardWebhookVerifier::new(secrets).map_err(unusable_secret)?.verify_message(&eventbridge::signed_message(source, detail), signature)
    };
    let own = |tenant: &str| {
        let id = RouteSecretId::new(RouteSource::Eventbridge, tenant);
        async move { sources.route_secrets.secrets(&id).await.map(|d| d.is_some()) }
    };
    let unavailable = |err: crate::Error| {
        tracing::error!(error = %err, "could not read a route's signing secrets");
        RequestError::new(503, "unavailable", "the signing secrets could not be read; nothing was kept, retry later")
    };
    match sources.routing.eventbridge(source) {
        Some(route) if own(&route.tenant).await.map_err(unavailable)? => {
            sources.verify(RouteSource::Eventbridge, Some(&route.tenant), check).await?;
            Ok(Some(route.accounts.clone()))
        }
        Some(_) => Ok(None),
        None => {
            for route in sources.routing.routes().iter().filter(|r| r.source == RouteSource::Eventbridge) {
                if own(&route.tenant).await.map_err(unavailable)? {
                    sources.verify(RouteSource::Eventbridge, None, check).await?;
                }
            }
            Ok(None)
        }
    }
}

fn within_route(accounts: &[String], allowed: &[String], route: &str) -> Result<(), RequestError> {
    match accounts.iter().enumerate().find(|(_, a)| !allowed.contains(a)) {
        None => Ok(()),
        Some((i, account)) => Err(RequestError::field(
            403,
            "account_not_in_route",
            format!("detail.post.accounts[{i}]"),
            format!("account {account} is not one of the accounts of {route}"),
        )),
    }
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
