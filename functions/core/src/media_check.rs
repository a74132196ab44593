//! Media checked before any container is made, so that a post Meta would refuse fails at once
//! with a reason a person understands: the host must resolve to public addresses only (no
//! private, loopback or link-local: this is also what keeps our own fetch from reaching inside
//! a network), and the first bytes must show a type, size and (for images) shape Meta accepts
//! (limits from shared/reference/instagram-graph-api.md §5).

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;

use crate::post::{MediaItem, MediaKind, Placement};

/// What the first bytes of a media URL told.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MediaFacts {
    pub content_type: Option<String>,
    /// Total size, from Content-Range or Content-Length.
    pub size: Option<u64>,
    /// Width and height of a JPEG, from its frame header.
    pub dimensions: Option<(u32, u32)>,
}

#[async_trait]
pub trait MediaCheck: Send + Sync {
    /// `Err` holds the reason the media cannot be posted.
    async fn check(&self, item: &MediaItem, placement: Placement, in_carousel: bool) -> Result<(), String>;
}

/// `MEDIA_CHECK=off`: nothing is fetched (the local stack: its media hosts are not real and
/// its Graph API simulator fetches nothing either).
pub struct NoMediaCheck;

#[async_trait]
impl MediaCheck for NoMediaCheck {
    async fn check(&self, _: &MediaItem, _: Placement, _: bool) -> Result<(), String> {
        Ok(())
    }
}

const IMAGE_MAX_BYTES: u64 = 8 * 1024 * 1024;
const REEL_MAX_BYTES: u64 = 300 * 1024 * 1024;
const STORY_VIDEO_MAX_BYTES: u64 = 100 * 1024 * 1024;
const MIN_ASPECT: f64 = 0.8; // 4:5
const MAX_ASPECT: f64 = 1.91;
const MAX_REDIRECTS: usize = 3;
const PROBE_BYTES: u64 = 64 * 1024;

/// `MEDIA_CHECK=full`: resolves, fetches the first 64 KiB, and checks what it finds.
pub struct HttpMediaCheck {
    http: reqwest::Client,
    /// Tests serve media from 127.0.0.1; nothing else may.
    allow_loopback: bool,
}

impl HttpMediaCheck {
    pub fn new(allow_loopback: bool) -> Result<Self, crate::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            // Redirects are followed by hand, checking each hop's address.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| crate::Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpMediaCheck { http, allow_loopback })
    }

    async fn fetch(&self, url: &str) -> Result<MediaFacts, String> {
        let mut url = reqwest::Url::parse(url).map_err(|e| format!("is not a valid URL ({e})"))?;
        for _ in 0..=MAX_REDIRECTS {
            let host = url.host_str().ok_or("has no host")?.to_string();
            let port = url.port_or_known_default().unwrap_or(443);
            check_addresses(&host, port, self.allow_loopback).await?;
            let response = match self.http.get(url.clone()).header("range", format!("bytes=0-{}", PROBE_BYTES - 1)).send().await {
                Ok(response) => response,
                // Unreachable from here is not proof Meta cannot fetch it: do not block the post.
                Err(err) => {
                    tracing::warn!(%host, error = %err.without_url(), "media could not be checked; continuing");
                    return Ok(MediaFacts::default());
                }
            };
            let status = response.status();
            if status.is_redirection() {
                let location = response.headers().get("location").and_then(|l| l.to_str().ok()).ok_or("redirects nowhere")?;
                url = url.join(location).map_err(|_| "redirects to an invalid URL")?;
                if url.scheme() != "https" && !self.allow_loopback {
                    return Err("redirects to a URL that is not https".into());
                }
                continue;
            }
            if !status.is_success() {
                return Err(format!("answered HTTP {} when fetched", status.as_u16()));
            }
            let headers = response.headers().clone();
            let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).map(|v| {
                v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase()
            });
            let size = headers
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit('/').next()?.parse().ok())
                .or_else(|| headers.get("content-length").and_then(|v| v.to_str().ok()?.parse().ok()));
            let bytes = response.bytes().await.map_err(|_| "could not be read")?;
            let head = &bytes[..bytes.len().min(PROBE_BYTES as usize)];
            return Ok(MediaFacts { content_type, size, dimensions: jpeg_dimensions(head) });
        }
        Err(format!("redirects more than {MAX_REDIRECTS} times"))
    }
}

#[async_trait]
impl MediaCheck for HttpMediaCheck {
    async fn check(&self, item: &MediaItem, placement: Placement, in_carousel: bool) -> Result<(), String> {
        let facts = self.fetch(&item.url).await?;
        judge(&facts, item.kind, placement, in_carousel)
    }
}

/// The host must resolve, and only to public addresses.
pub async fn check_addresses(host: &str, port: u16, allow_loopback: bool) -> Result<(), String> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| format!("its host {host} does not resolve"))?
            .map(|a| a.ip())
            .collect(),
    };
    if addresses.is_empty() {
        return Err(format!("its host {host} does not resolve"));
    }
    match addresses.iter().find(|ip| !is_public(ip) && !(allow_loopback && ip.is_loopback())) {
        Some(ip) => Err(format!("its host {host} points to a private address ({ip}), which Instagram cannot fetch")),
        None => Ok(()),
    }
}

fn is_public(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
                || (a == 198 && (18..20).contains(&b))) // benchmarking
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(&IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80) // link-local
        }
    }
}

/// Meta's limits for what was found; unknown facts pass (Meta has the last word).
pub fn judge(facts: &MediaFacts, kind: MediaKind, placement: Placement, in_carousel: bool) -> Result<(), String> {
    let mib = |b: u64| b / (1024 * 1024);
    match kind {
        MediaKind::Image => {
            if let Some(t) = &facts.content_type
                && t != "image/jpeg"
                && t != "image/jpg"
            {
                return Err(format!("is {t}, but Instagram takes only JPEG images"));
            }
            if let Some(size) = facts.size.filter(|s| *s > IMAGE_MAX_BYTES) {
                return Err(format!("is {} MiB, over Instagram's 8 MiB for images", mib(size)));
            }
            let feed = placement == Placement::Feed;
            if let Some((w, h)) = facts.dimensions.filter(|_| feed && !in_carousel) {
                let aspect = f64::from(w) / f64::from(h.max(1));
                if !(MIN_ASPECT - 0.005..=MAX_ASPECT + 0.005).contains(&aspect) {
                    return Err(format!(
                        "is {w}×{h} (aspect {aspect:.2}), outside the 4:5 to 1.91:1 Instagram allows in the feed"
                    ));
                }
            }
        }
        MediaKind::Video => {
            if let Some(t) = &facts.content_type
                && t != "video/mp4"
                && t != "video/quicktime"
            {
                return Err(format!("is {t}, but Instagram takes MP4 or MOV videos"));
            }
            let (max, what) = match placement {
                Placement::Story => (STORY_VIDEO_MAX_BYTES, "100 MiB for story videos"),
                Placement::Feed => (REEL_MAX_BYTES, "300 MiB for Reels"),
            };
            if let Some(size) = facts.size.filter(|s| *s > max) {
                return Err(format!("is {} MiB, over Instagram's {what}", mib(size)));
            }
        }
    }
    Ok(())
}

/// Width and height from a JPEG's start-of-frame marker (SOF0–SOF15 but DHT/JPG/DAC).
pub fn jpeg_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut i = 2;
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return None;
        }
        let marker = bytes[i + 1];
        if marker == 0xFF {
            i += 1; // fill byte
            continue;
        }
        let length = usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]));
        let is_sof = (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            let frame = bytes.get(i + 4..i + 9)?;
            let height = u32::from(u16::from_be_bytes([frame[1], frame[2]]));
            let width = u32::from(u16::from_be_bytes([frame[3], frame[4]]));
            return Some((width, height));
        }
        if length < 2 {
            return None;
        }
        i += 2 + length;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal JPEG header: SOI, an APP0 segment, then SOF0 with the given size.
    pub fn jpeg(width: u16, height: u16) -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x04, 0x00, 0x00, 0xFF, 0xC0, 0x00, 0x11, 0x08];
        b.extend_from_slice(&height.to_be_bytes());
        b.extend_from_slice(&width.to_be_bytes());
        b.extend_from_slice(&[0x03; 12]);
        b
    }

    #[test]
    fn jpeg_dimensions_come_from_the_frame_header() {
        assert_eq!(jpeg_dimensions(&jpeg(1080, 1350)), Some((1080, 1350)));
        assert_eq!(jpeg_dimensions(b"\\x89PNG...."), None);
        assert_eq!(jpeg_dimensions(&jpeg(1080, 1350)[..10]), None, "cut short");
        assert_eq!(jpeg_dimensions(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x00]), None, "bad segment length");
    }

    #[tokio::test]
    async fn private_loopback_and_link_local_hosts_are_refused() {
        for host in ["10.0.0.8", "192.168.1.1", "127.0.0.1", "169.254.169.254", "[::1]", "fd00::1", "100.64.0.1", "0.0.0.0"] {
            let err = check_addresses(host, 443, false).await.unwrap_err();
            assert!(err.contains("private address"), "{host}: {err}");
        }
        assert!(check_addresses("93.184.215.14", 443, false).await.is_ok());
        assert!(check_addresses("127.0.0.1", 443, true).await.is_ok(), "tests may serve from loopback");
        assert!(check_addresses("no-such-host.invalid", 443, false).await.unwrap_err().contains("does not resolve"));
    }

    #[test]
    fn type_size_and_shape_are_judged_against_metas_limits() {
        let facts = |t: &str, size: u64, dims: Option<(u32, u32)>| MediaFacts { content_type: Some(t.into()), size: Some(size), dimensions: dims };
        let feed = Placement::Feed;
        assert!(judge(&facts("image/jpeg", 1_000_000, Some((1080, 1350))), MediaKind::Image, feed, false).is_ok());
        assert!(judge(&facts("image/png", 1_000, None), MediaKind::Image, feed, false).unwrap_err().contains("only JPEG"));
        assert!(judge(&facts("image/jpeg", 9 << 20, None), MediaKind::Image, feed, false).unwrap_err().contains("8 MiB"));
        assert!(judge(&facts("image/jpeg", 1_000, Some((1080, 1920))), MediaKind::Image, feed, false).unwrap_err().contains("4:5"));
        // Stories and carousel items are cropped by Meta, not refused.
        assert!(judge(&facts("image/jpeg", 1_000, Some((1080, 1920))), MediaKind::Image, Placement::Story, false).is_ok());
        assert!(judge(&facts("image/jpeg", 1_000, Some((1080, 1920))), MediaKind::Image, feed, true).is_ok());
        assert!(judge(&facts("video/webm", 1_000, None), MediaKind::Video, feed, false).unwrap_err().contains("MP4"));
        assert!(judge(&facts("video/mp4", 200 << 20, None), MediaKind::Video, Placement::Story, false).unwrap_err().contains("100 MiB"));
        assert!(judge(&facts("video/mp4", 200 << 20, None), MediaKind::Video, feed, false).is_ok());
        assert!(judge(&MediaFacts::default(), MediaKind::Image, feed, false).is_ok(), "unknown facts pass");
    }

    #[tokio::test]
    async fn the_first_bytes_are_fetched_and_judged() {
        use axum::routing::get;
        let app = axum::Router::new()
            .route("/tall.jpg", get(|| async { ([("content-type", "image/jpeg"), ("content-range", "bytes 0-29/200000")], jpeg(1000, 2000)) }))
            .route("/ok.jpg", get(|| async { ([("content-type", "image/jpeg")], jpeg(1080, 1080)) }))
            .route("/gone.jpg", get(|| async { (axum::http::StatusCode::NOT_FOUND, "") }))
            .route("/hop", get(|| async { (axum::http::StatusCode::FOUND, [("location", "/ok.jpg")]) }))
            .route("/inside", get(|| async { (axum::http::StatusCode::FOUND, [("location", "http://10.0.0.1/x.jpg")]) }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let check = HttpMediaCheck::new(true).unwrap();
        let image = |path: &str| MediaItem::new(format!("{base}{path}"), MediaKind::Image);
        assert!(check.check(&image("/ok.jpg"), Placement::Feed, false).await.is_ok());
        assert!(check.check(&image("/hop"), Placement::Feed, false).await.is_ok(), "a redirect is followed");
        assert!(check.check(&image("/tall.jpg"), Placement::Feed, false).await.unwrap_err().contains("1000×2000"));
        assert!(check.check(&image("/gone.jpg"), Placement::Feed, false).await.unwrap_err().contains("HTTP 404"));
        let inside = check.check(&image("/inside"), Placement::Feed, false).await.unwrap_err();
        assert!(inside.contains("private address"), "{inside}");
    }
}
