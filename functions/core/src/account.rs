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
    /// The publishing quota as last read, and our publishes since (see [`QuotaReading`]).
    #[serde(default)]
    pub publishing: Option<QuotaReading>,
    /// How long Meta took lately to process this account's containers (see [`ProcessingTimes`]).
    #[serde(default)]
    pub processing: ProcessingTimes,
}

/// `content_publishing_limit` as last read, so that it is not read before every publish (a
/// Graph call each time, from the account's call budget). Our own publishes since are counted
/// on it; publishes by other apps are not, so the reading is trusted only for a while
/// (`PollPolicy::quota_cache`, in polling.rs). Meta enforces the cap at publish time anyway
/// (9/2207042), and that answer defers the post and marks the reading used up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaReading {
    pub usage: u32,
    pub total: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub read_at: OffsetDateTime,
    /// Publishes by instapipe since the reading.
    #[serde(default)]
    pub published_since: u32,
}

impl QuotaReading {
    /// Publishes left by our count (an overestimate of usage: old publishes leave the
    /// rolling window unseen).
    pub fn left(&self) -> u32 {
        self.total.saturating_sub(self.usage + self.published_since)
    }

    /// Read the quota again when the reading is older than `max_age`, or when few publishes
    /// are left (a tenth of the cap, at least one): there the answer decides.
    pub fn worth_reading(&self, now: OffsetDateTime, max_age: std::time::Duration) -> bool {
        let near = (self.total / 10).max(1);
        now - self.read_at >= max_age || self.left() <= near
    }
}

/// Which wait a destination is in; each has its own processing time per account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcessingStage {
    /// A single image (feed or story).
    Image,
    /// A single video (Reel or video story).
    Video,
    /// A carousel's items, from the last item's creation until all are finished.
    CarouselItems,
    /// A carousel's container, from its creation (once its items are finished) until it is.
    Carousel,
}

/// Processing times learnt per stage, in milliseconds after the container's creation: the
/// time of the look that found it finished. Only a look later than the learnt time (the first
/// look, placed at the learnt time, missed) moves it, so the next first look lands where the
/// last container was found done. A learnt time is forgotten after a day so that faster
/// processing is noticed again.
///
/// Every field is written, as null when nothing is learnt: an empty map attribute is stored by
/// DynamoDB Local in a form its stream then cannot describe.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ProcessingTimes {
    #[serde(default)]
    pub image: Option<Learnt>,
    #[serde(default)]
    pub video: Option<Learnt>,
    #[serde(default)]
    pub carousel_items: Option<Learnt>,
    #[serde(default)]
    pub carousel: Option<Learnt>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Learnt {
    pub ms: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// How long a learnt processing time is trusted.
const LEARNT_FOR: time::Duration = time::Duration::days(1);

impl ProcessingTimes {
    fn slot(&mut self, stage: ProcessingStage) -> &mut Option<Learnt> {
        match stage {
            ProcessingStage::Image => &mut self.image,
            ProcessingStage::Video => &mut self.video,
            ProcessingStage::CarouselItems => &mut self.carousel_items,
            ProcessingStage::Carousel => &mut self.carousel,
        }
    }

    pub fn get(&self, stage: ProcessingStage, now: OffsetDateTime) -> Option<std::time::Duration> {
        let learnt = match stage {
            ProcessingStage::Image => self.image,
            ProcessingStage::Video => self.video,
            ProcessingStage::CarouselItems => self.carousel_items,
            ProcessingStage::Carousel => self.carousel,
        };
        learnt.filter(|l| now - l.at < LEARNT_FOR).map(|l| std::time::Duration::from_millis(l.ms))
    }

    /// A container of `stage` was found finished by the look at `found` after its creation.
    /// Returns whether that changed what is known (worth a write).
    pub fn learn(&mut self, stage: ProcessingStage, found: std::time::Duration, now: OffsetDateTime) -> bool {
        let known = self.get(stage, now);
        if known.is_some_and(|k| found <= k) {
            return false;
        }
        *self.slot(stage) = Some(Learnt { ms: found.as_millis().min(u128::from(u64::MAX)) as u64, at: now });
        true
    }
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

    #[test]
    fn the_quota_is_read_again_when_stale_or_near_the_cap() {
        let now = datetime!(2026-11-23 10:00 UTC);
        let hour = std::time::Duration::from_secs(3600);
        let mut reading = QuotaReading { usage: 10, total: 100, read_at: now, published_since: 0 };
        assert!(!reading.worth_reading(now + hour, 6 * hour));
        assert!(reading.worth_reading(now + 6 * hour, 6 * hour), "stale");
        reading.published_since = 79;
        assert_eq!(reading.left(), 11);
        assert!(!reading.worth_reading(now, 6 * hour));
        reading.published_since = 80;
        assert!(reading.worth_reading(now, 6 * hour), "10 left of 100");
        // A cap of 25: read from 2 left on.
        let small = QuotaReading { usage: 22, total: 25, read_at: now, published_since: 0 };
        assert!(!small.worth_reading(now, 6 * hour));
        assert!(QuotaReading { usage: 23, ..small }.worth_reading(now, 6 * hour));
    }

    #[test]
    fn a_processing_time_moves_only_when_the_first_look_missed_and_is_forgotten_after_a_day() {
        let now = datetime!(2026-11-23 10:00 UTC);
        let ms = std::time::Duration::from_millis;
        let mut times = ProcessingTimes::default();
        assert_eq!(times.get(ProcessingStage::Image, now), None);
        assert!(times.learn(ProcessingStage::Image, ms(1200), now));
        // Found by a first look placed at the learnt time: nothing new.
        assert!(!times.learn(ProcessingStage::Image, ms(1200), now));
        assert!(!times.learn(ProcessingStage::Image, ms(900), now));
        assert!(times.learn(ProcessingStage::Image, ms(1500), now));
        assert_eq!(times.get(ProcessingStage::Image, now), Some(ms(1500)));
        assert_eq!(times.get(ProcessingStage::Video, now), None);
        assert_eq!(times.get(ProcessingStage::Image, now + time::Duration::days(1)), None);
    }
}
