//! Instagram accounts that instapipe publishes to. Their tokens live in Secrets Manager.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Which login the account's token comes from; it decides the Graph API host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoginFlavour {
    /// Instagram API with Instagram Login: graph.instagram.com.
    Instagram,
    /// Instagram API with Facebook Login for Business: graph.facebook.com.
    Facebook,
}

impl LoginFlavour {
    pub fn graph_host(self) -> &'static str {
        match self {
            LoginFlavour::Instagram => "https://graph.instagram.com",
            LoginFlavour::Facebook => "https://graph.facebook.com",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccountStatus {
    Active,
    /// The token was refused or expired: a person must log in again.
    NeedsReauth,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Account {
    /// The Instagram professional account id used in Graph API paths.
    pub account_id: String,
    pub login: LoginFlavour,
    pub status: AccountStatus,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub token_expires_at: Option<OffsetDateTime>,
}
