//! Configuration from environment variables, read once at start-up. Each function reads only
//! its own settings ([`IngestSettings`], [`PipelineSettings`], [`TokenRefreshSettings`],
//! [`NotifySettings`]); the operator CLI and the local stack, which run them all, read
//! [`Config`]. A missing or malformed variable is an error that names it. AWS endpoints are not
//! here: the SDK reads its standard `AWS_ENDPOINT_URL*` variables itself.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::polling::PollPolicy;
use crate::routing::{ROUTING_VAR, Routing};
use crate::secrets;

/// Settings read from the environment (or any lookup, so tests need not touch the process's).
pub trait Settings: Sized {
    fn read(vars: &Vars) -> Result<Self>;

    fn from_env() -> Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        Self::read(&Vars(&lookup))
    }
}

/// ingest-webhook and ingest-event: the signed sources, the routing, and the posts API (whose
/// cancel and reschedule delete and replace schedules).
#[derive(Clone, Debug)]
pub struct IngestSettings {
    pub table_name: String,
    pub schedules: ScheduleSettings,
    /// Secrets Manager secret with the webhook signing secrets (see [`secrets::WebhookSecrets`]).
    pub webhook_secrets_name: String,
    /// `ROUTE_SECRET_PREFIX`: each route's signing secrets are the secret
    /// `<prefix><source>/<tenant>` (see `route_secrets`).
    pub route_secret_prefix: String,
    /// `ROUTE_SECRET_CACHE_SECS` (300): how long an instance keeps the route secrets it read.
    pub route_secret_cache: Duration,
    /// `ROUTING_CONFIG`: which accounts receive the routed sources' posts (see `routing`).
    pub routing: Routing,
    /// `CONTENTFUL_DELIVERY_BASE_URL`: where Contentful asset links are resolved.
    pub contentful_delivery_base_url: String,
    /// Connecting accounts by OAuth (`/oauth/*`, and the CLI's `accounts connect`).
    pub connect: ConnectSettings,
}

/// Connecting an account by OAuth (see `oauth`): where Meta's login pages are, which app, and
/// where the connected account's token goes.
#[derive(Clone, Debug)]
pub struct ConnectSettings {
    /// `OAUTH_REDIRECT_URI`: the public function's `/oauth/callback` URL, as registered in the
    /// Meta app. Unset: `/oauth/start` and `/oauth/callback` answer 404 `not_configured`.
    pub redirect_uri: Option<String>,
    /// `OAUTH_BASE_URL`: one host for Meta's login pages and api.instagram.com (the simulator).
    pub oauth_base_url: Option<String>,
    /// `INSTAGRAM_APP_ID`, `FACEBOOK_APP_ID`: the app ids (else from the Meta app secret).
    pub instagram_app_id: Option<String>,
    pub facebook_app_id: Option<String>,
    pub graph: GraphConfig,
    pub account_secret_prefix: String,
    /// The Meta app secret (its app secrets sign the `state`).
    pub meta_app_secret_name: String,
}

/// create-container, poll-status and publish.
#[derive(Clone, Debug)]
pub struct PipelineSettings {
    pub table_name: String,
    pub schedules: ScheduleSettings,
    /// Account tokens live in Secrets Manager under `<prefix><ig user id>`.
    pub account_secret_prefix: String,
    pub graph: GraphConfig,
    pub polling: PollPolicy,
    /// `MEDIA_CHECK`: `full` (default) resolves and fetches the first bytes of every media URL
    /// before a container is made; `off` skips it (the local stack's hosts are not real).
    pub media_check: bool,
}

/// sweep (the watchdog): the pipeline's settings, since it restarts the pipeline's steps, and
/// its own policy.
#[derive(Clone, Debug)]
pub struct SweepSettings {
    pub pipeline: PipelineSettings,
    pub watchdog: crate::polling::WatchdogPolicy,
}

/// refresh-tokens (and the CLI's `accounts` commands).
#[derive(Clone, Debug)]
pub struct TokenRefreshSettings {
    pub table_name: String,
    pub account_secret_prefix: String,
    pub graph: GraphConfig,
    /// Tokens expiring within this window, or of unknown expiry, are refreshed.
    pub window: Duration,
    /// Secrets Manager secret with the Meta app credentials that token exchanges need (JSON).
    pub meta_app_secret_name: String,
}

/// notify.
#[derive(Clone, Debug)]
pub struct NotifySettings {
    pub table_name: String,
    pub status_webhook: StatusWebhookConfig,
}

/// Every function's settings: the operator CLI and the local stack run them all.
#[derive(Clone, Debug)]
pub struct Config {
    pub ingest: IngestSettings,
    pub pipeline: PipelineSettings,
    pub token_refresh: TokenRefreshSettings,
    pub notify: NotifySettings,
}

/// EventBridge Scheduler: where one-time schedules go and whom they invoke.
#[derive(Clone, Debug)]
pub struct ScheduleSettings {
    pub group: String,
    /// The role EventBridge Scheduler assumes to invoke our functions.
    pub role_arn: String,
    pub create_container_arn: String,
    pub poll_status_arn: String,
    /// Where Scheduler puts events it could not deliver.
    pub dead_letter_arn: Option<String>,
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

impl Settings for IngestSettings {
    fn read(vars: &Vars) -> Result<Self> {
        Ok(IngestSettings {
            table_name: vars.table_name()?,
            schedules: ScheduleSettings::read(vars)?,
            webhook_secrets_name: vars.optional("WEBHOOK_SECRETS_NAME").unwrap_or_else(|| secrets::DEFAULT_WEBHOOK_SECRETS_NAME.into()),
            route_secret_prefix: vars
                .optional("ROUTE_SECRET_PREFIX")
                .unwrap_or_else(|| crate::route_secrets::DEFAULT_ROUTE_SECRET_PREFIX.into()),
            route_secret_cache: Duration::from_secs(vars.number("ROUTE_SECRET_CACHE_SECS", crate::route_secrets::CACHE_FOR.as_secs())?),
            routing: Routing::from_json(vars.optional(ROUTING_VAR).as_deref())?,
            contentful_delivery_base_url: vars
                .optional("CONTENTFUL_DELIVERY_BASE_URL")
                .unwrap_or_else(|| crate::sources::contentful_assets::DEFAULT_BASE_URL.into()),
            connect: ConnectSettings::read(vars)?,
        })
    }
}

impl ConnectSettings {
    fn read(vars: &Vars) -> Result<Self> {
        let url = |name: &str| vars.optional(name).map(|u| u.trim().trim_end_matches('/').to_string());
        Ok(ConnectSettings {
            redirect_uri: vars.optional("OAUTH_REDIRECT_URI").map(|u| u.trim().to_string()),
            oauth_base_url: url("OAUTH_BASE_URL"),
            instagram_app_id: vars.optional("INSTAGRAM_APP_ID"),
            facebook_app_id: vars.optional("FACEBOOK_APP_ID"),
            graph: GraphConfig::read(vars)?,
            account_secret_prefix: vars.account_secret_prefix(),
            meta_app_secret_name: vars.optional("META_APP_SECRET_NAME").unwrap_or_else(|| secrets::DEFAULT_META_APP_SECRET_NAME.into()),
        })
    }

    /// The app id of a flavour from the environment, if set there.
    pub fn app_id(&self, login: crate::account::LoginFlavour) -> Option<String> {
        match login {
            crate::account::LoginFlavour::Instagram => self.instagram_app_id.clone(),
            crate::account::LoginFlavour::Facebook => self.facebook_app_id.clone(),
        }
    }
}

impl Settings for PipelineSettings {
    fn read(vars: &Vars) -> Result<Self> {
        Ok(PipelineSettings {
            table_name: vars.table_name()?,
            schedules: ScheduleSettings::read(vars)?,
            account_secret_prefix: vars.account_secret_prefix(),
            graph: GraphConfig::read(vars)?,
            polling: read_polling(vars)?,
            media_check: match vars.optional("MEDIA_CHECK").as_deref() {
                None | Some("full") => true,
                Some("off") => false,
                Some(_) => return Err(malformed("MEDIA_CHECK", "`full` or `off`")),
            },
        })
    }
}

impl Settings for SweepSettings {
    fn read(vars: &Vars) -> Result<Self> {
        let defaults = crate::polling::WatchdogPolicy::default();
        Ok(SweepSettings {
            pipeline: PipelineSettings::read(vars)?,
            watchdog: crate::polling::WatchdogPolicy {
                grace: Duration::from_secs(vars.number("WATCHDOG_GRACE_SECS", defaults.grace.as_secs())?),
                max_rearms: u32::try_from(vars.number("WATCHDOG_MAX_REARMS", u64::from(defaults.max_rearms))?)
                    .map_err(|_| malformed("WATCHDOG_MAX_REARMS", "a small whole number"))?,
                batch: defaults.batch,
            },
        })
    }
}

impl Settings for TokenRefreshSettings {
    fn read(vars: &Vars) -> Result<Self> {
        Ok(TokenRefreshSettings {
            table_name: vars.table_name()?,
            account_secret_prefix: vars.account_secret_prefix(),
            graph: GraphConfig::read(vars)?,
            window: Duration::from_secs(vars.number("TOKEN_REFRESH_WINDOW_DAYS", 7)?.saturating_mul(86_400)),
            meta_app_secret_name: vars.optional("META_APP_SECRET_NAME").unwrap_or_else(|| secrets::DEFAULT_META_APP_SECRET_NAME.into()),
        })
    }
}

impl Settings for NotifySettings {
    fn read(vars: &Vars) -> Result<Self> {
        Ok(NotifySettings {
            table_name: vars.table_name()?,
            status_webhook: StatusWebhookConfig {
                url: match vars.optional("STATUS_WEBHOOK_URL") {
                    None => None,
                    Some(url) => {
                        let allow_http_loopback = match vars.optional(crate::status_webhooks::ALLOW_HTTP_LOOPBACK_VAR).as_deref() {
                            None | Some("false") => false,
                            Some("true") => true,
                            Some(_) => return Err(malformed(crate::status_webhooks::ALLOW_HTTP_LOOPBACK_VAR, "`true` or `false`")),
                        };
                        crate::status_webhooks::check_url(&url, allow_http_loopback)
                            .map_err(|why| Error::Config(format!("environment variable STATUS_WEBHOOK_URL {why}")))?;
                        Some(url)
                    }
                },
                secret_name: vars
                    .optional("STATUS_WEBHOOK_SECRET_NAME")
                    .unwrap_or_else(|| secrets::DEFAULT_STATUS_WEBHOOK_SECRET_NAME.into()),
                attempts: u32::try_from(vars.number("STATUS_WEBHOOK_ATTEMPTS", 3)?.clamp(1, 10)).unwrap_or(3),
                backoff: Duration::from_millis(vars.number("STATUS_WEBHOOK_BACKOFF_MS", 500)?),
                timeout: Duration::from_millis(vars.number("STATUS_WEBHOOK_TIMEOUT_MS", 5_000)?),
            },
        })
    }
}

impl Settings for Config {
    fn read(vars: &Vars) -> Result<Self> {
        Ok(Config {
            ingest: IngestSettings::read(vars)?,
            pipeline: PipelineSettings::read(vars)?,
            token_refresh: TokenRefreshSettings::read(vars)?,
            notify: NotifySettings::read(vars)?,
        })
    }
}

impl Config {
    /// `Settings::from_env`, callable without importing the trait.
    pub fn from_env() -> Result<Config> {
        <Config as Settings>::from_env()
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config> {
        <Config as Settings>::from_lookup(lookup)
    }

    /// The table every function works on.
    pub fn table_name(&self) -> &str {
        &self.pipeline.table_name
    }

    pub fn schedule_group(&self) -> &str {
        &self.pipeline.schedules.group
    }

    pub fn account_secret_prefix(&self) -> &str {
        &self.pipeline.account_secret_prefix
    }
}

impl ScheduleSettings {
    fn read(vars: &Vars) -> Result<Self> {
        Ok(ScheduleSettings {
            group: vars.required("SCHEDULE_GROUP")?,
            role_arn: vars.required("SCHEDULER_ROLE_ARN")?,
            create_container_arn: vars.required("CREATE_CONTAINER_FUNCTION_ARN")?,
            poll_status_arn: vars.required("POLL_STATUS_FUNCTION_ARN")?,
            dead_letter_arn: vars.optional("SCHEDULE_DLQ_ARN"),
        })
    }
}

impl GraphConfig {
    fn read(vars: &Vars) -> Result<Self> {
        Ok(GraphConfig {
            base_url_override: vars.optional("GRAPH_API_BASE_URL").map(|u| u.trim_end_matches('/').to_string()),
            version: vars.optional("GRAPH_API_VERSION").unwrap_or_else(|| "v25.0".into()),
            timeout: Duration::from_millis(vars.number("GRAPH_API_TIMEOUT_MS", 10_000)?),
        })
    }
}

fn read_polling(vars: &Vars) -> Result<PollPolicy> {
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
    let secs = |name: &str, default: Duration| vars.number(name, default.as_secs()).map(Duration::from_secs);
    Ok(PollPolicy {
        inline_checks,
        interval: secs("POLL_INTERVAL_SECS", defaults.interval)?,
        max_interval: secs("POLL_MAX_INTERVAL_SECS", defaults.max_interval)?,
        image_deadline: secs("POLL_IMAGE_DEADLINE_SECS", defaults.image_deadline)?,
        video_deadline: secs("POLL_VIDEO_DEADLINE_SECS", defaults.video_deadline)?,
        quota_recheck: secs("POLL_QUOTA_RECHECK_SECS", defaults.quota_recheck)?,
        quota_cache: secs("POLL_QUOTA_CACHE_SECS", defaults.quota_cache)?,
    })
}

/// The variables, through a lookup: blank counts as unset.
pub struct Vars<'a>(&'a dyn Fn(&str) -> Option<String>);

impl Vars<'_> {
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

    fn table_name(&self) -> Result<String> {
        self.required("TABLE_NAME")
    }

    fn account_secret_prefix(&self) -> String {
        self.optional("ACCOUNT_SECRET_PREFIX").unwrap_or_else(|| secrets::DEFAULT_ACCOUNT_SECRET_PREFIX.into())
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
        assert_eq!(config.pipeline.graph.base_url_override.as_deref(), Some("http://127.0.0.1:4000"));
        assert_eq!(config.pipeline.graph.version, "v25.0");
        assert_eq!(config.pipeline.polling.inline_checks, vec![Duration::from_millis(100), Duration::from_millis(200)]);
        assert_eq!(config.pipeline.polling.interval, Duration::from_secs(60));
        assert_eq!(config.account_secret_prefix(), "instapipe/accounts/");
        assert_eq!(config.token_refresh.window, Duration::from_secs(7 * 86_400));
        assert_eq!(config.notify.status_webhook.url, None);
        assert_eq!(config.ingest.webhook_secrets_name, "instapipe/webhook-secrets");
    }

    #[test]
    fn the_refresh_window_is_set_in_days() {
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("TOKEN_REFRESH_WINDOW_DAYS", "10"));
        assert_eq!(Config::from_lookup(env(&pairs)).unwrap().token_refresh.window, Duration::from_secs(10 * 86_400));
        pairs.push(("TOKEN_REFRESH_WINDOW_DAYS", "a week"));
        let pairs: Vec<_> = pairs.into_iter().filter(|(_, v)| *v != "10").collect();
        let err = Config::from_lookup(env(&pairs)).unwrap_err();
        assert!(err.to_string().contains("TOKEN_REFRESH_WINDOW_DAYS"), "{err}");
    }

    #[test]
    fn notify_starts_without_the_scheduler_variables() {
        let settings = NotifySettings::from_lookup(env(&[("TABLE_NAME", "posts"), ("STATUS_WEBHOOK_URL", "https://example.com/hook")])).unwrap();
        assert_eq!(settings.table_name, "posts");
        assert_eq!(settings.status_webhook.url.as_deref(), Some("https://example.com/hook"));
        assert_eq!(settings.status_webhook.secret_name, "instapipe/status-webhook-secret");
        // The functions that make schedules still refuse to start without them.
        let err = PipelineSettings::from_lookup(env(&[("TABLE_NAME", "posts")])).unwrap_err();
        assert_eq!(err.to_string(), "configuration: environment variable SCHEDULE_GROUP is not set");
    }

    #[test]
    fn a_status_webhook_url_that_is_not_https_is_named() {
        let err = NotifySettings::from_lookup(env(&[("TABLE_NAME", "posts"), ("STATUS_WEBHOOK_URL", "http://example.com/hook")])).unwrap_err();
        assert_eq!(err.to_string(), "configuration: environment variable STATUS_WEBHOOK_URL must be an https URL");
        let local = [("TABLE_NAME", "posts"), ("STATUS_WEBHOOK_URL", "http://127.0.0.1:8080/hook")];
        let err = NotifySettings::from_lookup(env(&local)).unwrap_err();
        assert!(err.to_string().contains("STATUS_WEBHOOK_URL must be https"), "{err}");
        let mut allowed = local.to_vec();
        allowed.push(("STATUS_WEBHOOK_ALLOW_HTTP_LOOPBACK", "true"));
        let settings = NotifySettings::from_lookup(env(&allowed)).unwrap();
        assert_eq!(settings.status_webhook.url.as_deref(), Some("http://127.0.0.1:8080/hook"));
    }

    #[test]
    fn each_function_reads_only_its_own_variables() {
        // Malformed variables of other functions do not matter to one that does not read them.
        let others = [("POLL_INTERVAL_SECS", "soon"), ("TOKEN_REFRESH_WINDOW_DAYS", "a week"), ("STATUS_WEBHOOK_ATTEMPTS", "many")];
        let mut pairs = REQUIRED.to_vec();
        pairs.extend(others);
        IngestSettings::from_lookup(env(&pairs)).expect("ingest reads no polling, refresh or notify variables");
        let refresh = TokenRefreshSettings::from_lookup(env(&[("TABLE_NAME", "posts"), ("POLL_INTERVAL_SECS", "soon")])).unwrap();
        assert_eq!(refresh.window, Duration::from_secs(7 * 86_400));
        // ... while each one names its own.
        for (settings, name) in [
            (PipelineSettings::from_lookup(env(&pairs)).map(drop), "POLL_INTERVAL_SECS"),
            (TokenRefreshSettings::from_lookup(env(&pairs)).map(drop), "TOKEN_REFRESH_WINDOW_DAYS"),
            (NotifySettings::from_lookup(env(&pairs)).map(drop), "STATUS_WEBHOOK_ATTEMPTS"),
        ] {
            let err = settings.unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}
