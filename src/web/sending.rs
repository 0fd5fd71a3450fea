//! Sending from the page: the Send form with its live summary (the API's dry run), the list of
//! batches, and a batch's page with its progress and recipients.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use chrono::TimeZone;
use futures::StreamExt;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::WebState;
use super::form::{Errors, error_id, non_blank, text};
use super::groups::{group_name, pasted_numbers, picks, short_time};
use super::ids::PageId;
use super::layout::{Section, WebError, copyable_id, csrf_field, page, pager, respond};
use super::listing::{View, controls, with_view};
use super::session::Session;
use crate::domain::ids::BatchId;

/// Recipients shown on a page of a batch.
const RECIPIENTS_PAGE: u64 = 100;

/// What the Send form holds, as typed: kept whole when the API refuses it.
#[derive(Default)]
pub struct SendForm {
    csrf: String,
    action: String,
    groups: Vec<String>,
    exclude: Vec<String>,
    numbers: String,
    from: String,
    body: String,
    purpose: String,
    encoding: String,
    when: String,
    send_at: String,
    time_zone: String,
}

impl SendForm {
    /// The form's fields, which may repeat (`group`, `exclude`): axum's `Form` keeps one value
    /// a key, so the pairs are read as they came.
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut form = SendForm::default();
        for (key, value) in pairs {
            match key.as_str() {
                "csrf" => form.csrf = value,
                "action" => form.action = value,
                "group" => form.groups.push(value),
                "exclude" => form.exclude.push(value),
                "numbers" => form.numbers = value,
                "from" => form.from = value,
                "body" => form.body = value,
                "purpose" => form.purpose = value,
                "encoding" => form.encoding = value,
                "when" => form.when = value,
                "send_at" => form.send_at = value,
                "time_zone" => form.time_zone = value,
                _ => {}
            }
        }
        form
    }

    /// The API's batch body, or the form's own error (a send time it cannot read).
    fn batch(&self) -> Result<Value, Errors> {
        let to: Vec<String> = self
            .groups
            .iter()
            .cloned()
            .chain(
                pasted_numbers(&self.numbers)
                    .into_iter()
                    .map(|(_, number)| number),
            )
            .collect();
        let send_at = if self.when == "later" {
            Some(self.send_time()?)
        } else {
            None
        };
        Ok(json!({
            "to": to,
            "exclude": (!self.exclude.is_empty()).then_some(&self.exclude),
            "from": non_blank(&self.from),
            "body": self.body,
            "purpose": non_blank(&self.purpose),
            "encoding": non_blank(&self.encoding),
            "send_at": send_at,
        }))
    }

    /// The send time typed in the page (`2026-12-24T09:00`, the browser's own control) in the
    /// zone named beside it, as the API takes it.
    fn send_time(&self) -> Result<String, Errors> {
        let local = chrono::NaiveDateTime::parse_from_str(self.send_at.trim(), "%Y-%m-%dT%H:%M")
            .map_err(|_| Errors::one("send_at", "Choose the day and time to send."))?;
        let zone_name = non_blank(&self.time_zone).unwrap_or_else(|| "UTC".to_owned());
        let zone: chrono_tz::Tz = zone_name.parse().map_err(|_| {
            Errors::one(
                "time_zone",
                "Not a time zone: use a name such as Europe/London or America/New_York.",
            )
        })?;
        let at = zone.from_local_datetime(&local).earliest().ok_or_else(|| {
            Errors::one(
                "send_at",
                "This time does not exist there (the clocks go forward): choose another.",
            )
        })?;
        Ok(at.to_rfc3339())
    }
}

#[derive(Deserialize, Default)]
pub struct SendQuery {
    #[serde(default)]
    group: String,
}

pub async fn start(
    State(state): State<WebState>,
    session: Session,
    Query(query): Query<SendQuery>,
) -> Result<Response, WebError> {
    let draft = SendForm {
        groups: non_blank(&query.group).into_iter().collect(),
        ..SendForm::default()
    };
    send_page(
        &state,
        &session,
        &draft,
        None,
        Errors::default(),
        StatusCode::OK,
    )
    .await
}

/// The form's buttons: check (the summary, without JavaScript) or send.
pub async fn submit(
    State(state): State<WebState>,
    session: Session,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let form = SendForm::from_pairs(pairs);
    session.check_csrf(&form.csrf)?;
    let batch = match form.batch() {
        Ok(batch) => batch,
        Err(errors) => {
            return send_page(
                &state,
                &session,
                &form,
                None,
                errors,
                StatusCode::BAD_REQUEST,
            )
            .await;
        }
    };
    if form.action == "send" {
        let reply = state
            .api
            .json(&session, Method::POST, "/api/batches", Some(&batch))
            .await?;
        if reply.ok() {
            let id = text(&reply.body, "id");
            return Ok(Redirect::to(&format!("/batches/{id}")).into_response());
        }
        let errors = Errors::from_reply(&reply);
        return send_page(&state, &session, &form, None, errors, reply.status).await;
    }
    let reply = state
        .api
        .json(&session, Method::POST, "/api/batches/preview", Some(&batch))
        .await?;
    let (preview, errors, status) = if reply.ok() {
        (Some(reply.body), Errors::default(), StatusCode::OK)
    } else {
        (None, Errors::from_reply(&reply), reply.status)
    };
    send_page(&state, &session, &form, preview.as_ref(), errors, status).await
}

/// The summary alone, for the page's script to show as the form is filled in.
pub async fn summary(
    State(state): State<WebState>,
    session: Session,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, WebError> {
    let form = SendForm::from_pairs(pairs);
    session.check_csrf(&form.csrf)?;
    let markup = match form.batch() {
        Err(errors) => summary_box(&form, None, &errors),
        Ok(_) if form.body.trim().is_empty() || form.to_is_empty() => {
            summary_box(&form, None, &Errors::default())
        }
        Ok(batch) => {
            let reply = state
                .api
                .json(&session, Method::POST, "/api/batches/preview", Some(&batch))
                .await?;
            if reply.ok() {
                summary_box(&form, Some(&reply.body), &Errors::default())
            } else {
                summary_box(&form, None, &Errors::from_reply(&reply))
            }
        }
    };
    Ok(Html(markup.into_string()).into_response())
}

impl SendForm {
    fn to_is_empty(&self) -> bool {
        self.groups.is_empty() && pasted_numbers(&self.numbers).is_empty()
    }
}

async fn send_page(
    state: &WebState,
    session: &Session,
    draft: &SendForm,
    preview: Option<&Value>,
    errors: Errors,
    status: StatusCode,
) -> Result<Response, WebError> {
    let groups = picks(state, session).await?;
    let purpose = if draft.purpose.is_empty() {
        "marketing"
    } else {
        draft.purpose.as_str()
    };
    let encoding = if draft.encoding.is_empty() {
        "auto"
    } else {
        draft.encoding.as_str()
    };
    let later = draft.when == "later";
    let time_zone = non_blank(&draft.time_zone).unwrap_or_else(|| "UTC".to_owned());
    let body = html! {
        h1 { "Send a message" }
        (errors.summary())
        div.send-layout {
            form #send-form method="post" action="/send" class="stack" data-summary="/send/summary" {
                (csrf_field(session))
                fieldset {
                    legend { "To" }
                    @if groups.is_empty() {
                        p.hint { "No groups yet: type numbers below, or " a href="/groups" { "create a group" } " first." }
                    }
                    div.choices {
                        @for group in &groups {
                            @let id = group.id.as_str();
                            div.check {
                                input type="checkbox" id={ "to-" (id) } name="group" value=(id) checked[draft.groups.iter().any(|chosen| chosen == id)];
                                label for={ "to-" (id) } { (group.label) " " span.count { "(" (group.size) ")" } }
                            }
                        }
                    }
                    (errors.message("to"))
                    div.field {
                        label for="numbers" { "Numbers (optional)" }
                        textarea id="numbers" name="numbers" rows="3" placeholder="+14155552671, one per line"
                            aria-invalid=[errors.has("to").then_some("true")] { (draft.numbers) }
                        p.hint { "One per line, or separated by commas; national numbers are read in the plan's default region." }
                    }
                }
                @if !groups.is_empty() {
                    details open[!draft.exclude.is_empty()] {
                        summary { "Leave out groups" }
                        div.choices {
                            @for group in &groups {
                                @let id = group.id.as_str();
                                div.check {
                                    input type="checkbox" id={ "exclude-" (id) } name="exclude" value=(id) checked[draft.exclude.iter().any(|chosen| chosen == id)];
                                    label for={ "exclude-" (id) } { (group.label) }
                                }
                            }
                        }
                        (errors.message("exclude"))
                    }
                }
                div.field {
                    label for="body" { "Message" }
                    textarea id="body" name="body" rows="5"
                        aria-invalid=[errors.has("body").then_some("true")]
                        aria-describedby=[errors.has("body").then(|| error_id("body"))] { (draft.body) }
                    p.hint { "Personalize with " code { "${first_name}" } ", " code { "${last_name}" } ", " code { "${phone}" } " or " code { "${fields.NAME}" } "." }
                    (errors.message("body"))
                    (errors.message("parameters"))
                }
                div.row {
                    div.field {
                        label for="from" { "Sender (optional)" }
                        input id="from" name="from" type="text" value=(draft.from)
                            aria-invalid=[errors.has("from").then_some("true")];
                        (errors.message("from"))
                    }
                    div.field {
                        label for="encoding" { "Characters" }
                        select id="encoding" name="encoding" {
                            @for (value, label) in ENCODINGS {
                                option value=(value) selected[encoding == value] { (label) }
                            }
                        }
                        p.hint { "Swapping keeps a message in GSM-7: 160 characters a part, not 70." }
                        (errors.message("encoding"))
                    }
                }
                fieldset {
                    legend { "Kind of message" }
                    @for (value, label, hint) in PURPOSES {
                        div.check {
                            input type="radio" id={ "purpose-" (value) } name="purpose" value=(value) checked[purpose == value];
                            label for={ "purpose-" (value) } { (label) " " span.hint { (hint) } }
                        }
                    }
                }
                fieldset {
                    legend { "When" }
                    div.check {
                        input type="radio" id="when-now" name="when" value="now" checked[!later];
                        label for="when-now" { "Now" }
                    }
                    div.check {
                        input type="radio" id="when-later" name="when" value="later" checked[later];
                        label for="when-later" { "Later:" }
                    }
                    div.row {
                        div.field {
                            label for="send_at" { "Day and time" }
                            input id="send_at" name="send_at" type="datetime-local" value=(draft.send_at)
                                aria-invalid=[errors.has("send_at").then_some("true")]
                                aria-describedby=[errors.has("send_at").then(|| error_id("send_at"))];
                            (errors.message("send_at"))
                        }
                        div.field {
                            label for="time_zone" { "Time zone" }
                            input id="time_zone" name="time_zone" type="text" value=(time_zone) data-local-zone
                                aria-invalid=[errors.has("time_zone").then_some("true")]
                                aria-describedby=[errors.has("time_zone").then(|| error_id("time_zone"))];
                            (errors.message("time_zone"))
                        }
                    }
                }
                div.row {
                    button type="submit" name="action" value="preview" class="secondary" { "Check" }
                    button type="submit" name="action" value="send" { "Send" }
                }
            }
            div #send-summary aria-live="polite" {
                (summary_box(draft, preview, &Errors::default()))
            }
        }
    };
    Ok(respond(status, page(session, Section::Send, "Send", body)))
}

const ENCODINGS: [(&str, &str); 3] = [
    ("auto", "As typed"),
    ("smart", "Swap curly quotes, dashes"),
    ("ucs2", "Unicode (UCS-2)"),
];

const PURPOSES: [(&str, &str, &str); 2] = [
    (
        "marketing",
        "Marketing",
        "held to the plan's frequency cap and quiet hours",
    ),
    (
        "transactional",
        "Transactional",
        "codes, receipts, alerts: never held",
    ),
];

/// What the batch would do, from the API's dry run; a hint while the form is not filled in.
fn summary_box(draft: &SendForm, preview: Option<&Value>, errors: &Errors) -> Markup {
    let characters = draft.body.chars().count();
    html! {
        section.summary aria-labelledby="summary-title" {
            h2 #summary-title { "Summary" }
            @if !errors.is_empty() {
                (errors.summary())
            } @else if let Some(preview) = preview {
                @let count = preview["recipient_count"].as_i64().unwrap_or_default();
                p.big { strong #summary-recipients { (count) } " " (plural(count, "recipient", "recipients")) }
                @let left_out = left_out(&preview["left_out"]);
                @if !left_out.is_empty() {
                    ul.left-out {
                        @for (label, count) in &left_out { li { (count) " " (label) } }
                    }
                }
                @let held = preview["held_now"].as_i64().unwrap_or_default();
                @if held > 0 {
                    p { (held) " would wait for the end of quiet hours where they are." }
                }
                dl.facts {
                    dt { "Characters" } dd { (characters) }
                    dt { "Encoding" } dd #summary-encoding { (encoding_label(preview["encoding"].as_str())) }
                    dt { "SMS parts per message" } dd #summary-parts { (parts_range(&preview["parts"])) }
                    dt { "SMS parts in all" } dd { (preview["parts"]["total"].as_i64().unwrap_or_default()) }
                }
                @if let Some(samples) = preview["samples"].as_array().filter(|samples| !samples.is_empty()) {
                    h3 { "As they would read" }
                    ul.samples {
                        @for sample in samples {
                            li {
                                span.to { (text(sample, "to")) }
                                span.text { (text(sample, "body")) }
                                @let parts = sample["parts"].as_i64().unwrap_or(1);
                                span.hint { (parts) " " (plural(parts, "part", "parts")) }
                            }
                        }
                    }
                }
            } @else {
                p.hint { "Choose who to send to and type the message: the recipients, SMS parts and sample messages appear here." }
                @if characters > 0 { p { (characters) " characters" } }
            }
        }
    }
}

fn plural(count: i64, one: &'static str, many: &'static str) -> &'static str {
    if count == 1 { one } else { many }
}

/// Left-out counts, by reason in words; reasons with none are not listed.
fn left_out(counts: &Value) -> Vec<(&'static str, i64)> {
    [
        ("excluded", "left out by the groups or numbers excluded"),
        ("opted_out", "opted out"),
        ("missing_parameter", "without a value for a placeholder"),
        ("frequency_cap", "over the plan's frequency cap"),
    ]
    .into_iter()
    .filter_map(|(key, label)| {
        let count = counts[key].as_i64().unwrap_or_default();
        (count > 0).then_some((label, count))
    })
    .collect()
}

fn encoding_label(encoding: Option<&str>) -> &'static str {
    match encoding {
        Some("gsm7") => "GSM-7 (160 characters a part)",
        Some("ucs2") => "Unicode (70 characters a part)",
        Some("mixed") => "GSM-7 or Unicode, by message",
        _ => "—",
    }
}

fn parts_range(parts: &Value) -> String {
    match (parts["min"].as_i64(), parts["max"].as_i64()) {
        (Some(min), Some(max)) if min == max => min.to_string(),
        (Some(min), Some(max)) => format!("{min} to {max}"),
        _ => "—".to_owned(),
    }
}

fn status_label(status: &str) -> &'static str {
    match status {
        "scheduled" => "Scheduled",
        "sending" => "Sending",
        "sent" => "Sent",
        "failed" => "Failed",
        "canceled" => "Canceled",
        _ => "Unknown",
    }
}

fn state_label(state: &str) -> &'static str {
    match state {
        "sent" => "Sent",
        "queued" => "Waiting its turn",
        "held" => "Held for quiet hours",
        "sending" => "Being sent",
        "expired" => "Expired",
        "failed" => "Failed",
        "canceled" => "Canceled",
        "skipped" => "Left out",
        _ => "Unknown",
    }
}

fn reason_label(reason: &str) -> &'static str {
    match reason {
        "missing_parameter" => "no value for a placeholder",
        "frequency_cap" => "over the frequency cap",
        "quiet_hours" => "quiet hours where they are",
        "" => "",
        _ => "other",
    }
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(default)]
    page: u64,
    /// Only batches in this status; every batch if empty.
    #[serde(default)]
    status: String,
    #[serde(flatten)]
    view: View,
}

/// The statuses the batch list filters by.
const STATUSES: [&str; 5] = ["scheduled", "sending", "sent", "failed", "canceled"];

pub async fn list(
    State(state): State<WebState>,
    session: Session,
    Query(query): Query<ListQuery>,
) -> Result<Response, WebError> {
    let status = STATUSES
        .into_iter()
        .find(|status| *status == query.status)
        .unwrap_or_default();
    let shown_page = query.view.page(query.page);
    let listing = state
        .api
        .get_with(
            &session,
            "/api/batches",
            &[
                ("status", status),
                ("page", &shown_page.to_string()),
                ("page_size", &query.view.size().to_string()),
            ],
        )
        .await?
        .into_ok()?;
    let filters = format!(
        "/batches?{}",
        serde_urlencoded::to_string([("status", status)]).unwrap_or_default()
    );
    let base = with_view(&filters, &query.view);
    let batches = listing["batches"].as_array().cloned().unwrap_or_default();
    let names = group_names(&state, &session).await?;
    let total = listing["count"].as_u64();
    let body = html! {
        div.title-row {
            h1 { "Batches" }
            a.button href="/send" { "Send a message" }
        }
        form.search method="get" action="/batches" {
            div.field {
                label for="status" { "Status" }
                select id="status" name="status" {
                    option value="" { "Any" }
                    @for value in STATUSES { option value=(value) selected[status == value] { (status_label(value)) } }
                }
            }
            button type="submit" { "Show" }
        }
        @if batches.is_empty() && shown_page == 0 {
            @if status.is_empty() {
                p { "Nothing sent yet. " a href="/send" { "Send a message" } "." }
            } @else {
                p { "No batch is " (status_label(status).to_lowercase()) "." }
            }
        } @else {
            div.table-wrap {
                table.cards #batches-table {
                    caption { (batches.len()) " shown" @if let Some(total) = total { " of " (total) } }
                    thead { tr {
                        th scope="col" { "Message" }
                        th scope="col" { "To" }
                        th scope="col" { "Status" }
                        th scope="col" class="number" { "Recipients" }
                        th scope="col" class="number" { "Sent" }
                        th scope="col" { "Send time" }
                    } }
                    tbody {
                        @for batch in &batches {
                            @let id = text(batch, "id");
                            tr {
                                td { a href={ "/batches/" (id) } { (excerpt(text(batch, "body"))) } }
                                td data-label="To" { (audience(&batch["to"], &names)) }
                                td { span class={ "status status-" (text(batch, "status")) } { (status_label(text(batch, "status"))) } }
                                td.number data-label="Recipients" { @if let Some(count) = batch["recipient_count"].as_i64() { (count) } @else { "—" } }
                                td.number data-label="Sent" { (batch["sent_count"].as_i64().unwrap_or_default()) }
                                td data-label="Send time" { (short_time(text(batch, "send_at"))) }
                            }
                        }
                    }
                }
            }
            (pager(&base, shown_page, batches.len(), query.view.size(), total))
            (controls(&base, &query.view, shown_page, total.map(|total| total.div_ceil(query.view.size()))))
        }
    };
    Ok(respond(
        StatusCode::OK,
        page(&session, Section::Batches, "Batches", body),
    ))
}

/// Group names by id, to show a batch's audience in words.
async fn group_names(
    state: &WebState,
    session: &Session,
) -> Result<HashMap<String, String>, WebError> {
    let listing = state
        .api
        .get_with(
            session,
            "/api/contactgroups",
            &[("status", "ALL"), ("limit", "1000")],
        )
        .await?
        .into_ok()?;
    Ok(listing["groups"]
        .as_array()
        .map(|groups| {
            groups
                .iter()
                .map(|group| (text(group, "id").to_owned(), group_name(group)))
                .collect()
        })
        .unwrap_or_default())
}

/// A batch's `to` or `exclude` in words: its groups by name, then how many numbers.
fn audience(entries: &Value, names: &HashMap<String, String>) -> Markup {
    let entries: Vec<&str> = entries
        .as_array()
        .map(|entries| entries.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let numbers = entries
        .iter()
        .filter(|entry| entry.starts_with('+'))
        .count();
    let groups: Vec<&str> = entries
        .iter()
        .copied()
        .filter(|entry| !entry.starts_with('+'))
        .collect();
    html! {
        @for (index, id) in groups.iter().enumerate() {
            @if index > 0 { ", " }
            a href={ "/groups/" (id) } { (names.get(*id).map_or("(a removed group)", String::as_str)) }
        }
        @if numbers > 0 {
            @if !groups.is_empty() { " and " }
            (numbers) " " (plural(numbers as i64, "number", "numbers"))
        }
        @if entries.is_empty() { "—" }
    }
}

fn excerpt(body: &str) -> String {
    const LONGEST: usize = 60;
    if body.chars().count() <= LONGEST {
        return body.to_owned();
    }
    let cut: String = body.chars().take(LONGEST - 1).collect();
    format!("{}…", cut.trim_end())
}

#[derive(Deserialize, Default)]
pub struct BatchQuery {
    #[serde(default)]
    page: u64,
    /// Set by the redirect after a cancel, to say so.
    #[serde(default)]
    canceled: bool,
}

pub async fn show(
    State(state): State<WebState>,
    session: Session,
    PageId(id): PageId<BatchId>,
    Query(query): Query<BatchQuery>,
) -> Result<Response, WebError> {
    let batch = state
        .api
        .get(&session, &format!("/api/batches/{id}"))
        .await?
        .into_ok()?;
    let note = query.canceled.then(|| {
        html! { p.success role="status" { "The batch was canceled." } }
    });
    render_batch(&state, &session, &batch, query.page, note, None).await
}

#[derive(Deserialize, Default)]
pub struct BatchAction {
    #[serde(default)]
    csrf: String,
}

/// Cancels the batch (the page's only action on it).
pub async fn cancel(
    State(state): State<WebState>,
    session: Session,
    PageId(id): PageId<BatchId>,
    Form(form): Form<BatchAction>,
) -> Result<Response, WebError> {
    session.check_csrf(&form.csrf)?;
    let reply = state
        .api
        .json(
            &session,
            Method::DELETE,
            &format!("/api/batches/{id}"),
            None::<&()>,
        )
        .await?;
    if reply.ok() {
        return Ok(Redirect::to(&format!("/batches/{id}?canceled=true")).into_response());
    }
    let errors = Errors::from_reply(&reply);
    let batch = state
        .api
        .get(&session, &format!("/api/batches/{id}"))
        .await?
        .into_ok()?;
    render_batch(&state, &session, &batch, 0, None, Some(errors)).await
}

async fn render_batch(
    state: &WebState,
    session: &Session,
    batch: &Value,
    page_number: u64,
    note: Option<Markup>,
    errors: Option<Errors>,
) -> Result<Response, WebError> {
    let id = text(batch, "id");
    let status = text(batch, "status");
    let names = group_names(state, session).await?;
    let resolved = batch["recipient_count"].as_i64();
    let recipients = match resolved {
        Some(_) => Some(recipients_page(state, session, id, page_number).await?),
        None => None,
    };
    let sent = batch["sent_count"].as_i64().unwrap_or_default();
    let running =
        status == "sending" || (status == "scheduled" && due_soon(text(batch, "send_at")));
    let cancelable = status == "scheduled" || status == "sending";
    let body = html! {
        p.crumbs { a href="/batches" { "Batches" } }
        h1 { (excerpt(text(batch, "body"))) }
        @if let Some(errors) = &errors { (errors.summary()) }
        @if let Some(note) = note { (note) }
        p {
            span #batch-status class={ "status status-" (status) } { (status_label(status)) }
            @match status {
                "scheduled" => { " for " (short_time(text(batch, "send_at"))) " UTC" }
                "failed" => { ": " (text(batch, "error")) }
                _ => {}
            }
        }
        @if running {
            noscript { meta http-equiv="refresh" content="2"; }
            div.progress data-poll={ "/batches/" (id) "/status" } {
                label for="batch-progress" { "Handed to the sender" }
                progress id="batch-progress" max=(resolved.unwrap_or(1).max(1)) value=(sent) { (sent) }
                p aria-live="polite" { span data-done { (sent) } " of " (resolved.map_or("…".to_owned(), |count| count.to_string())) }
            }
        }
        @if cancelable {
            form.inline method="post" action={ "/batches/" (id) "/cancel" } {
                (csrf_field(session))
                button.danger type="submit" data-confirm="Cancel this batch? What was already handed to the sender stays sent." { "Cancel the batch" }
            }
        }
        dl.facts {
            dt { "To" } dd { (audience(&batch["to"], &names)) }
            @if batch["exclude"].as_array().is_some_and(|entries| !entries.is_empty()) {
                dt { "Leaving out" } dd { (audience(&batch["exclude"], &names)) }
            }
            dt { "Sender" } dd { (batch["from"].as_str().unwrap_or("the plan's default")) }
            dt { "Kind" } dd { @if text(batch, "purpose") == "transactional" { "Transactional" } @else { "Marketing" } }
            dt { "Message" } dd.message-body { (text(batch, "body")) }
            @if let Some(encoding) = batch["encoding_used"].as_str() {
                dt { "Encoding" } dd { (encoding_label(Some(encoding))) }
                dt { "SMS parts" } dd { (parts_range(&batch["parts"])) " per message, " (batch["parts"]["total"].as_i64().unwrap_or_default()) " in all" }
            }
            dt { "Created" } dd { (short_time(text(batch, "created_at"))) " UTC" }
            @if let Some(completed) = batch["completed_at"].as_str() {
                dt { "Finished" } dd { (short_time(completed)) " UTC" }
            }
            dt { "Id (for the API)" } dd { (copyable_id(id)) }
        }
        @if let Some(states) = batch["states"].as_object() {
            h2 { "Recipients" }
            ul.counts #batch-counts {
                @for key in ["sent", "queued", "held", "skipped", "expired", "failed", "canceled"] {
                    @let count = states.get(key).and_then(Value::as_i64).unwrap_or_default();
                    @if count > 0 || key == "sent" {
                        li data-state=(key) { strong { (count) } " " (state_label(key).to_lowercase()) }
                    }
                }
            }
            @if let Some(held_until) = batch["held_until"].as_str() {
                p.hint { "The first held message may go at " (short_time(held_until)) " UTC." }
            }
            p { a href={ "/batches/" (id) "/recipients.csv" } download { "Download every recipient (CSV)" } }
            @if let Some(rows) = &recipients {
                div.table-wrap {
                    table.cards #recipients-table {
                        thead { tr { th scope="col" { "Number" } th scope="col" { "State" } th scope="col" { "Why" } th scope="col" class="number" { "Parts" } } }
                        tbody {
                            @for row in rows {
                                tr {
                                    td { (text(row, "phone")) }
                                    td { (state_label(text(row, "state"))) }
                                    td { (reason_label(text(row, "reason"))) @if let Some(detail) = row["detail"].as_str() { " (" (detail) ")" } }
                                    td.number data-label="Parts" { @if let Some(parts) = row["parts"].as_i64() { (parts) } }
                                }
                            }
                        }
                    }
                }
                @let total = resolved.unwrap_or_default() + batch["skipped_count"].as_i64().unwrap_or_default();
                (pager(&format!("/batches/{id}"), page_number, rows.len(), RECIPIENTS_PAGE, u64::try_from(total).ok()))
            }
        } @else if status == "scheduled" {
            p.hint { "The recipients are worked out when the batch is sent, from the groups as they are then." }
        }
    };
    Ok(respond(
        StatusCode::OK,
        page(session, Section::Batches, "Batch", body),
    ))
}

/// Whether a scheduled batch is due within the minute (the page then follows it).
fn due_soon(send_at: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(send_at)
        .is_ok_and(|at| at.timestamp() <= chrono::Utc::now().timestamp() + 60)
}

/// One page of the batch's recipients, read from the API's stream and left as soon as the page
/// is full.
async fn recipients_page(
    state: &WebState,
    session: &Session,
    id: &str,
    page_number: u64,
) -> Result<Vec<Value>, WebError> {
    let response = state
        .api
        .forward(
            session,
            Method::GET,
            &format!("/api/batches/{id}/recipients"),
            None,
            axum::body::Body::empty(),
        )
        .await?;
    if !response.status().is_success() {
        return Ok(Vec::new());
    }
    let skip = usize::try_from(page_number * RECIPIENTS_PAGE).unwrap_or(usize::MAX);
    let take = RECIPIENTS_PAGE as usize;
    let mut rows = Vec::with_capacity(take);
    let mut seen = 0_usize;
    let mut pending = Vec::new();
    let mut stream = response.into_body().into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| {
            tracing::error!(%error, "cannot read a batch's recipients");
            WebError::Internal
        })?;
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            if seen >= skip {
                let row = serde_json::from_slice(&line).map_err(|error| {
                    tracing::error!(%error, "a batch's recipient line is not JSON");
                    WebError::Internal
                })?;
                rows.push(row);
                if rows.len() == take {
                    return Ok(rows);
                }
            }
            seen += 1;
        }
    }
    Ok(rows)
}

/// The batch's progress for the page's script, in the shape of a job's.
pub async fn status(
    State(state): State<WebState>,
    session: Session,
    PageId(id): PageId<BatchId>,
) -> Result<Response, WebError> {
    let batch = state
        .api
        .get(&session, &format!("/api/batches/{id}"))
        .await?
        .into_ok()?;
    let status = text(&batch, "status");
    let running = status == "sending" || status == "scheduled";
    Ok(axum::Json(json!({
        "status": if running { "running" } else { status },
        "done": batch["sent_count"],
        "total": batch["recipient_count"],
    }))
    .into_response())
}

/// Every recipient as CSV, from the API as it streams.
pub async fn recipients_csv(
    State(state): State<WebState>,
    session: Session,
    PageId(id): PageId<BatchId>,
) -> Result<Response, WebError> {
    let mut response = state
        .api
        .forward_accepting(
            &session,
            &format!("/api/batches/{id}/recipients"),
            HeaderValue::from_static("text/csv"),
        )
        .await?;
    if response.status().is_success() {
        let name = format!(
            "attachment; filename=\"recipients-{}.csv\"",
            &id.to_string()[..10]
        );
        if let Ok(value) = HeaderValue::from_str(&name) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, value);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_fields_are_all_kept() {
        let form = SendForm::from_pairs(vec![
            ("group".into(), "A".into()),
            ("group".into(), "B".into()),
            ("exclude".into(), "C".into()),
            ("numbers".into(), "+14155550100\n+14155550101".into()),
            ("body".into(), "Hi".into()),
        ]);
        let batch = form.batch().expect("a batch");
        assert_eq!(
            batch["to"],
            json!(["A", "B", "+14155550100", "+14155550101"])
        );
        assert_eq!(batch["exclude"], json!(["C"]));
        assert_eq!(batch["send_at"], Value::Null);
    }

    #[test]
    fn a_send_time_is_read_in_its_zone() {
        let form = SendForm {
            when: "later".into(),
            send_at: "2026-07-01T09:30".into(),
            time_zone: "Europe/London".into(),
            ..SendForm::default()
        };
        assert_eq!(
            form.send_time().expect("a time"),
            "2026-07-01T09:30:00+01:00"
        );
        let nowhere = SendForm {
            time_zone: "Mars/Olympus".into(),
            ..form
        };
        assert!(nowhere.send_time().is_err());
    }

    #[test]
    fn counts_read_as_words() {
        assert_eq!(plural(1, "part", "parts"), "part");
        assert_eq!(plural(0, "part", "parts"), "parts");
        assert_eq!(plural(2, "part", "parts"), "parts");
        assert_eq!(excerpt(&"x".repeat(80)).chars().count(), 60);
    }
}
