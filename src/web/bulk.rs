//! Bulk actions on contacts: on the rows ticked in the contact list, or on everyone its search
//! finds. Each action is one call to the API's bulk routes, so it is applied whole or not at
//! all.

use axum::extract::{Form, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde_json::{Value, json};

use super::WebState;
use super::contacts::{SearchQuery, plain_search, render_list};
use super::form::{Errors, text};
use super::layout::{Section, WebError, csrf_field, page, respond};
use super::session::Session;

/// The most contacts one bulk action takes: the API's limit for one request.
pub const BULK_MAX: u64 = 10_000;

/// The actions, as the list's drop-down offers them.
pub const ACTIONS: [(&str, &str); 5] = [
    ("add", "Add to group"),
    ("remove", "Remove from group"),
    ("opt_out", "Opt out"),
    ("export", "Export as CSV"),
    ("delete", "Delete"),
];

/// The bulk form as sent: the search it acts on, the ticked contacts, what to do and to which
/// group.
#[derive(Default)]
pub struct BulkForm {
    csrf: String,
    pub search: String,
    pub q: String,
    pub ids: Vec<String>,
    /// `all` for everyone the search finds; the ticked rows otherwise.
    pub scope: String,
    pub action: String,
    pub group: String,
    confirmed: bool,
}

impl BulkForm {
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut form = Self::default();
        for (key, value) in pairs {
            match key.as_str() {
                "csrf" => form.csrf = value,
                "search" => form.search = value,
                "q" => form.q = value,
                "ids" => form.ids.push(value),
                "scope" => form.scope = value,
                "action" => form.action = value,
                "group" => form.group = value,
                "confirmed" => form.confirmed = true,
                _ => {}
            }
        }
        form
    }

    fn everyone(&self) -> bool {
        self.scope == "all"
    }

    /// The list this form was sent from, with `extra` parameters.
    fn list_address(&self, extra: &[(&str, &str)]) -> String {
        let mut pairs = vec![("search", self.search.trim()), ("q", self.q.trim())];
        pairs.extend_from_slice(extra);
        pairs.retain(|(_, value)| !value.is_empty());
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        if query.is_empty() {
            "/contacts".to_owned()
        } else {
            format!("/contacts?{query}")
        }
    }

    /// The search this form acts on, as the contact list was showing it.
    fn search_query(&self) -> SearchQuery {
        SearchQuery::of(&self.search, &self.q)
    }
}

pub async fn act(
    State(state): State<WebState>,
    session: Session,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let form = BulkForm::from_pairs(pairs);
    session.check_csrf(&form.csrf)?;
    if !ACTIONS.iter().any(|(action, _)| *action == form.action) {
        return refuse(
            &state,
            &session,
            &form,
            Errors::one("action", "Choose what to do."),
        )
        .await;
    }
    if matches!(form.action.as_str(), "add" | "remove") && form.group.is_empty() {
        return refuse(
            &state,
            &session,
            &form,
            Errors::one("group", "Choose the group."),
        )
        .await;
    }
    if !form.everyone() && form.ids.is_empty() {
        return refuse(
            &state,
            &session,
            &form,
            Errors::one(
                "ids",
                "Tick the contacts first, or choose everyone the search finds.",
            ),
        )
        .await;
    }
    if form.action == "export" {
        return export(&state, &session, &form).await;
    }
    let ids = if form.everyone() {
        match found(&state, &session, &form).await? {
            Ok(ids) => ids,
            Err(errors) => return refuse(&state, &session, &form, errors).await,
        }
    } else {
        form.ids.clone()
    };
    if form.action == "delete" && !form.confirmed {
        return Ok(confirm_delete(&session, &form, &ids));
    }
    let (method, uri, body, changed) = match form.action.as_str() {
        "add" | "remove" => (
            if form.action == "add" {
                Method::POST
            } else {
                Method::DELETE
            },
            "/api/contactgroups/members",
            json!({ "contact_ids": ids, "group_ids": [form.group] }),
            "changed",
        ),
        "opt_out" => (
            Method::POST,
            "/api/contacts/opt-out",
            json!({ "ids": ids, "reason": "opted out by an operator" }),
            "opted_out",
        ),
        _ => (
            Method::DELETE,
            "/api/contacts",
            json!({ "ids": ids }),
            "deleted",
        ),
    };
    let reply = state.api.json(&session, method, uri, Some(&body)).await?;
    if !reply.ok() {
        return refuse(&state, &session, &form, Errors::from_reply(&reply)).await;
    }
    let changed = reply.body[changed].as_u64().unwrap_or_default().to_string();
    let of = ids.len().to_string();
    let group = if matches!(form.action.as_str(), "add" | "remove") {
        form.group.as_str()
    } else {
        ""
    };
    let done = form.list_address(&[
        ("bulk", &form.action),
        ("n", &changed),
        ("of", &of),
        ("group", group),
    ]);
    Ok(Redirect::to(&done).into_response())
}

/// The ids of everyone the form's search finds, read a page at a time; refused past
/// `BULK_MAX`.
async fn found(
    state: &WebState,
    session: &Session,
    form: &BulkForm,
) -> Result<Result<Vec<String>, Errors>, WebError> {
    let (key, value) = plain_search(session, &form.search);
    let mut ids = Vec::new();
    let mut next = String::new();
    loop {
        let reply = state
            .api
            .get_with(
                session,
                "/api/contacts",
                &[
                    (key, value.as_str()),
                    ("q", form.q.trim()),
                    ("limit", "1000"),
                    ("next", &next),
                    ("count", if next.is_empty() { "true" } else { "" }),
                ],
            )
            .await?;
        if !reply.ok() {
            return Ok(Err(Errors::from_reply(&reply)));
        }
        if let Some(count) = reply.body["count"].as_u64()
            && count > BULK_MAX
        {
            return Ok(Err(Errors::one(
                "scope",
                &format!(
                    "The search finds {count} contacts; one action takes at most {BULK_MAX}. \
                     Narrow the search, or act on it in parts."
                ),
            )));
        }
        let page = reply.body["contacts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        ids.extend(page.iter().map(|contact| text(contact, "id").to_owned()));
        match reply.body["next"].as_str() {
            Some(cursor) if ids.len() < BULK_MAX as usize => next = cursor.to_owned(),
            _ => break,
        }
    }
    if ids.is_empty() {
        return Ok(Err(Errors::one("scope", "The search finds no contacts.")));
    }
    Ok(Ok(ids))
}

/// An export of the ticked contacts or of the search, followed on the export's page.
async fn export(
    state: &WebState,
    session: &Session,
    form: &BulkForm,
) -> Result<Response, WebError> {
    let body = if form.everyone() {
        let (key, value) = plain_search(session, &form.search);
        let mut body = json!({ "format": "csv" });
        if !value.is_empty() {
            body[key] = Value::from(value);
        }
        if !form.q.trim().is_empty() {
            body["q"] = Value::from(form.q.trim());
        }
        body
    } else {
        json!({ "format": "csv", "contact_ids": form.ids })
    };
    let reply = state
        .api
        .json(session, Method::POST, "/api/exports", Some(&body))
        .await?;
    if reply.ok() {
        return Ok(Redirect::to(&format!("/exports/{}", text(&reply.body, "id"))).into_response());
    }
    refuse(state, session, form, Errors::from_reply(&reply)).await
}

/// The contact list again, with what was chosen and why it was refused.
async fn refuse(
    state: &WebState,
    session: &Session,
    form: &BulkForm,
    errors: Errors,
) -> Result<Response, WebError> {
    render_list(
        state,
        session,
        &form.search_query(),
        Default::default(),
        form,
        errors,
    )
    .await
}

/// Asks before deleting: the contacts counted here, by id, confirmed. (Everyone a search found
/// is fixed now: a contact that matches by the time of the confirmation is not deleted unseen.)
fn confirm_delete(session: &Session, form: &BulkForm, ids: &[String]) -> Response {
    let count = ids.len();
    let noun = if count == 1 { "contact" } else { "contacts" };
    let body = html! {
        p.crumbs { a href=(form.list_address(&[])) { "Contacts" } }
        h1 { "Delete " (count) " " (noun) "?" }
        p { "They leave every group they are in, and cannot be brought back." }
        form method="post" action="/contacts/bulk" class="stack" {
            (csrf_field(session))
            input type="hidden" name="search" value=(form.search);
            input type="hidden" name="q" value=(form.q);
            input type="hidden" name="scope" value="ticked";
            input type="hidden" name="action" value="delete";
            input type="hidden" name="confirmed" value="1";
            @for id in ids { input type="hidden" name="ids" value=(id); }
            div.row {
                button.danger type="submit" autofocus { "Delete " (count) " " (noun) }
                a href=(form.list_address(&[])) { "Cancel" }
            }
        }
    };
    respond(
        StatusCode::OK,
        page(session, Section::Contacts, "Delete contacts?", body),
    )
}
