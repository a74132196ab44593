//! `POST /webhooks/contentful`: Contentful `ContentManagement.Entry.publish` webhooks.
//!
//! Verified like `verifyRequest` of Contentful's node-apps-toolkit: HMAC-SHA256 (key: the
//! signing secret's UTF-8 bytes) over the canonical request — method, path, the signed headers
//! sorted as `name:value;…`, the raw body — compared in constant time, with the signed
//! millisecond timestamp inside ±5 minutes (the toolkit's 30 s is too tight for a cold start).
//!
//! Posted: a published entry of a routed space and content type, with the route's fields in its
//! locale and its asset links resolved through the Delivery API. Once per entry revision, and once
//! per entry unless the route sets `repost_updates`. Other topics are acknowledged and skipped.

use hmac::{Hmac, Mac};
use http::{HeaderMap, Uri};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::Sha256;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::RequestError;
use super::contentful_assets::{AssetError, AssetResolver};
use super::mapped::{DedupeKey, Mapped, Outcome};
use super::text::fit_caption;
use crate::error::Error;
use crate::post::{MediaItem, MediaKind, PostRequest};
use crate::routing::{MediaChoice, Routing};

pub const SOURCE: &str = "contentful";
pub const PUBLISH_TOPIC: &str = "ContentManagement.Entry.publish";
pub const TOLERANCE_MS: i128 = 300_000;
/// The toolkit refuses timestamps before 2020 (a seconds value sent by mistake).
const MIN_TIMESTAMP_MS: i64 = 1_577_836_800_000;
const MAX_ITEMS: usize = 10;

pub struct ContentfulVerifier {
    keys: Vec<Vec<u8>>,
}

/// Says how many keys there are, never what they are.
impl std::fmt::Debug for ContentfulVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContentfulVerifier({} keys, redacted)", self.keys.len())
    }
}

impl ContentfulVerifier {
    /// `secrets`: one or more 64-character signing secrets separated by spaces or commas.
    pub fn new(secrets: &str) -> Result<Self, Error> {
        let keys: Vec<Vec<u8>> = secrets.split([' ', ',']).filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()).collect();
        if keys.is_empty() {
            return Err(Error::Config("no Contentful signing secret configured".into()));
        }
        if keys.iter().any(|k| k.len() != 64) {
            // The message never repeats the secret.
            return Err(Error::Config("a Contentful signing secret must be exactly 64 characters".into()));
        }
        Ok(ContentfulVerifier { keys })
    }

    pub fn verify(&self, method: &str, uri: &Uri, headers: &HeaderMap, body: &[u8], now: OffsetDateTime) -> Result<(), RequestError> {
        let signature = header(headers, "x-contentful-signature")?;
        let signature = (signature.len() == 64)
            .then(|| decode_hex(signature))
            .flatten()
            .ok_or_else(|| unauthorized("x-contentful-signature is not 64 hex characters"))?;
        let listed: Vec<&str> = header(headers, "x-contentful-signed-headers")?.split(',').collect();
        if listed.len() < 2 {
            return Err(unauthorized("x-contentful-signed-headers lists fewer than 2 headers"));
        }
        let ts: i64 = header(headers, "x-contentful-timestamp")?
            .parse()
            .ok()
            .filter(|&ts| ts > MIN_TIMESTAMP_MS)
            .ok_or_else(|| unauthorized("x-contentful-timestamp is not a time in milliseconds"))?;
        let age_ms = now.unix_timestamp_nanos() / 1_000_000 - i128::from(ts);
        if age_ms >= TOLERANCE_MS {
            return Err(unauthorized("x-contentful-timestamp is more than 5 minutes old"));
        }
        if -age_ms > TOLERANCE_MS {
            return Err(unauthorized("x-contentful-timestamp is more than 5 minutes in the future"));
        }

        // The listed headers that were received, then the two that are always signed.
        let mut signed: Vec<(String, String)> = Vec::new();
        for &name in &listed {
            if name == "x-contentful-signed-headers" || name == "x-contentful-timestamp" || name != name.to_ascii_lowercase() {
                continue;
            }
            let mut values = headers.get_all(name).iter();
            let Some(first) = values.next() else { continue };
            let value = first.to_str().map_err(|_| unauthorized("a signed header is not visible ASCII"))?.trim();
            if values.any(|v| v.to_str().ok().map(str::trim) != Some(value)) {
                return Err(unauthorized(format!("signed header {name} appears twice with different values")));
            }
            if !signed.iter().any(|(n, _)| n == name) {
                signed.push((name.to_string(), value.to_string()));
            }
        }
        let mut names: Vec<String> = signed.iter().map(|(n, _)| n.clone()).collect();
        names.extend(["x-contentful-signed-headers".to_string(), "x-contentful-timestamp".to_string()]);
        names.sort();
        let signed_list = names.join(",");
        signed.push(("x-contentful-signed-headers".into(), signed_list));
        signed.push(("x-contentful-timestamp".into(), ts.to_string()));
        signed.sort();
        let header_part = signed.iter().map(|(n, v)| format!("{n}:{v}")).collect::<Vec<_>>().join(";");
        let path = match uri.query() {
            Some(query) => encode_uri(&format!("{}?{}", uri.path(), qs_escape(query))),
            None => encode_uri(uri.path()),
        };

        let genuine = self.keys.iter().any(|key| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
            mac.update(format!("{}\n{path}\n{header_part}\n", method.to_ascii_uppercase()).as_bytes());
            mac.update(body);
            mac.verify_slice(&signature).is_ok()
        });
        if genuine { Ok(()) } else { Err(unauthorized("x-contentful-signature does not match the request")) }
    }
}

fn header<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, RequestError> {
    headers
        .get(name)
        .ok_or_else(|| unauthorized(format!("missing header {name}")))?
        .to_str()
        .map(str::trim)
        .map_err(|_| unauthorized(format!("header {name} is not visible ASCII")))
}

fn unauthorized(message: impl Into<String>) -> RequestError {
    RequestError::new(401, "invalid_signature", message)
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    let digit = |b: u8| (b as char).to_digit(16);
    hex.as_bytes().chunks(2).map(|pair| Some((digit(pair[0])? * 16 + digit(*pair.get(1)?)?) as u8)).collect()
}

/// JavaScript's `encodeURI`.
fn encode_uri(s: &str) -> String {
    percent_encode(s, b"!#$&'()*+,-./:;=?@_~")
}

/// Node's `querystring.escape`.
fn qs_escape(s: &str) -> String {
    percent_encode(s, b"!'()*-._~")
}

fn percent_encode(s: &str, safe: &[u8]) -> String {
    s.bytes()
        .map(|b| if b.is_ascii_alphanumeric() || safe.contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

#[derive(Deserialize)]
struct Entry {
    sys: Sys,
    #[serde(default)]
    fields: Map<String, Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sys {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    revision: Option<u64>,
    space: Link,
    #[serde(default)]
    environment: Option<Link>,
    #[serde(default)]
    content_type: Option<Link>,
}

#[derive(Deserialize)]
struct Link {
    sys: LinkSys,
}

#[derive(Deserialize)]
struct LinkSys {
    id: String,
}

/// The space a request's body claims (`sys.space.sys.id`), read before the signature is checked
/// only to choose whose secrets may check it.
pub fn claimed_space(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Claim {
        sys: ClaimSys,
    }
    #[derive(Deserialize)]
    struct ClaimSys {
        space: Link,
    }
    serde_json::from_slice::<Claim>(body).ok().map(|c| c.sys.space.sys.id.trim().to_string())
}

/// Maps a verified request: the topic, space, environment and content type pick the route, whose
/// field mapping reads the entry; asset links are resolved to https URLs.
pub async fn map(headers: &HeaderMap, body: &[u8], routing: &Routing, assets: &dyn AssetResolver) -> Result<Mapped, RequestError> {
    let topic = headers
        .get("x-contentful-topic")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| RequestError::field(400, "invalid_header", "X-Contentful-Topic", "header X-Contentful-Topic is missing"))?;
    let entry: Entry = super::json::parse(body)?;
    let sys = &entry.sys;
    let space = sys.space.sys.id.as_str();
    let environment = sys.environment.as_ref().map_or("master", |e| e.sys.id.as_str());
    let revision = sys.revision.unwrap_or(0);
    // `contentful:<space>:<env>:<entry>:<revision>` names one publish, whichever way it arrives
    // (this webhook, or an EventBridge event with that idempotency key).
    let publish_key = format!("{space}:{environment}:{}:{revision}", sys.id);
    if topic != PUBLISH_TOPIC || sys.kind != "Entry" {
        let delivery = DedupeKey::new(SOURCE, format!("{topic}:{publish_key}"));
        return Ok(Mapped { delivery, outcome: Outcome::Skip(format!("topic {topic} is not handled (only {PUBLISH_TOPIC})")) });
    }
    let delivery = DedupeKey::new(SOURCE, publish_key);
    let skip = |reason: String| Ok(Mapped { delivery: delivery.clone(), outcome: Outcome::Skip(reason) });
    if sys.revision.is_none() {
        return Err(RequestError::field(400, "invalid_body", "sys.revision", "a published entry has a revision"));
    }
    let Some(content_type) = sys.content_type.as_ref().map(|c| c.sys.id.as_str()) else {
        return Err(RequestError::field(400, "invalid_body", "sys.contentType", "an entry has a content type"));
    };
    let Some(route) = routing.contentful(space, environment, content_type) else {
        return skip(format!("no route for Contentful space {space} ({environment}), content type {content_type}"));
    };
    let fields = route.fields.as_ref().expect("validated: contentful routes have fields");
    let locale = route.locale.as_str();
    let value = |field: &str| entry.fields.get(field).and_then(|f| f.get(locale));
    let text = |field: &str| value(field).and_then(Value::as_str).map(str::to_string);

    let mut asset_ids: Vec<(String, &str)> = Vec::new();
    for field in &fields.media {
        let links = match value(field) {
            Some(Value::Array(list)) => list.iter().collect(),
            Some(link) => vec![link],
            None => Vec::new(),
        };
        for link in links {
            let id = link.pointer("/sys/id").and_then(Value::as_str).filter(|_| link.pointer("/sys/linkType") == Some(&Value::from("Asset")));
            let id = id.ok_or_else(|| {
                RequestError::field(422, "invalid_field", format!("fields.{field}.{locale}"), "expected links to assets")
            })?;
            asset_ids.push((id.to_string(), field.as_str()));
        }
    }
    asset_ids.truncate(match route.media {
        MediaChoice::First => 1,
        MediaChoice::All => MAX_ITEMS,
    });
    if asset_ids.is_empty() {
        return skip(format!("entry {} has no asset in {} ({locale})", sys.id, fields.media.join(", ")));
    }
    let mut media = Vec::with_capacity(asset_ids.len());
    for (id, field) in &asset_ids {
        let asset = assets.resolve(space, environment, id, locale).await.map_err(|e| match e {
            AssetError::Unavailable(_) => {
                tracing::warn!(error = %e, "Contentful asset lookup failed");
                RequestError::new(503, "unavailable", "the Contentful Delivery API did not answer; retry later")
            }
            e => RequestError::field(422, "invalid_field", format!("fields.{field}.{locale}"), e.to_string()),
        })?;
        let kind = match asset.content_type.split('/').next() {
            Some("image") => MediaKind::Image,
            Some("video") => MediaKind::Video,
            _ => {
                return Err(RequestError::field(
                    422,
                    "invalid_field",
                    format!("fields.{field}.{locale}"),
                    format!("asset {id} is {}, neither an image nor a video", asset.content_type),
                ));
            }
        };
        media.push(MediaItem::new(asset.url, kind));
    }
    let publish_at = match fields.publish_at.as_deref() {
        None => None,
        Some(field) => match text(field) {
            None => None,
            Some(t) => Some(OffsetDateTime::parse(&t, &Rfc3339).map_err(|_| {
                RequestError::field(422, "invalid_field", format!("fields.{field}.{locale}"), "not a date and time (RFC 3339)")
            })?),
        },
    };
    let caption = route.caption.render(|name| match name {
        "caption" => text(&fields.caption),
        "title" => text(&fields.title),
        "link" => text(&fields.link),
        _ => None,
    });
    let also = if route.repost_updates {
        Vec::new()
    } else {
        vec![DedupeKey::new(SOURCE, format!("entry:{space}:{environment}:{}", sys.id))]
    };
    let request = PostRequest { caption: fit_caption(caption), media, accounts: route.accounts.clone(), publish_at, ..PostRequest::default() };
    Ok(Mapped { delivery, outcome: Outcome::Post { request, route: route.name.clone(), also } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::contentful_assets::{Asset, StaticAssets};
    use crate::sources::fixtures;
    use instapipe_test_support::samples::{CONTENTFUL_AT_MS as TS_MS, CONTENTFUL_SECRET as SECRET};
    use std::collections::HashMap;
    use time::macros::datetime;

    const NAME: &str = "contentful-entry-publish";
    const ACCOUNT: &str = "17841400000000001";

    fn at_ms(ms: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap()
    }

    fn uri() -> Uri {
        "/webhooks/contentful".parse().unwrap()
    }

    fn verify(headers: &HeaderMap, body: &[u8], uri: &Uri, now: OffsetDateTime) -> Result<(), RequestError> {
        ContentfulVerifier::new(SECRET).unwrap().verify("POST", uri, headers, body, now)
    }

    #[test]
    fn the_fixture_verifies_inside_the_window_only() {
        let (headers, body) = (fixtures::headers(NAME), fixtures::body(NAME));
        for now in [TS_MS, TS_MS + 30_000, TS_MS + 299_999, TS_MS - 300_000] {
            verify(&headers, &body, &uri(), at_ms(now)).unwrap();
        }
        assert!(verify(&headers, &body, &uri(), at_ms(TS_MS + 300_000)).unwrap_err().message.contains("old"));
        assert!(verify(&headers, &body, &uri(), at_ms(TS_MS - 300_001)).unwrap_err().message.contains("future"));
    }

    #[test]
    fn tampering_with_anything_signed_fails_and_unsigned_headers_do_not_matter() {
        let (headers, body) = (fixtures::headers(NAME), fixtures::body(NAME));
        let now = at_ms(TS_MS + 1000);
        let mut flipped = body.clone();
        flipped[30] ^= 1;
        assert_eq!(verify(&headers, &flipped, &uri(), now).unwrap_err().status, 401);
        let reserialised = serde_json::to_vec(&fixtures::json(NAME)).unwrap();
        assert!(verify(&headers, &reserialised, &uri(), now).is_err());
        let mut topic = headers.clone();
        topic.insert("x-contentful-topic", "ContentManagement.Entry.unpublish".parse().unwrap());
        assert!(verify(&topic, &body, &uri(), now).is_err());
        let mut removed = headers.clone();
        removed.remove("x-contentful-crn");
        assert!(verify(&removed, &body, &uri(), now).is_err());
        assert!(verify(&headers, &body, &"/webhooks/contentful/".parse().unwrap(), now).is_err());
        let mut twice = headers.clone();
        twice.append("x-contentful-topic", "Other".parse().unwrap());
        assert!(verify(&twice, &body, &uri(), now).unwrap_err().message.contains("twice"));
        let mut idempotency = headers.clone();
        idempotency.insert("x-contentful-idempotency-key", "changed".parse().unwrap());
        verify(&idempotency, &body, &uri(), now).unwrap();
        let other = ContentfulVerifier::new(&"x".repeat(64)).unwrap();
        assert!(other.verify("POST", &uri(), &headers, &body, now).is_err());
        let rotated = ContentfulVerifier::new(&format!("{} {SECRET}", "x".repeat(64))).unwrap();
        rotated.verify("POST", &uri(), &headers, &body, now).unwrap();
    }

    #[test]
    fn garbage_signature_headers_do_not_panic() {
        let (headers, body) = (fixtures::headers(NAME), fixtures::body(NAME));
        let now = at_ms(TS_MS);
        let cases: [(&str, &str); 6] = [
            ("x-contentful-signature", "zz"),
            ("x-contentful-signature", &"g".repeat(64)),
            ("x-contentful-signed-headers", "content-type"),
            ("x-contentful-timestamp", "1791877925"),
            ("x-contentful-timestamp", "soon"),
            ("x-contentful-timestamp", "99999999999999999999999"),
        ];
        for (name, value) in cases {
            let mut h = headers.clone();
            h.insert(name, value.parse().unwrap());
            assert_eq!(verify(&h, &body, &uri(), now).unwrap_err().status, 401, "{name}: {value}");
        }
        assert!(ContentfulVerifier::new("short").is_err());
    }

    #[test]
    fn a_signed_query_is_encoded_like_the_toolkit() {
        assert_eq!(encode_uri(&format!("/hook?{}", qs_escape("x=1"))), "/hook?x%253D1");
        assert_eq!(encode_uri("/webhooks/contentful"), "/webhooks/contentful");
    }

    fn routing(extra: serde_json::Value) -> Routing {
        let mut route = serde_json::json!({"source": "contentful", "space": "demo0space7", "content_type": "instagramPost",
            "fields": {"media": ["heroImage", "gallery"], "publish_at": "publishAt"}, "accounts": [ACCOUNT]});
        route.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        Routing::from_json(Some(&serde_json::json!({ "routes": [route] }).to_string())).unwrap()
    }

    fn assets() -> StaticAssets {
        let asset = |n: u8| Asset { url: format!("https://images.example.com/a{n}.jpg"), content_type: "image/jpeg".into() };
        StaticAssets(HashMap::from([
            ("4mNbVcXzLkJhGfDsAqW001".to_string(), asset(1)),
            ("4mNbVcXzLkJhGfDsAqW002".to_string(), asset(2)),
            ("4mNbVcXzLkJhGfDsAqW003".to_string(), asset(3)),
        ]))
    }

    #[tokio::test]
    async fn a_published_entry_becomes_a_post_in_the_routes_locale() {
        let mapped = map(&fixtures::headers(NAME), &fixtures::body(NAME), &routing(serde_json::json!({})), &assets()).await.unwrap();
        assert_eq!(mapped.delivery, DedupeKey::new(SOURCE, "demo0space7:master:5kPqRsTuVwXyZaBcDeFgHi:5"));
        let Outcome::Post { request, also, .. } = mapped.outcome else { panic!("not posted") };
        assert_eq!(
            request.caption,
            "Ten books for long evenings 🍂 Our autumn list is out — reserve yours at example.com/reserve #autumnreads"
        );
        assert_eq!(request.media, [MediaItem::new("https://images.example.com/a1.jpg", MediaKind::Image)]);
        assert_eq!(request.publish_at, Some(datetime!(2026-10-15 16:30 UTC)));
        assert_eq!(also, [DedupeKey::new(SOURCE, "entry:demo0space7:master:5kPqRsTuVwXyZaBcDeFgHi")]);

        let r = routing(serde_json::json!({"caption": "{title}: {caption}", "repost_updates": true}));
        let Outcome::Post { request, also, .. } = map(&fixtures::headers(NAME), &fixtures::body(NAME), &r, &assets()).await.unwrap().outcome else {
            panic!("not posted")
        };
        assert!(request.caption.starts_with("Autumn Reading List: Ten books for long evenings"), "{}", request.caption);
        assert!(also.is_empty(), "repost_updates: only the revision is claimed");

        // de-DE has no images of its own, and webhooks carry no locale fallback.
        let r = routing(serde_json::json!({"locale": "de-DE"}));
        let mapped = map(&fixtures::headers(NAME), &fixtures::body(NAME), &r, &assets()).await.unwrap();
        assert_eq!(mapped.outcome, Outcome::Skip("entry 5kPqRsTuVwXyZaBcDeFgHi has no asset in heroImage, gallery (de-DE)".into()));
    }

    #[tokio::test]
    async fn every_asset_of_the_media_fields_makes_a_carousel() {
        let r = routing(serde_json::json!({"media": "all"}));
        let Outcome::Post { request, .. } = map(&fixtures::headers(NAME), &fixtures::body(NAME), &r, &assets()).await.unwrap().outcome else {
            panic!("not posted")
        };
        let urls: Vec<_> = request.media.iter().map(|m| m.url.as_str()).collect();
        assert_eq!(urls, ["https://images.example.com/a1.jpg", "https://images.example.com/a2.jpg", "https://images.example.com/a3.jpg"]);
    }

    #[tokio::test]
    async fn other_topics_unrouted_entries_and_missing_assets() {
        let (headers, body) = (fixtures::headers(NAME), fixtures::body(NAME));
        let mut unpublish = headers.clone();
        unpublish.insert("x-contentful-topic", "ContentManagement.Entry.unpublish".parse().unwrap());
        let mapped = map(&unpublish, &body, &routing(serde_json::json!({})), &assets()).await.unwrap();
        assert!(matches!(mapped.outcome, Outcome::Skip(ref r) if r.starts_with("topic ContentManagement.Entry.unpublish")));

        let mapped = map(&headers, &body, &Routing::default(), &assets()).await.unwrap();
        assert_eq!(mapped.outcome, Outcome::Skip("no route for Contentful space demo0space7 (master), content type instagramPost".into()));

        let e = map(&headers, &body, &routing(serde_json::json!({})), &StaticAssets::default()).await.unwrap_err();
        assert_eq!((e.status, e.field.as_deref()), (422, Some("fields.heroImage.en-US")));
        assert!(e.message.contains("4mNbVcXzLkJhGfDsAqW001 is not published"), "{}", e.message);

        let e = map(&headers, br#"{"sys":{"id":"x"}}"#, &routing(serde_json::json!({})), &assets()).await.unwrap_err();
        assert_eq!((e.status, e.field.as_deref()), (400, Some("sys")));
    }
}
