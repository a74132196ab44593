//! Configuration from environment variables, read once at start-up. A missing or malformed
//! variable is an error that names it. AWS endpoints are not here: the SDK reads its standard
//! `AWS_ENDPOINT_URL*` variables itself.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::polling::PollPolicy;

#[derive(Clone, Debug)]
pub struct Config {
    pub table_name: String,
    pub schedule_group: String,
    /// The role EventBridge Scheduler assumes to invoke our functions.
    pub scheduler_role_arn: String,
    pub create_container_arn: String,
    pub poll_status_arn: String,
    /// Where Scheduler puts events it could not deliver.
    pub schedule_dlq_arn: Option<String>,
    /// Account tokens live in Secrets Manager under `<prefix><ig user id>`.
    pub account_secret_prefix: String,
    /// Secrets Manager secret with the webhook signing secrets, a JSON object keyed by source.
    pub webhook_secrets_name: String,
    pub graph: GraphConfig,
    pub polling: PollPolicy,
    /// `MEDIA_CHECK`: `full` (default) resolves and fetches the first bytes of every media URL
    /// before a container is made; `off` skips it (the local stack's hosts are not real).
    pub media_check: bool,
    /// refresh-tokens: tokens expiring within this window, or of unknown expiry, are refreshed.
    pub token_refresh_window: Duration,
    /// Secrets Manager secret with the Meta app credentials that token exchanges need (JSON).
    pub meta_app_secret_name: String,
    pub status_webhook: StatusWebhookConfig,
    /// `ROUTING_CONFIG`: which accounts receive the routed sources' posts (see `routing`).
    pub routing: crate::routing::Routing,
    /// `CONTENTFUL_DELIVERY_BASE_URL`: where Contentful asset links are resolved.
    pub contentful_delivery_base_url: String,
}

/// Where notify sends `post.published` / `post.failed`, and how hard it tries.
#[derive(Clone, Debug)]
pub struct StatusWebhookConfig {
    /// `STATUS_WEBHOOK_URL`; unset: notify records nothing and sends nothing.
    pub url: Option<String>,
    /// Secrets Manager secret holding the `whsec_...` signing secret.
    pub secret_name: String,
    /// Tries per event within one invocation before the stream's own retries take over.
    pub attempts: u32,
    /// Wait before the second try; doubles for each further one.
    pub backoff: Duration,
    pub timeout: Duration,
}

#[derive(Clone, Debug)]
pub struct GraphConfig {
    /// Replaces the login flavour's host (graph.instagram.com / graph.facebook.com): the simulator.
    pub base_url_override: Option<String>,
    pub version: String,
    pub timeout: Duration,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig { base_url_override: None, version: "v25.0".into(), timeout: Duration::from_secs(10) }
    }
}

impl Config {
    pub fn from_env() -> Result<Config> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads through `lookup`, so tests need not touch the process environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let vars = Vars(&lookup);
        let defaults = PollPolicy::default();
        let inline_checks = match vars.optional("POLL_INLINE_CHECKS_MS") {
            None => defaults.inline_checks.clone(),
            Some(list) => list
                .split(',')
                .filter(|s| !s.trim().is_empty())
                .map(|ms| ms.trim().parse::<u64>().map(Duration::from_millis))
                .collect::<Result<_, _>>()
                .map_err(|_| malformed("POLL_INLINE_CHECKS_MS", "a comma-separated list of milliseconds"))?,
        };
        Ok(Config {
            table_name: vars.required("TABLE_NAME")?,
            schedule_group: vars.required("SCHEDULE_GROUP")?,
            scheduler_role_arn: vars.required("SCHEDULER_ROLE_ARN")?,
            create_container_arn: vars.required("CREATE_CONTAINER_FUNCTION_ARN")?,
            poll_status_arn: vars.required("POLL_STATUS_FUNCTION_ARN")?,
            schedule_dlq_arn: vars.optional("SCHEDULE_DLQ_ARN"),
            account_secret_prefix: vars.optional("ACCOUNT_SECRET_PREFIX").unwrap_or_else(|| "instapipe/accounts/".into()),
            webhook_secrets_name: vars
                .optional("WEBHOOK_SECRETS_NAME")
                .unwrap_or_else(|| "instapipe/webhook-secrets".into()),
            graph: GraphConfig {
                base_url_override: vars.optional("GRAPH_API_BASE_URL").map(|u| u.trim_end_matches('/').to_string()),
                version: vars.optional("GRAPH_API_VERSION").unwrap_or_else(|| "v25.0".into()),
                timeout: Duration::from_millis(vars.number("GRAPH_API_TIMEOUT_MS", 10_000)?),
            },
            media_check: match vars.optional("MEDIA_CHECK").as_deref() {
                None | Some("full") => true,
                Some("off") => false,
                Some(_) => return Err(malformed("MEDIA_CHECK", "`full` or `off`")),
            },
            polling: PollPolicy {
                inline_checks,
                interval: Duration::from_secs(vars.number("POLL_INTERVAL_SECS", defaults.interval.as_secs())?),
                max_interval: Duration::from_secs(vars.number("POLL_MAX_INTERVAL_SECS", defaults.max_interval.as_secs())?),
                image_deadline: Duration::from_secs(
                    vars.number("POLL_IMAGE_DEADLINE_SECS", defaults.image_deadline.as_secs())?,
                ),
                video_deadline: Duration::from_secs(
                    vars.number("POLL_VIDEO_DEADLINE_SECS", defaults.video_deadline.as_secs())?,
                ),
                quota_recheck: Duration::from_secs(
                    vars.number("POLL_QUOTA_RECHECK_SECS", defaults.quota_recheck.as_secs())?,
                ),
            },
            token_refresh_window: Duration::from_secs(vars.number("TOKEN_REFRESH_WINDOW_DAYS", 7)?.saturating_mul(86_400)),
            meta_app_secret_name: vars.optional("META_APP_SECRET_NAME").unwrap_or_else(|| "instapipe/meta-app".into()),
            status_webhook: StatusWebhookConfig {
                url: vars.optional("STATUS_WEBHOOK_URL"),
                secret_name: vars
                    .optional("STATUS_WEBHOOK_SECRET_NAME")
                    .unwrap_or_else(|| "instapipe/status-webhook-secret".into()),
                attempts: u32::try_from(vars.number("STATUS_WEBHOOK_ATTEMPTS", 3)?.clamp(1, 10)).unwrap_or(3),
                backoff: Duration::from_millis(vars.number("STATUS_WEBHOOK_BACKOFF_MS", 500)?),
                timeout: Duration::from_millis(vars.number("STATUS_WEBHOOK_TIMEOUT_MS", 5_000)?),
            },
            routing: crate::routing::Routing::from_json(vars.optional(crate::routing::ROUTING_VAR).as_deref())?,
            contentful_delivery_base_url: vars
                .optional("CONTENTFUL_DELIVERY_BASE_URL")
                .unwrap_or_else(|| crate::sources::contentful_assets::DEFAULT_BASE_URL.into()),
        })
    }
}

struct Vars<'a, F: Fn(&str) -> Option<String>>(&'a F);

impl<F: Fn(&str) -> Option<String>> Vars<'_, F> {
    fn optional(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }

    fn required(&self, name: &str) -> Result<String> {
        self.optional(name)
            .ok_or_else(|| Error::Config(format!("environment variable {name} is not set")))
    }

    fn number(&self, name: &str, default: u64) -> Result<u64> {
        match self.optional(name) {
            None => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| malformed(name, "a whole number")),
        }
    }
}

fn malformed(name: &str, expected: &str) -> Error {
    Error::Config(format!("environment variable {name} must be {expected}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    const REQUIRED: [(&str, &str); 5] = [
        ("TABLE_NAME", "posts"),
        ("SCHEDULE_GROUP", "posts"),
        ("SCHEDULER_ROLE_ARN", "arn:aws:iam::1:role/s"),
        ("CREATE_CONTAINER_FUNCTION_ARN", "arn:aws:lambda:us-east-1:1:function:c"),
        ("POLL_STATUS_FUNCTION_ARN", "arn:aws:lambda:us-east-1:1:function:p"),
    ];

    #[test]
    fn a_missing_variable_is_named() {
        let err = Config::from_lookup(env(&REQUIRED[1..])).unwrap_err();
        assert_eq!(err.to_string(), "configuration: environment variable TABLE_NAME is not set");
    }

    #[test]
    fn a_malformed_number_is_named() {
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("POLL_INTERVAL_SECS", "soon"));
        let err = Config::from_lookup(env(&pairs)).unwrap_err();
        assert!(err.to_string().contains("POLL_INTERVAL_SECS must be a whole number"), "{err}");
    }

    #[test]
    fn defaults_and_overrides() {
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("GRAPH_API_BASE_URL", "http://127.0.0.1:4000/"));
        pairs.push(("POLL_INLINE_CHECKS_MS", "100, 200"));
        let config = Config::from_lookup(env(&pairs)).unwrap();
        assert_eq!(config.graph.base_url_override.as_deref(), Some("http://127.0.0.1:4000"));
        assert_eq!(config.graph.version, "v25.0");
        assert_eq!(config.polling.inline_checks, vec![Duration::from_millis(100), Duration::from_millis(200)]);
        assert_eq!(config.polling.interval, Duration::from_secs(60));
        assert_eq!(config.account_secret_prefix, "instapipe/accounts/");
        assert_eq!(config.token_refresh_window, Duration::from_secs(7 * 86_400));
        assert_eq!(config.status_webhook.url, None);
    }

    #[test]
    fn the_refresh_window_is_set_in_days() {
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("TOKEN_REFRESH_WINDOW_DAYS", "10"));
        assert_eq!(Config::from_lookup(env(&pairs)).unwrap().token_refresh_window, Duration::from_secs(10 * 86_400));
        pairs.push(("TOKEN_REFRESH_WINDOW_DAYS", "a week"));
        let pairs: Vec<_> = pairs.into_iter().filter(|(_, v)| *v != "10").collect();
        let err = Config::from_lookup(env(&pairs)).unwrap_err();
        assert!(err.to_string().contains("TOKEN_REFRESH_WINDOW_DAYS"), "{err}");
    }
}
