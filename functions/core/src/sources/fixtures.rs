//! The signed sample requests of instapipe-test-support, as the handlers receive them (tests).

use http::HeaderMap;
use instapipe_test_support::samples;
use lambda_http::{Body, Request};

pub use instapipe_test_support::samples::{body, json};

/// The headers, names as the sender spelled them (HeaderMap compares them case-insensitively).
pub fn headers(name: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (k, v) in samples::headers(name) {
        headers.insert(http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
    }
    headers
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
