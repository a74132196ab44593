//! What the handlers run against: ports behind `Arc<dyn _>`, built once per function instance.

use std::sync::Arc;

use aws_config::BehaviorVersion;

use crate::clock::{Clock, SystemClock};
use crate::config::{IngestSettings, NotifySettings, PipelineSettings, TokenRefreshSettings};
use crate::error::{Error, Result};
use crate::handlers::posts_api::cursor::{self, CursorKey};
use crate::graph::account_api::{AccountApi, AccountApiClient};
use crate::graph::{GraphApi, GraphClient, MeteredGraph};
use crate::media_check::{HttpMediaCheck, MediaCheck, NoMediaCheck};
use crate::polling::PollPolicy;
use crate::route_secrets::SecretsManagerRouteSecrets;
use crate::scheduler::{EventBridgeScheduler, Scheduler};
use crate::secrets::{self, WebhookSecrets, webhook_keys};
use crate::sources::routed::SourceDeps;
use crate::sources::standard_webhooks::StandardWebhookVerifier;
use crate::store::api_keys::{ApiKeys, DynamoApiKeys};
use crate::store::{AccountStore, DynamoStore, PostStore};
use crate::tokens::{SecretsManagerTokens, TokenSource, TokenVault};

/// The AWS clients, configured by the SDK's standard variables (`AWS_ENDPOINT_URL_*` included).
#[derive(Clone)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub scheduler: aws_sdk_scheduler::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl AwsClients {
    pub async fn from_env() -> AwsClients {
        let sdk = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(aws_timeouts())
            .http_client(aws_http_client())
            .load()
            .await;
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            scheduler: aws_sdk_scheduler::Client::new(&sdk),
            secrets: aws_sdk_secretsmanager::Client::new(&sdk),
        }
    }
}

/// The HTTP client of every AWS SDK client ([`crate::aws_http`]), with [`aws_timeouts`]'s
/// connect timeout.
pub fn aws_http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    crate::aws_http::client(AWS_CONNECT_TIMEOUT)
}

const AWS_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// Timeouts for every AWS call: without them a call that never answers holds the function
/// until Lambda ends it, and the event's retry waits that long.
pub fn aws_timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(AWS_CONNECT_TIMEOUT)
        .operation_attempt_timeout(std::time::Duration::from_secs(5))
        .operation_timeout(std::time::Duration::from_secs(15))
        .build()
}

/// Dependencies of ingest-webhook and ingest-event.
pub struct Ingest {
    pub store: Arc<dyn PostStore>,
    pub clock: Arc<dyn Clock>,
    pub generic: StandardWebhookVerifier,
    /// The posts API: its keys, and the schedules it deletes and replaces (cancel, reschedule).
    pub api_keys: Arc<dyn ApiKeys>,
    pub scheduler: Arc<dyn Scheduler>,
    /// Signs the posts API's list cursors.
    pub cursor_key: CursorKey,
    /// Shopify, Contentful, WordPress and EventBridge: verifiers, routing, asset resolver.
    pub sources: SourceDeps,
    /// `/oauth/start` and `/oauth/callback`; `None` without `OAUTH_REDIRECT_URI`.
    pub connect: Option<Arc<Connect>>,
}

impl Ingest {
    /// Reads the signing secrets from Secrets Manager once, at start-up.
    pub async fn new(clients: &AwsClients, settings: &IngestSettings) -> Result<Ingest> {
        let name = &settings.webhook_secrets_name;
        let secrets = WebhookSecrets::read(&clients.secrets, name).await?;
        let generic = secrets
            .get(webhook_keys::GENERIC)
            .ok_or_else(|| Error::Config(format!("secret {name} has no \"{}\" entry", webhook_keys::GENERIC)))?;
        let cursor_key = match secrets.get(cursor::SECRET_ENTRY) {
            Some(secret) => CursorKey::new(secret.as_bytes()),
            None => {
                tracing::warn!(
                    secret = %name,
                    "the secret has no \"{}\" entry: the posts API's list cursors are signed with a key derived from the generic webhook secret; add the entry (README, \"The posts API\")",
                    cursor::SECRET_ENTRY
                );
                CursorKey::derived_from(generic.as_bytes())
            }
        };
        Ok(Ingest {
            store: Arc::new(DynamoStore::new(clients.dynamodb.clone(), &settings.table_name)),
            clock: Arc::new(SystemClock),
            generic: StandardWebhookVerifier::new(generic)?,
            api_keys: Arc::new(DynamoApiKeys::new(clients.dynamodb.clone(), &settings.table_name)),
            scheduler: Arc::new(EventBridgeScheduler::new(clients.scheduler.clone(), &settings.schedules)),
            cursor_key,
            sources: SourceDeps::load(
                &secrets,
                settings,
                Arc::new(SecretsManagerRouteSecrets::new(
                    clients.secrets.clone(),
                    &settings.route_secret_prefix,
                    settings.route_secret_cache,
                )),
            )
            .await?,
            connect: Connect::new(clients, settings)?.map(Arc::new),
        })
    }
}

/// What connecting an account by OAuth needs on the public function: the login calls, the Meta
/// app (read on first use), and where the account and its token are stored (the pipeline's
/// store and scheduler, to resume its waiting posts).
pub struct Connect {
    pub client: crate::oauth::OAuthClient,
    pub settings: crate::config::ConnectSettings,
    /// `OAUTH_REDIRECT_URI`.
    pub redirect_uri: String,
    pub pipeline: Pipeline,
    pub vault: Arc<dyn TokenVault>,
    secrets: aws_sdk_secretsmanager::Client,
    credentials: tokio::sync::OnceCell<secrets::AppCredentials>,
}

impl Connect {
    pub fn new(clients: &AwsClients, settings: &IngestSettings) -> Result<Option<Connect>> {
        let connect = &settings.connect;
        let Some(redirect_uri) = connect.redirect_uri.clone() else { return Ok(None) };
        let pipeline_settings = PipelineSettings {
            table_name: settings.table_name.clone(),
            schedules: settings.schedules.clone(),
            account_secret_prefix: connect.account_secret_prefix.clone(),
            graph: connect.graph.clone(),
            // Only a resumed PROCESSING destination polls, and the poll-status function
            // carries on with its own policy from the next poll on.
            polling: PollPolicy::default(),
            media_check: false,
        };
        Ok(Some(Connect {
            client: crate::oauth::OAuthClient::new(
                crate::oauth::OAuthHosts::from_override(connect.oauth_base_url.as_deref()),
                connect.graph.clone(),
            )?,
            settings: connect.clone(),
            redirect_uri,
            pipeline: Pipeline::new(clients, &pipeline_settings)?,
            vault: Arc::new(SecretsManagerTokens::new(clients.secrets.clone(), &connect.account_secret_prefix)),
            secrets: clients.secrets.clone(),
            credentials: tokio::sync::OnceCell::new(),
        }))
    }

    /// The Meta app of `login`: ids from the environment or the Meta app secret, secrets from it.
    pub async fn app(&self, login: crate::account::LoginFlavour) -> std::result::Result<crate::oauth::OAuthApp, crate::oauth::ConnectError> {
        let name = &self.settings.meta_app_secret_name;
        let stored = self
            .credentials
            .get_or_try_init(|| secrets::AppCredentials::read(&self.secrets, name))
            .await
            .map_err(|e| crate::oauth::ConnectError::Setup(format!("the Meta app secret {name} could not be read: {e}")))?;
        crate::oauth::OAuthApp::resolve(login, self.settings.app_id(login), None, Some(stored))
    }
}

/// Dependencies of create-container, poll-status and publish.
pub struct Pipeline {
    pub store: Arc<dyn PostStore>,
    pub scheduler: Arc<dyn Scheduler>,
    pub tokens: Arc<dyn TokenSource>,
    pub graph: Arc<dyn GraphApi>,
    pub clock: Arc<dyn Clock>,
    pub polling: PollPolicy,
    /// Checks media before containers are made.
    pub media: Arc<dyn MediaCheck>,
    /// How long a publish attempt owns a destination before another may look at its outcome:
    /// twice the Graph API timeout, so the first call has surely ended.
    pub publish_lease: std::time::Duration,
}

/// Dependencies of sweep: the pipeline's (it restarts their steps) and its policy.
pub struct Sweep {
    pub pipeline: Pipeline,
    pub policy: crate::polling::WatchdogPolicy,
}

impl Pipeline {
    pub fn new(clients: &AwsClients, config: &PipelineSettings) -> Result<Pipeline> {
        let store: Arc<dyn PostStore> = Arc::new(DynamoStore::new(clients.dynamodb.clone(), &config.table_name));
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let client = Arc::new(GraphClient::new(config.graph.clone())?);
        Ok(Pipeline {
            graph: Arc::new(MeteredGraph::new(client, store.clone(), clock.clone())),
            store,
            scheduler: Arc::new(EventBridgeScheduler::new(clients.scheduler.clone(), &config.schedules)),
            tokens: Arc::new(SecretsManagerTokens::new(clients.secrets.clone(), &config.account_secret_prefix)),
            clock,
            media: if config.media_check { Arc::new(HttpMediaCheck::new(false)?) } else { Arc::new(NoMediaCheck) },
            polling: config.polling.clone(),
            publish_lease: config.graph.timeout * 2,
        })
    }
}

/// Dependencies of refresh-tokens (and of the CLI's `accounts refresh`).
pub struct TokenRefresh {
    pub accounts: Arc<dyn AccountStore>,
    pub tokens: Arc<dyn TokenVault>,
    pub api: Arc<dyn AccountApi>,
    pub clock: Arc<dyn Clock>,
    /// Tokens expiring within this window are refreshed (`TOKEN_REFRESH_WINDOW_DAYS`).
    pub window: std::time::Duration,
    /// How long a run owns an account it refreshes: longer than any run lasts (Lambda stops
    /// at 15 minutes), so an overlapping run skips it.
    pub lock_for: std::time::Duration,
}

impl TokenRefresh {
    pub fn new(clients: &AwsClients, config: &TokenRefreshSettings) -> Result<TokenRefresh> {
        Ok(TokenRefresh {
            accounts: Arc::new(DynamoStore::new(clients.dynamodb.clone(), &config.table_name)),
            tokens: Arc::new(SecretsManagerTokens::new(clients.secrets.clone(), &config.account_secret_prefix)),
            api: Arc::new(AccountApiClient::new(config.graph.clone(), clients.secrets.clone(), &config.meta_app_secret_name)?),
            clock: Arc::new(SystemClock),
            window: config.window,
            lock_for: std::time::Duration::from_secs(20 * 60),
        })
    }
}

/// Where notify sends status webhooks, and the key it signs them with.
#[derive(Debug)]
pub struct StatusWebhookTarget {
    pub url: String,
    pub signer: crate::status_webhooks::StatusWebhookSigner,
}

/// Dependencies of notify.
pub struct Notify {
    pub store: Arc<dyn PostStore>,
    pub log: Arc<dyn crate::store::NotificationLog>,
    pub transport: Arc<dyn crate::status_webhooks::WebhookTransport>,
    pub clock: Arc<dyn Clock>,
    /// None without `STATUS_WEBHOOK_URL`: outcomes are still counted, nothing is sent.
    pub target: Option<StatusWebhookTarget>,
    pub attempts: u32,
    pub backoff: std::time::Duration,
}

impl Notify {
    /// Reads the signing secret once, at start-up, when a URL is configured.
    pub async fn new(clients: &AwsClients, config: &NotifySettings) -> Result<Notify> {
        let settings = &config.status_webhook;
        let target = match &settings.url {
            None => None,
            Some(url) => {
                let secret = secrets::read_status_webhook_secret(&clients.secrets, &settings.secret_name).await?;
                let signer = crate::status_webhooks::StatusWebhookSigner::new(&secret)?;
                Some(StatusWebhookTarget { url: url.clone(), signer })
            }
        };
        let store = Arc::new(DynamoStore::new(clients.dynamodb.clone(), &config.table_name));
        Ok(Notify {
            store: store.clone(),
            log: store,
            transport: Arc::new(crate::status_webhooks::HttpTransport::new(settings.timeout)?),
            clock: Arc::new(SystemClock),
            target,
            attempts: settings.attempts,
            backoff: settings.backoff,
        })
    }
}
