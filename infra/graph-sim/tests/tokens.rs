//! The token endpoints, black-box over HTTP: refresh and exchange replace an account's token;
//! unknown and expired tokens get 190.

use graph_sim::{LONG_LIVED_SECS, SimConfig, spawn};
use serde_json::Value;

const ACCOUNT: &str = "17841400000000001";

async fn get(url: &str, query: &[(&str, &str)], bearer: Option<&str>) -> (u16, Value) {
    let mut request = reqwest::Client::new().get(url).query(query);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn an_instagram_refresh_replaces_the_token_and_the_old_one_stops_working() {
    let (sim, base) = spawn(SimConfig::default(), 0).await.unwrap();
    sim.set_token(ACCOUNT, "IGAA-old");
    let refresh = format!("{base}/refresh_access_token");
    let (status, body) = get(&refresh, &[("grant_type", "ig_refresh_token"), ("access_token", "IGAA-old")], None).await;
    assert_eq!(status, 200, "{body}");
    let fresh = body["access_token"].as_str().unwrap().to_string();
    assert_ne!(fresh, "IGAA-old");
    assert_eq!((body["token_type"].as_str(), body["expires_in"].as_u64()), (Some("bearer"), Some(LONG_LIVED_SECS)));
    assert_eq!(sim.token_of(ACCOUNT).as_deref(), Some(fresh.as_str()));

    let limit = format!("{base}/v25.0/{ACCOUNT}/content_publishing_limit");
    assert_eq!(get(&limit, &[], Some(&fresh)).await.0, 200);
    let (status, body) = get(&limit, &[], Some("IGAA-old")).await;
    assert_eq!((status, body["error"]["code"].as_i64()), (400, Some(190)));
    // The old token cannot be refreshed either.
    let (_, body) = get(&refresh, &[("grant_type", "ig_refresh_token"), ("access_token", "IGAA-old")], None).await;
    assert_eq!(body["error"]["code"], 190);
}

#[tokio::test]
async fn an_expired_token_is_refused_everywhere_with_190_463() {
    let (sim, base) = spawn(SimConfig::default(), 0).await.unwrap();
    sim.set_token(ACCOUNT, "IGAA-expiring");
    sim.expire_token(ACCOUNT);
    let (_, body) = get(
        &format!("{base}/refresh_access_token"),
        &[("grant_type", "ig_refresh_token"), ("access_token", "IGAA-expiring")],
        None,
    )
    .await;
    assert_eq!((body["error"]["code"].as_i64(), body["error"]["error_subcode"].as_i64()), (Some(190), Some(463)));
    let (_, body) = get(&format!("{base}/v25.0/{ACCOUNT}/media"), &[], Some("IGAA-expiring")).await;
    assert_eq!(body["error"]["code"], 190);
    assert_eq!(sim.token_of(ACCOUNT).as_deref(), Some("IGAA-expiring"), "nothing was issued");
}

#[tokio::test]
async fn exchanges_need_the_app_credentials_and_a_known_token() {
    let (sim, base) = spawn(SimConfig::default(), 0).await.unwrap();
    sim.set_token(ACCOUNT, "EAA-short");
    let url = format!("{base}/v25.0/oauth/access_token");
    let (_, body) = get(&url, &[("grant_type", "fb_exchange_token"), ("fb_exchange_token", "EAA-short")], None).await;
    assert_eq!(body["error"]["code"], 100, "client_id and client_secret are required");
    let full = [("grant_type", "fb_exchange_token"), ("client_id", "1"), ("client_secret", "s"), ("fb_exchange_token", "EAA-short")];
    let (status, body) = get(&url, &full, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(sim.token_of(ACCOUNT).as_deref(), body["access_token"].as_str());
    let unknown = [("grant_type", "ig_exchange_token"), ("client_secret", "s"), ("access_token", "IGAA-nobody")];
    let (_, body) = get(&format!("{base}/access_token"), &unknown, None).await;
    assert_eq!(body["error"]["code"], 190);
}
