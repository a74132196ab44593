//! Token endpoints (reference §2.8): Instagram Login's `GET /refresh_access_token`
//! (ig_refresh_token) and `GET /access_token` (ig_exchange_token), and Facebook Login's
//! `GET /{version}/oauth/access_token` (fb_exchange_token). A token registered with
//! `set_token` is replaced by a new one; an unknown or expired token gets 190.

use serde_json::{Value, json};

use crate::error::GraphError;
use crate::params::Params;
use crate::state::State;

/// What Meta answers for a long-lived token: 60 days.
pub const LONG_LIVED_SECS: u64 = 5_184_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Grant {
    InstagramRefresh,
    InstagramExchange,
    FacebookExchange,
}

impl Grant {
    fn grant_type(self) -> &'static str {
        match self {
            Grant::InstagramRefresh => "ig_refresh_token",
            Grant::InstagramExchange => "ig_exchange_token",
            Grant::FacebookExchange => "fb_exchange_token",
        }
    }

    /// The parameter that carries the token being refreshed or exchanged.
    fn token_param(self) -> &'static str {
        match self {
            Grant::FacebookExchange => "fb_exchange_token",
            _ => "access_token",
        }
    }

    fn required(self) -> &'static [&'static str] {
        match self {
            Grant::InstagramRefresh => &[],
            Grant::InstagramExchange => &["client_secret"],
            Grant::FacebookExchange => &["client_id", "client_secret"],
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Grant::FacebookExchange => "EAAsim",
            _ => "IGAAsim",
        }
    }
}

impl State {
    /// Runs a token grant; returns the answer and the account the token belonged to.
    pub fn grant_token(&mut self, grant: Grant, params: &Params) -> (Result<Value, GraphError>, Option<String>) {
        if params.get("grant_type") != Some(grant.grant_type()) {
            let detail = format!("grant_type must be {}", grant.grant_type());
            return (Err(GraphError::invalid_parameter(detail)), None);
        }
        for name in grant.required() {
            if !params.has(name) {
                return (Err(GraphError::invalid_parameter(format!("The parameter {name} is required."))), None);
            }
        }
        let Some(token) = params.get(grant.token_param()) else {
            return (Err(GraphError::invalid_token()), None);
        };
        if self.expired_tokens.contains(token) {
            return (Err(GraphError::expired_token()), self.account_for_token(token));
        }
        let Some(account) = self.account_for_token(token) else {
            return (Err(GraphError::invalid_token()), None);
        };
        let fresh = format!("{}{}", grant.prefix(), self.new_id());
        self.tokens.insert(account.clone(), fresh.clone());
        let body = json!({ "access_token": fresh, "token_type": "bearer", "expires_in": LONG_LIVED_SECS });
        (Ok(body), Some(account))
    }
}
