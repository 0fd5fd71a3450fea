//! The native Contact Groups API under `/api/contactgroups`.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, FieldError, Problem};
use super::extract::{IfMatch, JsonBody, etag};
use super::limits::{MAX_CHILD_GROUPS, MAX_IDS_PER_REQUEST, MAX_NUMBERS_PER_REQUEST};
use super::paging::{PageParams, encode_cursor, flag, window, window_with};
use super::validate::{AutoUpdateBody, GroupFields, Validator, nullable};
use crate::domain::algebra::MembershipChange;
use crate::domain::group::{GroupName, GroupStatus};
use crate::domain::ids::{ContactId, GroupId};
use crate::domain::msisdn::RegionCode;
use crate::store::{
    GroupDefinition, GroupOrder, GroupQuery, GroupRecord, GroupUpdate, Plan, StatusFilter,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_groups, create_group))
        .routes(routes!(
            get_group,
            replace_group,
            update_group,
            delete_group
        ))
        .routes(routes!(group_members, add_group_members))
}

/// Names the group's status on every members listing: a deleted group keeps its members (they
/// come back when it is restored) but resolves to no one.
const GROUP_STATUS: &str = "group-status";

/// A contact group.
#[derive(Serialize, ToSchema)]
pub struct ContactGroup {
    #[schema(example = "01JD4Q3T5V8Z9X2W1Y0A7B6C5D")]
    pub id: String,
    #[schema(example = "Newsletter")]
    pub name: Option<String>,
    pub description: Option<String>,
    /// `ACTIVE`, or `DELETED` after a soft delete. A deleted group keeps its name, members,
    /// child groups, keywords and rule for its restore, but resolves to no one: batches, parent
    /// groups and keywords leave it out.
    #[schema(example = "ACTIVE")]
    pub status: &'static str,
    /// Distinct effective members: the group's own and its active child groups'. A deleted
    /// group's size is what it holds for its restore.
    pub size: i64,
    /// The member numbers (E.164), only with `?include=members`; `/members` is the scalable way.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
    /// Groups whose members are included in this group, recursively.
    pub child_groups: Vec<String>,
    pub auto_update: Option<AutoUpdateBody>,
    /// A smart group's rule, in the filter language; its members are the contacts matching it.
    #[schema(example = "country = \"DE\" and not opted_out")]
    pub rule: Option<String>,
    /// Creation time, UTC with milliseconds.
    #[schema(example = "2026-11-23T05:41:50.123Z")]
    pub created_at: String,
    #[schema(example = "2026-11-23T05:41:50.123Z")]
    pub modified_at: String,
    /// With double opt-in, when reading one group: the joins waiting for their confirmation
    /// (`/members?state=pending` lists them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_count: Option<i64>,
}

impl ContactGroup {
    fn from_record(record: &GroupRecord, members: Option<Vec<String>>) -> Self {
        ContactGroup {
            id: record.id.to_string(),
            name: record.name.clone(),
            description: record.description.clone(),
            status: record.status.as_str(),
            size: record.size,
            members,
            child_groups: record
                .child_groups
                .iter()
                .map(ToString::to_string)
                .collect(),
            auto_update: record.auto_update.as_ref().map(AutoUpdateBody::from),
            rule: record.rule.clone(),
            created_at: record.created_at.to_rfc3339(),
            modified_at: record.modified_at.to_rfc3339(),
            pending_count: None,
        }
    }
}

/// A group answered with its `ETag`.
struct GroupResponse {
    status: StatusCode,
    record: GroupRecord,
    members: Option<Vec<String>>,
    /// Its pending joins, when it has double opt-in and was read alone.
    pending_count: Option<i64>,
}

impl IntoResponse for GroupResponse {
    fn into_response(self) -> Response {
        let tag = etag(self.record.version);
        let mut body = ContactGroup::from_record(&self.record, self.members);
        body.pending_count = self.pending_count;
        let mut response = (self.status, Json(body)).into_response();
        if let Ok(value) = HeaderValue::from_str(&tag) {
            response.headers_mut().insert(header::ETAG, value);
        }
        response
    }
}

/// The body of a create or replace: everything a group is defined by.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    /// 1 to 200 characters.
    #[schema(example = "Newsletter")]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Phone numbers, E.164 or national with `default_region`; duplicates are ignored. On PUT,
    /// required (the whole new member list; `[]` empties the group) unless `rule` is given.
    #[serde(default)]
    #[schema(example = json!(["+14155552671", "+14155552672"]))]
    pub members: Option<Vec<String>>,
    /// Ids of groups whose members are included in this one.
    #[serde(default)]
    pub child_groups: Option<Vec<String>>,
    #[serde(default)]
    pub auto_update: Option<AutoUpdateBody>,
    /// Makes a smart group: members are the contacts matching this filter, always in sync.
    /// Not with `members`.
    #[serde(default)]
    #[schema(
        example = "country = \"DE\" and fields.plan in (\"gold\", \"silver\") and not opted_out"
    )]
    pub rule: Option<String>,
    /// Region (ISO 3166-1 alpha-2) for national-format numbers; the plan's default otherwise.
    #[serde(default)]
    #[schema(example = "US")]
    pub default_region: Option<String>,
}

/// The body of a partial update. Absent fields are left as they are; `null` clears a field.
/// Additions (`add`, `add_from_group`) are applied before removals (`remove`,
/// `remove_from_group`): a number in both ends up absent.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupPatch {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
    /// Numbers to add; duplicates and numbers already present are ignored.
    #[serde(default)]
    pub add: Option<Vec<String>>,
    /// Numbers to remove; numbers not in the group are ignored.
    #[serde(default)]
    pub remove: Option<Vec<String>>,
    /// Copy the members of this group in.
    #[serde(default)]
    pub add_from_group: Option<String>,
    /// Take the members of this group out.
    #[serde(default)]
    pub remove_from_group: Option<String>,
    /// Replaces the child groups.
    #[serde(default)]
    pub child_groups: Option<Vec<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<AutoUpdateBody>)]
    pub auto_update: Option<Option<AutoUpdateBody>>,
    /// A smart group's new rule; `null` makes it a static group with no members.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub rule: Option<Option<String>>,
    /// `ACTIVE` restores a deleted group.
    #[serde(default)]
    #[schema(example = "ACTIVE")]
    pub status: Option<String>,
    #[serde(default)]
    pub default_region: Option<String>,
}

/// A page of groups.
#[derive(Serialize, ToSchema)]
pub struct GroupList {
    pub groups: Vec<ContactGroup>,
    /// How many groups match the filters, over all pages.
    pub count: i64,
    /// With `page`: the page returned (from 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    /// How many groups this page holds.
    pub page_size: usize,
    /// Pass as `next` to get the following page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only groups whose name contains this text (case-insensitive).
    name: Option<String>,
    /// `ACTIVE` (default), `DELETED` or `ALL`.
    status: Option<String>,
    /// Only the child groups of this group.
    child_of: Option<String>,
    /// `created_at` (default), `name` or `size`.
    order_by: Option<String>,
    /// `asc` or `desc`; by default names ascend, dates and sizes descend (newest, largest first).
    direction: Option<String>,
    /// Page size for cursor pagination, 1 to 1000 (default 100).
    limit: Option<String>,
    /// The `next` value of the previous page.
    next: Option<String>,
    /// Page number from 0, for simple clients (with `page_size`); not with `next`.
    page: Option<String>,
    /// Groups per page with `page`, 1 to 1000 (default 100).
    page_size: Option<String>,
    /// `members` to include each group's member numbers.
    include: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncludeParams {
    /// `members` to include the member numbers in the response.
    include: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// `true` removes the group and its memberships for good instead of marking it DELETED.
    purge: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MemberParams {
    /// Page size for cursor pagination, 1 to 1000 (default 100).
    limit: Option<String>,
    /// The `next` value of the previous page.
    next: Option<String>,
    /// Page number from 0, for simple clients (with `page_size`); not with `next`.
    page: Option<String>,
    /// Members per page with `page`, 1 to 1000 (default 100).
    page_size: Option<String>,
    /// `pending`: the joins waiting for their confirmation (double opt-in) instead, paged by
    /// `page` and `page_size`, oldest request first.
    state: Option<String>,
}

/// Contacts and numbers to put into one group, all or nothing.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupMembersBody {
    /// Ids of existing contacts, at most 10,000; every one must exist.
    #[serde(default)]
    pub contact_ids: Option<Vec<String>>,
    /// Phone numbers, E.164 or national with `default_region`, at most 100,000; a number no
    /// contact has becomes a new contact.
    #[serde(default)]
    #[schema(example = json!(["+14155552671"]))]
    pub numbers: Option<Vec<String>>,
    /// Region (ISO 3166-1 alpha-2) for national-format numbers; the plan's default otherwise.
    #[serde(default)]
    #[schema(example = "US")]
    pub default_region: Option<String>,
    /// `true` asks each to confirm (the group's double opt-in): they become pending members,
    /// sent the confirmation request once, and members when they reply.
    #[serde(default)]
    pub confirm: bool,
}

/// A member of a group.
#[derive(Serialize, ToSchema)]
pub struct Member {
    /// The contact's id.
    pub id: String,
    #[schema(example = "+14155552671")]
    pub phone: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// Opted-out members stay members but are never sent to.
    pub opted_out: bool,
    /// `pending` for a join waiting for its confirmation (`state=pending`), which is never sent
    /// to; absent for a member.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    /// When its confirmation was requested, and when the request ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberList {
    /// The group's status: a `DELETED` group still lists the members it keeps for its restore,
    /// but resolves to no one.
    #[schema(example = "ACTIVE")]
    pub group_status: &'static str,
    pub members: Vec<Member>,
    /// How many members the group has over all pages (its `size`).
    pub count: i64,
    /// With `page`: the page returned (from 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    /// How many members this page holds.
    pub page_size: usize,
    /// Pass as `next` to get the following page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

fn parse_group_id(id: &str) -> Result<GroupId, ApiError> {
    GroupId::parse(id).ok_or(ApiError::NotFound("group"))
}

fn wants_members(include: Option<&str>) -> Result<bool, ApiError> {
    match include {
        None | Some("") => Ok(false),
        Some("members") => Ok(true),
        Some(_) => Err(ApiError::invalid(FieldError::format(
            "include",
            "the only value is `members`",
        ))),
    }
}

fn plan_region(plan: &Plan) -> Option<RegionCode> {
    plan.default_region
        .as_deref()
        .and_then(|region| RegionCode::parse(region).ok())
}

async fn all_members(state: &AppState, plan: &Plan, id: &GroupId) -> Result<Vec<String>, ApiError> {
    let numbers: Vec<_> = state
        .store
        .member_numbers(plan.id.clone(), id.clone())
        .collect()
        .await;
    numbers
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::from)
}

/// Whether a definition creates a group or replaces one (PUT).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Definition {
    Create,
    Replace,
}

fn validate_definition(
    plan: &Plan,
    body: &GroupBody,
    purpose: Definition,
) -> Result<(GroupDefinition, GroupFields), ApiError> {
    let mut check = Validator::new();
    // A replace without `members` would silently empty the group: the whole new list is asked
    // for, `[]` included. A smart group has no direct members to give.
    if purpose == Definition::Replace && body.members.is_none() && body.rule.is_none() {
        check.push(FieldError::constraint(
            "members",
            "is required: PUT replaces the whole member list (send [] to empty the group, or \
             PATCH to change other fields)",
        ));
    }
    let region = check
        .region("default_region", body.default_region.as_deref())
        .or_else(|| plan_region(plan));
    let name = check.name("name", &body.name, GroupName::NATIVE_MAX_CHARS);
    let description = body
        .description
        .as_deref()
        .and_then(|text| check.description("description", text));
    let members = check.numbers(
        "members",
        body.members.as_deref().unwrap_or_default(),
        region,
        MAX_NUMBERS_PER_REQUEST,
    );
    let child_groups = check.group_ids(
        "child_groups",
        body.child_groups.as_deref().unwrap_or_default(),
        MAX_CHILD_GROUPS,
    );
    let auto_update = body
        .auto_update
        .as_ref()
        .and_then(|value| check.auto_update("auto_update", value));
    let rule = body
        .rule
        .as_deref()
        .and_then(|text| check.filter("rule", text));
    if body.rule.is_some() && !members.is_empty() {
        check.push(FieldError::constraint(
            "members",
            "a smart group (with a rule) has no direct members",
        ));
    }
    let fields = check.finish()?;
    Ok((
        GroupDefinition {
            name,
            description,
            members,
            child_groups,
            auto_update,
            rule,
        },
        fields,
    ))
}

/// List groups
///
/// Filters by name, status and parent group; orders by creation time, name or size. Pages either
/// by cursor (`limit` and `next`) or by number (`page` and `page_size`).
#[utoipa::path(
    get, path = "/api/contactgroups", tag = "Contact Groups",
    params(ListParams),
    responses(
        (status = 200, description = "A page of groups", body = GroupList),
        (status = 400, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_groups(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Query(params): Query<ListParams>,
) -> Result<Json<GroupList>, ApiError> {
    let status = match params
        .status
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("ACTIVE") => StatusFilter::Active,
        Some("DELETED") => StatusFilter::Deleted,
        Some("ALL") => StatusFilter::Any,
        Some(_) => {
            return Err(ApiError::invalid(FieldError::format(
                "status",
                "must be ACTIVE, DELETED or ALL",
            )));
        }
    };
    let order = match params.order_by.as_deref() {
        None | Some("created_at") => GroupOrder::CreatedAt,
        Some("name") => GroupOrder::Name,
        Some("size") => GroupOrder::Size,
        Some(_) => {
            return Err(ApiError::invalid(FieldError::format(
                "order_by",
                "must be created_at, name or size",
            )));
        }
    };
    let descending = match params.direction.as_deref() {
        None => order != GroupOrder::Name,
        Some("asc") => false,
        Some("desc") => true,
        Some(_) => {
            return Err(ApiError::invalid(FieldError::format(
                "direction",
                "must be asc or desc",
            )));
        }
    };
    let child_of = match params.child_of.as_deref() {
        None => None,
        Some(id) => Some(GroupId::parse(id).ok_or_else(|| {
            ApiError::invalid(FieldError::format("child_of", "is not the id of a group"))
        })?),
    };
    let (window, page) = window(
        params.page.as_deref(),
        params.page_size.as_deref(),
        params.limit.as_deref(),
        params.next.as_deref(),
    )?;
    let include_members = wants_members(params.include.as_deref())?;
    let query = GroupQuery {
        status,
        name_contains: params.name.filter(|name| !name.is_empty()),
        child_of,
        order,
        descending,
        window,
    };
    let result = state.store.list_groups(&plan.id, &query).await?;
    let mut groups = Vec::with_capacity(result.groups.len());
    for record in &result.groups {
        let members = if include_members {
            Some(all_members(&state, &plan, &record.id).await?)
        } else {
            None
        };
        groups.push(ContactGroup::from_record(record, members));
    }
    Ok(Json(GroupList {
        page_size: groups.len(),
        groups,
        count: result.total,
        page,
        next: result.next.as_ref().map(encode_cursor),
    }))
}

/// Create a group
///
/// Members given as bare numbers become (or reuse) the plan's contacts with those numbers.
#[utoipa::path(
    post, path = "/api/contactgroups", tag = "Contact Groups",
    request_body = GroupBody,
    responses(
        (status = 201, description = "The group, with its ETag", body = ContactGroup),
        (status = 400, description = "A field is invalid, a child group is unknown, or the child groups would form a cycle", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn create_group(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    JsonBody(body): JsonBody<GroupBody>,
) -> Result<Response, ApiError> {
    let (definition, fields) = validate_definition(&plan, &body, Definition::Create)?;
    let record = state
        .store
        .create_group(&plan.id, &by, definition)
        .await
        .map_err(|error| fields.explain(error))?;
    Ok(GroupResponse {
        status: StatusCode::CREATED,
        record,
        members: None,
        pending_count: None,
    }
    .into_response())
}

/// Get a group
///
/// Deleted groups are shown too, with status `DELETED`.
#[utoipa::path(
    get, path = "/api/contactgroups/{id}", tag = "Contact Groups",
    params(("id" = String, Path, description = "The group's id"), IncludeParams),
    responses(
        (status = 200, description = "The group, with its ETag", body = ContactGroup),
        (status = 400, description = "A query parameter is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group in this plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn get_group(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Path(id): Path<String>,
    Query(params): Query<IncludeParams>,
) -> Result<Response, ApiError> {
    let id = parse_group_id(&id)?;
    let include_members = wants_members(params.include.as_deref())?;
    let record = state.store.get_group(&plan.id, &id).await?;
    let members = if include_members {
        Some(all_members(&state, &plan, &id).await?)
    } else {
        None
    };
    // Counted only for a group that can have pending joins: reading a group is a hot path.
    let confirms = record
        .auto_update
        .as_ref()
        .is_some_and(|auto| auto.double_opt_in.is_some());
    let pending_count = if confirms {
        Some(state.store.pending_members(&plan.id, &id, 0, 0).await?.1)
    } else {
        None
    };
    Ok(GroupResponse {
        status: StatusCode::OK,
        record,
        members,
        pending_count,
    }
    .into_response())
}

/// Replace a group
///
/// Sets everything: name, description, the whole member list, child groups and auto_update;
/// fields left out are cleared. `members` is required (`[]` empties the group) unless `rule`
/// makes it a smart group. With `If-Match`, fails with 412 if the group changed since that ETag
/// was read.
#[utoipa::path(
    put, path = "/api/contactgroups/{id}", tag = "Contact Groups",
    params(
        ("id" = String, Path, description = "The group's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on"),
    ),
    request_body = GroupBody,
    responses(
        (status = 200, description = "The group, with its new ETag", body = ContactGroup),
        (status = 400, description = "A field is invalid, or `members` is missing", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group in this plan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The group is deleted", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The group changed since the If-Match ETag", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn replace_group(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    JsonBody(body): JsonBody<GroupBody>,
) -> Result<Response, ApiError> {
    let id = parse_group_id(&id)?;
    let (definition, fields) = validate_definition(&plan, &body, Definition::Replace)?;
    let record = state
        .store
        .replace_group(&plan.id, &by, &id, expected, definition)
        .await
        .map_err(|error| fields.explain(error))?;
    Ok(GroupResponse {
        status: StatusCode::OK,
        record,
        members: None,
        pending_count: None,
    }
    .into_response())
}

/// Update a group
///
/// Adds and removes members (additions first), copies members in from or out by another group,
/// renames, and sets child groups or keywords. With `If-Match`, fails with 412 if the group
/// changed since that ETag was read.
#[utoipa::path(
    patch, path = "/api/contactgroups/{id}", tag = "Contact Groups",
    params(
        ("id" = String, Path, description = "The group's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag the change is based on"),
    ),
    request_body = GroupPatch,
    responses(
        (status = 200, description = "The group, with its new ETag", body = ContactGroup),
        (status = 400, description = "A field is invalid or names an unknown group", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group in this plan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The group is deleted", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The group changed since the If-Match ETag", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn update_group(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    JsonBody(body): JsonBody<GroupPatch>,
) -> Result<Response, ApiError> {
    let id = parse_group_id(&id)?;
    let mut check = Validator::new();
    let region = check
        .region("default_region", body.default_region.as_deref())
        .or_else(|| plan_region(&plan));
    let name = body.name.as_ref().map(|name| {
        name.as_deref()
            .and_then(|text| check.name("name", text, GroupName::NATIVE_MAX_CHARS))
    });
    let description = body.description.as_ref().map(|description| {
        description
            .as_deref()
            .and_then(|text| check.description("description", text))
    });
    let add = check.numbers(
        "add",
        body.add.as_deref().unwrap_or_default(),
        region,
        MAX_NUMBERS_PER_REQUEST,
    );
    let remove = check.numbers(
        "remove",
        body.remove.as_deref().unwrap_or_default(),
        region,
        MAX_NUMBERS_PER_REQUEST,
    );
    let add_from_group = body
        .add_from_group
        .as_deref()
        .and_then(|id| check.group_id("add_from_group", id));
    let remove_from_group = body
        .remove_from_group
        .as_deref()
        .and_then(|id| check.group_id("remove_from_group", id));
    let child_groups = body
        .child_groups
        .as_deref()
        .map(|ids| check.group_ids("child_groups", ids, MAX_CHILD_GROUPS));
    let auto_update = body.auto_update.as_ref().map(|value| {
        value
            .as_ref()
            .and_then(|value| check.auto_update("auto_update", value))
    });
    let rule = body
        .rule
        .as_ref()
        .map(|rule| rule.as_deref().and_then(|text| check.filter("rule", text)));
    let status = match body.status.as_deref() {
        None => None,
        Some(text) => match GroupStatus::parse(text) {
            Some(GroupStatus::Active) => Some(GroupStatus::Active),
            _ => {
                check.push(FieldError::constraint(
                    "status",
                    "can only be set to ACTIVE (restore); delete with DELETE",
                ));
                None
            }
        },
    };
    for (field, source) in [
        ("add_from_group", &add_from_group),
        ("remove_from_group", &remove_from_group),
    ] {
        if source.as_ref() == Some(&id) {
            check.push(FieldError::constraint(field, "is this group itself"));
        }
    }
    let fields = check.finish()?;
    let update = GroupUpdate {
        name,
        description,
        auto_update,
        child_groups,
        rule,
        status,
        members: MembershipChange::new(add, remove, add_from_group, remove_from_group),
    };
    let record = state
        .store
        .update_group(&plan.id, &by, &id, expected, update)
        .await
        .map_err(|error| fields.explain(error))?;
    Ok(GroupResponse {
        status: StatusCode::OK,
        record,
        members: None,
        pending_count: None,
    }
    .into_response())
}

/// Delete a group
///
/// Marks the group DELETED: it then resolves to no one (batches, parent groups and keywords
/// leave it out), is hidden from lists unless `status=DELETED` or `ALL` is asked for, and
/// refuses changes but a restore; it keeps its name, members, child groups, keywords and rule,
/// which `PATCH {"status": "ACTIVE"}` brings back. With `purge=true` removes it and its
/// memberships for good (the contacts stay).
#[utoipa::path(
    delete, path = "/api/contactgroups/{id}", tag = "Contact Groups",
    params(
        ("id" = String, Path, description = "The group's id"),
        ("If-Match" = Option<String>, Header, description = "The ETag the deletion is based on"),
        DeleteParams,
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "A query parameter is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group in this plan", body = Problem, content_type = "application/problem+json"),
        (status = 412, description = "The group changed since the If-Match ETag", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn delete_group(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    Query(params): Query<DeleteParams>,
) -> Result<StatusCode, ApiError> {
    let id = parse_group_id(&id)?;
    let purge = flag("purge", params.purge.as_deref())?.unwrap_or(false);
    state
        .store
        .delete_group(&plan.id, &by, &id, expected, purge)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List a group's members
///
/// The distinct effective members (the group's own and its active child groups'), by contact
/// id. As JSON, a page of contacts with `count`, paged by cursor (`limit`, `next`) or by number
/// (`page`, `page_size`); with `Accept: application/x-ndjson` every number as one JSON string per
/// line, or with `Accept: text/csv` as CSV, streamed whatever the group's size. A deleted group
/// lists the members it keeps for its restore; `group_status` (and the `Group-Status` header of
/// every form) says it is `DELETED`.
#[utoipa::path(
    get, path = "/api/contactgroups/{id}/members", tag = "Contact Groups",
    params(("id" = String, Path, description = "The group's id"), MemberParams),
    responses(
        (status = 200, description = "Members", content(
            (MemberList = "application/json"),
            (String = "application/x-ndjson"),
            (String = "text/csv"),
        ), headers(
            ("Group-Status" = String, description = "`ACTIVE`, or `DELETED`: the group resolves to no one until restored"),
        )),
        (status = 400, description = "A query parameter is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group in this plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn group_members(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Path(id): Path<String>,
    Query(params): Query<MemberParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = parse_group_id(&id)?;
    let group = state.store.get_group(&plan.id, &id).await?;
    let status = HeaderValue::from_static(group.status.as_str());
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let csv = accept.contains("text/csv");
    let pending = match params.state.as_deref() {
        None | Some("") | Some("member") => false,
        Some("pending") => true,
        Some(_) => {
            return Err(ApiError::invalid(FieldError::format(
                "state",
                "must be member or pending",
            )));
        }
    };
    let mut response = if pending {
        let (page, offset, size) = PageParams::of(params.page, params.page_size).window()?;
        let (waiting, count) = state
            .store
            .pending_members(&plan.id, &id, offset, size)
            .await?;
        let members: Vec<Member> = waiting
            .into_iter()
            .map(|member| Member {
                id: member.contact_id.to_string(),
                phone: member.phone,
                first_name: member.first_name,
                last_name: member.last_name,
                opted_out: member.opted_out,
                state: Some("pending"),
                requested_at: Some(member.requested_at.to_rfc3339()),
                expires_at: Some(member.expires_at.to_rfc3339()),
            })
            .collect();
        Json(MemberList {
            group_status: group.status.as_str(),
            page_size: members.len(),
            members,
            count,
            page: Some(page),
            next: None,
        })
        .into_response()
    } else if csv || accept.contains("ndjson") || accept.contains("jsonl") {
        let numbers = state.store.member_numbers(plan.id.clone(), id);
        super::batches::stream_lines(numbers, csv)
    } else {
        // The members' cursor is the last contact's id: they are in id order.
        let (window, page) = window_with(
            params.page.as_deref(),
            params.page_size.as_deref(),
            params.limit.as_deref(),
            params.next.as_deref(),
            |text| {
                ContactId::parse(text).ok_or_else(|| {
                    ApiError::invalid(FieldError::format(
                        "next",
                        "is not a cursor returned by this API",
                    ))
                })
            },
        )?;
        let members_page = state.store.member_page(&plan.id, &group, &window).await?;
        let members: Vec<Member> = members_page
            .members
            .into_iter()
            .map(|member| Member {
                id: member.contact_id.to_string(),
                phone: member.phone,
                first_name: member.first_name,
                last_name: member.last_name,
                opted_out: member.opted_out,
                state: None,
                requested_at: None,
                expires_at: None,
            })
            .collect();
        Json(MemberList {
            group_status: group.status.as_str(),
            page_size: members.len(),
            members,
            count: group.size,
            page,
            next: members_page.next.map(|id| id.to_string()),
        })
        .into_response()
    };
    response.headers_mut().insert(GROUP_STATUS, status);
    Ok(response)
}

/// Add members to a group
///
/// Puts existing contacts (by id) and numbers (a number no contact has becomes a new contact)
/// into this one group, all or nothing, as `POST /api/contactgroups/members` does for many
/// groups. Members already there are left as they are.
#[utoipa::path(
    post, path = "/api/contactgroups/{id}/members", tag = "Contact Groups",
    params(("id" = String, Path, description = "The group's id")),
    request_body = GroupMembersBody,
    responses(
        (status = 200, description = "How many memberships are new", body = super::contacts::MembershipChange),
        (status = 400, description = "An id or number is malformed, a contact is unknown, or too many entries", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such group in this plan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The group is deleted, or a smart group", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is over the size limit", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn add_group_members(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<GroupMembersBody>,
) -> Result<Json<super::contacts::MembershipChange>, ApiError> {
    let id = parse_group_id(&id)?;
    let mut check = Validator::new();
    let region = check
        .region("default_region", body.default_region.as_deref())
        .or_else(|| plan_region(&plan));
    let contacts = super::contacts::parse_ids(
        &mut check,
        "contact_ids",
        body.contact_ids.as_deref().unwrap_or_default(),
        MAX_IDS_PER_REQUEST,
        ContactId::parse,
    );
    let numbers = check.numbers(
        "numbers",
        body.numbers.as_deref().unwrap_or_default(),
        region,
        MAX_NUMBERS_PER_REQUEST,
    );
    check.finish()?;
    if body.confirm {
        let requested = state
            .store
            .request_to_join(&plan.id, &by, &id, &contacts, &numbers)
            .await?;
        return Ok(Json(super::contacts::MembershipChange {
            changed: 0,
            requested: Some(requested),
        }));
    }
    let changed = state
        .store
        .add_to_group(&plan.id, &by, &id, &contacts, &numbers)
        .await?;
    Ok(Json(super::contacts::MembershipChange {
        changed,
        requested: None,
    }))
}
