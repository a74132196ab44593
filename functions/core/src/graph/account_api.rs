//! Account-level Graph API calls that the publishing pipeline never makes: refreshing and
//! exchanging tokens, and reading the publishing quota (reference §1, §2.5, §2.8).
//!
//! A port of its own rather than more methods on `GraphApi`: these calls use other hosts and
//! paths (`/refresh_access_token` has no version), need the app secret, and carry the token in
//! the query string because that is how Meta defines them. Only refresh-tokens and the operator
//! CLI use them, so the publishing functions and their test fakes stay as they are.

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tokio::sync::OnceCell;

use crate::account::{Account, LoginFlavour};
use crate::config::GraphConfig;
use crate::error::{Error, Result};
use crate::secrets::AppCredentials;
use super::GraphError;

/// A token Meta issued, and how long it lives (`expires_in`, seconds), when Meta says.
#[derive(Clone, Debug)]
pub struct IssuedToken {
    pub access_token: SecretString,
    pub expires_in: Option<u64>,
}

/// `content_publishing_limit`: publishes in the rolling 24 h window, and the cap when given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublishingQuota {
    pub usage: u32,
    pub total: Option<u32>,
}

#[async_trait]
pub trait AccountApi: Send + Sync {
    /// A fresh long-lived token for a long-lived one that has not expired yet. Instagram Login:
    /// `refresh_access_token` (ig_refresh_token); Facebook Login: `fb_exchange_token`.
    async fn refresh_token(&self, login: LoginFlavour, token: &SecretString) -> Result<IssuedToken>;
    /// A long-lived token for a short-lived one (ig_exchange_token / fb_exchange_token).
    async fn exchange_token(&self, login: LoginFlavour, short_lived: &SecretString) -> Result<IssuedToken>;
    async fn publishing_quota(&self, account: &Account, token: &SecretString) -> Result<PublishingQuota>;
}

/// Where the app credentials come from: read once, on first use (refreshing Instagram-Login
/// tokens needs none, so a stack without Facebook accounts needs no app secret at all).
enum CredentialsFrom {
    SecretsManager { client: aws_sdk_secretsmanager::Client, name: String },
    Given,
}

/// reqwest client of the account-level calls. The base URL override (`GRAPH_API_BASE_URL`)
/// applies, so the simulator serves them too.
pub struct AccountApiClient {
    http: reqwest::Client,
    config: GraphConfig,
    from: CredentialsFrom,
    credentials: OnceCell<AppCredentials>,
}

impl AccountApiClient {
    pub fn new(config: GraphConfig, secrets: aws_sdk_secretsmanager::Client, credentials_secret: &str) -> Result<Self> {
        Ok(AccountApiClient {
            http: http_client(&config)?,
            config,
            from: CredentialsFrom::SecretsManager { client: secrets, name: credentials_secret.to_string() },
            credentials: OnceCell::new(),
        })
    }

    pub fn with_credentials(config: GraphConfig, credentials: AppCredentials) -> Result<Self> {
        Ok(AccountApiClient {
            http: http_client(&config)?,
            config,
            from: CredentialsFrom::Given,
            credentials: OnceCell::new_with(Some(credentials)),
        })
    }

    fn host(&self, login: LoginFlavour) -> &str {
        self.config.base_url_override.as_deref().unwrap_or(login.graph_host())
    }

    async fn credentials(&self) -> Result<&AppCredentials> {
        self.credentials
            .get_or_try_init(|| async {
                match &self.from {
                    CredentialsFrom::Given => Ok(AppCredentials::default()),
                    CredentialsFrom::SecretsManager { client, name } => AppCredentials::read(client, name).await,
                }
            })
            .await
    }

    async fn facebook_app(&self) -> Result<(String, SecretString)> {
        let creds = self.credentials().await?;
        match (&creds.facebook_app_id, &creds.facebook_app_secret) {
            (Some(id), Some(secret)) => Ok((id.clone(), secret.clone())),
            _ => Err(Error::Config(
                "Facebook Login tokens need facebook_app_id and facebook_app_secret in the Meta app secret".into(),
            )),
        }
    }

    /// Sends a request whose URL holds a token: neither the URL nor reqwest's error (which
    /// would name it) ever leaves this function.
    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T> {
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(transport)?;
        if (200..300).contains(&status) {
            serde_json::from_slice(&body).map_err(|e| GraphError::Decode(e.to_string()).into())
        } else {
            Err(GraphError::from_response(status, &body).into())
        }
    }
}

fn http_client(config: &GraphConfig) -> Result<reqwest::Client> {
    crate::https::client_builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(std::time::Duration::from_secs(3)))
        .user_agent(concat!("instapipe/", env!("CARGO_PKG_VERSION")))
        // The URL holds the token: a redirect would carry it (in the query, and in the Referer)
        // to wherever it points. Meta's token endpoints answer, they do not redirect.
        .redirect(reqwest::redirect::Policy::none())
        .referer(false)
        .build()
        .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))
}

fn transport(err: reqwest::Error) -> Error {
    if err.is_timeout() {
        GraphError::Timeout.into()
    } else {
        GraphError::Transport(err.without_url().to_string()).into()
    }
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenBody {
    fn issued(self) -> Result<IssuedToken> {
        if self.access_token.is_empty() {
            return Err(GraphError::Decode("the answer holds an empty access_token".into()).into());
        }
        Ok(IssuedToken { access_token: SecretString::from(self.access_token), expires_in: self.expires_in })
    }
}

#[derive(Deserialize)]
struct QuotaBody {
    data: Vec<QuotaItem>,
}

#[derive(Deserialize)]
struct QuotaItem {
    #[serde(default)]
    quota_usage: u32,
    #[serde(default)]
    config: Option<QuotaConfig>,
}

#[derive(Deserialize)]
struct QuotaConfig {
    quota_total: Option<u32>,
}

#[async_trait]
impl AccountApi for AccountApiClient {
    async fn refresh_token(&self, login: LoginFlavour, token: &SecretString) -> Result<IssuedToken> {
        let request = match login {
            LoginFlavour::Instagram => self.http.get(format!("{}/refresh_access_token", self.host(login))).query(&[
                ("grant_type", "ig_refresh_token"),
                ("access_token", token.expose_secret()),
            ]),
            // A Facebook user token is "refreshed" by exchanging it again while it is valid.
            LoginFlavour::Facebook => return self.exchange_token(login, token).await,
        };
        self.send::<TokenBody>(request).await?.issued()
    }

    async fn exchange_token(&self, login: LoginFlavour, short_lived: &SecretString) -> Result<IssuedToken> {
        let request = match login {
            LoginFlavour::Instagram => {
                let creds = self.credentials().await?;
                let secret = creds.instagram_app_secret.as_ref().ok_or_else(|| {
                    Error::Config("exchanging an Instagram token needs instagram_app_secret in the Meta app secret".into())
                })?;
                self.http.get(format!("{}/access_token", self.host(login))).query(&[
                    ("grant_type", "ig_exchange_token"),
                    ("client_secret", secret.expose_secret()),
                    ("access_token", short_lived.expose_secret()),
                ])
            }
            LoginFlavour::Facebook => {
                let (app_id, app_secret) = self.facebook_app().await?;
                let url = format!("{}/{}/oauth/access_token", self.host(login), self.config.version);
                self.http.get(url).query(&[
                    ("grant_type", "fb_exchange_token"),
                    ("client_id", app_id.as_str()),
                    ("client_secret", app_secret.expose_secret()),
                    ("fb_exchange_token", short_lived.expose_secret()),
                ])
            }
        };
        self.send::<TokenBody>(request).await?.issued()
    }

    async fn publishing_quota(&self, account: &Account, token: &SecretString) -> Result<PublishingQuota> {
        let url = format!(
            "{}/{}/{}/content_publishing_limit",
            self.host(account.login),
            self.config.version,
            account.account_id
        );
        let request = self.http.get(url).query(&[("fields", "config,quota_usage")]).bearer_auth(token.expose_secret());
        let body: QuotaBody = self.send(request).await?;
        let item = body.data.into_iter().next().ok_or_else(|| GraphError::Decode("empty quota answer".into()))?;
        Ok(PublishingQuota { usage: item.quota_usage, total: item.config.and_then(|c| c.quota_total) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_credentials_never_show_their_secrets() {
        let creds: AppCredentials =
            serde_json::from_str(r#"{"facebook_app_id":"123","facebook_app_secret":"fb-secret-xyz"}"#).unwrap();
        assert_eq!(creds.facebook_app_id.as_deref(), Some("123"));
        assert!(creds.instagram_app_secret.is_none());
        let issued = IssuedToken { access_token: SecretString::from("IGAA-secret-abc"), expires_in: Some(5) };
        assert!(!format!("{issued:?}").contains("secret-abc"));
    }

    #[tokio::test]
    async fn a_transport_error_does_not_name_the_url_that_holds_the_token() {
        // Nothing listens on port 9 of localhost: the request fails before any answer.
        let config = GraphConfig { base_url_override: Some("http://127.0.0.1:9".into()), ..GraphConfig::default() };
        let api = AccountApiClient::with_credentials(config, AppCredentials::default()).unwrap();
        let err = api.refresh_token(LoginFlavour::Instagram, &SecretString::from("IGAA-in-the-query")).await.unwrap_err();
        assert!(!err.to_string().contains("IGAA-in-the-query"), "{err}");
        assert!(!format!("{err:?}").contains("IGAA-in-the-query"), "{err:?}");
    }

    /// Every way a refresh can fail after the URL (token in its query) was built: a redirect, an
    /// error answer, a connection cut mid-body, no answer in time, no listener. The token is in no
    /// error and in no log line, even at the most verbose level.
    #[tokio::test]
    async fn the_refresh_url_is_in_no_error_and_no_log() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        const TOKEN: &str = "IGAA-refresh-me-SECRET";
        let (_guard, logs) = crate::telemetry::capture(crate::telemetry::LogLevel::Trace);
        let redirected = Arc::new(AtomicUsize::new(0));
        let hits = redirected.clone();
        let app = axum::Router::new()
            .route("/redirect/refresh_access_token", axum::routing::get(|| async { (axum::http::StatusCode::FOUND, [("location", "/elsewhere")]) }))
            .route(
                "/elsewhere",
                axum::routing::get(move || {
                    hits.fetch_add(1, Ordering::SeqCst);
                    async { "{}" }
                }),
            )
            .route(
                "/refused/refresh_access_token",
                axum::routing::get(|| async {
                    (axum::http::StatusCode::BAD_REQUEST, r#"{"error":{"message":"Invalid OAuth access token","code":190}}"#)
                }),
            )
            // Starts a body, then fails it: the answer cannot be read.
            .route(
                "/cut/refresh_access_token",
                axum::routing::get(|| async {
                    let body = futures::stream::iter([Ok(axum::body::Bytes::from_static(b"{\"access")), Err(std::io::Error::other("cut"))]);
                    ([("content-type", "application/json")], axum::body::Body::from_stream(body))
                }),
            )
            .route(
                "/slow/refresh_access_token",
                axum::routing::get(|| async {
                    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                    "{}"
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let mut errors = Vec::new();
        for host in [format!("{base}/redirect"), format!("{base}/refused"), format!("{base}/cut"), format!("{base}/slow"), "http://127.0.0.1:9".into()] {
            let config = GraphConfig { base_url_override: Some(host), timeout: std::time::Duration::from_millis(500), ..GraphConfig::default() };
            let api = AccountApiClient::with_credentials(config, AppCredentials::default()).unwrap();
            let err = api.refresh_token(LoginFlavour::Instagram, &SecretString::from(TOKEN)).await.unwrap_err();
            tracing::warn!(error = %err, debug = ?err, "refresh failed"); // as refresh-tokens reports it
            errors.push(format!("{err} / {err:?}"));
        }
        assert_eq!(redirected.load(Ordering::SeqCst), 0, "the redirect was not followed");
        assert!(errors[0].contains("HTTP 302"), "{}", errors[0]);
        assert!(errors[1].contains("190"), "{}", errors[1]);
        assert!(errors[3].contains("in time"), "{}", errors[3]);
        for error in &errors {
            assert!(!error.contains("SECRET") && !error.contains("refresh_access_token"), "{error}");
        }
        let logs = logs.text();
        assert!(logs.contains("refresh failed"), "{logs}");
        assert!(!logs.contains("SECRET") && !logs.contains("refresh_access_token"), "{logs}");
    }

    #[tokio::test]
    async fn a_facebook_refresh_without_app_credentials_says_what_is_missing() {
        let api = AccountApiClient::with_credentials(GraphConfig::default(), AppCredentials::default()).unwrap();
        let err = api.refresh_token(LoginFlavour::Facebook, &SecretString::from("EAAB")).await.unwrap_err();
        assert!(matches!(err, Error::Config(ref m) if m.contains("facebook_app_id")), "{err}");
    }
}
