//! The end-to-end tests on the local stack, as one test binary: on a small machine linking
//! dominates a rebuild, and one binary links once where one per file linked eight times.

mod common;

mod api_keys;
mod cli;
mod cli_output;
mod graph_calls;
mod lambda_semantics;
mod media;
mod oauth;
mod operations;
mod pipeline;
mod posts_api;
mod routes;
mod queues;
mod sample_events;
mod secret_hygiene;
mod sources;
mod stack_lifecycle;
