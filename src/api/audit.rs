//! The audit log, read by a plan's admins: every change made through the API, the web page or
//! the command line, newest first.

use axum::Json;
use axum::extract::{Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, FieldError, Problem};
use super::limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use super::paging::bounded_number;
use crate::domain::time::Timestamp;
use crate::store::{AuditEntry, AuditQuery, Channel};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

const TAG: &str = "Audit";

/// The longest operation or object filter.
const MAX_FILTER_CHARS: usize = 64;

/// One change, as the audit log records it. Personal data (numbers, names, addresses of
/// contacts) is never in it: fields are named, not shown, and contacts are named by id.
#[derive(Serialize, ToSchema)]
pub struct AuditRecord {
    pub at: String,
    /// `api`, `page` (the web page) or `cli` (the `roster` command on the server).
    pub channel: String,
    /// The token of the request or of the web session: its id, as `GET /api/tokens` lists it.
    pub token_id: Option<String>,
    pub token_name: Option<String>,
    /// The client's address (see `ROSTER_CLIENT_ADDRESS_HEADER` behind a proxy).
    pub address: Option<String>,
    /// What was done, e.g. `group.update`, `contact.delete`, `membership.add`.
    pub operation: String,
    /// The ids changed (groups, contacts, batches, imports, …); at most 100, with
    /// `summary.objects_total` counting them all when there were more.
    pub objects: Vec<String>,
    /// Counts and names of what changed, e.g. `{"fields": ["email"]}`.
    #[schema(value_type = Object)]
    pub summary: serde_json::Value,
}

impl From<AuditEntry> for AuditRecord {
    fn from(entry: AuditEntry) -> Self {
        Self {
            at: entry.at.to_rfc3339(),
            channel: entry.channel.as_str().to_owned(),
            token_id: entry.token_id,
            token_name: entry.token_name,
            address: entry.address,
            operation: entry.operation,
            objects: entry.objects,
            summary: entry.summary,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct AuditList {
    pub entries: Vec<AuditRecord>,
    /// Pass as `next` to get the following (older) page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// An operation (`group.update`), or a kind of object (`group`) for all its operations.
    operation: Option<String>,
    /// Only changes of this object (a group's, contact's, batch's, import's … id).
    object: Option<String>,
    /// Only changes made with this token, by name or id.
    token: Option<String>,
    /// `api`, `page` or `cli`.
    channel: Option<String>,
    /// Only changes at or after this time (RFC 3339).
    since: Option<String>,
    /// Only changes before this time (RFC 3339).
    until: Option<String>,
    /// Entries per page, 1 to 1000 (default 100).
    limit: Option<String>,
    /// The `next` value of the previous page.
    next: Option<String>,
}

/// List the audit log
///
/// Every change made through the API, the web page or the command line, newest first: when,
/// through which channel and token, from which address, the operation, the ids changed and a
/// summary of names and counts. Rows are kept for `ROSTER_AUDIT_RETENTION_DAYS` (365 by
/// default). Needs `admin`.
#[utoipa::path(
    get, path = "/api/audit", tag = TAG,
    params(AuditParams),
    responses(
        (status = 200, description = "A page of the audit log", body = AuditList),
        (status = 400, description = "A query parameter is invalid (it is named)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token does not have the scope admin", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_audit(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Query(params): Query<AuditParams>,
) -> Result<Json<AuditList>, ApiError> {
    let query = AuditQuery {
        operation: filter_text("operation", params.operation, |c| {
            c.is_ascii_lowercase() || c == '.' || c == '_'
        })?,
        object: filter_text("object", params.object, |c| c.is_ascii_alphanumeric())?,
        token: params.token.filter(|token| !token.is_empty()),
        channel: params
            .channel
            .map(|channel| {
                Channel::parse(&channel).ok_or_else(|| {
                    ApiError::invalid(FieldError::format("channel", "must be api, page or cli"))
                })
            })
            .transpose()?,
        since: time("since", params.since)?,
        until: time("until", params.until)?,
        after: params.next,
        limit: bounded_number("limit", params.limit.as_deref(), 1, MAX_PAGE_SIZE)?
            .unwrap_or(DEFAULT_PAGE_SIZE),
    };
    let page = state.store.audit_log(&plan.id, &query).await?;
    Ok(Json(AuditList {
        entries: page.entries.into_iter().map(AuditRecord::from).collect(),
        next: page.next,
    }))
}

/// A filter made only of the characters `allowed` lets through, at most
/// [`MAX_FILTER_CHARS`] of them.
fn filter_text(
    field: &str,
    value: Option<String>,
    allowed: impl Fn(char) -> bool,
) -> Result<Option<String>, ApiError> {
    match value {
        Some(text) if text.is_empty() => Ok(None),
        Some(text) if text.chars().count() <= MAX_FILTER_CHARS && text.chars().all(allowed) => {
            Ok(Some(text))
        }
        Some(_) => Err(ApiError::invalid(FieldError::format(
            field,
            match field {
                "object" => "must be an id: letters and digits",
                _ => "must be an operation such as group.update, or a kind such as group",
            },
        ))),
        None => Ok(None),
    }
}

fn time(field: &str, value: Option<String>) -> Result<Option<Timestamp>, ApiError> {
    value
        .filter(|text| !text.is_empty())
        .map(|text| {
            Timestamp::parse_rfc3339(&text).map_err(|_| {
                ApiError::invalid(FieldError::format(
                    field,
                    "must be a time such as 2026-12-05T10:00:00Z",
                ))
            })
        })
        .transpose()
}
