//! Property tests of the core's parsers and checks: whatever arrives from outside (webhook bodies
//! and headers, Graph API answers, schedule expressions, secrets) never panics, and the
//! documented round trips hold for every generated value.
//!
//! 256 cases per property by default; `PROPTEST_CASES=10000 cargo test -p instapipe-core --test
//! properties` soaks longer.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::{HeaderMap, HeaderValue};
use instapipe_core::graph::GraphError;
use instapipe_core::post::MediaKind;
use instapipe_core::scheduler::{OneTimeSchedule, StartInput, parse_at_expression};
use instapipe_core::sources::generic;
use instapipe_core::sources::standard_webhooks::{StandardWebhookVerifier, TOLERANCE_SECS};
use instapipe_core::secrets::parse_token_secret;
use proptest::prelude::*;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// proptest's defaults (256 cases, or `PROPTEST_CASES`), without writing regression files into
/// the source tree: a failure prints its minimal input, which belongs in a named test.
fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Any JSON value, a few levels deep, with keys that now and then hit the request's own.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop_oneof![
            Just("image"),
            Just("video"),
            Just("https://a.example/x.jpg"),
            Just("17841400000000001"),
            Just("2026-11-24T09:00:00Z")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            Just("caption".to_string()),
            Just("media".to_string()),
            Just("url".to_string()),
            Just("type".to_string()),
            Just("accounts".to_string()),
            Just("publish_at".to_string()),
            "[a-z_]{0,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A caption of at most 2,200 characters with no word that starts with '#' or '@'.
fn caption() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[^#@]{0,80}",
        1 => "[^#@]{2150,2200}",
        1 => "[a-z ]{0,200}",
    ]
}

fn media_url() -> impl Strategy<Value = String> {
    (
        "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?){0,3}\\.[a-z]{2,6}",
        "(/[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,24}){0,6}",
        "(\\?[A-Za-z0-9=&_%-]{0,40})?",
    )
        .prop_map(|(host, path, query)| format!("https://{host}{path}{query}"))
}

fn media_kind() -> impl Strategy<Value = (MediaKind, &'static str)> {
    prop_oneof![Just((MediaKind::Image, "image")), Just((MediaKind::Video, "video"))]
}

/// 1 to 25 distinct account ids of 1 to 20 digits.
fn accounts() -> impl Strategy<Value = Vec<String>> {
    prop::collection::hash_set("[0-9]{1,20}", 1..=25).prop_map(|set| set.into_iter().collect())
}

/// An instant between 1970 and 2100 at any nanosecond, shown in any whole-minute offset
/// (RFC 3339 offsets have no seconds).
fn rfc3339_time() -> impl Strategy<Value = OffsetDateTime> {
    (0i128..4_102_444_800_000_000_000, -1439i32..=1439).prop_map(|(nanos, offset_minutes)| {
        OffsetDateTime::from_unix_timestamp_nanos(nanos)
            .unwrap()
            .to_offset(UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap())
    })
}

#[derive(Clone, Debug)]
struct ValidRequest {
    caption: String,
    url: String,
    kind: MediaKind,
    kind_name: &'static str,
    accounts: Vec<String>,
    publish_at: Option<OffsetDateTime>,
    /// How an absent `publish_at` is written: left out, or `null`.
    null_publish_at: bool,
    /// Whether an empty caption is left out (it defaults to "").
    omit_empty_caption: bool,
}

impl ValidRequest {
    fn to_json(&self) -> Value {
        let mut body = json!({
            "caption": self.caption,
            "media": [{ "url": self.url, "type": self.kind_name }],
            "accounts": self.accounts,
        });
        match self.publish_at {
            Some(at) => body["publish_at"] = json!(at.format(&Rfc3339).unwrap()),
            None if self.null_publish_at => body["publish_at"] = Value::Null,
            None => {}
        }
        if self.caption.is_empty() && self.omit_empty_caption {
            body.as_object_mut().unwrap().remove("caption");
        }
        body
    }
}

fn valid_request() -> impl Strategy<Value = ValidRequest> {
    (
        caption(),
        media_url(),
        media_kind(),
        accounts(),
        prop::option::of(rfc3339_time()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(caption, url, (kind, kind_name), accounts, publish_at, null_publish_at, omit_empty_caption)| {
            ValidRequest { caption, url, kind, kind_name, accounts, publish_at, null_publish_at, omit_empty_caption }
        })
}

/// A JSON value of a type other than the one a field wants.
#[derive(Clone, Copy, Debug)]
enum Wants {
    String,
    Array,
    Object,
    /// `publish_at`: a string or null.
    OptionalString,
}

fn wrong_type(wants: Wants) -> impl Strategy<Value = Value> {
    let any_scalar_or_container = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        "[a-z ]{0,10}".prop_map(Value::from),
        prop::collection::vec(any::<i64>().prop_map(Value::from), 0..3).prop_map(Value::Array),
        // Keys no struct or enum here knows, so a map is never read as `{"image": null}`.
        prop::collection::vec(("k_[a-z]{0,4}", any::<bool>()), 0..3)
            .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k, Value::from(v))).collect())),
    ];
    any_scalar_or_container.prop_filter("must be the wrong type", move |v| match wants {
        Wants::String => !v.is_string(),
        Wants::Array => !v.is_array(),
        // Not an array either: serde reads an array as the struct's fields in order (see
        // `bug_an_array_is_accepted_in_place_of_an_object`).
        Wants::Object => !v.is_object() && !v.is_array(),
        Wants::OptionalString => !v.is_string() && !v.is_null(),
    })
}

// ---------------------------------------------------------------------------------------------
// sources::generic::parse
// ---------------------------------------------------------------------------------------------

fn assert_refusal_is_well_formed(body: &[u8]) -> Result<(), TestCaseError> {
    if let Err(e) = generic::parse(body) {
        prop_assert!(e.status == 400 || e.status == 422, "status {} for {:?}", e.status, String::from_utf8_lossy(body));
        prop_assert!(!e.message.is_empty(), "empty message for {:?}", String::from_utf8_lossy(body));
        prop_assert!(!e.code.is_empty());
        // The error body a client gets is JSON with the code.
        prop_assert_eq!(&e.to_json()["error"]["code"], &json!(e.code));
    }
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn generic_parse_never_panics_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..512)) {
        assert_refusal_is_well_formed(&body)?;
    }

    #[test]
    fn generic_parse_never_panics_on_arbitrary_json(value in any_json()) {
        assert_refusal_is_well_formed(value.to_string().as_bytes())?;
    }

    /// Valid requests with one field replaced by any JSON: deeper into validation than random bytes.
    #[test]
    fn generic_parse_never_panics_on_near_valid_requests(
        request in valid_request(),
        field in prop_oneof![Just("caption"), Just("media"), Just("accounts"), Just("publish_at"), Just("extra")],
        value in any_json(),
    ) {
        let mut body = request.to_json();
        body[field] = value;
        assert_refusal_is_well_formed(body.to_string().as_bytes())?;
    }

    #[test]
    fn valid_requests_parse_back_to_the_same_values(request in valid_request()) {
        let body = serde_json::to_vec(&request.to_json()).unwrap();
        let parsed = generic::parse(&body);
        prop_assert!(parsed.is_ok(), "refused: {:?}\nbody: {}", parsed.err(), String::from_utf8_lossy(&body));
        let parsed = parsed.unwrap();
        prop_assert_eq!(&parsed.caption, &request.caption);
        prop_assert_eq!(parsed.media.len(), 1);
        prop_assert_eq!(&parsed.media[0].url, &request.url);
        prop_assert_eq!(parsed.media[0].kind, request.kind);
        prop_assert_eq!(&parsed.accounts, &request.accounts);
        // Same instant (OffsetDateTime compares instants), and the same offset as written.
        prop_assert_eq!(parsed.publish_at, request.publish_at);
        prop_assert_eq!(parsed.publish_at.map(|t| t.offset()), request.publish_at.map(|t| t.offset()));
    }

    /// Up to 30 hashtags and 20 mentions pass; one more of either is a 422 on `caption`.
    #[test]
    fn hashtag_and_mention_limits(request in valid_request(), tags in 0usize..=40, mentions in 0usize..=30) {
        let mut request = request;
        let words: Vec<String> = (0..tags).map(|i| format!("#t{i}")).chain((0..mentions).map(|i| format!("@m{i}"))).collect();
        request.caption = words.join(" ");
        let result = generic::parse(request.to_json().to_string().as_bytes());
        if tags <= 30 && mentions <= 20 {
            prop_assert!(result.is_ok(), "{:?}", result.err());
        } else {
            let e = result.unwrap_err();
            prop_assert_eq!((e.status, e.field.as_deref()), (422, Some("caption")));
        }
    }

    #[test]
    fn a_field_of_the_wrong_type_is_a_400_naming_that_field(
        request in valid_request(),
        (target, value) in prop_oneof![
            wrong_type(Wants::String).prop_map(|v| ("caption", v)),
            wrong_type(Wants::Array).prop_map(|v| ("media", v)),
            wrong_type(Wants::Object).prop_map(|v| ("media[0]", v)),
            wrong_type(Wants::String).prop_map(|v| ("media[0].url", v)),
            // A string that names no media type. (A number, bool, null, array or `{}` there is
            // reported as "not valid JSON" without the field: `bug_a_non_string_media_type_*`.)
            "[a-z]{0,8}".prop_filter("not a media type", |t| t != "image" && t != "video").prop_map(|t| ("media[0].type", json!(t))),
            wrong_type(Wants::Array).prop_map(|v| ("accounts", v)),
            wrong_type(Wants::String).prop_map(|v| ("accounts[i]", v)),
            wrong_type(Wants::OptionalString).prop_map(|v| ("publish_at", v)),
        ],
        index in any::<prop::sample::Index>(),
    ) {
        let mut body = request.to_json();
        let expected_field = match target {
            "caption" | "media" | "accounts" | "publish_at" => {
                body[target] = value.clone();
                target.to_string()
            }
            "media[0]" => {
                body["media"][0] = value.clone();
                target.to_string()
            }
            "media[0].url" => {
                body["media"][0]["url"] = value.clone();
                target.to_string()
            }
            "media[0].type" => {
                body["media"][0]["type"] = value.clone();
                target.to_string()
            }
            "accounts[i]" => {
                let i = index.index(request.accounts.len());
                body["accounts"][i] = value.clone();
                format!("accounts[{i}]")
            }
            _ => unreachable!(),
        };
        let text = body.to_string();
        let e = generic::parse(text.as_bytes());
        prop_assert!(e.is_err(), "accepted {} = {} in {}", target, value, text);
        let e = e.unwrap_err();
        prop_assert_eq!(e.status, 400, "{:?} for {}", e, text);
        prop_assert_eq!(e.code, "invalid_body");
        prop_assert_eq!(e.field.as_deref(), Some(expected_field.as_str()), "{:?} for {}", e, text);
    }
}

/// Found by `a_field_of_the_wrong_type_is_a_400_naming_that_field`: serde reads a JSON array as a
/// struct's fields in declaration order, so an array where the README wants an object is accepted
/// (the body itself, and each media item) instead of a 400 `invalid_body`.
#[test]
fn regression_an_array_in_place_of_an_object_is_refused() {
    for body in [
        r#"["",[{"url":"https://a.example/x.jpg","type":"image"}],["1"]]"#,
        r#"{"media":[["https://a.example/x.jpg","image"]],"accounts":["1"]}"#,
    ] {
        let e = generic::parse(body.as_bytes());
        assert_eq!(e.as_ref().map_err(|e| e.status), Err(400), "{body} gave {e:?}");
    }
}

/// Found by `a_field_of_the_wrong_type_is_a_400_naming_that_field`: serde_json reports a value of
/// the wrong JSON type for an enum (`media[0].type`) as the syntax error "expected value", which
/// `parse` turns into "body is not valid JSON" without a field, although the body is valid JSON
/// and the README promises the field path (`media[0].type`) for wrong types.
#[test]
fn regression_a_non_string_media_type_names_the_field() {
    for value in ["1", "true", "null", "[]", "{}", "1.5"] {
        let body = format!(r#"{{"media":[{{"url":"https://a.example/x.jpg","type":{value}}}],"accounts":["1"]}}"#);
        let e = generic::parse(body.as_bytes()).unwrap_err();
        assert_eq!((e.status, e.field.as_deref()), (400, Some("media[0].type")), "{body}: {e:?}");
        assert!(!e.message.contains("not valid JSON"), "{body}: {e:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// sources::standard_webhooks
// ---------------------------------------------------------------------------------------------

const SECRET: &str = "whsec_dGVzdC1zZWNyZXQtc3RhbmRhcmQtd2ViaG9va3MtMDE=";

/// Bytes a `HeaderValue` can hold (visible ASCII, space, tab, obs-text), as a random string.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>().prop_map(|b| if (b < 32 && b != b'\t') || b == 127 { b'x' } else { b }), 0..64)
}

/// Mostly visible ASCII (what real headers hold), sometimes any byte a header may carry.
fn header_text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![3 => "[ -~]{0,64}".prop_map(String::into_bytes), 1 => header_bytes()]
}

/// Timestamps that are numbers, with the extremes of i64 and values near them.
fn timestamp_text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        header_bytes(),
        any::<i64>().prop_map(|t| t.to_string().into_bytes()),
        (-1000i64..1000).prop_map(|d| (i64::MIN + 1000 + d).to_string().into_bytes()),
        (-1000i64..1000).prop_map(|d| (i64::MAX - 1000 + d).to_string().into_bytes()),
        Just(i64::MIN.to_string().into_bytes()),
        Just(i64::MAX.to_string().into_bytes()),
        (0i64..4_102_444_800).prop_map(|t| t.to_string().into_bytes()),
        "[+-]?[0-9]{1,25}".prop_map(String::into_bytes),
    ]
}

/// `v1,<base64>` tokens (some of them the right length for HMAC-SHA256), or any string.
fn signature_text() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        prop::collection::vec(any::<u8>(), 32).prop_map(|b| format!("v1,{}", BASE64.encode(b))),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| format!("v1,{}", BASE64.encode(b))),
        "v[0-9],[A-Za-z0-9+/=]{0,50}",
        "[ -~]{0,30}",
    ];
    prop_oneof![
        header_bytes(),
        prop::collection::vec(token, 0..4).prop_map(|t| t.join(" ").into_bytes()),
    ]
}

fn any_now() -> impl Strategy<Value = OffsetDateTime> {
    prop_oneof![
        // Any instant `time` can hold.
        (OffsetDateTime::new_utc(time::Date::MIN, time::Time::MIDNIGHT).unix_timestamp()
            ..=OffsetDateTime::new_utc(time::Date::MAX, time::Time::MIDNIGHT).unix_timestamp())
            .prop_map(|t| OffsetDateTime::from_unix_timestamp(t).unwrap()),
        (0i64..4_102_444_800).prop_map(|t| OffsetDateTime::from_unix_timestamp(t).unwrap()),
    ]
}

fn headers_from(id: Option<Vec<u8>>, ts: Option<Vec<u8>>, sig: Option<Vec<u8>>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [("webhook-id", id), ("webhook-timestamp", ts), ("webhook-signature", sig)] {
        if let Some(value) = value {
            headers.insert(name, HeaderValue::from_bytes(&value).expect("header_bytes makes valid values"));
        }
    }
    headers
}

/// A secret of random key bytes, in `whsec_` form.
fn secret() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 1..64).prop_map(|key| format!("whsec_{}", BASE64.encode(key)))
}

/// A `webhook-id`: visible ASCII without '.'.
fn webhook_id() -> impl Strategy<Value = String> {
    "[!-\\-/-~]{1,64}"
}

fn signed(secret: &str, id: &str, ts: i64, body: &[u8]) -> HeaderMap {
    let signature = standardwebhooks::Webhook::new(secret).unwrap().sign(id, ts, body).unwrap();
    headers_from(Some(id.into()), Some(ts.to_string().into_bytes()), Some(signature.into_bytes()))
}

fn at_nanos(nanos: i128) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap()
}

const SEC: i128 = 1_000_000_000;

proptest! {
    #![proptest_config(config())]

    #[test]
    fn verify_never_panics_and_refuses_with_401(
        id in prop::option::weighted(0.9, header_text()),
        ts in prop::option::weighted(0.9, timestamp_text()),
        sig in prop::option::weighted(0.9, signature_text()),
        body in prop::collection::vec(any::<u8>(), 0..256),
        now in any_now(),
    ) {
        let verifier = StandardWebhookVerifier::new(SECRET).unwrap();
        let headers = headers_from(id, ts, sig);
        if let Err(e) = verifier.verify(&headers, &body, now) {
            prop_assert_eq!(e.status, 401);
            prop_assert_eq!(e.code, "invalid_signature");
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn what_the_reference_library_signs_verifies_inside_the_window(
        secret in secret(),
        other in secret(),
        other_first in any::<bool>(),
        id in webhook_id(),
        body in ".{0,200}",
        ts in 0i64..4_102_444_800,
        delta in -(TOLERANCE_SECS as i128) * SEC..=(TOLERANCE_SECS as i128) * SEC,
    ) {
        let headers = signed(&secret, &id, ts, body.as_bytes());
        let now = at_nanos(ts as i128 * SEC + delta);
        let verifier = StandardWebhookVerifier::new(&secret).unwrap();
        let verified = verifier.verify(&headers, body.as_bytes(), now);
        prop_assert_eq!(verified, Ok(id.as_str()));
        // Key rotation: the signing key among several, in any order.
        let both = if other_first { format!("{other} {secret}") } else { format!("{secret},{other}") };
        let rotated = StandardWebhookVerifier::new(&both).unwrap();
        prop_assert_eq!(rotated.verify(&headers, body.as_bytes(), now), Ok(id.as_str()));
    }

    #[test]
    fn a_single_flipped_body_byte_is_refused(
        secret in secret(),
        id in webhook_id(),
        body in ".{1,200}",
        ts in 0i64..4_102_444_800,
        delta in -(TOLERANCE_SECS as i128) * SEC..=(TOLERANCE_SECS as i128) * SEC,
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let headers = signed(&secret, &id, ts, body.as_bytes());
        let mut tampered = body.into_bytes();
        let i = position.index(tampered.len());
        tampered[i] ^= flip;
        let e = StandardWebhookVerifier::new(&secret).unwrap().verify(&headers, &tampered, at_nanos(ts as i128 * SEC + delta));
        prop_assert_eq!(e.map_err(|e| e.status), Err(401));
    }

    /// Outside the window: earlier than `ts - 300 s`, or at `ts + 301 s` and later. (The check is
    /// on whole seconds of `now`, as in the Standard Webhooks reference: `ts + 300.9 s` still
    /// counts as 300 s.)
    #[test]
    fn a_now_outside_the_window_is_refused(
        secret in secret(),
        id in webhook_id(),
        body in ".{0,100}",
        ts in 0i64..4_102_444_800,
        late in any::<bool>(),
        beyond in prop_oneof![0i128..10 * SEC, 0i128..400 * 86_400 * SEC],
    ) {
        let headers = signed(&secret, &id, ts, body.as_bytes());
        let tolerance = TOLERANCE_SECS as i128 * SEC;
        let now = if late { ts as i128 * SEC + tolerance + SEC + beyond } else { ts as i128 * SEC - tolerance - 1 - beyond };
        let e = StandardWebhookVerifier::new(&secret).unwrap().verify(&headers, body.as_bytes(), at_nanos(now));
        prop_assert_eq!(e.map_err(|e| e.status), Err(401));
    }
}

/// Found by `verify_never_panics_and_refuses_with_401`: the age `now - ts` is computed with a
/// plain `-`, which overflows for a timestamp near `i64::MIN` (any `now` from 1970 on): a panic
/// in debug builds (the local stack and the tests), a wrap-around in release. Any client can
/// send this header before its signature is checked.
#[test]
fn regression_verify_refuses_a_timestamp_of_i64_min() {
    let verifier = StandardWebhookVerifier::new(SECRET).unwrap();
    let headers = headers_from(Some(b"msg_1".to_vec()), Some(b"-9223372036854775808".to_vec()), Some(b"v1,AAAA".to_vec()));
    let now = OffsetDateTime::from_unix_timestamp(1_795_166_170).unwrap();
    assert_eq!(verifier.verify(&headers, b"{}", now).map_err(|e| e.status), Err(401));
}

/// The same overflow the other way: `i64::MAX` with a `now` before 1970 (only reachable by a
/// caller passing such a clock, not by a client alone).
#[test]
fn regression_verify_refuses_a_timestamp_of_i64_max_before_1970() {
    let verifier = StandardWebhookVerifier::new(SECRET).unwrap();
    let headers = headers_from(Some(b"msg_1".to_vec()), Some(b"9223372036854775807".to_vec()), Some(b"v1,AAAA".to_vec()));
    let now = OffsetDateTime::from_unix_timestamp(-2).unwrap();
    assert_eq!(verifier.verify(&headers, b"{}", now).map_err(|e| e.status), Err(401));
}

// ---------------------------------------------------------------------------------------------
// graph::GraphError
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Envelope {
    message: String,
    code: i64,
    subcode: Option<i64>,
    is_transient: Option<bool>,
    fbtrace_id: Option<String>,
    user_msg: Option<String>,
    extra_type: Option<String>,
}

fn envelope() -> impl Strategy<Value = Envelope> {
    let code = prop_oneof![
        any::<i64>(),
        prop::sample::select(vec![1i64, 2, 4, 9, 10, 17, 24, 25, 32, 100, 190, 200, 299, 352, 368, 613, 9004, 9007, 36000, 80002, -1, -2]),
    ];
    let subcode = prop_oneof![any::<i64>(), 2_207_000i64..2_207_060, 400i64..500];
    (
        ".{0,60}",
        code,
        prop::option::of(subcode),
        prop::option::of(any::<bool>()),
        prop::option::of("[A-Za-z0-9_-]{1,30}"),
        prop::option::of(".{0,40}"),
        prop::option::of("[A-Za-z]{1,20}"),
    )
        .prop_map(|(message, code, subcode, is_transient, fbtrace_id, user_msg, extra_type)| Envelope {
            message,
            code,
            subcode,
            is_transient,
            fbtrace_id,
            user_msg,
            extra_type,
        })
}

impl Envelope {
    fn to_json(&self) -> Value {
        let mut error = json!({ "message": self.message, "code": self.code });
        if let Some(s) = self.subcode {
            error["error_subcode"] = json!(s);
        }
        if let Some(t) = self.is_transient {
            error["is_transient"] = json!(t);
        }
        if let Some(f) = &self.fbtrace_id {
            error["fbtrace_id"] = json!(f);
        }
        if let Some(m) = &self.user_msg {
            error["error_user_msg"] = json!(m);
        }
        if let Some(t) = &self.extra_type {
            error["type"] = json!(t);
        }
        json!({ "error": error })
    }
}

fn exercise(error: &GraphError) {
    let _ = error.reaction();
    let _ = error.outcome_unknown();
    let _ = error.to_string();
    let failure = error.to_failure("x");
    assert!(failure.reason.starts_with("x: "), "{}", failure.reason);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn graph_errors_from_any_answer_never_panic(status in any::<u16>(), body in prop::collection::vec(any::<u8>(), 0..256)) {
        let e = GraphError::from_response(status, &body);
        exercise(&e);
        if serde_json::from_slice::<Value>(&body).is_err() {
            prop_assert_eq!(e, GraphError::Http { status });
        }
    }

    #[test]
    fn graph_errors_from_any_json_never_panic(status in any::<u16>(), value in any_json(), wrap in any::<bool>()) {
        let body = if wrap { json!({ "error": value }) } else { value };
        exercise(&GraphError::from_response(status, body.to_string().as_bytes()));
    }

    #[test]
    fn well_formed_error_envelopes_round_trip_into_the_failure(status in any::<u16>(), envelope in envelope()) {
        let e = GraphError::from_response(status, envelope.to_json().to_string().as_bytes());
        exercise(&e);
        let failure = e.to_failure("x");
        prop_assert_eq!(failure.code, Some(envelope.code), "{:?}", e);
        prop_assert_eq!(failure.subcode, envelope.subcode);
        prop_assert_eq!(&failure.fbtrace_id, &envelope.fbtrace_id);
        let shown = envelope.user_msg.clone().filter(|m| !m.is_empty()).unwrap_or(envelope.message.clone());
        prop_assert_eq!(failure.reason, format!("x: {shown}"));
        match e {
            GraphError::Api { http_status, is_transient, .. } => {
                prop_assert_eq!(http_status, status);
                prop_assert_eq!(is_transient, envelope.is_transient.unwrap_or(false));
            }
            other => prop_assert!(false, "not an Api error: {:?}", other),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// scheduler::parse_at_expression / OneTimeSchedule::expression
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parse_at_expression_never_panics(
        text in prop_oneof![
            ".{0,40}",
            ".{0,30}".prop_map(|s| format!("at({s})")),
            "[+-]?[0-9]{1,7}-[0-9]{1,3}-[0-9]{1,3}T[0-9]{1,3}:[0-9]{1,3}:[0-9]{1,3}(\\.[0-9]{0,12})?".prop_map(|s| format!("at({s})")),
        ],
    ) {
        let _ = parse_at_expression(&text);
    }

    /// `expression()` rounds up to the whole second in UTC, and `parse_at_expression` reads it back.
    #[test]
    fn expressions_parse_back_to_the_time_rounded_up_to_the_second(
        nanos in 946_684_800i128 * SEC..4_133_980_800i128 * SEC, // 2000-01-01 .. 2101-01-01 UTC
        whole_second in any::<bool>(),
        offset in -86_399i32..=86_399,
    ) {
        let nanos = if whole_second { nanos - nanos.rem_euclid(SEC) } else { nanos };
        let at = at_nanos(nanos).to_offset(UtcOffset::from_whole_seconds(offset).unwrap());
        let schedule = OneTimeSchedule::start(StartInput { post_id: "01KAB".into(), account_id: "1".into() }, at);
        let expression = schedule.expression();
        let rounded_up = at_nanos(nanos.div_euclid(SEC) * SEC + if nanos.rem_euclid(SEC) > 0 { SEC } else { 0 });
        prop_assert_eq!(parse_at_expression(&expression), Some(rounded_up), "{} from {}", expression, at);
        prop_assert!(expression.len() == "at(2026-11-23T09:00:01)".len(), "{}", expression);
    }
}

// ---------------------------------------------------------------------------------------------
// secrets::parse_token_secret
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config())]

    #[test]
    fn parse_token_secret_never_panics(
        text in prop_oneof![
            ".{0,80}",
            any_json().prop_map(|v| v.to_string()),
            any_json().prop_map(|v| json!({ "access_token": v }).to_string()),
        ],
    ) {
        let _ = parse_token_secret(&text);
    }

    #[test]
    fn a_json_secret_gives_its_access_token(token in ".{0,60}", extra in prop::option::of(any_json())) {
        let mut secret = json!({ "access_token": token });
        if let Some(extra) = extra {
            secret["other"] = extra;
        }
        let parsed = parse_token_secret(&secret.to_string());
        prop_assert_eq!(parsed.as_ref().map(|t| t.expose_secret().to_string()), (!token.is_empty()).then(|| token.clone()));
    }

    #[test]
    fn a_bare_token_is_trimmed(token in "[!-z|~][ -~]{0,60}", pad in "[ \t\n]{0,3}") {
        // Not starting with '{' ('{' is 0x7b, left out of the first character).
        let parsed = parse_token_secret(&format!("{pad}{token}{pad}"));
        prop_assert_eq!(parsed.map(|t| t.expose_secret().to_string()), Some(token.trim().to_string()));
    }
}
