//! Handlers against in-memory ports and a scripted Graph API.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use lambda_http::{Body, Request};
use secrecy::SecretString;
use time::OffsetDateTime;
use time::macros::datetime;

use super::stream::DestinationKey;
use super::{create_container, ingest, poll_status, publish};
use crate::account::{Account, AccountStatus, LoginFlavour};
use crate::clock::FixedClock;
use crate::deps::{Ingest, Pipeline};
use crate::graph::{ContainerSpec, ContainerStatus, GraphApi, GraphError, MediaSummary, PublishingLimit};
use crate::polling::PollPolicy;
use crate::post::{DestState, Destination, MediaItem, MediaKind, Placement, Post, PostOptions, PostRequest, ReelOptions};
use crate::scheduler::{MemoryScheduler, PollInput, ScheduleTarget};
use crate::sources::standard_webhooks::StandardWebhookVerifier;
use crate::store::{Created, Delivery, MemoryStore, PostStore};
use crate::tokens::StaticTokens;

const ACCOUNT: &str = "17841400000000001";
const SECRET: &str = "whsec_dGVzdC1zZWNyZXQtc3RhbmRhcmQtd2ViaG9va3MtMDE=";
const NOW: OffsetDateTime = datetime!(2026-11-23 10:00 UTC);

/// A Graph API whose answers are scripted per call kind; records every call.
#[derive(Default)]
struct ScriptedGraph {
    statuses: Mutex<VecDeque<ContainerStatus>>,
    publishes: Mutex<VecDeque<Result<String, GraphError>>>,
    create_error: Mutex<Option<GraphError>>,
    recent: Mutex<Vec<MediaSummary>>,
    quota: Mutex<Option<PublishingLimit>>,
    comment_error: Mutex<Option<GraphError>>,
    specs: Mutex<Vec<ContainerSpec>>,
    comments: Mutex<Vec<String>>,
    next_id: Mutex<u32>,
    usage: Mutex<Option<crate::account::ApiUsage>>,
    calls: Mutex<Vec<String>>,
    /// How the next create calls go, in order; when none is scripted, they are answered.
    creates: Mutex<VecDeque<Create>>,
    /// Children some carousel container holds: like the fake of issue 16, a child belongs to
    /// one carousel only.
    used_children: Mutex<std::collections::HashSet<String>>,
}

/// A scripted create call.
enum Create {
    /// Made on Meta's side, but the answer is this error (a timeout, a 5xx, a garbled body).
    MadeThen(GraphError),
}

impl ScriptedGraph {
    fn calls(&self, kind: &str) -> usize {
        self.calls.lock().unwrap().iter().filter(|c| c.as_str() == kind).count()
    }
    fn statuses(&self, list: impl IntoIterator<Item = ContainerStatus>) {
        self.statuses.lock().unwrap().extend(list);
    }
}

#[async_trait]
impl GraphApi for ScriptedGraph {
    fn latest_usage(&self, _: &str) -> Option<crate::account::ApiUsage> {
        *self.usage.lock().unwrap()
    }
    async fn create_container(&self, _: &Account, _: &SecretString, spec: &ContainerSpec) -> Result<String, GraphError> {
        self.calls.lock().unwrap().push("create".into());
        if let Some(err) = self.create_error.lock().unwrap().clone() {
            return Err(err);
        }
        let children: Vec<String> = spec.children.iter().flat_map(|c| c.split(',')).map(str::to_string).collect();
        {
            let mut used = self.used_children.lock().unwrap();
            if let Some(taken) = children.iter().find(|c| used.contains(*c)) {
                let body = format!(
                    r#"{{"error":{{"message":"(#100) Invalid children: {taken} is not an unused carousel item container of this account","code":100}}}}"#
                );
                return Err(GraphError::from_response(400, body.as_bytes()));
            }
            used.extend(children);
        }
        self.specs.lock().unwrap().push(spec.clone());
        let mut next = self.next_id.lock().unwrap();
        *next += 1;
        match self.creates.lock().unwrap().pop_front() {
            Some(Create::MadeThen(err)) => Err(err),
            None => Ok(format!("C{next}")),
        }
    }
    async fn container_status(&self, _: &Account, _: &SecretString, _: &str) -> Result<ContainerStatus, GraphError> {
        self.calls.lock().unwrap().push("status".into());
        Ok(self.statuses.lock().unwrap().pop_front().unwrap_or(ContainerStatus::Finished))
    }
    async fn publish(&self, _: &Account, _: &SecretString, _: &str) -> Result<String, GraphError> {
        self.calls.lock().unwrap().push("publish".into());
        self.publishes.lock().unwrap().pop_front().unwrap_or(Ok("M1".into()))
    }
    async fn permalink(&self, _: &Account, _: &SecretString, media_id: &str) -> Result<String, GraphError> {
        self.calls.lock().unwrap().push("permalink".into());
        Ok(format!("https://www.instagram.com/p/{media_id}/"))
    }
    async fn recent_media(&self, _: &Account, _: &SecretString, _: bool) -> Result<Vec<MediaSummary>, GraphError> {
        self.calls.lock().unwrap().push("recent".into());
        Ok(self.recent.lock().unwrap().clone())
    }
    async fn publishing_limit(&self, _: &Account, _: &SecretString) -> Result<PublishingLimit, GraphError> {
        self.calls.lock().unwrap().push("quota".into());
        Ok(self.quota.lock().unwrap().unwrap_or(PublishingLimit { usage: 0, total: 100, window_secs: 86_400 }))
    }
    async fn comment(&self, _: &Account, _: &SecretString, _: &str, message: &str) -> Result<String, GraphError> {
        self.calls.lock().unwrap().push("comment".into());
        if let Some(err) = self.comment_error.lock().unwrap().clone() {
            return Err(err);
        }
        self.comments.lock().unwrap().push(message.into());
        Ok("K1".into())
    }
}

struct World {
    deps: Pipeline,
    store: Arc<MemoryStore>,
    scheduler: Arc<MemoryScheduler>,
    graph: Arc<ScriptedGraph>,
}

fn account() -> Account {
    Account { account_id: ACCOUNT.into(), login: LoginFlavour::Instagram, status: AccountStatus::Active, token_expires_at: None }
}

async fn world() -> World {
    let store = Arc::new(MemoryStore::default());
    store.put_account(&account()).await.unwrap();
    let scheduler = Arc::new(MemoryScheduler::default());
    let graph = Arc::new(ScriptedGraph::default());
    let deps = Pipeline {
        store: store.clone(),
        scheduler: scheduler.clone(),
        tokens: Arc::new(StaticTokens(HashMap::from([(ACCOUNT.to_string(), "IGAA-token".to_string())]))),
        graph: graph.clone(),
        clock: Arc::new(FixedClock(NOW)),
        polling: PollPolicy { inline_checks: vec![Duration::from_millis(1); 2], ..PollPolicy::default() },
        media: Arc::new(crate::media_check::NoMediaCheck),
        publish_lease: Duration::ZERO,
    };
    World { deps, store, scheduler, graph }
}

/// Stores a post the way ingest does and returns its destination key.
async fn stored_post(w: &World, kind: MediaKind, publish_at: Option<OffsetDateTime>) -> DestinationKey {
    let request = PostRequest {
        caption: "Autumn sale".into(),
        media: vec![MediaItem::new("https://cdn.example.com/a", kind)],
        accounts: vec![ACCOUNT.into()],
        publish_at,
        ..PostRequest::default()
    };
    store_request(w, request).await
}

async fn store_request(w: &World, request: PostRequest) -> DestinationKey {
    let post = Post::new("P1".into(), "generic", "msg_1", request, NOW);
    let delivery = Delivery { source: "generic".into(), event_id: "msg_1".into(), post_id: "P1".into(), expires_at: Some(0), fingerprint: None };
    assert_eq!(w.store.create_post(&delivery, &post, &post.destinations(NOW)).await.unwrap(), Created::New);
    DestinationKey { post_id: "P1".into(), account_id: ACCOUNT.into() }
}

async fn dest(w: &World) -> Destination {
    w.store.get_destination("P1", ACCOUNT).await.unwrap().unwrap()
}

async fn set_state(w: &World, state: DestState) {
    let mut d = dest(w).await;
    d.state = state;
    d.container_id.get_or_insert("C1".into());
    w.store.save_destination(&mut d).await.unwrap();
}

/// A world whose looks are all scheduled polls (no inline budget), for steps driven poll by poll.
async fn polls_only() -> World {
    let mut w = world().await;
    w.deps.polling.inline_checks.clear();
    w
}

fn poll(attempt: u32) -> PollInput {
    PollInput { post_id: "P1".into(), account_id: ACCOUNT.into(), attempt }
}

// ---- create-container ----

#[tokio::test]
async fn an_image_is_created_checked_inline_and_made_ready() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Image, None).await;
    w.graph.statuses([ContainerStatus::InProgress, ContainerStatus::Finished]);
    create_container::start(&w.deps, key.clone()).await.unwrap();
    let d = dest(&w).await;
    assert_eq!(d.state, DestState::Ready);
    assert_eq!(d.container_id.as_deref(), Some("C1"));
    let states: Vec<_> = d.history.iter().map(|h| h.state).collect();
    assert_eq!(states, [DestState::Queued, DestState::Processing, DestState::Ready]);
    assert!(w.scheduler.schedules.lock().unwrap().is_empty(), "no poll needed");
    // Redelivery of the same stream record does nothing more.
    create_container::start(&w.deps, key).await.unwrap();
    assert_eq!(w.graph.calls("create"), 1);
}

#[tokio::test]
async fn a_video_goes_to_processing_with_a_poll_scheduled() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Video, None).await;
    create_container::start(&w.deps, key).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.poll_attempt), (DestState::Processing, 1));
    assert_eq!(w.graph.calls("status"), 0, "videos skip the inline check");
    let schedules = w.scheduler.schedules.lock().unwrap();
    assert_eq!(schedules.len(), 1);
    assert_eq!(schedules[0].name, format!("poll-P1-{ACCOUNT}-1"));
    assert_eq!(schedules[0].target, ScheduleTarget::PollStatus);
    assert_eq!(schedules[0].at, NOW + Duration::from_secs(60));
}

#[tokio::test]
async fn a_future_post_gets_one_start_schedule_and_no_container() {
    let w = world().await;
    let at = NOW + Duration::from_secs(3600);
    let key = stored_post(&w, MediaKind::Image, Some(at)).await;
    assert_eq!(dest(&w).await.state, DestState::Scheduled);
    create_container::start(&w.deps, key.clone()).await.unwrap();
    create_container::start(&w.deps, key).await.unwrap();
    let schedules = w.scheduler.schedules.lock().unwrap();
    assert_eq!(schedules.len(), 1);
    assert_eq!((schedules[0].name.as_str(), schedules[0].at), (format!("start-P1-{ACCOUNT}-{}", at.unix_timestamp()).as_str(), at));
    assert_eq!(schedules[0].input, serde_json::json!({"post_id": "P1", "account_id": ACCOUNT}));
    assert_eq!(w.graph.calls("create"), 0);
}

#[tokio::test]
async fn a_scheduled_post_whose_time_came_is_created() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Image, Some(NOW + Duration::from_secs(30))).await;
    let mut late = world().await;
    late.store = w.store.clone();
    late.deps.store = w.store.clone();
    late.deps.clock = Arc::new(FixedClock(NOW + Duration::from_secs(31)));
    create_container::start(&late.deps, key).await.unwrap();
    assert_eq!(dest(&w).await.state, DestState::Ready);
}

#[tokio::test]
async fn a_refused_container_fails_with_metas_code() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Image, None).await;
    *w.graph.create_error.lock().unwrap() = Some(GraphError::from_response(
        400,
        br#"{"error":{"message":"Media download has failed","code":9004,"error_subcode":2207052}}"#,
    ));
    create_container::start(&w.deps, key).await.unwrap();
    let d = dest(&w).await;
    assert_eq!(d.state, DestState::Failed);
    let f = d.failure.unwrap();
    assert_eq!((f.code, f.subcode), (Some(9004), Some(2207052)));
    assert!(f.reason.contains("Media download has failed"), "{}", f.reason);
}

#[tokio::test]
async fn a_transient_create_error_is_retried_by_schedule_then_gives_up() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Image, None).await;
    *w.graph.create_error.lock().unwrap() = Some(GraphError::Timeout);
    create_container::start(&w.deps, key.clone()).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.create_retries), (DestState::Queued, 1));
    {
        let schedules = w.scheduler.schedules.lock().unwrap();
        assert_eq!(schedules[0].name, format!("start-P1-{ACCOUNT}-r1"));
        assert_eq!(schedules[0].target, ScheduleTarget::CreateContainer);
        assert_eq!(schedules[0].at, NOW + Duration::from_secs(60));
    }
    // The retry schedule fires and Instagram answers this time.
    *w.graph.create_error.lock().unwrap() = None;
    create_container::start(&w.deps, key.clone()).await.unwrap();
    assert_eq!(dest(&w).await.state, DestState::Ready);

    // A destination that keeps failing gives up after the last retry, with the error kept.
    let w = world().await;
    let key = stored_post(&w, MediaKind::Image, None).await;
    *w.graph.create_error.lock().unwrap() = Some(GraphError::Http { status: 503 });
    for _ in 0..=crate::polling::MAX_CREATE_RETRIES {
        create_container::start(&w.deps, key.clone()).await.unwrap();
    }
    let d = dest(&w).await;
    assert_eq!(d.state, DestState::Failed);
    assert!(d.failure.unwrap().reason.contains("HTTP 503"), "gave up with the last error");
    assert_eq!(w.scheduler.schedules.lock().unwrap().len(), crate::polling::MAX_CREATE_RETRIES as usize);
}

#[tokio::test]
async fn an_unregistered_account_fails_with_a_reason() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Image, None).await;
    let mut no_tokens = world().await;
    no_tokens.deps.store = w.store.clone();
    no_tokens.deps.tokens = Arc::new(StaticTokens::default());
    create_container::start(&no_tokens.deps, key).await.unwrap();
    let d = dest(&w).await;
    assert_eq!(d.state, DestState::Failed);
    assert!(d.failure.unwrap().reason.contains("no token stored"));
}

// ---- poll-status ----

#[tokio::test]
async fn polling_reschedules_with_backoff_then_makes_ready() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Video, None).await;
    create_container::start(&w.deps, key).await.unwrap();
    w.graph.statuses([ContainerStatus::InProgress]);
    poll_status::handle(&w.deps, poll(1)).await.unwrap();
    assert_eq!(dest(&w).await.poll_attempt, 2);
    {
        let schedules = w.scheduler.schedules.lock().unwrap();
        assert_eq!(schedules[1].name, format!("poll-P1-{ACCOUNT}-2"));
        assert_eq!(schedules[1].at, NOW + Duration::from_secs(90));
    }
    // A duplicate of poll 1 is stale and does nothing.
    poll_status::handle(&w.deps, poll(1)).await.unwrap();
    assert_eq!(w.graph.calls("status"), 1);
    poll_status::handle(&w.deps, poll(2)).await.unwrap();
    assert_eq!(dest(&w).await.state, DestState::Ready);
}

#[tokio::test]
async fn an_error_container_fails_with_metas_status_text() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Video, None).await;
    create_container::start(&w.deps, key).await.unwrap();
    w.graph.statuses([ContainerStatus::Error("Error: Media upload has failed with error code 2207082".into())]);
    poll_status::handle(&w.deps, poll(1)).await.unwrap();
    let d = dest(&w).await;
    assert_eq!(d.state, DestState::Failed);
    assert!(d.failure.unwrap().reason.contains("2207082"));
}

#[tokio::test]
async fn past_the_deadline_a_container_fails_as_a_timeout() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Video, None).await;
    create_container::start(&w.deps, key).await.unwrap();
    let mut later = world().await;
    later.deps.store = w.store.clone();
    later.deps.clock = Arc::new(FixedClock(NOW + Duration::from_secs(21 * 60)));
    later.graph.statuses([ContainerStatus::InProgress]);
    poll_status::handle(&later.deps, poll(1)).await.unwrap();
    let d = dest(&w).await;
    assert_eq!(d.state, DestState::Failed);
    assert!(d.failure.unwrap().reason.contains("processing timeout"));
}

// ---- publish ----

#[tokio::test]
async fn a_ready_destination_is_published_once_with_its_permalink() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Image, None).await;
    set_state(&w, DestState::Ready).await;
    publish::publish(&w.deps, key.clone()).await.unwrap();
    let d = dest(&w).await;
    assert_eq!(d.state, DestState::Published);
    assert_eq!(d.media_id.as_deref(), Some("M1"));
    assert_eq!(d.permalink.as_deref(), Some("https://www.instagram.com/p/M1/"));
    publish::publish(&w.deps, key).await.unwrap();
    assert_eq!(w.graph.calls("publish"), 1);
}

#[tokio::test]
async fn a_lost_publish_answer_is_recovered_without_publishing_again() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Image, None).await;
    set_state(&w, DestState::Ready).await;
    w.graph.publishes.lock().unwrap().push_back(Err(GraphError::Http { status: 502 }));
    assert!(publish::publish(&w.deps, key.clone()).await.is_err(), "unknown outcome goes back for a retry");
    assert_eq!(dest(&w).await.state, DestState::Publishing);
    // The retry: the container says PUBLISHED, so the media is looked up, not published again.
    w.graph.statuses([ContainerStatus::Published]);
    *w.graph.recent.lock().unwrap() = vec![
        MediaSummary { id: "M0".into(), caption: Some("older post".into()), permalink: None, timestamp: Some(NOW) },
        MediaSummary {
            id: "M9".into(),
            caption: Some("Autumn sale".into()),
            permalink: Some("https://www.instagram.com/p/M9/".into()),
            timestamp: Some(NOW + Duration::from_secs(1)),
        },
    ];
    publish::publish(&w.deps, key).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.media_id.as_deref()), (DestState::Published, Some("M9")));
    assert_eq!(w.graph.calls("publish"), 1);
}

#[tokio::test]
async fn a_publish_that_did_not_happen_is_sent_again_once() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Image, None).await;
    set_state(&w, DestState::Ready).await;
    w.graph.publishes.lock().unwrap().push_back(Err(GraphError::Timeout));
    assert!(publish::publish(&w.deps, key.clone()).await.is_err());
    w.graph.statuses([ContainerStatus::Finished]);
    publish::publish(&w.deps, key.clone()).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.publish_attempts), (DestState::Published, 2));
    publish::publish(&w.deps, key).await.unwrap();
    assert_eq!(w.graph.calls("publish"), 2);
}

#[tokio::test]
async fn not_ready_at_publish_time_goes_back_to_polling() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Video, None).await;
    set_state(&w, DestState::Ready).await;
    w.graph.publishes.lock().unwrap().push_back(Err(GraphError::from_response(
        400,
        br#"{"error":{"message":"The media is not ready for publishing","code":9007,"error_subcode":2207027}}"#,
    )));
    publish::publish(&w.deps, key).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.poll_attempt), (DestState::Processing, 1));
    assert_eq!(w.scheduler.schedules.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn an_expired_token_fails_the_destination_and_says_to_reconnect() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Image, None).await;
    set_state(&w, DestState::Ready).await;
    w.graph.publishes.lock().unwrap().push_back(Err(GraphError::from_response(
        400,
        br#"{"error":{"message":"Error validating access token: Session has expired","code":190,"error_subcode":463}}"#,
    )));
    publish::publish(&w.deps, key).await.unwrap();
    let f = dest(&w).await.failure.unwrap();
    assert_eq!(f.code, Some(190));
    assert!(f.reason.contains("connected again"));
}

// ---- ingest ----

fn ingest_deps(store: Arc<MemoryStore>, now: OffsetDateTime) -> Ingest {
    Ingest {
        store,
        clock: Arc::new(FixedClock(now)),
        generic: StandardWebhookVerifier::new(SECRET).unwrap(),
        api_keys: Arc::new(crate::store::api_keys::MemoryApiKeys::default()),
        scheduler: Arc::new(MemoryScheduler::default()),
        cursor_key: Default::default(),
        sources: Default::default(),
        connect: None,
    }
}

fn signed(body: &str, id: &str, ts: i64, secret: &str) -> Request {
    let signature = standardwebhooks::Webhook::new(secret).unwrap().sign(id, ts, body.as_bytes()).unwrap();
    http::Request::builder()
        .method("POST")
        .uri("/webhooks/generic")
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(Body::Binary(body.as_bytes().to_vec()))
        .unwrap()
}

fn body_json(response: &lambda_http::Response<Body>) -> serde_json::Value {
    serde_json::from_slice(response.body().as_ref()).unwrap()
}

const GOOD: &str = r#"{"caption":"Autumn sale","media":[{"url":"https://cdn.example.com/a.jpg","type":"image"}],"accounts":["17841400000000001"]}"#;

#[tokio::test]
async fn ingest_accepts_once_and_dedupes_retries() {
    let w = world().await;
    let deps = ingest_deps(w.store.clone(), NOW);
    let ts = NOW.unix_timestamp();
    let first = ingest::handle(&deps, signed(GOOD, "msg_a", ts, SECRET)).await;
    assert_eq!(first.status(), 202);
    let post_id = body_json(&first)["post_id"].as_str().unwrap().to_string();
    assert_eq!(body_json(&first)["state"], "IN_PROGRESS");
    let again = ingest::handle(&deps, signed(GOOD, "msg_a", ts + 5, SECRET)).await;
    assert_eq!(again.status(), 202);
    assert_eq!(body_json(&again)["post_id"], post_id.as_str());
    assert_eq!(body_json(&again)["duplicate"], true);
    assert_eq!(w.store.post_count(), 1);
    let dests = w.store.list_destinations(&post_id).await.unwrap();
    assert_eq!(dests.len(), 1);
    assert_eq!(dests[0].state, DestState::Queued);
}

#[tokio::test]
async fn ingest_refuses_bad_requests_and_writes_nothing() {
    let w = world().await;
    let deps = ingest_deps(w.store.clone(), NOW);
    let ts = NOW.unix_timestamp();
    let forged = "whsec_c29tZS1vdGhlci1zZWNyZXQtMDEyMzQ1Njc4OQ==";
    let cases: Vec<(Request, u16, &str, Option<&str>)> = vec![
        (signed(GOOD, "m1", ts, forged), 401, "invalid_signature", None),
        (signed(GOOD, "m2", ts - 301, SECRET), 401, "invalid_signature", None),
        (signed(r#"{"caption":"x","media":[{"url":"https://a.example/x.jpg","type":"gif"}],"accounts":["1"]}"#, "m3", ts, SECRET), 400, "invalid_body", Some("media[0].type")),
        (signed("{not json", "m4", ts, SECRET), 400, "invalid_body", None),
        (signed(r#"{"caption":"x","media":[{"url":"https://a.example/x.jpg","type":"image"}],"accounts":["999"]}"#, "m5", ts, SECRET), 422, "unknown_account", Some("accounts[0]")),
        (signed(&format!(r#"{{"caption":"{}"}}"#, "x".repeat(300_000)), "m6", ts, SECRET), 413, "body_too_large", None),
    ];
    for (request, status, code, field) in cases {
        let response = ingest::handle(&deps, request).await;
        let body = body_json(&response);
        assert_eq!(response.status(), status, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert_eq!(body["error"]["field"].as_str(), field, "{body}");
        assert_eq!(response.headers()["content-type"], "application/json");
    }
    let mut xml = signed(GOOD, "m7", ts, SECRET);
    xml.headers_mut().insert("content-type", "application/xml".parse().unwrap());
    let response = ingest::handle(&deps, xml).await;
    assert_eq!((response.status().as_u16(), body_json(&response)["error"]["code"].as_str()), (415, Some("unsupported_media_type")));
    assert_eq!(w.store.post_count(), 0);
    let not_found = http::Request::builder().uri("/nope").body(Body::Empty).unwrap();
    assert_eq!(ingest::handle(&deps, not_found).await.status(), 404);
}

#[tokio::test]
async fn a_future_publish_at_makes_a_scheduled_post() {
    let w = world().await;
    let deps = ingest_deps(w.store.clone(), NOW);
    let body = GOOD.replace("}]", r#"}],"publish_at":"2026-11-23T12:00:00Z""#);
    let response = ingest::handle(&deps, signed(&body, "msg_s", NOW.unix_timestamp(), SECRET)).await;
    assert_eq!(body_json(&response)["state"], "SCHEDULED");
}

// ---- the publishing surface ----

fn carousel_request(kinds: &[MediaKind]) -> PostRequest {
    PostRequest {
        caption: "Autumn sale".into(),
        media: kinds.iter().enumerate().map(|(i, k)| MediaItem::new(format!("https://cdn.example.com/{i}"), *k)).collect(),
        accounts: vec![ACCOUNT.into()],
        ..PostRequest::default()
    }
}

#[tokio::test]
async fn a_carousel_makes_its_children_then_its_parent_once_they_are_finished() {
    let w = world().await;
    let key = store_request(&w, carousel_request(&[MediaKind::Image, MediaKind::Video, MediaKind::Image])).await;
    // Inline checks are skipped (a carousel waits like a video): the children exist, no parent yet.
    create_container::start(&w.deps, key.clone()).await.unwrap();
    let d = dest(&w).await;
    assert_eq!(d.children, ["C1", "C2", "C3"]);
    assert_eq!((d.state, d.container_id.clone(), d.poll_attempt), (DestState::Processing, None, 1));
    {
        let specs = w.graph.specs.lock().unwrap();
        assert!(specs.iter().all(|s| s.is_carousel_item && s.caption.is_none()));
        assert_eq!(specs[1].media_type, Some("VIDEO"));
        assert!(specs[1].video_url.is_some() && specs[0].image_url.is_some());
    }
    // Poll 1: the video child is still processing.
    w.graph.statuses([ContainerStatus::Finished, ContainerStatus::InProgress]);
    poll_status::handle(&w.deps, poll(1)).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.children_ready, d.container_id.clone(), d.poll_attempt), (1, None, 2));
    // Poll 2: children finished, so the parent is made (with the caption) and checked.
    w.graph.statuses([ContainerStatus::Finished, ContainerStatus::Finished, ContainerStatus::Finished]);
    poll_status::handle(&w.deps, poll(2)).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.container_id.as_deref()), (DestState::Ready, Some("C4")));
    let parent = w.graph.specs.lock().unwrap()[3].clone();
    assert_eq!((parent.media_type, parent.children.as_deref(), parent.caption.as_deref()), (Some("CAROUSEL"), Some("C1,C2,C3"), Some("Autumn sale")));
    // Five status reads in all: child 1 once, child 2 twice, child 3 once, the parent once.
    assert_eq!(w.graph.calls("status"), 5);
}

/// Issue 16: the carousel container is made, but its answer comes too late; the retry's
/// children are refused as used. The post must still be published, once.
#[tokio::test]
async fn a_carousel_whose_parent_creation_timed_out_after_being_made_is_published_once() {
    let w = world().await;
    let key = store_request(&w, carousel_request(&[MediaKind::Image, MediaKind::Video, MediaKind::Image])).await;
    create_container::start(&w.deps, key.clone()).await.unwrap();
    assert_eq!(dest(&w).await.children, ["C1", "C2", "C3"]);
    // Poll 1: the children are finished; the parent (C4) is made, its answer times out.
    w.graph.creates.lock().unwrap().push_back(Create::MadeThen(GraphError::Timeout));
    poll_status::handle(&w.deps, poll(1)).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.container_id.clone(), d.poll_attempt), (DestState::Processing, None, 2));
    assert_eq!(d.orphaned_containers.len(), 1, "the possibly made parent is on record");
    assert_eq!((d.orphaned_containers[0].container_id.clone(), d.orphaned_containers[0].children.clone()), (None, d.children.clone()));
    assert!(d.orphaned_containers[0].reason.contains("did not answer in time"), "{}", d.orphaned_containers[0].reason);
    // Poll 2: the same children are refused, so fresh ones are made (back to QUEUED) ...
    poll_status::handle(&w.deps, poll(2)).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.children.len(), d.container_id.clone()), (DestState::Queued, 0, None));
    assert!(!d.recreated, "an expired container may still be made again once");
    let left: Vec<_> = d.orphaned_containers.iter().map(|o| o.container_id.clone()).collect();
    assert_eq!(left, [None, Some("C1".into()), Some("C2".into()), Some("C3".into())]);
    // ... by create-container (the stream delivers the QUEUED destination), then a new parent.
    create_container::start(&w.deps, key.clone()).await.unwrap();
    assert_eq!(dest(&w).await.children, ["C5", "C6", "C7"]);
    poll_status::handle(&w.deps, poll(1)).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.container_id.as_deref()), (DestState::Ready, Some("C8")));
    assert_eq!(w.graph.specs.lock().unwrap().last().unwrap().children.as_deref(), Some("C5,C6,C7"));
    publish::publish(&w.deps, key.clone()).await.unwrap();
    publish::publish(&w.deps, key).await.unwrap();
    let d = dest(&w).await;
    assert_eq!(d.state, DestState::Published, "{:?}", d.failure);
    assert_eq!(w.graph.calls("publish"), 1);
    assert_eq!(d.orphaned_containers.len(), 4, "the record of what was left behind stays");
}

#[tokio::test]
async fn a_refused_carousel_container_without_an_unanswered_attempt_fails_with_metas_reason() {
    let w = polls_only().await;
    let key = store_request(&w, carousel_request(&[MediaKind::Image, MediaKind::Image])).await;
    create_container::start(&w.deps, key).await.unwrap();
    *w.graph.create_error.lock().unwrap() = Some(GraphError::from_response(
        400,
        br#"{"error":{"message":"(#100) param collaborators is not allowed","code":100}}"#,
    ));
    poll_status::handle(&w.deps, poll(1)).await.unwrap();
    let d = dest(&w).await;
    assert_eq!(d.state, DestState::Failed);
    assert_eq!(d.failure.unwrap().code, Some(100));
    assert!(d.orphaned_containers.is_empty(), "nothing was made: {:?}", d.orphaned_containers);
    assert_eq!(d.children, ["C1", "C2"]);
}

#[tokio::test]
async fn after_every_set_of_children_went_unanswered_the_refusal_stands() {
    let w = polls_only().await;
    let key = store_request(&w, carousel_request(&[MediaKind::Image, MediaKind::Image])).await;
    let mut rounds = 0;
    loop {
        create_container::start(&w.deps, key.clone()).await.unwrap();
        // Each parent is made, but answered too late: a network that never answers in time.
        w.graph.creates.lock().unwrap().push_back(Create::MadeThen(GraphError::Timeout));
        poll_status::handle(&w.deps, poll(1)).await.unwrap();
        poll_status::handle(&w.deps, poll(2)).await.unwrap();
        rounds += 1;
        if dest(&w).await.state != DestState::Queued || rounds > 10 {
            break;
        }
    }
    let d = dest(&w).await;
    assert_eq!(d.state, DestState::Failed, "bounded, not endless");
    assert_eq!(rounds, crate::polling::MAX_CREATE_RETRIES as usize + 1);
    assert!(d.failure.unwrap().reason.contains("not an unused carousel item"));
}

#[tokio::test]
async fn a_reel_made_but_answered_unreadably_is_made_again_and_the_first_is_on_record() {
    let w = world().await;
    let mut request = carousel_request(&[MediaKind::Video]);
    request.options.reel = Some(ReelOptions { cover_url: Some("https://cdn.example.com/cover.jpg".into()), ..ReelOptions::default() });
    let key = store_request(&w, request).await;
    w.graph.creates.lock().unwrap().push_back(Create::MadeThen(GraphError::Decode("EOF while parsing a value".into())));
    create_container::start(&w.deps, key.clone()).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.create_retries, d.container_id.clone()), (DestState::Queued, 1, None), "retried, not failed");
    assert_eq!(d.orphaned_containers.len(), 1);
    assert_eq!(d.orphaned_containers[0].container_id, None);
    assert!(d.orphaned_containers[0].reason.starts_with("creating the container: Instagram's answer was not understood"));
    // The scheduled retry makes a second container; only that one is published.
    create_container::start(&w.deps, key.clone()).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.container_id.as_deref()), (DestState::Processing, Some("C2")));
    w.graph.statuses([ContainerStatus::Finished]);
    poll_status::handle(&w.deps, poll(1)).await.unwrap();
    publish::publish(&w.deps, key).await.unwrap();
    assert_eq!(dest(&w).await.state, DestState::Published);
    assert_eq!(w.graph.calls("publish"), 1);
    let specs = w.graph.specs.lock().unwrap();
    assert_eq!(specs.len(), 2);
    assert!(specs.iter().all(|s| s.media_type == Some("REELS") && s.cover_url.is_some()));
}

#[tokio::test]
async fn a_carousel_child_that_fails_processing_fails_the_post_naming_the_item() {
    let w = polls_only().await;
    let key = store_request(&w, carousel_request(&[MediaKind::Image, MediaKind::Image])).await;
    create_container::start(&w.deps, key).await.unwrap();
    w.graph.statuses([ContainerStatus::Finished, ContainerStatus::Error("Error: unsupported image (2207005)".into())]);
    poll_status::handle(&w.deps, poll(1)).await.unwrap();
    let d = dest(&w).await;
    assert_eq!(d.state, DestState::Failed);
    assert!(d.failure.unwrap().reason.contains("carousel item 2"));
}

#[tokio::test]
async fn stories_and_reels_get_their_own_container_parameters() {
    let w = world().await;
    let mut story = carousel_request(&[MediaKind::Video]);
    story.options.placement = Placement::Story;
    story.caption = "ignored for stories".into();
    store_request(&w, story.clone()).await;
    let post = w.store.get_post("P1").await.unwrap().unwrap();
    let spec = ContainerSpec::single(&post);
    assert_eq!((spec.media_type, spec.caption.as_deref(), spec.video_url.is_some()), (Some("STORIES"), None, true));

    let mut reel = carousel_request(&[MediaKind::Video]);
    reel.options = PostOptions {
        reel: Some(ReelOptions { cover_url: Some("https://cdn.example.com/c.jpg".into()), thumb_offset: Some(1500), share_to_feed: Some(false), audio_name: Some("Original".into()) }),
        location_id: Some("123".into()),
        collaborators: vec!["ana".into()],
        ..PostOptions::default()
    };
    let post = Post::new("P2".into(), "generic", "m2", reel, NOW);
    let json = serde_json::to_value(ContainerSpec::single(&post)).unwrap();
    assert_eq!(json["media_type"], "REELS");
    assert_eq!(json["share_to_feed"], false);
    assert_eq!(json["thumb_offset"], 1500);
    assert_eq!(json["collaborators"], serde_json::json!(["ana"]));
    assert!(json.get("is_carousel_item").is_none(), "false flags are left out");
}

#[tokio::test]
async fn a_refused_token_parks_the_destination_until_the_account_is_connected_again() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Image, None).await;
    set_state(&w, DestState::Ready).await;
    w.graph.publishes.lock().unwrap().push_back(Err(GraphError::from_response(
        400,
        br#"{"error":{"message":"Error validating access token: Session has expired","code":190,"error_subcode":463}}"#,
    )));
    publish::publish(&w.deps, key.clone()).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.resume_state), (DestState::AwaitingAuth, Some(DestState::Ready)));
    assert!(d.failure.as_ref().unwrap().reason.contains("connected again"));
    assert_eq!(w.store.get_account(ACCOUNT).await.unwrap().unwrap().status, AccountStatus::NeedsReauth);
    // Another post of the same account waits without calling Instagram.
    let calls = w.graph.calls.lock().unwrap().len();
    publish::publish(&w.deps, key.clone()).await.unwrap();
    assert_eq!(w.graph.calls.lock().unwrap().len(), calls);
    // A new token is stored: the destination goes back to READY and publishes.
    assert_eq!(super::reauth::resume_account(&w.deps, ACCOUNT).await.unwrap(), 1);
    let d = dest(&w).await;
    assert_eq!((d.state, d.failure.clone()), (DestState::Ready, None));
    publish::publish(&w.deps, key).await.unwrap();
    assert_eq!(dest(&w).await.state, DestState::Published);
}

#[tokio::test]
async fn a_used_up_quota_defers_the_destination_and_poll_status_wakes_it() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Image, None).await;
    set_state(&w, DestState::Ready).await;
    *w.graph.quota.lock().unwrap() = Some(PublishingLimit { usage: 50, total: 50, window_secs: 86_400 });
    publish::publish(&w.deps, key.clone()).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.resume_state, d.poll_attempt), (DestState::Deferred, Some(DestState::Ready), 1));
    assert_eq!(d.deferred_until, Some(NOW + w.deps.polling.quota_recheck));
    assert!(d.history.last().unwrap().note.as_deref().unwrap().contains("50 of 50"));
    assert_eq!(w.graph.calls("publish"), 0);
    assert_eq!(w.scheduler.schedules.lock().unwrap()[0].at, NOW + w.deps.polling.quota_recheck);
    // The wake-up poll sends it back to READY (the stream then hands it to publish).
    poll_status::handle(&w.deps, poll(1)).await.unwrap();
    assert_eq!(dest(&w).await.state, DestState::Ready);
}

#[tokio::test]
async fn the_first_comment_follows_publishing_and_its_failure_does_not_fail_the_post() {
    for fails in [false, true] {
        let w = world().await;
        let mut request = carousel_request(&[MediaKind::Image]);
        request.options.first_comment = Some("#autumn #sale".into());
        let key = store_request(&w, request).await;
        set_state(&w, DestState::Ready).await;
        if fails {
            *w.graph.comment_error.lock().unwrap() = Some(GraphError::from_response(400, br#"{"error":{"message":"Permissions error","code":200}}"#));
        }
        publish::publish(&w.deps, key).await.unwrap();
        let d = dest(&w).await;
        assert_eq!(d.state, DestState::Published);
        if fails {
            assert!(d.first_comment_error.unwrap().contains("Permissions error"));
        } else {
            assert_eq!(d.first_comment_id.as_deref(), Some("K1"));
            assert_eq!(*w.graph.comments.lock().unwrap(), ["#autumn #sale"]);
        }
    }
}

#[tokio::test]
async fn an_expired_container_is_made_again_once_then_fails() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Video, None).await;
    create_container::start(&w.deps, key.clone()).await.unwrap();
    w.graph.statuses([ContainerStatus::Expired]);
    poll_status::handle(&w.deps, poll(1)).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.container_id.clone(), d.recreated), (DestState::Queued, None, true));
    // The stream hands the QUEUED destination to create-container again.
    create_container::start(&w.deps, key).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.container_id.as_deref()), (DestState::Processing, Some("C2")));
    w.graph.statuses([ContainerStatus::Expired]);
    poll_status::handle(&w.deps, poll(1)).await.unwrap();
    let d = dest(&w).await;
    assert_eq!(d.state, DestState::Failed);
    assert!(d.failure.unwrap().reason.contains("twice"));
}

#[tokio::test]
async fn a_container_refused_at_publish_is_checked_then_made_again() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Image, None).await;
    set_state(&w, DestState::Ready).await;
    w.graph.publishes.lock().unwrap().push_back(Err(GraphError::from_response(
        400,
        br#"{"error":{"message":"Create media has failed","code":-1,"error_subcode":2207032}}"#,
    )));
    w.graph.statuses([ContainerStatus::Finished]);
    publish::publish(&w.deps, key).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.recreated, d.container_id.clone()), (DestState::Queued, true, None));
}

#[tokio::test]
async fn high_api_usage_pauses_the_account_and_its_next_steps_wait() {
    let mut w = world().await;
    // The metered client in front of the scripted one, as Pipeline::new builds it.
    w.deps.graph = Arc::new(crate::graph::MeteredGraph::new(w.graph.clone(), w.store.clone(), w.deps.clock.clone()));
    let key = stored_post(&w, MediaKind::Video, None).await;
    *w.graph.usage.lock().unwrap() = Some(crate::account::ApiUsage { app: 10, account: 85, regain_minutes: 0 });
    create_container::start(&w.deps, key).await.unwrap();
    let usage = w.store.get_account_usage(ACCOUNT).await.unwrap().unwrap();
    assert_eq!(usage.latest.unwrap().account, 85);
    let until = usage.throttled_until.unwrap();
    assert_eq!(until, NOW + Duration::from_secs(60), "no estimate given: one minute first");
    // The container was made (the call that reported the usage); the poll that follows waits.
    w.graph.statuses([ContainerStatus::Finished]);
    poll_status::handle(&w.deps, poll(1)).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.resume_state), (DestState::Deferred, Some(DestState::Processing)));
    assert_eq!(w.graph.calls("status"), 0, "no status call while the account is paused");
    assert!(d.history.last().unwrap().note.as_deref().unwrap().contains("rate limit"));
}

#[tokio::test]
async fn a_throttled_publish_is_deferred_by_metas_estimate() {
    let mut w = world().await;
    w.deps.graph = Arc::new(crate::graph::MeteredGraph::new(w.graph.clone(), w.store.clone(), w.deps.clock.clone()));
    let key = stored_post(&w, MediaKind::Image, None).await;
    set_state(&w, DestState::Ready).await;
    *w.graph.usage.lock().unwrap() = Some(crate::account::ApiUsage { app: 10, account: 100, regain_minutes: 12 });
    w.graph.publishes.lock().unwrap().push_back(Err(GraphError::from_response(
        400,
        br#"{"error":{"message":"Application request limit reached","code":80002,"is_transient":true}}"#,
    )));
    // The quota read reports 100 % and media_publish answers 80002: wait Meta's estimate.
    publish::publish(&w.deps, key).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.resume_state), (DestState::Deferred, Some(DestState::Ready)));
    assert_eq!(d.deferred_until, Some(NOW + Duration::from_secs(12 * 60)));
}

// ---- sweep (the watchdog) ----

/// The same world, seen `later` (the sweep runs on its own clock).
async fn later(w: &World, later: Duration) -> World {
    let mut late = world().await;
    late.store = w.store.clone();
    late.deps.store = w.store.clone();
    late.deps.graph = w.graph.clone();
    late.deps.scheduler = w.scheduler.clone();
    late.deps.clock = Arc::new(FixedClock(NOW + later));
    late
}

fn watchdog() -> crate::polling::WatchdogPolicy {
    crate::polling::WatchdogPolicy { grace: Duration::from_secs(600), max_rearms: 3, batch: 10 }
}

#[tokio::test]
async fn a_queued_destination_whose_stream_record_was_lost_is_restarted_after_the_grace() {
    let w = world().await;
    stored_post(&w, MediaKind::Image, None).await;
    // Nothing happened to it (the stream record was dropped). Within the grace: left alone.
    let report = super::sweep::handle(&later(&w, Duration::from_secs(599)).await.deps, &watchdog()).await.unwrap();
    assert_eq!((report.overdue, report.rearmed), (0, 0));
    assert_eq!(w.graph.calls("create"), 0);
    // Past it: the container is made, through the same step.
    let report = super::sweep::handle(&later(&w, Duration::from_secs(601)).await.deps, &watchdog()).await.unwrap();
    assert_eq!((report.overdue, report.rearmed, report.failed), (1, 1, 0));
    let d = dest(&w).await;
    assert_eq!((d.state, d.rearms), (DestState::Ready, 1));
    assert!(d.history.iter().any(|h| h.note.as_deref().is_some_and(|n| n.contains("re-armed by the watchdog"))), "{:?}", d.history);
    // READY, and its stream record lost too: the next sweep publishes it, once.
    let report = super::sweep::handle(&later(&w, Duration::from_secs(1300)).await.deps, &watchdog()).await.unwrap();
    assert_eq!(report.rearmed, 1);
    assert_eq!(dest(&w).await.state, DestState::Published);
    assert_eq!(w.graph.calls("publish"), 1);
    // Final: never swept again.
    let report = super::sweep::handle(&later(&w, Duration::from_secs(99_999)).await.deps, &watchdog()).await.unwrap();
    assert_eq!(report, super::sweep::SweepReport::default());
}

#[tokio::test]
async fn a_scheduled_post_whose_start_never_fired_is_started_by_the_sweep() {
    let w = world().await;
    let at = NOW + Duration::from_secs(3600);
    stored_post(&w, MediaKind::Image, Some(at)).await;
    let report = super::sweep::handle(&later(&w, Duration::from_secs(3600 + 300)).await.deps, &watchdog()).await.unwrap();
    assert_eq!(report.overdue, 0, "Scheduler may still be late; within the grace it is left alone");
    super::sweep::handle(&later(&w, Duration::from_secs(3600 + 601)).await.deps, &watchdog()).await.unwrap();
    assert_eq!(dest(&w).await.state, DestState::Ready);
    assert_eq!(w.graph.calls("create"), 1);
}

#[tokio::test]
async fn a_lost_poll_is_fired_again_at_the_attempt_the_destination_waits_for() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Video, None).await;
    create_container::start(&w.deps, key).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.poll_attempt, d.next_poll_at), (DestState::Processing, 1, Some(NOW + Duration::from_secs(60))));
    // The poll schedule's invocation was dropped. 10 minutes after it was due, the sweep polls.
    w.graph.statuses([ContainerStatus::Finished]);
    let late = later(&w, Duration::from_secs(60 + 601)).await;
    assert_eq!(super::sweep::handle(&late.deps, &watchdog()).await.unwrap().rearmed, 1);
    assert_eq!(dest(&w).await.state, DestState::Ready);
}

#[tokio::test]
async fn a_destination_that_keeps_stalling_fails_with_the_reason_and_waiting_ones_are_left_alone() {
    let w = world().await;
    stored_post(&w, MediaKind::Image, None).await;
    // Restarted three times already, and still nothing moved it.
    let mut d = dest(&w).await;
    d.rearms = 3;
    w.store.save_destination(&mut d).await.unwrap();
    let report = super::sweep::handle(&later(&w, Duration::from_secs(601)).await.deps, &watchdog()).await.unwrap();
    assert_eq!((report.failed, report.rearmed), (1, 0), "{report:?}");
    let d = dest(&w).await;
    assert_eq!(d.state, DestState::Failed);
    let reason = d.failure.unwrap().reason;
    assert!(reason.contains("stalled") && reason.contains("QUEUED") && reason.contains("3 times"), "{reason}");
    assert_eq!(w.graph.calls("create"), 0);

    // AWAITING_AUTH waits for a person: not the watchdog's.
    let w = world().await;
    stored_post(&w, MediaKind::Image, None).await;
    set_state(&w, DestState::AwaitingAuth).await;
    let report = super::sweep::handle(&later(&w, Duration::from_secs(86_400)).await.deps, &watchdog()).await.unwrap();
    assert_eq!(report.overdue, 0);
}

// ---- lost publish answers: the media is recorded only when certain ----

/// Post `id` with `caption`, READY to publish (container `C-<id>`).
async fn ready_post(w: &World, id: &str, caption: &str, placement: Placement) -> DestinationKey {
    let request = PostRequest {
        caption: caption.into(),
        media: vec![MediaItem::new("https://cdn.example.com/a", MediaKind::Image)],
        accounts: vec![ACCOUNT.into()],
        options: PostOptions { placement, ..PostOptions::default() },
        ..PostRequest::default()
    };
    let post = Post::new(id.into(), "generic", id, request, NOW);
    let delivery = Delivery { source: "generic".into(), event_id: id.into(), post_id: id.into(), expires_at: Some(0), fingerprint: None };
    w.store.create_post(&delivery, &post, &post.destinations(NOW)).await.unwrap();
    let mut d = w.store.get_destination(id, ACCOUNT).await.unwrap().unwrap();
    d.state = DestState::Ready;
    d.container_id = Some(format!("C-{id}"));
    w.store.save_destination(&mut d).await.unwrap();
    DestinationKey { post_id: id.into(), account_id: ACCOUNT.into() }
}

fn media(id: &str, caption: Option<&str>, after: u64) -> MediaSummary {
    MediaSummary { id: id.into(), caption: caption.map(Into::into), permalink: None, timestamp: Some(NOW + Duration::from_secs(after)) }
}

#[tokio::test]
async fn two_lost_publishes_with_the_same_caption_each_get_their_own_media() {
    let w = world().await;
    let first = ready_post(&w, "P1", "Same words", Placement::Feed).await;
    let second = ready_post(&w, "P2", "Same words", Placement::Feed).await;
    // P1 publishes at NOW, P2 a minute later; both answers are lost.
    w.graph.publishes.lock().unwrap().extend([Err(GraphError::Timeout), Err(GraphError::Timeout)]);
    assert!(publish::publish(&w.deps, first.clone()).await.is_err());
    let minute = later(&w, Duration::from_secs(60)).await;
    assert!(publish::publish(&minute.deps, second.clone()).await.is_err());
    // Meta has both, newest first; P1's media is older than P2's call.
    *w.graph.recent.lock().unwrap() = vec![media("M2", Some("Same words"), 61), media("M1", Some("Same words"), 1)];
    // P1 looks first: both media came after its call and neither is claimed: not certain, wait.
    w.graph.statuses([ContainerStatus::Published]);
    let err = publish::publish(&minute.deps, first.clone()).await.unwrap_err();
    assert!(matches!(err, crate::Error::Retry(_)), "{err}");
    assert_eq!(w.store.get_destination("P1", ACCOUNT).await.unwrap().unwrap().state, DestState::Publishing);
    // P2: only M2 is after its call.
    w.graph.statuses([ContainerStatus::Published]);
    publish::publish(&minute.deps, second).await.unwrap();
    // P1 again: M2 is P2's now, so M1 is certainly P1's.
    w.graph.statuses([ContainerStatus::Published]);
    publish::publish(&minute.deps, first).await.unwrap();
    let p1 = w.store.get_destination("P1", ACCOUNT).await.unwrap().unwrap();
    let p2 = w.store.get_destination("P2", ACCOUNT).await.unwrap().unwrap();
    assert_eq!((p1.state, p1.media_id.as_deref()), (DestState::Published, Some("M1")));
    assert_eq!((p2.state, p2.media_id.as_deref()), (DestState::Published, Some("M2")));
    assert_eq!(w.graph.calls("publish"), 2, "nothing published twice");
}

#[tokio::test]
async fn a_media_that_cannot_be_told_apart_is_never_guessed_and_gets_no_first_comment() {
    let w = world().await;
    let key = ready_post(&w, "P1", "", Placement::Story).await;
    let mut post = w.store.get_post("P1").await.unwrap().unwrap();
    post.options.first_comment = Some("hello".into());
    w.store.save_post_edit(&post, &mut []).await.unwrap();
    w.graph.publishes.lock().unwrap().push_back(Err(GraphError::Timeout));
    assert!(publish::publish(&w.deps, key.clone()).await.is_err());
    // Two stories appeared after our call (someone else posted one by hand): ambiguous.
    *w.graph.recent.lock().unwrap() = vec![media("S2", None, 3), media("S1", None, 2), media("S0", None, 0)];
    for _ in 1..publish::MAX_RECOVERY_CHECKS {
        w.graph.statuses([ContainerStatus::Published]);
        assert!(publish::publish(&w.deps, key.clone()).await.is_err());
    }
    w.graph.statuses([ContainerStatus::Published]);
    publish::publish(&w.deps, key).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.media_id.as_deref()), (DestState::Published, None));
    assert!(d.first_comment_error.as_deref().is_some_and(|e| e.contains("could not be identified")), "{d:?}");
    assert_eq!(w.graph.calls("comment"), 0);
    assert_eq!(w.graph.calls("publish"), 1);
}

#[tokio::test]
async fn an_unreadable_success_from_media_publish_is_reconciled_not_failed() {
    let w = world().await;
    let key = stored_post(&w, MediaKind::Image, None).await;
    set_state(&w, DestState::Ready).await;
    w.graph.publishes.lock().unwrap().push_back(Err(GraphError::Decode("expected value at line 1 column 1".into())));
    assert!(publish::publish(&w.deps, key.clone()).await.is_err(), "an unknown outcome goes back for a retry");
    assert_eq!(dest(&w).await.state, DestState::Publishing);
    w.graph.statuses([ContainerStatus::Published]);
    *w.graph.recent.lock().unwrap() = vec![media("M7", Some("Autumn sale"), 0)];
    publish::publish(&w.deps, key).await.unwrap();
    let d = dest(&w).await;
    assert_eq!((d.state, d.media_id.as_deref()), (DestState::Published, Some("M7")));
    assert_eq!(w.graph.calls("publish"), 1);
}

#[tokio::test]
async fn an_old_start_firing_after_a_reschedule_arms_the_new_start_and_nothing_else() {
    let w = world().await;
    let new = NOW + Duration::from_secs(7200);
    let key = stored_post(&w, MediaKind::Image, Some(new)).await;
    // The old start (for NOW) was not deleted and fires now; the new one exists already.
    let input = crate::scheduler::StartInput { post_id: key.post_id.clone(), account_id: key.account_id.clone() };
    w.deps.scheduler.schedule_once(&crate::scheduler::OneTimeSchedule::start(input.clone(), NOW)).await.unwrap();
    create_container::start(&w.deps, key).await.unwrap();
    assert_eq!(w.graph.calls("create"), 0, "not started early");
    let names: Vec<String> = w.scheduler.schedules.lock().unwrap().iter().map(|s| s.name.clone()).collect();
    let expected = crate::scheduler::OneTimeSchedule::start_name(&input.post_id, &input.account_id, new);
    assert!(names.contains(&expected), "the new start is armed under its own name: {names:?}");
}

// ---- Graph calls per post (issue 14): the account's call budget is the scarce resource ----

/// Stores post `id` and takes it through create-container, the polls it asks for and publish,
/// as the event sources would. Returns the Graph calls it made, in order.
async fn post_through(w: &World, id: &str, request: PostRequest) -> Vec<String> {
    let before = w.graph.calls.lock().unwrap().len();
    let post = Post::new(id.into(), "generic", id, request, NOW);
    let delivery = Delivery { source: "generic".into(), event_id: id.into(), post_id: id.into(), expires_at: Some(0), fingerprint: None };
    assert_eq!(w.store.create_post(&delivery, &post, &post.destinations(NOW)).await.unwrap(), Created::New);
    let key = DestinationKey { post_id: id.into(), account_id: ACCOUNT.into() };
    create_container::start(&w.deps, key.clone()).await.unwrap();
    let scripted = !w.graph.publishes.lock().unwrap().is_empty();
    if !scripted {
        w.graph.publishes.lock().unwrap().push_back(Ok(format!("M-{id}")));
    }
    for _ in 0..10 {
        let d = w.store.get_destination(id, ACCOUNT).await.unwrap().unwrap();
        if d.state != DestState::Processing {
            break;
        }
        poll_status::handle(&w.deps, PollInput { post_id: id.into(), account_id: ACCOUNT.into(), attempt: d.poll_attempt }).await.unwrap();
    }
    publish::publish(&w.deps, key).await.unwrap();
    let d = w.store.get_destination(id, ACCOUNT).await.unwrap().unwrap();
    assert_eq!(d.state, DestState::Published, "{:?}", d.history);
    w.graph.calls.lock().unwrap()[before..].to_vec()
}

fn single(kind: MediaKind) -> PostRequest {
    PostRequest {
        caption: "Autumn sale".into(),
        media: vec![MediaItem::new("https://cdn.example.com/a", kind)],
        accounts: vec![ACCOUNT.into()],
        ..PostRequest::default()
    }
}

#[tokio::test]
async fn an_image_costs_create_status_publish_permalink_once_the_quota_is_known() {
    let w = world().await;
    // The account's first publish reads the quota (nothing cached yet) ...
    let first = post_through(&w, "P1", single(MediaKind::Image)).await;
    assert_eq!(first, ["create", "status", "quota", "publish", "permalink"]);
    // ... and the next ones do not: four calls, the lower bound.
    for id in ["P2", "P3"] {
        assert_eq!(post_through(&w, id, single(MediaKind::Image)).await, ["create", "status", "publish", "permalink"]);
    }
    let reading = w.store.get_account_usage(ACCOUNT).await.unwrap().unwrap().publishing.unwrap();
    assert_eq!((reading.usage, reading.total, reading.published_since), (0, 100, 3), "our publishes are counted on the reading");
}

#[tokio::test]
async fn a_reel_costs_four_calls_plus_its_polls() {
    let w = world().await;
    post_through(&w, "P0", single(MediaKind::Image)).await;
    // Found finished by the first scheduled poll: one status read.
    assert_eq!(post_through(&w, "P1", single(MediaKind::Video)).await, ["create", "status", "publish", "permalink"]);
    // Still processing at the first poll: one read more, and no other call.
    w.graph.statuses([ContainerStatus::InProgress]);
    assert_eq!(post_through(&w, "P2", single(MediaKind::Video)).await, ["create", "status", "status", "publish", "permalink"]);
}

#[tokio::test]
async fn a_carousel_of_n_costs_n_plus_four_calls_plus_one_look_per_item() {
    let w = world().await;
    post_through(&w, "P0", single(MediaKind::Image)).await;
    let calls = post_through(&w, "P1", carousel_request(&[MediaKind::Image; 3])).await;
    // Three items and the carousel container made; each item looked at once when likely done,
    // the container once (not right after it was made), then publish and permalink.
    assert_eq!(
        calls,
        ["create", "create", "create", "status", "status", "status", "create", "status", "publish", "permalink"]
    );
}

#[tokio::test]
async fn the_quota_is_read_again_near_the_cap_or_when_the_reading_is_stale() {
    let w = world().await;
    *w.graph.quota.lock().unwrap() = Some(PublishingLimit { usage: 8, total: 10, window_secs: 86_400 });
    assert!(post_through(&w, "P1", single(MediaKind::Image)).await.contains(&"quota".to_string()));
    // 8 + 1 of 10 used by our count: one left, the cap is near, so it is read before each publish.
    *w.graph.quota.lock().unwrap() = Some(PublishingLimit { usage: 9, total: 10, window_secs: 86_400 });
    assert!(post_through(&w, "P2", single(MediaKind::Image)).await.contains(&"quota".to_string()));
    // Far from the cap but read 6 hours ago: read again.
    *w.graph.quota.lock().unwrap() = Some(PublishingLimit { usage: 0, total: 100, window_secs: 86_400 });
    let stale = NOW - w.deps.polling.quota_cache;
    let mut usage = w.store.get_account_usage(ACCOUNT).await.unwrap().unwrap();
    usage.publishing = Some(crate::account::QuotaReading { usage: 0, total: 100, read_at: stale, published_since: 0 });
    w.store.put_account_usage(&usage).await.unwrap();
    assert!(post_through(&w, "P3", single(MediaKind::Image)).await.contains(&"quota".to_string()));
    assert!(!post_through(&w, "P4", single(MediaKind::Image)).await.contains(&"quota".to_string()));
}

#[tokio::test]
async fn metas_publishing_limit_answer_still_defers_and_the_next_publish_reads_the_quota() {
    let w = world().await;
    post_through(&w, "P0", single(MediaKind::Image)).await;
    let key = store_request(&w, single(MediaKind::Image)).await;
    create_container::start(&w.deps, key.clone()).await.unwrap();
    // Another app used up the quota: our cached reading does not know it; Meta's answer does.
    w.graph.publishes.lock().unwrap().push_back(Err(GraphError::from_response(
        400,
        br#"{"error":{"message":"The content publishing limit was reached","code":9,"error_subcode":2207042}}"#,
    )));
    let before = w.graph.calls("quota");
    publish::publish(&w.deps, key.clone()).await.unwrap();
    assert_eq!(w.graph.calls("quota"), before, "no read before the publish: the reading was fresh");
    let d = dest(&w).await;
    assert_eq!((d.state, d.resume_state), (DestState::Deferred, Some(DestState::Ready)));
    assert_eq!(d.deferred_until, Some(NOW + w.deps.polling.quota_recheck));
    // Woken and READY again: this time the quota is read first.
    poll_status::handle(&w.deps, poll(d.poll_attempt)).await.unwrap();
    publish::publish(&w.deps, key).await.unwrap();
    assert_eq!(w.graph.calls("quota"), before + 1);
    assert_eq!(dest(&w).await.state, DestState::Published);
}

/// Accepts a Reel and makes its container (no poll fired yet).
async fn start_reel(w: &World, id: &str) {
    let key = DestinationKey { post_id: id.into(), account_id: ACCOUNT.into() };
    let post = Post::new(id.into(), "generic", id, single(MediaKind::Video), NOW);
    let delivery = Delivery { source: "generic".into(), event_id: id.into(), post_id: id.into(), expires_at: Some(0), fingerprint: None };
    w.store.create_post(&delivery, &post, &post.destinations(NOW)).await.unwrap();
    create_container::start(&w.deps, key).await.unwrap();
}

#[tokio::test]
async fn the_first_look_moves_to_where_the_account_s_last_container_was_found_done() {
    let w = world().await;
    post_through(&w, "P0", single(MediaKind::Image)).await;
    // Missed at the first look (1 ms): found by the next (2 ms), which the account keeps.
    w.graph.statuses([ContainerStatus::InProgress]);
    assert_eq!(post_through(&w, "P1", single(MediaKind::Image)).await, ["create", "status", "status", "publish", "permalink"]);
    let learnt = w.store.get_account_usage(ACCOUNT).await.unwrap().unwrap().processing.get(crate::account::ProcessingStage::Image, NOW);
    assert_eq!(learnt, Some(Duration::from_millis(2)));
    // The next image is looked at there first, and found done: one look.
    assert_eq!(post_through(&w, "P2", single(MediaKind::Image)).await, ["create", "status", "publish", "permalink"]);
    // A Reel missed by its first poll (60 s) and found by the second (90 s after creation on
    // this fixed clock): done within (60 s, 90 s], so the next Reel is looked at in the middle.
    w.graph.statuses([ContainerStatus::InProgress]);
    post_through(&w, "P3", single(MediaKind::Video)).await;
    let first_poll = |id: &str| {
        let prefix = format!("poll-{id}");
        w.scheduler.schedules.lock().unwrap().iter().rev().find(|s| s.name.starts_with(&prefix)).unwrap().at
    };
    start_reel(&w, "P4").await;
    assert_eq!(first_poll("P4"), NOW + Duration::from_secs(75));
    // Missed there: the next look is at the window's end (90 s), not a poll interval later.
    w.graph.statuses([ContainerStatus::InProgress]);
    let poll = |attempt| PollInput { post_id: "P4".into(), account_id: ACCOUNT.into(), attempt };
    poll_status::handle(&w.deps, poll(1)).await.unwrap();
    assert_eq!(first_poll("P4"), NOW + Duration::from_secs(90));
    let calls = w.graph.calls.lock().unwrap().len();
    poll_status::handle(&w.deps, poll(2)).await.unwrap();
    assert_eq!(w.store.get_destination("P4", ACCOUNT).await.unwrap().unwrap().state, DestState::Ready);
    assert_eq!(w.graph.calls.lock().unwrap().len(), calls + 1, "found by the one look at the end");
    // The window is now (75 s, 90 s]: the next Reel is looked at in its middle.
    start_reel(&w, "P5").await;
    assert_eq!(first_poll("P5"), NOW + Duration::from_millis(82_500));
}

#[tokio::test]
async fn a_poll_that_fires_late_learns_from_when_it_looked_not_where_it_was_placed() {
    let w = world().await;
    post_through(&w, "P0", single(MediaKind::Image)).await;
    // Done within (60 s, 90 s], as above; the next Reel's first poll is placed at 75 s.
    w.graph.statuses([ContainerStatus::InProgress]);
    post_through(&w, "P3", single(MediaKind::Video)).await;
    start_reel(&w, "P4").await;
    // It fires 5 s late and finds the container done: done by 80 s, which is all it knows.
    let late = later(&w, Duration::from_secs(80)).await;
    poll_status::handle(&late.deps, PollInput { post_id: "P4".into(), account_id: ACCOUNT.into(), attempt: 1 }).await.unwrap();
    let usage = w.store.get_account_usage(ACCOUNT).await.unwrap().unwrap();
    let video = crate::account::ProcessingStage::Video;
    assert_eq!(usage.processing.get(video, NOW), Some(Duration::from_secs(80)));
    assert_eq!(usage.processing.first_look(video, NOW), Some(Duration::from_secs(70)), "the middle of (60 s, 80 s]");
}
