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

/// The body of `POST /webhooks/generic` and `POST /posts` (public for its JSON Schema).
#[derive(Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct GenericPostBody {
    /// At most 2,200 characters, 30 hashtags and 20 @-mentions.
    #[serde(default)]
    caption: String,
    /// One image or video, 2 to 10 for a carousel; public https:// URLs (images JPEG).
    media: Vec<MediaItem>,
    /// Instagram account ids (digits) to post to, 1 to 25.
    accounts: Vec<String>,
    /// When to publish (RFC 3339); absent or past: now.
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>", extend("format" = "date-time")))]
    #[serde(default, with = "time::serde::rfc3339::option")]
    publish_at: Option<OffsetDateTime>,
    /// Placement (feed or story), Reel parameters, location, collaborators, first comment.
    #[serde(default)]
    options: PostOptions,
}

/// Parses and validates the body; errors name the offending field (`media[0].type`).
pub fn parse(body: &[u8]) -> Result<PostRequest, RequestError> {
    let value = super::json::parse_value(body)?;
    require_objects(&value, "")?;
    let parsed: GenericPostBody = super::json::from_value(value, "")?;
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

/// serde reads a JSON array as a struct's fields in order; the schema's objects must be objects.
fn require_objects(value: &serde_json::Value, path: &str) -> Result<(), RequestError> {
    use serde_json::Value;
    let not_object = |field: &str| {
        let message = "must be a JSON object";
        if field.is_empty() {
            RequestError::new(400, "invalid_body", format!("the body {message}"))
        } else {
            RequestError::field(400, "invalid_body", field, message)
        }
    };
    let Value::Object(fields) = value else { return Err(not_object(path)) };
    let join = |name: &str| if path.is_empty() { name.to_string() } else { format!("{path}.{name}") };
    for (name, child) in fields {
        match (name.as_str(), child) {
            ("media" | "user_tags", Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    require_objects(item, &format!("{}[{i}]", join(name)))?;
                }
            }
            ("options" | "reel", child) if !child.is_null() => require_objects(child, &join(name))?,
            _ => {}
        }
    }
    Ok(())
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
    fn options_parse_and_their_rules_hold() {
        let r = parse(
            br##"{"caption":"c","media":[{"url":"https://x.example/a.jpg","type":"image","alt_text":"a red coat",
                "user_tags":[{"username":"ana","x":0.5,"y":0.5}]},{"url":"https://x.example/b.mp4","type":"video"}],
                "accounts":["1"],"options":{"first_comment":"#more #tags","location_id":"123","collaborators":["bo"]}}"##,
        )
        .unwrap();
        assert_eq!(r.media.len(), 2);
        assert_eq!(r.options.first_comment.as_deref(), Some("#more #tags"));
        let refused = |body: &str| error(body).field.unwrap_or_default();
        let one = |item: &str, options: &str| format!(r#"{{"media":[{item}],"accounts":["1"],"options":{options}}}"#);
        let image = r#"{"url":"https://x.example/a.jpg","type":"image"}"#;
        let video = r#"{"url":"https://x.example/a.mp4","type":"video"}"#;
        assert_eq!(refused(&one(image, r#"{"reel":{"share_to_feed":true}}"#)), "options.reel");
        assert_eq!(refused(&one(video, r#"{"placement":"story","collaborators":["a"]}"#)), "options.collaborators");
        assert_eq!(refused(&one(&format!("{image},{image}"), r#"{"placement":"story"}"#)), "media");
        assert_eq!(refused(&one(r#"{"url":"https://x.example/a.mp4","type":"video","alt_text":"x"}"#, "{}")), "media[0].alt_text");
        assert_eq!(refused(&one(r#"{"url":"https://x.example/a.jpg","type":"image","user_tags":[{"username":"a"}]}"#, "{}")), "media[0].user_tags[0]");
        assert_eq!(refused(&one(image, r#"{"collaborators":["a","b","c","d"]}"#)), "options.collaborators");
        let eleven = vec![image; 11].join(",");
        assert_eq!(refused(&one(&eleven, "{}")), "media");
        assert_eq!(refused(&one(image, r#"{"placement":"reel"}"#)), "options.placement");
        assert!(parse(one(video, r#"{"reel":{"cover_url":"https://x.example/c.jpg","thumb_offset":1500,"share_to_feed":false,"audio_name":"Original"}}"#).as_bytes()).is_ok());
        assert!(parse(one(video, r#"{"placement":"story"}"#).as_bytes()).is_ok());
    }

    #[test]
    fn integral_numbers_are_integers_and_fractional_ones_are_refused_by_name() {
        let with_offset = |offset: &str| {
            format!(r#"{{"media":[{{"url":"https://x.example/a.mp4","type":"video"}}],"accounts":["1"],"options":{{"reel":{{"thumb_offset":{offset}}}}}}}"#)
        };
        for (offset, expected) in [("1763", 1763), ("1763.0", 1763), ("1.763e3", 1763), ("0.0", 0), ("9007199254740991", 9007199254740991)] {
            let r = parse(with_offset(offset).as_bytes()).unwrap_or_else(|e| panic!("{offset}: {e:?}"));
            assert_eq!(r.options.reel.unwrap().thumb_offset, Some(expected), "{offset}");
        }
        for offset in ["1763.5", "-1", "-1.0", "1e300", "9007199254740992", "\"5\""] {
            let e = error(&with_offset(offset));
            assert_eq!((e.status, e.field.as_deref()), (400, Some("options.reel.thumb_offset")), "{offset}: {}", e.message);
        }
    }

    #[test]
    fn tag_positions_too_close_to_zero_to_store_are_zero() {
        let r = parse(
            br#"{"media":[{"url":"https://x.example/a.jpg","type":"image","user_tags":[{"username":"ana","x":2.225073858507e-311,"y":0.5}]}],"accounts":["1"]}"#,
        )
        .unwrap();
        assert_eq!((r.media[0].user_tags[0].x, r.media[0].user_tags[0].y), (Some(0.0), Some(0.5)));
    }

    #[test]
    fn broken_json_is_a_400_without_a_field() {
        for body in ["", "{", "[]", "null", "{\"caption\":", "{} {}", r#"["",[],[]]"#] {
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
