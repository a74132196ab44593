//! The commands, one module per group. Each takes a [`Ctx`] and writes its report to `out`.

pub mod accounts;
pub mod connect;
pub mod import;
pub mod keys;
pub mod mcp;
pub mod posts;
pub mod routes;
pub mod queues;

use std::sync::Arc;

use instapipe_core::config::Config;
use instapipe_core::deps::{AwsClients, Ingest, Pipeline, TokenRefresh};
use instapipe_core::sources::RequestError;
use instapipe_core::store::{DynamoStore, PostStore};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// What a command failed with, in words for the operator (never a token).
#[derive(Debug)]
pub struct CliError(pub String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

impl From<instapipe_core::Error> for CliError {
    fn from(err: instapipe_core::Error) -> CliError {
        CliError(err.to_string())
    }
}

impl From<RequestError> for CliError {
    fn from(err: RequestError) -> CliError {
        match err.field {
            Some(field) => CliError(format!("{field}: {}", err.message)),
            None => CliError(err.message),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(err: std::io::Error) -> CliError {
        CliError(format!("cannot write the output: {err}"))
    }
}

pub type Result<T> = std::result::Result<T, CliError>;

/// Where the commands work: the AWS clients and the functions' configuration. The functions'
/// dependencies are built on demand, so a command needs only the secrets it uses.
#[derive(Clone)]
pub struct Ctx {
    pub clients: AwsClients,
    pub config: Config,
    store: Arc<DynamoStore>,
}

impl Ctx {
    pub fn new(clients: AwsClients, config: Config) -> Ctx {
        let store = Arc::new(DynamoStore::new(clients.dynamodb.clone(), config.table_name()));
        Ctx { clients, config, store }
    }

    pub fn store(&self) -> Arc<dyn PostStore> {
        self.store.clone()
    }

    pub fn accounts(&self) -> Arc<DynamoStore> {
        self.store.clone()
    }

    pub fn pipeline(&self) -> Result<Pipeline> {
        Ok(Pipeline::new(&self.clients, &self.config.pipeline)?)
    }

    /// Reads the webhook signing secrets, as ingest-webhook does at start-up.
    pub async fn ingest(&self) -> Result<Ingest> {
        Ok(Ingest::new(&self.clients, &self.config.ingest).await?)
    }

    pub fn token_refresh(&self) -> Result<TokenRefresh> {
        Ok(TokenRefresh::new(&self.clients, &self.config.token_refresh)?)
    }
}

/// RFC 3339 in UTC, to the second.
pub fn when(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(at);
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

pub fn when_opt(at: Option<OffsetDateTime>) -> String {
    at.map_or_else(|| "-".to_string(), when)
}
