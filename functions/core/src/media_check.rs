//! Media checked before any container is made, so that a post Meta would refuse fails at once
//! with a reason a person understands: the host must resolve to public addresses only (no
//! private, loopback or link-local: this is also what keeps our own fetch from reaching inside
//! a network), and the first bytes must show a type, size and (for images) shape Meta accepts
//! (limits from shared/reference/instagram-graph-api.md §5).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
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
/// How much of a media file is read, whatever the server sends (it may ignore Range).
pub const PROBE_BYTES: usize = 64 * 1024;

/// A host's addresses, looked up once per connection (a port so tests can play DNS).
#[async_trait]
pub trait Lookup: Send + Sync {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>>;
}

/// The system resolver.
pub struct SystemLookup;

#[async_trait]
impl Lookup for SystemLookup {
    async fn lookup(&self, host: &str) -> std::io::Result<Vec<IpAddr>> {
        Ok(tokio::net::lookup_host((host, 0)).await?.map(|a| a.ip()).collect())
    }
}

/// Why a host was refused: the media check's verdict, carried through reqwest's error.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// reqwest's DNS resolver for media hosts: one lookup, every address vetted, and only then the
/// addresses handed to the connector, which connects to exactly those. There is no second
/// lookup for a rebinding DNS server to answer differently (the old check-then-fetch window).
pub struct GuardedResolver {
    lookup: Arc<dyn Lookup>,
    allow_loopback: bool,
}

impl GuardedResolver {
    pub fn new(lookup: Arc<dyn Lookup>, allow_loopback: bool) -> Self {
        GuardedResolver { lookup, allow_loopback }
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let (lookup, allow_loopback, host) = (self.lookup.clone(), self.allow_loopback, name.as_str().to_string());
        Box::pin(async move {
            let addresses = lookup.lookup(&host).await.unwrap_or_default();
            vet(&host, &addresses, allow_loopback).map_err(Refused)?;
            // Port 0: reqwest puts the URL's port in.
            let addrs: reqwest::dns::Addrs = Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// `MEDIA_CHECK=full`: resolves, fetches the first 64 KiB, and checks what it finds.
pub struct HttpMediaCheck {
    http: reqwest::Client,
    /// Tests serve media from 127.0.0.1; nothing else may.
    allow_loopback: bool,
}

impl HttpMediaCheck {
    pub fn new(allow_loopback: bool) -> Result<Self, crate::Error> {
        Self::with_lookup(Arc::new(SystemLookup), allow_loopback)
    }

    pub fn with_lookup(lookup: Arc<dyn Lookup>, allow_loopback: bool) -> Result<Self, crate::Error> {
        let http = crate::https::client_builder()
            .timeout(Duration::from_secs(5))
            .dns_resolver(Arc::new(GuardedResolver::new(lookup, allow_loopback)))
            // A proxy would resolve the host itself, out of the resolver's sight.
            .no_proxy()
            // Redirects are followed by hand, checking each hop (its host goes through the resolver).
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| crate::Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(HttpMediaCheck { http, allow_loopback })
    }

    async fn fetch(&self, url: &str) -> Result<MediaFacts, String> {
        let mut url = reqwest::Url::parse(url).map_err(|e| format!("is not a valid URL ({e})"))?;
        for _ in 0..=MAX_REDIRECTS {
            let host = url.host_str().ok_or("has no host")?.to_string();
            // An address in the URL never reaches the resolver: vet it here.
            if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
                vet(&host, &[ip], self.allow_loopback)?;
            }
            let request = self.http.get(url.clone()).header("range", format!("bytes=0-{}", PROBE_BYTES - 1));
            let mut response = match request.send().await {
                Ok(response) => response,
                Err(err) => {
                    if let Some(refused) = refusal(&err) {
                        return Err(refused);
                    }
                    // Unreachable from here is not proof Meta cannot fetch it: do not block the post.
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
            // The first PROBE_BYTES, then the connection is dropped: a server that ignores Range
            // (or sends without end) costs no more than that.
            let mut head = Vec::with_capacity(PROBE_BYTES);
            while head.len() < PROBE_BYTES {
                match response.chunk().await {
                    Ok(Some(chunk)) => head.extend_from_slice(&chunk),
                    Ok(None) => break,
                    Err(_) => return Err("could not be read".into()),
                }
            }
            head.truncate(PROBE_BYTES);
            return Ok(MediaFacts { content_type, size, dimensions: jpeg_dimensions(&head) });
        }
        Err(format!("redirects more than {MAX_REDIRECTS} times"))
    }
}

/// The resolver's verdict, if that is why the request failed.
fn refusal(err: &reqwest::Error) -> Option<String> {
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<Refused>() {
            return Some(refused.0.clone());
        }
        source = e.source();
    }
    None
}

#[async_trait]
impl MediaCheck for HttpMediaCheck {
    async fn check(&self, item: &MediaItem, placement: Placement, in_carousel: bool) -> Result<(), String> {
        let facts = self.fetch(&item.url).await?;
        judge(&facts, item.kind, placement, in_carousel)
    }
}

/// The host must have resolved, and only to public addresses (loopback too when allowed).
pub fn vet(host: &str, addresses: &[IpAddr], allow_loopback: bool) -> Result<(), String> {
    if addresses.is_empty() {
        return Err(format!("its host {host} does not resolve"));
    }
    match addresses.iter().find(|ip| !(is_public(ip) || (allow_loopback && ip.is_loopback()))) {
        Some(ip) => Err(format!("its host {host} points to a private address ({ip}), which Instagram cannot fetch")),
        None => Ok(()),
    }
}

/// Ranges that are not the public internet, or that lead back into it from a private place:
/// this network, private, shared (CGNAT), loopback, link-local (169.254.169.254, the instance
/// metadata), IETF protocol assignments, documentation, 6to4 relays, benchmarking, multicast and
/// reserved (240.0.0.0/4, broadcast included).
const REFUSED_V4: [&str; 15] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
];

/// IPv4-compatible and unspecified/loopback, NAT64 (64:ff9b::/96 reaches any IPv4 address,
/// private ones included, through the translator; and its local-use /48), discard-only, Teredo,
/// documentation, 6to4 (2002::/16, an IPv4 address inside), unique local, link-local,
/// site-local, multicast.
const REFUSED_V6: [&str; 12] = [
    "::/96",
    "64:ff9b::/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/32",
    "2001:db8::/32",
    "2002::/16",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
    "::1/128",
];

fn is_public(ip: &IpAddr) -> bool {
    use std::sync::LazyLock;
    static REFUSED: LazyLock<Vec<ipnet::IpNet>> = LazyLock::new(|| {
        REFUSED_V4.iter().chain(REFUSED_V6.iter()).map(|net| net.parse().expect("a CIDR range")).collect()
    });
    // An IPv4-mapped address (::ffff:a.b.c.d) is the IPv4 address it carries.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(*ip, IpAddr::V4),
        IpAddr::V4(_) => *ip,
    };
    !REFUSED.iter().any(|net| net.contains(&ip))
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_loopback_link_local_translated_and_reserved_addresses_are_refused() {
        let refused = [
            "10.0.0.8", "172.16.5.4", "192.168.1.1", "127.0.0.1", "127.8.9.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
            "192.0.0.170", "198.18.0.1", "224.0.0.1", "240.0.0.1", "250.1.2.3", "255.255.255.255", "::1", "::", "fd00::1",
            "fe80::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::127.0.0.1", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1", "2002:7f00:1::1", "2002:5db8:d70e::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "2001:db8::1",
        ];
        for address in refused {
            let err = vet("media.example", &[ip(address)], false).unwrap_err();
            assert!(err.contains("private address"), "{address}: {err}");
        }
        for public in ["93.184.215.14", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946", "::ffff:93.184.215.14"] {
            assert!(vet("media.example", &[ip(public)], false).is_ok(), "{public}");
        }
        // One bad address among good ones is enough to refuse the host.
        assert!(vet("media.example", &[ip("93.184.215.14"), ip("10.0.0.1")], false).is_err());
        assert!(vet("media.example", &[], false).unwrap_err().contains("does not resolve"));
        // Tests serve media from loopback; that is all the exception lets through.
        assert!(vet("localhost", &[ip("127.0.0.1"), ip("::1")], true).is_ok());
        assert!(vet("media.example", &[ip("10.0.0.1")], true).is_err());
        assert!(vet("media.example", &[ip("64:ff9b::7f00:1")], true).is_err());
    }

    /// A DNS server under test: answers from a script, one entry per lookup, and counts them.
    struct ScriptedLookup {
        answers: Vec<Vec<IpAddr>>,
        calls: std::sync::atomic::AtomicUsize,
    }

    impl ScriptedLookup {
        fn new(answers: &[&[&str]]) -> Arc<Self> {
            let answers = answers.iter().map(|a| a.iter().map(|s| ip(s)).collect()).collect();
            Arc::new(ScriptedLookup { answers, calls: Default::default() })
        }
        fn calls(&self) -> usize {
            self.calls.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl Lookup for ScriptedLookup {
        async fn lookup(&self, _host: &str) -> std::io::Result<Vec<IpAddr>> {
            let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(self.answers[n.min(self.answers.len() - 1)].clone())
        }
    }

    #[tokio::test]
    async fn the_resolver_refuses_a_name_with_a_forbidden_address_in_one_lookup() {
        use reqwest::dns::Resolve;
        let lookup = ScriptedLookup::new(&[&["93.184.215.14", "169.254.169.254"]]);
        let resolver = GuardedResolver::new(lookup.clone(), false);
        let err = resolver.resolve("media.example".parse().unwrap()).await.err().expect("refused");
        assert!(err.to_string().contains("private address (169.254.169.254)"), "{err}");
        assert_eq!(lookup.calls(), 1);
        let lookup = ScriptedLookup::new(&[&["93.184.215.14"]]);
        let addrs: Vec<SocketAddr> = GuardedResolver::new(lookup.clone(), false)
            .resolve("media.example".parse().unwrap())
            .await
            .expect("a public address passes")
            .collect();
        assert_eq!(addrs, vec![SocketAddr::new(ip("93.184.215.14"), 0)]);
    }

    /// A media server on loopback that counts the requests it got and the body bytes it sent.
    async fn media_server() -> (String, Arc<std::sync::atomic::AtomicUsize>, Arc<std::sync::atomic::AtomicU64>) {
        use axum::routing::get;
        use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
        let requests = Arc::new(AtomicUsize::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        let endless_sent = sent.clone();
        let app = axum::Router::new()
            .route("/tall.jpg", get(|| async { ([("content-type", "image/jpeg"), ("content-range", "bytes 0-29/200000")], jpeg(1000, 2000)) }))
            .route("/ok.jpg", get(|| async { ([("content-type", "image/jpeg")], jpeg(1080, 1080)) }))
            .route("/gone.jpg", get(|| async { (axum::http::StatusCode::NOT_FOUND, "") }))
            .route("/hop", get(|| async { (axum::http::StatusCode::FOUND, [("location", "/ok.jpg")]) }))
            .route("/inside", get(|| async { (axum::http::StatusCode::FOUND, [("location", "http://10.0.0.1/x.jpg")]) }))
            .route("/nat64", get(|| async { (axum::http::StatusCode::FOUND, [("location", "http://[64:ff9b::a9fe:a9fe]/x.jpg")]) }))
            // Ignores Range and never ends: a tall JPEG header, then zeros for ever.
            .route(
                "/endless.jpg",
                get(move || {
                    let sent = endless_sent.clone();
                    async move {
                        let head = futures::stream::once(async { Ok::<_, std::io::Error>(bytes_of(jpeg(1000, 2000))) });
                        let zeros = futures::stream::repeat_with(move || {
                            sent.fetch_add(16 * 1024, Ordering::SeqCst);
                            Ok(bytes_of(vec![0u8; 16 * 1024]))
                        });
                        ([("content-type", "image/jpeg")], axum::body::Body::from_stream(futures::StreamExt::chain(head, zeros)))
                    }
                }),
            )
            .layer(axum::middleware::from_fn(move |req: axum::extract::Request, next: axum::middleware::Next| {
                counter.fetch_add(1, Ordering::SeqCst);
                next.run(req)
            }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (format!("{port}"), requests, sent)
    }

    fn bytes_of(v: Vec<u8>) -> axum::body::Bytes {
        axum::body::Bytes::from(v)
    }

    #[tokio::test]
    async fn the_first_bytes_are_fetched_and_judged() {
        let (port, _, _) = media_server().await;
        let base = format!("http://127.0.0.1:{port}");
        let check = HttpMediaCheck::new(true).unwrap();
        let image = |path: &str| MediaItem::new(format!("{base}{path}"), MediaKind::Image);
        assert!(check.check(&image("/ok.jpg"), Placement::Feed, false).await.is_ok());
        assert!(check.check(&image("/hop"), Placement::Feed, false).await.is_ok(), "a redirect is followed");
        assert!(check.check(&image("/tall.jpg"), Placement::Feed, false).await.unwrap_err().contains("1000×2000"));
        assert!(check.check(&image("/gone.jpg"), Placement::Feed, false).await.unwrap_err().contains("HTTP 404"));
        for hop in ["/inside", "/nat64"] {
            let inside = check.check(&image(hop), Placement::Feed, false).await.unwrap_err();
            assert!(inside.contains("private address"), "{hop}: {inside}");
        }
    }

    #[tokio::test]
    async fn a_server_that_ignores_range_and_never_ends_costs_only_the_first_bytes() {
        let (port, _, sent) = media_server().await;
        let check = HttpMediaCheck::new(true).unwrap();
        let endless = MediaItem::new(format!("http://127.0.0.1:{port}/endless.jpg"), MediaKind::Image);
        let started = std::time::Instant::now();
        // Judged from the prefix (the header's 1000×2000), long before the client's 5 s timeout.
        let err = check.check(&endless, Placement::Feed, false).await.unwrap_err();
        assert!(err.contains("1000×2000"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
        let sent = sent.load(std::sync::atomic::Ordering::SeqCst);
        assert!(sent < 32 * 1024 * 1024, "the server got to send {sent} bytes");
    }

    #[tokio::test]
    async fn the_connection_goes_to_the_address_that_was_checked_after_one_lookup() {
        let (port, requests, _) = media_server().await;
        // A rebinding DNS server: loopback (allowed in this test) first, the metadata address after.
        let lookup = ScriptedLookup::new(&[&["127.0.0.1"], &["169.254.169.254"]]);
        let check = HttpMediaCheck::with_lookup(lookup.clone(), true).unwrap();
        let image = MediaItem::new(format!("http://media.example:{port}/ok.jpg"), MediaKind::Image);
        assert!(check.check(&image, Placement::Feed, false).await.is_ok());
        assert_eq!(lookup.calls(), 1, "one lookup: the one that was checked");
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Without the loopback exception the same answer is refused, and nothing is requested.
        let lookup = ScriptedLookup::new(&[&["127.0.0.1"]]);
        let check = HttpMediaCheck::with_lookup(lookup.clone(), false).unwrap();
        let err = check.check(&image, Placement::Feed, false).await.unwrap_err();
        assert!(err.contains("its host media.example points to a private address (127.0.0.1)"), "{err}");
        assert_eq!(lookup.calls(), 1);
        assert_eq!(requests.load(std::sync::atomic::Ordering::SeqCst), 1, "no request reached the server");
        let unresolvable = ScriptedLookup::new(&[&[]]);
        let err = HttpMediaCheck::with_lookup(unresolvable, false).unwrap().check(&image, Placement::Feed, false).await.unwrap_err();
        assert!(err.contains("does not resolve"), "{err}");
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
}
