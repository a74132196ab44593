//! ingest-event: see `instapipe_core::functions::IngestEvent`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    instapipe_core::functions::run::<instapipe_core::functions::IngestEvent>().await
}
