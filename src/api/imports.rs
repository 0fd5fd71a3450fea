//! Imports on the native API: upload a file for a preview, commit it with a mapping, follow its
//! progress, download its rejected rows; and the templates.

use std::collections::BTreeMap;
use std::io::Write;

use axum::Json;
use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, Multipart, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, FieldError, Problem};
use super::extract::JsonBody;
use super::limits::{MAX_IMPORT_GROUPS, MAX_REPORTED_ERRORS, MAX_UPLOAD_BYTES};
use super::paging::PageParams;
use crate::domain::contact::CustomFields;
use crate::domain::group::GroupName;
use crate::domain::ids::{GroupId, ImportId, PlanId};
use crate::domain::import::{self, TargetRefusal};
use crate::domain::msisdn::RegionCode;
use crate::domain::text::refuse_nul;
use crate::domain::time::Timestamp;
use crate::import::engine::ImportJob;
use crate::import::mapping::{ColumnTarget, Mapping};
use crate::import::preview::{Preview, preview};
use crate::import::{job, read};

use crate::store::{
    ExistingContacts, ImportRecord, ImportReport, ImportSettings, ImportSource, ImportWrite,
    JobStatus, NewImport, RejectedRow, StoreError,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(upload_import, list_imports))
        // Uploads are streamed to disk under their own limit, not held to the JSON body limit.
        .layer(DefaultBodyLimit::disable())
        .routes(routes!(get_import))
        .routes(routes!(commit_import))
        .routes(routes!(copy_import))
        .routes(routes!(import_errors_csv))
        .routes(routes!(template_csv))
        .routes(routes!(template_xlsx))
}

const TAG: &str = "Imports and exports";

/// The upload form.
#[derive(ToSchema)]
#[allow(dead_code)]
struct UploadForm {
    /// The file: CSV (any common delimiter and encoding), XLSX, XLS, ODS or vCard.
    #[schema(format = Binary, content_media_type = "application/octet-stream")]
    file: String,
    /// For spreadsheets: the sheet to read (the first one by default).
    sheet: Option<String>,
}

/// An import: its preview, and once committed its progress and report.
#[derive(Serialize, ToSchema)]
pub struct ImportView {
    pub id: String,
    /// `previewed` (uploaded, not committed), `running`, `done` or `failed`.
    pub status: String,
    pub file_name: Option<String>,
    pub file_size: i64,
    pub preview: Preview,
    pub progress: ImportProgress,
    /// The commit request, once committed.
    pub settings: Option<ImportSettings>,
    pub report: Option<ImportReport>,
    /// The first rejected rows (every one is in `errors.csv`).
    pub rejected: Vec<RejectedRow>,
    /// Why the import failed (nothing of it was written).
    pub error: Option<String>,
    /// Where the rejected rows can be downloaded as CSV.
    pub errors_csv: String,
    pub created_at: String,
    pub modified_at: String,
    pub completed_at: Option<String>,
}

/// An import as the list shows it: its file, where it is, and what it did.
#[derive(Serialize, ToSchema)]
pub struct ImportSummary {
    pub id: String,
    /// `previewed` (uploaded, not committed), `running`, `done` or `failed`.
    pub status: String,
    pub file_name: Option<String>,
    pub file_size: i64,
    pub progress: ImportProgress,
    pub report: Option<ImportReport>,
    pub error: Option<String>,
    pub created_at: String,
    pub completed_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ImportList {
    /// How many imports the plan has.
    pub count: i64,
    pub page: i64,
    pub page_size: usize,
    /// Newest first.
    pub imports: Vec<ImportSummary>,
}

#[derive(Serialize, ToSchema)]
pub struct ImportProgress {
    pub rows_read: i64,
    pub total_rows: i64,
}

/// `rows_read` is the live count when this instance runs the import: a job running here is never
/// shown as interrupted, even when its claim could not be renewed in time (on SQLite the
/// import's own transaction holds the writer the renewal waits for).
fn view(record: ImportRecord, rows_read: Option<u64>, rejected: Vec<RejectedRow>) -> ImportView {
    let now = Timestamp::now();
    let interrupted = rows_read.is_none() && record.interrupted(now);
    let (status, error) = if interrupted {
        (
            JobStatus::Failed,
            Some(
                "interrupted: the instance running the import stopped before it finished; \
                 nothing was written, commit it again"
                    .to_owned(),
            ),
        )
    } else {
        (record.status, record.error.clone())
    };
    ImportView {
        errors_csv: format!("/api/imports/{}/errors.csv", record.id),
        id: record.id.to_string(),
        status: status.as_str().to_owned(),
        file_name: record.file_name,
        file_size: record.file_size,
        progress: ImportProgress {
            rows_read: rows_read.map_or(record.rows_read, |rows| rows as i64),
            total_rows: record.total_rows,
        },
        preview: record.preview,
        settings: record.settings,
        report: record.report,
        rejected,
        error,
        created_at: record.created_at.to_rfc3339(),
        modified_at: record.modified_at.to_rfc3339(),
        completed_at: record.completed_at.map(|at| at.to_rfc3339()),
    }
}

impl From<ImportView> for ImportSummary {
    fn from(view: ImportView) -> Self {
        Self {
            id: view.id,
            status: view.status,
            file_name: view.file_name,
            file_size: view.file_size,
            progress: view.progress,
            report: view.report,
            error: view.error,
            created_at: view.created_at,
            completed_at: view.completed_at,
        }
    }
}

fn parse_import_id(id: &str) -> Result<ImportId, ApiError> {
    ImportId::parse(id).ok_or(ApiError::NotFound("import"))
}

fn import_error(error: StoreError) -> ApiError {
    match error {
        StoreError::NotFound(_) => ApiError::NotFound("import"),
        other => other.into(),
    }
}

/// Upload a file to import
///
/// The file is read once: the answer gives the format found, the columns with a suggested
/// mapping, the first rows and the number of rows. Nothing is imported until it is committed.
/// Files up to 256 MiB; uploads not committed are removed after a day. Reading is held to caps
/// (at most 10,000,000 rows, 30 s, and for spreadsheets what they may inflate to and hold;
/// docs/security.md lists them): past one the answer is 413 naming the cap and its value.
#[utoipa::path(
    post, path = "/api/imports", tag = TAG,
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    responses(
        (status = 201, description = "The file's preview", body = ImportView),
        (status = 400, description = "No file, or a file that cannot be read (the reason is named)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The file is larger than 256 MiB, or passes one of the caps its reader is held to (rows, inflated size, … named in the error; see docs/security.md)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn upload_import(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    form: Result<Multipart, MultipartRejection>,
) -> Result<(StatusCode, Json<ImportView>), ApiError> {
    // Without a multipart Content-Type and boundary axum would answer in plain text.
    let mut form = form.map_err(|rejection| {
        ApiError::invalid(FieldError::format(
            "file",
            format!(
                "the upload must be a multipart/form-data request: {}",
                rejection.body_text()
            ),
        ))
    })?;
    let bad_form = |error: axum::extract::multipart::MultipartError| {
        ApiError::invalid(FieldError::format(
            "file",
            format!("the upload is not a valid multipart form: {error}"),
        ))
    };
    let mut upload: Option<(tempfile::NamedTempFile, Option<String>, i64)> = None;
    let mut sheet = None;
    while let Some(mut field) = form.next_field().await.map_err(bad_form)? {
        match field.name() {
            Some("file") => {
                let file_name = field.file_name().map(str::to_owned);
                let mut spool = tempfile::NamedTempFile::new().map_err(|error| {
                    tracing::error!(%error, "cannot create a temporary file");
                    ApiError::Internal
                })?;
                let mut size = 0usize;
                while let Some(chunk) = field.chunk().await.map_err(bad_form)? {
                    size += chunk.len();
                    if size > MAX_UPLOAD_BYTES {
                        return Err(ApiError::PayloadTooLarge {
                            limit: MAX_UPLOAD_BYTES,
                        });
                    }
                    spool.write_all(&chunk).map_err(|error| {
                        tracing::error!(%error, "cannot spool an upload");
                        ApiError::Internal
                    })?;
                }
                upload = Some((spool, file_name, size as i64));
            }
            Some("sheet") => {
                let text = field.text().await.map_err(bad_form)?;
                // A form field's value is the one text of a request that reaches no JSON or
                // query check (a part's headers, the file's name among them, cannot hold NUL).
                refuse_nul(&text)
                    .map_err(|error| ApiError::invalid(FieldError::format("sheet", error)))?;
                sheet = Some(text.trim().to_owned()).filter(|s| !s.is_empty());
            }
            _ => {}
        }
    }
    let (spool, file_name, file_size) = upload.ok_or_else(|| {
        ApiError::invalid(FieldError::schema(
            "file",
            "the form has no field named file",
        ))
    })?;
    let path = spool.path().to_owned();
    let name = file_name.clone();
    let chosen = sheet.clone();
    let (detected, preview) =
        tokio::task::spawn_blocking(move || preview(&path, name.as_deref(), chosen.as_deref()))
            .await
            .map_err(|_| ApiError::Internal)?
            .map_err(|error| match error {
                read::ReadError::UnknownSheet { .. } => {
                    ApiError::invalid(FieldError::format("sheet", error))
                }
                read::ReadError::OverCap { .. } => {
                    ApiError::FileOverCap(vec![FieldError::constraint("file", error)])
                }
                other => ApiError::invalid(FieldError::format("file", other)),
            })?;
    let source = ImportSource {
        detected,
        sheet: preview.sheet.clone(),
    };
    let record = state
        .store
        .create_import(
            &plan.id,
            &by,
            NewImport {
                file_name,
                file_size,
                source,
                total_rows: preview.total_rows as i64,
                preview,
            },
            spool.path(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(view(record, None, Vec::new()))))
}

/// List imports
///
/// The plan's imports, newest first, with their outcome.
#[utoipa::path(
    get, path = "/api/imports", tag = TAG,
    params(PageParams),
    responses(
        (status = 200, description = "A page of imports", body = ImportList),
        (status = 400, description = "A bad page or page size", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_imports(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Query(params): Query<PageParams>,
) -> Result<Json<ImportList>, ApiError> {
    let (page, offset, limit) = params.window()?;
    let (records, count) = state.store.list_imports(&plan.id, offset, limit).await?;
    let imports: Vec<ImportSummary> = records
        .into_iter()
        .map(|record| {
            let live = state.jobs.rows_read(record.id.as_str());
            view(record, live, Vec::new()).into()
        })
        .collect();
    Ok(Json(ImportList {
        count,
        page,
        page_size: imports.len(),
        imports,
    }))
}

/// Import a file again
///
/// A new import of the file an earlier import (done or failed) was uploaded with, to commit with
/// another mapping, region or groups; no new upload is needed while the file is kept (a day).
#[utoipa::path(
    post, path = "/api/imports/{id}/copy", tag = TAG,
    params(("id" = String, Path, description = "The earlier import's id")),
    responses(
        (status = 201, description = "The new import, previewed", body = ImportView),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such import in this plan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The uploaded file is no longer kept", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn copy_import(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<ImportView>), ApiError> {
    let id = parse_import_id(&id)?;
    let record = state
        .store
        .copy_import(&plan.id, &by, &id)
        .await
        .map_err(import_error)?;
    Ok((StatusCode::CREATED, Json(view(record, None, Vec::new()))))
}

/// Get an import
///
/// Its preview; once committed, its progress (rows read of the total) and, when done, its
/// report and the first rejected rows.
#[utoipa::path(
    get, path = "/api/imports/{id}", tag = TAG,
    params(("id" = String, Path, description = "The import's id")),
    responses(
        (status = 200, description = "The import", body = ImportView),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such import in this plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn get_import(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Path(id): Path<String>,
) -> Result<Json<ImportView>, ApiError> {
    let id = parse_import_id(&id)?;
    let record = state
        .store
        .get_import(&plan.id, &id)
        .await
        .map_err(import_error)?;
    let rejected = if record.status == JobStatus::Done {
        state
            .store
            .import_errors(&plan.id, &id, 0, MAX_REPORTED_ERRORS as i64)
            .await?
    } else {
        Vec::new()
    };
    let live = state.jobs.rows_read(id.as_str());
    Ok(Json(view(record, live, rejected)))
}

/// Commit an import
///
/// Starts importing the file with this mapping; follow it with `GET /api/imports/{id}`. The
/// import is all or nothing: every valid row is written in one transaction with the report,
/// or (on failure, or if the server stops) nothing is. An import committed already is 409;
/// one that failed may be committed again.
#[utoipa::path(
    post, path = "/api/imports/{id}/commit", tag = TAG,
    params(("id" = String, Path, description = "The import's id")),
    request_body = ImportSettings,
    responses(
        (status = 202, description = "The import, running", body = ImportView),
        (status = 400, description = "A bad mapping, region or group (the field is named)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such import in this plan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The import is running or done already", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn commit_import(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ImportSettings>,
) -> Result<(StatusCode, Json<ImportView>), ApiError> {
    let id = parse_import_id(&id)?;
    let record = state
        .store
        .get_import(&plan.id, &id)
        .await
        .map_err(import_error)?;
    if state.jobs.rows_read(id.as_str()).is_some() {
        return Err(ApiError::Conflict(
            "the import is already being committed".into(),
        ));
    }
    let ImportRecord {
        source, preview, ..
    } = record;
    let headers: Vec<String> = preview.columns.iter().map(|c| c.name.clone()).collect();
    let mapping = commit_mapping(&headers, &preview, body.mapping.as_ref())?;
    let region = match body
        .default_region
        .as_deref()
        .or(plan.default_region.as_deref())
    {
        Some(code) => Some(
            RegionCode::parse(code)
                .map_err(|error| ApiError::invalid(FieldError::format("default_region", error)))?,
        ),
        None => None,
    };
    let mut errors = Vec::new();
    let groups: Vec<GroupId> = body
        .groups
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(index, text)| {
            GroupId::parse(text).or_else(|| {
                errors.push(FieldError::format(
                    format!("groups[{index}]"),
                    "is not a group id",
                ));
                None
            })
        })
        .collect();
    let group_names: Vec<GroupName> = body
        .group_names
        .iter()
        .flatten()
        .enumerate()
        .filter_map(|(index, text)| {
            GroupName::parse(text, GroupName::NATIVE_MAX_CHARS)
                .map_err(|error| {
                    errors.push(FieldError::constraint(
                        format!("group_names[{index}]"),
                        error,
                    ))
                })
                .ok()
        })
        .collect();
    for (index, id) in groups.iter().enumerate() {
        match state.store.get_group(&plan.id, id).await {
            Ok(group) => match import::check_target(group.status, group.rule.is_some()) {
                Ok(()) => {}
                Err(refusal) => errors.push(FieldError::constraint(
                    format!("groups[{index}]"),
                    match refusal {
                        TargetRefusal::Deleted => format!("group {id} is deleted"),
                        TargetRefusal::Smart => {
                            format!("group {id} is a smart group: its members follow its rule")
                        }
                    },
                )),
            },
            Err(StoreError::NotFound(_)) => errors.push(FieldError::constraint(
                format!("groups[{index}]"),
                format!("no group with id {id}"),
            )),
            Err(other) => return Err(other.into()),
        }
    }
    if groups.len() + group_names.len() > MAX_IMPORT_GROUPS {
        errors.push(FieldError::constraint(
            "groups",
            format!("at most {MAX_IMPORT_GROUPS} groups (with group_names) per import"),
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let lease = state.job_lease();
    let started = state
        .store
        .start_import(&plan.id, &id, &body, &lease)
        .await
        .map_err(import_error)?;
    let attempt = started.attempt;
    let import = ImportJob {
        plan: plan.id.clone(),
        // Replaced by the spooled copy of the upload when the job starts.
        file: std::path::PathBuf::new(),
        detected: source.detected,
        sheet: source.sheet,
        mapping,
        region,
        write: ImportWrite {
            mode: body.mode.unwrap_or(ExistingContacts::Update),
            groups,
            group_names,
            job: Some((id.clone(), lease.clone(), attempt)),
            by: by.clone(),
            confirm: body.confirm.unwrap_or(false),
        },
        progress: Default::default(),
        on_rejected: None,
    };
    job::spawn(
        state.store.clone(),
        state.jobs.clone(),
        import,
        id,
        attempt,
        lease,
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(view(started, Some(0), Vec::new())),
    ))
}

/// The mapping of a commit: the client's (columns it does not name are ignored), or the
/// preview's suggestion.
fn commit_mapping(
    headers: &[String],
    preview: &Preview,
    given: Option<&BTreeMap<String, String>>,
) -> Result<Mapping, ApiError> {
    let targets = match given {
        None => preview
            .columns
            .iter()
            .map(|column| ColumnTarget::parse(&column.suggested).unwrap_or(ColumnTarget::Ignore))
            .collect(),
        Some(given) => {
            let mut targets = vec![ColumnTarget::Ignore; headers.len()];
            let mut errors = Vec::new();
            for (column, target) in given {
                let field = format!("mapping.{column}");
                let Some(index) = headers.iter().position(|header| header == column) else {
                    errors.push(FieldError::constraint(
                        field,
                        format!(
                            "the file has no such column (its columns: {})",
                            headers.join(", ")
                        ),
                    ));
                    continue;
                };
                match ColumnTarget::parse(target) {
                    Ok(target) => targets[index] = target,
                    Err(error) => errors.push(FieldError::format(field, error)),
                }
            }
            if !errors.is_empty() {
                return Err(ApiError::Invalid(errors));
            }
            targets
        }
    };
    let mapping = Mapping::new(headers, targets)
        .map_err(|error| ApiError::invalid(FieldError::constraint("mapping", error)))?;
    if mapping.custom_fields().len() > CustomFields::MAX_FIELDS {
        return Err(ApiError::invalid(FieldError::constraint(
            "mapping",
            format!("at most {} custom fields", CustomFields::MAX_FIELDS),
        )));
    }
    Ok(mapping)
}

/// Download an import's rejected rows
///
/// CSV, one line per rejected row in row order (empty until the import is done): the columns
/// `Rejected row` and `Rejected because`, then the row's own cells under the file's headers, so
/// that the rows can be corrected and uploaded again (the suggested mapping ignores the first
/// two). Once the uploaded file is no longer kept (a day), the row numbers and reasons only.
#[utoipa::path(
    get, path = "/api/imports/{id}/errors.csv", tag = TAG,
    params(("id" = String, Path, description = "The import's id")),
    responses(
        (status = 200, description = "The rejected rows", content_type = "text/csv", body = String),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such import in this plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn import_errors_csv(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = parse_import_id(&id)?;
    let record = state
        .store
        .get_import(&plan.id, &id)
        .await
        .map_err(import_error)?;
    let csv = |body: Body| {
        Response::builder()
            .header(header::CONTENT_TYPE, "text/csv; charset=utf-8")
            .header(
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"import-errors.csv\"",
            )
            .body(body)
            .map_err(|_| ApiError::Internal)
    };
    // The file is read again only when there are rows to take from it.
    let left_out = record
        .report
        .as_ref()
        .is_some_and(|report| report.invalid + report.duplicates > 0);
    if record.status == JobStatus::Done
        && left_out
        && let Some(file) = kept_file(&state, &plan.id, &record).await?
        && let Some(opened) = crate::import::rejected::open(file, record.source.clone()).await
    {
        return csv(Body::from_stream(crate::import::rejected::stream(
            state.store.clone(),
            plan.id.clone(),
            id,
            opened,
        )));
    }
    const PAGE: i64 = 5000;
    let store = state.store.clone();
    let plan_id = plan.id.clone();
    let pages = futures::stream::unfold(Some(0i64), move |after| {
        let store = store.clone();
        let plan_id = plan_id.clone();
        let id = id.clone();
        async move {
            let after = after?;
            match store.import_errors(&plan_id, &id, after, PAGE).await {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let next = rows.last().map(|row| row.row as i64);
                    let more = rows.len() as i64 == PAGE;
                    let mut writer = csv::Writer::from_writer(Vec::new());
                    for row in &rows {
                        let _ = writer.write_record([row.row.to_string(), row.reason.clone()]);
                    }
                    let bytes = writer.into_inner().unwrap_or_default();
                    Some((Ok(axum::body::Bytes::from(bytes)), next.filter(|_| more)))
                }
                Err(error) => {
                    tracing::error!(%error, "import errors stream failed");
                    Some((Err(std::io::Error::other("storage failure")), None))
                }
            }
        }
    });
    let header_line = futures::stream::once(async {
        let line = format!("{}\n", crate::import::rejected::REPORT_COLUMNS.join(","));
        Ok(axum::body::Bytes::from(line))
    });
    csv(Body::from_stream(futures::StreamExt::chain(
        header_line,
        pages,
    )))
}

/// A copy of the import's uploaded file, or `None` once it is no longer kept.
async fn kept_file(
    state: &AppState,
    plan: &PlanId,
    record: &ImportRecord,
) -> Result<Option<tempfile::NamedTempFile>, ApiError> {
    let file = tempfile::NamedTempFile::new().map_err(|error| {
        tracing::error!(%error, "no temporary file for the rejected rows");
        ApiError::Internal
    })?;
    state
        .store
        .import_file(plan, &record.id, file.path())
        .await?;
    let size = tokio::fs::metadata(file.path())
        .await
        .map_err(|_| ApiError::Internal)?
        .len();
    Ok((size > 0 && size as i64 == record.file_size).then_some(file))
}

fn attachment(content_type: &str, file_name: &str, bytes: Vec<u8>) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file_name}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// Download the CSV import template
///
/// The columns an import reads (and an export writes), with two example rows.
#[utoipa::path(
    get, path = "/api/imports/templates/contacts.csv", tag = TAG,
    responses(
        (status = 200, description = "The template", content_type = "text/csv", body = String),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn template_csv(_plan: Authenticated) -> Response {
    attachment(
        "text/csv; charset=utf-8",
        "contacts.csv",
        crate::export::csv_template(),
    )
}

/// Download the XLSX import template
#[utoipa::path(
    get, path = "/api/imports/templates/contacts.xlsx", tag = TAG,
    responses(
        (status = 200, description = "The template", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn template_xlsx(_plan: Authenticated) -> Result<Response, ApiError> {
    let bytes = crate::export::xlsx_template().map_err(|error| {
        tracing::error!(%error, "cannot build the XLSX template");
        ApiError::Internal
    })?;
    Ok(attachment(
        crate::export::ExportFormat::Xlsx.content_type(),
        "contacts.xlsx",
        bytes,
    ))
}
