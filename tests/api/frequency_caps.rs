//! The plan's frequency cap: marketing batches leave out the numbers that had their share in
//! the period, transactional batches are neither held to it nor counted by it, and the dry run
//! counts who the cap would leave out.

use std::sync::Arc;

use reqwest::Method;
use roster::send::log::LogSender;
use serde_json::{Value, json};

use crate::batches::wait_for;
use crate::helpers::{TestApp, quick_dispatch};
use crate::on_both_backends;

on_both_backends!(caps_hold_across_batches, sending_settings_are_checked);

fn number(n: u32) -> String {
    format!("+1415555{n:04}")
}

/// Sends a batch through the log sender and returns it once it ended.
async fn send(app: &TestApp, body: Value) -> Value {
    let response = app.send_json(Method::POST, "/api/batches", &body).await;
    assert_eq!(response.status(), 201, "create batch {body}");
    let batch: Value = response.json().await.unwrap();
    let id = batch["id"].as_str().unwrap().to_owned();
    let log = app.dir().join("capped.jsonl");
    let running = app.start_dispatcher(Arc::new(LogSender::open(&log).unwrap()), quick_dispatch());
    let done = wait_for(app, &id, &["sent", "failed"]).await;
    running.stop().await;
    assert_eq!(done["status"], "sent", "{done}");
    done
}

/// The numbers of a batch in each state, sorted.
async fn states(app: &TestApp, id: &str) -> Vec<(String, String)> {
    let text = app
        .get_text(
            &format!("/api/batches/{id}/recipients"),
            "application/x-ndjson",
        )
        .await;
    let mut states: Vec<(String, String)> = text
        .lines()
        .map(|line| {
            let outcome: Value = serde_json::from_str(line).unwrap();
            let state = match outcome["reason"].as_str() {
                Some(reason) => format!("skipped: {reason}"),
                None => outcome["state"].as_str().unwrap().to_owned(),
            };
            (outcome["phone"].as_str().unwrap().to_owned(), state)
        })
        .collect();
    states.sort();
    states
}

async fn caps_hold_across_batches(app: TestApp) {
    let settings = app
        .send_json(
            Method::PUT,
            "/api/settings/sending",
            &json!({"frequency_cap": {"messages": 2, "days": 7}}),
        )
        .await;
    assert_eq!(settings.status(), 200);
    assert_eq!(
        settings.json::<Value>().await.unwrap(),
        json!({"frequency_cap": {"messages": 2, "days": 7}, "quiet_hours": null})
    );
    let group = app
        .create_group(json!({"name": "Fans", "members": [number(1), number(2), number(3)]}))
        .await;

    // 1 and 2 get two marketing messages; a transactional one in between is not counted.
    let first = send(&app, json!({"to": [number(1), number(2)], "body": "one"})).await;
    assert_eq!(first["purpose"], "marketing");
    send(
        &app,
        json!({"to": [number(1)], "body": "your code", "purpose": "transactional"}),
    )
    .await;
    send(&app, json!({"to": [number(1), number(2)], "body": "two"})).await;

    // The dry run says who the cap leaves out.
    let preview: Value = app
        .send_json(
            Method::POST,
            "/api/batches/preview",
            &json!({"to": [group["id"]], "body": "three"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(preview["recipient_count"], 1, "{preview}");
    assert_eq!(preview["left_out"]["frequency_cap"], 2, "{preview}");

    let third = send(&app, json!({"to": [group["id"]], "body": "three"})).await;
    assert_eq!(third["recipient_count"], 1);
    assert_eq!(third["skipped_count"], 2);
    assert_eq!(
        states(&app, third["id"].as_str().unwrap()).await,
        vec![
            (number(1), "skipped: frequency_cap".to_owned()),
            (number(2), "skipped: frequency_cap".to_owned()),
            (number(3), "sent".to_owned()),
        ]
    );

    // Transactional batches are never capped.
    let code = send(
        &app,
        json!({"to": [number(1)], "body": "code 1234", "purpose": "transactional"}),
    )
    .await;
    assert_eq!(code["recipient_count"], 1);

    // A higher cap lets them through again; no cap at all, too.
    let raised = app
        .send_json(
            Method::PUT,
            "/api/settings/sending",
            &json!({"frequency_cap": {"messages": 3, "days": 7}}),
        )
        .await;
    assert_eq!(raised.status(), 200);
    let fourth = send(&app, json!({"to": [group["id"]], "body": "four"})).await;
    // 1 and 2 had two, 3 had one: each may have a third.
    assert_eq!(fourth["recipient_count"], 3, "{fourth}");
    let off = app
        .send_json(Method::PUT, "/api/settings/sending", &json!({}))
        .await;
    assert_eq!(
        off.json::<Value>().await.unwrap(),
        json!({"frequency_cap": null, "quiet_hours": null})
    );
    let fifth = send(&app, json!({"to": [group["id"]], "body": "five"})).await;
    assert_eq!(fifth["recipient_count"], 3);
    assert_eq!(fifth["skipped_count"], 0);
}

async fn sending_settings_are_checked(app: TestApp) {
    for (body, field) in [
        (
            json!({"frequency_cap": {"messages": 0, "days": 7}}),
            "frequency_cap.messages",
        ),
        (
            json!({"frequency_cap": {"messages": 3, "days": 400}}),
            "frequency_cap.days",
        ),
    ] {
        let response = app
            .send_json(Method::PUT, "/api/settings/sending", &body)
            .await;
        assert_eq!(response.status(), 400, "{body}");
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let unset: Value = app.get("/api/settings/sending").await.json().await.unwrap();
    assert_eq!(unset, json!({"frequency_cap": null, "quiet_hours": null}));
    let bad = app
        .send_json(
            Method::POST,
            "/api/batches",
            &json!({"to": [number(1)], "body": "x", "purpose": "spam"}),
        )
        .await;
    assert_eq!(bad.status(), 400);
}
