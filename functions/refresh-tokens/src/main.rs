//! refresh-tokens: see `instapipe_core::functions::RefreshTokens`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    instapipe_core::functions::run::<instapipe_core::functions::RefreshTokens>().await
}
