//! Parsing a source's JSON body into its payload type, with errors that name the field.

use serde::de::DeserializeOwned;

use super::RequestError;

/// The body as JSON, or `400 invalid_body` when it is not JSON at all (or has trailing data).
pub fn parse_value(body: &[u8]) -> Result<serde_json::Value, RequestError> {
    serde_json::from_slice(body).map_err(|e| RequestError::new(400, "invalid_body", format!("body is not valid JSON: {e}")))
}

/// `400 invalid_body`, with the field path (`data.id`) when the JSON is valid but the field is
/// not. Syntax is checked first, so that every later error is about a field and names it
/// (serde_json alone reports a wrong-typed enum as a syntax error, without its path).
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, RequestError> {
    let value = parse_value(body)?;
    if !value.is_object() {
        return Err(RequestError::new(400, "invalid_body", "the body must be a JSON object"));
    }
    from_value(value, "")
}

/// The same for a value already parsed (EventBridge events arrive as JSON values); `prefix`
/// is where the value sits in the event (`detail`), empty for a whole body.
pub fn from_value<T: DeserializeOwned>(value: serde_json::Value, prefix: &str) -> Result<T, RequestError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        let field = match (prefix.is_empty(), path == ".") {
            (true, true) => return RequestError::new(400, "invalid_body", message),
            (true, false) => path,
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}.{path}"),
        };
        RequestError::field(400, "invalid_body", field, message)
    })
}
