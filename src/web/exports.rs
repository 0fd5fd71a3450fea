//! Exports: choose what and in which format, watch the job, download the file.

use axum::extract::{Form, Query, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use serde_json::json;

use super::WebState;
use super::form::{Errors, error_id, non_blank, text};
use super::groups::{names_of, picks};
use super::history::{past_exports, searched, selection_words};
use super::ids::PageId;
use super::layout::{Section, WebError, byte_size, csrf_field, page, respond};
use super::session::Session;
use crate::domain::ids::ExportId;

const FORMATS: [(&str, &str); 3] = [("csv", "CSV"), ("xlsx", "Excel (XLSX)"), ("vcf", "vCard")];

#[derive(Deserialize, Default)]
pub struct ExportForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    format: String,
    #[serde(default)]
    group: String,
    #[serde(default)]
    q: String,
}

/// Which page of past exports to show.
#[derive(Deserialize, Default)]
pub struct StartQuery {
    #[serde(default)]
    page: u64,
}

pub async fn start(
    State(state): State<WebState>,
    session: Session,
    Query(query): Query<StartQuery>,
) -> Result<Response, WebError> {
    start_page(
        &state,
        &session,
        &ExportForm::default(),
        Errors::default(),
        StatusCode::OK,
        query.page,
    )
    .await
}

pub async fn create(
    State(state): State<WebState>,
    session: Session,
    Form(form): Form<ExportForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&form.csrf)?;
    let body = json!({
        "format": non_blank(&form.format),
        "group_id": non_blank(&form.group),
        "q": non_blank(&form.q),
    });
    let reply = state
        .api
        .json(&session, Method::POST, "/api/exports", Some(&body))
        .await?;
    if reply.ok() {
        return Ok(Redirect::to(&format!("/exports/{}", text(&reply.body, "id"))).into_response());
    }
    let errors = Errors::from_reply(&reply);
    start_page(&state, &session, &form, errors, reply.status, 0).await
}

async fn start_page(
    state: &WebState,
    session: &Session,
    draft: &ExportForm,
    errors: Errors,
    status: StatusCode,
    past_page: u64,
) -> Result<Response, WebError> {
    let groups = picks(state, session).await?;
    let past = past_exports(state, session, past_page).await?;
    let format = if draft.format.is_empty() {
        "csv"
    } else {
        draft.format.as_str()
    };
    let body = html! {
        h1 { "Export contacts" }
        (errors.summary())
        form method="post" action="/exports" class="stack" {
            (csrf_field(session))
            fieldset {
                legend { "Format" }
                @for (value, label) in FORMATS {
                    div.check {
                        input type="radio" id={ "format-" (value) } name="format" value=(value) checked[format == value];
                        label for={ "format-" (value) } { (label) }
                    }
                }
                (errors.message("format"))
            }
            div.field {
                label for="group" { "Contacts of a group (everyone if none)" }
                select id="group" name="group" {
                    option value="" { "Everyone" }
                    @for group in &groups {
                        option value=(group.id) selected[draft.group == group.id] { (group.label) }
                    }
                }
                (errors.message("group_id"))
            }
            div.field {
                label for="q" { "Only contacts matching a filter (optional)" }
                input id="q" name="q" type="text" value=(draft.q)
                    aria-invalid=[errors.has("q").then_some("true")]
                    aria-describedby=[errors.has("q").then(|| error_id("q"))];
                (errors.message("q"))
            }
            button type="submit" { "Export" }
        }
        (past)
    };
    Ok(respond(
        status,
        page(session, Section::Export, "Export", body),
    ))
}

pub async fn show(
    State(state): State<WebState>,
    session: Session,
    PageId(id): PageId<ExportId>,
) -> Result<Response, WebError> {
    let export = state
        .api
        .get(&session, &format!("/api/exports/{id}"))
        .await?
        .into_ok()?;
    let done = export["progress"]["rows_written"]
        .as_i64()
        .unwrap_or_default();
    let total = export["progress"]["total_rows"]
        .as_i64()
        .unwrap_or(done)
        .max(1);
    let selection = &export["selection"];
    let group = match selection["group_id"].as_str() {
        Some(group) => names_of(&state, &session, [group]).await?.remove(group),
        None => None,
    };
    let selection = selection_words(&export, group.as_deref());
    let body = html! {
        p.crumbs { a href="/exports" { "Export" } }
        h1 { "Export as " (text(&export, "format").to_uppercase()) }
        p id="export-selection" { (selection) "." }
        @match text(&export, "status") {
            "done" => {
                p.success role="status" id="export-done" {
                    (done) " contacts, " (byte_size(export["file_size"].as_u64().unwrap_or_default())) ". "
                    a href={ "/exports/" (id) "/download" } download { "Download the file" }
                }
            }
            "failed" => {
                div.problem role="alert" { p { strong { "The export failed." } } p { (text(&export, "error")) } }
            }
            _ => {
                noscript { meta http-equiv="refresh" content="2"; }
                div.progress data-poll={ "/exports/" (id) "/status" } {
                    label for="export-progress" { "Exporting…" }
                    progress id="export-progress" max=(total) value=(done) { (done) " of " (total) }
                    p aria-live="polite" { span data-done { (done) } " of " (total) " contacts written" }
                }
            }
        }
        p { a href="/exports" { "Another export" } }
    };
    Ok(respond(
        StatusCode::OK,
        page(&session, Section::Export, "Export", body),
    ))
}

pub async fn status(
    State(state): State<WebState>,
    session: Session,
    PageId(id): PageId<ExportId>,
) -> Result<Response, WebError> {
    let uri = format!("/api/exports/{id}");
    state.api.job_progress(&session, &uri, "rows_written").await
}

pub async fn download(
    State(state): State<WebState>,
    session: Session,
    PageId(id): PageId<ExportId>,
) -> Result<Response, WebError> {
    let export = state
        .api
        .get(&session, &format!("/api/exports/{id}"))
        .await?
        .into_ok()?;
    let group = match export["selection"]["group_id"].as_str() {
        Some(group) => names_of(&state, &session, [group]).await?.remove(group),
        None if export["contact_count"].is_u64() => Some("selected".to_owned()),
        None if searched(&export["selection"]) => Some("search".to_owned()),
        None => None,
    };
    let uri = format!("/api/exports/{id}/download");
    let mut response = state.api.pass_through(&session, &uri).await?;
    if response.status().is_success() {
        let name = file_name(
            group.as_deref(),
            text(&export, "created_at"),
            text(&export, "format"),
        );
        if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}

/// An export's file as people name theirs: what it holds and the day, `contacts-newsletter-
/// 2026-12-04.csv` (`all` without a group), in letters a header and any file system take.
fn file_name(group: Option<&str>, created_at: &str, format: &str) -> String {
    let mut slug = String::new();
    for c in group.unwrap_or("all").chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-');
    let slug = if slug.is_empty() { "group" } else { slug };
    let day = created_at.get(..10).unwrap_or("export");
    let extension = match format {
        "xlsx" | "vcf" => format,
        _ => "csv",
    };
    format!("contacts-{slug}-{day}.{extension}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_after_their_group_and_day() {
        assert_eq!(
            file_name(
                Some("Newsletter (UK) – 2027"),
                "2026-12-04T10:00:00Z",
                "xlsx"
            ),
            "contacts-newsletter-uk-2027-2026-12-04.xlsx"
        );
        assert_eq!(
            file_name(None, "2026-12-04T10:00:00Z", "csv"),
            "contacts-all-2026-12-04.csv"
        );
        assert_eq!(
            file_name(Some("Ünïcødé"), "2026-12-04T10:00:00Z", "vcf"),
            "contacts-n-c-d-2026-12-04.vcf"
        );
    }
}
