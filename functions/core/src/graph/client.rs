use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{ContainerSpec, ContainerStatus, GraphApi, GraphError, MediaSummary, PublishingLimit};
use std::collections::HashMap;
use std::sync::Mutex;

use crate::account::{Account, ApiUsage};
use crate::config::GraphConfig;

/// reqwest client of the Graph API. The token travels only in the Authorization header.
pub struct GraphClient {
    http: reqwest::Client,
    config: GraphConfig,
    /// The latest usage headers seen per account, from any answer, success or error.
    usage: Mutex<HashMap<String, ApiUsage>>,
}

impl GraphClient {
    pub fn new(config: GraphConfig) -> Result<GraphClient, crate::Error> {
        let http = crate::https::client_builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(std::time::Duration::from_secs(3)))
            .user_agent(concat!("instapipe/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| crate::Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(GraphClient { http, config, usage: Mutex::new(HashMap::new()) })
    }

    fn url(&self, account: &Account, path: &str) -> String {
        let host = self.config.base_url_override.as_deref().unwrap_or(account.login.graph_host());
        format!("{host}/{}/{path}", self.config.version)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        account: &Account,
        request: reqwest::RequestBuilder,
        token: &SecretString,
    ) -> Result<T, GraphError> {
        let response = request.bearer_auth(token.expose_secret()).send().await.map_err(transport)?;
        let status = response.status().as_u16();
        if let Some(usage) = usage_from_headers(response.headers(), &account.account_id) {
            self.usage.lock().unwrap().insert(account.account_id.clone(), usage);
        }
        let body = response.bytes().await.map_err(transport)?;
        if (200..300).contains(&status) {
            serde_json::from_slice(&body).map_err(|e| GraphError::Decode(e.to_string()))
        } else {
            Err(GraphError::from_response(status, &body))
        }
    }
}

/// `X-App-Usage: {"call_count":28,"total_cputime":25,"total_time":25}` and
/// `X-Business-Use-Case-Usage: {"<ig id>":[{"type":"instagram","call_count":45,...,
/// "estimated_time_to_regain_access":0}]}`; either may be missing or malformed.
pub fn usage_from_headers(headers: &reqwest::header::HeaderMap, account_id: &str) -> Option<ApiUsage> {
    fn json(headers: &reqwest::header::HeaderMap, name: &str) -> Option<serde_json::Value> {
        serde_json::from_str(headers.get(name)?.to_str().ok()?).ok()
    }
    fn highest(figures: &serde_json::Value) -> u32 {
        ["call_count", "total_cputime", "total_time"]
            .iter()
            .filter_map(|k| figures.get(k).and_then(serde_json::Value::as_u64))
            .max()
            .unwrap_or(0)
            .min(u64::from(u32::MAX)) as u32
    }
    let app = json(headers, "x-app-usage");
    let buc = json(headers, "x-business-use-case-usage");
    let entry = buc.as_ref().and_then(|b| b.get(account_id)).and_then(|list| {
        list.as_array()?.iter().find(|e| e.get("type").and_then(|t| t.as_str()) == Some("instagram")).cloned()
    });
    if app.is_none() && entry.is_none() {
        return None;
    }
    let regain = entry
        .as_ref()
        .and_then(|e| e.get("estimated_time_to_regain_access"))
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    Some(ApiUsage {
        app: app.as_ref().map(highest).unwrap_or(0),
        account: entry.as_ref().map(highest).unwrap_or(0),
        regain_minutes: regain.min(u64::from(u32::MAX)) as u32,
    })
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
    timestamp: Option<String>,
}

/// Meta writes `2026-11-23T10:00:00+0000` (no colon in the offset); RFC 3339 is taken too.
/// Unreadable: None (the media then cannot be told apart by time, and is not guessed at).
fn parse_graph_timestamp(text: &str) -> Option<time::OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    let meta = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second][offset_hour sign:mandatory][offset_minute]"
    );
    time::OffsetDateTime::parse(text, &meta).or_else(|_| time::OffsetDateTime::parse(text, &Rfc3339)).ok()
}

#[async_trait]
impl GraphApi for GraphClient {
    fn latest_usage(&self, account_id: &str) -> Option<ApiUsage> {
        self.usage.lock().unwrap().get(account_id).copied()
    }

    async fn create_container(&self, account: &Account, token: &SecretString, spec: &ContainerSpec) -> Result<String, GraphError> {
        let url = self.url(account, &format!("{}/media", account.account_id));
        let body: IdOnly = self.send(account, self.http.post(url).json(spec), token).await?;
        Ok(body.id)
    }

    async fn container_status(&self, account: &Account, token: &SecretString, container_id: &str) -> Result<ContainerStatus, GraphError> {
        let url = self.url(account, container_id);
        let body: StatusBody = self.send(account, self.http.get(url).query(&[("fields", "status_code,status")]), token).await?;
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
        let body: IdOnly = self.send(account, self.http.post(url).json(&serde_json::json!({ "creation_id": container_id })), token)
            .await?;
        Ok(body.id)
    }

    async fn permalink(&self, account: &Account, token: &SecretString, media_id: &str) -> Result<String, GraphError> {
        let url = self.url(account, media_id);
        let body: PermalinkBody = self.send(account, self.http.get(url).query(&[("fields", "id,permalink")]), token).await?;
        body.permalink.ok_or_else(|| GraphError::Decode("media has no permalink".into()))
    }

    async fn recent_media(&self, account: &Account, token: &SecretString, stories: bool) -> Result<Vec<MediaSummary>, GraphError> {
        let edge = if stories { "stories" } else { "media" };
        let url = self.url(account, &format!("{}/{edge}", account.account_id));
        let body: MediaList = self.send(account, self.http.get(url).query(&[("fields", "id,caption,permalink,timestamp"), ("limit", "25")]), token)
            .await?;
        Ok(body
            .data
            .into_iter()
            .map(|m| MediaSummary {
                timestamp: m.timestamp.as_deref().and_then(parse_graph_timestamp),
                id: m.id,
                caption: m.caption,
                permalink: m.permalink,
            })
            .collect())
    }

    async fn publishing_limit(&self, account: &Account, token: &SecretString) -> Result<PublishingLimit, GraphError> {
        let url = self.url(account, &format!("{}/content_publishing_limit", account.account_id));
        let body: LimitList = self.send(account, self.http.get(url).query(&[("fields", "quota_usage,config")]), token).await?;
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
        let body: IdOnly = self.send(account, self.http.post(url).json(&serde_json::json!({ "message": message })), token).await?;
        Ok(body.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn usage_headers_give_the_highest_figure_and_the_wait() {
        let mut headers = HeaderMap::new();
        headers.insert("x-app-usage", HeaderValue::from_static(r#"{"call_count":28,"total_cputime":35,"total_time":25}"#));
        headers.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(
                r#"{"1784":[{"type":"ads_insights","call_count":99},{"type":"instagram","call_count":45,"total_cputime":81,"total_time":12,"estimated_time_to_regain_access":7}]}"#,
            ),
        );
        let usage = usage_from_headers(&headers, "1784").unwrap();
        assert_eq!(usage, ApiUsage { app: 35, account: 81, regain_minutes: 7 });
        // Another account's entry is not ours; the app figures still count.
        assert_eq!(usage_from_headers(&headers, "9999").unwrap(), ApiUsage { app: 35, account: 0, regain_minutes: 0 });
    }

    #[test]
    fn missing_or_broken_usage_headers_are_no_usage() {
        let mut headers = HeaderMap::new();
        assert_eq!(usage_from_headers(&headers, "1"), None);
        headers.insert("x-app-usage", HeaderValue::from_static("not json"));
        headers.insert("x-business-use-case-usage", HeaderValue::from_static("[1,2]"));
        assert_eq!(usage_from_headers(&headers, "1"), None);
    }

    #[test]
    fn metas_media_timestamps_are_read_in_both_offset_forms() {
        use time::macros::datetime;
        assert_eq!(parse_graph_timestamp("2026-11-23T10:00:05+0000"), Some(datetime!(2026-11-23 10:00:05 UTC)));
        assert_eq!(parse_graph_timestamp("2026-11-23T11:00:05+0100"), Some(datetime!(2026-11-23 10:00:05 UTC)));
        assert_eq!(parse_graph_timestamp("2026-11-23T10:00:05Z"), Some(datetime!(2026-11-23 10:00:05 UTC)));
        assert_eq!(parse_graph_timestamp("yesterday"), None);
    }
}
