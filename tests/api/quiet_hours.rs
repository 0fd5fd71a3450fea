//! Quiet hours: a marketing batch holds the messages of recipients in their quiet window and
//! hands them over when it ends there, exactly once; a transactional batch is never held; a batch
//! that expires first records them as expired; the dry run counts who would be held now.
//!
//! The window is set a few seconds around the present moment in San Francisco's local time, so
//! that `+1415…` numbers (America/Los_Angeles by libphonenumber's map) are quiet and `+1212…`
//! (America/New_York, three hours on) are not.

use chrono::{Timelike, Utc};
use reqwest::Method;
use roster::send::log::LogSender;
use serde_json::{Value, json};
use std::sync::Arc;

use crate::batches::{logged, poll_until, wait_for};
use crate::helpers::{TestApp, quick_dispatch};
use crate::on_both_backends;

on_both_backends!(
    quiet_hours_hold_then_release_once,
    transactional_batches_and_expiry,
    quiet_hours_settings_are_checked,
);

const SAN_FRANCISCO: &str = "+14155550101";
const NEW_YORK: &str = "+12125550101";

/// A local time of day in Los Angeles, `offset` seconds from now, as `HH:MM:SS`.
fn los_angeles_in(offset: i64) -> String {
    let zone: chrono_tz::Tz = "America/Los_Angeles".parse().unwrap();
    let at = (Utc::now() + chrono::Duration::seconds(offset)).with_timezone(&zone);
    format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second())
}

/// Quiet in Los Angeles from a minute ago until `ends_in` seconds from now.
async fn quiet_now_in_los_angeles(app: &TestApp, ends_in: i64) {
    let response = app
        .send_json(
            Method::PUT,
            "/api/settings/sending",
            &json!({"quiet_hours": {"start": los_angeles_in(-60), "end": los_angeles_in(ends_in)}}),
        )
        .await;
    assert_eq!(response.status(), 200);
}

async fn create(app: &TestApp, body: Value) -> String {
    let response = app.send_json(Method::POST, "/api/batches", &body).await;
    assert_eq!(response.status(), 201, "create batch {body}");
    let batch: Value = response.json().await.unwrap();
    batch["id"].as_str().unwrap().to_owned()
}

/// `(phone, state, reason)` of each recipient, sorted.
async fn outcomes(app: &TestApp, id: &str) -> Vec<(String, String, String)> {
    let text = app
        .get_text(
            &format!("/api/batches/{id}/recipients"),
            "application/x-ndjson",
        )
        .await;
    let mut lines: Vec<_> = text
        .lines()
        .map(|line| {
            let outcome: Value = serde_json::from_str(line).unwrap();
            let field = |name: &str| outcome[name].as_str().unwrap_or("").to_owned();
            (field("phone"), field("state"), field("reason"))
        })
        .collect();
    lines.sort();
    lines
}

/// Polls a batch until `done` says so.
async fn wait_until(app: &TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    poll_until(app, &format!("/api/batches/{id}"), done).await
}

async fn quiet_hours_hold_then_release_once(app: TestApp) {
    quiet_now_in_los_angeles(&app, 8).await;
    let preview: Value = app
        .send_json(
            Method::POST,
            "/api/batches/preview",
            &json!({"to": [SAN_FRANCISCO, NEW_YORK], "body": "Sale on"}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(preview["held_now"], 1, "{preview}");
    assert_eq!(preview["recipient_count"], 2, "{preview}");

    let id = create(
        &app,
        json!({"to": [SAN_FRANCISCO, NEW_YORK], "body": "Sale on"}),
    )
    .await;
    let log = app.dir().join("quiet.jsonl");
    let running = app.start_dispatcher(Arc::new(LogSender::open(&log).unwrap()), quick_dispatch());
    let held = wait_until(&app, &id, |batch| batch["held_count"] == 1).await;
    assert_eq!(held["status"], "sending", "{held}");
    assert_eq!(held["sent_count"], 1, "{held}");
    assert!(held["held_until"].is_string(), "{held}");
    assert_eq!(
        outcomes(&app, &id).await,
        vec![
            (NEW_YORK.to_owned(), "sent".to_owned(), String::new()),
            (
                SAN_FRANCISCO.to_owned(),
                "held".to_owned(),
                "quiet_hours".to_owned()
            ),
        ]
    );
    let held_until = chrono::DateTime::parse_from_rfc3339(held["held_until"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);

    let sent = wait_for(&app, &id, &["sent", "failed"]).await;
    running.stop().await;
    assert_eq!(sent["status"], "sent", "{sent}");
    assert_eq!(sent["held_count"], 0, "{sent}");
    assert_eq!(sent["held_until"], Value::Null, "{sent}");
    assert_eq!(sent["sent_count"], 2, "{sent}");
    let logged = logged(&log);
    assert_eq!(logged.len(), 2, "{logged:?}");
    assert!(logged.values().all(|times| *times == 1), "{logged:?}");
    // The held message went when the window ended in Los Angeles, not before.
    let text = std::fs::read_to_string(&log).unwrap();
    let line: Value = text
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .find(|line| line["to"] == SAN_FRANCISCO)
        .unwrap();
    let logged_at = chrono::DateTime::parse_from_rfc3339(line["logged_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc);
    assert!(logged_at >= held_until, "{logged_at} before {held_until}");
    assert!(
        outcomes(&app, &id)
            .await
            .iter()
            .all(|(_, state, _)| state == "sent")
    );
}

async fn transactional_batches_and_expiry(app: TestApp) {
    quiet_now_in_los_angeles(&app, 600).await;
    let log = app.dir().join("quiet.jsonl");
    let running = app.start_dispatcher(Arc::new(LogSender::open(&log).unwrap()), quick_dispatch());

    // A one-time code goes whatever the hour.
    let code = create(
        &app,
        json!({"to": [SAN_FRANCISCO], "body": "Your code is 1234", "purpose": "transactional"}),
    )
    .await;
    let sent = wait_for(&app, &code, &["sent", "failed"]).await;
    assert_eq!(sent["status"], "sent", "{sent}");
    assert_eq!(sent["held_count"], 0, "{sent}");

    // A marketing batch that expires before the window ends: held, then expired.
    let expire_at = (Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let sale = create(
        &app,
        json!({"to": [SAN_FRANCISCO, NEW_YORK], "body": "Sale on", "expire_at": expire_at}),
    )
    .await;
    let held = wait_until(&app, &sale, |batch| batch["held_count"] == 1).await;
    assert_eq!(held["sent_count"], 1, "{held}");
    let failed = wait_for(&app, &sale, &["sent", "failed"]).await;
    running.stop().await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["error"].as_str().unwrap().starts_with("expired at"),
        "{failed}"
    );
    assert_eq!(
        outcomes(&app, &sale).await,
        vec![
            (NEW_YORK.to_owned(), "sent".to_owned(), String::new()),
            (
                SAN_FRANCISCO.to_owned(),
                "expired".to_owned(),
                String::new()
            ),
        ]
    );
    let logged = logged(&log);
    assert_eq!(
        logged.len(),
        2,
        "the code and New York's message: {logged:?}"
    );
}

async fn quiet_hours_settings_are_checked(app: TestApp) {
    let put = |body: Value| {
        let app = &app;
        async move {
            let response = app
                .send_json(Method::PUT, "/api/settings/sending", &body)
                .await;
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, settings) = put(json!({"quiet_hours": {
        "start": "21:00", "end": "08:00", "fallback_time_zone": "Europe/Paris"
    }}))
    .await;
    assert_eq!(status, 200, "{settings}");
    assert_eq!(
        settings,
        json!({"frequency_cap": null, "quiet_hours": {
            "start": "21:00", "end": "08:00", "fallback_time_zone": "Europe/Paris"
        }})
    );
    let stored: Value = app.get("/api/settings/sending").await.json().await.unwrap();
    assert_eq!(stored, settings);

    for (body, field) in [
        (
            json!({"quiet_hours": {"start": "9pm", "end": "08:00"}}),
            "quiet_hours.start",
        ),
        (
            json!({"quiet_hours": {"start": "21:00", "end": "24:00"}}),
            "quiet_hours.end",
        ),
        (
            json!({"quiet_hours": {"start": "21:00", "end": "21:00"}}),
            "quiet_hours.end",
        ),
        (
            json!({"quiet_hours": {"start": "21:00", "end": "08:00", "fallback_time_zone": "Mars/Olympus"}}),
            "quiet_hours.fallback_time_zone",
        ),
    ] {
        let (status, problem) = put(body.clone()).await;
        assert_eq!(status, 400, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    // Refused settings changed nothing; null turns quiet hours off.
    let stored: Value = app.get("/api/settings/sending").await.json().await.unwrap();
    assert_eq!(stored, settings);
    let (status, off) = put(json!({"quiet_hours": null})).await;
    assert_eq!(status, 200);
    assert_eq!(off, json!({"frequency_cap": null, "quiet_hours": null}));
}
