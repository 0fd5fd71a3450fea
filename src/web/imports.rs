//! The import wizard: choose a file → map its columns → watch the job → read the report.

use std::collections::BTreeMap;

use axum::extract::{Query, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::WebState;
use super::dispatch::Reply;
use super::form::{Errors, error_id, non_blank, text};
use super::groups::{Pick, group_name, picks};
use super::history::{import_outcome, past_imports};
use super::ids::{FromPath, PageId};
use super::layout::{Section, WebError, csrf_field, page, respond};
use super::session::Session;
use crate::domain::ids::ImportId;
use crate::domain::msisdn::{RegionCheck, RegionCode, check_region};

/// What a column can be imported as, besides a custom field named after it.
const TARGETS: [(&str, &str); 9] = [
    ("ignore", "Ignore"),
    ("phone", "Phone number"),
    ("first_name", "First name"),
    ("last_name", "Last name"),
    ("email", "Email"),
    ("gender", "Gender"),
    ("time_zone", "Time zone"),
    ("opted_out", "Opted out"),
    ("groups", "Groups (names)"),
];

const MODES: [(&str, &str); 3] = [
    ("update", "Update them with the file's values"),
    ("skip", "Leave them as they are"),
    (
        "replace_fields",
        "Update them and replace their custom fields",
    ),
];

/// What a refused upload said, carried to the upload page by its redirect.
#[derive(Deserialize, Default)]
pub struct StartQuery {
    #[serde(default)]
    problem: String,
    #[serde(default)]
    file: String,
    /// The page of past imports.
    #[serde(default)]
    page: u64,
}

pub async fn start(
    State(state): State<WebState>,
    session: Session,
    Query(query): Query<StartQuery>,
) -> Result<Response, WebError> {
    let mut errors = match non_blank(&query.file) {
        Some(message) => Errors::one("file", &message),
        None => Errors::default(),
    };
    errors.summary = non_blank(&query.problem);
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    let past = past_imports(&state, &session, query.page).await?;
    Ok(start_page(&session, &errors, status, past))
}

fn start_page(session: &Session, errors: &Errors, status: StatusCode, past: Markup) -> Response {
    let body = html! {
        h1 { "Import contacts" }
        p { "CSV (any delimiter; UTF-8, UTF-16 or Windows-1252), Excel (XLSX, XLS), OpenDocument (ODS) or vCard files, up to 256 MiB. Nothing is imported until you have checked the columns." }
        (errors.summary())
        form id="upload-form" method="post" enctype="multipart/form-data"
            action={ "/imports?csrf=" (session.csrf()) } class="stack" {
            div.dropzone data-dropzone {
                label for="file" { "File" }
                input id="file" name="file" type="file" required
                    accept=".csv,.txt,.tsv,.xlsx,.xls,.ods,.vcf,.vcard"
                    aria-invalid=[errors.has("file").then_some("true")]
                    aria-describedby=[errors.has("file").then(|| error_id("file"))];
                p.hint aria-hidden="true" { "…or drop it here." }
                (errors.message("file"))
            }
            div.field {
                label for="sheet" { "Sheet (spreadsheets; the first one if empty)" }
                input id="sheet" name="sheet" type="text";
            }
            button type="submit" { "Upload and preview" }
        }
        section aria-labelledby="templates" {
            h2 id="templates" { "Templates" }
            p { "Start from a file with the columns Roster knows: "
                a href="/imports/templates/contacts.csv" download { "contacts.csv" } " or "
                a href="/imports/templates/contacts.xlsx" download { "contacts.xlsx" } "." }
        }
        (past)
    };
    respond(status, page(session, Section::Import, "Import", body))
}

#[derive(Deserialize)]
pub struct UploadQuery {
    #[serde(default)]
    csrf: String,
}

/// The file is passed on to the API as it arrives: the CSRF token travels in the form's address
/// so that the multipart body need not be read here.
pub async fn upload(
    State(state): State<WebState>,
    session: Session,
    Query(query): Query<UploadQuery>,
    request: Request,
) -> Result<Response, WebError> {
    session.check_csrf(&query.csrf)?;
    let content_type = request.headers().get(header::CONTENT_TYPE).cloned();
    let response = state
        .api
        .forward(
            &session,
            Method::POST,
            "/api/imports",
            content_type,
            request.into_body(),
        )
        .await?;
    let reply = Reply::read(response).await?;
    if reply.ok() {
        return Ok(Redirect::to(&format!("/imports/{}", text(&reply.body, "id"))).into_response());
    }
    // Back to the upload page by a redirect, so that the address the browser shows (and keeps
    // in its history) is not the form's, which carries the CSRF token.
    let errors = Errors::from_reply(&reply);
    let file = errors
        .for_field("file")
        .first()
        .map(|(_, detail)| detail.clone())
        .unwrap_or_default();
    let query = serde_urlencoded::to_string([
        ("problem", errors.summary.unwrap_or_default()),
        ("file", file),
    ])
    .unwrap_or_default();
    Ok(Redirect::to(&format!("/imports?{query}")).into_response())
}

pub async fn show(
    State(state): State<WebState>,
    session: Session,
    PageId(id): PageId<ImportId>,
) -> Result<Response, WebError> {
    render(
        &state,
        &session,
        &id,
        None,
        Errors::default(),
        StatusCode::OK,
    )
    .await
}

/// A new import of the same file, to commit with other settings: opened at its mapping.
pub async fn again(
    State(state): State<WebState>,
    session: Session,
    PageId(id): PageId<ImportId>,
    axum::Form(form): axum::Form<BTreeMap<String, String>>,
) -> Result<Response, WebError> {
    session.check_csrf(form.get("csrf").map_or("", String::as_str))?;
    let reply = state
        .api
        .json(
            &session,
            Method::POST,
            &format!("/api/imports/{id}/copy"),
            Some(&json!({})),
        )
        .await?;
    if reply.ok() {
        return Ok(Redirect::to(&format!("/imports/{}", text(&reply.body, "id"))).into_response());
    }
    let errors = Errors::from_reply(&reply);
    render(&state, &session, &id, None, errors, reply.status).await
}

pub async fn status(
    State(state): State<WebState>,
    session: Session,
    PageId(id): PageId<ImportId>,
) -> Result<Response, WebError> {
    let uri = format!("/api/imports/{id}");
    state.api.job_progress(&session, &uri, "rows_read").await
}

pub async fn errors_csv(
    State(state): State<WebState>,
    session: Session,
    PageId(id): PageId<ImportId>,
) -> Result<Response, WebError> {
    let uri = format!("/api/imports/{id}/errors.csv");
    state.api.pass_through(&session, &uri).await
}

pub async fn template(
    State(state): State<WebState>,
    session: Session,
    PageId(template): PageId<Template>,
) -> Result<Response, WebError> {
    state.api.pass_through(&session, template.api_path()).await
}

/// The templates the API serves.
pub enum Template {
    Csv,
    Xlsx,
}

impl Template {
    fn api_path(&self) -> &'static str {
        match self {
            Template::Csv => "/api/imports/templates/contacts.csv",
            Template::Xlsx => "/api/imports/templates/contacts.xlsx",
        }
    }
}

impl FromPath for Template {
    fn from_path(text: &str) -> Option<Self> {
        match text {
            "contacts.csv" => Some(Template::Csv),
            "contacts.xlsx" => Some(Template::Xlsx),
            _ => None,
        }
    }
}

/// The custom field a column offers: the one the suggestion named when it is the column's own
/// name in other letters (`City` suggested as `fields.city`), so that the list does not offer
/// the same field twice; else the column's name as it is.
fn custom_field_target(column: &str, selected: &str) -> String {
    let key = |name: &str| -> String {
        name.chars()
            .map(|c| if c.is_alphanumeric() { c } else { '_' })
            .flat_map(char::to_lowercase)
            .collect()
    };
    match selected.strip_prefix("fields.") {
        Some(field) if key(field) == key(column) => selected.to_owned(),
        _ => format!("fields.{column}"),
    }
}

/// Says how many sampled numbers the chosen country rejects, when that is most of them, and
/// where they would be valid.
fn region_warning(check: &RegionCheck, region: &str) -> Markup {
    let country =
        RegionCode::parse(region).map_or_else(|_| "no country".to_owned(), |code| code.name());
    html! {
        @if check.invalid > 0 && check.invalid * 2 > check.sampled {
            div.warning role="alert" id="region-warning" {
                strong { (check.invalid) " of " (check.sampled) " sampled numbers are not valid in " (country) "." }
                @if !check.better.is_empty() {
                    " They would be in "
                    @for (index, better) in check.better.iter().enumerate() {
                        @if index > 0 { (if index + 1 == check.better.len() { " or " } else { ", " }) }
                        (better.name()) " (" (better.as_str()) ")"
                    }
                    ": choose the country of the file's numbers above."
                }
            }
        }
    }
}

/// The mapping form: `column.N` is the target of the N-th column (column names can hold any
/// character, so they are not used as form field names).
pub async fn commit(
    State(state): State<WebState>,
    session: Session,
    PageId(id): PageId<ImportId>,
    axum::Form(form): axum::Form<BTreeMap<String, String>>,
) -> Result<Response, WebError> {
    session.check_csrf(form.get("csrf").map_or("", String::as_str))?;
    if form.contains_key("check") {
        // The country was changed to see how the numbers read in it: nothing is committed.
        return render(
            &state,
            &session,
            &id,
            Some(&form),
            Errors::default(),
            StatusCode::OK,
        )
        .await;
    }
    let import = state
        .api
        .get(&session, &format!("/api/imports/{id}"))
        .await?
        .into_ok()?;
    let columns = import["preview"]["columns"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mapping: BTreeMap<&str, &str> = columns
        .iter()
        .enumerate()
        .filter_map(|(index, column)| {
            let target = form.get(&format!("column.{index}"))?;
            Some((text(column, "name"), target.as_str()))
        })
        .collect();
    let field = |name: &str| form.get(name).and_then(|value| non_blank(value));
    let body = json!({
        "mapping": mapping,
        "default_region": field("default_region"),
        "groups": field("group").map(|group| vec![group]),
        "group_names": field("new_group").map(|name| vec![name]),
        "mode": field("mode"),
    });
    let reply = state
        .api
        .json(
            &session,
            Method::POST,
            &format!("/api/imports/{id}/commit"),
            Some(&body),
        )
        .await?;
    if reply.ok() {
        return Ok(Redirect::to(&format!("/imports/{id}")).into_response());
    }
    let errors = Errors::from_reply(&reply);
    render(&state, &session, &id, Some(&form), errors, reply.status).await
}

async fn render(
    state: &WebState,
    session: &Session,
    id: &ImportId,
    draft: Option<&BTreeMap<String, String>>,
    errors: Errors,
    status: StatusCode,
) -> Result<Response, WebError> {
    let import = state
        .api
        .get(session, &format!("/api/imports/{id}"))
        .await?
        .into_ok()?;
    let file_name = import["file_name"]
        .as_str()
        .unwrap_or("the file")
        .to_owned();
    let body = match text(&import, "status") {
        "running" => progress(id.as_str(), &import),
        "done" => report(session, id.as_str(), &import, &errors),
        phase => {
            // A smart group's members follow its rule: an import cannot add to it.
            let groups: Vec<Pick> = picks(state, session)
                .await?
                .into_iter()
                .filter(|group| !group.smart)
                .collect();
            html! {
                @if phase == "failed" {
                    div.problem role="alert" {
                        p { strong { "The import failed; nothing of it was written." } }
                        p { (text(&import, "error")) }
                        p { "You can change the settings and import it again." }
                    }
                }
                (mapping_form(session, id.as_str(), &import, &groups, draft, &errors))
            }
        }
    };
    let body = html! {
        p.crumbs { a href="/imports" { "Import" } " › " (file_name) }
        h1 { "Import of " (file_name) }
        (body)
    };
    Ok(respond(
        status,
        page(session, Section::Import, "Import", body),
    ))
}

fn mapping_form(
    session: &Session,
    id: &str,
    import: &Value,
    groups: &[Pick],
    draft: Option<&BTreeMap<String, String>>,
    errors: &Errors,
) -> Markup {
    let preview = &import["preview"];
    let columns = preview["columns"].as_array().cloned().unwrap_or_default();
    let rows = preview["rows"].as_array().cloned().unwrap_or_default();
    let drafted = |name: &str| draft.and_then(|form| form.get(name)).map(String::as_str);
    let region = drafted("default_region")
        .or(session.plan.default_region.as_deref())
        .unwrap_or_default();
    let mode = drafted("mode").unwrap_or("update");
    // The phone column's numbers in the preview, read in the chosen country before anything
    // is imported: a wrong country rejects every national number.
    let phone_column = columns.iter().enumerate().position(|(index, column)| {
        drafted(&format!("column.{index}")).unwrap_or(text(column, "suggested")) == "phone"
    });
    let samples: Vec<&str> = phone_column
        .map(|index| {
            rows.iter()
                .filter_map(|row| row["cells"][index].as_str())
                .filter(|cell| !cell.trim().is_empty())
                .collect()
        })
        .unwrap_or_default();
    let check = check_region(&samples, RegionCode::parse(region).ok());
    let chosen_group = drafted("group").unwrap_or_default();
    html! {
        p {
            (text(preview, "format").to_uppercase())
            @if let Some(encoding) = preview["encoding"].as_str() { ", " (encoding.to_uppercase()) }
            @if let Some(delimiter) = preview["delimiter"].as_str() {
                ", " (match delimiter { "," => "commas", ";" => "semicolons", "\t" => "tabs", "|" => "vertical bars", other => other }) " between columns"
            }
            @if let Some(sheet) = preview["sheet"].as_str() { ", sheet “" (sheet) "”" }
            ": " strong id="total-rows" { (preview["total_rows"].as_u64().unwrap_or_default()) } " rows."
        }
        (errors.summary())
        form id="mapping-form" method="post" action={ "/imports/" (id) } class="stack" {
            (csrf_field(session))
            // Enter in a field imports, as the form's first button decides: not the check below.
            button.visually-hidden type="submit" tabindex="-1" aria-hidden="true" { "Import" }
            h2 { "Columns" }
            p.hint { "Choose what each column holds; the choices are guessed from the column names. One column must be the phone number." }
            (errors.message("mapping"))
            div.table-wrap {
                table.preview {
                    thead {
                        tr {
                            @for (index, column) in columns.iter().enumerate() {
                                @let name = text(column, "name");
                                @let key = format!("column.{index}");
                                @let error_field = format!("mapping.{name}");
                                @let selected = drafted(&key).unwrap_or(text(column, "suggested"));
                                @let custom = custom_field_target(name, selected);
                                th scope="col" {
                                    label for=(key) { (name) }
                                    select id=(key) name=(key) data-column=(name)
                                        aria-invalid=[errors.has(&error_field).then_some("true")]
                                        aria-describedby=[errors.has(&error_field).then(|| error_id(&error_field))] {
                                        @for (value, label) in TARGETS {
                                            option value=(value) selected[selected == value] { (label) }
                                        }
                                        option value=(custom) selected[selected == custom] { "Custom field “" (&custom["fields.".len()..]) "”" }
                                        @if selected.starts_with("fields.") && selected != custom {
                                            option value=(selected) selected { "Custom field “" (&selected["fields.".len()..]) "”" }
                                        }
                                    }
                                    (errors.message(&error_field))
                                }
                            }
                        }
                    }
                    tbody {
                        @for row in &rows {
                            tr {
                                @for cell in row["cells"].as_array().cloned().unwrap_or_default() {
                                    td { (cell.as_str().unwrap_or_default()) }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Where to" }
            div.field {
                label for="default_region" { "Country of numbers written without a country code" }
                select id="default_region" name="default_region"
                    aria-invalid=[errors.has("default_region").then_some("true")]
                    aria-describedby=[errors.has("default_region").then(|| error_id("default_region"))] {
                    option value="" selected[region.is_empty()] { "None: every number has its country code" }
                    @for choice in RegionCode::all() {
                        @let code = choice.as_str();
                        option value=(code) selected[region.eq_ignore_ascii_case(&code)] { (choice.name()) " (" (code) ")" }
                    }
                }
                (errors.message("default_region"))
                (region_warning(&check, region))
                button.secondary type="submit" name="check" value="yes" { "Check the numbers in this country" }
            }
            div.row {
                div.field {
                    label for="group" { "Add everyone to a group" }
                    select id="group" name="group" {
                        option value="" { "No existing group" }
                        @for group in groups {
                            option value=(group.id) selected[chosen_group == group.id] { (group.label) }
                        }
                    }
                    (errors.message("groups"))
                }
                div.field {
                    label for="new_group" { "…or a new group named" }
                    input id="new_group" name="new_group" type="text" value=(drafted("new_group").unwrap_or_default());
                    (errors.message("group_names"))
                }
            }
            div.field {
                label for="mode" { "Contacts that already exist" }
                select id="mode" name="mode" {
                    @for (value, label) in MODES { option value=(value) selected[mode == value] { (label) } }
                }
                (errors.message("mode"))
            }
            button #import-button type="submit" { "Import " (preview["total_rows"].as_u64().unwrap_or_default()) " rows" }
        }
    }
}

fn progress(id: &str, import: &Value) -> Markup {
    let done = import["progress"]["rows_read"].as_i64().unwrap_or_default();
    let total = import["progress"]["total_rows"]
        .as_i64()
        .unwrap_or_default()
        .max(1);
    html! {
        noscript { meta http-equiv="refresh" content="2"; }
        div.progress data-poll={ "/imports/" (id) "/status" } {
            label for="import-progress" { "Importing…" }
            progress id="import-progress" max=(total) value=(done) { (done) " of " (total) }
            p aria-live="polite" { span data-done { (done) } " of " (total) " rows read" }
        }
    }
}

fn report(session: &Session, id: &str, import: &Value, errors: &Errors) -> Markup {
    let report = &import["report"];
    let count = |key: &str| report[key].as_u64().unwrap_or_default();
    let rejected = import["rejected"].as_array().cloned().unwrap_or_default();
    let groups = report["groups"].as_array().cloned().unwrap_or_default();
    let warnings = report["warnings"].as_array().cloned().unwrap_or_default();
    let (rows, invalid, duplicates) = (count("rows"), count("invalid"), count("duplicates"));
    // The list below holds both kinds of row left out: the counts say so.
    let left_out = invalid + duplicates;
    let rows_word = |n: u64| if n == 1 { "row" } else { "rows" };
    let (outcome, _) = import_outcome(import);
    html! {
        // The outcome's colour and words follow the result: nothing kept is a failure, not a
        // green "Imported".
        @if outcome == "failed" {
            div.problem role="alert" id="import-done" {
                p { strong { "Nothing was imported: " (if left_out == rows { "every row was" } else { "the rows were" }) " left out." } }
                p { "The reasons are listed below; the most common is a phone number read in the wrong country (the import's default region). You can import the file again with another country or mapping." }
            }
        } @else if left_out > 0 {
            p.warning role="status" id="import-done" {
                "Imported, but " (left_out) " of " (rows) " rows were left out: "
                (invalid) " invalid, " (duplicates) " repeating an earlier row's number. They are listed below."
            }
        } @else {
            p.success role="status" id="import-done" { "Imported." }
        }
        (errors.summary())
        form method="post" action={ "/imports/" (id) "/again" } {
            (csrf_field(session))
            button.secondary type="submit" id="import-again" { "Import this file again with other settings" }
        }
        dl.facts.report id="import-report" {
            @for (key, label) in [("rows", "Rows read"), ("created", "Created"), ("updated", "Updated"),
                ("unchanged", "Unchanged"), ("skipped", "Skipped (existing)"), ("added_to_groups", "Added to groups"),
                ("invalid", "Left out: invalid"), ("duplicates", "Left out: number repeated in the file"),
                ("opted_out", "Opted out"), ("opt_ins_refused", "Opt-ins refused")] {
                dt { (label) } dd data-count=(key) { (count(key)) }
            }
        }
        @if !groups.is_empty() {
            h2 { "Groups" }
            ul {
                @for group in &groups {
                    li {
                        a href={ "/groups/" (text(group, "id")) } { (group_name(group)) }
                        ": " (group["added"].as_u64().unwrap_or_default()) " added"
                        @if group["created"].as_bool().unwrap_or_default() { " (new group)" }
                    }
                }
            }
        }
        @if !warnings.is_empty() {
            h2 { "Warnings" }
            ul { @for warning in &warnings { li { (warning.as_str().unwrap_or_default()) } } }
        }
        @if !rejected.is_empty() {
            h2 { "Rows left out (" (left_out) ")" }
            p {
                @if (rejected.len() as u64) < left_out { "The first " (rejected.len()) " are shown. " }
                a href={ "/imports/" (id) "/errors.csv" } download { "Download all " (left_out) " " (rows_word(left_out)) " with their cells and reasons (CSV)" }
                ", correct them and import that file."
            }
            div.table-wrap {
                table id="rejected-table" {
                    thead { tr { th scope="col" { "Row" } th scope="col" { "Reason" } } }
                    tbody {
                        @for row in &rejected {
                            tr { td.number { (row["row"].as_u64().unwrap_or_default()) } td { (text(row, "reason")) } }
                        }
                    }
                }
            }
        }
        p { a href="/imports" { "Import another file" } }
    }
}

#[cfg(test)]
mod tests {
    use super::custom_field_target;

    #[test]
    fn a_column_offers_its_custom_field_once() {
        assert_eq!(custom_field_target("City", "fields.city"), "fields.city");
        assert_eq!(
            custom_field_target("Home Town", "fields.home_town"),
            "fields.home_town"
        );
        assert_eq!(custom_field_target("City", "phone"), "fields.City");
        assert_eq!(custom_field_target("City", "fields.town"), "fields.City");
    }
}
