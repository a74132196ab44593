//! poll-status: fired by `poll-…` schedules.

use instapipe_core::config::Config;
use instapipe_core::deps::{AwsClients, Pipeline};
use instapipe_core::handlers::poll_status;
use instapipe_core::scheduler::PollInput;
use instapipe_core::telemetry;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let deps = Pipeline::new(&AwsClients::from_env().await, &config)?;
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<PollInput>| async move {
        poll_status::handle(deps, event.payload).await?;
        Ok::<_, Error>(serde_json::json!({}))
    }))
    .await
}
