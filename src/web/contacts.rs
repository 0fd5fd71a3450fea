//! Contacts: search with the filter language, and a contact's page to edit it and its opt-out.

use std::collections::HashMap;

use axum::extract::{Form, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::WebState;
use super::form::{Errors, non_blank, text};
use super::groups::{full_name, names_of, short_time};
use super::ids::PageId;
use super::layout::{Section, WebError, csrf_field, page, pager, respond, text_input};
use super::session::Session;
use crate::domain::ids::ContactId;
use crate::domain::msisdn::{RegionCode, search_prefix};

const PAGE_SIZE: u64 = 50;

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
    let (key, value) = plain_search(&session, &query.search);
    let reply = state
        .api
        .get_with(
            &session,
            "/api/contacts",
            &[
                (key, value.as_str()),
                ("q", query.q.trim()),
                ("order_by", "name"),
                ("page", &query.page.to_string()),
                ("page_size", &PAGE_SIZE.to_string()),
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
    let base = format!(
        "/contacts?{}",
        serde_urlencoded::to_string([("search", query.search.trim()), ("q", query.q.trim())])
            .unwrap_or_default()
    );
    let body = html! {
        h1 { "Contacts" }
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
        div.table-wrap {
            table id="contacts-table" {
                caption { (contacts.len()) " shown" @if let Some(total) = total { " of " (total) } }
                thead { tr { th scope="col" { "Number" } th scope="col" { "Name" } th scope="col" { "Email" } th scope="col" { "Opted out" } } }
                tbody {
                    @for contact in &contacts {
                        tr {
                            td { a href={ "/contacts/" (text(contact, "id")) } { (text(contact, "phone")) } }
                            td { (full_name(contact)) }
                            td { (text(contact, "email")) }
                            td { @if contact["opted_out"].as_bool().unwrap_or_default() { "Yes" } @else { "No" } }
                        }
                    }
                    @if contacts.is_empty() { tr { td colspan="4" { "No contacts." } } }
                }
            }
        }
        (pager(&base, query.page, contacts.len(), PAGE_SIZE, total))
    };
    Ok(respond(
        status,
        page(&session, Section::Contacts, "Contacts", body),
    ))
}

#[derive(Deserialize, Default)]
pub struct ContactForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    gender: String,
    #[serde(default)]
    time_zone: String,
    /// A checkbox: present ("on") when ticked.
    #[serde(default)]
    opted_out: Option<String>,
}

pub async fn show(
    State(state): State<WebState>,
    session: Session,
    PageId(id): PageId<ContactId>,
) -> Result<Response, WebError> {
    render_contact(
        &state,
        &session,
        &id,
        None,
        Errors::default(),
        StatusCode::OK,
    )
    .await
}

pub async fn save(
    State(state): State<WebState>,
    session: Session,
    PageId(id): PageId<ContactId>,
    Form(form): Form<ContactForm>,
) -> Result<Response, WebError> {
    session.check_csrf(&form.csrf)?;
    let body = json!({
        "phone": form.phone.trim(),
        "first_name": non_blank(&form.first_name),
        "last_name": non_blank(&form.last_name),
        "email": non_blank(&form.email),
        "gender": non_blank(&form.gender),
        "time_zone": non_blank(&form.time_zone),
        "opted_out": form.opted_out.is_some(),
    });
    let reply = state
        .api
        .json(
            &session,
            Method::PATCH,
            &format!("/api/contacts/{id}"),
            Some(&body),
        )
        .await?;
    if reply.ok() {
        return Ok(Redirect::to(&format!("/contacts/{id}")).into_response());
    }
    let errors = Errors::from_reply(&reply);
    render_contact(&state, &session, &id, Some(&form), errors, reply.status).await
}

async fn render_contact(
    state: &WebState,
    session: &Session,
    id: &ContactId,
    draft: Option<&ContactForm>,
    errors: Errors,
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
        Some(form) => form.opted_out.is_some(),
        None => contact["opted_out"].as_bool().unwrap_or_default(),
    };
    let gender = value("gender", |form| &form.gender);
    let phone = text(&contact, "phone").to_owned();
    let groups = group_names(state, session, &contact, &events).await?;
    let body = html! {
        p.crumbs { a href="/contacts" { "Contacts" } " › " (phone) }
        h1 { (phone) " " @let name = full_name(&contact); @if !name.is_empty() { small { (name) } } }
        (errors.summary())
        dl.facts {
            dt { "Valid" } dd { @if contact["valid"].as_bool().unwrap_or_default() { "Yes" } @else { "No" } }
            dt { "Number type" } dd { (text(&contact, "number_type")) }
            dt { "Country" } dd { (text(&contact, "country")) }
            @if opted_out {
                dt { "Opted out" } dd { (short_time(text(&contact, "opted_out_at"))) " " (text(&contact, "opted_out_reason")) }
            }
            dt { "Groups" }
            dd {
                @let member_of: Vec<&Value> = contact["groups"]
                    .as_array()
                    .map(|groups| groups.iter().collect())
                    .unwrap_or_default();
                @for (index, group) in member_of.iter().enumerate() {
                    @if index > 0 { ", " }
                    @let group_id = text(group, "id");
                    a href={ "/groups/" (group_id) } { (group_label(&groups, group_id)) }
                    @if text(group, "status") == "DELETED" { " (deleted)" }
                }
                @if member_of.is_empty() { "None" }
            }
        }
        form method="post" class="stack" {
            (csrf_field(session))
            (text_input("phone", "Number", &value("phone", |form| &form.phone), "tel", &errors))
            div.row {
                (text_input("first_name", "First name", &value("first_name", |form| &form.first_name), "text", &errors))
                (text_input("last_name", "Last name", &value("last_name", |form| &form.last_name), "text", &errors))
            }
            (text_input("email", "Email", &value("email", |form| &form.email), "email", &errors))
            (text_input("gender", "Gender", &gender, "text", &errors))
            (text_input("time_zone", "Time zone (e.g. Europe/Paris)", &value("time_zone", |form| &form.time_zone), "text", &errors))
            div.field.check {
                input id="opted_out" name="opted_out" type="checkbox" checked[opted_out];
                label for="opted_out" { "Opted out: never sent to (memberships are kept)" }
                (errors.message("opted_out"))
            }
            button type="submit" { "Save contact" }
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
                                td { (text(event, "event")) }
                                td { (text(event, "source")) }
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
    };
    Ok(respond(
        status,
        page(session, Section::Contacts, &phone, body),
    ))
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
