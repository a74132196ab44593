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

/// Share of the Graph API allowance in use, from the usage headers (percentages; throttling
/// starts at 100).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiUsage {
    /// `X-App-Usage`: the largest of call count, CPU time and total time.
    pub app: u32,
    /// `X-Business-Use-Case-Usage` for this account (type `instagram`): the largest figure.
    pub account: u32,
    /// `estimated_time_to_regain_access`, in minutes (0 when not throttled or not given).
    pub regain_minutes: u32,
}

impl ApiUsage {
    pub fn highest(&self) -> u32 {
        self.app.max(self.account)
    }
}

/// Above this share of any figure, an account's calls are deferred (reference §4).
pub const USAGE_DEFER_PERCENT: u32 = 80;
/// Backoff when Meta throttles without saying for how long: 1, 2, 4 ... minutes, at most 60.
const MAX_THROTTLE_MINUTES: u64 = 60;

/// The account's latest API usage and, when throttled, until when its calls wait.
/// Kept in its own item so that every instance of every function sees it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountUsage {
    pub account_id: String,
    #[serde(default)]
    pub latest: Option<ApiUsage>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub observed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub throttled_until: Option<OffsetDateTime>,
    /// Throttles in a row, for the backoff when Meta gives no time.
    #[serde(default)]
    pub throttles_in_a_row: u32,
}

impl AccountUsage {
    pub fn waiting_until(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.throttled_until.filter(|until| *until > now)
    }

    /// Starts (or extends) a pause: Meta's estimate when it gives one, else the backoff.
    pub fn throttle(&mut self, now: OffsetDateTime, regain_minutes: u32) -> OffsetDateTime {
        self.throttles_in_a_row += 1;
        let minutes = if regain_minutes > 0 {
            u64::from(regain_minutes)
        } else {
            (1u64 << (self.throttles_in_a_row - 1).min(6)).min(MAX_THROTTLE_MINUTES)
        };
        let until = now + std::time::Duration::from_secs(minutes * 60);
        self.throttled_until = Some(self.throttled_until.map_or(until, |t| t.max(until)));
        self.throttled_until.expect("just set")
    }

    pub fn observe(&mut self, usage: ApiUsage, now: OffsetDateTime) {
        self.latest = Some(usage);
        self.observed_at = Some(now);
        if usage.highest() < USAGE_DEFER_PERCENT {
            self.throttles_in_a_row = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn throttling_uses_metas_estimate_or_backs_off() {
        let now = datetime!(2026-11-23 10:00 UTC);
        let mut usage = AccountUsage::default();
        assert_eq!(usage.throttle(now, 0), now + std::time::Duration::from_secs(60));
        assert_eq!(usage.throttle(now, 0), now + std::time::Duration::from_secs(120));
        assert_eq!(usage.throttle(now, 0), now + std::time::Duration::from_secs(240));
        let mut fresh = AccountUsage::default();
        assert_eq!(fresh.throttle(now, 15), now + std::time::Duration::from_secs(900));
        assert_eq!(fresh.waiting_until(now + std::time::Duration::from_secs(901)), None);
        for _ in 0..10 {
            fresh.throttle(now, 0);
        }
        assert!(fresh.throttled_until.unwrap() <= now + std::time::Duration::from_secs(3600));
    }
}
