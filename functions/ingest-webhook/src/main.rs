//! ingest-webhook: `POST /webhooks/generic` behind a Lambda Function URL.

use instapipe_core::config::Config;
use instapipe_core::deps::{AwsClients, Ingest};
use instapipe_core::{handlers, telemetry};
use lambda_http::{Error, Request, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let deps = Ingest::new(&AwsClients::from_env().await, &config).await?;
    let deps = &deps;
    run(service_fn(move |request: Request| async move {
        Ok::<_, Error>(handlers::ingest::handle(deps, request).await)
    }))
    .await
}
