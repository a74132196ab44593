//! The functions as the local stack invokes them: a JSON payload in, a JSON result out, parsed
//! into the same event types the Lambda bins use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::dynamodb::Event;
use instapipe_core::deps::{Notify, Pipeline, TokenRefresh};
use instapipe_core::handlers::create_container::{self, CreateContainerEvent};
use instapipe_core::handlers::refresh_tokens::{self, RefreshEvent};
use instapipe_core::handlers::{notify, poll_status, publish};
use instapipe_core::scheduler::PollInput;
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Function {
    CreateContainer,
    PollStatus,
    Publish,
    RefreshTokens,
    Notify,
}

impl Function {
    /// The function's Timeout in template.yaml.
    pub fn timeout(self) -> Duration {
        match self {
            Function::RefreshTokens => Duration::from_secs(300),
            _ => Duration::from_secs(30),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Function::CreateContainer => "create-container",
            Function::PollStatus => "poll-status",
            Function::Publish => "publish",
            Function::RefreshTokens => "refresh-tokens",
            Function::Notify => "notify",
        }
    }
}

/// Invocation count and total handler time per function (what a Lambda bill is made of).
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub invocations: u64,
    pub errors: u64,
    pub busy: Duration,
}

pub struct Functions {
    pipeline: Arc<Pipeline>,
    /// refresh-tokens and notify, when the stack hosts them.
    refresh: Option<Arc<TokenRefresh>>,
    notify: Option<Arc<Notify>>,
    usage: Mutex<HashMap<Function, Usage>>,
    /// Invocations started, per function (started − finished = still running).
    started: Mutex<HashMap<Function, u64>>,
}

impl Functions {
    pub fn new(pipeline: Arc<Pipeline>) -> Self {
        Functions { pipeline, refresh: None, notify: None, usage: Mutex::new(HashMap::new()), started: Mutex::new(HashMap::new()) }
    }

    pub fn with_operations(mut self, refresh: Arc<TokenRefresh>, notify: Arc<Notify>) -> Self {
        self.refresh = Some(refresh);
        self.notify = Some(notify);
        self
    }

    /// Runs the function like Lambda would: deserialize, handle, serialize. An error is what
    /// the runtime would report as a failed invocation.
    pub async fn invoke(&self, function: Function, payload: Value) -> Result<Value, String> {
        *self.started.lock().unwrap().entry(function).or_default() += 1;
        let started = Instant::now();
        // Lambda ends an invocation at the function's Timeout (template.yaml: 30 s) and the event
        // source retries it; an invocation that never returned would otherwise be lost here.
        let result = match tokio::time::timeout(function.timeout(), self.run(function, payload)).await {
            Ok(result) => result,
            Err(_) => Err(format!("{} timed out after {} s", function.name(), function.timeout().as_secs())),
        };
        let mut usage = self.usage.lock().unwrap();
        let entry = usage.entry(function).or_default();
        entry.invocations += 1;
        entry.errors += u64::from(result.is_err());
        entry.busy += started.elapsed();
        result
    }

    async fn run(&self, function: Function, payload: Value) -> Result<Value, String> {
        let deps = &self.pipeline;
        match function {
            Function::CreateContainer => match serde_json::from_value::<CreateContainerEvent>(payload) {
                Ok(event) => create_container::handle(deps, event).await.map_err(|e| e.to_string()),
                Err(e) => Err(format!("payload is not a create-container event: {e}")),
            },
            Function::PollStatus => match serde_json::from_value::<PollInput>(payload) {
                Ok(input) => poll_status::handle(deps, input).await.map(|()| Value::Object(Default::default())).map_err(|e| e.to_string()),
                Err(e) => Err(format!("payload is not a poll-status input: {e}")),
            },
            Function::Publish => match serde_json::from_value::<Event>(payload) {
                Ok(event) => Ok(serde_json::to_value(publish::handle(deps, event).await).expect("plain struct")),
                Err(e) => Err(format!("payload is not a DynamoDB stream event: {e}")),
            },
            Function::RefreshTokens => match (&self.refresh, serde_json::from_value::<RefreshEvent>(payload)) {
                (None, _) => Err("refresh-tokens is not hosted by this stack".into()),
                (Some(_), Err(e)) => Err(format!("payload is not a refresh-tokens event: {e}")),
                (Some(refresh), Ok(event)) => refresh_tokens::handle(refresh, event)
                    .await
                    .map(|report| serde_json::to_value(report).expect("plain struct"))
                    .map_err(|e| e.to_string()),
            },
            Function::Notify => match (&self.notify, serde_json::from_value::<Event>(payload)) {
                (None, _) => Err("notify is not hosted by this stack".into()),
                (Some(_), Err(e)) => Err(format!("payload is not a DynamoDB stream event: {e}")),
                (Some(notify), Ok(event)) => Ok(serde_json::to_value(notify::handle(notify, event).await).expect("plain struct")),
            },
        }
    }

    /// The handlers' dependencies, for operator actions the local stack performs itself.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    pub fn usage(&self) -> HashMap<Function, Usage> {
        self.usage.lock().unwrap().clone()
    }

    /// Invocations running now, per function (a handler stuck on a call shows here).
    pub fn in_flight(&self) -> HashMap<Function, u64> {
        let usage = self.usage.lock().unwrap();
        let started = self.started.lock().unwrap();
        started.iter().map(|(f, n)| (*f, n - usage.get(f).map_or(0, |u| u.invocations))).filter(|(_, n)| *n > 0).collect()
    }
}
