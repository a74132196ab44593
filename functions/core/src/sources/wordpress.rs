//! `POST /webhooks/wordpress`: what the instapipe WordPress plugin
//! (integrations/wordpress/instapipe.php) sends when a post is first published, signed with
//! Standard Webhooks ([`StandardWebhookVerifier`](super::standard_webhooks::StandardWebhookVerifier)).
//!
//! ```json
//! {"type": "post.published", "timestamp": "2026-11-20T09:16:09+00:00",
//!  "data": {"site": "https://blog.example.com/", "id": 4211, "post_type": "post", "title": "…",
//!           "excerpt": "…", "permalink": "https://…", "featured_image": "https://…" | null,
//!           "categories": ["Menu"], "tags": ["winter"], "published_gmt": "…", "modified_gmt": "…",
//!           "caption_template": "{title}\n\n{link}"}}
//! ```
//! `password_protected: true` is refused with 422 `protected_post` (the plugin never sends such
//! a post; this guards older or other senders).
//! `caption_template` (optional) is the blog owner's caption, set on the plugin's settings page,
//! with the route's placeholders; it wins over the route's `caption`.
//! Posted: a post with a featured image, from a routed site, once per blog post (once per
//! modification when the route sets `repost_updates`). Dedupe: the `webhook-id` (the plugin
//! derives it from site, post id and modification time, so its retries repeat it) and the post.

use serde::Deserialize;

use super::RequestError;
use super::mapped::{DedupeKey, Mapped, Outcome};
use super::text::{fit_caption, hashtags};
use crate::post::{MediaItem, MediaKind, PostRequest};
use crate::routing::{CaptionTemplate, RouteSource, Routing};

pub const SOURCE: &str = "wordpress";
pub const PUBLISHED: &str = "post.published";

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "type")]
    kind: String,
    data: PostData,
}

#[derive(Deserialize)]
struct PostData {
    site: String,
    id: u64,
    title: String,
    #[serde(default)]
    excerpt: String,
    permalink: String,
    #[serde(default)]
    featured_image: Option<String>,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    modified_gmt: Option<String>,
    #[serde(default)]
    caption_template: Option<String>,
    /// The plugin sends none of these; a payload that says so is refused all the same.
    #[serde(default)]
    password_protected: bool,
}

/// The site a request's body claims (`data.site`), read before the signature is checked only to
/// choose whose secrets may check it.
pub fn claimed_site(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Claim {
        data: ClaimData,
    }
    #[derive(Deserialize)]
    struct ClaimData {
        site: String,
    }
    serde_json::from_slice::<Claim>(body).ok().map(|c| c.data.site)
}

/// Maps a verified delivery whose `webhook-id` is `webhook_id`.
pub fn map(webhook_id: &str, body: &[u8], routing: &Routing) -> Result<Mapped, RequestError> {
    let delivery = DedupeKey::new(SOURCE, webhook_id);
    let skip = |reason: String| Ok(Mapped { delivery: delivery.clone(), outcome: Outcome::Skip(reason) });
    let payload: Payload = super::json::parse(body)?;
    if payload.kind != PUBLISHED {
        return skip(format!("event type {} is not handled (only {PUBLISHED})", payload.kind));
    }
    let post = payload.data;
    if post.password_protected {
        return Err(RequestError::field(
            422,
            "protected_post",
            "data.password_protected",
            format!("post {} is password-protected: it is never sent to Instagram", post.id),
        ));
    }
    let Some(route) = routing.wordpress(&post.site) else {
        return skip(format!("no route for WordPress site {}", post.site));
    };
    let Some(image) = post.featured_image.filter(|i| !i.trim().is_empty()) else {
        return skip(format!("post {} has no featured image", post.id));
    };
    let owners = match post.caption_template.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) => Some(
            CaptionTemplate::parse(t, RouteSource::Wordpress.placeholders())
                .map_err(|problem| RequestError::field(422, "invalid_field", "data.caption_template", problem))?,
        ),
        None => None,
    };
    let caption = owners.as_ref().unwrap_or(&route.caption).render(|name| match name {
        "title" => Some(post.title.clone()),
        "excerpt" => Some(post.excerpt.clone()),
        "link" => Some(post.permalink.clone()),
        "hashtags" => Some(hashtags(post.tags.iter().map(String::as_str))),
        "tags" => Some(post.tags.join(", ")),
        "categories" => Some(post.categories.join(", ")),
        "site" => Some(post.site.clone()),
        _ => None,
    });
    let site = post.site.trim_end_matches('/');
    let post_key = match (&post.modified_gmt, route.repost_updates) {
        (Some(modified), true) => format!("post:{site}:{}:{modified}", post.id),
        _ => format!("post:{site}:{}", post.id),
    };
    let request = PostRequest {
        caption: fit_caption(caption),
        media: vec![MediaItem::new(image, MediaKind::Image)],
        accounts: route.accounts.clone(),
        ..PostRequest::default()
    };
    Ok(Mapped { delivery, outcome: Outcome::Post { request, route: route.name.clone(), also: vec![DedupeKey::new(SOURCE, post_key)] } })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::fixtures;

    const NAME: &str = "wordpress-post-published";
    const ID: &str = "msg_286756288af89c6fe2bcb1de3973f016";

    fn routing(extra: serde_json::Value) -> Routing {
        let mut route = serde_json::json!({"source": "wordpress", "site": "https://news.example.org", "accounts": ["17841400000000001"]});
        route.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        Routing::from_json(Some(&serde_json::json!({ "routes": [route] }).to_string())).unwrap()
    }

    #[test]
    fn a_published_post_with_a_featured_image_becomes_a_post() {
        let mapped = map(ID, &fixtures::body(NAME), &routing(serde_json::json!({}))).unwrap();
        assert_eq!(mapped.delivery, DedupeKey::new(SOURCE, ID));
        let Outcome::Post { request, also, .. } = mapped.outcome else { panic!("not posted") };
        assert_eq!(
            request.caption,
            "Autumn Reading List — Ten Picks\n\n\
             Ten books for long evenings. Here’s the whole list.\n\n\
             https://news.example.org/2026/10/13/autumn-reading/\n\n#autumn #reading"
        );
        assert_eq!(request.media, [MediaItem::new("https://news.example.org/wp-content/uploads/2026/10/autumn-reading.jpg", MediaKind::Image)]);
        assert_eq!(also, [DedupeKey::new(SOURCE, "post:https://news.example.org:5120")]);

        let r = routing(serde_json::json!({"repost_updates": true, "caption": "{title} [{categories}]"}));
        let Outcome::Post { request, also, .. } = map(ID, &fixtures::body(NAME), &r).unwrap().outcome else { panic!() };
        assert_eq!(request.caption, "Autumn Reading List — Ten Picks [Books, Events]");
        assert_eq!(also[0].event_id, "post:https://news.example.org:5120:2026-10-13T07:53:02Z");
    }

    #[test]
    fn other_types_unrouted_sites_and_posts_without_image_are_skipped() {
        let body = String::from_utf8(fixtures::body(NAME)).unwrap();
        let other = body.replace("post.published", "post.updated");
        assert!(matches!(map(ID, other.as_bytes(), &routing(serde_json::json!({}))).unwrap().outcome, Outcome::Skip(r) if r.contains("post.updated")));
        assert_eq!(
            map(ID, body.as_bytes(), &Routing::default()).unwrap().outcome,
            Outcome::Skip("no route for WordPress site https://news.example.org/".into())
        );
        let no_image = body.replace(r#""featured_image":"https:\/\/news.example.org\/wp-content\/uploads\/2026\/10\/autumn-reading.jpg""#, r#""featured_image":null"#);
        assert_ne!(no_image, body);
        assert_eq!(map(ID, no_image.as_bytes(), &routing(serde_json::json!({}))).unwrap().outcome, Outcome::Skip("post 5120 has no featured image".into()));
    }

    #[test]
    fn the_owners_caption_template_wins_over_the_routes_and_a_bad_one_names_the_field() {
        let body = String::from_utf8(fixtures::body(NAME)).unwrap();
        let with = |template: &str| body.replacen(r#""data":{"#, &format!(r#""data":{{"caption_template":{},"#, serde_json::json!(template)), 1);
        let r = routing(serde_json::json!({"caption": "{title}"}));
        let Outcome::Post { request, .. } = map(ID, with("{title} | {categories}\n{{new}}").as_bytes(), &r).unwrap().outcome else { panic!() };
        assert_eq!(request.caption, "Autumn Reading List — Ten Picks | Books, Events\n{new}");
        let Outcome::Post { request, .. } = map(ID, with("  ").as_bytes(), &r).unwrap().outcome else { panic!() };
        assert_eq!(request.caption, "Autumn Reading List — Ten Picks");
        let e = map(ID, with("{title} {price}").as_bytes(), &r).unwrap_err();
        assert_eq!((e.status, e.field.as_deref()), (422, Some("data.caption_template")));
        assert!(e.message.contains("unknown placeholder {price}"), "{}", e.message);
    }

    #[test]
    fn a_password_protected_post_is_refused_and_the_claimed_site_is_read() {
        let body = String::from_utf8(fixtures::body(NAME)).unwrap();
        let protected = body.replacen(r#""data":{"#, r#""data":{"password_protected":true,"#, 1);
        let e = map(ID, protected.as_bytes(), &routing(serde_json::json!({}))).unwrap_err();
        assert_eq!((e.status, e.code, e.field.as_deref()), (422, "protected_post", Some("data.password_protected")));
        let open = body.replacen(r#""data":{"#, r#""data":{"password_protected":false,"#, 1);
        assert!(matches!(map(ID, open.as_bytes(), &routing(serde_json::json!({}))).unwrap().outcome, Outcome::Post { .. }));
        assert_eq!(claimed_site(body.as_bytes()).as_deref(), Some("https://news.example.org/"));
        assert_eq!(claimed_site(b"not json"), None);
    }

    #[test]
    fn schema_violations_name_the_field() {
        let e = map(ID, br#"{"type":"post.published","data":{"site":"https://news.example.org/","id":"x"}}"#, &routing(serde_json::json!({}))).unwrap_err();
        assert_eq!((e.status, e.field.as_deref()), (400, Some("data.id")));
        let e = map(ID, br#"{"type":"post.published"}"#, &routing(serde_json::json!({}))).unwrap_err();
        assert!(e.message.contains("missing field `data`"), "{}", e.message);
    }
}
