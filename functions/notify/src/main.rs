//! notify: DynamoDB stream batches (destinations that became PUBLISHED or FAILED).

use instapipe_core::config::Config;
use instapipe_core::deps::{AwsClients, Notify};
use instapipe_core::handlers::notify::{self, StreamEvent};
use instapipe_core::telemetry;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let deps = Notify::new(&AwsClients::from_env().await, &config).await?;
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<StreamEvent>| async move {
        Ok::<_, Error>(notify::handle(deps, event.payload).await)
    }))
    .await
}
