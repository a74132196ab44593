//! Tracing set-up: JSON lines in Lambda (CloudWatch parses them), readable text elsewhere.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let result = if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
        // Lambda adds its own timestamps; the span fields carry post id and state.
        builder.json().with_current_span(true).with_span_list(false).without_time().try_init()
    } else {
        builder.compact().try_init()
    };
    // A second init (tests, the local stack hosting several handlers) keeps the first subscriber.
    let _ = result;
}
