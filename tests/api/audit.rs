//! The audit log: every change through the API, the web page and the command line is recorded
//! with its token, channel and address, in the changing transaction (a refused change leaves
//! no row), with field names and counts but no personal data; admins read it filtered and paged.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    changes_are_recorded_with_who_and_what,
    the_log_is_filtered_and_paged,
);

/// A token of the plan with a name and scopes, made through the API.
async fn named_token(app: &TestApp, name: &str, scopes: &[&str]) -> String {
    let response = app
        .send_json(
            Method::POST,
            "/api/tokens",
            &json!({"name": name, "scopes": scopes}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let made: Value = response.json().await.unwrap();
    made["token"].as_str().unwrap().to_owned()
}

async fn send_as(app: &TestApp, token: &str, method: Method, path: &str, body: &Value) -> Value {
    let response = app
        .client
        .request(method.clone(), format!("{}{path}", app.address))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{method} {path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// The whole log (newest first) as the test's admin token reads it with `query`.
async fn audit(app: &TestApp, query: &str) -> Vec<Value> {
    let response = app.get(&format!("/api/audit?limit=1000&{query}")).await;
    assert_eq!(response.status(), 200, "{query}");
    let page: Value = response.json().await.unwrap();
    page["entries"].as_array().unwrap().clone()
}

fn operations(entries: &[Value]) -> Vec<&str> {
    entries
        .iter()
        .map(|entry| entry["operation"].as_str().unwrap())
        .collect()
}

async fn changes_are_recorded_with_who_and_what(app: TestApp) {
    let crm = named_token(&app, "crm", &["write"]).await;
    let group = send_as(
        &app,
        &crm,
        Method::POST,
        "/api/contactgroups",
        &json!({"name": "Regulars"}),
    )
    .await;
    let group_id = group["id"].as_str().unwrap().to_owned();
    let contact = send_as(
        &app,
        &crm,
        Method::POST,
        "/api/contacts",
        &json!({"phone": "+14155550101", "first_name": "Ada", "email": "ada@example.com"}),
    )
    .await;
    let contact_id = contact["id"].as_str().unwrap().to_owned();
    send_as(
        &app,
        &crm,
        Method::PATCH,
        &format!("/api/contacts/{contact_id}"),
        &json!({"email": "ada@example.org", "first_name": "Ada"}),
    )
    .await;
    send_as(
        &app,
        &crm,
        Method::POST,
        "/api/contactgroups/members",
        &json!({"contact_ids": [contact_id], "group_ids": [group_id]}),
    )
    .await;

    // A change refused (the number is taken) leaves no row: the row is the change's.
    let before = audit(&app, "").await.len();
    let refused = app
        .client
        .post(format!("{}/api/contacts", app.address))
        .bearer_auth(&crm)
        .json(&json!({"phone": "+14155550101"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 409);
    assert_eq!(audit(&app, "").await.len(), before);

    send_as(
        &app,
        &crm,
        Method::DELETE,
        &format!("/api/contacts/{contact_id}"),
        &Value::Null,
    )
    .await;

    let entries = audit(&app, "").await;
    assert_eq!(
        operations(&entries),
        [
            "contact.delete",
            "membership.add",
            "contact.update",
            "contact.create",
            "group.create",
            "token.create",
            "token.create",
            "plan.create",
        ],
        "{entries:#?}"
    );
    // The token made through the API is recorded as made by the test's token, unnamed; the
    // plan and its first token by the command line.
    for entry in &entries[..5] {
        assert_eq!(entry["channel"], "api", "{entry}");
        assert_eq!(entry["token_name"], "crm", "{entry}");
        assert_eq!(entry["address"], "127.0.0.1", "{entry}");
        assert_eq!(entry["token_id"].as_str().unwrap().len(), 12, "{entry}");
    }
    assert_eq!(entries[5]["channel"], "api");
    assert_eq!(entries[5]["token_name"], Value::Null);
    assert_eq!(entries[5]["summary"]["scopes"], "write");
    assert_eq!(entries[6]["channel"], "cli");
    assert_eq!(entries[7]["channel"], "cli");
    assert_eq!(entries[7]["objects"], json!([app.plan_id]));

    // What changed, by name and count: the update names the field that changed, not the one
    // sent unchanged.
    assert_eq!(entries[2]["objects"], json!([contact_id]));
    assert_eq!(entries[2]["summary"]["fields"], json!(["email"]));
    assert_eq!(entries[1]["objects"], json!([group_id, contact_id]));
    assert_eq!(entries[1]["summary"]["changed"], 1);
    assert_eq!(entries[0]["summary"]["deleted"], 1);
    assert_eq!(entries[4]["objects"], json!([group_id]));
    // No personal data in clear.
    let text = serde_json::to_string(&entries).unwrap();
    for personal in ["4155550101", "Ada", "ada@example"] {
        assert!(!text.contains(personal), "{personal} in the log: {text}");
    }

    // Only admins read it.
    let as_crm = app
        .client
        .get(format!("{}/api/audit", app.address))
        .bearer_auth(&crm)
        .send()
        .await
        .unwrap();
    assert_eq!(as_crm.status(), 403);

    // Retention removes rows older than the cut.
    let cut = roster::domain::time::Timestamp::now().plus_millis(1_000);
    let removed = app.store.prune_audit(cut).await.unwrap();
    assert!(removed >= entries.len() as u64, "{removed}");
    assert!(audit(&app, "").await.is_empty());
}

async fn the_log_is_filtered_and_paged(app: TestApp) {
    let mut groups = Vec::new();
    for n in 0..5 {
        let group = app.create_group(json!({"name": format!("G{n}")})).await;
        groups.push(group["id"].as_str().unwrap().to_owned());
    }
    let renamed = app
        .send_json(
            Method::PATCH,
            &format!("/api/contactgroups/{}", groups[2]),
            &json!({"name": "Renamed"}),
        )
        .await;
    assert_eq!(renamed.status(), 200);

    let all = audit(&app, "").await;
    assert_eq!(all.len(), 8, "{all:#?}");
    assert_eq!(operations(&audit(&app, "operation=group").await).len(), 6);
    assert_eq!(
        operations(&audit(&app, "operation=group.update").await),
        ["group.update"]
    );
    let of_one = audit(&app, &format!("object={}", groups[2])).await;
    assert_eq!(operations(&of_one), ["group.update", "group.create"]);
    assert_eq!(of_one[0]["summary"]["fields"], json!(["name"]));
    assert_eq!(
        operations(&audit(&app, "channel=cli").await),
        ["token.create", "plan.create"]
    );
    assert!(audit(&app, "token=nobody").await.is_empty());
    assert!(audit(&app, "since=2100-01-01T00:00:00Z").await.is_empty());
    assert_eq!(audit(&app, "until=2100-01-01T00:00:00Z").await.len(), 8);

    // Pages of three, newest first, end to end the same rows as one page.
    let mut paged = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let query = match &next {
            Some(cursor) => format!("/api/audit?limit=3&next={cursor}"),
            None => "/api/audit?limit=3".to_owned(),
        };
        let page: Value = app.get(&query).await.json().await.unwrap();
        paged.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some(cursor) => next = Some(cursor.to_owned()),
            None => break,
        }
    }
    assert_eq!(paged, all);

    // Another plan sees none of it, and cannot use this plan's cursor.
    let (_, other_token) = app.create_plan(None).await;
    let cursor = {
        let page: Value = app.get("/api/audit?limit=1").await.json().await.unwrap();
        page["next"].as_str().unwrap().to_owned()
    };
    let theirs = app
        .client
        .get(format!("{}/api/audit?next={cursor}", app.address))
        .bearer_auth(&other_token)
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 400);
    let theirs: Value = app
        .client
        .get(format!("{}/api/audit", app.address))
        .bearer_auth(&other_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        operations(theirs["entries"].as_array().unwrap()),
        ["token.create", "plan.create"]
    );

    for (query, field) in [
        ("object=a%25b", "object"),
        ("operation=Group", "operation"),
        ("channel=fax", "channel"),
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("next=00", "next"),
    ] {
        let refused = app.get(&format!("/api/audit?{query}")).await;
        assert_eq!(refused.status(), 400, "{query}");
        let problem: Value = refused.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], field, "{query}: {problem}");
    }
}
