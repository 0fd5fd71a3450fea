//! Smart groups: members are the contacts matching a rule, always in sync.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    smart_groups_follow_their_rule,
    smart_groups_refuse_direct_membership_changes,
    smart_groups_resolve_inside_static_groups,
    rules_are_checked_and_stay_data,
);

async fn contact(app: &TestApp, body: Value) -> String {
    let response = app.send_json(Method::POST, "/api/contacts", &body).await;
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn group(app: &TestApp, id: &str) -> Value {
    app.get(&format!("/api/contactgroups/{id}"))
        .await
        .json()
        .await
        .unwrap()
}

async fn smart_groups_follow_their_rule(app: TestApp) {
    let anna = contact(
        &app,
        json!({"phone": "+4915112345601", "fields": {"plan": "gold"}}),
    )
    .await;
    contact(
        &app,
        json!({"phone": "+4915112345602", "fields": {"plan": "silver"}}),
    )
    .await;
    contact(
        &app,
        json!({"phone": "+14155550601", "fields": {"plan": "gold"}}),
    )
    .await;
    let smart = app
        .create_group(json!({
            "name": "German gold",
            "rule": "country = \"DE\" and fields.plan in (\"gold\", \"platinum\") and not opted_out",
        }))
        .await;
    assert_eq!(smart["size"], 1);
    assert_eq!(
        smart["rule"],
        "country = \"DE\" and fields.plan in (\"gold\", \"platinum\") and not opted_out"
    );
    let id = smart["id"].as_str().unwrap();
    assert_eq!(app.member_numbers(id).await, ["+4915112345601"]);

    // A new matching contact is a member at once; no one has to add it.
    contact(
        &app,
        json!({"phone": "+4915112345603", "fields": {"plan": "platinum"}}),
    )
    .await;
    assert_eq!(group(&app, id).await["size"], 2);
    // And one that stops matching leaves.
    app.send_json(
        Method::PATCH,
        &format!("/api/contacts/{anna}"),
        &json!({"opted_out": true}),
    )
    .await;
    assert_eq!(app.member_numbers(id).await, ["+4915112345603"]);

    // The rule can change.
    let response = app
        .send_json(
            Method::PATCH,
            &format!("/api/contactgroups/{id}"),
            &json!({"rule": "fields.plan = \"gold\""}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let changed: Value = response.json().await.unwrap();
    assert_eq!(changed["size"], 2);
    let listed: Value = app.get("/api/contactgroups").await.json().await.unwrap();
    assert_eq!(listed["groups"][0]["size"], 2);
    let page: Value = app
        .get(&format!("/api/contactgroups/{id}/members?limit=1"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["members"].as_array().unwrap().len(), 1);
    assert!(page["next"].is_string());
    // Contacts search by group sees the same members.
    let searched: Value = app
        .get(&format!("/api/contacts?group={id}&count=true"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(searched["count"], 2);
    // The Sinch surface shows the live size too.
    let sinch: Value = app
        .get(&format!("{}/{id}", app.sinch_groups()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(sinch["size"], 2);
}

async fn smart_groups_refuse_direct_membership_changes(app: TestApp) {
    let person = contact(&app, json!({"phone": "+14155550701"})).await;
    let smart = app
        .create_group(json!({"name": "Everyone", "rule": "phone >= \"+\""}))
        .await;
    let id = smart["id"].as_str().unwrap();
    let add = app
        .send_json(
            Method::PATCH,
            &format!("/api/contactgroups/{id}"),
            &json!({"add": ["+14155550702"]}),
        )
        .await;
    assert_eq!(add.status(), 409);
    let problem: Value = add.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("smart"));
    let bulk = app
        .send_json(
            Method::POST,
            "/api/contactgroups/members",
            &json!({"contact_ids": [person], "group_ids": [id]}),
        )
        .await;
    assert_eq!(bulk.status(), 409);
    let sinch = app
        .send_json(
            Method::POST,
            &format!("{}/{id}", app.sinch_groups()),
            &json!({"add": ["+14155550702"]}),
        )
        .await;
    assert_eq!(sinch.status(), 409);
    // A static group with members cannot become smart by PATCH; PUT replaces it.
    let static_group = app
        .create_group(json!({"name": "Static", "members": ["+14155550703"]}))
        .await;
    let static_id = static_group["id"].as_str().unwrap();
    let to_smart = app
        .send_json(
            Method::PATCH,
            &format!("/api/contactgroups/{static_id}"),
            &json!({"rule": "opted_out"}),
        )
        .await;
    assert_eq!(to_smart.status(), 409);
    let replaced = app
        .send_json(
            Method::PUT,
            &format!("/api/contactgroups/{static_id}"),
            &json!({"name": "Now smart", "rule": "not opted_out"}),
        )
        .await;
    assert_eq!(replaced.status(), 200);
    let replaced: Value = replaced.json().await.unwrap();
    assert_eq!(replaced["size"], 2);
    // And back: a null rule makes an empty static group.
    let back = app
        .send_json(
            Method::PATCH,
            &format!("/api/contactgroups/{static_id}"),
            &json!({"rule": null}),
        )
        .await;
    assert_eq!(back.status(), 200);
    assert_eq!(back.json::<Value>().await.unwrap()["size"], 0);
}

async fn smart_groups_resolve_inside_static_groups(app: TestApp) {
    contact(&app, json!({"phone": "+4915112345701", "gender": "female"})).await;
    contact(&app, json!({"phone": "+4915112345702", "gender": "male"})).await;
    let smart = app
        .create_group(json!({"name": "Women", "rule": "gender = \"female\""}))
        .await;
    let parent = app
        .create_group(json!({
            "name": "Parent", "members": ["+4915112345701", "+4915112345703"],
            "child_groups": [smart["id"]],
        }))
        .await;
    assert_eq!(parent["size"], 2);
    let parent_id = parent["id"].as_str().unwrap();
    contact(&app, json!({"phone": "+4915112345704", "gender": "female"})).await;
    assert_eq!(group(&app, parent_id).await["size"], 3);
    assert_eq!(
        app.member_numbers(parent_id).await,
        ["+4915112345701", "+4915112345703", "+4915112345704"]
    );
    // Copying a smart group's members into a static group copies who matches now.
    let copy = app.create_group(json!({"name": "Snapshot"})).await;
    let copied = app
        .send_json(
            Method::PATCH,
            &format!("/api/contactgroups/{}", copy["id"].as_str().unwrap()),
            &json!({"add_from_group": smart["id"]}),
        )
        .await;
    assert_eq!(copied.json::<Value>().await.unwrap()["size"], 2);
}

async fn rules_are_checked_and_stay_data(app: TestApp) {
    let invalid = app
        .send_json(
            Method::POST,
            "/api/contactgroups",
            &json!({"name": "Bad", "rule": "country = "}),
        )
        .await;
    assert_eq!(invalid.status(), 400);
    let problem: Value = invalid.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "rule");
    assert!(
        problem["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("character 10")
    );
    let both = app
        .send_json(
            Method::POST,
            "/api/contactgroups",
            &json!({"name": "Both", "rule": "opted_out", "members": ["+14155550801"]}),
        )
        .await;
    assert_eq!(both.status(), 400);
    // SQL in a rule is only ever a value.
    contact(
        &app,
        json!({"phone": "+14155550802", "first_name": "Robert"}),
    )
    .await;
    let hostile = app
        .create_group(json!({
            "name": "Hostile",
            "rule": "first_name = \"x\\\"); DROP TABLE contacts; --\" or fields.a = \"' OR 1=1 --\"",
        }))
        .await;
    assert_eq!(hostile["size"], 0);
    let contacts: Value = app
        .get("/api/contacts?count=true")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(contacts["count"], 1);
}
