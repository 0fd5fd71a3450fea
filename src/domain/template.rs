//! Personalized bodies: `${name}` placeholders, as Sinch's batches take them, filled per
//! recipient from a batch's `parameters` and from the recipient's contact at send time.
//!
//! A name is looked up, for one recipient, in this order: the batch's value for that number;
//! the built-in value from the contact (`first_name`, `last_name`, `phone`, `fields.NAME`; an
//! empty one counts as none); the batch's `default` for the name. With none of them the
//! recipient gets no message (`missing_parameter`).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};

/// A body split at its placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
    /// Each distinct name once, in order of first use; `Piece::Slot` indexes it.
    names: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Slot(usize),
}

/// What a placeholder's name refers to when the batch gives no value for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    FirstName,
    LastName,
    Phone,
    Field(&'a str),
    /// Only the batch's `parameters` can fill it.
    Parameter,
}

impl Source<'_> {
    pub fn of(name: &str) -> Source<'_> {
        match name {
            "first_name" => Source::FirstName,
            "last_name" => Source::LastName,
            "phone" => Source::Phone,
            _ => match name.strip_prefix("fields.") {
                Some(field) if !field.is_empty() => Source::Field(field),
                _ => Source::Parameter,
            },
        }
    }

    /// Whether the value comes from the recipient's contact record.
    pub fn from_contact(self) -> bool {
        matches!(
            self,
            Source::FirstName | Source::LastName | Source::Field(_)
        )
    }
}

/// Characters of a placeholder's name: letters, digits, `_`, `-` and `.` (Sinch allows
/// `A-Za-z0-9._-`; custom field names may hold any letter).
fn name_char(ch: char) -> bool {
    ch.is_alphanumeric() || matches!(ch, '_' | '-' | '.')
}

impl Template {
    /// Splits a body. `${` not followed by a name and `}` is kept as text, as Sinch does.
    pub fn parse(body: &str) -> Self {
        let mut pieces = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut text = String::new();
        let mut rest = body;
        while let Some(start) = rest.find("${") {
            let after = &rest[start + 2..];
            let name_len = after
                .char_indices()
                .find(|&(_, ch)| !name_char(ch))
                .map_or(after.len(), |(index, _)| index);
            if name_len > 0 && after[name_len..].starts_with('}') {
                text.push_str(&rest[..start]);
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                let name = &after[..name_len];
                let slot = match names.iter().position(|known| known == name) {
                    Some(slot) => slot,
                    None => {
                        names.push(name.to_owned());
                        names.len() - 1
                    }
                };
                pieces.push(Piece::Slot(slot));
                rest = &after[name_len + 1..];
            } else {
                text.push_str(&rest[..start + 2]);
                rest = after;
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Self { pieces, names }
    }

    /// The distinct placeholder names, in order of first use.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    pub fn is_personalized(&self) -> bool {
        !self.names.is_empty()
    }

    /// Whether some placeholder may need the recipient's contact record.
    pub fn needs_contact(&self) -> bool {
        self.names
            .iter()
            .any(|name| Source::of(name).from_contact())
    }

    /// Whether some placeholder names a custom field.
    pub fn needs_fields(&self) -> bool {
        self.names
            .iter()
            .any(|name| matches!(Source::of(name), Source::Field(_)))
    }

    /// The body with `values[i]` in place of `names()[i]`.
    pub fn render(&self, values: &[String]) -> String {
        let mut out = String::new();
        self.render_into(values, &mut out);
        out
    }

    pub fn render_into(&self, values: &[String], out: &mut String) {
        out.clear();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Slot(slot) => out.push_str(values.get(*slot).map_or("", String::as_str)),
            }
        }
    }
}

/// One name's values in a batch's `parameters`: per number (E.164), and the fallback.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParameterValues {
    pub per_number: HashMap<String, String>,
    pub default: Option<String>,
}

/// A batch's `parameters`, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parameters(pub BTreeMap<String, ParameterValues>);

impl Parameters {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sinch's shape: `{"name": {"+15551231234": "Joe", "default": "there"}}`.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        for (name, values) in &self.0 {
            let mut entry: Map<String, Value> = values
                .per_number
                .iter()
                .map(|(number, value)| (number.clone(), Value::String(value.clone())))
                .collect();
            if let Some(default) = &values.default {
                entry.insert("default".to_owned(), Value::String(default.clone()));
            }
            object.insert(name.clone(), Value::Object(entry));
        }
        Value::Object(object)
    }

    /// Reads back what [`Parameters::to_json`] wrote (numbers already E.164).
    pub fn from_stored(value: &Value) -> Self {
        let mut parameters = BTreeMap::new();
        if let Some(object) = value.as_object() {
            for (name, entry) in object {
                let mut values = ParameterValues::default();
                for (key, value) in entry.as_object().into_iter().flatten() {
                    let Some(value) = value.as_str() else {
                        continue;
                    };
                    if key == "default" {
                        values.default = Some(value.to_owned());
                    } else {
                        values.per_number.insert(key.clone(), value.to_owned());
                    }
                }
                parameters.insert(name.clone(), values);
            }
        }
        Self(parameters)
    }
}

/// What a recipient's contact holds for the built-in names, when the number is a contact.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactDetails {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub fields: Map<String, Value>,
}

/// A placeholder that had no value for a recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingParameter(pub String);

impl ContactDetails {
    /// The contact's value for `source`, taken out of it: a template names each placeholder
    /// once, so nothing asks twice, and a million recipients' names are moved, not copied.
    fn take_value(&mut self, source: Source<'_>, phone: &str) -> Option<String> {
        let text = match source {
            Source::FirstName => self.first_name.take(),
            Source::LastName => self.last_name.take(),
            Source::Phone => Some(phone.to_owned()),
            Source::Field(name) => match self.fields.get_mut(name)? {
                Value::String(text) => Some(std::mem::take(text)),
                Value::Number(number) => Some(number.to_string()),
                Value::Bool(flag) => Some(flag.to_string()),
                _ => None,
            },
            Source::Parameter => None,
        }?;
        (!text.is_empty()).then_some(text)
    }
}

/// The values of `template`'s names for one recipient, in the order of
/// [`Template::names`]; the first name with no value otherwise.
pub fn values_for(
    template: &Template,
    parameters: &Parameters,
    phone: &str,
    mut contact: Option<ContactDetails>,
) -> Result<Vec<String>, MissingParameter> {
    template
        .names
        .iter()
        .map(|name| {
            let given = parameters.0.get(name);
            given
                .and_then(|values| values.per_number.get(phone).cloned())
                .or_else(|| {
                    let source = Source::of(name);
                    match contact.as_mut() {
                        Some(contact) => contact.take_value(source, phone),
                        None if source == Source::Phone => Some(phone.to_owned()),
                        None => None,
                    }
                })
                .or_else(|| given.and_then(|values| values.default.clone()))
                .ok_or_else(|| MissingParameter(name.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn params(json: Value) -> Parameters {
        Parameters::from_stored(&json)
    }

    #[test]
    fn placeholders_split_the_body() {
        let template = Template::parse("Hi ${first_name}, ${code} is ${code}. ${ not} $5 ${}");
        assert_eq!(template.names(), ["first_name", "code"]);
        assert!(template.needs_contact());
        assert_eq!(
            template.render(&["Ann".into(), "X1".into()]),
            "Hi Ann, X1 is X1. ${ not} $5 ${}"
        );
        let plain = Template::parse("no placeholders ${");
        assert!(!plain.is_personalized());
        assert_eq!(plain.render(&[]), "no placeholders ${");
    }

    #[test]
    fn a_number_s_value_beats_the_contact_which_beats_the_default() {
        let template = Template::parse("${first_name} ${fields.city} ${phone} ${promo}");
        let parameters = params(serde_json::json!({
            "first_name": {"+15551231234": "Joe", "default": "there"},
            "promo": {"default": "SAVE10"},
        }));
        let contact = ContactDetails {
            first_name: Some("Joseph".into()),
            last_name: None,
            fields: serde_json::json!({"city": "Leeds"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
        assert_eq!(
            values_for(
                &template,
                &parameters,
                "+15551231234",
                Some(contact.clone())
            ),
            Ok(vec![
                "Joe".into(),
                "Leeds".into(),
                "+15551231234".into(),
                "SAVE10".into()
            ])
        );
        assert_eq!(
            values_for(
                &template,
                &parameters,
                "+15550000000",
                Some(contact.clone())
            ),
            Ok(vec![
                "Joseph".into(),
                "Leeds".into(),
                "+15550000000".into(),
                "SAVE10".into()
            ])
        );
        // Not a contact: the default stands in for the name; the city has nothing.
        assert_eq!(
            values_for(&template, &parameters, "+15550000000", None),
            Err(MissingParameter("fields.city".into()))
        );
    }

    #[test]
    fn empty_contact_values_count_as_none() {
        let template = Template::parse("Hi ${first_name}");
        let contact = ContactDetails {
            first_name: Some(String::new()),
            ..ContactDetails::default()
        };
        assert_eq!(
            values_for(&template, &Parameters::default(), "+1", Some(contact)),
            Err(MissingParameter("first_name".into()))
        );
    }

    #[test]
    fn parameters_round_trip_through_json() {
        let json = serde_json::json!({"a": {"+1": "x", "default": "y"}, "b": {"+2": "z"}});
        assert_eq!(params(json.clone()).to_json(), json);
    }

    proptest! {
        /// Rendering with each name's own placeholder text gives the body back.
        #[test]
        fn rendering_names_as_placeholders_is_the_identity(body in "[a-z ${}_.]{0,40}") {
            let template = Template::parse(&body);
            let values: Vec<String> =
                template.names().iter().map(|name| format!("${{{name}}}")).collect();
            prop_assert_eq!(template.render(&values), body);
        }
    }
}
