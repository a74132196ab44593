//! How long instapipe waits for Meta to process a container: the one place for these numbers.
//!
//! Every status read is a Graph call from the account's budget, so a container is looked at
//! where its processing is likely finished, not on a fixed grid:
//! - the first look is where the account's learnt processing times for that kind of container
//!   say (single image, single video, carousel items, carousel; [`crate::account::ProcessingTimes`]:
//!   the middle of the window between the last look that missed one and the look that found one
//!   finished while it is wide, else its end), or, with nothing learnt, at a first guess: the
//!   first inline wait (2 s) for images, the poll interval for video;
//! - a look that lands within the inline budget (the sum of the inline waits, 10 s) is made
//!   inside create-container; after a miss the next inline look follows by half the time
//!   waited so far, between 0.1 s and 0.5 s, so an image is found at most 0.5 s after it is
//!   done; beyond the budget the look is a scheduled poll;
//! - scheduled polls after the first follow 60 s apart, growing by half each time up to 120 s
//!   (EventBridge Scheduler's precision is a minute anyway);
//! - deadline after container creation: 5 minutes for images, 20 minutes for video and carousels,
//!   after which the destination fails as a processing timeout.
//!
//! - the publishing quota is read before a publish only when the last reading is older than
//!   6 hours or few publishes are left by our count; a used-up quota defers the destination and
//!   reads the quota again after 15 min;
//! - a container creation that fails transiently (5xx, timeout, throttling) is retried by
//!   schedule after 1, 2, 4, 8 intervals, then the destination fails with the last error.
//!
//! Every number can be overridden by an environment variable (the local stack uses seconds).

use std::time::Duration;

use crate::account::ProcessingStage;
use crate::post::MediaKind;

const MIN_INLINE_STEP: Duration = Duration::from_millis(100);
/// The most an inline look lags a container's finish (issue 14: image within processing + 0.5 s).
const MAX_INLINE_STEP: Duration = Duration::from_millis(500);

/// Transient container-creation failures tolerated before the destination fails.
pub const MAX_CREATE_RETRIES: u32 = 4;

#[derive(Clone, Debug, PartialEq)]
pub struct PollPolicy {
    /// Inline waits (`POLL_INLINE_CHECKS_MS`): the first is the first guess of an image's
    /// processing time, their sum how long create-container may wait inline for a container.
    pub inline_checks: Vec<Duration>,
    /// Delay before the first scheduled poll (`POLL_INTERVAL_SECS`).
    pub interval: Duration,
    /// Upper bound of the growing delay between scheduled polls (`POLL_MAX_INTERVAL_SECS`).
    pub max_interval: Duration,
    /// Give up on an image container this long after its creation (`POLL_IMAGE_DEADLINE_SECS`).
    pub image_deadline: Duration,
    /// Give up on a video or carousel container (`POLL_VIDEO_DEADLINE_SECS`).
    pub video_deadline: Duration,
    /// How long a destination waits, when the account's 24-hour publishing quota is used up,
    /// before the quota is read again (`POLL_QUOTA_RECHECK_SECS`; Meta does not say when the
    /// oldest publish leaves the window).
    pub quota_recheck: Duration,
    /// How long a reading of the publishing quota is trusted before a publish reads it again
    /// (`POLL_QUOTA_CACHE_SECS`).
    pub quota_cache: Duration,
}

/// The watchdog (sweep): how long past its expected move a destination is left alone before it
/// is restarted, and how often it is restarted before it fails.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchdogPolicy {
    /// Margin past the expected move (`WATCHDOG_GRACE_SECS`): more than Scheduler's lateness
    /// (up to a minute) and a stream's retries of a failing batch, so the sweep restarts only
    /// what nothing else will move.
    pub grace: Duration,
    /// Restarts before the destination fails with the reason (`WATCHDOG_MAX_REARMS`).
    pub max_rearms: u32,
    /// Destinations handled per state and run; the rest wait for the next run.
    pub batch: usize,
}

impl Default for WatchdogPolicy {
    fn default() -> Self {
        WatchdogPolicy { grace: Duration::from_secs(10 * 60), max_rearms: 3, batch: 100 }
    }
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            inline_checks: vec![
                Duration::from_secs(2),
                Duration::from_secs(3),
                Duration::from_secs(5),
            ],
            interval: Duration::from_secs(60),
            max_interval: Duration::from_secs(120),
            image_deadline: Duration::from_secs(5 * 60),
            video_deadline: Duration::from_secs(20 * 60),
            quota_recheck: Duration::from_secs(15 * 60),
            quota_cache: Duration::from_secs(6 * 3600),
        }
    }
}

impl PollPolicy {
    /// How long create-container may wait inline for a container (from its creation).
    pub fn inline_budget(&self) -> Duration {
        self.inline_checks.iter().sum()
    }

    /// How long after creation to look first, with nothing learnt: images the first inline
    /// wait, video the poll interval; a carousel container, made once its items are finished,
    /// like an image. `has_video`: some item is a video.
    pub fn first_guess(&self, stage: ProcessingStage, has_video: bool) -> Duration {
        let image = self.inline_checks.first().copied().unwrap_or(self.interval);
        match stage {
            ProcessingStage::Image | ProcessingStage::Carousel => image,
            ProcessingStage::Video => self.interval,
            ProcessingStage::CarouselItems if has_video => self.interval,
            ProcessingStage::CarouselItems => image,
        }
    }

    /// After an inline look at `missed_at` (since creation) found the container still in
    /// progress: wait half as long again, at least 0.1 s (or the first inline wait, if
    /// shorter) and at most 0.5 s, so a finished container is found within 0.5 s while a slow
    /// one costs few looks.
    pub fn inline_step(&self, missed_at: Duration) -> Duration {
        let least = self.inline_checks.first().map_or(MIN_INLINE_STEP, |first| (*first).min(MIN_INLINE_STEP));
        (missed_at / 2).clamp(least, MAX_INLINE_STEP)
    }

    /// Delay before scheduled poll number `attempt` (1-based): interval × 1.5^(attempt-1), capped.
    pub fn delay_before_poll(&self, attempt: u32) -> Duration {
        let factor = 1.5f64.powi(attempt.saturating_sub(1).min(20) as i32);
        self.interval.mul_f64(factor).min(self.max_interval)
    }

    /// Delay before retry number `retry` (1-based) of a container creation that failed
    /// transiently: interval × 2^(retry-1), capped at 16 intervals.
    pub fn delay_before_create_retry(&self, retry: u32) -> Duration {
        self.interval * 2u32.pow(retry.saturating_sub(1).min(4))
    }

    pub fn deadline_for(&self, kind: MediaKind) -> Duration {
        match kind {
            MediaKind::Image => self.image_deadline,
            MediaKind::Video => self.video_deadline,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_by_half_and_stop_at_the_cap() {
        let p = PollPolicy::default();
        assert_eq!(p.delay_before_poll(1), Duration::from_secs(60));
        assert_eq!(p.delay_before_poll(2), Duration::from_secs(90));
        assert_eq!(p.delay_before_poll(3), Duration::from_secs(120));
        assert_eq!(p.delay_before_poll(50), Duration::from_secs(120));
    }

    #[test]
    fn first_guesses_and_inline_steps() {
        let p = PollPolicy::default();
        assert_eq!(p.inline_budget(), Duration::from_secs(10));
        assert_eq!(p.first_guess(ProcessingStage::Image, false), Duration::from_secs(2));
        assert_eq!(p.first_guess(ProcessingStage::Video, true), Duration::from_secs(60));
        assert_eq!(p.first_guess(ProcessingStage::CarouselItems, false), Duration::from_secs(2));
        assert_eq!(p.first_guess(ProcessingStage::CarouselItems, true), Duration::from_secs(60));
        assert_eq!(p.inline_step(Duration::from_millis(100)), Duration::from_millis(100));
        assert_eq!(p.inline_step(Duration::from_millis(600)), Duration::from_millis(300));
        assert_eq!(p.inline_step(Duration::from_secs(3)), Duration::from_millis(500));
    }
}
