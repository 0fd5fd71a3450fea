//! Batches on the native API: a message to groups and numbers, resolved to recipients when it is
//! sent (never before), with its progress and its recorded recipients.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, FieldError, Problem};
use super::extract::JsonBody;
use super::limits::{DEFAULT_PAGE_SIZE, MAX_NUMBERS_PER_REQUEST, MAX_PAGE_SIZE};
use super::paging::bounded_number;
use super::validate::{GroupFields, Validator};
use crate::domain::batch::{
    Audience, BatchStatus, EXPIRED, MAX_BODY_CHARS, MAX_CLIENT_REFERENCE_CHARS, MAX_FROM_CHARS,
    Target, check_text,
};
use crate::domain::ids::{BatchId, GroupId, SeriesId};
use crate::domain::msisdn::RegionCode;
use crate::domain::sending::Purpose;
use crate::domain::sms::EncodingChoice;
use crate::domain::template::{ParameterValues, Parameters};
use crate::domain::time::Timestamp;
use crate::store::{
    BatchQuery, BatchRecord, NewBatch, Plan, RecipientOutcome, RecipientState, StoreError,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_batches, create_batch))
        .routes(routes!(get_batch, cancel_batch))
        .routes(routes!(batch_recipients))
        .routes(routes!(preview_batch))
}

const TAG: &str = "Batches";

/// A batch to send.
#[derive(Deserialize, ToSchema)]
pub struct BatchBody {
    /// Group ids and phone numbers (E.164, or national format in the plan's default region); at
    /// most 100,000 entries.
    #[schema(example = json!(["01JD4Q3T5V8Z9X2W1Y0A7B6C5D", "+14155552671"]))]
    pub to: Vec<String>,
    /// Group ids and numbers to leave out, even when they are in a group of `to`.
    #[serde(default)]
    pub exclude: Option<Vec<String>>,
    /// The sender: a number, a short code or an alphanumeric sender id (at most 32 characters).
    #[serde(default)]
    pub from: Option<String>,
    /// The message, 1 to 2000 characters.
    pub body: String,
    /// When to send (ISO 8601 with a time zone); absent or in the past means now.
    #[serde(default)]
    pub send_at: Option<String>,
    /// When to give up: a batch not sent by then fails as expired.
    #[serde(default)]
    pub expire_at: Option<String>,
    /// Your own reference (at most 2048 characters), kept with the batch and filterable.
    #[serde(default)]
    pub client_reference: Option<String>,
    /// Values for the body's `${name}` placeholders, as Sinch takes them: per name, a value per
    /// number and a `default`. They add names or override the built-in ones (`first_name`,
    /// `last_name`, `phone`, `fields.NAME`, taken from the recipient's contact at send time).
    #[serde(default)]
    #[schema(value_type = Option<Object>, example = json!({"name": {"+15551231234": "Joe", "default": "there"}}))]
    pub parameters: Option<serde_json::Value>,
    /// `auto` (the default: GSM-7 when every character fits, else UCS-2), `smart` (replace
    /// typographic quotes, dashes, ellipses and odd spaces by GSM-7 ones when only they stand in
    /// the way) or `ucs2`.
    #[serde(default)]
    pub encoding: Option<String>,
    /// `marketing` (the default: held to the plan's frequency cap) or `transactional` (codes,
    /// receipts, alerts: never capped).
    #[serde(default)]
    pub purpose: Option<String>,
}

/// A batch and its progress.
#[derive(Serialize, ToSchema)]
pub struct Batch {
    #[schema(example = "01JD4Q3T5V8Z9X2W1Y0A7B6C5D")]
    pub id: String,
    /// `scheduled`, `sending`, `sent`, `failed` or `canceled`.
    pub status: String,
    /// Group ids, then numbers (E.164).
    pub to: Vec<String>,
    pub exclude: Vec<String>,
    pub from: Option<String>,
    pub body: String,
    pub client_reference: Option<String>,
    pub send_at: String,
    pub expire_at: Option<String>,
    /// The placeholders' values, as given (numbers in E.164).
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Value>,
    /// The encoding asked for: `auto`, `smart` or `ucs2`.
    pub encoding: String,
    /// `marketing` or `transactional`.
    pub purpose: String,
    /// How many recipients the batch resolved to when it was sent; null until then.
    pub recipient_count: Option<i64>,
    /// Recipients left out when it was resolved, because a placeholder had no value for them
    /// or by the plan's frequency cap (listed with their reason by the recipients route); null
    /// until then.
    pub skipped_count: Option<i64>,
    /// The encoding its messages went in (`gsm7`, `ucs2`, or `mixed` when personalized
    /// messages differ); null until resolved.
    pub encoding_used: Option<String>,
    /// SMS parts over all its messages, and per message at least and at most; null until
    /// resolved.
    pub parts: Option<PartsSummary>,
    /// Recipients handed to the sender so far.
    pub sent_count: i64,
    /// Recipients whose messages wait for the plan's quiet hours to end where they are.
    pub held_count: i64,
    /// How many numbers are in each state of the recipients route; null until resolved.
    pub states: Option<RecipientCounts>,
    /// When the first of them may go; null when none is held.
    pub held_until: Option<String>,
    /// Why the batch failed.
    pub error: Option<String>,
    pub created_at: String,
    pub modified_at: String,
    /// When the recipients were resolved (the moment of sending).
    pub resolved_at: Option<String>,
    /// The recurring batch that made it, and which of its occurrences it is (from 1).
    pub series_id: Option<String>,
    pub occurrence: Option<i64>,
    /// When the batch was sent, failed or was canceled.
    pub completed_at: Option<String>,
    /// How many recipients the provider last reported in each status (`Delivered`, `Failed`,
    /// …), from its delivery reports; only when reading one batch, and only once there are
    /// reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_reports: Option<std::collections::BTreeMap<String, i64>>,
}

/// A batch's recipients by state: `sent`, `held` and `skipped` as recorded; the rest of those
/// resolved are `queued` while the batch is being sent, and `expired`, `failed` or `canceled`
/// when it ended before their turn.
#[derive(Serialize, ToSchema, Default)]
pub struct RecipientCounts {
    pub sent: i64,
    pub queued: i64,
    pub held: i64,
    pub skipped: i64,
    pub expired: i64,
    pub failed: i64,
    pub canceled: i64,
}

impl RecipientCounts {
    fn of(record: &BatchRecord) -> Option<Self> {
        let resolved = record.recipient_count?;
        let unsent = (resolved - record.sent_count - record.held_count).max(0);
        let mut counts = RecipientCounts {
            sent: record.sent_count,
            held: record.held_count,
            skipped: record.skipped_count.unwrap_or(0),
            ..RecipientCounts::default()
        };
        match record.status {
            BatchStatus::Failed
                if record
                    .error
                    .as_deref()
                    .is_some_and(|error| error.starts_with(EXPIRED)) =>
            {
                counts.expired = unsent;
            }
            BatchStatus::Failed => counts.failed = unsent,
            BatchStatus::Canceled => counts.canceled = unsent,
            _ => counts.queued = unsent,
        }
        Some(counts)
    }
}

/// The parts of a batch's messages.
#[derive(Serialize, ToSchema)]
pub struct PartsSummary {
    pub total: i64,
    /// Fewest parts of one message (null when there are no messages).
    pub min: Option<i64>,
    pub max: Option<i64>,
}

impl PartsSummary {
    pub fn of(record: &BatchRecord) -> Option<Self> {
        record.parts_total.map(|total| PartsSummary {
            total,
            min: record.parts_min,
            max: record.parts_max,
        })
    }
}

impl From<&BatchRecord> for Batch {
    fn from(record: &BatchRecord) -> Self {
        Batch {
            id: record.id.to_string(),
            status: record.status.as_str().to_owned(),
            to: record.to.entries(),
            exclude: record.exclude.entries(),
            from: record.from.clone(),
            body: record.body.clone(),
            client_reference: record.client_reference.clone(),
            send_at: record.send_at.to_rfc3339(),
            expire_at: record.expire_at.map(Timestamp::to_rfc3339),
            parameters: (!record.parameters.is_empty()).then(|| record.parameters.to_json()),
            encoding: record.encoding.as_str().to_owned(),
            purpose: record.purpose.as_str().to_owned(),
            recipient_count: record.recipient_count,
            skipped_count: record.skipped_count,
            encoding_used: record.encoding_used.map(|used| used.as_str().to_owned()),
            parts: PartsSummary::of(record),
            sent_count: record.sent_count,
            held_count: record.held_count,
            states: RecipientCounts::of(record),
            held_until: record.held_until.map(Timestamp::to_rfc3339),
            error: record.error.clone(),
            created_at: record.created_at.to_rfc3339(),
            modified_at: record.modified_at.to_rfc3339(),
            resolved_at: record.resolved_at.map(Timestamp::to_rfc3339),
            series_id: record.series_id.as_ref().map(ToString::to_string),
            occurrence: record.occurrence,
            completed_at: record.completed_at.map(Timestamp::to_rfc3339),
            delivery_reports: None,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct BatchList {
    /// How many batches match, over all pages.
    pub count: i64,
    pub page: i64,
    pub page_size: usize,
    /// Newest first.
    pub batches: Vec<Batch>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BatchListParams {
    /// The page, from 0.
    page: Option<String>,
    /// Batches per page, 1 to 1000 (default 100).
    page_size: Option<String>,
    /// Only batches in this status.
    status: Option<String>,
    /// Only batches with this `client_reference`.
    client_reference: Option<String>,
    /// Only the batches a recurring batch made.
    series_id: Option<String>,
}

/// The fields of a batch request, whichever surface it came in on.
pub struct BatchRequest<'a> {
    pub to: &'a [String],
    pub exclude: &'a [String],
    pub from: Option<&'a str>,
    pub body: &'a str,
    pub send_at: Option<&'a str>,
    pub expire_at: Option<&'a str>,
    pub client_reference: Option<&'a str>,
    pub parameters: Option<&'a serde_json::Value>,
    pub encoding: Option<&'a str>,
    pub purpose: Option<&'a str>,
    /// Most entries allowed in `to` (and in `exclude`).
    pub max_entries: usize,
    /// Whether an empty body is allowed (Sinch allows one).
    pub allow_empty_body: bool,
}

/// Checks a batch request; every problem is reported with its field.
pub fn validate_batch(
    plan: &Plan,
    request: &BatchRequest<'_>,
) -> Result<(NewBatch, GroupFields), ApiError> {
    let mut check = Validator::new();
    let region = plan
        .default_region
        .as_deref()
        .and_then(|region| RegionCode::parse(region).ok());
    if request.to.is_empty() {
        check.push(FieldError::constraint(
            "to",
            "needs at least one group id or number",
        ));
    }
    let audience = |check: &mut Validator, field: &str, entries: &[String]| {
        if entries.len() > request.max_entries {
            check.push(FieldError::constraint(
                field,
                format!(
                    "at most {} entries (got {})",
                    request.max_entries,
                    entries.len()
                ),
            ));
            return Audience::default();
        }
        let targets: Vec<Target> = entries
            .iter()
            .enumerate()
            .filter_map(|(index, entry)| {
                let field = format!("{field}[{index}]");
                if GroupId::parse(entry).is_some() {
                    check.group_id(&field, entry).map(Target::Group)
                } else {
                    check.number(&field, entry, region).map(Target::Number)
                }
            })
            .collect();
        Audience::from_entries(targets)
    };
    let to = audience(&mut check, "to", request.to);
    let exclude = audience(&mut check, "exclude", request.exclude);
    if request.body.is_empty() && !request.allow_empty_body {
        check.push(FieldError::constraint("body", "must not be empty"));
    }
    check.text("body", request.body, |body| {
        check_text(body, MAX_BODY_CHARS, true)
    });
    if let Some(from) = request.from {
        check.text("from", from, |from| check_text(from, MAX_FROM_CHARS, false));
    }
    if let Some(reference) = request.client_reference {
        check.text("client_reference", reference, |reference| {
            check_text(reference, MAX_CLIENT_REFERENCE_CHARS, false)
        });
    }
    let mut time = |field: &str, input: Option<&str>| {
        input.and_then(|input| {
            Timestamp::parse_rfc3339(input)
                .map_err(|error| check.push(FieldError::format(field, error)))
                .ok()
        })
    };
    let send_at = time("send_at", request.send_at);
    let expire_at = time("expire_at", request.expire_at);
    let send_at = send_at.unwrap_or_else(Timestamp::now);
    if let Some(expire_at) = expire_at
        && expire_at <= send_at.max(Timestamp::now())
    {
        check.push(FieldError::constraint(
            "expire_at",
            "must be later than send_at and than now",
        ));
    }
    let parameters = request
        .parameters
        .map(|value| parameters(&mut check, value, region))
        .unwrap_or_default();
    let encoding = match request.encoding {
        None => EncodingChoice::default(),
        Some(input) => EncodingChoice::parse(input).unwrap_or_else(|| {
            check.push(FieldError::format(
                "encoding",
                "must be auto, smart or ucs2",
            ));
            EncodingChoice::default()
        }),
    };
    let purpose = match request.purpose {
        None => Purpose::default(),
        Some(input) => Purpose::parse(input).unwrap_or_else(|| {
            check.push(FieldError::format(
                "purpose",
                "must be marketing or transactional",
            ));
            Purpose::default()
        }),
    };
    let fields = check.finish()?;
    Ok((
        NewBatch {
            parameters,
            encoding,
            purpose,
            to,
            exclude,
            from: request.from.map(str::to_owned),
            body: request.body.to_owned(),
            client_reference: request.client_reference.map(str::to_owned),
            send_at,
            expire_at,
        },
        fields,
    ))
}

/// The most placeholder names a batch may give values for.
const MAX_PARAMETER_NAMES: usize = 64;

/// The longest placeholder value, in characters.
const MAX_PARAMETER_CHARS: usize = 1000;

/// Reads Sinch's `parameters`: `{"name": {"+15551231234": "Joe", "default": "there"}}`.
/// Numbers are read like those of `to` and kept in E.164.
fn parameters(
    check: &mut Validator,
    value: &serde_json::Value,
    region: Option<RegionCode>,
) -> Parameters {
    let mut parameters = Parameters::default();
    let Some(object) = value.as_object() else {
        check.push(FieldError::format(
            "parameters",
            "must be an object of names",
        ));
        return parameters;
    };
    if object.len() > MAX_PARAMETER_NAMES {
        check.push(FieldError::constraint(
            "parameters",
            format!("at most {MAX_PARAMETER_NAMES} names (got {})", object.len()),
        ));
        return parameters;
    }
    let mut entries = 0usize;
    for (name, values) in object {
        let field = format!("parameters.{name}");
        let good_name = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|ch| ch.is_alphanumeric() || matches!(ch, '.' | '_' | '-'));
        if !good_name {
            check.push(FieldError::format(
                field,
                "a name is 1 to 64 letters, digits, '.', '_' or '-'",
            ));
            continue;
        }
        let Some(values) = values.as_object() else {
            check.push(FieldError::format(
                field,
                "must be an object of numbers (and \"default\") to values",
            ));
            continue;
        };
        entries += values.len();
        if entries > MAX_NUMBERS_PER_REQUEST {
            check.push(FieldError::constraint(
                "parameters",
                format!("at most {MAX_NUMBERS_PER_REQUEST} values in all"),
            ));
            return Parameters::default();
        }
        let mut parsed = ParameterValues::default();
        for (key, value) in values {
            let field = format!("{field}.{key}");
            let Some(text) = value.as_str() else {
                check.push(FieldError::format(field, "must be a string"));
                continue;
            };
            if check
                .text(&field, text, |text| {
                    check_text(text, MAX_PARAMETER_CHARS, true)
                })
                .is_none()
            {
                continue;
            }
            if key == "default" {
                parsed.default = Some(text.to_owned());
            } else if let Some(number) = check.number(&field, key, region) {
                parsed
                    .per_number
                    .insert(number.msisdn.as_str().to_owned(), text.to_owned());
            }
        }
        parameters.0.insert(name.clone(), parsed);
    }
    parameters
}

/// A store error about a batch: "not found" names the batch.
pub fn batch_error(error: StoreError) -> ApiError {
    match error {
        StoreError::NotFound(_) => ApiError::NotFound("batch"),
        other => ApiError::from(other),
    }
}

pub fn parse_batch_id(id: &str) -> Result<BatchId, ApiError> {
    BatchId::parse(id).ok_or(ApiError::NotFound("batch"))
}

/// The fields of a native batch body.
pub fn native_request(body: &BatchBody) -> BatchRequest<'_> {
    BatchRequest {
        to: &body.to,
        exclude: body.exclude.as_deref().unwrap_or_default(),
        from: body.from.as_deref(),
        body: &body.body,
        send_at: body.send_at.as_deref(),
        expire_at: body.expire_at.as_deref(),
        client_reference: body.client_reference.as_deref(),
        parameters: body.parameters.as_ref(),
        encoding: body.encoding.as_deref(),
        purpose: body.purpose.as_deref(),
        max_entries: MAX_NUMBERS_PER_REQUEST,
        allow_empty_body: false,
    }
}

/// Create a batch
///
/// The batch is sent at `send_at` (now if absent or past). Its groups are resolved to
/// recipients at that moment, not now: a group changed in between is sent as it is then, and a
/// group deleted in between counts as empty. Recipients are the union of the groups (with their
/// child groups and smart groups) and numbers, minus `exclude`, minus opted-out contacts, each
/// number once.
#[utoipa::path(
    post, path = "/api/batches", tag = TAG,
    request_body = BatchBody,
    responses(
        (status = 201, description = "The batch, scheduled", body = Batch),
        (status = 400, description = "A field is invalid, or names a group that does not exist", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 32 MiB", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn create_batch(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    JsonBody(body): JsonBody<BatchBody>,
) -> Result<(StatusCode, Json<Batch>), ApiError> {
    let (batch, fields) = validate_batch(&plan, &native_request(&body))?;
    let record = state
        .store
        .create_batch(&plan.id, &by, batch)
        .await
        .map_err(|error| fields.explain(error))?;
    state.wake.notify_waiters();
    Ok((StatusCode::CREATED, Json(Batch::from(&record))))
}

/// What a preview says a batch would do.
#[derive(Serialize, ToSchema)]
pub struct BatchPreviewView {
    /// How many recipients would get a message if the batch were sent now.
    pub recipient_count: i64,
    /// Who would be left out, by reason.
    pub left_out: LeftOut,
    /// Of `recipient_count`, how many the plan's quiet hours would hold if the batch were sent
    /// now (0 for a transactional batch or without quiet hours).
    pub held_now: i64,
    /// The encoding the messages would go in (`gsm7`, `ucs2`, or `mixed`); null when there is
    /// no recipient.
    pub encoding: Option<String>,
    /// SMS parts over all messages, and per message at least and at most.
    pub parts: PartsSummary,
    /// Up to three messages as they would be sent, with their recipients.
    pub samples: Vec<SampleMessage>,
}

/// Counts of recipients left out, by reason.
#[derive(Serialize, ToSchema)]
pub struct LeftOut {
    /// By the batch's `exclude` (groups or numbers).
    pub excluded: i64,
    /// Their contact opted out.
    pub opted_out: i64,
    /// A placeholder of the body had no value for them.
    pub missing_parameter: i64,
    /// They had their share of marketing messages under the plan's frequency cap.
    pub frequency_cap: i64,
}

/// One message of a preview.
#[derive(Serialize, ToSchema)]
pub struct SampleMessage {
    pub to: String,
    /// The text, personalized and in its encoding (`smart` replacements made).
    pub body: String,
    /// `gsm7` or `ucs2`.
    pub encoding: String,
    pub parts: u32,
}

/// Preview a batch
///
/// Works the batch out as if it were sent now, without sending or recording anything: who it
/// would reach, who would be left out and why, the encoding and SMS parts, and three messages
/// as they would be sent. Takes the same body as creating a batch.
#[utoipa::path(
    post, path = "/api/batches/preview", tag = TAG,
    request_body = BatchBody,
    responses(
        (status = 200, description = "What the batch would do", body = BatchPreviewView),
        (status = 400, description = "A field is invalid, or names a group that does not exist", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than 32 MiB", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn preview_batch(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    JsonBody(body): JsonBody<BatchBody>,
) -> Result<Json<BatchPreviewView>, ApiError> {
    let (batch, fields) = validate_batch(&plan, &native_request(&body))?;
    let preview = state
        .store
        .preview_batch(&plan.id, batch)
        .await
        .map_err(|error| fields.explain(error))?;
    Ok(Json(BatchPreviewView {
        recipient_count: preview.recipients,
        left_out: LeftOut {
            excluded: preview.excluded,
            opted_out: preview.opted_out,
            missing_parameter: preview.missing_parameter,
            frequency_cap: preview.frequency_cap,
        },
        held_now: preview.held_now,
        encoding: preview
            .tally
            .encoding()
            .map(|encoding| encoding.as_str().to_owned()),
        parts: PartsSummary {
            total: preview.tally.parts,
            min: preview.tally.min,
            max: preview.tally.max,
        },
        samples: preview
            .samples
            .into_iter()
            .map(|sample| SampleMessage {
                to: sample.to,
                body: sample.text,
                encoding: sample.segments.encoding.as_str().to_owned(),
                parts: sample.segments.parts,
            })
            .collect(),
    }))
}

/// List batches
///
/// Newest first, by numbered page.
#[utoipa::path(
    get, path = "/api/batches", tag = TAG,
    params(BatchListParams),
    responses(
        (status = 200, description = "A page of batches", body = BatchList),
        (status = 400, description = "A query parameter is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_batches(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Query(params): Query<BatchListParams>,
) -> Result<Json<BatchList>, ApiError> {
    let page =
        bounded_number("page", params.page.as_deref(), 0, i64::MAX / MAX_PAGE_SIZE)?.unwrap_or(0);
    let page_size = bounded_number("page_size", params.page_size.as_deref(), 1, MAX_PAGE_SIZE)?
        .unwrap_or(DEFAULT_PAGE_SIZE);
    let status = params
        .status
        .as_deref()
        .map(|status| {
            BatchStatus::parse(status).ok_or_else(|| {
                ApiError::invalid(FieldError::format(
                    "status",
                    "must be scheduled, sending, sent, failed or canceled",
                ))
            })
        })
        .transpose()?;
    let series_id = params
        .series_id
        .as_deref()
        .map(|id| {
            SeriesId::parse(id).ok_or_else(|| {
                ApiError::invalid(FieldError::format("series_id", "is not a series id"))
            })
        })
        .transpose()?;
    let query = BatchQuery {
        status,
        client_reference: params.client_reference,
        series_id,
        offset: page * page_size,
        limit: page_size,
        ..BatchQuery::default()
    };
    let (records, count) = state.store.list_batches(&plan.id, &query).await?;
    Ok(Json(BatchList {
        count,
        page,
        page_size: records.len(),
        batches: records.iter().map(Batch::from).collect(),
    }))
}

/// Get a batch
///
/// Its status, and once it is being sent, how many recipients it resolved to and how many have
/// been handed to the sender.
#[utoipa::path(
    get, path = "/api/batches/{id}", tag = TAG,
    params(("id" = String, Path, description = "The batch's id")),
    responses(
        (status = 200, description = "The batch", body = Batch),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such batch in this plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn get_batch(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Batch>, ApiError> {
    let id = parse_batch_id(&id)?;
    let record = state
        .store
        .get_batch(&plan.id, &id)
        .await
        .map_err(batch_error)?;
    let mut batch = Batch::from(&record);
    let mut counts = std::collections::BTreeMap::new();
    for group in state.store.report_groups(&plan.id, &id, false).await? {
        *counts.entry(group.status).or_insert(0) += group.count;
    }
    batch.delivery_reports = (!counts.is_empty()).then_some(counts);
    Ok(Json(batch))
}

/// Cancel a batch
///
/// A scheduled batch is not sent; a batch being sent stops after the chunk in hand (what was
/// handed to the sender stays sent). A batch already sent, failed or canceled is 409.
#[utoipa::path(
    delete, path = "/api/batches/{id}", tag = TAG,
    params(("id" = String, Path, description = "The batch's id")),
    responses(
        (status = 200, description = "The batch, canceled", body = Batch),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such batch in this plan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The batch is already sent, failed or canceled", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn cancel_batch(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Batch>, ApiError> {
    let id = parse_batch_id(&id)?;
    let record = state
        .store
        .cancel_batch(&plan.id, &by, &id)
        .await
        .map_err(batch_error)?;
    Ok(Json(Batch::from(&record)))
}

/// List a batch's recipients
///
/// What became of each number the batch resolved to when it was sent: the recipients in
/// sending order, then those left out. One JSON object per line (`application/x-ndjson`, the
/// default: `{"phone": "+14155552671", "state": "sent", "parts": 1}`) or CSV with
/// `Accept: text/csv` (`phone,state,reason,detail,parts,delivery_status,delivery_code,
/// reported_at`), streamed whatever their number.
/// `state` is `sent`, `queued` (its turn has not come), `held` (reason `quiet_hours`: waiting
/// for the plan's quiet hours to end where the recipient is, until the time in `detail`),
/// `sending` (being handed over), `expired`, `failed` or `canceled` (the batch ended before its
/// turn), or `skipped` with a `reason` (`missing_parameter`, with the placeholder as `detail`,
/// or `frequency_cap`). Once the provider reported on a message (`POST /api/delivery-reports`),
/// its line carries `delivery`: `{"status": "Delivered", "code": 0, "at": "…"}`. 409 while the
/// batch is scheduled: recipients are resolved at send time.
#[utoipa::path(
    get, path = "/api/batches/{id}/recipients", tag = TAG,
    params(("id" = String, Path, description = "The batch's id")),
    responses(
        (status = 200, description = "The recipients", content(
            (String = "application/x-ndjson"),
            (String = "text/csv"),
        )),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such batch in this plan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Not resolved yet: the batch has not been sent", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn batch_recipients(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_batch_id(&id)?;
    let record = state
        .store
        .get_batch(&plan.id, &id)
        .await
        .map_err(batch_error)?;
    if record.recipient_count.is_none() {
        return Err(batch_error(StoreError::NotResolved));
    }
    let csv = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("text/csv"));
    let outcomes = state.store.batch_recipients(plan.id.clone(), id);
    Ok(stream_outcomes(outcomes, csv))
}

/// One recipient's line of the recipients route.
#[derive(Serialize)]
struct OutcomeLine<'a> {
    phone: &'a str,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<std::borrow::Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parts: Option<i64>,
    /// The provider's last delivery report of the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery: Option<DeliveryLine<'a>>,
}

#[derive(Serialize)]
struct DeliveryLine<'a> {
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<i64>,
    at: String,
}

impl<'a> From<&'a RecipientOutcome> for OutcomeLine<'a> {
    fn from(outcome: &'a RecipientOutcome) -> Self {
        let (reason, detail) = match &outcome.state {
            RecipientState::Skipped(reason) => {
                (Some(reason.code()), reason.detail().map(Into::into))
            }
            RecipientState::Held(until) => (Some("quiet_hours"), Some(until.to_rfc3339().into())),
            _ => (None, None),
        };
        OutcomeLine {
            phone: &outcome.phone,
            state: outcome.state.as_str(),
            reason,
            detail,
            parts: outcome.parts,
            delivery: outcome.delivery.as_ref().map(|report| DeliveryLine {
                status: &report.status,
                code: report.code,
                at: report.at.to_rfc3339(),
            }),
        }
    }
}

/// Streams recipients' outcomes as NDJSON objects or CSV rows, a few thousand per write. A
/// storage failure mid-stream ends the body early, which the client sees as a truncated
/// transfer.
fn stream_outcomes(
    outcomes: futures::stream::BoxStream<'static, Result<RecipientOutcome, StoreError>>,
    csv: bool,
) -> Response {
    let header_line = csv.then(|| {
        Ok::<_, std::io::Error>(axum::body::Bytes::from_static(
            b"phone,state,reason,detail,parts,delivery_status,delivery_code,reported_at\n",
        ))
    });
    let body = outcomes.ready_chunks(4096).map(move |chunk| {
        let mut buffer = Vec::with_capacity(chunk.len() * 48);
        let mut writer = csv.then(|| csv::Writer::from_writer(Vec::new()));
        for outcome in chunk {
            let outcome = outcome.map_err(|error| {
                tracing::error!(%error, "recipient stream failed");
                std::io::Error::other("storage failure")
            })?;
            let line = OutcomeLine::from(&outcome);
            match writer.as_mut() {
                Some(writer) => writer
                    .write_record([
                        line.phone,
                        line.state,
                        line.reason.unwrap_or(""),
                        line.detail.as_deref().unwrap_or(""),
                        &line
                            .parts
                            .map(|parts| parts.to_string())
                            .unwrap_or_default(),
                        line.delivery.as_ref().map_or("", |report| report.status),
                        &line
                            .delivery
                            .as_ref()
                            .and_then(|report| report.code)
                            .map(|code| code.to_string())
                            .unwrap_or_default(),
                        line.delivery
                            .as_ref()
                            .map_or("", |report| report.at.as_str()),
                    ])
                    .map_err(std::io::Error::other)?,
                None => {
                    serde_json::to_writer(&mut buffer, &line).map_err(std::io::Error::other)?;
                    buffer.push(b'\n');
                }
            }
        }
        if let Some(writer) = writer {
            buffer = writer
                .into_inner()
                .map_err(|error| std::io::Error::other(error.to_string()))?;
        }
        Ok(axum::body::Bytes::from(buffer))
    });
    streamed(csv, header_line, body)
}

/// A streamed NDJSON or CSV response: the CSV header line (if any), then the body's pieces.
fn streamed(
    csv: bool,
    header_line: Option<Result<axum::body::Bytes, std::io::Error>>,
    body: impl futures::Stream<Item = Result<axum::body::Bytes, std::io::Error>> + Send + 'static,
) -> Response {
    let content_type = if csv {
        "text/csv; charset=utf-8"
    } else {
        "application/x-ndjson"
    };
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(
            futures::stream::iter(header_line).chain(body),
        ))
        .unwrap_or_else(|_| ApiError::Internal.into_response())
}

/// Streams numbers as NDJSON strings or CSV lines, a few thousand per write. A storage failure
/// mid-stream ends the body early, which the client sees as a truncated transfer.
pub fn stream_lines(
    numbers: futures::stream::BoxStream<'static, Result<String, StoreError>>,
    csv: bool,
) -> Response {
    let header_line =
        csv.then(|| Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"phone\n")));
    let body = numbers.ready_chunks(4096).map(move |chunk| {
        let mut buffer = String::with_capacity(chunk.len() * 20);
        for number in chunk {
            let number = number.map_err(|error| {
                tracing::error!(%error, "number stream failed");
                std::io::Error::other("storage failure")
            })?;
            if csv {
                buffer.push_str(&number);
                buffer.push('\n');
            } else {
                buffer.push('"');
                buffer.push_str(&number);
                buffer.push_str("\"\n");
            }
        }
        Ok(axum::body::Bytes::from(buffer))
    });
    streamed(csv, header_line, body)
}
