//! Double opt-in: a keyword join, an add with `confirm` and an import with `confirm` make the
//! number a pending member of a group that asks for confirmation, and send it the request once;
//! a pending member is never a recipient; the reply that confirms makes it a member, and a
//! request left unanswered ends — each step a consent row.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use roster::send::log::{LogLine, LogSender};
use serde_json::{Value, json};

use crate::batches::wait_for;
use crate::helpers::{TestApp, quick_dispatch};
use crate::imports::import_file;
use crate::on_both_backends;

on_both_backends!(joining_waits_for_the_reply_that_confirms);
on_both_backends!(sinch_writes_keep_the_double_opt_in);
on_both_backends!(a_deleted_contact_is_pending_no_more);

const ASKER: &str = "+14155550400";
const ADDED: &str = "+14155550401";
const IMPORTED: &str = "+14155550402";
const MEMBER: &str = "+14155550403";

async fn inbound(app: &TestApp, id: &str, from: &str, body: &str) -> Value {
    let response = app
        .send_json(
            Method::POST,
            "/api/inbound",
            &json!({"type": "mo_text", "id": id, "from": from, "to": "12345", "body": body}),
        )
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn group(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/contactgroups/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

/// The group's pending members page.
async fn pending_members(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/contactgroups/{id}/members?state=pending"))
        .await
        .json()
        .await
        .unwrap()
}

/// The messages logged so far.
fn logged(path: &std::path::Path) -> Vec<LogLine> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

async fn joining_waits_for_the_reply_that_confirms(app: TestApp) {
    let club = app
        .create_group(json!({
            "name": "Club",
            "members": [MEMBER],
            "auto_update": {"to": "12345", "add": {"first_word": "CLUB"},
                            "double_opt_in": {"text": "Reply YES to join the Club"}},
        }))
        .await;
    let club_id = club["id"].as_str().unwrap().to_owned();
    assert_eq!(
        club["auto_update"]["double_opt_in"],
        json!({"text": "Reply YES to join the Club", "words": ["YES", "Y"], "hours": 48})
    );
    let log = app.dir().join("messages.jsonl");
    let running = app.start_dispatcher(Arc::new(LogSender::open(&log).unwrap()), quick_dispatch());

    // A keyword join asks; asking again does not ask twice.
    let asked = inbound(&app, "mo-1", ASKER, "club").await;
    assert_eq!(asked["action"], "confirmation_requested", "{asked}");
    assert_eq!(asked["groups"], json!([club_id]));
    let again = inbound(&app, "mo-2", ASKER, "CLUB").await;
    assert_eq!(again["groups"], json!([]), "{again}");
    let read = group(&app, &club_id).await;
    assert_eq!(read["size"], 1, "{read}");
    assert_eq!(read["pending_count"], 1, "{read}");
    let pending = pending_members(&app, &club_id).await;
    assert_eq!(pending["count"], 1, "{pending}");
    assert_eq!(pending["members"][0]["phone"], ASKER, "{pending}");
    assert_eq!(pending["members"][0]["state"], "pending", "{pending}");
    assert!(pending["members"][0]["expires_at"].is_string(), "{pending}");

    // The request goes out once, from the group's number.
    let deadline = Instant::now() + Duration::from_secs(30);
    while logged(&log).iter().all(|line| line.to != ASKER) {
        assert!(Instant::now() < deadline, "the request was not sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A batch to the group meanwhile leaves the pending number out.
    let batch: Value = app
        .send_json(
            Method::POST,
            "/api/batches",
            &json!({"to": [club_id], "body": "news"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let sent = wait_for(&app, batch["id"].as_str().unwrap(), &["sent"]).await;
    assert_eq!(sent["recipient_count"], 1, "{sent}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let requests: Vec<LogLine> = logged(&log)
        .into_iter()
        .filter(|line| line.to == ASKER)
        .collect();
    assert_eq!(requests.len(), 1, "the request was sent more than once");
    assert_eq!(requests[0].body, "Reply YES to join the Club");
    assert_eq!(requests[0].from.as_deref(), Some("12345"));

    // The reply confirms.
    let confirmed = inbound(&app, "mo-3", ASKER, "Yes!").await;
    assert_eq!(confirmed["action"], "confirmed", "{confirmed}");
    assert_eq!(confirmed["groups"], json!([club_id]));
    let read = group(&app, &club_id).await;
    assert_eq!(read["size"], 2, "{read}");
    assert_eq!(read["pending_count"], 0, "{read}");
    let contact = confirmed["contact_id"].as_str().unwrap();
    let history: Value = app
        .get(&format!("/api/contacts/{contact}/consent"))
        .await
        .json()
        .await
        .unwrap();
    let steps: Vec<(&str, &str, &str)> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            (
                event["event"].as_str().unwrap(),
                event["source"].as_str().unwrap(),
                event["message_id"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("confirm_request", "keyword", "mo-1"),
            ("confirm", "keyword", "mo-3")
        ],
        "{history}"
    );

    // An add with `confirm` asks too; a group without double opt-in refuses it.
    let requested: Value = app
        .send_json(
            Method::POST,
            &format!("/api/contactgroups/{club_id}/members"),
            &json!({"numbers": [ADDED, MEMBER], "confirm": true}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(requested, json!({"changed": 0, "requested": 1}));
    let plain = app.create_group(json!({"name": "Plain"})).await;
    let refused = app
        .send_json(
            Method::POST,
            &format!(
                "/api/contactgroups/{}/members",
                plain["id"].as_str().unwrap()
            ),
            &json!({"numbers": [ADDED], "confirm": true}),
        )
        .await;
    assert_eq!(refused.status(), 409);
    let problem: Value = refused.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().starts_with("confirm: "),
        "{problem}"
    );

    // Unanswered, the request ends.
    let later = roster::domain::time::Timestamp::now().plus_millis(49 * 3_600_000);
    assert_eq!(app.store.expire_confirmations(later).await.unwrap(), 1);
    assert_eq!(group(&app, &club_id).await["pending_count"], 0);
    let added: Value = app
        .get(&format!("/api/contacts?phone={}", &ADDED[1..]))
        .await
        .json()
        .await
        .unwrap();
    let history: Value = app
        .get(&format!(
            "/api/contacts/{}/consent",
            added["contacts"][0]["id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history["events"][1]["event"], "confirm_expire", "{history}");
    assert_eq!(history["events"][1]["source"], "system", "{history}");

    // An import with `confirm` asks each new number.
    let csv = format!("phone\n{IMPORTED}\n");
    let import = import_file(
        &app,
        "club.csv",
        csv.into_bytes(),
        json!({"groups": [club_id], "confirm": true}),
    )
    .await;
    assert_eq!(import["report"]["groups"][0]["requested"], 1, "{import}");
    assert_eq!(import["report"]["groups"][0]["added"], 0, "{import}");
    assert_eq!(group(&app, &club_id).await["pending_count"], 1);
    running.stop().await;

    // The settings are checked, the field named.
    let bad = app
        .send_json(
            Method::POST,
            "/api/contactgroups",
            &json!({"name": "Bad", "auto_update": {"to": "12345",
                    "double_opt_in": {"text": "x", "hours": 0}}}),
        )
        .await;
    assert_eq!(bad.status(), 400);
    let problem: Value = bad.json().await.unwrap();
    assert_eq!(
        problem["errors"][0]["field"], "auto_update.double_opt_in.hours",
        "{problem}"
    );
}

/// Sinch's `auto_update` cannot say "double opt-in": a Sinch client writing a group's keywords
/// back, by replace or by update, keeps the double opt-in set on Roster's own routes.
async fn sinch_writes_keep_the_double_opt_in(app: TestApp) {
    let club = app
        .create_group(json!({
            "name": "Club",
            "auto_update": {"to": "12345", "add": {"first_word": "CLUB"},
                            "double_opt_in": {"text": "Reply YES to join", "hours": 24}},
        }))
        .await;
    let id = club["id"].as_str().unwrap();
    let path = format!("{}/{id}", app.sinch_groups());
    let replaced = app
        .send_json(
            Method::PUT,
            &path,
            &json!({"name": "Club", "auto_update": {"to": "12345", "add": {"first_word": "JOIN"}}}),
        )
        .await;
    assert_eq!(replaced.status(), 200);
    let after = group(&app, id).await;
    assert_eq!(after["auto_update"]["add"]["first_word"], "JOIN", "{after}");
    assert_eq!(
        after["auto_update"]["double_opt_in"]["text"], "Reply YES to join",
        "{after}"
    );
    assert_eq!(
        after["auto_update"]["double_opt_in"]["hours"], 24,
        "{after}"
    );

    let updated = app
        .send_json(
            Method::POST,
            &path,
            &json!({"auto_update": {"to": "12345", "add": {"first_word": "CLUB"}}}),
        )
        .await;
    assert_eq!(updated.status(), 200);
    let after = group(&app, id).await;
    assert_eq!(after["auto_update"]["add"]["first_word"], "CLUB", "{after}");
    assert_eq!(
        after["auto_update"]["double_opt_in"]["hours"], 24,
        "{after}"
    );

    // Without auto_update, a replace leaves no keywords, and no double opt-in with them.
    let cleared = app
        .send_json(Method::PUT, &path, &json!({"name": "Club"}))
        .await;
    assert_eq!(cleared.status(), 200);
    assert_eq!(group(&app, id).await["auto_update"], Value::Null);
}

/// Deleting a contact ends its pending memberships with it, and its number asking again is
/// asked again (on PostgreSQL a trigger removes them, where a foreign key did before migration
/// 32).
async fn a_deleted_contact_is_pending_no_more(app: TestApp) {
    let club = app
        .create_group(json!({
            "name": "Club",
            "auto_update": {"to": "12345", "add": {"first_word": "CLUB"},
                            "double_opt_in": {"text": "Reply YES to join"}},
        }))
        .await;
    let club_id = club["id"].as_str().unwrap();
    let asked = inbound(&app, "mo-1", ASKER, "club").await;
    assert_eq!(asked["action"], "confirmation_requested", "{asked}");
    let contact = asked["contact_id"].as_str().unwrap().to_owned();
    assert_eq!(group(&app, club_id).await["pending_count"], 1);

    let deleted = app.delete(&format!("/api/contacts/{contact}")).await;
    assert_eq!(deleted.status(), 204);
    assert_eq!(group(&app, club_id).await["pending_count"], 0);
    let pending = pending_members(&app, club_id).await;
    assert_eq!(pending["count"], 0, "{pending}");

    let again = inbound(&app, "mo-2", ASKER, "club").await;
    assert_eq!(again["action"], "confirmation_requested", "{again}");
    assert_ne!(again["contact_id"], contact.as_str(), "{again}");
    assert_eq!(group(&app, club_id).await["pending_count"], 1);
}
