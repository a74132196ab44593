//! The whole local stack in one value: services, simulator, runners and the HTTP endpoint.
//! Dropping it stops everything.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, Projection, ProjectionType, KeyType, ScalarAttributeType, StreamSpecification,
    StreamViewType, TimeToLiveSpecification, TimeToLiveStatus,
};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::{Credentials, SharedCredentialsProvider};
use graph_sim::{GraphSim, SimConfig};
use instapipe_core::account::{Account, AccountStatus, LoginFlavour};
use instapipe_core::config::Config;
use instapipe_core::deps::{AwsClients, Ingest};
use instapipe_core::functions::{self as table, Function as _, start_with};
use instapipe_core::post::Destination;
use instapipe_core::secrets;
use instapipe_core::store::api_keys::{self, DynamoApiKeys};
use instapipe_core::store::{DynamoStore, PostStore, indexes};
use instapipe_core::stream_filters;
use serde_json::Value;
use secrecy::SecretString;
use tokio::task::JoinHandle;

use crate::fault_proxy::AwsFaultProxies;
use crate::functions::{Function, Functions};
use crate::services::{self, Services};
use crate::settings::Settings;
use crate::lambda::{AsyncInvoker, Dice, FailureQueues};
use crate::stream::Mapping;
use crate::{http_server, schedules, stream};

pub struct LocalStack {
    pub settings: Settings,
    pub config: Config,
    /// `http://127.0.0.1:PORT`, where ingest-webhook answers.
    pub base_url: String,
    pub graph_base_url: String,
    /// The simulator, when no external Graph API was given.
    pub sim: Option<GraphSim>,
    pub clients: AwsClients,
    pub store: Arc<dyn PostStore>,
    pub functions: Arc<Functions>,
    /// Asynchronous invocation as Lambda does it (retries, then `failure_queues`).
    pub invoker: Arc<AsyncInvoker>,
    /// The on-failure destinations (SQS queues in moto).
    pub failure_queues: Arc<FailureQueues>,
    /// `http://127.0.0.1:PORT`, where the runners answer Lambda's Invoke API (`invoke_api`):
    /// the CLI's `AWS_ENDPOINT_URL_LAMBDA`.
    pub lambda_url: String,
    /// ingest-event's dependencies (see `deliver_event`).
    ingest_event: Ingest,
    pub dynamodb_url: String,
    pub moto_url: String,
    /// The fault proxies the functions' AWS calls go through, when `settings.aws_faults` is on.
    pub aws_faults: Option<AwsFaultProxies>,
    tasks: Vec<JoinHandle<()>>,
    _services: Services,
}

impl Drop for LocalStack {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The stream runner's (`lane` 0) and the schedule firer's (1) duplicate deliveries.
fn duplicator(settings: &Settings, lane: u64) -> Arc<stream::Duplicator> {
    Arc::new(stream::Duplicator::new(settings.duplicate_rate, settings.duplicate_seed.wrapping_mul(2).wrapping_add(lane)))
}

/// Clients for the local endpoints, whatever `AWS_*` variables the shell has.
pub fn local_sdk_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new("test", "test", None, None, "local")))
        .timeout_config(instapipe_core::deps::aws_timeouts())
        .http_client(instapipe_core::deps::aws_http_client())
        .build()
}

fn aws_clients(sdk: &SdkConfig, dynamodb_url: &str, moto_url: &str) -> AwsClients {
    AwsClients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(aws_sdk_dynamodb::config::Builder::from(sdk).endpoint_url(dynamodb_url).build()),
        scheduler: aws_sdk_scheduler::Client::from_conf(aws_sdk_scheduler::config::Builder::from(sdk).endpoint_url(moto_url).build()),
        secrets: aws_sdk_secretsmanager::Client::from_conf(
            aws_sdk_secretsmanager::config::Builder::from(sdk).endpoint_url(moto_url).build(),
        ),
    }
}

fn err<E: std::fmt::Debug>(context: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("{context}: {e:?}")
}

impl LocalStack {
    pub async fn start(settings: Settings, sim_config: SimConfig) -> Result<LocalStack, String> {
        let log_dir = settings.root.join(".local");
        std::fs::create_dir_all(&log_dir).map_err(|e| format!("cannot create {}: {e}", log_dir.display()))?;
        let (root, ddb_port, moto_port) = (settings.root.clone(), settings.dynamodb_port, settings.moto_port);
        let (dir1, dir2) = (log_dir.clone(), log_dir.clone());
        let root2 = root.clone();
        // Before anything starts, so that nothing is left when the stack stops or dies.
        let mut children = Services::start()?;
        let group = children.group();
        let (dynamodb, moto) = tokio::join!(
            tokio::task::spawn_blocking(move || services::start_dynamodb(&root, ddb_port, &dir1, group)),
            tokio::task::spawn_blocking(move || services::start_moto(&root2, moto_port, &dir2, group)),
        );
        let dynamodb = dynamodb.map_err(|e| e.to_string())??;
        let moto = moto.map_err(|e| e.to_string())??;
        let (dynamodb_url, moto_url) = (dynamodb.url.clone(), moto.url.clone());
        children.add(dynamodb);
        children.add(moto);

        let sdk = local_sdk_config();
        let clients = aws_clients(&sdk, &dynamodb_url, &moto_url);
        // With AWS faults on, the functions' calls go through the fault proxies; the stack's own
        // setup, runners and assertions talk to the services directly.
        let aws_faults = AwsFaultProxies::start(settings.aws_faults, &dynamodb_url, &moto_url).await?;
        let function_clients = match &aws_faults {
            Some(proxies) => aws_clients(&sdk, &proxies.dynamodb.url(), &proxies.moto.url()),
            None => clients.clone(),
        };
        let sqs = aws_sdk_sqs::Client::from_conf(aws_sdk_sqs::config::Builder::from(&sdk).endpoint_url(&moto_url).build());
        let streams = aws_sdk_dynamodbstreams::Client::from_conf(
            aws_sdk_dynamodbstreams::config::Builder::from(&sdk).endpoint_url(&dynamodb_url).build(),
        );

        let (sim, graph_base_url) = match &settings.graph_api_base_url {
            Some(url) => (None, url.trim_end_matches('/').to_string()),
            None => {
                if settings.graph_sim_port != 0 {
                    services::ensure_port_free(settings.graph_sim_port, "Graph API simulator", "GRAPH_SIM_PORT")?;
                }
                let (sim, url) = graph_sim::spawn(sim_config, settings.graph_sim_port)
                    .await
                    .map_err(|e| format!("cannot start the Graph API simulator: {e}"))?;
                (Some(sim), url)
            }
        };
        let config = settings.handler_config(&graph_base_url)?;

        let stream_arn = create_table(&clients.dynamodb, config.table_name()).await?;
        clients
            .scheduler
            .create_schedule_group()
            .name(config.schedule_group())
            .send()
            .await
            .map_err(err("CreateScheduleGroup"))?;
        // The secrets the functions read at start-up (notify sends only when STATUS_WEBHOOK_URL is set).
        settings.webhook_secrets().write(&clients.secrets, &config.ingest.webhook_secrets_name).await.map_err(|e| e.to_string())?;
        secrets::write_status_webhook_secret(&clients.secrets, &config.notify.status_webhook.secret_name, settings.status_webhook_secret())
            .await
            .map_err(|e| e.to_string())?;
        DynamoApiKeys::new(clients.dynamodb.clone(), config.table_name())
            .register(&api_keys::hash(&settings.api_key), "local stack")
            .await
            .map_err(|e| e.to_string())?;

        // The public function's address first: its /oauth/callback is the redirect URI it sends.
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", settings.http_port))
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AddrInUse => services::port_taken(settings.http_port, "ingest-webhook", "INSTAPIPE_PORT"),
                _ => format!("cannot listen on port {}: {e}", settings.http_port),
            })?;
        let base_url = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
        let mut settings = settings;
        if !settings.handler_vars.contains_key("OAUTH_REDIRECT_URI") {
            settings.set("OAUTH_REDIRECT_URI", format!("{base_url}/oauth/callback"));
        }
        let config = settings.handler_config(&graph_base_url)?;
        // The Meta app the logins go through (`accounts connect`, /oauth/*).
        let meta_app = serde_json::json!({
            "instagram_app_id": crate::settings::DEMO_INSTAGRAM_APP_ID,
            "instagram_app_secret": crate::settings::DEMO_INSTAGRAM_APP_SECRET,
            "facebook_app_id": crate::settings::DEMO_FACEBOOK_APP_ID,
            "facebook_app_secret": crate::settings::DEMO_FACEBOOK_APP_SECRET,
        });
        secrets::write(&clients.secrets, &config.token_refresh.meta_app_secret_name, &meta_app.to_string(), "instapipe: Meta app credentials")
            .await
            .map_err(|e| e.to_string())?;

        // Every function starts as its bin does: its own settings, its own dependencies.
        let env = settings.handler_env(&graph_base_url);
        let functions = Arc::new(Functions::start(&function_clients, env).await?);
        functions.kills().set_seeded(settings.kills.clone(), settings.kill_seed);
        let failure_queues = Arc::new(FailureQueues::create(sqs).await?);
        let ingest_webhook = Arc::new(start_with::<table::IngestWebhook>(&function_clients, env).await.map_err(|e| e.to_string())?);
        let ingest_event = start_with::<table::IngestEvent>(&function_clients, env).await.map_err(|e| e.to_string())?;

        let delivery = Arc::new(stream::Delivery {
            mappings: vec![
                Mapping::new(Function::CreateContainer, &stream_filters::CREATE_CONTAINER),
                Mapping::new(Function::Publish, &stream_filters::PUBLISH),
                Mapping::new(Function::Notify, &stream_filters::NOTIFY),
            ],
            functions: functions.clone(),
            failures: failure_queues.clone(),
            stream_arn,
        });
        let arns = &config.pipeline.schedules;
        let targets = Arc::new(schedules::Targets::new(&arns.create_container_arn, &arns.poll_status_arn));
        let invoker = Arc::new(AsyncInvoker {
            functions: functions.clone(),
            queues: failure_queues.clone(),
            retry_delay: settings.async_retry_delay,
            arns: [(Function::CreateContainer, arns.create_container_arn.clone()), (Function::PollStatus, arns.poll_status_arn.clone())].into(),
        });
        let firing = schedules::Firing {
            lateness: settings.schedule_lateness,
            dice: Dice::new(settings.duplicate_seed.wrapping_mul(2).wrapping_add(3)),
            duplicates: duplicator(&settings, 1),
        };
        let invoke_listener =
            tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| format!("cannot listen for the Invoke API: {e}"))?;
        let lambda_url = format!("http://{}", invoke_listener.local_addr().map_err(|e| e.to_string())?);
        let invoke_api = Arc::new(crate::invoke_api::InvokeApi { targets: targets.clone(), invoker: invoker.clone() });
        let tasks = vec![
            tokio::spawn(stream::run(streams, delivery, duplicator(&settings, 0))),
            tokio::spawn(schedules::run(clients.scheduler.clone(), config.schedule_group().to_string(), targets, invoker.clone(), firing)),
            tokio::spawn(async move {
                let _ = axum::serve(listener, http_server::router(ingest_webhook)).await;
            }),
            tokio::spawn(run_sweep(invoker.clone(), settings.sweep_every)),
            tokio::spawn(async move {
                let _ = axum::serve(invoke_listener, crate::invoke_api::router(invoke_api)).await;
            }),
        ];
        Ok(LocalStack {
            store: Arc::new(DynamoStore::new(clients.dynamodb.clone(), config.table_name())),
            settings,
            config,
            base_url,
            graph_base_url,
            sim,
            clients,
            functions,
            invoker,
            failure_queues,
            lambda_url,
            ingest_event,
            dynamodb_url,
            moto_url,
            aws_faults,
            tasks,
            _services: children,
        })
    }

    /// Registers an account: its item in the table and its token in Secrets Manager (and in the
    /// simulator, which then accepts only that token for it).
    pub async fn add_account(&self, account_id: &str, token: &str) -> Result<(), String> {
        let account = Account {
            account_id: account_id.into(),
            login: LoginFlavour::Instagram,
            status: AccountStatus::Active,
            token_expires_at: None,
        };
        self.store.put_account(&account).await.map_err(|e| e.to_string())?;
        secrets::write_account_token(&self.clients.secrets, self.config.account_secret_prefix(), account_id, &SecretString::from(token))
            .await
            .map_err(|e| e.to_string())?;
        if let Some(sim) = &self.sim {
            sim.set_token(account_id, token);
        }
        Ok(())
    }

    /// Stores a new token for an account and resumes its posts waiting for re-auth.
    pub async fn reconnect_account(&self, account_id: &str, token: &str) -> Result<usize, String> {
        self.add_account(account_id, token).await?;
        instapipe_core::handlers::reauth::resume_account(self.functions.pipeline(), account_id)
            .await
            .map_err(|e| e.to_string())
    }

    /// Connects the account the simulator's login gives (its consent) through the public
    /// function: `GET /oauth/start` with the stack's API key, the authorize page (which
    /// redirects at once), then `/oauth/callback`, as a browser would. Its JSON answer.
    pub async fn connect_by_oauth(&self, flavour: &str) -> Result<Value, String> {
        let http = reqwest::Client::new();
        let response = http
            .get(format!("{}/oauth/start?flavour={flavour}", self.base_url))
            .bearer_auth(&self.settings.api_key)
            .send()
            .await
            .map_err(|e| format!("/oauth/start: {e}"))?;
        let status = response.status();
        let started: Value = response.json().await.map_err(|e| format!("/oauth/start: {e}"))?;
        let url = started["authorize_url"].as_str().ok_or_else(|| format!("/oauth/start answered {status} {started}"))?;
        // The browser's part: the login page redirects to the callback, which answers.
        let response = http.get(url).send().await.map_err(|e| format!("the login: {}", e.without_url()))?;
        let status = response.status();
        let connected: Value = response.json().await.map_err(|e| format!("/oauth/callback: {e}"))?;
        if !status.is_success() {
            return Err(format!("/oauth/callback answered {status} {connected}"));
        }
        Ok(connected)
    }

    /// `http://127.0.0.1:PORT/webhooks/<source>`.
    pub fn source_url(&self, source: &str) -> String {
        format!("{}/webhooks/{source}", self.base_url)
    }

    /// Delivers an EventBridge event or a Scheduler input to ingest-event, as an EventBridge
    /// rule target or a schedule would: its result, or its error as `{"error": {…}}`.
    pub async fn deliver_event(&self, event: Value) -> Result<Value, Value> {
        table::IngestEvent::handle(&self.ingest_event, event).await.map_err(|e| e.to_json())
    }

    /// Where the posts API answers (`/posts`).
    pub fn posts_url(&self) -> String {
        format!("{}/posts", self.base_url)
    }

    /// The environment that points the `instapipe` CLI (or any function bin) at this stack.
    pub fn cli_env(&self) -> Vec<(&'static str, String)> {
        let c = &self.config;
        let schedules = &c.pipeline.schedules;
        vec![
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_ENDPOINT_URL_DYNAMODB", self.dynamodb_url.clone()),
            ("AWS_ENDPOINT_URL_SCHEDULER", self.moto_url.clone()),
            ("AWS_ENDPOINT_URL_SECRETS_MANAGER", self.moto_url.clone()),
            ("AWS_ENDPOINT_URL_SQS", self.moto_url.clone()),
            ("AWS_ENDPOINT_URL_DYNAMODB_STREAMS", self.dynamodb_url.clone()),
            ("AWS_ENDPOINT_URL_LAMBDA", self.lambda_url.clone()),
            ("ASYNC_FAILURE_QUEUE_URL", self.failure_queues.async_url.clone()),
            ("STREAM_FAILURE_QUEUE_URL", self.failure_queues.stream_url.clone()),
            ("TABLE_NAME", c.table_name().to_string()),
            ("SCHEDULE_GROUP", schedules.group.clone()),
            ("SCHEDULER_ROLE_ARN", schedules.role_arn.clone()),
            ("CREATE_CONTAINER_FUNCTION_ARN", schedules.create_container_arn.clone()),
            ("POLL_STATUS_FUNCTION_ARN", schedules.poll_status_arn.clone()),
            ("ACCOUNT_SECRET_PREFIX", c.account_secret_prefix().to_string()),
            ("GRAPH_API_BASE_URL", self.graph_base_url.clone()),
            // `instapipe routes` lists and checks the stack's routes.
            ("ROUTING_CONFIG", (self.settings.handler_env(&self.graph_base_url))("ROUTING_CONFIG").unwrap_or_default()),
            ("OAUTH_BASE_URL", self.config.ingest.connect.oauth_base_url.clone().unwrap_or_default()),
            ("META_APP_SECRET_NAME", self.config.token_refresh.meta_app_secret_name.clone()),
        ]
    }

    pub fn webhook_url(&self) -> String {
        format!("{}/webhooks/generic", self.base_url)
    }

    /// Posts `body` to `/webhooks/generic`, signed with the stack's secret.
    pub async fn send_generic(&self, body: &str, webhook_id: &str) -> Result<reqwest::Response, String> {
        send_signed(&self.webhook_url(), &self.settings.generic_secret, body, webhook_id).await
    }

    pub async fn destinations(&self, post_id: &str) -> Vec<Destination> {
        self.store.list_destinations(post_id).await.unwrap_or_default()
    }

    /// Every destination in the table (the local stack's tables are small).
    pub async fn all_destinations(&self) -> Result<Vec<Destination>, String> {
        let mut items = Vec::new();
        let mut pages = self
            .clients
            .dynamodb
            .scan()
            .table_name(self.config.table_name())
            .filter_expression("begins_with(sk, :dest)")
            .expression_attribute_values(":dest", aws_sdk_dynamodb::types::AttributeValue::S("DEST#".into()))
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            items.push(item.map_err(err("Scan"))?);
        }
        serde_dynamo::from_items(items).map_err(|e| e.to_string())
    }

    /// Waits until every destination of the post is final (PUBLISHED or FAILED).
    pub async fn wait_final(&self, post_id: &str, timeout: Duration) -> Result<Vec<Destination>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let dests = self.destinations(post_id).await;
            if !dests.is_empty() && dests.iter().all(|d| d.state.is_final()) {
                return Ok(dests);
            }
            if Instant::now() > deadline {
                let states: Vec<_> = dests.iter().map(|d| d.state.as_str()).collect();
                return Err(format!("post {post_id} not final after {timeout:?}: {states:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Signs with Standard Webhooks (the reference crate, independent of ours) and sends.
pub async fn send_signed(url: &str, secret: &str, body: &str, webhook_id: &str) -> Result<reqwest::Response, String> {
    let ts = time::OffsetDateTime::now_utc().unix_timestamp();
    let signature = standardwebhooks::Webhook::new(secret)
        .and_then(|w| w.sign(webhook_id, ts, body.as_bytes()))
        .map_err(|e| format!("cannot sign: {e}"))?;
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", webhook_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))
}

/// Creates the table (with its stream and TTL) and returns its stream ARN.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<String, String> {
    let attribute = |name: &str| {
        AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
    };
    let key = |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
    let created = client
        .create_table()
        .table_name(table)
        .attribute_definitions(attribute("pk").map_err(err("pk"))?)
        .attribute_definitions(attribute("sk").map_err(err("sk"))?)
        .key_schema(key("pk", KeyType::Hash).map_err(err("pk"))?)
        .key_schema(key("sk", KeyType::Range).map_err(err("sk"))?)
        .attribute_definitions(attribute("account_id").map_err(err("account_id"))?)
        .attribute_definitions(attribute("state").map_err(err("state"))?)
        .attribute_definitions(attribute("created_at").map_err(err("created_at"))?)
        .attribute_definitions(attribute("updated_at").map_err(err("updated_at"))?)
        .global_secondary_indexes(index(indexes::BY_ACCOUNT, "account_id", "created_at")?)
        .global_secondary_indexes(index(indexes::BY_STATE, "state", "updated_at")?)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(indexes::DUE_AT)
                .attribute_type(ScalarAttributeType::N)
                .build()
                .map_err(err(indexes::DUE_AT))?,
        )
        .global_secondary_indexes(index(indexes::BY_DUE, "state", indexes::DUE_AT)?)
        .billing_mode(BillingMode::PayPerRequest)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(err("stream"))?,
        )
        .send()
        .await;
    let description = match created {
        Ok(out) => out.table_description,
        // An attempt that timed out on a busy machine but that DynamoDB Local carried out: the
        // SDK's retry finds the table. It is this stack's own in-memory DynamoDB Local, so the
        // table can only be ours.
        Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_in_use_exception()) => {
            client.describe_table().table_name(table).send().await.map_err(err("DescribeTable"))?.table
        }
        Err(e) => return Err(err("CreateTable")(e)),
    };
    let ttl = client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder().enabled(true).attribute_name("expires_at").build().map_err(err("ttl"))?,
        )
        .send()
        .await;
    if let Err(e) = ttl {
        // Likewise: an attempt that timed out may have enabled it ("TimeToLive is already enabled").
        let now = client.describe_time_to_live().table_name(table).send().await.map_err(err("DescribeTimeToLive"))?;
        if now.time_to_live_description().and_then(|d| d.time_to_live_status()) != Some(&TimeToLiveStatus::Enabled) {
            return Err(err("UpdateTimeToLive")(e));
        }
    }
    description
        .and_then(|t| t.latest_stream_arn)
        .ok_or_else(|| "the table has no stream".to_string())
}

fn index(name: &str, hash: &str, range: &str) -> Result<GlobalSecondaryIndex, String> {
    let key = |attr: &str, kind| KeySchemaElement::builder().attribute_name(attr).key_type(kind).build();
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(hash, KeyType::Hash).map_err(err("index key"))?)
        .key_schema(key(range, KeyType::Range).map_err(err("index key"))?)
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .map_err(err("index"))
}

/// The watchdog's schedule: the sweep function every `every` (never when zero), invoked
/// asynchronously as its EventBridge schedule does.
async fn run_sweep(invoker: Arc<AsyncInvoker>, every: std::time::Duration) {
    if every.is_zero() {
        return;
    }
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        invoker.invoke(Function::Sweep, serde_json::json!({}));
    }
}
