//! The login side of Meta (reference §2.8): the authorize pages of Instagram Login
//! (`www.instagram.com/oauth/authorize`) and Facebook Login (`www.facebook.com/{v}/dialog/oauth`),
//! which answer at once with a redirect carrying a code (or `error=access_denied` when the
//! consent is set to deny), and the code exchanges: `POST api.instagram.com/oauth/access_token`
//! (in api.instagram.com's own error shape, `{"error_type","code","error_message"}`) and
//! `GET graph.facebook.com/{v}/oauth/access_token?code=…`. Facebook user tokens then answer
//! `fb_exchange_token`, `/{v}/me/permissions` and `/{v}/me/accounts` (Pages with their Page token
//! and Instagram business account). Codes work once and expire; a code is bound to its
//! `redirect_uri` and `client_id`, as at Meta.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::GraphSim;
use crate::error::GraphError;
use crate::params::{Params, access_token};
use crate::tokens::LONG_LIVED_SECS;

/// What the next logins consent to (a test hook: `GraphSim::set_consent`, `POST /_sim/oauth/consent`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct Consent {
    /// The person refuses: the authorize page redirects with `error=access_denied`.
    pub deny: bool,
    /// Permissions the person unticks: asked for, not granted.
    pub withhold: Vec<String>,
    /// The Instagram professional account that logs in (Instagram Login), or the Instagram
    /// business account linked to the Page (Facebook Login).
    pub ig_user_id: String,
    /// Facebook Login: the Pages the person manages, each linked to `ig_user_id` unless it says
    /// `instagram_business_account: null`.
    pub pages: Vec<SimPage>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimPage {
    pub id: String,
    pub name: String,
    /// The Instagram business account linked to the Page (`None`: none is linked).
    pub ig_user_id: Option<String>,
}

/// The account a login connects unless told otherwise (the local stack's second demo account).
pub const DEFAULT_LOGIN_ACCOUNT: &str = "17841400000000002";
/// How long a code lives (Meta: minutes for Facebook Login, an hour for Instagram Login).
pub const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// What a short-lived token lives (seconds).
const SHORT_LIVED_SECS: u64 = 3_600;

impl Default for Consent {
    fn default() -> Self {
        Consent {
            deny: false,
            withhold: Vec::new(),
            ig_user_id: DEFAULT_LOGIN_ACCOUNT.into(),
            pages: vec![SimPage {
                id: "1000000000000001".into(),
                name: "Sim Page".into(),
                ig_user_id: Some(DEFAULT_LOGIN_ACCOUNT.into()),
            }],
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavour {
    Instagram,
    Facebook,
}

struct IssuedCode {
    flavour: Flavour,
    client_id: String,
    redirect_uri: String,
    granted: Vec<String>,
    consent: Consent,
    issued: Instant,
    used: bool,
}

/// A Facebook user token: what it may do and which Pages it sees.
#[derive(Clone)]
struct FacebookUser {
    granted: Vec<String>,
    consent: Consent,
}

#[derive(Default)]
pub(crate) struct OAuthState {
    pub consent: Consent,
    codes: HashMap<String, IssuedCode>,
    facebook_users: HashMap<String, FacebookUser>,
    /// Codes issued so far (they are made from this counter).
    issued: u64,
}

impl OAuthState {
    fn next(&mut self, prefix: &str) -> String {
        self.issued += 1;
        format!("{prefix}{:012}", self.issued)
    }
}

impl GraphSim {
    /// What the next logins consent to.
    pub fn set_consent(&self, consent: Consent) {
        self.lock().oauth.consent = consent;
    }

    /// Every code issued so far expires now (as if the person took too long).
    pub fn expire_oauth_codes(&self) {
        let mut state = self.lock();
        let past = Instant::now().checked_sub(CODE_LIFETIME + Duration::from_secs(1));
        for code in state.oauth.codes.values_mut() {
            if let Some(past) = past {
                code.issued = past;
            }
        }
    }
}

fn text_page(status: StatusCode, text: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text.to_string()).into_response()
}

fn redirect(location: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location.to_string())], "").into_response()
}

/// `uri` with the query parameters added (`&` or `?` as needed).
fn with_query(uri: &str, pairs: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        query.append_pair(k, v);
    }
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}{}", query.finish())
}

fn split_scopes(scope: Option<&str>) -> Vec<String> {
    scope.unwrap_or("").split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

pub(crate) async fn instagram_authorize(sim: AxumState<GraphSim>, uri: Uri) -> Response {
    authorize(sim, Flavour::Instagram, uri)
}

pub(crate) async fn facebook_dialog(sim: AxumState<GraphSim>, uri: Uri) -> Response {
    authorize(sim, Flavour::Facebook, uri)
}

/// The consent page, decided at once: a redirect to `redirect_uri` with a code or the refusal.
fn authorize(AxumState(sim): AxumState<GraphSim>, flavour: Flavour, uri: Uri) -> Response {
    let params: HashMap<String, String> = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let get = |name: &str| params.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let (Some(client_id), Some(redirect_uri)) = (get("client_id"), get("redirect_uri")) else {
        return text_page(StatusCode::BAD_REQUEST, "Invalid request: client_id and redirect_uri are required.");
    };
    if flavour == Flavour::Instagram && get("response_type") != Some("code") {
        return text_page(StatusCode::BAD_REQUEST, "Invalid request: response_type must be code.");
    }
    if !(redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://")) {
        return text_page(StatusCode::BAD_REQUEST, "Invalid redirect_uri: it must be an absolute http(s) URL.");
    }
    let state_param = get("state").unwrap_or("");
    let mut state = sim.lock();
    let consent = state.oauth.consent.clone();
    // Instagram appends `#_` to the redirect; clients strip it (reference §2.8).
    let fragment = if flavour == Flavour::Instagram { "#_" } else { "" };
    if consent.deny {
        let location = with_query(
            redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_reason", "user_denied"),
                ("error_description", "Permissions error"),
                ("state", state_param),
            ],
        );
        return redirect(&format!("{location}{fragment}"));
    }
    let granted: Vec<String> = split_scopes(get("scope")).into_iter().filter(|s| !consent.withhold.contains(s)).collect();
    let code = state.oauth.next("AQsimcode");
    state.oauth.codes.insert(
        code.clone(),
        IssuedCode {
            flavour,
            client_id: client_id.to_string(),
            redirect_uri: redirect_uri.to_string(),
            granted,
            consent,
            issued: Instant::now(),
            used: false,
        },
    );
    tracing::debug!(path = %uri.path(), "graph-sim authorize: code issued");
    redirect(&format!("{}{fragment}", with_query(redirect_uri, &[("code", &code), ("state", state_param)])))
}

/// Why a code cannot be exchanged: (Facebook subcode, message). Meta's own texts.
fn check_code(code: Option<&IssuedCode>, flavour: Flavour, client_id: &str, redirect_uri: &str) -> Result<(), (i64, &'static str)> {
    let Some(code) = code.filter(|c| c.flavour == flavour) else {
        return Err((36_009, "Invalid verification code format."));
    };
    if code.used {
        return Err((36_009, "This authorization code has been used."));
    }
    if code.issued.elapsed() > CODE_LIFETIME {
        return Err((36_007, "This authorization code has expired."));
    }
    if code.client_id != client_id {
        return Err((36_008, "Error validating verification code. The code was issued to another client_id."));
    }
    if code.redirect_uri != redirect_uri {
        return Err((
            36_008,
            "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
        ));
    }
    Ok(())
}

/// api.instagram.com's error shape, not Graph's.
fn instagram_api_error(message: &str) -> Response {
    let body = json!({ "error_type": "OAuthException", "code": 400, "error_message": message });
    (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// `POST /oauth/access_token` (api.instagram.com): form `client_id, client_secret,
/// grant_type=authorization_code, redirect_uri, code` → a short-lived Instagram token.
pub(crate) async fn instagram_code_exchange(AxumState(sim): AxumState<GraphSim>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let Ok(params) = Params::parse(None, &headers, &body) else {
        return instagram_api_error("Invalid request body");
    };
    let mut state = sim.lock();
    state.record("POST", "/oauth/access_token", &headers, "");
    for name in ["client_id", "client_secret", "grant_type", "redirect_uri", "code"] {
        if !params.has(name) {
            return instagram_api_error(&format!("Missing required field '{name}'"));
        }
    }
    if params.get("grant_type") != Some("authorization_code") {
        return instagram_api_error("Invalid grant_type: authorization_code expected");
    }
    // Clients strip Instagram's `#_`; one that did not sends a code Meta does not know.
    let code_text = params.get("code").unwrap_or_default().to_string();
    let (client_id, redirect_uri) = (params.get("client_id").unwrap_or_default(), params.get("redirect_uri").unwrap_or_default());
    if let Err((_, message)) = check_code(state.oauth.codes.get(&code_text), Flavour::Instagram, client_id, redirect_uri) {
        return instagram_api_error(message);
    }
    let code = state.oauth.codes.get_mut(&code_text).expect("checked");
    code.used = true;
    let (granted, account) = (code.granted.clone(), code.consent.ig_user_id.clone());
    let token = state.oauth.next("IGAAsimshort");
    // The short-lived token names the account from now on (ig_exchange_token, /me).
    state.tokens.insert(account.clone(), token.clone());
    let user_id: u64 = account.parse().unwrap_or_default();
    let body = json!({ "data": [{ "access_token": token, "user_id": user_id, "permissions": granted.join(",") }] });
    axum::Json(body).into_response()
}

/// `GET /{v}/oauth/access_token` with `code` (Facebook Login's code exchange) or with
/// `fb_exchange_token` of a Facebook user token; `None` for any other request, which the
/// Instagram-account token grant handles.
pub(crate) fn facebook_token(sim: &GraphSim, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
    let params = Params::parse(uri.query(), headers, &[]).ok()?;
    let mut state = sim.lock();
    if params.has("code") {
        state.record("GET", uri.path(), headers, "");
        for name in ["client_id", "client_secret", "redirect_uri"] {
            if !params.has(name) {
                return Some(graph_error_response(GraphError::invalid_parameter(format!("Missing {name} parameter."))));
            }
        }
        let code_text = params.get("code").unwrap_or_default().to_string();
        let (client_id, redirect_uri) = (params.get("client_id").unwrap_or_default(), params.get("redirect_uri").unwrap_or_default());
        if let Err((subcode, message)) = check_code(state.oauth.codes.get(&code_text), Flavour::Facebook, client_id, redirect_uri) {
            return Some(graph_error_response(GraphError::oauth_code(subcode, message)));
        }
        let code = state.oauth.codes.get_mut(&code_text).expect("checked");
        code.used = true;
        let user = FacebookUser { granted: code.granted.clone(), consent: code.consent.clone() };
        let token = state.oauth.next("EAAsimshort");
        state.oauth.facebook_users.insert(token.clone(), user);
        let body = json!({ "access_token": token, "token_type": "bearer", "expires_in": SHORT_LIVED_SECS });
        return Some(axum::Json(body).into_response());
    }
    let user = state.oauth.facebook_users.get(params.get("fb_exchange_token")?).cloned()?;
    state.record("GET", uri.path(), headers, "");
    if params.get("grant_type") != Some("fb_exchange_token") || !params.has("client_id") || !params.has("client_secret") {
        return Some(graph_error_response(GraphError::invalid_parameter("grant_type, client_id and client_secret are required.")));
    }
    let token = state.oauth.next("EAAsimlong");
    state.oauth.facebook_users.insert(token.clone(), user);
    Some(axum::Json(json!({ "access_token": token, "token_type": "bearer", "expires_in": LONG_LIVED_SECS })).into_response())
}

fn graph_error_response(err: GraphError) -> Response {
    (err.status, axum::Json(err.body("AsimOAuthTrace"))).into_response()
}

/// `GET /{v}/me/permissions` and `/{v}/me/accounts` for a Facebook user token; `None` when the
/// token is not one (then the Graph routes answer, e.g. for an Instagram-Login token).
pub(crate) fn facebook_me(sim: &GraphSim, edge: &str, uri: &Uri, headers: &HeaderMap) -> Option<Response> {
    let params = Params::parse(uri.query(), headers, &[]).ok()?;
    let token = access_token(headers, Some(&params))?;
    let mut state = sim.lock();
    let user = state.oauth.facebook_users.get(&token).cloned()?;
    state.record("GET", uri.path(), headers, "");
    let body = match edge {
        "permissions" => {
            let data: Vec<Value> = user.granted.iter().map(|p| json!({ "permission": p, "status": "granted" })).collect();
            json!({ "data": data })
        }
        _ => {
            if !user.granted.iter().any(|p| p == "pages_show_list") {
                return Some(graph_error_response(GraphError::missing_permission("pages_show_list")));
            }
            let mut data = Vec::new();
            for page in &user.consent.pages {
                let page_token = state.oauth.next("EAAsimpage");
                let linked = page.ig_user_id.as_ref().map(|ig| {
                    // The Page token publishes for the linked account from now on.
                    state.tokens.insert(ig.clone(), page_token.clone());
                    json!({ "id": ig })
                });
                let mut entry = json!({ "id": page.id, "name": page.name, "access_token": page_token });
                if let Some(linked) = linked {
                    entry["instagram_business_account"] = linked;
                }
                data.push(entry);
            }
            json!({ "data": data })
        }
    };
    Some(axum::Json(body).into_response())
}

/// `POST /_sim/oauth/consent` with a [`Consent`] (missing fields take their defaults).
pub(crate) async fn sim_consent(AxumState(sim): AxumState<GraphSim>, body: axum::body::Bytes) -> Response {
    match serde_json::from_slice::<Consent>(&body) {
        Ok(consent) => {
            sim.set_consent(consent.clone());
            axum::Json(consent).into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": format!("expected a consent object: {e}") }))).into_response(),
    }
}
