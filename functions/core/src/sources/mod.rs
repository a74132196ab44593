//! Sources of posts: each verifies its signature over the raw body, parses its payload and maps
//! it to a [`PostRequest`](crate::post::PostRequest).

pub mod contentful;
pub mod contentful_assets;
pub mod eventbridge;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod generic;
pub mod json;
pub mod routed;
pub mod shopify;
pub mod signing;
pub mod standard_webhooks;
pub mod text;
pub mod wordpress;

use serde::Serialize;

use crate::post::{MediaItem, MediaKind, PostRequest};

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
    match request.media.len() {
        0 => return Err(RequestError::invalid("media", "at least one media item is required")),
        1 => {}
        _ => {
            return Err(RequestError::invalid(
                "media",
                "exactly one media item per post for now: carousels are not supported yet",
            ));
        }
    }
    for (i, item) in request.media.iter().enumerate() {
        validate_media_url(item).map_err(|m| RequestError::invalid(format!("media[{i}].url"), m))?;
    }
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
