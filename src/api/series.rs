//! Recurring batches: a batch body with an RFC 5545 rule. Each occurrence becomes its own batch
//! when it is due, resolved at its own send time like any batch; the series can be listed,
//! paused, resumed and canceled.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::batches::{BatchBody, native_request, validate_batch};
use super::error::{ApiError, FieldError, Problem};
use super::extract::JsonBody;
use super::limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use super::paging::bounded_number;
use crate::domain::ids::SeriesId;
use crate::domain::recurrence::{Recurrence, RecurrenceError, SeriesStatus};
use crate::domain::time::Timestamp;
use crate::store::{NewSeries, SeriesRecord};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_series, create_series))
        .routes(routes!(get_series))
        .routes(routes!(pause_series))
        .routes(routes!(resume_series))
        .routes(routes!(cancel_series))
}

const TAG: &str = "Recurring batches";

/// A batch to send again and again: the fields of a batch, and when it recurs.
#[derive(Deserialize, ToSchema)]
pub struct SeriesBody {
    #[serde(flatten)]
    pub batch: BatchBody,
    pub recurrence: RecurrenceBody,
}

/// When a series' batches are sent. The batch's `send_at` (now when absent) is the rule's
/// DTSTART; its `expire_at`, if any, gives each occurrence as long to be sent.
#[derive(Deserialize, Serialize, ToSchema)]
pub struct RecurrenceBody {
    /// An RFC 5545 RRULE, with or without the `RRULE:` prefix; `COUNT` and `UNTIL` end it.
    #[schema(example = "FREQ=WEEKLY;BYDAY=MO;COUNT=10")]
    pub rule: String,
    /// The IANA time zone the rule is read in, so that "every Monday at 09:00" stays at 09:00
    /// local time across clock changes (default `UTC`).
    #[serde(default)]
    #[schema(example = "Europe/London")]
    pub time_zone: Option<String>,
    /// No occurrence after this moment (ISO 8601 with a time zone).
    #[serde(default)]
    pub ends_at: Option<String>,
}

/// A recurring batch and where it stands.
#[derive(Serialize, ToSchema)]
pub struct Series {
    #[schema(example = "01JD4Q3T5V8Z9X2W1Y0A7B6C5D")]
    pub id: String,
    /// `active`, `paused`, `canceled` or `finished` (no occurrence left).
    pub status: String,
    pub rule: String,
    pub time_zone: String,
    pub starts_at: String,
    pub ends_at: Option<String>,
    /// Batches made so far (list them with `GET /api/batches?series_id=`).
    pub occurrences: i64,
    /// When the last batch made was due.
    pub last_at: Option<String>,
    /// When the next batch is due; null when none is left.
    pub next_at: Option<String>,
    /// What each occurrence sends.
    pub to: Vec<String>,
    pub exclude: Vec<String>,
    pub from: Option<String>,
    pub body: String,
    pub client_reference: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Value>,
    pub encoding: String,
    pub purpose: String,
    /// Each occurrence expires this many seconds after its send time.
    pub expire_after_seconds: Option<i64>,
    pub created_at: String,
    pub modified_at: String,
}

impl From<&SeriesRecord> for Series {
    fn from(record: &SeriesRecord) -> Self {
        let batch = &record.batch;
        Series {
            id: record.id.to_string(),
            status: record.status.as_str().to_owned(),
            rule: record.rule.clone(),
            time_zone: record.time_zone.clone(),
            starts_at: record.starts_at.to_rfc3339(),
            ends_at: record.ends_at.map(Timestamp::to_rfc3339),
            occurrences: record.occurrences,
            last_at: record.last_at.map(Timestamp::to_rfc3339),
            next_at: record.next_at.map(Timestamp::to_rfc3339),
            to: batch.to.entries(),
            exclude: batch.exclude.entries(),
            from: batch.from.clone(),
            body: batch.body.clone(),
            client_reference: batch.client_reference.clone(),
            parameters: (!batch.parameters.is_empty()).then(|| batch.parameters.to_json()),
            encoding: batch.encoding.as_str().to_owned(),
            purpose: batch.purpose.as_str().to_owned(),
            expire_after_seconds: record.expire_after_millis.map(|millis| millis / 1000),
            created_at: record.created_at.to_rfc3339(),
            modified_at: record.modified_at.to_rfc3339(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SeriesList {
    /// How many series the plan has.
    pub count: i64,
    pub page: i64,
    pub page_size: usize,
    /// Newest first.
    pub series: Vec<Series>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SeriesListParams {
    /// The page, from 0.
    page: Option<String>,
    /// Series per page, 1 to 1000 (default 100).
    page_size: Option<String>,
}

fn parse_series_id(id: &str) -> Result<SeriesId, ApiError> {
    SeriesId::parse(id).ok_or(ApiError::NotFound("series"))
}

fn rule_error(error: RecurrenceError) -> ApiError {
    let field = match error {
        RecurrenceError::Zone => "recurrence.time_zone",
        RecurrenceError::Rule(_)
        | RecurrenceError::NotAscii
        | RecurrenceError::Count
        | RecurrenceError::NoOccurrence => "recurrence.rule",
    };
    ApiError::invalid(FieldError::constraint(field, error))
}

/// Create a recurring batch
///
/// Takes the body of a batch and a `recurrence`. Nothing is sent now: at each occurrence of the
/// rule (the first at or after `send_at`), a batch is made with the series' fields and sent at
/// once — its groups resolved then, as for any batch, with the plan's caps and quiet hours.
/// Occurrences due while no instance runs are skipped, but for the first of them.
#[utoipa::path(
    post, path = "/api/batch-series", tag = TAG,
    request_body = SeriesBody,
    responses(
        (status = 201, description = "The series, active", body = Series),
        (status = 400, description = "A field is invalid (the rule, its zone, a batch field), or names a group that does not exist", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn create_series(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    JsonBody(body): JsonBody<SeriesBody>,
) -> Result<(StatusCode, Json<Series>), ApiError> {
    let (batch, fields) = validate_batch(&plan, &native_request(&body.batch))?;
    let ends_at = body
        .recurrence
        .ends_at
        .as_deref()
        .map(|text| {
            Timestamp::parse_rfc3339(text)
                .map_err(|error| ApiError::invalid(FieldError::format("recurrence.ends_at", error)))
        })
        .transpose()?;
    let recurrence = Recurrence::new(
        &body.recurrence.rule,
        body.recurrence.time_zone.as_deref().unwrap_or("UTC"),
        ends_at.map(Timestamp::to_utc),
    )
    .map_err(rule_error)?;
    let first_at = Timestamp::from_utc(
        recurrence
            .first(batch.send_at.to_utc())
            .map_err(rule_error)?,
    );
    let series = NewSeries {
        rule: recurrence.rule().to_owned(),
        time_zone: recurrence.zone().name().to_owned(),
        ends_at,
        first_at,
        batch,
    };
    let record = state
        .store
        .create_series(&plan.id, &by, series)
        .await
        .map_err(|error| fields.explain(error))?;
    Ok((StatusCode::CREATED, Json(Series::from(&record))))
}

/// List recurring batches
#[utoipa::path(
    get, path = "/api/batch-series", tag = TAG,
    params(SeriesListParams),
    responses(
        (status = 200, description = "A page of series", body = SeriesList),
        (status = 400, description = "A query parameter is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_series(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Query(params): Query<SeriesListParams>,
) -> Result<Json<SeriesList>, ApiError> {
    let page =
        bounded_number("page", params.page.as_deref(), 0, i64::MAX / MAX_PAGE_SIZE)?.unwrap_or(0);
    let page_size = bounded_number("page_size", params.page_size.as_deref(), 1, MAX_PAGE_SIZE)?
        .unwrap_or(DEFAULT_PAGE_SIZE);
    let (records, count) = state
        .store
        .list_series(&plan.id, page * page_size, page_size)
        .await?;
    Ok(Json(SeriesList {
        count,
        page,
        page_size: records.len(),
        series: records.iter().map(Series::from).collect(),
    }))
}

/// Get a recurring batch
#[utoipa::path(
    get, path = "/api/batch-series/{id}", tag = TAG,
    params(("id" = String, Path, description = "The series' id")),
    responses(
        (status = 200, description = "The series", body = Series),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such series in this plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn get_series(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Series>, ApiError> {
    let id = parse_series_id(&id)?;
    let record = state.store.get_series(&plan.id, &id).await?;
    Ok(Json(Series::from(&record)))
}

/// Pause a recurring batch
///
/// No batch is made until it is resumed. Batches already made are not touched (cancel them
/// with `DELETE /api/batches/{id}`). 409 unless the series is active.
#[utoipa::path(
    post, path = "/api/batch-series/{id}/pause", tag = TAG,
    params(("id" = String, Path, description = "The series' id")),
    responses(
        (status = 200, description = "The series, paused", body = Series),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such series in this plan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The series is not active", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn pause_series(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Series>, ApiError> {
    let id = parse_series_id(&id)?;
    let record = state
        .store
        .set_series_status(&plan.id, &by, &id, SeriesStatus::Paused, None)
        .await?;
    Ok(Json(Series::from(&record)))
}

/// Resume a recurring batch
///
/// It goes on from the next occurrence still to come; those due while it was paused are
/// skipped. A series with none left becomes `finished`. 409 unless the series is paused.
#[utoipa::path(
    post, path = "/api/batch-series/{id}/resume", tag = TAG,
    params(("id" = String, Path, description = "The series' id")),
    responses(
        (status = 200, description = "The series, active again (or finished)", body = Series),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such series in this plan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The series is not paused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn resume_series(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Series>, ApiError> {
    let id = parse_series_id(&id)?;
    let current = state.store.get_series(&plan.id, &id).await?;
    let next = Recurrence::new(
        &current.rule,
        &current.time_zone,
        current.ends_at.map(Timestamp::to_utc),
    )
    .ok()
    .and_then(|rule| {
        rule.resume(
            current.starts_at.to_utc(),
            current.last_at.map(Timestamp::to_utc),
            u32::try_from(current.occurrences).unwrap_or(u32::MAX),
            Timestamp::now().to_utc(),
        )
    })
    .map(Timestamp::from_utc);
    let record = state
        .store
        .set_series_status(&plan.id, &by, &id, SeriesStatus::Active, next)
        .await?;
    Ok(Json(Series::from(&record)))
}

/// Cancel a recurring batch
///
/// No batch is made any more. Batches already made are not touched. 409 when the series is
/// already canceled or finished.
#[utoipa::path(
    post, path = "/api/batch-series/{id}/cancel", tag = TAG,
    params(("id" = String, Path, description = "The series' id")),
    responses(
        (status = 200, description = "The series, canceled", body = Series),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such series in this plan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The series is already canceled or finished", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn cancel_series(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<Series>, ApiError> {
    let id = parse_series_id(&id)?;
    let record = state
        .store
        .set_series_status(&plan.id, &by, &id, SeriesStatus::Canceled, None)
        .await?;
    Ok(Json(Series::from(&record)))
}
