//! Graph API error answers, in Meta's body shape (reference §3):
//! `{"error":{"message","type":"OAuthException","code","error_subcode"?,"is_transient",
//! "error_user_title","error_user_msg","fbtrace_id"}}`.

use axum::http::StatusCode;
use serde_json::{Value, json};

#[derive(Clone, Debug)]
pub(crate) struct GraphError {
    pub status: StatusCode,
    pub code: i64,
    pub subcode: Option<i64>,
    pub message: String,
    pub is_transient: bool,
    pub user_title: String,
    pub user_msg: String,
}

impl GraphError {
    fn new(code: i64, subcode: Option<i64>, message: impl Into<String>) -> Self {
        GraphError {
            status: StatusCode::BAD_REQUEST,
            code,
            subcode,
            message: message.into(),
            is_transient: false,
            user_title: String::new(),
            user_msg: String::new(),
        }
    }

    fn user(mut self, title: &str, msg: impl Into<String>) -> Self {
        self.user_title = title.to_string();
        self.user_msg = msg.into();
        self
    }

    fn transient(mut self) -> Self {
        self.is_transient = true;
        self
    }

    pub fn body(&self, fbtrace_id: &str) -> Value {
        let mut error = json!({
            "message": self.message,
            "type": "OAuthException",
            "code": self.code,
            "is_transient": self.is_transient,
            "error_user_title": self.user_title,
            "error_user_msg": self.user_msg,
            "fbtrace_id": fbtrace_id,
        });
        if let Some(subcode) = self.subcode {
            error["error_subcode"] = json!(subcode);
        }
        json!({ "error": error })
    }

    // ---- the errors the simulator produces -------------------------------------------------

    /// 190: missing, unparsable or wrong token.
    pub fn invalid_token() -> Self {
        Self::new(
            190,
            None,
            "Invalid OAuth access token - Cannot parse access token",
        )
        .user(
            "Invalid access token",
            "The access token is invalid. Log in again to reconnect the account.",
        )
    }

    /// 190/463: the token was valid once but has expired; only a new login helps.
    pub fn expired_token() -> Self {
        Self::new(
            190,
            Some(463),
            "Error validating access token: Session has expired.",
        )
        .user(
            "Session expired",
            "The access token has expired. Log in again to reconnect the account.",
        )
    }

    /// 100, no subcode: a bad or missing parameter.
    /// A code exchange refused (code 100; subcode 36007 expired, 36008 redirect_uri or
    /// client mismatch, 36009 used or unknown).
    pub fn oauth_code(subcode: i64, message: &str) -> Self {
        GraphError::new(100, Some(subcode), message)
    }

    /// Code 200: the token lacks a permission the call needs.
    pub fn missing_permission(permission: &str) -> Self {
        GraphError::new(200, None, format!("(#200) Requires {permission} permission to manage the object"))
    }

    pub fn invalid_parameter(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        Self::new(100, None, format!("(#100) {detail}")).user("Invalid parameter", detail)
    }

    /// 100/33: the object does not exist (or the edge/method is not supported on it).
    pub fn unsupported_request(method: &str, id: &str) -> Self {
        Self::new(
            100,
            Some(33),
            format!(
                "Unsupported {} request. Object with ID '{id}' does not exist, cannot be loaded due to \
                 missing permissions, or does not support this operation. Please read the Graph API \
                 documentation at https://developers.facebook.com/docs/graph-api",
                method.to_ascii_lowercase()
            ),
        )
        .user("Object not found", format!("Object with ID '{id}' does not exist."))
    }

    /// 2500: a path this API does not have.
    pub fn unknown_path(path: &str) -> Self {
        Self::new(2500, None, format!("Unknown path components: {path}")).user(
            "Unknown path",
            format!("The path {path} is not part of the Graph API."),
        )
    }

    /// 100: a field that the node type does not have.
    pub fn nonexisting_field(field: &str, node_type: &str) -> Self {
        Self::new(
            100,
            None,
            format!(
                "(#100) Tried accessing nonexisting field ({field}) on node type ({node_type})"
            ),
        )
        .user(
            "Invalid field",
            format!("The field {field} does not exist."),
        )
    }

    /// 100/2207023: unknown or unsupported media type.
    pub fn bad_media_type(detail: impl Into<String>) -> Self {
        Self::new(100, Some(2207023), "The media type is not supported")
            .user("Unsupported media type", detail)
    }

    /// 100/2207028: a carousel needs 2..=10 children.
    pub fn carousel_item_count(count: usize) -> Self {
        Self::new(100, Some(2207028), "Carousel validation failed").user(
            "Invalid number of carousel items",
            format!("A carousel must have between 2 and 10 items; {count} were given."),
        )
    }

    /// 36004/2207010: caption over 2,200 characters, 30 hashtags or 20 mentions.
    pub fn caption_too_long(detail: impl Into<String>) -> Self {
        Self::new(36004, Some(2207010), "The caption is too long").user("Caption too long", detail)
    }

    /// 9007/2207027: publish before the container is FINISHED.
    pub fn not_ready() -> Self {
        Self::new(
            9007,
            Some(2207027),
            "The media is not ready for publishing, please wait for a moment",
        )
        .user(
            "Media Not Ready For Publishing",
            "The media is not ready to be published. Please wait a moment.",
        )
    }

    /// -1/2207032: publish of a container whose processing failed.
    pub fn create_failed() -> Self {
        Self::new(-1, Some(2207032), "Create media has failed").user(
            "Media upload failed",
            "Creating the media failed. Create a new container and try again.",
        )
    }

    /// 24/2207008: the container expired before it was published.
    pub fn container_expired(id: &str) -> Self {
        Self::new(
            24,
            Some(2207008),
            "The media builder with creation id does not exist or has expired",
        )
        .user(
            "Media builder expired",
            format!("The container {id} does not exist or has expired. Create a new container."),
        )
    }

    /// 24/2207006: the container cannot be published: unknown, someone else's, or already published.
    pub fn media_not_found(id: &str) -> Self {
        Self::new(
            24,
            Some(2207006),
            format!("The media with id {id} cannot be found"),
        )
        .user(
            "Media not found",
            format!("The media with id {id} cannot be found."),
        )
    }

    /// 9/2207042: the account used up its publishing quota for the rolling 24 h.
    pub fn quota_reached() -> Self {
        Self::new(
            9,
            Some(2207042),
            "The account has reached its publishing limit",
        )
        .user(
            "Maximum number of posts reached",
            "The account has reached its limit of API-published posts for the last 24 hours.",
        )
    }

    /// 80002: Instagram Business Use Case rate limit.
    pub fn account_rate_limited() -> Self {
        Self::new(80002, None, "Application request limit reached")
            .user("Too many calls", "There have been too many calls to this Instagram account. Wait a bit and try again.")
            .transient()
    }

    /// 2: the injected "temporary service issue", answered with HTTP 500.
    pub fn injected_server_error() -> Self {
        let mut err = Self::new(
            2,
            None,
            "An unexpected error has occurred. Please retry your request later.",
        )
        .user(
            "Service temporarily unavailable",
            "Please retry your request later.",
        )
        .transient();
        err.status = StatusCode::INTERNAL_SERVER_ERROR;
        err
    }
}
