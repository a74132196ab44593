//! ingest-event: EventBridge `Publish Requested` events and EventBridge Scheduler inputs.

use instapipe_core::config::Config;
use instapipe_core::deps::{AwsClients, Ingest};
use instapipe_core::handlers::ingest_event;
use instapipe_core::telemetry;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let deps = Ingest::new(&AwsClients::from_env().await, &config).await?;
    let deps = &deps;
    // A refused event is a failed invocation (its error names the field): the rule's or the
    // schedule's dead-letter queue keeps it.
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        ingest_event::handle(deps, event.payload).await.map_err(|e| Error::from(format!("{e} (field: {})", e.field.as_deref().unwrap_or("-"))))
    }))
    .await
}
