//! Turning request fields into domain values, collecting every problem with the field's path
//! rather than stopping at the first.

use std::collections::BTreeSet;

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, FieldError};
use super::limits::MAX_REPORTED_ERRORS;
use crate::domain::auto_update::{
    AutoUpdate, DoubleOptIn, DoubleOptInError, Keyword, KeywordPair, ShortCodeOrNumber,
};
use crate::domain::filter::FilterExpr;
use crate::domain::group::{Description, GroupName};
use crate::domain::ids::GroupId;
use crate::domain::msisdn::{Msisdn, ParsedNumber, RegionCode};
use crate::store::StoreError;

/// Keywords by which people text in to join or leave a group.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AutoUpdateBody {
    /// The short code or long number the keyword messages are sent to.
    #[serde(deserialize_with = "string_or_number")]
    #[schema(example = "+15551231234")]
    pub to: String,
    /// The words that add the sender to the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub add: Option<KeywordsBody>,
    /// The words that remove the sender from the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remove: Option<KeywordsBody>,
    /// Roster's own: joining needs the number's confirmation (double opt-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub double_opt_in: Option<DoubleOptInBody>,
}

/// Double opt-in: a join by keyword, an add with `confirm` or an import with `confirm` makes the
/// number a pending member and sends it `text` (from `to`); a reply of one of `words` within
/// `hours` makes it a member. A pending member is never a recipient.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DoubleOptInBody {
    /// The confirmation request, 1 to 1000 characters.
    #[schema(example = "Reply YES to get our offers (STOP to end)")]
    pub text: String,
    /// The replies that confirm (default `YES`, `Y`); case and trailing punctuation do not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub words: Option<Vec<String>>,
    /// How long a request stays open, 1 to 720 hours (default 48).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<u32>,
}

/// A keyword message: its first word, and on a shared short code its second word.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KeywordsBody {
    /// A single word of letters, digits or `_`, at most 15 characters.
    #[schema(example = "JOIN")]
    pub first_word: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_word: Option<String>,
}

impl From<&AutoUpdate> for AutoUpdateBody {
    fn from(value: &AutoUpdate) -> Self {
        let words = |pair: &KeywordPair| KeywordsBody {
            first_word: pair.first_word.as_str().to_owned(),
            second_word: pair.second_word.as_ref().map(|w| w.as_str().to_owned()),
        };
        AutoUpdateBody {
            to: value.to.as_str().to_owned(),
            add: value.add.as_ref().map(words),
            remove: value.remove.as_ref().map(words),
            double_opt_in: value.double_opt_in.as_ref().map(|confirm| DoubleOptInBody {
                text: confirm.text.clone(),
                words: Some(
                    confirm
                        .words
                        .iter()
                        .map(|word| word.as_str().to_owned())
                        .collect(),
                ),
                hours: Some(confirm.hours),
            }),
        }
    }
}

/// Sinch's own documentation shows `to` as a JSON number; accept both.
fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Number(u64),
    }
    Ok(match Either::deserialize(deserializer)? {
        Either::Text(text) => text,
        Either::Number(number) => number.to_string(),
    })
}

/// Distinguishes a field set to `null` (`Some(None)`) from an absent one (`None`).
pub fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// Collects the problems of one request.
#[derive(Default)]
pub struct Validator {
    errors: Vec<FieldError>,
    unknown_groups: Vec<FieldError>,
    /// Every group id the request names, with the field it came from, to explain a store's
    /// "unknown group" in terms of the request.
    group_fields: Vec<(String, GroupId)>,
    suppressed: usize,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, error: FieldError) {
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(error);
        } else {
            self.suppressed += 1;
        }
    }

    pub fn region(&mut self, field: &str, input: Option<&str>) -> Option<RegionCode> {
        let input = input?;
        match RegionCode::parse(input) {
            Ok(region) => Some(region),
            Err(error) => {
                self.push(FieldError::format(field, error));
                None
            }
        }
    }

    pub fn numbers(
        &mut self,
        field: &str,
        inputs: &[String],
        region: Option<RegionCode>,
        max: usize,
    ) -> BTreeSet<ParsedNumber> {
        if inputs.len() > max {
            self.push(FieldError::constraint(
                field,
                format!(
                    "at most {max} numbers per request (got {}); split the list",
                    inputs.len()
                ),
            ));
            return BTreeSet::new();
        }
        let mut numbers = BTreeSet::new();
        for (index, input) in inputs.iter().enumerate() {
            match Msisdn::parse(input, region) {
                Ok(number) => {
                    numbers.insert(number);
                }
                Err(error) => self.push(FieldError::format(
                    format!("{field}[{index}]"),
                    format!("{input:?} {error}"),
                )),
            }
        }
        numbers
    }

    pub fn number(
        &mut self,
        field: &str,
        input: &str,
        region: Option<RegionCode>,
    ) -> Option<ParsedNumber> {
        Msisdn::parse(input, region)
            .map_err(|error| self.push(FieldError::format(field, format!("{input:?} {error}"))))
            .ok()
    }

    /// Any field with its own parser: the parser's error becomes the field's.
    pub fn text<I: ?Sized, T, E: ToString>(
        &mut self,
        field: &str,
        input: &I,
        parse: impl FnOnce(&I) -> Result<T, E>,
    ) -> Option<T> {
        parse(input)
            .map_err(|error| self.push(FieldError::constraint(field, error)))
            .ok()
    }

    pub fn group_id(&mut self, field: &str, input: &str) -> Option<GroupId> {
        match GroupId::parse(input) {
            Some(id) => {
                self.group_fields.push((field.to_owned(), id.clone()));
                Some(id)
            }
            None => {
                self.unknown_groups.push(FieldError::constraint(
                    field,
                    format!("{input:?} is not the id of a group"),
                ));
                None
            }
        }
    }

    pub fn group_ids(&mut self, field: &str, inputs: &[String], max: usize) -> BTreeSet<GroupId> {
        if inputs.len() > max {
            self.push(FieldError::constraint(
                field,
                format!("at most {max} child groups (got {})", inputs.len()),
            ));
            return BTreeSet::new();
        }
        inputs
            .iter()
            .enumerate()
            .filter_map(|(index, input)| self.group_id(&format!("{field}[{index}]"), input))
            .collect()
    }

    pub fn name(&mut self, field: &str, input: &str, max_chars: usize) -> Option<GroupName> {
        GroupName::parse(input, max_chars)
            .map_err(|error| self.push(FieldError::constraint(field, error)))
            .ok()
    }

    pub fn description(&mut self, field: &str, input: &str) -> Option<Description> {
        Description::parse(input)
            .map_err(|error| self.push(FieldError::constraint(field, error)))
            .ok()
    }

    pub fn filter(&mut self, field: &str, source: &str) -> Option<FilterExpr> {
        FilterExpr::parse(source)
            .map_err(|error| self.push(FieldError::format(field, error)))
            .ok()
    }

    pub fn auto_update(&mut self, field: &str, body: &AutoUpdateBody) -> Option<AutoUpdate> {
        let to = ShortCodeOrNumber::parse(&body.to)
            .map_err(|error| self.push(FieldError::format(format!("{field}.to"), error)))
            .ok();
        let add = body
            .add
            .as_ref()
            .map(|words| self.keywords(&format!("{field}.add"), words));
        let remove = body
            .remove
            .as_ref()
            .map(|words| self.keywords(&format!("{field}.remove"), words));
        let double_opt_in = body
            .double_opt_in
            .as_ref()
            .map(|confirm| self.double_opt_in(&format!("{field}.double_opt_in"), confirm));
        Some(AutoUpdate {
            to: to?,
            add: add.transpose().ok()?,
            remove: remove.transpose().ok()?,
            double_opt_in: double_opt_in.transpose().ok()?,
        })
    }

    fn double_opt_in(&mut self, field: &str, body: &DoubleOptInBody) -> Result<DoubleOptIn, ()> {
        let defaults = DoubleOptIn::DEFAULT_WORDS.map(str::to_owned).to_vec();
        let inputs = body.words.as_ref().unwrap_or(&defaults);
        let mut words = Vec::new();
        for (index, input) in inputs.iter().enumerate() {
            match Keyword::parse(input) {
                Ok(word) => words.push(word),
                Err(error) => {
                    self.push(FieldError::constraint(
                        format!("{field}.words[{index}]"),
                        error,
                    ));
                    return Err(());
                }
            }
        }
        let hours = body.hours.unwrap_or(DoubleOptIn::DEFAULT_HOURS);
        DoubleOptIn::new(&body.text, words, hours).map_err(|error| {
            let name = match error {
                DoubleOptInError::Text => "text",
                DoubleOptInError::Words => "words",
                DoubleOptInError::Hours => "hours",
            };
            self.push(FieldError::constraint(format!("{field}.{name}"), error));
        })
    }

    fn keywords(&mut self, field: &str, body: &KeywordsBody) -> Result<KeywordPair, ()> {
        let mut word = |name: &str, input: &str| {
            Keyword::parse(input).map_err(|error| {
                self.push(FieldError::constraint(format!("{field}.{name}"), error))
            })
        };
        let first_word = word("first_word", &body.first_word);
        let second_word = body
            .second_word
            .as_deref()
            .map(|input| word("second_word", input))
            .transpose();
        Ok(KeywordPair {
            first_word: first_word?,
            second_word: second_word?,
        })
    }

    /// Ends validation: field errors first, then unknown groups (which Sinch answers with 403).
    pub fn finish(mut self) -> Result<GroupFields, ApiError> {
        if self.suppressed > 0 {
            self.errors.push(FieldError::constraint(
                "…",
                format!("and {} more invalid values", self.suppressed),
            ));
        }
        if !self.errors.is_empty() {
            return Err(ApiError::Invalid(self.errors));
        }
        if !self.unknown_groups.is_empty() {
            return Err(ApiError::UnknownGroups(self.unknown_groups));
        }
        Ok(GroupFields(self.group_fields))
    }
}

/// The group ids a valid request named, by field.
pub struct GroupFields(Vec<(String, GroupId)>);

impl GroupFields {
    /// A store error in the request's terms: an unknown group is reported at the field that
    /// named it.
    pub fn explain(&self, error: StoreError) -> ApiError {
        match error {
            StoreError::UnknownGroups(ids) => ApiError::UnknownGroups(
                ids.iter()
                    .map(|id| {
                        let field = self
                            .0
                            .iter()
                            .find(|(_, named)| named == id)
                            .map_or("groups", |(field, _)| field.as_str());
                        FieldError::constraint(field, format!("no active group with id {id}"))
                    })
                    .collect(),
            ),
            other => ApiError::from(other),
        }
    }
}
