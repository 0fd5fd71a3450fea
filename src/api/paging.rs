//! Paging parameters shared by the list routes: opaque keyset cursors and bounded numbers.

use super::error::{ApiError, FieldError};
use super::limits::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::store::{Cursor, CursorKey, CursorTie, Window};

/// The window a list request asks for: numbered pages (`page` from 0 with `page_size`) or keyset
/// pages (`limit` with the `next` of the previous page), never both. Returns the page number too,
/// for the response.
pub fn window(
    page: Option<&str>,
    page_size: Option<&str>,
    limit: Option<&str>,
    next: Option<&str>,
) -> Result<(Window, Option<i64>), ApiError> {
    window_with(page, page_size, limit, next, |text| {
        decode_cursor("next", text)
    })
}

/// As [`window`], for a list whose `next` is its own kind of cursor, read by `decode`.
pub fn window_with<C>(
    page: Option<&str>,
    page_size: Option<&str>,
    limit: Option<&str>,
    next: Option<&str>,
    decode: impl FnOnce(&str) -> Result<C, ApiError>,
) -> Result<(Window<C>, Option<i64>), ApiError> {
    let page = bounded_number("page", page, 0, i64::MAX / MAX_PAGE_SIZE)?;
    let page_size = bounded_number("page_size", page_size, 1, MAX_PAGE_SIZE)?;
    let limit = bounded_number("limit", limit, 1, MAX_PAGE_SIZE)?;
    let window = match (page, next) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(FieldError::constraint(
                "page",
                "use either page (with page_size) or next (with limit), not both",
            )));
        }
        (Some(page), None) => {
            let limit = page_size.unwrap_or(DEFAULT_PAGE_SIZE);
            Window::Offset {
                offset: page * limit,
                limit,
            }
        }
        (None, next) => Window::After {
            after: next.map(decode).transpose()?,
            limit: limit.or(page_size).unwrap_or(DEFAULT_PAGE_SIZE),
        },
    };
    Ok((window, page))
}

/// Cursors are opaque to clients: the sort key and tie of the last row, as hex-encoded JSON.
/// The tie is a public id (26 characters) or a sealed key (32 hex digits), never mistaken for
/// each other.
pub fn encode_cursor(cursor: &Cursor) -> String {
    let key = match &cursor.key {
        CursorKey::Text(text) => serde_json::Value::from(text.as_str()),
        CursorKey::Number(number) => serde_json::Value::from(*number),
    };
    let tie = match &cursor.tie {
        CursorTie::Id(id) => id.clone(),
        CursorTie::Sealed(sealed) => hex::encode(sealed),
    };
    hex::encode(serde_json::json!([key, tie]).to_string())
}

pub fn decode_cursor(field: &str, text: &str) -> Result<Cursor, ApiError> {
    let invalid = || {
        ApiError::invalid(FieldError::format(
            field,
            "is not a cursor returned by this API",
        ))
    };
    let bytes = hex::decode(text).map_err(|_| invalid())?;
    let (key, tie): (serde_json::Value, String) =
        serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let key = match key {
        serde_json::Value::String(text) => CursorKey::Text(text),
        serde_json::Value::Number(number) => {
            CursorKey::Number(number.as_i64().ok_or_else(invalid)?)
        }
        _ => return Err(invalid()),
    };
    let tie = if ulid::Ulid::from_string(&tie).is_ok() {
        CursorTie::Id(tie)
    } else {
        let mut sealed = [0u8; 16];
        hex::decode_to_slice(&tie, &mut sealed).map_err(|_| invalid())?;
        CursorTie::Sealed(sealed)
    };
    Ok(Cursor { key, tie })
}

/// A numbered page of a short list, newest first (imports, exports).
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// The page, from 0.
    page: Option<String>,
    /// Entries per page, 1 to 1000 (default 100).
    page_size: Option<String>,
}

impl PageParams {
    /// The page and page size a route read among its own parameters.
    pub fn of(page: Option<String>, page_size: Option<String>) -> Self {
        Self { page, page_size }
    }

    /// The page number, and the offset and limit it stands for.
    pub fn window(&self) -> Result<(i64, i64, i64), ApiError> {
        let page =
            bounded_number("page", self.page.as_deref(), 0, i64::MAX / MAX_PAGE_SIZE)?.unwrap_or(0);
        let size = bounded_number("page_size", self.page_size.as_deref(), 1, MAX_PAGE_SIZE)?
            .unwrap_or(DEFAULT_PAGE_SIZE);
        Ok((page, page * size, size))
    }
}

/// An optional whole-number parameter within `min..=max`.
pub fn bounded_number(
    field: &str,
    value: Option<&str>,
    min: i64,
    max: i64,
) -> Result<Option<i64>, ApiError> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.parse::<i64>() {
        Ok(number) if (min..=max).contains(&number) => Ok(Some(number)),
        _ => Err(ApiError::invalid(FieldError::format(
            field,
            format!("must be a whole number from {min} to {max}"),
        ))),
    }
}

/// An optional `true`/`false` parameter.
pub fn flag(field: &str, value: Option<&str>) -> Result<Option<bool>, ApiError> {
    match value {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(ApiError::invalid(FieldError::format(
            field,
            "must be true or false",
        ))),
    }
}
