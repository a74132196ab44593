//! Parsing a source's JSON body into its payload type, with errors that name the field.

use serde::de::DeserializeOwned;

use super::RequestError;

/// `400 invalid_body`, with the field path (`data.id`) when the JSON is valid but the field is not.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, RequestError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let field = err.path().to_string();
        let inner = err.into_inner();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                RequestError::new(400, "invalid_body", format!("body is not valid JSON: {inner}"))
            }
            _ if field == "." => RequestError::new(400, "invalid_body", inner.to_string()),
            _ => RequestError::field(400, "invalid_body", field, inner.to_string()),
        }
    })?;
    de.end().map_err(|e| RequestError::new(400, "invalid_body", format!("trailing data after the JSON object: {e}")))?;
    Ok(value)
}

/// The same for a value already parsed (EventBridge events arrive as JSON values); `prefix`
/// is where the value sits in the event (`detail`).
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value, prefix: &str) -> Result<T, RequestError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let field = if path == "." { prefix.to_string() } else { format!("{prefix}.{path}") };
        RequestError::field(400, "invalid_body", field, err.into_inner().to_string())
    })
}
