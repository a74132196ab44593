//! One module per function, written against the ports only.

pub mod create_container;
pub mod ingest;
pub mod poll_status;
pub mod publish;
pub mod reauth;
pub mod refresh_tokens;
mod steps;
mod stream;

#[cfg(test)]
mod tests;
