//! One error type for the HTTP layer, rendered two ways: RFC 9457 problem details on the native
//! API, and Sinch's `{"code", "text"}` on the Sinch-compatible surface.

use std::borrow::Cow;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::group::ChildGroupsError;
use crate::store::{GroupRef, JobConflict, StoreError};

/// What was wrong with one field (or element) of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// The field's path in the request, e.g. `members[3]` or `auto_update.add.first_word`.
    pub field: String,
    /// Why the value was refused.
    pub detail: String,
    #[serde(skip)]
    pub kind: FieldErrorKind,
}

/// Sinch tells JSON that does not fit the schema (`syntax_invalid_json`), malformed values
/// (`syntax_invalid_parameter_format`) and well-formed values that break a rule
/// (`syntax_constraint_violation`) apart; so do we.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldErrorKind {
    Schema,
    Format,
    #[default]
    Constraint,
}

impl FieldError {
    pub fn format(field: impl Into<String>, detail: impl ToString) -> Self {
        Self {
            field: field.into(),
            detail: detail.to_string(),
            kind: FieldErrorKind::Format,
        }
    }

    pub fn schema(field: impl Into<String>, detail: impl ToString) -> Self {
        Self {
            field: field.into(),
            detail: detail.to_string(),
            kind: FieldErrorKind::Schema,
        }
    }

    pub fn constraint(field: impl Into<String>, detail: impl ToString) -> Self {
        Self {
            field: field.into(),
            detail: detail.to_string(),
            kind: FieldErrorKind::Constraint,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid API token")]
    Unauthorized,
    #[error("this token does not belong to the service plan in the path")]
    ForeignPlan,
    #[error("this token does not have the scope {0}, which this request needs")]
    MissingScope(crate::domain::scope::Scope),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("the request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("the request is invalid")]
    Invalid(Vec<FieldError>),
    /// Groups named in the body that do not exist (or are deleted).
    #[error("unknown group")]
    UnknownGroups(Vec<FieldError>),
    #[error("{0}")]
    Conflict(String),
    #[error("the group changed since it was read; its ETag is now \"{current}\"")]
    PreconditionFailed { current: i64 },
    #[error("the request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body did not arrive in time")]
    BodyTimeout,
    #[error("too many requests for this token; retry in {retry_after} s")]
    TooManyRequests { retry_after: u64 },
    /// An uploaded file passed one of the caps its reader is held to (the error names it).
    #[error("the file is over a limit")]
    FileOverCap(Vec<FieldError>),
    /// A write could not start in time (SQLite's writer taken by an import, say).
    #[error("{}", busy_detail(*.cause, *.retry_after))]
    Busy {
        cause: crate::store::BusyCause,
        retry_after: u64,
    },
    /// The path exists, not with this method; `allow` is the `Allow` header's list.
    #[error("{method} is not allowed here; use one of: {allow}")]
    MethodNotAllowed { method: String, allow: String },
    #[error("the request target (path and query) is longer than the limit of {limit} bytes")]
    UriTooLong { limit: usize },
    #[error(
        "the request's header section is too large: at most {headers} headers and {bytes} bytes with the request line"
    )]
    HeadersTooLarge { headers: usize, bytes: usize },
    /// The framework refused the request before a handler ran (a path or query parameter that
    /// does not decode, a request line that does not parse); `detail` is its reason.
    #[error("{detail}")]
    Rejected { status: StatusCode, detail: String },
    #[error("the server did not answer within {seconds} s; try again")]
    Timeout { seconds: u64 },
    #[error("internal error")]
    Internal,
}

impl ApiError {
    pub fn invalid(error: FieldError) -> Self {
        ApiError::Invalid(vec![error])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::ForeignPlan | ApiError::MissingScope(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::InvalidJson(_) | ApiError::Invalid(_) => StatusCode::BAD_REQUEST,
            ApiError::UnknownGroups(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PreconditionFailed { .. } => StatusCode::PRECONDITION_FAILED,
            ApiError::PayloadTooLarge { .. } | ApiError::FileOverCap(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Rejected { status, .. } => *status,
            ApiError::Timeout { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Sinch's `code` for this error. Sinch subdivides 400 and 403 into codes; for the other
    /// statuses it documents none, and ours name the status in snake case (a limit exceeded is a
    /// constraint violation, as in Sinch's 400s).
    fn sinch_code(&self) -> Cow<'static, str> {
        let code = match self {
            ApiError::Unauthorized => "unauthorized",
            ApiError::ForeignPlan | ApiError::MissingScope(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            // Sinch reports JSON that does not match the schema (wrong types) the same way as
            // JSON that does not parse.
            ApiError::InvalidJson(_) => "syntax_invalid_json",
            ApiError::Invalid(errors)
                if errors.iter().any(|e| e.kind == FieldErrorKind::Schema) =>
            {
                "syntax_invalid_json"
            }
            ApiError::Invalid(errors)
                if errors.iter().any(|e| e.kind == FieldErrorKind::Format) =>
            {
                "syntax_invalid_parameter_format"
            }
            ApiError::Invalid(_) => "syntax_constraint_violation",
            ApiError::UnknownGroups(_) => "unknown_group",
            ApiError::Conflict(_) => "conflict",
            ApiError::PreconditionFailed { .. } => "precondition_failed",
            // A limit exceeded is a constraint the request broke.
            ApiError::PayloadTooLarge { .. }
            | ApiError::FileOverCap(_)
            | ApiError::UriTooLong { .. }
            | ApiError::HeadersTooLarge { .. } => "syntax_constraint_violation",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::BodyTimeout => "request_timeout",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Rejected { status, .. } if *status == StatusCode::BAD_REQUEST => {
                "syntax_invalid_parameter_format"
            }
            ApiError::Rejected { status, .. } => {
                let reason = status.canonical_reason().unwrap_or("bad request");
                return reason.to_lowercase().replace([' ', '-'], "_").into();
            }
            ApiError::Timeout { .. } | ApiError::Busy { .. } => "service_unavailable",
            ApiError::Internal => "internal_error",
        };
        code.into()
    }

    fn field_errors(&self) -> &[FieldError] {
        match self {
            ApiError::Invalid(errors)
            | ApiError::UnknownGroups(errors)
            | ApiError::FileOverCap(errors) => errors,
            _ => &[],
        }
    }

    /// A one-line account of the error, naming every field.
    fn detail(&self) -> String {
        let fields = self.field_errors();
        if fields.is_empty() {
            return self.to_string();
        }
        fields
            .iter()
            .map(|error| format!("{}: {}", error.field, error.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound(entity) => ApiError::NotFound(entity.name()),
            StoreError::UnknownGroups(ids) => ApiError::UnknownGroups(
                ids.iter()
                    .map(|id| FieldError::constraint("groups", format!("no group with id {id}")))
                    .collect(),
            ),
            StoreError::ChildGroups(ChildGroupsError::Cycle(path), names) => {
                ApiError::invalid(FieldError::constraint(
                    "child_groups",
                    format!("would create a cycle: {}", join_path(&path, &names)),
                ))
            }
            StoreError::ChildGroups(ChildGroupsError::TooDeep(path), names) => {
                ApiError::invalid(FieldError::constraint(
                    "child_groups",
                    format!(
                        "would nest groups more than {} levels deep: {}",
                        crate::domain::group::MAX_NESTING_DEPTH,
                        join_path(&path, &names)
                    ),
                ))
            }
            StoreError::ForeignCursor => ApiError::invalid(FieldError::format(
                "next",
                "is not a cursor returned by this API",
            )),
            StoreError::VersionMismatch { current } => ApiError::PreconditionFailed { current },
            StoreError::SmartGroup(group) => ApiError::Conflict(match group {
                GroupRef::Addressed => {
                    "the group is a smart group: its members follow its rule and \
                                        cannot be added or removed"
                        .into()
                }
                GroupRef::Id(id) => {
                    format!("group {id} is a smart group: its members follow its rule")
                }
                GroupRef::Name(name) => {
                    format!("group {name:?} is a smart group: its members follow its rule")
                }
            }),
            StoreError::RuleOverMembers => ApiError::Conflict(
                "the group has members; replace it (PUT) to give it a rule".into(),
            ),
            StoreError::NoDoubleOptIn => ApiError::Conflict(
                "confirm: the group has no double opt-in; set its auto_update.double_opt_in first"
                    .into(),
            ),
            StoreError::Erased => {
                ApiError::Conflict(format!("phone: {}", crate::domain::erasure::ERASED_REASON))
            }
            StoreError::DuplicatePhone(existing) => {
                ApiError::Conflict(format!("contact {existing} already has this phone number"))
            }
            StoreError::UnknownContacts(ids) => ApiError::invalid(FieldError::constraint(
                "contact_ids",
                format!(
                    "no contacts with ids {}",
                    ids.iter()
                        .map(|id| id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )),
            StoreError::BatchFinished(status) => {
                ApiError::Conflict(format!("the batch is already {}", status.as_str()))
            }
            StoreError::SeriesState(status) => {
                ApiError::Conflict(format!("the series is {}", status.as_str()))
            }
            StoreError::NotResolved => ApiError::Conflict(
                "the batch's recipients are resolved when it is sent; it has not been sent yet"
                    .into(),
            ),
            StoreError::GroupDeleted => ApiError::Conflict(
                "the group is deleted: restore it with PATCH {\"status\": \"ACTIVE\"} first".into(),
            ),
            StoreError::JobState(conflict) => ApiError::Conflict(match conflict {
                JobConflict::Committed => {
                    "the import is already committed; upload the file again to import it again"
                        .into()
                }
                JobConflict::Committing => "the import is already being committed".into(),
                JobConflict::FileExpired => "the uploaded file is no longer kept (uploads are \
                                             kept for a day); upload it again"
                    .into(),
                JobConflict::Abandoned => "the import was abandoned".into(),
                JobConflict::ContactChanged(phone) => format!(
                    "the contact with number {phone} changed during the import; commit it again"
                ),
            }),
            StoreError::Busy { cause, waited } => ApiError::Busy {
                cause,
                retry_after: waited.as_secs().max(1),
            },
            other => {
                tracing::error!(error = %other, "storage failure");
                ApiError::Internal
            }
        }
    }
}

fn busy_detail(cause: crate::store::BusyCause, retry_after: u64) -> String {
    use crate::store::BusyCause;
    let why = match cause {
        BusyCause::Import => {
            "the write could not start: an import is running: on SQLite it holds the \
             database's single writer until it finishes, and this write waited for it in vain"
        }
        BusyCause::Write => {
            "the write could not start: another long write holds the database's single writer"
        }
        BusyCause::OtherProcess => {
            "the write could not start: another process (an import from the command line?) \
             holds the database's write lock"
        }
        BusyCause::Connections => "the write could not start: every database connection is in use",
        BusyCause::ImportQueue => {
            "the import could not start: the import before it ran past the import wait"
        }
        BusyCause::Deadlock { .. } => {
            "the write crossed another one changing the same contacts or groups, and the \
             database stopped it"
        }
    };
    format!("{why}; nothing was written, retry in {retry_after} s")
}

/// A path of groups as `“Name” (id) → …`; a group without a name by its id alone.
fn join_path(
    path: &[crate::domain::ids::GroupId],
    names: &std::collections::BTreeMap<crate::domain::ids::GroupId, String>,
) -> String {
    path.iter()
        .map(|id| match names.get(id) {
            Some(name) => format!("“{name}” ({id})"),
            None => id.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

/// RFC 9457 problem details, with `errors` naming each bad field.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// A short, human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong with this request.
    pub detail: String,
    /// One entry per invalid field or element.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// Which error body a request gets: the native API's problem details, or Sinch's
/// `{"code", "text"}` under `/xms`. Chosen by the request's path, so that an error made before any
/// handler ran (an unknown route, a method not allowed, a path that does not decode, a timeout)
/// is shaped like the handlers' own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Native,
    Sinch,
}

impl Surface {
    pub fn of(path: &str) -> Self {
        if path == "/xms" || path.starts_with("/xms/") {
            Surface::Sinch
        } else {
            Surface::Native
        }
    }

    pub fn render(self, error: ApiError) -> Response {
        error.rendered(self).into_response()
    }
}

/// An error as one surface shows it. The body is serialised here rather than by `Json` so that
/// the connection layer, which answers below axum, can write the same bytes.
pub struct Rendered {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl ApiError {
    pub fn rendered(&self, surface: Surface) -> Rendered {
        let status = match (self, surface) {
            // Sinch answers a group in the body that does not exist with 403.
            (ApiError::UnknownGroups(_), Surface::Sinch) => StatusCode::FORBIDDEN,
            _ => self.status(),
        };
        let (content_type, body) = match surface {
            Surface::Native => (
                "application/problem+json",
                serde_json::to_vec(&Problem {
                    title: status.canonical_reason().unwrap_or("Error").to_owned(),
                    status: status.as_u16(),
                    detail: self.detail(),
                    errors: self.field_errors().to_vec(),
                }),
            ),
            Surface::Sinch => (
                "application/json",
                serde_json::to_vec(&SinchErrorBody {
                    code: self.sinch_code().into_owned(),
                    text: self.detail(),
                }),
            ),
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        match self {
            ApiError::Unauthorized if surface == Surface::Native => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::TooManyRequests { retry_after } | ApiError::Busy { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            ApiError::MethodNotAllowed { allow, .. } => {
                if let Ok(value) = HeaderValue::from_str(allow) {
                    headers.insert(header::ALLOW, value);
                }
            }
            _ => {}
        }
        Rendered {
            status,
            headers,
            // Serialising these plain structs of strings cannot fail.
            body: body.unwrap_or_default(),
        }
    }
}

impl IntoResponse for Rendered {
    fn into_response(self) -> Response {
        let mut response = Response::new(axum::body::Body::from(self.body));
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        Surface::Native.render(self)
    }
}

/// Sinch's error body.
#[derive(Serialize, ToSchema)]
pub struct SinchErrorBody {
    /// A machine-readable code such as `syntax_invalid_json` or `unknown_group`.
    pub code: String,
    /// A human-readable description of the error.
    pub text: String,
}

/// The same errors, as the Sinch-compatible surface reports them.
#[derive(Debug)]
pub struct SinchError(pub ApiError);

impl From<ApiError> for SinchError {
    fn from(error: ApiError) -> Self {
        SinchError(error)
    }
}

impl From<StoreError> for SinchError {
    fn from(error: StoreError) -> Self {
        SinchError(ApiError::from(error))
    }
}

impl IntoResponse for SinchError {
    fn into_response(self) -> Response {
        Surface::Sinch.render(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database error as PostgreSQL reports one, with its SQLSTATE.
    #[derive(Debug)]
    struct Refused(&'static str);

    impl std::fmt::Display for Refused {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "refused with {}", self.0)
        }
    }

    impl std::error::Error for Refused {}

    impl sqlx::error::DatabaseError for Refused {
        fn message(&self) -> &str {
            "refused"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[test]
    fn a_write_the_database_rolled_back_for_another_is_retried_later_not_a_failure() {
        for code in ["40P01", "40001"] {
            let stored = StoreError::from(sqlx::Error::Database(Box::new(Refused(code))));
            // What an import that failed this way keeps, and the command line prints.
            assert!(stored.to_string().contains(code), "{stored}");
            let error = ApiError::from(stored);
            assert_eq!(error.status(), StatusCode::SERVICE_UNAVAILABLE, "{code}");
            assert_eq!(
                error.to_string(),
                "the write crossed another one changing the same contacts or groups, and the \
                 database stopped it; nothing was written, retry in 1 s"
            );
        }
        let other = ApiError::from(StoreError::from(sqlx::Error::Database(Box::new(Refused(
            "23505",
        )))));
        assert_eq!(other.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[test]
    fn framework_rejections_get_a_sinch_code_for_their_status() {
        let rejected = |status| ApiError::Rejected {
            status,
            detail: "no".into(),
        };
        assert_eq!(
            rejected(StatusCode::BAD_REQUEST).sinch_code(),
            "syntax_invalid_parameter_format"
        );
        assert_eq!(
            rejected(StatusCode::UNSUPPORTED_MEDIA_TYPE).sinch_code(),
            "unsupported_media_type"
        );
        assert_eq!(
            rejected(StatusCode::EXPECTATION_FAILED).sinch_code(),
            "expectation_failed"
        );
    }

    #[test]
    fn store_errors_are_put_into_words_here() {
        use crate::domain::ids::GroupId;
        use crate::store::Entity;

        let conflict = |error: StoreError| match ApiError::from(error) {
            ApiError::Conflict(text) => text,
            other => panic!("not a conflict: {other:?}"),
        };
        assert!(matches!(
            ApiError::from(StoreError::NotFound(Entity::Batch)),
            ApiError::NotFound("batch")
        ));
        assert!(matches!(
            ApiError::from(StoreError::NotFound(Entity::Contact)),
            ApiError::NotFound("contact")
        ));
        let id = GroupId::generate();
        assert_eq!(
            conflict(StoreError::SmartGroup(GroupRef::Id(id.clone()))),
            format!("group {id} is a smart group: its members follow its rule")
        );
        assert_eq!(
            conflict(StoreError::SmartGroup(GroupRef::Name("VIP".into()))),
            "group \"VIP\" is a smart group: its members follow its rule"
        );
        assert!(
            conflict(StoreError::SmartGroup(GroupRef::Addressed))
                .contains("cannot be added or removed")
        );
        assert!(conflict(StoreError::RuleOverMembers).contains("replace it (PUT)"));
        assert!(
            conflict(StoreError::JobState(JobConflict::ContactChanged(
                "+14155550100".into()
            )))
            .contains("+14155550100 changed during the import")
        );
        for (conflict_kind, words) in [
            (JobConflict::Committed, "already committed"),
            (JobConflict::Committing, "already being committed"),
            (JobConflict::FileExpired, "no longer kept"),
            (JobConflict::Abandoned, "abandoned"),
        ] {
            assert!(conflict(StoreError::JobState(conflict_kind)).contains(words));
        }
    }

    #[test]
    fn both_surfaces_name_the_allowed_methods() {
        let error = ApiError::MethodNotAllowed {
            method: "PATCH".into(),
            allow: "GET, POST".into(),
        };
        for surface in [Surface::Native, Surface::Sinch] {
            let rendered = error.rendered(surface);
            assert_eq!(rendered.status, StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(rendered.headers[header::ALLOW], "GET, POST");
            let body = String::from_utf8(rendered.body).unwrap();
            assert!(body.contains("use one of: GET, POST"), "{body}");
        }
    }
}
