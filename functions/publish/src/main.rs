//! publish: DynamoDB stream batches of READY destinations.

use instapipe_core::config::Config;
use instapipe_core::deps::{AwsClients, Pipeline};
use instapipe_core::handlers::publish;
use instapipe_core::telemetry;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let deps = Pipeline::new(&AwsClients::from_env().await, &config)?;
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<instapipe_core::handlers::publish::StreamEvent>| async move {
        Ok::<_, Error>(publish::handle(deps, event.payload).await)
    }))
    .await
}
