//! The signed sample requests of shared/fixtures/webhooks, as the handlers receive them (tests).

use std::path::PathBuf;

use http::HeaderMap;
use lambda_http::{Body, Request};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/webhooks")
}

/// The body's exact bytes: what was signed.
pub fn body(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(format!("{name}.body.json"))).unwrap()
}

/// The headers, names as the sender spelled them (HeaderMap compares them case-insensitively).
pub fn headers(name: &str) -> HeaderMap {
    let raw: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&std::fs::read(dir().join(format!("{name}.headers.json"))).unwrap()).unwrap();
    let mut headers = HeaderMap::new();
    for (k, v) in raw {
        headers.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.as_str().unwrap().parse().unwrap());
    }
    headers
}

pub fn json(name: &str) -> serde_json::Value {
    serde_json::from_slice(&body(name)).unwrap()
}

/// `POST <path>` with the sample's headers and body.
pub fn request(name: &str, path: &str) -> Request {
    request_with(path, headers(name), body(name))
}

pub fn request_with(path: &str, headers: HeaderMap, body: Vec<u8>) -> Request {
    let mut request = http::Request::builder().method("POST").uri(path).body(Body::Binary(body)).unwrap();
    *request.headers_mut() = headers;
    request
}
