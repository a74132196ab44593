//! How long instapipe waits for Meta to process a container: the one place for these numbers.
//!
//! Defaults follow Meta's advice (poll about once a minute; images are usually ready within
//! seconds, videos take minutes) and EventBridge Scheduler's one-minute precision:
//! - images: a short inline check inside create-container (waits of 2 s, 3 s, 5 s), so most image
//!   posts never need a schedule;
//! - then scheduled polls, 60 s apart, growing by half each time up to 120 s;
//! - deadline after container creation: 5 minutes for images, 20 minutes for video and carousels,
//!   after which the destination fails as a processing timeout.
//!
//! - a used-up publishing quota defers the destination and reads the quota again after 15 min;
//! - a container creation that fails transiently (5xx, timeout, throttling) is retried by
//!   schedule after 1, 2, 4, 8 intervals, then the destination fails with the last error.
//!
//! Every number can be overridden by an environment variable (the local stack uses seconds).

use std::time::Duration;

use crate::post::MediaKind;

/// Transient container-creation failures tolerated before the destination fails.
pub const MAX_CREATE_RETRIES: u32 = 4;

#[derive(Clone, Debug, PartialEq)]
pub struct PollPolicy {
    /// Waits before each inline status check of an image container (`POLL_INLINE_CHECKS_MS`).
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
        }
    }
}

impl PollPolicy {
    /// Inline checks are only worth their wait for images; video would hold the function for minutes.
    pub fn inline_checks_for(&self, kind: MediaKind) -> &[Duration] {
        match kind {
            MediaKind::Image => &self.inline_checks,
            MediaKind::Video => &[],
        }
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
    fn videos_skip_the_inline_check() {
        let p = PollPolicy::default();
        assert_eq!(p.inline_checks_for(MediaKind::Image).len(), 3);
        assert!(p.inline_checks_for(MediaKind::Video).is_empty());
    }
}
