//! The HTTP edge of ingest-webhook, the same for every route (webhooks and posts API): the body
//! limit (413), content types (415), query parameters (400) and JSON answers, errors included.

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use crate::sources::RequestError;

/// Larger bodies are refused with 413 before any parsing.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The raw body, at most [`MAX_BODY_BYTES`] (413 otherwise).
pub fn body(request: &Request) -> Result<&[u8], RequestError> {
    let body: &[u8] = request.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return Err(RequestError::new(413, "body_too_large", format!("the body exceeds {MAX_BODY_BYTES} bytes")));
    }
    Ok(body)
}

/// The declared media type, lower case, without parameters such as charset ("" when none).
fn media_type(request: &Request) -> String {
    let value = request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    value.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
}

/// A webhook's content type: `415 unsupported_media_type` naming `content-type` unless the
/// media type is one of `allowed`.
pub fn content_type(request: &Request, allowed: &[&str]) -> Result<(), RequestError> {
    let media_type = media_type(request);
    if allowed.contains(&media_type.as_str()) {
        return Ok(());
    }
    let got = if media_type.is_empty() { "none".to_string() } else { media_type };
    Err(RequestError::field(415, "unsupported_media_type", "content-type", format!("expected {}, got {got}", allowed.join(" or "))))
}

/// The posts API's body of a POST or PATCH: within the limit, declared as JSON.
pub fn json_body(request: &Request) -> Result<&[u8], RequestError> {
    let body = body(request)?;
    if media_type(request) != "application/json" {
        return Err(RequestError::new(
            415,
            "unsupported_media_type",
            "send the body as JSON with the header Content-Type: application/json",
        ));
    }
    Ok(body)
}

/// The query string's parameters, decoded; unknown or repeated ones are refused so a typo
/// (`?status=`) does not silently list everything.
pub fn query_params(request: &Request, known: &[&str]) -> Result<Vec<(String, String)>, RequestError> {
    let query = request.uri().query().unwrap_or("");
    let mut params: Vec<(String, String)> = Vec::new();
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        if !known.contains(&name.as_ref()) {
            return Err(RequestError::field(
                400,
                "invalid_query",
                name.to_string(),
                format!("unknown query parameter; known ones are {}", known.join(", ")),
            ));
        }
        if params.iter().any(|(n, _)| *n == name) {
            return Err(RequestError::field(400, "invalid_query", name.to_string(), "given more than once"));
        }
        params.push((name.into_owned(), value.into_owned()));
    }
    Ok(params)
}

/// The `Allow` header of a 405 answer (RFC 9110 requires it): the methods the path serves.
pub fn allow(response: &mut Response<Body>, methods: &[&str]) {
    if let Ok(value) = http::HeaderValue::from_str(&methods.join(", ")) {
        response.headers_mut().insert(http::header::ALLOW, value);
    }
}

/// `value` as a JSON answer with `status`.
pub fn json<T: Serialize>(status: u16, value: &T) -> Response<Body> {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".into());
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::Text(body))
        .expect("static parts are valid")
}

/// A refused request: its status and `{"error": {"code", "field", "message"}}`, logged once.
pub fn error(err: &RequestError) -> Response<Body> {
    tracing::info!(status = err.status, code = err.code, field = ?err.field, message = %err.message, "request refused");
    json(err.status, &err.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, content_type: Option<&str>, body: &[u8]) -> Request {
        let mut builder = http::Request::builder().method("POST").uri(uri);
        if let Some(ct) = content_type {
            builder = builder.header("content-type", ct);
        }
        builder.body(Body::Binary(body.to_vec())).unwrap()
    }

    #[test]
    fn only_json_bodies_within_the_limit_are_read() {
        assert!(json_body(&request("/posts", Some("application/json"), b"{}")).is_ok());
        assert!(json_body(&request("/posts", Some("Application/JSON; charset=utf-8"), b"{}")).is_ok());
        assert_eq!(json_body(&request("/posts", Some("text/plain"), b"{}")).unwrap_err().status, 415);
        assert_eq!(json_body(&request("/posts", None, b"{}")).unwrap_err().status, 415);
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(json_body(&request("/posts", Some("application/json"), &big)).unwrap_err().status, 413);
        assert_eq!(body(&request("/webhooks/generic", None, &big)).unwrap_err().code, "body_too_large");
        assert!(body(&request("/webhooks/generic", None, &big[..MAX_BODY_BYTES])).is_ok());
    }

    #[test]
    fn a_webhook_content_type_is_one_of_the_allowed_and_the_refusal_names_it() {
        let allowed = ["application/vnd.contentful.management.v1+json", "application/json"];
        assert!(content_type(&request("/", Some("application/json; charset=utf-8"), b""), &allowed).is_ok());
        assert!(content_type(&request("/", Some("Application/Vnd.Contentful.Management.v1+JSON"), b""), &allowed).is_ok());
        let err = content_type(&request("/", Some("text/plain"), b""), &allowed).unwrap_err();
        assert_eq!((err.status, err.field.as_deref()), (415, Some("content-type")));
        assert!(err.message.ends_with("got text/plain"), "{}", err.message);
        let err = content_type(&request("/", None, b""), &allowed).unwrap_err();
        assert!(err.message.ends_with("got none"), "{}", err.message);
    }

    #[test]
    fn query_parameters_are_decoded_and_typos_refused() {
        let params = query_params(&request("/posts?state=PUBLISHED&cursor=a%2Bb", None, b""), &["state", "cursor"]).unwrap();
        assert_eq!(params, [("state".into(), "PUBLISHED".into()), ("cursor".into(), "a+b".into())]);
        let err = query_params(&request("/posts?status=x", None, b""), &["state"]).unwrap_err();
        assert_eq!((err.status, err.field.as_deref()), (400, Some("status")));
        let err = query_params(&request("/posts?state=a&state=b", None, b""), &["state"]).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("state"));
    }

    #[test]
    fn errors_are_json_with_their_status() {
        let response = error(&RequestError::field(422, "unknown_account", "accounts[1]", "not registered"));
        assert_eq!(response.status(), 422);
        assert_eq!(response.headers()[http::header::CONTENT_TYPE], "application/json");
        let body: serde_json::Value = serde_json::from_slice(response.body().as_ref()).unwrap();
        assert_eq!(body["error"]["field"], "accounts[1]");
        assert_eq!(body["error"]["code"], "unknown_account");
    }
}
