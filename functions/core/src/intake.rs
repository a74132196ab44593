//! The one accept path of every source: the generic and routed webhooks, EventBridge events,
//! the posts API and the CSV import. It checks the request, checks that every account is
//! registered, and stores the post, its destinations and every de-duplication key that names it
//! in one DynamoDB transaction — or records why an event made no post. Each entry point turns
//! the typed outcome ([`Accepted`] or [`Refusal`]) into its own answer.

use std::collections::HashMap;

use serde_json::{Value, json};
use time::OffsetDateTime;
use tracing::Instrument;

use crate::post::{Destination, Post, PostRequest, overall_state};
use crate::sources::mapped::{DedupeKey, Mapped, Outcome};
use crate::sources::{RequestError, validate};
use crate::store::{Created, DELIVERY_MEMORY_SECS, Delivery, PostStore, Skipped};

/// A new post id (a ULID: sortable by creation time).
pub fn new_post_id() -> String {
    ulid::Ulid::new().to_string()
}

/// What to do about an account that is not registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnknownAccounts {
    /// The sender named the accounts: refuse, naming `accounts[i]` ([`Refusal::UnknownAccount`]).
    Refuse,
    /// The routing named them (`route`): the routing's mistake, not the sender's. Acknowledge
    /// and record why (a refusal would only be retried, and Shopify drops subscriptions that
    /// keep failing).
    Skip { route: String },
}

/// A request to post, with the keys that make it happen at most once.
#[derive(Clone, Debug, PartialEq)]
pub struct Submission {
    pub post_id: String,
    /// The delivery's own key: what a retry of the same delivery repeats.
    pub delivery: DedupeKey,
    /// Content keys claimed in the same transaction (a product, an entry revision, a blog
    /// post), so another delivery of the same content finds the post already made.
    pub also: Vec<DedupeKey>,
    pub request: PostRequest,
    pub unknown_accounts: UnknownAccounts,
    /// How long the keys are remembered (their items' TTL), in seconds.
    pub memory_secs: i64,
    /// Recorded with the delivery's own key (see [`Delivery::fingerprint`]).
    pub fingerprint: Option<String>,
}

impl Submission {
    /// A new post keyed by `delivery` alone, refused for an unknown account, remembered for
    /// [`DELIVERY_MEMORY_SECS`].
    pub fn new(delivery: DedupeKey, request: PostRequest) -> Submission {
        Submission {
            post_id: new_post_id(),
            delivery,
            also: Vec::new(),
            request,
            unknown_accounts: UnknownAccounts::Refuse,
            memory_secs: DELIVERY_MEMORY_SECS,
            fingerprint: None,
        }
    }

    /// The keys stored with the post: the delivery's own, forgotten when its sender stops
    /// retrying (after `memory_secs`), then the content keys, which are not.
    pub fn deliveries(&self, now: OffsetDateTime) -> Vec<Delivery> {
        let key = |key: &DedupeKey, expires_at, fingerprint| Delivery {
            source: key.source.clone(),
            event_id: key.event_id.clone(),
            post_id: self.post_id.clone(),
            expires_at,
            fingerprint,
        };
        std::iter::once(key(&self.delivery, Some(now.unix_timestamp() + self.memory_secs), self.fingerprint.clone()))
            .chain(self.also.iter().map(|k| key(k, None, None)))
            .collect()
    }
}

/// What became of an accepted event.
// One short-lived value per request: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Accepted {
    /// A new post, stored with its destinations.
    Posted { post: Post, destinations: Vec<Destination> },
    /// This delivery, or another one of the same content, made that post already.
    Duplicate { post_id: String },
    /// Acknowledged, recorded, not posted.
    Skipped { reason: String },
}

impl Accepted {
    /// The webhooks' answer: 202 for a post (new or known), 200 for an event acknowledged and
    /// skipped.
    pub fn status(&self) -> u16 {
        match self {
            Accepted::Posted { .. } | Accepted::Duplicate { .. } => 202,
            Accepted::Skipped { .. } => 200,
        }
    }

    /// The webhooks' and ingest-event's body: `{"post_id", "state"}`, `{"post_id",
    /// "duplicate": true}` or `{"skipped": true, "reason"}`.
    pub fn to_json(&self) -> Value {
        match self {
            Accepted::Posted { post, destinations } => {
                json!({ "post_id": post.post_id, "state": overall_state(destinations) })
            }
            Accepted::Duplicate { post_id } => json!({ "post_id": post_id, "duplicate": true }),
            Accepted::Skipped { reason } => json!({ "skipped": true, "reason": reason }),
        }
    }
}

/// An account named by a request that is not registered with instapipe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownAccount {
    /// Its position in the request's `accounts`.
    pub index: usize,
    pub account: String,
}

impl UnknownAccount {
    pub fn field(&self) -> String {
        format!("accounts[{}]", self.index)
    }

    pub fn message(&self) -> String {
        format!("Instagram account {} is not registered with instapipe", self.account)
    }

    /// `422 unknown_account` naming `accounts[i]`.
    pub fn to_request_error(&self) -> RequestError {
        RequestError::field(422, "unknown_account", self.field(), self.message())
    }
}

impl std::fmt::Display for UnknownAccount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field(), self.message())
    }
}

/// Why nothing was stored.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    /// The request breaks a rule every post must keep (422 naming the field).
    #[error(transparent)]
    Invalid(#[from] RequestError),
    /// Only with [`UnknownAccounts::Refuse`].
    #[error("{0}")]
    UnknownAccount(UnknownAccount),
    /// The table could not be read or written: nothing was kept, the sender may retry.
    #[error(transparent)]
    Store(#[from] crate::Error),
}

impl Refusal {
    /// The HTTP answer: the request's own error, `422 unknown_account` naming `accounts[i]`, or
    /// what the entry point's `unavailable` makes of a storage failure (a 503 in its words).
    pub fn into_request_error(self, unavailable: impl FnOnce(crate::Error) -> RequestError) -> RequestError {
        match self {
            Refusal::Invalid(err) => err,
            Refusal::UnknownAccount(unknown) => unknown.to_request_error(),
            Refusal::Store(err) => unavailable(err),
        }
    }
}

/// The accept path over one store. It remembers which accounts it found registered, so a bulk
/// import reads each account once.
pub struct Intake<'a> {
    store: &'a dyn PostStore,
    known: HashMap<String, bool>,
}

impl<'a> Intake<'a> {
    pub fn new(store: &'a dyn PostStore) -> Intake<'a> {
        Intake { store, known: HashMap::new() }
    }

    /// The first account of `request` that is not registered, if any.
    pub async fn unknown_account(&mut self, request: &PostRequest) -> crate::Result<Option<UnknownAccount>> {
        for (index, account) in request.accounts.iter().enumerate() {
            let registered = match self.known.get(account) {
                Some(&registered) => registered,
                None => {
                    let registered = self.store.get_account(account).await?.is_some();
                    self.known.insert(account.clone(), registered);
                    registered
                }
            };
            if !registered {
                return Ok(Some(UnknownAccount { index, account: account.clone() }));
            }
        }
        Ok(None)
    }

    /// Checks and stores the post with all its keys at once, or finds the post they already
    /// name. Writes nothing when refused.
    pub async fn accept(&mut self, submission: Submission, now: OffsetDateTime) -> Result<Accepted, Refusal> {
        let deliveries = submission.deliveries(now);
        let Submission { post_id, delivery, also, request, unknown_accounts, memory_secs, fingerprint: _ } = submission;
        validate(&request)?;
        if let Some(unknown) = self.unknown_account(&request).await? {
            return match unknown_accounts {
                UnknownAccounts::Refuse => Err(Refusal::UnknownAccount(unknown)),
                UnknownAccounts::Skip { route } => {
                    let reason = format!("Instagram account {} ({route}) is not registered with instapipe", unknown.account);
                    Ok(self.skip(&delivery, reason, memory_secs, now).await?)
                }
            };
        }
        let route = match &unknown_accounts {
            UnknownAccounts::Skip { route } => Some(route.clone()),
            UnknownAccounts::Refuse => None,
        };
        let post = Post::new(post_id, &delivery.source, &delivery.event_id, request, now);
        let span = tracing::info_span!(
            "ingest",
            post_id = %post.post_id,
            source = %delivery.source,
            route = tracing::field::Empty,
            state = tracing::field::Empty,
        );
        if let Some(route) = &route {
            span.record("route", route.as_str());
        }
        async move {
            let destinations = post.destinations(now);
            match self.store.create_post_claiming(&deliveries, &post, &destinations).await? {
                Created::New => {
                    let state = overall_state(&destinations);
                    tracing::Span::current().record("state", state.as_str());
                    tracing::info!(accounts = destinations.len(), publish_at = ?post.publish_at, "post accepted");
                    Ok(Accepted::Posted { post, destinations })
                }
                Created::Duplicate { post_id } => {
                    tracing::info!(%post_id, "delivery or content seen before; same post");
                    if !also.is_empty() {
                        // Another delivery of the same content may have made it: say on this
                        // delivery which post it repeats. (With one key the duplicate is that
                        // key itself, already recorded.)
                        self.record(&delivery, format!("already posted as {post_id}"), memory_secs, now).await?;
                    }
                    Ok(Accepted::Duplicate { post_id })
                }
            }
        }
        .instrument(span)
        .await
    }

    /// A routed source's event: posted as [`accept`](Self::accept) does (an unknown account
    /// skips it), or skipped as its mapping decided.
    pub async fn accept_mapped(&mut self, mapped: Mapped, now: OffsetDateTime) -> Result<Accepted, Refusal> {
        let Mapped { delivery, outcome } = mapped;
        match outcome {
            Outcome::Skip(reason) => Ok(self.skip(&delivery, reason, DELIVERY_MEMORY_SECS, now).await?),
            Outcome::Post { request, route, also } => {
                let submission = Submission {
                    also,
                    unknown_accounts: UnknownAccounts::Skip { route },
                    ..Submission::new(delivery, request)
                };
                self.accept(submission, now).await
            }
        }
    }

    /// Acknowledges without posting, and remembers why under the delivery's key.
    pub async fn skip(&self, delivery: &DedupeKey, reason: String, memory_secs: i64, now: OffsetDateTime) -> crate::Result<Accepted> {
        tracing::info!(source = %delivery.source, event_id = %delivery.event_id, %reason, "event skipped");
        self.record(delivery, reason.clone(), memory_secs, now).await?;
        Ok(Accepted::Skipped { reason })
    }

    /// Writes the reason under the delivery's key unless the key is known already.
    async fn record(&self, delivery: &DedupeKey, reason: String, memory_secs: i64, now: OffsetDateTime) -> crate::Result<()> {
        let skipped = Skipped {
            source: delivery.source.clone(),
            event_id: delivery.event_id.clone(),
            reason,
            at: now,
            expires_at: now.unix_timestamp() + memory_secs,
        };
        self.store.record_skipped(&skipped).await
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::account::{Account, AccountStatus, LoginFlavour};
    use crate::post::{DestState, MediaItem, MediaKind, PostState};
    use crate::store::{DeliveryLog, MemoryStore};

    const NOW: OffsetDateTime = datetime!(2026-11-23 10:00 UTC);
    const KNOWN: &str = "17841400000000001";
    const UNKNOWN: &str = "17841400000000002";

    async fn store() -> MemoryStore {
        let store = MemoryStore::default();
        let account = Account { account_id: KNOWN.into(), login: LoginFlavour::Instagram, status: AccountStatus::Active, token_expires_at: None };
        store.put_account(&account).await.unwrap();
        store
    }

    fn request(accounts: &[&str]) -> PostRequest {
        PostRequest {
            caption: "Autumn".into(),
            media: vec![MediaItem::new("https://cdn.example.com/a.jpg", MediaKind::Image)],
            accounts: accounts.iter().map(|a| a.to_string()).collect(),
            ..PostRequest::default()
        }
    }

    fn mapped(event_id: &str, accounts: &[&str], also: &[&str]) -> Mapped {
        Mapped {
            delivery: DedupeKey::new("shopify", event_id),
            outcome: Outcome::Post {
                request: request(accounts),
                route: "shop autumn.myshopify.com".into(),
                also: also.iter().map(|k| DedupeKey::new("shopify-product", *k)).collect(),
            },
        }
    }

    #[tokio::test]
    async fn a_new_post_is_stored_with_its_destinations_and_its_key_remembered() {
        let store = store().await;
        let submission = Submission::new(DedupeKey::new("generic", "msg_1"), request(&[KNOWN]));
        let post_id = submission.post_id.clone();
        let accepted = Intake::new(&store).accept(submission, NOW).await.unwrap();
        let Accepted::Posted { post, destinations } = &accepted else { panic!("{accepted:?}") };
        assert_eq!((post.post_id.as_str(), post.source.as_str(), post.source_event_id.as_str()), (post_id.as_str(), "generic", "msg_1"));
        assert_eq!(destinations.len(), 1);
        assert_eq!(destinations[0].state, DestState::Queued);
        assert_eq!(accepted.status(), 202);
        assert_eq!(accepted.to_json(), json!({ "post_id": post_id, "state": PostState::InProgress }));
        assert_eq!(store.delivered_post("generic", "msg_1").await.unwrap(), Some(post_id.clone()));
        assert_eq!(store.delivery_expires_at("generic", "msg_1"), Some(NOW.unix_timestamp() + DELIVERY_MEMORY_SECS));

        // The same delivery again: the same post, nothing new.
        let again = Submission::new(DedupeKey::new("generic", "msg_1"), request(&[KNOWN]));
        let accepted = Intake::new(&store).accept(again, NOW).await.unwrap();
        assert_eq!(accepted, Accepted::Duplicate { post_id: post_id.clone() });
        assert_eq!(accepted.to_json(), json!({ "post_id": post_id, "duplicate": true }));
        assert_eq!(store.post_count(), 1);
    }

    #[tokio::test]
    async fn keys_are_remembered_as_long_as_the_submission_asks() {
        let store = store().await;
        let year = 365 * 24 * 3600;
        let submission = Submission { memory_secs: year, ..Submission::new(DedupeKey::new("csv", "row-hash"), request(&[KNOWN])) };
        Intake::new(&store).accept(submission, NOW).await.unwrap();
        assert_eq!(store.delivery_expires_at("csv", "row-hash"), Some(NOW.unix_timestamp() + year));
    }

    #[tokio::test]
    async fn an_unknown_account_is_refused_by_its_position_and_nothing_is_written() {
        let store = store().await;
        let submission = Submission::new(DedupeKey::new("api", "key-1"), request(&[KNOWN, UNKNOWN]));
        let err = Intake::new(&store).accept(submission, NOW).await.unwrap_err();
        let Refusal::UnknownAccount(unknown) = err else { panic!("{err:?}") };
        let answer = unknown.to_request_error();
        assert_eq!((answer.status, answer.code, answer.field.as_deref()), (422, "unknown_account", Some("accounts[1]")));
        assert_eq!(answer.message, format!("Instagram account {UNKNOWN} is not registered with instapipe"));
        assert_eq!(unknown.to_string(), format!("accounts[1]: Instagram account {UNKNOWN} is not registered with instapipe"));
        assert_eq!(store.post_count(), 0);
        assert_eq!(store.delivered_post("api", "key-1").await.unwrap(), None);
        assert_eq!(store.skipped_reason("api", "key-1"), None, "a refusal records nothing");
    }

    #[tokio::test]
    async fn an_invalid_request_is_refused_naming_the_field() {
        let store = store().await;
        let mut bad = request(&[KNOWN]);
        bad.media.clear();
        let err = Intake::new(&store).accept(Submission::new(DedupeKey::new("generic", "m"), bad), NOW).await.unwrap_err();
        let Refusal::Invalid(err) = err else { panic!("{err:?}") };
        assert_eq!((err.status, err.field.as_deref()), (422, Some("media")));
        assert_eq!(store.post_count(), 0);
    }

    #[tokio::test]
    async fn a_routed_event_for_an_unknown_account_is_skipped_and_its_reason_recorded() {
        let store = store().await;
        let accepted = Intake::new(&store).accept_mapped(mapped("evt_1", &[UNKNOWN], &["p1"]), NOW).await.unwrap();
        let reason = format!("Instagram account {UNKNOWN} (shop autumn.myshopify.com) is not registered with instapipe");
        assert_eq!(accepted, Accepted::Skipped { reason: reason.clone() });
        assert_eq!(accepted.status(), 200);
        assert_eq!(store.skipped_reason("shopify", "evt_1"), Some(reason));
        assert_eq!(store.post_count(), 0);
        assert_eq!(store.delivered_post("shopify-product", "p1").await.unwrap(), None, "the content key stays free");
    }

    #[tokio::test]
    async fn another_delivery_of_the_same_content_is_a_duplicate_that_says_which_post() {
        let store = store().await;
        let first = Intake::new(&store).accept_mapped(mapped("evt_1", &[KNOWN], &["p1"]), NOW).await.unwrap();
        let Accepted::Posted { post, .. } = first else { panic!("{first:?}") };
        let second = Intake::new(&store).accept_mapped(mapped("evt_2", &[KNOWN], &["p1"]), NOW).await.unwrap();
        assert_eq!(second, Accepted::Duplicate { post_id: post.post_id.clone() });
        assert_eq!(store.skipped_reason("shopify", "evt_2"), Some(format!("already posted as {}", post.post_id)));
        assert_eq!(store.post_count(), 1);
        // The delivery is forgotten after the senders' retry window; the product key is not, so
        // a products/update months later still finds the post.
        assert_eq!(store.delivery_expires_at("shopify", "evt_1"), Some(NOW.unix_timestamp() + DELIVERY_MEMORY_SECS));
        assert_eq!(store.delivery_expires_at("shopify-product", "p1"), None);
    }

    #[tokio::test]
    async fn a_mapping_that_skips_is_recorded_without_checking_anything() {
        let store = store().await;
        let skip = Mapped { delivery: DedupeKey::new("wordpress", "w1"), outcome: Outcome::Skip("a draft".into()) };
        let accepted = Intake::new(&store).accept_mapped(skip, NOW).await.unwrap();
        assert_eq!(accepted.to_json(), json!({ "skipped": true, "reason": "a draft" }));
        assert_eq!(store.skipped_reason("wordpress", "w1").as_deref(), Some("a draft"));
        assert_eq!(store.delivery_expires_at("wordpress", "w1"), Some(NOW.unix_timestamp() + DELIVERY_MEMORY_SECS));
    }

    #[tokio::test]
    async fn the_account_check_remembers_what_it_read() {
        let store = store().await;
        let mut intake = Intake::new(&store);
        assert_eq!(intake.unknown_account(&request(&[KNOWN, UNKNOWN])).await.unwrap().map(|u| u.index), Some(1));
        let account = Account { account_id: UNKNOWN.into(), login: LoginFlavour::Instagram, status: AccountStatus::Active, token_expires_at: None };
        store.put_account(&account).await.unwrap();
        // A bulk import checks each account once, before it writes anything.
        assert_eq!(intake.unknown_account(&request(&[UNKNOWN])).await.unwrap().map(|u| u.index), Some(0));
        assert_eq!(Intake::new(&store).unknown_account(&request(&[KNOWN, UNKNOWN])).await.unwrap(), None);
    }
}
