//! Scoped tokens: every route is held to the scope the OpenAPI document says it needs (the
//! routes are read from /openapi.json, so a new route is covered without editing this test);
//! tokens are made, listed and revoked by admins; a web session can do no more than its token.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    every_route_needs_its_documented_scope,
    tokens_are_made_listed_and_revoked,
);

const SCOPES: [&str; 4] = ["read", "write", "send", "admin"];

/// Makes a token with `scopes` through the API (with the test's own full token).
async fn token_with(app: &TestApp, scopes: &[&str]) -> Value {
    let response = app
        .send_json(
            Method::POST,
            "/api/tokens",
            &json!({"name": format!("only {}", scopes.join(" and ")), "scopes": scopes}),
        )
        .await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

/// Whether a token of `held` may do what `needed` guards, as documented: admin may do all,
/// write and send may read.
fn allowed(held: &str, needed: &str) -> bool {
    held == needed || held == "admin" || (needed == "read" && matches!(held, "write" | "send"))
}

async fn every_route_needs_its_documented_scope(app: TestApp) {
    let document: Value = app.get("/openapi.json").await.json().await.unwrap();
    let mut tokens = Vec::new();
    for scope in SCOPES {
        let made = token_with(&app, &[scope]).await;
        tokens.push((scope, made["token"].as_str().unwrap().to_owned()));
    }
    let mut checked = std::collections::BTreeMap::<String, usize>::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(security) = operation["security"].as_array() else {
                continue;
            };
            if security.is_empty() {
                continue;
            }
            let needed: Vec<&str> = security[0]["bearer"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} names no scheme"))
                .iter()
                .map(|scope| scope.as_str().unwrap())
                .collect();
            assert_eq!(needed.len(), 1, "{method} {path} names {needed:?}");
            let needed = needed[0];
            *checked.entry(needed.to_owned()).or_default() += 1;
            let concrete = path
                .replace("{service_plan_id}", &app.plan_id)
                .replace("{id}", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
                .replace("{group_id}", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
                .replace("{batch_id}", "01ARZ3NDEKTSV4RRFFQ69G5FAV");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for (held, token) in &tokens {
                let response = app
                    .client
                    .request(method.clone(), format!("{}{concrete}", app.address))
                    .bearer_auth(token)
                    .json(&json!({}))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let body = response.text().await.unwrap_or_default();
                if allowed(held, needed) {
                    assert_ne!(status, 403, "{method} {path} with {held}: {body}");
                } else {
                    assert_eq!(status, 403, "{method} {path} with {held}: {body}");
                    assert!(
                        body.contains(&format!("scope {needed}")),
                        "{method} {path} with {held} does not name {needed}: {body}"
                    );
                }
            }
        }
    }
    // Every scope guards something, and the rule is the one documented.
    assert_eq!(
        checked.keys().map(String::as_str).collect::<Vec<_>>(),
        ["admin", "read", "send", "write"],
        "{checked:?}"
    );
    for (method, path, scope) in [
        ("get", "/api/contacts", "read"),
        ("post", "/api/contacts", "write"),
        ("post", "/api/batches", "send"),
        ("post", "/xms/v1/{service_plan_id}/batches", "send"),
        ("put", "/api/settings/sending", "admin"),
        ("get", "/api/tokens", "admin"),
    ] {
        assert_eq!(
            document["paths"][path][method]["security"][0]["bearer"],
            json!([scope]),
            "{method} {path}"
        );
    }
}

/// The token with this id as `GET /api/tokens` lists it.
async fn token_listed(app: &TestApp, id: &str) -> Value {
    let list: Value = app.get("/api/tokens").await.json().await.unwrap();
    list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|listed| listed["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} is not listed: {list}"))
}

async fn tokens_are_made_listed_and_revoked(app: TestApp) {
    let made = token_with(&app, &["read", "send"]).await;
    let token = made["token"].as_str().unwrap().to_owned();
    let id = made["id"].as_str().unwrap().to_owned();
    assert!(token.starts_with("rst_"));
    assert_eq!(made["scopes"], json!(["read", "send"]));
    assert_eq!(made["name"], "only read and send");

    let listed = token_listed(&app, &id).await;
    assert_eq!(listed["scopes"], json!(["read", "send"]));
    assert_eq!(listed["revoked_at"], Value::Null);
    assert!(
        listed.get("token").is_none(),
        "a listed token shows itself: {listed}"
    );
    // The test's own token, made without scopes, holds them all.
    let list: Value = app.get("/api/tokens").await.json().await.unwrap();
    assert!(
        list["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|listed| listed["scopes"] == json!(SCOPES.iter().collect::<Vec<_>>()))
    );

    // Not an admin: the tokens are not its business.
    let as_reader = app
        .client
        .get(format!("{}/api/tokens", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(as_reader.status(), 403);

    for (body, field) in [
        (json!({"scopes": ["read", "everything"]}), "scopes[1]"),
        (json!({"scopes": []}), "scopes"),
        (json!({"name": "", "scopes": ["read"]}), "name"),
    ] {
        let refused = app.send_json(Method::POST, "/api/tokens", &body).await;
        assert_eq!(refused.status(), 400, "{body}");
        let problem: Value = refused.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }

    let revoked = app
        .request(Method::DELETE, &format!("/api/tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let refused = app
        .client
        .get(format!("{}/api/contacts", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let again = app
        .request(Method::DELETE, &format!("/api/tokens/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 404);
    let revoked = token_listed(&app, &id).await;
    assert!(revoked["revoked_at"].is_string());
}
