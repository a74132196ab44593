//! One module per function, written against the ports only.

pub mod accept;
pub mod create_container;
pub mod edge;
pub mod ingest;
pub mod ingest_event;
pub mod notify;
pub mod oauth_routes;
pub mod poll_status;
pub mod posts_api;
pub mod publish;
pub mod reauth;
pub mod source_webhooks;
pub mod refresh_tokens;
pub mod sweep;
mod steps;
mod stream;

#[cfg(test)]
mod route_tests;
#[cfg(test)]
mod source_tests;
#[cfg(test)]
mod tests;
