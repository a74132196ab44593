//! The AWS SDK's HTTP client: the same reqwest (HTTP/1.1, rustls) the functions use for the Graph
//! API, instead of the SDK's own hyper client. One HTTP/TLS stack in the bootstrap, and no HTTP/2
//! code (DynamoDB, Scheduler and Secrets Manager calls are small JSON requests; issue 14).

use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

/// The HTTP client for every AWS SDK client. The connect timeout is set here; the SDK enforces
/// the attempt and operation timeouts itself.
pub fn client(connect_timeout: Duration) -> SharedHttpClient {
    let http = crate::https::client_builder()
        .connect_timeout(connect_timeout)
        // The SDK sends a request again itself, after its own backoff; an idle connection the
        // service closed is retried by the SDK as an I/O error.
        .pool_idle_timeout(Duration::from_secs(20))
        .build()
        .expect("the TLS configuration is valid");
    SharedHttpClient::new(Reqwest(http))
}

#[derive(Clone, Debug)]
struct Reqwest(reqwest::Client);

impl HttpClient for Reqwest {
    fn http_connector(&self, _settings: &HttpConnectorSettings, _components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

impl HttpConnector for Reqwest {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let http = self.0.clone();
        HttpConnectorFuture::new(async move {
            let request = request.try_into_http1x().map_err(|e| ConnectorError::user(e.into()))?;
            let (parts, body) = request.into_parts();
            // Every call instapipe makes has its body in memory; a streaming body would be a bug.
            let body = body
                .bytes()
                .map(bytes::Bytes::copy_from_slice)
                .ok_or_else(|| ConnectorError::user("streaming request bodies are not supported".into()))?;
            let request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
                .map_err(|e| ConnectorError::user(e.into()))?;
            let response = http.execute(request).await.map_err(connector_error)?;
            let mut answer = http::Response::builder().status(response.status());
            if let Some(headers) = answer.headers_mut() {
                *headers = response.headers().clone();
            }
            // Read whole here, where a failure is a retryable I/O error; handed over as a body
            // whose Debug output is not its content (the SDK logs responses at debug, and
            // Secrets Manager's hold the tokens).
            let body = response.bytes().await.map_err(connector_error)?;
            let answer = answer
                .body(SdkBody::from_body_1_x(http_body_util::Full::new(body)))
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            HttpResponse::try_from(answer).map_err(|e| ConnectorError::other(e.into(), None))
        })
    }
}

/// Timeouts and I/O failures are transient (the SDK's retry strategy sends the request again);
/// anything else is not.
fn connector_error(err: reqwest::Error) -> ConnectorError {
    if err.is_timeout() {
        ConnectorError::timeout(err.into())
    } else if err.is_connect() || err.is_request() || err.is_body() || err.is_decode() {
        ConnectorError::io(err.into())
    } else {
        ConnectorError::other(err.into(), None)
    }
}
