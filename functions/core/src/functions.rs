//! The function table: each Lambda function declares once its name, its Timeout, the settings it
//! reads, how its dependencies are built, its event type and its handler. A bin is one call
//! ([`run`] or [`run_http`]); the local stack invokes the same declarations through [`invoke`],
//! so what runs locally is the bins' own wiring.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event as StreamEvent;
use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::{IngestSettings, NotifySettings, PipelineSettings, Settings, TokenRefreshSettings};
use crate::deps::{self, AwsClients};
use crate::error::Result;
use crate::handlers::create_container::{self, CreateContainerEvent};
use crate::handlers::refresh_tokens::{self, RefreshEvent, RefreshReport};
use crate::handlers::{ingest, ingest_event, notify, poll_status, publish};
use crate::scheduler::PollInput;
use crate::sources::RequestError;

/// What a failed invocation reports to Lambda.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One Lambda function.
pub trait Function: 'static {
    /// The bin's name; the deployed function is `<stack>-NAME` (template.yaml).
    const NAME: &'static str;
    /// Its Timeout in template.yaml: Lambda ends an invocation there, and so does the local runner.
    const TIMEOUT: Duration;
    /// What it reads from its environment, and nothing more.
    type Settings: Settings + Send + Sync;
    type Deps: Send + Sync + 'static;
    type Event: Send + 'static;
    type Output: Send + 'static;
    type Error: std::fmt::Display + Send + 'static;

    /// Built once per instance, at start-up.
    fn deps(clients: &AwsClients, settings: &Self::Settings) -> impl Future<Output = Result<Self::Deps>> + Send;

    fn handle(deps: &Self::Deps, event: Self::Event) -> impl Future<Output = Result<Self::Output, Self::Error>> + Send;

    /// The failed invocation, as Lambda reports it (its message only: secrets never go there).
    fn failure(err: Self::Error) -> BoxError {
        err.to_string().into()
    }
}

/// Reads the function's settings from its environment (a missing or malformed variable stops
/// it before anything else), then builds its AWS clients and dependencies: a bin's start-up.
pub async fn start<F: Function>() -> Result<F::Deps> {
    let settings = F::Settings::from_env()?;
    F::deps(&AwsClients::from_env().await, &settings).await
}

/// [`start`] with the variables from `lookup` (the local stack hosts every function in one process).
pub async fn start_with<F: Function>(clients: &AwsClients, lookup: impl Fn(&str) -> Option<String>) -> Result<F::Deps> {
    let settings = F::Settings::from_lookup(lookup)?;
    F::deps(clients, &settings).await
}

/// A JSON-event function's `main`: JSON logs, settings, dependencies, then the Lambda runtime.
pub async fn run<F: Function>() -> Result<(), lambda_runtime::Error>
where
    F::Event: DeserializeOwned,
    F::Output: Serialize,
{
    crate::telemetry::init()?;
    let deps = start::<F>().await?;
    let deps = &deps;
    lambda_runtime::run(lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<F::Event>| async move {
        F::handle(deps, event.payload).await.map_err(F::failure)
    }))
    .await
}

/// An HTTP function's `main` (behind a Function URL).
pub async fn run_http<F>() -> Result<(), lambda_http::Error>
where
    F: Function<Event = Request, Output = Response<Body>>,
{
    crate::telemetry::init()?;
    let deps = start::<F>().await?;
    let deps = &deps;
    lambda_http::run(lambda_http::service_fn(move |request: Request| async move {
        F::handle(deps, request).await.map_err(F::failure)
    }))
    .await
}

/// Invokes the function as Lambda would: the JSON payload parsed into its event type, its
/// handler, its result as JSON. An error is what Lambda would report as a failed invocation.
pub async fn invoke<F: Function>(deps: &F::Deps, payload: Value) -> std::result::Result<Value, String>
where
    F::Event: DeserializeOwned,
    F::Output: Serialize,
{
    let event = serde_json::from_value::<F::Event>(payload).map_err(|e| format!("payload is not a {} event: {e}", F::NAME))?;
    let output = F::handle(deps, event).await.map_err(|e| F::failure(e).to_string())?;
    serde_json::to_value(output).map_err(|e| format!("the result of {} is not JSON: {e}", F::NAME))
}

/// ingest-webhook: `POST /webhooks/<source>` and the posts API, behind a Function URL.
pub struct IngestWebhook;

impl Function for IngestWebhook {
    const NAME: &'static str = "ingest-webhook";
    const TIMEOUT: Duration = Duration::from_secs(30);
    type Settings = IngestSettings;
    type Deps = deps::Ingest;
    type Event = Request;
    type Output = Response<Body>;
    type Error = Infallible;

    async fn deps(clients: &AwsClients, settings: &IngestSettings) -> Result<deps::Ingest> {
        deps::Ingest::new(clients, settings).await
    }

    async fn handle(deps: &deps::Ingest, request: Request) -> Result<Response<Body>, Infallible> {
        Ok(ingest::handle(deps, request).await)
    }
}

/// ingest-event: EventBridge `Publish Requested` events and EventBridge Scheduler inputs.
pub struct IngestEvent;

impl Function for IngestEvent {
    const NAME: &'static str = "ingest-event";
    const TIMEOUT: Duration = Duration::from_secs(30);
    type Settings = IngestSettings;
    type Deps = deps::Ingest;
    type Event = Value;
    type Output = Value;
    type Error = RequestError;

    async fn deps(clients: &AwsClients, settings: &IngestSettings) -> Result<deps::Ingest> {
        deps::Ingest::new(clients, settings).await
    }

    async fn handle(deps: &deps::Ingest, event: Value) -> Result<Value, RequestError> {
        ingest_event::handle(deps, event).await
    }

    /// A refused event is a failed invocation whose message names the field: the rule's or the
    /// schedule's dead-letter queue keeps it.
    fn failure(err: RequestError) -> BoxError {
        format!("{err} (field: {})", err.field.as_deref().unwrap_or("-")).into()
    }
}

/// create-container: DynamoDB stream batches (due destinations) and `start-…` schedules.
pub struct CreateContainer;

impl Function for CreateContainer {
    const NAME: &'static str = "create-container";
    const TIMEOUT: Duration = Duration::from_secs(30);
    type Settings = PipelineSettings;
    type Deps = deps::Pipeline;
    type Event = CreateContainerEvent;
    type Output = Value;
    type Error = crate::Error;

    async fn deps(clients: &AwsClients, settings: &PipelineSettings) -> Result<deps::Pipeline> {
        deps::Pipeline::new(clients, settings)
    }

    async fn handle(deps: &deps::Pipeline, event: CreateContainerEvent) -> Result<Value> {
        create_container::handle(deps, event).await
    }
}

/// poll-status: fired by `poll-…` schedules.
pub struct PollStatus;

impl Function for PollStatus {
    const NAME: &'static str = "poll-status";
    const TIMEOUT: Duration = Duration::from_secs(30);
    type Settings = PipelineSettings;
    type Deps = deps::Pipeline;
    type Event = PollInput;
    type Output = Value;
    type Error = crate::Error;

    async fn deps(clients: &AwsClients, settings: &PipelineSettings) -> Result<deps::Pipeline> {
        deps::Pipeline::new(clients, settings)
    }

    async fn handle(deps: &deps::Pipeline, input: PollInput) -> Result<Value> {
        poll_status::handle(deps, input).await.map(|()| serde_json::json!({}))
    }
}

/// publish: DynamoDB stream batches of READY destinations.
pub struct Publish;

impl Function for Publish {
    const NAME: &'static str = "publish";
    const TIMEOUT: Duration = Duration::from_secs(30);
    type Settings = PipelineSettings;
    type Deps = deps::Pipeline;
    type Event = StreamEvent;
    type Output = DynamoDbEventResponse;
    type Error = Infallible;

    async fn deps(clients: &AwsClients, settings: &PipelineSettings) -> Result<deps::Pipeline> {
        deps::Pipeline::new(clients, settings)
    }

    async fn handle(deps: &deps::Pipeline, event: StreamEvent) -> Result<DynamoDbEventResponse, Infallible> {
        Ok(publish::handle(deps, event).await)
    }
}

/// sweep: the watchdog, every five minutes (`{}`): restarts overdue destinations at their step.
pub struct Sweep;

impl Function for Sweep {
    const NAME: &'static str = "sweep";
    const TIMEOUT: Duration = Duration::from_secs(300);
    type Settings = crate::config::SweepSettings;
    type Deps = deps::Sweep;
    type Event = Value;
    type Output = crate::handlers::sweep::SweepReport;
    type Error = crate::Error;

    async fn deps(clients: &AwsClients, settings: &crate::config::SweepSettings) -> Result<deps::Sweep> {
        Ok(deps::Sweep { pipeline: deps::Pipeline::new(clients, &settings.pipeline)?, policy: settings.watchdog.clone() })
    }

    async fn handle(deps: &deps::Sweep, _event: Value) -> Result<crate::handlers::sweep::SweepReport> {
        crate::handlers::sweep::handle(&deps.pipeline, &deps.policy).await
    }
}

/// refresh-tokens: the daily schedule (`{}`), or on demand (`{"account_id": "...", "force": true}`).
pub struct RefreshTokens;

impl Function for RefreshTokens {
    const NAME: &'static str = "refresh-tokens";
    const TIMEOUT: Duration = Duration::from_secs(300);
    type Settings = TokenRefreshSettings;
    type Deps = deps::TokenRefresh;
    type Event = RefreshEvent;
    type Output = RefreshReport;
    type Error = crate::Error;

    async fn deps(clients: &AwsClients, settings: &TokenRefreshSettings) -> Result<deps::TokenRefresh> {
        deps::TokenRefresh::new(clients, settings)
    }

    async fn handle(deps: &deps::TokenRefresh, event: RefreshEvent) -> Result<RefreshReport> {
        refresh_tokens::handle(deps, event).await
    }
}

/// notify: DynamoDB stream batches (destinations that became PUBLISHED or FAILED).
pub struct Notify;

impl Function for Notify {
    const NAME: &'static str = "notify";
    const TIMEOUT: Duration = Duration::from_secs(60);
    type Settings = NotifySettings;
    type Deps = deps::Notify;
    type Event = StreamEvent;
    type Output = DynamoDbEventResponse;
    type Error = Infallible;

    async fn deps(clients: &AwsClients, settings: &NotifySettings) -> Result<deps::Notify> {
        deps::Notify::new(clients, settings).await
    }

    async fn handle(deps: &deps::Notify, event: StreamEvent) -> Result<DynamoDbEventResponse, Infallible> {
        Ok(notify::handle(deps, event).await)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::{BTreeSet, HashMap};

    use serde_yaml::Value as Yaml;

    use super::*;

    fn template() -> Yaml {
        let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"))
            .expect("template.yaml at the workspace root");
        serde_yaml::from_str(&text).expect("template.yaml parses")
    }

    /// A variable's value as the deployed function would see it: `!Ref` of a parameter is its
    /// default; other intrinsics (ARNs, names) stand for some non-empty string.
    fn resolve(template: &Yaml, value: &Yaml) -> String {
        match value {
            Yaml::String(s) => s.clone(),
            Yaml::Number(n) => n.to_string(),
            Yaml::Tagged(tagged) if tagged.tag == "!Ref" => {
                let default = tagged.value.as_str().and_then(|p| template["Parameters"][p].get("Default"));
                default.map_or_else(|| "placeholder".to_string(), |d| resolve(template, d))
            }
            _ => "https://placeholder.example.com/x".to_string(),
        }
    }

    fn variables(template: &Yaml, block: &Yaml) -> HashMap<String, String> {
        let vars = block["Environment"]["Variables"].as_mapping().cloned().unwrap_or_default();
        vars.iter().map(|(k, v)| (k.as_str().unwrap().to_string(), resolve(template, v))).collect()
    }

    /// The function's resource in template.yaml (found by its bin), its environment (Globals and
    /// its own), and the variables its settings read from it.
    fn deployed<F: Function>(template: &Yaml) -> (Yaml, HashMap<String, String>, Result<BTreeSet<String>>) {
        let resources = template["Resources"].as_mapping().unwrap();
        let resource = resources
            .values()
            .find(|r| r["Metadata"]["BuildProperties"]["Binary"].as_str() == Some(F::NAME))
            .unwrap_or_else(|| panic!("template.yaml has no function built from {}", F::NAME))
            .clone();
        let mut env = variables(template, &template["Globals"]["Function"]);
        env.extend(variables(template, &resource["Properties"]));
        let read = RefCell::new(BTreeSet::new());
        let settings = F::Settings::from_lookup(|name| {
            read.borrow_mut().insert(name.to_string());
            env.get(name).cloned()
        });
        (resource, env.clone(), settings.map(|_| read.into_inner()))
    }

    /// Every function starts with the environment template.yaml gives it, every variable of its
    /// own Environment is one it reads, and the local runner's timeout is its Lambda Timeout.
    fn check<F: Function>(template: &Yaml, read_by_some: &mut BTreeSet<String>) {
        let (resource, _, read) = deployed::<F>(template);
        let read = read.unwrap_or_else(|e| panic!("{} does not start with template.yaml's environment: {e}", F::NAME));
        for own in variables(template, &resource["Properties"]).keys() {
            assert!(read.contains(own), "template.yaml gives {} {own}, which it does not read", F::NAME);
        }
        read_by_some.extend(read);
        let timeout = resource["Properties"]["Timeout"].as_u64().or(template["Globals"]["Function"]["Timeout"].as_u64());
        assert_eq!(Some(F::TIMEOUT.as_secs()), timeout, "{}'s Timeout", F::NAME);
    }

    #[test]
    fn template_yaml_gives_every_function_what_it_reads() {
        let template = template();
        let mut read = BTreeSet::new();
        check::<IngestWebhook>(&template, &mut read);
        check::<IngestEvent>(&template, &mut read);
        check::<CreateContainer>(&template, &mut read);
        check::<PollStatus>(&template, &mut read);
        check::<Publish>(&template, &mut read);
        check::<RefreshTokens>(&template, &mut read);
        check::<Notify>(&template, &mut read);
        check::<Sweep>(&template, &mut read);
        for global in variables(&template, &template["Globals"]["Function"]).keys() {
            // LOG_LEVEL is read by telemetry, not a setting.
            assert!(global == crate::telemetry::LOG_LEVEL_VAR || read.contains(global), "no function reads the global variable {global}");
        }
    }

    /// The statements of a function's inline policies.
    fn statements<F: Function>(template: &Yaml) -> Vec<Yaml> {
        let (resource, _, _) = deployed::<F>(template);
        let policies = resource["Properties"]["Policies"].as_sequence().cloned().unwrap_or_default();
        policies.iter().flat_map(|p| p["Statement"].as_sequence().cloned().unwrap_or_default()).collect()
    }

    fn strings(value: &Yaml) -> Vec<String> {
        match value {
            Yaml::String(s) => vec![s.clone()],
            Yaml::Sequence(items) => items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect(),
            _ => vec![],
        }
    }

    /// IAM's StringLike: `*` is any run of characters, `?` one.
    fn string_like(pattern: &str, value: &str) -> bool {
        match (pattern.chars().next(), value.chars().next()) {
            (None, None) => true,
            (Some('*'), _) => string_like(&pattern[1..], value) || (!value.is_empty() && string_like(pattern, &value[value.chars().next().unwrap().len_utf8()..])),
            (Some(p), Some(v)) if p == '?' || p == v => string_like(&pattern[p.len_utf8()..], &value[v.len_utf8()..]),
            _ => false,
        }
    }

    /// The table's write actions: a Deny on them must cover every write another statement allows.
    const TABLE_WRITES: [&str; 7] = [
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:PartiQLInsert",
        "dynamodb:PartiQLUpdate",
        "dynamodb:PartiQLDelete",
    ];

    /// Whether the function's policies deny every table write whose partition key is `pk`.
    fn writes_denied<F: Function>(template: &Yaml, pk: &str) -> bool {
        let denies: Vec<Yaml> = statements::<F>(template).into_iter().filter(|s| s["Effect"].as_str() == Some("Deny")).collect();
        TABLE_WRITES.iter().all(|action| {
            denies.iter().any(|deny| {
                let on_table = matches!(&deny["Resource"], Yaml::Tagged(t) if t.tag == "!GetAtt" && t.value.as_str() == Some("PostsTable.Arn"));
                let patterns = strings(&deny["Condition"]["ForAnyValue:StringLike"]["dynamodb:LeadingKeys"]);
                on_table && strings(&deny["Action"]).iter().any(|a| a == action) && patterns.iter().any(|p| string_like(p, pk))
            })
        })
    }

    #[test]
    fn the_ingest_functions_cannot_write_api_key_items() {
        let template = template();
        let api_key = crate::store::api_keys::item_key(&crate::store::api_keys::hash("ipk_any"));
        assert!(writes_denied::<IngestWebhook>(&template, &api_key), "ingest-webhook may write {api_key}");
        assert!(writes_denied::<IngestEvent>(&template, &api_key), "ingest-event may write {api_key}");
        // ... and only those: posts and deliveries stay writable.
        for pk in [crate::store::keys::post("p1"), crate::store::keys::delivery("generic", "e1")] {
            assert!(!writes_denied::<IngestWebhook>(&template, &pk), "{pk} is denied");
        }
        // Every table write an ingest statement allows is one the Deny covers.
        for statement in statements::<IngestWebhook>(&template).iter().chain(statements::<IngestEvent>(&template).iter()) {
            if statement["Effect"].as_str() == Some("Allow") {
                for action in strings(&statement["Action"]).iter().filter(|a| a.starts_with("dynamodb:")) {
                    let reads = ["GetItem", "BatchGetItem", "Query", "Scan", "ConditionCheckItem", "DescribeTable", "PartiQLSelect"];
                    assert!(
                        TABLE_WRITES.contains(&action.as_str()) || reads.iter().any(|r| action.ends_with(r)),
                        "{action} is allowed to ingest, but the API key Deny does not cover it"
                    );
                }
            }
        }
    }

    #[test]
    fn string_like_is_iams() {
        assert!(string_like("APIKEY#*", "APIKEY#ab12"));
        assert!(string_like("APIKEY#*", "APIKEY#"));
        assert!(!string_like("APIKEY#*", "POST#APIKEY#1"));
        assert!(!string_like("APIKEY#*", "APIKEYS#1"));
        assert!(string_like("A?C", "ABC") && !string_like("A?C", "AC"));
    }

    #[test]
    fn the_public_function_has_a_reserved_concurrency_parameter() {
        let template = template();
        let (resource, _, _) = deployed::<IngestWebhook>(&template);
        assert!(resource["Properties"]["FunctionUrlConfig"].is_mapping(), "ingest-webhook is the public function");
        let reserved = serde_yaml::to_string(&resource["Properties"]["ReservedConcurrentExecutions"]).unwrap();
        assert!(reserved.contains("IngestReservedConcurrency"), "ReservedConcurrentExecutions: {reserved}");
        let parameter = &template["Parameters"]["IngestReservedConcurrency"];
        let default = parameter["Default"].as_u64().expect("a numeric default");
        assert!(default > 0 && default <= parameter["MaxValue"].as_u64().unwrap(), "default {default}");
    }

    #[test]
    fn log_level_is_an_enumeration_the_functions_understand() {
        let template = template();
        let parameter = &template["Parameters"]["LogLevel"];
        let allowed = strings(&parameter["AllowedValues"]);
        let ours: Vec<String> = crate::telemetry::LogLevel::ALL.iter().map(|l| l.as_str().to_string()).collect();
        assert_eq!(allowed, ours);
        let default = parameter["Default"].as_str().unwrap();
        assert!(default.parse::<crate::telemetry::LogLevel>().is_ok(), "{default}");
        let globals = variables(&template, &template["Globals"]["Function"]);
        assert_eq!(globals.get(crate::telemetry::LOG_LEVEL_VAR).map(String::as_str), Some(default));
    }

    #[test]
    fn notify_and_refresh_tokens_read_no_scheduler_variable() {
        let template = template();
        for (name, read) in [("notify", deployed::<Notify>(&template).2), ("refresh-tokens", deployed::<RefreshTokens>(&template).2)] {
            let read = read.unwrap();
            assert!(read.contains("TABLE_NAME"), "{name}: {read:?}");
            assert!(!read.iter().any(|v| v.starts_with("SCHEDULE") || v.ends_with("_FUNCTION_ARN")), "{name} reads {read:?}");
        }
    }

    /// Halves even numbers, refuses odd ones.
    struct Halve;

    impl Function for Halve {
        const NAME: &'static str = "halve";
        const TIMEOUT: Duration = Duration::from_secs(1);
        type Settings = NotifySettings;
        type Deps = ();
        type Event = u32;
        type Output = u32;
        type Error = crate::Error;

        async fn deps(_: &AwsClients, _: &NotifySettings) -> Result<()> {
            Ok(())
        }

        async fn handle(_: &(), n: u32) -> Result<u32> {
            if n.is_multiple_of(2) { Ok(n / 2) } else { Err(crate::Error::Data(format!("{n} is odd"))) }
        }
    }

    #[tokio::test]
    async fn invoke_runs_the_handler_on_the_parsed_event_and_reports_its_failure() {
        assert_eq!(invoke::<Halve>(&(), serde_json::json!(8)).await, Ok(serde_json::json!(4)));
        let err = invoke::<Halve>(&(), serde_json::json!(7)).await.unwrap_err();
        assert!(err.contains("7 is odd"), "{err}");
        let err = invoke::<Halve>(&(), serde_json::json!({"n": 8})).await.unwrap_err();
        assert!(err.starts_with("payload is not a halve event"), "{err}");
    }

    #[test]
    fn a_refused_event_names_its_field_in_the_failure() {
        let err = RequestError::field(422, "invalid_field", "detail.post.caption", "too long");
        assert_eq!(IngestEvent::failure(err).to_string(), "invalid_field: too long (field: detail.post.caption)");
    }
}
