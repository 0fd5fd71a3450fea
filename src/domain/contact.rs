//! A contact's own fields: names, email, gender, time zone, custom fields and opt-out reason.

use serde_json::{Map, Value};

use super::text::{NulError, refuse_nul};

/// A first or last name: trimmed, at most [`PersonName::MAX_CHARS`] characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonName(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextFieldError {
    #[error("must not be empty (use null to clear it)")]
    Empty,
    #[error("must be at most {0} characters")]
    TooLong(usize),
    #[error("must not contain control characters")]
    ControlCharacters,
}

pub(crate) fn bounded_text(input: &str, max: usize) -> Result<String, TextFieldError> {
    let trimmed = input.trim();
    if trimmed.is_empty() {
        return Err(TextFieldError::Empty);
    }
    if trimmed.chars().count() > max {
        return Err(TextFieldError::TooLong(max));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(TextFieldError::ControlCharacters);
    }
    Ok(trimmed.to_owned())
}

impl PersonName {
    pub const MAX_CHARS: usize = 100;

    pub fn parse(input: &str) -> Result<Self, TextFieldError> {
        bounded_text(input, Self::MAX_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A gender as the business records it (`female`, `male`, `other`, `non-binary`, …): short
/// free text, kept in one canonical spelling so that a search finds it however it was typed —
/// lower case, with `f` and `m` spelled out as `female` and `male`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gender(String);

impl Gender {
    pub const MAX_CHARS: usize = 32;

    pub fn parse(input: &str) -> Result<Self, TextFieldError> {
        bounded_text(input, Self::MAX_CHARS).map(|text| Self(Self::canonical(&text)))
    }

    /// The spelling a gender is stored in, for searching by one however it is typed.
    pub fn canonical(input: &str) -> String {
        let lower = input.trim().to_lowercase();
        match lower.as_str() {
            "f" => "female".to_owned(),
            "m" => "male".to_owned(),
            _ => lower,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a contact was opted out, as given by the API caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptOutReason(String);

impl OptOutReason {
    pub const MAX_CHARS: usize = 500;

    pub fn parse(input: &str) -> Result<Self, TextFieldError> {
        bounded_text(input, Self::MAX_CHARS).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address: one `@`, a non-empty local part, a domain with a dot, no spaces, at most
/// 254 characters. Deliverability is not our business; obvious typos are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not an email address")]
pub struct EmailError;

impl Email {
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let trimmed = input.trim();
        let (local, domain) = trimmed.rsplit_once('@').ok_or(EmailError)?;
        let valid = trimmed.len() <= 254
            && !local.is_empty()
            && local.len() <= 64
            && !local.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
            && !trimmed.chars().any(|c| c.is_whitespace() || c.is_control());
        if !valid {
            return Err(EmailError);
        }
        // Domains are case-insensitive; the local part, strictly, is not.
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IANA time zone (`Europe/Paris`), written in the spelling of the time zone database, so that
/// whatever reads it back (quiet hours) can parse it without a second validation. Held as the
/// zone itself rather than its name: an import's rows carry one each, and stay small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZoneName(chrono_tz::Tz);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an IANA time zone name like \"Europe/Paris\"")]
pub struct TimeZoneError;

impl TimeZoneName {
    pub fn parse(input: &str) -> Result<Self, TimeZoneError> {
        input.trim().parse().map(Self).map_err(|_| TimeZoneError)
    }

    pub fn as_str(&self) -> &'static str {
        self.0.name()
    }
}

/// Custom fields: a JSON object of string, number or boolean values.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CustomFields(Map<String, Value>);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CustomFieldsError {
    #[error("must be a JSON object")]
    NotAnObject,
    #[error("has more than {0} fields")]
    TooMany(usize),
    #[error("field name {0:?} must be 1 to 64 letters, digits, _ or -")]
    BadName(String),
    #[error("field {0:?} must be a string, number or boolean")]
    BadValue(String),
    #[error("field {0:?} is longer than {1} characters")]
    TooLong(String, usize),
    #[error("field {0:?} {1}")]
    Nul(String, NulError),
}

impl CustomFields {
    pub const MAX_FIELDS: usize = 100;
    pub const MAX_VALUE_CHARS: usize = 1000;

    pub fn parse(value: &Value) -> Result<Self, CustomFieldsError> {
        let object = value.as_object().ok_or(CustomFieldsError::NotAnObject)?;
        if object.len() > Self::MAX_FIELDS {
            return Err(CustomFieldsError::TooMany(Self::MAX_FIELDS));
        }
        for (name, value) in object {
            let good_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '-');
            if !good_name {
                return Err(CustomFieldsError::BadName(name.clone()));
            }
            match value {
                Value::String(text) if text.chars().count() > Self::MAX_VALUE_CHARS => {
                    return Err(CustomFieldsError::TooLong(
                        name.clone(),
                        Self::MAX_VALUE_CHARS,
                    ));
                }
                Value::String(text) => {
                    refuse_nul(text).map_err(|error| CustomFieldsError::Nul(name.clone(), error))?
                }
                Value::Bool(_) => {}
                Value::Number(number) if number.as_f64().is_some_and(f64::is_finite) => {}
                _ => return Err(CustomFieldsError::BadValue(name.clone())),
            }
        }
        Ok(Self(object.clone()))
    }

    /// For fields read back from our own database, which only ever holds valid ones.
    pub fn from_trusted(map: Map<String, Value>) -> Self {
        Self(map)
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }
}

/// The names present, "a b".
fn joined(a: Option<&str>, b: Option<&str>) -> String {
    [a, b].into_iter().flatten().collect::<Vec<_>>().join(" ")
}

/// The lower-cased "first last" and "last first" forms that contacts are sorted and searched
/// by.
pub fn sort_names(first: Option<&str>, last: Option<&str>) -> (String, String) {
    (
        joined(first, last).to_lowercase(),
        joined(last, first).to_lowercase(),
    )
}

/// The sort names a contact's row keeps: only those that lower-casing ASCII letters alone
/// cannot rebuild from the names (a name with a capital outside ASCII, like "Élodie"). The
/// store orders and searches by the stored form when there is one and by the names' ASCII
/// lower case otherwise — for the names of most contacts, the same text without its bytes.
pub fn stored_sort_names(
    first: Option<&str>,
    last: Option<&str>,
) -> (Option<String>, Option<String>) {
    let keep = |names: String| {
        let sorted = names.to_lowercase();
        (sorted != names.to_ascii_lowercase()).then_some(sorted)
    };
    (keep(joined(first, last)), keep(joined(last, first)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emails_are_checked_and_domains_lowercased() {
        assert_eq!(
            Email::parse(" Ada@Example.COM ").map(|e| e.0),
            Ok("Ada@example.com".into())
        );
        for bad in [
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "ada@ex..com",
        ] {
            assert_eq!(Email::parse(bad), Err(EmailError), "{bad}");
        }
    }

    #[test]
    fn time_zones_are_iana_names() {
        for (input, stored) in [
            ("Europe/Paris", "Europe/Paris"),
            (" America/New_York ", "America/New_York"),
            ("UTC", "UTC"),
        ] {
            assert_eq!(
                TimeZoneName::parse(input).map(|zone| zone.as_str()),
                Ok(stored),
                "{input}"
            );
        }
        for bad in ["", "Mars/Olympus_Mons", "Europe/Paris\0", "+02:00", "CEST"] {
            assert_eq!(TimeZoneName::parse(bad), Err(TimeZoneError), "{bad}");
        }
        assert_eq!(
            TimeZoneError.to_string(),
            "must be an IANA time zone name like \"Europe/Paris\""
        );
    }

    #[test]
    fn custom_fields_hold_only_scalars() {
        assert!(CustomFields::parse(&json!({"plan": "gold", "age": 30, "vip": true})).is_ok());
        assert_eq!(
            CustomFields::parse(&json!({"tags": ["a"]})),
            Err(CustomFieldsError::BadValue("tags".into()))
        );
        assert_eq!(
            CustomFields::parse(&json!({"x": null})),
            Err(CustomFieldsError::BadValue("x".into()))
        );
        assert_eq!(
            CustomFields::parse(&json!({"bad name": 1})),
            Err(CustomFieldsError::BadName("bad name".into()))
        );
        assert_eq!(
            CustomFields::parse(&json!([1])),
            Err(CustomFieldsError::NotAnObject)
        );
    }

    #[test]
    fn genders_have_one_spelling() {
        for (input, stored) in [
            ("Female", "female"),
            (" F ", "female"),
            ("f", "female"),
            ("MALE", "male"),
            ("m", "male"),
            ("Non-Binary", "non-binary"),
            ("Divers", "divers"),
        ] {
            assert_eq!(
                Gender::parse(input).map(|g| g.0),
                Ok(stored.into()),
                "{input}"
            );
            assert_eq!(Gender::canonical(input), stored, "{input}");
        }
        assert_eq!(Gender::parse("f\0"), Err(TextFieldError::ControlCharacters));
    }

    #[test]
    fn custom_field_values_refuse_nul() {
        assert_eq!(
            CustomFields::parse(&json!({"note": "a\0b"})),
            Err(CustomFieldsError::Nul("note".into(), NulError))
        );
        assert!(CustomFields::parse(&json!({"note": "two\nlines"})).is_ok());
        assert!(matches!(
            CustomFields::parse(&json!({"a\0": 1})),
            Err(CustomFieldsError::BadName(_))
        ));
    }

    #[test]
    fn only_sort_names_ascii_lower_case_cannot_rebuild_are_stored() {
        assert_eq!(
            stored_sort_names(Some("Ada"), Some("Lovelace")),
            (None, None)
        );
        assert_eq!(
            stored_sort_names(Some("Siobhán"), Some("O'Brien")),
            (None, None)
        );
        assert_eq!(stored_sort_names(None, None), (None, None));
        assert_eq!(
            stored_sort_names(Some("Élodie"), None),
            (Some("élodie".to_owned()), Some("élodie".to_owned()))
        );
        assert_eq!(
            stored_sort_names(Some("ΟΔΥΣΣΕΥΣ"), Some("Ithaca")),
            (
                Some("οδυσσευς ithaca".to_owned()),
                Some("ithaca οδυσσευς".to_owned())
            )
        );
    }

    #[test]
    fn sort_names_cover_both_orders() {
        assert_eq!(
            sort_names(Some("Ada"), Some("Lovelace")),
            ("ada lovelace".into(), "lovelace ada".into())
        );
        assert_eq!(
            sort_names(None, Some("Lovelace")),
            ("lovelace".into(), "lovelace".into())
        );
        assert_eq!(sort_names(None, None), (String::new(), String::new()));
    }
}
