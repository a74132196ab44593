//! The local stack: plays the part of the AWS event sources around the real handlers.
//! DynamoDB Local and moto run as child processes; this crate serves ingest-webhook over HTTP,
//! reads the table's stream and delivers the same DynamoDB event records (through the same
//! filters as template.yaml), and fires due Scheduler schedules by delivering their input.
//! Nothing here is a second implementation of the product.

pub mod fault_proxy;
pub mod filter;
pub mod functions;
pub mod http_server;
pub mod invoke_api;
pub mod lambda;
pub mod schedules;
pub mod services;
pub mod settings;
pub mod sources;
pub mod stack;
pub mod stream;

pub use stack::LocalStack;
