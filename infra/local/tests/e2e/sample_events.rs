//! infra/events/*.json are what `cargo lambda invoke --data-file` sends: each must parse as the
//! input its function's bin takes.

use aws_lambda_events::event::dynamodb::Event;
use instapipe_core::handlers::create_container::CreateContainerEvent;
use instapipe_core::handlers::refresh_tokens::RefreshEvent;
use instapipe_core::scheduler::PollInput;
use instapipe_local::filter;
use instapipe_core::stream_filters;

fn read(name: &str) -> String {
    std::fs::read_to_string(format!("{}/../events/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Parses a stream sample and checks its record passes the function's own filter.
fn stream_sample(name: &str, patterns: &[&str]) {
    let text = read(name);
    let event: Event = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(event.records.len(), 1);
    let record: serde_json::Value = serde_json::from_str::<serde_json::Value>(&text).unwrap()["Records"][0].clone();
    let accepted = patterns.iter().any(|p| filter::matches(&serde_json::from_str(p).unwrap(), &record));
    assert!(accepted, "{name} would be filtered out before reaching its function");
}

#[test]
fn every_sample_event_is_its_functions_input() {
    stream_sample("create-container-stream.json", &stream_filters::CREATE_CONTAINER);
    stream_sample("publish.json", &stream_filters::PUBLISH);
    stream_sample("notify.json", &stream_filters::NOTIFY);
    assert!(matches!(serde_json::from_str::<CreateContainerEvent>(&read("create-container-start.json")).unwrap(), CreateContainerEvent::Start(_)));
    serde_json::from_str::<PollInput>(&read("poll-status.json")).unwrap();
    let all: RefreshEvent = serde_json::from_str(&read("refresh-tokens.json")).unwrap();
    assert!(all.account_id.is_none());
    let one: RefreshEvent = serde_json::from_str(&read("refresh-tokens-one-account.json")).unwrap();
    assert!(one.force && one.account_id.is_some());
    let url: serde_json::Value = serde_json::from_str(&read("ingest-webhook.json")).unwrap();
    assert_eq!(url["rawPath"], "/webhooks/generic");
}
