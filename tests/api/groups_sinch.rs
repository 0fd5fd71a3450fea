//! The Sinch-compatible surface, driven the way Sinch's SDKs drive it: `Content-Type:
//! application/json` on every request, and (Python) every unset update field sent as `null`.

use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    sdk_flow_create_update_replace_members_delete,
    update_copies_members_from_and_out_by_other_groups,
    list_pages_newest_first_from_page_zero,
    errors_use_sinch_codes,
    another_plans_path_is_forbidden,
    deleted_groups_are_gone_on_this_surface,
);

async fn sinch(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> Response {
    let request = app
        .request(method, &format!("{}{path}", app.sinch_groups()))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json");
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    request.send().await.expect("request")
}

async fn ok_json(response: Response, status: u16) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.expect("JSON")
}

async fn members(app: &TestApp, id: &str) -> Vec<String> {
    let response = sinch(app, Method::GET, &format!("/{id}/members"), None).await;
    let mut numbers: Vec<String> = serde_json::from_value(ok_json(response, 200).await).unwrap();
    numbers.sort();
    numbers
}

async fn sdk_flow_create_update_replace_members_delete(app: TestApp) {
    let created = ok_json(
        sinch(
            &app,
            Method::POST,
            "",
            Some(json!({"name": "SDK group", "members": ["+46701234567", "+46701234567", "+46701234568"]})),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(created["size"], 2);
    assert_eq!(created["name"], "SDK group");
    assert_eq!(created["child_groups"], json!([]));
    // Null fields are left out, never sent as null.
    assert!(created.get("auto_update").is_none());
    assert!(created.get("description").is_none());
    assert!(created.get("status").is_none());
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));

    let retrieved = ok_json(sinch(&app, Method::GET, &format!("/{id}"), None).await, 200).await;
    assert_eq!(retrieved, created);

    // Python SDK update: every unset field is null. Add and remove of the same number: absent.
    let updated = ok_json(
        sinch(
            &app,
            Method::POST,
            &format!("/{id}"),
            Some(json!({
                "add": ["+46701234569", "+46701234570"], "remove": ["+46701234570", "+46709999999"],
                "name": "SDK group", "add_from_group": null, "remove_from_group": null,
                "auto_update": null,
            })),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(updated["size"], 3);
    assert_eq!(
        members(&app, &id).await,
        ["+46701234567", "+46701234568", "+46701234569"]
    );
    // Omitting name keeps it; null removes it.
    let kept = ok_json(
        sinch(
            &app,
            Method::POST,
            &format!("/{id}"),
            Some(json!({"add": []})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(kept["name"], "SDK group");
    let unnamed = ok_json(
        sinch(
            &app,
            Method::POST,
            &format!("/{id}"),
            Some(json!({"name": null})),
        )
        .await,
        200,
    )
    .await;
    assert!(unnamed.get("name").is_none());

    let replaced = ok_json(
        sinch(
            &app,
            Method::PUT,
            &format!("/{id}"),
            Some(json!({
                "name": "Replaced", "members": ["+46701234571"],
                "auto_update": {"to": "+15551231234", "add": {"first_word": "JOIN"},
                                "remove": {"first_word": "LEAVE", "second_word": "NOW"}},
            })),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(replaced["name"], "Replaced");
    assert_eq!(replaced["size"], 1);
    assert_eq!(
        replaced["auto_update"],
        json!({"to": "+15551231234", "add": {"first_word": "JOIN"},
               "remove": {"first_word": "LEAVE", "second_word": "NOW"}})
    );
    assert_eq!(members(&app, &id).await, ["+46701234571"]);

    let child = ok_json(
        sinch(
            &app,
            Method::POST,
            "",
            Some(json!({"name": "Child", "members": ["+46701234572"]})),
        )
        .await,
        201,
    )
    .await;
    let parent = ok_json(
        sinch(
            &app,
            Method::POST,
            "",
            Some(json!({"name": "Parent", "child_groups": [child["id"]], "members": ["+46701234571"]})),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(parent["size"], 2);
    assert_eq!(parent["child_groups"], json!([child["id"]]));
    assert_eq!(
        members(&app, parent["id"].as_str().unwrap()).await,
        ["+46701234571", "+46701234572"]
    );

    // Python's create() with no arguments sends no body at all.
    let bare = app
        .request(Method::POST, &app.sinch_groups())
        .header("Content-Type", "application/json")
        .send()
        .await
        .unwrap();
    let bare = ok_json(bare, 201).await;
    assert_eq!(bare["size"], 0);
    assert!(bare.get("name").is_none());
    let empty = sinch(
        &app,
        Method::GET,
        &format!("/{}/members", bare["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(ok_json(empty, 200).await, json!([]));

    let deleted = sinch(&app, Method::DELETE, &format!("/{id}"), None).await;
    assert_eq!(deleted.status(), 200);
    assert_eq!(deleted.text().await.unwrap(), "");
    let gone = sinch(&app, Method::GET, &format!("/{id}"), None).await;
    assert_eq!(gone.status(), 404);
    let body: Value = gone.json().await.unwrap();
    assert!(body["code"].is_string() && body["text"].is_string());
}

async fn update_copies_members_from_and_out_by_other_groups(app: TestApp) {
    let source = ok_json(
        sinch(
            &app,
            Method::POST,
            "",
            Some(json!({"name": "Source", "members": ["+46701230001", "+46701230002"]})),
        )
        .await,
        201,
    )
    .await;
    let target = ok_json(
        sinch(
            &app,
            Method::POST,
            "",
            Some(json!({"name": "Target", "members": ["+46701230003"]})),
        )
        .await,
        201,
    )
    .await;
    let target_id = target["id"].as_str().unwrap();
    let added = ok_json(
        sinch(
            &app,
            Method::POST,
            &format!("/{target_id}"),
            Some(json!({"add_from_group": source["id"]})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(added["size"], 3);
    let removed = ok_json(
        sinch(
            &app,
            Method::POST,
            &format!("/{target_id}"),
            Some(json!({"remove_from_group": source["id"]})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(removed["size"], 1);
    assert_eq!(members(&app, target_id).await, ["+46701230003"]);
}

async fn list_pages_newest_first_from_page_zero(app: TestApp) {
    let mut ids = Vec::new();
    for name in ["first", "second", "third"] {
        let group = ok_json(
            sinch(&app, Method::POST, "", Some(json!({"name": name}))).await,
            201,
        )
        .await;
        ids.push(group["id"].as_str().unwrap().to_owned());
    }
    let page0 = ok_json(
        sinch(&app, Method::GET, "?page=0&page_size=2", None).await,
        200,
    )
    .await;
    assert_eq!(page0["count"], 3);
    assert_eq!(page0["page"], 0);
    assert_eq!(page0["page_size"], 2);
    assert_eq!(page0["groups"][0]["id"], ids[2]);
    assert_eq!(page0["groups"][1]["id"], ids[1]);
    let page1 = ok_json(
        sinch(&app, Method::GET, "?page=1&page_size=2", None).await,
        200,
    )
    .await;
    assert_eq!(page1["page"], 1);
    assert_eq!(page1["page_size"], 1);
    assert_eq!(page1["groups"][0]["id"], ids[0]);
    let default = ok_json(sinch(&app, Method::GET, "", None).await, 200).await;
    assert_eq!(default["page_size"], 3);
    let beyond = ok_json(sinch(&app, Method::GET, "?page=5", None).await, 200).await;
    assert_eq!(beyond["groups"], json!([]));
    assert_eq!(beyond["count"], 3);
    assert!(
        sinch(&app, Method::GET, "?page_size=100", None)
            .await
            .status()
            .is_success()
    );
    for bad in ["?page_size=101", "?page_size=0", "?page=-1", "?page=x"] {
        let response = sinch(&app, Method::GET, bad, None).await;
        assert_eq!(response.status(), 400, "{bad}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "syntax_constraint_violation", "{bad}");
    }
}

async fn error_code(response: Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("a JSON error body");
    assert!(body["text"].as_str().is_some_and(|text| !text.is_empty()));
    body["code"].as_str().unwrap().to_owned()
}

async fn errors_use_sinch_codes(app: TestApp) {
    let invalid_number = sinch(
        &app,
        Method::POST,
        "",
        Some(json!({"name": "x", "members": ["+4670123"]})),
    )
    .await;
    assert_eq!(
        error_code(invalid_number, 400).await,
        "syntax_invalid_parameter_format"
    );
    let long_name = sinch(
        &app,
        Method::POST,
        "",
        Some(json!({"name": "x".repeat(21)})),
    )
    .await;
    assert_eq!(
        error_code(long_name, 400).await,
        "syntax_constraint_violation"
    );
    let twenty = sinch(
        &app,
        Method::POST,
        "",
        Some(json!({"name": "x".repeat(20)})),
    )
    .await;
    assert_eq!(twenty.status(), 201);
    let group: Value = twenty.json().await.unwrap();
    let id = group["id"].as_str().unwrap();

    let bad_json = app
        .request(Method::POST, &app.sinch_groups())
        .header("Content-Type", "application/json")
        .body("{\"name\": [")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(bad_json, 400).await, "syntax_invalid_json");
    let wrong_type = sinch(
        &app,
        Method::POST,
        "",
        Some(json!({"members": "+46701234567"})),
    )
    .await;
    assert_eq!(error_code(wrong_type, 400).await, "syntax_invalid_json");

    let unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    let unknown_child = sinch(
        &app,
        Method::POST,
        "",
        Some(json!({"child_groups": [unknown]})),
    )
    .await;
    assert_eq!(error_code(unknown_child, 403).await, "unknown_group");
    let unknown_source = sinch(
        &app,
        Method::POST,
        &format!("/{id}"),
        Some(json!({"add_from_group": unknown})),
    )
    .await;
    assert_eq!(error_code(unknown_source, 403).await, "unknown_group");
    let eleven: Vec<&str> = vec![id; 11];
    let too_many_children = sinch(
        &app,
        Method::POST,
        "",
        Some(json!({"child_groups": eleven})),
    )
    .await;
    assert_eq!(
        error_code(too_many_children, 400).await,
        "syntax_constraint_violation"
    );
    let numbers: Vec<String> = (0..10_001).map(|i| format!("+4670{:07}", i)).collect();
    let too_many_numbers = sinch(
        &app,
        Method::POST,
        &format!("/{id}"),
        Some(json!({"add": numbers})),
    )
    .await;
    assert_eq!(
        error_code(too_many_numbers, 400).await,
        "syntax_constraint_violation"
    );

    let missing = sinch(&app, Method::GET, &format!("/{unknown}"), None).await;
    error_code(missing, 404).await;
    let missing_update = sinch(
        &app,
        Method::POST,
        &format!("/{unknown}"),
        Some(json!({"add": []})),
    )
    .await;
    error_code(missing_update, 404).await;
    let missing_members = sinch(&app, Method::GET, &format!("/{unknown}/members"), None).await;
    error_code(missing_members, 404).await;

    let anonymous = app
        .client
        .get(format!("{}{}", app.address, app.sinch_groups()))
        .send()
        .await
        .unwrap();
    error_code(anonymous, 401).await;
}

async fn another_plans_path_is_forbidden(app: TestApp) {
    let (other_plan, other_token) = app.create_plan(None).await;
    let response = app
        .request(Method::GET, &format!("/xms/v1/{other_plan}/groups"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response, 403).await, "forbidden");
    // The other plan's token sees its own path, and not this plan's groups.
    let theirs = app
        .client
        .get(format!("{}/xms/v1/{other_plan}/groups", app.address))
        .bearer_auth(&other_token)
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 200);
}

async fn deleted_groups_are_gone_on_this_surface(app: TestApp) {
    let group = ok_json(
        sinch(&app, Method::POST, "", Some(json!({"name": "Temp"}))).await,
        201,
    )
    .await;
    let id = group["id"].as_str().unwrap();
    assert_eq!(
        sinch(&app, Method::DELETE, &format!("/{id}"), None)
            .await
            .status(),
        200
    );
    for (method, path, body) in [
        (Method::GET, format!("/{id}"), None),
        (Method::GET, format!("/{id}/members"), None),
        (Method::POST, format!("/{id}"), Some(json!({"add": []}))),
        (Method::PUT, format!("/{id}"), Some(json!({"name": "Back"}))),
        (Method::DELETE, format!("/{id}"), None),
    ] {
        let response = sinch(&app, method.clone(), &path, body).await;
        assert_eq!(response.status(), 404, "{method} {path}");
    }
    let list = ok_json(sinch(&app, Method::GET, "", None).await, 200).await;
    assert_eq!(list["count"], 0);
    let referenced = sinch(&app, Method::POST, "", Some(json!({"child_groups": [id]}))).await;
    assert_eq!(error_code(referenced, 403).await, "unknown_group");
}
