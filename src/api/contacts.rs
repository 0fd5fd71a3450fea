//! The address book under `/api/contacts`, and many contacts into or out of many groups at once
//! under `/api/contactgroups/members`.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;
use super::auth::Authenticated;
use super::error::{ApiError, FieldError, Problem};
use super::extract::JsonBody;
use super::limits::MAX_IDS_PER_REQUEST;
use super::paging::{encode_cursor, flag, window};
use super::validate::{Validator, nullable};
use crate::domain::contact::{CustomFields, Email, Gender, OptOutReason, PersonName, TimeZoneName};
use crate::domain::filter::FilterExpr;
use crate::domain::ids::{ContactId, GroupId};
use crate::domain::msisdn::{NumberType, RegionCode};
use crate::store::{
    ContactDefinition, ContactOrder, ContactPatch, ContactQuery, ContactRecord, GroupMembership,
    Plan,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_contacts, create_contact, delete_contacts))
        .routes(routes!(opt_out_contacts))
        .routes(routes!(
            get_contact,
            replace_contact,
            update_contact,
            delete_contact
        ))
        .routes(routes!(add_memberships, remove_memberships))
}

/// A contact.
#[derive(Serialize, ToSchema)]
pub struct Contact {
    #[schema(example = "01JD4Q3T5V8Z9X2W1Y0A7B6C5D")]
    pub id: String,
    /// E.164.
    #[schema(example = "+14155552671")]
    pub phone: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    /// Lower case, with `f` and `m` spelled out: `female`, `male`, `other`, …
    #[schema(example = "female")]
    pub gender: Option<String>,
    /// The contact's IANA time zone, or null when unset.
    #[schema(example = "Europe/Paris")]
    pub time_zone: Option<String>,
    /// Custom fields: string, number or boolean values.
    #[schema(value_type = Object, example = json!({"plan": "gold", "age": 42}))]
    pub fields: serde_json::Map<String, Value>,
    /// Whether libphonenumber considers the number valid: always true, since invalid numbers
    /// are refused.
    pub valid: bool,
    /// `mobile`, `fixed_line`, `fixed_line_or_mobile`, `toll_free`, `voip`, …
    #[schema(example = "mobile")]
    pub number_type: Option<String>,
    /// ISO 3166-1 alpha-2 region of the number.
    #[schema(example = "US")]
    pub country: Option<String>,
    /// Channels the number can be reached on: `sms` for valid mobile numbers.
    pub channels: Vec<&'static str>,
    /// Opted-out contacts stay in their groups but are never sent to.
    pub opted_out: bool,
    pub opted_out_at: Option<String>,
    pub opted_out_reason: Option<String>,
    /// With `?include=groups`: the groups the contact is a direct member of, deleted ones
    /// included (with status `DELETED`: they keep the contact for their restore but resolve to
    /// no one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<ContactGroupRef>>,
    pub created_at: String,
    pub modified_at: String,
}

/// A group a contact is in, named with its status.
#[derive(Serialize, ToSchema)]
pub struct ContactGroupRef {
    #[schema(example = "01JD4Q3T5V8Z9X2W1Y0A7B6C5D")]
    pub id: String,
    #[schema(example = "Newsletter")]
    pub name: Option<String>,
    /// `ACTIVE`, or `DELETED` after a soft delete.
    #[schema(example = "ACTIVE")]
    pub status: &'static str,
}

fn sms_capable(number_type: Option<&str>) -> bool {
    number_type.is_some_and(NumberType::sms_capable)
}

impl Contact {
    pub fn from_record(record: ContactRecord, groups: Option<Vec<GroupMembership>>) -> Self {
        Contact {
            id: record.id.to_string(),
            phone: record.phone,
            first_name: record.first_name,
            last_name: record.last_name,
            email: record.email,
            gender: record.gender,
            time_zone: record.time_zone,
            fields: record.fields.into_map(),
            valid: record.number_type.is_some(),
            channels: if sms_capable(record.number_type.as_deref()) {
                vec!["sms"]
            } else {
                Vec::new()
            },
            number_type: record.number_type,
            country: record.country,
            opted_out: record.opted_out,
            opted_out_at: record.opted_out_at.map(|at| at.to_rfc3339()),
            opted_out_reason: record.opted_out_reason,
            groups: groups.map(|groups| {
                groups
                    .into_iter()
                    .map(|group| ContactGroupRef {
                        id: group.id.to_string(),
                        name: group.name,
                        status: group.status.as_str(),
                    })
                    .collect()
            }),
            created_at: record.created_at.to_rfc3339(),
            modified_at: record.modified_at.to_rfc3339(),
        }
    }
}

/// Everything a contact is defined by (create, replace).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    /// E.164, or national format with `default_region` (or the plan's default region).
    #[schema(example = "+14155552671")]
    pub phone: String,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// Stored lower-case, with `F` and `M` spelled out as `female` and `male`; other values
    /// (`other`, `non-binary`, …) are kept as given, lower-cased. At most 32 characters.
    #[serde(default)]
    #[schema(example = "female")]
    pub gender: Option<String>,
    /// An IANA time zone name such as `Europe/Paris`, stored in the time zone database's
    /// spelling.
    #[serde(default)]
    #[schema(example = "Europe/Paris")]
    pub time_zone: Option<String>,
    /// Custom fields: a JSON object of string, number or boolean values.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub fields: Option<Value>,
    #[serde(default)]
    pub opted_out: Option<bool>,
    #[serde(default)]
    pub opted_out_reason: Option<String>,
    #[serde(default)]
    #[schema(example = "US")]
    pub default_region: Option<String>,
}

/// A partial update: absent fields are left as they are; `null` clears a field.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPatchBody {
    /// A new number; the contact keeps its groups.
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// Stored as on create: lower-case, `F` and `M` spelled out.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub gender: Option<Option<String>>,
    /// An IANA time zone name such as `Europe/Paris`; `null` clears it.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, example = "Europe/Paris")]
    pub time_zone: Option<Option<String>>,
    /// Replaces all custom fields.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub fields: Option<Value>,
    #[serde(default)]
    pub opted_out: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>)]
    pub opted_out_reason: Option<Option<String>>,
    #[serde(default)]
    pub default_region: Option<String>,
}

/// Ids of contacts to delete.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactIds {
    /// At most 10,000 ids; ids that do not exist are ignored.
    pub ids: Vec<String>,
    /// `true` erases them (see `DELETE /api/contacts/{id}?erase=true`).
    #[serde(default)]
    pub erase: bool,
}

/// How a contact is deleted.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteParams {
    /// `true` erases the person: everything that names their number goes (consent rows but an
    /// anonymous one, recorded recipients, delivery reports, inbound messages), and the number
    /// is refused from then on until its owner opts in by keyword.
    erase: Option<String>,
}

/// Contacts to opt out.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptOutBody {
    /// At most 10,000 ids; ids that do not exist are ignored.
    pub ids: Vec<String>,
    /// Why, kept with each contact's opt-out.
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct OptedOut {
    /// How many contacts were opted out (those already opted out are not counted).
    pub opted_out: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Deleted {
    /// How many contacts were deleted.
    pub deleted: u64,
}

/// Contacts and groups for a bulk membership change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Memberships {
    /// At most 10,000 contact ids; every one must exist.
    pub contact_ids: Vec<String>,
    /// At most 100 ids of active, static groups.
    pub group_ids: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct MembershipChange {
    /// How many memberships were created or ended (existing ones and absent ones are ignored).
    pub changed: u64,
    /// With `confirm`: how many confirmations were requested (members, and those already
    /// asked, are not asked again).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct ContactList {
    pub contacts: Vec<Contact>,
    /// With `count=true`: how many contacts match, over all pages.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<i64>,
    /// How many contacts this page holds.
    pub page_size: usize,
    /// Pass as `next` to get the following page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Contact search. Any `fields.NAME=value` parameter also filters by that custom field.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactParams {
    /// Names starting with this text, first or last name first (case-insensitive; indexed).
    name: Option<String>,
    /// Names containing this text (case-insensitive; scans the plan's contacts).
    name_contains: Option<String>,
    /// Numbers starting with this prefix, e.g. `+4917`.
    phone: Option<String>,
    /// Email address (case-insensitive).
    email: Option<String>,
    /// Genders are stored lower-case with `f` and `m` spelled out (`female`, `male`); the value
    /// given is spelled the same way, so `Female` and `F` find `female`.
    gender: Option<String>,
    /// `true` or `false`: whether libphonenumber considers the number valid. Invalid numbers
    /// are refused when a contact is written, so every stored contact is valid: `true` matches
    /// all and `false` none. Kept for clients that filter by validity.
    valid: Option<String>,
    /// e.g. `mobile`, `fixed_line`.
    number_type: Option<String>,
    /// `sms`: only contacts reachable by SMS (valid mobile numbers).
    channel: Option<String>,
    /// Only effective members of this group (child groups and smart rules included).
    group: Option<String>,
    /// `true` or `false`.
    opted_out: Option<String>,
    /// A filter-language expression, e.g. `country = "DE" and not opted_out`.
    q: Option<String>,
    /// `name`, `created_at` (default) or `modified_at`.
    order_by: Option<String>,
    /// `asc` or `desc`; names ascend and dates descend by default.
    direction: Option<String>,
    /// Page size for cursor pagination, 1 to 1000 (default 100).
    limit: Option<String>,
    /// The `next` value of the previous page.
    next: Option<String>,
    /// Page number from 0 (with `page_size`); not with `next`.
    page: Option<String>,
    page_size: Option<String>,
    /// `true` to count all matches (a second query).
    count: Option<String>,
    #[serde(flatten)]
    #[param(ignore)]
    rest: HashMap<String, String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IncludeGroups {
    /// `groups` to list the groups the contact is a direct member of.
    include: Option<String>,
}

/// A number prefix as the search takes it: international, with or without its `+`.
pub(crate) fn phone_prefix(typed: &str) -> String {
    let trimmed = typed.trim();
    if trimmed.starts_with('+') {
        trimmed.to_owned()
    } else {
        format!("+{trimmed}")
    }
}

fn parse_contact_id(id: &str) -> Result<ContactId, ApiError> {
    ContactId::parse(id).ok_or(ApiError::NotFound("contact"))
}

fn plan_region(plan: &Plan) -> Option<RegionCode> {
    plan.default_region
        .as_deref()
        .and_then(|region| RegionCode::parse(region).ok())
}

fn not_found_contact(error: crate::store::StoreError) -> ApiError {
    match error {
        crate::store::StoreError::NotFound(_) => ApiError::NotFound("contact"),
        other => ApiError::from(other),
    }
}

fn validate_contact(plan: &Plan, body: &ContactBody) -> Result<ContactDefinition, ApiError> {
    let mut check = Validator::new();
    let region = check
        .region("default_region", body.default_region.as_deref())
        .or_else(|| plan_region(plan));
    let phone = check.number("phone", &body.phone, region);
    let first_name = body
        .first_name
        .as_deref()
        .and_then(|v| check.text("first_name", v, PersonName::parse));
    let last_name = body
        .last_name
        .as_deref()
        .and_then(|v| check.text("last_name", v, PersonName::parse));
    let email = body
        .email
        .as_deref()
        .and_then(|v| check.text("email", v, Email::parse));
    let gender = body
        .gender
        .as_deref()
        .and_then(|v| check.text("gender", v, Gender::parse));
    let time_zone = body
        .time_zone
        .as_deref()
        .and_then(|v| check.text("time_zone", v, TimeZoneName::parse));
    let fields = match &body.fields {
        Some(value) => check.text("fields", value, CustomFields::parse),
        None => Some(CustomFields::default()),
    };
    let opted_out_reason = body
        .opted_out_reason
        .as_deref()
        .and_then(|v| check.text("opted_out_reason", v, OptOutReason::parse));
    check.finish()?;
    match (phone, fields) {
        (Some(phone), Some(fields)) => Ok(ContactDefinition {
            phone,
            first_name,
            last_name,
            email,
            gender,
            time_zone,
            fields,
            opted_out: body.opted_out.unwrap_or(false),
            opted_out_reason,
        }),
        // Unreachable: a missing value always left an error behind.
        _ => Err(ApiError::Internal),
    }
}

/// List and search contacts
///
/// Filters combine with AND. Pages by cursor (`limit`, `next`) or by number (`page`,
/// `page_size`).
#[utoipa::path(
    get, path = "/api/contacts", tag = "Contacts",
    params(ContactParams),
    responses(
        (status = 200, description = "A page of contacts", body = ContactList),
        (status = 400, description = "A parameter is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn list_contacts(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Query(params): Query<ContactParams>,
) -> Result<Json<ContactList>, ApiError> {
    let invalid = |field: &str, detail: &str| ApiError::invalid(FieldError::format(field, detail));
    let order = match params.order_by.as_deref() {
        None | Some("created_at") => ContactOrder::CreatedAt,
        Some("modified_at") => ContactOrder::ModifiedAt,
        Some("name") => ContactOrder::Name,
        Some(_) => {
            return Err(invalid(
                "order_by",
                "must be name, created_at or modified_at",
            ));
        }
    };
    let descending = match params.direction.as_deref() {
        None => order != ContactOrder::Name,
        Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(invalid("direction", "must be asc or desc")),
    };
    let sms_capable = match params.channel.as_deref() {
        None => None,
        Some("sms") => Some(true),
        Some(_) => return Err(invalid("channel", "the only channel is sms")),
    };
    let group = match params.group.as_deref() {
        None => None,
        Some(id) => {
            Some(GroupId::parse(id).ok_or_else(|| invalid("group", "is not the id of a group"))?)
        }
    };
    let filter = match params.q.as_deref() {
        None => None,
        Some(text) => Some(
            FilterExpr::parse(text)
                .map_err(|error| ApiError::invalid(FieldError::format("q", error)))?,
        ),
    };
    let mut custom = Vec::new();
    for (key, value) in &params.rest {
        match key.strip_prefix("fields.") {
            Some(name)
                if !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '-') =>
            {
                custom.push((name.to_owned(), value.clone()));
            }
            _ => return Err(invalid(key, "is not a known parameter")),
        }
    }
    custom.sort();
    let (window, page) = window(
        params.page.as_deref(),
        params.page_size.as_deref(),
        params.limit.as_deref(),
        params.next.as_deref(),
    )?;
    let phone_prefix = params.phone.as_deref().map(phone_prefix);
    let query = ContactQuery {
        name_prefix: params.name.filter(|v| !v.is_empty()),
        name_contains: params.name_contains.filter(|v| !v.is_empty()),
        phone_prefix,
        email: params.email,
        gender: params.gender.as_deref().map(Gender::canonical),
        valid: flag("valid", params.valid.as_deref())?,
        number_type: params.number_type,
        sms_capable,
        group,
        opted_out: flag("opted_out", params.opted_out.as_deref())?,
        custom,
        filter,
        ids: None,
        order,
        descending,
        window,
        with_total: flag("count", params.count.as_deref())?.unwrap_or(false),
    };
    let result = state.store.list_contacts(&plan.id, &query).await?;
    let contacts: Vec<Contact> = result
        .contacts
        .into_iter()
        .map(|record| Contact::from_record(record, None))
        .collect();
    Ok(Json(ContactList {
        page_size: contacts.len(),
        contacts,
        count: result.total,
        page,
        next: result.next.as_ref().map(encode_cursor),
    }))
}

/// Create a contact
///
/// The phone number is unique within the plan: a second contact with the same number is 409,
/// naming the existing contact.
#[utoipa::path(
    post, path = "/api/contacts", tag = "Contacts",
    request_body = ContactBody,
    responses(
        (status = 201, description = "The contact", body = Contact),
        (status = 400, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another contact has this number", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn create_contact(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    JsonBody(body): JsonBody<ContactBody>,
) -> Result<(StatusCode, Json<Contact>), ApiError> {
    let definition = validate_contact(&plan, &body)?;
    let record = state
        .store
        .create_contact(&plan.id, &by, definition)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Contact::from_record(record, None)),
    ))
}

/// Get a contact
#[utoipa::path(
    get, path = "/api/contacts/{id}", tag = "Contacts",
    params(("id" = String, Path, description = "The contact's id"), IncludeGroups),
    responses(
        (status = 200, description = "The contact", body = Contact),
        (status = 400, description = "A query parameter is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such contact in this plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn get_contact(
    State(state): State<AppState>,
    Authenticated(plan, _): Authenticated,
    Path(id): Path<String>,
    Query(params): Query<IncludeGroups>,
) -> Result<Json<Contact>, ApiError> {
    let id = parse_contact_id(&id)?;
    let include_groups = match params.include.as_deref() {
        None | Some("") => false,
        Some("groups") => true,
        Some(_) => {
            return Err(ApiError::invalid(FieldError::format(
                "include",
                "the only value is `groups`",
            )));
        }
    };
    let record = state
        .store
        .get_contact(&plan.id, &id)
        .await
        .map_err(not_found_contact)?;
    let groups = if include_groups {
        Some(
            state
                .store
                .contact_groups(&plan.id, &id)
                .await
                .map_err(not_found_contact)?,
        )
    } else {
        None
    };
    Ok(Json(Contact::from_record(record, groups)))
}

/// Replace a contact
///
/// Sets every field; fields left out are cleared. The contact keeps its groups.
#[utoipa::path(
    put, path = "/api/contacts/{id}", tag = "Contacts",
    params(("id" = String, Path, description = "The contact's id")),
    request_body = ContactBody,
    responses(
        (status = 200, description = "The contact", body = Contact),
        (status = 400, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such contact in this plan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another contact has this number", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn replace_contact(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ContactBody>,
) -> Result<Json<Contact>, ApiError> {
    let id = parse_contact_id(&id)?;
    let definition = validate_contact(&plan, &body)?;
    let record = state
        .store
        .replace_contact(&plan.id, &by, &id, definition)
        .await
        .map_err(not_found_contact)?;
    Ok(Json(Contact::from_record(record, None)))
}

/// Update a contact
///
/// Changes only the fields given; `null` clears one. Opting out stamps `opted_out_at`; opting
/// back in clears it and the reason. A new phone number keeps the contact's groups.
#[utoipa::path(
    patch, path = "/api/contacts/{id}", tag = "Contacts",
    params(("id" = String, Path, description = "The contact's id")),
    request_body = ContactPatchBody,
    responses(
        (status = 200, description = "The contact", body = Contact),
        (status = 400, description = "A field is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such contact in this plan", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Another contact has this number", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn update_contact(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<ContactPatchBody>,
) -> Result<Json<Contact>, ApiError> {
    let id = parse_contact_id(&id)?;
    let mut check = Validator::new();
    let region = check
        .region("default_region", body.default_region.as_deref())
        .or_else(|| plan_region(&plan));
    let phone = body
        .phone
        .as_deref()
        .and_then(|phone| check.number("phone", phone, region));
    let patch = ContactPatch {
        phone,
        first_name: body.first_name.as_ref().map(|value| {
            value
                .as_deref()
                .and_then(|v| check.text("first_name", v, PersonName::parse))
        }),
        last_name: body.last_name.as_ref().map(|value| {
            value
                .as_deref()
                .and_then(|v| check.text("last_name", v, PersonName::parse))
        }),
        email: body.email.as_ref().map(|value| {
            value
                .as_deref()
                .and_then(|v| check.text("email", v, Email::parse))
        }),
        gender: body.gender.as_ref().map(|value| {
            value
                .as_deref()
                .and_then(|v| check.text("gender", v, Gender::parse))
        }),
        time_zone: body.time_zone.as_ref().map(|value| {
            value
                .as_deref()
                .and_then(|v| check.text("time_zone", v, TimeZoneName::parse))
        }),
        fields: body
            .fields
            .as_ref()
            .and_then(|value| check.text("fields", value, CustomFields::parse)),
        opted_out: body.opted_out,
        opted_out_reason: body.opted_out_reason.as_ref().map(|value| {
            value
                .as_deref()
                .and_then(|v| check.text("opted_out_reason", v, OptOutReason::parse))
        }),
    };
    check.finish()?;
    let record = state
        .store
        .update_contact(&plan.id, &by, &id, patch)
        .await
        .map_err(not_found_contact)?;
    Ok(Json(Contact::from_record(record, None)))
}

/// Delete a contact
///
/// Removes the contact and its memberships; with `erase=true`, erases the person (their number
/// is kept only as a keyed hash that refuses it later).
#[utoipa::path(
    delete, path = "/api/contacts/{id}", tag = "Contacts",
    params(("id" = String, Path, description = "The contact's id"), DeleteParams),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "`erase` is not true or false", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such contact in this plan", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn delete_contact(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    Path(id): Path<String>,
    Query(params): Query<DeleteParams>,
) -> Result<StatusCode, ApiError> {
    let id = parse_contact_id(&id)?;
    let erase = flag("erase", params.erase.as_deref())?.unwrap_or(false);
    let deleted = if erase {
        state.store.erase_contacts(&plan.id, &by, &[id]).await?
    } else {
        state.store.delete_contacts(&plan.id, &by, &[id]).await?
    };
    match deleted {
        0 => Err(ApiError::NotFound("contact")),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

pub(super) fn parse_ids<T>(
    check: &mut Validator,
    field: &str,
    ids: &[String],
    max: usize,
    parse: impl Fn(&str) -> Option<T>,
) -> Vec<T> {
    if ids.len() > max {
        check.push(FieldError::constraint(
            field,
            format!("at most {max} ids per request (got {})", ids.len()),
        ));
        return Vec::new();
    }
    ids.iter()
        .enumerate()
        .filter_map(|(index, id)| {
            let parsed = parse(id);
            if parsed.is_none() {
                check.push(FieldError::format(
                    format!("{field}[{index}]"),
                    format!("{id:?} is not an id"),
                ));
            }
            parsed
        })
        .collect()
}

/// Delete contacts
///
/// Deletes every listed contact that exists, with its memberships, in one transaction; with
/// `"erase": true`, erases them.
#[utoipa::path(
    delete, path = "/api/contacts", tag = "Contacts",
    request_body = ContactIds,
    responses(
        (status = 200, description = "How many were deleted", body = Deleted),
        (status = 400, description = "An id is malformed, or too many ids", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn delete_contacts(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    JsonBody(body): JsonBody<ContactIds>,
) -> Result<Json<Deleted>, ApiError> {
    let mut check = Validator::new();
    let ids = parse_ids(
        &mut check,
        "ids",
        &body.ids,
        MAX_IDS_PER_REQUEST,
        ContactId::parse,
    );
    check.finish()?;
    let deleted = if body.erase {
        state.store.erase_contacts(&plan.id, &by, &ids).await?
    } else {
        state.store.delete_contacts(&plan.id, &by, &ids).await?
    };
    Ok(Json(Deleted { deleted }))
}

/// Opt contacts out
///
/// Opts out every listed contact that exists, in one transaction, each with a row in its
/// consent history. Only the contact can opt back in (by keyword).
#[utoipa::path(
    post, path = "/api/contacts/opt-out", tag = "Contacts",
    request_body = OptOutBody,
    responses(
        (status = 200, description = "How many were opted out", body = OptedOut),
        (status = 400, description = "An id or the reason is malformed, or too many ids", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn opt_out_contacts(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    JsonBody(body): JsonBody<OptOutBody>,
) -> Result<Json<OptedOut>, ApiError> {
    let mut check = Validator::new();
    let ids = parse_ids(
        &mut check,
        "ids",
        &body.ids,
        MAX_IDS_PER_REQUEST,
        ContactId::parse,
    );
    let reason = body
        .reason
        .as_deref()
        .and_then(|reason| check.text("reason", reason, OptOutReason::parse));
    check.finish()?;
    let opted_out = state
        .store
        .opt_out_contacts(&plan.id, &by, &ids, reason.as_ref())
        .await?;
    Ok(Json(OptedOut { opted_out }))
}

fn validate_memberships(body: &Memberships) -> Result<(Vec<ContactId>, Vec<GroupId>), ApiError> {
    let mut check = Validator::new();
    let contacts = parse_ids(
        &mut check,
        "contact_ids",
        &body.contact_ids,
        MAX_IDS_PER_REQUEST,
        ContactId::parse,
    );
    let groups = parse_ids(
        &mut check,
        "group_ids",
        &body.group_ids,
        100,
        GroupId::parse,
    );
    check.finish()?;
    Ok((contacts, groups))
}

fn explain_membership_error(error: crate::store::StoreError) -> ApiError {
    match error {
        crate::store::StoreError::UnknownGroups(ids) => ApiError::UnknownGroups(
            ids.iter()
                .map(|id| {
                    FieldError::constraint("group_ids", format!("no active group with id {id}"))
                })
                .collect(),
        ),
        other => ApiError::from(other),
    }
}

/// Add contacts to groups
///
/// Every contact into every group, all or nothing. Existing memberships are left as they are.
#[utoipa::path(
    post, path = "/api/contactgroups/members", tag = "Contact Groups",
    request_body = Memberships,
    responses(
        (status = 200, description = "How many memberships are new", body = MembershipChange),
        (status = 400, description = "An id is malformed or unknown", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A group is a smart group", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn add_memberships(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    JsonBody(body): JsonBody<Memberships>,
) -> Result<Json<MembershipChange>, ApiError> {
    let (contacts, groups) = validate_memberships(&body)?;
    let changed = state
        .store
        .add_memberships(&plan.id, &by, &contacts, &groups)
        .await
        .map_err(explain_membership_error)?;
    Ok(Json(MembershipChange {
        changed,
        requested: None,
    }))
}

/// Remove contacts from groups
///
/// Every contact out of every group, all or nothing. The contacts themselves stay.
#[utoipa::path(
    delete, path = "/api/contactgroups/members", tag = "Contact Groups",
    request_body = Memberships,
    responses(
        (status = 200, description = "How many memberships ended", body = MembershipChange),
        (status = 400, description = "An id is malformed or unknown", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A group is a smart group", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
async fn remove_memberships(
    State(state): State<AppState>,
    Authenticated(plan, by): Authenticated,
    JsonBody(body): JsonBody<Memberships>,
) -> Result<Json<MembershipChange>, ApiError> {
    let (contacts, groups) = validate_memberships(&body)?;
    let changed = state
        .store
        .remove_memberships(&plan.id, &by, &contacts, &groups)
        .await
        .map_err(explain_membership_error)?;
    Ok(Json(MembershipChange {
        changed,
        requested: None,
    }))
}
