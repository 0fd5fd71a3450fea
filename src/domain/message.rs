//! One batch's message as each recipient gets it: the body with the recipient's values in its
//! placeholders, in the encoding the batch asked for, and how many SMS parts it takes.

use std::borrow::Cow;

use super::sms::{self, Encoding, EncodingChoice, Segments};
use super::template::{ContactDetails, MissingParameter, Parameters, Source, Template, values_for};

/// Why a recipient was left out when the batch was resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// A placeholder had no value for the recipient (the name is the detail).
    MissingParameter(String),
    /// The plan's frequency cap: the recipient had its share of marketing messages.
    FrequencyCap,
}

impl SkipReason {
    pub fn code(&self) -> &'static str {
        match self {
            SkipReason::MissingParameter(_) => "missing_parameter",
            SkipReason::FrequencyCap => "frequency_cap",
        }
    }

    pub fn detail(&self) -> Option<&str> {
        match self {
            SkipReason::MissingParameter(name) => Some(name),
            SkipReason::FrequencyCap => None,
        }
    }

    pub fn from_stored(code: &str, detail: Option<String>) -> Option<Self> {
        match code {
            "missing_parameter" => Some(SkipReason::MissingParameter(detail.unwrap_or_default())),
            "frequency_cap" => Some(SkipReason::FrequencyCap),
            _ => None,
        }
    }
}

/// The body, parameters and encoding of a batch, ready to be worked out per recipient.
#[derive(Debug, Clone)]
pub struct MessagePlan {
    template: Template,
    parameters: Parameters,
    choice: EncodingChoice,
    /// For a body without placeholders, every recipient's text and parts.
    fixed: Option<(String, Segments)>,
}

/// One recipient's message, as resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The placeholders' values, in the order of the template's names (empty when the body
    /// has none).
    pub values: Vec<String>,
    pub segments: Segments,
}

impl MessagePlan {
    pub fn new(body: &str, parameters: Parameters, choice: EncodingChoice) -> Self {
        let template = Template::parse(body);
        let fixed = (!template.is_personalized()).then(|| {
            let (text, segments) = sms::encode(body, choice);
            (text.into_owned(), segments)
        });
        Self {
            template,
            parameters,
            choice,
            fixed,
        }
    }

    pub fn is_personalized(&self) -> bool {
        self.fixed.is_none()
    }

    /// Whether preparing a recipient needs its contact record.
    pub fn needs_contact(&self) -> bool {
        self.template.needs_contact()
    }

    /// Whether preparing a recipient needs its contact's custom fields.
    pub fn needs_fields(&self) -> bool {
        self.template.needs_fields()
    }

    /// Whether a placeholder of the body refers to `source` (a built-in name).
    pub fn uses(&self, source: Source<'_>) -> bool {
        self.template
            .names()
            .iter()
            .any(|name| Source::of(name) == source)
    }

    /// The parts of every message, when the body has no placeholders.
    pub fn fixed_segments(&self) -> Option<Segments> {
        self.fixed.as_ref().map(|(_, segments)| *segments)
    }

    /// Works out one recipient's message; `contact` is its contact record, if the number is a
    /// contact (and the body needs one).
    pub fn prepare(
        &self,
        phone: &str,
        contact: Option<ContactDetails>,
        scratch: &mut String,
    ) -> Result<Prepared, SkipReason> {
        if let Some((_, segments)) = &self.fixed {
            return Ok(Prepared {
                values: Vec::new(),
                segments: *segments,
            });
        }
        let values = values_for(&self.template, &self.parameters, phone, contact)
            .map_err(|MissingParameter(name)| SkipReason::MissingParameter(name))?;
        self.template.render_into(&values, scratch);
        let segments = sms::count(scratch, self.choice);
        Ok(Prepared { values, segments })
    }

    /// The text handed to the sender for a recipient with these placeholder values.
    pub fn text(&self, values: &[String]) -> String {
        match &self.fixed {
            Some((text, _)) => text.clone(),
            None => {
                let rendered = self.template.render(values);
                match sms::encode(&rendered, self.choice).0 {
                    Cow::Borrowed(_) => rendered,
                    Cow::Owned(text) => text,
                }
            }
        }
    }
}

/// The encodings a batch's messages were sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodingUsed {
    Gsm7,
    Ucs2,
    /// Personalized messages, some in GSM-7 and some in UCS-2.
    Mixed,
}

impl EncodingUsed {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gsm7 => "gsm7",
            Self::Ucs2 => "ucs2",
            Self::Mixed => "mixed",
        }
    }

    pub fn parse(input: &str) -> Option<Self> {
        Some(match input {
            "gsm7" => Self::Gsm7,
            "ucs2" => Self::Ucs2,
            "mixed" => Self::Mixed,
            _ => return None,
        })
    }
}

/// Parts and encodings over the messages of a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartsTally {
    pub messages: i64,
    pub parts: i64,
    pub min: Option<i64>,
    pub max: Option<i64>,
    gsm7: bool,
    ucs2: bool,
}

impl PartsTally {
    pub fn add(&mut self, segments: Segments) {
        self.add_many(segments, 1);
    }

    pub fn add_many(&mut self, segments: Segments, messages: i64) {
        if messages == 0 {
            return;
        }
        let parts = i64::from(segments.parts);
        self.messages += messages;
        self.parts += parts * messages;
        self.min = Some(self.min.map_or(parts, |min| min.min(parts)));
        self.max = Some(self.max.map_or(parts, |max| max.max(parts)));
        match segments.encoding {
            Encoding::Gsm7 => self.gsm7 = true,
            Encoding::Ucs2 => self.ucs2 = true,
        }
    }

    /// `None` while no message was counted.
    pub fn encoding(&self) -> Option<EncodingUsed> {
        match (self.gsm7, self.ucs2) {
            (true, true) => Some(EncodingUsed::Mixed),
            (true, false) => Some(EncodingUsed::Gsm7),
            (false, true) => Some(EncodingUsed::Ucs2),
            (false, false) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_body_is_worked_out_once() {
        let plan = MessagePlan::new("Sale “today”", Parameters::default(), EncodingChoice::Smart);
        assert!(!plan.is_personalized());
        assert_eq!(plan.text(&[]), "Sale \"today\"");
        let prepared = plan.prepare("+1", None, &mut String::new());
        assert_eq!(prepared.map(|p| p.segments.parts), Ok(1));
    }

    #[test]
    fn personalized_messages_are_counted_one_by_one() {
        let parameters = Parameters::from_stored(&serde_json::json!({
            "name": {"+1": "Zoë", "+2": "Zoe"}
        }));
        let plan = MessagePlan::new("Hi ${name}", parameters, EncodingChoice::Auto);
        let mut scratch = String::new();
        let first = plan.prepare("+1", None, &mut scratch);
        let second = plan.prepare("+2", None, &mut scratch);
        assert_eq!(
            first.as_ref().map(|p| p.segments.encoding),
            Ok(Encoding::Ucs2)
        );
        assert_eq!(
            second.as_ref().map(|p| p.segments.encoding),
            Ok(Encoding::Gsm7)
        );
        assert_eq!(
            plan.prepare("+3", None, &mut scratch),
            Err(SkipReason::MissingParameter("name".into()))
        );
        let mut tally = PartsTally::default();
        for prepared in [first, second].into_iter().flatten() {
            tally.add(prepared.segments);
        }
        assert_eq!(tally.encoding(), Some(EncodingUsed::Mixed));
        assert_eq!((tally.messages, tally.parts), (2, 2));
        assert_eq!(plan.text(&["Zoë".into()]), "Hi Zoë");
    }
}
