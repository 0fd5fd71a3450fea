//! Inbound keywords: opt-out and opt-in, joining and leaving groups, and the consent history.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    stop_opts_out_and_start_opts_back_in,
    only_a_whole_keyword_counts,
    group_words_join_and_leave,
    stop_wins_over_group_words,
    a_message_is_acted_on_once,
    plans_set_their_own_keywords,
    api_opt_outs_are_in_the_history_too,
);

async fn inbound(app: &TestApp, id: &str, from: &str, to: &str, body: &str) -> Value {
    let response = app
        .send_json(
            Method::POST,
            "/api/inbound",
            &json!({
                "type": "mo_text", "id": id, "from": from, "to": to, "body": body,
                "received_at": "2026-11-23T05:41:50.123Z", "operator_id": "310260",
            }),
        )
        .await;
    assert_eq!(response.status(), 200, "{body}");
    response.json().await.unwrap()
}

async fn contact(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/contacts/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

async fn history(app: &TestApp, id: &str) -> Vec<Value> {
    let body: Value = app
        .get(&format!("/api/contacts/{id}/consent"))
        .await
        .json()
        .await
        .unwrap();
    body["events"].as_array().unwrap().clone()
}

async fn stop_opts_out_and_start_opts_back_in(app: TestApp) {
    let group = app
        .create_group(json!({"name": "News", "members": ["+14155550101"]}))
        .await;
    let out = inbound(&app, "mo-1", "14155550101", "12345", "Stop.").await;
    assert_eq!(out["action"], "opted_out");
    let id = out["contact_id"].as_str().unwrap();
    let now = contact(&app, id).await;
    assert_eq!(now["opted_out"], true);
    assert!(now["opted_out_reason"].as_str().unwrap().contains("STOP"));
    // Opting out keeps the memberships, so that opting back in restores them.
    let back = inbound(&app, "mo-2", "+14155550101", "12345", " start ").await;
    assert_eq!(back["action"], "opted_in");
    assert_eq!(contact(&app, id).await["opted_out"], false);
    assert_eq!(
        app.member_numbers(group["id"].as_str().unwrap()).await,
        ["+14155550101"]
    );
    let events = history(&app, id).await;
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["opt_out", "opt_in"]);
    assert_eq!(events[0]["source"], "keyword");
    assert_eq!(events[0]["message_id"], "mo-1");
    // A number that was never a contact becomes one.
    let stranger = inbound(&app, "mo-3", "+14155550102", "12345", "UNSUBSCRIBE").await;
    assert_eq!(stranger["action"], "opted_out");
    let created = contact(&app, stranger["contact_id"].as_str().unwrap()).await;
    assert_eq!(created["phone"], "+14155550102");
    assert_eq!(created["opted_out"], true);
}

async fn only_a_whole_keyword_counts(app: TestApp) {
    for (index, body) in ["We have got to STOP this", "stop it", "stopp", "hello"]
        .iter()
        .enumerate()
    {
        let result = inbound(&app, &format!("mo-{index}"), "+14155550201", "12345", body).await;
        assert_eq!(result["action"], "none", "{body}");
        assert_eq!(
            contact(&app, result["contact_id"].as_str().unwrap()).await["opted_out"],
            false
        );
    }
    for (index, body) in ["STOP", "stop", "Stop!", " quit ", "END.", "OptOut"]
        .iter()
        .enumerate()
    {
        let result = inbound(&app, &format!("out-{index}"), "+14155550202", "12345", body).await;
        assert_eq!(result["action"], "opted_out", "{body}");
    }
}

async fn group_words_join_and_leave(app: TestApp) {
    let dedicated = app
        .create_group(json!({
            "name": "Dedicated",
            "auto_update": {"to": "+15551231234", "add": {"first_word": "JOIN"}, "remove": {"first_word": "LEAVE"}},
        }))
        .await;
    let shared = app
        .create_group(json!({
            "name": "Shared",
            "auto_update": {"to": "12345", "add": {"first_word": "ACME", "second_word": "JOIN"},
                            "remove": {"first_word": "ACME", "second_word": "LEAVE"}},
        }))
        .await;
    let dedicated_id = dedicated["id"].as_str().unwrap();
    let shared_id = shared["id"].as_str().unwrap();
    let joined = inbound(&app, "mo-1", "+14155550301", "15551231234", "join").await;
    assert_eq!(joined["action"], "joined");
    assert_eq!(joined["groups"], json!([dedicated_id]));
    assert_eq!(app.member_numbers(dedicated_id).await, ["+14155550301"]);
    // The shared short code needs both words; the dedicated number's word means nothing there.
    let nothing = inbound(&app, "mo-2", "+14155550301", "12345", "JOIN").await;
    assert_eq!(nothing["action"], "none");
    let shared_join = inbound(&app, "mo-3", "+14155550301", "12345", "acme join!").await;
    assert_eq!(shared_join["groups"], json!([shared_id]));
    let left = inbound(&app, "mo-4", "+14155550301", "+1 555 123 1234", "Leave").await;
    assert_eq!(left["action"], "left");
    assert!(app.member_numbers(dedicated_id).await.is_empty());
    assert_eq!(app.member_numbers(shared_id).await, ["+14155550301"]);
    let group_now: Value = app
        .get(&format!("/api/contactgroups/{shared_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(group_now["size"], 1);
    let kinds: Vec<String> = history(&app, joined["contact_id"].as_str().unwrap())
        .await
        .iter()
        .map(|e| {
            format!(
                "{} {}",
                e["event"].as_str().unwrap(),
                e["group_id"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            format!("join {dedicated_id}"),
            format!("join {shared_id}"),
            format!("leave {dedicated_id}")
        ]
    );
}

async fn stop_wins_over_group_words(app: TestApp) {
    let group = app
        .create_group(json!({
            "name": "Stoppers",
            "auto_update": {"to": "12345", "add": {"first_word": "STOP"}},
        }))
        .await;
    let result = inbound(&app, "mo-1", "+14155550401", "12345", "STOP").await;
    assert_eq!(result["action"], "opted_out");
    assert!(
        app.member_numbers(group["id"].as_str().unwrap())
            .await
            .is_empty()
    );
}

async fn a_message_is_acted_on_once(app: TestApp) {
    let group = app
        .create_group(json!({
            "name": "Once",
            "auto_update": {"to": "12345", "add": {"first_word": "JOIN"}, "remove": {"first_word": "LEAVE"}},
        }))
        .await;
    let first = inbound(&app, "mo-1", "+14155550501", "12345", "JOIN").await;
    assert_eq!(first["duplicate"], false);
    inbound(&app, "mo-2", "+14155550501", "12345", "LEAVE").await;
    // The platform delivers mo-1 again: nothing is done, and the first answer is given.
    let again = inbound(&app, "mo-1", "+14155550501", "12345", "JOIN").await;
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["action"], "joined");
    assert!(
        app.member_numbers(group["id"].as_str().unwrap())
            .await
            .is_empty()
    );
    assert_eq!(
        history(&app, first["contact_id"].as_str().unwrap())
            .await
            .len(),
        2
    );
    let bad = app
        .send_json(
            Method::POST,
            "/api/inbound",
            &json!({"type": "mo_binary", "id": "x", "from": "nope", "to": "", "body": "hi"}),
        )
        .await;
    assert_eq!(bad.status(), 400);
    let problem: Value = bad.json().await.unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["type", "from", "to"]);
}

async fn plans_set_their_own_keywords(app: TestApp) {
    let defaults: Value = app.get("/api/keywords").await.json().await.unwrap();
    assert_eq!(defaults["opt_out"][0], "STOP");
    assert_eq!(defaults["opt_out"].as_array().unwrap().len(), 8);
    let set = app
        .send_json(
            Method::PUT,
            "/api/keywords",
            &json!({"opt_out": ["arrêt", "stop"], "opt_in": ["go"]}),
        )
        .await;
    assert_eq!(set.status(), 200);
    assert_eq!(
        set.json::<Value>().await.unwrap()["opt_out"],
        json!(["ARRÊT", "STOP"])
    );
    let out = inbound(&app, "mo-1", "+14155550601", "12345", "Arrêt!").await;
    assert_eq!(out["action"], "opted_out");
    let unknown_now = inbound(&app, "mo-2", "+14155550601", "12345", "START").await;
    assert_eq!(unknown_now["action"], "none");
    let back = inbound(&app, "mo-3", "+14155550601", "12345", "go").await;
    assert_eq!(back["action"], "opted_in");
    let invalid = app
        .send_json(
            Method::PUT,
            "/api/keywords",
            &json!({"opt_out": [], "opt_in": []}),
        )
        .await;
    assert_eq!(invalid.status(), 400);
}

async fn api_opt_outs_are_in_the_history_too(app: TestApp) {
    let created = app
        .send_json(
            Method::POST,
            "/api/contacts",
            &json!({"phone": "+14155550701"}),
        )
        .await;
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.send_json(
        Method::PATCH,
        &format!("/api/contacts/{id}"),
        &json!({"opted_out": true, "opted_out_reason": "asked by phone"}),
    )
    .await;
    app.send_json(
        Method::PATCH,
        &format!("/api/contacts/{id}"),
        &json!({"first_name": "x"}),
    )
    .await;
    let events = history(&app, &id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event"], "opt_out");
    assert_eq!(events[0]["source"], "api");
    assert_eq!(
        app.get("/api/contacts/01ARZ3NDEKTSV4RRFFQ69G5FAV/consent")
            .await
            .status(),
        404
    );
}
