//! The Sinch-compatible Groups API under `/xms/v1/{service_plan_id}/groups`: the same operations
//! as the native API, with Sinch's field names, status codes and error bodies, so that Sinch's own
//! SDKs work when pointed at Roster.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, FieldError, SinchError, SinchErrorBody};
use super::extract::JsonBody;
use super::limits::{
    SINCH_DEFAULT_PAGE_SIZE, SINCH_MAX_CHILD_GROUPS, SINCH_MAX_NUMBERS_PER_REQUEST,
    SINCH_MAX_PAGE_SIZE,
};
use super::validate::{AutoUpdateBody, Validator, nullable};
use crate::domain::algebra::MembershipChange;
use crate::domain::auto_update::AutoUpdate;
use crate::domain::group::{GroupName, GroupStatus};
use crate::domain::ids::GroupId;
use crate::store::{
    Actor, GroupDefinition, GroupOrder, GroupQuery, GroupRecord, GroupUpdate, Plan, StatusFilter,
    Window,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_groups, create_group))
        .routes(routes!(
            retrieve_group,
            replace_group,
            update_group,
            delete_group
        ))
        .routes(routes!(group_members))
}

const TAG: &str = "Sinch-compatible Groups";

/// A group as Sinch shows it: null fields are left out.
#[derive(Serialize, ToSchema)]
pub struct SinchGroup {
    #[schema(example = "01JD4Q3T5V8Z9X2W1Y0A7B6C5D")]
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The number of distinct members, child groups' included.
    pub size: i64,
    #[schema(example = "2026-11-23T05:41:50.123Z")]
    pub created_at: String,
    #[schema(example = "2026-11-23T05:41:50.123Z")]
    pub modified_at: String,
    pub child_groups: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_update: Option<AutoUpdateBody>,
}

impl From<&GroupRecord> for SinchGroup {
    fn from(record: &GroupRecord) -> Self {
        SinchGroup {
            id: record.id.to_string(),
            name: record.name.clone(),
            size: record.size,
            created_at: record.created_at.to_rfc3339(),
            modified_at: record.modified_at.to_rfc3339(),
            child_groups: record
                .child_groups
                .iter()
                .map(ToString::to_string)
                .collect(),
            auto_update: record.auto_update.as_ref().map(AutoUpdateBody::from),
        }
    }
}

/// The body of a create or replace. Unknown fields are ignored, as Sinch does.
#[derive(Deserialize, ToSchema)]
pub struct SinchGroupBody {
    /// At most 20 characters.
    #[serde(default)]
    pub name: Option<String>,
    /// E.164 numbers; at most 10,000.
    #[serde(default)]
    pub members: Option<Vec<String>>,
    /// At most 10 group ids.
    #[serde(default)]
    pub child_groups: Option<Vec<String>>,
    #[serde(default)]
    pub auto_update: Option<AutoUpdateBody>,
}

/// The body of an update. `null` counts as absent for every field but `name`, where it removes
/// the name (Sinch's Python SDK sends every unset field as `null`).
#[derive(Deserialize, ToSchema)]
pub struct SinchGroupUpdate {
    #[serde(default)]
    pub add: Option<Vec<String>>,
    #[serde(default)]
    pub remove: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default)]
    pub add_from_group: Option<String>,
    #[serde(default)]
    pub remove_from_group: Option<String>,
    #[serde(default)]
    pub auto_update: Option<AutoUpdateBody>,
}

#[derive(Serialize, ToSchema)]
pub struct SinchGroupList {
    /// How many groups the plan has.
    pub count: i64,
    /// The page returned, from 0.
    pub page: i64,
    /// How many groups this page holds.
    pub page_size: usize,
    /// Newest first.
    pub groups: Vec<SinchGroup>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SinchListParams {
    /// The page to return, from 0.
    page: Option<String>,
    /// Groups per page, 1 to 100 (default 30).
    page_size: Option<String>,
}

pub type SinchResult<T> = Result<T, SinchError>;

/// Authenticates the request and checks the path's plan is the token's.
pub fn authorize(
    auth: Result<Authenticated, ApiError>,
    plan_id: &str,
) -> SinchResult<(Plan, Actor)> {
    let Authenticated(plan, by) = auth?;
    if plan.id.as_str() != plan_id {
        return Err(ApiError::ForeignPlan.into());
    }
    Ok((plan, by))
}

/// A group visible on this surface: deleted groups are gone, as on Sinch.
async fn visible_group(state: &AppState, plan: &Plan, id: &str) -> SinchResult<GroupRecord> {
    let id = GroupId::parse(id).ok_or(ApiError::NotFound("group"))?;
    let record = state.store.get_group(&plan.id, &id).await?;
    if record.status == GroupStatus::Deleted {
        return Err(ApiError::NotFound("group").into());
    }
    Ok(record)
}

/// Sinch's `auto_update` has no double opt-in: a Sinch client that writes a group's keywords
/// back (a replace, or an update naming `auto_update`) keeps the double opt-in set on Roster's
/// own routes, unless its body names one itself.
fn keep_double_opt_in(written: Option<&mut AutoUpdate>, existing: &GroupRecord) {
    if let (Some(written), Some(before)) = (written, existing.auto_update.as_ref())
        && written.double_opt_in.is_none()
    {
        written.double_opt_in = before.double_opt_in.clone();
    }
}

fn validate_definition(
    body: &SinchGroupBody,
) -> Result<(GroupDefinition, super::validate::GroupFields), ApiError> {
    let mut check = Validator::new();
    let name = body
        .name
        .as_deref()
        .and_then(|name| check.name("name", name, GroupName::SINCH_MAX_CHARS));
    let members = check.numbers(
        "members",
        body.members.as_deref().unwrap_or_default(),
        None,
        SINCH_MAX_NUMBERS_PER_REQUEST,
    );
    let child_groups = check.group_ids(
        "child_groups",
        body.child_groups.as_deref().unwrap_or_default(),
        SINCH_MAX_CHILD_GROUPS,
    );
    let auto_update = body
        .auto_update
        .as_ref()
        .and_then(|value| check.auto_update("auto_update", value));
    let fields = check.finish()?;
    Ok((
        GroupDefinition {
            name,
            description: None,
            members,
            child_groups,
            auto_update,
            rule: None,
        },
        fields,
    ))
}

/// List groups (Sinch)
///
/// Newest first, `page` from 0.
#[utoipa::path(
    get, path = "/xms/v1/{service_plan_id}/groups", tag = TAG,
    params(("service_plan_id" = String, Path, description = "The token's service plan"), SinchListParams),
    responses(
        (status = 200, description = "A page of groups", body = SinchGroupList),
        (status = 400, description = "Invalid paging", body = SinchErrorBody),
        (status = 401, description = "Missing or invalid token", body = SinchErrorBody),
        (status = 403, description = "The path's plan is not the token's", body = SinchErrorBody),
    ),
    security(("bearer" = []))
)]
async fn list_groups(
    State(state): State<AppState>,
    auth: Result<Authenticated, ApiError>,
    Path(plan_id): Path<String>,
    Query(params): Query<SinchListParams>,
) -> SinchResult<Json<SinchGroupList>> {
    let (plan, _) = authorize(auth, &plan_id)?;
    let (page, page_size) = sinch_page(params.page.as_deref(), params.page_size.as_deref())?;
    let query = GroupQuery {
        status: StatusFilter::Active,
        name_contains: None,
        child_of: None,
        order: GroupOrder::CreatedAt,
        descending: true,
        window: Window::Offset {
            offset: page * page_size,
            limit: page_size,
        },
    };
    let result = state.store.list_groups(&plan.id, &query).await?;
    Ok(Json(SinchGroupList {
        count: result.total,
        page,
        page_size: result.groups.len(),
        groups: result.groups.iter().map(SinchGroup::from).collect(),
    }))
}

/// Sinch's paging: `page` from 0 and `page_size` from 1 to 100 (default 30).
pub fn sinch_page(page: Option<&str>, page_size: Option<&str>) -> Result<(i64, i64), ApiError> {
    let number = |field: &str, value: Option<&str>, min: i64, max: i64, default: i64| match value {
        None => Ok(default),
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(FieldError::constraint(
                field,
                format!("must be a whole number from {min} to {max}"),
            ))),
        },
    };
    let page = number("page", page, 0, i64::MAX / SINCH_MAX_PAGE_SIZE, 0)?;
    let page_size = number(
        "page_size",
        page_size,
        1,
        SINCH_MAX_PAGE_SIZE,
        SINCH_DEFAULT_PAGE_SIZE,
    )?;
    Ok((page, page_size))
}

/// Create a group (Sinch)
#[utoipa::path(
    post, path = "/xms/v1/{service_plan_id}/groups", tag = TAG,
    params(("service_plan_id" = String, Path, description = "The token's service plan")),
    request_body = SinchGroupBody,
    responses(
        (status = 201, description = "The group", body = SinchGroup),
        (status = 400, description = "Invalid JSON, number or constraint", body = SinchErrorBody),
        (status = 401, description = "Missing or invalid token", body = SinchErrorBody),
        (status = 403, description = "The path's plan is not the token's, or a child group is unknown (`unknown_group`)", body = SinchErrorBody),
    ),
    security(("bearer" = []))
)]
async fn create_group(
    State(state): State<AppState>,
    auth: Result<Authenticated, ApiError>,
    Path(plan_id): Path<String>,
    body: Result<JsonBody<SinchGroupBody>, ApiError>,
) -> SinchResult<Response> {
    let (plan, by) = authorize(auth, &plan_id)?;
    let JsonBody(body) = body?;
    let (definition, fields) = validate_definition(&body)?;
    let record = state
        .store
        .create_group(&plan.id, &by, definition)
        .await
        .map_err(|error| fields.explain(error))?;
    Ok((StatusCode::CREATED, Json(SinchGroup::from(&record))).into_response())
}

/// Retrieve a group (Sinch)
#[utoipa::path(
    get, path = "/xms/v1/{service_plan_id}/groups/{group_id}", tag = TAG,
    params(
        ("service_plan_id" = String, Path, description = "The token's service plan"),
        ("group_id" = String, Path, description = "The group's id"),
    ),
    responses(
        (status = 200, description = "The group", body = SinchGroup),
        (status = 401, description = "Missing or invalid token", body = SinchErrorBody),
        (status = 403, description = "The path's plan is not the token's", body = SinchErrorBody),
        (status = 404, description = "No such group", body = SinchErrorBody),
    ),
    security(("bearer" = []))
)]
async fn retrieve_group(
    State(state): State<AppState>,
    auth: Result<Authenticated, ApiError>,
    Path((plan_id, group_id)): Path<(String, String)>,
) -> SinchResult<Json<SinchGroup>> {
    let (plan, _) = authorize(auth, &plan_id)?;
    let record = visible_group(&state, &plan, &group_id).await?;
    Ok(Json(SinchGroup::from(&record)))
}

/// Replace a group (Sinch)
///
/// Replaces every field, members included; absent fields are cleared.
#[utoipa::path(
    put, path = "/xms/v1/{service_plan_id}/groups/{group_id}", tag = TAG,
    params(
        ("service_plan_id" = String, Path, description = "The token's service plan"),
        ("group_id" = String, Path, description = "The group's id"),
    ),
    request_body = SinchGroupBody,
    responses(
        (status = 200, description = "The group", body = SinchGroup),
        (status = 400, description = "Invalid JSON, number or constraint", body = SinchErrorBody),
        (status = 401, description = "Missing or invalid token", body = SinchErrorBody),
        (status = 403, description = "The path's plan is not the token's, or a child group is unknown (`unknown_group`)", body = SinchErrorBody),
        (status = 404, description = "No such group", body = SinchErrorBody),
    ),
    security(("bearer" = []))
)]
async fn replace_group(
    State(state): State<AppState>,
    auth: Result<Authenticated, ApiError>,
    Path((plan_id, group_id)): Path<(String, String)>,
    body: Result<JsonBody<SinchGroupBody>, ApiError>,
) -> SinchResult<Json<SinchGroup>> {
    let (plan, by) = authorize(auth, &plan_id)?;
    let existing = visible_group(&state, &plan, &group_id).await?;
    let JsonBody(body) = body?;
    let (mut definition, fields) = validate_definition(&body)?;
    keep_double_opt_in(definition.auto_update.as_mut(), &existing);
    let record = state
        .store
        .replace_group(&plan.id, &by, &existing.id, None, definition)
        .await
        .map_err(|error| fields.explain(error))?;
    Ok(Json(SinchGroup::from(&record)))
}

/// Update a group (Sinch)
///
/// Adds before it removes: a number in both `add` and `remove` ends up absent.
#[utoipa::path(
    post, path = "/xms/v1/{service_plan_id}/groups/{group_id}", tag = TAG,
    params(
        ("service_plan_id" = String, Path, description = "The token's service plan"),
        ("group_id" = String, Path, description = "The group's id"),
    ),
    request_body = SinchGroupUpdate,
    responses(
        (status = 200, description = "The group", body = SinchGroup),
        (status = 400, description = "Invalid JSON, number or constraint", body = SinchErrorBody),
        (status = 401, description = "Missing or invalid token", body = SinchErrorBody),
        (status = 403, description = "The path's plan is not the token's, or a referenced group is unknown (`unknown_group`)", body = SinchErrorBody),
        (status = 404, description = "No such group", body = SinchErrorBody),
    ),
    security(("bearer" = []))
)]
async fn update_group(
    State(state): State<AppState>,
    auth: Result<Authenticated, ApiError>,
    Path((plan_id, group_id)): Path<(String, String)>,
    body: Result<JsonBody<SinchGroupUpdate>, ApiError>,
) -> SinchResult<Json<SinchGroup>> {
    let (plan, by) = authorize(auth, &plan_id)?;
    let existing = visible_group(&state, &plan, &group_id).await?;
    let JsonBody(body) = body?;
    let mut check = Validator::new();
    let name = body.name.as_ref().map(|name| {
        name.as_deref()
            .and_then(|text| check.name("name", text, GroupName::SINCH_MAX_CHARS))
    });
    let add = check.numbers(
        "add",
        body.add.as_deref().unwrap_or_default(),
        None,
        SINCH_MAX_NUMBERS_PER_REQUEST,
    );
    let remove = check.numbers(
        "remove",
        body.remove.as_deref().unwrap_or_default(),
        None,
        SINCH_MAX_NUMBERS_PER_REQUEST,
    );
    let add_from_group = body
        .add_from_group
        .as_deref()
        .and_then(|id| check.group_id("add_from_group", id));
    let remove_from_group = body
        .remove_from_group
        .as_deref()
        .and_then(|id| check.group_id("remove_from_group", id));
    let mut auto_update = body
        .auto_update
        .as_ref()
        .map(|value| check.auto_update("auto_update", value));
    keep_double_opt_in(auto_update.as_mut().and_then(Option::as_mut), &existing);
    for (field, source) in [
        ("add_from_group", &add_from_group),
        ("remove_from_group", &remove_from_group),
    ] {
        if source.as_ref() == Some(&existing.id) {
            check.push(FieldError::constraint(field, "is this group itself"));
        }
    }
    let fields = check.finish()?;
    let update = GroupUpdate {
        name,
        description: None,
        auto_update,
        child_groups: None,
        rule: None,
        status: None,
        members: MembershipChange::new(add, remove, add_from_group, remove_from_group),
    };
    let record = state
        .store
        .update_group(&plan.id, &by, &existing.id, None, update)
        .await
        .map_err(|error| fields.explain(error))?;
    Ok(Json(SinchGroup::from(&record)))
}

/// Delete a group (Sinch)
///
/// Answers 200 with an empty body, as Sinch does.
#[utoipa::path(
    delete, path = "/xms/v1/{service_plan_id}/groups/{group_id}", tag = TAG,
    params(
        ("service_plan_id" = String, Path, description = "The token's service plan"),
        ("group_id" = String, Path, description = "The group's id"),
    ),
    responses(
        (status = 200, description = "Deleted"),
        (status = 401, description = "Missing or invalid token", body = SinchErrorBody),
        (status = 403, description = "The path's plan is not the token's", body = SinchErrorBody),
        (status = 404, description = "No such group", body = SinchErrorBody),
    ),
    security(("bearer" = []))
)]
async fn delete_group(
    State(state): State<AppState>,
    auth: Result<Authenticated, ApiError>,
    Path((plan_id, group_id)): Path<(String, String)>,
) -> SinchResult<StatusCode> {
    let (plan, by) = authorize(auth, &plan_id)?;
    let existing = visible_group(&state, &plan, &group_id).await?;
    state
        .store
        .delete_group(&plan.id, &by, &existing.id, None, false)
        .await?;
    Ok(StatusCode::OK)
}

/// Get a group's members (Sinch)
///
/// A JSON array of every member's number, child groups' included, streamed.
#[utoipa::path(
    get, path = "/xms/v1/{service_plan_id}/groups/{group_id}/members", tag = TAG,
    params(
        ("service_plan_id" = String, Path, description = "The token's service plan"),
        ("group_id" = String, Path, description = "The group's id"),
    ),
    responses(
        (status = 200, description = "The member numbers", body = Vec<String>),
        (status = 401, description = "Missing or invalid token", body = SinchErrorBody),
        (status = 403, description = "The path's plan is not the token's", body = SinchErrorBody),
        (status = 404, description = "No such group", body = SinchErrorBody),
    ),
    security(("bearer" = []))
)]
async fn group_members(
    State(state): State<AppState>,
    auth: Result<Authenticated, ApiError>,
    Path((plan_id, group_id)): Path<(String, String)>,
) -> SinchResult<Response> {
    let (plan, _) = authorize(auth, &plan_id)?;
    let existing = visible_group(&state, &plan, &group_id).await?;
    let mut first = true;
    let numbers = state
        .store
        .member_numbers(plan.id.clone(), existing.id)
        .ready_chunks(4096)
        .map(move |chunk| {
            let mut buffer = String::with_capacity(chunk.len() * 20);
            for number in chunk {
                let number = number.map_err(|error| {
                    tracing::error!(%error, "member stream failed");
                    std::io::Error::other("storage failure")
                })?;
                buffer.push_str(if first { "\"" } else { ",\"" });
                first = false;
                buffer.push_str(&number);
                buffer.push('"');
            }
            Ok::<_, std::io::Error>(axum::body::Bytes::from(buffer))
        });
    let open = futures::stream::once(async { Ok(axum::body::Bytes::from_static(b"[")) });
    let close = futures::stream::once(async { Ok(axum::body::Bytes::from_static(b"]")) });
    let body = Body::from_stream(open.chain(numbers).chain(close));
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .unwrap_or_else(|_| SinchError(ApiError::Internal).into_response()))
}
