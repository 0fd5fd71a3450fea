//! Personalized batches, SMS parts and encodings, each recipient's outcome, and the dry run:
//! placeholders filled from the contact at send time and from Sinch's `parameters`, recipients
//! without a value left out with their reason, `smart` and `ucs2` encodings, and a preview that
//! counts without sending or recording anything.

use std::sync::Arc;

use reqwest::Method;
use roster::send::log::{LogLine, LogSender};
use serde_json::{Value, json};

use crate::batches::wait_for;
use crate::helpers::{TestApp, quick_dispatch};
use crate::on_both_backends;

on_both_backends!(
    placeholders_are_filled_at_send_time,
    encodings_and_parts_are_counted,
    a_preview_counts_and_changes_nothing,
    sinch_batches_take_parameters,
    invalid_parameters_and_encodings_name_the_field,
    groups_alone_carry_each_contacts_details,
);

fn number(n: u32) -> String {
    format!("+1415555{n:04}")
}

async fn create_contact(app: &TestApp, body: Value) -> Value {
    let response = app.send_json(Method::POST, "/api/contacts", &body).await;
    assert_eq!(response.status(), 201, "create contact {body}");
    response.json().await.unwrap()
}

/// The fields a 400 names, in its errors or its detail.
fn names_field(problem: &Value, field: &str) -> bool {
    let listed = problem["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|error| error["field"] == field);
    listed || problem["detail"].as_str().unwrap_or("").contains(field)
}

/// Sends `body` as a batch through the log sender; returns the batch when it ended and the
/// logged lines of this batch by recipient.
async fn send(app: &TestApp, body: Value) -> (Value, Vec<LogLine>) {
    let response = app.send_json(Method::POST, "/api/batches", &body).await;
    assert_eq!(response.status(), 201, "create batch {body}");
    let batch: Value = response.json().await.unwrap();
    let id = batch["id"].as_str().unwrap().to_owned();
    let log = app.dir().join(format!("{id}.jsonl"));
    let running = app.start_dispatcher(Arc::new(LogSender::open(&log).unwrap()), quick_dispatch());
    let done = wait_for(app, &id, &["sent", "failed"]).await;
    running.stop().await;
    let mut lines: Vec<LogLine> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    lines.sort_by(|a, b| a.to.cmp(&b.to));
    (done, lines)
}

/// The recipients route's objects, by phone.
async fn outcomes(app: &TestApp, id: &str) -> Vec<Value> {
    let text = app
        .get_text(
            &format!("/api/batches/{id}/recipients"),
            "application/x-ndjson",
        )
        .await;
    let mut outcomes: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    outcomes.sort_by(|a, b| a["phone"].as_str().cmp(&b["phone"].as_str()));
    outcomes
}

async fn placeholders_are_filled_at_send_time(app: TestApp) {
    let ann = create_contact(
        &app,
        json!({"phone": number(1), "first_name": "Ann", "fields": {"city": "Leeds", "points": 120}}),
    )
    .await;
    create_contact(&app, json!({"phone": number(2), "first_name": "Bob"})).await;
    // No first name, and no default for it: left out.
    create_contact(
        &app,
        json!({"phone": number(3), "fields": {"city": "York"}}),
    )
    .await;
    let group = app
        .create_group(json!({"name": "Members", "members": [number(1), number(2), number(3)]}))
        .await;
    let in_a_moment = (chrono::Utc::now() + chrono::Duration::milliseconds(400)).to_rfc3339();
    let body = json!({
        "to": [group["id"], number(9)],
        "body": "Hi ${first_name}, ${code} for ${fields.city}: ${fields.points} points (${phone})",
        "parameters": {
            "code": {number(2): "B-22", "default": "SAVE10"},
            "first_name": {number(9): "Zed"},
            "fields.city": {"default": "your town"},
            "fields.points": {"default": "0"},
        },
        "send_at": in_a_moment,
    });
    let response = app.send_json(Method::POST, "/api/batches", &body).await;
    assert_eq!(response.status(), 201);
    let batch: Value = response.json().await.unwrap();
    assert_eq!(batch["parameters"]["code"][number(2)], "B-22");
    assert_eq!(batch["encoding"], "auto");
    assert_eq!(batch["parts"], Value::Null);
    // Renamed after the batch was created: the message uses the name at send time.
    let contact = ann["id"].as_str().unwrap();
    let renamed = app
        .send_json(
            Method::PATCH,
            &format!("/api/contacts/{contact}"),
            &json!({"first_name": "Anne"}),
        )
        .await;
    assert_eq!(renamed.status(), 200);

    let id = batch["id"].as_str().unwrap().to_owned();
    let log = app.dir().join("personal.jsonl");
    let running = app.start_dispatcher(Arc::new(LogSender::open(&log).unwrap()), quick_dispatch());
    let done = wait_for(&app, &id, &["sent", "failed"]).await;
    running.stop().await;
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(done["recipient_count"], 3);
    assert_eq!(done["skipped_count"], 1);
    assert_eq!(done["encoding_used"], "gsm7");
    assert_eq!(done["parts"], json!({"total": 3, "min": 1, "max": 1}));

    let mut lines: Vec<LogLine> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    lines.sort_by(|a, b| a.to.cmp(&b.to));
    let bodies: Vec<(&str, &str)> = lines
        .iter()
        .map(|line| (line.to.as_str(), line.body.as_str()))
        .collect();
    let (one, two, nine) = (number(1), number(2), number(9));
    assert_eq!(
        bodies,
        vec![
            (
                one.as_str(),
                "Hi Anne, SAVE10 for Leeds: 120 points (+14155550001)"
            ),
            (
                two.as_str(),
                "Hi Bob, B-22 for your town: 0 points (+14155550002)"
            ),
            (
                nine.as_str(),
                "Hi Zed, SAVE10 for your town: 0 points (+14155550009)"
            ),
        ]
    );

    let outcomes = outcomes(&app, &id).await;
    assert_eq!(
        outcomes,
        vec![
            json!({"phone": number(1), "state": "sent", "parts": 1}),
            json!({"phone": number(2), "state": "sent", "parts": 1}),
            json!({"phone": number(3), "state": "skipped", "reason": "missing_parameter", "detail": "first_name"}),
            json!({"phone": number(9), "state": "sent", "parts": 1}),
        ]
    );
    let csv = app
        .get_text(&format!("/api/batches/{id}/recipients"), "text/csv")
        .await;
    let mut rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows.remove(0),
        "phone,state,reason,detail,parts,delivery_status,delivery_code,reported_at"
    );
    rows.sort_unstable();
    assert_eq!(
        rows,
        vec![
            "+14155550001,sent,,,1,,,",
            "+14155550002,sent,,,1,,,",
            "+14155550003,skipped,missing_parameter,first_name,,,,",
            "+14155550009,sent,,,1,,,",
        ]
    );
}

async fn encodings_and_parts_are_counted(app: TestApp) {
    let typographic = "Don’t miss it — “today” only…";
    let (auto, lines) = send(
        &app,
        json!({"to": [number(1), number(2)], "body": typographic}),
    )
    .await;
    assert_eq!(auto["encoding_used"], "ucs2");
    assert_eq!(auto["parts"], json!({"total": 2, "min": 1, "max": 1}));
    assert!(lines.iter().all(|line| line.body == typographic));

    let (smart, lines) = send(
        &app,
        json!({"to": [number(1)], "body": typographic, "encoding": "smart"}),
    )
    .await;
    assert_eq!(smart["encoding"], "smart");
    assert_eq!(smart["encoding_used"], "gsm7");
    assert_eq!(lines[0].body, "Don't miss it - \"today\" only...");

    // A letter outside GSM-7 stands in the way: smart changes nothing and sends UCS-2.
    let (kept, lines) = send(
        &app,
        json!({"to": [number(1)], "body": "ça “va”", "encoding": "smart"}),
    )
    .await;
    assert_eq!(kept["encoding_used"], "ucs2");
    assert_eq!(lines[0].body, "ça “va”");

    let (forced, _) = send(
        &app,
        json!({"to": [number(1)], "body": "plain", "encoding": "ucs2"}),
    )
    .await;
    assert_eq!(forced["encoding_used"], "ucs2");

    // 161 GSM-7 characters are two parts; an extension character counts twice.
    let (long, _) = send(&app, json!({"to": [number(1)], "body": "a".repeat(161)})).await;
    assert_eq!(long["parts"], json!({"total": 2, "min": 2, "max": 2}));
    let (euros, _) = send(&app, json!({"to": [number(1)], "body": "€".repeat(80)})).await;
    assert_eq!(euros["encoding_used"], "gsm7");
    assert_eq!(euros["parts"]["total"], 1);
    let (more, _) = send(&app, json!({"to": [number(1)], "body": "€".repeat(81)})).await;
    assert_eq!(more["parts"]["total"], 2);

    // Personalized messages may differ in encoding and parts.
    let (mixed, _) = send(
        &app,
        json!({
            "to": [number(1), number(2)],
            "body": "Hi ${name}",
            "parameters": {"name": {number(1): "Zoë", number(2): "x".repeat(200)}},
        }),
    )
    .await;
    assert_eq!(mixed["encoding_used"], "mixed");
    assert_eq!(mixed["parts"], json!({"total": 3, "min": 1, "max": 2}));
    let outcomes = outcomes(&app, mixed["id"].as_str().unwrap()).await;
    assert_eq!(outcomes[0]["parts"], 1);
    assert_eq!(outcomes[1]["parts"], 2);
}

async fn a_preview_counts_and_changes_nothing(app: TestApp) {
    create_contact(&app, json!({"phone": number(1), "first_name": "Ann"})).await;
    create_contact(&app, json!({"phone": number(2), "first_name": "Bob"})).await;
    create_contact(&app, json!({"phone": number(3)})).await;
    create_contact(
        &app,
        json!({"phone": number(4), "first_name": "Dee", "opted_out": true}),
    )
    .await;
    create_contact(&app, json!({"phone": number(5), "first_name": "Eve"})).await;
    let group = app
        .create_group(json!({"name": "All", "members": (1..=5).map(number).collect::<Vec<_>>()}))
        .await;
    let body = json!({
        "to": [group["id"], number(6)],
        "exclude": [number(5)],
        "body": "Hi ${first_name} “friend”",
        "encoding": "smart",
    });
    let response = app
        .send_json(Method::POST, "/api/batches/preview", &body)
        .await;
    assert_eq!(response.status(), 200);
    let preview: Value = response.json().await.unwrap();
    assert_eq!(preview["recipient_count"], 2, "{preview}");
    assert_eq!(
        preview["left_out"],
        json!({"excluded": 1, "opted_out": 1, "missing_parameter": 2, "frequency_cap": 0})
    );
    assert_eq!(preview["encoding"], "gsm7");
    assert_eq!(preview["parts"], json!({"total": 2, "min": 1, "max": 1}));
    let mut samples: Vec<(String, String)> = preview["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|sample| {
            assert_eq!(sample["encoding"], "gsm7");
            assert_eq!(sample["parts"], 1);
            (
                sample["to"].as_str().unwrap().to_owned(),
                sample["body"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    samples.sort();
    assert_eq!(
        samples,
        vec![
            (number(1), "Hi Ann \"friend\"".to_owned()),
            (number(2), "Hi Bob \"friend\"".to_owned()),
        ]
    );
    // Nothing was created.
    let list: Value = app.get("/api/batches").await.json().await.unwrap();
    assert_eq!(list["count"], 0);

    // The same checks as creating one.
    let unknown = app
        .send_json(
            Method::POST,
            "/api/batches/preview",
            &json!({"to": ["01JD4Q3T5V8Z9X2W1Y0A7B6C5D"], "body": "x"}),
        )
        .await;
    assert_eq!(unknown.status(), 400);
    let problem: Value = unknown.json().await.unwrap();
    assert!(names_field(&problem, "to[0]"), "{problem}");
}

async fn sinch_batches_take_parameters(app: TestApp) {
    create_contact(&app, json!({"phone": number(1), "first_name": "Ann"})).await;
    let path = format!("/xms/v1/{}/batches", app.plan_id);
    let response = app
        .send_json(
            Method::POST,
            &path,
            &json!({
                "to": [number(1), number(2)],
                "from": "12345",
                "body": "Hi ${first_name}, use ${code}",
                "parameters": {
                    "first_name": {"default": "there"},
                    "code": {number(2): "TWO", "default": "ANY"},
                },
            }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let batch: Value = response.json().await.unwrap();
    assert_eq!(batch["parameters"]["code"]["default"], "ANY");
    let id = batch["id"].as_str().unwrap();
    let log = app.dir().join("sinch.jsonl");
    let running = app.start_dispatcher(Arc::new(LogSender::open(&log).unwrap()), quick_dispatch());
    wait_for(&app, id, &["sent"]).await;
    running.stop().await;
    let mut bodies: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<LogLine>(line).unwrap().body)
        .collect();
    bodies.sort();
    assert_eq!(bodies, vec!["Hi Ann, use ANY", "Hi there, use TWO"]);
}

async fn invalid_parameters_and_encodings_name_the_field(app: TestApp) {
    let cases = [
        (
            json!({"to": [number(1)], "body": "x", "parameters": []}),
            "parameters",
        ),
        (
            json!({"to": [number(1)], "body": "x", "parameters": {"bad name": {"default": "x"}}}),
            "parameters.bad name",
        ),
        (
            json!({"to": [number(1)], "body": "x", "parameters": {"n": {"12": "x"}}}),
            "parameters.n.12",
        ),
        (
            json!({"to": [number(1)], "body": "x", "parameters": {"n": {"default": 5}}}),
            "parameters.n.default",
        ),
        (
            json!({"to": [number(1)], "body": "x", "encoding": "utf8"}),
            "encoding",
        ),
    ];
    for (body, field) in cases {
        for path in ["/api/batches", "/api/batches/preview"] {
            let response = app.send_json(Method::POST, path, &body).await;
            assert_eq!(response.status(), 400, "{path} {body}");
            let problem: Value = response.json().await.unwrap();
            assert!(names_field(&problem, field), "{path} {problem}");
        }
    }
}

/// A batch to groups alone (no loose numbers) is read each backend's fastest way, the merge of
/// group ranges on PostgreSQL: it carries each contact's details as the general query does,
/// across overlapping groups, an excluded group and an opted-out member.
async fn groups_alone_carry_each_contacts_details(app: TestApp) {
    create_contact(
        &app,
        json!({"phone": number(1), "first_name": "Ann", "fields": {"city": "Leeds"}}),
    )
    .await;
    create_contact(&app, json!({"phone": number(2), "first_name": "Bob"})).await;
    create_contact(
        &app,
        json!({"phone": number(3), "first_name": "Cy", "opted_out": true}),
    )
    .await;
    create_contact(&app, json!({"phone": number(4), "first_name": "Di"})).await;
    create_contact(&app, json!({"phone": number(5)})).await;
    let a = app
        .create_group(json!({"name": "A", "members": [number(1), number(2), number(3)]}))
        .await;
    let b = app
        .create_group(json!({"name": "B", "members": [number(2), number(4), number(5)]}))
        .await;
    let left_out = app
        .create_group(json!({"name": "Left out", "members": [number(4)]}))
        .await;
    let (done, lines) = send(
        &app,
        json!({
            "to": [a["id"], b["id"]],
            "exclude": [left_out["id"]],
            "body": "Hi ${first_name} from ${fields.city}",
            "parameters": {"first_name": {"default": "there"}, "fields.city": {"default": "home"}},
        }),
    )
    .await;
    assert_eq!(done["status"], "sent", "{done}");
    assert_eq!(done["recipient_count"], 3, "{done}");
    let sent: Vec<(String, String)> = lines.into_iter().map(|line| (line.to, line.body)).collect();
    assert_eq!(
        sent,
        vec![
            (number(1), "Hi Ann from Leeds".to_owned()),
            (number(2), "Hi Bob from home".to_owned()),
            (number(5), "Hi there from home".to_owned()),
        ]
    );
}
