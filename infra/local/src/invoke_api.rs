//! Lambda's Invoke API (`POST /2015-03-31/functions/{FunctionName}/invocations`) for the local
//! runners, so whatever invokes functions in AWS through the SDK (the operator CLI's
//! `queues redrive`) does the same against the local stack with `AWS_ENDPOINT_URL_LAMBDA`.
//! `Event` invocations go through the runner's asynchronous invoker (Lambda's two retries, then
//! the on-failure queue); `RequestResponse` runs the handler and answers its result; `DryRun`
//! only checks the function exists. Only the functions the local runners host are known.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::lambda::AsyncInvoker;
use crate::schedules::Targets;

pub struct InvokeApi {
    pub targets: Arc<Targets>,
    pub invoker: Arc<AsyncInvoker>,
}

pub fn router(api: Arc<InvokeApi>) -> axum::Router {
    axum::Router::new().route("/2015-03-31/functions/{function}/invocations", axum::routing::post(invoke)).with_state(api)
}

/// An error as Lambda's restJson protocol spells it (the SDK reads `x-amzn-ErrorType`).
fn error(status: StatusCode, code: &str, message: String) -> Response {
    (status, [("x-amzn-ErrorType", code.to_string()), ("content-type", "application/json".to_string())], json!({ "Type": "User", "message": message }).to_string())
        .into_response()
}

async fn invoke(State(api): State<Arc<InvokeApi>>, Path(function): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    // A name, a partial ARN or a full ARN; the local functions are known by their full ARN.
    let arn = if function.starts_with("arn:") { function.clone() } else { crate::lambda::function_arn(function.trim_start_matches("instapipe-")) };
    let Some(target) = api.targets.function(&arn) else {
        return error(StatusCode::NOT_FOUND, "ResourceNotFoundException", format!("Function not found: {function}"));
    };
    let payload: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(&body) {
            Ok(payload) => payload,
            Err(e) => return error(StatusCode::BAD_REQUEST, "InvalidRequestContentException", format!("Could not parse request body into json: {e}")),
        }
    };
    let invocation_type = headers.get("x-amz-invocation-type").and_then(|v| v.to_str().ok()).unwrap_or("RequestResponse");
    match invocation_type {
        "Event" => {
            tracing::info!(function = target.name(), "asynchronous invocation through the Invoke API");
            api.invoker.invoke(target, payload);
            (StatusCode::ACCEPTED, [("x-amz-executed-version", "$LATEST")]).into_response()
        }
        "DryRun" => StatusCode::NO_CONTENT.into_response(),
        "RequestResponse" => match api.invoker.functions.invoke(target, payload).await {
            Ok(result) => (StatusCode::OK, [("x-amz-executed-version", "$LATEST")], result.to_string()).into_response(),
            Err(message) => (
                StatusCode::OK,
                [("x-amz-executed-version", "$LATEST"), ("x-amz-function-error", "Unhandled")],
                json!({ "errorMessage": message, "errorType": "Runtime.Error" }).to_string(),
            )
                .into_response(),
        },
        other => error(StatusCode::BAD_REQUEST, "InvalidParameterValueException", format!("X-Amz-Invocation-Type {other:?} is not Event, RequestResponse or DryRun")),
    }
}
