//! Tenant isolation on every route, found from the OpenAPI document the router generates, so a
//! new route is covered without editing this test.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(every_route_keeps_plans_apart);

/// Every operation that needs a token, as `(method, path template)`.
async fn secured_operations(app: &TestApp) -> Vec<(Method, String)> {
    let document: Value = app
        .client
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if operation.get("security").is_none() {
                continue;
            }
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            operations.push((method, path.clone()));
        }
    }
    assert!(
        operations.len() >= 12,
        "too few routes found: {operations:?}"
    );
    operations
}

async fn every_route_keeps_plans_apart(app: TestApp) {
    // The other plan owns a group; this app's token must not reach it by any route.
    let (other_plan, other_token) = app.create_plan(None).await;
    let theirs: Value = app
        .client
        .post(format!("{}/api/contactgroups", app.address))
        .bearer_auth(&other_token)
        .json(&json!({"name": "Theirs", "members": ["+14155551234"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let their_group = theirs["id"].as_str().unwrap();
    let their_contact: Value = app
        .client
        .post(format!("{}/api/contacts", app.address))
        .bearer_auth(&other_token)
        .json(&json!({"phone": "+14155554321", "first_name": "Theirs"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let their_contact = their_contact["id"].as_str().unwrap();
    let their_batch: Value = app
        .client
        .post(format!("{}/api/batches", app.address))
        .bearer_auth(&other_token)
        .json(&json!({"to": [their_group], "body": "Theirs", "send_at": "2999-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let their_batch = their_batch["id"].as_str().unwrap();
    let their_webhook: Value = app
        .client
        .post(format!("{}/api/webhooks", app.address))
        .bearer_auth(&other_token)
        .json(&json!({"url": "https://example.com/theirs", "events": ["batch.sent"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let their_webhook = their_webhook["id"].as_str().unwrap();

    for (method, template) in secured_operations(&app).await {
        let contacts = template.starts_with("/api/contacts");
        let batches = template.contains("/batches");
        let webhooks = template.starts_with("/api/webhooks");
        // A body the route accepts, so that only the ids decide the outcome.
        let body = if webhooks {
            json!({"description": "x"})
        } else if contacts {
            json!({"phone": "+14155559876"})
        } else if batches {
            json!({"to": ["+14155559876"], "body": "x", "send_at": "2999-01-01T00:00:00Z"})
        } else if template.ends_with("/members") {
            json!({"numbers": ["+14155559876"]})
        } else if method == Method::PUT {
            // A replace names the whole member list.
            json!({"name": "x", "members": []})
        } else {
            json!({"name": "x"})
        };
        let their_id = if webhooks {
            their_webhook
        } else if contacts {
            their_contact
        } else if batches {
            their_batch
        } else {
            their_group
        };
        let fill = |plan: &str| {
            template
                .replace("{service_plan_id}", plan)
                .replace("{group_id}", their_id)
                .replace("{batch_id}", their_id)
                .replace("{id}", their_id)
                .replace("{event_id}", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
        };
        // No token: 401, whatever the route.
        let anonymous = app
            .client
            .request(
                method.clone(),
                format!("{}{}", app.address, fill(&app.plan_id)),
            )
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            anonymous.status(),
            401,
            "{method} {template} without a token"
        );

        if template.contains("{service_plan_id}") {
            // Their plan in the path: 403.
            let foreign = app
                .request(method.clone(), &fill(&other_plan))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(foreign.status(), 403, "{method} {template} with their plan");
        }
        let own_path = fill(&app.plan_id);
        let response = app
            .request(method.clone(), &own_path)
            .json(&body)
            .send()
            .await
            .unwrap();
        if template.contains("{id}")
            || template.contains("{group_id}")
            || template.contains("{batch_id}")
        {
            // Their group or contact under our plan: as if it did not exist.
            assert_eq!(response.status(), 404, "{method} {template} with their id");
        } else {
            // Collections: our view never contains their records (a body the route does not
            // take may be refused, but never with a server error).
            let status = response.status();
            assert!(status.as_u16() < 500, "{method} {template}: {status}");
            let text = response.text().await.unwrap();
            assert!(
                !text.contains(their_group)
                    && !text.contains(their_contact)
                    && !text.contains(their_batch)
                    && !text.contains(their_webhook),
                "{method} {template} leaked {text}"
            );
        }
    }

    // Bulk routes naming their ids in the body reach nothing.
    let deleted: Value = app
        .send_json(
            Method::DELETE,
            "/api/contacts",
            &json!({"ids": [their_contact]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["deleted"], 0);
    for method in [Method::POST, Method::DELETE] {
        let response = app
            .send_json(
                method.clone(),
                "/api/contactgroups/members",
                &json!({"contact_ids": [their_contact], "group_ids": [their_group]}),
            )
            .await;
        assert_eq!(
            response.status(),
            400,
            "{method} memberships with their ids"
        );
    }
    let copy = app.create_group(json!({"name": "Mine"})).await;
    let response = app
        .send_json(
            Method::PATCH,
            &format!("/api/contactgroups/{}", copy["id"].as_str().unwrap()),
            &json!({"add_from_group": their_group}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let searched: Value = app
        .get(&format!("/api/contacts?group={their_group}&count=true"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(searched["count"], 0);

    // Their group is untouched.
    let after: Value = app
        .client
        .get(format!("{}/api/contactgroups/{their_group}", app.address))
        .bearer_auth(&other_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["name"], "Theirs");
    assert_eq!(after["size"], 1);
    assert_eq!(after["status"], "ACTIVE");
    let contact_after: Value = app
        .client
        .get(format!("{}/api/contacts/{their_contact}", app.address))
        .bearer_auth(&other_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(contact_after["first_name"], "Theirs");
    let batch_after: Value = app
        .client
        .get(format!("{}/api/batches/{their_batch}", app.address))
        .bearer_auth(&other_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(batch_after["status"], "scheduled");
}
