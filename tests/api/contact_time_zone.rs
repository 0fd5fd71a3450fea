//! A contact's `time_zone`: set, changed and cleared through the API, refused unless it is an
//! IANA name, read from an imported column (a bad value rejecting its row), exported, and
//! searched with the filter language.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::imports::{export, upload, wait_import};
use crate::on_both_backends;

on_both_backends!(
    time_zones_are_set_changed_and_cleared,
    a_time_zone_must_be_an_iana_name,
    imported_time_zones_are_checked_row_by_row,
);

const IANA_DETAIL: &str = "must be an IANA time zone name like \"Europe/Paris\"";

async fn create(app: &TestApp, body: Value) -> Value {
    let response = app.send_json(Method::POST, "/api/contacts", &body).await;
    assert_eq!(response.status(), 201, "create {body}");
    response.json().await.expect("contact JSON")
}

async fn write(app: &TestApp, method: Method, id: &str, body: Value) -> Value {
    let response = app
        .send_json(method.clone(), &format!("/api/contacts/{id}"), &body)
        .await;
    assert_eq!(response.status(), 200, "{method} {body}");
    response.json().await.expect("contact JSON")
}

/// The `(field, detail)` pairs of a 400's problem.
async fn field_errors(response: reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.expect("problem JSON");
    problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|error| {
            (
                error["field"].as_str().unwrap_or_default().to_owned(),
                error["detail"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The phone numbers of the contacts a filter-language search finds, sorted.
async fn search(app: &TestApp, q: &str) -> Vec<String> {
    let query = serde_urlencoded::to_string([("q", q), ("limit", "1000")]).expect("query");
    let response = app.get(&format!("/api/contacts?{query}")).await;
    assert_eq!(response.status(), 200, "{q}");
    let list: Value = response.json().await.expect("list JSON");
    let mut phones: Vec<String> = list["contacts"]
        .as_array()
        .expect("contacts")
        .iter()
        .filter_map(|contact| contact["phone"].as_str().map(str::to_owned))
        .collect();
    phones.sort();
    phones
}

async fn time_zones_are_set_changed_and_cleared(app: TestApp) {
    let paris = create(
        &app,
        json!({"phone": "+33612345678", "time_zone": " Europe/Paris "}),
    )
    .await;
    assert_eq!(paris["time_zone"], "Europe/Paris");
    let id = paris["id"].as_str().expect("id");
    let read: Value = app
        .get(&format!("/api/contacts/{id}"))
        .await
        .json()
        .await
        .expect("contact JSON");
    assert_eq!(read, paris);

    // Unset is null, not absent.
    let plain = create(&app, json!({"phone": "+14155550301"})).await;
    assert_eq!(plain.get("time_zone"), Some(&Value::Null), "{plain}");

    // A PATCH that leaves time_zone out leaves it; one that names it changes it.
    let renamed = write(&app, Method::PATCH, id, json!({"first_name": "Élodie"})).await;
    assert_eq!(renamed["time_zone"], "Europe/Paris");
    let moved = write(
        &app,
        Method::PATCH,
        id,
        json!({"time_zone": "America/New_York"}),
    )
    .await;
    assert_eq!(moved["time_zone"], "America/New_York");
    assert_eq!(moved["first_name"], "Élodie");

    assert_eq!(
        search(&app, "time_zone = \"America/New_York\"").await,
        ["+33612345678"]
    );
    assert_eq!(search(&app, "time_zone is null").await, ["+14155550301"]);

    let cleared = write(&app, Method::PATCH, id, json!({"time_zone": null})).await;
    assert_eq!(cleared["time_zone"], Value::Null);
    assert_eq!(cleared["first_name"], "Élodie");

    // PUT sets every field: with a zone, then without one (cleared).
    let put = write(
        &app,
        Method::PUT,
        id,
        json!({"phone": "+33612345678", "time_zone": "Asia/Tokyo"}),
    )
    .await;
    assert_eq!(put["time_zone"], "Asia/Tokyo");
    let put = write(&app, Method::PUT, id, json!({"phone": "+33612345678"})).await;
    assert_eq!(put["time_zone"], Value::Null);
    assert_eq!(
        search(&app, "time_zone is not null").await,
        Vec::<String>::new()
    );
}

async fn a_time_zone_must_be_an_iana_name(app: TestApp) {
    for bad in ["Paris", "+02:00", "Europe/Atlantis", ""] {
        let response = app
            .send_json(
                Method::POST,
                "/api/contacts",
                &json!({"phone": "+14155550311", "time_zone": bad}),
            )
            .await;
        assert_eq!(
            field_errors(response).await,
            [("time_zone".to_owned(), IANA_DETAIL.to_owned())],
            "{bad:?}"
        );
    }
    let listed: Value = app
        .get("/api/contacts?count=true")
        .await
        .json()
        .await
        .expect("list JSON");
    assert_eq!(listed["count"], 0);

    // A bad zone in a PATCH changes nothing, not even the fields beside it.
    let contact = create(
        &app,
        json!({"phone": "+14155550312", "time_zone": "Europe/Berlin"}),
    )
    .await;
    let path = format!("/api/contacts/{}", contact["id"].as_str().expect("id"));
    let response = app
        .send_json(
            Method::PATCH,
            &path,
            &json!({"first_name": "Ada", "time_zone": "Berlin"}),
        )
        .await;
    assert_eq!(
        field_errors(response).await,
        [("time_zone".to_owned(), IANA_DETAIL.to_owned())]
    );
    let response = app
        .send_json(
            Method::PUT,
            &path,
            &json!({"phone": "+14155550312", "time_zone": 42}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let unchanged: Value = app.get(&path).await.json().await.expect("contact JSON");
    assert_eq!(unchanged, contact);
}

async fn imported_time_zones_are_checked_row_by_row(app: TestApp) {
    // An existing contact whose zone the file changes, and one whose zone an empty cell keeps.
    create(
        &app,
        json!({"phone": "+14155550321", "time_zone": "America/Chicago"}),
    )
    .await;
    create(
        &app,
        json!({"phone": "+14155550322", "time_zone": "America/Denver"}),
    )
    .await;
    let csv = "Phone,First Name,Time Zone\n\
               +33612345601,Anne,Europe/Paris\n\
               +33612345602,Bad,Europe/Lyon\n\
               +14155550321,Chicago,America/Los_Angeles\n\
               +14155550322,Denver,\n\
               +33612345603,Zoe,UTC\n";
    let (status, preview) = upload(&app, "zones.csv", csv.as_bytes().to_vec()).await;
    assert_eq!(status, 201, "{preview}");
    let suggested: Vec<&str> = preview["preview"]["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|column| column["suggested"].as_str())
        .collect();
    assert_eq!(suggested, ["phone", "first_name", "time_zone"]);
    let id = preview["id"].as_str().expect("id");
    let response = app
        .send_json(
            Method::POST,
            &format!("/api/imports/{id}/commit"),
            &json!({}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let import = wait_import(&app, id).await;
    assert_eq!(import["status"], "done", "{import}");
    let report = &import["report"];
    assert_eq!(report["created"], 2, "{report}");
    assert_eq!(report["updated"], 2, "{report}");
    assert_eq!(report["invalid"], 1, "{report}");
    assert_eq!(
        import["rejected"],
        json!([{
            "row": 3,
            "reason": format!("time_zone: \"Europe/Lyon\" {IANA_DETAIL}"),
        }])
    );

    let zones: Vec<(String, Value)> = {
        let list: Value = app
            .get("/api/contacts?limit=1000&order_by=created_at&direction=asc")
            .await
            .json()
            .await
            .expect("list JSON");
        let mut zones: Vec<(String, Value)> = list["contacts"]
            .as_array()
            .expect("contacts")
            .iter()
            .map(|contact| {
                (
                    contact["phone"].as_str().unwrap_or_default().to_owned(),
                    contact["time_zone"].clone(),
                )
            })
            .collect();
        zones.sort_by(|a, b| a.0.cmp(&b.0));
        zones
    };
    assert_eq!(
        zones,
        [
            ("+14155550321".to_owned(), json!("America/Los_Angeles")),
            ("+14155550322".to_owned(), json!("America/Denver")),
            ("+33612345601".to_owned(), json!("Europe/Paris")),
            ("+33612345603".to_owned(), json!("UTC")),
        ]
    );

    // Exports carry the column the import read, by the name an import maps it from.
    let exported =
        String::from_utf8(export(&app, json!({"format": "csv"})).await).expect("a UTF-8 export");
    let mut lines = exported.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let column = header
        .iter()
        .position(|name| *name == "time_zone")
        .unwrap_or_else(|| panic!("no time_zone column: {exported}"));
    let mut exported_zones: Vec<(&str, &str)> = lines
        .map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            (cells[0], cells[column])
        })
        .collect();
    exported_zones.sort_unstable();
    assert_eq!(
        exported_zones,
        [
            ("+14155550321", "America/Los_Angeles"),
            ("+14155550322", "America/Denver"),
            ("+33612345601", "Europe/Paris"),
            ("+33612345603", "UTC"),
        ]
    );
    let vcards =
        String::from_utf8(export(&app, json!({"format": "vcf"})).await).expect("a UTF-8 export");
    assert!(vcards.contains("TZ:Europe/Paris\r\n"), "{vcards}");
}
