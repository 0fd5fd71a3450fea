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
    /// `aria-describedby`. An element's message says which (`add[2]` is "Line 3").
    pub fn message(&self, field: &str) -> Markup {
        let messages = self.for_field(field);
        html! {
            @if !messages.is_empty() {
                ul.field-error id=(error_id(field)) role="alert" {
                    @for (name, detail) in messages {
                        li {
                            @if name != field { (field_words(name)) ": " }
                            (detail)
                        }
                    }
                }
            }
        }
    }

    /// The summary at the top of a form: the API's sentence, and the problems of fields that
    /// no form shows beside itself (each said once: the others are at their fields).
    pub fn summary(&self) -> Markup {
        let elsewhere: Vec<&(String, String)> = self
            .fields
            .iter()
            .filter(|(name, _)| !PLACED.contains(&base_field(name)))
            .collect();
        html! {
            @if self.summary.is_some() || !elsewhere.is_empty() {
                div.problem role="alert" {
                    @if let Some(summary) = &self.summary {
                        p {
                            strong { (summary) }
                            @if let Some((href, words)) = &self.link { " " a href=(href) { (words) } }
                        }
                    }
                    @if !elsewhere.is_empty() {
                        ul {
                            @for (name, detail) in elsewhere {
                                li { @if !name.is_empty() { (field_words(name)) ": " } (detail) }
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

/// The API fields the page's forms show their errors beside (`errors.message`), by their first
/// part (`add` for `add[3]`, `mapping` for `mapping.Mobile`).
const PLACED: [&str; 36] = [
    "add",
    "add_first_word",
    "add_second_word",
    "auto_update",
    "body",
    "child_groups",
    "default_region",
    "description",
    "email",
    "encoding",
    "exclude",
    "fields",
    "file",
    "first_name",
    "format",
    "from",
    "gender",
    "group",
    "group_id",
    "group_names",
    "groups",
    "last_name",
    "mapping",
    "mode",
    "name",
    "opted_out",
    "parameters",
    "phone",
    "q",
    "remove_first_word",
    "remove_second_word",
    "rule",
    "send_at",
    "time_zone",
    "to",
    "token",
];

fn base_field(name: &str) -> &str {
    name.split(['[', '.']).next().unwrap_or(name)
}

/// A field's path as a person reads it: `add[2]` is line 3 (lists count from 1 on the page),
/// `mapping.Mobile` is the column "Mobile", `first_name` is "first name".
fn field_words(name: &str) -> String {
    if let Some((_, rest)) = name.split_once('[')
        && let Some(index) = rest
            .strip_suffix(']')
            .and_then(|index| index.parse::<usize>().ok())
    {
        return format!("Line {}", index + 1);
    }
    if let Some(column) = name.strip_prefix("mapping.") {
        return format!("Column “{column}”");
    }
    let words = name.replace(['_', '.'], " ");
    let mut chars = words.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
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
        let message = errors.message("add").into_string();
        assert!(message.contains("Line 2: not a phone number"), "{message}");
        // The summary says each problem once: the fields' own are beside them.
        let summary = errors.summary().into_string();
        assert!(summary.contains("2 fields are invalid"), "{summary}");
        assert!(!summary.contains("not a phone number"), "{summary}");
        assert!(summary.contains("Address: unrelated"), "{summary}");
    }
}
