//! Sources of posts: each verifies its signature over the raw body, parses its payload and maps
//! it to a [`PostRequest`](crate::post::PostRequest).

pub mod contentful;
pub mod contentful_assets;
pub mod eventbridge;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod generic;
pub mod json;
pub mod mapped;
pub mod routed;
pub mod shopify;
pub mod standard_webhooks;
pub mod text;
pub mod wordpress;

use serde::Serialize;

use crate::post::{MediaItem, MediaKind, Placement, PostRequest};

/// A request we refuse, with the HTTP status and a body that names the problem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RequestError {
    #[serde(skip)]
    pub status: u16,
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl RequestError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        RequestError { status, code, field: None, message: message.into() }
    }

    pub fn field(status: u16, code: &'static str, field: impl Into<String>, message: impl Into<String>) -> Self {
        RequestError { status, code, field: Some(field.into()), message: message.into() }
    }

    fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        RequestError::field(422, "invalid_field", field, message)
    }

    /// `{"error": {"code", "field", "message"}}`
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "error": self })
    }
}

pub const MAX_CAPTION_CHARS: usize = 2200;
pub const MAX_HASHTAGS: usize = 30;
pub const MAX_MENTIONS: usize = 20;
pub const MAX_ACCOUNTS: usize = 25;

/// The checks every source's request must pass, whatever its wire format
/// (limits from Meta's container reference).
pub fn validate(request: &PostRequest) -> Result<(), RequestError> {
    let caption = &request.caption;
    if caption.chars().count() > MAX_CAPTION_CHARS {
        return Err(RequestError::invalid("caption", format!("longer than {MAX_CAPTION_CHARS} characters")));
    }
    let words = |sigil: char| caption.split_whitespace().filter(|w| w.starts_with(sigil) && w.len() > 1).count();
    if words('#') > MAX_HASHTAGS {
        return Err(RequestError::invalid("caption", format!("more than {MAX_HASHTAGS} hashtags")));
    }
    if words('@') > MAX_MENTIONS {
        return Err(RequestError::invalid("caption", format!("more than {MAX_MENTIONS} @-mentions")));
    }
    validate_media(request)?;
    validate_options(request)?;
    if request.accounts.is_empty() {
        return Err(RequestError::invalid("accounts", "at least one Instagram account id is required"));
    }
    if request.accounts.len() > MAX_ACCOUNTS {
        return Err(RequestError::invalid("accounts", format!("at most {MAX_ACCOUNTS} accounts per post")));
    }
    for (i, account) in request.accounts.iter().enumerate() {
        if account.is_empty() || account.len() > 20 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RequestError::invalid(format!("accounts[{i}]"), "an Instagram account id is 1 to 20 digits"));
        }
        if request.accounts[..i].contains(account) {
            return Err(RequestError::invalid(format!("accounts[{i}]"), format!("account {account} is listed twice")));
        }
    }
    Ok(())
}

pub const MAX_CAROUSEL_ITEMS: usize = 10;
pub const MAX_ALT_TEXT_CHARS: usize = 1000;
pub const MAX_COLLABORATORS: usize = 3;

fn validate_media(request: &PostRequest) -> Result<(), RequestError> {
    let story = request.options.placement == Placement::Story;
    match request.media.len() {
        0 => return Err(RequestError::invalid("media", "at least one media item is required")),
        n if story && n > 1 => return Err(RequestError::invalid("media", "a story has exactly one media item")),
        n if n > MAX_CAROUSEL_ITEMS => {
            return Err(RequestError::invalid("media", format!("a carousel has 2 to {MAX_CAROUSEL_ITEMS} items")));
        }
        _ => {}
    }
    let carousel = request.media.len() > 1;
    for (i, item) in request.media.iter().enumerate() {
        let field = |name: &str| format!("media[{i}].{name}");
        validate_media_url(item).map_err(|m| RequestError::invalid(field("url"), m))?;
        if let Some(alt) = &item.alt_text {
            if item.kind != MediaKind::Image || story {
                return Err(RequestError::invalid(field("alt_text"), "alt text is only for feed images"));
            }
            if alt.chars().count() > MAX_ALT_TEXT_CHARS {
                return Err(RequestError::invalid(field("alt_text"), format!("longer than {MAX_ALT_TEXT_CHARS} characters")));
            }
        }
        if carousel && item.kind == MediaKind::Video && !item.user_tags.is_empty() {
            return Err(RequestError::invalid(field("user_tags"), "Instagram takes no user tags on carousel videos"));
        }
        for (j, tag) in item.user_tags.iter().enumerate() {
            let tag_field = format!("media[{i}].user_tags[{j}]");
            if tag.username.trim().is_empty() {
                return Err(RequestError::invalid(tag_field, "username is required"));
            }
            let inside = |v: Option<f64>| v.is_none_or(|v| (0.0..=1.0).contains(&v));
            if !inside(tag.x) || !inside(tag.y) {
                return Err(RequestError::invalid(tag_field, "x and y are between 0 and 1"));
            }
            if item.kind == MediaKind::Image && !story && (tag.x.is_none() || tag.y.is_none()) {
                return Err(RequestError::invalid(tag_field, "x and y are required for a tag on an image"));
            }
        }
    }
    Ok(())
}

fn validate_options(request: &PostRequest) -> Result<(), RequestError> {
    let options = &request.options;
    let story = options.placement == Placement::Story;
    let single_video = request.media.len() == 1 && request.media[0].kind == MediaKind::Video;
    if options.collaborators.len() > MAX_COLLABORATORS {
        return Err(RequestError::invalid("options.collaborators", format!("at most {MAX_COLLABORATORS} collaborators")));
    }
    if story && !options.collaborators.is_empty() {
        return Err(RequestError::invalid("options.collaborators", "stories take no collaborators"));
    }
    if story && options.location_id.is_some() {
        return Err(RequestError::invalid("options.location_id", "stories take no location"));
    }
    if let Some(location) = &options.location_id
        && (location.is_empty() || !location.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(RequestError::invalid("options.location_id", "a location is the id of a Facebook Page (digits)"));
    }
    if let Some(reel) = &options.reel {
        if story || !single_video {
            return Err(RequestError::invalid("options.reel", "Reel options are for a single video in the feed"));
        }
        if let Some(cover) = &reel.cover_url {
            validate_media_url(&MediaItem::new(cover.clone(), MediaKind::Image))
                .map_err(|m| RequestError::invalid("options.reel.cover_url", m))?;
        }
    }
    if let Some(comment) = &options.first_comment
        && (comment.trim().is_empty() || comment.chars().count() > MAX_CAPTION_CHARS)
    {
        return Err(RequestError::invalid("options.first_comment", format!("1 to {MAX_CAPTION_CHARS} characters")));
    }
    Ok(())
}

/// Meta fetches media itself, over public HTTPS, and wants plain ASCII URLs.
fn validate_media_url(item: &MediaItem) -> Result<(), String> {
    let url = item.url.as_str();
    let Some(rest) = url.strip_prefix("https://") else {
        return Err("must be an https:// URL".into());
    };
    if !url.is_ascii() || url.chars().any(|c| c.is_ascii_whitespace() || c.is_ascii_control()) {
        return Err("must be plain ASCII without spaces (percent-encode other characters)".into());
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() {
        return Err("has no host".into());
    }
    if item.kind == MediaKind::Image && url.len() > 2048 {
        return Err("is longer than 2048 characters".into());
    }
    Ok(())
}
