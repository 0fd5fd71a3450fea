//! Groups: the list with search and the create form; a group's page with its members, child
//! groups and keywords.

use std::collections::HashMap;

use axum::extract::{Form, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::WebState;
use super::form::{Errors, non_blank, text};
use super::ids::PageId;
use super::layout::{Section, WebError, csrf_field, page, pager, respond, text_input};
use super::session::Session;
use crate::domain::ids::GroupId;

const PAGE_SIZE: u64 = 50;

#[derive(Deserialize, Serialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    page: u64,
}

#[derive(Deserialize, Default)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
}

pub async fn list(
    State(state): State<WebState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<Response, WebError> {
    render_list(
        &state,
        &session,
        &query,
        &CreateForm::default(),
        Errors::default(),
        StatusCode::OK,
    )
    .await
}

pub async fn create(
    State(state): State<WebState>,
    session: Session,
    Form(form): Form<CreateForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&form.csrf)?;
    let body = json!({"name": form.name.trim(), "description": non_blank(&form.description)});
    let reply = state
        .api
        .json(&session, Method::POST, "/api/contactgroups", Some(&body))
        .await?;
    if reply.ok() {
        let id = text(&reply.body, "id");
        return Ok(Redirect::to(&format!("/groups/{id}")).into_response());
    }
    let errors = Errors::from_reply(&reply);
    render_list(
        &state,
        &session,
        &ListQuery::default(),
        &form,
        errors,
        reply.status,
    )
    .await
}

async fn render_list(
    state: &WebState,
    session: &Session,
    query: &ListQuery,
    draft: &CreateForm,
    errors: Errors,
    status: StatusCode,
) -> Result<Response, WebError> {
    let status_filter = match query.status.as_str() {
        "DELETED" | "ALL" => query.status.as_str(),
        _ => "ACTIVE",
    };
    let listing = state
        .api
        .get_with(
            session,
            "/api/contactgroups",
            &[
                ("name", query.name.as_str()),
                ("status", status_filter),
                ("order_by", "name"),
                ("page", &query.page.to_string()),
                ("page_size", &PAGE_SIZE.to_string()),
            ],
        )
        .await?
        .into_ok()?;
    let groups = listing["groups"].as_array().cloned().unwrap_or_default();
    let total = listing["count"].as_u64();
    let base = format!(
        "/groups?{}",
        serde_urlencoded::to_string([("name", query.name.as_str()), ("status", status_filter)])
            .unwrap_or_default()
    );
    let body = html! {
        h1 { "Groups" }
        (errors.summary())
        form.search method="get" action="/groups" role="search" {
            div.field {
                label for="search-name" { "Name contains" }
                input id="search-name" name="name" type="search" value=(query.name);
            }
            div.field {
                label for="search-status" { "Status" }
                select id="search-status" name="status" {
                    @for (value, label) in [("ACTIVE", "Active"), ("DELETED", "Deleted"), ("ALL", "All")] {
                        option value=(value) selected[value == status_filter] { (label) }
                    }
                }
            }
            button type="submit" { "Search" }
        }
        div.table-wrap {
            table {
                caption { (groups.len()) " shown" @if let Some(total) = total { " of " (total) } }
                thead { tr { th scope="col" { "Name" } th scope="col" { "Size" } th scope="col" { "Status" } th scope="col" { "Modified" } } }
                tbody {
                    @for group in &groups {
                        tr {
                            td { a href={ "/groups/" (text(group, "id")) } { (group_name(group)) } }
                            td.number { (group["size"].as_i64().unwrap_or_default()) }
                            td { (text(group, "status")) }
                            td { (short_time(text(group, "modified_at"))) }
                        }
                    }
                    @if groups.is_empty() { tr { td colspan="4" { "No groups." } } }
                }
            }
        }
        (pager(&base, query.page, groups.len(), PAGE_SIZE, total))
        section aria-labelledby="new-group" {
            h2 id="new-group" { "New group" }
            form method="post" action="/groups" class="stack" {
                (csrf_field(session))
                (text_input("name", "Name", &draft.name, "text", &errors))
                (text_input("description", "Description (optional)", &draft.description, "text", &errors))
                button type="submit" { "Create group" }
            }
        }
    };
    Ok(respond(
        status,
        page(session, Section::Groups, "Groups", body),
    ))
}

#[derive(Deserialize, Default)]
pub struct MembersQuery {
    #[serde(default)]
    search: String,
    #[serde(default)]
    page: u64,
}

pub async fn show(
    State(state): State<WebState>,
    session: Session,
    PageId(id): PageId<GroupId>,
    Query(query): Query<MembersQuery>,
) -> Result<Response, WebError> {
    render_group(
        &state,
        &session,
        &id,
        &query,
        &GroupForm::default(),
        Errors::default(),
        StatusCode::OK,
    )
    .await
}

/// Every form on a group's page posts here; `action` says which.
#[derive(Deserialize, Default)]
pub struct GroupForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    /// Numbers to add, one per line (or separated by commas).
    #[serde(default)]
    numbers: String,
    #[serde(default)]
    number: String,
    #[serde(default)]
    child: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    add_first_word: String,
    #[serde(default)]
    add_second_word: String,
    #[serde(default)]
    remove_first_word: String,
    #[serde(default)]
    remove_second_word: String,
}

pub async fn act(
    State(state): State<WebState>,
    session: Session,
    PageId(id): PageId<GroupId>,
    Form(form): Form<GroupForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&form.csrf)?;
    let path = format!("/api/contactgroups/{id}");
    let patch = |body: Value| {
        let (state, session, path) = (&state, &session, &path);
        async move {
            state
                .api
                .json(session, Method::PATCH, path, Some(&body))
                .await
        }
    };
    let reply = match form.action.as_str() {
        "rename" => {
            patch(json!({"name": form.name.trim(), "description": non_blank(&form.description)}))
                .await?
        }
        "delete" => {
            state
                .api
                .json(&session, Method::DELETE, &path, None::<&()>)
                .await?
        }
        "restore" => patch(json!({"status": "ACTIVE"})).await?,
        "add" => patch(json!({"add": split_numbers(&form.numbers)})).await?,
        "remove" => patch(json!({"remove": [form.number.trim()]})).await?,
        "add_child" | "remove_child" => {
            let group = state.api.get(&session, &path).await?.into_ok()?;
            let mut children: Vec<String> = group["child_groups"]
                .as_array()
                .map(|ids| {
                    ids.iter()
                        .filter_map(|id| id.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let child = form.child.trim().to_owned();
            if form.action == "add_child" {
                if !child.is_empty() && !children.contains(&child) {
                    children.push(child);
                }
            } else {
                children.retain(|existing| *existing != child);
            }
            patch(json!({"child_groups": children})).await?
        }
        "keywords" => patch(json!({"auto_update": keywords(&form)})).await?,
        _ => {
            let errors = Errors::one("action", "Unknown action.");
            return render_group(
                &state,
                &session,
                &id,
                &MembersQuery::default(),
                &form,
                errors,
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    if reply.ok() {
        let target = if form.action == "delete" {
            "/groups".to_owned()
        } else {
            format!("/groups/{id}")
        };
        return Ok(Redirect::to(&target).into_response());
    }
    let errors = Errors::from_reply(&reply);
    render_group(
        &state,
        &session,
        &id,
        &MembersQuery::default(),
        &form,
        errors,
        reply.status,
    )
    .await
}

/// The keyword settings, or `null` (no keywords) when no number is given.
fn keywords(form: &GroupForm) -> Value {
    let Some(to) = non_blank(&form.to) else {
        return Value::Null;
    };
    let words = |first: &str, second: &str| {
        non_blank(first).map(|first| json!({"first_word": first, "second_word": non_blank(second)}))
    };
    json!({
        "to": to,
        "add": words(&form.add_first_word, &form.add_second_word),
        "remove": words(&form.remove_first_word, &form.remove_second_word),
    })
}

/// Numbers typed or pasted one per line, or separated by commas or semicolons.
pub(super) fn split_numbers(text: &str) -> Vec<&str> {
    text.split(['\n', ',', ';'])
        .map(str::trim)
        .filter(|number| !number.is_empty())
        .collect()
}

async fn render_group(
    state: &WebState,
    session: &Session,
    id: &GroupId,
    query: &MembersQuery,
    draft: &GroupForm,
    errors: Errors,
    status: StatusCode,
) -> Result<Response, WebError> {
    let group = state
        .api
        .get(session, &format!("/api/contactgroups/{id}"))
        .await?
        .into_ok()?;
    let search = query.search.trim();
    let search_key = if search.starts_with(|c: char| c == '+' || c.is_ascii_digit()) {
        "phone"
    } else {
        "name"
    };
    let members = state
        .api
        .get_with(
            session,
            "/api/contacts",
            &[
                ("group", id.as_str()),
                (search_key, search),
                ("order_by", "name"),
                ("page", &query.page.to_string()),
                ("page_size", &PAGE_SIZE.to_string()),
                ("count", "true"),
            ],
        )
        .await?;
    let member_errors = (!members.ok()).then(|| Errors::from_reply(&members));
    let member_rows = members.body["contacts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let member_total = members.body["count"].as_u64();
    let children: Vec<String> = group["child_groups"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|id| id.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let names = names_of(state, session, children.iter().map(String::as_str)).await?;
    let child_groups: Vec<(String, String)> = children
        .iter()
        .map(|child| {
            let name = names.get(child).cloned().unwrap_or_else(|| child.clone());
            (child.clone(), name)
        })
        .collect();
    let candidates = state
        .api
        .get_with(
            session,
            "/api/contactgroups",
            &[("order_by", "name"), ("limit", "1000")],
        )
        .await?
        .into_ok()?;
    let candidates: Vec<(String, String)> = candidates["groups"]
        .as_array()
        .map(|groups| {
            groups
                .iter()
                .map(|group| (text(group, "id").to_owned(), group_name(group)))
                .filter(|(candidate, _)| candidate != id.as_str() && !children.contains(candidate))
                .collect()
        })
        .unwrap_or_default();

    let name = group_name(&group);
    let deleted = text(&group, "status") == "DELETED";
    let smart = !group["rule"].is_null();
    let draft_or = |drafted: &str, stored: &str| -> String {
        if draft.action.is_empty() {
            stored.to_owned()
        } else {
            drafted.to_owned()
        }
    };
    let auto_update = &group["auto_update"];
    let base = format!(
        "/groups/{id}?{}",
        serde_urlencoded::to_string([("search", search)]).unwrap_or_default()
    );
    let body = html! {
        p.crumbs { a href="/groups" { "Groups" } " › " (name) }
        h1 { (name) }
        (errors.summary())
        dl.facts {
            dt { "Size" } dd id="group-size" { (group["size"].as_i64().unwrap_or_default()) }
            dt { "Status" } dd id="group-status" { (text(&group, "status")) }
            @if let Some(description) = group["description"].as_str() { dt { "Description" } dd { (description) } }
            @if smart { dt { "Rule" } dd { code { (text(&group, "rule")) } } }
            dt { "Id" } dd { code { (id) } }
        }
        @if !deleted {
            p { a.button href={ "/send?group=" (id) } { "Send a message to this group" } }
        }
        section aria-labelledby="rename" {
            h2 id="rename" { "Name and description" }
            form method="post" class="stack" {
                (csrf_field(session))
                input type="hidden" name="action" value="rename";
                (text_input("name", "Name", &draft_or(&draft.name, &name), "text", &errors))
                (text_input("description", "Description", &draft_or(&draft.description, text(&group, "description")), "text", &errors))
                button type="submit" { "Save" }
            }
        }
        section aria-labelledby="members" {
            h2 id="members" { "Members" }
            form.search method="get" role="search" {
                div.field {
                    label for="member-search" { "Find a member (number or name)" }
                    input id="member-search" name="search" type="search" value=(search);
                }
                button type="submit" { "Find" }
            }
            @if let Some(member_errors) = &member_errors { (member_errors.summary()) }
            div.table-wrap {
                table id="members-table" {
                    caption { (member_rows.len()) " shown" @if let Some(total) = member_total { " of " (total) } }
                    thead { tr { th scope="col" { "Number" } th scope="col" { "Name" } th scope="col" { "Opted out" } @if !smart { th scope="col" { span.visually-hidden { "Actions" } } } } }
                    tbody {
                        @for member in &member_rows {
                            tr {
                                td { a href={ "/contacts/" (text(member, "id")) } { (text(member, "phone")) } }
                                td { (full_name(member)) }
                                td { @if member["opted_out"].as_bool().unwrap_or_default() { "Yes" } @else { "No" } }
                                @if !smart {
                                    td {
                                        form method="post" {
                                            (csrf_field(session))
                                            input type="hidden" name="action" value="remove";
                                            input type="hidden" name="number" value=(text(member, "phone"));
                                            button.link type="submit" aria-label={ "Remove " (text(member, "phone")) } { "Remove" }
                                        }
                                    }
                                }
                            }
                        }
                        @if member_rows.is_empty() { tr { td colspan="4" { "No members." } } }
                    }
                }
            }
            (pager(&base, query.page, member_rows.len(), PAGE_SIZE, member_total))
            @if !smart {
                form method="post" class="stack" {
                    (csrf_field(session))
                    input type="hidden" name="action" value="add";
                    div.field {
                        label for="numbers" { "Add numbers (one per line, or separated by commas)" }
                        textarea id="numbers" name="numbers" rows="4"
                            aria-invalid=[errors.has("add").then_some("true")]
                            aria-describedby=[errors.has("add").then(|| super::form::error_id("add"))] { (draft.numbers) }
                        (errors.message("add"))
                    }
                    button type="submit" { "Add" }
                }
            }
        }
        section aria-labelledby="children" {
            h2 id="children" { "Child groups" }
            p.hint { "A child group's members are members of this group too." }
            (errors.message("child_groups"))
            ul {
                @for (child, child_name) in &child_groups {
                    li {
                        a href={ "/groups/" (child) } { (child_name) } " "
                        form.inline method="post" {
                            (csrf_field(session))
                            input type="hidden" name="action" value="remove_child";
                            input type="hidden" name="child" value=(child);
                            button.link type="submit" aria-label={ "Remove child group " (child_name) } { "Remove" }
                        }
                    }
                }
                @if child_groups.is_empty() { li { "None." } }
            }
            @if !candidates.is_empty() {
                form method="post" class="row" {
                    (csrf_field(session))
                    input type="hidden" name="action" value="add_child";
                    div.field {
                        label for="child" { "Add a child group" }
                        select id="child" name="child" {
                            @for (candidate, candidate_name) in &candidates { option value=(candidate) { (candidate_name) } }
                        }
                    }
                    button type="submit" { "Add child group" }
                }
            }
        }
        section aria-labelledby="keywords" {
            h2 id="keywords" { "Keywords" }
            p.hint { "People who text the first word (and, on a shared number, the second) to this number join or leave the group. Leave the number empty to turn keywords off." }
            (errors.message("auto_update"))
            form method="post" class="stack" {
                (csrf_field(session))
                input type="hidden" name="action" value="keywords";
                (text_input("to", "Sent to (short code or number)", &draft_or(&draft.to, text(auto_update, "to")), "text", &errors))
                div.row {
                    (text_input("add_first_word", "Join word", &draft_or(&draft.add_first_word, text(&auto_update["add"], "first_word")), "text", &errors))
                    (text_input("add_second_word", "Second word (optional)", &draft_or(&draft.add_second_word, text(&auto_update["add"], "second_word")), "text", &errors))
                }
                div.row {
                    (text_input("remove_first_word", "Leave word", &draft_or(&draft.remove_first_word, text(&auto_update["remove"], "first_word")), "text", &errors))
                    (text_input("remove_second_word", "Second word (optional)", &draft_or(&draft.remove_second_word, text(&auto_update["remove"], "second_word")), "text", &errors))
                }
                button type="submit" { "Save keywords" }
            }
        }
        section aria-labelledby="danger" {
            h2 id="danger" { @if deleted { "Restore" } @else { "Delete" } }
            form method="post" {
                (csrf_field(session))
                @if deleted {
                    input type="hidden" name="action" value="restore";
                    p { "This group is deleted: it is empty to every send until it is restored." }
                    button type="submit" { "Restore group" }
                } @else {
                    input type="hidden" name="action" value="delete";
                    p { "A deleted group counts as empty when messages are sent; it can be restored." }
                    button.danger type="submit" { "Delete group" }
                }
            }
        }
    };
    Ok(respond(status, page(session, Section::Groups, &name, body)))
}

/// The names of the groups with these ids, each read through the API; a group that cannot be
/// read (purged since) is left out, for the caller to show by id.
pub async fn names_of(
    state: &WebState,
    session: &Session,
    ids: impl IntoIterator<Item = &str>,
) -> Result<HashMap<String, String>, WebError> {
    let mut names = HashMap::new();
    for id in ids {
        let reply = state
            .api
            .get(session, &format!("/api/contactgroups/{id}"))
            .await?;
        if reply.ok() {
            names.insert(id.to_owned(), group_name(&reply.body));
        }
    }
    Ok(names)
}

pub fn group_name(group: &Value) -> String {
    match group["name"].as_str() {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => format!("(unnamed {})", text(group, "id")),
    }
}

pub fn full_name(contact: &Value) -> String {
    [text(contact, "first_name"), text(contact, "last_name")]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `2026-11-23T19:28:27.123Z` as `2026-11-23 19:28`.
pub fn short_time(time: &str) -> Markup {
    let short = time
        .get(..16)
        .map(|prefix| prefix.replace('T', " "))
        .unwrap_or_default();
    html! { time datetime=(time) { (short) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_split_on_lines_commas_and_semicolons() {
        assert_eq!(
            split_numbers("+14155550100\n +14155550101 ,+14155550102;\n\n"),
            ["+14155550100", "+14155550101", "+14155550102"]
        );
    }

    #[test]
    fn keywords_are_off_without_a_number() {
        let form = GroupForm {
            add_first_word: "JOIN".into(),
            ..GroupForm::default()
        };
        assert_eq!(keywords(&form), Value::Null);
        let form = GroupForm {
            to: "12345".into(),
            add_first_word: "JOIN".into(),
            ..GroupForm::default()
        };
        assert_eq!(keywords(&form)["add"]["first_word"], "JOIN");
        assert_eq!(keywords(&form)["remove"], Value::Null);
    }
}
