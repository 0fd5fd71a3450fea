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
    Audience, BatchStatus, MAX_BODY_CHARS, MAX_CLIENT_REFERENCE_CHARS, MAX_FROM_CHARS, Target,
    check_text,
};
use crate::domain::ids::{BatchId, GroupId};
use crate::domain::msisdn::RegionCode;
use crate::domain::time::Timestamp;
use crate::store::{BatchQuery, BatchRecord, NewBatch, Plan, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_batches, create_batch))
        .routes(routes!(get_batch, cancel_batch))
        .routes(routes!(batch_recipients))
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
    /// How many recipients the batch resolved to when it was sent; null until then.
    pub recipient_count: Option<i64>,
    /// Recipients handed to the sender so far.
    pub sent_count: i64,
    /// Why the batch failed.
    pub error: Option<String>,
    pub created_at: String,
    pub modified_at: String,
    /// When the recipients were resolved (the moment of sending).
    pub resolved_at: Option<String>,
    /// When the batch was sent, failed or was canceled.
    pub completed_at: Option<String>,
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
            recipient_count: record.recipient_count,
            sent_count: record.sent_count,
            error: record.error.clone(),
            created_at: record.created_at.to_rfc3339(),
            modified_at: record.modified_at.to_rfc3339(),
            resolved_at: record.resolved_at.map(Timestamp::to_rfc3339),
            completed_at: record.completed_at.map(Timestamp::to_rfc3339),
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
    let fields = check.finish()?;
    Ok((
        NewBatch {
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
    Authenticated(plan): Authenticated,
    JsonBody(body): JsonBody<BatchBody>,
) -> Result<(StatusCode, Json<Batch>), ApiError> {
    let request = BatchRequest {
        to: &body.to,
        exclude: body.exclude.as_deref().unwrap_or_default(),
        from: body.from.as_deref(),
        body: &body.body,
        send_at: body.send_at.as_deref(),
        expire_at: body.expire_at.as_deref(),
        client_reference: body.client_reference.as_deref(),
        max_entries: MAX_NUMBERS_PER_REQUEST,
        allow_empty_body: false,
    };
    let (batch, fields) = validate_batch(&plan, &request)?;
    let record = state
        .store
        .create_batch(&plan.id, batch)
        .await
        .map_err(|error| fields.explain(error))?;
    state.wake.notify_waiters();
    Ok((StatusCode::CREATED, Json(Batch::from(&record))))
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
    Authenticated(plan): Authenticated,
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
    let query = BatchQuery {
        status,
        client_reference: params.client_reference,
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
    Authenticated(plan): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Batch>, ApiError> {
    let id = parse_batch_id(&id)?;
    let record = state
        .store
        .get_batch(&plan.id, &id)
        .await
        .map_err(batch_error)?;
    Ok(Json(Batch::from(&record)))
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
    Authenticated(plan): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Batch>, ApiError> {
    let id = parse_batch_id(&id)?;
    let record = state
        .store
        .cancel_batch(&plan.id, &id)
        .await
        .map_err(batch_error)?;
    Ok(Json(Batch::from(&record)))
}

/// List a batch's recipients
///
/// The numbers the batch resolved to when it was sent, in sending order: one JSON string per
/// line (`application/x-ndjson`, the default) or CSV with `Accept: text/csv`, streamed whatever
/// their number. 409 while the batch is scheduled: recipients are resolved at send time.
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
    Authenticated(plan): Authenticated,
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
    let numbers = state.store.batch_recipients(plan.id.clone(), id);
    Ok(stream_lines(numbers, csv))
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
