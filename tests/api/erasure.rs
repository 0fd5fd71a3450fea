//! Erasure: a contact erased takes with it every trace of its number — its consent rows (an
//! anonymous one stays), its place among a batch's recorded recipients, its delivery reports and
//! inbound messages — and afterwards its number is refused by the API, skipped by group adds and
//! imports, and ignored by inbound messages, until its owner opts in by keyword.

use std::sync::Arc;

use reqwest::Method;
use roster::send::log::LogSender;
use serde_json::{Value, json};

use crate::batches::wait_for;
use crate::helpers::{TestApp, quick_dispatch};
use crate::imports::import_file;
use crate::on_both_backends;

on_both_backends!(an_erased_number_stays_gone_until_its_owner_returns);

const NUMBER: &str = "+14155550300";
const OTHER: &str = "+14155550301";

/// Nine more members, erased together at the end (more than the few looked for one by one).
fn crowd() -> Vec<String> {
    (0..9).map(|n| format!("+1415555031{n}")).collect()
}

async fn inbound(app: &TestApp, id: &str, body: &str) -> Value {
    let response = app
        .send_json(
            Method::POST,
            "/api/inbound",
            &json!({"type": "mo_text", "id": id, "from": NUMBER, "to": "12345", "body": body}),
        )
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn an_erased_number_stays_gone_until_its_owner_returns(app: TestApp) {
    let group = app
        .create_group(json!({"name": "Erasable", "members": [NUMBER, OTHER]}))
        .await;
    app.send_json(
        Method::POST,
        &format!(
            "/api/contactgroups/{}/members",
            group["id"].as_str().unwrap()
        ),
        &json!({"numbers": crowd()}),
    )
    .await;
    let group_id = group["id"].as_str().unwrap().to_owned();
    let contacts: Value = app
        .get(&format!("/api/contacts?phone={}", &NUMBER[1..]))
        .await
        .json()
        .await
        .unwrap();
    let contact_id = contacts["contacts"][0]["id"].as_str().unwrap().to_owned();
    // A batch reached it, the provider reported on it, and it wrote to us.
    let created = app
        .send_json(
            Method::POST,
            "/api/batches",
            &json!({"to": [group_id, NUMBER], "body": "hello"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let batch: Value = created.json().await.unwrap();
    let batch_id = batch["id"].as_str().unwrap().to_owned();
    let log = app.dir().join("messages.jsonl");
    let running = app.start_dispatcher(Arc::new(LogSender::open(&log).unwrap()), quick_dispatch());
    wait_for(&app, &batch_id, &["sent"]).await;
    running.stop().await;
    let reported = app
        .send_json(
            Method::POST,
            "/api/delivery-reports",
            &json!({"type": "recipient_delivery_report_sms", "batch_id": batch_id,
                    "recipient": &NUMBER[1..], "code": 0, "status": "Delivered"}),
        )
        .await;
    assert_eq!(reported.status(), 200);
    assert_eq!(inbound(&app, "mo-1", "hello there").await["action"], "none");

    let erased = app
        .delete(&format!("/api/contacts/{contact_id}?erase=true"))
        .await;
    assert_eq!(erased.status(), 204);
    assert_eq!(
        app.get(&format!("/api/contacts/{contact_id}"))
            .await
            .status(),
        404
    );

    // The batch keeps its count and the number's place, not the number.
    let lines = app
        .get_text(
            &format!("/api/batches/{batch_id}/recipients"),
            "application/x-ndjson",
        )
        .await;
    assert!(!lines.contains(NUMBER), "{lines}");
    assert!(lines.contains(OTHER), "{lines}");
    assert!(lines.contains("\"phone\":\"erased\""), "{lines}");
    let batch: Value = app
        .get(&format!("/api/batches/{batch_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(batch["recipient_count"], 11, "{batch}");
    assert!(batch.get("delivery_reports").is_none(), "{batch}");
    assert!(!batch["to"].to_string().contains(NUMBER), "{batch}");
    let report = app
        .get(&format!(
            "/xms/v1/{}/batches/{batch_id}/delivery_report/{}",
            app.plan_id,
            &NUMBER[1..]
        ))
        .await;
    assert_eq!(report.status(), 404);
    let group: Value = app
        .get(&format!("/api/contactgroups/{group_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(group["size"], 10, "{group}");

    // Refused by the API, naming the field; skipped by a group add and by an import.
    let refused = app
        .send_json(Method::POST, "/api/contacts", &json!({"phone": NUMBER}))
        .await;
    assert_eq!(refused.status(), 409);
    let problem: Value = refused.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("phone: ") && detail.contains("erased"),
        "{problem}"
    );
    let added = app
        .send_json(
            Method::PATCH,
            &format!("/api/contactgroups/{group_id}"),
            &json!({"add": [NUMBER]}),
        )
        .await;
    assert_eq!(added.status(), 200);
    let added: Value = added.json().await.unwrap();
    assert_eq!(added["size"], 10, "{added}");
    let csv = format!("phone,first_name\n{NUMBER},Back\n+14155550302,New\n");
    let import = import_file(&app, "again.csv", csv.into_bytes(), json!({})).await;
    assert_eq!(import["report"]["created"], 1, "{import}");
    assert_eq!(import["report"]["invalid"], 1, "{import}");
    let errors = app
        .get_text(
            &format!("/api/imports/{}/errors.csv", import["id"].as_str().unwrap()),
            "text/csv",
        )
        .await;
    assert!(errors.contains("erased"), "{errors}");
    // The row after the erased one is written with its own values.
    let new: Value = app
        .get("/api/contacts?phone=14155550302")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(new["contacts"][0]["first_name"], "New", "{new}");

    // Its messages are not acted on, nor kept; only its own opt-in brings it back.
    let ignored = inbound(&app, "mo-2", "JOIN").await;
    assert_eq!(ignored["action"], "erased", "{ignored}");
    let none: Value = app
        .get(&format!("/api/contacts?phone={}", &NUMBER[1..]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["contacts"], json!([]), "{none}");
    let back = inbound(&app, "mo-3", "START").await;
    assert_eq!(back["action"], "opted_in", "{back}");
    let returned = back["contact_id"].as_str().unwrap();
    let history: Value = app
        .get(&format!("/api/contacts/{returned}/consent"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history["events"][0]["event"], "opt_in", "{history}");
    assert_eq!(history["events"][0]["source"], "keyword", "{history}");
    let readded = app
        .send_json(
            Method::PATCH,
            &format!("/api/contactgroups/{group_id}"),
            &json!({"add": [NUMBER]}),
        )
        .await;
    let readded: Value = readded.json().await.unwrap();
    assert_eq!(readded["size"], 11, "{readded}");

    // The erasure is in the audit log, by id only.
    let audit: Value = app
        .get("/api/audit?operation=contact.erase")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        audit["entries"][0]["objects"],
        json!([contact_id]),
        "{audit}"
    );
    assert!(!audit.to_string().contains(&NUMBER[1..]), "{audit}");

    // Several at once.
    let mut ids = Vec::new();
    for phone in crowd().iter().chain([OTHER.to_owned()].iter()) {
        let found: Value = app
            .get(&format!("/api/contacts?phone={}", &phone[1..]))
            .await
            .json()
            .await
            .unwrap();
        ids.push(found["contacts"][0]["id"].clone());
    }
    let bulk = app
        .send_json(
            Method::DELETE,
            "/api/contacts",
            &json!({"ids": ids, "erase": true}),
        )
        .await;
    let bulk: Value = bulk.json().await.unwrap();
    assert_eq!(bulk["deleted"], 10, "{bulk}");
    let lines = app
        .get_text(
            &format!("/api/batches/{batch_id}/recipients"),
            "application/x-ndjson",
        )
        .await;
    for phone in crowd().iter().chain([OTHER.to_owned()].iter()) {
        assert!(!lines.contains(phone.as_str()), "{phone} in {lines}");
    }
    assert_eq!(lines.matches("\"phone\":\"erased\"").count(), 11, "{lines}");
    let refused = app
        .send_json(Method::POST, "/api/contacts", &json!({"phone": OTHER}))
        .await;
    assert_eq!(refused.status(), 409);
}
