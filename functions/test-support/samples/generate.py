#!/usr/bin/env python3
"""Writes the signed sample requests in this directory: <name>.body.json (the exact bytes that
are signed) and <name>.headers.json (the headers as the sender spells them).

Everything here is made up for instapipe's tests: shops, spaces, sites, ids and secrets. The
formats (header names, signature schemes, body encodings) are the vendors'. This is a second,
independent implementation of the signature schemes: the Rust verifiers and the test signer in
src/signing.rs are checked against what this script writes.

    python3 generate.py           # rewrite every sample (deterministic: same bytes every run)
    python3 generate.py --check   # exit 1 when a file differs from what would be written

Standard library only.
"""
import base64
import hashlib
import hmac
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# ---- secrets (test-only; src/lib.rs repeats them for the Rust tests) ----
SHOPIFY_SECRET = "instapipe-test-shopify-client-secret"
CONTENTFUL_SECRET = "instapipe-test-contentful-signing-secret-0112233445566778899aabb"  # 64 characters
WORDPRESS_KEY_CURRENT = b"instapipe-test-wordpress-key-new"  # 32 bytes
WORDPRESS_KEY_PREVIOUS = b"instapipe-test-wordpress-key-old"  # 32 bytes
assert len(CONTENTFUL_SECRET) == 64, "Contentful requires a 64-character secret"

# ---- when each sample was signed ----
SHOPIFY_AT = 1791877860  # 2026-10-13T07:51:00Z (Shopify signs no time; the tests' clock)
CONTENTFUL_AT_MS = 1791877925250  # 2026-10-13T07:52:05.250Z
WORDPRESS_AT = 1791877990  # 2026-10-13T07:53:10Z

SHOP = "demo-pier-goods.myshopify.com"
SPACE, ENVIRONMENT, ENTRY, REVISION = "demo0space7", "master", "5kPqRsTuVwXyZaBcDeFgHi", 5
ASSETS = ["4mNbVcXzLkJhGfDsAqW001", "4mNbVcXzLkJhGfDsAqW002", "4mNbVcXzLkJhGfDsAqW003"]
SITE = "https://news.example.org/"


def compact(value, ensure_ascii):
    return json.dumps(value, ensure_ascii=ensure_ascii, separators=(",", ":"))


def shopify_json(value):
    """Shopify's encoding: raw UTF-8, with <, > and & escaped as \\u003c, \\u003e, \\u0026."""
    text = compact(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def php_json(value):
    """PHP's json_encode defaults: \\/ for /, \\uXXXX for everything not ASCII."""
    return compact(value, ensure_ascii=True).replace("/", "\\/").encode()


def b64_hmac(key, message):
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


# ---- Shopify ----

def shopify_product(pid, title, body_html, vendor, kind, handle, tags, status, published_at, variants, images, stamp):
    created, updated = stamp
    images_out, media_out = [], []
    for position, (image_id, media_id, alt, width, height, src, variant_ids) in enumerate(images, start=1):
        images_out.append({
            "id": image_id, "alt": alt, "position": position, "product_id": pid, "created_at": created,
            "updated_at": updated, "admin_graphql_api_id": f"gid://shopify/ProductImage/{image_id}",
            "width": width, "height": height, "src": src, "variant_ids": variant_ids,
        })
        media_out.append({
            "id": media_id, "product_id": pid, "position": position, "created_at": created, "updated_at": updated,
            "alt": alt, "status": "READY", "media_content_type": "IMAGE",
            "preview_image": {"width": width, "height": height, "src": src, "status": "READY"},
            "variant_ids": variant_ids, "admin_graphql_api_id": f"gid://shopify/MediaImage/{media_id}",
        })
    variants_out = []
    for position, (vid, title_v, price, sku, image_id, quantity) in enumerate(variants, start=1):
        variants_out.append({
            "admin_graphql_api_id": f"gid://shopify/ProductVariant/{vid}", "barcode": None, "compare_at_price": None,
            "created_at": created, "id": vid, "inventory_policy": "deny", "position": position, "price": price,
            "product_id": pid, "sku": sku, "taxable": True, "title": title_v, "updated_at": updated,
            "option1": title_v, "option2": None, "option3": None, "image_id": image_id,
            "inventory_item_id": vid + 1000000, "inventory_quantity": quantity, "old_inventory_quantity": quantity,
        })
    return {
        "id": pid, "title": title, "body_html": body_html, "vendor": vendor, "product_type": kind,
        "created_at": created, "handle": handle, "updated_at": updated, "published_at": published_at,
        "template_suffix": None, "published_scope": "global", "tags": tags, "status": status,
        "admin_graphql_api_id": f"gid://shopify/Product/{pid}", "variants": variants_out,
        "options": [{"name": "Color", "id": pid + 5, "product_id": pid, "position": 1, "values": [v[1] for v in variants]}],
        "images": images_out, "image": images_out[0] if images_out else None, "media": media_out,
        "has_variants_that_requires_components": False, "category": None,
    }


def shopify_sample(topic, product, webhook_id, event_id, triggered_at):
    body = shopify_json(product)
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": b64_hmac(SHOPIFY_SECRET.encode(), body),
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-API-Version": "2026-10",
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Event-Id": event_id,
        "X-Shopify-Triggered-At": triggered_at,
    }
    return body, headers


def shopify_samples():
    cdn = "https://cdn.example.com/s/files/1/0000/0002/files"
    create = shopify_product(
        7310000000101, "Enamel Camp Kettle — Fjäll Edition",
        "<p>Stove-top enamel kettle with a beech handle &amp; a 1.2&nbsp;l capacity.</p>\n"
        "<ul><li>Works on gas and induction</li><li>Hand-dipped enamel</li></ul>",
        "Example Outfitters", "Kettles", "enamel-camp-kettle-fjall-edition", "fjäll, camping, gift, new-arrival",
        "active", "2026-10-13T09:50:41+02:00",
        [(46310000000101, "Pine", "38.00", "KTL-ENM-PINE", 41310000000101, 18),
         (46310000000102, "Slate", "42.00", "KTL-ENM-SLATE", 41310000000102, 9)],
        [(41310000000101, 31310000000101, "Pine-green enamel kettle on a camp stove at dawn", 2000, 2000,
          f"{cdn}/camp-kettle-pine.jpg?v=1791877841", [46310000000101]),
         (41310000000102, 31310000000102, None, 2000, 1500,
          f"{cdn}/camp-kettle-slate.jpg?v=1791877841", [46310000000102])],
        ("2026-10-13T09:50:41+02:00", "2026-10-13T09:50:59+02:00"),
    )
    update = shopify_product(
        7310000000188, "Beeswax Food Wraps (3 pcs)",
        "<p>Reusable wraps in three sizes, 20 × 20 to 35 × 35 cm.</p>",
        "Example Outfitters", "Kitchen", "beeswax-food-wraps", "kitchen, zero-waste",
        "draft", None,
        [(46310000000188, "Default Title", "16.00", "WRP-BEE-3", None, 0)],
        [(41310000000188, 31310000000188, "Three beeswax wraps folded on a linen cloth", 1600, 1200,
          f"{cdn}/beeswax-wraps.jpg?v=1791800000", [])],
        ("2026-10-12T17:05:12+02:00", "2026-10-13T09:58:30+02:00"),
    )
    return {
        "shopify-products-create": shopify_sample(
            "products/create", create, "5b2e9f10-7c4a-4d63-8e1b-2a3c4d5e6f70",
            "a8d1c3e5-2f4b-4a6c-9e8d-7f6a5b4c3d2e", "2026-10-13T07:50:59.482113907Z"),
        "shopify-products-update": shopify_sample(
            "products/update", update, "0e9d8c7b-6a5f-4e3d-b2c1-a0f9e8d7c6b5",
            "6c5b4a39-2817-4f6e-9d5c-4b3a29180f7e", "2026-10-13T07:58:30.118274650Z"),
    }


# ---- Contentful ----

def contentful_signature(method, path, headers, ts_ms, body):
    """The canonical request of Contentful's node-apps-toolkit, signed with the secret."""
    signed = {name.strip().lower(): value.strip() for name, value in headers.items()}
    names = sorted(set(signed) | {"x-contentful-signed-headers", "x-contentful-timestamp"})
    signed["x-contentful-signed-headers"] = ",".join(names)
    signed["x-contentful-timestamp"] = str(ts_ms)
    header_part = ";".join(f"{name}:{signed[name]}" for name in names)
    canonical = f"{method.upper()}\n{path}\n{header_part}\n".encode() + body
    digest = hmac.new(CONTENTFUL_SECRET.encode(), canonical, hashlib.sha256).hexdigest()
    return digest, signed["x-contentful-signed-headers"]


def contentful_samples():
    link = lambda kind, ident: {"sys": {"type": "Link", "linkType": kind, "id": ident}}
    user = "7qWeRtYuIoPaSdFgHjKlZx"
    entry = {
        "metadata": {"tags": [link("Tag", "instagram")]},
        "sys": {
            "type": "Entry", "id": ENTRY, "space": link("Space", SPACE),
            "environment": {"sys": {"id": ENVIRONMENT, "type": "Link", "linkType": "Environment"}},
            "contentType": link("ContentType", "instagramPost"),
            "createdBy": link("User", user), "updatedBy": link("User", user),
            "revision": REVISION, "createdAt": "2026-10-09T12:40:03.118Z", "updatedAt": "2026-10-13T07:52:04.871Z",
        },
        "fields": {
            "title": {"en-US": "Autumn Reading List", "de-DE": "Herbst-Leseliste"},
            "slug": {"en-US": "autumn-reading-list"},
            "caption": {
                "en-US": "Ten books for long evenings 🍂 Our autumn list is out — reserve yours at example.com/reserve #autumnreads",
                "de-DE": "Zehn Bücher für lange Abende 🍂 Unsere Herbstliste ist da #herbstlesen",
            },
            "heroImage": {"en-US": link("Asset", ASSETS[0])},
            "gallery": {"en-US": [link("Asset", ASSETS[1]), link("Asset", ASSETS[2])]},
            "publishAt": {"en-US": "2026-10-15T16:30:00.000Z"},
            "link": {"en-US": "https://www.example.com/reading/autumn"},
        },
    }
    body = compact(entry, ensure_ascii=False).encode()
    crn = f"crn:contentful:::content:spaces/{SPACE}/environments/{ENVIRONMENT}/entries/{ENTRY}"
    signed_headers = {
        "Content-Type": "application/vnd.contentful.management.v1+json",
        "X-Contentful-Topic": "ContentManagement.Entry.publish",
        "X-Contentful-Webhook-Name": "instapipe",
        "X-Contentful-CRN": crn,
    }
    signature, signed_list = contentful_signature("POST", "/webhooks/contentful", signed_headers, CONTENTFUL_AT_MS, body)
    headers = dict(signed_headers)
    # Sent but deliberately not signed: changing it must not break verification.
    headers["X-Contentful-Idempotency-Key"] = hashlib.sha256(f"{crn}:{REVISION}".encode()).hexdigest()
    headers["X-Contentful-Signature"] = signature
    headers["X-Contentful-Signed-Headers"] = signed_list
    headers["X-Contentful-Timestamp"] = str(CONTENTFUL_AT_MS)
    return {"contentful-entry-publish": (body, headers)}


# ---- WordPress (the mu-plugin's Standard Webhooks request) ----

def wordpress_samples():
    modified = "2026-10-13T07:53:02Z"
    event = {
        "type": "post.published",
        "timestamp": "2026-10-13T07:53:09+00:00",
        "data": {
            "site": SITE, "id": 5120, "post_type": "post",
            "title": "Autumn Reading List — Ten Picks",
            "excerpt": "Ten books for long evenings. Here’s the whole list.",
            "permalink": "https://news.example.org/2026/10/13/autumn-reading/",
            "featured_image": "https://news.example.org/wp-content/uploads/2026/10/autumn-reading.jpg",
            "categories": ["Books", "Events"], "tags": ["autumn", "reading"],
            "published_gmt": modified, "modified_gmt": modified,
        },
    }
    body = php_json(event)
    # The id the mu-plugin derives: stable across retries of the same revision.
    webhook_id = "msg_" + hashlib.sha256(f"{SITE}|5120|2026-10-13 07:53:02".encode()).hexdigest()[:32]
    signed = f"{webhook_id}.{WORDPRESS_AT}.".encode() + body
    # During a key rotation the sender signs with both keys: previous first, then current.
    tokens = [f"v1,{b64_hmac(key, signed)}" for key in (WORDPRESS_KEY_PREVIOUS, WORDPRESS_KEY_CURRENT)]
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "WordPress/6.9; https://news.example.org",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(WORDPRESS_AT),
        "webhook-signature": " ".join(tokens),
    }
    return {"wordpress-post-published": (body, headers)}


# ---- EventBridge (Lambda events: nothing signs them) ----

def eventbridge_samples():
    revision_key = f"contentful:{SPACE}:{ENVIRONMENT}:{ENTRY}:{REVISION}"
    images = "https://images.example.com/" + SPACE
    requested = {
        "version": "0", "id": "2d4f6a8c-1b3e-4c5d-8e7f-9a0b1c2d3e4f", "detail-type": "Publish Requested",
        "source": "com.example.cms-bridge", "account": "210987654321", "time": "2026-10-13T07:52:06Z",
        "region": "eu-central-1", "resources": [],
        "detail": {
            "schemaVersion": 1,
            # The Contentful sample's revision: the same post, whichever arrives first.
            "idempotencyKey": revision_key,
            "origin": {"system": "contentful", "topic": "ContentManagement.Entry.publish",
                       "ref": f"crn:contentful:::content:spaces/{SPACE}/environments/{ENVIRONMENT}/entries/{ENTRY}",
                       "receivedAt": "2026-10-13T07:52:05.402Z"},
            "post": {
                "caption": "Ten books for long evenings 🍂 Our autumn list is out — reserve yours at example.com/reserve #autumnreads",
                "media": [{"type": "IMAGE", "url": f"{images}/{ASSETS[0]}/autumn-hero.jpg"},
                          {"type": "IMAGE", "url": f"{images}/{ASSETS[1]}/autumn-shelf.jpg"}],
                "link": "https://www.example.com/reading/autumn",
                "publishAt": "2026-10-15T16:30:00Z",
            },
        },
    }
    due = {
        "kind": "publish-due", "idempotencyKey": revision_key,
        "scheduleArn": f"arn:aws:scheduler:eu-central-1:210987654321:schedule/instapipe-posts/post-{ENTRY}-r{REVISION}",
        "scheduledTime": "2026-10-15T16:30:00Z", "executionId": "5e0c7a19d4b2f863", "attemptNumber": "1",
    }
    pretty = lambda v: json.dumps(v, ensure_ascii=False, indent=2).encode() + b"\n"
    return {"eventbridge-publish-requested": (pretty(requested), {}),
            "eventbridge-scheduler-publish-due": (pretty(due), {})}


def samples():
    out = {}
    for part in (shopify_samples(), contentful_samples(), wordpress_samples(), eventbridge_samples()):
        out.update(part)
    return out


def main():
    check = "--check" in sys.argv[1:]
    drift = []
    for name, (body, headers) in sorted(samples().items()):
        files = {f"{name}.body.json": body,
                 f"{name}.headers.json": (json.dumps(headers, ensure_ascii=False, indent=2) + "\n").encode()}
        for file, content in files.items():
            path = HERE / file
            if check:
                if not path.exists() or path.read_bytes() != content:
                    drift.append(file)
            else:
                path.write_bytes(content)
    if drift:
        print("differs from what generate.py writes: " + ", ".join(drift), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
