//! Infrastructure triggers, delivered to the ingest-event function (IAM-authenticated, no HMAC):
//!
//! - an **EventBridge event** with `detail-type` `Publish Requested` (routed by the event's
//!   `source`; detail schema below), from any bus rule;
//! - an **EventBridge Scheduler** input (a recurring or one-time schedule targeting the function)
//!   of kind `post`, carrying a post request in `/webhooks/generic`'s format;
//! - a Scheduler input of kind `publish-due`, which publishes now a post made earlier.
//!
//! ```json
//! {"detail-type": "Publish Requested", "source": "com.example.cms-bridge", "id": "…",
//!  "detail": {"schemaVersion": 1,
//!             "idempotencyKey": "contentful:exmpl0space1:master:2fTqXw9Lr4cVn8bHmJ1kZe:3",
//!             "origin": {"system": "contentful", …},
//!             "post": {"caption": "…", "media": [{"type": "IMAGE", "url": "https://…"}],
//!                      "link": "https://…", "publishAt": "2026-11-21T17:00:00Z",
//!                      "accounts": ["1784…"]}}}
//! {"kind": "post", "scheduleArn": "<aws.scheduler.schedule-arn>",
//!  "scheduledTime": "<aws.scheduler.scheduled-time>", "post": {"caption": "…", "media": […], "accounts": […]}}
//! {"kind": "publish-due", "idempotencyKey": "contentful:…:3", "scheduleArn": "…", "scheduledTime": "…"}
//! ```
//! `idempotencyKey` is `<source>:<key>` in the de-duplication keys of that source, so an event
//! about a Contentful revision and that revision's webhook make one post. `post.accounts` is
//! optional when a route for the event's source names them. Scheduler inputs are de-duplicated
//! on schedule ARN + scheduled time (never on the per-attempt execution id).

use serde::Deserialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::RequestError;
use super::mapped::{DedupeKey, Mapped, Outcome};
use super::text::fit_caption;
use crate::post::{MediaItem, MediaKind, PostRequest};
use crate::routing::{MediaChoice, Routing};

pub const SOURCE: &str = "eventbridge";
pub const SCHEDULER_SOURCE: &str = "scheduler";
pub const DETAIL_TYPE: &str = "Publish Requested";
pub const SCHEMA_VERSION: u32 = 1;
const MAX_KEY_CHARS: usize = 512;
const MAX_ITEMS: usize = 10;

/// What an infrastructure event asks for.
// One short-lived value per event: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub enum Trigger {
    /// Make a post (or skip), like a webhook.
    Mapped(Mapped),
    /// Publish now the post that `post_key` made, if it is still waiting for its time.
    PublishDue { delivery: DedupeKey, post_key: DedupeKey, schedule_arn: String },
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Envelope {
    id: String,
    detail_type: String,
    source: String,
    #[serde(default)]
    detail: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PublishRequested {
    schema_version: u32,
    idempotency_key: String,
    /// The route's signature (see [`signed_message`]); checked before parsing, not used after.
    #[serde(default)]
    #[allow(dead_code)]
    signature: Option<String>,
    /// Where the request came from (free-form, for people reading the event).
    #[serde(default)]
    #[allow(dead_code)]
    origin: Option<Value>,
    post: EventPost,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EventPost {
    #[serde(default)]
    caption: String,
    media: Vec<EventMedia>,
    #[serde(default)]
    link: Option<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    publish_at: Option<OffsetDateTime>,
    #[serde(default)]
    accounts: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EventMedia {
    #[serde(rename = "type")]
    kind: EventMediaKind,
    url: String,
    #[serde(default)]
    alt_text: Option<String>,
}

#[derive(Deserialize)]
enum EventMediaKind {
    #[serde(rename = "IMAGE", alias = "image")]
    Image,
    #[serde(rename = "VIDEO", alias = "video")]
    Video,
}

#[derive(Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum SchedulerInput {
    #[serde(rename_all = "camelCase")]
    Post { schedule_arn: String, scheduled_time: String, post: Value },
    #[serde(rename_all = "camelCase")]
    PublishDue { idempotency_key: String, schedule_arn: String, scheduled_time: String },
}

/// A `Publish Requested` event's claim: its `source` (the route's tenant) and its detail.
pub fn claim(event: &Value) -> Option<(&str, &Value)> {
    if event.get("detail-type")?.as_str()? != DETAIL_TYPE {
        return None;
    }
    Some((event.get("source")?.as_str()?, event.get("detail")?))
}

/// What an EventBridge route's secret signs: `<source>.<detail>`, the detail without its
/// `signature` member as canonical JSON (object keys sorted, no spaces; Python's
/// `json.dumps(detail, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`), so a
/// producer signs what it puts and the bus may re-serialise the event freely.
pub fn signed_message(source: &str, detail: &Value) -> Vec<u8> {
    let mut out = format!("{source}.").into_bytes();
    let mut detail = detail.clone();
    if let Value::Object(fields) = &mut detail {
        fields.remove("signature");
    }
    canonical(&detail, &mut out);
    out
}

fn canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(fields) => {
            let mut names: Vec<&String> = fields.keys().collect();
            names.sort();
            out.push(b'{');
            for (i, name) in names.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(serde_json::to_vec(name).expect("a string serializes"));
                out.push(b':');
                canonical(&fields[name], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical(item, out);
            }
            out.push(b']');
        }
        scalar => out.extend(serde_json::to_vec(scalar).expect("a JSON value serializes")),
    }
}

/// Signs a detail for `source` with a `whsec_` secret: the value of its `signature` member.
pub fn sign(secret: &str, source: &str, detail: &Value) -> Result<String, crate::Error> {
    Ok(super::standard_webhooks::StandardWebhookVerifier::new(secret)?.sign_message(&signed_message(source, detail)))
}

/// Reads an event delivered to ingest-event: an EventBridge envelope or a Scheduler input.
pub fn parse(event: Value, routing: &Routing) -> Result<Trigger, RequestError> {
    if event.get("detail-type").is_some() {
        let envelope: Envelope = super::json::from_value(event, "event")?;
        return event_trigger(envelope, routing).map(Trigger::Mapped);
    }
    if event.get("kind").is_none() {
        return Err(RequestError::new(400, "invalid_body", "neither an EventBridge event (detail-type) nor a Scheduler input (kind)"));
    }
    match super::json::from_value::<SchedulerInput>(event, "input")? {
        SchedulerInput::Post { schedule_arn, scheduled_time, post } => {
            let delivery = DedupeKey::new(SCHEDULER_SOURCE, format!("{schedule_arn}@{scheduled_time}"));
            let body = serde_json::to_vec(&post).expect("a JSON value serializes");
            let request = super::generic::parse(&body).map_err(|e| RequestError {
                field: Some(e.field.map_or("post".to_string(), |f| format!("post.{f}"))),
                ..e
            })?;
            let outcome = Outcome::Post { request, route: format!("schedule {schedule_arn}"), also: Vec::new() };
            Ok(Trigger::Mapped(Mapped { delivery, outcome }))
        }
        SchedulerInput::PublishDue { idempotency_key, schedule_arn, scheduled_time } => Ok(Trigger::PublishDue {
            delivery: DedupeKey::new(SCHEDULER_SOURCE, format!("{schedule_arn}@{scheduled_time}")),
            post_key: idempotency(&idempotency_key, "input.idempotencyKey")?,
            schedule_arn,
        }),
    }
}

fn event_trigger(envelope: Envelope, routing: &Routing) -> Result<Mapped, RequestError> {
    if envelope.detail_type != DETAIL_TYPE {
        let delivery = DedupeKey::new(SOURCE, envelope.id);
        let reason = format!("detail-type {} is not handled (only {DETAIL_TYPE})", envelope.detail_type);
        return Ok(Mapped { delivery, outcome: Outcome::Skip(reason) });
    }
    let detail: PublishRequested = super::json::from_value(envelope.detail, "detail")?;
    if detail.schema_version != SCHEMA_VERSION {
        return Err(RequestError::field(
            422,
            "invalid_field",
            "detail.schemaVersion",
            format!("schema version {} is not supported (only {SCHEMA_VERSION})", detail.schema_version),
        ));
    }
    let delivery = idempotency(&detail.idempotency_key, "detail.idempotencyKey")?;
    let post = detail.post;
    let route = routing.eventbridge(&envelope.source);
    let accounts = match (post.accounts, route) {
        (Some(accounts), _) => accounts,
        (None, Some(route)) => route.accounts.clone(),
        (None, None) => {
            let reason = format!("no route for EventBridge source {} and the event names no accounts", envelope.source);
            return Ok(Mapped { delivery, outcome: Outcome::Skip(reason) });
        }
    };
    let take = match route.map(|r| r.media) {
        Some(MediaChoice::First) => 1,
        Some(MediaChoice::All) | None => MAX_ITEMS,
    };
    let media = post
        .media
        .into_iter()
        .take(take)
        .map(|m| {
            let kind = match m.kind {
                EventMediaKind::Image => MediaKind::Image,
                EventMediaKind::Video => MediaKind::Video,
            };
            MediaItem { alt_text: m.alt_text, ..MediaItem::new(m.url, kind) }
        })
        .collect();
    let caption = match route {
        Some(route) => route.caption.render(|name| match name {
            "caption" => Some(post.caption.clone()),
            "link" => post.link.clone(),
            _ => None,
        }),
        None => post.caption,
    };
    let request = PostRequest { caption: fit_caption(caption), media, accounts, publish_at: post.publish_at, ..PostRequest::default() };
    let route = route.map_or_else(|| format!("EventBridge source {}", envelope.source), |r| r.name.clone());
    Ok(Mapped { delivery, outcome: Outcome::Post { request, route, also: Vec::new() } })
}

/// `contentful:space:env:entry:rev` → the key `contentful` / `space:env:entry:rev`.
fn idempotency(key: &str, field: &str) -> Result<DedupeKey, RequestError> {
    if key.trim().is_empty() || key.chars().count() > MAX_KEY_CHARS || key.chars().any(char::is_control) {
        return Err(RequestError::field(422, "invalid_field", field, format!("must be 1 to {MAX_KEY_CHARS} printable characters")));
    }
    Ok(match key.split_once(':') {
        Some((source, rest)) if !source.is_empty() && !rest.is_empty() => DedupeKey::new(source, rest),
        _ => DedupeKey::new(SOURCE, key),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::fixtures;
    use time::macros::datetime;

    const ACCOUNT: &str = "17841400000000001";

    fn routing(media: &str) -> Routing {
        let doc = serde_json::json!({"routes": [{"source": "eventbridge", "event_source": "com.example.cms-bridge",
            "accounts": [ACCOUNT], "media": media, "caption": "{caption}\n{link}"}]});
        Routing::from_json(Some(&doc.to_string())).unwrap()
    }

    #[test]
    fn a_publish_requested_event_shares_the_contentful_revision_key() {
        let trigger = parse(fixtures::json("eventbridge-publish-requested"), &routing("all")).unwrap();
        let Trigger::Mapped(Mapped { delivery, outcome: Outcome::Post { request, route, .. } }) = trigger else { panic!("{trigger:?}") };
        assert_eq!(delivery, DedupeKey::new("contentful", "demo0space7:master:5kPqRsTuVwXyZaBcDeFgHi:5"));
        assert_eq!(route, "routes[0] (eventbridge com.example.cms-bridge)");
        assert_eq!(request.accounts, [ACCOUNT]);
        assert_eq!(request.media.len(), 2);
        assert_eq!(request.media[1].url, "https://images.example.com/demo0space7/4mNbVcXzLkJhGfDsAqW002/autumn-shelf.jpg");
        assert!(request.caption.ends_with("#autumnreads\nhttps://www.example.com/reading/autumn"), "{}", request.caption);
        assert_eq!(request.publish_at, Some(datetime!(2026-10-15 16:30 UTC)));

        let Trigger::Mapped(Mapped { outcome: Outcome::Post { request, .. }, .. }) =
            parse(fixtures::json("eventbridge-publish-requested"), &routing("first")).unwrap()
        else {
            panic!()
        };
        assert_eq!(request.media.len(), 1);
    }

    #[test]
    fn unrouted_events_without_accounts_and_other_detail_types_are_skipped() {
        let Trigger::Mapped(mapped) = parse(fixtures::json("eventbridge-publish-requested"), &Routing::default()).unwrap() else { panic!() };
        assert_eq!(mapped.outcome, Outcome::Skip("no route for EventBridge source com.example.cms-bridge and the event names no accounts".into()));

        let mut event = fixtures::json("eventbridge-publish-requested");
        event["detail"]["post"]["accounts"] = serde_json::json!([ACCOUNT]);
        let Trigger::Mapped(mapped) = parse(event, &Routing::default()).unwrap() else { panic!() };
        assert!(matches!(mapped.outcome, Outcome::Post { ref request, .. } if request.accounts == [ACCOUNT]));

        let mut event = fixtures::json("eventbridge-publish-requested");
        event["detail-type"] = "Scheduled Event".into();
        let Trigger::Mapped(mapped) = parse(event, &routing("all")).unwrap() else { panic!() };
        assert_eq!(mapped.delivery, DedupeKey::new(SOURCE, "2d4f6a8c-1b3e-4c5d-8e7f-9a0b1c2d3e4f"));
        assert!(matches!(mapped.outcome, Outcome::Skip(ref r) if r.contains("Scheduled Event")));
    }

    #[test]
    fn a_scheduler_input_is_a_post_request_or_a_publish_due() {
        let input = serde_json::json!({"kind": "post", "scheduleArn": "arn:aws:scheduler:eu-west-1:1:schedule/g/weekly",
            "scheduledTime": "2026-11-23T09:00:00Z",
            "post": {"caption": "Monday menu", "media": [{"url": "https://cdn.example.com/m.jpg", "type": "image"}], "accounts": [ACCOUNT]}});
        let Trigger::Mapped(Mapped { delivery, outcome: Outcome::Post { request, .. } }) = parse(input, &Routing::default()).unwrap() else { panic!() };
        assert_eq!(delivery, DedupeKey::new(SCHEDULER_SOURCE, "arn:aws:scheduler:eu-west-1:1:schedule/g/weekly@2026-11-23T09:00:00Z"));
        assert_eq!(request.caption, "Monday menu");

        let trigger = parse(fixtures::json("eventbridge-scheduler-publish-due"), &Routing::default()).unwrap();
        assert_eq!(
            trigger,
            Trigger::PublishDue {
                delivery: DedupeKey::new(
                    SCHEDULER_SOURCE,
                    "arn:aws:scheduler:eu-central-1:210987654321:schedule/instapipe-posts/post-5kPqRsTuVwXyZaBcDeFgHi-r5@2026-10-15T16:30:00Z"
                ),
                post_key: DedupeKey::new("contentful", "demo0space7:master:5kPqRsTuVwXyZaBcDeFgHi:5"),
                schedule_arn: "arn:aws:scheduler:eu-central-1:210987654321:schedule/instapipe-posts/post-5kPqRsTuVwXyZaBcDeFgHi-r5".into(),
            }
        );
    }

    #[test]
    fn the_signature_covers_source_and_detail_in_any_key_order() {
        const SECRET: &str = "whsec_c29tZS1ldmVudGJyaWRnZS1yb3V0ZS1zZWNyZXQ=";
        let event = fixtures::json("eventbridge-publish-requested");
        let (source, detail) = claim(&event).unwrap();
        let signature = sign(SECRET, source, detail).unwrap();
        let verifier = super::super::standard_webhooks::StandardWebhookVerifier::new(SECRET).unwrap();
        // The detail as Python writes it, keys sorted: the same message.
        let reordered: Value = serde_json::from_str(&serde_json::to_string(detail).unwrap()).unwrap();
        let mut signed = reordered.clone();
        signed["signature"] = signature.clone().into();
        verifier.verify_message(&signed_message(source, &signed), &signature).unwrap();
        let message = String::from_utf8(signed_message(source, &signed)).unwrap();
        assert!(message.starts_with("com.example.cms-bridge.{\"idempotencyKey\":"), "{message}");
        assert!(!message.contains("signature"));
        // Another source, or another caption, is another message.
        assert!(verifier.verify_message(&signed_message("com.other", &signed), &signature).is_err());
        let mut edited = signed.clone();
        edited["post"]["caption"] = "changed".into();
        assert!(verifier.verify_message(&signed_message(source, &edited), &signature).is_err());
        // A signed event still parses.
        let mut event = event.clone();
        event["detail"] = signed;
        assert!(parse(event, &routing("all")).is_ok());
    }

    #[test]
    fn schema_violations_name_the_field() {
        let field = |event: Value| parse(event, &routing("all")).unwrap_err().field;
        let mut event = fixtures::json("eventbridge-publish-requested");
        event["detail"]["post"]["media"][0]["type"] = "GIF".into();
        assert_eq!(field(event).as_deref(), Some("detail.post.media[0].type"));
        let mut event = fixtures::json("eventbridge-publish-requested");
        event["detail"]["schemaVersion"] = 2.into();
        assert_eq!(field(event).as_deref(), Some("detail.schemaVersion"));
        let mut event = fixtures::json("eventbridge-publish-requested");
        event["detail"]["idempotencyKey"] = "".into();
        assert_eq!(field(event).as_deref(), Some("detail.idempotencyKey"));
        let mut event = fixtures::json("eventbridge-publish-requested");
        event["detail"]["colour"] = 1.into();
        assert!(parse(event, &routing("all")).unwrap_err().message.contains("unknown field `colour`"));
        let input = serde_json::json!({"kind": "post", "scheduleArn": "a", "scheduledTime": "t",
            "post": {"media": [{"url": "http://x.example/a.jpg", "type": "image"}], "accounts": [ACCOUNT]}});
        let e = parse(input, &routing("all")).unwrap_err();
        assert_eq!((e.status, e.field.as_deref()), (422, Some("post.media[0].url")));
        assert_eq!(parse(serde_json::json!({"kind": "sweep"}), &routing("all")).unwrap_err().status, 400);
        assert_eq!(parse(serde_json::json!([1, 2]), &routing("all")).unwrap_err().status, 400);
    }
}
