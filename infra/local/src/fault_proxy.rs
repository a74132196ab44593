//! A seeded fault proxy in front of DynamoDB Local and moto: AWS failing the way AWS fails, so
//! the real SDK's retries (standard mode, 3 attempts) are what the handlers live with.
//!
//! Every request is decided once, before anything is forwarded: answered with a throttling
//! error or an internal error in the calling protocol's shape (awsJson for DynamoDB, Secrets
//! Manager and SQS, restJson for Scheduler), held back by `slow_by` and then forwarded (even if
//! the caller stopped waiting), or forwarded at once. A forwarded request's answer is streamed back untouched: a fault never
//! cuts a response in half. moto's own control API (`/moto-api/…`) is never faulted.
//!
//! The proxy also watches what the SDK did with each fault: the SDK tags every attempt with the
//! operation's `amz-sdk-invocation-id`, so an attempt that comes back after a fault shows the
//! fault was retried, and an operation whose last attempt got a fault is one the caller saw.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinHandle;

/// How often, and how, the AWS services fail. Rates are shares of requests (0–1); throttles and
/// errors exclude each other, so `throttle_rate + error_rate` is at most 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AwsFaults {
    /// Answered as the service answers when it throttles (HTTP 400 `ThrottlingException` in
    /// awsJson, 429 in restJson).
    pub throttle_rate: f64,
    /// Answered HTTP 500 with the service's internal error.
    pub error_rate: f64,
    /// Of the requests forwarded: held back `slow_by` first. Past the SDK's attempt timeout
    /// (5 s, `deps::aws_timeouts`) the SDK gives up on the attempt and tries again, while the
    /// held request still reaches the service: a write that lands with its answer lost.
    pub slow_rate: f64,
    pub slow_by: Duration,
    pub seed: u64,
}

impl Default for AwsFaults {
    fn default() -> Self {
        AwsFaults::off()
    }
}

impl AwsFaults {
    pub fn off() -> AwsFaults {
        AwsFaults { throttle_rate: 0.0, error_rate: 0.0, slow_rate: 0.0, slow_by: Duration::from_millis(500), seed: 1 }
    }

    pub fn is_on(&self) -> bool {
        self.throttle_rate > 0.0 || self.error_rate > 0.0 || self.slow_rate > 0.0
    }

    /// `INSTAPIPE_AWS_THROTTLE_RATE`, `INSTAPIPE_AWS_ERROR_RATE`, `INSTAPIPE_AWS_SLOW_RATE` (0),
    /// `INSTAPIPE_AWS_SLOW_MS` (500) and `INSTAPIPE_AWS_FAULT_SEED` (1).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<AwsFaults, String> {
        let get = |name: &str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let rate = |name: &str| -> Result<f64, String> {
            get(name).map_or(Ok(0.0), |v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| format!("{name} must be a number between 0 and 1, got {v:?}"))
            })
        };
        let int = |name: &str, default: u64| -> Result<u64, String> {
            get(name).map_or(Ok(default), |v| v.parse().map_err(|_| format!("{name} must be a non-negative integer, got {v:?}")))
        };
        let faults = AwsFaults {
            throttle_rate: rate("INSTAPIPE_AWS_THROTTLE_RATE")?,
            error_rate: rate("INSTAPIPE_AWS_ERROR_RATE")?,
            slow_rate: rate("INSTAPIPE_AWS_SLOW_RATE")?,
            slow_by: Duration::from_millis(int("INSTAPIPE_AWS_SLOW_MS", 500)?),
            seed: int("INSTAPIPE_AWS_FAULT_SEED", 1)?,
        };
        if faults.throttle_rate + faults.error_rate > 1.0 {
            return Err("INSTAPIPE_AWS_THROTTLE_RATE + INSTAPIPE_AWS_ERROR_RATE must be at most 1".into());
        }
        Ok(faults)
    }

    pub fn from_env() -> Result<AwsFaults, String> {
        AwsFaults::from_lookup(|name| std::env::var(name).ok())
    }

    /// The same faults on another seed, so each proxy draws its own sequence.
    pub fn lane(self, lane: u64) -> AwsFaults {
        AwsFaults { seed: self.seed.wrapping_mul(2).wrapping_add(lane), ..self }
    }
}

/// What a proxy did, and what the SDK did after a fault. Read it when the callers are quiet:
/// an operation waiting out its backoff still counts as surfaced until its next attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub requests: u64,
    pub forwarded: u64,
    pub throttled: u64,
    pub errored: u64,
    pub slowed: u64,
    /// Faulted (or slowed) attempts the SDK tried again: absorbed unless the last one failed too.
    pub retried_throttles: u64,
    pub retried_errors: u64,
    pub retried_slow: u64,
    /// Operations whose last attempt got the fault: the caller got the error.
    pub surfaced_throttles: u64,
    pub surfaced_errors: u64,
    /// Requests the target did not answer (answered 502).
    pub unreachable: u64,
}

impl std::ops::Add for FaultCounts {
    type Output = FaultCounts;
    fn add(self, o: FaultCounts) -> FaultCounts {
        FaultCounts {
            requests: self.requests + o.requests,
            forwarded: self.forwarded + o.forwarded,
            throttled: self.throttled + o.throttled,
            errored: self.errored + o.errored,
            slowed: self.slowed + o.slowed,
            retried_throttles: self.retried_throttles + o.retried_throttles,
            retried_errors: self.retried_errors + o.retried_errors,
            retried_slow: self.retried_slow + o.retried_slow,
            surfaced_throttles: self.surfaced_throttles + o.surfaced_throttles,
            surfaced_errors: self.surfaced_errors + o.surfaced_errors,
            unreachable: self.unreachable + o.unreachable,
        }
    }
}

impl std::fmt::Display for FaultCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests: {} throttled ({} retried, {} surfaced), {} errors ({} retried, {} surfaced), {} slowed ({} retried)",
            self.requests,
            self.throttled,
            self.retried_throttles,
            self.surfaced_throttles,
            self.errored,
            self.retried_errors,
            self.surfaced_errors,
            self.slowed,
            self.retried_slow,
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    Throttle,
    Error,
    Slow,
    Forward,
}

struct Shared {
    target: String,
    faults: AwsFaults,
    rng: Mutex<StdRng>,
    client: reqwest::Client,
    requests: AtomicU64,
    forwarded: AtomicU64,
    throttled: AtomicU64,
    errored: AtomicU64,
    slowed: AtomicU64,
    retried_throttles: AtomicU64,
    retried_errors: AtomicU64,
    retried_slow: AtomicU64,
    unreachable: AtomicU64,
    /// The last decision per SDK operation (`amz-sdk-invocation-id`), kept only while it was a
    /// fault or a slow answer: what the next attempt of that operation, if any, follows.
    last_fault: Mutex<HashMap<String, Decision>>,
}

impl Shared {
    /// One draw for throttle-or-error (so both rates are exact), one for slow when forwarded.
    fn decide(&self) -> Decision {
        let f = &self.faults;
        if !f.is_on() {
            return Decision::Forward;
        }
        let mut rng = self.rng.lock().unwrap();
        let draw: f64 = rng.random();
        if draw < f.throttle_rate {
            Decision::Throttle
        } else if draw < f.throttle_rate + f.error_rate {
            Decision::Error
        } else if f.slow_rate > 0.0 && rng.random::<f64>() < f.slow_rate {
            Decision::Slow
        } else {
            Decision::Forward
        }
    }

    /// Notes an attempt of an SDK operation: what it follows, and what it got.
    fn track(&self, invocation: Option<&str>, decision: Decision) {
        let Some(id) = invocation else { return };
        let mut last = self.last_fault.lock().unwrap();
        let previous = if decision == Decision::Forward { last.remove(id) } else { last.insert(id.to_string(), decision) };
        match previous {
            Some(Decision::Throttle) => self.retried_throttles.fetch_add(1, Ordering::Relaxed),
            Some(Decision::Error) => self.retried_errors.fetch_add(1, Ordering::Relaxed),
            Some(Decision::Slow) => self.retried_slow.fetch_add(1, Ordering::Relaxed),
            Some(Decision::Forward) | None => 0,
        };
    }

    fn counts(&self) -> FaultCounts {
        let last = self.last_fault.lock().unwrap();
        let surfaced = |kind| last.values().filter(|d| **d == kind).count() as u64;
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        FaultCounts {
            requests: get(&self.requests),
            forwarded: get(&self.forwarded),
            throttled: get(&self.throttled),
            errored: get(&self.errored),
            slowed: get(&self.slowed),
            retried_throttles: get(&self.retried_throttles),
            retried_errors: get(&self.retried_errors),
            retried_slow: get(&self.retried_slow),
            surfaced_throttles: surfaced(Decision::Throttle),
            surfaced_errors: surfaced(Decision::Error),
            unreachable: get(&self.unreachable),
        }
    }
}

/// A running proxy; dropping it stops it.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `target` (`http://host:port`).
    pub async fn start(target: &str, faults: AwsFaults) -> Result<(SocketAddr, FaultProxy), String> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot build the fault proxy's client: {e}"))?;
        let shared = Arc::new(Shared {
            target: target.trim_end_matches('/').to_string(),
            faults,
            rng: Mutex::new(StdRng::seed_from_u64(faults.seed)),
            client,
            requests: AtomicU64::new(0),
            forwarded: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            errored: AtomicU64::new(0),
            slowed: AtomicU64::new(0),
            retried_throttles: AtomicU64::new(0),
            retried_errors: AtomicU64::new(0),
            retried_slow: AtomicU64::new(0),
            unreachable: AtomicU64::new(0),
            last_fault: Mutex::new(HashMap::new()),
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| format!("the fault proxy cannot listen: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let router = axum::Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok((addr, FaultProxy { addr, shared, task }))
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`: the endpoint URL to give a client.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn counts(&self) -> FaultCounts {
        self.shared.counts()
    }
}

/// The proxies in front of the local stack's two AWS endpoints.
pub struct AwsFaultProxies {
    pub dynamodb: FaultProxy,
    /// Scheduler, Secrets Manager and SQS: moto serves them all on one port.
    pub moto: FaultProxy,
}

impl AwsFaultProxies {
    /// Both proxies, each on its own seed, or `None` when every rate is 0.
    pub async fn start(faults: AwsFaults, dynamodb_url: &str, moto_url: &str) -> Result<Option<AwsFaultProxies>, String> {
        if !faults.is_on() {
            return Ok(None);
        }
        let (_, dynamodb) = FaultProxy::start(dynamodb_url, faults.lane(0)).await?;
        let (_, moto) = FaultProxy::start(moto_url, faults.lane(1)).await?;
        tracing::info!(?faults, dynamodb = %dynamodb.url(), moto = %moto.url(), "AWS fault injection on");
        Ok(Some(AwsFaultProxies { dynamodb, moto }))
    }

    pub fn counts(&self) -> FaultCounts {
        self.dynamodb.counts() + self.moto.counts()
    }
}

async fn handle(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = request.into_parts();
    let control = parts.uri.path().starts_with("/moto-api/");
    let decision = if control { Decision::Forward } else { shared.decide() };
    let invocation = parts.headers.get("amz-sdk-invocation-id").and_then(|v| v.to_str().ok());
    shared.track(invocation, decision);
    let shape = Shape::of(&parts.headers);
    match decision {
        Decision::Throttle => {
            shared.throttled.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(target = %shared.target, service = shape.service, "injected AWS throttle");
            return shape.throttle();
        }
        Decision::Error => {
            shared.errored.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(target = %shared.target, service = shape.service, "injected AWS internal error");
            return shape.internal_error();
        }
        Decision::Slow => {
            shared.slowed.fetch_add(1, Ordering::Relaxed);
            // The request reaches the service even when the caller gave up waiting (past the
            // SDK's attempt timeout): a write then lands while its answer is lost, as on AWS.
            let (answer, answered) = tokio::sync::oneshot::channel();
            let shared = shared.clone();
            tokio::spawn(async move {
                tokio::time::sleep(shared.faults.slow_by).await;
                let _ = answer.send(forward(&shared, parts, body).await);
            });
            return answered.await.unwrap_or_else(|_| plain(StatusCode::BAD_GATEWAY, "fault proxy: the forward was dropped".into()));
        }
        Decision::Forward => {}
    }
    forward(&shared, parts, body).await
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) and the length, which the body's framing sets again.
fn end_to_end(name: &HeaderName) -> bool {
    ![
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        header::PROXY_AUTHENTICATE,
        header::CONTENT_LENGTH,
    ]
    .contains(name)
        && name.as_str() != "keep-alive"
}

async fn forward(shared: &Shared, parts: http::request::Parts, body: Body) -> Response {
    // Requests are small (DynamoDB's largest, BatchWriteItem, is 16 MB); answers are streamed.
    let body = match axum::body::to_bytes(body, 64 << 20).await {
        Ok(body) => body,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("fault proxy: cannot read the request body: {e}")),
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut headers = HeaderMap::new();
    for (name, value) in parts.headers.iter().filter(|(n, _)| end_to_end(n)) {
        headers.append(name.clone(), value.clone());
    }
    let sent = shared.client.request(parts.method, format!("{}{path}", shared.target)).headers(headers).body(body).send().await;
    let upstream = match sent {
        Ok(response) => response,
        Err(e) => {
            shared.unreachable.fetch_add(1, Ordering::Relaxed);
            return plain(StatusCode::BAD_GATEWAY, format!("fault proxy: {} did not answer: {e}", shared.target));
        }
    };
    shared.forwarded.fetch_add(1, Ordering::Relaxed);
    let mut response = Response::builder().status(upstream.status());
    for (name, value) in upstream.headers().iter().filter(|(n, _)| end_to_end(n) || *n == header::CONTENT_LENGTH) {
        response = response.header(name, value);
    }
    let chunks = futures::stream::unfold(upstream, |mut upstream| async move {
        upstream.chunk().await.transpose().map(|chunk| (chunk, upstream))
    });
    response.body(Body::from_stream(chunks)).unwrap_or_else(|e| plain(StatusCode::BAD_GATEWAY, format!("fault proxy: {e}")))
}

fn plain(status: StatusCode, message: String) -> Response {
    let mut response = Response::new(Body::from(message));
    *response.status_mut() = status;
    response
}

/// How the calling service's protocol spells its errors.
struct Shape {
    service: &'static str,
    /// awsJson (`X-Amz-Target`): the `__type` namespace and the content type; restJson otherwise.
    aws_json: Option<(&'static str, &'static str)>,
    throttle_code: &'static str,
    internal_code: &'static str,
}

impl Shape {
    fn of(headers: &HeaderMap) -> Shape {
        let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok());
        let prefix = target.map(|t| t.split('.').next().unwrap_or(t));
        const JSON_1_0: &str = "application/x-amz-json-1.0";
        const JSON_1_1: &str = "application/x-amz-json-1.1";
        match prefix {
            // DynamoDB and its Streams: awsJson 1.0, codes under the service's namespace.
            Some(p) if p.starts_with("DynamoDB") => Shape {
                service: "dynamodb",
                aws_json: Some(("com.amazonaws.dynamodb.v20120810#", JSON_1_0)),
                throttle_code: "ThrottlingException",
                internal_code: "InternalServerError",
            },
            Some("secretsmanager") => Shape {
                service: "secretsmanager",
                aws_json: Some(("", JSON_1_1)),
                throttle_code: "ThrottlingException",
                internal_code: "InternalServiceError",
            },
            Some("AmazonSQS") => Shape {
                service: "sqs",
                aws_json: Some(("com.amazonaws.sqs#", JSON_1_0)),
                throttle_code: "RequestThrottled",
                internal_code: "InternalFailure",
            },
            Some(_) => Shape {
                service: "aws-json",
                aws_json: Some(("", JSON_1_1)),
                throttle_code: "ThrottlingException",
                internal_code: "InternalFailure",
            },
            // Scheduler (restJson1): the code in `x-amzn-ErrorType`, 429 for throttling.
            None => Shape {
                service: "rest-json",
                aws_json: None,
                throttle_code: "ThrottlingException",
                internal_code: "InternalServerException",
            },
        }
    }

    fn throttle(&self) -> Response {
        let status = if self.aws_json.is_some() { StatusCode::BAD_REQUEST } else { StatusCode::TOO_MANY_REQUESTS };
        self.error(status, self.throttle_code, "Rate exceeded (injected by the local stack's fault proxy)")
    }

    fn internal_error(&self) -> Response {
        self.error(StatusCode::INTERNAL_SERVER_ERROR, self.internal_code, "Internal server error (injected by the local stack's fault proxy)")
    }

    fn error(&self, status: StatusCode, code: &str, message: &str) -> Response {
        let (body, content_type) = match self.aws_json {
            Some((namespace, content_type)) => {
                (serde_json::json!({ "__type": format!("{namespace}{code}"), "message": message }), content_type)
            }
            None => (serde_json::json!({ "message": message }), "application/json"),
        };
        let mut response = Response::new(Body::from(Bytes::from(body.to_string())));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        headers.insert("x-amzn-requestid", HeaderValue::from_str(&ulid::Ulid::new().to_string()).expect("ASCII"));
        if self.aws_json.is_none() {
            headers.insert("x-amzn-errortype", HeaderValue::from_str(code).expect("ASCII"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use aws_sdk_dynamodb::config::retry::RetryConfig;
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
    use aws_sdk_dynamodb::types::AttributeValue;
    use serde_json::{Value, json};

    use super::*;

    /// A stand-in for DynamoDB Local / moto: answers 201 with what it received, and counts.
    async fn echo_server() -> (String, Arc<AtomicUsize>, JoinHandle<()>) {
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let app = axum::Router::new().fallback(move |request: Request| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
                let headers: serde_json::Map<String, Value> = parts
                    .headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), Value::String(v.to_str().unwrap().to_string())))
                    .collect();
                let seen = json!({
                    "method": parts.method.as_str(),
                    "path": parts.uri.path(),
                    "query": parts.uri.query(),
                    "headers": headers,
                    "body": String::from_utf8(body.to_vec()).unwrap(),
                });
                Response::builder()
                    .status(201)
                    .header("content-type", "application/x-amz-json-1.0")
                    .header("x-amz-crc32", "12345")
                    .body(Body::from(seen.to_string()))
                    .unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        (url, hits, task)
    }

    fn faults(throttle_rate: f64, error_rate: f64, seed: u64) -> AwsFaults {
        AwsFaults { throttle_rate, error_rate, seed, ..AwsFaults::off() }
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    async fn dynamodb_call(proxy: &FaultProxy) -> reqwest::Response {
        client()
            .post(proxy.url())
            .header("x-amz-target", "DynamoDB_20120810.GetItem")
            .header("content-type", "application/x-amz-json-1.0")
            .body(r#"{"TableName":"t"}"#)
            .send()
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn forwards_method_path_query_headers_and_body_and_returns_the_answer_untouched() {
        let (target, hits, _server) = echo_server().await;
        let (addr, proxy) = FaultProxy::start(&target, AwsFaults::off()).await.unwrap();
        assert_eq!(proxy.url(), format!("http://{addr}"));
        let response = client()
            .put(format!("{}/schedules/some%20name?groupName=posts&clientToken=a%2Fb", proxy.url()))
            .header("authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/scheduler/aws4_request")
            .header("x-amz-date", "20260101T000000Z")
            .header("amz-sdk-invocation-id", "inv-1")
            .header("content-type", "application/json")
            .body(r#"{"ScheduleExpression":"at(2030-01-01T09:00:00)"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["x-amz-crc32"], "12345");
        assert_eq!(response.headers()["content-type"], "application/x-amz-json-1.0");
        let seen: Value = response.json().await.unwrap();
        assert_eq!(seen["method"], "PUT");
        assert_eq!(seen["path"], "/schedules/some%20name");
        assert_eq!(seen["query"], "groupName=posts&clientToken=a%2Fb");
        assert_eq!(seen["body"], r#"{"ScheduleExpression":"at(2030-01-01T09:00:00)"}"#);
        assert_eq!(seen["headers"]["authorization"], "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/scheduler/aws4_request");
        assert_eq!(seen["headers"]["x-amz-date"], "20260101T000000Z");
        assert_eq!(seen["headers"]["amz-sdk-invocation-id"], "inv-1");
        // The Host the client signed, not the target's.
        assert_eq!(seen["headers"]["host"], addr.to_string());
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        let counts = proxy.counts();
        assert_eq!((counts.requests, counts.forwarded, counts.throttled, counts.errored), (1, 1, 0, 0));
    }

    #[tokio::test]
    async fn at_throttle_rate_one_every_request_is_throttled_in_its_protocols_shape() {
        let (target, hits, _server) = echo_server().await;
        let (_, proxy) = FaultProxy::start(&target, faults(1.0, 0.0, 7)).await.unwrap();
        for _ in 0..3 {
            let response = dynamodb_call(&proxy).await;
            assert_eq!(response.status(), 400);
            assert_eq!(response.headers()["content-type"], "application/x-amz-json-1.0");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["__type"], "com.amazonaws.dynamodb.v20120810#ThrottlingException");
        }
        let response = client()
            .post(proxy.url())
            .header("x-amz-target", "secretsmanager.GetSecretValue")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        assert_eq!(response.headers()["content-type"], "application/x-amz-json-1.1");
        assert_eq!(response.json::<Value>().await.unwrap()["__type"], "ThrottlingException");
        let response = client().post(proxy.url()).header("x-amz-target", "AmazonSQS.SendMessage").body("{}").send().await.unwrap();
        assert_eq!(response.status(), 400);
        assert_eq!(response.json::<Value>().await.unwrap()["__type"], "com.amazonaws.sqs#RequestThrottled");
        let response = client().post(format!("{}/schedules/x", proxy.url())).body("{}").send().await.unwrap();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["x-amzn-errortype"], "ThrottlingException");
        assert!(response.json::<Value>().await.unwrap()["message"].is_string());
        assert_eq!(hits.load(Ordering::SeqCst), 0, "a faulted request never reaches the service");
        let counts = proxy.counts();
        assert_eq!((counts.requests, counts.throttled, counts.forwarded), (6, 6, 0));
    }

    #[tokio::test]
    async fn at_error_rate_one_every_request_is_an_internal_error_in_its_protocols_shape() {
        let (target, hits, _server) = echo_server().await;
        let (_, proxy) = FaultProxy::start(&target, faults(0.0, 1.0, 7)).await.unwrap();
        let response = dynamodb_call(&proxy).await;
        assert_eq!(response.status(), 500);
        assert_eq!(response.json::<Value>().await.unwrap()["__type"], "com.amazonaws.dynamodb.v20120810#InternalServerError");
        let response = client()
            .post(proxy.url())
            .header("x-amz-target", "secretsmanager.GetSecretValue")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(response.json::<Value>().await.unwrap()["__type"], "InternalServiceError");
        let response = client().get(format!("{}/schedules/x", proxy.url())).send().await.unwrap();
        assert_eq!(response.status(), 500);
        assert_eq!(response.headers()["x-amzn-errortype"], "InternalServerException");
        // moto's control API is the harness's, never faulted.
        let response = client().post(format!("{}/moto-api/reset", proxy.url())).send().await.unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!(proxy.counts().errored, 3);
    }

    #[tokio::test]
    async fn slow_requests_are_held_back_then_forwarded() {
        let (target, hits, _server) = echo_server().await;
        let slow = AwsFaults { slow_rate: 1.0, slow_by: Duration::from_millis(300), ..AwsFaults::off() };
        let (_, proxy) = FaultProxy::start(&target, slow).await.unwrap();
        let started = std::time::Instant::now();
        assert_eq!(dynamodb_call(&proxy).await.status(), 201);
        assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        assert_eq!((proxy.counts().slowed, proxy.counts().forwarded), (1, 1));

        // A caller that stops waiting does not stop the request: it lands, its answer is lost.
        let impatient = reqwest::Client::builder().no_proxy().timeout(Duration::from_millis(100)).build().unwrap();
        let gave_up = impatient.post(proxy.url()).header("x-amz-target", "DynamoDB_20120810.PutItem").body("{}").send().await;
        assert!(gave_up.is_err_and(|e| e.is_timeout()));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(hits.load(Ordering::SeqCst), 2, "the held request reached the service");
        assert_eq!((proxy.counts().slowed, proxy.counts().forwarded), (2, 2));
    }

    /// The statuses of `n` requests sent one after another.
    async fn statuses(faults: AwsFaults, target: &str, n: usize) -> Vec<u16> {
        let (_, proxy) = FaultProxy::start(target, faults).await.unwrap();
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(dynamodb_call(&proxy).await.status().as_u16());
        }
        out
    }

    #[tokio::test]
    async fn the_same_seed_gives_the_same_faults_and_the_rates_hold() {
        let (target, _, _server) = echo_server().await;
        let first = statuses(faults(0.2, 0.2, 42), &target, 400).await;
        let again = statuses(faults(0.2, 0.2, 42), &target, 400).await;
        let other = statuses(faults(0.2, 0.2, 43), &target, 400).await;
        assert_eq!(first, again);
        assert_ne!(first, other);
        let throttled = first.iter().filter(|s| **s == 400).count();
        let errored = first.iter().filter(|s| **s == 500).count();
        let forwarded = first.iter().filter(|s| **s == 201).count();
        assert_eq!(throttled + errored + forwarded, 400);
        // 80 expected of each; 4 standard deviations either side.
        assert!((48..=112).contains(&throttled), "{throttled}");
        assert!((48..=112).contains(&errored), "{errored}");
    }

    #[test]
    fn settings_come_from_the_environment_and_bad_values_are_named() {
        let vars: HashMap<&str, &str> = [
            ("INSTAPIPE_AWS_THROTTLE_RATE", "0.05"),
            ("INSTAPIPE_AWS_ERROR_RATE", "0.1"),
            ("INSTAPIPE_AWS_SLOW_RATE", "0.02"),
            ("INSTAPIPE_AWS_SLOW_MS", "6000"),
            ("INSTAPIPE_AWS_FAULT_SEED", "9"),
        ]
        .into();
        let parsed = AwsFaults::from_lookup(|n| vars.get(n).map(|v| v.to_string())).unwrap();
        assert_eq!(parsed, AwsFaults { throttle_rate: 0.05, error_rate: 0.1, slow_rate: 0.02, slow_by: Duration::from_secs(6), seed: 9 });
        assert!(parsed.is_on());
        let none = AwsFaults::from_lookup(|_| None).unwrap();
        assert_eq!(none, AwsFaults::off());
        assert!(!none.is_on());
        let err = AwsFaults::from_lookup(|n| (n == "INSTAPIPE_AWS_ERROR_RATE").then(|| "1.5".into())).unwrap_err();
        assert!(err.contains("INSTAPIPE_AWS_ERROR_RATE"), "{err}");
        let err = AwsFaults::from_lookup(|n| n.ends_with("_RATE").then(|| "0.6".into())).unwrap_err();
        assert!(err.contains("at most 1"), "{err}");
        let err = AwsFaults::from_lookup(|n| (n == "INSTAPIPE_AWS_FAULT_SEED").then(|| "x".into())).unwrap_err();
        assert!(err.contains("INSTAPIPE_AWS_FAULT_SEED"), "{err}");
    }

    fn dynamodb(endpoint: &str) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::Config::builder()
                .behavior_version(BehaviorVersion::latest())
                .region(Region::new("us-east-1"))
                .credentials_provider(Credentials::new("test", "test", None, None, "test"))
                .endpoint_url(endpoint)
                // The SDK's standard mode (3 attempts), with short backoffs to keep the test quick.
                .retry_config(RetryConfig::standard().with_initial_backoff(Duration::from_millis(5)))
                .build(),
        )
    }

    /// The real SDK classifies both shapes as retryable: 3 attempts, then the error it modelled.
    #[tokio::test]
    async fn the_aws_sdk_retries_each_fault_and_surfaces_it_after_three_attempts() {
        let (target, hits, _server) = echo_server().await;
        let (_, throttling) = FaultProxy::start(&target, faults(1.0, 0.0, 1)).await.unwrap();
        let err = dynamodb(&throttling.url()).get_item().table_name("t").key("pk", AttributeValue::S("a".into())).send().await.unwrap_err();
        assert!(err.as_service_error().is_some_and(|e| e.is_throttling_exception()), "{err:?}");
        let counts = throttling.counts();
        assert_eq!((counts.requests, counts.throttled, counts.retried_throttles, counts.surfaced_throttles), (3, 3, 2, 1), "{counts}");

        let (_, failing) = FaultProxy::start(&target, faults(0.0, 1.0, 1)).await.unwrap();
        let err = dynamodb(&failing.url()).get_item().table_name("t").key("pk", AttributeValue::S("a".into())).send().await.unwrap_err();
        assert!(err.as_service_error().is_some_and(|e| e.is_internal_server_error()), "{err:?}");
        let counts = failing.counts();
        assert_eq!((counts.requests, counts.errored, counts.retried_errors, counts.surfaced_errors), (3, 3, 2, 1), "{counts}");
        assert_eq!(hits.load(Ordering::SeqCst), 0);
    }
}
