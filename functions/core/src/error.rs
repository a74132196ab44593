//! The one error type of the core. Adapters turn SDK errors into it; handlers decide per variant
//! whether to stop quietly, record a failure on the post, or ask the event source to retry.

use crate::graph::GraphError;
use crate::post::PostError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration variable is missing or malformed.
    #[error("configuration: {0}")]
    Config(String),
    /// A conditional write lost a race: someone else moved the item first.
    #[error("conditional write lost: {0}")]
    Conflict(String),
    /// A state change that the post's state machine does not allow.
    #[error(transparent)]
    Post(#[from] PostError),
    #[error("not found: {0}")]
    NotFound(String),
    /// DynamoDB, Scheduler or Secrets Manager failed (already rendered without secrets).
    #[error("{service}: {message}")]
    Aws { service: &'static str, message: String },
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("item does not match the data model: {0}")]
    Data(String),
    /// The step cannot finish yet and should run again later (the event source retries it).
    #[error("not finished yet: {0}")]
    Retry(String),
}

impl Error {
    pub fn aws(service: &'static str, err: impl std::error::Error) -> Self {
        // DisplayErrorContext-like rendering: the SDK's Display alone says only "service error".
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        Error::Aws { service, message }
    }
}

impl From<serde_dynamo::Error> for Error {
    fn from(err: serde_dynamo::Error) -> Self {
        Error::Data(err.to_string())
    }
}
