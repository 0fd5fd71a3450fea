//! Recurring batches: each occurrence of the rule becomes its own batch, made once even with two
//! dispatchers racing for it and sent like any other; a series can be paused, resumed and
//! canceled, and refuses what it cannot read.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use roster::send::log::LogSender;
use serde_json::{Value, json};

use crate::batches::{logged, poll_until};
use crate::helpers::{TestApp, quick_dispatch};
use crate::on_both_backends;

on_both_backends!(
    three_occurrences_three_batches,
    pause_resume_and_cancel,
    series_are_checked,
);

async fn create(app: &TestApp, body: Value) -> Value {
    let response = app
        .send_json(Method::POST, "/api/batch-series", &body)
        .await;
    assert_eq!(response.status(), 201, "create series {body}");
    response.json().await.unwrap()
}

async fn series(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/batch-series/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

async fn batches_of(app: &TestApp, id: &str) -> Vec<Value> {
    let list: Value = app
        .get(&format!("/api/batches?series_id={id}"))
        .await
        .json()
        .await
        .unwrap();
    let mut batches = list["batches"].as_array().unwrap().clone();
    batches.sort_by_key(|batch| batch["occurrence"].as_i64());
    batches
}

/// Polls a series until `done` says so.
async fn wait_until(app: &TestApp, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    poll_until(app, &format!("/api/batch-series/{id}"), done).await
}

async fn three_occurrences_three_batches(app: TestApp) {
    let group = app
        .create_group(json!({"name": "Daily digest", "members": ["+14155550101", "+14155550102"]}))
        .await;
    let group_id = group["id"].as_str().unwrap();
    let created = create(
        &app,
        json!({
            "to": [group_id],
            "body": "Tick ${first_name}",
            "parameters": {"first_name": {"default": "friend"}},
            "recurrence": {"rule": "RRULE:FREQ=SECONDLY;INTERVAL=2;COUNT=3", "time_zone": "Europe/Paris"},
        }),
    )
    .await;
    assert_eq!(created["status"], "active", "{created}");
    assert_eq!(created["rule"], "FREQ=SECONDLY;INTERVAL=2;COUNT=3");
    assert_eq!(created["time_zone"], "Europe/Paris");
    assert_eq!(created["occurrences"], 0);
    assert!(created["next_at"].is_string(), "{created}");
    let id = created["id"].as_str().unwrap();

    // Two dispatchers race for every occurrence, as two instances would.
    let log = app.dir().join("series.jsonl");
    let sender = Arc::new(LogSender::open(&log).unwrap());
    let first = app.start_dispatcher(sender.clone(), quick_dispatch());
    let second = app.start_dispatcher(sender, quick_dispatch());
    let finished = wait_until(&app, id, |now| now["status"] == "finished").await;
    assert_eq!(finished["occurrences"], 3, "{finished}");
    assert_eq!(finished["next_at"], Value::Null, "{finished}");
    let started = Instant::now();
    let batches = loop {
        let batches = batches_of(&app, id).await;
        if batches.iter().all(|batch| batch["status"] == "sent") {
            break batches;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{batches:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    first.stop().await;
    second.stop().await;

    assert_eq!(batches.len(), 3, "one batch per occurrence: {batches:?}");
    let send_times: Vec<i64> = batches
        .iter()
        .enumerate()
        .map(|(index, batch)| {
            assert_eq!(batch["occurrence"], index as i64 + 1, "{batch}");
            assert_eq!(batch["series_id"], id, "{batch}");
            assert_eq!(batch["recipient_count"], 2, "{batch}");
            chrono::DateTime::parse_from_rfc3339(batch["send_at"].as_str().unwrap())
                .unwrap()
                .timestamp()
        })
        .collect();
    assert_eq!(send_times[1] - send_times[0], 2, "{send_times:?}");
    assert_eq!(send_times[2] - send_times[1], 2, "{send_times:?}");
    let logged = logged(&log);
    assert_eq!(logged.len(), 6, "two numbers, three batches: {logged:?}");
    assert!(logged.values().all(|times| *times == 1), "{logged:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("Tick friend"), "{text}");
}

async fn pause_resume_and_cancel(app: TestApp) {
    let created = create(
        &app,
        json!({
            "to": ["+14155550101"],
            "body": "Every second",
            "recurrence": {"rule": "FREQ=SECONDLY"},
        }),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let log = app.dir().join("series.jsonl");
    let running = app.start_dispatcher(Arc::new(LogSender::open(&log).unwrap()), quick_dispatch());
    wait_until(&app, id, |now| now["occurrences"].as_i64() >= Some(2)).await;

    let post = |action: &'static str| {
        let app = &app;
        async move {
            let response = app
                .send_json(
                    Method::POST,
                    &format!("/api/batch-series/{id}/{action}"),
                    &json!({}),
                )
                .await;
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, paused) = post("pause").await;
    assert_eq!(status, 200, "{paused}");
    assert_eq!(paused["status"], "paused");
    let (status, problem) = post("pause").await;
    assert_eq!(status, 409, "{problem}");
    // While paused, nothing is made.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let still = series(&app, id).await;
    assert_eq!(still["occurrences"], paused["occurrences"], "{still}");

    let (status, resumed) = post("resume").await;
    assert_eq!(status, 200, "{resumed}");
    assert_eq!(resumed["status"], "active");
    let resumed_next = chrono::DateTime::parse_from_rfc3339(resumed["next_at"].as_str().unwrap())
        .unwrap()
        .timestamp_millis();
    assert!(
        resumed_next >= chrono::Utc::now().timestamp_millis() - 1000,
        "the occurrences missed while paused are skipped: {resumed}"
    );
    let before = resumed["occurrences"].as_i64().unwrap();
    wait_until(&app, id, |now| {
        now["occurrences"].as_i64() >= Some(before + 1)
    })
    .await;

    let (status, canceled) = post("cancel").await;
    assert_eq!(status, 200, "{canceled}");
    assert_eq!(canceled["status"], "canceled");
    assert_eq!(canceled["next_at"], Value::Null);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = series(&app, id).await;
    assert_eq!(after["occurrences"], canceled["occurrences"], "{after}");
    let (status, problem) = post("resume").await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["detail"], "the series is canceled", "{problem}");
    running.stop().await;

    let made = batches_of(&app, id).await;
    assert_eq!(
        made.len() as i64,
        after["occurrences"].as_i64().unwrap(),
        "{made:?}"
    );
    let list: Value = app.get("/api/batch-series").await.json().await.unwrap();
    assert_eq!(list["count"], 1, "{list}");
    assert_eq!(list["series"][0]["id"], id, "{list}");
}

async fn series_are_checked(app: TestApp) {
    for (body, field) in [
        (
            json!({"to": ["+14155550101"], "body": "x", "recurrence": {"rule": "FREQ=FORTNIGHTLY"}}),
            "recurrence.rule",
        ),
        (
            json!({"to": ["+14155550101"], "body": "x", "recurrence": {"rule": "FREQ=DAILY;COUNT=0"}}),
            "recurrence.rule",
        ),
        (
            json!({"to": ["+14155550101"], "body": "x",
                   "recurrence": {"rule": "FREQ=WEEKLY;BYDAY=TU\u{56B}U"}}),
            "recurrence.rule",
        ),
        (
            json!({"to": ["+14155550101"], "body": "x",
                   "recurrence": {"rule": "FREQ=DAILY;UNTIL=20200101T000000Z"}}),
            "recurrence.rule",
        ),
        (
            json!({"to": ["+14155550101"], "body": "x",
                   "recurrence": {"rule": "FREQ=DAILY", "time_zone": "Mars/Olympus"}}),
            "recurrence.time_zone",
        ),
        (
            json!({"to": ["+14155550101"], "body": "x",
                   "recurrence": {"rule": "FREQ=DAILY", "ends_at": "tomorrow"}}),
            "recurrence.ends_at",
        ),
        (
            json!({"to": ["01JD4Q3T5V8Z9X2W1Y0A7B6C5D"], "body": "x",
                   "recurrence": {"rule": "FREQ=DAILY"}}),
            "to[0]",
        ),
        (
            json!({"to": [], "body": "x", "recurrence": {"rule": "FREQ=DAILY"}}),
            "to",
        ),
    ] {
        let response = app
            .send_json(Method::POST, "/api/batch-series", &body)
            .await;
        let status = response.status().as_u16();
        let problem: Value = response.json().await.unwrap();
        assert_eq!(status, 400, "{body}: {problem}");
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }
    let missing = app
        .get("/api/batch-series/01JD4Q3T5V8Z9X2W1Y0A7B6C5D")
        .await;
    assert_eq!(missing.status(), 404);
    let list: Value = app.get("/api/batch-series").await.json().await.unwrap();
    assert_eq!(list["count"], 0, "nothing was stored: {list}");
}
