//! Simulator settings: processing delays, limits and fault-injection rates.

use std::time::Duration;

/// How the simulator behaves. Build it with `SimConfig::default()` plus overrides, or from the
/// `GRAPH_SIM_*` environment variables with [`SimConfig::from_env`].
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// A container for an image (feed, image story, image carousel child) turns from
    /// IN_PROGRESS to FINISHED after this long; a carousel parent also waits this long.
    pub image_delay: Duration,
    /// Same for REELS, video stories and VIDEO carousel children.
    pub video_delay: Duration,
    /// An unpublished container becomes EXPIRED this long after creation (Meta: 24 h).
    pub expiry: Duration,
    /// `content_publishing_limit` per account per rolling 24 h.
    pub quota_total: u32,
    /// Seed of the RNGs behind fault injection and generated shortcodes / trace ids.
    pub seed: u64,
    /// Share of Graph requests answered with HTTP 500, code 2, `is_transient: true`.
    pub error_rate: f64,
    /// Share of Graph requests carried out at once but answered only after `timeout` (the work
    /// done, the answer late): a client with a shorter timeout gives up not knowing it happened.
    pub timeout_rate: f64,
    /// Share of carousel container creations answered late in the same way, on top of
    /// `timeout_rate`, so that a run surely meets retries whose children are already used.
    pub carousel_timeout_rate: f64,
    /// How late a "timed out" request is answered.
    pub timeout: Duration,
    /// Share of successful `media_publish` calls whose answer is lost: the post goes live but
    /// the client gets a 502 without a Graph body.
    pub lost_publish_rate: f64,
    /// Business Use Case budget: Graph calls per account per rolling hour. The usage headers
    /// report calls as a percentage of it; at 100 % calls fail with code 80002.
    /// 0 disables the limit (usage is then reported as 0 %).
    pub account_calls_per_hour: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            image_delay: Duration::from_secs(1),
            video_delay: Duration::from_secs(8),
            expiry: Duration::from_secs(24 * 60 * 60),
            quota_total: 100,
            seed: 1,
            error_rate: 0.0,
            timeout_rate: 0.0,
            carousel_timeout_rate: 0.0,
            timeout: Duration::from_secs(30),
            lost_publish_rate: 0.0,
            account_calls_per_hour: 2000,
        }
    }
}

impl SimConfig {
    /// Reads the `GRAPH_SIM_*` variables; unset or empty variables keep their default.
    /// The error message names the offending variable.
    pub fn from_env() -> Result<SimConfig, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// `from_env` with an injectable lookup, so it can be tested without touching the process
    /// environment.
    pub(crate) fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<SimConfig, String> {
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let mut config = SimConfig::default();

        if let Some(v) = get("GRAPH_SIM_IMAGE_DELAY_MS") {
            config.image_delay = Duration::from_millis(parse_int("GRAPH_SIM_IMAGE_DELAY_MS", &v)?);
        }
        if let Some(v) = get("GRAPH_SIM_VIDEO_DELAY_MS") {
            config.video_delay = Duration::from_millis(parse_int("GRAPH_SIM_VIDEO_DELAY_MS", &v)?);
        }
        if let Some(v) = get("GRAPH_SIM_EXPIRY_SECS") {
            config.expiry = Duration::from_secs(parse_int("GRAPH_SIM_EXPIRY_SECS", &v)?);
        }
        if let Some(v) = get("GRAPH_SIM_QUOTA_TOTAL") {
            config.quota_total = parse_int("GRAPH_SIM_QUOTA_TOTAL", &v)?;
        }
        if let Some(v) = get("GRAPH_SIM_SEED") {
            config.seed = parse_int("GRAPH_SIM_SEED", &v)?;
        }
        if let Some(v) = get("GRAPH_SIM_ERROR_RATE") {
            config.error_rate = parse_rate("GRAPH_SIM_ERROR_RATE", &v)?;
        }
        if let Some(v) = get("GRAPH_SIM_TIMEOUT_RATE") {
            config.timeout_rate = parse_rate("GRAPH_SIM_TIMEOUT_RATE", &v)?;
        }
        if let Some(v) = get("GRAPH_SIM_CAROUSEL_TIMEOUT_RATE") {
            config.carousel_timeout_rate = parse_rate("GRAPH_SIM_CAROUSEL_TIMEOUT_RATE", &v)?;
        }
        if let Some(v) = get("GRAPH_SIM_TIMEOUT_MS") {
            config.timeout = Duration::from_millis(parse_int("GRAPH_SIM_TIMEOUT_MS", &v)?);
        }
        if let Some(v) = get("GRAPH_SIM_LOST_PUBLISH_RATE") {
            config.lost_publish_rate = parse_rate("GRAPH_SIM_LOST_PUBLISH_RATE", &v)?;
        }
        if let Some(v) = get("GRAPH_SIM_ACCOUNT_CALLS_PER_HOUR") {
            config.account_calls_per_hour = parse_int("GRAPH_SIM_ACCOUNT_CALLS_PER_HOUR", &v)?;
        }
        Ok(config)
    }

    /// Rates outside 0..=1 (or NaN) set in code are clamped rather than causing panics later.
    pub(crate) fn sanitized(mut self) -> SimConfig {
        let clamp = |r: f64| if r.is_nan() { 0.0 } else { r.clamp(0.0, 1.0) };
        self.error_rate = clamp(self.error_rate);
        self.timeout_rate = clamp(self.timeout_rate);
        self.carousel_timeout_rate = clamp(self.carousel_timeout_rate);
        self.lost_publish_rate = clamp(self.lost_publish_rate);
        self
    }
}

fn parse_int<T: std::str::FromStr>(name: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{name}: expected a non-negative integer, got {value:?}"))
}

fn parse_rate(name: &str, value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(rate) if (0.0..=1.0).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "{name}: expected a number between 0 and 1, got {value:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from_map(vars: &[(&str, &str)]) -> Result<SimConfig, String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SimConfig::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn empty_environment_gives_defaults() {
        let config = from_map(&[]).unwrap();
        assert_eq!(config.image_delay, Duration::from_secs(1));
        assert_eq!(config.video_delay, Duration::from_secs(8));
        assert_eq!(config.expiry, Duration::from_secs(86_400));
        assert_eq!(config.quota_total, 100);
        assert_eq!(config.account_calls_per_hour, 2000);
        assert_eq!(config.timeout, Duration::from_secs(30));
    }

    #[test]
    fn variables_override_defaults() {
        let config = from_map(&[
            ("GRAPH_SIM_IMAGE_DELAY_MS", "200"),
            ("GRAPH_SIM_VIDEO_DELAY_MS", "500"),
            ("GRAPH_SIM_EXPIRY_SECS", "60"),
            ("GRAPH_SIM_QUOTA_TOTAL", "3"),
            ("GRAPH_SIM_SEED", "42"),
            ("GRAPH_SIM_ERROR_RATE", "0.25"),
            ("GRAPH_SIM_TIMEOUT_RATE", "0.5"),
            ("GRAPH_SIM_CAROUSEL_TIMEOUT_RATE", "0.3"),
            ("GRAPH_SIM_TIMEOUT_MS", "100"),
            ("GRAPH_SIM_LOST_PUBLISH_RATE", "1"),
            ("GRAPH_SIM_ACCOUNT_CALLS_PER_HOUR", "10"),
        ])
        .unwrap();
        assert_eq!(config.image_delay, Duration::from_millis(200));
        assert_eq!(config.video_delay, Duration::from_millis(500));
        assert_eq!(config.expiry, Duration::from_secs(60));
        assert_eq!(config.quota_total, 3);
        assert_eq!(config.seed, 42);
        assert_eq!(config.error_rate, 0.25);
        assert_eq!(config.timeout_rate, 0.5);
        assert_eq!(config.carousel_timeout_rate, 0.3);
        assert_eq!(config.timeout, Duration::from_millis(100));
        assert_eq!(config.lost_publish_rate, 1.0);
        assert_eq!(config.account_calls_per_hour, 10);
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = from_map(&[("GRAPH_SIM_ERROR_RATE", "1.5")]).unwrap_err();
        assert!(err.contains("GRAPH_SIM_ERROR_RATE"), "{err}");
        let err = from_map(&[("GRAPH_SIM_QUOTA_TOTAL", "-1")]).unwrap_err();
        assert!(err.contains("GRAPH_SIM_QUOTA_TOTAL"), "{err}");
        let err = from_map(&[("GRAPH_SIM_IMAGE_DELAY_MS", "1s")]).unwrap_err();
        assert!(err.contains("GRAPH_SIM_IMAGE_DELAY_MS"), "{err}");
    }

    #[test]
    fn sanitize_clamps_rates() {
        let config = SimConfig {
            error_rate: f64::NAN,
            timeout_rate: 7.0,
            lost_publish_rate: -1.0,
            ..SimConfig::default()
        }
        .sanitized();
        assert_eq!(config.error_rate, 0.0);
        assert_eq!(config.timeout_rate, 1.0);
        assert_eq!(config.lost_publish_rate, 0.0);
    }
}
