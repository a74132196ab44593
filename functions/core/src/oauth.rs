//! Connecting an Instagram account by OAuth (reference §1, §2.8): the authorize URL, the code →
//! short-lived → long-lived token exchanges of Instagram Login and Facebook Login (with the Page
//! token and its Instagram business account), the permission check, and the `state` that ties a
//! callback to the request that started it. The operator CLI (`accounts connect`, a loopback
//! callback) and the public function (`/oauth/start`, `/oauth/callback`) both connect through
//! here, then store the account with `handlers::reauth::register_account`, as `accounts add` does.
//!
//! Codes, tokens and the app secret never reach a log line or an error: requests whose URL
//! holds one are sent without their URL ever being formatted, and Meta's answers are reduced to
//! their code and message.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::account::LoginFlavour;
use crate::config::GraphConfig;
use crate::secrets::AppCredentials;

/// What Instagram Login asks for; publishing needs the second.
pub const INSTAGRAM_SCOPES: &[&str] = &["instagram_business_basic", "instagram_business_content_publish"];
/// What Facebook Login asks for: publishing, and finding the Page and its Instagram account
/// (`business_management` for Pages owned through a Business Manager).
pub const FACEBOOK_SCOPES: &[&str] =
    &["instagram_basic", "instagram_content_publish", "pages_show_list", "pages_read_engagement", "business_management"];
/// Without these granted nothing is stored.
const INSTAGRAM_REQUIRED: &[&str] = &["instagram_business_basic", "instagram_business_content_publish"];
const FACEBOOK_REQUIRED: &[&str] = &["instagram_basic", "instagram_content_publish", "pages_show_list", "pages_read_engagement"];

/// The scopes a login flavour asks for.
pub fn scopes(login: LoginFlavour) -> &'static [&'static str] {
    match login {
        LoginFlavour::Instagram => INSTAGRAM_SCOPES,
        LoginFlavour::Facebook => FACEBOOK_SCOPES,
    }
}

fn required(login: LoginFlavour) -> &'static [&'static str] {
    match login {
        LoginFlavour::Instagram => INSTAGRAM_REQUIRED,
        LoginFlavour::Facebook => FACEBOOK_REQUIRED,
    }
}

/// Where the login pages and code exchanges are: Meta's hosts, or one base URL for all of them
/// (`OAUTH_BASE_URL`: the simulator). The Graph hosts follow `GRAPH_API_BASE_URL`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthHosts {
    /// `https://www.instagram.com` (`/oauth/authorize`).
    pub instagram_authorize: String,
    /// `https://api.instagram.com` (`POST /oauth/access_token`).
    pub instagram_api: String,
    /// `https://www.facebook.com` (`/{version}/dialog/oauth`).
    pub facebook_dialog: String,
}

impl OAuthHosts {
    pub fn meta() -> OAuthHosts {
        OAuthHosts {
            instagram_authorize: "https://www.instagram.com".into(),
            instagram_api: "https://api.instagram.com".into(),
            facebook_dialog: "https://www.facebook.com".into(),
        }
    }

    pub fn from_override(base_url: Option<&str>) -> OAuthHosts {
        match base_url {
            None => OAuthHosts::meta(),
            Some(base) => {
                let base = base.trim_end_matches('/').to_string();
                OAuthHosts { instagram_authorize: base.clone(), instagram_api: base.clone(), facebook_dialog: base }
            }
        }
    }
}

/// The Meta app a login goes through: its id and its secret (Instagram Login has an app id and
/// secret of its own, shown under "Instagram" in the app dashboard).
pub struct OAuthApp {
    pub login: LoginFlavour,
    pub app_id: String,
    pub app_secret: SecretString,
}

impl std::fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuthApp").field("login", &self.login).field("app_id", &self.app_id).finish_non_exhaustive()
    }
}

impl OAuthApp {
    /// The app of `login`: the id given (a flag or the environment) or the one in the Meta app
    /// secret; the secret given (stdin) or the one in the Meta app secret.
    pub fn resolve(
        login: LoginFlavour,
        app_id: Option<String>,
        app_secret: Option<SecretString>,
        stored: Option<&AppCredentials>,
    ) -> Result<OAuthApp, ConnectError> {
        let (stored_id, stored_secret, id_field, secret_field) = match login {
            LoginFlavour::Instagram => (
                stored.and_then(|c| c.instagram_app_id.clone()),
                stored.and_then(|c| c.instagram_app_secret.clone()),
                "instagram_app_id",
                "instagram_app_secret",
            ),
            LoginFlavour::Facebook => (
                stored.and_then(|c| c.facebook_app_id.clone()),
                stored.and_then(|c| c.facebook_app_secret.clone()),
                "facebook_app_id",
                "facebook_app_secret",
            ),
        };
        let app_id = app_id.filter(|id| !id.trim().is_empty()).or(stored_id).ok_or_else(|| {
            ConnectError::Setup(format!(
                "no app id for {} Login: pass --app-id, set {}, or put {id_field} in the Meta app secret",
                flavour_name(login),
                app_id_var(login)
            ))
        })?;
        let app_secret = app_secret.filter(|s| !s.expose_secret().trim().is_empty()).or(stored_secret).ok_or_else(|| {
            ConnectError::Setup(format!(
                "no app secret for {} Login: put {secret_field} in the Meta app secret (Secrets Manager) or give it on stdin",
                flavour_name(login)
            ))
        })?;
        Ok(OAuthApp { login, app_id: app_id.trim().to_string(), app_secret })
    }
}

/// The environment variable holding a flavour's app id.
pub fn app_id_var(login: LoginFlavour) -> &'static str {
    match login {
        LoginFlavour::Instagram => "INSTAGRAM_APP_ID",
        LoginFlavour::Facebook => "FACEBOOK_APP_ID",
    }
}

pub fn flavour_name(login: LoginFlavour) -> &'static str {
    match login {
        LoginFlavour::Instagram => "Instagram",
        LoginFlavour::Facebook => "Facebook",
    }
}

/// A connected account: what is stored, and what is shown (never the token).
pub struct Connected {
    pub account_id: String,
    pub username: Option<String>,
    pub login: LoginFlavour,
    pub token: SecretString,
    /// `None`: the token does not expire (a Page token) or Meta did not say.
    pub expires_at: Option<OffsetDateTime>,
    /// Facebook Login: the Page whose token is stored.
    pub page: Option<Page>,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected")
            .field("account_id", &self.account_id)
            .field("username", &self.username)
            .field("login", &self.login)
            .field("expires_at", &self.expires_at)
            .field("page", &self.page)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Page {
    pub id: String,
    pub name: String,
}

/// Why a connection failed, in words that say what to do. Nothing is stored after any of them.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("the login was refused on the authorization page ({0}); nothing was stored. Start again and allow every permission instapipe asks for")]
    Denied(String),
    #[error("Meta refused the redirect URI: it must be listed exactly (scheme, host, port, path) under Valid OAuth Redirect URIs in the app's dashboard and be the one of the authorize request; nothing was stored. Add {0} there and start again")]
    RedirectUri(String),
    #[error("the authorization code has expired or was already used (a code works once, within minutes); nothing was stored. Start the connection again")]
    CodeExpiredOrUsed,
    #[error("the login did not grant {}; nothing was stored. Start again and keep {} ticked on the consent page (and make sure the app has the permission{})", .missing.join(", "), if .missing.len() == 1 { "it" } else { "them" }, if .missing.len() == 1 { "" } else { "s" })]
    MissingPermissions { missing: Vec<String> },
    #[error("the Facebook login manages no Page; nothing was stored. Link the Instagram professional account to a Facebook Page you manage and start again")]
    NoPage,
    #[error("the Facebook login manages several Pages ({0}); nothing was stored. Choose one with --page ID (or page=ID) and start again")]
    SeveralPages(String),
    #[error("the Facebook login does not manage Page {0}; nothing was stored. It manages: {1}")]
    UnknownPage(String, String),
    #[error("Page {0} has no Instagram professional account linked; nothing was stored. Link one in the Page's settings (or Instagram's) and start again")]
    NoInstagramAccount(String),
    #[error("the callback's state does not match this connection (a stale or forged redirect); nothing was stored. Start again")]
    State,
    #[error("{0}")]
    Setup(String),
    #[error("Meta refused the {step}: {message}; nothing was stored")]
    Meta { step: &'static str, message: String },
    #[error("Meta could not be reached for the {step}: {message}; nothing was stored. Try again")]
    Transport { step: &'static str, message: String },
}

/// The parameters of the redirect to the callback: a code and the state, or Meta's refusal.
#[derive(Clone, Default, Deserialize)]
pub struct CallbackParams {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub error_reason: Option<String>,
    #[serde(default)]
    pub error_description: Option<String>,
}

impl std::fmt::Debug for CallbackParams {
    /// Neither the code nor the state.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackParams").field("error", &self.error).field("error_reason", &self.error_reason).finish_non_exhaustive()
    }
}

impl CallbackParams {
    pub fn from_query(query: &str) -> CallbackParams {
        let mut params = CallbackParams::default();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = Some(value.into_owned()).filter(|v| !v.is_empty());
            match name.as_ref() {
                "code" => params.code = value,
                "state" => params.state = value,
                "error" => params.error = value,
                "error_reason" => params.error_reason = value,
                "error_description" => params.error_description = value,
                _ => {}
            }
        }
        params
    }

    /// The code (without Instagram's trailing `#_`), or why there is none.
    pub fn code(&self) -> Result<SecretString, ConnectError> {
        if let Some(error) = &self.error {
            let why = [Some(error.as_str()), self.error_reason.as_deref(), self.error_description.as_deref()]
                .into_iter()
                .flatten()
                .map(|s| s.chars().filter(|c| !c.is_control()).take(200).collect::<String>())
                .collect::<Vec<_>>()
                .join(": ");
            return Err(ConnectError::Denied(why));
        }
        let code = self.code.as_deref().map(|c| c.trim_end_matches("#_")).filter(|c| !c.is_empty());
        code.map(|c| SecretString::from(c.to_string()))
            .ok_or_else(|| ConnectError::Denied("the redirect carried neither a code nor an error".into()))
    }
}

/// Makes the HTTP calls of a connection.
pub struct OAuthClient {
    http: reqwest::Client,
    hosts: OAuthHosts,
    graph: GraphConfig,
}

/// Meta's answer to a refused call, in either shape: Graph's `{"error":{"message","code",
/// "error_subcode"}}` or api.instagram.com's `{"error_type","code","error_message"}`.
#[derive(Debug)]
struct MetaRefusal {
    code: i64,
    subcode: Option<i64>,
    message: String,
}

impl MetaRefusal {
    fn parse(status: u16, body: &[u8]) -> MetaRefusal {
        let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let text = |v: &serde_json::Value| v.as_str().map(|s| s.chars().take(300).collect::<String>());
        if let Some(error) = value.get("error").filter(|e| e.is_object()) {
            return MetaRefusal {
                code: error["code"].as_i64().unwrap_or(0),
                subcode: error["error_subcode"].as_i64(),
                message: text(&error["message"]).unwrap_or_default(),
            };
        }
        if let Some(message) = text(&value["error_message"]) {
            return MetaRefusal { code: value["code"].as_i64().unwrap_or(i64::from(status)), subcode: None, message };
        }
        MetaRefusal { code: 0, subcode: None, message: format!("HTTP {status} without an error body") }
    }

    /// The refusal of a code exchange, in what-to-do terms.
    fn of_code_exchange(self, redirect_uri: &str) -> ConnectError {
        let lower = self.message.to_ascii_lowercase();
        if self.subcode == Some(36_008) || lower.contains("redirect_uri") || lower.contains("redirect uri") {
            return ConnectError::RedirectUri(redirect_uri.to_string());
        }
        if matches!(self.subcode, Some(36_007 | 36_009))
            || lower.contains("has been used")
            || lower.contains("expired")
            || lower.contains("invalid authorization code")
            || lower.contains("verification code")
        {
            return ConnectError::CodeExpiredOrUsed;
        }
        self.into_error("code exchange")
    }

    fn into_error(self, step: &'static str) -> ConnectError {
        let code = match self.subcode {
            Some(sub) => format!(" (code {}/{sub})", self.code),
            None if self.code != 0 => format!(" (code {})", self.code),
            None => String::new(),
        };
        ConnectError::Meta { step, message: format!("{}{code}", self.message) }
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl OAuthClient {
    pub fn new(hosts: OAuthHosts, graph: GraphConfig) -> crate::Result<OAuthClient> {
        let http = crate::https::client_builder()
            .timeout(graph.timeout)
            .user_agent(concat!("instapipe/", env!("CARGO_PKG_VERSION")))
            // A login answer is never a redirect to follow.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| crate::Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(OAuthClient { http, hosts, graph })
    }

    fn graph_host(&self, login: LoginFlavour) -> &str {
        self.graph.base_url_override.as_deref().unwrap_or(login.graph_host())
    }

    /// The page the person opens to log in and consent.
    pub fn authorize_url(&self, app: &OAuthApp, redirect_uri: &str, state: &str) -> String {
        let base = match app.login {
            LoginFlavour::Instagram => format!("{}/oauth/authorize", self.hosts.instagram_authorize),
            LoginFlavour::Facebook => format!("{}/{}/dialog/oauth", self.hosts.facebook_dialog, self.graph.version),
        };
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &app.app_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("scope", &scopes(app.login).join(","))
            .append_pair("state", state)
            .finish();
        format!("{base}?{query}")
    }

    /// Sends a request that carries a secret: neither its URL nor reqwest's error (which would
    /// name the URL) leaves this function. A 2xx answer's body, or Meta's refusal.
    async fn send(&self, step: &'static str, request: reqwest::RequestBuilder) -> Result<Result<Vec<u8>, MetaRefusal>, ConnectError> {
        let transport = |e: reqwest::Error| ConnectError::Transport { step, message: e.without_url().to_string() };
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(transport)?.to_vec();
        Ok(if (200..300).contains(&status) { Ok(body) } else { Err(MetaRefusal::parse(status, &body)) })
    }

    async fn call<T: serde::de::DeserializeOwned>(&self, step: &'static str, request: reqwest::RequestBuilder) -> Result<T, ConnectError> {
        let body = self.send(step, request).await?.map_err(|refusal| refusal.into_error(step))?;
        decode(step, &body)
    }

    /// Code → short-lived → long-lived token, its permissions checked, and the account it
    /// publishes for (Facebook Login: the Page token of `page`, or of the only Page).
    pub async fn connect(&self, app: &OAuthApp, redirect_uri: &str, code: &SecretString, page: Option<&str>) -> Result<Connected, ConnectError> {
        match app.login {
            LoginFlavour::Instagram => self.connect_instagram(app, redirect_uri, code).await,
            LoginFlavour::Facebook => self.connect_facebook(app, redirect_uri, code, page).await,
        }
    }

    async fn connect_instagram(&self, app: &OAuthApp, redirect_uri: &str, code: &SecretString) -> Result<Connected, ConnectError> {
        let step = "code exchange";
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &app.app_id)
            .append_pair("client_secret", app.app_secret.expose_secret())
            .append_pair("grant_type", "authorization_code")
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code", code.expose_secret())
            .finish();
        let request = self
            .http
            .post(format!("{}/oauth/access_token", self.hosts.instagram_api))
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form);
        let body = self.send(step, request).await?.map_err(|refusal| refusal.of_code_exchange(redirect_uri))?;
        let short = InstagramShortToken::parse(&body)?;
        check_permissions(LoginFlavour::Instagram, &short.permissions)?;

        let step = "exchange for a long-lived token";
        let request = self.http.get(format!("{}/access_token", self.graph_host(LoginFlavour::Instagram))).query(&[
            ("grant_type", "ig_exchange_token"),
            ("client_secret", app.app_secret.expose_secret()),
            ("access_token", short.access_token.expose_secret()),
        ]);
        let long: TokenAnswer = self.call(step, request).await?;
        let token = non_empty(step, long.access_token)?;

        #[derive(Deserialize)]
        struct Me {
            #[serde(default)]
            user_id: Option<serde_json::Value>,
            #[serde(default)]
            id: Option<serde_json::Value>,
            #[serde(default)]
            username: Option<String>,
        }
        let url = format!("{}/{}/me", self.graph_host(LoginFlavour::Instagram), self.graph.version);
        let request = self.http.get(url).query(&[("fields", "user_id,username")]).bearer_auth(token.expose_secret());
        let me: Me = self.call("account lookup (/me)", request).await?;
        let account_id = me
            .user_id
            .or(me.id)
            .or(short.user_id)
            .and_then(|v| id_text(&v))
            .ok_or_else(|| ConnectError::Meta { step: "account lookup (/me)", message: "the answer names no user_id".into() })?;
        Ok(Connected {
            account_id,
            username: me.username,
            login: LoginFlavour::Instagram,
            token,
            // To the second: it is shown and stored as RFC 3339.
            expires_at: long.expires_in.map(|s| (OffsetDateTime::now_utc() + Duration::from_secs(s)).replace_nanosecond(0).unwrap_or_else(|_| OffsetDateTime::now_utc())),
            page: None,
        })
    }

    async fn connect_facebook(&self, app: &OAuthApp, redirect_uri: &str, code: &SecretString, page: Option<&str>) -> Result<Connected, ConnectError> {
        let host = self.graph_host(LoginFlavour::Facebook);
        let version = &self.graph.version;
        let step = "code exchange";
        let request = self.http.get(format!("{host}/{version}/oauth/access_token")).query(&[
            ("client_id", app.app_id.as_str()),
            ("redirect_uri", redirect_uri),
            ("client_secret", app.app_secret.expose_secret()),
            ("code", code.expose_secret()),
        ]);
        let body = self.send(step, request).await?.map_err(|refusal| refusal.of_code_exchange(redirect_uri))?;
        let short: TokenAnswer = decode(step, &body)?;
        let short = non_empty(step, short.access_token)?;

        let step = "exchange for a long-lived token";
        let request = self.http.get(format!("{host}/{version}/oauth/access_token")).query(&[
            ("grant_type", "fb_exchange_token"),
            ("client_id", app.app_id.as_str()),
            ("client_secret", app.app_secret.expose_secret()),
            ("fb_exchange_token", short.expose_secret()),
        ]);
        let long: TokenAnswer = self.call(step, request).await?;
        let user_token = non_empty(step, long.access_token)?;

        #[derive(Deserialize)]
        struct Granted {
            permission: String,
            status: String,
        }
        #[derive(Deserialize)]
        struct Data<T> {
            data: Vec<T>,
        }
        let request = self.http.get(format!("{host}/{version}/me/permissions")).bearer_auth(user_token.expose_secret());
        let granted: Data<Granted> = self.call("permission check (/me/permissions)", request).await?;
        let granted: Vec<String> = granted.data.into_iter().filter(|p| p.status == "granted").map(|p| p.permission).collect();
        check_permissions(LoginFlavour::Facebook, &granted)?;

        #[derive(Deserialize)]
        struct PageEntry {
            id: String,
            #[serde(default)]
            name: String,
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            instagram_business_account: Option<IgRef>,
        }
        #[derive(Deserialize)]
        struct IgRef {
            id: String,
            #[serde(default)]
            username: Option<String>,
        }
        let request = self
            .http
            .get(format!("{host}/{version}/me/accounts"))
            .query(&[("fields", "id,name,access_token,instagram_business_account{id,username}")])
            .bearer_auth(user_token.expose_secret());
        let pages: Data<PageEntry> = self.call("Page lookup (/me/accounts)", request).await?;
        let names = || pages.data.iter().map(|p| format!("{} ({})", p.id, p.name)).collect::<Vec<_>>().join(", ");
        let chosen = match page {
            Some(id) => pages.data.iter().find(|p| p.id == id).ok_or_else(|| ConnectError::UnknownPage(id.to_string(), names()))?,
            None => match pages.data.as_slice() {
                [] => return Err(ConnectError::NoPage),
                [only] => only,
                _ => return Err(ConnectError::SeveralPages(names())),
            },
        };
        let ig = chosen.instagram_business_account.as_ref().ok_or_else(|| ConnectError::NoInstagramAccount(chosen.id.clone()))?;
        let page_token = chosen.access_token.clone().ok_or_else(|| ConnectError::Meta {
            step: "Page lookup (/me/accounts)",
            message: format!("no Page token for Page {}: the login needs a Page role with MANAGE or CREATE_CONTENT", chosen.id),
        })?;
        Ok(Connected {
            account_id: ig.id.clone(),
            username: ig.username.clone(),
            login: LoginFlavour::Facebook,
            token: non_empty("Page lookup (/me/accounts)", page_token)?,
            // A Page token from a long-lived user token does not expire (reference §2.8).
            expires_at: None,
            page: Some(Page { id: chosen.id.clone(), name: chosen.name.clone() }),
        })
    }
}

fn decode<T: serde::de::DeserializeOwned>(step: &'static str, body: &[u8]) -> Result<T, ConnectError> {
    // serde's message may quote the body, which holds a token: only the position is kept.
    serde_json::from_slice(body)
        .map_err(|e| ConnectError::Meta { step, message: format!("the answer was not understood (line {}, column {})", e.line(), e.column()) })
}

fn non_empty(step: &'static str, token: String) -> Result<SecretString, ConnectError> {
    if token.trim().is_empty() {
        return Err(ConnectError::Meta { step, message: "the answer holds an empty access_token".into() });
    }
    Ok(SecretString::from(token))
}

fn id_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// api.instagram.com's answer to the code exchange. Its shape has varied (reference §2.8):
/// `{"access_token","user_id","permissions":[…]}` or `{"data":[{…,"permissions":"a,b"}]}`.
struct InstagramShortToken {
    access_token: SecretString,
    user_id: Option<serde_json::Value>,
    permissions: Vec<String>,
}

impl InstagramShortToken {
    fn parse(body: &[u8]) -> Result<InstagramShortToken, ConnectError> {
        let step = "code exchange";
        let value: serde_json::Value = decode(step, body)?;
        let entry = match value.get("data").and_then(|d| d.as_array()) {
            Some(data) => data.first().cloned().unwrap_or_default(),
            None => value,
        };
        let token = entry["access_token"].as_str().unwrap_or_default().to_string();
        let permissions = match &entry["permissions"] {
            serde_json::Value::String(list) => list.split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).collect(),
            serde_json::Value::Array(list) => list.iter().filter_map(|p| p.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        };
        Ok(InstagramShortToken { access_token: non_empty(step, token)?, user_id: Some(entry["user_id"].clone()).filter(|v| !v.is_null()), permissions })
    }
}

/// Every permission publishing needs must be granted.
fn check_permissions(login: LoginFlavour, granted: &[String]) -> Result<(), ConnectError> {
    let missing: Vec<String> = required(login).iter().filter(|p| !granted.iter().any(|g| g == *p)).map(|p| p.to_string()).collect();
    if missing.is_empty() { Ok(()) } else { Err(ConnectError::MissingPermissions { missing }) }
}

// ---- state ----------------------------------------------------------------------------------

/// A random state for a loopback callback: 32 bytes, base64url.
pub fn random_state() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Compares two states in constant time (a timing difference would leak the expected one).
pub fn same_state(expected: &str, got: &str) -> bool {
    use subtle::ConstantTimeEq;
    expected.len() == got.len() && bool::from(expected.as_bytes().ct_eq(got.as_bytes()))
}

/// What a signed state of `/oauth/start` carries: the flavour, the Page chosen, the operator's
/// API key (by its SHA-256, so a revoked key's connection fails) and when it expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateClaims {
    #[serde(rename = "l")]
    pub login: LoginFlavour,
    /// SHA-256 (hex) of the API key that started the connection.
    #[serde(rename = "k")]
    pub key_hash: String,
    #[serde(rename = "p", default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// Unix seconds.
    #[serde(rename = "e")]
    pub expires: i64,
    /// Makes every state unique.
    #[serde(rename = "n")]
    pub nonce: String,
}

/// How long a signed state is good for: the person has this long to log in.
pub const STATE_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// Why a signed state was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the state is not one /oauth/start issued")]
    Malformed,
    #[error("the state's signature does not match")]
    Signature,
    #[error("the state has expired: start again with /oauth/start")]
    Expired,
}

/// The HMAC key of states: derived from the flavour's app secret, so nothing new needs storing
/// and a state can be neither made nor changed without that secret.
pub fn state_key(app_secret: &SecretString) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.expose_secret().as_bytes()).expect("HMAC takes any key");
    mac.update(b"instapipe oauth state v1");
    mac.finalize().into_bytes().to_vec()
}

/// `base64url(claims JSON) . base64url(HMAC-SHA256)`.
pub fn sign_state(claims: &StateClaims, key: &[u8]) -> String {
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(payload.as_bytes());
    format!("{payload}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
}

/// The claims a state makes, unverified: which flavour's key checks it.
pub fn peek_state(state: &str) -> Result<StateClaims, StateError> {
    let (payload, _) = state.split_once('.').ok_or(StateError::Malformed)?;
    let json = URL_SAFE_NO_PAD.decode(payload).map_err(|_| StateError::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| StateError::Malformed)
}

/// The claims, once the signature (constant time) and the expiry are checked.
pub fn verify_state(state: &str, key: &[u8], now: OffsetDateTime) -> Result<StateClaims, StateError> {
    let (payload, signature) = state.split_once('.').ok_or(StateError::Malformed)?;
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| StateError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(payload.as_bytes());
    mac.verify_slice(&signature).map_err(|_| StateError::Signature)?;
    let claims = peek_state(state)?;
    if claims.expires <= now.unix_timestamp() {
        return Err(StateError::Expired);
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(expires: i64) -> StateClaims {
        StateClaims { login: LoginFlavour::Facebook, key_hash: "ab".repeat(32), page: Some("123".into()), expires, nonce: random_state() }
    }

    #[test]
    fn a_signed_state_verifies_until_it_expires_and_not_once_changed() {
        let now = OffsetDateTime::now_utc();
        let key = state_key(&SecretString::from("app-secret"));
        let good = claims(now.unix_timestamp() + 60);
        let state = sign_state(&good, &key);
        assert_eq!(verify_state(&state, &key, now).unwrap(), good);
        assert_eq!(verify_state(&state, &key, now + Duration::from_secs(61)), Err(StateError::Expired));
        let other_key = state_key(&SecretString::from("another-secret"));
        assert_eq!(verify_state(&state, &other_key, now), Err(StateError::Signature));
        // Another payload under the same signature (a longer expiry, another key hash).
        let forged = format!("{}.{}", sign_state(&claims(now.unix_timestamp() + 9_999), &key).split_once('.').unwrap().0, state.split_once('.').unwrap().1);
        assert_eq!(verify_state(&forged, &key, now), Err(StateError::Signature));
        assert_eq!(verify_state("garbage", &key, now), Err(StateError::Malformed));
        assert_eq!(verify_state("e30.!!", &key, now), Err(StateError::Malformed));
    }

    #[test]
    fn loopback_states_are_random_and_compared_whole() {
        let (a, b) = (random_state(), random_state());
        assert_ne!(a, b);
        assert!(a.len() >= 43);
        assert!(same_state(&a, &a.clone()));
        assert!(!same_state(&a, &b));
        assert!(!same_state(&a, &a[..a.len() - 1]));
    }

    #[test]
    fn the_callback_gives_the_code_without_instagrams_suffix_or_says_why_not() {
        let params = CallbackParams::from_query("code=AQabc%23_&state=s1");
        assert_eq!(params.code().unwrap().expose_secret(), "AQabc");
        let denied = CallbackParams::from_query("error=access_denied&error_reason=user_denied&error_description=Permissions+error&state=s1");
        let err = denied.code().unwrap_err();
        assert!(matches!(err, ConnectError::Denied(_)));
        let text = err.to_string();
        assert!(text.contains("access_denied") && text.contains("user_denied") && text.contains("nothing was stored"), "{text}");
        assert!(!format!("{params:?}").contains("AQabc"));
    }

    #[test]
    fn both_error_shapes_are_read_and_code_refusals_say_what_to_do() {
        let instagram = br#"{"error_type":"OAuthException","code":400,"error_message":"This authorization code has been used"}"#;
        assert!(matches!(MetaRefusal::parse(400, instagram).of_code_exchange("http://x/cb"), ConnectError::CodeExpiredOrUsed));
        let redirect = br#"{"error":{"message":"Error validating verification code. Please make sure your redirect_uri is identical","type":"OAuthException","code":100,"error_subcode":36008}}"#;
        let err = MetaRefusal::parse(400, redirect).of_code_exchange("http://127.0.0.1:8123/callback");
        assert!(err.to_string().contains("http://127.0.0.1:8123/callback"), "{err}");
        let other = MetaRefusal::parse(400, br#"{"error":{"message":"Invalid client_secret","code":101}}"#).of_code_exchange("x");
        assert_eq!(other.to_string(), "Meta refused the code exchange: Invalid client_secret (code 101); nothing was stored");
        assert_eq!(MetaRefusal::parse(502, b"").message, "HTTP 502 without an error body");
    }

    #[test]
    fn instagram_code_answers_of_either_shape_give_the_permissions() {
        let flat = br#"{"access_token":"IGAA1","user_id":17841400000000002,"permissions":["instagram_business_basic"]}"#;
        let parsed = InstagramShortToken::parse(flat).unwrap();
        assert_eq!(parsed.permissions, ["instagram_business_basic"]);
        let err = check_permissions(LoginFlavour::Instagram, &parsed.permissions).unwrap_err();
        assert!(err.to_string().contains("instagram_business_content_publish"), "{err}");
        let data = br#"{"data":[{"access_token":"IGAA2","user_id":"1","permissions":"instagram_business_basic,instagram_business_content_publish"}]}"#;
        let parsed = InstagramShortToken::parse(data).unwrap();
        assert!(check_permissions(LoginFlavour::Instagram, &parsed.permissions).is_ok());
        assert!(InstagramShortToken::parse(br#"{"access_token":""}"#).is_err());
    }

    #[test]
    fn the_app_comes_from_the_flags_or_the_stored_credentials() {
        let stored: AppCredentials = serde_json::from_str(r#"{"instagram_app_id":"99","instagram_app_secret":"s3cr3t"}"#).unwrap();
        let app = OAuthApp::resolve(LoginFlavour::Instagram, None, None, Some(&stored)).unwrap();
        assert_eq!(app.app_id, "99");
        let app = OAuthApp::resolve(LoginFlavour::Instagram, Some("7".into()), None, Some(&stored)).unwrap();
        assert_eq!(app.app_id, "7");
        assert!(!format!("{app:?}").contains("s3cr3t"));
        let err = OAuthApp::resolve(LoginFlavour::Facebook, None, None, Some(&stored)).unwrap_err();
        assert!(err.to_string().contains("FACEBOOK_APP_ID"), "{err}");
        let err = OAuthApp::resolve(LoginFlavour::Facebook, Some("5".into()), None, None).unwrap_err();
        assert!(err.to_string().contains("facebook_app_secret"), "{err}");
    }

    #[test]
    fn the_authorize_url_asks_for_the_flavours_scopes() {
        let client = OAuthClient::new(OAuthHosts::from_override(Some("http://127.0.0.1:4000/")), GraphConfig::default()).unwrap();
        let app = OAuthApp { login: LoginFlavour::Instagram, app_id: "42".into(), app_secret: SecretString::from("x") };
        let url = client.authorize_url(&app, "http://127.0.0.1:9/callback", "st");
        assert!(url.starts_with("http://127.0.0.1:4000/oauth/authorize?client_id=42&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcallback"), "{url}");
        assert!(url.contains("scope=instagram_business_basic%2Cinstagram_business_content_publish") && url.ends_with("state=st"), "{url}");
        let app = OAuthApp { login: LoginFlavour::Facebook, ..app };
        assert!(client.authorize_url(&app, "https://x/cb", "st").starts_with("http://127.0.0.1:4000/v25.0/dialog/oauth?"));
    }
}
