//! Contacts: search with the filter language, and a contact's page to edit it and its opt-out.

use std::collections::HashMap;

use axum::extract::{Form, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::WebState;
use super::bulk::{ACTIONS, BulkForm};
use super::form::{Errors, non_blank, text};
use super::groups::{Pick, full_name, group_name, names_of, picks, short_time};
use super::ids::PageId;
use super::layout::{Section, WebError, copyable_id, csrf_field, page, pager, respond, text_input};
use super::listing::{View, controls, sort_header, with_view};
use super::session::Session;
use crate::domain::ids::{ContactId, GroupId};
use crate::domain::msisdn::{RegionCode, search_prefix};

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    /// A name or the start of a number, as a person types it.
    #[serde(default)]
    search: String,
    /// The filter language, for the advanced search.
    #[serde(default)]
    q: String,
    #[serde(default)]
    page: u64,
    /// Set by the redirect after a delete: the number, to say so.
    #[serde(default)]
    deleted: String,
    /// Set by the redirect after a bulk action: which, how many contacts it changed of how
    /// many, and the group.
    #[serde(default)]
    bulk: String,
    #[serde(default)]
    n: String,
    #[serde(default)]
    of: String,
    #[serde(default)]
    group: String,
    #[serde(flatten)]
    view: View,
}

impl SearchQuery {
    /// The first page of a search.
    pub fn of(search: &str, q: &str) -> Self {
        Self {
            search: search.to_owned(),
            q: q.to_owned(),
            ..Self::default()
        }
    }
}

/// The new-contact form as it was sent, and why it was refused.
#[derive(Default)]
pub struct Draft {
    form: NewContact,
    errors: Errors,
}

/// What the contact list sorts by: its default first.
const CONTACT_SORTS: [&str; 3] = ["name", "created_at", "modified_at"];

/// The new-contact form on the list.
#[derive(Deserialize, Default)]
pub struct NewContact {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
}

/// The API's search parameter for what a person typed in a search box: the start of a number
/// (national or international) as `phone`, anything else as the start of a name.
pub fn plain_search(session: &Session, typed: &str) -> (&'static str, String) {
    let region = session
        .plan
        .default_region
        .as_deref()
        .and_then(|region| RegionCode::parse(region).ok());
    match search_prefix(typed, region) {
        Some(prefix) => ("phone", prefix),
        None => ("name", typed.trim().to_owned()),
    }
}

pub async fn list(
    State(state): State<WebState>,
    session: Session,
    Query(query): Query<SearchQuery>,
) -> Result<Response, WebError> {
    render_list(
        &state,
        &session,
        &query,
        Draft::default(),
        &BulkForm::default(),
        Errors::default(),
    )
    .await
}

/// Creates a contact from the list's form and opens its page; a number that is already a
/// contact's is refused with a link to that contact.
pub async fn create(
    State(state): State<WebState>,
    session: Session,
    Form(form): Form<NewContact>,
) -> Result<Response, WebError> {
    session.check_csrf(&form.csrf)?;
    let body = json!({
        "phone": form.phone.trim(),
        "first_name": non_blank(&form.first_name),
        "last_name": non_blank(&form.last_name),
    });
    let reply = state
        .api
        .json(&session, Method::POST, "/api/contacts", Some(&body))
        .await?;
    if reply.ok() {
        let id = text(&reply.body, "id");
        return Ok(Redirect::to(&format!("/contacts/{id}")).into_response());
    }
    let mut errors = Errors::from_reply(&reply);
    if reply.status == StatusCode::CONFLICT {
        // "contact <id> already has this phone number": the page links the contact instead.
        let existing = text(&reply.body, "detail")
            .split_whitespace()
            .find_map(ContactId::parse);
        if let Some(existing) = existing {
            errors = Errors::default();
            errors.summary = Some("This number is already a contact's.".to_owned());
            errors.link = Some((
                format!("/contacts/{existing}"),
                "Open that contact".to_owned(),
            ));
        }
    }
    let draft = Draft { form, errors };
    render_list(
        &state,
        &session,
        &SearchQuery::default(),
        draft,
        &BulkForm::default(),
        Errors::default(),
    )
    .await
}

/// The contact list: a search, its page of contacts with the bulk actions, and the new-contact
/// form; either form as it was sent when it was refused.
pub(super) async fn render_list(
    state: &WebState,
    session: &Session,
    query: &SearchQuery,
    draft: Draft,
    bulk: &BulkForm,
    bulk_errors: Errors,
) -> Result<Response, WebError> {
    let Draft {
        form: draft,
        errors: create_errors,
    } = draft;
    let draft = &draft;
    let (key, value) = plain_search(session, &query.search);
    let shown_page = query.view.page(query.page);
    let reply = state
        .api
        .get_with(
            session,
            "/api/contacts",
            &[
                (key, value.as_str()),
                ("q", query.q.trim()),
                ("order_by", query.view.sort(&CONTACT_SORTS)),
                ("direction", query.view.direction()),
                ("page", &shown_page.to_string()),
                ("page_size", &query.view.size().to_string()),
                ("count", "true"),
            ],
        )
        .await?;
    // A filter that does not parse is the searcher's mistake: shown at the field, not as a page
    // of its own.
    let (errors, status) = if reply.ok() {
        (Errors::default(), StatusCode::OK)
    } else if reply.status == StatusCode::BAD_REQUEST {
        (Errors::from_reply(&reply), StatusCode::BAD_REQUEST)
    } else {
        return Err(WebError::Api(reply));
    };
    let contacts = reply.body["contacts"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let total = reply.body["count"].as_u64();
    let filters = format!(
        "/contacts?{}",
        serde_urlencoded::to_string([("search", query.search.trim()), ("q", query.q.trim())])
            .unwrap_or_default()
    );
    let base = with_view(&filters, &query.view);
    let header = |key: &str, label: &str, natural: &str| {
        sort_header(&filters, &query.view, &CONTACT_SORTS, (key, label, natural))
    };
    let groups: Vec<Pick> = picks(state, session)
        .await?
        .into_iter()
        .filter(|group| !group.smart)
        .collect();
    let done = bulk_outcome(query, &groups);
    let ticked = |id: &str| bulk.ids.iter().any(|ticked| ticked == id);
    let body = html! {
        h1 { "Contacts" }
        @if let Some(phone) = non_blank(&query.deleted) {
            p.success role="status" { "The contact " (phone) " was deleted." }
        }
        @if let Some(done) = done {
            p.success role="status" id="bulk-done" { (done) }
        }
        form.search method="get" action="/contacts" role="search" {
            div.field.wide {
                label for="search" { "Name or number" }
                input id="search" name="search" type="search" value=(query.search)
                    placeholder="Ada, Taylor, +44 7700, (415) 555" aria-describedby="search-help";
                p.hint id="search-help" { "The start of a first or last name, or of a number, national or international." }
            }
            details.field.wide open[!query.q.is_empty()] {
                summary { "Advanced: a filter" }
                label for="q" { "Filter" }
                input id="q" name="q" type="search" value=(query.q)
                    placeholder="country = \"GB\" and not opted_out"
                    aria-invalid=[errors.has("q").then_some("true")]
                    aria-describedby="q-help";
                p.hint id="q-help" {
                    "For example " code { "country = \"GB\"" } ", "
                    code { "email is null" } ", " code { "fields.city in (\"Leeds\", \"York\")" }
                    ". Empty shows everyone."
                }
                (errors.message("q"))
            }
            button type="submit" { "Search" }
        }
        @if !errors.has("q") { (errors.summary()) }
        @if !contacts.is_empty() {
            form.bulk id="bulk" method="post" action="/contacts/bulk" aria-labelledby="bulk-title" {
                (csrf_field(session))
                input type="hidden" name="search" value=(query.search);
                input type="hidden" name="q" value=(query.q);
                h2.visually-hidden id="bulk-title" { "Act on several contacts" }
                (bulk_errors.summary())
                div.bulk-bar {
                    div.field {
                        label for="bulk-scope" { "Contacts" }
                        select id="bulk-scope" name="scope" aria-invalid=[bulk_errors.has("scope").then_some("true")] {
                            option value="ticked" { "The ticked ones" }
                            option value="all" selected[bulk.scope == "all"] {
                                "All " @if let Some(total) = total { (total) " " } "that the search finds"
                            }
                        }
                    }
                    div.field {
                        label for="bulk-action" { "Action" }
                        select id="bulk-action" name="action" aria-invalid=[bulk_errors.has("action").then_some("true")] {
                            option value="" { "Choose…" }
                            @for (value, label) in ACTIONS {
                                option value=(value) selected[bulk.action == value] { (label) }
                            }
                        }
                    }
                    div.field {
                        label for="bulk-group" { "Group (to add to or remove from)" }
                        select id="bulk-group" name="group" aria-invalid=[bulk_errors.has("group").then_some("true")] {
                            option value="" { "Choose…" }
                            @for group in &groups {
                                option value=(group.id) selected[bulk.group == group.id] { (group.label) }
                            }
                        }
                    }
                    button type="submit" { "Apply" }
                }
                (bulk_errors.message("scope"))
                (bulk_errors.message("action"))
                (bulk_errors.message("group"))
                (bulk_errors.message("ids"))
            }
        }
        div.table-wrap {
            table.cards id="contacts-table" {
                caption { (contacts.len()) " shown" @if let Some(total) = total { " of " (total) } }
                thead { tr {
                    th scope="col" class="tick" {
                        input type="checkbox" id="tick-all" data-tick-all="ids" hidden aria-label="Tick every contact on this page";
                    }
                    th scope="col" { "Number" } (header("name", "Name", "asc")) th scope="col" { "Email" } th scope="col" { "Opted out" } (header("created_at", "Added", "desc"))
                } }
                tbody {
                    @for contact in &contacts {
                        tr {
                            td.tick {
                                input type="checkbox" form="bulk" name="ids" value=(text(contact, "id"))
                                    checked[ticked(text(contact, "id"))]
                                    aria-label={ "Tick " (text(contact, "phone")) };
                            }
                            td { a href={ "/contacts/" (text(contact, "id")) } { (text(contact, "phone")) } }
                            td { (full_name(contact)) }
                            td { (text(contact, "email")) }
                            td data-label="Opted out" { @if contact["opted_out"].as_bool().unwrap_or_default() { "Yes" } @else { "No" } }
                            td data-label="Added" { (short_time(text(contact, "created_at"))) }
                        }
                    }
                    @if contacts.is_empty() { tr { td colspan="6" { "No contacts." } } }
                }
            }
        }
        (pager(&base, shown_page, contacts.len(), query.view.size(), total))
        (controls(&base, &query.view, shown_page, total.map(|total| total.div_ceil(query.view.size()))))
        section aria-labelledby="new-contact" {
            h2 id="new-contact" { "New contact" }
            (create_errors.summary())
            form method="post" action="/contacts" class="stack" {
                (csrf_field(session))
                (text_input("phone", "Number", &draft.phone, "tel", &create_errors))
                div.row {
                    (text_input("first_name", "First name (optional)", &draft.first_name, "text", &create_errors))
                    (text_input("last_name", "Last name (optional)", &draft.last_name, "text", &create_errors))
                }
                button type="submit" { "Create contact" }
            }
        }
    };
    let status = if create_errors.is_empty() && bulk_errors.is_empty() {
        status
    } else {
        StatusCode::BAD_REQUEST
    };
    Ok(respond(
        status,
        page(session, Section::Contacts, "Contacts", body),
    ))
}

/// A country by its name, from the number's ISO code (the code itself if it has no name).
fn country_name(code: &str) -> String {
    RegionCode::parse(code).map_or_else(|_| code.to_owned(), |region| region.name())
}

/// What the bulk action the list was sent back from did, in words.
fn bulk_outcome(query: &SearchQuery, groups: &[Pick]) -> Option<String> {
    let changed: u64 = query.n.parse().ok()?;
    let of: u64 = query.of.parse().unwrap_or(changed);
    let contacts = |n: u64| {
        if n == 1 {
            format!("{n} contact")
        } else {
            format!("{n} contacts")
        }
    };
    let group = groups
        .iter()
        .find(|group| group.id == query.group)
        .map(|group| format!("“{}”", group.label))
        .unwrap_or_else(|| "the group".to_owned());
    let counted = |verb: &str, rest: &str| {
        if changed == of {
            format!("{verb} {}{rest}.", contacts(changed))
        } else {
            format!("{verb} {changed} of the {}{rest}", contacts(of))
        }
    };
    Some(match query.bulk.as_str() {
        "add" if changed == of => counted("Added", &format!(" to {group}")),
        "add" => counted(
            "Added",
            &format!(" to {group}; the others were in it already."),
        ),
        "remove" if changed == of => counted("Removed", &format!(" from {group}")),
        "remove" => counted(
            "Removed",
            &format!(" from {group}; the others were not in it."),
        ),
        "opt_out" if changed == of => counted("Opted out", ""),
        "opt_out" => counted("Opted out", "; the others were opted out already."),
        "delete" => format!("Deleted {}.", contacts(changed)),
        _ => return None,
    })
}

/// The contact form as typed: its fixed fields, and its custom fields as `field:NAME` inputs
/// plus one new name and value.
#[derive(Default)]
pub struct ContactForm {
    csrf: String,
    action: String,
    phone: String,
    first_name: String,
    last_name: String,
    email: String,
    gender: String,
    time_zone: String,
    /// A checkbox: ticked when present.
    opted_out: bool,
    fields: Vec<(String, String)>,
    new_field: String,
    new_value: String,
    group: String,
}

impl ContactForm {
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut form = ContactForm::default();
        for (key, value) in pairs {
            match key.as_str() {
                "csrf" => form.csrf = value,
                "action" => form.action = value,
                "phone" => form.phone = value,
                "first_name" => form.first_name = value,
                "last_name" => form.last_name = value,
                "email" => form.email = value,
                "gender" => form.gender = value,
                "time_zone" => form.time_zone = value,
                "opted_out" => form.opted_out = true,
                "new_field" => form.new_field = value,
                "new_value" => form.new_value = value,
                "group" => form.group = value,
                _ => {
                    if let Some(name) = key.strip_prefix("field:") {
                        form.fields.push((name.to_owned(), value));
                    }
                }
            }
        }
        form
    }

    /// The custom fields to store: each kept in the JSON type it had when the text still reads
    /// as one (a number stays a number), a blank value removing the field, and the new pair.
    fn custom_fields(&self, stored: &Value) -> Value {
        let mut fields = serde_json::Map::new();
        let typed = |name: &str, text: &str| -> Value {
            let text = text.trim();
            match &stored[name] {
                Value::Number(_) => text
                    .parse::<i64>()
                    .map(Value::from)
                    .ok()
                    .or_else(|| {
                        text.parse::<f64>()
                            .ok()
                            .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
                    })
                    .unwrap_or_else(|| Value::String(text.to_owned())),
                Value::Bool(_) if text == "true" || text == "false" => Value::Bool(text == "true"),
                _ => Value::String(text.to_owned()),
            }
        };
        for (name, value) in &self.fields {
            if !value.trim().is_empty() {
                fields.insert(name.clone(), typed(name, value));
            }
        }
        if let Some(name) = non_blank(&self.new_field) {
            fields.insert(name.clone(), typed(&name, &self.new_value));
        }
        Value::Object(fields)
    }
}

pub async fn show(
    State(state): State<WebState>,
    session: Session,
    PageId(id): PageId<ContactId>,
    Query(query): Query<ContactQuery>,
) -> Result<Response, WebError> {
    let note = non_blank(&query.done).map(|done| html! { p.success role="status" { (done) } });
    render_contact(
        &state,
        &session,
        &id,
        None,
        (Errors::default(), note),
        StatusCode::OK,
    )
    .await
}

#[derive(Deserialize, Default)]
pub struct ContactQuery {
    /// What the last action did, said once after its redirect.
    #[serde(default)]
    done: String,
}

/// Every form on a contact's page posts here; `action` says which.
pub async fn act(
    State(state): State<WebState>,
    session: Session,
    PageId(id): PageId<ContactId>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let form = ContactForm::from_pairs(pairs);
    session.check_csrf(&form.csrf)?;
    let path = format!("/api/contacts/{id}");
    let contact = state.api.get(&session, &path).await?.into_ok()?;
    let phone = text(&contact, "phone").to_owned();
    let back = |done: String| {
        let query = serde_urlencoded::to_string([("done", done)]).unwrap_or_default();
        Ok(Redirect::to(&format!("/contacts/{id}?{query}")).into_response())
    };
    let reply = match form.action.as_str() {
        "delete" => {
            let reply = state
                .api
                .json(&session, Method::DELETE, &path, None::<&()>)
                .await?;
            if reply.ok() {
                let query =
                    serde_urlencoded::to_string([("deleted", phone.as_str())]).unwrap_or_default();
                return Ok(Redirect::to(&format!("/contacts?{query}")).into_response());
            }
            reply
        }
        "add_to_group" | "remove_from_group" => {
            let adding = form.action == "add_to_group";
            let Some(group) = GroupId::parse(form.group.trim()) else {
                let errors = Errors::one("group", "Choose a group.");
                return render_contact(
                    &state,
                    &session,
                    &id,
                    None,
                    (errors, None),
                    StatusCode::BAD_REQUEST,
                )
                .await;
            };
            let body = if adding {
                json!({"add": [phone]})
            } else {
                json!({"remove": [phone]})
            };
            let reply = state
                .api
                .json(
                    &session,
                    Method::PATCH,
                    &format!("/api/contactgroups/{group}"),
                    Some(&body),
                )
                .await?;
            if reply.ok() {
                let name = group_name(&reply.body);
                return back(if adding {
                    format!("Added to “{name}”.")
                } else {
                    format!("Removed from “{name}”.")
                });
            }
            reply
        }
        _ => {
            let body = json!({
                "phone": form.phone.trim(),
                "first_name": non_blank(&form.first_name),
                "last_name": non_blank(&form.last_name),
                "email": non_blank(&form.email),
                "gender": non_blank(&form.gender),
                "time_zone": non_blank(&form.time_zone),
                "opted_out": form.opted_out,
            });
            let mut body = body;
            // A form that showed the custom fields sends them whole (a blank one removed); one
            // without them (a script's post) leaves them as they are.
            if !form.fields.is_empty() || non_blank(&form.new_field).is_some() {
                body["fields"] = form.custom_fields(&contact["fields"]);
            }
            let reply = state
                .api
                .json(&session, Method::PATCH, &path, Some(&body))
                .await?;
            if reply.ok() {
                return back("Saved.".to_owned());
            }
            reply
        }
    };
    let errors = Errors::from_reply(&reply);
    let draft = (form.action.is_empty() || form.action == "save").then_some(&form);
    render_contact(&state, &session, &id, draft, (errors, None), reply.status).await
}

async fn render_contact(
    state: &WebState,
    session: &Session,
    id: &ContactId,
    draft: Option<&ContactForm>,
    (errors, note): (Errors, Option<Markup>),
    status: StatusCode,
) -> Result<Response, WebError> {
    let contact = state
        .api
        .get(session, &format!("/api/contacts/{id}?include=groups"))
        .await?
        .into_ok()?;
    let history = state
        .api
        .get(session, &format!("/api/contacts/{id}/consent"))
        .await?
        .into_ok()?;
    let events = history["events"].as_array().cloned().unwrap_or_default();
    let value = |key: &str, drafted: fn(&ContactForm) -> &str| -> String {
        match draft {
            Some(form) => drafted(form).to_owned(),
            None => text(&contact, key).to_owned(),
        }
    };
    let opted_out = match draft {
        Some(form) => form.opted_out,
        None => contact["opted_out"].as_bool().unwrap_or_default(),
    };
    let custom: Vec<(String, String)> = match draft {
        Some(form) => form.fields.clone(),
        None => contact["fields"]
            .as_object()
            .map(|fields| {
                fields
                    .iter()
                    .map(|(name, value)| {
                        let shown = match value {
                            Value::String(text) => text.clone(),
                            other => other.to_string(),
                        };
                        (name.clone(), shown)
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    let gender = value("gender", |form| &form.gender);
    let phone = text(&contact, "phone").to_owned();
    let groups = group_names(state, session, &contact, &events).await?;
    let member_of: Vec<&Value> = contact["groups"]
        .as_array()
        .map(|groups| groups.iter().collect())
        .unwrap_or_default();
    let joinable: Vec<Pick> = picks(state, session)
        .await?
        .into_iter()
        .filter(|group| !group.smart)
        .filter(|group| {
            !member_of
                .iter()
                .any(|member| text(member, "id") == group.id)
        })
        .collect();
    let body = html! {
        p.crumbs { a href="/contacts" { "Contacts" } " › " (phone) }
        h1 { (phone) " " @let name = full_name(&contact); @if !name.is_empty() { small { (name) } } }
        (errors.summary())
        @if let Some(note) = &note { (note) }
        dl.facts {
            dt { "Valid" } dd { @if contact["valid"].as_bool().unwrap_or_default() { "Yes" } @else { "No" } }
            dt { "Kind of number" } dd { (number_type_label(text(&contact, "number_type"))) }
            dt { "Country" } dd { (country_name(text(&contact, "country"))) }
            @if opted_out {
                dt { "Opted out" } dd { (short_time(text(&contact, "opted_out_at"))) " " (text(&contact, "opted_out_reason")) }
            }
            dt { "Id (for the API)" } dd { (copyable_id(id.as_str())) }
        }
        section aria-labelledby="contact-groups" {
            h2 id="contact-groups" { "Groups" }
            ul #contact-group-list {
                @for group in &member_of {
                    @let group_id = text(group, "id");
                    li {
                        a href={ "/groups/" (group_id) } { (group_label(&groups, group_id)) }
                        @if text(group, "status") == "DELETED" { " (deleted)" }
                        " "
                        form.inline method="post" {
                            (csrf_field(session))
                            input type="hidden" name="action" value="remove_from_group";
                            input type="hidden" name="group" value=(group_id);
                            button.link type="submit" aria-label={ "Remove from " (group_label(&groups, group_id).into_string()) } { "Remove" }
                        }
                    }
                }
                @if member_of.is_empty() { li { "In no group." } }
            }
            @if !joinable.is_empty() {
                form method="post" class="row" {
                    (csrf_field(session))
                    input type="hidden" name="action" value="add_to_group";
                    div.field {
                        label for="group" { "Add to a group" }
                        select id="group" name="group" {
                            @for group in &joinable { option value=(group.id) { (group.label) } }
                        }
                        (errors.message("group"))
                    }
                    button type="submit" { "Add to group" }
                }
            }
        }
        section aria-labelledby="details" {
            h2 id="details" { "Details" }
            form method="post" class="stack" {
                (csrf_field(session))
                input type="hidden" name="action" value="save";
                (text_input("phone", "Number", &value("phone", |form| &form.phone), "tel", &errors))
                div.row {
                    (text_input("first_name", "First name", &value("first_name", |form| &form.first_name), "text", &errors))
                    (text_input("last_name", "Last name", &value("last_name", |form| &form.last_name), "text", &errors))
                }
                (text_input("email", "Email", &value("email", |form| &form.email), "email", &errors))
                (text_input("gender", "Gender", &gender, "text", &errors))
                (text_input("time_zone", "Time zone (e.g. Europe/Paris)", &value("time_zone", |form| &form.time_zone), "text", &errors))
                fieldset #custom-fields {
                    legend { "Custom fields" }
                    @for (name, shown) in &custom {
                        div.field {
                            label for={ "field-" (name) } { (name) }
                            input id={ "field-" (name) } name={ "field:" (name) } type="text" value=(shown);
                        }
                    }
                    div.row {
                        div.field {
                            label for="new_field" { "New field" }
                            input id="new_field" name="new_field" type="text" placeholder="city"
                                value=(draft.map_or("", |form| form.new_field.as_str()));
                        }
                        div.field {
                            label for="new_value" { "Its value" }
                            input id="new_value" name="new_value" type="text"
                                value=(draft.map_or("", |form| form.new_value.as_str()));
                        }
                    }
                    p.hint { "Empty a field's value to remove it." }
                    (errors.message("fields"))
                }
                div.field.check {
                    input id="opted_out" name="opted_out" type="checkbox" checked[opted_out];
                    label for="opted_out" { "Opted out: never sent to (memberships are kept)" }
                    (errors.message("opted_out"))
                }
                button type="submit" { "Save contact" }
            }
        }
        section aria-labelledby="consent" {
            h2 id="consent" { "Consent history" }
            div.table-wrap {
                table {
                    thead { tr { th scope="col" { "When" } th scope="col" { "What" } th scope="col" { "How" } th scope="col" { "Group" } } }
                    tbody {
                        @for event in &events {
                            tr {
                                td { (short_time(text(event, "at"))) }
                                td { (consent_event_label(text(event, "event"))) }
                                td { (consent_source_label(text(event, "source"))) }
                                td {
                                    @let group_id = text(event, "group_id");
                                    @if !group_id.is_empty() { (group_label(&groups, group_id)) }
                                }
                            }
                        }
                        @if events.is_empty() { tr { td colspan="4" { "Nothing recorded." } } }
                    }
                }
            }
        }
        section aria-labelledby="delete-contact" {
            h2 id="delete-contact" { "Delete" }
            form method="post" {
                (csrf_field(session))
                input type="hidden" name="action" value="delete";
                p { "Deleting removes the contact from every group. Its number can be added again later." }
                button.danger type="submit" data-confirm={ "Delete the contact " (phone) "? It leaves every group." } { "Delete contact" }
            }
        }
    };
    Ok(respond(
        status,
        page(session, Section::Contacts, &phone, body),
    ))
}

/// A number type in words.
fn number_type_label(kind: &str) -> &'static str {
    match kind {
        "mobile" => "Mobile",
        "fixed_line" => "Landline",
        "fixed_line_or_mobile" => "Mobile or landline",
        "toll_free" => "Toll-free",
        "premium_rate" => "Premium rate",
        "shared_cost" => "Shared cost",
        "voip" => "Internet (VoIP)",
        "personal_number" => "Personal number",
        "pager" => "Pager",
        "uan" => "Company number (UAN)",
        "voicemail" => "Voicemail",
        "" => "—",
        _ => "Unknown",
    }
}

fn consent_event_label(event: &str) -> &'static str {
    match event {
        "opt_out" => "Opted out",
        "opt_in" => "Opted in",
        "join" => "Joined",
        "leave" => "Left",
        _ => "Changed",
    }
}

fn consent_source_label(source: &str) -> &'static str {
    match source {
        "keyword" => "By a text message",
        "api" => "Through the API",
        "import" => "By an import",
        "page" => "On this page",
        _ => "Other",
    }
}

/// Groups named on a contact's page at most; past it, the rest show by id.
const NAMED_GROUPS: usize = 50;

/// The names of the groups the contact is in and its consent history mentions, read through
/// the API; a group since purged, or past the first few, is left out (and shown by id).
async fn group_names(
    state: &WebState,
    session: &Session,
    contact: &Value,
    events: &[Value],
) -> Result<HashMap<String, String>, WebError> {
    let mut ids: Vec<&str> = contact["groups"]
        .as_array()
        .map(|groups| {
            groups
                .iter()
                .filter_map(|group| group["id"].as_str())
                .collect()
        })
        .unwrap_or_default();
    ids.extend(events.iter().filter_map(|event| event["group_id"].as_str()));
    ids.sort_unstable();
    ids.dedup();
    names_of(state, session, ids.into_iter().take(NAMED_GROUPS)).await
}

fn group_label(names: &HashMap<String, String>, id: &str) -> Markup {
    match names.get(id) {
        Some(name) => html! { (name) },
        None => html! { code { (id) } },
    }
}
