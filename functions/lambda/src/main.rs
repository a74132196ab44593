//! One bootstrap for every function, built once by `make build` (one release link instead of
//! eight: most of a cold build) and copied into each function's artifact. It runs the entry of
//! the function table (`instapipe_core::functions`) that the function's `Handler` names
//! (`_HANDLER`), or else its name (`<stack>-publish` → publish; template.yaml). Each function
//! stays a Lambda function of its own, with its own role and settings.

use instapipe_core::functions::{
    CreateContainer, IngestEvent, IngestWebhook, Notify, PollStatus, Publish, RefreshTokens, Sweep, run, run_http,
};

const HANDLERS: [&str; 8] =
    ["ingest-webhook", "ingest-event", "create-container", "poll-status", "publish", "notify", "refresh-tokens", "sweep"];

/// The handler named by `handler` (Lambda's `_HANDLER`), else by the function's name.
fn chosen(handler: &str, function_name: &str) -> Option<&'static str> {
    HANDLERS.iter().copied().find(|h| *h == handler).or_else(|| {
        HANDLERS.iter().copied().find(|h| function_name == *h || function_name.ends_with(&format!("-{h}")))
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    match chosen(&var("_HANDLER"), &var("AWS_LAMBDA_FUNCTION_NAME")) {
        Some("ingest-webhook") => run_http::<IngestWebhook>().await,
        Some("ingest-event") => run::<IngestEvent>().await,
        Some("create-container") => run::<CreateContainer>().await,
        Some("poll-status") => run::<PollStatus>().await,
        Some("publish") => run::<Publish>().await,
        Some("notify") => run::<Notify>().await,
        Some("refresh-tokens") => run::<RefreshTokens>().await,
        Some("sweep") => run::<Sweep>().await,
        _ => Err(format!(
            "neither the Handler ({:?}) nor the function name ({:?}) names a handler; expected one of {}",
            var("_HANDLER"),
            var("AWS_LAMBDA_FUNCTION_NAME"),
            HANDLERS.join(", ")
        )
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::chosen;

    #[test]
    fn the_handler_setting_wins_then_the_function_name_s_suffix() {
        assert_eq!(chosen("publish", "whatever"), Some("publish"));
        assert_eq!(chosen("bootstrap", "instapipe-prod-poll-status"), Some("poll-status"));
        assert_eq!(chosen("bootstrap", "instapipe-ingest-event"), Some("ingest-event"));
        assert_eq!(chosen("bootstrap", "ingest-webhook"), Some("ingest-webhook"));
        assert_eq!(chosen("bootstrap", "instapipe-republisher"), None);
        assert_eq!(chosen("", ""), None);
    }
}
