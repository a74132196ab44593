//! sweep: see `instapipe_core::functions::Sweep`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    instapipe_core::functions::run::<instapipe_core::functions::Sweep>().await
}
