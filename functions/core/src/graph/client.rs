use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{ContainerSpec, ContainerStatus, GraphApi, GraphError, MediaSummary, PublishingLimit};
use crate::account::Account;
use crate::config::GraphConfig;

/// reqwest client of the Graph API. The token travels only in the Authorization header.
pub struct GraphClient {
    http: reqwest::Client,
    config: GraphConfig,
}

impl GraphClient {
    pub fn new(config: GraphConfig) -> Result<GraphClient, crate::Error> {
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(std::time::Duration::from_secs(3)))
            .user_agent(concat!("instapipe/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| crate::Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(GraphClient { http, config })
    }

    fn url(&self, account: &Account, path: &str) -> String {
        let host = self.config.base_url_override.as_deref().unwrap_or(account.login.graph_host());
        format!("{host}/{}/{path}", self.config.version)
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder, token: &SecretString) -> Result<T, GraphError> {
        let response = request.bearer_auth(token.expose_secret()).send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(transport)?;
        if (200..300).contains(&status) {
            serde_json::from_slice(&body).map_err(|e| GraphError::Decode(e.to_string()))
        } else {
            Err(GraphError::from_response(status, &body))
        }
    }
}

fn transport(err: reqwest::Error) -> GraphError {
    if err.is_timeout() {
        GraphError::Timeout
    } else {
        // Without the URL: it names our account ids, and nothing else needs it.
        GraphError::Transport(err.without_url().to_string())
    }
}

#[derive(Deserialize)]
struct IdOnly {
    id: String,
}

#[derive(Deserialize)]
struct StatusBody {
    status_code: String,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
struct PermalinkBody {
    permalink: Option<String>,
}

#[derive(Deserialize)]
struct LimitList {
    data: Vec<LimitItem>,
}

#[derive(Deserialize)]
struct LimitItem {
    quota_usage: u32,
    config: Option<LimitConfig>,
}

#[derive(Deserialize)]
struct LimitConfig {
    quota_total: u32,
    #[serde(default)]
    quota_duration: Option<u64>,
}

#[derive(Deserialize)]
struct MediaList {
    data: Vec<MediaListItem>,
}

#[derive(Deserialize)]
struct MediaListItem {
    id: String,
    caption: Option<String>,
    permalink: Option<String>,
}

#[async_trait]
impl GraphApi for GraphClient {
    async fn create_container(&self, account: &Account, token: &SecretString, spec: &ContainerSpec) -> Result<String, GraphError> {
        let url = self.url(account, &format!("{}/media", account.account_id));
        let body: IdOnly = self.send(self.http.post(url).json(spec), token).await?;
        Ok(body.id)
    }

    async fn container_status(&self, account: &Account, token: &SecretString, container_id: &str) -> Result<ContainerStatus, GraphError> {
        let url = self.url(account, container_id);
        let body: StatusBody = self.send(self.http.get(url).query(&[("fields", "status_code,status")]), token).await?;
        Ok(match body.status_code.as_str() {
            "FINISHED" => ContainerStatus::Finished,
            "IN_PROGRESS" => ContainerStatus::InProgress,
            "PUBLISHED" => ContainerStatus::Published,
            "EXPIRED" => ContainerStatus::Expired,
            "ERROR" => ContainerStatus::Error(body.status.unwrap_or_else(|| "processing failed".into())),
            other => return Err(GraphError::Decode(format!("unknown status_code {other}"))),
        })
    }

    async fn publish(&self, account: &Account, token: &SecretString, container_id: &str) -> Result<String, GraphError> {
        let url = self.url(account, &format!("{}/media_publish", account.account_id));
        let body: IdOnly = self
            .send(self.http.post(url).json(&serde_json::json!({ "creation_id": container_id })), token)
            .await?;
        Ok(body.id)
    }

    async fn permalink(&self, account: &Account, token: &SecretString, media_id: &str) -> Result<String, GraphError> {
        let url = self.url(account, media_id);
        let body: PermalinkBody = self.send(self.http.get(url).query(&[("fields", "id,permalink")]), token).await?;
        body.permalink.ok_or_else(|| GraphError::Decode("media has no permalink".into()))
    }

    async fn recent_media(&self, account: &Account, token: &SecretString, stories: bool) -> Result<Vec<MediaSummary>, GraphError> {
        let edge = if stories { "stories" } else { "media" };
        let url = self.url(account, &format!("{}/{edge}", account.account_id));
        let body: MediaList = self
            .send(self.http.get(url).query(&[("fields", "id,caption,permalink,timestamp"), ("limit", "25")]), token)
            .await?;
        Ok(body
            .data
            .into_iter()
            .map(|m| MediaSummary { id: m.id, caption: m.caption, permalink: m.permalink })
            .collect())
    }

    async fn publishing_limit(&self, account: &Account, token: &SecretString) -> Result<PublishingLimit, GraphError> {
        let url = self.url(account, &format!("{}/content_publishing_limit", account.account_id));
        let body: LimitList = self.send(self.http.get(url).query(&[("fields", "quota_usage,config")]), token).await?;
        let item = body.data.into_iter().next().ok_or_else(|| GraphError::Decode("no quota in the answer".into()))?;
        let config = item.config.ok_or_else(|| GraphError::Decode("no quota config in the answer".into()))?;
        Ok(PublishingLimit {
            usage: item.quota_usage,
            total: config.quota_total,
            window_secs: config.quota_duration.unwrap_or(86_400),
        })
    }

    async fn comment(&self, account: &Account, token: &SecretString, media_id: &str, message: &str) -> Result<String, GraphError> {
        let url = self.url(account, &format!("{media_id}/comments"));
        let body: IdOnly = self.send(self.http.post(url).json(&serde_json::json!({ "message": message })), token).await?;
        Ok(body.id)
    }
}
