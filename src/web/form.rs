//! The errors a form shows: the API's problem details, each next to the field it names.

use maud::{Markup, html};
use serde_json::Value;

use super::dispatch::Reply;

/// Problems to show on a form: a summary, and messages by the API's field name.
#[derive(Default, Debug)]
pub struct Errors {
    pub summary: Option<String>,
    fields: Vec<(String, String)>,
    /// Where the problem can be looked at (the contact that already has a number): an
    /// address and its words.
    pub link: Option<(String, String)>,
}

impl Errors {
    pub fn one(field: &str, message: &str) -> Self {
        Self {
            summary: None,
            fields: vec![(field.to_owned(), message.to_owned())],
            link: None,
        }
    }

    /// The problem document of a refused API call. Field paths are kept as the API names them
    /// (`name`, `add[3]`, `mapping.Mobile`); fields a form has no place for are listed in the
    /// summary.
    pub fn from_reply(reply: &Reply) -> Self {
        let detail = reply.body["detail"]
            .as_str()
            .or_else(|| reply.body["text"].as_str())
            .unwrap_or("The request was refused.");
        let fields = reply.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .map(|error| {
                        (
                            error["field"].as_str().unwrap_or_default().to_owned(),
                            error["detail"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            summary: Some(detail.to_owned()),
            fields,
            link: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.summary.is_none() && self.fields.is_empty()
    }

    /// Messages for `field` and for its elements and members (`add` also takes `add[2]`).
    pub fn for_field(&self, field: &str) -> Vec<&(String, String)> {
        self.fields
            .iter()
            .filter(|(name, _)| {
                name == field
                    || name
                        .strip_prefix(field)
                        .is_some_and(|rest| rest.starts_with('[') || rest.starts_with('.'))
            })
            .collect()
    }

    /// The messages for a field, in an element the field's input points at with
    /// `aria-describedby`.
    pub fn message(&self, field: &str) -> Markup {
        let messages = self.for_field(field);
        html! {
            @if !messages.is_empty() {
                ul.field-error id=(error_id(field)) role="alert" {
                    @for (name, detail) in messages {
                        li {
                            @if name != field { code { (name) } ": " }
                            (detail)
                        }
                    }
                }
            }
        }
    }

    /// The summary at the top of a form, with every field error in it too, so that none is
    /// missed on a long page.
    pub fn summary(&self) -> Markup {
        html! {
            @if !self.is_empty() {
                div.problem role="alert" {
                    @if let Some(summary) = &self.summary {
                        p {
                            strong { (summary) }
                            @if let Some((href, words)) = &self.link { " " a href=(href) { (words) } }
                        }
                    }
                    @if !self.fields.is_empty() {
                        ul {
                            @for (name, detail) in &self.fields {
                                li { @if !name.is_empty() { code { (name) } ": " } (detail) }
                            }
                        }
                    }
                }
            }
        }
    }

    pub fn has(&self, field: &str) -> bool {
        !self.for_field(field).is_empty()
    }
}

pub fn error_id(field: &str) -> String {
    let safe: String = field
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{safe}-error")
}

/// A JSON string field as text ("" when absent or null).
pub fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key].as_str().unwrap_or_default()
}

/// An optional form value: blank means absent.
pub fn non_blank(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use serde_json::json;

    #[test]
    fn field_errors_are_found_by_their_field_and_elements() {
        let reply = Reply {
            status: StatusCode::BAD_REQUEST,
            body: json!({"detail": "2 fields are invalid", "errors": [
                {"field": "add[1]", "detail": "not a phone number"},
                {"field": "name", "detail": "too long"},
                {"field": "address", "detail": "unrelated"},
            ]}),
        };
        let errors = Errors::from_reply(&reply);
        assert_eq!(errors.summary.as_deref(), Some("2 fields are invalid"));
        assert_eq!(errors.for_field("add").len(), 1);
        assert_eq!(errors.for_field("name").len(), 1);
        assert!(!errors.has("description"));
        assert!(
            errors
                .message("add")
                .into_string()
                .contains("not a phone number")
        );
    }
}
