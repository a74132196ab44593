//! notify: fed by the stream when a destination becomes PUBLISHED or FAILED. Counts it as a
//! metric (the failed-posts alarm watches it), sends the signed `post.published` /
//! `post.failed` status webhook with retries and backoff, and records the delivery beside the
//! destination. A delivered event is never sent again; one that failed every try of this
//! invocation is handed back to the stream, which retries it and finally dead-letters it.

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use tracing::Instrument;

use super::stream::{self, DestinationKey};
use crate::deps::Notify;
use crate::error::{Error, Result};
use crate::metrics;
use crate::post::DestState;
use crate::status_webhooks::{self, Delivery, StatusEvent};
use crate::store::NotificationRecord;

pub type StreamEvent = Event;

pub async fn handle(deps: &Notify, event: Event) -> DynamoDbEventResponse {
    stream::for_each_destination(event, |key| notify(deps, key)).await
}

pub async fn notify(deps: &Notify, key: DestinationKey) -> Result<()> {
    let span = tracing::info_span!("notify", post_id = %key.post_id, account_id = %key.account_id);
    async move {
        let Some(dest) = deps.store.get_destination(&key.post_id, &key.account_id).await? else {
            return Ok(());
        };
        let Some(event_type) = status_webhooks::event_type(dest.state) else {
            return Ok(()); // not final (a stale record): nothing to tell
        };
        let previous = deps.log.get_notification(&key.post_id, &key.account_id, event_type).await?;
        if previous.is_none() {
            // First sight of this outcome: count it once, whatever the webhook does.
            let metric = if dest.state == DestState::Failed { metrics::DESTINATIONS_FAILED } else { metrics::DESTINATIONS_PUBLISHED };
            metrics::count(metric, 1);
        }
        if previous.as_ref().is_some_and(|p| p.delivered) {
            tracing::debug!(event_type, "already delivered");
            return Ok(());
        }
        let Some(target) = &deps.target else {
            tracing::debug!("no STATUS_WEBHOOK_URL configured; nothing sent");
            return Ok(());
        };
        let post = deps.store.get_post(&key.post_id).await?;
        let body = serde_json::to_string(&StatusEvent::new(event_type, &dest, post.as_ref()))
            .map_err(|e| Error::Data(e.to_string()))?;
        let webhook_id = status_webhooks::webhook_id(&dest, event_type);
        let mut record = previous.unwrap_or_else(|| NotificationRecord {
            post_id: dest.post_id.clone(),
            account_id: dest.account_id.clone(),
            event_type: event_type.to_string(),
            webhook_id: webhook_id.clone(),
            delivered: false,
            attempts: 0,
            http_status: None,
            last_error: None,
            updated_at: deps.clock.now(),
        });
        for attempt in 0..deps.attempts {
            if attempt > 0 {
                tokio::time::sleep(deps.backoff * 2u32.saturating_pow(attempt - 1)).await;
            }
            let timestamp = deps.clock.now().unix_timestamp();
            let headers = [
                ("webhook-id", webhook_id.clone()),
                ("webhook-timestamp", timestamp.to_string()),
                ("webhook-signature", target.signer.sign(&webhook_id, timestamp, body.as_bytes())),
            ];
            let delivery = deps.transport.post(&target.url, &headers, &body).await;
            record.attempts += 1;
            record.updated_at = deps.clock.now();
            match delivery {
                Delivery::Answered(status) if (200..300).contains(&status) => {
                    record.delivered = true;
                    record.http_status = Some(status);
                    record.last_error = None;
                    deps.log.put_notification(&record).await?;
                    tracing::info!(event_type, status, attempts = record.attempts, "status webhook delivered");
                    return Ok(());
                }
                Delivery::Answered(status) => {
                    record.http_status = Some(status);
                    record.last_error = Some(format!("the receiver answered HTTP {status}"));
                }
                Delivery::Unreachable(why) => {
                    record.http_status = None;
                    record.last_error = Some(why);
                }
            }
            tracing::info!(event_type, attempt = record.attempts, error = record.last_error.as_deref().unwrap_or(""), "status webhook not delivered");
        }
        deps.log.put_notification(&record).await?;
        metrics::count(metrics::STATUS_WEBHOOKS_UNDELIVERED, 1);
        let why = record.last_error.unwrap_or_default();
        tracing::warn!(event_type, attempts = record.attempts, error = %why, "status webhook undelivered; the stream retries it");
        Err(Error::Data(format!("status webhook {event_type} undelivered after {} tries: {why}", record.attempts)))
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use async_trait::async_trait;
    use time::OffsetDateTime;
    use time::macros::datetime;

    use super::*;
    use crate::clock::FixedClock;
    use crate::deps::StatusWebhookTarget;
    use crate::post::{Failure, MediaItem, MediaKind, Post, PostRequest};
    use crate::status_webhooks::{StatusWebhookSigner, WebhookTransport};
    use crate::store::{Created, Delivery as Received, MemoryStore, NotificationLog, PostStore};

    const NOW: OffsetDateTime = datetime!(2026-11-23 10:00 UTC);
    const SECRET: &str = "whsec_dGVzdC1zZWNyZXQtc3RhdHVzLXdlYmhvb2tzLTAx";

    /// Headers and body of one request the receiver got.
    type Request = (Vec<(String, String)>, String);

    /// A receiver that answers from a script and keeps what it got.
    #[derive(Default)]
    struct Receiver {
        answers: Mutex<Vec<Delivery>>,
        got: Mutex<Vec<Request>>,
    }

    #[async_trait]
    impl WebhookTransport for Receiver {
        async fn post(&self, _url: &str, headers: &[(&str, String)], body: &str) -> Delivery {
            let headers = headers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            self.got.lock().unwrap().push((headers, body.to_string()));
            let mut answers = self.answers.lock().unwrap();
            if answers.is_empty() { Delivery::Answered(204) } else { answers.remove(0) }
        }
    }

    async fn world(state: DestState) -> (Notify, Arc<MemoryStore>, Arc<Receiver>) {
        let store = Arc::new(MemoryStore::default());
        let request = PostRequest {
            caption: "Autumn".into(),
            media: vec![MediaItem::new("https://cdn.example.com/a.jpg", MediaKind::Image)],
            accounts: vec!["A1".into()],
            ..PostRequest::default()
        };
        let post = Post::new("P1".into(), "wordpress", "evt_9", request, NOW);
        let mut dests = post.destinations(NOW);
        let delivery = Received { source: "wordpress".into(), event_id: "evt_9".into(), post_id: "P1".into(), expires_at: Some(0), fingerprint: None };
        assert_eq!(store.create_post(&delivery, &post, &dests).await.unwrap(), Created::New);
        let d = &mut dests[0];
        d.state = state;
        d.media_id = Some("M1".into());
        d.permalink = Some("https://www.instagram.com/p/M1/".into());
        if state == DestState::Failed {
            d.failure = Some(Failure { reason: "publishing: spam".into(), code: Some(4), subcode: Some(2207051), fbtrace_id: None });
        }
        store.save_destination(d).await.unwrap();
        let receiver = Arc::new(Receiver::default());
        let deps = Notify {
            store: store.clone(),
            log: store.clone(),
            transport: receiver.clone(),
            clock: Arc::new(FixedClock(NOW)),
            target: Some(StatusWebhookTarget { url: "https://cms.example.com/hooks".into(), signer: StatusWebhookSigner::new(SECRET).unwrap() }),
            attempts: 3,
            backoff: Duration::from_millis(1),
        };
        (deps, store, receiver)
    }

    fn key() -> DestinationKey {
        DestinationKey { post_id: "P1".into(), account_id: "A1".into() }
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
        headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap()
    }

    #[tokio::test]
    async fn a_published_destination_sends_one_signed_event_that_verifies() {
        let (deps, store, receiver) = world(DestState::Published).await;
        notify(&deps, key()).await.unwrap();
        notify(&deps, key()).await.unwrap(); // the stream delivers again: nothing more is sent
        let got = receiver.got.lock().unwrap().clone();
        assert_eq!(got.len(), 1);
        let (headers, body) = &got[0];
        let event: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(event["type"], "post.published");
        assert_eq!(event["data"]["permalink"], "https://www.instagram.com/p/M1/");
        assert_eq!(event["data"]["source_event_id"], "evt_9");
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        // The reference library checks the timestamp against the real clock; ours is fixed.
        let verifier = standardwebhooks::Webhook::new(SECRET).unwrap();
        let id = header(headers, "webhook-id");
        let ts: i64 = header(headers, "webhook-timestamp").parse().unwrap();
        assert_eq!(verifier.sign(id, ts, body.as_bytes()).unwrap(), header(headers, "webhook-signature"));
        let record = store.get_notification("P1", "A1", "post.published").await.unwrap().unwrap();
        assert!(record.delivered);
        assert_eq!((record.attempts, record.http_status), (1, Some(204)));
    }

    #[tokio::test]
    async fn a_failing_receiver_is_retried_then_the_record_goes_back_to_the_stream() {
        let (deps, store, receiver) = world(DestState::Failed).await;
        *receiver.answers.lock().unwrap() = vec![Delivery::Answered(500), Delivery::Unreachable("refused".into()), Delivery::Answered(503)];
        let err = notify(&deps, key()).await.unwrap_err();
        assert!(err.to_string().contains("after 3 tries"), "{err}");
        let record = store.get_notification("P1", "A1", "post.failed").await.unwrap().unwrap();
        assert!(!record.delivered);
        assert_eq!((record.attempts, record.http_status), (3, Some(503)));
        // The same webhook-id on every try, so the receiver can de-duplicate.
        let ids: Vec<String> = receiver.got.lock().unwrap().iter().map(|(h, _)| header(h, "webhook-id").to_string()).collect();
        assert!(ids.iter().all(|id| id == &ids[0]) && ids.len() == 3);
        // The stream's retry: the receiver is back.
        notify(&deps, key()).await.unwrap();
        let record = store.get_notification("P1", "A1", "post.failed").await.unwrap().unwrap();
        assert!(record.delivered);
        assert_eq!(record.attempts, 4);
        let body: serde_json::Value = serde_json::from_str(&receiver.got.lock().unwrap()[3].1).unwrap();
        assert_eq!((body["type"].as_str(), body["data"]["failure"]["code"].as_i64()), (Some("post.failed"), Some(4)));
    }

    #[tokio::test]
    async fn without_a_url_nothing_is_sent_and_a_stale_record_is_ignored() {
        let (mut deps, _, receiver) = world(DestState::Published).await;
        deps.target = None;
        notify(&deps, key()).await.unwrap();
        let (deps, _, receiver2) = world(DestState::Publishing).await;
        notify(&deps, key()).await.unwrap();
        assert!(receiver.got.lock().unwrap().is_empty() && receiver2.got.lock().unwrap().is_empty());
    }
}
