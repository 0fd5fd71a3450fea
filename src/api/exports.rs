//! Exports on the native API: request one, follow its progress, download it.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, FieldError, Problem};
use super::extract::JsonBody;
use super::limits::MAX_IDS_PER_REQUEST;
use super::paging::PageParams;
use super::validate::Validator;
use crate::domain::filter::FilterExpr;
use crate::domain::group::GroupStatus;
use crate::domain::ids::{ContactId, ExportId, GroupId};
use crate::domain::time::Timestamp;
use crate::export::ExportFormat;
use crate::store::{ContactQuery, ExportRecord, ExportRequest, JobStatus, NewExport, StoreError};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_export, list_exports))
        .routes(routes!(get_export))
        .routes(routes!(download_export))
}

const TAG: &str = "Imports and exports";

#[derive(Serialize, ToSchema)]
pub struct ExportView {
    pub id: String,
    /// `running`, `done` or `failed`.
    pub status: String,
    pub format: String,
    /// The request's selection (in a list, without its `contact_ids`).
    pub selection: ExportRequest,
    /// How many contacts `selection.contact_ids` named; absent when it named none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact_count: Option<usize>,
    pub progress: ExportProgress,
    /// Bytes, once done.
    pub file_size: Option<i64>,
    pub error: Option<String>,
    /// Where the file can be downloaded once done.
    pub download: String,
    pub created_at: String,
    pub completed_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ExportList {
    /// How many exports the plan has.
    pub count: i64,
    pub page: i64,
    pub page_size: usize,
    /// Newest first.
    pub exports: Vec<ExportView>,
}

#[derive(Serialize, ToSchema)]
pub struct ExportProgress {
    pub rows_written: i64,
    pub total_rows: Option<i64>,
}

/// `live` is the count of rows written when this instance runs the export (never shown as
/// interrupted then).
fn view(record: ExportRecord, live: Option<u64>) -> ExportView {
    let (status, error) = if live.is_none() && record.interrupted(Timestamp::now()) {
        (
            JobStatus::Failed,
            Some("interrupted: the instance writing the export stopped; request it again".into()),
        )
    } else {
        (record.status, record.error.clone())
    };
    ExportView {
        download: format!("/api/exports/{}/download", record.id),
        id: record.id.to_string(),
        status: status.as_str().to_owned(),
        format: record.format,
        contact_count: record.selection.contact_ids.as_ref().map(Vec::len),
        selection: record.selection,
        progress: ExportProgress {
            rows_written: live.map_or(record.rows_written, |rows| rows as i64),
            total_rows: record.total_rows,
        },
        file_size: record.file_size,
        error,
        created_at: record.created_at.to_rfc3339(),
        completed_at: record.completed_at.map(|at| at.to_rfc3339()),
    }
}

fn parse_export_id(id: &str) -> Result<ExportId, ApiError> {
    ExportId::parse(id).ok_or(ApiError::NotFound("export"))
}

fn export_error(error: StoreError) -> ApiError {
    match error {
        StoreError::NotFound(_) => ApiError::NotFound("export"),
        other => other.into(),
    }
}

/// Request an export
///
/// Exports all contacts, a group's effective members, or the contacts matching a filter, with
/// their groups and opt-out state, in the columns an import reads back. It runs in the
/// background: follow it with `GET /api/exports/{id}` and download it when `done`. Exports are
/// kept for a day.
#[utoipa::path(
    post, path = "/api/exports", tag = TAG,
    request_body = ExportRequest,
    responses(
        (status = 202, description = "The export, running", body = ExportView),
        (status = 400, description = "A bad format, group or filter (the field is named)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn create_export(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    JsonBody(body): JsonBody<ExportRequest>,
) -> Result<(StatusCode, Json<ExportView>), ApiError> {
    let format = body.format.unwrap_or(ExportFormat::Csv);
    let group = match body.group_id.as_deref() {
        Some(text) => {
            let unknown = || {
                ApiError::invalid(FieldError::constraint(
                    "group_id",
                    format!("no group with id {text}"),
                ))
            };
            let id = GroupId::parse(text).ok_or_else(unknown)?;
            match state.store.get_group(&plan.id, &id).await {
                Ok(group) if group.status == GroupStatus::Active => Some(id),
                Ok(_) | Err(StoreError::NotFound(_)) => return Err(unknown()),
                Err(other) => return Err(other.into()),
            }
        }
        None => None,
    };
    let filter = match body.q.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
        Some(text) => Some(
            FilterExpr::parse(text)
                .map_err(|error| ApiError::invalid(FieldError::format("q", error)))?,
        ),
        None => None,
    };
    let mut check = Validator::new();
    let ids = body.contact_ids.as_ref().map(|ids| {
        super::contacts::parse_ids(
            &mut check,
            "contact_ids",
            ids,
            MAX_IDS_PER_REQUEST,
            ContactId::parse,
        )
    });
    check.finish()?;
    let mut query = ContactQuery::selection(group, filter);
    query.name_prefix = body
        .name
        .as_deref()
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned);
    query.phone_prefix = body
        .phone
        .as_deref()
        .filter(|phone| !phone.trim().is_empty())
        .map(super::contacts::phone_prefix);
    query.ids = ids;
    query.with_total = true;
    let total = state
        .store
        .list_contacts(&plan.id, &query)
        .await?
        .total
        .unwrap_or(0);
    query.with_total = false;
    if let Some(max) = format.max_contacts()
        && total as u64 > max
    {
        return Err(ApiError::invalid(FieldError::constraint(
            "format",
            format!(
                "an XLSX sheet holds at most {max} contacts and this selection has {total}: use csv"
            ),
        )));
    }
    let lease = state.job_lease();
    let record = state
        .store
        .create_export(
            &plan.id,
            &by,
            NewExport {
                format: format.as_str().to_owned(),
                selection: body,
                total_rows: total,
            },
            &lease,
        )
        .await?;
    crate::export::job::spawn(
        state.store.clone(),
        state.jobs.clone(),
        plan.id.clone(),
        record.id.clone(),
        query,
        format,
        lease,
    );
    Ok((StatusCode::ACCEPTED, Json(view(record, Some(0)))))
}

/// List exports
///
/// The plan's exports, newest first, with their outcome; each file can be downloaded for a day.
#[utoipa::path(
    get, path = "/api/exports", tag = TAG,
    params(PageParams),
    responses(
        (status = 200, description = "A page of exports", body = ExportList),
        (status = 400, description = "A bad page or page size", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_exports(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Query(params): Query<PageParams>,
) -> Result<Json<ExportList>, ApiError> {
    let (page, offset, limit) = params.window()?;
    let (records, count) = state.store.list_exports(&plan.id, offset, limit).await?;
    let exports: Vec<ExportView> = records
        .into_iter()
        .map(|record| {
            let live = state.jobs.rows_read(record.id.as_str());
            let mut listed = view(record, live);
            // Up to 10,000 ids an export: a list says how many, its own page has them.
            listed.selection.contact_ids = None;
            listed
        })
        .collect();
    Ok(Json(ExportList {
        count,
        page,
        page_size: exports.len(),
        exports,
    }))
}

/// Get an export
#[utoipa::path(
    get, path = "/api/exports/{id}", tag = TAG,
    params(("id" = String, Path, description = "The export's id")),
    responses(
        (status = 200, description = "The export", body = ExportView),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such export in this plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn get_export(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<ExportView>, ApiError> {
    let id = parse_export_id(&id)?;
    let record = state
        .store
        .get_export(&plan.id, &id)
        .await
        .map_err(export_error)?;
    let live = state.jobs.rows_read(id.as_str());
    Ok(Json(view(record, live)))
}

/// Download an export
///
/// The file, streamed. 409 until the export is done.
#[utoipa::path(
    get, path = "/api/exports/{id}/download", tag = TAG,
    params(("id" = String, Path, description = "The export's id")),
    responses(
        (status = 200, description = "The file, in the export's format", content(
            (String = "text/csv"),
            (Vec<u8> = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (String = "text/vcard"),
        )),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such export in this plan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The export is not done", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn download_export(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_export_id(&id)?;
    let record = state
        .store
        .get_export(&plan.id, &id)
        .await
        .map_err(export_error)?;
    if record.status != JobStatus::Done {
        return Err(ApiError::Conflict(format!(
            "the export is {}, not done",
            view(record, None).status
        )));
    }
    let format = ExportFormat::parse(&record.format).unwrap_or(ExportFormat::Csv);
    let store = state.store.clone();
    let plan_id = plan.id.clone();
    let file_name = format!("contacts-{}.{}", id, format.as_str());
    let pieces = futures::stream::unfold(Some(0i64), move |seq| {
        let store = store.clone();
        let plan_id = plan_id.clone();
        let id = id.clone();
        async move {
            let seq = seq?;
            match store.export_piece(&plan_id, &id, seq).await {
                Ok(Some(piece)) => Some((Ok(axum::body::Bytes::from(piece)), Some(seq + 1))),
                Ok(None) => None,
                Err(error) => {
                    tracing::error!(%error, "export download failed");
                    Some((Err(std::io::Error::other("storage failure")), None))
                }
            }
        }
    });
    let mut response = Response::builder()
        .header(header::CONTENT_TYPE, format.content_type())
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file_name}\""),
        );
    if let Some(size) = record.file_size {
        response = response.header(header::CONTENT_LENGTH, size);
    }
    response
        .body(Body::from_stream(pieces))
        .map_err(|_| ApiError::Internal)
}
