//! Past imports and exports, listed on the pages that start new ones, each with its outcome in
//! words.

use maud::{Markup, html};
use serde_json::Value;

use super::WebState;
use super::form::text;
use super::groups::{picks, short_time};
use super::layout::{WebError, byte_size, pager};
use super::session::Session;

/// Past jobs shown a page at a time.
const PAGE_SIZE: u64 = 20;

/// An import's outcome: a class for its colour and the words.
pub fn import_outcome(import: &Value) -> (&'static str, String) {
    let report = &import["report"];
    let count = |key: &str| report[key].as_u64().unwrap_or_default();
    match text(import, "status") {
        "previewed" => ("waiting", "Not imported yet".to_owned()),
        "running" => ("waiting", "Importing".to_owned()),
        "failed" => ("failed", "Failed: nothing written".to_owned()),
        _ => {
            let kept = ["created", "updated", "unchanged", "skipped"]
                .into_iter()
                .map(count)
                .sum::<u64>();
            let left_out = count("invalid") + count("duplicates");
            if kept == 0 && left_out > 0 {
                ("failed", "Nothing imported".to_owned())
            } else if left_out > 0 {
                let rows = if left_out == 1 { "row" } else { "rows" };
                ("warning", format!("Imported, {left_out} {rows} left out"))
            } else {
                ("done", "Imported".to_owned())
            }
        }
    }
}

/// A page of the plan's `kind` (imports or exports), newest first, and how many there are.
async fn jobs(
    state: &WebState,
    session: &Session,
    kind: &str,
    page: u64,
) -> Result<(Vec<Value>, Option<u64>), WebError> {
    let listing = state
        .api
        .get_with(
            session,
            &format!("/api/{kind}"),
            &[
                ("page", &page.to_string()),
                ("page_size", &PAGE_SIZE.to_string()),
            ],
        )
        .await?
        .into_ok()?;
    let entries = listing[kind].as_array().cloned().unwrap_or_default();
    Ok((entries, listing["count"].as_u64()))
}

/// The plan's imports, newest first, a page at a time.
pub async fn past_imports(
    state: &WebState,
    session: &Session,
    page: u64,
) -> Result<Markup, WebError> {
    let (imports, total) = jobs(state, session, "imports", page).await?;
    if imports.is_empty() && page == 0 {
        return Ok(html! {});
    }
    Ok(html! {
        section aria-labelledby="past-imports" {
            h2 id="past-imports" { "Past imports" }
            div.table-wrap {
                table.cards id="imports-table" {
                    thead { tr {
                        th scope="col" { "File" } th scope="col" { "Outcome" } th scope="col" class="number" { "Rows" }
                        th scope="col" class="number" { "New" } th scope="col" class="number" { "Updated" }
                        th scope="col" class="number" { "Left out" } th scope="col" { "Uploaded" }
                    } }
                    tbody {
                        @for import in &imports {
                            @let (class, words) = import_outcome(import);
                            @let count = |key: &str| import["report"][key].as_u64();
                            @let left_out = count("invalid").zip(count("duplicates")).map(|(a, b)| a + b);
                            tr {
                                td { a href={ "/imports/" (text(import, "id")) } { (import["file_name"].as_str().unwrap_or("(no name)")) } }
                                td { span class={ "status status-" (class) } { (words) } }
                                td.number data-label="Rows" { (import["progress"]["total_rows"].as_u64().unwrap_or_default()) }
                                td.number data-label="New" { (count("created").map(|n| n.to_string()).unwrap_or_default()) }
                                td.number data-label="Updated" { (count("updated").map(|n| n.to_string()).unwrap_or_default()) }
                                td.number data-label="Left out" { (left_out.map(|n| n.to_string()).unwrap_or_default()) }
                                td data-label="Uploaded" { (short_time(text(import, "created_at"))) }
                            }
                        }
                    }
                }
            }
            (pager("/imports", page, imports.len(), PAGE_SIZE, total))
        }
    })
}

/// What an export holds, in words; `group` is the name of its group, if it has one.
pub fn selection_words(export: &Value, group: Option<&str>) -> Markup {
    let selection = &export["selection"];
    html! {
        @if let Some(ticked) = export["contact_count"].as_u64() {
            (ticked) " ticked contacts"
        } @else if let Some(group) = group {
            "The contacts of “" (group) "”"
        } @else if searched(selection) {
            "The contacts a search found"
        } @else {
            "Every contact"
        }
        @for (key, words) in [("name", "names starting with"), ("phone", "numbers starting with"), ("q", "matching")] {
            @if let Some(value) = selection[key].as_str().filter(|value| !value.is_empty()) {
                ", " (words) " " code { (value) }
            }
        }
    }
}

/// Whether the export holds the result of a search rather than a group or everyone.
pub fn searched(selection: &Value) -> bool {
    ["name", "phone", "q"].iter().any(|key| {
        selection[*key]
            .as_str()
            .is_some_and(|value| !value.is_empty())
    })
}

/// The plan's exports, newest first, a page at a time, each downloadable once done.
pub async fn past_exports(
    state: &WebState,
    session: &Session,
    page: u64,
) -> Result<Markup, WebError> {
    let (exports, total) = jobs(state, session, "exports", page).await?;
    if exports.is_empty() && page == 0 {
        return Ok(html! {});
    }
    let groups = picks(state, session).await?;
    let group_of = |export: &Value| -> Option<String> {
        let id = export["selection"]["group_id"].as_str()?;
        Some(
            groups
                .iter()
                .find(|group| group.id == id)
                .map_or_else(|| "a deleted group".to_owned(), |group| group.label.clone()),
        )
    };
    Ok(html! {
        section aria-labelledby="past-exports" {
            h2 id="past-exports" { "Past exports" }
            div.table-wrap {
                table.cards id="exports-table" {
                    thead { tr {
                        th scope="col" { "Contacts" } th scope="col" { "Format" } th scope="col" { "Outcome" }
                        th scope="col" class="number" { "Rows" } th scope="col" { "Requested" } th scope="col" { "File" }
                    } }
                    tbody {
                        @for export in &exports {
                            @let status = text(export, "status");
                            tr {
                                td { a href={ "/exports/" (text(export, "id")) } { (selection_words(export, group_of(export).as_deref())) } }
                                td { (text(export, "format").to_uppercase()) }
                                td { span class={ "status status-" (status) } { (export_status(status)) } }
                                td.number data-label="Rows" { (export["progress"]["rows_written"].as_u64().unwrap_or_default()) }
                                td data-label="Requested" { (short_time(text(export, "created_at"))) }
                                td {
                                    @if status == "done" {
                                        a href={ "/exports/" (text(export, "id")) "/download" } download {
                                            "Download (" (byte_size(export["file_size"].as_u64().unwrap_or_default())) ")"
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (pager("/exports", page, exports.len(), PAGE_SIZE, total))
        }
    })
}

fn export_status(status: &str) -> &'static str {
    match status {
        "done" => "Ready",
        "running" => "Exporting",
        _ => "Failed",
    }
}
