//! refresh-tokens: the daily schedule (`{}`), or on demand (`{"account_id": "...", "force": true}`).

use instapipe_core::config::Config;
use instapipe_core::deps::{AwsClients, TokenRefresh};
use instapipe_core::handlers::refresh_tokens::{self, RefreshEvent};
use instapipe_core::telemetry;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init();
    let config = Config::from_env()?;
    let deps = TokenRefresh::new(&AwsClients::from_env().await, &config)?;
    let deps = &deps;
    run(service_fn(move |event: LambdaEvent<RefreshEvent>| async move {
        Ok::<_, Error>(refresh_tokens::handle(deps, event.payload).await?)
    }))
    .await
}
