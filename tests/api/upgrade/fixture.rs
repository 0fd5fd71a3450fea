//! Makes the v1 fixtures of the upgrade test: on each backend, a data set with every kind of
//! record in two plans is made through the HTTP API, every GET of it is recorded, and the
//! database is dumped whole (schema, data and `_sqlx_migrations`).
//!
//! The fixtures stand for databases made by v1 (migrations 0001–0010); a later version must not
//! regenerate them, or the test would compare a version with itself. To remake them, from a
//! checkout of v1:
//!
//! ```text
//! ROSTER_REQUIRE_POSTGRES=1 cargo test --test api upgrade::fixture -- --ignored
//! ```
//!
//! It needs the `sqlite3` command and PostgreSQL's `pg_dump` (looked for as the test server's
//! binaries are). Ids and times are new on each run; rows are dumped in a stable order.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use roster::api::auth;
use roster::send::log::LogSender;
use roster::store::TokenGrant;
use serde_json::{Value, json};

use super::{
    ALL_BATCHES, ALL_CONTACTS, ALL_GROUPS, Api, Expected, FIXTURES, InboundExchange, Recorded,
    RecordedPlan, consent_rows,
};
use crate::batches::wait_for;
use crate::helpers::{Backend, TestApp, quick_dispatch, spawn_app};
use crate::imports::{upload, wait_import};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes tests/fixtures/upgrade; run by hand, see the module's comment"]
async fn write_v1_fixtures() {
    let expected = Expected {
        sqlite: make(Backend::Sqlite, "v1-sqlite.sql").await,
        postgres: make(Backend::Postgres, "v1-postgres.sql").await,
    };
    let expected = serde_json::to_value(&expected).expect("JSON");
    let mut text = String::new();
    one_response_a_line(&expected, 0, &mut text);
    text.push('\n');
    std::fs::write(format!("{FIXTURES}/v1-expected.json"), text).expect("write the responses");
}

/// JSON indented down to the responses, each of which is one line: a diff of the file names the
/// responses that changed.
fn one_response_a_line(value: &Value, depth: usize, out: &mut String) {
    const RESPONSES: usize = 5;
    let indent = |depth: usize| "  ".repeat(depth);
    match value {
        Value::Object(map) if depth < RESPONSES && !map.is_empty() => {
            out.push_str("{\n");
            for (i, (key, value)) in map.iter().enumerate() {
                out.push_str(&format!(
                    "{}{}: ",
                    indent(depth + 1),
                    Value::from(key.as_str())
                ));
                one_response_a_line(value, depth + 1, out);
                out.push_str(if i + 1 < map.len() { ",\n" } else { "\n" });
            }
            out.push_str(&format!("{}}}", indent(depth)));
        }
        Value::Array(items) if depth < RESPONSES && !items.is_empty() => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                out.push_str(&indent(depth + 1));
                one_response_a_line(item, depth + 1, out);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            out.push_str(&format!("{}]", indent(depth)));
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Fills a fresh database of `backend`, records its responses and dumps it to `dump_file`.
async fn make(backend: Backend, dump_file: &str) -> Recorded {
    let app = spawn_app(backend)
        .await
        .expect("the fixtures are made on both backends: PostgreSQL is needed");
    let first = Api::new(&app, &app.token);
    let revoked_token = auth::generate_token();
    app.store
        .add_token(
            &plan_id(&app.plan_id),
            &roster::store::Actor::cli(),
            &auth::hash_token(&revoked_token),
            &TokenGrant::full(),
        )
        .await
        .expect("a second token");
    app.store
        .revoke_token(
            &auth::hash_token(&revoked_token),
            &roster::store::Actor::cli(),
        )
        .await
        .expect("revoke it");
    let second_plan = app
        .store
        .create_plan(
            "Zweiter Plan – Ümlaut",
            Some("DE"),
            &roster::store::Actor::cli(),
        )
        .await
        .expect("a second plan");
    let second_token = auth::generate_token();
    app.store
        .add_token(
            &second_plan.id,
            &roster::store::Actor::cli(),
            &auth::hash_token(&second_token),
            &TokenGrant::full(),
        )
        .await
        .expect("its token");
    let second = Api::new(&app, &second_token);

    let made = fill_first_plan(&app, &first).await;
    let second_inbound = fill_second_plan(&second).await;
    let session_cookie = sign_in(&app).await;
    let sign_in_secret = app
        .store
        .server_secret("web_sign_in", "unused")
        .await
        .expect("the sign-in secret");

    // Recorded before the dump, so that anything a GET might write is in it.
    let recorded = Recorded {
        plans: vec![
            RecordedPlan {
                id: app.plan_id.clone(),
                name: "Test plan".to_owned(),
                default_region: Some("US".to_owned()),
                token: app.token.clone(),
                responses: record(&first, &app.plan_id, &made.jobs).await,
                inbound: made.inbound,
            },
            RecordedPlan {
                id: second_plan.id.to_string(),
                name: second_plan.name.clone(),
                default_region: second_plan.default_region.clone(),
                token: second_token,
                responses: record(&second, second_plan.id.as_str(), &[]).await,
                inbound: second_inbound,
            },
        ],
        revoked_token,
        sign_in_secret,
        session_cookie,
        pending_import: made.pending_import,
        consent_rows: consent_rows(backend, &app.database_url).await,
    };
    let dump = match backend {
        Backend::Sqlite => dump_sqlite(&app.database_url),
        Backend::Postgres => dump_postgres(&app.database_url),
    };
    std::fs::write(format!("{FIXTURES}/{dump_file}"), dump).expect("write the dump");
    recorded
}

fn plan_id(id: &str) -> roster::domain::ids::PlanId {
    roster::domain::ids::PlanId::parse(id).expect("a plan id")
}

/// What the first plan's filling left to record beyond its GETs.
struct FirstPlan {
    inbound: Vec<InboundExchange>,
    /// The finished imports' and exports' paths (there is no list of them to discover).
    jobs: Vec<String>,
    pending_import: String,
}

/// Every kind of record: contacts of many regions and number types with every attribute,
/// static, nested, smart, deleted, keyword and unnamed groups with overlapping members, consent
/// changes by keyword and API, custom keywords, batches sent, scheduled and canceled, an
/// import with rejected rows, one upload not committed, and exports.
async fn fill_first_plan(app: &TestApp, api: &Api) -> FirstPlan {
    api.ok(
        Method::PUT,
        "/api/keywords",
        &json!({"opt_out": ["STOP", "HALT"], "opt_in": ["START", "RESUME"]}),
    )
    .await;
    let people = [
        json!({"phone": "+14155550100", "first_name": "Zoë", "last_name": "Ångström",
               "email": "Zoe@Example.com", "gender": "F",
               "fields": {"plan": "gold", "age": 42, "score": 3.5, "vip": true, "note": "a, b; \"c\"\nd"}}),
        json!({"phone": "+4915112345678", "first_name": "Jürgen", "last_name": "Groß",
               "gender": "male", "fields": {"plan": "platinum", "since": 2019}}),
        json!({"phone": "+442079460958", "first_name": "Siobhán", "last_name": "O'Brien",
               "email": "siobhan@example.ie", "gender": "non-binary"}),
        json!({"phone": "+819012345678", "first_name": "太郎", "last_name": "山田",
               "fields": {"vip": false}}),
        json!({"phone": "0788 382 382", "default_region": "RW", "first_name": "Aline"}),
        json!({"phone": "+33612345678", "first_name": "Élodie", "opted_out": true,
               "opted_out_reason": "asked by phone"}),
        json!({"phone": "+14155550107"}),
        json!({"phone": "+5511987654321", "first_name": "Ana 🌻", "fields": {"plan": "gold"}}),
        json!({"phone": "+18002752273", "last_name": "Toll-Free Inc."}),
    ];
    let mut contacts = Vec::new();
    for person in &people {
        contacts.push(api.ok(Method::POST, "/api/contacts", person).await);
    }
    let phone = |i: usize| contacts[i]["phone"].clone();
    let id = |i: usize| contacts[i]["id"].clone();

    let group = |body: Value| async move {
        api.ok(Method::POST, "/api/contactgroups", &body).await["id"].clone()
    };
    let newsletter = group(json!({"name": "Newsletter", "description": "Monthly news",
                                  "members": [phone(0), phone(1), phone(2), phone(6)]}))
    .await;
    let vip = group(json!({"name": "VIP", "members": [phone(0), phone(1)]})).await;
    let grandchild = group(json!({"name": "Grandchild", "members": [phone(7), phone(5)]})).await;
    let child = group(json!({"name": "Child", "members": [phone(4), phone(0)],
                             "child_groups": [grandchild]}))
    .await;
    let parent = group(json!({"name": "Parent", "members": [phone(3)],
                              "child_groups": [child]}))
    .await;
    let smart = group(json!({"name": "Gold or DE",
                             "rule": "fields.plan = \"gold\" or country = \"DE\""}))
    .await;
    let old = group(json!({"name": "Old list", "members": [phone(8)]})).await;
    api.ok(
        Method::DELETE,
        &format!("/api/contactgroups/{}", text(&old)),
        &Value::Null,
    )
    .await;
    let join = group(
        json!({"name": "Join list", "description": "Text JOIN to 12345",
                            "auto_update": {"to": "12345", "add": {"first_word": "JOIN"},
                                            "remove": {"first_word": "LEAVE"}}}),
    )
    .await;
    // Sinch's groups need no name; a bare number becomes a contact.
    let (status, unnamed) = api
        .call(
            Method::POST,
            &format!("/xms/v1/{}/groups", app.plan_id),
            Some(&json!({"members": [phone(6), "+14155550108"]})),
        )
        .await;
    assert_eq!(status, 201, "{unnamed}");
    api.ok(
        Method::POST,
        "/api/contactgroups/members",
        &json!({"contact_ids": [id(3), id(4)], "group_ids": [vip, newsletter]}),
    )
    .await;
    api.ok(
        Method::PATCH,
        &format!("/api/contactgroups/{}", text(&vip)),
        &json!({"description": "Our best customers", "remove": [phone(1)]}),
    )
    .await;
    api.ok(
        Method::PATCH,
        &format!("/api/contacts/{}", text(&id(8))),
        &json!({"opted_out": true, "opted_out_reason": "bounced"}),
    )
    .await;
    // Its consent row outlives it, though no route shows it any more.
    api.ok(
        Method::DELETE,
        &format!("/api/contacts/{}", text(&id(8))),
        &Value::Null,
    )
    .await;

    let mut inbound = Vec::new();
    for (n, from, to, body) in [
        (1, phone(6), "12345", "STOP"),
        (2, phone(6), "12345", "resume"),
        (3, json!("+14155550150"), "12345", "JOIN"),
        (4, phone(2), "12345", "join"),
        (5, phone(2), "12345", "LEAVE"),
        (6, phone(1), "12345", "Halt!"),
        (7, phone(0), "12345", "hello there"),
    ] {
        let request = json!({"type": "mo_text", "id": format!("v1-mo-{n}"), "from": from,
                             "to": to, "body": body, "received_at": "2025-12-01T10:00:00Z"});
        let response = api.ok(Method::POST, "/api/inbound", &request).await;
        inbound.push(InboundExchange { request, response });
    }

    let sent = api
        .ok(
            Method::POST,
            "/api/batches",
            &json!({"to": [newsletter, parent, "+14155550199"], "exclude": [vip],
                    "from": "12345", "body": "Hello ${first_name}", "client_reference": "v1-sent"}),
        )
        .await;
    let log = app.dir().join("messages.jsonl");
    let running = app.start_dispatcher(
        Arc::new(LogSender::open(&log).expect("log file")),
        quick_dispatch(),
    );
    let sent = wait_for(app, text(&sent["id"]), &["sent", "failed"]).await;
    running.stop().await;
    assert_eq!(sent["status"], "sent", "{sent}");
    let later = "2099-01-01T09:00:00Z";
    api.ok(
        Method::POST,
        "/api/batches",
        &json!({"to": [smart], "body": "Later", "send_at": later,
                "expire_at": "2099-01-02T09:00:00Z", "client_reference": "v1-scheduled"}),
    )
    .await;
    let canceled = api
        .ok(
            Method::POST,
            "/api/batches",
            &json!({"to": [phone(6)], "body": "Never", "send_at": later,
                    "client_reference": "v1-canceled"}),
        )
        .await;
    api.ok(
        Method::DELETE,
        &format!("/api/batches/{}", text(&canceled["id"])),
        &Value::Null,
    )
    .await;
    let (status, sinch) = api
        .call(
            Method::POST,
            &format!("/xms/v1/{}/batches", app.plan_id),
            Some(
                &json!({"to": [join], "from": "12345", "body": "Sinch-shaped",
                         "send_at": later, "client_reference": "v1-sinch"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{sinch}");

    let csv = "phone,first_name,last_name,email,gender,plan,age\n\
               +14155550100,Zoë,Ångström-Updated,,,gold,43\n\
               +14155550160,Imported,Ünïcode,imp@example.com,f,silver,30\n\
               +14155550161,Second,Person,,m,,\n\
               not a number,Bad,Row,,,,\n\
               +14155550160,Dup,Row,,,,\n\
               +14155550162,Third,Bad-email,not-an-email,,,\n";
    let (status, preview) = upload(app, "contacts.csv", csv.as_bytes().to_vec()).await;
    assert_eq!(status, 201, "{preview}");
    let import = text(&preview["id"]).to_owned();
    api.ok(
        Method::POST,
        &format!("/api/imports/{import}/commit"),
        &json!({"default_region": "US", "group_names": ["Imported"], "groups": [vip],
                "mode": "update",
                "mapping": {"phone": "phone", "first_name": "first_name", "last_name": "last_name",
                            "email": "email", "gender": "gender", "plan": "fields.plan",
                            "age": "fields.age"}}),
    )
    .await;
    let done = wait_import(app, &import).await;
    assert_eq!(done["status"], "done", "{done}");
    let pending = "phone,first_name\n+14155550170,Later\n+14155550171,Later too\n";
    let (status, pending) = upload(app, "later.csv", pending.as_bytes().to_vec()).await;
    assert_eq!(status, 201, "{pending}");

    let mut jobs = vec![
        format!("/api/imports/{import}"),
        format!("/api/imports/{import}/errors.csv"),
    ];
    for selection in [
        json!({"format": "csv"}),
        json!({"format": "vcf", "group_id": newsletter}),
    ] {
        let export = api.ok(Method::POST, "/api/exports", &selection).await;
        let path = format!("/api/exports/{}", text(&export["id"]));
        wait_export(api, &path).await;
        jobs.push(format!("{path}/download"));
        jobs.push(path);
    }
    FirstPlan {
        inbound,
        jobs,
        pending_import: text(&pending["id"]).to_owned(),
    }
}

/// The same number as a contact of the first plan, a national number read with the plan's
/// region, a group, and an opt-out by the default keywords.
async fn fill_second_plan(api: &Api) -> Vec<InboundExchange> {
    let mut phones = Vec::new();
    for person in [
        json!({"phone": "+14155550100", "first_name": "Other plan, same number"}),
        json!({"phone": "0151 23456789", "first_name": "Lukas", "gender": "M"}),
    ] {
        phones.push(api.ok(Method::POST, "/api/contacts", &person).await["phone"].clone());
    }
    api.ok(
        Method::POST,
        "/api/contactgroups",
        &json!({"name": "Kunden", "members": phones}),
    )
    .await;
    let request = json!({"type": "mo_text", "id": "v1-mo-1", "from": "+14155550100",
                         "to": "12345", "body": "stop"});
    let response = api.ok(Method::POST, "/api/inbound", &request).await;
    vec![InboundExchange { request, response }]
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a string: {value}"))
}

async fn wait_export(api: &Api, path: &str) {
    let started = Instant::now();
    loop {
        let export = api.ok(Method::GET, path, &Value::Null).await;
        match export["status"].as_str() {
            Some("done") => return,
            Some("running") => {}
            _ => panic!("export failed: {export}"),
        }
        assert!(started.elapsed() < Duration::from_secs(30), "export stuck");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Signs a browser in to the first plan through the web page; its session cookie.
async fn sign_in(app: &TestApp) -> String {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let signed_in = crate::web::sign_in(&client, &app.address, &app.token).await;
    assert_eq!(signed_in.status(), 303);
    signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .find_map(|value| value.strip_prefix("roster_session="))
        .and_then(|value| value.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

/// Every GET that shows the plan's data, on both surfaces, and what each answers.
async fn record(api: &Api, plan: &str, jobs: &[String]) -> BTreeMap<String, Value> {
    let mut probes: Vec<String> = [
        "/api/keywords",
        ALL_GROUPS,
        "/api/contactgroups?status=DELETED&limit=1000",
        "/api/contactgroups?order_by=name&limit=1000",
        "/api/contactgroups?order_by=size&limit=1000",
        ALL_CONTACTS,
        "/api/contacts?order_by=name&limit=1000",
        "/api/contacts?order_by=name&direction=desc&limit=1000",
        "/api/contacts?order_by=modified_at&limit=1000",
        "/api/contacts?name=z&limit=1000",
        "/api/contacts?name_contains=%C3%BC&limit=1000",
        "/api/contacts?phone=%2B49&limit=1000",
        "/api/contacts?email=zoe%40example.com&limit=1000",
        "/api/contacts?gender=female&limit=1000",
        "/api/contacts?number_type=mobile&limit=1000",
        "/api/contacts?channel=sms&limit=1000",
        "/api/contacts?opted_out=true&limit=1000",
        "/api/contacts?q=fields.plan%20%3D%20%22gold%22%20and%20not%20opted_out&limit=1000",
        ALL_BATCHES,
    ]
    .map(str::to_owned)
    .to_vec();
    probes.push(format!("/xms/v1/{plan}/groups?page_size=100"));
    // Sinch lists the last day's batches unless asked for a start date.
    probes.push(format!(
        "/xms/v1/{plan}/batches?page_size=100&start_date=2000-01-01T00:00:00Z"
    ));

    let groups = api.ok(Method::GET, ALL_GROUPS, &Value::Null).await;
    for group in groups["groups"].as_array().expect("groups") {
        let id = text(&group["id"]);
        let native = format!("/api/contactgroups/{id}");
        probes.extend([
            format!("{native}?include=members"),
            format!("{native}/members?limit=1000"),
            format!("{native}/members as application/x-ndjson"),
            format!("{native}/members as text/csv"),
            format!("/api/contactgroups?child_of={id}&limit=1000"),
            format!("/api/contacts?group={id}&limit=1000"),
            format!("/xms/v1/{plan}/groups/{id}"),
            format!("/xms/v1/{plan}/groups/{id}/members"),
        ]);
    }
    let contacts = api
        .ok(Method::GET, "/api/contacts?limit=1000", &Value::Null)
        .await;
    for contact in contacts["contacts"].as_array().expect("contacts") {
        let id = text(&contact["id"]);
        probes.push(format!("/api/contacts/{id}?include=groups"));
        probes.push(format!("/api/contacts/{id}/consent"));
    }
    let batches = api.ok(Method::GET, ALL_BATCHES, &Value::Null).await;
    for batch in batches["batches"].as_array().expect("batches") {
        let id = text(&batch["id"]);
        probes.extend([
            format!("/api/batches/{id}"),
            format!("/api/batches/{id}/recipients as application/x-ndjson"),
            format!("/api/batches/{id}/recipients as text/csv"),
            format!("/xms/v1/{plan}/batches/{id}"),
        ]);
    }
    probes.extend(jobs.iter().cloned());

    let mut responses = BTreeMap::new();
    for probe in probes {
        let response = api.probe(&probe).await;
        responses.insert(probe, response);
    }
    responses
}

/// The SQLite file as SQL text, by the `sqlite3` shell (its `.dump` keeps every table's own
/// `CREATE` text, `WITHOUT ROWID` and triggers included, and BLOBs as hex).
fn dump_sqlite(database_url: &str) -> String {
    let path = database_url
        .strip_prefix("sqlite://")
        .expect("a SQLite URL");
    let dump = run(Command::new("sqlite3").arg(path).arg(".dump"));
    format!(
        "-- Roster v1 (migrations 0001-0010) on SQLite, made by tests/api/upgrade/fixture.rs.\n{dump}"
    )
}

/// The PostgreSQL database as SQL text: schema and data, one INSERT per row, without owners
/// or grants (the test's server has other roles).
fn dump_postgres(database_url: &str) -> String {
    let bin = crate::postgres::find_binaries().expect("PostgreSQL's binaries");
    let dump = run(Command::new(bin.join("pg_dump"))
        .args(["--no-owner", "--no-privileges", "--column-inserts"])
        .arg(format!("--dbname={database_url}")));
    // `\restrict` and `\unrestrict` (pg_dump since 15.14) are psql commands with a random key;
    // the test runs the dump over a plain connection.
    let dump: String = dump
        .lines()
        .filter(|line| !line.starts_with("\\restrict") && !line.starts_with("\\unrestrict"))
        .map(|line| format!("{line}\n"))
        .collect();
    format!(
        "-- Roster v1 (migrations 0001-0010) on PostgreSQL, made by tests/api/upgrade/fixture.rs.\n{dump}"
    )
}

fn run(command: &mut Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8 SQL")
}
