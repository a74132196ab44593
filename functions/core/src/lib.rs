//! instapipe core: domain types, ports (traits) and their adapters, and the handlers that the
//! Lambda entry points and the local stack both run.

pub mod account;
pub mod aws_http;
pub mod clock;
pub mod config;
pub mod deps;
pub mod error;
pub mod functions;
pub mod graph;
pub mod handlers;
pub mod https;
pub mod intake;
pub mod media_check;
pub mod metrics;
pub mod oauth;
pub mod polling;
pub mod post;
pub mod route_secrets;
pub mod routing;
pub mod scheduler;
pub mod secrets;
pub mod status_webhooks;
pub mod sources;
pub mod store;
pub mod stream_filters;
pub mod telemetry;
pub mod tokens;

pub use error::{Error, Result};
