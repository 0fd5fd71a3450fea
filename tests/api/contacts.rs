//! The address book under `/api/contacts` and bulk memberships.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    contacts_are_created_read_changed_and_deleted,
    a_phone_number_belongs_to_one_contact,
    changing_a_phone_keeps_the_groups,
    opting_out_and_in_is_stamped,
    bulk_opt_outs_are_recorded_and_exports_narrow,
    deleting_contacts_updates_their_groups,
    search_filters_combine,
    search_pages_by_cursor_and_number,
    bad_contact_input_names_the_field,
    bulk_memberships_are_all_or_nothing,
    concurrent_creates_of_one_number_make_one_contact,
    genders_have_one_spelling_and_match_however_typed,
    genders_stored_before_are_respelled_by_the_migration,
    common_and_rare_values_page_alike,
    cursors_hold_through_ties_and_deletions,
    names_beyond_ascii_sort_and_match_lower_cased,
    cursors_hold_where_ids_and_keys_disagree,
    cursors_are_sealed_to_their_plan,
);

async fn create(app: &TestApp, body: Value) -> Value {
    let response = app.send_json(Method::POST, "/api/contacts", &body).await;
    assert_eq!(response.status(), 201, "create {body}");
    response.json().await.unwrap()
}

async fn patch(app: &TestApp, id: &str, body: Value) -> Value {
    let response = app
        .send_json(Method::PATCH, &format!("/api/contacts/{id}"), &body)
        .await;
    assert_eq!(response.status(), 200, "PATCH {body}");
    response.json().await.unwrap()
}

async fn contacts_are_created_read_changed_and_deleted(app: TestApp) {
    // The plan's default region is US.
    let created = create(
        &app,
        json!({
            "phone": "(415) 555-2671", "first_name": " Ada ", "last_name": "Lovelace",
            "email": "Ada@Example.COM", "gender": "female",
            "fields": {"plan": "gold", "age": 36, "vip": true},
        }),
    )
    .await;
    assert_eq!(created["phone"], "+14155552671");
    assert_eq!(created["first_name"], "Ada");
    assert_eq!(created["email"], "Ada@example.com");
    assert_eq!(created["valid"], true);
    assert_eq!(created["country"], "US");
    assert_eq!(
        created["fields"],
        json!({"plan": "gold", "age": 36, "vip": true})
    );
    assert_eq!(created["opted_out"], false);
    let id = created["id"].as_str().unwrap();
    let path = format!("/api/contacts/{id}");

    let read: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(read, created);

    let changed = patch(
        &app,
        id,
        json!({"last_name": null, "fields": {"plan": "silver"}}),
    )
    .await;
    assert_eq!(changed["last_name"], Value::Null);
    assert_eq!(changed["first_name"], "Ada");
    assert_eq!(changed["fields"], json!({"plan": "silver"}));

    let replaced = app
        .send_json(Method::PUT, &path, &json!({"phone": "+447400123456"}))
        .await;
    assert_eq!(replaced.status(), 200);
    let replaced: Value = replaced.json().await.unwrap();
    assert_eq!(replaced["phone"], "+447400123456");
    assert_eq!(replaced["first_name"], Value::Null);
    assert_eq!(replaced["fields"], json!({}));
    assert_eq!(replaced["number_type"], "mobile");
    assert_eq!(replaced["channels"], json!(["sms"]));
    assert_eq!(replaced["created_at"], created["created_at"]);

    assert_eq!(app.delete(&path).await.status(), 204);
    assert_eq!(app.get(&path).await.status(), 404);
    assert_eq!(app.delete(&path).await.status(), 404);
    assert_eq!(app.get("/api/contacts/nonsense").await.status(), 404);
}

async fn a_phone_number_belongs_to_one_contact(app: TestApp) {
    let first = create(&app, json!({"phone": "+14155550001"})).await;
    let response = app
        .send_json(
            Method::POST,
            "/api/contacts",
            &json!({"phone": "415-555-0001"}),
        )
        .await;
    assert_eq!(response.status(), 409);
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains(first["id"].as_str().unwrap())
    );
    let second = create(&app, json!({"phone": "+14155550002"})).await;
    let response = app
        .send_json(
            Method::PATCH,
            &format!("/api/contacts/{}", second["id"].as_str().unwrap()),
            &json!({"phone": "+14155550001"}),
        )
        .await;
    assert_eq!(response.status(), 409);
    // A group member added by number is the same contact.
    let group = app
        .create_group(json!({"name": "G", "members": ["+1 415 555 0001"]}))
        .await;
    let members: Value = app
        .get(&format!(
            "/api/contactgroups/{}/members",
            group["id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(members["members"][0]["id"], first["id"]);
}

async fn changing_a_phone_keeps_the_groups(app: TestApp) {
    let group = app
        .create_group(json!({"name": "Team", "members": ["+14155550101"]}))
        .await;
    let group_id = group["id"].as_str().unwrap();
    let page: Value = app
        .get(&format!("/api/contactgroups/{group_id}/members"))
        .await
        .json()
        .await
        .unwrap();
    let contact_id = page["members"][0]["id"].as_str().unwrap().to_owned();
    patch(
        &app,
        &contact_id,
        json!({"phone": "+14155550199", "first_name": "Moved"}),
    )
    .await;
    assert_eq!(app.member_numbers(group_id).await, ["+14155550199"]);
    let with_groups: Value = app
        .get(&format!("/api/contacts/{contact_id}?include=groups"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        with_groups["groups"],
        json!([{"id": group_id, "name": group["name"], "status": "ACTIVE"}])
    );
}

async fn opting_out_and_in_is_stamped(app: TestApp) {
    let contact = create(&app, json!({"phone": "+14155550201"})).await;
    let id = contact["id"].as_str().unwrap();
    let out = patch(
        &app,
        id,
        json!({"opted_out": true, "opted_out_reason": "asked by phone"}),
    )
    .await;
    assert_eq!(out["opted_out"], true);
    assert_eq!(out["opted_out_reason"], "asked by phone");
    let stamped = out["opted_out_at"].as_str().unwrap().to_owned();
    // Staying out keeps the original time.
    let again = patch(&app, id, json!({"first_name": "Still out"})).await;
    assert_eq!(again["opted_out_at"], stamped.as_str());
    let back = patch(&app, id, json!({"opted_out": false})).await;
    assert_eq!(back["opted_out"], false);
    assert_eq!(back["opted_out_at"], Value::Null);
    assert_eq!(back["opted_out_reason"], Value::Null);
}

async fn bulk_opt_outs_are_recorded_and_exports_narrow(app: TestApp) {
    let a = create(&app, json!({"phone": "+14155550211", "last_name": "Ames"})).await;
    let b = create(&app, json!({"phone": "+14155550212", "last_name": "Amos"})).await;
    let c = create(&app, json!({"phone": "+442079460213", "last_name": "Bell"})).await;
    let id = |contact: &Value| contact["id"].as_str().unwrap().to_owned();
    patch(&app, &id(&b), json!({"opted_out": true})).await;
    let response = app
        .send_json(
            Method::POST,
            "/api/contacts/opt-out",
            &json!({"ids": [id(&a), id(&b), "01ARZ3NDEKTSV4RRFFQ69G5FAV"], "reason": "asked in the shop"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    // b was out already; the unknown id is ignored.
    assert_eq!(body["opted_out"], 1);
    let a_now: Value = app
        .get(&format!("/api/contacts/{}", id(&a)))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a_now["opted_out"], true);
    assert_eq!(a_now["opted_out_reason"], "asked in the shop");
    let history: Value = app
        .get(&format!("/api/contacts/{}/consent", id(&a)))
        .await
        .json()
        .await
        .unwrap();
    let events = history["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{history}");
    assert_eq!(events[0]["event"], "opt_out");
    assert_eq!(events[0]["source"], "api");
    let refused = app
        .send_json(
            Method::POST,
            "/api/contacts/opt-out",
            &json!({"ids": ["nope"], "reason": ""}),
        )
        .await;
    assert_eq!(refused.status(), 400);
    let problem: Value = refused.json().await.unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|error| error["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["ids[0]", "reason"], "{problem}");

    // Exports narrowed the way the contact search narrows: by ids, a name, a number prefix.
    let numbers = |file: Vec<u8>| -> Vec<String> {
        let text = String::from_utf8(file).unwrap();
        let mut found: Vec<String> = text
            .lines()
            .skip(1)
            .map(|line| line.split(',').next().unwrap().to_owned())
            .collect();
        found.sort();
        found
    };
    let by_ids = crate::imports::export(&app, json!({"contact_ids": [id(&a), id(&c)]})).await;
    assert_eq!(numbers(by_ids), ["+14155550211", "+442079460213"]);
    let by_name = crate::imports::export(&app, json!({"name": "am"})).await;
    assert_eq!(numbers(by_name), ["+14155550211", "+14155550212"]);
    let by_phone = crate::imports::export(&app, json!({"phone": "44"})).await;
    assert_eq!(numbers(by_phone), ["+442079460213"]);
    let bad = app
        .send_json(Method::POST, "/api/exports", &json!({"contact_ids": ["x"]}))
        .await;
    assert_eq!(bad.status(), 400);
    // Listed, an export of ids says how many, not which.
    let list: Value = app.get("/api/exports").await.json().await.unwrap();
    let by_ids = list["exports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|export| export["contact_count"] == 2)
        .unwrap();
    assert!(by_ids["selection"].get("contact_ids").is_none(), "{by_ids}");
}

async fn deleting_contacts_updates_their_groups(app: TestApp) {
    let group = app
        .create_group(json!({
            "name": "G", "members": ["+14155550301", "+14155550302", "+14155550303"],
        }))
        .await;
    let group_id = group["id"].as_str().unwrap();
    let parent = app
        .create_group(json!({"name": "Parent", "child_groups": [group_id]}))
        .await;
    let page: Value = app
        .get(&format!("/api/contactgroups/{group_id}/members"))
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<String> = page["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    let response = app
        .send_json(
            Method::DELETE,
            "/api/contacts",
            &json!({"ids": [ids[0], ids[1], "01ARZ3NDEKTSV4RRFFQ69G5FAV"]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let deleted: Value = response.json().await.unwrap();
    assert_eq!(deleted["deleted"], 2);
    let group_now: Value = app
        .get(&format!("/api/contactgroups/{group_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(group_now["size"], 1);
    assert_ne!(group_now["modified_at"], group["modified_at"]);
    let parent_now: Value = app
        .get(&format!(
            "/api/contactgroups/{}",
            parent["id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(parent_now["size"], 1);
    let malformed = app
        .send_json(Method::DELETE, "/api/contacts", &json!({"ids": ["nope"]}))
        .await;
    assert_eq!(malformed.status(), 400);
    let problem: Value = malformed.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "ids[0]");
}

/// Seeds a small address book and returns the ids by first name.
async fn seed(app: &TestApp) -> std::collections::HashMap<String, String> {
    let people = [
        json!({"phone": "+4915112345601", "first_name": "Anna", "last_name": "Schmidt", "gender": "female",
               "email": "anna@example.de", "fields": {"plan": "gold", "age": 31}}),
        json!({"phone": "+4930123456", "first_name": "Bernd", "last_name": "Anders", "gender": "male",
               "fields": {"plan": "silver", "age": 45}}),
        json!({"phone": "+14155550401", "first_name": "Carla", "last_name": "Diaz", "gender": "female",
               "fields": {"plan": "gold", "age": 27}, "opted_out": true}),
        json!({"phone": "+447400123401", "first_name": "Dan", "last_name": "Brown",
               "fields": {"plan": "bronze"}}),
        json!({"phone": "+4915112345605", "first_name": "Eva", "last_name": "Annaberg"}),
    ];
    let mut ids = std::collections::HashMap::new();
    for person in people {
        let contact = create(app, person).await;
        ids.insert(
            contact["first_name"].as_str().unwrap().to_owned(),
            contact["id"].as_str().unwrap().to_owned(),
        );
    }
    ids
}

async fn first_names(app: &TestApp, query: &str) -> Vec<String> {
    let response = app
        .get(&format!("/api/contacts?order_by=name&{query}"))
        .await;
    assert_eq!(response.status(), 200, "{query}");
    let list: Value = response.json().await.unwrap();
    list["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["first_name"].as_str().unwrap().to_owned())
        .collect()
}

async fn search_filters_combine(app: TestApp) {
    let ids = seed(&app).await;
    let group = app
        .create_group(json!({"name": "Some", "members": ["+4930123456", "+447400123401"]}))
        .await;
    for (query, expected) in [
        ("", vec!["Anna", "Bernd", "Carla", "Dan", "Eva"]),
        ("name=ann", vec!["Anna", "Eva"]),
        ("name=anders", vec!["Bernd"]),
        ("name=bernd%20and", vec!["Bernd"]),
        ("name_contains=ROW", vec!["Dan"]),
        ("phone=%2B49151", vec!["Anna", "Eva"]),
        ("phone=4930", vec!["Bernd"]),
        ("email=ANNA@EXAMPLE.DE", vec!["Anna"]),
        ("gender=female", vec!["Anna", "Carla"]),
        ("number_type=fixed_line", vec!["Bernd"]),
        ("channel=sms", vec!["Anna", "Carla", "Dan", "Eva"]),
        ("valid=true", vec!["Anna", "Bernd", "Carla", "Dan", "Eva"]),
        ("valid=false", vec![]),
        ("opted_out=true", vec!["Carla"]),
        ("opted_out=false&gender=female", vec!["Anna"]),
        ("fields.plan=gold", vec!["Anna", "Carla"]),
        ("fields.plan=gold&opted_out=false", vec!["Anna"]),
        (
            &format!("group={}", group["id"].as_str().unwrap()),
            vec!["Bernd", "Dan"],
        ),
        ("q=fields.age%20%3E%2030", vec!["Anna", "Bernd"]),
        (
            "q=country%20%3D%20%22DE%22%20and%20not%20fields.plan%20in%20(%22gold%22)",
            vec!["Bernd", "Eva"],
        ),
        ("q=last_name%20%3D%20%22x%27%20OR%201%3D1%20--%22", vec![]),
    ] {
        assert_eq!(first_names(&app, query).await, expected, "{query}");
    }
    let descending = first_names(&app, "direction=desc").await;
    assert_eq!(descending, ["Eva", "Dan", "Carla", "Bernd", "Anna"]);
    assert_eq!(ids.len(), 5);
    for bad in [
        "order_by=age",
        "channel=fax",
        "valid=maybe",
        "group=x",
        "q=country%20%3D",
        "colour=red",
        "limit=0",
    ] {
        let response = app.get(&format!("/api/contacts?{bad}")).await;
        assert_eq!(response.status(), 400, "{bad}");
        let problem: Value = response.json().await.unwrap();
        assert!(
            problem["errors"][0]["field"].is_string(),
            "{bad}: {problem}"
        );
    }
}

async fn search_pages_by_cursor_and_number(app: TestApp) {
    seed(&app).await;
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(cursor) => format!("/api/contacts?order_by=name&limit=2&next={cursor}"),
            None => "/api/contacts?order_by=name&limit=2&count=true".to_owned(),
        };
        let page: Value = app.get(&path).await.json().await.unwrap();
        if next.is_none() {
            assert_eq!(page["count"], 5);
        }
        for contact in page["contacts"].as_array().unwrap() {
            seen.push(contact["first_name"].as_str().unwrap().to_owned());
        }
        match page["next"].as_str() {
            Some(cursor) => next = Some(cursor.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, ["Anna", "Bernd", "Carla", "Dan", "Eva"]);
    assert_eq!(
        first_names(&app, "page=1&page_size=2").await,
        ["Carla", "Dan"]
    );
    // Newest first by default.
    let newest: Value = app.get("/api/contacts?limit=1").await.json().await.unwrap();
    assert_eq!(newest["contacts"][0]["first_name"], "Eva");

    // Members of a tree whose groups overlap are each one row, on numbered pages too.
    let child = app
        .create_group(
            json!({"name": "Child", "members": ["+4930123456", "+14155550401", "+447400123401"]}),
        )
        .await;
    let parent = app
        .create_group(json!({
            "name": "Parent", "members": ["+4915112345601", "+4930123456", "+14155550401"],
            "child_groups": [child["id"]],
        }))
        .await;
    let group = format!("group={}", parent["id"].as_str().unwrap());
    assert_eq!(
        first_names(&app, &format!("{group}&page=0&page_size=2")).await,
        ["Anna", "Bernd"]
    );
    assert_eq!(
        first_names(&app, &format!("{group}&page=1&page_size=2")).await,
        ["Carla", "Dan"]
    );
    assert!(
        first_names(&app, &format!("{group}&page=2&page_size=2"))
            .await
            .is_empty()
    );
}

/// Pages every contact of `query` by cursor, `limit` at a time; `between` runs after each page
/// with the ids seen so far.
async fn page_ids(
    app: &TestApp,
    query: &str,
    limit: usize,
    mut between: impl AsyncFnMut(&[String]),
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let path = match &next {
            Some(cursor) => format!("/api/contacts?{query}&limit={limit}&next={cursor}"),
            None => format!("/api/contacts?{query}&limit={limit}"),
        };
        let response = app.get(&path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        let page: Value = response.json().await.unwrap();
        for contact in page["contacts"].as_array().unwrap() {
            seen.push(contact["id"].as_str().unwrap().to_owned());
        }
        between(&seen).await;
        match page["next"].as_str() {
            Some(cursor) => next = Some(cursor.to_owned()),
            None => return seen,
        }
    }
}

/// Pages `query` two at a time, deleting the last contact of each page before the next is
/// asked for; returns every contact seen.
async fn page_ids_deleting_each_last(app: &TestApp, query: &str) -> Vec<String> {
    let mut deleted: Vec<String> = Vec::new();
    page_ids(app, query, 2, async |seen: &[String]| {
        if let Some(last) = seen.last()
            && !deleted.contains(last)
        {
            let response = app.delete(&format!("/api/contacts/{last}")).await;
            assert_eq!(response.status(), 204);
            deleted.push(last.clone());
        }
    })
    .await
}

/// Seven contacts named `Sam {last}`, numbered from `first_phone`, in order of creation.
async fn namesakes(app: &TestApp, last: &str, first_phone: u64) -> Vec<String> {
    let mut created = Vec::new();
    for n in 0..7 {
        let phone = format!("+1415555{:04}", first_phone + n);
        let body = json!({"phone": phone, "first_name": "Sam", "last_name": last});
        created.push(create(app, body).await["id"].as_str().unwrap().to_owned());
    }
    created
}

/// Contacts that share a sort key are ordered by creation, page after page, and a cursor whose
/// last contact was deleted in between still continues where it stood.
async fn cursors_hold_through_ties_and_deletions(app: TestApp) {
    let created = namesakes(&app, "Lee", 600).await;
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    for (query, expected) in [
        ("order_by=name", &created),
        ("order_by=name&direction=desc", &newest_first),
        ("order_by=created_at&direction=asc", &created),
        ("order_by=created_at", &newest_first),
        ("order_by=modified_at&direction=asc", &created),
    ] {
        for limit in [2, 3] {
            let seen = page_ids(&app, query, limit, async |_| {}).await;
            assert_eq!(&seen, expected, "{query}, {limit} a page");
        }
    }

    for (round, (last, query)) in [
        ("Kim", "order_by=name"),
        ("Ng", "order_by=name&direction=desc"),
        ("Ito", "order_by=created_at"),
        ("Oz", "order_by=created_at&direction=asc"),
    ]
    .into_iter()
    .enumerate()
    {
        let created = namesakes(&app, last, 700 + 10 * round as u64).await;
        let query = format!("{query}&name={last}");
        let before = page_ids(&app, &query, 50, async |_| {}).await;
        assert_eq!(before.len(), created.len());
        let seen = page_ids_deleting_each_last(&app, &query).await;
        assert_eq!(seen, before, "{query}: every contact once, in order");
    }
}

/// Names whose capitals lie outside ASCII keep their lower-cased sort names in the row; the
/// others' are rebuilt by the database. Both kinds order, page and match as one list, by the
/// Unicode lower case of "first last" (or "last first"), in byte order.
async fn names_beyond_ascii_sort_and_match_lower_cased(app: TestApp) {
    let people = [
        ("Émile", Some("Zola")),
        ("eve", Some("Adams")),
        ("ÖZIL", None),
        ("Ebba", Some("Ångström")),
        ("Élodie", Some("martin")),
        ("EDDA", Some("Öst")),
    ];
    let mut ids = std::collections::HashMap::new();
    for (n, (first, last)) in people.iter().enumerate() {
        let body = json!({"phone": format!("+1415555{:04}", 800 + n), "first_name": first,
                          "last_name": last});
        ids.insert(
            *first,
            create(&app, body).await["id"].as_str().unwrap().to_owned(),
        );
    }
    let in_order = |names: &[&str]| names.iter().map(|n| ids[n].clone()).collect::<Vec<_>>();
    // "ebba ångström" < "edda öst" < "eve adams" < "élodie martin" < "émile zola" < "özil":
    // in UTF-8, 'é' is C3 A9 and 'ö' C3 B6, both after every ASCII letter.
    let by_name = in_order(&["Ebba", "EDDA", "eve", "Élodie", "Émile", "ÖZIL"]);
    for limit in [1, 2, 4] {
        assert_eq!(
            page_ids(&app, "order_by=name", limit, async |_| {}).await,
            by_name
        );
    }
    let mut descending = by_name.clone();
    descending.reverse();
    assert_eq!(
        page_ids(&app, "order_by=name&direction=desc", 2, async |_| {}).await,
        descending
    );
    for (query, expected) in [
        ("name=%C3%A9L", vec!["Élodie"]),
        ("name=%C3%89MILE%20Z", vec!["Émile"]),
        ("name=zola", vec!["Émile"]),
        ("name=%C3%B6", vec!["EDDA", "ÖZIL"]),
        ("name=e", vec!["Ebba", "EDDA", "eve"]),
        ("name_contains=STR", vec!["Ebba"]),
        ("name_contains=%C3%B6s", vec!["EDDA"]),
    ] {
        let seen = page_ids(&app, &format!("order_by=name&{query}"), 10, async |_| {}).await;
        assert_eq!(seen, in_order(&expected), "{query}");
    }
}

/// A contact's id as the database stores it: the ULID's 16 bytes.
pub fn stored_id(id: &str) -> Vec<u8> {
    ulid::Ulid::from_string(id).unwrap().to_bytes().to_vec()
}

/// Runs statements on the app's database directly, to set up what no route can.
pub async fn run_sql(app: &TestApp, statements: &[String]) {
    if app.database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
        for statement in statements {
            let statement = sqlx::AssertSqlSafe(statement.clone());
            sqlx::raw_sql(statement).execute(&pool).await.unwrap();
        }
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
        for statement in statements {
            let statement = sqlx::AssertSqlSafe(statement.clone());
            sqlx::raw_sql(statement).execute(&pool).await.unwrap();
        }
        pool.close().await;
    }
}

/// Gives the contacts listed (in key order, either way) each other's ids, the first the last's,
/// so that id order is the reverse of key order.
pub async fn swap_id_order(app: &TestApp, ids: &[String]) {
    let literal = |id: &[u8]| {
        let hex = hex::encode(id);
        if app.database_url.starts_with("sqlite:") {
            format!("unhex('{hex}')")
        } else {
            format!("decode('{hex}', 'hex')")
        }
    };
    // By way of ids no contact has.
    let moving = |n: usize| literal(&[0xff - n as u8; 16]);
    let mut statements = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let id = literal(&stored_id(id));
        statements.push(format!(
            "UPDATE contacts SET id = {} WHERE id = {id}",
            moving(n)
        ));
    }
    for (n, id) in ids.iter().rev().enumerate() {
        let id = literal(&stored_id(id));
        statements.push(format!(
            "UPDATE contacts SET id = {id} WHERE id = {}",
            moving(n)
        ));
    }
    run_sql(app, &statements).await;
}

/// A cursor's JSON, decoded from its hex.
fn cursor_json(cursor: &str) -> Value {
    serde_json::from_slice(&hex::decode(cursor).unwrap()).unwrap()
}

/// Contact ids do not follow creation order everywhere (an import's ids carry its start, and
/// two instances draw ids apart): a cursor continues after its contact even when that contact
/// was deleted and the ids around it run the other way.
async fn cursors_hold_where_ids_and_keys_disagree(app: TestApp) {
    let created = namesakes(&app, "Kay", 800).await;
    // The first contact takes the last one's id, and so on.
    swap_id_order(&app, &created).await;
    let in_creation_order: Vec<String> = created.iter().rev().cloned().collect();
    for query in [
        "order_by=name&name=Kay",
        "order_by=created_at&direction=asc&name=Kay",
    ] {
        assert_eq!(
            page_ids(&app, query, 50, async |_| {}).await,
            in_creation_order,
            "{query}"
        );
    }
    let seen = page_ids_deleting_each_last(&app, "order_by=name&name=Kay").await;
    assert_eq!(seen, in_creation_order, "every contact once, in order");
}

/// A contact cursor is readable by no plan and usable by its own only; cursors of the earlier
/// form (the last contact's id) still page on.
async fn cursors_are_sealed_to_their_plan(app: TestApp) {
    let created = namesakes(&app, "Ray", 900).await;
    let first: Value = app
        .get("/api/contacts?order_by=name&limit=3")
        .await
        .json()
        .await
        .unwrap();
    let cursor = first["next"].as_str().unwrap().to_owned();
    let decoded = cursor_json(&cursor);
    let tie = decoded[1].as_str().unwrap();
    assert_eq!(tie.len(), 32, "a sealed key, not an id: {decoded}");
    assert!(!created.iter().any(|id| id == tie));

    let refused = |response: reqwest::Response| async move {
        assert_eq!(response.status(), 400);
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], "next", "{problem}");
    };
    let mut altered = tie.as_bytes().to_vec();
    altered[5] = if altered[5] == b'0' { b'1' } else { b'0' };
    let altered = json!([decoded[0], String::from_utf8(altered).unwrap()]);
    let altered = hex::encode(altered.to_string());
    refused(
        app.get(&format!(
            "/api/contacts?order_by=name&limit=3&next={altered}"
        ))
        .await,
    )
    .await;
    let (_, other_token) = app.create_plan(None).await;
    refused(
        app.client
            .get(format!(
                "{}/api/contacts?order_by=name&limit=3&next={cursor}",
                app.address
            ))
            .bearer_auth(other_token)
            .send()
            .await
            .unwrap(),
    )
    .await;

    let third = first["contacts"][2]["id"].as_str().unwrap();
    let earlier_form = hex::encode(json!([decoded[0], third]).to_string());
    let rest: Value = app
        .get(&format!(
            "/api/contacts?order_by=name&limit=50&next={earlier_form}"
        ))
        .await
        .json()
        .await
        .unwrap();
    let rest: Vec<&str> = rest["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|contact| contact["id"].as_str().unwrap())
        .collect();
    assert_eq!(rest, created[3..]);
}

async fn bad_contact_input_names_the_field(app: TestApp) {
    let response = app
        .send_json(
            Method::POST,
            "/api/contacts",
            &json!({
                "phone": "12", "email": "not-an-email", "first_name": "",
                "fields": {"tags": ["a"]}, "default_region": "ZZ",
            }),
        )
        .await;
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for expected in ["default_region", "phone", "email", "first_name", "fields"] {
        assert!(
            fields.contains(&expected),
            "{expected} missing from {fields:?}"
        );
    }
    let missing_phone = app
        .send_json(Method::POST, "/api/contacts", &json!({"first_name": "x"}))
        .await;
    assert_eq!(missing_phone.status(), 400);
    let listed: Value = app
        .get("/api/contacts?count=true")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["count"], 0);
}

async fn bulk_memberships_are_all_or_nothing(app: TestApp) {
    let a = create(&app, json!({"phone": "+14155550501"})).await;
    let b = create(&app, json!({"phone": "+14155550502"})).await;
    let g1 = app.create_group(json!({"name": "One"})).await;
    let g2 = app
        .create_group(json!({"name": "Two", "members": ["+14155550501"]}))
        .await;
    let body = json!({"contact_ids": [a["id"], b["id"]], "group_ids": [g1["id"], g2["id"]]});
    let added = app
        .send_json(Method::POST, "/api/contactgroups/members", &body)
        .await;
    assert_eq!(added.status(), 200);
    assert_eq!(added.json::<Value>().await.unwrap()["changed"], 3);
    for group in [&g1, &g2] {
        let now: Value = app
            .get(&format!(
                "/api/contactgroups/{}",
                group["id"].as_str().unwrap()
            ))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(now["size"], 2);
    }
    let again = app
        .send_json(Method::POST, "/api/contactgroups/members", &body)
        .await;
    assert_eq!(again.json::<Value>().await.unwrap()["changed"], 0);

    // An unknown contact or group changes nothing at all.
    let g3 = app.create_group(json!({"name": "Three"})).await;
    let unknown_contact = app
        .send_json(
            Method::POST,
            "/api/contactgroups/members",
            &json!({"contact_ids": [a["id"], "01ARZ3NDEKTSV4RRFFQ69G5FAV"], "group_ids": [g3["id"]]}),
        )
        .await;
    assert_eq!(unknown_contact.status(), 400);
    let unknown_group = app
        .send_json(
            Method::POST,
            "/api/contactgroups/members",
            &json!({"contact_ids": [a["id"]], "group_ids": [g3["id"], "01ARZ3NDEKTSV4RRFFQ69G5FAV"]}),
        )
        .await;
    assert_eq!(unknown_group.status(), 400);
    let problem: Value = unknown_group.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "group_ids");
    let g3_now: Value = app
        .get(&format!(
            "/api/contactgroups/{}",
            g3["id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(g3_now["size"], 0);

    let removed = app
        .send_json(
            Method::DELETE,
            "/api/contactgroups/members",
            &json!({"contact_ids": [a["id"]], "group_ids": [g1["id"], g2["id"]]}),
        )
        .await;
    assert_eq!(removed.status(), 200);
    assert_eq!(removed.json::<Value>().await.unwrap()["changed"], 2);
    assert_eq!(
        app.member_numbers(g2["id"].as_str().unwrap()).await,
        ["+14155550502"]
    );
    // The contact itself stays.
    let still: Value = app
        .get(&format!("/api/contacts/{}", a["id"].as_str().unwrap()))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(still["phone"], "+14155550501");
}

async fn concurrent_creates_of_one_number_make_one_contact(app: TestApp) {
    let attempts = (0..12).map(|i| {
        let request = app
            .request(Method::POST, "/api/contacts")
            .json(&json!({"phone": "+14155550901", "first_name": format!("Try {i}")}));
        async move { request.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures::future::join_all(attempts).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
}

/// Returns once a session of the PostgreSQL database at `url` waits for a lock; fails with
/// `never` after 30 s.
pub async fn wait_for_a_lock(url: &str, never: &str) {
    use sqlx::Connection;
    let mut watcher = sqlx::PgConnection::connect(url).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut watcher)
        .await
        .unwrap();
        if waiting > 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{never}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// A membership written while its contact's number is being changed (the change not yet
/// committed), by contact id or copied from another group, gives the new number: the write waits
/// for the change (its foreign key locks the contact), and a membership holds the contact's key,
/// never a copy of its number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_memberships_written_during_a_renumbering_keep_the_new_number() {
    use sqlx::Connection;
    let Some(app) = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let contact = create(&app, json!({"phone": "+14155550601"})).await;
    let contact = contact["id"].as_str().unwrap().to_owned();
    let source = app.create_group(json!({"name": "Source"})).await;
    let added = app
        .send_json(
            Method::POST,
            "/api/contactgroups/members",
            &json!({"contact_ids": [contact], "group_ids": [source["id"]]}),
        )
        .await;
    assert_eq!(added.status(), 200);
    let mut admin = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();

    for (step, number) in ["+14155550602", "+14155550603"].into_iter().enumerate() {
        let target = app
            .create_group(json!({"name": format!("Target {step}")}))
            .await;
        let target = target["id"].as_str().unwrap().to_owned();
        let mut renumbering = admin.begin().await.unwrap();
        sqlx::query("UPDATE contacts SET phone = $1 WHERE id = $2")
            .bind(number)
            .bind(stored_id(&contact))
            .execute(&mut *renumbering)
            .await
            .unwrap();
        let write = async {
            if step == 0 {
                app.send_json(
                    Method::POST,
                    "/api/contactgroups/members",
                    &json!({"contact_ids": [contact], "group_ids": [target]}),
                )
                .await
            } else {
                app.send_json(
                    Method::PATCH,
                    &format!("/api/contactgroups/{target}"),
                    &json!({"add_from_group": source["id"]}),
                )
                .await
            }
        };
        // The write starts while the change is open; the change commits once the write waits
        // for it (so the write's statement began before the new number was committed).
        let url = app.database_url.clone();
        let commit = async move {
            wait_for_a_lock(&url, "the write never waited for the change of number").await;
            renumbering.commit().await.unwrap();
        };
        let (response, ()) = tokio::join!(write, commit);
        assert_eq!(response.status(), 200, "step {step}");
        let stored: String = sqlx::query_scalar(
            "SELECT c.phone FROM group_members m \
             JOIN contact_groups g ON g.key = m.grp JOIN contacts c ON c.key = m.contact \
             WHERE g.id = $1 AND c.id = $2",
        )
        .bind(&target)
        .bind(stored_id(&contact))
        .fetch_one(&mut admin)
        .await
        .unwrap();
        assert_eq!(stored, number, "step {step}");
        let streamed = app
            .get_text(&format!("/api/contactgroups/{target}/members"), "text/csv")
            .await;
        assert!(streamed.contains(number), "step {step}: {streamed}");
    }
}

/// Memberships are checked a statement at a time on PostgreSQL (migration 15), with a foreign
/// key's rules: one naming a missing contact is refused, and a contact deleted while a
/// membership of it is being added waits for the addition and then takes the membership along.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_memberships_follow_their_contacts_like_foreign_keys() {
    use sqlx::Connection;
    let Some(app) = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let contact = create(&app, json!({"phone": "+14155550701"})).await;
    let contact = contact["id"].as_str().unwrap().to_owned();
    let group = app.create_group(json!({"name": "Target"})).await;
    let group = group["id"].as_str().unwrap().to_owned();
    let mut admin = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    let refused = sqlx::query(
        "INSERT INTO group_members (grp, contact) \
         SELECT key, 987654321 FROM contact_groups WHERE id = $1",
    )
    .bind(&group)
    .execute(&mut admin)
    .await
    .unwrap_err();
    let code = refused.as_database_error().and_then(|e| e.code());
    assert_eq!(code.as_deref(), Some("23503"), "{refused}");

    let mut adding = admin.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO group_members (grp, contact) \
         SELECT g.key, c.key FROM contact_groups g, contacts c WHERE g.id = $1 AND c.id = $2",
    )
    .bind(&group)
    .bind(stored_id(&contact))
    .execute(&mut *adding)
    .await
    .unwrap();
    let url = app.database_url.clone();
    let path = format!("/api/contacts/{contact}");
    let delete = app.delete(&path);
    let commit = async move {
        wait_for_a_lock(&url, "the delete never waited for the addition").await;
        adding.commit().await.unwrap();
    };
    let (deleted, ()) = tokio::join!(delete, commit);
    assert_eq!(deleted.status(), 204);
    let orphans: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM group_members m \
         WHERE NOT EXISTS (SELECT 1 FROM contacts c WHERE c.key = m.contact)",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(orphans, 0);

    // Deleting a group takes its memberships along too.
    let kept = create(&app, json!({"phone": "+14155550702"})).await;
    let doomed = app
        .create_group(json!({"name": "Doomed", "members": ["+14155550702"]}))
        .await;
    let doomed = doomed["id"].as_str().unwrap();
    let purged = app
        .delete(&format!("/api/contactgroups/{doomed}?purge=true"))
        .await;
    assert!(purged.status().is_success(), "{}", purged.status());
    let left: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM group_members m JOIN contacts c ON c.key = m.contact WHERE c.id = $1",
    )
    .bind(stored_id(kept["id"].as_str().unwrap()))
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(left, 0);
}

/// A contact's plan is checked a statement at a time on PostgreSQL (migration 34), with a
/// foreign key's rules: a contact naming a missing plan is refused, a contact never moves to
/// another plan, and deleting a plan waits for a transaction adding a contact to it and then
/// takes that contact along, with its memberships.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_contacts_follow_their_plan_like_a_foreign_key() {
    use sqlx::Connection;
    let Some(app) = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let mut admin = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    let code = |error: sqlx::Error| {
        let code = error.as_database_error().and_then(|e| e.code());
        (code.map(|code| code.into_owned()), error.to_string())
    };
    let refused = sqlx::query(
        "INSERT INTO contacts (plan, id, phone, created_at, modified_at) \
         VALUES (987654321, '\\x01', '+14155550721', 0, 0)",
    )
    .execute(&mut admin)
    .await
    .unwrap_err();
    let (refused, message) = code(refused);
    assert_eq!(refused.as_deref(), Some("23503"), "{message}");

    let other: i64 = sqlx::query_scalar(
        "INSERT INTO plans (id, name, created_at) VALUES ('other-plan', 'Other', 0) RETURNING key",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    let contact = create(&app, json!({"phone": "+14155550722"})).await;
    let moved = sqlx::query("UPDATE contacts SET plan = $1 WHERE id = $2")
        .bind(other)
        .bind(stored_id(contact["id"].as_str().unwrap()))
        .execute(&mut admin)
        .await
        .unwrap_err();
    let (moved, message) = code(moved);
    assert_eq!(moved.as_deref(), Some("23503"), "{message}");

    // A contact added to the other plan, not yet committed, holds the plan's deletion back; the
    // deletion then removes it and its membership.
    let group: i64 = sqlx::query_scalar(
        "INSERT INTO contact_groups (plan_id, id, name, status, created_at, modified_at) \
         VALUES ('other-plan', 'OTHERGROUP', 'Other', 'ACTIVE', 0, 0) RETURNING key",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    let mut adding = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    let mut adding = adding.begin().await.unwrap();
    sqlx::query(
        "WITH added AS (INSERT INTO contacts (plan, id, phone, created_at, modified_at) \
         VALUES ($1, '\\x02', '+14155550723', 0, 0) RETURNING key) \
         INSERT INTO group_members (grp, contact) SELECT $2, key FROM added",
    )
    .bind(other)
    .bind(group)
    .execute(&mut *adding)
    .await
    .unwrap();
    let url = app.database_url.clone();
    let delete = async {
        sqlx::query("DELETE FROM plans WHERE id = 'other-plan'")
            .execute(&mut admin)
            .await
            .unwrap();
    };
    let commit = async move {
        wait_for_a_lock(&url, "the plan's deletion never waited for the contact").await;
        adding.commit().await.unwrap();
    };
    tokio::join!(delete, commit);
    let left: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM contacts WHERE plan = $1), \
                (SELECT COUNT(*) FROM group_members WHERE grp = $2)",
    )
    .bind(other)
    .bind(group)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert_eq!(left, (0, 0));
    // The app's own plan and contact are untouched.
    let id = contact["id"].as_str().unwrap();
    let kept = app.get(&format!("/api/contacts/{id}")).await;
    assert_eq!(kept.status(), 200);
}

/// Adding a number to a group while another transaction deletes its contact: the addition's
/// look-up waits for the delete (it locks the contacts it finds as the memberships' check
/// will), then finds no contact and makes a new one for the number. Before, it found the
/// contact, and the check at the membership insert failed the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_adding_a_number_whose_contact_is_being_deleted_makes_it_anew() {
    use sqlx::Connection;
    let Some(app) = crate::helpers::spawn_app(crate::helpers::Backend::Postgres).await else {
        return;
    };
    let contact = create(&app, json!({"phone": "+14155550711", "first_name": "Gone"})).await;
    let contact = contact["id"].as_str().unwrap().to_owned();
    let group = app.create_group(json!({"name": "Target"})).await;
    let group = group["id"].as_str().unwrap().to_owned();
    let mut admin = sqlx::PgConnection::connect(&app.database_url)
        .await
        .unwrap();
    let mut deleting = admin.begin().await.unwrap();
    sqlx::query("DELETE FROM contacts WHERE id = $1")
        .bind(stored_id(&contact))
        .execute(&mut *deleting)
        .await
        .unwrap();
    let url = app.database_url.clone();
    let body = json!({"add": ["+14155550711"]});
    let path = format!("/api/contactgroups/{group}");
    let add = app.send_json(Method::PATCH, &path, &body);
    let commit = async move {
        wait_for_a_lock(&url, "the addition never waited for the delete").await;
        deleting.commit().await.unwrap();
    };
    let (added, ()) = tokio::join!(add, commit);
    assert_eq!(added.status(), 200, "{}", added.text().await.unwrap());
    assert_eq!(app.member_numbers(&group).await, ["+14155550711"]);
    let found = app.get("/api/contacts?phone=%2B14155550711").await;
    let found: Value = found.json().await.unwrap();
    assert_eq!(
        found["contacts"].as_array().map(Vec::len),
        Some(1),
        "{found}"
    );
    assert_ne!(found["contacts"][0]["id"], contact.as_str());
    assert_eq!(found["contacts"][0]["first_name"], Value::Null);
}

async fn genders_have_one_spelling_and_match_however_typed(app: TestApp) {
    for (phone, name, gender, stored) in [
        ("+14155550601", "Ann", "F", "female"),
        ("+14155550602", "Bea", "Female", "female"),
        ("+14155550603", "Cid", "MALE", "male"),
        ("+14155550604", "Dov", "m", "male"),
        ("+14155550605", "Eli", "Non-Binary", "non-binary"),
    ] {
        let contact = create(
            &app,
            json!({"phone": phone, "first_name": name, "gender": gender}),
        )
        .await;
        assert_eq!(contact["gender"], stored, "{gender}");
    }
    for (query, expected) in [
        ("gender=female", vec!["Ann", "Bea"]),
        ("gender=Female", vec!["Ann", "Bea"]),
        ("gender=F", vec!["Ann", "Bea"]),
        ("gender=%20m%20", vec!["Cid", "Dov"]),
        ("gender=NON-BINARY", vec!["Eli"]),
        ("q=gender%20%3D%20%22F%22", vec!["Ann", "Bea"]),
        (
            "q=gender%20in%20(%22M%22%2C%20%22Non-binary%22)",
            vec!["Cid", "Dov", "Eli"],
        ),
    ] {
        assert_eq!(first_names(&app, query).await, expected, "{query}");
    }
    let ann = first_names(&app, "gender=f").await;
    assert_eq!(ann, ["Ann", "Bea"]);
    let listed: Value = app
        .get("/api/contacts?name=eli")
        .await
        .json()
        .await
        .unwrap();
    let eli = listed["contacts"][0]["id"].as_str().unwrap();
    assert_eq!(
        patch(&app, eli, json!({"gender": "F"})).await["gender"],
        "female"
    );
    // A smart group's rule is matched the same way.
    let smart = app
        .create_group(json!({"name": "Women", "rule": "gender = \"Female\""}))
        .await;
    assert_eq!(smart["size"], 3);
    assert_eq!(smart["rule"], "gender = \"Female\"");
}

/// The migration that brought the one spelling rewrites genders stored before it.
async fn genders_stored_before_are_respelled_by_the_migration(app: TestApp) {
    let mut ids = Vec::new();
    for phone in ["+14155550611", "+14155550612", "+14155550613"] {
        let contact = create(&app, json!({"phone": phone})).await;
        ids.push(contact["id"].as_str().unwrap().to_owned());
    }
    let before = ["F", "Male", "Other"];
    let sqlite = app.database_url.starts_with("sqlite:");
    let migration = if sqlite {
        include_str!("../../migrations/sqlite/0009_gender_spelling.sql")
    } else {
        include_str!("../../migrations/postgres/0009_gender_spelling.sql")
    };
    let update = "UPDATE contacts SET gender = $1 WHERE id = $2";
    if sqlite {
        let pool = sqlx::SqlitePool::connect(&app.database_url).await.unwrap();
        for (id, gender) in ids.iter().zip(before) {
            sqlx::query(update)
                .bind(gender)
                .bind(stored_id(id))
                .execute(&pool)
                .await
                .unwrap();
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(migration))
            .execute(&pool)
            .await
            .unwrap();
    } else {
        let pool = sqlx::PgPool::connect(&app.database_url).await.unwrap();
        for (id, gender) in ids.iter().zip(before) {
            sqlx::query(update)
                .bind(gender)
                .bind(stored_id(id))
                .execute(&pool)
                .await
                .unwrap();
        }
        sqlx::raw_sql(sqlx::AssertSqlSafe(migration))
            .execute(&pool)
            .await
            .unwrap();
    }
    let mut after = Vec::new();
    for id in &ids {
        let contact: Value = app
            .get(&format!("/api/contacts/{id}"))
            .await
            .json()
            .await
            .unwrap();
        after.push(contact["gender"].as_str().unwrap().to_owned());
    }
    assert_eq!(after, ["female", "male", "other"]);
}

/// Names of every contact a filtered search pages through, 500 at a time by cursor.
async fn page_through(app: &TestApp, filter: &str, order: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut path = format!("/api/contacts?{filter}&order_by={order}&limit=500");
        if let Some(cursor) = &next {
            path.push_str(&format!("&next={cursor}"));
        }
        let page: Value = app.get(&path).await.json().await.unwrap();
        let contacts = page["contacts"].as_array().expect("contacts");
        names.extend(
            contacts
                .iter()
                .map(|c| c["first_name"].as_str().unwrap().to_owned()),
        );
        match page["next"].as_str() {
            Some(cursor) => next = Some(cursor.to_owned()),
            None => return names,
        }
    }
}

/// SQLite reads a page of a rare gender through its index and keeps a common one from it
/// (`value_indexes`, past 2,000 matches); both must find the same contacts in the same order as
/// a plain filter would.
async fn common_and_rare_values_page_alike(app: TestApp) {
    let mut csv = String::from("phone,first_name,gender\n");
    for n in 0..2_105 {
        let gender = if n % 421 == 0 { "male" } else { "female" };
        csv.push_str(&format!("+4915123{n:06},N{:05},{gender}\n", 2_105 - n));
    }
    let import = crate::imports::import_file(&app, "many.csv", csv.into_bytes(), json!({})).await;
    assert_eq!(import["report"]["created"], 2_105, "{import}");

    let female = page_through(&app, "gender=female", "name").await;
    assert_eq!(female.len(), 2_100);
    assert!(
        female.windows(2).all(|pair| pair[0] < pair[1]),
        "name order"
    );
    let male = page_through(&app, "gender=male", "name").await;
    assert_eq!(male, ["N00421", "N00842", "N01263", "N01684", "N02105"]);
    // Both values common, then one of them rare, in creation order.
    let both = page_through(
        &app,
        "gender=female&number_type=mobile&direction=asc",
        "created_at",
    )
    .await;
    assert_eq!(both.len(), 2_100);
    assert_eq!(both.first().map(String::as_str), Some("N02104"));
    let rare = page_through(
        &app,
        "gender=male&number_type=mobile&direction=asc",
        "created_at",
    )
    .await;
    assert_eq!(rare, ["N02105", "N01684", "N01263", "N00842", "N00421"]);
    for (filter, total) in [
        ("gender=female", 2_100),
        ("gender=male", 5),
        ("gender=other", 0),
    ] {
        let page: Value = app
            .get(&format!("/api/contacts?{filter}&count=true&limit=1"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(page["count"], total, "{filter}");
    }
}
