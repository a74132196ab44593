//! The functions the local stack's runners invoke, through core's function table: each one's
//! settings read and dependencies built as its bin does, a JSON payload parsed into its event
//! type and handed to its handler, its Lambda Timeout enforced.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use instapipe_core::deps::{AwsClients, Notify, Pipeline, Sweep, TokenRefresh};
use instapipe_core::functions::{self as table, Function as _, invoke, start_with};
use serde_json::Value;

use crate::lambda::Kills;

/// The functions fed by the stream runner and the schedule firer (ingest-webhook is served over
/// HTTP, ingest-event by `LocalStack::deliver_event`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Function {
    CreateContainer,
    PollStatus,
    Publish,
    RefreshTokens,
    Notify,
    Sweep,
}

impl Function {
    /// The function's Timeout in template.yaml.
    pub fn timeout(self) -> Duration {
        match self {
            Function::CreateContainer => table::CreateContainer::TIMEOUT,
            Function::PollStatus => table::PollStatus::TIMEOUT,
            Function::Publish => table::Publish::TIMEOUT,
            Function::RefreshTokens => table::RefreshTokens::TIMEOUT,
            Function::Notify => table::Notify::TIMEOUT,
            Function::Sweep => table::Sweep::TIMEOUT,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Function::CreateContainer => table::CreateContainer::NAME,
            Function::PollStatus => table::PollStatus::NAME,
            Function::Publish => table::Publish::NAME,
            Function::RefreshTokens => table::RefreshTokens::NAME,
            Function::Notify => table::Notify::NAME,
            Function::Sweep => table::Sweep::NAME,
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
    /// Each function's dependencies, built once as its instance would build them.
    create_container: Pipeline,
    poll_status: Pipeline,
    publish: Pipeline,
    refresh_tokens: TokenRefresh,
    notify: Notify,
    sweep: Sweep,
    usage: Mutex<HashMap<Function, Usage>>,
    /// Invocations started, per function (started − finished = still running).
    started: Mutex<HashMap<Function, u64>>,
    /// Invocations to kill mid-handler (off unless the settings or a test say so).
    kills: Kills,
}

impl Functions {
    /// Starts every function with the variables `lookup` gives (their Lambda environment).
    pub async fn start(clients: &AwsClients, lookup: impl Fn(&str) -> Option<String> + Copy) -> Result<Functions, String> {
        let refused = |f: Function| move |e: instapipe_core::Error| format!("{} does not start: {e}", f.name());
        Ok(Functions {
            create_container: start_with::<table::CreateContainer>(clients, lookup).await.map_err(refused(Function::CreateContainer))?,
            poll_status: start_with::<table::PollStatus>(clients, lookup).await.map_err(refused(Function::PollStatus))?,
            publish: start_with::<table::Publish>(clients, lookup).await.map_err(refused(Function::Publish))?,
            refresh_tokens: start_with::<table::RefreshTokens>(clients, lookup).await.map_err(refused(Function::RefreshTokens))?,
            notify: start_with::<table::Notify>(clients, lookup).await.map_err(refused(Function::Notify))?,
            sweep: start_with::<table::Sweep>(clients, lookup).await.map_err(refused(Function::Sweep))?,
            usage: Mutex::new(HashMap::new()),
            started: Mutex::new(HashMap::new()),
            kills: Kills::off(),
        })
    }

    /// Runs the function like Lambda would: deserialize, handle, serialize. An error is what
    /// the runtime would report as a failed invocation.
    pub async fn invoke(&self, function: Function, payload: Value) -> Result<Value, String> {
        *self.started.lock().unwrap().entry(function).or_default() += 1;
        let started = Instant::now();
        // Lambda ends an invocation at the function's Timeout and the event source retries it;
        // an invocation that never returned would otherwise be lost here.
        let result = match self.kills.decide(function.name()) {
            // Dropping the handler's future stops it wherever it is, between two calls, as a
            // timeout or out-of-memory ends the process; had it already finished, its answer
            // is lost all the same. Either way the event source sees a failed invocation.
            Some(at) => {
                let _ = tokio::time::timeout(at, self.run(function, payload)).await;
                Err(format!("{} killed after {} ms (injected: INSTAPIPE_KILL_RATE)", function.name(), at.as_millis()))
            }
            None => match tokio::time::timeout(function.timeout(), self.run(function, payload)).await {
                Ok(result) => result,
                Err(_) => Err(format!("{} timed out after {} s", function.name(), function.timeout().as_secs())),
            },
        };
        let mut usage = self.usage.lock().unwrap();
        let entry = usage.entry(function).or_default();
        entry.invocations += 1;
        entry.errors += u64::from(result.is_err());
        entry.busy += started.elapsed();
        result
    }

    async fn run(&self, function: Function, payload: Value) -> Result<Value, String> {
        match function {
            Function::CreateContainer => invoke::<table::CreateContainer>(&self.create_container, payload).await,
            Function::PollStatus => invoke::<table::PollStatus>(&self.poll_status, payload).await,
            Function::Publish => invoke::<table::Publish>(&self.publish, payload).await,
            Function::RefreshTokens => invoke::<table::RefreshTokens>(&self.refresh_tokens, payload).await,
            Function::Notify => invoke::<table::Notify>(&self.notify, payload).await,
            Function::Sweep => invoke::<table::Sweep>(&self.sweep, payload).await,
        }
    }

    /// Which invocations are killed mid-handler (`INSTAPIPE_KILL_RATE`); settable while running.
    pub fn kills(&self) -> &Kills {
        &self.kills
    }

    /// The pipeline's dependencies, for operator actions the local stack performs itself.
    pub fn pipeline(&self) -> &Pipeline {
        &self.create_container
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
