//! `POST /webhooks/generic`: a post request in instapipe's own JSON, signed with Standard Webhooks.
//!
//! ```json
//! {"caption": "New in store", "media": [{"url": "https://cdn.example.com/a.jpg", "type": "image"}],
//!  "accounts": ["17841400000000001"], "publish_at": "2026-11-24T09:00:00Z"}
//! ```
//! `publish_at` is optional (absent or past: publish now).

use serde::Deserialize;
use time::OffsetDateTime;

use super::{RequestError, validate};
use crate::post::{MediaItem, PostOptions, PostRequest};

pub const SOURCE: &str = "generic";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GenericPostBody {
    #[serde(default)]
    caption: String,
    media: Vec<MediaItem>,
    accounts: Vec<String>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    publish_at: Option<OffsetDateTime>,
    #[serde(default)]
    options: PostOptions,
}

/// Parses and validates the body; errors name the offending field (`media[0].type`).
pub fn parse(body: &[u8]) -> Result<PostRequest, RequestError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed: GenericPostBody = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let field = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                RequestError::new(400, "invalid_body", format!("body is not valid JSON: {inner}"))
            }
            _ if field == "." => RequestError::new(400, "invalid_body", inner.to_string()),
            _ => RequestError::field(400, "invalid_body", field, inner.to_string()),
        }
    })?;
    de.end().map_err(|e| RequestError::new(400, "invalid_body", format!("trailing data after the JSON object: {e}")))?;
    let request = PostRequest {
        caption: parsed.caption,
        media: parsed.media,
        accounts: parsed.accounts,
        publish_at: parsed.publish_at,
        options: parsed.options,
    };
    validate(&request)?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::post::MediaKind;

    #[test]
    fn a_full_request_parses() {
        let r = parse(
            br#"{"caption":"hi #new","media":[{"url":"https://cdn.example.com/a.jpg","type":"image"}],
                "accounts":["17841400000000001"],"publish_at":"2026-11-24T09:00:00+01:00"}"#,
        )
        .unwrap();
        assert_eq!(r.media[0].kind, MediaKind::Image);
        // 09:00 at +01:00 is 08:00 UTC.
        assert_eq!(r.publish_at.unwrap().unix_timestamp(), 1795507200);
    }

    fn error(body: &str) -> RequestError {
        parse(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn errors_name_the_field() {
        let e = error(r#"{"media":[{"url":"https://x.example/a.jpg","type":"gif"}],"accounts":["1"]}"#);
        assert_eq!((e.status, e.field.as_deref()), (400, Some("media[0].type")));
        assert!(e.message.contains("unknown variant `gif`"), "{}", e.message);

        let e = error(r#"{"media":[{"url":"http://x.example/a.jpg","type":"image"}],"accounts":["1"]}"#);
        assert_eq!((e.status, e.field.as_deref()), (422, Some("media[0].url")));

        let e = error(r#"{"media":[],"accounts":["1"]}"#);
        assert_eq!(e.field.as_deref(), Some("media"));

        let e = error(r#"{"media":[{"url":"https://x.example/a.jpg","type":"image"}],"accounts":["12a"]}"#);
        assert_eq!(e.field.as_deref(), Some("accounts[0]"));

        let e = error(r#"{"media":[{"url":"https://x.example/a.jpg","type":"image"}],"accounts":["1"],"publish_at":"tomorrow"}"#);
        assert_eq!(e.field.as_deref(), Some("publish_at"));

        let e = error(r#"{"media":[{"url":"https://x.example/a.jpg","type":"image"}]}"#);
        assert!(e.message.contains("missing field `accounts`"), "{}", e.message);

        let e = error(r#"{"media":[{"url":"https://x.example/a.jpg","type":"image"}],"accounts":["1"],"colour":1}"#);
        assert!(e.message.contains("unknown field `colour`"), "{}", e.message);
    }

    #[test]
    fn broken_json_is_a_400_without_a_field() {
        for body in ["", "{", "[]", "null", "{\"caption\":", "{} {}"] {
            let e = error(body);
            assert_eq!(e.status, 400, "{body}");
        }
    }

    #[test]
    fn caption_limits() {
        let long = "x".repeat(2201);
        let body = format!(r#"{{"caption":"{long}","media":[{{"url":"https://x.example/a.jpg","type":"image"}}],"accounts":["1"]}}"#);
        assert_eq!(error(&body).field.as_deref(), Some("caption"));
        let tags = (0..31).map(|i| format!("#t{i}")).collect::<Vec<_>>().join(" ");
        let body = format!(r#"{{"caption":"{tags}","media":[{{"url":"https://x.example/a.jpg","type":"image"}}],"accounts":["1"]}}"#);
        assert!(error(&body).message.contains("hashtags"));
    }
}
