//! The Graph endpoints themselves: path dispatch, token and rate-limit checks, container
//! creation and validation, status reads, publishing, quota, listings and comments.
//! Everything runs synchronously under the state lock; HTTP concerns live in `routes`.

use std::time::{Instant, SystemTime};

use axum::http::Method;
use serde_json::{Map, Value, json};

use crate::PublishedMedia;
use crate::error::GraphError;
use crate::params::{Params, parse_list};
use crate::state::{
    Comment, Container, ContainerKind, Media, QUOTA_WINDOW, State, StatusCode, graph_timestamp,
};

const MAX_CAPTION_CHARS: usize = 2200;
const MAX_HASHTAGS: usize = 30;
const MAX_MENTIONS: usize = 20;
const MAX_ALT_TEXT_CHARS: usize = 1000;
const MAX_COLLABORATORS: usize = 3;
const MEDIA_DOWNLOAD_FAILED: &str =
    "Error: Media download has failed. The media URI doesn't meet our requirements. (2207052)";

const CONTAINER_FIELDS: &[&str] = &["id", "status_code", "status", "copyright_check_status"];
const CONTAINER_DEFAULT_FIELDS: &[&str] = &["id", "status_code", "status"];
const MEDIA_FIELDS: &[&str] = &[
    "id",
    "permalink",
    "timestamp",
    "media_type",
    "media_product_type",
    "shortcode",
    "caption",
    "media_url",
    "username",
    "owner",
    "comments_count",
    "like_count",
    "is_comment_enabled",
];
const MEDIA_DEFAULT_FIELDS: &[&str] = &[
    "id",
    "permalink",
    "timestamp",
    "media_type",
    "media_product_type",
    "shortcode",
    "caption",
];
const LIST_DEFAULT_FIELDS: &[&str] = &[
    "id",
    "permalink",
    "timestamp",
    "caption",
    "media_type",
    "media_product_type",
];
const USER_FIELDS: &[&str] = &["id", "user_id", "username"];

/// What the HTTP layer should send.
pub(crate) enum Reply {
    Json(Value),
    Error(GraphError),
    /// The publish happened but its answer is "lost": a gateway error without a Graph body.
    LostAnswer,
}

pub(crate) struct Outcome {
    pub reply: Reply,
    /// The account the call counted against (keys `X-Business-Use-Case-Usage`).
    pub account: Option<String>,
}

/// A versioned Graph path: `/{version}/{id}` or `/{version}/{id}/{edge}`.
pub(crate) struct GraphPath {
    pub id: String,
    pub edge: Option<String>,
}

impl GraphPath {
    pub fn parse(path: &str) -> Result<GraphPath, GraphError> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let Some((version, rest)) = segments.split_first() else {
            return Err(GraphError::unknown_path(path));
        };
        if !is_version(version) {
            return Err(GraphError::unknown_path(path));
        }
        match rest {
            [id] if !id.is_empty() => Ok(GraphPath {
                id: id.to_string(),
                edge: None,
            }),
            [id, edge] if !id.is_empty() && !edge.is_empty() => Ok(GraphPath {
                id: id.to_string(),
                edge: Some(edge.to_string()),
            }),
            _ => Err(GraphError::unknown_path(&format!("/{}", rest.join("/")))),
        }
    }
}

/// `v<digits>.<digits>`, e.g. `v25.0`.
fn is_version(segment: &str) -> bool {
    let Some(number) = segment.strip_prefix('v') else {
        return false;
    };
    let Some((major, minor)) = number.split_once('.') else {
        return false;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

/// The name stories permalinks and `/me` use for an account; the simulator has no profiles.
fn username(ig_user_id: &str) -> String {
    format!("sim_user_{ig_user_id}")
}

impl State {
    /// The account a path belongs to: the owner of a container/media/comment id, the token's
    /// account for `me`, the id itself when it has an account edge, otherwise none.
    pub fn account_for_path(&self, path: &GraphPath, token: Option<&str>) -> Option<String> {
        if path.id == "me" {
            return token.and_then(|t| self.account_for_token(t));
        }
        self.owner_of(&path.id)
            .or_else(|| path.edge.as_ref().map(|_| path.id.clone()))
    }

    /// Runs one Graph call: auth, rate limit, then the endpoint.
    pub fn handle(
        &mut self,
        now: Instant,
        wall: SystemTime,
        method: &Method,
        path: &GraphPath,
        params: &Params,
        token: Option<&str>,
    ) -> Outcome {
        let account = self.account_for_path(path, token);
        let reply = match self.authorize(path, account.as_deref(), token) {
            Err(err) => Reply::Error(err),
            Ok(()) => match account
                .as_deref()
                .and_then(|a| self.account_throttled(a, now))
            {
                // A blocked call is not counted, so the block lifts as old calls age out.
                Some(_) => Reply::Error(GraphError::account_rate_limited()),
                None => {
                    self.count_call(account.as_deref(), now);
                    self.dispatch(now, wall, method, path, account.as_deref(), params)
                }
            },
        };
        Outcome { reply, account }
    }

    fn authorize(
        &self,
        path: &GraphPath,
        account: Option<&str>,
        token: Option<&str>,
    ) -> Result<(), GraphError> {
        let Some(token) = token else {
            return Err(GraphError::invalid_token());
        };
        if self.expired_tokens.contains(token) {
            return Err(GraphError::expired_token());
        }
        if path.id == "me" && account.is_none() {
            // Only registered tokens identify an account.
            return Err(GraphError::invalid_token());
        }
        match account.and_then(|a| self.tokens.get(a)) {
            Some(expected) if expected != token => Err(GraphError::invalid_token()),
            _ => Ok(()),
        }
    }

    fn dispatch(
        &mut self,
        now: Instant,
        wall: SystemTime,
        method: &Method,
        path: &GraphPath,
        account: Option<&str>,
        params: &Params,
    ) -> Reply {
        let unsupported =
            || Reply::Error(GraphError::unsupported_request(method.as_str(), &path.id));
        let id = path.id.as_str();
        let result = match (path.edge.as_deref(), account) {
            (None, _) if *method == Method::GET => self.read_node(id, account, params, now),
            (None, _) => return unsupported(),
            // Containers have no edges the simulator supports.
            (Some(_), _) if self.container(id).is_some() => return unsupported(),
            (Some(edge), _) if self.media(id).is_some() => match (edge, method.clone()) {
                ("comments", Method::POST) => self.add_comment(id, params, wall),
                ("comments", Method::GET) => Ok(self.list_comments(id)),
                ("comments", _) => return unsupported(),
                _ => Err(GraphError::unknown_path(&format!("/{edge}"))),
            },
            (Some(edge), Some(account)) => match (edge, method.clone()) {
                ("media", Method::POST) => self.create_container(account, params, now),
                ("media", Method::GET) => self.list_media(account, params, now, false),
                ("stories", Method::GET) => self.list_media(account, params, now, true),
                ("media_publish", Method::POST) => return self.publish(account, params, now, wall),
                ("content_publishing_limit", Method::GET) => {
                    self.publishing_limit(account, params, now)
                }
                // `comments` on an id that is no media: the object does not exist.
                (
                    "media" | "stories" | "media_publish" | "content_publishing_limit" | "comments",
                    _,
                ) => {
                    return unsupported();
                }
                _ => Err(GraphError::unknown_path(&format!("/{edge}"))),
            },
            (Some(_), None) => return unsupported(),
        };
        match result {
            Ok(value) => Reply::Json(value),
            Err(err) => Reply::Error(err),
        }
    }

    // ---- POST /{ig-user-id}/media ----------------------------------------------------------

    fn create_container(
        &mut self,
        account: &str,
        params: &Params,
        now: Instant,
    ) -> Result<Value, GraphError> {
        if params.has("upload_type") {
            return Err(GraphError::invalid_parameter(
                "upload_type (resumable upload) is not supported by the simulator; pass image_url/video_url",
            ));
        }
        let is_carousel_item = params.bool("is_carousel_item")?.unwrap_or(false);
        let kind = match params
            .get("media_type")
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("IMAGE") => ContainerKind::Image,
            Some("VIDEO") if is_carousel_item => ContainerKind::Video,
            Some("VIDEO") => {
                return Err(GraphError::bad_media_type(
                    "media_type=VIDEO is only allowed for carousel items (is_carousel_item=true); use REELS for video posts.",
                ));
            }
            Some("REELS") => ContainerKind::Reels,
            Some("STORIES") => ContainerKind::Stories,
            Some("CAROUSEL") => ContainerKind::Carousel,
            Some(other) => {
                return Err(GraphError::bad_media_type(format!(
                    "media_type {other} is not supported; use IMAGE (or omit), REELS, STORIES, CAROUSEL, or VIDEO for carousel items."
                )));
            }
        };
        if is_carousel_item && !matches!(kind, ContainerKind::Image | ContainerKind::Video) {
            let detail = match kind {
                ContainerKind::Reels => {
                    "Reels cannot be carousel items; use media_type=VIDEO for a carousel video."
                        .into()
                }
                other => format!("A {} container cannot be a carousel item.", other.as_str()),
            };
            return Err(GraphError::bad_media_type(detail));
        }

        let image_url = params.get("image_url");
        let video_url = params.get("video_url");
        let required = |name: &str| {
            GraphError::invalid_parameter(format!("The parameter {name} is required."))
        };
        let mut children = Vec::new();
        let (is_video, media_urls) = match kind {
            ContainerKind::Image => match (image_url, video_url) {
                (Some(url), _) => (false, vec![url.to_string()]),
                (None, Some(_)) => {
                    return Err(GraphError::bad_media_type(
                        "Video posts need media_type=REELS (or media_type=VIDEO with is_carousel_item=true).",
                    ));
                }
                (None, None) => return Err(required("image_url")),
            },
            ContainerKind::Video | ContainerKind::Reels => (
                true,
                vec![video_url.ok_or_else(|| required("video_url"))?.to_string()],
            ),
            ContainerKind::Stories => match (image_url, video_url) {
                (Some(url), None) => (false, vec![url.to_string()]),
                (None, Some(url)) => (true, vec![url.to_string()]),
                (None, None) => return Err(required("image_url or video_url")),
                (Some(_), Some(_)) => {
                    return Err(GraphError::invalid_parameter(
                        "A story takes either image_url or video_url, not both.",
                    ));
                }
            },
            ContainerKind::Carousel => {
                children = self.carousel_children(account, params)?;
                let urls = children
                    .iter()
                    .filter_map(|c| self.container(c))
                    .flat_map(|c| c.media_urls.iter().cloned())
                    .collect();
                (false, urls)
            }
        };
        let is_image = !is_video && kind != ContainerKind::Carousel;

        // Captions are ignored on stories and carousel items, as Meta does.
        let caption = match kind {
            ContainerKind::Stories => None,
            _ if is_carousel_item => None,
            _ => params.get("caption").map(str::to_string),
        };
        if let Some(caption) = &caption {
            check_caption(caption)?;
        }
        if let Some(alt_text) = params.get("alt_text") {
            if !is_image || kind == ContainerKind::Stories {
                return Err(GraphError::invalid_parameter(
                    "alt_text is only supported on images (single image posts and image carousel items).",
                ));
            }
            if alt_text.chars().count() > MAX_ALT_TEXT_CHARS {
                return Err(GraphError::invalid_parameter(
                    "alt_text must be at most 1000 characters.",
                ));
            }
        }
        if let Some(collaborators) = params.get("collaborators") {
            let collaborators = parse_list("collaborators", collaborators)?;
            if kind == ContainerKind::Stories || is_carousel_item {
                return Err(GraphError::invalid_parameter(
                    "param collaborators is not allowed on stories or carousel items.",
                ));
            }
            if collaborators.len() > MAX_COLLABORATORS {
                return Err(GraphError::invalid_parameter(
                    "At most 3 collaborators can be invited.",
                ));
            }
        }
        if params.has("location_id") && (kind == ContainerKind::Stories || is_carousel_item) {
            return Err(GraphError::invalid_parameter(
                "location_id is not supported on stories or carousel items.",
            ));
        }
        if let Some(user_tags) = params.get("user_tags") {
            if kind == ContainerKind::Video || kind == ContainerKind::Carousel {
                return Err(GraphError::invalid_parameter(
                    "user_tags are not supported on carousel containers or carousel video items.",
                ));
            }
            check_user_tags(user_tags, is_image && kind != ContainerKind::Stories)?;
        }
        if let Some(offset) = params.get("thumb_offset")
            && offset.parse::<u64>().is_err()
        {
            return Err(GraphError::invalid_parameter(
                "thumb_offset must be a non-negative number of milliseconds.",
            ));
        }
        params.bool("share_to_feed")?;

        // Meta fetches the media (and a Reel's cover) at creation; an unfetchable URL fails the
        // container, not the call. Carousel children were checked when they were created.
        let cover_url = params
            .get("cover_url")
            .filter(|_| kind == ContainerKind::Reels);
        let fetch_failed = kind != ContainerKind::Carousel
            && media_urls
                .iter()
                .map(String::as_str)
                .chain(cover_url)
                .any(|url| !is_fetchable(url));
        let error_status = fetch_failed.then(|| MEDIA_DOWNLOAD_FAILED.to_string());

        let delay = if is_video {
            self.config.video_delay
        } else {
            self.config.image_delay
        };
        let id = self.new_id();
        self.add_container(Container {
            id: id.clone(),
            ig_user_id: account.to_string(),
            kind,
            is_video,
            is_carousel_item,
            children,
            caption,
            media_urls,
            created_at: now,
            delay,
            error_status,
            published_media_id: None,
            carousel_id: None,
        });
        for child in self.container(&id).map(|c| c.children.clone()).unwrap_or_default() {
            if let Some(child) = self.container_mut(&child) {
                child.carousel_id = Some(id.clone());
            }
        }
        Ok(json!({ "id": id }))
    }

    fn carousel_children(&self, account: &str, params: &Params) -> Result<Vec<String>, GraphError> {
        let children = parse_list("children", params.get("children").unwrap_or(""))?;
        if !(2..=10).contains(&children.len()) {
            return Err(GraphError::carousel_item_count(children.len()));
        }
        for child_id in &children {
            let Some(child) = self.container(child_id).filter(|c| c.ig_user_id == account) else {
                return Err(GraphError::invalid_parameter(format!(
                    "Param children contains {child_id}, which is not a container of this account."
                )));
            };
            if child.kind == ContainerKind::Reels {
                return Err(GraphError::bad_media_type(
                    "Reels cannot be carousel items.",
                ));
            }
            if !child.is_carousel_item {
                return Err(GraphError::invalid_parameter(format!(
                    "Container {child_id} was not created as a carousel item (is_carousel_item=true)."
                )));
            }
            if child.published_media_id.is_some() {
                return Err(GraphError::invalid_parameter(format!(
                    "Carousel item {child_id} was already published."
                )));
            }
            // A child belongs to one carousel only (what an independent Graph fake does; Meta
            // documents neither way), so a client retrying an unanswered carousel creation
            // with the same children is refused.
            if child.carousel_id.is_some() {
                return Err(GraphError::invalid_parameter(format!(
                    "Invalid children: {child_id} is not an unused carousel item container of this account"
                )));
            }
        }
        Ok(children)
    }

    // ---- GET /{id} ---------------------------------------------------------------------------

    fn read_node(
        &self,
        id: &str,
        account: Option<&str>,
        params: &Params,
        now: Instant,
    ) -> Result<Value, GraphError> {
        let requested = params.fields();
        if id == "me" {
            let account = account.unwrap_or_default();
            let fields = select_fields(
                requested,
                &["id", "user_id", "username"],
                USER_FIELDS,
                "User",
            )?;
            let mut object = Map::new();
            for field in fields {
                let value = match field.as_str() {
                    "username" => json!(username(account)),
                    _ => json!(account),
                };
                object.insert(field, value);
            }
            return Ok(Value::Object(object));
        }
        if let Some(container) = self.container(id) {
            let fields = select_fields(
                requested,
                CONTAINER_DEFAULT_FIELDS,
                CONTAINER_FIELDS,
                "ShadowIGMediaBuilder",
            )?;
            let (code, status) = self.status(container, now);
            let mut object = Map::new();
            object.insert("id".into(), json!(container.id));
            for field in fields {
                let value = match field.as_str() {
                    "status_code" => json!(code.as_str()),
                    "status" => json!(status),
                    "copyright_check_status" => {
                        json!({ "status": "completed", "matches_found": false })
                    }
                    _ => continue,
                };
                object.insert(field, value);
            }
            return Ok(Value::Object(object));
        }
        if let Some(media) = self.media(id) {
            let fields = select_fields(requested, MEDIA_DEFAULT_FIELDS, MEDIA_FIELDS, "IGMedia")?;
            return Ok(self.media_object(media, &fields));
        }
        Err(GraphError::unsupported_request("GET", id))
    }

    fn media_object(&self, media: &Media, fields: &[String]) -> Value {
        let record = &media.record;
        let mut object = Map::new();
        object.insert("id".into(), json!(record.media_id));
        for field in fields {
            let value = match field.as_str() {
                "permalink" => json!(record.permalink),
                "timestamp" => json!(record.timestamp),
                "media_type" => json!(record.media_type),
                "media_product_type" => json!(record.media_product_type),
                "shortcode" => json!(media.shortcode),
                // Graph leaves out fields without a value.
                "caption" => match &record.caption {
                    Some(caption) => json!(caption),
                    None => continue,
                },
                "media_url" => match record.media_urls.first() {
                    Some(url) => json!(url),
                    None => continue,
                },
                "username" => json!(username(&record.ig_user_id)),
                "owner" => json!({ "id": record.ig_user_id }),
                "comments_count" => json!(
                    self.comments
                        .iter()
                        .filter(|c| c.media_id == record.media_id)
                        .count()
                ),
                "like_count" => json!(0),
                "is_comment_enabled" => json!(true),
                _ => continue,
            };
            object.insert(field.clone(), value);
        }
        Value::Object(object)
    }

    // ---- POST /{ig-user-id}/media_publish ---------------------------------------------------

    fn publish(&mut self, account: &str, params: &Params, now: Instant, wall: SystemTime) -> Reply {
        match self.try_publish(account, params, now, wall) {
            Err(err) => Reply::Error(err),
            Ok(_) if self.roll_lost_publish() => Reply::LostAnswer,
            Ok(media_id) => Reply::Json(json!({ "id": media_id })),
        }
    }

    fn try_publish(
        &mut self,
        account: &str,
        params: &Params,
        now: Instant,
        wall: SystemTime,
    ) -> Result<String, GraphError> {
        let Some(creation_id) = params.get("creation_id") else {
            return Err(GraphError::invalid_parameter(
                "The parameter creation_id is required.",
            ));
        };
        let Some(container) = self
            .container(creation_id)
            .filter(|c| c.ig_user_id == account)
            .cloned()
        else {
            return Err(GraphError::media_not_found(creation_id));
        };
        if container.is_carousel_item {
            return Err(GraphError::invalid_parameter(
                "Carousel items cannot be published on their own; publish the carousel container.",
            ));
        }
        match self.status(&container, now).0 {
            StatusCode::Finished => {}
            StatusCode::InProgress => return Err(GraphError::not_ready()),
            StatusCode::Error => return Err(GraphError::create_failed()),
            StatusCode::Expired => return Err(GraphError::container_expired(creation_id)),
            StatusCode::Published => {
                // Counted so tests can prove a client never publishes the same container twice.
                self.duplicate_publish_attempts += 1;
                return Err(GraphError::media_not_found(creation_id));
            }
        }
        if self.publishes_in_window(account, now) >= self.config.quota_total {
            return Err(GraphError::quota_reached());
        }

        let media_id = self.new_id();
        let shortcode = self.shortcode();
        let (media_type, product_type) = match container.kind {
            ContainerKind::Image | ContainerKind::Video => ("IMAGE", "FEED"),
            ContainerKind::Reels => ("VIDEO", "REELS"),
            ContainerKind::Stories if container.is_video => ("VIDEO", "STORY"),
            ContainerKind::Stories => ("IMAGE", "STORY"),
            ContainerKind::Carousel => ("CAROUSEL_ALBUM", "FEED"),
        };
        let permalink = if product_type == "STORY" {
            format!(
                "https://www.instagram.com/stories/{}/{media_id}/",
                username(account)
            )
        } else {
            format!("https://www.instagram.com/p/{shortcode}/")
        };
        let record = PublishedMedia {
            media_id: media_id.clone(),
            container_id: container.id.clone(),
            ig_user_id: account.to_string(),
            media_type: media_type.to_string(),
            media_product_type: product_type.to_string(),
            caption: container.caption.clone(),
            media_urls: container.media_urls.clone(),
            permalink,
            timestamp: graph_timestamp(wall),
        };
        self.add_media(Media {
            record,
            shortcode,
            published_at: now,
        });
        for id in std::iter::once(&container.id).chain(&container.children) {
            if let Some(c) = self.container_mut(id) {
                c.published_media_id = Some(media_id.clone());
            }
        }
        Ok(media_id)
    }

    // ---- GET /{ig-user-id}/content_publishing_limit -----------------------------------------

    fn publishing_limit(
        &self,
        account: &str,
        params: &Params,
        now: Instant,
    ) -> Result<Value, GraphError> {
        let fields = select_fields(
            params.fields(),
            &["quota_usage"],
            &["quota_usage", "config"],
            "ContentPublishingLimit",
        )?;
        let mut object = Map::new();
        for field in fields {
            let value = match field.as_str() {
                "quota_usage" => json!(self.publishes_in_window(account, now)),
                _ => {
                    json!({ "quota_total": self.config.quota_total, "quota_duration": QUOTA_WINDOW.as_secs() })
                }
            };
            object.insert(field, value);
        }
        Ok(json!({ "data": [object] }))
    }

    // ---- GET /{ig-user-id}/media and /stories -----------------------------------------------

    /// Newest first. `/media` holds feed posts and Reels; `/stories` the stories of the last 24 h.
    fn list_media(
        &self,
        account: &str,
        params: &Params,
        now: Instant,
        stories: bool,
    ) -> Result<Value, GraphError> {
        let fields = select_fields(
            params.fields(),
            LIST_DEFAULT_FIELDS,
            MEDIA_FIELDS,
            "IGMedia",
        )?;
        let limit = match params.get("limit") {
            None => 25,
            Some(text) => text
                .parse::<usize>()
                .map_err(|_| GraphError::invalid_parameter("limit must be a positive integer."))?
                .clamp(1, 100),
        };
        let data: Vec<Value> = self
            .media
            .iter()
            .rev()
            .filter(|m| m.record.ig_user_id == account)
            .filter(|m| {
                let is_story = m.record.media_product_type == "STORY";
                if stories {
                    is_story && now.duration_since(m.published_at) < QUOTA_WINDOW
                } else {
                    !is_story
                }
            })
            .take(limit)
            .map(|m| self.media_object(m, &fields))
            .collect();
        Ok(json!({ "data": data }))
    }

    // ---- /{ig-media-id}/comments ------------------------------------------------------------

    fn add_comment(
        &mut self,
        media_id: &str,
        params: &Params,
        wall: SystemTime,
    ) -> Result<Value, GraphError> {
        let Some(message) = params.get("message") else {
            return Err(GraphError::invalid_parameter(
                "The parameter message is required.",
            ));
        };
        let id = self.new_id();
        self.comments.push(Comment {
            id: id.clone(),
            media_id: media_id.to_string(),
            message: message.to_string(),
            timestamp: graph_timestamp(wall),
        });
        Ok(json!({ "id": id }))
    }

    fn list_comments(&self, media_id: &str) -> Value {
        let data: Vec<Value> = self
            .comments
            .iter()
            .filter(|c| c.media_id == media_id)
            .map(|c| json!({ "id": c.id, "text": c.message, "timestamp": c.timestamp }))
            .collect();
        json!({ "data": data })
    }
}

/// The requested fields, or the defaults when none were asked for. Unknown fields are an error,
/// as in Graph.
fn select_fields(
    requested: Option<Vec<String>>,
    defaults: &[&str],
    known: &[&str],
    node_type: &str,
) -> Result<Vec<String>, GraphError> {
    let fields = requested.unwrap_or_else(|| defaults.iter().map(|s| s.to_string()).collect());
    if let Some(unknown) = fields.iter().find(|f| !known.contains(&f.as_str())) {
        return Err(GraphError::nonexisting_field(unknown, node_type));
    }
    Ok(fields)
}

/// Meta can fetch only public HTTPS URLs; `bad-media` lets tests ask for a failed download.
fn is_fetchable(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https://"))
        && !url.contains("bad-media")
}

fn check_caption(caption: &str) -> Result<(), GraphError> {
    let chars = caption.chars().count();
    if chars > MAX_CAPTION_CHARS {
        return Err(GraphError::caption_too_long(format!(
            "The caption has {chars} characters; the limit is {MAX_CAPTION_CHARS}."
        )));
    }
    let hashtags = count_tags(caption, '#');
    if hashtags > MAX_HASHTAGS {
        return Err(GraphError::caption_too_long(format!(
            "The caption has {hashtags} hashtags; the limit is {MAX_HASHTAGS}."
        )));
    }
    let mentions = count_tags(caption, '@');
    if mentions > MAX_MENTIONS {
        return Err(GraphError::caption_too_long(format!(
            "The caption has {mentions} @-mentions; the limit is {MAX_MENTIONS}."
        )));
    }
    Ok(())
}

/// Counts `#tag` / `@name` tokens: the sigil followed by a word character and not preceded by
/// one (so e-mail addresses are not mentions).
fn count_tags(text: &str, sigil: char) -> usize {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let chars: Vec<char> = text.chars().collect();
    (0..chars.len())
        .filter(|&i| {
            chars[i] == sigil
                && chars.get(i + 1).is_some_and(|&c| is_word(c))
                && (i == 0 || !is_word(chars[i - 1]))
        })
        .count()
}

/// `user_tags` is a JSON array of `{"username","x","y"}`; images need x and y in 0..=1.
fn check_user_tags(text: &str, coordinates_required: bool) -> Result<(), GraphError> {
    let invalid =
        |detail: &str| GraphError::invalid_parameter(format!("Invalid user_tags: {detail}"));
    let tags: Vec<Value> =
        serde_json::from_str(text).map_err(|_| invalid("expected a JSON array"))?;
    for tag in &tags {
        if !tag.get("username").is_some_and(Value::is_string) {
            return Err(invalid("every tag needs a username"));
        }
        for axis in ["x", "y"] {
            match tag.get(axis).and_then(Value::as_f64) {
                Some(v) if (0.0..=1.0).contains(&v) => {}
                Some(_) => return Err(invalid("x and y must be between 0 and 1")),
                None if coordinates_required => {
                    return Err(invalid("x and y are required on images"));
                }
                None => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert!(is_version("v25.0"));
        assert!(is_version("v3.12"));
        assert!(!is_version("v25"));
        assert!(!is_version("25.0"));
        assert!(!is_version("v25.x"));
    }

    #[test]
    fn paths() {
        let p = GraphPath::parse("/v25.0/123/media").unwrap();
        assert_eq!((p.id.as_str(), p.edge.as_deref()), ("123", Some("media")));
        let p = GraphPath::parse("/v25.0/123").unwrap();
        assert_eq!((p.id.as_str(), p.edge), ("123", None));
        assert_eq!(GraphPath::parse("/123/media").err().unwrap().code, 2500);
        assert_eq!(GraphPath::parse("/v25.0/1/2/3").err().unwrap().code, 2500);
        assert_eq!(GraphPath::parse("/v25.0").err().unwrap().code, 2500);
    }

    #[test]
    fn tag_counting() {
        assert_eq!(count_tags("#a #b c#d #", '#'), 2);
        assert_eq!(count_tags("@x mail@example.com @y_z", '@'), 2);
    }

    #[test]
    fn fetchable_urls() {
        assert!(is_fetchable("https://cdn.example.com/a.jpg"));
        assert!(is_fetchable("HTTPS://cdn.example.com/a.jpg"));
        assert!(!is_fetchable("http://cdn.example.com/a.jpg"));
        assert!(!is_fetchable("https://cdn.example.com/bad-media.jpg"));
        assert!(!is_fetchable("ftp"));
    }
}
