//! Reading requests and writing answers of the posts API: body limits, content type, JSON with
//! the offending field named, query parameters, and JSON responses.

use http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::handlers::ingest::MAX_BODY_BYTES;
use crate::sources::RequestError;

/// The body of a POST or PATCH: at most [`MAX_BODY_BYTES`], declared as JSON.
pub fn json_body(request: &Request) -> Result<&[u8], RequestError> {
    let body: &[u8] = request.body().as_ref();
    if body.len() > MAX_BODY_BYTES {
        return Err(RequestError::new(413, "body_too_large", format!("the body exceeds {MAX_BODY_BYTES} bytes")));
    }
    let content_type = request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media_type = content_type.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return Err(RequestError::new(
            415,
            "unsupported_media_type",
            "send the body as JSON with the header Content-Type: application/json",
        ));
    }
    Ok(body)
}

/// Parses JSON into `T`; a malformed body or a wrong type is a 400 naming the field.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, RequestError> {
    crate::sources::json::parse(body)
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

pub fn json<T: Serialize>(status: u16, value: &T) -> Response<Body> {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".into());
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::Text(body))
        .expect("static parts are valid")
}

pub fn error(err: &RequestError) -> Response<Body> {
    let mut response = json(err.status, &err.to_json());
    if err.status == 401 {
        response.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
    }
    response
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
}
