//! The local stack's settings: environment variables with defaults, so a CMS on this machine, a
//! test in another language or another Graph API fake can drive it.

use std::collections::HashMap;
use std::path::PathBuf;

use instapipe_core::config::Config;
use instapipe_core::routing::ROUTING_VAR;
use instapipe_core::secrets::{WebhookSecrets, webhook_keys};

use crate::fault_proxy::AwsFaults;
use crate::sources::{SourceSecrets, demo_routing};

/// Defaults of the handlers' variables for the local stack: waits in seconds, not minutes.
const HANDLER_DEFAULTS: &[(&str, &str)] = &[
    ("TABLE_NAME", "instapipe-posts"),
    ("SCHEDULE_GROUP", "instapipe-posts"),
    ("SCHEDULER_ROLE_ARN", "arn:aws:iam::123456789012:role/instapipe-scheduler"),
    ("CREATE_CONTAINER_FUNCTION_ARN", "arn:aws:lambda:us-east-1:123456789012:function:instapipe-create-container"),
    ("POLL_STATUS_FUNCTION_ARN", "arn:aws:lambda:us-east-1:123456789012:function:instapipe-poll-status"),
    ("ACCOUNT_SECRET_PREFIX", "instapipe/accounts/"),
    ("WEBHOOK_SECRETS_NAME", "instapipe/webhook-secrets"),
    ("GRAPH_API_TIMEOUT_MS", "5000"),
    ("POLL_INLINE_CHECKS_MS", "500,1000,1500"),
    ("POLL_INTERVAL_SECS", "2"),
    ("POLL_MAX_INTERVAL_SECS", "5"),
    ("POLL_IMAGE_DEADLINE_SECS", "60"),
    ("POLL_VIDEO_DEADLINE_SECS", "180"),
    ("POLL_QUOTA_RECHECK_SECS", "5"),
    ("MEDIA_CHECK", "off"),
    // Status webhooks to a CMS on this machine (WordPress on 127.0.0.1) go over plain http.
    ("STATUS_WEBHOOK_ALLOW_HTTP_LOOPBACK", "true"),
    // The watchdog restarts what nothing moved 30 s after it was due (the local waits are seconds).
    ("WATCHDOG_GRACE_SECS", "30"),
];

#[derive(Clone)]
pub struct Settings {
    /// Project root: where `node_modules/` and `.venv/` were installed by `make deps`.
    pub root: PathBuf,
    /// `INSTAPIPE_PORT` (3000): where ingest-webhook is served.
    pub http_port: u16,
    /// `DYNAMODB_PORT` (8000) and `MOTO_PORT` (5000); 0 picks free ports.
    pub dynamodb_port: u16,
    pub moto_port: u16,
    /// `GRAPH_API_BASE_URL`: use this Graph API instead of starting the simulator.
    pub graph_api_base_url: Option<String>,
    /// `GRAPH_SIM_PORT` (4000): where the simulator listens when it is started.
    pub graph_sim_port: u16,
    /// `INSTAPIPE_DEMO_ACCOUNT` / `INSTAPIPE_DEMO_TOKEN`: the account `make run` registers.
    pub demo_account: String,
    pub demo_token: String,
    /// `INSTAPIPE_GENERIC_SECRET`: Standard Webhooks secret of `/webhooks/generic`.
    pub generic_secret: String,
    /// `INSTAPIPE_API_KEY`: the posts API key the stack registers (by its SHA-256 hash).
    pub api_key: String,
    /// Signing secrets of the Shopify, Contentful and WordPress sources.
    pub sources: SourceSecrets,
    /// Handler variables (`POLL_*`, `GRAPH_API_*`, ...), over the local defaults.
    pub handler_vars: HashMap<String, String>,
    /// `INSTAPIPE_DUPLICATE_RATE` (0): share of stream records and schedule firings the runners
    /// deliver twice, as Lambda and Scheduler may; `INSTAPIPE_DUPLICATE_SEED` (1) seeds the choice.
    pub duplicate_rate: f64,
    pub duplicate_seed: u64,
    /// `INSTAPIPE_AWS_THROTTLE_RATE`, `_ERROR_RATE`, `_SLOW_RATE`, `_SLOW_MS`, `INSTAPIPE_AWS_FAULT_SEED`:
    /// seeded AWS faults on the functions' DynamoDB, Scheduler and Secrets Manager calls.
    pub aws_faults: AwsFaults,
    /// `INSTAPIPE_SWEEP_EVERY_SECS` (10; 0: never): how often the stack runs the watchdog, as
    /// its schedule does every five minutes in AWS.
    pub sweep_every: std::time::Duration,
    /// `INSTAPIPE_KILL_RATE` (0): share of invocations killed mid-handler, at a point up to
    /// `INSTAPIPE_KILL_WINDOW_MS` (300) in, of the functions `INSTAPIPE_KILL_FUNCTIONS` names
    /// (comma-separated; empty: all); `INSTAPIPE_KILL_SEED` (1) seeds the choice.
    pub kills: crate::lambda::KillPlan,
    pub kill_seed: u64,
    /// `INSTAPIPE_SCHEDULE_LATENESS_MS` (0): a schedule fires up to this late (Scheduler's
    /// minute of precision, scaled down), seeded by `INSTAPIPE_DUPLICATE_SEED`.
    pub schedule_lateness: std::time::Duration,
    /// `INSTAPIPE_ASYNC_RETRY_DELAY_MS` (1000): wait before an asynchronous invocation's first
    /// retry, twice that before the second (Lambda: about one and two minutes).
    pub async_retry_delay: std::time::Duration,
}

pub const DEMO_SECRET: &str = "whsec_bG9jYWwtZGVtby1zZWNyZXQtZm9yLWluc3RhcGlwZQ==";
/// Signing secret of the status webhooks unless `STATUS_WEBHOOK_SECRET` gives another.
pub const DEMO_STATUS_SECRET: &str = "whsec_bG9jYWwtc3RhdHVzLXdlYmhvb2tzLXNlY3JldA==";
/// The local stack's posts API key unless `INSTAPIPE_API_KEY` gives another (local use only).
pub const DEMO_API_KEY: &str = "ipk_local_demo_key_0123456789abcdef";
/// The Meta app the local stack's logins go through (the simulator accepts any app): its ids,
/// and its secrets, written to the Meta app secret in moto.
pub const DEMO_INSTAGRAM_APP_ID: &str = "990000000000001";
pub const DEMO_INSTAGRAM_APP_SECRET: &str = "local-demo-instagram-app-secret";
pub const DEMO_FACEBOOK_APP_ID: &str = "990000000000002";
pub const DEMO_FACEBOOK_APP_SECRET: &str = "local-demo-facebook-app-secret";

/// Ports and paths only: the secrets and keys in the settings never reach a log line.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("root", &self.root)
            .field("http_port", &self.http_port)
            .field("dynamodb_port", &self.dynamodb_port)
            .field("moto_port", &self.moto_port)
            .field("graph_api_base_url", &self.graph_api_base_url)
            .field("graph_sim_port", &self.graph_sim_port)
            .field("demo_account", &self.demo_account)
            .field("aws_faults", &self.aws_faults)
            .finish_non_exhaustive()
    }
}

impl Settings {
    pub fn from_env() -> Result<Settings, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let port = |name: &str, default: u16| -> Result<u16, String> {
            var(name).map_or(Ok(default), |v| v.parse().map_err(|_| format!("{name} must be a port number")))
        };
        let millis = |name: &str, default: u64| -> Result<std::time::Duration, String> {
            var(name)
                .map_or(Ok(default), |v| v.parse().map_err(|_| format!("{name} must be a whole number of milliseconds")))
                .map(std::time::Duration::from_millis)
        };
        let mut handler_vars: HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| {
                HANDLER_DEFAULTS.iter().any(|(d, _)| d == k)
                    || ["POLL_", "GRAPH_API_", "STATUS_WEBHOOK_", "TOKEN_REFRESH_", "WATCHDOG_"].iter().any(|p| k.starts_with(p))
            })
            .collect();
        // The routed sources' variables (routing, Contentful's Delivery API) pass through too.
        handler_vars.extend(
            [ROUTING_VAR, "CONTENTFUL_DELIVERY_BASE_URL", "OAUTH_BASE_URL"].iter().filter_map(|k| var(k).map(|v| (k.to_string(), v))),
        );
        Ok(Settings {
            root: project_root(),
            http_port: port("INSTAPIPE_PORT", 3000)?,
            dynamodb_port: port("DYNAMODB_PORT", 8000)?,
            moto_port: port("MOTO_PORT", 5000)?,
            graph_api_base_url: var("GRAPH_API_BASE_URL"),
            graph_sim_port: port("GRAPH_SIM_PORT", 4000)?,
            demo_account: var("INSTAPIPE_DEMO_ACCOUNT").unwrap_or_else(|| "17841400000000001".into()),
            demo_token: var("INSTAPIPE_DEMO_TOKEN").unwrap_or_else(|| "IGAA-local-demo-token".into()),
            generic_secret: var("INSTAPIPE_GENERIC_SECRET").unwrap_or_else(|| DEMO_SECRET.into()),
            sources: SourceSecrets::from_env(),
            api_key: var("INSTAPIPE_API_KEY").unwrap_or_else(|| DEMO_API_KEY.into()),
            handler_vars,
            duplicate_rate: match var("INSTAPIPE_DUPLICATE_RATE") {
                None => 0.0,
                Some(v) => v
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or("INSTAPIPE_DUPLICATE_RATE must be a number between 0 and 1")?,
            },
            duplicate_seed: var("INSTAPIPE_DUPLICATE_SEED").map_or(Ok(1), |v| v.parse().map_err(|_| "INSTAPIPE_DUPLICATE_SEED must be an integer"))?,
            aws_faults: AwsFaults::from_env()?,
            sweep_every: std::time::Duration::from_secs(
                var("INSTAPIPE_SWEEP_EVERY_SECS").map_or(Ok(10), |v| v.parse().map_err(|_| "INSTAPIPE_SWEEP_EVERY_SECS must be a whole number of seconds"))?,
            ),
            kills: crate::lambda::KillPlan {
                rate: match var("INSTAPIPE_KILL_RATE") {
                    None => 0.0,
                    Some(v) => v
                        .parse::<f64>()
                        .ok()
                        .filter(|r| (0.0..=1.0).contains(r))
                        .ok_or("INSTAPIPE_KILL_RATE must be a number between 0 and 1")?,
                },
                functions: var("INSTAPIPE_KILL_FUNCTIONS")
                    .map(|v| v.split(',').map(|f| f.trim().to_string()).filter(|f| !f.is_empty()).collect())
                    .unwrap_or_default(),
                window: millis("INSTAPIPE_KILL_WINDOW_MS", 300)?,
            },
            kill_seed: var("INSTAPIPE_KILL_SEED").map_or(Ok(1), |v| v.parse().map_err(|_| "INSTAPIPE_KILL_SEED must be an integer"))?,
            schedule_lateness: millis("INSTAPIPE_SCHEDULE_LATENESS_MS", 0)?,
            async_retry_delay: millis("INSTAPIPE_ASYNC_RETRY_DELAY_MS", 1000)?,
        })
    }

    /// Free ports everywhere and nothing from the environment: tests stay independent.
    pub fn for_tests() -> Settings {
        Settings {
            root: project_root(),
            http_port: 0,
            dynamodb_port: 0,
            moto_port: 0,
            graph_api_base_url: None,
            graph_sim_port: 0,
            demo_account: "17841400000000001".into(),
            demo_token: "IGAA-test-token".into(),
            generic_secret: DEMO_SECRET.into(),
            sources: SourceSecrets::default(),
            api_key: DEMO_API_KEY.into(),
            handler_vars: HashMap::new(),
            duplicate_rate: 0.0,
            duplicate_seed: 1,
            aws_faults: AwsFaults::off(),
            sweep_every: std::time::Duration::from_secs(2),
            kills: crate::lambda::KillPlan::default(),
            kill_seed: 1,
            schedule_lateness: std::time::Duration::ZERO,
            async_retry_delay: std::time::Duration::from_millis(300),
        }
    }

    /// Waits in fractions of a second (inline checks, polls, Graph timeout): the end-to-end tests
    /// and the soak, where minutes of waiting would only slow the run.
    pub fn fast_waits(&mut self) -> &mut Self {
        self.set("POLL_INLINE_CHECKS_MS", "200,300,500")
            .set("POLL_INTERVAL_SECS", "1")
            .set("POLL_MAX_INTERVAL_SECS", "2")
            .set("GRAPH_API_TIMEOUT_MS", "2000")
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.handler_vars.insert(name.into(), value.into());
        self
    }

    /// The functions' environment: what each reads as its Lambda environment variables.
    pub fn handler_env<'a>(&'a self, graph_base_url: &'a str) -> impl Fn(&str) -> Option<String> + Copy + 'a {
        move |name| {
            if name == "GRAPH_API_BASE_URL" {
                return Some(graph_base_url.to_string());
            }
            // Meta's login pages and api.instagram.com are the simulator's too.
            if name == "OAUTH_BASE_URL" && !self.handler_vars.contains_key(name) {
                return Some(graph_base_url.to_string());
            }
            if name == ROUTING_VAR && !self.handler_vars.contains_key(name) {
                return Some(demo_routing(&self.demo_account));
            }
            self.handler_vars
                .get(name)
                .cloned()
                .or_else(|| HANDLER_DEFAULTS.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
        }
    }

    /// Every function's configuration together (the operator CLI's view of the stack).
    pub fn handler_config(&self, graph_base_url: &str) -> Result<Config, String> {
        Config::from_lookup(self.handler_env(graph_base_url)).map_err(|e| e.to_string())
    }

    /// The webhook secrets' value: every source's signing secret.
    pub fn webhook_secrets(&self) -> WebhookSecrets {
        let s = &self.sources;
        WebhookSecrets::default()
            .with(webhook_keys::GENERIC, &self.generic_secret)
            .with(webhook_keys::SHOPIFY, &s.shopify)
            .with(webhook_keys::CONTENTFUL, &s.contentful)
            .with(webhook_keys::CONTENTFUL_DELIVERY_TOKEN, &s.contentful_delivery_token)
            .with(webhook_keys::WORDPRESS, &s.wordpress)
            // The posts API's cursor secret: new for every stack, as nothing outlives it.
            .with(instapipe_core::handlers::posts_api::cursor::SECRET_ENTRY, instapipe_core::store::api_keys::generate())
    }

    /// notify's signing secret: `STATUS_WEBHOOK_SECRET`, or the demo one.
    pub fn status_webhook_secret(&self) -> &str {
        self.handler_vars.get("STATUS_WEBHOOK_SECRET").map_or(DEMO_STATUS_SECRET, String::as_str)
    }
}

fn project_root() -> PathBuf {
    std::env::var_os("INSTAPIPE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.."))
}
