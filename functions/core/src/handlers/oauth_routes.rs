//! `/oauth/start` and `/oauth/callback` on the public function: connecting an account when the
//! operator has no terminal next to a browser. `GET /oauth/start` (with an API key) answers the
//! authorize URL, whose `state` is signed (HMAC-SHA256 with a key derived from the app secret),
//! expires after [`oauth::STATE_LIFETIME`] and names the API key by its SHA-256. Meta redirects the
//! browser to `GET /oauth/callback`, which verifies that state (signature, expiry, the key still
//! registered) before exchanging the code, then stores the account as `accounts add` does.

use http::Method;
use lambda_http::{Body, Request, Response};
use serde::Serialize;

use super::edge;
use crate::account::LoginFlavour;
use crate::deps::{Connect, Ingest};
use crate::oauth::{self, CallbackParams, ConnectError, StateClaims};
use crate::sources::RequestError;
use crate::store::api_keys;

pub const START: &str = "/oauth/start";
pub const CALLBACK: &str = "/oauth/callback";

/// Answers `/oauth/start` and `/oauth/callback`; `None` for any other path.
pub async fn handle(deps: &Ingest, request: &Request) -> Option<Response<Body>> {
    let path = request.uri().path().trim_end_matches('/');
    if path != START && path != CALLBACK {
        return None;
    }
    let result = if request.method() != Method::GET {
        Err(RequestError::new(405, "method_not_allowed", "use GET"))
    } else if path == START {
        start(deps, request).await
    } else {
        callback(deps, request).await
    };
    Some(result.unwrap_or_else(|err| {
        let mut response = edge::error(&err);
        match err.status {
            401 => {
                response.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
            }
            405 => edge::allow(&mut response, &["GET"]),
            _ => {}
        }
        response
    }))
}

fn connect_deps(deps: &Ingest) -> Result<&Connect, RequestError> {
    deps.connect.as_deref().ok_or_else(|| {
        RequestError::new(
            404,
            "not_configured",
            "connecting accounts here is off: set OAUTH_REDIRECT_URI to this function's /oauth/callback URL (registered in the Meta app)",
        )
    })
}

#[derive(Serialize)]
struct Started {
    authorize_url: String,
    flavour: &'static str,
    redirect_uri: String,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: time::OffsetDateTime,
}

/// `GET /oauth/start?flavour=instagram|facebook&page=ID`: the page to open in a browser.
async fn start(deps: &Ingest, request: &Request) -> Result<Response<Body>, RequestError> {
    // The key first, before anything about the configuration is told.
    let key_hash = key_hash(request)?;
    let key = super::posts_api::authenticate(deps, request).await?;
    // Connecting an account widens what the deployment posts to: an admin key's act only.
    if key.scope != crate::store::api_keys::Scope::full() {
        return Err(RequestError::new(403, "admin_key_required", "connecting an account needs a read-write key for all accounts (instapipe keys create --all-accounts)"));
    }
    let connect = connect_deps(deps)?;
    let mut login = LoginFlavour::Instagram;
    let mut page = None;
    for (name, value) in edge::query_params(request, &["flavour", "page"])? {
        match name.as_str() {
            "flavour" => {
                login = match value.as_str() {
                    "instagram" => LoginFlavour::Instagram,
                    "facebook" => LoginFlavour::Facebook,
                    _ => return Err(RequestError::field(400, "invalid_query", "flavour", "`instagram` or `facebook`")),
                }
            }
            _ => {
                if value.is_empty() || value.len() > 30 || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(RequestError::field(400, "invalid_query", "page", "a Facebook Page id is 1 to 30 digits"));
                }
                page = Some(value);
            }
        }
    }
    if page.is_some() && login == LoginFlavour::Instagram {
        return Err(RequestError::field(400, "invalid_query", "page", "a Page is chosen only with flavour=facebook"));
    }
    let app = connect.app(login).await.map_err(refusal)?;
    let expires_at = deps.clock.now() + oauth::STATE_LIFETIME;
    let claims = StateClaims { login, key_hash, page, expires: expires_at.unix_timestamp(), nonce: oauth::random_state() };
    let state = oauth::sign_state(&claims, &oauth::state_key(&app.app_secret));
    let started = Started {
        authorize_url: connect.client.authorize_url(&app, &connect.redirect_uri, &state),
        flavour: flavour_param(login),
        redirect_uri: connect.redirect_uri.clone(),
        expires_at,
    };
    tracing::info!(flavour = started.flavour, "account connection started");
    Ok(edge::json(200, &started))
}

fn flavour_param(login: LoginFlavour) -> &'static str {
    match login {
        LoginFlavour::Instagram => "instagram",
        LoginFlavour::Facebook => "facebook",
    }
}

/// The SHA-256 of the bearer key (checked by `authenticate` right after).
fn key_hash(request: &Request) -> Result<String, RequestError> {
    let header = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let key = header.trim().split_once(' ').map(|(_, key)| key.trim()).unwrap_or_default();
    if key.is_empty() {
        return Err(RequestError::new(401, "unauthorized", "a valid API key is required: send the header Authorization: Bearer <key>"));
    }
    Ok(api_keys::hash(key))
}

#[derive(Serialize)]
struct ConnectedView {
    account_id: String,
    username: Option<String>,
    flavour: &'static str,
    #[serde(with = "time::serde::rfc3339::option")]
    token_expires_at: Option<time::OffsetDateTime>,
    page: Option<oauth::Page>,
    resumed: usize,
}

/// `GET /oauth/callback?code=…&state=…` (or `?error=access_denied&…`), where Meta sends the browser.
async fn callback(deps: &Ingest, request: &Request) -> Result<Response<Body>, RequestError> {
    let connect = connect_deps(deps)?;
    let params = CallbackParams::from_query(request.uri().query().unwrap_or(""));
    let invalid_state = |message: String| RequestError::field(400, "invalid_state", "state", message);
    let state = params.state.as_deref().ok_or_else(|| invalid_state("missing: start the connection with /oauth/start".into()))?;
    let claimed = oauth::peek_state(state).map_err(|e| invalid_state(e.to_string()))?;
    let app = connect.app(claimed.login).await.map_err(refusal)?;
    let claims = oauth::verify_state(state, &oauth::state_key(&app.app_secret), deps.clock.now()).map_err(|e| invalid_state(e.to_string()))?;
    match deps.api_keys.find(&claims.key_hash).await {
        Ok(Some(key)) if key.scope == crate::store::api_keys::Scope::full() => {}
        Ok(_) => {
            return Err(RequestError::new(401, "unauthorized", "the API key that started this connection is no longer registered; nothing was stored"));
        }
        Err(err) => return Err(super::posts_api::changes::unavailable(err)),
    }
    let code = params.code().map_err(refusal)?;
    let connected = connect.client.connect(&app, &connect.redirect_uri, &code, claims.page.as_deref()).await.map_err(refusal)?;
    let resumed = super::reauth::register_account(
        &connect.pipeline,
        connect.vault.as_ref(),
        &connected.account_id,
        connected.login,
        &connected.token,
        connected.expires_at,
    )
    .await
    .map_err(|err| {
        tracing::error!(error = %err, "could not store the connected account");
        RequestError::new(503, "unavailable", "the account could not be stored; start the connection again later")
    })?;
    tracing::info!(account_id = %connected.account_id, flavour = flavour_param(connected.login), resumed, "account connected");
    let view = ConnectedView {
        account_id: connected.account_id,
        username: connected.username,
        flavour: flavour_param(connected.login),
        token_expires_at: connected.expires_at,
        page: connected.page,
        resumed,
    };
    Ok(edge::json(200, &view))
}

/// A failed connection as an answer: what went wrong and what to do, with a code per case.
fn refusal(err: ConnectError) -> RequestError {
    let (status, code) = match &err {
        ConnectError::Denied(_) => (400, "access_denied"),
        ConnectError::RedirectUri(_) => (400, "redirect_uri_mismatch"),
        ConnectError::CodeExpiredOrUsed => (400, "code_expired_or_used"),
        ConnectError::MissingPermissions { .. } => (400, "missing_permission"),
        ConnectError::NoPage | ConnectError::SeveralPages(_) | ConnectError::UnknownPage(..) => (400, "page_required"),
        ConnectError::NoInstagramAccount(_) => (400, "no_instagram_account"),
        ConnectError::State => (400, "invalid_state"),
        ConnectError::Setup(_) => (503, "not_configured"),
        ConnectError::Meta { .. } | ConnectError::Transport { .. } => (502, "meta_error"),
    };
    RequestError::new(status, code, err.to_string())
}
