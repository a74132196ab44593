//! poll-status: see `instapipe_core::functions::PollStatus`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    instapipe_core::functions::run::<instapipe_core::functions::PollStatus>().await
}
