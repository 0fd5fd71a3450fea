//! U+0000 (NUL) in any text of any request is refused with 400 naming the field, identically on
//! SQLite and PostgreSQL, before anything is written. The fields are found in the OpenAPI
//! document the router generates — every string of every request body (through `$ref`s, nested
//! objects, arrays and maps) and every string query parameter — so a new route or field is
//! covered without editing this test.

use reqwest::Method;
use serde_json::{Map, Value, json};

use crate::helpers::TestApp;
use crate::imports::{upload, wait_import};
use crate::on_both_backends;

on_both_backends!(
    every_string_field_refuses_nul,
    an_imported_cell_with_nul_is_a_rejected_row,
);

const NUL_TEXT: &str = "a\u{0}b";

/// The records the routes' path parameters name, so that every request reaches validation.
struct Fixtures {
    group: String,
    contact: String,
    contact_phone: String,
    batch: String,
    import: String,
    export: String,
    webhook: String,
}

impl Fixtures {
    async fn create(app: &TestApp) -> Self {
        let group = app
            .create_group(json!({"name": "Fixture", "members": ["+14155550901"]}))
            .await;
        let contact: Value = app
            .send_json(
                Method::POST,
                "/api/contacts",
                &json!({"phone": "+14155550902", "first_name": "Fix"}),
            )
            .await
            .json()
            .await
            .unwrap();
        let batch: Value = app
            .send_json(
                Method::POST,
                "/api/batches",
                &json!({"to": ["+14155550903"], "body": "x", "send_at": "2999-01-01T00:00:00Z"}),
            )
            .await
            .json()
            .await
            .unwrap();
        let (status, import) = upload(app, "fixture.csv", b"phone\n+14155550904\n".to_vec()).await;
        assert_eq!(status, 201, "{import}");
        let export: Value = app
            .send_json(Method::POST, "/api/exports", &json!({}))
            .await
            .json()
            .await
            .unwrap();
        let webhook: Value = app
            .send_json(
                Method::POST,
                "/api/webhooks",
                &json!({"url": "https://example.com/hook", "events": ["batch.sent"]}),
            )
            .await
            .json()
            .await
            .unwrap();
        let id = |value: &Value| value["id"].as_str().expect("an id").to_owned();
        Fixtures {
            group: id(&group),
            contact: id(&contact),
            contact_phone: contact["phone"].as_str().unwrap().to_owned(),
            batch: id(&batch),
            import: id(&import),
            export: id(&export),
            webhook: id(&webhook),
        }
    }

    /// The path with its parameters filled in by the records of its collection.
    fn fill(&self, app: &TestApp, template: &str) -> String {
        let id = if template.starts_with("/api/contactgroups") {
            &self.group
        } else if template.starts_with("/api/contacts") {
            &self.contact
        } else if template.starts_with("/api/batches") {
            &self.batch
        } else if template.starts_with("/api/imports") {
            &self.import
        } else if template.starts_with("/api/webhooks") {
            &self.webhook
        } else {
            &self.export
        };
        template
            .replace("{service_plan_id}", &app.plan_id)
            .replace("{group_id}", &self.group)
            .replace("{batch_id}", &self.batch)
            .replace("{id}", id)
    }

    /// A body the route accepts as it is, so that only the field given a NUL is wrong.
    fn body(&self, method: &Method, template: &str) -> Value {
        let far = "2999-01-01T00:00:00Z";
        match (method.as_str(), template) {
            (
                "POST",
                "/api/batches" | "/api/batches/preview" | "/xms/v1/{service_plan_id}/batches",
            ) => {
                json!({"to": ["+14155550905"], "body": "x", "send_at": far})
            }
            ("POST", "/api/contactgroups") => json!({"name": "N"}),
            ("PUT", "/api/contactgroups/{id}") => json!({"name": "N", "members": []}),
            (_, "/api/contactgroups/members") => {
                json!({"contact_ids": [self.contact], "group_ids": [self.group]})
            }
            ("POST", "/api/contactgroups/{id}/members") => json!({"numbers": []}),
            ("POST", "/api/contacts") => json!({"phone": "+14155550906"}),
            ("DELETE", "/api/contacts") | ("POST", "/api/contacts/opt-out") => json!({"ids": []}),
            ("PUT", "/api/contacts/{id}") => json!({"phone": self.contact_phone}),
            ("POST", "/api/inbound") => json!({
                "type": "mo_text", "id": "m1", "from": "+14155550907", "to": "12345",
                "body": "hello",
            }),
            ("PUT", "/api/keywords") => json!({"opt_out": ["STOP"], "opt_in": ["START"]}),
            ("POST", "/api/tokens") => json!({"scopes": ["read"]}),
            ("POST", "/api/webhooks") => {
                json!({"url": "https://example.com/hook", "events": ["batch.sent"]})
            }
            _ => json!({}),
        }
    }
}

/// The OpenAPI document of the running app.
async fn openapi(app: &TestApp) -> Value {
    app.client
        .get(format!("{}/openapi.json", app.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Follows a `$ref` to its schema.
fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.trim_start_matches("#/components/schemas/");
            resolve(document, &document["components"]["schemas"][name])
        }
        None => schema,
    }
}

/// The schema a value takes when it is given: `oneOf: [null, X]` is X.
fn present<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    let schema = resolve(document, schema);
    match schema["oneOf"].as_array() {
        Some(variants) => variants
            .iter()
            .map(|variant| resolve(document, variant))
            .find(|variant| variant["type"] != "null")
            .unwrap_or(schema),
        None => schema,
    }
}

fn has_type(schema: &Value, name: &str) -> bool {
    match &schema["type"] {
        Value::String(one) => one == name,
        Value::Array(many) => many.iter().any(|t| t == name),
        _ => false,
    }
}

/// The smallest value of the schema that deserializes: its required properties only.
fn minimal(document: &Value, schema: &Value) -> Value {
    let schema = present(document, schema);
    if let Some(first) = schema["enum"].as_array().and_then(|values| values.first()) {
        return first.clone();
    }
    if has_type(schema, "object") {
        let mut object = Map::new();
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap();
            let property = &schema["properties"][name];
            object.insert(name.to_owned(), minimal(document, property));
        }
        Value::Object(object)
    } else if has_type(schema, "array") {
        json!([])
    } else if has_type(schema, "string") {
        schema.get("example").cloned().unwrap_or(json!("x"))
    } else if has_type(schema, "boolean") {
        json!(false)
    } else {
        json!(0)
    }
}

/// `parent` and `child` joined as the API names fields: `a.b`, `a[0]`.
fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else if child.is_empty() || child.starts_with('[') {
        format!("{parent}{child}")
    } else {
        format!("{parent}.{child}")
    }
}

/// Every way to put one NUL into a value of `schema`, starting from `base`: the value with the
/// NUL, and the field the error must name (relative to the value).
fn nul_cases(document: &Value, schema: &Value, base: &Value) -> Vec<(Value, String)> {
    let schema = present(document, schema);
    let base = if base.is_null() {
        minimal(document, schema)
    } else {
        base.clone()
    };
    if has_type(schema, "string") {
        if schema["format"] == "binary" {
            return Vec::new();
        }
        return vec![(json!(NUL_TEXT), String::new())];
    }
    if has_type(schema, "array") {
        let items = &schema["items"];
        let first = base.get(0).cloned().unwrap_or(Value::Null);
        return nul_cases(document, items, &first)
            .into_iter()
            .map(|(item, field)| (json!([item]), join("[0]", &field)))
            .collect();
    }
    if !has_type(schema, "object") {
        return Vec::new();
    }
    let mut cases = Vec::new();
    match schema["properties"].as_object() {
        Some(properties) => {
            for (name, property) in properties {
                let inner = base.get(name).cloned().unwrap_or(Value::Null);
                for (value, field) in nul_cases(document, property, &inner) {
                    let mut object = base.clone();
                    object[name.as_str()] = value;
                    cases.push((object, join(name, &field)));
                }
            }
        }
        // A map (custom fields, an import's mapping): a NUL in a value and in a key.
        None => {
            let mut value = base.clone();
            value["note"] = json!(NUL_TEXT);
            cases.push((value, "note".to_owned()));
            let mut key = base.clone();
            key[NUL_TEXT] = json!("x");
            cases.push((key, String::new()));
        }
    }
    cases
}

/// Asserts that `response` refuses the request with 400 naming `field`, in the surface's shape.
async fn assert_refused(response: reqwest::Response, sinch: bool, field: &str, what: &str) {
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 400, "{what}: {body}");
    if sinch {
        assert_eq!(
            body["code"], "syntax_invalid_parameter_format",
            "{what}: {body}"
        );
        assert!(
            body["text"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{field}: ")),
            "{what}: {body}"
        );
    } else {
        let named = body["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|error| error["field"] == field);
        assert!(named, "{what} does not name {field}: {body}");
    }
}

async fn every_string_field_refuses_nul(app: TestApp) {
    let fixtures = Fixtures::create(&app).await;
    let document = openapi(&app).await;
    let mut body_cases = 0;
    let mut query_cases = 0;
    for (template, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let path = fixtures.fill(&app, template);
            let sinch = template.starts_with("/xms/");
            let what = |field: &str| format!("{method} {template} with a NUL in {field}");

            let content = &operation["requestBody"]["content"];
            if let Some(media) = content.get("application/json") {
                let base = fixtures.body(&method, template);
                for (body, field) in nul_cases(&document, &media["schema"], &base) {
                    // A name of the body's own map is named by the root, `.`.
                    let field = if field.is_empty() {
                        ".".to_owned()
                    } else {
                        field
                    };
                    let response = app.send_json(method.clone(), &path, &body).await;
                    assert_refused(response, sinch, &field, &what(&field)).await;
                    body_cases += 1;
                }
            } else if content.get("multipart/form-data").is_some() {
                // The upload's only text is its `sheet` field (checked here) and the file's
                // name, which cannot hold a NUL: a part's headers are parsed by httparse, which
                // refuses control bytes. The file's cells are the import test's.
                assert_eq!(template, "/api/imports", "an unexpected multipart route");
                continue;
            }

            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                // Headers (`If-Match`) cannot carry a NUL: HTTP forbids it, and the client
                // refuses to send one. Path parameters are ids, tried below.
                if parameter["in"] != "query" || !has_type(&parameter["schema"], "string") {
                    continue;
                }
                let name = parameter["name"].as_str().unwrap();
                let response = app
                    .request(method.clone(), &format!("{path}?{name}=a%00b"))
                    .send()
                    .await
                    .unwrap();
                assert_refused(response, sinch, name, &what(name)).await;
                query_cases += 1;
            }

            // An id with a NUL names nothing: 404 (403 for another plan's path), never a
            // server error.
            if template.contains('{') {
                let nul_ids = ["{service_plan_id}", "{group_id}", "{batch_id}", "{id}"]
                    .iter()
                    .fold(template.clone(), |path, name| path.replace(name, "a%00b"));
                let response = app
                    .request(method.clone(), &nul_ids)
                    .json(&fixtures.body(&method, template))
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                assert!(
                    [400, 403, 404].contains(&status),
                    "{method} {template} with a NUL id: {status}"
                );
            }
        }
    }
    assert!(body_cases >= 80, "too few body fields found: {body_cases}");
    assert!(
        query_cases >= 40,
        "too few query parameters found: {query_cases}"
    );

    // Parameters the document cannot list: custom-field filters, and a NUL in a name.
    let response = app.get("/api/contacts?fields.plan=gold%00").await;
    assert_refused(response, false, "fields.plan", "fields.plan").await;
    let response = app.get("/api/contacts?fields.pl%00an=gold").await;
    assert_refused(response, false, "fields.pl\\0an", "a parameter's name").await;

    // The upload's `sheet` field.
    let form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"phone\n+14155550908\n".to_vec())
                .file_name("people.csv"),
        )
        .text("sheet", NUL_TEXT);
    let response = app
        .request(Method::POST, "/api/imports")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_refused(response, false, "sheet", "an upload's sheet").await;
    // A file name with a raw NUL is a malformed form, not a server error.
    let boundary = "roster-test-boundary";
    let mut raw =
        format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a")
            .into_bytes();
    raw.push(0);
    raw.extend_from_slice(
        format!("b.csv\"\r\n\r\nphone\n+14155550909\n\r\n--{boundary}--\r\n").as_bytes(),
    );
    let response = app
        .request(Method::POST, "/api/imports")
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_refused(response, false, "file", "an upload's file name").await;

    // Nothing the refused requests named was written.
    let group: Value = app
        .get(&format!("/api/contactgroups/{}", fixtures.group))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        (group["name"].as_str(), group["size"].as_i64()),
        (Some("Fixture"), Some(1))
    );
    assert_eq!(group["status"], "ACTIVE");
    let contacts: Value = app
        .get("/api/contacts?count=true")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(contacts["count"], 2, "{contacts}");
}

/// A workbook whose cells hold U+0000 (written as `_x0000_`, as Excel does).
fn workbook_with_nul_cells() -> Vec<u8> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    let rows = [
        ["Phone", "First name", "Notes", "Gender", "Skipped"],
        ["+14155550911", "Ada", "fine", "F", ""],
        ["+14155550912", "B\u{0}b", "fine", "", ""],
        ["+14155550913", "Cy", "n\u{0}te", "", ""],
        ["+14155550914", "Di", "fine", "M", "ignored \u{0}"],
    ];
    for (r, row) in rows.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            sheet.write_string(r as u32, c as u16, *cell).unwrap();
        }
    }
    workbook.save_to_buffer().unwrap()
}

async fn an_imported_cell_with_nul_is_a_rejected_row(app: TestApp) {
    let (status, preview) = upload(&app, "people.xlsx", workbook_with_nul_cells()).await;
    assert_eq!(status, 201, "{preview}");
    let id = preview["id"].as_str().unwrap();
    let response = app
        .send_json(
            Method::POST,
            &format!("/api/imports/{id}/commit"),
            &json!({"mapping": {
                "Phone": "phone", "First name": "first_name", "Notes": "fields.notes",
                "Gender": "gender", "Skipped": "ignore",
            }}),
        )
        .await;
    assert_eq!(response.status(), 202);
    let import = wait_import(&app, id).await;
    assert_eq!(import["status"], "done", "{import}");
    assert_eq!(import["report"]["created"], 2, "{import}");
    assert_eq!(import["report"]["invalid"], 2, "{import}");
    let rejected: Vec<(u64, &str)> = import["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["row"].as_u64().unwrap(),
                row["reason"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rejected,
        [
            (3, "first_name: must not contain the character U+0000 (NUL)"),
            (
                4,
                "fields.notes: must not contain the character U+0000 (NUL)"
            ),
        ]
    );
    let listed: Value = app
        .get("/api/contacts?order_by=name")
        .await
        .json()
        .await
        .unwrap();
    let people: Vec<(&str, &str)> = listed["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["first_name"].as_str().unwrap(),
                c["gender"].as_str().unwrap(),
            )
        })
        .collect();
    // Genders are stored in one spelling, from files as from the API.
    assert_eq!(people, [("Ada", "female"), ("Di", "male")]);
}
