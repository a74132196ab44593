//! ingest-webhook: see `instapipe_core::functions::IngestWebhook`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    instapipe_core::functions::run_http::<instapipe_core::functions::IngestWebhook>().await
}
