//! Batches: resolution at the moment of sending, exclusions and opt-outs, cancel and expiry, the
//! Sinch surface, and hand-over exactly once through a crash mid-chunk and a failing upstream.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use roster::domain::ids::{BatchId, PlanId};
use roster::send::log::{LogLine, LogSender};
use roster::send::{Bodies, Chunk, Sender};
use roster::store::Lease;
use serde_json::{Value, json};

use crate::helpers::{TestApp, quick_dispatch};
use crate::on_both_backends;

on_both_backends!(
    groups_resolve_when_the_batch_is_sent,
    batches_to_groups_alone_merge_their_numbers,
    deleted_groups_cancel_and_expiry,
    invalid_batches_name_the_field,
    sinch_batches,
    a_crash_mid_chunk_resends_nothing,
    an_upstream_that_fails_then_recovers_gets_everyone_once,
    delivery_reports_are_recorded_and_carriers_opt_people_out,
);

/// How many times each (batch, recipient) was logged. Lines cut short by a crash are skipped.
pub fn logged(path: &Path) -> BTreeMap<(String, String), usize> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        if let Ok(line) = serde_json::from_str::<LogLine>(line) {
            *counts.entry((line.batch_id, line.to)).or_insert(0) += 1;
        }
    }
    counts
}

/// Polls a batch until its status is one of `statuses` (30 s at most).
pub async fn wait_for(app: &TestApp, id: &str, statuses: &[&str]) -> Value {
    poll_until(app, &format!("/api/batches/{id}"), |batch| {
        statuses.contains(&batch["status"].as_str().unwrap_or(""))
    })
    .await
}

/// Polls a JSON resource until `done` says so (30 s at most).
pub async fn poll_until(app: &TestApp, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let now: Value = app.get(path).await.json().await.unwrap();
        if done(&now) {
            return now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{path} stuck: {now}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn recipients(app: &TestApp, id: &str) -> Vec<String> {
    let response = app
        .request(Method::GET, &format!("/api/batches/{id}/recipients"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let mut numbers: Vec<String> = text
        .lines()
        .map(|line| {
            let outcome: Value = serde_json::from_str(line).unwrap();
            outcome["phone"].as_str().unwrap().to_owned()
        })
        .collect();
    numbers.sort();
    numbers
}

async fn create_batch(app: &TestApp, body: Value) -> Value {
    let response = app.send_json(Method::POST, "/api/batches", &body).await;
    assert_eq!(response.status(), 201, "create batch {body}");
    response.json().await.unwrap()
}

fn in_seconds(seconds: f64) -> String {
    let at = chrono::Utc::now() + chrono::Duration::milliseconds((seconds * 1000.0) as i64);
    at.to_rfc3339()
}

fn number(n: u32) -> String {
    format!("+1415555{n:04}")
}

fn numbers(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(number).collect()
}

async fn groups_resolve_when_the_batch_is_sent(app: TestApp) {
    let child = app
        .create_group(json!({"name": "Child", "members": numbers(4..7)}))
        .await;
    let base = app
        .create_group(json!({
            "name": "Base",
            "members": numbers(1..6),
            "child_groups": [child["id"]],
        }))
        .await;
    let excluded = app
        .create_group(json!({"name": "Excluded", "members": [number(2)]}))
        .await;
    // 3 opts out by keyword.
    let stop = app
        .send_json(
            Method::POST,
            "/api/inbound",
            &json!({"type": "mo_text", "id": "mo-1", "from": number(3), "to": "12345", "body": "Stop."}),
        )
        .await;
    assert_eq!(stop.status(), 200);

    let batch = create_batch(
        &app,
        json!({
            "to": [base["id"], number(7), number(3)],
            "exclude": [excluded["id"], number(5)],
            "from": "12345",
            "body": "Sale ends tonight",
            "client_reference": "spring",
            "send_at": in_seconds(0.5),
        }),
    )
    .await;
    let id = batch["id"].as_str().unwrap();
    assert_eq!(batch["status"], "scheduled");
    assert_eq!(batch["recipient_count"], Value::Null);
    let early = app
        .request(Method::GET, &format!("/api/batches/{id}/recipients"))
        .send()
        .await
        .unwrap();
    assert_eq!(early.status(), 409);

    // Changed after scheduling: the batch sees the group as it is when sent.
    let added = app
        .send_json(
            Method::PATCH,
            &format!("/api/contactgroups/{}", base["id"].as_str().unwrap()),
            &json!({"add": [number(8)]}),
        )
        .await;
    assert_eq!(added.status(), 200);

    let log = app.dir().join("messages.jsonl");
    let running = app.start_dispatcher(Arc::new(LogSender::open(&log).unwrap()), quick_dispatch());
    let sent = wait_for(&app, id, &["sent", "failed"]).await;
    running.stop().await;
    assert_eq!(sent["status"], "sent", "{sent}");
    let expected = vec![number(1), number(4), number(6), number(7), number(8)];
    assert_eq!(sent["recipient_count"], expected.len());
    assert_eq!(sent["sent_count"], expected.len());
    assert!(sent["resolved_at"].as_str().unwrap() >= batch["send_at"].as_str().unwrap());
    assert_eq!(recipients(&app, id).await, expected);

    let logged = logged(&log);
    let mine: Vec<_> = logged
        .iter()
        .filter(|((batch, _), _)| batch == id)
        .collect();
    assert_eq!(mine.len(), expected.len());
    assert!(mine.iter().all(|(_, times)| **times == 1), "{mine:?}");
    let line: LogLine = serde_json::from_str(
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(line.body, "Sale ends tonight");
    assert_eq!(line.from.as_deref(), Some("12345"));
    assert_eq!(line.client_reference.as_deref(), Some("spring"));
    assert_eq!(line.plan_id, app.plan_id);

    let csv = app
        .get_text(&format!("/api/batches/{id}/recipients"), "text/csv")
        .await;
    let mut lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines.remove(0),
        "phone,state,reason,detail,parts,delivery_status,delivery_code,reported_at"
    );
    lines.sort_unstable();
    let rows: Vec<String> = expected
        .iter()
        .map(|phone| format!("{phone},sent,,,1,,,"))
        .collect();
    assert_eq!(lines, rows);
    let listed: Value = app
        .get("/api/batches?status=sent&client_reference=spring")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["batches"][0]["id"], id);
}

/// Sends due batches with the log sender until each of `ids` is sent; returns their recipients.
async fn send_all(app: &TestApp, ids: &[&str]) -> Vec<Vec<String>> {
    let log = app.dir().join("messages.jsonl");
    let running = app.start_dispatcher(Arc::new(LogSender::open(&log).unwrap()), quick_dispatch());
    let mut all = Vec::new();
    for id in ids {
        let sent = wait_for(app, id, &["sent", "failed"]).await;
        assert_eq!(sent["status"], "sent", "{sent}");
        let numbers = recipients(app, id).await;
        assert_eq!(sent["recipient_count"], numbers.len());
        all.push(numbers);
    }
    running.stop().await;
    all
}

/// A batch to groups only (no loose numbers) is resolved from the groups' numbers alone: nested
/// children, excluded groups, opt-outs, a number changed after the batch was created, and more
/// groups than one merge takes.
async fn batches_to_groups_alone_merge_their_numbers(app: TestApp) {
    let first = app
        .create_group(json!({"name": "First", "members": numbers(1..6)}))
        .await;
    let grandchild = app
        .create_group(json!({"name": "Grandchild", "members": numbers(5..9)}))
        .await;
    let child = app
        .create_group(json!({
            "name": "Child", "members": numbers(4..6), "child_groups": [grandchild["id"]],
        }))
        .await;
    let parent = app
        .create_group(json!({
            "name": "Parent", "members": numbers(10..13), "child_groups": [child["id"]],
        }))
        .await;
    let excluded = app
        .create_group(json!({"name": "Excluded", "members": [number(2), number(11)]}))
        .await;
    let stop = app
        .send_json(
            Method::POST,
            "/api/inbound",
            &json!({"type": "mo_text", "id": "mo-9", "from": number(7), "to": "12345", "body": "STOP"}),
        )
        .await;
    assert_eq!(stop.status(), 200);
    let parent_id = parent["id"].as_str().unwrap();
    let batch = create_batch(
        &app,
        json!({"to": [first["id"], parent_id], "exclude": [excluded["id"]], "body": "Hi"}),
    )
    .await;
    // Number 4 moves to 40 after the batch was created: it is sent to at its new number.
    let page: Value = app
        .get(&format!(
            "/api/contactgroups/{}/members",
            first["id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    let moved = page["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|member| member["phone"] == number(4))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let changed = app
        .send_json(
            Method::PATCH,
            &format!("/api/contacts/{moved}"),
            &json!({"phone": number(40)}),
        )
        .await;
    assert_eq!(changed.status(), 200);
    let mut parent_numbers = numbers(5..9);
    parent_numbers.extend([number(10), number(11), number(12), number(40)]);
    parent_numbers.sort();
    assert_eq!(app.member_numbers(parent_id).await, parent_numbers);

    // More groups than one merge takes (64): 70 groups of two numbers each, overlapping.
    let mut many = Vec::new();
    for index in 0..70 {
        let group = app
            .create_group(json!({
                "name": format!("Many {index}"),
                "members": [number(100 + index), number(101 + index)],
            }))
            .await;
        many.push(group["id"].clone());
    }
    let wide = create_batch(&app, json!({"to": many, "body": "Hi"})).await;
    let umbrella = app
        .create_group(json!({"name": "Umbrella", "child_groups": many}))
        .await;

    let sent = send_all(
        &app,
        &[batch["id"].as_str().unwrap(), wide["id"].as_str().unwrap()],
    )
    .await;
    let mut expected = vec![number(1), number(3), number(5), number(6), number(8)];
    expected.extend([number(10), number(12), number(40)]);
    expected.sort();
    assert_eq!(sent[0], expected);
    assert_eq!(sent[1], numbers(100..171));
    assert_eq!(
        app.member_numbers(umbrella["id"].as_str().unwrap()).await,
        numbers(100..171)
    );
}

async fn deleted_groups_cancel_and_expiry(app: TestApp) {
    let group = app
        .create_group(json!({"name": "Gone", "members": numbers(1..4)}))
        .await;
    let group_id = group["id"].as_str().unwrap();
    let to_deleted = create_batch(&app, json!({"to": [group_id], "body": "hi"})).await;
    let expiring = create_batch(
        &app,
        json!({"to": [number(9)], "body": "quick", "expire_at": in_seconds(0.3)}),
    )
    .await;
    let later = create_batch(
        &app,
        json!({"to": [number(9)], "body": "later", "send_at": in_seconds(3600.0)}),
    )
    .await;
    let later_id = later["id"].as_str().unwrap();
    assert_eq!(
        app.delete(&format!("/api/contactgroups/{group_id}"))
            .await
            .status(),
        204
    );

    let canceled = app.delete(&format!("/api/batches/{later_id}")).await;
    assert_eq!(canceled.status(), 200);
    let canceled: Value = canceled.json().await.unwrap();
    assert_eq!(canceled["status"], "canceled");
    assert!(canceled["completed_at"].is_string());
    let again = app.delete(&format!("/api/batches/{later_id}")).await;
    assert_eq!(again.status(), 409);
    let problem: Value = again.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("canceled"));

    tokio::time::sleep(Duration::from_millis(400)).await;
    let log = app.dir().join("messages.jsonl");
    let running = app.start_dispatcher(Arc::new(LogSender::open(&log).unwrap()), quick_dispatch());
    let empty = wait_for(
        &app,
        to_deleted["id"].as_str().unwrap(),
        &["sent", "failed"],
    )
    .await;
    assert_eq!(empty["status"], "sent");
    assert_eq!(empty["recipient_count"], 0);
    let expired = wait_for(&app, expiring["id"].as_str().unwrap(), &["sent", "failed"]).await;
    assert_eq!(expired["status"], "failed");
    assert!(
        expired["error"].as_str().unwrap().contains("expired"),
        "{expired}"
    );
    running.stop().await;
    let still: Value = app
        .get(&format!("/api/batches/{later_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(still["status"], "canceled");
    assert!(logged(&log).is_empty());
}

async fn invalid_batches_name_the_field(app: TestApp) {
    let cases = [
        (json!({"to": [], "body": "x"}), "to"),
        (
            json!({"to": ["+14155550100", "not a number"], "body": "x"}),
            "to[1]",
        ),
        (json!({"to": ["+14155550100"], "body": ""}), "body"),
        (
            json!({"to": ["+14155550100"], "body": "x".repeat(2001)}),
            "body",
        ),
        (
            json!({"to": ["+14155550100"], "body": "x", "send_at": "tomorrow"}),
            "send_at",
        ),
        (
            json!({"to": ["+14155550100"], "body": "x", "send_at": in_seconds(60.0), "expire_at": in_seconds(30.0)}),
            "expire_at",
        ),
        (
            json!({"to": ["+14155550100"], "body": "x", "from": "a\u{1}b"}),
            "from",
        ),
        (
            json!({"to": ["+14155550100"], "exclude": ["nope"], "body": "x"}),
            "exclude[0]",
        ),
        (
            json!({"to": [BatchId::generate().as_str()], "body": "x"}),
            "to[0]",
        ),
        (json!({"to": "+14155550100", "body": "x"}), "to"),
    ];
    for (body, field) in cases {
        let response = app.send_json(Method::POST, "/api/batches", &body).await;
        assert_eq!(response.status(), 400, "{body}");
        let problem: Value = response.json().await.unwrap();
        let fields: Vec<&str> = problem["errors"]
            .as_array()
            .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
            .unwrap_or_default();
        assert!(
            fields.contains(&field) || problem["detail"].as_str().unwrap_or("").contains(field),
            "{body} → {problem}"
        );
    }
    let too_many: Vec<String> = (0..100_001).map(|n| format!("+1415{n:07}")).collect();
    let response = app
        .send_json(
            Method::POST,
            "/api/batches",
            &json!({"to": too_many, "body": "x"}),
        )
        .await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("100000"));

    assert_eq!(app.get("/api/batches/not-an-id").await.status(), 404);
    let missing = BatchId::generate();
    let response = app.get(&format!("/api/batches/{missing}")).await;
    assert_eq!(response.status(), 404);
    let problem: Value = response.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("batch"));
    assert_eq!(app.get("/api/batches?status=done").await.status(), 400);
    assert_eq!(app.get("/api/batches?page_size=0").await.status(), 400);
}

async fn sinch_batches(app: TestApp) {
    let group = app
        .create_group(json!({"name": "Sinch", "members": numbers(1..3)}))
        .await;
    let path = format!("/xms/v1/{}/batches", app.plan_id);
    let response = app
        .send_json(
            Method::POST,
            &path,
            &json!({
                "to": [group["id"], "+14155550199"],
                "from": "12345",
                "body": "Hello group",
                "type": "mt_text",
                "delivery_report": "none",
                "client_reference": "sdk-1",
                "send_at": in_seconds(3600.0),
            }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let batch: Value = response.json().await.unwrap();
    assert_eq!(batch["type"], "mt_text");
    assert_eq!(batch["canceled"], false);
    assert_eq!(batch["to"], json!([group["id"], "+14155550199"]));
    let id = batch["id"].as_str().unwrap();

    let fetched: Value = app.get(&format!("{path}/{id}")).await.json().await.unwrap();
    assert_eq!(fetched["body"], "Hello group");
    let listed: Value = app
        .get(&format!("{path}?client_reference=sdk-1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["batches"][0]["id"], id);
    let none: Value = app
        .get(&format!("{path}?client_reference=other"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["count"], 0);

    let binary = app
        .send_json(
            Method::POST,
            &path,
            &json!({"to": ["+14155550199"], "body": "AA==", "type": "mt_binary"}),
        )
        .await;
    assert_eq!(binary.status(), 400);
    let error: Value = binary.json().await.unwrap();
    assert_eq!(error["code"], "syntax_constraint_violation");
    let bad_json = app
        .request(Method::POST, &path)
        .body("{\"to\": 5}")
        .send()
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 400);
    let error: Value = bad_json.json().await.unwrap();
    assert_eq!(error["code"], "syntax_invalid_json");
    let too_many: Vec<String> = (0..1001).map(|n| format!("+1415{n:07}")).collect();
    let response = app
        .send_json(Method::POST, &path, &json!({"to": too_many, "body": "x"}))
        .await;
    assert_eq!(response.status(), 400);

    let canceled = app.delete(&format!("{path}/{id}")).await;
    assert_eq!(canceled.status(), 200);
    let canceled: Value = canceled.json().await.unwrap();
    assert_eq!(canceled["canceled"], true);
    let again = app.delete(&format!("{path}/{id}")).await;
    assert_eq!(again.status(), 200);
    let missing = app.get(&format!("{path}/{}", BatchId::generate())).await;
    assert_eq!(missing.status(), 404);
}

/// An instance claimed a batch, recorded chunk 0 as handed over, logged part of it (the last
/// line cut short) and died. The next dispatcher sends only what is missing.
async fn a_crash_mid_chunk_resends_nothing(app: TestApp) {
    let group = app
        .create_group(json!({"name": "Crash", "members": numbers(1..21)}))
        .await;
    // Personalized: a resumed chunk must send each of the rest its own text.
    let batch = create_batch(&app, json!({"to": [group["id"]], "body": "once ${phone}"})).await;
    let id = BatchId::parse(batch["id"].as_str().unwrap()).unwrap();
    let plan = PlanId::parse(&app.plan_id).unwrap();
    let log = app.dir().join("messages.jsonl");

    let crashed = Lease {
        owner: "crashed-instance".into(),
        millis: 60_000,
    };
    let claimed = app.store.claim_batch(&crashed).await.unwrap().unwrap();
    assert_eq!(claimed.id, id);
    let resolved = app
        .store
        .resolve_batch(&crashed, &plan, &id, 7)
        .await
        .unwrap();
    assert_eq!(resolved.recipient_count, Some(20));
    let first = app
        .store
        .chunk_recipients(&plan, &id, 0)
        .await
        .unwrap()
        .phones;
    let texts: Vec<String> = first.iter().map(|to| format!("once {to}")).collect();
    let sender = LogSender::open(&log).unwrap();
    let chunk = Chunk {
        batch: &resolved,
        index: 0,
        recipients: &first,
        bodies: Bodies::Each(&texts),
    };
    let located = sender.locate(&chunk).await.unwrap();
    app.store
        .begin_chunk(&crashed, &plan, &id, 0, &located)
        .await
        .unwrap();
    let part = Chunk {
        batch: &resolved,
        index: 0,
        recipients: &first[..3],
        bodies: Bodies::Each(&texts[..3]),
    };
    sender.deliver(&part).await.unwrap();
    drop(sender);
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        file.write_all(b"{\"plan_id\":\"cut sho").unwrap();
    }
    app.store.release_leases("crashed-instance").await.unwrap();

    let running = app.start_dispatcher(Arc::new(LogSender::open(&log).unwrap()), quick_dispatch());
    let sent = wait_for(&app, id.as_str(), &["sent", "failed"]).await;
    running.stop().await;
    assert_eq!(sent["status"], "sent", "{sent}");
    assert_eq!(sent["sent_count"], 20);
    let logged = logged(&log);
    assert_eq!(logged.len(), 20, "{logged:?}");
    assert!(logged.values().all(|times| *times == 1), "{logged:?}");
    let lines = std::fs::read_to_string(&log).unwrap();
    let wrong: Vec<LogLine> = lines
        .lines()
        .filter_map(|line| serde_json::from_str::<LogLine>(line).ok())
        .filter(|line| line.body != format!("once {}", line.to))
        .collect();
    assert!(wrong.is_empty(), "each recipient its own text");
}

/// What the fake upstream received, and how it is to misbehave.
#[derive(Default)]
struct Upstream {
    /// Requests answered 503 before any is accepted.
    fail_first: usize,
    /// The request (counted from 1) that is accepted but answered too late for the client.
    slow_request: usize,
    requests: usize,
    /// Accepted batches: client reference → recipients.
    accepted: Vec<(String, Vec<String>)>,
    /// The text each recipient of an accepted batch got, Sinch's way: the body with its
    /// `${name}` placeholders filled from `parameters`.
    texts: Vec<(String, String)>,
    /// What each accepted batch asked for: `delivery_report` and `callback_url`.
    callbacks: Vec<(Value, Value)>,
}

/// What a Sinch upstream sends `to` for a batch `body`.
fn sinch_text(body: &Value, to: &str) -> String {
    let mut text = body["body"].as_str().unwrap().to_owned();
    if let Some(parameters) = body["parameters"].as_object() {
        for (name, values) in parameters {
            let value = values[to]
                .as_str()
                .or(values["default"].as_str())
                .unwrap_or_default();
            text = text.replace(&format!("${{{name}}}"), value);
        }
    }
    text
}

async fn fake_upstream(state: Arc<Mutex<Upstream>>) -> String {
    use axum::extract::{Query, State};
    use axum::routing::post;
    async fn send(
        State(state): State<Arc<Mutex<Upstream>>>,
        headers: axum::http::HeaderMap,
        axum::Json(body): axum::Json<Value>,
    ) -> (axum::http::StatusCode, axum::Json<Value>) {
        assert_eq!(
            headers.get("authorization").unwrap(),
            "Bearer upstream-token"
        );
        let slow = {
            let mut upstream = state.lock().unwrap();
            upstream.requests += 1;
            if upstream.requests <= upstream.fail_first {
                return (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(json!({"code": "unavailable", "text": "try later"})),
                );
            }
            let reference = body["client_reference"].as_str().unwrap().to_owned();
            let to: Vec<String> = body["to"]
                .as_array()
                .unwrap()
                .iter()
                .map(|n| n.as_str().unwrap().to_owned())
                .collect();
            for number in &to {
                upstream
                    .texts
                    .push((number.clone(), sinch_text(&body, number)));
            }
            upstream.accepted.push((reference, to));
            upstream.callbacks.push((
                body["delivery_report"].clone(),
                body["callback_url"].clone(),
            ));
            upstream.requests == upstream.slow_request
        };
        if slow {
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
        (
            axum::http::StatusCode::CREATED,
            axum::Json(json!({"id": "up"})),
        )
    }
    async fn list(
        State(state): State<Arc<Mutex<Upstream>>>,
        Query(query): Query<BTreeMap<String, String>>,
    ) -> axum::Json<Value> {
        assert!(query.contains_key("start_date"));
        let upstream = state.lock().unwrap();
        let reference = query.get("client_reference").cloned().unwrap_or_default();
        let count = upstream
            .accepted
            .iter()
            .filter(|(accepted, _)| *accepted == reference)
            .count();
        axum::Json(json!({"count": count, "page": 0, "page_size": count, "batches": []}))
    }
    let app = axum::Router::new()
        .route("/xms/v1/upstream-plan/batches", post(send).get(list))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    address
}

async fn an_upstream_that_fails_then_recovers_gets_everyone_once(app: TestApp) {
    let upstream = Arc::new(Mutex::new(Upstream {
        fail_first: 2,
        slow_request: 4,
        ..Upstream::default()
    }));
    let address = fake_upstream(upstream.clone()).await;
    let group = app
        .create_group(json!({"name": "Upstream", "members": numbers(1..46)}))
        .await;
    // Personalized, so that each number's own text has to survive the retries.
    let batch = create_batch(
        &app,
        json!({
            "to": [group["id"]],
            "body": "hello ${who}",
            "parameters": {"who": {number(1): "first", "default": "you"}},
            "from": "Acme",
        }),
    )
    .await;
    let id = batch["id"].as_str().unwrap();
    let sender = roster::send::http::HttpSender::new(
        &address,
        "upstream-plan",
        "upstream-token",
        Duration::from_millis(700),
        None,
    )
    .unwrap();
    let mut config = quick_dispatch();
    config.chunk_size = 10;
    let running = app.start_dispatcher(Arc::new(sender), config);
    let sent = wait_for(&app, id, &["sent", "failed"]).await;
    running.stop().await;
    assert_eq!(sent["status"], "sent", "{sent}");
    assert_eq!(sent["recipient_count"], 45);
    assert_eq!(sent["sent_count"], 45);

    let upstream = upstream.lock().unwrap();
    let mut received: Vec<String> = upstream
        .accepted
        .iter()
        .flat_map(|(_, to)| to.clone())
        .collect();
    received.sort();
    assert_eq!(received, numbers(1..46), "every recipient exactly once");
    let mut texts = upstream.texts.clone();
    texts.sort();
    texts.dedup();
    assert_eq!(texts.len(), 45, "one text per recipient: {texts:?}");
    assert_eq!(texts[0], (number(1), "hello first".to_owned()));
    assert!(
        texts[1..].iter().all(|(_, text)| text == "hello you"),
        "{texts:?}"
    );
    let mut references: Vec<&str> = upstream.accepted.iter().map(|(r, _)| r.as_str()).collect();
    references.dedup();
    assert_eq!(references.len(), 5, "one upstream batch per chunk");
    assert!(
        references
            .iter()
            .all(|r| r.starts_with(&format!("roster:{id}:")))
    );
}

/// Posts delivery reports to the app as the upstream would; returns the answer.
async fn report(app: &TestApp, body: Value) -> Value {
    let response = app
        .send_json(Method::POST, "/api/delivery-reports", &body)
        .await;
    let status = response.status();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}: {answer}");
    answer
}

async fn delivery_reports_are_recorded_and_carriers_opt_people_out(app: TestApp) {
    let upstream = Arc::new(Mutex::new(Upstream::default()));
    let address = fake_upstream(upstream.clone()).await;
    let group = app
        .create_group(json!({"name": "Reported", "members": numbers(1..6)}))
        .await;
    let stopper = app
        .send_json(Method::POST, "/api/contacts", &json!({"phone": number(9)}))
        .await;
    assert_eq!(stopper.status(), 201);
    let batch = create_batch(&app, json!({"to": [group["id"], number(9)], "body": "hi"})).await;
    let id = batch["id"].as_str().unwrap().to_owned();
    let callback = format!("{}/api/delivery-reports", app.address);
    let sender = roster::send::http::HttpSender::new(
        &address,
        "upstream-plan",
        "upstream-token",
        Duration::from_secs(5),
        Some(&callback),
    )
    .unwrap();
    let mut config = quick_dispatch();
    config.chunk_size = 3;
    let running = app.start_dispatcher(Arc::new(sender), config);
    let sent = wait_for(&app, &id, &["sent", "failed"]).await;
    running.stop().await;
    assert_eq!(sent["status"], "sent", "{sent}");
    assert!(sent.get("delivery_reports").is_none(), "{sent}");

    // The upstream was asked for a final report per recipient, at Roster's callback.
    let accepted = {
        let upstream = upstream.lock().unwrap();
        assert!(
            upstream
                .callbacks
                .iter()
                .all(|(kind, url)| kind == "per_recipient_final" && url == &callback),
            "{:?}",
            upstream.callbacks
        );
        upstream.accepted.clone()
    };
    // The upstream reports each recipient the way Sinch does: its own batch id, the number
    // without its `+`, the client reference Roster gave the chunk. Number 9's carrier says
    // it opted out (Twilio's 21610).
    let mut reports = Vec::new();
    for (reference, to) in &accepted {
        for phone in to {
            let (status, code) = if *phone == number(9) {
                ("Failed", 21610)
            } else {
                ("Delivered", 0)
            };
            reports.push(json!({
                "type": "recipient_delivery_report_sms", "batch_id": "upstream-batch-1",
                "recipient": phone.trim_start_matches('+'), "code": code, "status": status,
                "at": "2026-12-04T10:00:00.000Z", "client_reference": reference,
            }));
        }
    }
    let answer = report(&app, Value::Array(reports)).await;
    assert_eq!(
        answer,
        json!({"recorded": 6, "unknown_batch": 0, "not_recipient": 0, "opted_out": 1})
    );

    // A report of the message in transit, arriving late, does not undo the final one; a later
    // final one replaces it. Reports of numbers and batches that are not these are counted.
    let late = report(
        &app,
        json!({"type": "recipient_delivery_report_sms", "batch_id": id, "recipient": number(1),
               "code": 401, "status": "Dispatched", "at": "2026-12-04T10:05:00Z"}),
    )
    .await;
    assert_eq!(late["recorded"], 0, "{late}");
    let batch_report = report(
        &app,
        json!({"type": "delivery_report_sms", "batch_id": id, "statuses": [
            {"code": 402, "status": "Expired", "count": 1, "recipients": [number(2)]},
            {"code": 0, "status": "Delivered", "count": 1, "recipients": ["14155559999"]},
        ]}),
    )
    .await;
    assert_eq!(batch_report["recorded"], 1, "{batch_report}");
    assert_eq!(batch_report["not_recipient"], 1, "{batch_report}");
    let foreign = report(
        &app,
        json!({"type": "recipient_delivery_report_sms", "batch_id": "not-ours",
               "recipient": "14155550001", "code": 0, "status": "Delivered"}),
    )
    .await;
    assert_eq!(foreign["unknown_batch"], 1, "{foreign}");

    // Counted on the batch, and on each recipient's line.
    let counted = app.get(&format!("/api/batches/{id}")).await;
    let counted: Value = counted.json().await.unwrap();
    assert_eq!(
        counted["delivery_reports"],
        json!({"Delivered": 4, "Expired": 1, "Failed": 1}),
        "{counted}"
    );
    let lines = app
        .get_text(
            &format!("/api/batches/{id}/recipients"),
            "application/x-ndjson",
        )
        .await;
    let lines: Vec<Value> = lines
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let line_of = |phone: &str| lines.iter().find(|line| line["phone"] == phone).unwrap();
    assert_eq!(line_of(&number(1))["delivery"]["status"], "Delivered");
    assert_eq!(line_of(&number(2))["delivery"]["status"], "Expired");
    assert_eq!(line_of(&number(2))["delivery"]["code"], 402);
    assert_eq!(line_of(&number(9))["delivery"]["code"], 21610);
    let csv = app
        .get_text(&format!("/api/batches/{id}/recipients"), "text/csv")
        .await;
    assert!(
        csv.starts_with(
            "phone,state,reason,detail,parts,delivery_status,delivery_code,reported_at\n"
        ),
        "{csv}"
    );
    assert!(
        csv.contains(&format!("{},sent,,,1,Failed,21610,", number(9))),
        "{csv}"
    );

    // Sinch's delivery report routes read the same.
    let sinch = format!("/xms/v1/{}/batches/{id}/delivery_report", app.plan_id);
    let summary: Value = app.get(&sinch).await.json().await.unwrap();
    assert_eq!(summary["type"], "delivery_report_sms", "{summary}");
    assert_eq!(summary["total_message_count"], 6, "{summary}");
    assert_eq!(
        summary["statuses"],
        json!([
            {"code": 0, "status": "Delivered", "count": 4},
            {"code": 402, "status": "Expired", "count": 1},
            {"code": 21610, "status": "Failed", "count": 1},
        ]),
        "{summary}"
    );
    let full: Value = app
        .get(&format!(
            "{sinch}?type=full&status=Failed,Expired&code=21610"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        full["statuses"],
        json!([{"code": 21610, "status": "Failed", "count": 1, "recipients": [number(9)]}]),
        "{full}"
    );
    let one: Value = app
        .get(&format!("{sinch}/{}", number(2).trim_start_matches('+')))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["type"], "recipient_delivery_report_sms", "{one}");
    assert_eq!(one["status"], "Expired", "{one}");
    assert_eq!(one["code"], 402, "{one}");
    assert_eq!(one["recipient"], number(2), "{one}");
    let none = app.get(&format!("{sinch}/14155559999")).await;
    assert_eq!(none.status(), 404);
    let bad = app.get(&format!("{sinch}?type=partial")).await;
    assert_eq!(bad.status(), 400);

    // The carrier's opt-out is the contact's, with the report as its evidence.
    let contacts: Value = app
        .get(&format!(
            "/api/contacts?phone={}",
            number(9).trim_start_matches('+')
        ))
        .await
        .json()
        .await
        .unwrap();
    let contact = &contacts["contacts"][0];
    assert_eq!(contact["opted_out"], true, "{contacts}");
    assert!(
        contact["opted_out_reason"]
            .as_str()
            .unwrap()
            .contains("21610"),
        "{contact}"
    );
    let history: Value = app
        .get(&format!(
            "/api/contacts/{}/consent",
            contact["id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history["events"][0]["source"], "carrier", "{history}");
    assert_eq!(
        history["events"][0]["message_id"], "upstream-batch-1",
        "{history}"
    );

    // The person's export holds it all: the contact, its consent, the batch with its report,
    // and what the number sent.
    let inbound = app
        .send_json(
            Method::POST,
            "/api/inbound",
            &json!({"type": "mo_text", "id": "mo-9", "from": number(9), "to": "12345",
                    "body": "who is this?"}),
        )
        .await;
    assert_eq!(inbound.status(), 200);
    let export: Value = app
        .get(&format!(
            "/api/contacts/{}/export",
            contact["id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(export["contact"]["phone"], number(9), "{export}");
    assert_eq!(export["consent"][0]["source"], "carrier", "{export}");
    assert_eq!(
        export["messages_sent"].as_array().unwrap().len(),
        1,
        "{export}"
    );
    assert_eq!(export["messages_sent"][0]["batch_id"], id, "{export}");
    assert_eq!(export["messages_sent"][0]["body"], "hi", "{export}");
    assert_eq!(
        export["messages_sent"][0]["delivery"]["code"], 21610,
        "{export}"
    );
    assert_eq!(
        export["messages_received"][0]["body"], "who is this?",
        "{export}"
    );
    let nobody = app
        .get("/api/contacts/01ARZ3NDEKTSV4RRFFQ69G5FAV/export")
        .await;
    assert_eq!(nobody.status(), 404);

    // Malformed reports name their field.
    for (body, field) in [
        (
            json!({"type": "recipient_delivery_report_sms", "batch_id": id}),
            "recipient",
        ),
        (
            json!([{"type": "recipient_delivery_report_sms", "batch_id": id,
                    "recipient": "+1 415", "status": "Delivered"}]),
            "[0].recipient",
        ),
        (
            json!({"type": "recipient_delivery_report_sms", "batch_id": id,
                   "recipient": "14155550001", "status": "Lost"}),
            "status",
        ),
        (json!({"type": "mystery", "batch_id": id}), "type"),
    ] {
        let refused = app
            .send_json(Method::POST, "/api/delivery-reports", &body)
            .await;
        assert_eq!(refused.status(), 400, "{body}");
        let problem: Value = refused.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
}
