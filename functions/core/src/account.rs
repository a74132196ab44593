//! Instagram accounts that instapipe publishes to. Their tokens live in Secrets Manager.

use std::time::Duration;

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

/// Processing times learnt per stage, in milliseconds after the container's creation, as a
/// window: the container was done at the look that found it (`ms`), and still in progress at the
/// latest look that missed it (`missed_ms`). The first look goes to the middle of a wide window
/// and to its end once it is narrow, so a time first found by a coarse poll grid moves down to
/// the real processing time in a few posts (each missed middle costs one look), and a slower
/// container moves it up again. A learnt time is forgotten after a day so that faster processing
/// is noticed again.
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed_ms: Option<u64>,
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

    fn fresh(&self, stage: ProcessingStage, now: OffsetDateTime) -> Option<Learnt> {
        let learnt = match stage {
            ProcessingStage::Image => self.image,
            ProcessingStage::Video => self.video,
            ProcessingStage::CarouselItems => self.carousel_items,
            ProcessingStage::Carousel => self.carousel,
        };
        learnt.filter(|l| now - l.at < LEARNT_FOR)
    }

    /// When the last container of `stage` was known to be done (the end of the window).
    pub fn get(&self, stage: ProcessingStage, now: OffsetDateTime) -> Option<Duration> {
        self.fresh(stage, now).map(|l| Duration::from_millis(l.ms))
    }

    /// Where to look first at a container of `stage`: the middle of a window that is not yet
    /// close enough, else its end.
    pub fn first_look(&self, stage: ProcessingStage, now: OffsetDateTime) -> Option<Duration> {
        let learnt = self.fresh(stage, now)?;
        let done = Duration::from_millis(learnt.ms);
        Some(match learnt.missed_ms.map(Duration::from_millis) {
            Some(missed) if done.saturating_sub(missed) > close_enough(done) => missed + (done - missed) / 2,
            _ => done,
        })
    }

    /// A container of `stage` was found finished by the look at `found` after its creation,
    /// `missed` the latest look that found it still in progress. An earlier finish moves the
    /// window's end down; a later one moves it up only when the container was seen in progress
    /// (a look placed late for another reason says nothing about processing). Returns whether
    /// that changed what is known (worth a write).
    pub fn learn(&mut self, stage: ProcessingStage, found: Duration, missed: Option<Duration>, now: OffsetDateTime) -> bool {
        let known = self.fresh(stage, now);
        let done = match known.map(|k| Duration::from_millis(k.ms)) {
            Some(done) if found > done && missed.is_none() => done,
            _ => found,
        };
        let known_missed = known.and_then(|k| k.missed_ms).map(Duration::from_millis);
        let missed = missed.into_iter().chain(known_missed).filter(|m| *m < done).max();
        let millis = |d: Duration| d.as_millis().min(u128::from(u64::MAX)) as u64;
        let next = Learnt { ms: millis(done), at: now, missed_ms: missed.map(millis) };
        if known.is_some_and(|k| (k.ms, k.missed_ms) == (next.ms, next.missed_ms)) {
            return false;
        }
        *self.slot(stage) = Some(next);
        true
    }
}

/// A window of learnt processing times narrower than this is narrow enough: one eighth of the
/// processing time, at least the half second an image may lag (issue 14).
fn close_enough(done: Duration) -> Duration {
    (done / 8).max(Duration::from_millis(500))
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
    fn the_first_look_narrows_the_window_of_learnt_times_and_a_slower_container_widens_it() {
        let now = datetime!(2026-11-23 10:00 UTC);
        let ms = Duration::from_millis;
        let video = ProcessingStage::Video;
        let mut times = ProcessingTimes::default();
        assert_eq!(times.first_look(video, now), None);
        // A coarse poll grid: in progress at 6 s, done at 11 s.
        assert!(times.learn(video, ms(11_000), Some(ms(6_000)), now));
        assert_eq!(times.first_look(video, now), Some(ms(8_500)));
        // Found at the middle: the window ends there.
        assert!(times.learn(video, ms(8_500), None, now));
        assert_eq!(times.first_look(video, now), Some(ms(7_250)));
        // Missed at the middle, found at the end: the window starts there.
        assert!(times.learn(video, ms(8_500), Some(ms(7_250)), now));
        assert_eq!(times.first_look(video, now), Some(ms(7_875)));
        assert!(times.learn(video, ms(7_875), None, now));
        // 0.625 s wide is close enough for 7.9 s: looked at where the last was found.
        assert_eq!(times.first_look(video, now), Some(ms(7_875)));
        assert!(!times.learn(video, ms(7_875), None, now), "nothing new");
        // A look placed late for another reason, without a miss, says nothing.
        assert!(!times.learn(video, ms(30_000), None, now));
        // A slower container, in progress at the end: the window moves up and widens.
        assert!(times.learn(video, ms(9_875), Some(ms(7_875)), now));
        assert_eq!(times.get(video, now), Some(ms(9_875)));
        assert_eq!(times.first_look(video, now), Some(ms(8_875)));
        // Images: a window of half a second is close enough.
        assert!(times.learn(ProcessingStage::Image, ms(1_125), Some(ms(750)), now));
        assert_eq!(times.first_look(ProcessingStage::Image, now), Some(ms(1_125)));
        assert_eq!(times.get(ProcessingStage::Image, now + time::Duration::days(1)), None, "forgotten after a day");
    }
}
