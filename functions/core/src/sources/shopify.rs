//! `POST /webhooks/shopify`: Shopify product webhooks (`products/create`, `products/update`).
//!
//! Verified by `X-Shopify-Hmac-Sha256`, base64 of HMAC-SHA256 over the raw body keyed with the
//! app's client secret (two secrets during a rotation). Shopify signs no time, so there is no
//! replay window: the delivery records (kept 14 days, longer than Shopify's 4 h of retries) stop
//! replays. Only the body is signed; the shop comes from `X-Shopify-Shop-Domain` and selects the
//! route, so a route only ever receives products of the app's own installations.
//!
//! Posted: an `active` product with a `published_at` (visible in the Online Store), once per
//! product (or once per version of its title, description and images when the route sets
//! `repost_updates`). Everything else is acknowledged with 200 and recorded as skipped.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::RequestError;
use super::mapped::{DedupeKey, Mapped, Outcome};
use super::text::{fit_caption, hashtags, plain_text};
use crate::error::Error;
use crate::post::{MediaItem, MediaKind, PostRequest};
use crate::routing::{MediaChoice, Routing};

pub const SOURCE: &str = "shopify";
pub const TOPICS: [&str; 2] = ["products/create", "products/update"];
/// Instagram's carousel limit.
const MAX_ITEMS: usize = 10;

pub struct ShopifyVerifier {
    keys: Vec<Vec<u8>>,
}

/// Says how many keys there are, never what they are.
impl std::fmt::Debug for ShopifyVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ShopifyVerifier({} keys, redacted)", self.keys.len())
    }
}

impl ShopifyVerifier {
    /// `secrets`: one or more client secrets separated by spaces or commas (the key is the
    /// secret string's UTF-8 bytes).
    pub fn new(secrets: &str) -> Result<Self, Error> {
        let keys: Vec<Vec<u8>> = secrets.split([' ', ',']).filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()).collect();
        if keys.is_empty() {
            return Err(Error::Config("no Shopify client secret configured".into()));
        }
        Ok(ShopifyVerifier { keys })
    }

    pub fn verify(&self, headers: &HeaderMap, body: &[u8]) -> Result<(), RequestError> {
        let signature = headers
            .get("x-shopify-hmac-sha256")
            .ok_or_else(|| unauthorized("missing header X-Shopify-Hmac-Sha256"))?;
        let signature = BASE64
            .decode(signature.as_bytes())
            .map_err(|_| unauthorized("X-Shopify-Hmac-Sha256 is not base64"))?;
        let genuine = self.keys.iter().any(|key| {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
            mac.update(body);
            mac.verify_slice(&signature).is_ok()
        });
        if genuine { Ok(()) } else { Err(unauthorized("X-Shopify-Hmac-Sha256 does not match the body")) }
    }
}

fn unauthorized(message: &str) -> RequestError {
    RequestError::new(401, "invalid_signature", message)
}

/// The fields of the REST Admin `Product` a post is made of (the payload has many more).
#[derive(Deserialize)]
struct Product {
    id: u64,
    title: String,
    #[serde(default)]
    body_html: Option<String>,
    handle: String,
    status: String,
    published_at: Option<String>,
    #[serde(default)]
    tags: String,
    #[serde(default)]
    vendor: Option<String>,
    #[serde(default)]
    images: Vec<Image>,
    #[serde(default)]
    variants: Vec<Variant>,
}

#[derive(Deserialize)]
struct Image {
    src: String,
    #[serde(default)]
    alt: Option<String>,
    #[serde(default)]
    position: Option<u32>,
}

#[derive(Deserialize)]
struct Variant {
    #[serde(default)]
    price: Option<String>,
}

/// Maps a verified delivery: its topic, shop and product decide what is posted.
pub fn map(headers: &HeaderMap, body: &[u8], routing: &Routing) -> Result<Mapped, RequestError> {
    let webhook_id = required_header(headers, "X-Shopify-Webhook-Id")?;
    let delivery = DedupeKey::new(SOURCE, webhook_id);
    let topic = required_header(headers, "X-Shopify-Topic")?;
    let shop = required_header(headers, "X-Shopify-Shop-Domain")?.to_ascii_lowercase();
    let skip = |reason: String| Ok(Mapped { delivery: delivery.clone(), outcome: Outcome::Skip(reason) });
    if !TOPICS.contains(&topic) {
        return skip(format!("topic {topic} is not handled (only {})", TOPICS.join(", ")));
    }
    let product: Product = super::json::parse(body)?;
    let Some(route) = routing.shopify(&shop) else {
        return skip(format!("no route for Shopify shop {shop}"));
    };
    if product.status != "active" {
        return skip(format!("product {} is {}, not active", product.id, product.status));
    }
    if product.published_at.is_none() {
        return skip(format!("product {} is not published to the Online Store", product.id));
    }
    let mut images: Vec<&Image> = product.images.iter().collect();
    images.sort_by_key(|i| i.position.unwrap_or(u32::MAX));
    let take = match route.media {
        MediaChoice::First => 1,
        MediaChoice::All => MAX_ITEMS,
    };
    let media: Vec<MediaItem> = images
        .iter()
        .take(take)
        .map(|image| MediaItem {
            alt_text: image.alt.clone().filter(|a| !a.trim().is_empty()),
            ..MediaItem::new(image.src.clone(), MediaKind::Image)
        })
        .collect();
    if media.is_empty() {
        return skip(format!("product {} has no image", product.id));
    }

    let base = route.storefront_url.clone().unwrap_or_else(|| format!("https://{shop}"));
    let link = format!("{base}/products/{}", product.handle);
    let description = plain_text(product.body_html.as_deref().unwrap_or_default());
    let tags: Vec<&str> = product.tags.split(',').map(str::trim).filter(|t| !t.is_empty()).collect();
    let price = price(&product.variants);
    let caption = route.caption.render(|name| match name {
        "title" => Some(product.title.clone()),
        "description" => Some(description.clone()),
        "price" => price.clone(),
        "link" => Some(link.clone()),
        "hashtags" => Some(hashtags(tags.iter().copied())),
        "tags" => Some(tags.join(", ")),
        "vendor" => product.vendor.clone(),
        "shop" => Some(shop.clone()),
        _ => None,
    });

    let mut also = Vec::new();
    if let Some(event_id) = headers.get("x-shopify-event-id").and_then(|v| v.to_str().ok()) {
        // The same event delivered through a second subscription.
        also.push(DedupeKey::new(SOURCE, format!("event:{event_id}")));
    }
    let product_key = format!("product:{shop}:{}", product.id);
    also.push(DedupeKey::new(
        SOURCE,
        if route.repost_updates { format!("{product_key}:{}", content_hash(&product)) } else { product_key },
    ));
    let request = PostRequest { caption: fit_caption(caption), media, accounts: route.accounts.clone(), ..PostRequest::default() };
    Ok(Mapped { delivery, outcome: Outcome::Post { request, route: route.name.clone(), also } })
}

/// The lowest variant price as Shopify writes it ("24.00"), "from …" when the variants differ.
fn price(variants: &[Variant]) -> Option<String> {
    let prices: Vec<(f64, &str)> =
        variants.iter().filter_map(|v| v.price.as_deref()).filter_map(|p| p.parse::<f64>().ok().map(|n| (n, p))).collect();
    let (low, text) = prices.iter().copied().min_by(|a, b| a.0.total_cmp(&b.0))?;
    if prices.iter().any(|(n, _)| *n != low) { Some(format!("from {text}")) } else { Some(text.to_string()) }
}

/// What a post shows of the product: an update that changes none of it is not a new post.
fn content_hash(product: &Product) -> String {
    let mut hash = Sha256::new();
    for part in [product.title.as_str(), product.body_html.as_deref().unwrap_or_default()] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    for image in &product.images {
        hash.update(image.src.as_bytes());
        hash.update([0]);
    }
    hash.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect()
}

fn required_header<'h>(headers: &'h HeaderMap, name: &'static str) -> Result<&'h str, RequestError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.trim().is_empty())
        .map(str::trim)
        .ok_or_else(|| RequestError::field(400, "invalid_header", name, format!("header {name} is missing or not ASCII")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::fixtures;
    use instapipe_test_support::samples::SHOPIFY_SECRET as SECRET;

    const ACCOUNT: &str = "17841400000000001";

    fn routing(extra: serde_json::Value) -> Routing {
        let mut route = serde_json::json!({"source": "shopify", "shop": "demo-pier-goods.myshopify.com", "accounts": [ACCOUNT]});
        route.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        Routing::from_json(Some(&serde_json::json!({ "routes": [route] }).to_string())).unwrap()
    }

    #[test]
    fn both_fixtures_verify_and_any_change_breaks_them() {
        let v = ShopifyVerifier::new(SECRET).unwrap();
        for name in ["shopify-products-create", "shopify-products-update"] {
            let (headers, body) = (fixtures::headers(name), fixtures::body(name));
            v.verify(&headers, &body).unwrap();
            let mut flipped = body.clone();
            flipped[20] ^= 1;
            assert_eq!(v.verify(&headers, &flipped).unwrap_err().status, 401);
            // Re-serialising changes the bytes (the \u003c escapes), so it must fail too.
            let reserialised = serde_json::to_vec(&fixtures::json(name)).unwrap();
            assert!(v.verify(&headers, &reserialised).is_err());
        }
    }

    #[test]
    fn rotation_wrong_secret_and_garbage_signatures() {
        let (headers, body) = (fixtures::headers("shopify-products-create"), fixtures::body("shopify-products-create"));
        ShopifyVerifier::new(&format!("new-secret {SECRET}")).unwrap().verify(&headers, &body).unwrap();
        assert!(ShopifyVerifier::new("other-secret").unwrap().verify(&headers, &body).is_err());
        let v = ShopifyVerifier::new(SECRET).unwrap();
        let good = headers["x-shopify-hmac-sha256"].to_str().unwrap().to_string();
        for bad in [&good[..good.len() - 4], "", "%%%", "AAAA", &good[..10]] {
            let mut h = headers.clone();
            h.insert("x-shopify-hmac-sha256", bad.parse().unwrap());
            assert_eq!(v.verify(&h, &body).unwrap_err().code, "invalid_signature", "{bad}");
        }
        let mut unsigned = headers.clone();
        unsigned.remove("x-shopify-hmac-sha256");
        assert_eq!(v.verify(&unsigned, &body).unwrap_err().message, "missing header X-Shopify-Hmac-Sha256");
    }

    #[test]
    fn an_active_published_product_becomes_a_post() {
        let name = "shopify-products-create";
        let mapped = map(&fixtures::headers(name), &fixtures::body(name), &routing(serde_json::json!({}))).unwrap();
        assert_eq!(mapped.delivery, DedupeKey::new(SOURCE, "5b2e9f10-7c4a-4d63-8e1b-2a3c4d5e6f70"));
        let Outcome::Post { request, route, also } = mapped.outcome else { panic!("not posted") };
        assert_eq!(route, "routes[0] (shopify demo-pier-goods.myshopify.com)");
        assert_eq!(
            request.caption,
            "Enamel Camp Kettle — Fjäll Edition — from 38.00\n\
             https://demo-pier-goods.myshopify.com/products/enamel-camp-kettle-fjall-edition\n\n\
             #fjäll #camping #gift #newarrival"
        );
        assert_eq!(request.media.len(), 1, "the route's default media choice is the first image");
        assert_eq!(request.media[0].url, "https://cdn.example.com/s/files/1/0000/0002/files/camp-kettle-pine.jpg?v=1791877841");
        assert_eq!(request.media[0].alt_text.as_deref(), Some("Pine-green enamel kettle on a camp stove at dawn"));
        assert_eq!(request.accounts, [ACCOUNT]);
        assert_eq!(
            also,
            [
                DedupeKey::new(SOURCE, "event:a8d1c3e5-2f4b-4a6c-9e8d-7f6a5b4c3d2e"),
                DedupeKey::new(SOURCE, "product:demo-pier-goods.myshopify.com:7310000000101"),
            ]
        );
    }

    #[test]
    fn all_images_make_a_carousel_in_position_order_and_templates_apply() {
        let name = "shopify-products-create";
        let r = routing(serde_json::json!({"media": "all", "repost_updates": true,
            "storefront_url": "https://shop.example.com/", "caption": "{title}: {description} ({vendor})"}));
        let Outcome::Post { request, also, .. } = map(&fixtures::headers(name), &fixtures::body(name), &r).unwrap().outcome else {
            panic!("not posted")
        };
        let urls: Vec<_> = request.media.iter().map(|m| m.url.rsplit('/').next().unwrap()).collect();
        assert_eq!(urls, ["camp-kettle-pine.jpg?v=1791877841", "camp-kettle-slate.jpg?v=1791877841"]);
        assert_eq!(request.media[1].alt_text, None, "alt: null stays without alt text");
        assert_eq!(
            request.caption,
            "Enamel Camp Kettle — Fjäll Edition: Stove-top enamel kettle with a beech handle & a 1.2 l capacity. \
             Works on gas and induction Hand-dipped enamel (Example Outfitters)"
        );
        // repost_updates: the product key carries a hash of what is shown, so an edit posts again.
        assert!(also[1].event_id.starts_with("product:demo-pier-goods.myshopify.com:7310000000101:"), "{:?}", also[1]);
    }

    #[test]
    fn drafts_other_topics_and_unrouted_shops_are_skipped() {
        let name = "shopify-products-update";
        let mapped = map(&fixtures::headers(name), &fixtures::body(name), &routing(serde_json::json!({}))).unwrap();
        assert_eq!(mapped.delivery.event_id, "0e9d8c7b-6a5f-4e3d-b2c1-a0f9e8d7c6b5");
        assert_eq!(mapped.outcome, Outcome::Skip("product 7310000000188 is draft, not active".into()));

        let create = "shopify-products-create";
        let mut headers = fixtures::headers(create);
        headers.insert("x-shopify-topic", "orders/create".parse().unwrap());
        let Outcome::Skip(reason) = map(&headers, &fixtures::body(create), &routing(serde_json::json!({}))).unwrap().outcome else {
            panic!()
        };
        assert!(reason.starts_with("topic orders/create is not handled"), "{reason}");

        let Outcome::Skip(reason) = map(&fixtures::headers(create), &fixtures::body(create), &Routing::default()).unwrap().outcome else {
            panic!()
        };
        assert_eq!(reason, "no route for Shopify shop demo-pier-goods.myshopify.com");
    }

    #[test]
    fn malformed_products_and_missing_headers_are_400s() {
        let create = "shopify-products-create";
        let r = routing(serde_json::json!({}));
        let e = map(&fixtures::headers(create), br#"{"id":"x"}"#, &r).unwrap_err();
        assert_eq!((e.status, e.field.as_deref()), (400, Some("id")));
        let body = fixtures::body(create);
        let e = map(&fixtures::headers(create), &body[..body.len() / 2], &r).unwrap_err();
        assert_eq!((e.status, e.code), (400, "invalid_body"));
        let mut headers = fixtures::headers(create);
        headers.remove("x-shopify-webhook-id");
        let e = map(&headers, &body, &r).unwrap_err();
        assert_eq!((e.status, e.field.as_deref()), (400, Some("X-Shopify-Webhook-Id")));
    }
}
