//! The simulator follows the API as the official SDK describes it: `to=`, `GET /v3/chats/{id}`,
//! JSON error bodies everywhere, and no fields the SDK says are always null.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use linq_exporter::demo::{self, SimConfig, DEMO_KEY};
use serde_json::Value;

async fn start() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (url, _task) = demo::spawn(
        &SimConfig {
            chats: 300,
            ..Default::default()
        },
        listener,
    )
    .unwrap();
    // Dropping the handle detaches the task: it serves until the test ends.
    url
}

async fn get(url: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(url)
        .bearer_auth(DEMO_KEY)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body:?}")),
    )
}

#[tokio::test]
async fn to_filters_by_participant_and_chats_are_found_by_id() {
    let url = start().await;
    let (_, page) = get(&format!("{url}/v3/chats?limit=100")).await;
    let first = &page["chats"][0];
    let other = first["handles"][1]["handle"].as_str().unwrap();
    let (status, filtered) =
        get(&format!("{url}/v3/chats?limit=100&to={}", urlencode(other))).await;
    assert_eq!(status, 200);
    let chats = filtered["chats"].as_array().unwrap();
    assert!(!chats.is_empty());
    for c in chats {
        assert!(
            c["handles"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["handle"] == other),
            "{c}"
        );
    }
    assert!(chats.len() < 300);
    let (status, none) = get(&format!("{url}/v3/chats?to=%2B19999999999")).await;
    assert_eq!((status, none["chats"].as_array().unwrap().len()), (200, 0));

    let id = first["id"].as_str().unwrap();
    let (status, chat) = get(&format!("{url}/v3/chats/{id}")).await;
    assert_eq!((status, chat["id"].as_str()), (200, Some(id)));
    let (status, body) = get(&format!("{url}/v3/chats/no-such-chat")).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], 2001);
    assert_eq!(body["success"], false);
    let (status, body) = get(&format!("{url}/v3/webhook-subscriptions/nope")).await;
    assert_eq!((status, &body["error"]["status"]), (404, &Value::from(404)));
    let (status, body) = get(&format!("{url}/v3/no-such-endpoint")).await;
    assert_eq!((status, &body["error"]["code"]), (404, &Value::from(2001)));
}

#[tokio::test]
async fn phone_numbers_carry_no_always_null_fields() {
    let url = start().await;
    let (_, body) = get(&format!("{url}/v3/phone_numbers")).await;
    for n in body["phone_numbers"].as_array().unwrap() {
        let keys: Vec<&str> = n.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(
            !keys.contains(&"type") && !keys.contains(&"country_code"),
            "{keys:?}"
        );
        assert!(n["reputation"]["status"].is_string() && n["line_type"].is_string());
    }
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace('@', "%40")
}
