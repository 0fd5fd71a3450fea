//! U+0000 is refused in every request before any handler sees it (the rule and its reasons are
//! in [`crate::domain::text`]): in every string of a JSON body, and in every query parameter's
//! name and value. The error names the field and is answered in the surface's own shape, so it
//! is the same on SQLite and PostgreSQL whatever the route does with the text.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::error::{ApiError, FieldError, SinchError};
use super::validate::Validator;
use crate::domain::text::{NulError, refuse_nul};

/// Refuses a JSON body with U+0000 in any string or object key, naming each one found by its
/// path (`members[3]`, `auto_update.add.first_word`, `fields.plan`). JSON can only carry U+0000
/// as the escape `\u0000`, so a body without one is passed at the cost of a scan; one with it is
/// parsed again to tell a real NUL from an escaped backslash followed by `u0000`.
pub fn refuse_nul_in_json(body: &[u8]) -> Result<(), ApiError> {
    const ESCAPE: &[u8] = b"\\u0000";
    if !body.windows(ESCAPE.len()).any(|window| window == ESCAPE) {
        return Ok(());
    }
    // Not JSON: the body's own parse reports that.
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Ok(());
    };
    let mut check = Validator::new();
    find_nul(&value, String::new(), &mut check);
    check.finish().map(drop)
}

fn find_nul(value: &Value, path: String, check: &mut Validator) {
    match value {
        Value::String(text) => {
            if let Err(error) = refuse_nul(text) {
                check.push(nul_error(or_root(path), error));
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                find_nul(item, format!("{path}[{index}]"), check);
            }
        }
        Value::Object(members) => {
            for (key, member) in members {
                let member_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                if let Err(error) = refuse_nul(key) {
                    check.push(nul_error(
                        or_root(path.clone()),
                        format!("the name {key:?} {error}"),
                    ));
                }
                find_nul(member, member_path, check);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn or_root(path: String) -> String {
    if path.is_empty() {
        ".".to_owned()
    } else {
        path
    }
}

fn nul_error(field: String, detail: impl ToString) -> FieldError {
    // Malformed rather than against a rule: Sinch's `syntax_invalid_parameter_format`.
    FieldError::format(field, detail)
}

/// A parameter's name holding U+0000, as it can be shown: the NUL written `\0`.
fn shown(name: &str) -> String {
    name.replace('\0', "\\0")
}

/// Middleware: a request whose query holds U+0000 (`%00`) in a parameter's name or value is
/// answered 400 naming the parameter, before routing reaches a handler.
pub async fn refuse_nul_in_query(request: Request, next: Next) -> Response {
    let Some(query) = request.uri().query() else {
        return next.run(request).await;
    };
    // Percent-decoding is what could make a NUL; a query without `%00` holds none.
    if !query.contains("%00") {
        return next.run(request).await;
    }
    let mut check = Validator::new();
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    for (name, value) in &pairs {
        if refuse_nul(name).is_err() {
            check.push(nul_error(
                shown(name),
                format!("the parameter's name {NulError}"),
            ));
        } else if let Err(error) = refuse_nul(value) {
            check.push(nul_error(name.clone(), error));
        }
    }
    match check.finish() {
        Ok(_) => next.run(request).await,
        Err(error) if request.uri().path().starts_with("/xms/") => {
            SinchError(error).into_response()
        }
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(body: &str) -> Vec<String> {
        let mut fields: Vec<String> = match refuse_nul_in_json(body.as_bytes()) {
            Ok(()) => Vec::new(),
            Err(ApiError::Invalid(errors)) => errors.into_iter().map(|e| e.field).collect(),
            Err(other) => panic!("{other:?}"),
        };
        fields.sort();
        fields
    }

    #[test]
    fn every_nul_is_found_by_its_path() {
        assert_eq!(
            fields(
                r#"{"name": "a\u0000", "members": ["+1", "\u0000"],
                    "auto_update": {"add": {"first_word": "J\u0000"}},
                    "fields": {"k\u0000": 1, "plan": "\u0000"}}"#
            ),
            vec![
                "auto_update.add.first_word",
                "fields",
                "fields.plan",
                "members[1]",
                "name"
            ]
        );
        assert_eq!(fields(r#""\u0000""#), vec!["."]);
    }

    #[test]
    fn an_escaped_backslash_is_no_nul() {
        assert!(fields(r#"{"name": "C:\\u0000"}"#).is_empty());
        assert!(fields(r#"{"name": "plain"}"#).is_empty());
        // Not JSON at all: left to the body's own parse.
        assert!(fields(r#"{"name": "\u0000"#).is_empty());
    }
}
