//! Groups: the list with search and the create form; a group's page with its members, child
//! groups and keywords.

use std::collections::{HashMap, HashSet};

use axum::extract::{Form, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::WebState;
use super::form::{Errors, non_blank, text};
use super::ids::PageId;
use super::layout::{Section, WebError, copyable_id, csrf_field, page, pager, respond, text_input};
use super::listing::{View, controls, sort_header, with_view};
use super::session::Session;
use crate::domain::ids::GroupId;

#[derive(Deserialize, Serialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    page: u64,
    /// Set by the redirect after a delete: the group, to say so and offer to undo it.
    #[serde(default)]
    deleted: String,
    #[serde(flatten)]
    view: View,
}

/// What the group list sorts by: its default first.
const GROUP_SORTS: [&str; 3] = ["name", "size", "created_at"];

#[derive(Deserialize, Default)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    /// Set once the operator was told a group of this name exists and still wants one.
    #[serde(default)]
    another: String,
    /// A smart group's rule (optional).
    #[serde(default)]
    rule: String,
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
    let name = form.name.trim();
    // Two groups of one name make every picker ambiguous: ask before making the second.
    if form.another.is_empty() && !name.is_empty() {
        let same = state
            .api
            .get_with(
                &session,
                "/api/contactgroups",
                &[("name", name), ("limit", "1000")],
            )
            .await?
            .into_ok()?;
        let existing = same["groups"].as_array().and_then(|groups| {
            groups
                .iter()
                .find(|group| group_name(group).to_lowercase() == name.to_lowercase())
        });
        if let Some(existing) = existing {
            let mut errors = Errors::default();
            errors.summary = Some(format!(
                "A group named “{}” already exists.",
                group_name(existing)
            ));
            errors.link = Some((
                format!("/groups/{}", text(existing, "id")),
                "Open it".to_owned(),
            ));
            let draft = CreateForm {
                another: "yes".to_owned(),
                ..form
            };
            return render_list(
                &state,
                &session,
                &ListQuery::default(),
                &draft,
                errors,
                StatusCode::CONFLICT,
            )
            .await;
        }
    }
    let body = match non_blank(&form.rule) {
        Some(rule) => {
            json!({"name": name, "description": non_blank(&form.description), "rule": rule})
        }
        None => json!({"name": name, "description": non_blank(&form.description)}),
    };
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
    let view = &query.view;
    let shown_page = view.page(query.page);
    let listing = state
        .api
        .get_with(
            session,
            "/api/contactgroups",
            &[
                ("name", query.name.as_str()),
                ("status", status_filter),
                ("order_by", view.sort(&GROUP_SORTS)),
                ("direction", view.direction()),
                ("page", &shown_page.to_string()),
                ("page_size", &view.size().to_string()),
            ],
        )
        .await?
        .into_ok()?;
    let groups = listing["groups"].as_array().cloned().unwrap_or_default();
    let total = listing["count"].as_u64();
    let filters = format!(
        "/groups?{}",
        serde_urlencoded::to_string([("name", query.name.as_str()), ("status", status_filter)])
            .unwrap_or_default()
    );
    let base = with_view(&filters, view);
    let header = |key: &str, label: &str, natural: &str| {
        sort_header(&filters, view, &GROUP_SORTS, (key, label, natural))
    };
    let deleted = match GroupId::parse(&query.deleted) {
        Some(id) => {
            let reply = state
                .api
                .get(session, &format!("/api/contactgroups/{id}"))
                .await?;
            reply.ok().then(|| (id, group_name(&reply.body)))
        }
        None => None,
    };
    let body = html! {
        h1 { "Groups" }
        (errors.summary())
        @if let Some((id, name)) = &deleted {
            form.success.undo method="post" action={ "/groups/" (id) } role="status" {
                (csrf_field(session))
                input type="hidden" name="action" value="restore";
                "The group “" (name) "” was deleted. "
                button.link type="submit" { "Undo" }
            }
        }
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
            table.cards {
                caption { (groups.len()) " shown" @if let Some(total) = total { " of " (total) } }
                thead { tr { (header("name", "Name", "asc")) th scope="col" { "Kind" } (header("size", "Size", "desc")) th scope="col" { "Status" } (header("created_at", "Created", "desc")) } }
                tbody {
                    @for group in &groups {
                        tr {
                            td {
                                a href={ "/groups/" (text(group, "id")) } { (group_name(group)) }
                                @if let Some(description) = group["description"].as_str().filter(|text| !text.is_empty()) {
                                    br; span.hint { (description) }
                                }
                            }
                            td data-label="Kind" { (kind_label(group)) }
                            td.number data-label="Size" { (group["size"].as_i64().unwrap_or_default()) }
                            td data-label="Status" { (status_label(text(group, "status"))) }
                            td data-label="Created" { (short_time(text(group, "created_at"))) }
                        }
                    }
                    @if groups.is_empty() { tr { td colspan="5" { "No groups." } } }
                }
            }
        }
        (pager(&base, shown_page, groups.len(), view.size(), total))
        (controls(&base, view, shown_page, total.map(|total| total.div_ceil(view.size()))))
        section aria-labelledby="new-group" {
            h2 id="new-group" { "New group" }
            form method="post" action="/groups" class="stack" {
                (csrf_field(session))
                (text_input("name", "Name", &draft.name, "text", &errors))
                (text_input("description", "Description (optional)", &draft.description, "text", &errors))
                (rule_field(session, &draft.rule, &errors, "A smart group (optional): its members are the contacts this rule matches, always up to date."))
                @if draft.another.is_empty() {
                    button type="submit" { "Create group" }
                } @else {
                    input type="hidden" name="another" value="yes";
                    button type="submit" { "Create another group named “" (draft.name.trim()) "”" }
                }
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
    /// Set by the redirects after a restore and an addition, to say what happened.
    #[serde(default)]
    restored: bool,
    added: Option<i64>,
    #[serde(default)]
    already: i64,
    #[serde(flatten)]
    view: View,
}

/// What the member list sorts by: its default first.
const MEMBER_SORTS: [&str; 2] = ["name", "created_at"];

pub async fn show(
    State(state): State<WebState>,
    session: Session,
    PageId(id): PageId<GroupId>,
    Query(query): Query<MembersQuery>,
) -> Result<Response, WebError> {
    let note = if query.restored {
        Some(html! { p.success role="status" { "The group was restored." } })
    } else {
        query.added.map(|added| added_note(added, query.already))
    };
    render_group(
        &state,
        &session,
        &id,
        &query,
        &GroupForm::default(),
        (Errors::default(), note),
        StatusCode::OK,
    )
    .await
}

/// Every form on a group's page posts here; `action` says which.
#[derive(Deserialize, Default, Clone)]
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
    #[serde(default)]
    rule: String,
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
        "add" => return add_numbers(&state, &session, &id, &form).await,
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
        "rule" => patch(json!({"rule": form.rule.trim()})).await?,
        _ => {
            let errors = Errors::one("action", "Unknown action.");
            return render_group(
                &state,
                &session,
                &id,
                &MembersQuery::default(),
                &form,
                (errors, None),
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    if reply.ok() {
        let target = match form.action.as_str() {
            "delete" => format!("/groups?deleted={id}"),
            "restore" => format!("/groups/{id}?restored=true"),
            _ => format!("/groups/{id}"),
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
        (errors, None),
        reply.status,
    )
    .await
}

/// Adds what is valid of the numbers typed or pasted, and says what happened: how many were
/// added, and which lines were not (counted from 1, as an editor does), with the API's reason.
/// The lines not added stay in the box to be put right.
async fn add_numbers(
    state: &WebState,
    session: &Session,
    id: &GroupId,
    form: &GroupForm,
) -> Result<Response, WebError> {
    let path = format!("/api/contactgroups/{id}");
    let pasted = pasted_numbers(&form.numbers);
    let render = |draft: GroupForm, errors: Errors, note: Option<Markup>, status: StatusCode| {
        let query = MembersQuery::default();
        async move { render_group(state, session, id, &query, &draft, (errors, note), status).await }
    };
    if pasted.is_empty() {
        let errors = Errors::one("add", "Type or paste at least one number.");
        return render(form.clone(), errors, None, StatusCode::BAD_REQUEST).await;
    }
    let size = |group: &Value| group["size"].as_i64().unwrap_or_default();
    let before = size(&state.api.get(session, &path).await?.into_ok()?);
    let numbers: Vec<&str> = pasted.iter().map(|(_, number)| number.as_str()).collect();
    let mut reply = state
        .api
        .json(
            session,
            Method::PATCH,
            &path,
            Some(&json!({"add": numbers})),
        )
        .await?;
    let mut refused = Vec::new();
    if reply.status == StatusCode::BAD_REQUEST
        && let Some(bad) = refused_entries(&reply.body, "add", numbers.len())
    {
        let valid: Vec<&str> = numbers
            .iter()
            .enumerate()
            .filter(|(index, _)| !bad.iter().any(|(at, _)| at == index))
            .map(|(_, number)| *number)
            .collect();
        refused = bad
            .into_iter()
            .map(|(index, reason)| (pasted[index].0, pasted[index].1.clone(), reason))
            .collect();
        if !valid.is_empty() {
            reply = state
                .api
                .json(session, Method::PATCH, &path, Some(&json!({"add": valid})))
                .await?;
        }
    }
    let added = if refused.len() == numbers.len() {
        0
    } else if reply.ok() {
        size(&reply.body) - before
    } else {
        let errors = Errors::from_reply(&reply);
        return render(form.clone(), errors, None, reply.status).await;
    };
    let offered = i64::try_from(numbers.len() - refused.len()).unwrap_or(i64::MAX);
    if refused.is_empty() {
        let already = offered - added;
        return Ok(
            Redirect::to(&format!("/groups/{id}?added={added}&already={already}")).into_response(),
        );
    }
    let note = html! {
        @if added > 0 || offered > 0 { (added_note(added, offered - added)) }
        div.problem role="alert" id="add-refused" {
            p { strong { (refused.len()) " " (if refused.len() == 1 { "line was" } else { "lines were" }) " not added:" } }
            ul {
                @for (line, number, reason) in &refused {
                    li { "Line " (line) ": " code { (number) } " — " (reason) }
                }
            }
        }
    };
    let draft = GroupForm {
        action: "add".to_owned(),
        numbers: refused
            .iter()
            .map(|(_, number, _)| number.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        ..form.clone()
    };
    let status = if added > 0 || offered > 0 {
        StatusCode::OK
    } else {
        StatusCode::BAD_REQUEST
    };
    render(draft, Errors::default(), Some(note), status).await
}

/// The entries of the list `field` the API refused (`add[3]`), with its reasons; `None` when
/// it refused anything else too, or named an entry that was not sent.
fn refused_entries(problem: &Value, field: &str, sent: usize) -> Option<Vec<(usize, String)>> {
    let errors = problem["errors"].as_array()?;
    let mut refused = Vec::new();
    for error in errors {
        let index: usize = text(error, "field")
            .strip_prefix(field)?
            .strip_prefix('[')?
            .strip_suffix(']')?
            .parse()
            .ok()?;
        if index >= sent {
            return None;
        }
        refused.push((index, text(error, "detail").to_owned()));
    }
    (!refused.is_empty()).then_some(refused)
}

fn added_note(added: i64, already: i64) -> Markup {
    html! {
        p.success role="status" id="added-note" {
            "Added " (added) " " (if added == 1 { "number" } else { "numbers" }) "."
            @if already > 0 { " " (already) " " (if already == 1 { "was a member" } else { "were members" }) " already." }
        }
    }
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

/// Numbers typed or pasted, each with its line (from 1): one per line, or several separated by
/// commas, semicolons, or spaces when each piece is a whole number of 8 digits or more (so that
/// `(415) 555-0102` stays one number); from rows pasted out of a spreadsheet (cells separated by
/// tabs), the first cell that holds a digit, so that a header row is passed over.
pub(super) fn pasted_numbers(text: &str) -> Vec<(usize, String)> {
    let whole = |word: &str| {
        let digits = word.strip_prefix('+').unwrap_or(word);
        digits.len() >= 8 && digits.bytes().all(|byte| byte.is_ascii_digit())
    };
    let mut found = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = if line.contains('\t') {
            line.split('\t')
                .map(str::trim)
                .find(|cell| cell.bytes().any(|byte| byte.is_ascii_digit()))
                .unwrap_or_default()
        } else {
            line
        };
        for piece in line.split([',', ';']).map(str::trim) {
            let words: Vec<&str> = piece.split_whitespace().collect();
            if words.len() > 1 && words.iter().all(|word| whole(word)) {
                found.extend(words.iter().map(|word| (index + 1, (*word).to_owned())));
            } else if !piece.is_empty() {
                found.push((index + 1, piece.to_owned()));
            }
        }
    }
    found
}

async fn render_group(
    state: &WebState,
    session: &Session,
    id: &GroupId,
    query: &MembersQuery,
    draft: &GroupForm,
    (errors, note): (Errors, Option<Markup>),
    status: StatusCode,
) -> Result<Response, WebError> {
    let group = state
        .api
        .get(session, &format!("/api/contactgroups/{id}"))
        .await?
        .into_ok()?;
    let name = group_name(&group);
    let deleted = text(&group, "status") == "DELETED";
    let facts = html! {
        dl.facts {
            dt { "Size" } dd id="group-size" { (group["size"].as_i64().unwrap_or_default()) }
            dt { "Status" } dd id="group-status" { (status_label(text(&group, "status"))) }
            @if let Some(description) = group["description"].as_str() { dt { "Description" } dd { (description) } }
            @if !group["rule"].is_null() { dt { "Rule" } dd { code { (text(&group, "rule")) } } }
            dt { "Id (for the API)" } dd { (copyable_id(id.as_str())) }
        }
    };
    if deleted {
        // A deleted group is shown as it is, read-only: restoring it is the one thing to do.
        let body = html! {
            p.crumbs { a href="/groups" { "Groups" } " › " (name) }
            h1 { (name) " " small { "(deleted)" } }
            (errors.summary())
            @if let Some(note) = &note { (note) }
            form.restore method="post" {
                (csrf_field(session))
                input type="hidden" name="action" value="restore";
                p { "This group is deleted: it counts as empty when messages are sent, and keeps its members and settings for its restore." }
                button type="submit" { "Restore group" }
            }
            (facts)
        };
        return Ok(respond(status, page(session, Section::Groups, &name, body)));
    }
    let search = query.search.trim();
    let (search_key, search_value) = super::contacts::plain_search(session, search);
    let member_page = query.view.page(query.page);
    let members = state
        .api
        .get_with(
            session,
            "/api/contacts",
            &[
                ("group", id.as_str()),
                (search_key, search_value.as_str()),
                ("order_by", query.view.sort(&MEMBER_SORTS)),
                ("direction", query.view.direction()),
                ("page", &member_page.to_string()),
                ("page_size", &query.view.size().to_string()),
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
    let all_groups = active_groups(state, session).await?;
    let mut names: HashMap<String, String> = all_groups
        .iter()
        .filter(|group| children.iter().any(|child| child == text(group, "id")))
        .map(|group| (text(group, "id").to_owned(), group_name(group)))
        .collect();
    // A deleted child is not among the active groups: read by itself.
    let deleted: Vec<&str> = children
        .iter()
        .map(String::as_str)
        .filter(|child| !names.contains_key(*child))
        .collect();
    names.extend(names_of(state, session, deleted).await?);
    let child_groups: Vec<(String, String)> = children
        .iter()
        .map(|child| {
            let name = names.get(child).cloned().unwrap_or_else(|| child.clone());
            (child.clone(), name)
        })
        .collect();
    let candidates = child_candidates(&all_groups, id.as_str(), &children);
    let smart = !group["rule"].is_null();
    let inherited = if smart {
        HashMap::new()
    } else {
        inherited_members(state, session, id.as_str(), &member_rows, &all_groups).await?
    };
    // Each form shows what was typed in it when it was the one sent, and what is stored
    // otherwise: an error in one form never empties another.
    let kept = |form: &str, drafted: &str, stored: &str| -> String {
        if draft.action == form {
            drafted.to_owned()
        } else {
            stored.to_owned()
        }
    };
    let auto_update = &group["auto_update"];
    let keyword = |drafted: &str, stored: &str| kept("keywords", drafted, stored);
    let filters = format!(
        "/groups/{id}?{}",
        serde_urlencoded::to_string([("search", search)]).unwrap_or_default()
    );
    let base = with_view(&filters, &query.view);
    let member_header = |key: &str, label: &str, natural: &str| {
        sort_header(&filters, &query.view, &MEMBER_SORTS, (key, label, natural))
    };
    let member_pages = member_total.map(|total| total.div_ceil(query.view.size()));
    let body = html! {
        p.crumbs { a href="/groups" { "Groups" } " › " (name) }
        h1 { (name) }
        (errors.summary())
        @if let Some(note) = &note { (note) }
        (facts)
        p { a.button href={ "/send?group=" (id) } { "Send a message to this group" } }
        section aria-labelledby="rename" {
            h2 id="rename" { "Name and description" }
            form method="post" class="stack" {
                (csrf_field(session))
                input type="hidden" name="action" value="rename";
                (text_input("name", "Name", &kept("rename", &draft.name, &name), "text", &errors))
                (text_input("description", "Description", &kept("rename", &draft.description, text(&group, "description")), "text", &errors))
                button type="submit" { "Save" }
            }
        }
        @if smart {
            section aria-labelledby="rule-title" {
                h2 id="rule-title" { "Rule" }
                form method="post" class="stack" {
                    (csrf_field(session))
                    input type="hidden" name="action" value="rule";
                    (rule_field(session, &kept("rule", &draft.rule, text(&group, "rule")), &errors, "The group's members are the contacts this rule matches."))
                    button type="submit" { "Save rule" }
                }
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
                table.cards id="members-table" {
                    caption { (member_rows.len()) " shown" @if let Some(total) = member_total { " of " (total) } }
                    thead { tr {
                        th scope="col" { "Number" } (member_header("name", "Name", "asc")) th scope="col" { "Opted out" }
                        (member_header("created_at", "Contact since", "desc"))
                        @if !smart { th scope="col" { span.visually-hidden { "Actions" } } }
                    } }
                    tbody {
                        @for member in &member_rows {
                            @let phone = text(member, "phone");
                            tr {
                                td { a href={ "/contacts/" (text(member, "id")) } { (phone) } }
                                td { (full_name(member)) }
                                td data-label="Opted out" { @if member["opted_out"].as_bool().unwrap_or_default() { "Yes" } @else { "No" } }
                                td data-label="Contact since" { (short_time(text(member, "created_at"))) }
                                @if !smart {
                                    td {
                                        @if let Some(through) = inherited.get(text(member, "id")) {
                                            span.hint.inherited { "through " (through) }
                                        } @else {
                                            form method="post" {
                                                (csrf_field(session))
                                                input type="hidden" name="action" value="remove";
                                                input type="hidden" name="number" value=(phone);
                                                button.link type="submit" aria-label={ "Remove " (phone) } { "Remove" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        @if member_rows.is_empty() { tr { td colspan="5" { "No members." } } }
                    }
                }
            }
            (pager(&base, member_page, member_rows.len(), query.view.size(), member_total))
            (controls(&base, &query.view, member_page, member_pages))
            @if !smart {
                form method="post" class="stack" {
                    (csrf_field(session))
                    input type="hidden" name="action" value="add";
                    div.field {
                        label for="numbers" { "Add numbers" }
                        textarea id="numbers" name="numbers" rows="4"
                            aria-invalid=[errors.has("add").then_some("true")]
                            aria-describedby=[errors.has("add").then(|| super::form::error_id("add"))] { (draft.numbers) }
                        p.hint { "One per line, or separated by commas or spaces; a column pasted from a spreadsheet works too." }
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
                (text_input("to", "Sent to (short code or number)", &keyword(&draft.to, text(auto_update, "to")), "text", &errors))
                div.row {
                    (text_input("add_first_word", "Join word", &keyword(&draft.add_first_word, text(&auto_update["add"], "first_word")), "text", &errors))
                    (text_input("add_second_word", "Second word (optional)", &keyword(&draft.add_second_word, text(&auto_update["add"], "second_word")), "text", &errors))
                }
                div.row {
                    (text_input("remove_first_word", "Leave word", &keyword(&draft.remove_first_word, text(&auto_update["remove"], "first_word")), "text", &errors))
                    (text_input("remove_second_word", "Second word (optional)", &keyword(&draft.remove_second_word, text(&auto_update["remove"], "second_word")), "text", &errors))
                }
                button type="submit" { "Save keywords" }
            }
        }
        section aria-labelledby="danger" {
            h2 id="danger" { "Delete" }
            form method="post" {
                (csrf_field(session))
                input type="hidden" name="action" value="delete";
                p { "A deleted group counts as empty when messages are sent; it can be restored." }
                button.danger type="submit" data-confirm={ "Delete the group “" (name) "”? It counts as empty until it is restored." } { "Delete group" }
            }
        }
    };
    Ok(respond(status, page(session, Section::Groups, &name, body)))
}

/// Which groups hold which as children, from the plan's list of groups.
struct GroupTree<'a>(HashMap<&'a str, Vec<&'a str>>);

impl<'a> GroupTree<'a> {
    fn of(groups: &'a [Value]) -> Self {
        GroupTree(
            groups
                .iter()
                .map(|group| {
                    let children = group["child_groups"]
                        .as_array()
                        .map(|ids| ids.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    (text(group, "id"), children)
                })
                .collect(),
        )
    }

    /// `from` and every group below it.
    fn below(&self, from: &'a str) -> HashSet<&'a str> {
        let mut seen = HashSet::new();
        let mut stack = vec![from];
        while let Some(at) = stack.pop() {
            if seen.insert(at) {
                stack.extend(self.0.get(at).into_iter().flatten().copied());
            }
        }
        seen
    }
}

/// The groups that may become children of `id`: not one already, and none that `id` is below
/// or is (itself, its parents and theirs), which would make a cycle.
fn child_candidates(groups: &[Value], id: &str, children: &[String]) -> Vec<(String, String)> {
    let tree = GroupTree::of(groups);
    pick_labels(groups)
        .into_iter()
        .filter(|pick| !children.contains(&pick.id) && !tree.below(&pick.id).contains(id))
        .map(|pick| (pick.id, pick.label))
        .collect()
}

/// The members of the page that are not direct members of `id` but come through a group below
/// it, by contact id, with the names of those groups.
async fn inherited_members(
    state: &WebState,
    session: &Session,
    id: &str,
    members: &[Value],
    groups: &[Value],
) -> Result<HashMap<String, String>, WebError> {
    let tree = GroupTree::of(groups);
    let below = tree.below(id);
    let names: HashMap<&str, String> = groups
        .iter()
        .map(|group| (text(group, "id"), group_name(group)))
        .collect();
    let mut inherited = HashMap::new();
    for member in members {
        let contact = text(member, "id");
        let reply = state
            .api
            .get(session, &format!("/api/contacts/{contact}?include=groups"))
            .await?;
        if !reply.ok() {
            continue;
        }
        let groups: Vec<&str> = reply.body["groups"]
            .as_array()
            .map(|groups| groups.iter().map(|group| text(group, "id")).collect())
            .unwrap_or_default();
        if groups.contains(&id) {
            continue;
        }
        let through: Vec<&str> = groups
            .iter()
            .filter(|group| below.contains(*group))
            .filter_map(|group| names.get(*group).map(String::as_str))
            .collect();
        let through = if through.is_empty() {
            "a child group".to_owned()
        } else {
            through.join(", ")
        };
        inherited.insert(contact.to_owned(), through);
    }
    Ok(inherited)
}

/// A smart group's rule, with what it matches now (asked for by the page's script as it is
/// typed, at `/groups/rule`) and its errors pointed at the character.
fn rule_field(session: &Session, rule: &str, errors: &Errors, hint: &str) -> Markup {
    html! {
        div.field {
            label for="rule" { "Rule" }
            textarea id="rule" name="rule" rows="2" placeholder="fields.city = \"Leeds\" and not opted_out"
                data-rule-check="/groups/rule" data-csrf=(session.csrf())
                aria-invalid=[errors.has("rule").then_some("true")]
                aria-describedby="rule-help" { (rule) }
            p.hint id="rule-help" { (hint) }
            (errors.message("rule"))
            div #rule-check aria-live="polite" {}
        }
    }
}

#[derive(Deserialize)]
pub struct RuleCheck {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    rule: String,
}

/// What a rule matches now, for the page's script: the count, or the error with a mark under
/// the character it names.
pub async fn check_rule(
    State(state): State<WebState>,
    session: Session,
    Form(form): Form<RuleCheck>,
) -> Result<Response, WebError> {
    session.check_csrf(&form.csrf)?;
    let rule = form.rule.trim();
    if rule.is_empty() {
        return Ok(Html(String::new()).into_response());
    }
    let reply = state
        .api
        .get_with(
            &session,
            "/api/contacts",
            &[("q", rule), ("limit", "1"), ("count", "true")],
        )
        .await?;
    let markup = if reply.ok() {
        let count = reply.body["count"].as_u64().unwrap_or_default();
        html! { p.hint.rule-count { "Matches " strong { (count) } " " (if count == 1 { "contact" } else { "contacts" }) " now." } }
    } else {
        let errors = Errors::from_reply(&reply);
        let detail = errors
            .for_field("q")
            .first()
            .map(|(_, detail)| detail.clone())
            .or(errors.summary)
            .unwrap_or_default();
        html! {
            div.rule-error role="alert" {
                p { (detail) }
                @if let Some(at) = error_position(&detail) {
                    pre { (rule) "\n" (" ".repeat(at.saturating_sub(1))) "^" }
                }
            }
        }
    };
    Ok(Html(markup.into_string()).into_response())
}

/// The character an error of the filter language names (`at character 10: …`), from 1.
fn error_position(detail: &str) -> Option<usize> {
    let rest = detail.split_once("at character ")?.1;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// What kind of group it is: smart (its members follow a rule), nested (it has child groups),
/// or static.
pub fn kind_label(group: &Value) -> &'static str {
    if !group["rule"].is_null() {
        "Smart"
    } else if group["child_groups"]
        .as_array()
        .is_some_and(|children| !children.is_empty())
    {
        "Nested"
    } else {
        "Static"
    }
}

/// A group as a picker offers it.
pub struct Pick {
    pub id: String,
    pub label: String,
    pub size: i64,
    pub smart: bool,
}

/// The plan's active groups for a picker, by name (at most 1,000): a name two groups share
/// is told apart by each one's size and creation day, so that no two entries read alike.
pub async fn picks(state: &WebState, session: &Session) -> Result<Vec<Pick>, WebError> {
    Ok(pick_labels(&active_groups(state, session).await?))
}

/// The plan's active groups by name, as pickers offer them (at most 1,000).
async fn active_groups(state: &WebState, session: &Session) -> Result<Vec<Value>, WebError> {
    let listing = state
        .api
        .get_with(
            session,
            "/api/contactgroups",
            &[("order_by", "name"), ("limit", "1000")],
        )
        .await?
        .into_ok()?;
    Ok(listing["groups"].as_array().cloned().unwrap_or_default())
}

fn pick_labels(groups: &[Value]) -> Vec<Pick> {
    let mut named: HashMap<String, usize> = HashMap::new();
    for group in groups {
        *named.entry(group_name(group).to_lowercase()).or_default() += 1;
    }
    groups
        .iter()
        .map(|group| {
            let name = group_name(group);
            let size = group["size"].as_i64().unwrap_or_default();
            let label = if named.get(&name.to_lowercase()).copied().unwrap_or(0) > 1 {
                let created = text(group, "created_at")
                    .get(..10)
                    .unwrap_or_default()
                    .to_owned();
                format!("{name} ({size} members, created {created})")
            } else {
                name
            };
            Pick {
                id: text(group, "id").to_owned(),
                label,
                size,
                smart: !group["rule"].is_null(),
            }
        })
        .collect()
}

/// A group's status in words.
pub fn status_label(status: &str) -> &'static str {
    match status {
        "ACTIVE" => "Active",
        "DELETED" => "Deleted",
        _ => "Unknown",
    }
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
    fn pasted_numbers_keep_their_lines() {
        let numbers = |text: &str| -> Vec<(usize, String)> { pasted_numbers(text) };
        let pairs = |pairs: &[(usize, &str)]| -> Vec<(usize, String)> {
            pairs
                .iter()
                .map(|(line, number)| (*line, (*number).to_owned()))
                .collect()
        };
        assert_eq!(
            numbers("+14155550100\n +14155550101 ,+14155550102;\n\n+14155550103"),
            pairs(&[
                (1, "+14155550100"),
                (2, "+14155550101"),
                (2, "+14155550102"),
                (4, "+14155550103")
            ])
        );
        // Spaces part whole numbers, not the pieces of one.
        assert_eq!(
            numbers("+14155550100 4155550101\n(415) 555-0102\n415 555 0103"),
            pairs(&[
                (1, "+14155550100"),
                (1, "4155550101"),
                (2, "(415) 555-0102"),
                (3, "415 555 0103")
            ])
        );
        // Rows from a spreadsheet: the first cell with a digit; a header row has none.
        assert_eq!(
            numbers("Name\tMobile\nAda\t+14155550100\n+14155550101\tBob\n"),
            pairs(&[(2, "+14155550100"), (3, "+14155550101")])
        );
    }

    #[test]
    fn only_refused_entries_of_the_list_are_picked_out() {
        let problem = json!({"errors": [
            {"field": "add[2]", "detail": "not a phone number"},
            {"field": "add[0]", "detail": "too short"},
        ]});
        assert_eq!(
            refused_entries(&problem, "add", 3),
            Some(vec![
                (2, "not a phone number".to_owned()),
                (0, "too short".to_owned())
            ])
        );
        assert_eq!(refused_entries(&problem, "add", 2), None);
        let other = json!({"errors": [{"field": "name", "detail": "too long"}]});
        assert_eq!(refused_entries(&other, "add", 3), None);
    }

    #[test]
    fn rule_errors_point_at_their_character() {
        assert_eq!(
            error_position("at character 10: expected a value: a \"string\""),
            Some(10)
        );
        assert_eq!(error_position("unknown field"), None);
    }

    #[test]
    fn pickers_tell_namesakes_apart() {
        let groups = [
            json!({"id": "A", "name": "Newsletter", "size": 3, "created_at": "2026-11-02T10:00:00Z"}),
            json!({"id": "B", "name": "newsletter", "size": 40, "created_at": "2026-12-01T10:00:00Z"}),
            json!({"id": "C", "name": "VIP", "size": 2, "rule": "fields.vip = true"}),
        ];
        let labels: Vec<String> = pick_labels(&groups)
            .into_iter()
            .map(|pick| pick.label)
            .collect();
        assert_eq!(
            labels,
            [
                "Newsletter (3 members, created 2026-11-02)",
                "newsletter (40 members, created 2026-12-01)",
                "VIP"
            ]
        );
        assert_eq!(kind_label(&groups[2]), "Smart");
        assert_eq!(kind_label(&json!({"child_groups": ["A"]})), "Nested");
        assert_eq!(kind_label(&groups[0]), "Static");
    }

    #[test]
    fn a_group_cannot_take_its_parents_as_children() {
        let groups = [
            json!({"id": "A", "name": "Top", "child_groups": ["B"]}),
            json!({"id": "B", "name": "Middle", "child_groups": ["C"]}),
            json!({"id": "C", "name": "Bottom", "child_groups": []}),
            json!({"id": "D", "name": "Aside", "child_groups": []}),
        ];
        let names = |candidates: Vec<(String, String)>| -> Vec<String> {
            candidates.into_iter().map(|(_, name)| name).collect()
        };
        assert_eq!(names(child_candidates(&groups, "C", &[])), ["Aside"]);
        assert_eq!(
            names(child_candidates(&groups, "A", &["B".to_owned()])),
            ["Bottom", "Aside"]
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
