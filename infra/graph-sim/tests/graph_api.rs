//! Black-box tests: a simulator spawned on a free port, driven over HTTP with reqwest.

use std::time::Duration;

use graph_sim::{GraphSim, SimConfig, spawn};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

const ACCOUNT: &str = "17841400000000001";
const TOKEN: &str = "IGAA-test-token";
const IMAGE: &str = "https://cdn.example.com/photo.jpg";
const VIDEO: &str = "https://cdn.example.com/clip.mp4";

/// Short delays, with margins wide enough for a busy machine.
fn fast() -> SimConfig {
    SimConfig {
        image_delay: Duration::from_millis(300),
        video_delay: Duration::from_millis(1000),
        ..SimConfig::default()
    }
}

/// No processing delay at all, for tests about other things.
fn instant() -> SimConfig {
    SimConfig {
        image_delay: Duration::ZERO,
        video_delay: Duration::ZERO,
        ..SimConfig::default()
    }
}

struct Api {
    sim: GraphSim,
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn start(config: SimConfig) -> Api {
        let (sim, base) = spawn(config, 0).await.expect("spawn graph-sim");
        sim.set_token(ACCOUNT, TOKEN);
        Api {
            sim,
            base,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v25.0/{path}", self.base)
    }

    async fn get(&self, path: &str) -> Response {
        self.http
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
    }

    /// POST with a form body and the bearer token.
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Response {
        self.post_as(path, form, Some(TOKEN)).await
    }

    async fn post_as(&self, path: &str, form: &[(&str, &str)], token: Option<&str>) -> Response {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut request = self
            .http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    async fn create(&self, form: &[(&str, &str)]) -> String {
        let response = self.post(&format!("{ACCOUNT}/media"), form).await;
        let (status, body) = json_of(response).await;
        assert_eq!(status, StatusCode::OK, "create failed: {body}");
        body["id"].as_str().expect("container id").to_string()
    }

    async fn status_code(&self, container: &str) -> String {
        let (status, body) = json_of(
            self.get(&format!("{container}?fields=status_code,status"))
                .await,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["status_code"].as_str().unwrap().to_string()
    }

    async fn publish(&self, container: &str) -> Response {
        self.post(
            &format!("{ACCOUNT}/media_publish"),
            &[("creation_id", container)],
        )
        .await
    }
}

async fn json_of(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.unwrap();
    let body =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"));
    (status, body)
}

/// Asserts a Graph error with the given code/subcode and the full Meta body shape.
async fn assert_graph_error(response: Response, code: i64, subcode: Option<i64>) -> Value {
    let (status, body) = json_of(response).await;
    let error = &body["error"];
    assert_eq!(
        error["code"],
        json!(code),
        "unexpected body ({status}): {body}"
    );
    assert_eq!(
        error.get("error_subcode").and_then(Value::as_i64),
        subcode,
        "{body}"
    );
    assert_eq!(error["type"], "OAuthException");
    for field in [
        "message",
        "error_user_title",
        "error_user_msg",
        "fbtrace_id",
    ] {
        assert!(error[field].is_string(), "missing {field}: {body}");
    }
    assert!(error["is_transient"].is_boolean(), "{body}");
    body
}

#[tokio::test]
async fn image_goes_from_in_progress_to_finished_and_publishes() {
    let api = Api::start(fast()).await;
    let container = api
        .create(&[("image_url", IMAGE), ("caption", "Hello #rust")])
        .await;
    assert!(
        container.parse::<u64>().is_ok(),
        "ids are numeric strings: {container}"
    );
    assert_eq!(api.status_code(&container).await, "IN_PROGRESS");

    // Publishing too early is 9007/2207027.
    let response = api.publish(&container).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_graph_error(response, 9007, Some(2207027)).await;

    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(api.status_code(&container).await, "FINISHED");

    let (status, body) = json_of(api.publish(&container).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let media_id = body["id"].as_str().unwrap().to_string();
    assert_ne!(media_id, container);
    assert_eq!(api.status_code(&container).await, "PUBLISHED");

    let (status, media) = json_of(
        api.get(&format!(
            "{media_id}?fields=id,permalink,timestamp,media_type,media_product_type,shortcode"
        ))
        .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{media}");
    let shortcode = media["shortcode"].as_str().unwrap();
    assert_eq!(shortcode.len(), 11);
    assert_eq!(
        media["permalink"],
        format!("https://www.instagram.com/p/{shortcode}/")
    );
    assert_eq!(media["media_type"], "IMAGE");
    assert_eq!(media["media_product_type"], "FEED");
    let timestamp = media["timestamp"].as_str().unwrap();
    assert!(
        timestamp.ends_with("+0000") && timestamp.len() == 24,
        "{timestamp}"
    );
    assert!(
        media.get("caption").is_none(),
        "only requested fields: {media}"
    );

    let published = api.sim.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].media_id, media_id);
    assert_eq!(published[0].container_id, container);
    assert_eq!(published[0].caption.as_deref(), Some("Hello #rust"));
    assert_eq!(published[0].media_urls, vec![IMAGE.to_string()]);
    assert_eq!(published[0].permalink, media["permalink"]);

    // The container state is visible to tests, and so is the list used to recover lost answers.
    assert_eq!(api.sim.containers()[0].status_code, "PUBLISHED");
    let (_, list) = json_of(api.get(&format!("{ACCOUNT}/media")).await).await;
    assert_eq!(list["data"][0]["id"], json!(media_id));
    assert_eq!(list["data"][0]["caption"], "Hello #rust");
}

#[tokio::test]
async fn unfetchable_media_makes_an_error_container() {
    let api = Api::start(instant()).await;
    let bad = api
        .create(&[("image_url", "https://cdn.example.com/bad-media.jpg")])
        .await;
    let insecure = api
        .create(&[("image_url", "http://cdn.example.com/photo.jpg")])
        .await;
    for container in [&bad, &insecure] {
        let (_, body) = json_of(
            api.get(&format!("{container}?fields=status_code,status"))
                .await,
        )
        .await;
        assert_eq!(body["status_code"], "ERROR");
        assert_eq!(
            body["status"],
            "Error: Media download has failed. The media URI doesn't meet our requirements. (2207052)"
        );
    }
    assert_graph_error(api.publish(&bad).await, -1, Some(2207032)).await;
    assert!(api.sim.published().is_empty());
}

#[tokio::test]
async fn container_validation_follows_meta() {
    let api = Api::start(instant()).await;
    let media = format!("{ACCOUNT}/media");
    // Image without image_url, standalone VIDEO, REELS without video_url.
    assert_graph_error(api.post(&media, &[("caption", "x")]).await, 100, None).await;
    assert_graph_error(
        api.post(&media, &[("media_type", "VIDEO"), ("video_url", VIDEO)])
            .await,
        100,
        Some(2207023),
    )
    .await;
    assert_graph_error(
        api.post(&media, &[("media_type", "REELS")]).await,
        100,
        None,
    )
    .await;
    assert_graph_error(
        api.post(&media, &[("media_type", "STORIES")]).await,
        100,
        None,
    )
    .await;
    // Caption limits.
    let long = "a".repeat(2201);
    assert_graph_error(
        api.post(&media, &[("image_url", IMAGE), ("caption", &long)])
            .await,
        36004,
        Some(2207010),
    )
    .await;
    let tags: String = (0..31).map(|i| format!("#t{i} ")).collect();
    assert_graph_error(
        api.post(&media, &[("image_url", IMAGE), ("caption", &tags)])
            .await,
        36004,
        Some(2207010),
    )
    .await;
    // alt_text is for images only.
    assert_graph_error(
        api.post(
            &media,
            &[
                ("media_type", "REELS"),
                ("video_url", VIDEO),
                ("alt_text", "a clip"),
            ],
        )
        .await,
        100,
        None,
    )
    .await;
    api.create(&[("image_url", IMAGE), ("alt_text", "a photo")])
        .await;
}

#[tokio::test]
async fn carousel_rules_and_publish() {
    let api = Api::start(fast()).await;
    let media = format!("{ACCOUNT}/media");
    let image_child = api
        .create(&[("image_url", IMAGE), ("is_carousel_item", "true")])
        .await;

    // 1 child and 11 children are both outside 2..=10.
    let response = api
        .post(
            &media,
            &[("media_type", "CAROUSEL"), ("children", &image_child)],
        )
        .await;
    assert_graph_error(response, 100, Some(2207028)).await;
    let eleven = [image_child.as_str(); 11].join(",");
    assert_graph_error(
        api.post(&media, &[("media_type", "CAROUSEL"), ("children", &eleven)])
            .await,
        100,
        Some(2207028),
    )
    .await;
    // Reels are neither carousel items nor children; plain images need is_carousel_item.
    let response = api
        .post(
            &media,
            &[
                ("media_type", "REELS"),
                ("video_url", VIDEO),
                ("is_carousel_item", "true"),
            ],
        )
        .await;
    assert_graph_error(response, 100, Some(2207023)).await;
    let reel = api
        .create(&[("media_type", "REELS"), ("video_url", VIDEO)])
        .await;
    let children = format!("{image_child},{reel}");
    assert_graph_error(
        api.post(
            &media,
            &[("media_type", "CAROUSEL"), ("children", &children)],
        )
        .await,
        100,
        Some(2207023),
    )
    .await;
    let single = api.create(&[("image_url", IMAGE)]).await;
    let children = format!("{image_child},{single}");
    assert_graph_error(
        api.post(
            &media,
            &[("media_type", "CAROUSEL"), ("children", &children)],
        )
        .await,
        100,
        None,
    )
    .await;
    // Unknown children.
    assert_graph_error(
        api.post(&media, &[("media_type", "CAROUSEL"), ("children", "1,2")])
            .await,
        100,
        None,
    )
    .await;

    // A valid carousel with fresh children (given as a JSON array).
    // The parent waits for its video child (1 s), not just its own image delay (300 ms).
    let (image_child, video_child, parent) = {
        let image_child = api
            .create(&[("image_url", IMAGE), ("is_carousel_item", "true")])
            .await;
        let video_child = api
            .create(&[
                ("media_type", "VIDEO"),
                ("video_url", VIDEO),
                ("is_carousel_item", "true"),
            ])
            .await;
        let children = json!([image_child, video_child]).to_string();
        let parent = api
            .create(&[
                ("media_type", "CAROUSEL"),
                ("children", &children),
                ("caption", "Album"),
            ])
            .await;
        (image_child, video_child, parent)
    };
    assert_eq!(api.status_code(&parent).await, "IN_PROGRESS");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(api.status_code(&image_child).await, "FINISHED");
    assert_eq!(api.status_code(&video_child).await, "IN_PROGRESS");
    assert_eq!(api.status_code(&parent).await, "IN_PROGRESS");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(api.status_code(&parent).await, "FINISHED");

    // Children cannot be published on their own.
    assert_graph_error(api.publish(&image_child).await, 100, None).await;

    let (status, body) = json_of(api.publish(&parent).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let published = api.sim.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].media_type, "CAROUSEL_ALBUM");
    assert_eq!(published[0].media_product_type, "FEED");
    assert_eq!(
        published[0].media_urls,
        vec![IMAGE.to_string(), VIDEO.to_string()]
    );
    assert_eq!(api.status_code(&image_child).await, "PUBLISHED");
}

#[tokio::test]
async fn reels_and_stories_read_back_like_meta() {
    let api = Api::start(instant()).await;
    let reel = api
        .create(&[
            ("media_type", "REELS"),
            ("video_url", VIDEO),
            ("caption", "Reel"),
        ])
        .await;
    let story = api
        .create(&[("media_type", "STORIES"), ("image_url", IMAGE)])
        .await;
    for container in [&reel, &story] {
        let (status, body) = json_of(api.publish(container).await).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let published = api.sim.published();
    assert_eq!(
        (
            published[0].media_type.as_str(),
            published[0].media_product_type.as_str()
        ),
        ("VIDEO", "REELS")
    );
    assert_eq!(
        (
            published[1].media_type.as_str(),
            published[1].media_product_type.as_str()
        ),
        ("IMAGE", "STORY")
    );
    assert!(
        published[1]
            .permalink
            .starts_with("https://www.instagram.com/stories/")
    );
    assert!(
        published[1]
            .permalink
            .ends_with(&format!("/{}/", published[1].media_id))
    );

    let (_, feed) = json_of(api.get(&format!("{ACCOUNT}/media")).await).await;
    assert_eq!(
        feed["data"].as_array().unwrap().len(),
        1,
        "stories are not in /media: {feed}"
    );
    let (_, stories) = json_of(api.get(&format!("{ACCOUNT}/stories")).await).await;
    assert_eq!(stories["data"][0]["id"], json!(published[1].media_id));
}

#[tokio::test]
async fn wrong_or_missing_token_is_190() {
    let api = Api::start(instant()).await;
    let media = format!("{ACCOUNT}/media");
    let response = api
        .post_as(&media, &[("image_url", IMAGE)], Some("someone-else"))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = assert_graph_error(response, 190, None).await;
    assert_eq!(
        body["error"]["message"],
        "Invalid OAuth access token - Cannot parse access token"
    );
    assert_graph_error(
        api.post_as(&media, &[("image_url", IMAGE)], None).await,
        190,
        None,
    )
    .await;

    // Objects are checked against their owner's token.
    let container = api.create(&[("image_url", IMAGE)]).await;
    let response = api
        .http
        .get(api.url(&container))
        .bearer_auth("someone-else")
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 190, None).await;

    // Unregistered accounts take any non-empty token.
    let response = api
        .post_as(
            "17841499999999999/media",
            &[("image_url", IMAGE)],
            Some("anything"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(api.sim.containers().len(), 2);
}

#[tokio::test]
async fn quota_is_enforced_at_publish() {
    let api = Api::start(SimConfig {
        quota_total: 2,
        ..instant()
    })
    .await;
    for _ in 0..2 {
        let container = api.create(&[("image_url", IMAGE)]).await;
        assert_eq!(api.publish(&container).await.status(), StatusCode::OK);
    }
    let container = api.create(&[("image_url", IMAGE)]).await;
    assert_graph_error(api.publish(&container).await, 9, Some(2207042)).await;
    assert_eq!(api.status_code(&container).await, "FINISHED");

    let (_, limit) = json_of(
        api.get(&format!(
            "{ACCOUNT}/content_publishing_limit?fields=quota_usage,config"
        ))
        .await,
    )
    .await;
    assert_eq!(
        limit,
        json!({"data":[{"quota_usage":2,"config":{"quota_total":2,"quota_duration":86400}}]})
    );
    assert_eq!(api.sim.quota_usage(ACCOUNT), 2);
}

#[tokio::test]
async fn lost_publish_answer_still_publishes() {
    let api = Api::start(SimConfig {
        lost_publish_rate: 1.0,
        ..instant()
    })
    .await;
    let container = api
        .create(&[("image_url", IMAGE), ("caption", "lost")])
        .await;
    let response = api.publish(&container).await;
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let body = response.text().await.unwrap();
    assert!(
        serde_json::from_str::<Value>(&body).is_err(),
        "no Graph body: {body}"
    );

    let published = api.sim.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].container_id, container);
    assert_eq!(api.status_code(&container).await, "PUBLISHED");

    // Recovery: the media shows up in the account's media list.
    let (_, list) = json_of(
        api.get(&format!("{ACCOUNT}/media?fields=id,permalink"))
            .await,
    )
    .await;
    assert_eq!(list["data"][0]["id"], json!(published[0].media_id));

    // Publishing the same container again is refused and counted.
    assert_graph_error(api.publish(&container).await, 24, Some(2207006)).await;
    assert_eq!(api.sim.duplicate_publish_attempts(), 1);
    assert_eq!(api.sim.published().len(), 1);
}

#[tokio::test]
async fn usage_headers_are_json_and_buc_limit_bites() {
    let api = Api::start(SimConfig {
        account_calls_per_hour: 4,
        ..instant()
    })
    .await;
    let mut last_percent = 0;
    for call in 1..=4 {
        let response = api
            .get(&format!("{ACCOUNT}/content_publishing_limit"))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let app: Value =
            serde_json::from_str(response.headers()["x-app-usage"].to_str().unwrap()).unwrap();
        for field in ["call_count", "total_cputime", "total_time"] {
            assert!(app[field].is_u64(), "{app}");
        }
        let buc: Value = serde_json::from_str(
            response.headers()["x-business-use-case-usage"]
                .to_str()
                .unwrap(),
        )
        .unwrap();
        let usage = &buc[ACCOUNT][0];
        assert_eq!(usage["type"], "instagram");
        let percent = usage["call_count"].as_u64().unwrap();
        assert_eq!(percent, call * 25);
        assert!(percent > last_percent);
        last_percent = percent;
    }
    let response = api
        .get(&format!("{ACCOUNT}/content_publishing_limit"))
        .await;
    let buc: Value = serde_json::from_str(
        response.headers()["x-business-use-case-usage"]
            .to_str()
            .unwrap(),
    )
    .unwrap();
    assert!(
        buc[ACCOUNT][0]["estimated_time_to_regain_access"]
            .as_u64()
            .unwrap()
            > 0,
        "{buc}"
    );
    let body = assert_graph_error(response, 80002, None).await;
    assert_eq!(body["error"]["is_transient"], true);

    // Errors carry the headers too.
    let response = api
        .post_as(&format!("{ACCOUNT}/media"), &[], Some("wrong"))
        .await;
    assert!(response.headers().contains_key("x-app-usage"));
    assert!(response.headers().contains_key("x-business-use-case-usage"));
}

#[tokio::test]
async fn requests_are_recorded_including_query_tokens() {
    let api = Api::start(instant()).await;
    let url = format!(
        "{}?access_token={TOKEN}&fields=quota_usage",
        api.url(&format!("{ACCOUNT}/content_publishing_limit"))
    );
    let response = api.http.get(url).send().await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "the query token is accepted"
    );
    api.create(&[("image_url", IMAGE)]).await;

    let requests = api.sim.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "GET");
    assert!(
        requests[0]
            .path_and_query
            .contains(&format!("access_token={TOKEN}"))
    );
    assert_eq!(requests[0].authorization, None);
    assert_eq!(requests[1].method, "POST");
    assert_eq!(
        requests[1].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert!(requests[1].body.contains("image_url="));
}

#[tokio::test]
async fn json_bodies_and_malformed_input() {
    let api = Api::start(instant()).await;
    let response = api
        .http
        .post(api.url(&format!("{ACCOUNT}/media")))
        .bearer_auth(TOKEN)
        .json(&json!({"image_url": IMAGE, "caption": "from json"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let response = api
        .http
        .post(api.url(&format!("{ACCOUNT}/media")))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 100, None).await;

    // Unknown objects, unknown fields, unknown paths.
    assert_graph_error(api.get("123456").await, 100, Some(33)).await;
    let container = body["id"].as_str().unwrap();
    assert_graph_error(
        api.get(&format!("{container}?fields=bogus")).await,
        100,
        None,
    )
    .await;
    assert_graph_error(api.get(&format!("{ACCOUNT}/nonsense")).await, 2500, None).await;
    let response = api
        .http
        .get(format!("{}/{ACCOUNT}/media", api.base))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_graph_error(response, 2500, None).await;
}

#[tokio::test]
async fn containers_expire() {
    let api = Api::start(SimConfig {
        expiry: Duration::from_millis(200),
        ..instant()
    })
    .await;
    let container = api.create(&[("image_url", IMAGE)]).await;
    assert_eq!(api.status_code(&container).await, "FINISHED");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(api.status_code(&container).await, "EXPIRED");
    assert_graph_error(api.publish(&container).await, 24, Some(2207008)).await;
}

#[tokio::test]
async fn injected_errors_and_timeouts() {
    let api = Api::start(SimConfig {
        error_rate: 1.0,
        ..instant()
    })
    .await;
    let response = api
        .get(&format!("{ACCOUNT}/content_publishing_limit"))
        .await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response.headers().contains_key("x-app-usage"));
    let body = assert_graph_error(response, 2, None).await;
    assert_eq!(body["error"]["is_transient"], true);
    // Hooks are never faulty.
    let hooks = api
        .http
        .get(format!("{}/_sim/published", api.base))
        .send()
        .await
        .unwrap();
    assert_eq!(hooks.status(), StatusCode::OK);

    // A 5xx is a request that did nothing.
    assert_graph_error(
        api.post(&format!("{ACCOUNT}/media"), &[("image_url", IMAGE)])
            .await,
        2,
        None,
    )
    .await;
    assert!(api.sim.containers().is_empty());

    // A "timeout" is a request carried out at once and answered late.
    let config = SimConfig {
        timeout_rate: 1.0,
        timeout: Duration::from_millis(300),
        ..instant()
    };
    let api = Api::start(config).await;
    let started = std::time::Instant::now();
    let impatient = api
        .http
        .post(api.url(&format!("{ACCOUNT}/media")))
        .bearer_auth(TOKEN)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_urlencoded::Serializer::new(String::new()).append_pair("image_url", IMAGE).finish())
        .timeout(Duration::from_millis(100))
        .send()
        .await;
    assert!(impatient.unwrap_err().is_timeout());
    assert_eq!(api.sim.containers().len(), 1, "the work was done");
    let (status, body) = json_of(api.get(&format!("{ACCOUNT}/content_publishing_limit")).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(started.elapsed() >= Duration::from_millis(400), "both answers came late");
    assert_eq!(api.sim.late_answers(), 2);
}

#[tokio::test]
async fn a_carousel_item_belongs_to_one_carousel_only() {
    let api = Api::start(instant()).await;
    let media = format!("{ACCOUNT}/media");
    let child = || api.create(&[("image_url", IMAGE), ("is_carousel_item", "true")]);
    let (a, b, c) = (child().await, child().await, child().await);
    let first = api
        .create(&[("media_type", "CAROUSEL"), ("children", &format!("{a},{b}"))])
        .await;
    let info = |id: &str| api.sim.containers().into_iter().find(|c| c.id == id).unwrap();
    assert_eq!(info(&a).carousel_id.as_deref(), Some(first.as_str()));
    // The same children again (a client retrying an unanswered creation), or one of them with
    // a fresh one, are refused: 100 without a subcode, naming the child.
    for (children, used) in [(format!("{a},{b}"), &a), (format!("{c},{b}"), &b)] {
        let body = assert_graph_error(
            api.post(&media, &[("media_type", "CAROUSEL"), ("children", &children)])
                .await,
            100,
            None,
        )
        .await;
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("{used} is not an unused carousel item container")), "{message}");
    }
    assert_eq!(info(&c).carousel_id, None, "a refused carousel takes nothing");
    let d = child().await;
    api.create(&[("media_type", "CAROUSEL"), ("children", &format!("{c},{d}"))])
        .await;
}

#[tokio::test]
async fn carousel_creations_can_be_answered_late_by_rate_or_on_request() {
    let api = Api::start(SimConfig { timeout: Duration::from_millis(200), ..instant() }).await;
    let (a, b) = (
        api.create(&[("image_url", IMAGE), ("is_carousel_item", "true")]).await,
        api.create(&[("image_url", IMAGE), ("is_carousel_item", "true")]).await,
    );
    api.sim.answer_carousel_creations_late(1);
    let started = std::time::Instant::now();
    let parent = api
        .create(&[("media_type", "CAROUSEL"), ("children", &format!("{a},{b}"))])
        .await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!((api.sim.late_answers(), api.sim.late_carousel_creations()), (1, 1));
    assert!(api.sim.containers().iter().any(|c| c.id == parent));
    // Only carousel containers, and only as many as asked.
    let started = std::time::Instant::now();
    api.create(&[("image_url", IMAGE)]).await;
    assert!(started.elapsed() < Duration::from_millis(200));
    assert_eq!(api.sim.late_carousel_creations(), 1);

    let api = Api::start(SimConfig { carousel_timeout_rate: 1.0, timeout: Duration::from_millis(100), ..instant() }).await;
    let (a, b) = (
        api.create(&[("image_url", IMAGE), ("is_carousel_item", "true")]).await,
        api.create(&[("image_url", IMAGE), ("is_carousel_item", "true")]).await,
    );
    assert_eq!(api.sim.late_answers(), 0, "children are answered at once");
    api.create(&[("media_type", "CAROUSEL"), ("children", &format!("{a},{b}"))])
        .await;
    assert_eq!(api.sim.late_carousel_creations(), 1);
}

#[tokio::test]
async fn error_rate_is_seeded() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let api = Api::start(SimConfig {
            error_rate: 0.5,
            seed,
            ..instant()
        })
        .await;
        let mut statuses = Vec::new();
        for _ in 0..20 {
            statuses.push(
                api.get(&format!("{ACCOUNT}/content_publishing_limit"))
                    .await
                    .status()
                    .as_u16(),
            );
        }
        statuses
    }
    let first = statuses(7).await;
    assert_eq!(first, statuses(7).await);
    assert!(first.contains(&500) && first.contains(&200), "{first:?}");
}

#[tokio::test]
async fn comments_are_recorded() {
    let api = Api::start(instant()).await;
    let container = api.create(&[("image_url", IMAGE)]).await;
    let (_, body) = json_of(api.publish(&container).await).await;
    let media_id = body["id"].as_str().unwrap().to_string();
    let (status, comment) = json_of(
        api.post(&format!("{media_id}/comments"), &[("message", "first!")])
            .await,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{comment}");
    assert!(comment["id"].is_string());
    assert_graph_error(
        api.post(&format!("{media_id}/comments"), &[]).await,
        100,
        None,
    )
    .await;
    assert_graph_error(
        api.post("999/comments", &[("message", "x")]).await,
        100,
        Some(33),
    )
    .await;
    assert_eq!(api.sim.comments(), vec![(media_id, "first!".to_string())]);
}

#[tokio::test]
async fn sim_hooks() {
    let (sim, base) = spawn(instant(), 0).await.unwrap();
    let http = reqwest::Client::new();
    let response = http
        .post(format!("{base}/_sim/accounts"))
        .json(&json!({"ig_user_id": ACCOUNT, "token": TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let wrong = http
        .get(format!("{base}/v25.0/{ACCOUNT}/content_publishing_limit"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_graph_error(wrong, 190, None).await;

    let api = Api {
        sim: sim.clone(),
        base: base.clone(),
        http: http.clone(),
    };
    let container = api.create(&[("image_url", IMAGE)]).await;
    api.publish(&container).await;
    api.post(
        &format!("{}/comments", sim.published()[0].media_id),
        &[("message", "hi")],
    )
    .await;

    let get = |path: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            http.get(format!("{base}/_sim/{path}"))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    assert_eq!(get("published").await[0]["container_id"], json!(container));
    assert_eq!(get("containers").await[0]["status_code"], "PUBLISHED");
    assert_eq!(get("comments").await[0]["message"], "hi");
    assert_eq!(get("requests").await.as_array().unwrap().len(), 4);

    let response = http
        .post(format!("{base}/_sim/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(sim.published().is_empty() && sim.containers().is_empty() && sim.requests().is_empty());
    // Tokens survive a reset.
    let wrong = http
        .get(format!("{base}/v25.0/{ACCOUNT}/content_publishing_limit"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_graph_error(wrong, 190, None).await;
}
