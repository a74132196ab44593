//! Routing: which Instagram accounts receive the posts of a source (a Shopify shop, a Contentful
//! space and content type, a WordPress site, an EventBridge event source), with which caption
//! template and media, and whether an update posts again.
//!
//! The routing is the JSON value of the environment variable `ROUTING_CONFIG`: it is part of the
//! deployment (reviewed and versioned with template.yaml, rolled back with the stack), costs no
//! call at cold start and needs no extra IAM permission; it holds no secret. Lambda allows 4 KB
//! of environment per function, which is room for a few dozen routes.
//!
//! ```json
//! {"routes": [
//!   {"source": "shopify", "shop": "example-store.myshopify.com", "accounts": ["17841400000000001"],
//!    "caption": "{title} — {price}\n{link}\n\n{hashtags}", "media": "all", "repost_updates": false},
//!   {"source": "contentful", "space": "exmpl0space1", "content_type": "socialPost", "locale": "en-US",
//!    "fields": {"caption": "caption", "media": ["heroImage", "gallery"], "publish_at": "publishAt"},
//!    "accounts": ["17841400000000001"]},
//!   {"source": "wordpress", "site": "https://blog.example.com/", "accounts": ["17841400000000001"]},
//!   {"source": "eventbridge", "event_source": "com.example.cms-bridge", "accounts": ["17841400000000001"]}
//! ]}
//! ```
//! The first route that matches an event is used. Validated once at start-up: a bad entry stops
//! the function with an error that names it (`routes[2] (wordpress site …): …`).

use serde::Deserialize;

use crate::error::{Error, Result};

pub const ROUTING_VAR: &str = "ROUTING_CONFIG";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteSource {
    Shopify,
    Contentful,
    Wordpress,
    Eventbridge,
}

impl RouteSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RouteSource::Shopify => "shopify",
            RouteSource::Contentful => "contentful",
            RouteSource::Wordpress => "wordpress",
            RouteSource::Eventbridge => "eventbridge",
        }
    }

    pub fn parse(name: &str) -> Option<RouteSource> {
        [RouteSource::Shopify, RouteSource::Contentful, RouteSource::Wordpress, RouteSource::Eventbridge]
            .into_iter()
            .find(|s| s.as_str() == name)
    }

    /// The placeholders a caption template of this source may use.
    pub fn placeholders(self) -> &'static [&'static str] {
        match self {
            RouteSource::Shopify => &["title", "description", "price", "link", "hashtags", "tags", "vendor", "shop"],
            RouteSource::Contentful => &["caption", "title", "link"],
            RouteSource::Wordpress => &["title", "excerpt", "link", "hashtags", "tags", "categories", "site"],
            RouteSource::Eventbridge => &["caption", "link"],
        }
    }

    fn default_caption(self) -> &'static str {
        match self {
            RouteSource::Shopify => "{title} — {price}\n{link}\n\n{hashtags}",
            RouteSource::Contentful => "{caption}",
            RouteSource::Wordpress => "{title}\n\n{excerpt}\n\n{link}\n\n{hashtags}",
            RouteSource::Eventbridge => "{caption}",
        }
    }
}

/// Which of an event's images and videos are posted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaChoice {
    /// The first one: a single image or Reel.
    #[default]
    First,
    /// All of them, up to 10: a carousel when there are two or more.
    All,
}

/// Where a Contentful entry's values are, by field id (values are read in the route's locale).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentfulFields {
    #[serde(default = "ContentfulFields::default_caption")]
    pub caption: String,
    #[serde(default = "ContentfulFields::default_title")]
    pub title: String,
    #[serde(default = "ContentfulFields::default_link")]
    pub link: String,
    /// A date field; absent or past means now.
    #[serde(default)]
    pub publish_at: Option<String>,
    /// Asset link fields (one link or a list each), in order.
    pub media: Vec<String>,
}

impl ContentfulFields {
    fn default_caption() -> String {
        "caption".into()
    }
    fn default_title() -> String {
        "title".into()
    }
    fn default_link() -> String {
        "link".into()
    }
}

/// One entry of the routing as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteEntry {
    source: RouteSource,
    #[serde(default)]
    shop: Option<String>,
    #[serde(default)]
    space: Option<String>,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    site: Option<String>,
    #[serde(default)]
    event_source: Option<String>,
    accounts: Vec<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    media: MediaChoice,
    #[serde(default)]
    repost_updates: bool,
    #[serde(default)]
    locale: Option<String>,
    #[serde(default)]
    fields: Option<ContentfulFields>,
    #[serde(default)]
    storefront_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RoutingDocument {
    routes: Vec<RouteEntry>,
}

/// A validated route.
#[derive(Clone, Debug, PartialEq)]
pub struct Route {
    /// `routes[<i>] (<source> <match>)`: how errors and skip reasons name it.
    pub name: String,
    pub source: RouteSource,
    /// What it matches, normalised (Shopify shop, WordPress site, EventBridge source, or
    /// Contentful `space/content type`).
    key: String,
    /// Whose route it is, and so whose signing secrets verify it: the shop, the site without
    /// its scheme, the Contentful space, the event source (see `route_secrets`).
    pub tenant: String,
    /// Contentful only; `None` matches every environment.
    environment: Option<String>,
    pub accounts: Vec<String>,
    pub caption: CaptionTemplate,
    pub media: MediaChoice,
    pub repost_updates: bool,
    /// Contentful: the locale whose values are posted.
    pub locale: String,
    pub fields: Option<ContentfulFields>,
    /// Shopify: the storefront's base URL for `{link}` (default `https://<shop>`).
    pub storefront_url: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Routing {
    routes: Vec<Route>,
}

impl Routing {
    /// Parses and validates `ROUTING_CONFIG`; absent or blank means no routes.
    pub fn from_json(json: Option<&str>) -> Result<Routing> {
        let Some(json) = json.filter(|j| !j.trim().is_empty()) else { return Ok(Routing::default()) };
        let mut de = serde_json::Deserializer::from_str(json);
        let doc: RoutingDocument = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            config_error(format!("{path}: {}", e.into_inner()))
        })?;
        let mut routes: Vec<Route> = Vec::with_capacity(doc.routes.len());
        for (i, entry) in doc.routes.into_iter().enumerate() {
            let route = Route::validate(i, entry)?;
            if let Some(earlier) = routes.iter().find(|r| r.source == route.source && r.key == route.key && r.environment == route.environment) {
                return Err(config_error(format!("{}: matches the same events as {}", route.name, earlier.name)));
            }
            routes.push(route);
        }
        Ok(Routing { routes })
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn uses(&self, source: RouteSource) -> bool {
        self.routes.iter().any(|r| r.source == source)
    }

    pub fn shopify(&self, shop: &str) -> Option<&Route> {
        self.find(RouteSource::Shopify, &shop.trim().to_ascii_lowercase(), None)
    }

    pub fn contentful(&self, space: &str, environment: &str, content_type: &str) -> Option<&Route> {
        self.find(RouteSource::Contentful, &format!("{space}/{content_type}"), Some(environment))
    }

    pub fn wordpress(&self, site: &str) -> Option<&Route> {
        self.find(RouteSource::Wordpress, &normalise_site(site), None)
    }

    pub fn eventbridge(&self, event_source: &str) -> Option<&Route> {
        self.find(RouteSource::Eventbridge, event_source, None)
    }

    /// The first route of this tenant (a Contentful space has one route per content type).
    pub fn tenant(&self, source: RouteSource, tenant: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.source == source && r.tenant == tenant)
    }

    fn find(&self, source: RouteSource, key: &str, environment: Option<&str>) -> Option<&Route> {
        self.routes.iter().find(|r| {
            r.source == source && r.key == key && r.environment.as_deref().is_none_or(|e| Some(e) == environment)
        })
    }
}

impl Route {
    fn validate(i: usize, e: RouteEntry) -> Result<Route> {
        use RouteSource::*;
        let source = e.source;
        let required = |value: &Option<String>, field: &str| -> std::result::Result<String, String> {
            value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("{} routes need \"{field}\"", source.as_str()))
        };
        let key = match source {
            Shopify => required(&e.shop, "shop").map(|s| s.to_ascii_lowercase()),
            Contentful => required(&e.space, "space").and_then(|s| Ok(format!("{s}/{}", required(&e.content_type, "content_type")?))),
            Wordpress => required(&e.site, "site").and_then(|s| {
                if s.starts_with("https://") || s.starts_with("http://") {
                    Ok(normalise_site(&s))
                } else {
                    Err("\"site\" must be the site's URL (https://…), as the plugin sends it".into())
                }
            }),
            Eventbridge => required(&e.event_source, "event_source"),
        };
        let name = match &key {
            Ok(key) => format!("routes[{i}] ({} {key})", source.as_str()),
            Err(_) => format!("routes[{i}] ({})", source.as_str()),
        };
        let fail = |problem: String| config_error(format!("{name}: {problem}"));
        let key = key.map_err(fail)?;

        // Fields of other sources are mistakes (a typo'd source, a copied entry): refuse them.
        let foreign: [(&str, bool, &[RouteSource]); 7] = [
            ("shop", e.shop.is_some(), &[Shopify]),
            ("storefront_url", e.storefront_url.is_some(), &[Shopify]),
            ("space", e.space.is_some(), &[Contentful]),
            ("environment", e.environment.is_some(), &[Contentful]),
            ("content_type", e.content_type.is_some(), &[Contentful]),
            ("locale", e.locale.is_some(), &[Contentful]),
            ("fields", e.fields.is_some(), &[Contentful]),
        ];
        for (field, present, allowed) in foreign {
            if present && !allowed.contains(&source) {
                return Err(fail(format!("\"{field}\" does not apply to {} routes", source.as_str())));
            }
        }
        if e.site.is_some() && source != Wordpress {
            return Err(fail(format!("\"site\" does not apply to {} routes", source.as_str())));
        }
        if e.event_source.is_some() && source != Eventbridge {
            return Err(fail(format!("\"event_source\" does not apply to {} routes", source.as_str())));
        }
        if source == Contentful {
            match &e.fields {
                None => return Err(fail("contentful routes need \"fields\" with at least \"media\"".into())),
                Some(f) if f.media.is_empty() => return Err(fail("\"fields.media\" names no asset field".into())),
                Some(_) => {}
            }
        }
        if let Some(url) = &e.storefront_url
            && !url.starts_with("https://")
        {
            return Err(fail("\"storefront_url\" must be an https:// URL".into()));
        }

        if e.accounts.is_empty() {
            return Err(fail("\"accounts\" is empty: a route must name at least one Instagram account".into()));
        }
        for (j, account) in e.accounts.iter().enumerate() {
            if account.is_empty() || account.len() > 20 || !account.bytes().all(|b| b.is_ascii_digit()) {
                return Err(fail(format!("accounts[{j}] \"{account}\" is not an Instagram account id (1 to 20 digits)")));
            }
            if e.accounts[..j].contains(account) {
                return Err(fail(format!("accounts[{j}] \"{account}\" is listed twice")));
            }
        }
        let tenant = match source {
            Shopify | Eventbridge => key.clone(),
            Contentful => e.space.as_deref().unwrap_or_default().trim().to_string(),
            Wordpress => site_tenant(&key),
        };
        let template = e.caption.as_deref().unwrap_or(source.default_caption());
        let caption = CaptionTemplate::parse(template, source.placeholders()).map_err(|p| fail(format!("caption: {p}")))?;
        Ok(Route {
            name,
            source,
            key,
            tenant,
            environment: e.environment,
            accounts: e.accounts,
            caption,
            media: e.media,
            repost_updates: e.repost_updates,
            locale: e.locale.unwrap_or_else(|| "en-US".into()),
            fields: e.fields,
            storefront_url: e.storefront_url.map(|u| u.trim_end_matches('/').to_string()),
        })
    }
}

/// `https://Blog.Example.com` and `https://blog.example.com/` are the same site.
fn normalise_site(site: &str) -> String {
    let site = site.trim().trim_end_matches('/');
    match site.split_once("://") {
        Some((scheme, rest)) => {
            let (host, path) = rest.split_once('/').map_or((rest, ""), |(h, p)| (h, p));
            let path = if path.is_empty() { String::new() } else { format!("/{path}") };
            format!("{}://{}{path}", scheme.to_ascii_lowercase(), host.to_ascii_lowercase())
        }
        None => site.to_string(),
    }
}

/// A WordPress site's tenant: the normalised URL without its scheme (`blog.example.com/news`).
pub fn site_tenant(site: &str) -> String {
    let site = normalise_site(site);
    site.split_once("://").map_or(site.clone(), |(_, rest)| rest.to_string())
}

/// A Shopify shop's tenant: its domain in lowercase.
pub fn shop_tenant(shop: &str) -> String {
    shop.trim().to_ascii_lowercase()
}

fn config_error(message: String) -> Error {
    Error::Config(format!("{ROUTING_VAR} {message}"))
}

/// A caption with `{placeholder}`s (`{{` and `}}` for literal braces), checked at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptionTemplate {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Value(String),
}

impl CaptionTemplate {
    pub fn parse(template: &str, allowed: &[&str]) -> std::result::Result<CaptionTemplate, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(format!("\"{{{name}\" is not closed with \"}}\"")),
                        }
                    }
                    if !allowed.contains(&name.as_str()) {
                        return Err(format!("unknown placeholder {{{name}}}; this source has {}", allowed.join(", ")));
                    }
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Value(name));
                }
                '}' => return Err("a lone \"}\" (write \"}}\" for a literal brace)".into()),
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(CaptionTemplate { parts })
    }

    /// Fills in the values (a missing one renders empty), then tidies what empty values leave:
    /// trailing spaces, more than one blank line, blank lines at either end.
    pub fn render(&self, value: impl Fn(&str) -> Option<String>) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Value(name) => out.push_str(&value(name).unwrap_or_default()),
            }
        }
        let mut lines: Vec<&str> = Vec::new();
        for line in out.lines().map(str::trim_end) {
            if line.is_empty() && lines.last().is_none_or(|l| l.is_empty()) {
                continue;
            }
            lines.push(line);
        }
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "17841400000000001";

    fn routing(routes: serde_json::Value) -> Result<Routing> {
        Routing::from_json(Some(&serde_json::json!({ "routes": routes }).to_string()))
    }

    fn error(routes: serde_json::Value) -> String {
        routing(routes).unwrap_err().to_string()
    }

    #[test]
    fn routes_match_by_shop_space_and_content_type_site_and_event_source() {
        let r = routing(serde_json::json!([
            {"source": "shopify", "shop": "Example-Store.myshopify.com", "accounts": [ACCOUNT]},
            {"source": "contentful", "space": "sp1", "content_type": "socialPost", "environment": "master",
             "fields": {"media": ["heroImage"]}, "accounts": [ACCOUNT]},
            {"source": "wordpress", "site": "https://Blog.example.com", "accounts": [ACCOUNT], "repost_updates": true},
            {"source": "eventbridge", "event_source": "com.example.cms-bridge", "accounts": [ACCOUNT], "media": "all"},
        ]))
        .unwrap();
        assert_eq!(r.shopify("example-store.myshopify.com").unwrap().name, "routes[0] (shopify example-store.myshopify.com)");
        assert!(r.shopify("other.myshopify.com").is_none());
        assert!(r.contentful("sp1", "master", "socialPost").is_some());
        assert!(r.contentful("sp1", "staging", "socialPost").is_none(), "the route names one environment");
        assert!(r.contentful("sp1", "master", "page").is_none());
        let wp = r.wordpress("https://blog.example.com/").unwrap();
        assert!(wp.repost_updates);
        assert_eq!(r.eventbridge("com.example.cms-bridge").unwrap().media, MediaChoice::All);
        assert_eq!(r.routes()[1].locale, "en-US");
        let tenants: Vec<&str> = r.routes().iter().map(|r| r.tenant.as_str()).collect();
        assert_eq!(tenants, ["example-store.myshopify.com", "sp1", "blog.example.com", "com.example.cms-bridge"]);
        assert_eq!(r.tenant(RouteSource::Wordpress, &site_tenant("http://BLOG.example.com/")).unwrap().name, wp.name);
        assert_eq!(r.routes()[1].fields.as_ref().unwrap().caption, "caption");
    }

    #[test]
    fn absent_or_blank_means_no_routes() {
        assert!(Routing::from_json(None).unwrap().routes().is_empty());
        assert!(Routing::from_json(Some("  ")).unwrap().routes().is_empty());
    }

    #[test]
    fn bad_entries_are_named() {
        let e = error(serde_json::json!([{"source": "shopify", "accounts": [ACCOUNT]}]));
        assert_eq!(e, "configuration: ROUTING_CONFIG routes[0] (shopify): shopify routes need \"shop\"");

        let e = error(serde_json::json!([
            {"source": "shopify", "shop": "a.myshopify.com", "accounts": [ACCOUNT]},
            {"source": "wordpress", "site": "https://blog.example.com", "accounts": ["12ab"]},
        ]));
        assert!(e.contains("routes[1] (wordpress https://blog.example.com): accounts[0] \"12ab\""), "{e}");

        let e = error(serde_json::json!([{"source": "shopify", "shop": "a.myshopify.com", "accounts": [ACCOUNT], "caption": "{title} {prise}"}]));
        assert!(e.contains("routes[0] (shopify a.myshopify.com): caption: unknown placeholder {prise}"), "{e}");

        let e = error(serde_json::json!([{"source": "wordpress", "site": "https://b.example", "shop": "x", "accounts": [ACCOUNT]}]));
        assert!(e.contains("\"shop\" does not apply to wordpress routes"), "{e}");

        let e = error(serde_json::json!([{"source": "contentful", "space": "s", "content_type": "t", "accounts": [ACCOUNT]}]));
        assert!(e.contains("routes[0] (contentful s/t): contentful routes need \"fields\""), "{e}");

        let e = error(serde_json::json!([{"source": "wordpress", "site": "https://b.example", "accounts": []}]));
        assert!(e.contains("\"accounts\" is empty"), "{e}");

        let e = error(serde_json::json!([
            {"source": "eventbridge", "event_source": "x", "accounts": [ACCOUNT]},
            {"source": "eventbridge", "event_source": "x", "accounts": [ACCOUNT]},
        ]));
        assert!(e.contains("routes[1] (eventbridge x): matches the same events as routes[0] (eventbridge x)"), "{e}");

        let e = error(serde_json::json!([{"source": "shopify", "shop": "a", "accounts": [ACCOUNT], "media": "some"}]));
        assert!(e.contains("routes[0].media: unknown variant `some`"), "{e}");

        let e = error(serde_json::json!([{"source": "tiktok", "accounts": [ACCOUNT]}]));
        assert!(e.contains("routes[0].source"), "{e}");

        assert!(Routing::from_json(Some("{\"routes\": [")).unwrap_err().to_string().contains("ROUTING_CONFIG"));
    }

    #[test]
    fn templates_render_values_and_tidy_empty_lines() {
        let t = CaptionTemplate::parse("{title} — {price}\n\n{link}\n\n{hashtags} {{x}}", &["title", "price", "link", "hashtags"]).unwrap();
        let rendered = t.render(|name| match name {
            "title" => Some("Mug".into()),
            "price" => Some("24.00".into()),
            "hashtags" => Some("#mug".into()),
            _ => None,
        });
        assert_eq!(rendered, "Mug — 24.00\n\n#mug {x}");
        assert!(CaptionTemplate::parse("oops }", &[]).is_err());
        assert!(CaptionTemplate::parse("{title", &["title"]).is_err());
    }
}
