//! Request extractors whose failures are [`ApiError`]s, so that a bad body or header is answered
//! in the surface's own error format and names what was wrong.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::{ApiError, FieldError};
use super::limits::MAX_BODY_BYTES;

/// A JSON body. The `Content-Type` is not checked: Sinch's SDKs send `application/json` even on
/// bodiless requests, and a body that parses is accepted whatever it was labelled. An empty body
/// counts as `{}`, as Sinch's Python SDK sends none for a group created without fields.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| match rejection {
                BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) => {
                    ApiError::PayloadTooLarge {
                        limit: MAX_BODY_BYTES,
                    }
                }
                // The body stalled past the body timeout, or the connection broke.
                BytesRejection::FailedToBufferBody(_) => ApiError::BodyTimeout,
                other => ApiError::InvalidJson(other.body_text()),
            })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let value = serde_path_to_error::deserialize(&mut deserializer)
            .map_err(|error| body_error(bytes, error))?;
        deserializer
            .end()
            .map_err(|error| ApiError::InvalidJson(error.to_string()))?;
        super::text::refuse_nul_in_json(bytes)?;
        Ok(JsonBody(value))
    }
}

/// Names the field when the body is JSON that does not fit the request's schema; only a body
/// that does not parse at all is "not valid JSON".
fn body_error(bytes: &[u8], error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    use serde_json::error::Category;
    let path = error.path().to_string();
    let inner = error.into_inner();
    let reason = strip_position(&inner);
    if let Some(name) = missing_field(&reason) {
        let field = match path.as_str() {
            "." => name.to_owned(),
            parent => format!("{parent}.{name}"),
        };
        return ApiError::invalid(FieldError::constraint(field, "is required"));
    }
    match inner.classify() {
        Category::Data if path != "." => ApiError::invalid(FieldError::schema(path, reason)),
        // serde_json reports a value of the wrong kind for an enum (`{"format": 12345}`) as a
        // syntax error, though the body parses: it is the field that is wrong.
        Category::Syntax if path != "." && is_json(bytes) => ApiError::invalid(FieldError::schema(
            path,
            "is not one of the values this field takes",
        )),
        _ => ApiError::InvalidJson(inner.to_string()),
    }
}

/// The field of serde's "missing field `name`".
fn missing_field(reason: &str) -> Option<&str> {
    reason
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
}

fn is_json(bytes: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok()
}

/// serde_json appends "at line 1 column 42" to data errors; the field path says more.
fn strip_position(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// The `If-Match` precondition of a write: `None` when absent or `*`.
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let text = value
            .to_str()
            .map_err(|_| ApiError::invalid(FieldError::format("If-Match", "is not valid ASCII")))?;
        let first = text.split(',').next().unwrap_or("").trim();
        if first == "*" {
            return Ok(IfMatch(None));
        }
        let tag = first.strip_prefix("W/").unwrap_or(first).trim_matches('"');
        // An entity tag we never issued can never match; -1 is no group's version.
        Ok(IfMatch(Some(tag.parse().unwrap_or(-1))))
    }
}

/// The `ETag` of a group at `version`.
pub fn etag(version: i64) -> String {
    format!("\"{version}\"")
}
