//! Serves ingest-webhook on a local port: each HTTP request becomes the `lambda_http::Request`
//! a Function URL would give the function, handed to the function table's handler.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use instapipe_core::deps::Ingest;
use instapipe_core::functions::{Function, IngestWebhook};
use instapipe_core::handlers::edge::MAX_BODY_BYTES;

pub fn router(ingest: Arc<Ingest>) -> axum::Router {
    axum::Router::new().fallback(serve).with_state(ingest)
}

async fn serve(State(ingest): State<Arc<Ingest>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    // One byte over the limit is enough for the handler to answer 413.
    let bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES + 1).await {
        Ok(bytes) => bytes.to_vec(),
        // Over the limit: hand the handler a body of limit + 1 bytes, so its 413 answers.
        Err(_) => vec![0u8; MAX_BODY_BYTES + 1],
    };
    let request = lambda_http::Request::from_parts(parts, lambda_http::Body::Binary(bytes));
    let Ok(response) = IngestWebhook::handle(&ingest, request).await;
    let (parts, body) = response.into_parts();
    Response::from_parts(parts, Body::from(body.as_ref().to_vec()))
}
