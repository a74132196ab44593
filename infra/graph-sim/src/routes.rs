//! HTTP glue: the Graph catch-all route (recording, fault injection, usage headers) and the
//! unauthenticated `/_sim/*` test hooks.

use std::time::{Duration, Instant, SystemTime};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use crate::error::GraphError;
use crate::faults::Fault;
use crate::graph::{GraphPath, Reply};
use crate::params::{Params, access_token};
use crate::state::State;
use crate::tokens::Grant;
use crate::oauth;
use crate::{GraphSim, RecordedRequest};

pub(crate) fn router(sim: GraphSim) -> Router {
    Router::new()
        .route("/_sim/published", get(sim_published))
        .route("/_sim/requests", get(sim_requests))
        .route("/_sim/containers", get(sim_containers))
        .route("/_sim/comments", get(sim_comments))
        .route("/_sim/stats", get(sim_stats))
        .route("/_sim/accounts", post(sim_accounts))
        .route("/_sim/reset", post(sim_reset))
        // Token endpoints (Meta puts the token in the query here): see `tokens`.
        .route("/refresh_access_token", get(instagram_refresh))
        .route("/access_token", get(instagram_exchange))
        .route("/{version}/oauth/access_token", get(facebook_exchange))
        // The login pages and code exchanges: see `oauth`.
        .route("/oauth/authorize", get(oauth::instagram_authorize))
        .route("/{version}/dialog/oauth", get(oauth::facebook_dialog))
        .route("/oauth/access_token", post(oauth::instagram_code_exchange))
        .route("/{version}/me/permissions", get(me_permissions))
        .route("/{version}/me/accounts", get(me_accounts))
        .route("/_sim/oauth/consent", post(oauth::sim_consent))
        // Every other path is a Graph path: `/{version}/{id}[/{edge}]`, parsed by hand so that
        // unknown paths get Graph's own error answers instead of a bare 404.
        .fallback(graph)
        .with_state(sim)
}

/// What to send for a Graph request; waiting needs an `.await`, so it is decided under the lock
/// and carried out after releasing it.
enum Answer {
    Now(Response),
    /// The request was carried out; its answer goes out only after this long.
    Late(Duration, Response),
}

async fn graph(
    AxumState(sim): AxumState<GraphSim>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let response = match answer_graph(&sim, &method, &uri, &headers, &body) {
        Answer::Now(response) => response,
        Answer::Late(wait, response) => {
            tokio::time::sleep(wait).await;
            response
        }
    };
    // Path only: the query may carry a token.
    tracing::debug!(method = %method, path = %uri.path(), status = response.status().as_u16(), "graph-sim request");
    response
}

fn answer_graph(
    sim: &GraphSim,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    let now = Instant::now();
    let wall = SystemTime::now();
    let mut state = sim.lock();
    state.requests.push(RecordedRequest {
        method: method.to_string(),
        path_and_query: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_string(), |pq| pq.to_string()),
        authorization: headers
            .get(header::AUTHORIZATION)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        body: String::from_utf8_lossy(body).into_owned(),
    });

    let path = match GraphPath::parse(uri.path()) {
        Ok(path) => path,
        Err(err) => return Answer::Now(graph_error(&mut state, err, None, now)),
    };
    // Before the body is parsed, only the header can name the caller (for `/me`).
    let header_token = access_token(headers, None);
    let mut late = false;
    match state.roll_request_fault() {
        // Done now, answered late: the client that gave up does not know it happened.
        Some(Fault::Timeout) => late = true,
        Some(Fault::ServerError) => {
            let account = state.account_for_path(&path, header_token.as_deref());
            return Answer::Now(graph_error(
                &mut state,
                GraphError::injected_server_error(),
                account.as_deref(),
                now,
            ));
        }
        None => {}
    }
    let params = match Params::parse(uri.query(), headers, body) {
        Ok(params) => params,
        Err(err) => {
            let account = state.account_for_path(&path, header_token.as_deref());
            return Answer::Now(graph_error(&mut state, err, account.as_deref(), now));
        }
    };
    let token = access_token(headers, Some(&params));
    let outcome = state.handle(now, wall, method, &path, &params, token.as_deref());
    let account = outcome.account.as_deref();
    let made_carousel = *method == Method::POST
        && path.edge.as_deref() == Some("media")
        && params.get("media_type").is_some_and(|t| t.eq_ignore_ascii_case("CAROUSEL"))
        && matches!(outcome.reply, Reply::Json(_));
    if made_carousel && state.late_carousel_creation() {
        late = true;
    }
    let response = match outcome.reply {
        Reply::Json(value) => graph_json(&mut state, StatusCode::OK, &value, account, now),
        Reply::Error(err) => graph_error(&mut state, err, account, now),
        Reply::LostAnswer => gateway_error(StatusCode::BAD_GATEWAY),
    };
    if !late {
        return Answer::Now(response);
    }
    state.late_answers += 1;
    if made_carousel {
        state.late_carousel_creations += 1;
    }
    Answer::Late(state.config.timeout, response)
}

fn graph_error(
    state: &mut State,
    err: GraphError,
    account: Option<&str>,
    now: Instant,
) -> Response {
    let fbtrace_id = state.fbtrace_id();
    let mut response = graph_json(state, err.status, &err.body(&fbtrace_id), account, now);
    if err.code == 190 {
        let challenge = format!(
            "OAuth \"Facebook Platform\" \"invalid_token\" \"{}\"",
            err.message
        );
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
    }
    response
}

/// A Graph answer: JSON body plus the `X-App-Usage` and `X-Business-Use-Case-Usage` headers.
fn graph_json(
    state: &mut State,
    status: StatusCode,
    body: &Value,
    account: Option<&str>,
    now: Instant,
) -> Response {
    let (calls, cputime, total_time) = state.app_usage(now);
    let app_usage =
        json!({ "call_count": calls, "total_cputime": cputime, "total_time": total_time });
    let business_usage = match account {
        Some(account) => {
            let (calls, cputime, total_time, regain_minutes) = state.account_usage(account, now);
            json!({ account: [{
                "type": "instagram",
                "call_count": calls,
                "total_cputime": cputime,
                "total_time": total_time,
                "estimated_time_to_regain_access": regain_minutes,
            }] })
        }
        None => json!({}),
    };
    let mut response = (status, axum::Json(body)).into_response();
    for (name, value) in [
        ("x-app-usage", app_usage),
        ("x-business-use-case-usage", business_usage),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(name), value);
        }
    }
    response
}

/// A failure of the network path rather than of Graph: HTML body, no Graph headers.
fn gateway_error(status: StatusCode) -> Response {
    let reason = status.canonical_reason().unwrap_or("Error");
    let code = status.as_u16();
    let html = format!(
        "<html><head><title>{code} {reason}</title></head><body><center><h1>{code} {reason}</h1></center></body></html>\n"
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

// ---- token endpoints ------------------------------------------------------------------------

async fn instagram_refresh(sim: AxumState<GraphSim>, uri: Uri, headers: HeaderMap) -> Response {
    token_grant(sim, Grant::InstagramRefresh, uri, headers)
}

async fn instagram_exchange(sim: AxumState<GraphSim>, uri: Uri, headers: HeaderMap) -> Response {
    token_grant(sim, Grant::InstagramExchange, uri, headers)
}

async fn facebook_exchange(sim: AxumState<GraphSim>, uri: Uri, headers: HeaderMap) -> Response {
    // A code, or a Facebook user token from a login; else an account's token.
    if let Some(response) = oauth::facebook_token(&sim.0, &uri, &headers) {
        return response;
    }
    token_grant(sim, Grant::FacebookExchange, uri, headers)
}

async fn me_permissions(sim: AxumState<GraphSim>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    match oauth::facebook_me(&sim.0, "permissions", &uri, &headers) {
        Some(response) => response,
        None => graph(sim, method, uri, headers, body).await,
    }
}

async fn me_accounts(sim: AxumState<GraphSim>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    match oauth::facebook_me(&sim.0, "accounts", &uri, &headers) {
        Some(response) => response,
        None => graph(sim, method, uri, headers, body).await,
    }
}

fn token_grant(AxumState(sim): AxumState<GraphSim>, grant: Grant, uri: Uri, headers: HeaderMap) -> Response {
    let now = Instant::now();
    let mut state = sim.lock();
    state.requests.push(RecordedRequest {
        method: "GET".into(),
        path_and_query: uri.path_and_query().map_or_else(|| uri.path().to_string(), |pq| pq.to_string()),
        authorization: headers.get(header::AUTHORIZATION).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        body: String::new(),
    });
    let params = match Params::parse(uri.query(), &headers, &[]) {
        Ok(params) => params,
        Err(err) => return graph_error(&mut state, err, None, now),
    };
    // Path only in the log: the query holds the token.
    tracing::debug!(path = %uri.path(), "graph-sim token grant");
    match state.grant_token(grant, &params) {
        (Ok(body), account) => graph_json(&mut state, StatusCode::OK, &body, account.as_deref(), now),
        (Err(err), account) => graph_error(&mut state, err, account.as_deref(), now),
    }
}

// ---- /_sim/* hooks --------------------------------------------------------------------------

async fn sim_published(AxumState(sim): AxumState<GraphSim>) -> Response {
    axum::Json(sim.published()).into_response()
}

async fn sim_requests(AxumState(sim): AxumState<GraphSim>) -> Response {
    axum::Json(sim.requests()).into_response()
}

async fn sim_containers(AxumState(sim): AxumState<GraphSim>) -> Response {
    axum::Json(sim.containers()).into_response()
}

async fn sim_comments(AxumState(sim): AxumState<GraphSim>) -> Response {
    let comments: Vec<Value> = sim
        .comments()
        .into_iter()
        .map(|(media_id, message)| json!({ "media_id": media_id, "message": message }))
        .collect();
    axum::Json(comments).into_response()
}

async fn sim_stats(AxumState(sim): AxumState<GraphSim>) -> Response {
    let state = sim.lock();
    axum::Json(json!({
        "containers": state.containers.len(),
        "published": state.media.len(),
        "comments": state.comments.len(),
        "requests": state.requests.len(),
        "duplicate_publish_attempts": state.duplicate_publish_attempts,
        "late_answers": state.late_answers,
        "late_carousel_creations": state.late_carousel_creations,
    }))
    .into_response()
}

/// Body `{"ig_user_id":"…","token":"…"}`; same as `GraphSim::set_token`.
async fn sim_accounts(AxumState(sim): AxumState<GraphSim>, body: Bytes) -> Response {
    let parsed: Option<(String, String)> =
        serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
            let field = |name: &str| {
                v.get(name)?
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
            };
            Some((field("ig_user_id")?, field("token")?))
        });
    match parsed {
        Some((ig_user_id, token)) => {
            sim.set_token(&ig_user_id, &token);
            axum::Json(json!({ "ig_user_id": ig_user_id })).into_response()
        }
        None => (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({ "error": "expected a JSON body {\"ig_user_id\":\"…\",\"token\":\"…\"}" }),
            ),
        )
            .into_response(),
    }
}

async fn sim_reset(AxumState(sim): AxumState<GraphSim>) -> Response {
    sim.reset();
    axum::Json(json!({ "reset": true })).into_response()
}
