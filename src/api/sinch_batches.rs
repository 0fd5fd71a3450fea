//! Sinch's batches under `/xms/v1/{service_plan_id}/batches`, for text messages: send, list,
//! retrieve and cancel, with Sinch's field names, so that a Sinch SDK can send to a group. The
//! batch is Roster's own (resolved at send time, handed to the configured sender).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::batches::{BatchRequest, batch_error, parse_batch_id, validate_batch};
use super::error::{ApiError, FieldError, SinchErrorBody};
use super::extract::JsonBody;
use super::limits::SINCH_MAX_BATCH_RECIPIENTS;
use super::sinch::{SinchResult, authorize, sinch_page};
use crate::domain::batch::BatchStatus;
use crate::domain::delivery::ReportStatus;
use crate::domain::time::Timestamp;
use crate::store::{BatchQuery, BatchRecord, ReportGroup, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_batches, send_batch))
        .routes(routes!(get_batch, cancel_batch))
        .routes(routes!(batch_delivery_report))
        .routes(routes!(recipient_delivery_report))
}

const TAG: &str = "Sinch-compatible Batches";

/// A text batch, as Sinch's send takes it. Fields Roster does not act on (`delivery_report`,
/// `callback_url`, …) are accepted and ignored; unknown fields are ignored, as Sinch does.
#[derive(Deserialize, ToSchema)]
pub struct SinchBatchBody {
    /// Numbers and group ids, 1 to 1000 entries.
    pub to: Vec<String>,
    #[serde(default)]
    pub from: Option<String>,
    /// The message, at most 2000 characters.
    pub body: String,
    /// Only `mt_text`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub send_at: Option<String>,
    #[serde(default)]
    pub expire_at: Option<String>,
    #[serde(default)]
    pub client_reference: Option<String>,
    /// Values for the body's `${name}` placeholders: per name, a value per number and a
    /// `default` (Roster adds `first_name`, `last_name`, `phone` and `fields.NAME` from the
    /// recipient's contact).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Value>,
    /// Roster's own: `auto` (default), `smart` or `ucs2`.
    #[serde(default)]
    pub encoding: Option<String>,
    /// Roster's own: `marketing` (default, held to the frequency cap) or `transactional`.
    #[serde(default)]
    pub purpose: Option<String>,
}

/// A batch as Sinch shows it.
#[derive(Serialize, ToSchema)]
pub struct SinchBatch {
    pub id: String,
    pub to: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub body: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub canceled: bool,
    pub created_at: String,
    pub modified_at: String,
    pub send_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expire_at: Option<String>,
    pub delivery_report: String,
    pub flash_message: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_reference: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub parameters: Option<serde_json::Value>,
}

impl From<&BatchRecord> for SinchBatch {
    fn from(record: &BatchRecord) -> Self {
        SinchBatch {
            id: record.id.to_string(),
            to: record.to.entries(),
            from: record.from.clone(),
            body: record.body.clone(),
            kind: "mt_text".to_owned(),
            canceled: record.status == BatchStatus::Canceled,
            created_at: record.created_at.to_rfc3339(),
            modified_at: record.modified_at.to_rfc3339(),
            send_at: record.send_at.to_rfc3339(),
            expire_at: record.expire_at.map(Timestamp::to_rfc3339),
            delivery_report: "none".to_owned(),
            flash_message: false,
            client_reference: record.client_reference.clone(),
            parameters: (!record.parameters.is_empty()).then(|| record.parameters.to_json()),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SinchBatchList {
    pub count: i64,
    pub page: i64,
    pub page_size: usize,
    /// Newest first.
    pub batches: Vec<SinchBatch>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SinchBatchListParams {
    /// The page, from 0.
    page: Option<String>,
    /// Batches per page, 1 to 100 (default 30).
    page_size: Option<String>,
    /// Only batches created at or after this date-time (default: 24 hours ago, as Sinch).
    start_date: Option<String>,
    /// Only batches created before this date-time.
    end_date: Option<String>,
    /// Only batches from this sender.
    from: Option<String>,
    /// Only batches with this client reference.
    client_reference: Option<String>,
}

/// Send a batch (Sinch)
///
/// Group ids in `to` are resolved when the batch is sent; a group deleted before then counts as
/// empty.
#[utoipa::path(
    post, path = "/xms/v1/{service_plan_id}/batches", tag = TAG,
    params(("service_plan_id" = String, Path, description = "The token's service plan")),
    request_body = SinchBatchBody,
    responses(
        (status = 201, description = "The batch", body = SinchBatch),
        (status = 400, description = "Invalid JSON, number or constraint", body = SinchErrorBody),
        (status = 401, description = "Missing or invalid token", body = SinchErrorBody),
        (status = 403, description = "The path's plan is not the token's, or a group is unknown (`unknown_group`)", body = SinchErrorBody),
    ),
    security(("bearer" = []))
)]
async fn send_batch(
    State(state): State<AppState>,
    auth: Result<Authenticated, ApiError>,
    Path(plan_id): Path<String>,
    body: Result<JsonBody<SinchBatchBody>, ApiError>,
) -> SinchResult<(StatusCode, Json<SinchBatch>)> {
    let (plan, by) = authorize(auth, &plan_id)?;
    let JsonBody(body) = body?;
    if body.kind.as_deref().is_some_and(|kind| kind != "mt_text") {
        return Err(ApiError::invalid(FieldError::constraint(
            "type",
            "only mt_text batches are supported",
        ))
        .into());
    }
    let request = BatchRequest {
        to: &body.to,
        exclude: &[],
        from: body.from.as_deref(),
        body: &body.body,
        send_at: body.send_at.as_deref(),
        expire_at: body.expire_at.as_deref(),
        client_reference: body.client_reference.as_deref(),
        parameters: body.parameters.as_ref(),
        encoding: body.encoding.as_deref(),
        purpose: body.purpose.as_deref(),
        max_entries: SINCH_MAX_BATCH_RECIPIENTS,
        allow_empty_body: true,
    };
    let (batch, fields) = validate_batch(&plan, &request)?;
    let record = state
        .store
        .create_batch(&plan.id, &by, batch)
        .await
        .map_err(|error| fields.explain(error))?;
    state.wake.notify_waiters();
    Ok((StatusCode::CREATED, Json(SinchBatch::from(&record))))
}

/// List batches (Sinch)
///
/// Newest first, `page` from 0; by default the last 24 hours, as Sinch.
#[utoipa::path(
    get, path = "/xms/v1/{service_plan_id}/batches", tag = TAG,
    params(("service_plan_id" = String, Path, description = "The token's service plan"), SinchBatchListParams),
    responses(
        (status = 200, description = "A page of batches", body = SinchBatchList),
        (status = 400, description = "Invalid paging or date", body = SinchErrorBody),
        (status = 401, description = "Missing or invalid token", body = SinchErrorBody),
        (status = 403, description = "The path's plan is not the token's", body = SinchErrorBody),
    ),
    security(("bearer" = []))
)]
async fn list_batches(
    State(state): State<AppState>,
    auth: Result<Authenticated, ApiError>,
    Path(plan_id): Path<String>,
    Query(params): Query<SinchBatchListParams>,
) -> SinchResult<Json<SinchBatchList>> {
    let (plan, _) = authorize(auth, &plan_id)?;
    let (page, page_size) = sinch_page(params.page.as_deref(), params.page_size.as_deref())?;
    let date = |field: &str, input: Option<&str>| {
        input
            .map(|input| {
                Timestamp::parse_rfc3339(input)
                    .map_err(|error| ApiError::invalid(FieldError::format(field, error)))
            })
            .transpose()
    };
    let created_from = date("start_date", params.start_date.as_deref())?
        .unwrap_or_else(|| Timestamp::now().plus_millis(-24 * 3_600_000));
    let query = BatchQuery {
        status: None,
        client_reference: params.client_reference,
        from: params.from,
        created_from: Some(created_from),
        created_before: date("end_date", params.end_date.as_deref())?,
        offset: page * page_size,
        limit: page_size,
        ..BatchQuery::default()
    };
    let (records, count) = state.store.list_batches(&plan.id, &query).await?;
    Ok(Json(SinchBatchList {
        count,
        page,
        page_size: records.len(),
        batches: records.iter().map(SinchBatch::from).collect(),
    }))
}

/// Retrieve a batch (Sinch)
#[utoipa::path(
    get, path = "/xms/v1/{service_plan_id}/batches/{batch_id}", tag = TAG,
    params(
        ("service_plan_id" = String, Path, description = "The token's service plan"),
        ("batch_id" = String, Path, description = "The batch's id"),
    ),
    responses(
        (status = 200, description = "The batch", body = SinchBatch),
        (status = 401, description = "Missing or invalid token", body = SinchErrorBody),
        (status = 403, description = "The path's plan is not the token's", body = SinchErrorBody),
        (status = 404, description = "No such batch", body = SinchErrorBody),
    ),
    security(("bearer" = []))
)]
async fn get_batch(
    State(state): State<AppState>,
    auth: Result<Authenticated, ApiError>,
    Path((plan_id, batch_id)): Path<(String, String)>,
) -> SinchResult<Json<SinchBatch>> {
    let (plan, _) = authorize(auth, &plan_id)?;
    let id = parse_batch_id(&batch_id)?;
    let record = state
        .store
        .get_batch(&plan.id, &id)
        .await
        .map_err(batch_error)?;
    Ok(Json(SinchBatch::from(&record)))
}

/// Cancel a batch (Sinch)
///
/// As on Sinch, canceling a batch that has already been sent is not an error: the batch is
/// returned as it is.
#[utoipa::path(
    delete, path = "/xms/v1/{service_plan_id}/batches/{batch_id}", tag = TAG,
    params(
        ("service_plan_id" = String, Path, description = "The token's service plan"),
        ("batch_id" = String, Path, description = "The batch's id"),
    ),
    responses(
        (status = 200, description = "The batch", body = SinchBatch),
        (status = 401, description = "Missing or invalid token", body = SinchErrorBody),
        (status = 403, description = "The path's plan is not the token's", body = SinchErrorBody),
        (status = 404, description = "No such batch", body = SinchErrorBody),
    ),
    security(("bearer" = []))
)]
async fn cancel_batch(
    State(state): State<AppState>,
    auth: Result<Authenticated, ApiError>,
    Path((plan_id, batch_id)): Path<(String, String)>,
) -> SinchResult<Json<SinchBatch>> {
    let (plan, by) = authorize(auth, &plan_id)?;
    let id = parse_batch_id(&batch_id)?;
    let record = match state.store.cancel_batch(&plan.id, &by, &id).await {
        Err(StoreError::BatchFinished(_)) => state.store.get_batch(&plan.id, &id).await,
        other => other,
    }
    .map_err(batch_error)?;
    Ok(Json(SinchBatch::from(&record)))
}

/// A batch's delivery report, Sinch's way.
#[derive(Serialize, ToSchema)]
pub struct SinchBatchReport {
    /// `delivery_report_sms`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub batch_id: String,
    /// Recipients the batch resolved to.
    pub total_message_count: i64,
    pub statuses: Vec<SinchReportStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_reference: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SinchReportStatus {
    pub code: i64,
    pub status: String,
    pub count: i64,
    /// With `type=full`: the numbers, E.164.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients: Option<Vec<String>>,
}

/// One recipient's delivery report, Sinch's way.
#[derive(Serialize, ToSchema)]
pub struct SinchRecipientReport {
    /// `recipient_delivery_report_sms`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub batch_id: String,
    pub recipient: String,
    pub code: i64,
    pub status: String,
    pub at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_reference: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SinchReportParams {
    /// `summary` (default: counts per status and code) or `full` (with the numbers).
    #[serde(rename = "type")]
    report_type: Option<String>,
    /// Comma-separated statuses to include (`Delivered,Failed`).
    status: Option<String>,
    /// Comma-separated codes to include.
    code: Option<String>,
}

/// Retrieve a batch delivery report (Sinch)
///
/// The batch's recipients counted by the status and code their provider last reported
/// (`POST /api/delivery-reports`), with the numbers when `type=full`.
#[utoipa::path(
    get, path = "/xms/v1/{service_plan_id}/batches/{batch_id}/delivery_report", tag = TAG,
    params(
        ("service_plan_id" = String, Path, description = "The token's service plan"),
        ("batch_id" = String, Path, description = "The batch's id"),
        SinchReportParams,
    ),
    responses(
        (status = 200, description = "The delivery report", body = SinchBatchReport),
        (status = 400, description = "An unknown type, status or code", body = SinchErrorBody),
        (status = 401, description = "Missing or invalid token", body = SinchErrorBody),
        (status = 403, description = "The path's plan is not the token's", body = SinchErrorBody),
        (status = 404, description = "No such batch", body = SinchErrorBody),
    ),
    security(("bearer" = []))
)]
async fn batch_delivery_report(
    State(state): State<AppState>,
    auth: Result<Authenticated, ApiError>,
    Path((plan_id, batch_id)): Path<(String, String)>,
    Query(params): Query<SinchReportParams>,
) -> SinchResult<Json<SinchBatchReport>> {
    let (plan, _) = authorize(auth, &plan_id)?;
    let id = parse_batch_id(&batch_id)?;
    let full = match params.report_type.as_deref() {
        None | Some("") | Some("summary") => false,
        Some("full") => true,
        Some(_) => {
            return Err(
                ApiError::invalid(FieldError::format("type", "must be summary or full")).into(),
            );
        }
    };
    let statuses = list_of("status", params.status.as_deref(), |text| {
        ReportStatus::parse(text).map(|status| status.as_str().to_owned())
    })?;
    let codes = list_of("code", params.code.as_deref(), |text| {
        text.parse::<i64>().ok()
    })?;
    let record = state
        .store
        .get_batch(&plan.id, &id)
        .await
        .map_err(batch_error)?;
    let groups = state.store.report_groups(&plan.id, &id, full).await?;
    let statuses = groups
        .into_iter()
        .filter(|group| {
            statuses
                .as_ref()
                .is_none_or(|wanted| wanted.contains(&group.status))
        })
        .filter(|group| {
            codes
                .as_ref()
                .is_none_or(|wanted| wanted.contains(&sinch_code(group)))
        })
        .map(|group| SinchReportStatus {
            code: sinch_code(&group),
            count: group.count,
            recipients: full.then_some(group.recipients),
            status: group.status,
        })
        .collect();
    Ok(Json(SinchBatchReport {
        kind: "delivery_report_sms",
        batch_id: id.to_string(),
        total_message_count: record.recipient_count.unwrap_or(0),
        statuses,
        client_reference: record.client_reference,
    }))
}

/// Retrieve a recipient delivery report (Sinch)
///
/// The last delivery report of one recipient of the batch; 404 when there is none.
#[utoipa::path(
    get, path = "/xms/v1/{service_plan_id}/batches/{batch_id}/delivery_report/{recipient_msisdn}", tag = TAG,
    params(
        ("service_plan_id" = String, Path, description = "The token's service plan"),
        ("batch_id" = String, Path, description = "The batch's id"),
        ("recipient_msisdn" = String, Path, description = "The recipient, with or without its +"),
    ),
    responses(
        (status = 200, description = "The recipient's delivery report", body = SinchRecipientReport),
        (status = 401, description = "Missing or invalid token", body = SinchErrorBody),
        (status = 403, description = "The path's plan is not the token's", body = SinchErrorBody),
        (status = 404, description = "No such batch, or no report of this recipient", body = SinchErrorBody),
    ),
    security(("bearer" = []))
)]
async fn recipient_delivery_report(
    State(state): State<AppState>,
    auth: Result<Authenticated, ApiError>,
    Path((plan_id, batch_id, recipient)): Path<(String, String, String)>,
) -> SinchResult<Json<SinchRecipientReport>> {
    let (plan, _) = authorize(auth, &plan_id)?;
    let id = parse_batch_id(&batch_id)?;
    let record = state
        .store
        .get_batch(&plan.id, &id)
        .await
        .map_err(batch_error)?;
    let phone = format!("+{}", recipient.trim_start_matches('+'));
    let report = state
        .store
        .recipient_report(&plan.id, &id, &phone)
        .await?
        .ok_or(ApiError::NotFound("delivery report"))?;
    Ok(Json(SinchRecipientReport {
        kind: "recipient_delivery_report_sms",
        batch_id: id.to_string(),
        recipient: phone,
        code: report.code.unwrap_or(0),
        status: report.status,
        at: report.at.to_rfc3339(),
        client_reference: record.client_reference,
    }))
}

/// Sinch's shape always has a code: a report that came without one counts as 0.
fn sinch_code(group: &ReportGroup) -> i64 {
    group.code.unwrap_or(0)
}

/// A comma-separated filter: the values `parse` takes, or 400 naming `field`.
fn list_of<T>(
    field: &str,
    input: Option<&str>,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<Vec<T>>, ApiError> {
    let Some(input) = input.filter(|input| !input.is_empty()) else {
        return Ok(None);
    };
    input
        .split(',')
        .map(|item| {
            parse(item.trim()).ok_or_else(|| {
                ApiError::invalid(FieldError::format(field, format!("{item:?} is not known")))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}
