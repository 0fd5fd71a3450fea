//! Imports and exports through the HTTP API: preview, mapping, every mode, rejected rows with
//! their row numbers, idempotent commits, templates, and exports that import back to the same
//! contacts. Every fixture is made here.

use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

use crate::helpers::TestApp;
use crate::on_both_backends;

on_both_backends!(
    a_csv_is_previewed_committed_and_reported,
    encodings_delimiters_and_quoted_newlines,
    spreadsheets_and_vcards,
    modes_for_existing_contacts,
    numbers_met_again_are_left_out_at_any_distance,
    bad_uploads_and_commits_name_the_problem,
    a_file_is_kept_for_a_day,
    exports_import_back_to_the_same_contacts,
);

/// A committed import's file serves its rejected rows and another commit for a day; then it is
/// removed (when the plan next uploads) and its rejected rows are numbers and reasons only.
async fn a_file_is_kept_for_a_day(app: TestApp) {
    let (status, first) = upload(
        &app,
        "a.csv",
        b"phone,name\nnope,Ann\n+14155550111,Bo\n".to_vec(),
    )
    .await;
    assert_eq!(status, 201);
    let id = first["id"].as_str().unwrap().to_owned();
    let response = app
        .send_json(
            Method::POST,
            &format!("/api/imports/{id}/commit"),
            &json!({}),
        )
        .await;
    assert_eq!(response.status(), 202);
    assert_eq!(wait_import(&app, &id).await["status"], "done");
    let errors = app
        .get(&format!("/api/imports/{id}/errors.csv"))
        .await
        .text()
        .await
        .unwrap();
    assert!(errors.ends_with(",nope,Ann\n"), "{errors}");
    crate::contacts::run_sql(
        &app,
        &[format!(
            "UPDATE imports SET created_at = created_at - 2 * 86400000 WHERE id = '{id}'"
        )],
    )
    .await;
    let (status, _) = upload(&app, "b.csv", b"phone\n+14155550112\n".to_vec()).await;
    assert_eq!(status, 201);
    let gone = app
        .send_json(Method::POST, &format!("/api/imports/{id}/copy"), &json!({}))
        .await;
    assert_eq!(gone.status(), 409);
    let problem: Value = gone.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("no longer kept"),
        "{problem}"
    );
    let errors = app
        .get(&format!("/api/imports/{id}/errors.csv"))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(errors.lines().next(), Some("Rejected row,Rejected because"));
    assert!(errors.lines().nth(1).unwrap().starts_with("2,"), "{errors}");
    let missing = app
        .send_json(
            Method::POST,
            "/api/imports/01ARZ3NDEKTSV4RRFFQ69G5FAV/copy",
            &json!({}),
        )
        .await;
    assert_eq!(missing.status(), 404);
}

/// Uploads `bytes` as `file_name`; returns the response's status and JSON.
pub async fn upload(app: &TestApp, file_name: &str, bytes: Vec<u8>) -> (u16, Value) {
    upload_to(app, file_name, bytes, &app.token, None).await
}

async fn upload_to(
    app: &TestApp,
    file_name: &str,
    bytes: Vec<u8>,
    token: &str,
    sheet: Option<&str>,
) -> (u16, Value) {
    let mut form = Form::new().part("file", Part::bytes(bytes).file_name(file_name.to_owned()));
    if let Some(sheet) = sheet {
        form = form.text("sheet", sheet.to_owned());
    }
    let response = app
        .client
        .post(format!("{}/api/imports", app.address))
        .bearer_auth(token)
        .multipart(form)
        .send()
        .await
        .expect("upload");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls an import until it is done or failed (30 s at most).
pub async fn wait_import(app: &TestApp, id: &str) -> Value {
    let started = Instant::now();
    loop {
        let import: Value = app
            .get(&format!("/api/imports/{id}"))
            .await
            .json()
            .await
            .expect("import JSON");
        if ["done", "failed"].contains(&import["status"].as_str().unwrap_or("")) {
            return import;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "import stuck: {import}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Uploads and commits with `settings`; returns the finished import.
pub async fn import_file(app: &TestApp, file_name: &str, bytes: Vec<u8>, settings: Value) -> Value {
    let (status, preview) = upload(app, file_name, bytes).await;
    assert_eq!(status, 201, "upload: {preview}");
    let id = preview["id"].as_str().expect("id").to_owned();
    let response = app
        .send_json(
            Method::POST,
            &format!("/api/imports/{id}/commit"),
            &settings,
        )
        .await;
    assert_eq!(response.status(), 202, "commit");
    let import = wait_import(app, &id).await;
    assert_eq!(import["status"], "done", "{import}");
    import
}

async fn contact_by_phone(app: &TestApp, phone: &str) -> Value {
    let list: Value = app
        .get(&format!(
            "/api/contacts?phone={}",
            phone.trim_start_matches('+')
        ))
        .await
        .json()
        .await
        .unwrap();
    let contacts = list["contacts"].as_array().expect("contacts");
    assert_eq!(contacts.len(), 1, "one contact for {phone}: {list}");
    contacts[0].clone()
}

async fn contact_count(app: &TestApp) -> i64 {
    let list: Value = app
        .get("/api/contacts?count=true&limit=1")
        .await
        .json()
        .await
        .unwrap();
    list["count"].as_i64().expect("count")
}

fn windows_1252(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
    assert!(!unmappable, "not Windows-1252: {text}");
    bytes.into_owned()
}

async fn a_csv_is_previewed_committed_and_reported(app: TestApp) {
    // Semicolons and Windows-1252, as Excel writes "CSV" in much of Europe.
    let text = "Mobile;First Name;Last Name;E-mail;City\r\n\
                +14155550101;Jürgen;Müller;jm@example.com;Zürich\r\n\
                not a number;Ann;Lee;;Oslo\r\n\
                020 7946 0958;José;García;bad-email;Madrid\r\n\
                +14155550101;Again;Duplicate;;\r\n\
                \r\n\
                (415) 555-0102;Bea;Kim;;€ City\r\n";
    let (status, preview) = upload(&app, "customers.csv", windows_1252(text)).await;
    assert_eq!(status, 201, "{preview}");
    assert_eq!(preview["status"], "previewed");
    assert_eq!(preview["preview"]["format"], "csv");
    assert_eq!(preview["preview"]["encoding"], "windows-1252");
    assert_eq!(preview["preview"]["delimiter"], ";");
    assert_eq!(preview["preview"]["total_rows"], 5);
    let suggested: Vec<(&str, &str)> = preview["preview"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap(),
                c["suggested"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        suggested,
        [
            ("Mobile", "phone"),
            ("First Name", "first_name"),
            ("Last Name", "last_name"),
            ("E-mail", "email"),
            ("City", "fields.city"),
        ]
    );
    assert_eq!(preview["preview"]["rows"][0]["row"], 2);
    assert_eq!(preview["preview"]["rows"][0]["cells"][1], "Jürgen");
    // Nothing is imported before the commit.
    assert_eq!(contact_count(&app).await, 0);

    let id = preview["id"].as_str().unwrap();
    let response = app
        .send_json(
            Method::POST,
            &format!("/api/imports/{id}/commit"),
            &json!({"default_region": "US", "group_names": ["Spring sale"]}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let import = wait_import(&app, id).await;
    assert_eq!(import["status"], "done", "{import}");
    let report = &import["report"];
    assert_eq!(report["rows"], 5, "{report}");
    assert_eq!(report["created"], 2);
    assert_eq!(report["invalid"], 2);
    assert_eq!(report["duplicates"], 1);
    assert_eq!(report["added_to_groups"], 2);
    assert_eq!(report["groups"][0]["name"], "Spring sale");
    assert_eq!(report["groups"][0]["created"], true);
    assert_eq!(import["progress"]["rows_read"], 5);
    let rejected: Vec<(u64, String)> = import["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["row"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(rejected.iter().map(|r| r.0).collect::<Vec<_>>(), [3, 4, 5]);
    assert!(rejected[0].1.starts_with("phone:"), "{rejected:?}");
    // Row 4's number is British and the region is US: the phone is the first problem found.
    assert!(rejected[1].1.starts_with("phone:") || rejected[1].1.starts_with("email:"));
    assert!(rejected[2].1.contains("earlier row"), "{rejected:?}");

    let errors = app.get(&format!("/api/imports/{id}/errors.csv")).await;
    assert_eq!(errors.status(), 200);
    let errors = errors.text().await.unwrap();
    let mut lines = errors.lines();
    // The rows as the file had them, after their number and reason.
    assert_eq!(
        lines.next(),
        Some("Rejected row,Rejected because,Mobile,First Name,Last Name,E-mail,City")
    );
    let lines: Vec<&str> = lines.collect();
    assert_eq!(lines.len(), 3, "{errors}");
    assert!(lines[0].starts_with("3,") && lines[0].ends_with(",not a number,Ann,Lee,,Oslo"));
    assert!(lines[1].ends_with(",020 7946 0958,José,García,bad-email,Madrid"));
    assert!(
        lines[2].ends_with(",+14155550101,Again,Duplicate,,"),
        "{errors}"
    );

    // The same file again, without uploading it: a new import, previewed, to commit with other
    // settings; the list shows both, newest first.
    let again = app
        .send_json(Method::POST, &format!("/api/imports/{id}/copy"), &json!({}))
        .await;
    assert_eq!(again.status(), 201);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["status"], "previewed");
    assert_eq!(again["file_name"], "customers.csv");
    assert_eq!(again["preview"], preview["preview"]);
    let again_id = again["id"].as_str().unwrap();
    let response = app
        .send_json(
            Method::POST,
            &format!("/api/imports/{again_id}/commit"),
            &json!({"default_region": "GB", "mode": "skip"}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let second = wait_import(&app, again_id).await;
    assert_eq!(second["status"], "done", "{second}");
    // Read in GB, row 7's US national number is refused too; Jürgen is skipped this time.
    assert_eq!(second["report"]["invalid"], 3, "{second}");
    assert_eq!(second["report"]["skipped"], 1, "{second}");
    let list: Value = app
        .get("/api/imports?page_size=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["count"], 2);
    assert_eq!(list["imports"][0]["id"], again_id);
    assert_eq!(list["imports"][0]["report"]["skipped"], 1);
    assert_eq!(list["page_size"], 1);
    let bad = app.get("/api/imports?page_size=0").await;
    assert_eq!(bad.status(), 400);

    let jurgen = contact_by_phone(&app, "+14155550101").await;
    assert_eq!(jurgen["first_name"], "Jürgen");
    assert_eq!(jurgen["last_name"], "Müller");
    assert_eq!(jurgen["fields"]["city"], "Zürich");
    let bea = contact_by_phone(&app, "+14155550102").await;
    assert_eq!(bea["fields"]["city"], "€ City");
    let group_id = report["groups"][0]["id"].as_str().unwrap();
    assert_eq!(
        app.member_numbers(group_id).await,
        ["+14155550101", "+14155550102"]
    );
    let group: Value = app
        .get(&format!("/api/contactgroups/{group_id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(group["size"], 2, "{group}");

    // Committing again imports nothing twice.
    let again = app
        .send_json(
            Method::POST,
            &format!("/api/imports/{id}/commit"),
            &json!({}),
        )
        .await;
    assert_eq!(again.status(), 409);
    assert_eq!(contact_count(&app).await, 2);
}

fn utf16(text: &str, little_endian: bool, bom: bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    if bom {
        bytes.extend(if little_endian {
            [0xFF, 0xFE]
        } else {
            [0xFE, 0xFF]
        });
    }
    for unit in text.encode_utf16() {
        bytes.extend(if little_endian {
            unit.to_le_bytes()
        } else {
            unit.to_be_bytes()
        });
    }
    bytes
}

async fn encodings_delimiters_and_quoted_newlines(app: TestApp) {
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "bom.csv",
            [
                &[0xEF, 0xBB, 0xBF][..],
                b"phone,name\n+14155550111,Zo\xC3\xAB\n",
            ]
            .concat(),
            "utf-8-bom",
            ",",
        ),
        (
            "tabs.txt",
            utf16("Phone\tName\n+14155550112\tAnaïs\n", true, true),
            "utf-16le",
            "\t",
        ),
        (
            "pipes.csv",
            utf16("Phone|Name\n+14155550113|Ólafur\n", false, false),
            "utf-16be",
            "|",
        ),
    ];
    for (name, bytes, encoding, delimiter) in cases {
        let (status, preview) = upload(&app, name, bytes).await;
        assert_eq!(status, 201, "{name}: {preview}");
        assert_eq!(preview["preview"]["encoding"], encoding, "{name}");
        assert_eq!(preview["preview"]["delimiter"], delimiter, "{name}");
        assert_eq!(
            preview["preview"]["columns"][0]["suggested"], "phone",
            "{name}"
        );
        assert_eq!(preview["preview"]["total_rows"], 1, "{name}");
    }
    // A quoted field with the delimiter, a doubled quote and a newline stays one row.
    let csv = "phone,first_name,fields.note\n\
               +14155550114,\"Smith, \"\"Jr\"\"\",\"line one\nline two\"\n\
               +14155550115,Plain,\n";
    let import = import_file(&app, "quoted.csv", csv.as_bytes().to_vec(), json!({})).await;
    assert_eq!(import["report"]["created"], 2, "{import}");
    let smith = contact_by_phone(&app, "+14155550114").await;
    assert_eq!(smith["first_name"], "Smith, \"Jr\"");
    assert_eq!(smith["fields"]["note"], "line one\nline two");
}

fn xlsx_with_numeric_phone() -> Vec<u8> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let first = workbook.add_worksheet();
    first.set_name("Notes").unwrap();
    first.write_string(0, 0, "nothing here").unwrap();
    let sheet = workbook.add_worksheet();
    sheet.set_name("People").unwrap();
    for (column, header) in ["Cell Phone", "Forename", "Surname", "Groups"]
        .iter()
        .enumerate()
    {
        sheet.write_string(0, column as u16, *header).unwrap();
    }
    // Stored as a number, as spreadsheets do when a column is not formatted as text.
    sheet.write_number(1, 0, 14155550121.0).unwrap();
    sheet.write_string(1, 1, "Numeric").unwrap();
    sheet.write_string(1, 3, "VIP; Newsletter").unwrap();
    sheet.write_string(2, 0, "+14155550122").unwrap();
    sheet.write_string(2, 1, "Text").unwrap();
    sheet.write_string(2, 3, "VIP").unwrap();
    workbook.save_to_buffer().unwrap()
}

const VCARDS: &str = "BEGIN:VCARD\r\n\
VERSION:3.0\r\n\
N:Doe;Jane;;;\r\n\
FN:Jane Doe\r\n\
item1.TEL;type=CELL:+1 415 555 0131\r\n\
item1.X-ABLabel:mobile\r\n\
EMAIL;type=INTERNET:jane@example.com\r\n\
CATEGORIES:Friends,Runners\r\n\
END:VCARD\r\n\
BEGIN:VCARD\r\n\
VERSION:4.0\r\n\
FN:Sam Roe\r\n\
TEL;VALUE=uri;TYPE=cell:tel:+1-415-555-0132\r\n\
CATEGORIES:Runners\r\n\
END:VCARD\r\n";

async fn spreadsheets_and_vcards(app: TestApp) {
    let bytes = xlsx_with_numeric_phone();
    let (status, preview) = upload_to(&app, "people.xlsx", bytes, &app.token, Some("People")).await;
    assert_eq!(status, 201, "{preview}");
    assert_eq!(preview["preview"]["format"], "xlsx");
    assert_eq!(preview["preview"]["sheets"], json!(["Notes", "People"]));
    assert_eq!(preview["preview"]["sheet"], "People");
    assert_eq!(preview["preview"]["rows"][0]["cells"][0], "14155550121");
    let id = preview["id"].as_str().unwrap();
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
    assert_eq!(import["report"]["created"], 2);
    let warnings = import["report"]["warnings"].to_string();
    assert!(warnings.contains("numbers"), "{warnings}");
    let groups = import["report"]["groups"].as_array().unwrap();
    let vip = groups.iter().find(|g| g["name"] == "VIP").expect("VIP");
    assert_eq!(vip["added"], 2);
    assert_eq!(
        contact_by_phone(&app, "+14155550121").await["first_name"],
        "Numeric"
    );

    let (status, missing) = upload_to(
        &app,
        "people.xlsx",
        xlsx_with_numeric_phone(),
        &app.token,
        Some("Nope"),
    )
    .await;
    assert_eq!(status, 400, "{missing}");
    assert_eq!(missing["errors"][0]["field"], "sheet");

    let import = import_file(&app, "phone.vcf", VCARDS.as_bytes().to_vec(), json!({})).await;
    assert_eq!(import["preview"]["format"], "vcard");
    assert_eq!(import["report"]["created"], 2, "{import}");
    let jane = contact_by_phone(&app, "+14155550131").await;
    assert_eq!(jane["first_name"], "Jane");
    assert_eq!(jane["last_name"], "Doe");
    assert_eq!(jane["email"], "jane@example.com");
    let sam = contact_by_phone(&app, "+14155550132").await;
    assert_eq!(sam["first_name"], "Sam");
    let runners = import["report"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == "Runners")
        .expect("Runners")
        .clone();
    assert_eq!(runners["added"], 2);
}

async fn modes_for_existing_contacts(app: TestApp) {
    let created = app
        .send_json(
            Method::POST,
            "/api/contacts",
            &json!({"phone": "+14155550141", "first_name": "Old", "last_name": "Name",
                    "email": "old@example.com", "fields": {"tier": "gold", "city": "Paris"}}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let opted = app
        .send_json(
            Method::POST,
            "/api/contacts",
            &json!({"phone": "+14155550142", "opted_out": true}),
        )
        .await;
    assert_eq!(opted.status(), 201);
    let file = "phone,first_name,last_name,email,fields.city,opted_out\n\
                +14155550141,New,,,Rome,\n\
                +14155550142,Back,,,,no\n"
        .as_bytes()
        .to_vec();

    // update: cells with a value overwrite, empty ones keep, custom fields merge.
    let import = import_file(&app, "a.csv", file.clone(), json!({"mode": "update"})).await;
    assert_eq!(import["report"]["updated"], 2, "{import}");
    assert_eq!(import["report"]["opt_ins_refused"], 1);
    let contact = contact_by_phone(&app, "+14155550141").await;
    assert_eq!(contact["first_name"], "New");
    assert_eq!(contact["last_name"], "Name");
    assert_eq!(contact["email"], "old@example.com");
    assert_eq!(contact["fields"], json!({"tier": "gold", "city": "Rome"}));
    assert_eq!(
        contact_by_phone(&app, "+14155550142").await["opted_out"],
        true
    );

    // The same file again changes nothing.
    let import = import_file(&app, "a.csv", file.clone(), json!({"mode": "update"})).await;
    assert_eq!(import["report"]["unchanged"], 2, "{import}");

    // skip: left as they are.
    let skip = "phone,first_name\n+14155550141,Skipped\n"
        .as_bytes()
        .to_vec();
    let import = import_file(&app, "b.csv", skip, json!({"mode": "skip"})).await;
    assert_eq!(import["report"]["skipped"], 1, "{import}");
    assert_eq!(
        contact_by_phone(&app, "+14155550141").await["first_name"],
        "New"
    );

    // replace_fields: the row replaces names, email, gender and custom fields.
    let replace = "phone,first_name,fields.city\n+14155550141,Only,Oslo\n"
        .as_bytes()
        .to_vec();
    let import = import_file(&app, "c.csv", replace, json!({"mode": "replace_fields"})).await;
    assert_eq!(import["report"]["updated"], 1, "{import}");
    let contact = contact_by_phone(&app, "+14155550141").await;
    assert_eq!(contact["first_name"], "Only");
    assert_eq!(contact["last_name"], Value::Null);
    assert_eq!(contact["email"], Value::Null);
    assert_eq!(contact["fields"], json!({"city": "Oslo"}));

    // An opt-out in a file is applied whatever the mode, and recorded.
    let stop = "phone,opted_out\n+14155550141,yes\n".as_bytes().to_vec();
    let import = import_file(&app, "d.csv", stop, json!({"mode": "skip"})).await;
    assert_eq!(import["report"]["opted_out"], 1, "{import}");
    let contact = contact_by_phone(&app, "+14155550141").await;
    assert_eq!(contact["opted_out"], true);
    let history: Value = app
        .get(&format!(
            "/api/contacts/{}/consent",
            contact["id"].as_str().unwrap()
        ))
        .await
        .json()
        .await
        .unwrap();
    assert!(history.to_string().contains("\"import\""), "{history}");
}

/// Rows are written in chunks of 5,000: a number met again in a later chunk must be left out
/// like one met again in the same chunk, whether the import created its contact or found it.
async fn numbers_met_again_are_left_out_at_any_distance(app: TestApp) {
    let existing = "+14155550141";
    let created = app
        .send_json(
            Method::POST,
            "/api/contacts",
            &json!({"phone": existing, "first_name": "Old"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let number = |i: usize| format!("+1415{:07}", 3_000_000 + i);
    let mut file = String::from("phone,first_name\n");
    // Data row r (counting the header as row 1) is line r of the file.
    for row in 2..=12_001 {
        let (phone, name) = match row {
            3 => (existing.to_owned(), "First".to_owned()),
            4 | 9_000 => (number(2), "Again".to_owned()),
            11_000 => (existing.to_owned(), "Again".to_owned()),
            _ => (number(row), format!("Row{row}")),
        };
        file.push_str(&format!("{phone},{name}\n"));
    }
    let settings = json!({"mode": "update", "group_names": ["Everyone"]});
    let import = import_file(&app, "big.csv", file.clone().into_bytes(), settings.clone()).await;
    let report = &import["report"];
    assert_eq!(report["rows"], 12_000, "{report}");
    assert_eq!(report["created"], 11_996, "{report}");
    assert_eq!(report["updated"], 1, "{report}");
    assert_eq!(report["duplicates"], 3, "{report}");
    assert_eq!(report["added_to_groups"], 11_997, "{report}");
    assert_eq!(
        contact_by_phone(&app, existing).await["first_name"],
        "First"
    );
    assert_eq!(
        contact_by_phone(&app, &number(2)).await["first_name"],
        "Row2"
    );
    let id = import["id"].as_str().unwrap();
    let errors = app
        .get(&format!("/api/imports/{id}/errors.csv"))
        .await
        .text()
        .await
        .unwrap();
    let rows: Vec<&str> = errors
        .lines()
        .skip(1)
        .map(|line| line.split(',').next().unwrap())
        .collect();
    assert_eq!(rows, ["4", "9000", "11000"], "{errors}");
    assert!(errors.contains("earlier row"), "{errors}");
    // The group holds the file's numbers, each once: the existing contact beside the new ones
    // of its chunk, each new one by its own key.
    let group_id = report["groups"][0]["id"].as_str().unwrap();
    let members = app.member_numbers(group_id).await;
    let mut expected: Vec<String> = (2..=12_001)
        .filter(|row| ![3, 4, 9_000, 11_000].contains(row))
        .map(number)
        .chain([existing.to_owned()])
        .collect();
    expected.sort();
    assert_eq!(members, expected);

    // The same file again: every first occurrence is found unchanged, the rest are still
    // duplicates.
    let import = import_file(&app, "big.csv", file.into_bytes(), settings).await;
    let report = &import["report"];
    assert_eq!(report["unchanged"], 11_997, "{report}");
    assert_eq!(report["duplicates"], 3, "{report}");
    assert_eq!(report["created"], 0, "{report}");
}

async fn bad_uploads_and_commits_name_the_problem(app: TestApp) {
    // No file field.
    let response = app
        .client
        .post(format!("{}/api/imports", app.address))
        .bearer_auth(&app.token)
        .multipart(Form::new().text("sheet", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "file");

    // Not a multipart form at all: still a problem document, not axum's plain text.
    let response = app
        .client
        .post(format!("{}/api/imports", app.address))
        .bearer_auth(&app.token)
        .body("phone\n+14155550151\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "file");

    // Binary garbage and an empty file.
    for bytes in [
        vec![0u8, 159, 146, 150, 0, 1, 2, 3, 255, 254, 0, 0, 7],
        Vec::new(),
    ] {
        let (status, problem) = upload(&app, "x.bin", bytes).await;
        assert_eq!(status, 400, "{problem}");
        assert_eq!(problem["errors"][0]["field"], "file");
    }

    let (_, preview) = upload(&app, "p.csv", b"Name,Mobile\nAl,+14155550151\n".to_vec()).await;
    let id = preview["id"].as_str().unwrap();
    let commit = |body: Value| {
        let path = format!("/api/imports/{id}/commit");
        let app = &app;
        async move {
            let response = app.send_json(Method::POST, &path, &body).await;
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (status, problem) = commit(json!({"mapping": {"Fax": "phone"}})).await;
    assert_eq!(status, 400);
    assert_eq!(problem["errors"][0]["field"], "mapping.Fax");
    let (status, problem) = commit(json!({"mapping": {"Name": "first_name"}})).await;
    assert_eq!(status, 400);
    assert_eq!(problem["errors"][0]["field"], "mapping");
    let (status, problem) = commit(json!({"mapping": {"Mobile": "mobile"}})).await;
    assert_eq!(status, 400);
    assert_eq!(problem["errors"][0]["field"], "mapping.Mobile");
    let (status, problem) = commit(json!({"default_region": "XX"})).await;
    assert_eq!(status, 400);
    assert_eq!(problem["errors"][0]["field"], "default_region");
    let (status, problem) = commit(json!({"groups": ["01JD4Q3T5V8Z9X2W1Y0A7B6C5D", "nope"]})).await;
    assert_eq!(status, 400);
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"groups[0]") && fields.contains(&"groups[1]"),
        "{problem}"
    );
    let (status, _) = commit(json!({"mode": "merge"})).await;
    assert_eq!(status, 400);
    // None of that started the import; a good commit still can.
    assert_eq!(contact_count(&app).await, 0);
    let (status, _) = commit(json!({})).await;
    assert_eq!(status, 202);
    assert_eq!(wait_import(&app, id).await["status"], "done");

    // Unknown ids and another plan's import are 404.
    assert_eq!(app.get("/api/imports/nope").await.status(), 404);
    assert_eq!(
        app.get("/api/imports/01JD4Q3T5V8Z9X2W1Y0A7B6C5D")
            .await
            .status(),
        404
    );
    let (_, other_token) = app.create_plan(None).await;
    let response = app
        .client
        .get(format!("{}/api/imports/{id}", app.address))
        .bearer_auth(&other_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    // Templates.
    let csv = app.get("/api/imports/templates/contacts.csv").await;
    assert_eq!(csv.status(), 200);
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("phone,first_name,last_name,email"), "{csv}");
    let xlsx = app.get("/api/imports/templates/contacts.xlsx").await;
    assert_eq!(xlsx.status(), 200);
    assert!(xlsx.bytes().await.unwrap().starts_with(b"PK"));
}

/// Polls an export until done; returns the downloaded file.
pub async fn export(app: &TestApp, body: Value) -> Vec<u8> {
    let response = app.send_json(Method::POST, "/api/exports", &body).await;
    assert_eq!(response.status(), 202, "export {body}");
    let export: Value = response.json().await.unwrap();
    let id = export["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    loop {
        let export: Value = app
            .get(&format!("/api/exports/{id}"))
            .await
            .json()
            .await
            .unwrap();
        match export["status"].as_str() {
            Some("done") => break,
            Some("running") => {
                let early = app.get(&format!("/api/exports/{id}/download")).await;
                assert!(early.status() == 409 || early.status() == 200);
            }
            _ => panic!("export failed: {export}"),
        }
        assert!(started.elapsed() < Duration::from_secs(30), "export stuck");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let download = app.get(&format!("/api/exports/{id}/download")).await;
    assert_eq!(download.status(), 200);
    download.bytes().await.unwrap().to_vec()
}

/// Every contact of the plan behind `token`, as comparable JSON (ids and times left out).
async fn snapshot(app: &TestApp, token: &str) -> Vec<Value> {
    let list: Value = app
        .client
        .get(format!("{}/api/contacts?limit=1000", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut contacts = Vec::new();
    for contact in list["contacts"].as_array().unwrap() {
        let with_groups: Value = app
            .client
            .get(format!(
                "{}/api/contacts/{}?include=groups",
                app.address,
                contact["id"].as_str().unwrap()
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let mut names = Vec::new();
        for group in with_groups["groups"].as_array().into_iter().flatten() {
            let id = group["id"].as_str().unwrap();
            let group: Value = app
                .client
                .get(format!("{}/api/contactgroups/{id}", app.address))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            names.push(group["name"].clone());
        }
        names.sort_by_key(|name| name.to_string());
        contacts.push(json!({
            "phone": contact["phone"],
            "first_name": contact["first_name"],
            "last_name": contact["last_name"],
            "email": contact["email"],
            "gender": contact["gender"],
            "opted_out": contact["opted_out"],
            "fields": contact["fields"],
            "groups": names,
        }));
    }
    contacts.sort_by_key(|contact| contact["phone"].to_string());
    contacts
}

async fn exports_import_back_to_the_same_contacts(app: TestApp) {
    let people = [
        json!({"phone": "+14155550161", "first_name": "Ada", "last_name": "Lovelace",
               "email": "ada@example.com", "gender": "female", "fields": {"city": "London"}}),
        json!({"phone": "+14155550162", "first_name": "=cmd()", "fields": {"note": "a, b; c\nd"}}),
        json!({"phone": "+4915112345678", "opted_out": true}),
    ];
    for person in &people {
        let response = app.send_json(Method::POST, "/api/contacts", person).await;
        assert_eq!(response.status(), 201, "{person}");
    }
    app.create_group(json!({"name": "Customers", "members": ["+14155550161", "+4915112345678"]}))
        .await;
    let newsletter = app
        .create_group(json!({"name": "Newsletter", "members": ["+14155550161"]}))
        .await;
    let original = snapshot(&app, &app.token).await;

    for format in ["csv", "xlsx", "vcf"] {
        let file = export(&app, json!({"format": format})).await;
        let (_, token) = app.create_plan(Some("US")).await;
        let (status, preview) =
            upload_to(&app, &format!("contacts.{format}"), file, &token, None).await;
        assert_eq!(status, 201, "{format}: {preview}");
        let id = preview["id"].as_str().unwrap();
        let response = app
            .client
            .post(format!("{}/api/imports/{id}/commit", app.address))
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let started = Instant::now();
        loop {
            let import: Value = app
                .client
                .get(format!("{}/api/imports/{id}", app.address))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if import["status"] == "done" {
                assert_eq!(import["report"]["created"], 3, "{format}: {import}");
                break;
            }
            assert_ne!(import["status"], "failed", "{format}: {import}");
            assert!(started.elapsed() < Duration::from_secs(30));
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let mut copy = snapshot(&app, &token).await;
        let mut expected = original.clone();
        if format == "vcf" {
            // vCard has no place for custom fields: they travel in CSV and XLSX.
            for contact in copy.iter_mut().chain(expected.iter_mut()) {
                contact["fields"] = json!({});
            }
        }
        assert_eq!(copy, expected, "{format} round trip");
    }

    // A group's export holds its members only; xlsx and vcf are what they say.
    let file = export(&app, json!({"group_id": newsletter["id"]})).await;
    let text = String::from_utf8(file).unwrap();
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.contains("+14155550161"));
    let file = export(&app, json!({"q": "opted_out = true", "format": "vcf"})).await;
    let text = String::from_utf8(file).unwrap();
    assert_eq!(text.matches("BEGIN:VCARD").count(), 1, "{text}");

    let bad = app
        .send_json(Method::POST, "/api/exports", &json!({"group_id": "nope"}))
        .await;
    assert_eq!(bad.status(), 400);
    let bad = app
        .send_json(Method::POST, "/api/exports", &json!({"format": "pdf"}))
        .await;
    assert_eq!(bad.status(), 400);
}

/// A multipart upload whose file is `size` zero bytes, generated as it is sent.
async fn upload_zeros(app: &TestApp, size: u64) -> reqwest::Response {
    const PIECE: usize = 1024 * 1024;
    let pieces = size.div_ceil(PIECE as u64);
    let stream = futures::stream::iter((0..pieces).map(move |index| {
        let length = if index + 1 == pieces {
            size - index * PIECE as u64
        } else {
            PIECE as u64
        };
        Ok::<_, std::io::Error>(vec![0u8; length as usize])
    }));
    let part =
        Part::stream_with_length(reqwest::Body::wrap_stream(stream), size).file_name("zeros.csv");
    app.client
        .post(format!("{}/api/imports", app.address))
        .bearer_auth(&app.token)
        .multipart(Form::new().part("file", part))
        .send()
        .await
        .unwrap()
}

/// The upload limit (256 MiB) at the limit and one byte past it. The limit does not depend on
/// the backend, so SQLite alone is enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_are_limited_to_256_mib() {
    let Some(app) = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite).await else {
        return;
    };
    let limit = 256 * 1024 * 1024;
    // At the limit the file is read (and refused for what it holds, not for its size).
    let at = upload_zeros(&app, limit).await;
    assert_eq!(at.status(), 400);
    let problem: Value = at.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "file", "{problem}");
    let past = upload_zeros(&app, limit + 1).await;
    assert_eq!(past.status(), 413);
    let problem: Value = past.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("268435456"),
        "{problem}"
    );
}
