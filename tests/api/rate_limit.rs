//! The per-token rate limit: a flood gets 429 with Retry-After, in each surface's own error
//! format, and other tokens are not affected.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::{Backend, TestApp, spawn_app_with};

async fn flood(app: &TestApp, path: &str, token: &str) -> Vec<reqwest::Response> {
    let mut responses = Vec::new();
    for _ in 0..12 {
        responses.push(
            app.client
                .request(Method::GET, format!("{}{path}", app.address))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        );
    }
    responses
}

async fn a_flood_gets_429_with_retry_after(backend: Backend) {
    // Two requests a second, bursts of four.
    let Some(app) = spawn_app_with(backend, 2).await else {
        return;
    };
    let responses = flood(&app, "/api/contactgroups", &app.token).await;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        4,
        "{statuses:?}"
    );
    let limited = responses
        .into_iter()
        .find(|r| r.status() == 429)
        .expect("a 429");
    assert_eq!(limited.headers()["retry-after"], "1");
    assert_eq!(
        limited.headers()["content-type"],
        "application/problem+json"
    );
    // Another plan's token has a bucket of its own.
    let (plan, token) = app.create_plan(None).await;
    let theirs = flood(&app, &format!("/xms/v1/{plan}/groups"), &token).await;
    assert_eq!(theirs[0].status(), 200);
    let sinch_limited = theirs
        .into_iter()
        .find(|r| r.status() == 429)
        .expect("a 429 on the Sinch surface");
    assert_eq!(sinch_limited.headers()["retry-after"], "1");
    let body: Value = sinch_limited.json().await.unwrap();
    assert_eq!(body["code"], "too_many_requests");
    // Waiting as told lets requests through again.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let after = app.get("/api/contactgroups").await;
    assert_eq!(after.status(), 200);
}

#[tokio::test]
async fn sqlite_a_flood_gets_429_with_retry_after() {
    a_flood_gets_429_with_retry_after(Backend::Sqlite).await;
}

#[tokio::test]
async fn postgres_a_flood_gets_429_with_retry_after() {
    a_flood_gets_429_with_retry_after(Backend::Postgres).await;
}
