//! hello-world: a `lambda_runtime` bootstrap that answers each event with itself. `make build`
//! builds it in the same cargo invocation as the real bootstrap (same features, same release
//! profile), so `make bench` can print what the runtime alone costs in size, init and memory
//! beside each function's figures. It is not a function of template.yaml and is never deployed.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move { Ok::<Value, lambda_runtime::Error>(event.payload) })).await
}
